"""Qdrant through qdrant-client: a real server (``url``) or the client's local mode (``path``).

Server collections are created with indexing off (``indexing_threshold=0``, Qdrant's bulk
upload recipe); :meth:`ClientStore.build` then lowers it to 1 KB and waits until the
collection is green, so HNSW is built before ``add`` returns and searches go through it
(``full_scan_threshold`` is lowered too, see :mod:`smec_index.connectors.qdrant.settings`).

The :class:`IndexSpec` rides in the collection's ``metadata`` (Qdrant >= 1.16 keeps it);
where a server drops it, the spec is rebuilt from the collection config (dim, distance,
HNSW, quantization) and the search-side settings are lost: ``ef_search``, ``oversampling``
and ``rescore=False`` (search then rescores again).

Local mode is qdrant-client's pure-Python brute-force scan: it accepts HNSW and
quantization settings and ignores them (its collection info shows Qdrant's defaults
whatever was asked). It exists to test client code quickly and must never give latency or
memory figures.
"""

from __future__ import annotations

import atexit
import contextlib
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse

from smec_index.connectors.base import IndexSpec, Sizes
from smec_index.connectors.qdrant.server import TRANSPORT_ERRORS, failure, telemetry_sizes
from smec_index.connectors.qdrant.settings import (
    ID_KEY,
    Hit,
    Points,
    QdrantSettings,
    original_id,
    scroll_pages,
    to_points,
)
from smec_index.connectors.storage import DISK_METHOD, disk_bytes, end_life, life_of
from smec_index.errors import SmecError

SPEC_KEY = "smec_index_spec"
BUILD_TIMEOUT_S = 3600.0
QUERY_CHUNK = 256
_DISTANCES = {
    "cosine": models.Distance.COSINE,
    "ip": models.Distance.DOT,
    "l2": models.Distance.EUCLID,
}
_METRICS = {distance: metric for metric, distance in _DISTANCES.items()}


def _quantization(settings: QdrantSettings) -> Any:
    if settings.quantization == "scalar":
        config = models.ScalarQuantizationConfig(
            type=models.ScalarType.INT8, quantile=0.99, always_ram=True
        )
        return models.ScalarQuantization(scalar=config)
    if settings.quantization == "binary":
        encoding = _BINARY_ENCODINGS[settings.bits or 1.0]
        config = models.BinaryQuantizationConfig(always_ram=True, encoding=encoding)
        return models.BinaryQuantization(binary=config)
    if settings.quantization == "product":
        ratio = models.CompressionRatio(f"x{settings.compression}")
        config = models.ProductQuantizationConfig(compression=ratio, always_ram=True)
        return models.ProductQuantization(product=config)
    if settings.quantization == "turbo":
        config = models.TurboQuantQuantizationConfig(
            always_ram=True, bits=_TURBO_BITS[settings.bits or 4.0]
        )
        return models.TurboQuantization(turbo=config)
    return None


_BINARY_ENCODINGS = {
    1.0: models.BinaryQuantizationEncoding.ONE_BIT,
    1.5: models.BinaryQuantizationEncoding.ONE_AND_HALF_BITS,
    2.0: models.BinaryQuantizationEncoding.TWO_BITS,
}
_TURBO_BITS = {
    1.0: models.TurboQuantBitSize.BITS1,
    1.5: models.TurboQuantBitSize.BITS1_5,
    2.0: models.TurboQuantBitSize.BITS2,
    4.0: models.TurboQuantBitSize.BITS4,
    8.0: models.TurboQuantBitSize.BITS8,
}
# Read back: a binary encoding or a TurboQuant size -> bits per dimension.
_BITS_OF = {
    code: bits for table in (_BINARY_ENCODINGS, _TURBO_BITS) for bits, code in table.items()
}


