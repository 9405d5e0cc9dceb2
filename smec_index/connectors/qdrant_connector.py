"""Qdrant, three ways: the embedded engine (qdrant-edge), a server, or qdrant-client's local mode.

* ``mode="edge"`` (the default without ``url``): qdrant-edge runs Qdrant's real engine in
  process (segments, HNSW, quantization, mmap storage), one shard per collection under
  ``<data_dir>/qdrant/<collection>/``. Use it for latency and memory figures without a
  server. How HNSW gets built there is in :mod:`qdrant_edge_store`.
* ``url=...``: a Qdrant server through qdrant-client; the API key comes from ``api_key`` or
  ``$QDRANT_API_KEY`` and is never shown in messages or the repr.
* ``mode="local"``: qdrant-client's local mode under ``<data_dir>/qdrant-local``. It is a
  pure-Python brute-force scan that ignores HNSW and quantization settings: good for fast
  tests of client code, never for latency or memory figures.

Spec mapping: metric ``cosine``/``ip``/``l2`` -> Cosine/Dot/Euclid; ``M`` and
``ef_construction`` -> HNSW ``m`` and ``ef_construct``; ``ef_search`` -> ``hnsw_ef`` at
search; ``quantization`` ``scalar`` (int8, 0.99 quantile), ``binary`` (1 bit) or ``product``
(``pq_compression``, x16 by default), with codes kept in RAM, candidates oversampled
(``oversampling``, default 2 for int8 and 4 otherwise) and rescored with the original
vectors; ``index="flat"`` keeps a plain index and searches exactly. Qdrant normalises cosine
vectors when it stores them, so :meth:`QdrantConnector.iterate` gives unit vectors back.
``l2`` scores are negated Euclidean distances (not squared).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
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
from smec_index.connectors.qdrant_common import (
    QdrantSettings,
    QdrantStore,
    point_uuid,
    shown_url,
    with_id,
)
from smec_index.errors import SmecError

MODES = ("edge", "local")


class QdrantConnector:
    """A :class:`~smec_index.connectors.base.Connector` over Qdrant.

    Args:
        url: a Qdrant server (``http://host:6333``); leave out for an embedded mode.
        api_key: the server's API key; defaults to ``$QDRANT_API_KEY``.
        data_dir: where embedded modes keep files; defaults to :func:`default_data_dir`.
        mode: ``edge`` (default) or ``local``; only without ``url``.
        timeout: seconds per server request.

    Raises:
        SmecError: an unknown mode, or a server that cannot be reached within ~8 s.
    """

    name = "qdrant"

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        data_dir: str | Path | None = None,
        mode: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._specs: dict[str, tuple[IndexSpec, QdrantSettings]] = {}
        self._unbuilt: set[str] = set()  # collections added to since their last build
        self._store: QdrantStore | None = None
        try:
            self._open(url, api_key, data_dir, mode, timeout)
        except ImportError as exc:
            raise SmecError(
                f"Qdrant needs {exc.name} here; pip install 'smec-index[qdrant]'"
            ) from None

    def _open(
        self,
        url: str | None,
        api_key: str | None,
        data_dir: str | Path | None,
        mode: str | None,
        timeout: float,
    ) -> None:
        # Each mode imports only its own client library.
        if url:
            from smec_index.connectors.qdrant_client_store import ClientStore
            from smec_index.connectors.qdrant_server import connect_server

            if mode not in (None, "server"):
                raise SmecError(f"mode {mode!r} is for embedded Qdrant; leave it out with --url")
            self.mode, self.where = "server", shown_url(url)
            api_key = api_key or os.environ.get("QDRANT_API_KEY")
            self._store = ClientStore(connect_server(url, api_key, timeout), self.where)
            return
        self.mode = mode or "edge"
        if self.mode not in MODES:
            raise SmecError(f"unknown Qdrant mode {mode!r}; use edge or local (or pass --url)")
        root = Path(data_dir) if data_dir is not None else default_data_dir()
        if self.mode == "edge":
            from smec_index.connectors.qdrant_edge_store import EdgeStore

            self.where = str(root / "qdrant")
            self._store = EdgeStore(root)
        else:
            from smec_index.connectors.qdrant_client_store import open_local

            self.where = str(root / "qdrant-local")
            root.mkdir(parents=True, exist_ok=True)
            self._store = open_local(root / "qdrant-local")

    def __repr__(self) -> str:
        return f"QdrantConnector(mode={self.mode!r}, at={self.where!r})"

    @property
    def store(self) -> QdrantStore:
        """The backend in use (an ``EdgeStore`` or a ``ClientStore``), for inspection."""
        if self._store is None:
            raise SmecError("this Qdrant connector is closed; open a new one")
        return self._store

    def create(self, collection: str, spec: IndexSpec, overwrite: bool = False) -> None:
        """Create ``collection`` for ``spec``; an existing one is an error unless ``overwrite``."""
        check_collection_name(collection)
        settings = QdrantSettings.from_spec(spec)
        if not overwrite and self.store.exists(collection):
            raise SmecError(
                f"collection {collection!r} already exists in Qdrant ({self.where}); "
                "pass --overwrite to replace it"
            )
        self._specs.pop(collection, None)
        self._unbuilt.discard(collection)
        self.store.create(collection, spec, settings)
        self._specs[collection] = (spec, settings)

    def exists(self, collection: str) -> bool:
        return self.store.exists(check_collection_name(collection))

    def spec(self, collection: str) -> IndexSpec:
        """The spec ``collection`` was created with."""
        return self._loaded(collection)[0]

    def _loaded(self, collection: str) -> tuple[IndexSpec, QdrantSettings]:
        if collection not in self._specs:
            if not self.exists(collection):
                raise SmecError(
                    f"no collection {collection!r} in Qdrant ({self.where}); create it first"
                )
            spec = self.store.spec(collection)
            self._specs[collection] = (spec, QdrantSettings.from_spec(spec))
        return self._specs[collection]

    def add(
        self,
        collection: str,
        ids: Sequence[str],
        vectors: np.ndarray,
        payloads: Sequence[dict[str, Any]] | None = None,
        batch_size: int = 1000,
    ) -> None:
        """Upsert points in batches; the index (HNSW, quantization) is built once, lazily.

        Qdrant builds the graph on ``optimize``, so it runs before the next search, count,
        iterate or size query (or close), not after every ``add``: a build that adds in many
        slices pays for one graph, not one per slice.

        Args:
            collection: an existing collection.
            ids: one unique string id per vector; an id already stored is overwritten.
            vectors: (n, dim) array of the collection's dim.
            payloads: one JSON-able dict per vector; the key ``_smec_id`` is reserved.
            batch_size: points per upsert.
        """
        spec, settings = self._loaded(collection)
        vectors = check_vectors(vectors, spec.dim)
        ids = check_ids(ids, len(vectors))
        payloads = list(payloads) if payloads is not None else [{}] * len(ids)
        if len(payloads) != len(ids):
            raise SmecError(f"{len(payloads)} payloads for {len(ids)} vectors; pass one each")
        if batch_size < 1:
            raise SmecError(f"batch_size must be positive, got {batch_size}")
        for start in range(0, len(ids), batch_size):
            stop = start + batch_size
            self.store.upsert(
                collection,
                [point_uuid(i) for i in ids[start:stop]],
                vectors[start:stop],
                [with_id(p, i) for p, i in zip(payloads[start:stop], ids[start:stop], strict=True)],
            )
        self._unbuilt.add(collection)

    def _built(self, collection: str) -> tuple[IndexSpec, QdrantSettings]:
        spec, settings = self._loaded(collection)
        if collection in self._unbuilt:
            self.store.build(collection, settings)
            self._unbuilt.discard(collection)
        return spec, settings

    def search(
        self, collection: str, queries: np.ndarray, k: int
    ) -> tuple[list[list[str]], np.ndarray]:
        """Top-``k`` ids per query, best first, and their (nq, k) float32 scores.

        Scores are Qdrant's similarities for ``cosine``/``ip`` and negated Euclidean
        distances for ``l2``; missing hits are ``""`` and ``-inf``.
        """
        spec, settings = self._built(collection)
        queries = check_vectors(queries, spec.dim, "queries")
        if k < 1:
            raise SmecError(f"k must be positive, got {k}")
        hits = self.store.search(collection, queries, k, settings)
        sign = -1.0 if spec.metric == "l2" else 1.0
        ids = [[""] * k for _ in hits]
        scores = np.full((len(hits), k), -np.inf, dtype=np.float32)
        for row, found in enumerate(hits):
            for column, (point_id, score) in enumerate(found[:k]):
                ids[row][column] = point_id
                scores[row, column] = sign * score
        return ids, scores

    def count(self, collection: str) -> int:
        self._built(collection)
        return self.store.count(collection)

    def iterate(self, collection: str, batch_size: int = 1000) -> Iterator[Batch]:
        """Every point exactly once (Qdrant's scroll order), payloads without ``_smec_id``."""
        spec, _ = self._built(collection)
        if batch_size < 1:
            raise SmecError(f"batch_size must be positive, got {batch_size}")
        for points in self.store.scroll(collection, batch_size):
            vectors = np.asarray([p[2] for p in points], dtype=np.float32).reshape(-1, spec.dim)
            yield Batch(
                ids=[p[0] for p in points], vectors=vectors, payloads=[p[1] for p in points]
            )

    def memory_bytes(self, collection: str) -> int | None:
        """Bytes on disk. Edge: allocated by the shard's segments after a flush (``du``; no
        write-ahead log, no sidecar). Server: its segments' disk usage from ``/telemetry``.
        Local: its SQLite file (never a figure to compare)."""
        self._built(collection)
        return self.store.memory_bytes(collection)

    def _store_has(self, collection: str) -> bool:
        try:
            return self.exists(collection)
        except SmecError:
            return False

    def drop(self, collection: str) -> None:
        """Delete ``collection`` and its files; a missing one is not an error."""
        check_collection_name(collection)
        self._specs.pop(collection, None)
        self._unbuilt.discard(collection)
        self.store.drop(collection)

    def close(self) -> None:
        """Release files, locks and connections; closing twice is fine."""
        if self._store is None:
            return
        try:
            for collection in list(self._unbuilt):
                if self._store_has(collection):
                    self._built(collection)
        finally:  # a failed build must not keep the shard's lock
            self._store.close()
            self._store = None
            self._unbuilt.clear()
            self._specs.clear()
