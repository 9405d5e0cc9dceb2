"""Talking to a Milvus server: connecting with backoff, index waits, size figures, errors."""

from __future__ import annotations

import functools
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from pymilvus import MilvusClient, MilvusException
from pymilvus.exceptions import (
    ConnectError,
    DataNotMatchException,
    DataTypeNotMatchException,
    FieldTypeException,
    MilvusUnavailableException,
    ParamError,
    PrimaryKeyException,
)

from smec_index.connectors.base import Sizes, is_milvus_server
from smec_index.connectors.storage import DISK_METHOD, disk_bytes
from smec_index.errors import SmecError
from smec_index.secrets import check_credential, redact, shown_url


def connect(uri: str, token: str, timeout: float) -> MilvusClient:
    """Connect with a few retries and doubling waits, within ``timeout`` seconds in all."""
    if token:
        check_credential(token, "--token")
    deadline, wait, tries, reason = time.monotonic() + timeout, 0.5, 0, "no answer"
    while True:
        tries += 1
        left = deadline - time.monotonic()
        try:
            return MilvusClient(uri=uri, token=token, timeout=max(0.5, min(left, 3.0)))
        except MilvusException as exc:
            reason = redact(one_line(exc), [token], [uri])
        if tries >= 4 or deadline - time.monotonic() < wait + 0.5:
            break
        time.sleep(wait)
        wait *= 2
    shown = shown_url(uri)
    raise SmecError(
        f"cannot reach Milvus at {shown} after {tries} tries ({reason}); "
        "check --uri and that the server is running"
    )


def wait_for_index(client: MilvusClient, collection: str, timeout: float = 3600.0) -> None:
    """Poll until the server says the index covers every flushed segment."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = client.describe_index(collection, "vector")
        state = str(info.get("state", "Finished"))
        if state == "Failed":
            raise SmecError(
                f"Milvus failed to build the index of {collection!r}: "
                f"{info.get('index_state_fail_reason', 'no reason given')}; change its params"
            )
        if state == "Finished" and int(info.get("pending_index_rows", 0)) == 0:
            return
        time.sleep(0.2)
    raise SmecError(f"the index of {collection!r} was not built in {timeout:.0f} s")


class _Unimplemented(logging.Filter):
    """Drop two known-harmless reports: milvus-lite's in-process gRPC server logs a
    traceback for ``AllocTimestamp`` (not implemented there) whenever pymilvus' query
    iterator asks for it, and pymilvus then warns that it uses a client-side timestamp."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return "Method not implemented" not in message and "mvccTs" not in message


# pymilvus (configured at its import, above) logs every failed RPC with a traceback through
# its own handler; the same failure reaches the user as one `error:` line, so pymilvus' log
# shows only when smec-index runs verbose (-v: the root logger at INFO).
if logging.getLogger().getEffectiveLevel() > logging.INFO:
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
for _logger in ("grpc._server", "pymilvus.client.iterator.query_iterator"):
    logging.getLogger(_logger).addFilter(_Unimplemented())
# milvus-lite logs a traceback when it cannot start (a file another process holds); the
# same failure reaches the user as one `error:` line (open_lite).
if logging.getLogger().getEffectiveLevel() > logging.INFO:
    logging.getLogger("milvus_lite").setLevel(logging.CRITICAL)


BINLOG_KINDS = ("insert_log", "stats_log", "delta_log")


def binlog_bytes(client: MilvusClient, collection_id: str) -> int | None:
    """The data coordinator's stored binlog size of one collection (Milvus 2.3 ``GetMetrics``;
    pymilvus has no wrapper for it, so this uses the gRPC stub)."""
    from pymilvus.grpc_gen import milvus_pb2

    request = milvus_pb2.GetMetricsRequest(request=json.dumps({"metric_type": "system_info"}))
    try:
        response = client._get_connection()._stub.GetMetrics(request, timeout=10)
        nodes = json.loads(response.response).get("nodes_info", [])
    except (grpc.RpcError, ValueError, AttributeError):
        return None
    for node in nodes:
        sizes = (node.get("infos", {}).get("quota_metrics") or {}).get("CollectionBinlogSize")
        if sizes and collection_id in sizes:
            return int(sizes[collection_id])
    return None


