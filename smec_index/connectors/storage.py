"""Files the embedded backends share: atomic JSON, the alias pointer file, bytes on disk.

:func:`disk_bytes` is the one way smec-index measures files, on every backend that has no
engine figure for what it needs: bytes *allocated* on disk (``du``), so sparse
pre-allocated files (Qdrant's mmap chunks) count for what they hold, not their length.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import stat
import sys
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from smec_index import safejson
from smec_index.errors import SmecError, brief

log = logging.getLogger(__name__)

DISK_METHOD = "allocated bytes on disk (du)"


def disk_bytes(paths: Path | Iterable[Path], keep: Callable[[Path], bool] | None = None) -> int:
    """Bytes allocated on disk under ``paths`` (files or directories), as ``du`` counts them.

    Args:
        paths: one path or several.
        keep: count only files for which ``keep(path)`` is true (all when ``None``).
    """
    if isinstance(paths, Path):
        paths = [paths]
    total = 0
    for path in paths:
        files = (
            [path] if path.is_file() else (Path(r) / f for r, _, fs in os.walk(path) for f in fs)
        )
        for file in files:
            if keep is None or keep(file):
                try:
                    stat = file.stat()
                except FileNotFoundError:  # removed while walking
                    continue
                blocks = getattr(stat, "st_blocks", None)
                total += stat.st_size if blocks is None else blocks * 512
    return total


def free_bytes(path: Path) -> int | None:
    """Bytes free to this user on the filesystem that holds (or would hold) ``path``."""
    path = Path(path).absolute()
    for place in (path, *path.parents):
        if place.exists():
            try:
                return shutil.disk_usage(place).free
            except OSError:
                return None
    return None


def _mib(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB"


WRITE_ELSEWHERE = "write elsewhere (--data-dir, --out)"


def no_space(
    path: Path | None, need: int | None = None, elsewhere: str = WRITE_ELSEWHERE
) -> SmecError:
    """The one line for a full disk: where, what is free (and what was needed); ``None``:
    a library said the disk is full without saying which file it was writing."""
    if path is None:
        return SmecError(f"a write failed: no space left on the device; free some space or "
                         f"{elsewhere}; nothing was kept of this write")  # fmt: skip
    free = free_bytes(path)
    told = f"{_mib(free)} free" if free is not None else "free space unknown"
    if need is not None:
        told = f"about {_mib(need)} needed, {told}"
    return SmecError(
        f"not enough disk space at {path} ({told}); free some space or {elsewhere}; nothing "
        "was kept of this write"
    )


# Bytes on disk per byte of (vectors + graph links + payload), measured on 5,000 x 384
# builds: Qdrant keeps vectors, graph, payload index and WAL (2.2x); Milvus-lite its
# segment and index (2.0x); FAISS and hnswlib one index file (1.0x). Rounded up.
DISK_FACTOR = {"qdrant": 3.0, "milvus": 2.5}
DISK_FLOOR = 4 * 2**20  # metadata, WAL headers, a first segment


def estimated_bytes(backend: str, rows: int, dim: int, links: int, payload: float) -> int:
    """What ``rows`` points of ``dim`` float32s, ``links`` bytes of graph and ``payload``
    bytes each take on ``backend``'s disk: the figure :func:`check_free_space` is given."""
    per_row = dim * 4 + links + payload
    return int(rows * per_row * DISK_FACTOR.get(backend, 1.3)) + DISK_FLOOR


def check_free_space(path: Path, need: int, elsewhere: str = WRITE_ELSEWHERE) -> None:
    """Refuse a write of about ``need`` bytes under ``path`` that the disk cannot take,
    before any of it is written (an engine that maps its files into memory, as Qdrant's
    does, dies of SIGBUS instead of failing when the disk fills under it)."""
    free = free_bytes(path)
    if free is not None and need > free:
        raise no_space(path, need, elsewhere)


TOO_MANY_FILES = ("this process may open no more files (its open-file limit, ulimit -n, is "
                  "reached); raise the limit, then run again")  # fmt: skip


def too_many_files(exc: BaseException) -> bool:
    """EMFILE/ENFILE, as an OS error or quoted by a library (gRPC, Rust: os error 24)."""
    import errno

    if isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE):
        return True
    text = str(exc)
    return "Too many open files" in text or "os error 24" in text


def is_file_too_large(exc: BaseException) -> bool:
    """A write refused by the process's file size limit (``ulimit -f``: EFBIG), as an OS
    error or quoted by a library (FAISS, Rust's "os error 27")."""
    import errno

    if isinstance(exc, OSError) and exc.errno == errno.EFBIG:
        return True
    text = str(exc)
    return "File too large" in text or "os error 27" in text


