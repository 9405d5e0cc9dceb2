"""What the in-process backends (faiss, hnswlib) share: files on disk, ids, payloads, aliases.

A collection lives in ``<data_dir>/<backend>/<collection>/``:

- ``meta.json``: the sidecar, and the commit point: format, spec (defaults filled in), the
  string ids in row order (row ``r`` is the backend's integer label ``r``) and the names of
  the data files of the current generation;
- ``payloads-<gen>.jsonl``: one JSON object per row, in row order;
- the backend's own files of the same generation (``index-<gen>.faiss``, ...).

Writes (upserts) change the open index in memory; :meth:`LocalBackend.flush` (called
before the connector closes, and by ``build`` before it switches an alias) writes a fresh
generation beside the old files and swaps in ``meta.json`` with ``os.replace``: a reader
sees the old collection or the new one, never a mix, and a crash leaves at most
unreferenced files, removed at the next commit. One writer per collection at a time;
readers in other processes notice a newer ``meta.json`` and reload.

Upserting an id that is stored replaces its row in place, so row order (the iteration
cursor) never changes. Aliases live in ``<data_dir>/<backend>/aliases.json``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from smec_index import safejson
from smec_index.connectors.base import (
    Batch,
    IndexSpec,
    SearcherStale,
    Sizes,
    alias_to_nothing,
    default_data_dir,
)
from smec_index.connectors.storage import (
    DISK_METHOD,
    AliasFile,
    FileAliases,
    Life,
    collection_dirs,
    committed,
    disk_bytes,
    end_life,
    foreign_directory,
    fsync_path,
    is_disk_full,
    life_of,
    make_directory,
    no_space,
    purge_dropped,
    refuse_foreign_directory,
    remove_directory,
    start_directory,
    try_flock,
    write_json_atomic,
)
from smec_index.errors import SmecError

META = "meta.json"
WRITER_LOCK = ".writer.lock"  # held by a connector with unflushed writes (_lock_writer)
# What a commit writes beside META (and META's temporary), as glob patterns: a folder of only
# these is a create cut short, not a user's (storage.foreign_directory), and a META beside
# them that is damaged is still smec-index's (storage.committed).
OWN_FILES = ("payloads-*.jsonl", "index-*", "vectors-*.npy", "pending-*.npy", f".{META}.*.tmp",
             WRITER_LOCK)
FORMAT = 1


def _serialised(method: Callable) -> Callable:
    """``method`` under the store's write lock (see ``LocalStore._writing``)."""

    @functools.wraps(method)
    def locked(self, *args: Any, **kwargs: Any) -> Any:
        with self._writing:
            return method(self, *args, **kwargs)

    return locked


class Readers:
    """Searches of a store run side by side; a write to an index waits until those under
    way end and holds new ones back until it is done. The in-process engines allow many
    searches at once but no search during a write (hnswlib reallocates on resize, FAISS
    resets an index to replace rows, and the id table must never trail the index)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._writer = threading.Lock()  # held for a whole write
        self._active = 0
        self._writing = False

    def enter(self) -> None:
        while True:
            with self._lock:
                if not self._writing:
                    self._active += 1
                    return
            with self._writer:  # wait for the write to end
                pass

    def leave(self) -> None:
        with self._lock:
            self._active -= 1

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        self.enter()
        try:
            yield
        finally:
            self.leave()

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        with self._writer:
            with self._lock:
                self._writing = True
            try:
                while True:
                    with self._lock:
                        if not self._active:
                            break
                    time.sleep(0.0001)
                yield
            finally:
                with self._lock:
                    self._writing = False


@dataclass
class Collection:
    """One open collection: its sidecar, payloads and the backend's live index."""

    name: str
    spec: IndexSpec
    ids: list[str]
    payloads: list[dict[str, Any]]
    files: dict[str, str] = field(default_factory=dict)  # role -> file name
    index: Any = None
    extra: dict[str, Any] = field(default_factory=dict)  # backend state (raw vectors, GPU copy)
    stamp: tuple[int, int, int] = (0, 0, 0)  # meta.json's inode, mtime and size when read
    life: Life = field(default_factory=Life)
    dirty: bool = False  # written to since the last commit
    _rows: dict[str, int] | None = None
    _id_table: np.ndarray | None = None  # ids then "", so label -1 maps to ""

    @property
    def rows(self) -> dict[str, int]:
        if self._rows is None:
            self._rows = {point_id: row for row, point_id in enumerate(self.ids)}
        return self._rows

    @property
    def id_table(self) -> np.ndarray:
        if self._id_table is None:
            self._id_table = np.array([*self.ids, ""], dtype=object)
        return self._id_table

    def appended(self, ids: list[str], payloads: list[dict[str, Any]]) -> None:
        rows = self.rows
        for point_id in ids:
            rows[point_id] = len(self.ids)
            self.ids.append(point_id)
        self.payloads.extend(payloads)
        self._id_table = None