def server_sizes(
    client: MilvusClient, collection: str, collection_id: str, storage: Path | None
) -> Sizes:
    """A server collection's :class:`Sizes`.

    With ``storage`` (the server's ``localStorage.path``, readable here) the files are
    counted: ``index_bytes`` = the vector index files of the collection's segments (an HNSW
    or FLAT index file holds the vectors too, an IVF_PQ file the codes search reads),
    ``total_bytes`` = those plus every insert, stats and delta binlog of the collection.
    The message queue and etcd are shared by all collections and counted in neither.
    Otherwise only the stored binlog bytes Milvus reports (``total_bytes``; Milvus 2.3
    reports no index or memory size).
    """
    if storage is not None:
        segments = {str(s.segment_id) for s in client.list_persistent_segments(collection)}
        index_files = [
            path for path in (storage / "index_files").glob("*/*/*/*") if path.name in segments
        ]
        # A sealed segment Milvus built no index for (too small) is searched by scanning its
        # raw vectors: those are what search needs there.
        fields = client.describe_collection(collection)["fields"]
        vector_field = next(str(f["field_id"]) for f in fields if f["name"] == "vector")
        scanned = [
            path
            for segment in segments - {p.name for p in index_files}
            for path in (storage / "insert_log" / collection_id).glob(f"*/{segment}/{vector_field}")
        ]
        binlogs = [storage / kind / collection_id for kind in BINLOG_KINDS]
        index_bytes = disk_bytes(index_files) + disk_bytes(scanned)
        return Sizes(
            index_bytes=index_bytes,
            total_bytes=disk_bytes(index_files) + disk_bytes([p for p in binlogs if p.exists()]),
            method=f"{DISK_METHOD} under the server's local storage; index: the vector index "
            "files of the collection's segments (the raw vector binlogs of a segment without "
            "an index); total: the index files plus its insert, stats and delta binlogs",
        )
    return Sizes(
        index_bytes=None,
        total_bytes=binlog_bytes(client, collection_id),
        method="Milvus GetMetrics CollectionBinlogSize (stored binlogs; Milvus 2.3 reports no "
        "index size)",
    )


def one_line(exc: MilvusException) -> str:
    message = getattr(exc, "message", "") or str(exc)
    return " ".join(str(message).split())[:300]


def literal(key: Any) -> str:
    """``key`` as a Milvus expression literal: an integer as it is, text double-quoted with
    ``\\``, ``"`` and line breaks escaped (pymilvus quotes keys as they are, so ``a'b``
    broke ``get`` and ``x\\'y`` made its query iterator page the same rows for ever)."""
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        return str(int(key))
    text = str(key).replace("\\", "\\\\").replace('"', '\\"')
    # A raw line break ends Milvus's string literal ("unterminated string literal"); its
    # parser knows \n and \r (other control characters pass as they are).
    return '"' + text.replace("\n", "\\n").replace("\r", "\\r") + '"'


def keys_filter(field: str, keys: list[Any]) -> str:
    """The filter that selects ``keys`` of primary key ``field``."""
    return f"{field} in [{', '.join(literal(k) for k in keys)}]"


def escaped_pages(iterator: Any) -> Any:
    """pymilvus' query ``iterator`` with each page's ``pk > last`` cursor quoted by
    :func:`literal` (pymilvus puts the last key between double quotes as it is)."""
    setup = "_QueryIterator__setup_next_expr"
    if not hasattr(iterator, setup) or not hasattr(iterator, "_pk_str"):
        return iterator  # another pymilvus: its own paging, checked by repeated_page()

    def next_expr() -> str:
        last, expr = iterator._next_id, iterator._expr
        if last is None:
            return expr
        element = getattr(iterator, "_has_element_cursor", lambda: False)()
        key = literal(str(last)) if iterator._pk_str else str(int(last))
        cursor = f"{iterator._pk_field_name} {'>=' if element else '>'} {key}"
        return f"{cursor} and ({expr})" if expr else cursor

    setattr(iterator, setup, next_expr)
    return iterator


_REFUSED_DATA = (ParamError, DataNotMatchException, DataTypeNotMatchException,
                 PrimaryKeyException, FieldTypeException)


def advice(exc: MilvusException, lite: bool = False) -> str:
    """What to do about a failed call: fix what was sent when pymilvus or Milvus refused
    the data itself, free space when a write hit the disk's or the process's limit, look
    at the server (or, for milvus-lite, the database folder) otherwise."""
    from smec_index.connectors.storage import is_disk_full, is_file_too_large, too_many_files

    if isinstance(exc, _REFUSED_DATA):
        return "fix what was sent (ids, field types, value ranges)"
    if "Expected bytes, got a" in str(exc):  # pyarrow, under milvus-lite's JSON fields
        return ("a JSON field holds a bare number or true/false, which pymilvus writes into "
                "no JSON field (it writes objects, arrays and strings): make those values "
                "JSON objects, or migrate with --to-backend, whose payload keeps them")
    if is_disk_full(exc):
        return "the disk is full: free some space, then run again"
    if too_many_files(exc):
        return "this process may open no more files (ulimit -n is reached): raise the limit"
    if is_file_too_large(exc):
        return "a write went past this process's file size limit (ulimit -f): raise it"
    if lite:
        return "check that the collection exists and the database folder is writable"
    if isinstance(exc, (MilvusUnavailableException, ConnectError)):
        return "check that the server is up and reachable"
    return "check that the server is up and the collection exists"


class GuardedClient:
    """A ``MilvusClient`` whose public calls raise one-line :class:`SmecError` on failure.

    A server lost mid-build, or a request Milvus refuses, then reaches the CLI as one line
    naming the call and where, instead of a gRPC traceback.
    """

    def __init__(self, client: MilvusClient, where: str) -> None:
        self._client = client
        self._where = where

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if name.startswith("_") or not callable(attribute):
            return attribute

        @functools.wraps(attribute)
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return attribute(*args, **kwargs)
            except MilvusException as exc:
                lite = not is_milvus_server(self._where)
                raise SmecError(
                    f"Milvus {name} failed at {self._where}: {one_line(exc)}; "
                    f"{advice(exc, lite)}"
                ) from None

        return call


