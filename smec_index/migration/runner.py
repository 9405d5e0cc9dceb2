"""The migration itself: plan, stream with checkpoints, verify, switch.

By default the target is a copy of the source beside it, in the user's own schema (a
:class:`~smec_index.connectors.source.Mirror`: same ids, fields, types, indexes and vector
name; only the vector's dim differs), so that switching an alias is the only change an app
sees. ``--to-backend`` writes smec-index's own schema into any backend instead; what that
changes is listed (``schema_diff``) and needs ``--allow-schema-change``.

The source is never written, and neither is any collection this migration did not create:
a target that is the source, an alias, or someone else's collection is refused before
anything is written, ``--overwrite`` included. Progress is keyed by the source's identity
(:mod:`smec_index.migration.state`). Verification and the gate are in
:mod:`smec_index.migration.verify`, the stream in :mod:`smec_index.migration.stream`.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from numbers import Real
from pathlib import Path
from typing import Any

from smec_index.connectors import check_backend, open_connector
from smec_index.connectors.base import (
    _PHYSICAL,
    check_fields,
    check_new_name,
    check_switches,
    derived_name,
    is_milvus_server,
    positive_int,
    typed_options,
)
from smec_index.connectors.source import (
    Partition,
    check_source_name,
    fingerprint,
    open_source,
    source_options,
)
from smec_index.connectors.storage import check_free_space, estimated_bytes, file_lock
from smec_index.data import check_path_name
from smec_index.errors import SmecError, brief, check_say
from smec_index.migration import DEFAULT_MIN_RECALL, verify
from smec_index.migration.fitting import fit_projection, given_artifact
from smec_index.migration.state import Progress, check_schema
from smec_index.migration.stream import Job, SourceDataError, holds_sample, stream
from smec_index.migration.targets import ConnectorTarget, mirror_changes

IN_MEMORY_WRITES = ("faiss", "hnswlib")  # their writes are durable only once flushed


FIT_ROWS = 20_000  # source points a projection is fitted on, unless --fit-rows says
_NOT_OURS = (
    "target {name!r} at {where} is not the copy this migration made (the first points an "
    "earlier run wrote are not in it as written: dropped and made again, or written into "
    "since by an app through its alias?); migrate never drops or writes into what it did "
    "not create: drop it yourself, or pick another --to"
)


@dataclass
class MigrateRequest:
    backend: str
    collection: str
    dim: int
    data_dir: Path
    source: dict[str, Any] = field(default_factory=dict)  # url/api_key/path/using or uri/token
    to: str | None = None
    to_backend: str | None = None  # None: beside the source, in its own schema
    to_options: dict[str, Any] = field(default_factory=dict)
    alias: str | None = None
    artifact: Path | None = None
    min_recall: float = DEFAULT_MIN_RECALL
    dry_run: bool = False
    restart: bool = False
    rollback: bool = False
    batch_size: int = 1000
    checkpoint_rows: int = 20_000
    fit_rows: int | None = None  # None: FIT_ROWS (only where a projection is fitted)
    index_params: dict[str, Any] = field(default_factory=dict)
    progress: bool = True
    overwrite: bool = False
    allow_schema_change: bool = False
    partition: str | None = None  # "K/N": one slice of the source's ids
    writers: int | None = None  # concurrent writes; None: 4 into a server, else 1
    in_place: bool = False  # Qdrant: a new named vector in the source collection
    queries: Path | None = None  # query vectors (.npy with query_ids, or .parquet)
    query_ids: Path | None = None
    qrels: Path | None = None  # with queries: SMEC trained supervised, an nDCG@10 gate


def _is_server(backend: str, options: dict[str, Any]) -> bool:

    uri = str(options.get("uri") or "")
    return bool(options.get("url")) or (backend == "milvus" and is_milvus_server(uri))


def _target_dir(request: MigrateRequest) -> Path:
    """The directory an embedded target's files go under: beside the source (its Qdrant
    folder, its milvus-lite file's folder) or, with --to-backend, the data dir or --to-uri's
    milvus-lite file's folder."""
    options = request.source if request.to_backend is None else request.to_options
    uri = options.get("uri")
    if uri:
        return Path(uri).parent
    if request.to_backend is None and options.get("path"):
        return Path(options["path"])
    return Path(request.data_dir)


def _in_place_using(request: MigrateRequest) -> str | None:
    """The vector an unfinished in-place migration of this collection compresses, as its
    progress record names it (``None``: no such record, or several that disagree)."""
    import json

    if not request.in_place or request.source.get("using"):
        return None
    found = set()
    for path in Path(request.data_dir).glob("migrations/*/qdrant-vector-*.json"):
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        target = str(state.get("target", ""))
        if target.rsplit(":", 1)[0] == request.collection and "in_place_using" in state:
            found.add(state["in_place_using"])
    return found.pop() if len(found) == 1 else None


def one_place(recorded: Any, place: str) -> bool:
    """Whether a record's ``target_place`` is ``place``: the same text, or the same
    milvus-lite file named two ways (a copy beside a source there records ``lite:FILE``, a
    ``--to-backend milvus --to-uri FILE`` target ``milvus in DATA_DIR (FILE)``; the second
    read a first's copy as made by no migration in --data-dir)."""
    if recorded == place:
        return True
    files = [_lite_file(p) for p in (recorded, place)]
    return files[0] is not None and files[0] == files[1]


def _lite_file(place: Any) -> str | None:
    if not isinstance(place, str):
        return None
    if place.startswith("lite:"):
        return place[len("lite:"):]
    found = re.fullmatch(r"milvus in .* \((/.+)\)", place)
    return found.group(1) if found else None


def _alias_times(state: dict[str, Any]) -> dict[str, float]:
    """alias -> when this copy was switched to it (records of an earlier version: a list)."""
    aliases = state.get("aliases") or {}
    return {a: 0.0 for a in aliases} if isinstance(aliases, list) else dict(aliases)


def default_target(collection: str, dim: int) -> str:
    """``<collection>_<dim>``, with what a target name cannot hold (a Qdrant source's ``-``
    or ``.``, say) written as ``_``."""
    return derived_name(collection, str(dim))


