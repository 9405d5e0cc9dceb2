"""Qdrant's engine in process: one qdrant-edge ``EdgeShard`` per collection.

Layout: ``<data_dir>/qdrant/<collection>/shard/`` is the shard (segments, Qdrant's own
``edge_config.json``), ``<data_dir>/qdrant/<collection>/index_spec.json`` the
:class:`IndexSpec` it was created with. The sidecar is written last, so a collection whose
creation was interrupted does not exist and is cleared by the next ``create``.

How the HNSW graph really gets built (qdrant-edge 0.9): upserts land in an appendable
segment with a *plain* index, and nothing runs in the background. ``EdgeShard.optimize()``
runs Qdrant's optimizers in the caller's thread; the indexing optimizer turns a segment into
an HNSW (and quantized) one only when its vectors exceed ``indexing_threshold`` KB, and a
threshold of 0 disables indexing. The default (about 10 MB) left a 10k x 64 collection
(2.5 MB) unindexed, so shards are created with 1 KB, and the connector calls
:meth:`EdgeStore.build` (``optimize()``) once after adding, before the next read. Even
with a graph, a search scans a segment whose vectors are under ``full_scan_threshold`` KB
(default 10,000): with it, HNSW at ef 64 on random 64-d data gave recall@10 1.0 (a scan),
lowered to 10 KB it gave 0.91 (the graph). Checks:
``info().indexed_vectors_count`` equals the point count after a build, and each
``segments/*/segment.json`` records ``"index": {"type": "hnsw", "options": {"m": ...}}`` and
its ``quantization_config``; :func:`segment_configs` reads those back. One target segment
(``default_segment_number=1``) keeps one graph per collection, as faiss and hnswlib build.

The write-ahead log stays on: besides crash safety it holds the shard's lock, so a second
``EdgeShard.load`` of an open shard fails (``WouldBlock``) instead of writing beside it;
without it two connectors could open one shard. :meth:`EdgeStore.sizes` counts it in
``total_bytes`` only: ``index_bytes`` is each segment's vector storage, quantized codes and
HNSW graph (:func:`is_index_file`), so payloads, the id tracker and the log stay out of it;
with ``rescore=False`` the float32 originals stay out too, since search never reads them.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as edge

from smec_index import safejson
from smec_index.connectors.base import IndexSpec, SearcherStale, Sizes
from smec_index.connectors.qdrant.settings import (
    ID_KEY,
    Points,
    QdrantSettings,
    point_int,
    point_uuid,
    scroll_pages,
    to_points,
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
    life_of,
    purge_dropped,
    refuse_foreign_directory,
    remove_directory,
    start_directory,
    try_flock,
)
from smec_index.errors import SmecError

SPEC_FILE = "index_spec.json"
# Present in a collection whose point ids are :func:`point_int`s (every collection made since
# the lean search path); in one made before, they are :func:`point_uuid`s.
INT_IDS_FILE = "int_point_ids"
# What a create cut short before the spec file leaves in a collection's folder.
# Held (flock) while a connector has the shard open, taken before qdrant-edge touches it: a
# second process's EdgeShard.load of an open shard failed (WouldBlock) only after it had cut
# the first one's payload tracker journal short, whose next flush then failed.
LOCK_FILE = ".shard.lock"
OWN_FILES = ("shard", INT_IDS_FILE, "index_spec.tmp", LOCK_FILE)
_HELD: dict[tuple[str, int], list] = {}  # (folder, lock file inode) -> [handle, users here]
_HELD_GUARD = threading.Lock()
_DISTANCES = {"cosine": edge.Distance.Cosine, "ip": edge.Distance.Dot, "l2": edge.Distance.Euclid}
_COMPRESSIONS = {
    4: edge.CompressionRatio.X4,
    8: edge.CompressionRatio.X8,
    16: edge.CompressionRatio.X16,
    32: edge.CompressionRatio.X32,
    64: edge.CompressionRatio.X64,
}

_BINARY_ENCODINGS = {
    1.0: edge.BinaryQuantizationEncoding.OneBit,
    1.5: edge.BinaryQuantizationEncoding.OneAndHalfBits,
    2.0: edge.BinaryQuantizationEncoding.TwoBits,
}
_TURBO_BITS = {
    1.0: edge.TurboQuantBitSize.Bits1,
    1.5: edge.TurboQuantBitSize.Bits1_5,
    2.0: edge.TurboQuantBitSize.Bits2,
    4.0: edge.TurboQuantBitSize.Bits4,
    8.0: edge.TurboQuantBitSize.Bits8,
}


# Where an indexed (HNSW) segment keeps its float32 vectors, beside ``quantized.data``.
INDEXED_ORIGINALS = "matrix.dat"


def _quantization(settings: QdrantSettings) -> Any:
    # Quantized codes stay in RAM (Pinned), the originals are read back to rescore.
    pinned = edge.Memory.Pinned
    if settings.quantization == "scalar":
        return edge.ScalarQuantizationConfig(edge.ScalarType.Int8, quantile=0.99, memory=pinned)
    if settings.quantization == "binary":
        return edge.BinaryQuantizationConfig(
            encoding=_BINARY_ENCODINGS[settings.bits], memory=pinned
        )
    if settings.quantization == "product":
        return edge.ProductQuantizationConfig(_COMPRESSIONS[settings.compression], memory=pinned)
    if settings.quantization == "turbo":
        return edge.TurboQuantQuantizationConfig(bits=_TURBO_BITS[settings.bits], memory=pinned)
    return None


def edge_config(spec: IndexSpec, settings: QdrantSettings) -> edge.EdgeConfig:
    """The shard configuration for ``spec``: vectors, HNSW, quantization, optimizers."""
    return edge.EdgeConfig(
        vectors=edge.EdgeVectorParams(size=spec.dim, distance=_DISTANCES[spec.metric]),
        hnsw_config=edge.HnswIndexConfig(
            m=settings.m,
            ef_construct=settings.ef_construct,
            full_scan_threshold=QdrantSettings.full_scan_threshold_kb,
        ),
        quantization_config=_quantization(settings),
        optimizers=edge.EdgeOptimizersConfig(
            indexing_threshold=QdrantSettings.indexing_threshold_kb if settings.hnsw else 0,
            default_segment_number=1,
        ),
    )


def segment_configs(shard_dir: Path) -> list[dict[str, Any]]:
    """Each segment's ``config.vector_data[""]`` as Qdrant wrote it (index, quantization)."""
    configs = []
    for path in sorted(shard_dir.glob("segments/*/segment.json")):
        configs.append(safejson.loads(path.read_text())["config"]["vector_data"][""])
    return configs


