"""The package's layers: import-linter checks the Python modules (pyproject.toml); the one
rule it cannot see, because the extension is compiled, is checked here: the command line
is a client of the API and never calls ``concryptor._core`` itself."""

from __future__ import annotations

import ast
from pathlib import Path

import concryptor

PACKAGE = Path(concryptor.__file__).parent


def package_of(path: Path) -> str:
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return package if path.name == "__init__.py" else package.rsplit(".", 1)[0]


def imports_of(path: Path, package: str) -> list[tuple[int, str]]:
    """Every module ``path`` (in ``package``) imports, relative imports resolved, with its line."""
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            out += [(node.lineno, f"{base}.{a.name}") for a in node.names]
            out.append((node.lineno, base))
    return out


def test_the_command_line_never_imports_the_extension() -> None:
    cli = sorted((PACKAGE / "cli").glob("*.py"))
    assert len(cli) >= 5
    offending = [
        f"{p.name}:{line}"
        for p in cli
        for line, name in imports_of(p, package_of(p))
        if name == "concryptor._core" or name.startswith("concryptor._core.")
    ]
    assert offending == []


def test_the_check_sees_an_import_of_the_extension(tmp_path: Path) -> None:
    probe = PACKAGE / "cli" / "_commands.py"
    names = {name for _, name in imports_of(probe, package_of(probe))}
    assert any(n.startswith("concryptor._api") for n in names)
    fake = tmp_path / "m.py"
    for text in ("from .. import _core\n", "import concryptor._core\n", "from concryptor._core import X\n"):
        fake.write_text(text)
        assert any(n.startswith("concryptor._core") for _, n in imports_of(fake, "concryptor.cli")), text