# What a --to-backend target is addressed by (open_connector); a source's: source_options.
TARGET_OPTIONS = ("url", "api_key", "uri", "token", "mode")


def _check_places(what: str, options: Any, known: tuple[str, ...]) -> None:
    """A typo in a source or target option (``pth=``) is an error, never ignored."""
    if not isinstance(options, dict):
        raise SmecError(f"{what} must be a dict of {', '.join(known)}, got "
                        f"{type(options).__name__}")  # fmt: skip
    unknown = sorted(str(k) for k in options if k not in known)
    if unknown:
        from smec_index.connectors.source import SOURCE_OPTIONS

        kind = ("another backend's option" if what == "source" and unknown[0] in SOURCE_OPTIONS
                else "unknown option")  # fmt: skip
        raise SmecError(f"{what}: {kind} {brief(unknown[0], 40)}; use {', '.join(known)}")
    empty = sorted(str(k) for k, v in options.items() if v == "")
    if empty:  # a script's unset variable: never taken as "not given" (or an embedded place)
        raise SmecError(f"{what}: {empty[0]} is empty; give its value or leave it out")
    typed_options({k: v for k, v in options.items() if k != "path"})
    if options.get("path") is not None:
        check_path_name(options["path"], "path")


def _check_fields(request: MigrateRequest) -> None:
    """Switches are bools and files are paths: ``dry_run="no"`` would be taken as yes."""
    check_switches(request, "dry_run", "restart", "rollback", "progress", "overwrite",
                   "allow_schema_change", "in_place")  # fmt: skip
    if request.partition is not None and not isinstance(request.partition, str):
        raise SmecError(f"partition {brief(request.partition, 30)}: pass 'K/N' as text, e.g. '0/4'")
    if isinstance(request.data_dir, str) and not request.data_dir:  # Path("") would be "."
        raise SmecError("data_dir is empty; pass the folder for the migration's records")
    check_fields(request, paths=("data_dir", "artifact", "queries", "query_ids", "qrels"),
                 mappings=("source", "to_options", "index_params"),
                 text=("backend", "collection", "to", "to_backend", "alias"),
                 required=("data_dir", "backend", "collection"))  # fmt: skip


def _check_request(request: MigrateRequest) -> Partition | None:
    """Every field checked, and numbers and paths stored as the plain types every record
    and message takes (a numpy int is no JSON; a str data_dir no Path)."""
    _check_fields(request)
    if request.to_backend is not None:  # before a path is made of it
        check_backend(request.to_backend)
    request.data_dir = Path(request.data_dir)
    request.dim = positive_int(request.dim, "--dim")
    request.batch_size = positive_int(request.batch_size, "--batch-size")
    request.checkpoint_rows = positive_int(request.checkpoint_rows, "--checkpoint-rows")
    if request.fit_rows is not None and request.artifact is not None:
        raise SmecError("--fit-rows sizes the sample a projection is fitted on; with --artifact "
                        "nothing is fitted: drop --fit-rows")  # fmt: skip
    if request.artifact is None:
        request.fit_rows = positive_int(FIT_ROWS if request.fit_rows is None
                                        else request.fit_rows, "--fit-rows")  # fmt: skip
    recall = request.min_recall
    if isinstance(recall, bool) or not isinstance(recall, Real) or not 0.0 <= recall <= 1.0:
        raise SmecError(f"--min-recall {brief(recall, 40)}: use a number from 0 to 1")
    request.min_recall = float(recall)
    _check_places("source", request.source, source_options(request.backend))
    _check_places("to_options", request.to_options, TARGET_OPTIONS)
    check_source_name(request.collection)
    if request.in_place:  # --to names the vector it adds
        from smec_index.migration.in_place import check_vector_name

        check_vector_name(request.to)
    else:
        if request.to == "":
            raise SmecError("--to is empty: name the new collection, or leave --to out for "
                            f"{default_target(request.collection, request.dim)!r}")  # fmt: skip
        check_new_name(request.to or default_target(request.collection, request.dim), "--to")
    if request.alias is not None and request.backend == "qdrant" and request.to_backend is None:
        # the app's alias in its own Qdrant: any name Qdrant takes ("docs-live"), though
        # never one of the physical NAME__b<hex> kind
        if isinstance(request.alias, str) and _PHYSICAL.fullmatch(request.alias):
            check_new_name(request.alias, "--alias")  # its refusal, in its words
        check_source_name(request.alias, "--alias")
    elif request.alias is not None:
        check_new_name(request.alias, "--alias")
    if request.to_options and request.to_backend is None:
        raise SmecError(f"to_options {sorted(request.to_options)} address a to_backend target; "
                        "a copy beside the source goes where the source is: pass to_backend, "
                        "or drop them")  # fmt: skip
    if request.writers is not None:
        request.writers = positive_int(request.writers, "--writers")
    if (request.queries is None) != (request.qrels is None):
        raise SmecError("--queries and --qrels go together (supervised fitting and an nDCG@10 "
                        "gate); pass both or neither")  # fmt: skip
    if request.query_ids is not None and request.queries is None:
        raise SmecError("--query-ids names the rows of --queries (.npy); pass --queries too")
    if request.queries is not None and request.artifact is not None:
        raise SmecError("--artifact is applied as it is; leave out --queries/--qrels with it")
    if request.index_params and request.to_backend is None:
        raise SmecError("index_params apply to a to_backend target; a copy beside the source "
                        "(or an in-place vector) takes the source's own index settings: drop "
                        "them, or pass to_backend")  # fmt: skip
    if request.in_place and request.backend != "qdrant":
        raise SmecError("--in-place adds a named vector to a Qdrant collection; a Milvus "
                        "source is migrated to a copy beside it: drop --in-place")  # fmt: skip
    if request.dry_run and (request.rollback or request.overwrite or request.restart):
        flag = "--rollback" if request.rollback else "--overwrite" if request.overwrite else (
            "--restart")  # fmt: skip
        raise SmecError(f"--dry-run writes nothing, so {flag} would do nothing; drop one of them")
    partition = None if request.partition is None else Partition.parse(request.partition)
    if request.rollback and (request.restart or request.overwrite):
        flag = "--restart" if request.restart else "--overwrite"
        raise SmecError(f"--rollback only moves the alias back; {flag} would do nothing with "
                        "it: drop one of them")  # fmt: skip
    if partition is not None and (request.dry_run or request.rollback):
        raise SmecError("--partition migrates; leave it out with --dry-run and --rollback")
    return partition


