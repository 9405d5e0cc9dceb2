"""Run a sweep: for each dataset and method, fit the projection once; for each dim, project
the corpus and queries once and find the exact top 10 in that space; then, for each backend x
index x encoding, build a collection through the connector contract once and measure it with
each ef (HNSW) or nprobe (IVF) of the sweep, set per search, so a sweep over them costs no
rebuild.

Per run (one line in the results file):

- ``build_seconds``: create + add (batches of 5,000) + flush, the index built;
- ``index_bytes`` / ``total_bytes`` from the connector's ``sizes()`` (the contract's meaning
  on every backend) and ``bytes_per_vector`` of the encoding's code;
- ``ndcg@10`` of the index's top 10 against the dataset's qrels (None without qrels),
  ``recall@10`` against exact float32 search in the same projected space (the index's own
  quality) and ``recall@10_original`` against exact search over the original vectors
  (what the reduced dim and the index lose together: the question a user of an unlabelled
  collection asks);
- single-client latency: ``latency_queries`` queries one at a time after 20 warm-up ones,
  ``time.perf_counter`` around each ``search``: p50 / p95 / p99 and the QPS they give;
- ``concurrency``: QPS and p99 with 1, 4 and 8 clients searching at once, each level
  ``latency_queries`` searches in all (at least 50 per client). A server's clients
  are processes (spawned, each with its own connection, started together once all are
  warm). An embedded backend's are threads of this process, because it holds its files with
  a lock that a second process cannot share; faiss and hnswlib release the GIL while
  searching, milvus-lite (pure Python) and qdrant-edge do not fully, which the figures show.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import queue
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from smec_index.bench.encodings import bytes_per_vector, family, index_spec, rescored, supports
from smec_index.bench.results import (
    ResultsFile,
    machine,
    memory_bandwidth,
    run_key,
    versions,
)
from smec_index.bench.sweep import SYNTHETIC, Sweep
from smec_index.data import RetrievalData
from smec_index.errors import SmecError, check_say
from smec_index.metrics import ndcg_at_k, recall_vs_exact
from smec_index.vectors import exact_search, normalize

K = 10
WARMUP = 20
ADD_BATCH = 5_000


@dataclass
class Dataset:
    name: str
    data: RetrievalData
    qrels: dict[str, dict[str, int]]  # empty: no judgements (quality columns stay empty)
    query_ids: list[str]
    train_qrels: dict[str, dict[str, int]] | None
    _fingerprint: str | None = None

    @property
    def fingerprint(self) -> str:
        """A digest of what a run measures with: the vectors, ids and judgements (names and
        counts alone missed vectors re-embedded in place)."""
        if self._fingerprint is None:
            digest = hashlib.blake2b(digest_size=8)
            for part in (self.data.corpus, self.data.queries):
                digest.update(np.ascontiguousarray(part.vectors).data)
                digest.update("\n".join(part.ids).encode("utf-8", "replace"))
            for judged in (self.qrels, self.train_qrels or {}):
                digest.update(json.dumps(judged, sort_keys=True).encode())
            digest.update("\n".join(self.query_ids).encode("utf-8", "replace"))
            self._fingerprint = digest.hexdigest()
        return self._fingerprint


def inputs_of(method: str, dataset: Dataset) -> str:
    """What a stored run was measured with beyond its configuration: the dataset's content
    and, for ``artifact:DIR``, the artifact's (a run whose inputs changed is measured again,
    not reused)."""
    if not method.startswith("artifact:"):
        return dataset.fingerprint
    from smec_index.artifact import artifact_fingerprint

    return f"{dataset.fingerprint}-{artifact_fingerprint(method[9:])[:16]}"


def load_dataset(spec: str, sweep: Sweep) -> Dataset:
    """A BEIR directory with embeddings, or ``synthetic:NxD[:rankR]`` (seeded; queries
    planted near one document each, which is their one relevant document)."""
    synthetic = SYNTHETIC.match(spec)
    if synthetic:
        from smec_index.synthetic import synthetic_retrieval

        n, dim = int(synthetic.group(1)), int(synthetic.group(2))
        rank = int(synthetic.group(3) or max(2, dim // 8))
        queries = min(1000, max(10, n // 10))
        data, qrels = synthetic_retrieval(n, queries, dim, rank, seed=sweep.seed)
        return Dataset(spec, data, *_capped(qrels, list(qrels), sweep), None)
    from smec_index.data import load_retrieval_data

    data = load_retrieval_data(spec, sweep.embeddings, skip_unknown_qrels=True)
    name = Path(spec).resolve().name
    if data.dataset is not None and data.dataset.has_split(sweep.split):
        qrels = data.qrels(sweep.split)
        query_ids = list(qrels)
    else:
        qrels, query_ids = {}, list(data.queries.ids)
        tqdm.write(f"note: {name} has no qrels/{sweep.split}.tsv: nDCG@10 stays empty; "
                   "speed, bytes and recall are still measured", file=sys.stderr)  # fmt: skip
    qrels, query_ids = _capped(qrels, query_ids, sweep)
    train = None
    if data.dataset is not None and data.dataset.has_split(sweep.train_split):
        train = data.qrels(sweep.train_split)
    return Dataset(name, data, qrels, query_ids, train)


def _capped(qrels: dict, query_ids: list[str], sweep: Sweep) -> tuple[dict, list[str]]:
    """The first ``--max-queries`` queries and their qrels (all of them without it): on a
    synthetic dataset too, where the flag was ignored."""
    if sweep.max_queries:
        query_ids = query_ids[: sweep.max_queries]
        qrels = {q: qrels[q] for q in query_ids if q in qrels}
    return qrels, query_ids


def fit_method(method: str, dims: list[int], dataset: Dataset, sweep: Sweep):
    """The projection for ``method`` (None: the original vectors)."""
    if method == "none":
        return None
    if method.startswith("artifact:"):
        from smec_index.compressors import load_projection

        return load_projection(method[9:])
    from smec_index.compressors import make_compressor
    from smec_index.compressors.registry import TRAINED

    compressor = make_compressor(method, _reduced(dims, dataset), progress=False, seed=sweep.seed)
    if method in TRAINED:  # run_sweep checked up front that the train qrels exist
        return compressor.fit(dataset.data, dataset.train_qrels)
    return compressor.fit(dataset.data)


# (backend, index, encoding, payload, query parameter sets, why skipped)
Planned = tuple[str, str, str, str, list[dict[str, int]], str]


def plan(sweep: Sweep, dim: int) -> Iterator[Planned]:
    """(backend, index, encoding, payload, queries, note) for one dim: one index built,
    searched with each query parameter set of ``queries`` (each ef of an HNSW index, each
    nprobe of an inverted file, ``[{}]`` for a flat index); note: why a pair is skipped."""
    for backend in sweep.backends:
        for index in sweep.index:
            for encoding in sweep.encodings:
                why = supports(backend, index, encoding, dim)
                queries = [{}]
                if index == "hnsw":
                    queries = [{"ef_search": ef} for ef in sweep.ef_search]
                if index == "ivf":
                    queries = [{"nprobe": n} for n in sweep.nprobe]
                for payload in sweep.payloads:
                    yield backend, index, encoding, payload, queries, why or ""


def run_sweep(sweep: Sweep, say: Callable[[str], None] = print) -> list[dict[str, Any]]:
    from smec_index.outputs import check_writable_file

    say = check_say(say)
    sweep.check()  # a Sweep made in Python was never checked (the CLI's is, again here)
    check_writable_file(sweep.out, "--out")
    datasets = [load_dataset(spec, sweep) for spec in sweep.datasets]
    from smec_index.compressors.registry import TRAINED

    for dataset in datasets:  # a method that cannot run on a dataset fails before any work
        for method in sweep.methods:
            if method in TRAINED and not dataset.train_qrels:
                raise SmecError(
                    f"method {method} trains on qrels/{sweep.train_split}.tsv, which "
                    f"{dataset.name} does not have; leave it out for this dataset"
                )
    if "ivf" in sweep.index:
        for dataset in datasets:
            check_ivf(sweep, dataset.name, len(dataset.data.corpus.ids))
    noted: set[str] = set()
    total = sum(
        len(queries_params)
        for d in datasets
        for m in sweep.methods
        for dim in _dims(sweep, d, m)
        for *_, queries_params, why in plan(sweep, dim)
        if not why
    )
    if not total:  # refused before the results file, a training or a timing is touched
        why = sorted({why for d in datasets for m in sweep.methods for dim in _dims(sweep, d, m)
                      for *_, why in plan(sweep, dim) if why})  # fmt: skip
        raise SmecError(
            "nothing to measure: "
            + ("; ".join(why) if why else "no method runs at "
               + (f"dims {sweep.dims}" if sweep.dims else "the dataset's own dim (no --dims)")
               + " (none: the original dim only; smec and mrl: up to it; others: below it)")
            + "; change --dims, --methods or --encodings"
        )  # fmt: skip
    check_room(sweep, datasets)
    from smec_index.connectors.storage import file_lock

    out = Path(sweep.out)
    lock = out.resolve().with_name(f".{out.resolve().name}.lock")  # beside the file, not a link
    levels = tuple(str(c) for c in sorted(sweep.concurrency))  # a stored run has these too
    with contextlib.ExitStack() as stack:
        # one bench per results file: two at once measured the same runs and both appended
        stack.enter_context(file_lock(lock, f"a bench into {out}"))
        results = ResultsFile(out, sweep.force, say)  # read under the lock
        stamp = {
            "versions": versions(),
            "machine": {**machine(), "memory_gb_per_s": memory_bandwidth()},
        }
        bar = stack.enter_context(tqdm(total=total, desc="bench", unit="run"))
        workdir = stack.enter_context(_workdir(sweep.workdir))
        servers: dict[str, dict[str, Any]] = {}
        for dataset in datasets:
            queries_full = dataset.data.queries.take(dataset.query_ids)
            original = _OriginalTruth(dataset, queries_full)
            for method in sweep.methods:
                dims = _dims(sweep, dataset, method)
                full = dataset.data.dim  # without --dims, the one dim measured
                skipped = [d for d in sweep.dims or [full] if d not in dims]
                if skipped and f"{method}-dims" not in noted:
                    noted.add(f"{method}-dims")
                    if not sweep.dims:  # `bench` with its default methods measured none alone
                        say(f"note: method {method} measures nothing without --dims: it "
                            f"projects below the original {full} dims; pass e.g. --dims "
                            f"{max(1, full // 2)}")  # fmt: skip
                    else:
                        say(f"note: method {method} skips dims {skipped} (none: the original "
                            "dim only; smec and mrl: the dims below it and, at it, their "
                            "full-dim adapter; others: below the original)")  # fmt: skip
                if not dims:
                    continue
                planned = [key for dim in dims for *built, queries_params, why in plan(sweep, dim)
                           if not why
                           for key, _ in _run_configs(sweep, dataset, method, dims, dim, *built,
                                                      queries_params)]  # fmt: skip
                inputs = inputs_of(method, dataset)
                if all(results.has(key, inputs, levels) for key in planned):
                    bar.update(len(planned))
                    say(f"note: every run of {method} on {dataset.name} is stored; not "
                        "trained or measured again (--force does)")  # fmt: skip
                    continue
                projection = fit_method(method, dims, dataset, sweep)
                for dim in dims:
                    corpus, queries = _project(projection, dataset, queries_full, dim)
                    truth = exact_search(corpus, queries, K)[1]
                    if projection is None:  # the original vectors: their truth is the same
                        original.rows = truth
                    for step in plan(sweep, dim):
                        backend, index, encoding, payload, queries_params, why = step
                        if why:
                            if why not in noted:
                                noted.add(why)
                                say(f"note: skipping {backend} {index} {encoding}: {why}")
                            continue
                        configs = {}
                        for key, config in _run_configs(sweep, dataset, method, dims, dim,
                                                        backend, index, encoding, payload,
                                                        queries_params):  # fmt: skip
                            if results.has(key, inputs, levels):
                                bar.update(1)
                            else:
                                configs[key] = config
                        if not configs:
                            continue
                        bar.set_postfix_str(f"{dataset.name} {method} {dim} {backend} {encoding}")
                        options = _options(backend, servers, stack)
                        runs = measure(backend, options, workdir, configs, corpus, queries,
                                       dataset, (truth, original), sweep)  # fmt: skip
                        with contextlib.closing(runs):  # its collection is dropped here
                            for key, config, measured in runs:
                                results.add({"key": key, **config, **measured, **stamp,
                                             "inputs": inputs})  # fmt: skip
                                bar.update(1)
    return results.records


@contextlib.contextmanager
def _workdir(parent: str | Path | None) -> Iterator[Path]:
    """The run's scratch folder (collections of the embedded engines), removed at the end;
    first, those of bench runs killed before they could remove theirs (SIGKILL, SIGTERM, a
    power cut: their process is gone) in the same place."""
    import shutil

    from smec_index.artifact import orphaned, owned_tempdir

    parent = Path(parent or tempfile.gettempdir())
    for left in parent.glob("smec-bench-*"):
        if left.is_dir() and not left.is_symlink() and orphaned(left):
            shutil.rmtree(left, ignore_errors=True)
    workdir = owned_tempdir("smec-bench-", parent)
    try:
        yield workdir
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _run_configs(sweep, dataset, method, dims, dim, backend, index, encoding, payload,
                 queries_params):  # fmt: skip
    """``(key, config)`` of each run one built index serves: the full configuration that
    identifies a run (a stored key is skipped unless ``--force``). ``payload`` is in it
    only when the points carry one, so runs stored before it existed keep their keys."""
    hnsw = index == "hnsw"
    trained_on = _trained_on(method, dims, dataset)  # one chain for every run of the method
    for query in queries_params:
        config = {"dataset": dataset.name, "method": method, "dim": dim, "backend": backend,
                  "index": index, "encoding": encoding, "ef_search": query.get("ef_search"),
                  "M": sweep.M if hnsw else None,
                  "ef_construction": sweep.ef_construction if hnsw else None,
                  **({"nlist": sweep.nlist, **query} if index == "ivf" else {}),
                  "n_docs": len(dataset.data.corpus.ids), "n_queries": len(dataset.query_ids),
                  **_variant(method, dim, dataset),
                  **({"payload": payload} if payload != "none" else {}),
                  **({"embeddings": Path(sweep.embeddings).name} if sweep.embeddings else {}),
                  **trained_on}  # fmt: skip
        yield run_key(config), config


# Methods whose artifact also holds a full-dim adapted space (SMEC.adapted_projection): at the
# original dim they are measured with it, the same training as their reduced dims.
ADAPTED = ("smec", "mrl")


def check_ivf(sweep: Sweep, name: str, n_docs: int) -> None:
    """Inverted-file settings that cannot work on a dataset: refused before anything is
    trained (k-means needs a point per list; probing more lists than there are repeats)."""
    if sweep.nlist > n_docs:
        raise SmecError(
            f"--nlist {sweep.nlist} is more lists than {name} has documents ({n_docs}); "
            "lower it (about sqrt(documents) is usual)"
        )
    beyond = [n for n in sweep.nprobe if n > sweep.nlist]
    if beyond:
        raise SmecError(f"--nprobe {beyond[0]} is more than --nlist {sweep.nlist}; lower it")
    pq = [e for e in sweep.encodings if e.startswith("pq")]
    if pq and n_docs < 256:
        raise SmecError(
            f"{name} has {n_docs} documents: ivf with {pq[0]} trains 256 codes per "
            "sub-vector, which needs at least 256; leave pq out of the ivf sweep"
        )


def check_room(sweep: Sweep, datasets: list[Dataset]) -> None:
    """The working folder holds one run's index at a time: the largest of them must fit
    there, found out before anything is trained or measured."""
    from smec_index.connectors.storage import check_free_space, estimated_bytes

    need = max(
        estimated_bytes(family(backend), len(d.data.corpus.ids), d.data.dim, 16 * 8, 0)
        for d in datasets
        for backend in sweep.backends
    )
    workdir = Path(sweep.workdir) if sweep.workdir is not None else Path(tempfile.gettempdir())
    check_free_space(workdir, need, "point TMPDIR (or the sweep's workdir) at a disk with room")


def _dims(sweep: Sweep, dataset: Dataset, method: str) -> list[int]:
    """``none``: the original dim only; every projection: the dims below it, and for
    :data:`ADAPTED` methods the original dim too (their full-dim adapter, which comes with
    training to some lower dim)."""
    full = dataset.data.dim
    dims = sweep.dims or [full]
    if method == "none":
        return [full] if full in dims else []
    reduced = [d for d in dims if d < full]
    adapted = [full] if full in dims and reduced and method in ADAPTED else []
    return adapted + reduced


def _trained_on(method: str, dims: list[int], dataset: Dataset) -> dict[str, Any]:
    """A trained method's chain of dims, part of a run's identity: the same dim trained in
    another chain is another projection (and another run), never a stored one reused."""
    from smec_index.compressors.registry import TRAINED

    if method not in TRAINED:
        return {}
    from smec_index.compressors import make_compressor

    chain = {"trained_dims": _reduced(dims, dataset)}
    compressor = make_compressor(method, chain["trained_dims"], progress=False)
    data = dataset.data
    # SMEC's lead-in stage (trained with qrels, as here) is part of the chain too; named only
    # where there is one, so runs trained without it keep their stored keys.
    lead = getattr(compressor, "lead_in_dim", lambda *_: None)(data.dim, len(data.corpus.ids), True)
    return {**chain, "lead_in": lead} if lead else chain


def _reduced(dims: list[int], dataset: Dataset) -> list[int]:
    """The dims a method trains: those below the original, largest first."""
    return sorted({d for d in dims if d < dataset.data.dim}, reverse=True)


def _variant(method: str, dim: int, dataset: Dataset) -> dict[str, Any]:
    """Marks a full-dim adapter run (absent elsewhere, so other runs keep their keys)."""
    return {"full_dim_adapter": True} if method != "none" and dim == dataset.data.dim else {}


def _project(projection, dataset: Dataset, queries: np.ndarray, dim: int):
    corpus = np.asarray(dataset.data.corpus.vectors, dtype=np.float32)
    if projection is not None and dim == dataset.data.dim:
        matrix = projection.adapted_projection()  # only ADAPTED methods get here
        corpus, queries = corpus @ matrix, queries @ matrix
    elif projection is not None:
        corpus, queries = projection.transform(corpus, dim), projection.transform(queries, dim)
    return normalize(corpus).astype(np.float32), normalize(queries).astype(np.float32)


def _options(backend: str, servers: dict, stack: contextlib.ExitStack) -> dict[str, Any]:
    if backend != "milvus-server":
        return {}
    if backend not in servers:
        from smec_index.servers.milvus_standalone import milvus_standalone

        base = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="milvus-")))
        server = stack.enter_context(milvus_standalone(base, timeout=120))
        servers[backend] = {"uri": server.uri, "storage": str(server.storage)}
    return servers[backend]


class _OriginalTruth:
    """The exact top 10 of each query over the dataset's original vectors, found once per
    dataset and only when a run needs it (a sweep whose runs are all stored never does)."""

    def __init__(self, dataset: Dataset, queries: np.ndarray):
        self.dataset, self.queries, self.rows = dataset, queries, None

    def get(self) -> np.ndarray:
        if self.rows is None:
            corpus, queries = _project(None, self.dataset, self.queries, self.dataset.data.dim)
            self.rows = exact_search(corpus, queries, K)[1]
        return self.rows


def measure(backend, options, workdir, configs, corpus, queries, dataset, truths, sweep):
    """Build one collection and measure each of ``configs`` on it; ``truths``: the exact
    top 10 in this dim's space and the :class:`_OriginalTruth` of the original vectors."""
    """Build one index for ``configs`` (runs that differ in ``ef_search`` or ``nprobe``
    only) and measure each run's searches on it, yielding ``(key, config, measured)`` as each
    one finishes. Search parameters are set per call, so a sweep over them builds the index
    once. The collection is dropped when the generator finishes or is closed."""
    from smec_index.connectors import IndexSpec, open_connector

    first = next(iter(configs.values()))
    dim, index, encoding = first["dim"], first["index"], first["encoding"]
    kind, params = index_spec(backend, index, encoding, dim)
    if index == "hnsw":
        params.update({"M": sweep.M, "ef_construction": sweep.ef_construction,
                       "ef_search": first["ef_search"]})  # fmt: skip
    if index == "ivf":
        params.update({"nlist": sweep.nlist, "nprobe": first["nprobe"]})
    ids = dataset.data.corpus.ids
    if first.get("payload") == "corpus":  # as build stores them
        from smec_index.build import corpus_payloads

        payloads = corpus_payloads(dataset.data, True)
    else:
        payloads = [{} for _ in ids]
    name = f"bench_{next(iter(configs))}"
    with open_connector(family(backend), data_dir=workdir / backend, **options) as connector:
        started = time.perf_counter()
        connector.create(name, IndexSpec(dim, metric="cosine", index=kind, params=params),
                         overwrite=True)  # fmt: skip
        try:
            for first_row in range(0, len(ids), ADD_BATCH):
                last = min(len(ids), first_row + ADD_BATCH)
                connector.add(name, ids[first_row:last], corpus[first_row:last],
                              payloads[first_row:last])
            connector.flush(name)
            build_seconds = time.perf_counter() - started
            sizes = connector.sizes(name)
            each = {c: per_client(sweep.latency_queries, c) for c in sweep.concurrency}
            for key, config in configs.items():
                query = {p: config[p] for p in ("ef_search", "nprobe") if config.get(p)}
                searcher = connector.searcher(name, query)
                search = functools.partial(searcher.search, k=K, normalized=True)
                found = search(queries)[0].tolist()
                # The engine's own call on the same index, in the same run, query by query
                # beside the public path (so both meet the same machine): what the path
                # adds is p50_ms - engine_p50_ms.
                raw = getattr(connector.backend, "raw_engine", lambda *_: None)(
                    name, searcher.params)  # fmt: skip
                raw = None if raw is None else functools.partial(raw, k=K)
                single, engine = _latencies(search, queries, sweep.latency_queries, raw)
                batch, engine_batch = _batches(search, queries, raw)
                if backend in SERVERS:  # clients as processes, as a server's clients are
                    client = ClientSpec(family(backend), options, name, query)
                    concurrency = {str(c): _processes(client, queries, c, n)
                                   for c, n in each.items()}  # fmt: skip
                else:
                    concurrency = {str(c): _concurrent(search, queries, c, n)
                                   for c, n in each.items()}  # fmt: skip
                yield key, config, {
                    "bytes_per_vector": bytes_per_vector(encoding, dim),
                    "rescored_from_float32": rescored(family(backend), encoding),
                    "index_bytes": sizes.index_bytes,
                    "total_bytes": sizes.total_bytes,
                    "size_method": sizes.method,
                    **_quality(found, truths, ids, dataset),
                    "timed_layer": f"Searcher.search ({searcher.layer})",
                    "p50_ms": round(float(np.percentile(single, 50)) * 1e3, 4),
                    "engine_p50_ms": None if engine is None
                    else round(float(np.percentile(engine, 50)) * 1e3, 4),
                    "batch_ms": round(batch * 1e3, 3),
                    "engine_batch_ms": None if engine_batch is None
                    else round(engine_batch * 1e3, 3),
                    "batch_queries": min(len(queries), BATCH_QUERIES),
                    "p95_ms": round(float(np.percentile(single, 95)) * 1e3, 4),
                    "p99_ms": round(float(np.percentile(single, 99)) * 1e3, 4),
                    "qps": round(len(single) / float(np.sum(single)), 1),
                    "concurrency": concurrency,
                    "concurrency_per_client": {str(c): n for c, n in each.items()},
                    "concurrency_mode": "client processes"
                    if backend in SERVERS
                    else "threads in one process",
                    "build_seconds": round(build_seconds, 3),
                    # every query of an exhaustive float32 index reads every vector once
                    "scan_gb_per_s": round(len(single) / float(np.sum(single)) * corpus.nbytes
                                           / 1e9, 3)
                    if index == "flat" and encoding == "float32"
                    else None,
                }  # fmt: skip
        except BaseException:  # the first error is the one to report, not the clean-up's
            with contextlib.suppress(Exception):
                connector.drop(name)
            raise
        connector.drop(name)


