"""Reading a collection someone else made: any Qdrant or Milvus collection with one float
vector field and a primary key, every other field carried as payload.

A source is only ever read (scroll / query / get / search); nothing here writes to it.
Ids become strings (``5`` -> ``"5"``) in the target; the source's own id values are kept
beside them for reading points back.
"""

from __future__ import annotations

import contextlib
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


class Source(Protocol):
    info: SourceInfo

    def count(self) -> int: ...

    def iterate(self, batch_size: int, cursor: Any) -> Iterator[SourceBatch]: ...

    def get(self, raw_ids: list[Any]) -> SourceBatch: ...

    def search(self, vectors: np.ndarray, k: int) -> list[list[str]]: ...

    def index_bytes(self) -> int | None: ...

    def close(self) -> None: ...


def open_source(backend: str, collection: str, **where: Any) -> Source:
    """Open ``collection`` for reading.

    Args:
        backend: ``qdrant`` or ``milvus``.
        where: ``url`` / ``api_key`` or ``path`` (Qdrant: a qdrant-client local storage
            folder), ``uri`` / ``token`` (Milvus: a server or a milvus-lite ``.db`` path).
    """
    if backend == "milvus":
        if not where.get("uri"):
            raise SmecError("a Milvus source needs --uri (a server address or a .db path)")
        return MilvusSource(where["uri"], where.get("token"), collection)
    if backend == "qdrant":
        if bool(where.get("url")) == bool(where.get("path")):
            raise SmecError("a Qdrant source needs one of --url or --path")
        return QdrantSource(collection, where.get("url"), where.get("api_key"), where.get("path"))
    raise SmecError(f"migrate reads qdrant or milvus collections, not {backend!r}")


_QDRANT_METRICS = {"Cosine": "cosine", "Dot": "ip", "Euclid": "l2"}


class QdrantSource:
    """A Qdrant collection through qdrant-client: a server, or a local storage folder."""

    def __init__(self, collection: str, url: str | None, api_key: str | None, path: str | None):
        from qdrant_client import QdrantClient

        if path is not None:
            folder = Path(path)
            if not (folder / "collection" / collection).is_dir():
                raise SmecError(
                    f"--path {folder}: no Qdrant local collection {collection!r} there; pass the "
                    "folder given to QdrantClient(path=...) and an existing collection"
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
        self.using: str | None = None
        if isinstance(config, dict):
            if len(config) != 1:
                raise SmecError(
                    f"Qdrant collection {collection!r} has {len(config)} named vectors; migrate "
                    "reads collections with one"
                )
            self.using, config = next(iter(config.items()))
        self.collection = collection
        distance = str(getattr(config.distance, "value", config.distance))
        self.info = SourceInfo(where, collection, int(config.size), _QDRANT_METRICS[distance])

    def count(self) -> int:
        return self.client.count(self.collection, exact=True).count

    def _batch(self, records: list[Any], cursor: Any = None) -> SourceBatch:
        vectors = [r.vector[self.using] if self.using else r.vector for r in records]
        return SourceBatch(
            [str(r.id) for r in records],
            [r.id for r in records],
            np.asarray(vectors, dtype=np.float32).reshape(-1, self.info.dim),
            [dict(r.payload or {}) for r in records],
            cursor,
        )

    def iterate(self, batch_size: int, cursor: Any) -> Iterator[SourceBatch]:
        offset = cursor
        while True:
            records, offset = self.client.scroll(
                self.collection,
                limit=batch_size,
                offset=offset,
                with_payload=True,
                with_vectors=True,
            )
            if records:
                yield self._batch(records, offset)
            if offset is None:
                return

    def get(self, raw_ids: list[Any]) -> SourceBatch:
        records = self.client.retrieve(
            self.collection, raw_ids, with_payload=True, with_vectors=True
        )
        return self._batch(records)

    def search(self, vectors: np.ndarray, k: int) -> list[list[str]]:
        from qdrant_client import models

        requests = [
            models.QueryRequest(query=v.tolist(), limit=k, using=self.using, with_payload=False)
            for v in vectors
        ]
        found = self.client.query_batch_points(self.collection, requests)
        return [[str(p.id) for p in response.points] for response in found]

    def index_bytes(self) -> int | None:
        return None  # local mode keeps no index; a server's telemetry needs a key scope

    def close(self) -> None:
        self.client.close()


_MILVUS_METRICS = {"COSINE": "cosine", "IP": "ip", "L2": "l2"}


class MilvusSource:
    """A Milvus collection (server or milvus-lite): its primary key, its one FLOAT_VECTOR
    field, every other field as payload. Read in primary-key order, so the cursor is the last
    key read."""

    def __init__(self, uri: str, token: str | None, collection: str):
        from pymilvus import DataType, MilvusClient

        from smec_index.connectors.milvus.client import GuardedClient, connect

        lite = not uri.startswith(("http://", "https://", "tcp://", "grpc://"))
        if lite:
            if not Path(uri).exists():
                raise SmecError(f"--uri {uri}: no milvus-lite database there")
            raw, where = MilvusClient(str(Path(uri).resolve())), str(uri)
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

    def iterate(self, batch_size: int, cursor: Any) -> Iterator[SourceBatch]:
        iterator = self.client.query_iterator(
            self.collection,
            batch_size=min(batch_size, 16384),
            filter="" if cursor is None else f"{self.pk} > {self._literal(cursor)}",
            output_fields=[self.vector, *self.others],
            consistency_level="Strong",
        )
        try:
            while rows := self._next(iterator):
                yield self._batch(rows, rows[-1][self.pk])
        finally:
            with contextlib.suppress(Exception):  # the server may be gone: nothing to close
                iterator.close()

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

    def close(self) -> None:
        self._raw.close()
