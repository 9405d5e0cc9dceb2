"""Qdrant, three ways: the embedded engine (qdrant-edge), a server, or qdrant-client's local mode.

* ``mode="edge"`` (the default without ``url``): qdrant-edge runs Qdrant's real engine in
  process (segments, HNSW, quantization, mmap storage), one shard per collection under
  ``<data_dir>/qdrant/<collection>/``, aliases in ``<data_dir>/qdrant/aliases.json``. Use
  it for latency and memory figures without a server. How HNSW gets built there is in
  :mod:`smec_index.connectors.qdrant.edge_store`.
* ``url=...``: a Qdrant server through qdrant-client; the API key comes from ``api_key`` or
  ``$QDRANT_API_KEY`` and is never shown in messages or the repr.
* ``mode="local"``: qdrant-client's local mode under ``<data_dir>/qdrant-local``. It is a
  pure-Python brute-force scan that ignores HNSW and quantization settings: good for fast
  tests of client code, never for latency or memory figures.

Spec mapping: metric ``cosine``/``ip``/``l2`` -> Cosine/Dot/Euclid; ``M`` and
``ef_construction`` -> HNSW ``m`` and ``ef_construct``; ``ef_search`` -> ``hnsw_ef`` at
search; ``quantization`` ``scalar`` (int8, 0.99 quantile), ``binary`` (``bits`` 1, 1.5 or 2
per dimension, default 1), ``product`` (``pq_compression``, x16 by default) or ``turbo``
(TurboQuant, ``bits`` 1, 1.5, 2, 4 or 8, default 4), with codes kept in RAM, candidates
oversampled (``oversampling``, default 2 for int8 and 4 otherwise) and rescored with the
original vectors, or, with ``rescore=False`` (HNSW only), ranked by the codes alone (the
originals stay on disk, unread by search, and in edge mode out of ``index_bytes``; a
server's telemetry cannot tell them apart); ``index="flat"`` keeps a plain index and
searches exactly. Qdrant normalises cosine vectors when it stores them, so
:meth:`QdrantConnector.iterate` gives unit vectors back.
``l2`` scores are negated Euclidean distances (not squared).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from smec_index.connectors.base import Batch, IndexSpec, Sizes, default_data_dir
from smec_index.connectors.qdrant.settings import (
    QdrantSettings,
    QdrantStore,
    point_uuid,
    to_batch,
    with_id,
)
from smec_index.errors import SmecError
from smec_index.secrets import shown_url

MODES = ("edge", "local")
QDRANT_PARAMS = ("quantization", "pq_compression", "bits", "oversampling", "rescore")


class QdrantBackend:
    """A :class:`~smec_index.connectors.base.Backend` over Qdrant.

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
    index_kinds = {"hnsw": QDRANT_PARAMS, "flat": QDRANT_PARAMS}

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        data_dir: str | Path | None = None,
        mode: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._settings: dict[str, tuple[IndexSpec, QdrantSettings]] = {}
        self._lives: dict[str, Any] = {}  # of the collections whose settings are kept
        self._unbuilt: set[str] = set()  # collections written to since their last build
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
            from smec_index.connectors.qdrant.client_store import ClientStore
            from smec_index.connectors.qdrant.server import (
                check_server_url,
                connect_server,
            )

            if mode not in (None, "server"):
                raise SmecError(f"mode {mode!r} is for embedded Qdrant; leave it out with --url")
            check_server_url(url, "--url")
            self.mode, self.where = "server", shown_url(url)
            api_key = api_key or os.environ.get("QDRANT_API_KEY")
            self._store = ClientStore(connect_server(url, api_key, timeout), self.where)
            return
        self.mode = mode or "edge"
        if self.mode not in MODES:
            raise SmecError(f"unknown Qdrant mode {mode!r}; use edge or local (or pass --url)")
        root = Path(data_dir) if data_dir is not None else default_data_dir()
        if self.mode == "edge":
            from smec_index.connectors.qdrant.edge_store import EdgeStore

            self.where = str(root / "qdrant")
            self._store = EdgeStore(root)
        else:
            from smec_index.connectors.qdrant.client_store import open_local
            from smec_index.connectors.storage import make_directory

            self.where = str(root / "qdrant-local")
            make_directory(root)
            self._store = open_local(root / "qdrant-local")

    def __repr__(self) -> str:
        return f"QdrantBackend(mode={self.mode!r}, at={self.where!r})"

    @property
    def store(self) -> QdrantStore:
        """The backend in use (an ``EdgeStore`` or a ``ClientStore``), for inspection."""
        if self._store is None:
            raise SmecError("this Qdrant connector is closed; open a new one")
        return self._store

    def path(self, collection: str) -> str:
        """Where an embedded (edge) collection's files are; servers and local mode have none
        of ours."""
        if self.mode != "edge":
            raise SmecError(f"Qdrant in {self.mode} mode keeps no collection directories")
        return str(self.store.directory(self._target(collection)))

    def life(self, collection: str) -> Any:
        """The edge store's record of whether ``collection`` still exists in this process
        (``None`` for a server or local mode, whose collections are the server's)."""
        life = getattr(self.store, "life", None)
        return None if life is None else life(self._target(collection))

    def _target(self, collection: str) -> str:
        return self.store.aliases().get(collection, collection)

    def check(self, spec: IndexSpec) -> None:
        """Every Qdrant parameter's value (the connector checked the names)."""
        QdrantSettings.from_spec(spec)

    def create(self, collection: str, spec: IndexSpec) -> None:
        settings = QdrantSettings.from_spec(spec)
        self._settings.pop(collection, None)
        self._unbuilt.discard(collection)
        self.store.create(collection, spec, settings)
        self._settings[collection] = (spec, settings)
        self._lives[collection] = self.life(collection)

    def exists(self, collection: str) -> bool:
        return self.store.exists(self._target(collection))

    def foreign(self, collection: str) -> bool:
        return self.store.foreign(collection)

    def collections(self) -> list[str]:
        return self.store.collections()

    def spec(self, collection: str) -> IndexSpec:
        return self._loaded(self._target(collection))[0]

    def _loaded(self, collection: str) -> tuple[IndexSpec, QdrantSettings]:
        life = self._lives.get(collection)
        if life is not None and life.ended:  # made again by another connector of this process
            self._settings.pop(collection, None)
            self._lives.pop(collection, None)
            self.store.reopen(collection)
        if collection not in self._settings:
            self._lives[collection] = self.life(collection)
            spec = self.store.spec(collection)
            self._settings[collection] = (spec, QdrantSettings.from_spec(spec))
        return self._settings[collection]

    def upsert(
        self, collection: str, ids: list[str], vectors: np.ndarray, payloads: list[dict]
    ) -> None:
        """Upsert one batch; the index (HNSW, quantization) is built once, lazily.

        Qdrant builds the graph on ``optimize``, so it runs at the next flush, search,
        count, iterate or size query (or close), not after every write: a build that writes
        in many batches pays for one graph, not one per batch.
        """
        name = self._target(collection)  # cosine vectors come unit length (Connector.add)
        points = [self._point_ids(name)(i) for i in ids]
        if len(set(points)) != len(points):  # ids are unique here: two met in 63 bits
            raise SmecError(f"two ids of this batch map to one Qdrant point id in {name!r}; "
                            "please report it with the ids")  # fmt: skip
        with self._engine_errors(name, "write"):
            self.store.upsert(
                name,
                points,
                vectors,
                [with_id(p, i) for p, i in zip(payloads, ids, strict=True)],
            )
        self._unbuilt.add(name)

    def flush(self, collection: str) -> None:
        self._built(collection)

    def _built(self, collection: str) -> tuple[IndexSpec, QdrantSettings]:
        name = self._target(collection)
        spec, settings = self._loaded(name)
        if name in self._unbuilt:
            self.store.build(name, settings)
            self._unbuilt.discard(name)
        return spec, settings

    def get(self, collection: str, ids: list[str]) -> Batch:
        name = self._target(collection)
        spec, _ = self._loaded(name)
        with self._engine_errors(name, "read"):
            points = self.store.retrieve(name, [self._point_ids(name)(i) for i in ids])
        return to_batch(points, spec.dim)

    @contextlib.contextmanager
    def _engine_errors(self, name: str, what: str) -> Iterator[None]:
        """qdrant-edge's plain Exceptions (an I/O error: the folder removed under an open
        connector; a dimension its files disagree on) as one line."""
        try:
            yield
        except SmecError:
            raise
        except Exception as exc:  # noqa: BLE001 - qdrant-edge raises plain Exceptions
            if self.mode != "edge":
                raise
            first = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
            raise SmecError(f"Qdrant could not {what} collection {name!r} at {self.where} "
                            f"({first}); check that its folder is there and its files are "
                            "the ones Qdrant wrote, or rebuild it") from None  # fmt: skip

    def search(
        self, collection: str, queries: np.ndarray, k: int, params: dict[str, int]
    ) -> list[list[tuple[str, float]]]:
        """Qdrant's similarities for ``cosine``/``ip``, negated Euclidean for ``l2``."""
        spec, settings = self._built(collection)
        if "ef_search" in params:
            settings = dataclasses.replace(settings, ef_search=params["ef_search"])
        with self._engine_errors(self._target(collection), "search"):
            hits = self.store.search(self._target(collection), queries, k, settings)
        sign = -1.0 if spec.metric == "l2" else 1.0
        return [[(point_id, sign * score) for point_id, score in found] for found in hits]

    def _point_ids(self, name: str) -> Any:
        """How ``name`` stores ids: qdrant-edge's own choice per collection, UUIDs elsewhere."""
        choose = getattr(self.store, "point_ids", None)
        return point_uuid if choose is None else choose(name)

    def searcher(self, collection: str, params: dict[str, int]) -> Any:
        """The lean search of :class:`~smec_index.connectors.contract.Searcher` where the
        engine runs in process (qdrant-edge): settings bound once, point ids mapped back
        through a local table instead of a payload read per hit. ``None`` elsewhere (a
        server or local mode answers through :meth:`search`)."""
        from smec_index.connectors.contract import PAD_LIMIT

        engine = self._bound(collection, params, "searcher")
        if engine is None:
            return None
        name = self._target(collection)
        sign = np.float32(-1.0 if self.spec(collection).metric == "l2" else 1.0)

        def search(queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
            if k > PAD_LIMIT:  # as Connector.search: no slots for hits that cannot exist
                k = max(1, min(k, self.store.count(name)))
            ids, scores = engine(queries, k)
            return ids, scores if sign > 0 else np.where(np.isfinite(scores), -scores, scores)

        return search

    def raw_engine(self, collection: str, params: dict[str, int]) -> Any:
        """qdrant-edge's own query on the same shard with the same settings (what a
        benchmark times beside the lean path); ``None`` for a server or local mode."""
        return self._bound(collection, params, "raw_engine")

    def _bound(self, collection: str, params: dict[str, int], what: str) -> Any:
        bind = getattr(self.store, what, None)
        if bind is None:
            return None
        _, settings = self._built(collection)
        if "ef_search" in params:
            settings = dataclasses.replace(settings, ef_search=params["ef_search"])
        return bind(self._target(collection), settings)

    def count(self, collection: str) -> int:
        self._built(collection)
        return self.store.count(self._target(collection))

    def iterate(self, collection: str, batch_size: int, cursor: str | None) -> Iterator[Batch]:
        """Qdrant's scroll order (by point id); the cursor is the next page's first point id."""
        spec, _ = self._built(collection)
        pages = self.store.scroll(self._target(collection), batch_size, cursor)
        while True:
            try:
                points, offset = next(pages)
            except StopIteration:
                return
            except SmecError:
                raise
            except Exception:  # noqa: BLE001 - qdrant-edge's plain Exception, a dropped shard
                if self._target(collection) not in self.store.collections():
                    raise SmecError(f"collection {collection!r} was dropped while it was "
                                    "being iterated; iterate it again once it is rebuilt"
                                    ) from None  # fmt: skip
                raise
            yield to_batch(points, spec.dim, offset)

    def sizes(self, collection: str) -> Sizes:
        _, settings = self._built(collection)
        return self.store.sizes(self._target(collection), settings)

    def drop(self, collection: str) -> None:
        self._settings.pop(collection, None)
        self._unbuilt.discard(collection)
        self.store.drop(collection)

    def aliases(self) -> dict[str, str]:
        return self.store.aliases()

    def set_alias(self, alias: str, collection: str) -> None:
        self.store.set_alias(alias, collection)

    def drop_alias(self, alias: str) -> None:
        self.store.drop_alias(alias)

    def close(self) -> None:
        """Build what is pending, then release files, locks and connections."""
        if self._store is None:
            return
        try:
            for collection in list(self._unbuilt):
                if self._store.exists(collection):
                    self.flush(collection)
        finally:  # a failed build must not keep the shard's lock
            self._store.close()
            self._store = None
            self._unbuilt.clear()
            self._settings.clear()
