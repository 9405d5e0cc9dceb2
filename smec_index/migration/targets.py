"""Where a migration writes: beside the source in the user's own schema (the default), or
into another engine in smec-index's schema (``--to-backend``).

A :class:`~smec_index.connectors.source.Mirror` (the source's wing) keeps everything but
the vector's dim. :class:`ConnectorTarget` writes through a smec-index connector instead,
which is the one mapping between engines; :meth:`ConnectorTarget.schema_changes` names
everything that mapping changes, and the run needs ``--allow-schema-change`` for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from smec_index.connectors import Connector, IndexSpec
from smec_index.connectors.source import Source, SourceBatch, schema_diff
from smec_index.errors import SmecError


class ConnectorTarget:
    """A smec-index collection (any backend) as a migration target.

    The mapping: ids become strings (``5`` -> ``"5"``); the vector is the collection's one
    vector (Milvus field ``vector``, Qdrant's unnamed vector behind smec-index's id key), at
    cosine; every other source field or payload key is one payload (Milvus: a JSON field
    ``payload``); other vectors, payload indexes and scalar indexes are not carried.
    """

    def __init__(self, connector: Connector, backend: str, where: str,
                 index_params: dict[str, Any]) -> None:  # fmt: skip
        self.connector, self.backend, self.where = connector, backend, where
        # Embedded Qdrant (qdrant-edge) stores some payload floats as a neighbouring double;
        # verification takes them as equal, counts them and says so.
        self.float_ulps = 2 if backend == "qdrant" else 0
        self.place = where  # already absolute (embedded) or credential-free (a server)
        self.index_params = index_params

    def aliases_of(self, name: str) -> list[str]:
        return [alias for alias, target in self.connector.aliases().items() if target == name]

    def is_alias(self, name: str) -> bool:
        return name in self.connector.aliases()

    def exists(self, name: str) -> bool:
        return self.connector.resolve(name) is not None

    def resolve(self, name: str) -> str | None:
        return self.connector.resolve(name)

    def set_alias(self, alias: str, name: str) -> None:
        self.connector.set_alias(alias, name)

    def drop_alias(self, alias: str) -> None:
        self.connector.drop_alias(alias)

    def index_spec(self, dim: int) -> IndexSpec:
        """The copy's index, checked by the backend: refused before anything is fitted or
        written (``index_params={"M": -5}`` passed a dry run, then failed after the fit)."""
        spec = IndexSpec(dim, metric="cosine", index="hnsw", params=self.index_params)
        return self.connector.check_spec(spec)

    def create(self, name: str, dim: int) -> None:
        self.connector.create(name, self.index_spec(dim), overwrite=False)

    def drop(self, name: str) -> None:
        self.connector.drop(name)

    def write(self, name: str, batch: SourceBatch, vectors: np.ndarray) -> None:
        from smec_index.connectors.contract import check_ids, check_payloads
        from smec_index.migration.stream import SourceDataError

        try:  # a point past the first batch that smec-index's schema cannot hold
            check_ids(batch.ids, len(batch.ids))
            check_payloads(batch.payloads, len(batch.ids))
        except SmecError as exc:
            raise SourceDataError(
                f"a source point does not fit smec-index's own schema (--to-backend): {exc}; "
                "no run can resume past it: fix or delete that point in the source, or migrate "
                "it as a copy beside itself (leave out --to-backend)"
            ) from None
        self.connector.add(name, batch.ids, vectors, batch.payloads, batch_size=len(batch.ids))

    def flush(self, name: str) -> None:
        self.connector.flush(name)

    def count(self, name: str) -> int:
        return self.connector.count(name)

    def ids(self, name: str, batch_size: int) -> Iterator[list[str]]:
        for batch in self.connector.iterate(name, batch_size):
            yield batch.ids

    def get(self, name: str, raw_ids: list[Any]) -> SourceBatch:
        got = self.connector.get(name, [str(i) for i in raw_ids])
        return SourceBatch(got.ids, list(raw_ids), got.vectors, got.payloads)

    def search(self, name: str, vectors: np.ndarray, k: int) -> list[list[str]]:
        return self.connector.search(name, vectors, k)[0]

    def index_bytes(self, name: str) -> int | None:
        return self.connector.sizes(name).index_bytes

    def spec(self, name: str) -> dict[str, Any]:
        return self.connector.spec(name).to_dict()

    def schema(self, name: str) -> dict[str, Any]:
        """smec-index's schema is its index spec (ids, payload and vector are fixed)."""
        return self.spec(self.connector.resolve(name) or name)

    def verify_layout(self, name: str) -> None:
        """Nothing beyond points: smec-index collections have no partitions."""

    def schema_changes(self, source: Source) -> list[str]:
        """What this mapping changes of ``source``, one line each (never empty: at least
        the ids' type and the vector's name change)."""
        info, schema = source.info, source.schema()
        changes = ['ids: the source\'s own values -> strings (5 -> "5")']
        vector = info.vector or "(unnamed)"
        into = {"milvus": "field 'vector'", "qdrant": "the unnamed vector"}.get(
            self.backend, "the index's vectors")  # fmt: skip
        changes.append(f"vector {vector!r} -> {into}")
        if info.metric != "cosine":
            changes.append(f"distance {info.metric} -> cosine")
        if "fields" in schema:  # a Milvus source
            others = [n for n in schema["field_order"] if n not in (schema_pk(schema), info.vector)]
            if others:
                changes.append(f"fields {', '.join(others)} -> keys of one payload")
            if schema["enable_dynamic_field"]:
                changes.append("dynamic fields -> keys of one payload")
            scalar = [n for n, i in schema["indexes"].items() if i.get("field_name") != info.vector]
            if scalar:
                changes.append(f"scalar indexes {', '.join(scalar)} -> not carried")
            if schema["partitions"] not in (["_default"],):
                changes.append(f"partitions {schema['partitions']} -> none")
        else:  # a Qdrant source
            # A qdrant-client/server collection keeps these under "params"; an edge shard's
            # config at the top.
            params = schema.get("params") or schema
            vectors = params.get("vectors") or {}
            if isinstance(vectors, dict) and "size" not in vectors:
                dropped = [n for n in vectors if n != info.vector]
                if dropped:
                    changes.append(f"other vectors {', '.join(dropped)} -> not carried")
            sparse = params.get("sparse_vectors") or {}
            if sparse:
                changes.append(f"sparse vectors {', '.join(sparse)} -> not carried")
            indexes = schema.get("payload_indexes") or {}
            if indexes:
                changes.append(f"payload indexes {', '.join(indexes)} -> not carried")
        return changes


def schema_pk(schema: dict[str, Any]) -> str:
    return next(n for n, f in schema["fields"].items() if f.get("is_primary"))


def mirror_changes(source: Source, mirror: Any, dim: int) -> list[str]:
    """What a mirror's copy would change of ``source`` beyond the vector's dim (empty when
    nothing else changes)."""
    return schema_diff(source.schema(), mirror.planned_schema(dim), {mirror.dim_path()})
