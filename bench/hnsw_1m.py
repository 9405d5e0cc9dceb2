"""1M synthetic vectors, FAISS HNSW32 and hnswlib M32 at 384 / 128 / 64 dims, each at the
smallest ef that reaches recall@10 >= 0.95 in its own space; and the roofline of exhaustive
float32 search.

    python -m bench.hnsw_1m                  # about 45 min on 2 cores, 6 GB of RAM

One run, so that the ratios compare like with like: a corpus of 1,000,000 unit vectors
(384-d, intrinsic rank 48, seeded) and 1,000 queries from the same distribution; PCA fitted
on 100k of them projects both to 128 and 64 dims. Per dim:

* exact top 10 (``IndexFlatIP``, batched) as the truth;
* per library, HNSW with M 32 and efConstruction 100 built once (FAISS ``IndexHNSWFlat``;
  hnswlib ``Index(space="ip")``, built with as many threads as FAISS's OpenMP); ef swept
  on the same index, each ef timed with 300 queries one at a time after 30 warm-up ones
  (``time.perf_counter``, one thread): recall@10 and p50; the smallest ef with recall@10 >=
  0.95 is the row of the table;
* ``index_bytes``: ``faiss.serialize_index`` of the FAISS index, the ``save_index`` file of
  hnswlib's (vectors + graph either way);
* the roofline: single-query exhaustive search (``IndexFlatIP``, 50 queries one at a time)
  reads every float32 vector once per query, so its QPS x corpus bytes is the bandwidth it
  draws; the machine's bandwidth is a numpy copy measured in the same run.

Both libraries are used directly (no connector), one process; both build with FAISS's
``omp`` thread count (2 here). Writes ``bench/results/hnsw-1m.jsonl``, ``.md`` and ``.png``
(``--out`` elsewhere).
"""

from __future__ import annotations

import argparse
import functools
import os
import tempfile
import time
from pathlib import Path

import faiss
import hnswlib
import numpy as np

from bench.results import RESULTS_DIR, read_records, write_records
from smec_index.bench.plots import line_plot, roofline_plot
from smec_index.bench.results import memory_bandwidth
from smec_index.metrics import recall_vs_exact
from smec_index.synthetic import synthetic_vectors
from smec_index.vectors import normalize

EFS = (16, 24, 32, 48, 64, 80, 96, 112, 128, 160, 192, 256, 384)
GOAL = 0.95


def timed(search, queries: np.ndarray, warmup: int) -> np.ndarray:
    """Seconds of each single-query ``search(q)`` after ``warmup`` untimed ones."""
    for q in queries[:warmup]:
        search(q[None, :])
    times = np.empty(len(queries) - warmup)
    for i, q in enumerate(queries[warmup:]):
        started = time.perf_counter()
        search(q[None, :])
        times[i] = time.perf_counter() - started
    return times


class FaissHnsw:
    """FAISS ``IndexHNSWFlat``, inner product, built with FAISS's OpenMP threads."""

    name = "faiss IndexHNSWFlat M32 efC100"

    def __init__(self, corpus: np.ndarray) -> None:
        self.index = faiss.IndexHNSWFlat(corpus.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efConstruction = 100
        self.index.add(corpus)

    def set_ef(self, ef: int) -> None:
        self.index.hnsw.efSearch = ef

    def search(self, queries: np.ndarray) -> np.ndarray:
        return self.index.search(queries, 10)[1]

    def nbytes(self) -> int:
        return int(faiss.serialize_index(self.index).size)


class HnswlibHnsw:
    """hnswlib ``Index(space="ip")``, built with as many threads as FAISS uses."""

    name = "hnswlib M32 efC100"

    def __init__(self, corpus: np.ndarray) -> None:
        self.index = hnswlib.Index(space="ip", dim=corpus.shape[1])
        self.index.init_index(max_elements=len(corpus), M=32, ef_construction=100, random_seed=0)
        threads = faiss.omp_get_max_threads()
        self.index.add_items(corpus, np.arange(len(corpus)), num_threads=threads)

    def set_ef(self, ef: int) -> None:
        self.index.set_ef(ef)

    def search(self, queries: np.ndarray) -> np.ndarray:
        return self.index.knn_query(queries, k=10, num_threads=1)[0]

    def nbytes(self) -> int:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "index.bin")
            self.index.save_index(path)
            return os.path.getsize(path)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return recall_vs_exact(found, truth, 10)


def measure(corpus: np.ndarray, queries: np.ndarray, bandwidth: float) -> list[dict]:
    """One record per library for this space."""
    dim = corpus.shape[1]
    flat = faiss.IndexFlatIP(dim)
    flat.add(corpus)
    truth = flat.search(queries, 10)[1]
    scan = timed(functools.partial(flat.search, k=10), queries[:60], 10)
    scan_qps = len(scan) / float(scan.sum())
    del flat
    roofline = {
        "flat_qps": round(scan_qps, 1),
        "flat_scan_gb_per_s": round(scan_qps * corpus.nbytes / 1e9, 2),
        "memory_gb_per_s": bandwidth,
    }
    libraries = (FaissHnsw, HnswlibHnsw)
    return [_hnsw(library, corpus, queries, truth, roofline) for library in libraries]


