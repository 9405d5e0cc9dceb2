"""Reading a Qdrant collection someone made: through qdrant-client (a server, or a local
storage folder of ``QdrantClient(path=...)``), or a qdrant-edge shard.

Nothing here writes to the source. Its copy with smaller vectors is
:class:`~smec_index.connectors.qdrant.mirror.QdrantMirror`, which shares the client: a
local folder admits one client at a time.
"""

from __future__ import annotations

import contextlib
import os
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from smec_index import safejson
from smec_index.connectors.base import positive_int
from smec_index.connectors.source import (
    BIG_K,
    Partition,
    SourceBatch,
    SourceInfo,
    check_not_alias,
    search_queries,
)
from smec_index.errors import SmecError
from smec_index.secrets import shown_url

METRICS = {"Cosine": "cosine", "Dot": "ip", "Euclid": "l2"}
EDGE_CONFIG = "edge_config.json"  # what qdrant-edge writes in every shard folder


def pick_vector(vectors: dict[str, Any], using: str | None, collection: str,
                sparse: Any = ()) -> str:  # fmt: skip
    """The vector to migrate: ``using``, else the unnamed one, else the only single dense
    vector there is (``sparse``: the collection's sparse vector names, which none of these
    can be; a multivector is never a choice: migrate compresses single vectors)."""
    single = [name for name in vectors if not _multivector(vectors[name])]
    have = ", ".join(repr(name) if name else "the unnamed vector" for name in single)
    if using is not None:
        if using not in vectors:
            kind = "a sparse vector of" if using in sparse else "no vector in"
            raise SmecError(
                f"--using {using}: {kind} collection {collection!r}; "
                + (f"pass one of its dense vectors: {have}" if single else
                   "it has no single dense vector, so migrate has nothing to compress")
            )  # fmt: skip
        return using
    if "" in single:  # the unnamed vector: the default one, beside any added named ones
        return ""
    if not single:
        what = "only multivectors" if vectors else "no dense vector (sparse vectors only?)"
        raise SmecError(
            f"Qdrant collection {collection!r} has {what}: migrate compresses a single dense "
            "vector; there is nothing to compress"
        )
    if len(single) != 1:
        raise SmecError(
            f"Qdrant collection {collection!r} has {len(single)} dense vectors ({have}); pick "
            "the one to compress with --using (--dry-run lists what the copy keeps of the "
            "others)"
        )
    return single[0]


def _multivector(config: Any) -> bool:
    """Whether a vector's config (qdrant-client's, or an edge shard's JSON) is a multivector."""
    found = config.get("multivector_config") if isinstance(config, dict) else getattr(
        config, "multivector_config", None)  # fmt: skip
    return found is not None


def call(doing: str, where: str, request: Any) -> Any:
    """``request()``, with any qdrant-client or qdrant-edge failure as one-line
    :class:`SmecError` (which the migration's retry loop takes)."""
    try:
        return request()
    except SmecError:
        raise
    except Exception as exc:  # qdrant-client raises many kinds: HTTP, gRPC, connection
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SmecError(f"{doing} {where} failed: {reason}") from None


def metric(distance: str, collection: str) -> str:
    """smec-index's name for a Qdrant distance; Manhattan has none (a projection's unit
    vectors rank alike by cosine, dot and Euclid, not by Manhattan)."""
    if distance not in METRICS:
        raise SmecError(
            f"collection {collection!r} uses distance {distance}; migrate keeps Cosine, Dot "
            "and Euclid collections"
        )
    return METRICS[distance]


def raw_id(point_id: str) -> int | str:
    """Qdrant's own id back from its string: an unsigned integer or a UUID."""
    return int(point_id) if point_id.isdigit() else point_id


