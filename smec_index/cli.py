"""``smec-index``: the command line. It parses flags and calls the library, nothing more.

The flags, their types and the rules between them are in :mod:`smec_index.options`; each
command hands a request to the library (:mod:`smec_index.train`, :mod:`smec_index.evaluate`,
:mod:`smec_index.build`, :mod:`smec_index.search`, :mod:`smec_index.collection_info`,
:mod:`smec_index.migration`, :mod:`smec_index.bench`) and prints what it returns.
"""

from __future__ import annotations

import json
import logging
import sys

import click

from smec_index.errors import SmecError
from smec_index.options import (
    BENCH_OPTIONS,
    BUILD_OPTIONS,
    EMBED_OPTIONS,
    EVAL_OPTIONS,
    INFO_OPTIONS,
    MIGRATE_OPTIONS,
    REPORT_OPTIONS,
    SEARCH_OPTIONS,
    TRAIN_OPTIONS,
    SmecGroup,
    build_params,
    check_read_only,
    connector_options,
    from_environment,
    given_flags,
    ints,
    migrate_places,
    names,
    notes,
    printable,
    quiet_logs,
    with_mode,
)


@click.group(cls=SmecGroup)
@click.version_option(package_name="smec-index")
@click.option("-v", "--verbose", is_flag=True, help="log progress details")
def main(verbose: bool) -> None:
    """Train embedding compressors (SMEC and baselines) and evaluate them."""
    level = logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(message)s")
    logging.getLogger().setLevel(level)  # each invocation its own (--quiet lowers it)
    # FAISS logs which CPU build it loads, with the ImportError of the one it skipped: noise
    # that reads like a failure, even with -v.
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)


@main.command()
@TRAIN_OPTIONS
def train(**flags) -> None:
    """Fit a compressor on embeddings (and train qrels) and save it as an artifact."""
    from smec_index.train import TrainRequest, run_train, train_lines

    quiet_logs(flags["quiet"])
    request = TrainRequest(**flags, given=given_flags(click.get_current_context()))
    for line in train_lines(run_train(request), request):
        click.echo(line)


@main.command("eval")
@EVAL_OPTIONS
def evaluate(as_json: bool, **flags) -> None:
    """nDCG@10 and recall@10/100 of exact search in each compressed space."""
    from smec_index.evaluate import EvalRequest, eval_lines, run_eval

    split_given = "split" in given_flags(click.get_current_context())
    summary = run_eval(EvalRequest(**flags, split_given=split_given))
    if as_json:
        click.echo(json.dumps(summary))
        return
    for line in eval_lines(summary):
        click.echo(line)


@main.command()
@EMBED_OPTIONS
def embed(dataset, model, out, batch_size, device, force) -> None:
    """Encode a BEIR corpus and its queries with sentence-transformers (cached).

    The cache is keyed on the exact texts and ids, the model and the smec-index version;
    --out must be new, empty or embeddings written by `smec-index embed`."""
    from smec_index.data import BeirDataset
    from smec_index.embed import embed_dataset

    written = embed_dataset(BeirDataset(dataset), model, out, batch_size, device, force=force)
    click.echo(f"embeddings in {written}")


@main.command()
@BUILD_OPTIONS
def build(**f) -> None:
    """Project a corpus to --dim and index it in a backend; measure it through the index."""
    from smec_index.build import BuildRequest, build_lines
    from smec_index.build import build as run_build

    options = connector_options(f["backend"], f["url"], f["api_key"], f["uri"], f["token"])
    request = BuildRequest(
        dataset=f["dataset"],
        backend=f["backend"],
        dim=f["dim"],
        data_dir=f["data_dir"],
        embeddings=f["embeddings"],
        skip_unknown_qrels=f["skip_unknown_qrels"],
        artifact=f["artifact"],
        collection=f["collection"],
        index=f["index_kind"],
        params=build_params(f["index_kind"], f),
        connector_options=options,
        overwrite=f["overwrite"],
        force_train=f["force_train"],
        batch_size=f["batch_size"],
        progress=not f["quiet"],
    )
    summary = run_build(request, say=notes(f["quiet"]))
    if f["as_json"]:
        click.echo(json.dumps(summary))
        return
    for line in build_lines(summary):
        click.echo(line)


@main.command()
@SEARCH_OPTIONS
def search(query, backend, data_dir, url, api_key, uri, token, as_json, **f) -> None:
    """Search a built collection with text (encoded and projected as its corpus was), or
    with the stored vector of a point (--like ID); titles come from the stored payloads."""
    from smec_index.search import SearchRequest, run_search

    request = SearchRequest(backend, f["collection"], data_dir, query, f["like_id"], f["top_k"],
                            f["model"], f["ef_search"], f["nprobe"])  # fmt: skip
    request.check()
    request.options = with_mode(backend, f["mode"],
                                connector_options(backend, url, api_key, uri, token))
    check_read_only(backend, request.options, data_dir)
    found = run_search(request)
    if as_json:
        click.echo(json.dumps(found))
        return
    for rank, hit in enumerate(found["hits"], 1):
        title = hit["title"]  # the user's own field in a migrated copy: any JSON value
        shown = title if isinstance(title, str) else "" if title is None else json.dumps(title)
        click.echo(f"{rank:>3}  {hit['score']:.4f}  {printable(hit['id'])}  "
                   f"{printable(shown[:80])}")


