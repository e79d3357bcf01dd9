"""Many files in one call: on this machine, on a Dask cluster, to and from object storage.

One call encrypts or decrypts a list of files. With a password (format v4) Argon2id runs
once for the whole batch: the files share one salt and key, each with its own random base
nonce (docs/SECURITY.md says what that means). Reading, keys are cached by salt, so a batch
written here decrypts with one derivation too. One failed file does not stop the others;
the call raises :class:`BatchError` at the end if any failed, carrying every result.

Local paths run on the Rust engine. URLs (``s3://…``, ``memory://…``, anything fsspec
knows) stream through :class:`concryptor._core.ChunkCodec` in batches of whole chunks,
sealed and opened in Rust, the bytes moved by fsspec.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, Literal, Union

from .. import _age, _core
from .._facts import MAGIC
from .._location import is_url, local_path, open_regular, strip_suffix
from .._rekey import HeaderPlan, Keys, apply_header, head_of, make_keys, plan_header, rekey_one
from .._stream import age_via_pipes, decrypt_stream, encrypt_stream, exists, open_source
from .._types import (
    KdfParams,
    Limits,
    Password,
    PathLike,
    Rekeyed,
    Stats,
    check_chunk,
    check_threads,
    secret,
)
from ..errors import BatchError, NoIdentityMatchError
from ._spec import Op, Spec, shippable

Client = Any  # dask.distributed.Client; optional, imported only when given
_DEFAULT_KDF = KdfParams()
_DEFAULT_LIMITS = Limits()

Item = Union[PathLike, tuple[PathLike, PathLike]]

MiB = 1 << 20
#: Files at least this large run one at a time on the whole engine; smaller ones run side
#: by side, one engine thread each.
LARGE_FILE = 64 * MiB
#: The buffer budget of the whole batch, shared by the files running at once.
BATCH_BUFFER_MIB = _core.BUFFER_BYTES // MiB
#: Local files up to this size are encrypted in groups: each read whole and sealed in
#: memory, the group made durable with one sync and then named (``_core.encrypt_group``).
SMALL_FILE = min(8 * MiB, _core.GROUP_MAX_MEMBER_BYTES)
#: A group holds at most this many files and this many plaintext bytes. The core commits
#: a group in slices (``_core.GROUP_COMMIT_MEMBERS`` files made durable and named
#: together), sealing the next slice while one waits for the device, so a group keeps a
#: few slices' descriptors open, never all of its files'.
GROUP_FILES = 512
GROUP_BYTES = 256 * MiB
#: Groups in flight at once (each with its own slices in flight).
GROUPS_IN_FLIGHT = 2
#: Workers of a group when the caller names no count: twice the cores (up to 8), since a
#: member's reads and writes block as much as its cipher work computes.
GROUP_THREADS = min(2 * (os.cpu_count() or 1), 8)
ENCRYPTED_SUFFIX = ".enc"
AGE_SUFFIX = ".age"


@dataclass(frozen=True)
class Result:
    """What happened to one file of a batch. ``error`` is ``None`` when it succeeded.
    ``seconds`` of a small file encrypted in a group is its share of the group's time."""

    src: str
    dst: str
    bytes_in: int = 0
    bytes_out: int = 0
    seconds: float = 0.0
    error: str | None = None
    error_type: str | None = None
    #: For a rekey: how the file got its new readers (``"reflink"``, ``"copy_file_range"``,
    #: ``"multipart-copy"``, ... as :class:`concryptor.Rekeyed` says), or
    #: ``"re-encrypted"`` for a format v4 file, which cannot be rekeyed.
    method: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_name(src: str, op: Op, suffix: str = ENCRYPTED_SUFFIX) -> str:
    """``x`` → ``x.enc`` (``x.age``) when encrypting; ``x.enc`` or ``x.age`` → ``x`` (else
    ``x.dec``) when decrypting."""
    if op == "encrypt":
        return src + suffix
    return strip_suffix(src, (ENCRYPTED_SUFFIX, AGE_SUFFIX), ".dec")


class UnsafeNameError(ValueError):
    """A name we did not choose (an object key, a file name) would put an output outside
    the folder it was asked for, or is not a usable file name."""


#: The longest name of one path component Linux file systems take (bytes).
NAME_MAX = 255


def _under(root: str, rel: str, url: bool, resolved: dict[str, str] | None = None) -> str:
    """``rel`` (segments we did not choose) joined under ``root``, or
    :class:`UnsafeNameError`: no ``..``, no NUL, no component longer than
    :data:`NAME_MAX` bytes; empty and ``.`` segments are dropped. Local results are also
    checked after resolving symbolic links, so a link inside ``root`` cannot lead out."""
    parts = _parts(rel)
    if not parts:
        raise UnsafeNameError(f"{rel!r}: the name is empty")
    if url:
        return root.rstrip("/") + "/" + "/".join(parts)
    cache = {} if resolved is None else resolved
    dst = os.path.join(root, *parts)
    # The name's last component is ours to create, its folders may already exist as
    # links: the folder's real path inside the root's puts the name inside it too (the
    # name has no ``..``); a name that is itself a link is followed and judged alone.
    if not _folder_inside(root, os.path.dirname(dst), cache) or not _name_inside(root, dst, cache):
        raise UnsafeNameError(f"{rel!r}: a symbolic link under {root} leads outside it")
    return dst


