"""A Milvus collection's copy with smaller vectors, beside it (the same server or
milvus-lite file, through the source's own client).

The copy is created from the source's own description: the same primary key (name, type,
max_length, auto_id), every scalar field with its type and parameters (VARCHAR max_length,
ARRAY element type and capacity, nullable and default where the engine has them), the
partition key or the partitions by name, the dynamic-field setting, description,
consistency level and properties, and every index, scalar ones too, with its parameters.
Only the vector field's ``dim`` differs. Rows are upserted as read (``*``: dynamic keys
too), with the projected vector in place of the original.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from smec_index.connectors.milvus.source import MilvusSource, aliases, count, describe
from smec_index.connectors.source import SourceBatch, refuse_source
from smec_index.errors import SmecError

ARRAY_VARCHAR_MAX = 65_535  # milvus-lite describes an ARRAY of VARCHAR without its max_length


class MilvusMirror:
    """Writes copies of one source collection; see the module docstring."""

    def __init__(self, source: MilvusSource) -> None:
        self.source = source
        self.where, self.place = source.info.where, source.info.location
        self.vector, self.pk = source.vector, source.pk
        self._loaded: set[tuple[int, str]] = set()

    @property
    def client(self) -> Any:
        """Reads: the source's database as it was (a milvus-lite source's copy) until this
        copy first writes, the database itself from then on."""
        return self.source.writer if self.source.writing else self.source.client

    @property
    def writer(self) -> Any:
        return self.source.writer

    def _load(self, name: str) -> str:
        """``name``, loaded once per client (Milvus reads only loaded collections)."""
        client = self.client
        if (id(client), name) not in self._loaded:
            client.load_collection(name)
            self._loaded.add((id(client), name))
        return name

    # -- names ----------------------------------------------------------------------------
    def aliases_of(self, name: str) -> list[str]:
        return [alias for alias, target in aliases(self.client).items() if target == name]

    def is_alias(self, name: str) -> bool:
        return name in aliases(self.client)

    def exists(self, name: str) -> bool:
        return self.is_alias(name) or self.client.has_collection(name)

    def resolve(self, name: str) -> str | None:
        target = aliases(self.client).get(name)
        if target is not None:
            return target
        return name if self.client.has_collection(name) else None

    def set_alias(self, alias: str, name: str) -> None:
        writer = self.writer
        if self.is_alias(alias):
            writer.alter_alias(name, alias)
        else:
            writer.create_alias(name, alias)

    def drop_alias(self, alias: str) -> None:
        self.writer.drop_alias(alias)

    # -- schema ---------------------------------------------------------------------------
    def schema(self, name: str) -> dict[str, Any]:
        return describe(self.client, self.resolve(name) or name)

    def planned_schema(self, dim: int) -> dict[str, Any]:
        """The source's schema at ``dim``, with one necessary change: a copy of an
        ``auto_id`` key is made without it, since Milvus would otherwise give the copied rows
        new keys (2.4+) or refuse them (2.3); the run then needs --allow-schema-change."""
        schema = self.source.schema()
        if schema["functions"]:
            raise SmecError(
                f"{self.source.collection!r} has functions ({schema['functions']}); migrate "
                "does not copy them"
            )
        schema["fields"][self.vector]["params"]["dim"] = dim
        schema["auto_id"] = False
        return schema

    def dim_path(self) -> str:
        return f"fields.{self.vector}.params.dim"

    def verify_layout(self, name: str) -> None:
        """Rows per named partition equal the source's (a partition key places rows by
        itself; only ``_default``: nothing to check)."""
        for partition in self.source.named_partitions():
            have, want = (
                client.query(collection, filter="", output_fields=["count(*)"],
                             partition_names=[partition],
                             consistency_level="Strong")[0]["count(*)"]
                for client, collection in ((self.client, self._load(name)),
                                           (self.source.reader, self.source.collection))
            )  # fmt: skip
            if have != want:
                raise SmecError(
                    f"partition {partition!r} of the target holds {have} rows, the source's "
                    f"{want}; not switched: pass --restart"
                )

    # -- collections ----------------------------------------------------------------------
    def create(self, name: str, dim: int) -> None:
        from pymilvus import DataType

        planned = self.planned_schema(dim)
        described = self.source.reader.describe_collection(self.source.collection)
        client = self.writer
        schema = client.create_schema(
            auto_id=planned["auto_id"],
            enable_dynamic_field=planned["enable_dynamic_field"],
            description=planned["description"],
        )
        for field in described["fields"]:
            entry = planned["fields"][field["name"]]
            options: dict[str, Any] = dict(entry["params"])
            for flag in ("is_primary", "is_partition_key", "is_clustering_key", "nullable"):
                if entry.get(flag):
                    options[flag] = True
            if "default_value" in entry:
                options["default_value"] = entry["default_value"]
            if "element_type" in field:
                options["element_type"] = field["element_type"]
                if field["element_type"] == DataType.VARCHAR:
                    options.setdefault("max_length", ARRAY_VARCHAR_MAX)
            schema.add_field(field["name"], field["type"],
                             description=entry.get("description", ""), **options)  # fmt: skip
        index = client.prepare_index_params()
        for index_name, info in planned["indexes"].items():
            named = ("field_name", "index_name", "index_type", "metric_type")
            params = {k: v for k, v in info.items() if k not in named}
            metric = info.get("metric_type")
            index.add_index(info["field_name"], index_type=info.get("index_type", ""),
                            index_name=index_name, params=params,
                            **({"metric_type": metric} if metric not in (None, "", "NONE")
                               else {}))  # fmt: skip
        extra: dict[str, Any] = {}
        if isinstance(planned["partitions"], dict):
            extra["num_partitions"] = planned["partitions"]["key"]
        client.create_collection(
            name, schema=schema, index_params=index,
            consistency_level=planned["consistency_level"], **extra,
        )  # fmt: skip
        if planned["properties"]:
            client.alter_collection_properties(name, planned["properties"])
        if isinstance(planned["partitions"], list):
            for partition in planned["partitions"]:
                if partition != "_default":
                    client.create_partition(name, partition)
        self._load(name)

    def drop(self, name: str) -> None:
        refuse_source(self.source.info, name)
        self.writer.drop_collection(name)

    # -- points ---------------------------------------------------------------------------
    def write(self, name: str, batch: SourceBatch, vectors: np.ndarray) -> None:
        rows = [
            {**payload, self.pk: point_id, self.vector: vector}
            for point_id, payload, vector in zip(
                batch.raw_ids, batch.payloads, vectors, strict=True
            )
        ]
        where = {} if batch.partition is None else {"partition_name": batch.partition}
        self.writer.upsert(name, rows, **where)

    def flush(self, name: str) -> None:
        lite = getattr(self.source, "_lite_path", None)
        if lite is None:
            self.writer.flush(name)
            return
        from smec_index.connectors.milvus.backend import wait_for_lite_index_files
        from smec_index.connectors.storage import native_notes

        # milvus-lite builds the copy's index (FAISS, in this process) after a flush and
        # prints FAISS's k-means advice to stderr: caught here, as a build's flush does.
        with native_notes("milvus-lite"):
            self.writer.flush(name)
            try:  # a moment at most: an index type milvus-lite keeps in other files
                wait_for_lite_index_files(Path(lite) / "collections" / name, 10.0,
                                          self.source.vector)  # fmt: skip
            except SmecError:
                pass

    def count(self, name: str) -> int:
        return count(self.client, self._load(name))

    def ids(self, name: str, batch_size: int) -> Iterator[list[str]]:
        for rows in self.source.pages(self._load(name), batch_size, "", [self.pk]):
            yield [str(r[self.pk]) for r in rows]

    def get(self, name: str, raw_ids: list[Any]) -> SourceBatch:
        fields = self.client.describe_collection(name)["fields"]
        size = next(int(f["params"]["dim"]) for f in fields if f["name"] == self.vector)
        return self.source.get_from(self._load(name), raw_ids, size)

    def search(self, name: str, vectors: np.ndarray, k: int) -> list[list[str]]:
        return self.source.search_in(self._load(name), vectors, k)

    def index_bytes(self, name: str) -> int | None:
        return self.source.index_bytes_of(name)