def spec_from_info(info: models.CollectionInfo) -> IndexSpec:
    """The spec stored with a collection, or rebuilt from its config where none was."""
    metadata = getattr(info.config, "metadata", None) or {}
    if SPEC_KEY in metadata:
        return IndexSpec(**metadata[SPEC_KEY])
    vectors = info.config.params.vectors
    if not isinstance(vectors, models.VectorParams):
        raise SmecError("this Qdrant collection has named vectors; smec-index reads unnamed ones")
    # Indexing switched off (threshold 0) is how a flat collection is kept from building
    # a graph; anything else searches through HNSW. This fallback serves collections made
    # by other tools (smec-index stores its spec in the metadata).
    optimizer = getattr(info.config, "optimizer_config", None)
    flat = optimizer is not None and optimizer.indexing_threshold == 0
    hnsw, params = info.config.hnsw_config, {}
    if not flat:
        params.update(M=hnsw.m, ef_construction=hnsw.ef_construct)
    quantization = info.config.quantization_config
    for kind in ("scalar", "binary", "product", "turbo"):
        config = getattr(quantization, kind, None) if quantization is not None else None
        if config is not None:
            params["quantization"] = kind
            bits = _BITS_OF.get(getattr(config, "encoding", None) or getattr(config, "bits", None))
            if bits is not None:
                params["bits"] = bits
    return IndexSpec(
        dim=vectors.size,
        metric=_METRICS[vectors.distance],
        index="flat" if flat else "hnsw",
        params=params,
    )