def migrate(request: MigrateRequest, say=print) -> dict[str, Any]:
    """Run (or plan, resume, roll back) one migration; the summary ``--json`` prints."""
    say = check_say(say)
    partition = _check_request(request)
    from smec_index.outputs import check_apart, check_working_folder

    if request.artifact is not None:  # what it is, before the data dir is judged against it
        from smec_index.artifact import check_artifact_folder

        check_artifact_folder(request.artifact)
    where = request.source.get("path") or request.source.get("uri")
    check_apart(request.data_dir, "--data-dir", [
        ("the source's folder", where), ("the artifact", request.artifact)])  # fmt: skip
    check_working_folder(request.data_dir)  # nor anyone else's folder
    to_uri = request.to_options.get("uri")
    if to_uri and where and not is_milvus_server(to_uri) and not is_milvus_server(where):
        inside = Path(where).resolve() in Path(to_uri).resolve().parents
        if inside:
            raise SmecError(f"--to-uri {to_uri} is inside the source's database {where}; "
                            "pick a path outside it")  # fmt: skip
    # qdrant-client's local mode locks its whole folder (edge shards and a milvus-lite file
    # may hold the source and its copy side by side)
    if request.to_backend == "qdrant" and request.to_options.get("mode") == "local" and where \
            and not _is_server(request.to_backend, request.to_options):  # fmt: skip
        root = _embedded_root(request.to_backend, request.data_dir, request.to_options).resolve()
        source_at = Path(where).resolve()
        if source_at == root or root in source_at.parents or source_at in root.parents:
            raise SmecError(  # its engine said "accessed by another instance": untrue
                f"the source's folder {where} is where the {request.to_backend} target would "
                f"be kept ({root}, under --data-dir); pass another --data-dir"
            )
    if where and request.to == request.collection and request.to_backend == request.backend \
            and not request.in_place and not _is_server(request.to_backend,
                                                        request.to_options):  # fmt: skip
        root = _embedded_root(request.to_backend, request.data_dir, request.to_options)
        if root.resolve() == Path(where).resolve():  # a qdrant-edge shard's folder: its
            # location never matched the target's in check_names, and it was read as a
            # leftover of no migration ("drop it yourself")
            raise SmecError(f"--to {request.to} is the source collection itself ({where} "
                            "holds the target too); pick another --to")  # fmt: skip
    started = time.perf_counter()
    try:
        source = open_source(request.backend, request.collection, **request.source)
    except SmecError as exc:
        using = _in_place_using(request) if "--using" in str(exc) else None
        if using is None:
            raise
        # a killed in-place run added its vector beside the one it compresses: the same
        # command resumes it with the vector its record names
        source = open_source(request.backend, request.collection,
                             **{**request.source, "using": using})  # fmt: skip
    try:
        if request.dim >= source.info.dim:
            raise SmecError(
                f"--dim {request.dim}: the source holds {source.info.dim}-d vectors; pick a "
                "smaller dim"
            )
        if request.in_place:
            from smec_index.migration.in_place import migrate_in_place

            return migrate_in_place(request, source, started, say)
        if request.to_backend is None:  # beside the source, in its own schema
            target = source.mirror()
            server = _is_server(request.backend, request.source)
            return _locked(request, source, target, request.backend, server, partition,
                           started, say)  # fmt: skip
        options = dict(request.to_options)
        server = _is_server(request.to_backend, options)
        root = None if server else _embedded_root(request.to_backend, request.data_dir, options)
        made = root is not None and not root.exists()  # this run makes the target's store
        try:
            return _to_backend(request, source, options, server, partition, started, say)
        except BaseException:
            if made and root.exists() and not _holds_collections(request, options):
                shutil.rmtree(root, ignore_errors=True)  # refused before a collection was made
            raise
    finally:
        source.close()


def _holds_collections(request: MigrateRequest, options: dict[str, Any]) -> bool:
    """Whether an embedded store made by this run holds any collection (a resumable copy)."""
    try:
        with _target_connector(request.to_backend, request.data_dir, options) as connector:
            return bool(connector.collections())
    except Exception:  # noqa: BLE001 - unreadable: keep it, it may be the user's to look at
        return True


def _to_backend(request, source, options, server, partition, started, say):
    """``migrate --to-backend``: the copy in smec-index's own schema, in ``options``' place."""
    with contextlib.ExitStack() as stack:
        data_dir = request.data_dir
        if request.dry_run and not server and not _embedded_root(
                request.to_backend, data_dir, options).exists():  # fmt: skip
            # A plan writes nothing: an embedded target that does not exist yet is
            # opened (and made) in a folder dropped afterwards; it holds nothing either way.
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(
                prefix="smec-plan-")))  # fmt: skip
            if request.to_backend == "milvus":  # its milvus-lite file goes there too
                if options.get("uri"):  # checked as the run would, never opened
                    from smec_index.connectors.milvus.client import (
                        check_lite_database,
                        check_lite_suffix,
                    )

                    check_lite_suffix(Path(options["uri"]), "--to-uri")
                    check_lite_database(Path(options["uri"]), "--to-uri")
                options = {k: v for k, v in options.items() if k != "uri"}
        c = stack.enter_context(_target_connector(request.to_backend, data_dir, options))
        from smec_index.secrets import shown_url

        given = request.to_options
        place = shown_url(str(given.get("url") or given.get("uri") or ""))
        if not server:  # Qdrant's local mode: `info`/`search --mode local` read it
            if given.get("uri"):  # a milvus-lite file, however it was spelled (m.db, ./m.db)
                place = str(Path(given["uri"]).resolve())
            mode = " local mode" if given.get("mode") == "local" else ""
            place = f"{request.to_backend}{mode} in {Path(request.data_dir).resolve()}" + (
                f" ({place})" if place else "")  # fmt: skip
        target = ConnectorTarget(c, request.to_backend, place, request.index_params)
        target.index_spec(request.dim)
        return _locked(request, source, target, request.to_backend, server, partition,
                       started, say)  # fmt: skip