def _hnsw(library, corpus: np.ndarray, queries: np.ndarray, truth, roofline: dict) -> dict:
    dim = corpus.shape[1]
    started = time.perf_counter()
    hnsw = library(corpus)
    build = time.perf_counter() - started
    sweep = []
    for ef in EFS:
        hnsw.set_ef(ef)
        found = hnsw.search(queries)
        times = timed(hnsw.search, queries[:330], 30)
        sweep.append({"ef": ef, "recall@10": round(recall(found, truth), 4),
                      "p50_ms": round(float(np.percentile(times, 50)) * 1e3, 4),
                      "p99_ms": round(float(np.percentile(times, 99)) * 1e3, 4),
                      "qps": round(len(times) / float(times.sum()), 1)})  # fmt: skip
        print(library.name, dim, sweep[-1], flush=True)
        if sweep[-1]["recall@10"] >= GOAL and ef >= 64:
            break
    chosen = next((s for s in sweep if s["recall@10"] >= GOAL), sweep[-1])
    return {
        "n": len(corpus),
        "dim": dim,
        "index": library.name,
        "build_seconds": round(build, 1),
        "index_bytes": hnsw.nbytes(),
        "ef_search": chosen["ef"],
        "recall@10": chosen["recall@10"],
        "p50_ms": chosen["p50_ms"],
        "p99_ms": chosen["p99_ms"],
        "qps": chosen["qps"],
        "sweep": sweep,
        **roofline,
    }


def report(path) -> str:
    rows = sorted(read_records(path), key=lambda r: (r["index"], -r["dim"]))
    libraries = list(dict.fromkeys(r["index"] for r in rows))
    lines = [
        f"{rows[0]['n']:,} synthetic vectors (384-d, rank 48), PCA to each dim, HNSW with M 32 "
        f"and efConstruction 100, each dim at the smallest ef with recall@10 >= {GOAL}\n",
        "| index | dim | ef | recall@10 | p50 ms | p99 ms | QPS | index MiB | build s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['index']} | {r['dim']} | {r['ef_search']} | {r['recall@10']} | "
            f"{r['p50_ms']:.3f} | {r['p99_ms']:.3f} | {r['qps']:,.0f} | "
            f"{r['index_bytes'] / 2**20:.1f} | {r['build_seconds']} |"
        )
    lines.append("")
    for library in libraries:
        by_dim = {r["dim"]: r for r in rows if r["index"] == library}
        if 384 in by_dim and 64 in by_dim:
            full, small = by_dim[384], by_dim[64]
            lines.append(
                f"- {library}, 64-d / 384-d in this run: p50 latency "
                f"{small['p50_ms'] / full['p50_ms']:.3f} (goal <= 0.35), index_bytes "
                f"{small['index_bytes'] / full['index_bytes']:.3f} (goal <= 0.30)."
            )
    scans = {r["dim"]: r for r in rows}  # the exhaustive scan is measured once per dim
    lines += [
        "",
        "Exhaustive float32 search (faiss IndexFlatIP, one query at a time) against the memory "
        f"bandwidth measured in the same run (numpy copy): {rows[0]['memory_gb_per_s']} GB/s.\n",
        "| dim | exhaustive QPS | GB/s read | of bandwidth |",
        "|---|---|---|---|",
    ]
    for dim, r in sorted(scans.items(), reverse=True):
        lines.append(
            f"| {dim} | {r['flat_qps']:,.1f} | {r['flat_scan_gb_per_s']} | "
            f"{r['flat_scan_gb_per_s'] / r['memory_gb_per_s']:.0%} |"
        )
    roofline = path.with_name(path.stem + "-roofline.png")
    roofline_plot(
        {"faiss IndexFlatIP, one query at a time": (
            [r["n"] * d * 4 / 1e6 for d, r in scans.items()],
            [r["flat_qps"] for r in scans.values()])},
        rows[0]["memory_gb_per_s"], roofline,
        "1M synthetic: exhaustive float32 search vs memory bandwidth",
    )  # fmt: skip
    lines.append(f"\n![roofline](bench/results/{roofline.name})")
    text = "\n".join(lines) + "\n"
    path.with_suffix(".md").write_text(text)
    line_plot(
        {
            f"{r['index'].split()[0]} {r['dim']}-d": (
                [s["recall@10"] for s in r["sweep"]],
                [s["qps"] for s in r["sweep"]],
            )
            for r in rows
        },  # fmt: skip
        path.with_suffix(".png"),
        "1M synthetic, HNSW M32: recall@10 vs QPS (each point one ef)",
        "recall@10 against exact search in the same space",
        "QPS (single query at a time)",
        logy=True,
    )
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dims", default="384,128,64")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--out", default=str(RESULTS_DIR / "hnsw-1m.jsonl"),
                        help="results file; the .md and .png are written beside it")  # fmt: skip
    args = parser.parse_args()
    path = Path(args.out)
    if not args.report_only:
        bandwidth = memory_bandwidth()
        both = synthetic_vectors(args.n + 1000, 384, rank=48, noise=0.05, seed=0)
        corpus, queries = both[: args.n], np.ascontiguousarray(both[args.n :])
        rows = np.random.default_rng(0).choice(args.n, min(args.n, 100_000), replace=False)
        sample = corpus[rows]
        mean = sample.mean(axis=0)
        _, _, vt = np.linalg.svd(sample - mean, full_matrices=False)
        records = []
        for dim in (int(d) for d in args.dims.split(",")):
            if dim == 384:
                space_c, space_q = corpus, queries
            else:
                space_c = normalize((corpus - mean) @ vt[:dim].T).astype(np.float32)
                space_q = normalize((queries - mean) @ vt[:dim].T).astype(np.float32)
            records += measure(np.ascontiguousarray(space_c), space_q, bandwidth)
            write_records(path, records)
            del space_c
    print(report(path))


if __name__ == "__main__":
    main()