class QdrantReader:
    """What a qdrant-client collection and a qdrant-edge shard share: records in, batches
    out. ``self.using`` is the migrated vector's name (``""``: the unnamed one)."""

    using: str
    info: SourceInfo

    def _split(self, record: Any) -> tuple[Any, dict[str, Any]]:
        """The migrated vector of a record, and its other vectors (carried unchanged)."""
        vector = record.vector
        if not isinstance(vector, dict):
            return vector, {}
        if self.using not in vector:  # Qdrant lets a point lack a named vector
            raise SmecError(
                f"point {record.id} of {self.info.collection!r} has no vector {self.using!r} "
                f"(it holds {', '.join(map(repr, vector)) or 'none'}); migrate copies every "
                "point with its migrated vector, so a collection where some points lack it "
                "cannot be migrated on that vector: pick another --using"
            )
        return vector[self.using], {k: v for k, v in vector.items() if k != self.using}

    def _batch(self, records: list[Any], cursor: Any = None) -> SourceBatch:
        split = [self._split(r) for r in records]
        return SourceBatch(
            [str(r.id) for r in records],
            [r.id for r in records],
            np.asarray([v for v, _ in split], dtype=np.float32).reshape(-1, self.info.dim),
            [dict(r.payload or {}) for r in records],
            cursor,
            [others for _, others in split],
        )

    def _scroll(self, offset: Any, limit: int, full: bool) -> tuple[list[Any], Any]:
        raise NotImplementedError

    def iterate(
        self, batch_size: int, cursor: Any, partition: Partition | None = None
    ) -> Iterator[SourceBatch]:
        batch_size = positive_int(batch_size, "batch_size")  # 0: empty pages, forever
        offset = cursor
        while True:
            records, offset = self._scroll(offset, batch_size, True)
            if records:
                batch = self._batch(records, offset)
                yield batch if partition is None else partition.select(batch)
            if offset is None:
                return

    def raw_id(self, point_id: str) -> Any:
        return raw_id(point_id)

    @staticmethod
    def canonical_id(point_id: str) -> str:
        """An id as this source writes it: Qdrant reads ``007`` as point 7 and a UUID in
        capitals, braces or without hyphens as the same point."""
        if point_id.isascii() and point_id.isdigit():
            return str(int(point_id))
        try:
            return str(uuid.UUID(point_id))
        except ValueError:
            return point_id

    def ids(self, batch_size: int) -> Iterator[list[str]]:
        batch_size = positive_int(batch_size, "batch_size")
        offset = None
        while True:
            records, offset = self._scroll(offset, batch_size, False)
            yield [str(r.id) for r in records]
            if offset is None:
                return


def collection_schema(client: Any, collection: str) -> dict[str, Any]:
    """What a Qdrant collection is, as plain JSON: its parameters (vectors with their
    sizes and distances, sparse vectors, shards, payload storage), HNSW, optimizer, WAL and
    quantization settings, metadata, and payload indexes with their types."""
    info = client.get_collection(collection)
    config = info.config
    dump = lambda model: None if model is None else model.model_dump(mode="json")  # noqa: E731
    params = dump(config.params)
    for noise in ("read_fan_out_factor", "read_fan_out_delay_ms"):  # read-time settings
        params.pop(noise, None)
    return {
        "params": params,
        "hnsw_config": dump(config.hnsw_config),
        "optimizer_config": dump(config.optimizer_config),
        "wal_config": dump(config.wal_config),
        "quantization_config": dump(config.quantization_config),
        "strict_mode_config": dump(config.strict_mode_config),
        "metadata": config.metadata,
        "payload_indexes": {
            name: {"data_type": dump(index).get("data_type"), "params": dump(index).get("params")}
            for name, index in (info.payload_schema or {}).items()
        },
    }


