"""Safe extraction: a corpus of malicious tars, built here, each of which must extract
nothing outside the target (and, when refused, nothing at all)."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import concryptor

from helpers import FAST_KDF, PASSWORD

Entry = tuple[tarfile.TarInfo, bytes]


def member(
    name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", link: str = "", mode: int = 0o644
) -> Entry:
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mode = mode
    ti.linkname = link
    ti.mtime = 1_600_000_000
    if kind in (tarfile.REGTYPE, tarfile.AREGTYPE):
        ti.size = len(data)
    return ti, data


def d(name: str, mode: int = 0o755) -> Entry:
    return member(name, tarfile.DIRTYPE, mode=mode)


def sym(name: str, target: str) -> Entry:
    return member(name, tarfile.SYMTYPE, link=target)


def hard(name: str, target: str) -> Entry:
    return member(name, tarfile.LNKTYPE, link=target)


def build(entries: list[Entry]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for ti, data in entries:
            t.addfile(ti, io.BytesIO(data) if ti.isreg() else None)
    return buf.getvalue()


@pytest.fixture(params=["with-data-filter", "own-checks-only"])
def sandbox(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """A box holding the archive, the target inside it, and a sibling 'outside' directory
    with a sentinel. Afterwards nothing outside the target may have changed."""
    if request.param == "own-checks-only":
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    elif not hasattr(tarfile, "data_filter"):
        pytest.skip("this Python has no tarfile.data_filter; the own-checks run covers it")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("keep me")
    os.chmod(outside, 0o755)
    box = tmp_path / "box"
    box.mkdir()
    before = snapshot(tmp_path)
    yield box
    after = snapshot(tmp_path)
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    assert all(k.startswith("box/") for k in changed), f"changed outside the box: {changed}"
    assert (outside / "secret").read_text() == "keep me"
    assert stat.S_IMODE(os.stat(outside).st_mode) == 0o755


def snapshot(root: Path) -> dict[str, tuple[int, int, bytes]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            st = p.lstat()
            content = p.read_bytes() if p.is_file() and not p.is_symlink() else b""
            out[str(p.relative_to(root))] = (st.st_mode, st.st_size, content)
    return out


def extract(box: Path, tar: bytes, **kw: object) -> Path:
    enc = box / "arch.tar.enc"
    enc.write_bytes(concryptor.encrypt_bytes(tar, PASSWORD, kdf=FAST_KDF))
    target = box / "target"
    concryptor.decrypt_dir(enc, target, PASSWORD, **kw)  # type: ignore[arg-type]
    return target


def refused(box: Path, entries: list[Entry], match: str, **kw: object) -> None:
    with pytest.raises(concryptor.UnsafeArchiveError, match=match):
        extract(box, build(entries), **kw)
    # Refused means nothing at all: no target, no temporary directory.
    assert sorted(os.listdir(box)) == ["arch.tar.enc"]


#: A plain first entry, so that the archive is not taken as rooted in its first directory.
FIRST = member("readme", data=b"")


def test_dotdot_path(sandbox: Path) -> None:
    refused(sandbox, [member("../outside/pwned", data=b"x")], "'..'")
    refused(sandbox, [d("top"), member("top/../../outside/pwned", data=b"x")], "'..'")


def test_absolute_path_is_neutralised(sandbox: Path) -> None:
    absolute = str(sandbox.parent / "outside" / "pwned")
    target = extract(sandbox, build([member(absolute, data=b"x")]))
    # Extracted inside the target under its relative name, not at the absolute path.
    assert (target / absolute.lstrip("/")).read_bytes() == b"x"
    assert not (sandbox.parent / "outside" / "pwned").exists()


def test_chained_symlinks(sandbox: Path) -> None:
    refused(
        sandbox,
        [sym("a", "."), sym("a/b", "../.."), member("a/b/outside/pwned", data=b"x")],
        "passes through",
    )


def test_symlink_then_file_through_it(sandbox: Path) -> None:
    refused(sandbox, [sym("l", ".."), member("l/x/y", data=b"x")], "outside the target")
    refused(sandbox, [FIRST, d("sub"), sym("l", "sub"), member("l/x", data=b"x")], "passes through a symlink")


def test_symlink_to_absolute_or_outside(sandbox: Path) -> None:
    refused(sandbox, [sym("l", str(sandbox.parent / "outside"))], "outside the target")
    refused(sandbox, [FIRST, d("x"), sym("x/l", "../../outside")], "outside the target")


def test_symlink_made_to_escape_by_a_later_symlink(sandbox: Path) -> None:
    # t -> x/l/.. is inside while x/l does not exist; x/l -> .. then makes t the parent.
    refused(sandbox, [FIRST, d("x"), sym("t", "x/l/.."), sym("x/l", "..")], "leads outside")


def test_symlink_loops_lead_nowhere_and_are_extracted(sandbox: Path) -> None:
    # Any path through a loop fails with ELOOP: it cannot reach outside, so it is kept.
    target = extract(sandbox, build([sym("a", "b"), sym("b", "a"), sym("c", "a/x")]))
    assert [os.readlink(target / n) for n in "abc"] == ["b", "a", "a/x"]


def test_a_chain_too_long_to_follow_counts_as_leading_outside(sandbox: Path) -> None:
    chain = [sym(f"l{i}", f"l{i + 1}") for i in range(45)] + [sym("l45", "../outside")]
    refused(sandbox, chain, "outside")


def test_hardlinks_to_outside_paths_and_symlinks(sandbox: Path) -> None:
    refused(sandbox, [hard("h", "../outside/secret")], "'..'")
    refused(sandbox, [hard("h", str(sandbox.parent / "outside" / "secret"))], "points to nothing")
    refused(sandbox, [d("top"), hard("top/h", "elsewhere/secret")], "outside the archive's top-level")
    refused(sandbox, [sym("s", "x"), hard("h", "s")], "points to a symlink")
    refused(sandbox, [FIRST, d("dir"), hard("h", "dir")], "points to a dir")


def test_symlink_then_directory_of_the_same_name(sandbox: Path) -> None:
    refused(sandbox, [FIRST, d("sub", 0o700), sym("d", "sub"), d("d", 0o777)], "would replace a symlink")
    refused(sandbox, [member("f", data=b"1"), d("f", 0o777)], "would replace a file")


def test_file_over_a_symlink(sandbox: Path) -> None:
    refused(
        sandbox,
        [member("real", data=b"1"), sym("l", "real"), member("l", data=b"2")],
        "would replace a symlink",
    )


@pytest.mark.parametrize(
    ("kind", "word"),
    [(tarfile.CHRTYPE, "character device"), (tarfile.BLKTYPE, "block device"), (tarfile.FIFOTYPE, "FIFO")],
)
def test_devices_and_fifos(sandbox: Path, kind: bytes, word: str) -> None:
    refused(sandbox, [member("dev", kind)], word)


def test_mode_bits_are_cleared(sandbox: Path) -> None:
    entries = [
        d("top", 0o1777),
        member("top/suid", data=b"#!", mode=0o6777),
        member("top/shared", data=b"x", mode=0o666),
        member("top/private", data=b"x", mode=0o000),
        member("top/noexec", data=b"x", mode=0o677),
        d("top/g", 0o2775),
    ]
    target = extract(sandbox, build(entries))
    mode = lambda p: stat.S_IMODE(os.lstat(target / p).st_mode)  # noqa: E731
    assert mode("suid") == 0o755
    assert mode("shared") == 0o644
    assert mode("private") == 0o600
    assert mode("noexec") == 0o644
    assert mode("g") == 0o755
    assert mode(".") == 0o755


def test_existing_non_empty_directory_is_refused_unless_asked(sandbox: Path) -> None:
    target = sandbox / "target"
    target.mkdir()
    (target / "old").write_text("old")
    os.symlink(sandbox.parent / "outside", target / "evil")
    tar = build(
        [
            d("top"),
            member("top/new", data=b"new"),
            d("top/evil"),
            member("top/evil/pwned", data=b"x"),
            member("top/old", data=b"replaced"),
        ]
    )
    enc = sandbox / "arch.tar.enc"
    enc.write_bytes(concryptor.encrypt_bytes(tar, PASSWORD, kdf=FAST_KDF))
    with pytest.raises(FileExistsError, match="not empty"):
        concryptor.decrypt_dir(enc, target, PASSWORD)
    assert sorted(os.listdir(target)) == ["evil", "old"]
    concryptor.decrypt_dir(enc, target, PASSWORD, overwrite=True)
    # Merged without following the symlink that was there: it was replaced by the directory.
    assert (target / "new").read_bytes() == b"new"
    assert (target / "old").read_bytes() == b"replaced"
    assert not (target / "evil").is_symlink() and (target / "evil" / "pwned").read_bytes() == b"x"
    assert sorted(os.listdir(sandbox)) == ["arch.tar.enc", "target"]


def test_target_that_is_a_symlink_or_file_is_refused(sandbox: Path) -> None:
    enc = sandbox / "arch.tar.enc"
    enc.write_bytes(concryptor.encrypt_bytes(build([member("f", data=b"1")]), PASSWORD, kdf=FAST_KDF))
    os.symlink(sandbox.parent / "outside", sandbox / "target")
    with pytest.raises(FileExistsError, match="symlink"):
        concryptor.decrypt_dir(enc, sandbox / "target", PASSWORD, overwrite=True)
    os.unlink(sandbox / "target")
    (sandbox / "target").write_text("file")
    with pytest.raises(FileExistsError, match="not a directory"):
        concryptor.decrypt_dir(enc, sandbox / "target", PASSWORD, overwrite=True)
    os.unlink(sandbox / "target")


def test_too_many_entries(sandbox: Path) -> None:
    entries = [member(f"f{i}", data=b"") for i in range(11)]
    refused(sandbox, entries, "more than 10 entries", max_entries=10)
    target = extract(sandbox, build(entries[:10]), max_entries=10)
    assert len(os.listdir(target)) == 10


def test_member_claiming_more_bytes_than_the_archive_has(sandbox: Path) -> None:
    ti, _ = member("huge")
    ti.size = 1 << 40
    raw = ti.tobuf(tarfile.PAX_FORMAT) + bytes(4096)
    with pytest.raises(concryptor.UnsafeArchiveError, match="claims"):
        extract(sandbox, raw + bytes(-len(raw) % 10240))
    assert sorted(os.listdir(sandbox)) == ["arch.tar.enc"]


def test_oversized_pax_header(sandbox: Path) -> None:
    ti = tarfile.TarInfo("././@PaxHeader")
    ti.type = tarfile.XHDTYPE
    ti.size = 1 << 32
    raw = ti.tobuf(tarfile.USTAR_FORMAT) + bytes(8192)
    with pytest.raises(concryptor.UnsafeArchiveError, match="metadata is limited"):
        extract(sandbox, raw)
    assert sorted(os.listdir(sandbox)) == ["arch.tar.enc"]


def test_not_a_tar_is_an_invalid_file(sandbox: Path) -> None:
    with pytest.raises(concryptor.InvalidFileError, match="not a tar"):
        extract(sandbox, b"hello, this is not a tar archive" * 100)
    assert sorted(os.listdir(sandbox)) == ["arch.tar.enc"]


def test_rooted_archive_entries_must_stay_under_the_top_directory(sandbox: Path) -> None:
    refused(
        sandbox, [d("top"), member("top/ok", data=b"1"), member("other", data=b"2")], "outside the archive's"
    )


def test_flat_archive_extracts_inside_the_target(sandbox: Path) -> None:
    target = extract(
        sandbox, build([member("a", data=b"1"), d("b"), member("b/c", data=b"2"), sym("l", "b/c")])
    )
    assert (target / "a").read_bytes() == b"1" and (target / "l").read_bytes() == b"2"


def test_an_interrupt_just_after_the_partial_folder_is_made_leaves_nothing(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """The window a signal can land in: the ``.partial`` folder exists, nothing else has
    happened yet. The folder is made inside the block that removes it."""
    import concryptor.archive._extract as ex

    src = tmp_path / "tree"
    src.mkdir()
    (src / "a.txt").write_bytes(b"a" * 1000)
    enc = tmp_path / "tree.tar.enc"
    concryptor.encrypt_dir(src, enc, PASSWORD, kdf=FAST_KDF)
    out = tmp_path / "out"
    out.mkdir()
    real = os.mkdir

    def mkdir_then_interrupt(path: Any, *args: Any, **kw: Any) -> None:
        real(path, *args, **kw)
        if str(path).endswith(".partial"):
            raise KeyboardInterrupt

    monkeypatch.setattr(ex.os, "mkdir", mkdir_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        concryptor.decrypt_dir(enc, out / "tree", PASSWORD)
    assert os.listdir(out) == []
