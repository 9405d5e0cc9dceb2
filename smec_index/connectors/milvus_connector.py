"""Milvus: milvus-lite files by default, or a Milvus server given by URI.

Without ``uri`` the connector opens milvus-lite at ``<data_dir>/milvus/milvus.db`` (a folder;
milvus-lite runs in-process behind a local gRPC port). With ``uri`` it talks to that server,
token from the argument or ``$MILVUS_TOKEN`` (never logged, never in a message).

Each collection has a VARCHAR primary key ``id`` (the caller's string ids), a FLOAT_VECTOR
``vector``, a JSON ``payload`` and one vector index named ``vector``. The :class:`IndexSpec`
is stored as JSON in the collection property ``smec_index.spec`` (both backends keep
properties; milvus-lite drops the schema description), so it travels with the collection.

``add`` only inserts. Before the next search, count, iterate or size query (or on close) the
collection is flushed, its index is awaited until it covers every flushed segment, and it
is loaded, once however many ``add`` calls came before: searches then run on sealed,
indexed segments (unflushed data is searched without the index, about 50x slower). A build
timed up to its first ``count`` thus includes index building, and search time does not.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pymilvus import DataType, MilvusClient, MilvusException

from smec_index.connectors.base import (
    Batch,
    IndexSpec,
    check_collection_name,
    check_ids,
    check_vectors,
    default_data_dir,
)
from smec_index.connectors.milvus_ops import (
    GuardedClient,
    binlog_bytes,
    connect,
    one_line,
    shown_uri,
    wait_for_index,
)
from smec_index.errors import SmecError

MAX_ID_LENGTH = 1024  # bytes; VARCHAR max_length of the primary key
SPEC_PROPERTY = "smec_index.spec"
METRICS = {"cosine": "COSINE", "ip": "IP", "l2": "L2"}
# Our index params -> (Milvus' name, default), per kind; the Milvus index type is kind.upper().
BUILD_PARAMS: dict[str, dict[str, tuple[str, int | None]]] = {
    "flat": {},
    "hnsw": {"M": ("M", 16), "ef_construction": ("efConstruction", 200)},
    "ivf_flat": {"nlist": ("nlist", 128)},
    "ivf_pq": {"nlist": ("nlist", 128), "pq_m": ("m", None), "pq_bits": ("nbits", 8)},
}
SEARCH_PARAMS: dict[str, dict[str, tuple[str, int | None]]] = {
    "flat": {},
    "hnsw": {"ef_search": ("ef", 64)},
    "ivf_flat": {"nprobe": ("nprobe", 16)},
    "ivf_pq": {"nprobe": ("nprobe", 16)},
}
LITE_KINDS = ("flat", "hnsw", "ivf_flat")  # milvus-lite 3.2 builds no IVF_PQ
_lite_users: dict[Path, int] = {}  # open connectors per milvus-lite folder


class MilvusConnector:
    """A Milvus server (``uri``) or milvus-lite (``data_dir``) as a :class:`Connector`.

    Args:
        uri: ``http://host:19530`` of a Milvus server; ``None`` opens milvus-lite.
        token: the server's token (``user:password`` or an API key); defaults to
            ``$MILVUS_TOKEN``. milvus-lite ignores it.
        data_dir: where milvus-lite keeps ``milvus/milvus.db``; :func:`default_data_dir`
            when ``None``.
        timeout: seconds to spend connecting to a server, retries included.

    Index kinds: ``flat``, ``hnsw`` (``M``, ``ef_construction``; searched with
    ``ef = max(ef_search, k)``), ``ivf_flat`` (``nlist``; ``nprobe``) and, on a server,
    ``ivf_pq`` (``nlist``, ``pq_m`` (default dim/2), ``pq_bits``; ``nprobe``).
    """

    name = "milvus"

    def __init__(
        self,
        uri: str | None = None,
        token: str | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.lite = not uri
        self._loaded: set[str] = set()
        self._pending: set[str] = set()  # inserted into since the last flush
        self._specs: dict[str, IndexSpec] = {}
        if uri:
            token = os.environ.get("MILVUS_TOKEN", "") if token is None else token
            self._client: MilvusClient | None = connect(uri, token, timeout)
            self.where = shown_uri(uri)
            return
        if importlib.util.find_spec("milvus_lite") is None:
            raise SmecError(
                "embedded Milvus needs milvus-lite; pip install 'smec-index[milvus]' "
                "or pass --uri of a Milvus server"
            )
        self._db_path = (Path(data_dir or default_data_dir()) / "milvus" / "milvus.db").resolve()
        self.where = str(self._db_path)
        self._db_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._client = MilvusClient(str(self._db_path))
        except MilvusException:
            raise SmecError(
                f"milvus-lite could not open {self._db_path}; another process may hold it "
                "(close that, or use another --data-dir)"
            ) from None
        _lite_users[self._db_path] = _lite_users.get(self._db_path, 0) + 1

    @property
    def client(self) -> MilvusClient:
        """The pymilvus client; its failures surface as one-line :class:`SmecError`."""
        if self._client is None:
            raise SmecError("this Milvus connector is closed; open a new one")
        return GuardedClient(self._client, self.where)  # type: ignore[return-value]

    def create(self, collection: str, spec: IndexSpec, overwrite: bool = False) -> None:
        check_collection_name(collection)
        if "-" in collection or len(collection) > 255:
            raise SmecError(
                f"collection name {collection!r}: Milvus allows letters, digits and '_' "
                "(no '-'), at most 255 characters; use '_' instead of '-'"
            )
        index = self._index_config(spec)  # a bad kind or param fails before anything is dropped
        if self.exists(collection):
            if not overwrite:
                raise SmecError(
                    f"collection {collection!r} already exists; pass overwrite=True "
                    "(--overwrite) to replace it, or pick another name"
                )
            self.drop(collection)
        client = self.client
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=MAX_ID_LENGTH)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=int(spec.dim))
        schema.add_field("payload", DataType.JSON)
        properties = {SPEC_PROPERTY: json.dumps(spec.to_dict())}
        client.create_collection(
            collection, schema=schema, consistency_level="Bounded", properties=properties
        )
        try:
            # The classic {"params": {...}} form: pymilvus 3's IndexParams flattens the params
            # into top-level keys, which Milvus 2.3 reads but milvus-lite 3.2 silently ignores.
            client._get_connection().create_index(collection, "vector", index, index_name="vector")
        except MilvusException as exc:
            client.drop_collection(collection)
            raise SmecError(
                f"Milvus rejected {index['index_type']} with {index['params']}: "
                f"{one_line(exc)}; change the index params"
            ) from None
        self._specs[collection] = spec

    def exists(self, collection: str) -> bool:
        return bool(self.client.has_collection(collection))

    def spec(self, collection: str) -> IndexSpec:
        self._require(collection)
        properties = self.client.describe_collection(collection).get("properties") or {}
        if SPEC_PROPERTY not in properties:
            raise SmecError(
                f"collection {collection!r} was not created by smec-index (no "
                f"{SPEC_PROPERTY} property); recreate it with --overwrite"
            )
        spec = IndexSpec(**json.loads(properties[SPEC_PROPERTY]))
        self._specs[collection] = spec
        return spec

    def add(
        self,
        collection: str,
        ids: Sequence[str],
        vectors: np.ndarray,
        payloads: Sequence[dict[str, Any]] | None = None,
        batch_size: int = 1000,
    ) -> None:
        """Insert in batches; flush, index wait and load happen once, before the next read.

        Milvus does not check primary keys on insert: an id added twice is stored twice.
        """
        array = check_vectors(vectors, self.spec(collection).dim)
        ids = check_ids(ids, len(array))
        if payloads is not None and len(payloads) != len(ids):
            raise SmecError(f"{len(payloads)} payloads for {len(ids)} ids; pass one per id")
        if any(len(i.encode()) > MAX_ID_LENGTH for i in ids):
            raise SmecError(f"ids longer than {MAX_ID_LENGTH} bytes; shorten them for Milvus")
        client, step = self.client, max(1, int(batch_size))
        # Released, the new rows load once as sealed, indexed segments instead of being
        # searched as growing segments until Milvus hands them off.
        client.release_collection(collection)
        self._loaded.discard(collection)
        for start in range(0, len(ids), step):
            client.insert(
                collection,
                [
                    {"id": ids[n], "vector": array[n], "payload": payloads[n] if payloads else {}}
                    for n in range(start, min(start + step, len(ids)))
                ],
            )
        self._pending.add(collection)

    def search(
        self, collection: str, queries: np.ndarray, k: int
    ) -> tuple[list[list[str]], np.ndarray]:
        spec = self._specs.get(collection) or self.spec(collection)
        queries = check_vectors(queries, spec.dim, what="queries")
        if int(k) <= 0:
            raise SmecError(f"k must be positive, got {k}")
        k = int(k)
        self._ensure_loaded(collection)
        params = {
            theirs: int(spec.params.get(ours, default))
            for ours, (theirs, default) in SEARCH_PARAMS[spec.index].items()
        }
        if "ef" in params:
            params["ef"] = max(params["ef"], k)  # Milvus requires ef >= k
        results = self.client.search(
            collection,
            data=list(queries),
            limit=k,
            anns_field="vector",
            search_params={"metric_type": METRICS[spec.metric], "params": params},
            output_fields=[],
            consistency_level="Session",  # reads this client's writes, no wait for others
        )
        sign = -1.0 if spec.metric == "l2" else 1.0  # Milvus L2 gives (squared) distances
        ids = [[""] * k for _ in range(len(queries))]
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        for row, hits in enumerate(results):
            for col, hit in enumerate(list(hits)[:k]):
                ids[row][col] = str(hit["id"])
                scores[row, col] = sign * float(hit["distance"])
        return ids, scores

    def count(self, collection: str) -> int:
        self._require(collection)
        self._ensure_loaded(collection)
        rows = self.client.query(
            collection, filter="", output_fields=["count(*)"], consistency_level="Strong"
        )
        return int(rows[0]["count(*)"]) if rows else 0

    def iterate(self, collection: str, batch_size: int = 1000) -> Iterator[Batch]:
        """Every point once: pymilvus' query iterator pages by primary key (``id > last``),
        so no offset + limit window (16384 on Milvus) is ever exceeded."""
        dim = self.spec(collection).dim
        self._ensure_loaded(collection)
        iterator = self.client.query_iterator(
            collection,
            batch_size=max(1, min(int(batch_size), 16384)),
            output_fields=["vector", "payload"],
            consistency_level="Strong",
        )
        try:
            while rows := iterator.next():
                yield Batch(
                    ids=[str(row["id"]) for row in rows],
                    vectors=np.asarray([r["vector"] for r in rows], np.float32).reshape(-1, dim),
                    payloads=[row.get("payload") or {} for row in rows],
                )
        finally:
            iterator.close()

    def memory_bytes(self, collection: str) -> int | None:
        """milvus-lite: bytes of the collection's folder on disk. A server: the sum of
        ``mem_size`` over loaded segments (query nodes; Milvus >= 2.4), else, as Milvus 2.3
        reports 0 there, the data coordinator's binlog bytes for the collection from
        ``GetMetrics`` (stored ids, vectors and payloads, not the index); ``None`` if the
        server reports neither."""
        self._require(collection)
        if self.lite:
            folder = self._db_path / "collections" / collection
            return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        self._ensure_loaded(collection)
        client = self.client
        loaded = sum(int(s.mem_size) for s in client.list_loaded_segments(collection))
        if loaded > 0:
            return loaded
        collection_id = str(client.describe_collection(collection)["collection_id"])
        return binlog_bytes(client, collection_id)

    def drop(self, collection: str) -> None:
        self._loaded.discard(collection)
        self._pending.discard(collection)
        self._specs.pop(collection, None)
        if self.exists(collection):
            self.client.drop_collection(collection)

    def close(self) -> None:
        if self._client is None:
            return
        try:
            for collection in list(self._pending):
                if self.exists(collection):
                    self._seal(collection)
        finally:  # a failed flush must not leak the client or milvus-lite's server
            client, self._client = self._client, None
            self._pending.clear()
            client.close()
            if self.lite:  # stop milvus-lite (flushes, frees the folder) when its last user closes
                _lite_users[self._db_path] -= 1
                if not _lite_users[self._db_path]:
                    del _lite_users[self._db_path]
                    from milvus_lite.server_manager import server_manager_instance

                    server_manager_instance.release_server(str(self._db_path))

    def _index_config(self, spec: IndexSpec) -> dict[str, Any]:
        kinds = LITE_KINDS if self.lite else tuple(BUILD_PARAMS)
        if spec.index not in kinds:
            where = "milvus-lite" if self.lite else "Milvus"
            raise SmecError(
                f"{where} has no {spec.index!r} index; use one of {', '.join(kinds)}"
                + (" (or a Milvus server via --uri)" if self.lite else "")
            )
        build = BUILD_PARAMS[spec.index]
        allowed = set(build) | set(SEARCH_PARAMS[spec.index])
        unknown = sorted(set(spec.params) - allowed)
        if unknown:
            raise SmecError(
                f"Milvus {spec.index} takes no {', '.join(unknown)}; use only "
                f"{', '.join(sorted(allowed)) or 'no params'}"
            )
        params = {
            theirs: spec.params.get(ours, default) for ours, (theirs, default) in build.items()
        }
        if spec.index == "ivf_pq":
            params["m"] = int(params["m"] or (spec.dim // 2 if spec.dim % 2 == 0 else spec.dim))
            if spec.dim % params["m"]:
                raise SmecError(f"pq_m={params['m']} must divide dim {spec.dim}; pick a divisor")
        return {
            "index_type": spec.index.upper(),
            "metric_type": METRICS[spec.metric],
            "params": {key: int(value) for key, value in params.items()},
        }

    def _require(self, collection: str) -> None:
        if not self.exists(collection):
            raise SmecError(f"no collection {collection!r}; create it first (or check the name)")

    def _seal(self, collection: str) -> None:
        """Flush pending inserts and wait until the index covers them."""
        if collection in self._pending:
            self.client.flush(collection)
            if not self.lite:  # milvus-lite builds its index during the flush
                wait_for_index(self.client, collection)
            self._pending.discard(collection)

    def _ensure_loaded(self, collection: str) -> None:
        self._seal(collection)
        if collection not in self._loaded:
            self.client.load_collection(collection)
            self._loaded.add(collection)