def check_local_folder(folder: Path, flag: str) -> None:
    """qdrant-client's local storage as its ``meta.json`` lists it: a collection listed there
    whose ``collection/NAME`` folder is gone would be made anew, empty, by opening the
    folder; refused instead, before anything is opened."""
    from smec_index import safejson

    if folder.exists() and not folder.is_dir():
        raise SmecError(f"{flag} {folder} is a file, not a folder of qdrant-client's local "
                        "storage; move it away or pass another "
                        f"{flag if flag.startswith('--') else '--data-dir'}")  # fmt: skip
    meta = folder / "meta.json"
    if not meta.is_file():
        return  # a new folder, or qdrant-client's own error names what is wrong
    try:
        listed = safejson.loads(meta.read_text(encoding="utf-8")).get("collections") or {}
        if not isinstance(listed, dict):
            raise ValueError("collections is no mapping")
    except (OSError, ValueError, AttributeError):
        raise SmecError(f"{flag} {folder}: its meta.json is damaged; restore the folder from a "
                        "backup or pass another path") from None  # fmt: skip
    missing = sorted(str(n) for n in listed if not (folder / "collection" / str(n)).is_dir())
    if missing:
        raise SmecError(
            f"{flag} {folder}: meta.json lists collection {missing[0]!r} but its folder "
            f"collection/{missing[0]} is gone; restore the folder from a backup (opening it "
            "would make that collection anew, empty)"
        )


class QdrantSource(QdrantReader):
    """A Qdrant collection through qdrant-client: a server, or a local storage folder."""

    def __init__(
        self,
        collection: str,
        url: str | None,
        api_key: str | None,
        path: str | None,
        using: str | None = None,
    ):

        if path is not None:
            folder = Path(path)
            if not (folder / "collection").is_dir():
                raise SmecError(
                    f"--path {folder}: no Qdrant local storage and no qdrant-edge shard "
                    f"{collection!r} there; pass the folder given to QdrantClient(path=...), or "
                    "the folder holding the shard"
                )
            check_local_folder(folder, "--path")
            with warnings.catch_warnings():  # "local mode is not recommended above 20k"
                warnings.simplefilter("ignore", UserWarning)
                try:
                    from smec_index.connectors.qdrant.client_store import local_client

                    self.client = local_client(folder)
                except Exception as exc:  # noqa: BLE001 - a damaged meta.json or database
                    from smec_index.connectors.storage import TOO_MANY_FILES, too_many_files

                    if isinstance(exc, RuntimeError) and "already accessed" in str(exc):
                        raise SmecError(  # in our words: "use Qdrant server instead" was not
                            f"--path {folder}: another QdrantClient (an app, or another "
                            "smec-index run) has this folder open, and a local folder admits "
                            "one client; close it, then run again"
                        ) from None

                    if too_many_files(exc):
                        raise SmecError(TOO_MANY_FILES) from None
                    reason = str(exc).splitlines()[0][:120] if str(exc) else ""
                    raise SmecError(
                        f"--path {folder}: qdrant-client cannot read this folder "
                        f"({type(exc).__name__}: {reason}); restore it or pass another --path"
                    ) from None
            where, location = str(folder), f"path:{folder.resolve()}"
        else:
            from smec_index.connectors.qdrant.server import check_server_url, connect_server

            check_server_url(url, "--url")
            self.client = connect_server(url, api_key or os.environ.get("QDRANT_API_KEY"), 10,
                                         "--url")  # fmt: skip
            where = location = shown_url(url)
        self.collection = collection
        self.local = path is not None
        try:  # a refusal below must not keep the local folder's lock
            client = self.client
            aliases = call("reading the aliases of", where, lambda: {
                a.alias_name: a.collection_name for a in client.get_aliases().aliases})  # fmt: skip
            check_not_alias(collection, aliases, where)
            if not call("reading", where, lambda: self.client.collection_exists(collection)):
                raise SmecError(f"no Qdrant collection {collection!r} at {where}; check "
                                "--collection")
            params = call(f"reading collection {collection!r} at", where, lambda: client
                          .get_collection(collection).config.params)  # fmt: skip
            config = params.vectors
            vectors = config if isinstance(config, dict) else {"": config}
            self.using = pick_vector(vectors, using, collection, params.sparse_vectors or {})
            config = vectors[self.using]
            if getattr(config, "multivector_config", None) is not None:
                raise SmecError(
                    f"vector {self.using or '(unnamed)'!r} of {collection!r} is a multivector; "
                    "migrate compresses single dense vectors"
                )
            distance = str(getattr(config.distance, "value", config.distance))
            self.datatype = str(getattr(config.datatype, "value", config.datatype) or "float32")
            self.info = SourceInfo(where, collection, int(config.size),
                                   metric(distance, collection), location, self.using,
                                   {"mode": "client"})  # fmt: skip
            self.shown = f"Qdrant collection {collection!r} at {where}"
        except BaseException:
            with contextlib.suppress(Exception):
                self.client.close()
            raise

    def count(self) -> int:
        return call("counting", self.shown,
                    lambda: self.client.count(self.collection, exact=True).count)  # fmt: skip

    def schema(self) -> dict[str, Any]:
        return call("describing", self.shown,
                    lambda: collection_schema(self.client, self.collection))  # fmt: skip

    def _scroll(self, offset: Any, limit: int, full: bool) -> tuple[list[Any], Any]:
        page = lambda: self.client.scroll(  # noqa: E731
            self.collection, limit=limit, offset=offset, with_payload=full, with_vectors=full
        )
        return call("reading", self.shown, page)

    def get(self, raw_ids: list[Any]) -> SourceBatch:
        records = call("reading", self.shown, lambda: self.client.retrieve(
            self.collection, raw_ids, with_payload=True, with_vectors=True))  # fmt: skip
        order = {str(r.id): r for r in records}
        return self._batch([order[str(i)] for i in raw_ids if str(i) in order])

    def search(self, vectors: np.ndarray, k: int) -> list[list[str]]:
        from smec_index.connectors.qdrant.mirror import search_batch

        vectors, k = search_queries(vectors, k, self.info.dim)
        found = lambda: search_batch(self.client, self.collection, self.using, vectors, k)  # noqa: E731
        return call("searching", self.shown, found)

    def index_bytes(self) -> int | None:
        return None

    def index_bytes_unknown(self) -> str:
        if self.local:
            return "qdrant-client's local mode keeps no index (it searches by brute force)"
        return "a Qdrant server's files are its own; its telemetry is not read for a source"

    def mirror(self) -> Any:
        from smec_index.connectors.qdrant.mirror import QdrantMirror

        if self.datatype.lower() == "uint8":  # a copy in the same schema would claim bytes
            raise SmecError(
                f"vector {self.using or '(unnamed)'!r} of {self.collection!r} stores uint8 "
                "values, and a projection's are floats that no uint8 vector keeps: migrate "
                "with --to-backend (float32 vectors, --allow-schema-change)"
            )
        return QdrantMirror(self)

    def close(self) -> None:
        self.client.close()