@main.command()
@INFO_OPTIONS
def info(backend, data_dir, url, api_key, uri, token, collection, mode, path, as_json) -> None:
    """What a collection holds: count, dim, index spec, model, artifact fingerprint, alias
    target, index_bytes and total_bytes; for a copy `migrate` made, where it came from and
    how to project queries for it."""
    from smec_index.collection_info import collection_info

    options = connector_options(backend, url, api_key, uri, token)
    if path is not None:
        if backend != "qdrant":
            raise SmecError("--path is a qdrant-client local folder; pass --backend qdrant")
        if options.get("url") and not from_environment(click.get_current_context(), "url"):
            raise SmecError("--path (a local folder) and --url (a server) name two places; "
                            "pass one of them")  # fmt: skip
        if mode is not None:
            raise SmecError("--path (a qdrant-client folder of yours) and --mode (smec-index's "
                            "embedded store) name two places; pass one of them")  # fmt: skip
        options = {"path": str(path)}
    options = with_mode(backend, mode, options)
    check_read_only(backend, options, data_dir)
    summary = collection_info(backend, collection, data_dir, **options)
    if as_json:
        click.echo(json.dumps(summary))
        return
    for key, value in summary.items():
        shown = json.dumps(value) if isinstance(value, (dict, list)) else printable(value)
        click.echo(f"{key:>22}: {shown}")


@main.command()
@MIGRATE_OPTIONS
def migrate(**f) -> None:
    """Move a Qdrant or Milvus collection to compressed vectors: a copy beside it with the
    same ids, fields, types, indexes and vector name, only the vector smaller; streamed,
    resumable, verified, then switched by alias. The source is only read."""
    from smec_index.migration.runner import MigrateRequest
    from smec_index.migration.runner import migrate as run_migrate

    source, to_options = migrate_places(click.get_current_context(), f)
    same = ("backend", "collection", "dim", "data_dir", "to", "to_backend", "alias", "artifact",
            "min_recall", "dry_run", "restart", "overwrite", "allow_schema_change", "rollback",
            "partition", "writers", "in_place", "queries", "query_ids", "fit_rows", "qrels",
            "batch_size", "checkpoint_rows")  # fmt: skip
    request = MigrateRequest(**{k: f[k] for k in same}, source=source, to_options=to_options,
                             progress=not f["quiet"])  # fmt: skip
    summary = run_migrate(request, say=notes(f["quiet"]))
    if not f["dry_run"] and not f["rollback"] and summary.get("artifact") and not f["quiet"]:
        click.echo(
            f"queries: project them first, smec_index.Projection.load({summary['artifact']!r})"
            f".project(q, {f['dim']})",
            err=True,
        )
    if f["as_json"]:
        click.echo(json.dumps(summary))
        return
    for key, value in summary.items():
        click.echo(f"{key:>20}: {value}")


@main.command("bench")
@BENCH_OPTIONS
def bench_command(**f) -> None:
    """Measure quality, latency, QPS and bytes for every dataset x method x dim x backend x
    index x encoding; one JSON line per run in --out."""
    import time

    from tqdm.auto import tqdm

    from smec_index.bench.report import summary_lines
    from smec_index.bench.runner import run_sweep
    from smec_index.bench.sweep import Sweep

    flags = {
        "datasets": list(f["datasets"]) or None, "embeddings": f["embeddings"],
        "methods": names(f["methods"], "--methods"), "dims": ints(f["dims"], "--dims"),
        "backends": names(f["backends"], "--backends"),
        "encodings": names(f["encodings"], "--encodings"), "index": names(f["index"], "--index"),
        "payloads": names(f["payloads"], "--payloads"),
        "ef_search": ints(f["ef_search"], "--ef-search"), "nprobe": ints(f["nprobe"], "--nprobe"),
        "nlist": f["nlist"], "max_queries": f["max_queries"],
        "latency_queries": f["latency_queries"],
        "concurrency": ints(f["concurrency"], "--concurrency"), "out": f["out"],
        "force": f["force"],
    }  # fmt: skip
    sweep = Sweep.from_sources(f["config"], flags)
    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    records = run_sweep(sweep, say=lambda m: tqdm.write(m, file=sys.stderr))
    for line in summary_lines([r for r in records if str(r.get("time", "")) >= started]):
        click.echo(line)
    click.echo(f"{len(records)} runs in {sweep.out}; `smec-index report {sweep.out} --out DIR`")


@main.command("report")
@REPORT_OPTIONS
def report_command(results, out) -> None:
    """Markdown and PNG plots from a bench results file (nothing is measured)."""
    from smec_index.bench.report import write_report

    click.echo(str(write_report(results, out)))


if __name__ == "__main__":
    main()