def _quality(found, truths, ids, dataset: Dataset) -> dict[str, float | None]:
    own, original = (recall_vs_exact(found, [[ids[r] for r in row if r >= 0] for row in rows], K)
                     for rows in (truths[0], truths[1].get()))  # fmt: skip
    ndcg = None
    if dataset.qrels:
        judged = [(f, dataset.qrels[q]) for q, f in zip(dataset.query_ids, found, strict=True)
                  if q in dataset.qrels]  # fmt: skip
        ndcg = statistics.fmean(ndcg_at_k(f, rels, K) for f, rels in judged)
    return {"ndcg@10": None if ndcg is None else round(ndcg, 4), "recall@10": round(own, 4),
            "recall@10_original": round(original, 4)}


def _latencies(
    search: Callable, queries: np.ndarray, n: int, raw: Callable | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Seconds of ``n`` single-query searches and, with ``raw``, of the engine's own call on
    each same query beside it (paired, so a noisy moment hits both). Which of the two goes
    first alternates: the second search of a query finds its graph nodes in cache."""
    picked = [q[None, :] for q in queries[np.arange(n + WARMUP) % len(queries)]]
    for one in picked[:WARMUP]:
        search(one)
        if raw is not None:
            raw(one)
    times, engine = np.empty(n), np.empty(n)
    calls = [(search, times)] + ([] if raw is None else [(raw, engine)])
    for i, one in enumerate(picked[WARMUP:]):
        for call, into in calls if i % 2 == 0 else calls[::-1]:
            started = time.perf_counter()
            call(one)
            into[i] = time.perf_counter() - started
    return times, (None if raw is None else engine)


BATCH_QUERIES, BATCH_ROUNDS = 300, 7


def _batches(
    search: Callable, queries: np.ndarray, raw: Callable | None
) -> tuple[float, float | None]:
    """Median seconds of one batched search of the first :data:`BATCH_QUERIES` queries
    through the public path and, with ``raw``, through the engine's own call, alternated."""
    batch = np.ascontiguousarray(queries[:BATCH_QUERIES])
    search(batch)  # warm
    if raw is not None:
        raw(batch)
    times, engine = [], []
    for _ in range(BATCH_ROUNDS):
        started = time.perf_counter()
        search(batch)
        times.append(time.perf_counter() - started)
        if raw is not None:
            started = time.perf_counter()
            raw(batch)
            engine.append(time.perf_counter() - started)
    return statistics.median(times), (statistics.median(engine) if engine else None)


# Searches each concurrent client makes at least, however many clients share a level.
MIN_PER_CLIENT = 50


def per_client(latency_queries: int, clients: int) -> int:
    """Each level of concurrency searches ``latency_queries`` queries in all, split among its
    clients (at least :data:`MIN_PER_CLIENT` each), so measuring 8 clients does not cost 8
    times measuring one."""
    return max(latency_queries // clients, MIN_PER_CLIENT)


# Backends reached over the network: their concurrent clients are processes of their own.
SERVERS = ("milvus-server",)


@dataclass(frozen=True)
class ClientSpec:
    """What a client process needs to open the collection and search it."""

    backend: str
    options: dict[str, Any]
    collection: str
    params: dict[str, int]


def _client_process(spec: ClientSpec, queries, n: int, slot: int, gate, results) -> None:
    """One client: connect, warm up, wait for the others, search ``n`` queries one at a time;
    puts ``(slot, start, end, latencies)`` (``perf_counter``: one clock for every process on
    Linux) or ``(slot, error)``."""
    try:
        from smec_index.connectors import open_connector

        with open_connector(spec.backend, **spec.options) as connector:
            picked = queries[(np.arange(n) + slot * 7919) % len(queries)]
            for q in picked[:5]:
                connector.search(spec.collection, q[None, :], K, spec.params)
            gate.wait(timeout=300)
            began, times = time.perf_counter(), []
            for q in picked:
                started = time.perf_counter()
                connector.search(spec.collection, q[None, :], K, spec.params)
                times.append(time.perf_counter() - started)
            results.put((slot, began, time.perf_counter(), times))
    except BaseException as exc:  # noqa: BLE001 - reported by the parent, one line
        gate.abort()  # the others stop waiting for this one
        results.put((slot, " ".join(f"{type(exc).__name__}: {exc}".split())[:300]))


def _processes(spec: ClientSpec, queries: np.ndarray, clients: int, n: int):
    """``clients`` processes (spawned: no state copied from this one) each searching ``n``
    queries one at a time once all are connected and warm: QPS over the span from the first
    start to the last finish, and p99 of every search."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    gate, results = context.Barrier(clients), context.Queue()
    workers = [context.Process(target=_client_process,
                               args=(spec, queries, n, slot, gate, results), daemon=True)
               for slot in range(clients)]  # fmt: skip
    for worker in workers:
        worker.start()
    done: list[tuple] = []
    deadline = time.monotonic() + 600
    try:
        while len(done) < clients:
            try:
                done.append(results.get(timeout=5))
            except queue.Empty:
                if not any(w.is_alive() for w in workers) or time.monotonic() > deadline:
                    raise SmecError(
                        f"{clients - len(done)} bench client process(es) ended without a "
                        "result (killed, or out of memory?)"
                    ) from None
                continue
            if len(done[-1]) == 2:  # one failed: the others are stopped, not waited for
                raise SmecError(f"bench client process {done[-1][0]} failed: {done[-1][1]}")
    finally:
        for worker in workers:
            worker.join(timeout=10)
            if worker.is_alive():
                worker.kill()
    wall = max(d[2] for d in done) - min(d[1] for d in done)
    flat = np.concatenate([np.asarray(d[3]) for d in done])
    return {"qps": round(len(flat) / wall, 1),
            "p99_ms": round(float(np.percentile(flat, 99)) * 1e3, 4)}  # fmt: skip


def _concurrent(search: Callable, queries: np.ndarray, clients: int, n: int):
    """``clients`` threads each searching ``n`` queries one at a time, started together."""
    times: list[list[float]] = [[] for _ in range(clients)]
    spans: list[tuple[float, float]] = []
    errors: list[BaseException] = []
    gate = threading.Barrier(clients)

    def client(slot: int) -> None:
        picked = [q[None, :] for q in queries[(np.arange(n) + slot * 7919) % len(queries)]]
        gate.wait()
        began = time.perf_counter()
        try:
            for q in picked:
                started = time.perf_counter()
                search(q)
                times[slot].append(time.perf_counter() - started)
        except BaseException as exc:  # reported below, in the caller's thread
            errors.append(exc)
        spans.append((began, time.perf_counter()))

    threads = [threading.Thread(target=client, args=(s,)) for s in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # From the first client's start to the last one's end, as each measured them (the
    # caller's own clock reading could come late: its clients hold the GIL meanwhile).
    wall = max(end for _, end in spans) - min(start for start, _ in spans)
    if errors:
        raise errors[0]
    flat = np.concatenate([np.asarray(t) for t in times])
    return {"qps": round(len(flat) / wall, 1),
            "p99_ms": round(float(np.percentile(flat, 99)) * 1e3, 4)}  # fmt: skip
