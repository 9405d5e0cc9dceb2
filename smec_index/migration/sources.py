"""Reading a collection someone else made: any Qdrant or Milvus collection with one float
vector field and a primary key, every other field carried as payload.

A source is only ever read (scroll / query / get / search); nothing here writes to it.
Ids become strings (``5`` -> ``"5"``) in the target; the source's own id values are kept
beside them for reading points back.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from smec_index.errors import SmecError
from smec_index.secrets import shown_url


@dataclass
class SourceBatch:
    """Points as read from the source; ``cursor`` resumes right after them."""

    ids: list[str]
    raw_ids: list[Any]
    vectors: np.ndarray
    payloads: list[dict[str, Any]]
    cursor: Any = None


@dataclass
class SourceInfo:
    where: str  # shown safely: no credentials
    collection: str
    dim: int
    metric: str  # cosine | ip | l2
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Partition:
    """Slice ``k`` of ``n`` of a source's id space (``--partition K/N``): the ids whose
    64-bit BLAKE2b hash is ``k`` modulo ``n`` (a Milvus integer key: the key itself modulo
    ``n``, filtered by the server). Every id is in exactly one slice."""

    k: int
    n: int

    @classmethod
    def parse(cls, text: str) -> Partition:
        try:
            k, n = (int(part) for part in text.split("/"))
        except ValueError:
            k = n = -1
        if not 0 <= k < n:
            raise SmecError(
                f"--partition {text}: use K/N with 0 <= K < N, e.g. 0/4 ... 3/4 on four machines"
            )
        return cls(k, n)

    def __str__(self) -> str:
        return f"{self.k}/{self.n}"

    def keeps(self, point_id: str) -> bool:
        digest = hashlib.blake2b(point_id.encode(), digest_size=8).digest()
        return int.from_bytes(digest, "little") % self.n == self.k

    def select(self, batch: SourceBatch) -> SourceBatch:
        keep = [i for i, point_id in enumerate(batch.ids) if self.keeps(point_id)]
        return SourceBatch(
            [batch.ids[i] for i in keep],
            [batch.raw_ids[i] for i in keep],
            batch.vectors[keep],
            [batch.payloads[i] for i in keep],
            batch.cursor,
        )


class Source(Protocol):
    info: SourceInfo

    def count(self) -> int: ...

    def iterate(
        self, batch_size: int, cursor: Any, partition: Partition | None = None
    ) -> Iterator[SourceBatch]:
        """Points in a stable order from after ``cursor``; with ``partition``, only that
        slice's (a batch may then be empty: its cursor still moves on)."""
        ...

    def ids(self, batch_size: int) -> Iterator[list[str]]:
        """Every id once, nothing else read (verification)."""
        ...

    def raw_id(self, point_id: str) -> Any:
        """The source's own id value for an id as a string (``"5"`` -> ``5``)."""
        ...

    def get(self, raw_ids: list[Any]) -> SourceBatch: ...

    def search(self, vectors: np.ndarray, k: int) -> list[list[str]]: ...

    def index_bytes(self) -> int | None: ...

    def index_bytes_unknown(self) -> str:
        """Why :meth:`index_bytes` is None, when it is."""
        ...

    def close(self) -> None: ...


def open_source(backend: str, collection: str, **where: Any) -> Source:
    """Open ``collection`` for reading.

    Args:
        backend: ``qdrant`` or ``milvus``.
        where: ``url`` / ``api_key`` (a Qdrant server) or ``path`` (a qdrant-client local
            storage folder, or a folder holding qdrant-edge shards: ``<path>/<collection>``
            is the shard); ``using`` (Qdrant: which named vector, when there are several);
            ``uri`` / ``token`` (Milvus: a server or a milvus-lite ``.db`` path).
    """
    if backend == "milvus":
        if not where.get("uri"):
            raise SmecError("a Milvus source needs --uri (a server address or a .db path)")
        return MilvusSource(where["uri"], where.get("token"), collection)
    if backend == "qdrant":
        if bool(where.get("url")) == bool(where.get("path")):
            raise SmecError("a Qdrant source needs one of --url or --path")
        path = where.get("path")
        if path is not None and (Path(path) / collection / EDGE_CONFIG).is_file():
            return EdgeSource(Path(path) / collection, collection, where.get("using"))
        return QdrantSource(
            collection, where.get("url"), where.get("api_key"), path, where.get("using")
        )
    raise SmecError(f"migrate reads qdrant or milvus collections, not {backend!r}")


_QDRANT_METRICS = {"Cosine": "cosine", "Dot": "ip", "Euclid": "l2"}
EDGE_CONFIG = "edge_config.json"  # what qdrant-edge writes in every shard folder


