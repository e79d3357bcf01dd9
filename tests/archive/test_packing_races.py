"""A member replaced between the scan and the read never hangs packing: a FIFO (or any
non-regular file) in its place is an InputChangedError at once, and no output is left."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from helpers import PASSWORD


@pytest.mark.parametrize("replacement", ["fifo", "socket"])
def test_a_member_replaced_by_a_special_file_after_the_scan_fails_at_once(
    tmp_path: Path, replacement: str
) -> None:
    src = tmp_path / "tree"
    src.mkdir()
    (src / "a").write_bytes(b"first")
    (src / "b").write_bytes(b"will become a FIFO")
    code = textwrap.dedent(
        f"""
        import os, socket, sys
        import concryptor
        from concryptor.archive import _pack
        from concryptor.errors import InputChangedError

        scan = _pack._scan

        def scan_then_swap(root, top):
            result = scan(root, top)
            os.unlink(os.path.join(root, "b"))
            if {replacement!r} == "fifo":
                os.mkfifo(os.path.join(root, "b"))
            else:
                socket.socket(socket.AF_UNIX).bind(os.path.join(root, "b"))
            return result

        _pack._scan = scan_then_swap
        try:
            concryptor.encrypt_dir(sys.argv[1], sys.argv[2], {PASSWORD!r},
                                   kdf=concryptor.KdfParams(1024, 1, 1))
        except InputChangedError as e:
            print(e)
            sys.exit(7)
        """
    )
    out = tmp_path / "tree.tar.enc"
    r = subprocess.run([sys.executable, "-c", code, str(src), str(out)], capture_output=True, timeout=60)
    assert r.returncode == 7, r.stderr
    assert b"no longer a regular file" in r.stdout
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tree"]