class ClientStore:
    """Collections behind one :class:`QdrantClient`; ``where`` names it in error messages."""

    def __init__(self, client: QdrantClient, where: str, storage: Path | None = None) -> None:
        self.client, self.where, self.storage = client, where, storage
        self._aliases: dict[str, str] | None = None
        # Local mode is one SQLite connection and Python dicts, safe for one thread at a time
        # (threads writing at once lost points and raised sqlite3 errors): calls take turns.
        self._serial = threading.RLock() if storage is not None else contextlib.nullcontext()

    @property
    def server(self) -> bool:
        return self.storage is None

    @contextmanager
    def guard(self) -> Iterator[None]:
        """Turn transport and HTTP failures into one-line errors that name the server (and,
        in local mode, let one thread in at a time)."""
        try:
            with self._serial:
                yield
        except UnexpectedResponse as exc:
            detail = (exc.content or b"").decode(errors="replace").splitlines()[:1]
            raise SmecError(
                f"Qdrant at {self.where} answered HTTP {exc.status_code} "
                f"{' '.join(detail)[:200]}; check the request and the server's log"
            ) from None
        except TRANSPORT_ERRORS as exc:
            reason = failure(exc)
            raise SmecError(
                f"lost Qdrant at {self.where} ({reason}), which answered before; check that "
                "the server is still running, then run the command again"
            ) from None

    def exists(self, collection: str) -> bool:
        with self.guard():
            return self.client.collection_exists(collection)

    def collections(self) -> list[str]:
        with self.guard():
            return [c.name for c in self.client.get_collections().collections]

    def aliases(self) -> dict[str, str]:
        """Read once per store and kept (every call resolves names through it); switches
        made through this store refresh it, other clients' switches show on reopening."""
        if self._aliases is None:
            with self.guard():
                found = self.client.get_aliases().aliases
            self._aliases = {a.alias_name: a.collection_name for a in found}
        return dict(self._aliases)

    def set_alias(self, alias: str, collection: str) -> None:
        # Delete + create in one request: Qdrant applies the list atomically.
        operations: list[Any] = []
        if alias in self.aliases():
            operations.append(
                models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias))
            )
        operations.append(
            models.CreateAliasOperation(
                create_alias=models.CreateAlias(collection_name=collection, alias_name=alias)
            )
        )
        self._aliases = None
        with self.guard():
            self.client.update_collection_aliases(change_aliases_operations=operations)

    def drop_alias(self, alias: str) -> None:
        operation = models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias))
        self._aliases = None
        with self.guard():
            self.client.update_collection_aliases(change_aliases_operations=[operation])

    def life(self, collection: str) -> Any:
        """Ended when this process drops or makes ``collection`` again here, so a searcher
        bound before refuses instead of answering from what now has the name (another
        process's drop is the server's, unseen without a call per query)."""
        return life_of(f"qdrant:{self.where}/{collection}")

    def create(self, collection: str, spec: IndexSpec, settings: QdrantSettings) -> None:
        end_life(f"qdrant:{self.where}/{collection}")
        with self.guard():
            self.client.delete_collection(collection)
            self.client.create_collection(
                collection,
                vectors_config=models.VectorParams(size=spec.dim, distance=_DISTANCES[spec.metric]),
                hnsw_config=models.HnswConfigDiff(
                    m=settings.m,
                    ef_construct=settings.ef_construct,
                    full_scan_threshold=QdrantSettings.full_scan_threshold_kb,
                ),
                optimizers_config=models.OptimizersConfigDiff(
                    indexing_threshold=0, default_segment_number=1
                ),
                quantization_config=_quantization(settings),
                metadata={SPEC_KEY: spec.to_dict()},
            )
        if not self.server:
            _skip_fsync(self.client, collection)

    def spec(self, collection: str) -> IndexSpec:
        with self.guard():
            info = self.client.get_collection(collection)
        if not self.server and SPEC_KEY not in (getattr(info.config, "metadata", None) or {}):
            # local mode keeps metadata: without a spec the collection is the user's own (a
            # server before 1.16 drops it, and gets the spec rebuilt from its config)
            raise SmecError(
                f"collection {collection!r} at {self.where} was not made by smec-index (it "
                "has no smec-index spec), so smec-index leaves it alone: pick a collection "
                "`build` made, or read and write it with your own client"
            )
        return spec_from_info(info)

    def foreign(self, collection: str) -> bool:
        with self.guard():
            info = self.client.get_collection(collection)
        return SPEC_KEY not in (getattr(info.config, "metadata", None) or {})

    def upsert(
        self, collection: str, ids: list[str], vectors: np.ndarray, payloads: list[dict]
    ) -> None:
        batch = models.Batch(ids=ids, vectors=vectors.tolist(), payloads=payloads)
        with self.guard():
            self.client.upsert(collection, points=batch, wait=True)

    def build(self, collection: str, settings: QdrantSettings) -> None:
        if not self.server or not settings.hnsw:
            return
        with self.guard():
            self.client.update_collection(
                collection,
                optimizers_config=models.OptimizersConfigDiff(
                    indexing_threshold=QdrantSettings.indexing_threshold_kb
                ),
            )
            self._wait_until_indexed(collection)

    def _wait_until_indexed(self, collection: str) -> None:
        # The optimizers start asynchronously after update_collection, so one green reading
        # may come before they do: wait for every vector indexed, or green for ~1 s (a
        # segment under 1 KB stays plain).
        deadline, green = time.monotonic() + BUILD_TIMEOUT_S, 0
        while time.monotonic() < deadline:
            info = self.client.get_collection(collection)
            if info.status == models.CollectionStatus.RED:
                raise SmecError(
                    f"Qdrant at {self.where} failed to index {collection!r} "
                    f"({info.optimizer_status}); check the server's log"
                )
            if info.status == models.CollectionStatus.GREY:  # pending, not started
                self.client.update_collection(
                    collection, optimizers_config=models.OptimizersConfigDiff()
                )
            green = green + 1 if info.status == models.CollectionStatus.GREEN else 0
            indexed = (info.indexed_vectors_count or 0) >= (info.points_count or 0)
            if green >= 5 or (green and indexed):
                return
            time.sleep(0.2)
        raise SmecError(
            f"Qdrant at {self.where} is still indexing {collection!r} after "
            f"{BUILD_TIMEOUT_S:.0f} s; check the server's load and log"
        )

    def search(
        self, collection: str, queries: np.ndarray, k: int, settings: QdrantSettings
    ) -> list[list[Hit]]:
        quantization = None
        if settings.quantization:
            quantization = models.QuantizationSearchParams(
                rescore=settings.rescore, oversampling=settings.oversampling
            )
        params = models.SearchParams(
            hnsw_ef=settings.ef_search, exact=not settings.hnsw, quantization=quantization
        )
        if not self.server:
            params = None  # local mode scans anyway, and warns on every search given params
        rows = queries.tolist()
        hits: list[list[Hit]] = []
        with self.guard():
            for start in range(0, len(rows), QUERY_CHUNK):
                requests = [
                    models.QueryRequest(query=row, limit=k, params=params, with_payload=[ID_KEY])
                    for row in rows[start : start + QUERY_CHUNK]
                ]
                for response in self.client.query_batch_points(collection, requests):
                    hits.append([(original_id(p.payload, p.id), p.score)
                                 for p in response.points])  # fmt: skip
        return hits

    def retrieve(self, collection: str, point_ids: list[str]) -> Points:
        with self.guard():
            records = self.client.retrieve(
                collection, point_ids, with_payload=True, with_vectors=True
            )
        return to_points(records)

    def scroll(
        self, collection: str, batch_size: int, offset: str | None
    ) -> Iterator[tuple[Points, str | None]]:
        def fetch(start: str | None) -> tuple[list[Any], Any]:
            with self.guard():
                return self.client.scroll(
                    collection, limit=batch_size, offset=start, with_vectors=True
                )

        return scroll_pages(fetch, offset)

    def count(self, collection: str) -> int:
        with self.guard():
            return self.client.count(collection, exact=True).count

    def sizes(self, collection: str, settings: QdrantSettings) -> Sizes:
        del settings  # a server's telemetry cannot leave the originals out (rescore=false)
        if not self.server:
            # Local mode keeps points pickled in SQLite, vectors and payloads together: there
            # is no index to measure. Never a figure to compare.
            path = self.storage / "collection" / collection
            total = disk_bytes(path) if path.is_dir() else None
            return Sizes(None, total, f"local mode (brute force, no index); total: {DISK_METHOD}")
        with self.guard():
            telemetry = self.client.http.client.request(
                type_=dict, method="GET", url="/telemetry", params={"details_level": "10"}
            )
        return telemetry_sizes(telemetry, collection)

    def drop(self, collection: str) -> None:
        self._aliases = None  # Qdrant drops the collection's aliases with it
        end_life(f"qdrant:{self.where}/{collection}")
        with self.guard():
            self.client.delete_collection(collection)

    def close(self) -> None:
        with self._serial:
            self.client.close()


