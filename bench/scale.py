"""Scale benchmark: what the dimension costs an ANN index, on seeded synthetic embeddings.

    python -m bench.scale --n 200000          # --n 1000000 fits this machine too (slower)

A corpus of ``n`` unit vectors (384-d, intrinsic rank 48) and 1,000 queries from the same
distribution. PCA, fitted on the corpus, projects both to each dim; every backend builds an
HNSW index per dim. Reported per (backend, dim), in one run: build seconds, index_bytes (as
the connector contract defines it), single-query p50/p95/p99 and QPS, recall@10 against
exact search in the same space (index quality) and against exact search at 384 dims (what
compression costs).
Writes ``bench/results/synthetic-scale.jsonl``, ``.md`` and ``.png``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from bench.results import RESULTS_DIR, read_records, write_records
from smec_index.bench.plots import line_plot
from smec_index.compressors import make_compressor
from smec_index.connectors import open_connector
from smec_index.data import Embeddings, RetrievalData
from smec_index.index import CompressedIndex
from smec_index.metrics import recall_vs_exact
from smec_index.synthetic import synthetic_vectors
from smec_index.vectors import exact_search

HNSW = {"M": 16, "ef_construction": 100, "ef_search": 64}
BACKENDS = {
    "faiss-hnsw": ("faiss", {}),
    "hnswlib": ("hnswlib", {}),
    "qdrant-edge": ("qdrant", {"mode": "edge"}),
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


def recall(found: list[list[str]], exact_rows: np.ndarray, ids: list[str]) -> float:
    return recall_vs_exact(found, [[ids[r] for r in row if r >= 0] for row in exact_rows], 10)


def run(n: int, dims: list[int], backends: list[str], seed: int) -> list[dict]:
    vectors = synthetic_vectors(n + 1000, 384, rank=48, seed=seed)
    corpus, queries = vectors[:n], vectors[n:]
    ids = [f"d{i}" for i in range(n)]
    data = RetrievalData(
        Embeddings(ids, corpus), Embeddings([f"q{i}" for i in range(1000)], queries)
    )
    pca = make_compressor("pca", [d for d in dims if d < 384]).fit(data)
    _, truth_384 = exact_search(corpus, queries, 10)
    records = []
    with tempfile.TemporaryDirectory(prefix="smec-scale-") as data_dir:
        for name in tqdm(backends, desc="backends"):
            backend, options = BACKENDS[name]
            for dim in dims:
                connector = open_connector(backend, data_dir=data_dir, **options)
                index = CompressedIndex(connector, f"scale_{dim}", pca if dim < 384 else None, dim)
                stored = index.project(corpus)
                started = time.perf_counter()
                index.create(HNSW, "hnsw", overwrite=True)
                connector.add(index.collection, ids, stored, batch_size=10_000)
                count = connector.count(index.collection)  # builds / flushes where lazy
                build = time.perf_counter() - started
                times = latencies(index, queries, 10)
                found, _ = index.search(queries, 10)
                _, truth = exact_search(stored, index.project(queries), 10)
                records.append(
                    {
                        "dataset": f"synthetic-{n}",
                        "target": name,
                        "dim": dim,
                        "count": count,
                        "build_seconds": build,
                        "index_bytes": connector.sizes(index.collection).index_bytes,
                        "p50_ms": 1e3 * float(np.percentile(times, 50)),
                        "p95_ms": 1e3 * float(np.percentile(times, 95)),
                        "p99_ms": 1e3 * float(np.percentile(times, 99)),
                        "qps": float(len(times) / times.sum()),
                        "recall@10_same_dim": recall(found, truth, ids),
                        "recall@10_vs_384": recall(found, truth_384, ids),
                    }
                )
                connector.drop(index.collection)
                connector.close()
    return records


def report(path: Path) -> str:
    records = read_records(path)
    head = [
        "build s",
        "index MiB",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "QPS",
        "recall@10 same dim",
        "recall@10 vs 384-d",
    ]
    lines = [
        f"{records[0]['dataset']} x 384-d, HNSW M16 efC100 ef64",
        "",
        "| backend @dim | " + " | ".join(head) + " |",
        "|---|" + "---|" * len(head),
    ]
    for r in records:
        memory = r["index_bytes"] / 2**20 if r["index_bytes"] else float("nan")
        lines.append(
            f"| {r['target']} @{r['dim']} | {r['build_seconds']:.1f} | {memory:.1f} | "
            f"{r['p50_ms']:.3f} | {r['p95_ms']:.3f} | {r['p99_ms']:.3f} | {r['qps']:.0f} | "
            f"{r['recall@10_same_dim']:.4f} | {r['recall@10_vs_384']:.4f} |"
        )
    targets = list(dict.fromkeys(r["target"] for r in records))
    line_plot(
        {
            t: (
                [r["dim"] for r in records if r["target"] == t],
                [r["index_bytes"] / 2**20 for r in records if r["target"] == t],
            )
            for t in targets
        },
        path.with_suffix(".png"),
        f"{records[0]['dataset']}: index_bytes by dimension",
        "dimension",
        "index_bytes (MiB)",
        logx=True,
    )
    text = "\n".join(lines) + "\n"
    path.with_suffix(".md").write_text(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--dims", default="384,128,64,32")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "synthetic-scale.jsonl")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    if not args.report_only:
        records = run(
            args.n, [int(d) for d in args.dims.split(",")], args.backends.split(","), args.seed
        )
        write_records(args.out, records)
    print(report(args.out))
    print(f"raw: {args.out}\nplot: {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