class LocalBackend(FileAliases):
    """The :class:`~smec_index.connectors.base.Backend` methods of a file-backed backend.

    Subclasses set ``name`` and ``index_kinds`` and implement the ``_init_index``,
    ``_read_index``, ``_write_index``, ``_append``, ``_replace``, ``_search``, ``_vectors``
    and ``_index_bytes`` hooks. Integer labels in the index are row numbers.
    """

    name = "local"
    index_kinds: dict[str, tuple[str, ...]] = {}
    index_bytes_method = ""

    def __init__(self, data_dir: str | os.PathLike[str] | None = None) -> None:
        """Open the backend's part of a data directory.

        Args:
            data_dir: root of the data directory (default :func:`default_data_dir`); this
                backend's collections go under ``<data_dir>/<name>/``.
        """
        self.root = Path(data_dir if data_dir is not None else default_data_dir()) / self.name
        self._open: dict[str, Collection] = {}
        self._aliases = AliasFile(self.root)
        # Writes, commits and drops of this store take turns: a migration's writer threads
        # (or a failed write's reload from disk) never see an index another thread is
        # half-way through changing. Searches do not take it.
        self._writing = threading.RLock()
        self._readers = Readers()  # searches and reads of vectors against index writes
        self._training = threading.Lock()  # an index trained on its first read, once

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r})"

    def _target(self, collection: str) -> str:
        return self._aliases.read().get(collection, collection)

    def path(self, collection: str) -> str:
        return str(self.root / self._target(collection))

    def exists(self, collection: str) -> bool:
        """A collection smec-index made, or a folder of someone else's of that name."""
        return committed(Path(self.path(collection)), META, OWN_FILES) or self.foreign(
            collection)

    def foreign(self, collection: str) -> bool:
        """A folder under the store that smec-index did not make: never deleted."""
        return foreign_directory(self.root / self._target(collection), META, OWN_FILES)

    def collections(self) -> list[str]:
        return collection_dirs(self.root, META, OWN_FILES)

    def create(self, collection: str, spec: IndexSpec) -> None:
        purge_dropped(self.root)
        directory = self.root / collection
        end_life(directory)  # whatever had this name before: a searcher of it refuses now
        refuse_foreign_directory(directory, META, OWN_FILES)  # the connector refuses it first
        if directory.exists():  # a crashed create's leftovers: never a committed collection
            shutil.rmtree(directory)
        start_directory(directory)
        col = Collection(collection, spec, [], [], life=life_of(directory))
        self._init_index(col)
        self._commit(col)

    def spec(self, collection: str) -> IndexSpec:
        return IndexSpec(**self._load(collection).spec.to_dict())

    def count(self, collection: str) -> int:
        return len(self._load(collection).ids)

    def native_index(self, collection: str) -> Any:
        """The backend's live index object (CPU), for inspection; do not modify it."""
        return self._load(collection).index

    def life(self, collection: str) -> Life:
        """Ended when a connector of this process drops or makes ``collection`` again."""
        return life_of(self.root / self._target(collection))

    @_serialised
    def upsert(
        self, collection: str, ids: list[str], vectors: np.ndarray, payloads: list[dict]
    ) -> None:
        col = self._load(collection)
        if not col.dirty:
            handle = self._lock_writer(col.name)
            col = self._load(collection)  # a commit made before the lock is seen now
            col.extra["writer"] = handle
        if vectors.shape[1] != col.spec.dim:  # made again, by another process, since it was read
            if not col.dirty:
                self._forget(col.name)  # and the writer lock just taken with it
            raise SmecError(f"collection {collection!r} holds {col.spec.dim}-d vectors now (it "
                            "was made again since this connector read it); open a new "
                            "connector")  # fmt: skip
        rows = col.rows
        old = [n for n, point_id in enumerate(ids) if point_id in rows]
        new = [n for n, point_id in enumerate(ids) if point_id not in rows]
        try:
            col.dirty = True
            with self._readers.writing():
                if old:
                    replaced = np.array([rows[ids[n]] for n in old], dtype=np.int64)
                    self._replace(col, replaced, vectors[old])
                    for n in old:
                        col.payloads[rows[ids[n]]] = payloads[n]
                if new:
                    self._append(col, vectors[new])
                    col.appended([ids[n] for n in new], [payloads[n] for n in new])
        except BaseException:
            # Memory may be half-changed: this connector's unflushed writes to the collection
            # are discarded and it is read from disk again (flush to bound what this loses).
            self._forget(col.name)
            raise

    def get(self, collection: str, ids: list[str]) -> Batch:
        col = self._load(collection)
        with self._readers.reading():
            found = [point_id for point_id in ids if point_id in col.rows]
            rows = [col.rows[point_id] for point_id in found]
            vectors = np.stack([self._vectors(col, r, r + 1)[0] for r in rows]) if rows else None
        if vectors is None:
            vectors = np.zeros((0, col.spec.dim), np.float32)
        return Batch(found, vectors.astype(np.float32), [col.payloads[r] for r in rows])

    def search(
        self, collection: str, queries: np.ndarray, k: int, params: dict[str, int]
    ) -> list[list[tuple[str, float]]]:
        col = self._load(collection)
        found = min(k, len(col.ids))
        if not found:
            return [[] for _ in queries]
        with self._readers.reading():
            labels, scores = self._search(col, queries, found, params)
            ids = col.id_table[labels]
        return [
            [
                (i, float(s))
                for i, s, label in zip(id_row, score_row, label_row, strict=True)
                if label >= 0
            ]
            for id_row, score_row, label_row in zip(ids, scores, labels, strict=True)
        ]

    def searcher(
        self, collection: str, params: dict[str, int]
    ) -> Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]:
        """The lean search of :class:`~smec_index.connectors.contract.Searcher`: ``col``
        loaded once, the engine bound once (:meth:`_engine`), then per call the engine and
        a vectorised lookup in the id table (whose last entry, ``""``, label -1 maps to)."""
        from smec_index.connectors.contract import PAD_LIMIT

        col = self._load(collection)
        engine = self._engine(col, params)
        enter, leave = self._readers.enter, self._readers.leave

        life = col.life

        def search(queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
            if life.ended:
                raise SearcherStale(f"collection {collection!r} was dropped after this "
                                    "searcher opened it; open a new one (connector.searcher)")
            enter()
            try:
                return answer(queries, k)
            finally:
                leave()

        def answer(queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
            n = len(col.ids)
            if k > PAD_LIMIT:  # as Connector.search: no slots for hits that cannot exist
                k = max(1, min(k, n))
            found = min(k, n)
            if not found:
                return (np.full((len(queries), k), "", dtype=object),
                        np.full((len(queries), k), -np.inf, dtype=np.float32))  # fmt: skip
            labels, scores = engine(queries, found)
            if found < k:
                labels = np.pad(labels.astype(np.int64, copy=False), ((0, 0), (0, k - found)),
                                constant_values=-1)  # fmt: skip
                scores = np.pad(scores, ((0, 0), (0, k - found)))
            # Unsigned labels (hnswlib's) are never -1: one reduction spared per call.
            if labels.dtype.kind == "i" and labels.min() < 0:
                scores = np.where(labels < 0, np.float32(-np.inf), scores)
            return col.id_table.take(labels), scores

        return search

    def raw_engine(self, collection: str, params: dict[str, int]) -> Callable | None:
        """The engine's own search call on the same index with the same parameters,
        ``(queries, k) -> whatever the engine returns``: what a benchmark times beside the
        lean path (``engine_p50_ms``). ``None`` where the index needs more per call."""
        return self._raw(self._load(collection), params)

    def _raw(self, col: Collection, params: dict[str, int]) -> Callable | None:
        return None

    def _engine(
        self, col: Collection, params: dict[str, int]
    ) -> Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]:
        """``(queries, k) -> (labels, scores)`` with ``params`` bound; backends override it
        to bind their engine's own parameter objects once."""
        return lambda queries, k: self._search(col, queries, k, params)

    def iterate(self, collection: str, batch_size: int, cursor: str | None) -> Iterator[Batch]:
        """The points present when called, in row order; the cursor is ``<collection>:<next
        row>``, so it cannot resume another collection (say, after an alias switch)."""
        col = self._load(collection)
        start = 0
        if cursor is not None:
            owner, _, row = cursor.rpartition(":")
            if owner != col.name or not row.isdigit():
                raise SmecError(
                    f"cursor {cursor!r} is not one {col.name!r} gave; resume with a cursor "
                    "of this collection"
                )
            start = int(row)
        n = len(col.ids)
        for first in range(start, n, batch_size):
            if col.life.ended:
                raise SmecError(f"collection {collection!r} was dropped while it was being "
                                "iterated; iterate it again once it is rebuilt")  # fmt: skip
            stop = min(n, first + batch_size)
            with self._readers.reading():
                vectors = np.ascontiguousarray(self._vectors(col, first, stop), np.float32)
            yield Batch(
                col.ids[first:stop],
                vectors,
                col.payloads[first:stop],
                cursor=f"{col.name}:{stop}" if stop < n else None,
            )

    @_serialised
    def flush(self, collection: str) -> None:
        col = self._load(collection)
        if col.dirty:
            self._commit(col)

    def sizes(self, collection: str) -> Sizes:
        self.flush(collection)
        col = self._load(collection)
        return Sizes(
            index_bytes=int(self._index_bytes(col)),
            total_bytes=disk_bytes(Path(self.path(collection))),
            method=f"index: {self.index_bytes_method}; total: {DISK_METHOD} of the "
            "collection's files (index, ids, payloads)",
        )

    @_serialised
    def drop(self, collection: str) -> None:
        # Not under another writer's unflushed writes (another connector, or process): its
        # close wrote the dropped collection back, over one made again since.
        col = self._open.get(collection)
        ours = col is not None and "writer" in col.extra
        handle = None
        if not ours and (self.root / collection).is_dir():
            handle = self._lock_writer(collection)
        try:
            self._forget(collection)
            end_life(self.root / collection)
            remove_directory(self.root / collection)
        finally:
            if handle is not None:
                handle.close()

    @_serialised
    def close(self) -> None:
        failed: BaseException | None = None
        try:
            for col in list(self._open.values()):  # each one, whatever another's commit did
                if col.dirty:
                    try:
                        self._commit(col)
                    except Exception as exc:  # noqa: BLE001 - the first is raised below
                        failed = failed or exc
        finally:
            for name in list(self._open):
                self._forget(name)
        if failed is not None:
            raise failed

    def _lock_writer(self, name: str) -> Any:
        """One writer per collection: a process with unflushed writes holds ``.writer.lock``
        until it commits them, so two writers never overwrite each other's commits. The file
        stays (a commit file damaged beside it is still smec-index's: OWN_FILES)."""
        handle = try_flock(self.root / name / WRITER_LOCK)
        if handle is None:
            raise SmecError(
                f"another connector or process is writing {self.name} collection "
                f"{name!r}; wait until it flushes or closes"
            )
        return handle

    def _forget(self, name: str) -> None:
        col = self._open.pop(name, None)
        if col is not None and "writer" in col.extra:
            col.extra.pop("writer").close()

    def _load(self, collection: str) -> Collection:
        name = self._target(collection)
        meta_path = self.root / name / META
        col = self._open.get(name)
        if col is not None and col.dirty:
            return col  # this process's writes are ahead of the disk
        try:
            # One stat on the hot path (every search); the file is opened only when it moved.
            st = os.stat(meta_path)
            if col is not None and col.stamp == (st.st_ino, st.st_mtime_ns, st.st_size):
                return col
            with open(meta_path, "rb") as handle:
                st = os.fstat(handle.fileno())
                stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
                raw = handle.read()
        except FileNotFoundError:
            self._open.pop(name, None)
            if self.foreign(collection):
                raise SmecError(f"{self.root / name} was not made by smec-index (no {META}), "
                                "so it is left alone: move it away, or use another "
                                "name") from None  # fmt: skip
            if name != collection:  # an alias of a collection whose files are gone
                raise alias_to_nothing(collection, name, self.name) from None
            raise SmecError(
                f"no collection {collection!r} in {self.root}; create it first"
            ) from None
        try:
            meta = safejson.loads(raw)
            files = meta["files"]
            with open(meta_path.parent / files["payloads"], encoding="utf-8") as handle:
                payloads = [safejson.loads(line) for line in handle]
            col = Collection(name, IndexSpec(**meta["spec"]), list(meta["ids"]), payloads, files,
                             life=life_of(meta_path.parent))  # fmt: skip
            if len(col.payloads) != len(col.ids):
                raise ValueError(f"{len(col.payloads)} payloads for {len(col.ids)} ids")
            if not all(type(point_id) is str for point_id in col.ids):
                raise ValueError("ids that are not text")
            if len(set(col.ids)) != len(col.ids):
                raise ValueError("an id listed twice")
            if col.spec.index not in self.index_kinds:
                raise ValueError(f"index {col.spec.index!r}, which {self.name} does not build")
            self._read_index(col, meta_path.parent)
            held = self._index_count(col)
            if held is not None and held != len(col.ids):  # another collection's file, say
                raise ValueError(f"its index file holds {held} vectors for {len(col.ids)} ids")
        except (OSError, ValueError, KeyError, TypeError, RuntimeError, AttributeError) as exc:
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            if isinstance(exc, RuntimeError):  # an engine's own text: its C++ source lines
                reason = "the engine could not read its index file: truncated or damaged"
            elif isinstance(exc, OSError) and exc.filename:  # not "[Errno 2] ..." in the line
                reason = f"{Path(exc.filename).name}: {(exc.strerror or 'unreadable').lower()}"
            raise SmecError(
                f"collection {collection!r} in {meta_path.parent} is unreadable "
                f"({reason[:160]}); drop it (`build --overwrite` replaces it) and index again"
            ) from None
        col.stamp = stamp
        self._open[name] = col
        return col

    def _commit(self, col: Collection) -> None:
        directory = self.root / col.name
        make_directory(directory)
        generation = uuid.uuid4().hex[:12]
        files = {"payloads": f"payloads-{generation}.jsonl"}
        try:
            with open(directory / files["payloads"], "w", encoding="utf-8") as handle:
                handle.writelines(json.dumps(p) + "\n" for p in col.payloads)
            with self._readers.writing():  # hnswlib trims (reallocates) the index to write it
                files.update(self._write_index(col, directory, generation))
            for name in files.values():
                fsync_path(directory / name)
            meta = {
                "format": FORMAT,
                "backend": self.name,
                "generation": generation,
                "spec": col.spec.to_dict(),
                "files": files,
                "ids": col.ids,
            }
            write_json_atomic(directory / META, meta)  # the commit point
        except (OSError, RuntimeError) as exc:  # faiss reports a short write as RuntimeError
            # The last commit stays whole: meta.json still names its files, and this
            # generation's are removed so a full disk is not left fuller.
            full = is_disk_full(exc)
            for path in directory.glob(f"*{generation}*"):
                path.unlink(missing_ok=True)
            if full:
                raise no_space(directory) from None
            raise
        st = os.stat(directory / META)
        col.files, col.stamp, col.dirty = files, (st.st_ino, st.st_mtime_ns, st.st_size), False
        self._open[col.name] = col
        if "writer" in col.extra:
            col.extra.pop("writer").close()
        # Older generations, and anything a crashed write left behind.
        for entry in directory.iterdir():
            if (
                entry.name not in (META, WRITER_LOCK)
                and entry.name not in files.values()
                and entry.is_file()
            ):
                entry.unlink(missing_ok=True)

    # Backend hooks.
    def _init_index(self, col: Collection) -> None:
        """Set ``col.index`` (and ``col.extra``) to a new, empty index for ``col.spec``."""
        raise NotImplementedError

    def _read_index(self, col: Collection, directory: Path) -> None:
        """Set ``col.index`` (and ``col.extra``) from the files named in ``col.files``."""
        raise NotImplementedError

    def _index_count(self, col: Collection) -> int | None:
        """How many vectors the index read from disk holds (``None``: it cannot say)."""
        return None

    def _write_index(self, col: Collection, directory: Path, generation: str) -> dict[str, str]:
        """Write the index files of ``generation``; return role -> file name."""
        raise NotImplementedError

    def _append(self, col: Collection, vectors: np.ndarray) -> None:
        """Add vectors under labels ``len(col.ids)`` onwards."""
        raise NotImplementedError

    def _replace(self, col: Collection, rows: np.ndarray, vectors: np.ndarray) -> None:
        """Give rows ``rows`` the new ``vectors``."""
        raise NotImplementedError

    def _search(
        self, col: Collection, queries: np.ndarray, k: int, params: dict[str, int]
    ) -> tuple[Any, Any]:
        """(labels, scores) of shape (nq, k), best first, label -1 for a missing hit;
        ``params``: the call's query parameters (see :meth:`Backend.search`)."""
        raise NotImplementedError

    def _vectors(self, col: Collection, start: int, stop: int) -> np.ndarray:
        """The stored vectors of rows ``start`` to ``stop``."""
        raise NotImplementedError

    def _index_bytes(self, col: Collection) -> int:
        """What search needs: the index as the engine serializes it (no ids, no payload)."""
        raise NotImplementedError