def lock_shard(shard_dir: Path) -> int:
    """The shard's own lock (qdrant-edge flocks its ``wal`` folder), taken without writing
    anything there: no process can open the shard for writing while it is held, and one
    that has it open already is named. Returns the descriptor that holds it."""
    import fcntl

    try:
        handle = os.open(shard_dir / "wal", os.O_RDONLY)
    except OSError as exc:
        raise SmecError(f"cannot open qdrant-edge shard {shard_dir} ({exc.strerror}: its "
                        "wal folder); pass a qdrant-edge shard folder") from None  # fmt: skip
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(handle)
        holder = ("an earlier open_source handle of this process has it open: close that "
                  "one first" if _held(shard_dir) else "another process, or a qdrant-edge "
                  "shard this process opened, has it open: close it first")  # fmt: skip
        raise SmecError(f"cannot open qdrant-edge shard {shard_dir} ({holder})") from None
    _HELD[handle] = str(Path(shard_dir).resolve())
    return handle


# The shards this process holds the lock of (descriptor -> folder): a second handle on one
# is refused by the lock as if another process had it; the message says which it is.
_HELD: dict[int, str] = {}


def _held(shard_dir: Path) -> bool:
    return str(Path(shard_dir).resolve()) in _HELD.values()


def unlock_shard(handle: int) -> None:
    """Release :func:`lock_shard`'s lock."""
    _HELD.pop(handle, None)
    os.close(handle)  # the flock goes with it