_OPEN_LOCAL: weakref.WeakSet = weakref.WeakSet()  # local-mode clients this process opened


def local_client(path: Path) -> QdrantClient:
    """``QdrantClient(path=...)``, closed at interpreter exit if its owner never closed it:
    left to its ``__del__`` during shutdown (an app object in a reference cycle), it printed
    "Exception ignored ... ImportError: sys.meta_path is None" with a traceback."""
    client = QdrantClient(path=str(path))
    _OPEN_LOCAL.add(client)
    return client


@atexit.register
def _close_local_clients() -> None:
    for client in list(_OPEN_LOCAL):
        with contextlib.suppress(Exception):
            client.close()


def open_local(path: Path) -> ClientStore:
    """A store in qdrant-client's local mode under ``path`` (brute force, tests only)."""
    from smec_index.connectors.qdrant.source import check_local_folder

    check_local_folder(Path(path), "Qdrant local storage")
    try:
        client = local_client(path)
    except (RuntimeError, OSError) as exc:
        if isinstance(exc, RuntimeError) and "already accessed" in str(exc):
            raise SmecError(  # in our words: "use Qdrant server instead" was qdrant-client's
                f"cannot open Qdrant local storage {path}: another connector or process has "
                "it open, and a local folder admits one client; close it, then run again"
            ) from None
        fix = ("pass a data directory you can write" if isinstance(exc, OSError) else
               "close any other connector or process using it")  # fmt: skip
        raise SmecError(
            f"cannot open Qdrant local storage {path}: {str(exc).splitlines()[0]}; {fix}"
        ) from None
    for collection in client.get_collections().collections:
        _skip_fsync(client, collection.name)
    return ClientStore(client, str(path), storage=path)


def _skip_fsync(client: QdrantClient, collection: str) -> None:
    """Let local mode's SQLite commit without fsync (best effort, private attributes).

    Local mode commits every point on its own; with an fsync each, 10,000 points take minutes
    on a virtual disk. Its files only back tests, so surviving a power cut does not matter.
    """
    local = getattr(client, "_client", None)
    persistence = getattr(getattr(local, "collections", {}).get(collection), "storage", None)
    connection = getattr(persistence, "storage", None)
    if isinstance(connection, sqlite3.Connection):
        connection.execute("PRAGMA synchronous=OFF")
