"""`smec-index info`: what a built collection holds and what it costs, in one dict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from smec_index.connectors import open_connector
from smec_index.connectors.base import check_collection_name
from smec_index.errors import SmecError
from smec_index.index import Manifest, lost_alias, manifest_folder, other_mode_hint


def collection_info(backend: str, name: str, data_dir: Path, **options: Any) -> dict[str, Any]:
    """Count, dim, spec, model, artifact and its fingerprint, alias target and sizes.

    Raises:
        SmecError: ``name`` is neither a collection nor an alias there.
    """
    if options.get("path") or options.get("url") or options.get("uri"):
        from smec_index.connectors.source import check_source_name

        check_source_name(name, "--collection")  # a user's engine: the names it takes
    else:
        check_collection_name(name)
    unreadable: list[Path] = []
    record = _migrated(backend, name, Path(data_dir), options, unreadable)
    if record is not None:
        return _migrated_info(backend, name, record, options)
    try:
        return _built_info(backend, name, data_dir, options)
    except SmecError as exc:
        if not unreadable:
            raise
        raise SmecError(  # the record that would have described a copy migrate made
            f"no collection {name!r} that smec-index built, and migration record "
            f"{unreadable[0]}, which would describe a copy migrate made, is unreadable "
            "(damaged JSON): restore that file, or run the migration again with --restart"
        ) from exc


def _built_info(backend: str, name: str, data_dir: Path, options: dict[str, Any]) -> dict:
    """A collection ``smec-index build`` made (its manifest under ``data_dir``)."""
    if options.get("path"):
        if Path(options["path"]).resolve() == (Path(data_dir) / "qdrant-local").resolve():
            raise SmecError(
                f"{options['path']} is the Qdrant local-mode store of data dir {data_dir}, "
                "where `migrate --to-mode local` and smec-index write: pass --mode local "
                "instead of --path"
            )
        unfinished = unfinished_migration(data_dir, backend, name,
                                          f"path:{Path(options['path']).resolve()}")  # fmt: skip
        if unfinished:
            raise SmecError(f"collection {name!r} at {options['path']} is not ready: "
                            f"{unfinished}")  # fmt: skip
        raise SmecError(
            f"no collection {name!r} that migrate wrote into {options['path']} according to "
            f"{data_dir}; check --collection and --data-dir"
        )
    local = Path(data_dir) / "qdrant-local"
    if backend == "qdrant" and options.get("mode") == "local" and not local.is_dir():
        raise SmecError(f"no Qdrant local-mode store at {local}: no collection {name!r} was "
                        "written there in local mode"
                        + copy_elsewhere(backend, name, data_dir, options)
                        + other_mode_hint(backend, data_dir, options, name))  # fmt: skip
    with open_connector(backend, data_dir=data_dir, **options) as connector:
        collection = connector.resolve(name)
        if collection is None:
            lost_alias(connector, Path(data_dir), manifest_folder(backend, options), name)
            copy = copy_elsewhere(backend, name, data_dir, options)
            raise SmecError(
                f"no collection {name!r} built for {backend} here"
                + (copy or "; run `smec-index build` first (or check --collection and "
                   "--data-dir)")
                + other_mode_hint(backend, data_dir, options, name)
            )  # fmt: skip
        manifest = Manifest.find(data_dir, manifest_folder(backend, options), collection)
        if manifest is not None:
            from smec_index.index import check_not_emptied

            check_not_emptied(connector, collection, name, manifest)
        unfinished = None if manifest else unfinished_migration(data_dir, backend, collection)
        if unfinished and connector.foreign(collection):  # a copy in the source's own schema,
            # cut short: not "someone's own", as search says (its spec is the user's schema)
            raise SmecError(f"{backend} collection {name!r} is not ready: {unfinished}")
        spec = connector.spec(collection)
        sizes = connector.sizes(collection)
        return {
            "backend": backend,
            "collection": name,
            "alias_target": collection if collection != name else None,
            "count": connector.count(collection),
            "dim": spec.dim,
            "metric": spec.metric,
            "index": spec.index,
            "params": spec.params,
            "model": manifest.model if manifest else None,
            "artifact": manifest.artifact if manifest else None,
            "artifact_fingerprint": manifest.artifact_fingerprint if manifest else None,
            "input_dim": manifest.input_dim if manifest else None,
            "dataset": manifest.dataset if manifest else None,
            "manifest": manifest is not None,
            "index_bytes": sizes.index_bytes,
            "total_bytes": sizes.total_bytes,
            "bytes_method": sizes.method,
            **({"migration": unfinished} if unfinished else {}),
        }


def unfinished_migration(data_dir: Path, backend: str, collection: str,
                         place: str | None = None) -> str | None:  # fmt: skip
    """What to do about ``collection`` of ``backend`` (at ``place``, a record's
    ``target_place``, where given) when a migration into it recorded under ``data_dir`` was
    cut short (its record not done): finish it, as advice; else None."""
    from smec_index.migration.state import records

    for _, record in records(data_dir, f"{backend}-*.json"):
        if (record.get("target") == collection
                and not record.get("done") and "in_place_using" not in record
                and (place is None or record.get("target_place") == place)):  # fmt: skip
            written = record.get("written")
            # the rows its last checkpoint recorded; more may be in the copy past it, which
            # the resumed run writes again (upserts by id)
            rows = (f"its last checkpoint recorded {written:,} rows" if isinstance(written, int)
                    else "unfinished")  # fmt: skip
            return (f"a migration from {record.get('source')} into {collection!r} was cut "
                    f"short ({rows}); run the same `smec-index migrate` command again to "
                    "finish it (it resumes)")  # fmt: skip
    return None


def _asked_places(backend: str, options: dict[str, Any] | None) -> set[str]:
    """The ``target_place`` a migration's record gives the place ``options`` name (a
    qdrant-client folder, a milvus-lite file, a server's address; none for smec-index's
    own stores)."""
    from smec_index.secrets import shown_url

    options = options or {}
    if options.get("path"):
        return {f"path:{Path(options['path']).resolve()}"}
    where = options.get("url") or options.get("uri")
    if not where:
        return set()
    if backend == "milvus" and "://" not in str(where):
        return {f"lite:{Path(str(where)).resolve()}"}
    return {shown_url(str(where))}


def copy_elsewhere(backend: str, name: str, data_dir: Path,
                   options: dict[str, Any] | None = None) -> str:  # fmt: skip
    """Where a finished migration recorded under ``data_dir`` put ``name`` (a copy beside a
    source, or the alias it switched there, found only with that source's flags), as advice
    ("" where none did). Records of the place ``options`` name are passed over: ``name`` is
    not there now (an alias rolled back), and the advice would send the user back."""
    from smec_index.migration.state import records

    here = _asked_places(backend, options)
    for _, record in records(data_dir):
        if not record.get("done") or name not in (
                record.get("target"), record.get("alias")):  # fmt: skip
            continue
        if not str(record.get("source", "")).startswith(f"{backend}:"):
            continue
        place = str(record.get("target_place", ""))
        if place in here:
            continue
        import shlex

        flag = (f"--path {shlex.quote(place[5:])}" if place.startswith("path:") else
                f"--uri {shlex.quote(place[5:])}" if place.startswith("lite:") else "")  # fmt: skip
        what = ("a copy `migrate` made beside its source" if name == record.get("target")
                else "an alias a migration switched")  # fmt: skip
        if flag:
            return (f"; {name!r} is {what} at {place[5:]}{' (not here)' if here else ''}: "
                    f"`smec-index info --backend {backend} {flag} --collection {name} "
                    f"--data-dir {shlex.quote(str(data_dir))}` describes it and how to query "
                    "it")  # fmt: skip
    return ""


def _migrated(backend: str, name: str, data_dir: Path, options: dict[str, Any],
              unreadable: list[Path]):  # fmt: skip
    """The progress record of a finished ``migrate`` whose copy (or alias) is ``name`` at
    the place ``options`` name (a server address or a milvus-lite file), if any; records
    that cannot be read are added to ``unreadable``."""

    places = _asked_places(backend, options)
    if not places:
        return None
    from smec_index.migration.state import records

    found, filled, copies = [], [], []
    for path, record in records(data_dir, unreadable=unreadable):
        if not (record.get("done") and record.get("target_place") in places
                and str(record.get("source", "")).startswith(f"{backend}:")):  # fmt: skip
            continue
        in_place = "in_place_using" in record  # it filled a vector of the source itself
        if in_place and record.get("target") == f"{name}:{record.get('vector')}":
            filled.append((path.stat().st_mtime, str(path), record))
        elif record.get("target") == name:
            return record  # the copy itself
        elif record.get("alias") == name:
            found.append(record)
        elif _copy_name(record):
            copies.append((path.stat().st_mtime, str(path), record))  # the user may have
            # an alias of it
    if filled:  # the vector filled last (several may have been)
        return max(filled, key=lambda entry: entry[:2])[2]
    # An alias: the migration that switched it last (two migrations may have used it).
    if found:
        return max(found, key=lambda r: _switched_at(r, name))
    return _through_users_alias(backend, name, options, copies)


def _copy_name(record: dict) -> str | None:
    """The collection a finished migration wrote: its copy, or the source collection whose
    vector ``--in-place`` filled (its target is ``NAME:VECTOR``)."""
    target, vector = record.get("target"), record.get("vector")
    if not isinstance(target, str):
        return None
    if "in_place_using" not in record:
        return target
    suffix = f":{vector}"
    return target[: -len(suffix)] if isinstance(vector, str) and target.endswith(suffix) else None


def _through_users_alias(backend: str, name: str, options: dict[str, Any],
                         copies: list[tuple[float, str, dict]]) -> dict | None:  # fmt: skip
    """The record of what a migration wrote (a copy, or a vector filled in place) that an
    alias the user made at that place points at: no migrate switched the alias, so no
    record names it, and `info` read it as no copy at all."""
    from smec_index.connectors.source import open_source, source_options

    if not copies:
        return None
    first = copies[0][2]
    where = {k: v for k, v in options.items() if k in source_options(backend)}
    if backend == "qdrant" and first.get("vector"):
        where["using"] = first["vector"]
    try:
        source = open_source(backend, _copy_name(first), **where)
    except SmecError:
        return None  # the copy is gone, or the place is unreadable: nothing to name
    try:
        target = source.mirror().resolve(name)
    except SmecError:
        return None  # a qdrant-edge shard: no aliases
    finally:
        source.close()
    named = [entry for entry in copies if target != name and _copy_name(entry[2]) == target]
    return max(named, key=lambda entry: entry[:2])[2] if named else None


def _switched_at(record: dict, alias: str) -> float:
    switched = record.get("aliases")
    when = switched.get(alias, 0.0) if isinstance(switched, dict) else 0.0
    return when if isinstance(when, (int, float)) else 0.0


def migrated_copy(backend: str, name: str, data_dir: Path, options: dict[str, Any]) -> str | None:
    """Where ``name`` is a copy ``migrate`` made (no manifest: the user's own schema), what
    to query it with; None otherwise. Search and :meth:`CompressedIndex.open` say it rather
    than that it has no manifest."""
    record = _migrated(backend, name, Path(data_dir), options, [])
    if record is None:
        return None
    return (
        f"{name!r} is a copy `migrate` made in the source's own schema, which your own client "
        f"queries: project each query with smec_index.Projection.load("
        f"{record.get('artifact')!r}).project(q, {record.get('dim')})"
    )


def _migrated_info(backend: str, name: str, record: dict, options: dict[str, Any]):
    """What ``info`` says of a migrated copy: the user's own collection, read through the
    source wing (it has no smec-index spec), and the artifact its queries need."""
    from smec_index.connectors.source import open_source, source_options

    options = {k: v for k, v in options.items() if k in source_options(backend)}  # no --mode
    in_place = "in_place_using" in record
    target = _copy_name(record) if in_place else record["target"]
    if backend == "qdrant" and record.get("vector"):
        options = {**options, "using": record["vector"]}
    source = open_source(backend, target, **options)
    try:
        index_bytes = source.index_bytes()  # a walk over the copy's files: once
        return {
            "backend": backend,
            "collection": name,
            "alias_target": target if target != name else None,
            "count": source.count(),
            "dim": source.info.dim,
            "metric": source.info.metric,
            "vector": source.info.vector,
            "migrated_from": record["source"],
            "in_place": in_place,
            "artifact": record.get("artifact"),
            "artifact_fingerprint": record.get("fingerprint"),
            "query_with": f"smec_index.Projection.load({record.get('artifact')!r})"
            f".project(q, {source.info.dim})",
            "manifest": False,
            "index_bytes": index_bytes,
            "total_bytes": None,
            "bytes_method": "milvus-lite's vector index files of the copy"
            if index_bytes is not None
            else source.index_bytes_unknown(),
        }
    finally:
        source.close()
