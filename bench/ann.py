"""ANN benchmark: each backend x each dim, on a BEIR dataset's test queries.

    python -m bench.ann --dataset ../shared/data/scifact --dims 384,128,64

For every (backend, dim) it builds the collection with ``smec-index build``'s code path
(SMEC artifact; 384 = the original vectors), then reports, in one run:

* nDCG@10 through the ANN index and by exact search in the same space, and recall@10 of
  the index against exact search;
* single-query latency p50 / p95 / p99 (``time.perf_counter`` around each search, after a
  warm-up) and the QPS that gives;
* build time (create + insert + flush/index) and ``index_bytes`` / ``total_bytes`` as the
  connector contract defines them (the same meaning on every backend).

The Milvus standalone server is started (and stopped) by the benchmark itself.
Writes ``bench/results/<dataset>-ann.jsonl``, ``.md`` and ``.png``.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from bench.results import RESULTS_DIR, read_records, write_records
from smec_index.bench.plots import line_plot, markdown_table
from smec_index.build import BuildRequest, build, default_artifact
from smec_index.data import load_retrieval_data
from smec_index.evaluate import evaluate_transform
from smec_index.index import CompressedIndex

HNSW = {"M": 16, "ef_construction": 200, "ef_search": 128}
# name -> (backend, connector options, index kind, params)
TARGETS = {
    "faiss-hnsw": ("faiss", {}, "hnsw", HNSW),
    "hnswlib": ("hnswlib", {}, "hnsw", HNSW),
    "qdrant-edge": ("qdrant", {"mode": "edge"}, "hnsw", HNSW),
    "qdrant-edge-int8": ("qdrant", {"mode": "edge"}, "hnsw", {**HNSW, "quantization": "scalar"}),
    "milvus-lite": ("milvus", {}, "hnsw", HNSW),
    "milvus-server": ("milvus", {"uri": None}, "hnsw", HNSW),
}


def latencies(index: CompressedIndex, queries: np.ndarray, k: int, warmup: int = 20) -> np.ndarray:
    projected = index.project(queries)
    connector, collection = index.connector, index.collection
    for q in projected[:warmup]:
        connector.search(collection, q[None, :], k)
    times = np.empty(len(projected))
    for i, q in enumerate(projected):
        started = time.perf_counter()
        connector.search(collection, q[None, :], k)
        times[i] = time.perf_counter() - started
    return times


def milvus_server_options(stack: contextlib.ExitStack) -> dict:
    """Start a Milvus 2.3.5 standalone server for the stack's lifetime; its connector options
    (the URI, and its storage folder so that sizes are measured from its files)."""
    from smec_index.servers.milvus_standalone import milvus_standalone

    base = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="milvus-")))
    server = stack.enter_context(milvus_standalone(base))
    return {"uri": server.uri, "storage": str(server.storage)}


def build_request(
    dataset: Path,
    data,
    target: str,
    dim: int,
    data_dir: Path,
    artifact: Path | None,
    options: dict,
    collection: str,
    **extra,
) -> BuildRequest:
    """The build of one (target, dim): the artifact below the input dim, the original above."""
    backend, _, kind, params = TARGETS[target]
    return BuildRequest(
        dataset=dataset,
        backend=backend,
        dim=dim,
        data_dir=data_dir,
        artifact=artifact if dim != data.dim else None,
        collection=f"{collection}_{target.replace('-', '_')}_{dim}",
        index=kind,
        params=params,
        connector_options=options,
        overwrite=True,
        progress=False,
        **extra,
    )


def run(dataset: Path, dims: list[int], targets: list[str], data_dir: Path) -> list[dict]:
    data = load_retrieval_data(dataset)
    test = data.qrels("test")
    queries = data.queries.take(list(test))
    records = []
    with contextlib.ExitStack() as stack:
        server = milvus_server_options(stack) if "milvus-server" in targets else {}
        compressor, artifact = default_artifact(data, dims, data_dir, print)
        for name in tqdm(targets, desc="backends"):
            backend, options, kind, params = TARGETS[name]
            options = server if "uri" in options else options
            for dim in dims:
                request = build_request(
                    dataset, data, name, dim, data_dir, artifact, options, collection="ann"
                )
                summary = build(request, say=lambda _m: None)
                index = CompressedIndex.open(backend, request.collection, data_dir, **options)
                try:
                    times = latencies(index, queries, 10)
                    exact = evaluate_transform(data, test, index.project)
                finally:
                    index.close()
                records.append(
                    {
                        "dataset": data.dataset.name,
                        "target": name,
                        "backend": backend,
                        "index": kind,
                        "params": params,
                        "dim": dim,
                        "method": "original" if dim == data.dim else compressor.method,
                        "ndcg@10": summary["ndcg@10"],
                        "exact_ndcg@10": exact["ndcg@10"],
                        "ndcg_gap": summary["ndcg@10"] - exact["ndcg@10"],
                        "recall@10": summary["recall@10"],
                        "p50_ms": 1e3 * float(np.percentile(times, 50)),
                        "p95_ms": 1e3 * float(np.percentile(times, 95)),
                        "p99_ms": 1e3 * float(np.percentile(times, 99)),
                        "qps": float(len(times) / times.sum()),
                        "build_seconds": summary["build_seconds"],
                        "index_bytes": summary["index_bytes"],
                        "total_bytes": summary["total_bytes"],
                        "bytes_method": summary["bytes_method"],
                        "count": summary["count"],
                    }
                )
    return records


def report(path: Path) -> str:
    records = read_records(path)
    for r in records:
        r["row"] = f"{r['target']} @{r['dim']}"
        r["index_mib"] = (r["index_bytes"] or float("nan")) / 2**20
        r["total_mib"] = (r["total_bytes"] or float("nan")) / 2**20
    columns = [
        "ndcg@10",
        "exact_ndcg@10",
        "ndcg_gap",
        "recall@10",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "qps",
        "build_seconds",
        "index_mib",
        "total_mib",
    ]
    lines = ["| backend @dim | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for r in records:
        cells = [
            f"{r[c]:.4f}"
            if c in ("ndcg@10", "exact_ndcg@10", "ndcg_gap", "recall@10")
            else f"{r[c]:.2f}"
            for c in columns
        ]
        lines.append(f"| {r['row']} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n\nQPS (single-query, sequential)\n\n"
    text += markdown_table(records, "target", "dim", "qps", fmt="{:.0f}")
    targets = list(dict.fromkeys(r["target"] for r in records))
    line_plot(
        {
            t: (
                [r["dim"] for r in records if r["target"] == t],
                [r["p50_ms"] for r in records if r["target"] == t],
            )
            for t in targets
        },
        path.with_suffix(".png"),
        f"{records[0]['dataset']}: p50 query latency by dimension",
        "dimension",
        "p50 latency (ms)",
        logx=True,
    )
    path.with_suffix(".md").write_text(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", type=Path, default=Path("../shared/data/scifact"))
    parser.add_argument("--dims", default="384,128,64")
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--data-dir", type=Path, default=Path("smec-data/bench"))
    parser.add_argument("--out", type=Path)
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    out = args.out or RESULTS_DIR / f"{args.dataset.name}-ann.jsonl"
    if not args.report_only:
        records = run(
            args.dataset,
            [int(d) for d in args.dims.split(",")],
            args.targets.split(","),
            args.data_dir,
        )
        write_records(out, records)
    print(report(out))
    print(f"raw: {out}\nplot: {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