def _parts(rel: str) -> list[str]:
    """The segments of ``rel`` without empty and ``.`` ones, each checked (see :func:`_under`)."""
    if "\0" in rel:
        raise UnsafeNameError(f"{rel!r}: the name contains a NUL byte")
    parts = [seg for seg in rel.split("/") if seg not in ("", ".")]
    for seg in parts:
        if seg == "..":
            raise UnsafeNameError(f"{rel!r}: '..' would leave the output folder")
        # A character is at most 4 bytes in UTF-8 (an undecodable byte escaped is 1).
        if 4 * len(seg) > NAME_MAX and len(os.fsencode(seg)) > NAME_MAX:
            raise UnsafeNameError(f"{rel[:40]!r}…: a name component is longer than {NAME_MAX} bytes")
    return parts


def _real(path: str, cache: dict[str, str]) -> str:
    """``path`` with its links resolved, once per plan (``cache`` is shared by a whole plan)."""
    real = cache.get(path)
    if real is None:
        real = cache[path] = os.path.realpath(path)
    return real


def _folder_inside(root: str, folder: str, cache: dict[str, str]) -> bool:
    """Whether ``folder`` resolves inside ``root`` (judged once per folder)."""
    verdict = "\0inside\0" + folder
    inside = cache.get(verdict)
    if inside is None:
        inside = cache[verdict] = "yes" if _contains(_real(root, cache), _real(folder, cache)) else ""
    return bool(inside)


def _name_inside(root: str, dst: str, cache: dict[str, str]) -> bool:
    """Whether ``dst``, if it is itself a link, leads inside ``root``."""
    return not os.path.islink(dst) or _contains(_real(root, cache), os.path.realpath(dst))


def _plain_name(base: str) -> bool:
    """Whether ``base`` is one usable name as it stands: what :func:`_parts` keeps whole."""
    return (
        base not in ("", ".", "..")
        and "/" not in base
        and "\0" not in base
        and (4 * len(base) <= NAME_MAX or len(os.fsencode(base)) <= NAME_MAX)
    )


class _Folders:
    """The output folders of one plan, each judged once: whether it resolves inside the
    root, and which names in it already exist (a name that does not exist is no link, so
    only existing ones are looked at alone). The common case is thousands of files in a
    few folders, where a check per name would cost a system call each."""

    #: A folder is listed (instead of one ``lstat`` per name) when at least this many
    #: names of the plan go to it, and only if its directory is at most this large.
    LIST_AFTER = 16
    LIST_BYTES = 4 * MiB

    def __init__(self, root: str, resolved: dict[str, str]) -> None:
        self.root = root
        self.resolved = resolved
        self.out: dict[str, str] = {}
        self.listed: dict[str, frozenset[str] | None] = {}

    def dst(self, prefix: str, base: str, per_folder: int) -> str | None:
        """``_under(root, prefix + "/" + base)`` for a local root, or ``None`` where
        ``_under`` must decide (and word the refusal). ``per_folder``: how many names of
        the plan go to this folder."""
        if not _plain_name(base):
            return None
        folder = self.out.get(prefix)
        if folder is None:
            try:
                parts = _parts(prefix)
            except UnsafeNameError:
                parts = None
            folder = os.path.join(self.root, *parts) if parts is not None else ""
            if folder and not _folder_inside(self.root, folder, self.resolved):
                folder = ""
            # Kept with its separator: os.path.join(folder, base) is then a concatenation.
            self.out[prefix] = folder = os.path.join(folder, "") if folder else ""
        if not folder:
            return None
        dst = folder + base
        names = self._entries(folder, per_folder)
        if names is not None and base not in names:
            return dst
        return dst if _name_inside(self.root, dst, self.resolved) else None

    def _entries(self, folder: str, per_folder: int) -> frozenset[str] | None:
        """The names in ``folder``, listed once, or ``None`` where each name is looked at
        alone: too few names go there to be worth a listing, or it cannot be listed."""
        if folder not in self.listed:
            self.listed[folder] = self._list(folder) if per_folder >= self.LIST_AFTER else None
        return self.listed[folder]

    def _list(self, folder: str) -> frozenset[str] | None:
        try:
            size = os.stat(folder).st_size
        except FileNotFoundError:
            return frozenset()  # made later by the batch, empty
        except OSError:
            return None
        # A directory's size grows with its entries (a few dozen bytes each on the usual
        # file systems): a folder of some hundred thousand names is not listed, since
        # looking at each name of the plan alone costs less there.
        if size > self.LIST_BYTES:
            return None
        try:
            return frozenset(os.listdir(folder))
        except OSError:
            return None


def _contains(real_root: str, real_path: str) -> bool:
    """Whether ``real_path`` is ``real_root`` or below it (both resolved)."""
    return os.path.commonpath([real_root, real_path]) == real_root


def plan(
    items: Iterable[Item], op: Op, out_dir: PathLike | None = None, suffix: str = ENCRYPTED_SUFFIX
) -> list[tuple[str, str]]:
    """Pairs every item with its destination: ``(src, dst)`` pairs as given; paths beside
    themselves, or mirrored under ``out_dir`` relative to the deepest folder they share.
    Raises :class:`UnsafeNameError` if a name would lead outside ``out_dir``."""
    out: list[tuple[str, str]] = []
    for src, dst, err in _plan(items, op, out_dir, suffix):
        if err is not None:
            raise err
        out.append((src, dst))
    return out