def _embedded_root(backend: str, data_dir: Path, options: dict[str, Any]) -> Path:
    """Where an embedded target's store lives (what opening it makes)."""
    if backend == "milvus":
        return Path(options["uri"]) if options.get("uri") else Path(data_dir) / "milvus"
    if backend == "qdrant":
        return Path(data_dir) / ("qdrant-local" if options.get("mode") == "local" else "qdrant")
    return Path(data_dir) / backend


def _target_connector(backend: str, data_dir: Path, options: dict[str, Any]):
    """The target's connector; its address errors name the flags that gave the address
    and key here (--to-url, --to-api-key, --to-uri, --to-token), not the source's, and no
    QDRANT_URL (migrate reads none)."""
    try:
        return open_connector(backend, data_dir=data_dir, **options)
    except SmecError as exc:
        message = str(exc).replace("--url/QDRANT_URL", "--url")
        raise SmecError(re.sub(r"(?<![\w-])--(url|uri|api-key|token)\b", r"--to-\1",
                               message)) from None  # fmt: skip


def _locked(request, source, target, to_backend, server, partition, started, say):
    if partition is not None and not server:
        raise SmecError(
            "--partition is for a target on a server (Milvus --uri http://..., Qdrant "
            "--url): embedded targets are one process's files"
        )
    writers = request.writers or (4 if server else 1)
    if writers > 1 and not server:
        raise SmecError(f"--writers {writers}: an embedded target takes one writer")
    name = request.to or default_target(request.collection, request.dim)
    progress = Progress(request.data_dir, request.backend, source, to_backend, name,
                        target.place)  # fmt: skip
    run = _Run(request, source, target, to_backend, name, progress, partition, writers,
               flush_at_checkpoints=to_backend in IN_MEMORY_WRITES and not server)  # fmt: skip
    if not request.rollback:  # before the lock file: a refused run leaves the data dir as it was
        count = source.count()
        if count == 0:
            raise SmecError(
                f"{request.collection!r} at {source.info.where} holds no points: nothing to "
                "fit or migrate"
            )
        run.check_names()
        run.refuse_changes(run.changes(), "would change")
        if request.queries is not None:
            from smec_index.migration.supervised import check_supervised

            check_supervised(request, source.info.dim)
        if request.artifact is not None:
            given_artifact(request, source.info.dim)
        elif request.queries is None and min(request.fit_rows, count) <= request.dim:
            rows = min(request.fit_rows, count)
            capped = request.fit_rows < count
            raise SmecError(
                f"a PCA to {request.dim} dims needs at least {request.dim + 1} points to fit on "
                f"and would get {rows} ({'--fit-rows' if capped else 'all the source holds'}): "
                + ("raise --fit-rows, " if capped else "")
                + (f"pick a --dim below {rows} or " if rows > 1 else "")
                + "pass --artifact (one trained elsewhere)"
            )
        if not server and not request.dry_run:  # an embedded target: this machine's disk
            # Payloads are not read ahead: a modest 256 bytes a point is assumed. Checked
            # before the first write: Qdrant's memory-mapped files die of SIGBUS, not an
            # error, when the disk fills under them.
            need = estimated_bytes(to_backend, count, request.dim, 128, 256)
            elsewhere = "copy it elsewhere (--to-backend with --data-dir or --to-uri)"
            check_free_space(_target_dir(request), need, elsewhere)
    if request.dry_run:  # reads only: no lock file either
        return run.go(started, say)
    if request.rollback:  # nothing to roll back: refused before a lock file is made
        _switched(progress, name, request.alias)
    slice_ = "" if partition is None else f".part{partition.k}of{partition.n}"
    lock = f"{progress.folder.name}-{progress.stem}{slice_}.lock"
    with file_lock(request.data_dir / "locks" / "migrate" / lock,
                   f"a migration into {name!r} at {target.where}"):  # fmt: skip
        if request.rollback:
            return _rollback(progress, target, name, started, request.alias)
        return run.go(started, say)


def _switched(progress: Progress, name: str, alias: str | None = None) -> dict[str, Any]:
    """The record of the last alias switch into ``name``; with ``alias``, it must be that
    alias's (a rollback never moves another name than the one it was given)."""
    state = progress.read()
    if not state or not state.get("alias"):
        raise SmecError(f"no switched migration into {name!r} to roll back")
    if alias is not None and alias != state["alias"]:
        last = (f"the last switch recorded for {name!r} is of alias {state['alias']!r}, "
                f"which --rollback --alias {state['alias']} undoes")  # fmt: skip
        if "aliases" in state and alias not in _alias_times(state):  # never switched here
            raise SmecError(f"--alias {alias}: no migration into {name!r} switched that "
                            f"alias, so there is nothing of it to roll back; {last}")  # fmt: skip
        raise SmecError(
            f"--alias {alias}: {last}; {alias!r} was switched by an earlier run whose record "
            "that switch replaced: point it yourself where it belongs"
        )
    return state


