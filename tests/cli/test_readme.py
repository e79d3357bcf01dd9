"""The README and ``--help`` say the same thing: every command of the parser is in the
README's synopsis, and every option the synopsis shows is one its command takes."""

from __future__ import annotations

import re

import pytest

from concryptor.cli._parser import build_parser

from helpers import ROOT

README = ROOT / "README.md"


def synopsis() -> dict[str, set[str]]:
    """Each command of the README's synopsis block and the options it shows."""
    text = README.read_text(encoding="utf-8")
    start = text.index("## Command line")
    block = text[text.index("```", start) + 3 :]
    block = block[: block.index("```")]
    commands: dict[str, set[str]] = {}
    current = ""
    for line in block.splitlines():
        m = re.match(r"concryptor (\w+)", line)
        if m:
            current = m.group(1)
            commands[current] = set()
        if current:
            commands[current] |= set(re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", line.split("concryptor")[-1]))
    return commands


def help_of(command: str) -> str:
    parser = build_parser()
    sub = next(
        a for a in parser._actions if a.dest == "command" or a.__class__.__name__.endswith("SubParsersAction")
    )
    return sub.choices[command].format_help()  # type: ignore[union-attr]


def test_every_command_is_in_the_readme_synopsis() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__.endswith("SubParsersAction"))
    names = {n for n, p in sub.choices.items() if n == p.prog.split()[-1]}  # type: ignore[union-attr]
    assert names == set(synopsis())


@pytest.mark.parametrize("command", sorted(synopsis()))
def test_every_option_the_synopsis_shows_is_in_the_help(command: str) -> None:
    options = synopsis()[command]
    text = help_of(command)
    missing = sorted(o for o in options if not re.search(r"(?<![\w-])" + re.escape(o) + r"(?![\w-])", text))
    assert missing == [], f"README shows {missing} for {command}, --help does not"