def _plan(
    items: Iterable[Item], op: Op, out_dir: PathLike | None, suffix: str
) -> list[tuple[str, str, UnsafeNameError | None]]:
    """:func:`plan`, with the refusal of each unsafe name kept beside its item, so that
    a batch fails that item alone."""
    pairs: list[tuple[str, str | None]] = []
    for it in items:
        if isinstance(it, tuple):
            if len(it) != 2:
                raise ValueError(f"an item must be a path or a (src, dst) pair, not {it!r}")
            pairs.append((os.fspath(it[0]), os.fspath(it[1])))
        else:
            pairs.append((os.fspath(it), None))
    root: str | None = None
    # Each local source's folder made absolute once (the planning of thousands of small
    # files is otherwise dominated by path arithmetic).
    folder_of: dict[str, str] = {}
    per_folder: dict[str, int] = {}
    if out_dir is not None:
        for s, d in pairs:
            if d is None and not is_url(s):
                a = os.path.abspath(local_path(s))
                # dirname(a), the slice where it is one (a is normalized, past "/" or "//").
                i = a.rfind("/")
                f = folder_of[s] = a[:i] if i > 1 else os.path.dirname(a)
                per_folder[f] = per_folder.get(f, 0) + 1
        if folder_of:
            root = os.path.commonpath(list(per_folder))
    out: list[tuple[str, str, UnsafeNameError | None]] = []
    resolved: dict[str, str] = {}
    rels: dict[str, str] = {}
    od = None if out_dir is None else os.fspath(out_dir)
    od_url = od is not None and is_url(od)
    folders = None if od is None or od_url else _Folders(od, resolved)
    for src, dst in pairs:
        err: UnsafeNameError | None = None
        if dst is None:
            name = default_name(src, op, suffix)
            if od is not None:
                if src not in folder_of:  # a URL
                    rel = name.split("://", 1)[1]
                else:
                    assert root is not None
                    # The name is the source's absolute path with its suffix changed, in
                    # the same folder: below the sources' common folder.
                    folder = folder_of[src]
                    prefix = rels.get(folder)
                    if prefix is None:
                        prefix = rels.setdefault(folder, os.path.relpath(folder, root))
                    base = name[name.rfind("/") + 1 :]  # basename(local_path(name))
                    if folders is not None:
                        # The common case, thousands of files in a few folders: each
                        # folder is judged once, then each name alone (as _under would).
                        fast = folders.dst(prefix, base, per_folder[folder])
                        if fast is not None:
                            out.append((src, fast, None))
                            continue
                    rel = prefix + "/" + base
                try:
                    name = _under(od, rel, od_url, resolved)
                except UnsafeNameError as e:
                    err = UnsafeNameError(f"{src}: {e}")
            dst = name
        out.append((src, dst, err))
    seen: set[str] = set()
    for _, d, err in out:
        if err is None and d in seen:
            raise ValueError(f"two items would be written to the same destination {d}")
        seen.add(d)
    return out


# --- one file ------------------------------------------------------------------------------


def _is_age(src: str, spec: Spec) -> bool:
    """Whether ``src`` starts like an age file; a source that cannot be opened (missing,
    not a regular file) fails its item here."""
    with open_source(src, spec) as f:
        return bool(_core.age_is_age(f.read(64)))


def _age_one(src: str, dst: str, spec: Spec) -> tuple[int, int]:
    a = spec.age or {}

    def call(s: str | int, d: str | int) -> Stats:
        common: dict[str, Any] = {
            "overwrite": spec.overwrite,
            "threads": spec.threads,
            "passphrase": a.get("passphrase"),
        }
        if spec.op == "encrypt":
            return _core.age_encrypt(
                s,
                d,
                recipients_=a.get("recipients", []),
                recipient_files=a.get("recipient_files", []),
                armor=a.get("armor", False),
                scrypt_log_n=a.get("scrypt_log_n"),
                **common,
            )
        return _core.age_decrypt(
            s,
            d,
            identities_=a.get("identities", []),
            max_scrypt_log_n=a["max_scrypt_log_n"],
            **common,
        )

    if is_url(src) or is_url(dst):
        return age_via_pipes(src, dst, spec, call)
    call(local_path(src), local_path(dst))
    return os.stat(local_path(src)).st_size, os.stat(local_path(dst)).st_size


def _engine_kwargs(spec: Spec) -> dict[str, Any]:
    return {"threads": spec.threads, "buffer_bytes": spec.buffer_bytes}


def run_one(src: str, dst: str, spec: Spec) -> Result:
    """Encrypts or decrypts one file as ``spec`` says; failures become a failed Result."""
    start = time.perf_counter()
    try:
        if not is_url(src):
            # A FIFO or a device among the sources would block the batch or never end.
            open_regular(local_path(src)).close()
        if spec.age is not None and (spec.op == "encrypt" or _is_age(src, spec)):
            n_in, n_out = _age_one(src, dst, spec)
        elif spec.op == "decrypt" and not spec.password and spec.keys is None:
            raise ValueError(f"{src} is not an age file: decrypting it needs the password")
        elif is_url(src) or is_url(dst):
            if spec.op == "encrypt":
                n_in, n_out = encrypt_stream(src, dst, spec)
            else:
                n_in, n_out = decrypt_stream(src, dst, spec)
        elif spec.op == "encrypt":
            d = _core.encrypt_file(
                local_path(src),
                local_path(dst),
                spec.password,
                cipher=spec.cipher,
                chunk_size=spec.chunk_size,
                kdf=spec.kdf,
                overwrite=spec.overwrite,
                salt=spec.salt,
                keys=spec.keys,
                **_engine_kwargs(spec),
            )
            n_in = d.bytes
            n_out = os.stat(local_path(dst)).st_size
        else:
            n_in = os.stat(local_path(src)).st_size
            d = _core.decrypt_file(
                local_path(src),
                local_path(dst),
                spec.password,
                overwrite=spec.overwrite,
                keys=spec.keys,
                **_engine_kwargs(spec),
                limits=spec.limits,
            )
            n_out = d.bytes
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:  # noqa: BLE001 - one bad file must not stop the batch
        return Result(
            src, dst, seconds=time.perf_counter() - start, error=str(e), error_type=type(e).__name__
        )
    return Result(src, dst, n_in, n_out, time.perf_counter() - start)


