"""Reading a Milvus collection someone made (a server, or a milvus-lite ``.db``) with
pymilvus, and describing its schema as plain JSON.

Nothing here writes to the source. Its copy with smaller vectors is
:class:`~smec_index.connectors.milvus.mirror.MilvusMirror`, which shares the client.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from smec_index.connectors.base import check_lite_uri, is_milvus_server, positive_int
from smec_index.connectors.source import (
    BIG_K,
    Partition,
    SourceBatch,
    SourceInfo,
    check_not_alias,
    search_queries,
)
from smec_index.connectors.storage import native_notes
from smec_index.errors import SmecError
from smec_index.secrets import shown_url

METRICS = {"COSINE": "cosine", "IP": "ip", "L2": "l2"}
# describe_index keys that report build progress, not what the index is
INDEX_PROGRESS = {"total_rows", "indexed_rows", "pending_index_rows", "state",
                  "index_state_fail_reason"}  # fmt: skip


def plain(value: Any) -> Any:
    """A describe_collection value as plain JSON: enums by name, a protobuf default value
    (``string_data: "x"``) as the value it holds."""
    if hasattr(value, "WhichOneof"):
        kind = value.WhichOneof("data")
        return None if kind is None else getattr(value, kind)
    if hasattr(value, "name") and hasattr(value, "value"):  # DataType and other enums
        return value.name
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def describe(client: Any, collection: str) -> dict[str, Any]:
    """A Milvus collection's schema: fields in order with types and parameters, the
    dynamic-field setting, description, consistency level, properties, partitions (by name,
    or the partition key's count), and every index (vector and scalar) with its
    parameters."""
    described = client.describe_collection(collection)
    fields = {}
    for f in described["fields"]:
        # the key's auto_id is the collection's, listed once below
        entry = {k: plain(v) for k, v in f.items() if k not in ("field_id", "name", "auto_id")}
        entry.setdefault("params", {})
        fields[f["name"]] = entry
    partition_key = any(f.get("is_partition_key") for f in described["fields"])
    indexes = {}
    for name in client.list_indexes(collection):
        info = client.describe_index(collection, name)
        indexes[name] = {k: plain(v) for k, v in info.items() if k not in INDEX_PROGRESS}
    return {
        "description": described.get("description", ""),
        "auto_id": bool(described.get("auto_id")),
        "enable_dynamic_field": bool(described.get("enable_dynamic_field")),
        "consistency_level": described.get("consistency_level_name")
        or plain(described.get("consistency_level")),
        "properties": plain(described.get("properties") or {}),
        "functions": plain(described.get("functions") or []),
        "field_order": [f["name"] for f in described["fields"]],
        "fields": fields,
        "partitions": {"key": int(described.get("num_partitions", 0))}
        if partition_key
        else sorted(client.list_partitions(collection)),
        "indexes": indexes,
    }


class MilvusSource:
    """A Milvus collection (server or milvus-lite): its primary key, its one FLOAT_VECTOR
    field, and every other field (dynamic ones too) as payload. Read in primary-key order,
    so the cursor is the last key read."""

    def __init__(self, uri: str, token: str | None, collection: str):
        from pymilvus import DataType

        from smec_index.connectors.milvus.client import (
            GuardedClient,
            check_lite_database,
            connect,
            open_lite,
        )

        lite = not is_milvus_server(uri)
        check_lite_uri(uri)
        self._lite_path = Path(uri).resolve() if lite else None
        self._copy: Path | None = None
        self._writer: Any = None
        self._writer_raw: Any = None
        if lite:
            # milvus-lite writes into a database just by opening it (it folds write-ahead
            # logs into segments) and by loading a collection (it builds index files): the
            # source is read from a copy, and the database itself is opened only by a copy
            # written beside the source (``writer``).
            check_lite_database(self._lite_path, exists=True)
            self._copy = read_copy(self._lite_path)
            where, location = str(uri), f"lite:{self._lite_path}"
            try:
                raw = open_lite(self._copy / COPY_NAME)
            except BaseException:
                shutil.rmtree(self._copy, ignore_errors=True)
                raise
        else:
            raw = connect(uri, token or os.environ.get("MILVUS_TOKEN", ""), 10)
            where = location = shown_url(uri)
        self.client = GuardedClient(raw, where)  # reads (the copy, for milvus-lite)
        self._raw = raw
        self.reader = self.client
        try:
            # Loading a milvus-lite collection builds its index (FAISS, in this process),
            # whose k-means advice on a small IVF collection is caught, not printed.
            with native_notes("milvus-lite") if lite else contextlib.nullcontext():
                self.__open(collection, where, location, lite, DataType)
        except BaseException:
            self.close()
            raise

    def __open(self, collection, where, location, lite, DataType) -> None:
        check_not_alias(collection, aliases(self.client), where)
        if not self.client.has_collection(collection):
            raise SmecError(f"no Milvus collection {collection!r} at {where}; check --collection")
        fields = self.client.describe_collection(collection)["fields"]
        primary = [f for f in fields if f.get("is_primary")]
        vectors = [f for f in fields if f["type"] == DataType.FLOAT_VECTOR]
        others = [f for f in fields if "VECTOR" in plain(f["type"]) and f not in vectors]
        if len(primary) != 1 or len(vectors) != 1 or others:
            raise SmecError(
                f"Milvus collection {collection!r} has {len(vectors)} float vector fields, "
                f"{len(others)} other vector fields and {len(primary)} primary keys; migrate "
                "reads collections with one primary key and one vector field"
            )
        self.pk, self.vector = primary[0]["name"], vectors[0]["name"]
        self.string_pk = primary[0]["type"] == DataType.VARCHAR
        metric = "cosine"
        for index in self.client.list_indexes(collection):
            described = self.client.describe_index(collection, index)
            if described.get("field_name") == self.vector:
                metric = METRICS.get(str(described.get("metric_type")).upper(), "cosine")
        self.collection = collection
        # Reading needs the collection loaded; one that was not is released again at close.
        state = str(self.reader.get_load_state(collection).get("state", ""))
        self._release = "NotLoad" in state and not lite
        self.reader.load_collection(collection)
        dim = int(vectors[0]["params"]["dim"])
        self.info = SourceInfo(where, collection, dim, metric, location, self.vector,
                               {"lite": lite})  # fmt: skip

    def schema(self) -> dict[str, Any]:
        return describe(self.client, self.collection)

    def count(self) -> int:
        return count(self.reader, self.collection)

    @property
    def writer(self) -> Any:
        """The client that writes beside the source: the database itself, opened on first
        use (milvus-lite), or the server's client."""
        if self._lite_path is None:
            return self.client
        if self._writer is None:
            from smec_index.connectors.milvus.client import GuardedClient, open_lite

            self._writer_raw = open_lite(self._lite_path)
            self._writer = GuardedClient(self._writer_raw, self.info.where)
        return self._writer

    @property
    def writing(self) -> bool:
        return self._lite_path is None or self._writer is not None

    def _client(self, collection: str) -> Any:
        """The source is read through :attr:`reader` (its copy, for milvus-lite); a
        collection this migration writes, through :attr:`writer` once it has written (before
        that the copy shows the database as it was)."""
        if collection == self.collection or not self.writing:
            return self.reader
        return self.writer

    def _literal(self, value: Any) -> str:
        from smec_index.connectors.milvus.client import literal

        if self.string_pk:
            return literal(str(value))
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            return literal(int(value))
        return literal(self.raw_id(str(value)))  # "1 or 1=1": one line, never int()'s error

    def batch(
        self, rows: list[dict[str, Any]], cursor: Any = None, dim: int | None = None
    ) -> SourceBatch:
        """Rows as read (``*``) into a batch: the key, the vector, the rest as payload.
        ``dim``: the vectors' size, when not the source's (a copy's)."""
        skip = (self.pk, self.vector)
        try:  # pymilvus decodes JSON cells lazily: here, or in its iterator
            payloads = [{k: v for k, v in r.items() if k not in skip} for r in rows]
        except ValueError as exc:
            raise self._undecodable(exc) from None
        return SourceBatch(
            [str(r[self.pk]) for r in rows],
            [r[self.pk] for r in rows],
            np.asarray([r[self.vector] for r in rows], np.float32).reshape(
                -1, dim or self.info.dim
            ),
            payloads,
            cursor,
        )

    def pages(
        self,
        collection: str,
        batch_size: int,
        filter: str,
        fields: list[str],
        partitions: list[str] | None = None,
    ) -> Iterator[list[dict]]:
        batch_size = positive_int(batch_size, "batch_size")  # 0: no rows at all, silently
        # strict_float32: pymilvus hands each vector over as a row of one float32 array
        # instead of a list of Python floats, which was most of the time spent reading.
        from smec_index.connectors.milvus.client import escaped_pages

        iterator = escaped_pages(self._client(collection).query_iterator(
            collection,
            batch_size=min(batch_size, 16384),
            filter=filter,
            output_fields=fields,
            consistency_level="Strong",
            strict_float32=True,
            **({"partition_names": partitions} if partitions else {}),
        ))  # fmt: skip
        last = None
        try:
            while rows := self._next(iterator, collection):
                if last is not None and rows[-1][self.pk] == last:  # paging stalled
                    raise SmecError(f"reading {collection!r} from Milvus at {self.info.where} "
                                    f"returned the page ending at key {last!r} twice; please "
                                    "report it")  # fmt: skip
                last = rows[-1][self.pk]
                yield rows
        finally:
            with contextlib.suppress(Exception):  # the server may be gone: nothing to close
                iterator.close()

    def iterate(
        self, batch_size: int, cursor: Any, partition: Partition | None = None
    ) -> Iterator[SourceBatch]:
        """In key order; a collection with partitions by name, one partition after another
        (the cursor is then ``[partition number, last key]``), each batch naming its own."""
        named = self.named_partitions()
        if not named:
            yield from self._iterate_in(None, batch_size, cursor, partition)
            return
        start, last = (0, None) if cursor is None else cursor
        for number in range(start, len(named)):
            after = last if number == start else None
            for batch in self._iterate_in(named[number], batch_size, after, partition):
                batch.cursor, batch.partition = [number, batch.cursor], named[number]
                yield batch

    def named_partitions(self) -> list[str]:
        """The partitions by name (``_default`` among them), or [] where there is only
        ``_default`` or a partition key places the rows."""
        partitions = self.schema_partitions()
        if isinstance(partitions, dict) or partitions == ["_default"]:
            return []
        return partitions

    def schema_partitions(self) -> Any:
        if not hasattr(self, "_partitions"):
            self._partitions = describe(self.client, self.collection)["partitions"]
        return self._partitions

    def _iterate_in(
        self, name: str | None, batch_size: int, cursor: Any, partition: Partition | None
    ) -> Iterator[SourceBatch]:
        terms = [] if cursor is None else [f"{self.pk} > {self._literal(cursor)}"]
        on_server = partition is not None and not self.string_pk
        if on_server:  # C-style remainder: a negative key leaves k - n
            n, k = partition.n, partition.k
            terms.append(f"({self.pk} % {n} == {k} or {self.pk} % {n} == {k - n})")
        pages = self.pages(self.collection, batch_size, " and ".join(terms), ["*"],
                           [] if name is None else [name])  # fmt: skip
        for rows in pages:
            batch = self.batch(rows, rows[-1][self.pk])
            yield batch if partition is None or on_server else partition.select(batch)

    def raw_id(self, point_id: str) -> Any:
        if self.string_pk:
            return point_id
        try:
            return int(point_id)
        except ValueError:
            raise SmecError(
                f"id {point_id!r} cannot be a key of {self.collection!r}, whose key "
                f"{self.pk!r} is INT64; use the source's own ids"
            ) from None

    def ids(self, batch_size: int) -> Iterator[list[str]]:
        for rows in self.pages(self.collection, batch_size, "", [self.pk]):
            yield [str(r[self.pk]) for r in rows]

    def _next(self, iterator: Any, collection: str) -> list[dict[str, Any]]:
        from pymilvus import MilvusException

        from smec_index.connectors.milvus.client import one_line

        try:
            return iterator.next()
        except ValueError as exc:
            raise self._undecodable(exc) from None
        except MilvusException as exc:
            raise SmecError(
                f"reading {collection!r} from Milvus at {self.info.where} failed: {one_line(exc)}"
            ) from None

    def _undecodable(self, exc: ValueError) -> Exception:
        """A JSON cell pymilvus cannot decode (orjson's error) as one line; any other
        ValueError as it was."""
        if type(exc).__name__ != "JSONDecodeError":
            return exc
        return SmecError(
            f"{self.collection!r} at {self.info.where} holds a JSON cell that pymilvus cannot "
            f"decode ({exc}; a bare string written into a JSON field is stored so): your own "
            "client cannot read that point either; rewrite its JSON field as a JSON object, or "
            "delete the point"
        )

    def get(self, raw_ids: list[Any]) -> SourceBatch:
        return self.get_from(self.collection, raw_ids)

    def get_from(self, collection: str, raw_ids: list[Any], dim: int | None = None) -> SourceBatch:
        """Points of ``collection`` (this source, or a copy of ``dim``-d vectors) by key."""
        if not raw_ids:
            return self.batch([], None, dim)
        rows = self._client(collection).query(
            collection, filter=f"{self.pk} in [{', '.join(map(self._literal, raw_ids))}]",
            output_fields=["*"], consistency_level="Strong")  # fmt: skip
        order = {str(r[self.pk]): r for r in rows}
        return self.batch([order[str(i)] for i in raw_ids if str(i) in order], None, dim)

    def search(self, vectors: np.ndarray, k: int) -> list[list[str]]:
        vectors, k = search_queries(vectors, k, self.info.dim)
        if k > BIG_K:  # pymilvus allocates k results per query up front: not beyond the rows
            k = max(1, min(k, self.count()))
        return self.search_in(self.collection, vectors, k)

    def search_in(self, collection: str, vectors: np.ndarray, k: int) -> list[list[str]]:
        results = self._client(collection).search(
            collection, data=list(vectors), limit=k, anns_field=self.vector, output_fields=[]
        )
        # A hit holds the key under the key field's name (and output fields, a field named
        # "id" among them, beside it): never hit["id"] first.
        return [[str(hit[self.pk] if self.pk in hit else hit.get("id")) for hit in hits]
                for hits in results]  # fmt: skip

    def index_bytes(self) -> int | None:
        return self.index_bytes_of(self.collection)

    def index_bytes_of(self, collection: str) -> int | None:
        if self._lite_path is None:
            return None
        from smec_index.connectors.storage import disk_bytes

        loaded = self._copy / COPY_NAME if self._copy and collection == self.collection \
            else self._lite_path  # fmt: skip
        folder = loaded / "collections" / collection
        vector = self.vector

        def is_index(path: Path) -> bool:
            # partitions/<p>/indexes/<data>.<field>.<type>.idx: a FAISS index with the vectors
            return (
                path.parent.name == "indexes"
                and path.name.endswith(".idx")
                and (f".{vector}." in path.name)
            )

        found = disk_bytes(folder, keep=is_index) if folder.is_dir() else 0
        return found or None  # no index file (FLAT, or not written yet): unknown

    def index_bytes_unknown(self) -> str:
        if self._lite_path is not None:
            return "milvus-lite wrote no vector index file for it (FLAT, or not built yet)"
        return "a Milvus server's index files are on the server, reached only by its address"

    def mirror(self) -> Any:
        from smec_index.connectors.milvus.mirror import MilvusMirror

        return MilvusMirror(self)

    def close(self) -> None:
        from smec_index.connectors.milvus.client import close_lite

        if getattr(self, "_release", False):
            with contextlib.suppress(Exception):  # the server may be gone: nothing to release
                self.client.release_collection(self.collection)
        if self._lite_path is None:
            self._raw.close()
            return
        try:
            if self._writer_raw is not None:
                close_lite(self._lite_path, self._writer_raw)
                self._writer_raw = self._writer = None
        finally:
            if self._copy is not None:
                try:
                    close_lite(self._copy / COPY_NAME, self._raw)
                finally:
                    shutil.rmtree(self._copy, ignore_errors=True)
                    self._copy = None


READ_COPY = "smec-lite-read-"  # the prefix of a milvus-lite source's read copies
COPY_NAME = "source.db"  # pymilvus opens milvus-lite only at a path ending in .db
SEGMENT_FILES = (".parquet", ".idx")  # written once, never changed in place: linked


def read_copy(db: Path) -> Path:
    """A folder holding a copy of milvus-lite database ``db``, for reading (see
    :class:`MilvusSource`). Segment files are hard links where the disk allows (milvus-lite
    writes new ones, never into them), the rest copied. It is made while holding the
    database's own lock (the ``flock`` on ``LOCK`` that milvus-lite takes), so no writer
    changes it meanwhile; its name carries this process's id, so a killed reader's copy is
    removed by the next one (:func:`clean_read_copies`)."""
    import fcntl

    clean_read_copies()
    base = Path(tempfile.gettempdir()).resolve()
    if base == db or db in base.parents:
        raise SmecError(f"TMPDIR {base} is inside the source database {db}, where its read "
                        "copy cannot go; point TMPDIR elsewhere")  # fmt: skip
    lock = db / "LOCK"
    with contextlib.ExitStack() as held:
        # Open in this very process (an app calling the library): the lock is ours already.
        if lock.is_file() and not _open_here(db):
            handle = held.enter_context(open(lock, "rb"))
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise SmecError(
                    f"milvus-lite database {db} is open in another process (milvus-lite admits "
                    "one at a time); close that one, or wait for it, then run again"
                ) from None
        root = Path(tempfile.mkdtemp(prefix=f"{READ_COPY}{os.getpid()}-", dir=base))
        try:
            _copy_database(db, root / COPY_NAME)
        except BaseException as exc:
            shutil.rmtree(root, ignore_errors=True)
            from smec_index.connectors.storage import is_disk_full, no_space

            if is_disk_full(exc):  # the copy's disk, not the source's file the error names
                raise no_space(base, None, "point TMPDIR at a disk with room for a copy of "
                               "the source database") from None  # fmt: skip
            raise
    return root


def _open_here(db: Path) -> bool:
    """Whether milvus-lite serves ``db`` inside this process already."""
    from milvus_lite.server_manager import server_manager_instance

    return os.path.abspath(db) in getattr(server_manager_instance, "_servers", {})


def _copy_database(db: Path, copy: Path) -> None:
    from smec_index.connectors.storage import check_free_space, disk_bytes

    linked = True
    for folder, _, files in os.walk(db):
        into = copy / Path(folder).relative_to(db)
        into.mkdir(parents=True, exist_ok=True)
        for name in files:
            if folder == str(db) and name == "LOCK":
                continue  # milvus-lite makes its own in the copy
            if linked and name.endswith(SEGMENT_FILES):
                try:
                    os.link(Path(folder) / name, into / name)
                    continue
                except OSError:  # another disk (or no links there): copies instead
                    linked = False
                    check_free_space(copy, disk_bytes(db), "point TMPDIR at a disk with room "
                                     "for a copy of the source database")  # fmt: skip
            shutil.copy2(Path(folder) / name, into / name)


def clean_read_copies() -> None:
    """Remove read copies whose process is gone (a kill, or a Ctrl-C after which the
    engine still wrote into one): the process id is in each copy's name."""
    from smec_index.artifact import _alive

    for folder in Path(tempfile.gettempdir()).glob(f"{READ_COPY}*"):
        pid = folder.name[len(READ_COPY):].split("-", 1)[0]
        if folder.is_dir() and not folder.is_symlink() and pid.isdigit() and \
                int(pid) != os.getpid() and not _alive(int(pid)):  # fmt: skip
            shutil.rmtree(folder, ignore_errors=True)


def count(client: Any, collection: str) -> int:
    rows = client.query(
        collection, filter="", output_fields=["count(*)"], consistency_level="Strong"
    )
    return int(rows[0]["count(*)"])


def aliases(client: Any) -> dict[str, str]:
    """alias -> collection, over every collection (Milvus 2.3 lists aliases per collection)."""
    found = {}
    for name in client.list_collections():
        for alias in client.list_aliases(name).get("aliases", []):
            found[alias] = name
    return found
