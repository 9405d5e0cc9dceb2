"""What the embedded backends (faiss, hnswlib) share: files on disk, ids, payloads, checks.

A collection lives in ``<data_dir>/<backend>/<collection>/``:

- ``meta.json``: the sidecar, and the commit point: format, spec (defaults filled in), the
  string ids in row order (row ``r`` is the backend's integer label ``r``) and the names of
  the data files of the current generation;
- ``payloads-<gen>.jsonl``: one JSON object per row, in row order;
- the backend's own files of the same generation (``index-<gen>.faiss``, ...).

Every write (create, add) puts all files of a fresh generation beside the old ones, then
swaps in ``meta.json`` with ``os.replace``: a reader sees the old collection or the new one,
never a mix, and a crash leaves at most unreferenced files, removed at the next commit.
One writer per collection at a time; readers notice a newer ``meta.json`` and reload.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from smec_index.connectors.base import (
    Batch,
    IndexSpec,
    check_collection_name,
    check_ids,
    check_vectors,
    default_data_dir,
)
from smec_index.errors import SmecError

META = "meta.json"
FORMAT = 1
HNSW_DEFAULTS = {"M": 16, "ef_construction": 200, "ef_search": 64}


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
    id_table: np.ndarray | None = None  # ids then "", so label -1 maps to ""


def int_params(params: dict[str, Any], defaults: dict[str, int], lowest: int = 1) -> dict[str, int]:
    """``defaults`` overridden by ``params``, each an integer >= ``lowest``, or a one-line error."""
    resolved = {}
    for name, default in defaults.items():
        value = params.get(name, default)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lowest:
            raise SmecError(f"index parameter {name}={value!r}: use an integer >= {lowest}")
        resolved[name] = int(value)
    return resolved


def check_payloads(payloads: Sequence[dict[str, Any]] | None, n: int) -> list[dict[str, Any]]:
    """One JSON object per vector (empty ones when ``None``), copied through JSON."""
    if payloads is None:
        return [{} for _ in range(n)]
    payloads = list(payloads)
    if len(payloads) != n:
        raise SmecError(f"{len(payloads)} payloads for {n} vectors; pass one per vector or none")
    checked = []
    for payload in payloads:
        if not isinstance(payload, dict):
            raise SmecError(f"payload {payload!r} is not a dict; pass one dict per vector")
        try:
            # The round trip copies, and gives what a reload will give (tuples become lists).
            checked.append(json.loads(json.dumps(payload)))
        except (TypeError, ValueError) as exc:
            raise SmecError(f"payloads must be JSON-serialisable dicts ({exc})") from None
    return checked


def _fsync(path: Path) -> None:
    flags = (os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)) if path.is_dir() else os.O_RDONLY
    try:
        fd = os.open(path, flags)
    except OSError:  # directories cannot be opened on some platforms
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalConnector:
    """The :class:`~smec_index.connectors.base.Connector` methods of a file-backed backend.

    Subclasses set ``name`` and ``index_params`` (index kind -> accepted parameter names)
    and implement the ``_resolve_params``, ``_init_index``, ``_read_index``,
    ``_write_index``, ``_add``, ``_search``, ``_vectors`` and ``memory_bytes`` hooks.
    Integer labels in the index are row numbers.
    """

    name = "local"
    index_params: dict[str, tuple[str, ...]] = {}

    def __init__(self, data_dir: str | os.PathLike[str] | None = None) -> None:
        """Open the backend's part of a data directory.

        Args:
            data_dir: root of the data directory (default :func:`default_data_dir`); this
                backend's collections go under ``<data_dir>/<name>/``.
        """
        self.root = Path(data_dir if data_dir is not None else default_data_dir()) / self.name
        self._open: dict[str, Collection] = {}

    def path(self, collection: str) -> str:
        return str(self.root / check_collection_name(collection))

    def exists(self, collection: str) -> bool:
        return (Path(self.path(collection)) / META).is_file()

    def create(self, collection: str, spec: IndexSpec, overwrite: bool = False) -> None:
        if self.exists(collection) and not overwrite:
            raise SmecError(
                f"collection {collection!r} already exists in {self.root}; "
                "pass overwrite=True to replace it"
            )
        allowed = self.index_params.get(spec.index)
        if allowed is None:
            kinds = ", ".join(self.index_params)
            raise SmecError(f"{self.name} has no index {spec.index!r}; use one of {kinds}")
        unknown = sorted(set(spec.params) - set(allowed))
        if unknown:
            raise SmecError(
                f"unknown {self.name} {spec.index} parameter(s) {', '.join(unknown)}; "
                f"use {', '.join(allowed) or 'none'}"
            )
        params = self._resolve_params(spec.index, int(spec.dim), dict(spec.params))
        spec = IndexSpec(int(spec.dim), spec.metric, spec.index, params)
        col = Collection(collection, spec, [], [])
        self._init_index(col)
        self._commit(col)

    def spec(self, collection: str) -> IndexSpec:
        return IndexSpec(**self._load(collection).spec.to_dict())

    def count(self, collection: str) -> int:
        return len(self._load(collection).ids)

    def native_index(self, collection: str) -> Any:
        """The backend's live index object (CPU), for inspection; do not modify it."""
        return self._load(collection).index

    def add(
        self,
        collection: str,
        ids: Sequence[str],
        vectors: np.ndarray,
        payloads: Sequence[dict[str, Any]] | None = None,
        batch_size: int = 1000,
    ) -> None:
        """Append points; the whole call is committed to disk at once.

        Args:
            collection: an existing collection.
            ids: one new, unique, non-empty string per vector.
            vectors: (n, dim) array.
            payloads: one JSON-serialisable dict per vector, or ``None``.
            batch_size: rows handed to the index per call.
        """
        col = self._load(collection)
        vectors = check_vectors(vectors, col.spec.dim)
        ids = check_ids(ids, len(vectors))
        payloads = check_payloads(payloads, len(ids))
        _check_positive(batch_size, "batch_size")
        existing = set(col.ids)
        taken = [i for i in ids if i in existing]
        if taken:
            raise SmecError(
                f"{len(taken)} ids already in {collection!r} (e.g. {taken[0]!r}); "
                "add only new ids, or recreate the collection with overwrite=True"
            )
        if not ids:
            return
        try:
            self._add(col, vectors, batch_size)
            col.ids.extend(ids)
            col.payloads.extend(payloads)
            col.id_table = None
            self._commit(col)
        except BaseException:
            self._open.pop(collection, None)  # memory may be ahead of disk: reload next time
            raise

    def search(
        self, collection: str, queries: np.ndarray, k: int
    ) -> tuple[list[list[str]], np.ndarray]:
        col = self._load(collection)
        queries = check_vectors(queries, col.spec.dim, "queries")
        _check_positive(k, "k")
        labels = np.full((len(queries), k), -1, dtype=np.int64)
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        found = min(k, len(col.ids))
        if found and len(queries):
            got_labels, got_scores = self._search(col, queries, found)
            labels[:, :found], scores[:, :found] = got_labels, got_scores
        scores[labels < 0] = -np.inf
        if col.id_table is None:
            col.id_table = np.array([*col.ids, ""], dtype=object)
        return col.id_table[labels].tolist(), scores

    def iterate(self, collection: str, batch_size: int = 1000) -> Iterator[Batch]:
        """The points present when called, in row order, ``batch_size`` at a time."""
        col = self._load(collection)
        _check_positive(batch_size, "batch_size")
        return self._batches(col, len(col.ids), batch_size)

    def _batches(self, col: Collection, n: int, batch_size: int) -> Iterator[Batch]:
        for start in range(0, n, batch_size):
            stop = min(n, start + batch_size)
            vectors = np.ascontiguousarray(self._vectors(col, start, stop), dtype=np.float32)
            yield Batch(col.ids[start:stop], vectors, col.payloads[start:stop])

    def drop(self, collection: str) -> None:
        """Delete the collection's files; dropping a missing collection does nothing."""
        directory = Path(self.path(collection))
        self._open.pop(collection, None)
        if directory.exists():
            # Rename first so the collection disappears at once, even if deleting is cut short.
            doomed = directory.with_name(f".dropped-{collection}-{uuid.uuid4().hex[:8]}")
            os.replace(directory, doomed)
            shutil.rmtree(doomed)

    def close(self) -> None:
        self._open.clear()

    def _load(self, collection: str) -> Collection:
        meta_path = Path(self.path(collection)) / META
        try:
            # One stat on the hot path (every search); the file is opened only when it moved.
            st = os.stat(meta_path)
            col = self._open.get(collection)
            if col is not None and col.stamp == (st.st_ino, st.st_mtime_ns, st.st_size):
                return col
            with open(meta_path, "rb") as handle:
                st = os.fstat(handle.fileno())
                stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
                meta = json.loads(handle.read())
        except FileNotFoundError:
            self._open.pop(collection, None)
            raise SmecError(
                f"no collection {collection!r} in {self.root}; create it first"
            ) from None
        try:
            files = meta["files"]
            with open(meta_path.parent / files["payloads"], encoding="utf-8") as handle:
                payloads = [json.loads(line) for line in handle]
            col = Collection(
                collection, IndexSpec(**meta["spec"]), list(meta["ids"]), payloads, files
            )
            if len(col.payloads) != len(col.ids):
                raise ValueError(f"{len(col.payloads)} payloads for {len(col.ids)} ids")
            self._read_index(col, meta_path.parent)
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise SmecError(
                f"collection {collection!r} in {meta_path.parent} is unreadable "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                "drop it and index again"
            ) from None
        col.stamp = stamp
        self._open[collection] = col
        return col

    def _commit(self, col: Collection) -> None:
        directory = Path(self.path(col.name))
        directory.mkdir(parents=True, exist_ok=True)
        generation = uuid.uuid4().hex[:12]
        files = {"payloads": f"payloads-{generation}.jsonl"}
        with open(directory / files["payloads"], "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(p) + "\n" for p in col.payloads)
        files.update(self._write_index(col, directory, generation))
        for name in files.values():
            _fsync(directory / name)
        meta = {
            "format": FORMAT,
            "backend": self.name,
            "generation": generation,
            "spec": col.spec.to_dict(),
            "files": files,
            "ids": col.ids,
        }
        temporary = directory / f".{META}.{generation}.tmp"
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(meta, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, directory / META)
        _fsync(directory)
        st = os.stat(directory / META)
        col.files, col.stamp = files, (st.st_ino, st.st_mtime_ns, st.st_size)
        self._open[col.name] = col
        # Older generations, and anything a crashed write left behind.
        for entry in directory.iterdir():
            if entry.name != META and entry.name not in files.values() and entry.is_file():
                entry.unlink(missing_ok=True)

    # Backend hooks.
    def _resolve_params(self, kind: str, dim: int, params: dict[str, Any]) -> dict[str, Any]:
        """Checked parameters of index ``kind``, defaults filled in (stored in the spec)."""
        raise NotImplementedError

    def _init_index(self, col: Collection) -> None:
        """Set ``col.index`` (and ``col.extra``) to a new, empty index for ``col.spec``."""
        raise NotImplementedError

    def _read_index(self, col: Collection, directory: Path) -> None:
        """Set ``col.index`` (and ``col.extra``) from the files named in ``col.files``."""
        raise NotImplementedError

    def _write_index(self, col: Collection, directory: Path, generation: str) -> dict[str, str]:
        """Write the index files of ``generation``; return role -> file name."""
        raise NotImplementedError

    def _add(self, col: Collection, vectors: np.ndarray, batch_size: int) -> None:
        """Add checked vectors under labels ``len(col.ids)`` onwards."""
        raise NotImplementedError

    def _search(self, col: Collection, queries: np.ndarray, k: int) -> tuple[Any, Any]:
        """(labels, scores) of shape (nq, k), best first, label -1 for a missing hit."""
        raise NotImplementedError

    def _vectors(self, col: Collection, start: int, stop: int) -> np.ndarray:
        """The stored vectors of rows ``start`` to ``stop``."""
        raise NotImplementedError


def _check_positive(value: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise SmecError(f"{what} must be a positive integer, got {value!r}")
