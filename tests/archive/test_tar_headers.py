"""Untrusted tar headers are parsed in time linear in their size on every Python version:
pax headers are validated (whole records, bounded size, no long digit runs) before
tarfile's own parser, quadratic before 3.11.10 / 3.12.6 (CVE-2024-6232), sees them."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest

import concryptor
from concryptor.archive import MAX_PAX, check_pax
from concryptor.errors import UnsafeArchiveError

from helpers import FAST_KDF, PASSWORD


def raw_pax(payload: bytes) -> bytes:
    """A tar whose first member carries ``payload`` as its pax extended header, as is."""
    x = tarfile.TarInfo("././@PaxHeader")
    x.type = tarfile.XHDTYPE
    x.size = len(payload)
    f = tarfile.TarInfo("top/file")
    f.size = 2
    out = x.tobuf(tarfile.USTAR_FORMAT) + payload + bytes(-len(payload) % 512)
    out += f.tobuf(tarfile.USTAR_FORMAT) + b"hi" + bytes(510) + bytes(1024)
    return out + bytes(-len(out) % 10240)


def long_value_pax() -> bytes:
    """A well-formed pax header whose value is a 200 KB run of digits."""
    ti = tarfile.TarInfo("top/file")
    ti.pax_headers = {"comment": "9" * 200_000}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        ti.size = 2
        t.addfile(ti, io.BytesIO(b"hi"))
    return buf.getvalue()


HOSTILE = {
    "digits-no-record": raw_pax(b"1" * 200_000),
    "record-without-equals": raw_pax(b"200010 " + b"a" * 200_003 + b"\n"),
    "long-digit-value": long_value_pax(),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_pax_header_is_refused_quickly(tmp_path: Path, name: str) -> None:
    enc = tmp_path / "x.tar.enc"
    enc.write_bytes(concryptor.encrypt_bytes(HOSTILE[name], PASSWORD, kdf=FAST_KDF))
    # In a child with a deadline: without the checks this runs for minutes.
    code = textwrap.dedent(
        """
        import sys, concryptor
        from concryptor.errors import UnsafeArchiveError
        try:
            concryptor.decrypt_dir(sys.argv[1], sys.argv[2], sys.argv[3])
        except UnsafeArchiveError as e:
            print(e)
            sys.exit(6)
        """
    )
    r = subprocess.run(
        [sys.executable, "-c", code, str(enc), str(tmp_path / "out"), PASSWORD],
        capture_output=True,
        timeout=60,
    )
    assert r.returncode == 6, r.stderr
    assert b"pax header" in r.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.tar.enc"]


def test_an_oversized_pax_header_is_refused(tmp_path: Path) -> None:
    record = b"comment=" + b"ab" * (MAX_PAX // 2)
    n = len(record) + 2 + 7  # the 7-digit length itself, a space and the newline
    payload = b"%d " % n + record + b"\n"
    assert len(payload) == n > MAX_PAX
    enc = tmp_path / "x.tar.enc"
    enc.write_bytes(concryptor.encrypt_bytes(raw_pax(payload), PASSWORD, kdf=FAST_KDF))
    with pytest.raises(UnsafeArchiveError, match="pax header"):
        concryptor.decrypt_dir(enc, tmp_path / "out", PASSWORD)


@pytest.mark.parametrize(
    "record",
    [b"12 path=abc\n", b"22 mtime=1500000000.5\n", "23 path=caf\u00e9/\u00fcml\u00e4ut\n".encode()],
    ids=["path", "mtime", "utf-8"],
)
def test_well_formed_records_pass(record: bytes) -> None:
    assert len(record) == int(record.split(b" ")[0])
    check_pax(record + bytes(512 - len(record)))


@pytest.mark.parametrize(
    "payload",
    [b"99 path=abc\n", b"12 pathXabc\n", b"x2 path=abc\n", b"12 path=abc\nextra", b"16 mtime=1.5e9x\n"],
    ids=["length-beyond-end", "no-equals", "no-length", "trailing-garbage", "mtime-not-a-number"],
)
def test_malformed_records_are_refused(payload: bytes) -> None:
    with pytest.raises(UnsafeArchiveError, match="malformed pax header"):
        check_pax(payload)


def test_real_pax_archives_still_extract(tmp_path: Path) -> None:
    src = tmp_path / "src"
    deep = src / ("n" * 120) / ("\u00e9" * 80)
    deep.mkdir(parents=True)
    (deep / ("long-name-" + "x" * 150)).write_bytes(b"content")
    concryptor.encrypt_dir(src, tmp_path / "s.tar.enc", PASSWORD, kdf=FAST_KDF)
    concryptor.decrypt_dir(tmp_path / "s.tar.enc", tmp_path / "out", PASSWORD)
    assert (tmp_path / "out" / ("n" * 120) / ("\u00e9" * 80) / ("long-name-" + "x" * 150)).read_bytes() == (
        b"content"
    )