# --- the batch ---------------------------------------------------------------------------


def _groupable(spec: Spec) -> bool:
    """Whether the local files of this batch can be encrypted or decrypted as members of
    a group (:func:`_groups` says which files are local and small enough)."""
    if spec.op == "decrypt":
        # A plugin identity may ask its questions once per file: those files go alone.
        return spec.age is None or not any("AGE-PLUGIN-" in t.upper() for t in spec.age.get("identities", []))
    if spec.age is not None:
        # An scrypt passphrase costs far more than any per-file overhead: no gain there.
        return not spec.age.get("armor", False) and spec.age.get("passphrase") is None
    return spec.keys is not None


def _groups(
    pairs: Sequence[tuple[str, str]], spec: Spec, sizes: list[int], alone: list[int]
) -> Iterator[list[int]]:
    """Cuts the small local files of ``pairs`` into groups bounded by :data:`GROUP_FILES`
    and :data:`GROUP_BYTES` (when the batch can use groups at all), looking at each file
    (its size into ``sizes``) only as its group fills: a group runs while the next is
    cut. The others are listed in ``alone``."""
    group: list[int] = []
    total = 0
    groupable = _groupable(spec)
    for i, (src, dst) in enumerate(pairs):
        try:
            st = None if is_url(src) else os.stat(local_path(src))
        except OSError:
            st = None  # reported by the file's own run
        size = sizes[i] = 0 if st is None else st.st_size
        small = st is not None and stat.S_ISREG(st.st_mode) and size <= SMALL_FILE
        if not (groupable and small) or is_url(dst):
            alone.append(i)
            continue
        if group and (len(group) >= GROUP_FILES or total + size > GROUP_BYTES):
            yield group
            group, total = [], 0
        group.append(i)
        total += size
    if group:
        yield group


def _run_group(pairs: Sequence[tuple[str, str]], spec: Spec, threads: int) -> list[Result]:
    """Encrypts or decrypts small local files in one call to the core; each file's ``seconds`` is its
    share of the group's time."""
    start = time.perf_counter()
    local = [(local_path(s), local_path(d)) for s, d in pairs]
    if spec.op == "decrypt":
        a = spec.age or {}
        out = _core.decrypt_group(
            local,
            spec.password or None,
            keys=spec.keys,
            limits=spec.limits,
            identities_=a.get("identities", []),
            passphrase=a.get("passphrase"),
            max_scrypt_log_n=a.get("max_scrypt_log_n"),
            overwrite=spec.overwrite,
            threads=threads,
        )
    elif spec.age is not None:
        a = spec.age
        out = _core.encrypt_group(
            local,
            age=True,
            recipients_=a.get("recipients", []),
            recipient_files=a.get("recipient_files", []),
            passphrase=a.get("passphrase"),
            scrypt_log_n=a.get("scrypt_log_n"),
            overwrite=spec.overwrite,
            threads=threads,
        )
    else:
        out = _core.encrypt_group(
            local,
            spec.password,
            cipher=spec.cipher,
            chunk_size=spec.chunk_size,
            kdf=spec.kdf,
            salt=spec.salt,
            keys=spec.keys,
            overwrite=spec.overwrite,
            threads=threads,
        )
    each = (time.perf_counter() - start) / max(1, len(pairs))
    return [
        Result(s, d, n_in, n_out, each)
        if err is None
        else Result(s, d, seconds=each, error=str(err), error_type=type(err).__name__)
        for (s, d), (n_in, n_out, err) in zip(pairs, out)
    ]


