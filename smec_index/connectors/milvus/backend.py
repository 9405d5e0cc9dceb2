"""Milvus: milvus-lite files by default, or a Milvus server given by URI.

Without ``uri`` the backend opens milvus-lite at ``<data_dir>/milvus/milvus.db`` (a folder;
milvus-lite runs in-process behind a local gRPC port). With ``uri`` it talks to that server,
token from the argument or ``$MILVUS_TOKEN`` (never logged, never in a message).

Each collection has a VARCHAR primary key ``id`` (the caller's string ids), a FLOAT_VECTOR
``vector``, a JSON ``payload`` and one vector index named ``vector``. The :class:`IndexSpec`
is stored as JSON in the collection property ``smec_index.spec`` (both backends keep
properties; milvus-lite drops the schema description), so it travels with the collection.

Writes are Milvus upserts (delete + insert by primary key). Before the next search, count,
iterate or size query (or on flush and close) the collection is flushed, its index is
awaited until it covers every flushed segment, and it is loaded, once however many writes
came before: searches then run on sealed, indexed segments (unflushed data is searched
without the index, about 50x slower). A build timed up to its flush thus includes index
building, and search time does not. Iteration pages by primary key (``id > cursor``), so
its cursor is the last id of a batch. Aliases are Milvus' own.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from pymilvus import DataType, MilvusClient, MilvusException

from smec_index.connectors.base import (
    Batch,
    IndexSpec,
    Sizes,
    check_lite_uri,
    default_data_dir,
    is_milvus_server,
)
from smec_index.connectors.contract import MAX_ID_BYTES
from smec_index.connectors.milvus.client import (
    GuardedClient,
    check_lite_database,
    check_lite_suffix,
    close_lite,
    connect,
    escaped_pages,
    keys_filter,
    literal,
    one_line,
    open_lite,
    server_sizes,
    wait_for_index,
)
from smec_index.connectors.storage import (
    DISK_METHOD,
    Life,
    disk_bytes,
    end_life,
    life_of,
    make_directory,
    native_notes,
)
from smec_index.errors import SmecError, brief
from smec_index.secrets import check_url, has_userinfo, shown_url

SPEC_PROPERTY = "smec_index.spec"
METRICS = {"cosine": "COSINE", "ip": "IP", "l2": "L2"}
# Our index params -> Milvus' names, per kind; the Milvus index type is kind.upper(), but
# for ivf_flat with an encoding (IVF_ENCODINGS).
BUILD_PARAMS: dict[str, dict[str, str]] = {
    "flat": {},
    "hnsw": {"M": "M", "ef_construction": "efConstruction"},
    "ivf_flat": {"nlist": "nlist"},
    "ivf_pq": {"nlist": "nlist", "pq_m": "m", "pq_bits": "nbits"},
}
# ivf_flat's codes (the ``encoding`` parameter): Milvus names each one an index type.
IVF_ENCODINGS = {"float32": "IVF_FLAT", "sq8": "IVF_SQ8"}
SEARCH_PARAMS: dict[str, dict[str, str]] = {
    "flat": {},
    "hnsw": {"ef_search": "ef"},
    "ivf_flat": {"nprobe": "nprobe"},
    "ivf_pq": {"nprobe": "nprobe"},
}
# Milvus' own bounds (its docs and its checks): a value past them is refused by the server
# (or, on milvus-lite, fails to allocate) at search time, so it is refused here first.
QUERY_LIMITS = {"ef_search": 32768, "nprobe": 65536}
BUILD_LIMITS = {"M": 2048, "nlist": 65536, "pq_bits": 16, **QUERY_LIMITS}
LITE_KINDS = ("flat", "hnsw", "ivf_flat")  # milvus-lite 3.2 builds no IVF_PQ
ITERATOR_PAGE_LIMIT = 16384  # Milvus' largest query window
LITE_LOAD_TRIES = 4


MILVUS_MAX_DIM = 32768  # its maxDimension setting's default
ALIASES_TTL_S = 1.0  # how old a connector's alias table may be (another process's switch)
_ALIAS_SWITCHES: dict[str, int] = {}  # where -> alias switches made by this process


class MilvusBackend:
    """A Milvus server (``uri``) or milvus-lite (``data_dir``) as a backend.

    Args:
        uri: ``http://host:19530`` of a Milvus server, or a milvus-lite ``.db`` path;
            ``None`` opens milvus-lite under ``data_dir``.
        token: the server's token (``user:password`` or an API key); defaults to
            ``$MILVUS_TOKEN``. milvus-lite ignores it.
        data_dir: where milvus-lite keeps ``milvus/milvus.db``; :func:`default_data_dir`
            when ``None``.
        timeout: seconds to spend connecting to a server, retries included.
        storage: the server's local storage folder (``localStorage.path``), when this
            machine can read it: sizes are then measured from its files. Without it a
            server reports only its stored binlog bytes.

    Index kinds: ``flat``, ``hnsw`` (searched with ``ef = max(ef_search, k)``, which Milvus
    requires), ``ivf_flat`` (``encoding`` ``float32``: IVF_FLAT, ``sq8``: IVF_SQ8) and, on a
    server, ``ivf_pq``. milvus-lite takes an hnsw spec but answers exactly: on 10,000 points
    its recall@10 was 1.0 at every ef_search from 1 to 400 (the contract test checks that a
    narrow beam loses recall everywhere else), so its HNSW figures are those of a scan.
    """

    name = "milvus"
    query_limits = QUERY_LIMITS

    def __init__(
        self,
        uri: str | None = None,
        token: str | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        timeout: float = 10.0,
        storage: str | os.PathLike[str] | None = None,
    ) -> None:
        self.lite = not is_milvus_server(uri)
        if uri:
            check_lite_uri(uri)
        if uri and not self.lite:
            check_url(uri, "--uri")
        if uri and has_userinfo(uri):
            raise SmecError(
                f"--uri {shown_url(uri)}: pass Milvus credentials with --token (or "
                "MILVUS_TOKEN, 'user:password'), not in the URI"
            )
        if uri and self.lite and not uri.endswith(".db") and re.search(r":\d+($|/)", uri):
            raise SmecError(
                f"--uri {shown_url(uri)}: a server address needs its scheme "
                "(http://host:19530); a milvus-lite database is a path ending in .db"
            )
        self._loaded: set[str] = set()
        self._read: set[str] = set()  # read by this connector: never released by a write
        # loaded once, then released by a write: milvus-lite writes no index file for the
        # segments flushed since (HNSW), so nothing waits for one (a count hung 600 s)
        self._released: set[str] = set()
        self._pending: set[str] = set()  # written to since the last flush
        self._specs: dict[str, tuple[IndexSpec, Life]] = {}
        self._aliases: dict[str, str] | None = None
        self._aliases_read = (0, 0.0)  # (this process's switch count, when) it was read
        self._created: set[str] = set()  # made by this connector: nobody else searches them
        self.storage = Path(storage) if storage else None
        kinds = LITE_KINDS if self.lite else tuple(BUILD_PARAMS)
        self.index_kinds = {kind: ("encoding",) if kind == "ivf_flat" else () for kind in kinds}
        if not self.lite:
            token = os.environ.get("MILVUS_TOKEN", "") if token is None else token
            self._client: MilvusClient | None = connect(uri, token, timeout)
            self.where = shown_url(uri)
            return
        if importlib.util.find_spec("milvus_lite") is None:
            raise SmecError(
                "embedded Milvus needs milvus-lite; pip install 'smec-index[milvus]' "
                "or pass --uri of a Milvus server"
            )
        path = Path(uri) if uri else Path(data_dir or default_data_dir()) / "milvus" / "milvus.db"
        self._db_path = path.resolve()
        self.where = str(self._db_path)
        check_lite_suffix(self._db_path, "--uri" if uri else "the data dir's milvus-lite path")
        check_lite_database(self._db_path, "--uri" if uri else None)
        make_directory(self._db_path.parent)
        self._client = open_lite(self._db_path)

    def __repr__(self) -> str:
        return f"MilvusBackend({'lite' if self.lite else 'server'} at {self.where!r})"

    @property
    def client(self) -> MilvusClient:
        """The pymilvus client; its failures surface as one-line :class:`SmecError`."""
        if self._client is None:
            raise SmecError("this Milvus connector is closed; open a new one")
        return GuardedClient(self._client, self.where)  # type: ignore[return-value]

    # -- collections ---------------------------------------------------------------------
    def check(self, spec: IndexSpec) -> None:
        """Parameters inside Milvus' bounds, refused before anything is built."""
        if spec.dim > MILVUS_MAX_DIM:
            raise SmecError(f"dim {spec.dim:,}: Milvus stores at most {MILVUS_MAX_DIM:,} dims; "
                            "project to fewer")  # fmt: skip
        for name, most in BUILD_LIMITS.items():
            value = spec.params.get(name)
            if isinstance(value, int) and value > most:
                raise SmecError(
                    f"index parameter {name}={value:,}: Milvus takes at most {most:,}"
                )

    def create(self, collection: str, spec: IndexSpec) -> None:
        end_life(f"milvus:{self.where}/{collection}")
        index = self._index_config(spec)
        client = self.client
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=MAX_ID_BYTES)
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
        self._specs[collection] = (spec, self.life(collection))
        self._created.add(collection)

    def exists(self, collection: str) -> bool:
        return self._target(collection) in self.collections()

    def collections(self) -> list[str]:
        return list(self.client.list_collections())

    def spec(self, collection: str) -> IndexSpec:
        name = self._target(collection)
        if name in self._specs and self._specs[name][1].ended:  # made again elsewhere here
            del self._specs[name]
        if name not in self._specs:
            properties = self.client.describe_collection(name).get("properties") or {}
            if SPEC_PROPERTY not in properties:
                raise SmecError(
                    f"collection {collection!r} was not built by smec-index (no "
                    f"{SPEC_PROPERTY} property), so it is someone's own and left alone: pick "
                    "a collection `build` made (a copy `migrate` made is found with that "
                    "migration's --data-dir)"
                )
            spec = IndexSpec(**json.loads(properties[SPEC_PROPERTY]))
            self._specs[name] = (spec, self.life(name))
        return self._specs[name][0]

    def foreign(self, collection: str) -> bool:
        properties = self.client.describe_collection(collection).get("properties") or {}
        return SPEC_PROPERTY not in properties

    def life(self, collection: str) -> Life:
        """Whether ``collection`` (a physical name) still exists as this process knows it:
        a drop or a create of that name here ends it, so a searcher opened before refuses
        instead of answering from whatever now has the name."""
        return life_of(f"milvus:{self.where}/{collection}")

    def drop(self, collection: str) -> None:
        end_life(f"milvus:{self.where}/{collection}")
        self._switched()  # its aliases go with it
        self._loaded.discard(collection)
        self._released.discard(collection)
        self._read.discard(collection)
        self._pending.discard(collection)
        self._specs.pop(collection, None)
        if collection in self.collections():
            self.client.drop_collection(collection)

    # -- points --------------------------------------------------------------------------
    def upsert(
        self, collection: str, ids: list[str], vectors: np.ndarray, payloads: list[dict]
    ) -> None:
        name = self._target(collection)
        if name in self._loaded and name not in self._read and \
                (self.lite or name in self._created):  # fmt: skip
            # Released, the new rows load once as sealed, indexed segments instead of being
            # searched as growing segments until Milvus hands them off. Never on a server
            # collection this connector did not create (others may be searching it), nor on
            # one this connector has read (a search or an iteration may be under way).
            self.client.release_collection(name)
            self._loaded.discard(name)
            self._released.add(name)
        rows = [
            {"id": point_id, "vector": vector, "payload": payload}
            for point_id, vector, payload in zip(ids, vectors, payloads, strict=True)
        ]
        self.client.upsert(name, rows)
        self._pending.add(name)

    def get(self, collection: str, ids: list[str]) -> Batch:
        name = self._target(collection)
        self._ensure_loaded(name)
        self._read.add(name)
        rows = self.client.query(name, filter=keys_filter("id", ids),
                                 output_fields=["id", "vector", "payload"])  # fmt: skip
        found = {row["id"]: row for row in rows}
        return self._batch([found[i] for i in ids if i in found], self.spec(name).dim)

    def search(
        self, collection: str, queries: np.ndarray, k: int, params: dict[str, int]
    ) -> list[list[tuple[str, float]]]:
        name = self._target(collection)
        spec = self.spec(name)
        self._ensure_loaded(name)
        self._read.add(name)
        search_params = {
            theirs: int(params[ours])
            for ours, theirs in SEARCH_PARAMS[spec.index].items()
            if ours in params
        }
        if "ef" in search_params:
            search_params["ef"] = max(search_params["ef"], k)  # Milvus requires ef >= k
        results = self.client.search(
            name,
            data=list(queries),
            limit=k,
            anns_field="vector",
            search_params={"metric_type": METRICS[spec.metric], "params": search_params},
            output_fields=[],
            consistency_level="Session",  # reads this client's writes, no wait for others
        )
        sign = -1.0 if spec.metric == "l2" else 1.0  # Milvus L2 gives (squared) distances
        return [
            [(str(hit["id"]), sign * float(hit["distance"])) for hit in hits] for hits in results
        ]

    def count(self, collection: str) -> int:
        name = self._target(collection)
        self._ensure_loaded(name)
        self._read.add(name)
        rows = self.client.query(
            name, filter="", output_fields=["count(*)"], consistency_level="Strong"
        )
        return int(rows[0]["count(*)"]) if rows else 0

    def iterate(self, collection: str, batch_size: int, cursor: str | None) -> Iterator[Batch]:
        """Every point once in primary-key order, from the id after ``cursor``; pymilvus'
        query iterator pages by ``id > last``, so no offset + limit window (16,384 on
        Milvus) is ever exceeded."""
        name = self._target(collection)
        dim = self.spec(name).dim
        if cursor is not None and not isinstance(cursor, str):
            raise SmecError(f"cursor {cursor!r} is not one {collection!r} gave; resume with a "
                            "cursor of this collection")  # fmt: skip
        self._ensure_loaded(name)
        self._read.add(name)
        if cursor is not None and not self.client.query(
            name, filter=f"id == {literal(cursor)}", output_fields=["id"], limit=1,
            consistency_level="Strong",
        ):  # a cursor is a batch's last id: any other text read as "id > it" ended early
            raise SmecError(f"cursor {brief(cursor, 40)} is not one {collection!r} gave (no point "
                            "has that id); resume with a cursor of this collection")  # fmt: skip
        iterator = escaped_pages(self.client.query_iterator(
            name,
            batch_size=min(batch_size, ITERATOR_PAGE_LIMIT),
            filter="" if cursor is None else f"id > {literal(cursor)}",
            output_fields=["vector", "payload"],
            consistency_level="Strong",
            strict_float32=True,  # each vector as a float32 array row, not Python floats
        ))  # fmt: skip
        def page() -> list[dict[str, Any]]:
            try:
                return iterator.next()
            except MilvusException as exc:
                gone = name not in self.client.list_collections()
                raise SmecError(
                    f"collection {collection!r} was dropped while it was being iterated; "
                    "iterate it again once it is rebuilt" if gone else
                    f"reading {collection!r} from Milvus at {self.where} failed: {one_line(exc)}"
                ) from None  # fmt: skip

        try:
            rows = page()
            while rows:
                following = page()
                batch = self._batch(rows, dim)
                batch.cursor = batch.ids[-1] if following else None
                yield batch
                rows = following
        finally:
            with contextlib.suppress(Exception):  # the collection may be gone: nothing to close
                iterator.close()

    @staticmethod
    def _batch(rows: list[dict[str, Any]], dim: int) -> Batch:
        return Batch(
            ids=[str(row["id"]) for row in rows],
            vectors=np.asarray([r["vector"] for r in rows], np.float32).reshape(-1, dim),
            payloads=[row.get("payload") or {} for row in rows],
        )

    def flush(self, collection: str) -> None:
        name = self._target(collection)
        if not self.lite:
            self._ensure_loaded(name)
            return
        # milvus-lite builds each segment's index (FAISS, in this process) in a background
        # thread after the flush; its k-means advice goes to stderr then. Waiting for the
        # index files here keeps that inside the block that catches it. Segments flushed
        # after a write released a loaded collection get no index file (HNSW: waited for,
        # they hung a flush 600 s), so nothing waits for theirs.
        loaded = name in self._loaded or name in self._released
        with native_notes("milvus-lite"):
            self._ensure_loaded(name)
            if not loaded:
                wait_for_lite_index_files(self._db_path / "collections" / name)

    def sizes(self, collection: str) -> Sizes:
        """Files where this machine can read them (milvus-lite; a server given
        ``storage``), else the server's stored binlog bytes (``total_bytes`` only)."""
        name = self._target(collection)
        self._ensure_loaded(name)
        if self.lite:
            folder = self._db_path / "collections" / name
            try:  # segments flushed after a release get their index file later, if at all
                wait_for_lite_index_files(folder, 10.0)
            except SmecError:
                pass
            return Sizes(
                index_bytes=disk_bytes(folder, keep=lite_index_file),
                total_bytes=disk_bytes(folder),
                method=f"{DISK_METHOD}; index: the vector index files (.vector.*.idx, FAISS "
                "indexes holding the vectors) of milvus-lite's collection folder; total: the "
                "whole folder (columns in parquet, deletes, write-ahead log, metadata)",
            )
        collection_id = str(self.client.describe_collection(name)["collection_id"])
        return server_sizes(self.client, name, collection_id, self.storage)

    # -- aliases -------------------------------------------------------------------------
    def aliases(self) -> dict[str, str]:
        """Read again after a switch by any connector of this process, and at most
        ``ALIASES_TTL_S`` old otherwise (another process's switch)."""
        stamp = _ALIAS_SWITCHES.get(self.where, 0)
        if (
            self._aliases is None
            or self._aliases_read[0] != stamp
            or time.monotonic() - self._aliases_read[1] > ALIASES_TTL_S
        ):
            found = {}
            for name in self.collections():
                for alias in self.client.list_aliases(name).get("aliases", []):
                    found[alias] = name
            self._aliases, self._aliases_read = found, (stamp, time.monotonic())
        return dict(self._aliases)

    def _switched(self) -> None:
        self._aliases = None
        _ALIAS_SWITCHES[self.where] = _ALIAS_SWITCHES.get(self.where, 0) + 1

    def _target(self, collection: str) -> str:
        return self.aliases().get(collection, collection)

    def set_alias(self, alias: str, collection: str) -> None:
        if alias in self.aliases():
            self.client.alter_alias(collection, alias)
        else:
            self.client.create_alias(collection, alias)
        self._switched()

    def drop_alias(self, alias: str) -> None:
        self.client.drop_alias(alias)
        self._switched()

    def close(self) -> None:
        if self._client is None:
            return
        try:
            for collection in list(self._pending):
                if collection in self.collections():
                    self._seal(collection)
        finally:  # a failed flush must not leak the client or milvus-lite's server
            client, self._client = self._client, None
            self._pending.clear()
            if self.lite:  # stop milvus-lite (flushes, frees the folder) when its last user closes
                close_lite(self._db_path, client)
            else:
                client.close()

    def _index_config(self, spec: IndexSpec) -> dict[str, Any]:
        params = {
            theirs: int(spec.params[ours]) for ours, theirs in BUILD_PARAMS[spec.index].items()
        }
        encoding = spec.params.get("encoding") or "float32"
        if encoding not in IVF_ENCODINGS:
            raise SmecError(
                f"milvus ivf_flat encoding {encoding!r}: use float32 (IVF_FLAT) or sq8 (IVF_SQ8)"
            )
        index_type = IVF_ENCODINGS[encoding] if spec.index == "ivf_flat" else spec.index.upper()
        return {
            "index_type": index_type,
            "metric_type": METRICS[spec.metric],
            "params": params,
        }

    def _seal(self, collection: str) -> None:
        """Flush pending writes and wait until the index covers them."""
        if collection in self._pending:
            if self.lite:  # its index is built after the flush, FAISS printing k-means advice
                folder = self._db_path / "collections" / collection
                before = lite_data_files(folder)  # only the segments this flush writes
                with native_notes("milvus-lite"):  # (a search right after an add met it),
                    self.client.flush(collection)  # (not for these: see flush())
                    if (collection not in self._loaded and collection not in self._released
                            and self._lite_builds_index(collection)):  # fmt: skip
                        wait_for_lite_index_files(folder, since=before)
            else:
                self.client.flush(collection)
                wait_for_index(self.client, collection)
            self._pending.discard(collection)

    def _lite_builds_index(self, collection: str) -> bool:
        """Whether milvus-lite writes the index files of segments flushed now: only while
        the collection is loaded in it (a collection another connector of this process
        loaded and closed is not, once milvus-lite restarts: its flushed segments got no
        index file until a load, and a close waited 600 s for them)."""
        try:
            state = self.client.get_load_state(collection).get("state")
        except Exception:  # noqa: BLE001 - unknown: wait, as before
            return True
        return getattr(state, "name", str(state)) == "Loaded"

    def _ensure_loaded(self, collection: str) -> None:
        self._seal(collection)
        if collection not in self._loaded:
            self._load(collection)
            self._loaded.add(collection)

    def _load(self, collection: str) -> None:
        """``load_collection``; on milvus-lite, tried again on a short read of an index file.

        milvus-lite (3.2) builds a segment's index in a background thread after a flush and
        writes it in place, so a load right after a flush can read the file half-written
        ("read error ... 36333 != 39936"; seen once in a full test run). A moment later the
        file is whole, and the same load succeeds.
        """
        for attempt in range(LITE_LOAD_TRIES):
            try:
                # milvus-lite indexes the segments flushed while it was not loaded here, with
                # FAISS's k-means advice on stderr ("clustering 1 points to 1 centroids")
                with native_notes("milvus-lite") if self.lite else contextlib.nullcontext():
                    self.client.load_collection(collection)
                return
            except SmecError as exc:
                if not self.lite or "read error" not in str(exc) or attempt == LITE_LOAD_TRIES - 1:
                    raise
                time.sleep(0.5 * (attempt + 1))


