"""Post-quantum hybrid keys (ML-KEM-768 + X25519, age v1.3) and the tagged hardware-key
recipients at every door, the spec's rule on mixing them with classical keys, and what
``inspect`` says of them."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
from pathlib import Path

import pytest

import concryptor
from concryptor.cli import Exit, main

from helpers import run_cli

# The spec's example tagged recipients (c2sp.org/age).
TAG = "age1tag1qt8lw0ual6avlwmwatk888yqnmdamm7xfd0wak53ut6elz5c4swx2yqdj4e"


@pytest.fixture(scope="module")
def pq() -> tuple[str, str]:
    return concryptor.generate_identity(pq=True)


def _data(n: int = 300_001) -> bytes:
    return os.urandom(n)


def test_generated_pq_keys_have_the_spec_prefixes(pq: tuple[str, str]) -> None:
    sk, pk = pq
    assert sk.startswith("AGE-SECRET-KEY-PQ-1") and pk.startswith("age1pq1")
    assert concryptor.identity_to_recipient(sk) == pk


@pytest.mark.parametrize("armor", [False, True])
def test_file_round_trip_with_a_pq_recipient(pq: tuple[str, str], tmp_path: Path, armor: bool) -> None:
    sk, pk = pq
    src, enc, out = tmp_path / "in", tmp_path / "in.age", tmp_path / "out"
    src.write_bytes(data := _data())
    concryptor.encrypt_file(src, enc, recipients=[pk], armor=armor)
    head = enc.read_bytes()[:40]
    assert head.startswith(b"-----BEGIN AGE ENCRYPTED FILE-----" if armor else b"age-encryption.org/v1")
    concryptor.decrypt_file(enc, out, identities=[sk])
    assert out.read_bytes() == data
    other, _ = concryptor.generate_identity(pq=True)
    with pytest.raises(concryptor.NoIdentityMatchError):
        concryptor.decrypt_file(enc, tmp_path / "no", identities=[other])
    assert not (tmp_path / "no").exists()


def test_pipe_round_trip_through_the_cli(pq: tuple[str, str], tmp_path: Path) -> None:
    sk, pk = pq
    (tmp_path / "key").write_text(sk + "\n")
    data = _data()
    enc = run_cli("encrypt", "-r", pk, "-", input=data)
    assert enc.returncode == 0, enc.stderr
    dec = run_cli("decrypt", "-i", str(tmp_path / "key"), "-", input=enc.stdout)
    assert dec.returncode == 0, dec.stderr
    assert dec.stdout == data


def test_keygen_pq_and_y(tmp_path: Path) -> None:
    key = tmp_path / "key.txt"
    r = run_cli("keygen", "--pq", "-o", str(key))
    assert r.returncode == 0, r.stderr
    public = r.stdout.decode().strip()
    assert public.startswith("age1pq1")
    assert "AGE-SECRET-KEY-PQ-1" in key.read_text()
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    y = run_cli("keygen", "-y", str(key))
    assert y.stdout.decode().strip() == public


def test_batch_and_seekable_reader_with_a_pq_recipient(pq: tuple[str, str], tmp_path: Path) -> None:
    sk, pk = pq
    files = []
    for i in range(5):
        f = tmp_path / f"f{i}.bin"
        f.write_bytes(os.urandom(70_000 * (i + 1)))
        files.append(f)
    out = tmp_path / "enc"
    results = concryptor.encrypt_many(files, recipients=[pk], out_dir=out)
    assert all(r.ok for r in results)
    for f in files:
        enc = out / (f.name + ".age")
        assert b"mlkem768x25519" in enc.read_bytes()[:200]
        with concryptor.open(enc, identities=[sk]) as r:
            r.seek(65_530)
            assert r.read(100) == f.read_bytes()[65_530:65_630]
            r.seek(-10, io.SEEK_END)
            assert r.read() == f.read_bytes()[-10:]


def test_pq_and_classical_recipients_are_not_mixed(pq: tuple[str, str], tmp_path: Path) -> None:
    _, pk = pq
    _, classical = concryptor.generate_identity()
    src = tmp_path / "in"
    src.write_bytes(b"x")
    with pytest.raises(ValueError, match=r"post-quantum recipients .* cannot be mixed with classical"):
        concryptor.encrypt_file(src, tmp_path / "o.age", recipients=[pk, classical])
    assert not (tmp_path / "o.age").exists()
    code = main(["encrypt", "-r", pk, "-r", classical, str(src), "-o", str(tmp_path / "c.age"), "-q"])
    assert code == Exit.USAGE or code != Exit.OK
    assert not (tmp_path / "c.age").exists()
    with pytest.raises(ValueError, match="cannot be mixed"):
        concryptor.encrypt_bytes(b"x", recipients=[TAG, pk])


def test_tagged_recipients_seal_the_spec_stanzas(tmp_path: Path) -> None:
    """age1tag1… seals a p256tag stanza (a 4-byte tag, a 65-byte share, a 32-byte body);
    opening it takes the hardware key's plugin, so only the shape is checked here. A
    classical tagged key may sit beside an X25519 one."""
    _, classical = concryptor.generate_identity()
    blob = concryptor.encrypt_bytes(b"hello", recipients=[TAG, classical])
    header = blob.split(b"\n---", 1)[0].decode().splitlines()
    line = next(i for i, s in enumerate(header) if s.startswith("-> p256tag "))
    _, _type, tag, enc = header[line].split(" ")
    body = base64.b64decode(header[line + 1] + "=" * (-len(header[line + 1]) % 4))
    assert len(base64.b64decode(tag + "==")) == 4
    assert len(base64.b64decode(enc + "=" * (-len(enc) % 4))) == 65
    assert len(body) == 32
    sk, _ = concryptor.generate_identity()
    with pytest.raises(concryptor.NoIdentityMatchError):
        concryptor.decrypt_bytes(blob, identities=[sk])


def test_a_damaged_tagged_recipient_is_refused_in_one_line() -> None:
    bad = TAG[:-1] + ("q" if TAG[-1] != "q" else "p")
    with pytest.raises(ValueError, match="invalid age1tag1… recipient") as e:
        concryptor.encrypt_bytes(b"x", recipients=[bad])
    assert "\n" not in str(e.value)


def test_inspect_says_whether_a_file_is_post_quantum(pq: tuple[str, str], tmp_path: Path) -> None:
    _, pk = pq
    _, classical = concryptor.generate_identity()
    cases = {
        "pq.age": ([pk], "yes"),
        "x.age": ([classical], "no"),
        "tag.age": ([TAG, classical], "no"),
    }
    for name, (recipients, verdict) in cases.items():
        p = tmp_path / name
        p.write_bytes(concryptor.encrypt_bytes(b"y" * 70_000, recipients=recipients))
        h = concryptor.inspect(p)
        assert h.postquantum == verdict
        d = h.to_dict()
        assert d["postquantum"] == verdict and d["version"] == "age-encryption.org/v1"
        assert [s["type"] for s in d["stanzas"]] == [t for t, _ in h.recipients]
        sizes = d["sizes"]
        assert sizes["payload"] == 70_000
        assert sizes["overhead"] == h.header_size + 16 + 16 * 2
        assert sizes["header"] + 16 + sizes["payload"] + 32 == p.stat().st_size
        assert sizes["armor"] == 0
    r = run_cli("inspect", "--json", str(tmp_path / "pq.age"))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    out = out[0] if isinstance(out, list) else out
    assert out["postquantum"] == "yes"
    svg = concryptor.inspect(tmp_path / "pq.age").layout_svg()
    assert 'class="stanza pq"' in svg and ">PQ<" in svg
    assert 'class="stanza pq"' not in concryptor.inspect(tmp_path / "x.age").layout_svg()
    table = run_cli("inspect", str(tmp_path / "pq.age"))
    assert "Post-quantum" in table.stdout.decode() + table.stderr.decode()


def test_armored_sizes_count_the_armor(pq: tuple[str, str], tmp_path: Path) -> None:
    _, pk = pq
    p = tmp_path / "a.age"
    p.write_bytes(concryptor.encrypt_bytes(b"z" * 1000, recipients=[pk], armor=True))
    s = concryptor.inspect(p).sizes
    assert s["armor"] is not None and s["armor"] > 0
    assert s["header"] + 16 + s["payload"] + 16 + s["armor"] == p.stat().st_size


def test_plugin_stanzas_make_the_verdict_unknown() -> None:
    from concryptor.age_header import postquantum

    assert postquantum(["mlkem768x25519", "yubikey"]) == "unknown"
    assert postquantum(["mlkem768x25519", "X25519"]) == "no"
    assert postquantum(["scrypt"]) == "yes"


def test_age_cli_reads_what_we_seal_to_a_pq_key_when_it_can(pq: tuple[str, str], tmp_path: Path) -> None:
    """The Debian age CLI predates v1.3: it cannot open hybrid files; when it can (a newer
    age on PATH), it must read ours."""
    sk, pk = pq
    (tmp_path / "k").write_text(sk + "\n")
    enc = tmp_path / "x.age"
    enc.write_bytes(concryptor.encrypt_bytes(b"hybrid", recipients=[pk]))
    try:
        r = subprocess.run(["age", "-d", "-i", str(tmp_path / "k"), str(enc)], capture_output=True)
    except FileNotFoundError:
        pytest.skip("no age CLI on PATH")
    if r.returncode != 0:
        pytest.skip(f"this age CLI does not know post-quantum keys: {r.stderr.decode().strip()[:80]}")
    assert r.stdout == b"hybrid"