def private_copy(shard_dir: Path) -> Path:
    """A copy of the shard in the temp folder, for qdrant-edge to open: opening a shard
    writes into it (its config, its payload journal), and a migration's source is never
    changed. Copies of runs that were killed are removed first."""
    import shutil
    import tempfile

    from smec_index.artifact import orphaned, owned_tempdir

    parent = Path(tempfile.gettempdir())
    for left in parent.glob("smec-shard-*"):
        if left.is_dir() and not left.is_symlink() and orphaned(left):
            shutil.rmtree(left, ignore_errors=True)
    need = sum(f.stat().st_size for f in shard_dir.rglob("*") if f.is_file())
    free = shutil.disk_usage(parent).free
    if need > 0.9 * free:
        raise SmecError(f"reading qdrant-edge shard {shard_dir} without changing it takes a "
                        f"copy of {need / 2**20:.0f} MiB, and {parent} has {free / 2**20:.0f} "
                        "MiB free; set TMPDIR to a folder with room")  # fmt: skip
    copy = owned_tempdir("smec-shard-", parent)
    try:
        shutil.copytree(shard_dir, copy / "shard", symlinks=True)
    except (OSError, shutil.Error) as exc:
        shutil.rmtree(copy, ignore_errors=True)
        raise SmecError(f"copying qdrant-edge shard {shard_dir} to {copy} to read it failed "
                        f"({str(exc)[:120]}); set TMPDIR to a folder with room") from None
    return copy


class EdgeSource(QdrantReader):
    """A qdrant-edge shard someone made with qdrant-edge's own API: ``<path>/<collection>``
    holds its ``edge_config.json``, segments and write-ahead log. Opening it takes the
    shard's lock (a process that has it open must close it first) and reads a private copy
    (:func:`private_copy`): the shard itself is never written."""

    def __init__(self, shard_dir: Path, collection: str, using: str | None = None):
        import qdrant_edge as edge

        try:
            self._config = safejson.loads((shard_dir / EDGE_CONFIG).read_text())
            vectors = self._config.get("vectors") or {}
        except (OSError, ValueError, AttributeError) as exc:
            raise SmecError(
                f"{shard_dir / EDGE_CONFIG}: not a readable Qdrant shard config "
                f"({type(exc).__name__}); pass a qdrant-edge shard or a qdrant-client folder"
            ) from None
        self.using = pick_vector(vectors, using, collection,
                                 self._config.get("sparse_vectors") or {})  # fmt: skip
        self._lock = lock_shard(shard_dir)
        self._copy: Path | None = None
        try:
            self._copy = private_copy(shard_dir)
            self.shard = edge.EdgeShard.load(str(self._copy / "shard"))
        except BaseException as exc:
            self._release()
            if isinstance(exc, SmecError) or not isinstance(exc, Exception):
                raise
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise SmecError(f"cannot open qdrant-edge shard {shard_dir} ({reason})") from None
        self.shard_dir, self.collection = shard_dir, collection
        params = vectors[self.using]
        self.info = SourceInfo(
            str(shard_dir.parent), collection, int(params["size"]),
            metric(params["distance"], collection),
            f"edge:{shard_dir.resolve()}", self.using, {"mode": "edge"},
        )  # fmt: skip

    def count(self) -> int:
        import qdrant_edge as edge

        return self.shard.count(edge.CountRequest(exact=True))

    def schema(self) -> dict[str, Any]:
        return self._config

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

        vectors, k = search_queries(vectors, k, self.info.dim)
        if k > BIG_K:  # an engine may size its result buffers by k: not beyond the points
            k = max(1, min(k, self.count()))
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

    def mirror(self) -> Any:
        raise SmecError(
            "a qdrant-edge shard is copied into smec-index's own store: pass --to-backend "
            "qdrant (and --allow-schema-change after reading --dry-run's schema_diff)"
        )

    def close(self) -> None:
        try:
            self.shard.close()
        finally:
            self._release()

    def _release(self) -> None:
        import shutil

        if self._copy is not None:
            shutil.rmtree(self._copy, ignore_errors=True)
            self._copy = None
        if self._lock is not None:
            unlock_shard(self._lock)
            self._lock = None