def lite_data_files(folder: Path) -> set[str]:
    """The data files (segments) of milvus-lite's collection folder, by name."""
    return {p.stem for p in folder.glob("partitions/*/data/*.parquet")}


def wait_for_lite_index_files(folder: Path, timeout: float = 600.0, field: str = "vector",
                              since: set[str] | None = None) -> None:  # fmt: skip
    """Wait until milvus-lite has written the index of vector ``field`` for every data
    file (``since``: every one not among these, the segments a flush just wrote): it builds
    them in a background thread after a flush, so right after one they may be missing.
    Segments flushed while the collection was loaded get none, ever: a second connector's
    flush waited 600 s for those of the first's."""
    deadline = time.monotonic() + timeout
    while True:
        data = lite_data_files(folder) - (since or set())
        indexed = {
            p.name.split(".")[0]
            for p in folder.glob("partitions/*/indexes/*")
            if lite_index_file(p, field)
        }
        if data <= indexed:
            return
        if time.monotonic() > deadline:
            raise SmecError(
                f"milvus-lite has not written the index of {folder.name!r} after "
                f"{timeout:.0f} s; try again when it is idle"
            )
        time.sleep(0.1)


def lite_index_file(path: Path, field: str = "vector") -> bool:
    """Whether a file of milvus-lite's collection folder is the index of vector ``field``
    (``partitions/<p>/indexes/<data>.<field>.<type>.idx``, a FAISS index with the vectors)."""
    return (path.parent.name == "indexes" and path.name.endswith(".idx")
            and f".{field}." in path.name)  # fmt: skip