def _pick_vector(vectors: dict[str, Any], using: str | None, collection: str) -> str:
    """The vector to read: ``using``, else the unnamed one, else the only one there is."""
    if using is not None:
        if using not in vectors:
            have = ", ".join(repr(name) for name in vectors)
            raise SmecError(f"--using {using}: collection {collection!r} has vectors {have}")
        return using
    if "" in vectors:  # the unnamed vector: the default one, beside any added named ones
        return ""
    if len(vectors) != 1:
        have = ", ".join(repr(name) for name in vectors)
        raise SmecError(
            f"Qdrant collection {collection!r} has {len(vectors)} vectors ({have}); pick one "
            "with --using"
        )
    return next(iter(vectors))


class _QdrantReader:
    """What a qdrant-client collection and a qdrant-edge shard share: records in, batches
    out. ``self.using`` is the vector's name (``""``: the unnamed one)."""

    using: str
    info: SourceInfo

    def _vector(self, record: Any) -> Any:
        vector = record.vector
        return vector[self.using] if isinstance(vector, dict) else vector

    def _batch(self, records: list[Any], cursor: Any = None) -> SourceBatch:
        return SourceBatch(
            [str(r.id) for r in records],
            [r.id for r in records],
            np.asarray([self._vector(r) for r in records], dtype=np.float32).reshape(
                -1, self.info.dim
            ),
            [dict(r.payload or {}) for r in records],
            cursor,
        )

    def _scroll(self, offset: Any, limit: int, full: bool) -> tuple[list[Any], Any]:
        raise NotImplementedError

    def iterate(
        self, batch_size: int, cursor: Any, partition: Partition | None = None
    ) -> Iterator[SourceBatch]:
        offset = cursor
        while True:
            records, offset = self._scroll(offset, batch_size, True)
            if records:
                batch = self._batch(records, offset)
                yield batch if partition is None else partition.select(batch)
            if offset is None:
                return

    def raw_id(self, point_id: str) -> Any:
        return int(point_id) if point_id.isdigit() else point_id  # unsigned int or UUID

    def ids(self, batch_size: int) -> Iterator[list[str]]:
        offset = None
        while True:
            records, offset = self._scroll(offset, batch_size, False)
            yield [str(r.id) for r in records]
            if offset is None:
                return


class QdrantSource(_QdrantReader):
    """A Qdrant collection through qdrant-client: a server, or a local storage folder."""

    def __init__(
        self,
        collection: str,
        url: str | None,
        api_key: str | None,
        path: str | None,
        using: str | None = None,
    ):
        from qdrant_client import QdrantClient

        if path is not None:
            folder = Path(path)
            if not (folder / "collection" / collection).is_dir():
                raise SmecError(
                    f"--path {folder}: no Qdrant local collection {collection!r} and no "
                    f"qdrant-edge shard {collection!r} there; pass the folder given to "
                    "QdrantClient(path=...), or the folder holding the shard, and an existing "
                    "collection"
                )
            with warnings.catch_warnings():  # "local mode is not recommended above 20k"
                warnings.simplefilter("ignore", UserWarning)
                self.client, where = QdrantClient(path=str(folder)), str(folder)
        else:
            from smec_index.connectors.qdrant.server import connect_server

            self.client, where = (
                connect_server(url, api_key or os.environ.get("QDRANT_API_KEY"), 10),
                shown_url(url),
            )
        if not self.client.collection_exists(collection):
            raise SmecError(f"no Qdrant collection {collection!r} at {where}; check --collection")
        config = self.client.get_collection(collection).config.params.vectors
        vectors = config if isinstance(config, dict) else {"": config}
        self.using = _pick_vector(vectors, using, collection)
        config = vectors[self.using]
        self.collection = collection
        distance = str(getattr(config.distance, "value", config.distance))
        self.info = SourceInfo(
            where, collection, int(config.size), _QDRANT_METRICS[distance], {"mode": "client"}
        )

    def count(self) -> int:
        return self.client.count(self.collection, exact=True).count

    def _scroll(self, offset: Any, limit: int, full: bool) -> tuple[list[Any], Any]:
        return self.client.scroll(
            self.collection,
            limit=limit,
            offset=offset,
            with_payload=full,
            with_vectors=[self.using] if full and self.using else full,
        )

    def get(self, raw_ids: list[Any]) -> SourceBatch:
        records = self.client.retrieve(
            self.collection, raw_ids, with_payload=True, with_vectors=True
        )
        return self._batch(records)

    def search(self, vectors: np.ndarray, k: int) -> list[list[str]]:
        from qdrant_client import models

        requests = [
            models.QueryRequest(
                query=v.tolist(), limit=k, using=self.using or None, with_payload=False
            )
            for v in vectors
        ]
        found = self.client.query_batch_points(self.collection, requests)
        return [[str(p.id) for p in response.points] for response in found]

    def index_bytes(self) -> int | None:
        return None

    def index_bytes_unknown(self) -> str:
        if self.info.details["mode"] == "client" and "://" not in self.info.where:
            return "qdrant-client's local mode keeps no index (it searches by brute force)"
        return "a Qdrant server's files are its own; its telemetry is not read for a source"

    def close(self) -> None:
        self.client.close()