def _rollback(progress: Progress, target, name: str, started: float,
              alias: str | None = None) -> dict[str, Any]:  # fmt: skip
    state = _switched(progress, name, alias)
    previous = state.get("alias_before")
    now = target.resolve(state["alias"])
    if now != name:  # moved since the switch: by the user, to a collection of theirs
        where = f"now points at {now!r}" if now is not None else "was dropped since"
        if now is not None and _switched_by_another(progress, state["alias"], now):
            raise SmecError(  # this source's own later migration: not "someone"
                f"alias {state['alias']!r} {where}, which a later migration of this source "
                f"switched it to; roll that one back first (the same command with --to "
                f"{now} --rollback --alias {state['alias']}), then this one"
            )
        raise SmecError(
            f"alias {state['alias']!r} {where}, not at this migration's copy {name!r}: "
            "someone moved it after the switch, so --rollback leaves it alone (point it "
            "back yourself if you mean to)"
        )
    if previous is None:
        target.drop_alias(state["alias"])
    else:
        target.set_alias(state["alias"], previous)
    # The record no longer says the alias is this copy's (info reads it; a second rollback
    # finds nothing to roll back); the copy itself stays, and is still described by name.
    progress.write({**state, "alias": None, "rolled_back": state["alias"], "aliases": {
        a: when for a, when in _alias_times(state).items() if a != state["alias"]}})  # fmt: skip
    return {
        "source": state["source"],
        "target": name,
        "alias": state["alias"],
        "rolled_back_to": previous,
        "seconds": round(time.perf_counter() - started, 3),
    }


def _switched_by_another(progress: Progress, alias: str, now: str) -> bool:
    """Whether another migration of this source recorded switching ``alias`` to ``now``,
    where it points now."""
    return any(path != progress.path() and state.get("alias") == alias
               and state.get("target") == now for path, state in progress.records())  # fmt: skip