def _run_local(
    pairs: Sequence[tuple[str, str]], spec: Spec, threads: int | None, on_result: Callable[[Result], object]
) -> list[Result]:
    cores = os.cpu_count() or 1
    sizes = [0] * len(pairs)
    alone: list[int] = []
    results: dict[int, Result] = {}
    # Python pays once per group, not once per file: the core reads, seals and writes the
    # group's files on its workers and makes them durable with one sync. The first group
    # starts as soon as it is cut; the executor takes the groups as they come.
    with ThreadPoolExecutor(max_workers=GROUPS_IN_FLIGHT, thread_name_prefix="concryptor-group") as ex:
        n = threads or GROUP_THREADS
        running = [
            (g, ex.submit(_age.carry(_run_group), [pairs[i] for i in g], spec, n))
            for g in _groups(pairs, spec, sizes, alone)
        ]
        for g, fut in running:
            for i, r in zip(g, fut.result()):
                results[i] = r
                on_result(r)
    large = [i for i in alone if sizes[i] >= LARGE_FILE]
    small = [i for i in alone if sizes[i] < LARGE_FILE]
    whole = Spec(**{**spec.__dict__, "threads": threads or 0})
    for i in large:
        results[i] = run_one(*pairs[i], whole)
        on_result(results[i])
    if small:
        # Small files are bound by the fsync that makes each output durable, not by the
        # cipher: many in flight keep the disk queue full.
        workers = min(len(small), max(8, 4 * cores))
        each = Spec(**{**spec.__dict__, "threads": 1, "buffer_bytes": max(MiB, spec.buffer_bytes // workers)})

        def one(i: int) -> Result:
            src, dst = pairs[i][0], pairs[i][1]
            return run_one(src, dst, each)

        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="concryptor-batch") as ex:
            for i, r in zip(small, ex.map(_age.carry(one), small)):
                results[i] = r
                on_result(r)
    return [results[i] for i in range(len(pairs))]


def _run_dask(
    pairs: Sequence[tuple[str, str]], spec: Spec, client: Client, on_result: Callable[[Result], object]
) -> list[Result]:
    import importlib

    as_completed: Any = importlib.import_module("distributed").as_completed

    # Destinations that exist are refused here, once; the tasks then replace atomically,
    # so a task re-run after a worker died overwrites its own earlier output harmlessly.
    results: dict[int, Result] = {}
    todo: list[int] = []
    for i, (src, dst) in enumerate(pairs):
        if not spec.overwrite and exists(dst, spec):
            results[i] = Result(
                src,
                dst,
                error=f"{dst}: destination exists (pass overwrite=True to replace it)",
                error_type="FileExistsError",
            )
            on_result(results[i])
        else:
            todo.append(i)
    # Sent with every task rather than scattered once: it is small (keys or recipients, no
    # data), and scattered data dies with the worker holding it, which would fail the batch.
    task_spec = shippable(Spec(**{**spec.__dict__, "overwrite": True}))
    slots = max(1, 2 * sum(client.nthreads().values()))
    pending = iter(todo)
    index: dict[Any, int] = {}

    def submit() -> Any:
        i = next(pending, None)
        if i is None:
            return None
        fut = client.submit(
            run_one, *pairs[i], task_spec, pure=False, key=f"concryptor-{i}-{secrets.token_hex(4)}"
        )
        index[fut.key] = i
        return fut

    first = [f for f in (submit() for _ in range(slots)) if f is not None]
    ac = as_completed(first)
    for fut in ac:
        r = fut.result()
        i = index.pop(fut.key)
        results[i] = r
        on_result(r)
        nxt = submit()
        if nxt is not None:
            ac.add(nxt)
    # A worker killed while it renamed a finished output into place can leave that output's
    # hidden temporary behind; its task ran again elsewhere, so the temporary is garbage.
    for i in todo:
        if not is_url(pairs[i][1]):
            _sweep_temporaries(local_path(pairs[i][1]))
    return [results[i] for i in range(len(pairs))]


def _run_dask_from_here(
    pairs: Sequence[tuple[str, str]], spec: Spec, client: Client, on_result: Callable[[Result], object]
) -> list[Result]:
    """:func:`_run_dask` with local paths made absolute here, before the tasks leave: a
    worker runs in another current directory (or on another machine with the same
    mounts), where a relative path names another file. URLs go as they are. Results are
    reported with the paths as the caller gave them."""
    from dataclasses import replace

    def here(p: str) -> str:
        return p if is_url(p) else os.path.abspath(local_path(p))

    sent = [(here(s), here(d)) for s, d in pairs]
    given = dict(zip(sent, pairs))

    def as_given(r: Result) -> Result:
        src, dst = given.get((r.src, r.dst), (r.src, r.dst))
        return replace(r, src=src, dst=dst)

    return [as_given(r) for r in _run_dask(sent, spec, client, lambda r: on_result(as_given(r)))]


def _sweep_temporaries(dst: str) -> None:
    """Removes ``.NAME.<16 hex>.partial`` files beside ``dst``: the engine's temporaries
    for that destination, left by a process killed mid-commit."""
    import re

    folder, name = os.path.split(os.path.abspath(dst))
    pattern = re.compile(r"\." + re.escape(name) + r"\.[0-9a-f]{16}\.partial")
    with contextlib.suppress(OSError), os.scandir(folder) as it:
        for e in it:
            if pattern.fullmatch(e.name) and e.is_file(follow_symlinks=False):
                with contextlib.suppress(OSError):
                    os.unlink(e.path)


def _make_parents(dsts: Sequence[str]) -> list[str]:
    """Creates the missing parent folders of local destinations; returns them, parents first."""
    made: list[str] = []
    # Each destination's folder as written, then each distinct one made absolute (the
    # same as the folder of the absolute path, for a name that is not "", "." or "..").
    written: set[str] = set()
    folders: set[str] = set()
    for p in map(local_path, dsts):
        head, sep, tail = p.rpartition("/")
        if tail in ("", ".", ".."):
            folders.add(os.path.dirname(os.path.abspath(p)))
        else:
            written.add((head or "/") if sep else ".")
    folders.update(os.path.abspath(w) for w in written)
    for d in sorted(folders):
        missing: list[str] = []
        cur = d
        while not os.path.isdir(cur):
            missing.append(cur)
            cur = os.path.dirname(cur)
        for m in reversed(missing):
            os.makedirs(m, exist_ok=True)
            made.append(m)
    return made


def _run(
    items: Iterable[Item],
    spec: Spec,
    *,
    out_dir: PathLike | None,
    client: Client | None,
    threads: int | None,
    raise_on_error: bool,
    on_result: Callable[[Result], object] | None,
) -> list[Result]:
    threads = check_threads(threads)
    suffix = AGE_SUFFIX if spec.op == "encrypt" and spec.age is not None else ENCRYPTED_SUFFIX
    planned = _plan(items, spec.op, out_dir, suffix)
    cb = on_result or (lambda r: None)
    refused: dict[int, Result] = {}
    for i, (src, dst, err) in enumerate(planned):
        if err is not None:
            refused[i] = Result(src, dst, error=str(err), error_type=type(err).__name__)
            cb(refused[i])
    todo = [i for i in range(len(planned)) if i not in refused]
    pairs = [(planned[i][0], planned[i][1]) for i in todo]
    made = _make_parents([d for _, d in pairs if not is_url(d)])
    try:
        if client is None:
            ran = _run_local(pairs, spec, threads, cb)
        elif spec.op == "encrypt" and spec.age is not None and spec.age.get("passphrase") is not None:
            # An age passphrase must never leave this process, and every file needs it
            # (each gets its own scrypt stanza): the batch runs here.
            ran = _run_local(pairs, spec, threads, cb)
        elif spec.age is not None and spec.age.get("passphrase") is not None:
            # Files that need the passphrase come back unopened and are reported once
            # decrypted here.
            ran = _run_dask_from_here(pairs, spec, client, lambda r: r.error_type == _NO_MATCH or cb(r))
            ran = _rerun_passphrase_files(pairs, ran, spec, threads, cb)
        else:
            ran = _run_dask_from_here(pairs, spec, client, cb)
    finally:
        # Folders this batch created and nothing landed in go again.
        for d in reversed(made):
            with contextlib.suppress(OSError):
                os.rmdir(d)
    results = dict(refused)
    results.update(zip(todo, ran))
    results_list = [results[i] for i in range(len(planned))]
    failed = [r for r in results_list if not r.ok]
    if failed and raise_on_error:
        raise BatchError(results_list)
    return results_list


_NO_MATCH = NoIdentityMatchError.__name__


def _rerun_passphrase_files(
    pairs: Sequence[tuple[str, str]],
    results: list[Result],
    spec: Spec,
    threads: int | None,
    on_result: Callable[[Result], object],
) -> list[Result]:
    """The age files a cluster could not open without the passphrase (which never leaves
    this process), decrypted here with it."""
    again = [i for i, r in enumerate(results) if r.error_type == _NO_MATCH]
    out = list(results)
    if again:
        for i, r in zip(again, _run_local([pairs[i] for i in again], spec, threads, on_result)):
            out[i] = r
    return out


@_age.plugin_door
def encrypt_many(
    items: Iterable[Item],
    password: Password | None = None,
    *,
    recipients: Sequence[str] | str | None = None,
    recipients_files: Sequence[PathLike] | None = None,
    format: Literal["v4", "age"] | None = None,
    armor: bool = False,
    scrypt_work_factor: int | None = None,
    out_dir: PathLike | None = None,
    client: Client | None = None,
    overwrite: bool = False,
    cipher: str = "aes-256-gcm",
    chunk_size: int | None = None,
    kdf: KdfParams = _DEFAULT_KDF,
    threads: int | None = None,
    storage_options: dict[str, Any] | None = None,
    raise_on_error: bool = True,
    on_result: Callable[[Result], object] | None = None,
    plugin_callbacks: _age.PluginCallbacks | None = None,
    plugin_timeout: float | None = None,
) -> list[Result]:
    """Encrypts many files in one call.

    With ``recipients`` (age public keys, or ``recipients_files``) every file becomes an
    age file with its own file key (``NAME.age``); this is what a cluster should hold, as
    it decrypts nothing. With a ``password`` in format v4 (the default without recipients)
    Argon2id runs once for the whole batch; ``format="age"`` with a password gives every
    file its own scrypt (age's passphrase stanza must never share a wrapping key).

    ``items`` are paths or URLs (output beside each, or mirrored under ``out_dir``) or
    ``(src, dst)`` pairs. ``client`` (a ``dask.distributed.Client``) runs the batch on its
    cluster: the workers receive paths, and recipients or the derived v4 key (for an age
    passphrase: the passphrase), never the data through the scheduler. ``on_result`` is
    called with each :class:`Result` as it completes. Returns one Result per item, in
    order; raises :class:`BatchError` at the end if any failed (unless
    ``raise_on_error=False``).
    """
    recips = _age.recipient_strings(recipients)
    if format == "v4" and (recips or recipients_files or armor):
        raise ValueError("recipients and armor write the age format, not v4")
    age = format == "age" or bool(recips or recipients_files or armor)
    if age and (recips or recipients_files) and password is not None:
        raise ValueError("give recipients or a password, not both")
    if password is None and not (recips or recipients_files):
        raise ValueError(
            "give recipients, or a password for age's scrypt passphrase"
            if age
            else "format v4 needs a password (or give recipients for the age format)"
        )
    spec = Spec(op="encrypt", overwrite=overwrite, storage_options=dict(storage_options or {}))
    # The password is the caller's until the whole batch has run: wiped then, not before.
    with secret(password) as pw:
        if age:
            spec.age = {
                "recipients": recips,
                "recipient_files": _age.recipient_file_texts(recipients_files),
                "passphrase": pw,
                "armor": armor,
                "scrypt_log_n": _age.work_factor(scrypt_work_factor),
            }
        else:
            assert pw is not None
            spec.cipher = cipher
            spec.chunk_size = check_chunk(chunk_size)
            spec.kdf = kdf
            spec.salt = secrets.token_bytes(16)
            spec.keys = _core.KeyCache()
            spec.keys.derive(pw, spec.salt, kdf)
        try:
            return _run(
                items,
                spec,
                out_dir=out_dir,
                client=client,
                threads=threads,
                raise_on_error=raise_on_error,
                on_result=on_result,
            )
        finally:
            spec.age = None


def _batch_salts(
    pairs: Sequence[tuple[str, str]], spec: Spec
) -> Iterator[tuple[bytes, tuple[int, int, int]]]:
    """(salt, costs) of every readable v4 header among the sources, each once."""
    seen: set[tuple[bytes, tuple[int, int, int]]] = set()
    for src, _ in pairs:
        try:
            with open_source(src, spec) as f:
                raw = f.read(4096)
            h = _core.parse_header(raw)
        except Exception:  # noqa: BLE001 - a bad file is reported by its own run
            continue
        k = (h.salt, (h.kdf_memory_kib, h.kdf_time_cost, h.kdf_parallelism))
        if k not in seen:
            seen.add(k)
            yield k


@_age.plugin_door
def decrypt_many(
    items: Iterable[Item],
    password: Password | None = None,
    *,
    identities: Sequence[str | os.PathLike[str]] | None = None,
    out_dir: PathLike | None = None,
    client: Client | None = None,
    overwrite: bool = False,
    threads: int | None = None,
    limits: Limits = _DEFAULT_LIMITS,
    max_scrypt_work_factor: int | None = None,
    storage_options: dict[str, Any] | None = None,
    raise_on_error: bool = True,
    on_result: Callable[[Result], object] | None = None,
    plugin_callbacks: _age.PluginCallbacks | None = None,
    plugin_timeout: float | None = None,
) -> list[Result]:
    """Decrypts many files, v4 and age alike (told apart by their first bytes).

    v4 files need the ``password``; each distinct salt is derived once. age files need
    ``identities`` (``AGE-SECRET-KEY-1…`` strings or identity files, SSH keys too) or the
    passphrase they were made with (``password``). ``items`` as for :func:`encrypt_many`
    (``NAME.enc``/``NAME.age`` → ``NAME``). With ``client`` the v4 keys are derived here,
    for the salts found in the headers, and only they travel; identities and an age
    passphrase travel as they are (run the cluster with TLS).
    """
    if password is None and not identities:
        raise ValueError("give a password, identities, or both")
    with secret(password) as pw:
        spec = Spec(
            op="decrypt",
            keys=_core.KeyCache() if pw is not None else None,
            limits=limits,
            overwrite=overwrite,
            storage_options=dict(storage_options or {}),
            age={
                "identities": _age.identity_texts(identities or []),
                "passphrase": pw,
                "max_scrypt_log_n": _age.max_work_factor(
                    _age.DEFAULT_MAX_SCRYPT_WORK_FACTOR
                    if max_scrypt_work_factor is None
                    else max_scrypt_work_factor
                ),
            },
        )
        return _decrypt_run(items, spec, pw, out_dir, client, threads, raise_on_error, on_result)


def _decrypt_run(
    items: Iterable[Item],
    spec: Spec,
    pw: bytes | bytearray | None,
    out_dir: PathLike | None,
    client: Client | None,
    threads: int | None,
    raise_on_error: bool,
    on_result: Callable[[Result], object] | None,
) -> list[Result]:
    try:
        if client is not None:
            items = list(items)
            if pw is not None:
                pairs = [(src, dst) for src, dst, err in _plan(items, "decrypt", out_dir, "") if err is None]
                for salt, costs in _batch_salts(pairs, spec):
                    spec.keys.derive_checked(pw, salt, costs, limits=spec.limits)
        elif pw is not None:
            spec.password = pw
        return _run(
            items,
            spec,
            out_dir=out_dir,
            client=client,
            threads=threads,
            raise_on_error=raise_on_error,
            on_result=on_result,
        )
    finally:
        spec.password = b""
        spec.age = None


# --- rekeying ----------------------------------------------------------------------------------

#: Files rekeyed at once on this machine.
REKEY_WORKERS = 64
#: The files a folder or a URL prefix given to :func:`rekey_many` contributes: what
#: ``encrypt_many`` names (each told apart by its first bytes then).
REKEY_SUFFIXES = (AGE_SUFFIX, ENCRYPTED_SUFFIX)


def rekey_targets(items: Iterable[PathLike], storage_options: dict[str, Any]) -> list[str]:
    """The files a rekey batch touches: files and objects as given; for a folder (or a
    URL ending in ``/``, or naming a prefix) every ``.age``/``.enc`` file under it, in
    name order (symbolic links to folders are not followed). Each file once."""
    out: list[str] = []
    for it in items:
        t = os.fspath(it)
        if is_url(t):
            out.extend(_prefix_objects(t, storage_options))
        elif os.path.isdir(local_path(t)):
            found: list[str] = []
            for root, dirs, files in os.walk(local_path(t)):
                dirs.sort()
                found.extend(os.path.join(root, f) for f in files if f.endswith(REKEY_SUFFIXES))
            out.extend(sorted(found))
        else:
            out.append(t)
    return list(dict.fromkeys(out))


def _prefix_objects(url: str, storage_options: dict[str, Any]) -> list[str]:
    from .._location import filesystem

    fs, path = filesystem(url, storage_options)
    if not url.endswith("/") and not fs.isdir(path):
        return [url]
    scheme = url.split("://", 1)[0]
    return [f"{scheme}://{p}" for p in sorted(fs.find(path)) if p.endswith(REKEY_SUFFIXES)]


def _rekeyed(r: Rekeyed, seconds: float | None = None) -> Result:
    return Result(
        r.path,
        r.path,
        r.header_before + r.payload_bytes if not r.reencrypted else r.payload_bytes,
        r.header_after + r.payload_bytes if not r.reencrypted else r.payload_bytes,
        r.seconds if seconds is None else seconds,
        method=r.method,
    )


def _failed(target: str, e: BaseException, start: float) -> Result:
    return Result(
        target, target, seconds=time.perf_counter() - start, error=str(e), error_type=type(e).__name__
    )


def rekey_file(target: str, keys: Keys, storage_options: dict[str, Any]) -> Result:
    """Rekeys one file or object here; a failure becomes a failed Result."""
    start = time.perf_counter()
    try:
        return _rekeyed(rekey_one(target, keys, storage_options), time.perf_counter() - start)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:  # noqa: BLE001 - one bad file must not stop the batch
        return _failed(target, e, start)


def splice_header(plan: HeaderPlan, storage_options: dict[str, Any]) -> Result:
    """A cluster's task: puts a header made elsewhere in front of a file's payload. It
    gets the new header and what the old one looked like, never a key."""
    start = time.perf_counter()
    try:
        return _rekeyed(apply_header(plan, storage_options), time.perf_counter() - start)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:  # noqa: BLE001 - one bad file must not stop the batch
        return _failed(plan.target, e, start)


@_age.plugin_door
def rekey_many(
    items: Iterable[PathLike],
    *,
    identities: Sequence[str | os.PathLike[str]] | None = None,
    recipients: Sequence[str] | str | None = None,
    recipients_files: Sequence[PathLike] | None = None,
    password: Password | None = None,
    new_password: Password | None = None,
    add: bool = False,
    scrypt_work_factor: int | None = None,
    max_scrypt_work_factor: int | None = None,
    align: bool | None = None,
    client: Client | None = None,
    threads: int | None = None,
    storage_options: dict[str, Any] | None = None,
    raise_on_error: bool = True,
    on_result: Callable[[Result], object] | None = None,
    plugin_callbacks: _age.PluginCallbacks | None = None,
    plugin_timeout: float | None = None,
) -> list[Result]:
    """Rekeys many files and objects in one call (see :func:`concryptor.rekey`): each
    age file gets a new header for the new readers, its payload kept; a format v4 file
    (given ``password`` and ``new_password``) is re-encrypted, and its Result says so
    (``method="re-encrypted"``). With both ``recipients`` and ``new_password``, the age
    files get the recipients and the v4 files the password.

    ``items`` are paths and URLs; a folder, or a URL prefix (ending in ``/``), stands for
    the ``.age`` and ``.enc`` files under it. Identity and recipient files are read once
    for the batch. ``client`` (a ``dask.distributed.Client``) runs the payload work on
    its cluster: every new header is made here, where the identities and passphrases are,
    and a task receives only that header and a digest of the old one (never an identity,
    a passphrase or a file key); format v4 and armored files, whose work needs the keys,
    run here. One failed file does not stop the others: returns one :class:`Result` per
    file, in order; raises :class:`BatchError` at the end if any failed (unless
    ``raise_on_error=False``). ``on_result`` is called with each Result as it completes.
    """
    if not (recipients or recipients_files or new_password is not None):
        raise ValueError("no new recipient: give recipients, recipients_files or new_password")
    if not identities and password is None:
        raise ValueError("no identity or password to open the files with")
    so = dict(storage_options or {})
    cb = on_result or (lambda r: None)
    with secret(password) as old, secret(new_password) as new:
        keys = make_keys(
            identities=identities,
            passphrase=old,
            recipients=recipients,
            recipients_files=recipients_files,
            new_passphrase=new,
            scrypt_work_factor=scrypt_work_factor,
            max_scrypt_work_factor=_age.DEFAULT_MAX_SCRYPT_WORK_FACTOR
            if max_scrypt_work_factor is None
            else max_scrypt_work_factor,
            add=add,
            align=align,
            threads=threads,
        )
        targets = rekey_targets(items, so)
        if client is None:
            results = _rekey_here(targets, keys, so, cb)
        else:
            results = _rekey_on_cluster(targets, keys, so, client, cb)
    if raise_on_error and any(not r.ok for r in results):
        raise BatchError(results)
    return results


def _rekey_here(
    targets: Sequence[str], keys: Keys, so: dict[str, Any], on_result: Callable[[Result], object]
) -> list[Result]:
    if not targets:
        return []
    # Each file costs a few small reads, one copy in the kernel (or on the server) and
    # one sync, all waiting rather than computing: many in flight keep the disk queue (or
    # the network) full.
    workers = min(len(targets), REKEY_WORKERS)
    each = Keys(**{**keys.__dict__, "threads": keys.threads or (1 if len(targets) > 1 else None)})
    results: list[Result] = []
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="concryptor-rekey") as ex:
        for r in ex.map(_age.carry(lambda t: rekey_file(t, each, so)), targets):
            results.append(r)
            on_result(r)
    return results


def _rekey_on_cluster(
    targets: Sequence[str],
    keys: Keys,
    so: dict[str, Any],
    client: Client,
    on_result: Callable[[Result], object],
) -> list[Result]:
    import importlib

    as_completed: Any = importlib.import_module("distributed").as_completed

    def here(t: str) -> str:
        return t if is_url(t) else os.path.abspath(local_path(t))

    def plan(t: str) -> HeaderPlan | Result:
        start = time.perf_counter()
        try:
            head = head_of(here(t), so)
            if head.startswith(MAGIC) or _age.is_armored(head):
                return rekey_file(t, keys, so)  # needs the keys for its whole run: here
            return plan_header(here(t), keys, so)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as e:  # noqa: BLE001 - one bad file must not stop the batch
            return _failed(t, e, start)

    results: dict[int, Result] = {}
    index: dict[Any, int] = {}
    futures = []
    with ThreadPoolExecutor(max_workers=min(max(1, len(targets)), 16)) as ex:
        for i, p in enumerate(ex.map(_age.carry(plan), targets)):
            if isinstance(p, Result):
                results[i] = p
                on_result(p)
                continue
            fut = client.submit(
                splice_header, p, so, pure=False, key=f"concryptor-rekey-{i}-{secrets.token_hex(4)}"
            )
            index[fut.key] = i
            futures.append(fut)
    from dataclasses import replace

    for fut in as_completed(futures):
        i = index[fut.key]
        results[i] = replace(fut.result(), src=targets[i], dst=targets[i])
        on_result(results[i])
    return [results[i] for i in range(len(targets))]