_lite_users: dict[Path, int] = {}  # open clients per milvus-lite folder, in this process
_lite_opened: set[Path] = set()  # every database this process opened
_lite_theirs: set[Path] = set()  # started by the app's own MilvusClient: left running


LITE_MARKERS = ("LOCK", "collections", "databases")  # what milvus-lite 3 makes in a new one


def check_lite_database(path: Path, flag: str | None = "--uri", exists: bool = False) -> None:
    """``path`` is a milvus-lite database (a folder milvus-lite made) or, unless ``exists``,
    a free path or an empty folder for a new one. Anything else is one line saying so,
    before milvus-lite takes a text file or someone's folder (where it would write its own
    files) for a database, or a read-only command makes a new empty one. ``flag`` None: the
    path is the data dir's own (no --uri was given)."""
    what = flag or "the data dir's milvus-lite path"
    if path.is_file():
        raise SmecError(f"{what} {path} is a file, not a milvus-lite database (milvus-lite 3 "
                        "keeps a database in a folder, such as milvus.db; a file from an older "
                        "milvus-lite must be exported with it); " + (
                            "give that folder" if flag else
                            "move the file away or pass another --data-dir"))  # fmt: skip
    held = sorted(p.name for p in path.iterdir()) if path.is_dir() else []
    # LOCK first, then the rest: a first write cut short leaves LOCK and collections only
    if held and not ("LOCK" in held and any(m in held for m in LITE_MARKERS[1:])):
        raise SmecError(f"{what} {path} is a folder that holds no milvus-lite database (no "
                        f"{'/'.join(LITE_MARKERS)}); " + (
                            "give the database's folder, or a new path for a new one" if flag
                            else "move it away or pass another --data-dir"))  # fmt: skip
    if exists and not held:
        raise SmecError(f"no milvus-lite database at {path}: build a collection there first "
                        f"(or check {flag + ' / ' if flag else ''}--data-dir)")  # fmt: skip


def check_lite_suffix(path: Path, flag: str = "--uri", elsewhere: str = "") -> None:
    """pymilvus opens milvus-lite only at a path ending in ``.db`` (anything else is taken
    for a server address). ``elsewhere``: another way out, for a folder."""
    if str(path).endswith(".db"):
        return
    if path.is_dir():
        raise SmecError(
            f"{flag} {path}: pymilvus opens milvus-lite only at a path ending in .db; rename "
            f"the folder (NAME.db){elsewhere or ', or pass a path ending in .db'}"
        )
    raise SmecError(f"{flag} {path}: a milvus-lite database is a path ending in .db "
                    "(pymilvus takes anything else for a server address); pass one, e.g. "
                    "copy.db")  # fmt: skip


def open_lite(path: Path) -> Any:
    """A client of milvus-lite at ``path``. milvus-lite serves a folder from inside this
    process and holds its lock until released: :func:`close_lite` releases it when the last
    client of this process closes, so another process can open it."""
    check_lite_suffix(path, "milvus-lite database", " or write the copy into another database "
                      "(--to-backend milvus --to-uri NEW.db)")  # fmt: skip
    from milvus_lite.server_manager import server_manager_instance

    if not _lite_users.get(path):  # this process's first: is the server another client's?
        running = getattr(server_manager_instance, "_servers", {})  # (private: best effort)
        if os.path.abspath(str(path)) in running:
            _lite_theirs.add(path)  # the app's own MilvusClient started it: never stopped here
        else:
            _lite_theirs.discard(path)
    try:
        client = MilvusClient(str(path))
    except MilvusException:
        if path.is_dir() and not os.access(path, os.W_OK):
            raise SmecError(
                f"milvus-lite database {path} is read-only here, and milvus-lite opens a "
                "database only to write it; copy the database elsewhere, or write the copy "
                "into another one (--to-backend milvus --to-uri NEW.db)"
            ) from None
        raise SmecError(
            f"milvus-lite could not open {path}: another process may have it open (milvus-lite "
            "admits one process at a time); close that one, or wait for it, then run again"
        ) from None
    _lite_users[path] = _lite_users.get(path, 0) + 1
    _lite_opened.add(Path(path).resolve())
    return client


def opened_here(path: Path) -> bool:
    """Whether this process has opened the milvus-lite database at ``path`` (so what is
    there is its own doing, not another process's that holds it)."""
    return Path(path).resolve() in _lite_opened


def close_lite(path: Path, client: Any) -> None:
    client.close()
    _lite_users[path] -= 1
    if not _lite_users[path]:
        del _lite_users[path]
        if path in _lite_theirs:  # stopping it cut the app's own client off ("server
            return  # unavailable"); milvus-lite stops it at exit
        from milvus_lite.server_manager import server_manager_instance

        server_manager_instance.release_server(str(path))