class EdgeSource(_QdrantReader):
    """A qdrant-edge shard someone made with qdrant-edge's own API: ``<path>/<collection>``
    holds its ``edge_config.json``, segments and write-ahead log. Opening it takes the
    shard's lock: a process that has it open must close it first."""

    def __init__(self, shard_dir: Path, collection: str, using: str | None = None):
        import qdrant_edge as edge

        config = json.loads((shard_dir / EDGE_CONFIG).read_text())
        vectors = config.get("vectors") or {}
        self.using = _pick_vector(vectors, using, collection)
        try:
            self.shard = edge.EdgeShard.load(str(shard_dir))
        except Exception as exc:  # qdrant-edge raises plain Exceptions
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if "WouldBlock" in reason:
                reason = "another process has it open; close it there first"
            raise SmecError(f"cannot open qdrant-edge shard {shard_dir} ({reason})") from None
        self.shard_dir, self.collection = shard_dir, collection
        params = vectors[self.using]
        self.info = SourceInfo(
            str(shard_dir.parent), collection, int(params["size"]),
            _QDRANT_METRICS[params["distance"]], {"mode": "edge"},
        )  # fmt: skip

    def count(self) -> int:
        import qdrant_edge as edge

        return self.shard.count(edge.CountRequest(exact=True))

    def _scroll(self, offset: Any, limit: int, full: bool) -> tuple[list[Any], Any]:
        import qdrant_edge as edge

        return self.shard.scroll(
            edge.ScrollRequest(offset=offset, limit=limit, with_payload=full, with_vector=full)
        )

    def get(self, raw_ids: list[Any]) -> SourceBatch:
        records = self.shard.retrieve(raw_ids, with_payload=True, with_vector=True)
        order = {str(r.id): r for r in records}
        return self._batch([order[str(i)] for i in raw_ids if str(i) in order])

    def search(self, vectors: np.ndarray, k: int) -> list[list[str]]:
        import qdrant_edge as edge

        requests = [
            edge.QueryRequest(
                limit=k, query=edge.Query.Nearest(v, self.using or None), with_payload=False
            )
            for v in vectors.tolist()
        ]
        found = self.shard.query_batch(edge.QueryBatchRequest(requests))
        return [[str(p.id) for p in points] for points in found]

    def index_bytes(self) -> int | None:
        from smec_index.connectors.qdrant.edge_store import is_index_file
        from smec_index.connectors.storage import disk_bytes

        return disk_bytes(self.shard_dir, keep=is_index_file) or None

    def index_bytes_unknown(self) -> str:
        return "the shard has no vector storage or index files yet"

    def close(self) -> None:
        self.shard.close()


_MILVUS_METRICS = {"COSINE": "cosine", "IP": "ip", "L2": "l2"}


