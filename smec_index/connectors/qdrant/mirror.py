"""A Qdrant collection's copy with smaller vectors, beside it (the same server or local
folder, through the source's own client).

The copy is created from the source's own configuration: the same vector names (unnamed
stays unnamed), distances, sparse and other named vectors, shard and payload-storage
settings, HNSW, optimizer, WAL and quantization settings, metadata, and payload indexes
with their types (a server keeps them; qdrant-client's local mode keeps none, for source
and copy alike). Only the migrated vector's size differs. Points keep their ids (unsigned
ints and UUIDs as they are) and their payloads as they are; other vectors are copied.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from smec_index.connectors.qdrant.source import QdrantSource, call, collection_schema
from smec_index.connectors.source import SourceBatch, refuse_source


def search_batch(client: Any, collection: str, using: str, vectors: np.ndarray, k: int):
    """Ids (as strings) of the ``k`` nearest points for each vector, by the collection's
    own search (``using`` the named vector, or the unnamed one for ``""``)."""
    from qdrant_client import models

    requests = [
        models.QueryRequest(query=v.tolist(), limit=k, using=using or None, with_payload=False)
        for v in vectors
    ]
    found = client.query_batch_points(collection, requests)
    return [[str(p.id) for p in response.points] for response in found]


def _diff_model(model_class: Any, value: Any) -> Any:
    """A full config (``HnswConfig``) as the ``...Diff`` that ``create_collection`` takes."""
    if value is None:
        return None
    fields = set(model_class.model_fields)
    return model_class(**{k: v for k, v in value.model_dump().items() if k in fields})


class QdrantMirror:
    """Writes copies of one source collection; see the module docstring."""

    def __init__(self, source: QdrantSource) -> None:
        self.source, self.client, self.using = source, source.client, source.using
        self.where, self.place = source.info.where, source.info.location
        vectors = self.client.get_collection(source.collection).config.params.vectors
        self.unnamed = not isinstance(vectors, dict)  # one vector, no name

    # -- names ----------------------------------------------------------------------------
    def _aliases(self) -> dict[str, str]:
        return {a.alias_name: a.collection_name for a in self.client.get_aliases().aliases}

    def aliases_of(self, name: str) -> list[str]:
        return [alias for alias, target in self._aliases().items() if target == name]

    def is_alias(self, name: str) -> bool:
        return name in self._aliases()

    def exists(self, name: str) -> bool:
        return self.is_alias(name) or self.client.collection_exists(name)

    def resolve(self, name: str) -> str | None:
        target = self._aliases().get(name)
        if target is not None:
            return target
        return name if self.client.collection_exists(name) else None

    def set_alias(self, alias: str, name: str) -> None:
        from qdrant_client import models

        change: list[Any] = []
        if self.is_alias(alias):  # one request: the alias never points nowhere
            change.append(models.DeleteAliasOperation(
                delete_alias=models.DeleteAlias(alias_name=alias)))  # fmt: skip
        change.append(models.CreateAliasOperation(
            create_alias=models.CreateAlias(collection_name=name, alias_name=alias)))  # fmt: skip
        self._call("switching alias", alias, lambda: self.client.update_collection_aliases(change))

    def drop_alias(self, alias: str) -> None:
        from qdrant_client import models

        change = [models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias))]
        self._call("dropping alias", alias, lambda: self.client.update_collection_aliases(change))

    # -- schema ---------------------------------------------------------------------------
    def schema(self, name: str) -> dict[str, Any]:
        return collection_schema(self.client, self.resolve(name) or name)

    def planned_schema(self, dim: int) -> dict[str, Any]:
        schema = self.source.schema()
        vectors = schema["params"]["vectors"]
        if self.unnamed:
            vectors["size"] = dim
        else:
            vectors[self.using]["size"] = dim
        return schema

    def verify_layout(self, name: str) -> None:
        """Nothing beyond points: a Qdrant copy has no partitions to check."""

    def dim_path(self) -> str:
        """The schema path of the migrated vector's size (the one expected difference)."""
        return "params.vectors.size" if self.unnamed else f"params.vectors.{self.using}.size"

    # -- collections ----------------------------------------------------------------------
    def create(self, name: str, dim: int) -> None:
        from qdrant_client import models

        info = self.client.get_collection(self.source.collection)
        config, params = info.config, info.config.params
        if isinstance(params.vectors, dict):
            vectors: Any = {
                k: v.model_copy(update={"size": dim}) if k == self.using else v
                for k, v in params.vectors.items()
            }
        else:
            vectors = params.vectors.model_copy(update={"size": dim})

        def create() -> None:
            self.client.create_collection(
                name,
                vectors_config=vectors,
                sparse_vectors_config=params.sparse_vectors,
                shard_number=params.shard_number,
                sharding_method=params.sharding_method,
                replication_factor=params.replication_factor,
                write_consistency_factor=params.write_consistency_factor,
                on_disk_payload=params.on_disk_payload,
                hnsw_config=_diff_model(models.HnswConfigDiff, config.hnsw_config),
                optimizers_config=_diff_model(models.OptimizersConfigDiff, config.optimizer_config),
                wal_config=_diff_model(models.WalConfigDiff, config.wal_config),
                quantization_config=config.quantization_config,
                strict_mode_config=config.strict_mode_config,
                metadata=config.metadata,
                payload=params.payload,
                id_tracker=params.id_tracker,
            )
            for field, index in (info.payload_schema or {}).items():
                self.client.create_payload_index(
                    name, field, field_schema=index.params or index.data_type, wait=True
                )

        self._call("creating", name, create)

    def drop(self, name: str) -> None:
        refuse_source(self.source.info, name)
        self._call("dropping", name, lambda: self.client.delete_collection(name))

    # -- points ---------------------------------------------------------------------------
    def write(self, name: str, batch: SourceBatch, vectors: np.ndarray) -> None:
        from qdrant_client import models

        carried = batch.carried or [{} for _ in batch.ids]
        points = []
        for point_id, vector, payload, others in zip(
            batch.raw_ids, vectors.tolist(), batch.payloads, carried, strict=True
        ):
            # a point of an unnamed-vector collection with sparse vectors comes as a dict too
            value: Any = vector if self.unnamed and not others else {**others, self.using: vector}
            points.append(models.PointStruct(id=point_id, vector=value, payload=payload))
        self._call("writing", name, lambda: self.client.upsert(name, points, wait=True))

    def flush(self, name: str) -> None:
        """Every upsert waited for its write: nothing is pending."""

    def count(self, name: str) -> int:
        return self._call("counting", name, lambda: self.client.count(name, exact=True).count)

    def ids(self, name: str, batch_size: int) -> Iterator[list[str]]:
        offset = None
        while True:
            page = lambda o=offset: self.client.scroll(  # noqa: E731
                name, limit=batch_size, offset=o, with_payload=False, with_vectors=False
            )
            records, offset = self._call("reading", name, page)
            yield [str(r.id) for r in records]
            if offset is None:
                return

    def get(self, name: str, raw_ids: list[Any]) -> SourceBatch:
        records = self._call("reading", name, lambda: self.client.retrieve(
            name, raw_ids, with_payload=True, with_vectors=True))  # fmt: skip
        order = {str(r.id): r for r in records}
        found = [order[str(i)] for i in raw_ids if str(i) in order]
        split = [self.source._split(r) for r in found]
        return SourceBatch(
            [str(r.id) for r in found], [r.id for r in found],
            np.asarray([v for v, _ in split], dtype=np.float32),
            [dict(r.payload or {}) for r in found], None, [o for _, o in split],
        )  # fmt: skip

    def search(self, name: str, vectors: np.ndarray, k: int) -> list[list[str]]:
        found = lambda: search_batch(self.client, name, self.using, vectors, k)  # noqa: E731
        return self._call("searching", name, found)

    def index_bytes(self, name: str) -> int | None:
        return None  # see QdrantSource.index_bytes_unknown: the same holds for the copy

    def _call(self, doing: str, name: str, request):
        return call(doing, f"Qdrant collection {name!r} at {self.where}", request)