class EdgeStore(FileAliases):
    """Collections as qdrant-edge shards under ``<data_dir>/qdrant``; shards open lazily."""

    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir) / "qdrant"
        self._shards: dict[str, edge.EdgeShard] = {}
        self._id_maps: dict[str, dict[Any, str]] = {}  # point id -> id, for searchers
        self._writes: dict[str, int] = {}  # per collection: a map is kept only if none ran
        self._lives: dict[str, Life] = {}  # per open shard: ended by a drop in this process
        self._int_ids: dict[str, bool] = {}
        self._specs: dict[str, IndexSpec] = {}
        self._locks: dict[str, Any] = {}  # per open shard: its LOCK_FILE, held
        self._aliases = AliasFile(self.root)

    def directory(self, collection: str) -> Path:
        return self.root / collection

    def shard_dir(self, collection: str) -> Path:
        return self.directory(collection) / "shard"

    def exists(self, collection: str) -> bool:
        """A collection smec-index made, or a folder of someone else's of that name."""
        return committed(self.directory(collection), SPEC_FILE, OWN_FILES) or self.foreign(
            collection)

    def collections(self) -> list[str]:
        return collection_dirs(self.root, SPEC_FILE, OWN_FILES)

    def create(self, collection: str, spec: IndexSpec, settings: QdrantSettings) -> None:
        purge_dropped(self.root)
        # the connector refuses a folder of someone else's first: never deleted here
        refuse_foreign_directory(self.directory(collection), SPEC_FILE, OWN_FILES)
        self.drop(collection)  # a create cut short
        start_directory(self.directory(collection))
        self._lives[collection] = life_of(self.directory(collection))
        self._lock(collection)
        self._shards[collection] = edge.EdgeShard.create(
            str(self.shard_dir(collection)), edge_config(spec, settings)
        )
        (self.directory(collection) / INT_IDS_FILE).write_bytes(b"")  # before the sidecar
        sidecar = self.directory(collection) / SPEC_FILE
        sidecar.with_suffix(".tmp").write_text(json.dumps(spec.to_dict(), indent=2))
        sidecar.with_suffix(".tmp").replace(sidecar)
        self._specs[collection] = spec

    def foreign(self, collection: str) -> bool:
        """A folder under the store that smec-index did not make (a user's own qdrant-edge
        shard kept beside smec-index's, say)."""
        return foreign_directory(self.directory(collection), SPEC_FILE, OWN_FILES)

    def point_ids(self, collection: str) -> Any:
        """``id -> point id`` of ``collection``: :func:`point_int` or, in a collection made
        before it, :func:`point_uuid`."""
        if collection not in self._int_ids:
            self._int_ids[collection] = (self.directory(collection) / INT_IDS_FILE).is_file()
        return point_int if self._int_ids[collection] else point_uuid

    def spec(self, collection: str) -> IndexSpec:
        if collection not in self._specs:
            path = self.directory(collection) / SPEC_FILE
            if self.foreign(collection):
                raise SmecError(f"collection {collection!r}: {self.directory(collection)} was "
                                f"not made by smec-index (no {SPEC_FILE}), so it is left "
                                "alone: pick a collection `build` made")  # fmt: skip
            try:
                self._specs[collection] = IndexSpec(**safejson.loads(path.read_text()))
            except (OSError, ValueError, TypeError) as exc:  # SmecError is a ValueError
                raise SmecError(
                    f"collection {collection!r}: {path} is unreadable ({type(exc).__name__}); "
                    "rebuild the collection (build --overwrite)"
                ) from None
        return self._specs[collection]

    def reopen(self, collection: str) -> None:
        """Forget the shard of ``collection`` that another connector of this process
        dropped or made again: the next use opens what is there now (searchers bound to the
        old one refuse)."""
        shard = self._shards.pop(collection, None)
        if shard is not None:
            with contextlib.suppress(Exception):  # its files may be gone: nothing to flush
                shard.close()
        self._unlock(collection)
        for cache in (self._specs, self._id_maps, self._int_ids, self._writes):
            cache.pop(collection, None)

    def life(self, collection: str) -> Life:
        """Ended when a connector of this process drops or makes ``collection`` again."""
        return life_of(self.directory(collection))

    def shard(self, collection: str) -> edge.EdgeShard:
        """The open shard, loading it on first use."""
        if collection not in self._shards:
            self._lives[collection] = life_of(self.directory(collection))
            self._lock(collection)
            if self._shared(collection):  # another connector of this process has it open:
                self._unlock(collection)  # its load (WouldBlock) cut that one's journal short
                raise self._held(collection, " (a connector of this process)")
            try:
                self._shards[collection] = edge.EdgeShard.load(str(self.shard_dir(collection)))
            except Exception as exc:  # qdrant-edge raises plain Exceptions
                self._unlock(collection)
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                if "WouldBlock" in reason:  # the write-ahead log's lock is held
                    raise self._held(collection) from None
                reason = reason.removeprefix("Service runtime error: ").removeprefix(
                    "IO Error: ")  # qdrant-edge's wrapping, not the cause  # fmt: skip
                raise SmecError(  # its files damaged or missing: no other user to blame
                    f"cannot open Qdrant collection {collection!r} in {self.root}: its files "
                    f"are damaged or missing ({reason[:200]}); rebuild it (build --overwrite)"
                ) from None
        return self._shards[collection]

    def _lock(self, collection: str) -> None:
        """Hold ``collection``'s :data:`LOCK_FILE` for this process (connectors of one
        process share it: one may drop what another has open, whose searchers then
        refuse), or :class:`HeldElsewhere` while another process holds it."""
        if collection in self._locks or not self.directory(collection).is_dir():
            return
        path = self.directory(collection) / LOCK_FILE
        with _HELD_GUARD:
            # this process's lock is looked up before locking: where flock is emulated (NFS),
            # a second one of a process succeeds, and closing it would release the first
            key = (str(path.parent), os.stat(path).st_ino) if path.exists() else None
            if key in _HELD:  # its connectors share it
                _HELD[key][1] += 1
            else:
                handle = try_flock(path)
                if handle is None:
                    raise self._held(collection)
                key = (str(path.parent), os.fstat(handle.fileno()).st_ino)
                _HELD[key] = [handle, 1]
        self._locks[collection] = key

    def _held(self, collection: str, detail: str = "") -> HeldElsewhere:
        return HeldElsewhere(
            f"cannot open Qdrant collection {collection!r} in {self.root}: another connector "
            f"or process has it open{detail}; close it, or "
            + ("use that connector" if detail else "wait for it to finish")
        )

    def _shared(self, collection: str) -> bool:
        """Whether another connector of this process holds ``collection``'s lock too."""
        key = self._locks.get(collection)
        with _HELD_GUARD:
            return key is not None and key in _HELD and _HELD[key][1] > 1

    def _unlock(self, collection: str) -> None:
        key = self._locks.pop(collection, None)
        with _HELD_GUARD:
            entry = _HELD.get(key) if key is not None else None
            if entry is not None:
                entry[1] -= 1
                if entry[1] == 0:
                    entry[0].close()
                    del _HELD[key]

    def upsert(
        self, collection: str, ids: list[str], vectors: np.ndarray, payloads: list[dict]
    ) -> None:
        points = [
            edge.Point(point_id, vector, payload)
            for point_id, vector, payload in zip(ids, vectors.tolist(), payloads, strict=True)
        ]
        self._id_maps.pop(collection, None)
        self._writes[collection] = self._writes.get(collection, 0) + 1
        shard = self.shard(collection)
        if self._lives[collection].ended:
            raise SmecError(f"collection {collection!r} was dropped (by another connector of "
                            "this process) after this one opened it; create it again first"
                            )  # fmt: skip
        shard.update(edge.UpdateOperation.upsert_points(points))
        self._writes[collection] += 1  # a map read while this write ran is not kept

    def build(self, collection: str, settings: QdrantSettings) -> None:
        shard = self.shard(collection)
        shard.optimize()
        shard.flush()

    def search(
        self, collection: str, queries: np.ndarray, k: int, settings: QdrantSettings
    ) -> list[list[tuple[str, float]]]:
        params = _search_params(settings)
        only_id = edge.PayloadSelector.Include([ID_KEY])
        requests = [
            edge.QueryRequest(
                limit=k, query=edge.Query.Nearest(query), params=params, with_payload=only_id
            )
            for query in queries.tolist()
        ]
        results = self.shard(collection).query_batch(edge.QueryBatchRequest(requests))
        try:
            return [[(str(p.payload[ID_KEY]), float(p.score)) for p in points]
                    for points in results]  # fmt: skip
        except (KeyError, TypeError, ValueError):  # a hit without our id, or no score
            raise SmecError(
                f"collection {collection!r} at {self.directory(collection)} answered a hit "
                "without its id or score: its storage is damaged; rebuild it (build --overwrite)"
            ) from None

    def raw_engine(self, collection: str, settings: QdrantSettings) -> Any:
        """qdrant-edge's own batch query with ``settings`` bound, answering point ids and
        scores (no payload read): ``(queries, k) -> [[ScoredPoint]]``."""
        shard, params = self.shard(collection), _search_params(settings)

        def search(queries: np.ndarray, k: int) -> Any:
            return shard.query_batch(edge.QueryBatchRequest([
                edge.QueryRequest(limit=k, query=edge.Query.Nearest(q), params=params,
                                  with_payload=False)
                for q in queries.tolist()]))  # fmt: skip

        return search

    def searcher(self, collection: str, settings: QdrantSettings) -> Any:
        """:meth:`raw_engine` with the caller's ids from a local map (point id -> id, read
        once from the payloads and dropped by the next write): no payload read per hit.
        ``(queries, k) -> (ids, scores)``, padded with ``""`` / ``-inf``."""
        engine, maps = self.raw_engine(collection, settings), self._id_maps
        life = self._lives[collection]  # the shard raw_engine opened

        def search(queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
            if life.ended:  # dropped (and perhaps made again) by another connector here
                raise SearcherStale(f"collection {collection!r} changed under this searcher "
                                    "(dropped or made again since it was opened); open a new "
                                    "one (connector.searcher)")  # fmt: skip
            try:
                table = maps.get(collection) or self._id_map(collection)
                found = engine(queries, k)
            except SmecError:
                raise
            except Exception:  # noqa: BLE001 - the engine's own, e.g. "Shard is not initialized"
                raise SearcherStale(
                    f"collection {collection!r} changed under this searcher (dropped or built "
                    "again since it was opened); open a new one (connector.searcher)"
                ) from None
            try:
                return answer(found, table, len(queries), k)
            except KeyError:  # written since the map was read: read it again, once
                pass
            try:
                return answer(found, self._id_map(collection), len(queries), k)
            except KeyError:
                raise SmecError(
                    f"collection {collection!r} at {self.directory(collection)} answered a "
                    "point it holds no id for: its storage is damaged; rebuild it (build "
                    "--overwrite)"
                ) from None

        def answer(found: Any, table: dict, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
            if all(len(points) == k for points in found):  # the usual case: k hits each
                ids = [[table[p.id] for p in points] for points in found]
                scores = [[p.score for p in points] for points in found]
                return np.array(ids, dtype=object), np.array(scores, dtype=np.float32)
            ids = np.full((n, k), "", dtype=object)
            scores = np.full((n, k), -np.inf, dtype=np.float32)
            for row, points in enumerate(found):
                ids[row, : len(points)] = [table[p.id] for p in points]
                scores[row, : len(points)] = [p.score for p in points]
            return ids, scores

        return search

    def _id_map(self, collection: str) -> dict[Any, str]:
        """Point id -> the caller's id, over every point (ids only: no vectors); kept for
        the next search only when no write ran while it was read."""
        shard, table, start = self.shard(collection), {}, None
        writes = self._writes.get(collection, 0)
        only_id = edge.PayloadSelector.Include([ID_KEY])
        while True:
            records, start = shard.scroll(edge.ScrollRequest(
                offset=start, limit=10_000, with_payload=only_id, with_vector=False))
            for record in records:
                payload = record.payload or {}
                if ID_KEY not in payload:
                    raise SmecError(
                        f"collection {collection!r} at {self.directory(collection)} holds a "
                        "point without its id: its storage is damaged; rebuild it"
                    )
                table[record.id] = str(payload[ID_KEY])
            if start is None:
                break
        if self._writes.get(collection, 0) == writes:
            self._id_maps[collection] = table
        return table

    def retrieve(self, collection: str, point_ids: list[str]) -> Points:
        records = self.shard(collection).retrieve(point_ids, with_payload=True, with_vector=True)
        return to_points(records)

    def scroll(
        self, collection: str, batch_size: int, offset: str | None
    ) -> Iterator[tuple[Points, str | None]]:
        shard = self.shard(collection)
        integer = self.point_ids(collection) is point_int  # a cursor is text either way
        return scroll_pages(
            lambda start: shard.scroll(
                edge.ScrollRequest(
                    offset=int(start) if integer and start is not None else start,
                    limit=batch_size,
                    with_payload=True,
                    with_vector=True,
                )
            ),
            offset,
        )

    def count(self, collection: str) -> int:
        return self.shard(collection).count(edge.CountRequest(exact=True))

    def sizes(self, collection: str, settings: QdrantSettings) -> Sizes:
        self.shard(collection).flush()
        rescore = settings.rescore
        searched = (
            "vector storage, quantized codes"
            if rescore
            else "quantized codes (the float32 originals, unread without rescoring, left out)"
        )
        return Sizes(
            index_bytes=disk_bytes(
                self.shard_dir(collection), keep=lambda p: is_index_file(p, originals=rescore)
            ),
            total_bytes=disk_bytes(self.directory(collection)),
            method=f"{DISK_METHOD}; index: each segment's {searched} and HNSW graph files; "
            "total: the collection's directory (segments with payload storage and indexes, id "
            "tracker, write-ahead log, config)",
        )

    def drop(self, collection: str) -> None:
        try:  # held by another process: its writes went on into a deleted shard, "ok"
            self._lock(collection)
        except HeldElsewhere as exc:
            raise SmecError(f"{exc} (it is not dropped)") from None
        end_life(self.directory(collection))
        try:
            self._release(collection)  # closing flushes: a full disk or a file limit fails it
        finally:
            remove_directory(self.directory(collection))

    def close(self) -> None:
        for collection in list(self._shards):
            self._release(collection)

    def _release(self, collection: str) -> None:
        self._id_maps.pop(collection, None)
        self._int_ids.pop(collection, None)
        self._specs.pop(collection, None)
        shard = self._shards.pop(collection, None)
        try:
            if shard is not None:
                shard.close()
        finally:
            self._unlock(collection)


class HeldElsewhere(SmecError):
    """A shard another connector or process has open (its write-ahead log's lock)."""


def _search_params(settings: QdrantSettings) -> Any:
    return edge.SearchParams(
        hnsw_ef=settings.ef_search,
        exact=not settings.hnsw,
        quantization=edge.QuantizationSearchParams(
            rescore=settings.rescore, oversampling=settings.oversampling
        )
        if settings.quantization
        else None,
    )


def is_index_file(path: Path, originals: bool = True) -> bool:
    """Whether a file under a shard is vector storage, quantized codes or the HNSW graph;
    ``originals=False`` leaves out the float32 vectors of the indexed segment (the
    appendable segment, which has no codes and is empty once built, keeps its own)."""
    parts = path.parts
    if "segments" not in parts:
        return False
    inside = parts[parts.index("segments") + 2 :]  # below segments/<segment id>/
    if not originals and inside == ("vector_storage", INDEXED_ORIGINALS):
        return False
    return bool(inside) and inside[0].startswith(("vector_storage", "vector_index"))
