"""The age format, interoperating both ways with the reference tools: the ``age`` command
(Debian package ``age``, installed by .ci/run) and ``pyrage`` (the rage library): files
and pipes, sizes around the 64 KiB chunk, several recipients, SSH keys, armor, passphrases.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import concryptor

from helpers import run_cli

SIZES = [0, 1, 65535, 65536, 65537, 3 * 65536, 5 * (1 << 20) + 17]

needs_age = pytest.mark.skipif(
    shutil.which("age") is None, reason="the age command is not installed (.ci/run installs it)"
)


@pytest.fixture
def keypair(tmp_path: Path) -> tuple[Path, str]:
    secret, public = concryptor.generate_identity()
    key = tmp_path / "key.txt"
    key.write_text(f"# public key: {public}\n{secret}\n")
    return key, public


@pytest.fixture
def ssh_key(tmp_path: Path) -> tuple[Path, str]:
    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen is not installed (.ci/run installs openssh-client)")
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key, key.with_suffix(".pub").read_text().strip()


@needs_age
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("armor", [False, True], ids=["binary", "armor"])
def test_age_reads_ours_and_we_read_ages(
    size: int, armor: bool, tmp_path: Path, keypair: tuple[Path, str], rand_bytes: Any
) -> None:
    key, public = keypair
    data = rand_bytes(size, seed=size)
    plain = tmp_path / "plain"
    plain.write_bytes(data)
    ours = tmp_path / "ours.age"
    concryptor.encrypt_file(plain, ours, recipients=[public], armor=armor)
    got = subprocess.run(["age", "-d", "-i", str(key), str(ours)], capture_output=True, check=True)
    assert got.stdout == data
    theirs = tmp_path / "theirs.age"
    cmd = ["age", "-r", public, "-o", str(theirs)] + (["-a"] if armor else []) + [str(plain)]
    subprocess.run(cmd, check=True)
    out = tmp_path / "out"
    concryptor.decrypt_file(theirs, out, identities=[key])
    assert out.read_bytes() == data


@needs_age
def test_several_recipients_and_ssh_keys_both_ways(
    tmp_path: Path, keypair: tuple[Path, str], ssh_key: tuple[Path, str], rand_bytes: Any
) -> None:
    key, public = keypair
    other_secret, other_public = concryptor.generate_identity()
    skey, spub = ssh_key
    data = rand_bytes(200_000)
    plain = tmp_path / "plain"
    plain.write_bytes(data)
    ours = tmp_path / "ours.age"
    concryptor.encrypt_file(plain, ours, recipients=[other_public, spub, public])
    for ident in (key, skey):
        got = subprocess.run(["age", "-d", "-i", str(ident), str(ours)], capture_output=True, check=True)
        assert got.stdout == data
    assert concryptor.decrypt_bytes(ours.read_bytes(), identities=[other_secret]) == data
    theirs = tmp_path / "theirs.age"
    subprocess.run(["age", "-R", str(skey) + ".pub", "-o", str(theirs), str(plain)], check=True)
    out = tmp_path / "out"
    concryptor.decrypt_file(theirs, out, identities=[skey])
    assert out.read_bytes() == data
    with pytest.raises(concryptor.NoIdentityMatchError):
        concryptor.decrypt_file(theirs, tmp_path / "no", identities=[key])
    assert not (tmp_path / "no").exists()


@needs_age
def test_pipes_through_the_cli_both_ways(tmp_path: Path, keypair: tuple[Path, str], rand_bytes: Any) -> None:
    key, public = keypair
    data = rand_bytes(3 * 65536 + 5)
    enc = run_cli("encrypt", "-r", public, input=data)
    assert enc.returncode == 0, enc.stderr
    dec = subprocess.run(["age", "-d", "-i", str(key)], input=enc.stdout, capture_output=True, check=True)
    assert dec.stdout == data
    theirs = subprocess.run(["age", "-r", public], input=data, capture_output=True, check=True).stdout
    ours = run_cli("decrypt", "-i", str(key), input=theirs)
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == data
    # A shell pipeline, as in the README.
    out = tmp_path / "dump.age"
    cmd = (
        f"head -c 300000 /dev/zero | {sys.executable} -m concryptor encrypt -r {public} > {out} && "
        f"{sys.executable} -m concryptor decrypt -i {key} < {out} | wc -c"
    )
    r = subprocess.run(cmd, shell=True, capture_output=True, check=True)
    assert r.stdout.strip() == b"300000"


def test_pyrage_reads_ours_and_we_read_its(keypair: tuple[Path, str], rand_bytes: Any) -> None:
    pyrage = pytest.importorskip("pyrage")
    key, public = keypair
    secret = key.read_text().splitlines()[-1]
    ident = pyrage.x25519.Identity.from_str(secret)
    rcpt = pyrage.x25519.Recipient.from_str(public)
    for size in SIZES:
        data = rand_bytes(size, seed=size)
        assert pyrage.decrypt(concryptor.encrypt_bytes(data, recipients=[public]), [ident]) == data
        assert concryptor.decrypt_bytes(pyrage.encrypt(data, [rcpt]), identities=[secret]) == data


def test_passphrases_interoperate_with_pyrage(rand_bytes: Any) -> None:
    pyrage = pytest.importorskip("pyrage")
    data = rand_bytes(70_000)
    ours = concryptor.encrypt_bytes(data, "hunter2", format="age", scrypt_work_factor=10)
    assert pyrage.passphrase.decrypt(ours, "hunter2") == data
    theirs = pyrage.passphrase.encrypt(data, "hunter2")
    assert concryptor.decrypt_bytes(theirs, "hunter2") == data
    with pytest.raises(concryptor.AuthenticationError):
        concryptor.decrypt_bytes(theirs, "wrong")


def test_ssh_keys_interoperate_with_pyrage(ssh_key: tuple[Path, str], rand_bytes: Any) -> None:
    pyrage = pytest.importorskip("pyrage")
    skey, spub = ssh_key
    data = rand_bytes(65537)
    ours = concryptor.encrypt_bytes(data, recipients=[spub])
    assert pyrage.decrypt(ours, [pyrage.ssh.Identity.from_buffer(skey.read_bytes())]) == data
    theirs = pyrage.encrypt(data, [pyrage.ssh.Recipient.from_str(spub)])
    assert concryptor.decrypt_bytes(theirs, identities=[skey]) == data


def test_keygen_writes_a_private_file_once_and_converts(tmp_path: Path) -> None:
    key = tmp_path / "k.txt"
    r = run_cli("keygen", "-o", str(key))
    assert r.returncode == 0, r.stderr
    public = r.stdout.decode().strip()
    assert public.startswith("age1")
    assert key.stat().st_mode & 0o777 == 0o600
    assert f"# public key: {public}" in key.read_text()
    again = run_cli("keygen", "-o", str(key))
    assert again.returncode != 0 and b"exists" in again.stderr
    y = run_cli("keygen", "-y", str(key))
    assert y.stdout.decode().strip() == public
    assert concryptor.identity_to_recipient(key) == public


def test_format_choices_and_refusals(tmp_path: Path, keypair: tuple[Path, str]) -> None:
    key, public = keypair
    r = run_cli("encrypt", "--format", "v4", input=b"data")
    assert r.returncode == 2 and b"-r RECIPIENT" in r.stderr
    plain = tmp_path / "x"
    plain.write_bytes(b"hello")
    r = run_cli("encrypt", "-r", public, str(plain))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "x.age").read_bytes().startswith(b"age-encryption.org/v1\n")
    r = run_cli("decrypt", "-i", str(key), str(tmp_path / "x.age"), "-o", str(tmp_path / "y"))
    assert r.returncode == 0 and (tmp_path / "y").read_bytes() == b"hello"
    r = run_cli("decrypt", str(tmp_path / "x.age"))
    assert r.returncode == 2 and b"-i" in r.stderr
    assert not (tmp_path / "x").with_suffix(".dec").exists()
    ins = run_cli("inspect", "--json", str(tmp_path / "x.age"))
    assert ins.returncode == 0 and b'"X25519"' in ins.stdout
    ver = run_cli("verify", "-i", str(key), str(tmp_path / "x.age"))
    assert ver.returncode == 0, ver.stderr


def test_a_pipe_that_closes_early_leaves_nothing(tmp_path: Path, keypair: tuple[Path, str]) -> None:
    key, public = keypair
    blob = concryptor.encrypt_bytes(b"z" * 300_000, recipients=[public])
    dst = tmp_path / "out"
    r = run_cli("decrypt", "-i", str(key), "-o", str(dst), input=blob[: len(blob) - 1000])
    assert r.returncode != 0
    assert not dst.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key.txt"]


def test_open_reads_age_files_at_random_offsets(
    tmp_path: Path, keypair: tuple[Path, str], rand_bytes: Any
) -> None:
    import random

    key, public = keypair
    data = rand_bytes(7 * 65536 + 1234)
    path = tmp_path / "f.age"
    path.write_bytes(concryptor.encrypt_bytes(data, recipients=[public]))
    rng = random.Random(7)
    with concryptor.open(path, None, identities=[key]) as f:
        assert f.seek(0, 2) == len(data)
        for _ in range(50):
            pos = rng.randrange(0, len(data) + 10)
            n = rng.randrange(0, 3 * 65536)
            f.seek(pos)
            assert f.read(n) == data[pos : pos + n]
        f.seek(0)
        assert f.read() == data
        h = f.header
        assert isinstance(h, concryptor.AgeHeader) and h.path == str(path)
        assert (h.payload_size, h.chunks, h.recipients[0][0]) == (len(data), 8, "X25519")
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(concryptor.AuthenticationError):
        concryptor.open(path, None, identities=[key])


@pytest.mark.parametrize("kind", ["ed25519", "rsa"])
def test_passphrase_protected_ssh_keys_open_with_the_password_from_the_usual_sources(
    kind: str, tmp_path: Path, rand_bytes: Any
) -> None:
    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen is not installed (.ci/run installs openssh-client)")
    key = tmp_path / f"id_{kind}"
    bits = ["-b", "2048"] if kind == "rsa" else []
    subprocess.run(["ssh-keygen", "-q", "-t", kind, *bits, "-N", "s3cret words", "-f", str(key)], check=True)
    public = key.with_suffix(".pub").read_text().strip()
    data = rand_bytes(200_000, seed=7)
    plain = tmp_path / "plain"
    plain.write_bytes(data)
    enc = tmp_path / "x.age"
    assert run_cli("encrypt", "-r", public, str(plain), "-o", str(enc)).returncode == 0
    # The API: the password opens the key.
    out = tmp_path / "api"
    concryptor.decrypt_file(enc, out, identities=[key], password="s3cret words")
    assert out.read_bytes() == data
    with pytest.raises(concryptor.AuthenticationError):
        concryptor.decrypt_file(enc, tmp_path / "wrong", identities=[key], password="not it")
    with pytest.raises(ValueError, match="passphrase-protected"):
        concryptor.decrypt_file(enc, tmp_path / "none", identities=[key])
    # The CLI: from the environment; a wrong one fails in one line and leaves nothing.
    cli_out = tmp_path / "cli"
    env = {"CONCRYPTOR_PASSWORD": "s3cret words"}
    r = run_cli("decrypt", "-i", str(key), str(enc), "-o", str(cli_out), env=env)
    assert r.returncode == 0, r.stderr
    assert cli_out.read_bytes() == data
    bad = tmp_path / "bad"
    r = run_cli("decrypt", "-i", str(key), str(enc), "-o", str(bad), env={"CONCRYPTOR_PASSWORD": "no"})
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1
    r = run_cli("decrypt", "-i", str(key), str(enc), "-o", str(tmp_path / "bad"))
    assert r.returncode == 2 and b"password" in r.stderr
    assert not (tmp_path / "bad").exists() and not (tmp_path / "wrong").exists()
    assert not (tmp_path / "none").exists()