class _Run:
    """One migration run into one target; :meth:`go` is the whole of it."""

    def __init__(self, request, source, target, to_backend, name, progress, partition,
                 writers, flush_at_checkpoints) -> None:  # fmt: skip
        self.request, self.source, self.target = request, source, target
        self.to_backend, self.name, self.progress = to_backend, name, progress
        self.partition, self.writers = partition, writers
        self.flush_at_checkpoints = flush_at_checkpoints
        self.mirror = not isinstance(target, ConnectorTarget)

    def changes(self) -> list[str]:
        if self.mirror:
            return mirror_changes(self.source, self.target, self.request.dim)
        return self.target.schema_changes(self.source)

    def earlier_copies(self) -> set[str]:
        """Targets earlier migrations of this source wrote at this place (their records)."""
        return {str(state.get("target")) for _, state in self.progress.records()
                if state.get("target_place") == self.target.place}  # fmt: skip

    def check_names(self) -> None:
        """Refuse, before anything is written, every target this run may not write."""
        request, target, name = self.request, self.target, self.name
        # beside the source: a mirror copy, or a --to-backend target in the source's own
        # milvus-lite file or server (whose app aliases may point at the source)
        where = getattr(getattr(getattr(target, "connector", None), "backend", None), "where",
                        None)  # fmt: skip
        same_place = self.mirror or (
            where is not None and self.source.info.location in (where, f"lite:{where}")
        )
        # the name as the user gave it, or the default they never typed
        named = f"--to {name}" if request.to else f"the default target {name} (--to not given)"
        if same_place and name == self.source.info.collection:
            raise SmecError(
                f"{named}: that is the source collection, which migrate never writes; "
                "pick another --to"
            )
        if target.is_alias(name):
            raise SmecError(
                f"{named}: that is an alias (of {target.resolve(name)!r}) at "
                f"{target.where}; migrate writes a new collection: pick another --to"
            )
        if request.alias is not None:
            if request.alias == name:
                raise SmecError(f"--alias {request.alias}: the same name as --to; pick another")
            if target.exists(request.alias) and not target.is_alias(request.alias):
                raise SmecError(
                    f"--alias {request.alias}: that is a collection at {target.where}, not an "
                    "alias; pick an alias name (the app's name for the collection)"
                )
            current = target.resolve(request.alias) if target.is_alias(request.alias) else None
            mine = {name, self.source.info.collection} if same_place else {name}
            mine |= self.earlier_copies()  # another dim of the same source, say
            if current is not None and current not in mine and not request.rollback:
                raise SmecError(
                    f"--alias {request.alias}: that alias points at {current!r} at "
                    f"{target.where}, not at the source {self.source.info.collection!r}; "
                    "switching it would give the app reading it a copy of another "
                    "collection: pick the alias the app uses for the source"
                )
        if target.exists(name) and not self.progress.owns_target():
            from smec_index.migration.state import records

            other = next((r.get("source") for _, r in records(request.data_dir)
                          if r.get("target") == name
                          and one_place(r.get("target_place"), target.place)
                          and r.get("source") != self.progress.shown_source), None)  # fmt: skip
            if other is not None:  # another source's copy (my-docs and my_docs: my_docs_8)
                raise SmecError(
                    f"target {name!r} at {target.where} is the copy a migration of {other} "
                    f"made (recorded in --data-dir {request.data_dir}), not this source's; "
                    "migrate never replaces it: pick another --to for this one"
                )
            held = self._held_by_alias()
            raise SmecError(
                f"target {name!r} already exists at {target.where} and no migration recorded "
                f"in --data-dir {request.data_dir} created it (an earlier migrate with another "
                "--data-dir? pass that one); migrate never replaces a collection it did not "
                "create, even with --overwrite: pick another --to" + (
                    f" (alias {held[0]!r} reads it: an app may use it)" if held
                    else ", or drop it yourself")
            )  # fmt: skip
        fresh = request.restart or request.overwrite
        if fresh and not request.rollback and target.resolve(name) == name:
            held = self._held_by_alias()
            if held:
                flag = "--overwrite" if request.overwrite else "--restart"
                raise SmecError(
                    f"alias {held[0]!r} points at {name!r} at {target.where} (a name an app "
                    f"reads); {flag} would drop it with the collection: {held[1]}, or "
                    "migrate into another --to"
                )  # fmt: skip

    def _held_by_alias(self) -> tuple[str, str] | None:
        """An alias that points at the target (which --restart or --overwrite would drop
        with it), and how to free it first; ``None`` where none does."""
        held = [a for a in self.target.aliases_of(self.name) if a != self.name]
        if not held:
            return None
        switched = (self.progress.read() or {}).get("alias") == held[0]
        return held[0], (f"switch it back first (--rollback --alias {held[0]})" if switched
                         else f"move alias {held[0]!r} with your own client first (no run of "
                         "this migration switched it, so --rollback has nothing to undo)")

    def check_payloads(self) -> None:
        """smec-index's own schema keeps each point's id in the payload key ``_smec_id``: a
        source whose points already carry it (a collection smec-index wrote) is refused here,
        by its first batch, before anything is written (and in the plan), not half-way."""
        from smec_index.connectors.contract import RESERVED_KEY

        if self.mirror:
            return
        from smec_index.connectors.qdrant.source import EdgeSource

        shard = isinstance(self.source, EdgeSource)  # only --to-backend can copy a shard
        first = next(iter(self.source.iterate(256, None)), None)
        if first is not None:
            from smec_index.connectors.contract import check_ids

            try:  # smec-index's ids: at most 1,024 bytes, no control characters
                check_ids(first.ids, len(first.ids))
            except SmecError as exc:
                raise SmecError(
                    f"the source's ids do not fit smec-index's own schema (--to-backend): "
                    f"{exc}; " + ("a qdrant-edge shard has no other route: migrate the "
                                  "collection it was made from, or change those ids there"
                                  if shard else "migrate it as a copy beside itself (leave "
                                  "out --to-backend)")
                ) from None
        if first is not None and any(RESERVED_KEY in p for p in first.payloads):
            raise SmecError(
                f"the source's points carry the payload key {RESERVED_KEY!r}, where "
                "smec-index's own schema (--to-backend) keeps each point's id: it is a "
                "collection smec-index wrote; " + (
                    "build it again at the new dim (`smec-index build --dim N` from the "
                    "dataset it was built from), or migrate the collection it was made from"
                    if shard else "migrate it as a copy beside itself (leave out "
                    "--to-backend), or from the collection it was made from")
            )  # fmt: skip
        if first is not None:  # what every backend stores: JSON, 64-bit integers, not too deep
            from smec_index.connectors.contract import check_payloads

            try:
                check_payloads(first.payloads, len(first.payloads))
            except SmecError as exc:
                raise SmecError(f"the source's payloads do not fit {self.to_backend}: {exc}; "
                                "fix them in the source first") from None  # fmt: skip

    def go(self, started: float, say) -> dict[str, Any]:
        request, source, target, name = self.request, self.source, self.target, self.name
        self.check_names()  # again, now that no other run of it can be half-way
        schema_fp = fingerprint(source.schema())
        fresh = request.restart or request.overwrite  # start over, replacing our own target
        previous = self.progress.read(self.partition)
        state = None if fresh else previous
        if state is not None and not target.exists(name):
            if state.get("written"):
                raise SmecError(f"the copy {name!r} this migration was writing is gone "
                                f"({state['written']} points were written to it); pass "
                                "--restart to copy the source again")  # fmt: skip
            state = None  # creating it failed before a point was written: start it anew
        if (state is not None and "target_schema" not in state and not state.get("written")
                and self.partition is None):  # fmt: skip
            # killed while making the target (before its schema was recorded): what is there
            # is this run's half-made copy, made again below (it was compared with the source
            # as if finished, and blamed on a schema change)
            state = None
        if state is not None:
            check_schema(state, schema_fp, self.progress.shown_source)
            made = state.get("target_schema")
            if made and target.exists(name) and fingerprint(target.schema(name)) != made:
                raise SmecError(  # it read as a source that changed, with --restart advised
                    f"target {name!r} at {target.where} is not the copy this migration made "
                    "(its schema differs from the one recorded: dropped and made again?); "
                    "migrate never drops what it did not create: drop it yourself, or pick "
                    "another --to"
                )
            if state.get("written") and not holds_sample(target, name, state.get("sample")):
                # not resumed into, nor verified and blamed on the source with --restart advised
                raise SmecError(_NOT_OURS.format(name=name, where=target.where))
        changes = self.changes()
        self.refuse_changes(changes, "would change")
        count = source.count()
        verify.check_metric(source)
        self.check_payloads()  # before a projection is fitted and saved
        if request.queries is not None:  # a gate that cannot pass: before training or a write
            from smec_index.migration.supervised import check_source_judges

            check_source_judges(request, source)
        projection, artifact, artifact_fp, kept = fit_projection(
            request, source, self.progress, say)  # fmt: skip
        if request.dry_run:
            return self.plan(projection, count, changes, kept, started)
        if state is not None and (
            state.get("fingerprint") != artifact_fp or state.get("dim") != request.dim
        ):
            raise SmecError(
                f"a migration into {name!r} was started with another projection (the "
                "--artifact, the fitting flags or, for a fitted one, the source's vectors "
                "changed since); pass --restart to start over"
            )
        if state is None and self.partition is None and not fresh:
            state = self._joined_partitions(artifact_fp, schema_fp)
        if state is None:
            state = {"source": self.progress.shown_source, "target": name,
                     "target_location": target.where, "target_place": target.place,
                     "vector": source.info.vector, "dim": request.dim,
                     "fingerprint": artifact_fp, "artifact": str(Path(artifact).resolve()),
                     "source_schema": schema_fp, "cursor": None, "written": 0,
                     "done": False}  # fmt: skip
            if previous and previous.get("alias"):  # a rollback still restores the original
                state["alias"], state["alias_before"] = previous["alias"], previous["alias_before"]
            if self.partition is not None:
                state["partition"] = str(self.partition)
            self.progress.write(state, self.partition)  # before create: the target is ours
            try:
                self._create(previous or {})
            except SmecError:  # refused (not ours to drop): the record goes back as it was,
                # or the next run would read this one, without a schema, as a create of its
                # own cut short, and drop what it had just refused to
                if previous is not None:
                    self.progress.write(previous, self.partition)
                else:
                    self.progress.path(self.partition).unlink(missing_ok=True)
                raise
            state["target_schema"] = fingerprint(target.schema(name))
            self.progress.write(state, self.partition)
        if self.mirror:  # what the engine made of the copy, before a single point goes in
            try:
                self.refuse_changes(self._schema_after(), "changed")
            except SmecError as exc:  # an empty copy no one asked for: not left behind
                if state["written"]:
                    raise
                raise SmecError(f"{exc}; {self._abandon()}") from None
        # Points an earlier run wrote (a resumed, re-run or joined copy): the source may have
        # changed since, which a sample cannot see, so every point is compared.
        earlier = bool(state.get("written"))
        if not state["done"]:
            job = Job(source, target, name, request.dim, request.batch_size,
                      request.checkpoint_rows, self.partition, self.writers,
                      flush_at_checkpoints=self.flush_at_checkpoints,
                      progress=request.progress)  # fmt: skip
            total = count if self.partition is None else None  # a slice's size: at the end
            try:
                stream(job, projection, state,
                       lambda s: self.progress.write(s, self.partition), total)  # fmt: skip
            except SourceDataError as exc:  # the source must be fixed first: leave nothing
                raise SmecError(f"{exc}; {self._abandon()}") from None
        if self.partition is not None:
            return {
                "source": state["source"], "target": name, "partition": str(self.partition),
                "written": state["written"], "count": count, "dim": request.dim,
                "verified": False, "seconds": round(time.perf_counter() - started, 3),
                "next": "when every partition is done, run the same command without "
                "--partition (same --data-dir) to verify the whole target and switch the alias",
            }  # fmt: skip
        try:
            near = verify.verify(source, target, name, projection, request.dim, count,
                                 state["done"], full=earlier)  # fmt: skip
        except verify.Stale as exc:
            held = self._held_by_alias()
            if held is None:
                raise
            # --restart alone was refused: the alias would be dropped with the copy
            raise SmecError(f"{exc} (alias {held[0]!r} reads the copy: {held[1]})") from None
        if near:
            which = "compared" if earlier else "sampled"
            say(f"note: {near} {which} payload floats came back as a neighbouring double "
                f"(within {target.float_ulps} units in the last place; {request.to_backend}'s "
                f"own float parsing); every other {which} value is identical")  # fmt: skip
        search = lambda v, k: target.search(name, v, k)  # noqa: E731
        recall = verify.recall_gate(source, search, projection, request.dim)
        gate = self.gate(search, projection) if request.queries is not None else recall
        diff = self._schema_after() if self.mirror else changes
        self._manifest(state, artifact, artifact_fp, count)
        if gate["value"] < request.min_recall:
            raise SmecError(self.gate_message(gate))
        if request.alias:
            before = target.resolve(request.alias)
            if state.get("alias") == request.alias and before == name:
                before = state.get("alias_before")  # switched already: keep what it replaced
            state["alias"], state["alias_before"] = request.alias, before
            # Every alias this copy was given, with when: Projection.load(alias) takes the
            # copy it was switched to last.
            state["aliases"] = {**_alias_times(state), request.alias: time.time()}
            self.progress.write(state)
            target.set_alias(request.alias, name)
        before = source.index_bytes()  # a walk over the source's files: once
        return {
            "source": state["source"],
            "target": name,
            "alias": request.alias,
            "count": count,
            "dim": request.dim,
            "verified": True,
            "recall@10": round(recall["value"], 4),
            **{k: v for k, v in gate.items() if k.startswith("ndcg")},
            "gate": gate["metric"],
            "schema_diff": diff,
            "target_location": target.where,
            "artifact": str(Path(artifact).resolve()),
            "index_bytes_before": before,
            "index_bytes_after": target.index_bytes(name),
            "seconds": round(time.perf_counter() - started, 3),
            "stream_seconds": state.get("stream_seconds"),
            "writers": self.writers,
            **({} if before is not None
               else {"index_bytes_before_is": source.index_bytes_unknown()}),
        }  # fmt: skip

    def refuse_changes(self, changes: list[str], verb: str) -> None:
        if changes and not (self.request.allow_schema_change or self.request.dry_run):
            raise SmecError(
                f"this migration {verb} the schema ({'; '.join(changes)}); an app written "
                "for the source may break: pass --allow-schema-change to accept it "
                "(--dry-run lists it as schema_diff)"
            )

    def _abandon(self) -> str:
        """Drop this migration's own target and progress (a source that cannot be migrated
        as it is); says what was left."""
        if self.partition is not None:  # other slices may be writing into the same target
            return "this slice's progress is kept; fix the source, then pass --restart"
        if self.target.exists(self.name) and not self.target.is_alias(self.name):
            self.target.drop(self.name)
        self.progress.path().unlink(missing_ok=True)
        kept = ("" if self.request.artifact is not None else " (the projection fitted for "
                "the source stays in the data dir, for the next run)")  # fmt: skip
        return f"the target {self.name!r} it made and its progress were dropped{kept}"

    def _schema_after(self) -> list[str]:
        """The copy's schema against the source's, as the engine now describes both."""
        from smec_index.connectors.source import schema_diff

        return schema_diff(self.source.schema(), self.target.schema(self.name),
                           {self.target.dim_path()})  # fmt: skip

    def gate(self, search, projection) -> dict[str, Any]:
        if self.request.queries is not None:
            from smec_index.migration.supervised import ndcg_gate

            return ndcg_gate(self.request, self.source, search, projection)
        return verify.recall_gate(self.source, search, projection, self.request.dim)

    def gate_message(self, gate: dict[str, Any]) -> str:
        request, value = self.request, gate["value"]
        if gate["metric"] == "recall@10":
            what = (f"recall@10 against the source's own search ({gate['queries']} source "
                    "points as queries)")  # fmt: skip
            options = ("pass --queries/--qrels to judge by nDCG@10 of real queries instead "
                       "(agreement with the source understates a projection trained on "
                       "qrels), ")  # fmt: skip
        else:
            what = "nDCG@10 of held-out queries relative to the source's own search"
            options = ""
        larger = (f"try a larger --dim than {request.dim}, or "  # one below the source's: none
                  if request.dim + 1 < self.source.info.dim else "")  # fmt: skip
        return (
            f"quality gate: {what} is {value:.3f}, {request.min_recall - value:.3f} below "
            f"--min-recall {request.min_recall}"
            f"{'; the alias was not switched' if request.alias else ''}; the finished copy "
            f"{self.name!r} stays at {self.target.where}, unused (drop it if you give it up). "
            f"Either {options}{larger}accept this figure knowingly with --min-recall "
            f"{max(0.0, value - 0.0005):.3f} (it is not copied again)"
        )

    def plan(self, projection, count, changes, kept, started) -> dict[str, Any]:
        """What a run would do, writing nothing; its gate figure measured on the same
        queries against the same truth as the real gate's (see :mod:`verify`)."""
        request = self.request
        search = verify.exact_search(self.source, projection, request.dim, request.progress)
        gate = self.gate(search, projection)
        before = self.source.index_bytes()
        return {
            "source": self.progress.shown_source,
            "target": self.name,
            "alias": request.alias,
            "count": count,
            "dim": request.dim,
            "verified": False,
            "dry_run": True,
            "gate": gate["metric"],
            "gate_value": round(gate["value"], 4),
            "gate_passes": gate["value"] >= request.min_recall,
            "gate_is": "the real gate's queries and truth (the source's own search), against "
            "exact search over every projected source vector (the target's index does not "
            "exist yet; its approximation can lower the real figure slightly)",
            **({"recall@10": round(gate["value"], 4)} if gate["metric"] == "recall@10" else {}),
            **{k: v for k, v in gate.items() if k.startswith("ndcg")},
            "schema_diff": changes,
            "target_location": self.target.where,
            "artifact": str(Path(kept).resolve()),
            "artifact_is": "given"
            if request.artifact is not None
            else "fitted by the run (a dry run saves nothing)",
            "index_bytes_before": before,
            "index_bytes_after": None
            if before is None
            else int(before * request.dim / self.source.info.dim),
            "index_bytes_after_is": "the source's scaled by the dim ratio",
            "seconds": round(time.perf_counter() - started, 3),
        }

    def _create(self, previous: dict[str, Any]) -> None:
        """A new target, or (``--restart`` / ``--overwrite``) this migration's own target
        replaced: only if it is still what the last run (``previous``, its progress record)
        made: the schema it recorded, at least the points it wrote, and the first of them as
        it wrote them. A partition joins a target another partition created."""
        request, target, name = self.request, self.target, self.name
        stamp, written = previous.get("target_schema"), previous.get("written")
        # Partitions started together take turns, so none joins a target another is still
        # creating (a Milvus collection without its index yet cannot be loaded).
        lock = (request.data_dir / "locks" / "migrate"
                / f"create-{self.progress.folder.name}-{self.progress.stem}.lock")  # fmt: skip
        with file_lock(lock, f"creating {name!r}", wait=True):
            if target.exists(name):
                if self.partition is not None and not request.restart:
                    return  # another slice created it (check_names: it is this migration's)
                if stamp is not None and fingerprint(target.schema(name)) != stamp:
                    raise SmecError(
                        f"target {name!r} at {target.where} is not the collection an earlier "
                        "run of this migration made (its schema differs); migrate never drops "
                        "what it did not create: drop it yourself, or pick another --to"
                    )
                held = target.count(name) if stamp is not None and written else None
                if held is not None and held < written:
                    raise SmecError(
                        f"target {name!r} at {target.where} holds {held:,} points, fewer than "
                        f"the {written:,} an earlier run of this migration wrote: it is not the "
                        "copy that run made (dropped and made again?); migrate never drops "
                        "what it did not create: drop it yourself, or pick another --to"
                    )
                if held is not None and not holds_sample(target, name, previous.get("sample")):
                    raise SmecError(_NOT_OURS.format(name=name, where=target.where))
                target.drop(name)
            target.create(name, request.dim)

    def _manifest(self, state, artifact, artifact_fp, count) -> None:
        """A smec-index collection's manifest (``search`` and ``info`` read it). A mirror
        is the user's collection: how to query it is in the progress record instead."""
        if self.mirror:
            return
        from smec_index.index import Manifest, manifest_folder

        request = self.request
        Manifest(
            backend=self.to_backend, collection=self.name, name=request.alias or self.name,
            dim=request.dim, input_dim=self.source.info.dim,
            artifact=str(Path(artifact).resolve()), model=None, dataset=None,
            spec=self.target.spec(self.name), count=count, artifact_fingerprint=artifact_fp,
            extra={"migrated_from": state["source"]},
        ).save(request.data_dir, manifest_folder(self.to_backend, request.to_options))  # fmt: skip

    def _joined_partitions(self, artifact_fp: str | None, schema_fp: str):
        """The state of a target that ``--partition 0/N`` ... ``N-1/N`` filled, once all are
        done: the whole-target run then only verifies and switches. None: no partitions ran."""
        import json

        found: dict[int, dict[int, dict[str, Any]]] = {}
        for path in self.progress.partitions():
            state = json.loads(path.read_text())
            k, n = (int(x) for x in state["partition"].split("/"))
            found.setdefault(n, {})[k] = state
        if not found:
            return None
        where = self.progress.folder
        if len(found) > 1:
            raise SmecError(
                f"progress of partitions into {self.name!r} with different N ({sorted(found)}) "
                f"in {where}; remove the stale ones or pass --restart"
            )
        n, parts = next(iter(found.items()))
        unfinished = [f"{k}/{n}" for k in range(n) if not parts.get(k, {}).get("done")]
        if unfinished:
            raise SmecError(
                f"partitions {', '.join(unfinished)} of {self.name!r} have not finished (or ran "
                f"with another --data-dir: copy their progress files into {where}); run them, "
                "then this command again"
            )
        for state in parts.values():
            check_schema(state, schema_fp, self.progress.shown_source)
        if any(state["fingerprint"] != artifact_fp for state in parts.values()):
            raise SmecError(
                f"the partitions of {self.name!r} used another projection than this run; pass "
                "the same --artifact to all of them"
            )
        first = parts[0]
        state = {**first, "partition": None, "partitions": n, "done": True,
                 "written": sum(state["written"] for state in parts.values()),
                 "stream_seconds": max(state.get("stream_seconds", 0.0)
                                       for state in parts.values())}  # fmt: skip
        self.progress.write(state)
        return state