def is_disk_full(exc: BaseException) -> bool:
    """An error that says the disk (or the user's quota) is full: an OS error, or a
    library's own error quoting one (safetensors, numpy's short write, FAISS)."""
    import errno
    import re

    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc)
    return ("No space left on device" in text or "os error 28" in text
            or re.search(r"\d+ requested and \d+ written", text) is not None)  # fmt: skip


def fsync_path(path: Path) -> None:
    """fsync a file or directory (best effort for directories)."""
    flags = (os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)) if path.is_dir() else os.O_RDONLY
    try:
        fd = os.open(path, flags)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` durably: a temporary file, fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    fsync_path(path.parent)


def sweep_temporaries(path: Path, min_age_s: float = 0.0) -> None:
    """Remove the temporary files :func:`write_json_atomic` left beside ``path`` when a
    process was killed while writing it. Its writer, holding ``path``'s lock (so no other
    write is in flight), passes no age; others pass one no write lasts
    (``min_age_s``)."""
    import glob
    import time

    oldest = time.time() - min_age_s
    for temporary in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        try:
            if not min_age_s or temporary.stat().st_mtime < oldest:
                temporary.unlink()
        except OSError:  # gone already, or not ours to remove: harmless either way
            pass


def try_flock(path: Path) -> Any:
    """An open handle of ``path`` holding an exclusive ``flock`` on it, or ``None`` where
    another open file (this process's or another's) holds it."""
    handle = open(path, "a+")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


@contextmanager
def file_lock(path: Path, what: str, wait: bool = False) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path``; one that is held is a one-line error, or,
    with ``wait``, is waited for (for short steps that cooperating processes take in turn).

    The kernel releases the lock when the process dies, however it dies, so a killed
    holder never blocks the next run. The holder removes the file (and the folders it made
    for it, when empty) before releasing it, so a run leaves no lock file behind; a waiter
    that then holds the lock of a removed file sees that and locks the path anew. A name
    too long for a file system (two 200-character collection names joined) is shortened to
    its start and a hash of the whole, the same in every process.
    """
    if len(path.name.encode()) > 200:
        import hashlib

        digest = hashlib.sha256(path.name.encode()).hexdigest()[:16]
        path = path.with_name(f"{path.name[:120]}-{digest}.lock")
    made = [p for p in (path.parent, *path.parent.parents) if not p.exists()]
    while True:
        make_directory(path.parent)  # a file of the user's in the way: named, one line
        try:
            handle = open(path, "a+")
        except FileNotFoundError:  # its folder was just removed by a holder leaving
            continue
        except OSError as exc:  # a read-only folder: one line, not PermissionError
            raise SmecError(f"cannot lock {path.parent} for {what} ({exc.strerror}); make "
                            "it writable, or choose another place") from None  # fmt: skip
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            handle.close()
            raise SmecError(f"{what} is in progress in another process; wait for it") from None
        try:
            if os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino:
                break
        except FileNotFoundError:
            pass
        handle.close()  # a lock on a file its holder removed: lock the path anew
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        handle.close()
        for folder in made:  # innermost first; one another run uses is not empty
            with contextlib.suppress(OSError):
                folder.rmdir()


class AliasFile:
    """Aliases of an embedded backend: ``aliases.json`` (alias -> collection) in its root.

    Switching an alias rewrites the file with an atomic rename, so a reader sees the old
    target or the new one. Writers serialise on ``aliases.lock``.
    """

    def __init__(self, root: Path) -> None:
        self.path = Path(root) / "aliases.json"
        self._stamp: tuple[int, int, int] | None = None
        self._cache: dict[str, str] = {}

    def read(self) -> dict[str, str]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._stamp, self._cache = None, {}
            return {}
        except NotADirectoryError:  # the store's folder is a file
            raise SmecError(f"{self.path.parent} is a file where smec-index keeps a store's "
                            "collections; move it away, or pass another data dir") from None
        if not stat.S_ISREG(st.st_mode):  # a folder; a link to /dev/zero read without end
            raise SmecError(f"{self.path} is not a regular file (it holds the aliases of the "
                            "collections here); move it away") from None
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            try:
                raw = safejson.loads(self.path.read_text())
                self._cache = {str(k): v for k, v in raw.items()}
                _check_entries(self.path, self._cache)
            except SmecError:
                raise
            except (ValueError, AttributeError):
                raise SmecError(
                    f"{self.path} is corrupt: not a JSON object of aliases; restore it, or fix "
                    'it by hand (each entry is "NAME": "the collection it names"; removing it '
                    "unnames every collection in it)"
                ) from None
            self._stamp = stamp
        return dict(self._cache)

    def set(self, alias: str, collection: str) -> None:
        self._update(lambda aliases: aliases.__setitem__(alias, collection))

    def drop(self, alias: str) -> None:
        self._update(lambda aliases: aliases.pop(alias, None))

    def _update(self, change: Callable[[dict[str, str]], Any]) -> None:
        lock = self.path.with_name("aliases.lock")
        lock.parent.mkdir(parents=True, exist_ok=True)
        with open(lock, "a+") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)  # short: wait for the other writer
            self._stamp = None
            aliases = self.read()
            change(aliases)
            sweep_temporaries(self.path)  # a killed writer's: none is in flight now
            write_json_atomic(self.path, aliases)


def _check_entries(path: Path, aliases: dict[str, Any]) -> None:
    """Each entry of an aliases file names a collection by a name smec-index gives, and no
    other alias: an entry edited by hand was read as a name the user never typed ("'5'",
    "'../../../tmp'"), and an alias of an alias read one collection's spec and another's
    points."""
    from smec_index.connectors.base import MAX_NAME

    def valid(name: Any) -> bool:
        return (isinstance(name, str) and 0 < len(name) <= MAX_NAME and name[0].isalpha()
                and all(c.isascii() and (c.isalnum() or c == "_") for c in name))  # fmt: skip

    for alias, target in aliases.items():
        if valid(alias) and valid(target) and target not in aliases:
            continue
        why = ("which is itself an alias here (aliases name collections, not aliases)"
               if isinstance(target, str) and target in aliases
               else "not a collection's name")  # fmt: skip
        raise SmecError(
            f"{path} is corrupt: alias {brief(alias, 40)} names {brief(target, 40)}, {why}; "
            'restore it, or fix it by hand (each entry is "NAME": "the collection it names")'
        )


class FileAliases:
    """The alias methods of a backend whose aliases live in an :class:`AliasFile`
    (``self._aliases``)."""

    _aliases: AliasFile

    def aliases(self) -> dict[str, str]:
        return self._aliases.read()

    def set_alias(self, alias: str, collection: str) -> None:
        self._aliases.set(alias, collection)

    def drop_alias(self, alias: str) -> None:
        self._aliases.drop(alias)


def remove_directory(directory: Path) -> None:
    """Delete ``directory``: renamed away first, so it is gone at once for every reader even
    if deleting its files is cut short (what is left is a dot-directory nothing reads)."""
    if directory.exists():
        doomed = directory.with_name(f".dropped-{directory.name}-{uuid.uuid4().hex[:8]}")
        os.replace(directory, doomed)
        shutil.rmtree(doomed, ignore_errors=True)


# Written first into a new collection's folder: a folder holding it (or nothing) is a create
# of smec-index's cut short, which the next create of that name may delete.
CREATING = ".smec-creating"


# The keys the first bytes of each store's commit file hold (json.dump's order): a file of
# that name that lacks them is a user's (their own meta.json), never read as a collection.
SIGNATURES = {"meta.json": (b'"format"', b'"backend"'), "index_spec.json": (b'"dim"', b'"metric"')}


def committed(directory: Path, marker: str, ours: tuple[str, ...] = ()) -> bool:
    """Whether ``directory`` holds a store's commit file ``marker`` that smec-index wrote:
    its first bytes name the keys of :data:`SIGNATURES`, or, damaged, it sits among files
    the store writes alone (``ours``, glob patterns), so reading it says it is unreadable.
    A user's folder holding their own file of that name is none."""
    import fnmatch

    try:
        with open(directory / marker, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                return False
            head = handle.read(512)
    except OSError:
        return False
    if head.lstrip().startswith(b"{") and all(k in head for k in SIGNATURES.get(marker, ())):
        return True
    try:
        others = [e.name for e in directory.iterdir() if e.name not in (marker, CREATING)]
    except OSError:
        return False
    return bool(others) and all(any(fnmatch.fnmatchcase(n, p) for p in ours) for n in others)


def foreign_directory(directory: Path, marker: str, ours: tuple[str, ...] = ()) -> bool:
    """Whether ``directory`` holds something smec-index did not make: it is there, it is no
    committed collection (``marker``), and it is neither empty nor a create cut short (it
    holds :data:`CREATING`, or only files named as the store names its own, ``ours``: glob
    patterns, for creates cut short before the marker existed): a user's own shard or folder
    under a data dir, never deleted."""
    import fnmatch

    if not (directory.exists() or directory.is_symlink()):
        return False
    if not directory.is_dir():  # a file, or a link to none: a link to a folder is followed
        return True
    if committed(directory, marker, ours):
        return False
    if (directory / marker).exists():  # a commit file of the user's (their meta.json)
        return True
    if (directory / CREATING).is_file():
        return False
    try:
        names = [entry.name for entry in directory.iterdir()]
    except OSError:  # unlistable: not provably ours
        return True
    return not all(any(fnmatch.fnmatchcase(n, pattern) for pattern in ours) for n in names)


def refuse_foreign_directory(directory: Path, marker: str, ours: tuple[str, ...] = ()) -> None:
    """A one-line error where ``directory`` is a folder of someone else's
    (:func:`foreign_directory`): a store's own guard behind the connector's refusal."""
    if foreign_directory(directory, marker, ours):
        raise SmecError(f"{directory} holds files smec-index did not write; pick another "
                        "name, or move it away")  # fmt: skip


def make_directory(directory: Path, new: bool = False) -> None:
    """``mkdir -p directory`` (with ``new``, the last folder must not exist yet), or a
    one-line error naming what stood in the way: a link to nowhere (whose mkdir said "File
    exists"), a file, a folder it may not write, a full disk."""
    try:
        if new:
            directory.parent.mkdir(parents=True, exist_ok=True)
            directory.mkdir()
        else:
            directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if is_disk_full(exc):
            raise no_space(directory) from None
        for path in directory.parents if new else (directory, *directory.parents):
            if path.is_symlink() and not path.exists():
                kind = f"a symbolic link to {os.readlink(path)}, which leads to no folder,"
            elif path.exists() and not path.is_dir():
                kind = "a file" if path.is_file() else "a device, socket or FIFO"
            else:
                continue
            raise SmecError(f"{path} is {kind} where smec-index makes the folder "
                            f"{path.name!r} for its own files; move it away, or pass "
                            "another path") from None  # fmt: skip
        raise SmecError(f"{directory}: cannot make this folder ({exc.strerror or exc}); "
                        "pass a data directory you can write") from None  # fmt: skip


def start_directory(directory: Path) -> None:
    """Make ``directory`` for a new collection, marked as being created (its caller has
    removed what a create cut short left, and refused a folder of someone else's)."""
    make_directory(directory, new=True)
    try:
        (directory / CREATING).write_bytes(b"")
    except OSError as exc:
        raise no_space(directory) if is_disk_full(exc) else SmecError(
            f"{directory}: cannot write in it ({exc.strerror or exc}); pass a data directory "
            "you can write") from None  # fmt: skip


def collection_dirs(root: Path, marker: str, ours: tuple[str, ...] = ()) -> list[str]:
    """The collections under ``root``: directories holding ``marker`` (their commit point,
    :func:`committed`), not the dot-directories a drop renames away."""
    if not root.is_dir():
        return []
    return [p.name for p in root.iterdir()
            if not p.name.startswith(".") and committed(p, marker, ours)]  # fmt: skip


def purge_dropped(root: Path) -> None:
    """Finish deleting what :func:`remove_directory` renamed away but was cut short (a kill
    mid-delete leaves a ``.dropped-*`` directory nothing reads)."""
    if root.is_dir():
        for path in root.glob(".dropped-*"):
            shutil.rmtree(path, ignore_errors=True)


@contextmanager
def native_notes(library: str) -> Iterator[None]:
    """What a native library prints straight to the process's stderr while the block runs
    (FAISS's k-means advice, "WARNING clustering 600 points to 256 centroids: please provide
    at least 9984 training points", also from milvus-lite's index build) is caught at the
    descriptor and logged once per distinct line (``smec-index -v`` shows it)."""
    import collections
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines = sink.read().decode("utf-8", "replace").splitlines()
            for line, times in collections.Counter(x.strip() for x in lines if x.strip()).items():
                log.info("%s: %s%s", library, line, f" (x{times})" if times > 1 else "")


class Life:
    """Whether a collection still exists, as every store of this process sees it: a drop
    ends it, so searchers opened on it refuse instead of answering from memory."""

    __slots__ = ("ended",)

    def __init__(self) -> None:
        self.ended = False


_LIVES: dict[str, Life] = {}  # a collection's directory (or key) -> its life here
_LIVES_LOCK = threading.Lock()


def _key(place: Path | str) -> str:
    return place if isinstance(place, str) else os.path.abspath(place)


def life_of(place: Path | str) -> Life:
    """The life of a collection at ``place`` (a directory, or a backend's own key)."""
    with _LIVES_LOCK:
        return _LIVES.setdefault(_key(place), Life())


def end_life(place: Path | str) -> None:
    with _LIVES_LOCK:
        ended = _LIVES.pop(_key(place), None)
    if ended is not None:
        ended.ended = True