class MilvusSource:
    """A Milvus collection (server or milvus-lite): its primary key, its one FLOAT_VECTOR
    field, every other field as payload. Read in primary-key order, so the cursor is the last
    key read."""

    def __init__(self, uri: str, token: str | None, collection: str):
        from pymilvus import DataType

        from smec_index.connectors.milvus.client import GuardedClient, connect, open_lite

        lite = not uri.startswith(("http://", "https://", "tcp://", "grpc://"))
        self._lite_path = Path(uri).resolve() if lite else None
        if lite:
            if not Path(uri).exists():
                raise SmecError(f"--uri {uri}: no milvus-lite database there")
            raw, where = open_lite(self._lite_path), str(uri)
        else:
            raw, where = (
                connect(uri, token or os.environ.get("MILVUS_TOKEN", ""), 10),
                shown_url(uri),
            )
        self.client = GuardedClient(raw, where)
        self._raw = raw
        if not self.client.has_collection(collection):
            raise SmecError(f"no Milvus collection {collection!r} at {where}; check --collection")
        schema = self.client.describe_collection(collection)
        fields = schema["fields"]
        primary = [f for f in fields if f.get("is_primary")]
        vectors = [f for f in fields if f["type"] == DataType.FLOAT_VECTOR]
        if len(primary) != 1 or len(vectors) != 1:
            raise SmecError(
                f"Milvus collection {collection!r} has {len(vectors)} float vector fields and "
                f"{len(primary)} primary keys; migrate reads collections with one of each"
            )
        self.pk, self.vector = primary[0]["name"], vectors[0]["name"]
        self.string_pk = primary[0]["type"] == DataType.VARCHAR
        self.others = [f["name"] for f in fields if f["name"] not in (self.pk, self.vector)]
        metric = "cosine"
        for index in self.client.list_indexes(collection):
            described = self.client.describe_index(collection, index)
            if described.get("field_name") == self.vector:
                metric = _MILVUS_METRICS.get(str(described.get("metric_type")).upper(), "cosine")
        self.collection = collection
        self.client.load_collection(collection)
        dim = int(vectors[0]["params"]["dim"])
        self.info = SourceInfo(where, collection, dim, metric, {"lite": lite})

    def count(self) -> int:
        rows = self.client.query(
            self.collection, filter="", output_fields=["count(*)"], consistency_level="Strong"
        )
        return int(rows[0]["count(*)"])

    def _literal(self, value: Any) -> str:
        return json.dumps(str(value)) if self.string_pk else str(int(value))

    def _batch(self, rows: list[dict[str, Any]], cursor: Any = None) -> SourceBatch:
        return SourceBatch(
            [str(r[self.pk]) for r in rows],
            [r[self.pk] for r in rows],
            np.asarray([r[self.vector] for r in rows], np.float32).reshape(-1, self.info.dim),
            [{name: r.get(name) for name in self.others} for r in rows],
            cursor,
        )

    def _pages(self, batch_size: int, filter: str, fields: list[str]) -> Iterator[list[dict]]:
        # strict_float32: pymilvus hands each vector over as a row of one float32 array
        # instead of a list of Python floats, which was most of the time spent reading.
        iterator = self.client.query_iterator(
            self.collection,
            batch_size=min(batch_size, 16384),
            filter=filter,
            output_fields=fields,
            consistency_level="Strong",
            strict_float32=True,
        )
        try:
            while rows := self._next(iterator):
                yield rows
        finally:
            with contextlib.suppress(Exception):  # the server may be gone: nothing to close
                iterator.close()

    def iterate(
        self, batch_size: int, cursor: Any, partition: Partition | None = None
    ) -> Iterator[SourceBatch]:
        terms = [] if cursor is None else [f"{self.pk} > {self._literal(cursor)}"]
        on_server = partition is not None and not self.string_pk
        if on_server:  # C-style remainder: a negative key leaves k - n
            n, k = partition.n, partition.k
            terms.append(f"({self.pk} % {n} == {k} or {self.pk} % {n} == {k - n})")
        for rows in self._pages(batch_size, " and ".join(terms), [self.vector, *self.others]):
            batch = self._batch(rows, rows[-1][self.pk])
            yield batch if partition is None or on_server else partition.select(batch)

    def raw_id(self, point_id: str) -> Any:
        return point_id if self.string_pk else int(point_id)

    def ids(self, batch_size: int) -> Iterator[list[str]]:
        for rows in self._pages(batch_size, "", []):
            yield [str(r[self.pk]) for r in rows]

    def _next(self, iterator: Any) -> list[dict[str, Any]]:
        from pymilvus import MilvusException

        from smec_index.connectors.milvus.client import one_line

        try:
            return iterator.next()
        except MilvusException as exc:
            raise SmecError(
                f"reading {self.collection!r} from Milvus at {self.info.where} failed: "
                f"{one_line(exc)}"
            ) from None

    def get(self, raw_ids: list[Any]) -> SourceBatch:
        rows = self.client.get(
            self.collection, ids=raw_ids, output_fields=[self.vector, *self.others]
        )
        return self._batch(rows)

    def search(self, vectors: np.ndarray, k: int) -> list[list[str]]:
        results = self.client.search(
            self.collection, data=list(vectors), limit=k, anns_field=self.vector, output_fields=[]
        )
        return [[str(hit.get("id", hit.get(self.pk))) for hit in hits] for hits in results]

    def index_bytes(self) -> int | None:
        if not self.info.details["lite"]:
            return None
        from smec_index.connectors.milvus.backend import lite_index_file
        from smec_index.connectors.storage import disk_bytes

        folder = Path(self.info.where).resolve() / "collections" / self.collection
        found = disk_bytes(folder, keep=lite_index_file) if folder.is_dir() else 0
        return found or None  # no index file (FLAT, or not written yet): unknown

    def index_bytes_unknown(self) -> str:
        if self.info.details["lite"]:
            return "milvus-lite wrote no vector index file for it (FLAT, or not built yet)"
        return "a Milvus server's index files are on the server, reached only by its address"

    def close(self) -> None:
        from smec_index.connectors.milvus.client import close_lite

        if self._lite_path is None:
            self._raw.close()
        else:
            close_lite(self._lite_path, self._raw)
