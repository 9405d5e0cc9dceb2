"""Migrating a Milvus collection on a real Milvus 2.3.5 standalone server.

    python -m bench.migrate --n 1000000 --n 250000

Starts the server (127.0.0.1, files in a temp dir), creates a collection with pymilvus the
way a user would (INT64 key, 384-d vectors of intrinsic rank 48, a title and a year), then
runs ``smec-index migrate --dim 128`` on the same server in a child process and records:
its wall time, the streaming throughput (points read, projected and written per second,
from the progress file's timestamps, so index building and verification are apart), and
its peak RSS (``ru_maxrss`` of the child). Writes ``bench/results/milvus-migrate.jsonl``
and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.results import RESULTS_DIR, read_records, write_records
from smec_index.bench.plots import line_plot
from smec_index.synthetic import synthetic_vectors

DIM = 384


def make_source(uri: str, n: int) -> float:
    from pymilvus import DataType, MilvusClient

    client = MilvusClient(uri=uri)
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("pk", DataType.INT64, is_primary=True)
    schema.add_field("emb", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("title", DataType.VARCHAR, max_length=64)
    schema.add_field("year", DataType.INT64)
    index = client.prepare_index_params()
    index.add_index("emb", index_type="IVF_FLAT", metric_type="COSINE", params={"nlist": 1024})
    name = f"docs_{n}"
    client.create_collection(name, schema=schema, index_params=index)
    started = time.perf_counter()
    step = 20_000
    for first in range(0, n, step):
        vectors = synthetic_vectors(min(step, n - first), DIM, rank=48, noise=0.05, seed=first)
        client.insert(
            name,
            [
                {"pk": first + i, "emb": v, "title": f"document {first + i}", "year": 2000 + i % 25}
                for i, v in enumerate(vectors.tolist())
            ],
        )
    client.flush(name)
    client.close()
    return time.perf_counter() - started


def run(n: int, uri: str, data_dir: Path) -> dict:
    seconds_to_make = make_source(uri, n)
    command = [sys.executable, "-m", "smec_index.cli", "migrate", "--backend", "milvus",
               "--uri", uri, "--collection", f"docs_{n}", "--dim", "128", "--data-dir",
               str(data_dir), "--batch-size", "5000", "--checkpoint-rows", "100000",
               "--min-recall", "0.5", "--json", "--quiet"]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if done.returncode != 0:
        raise SystemExit(done.stderr[-2000:])
    summary = json.loads(done.stdout)
    stream = json.loads((data_dir / "migrations" / f"milvus-docs_{n}_128.json").read_text())
    return {
        "dataset": f"synthetic-{n}",
        "count": summary["count"],
        "source_dim": DIM,
        "dim": 128,
        "make_seconds": round(seconds_to_make, 1),
        "migrate_seconds": round(wall, 1),
        "stream_seconds": stream.get("stream_seconds"),
        "stream_vectors_per_s": round(n / stream["stream_seconds"])
        if stream.get("stream_seconds")
        else None,
        "migrate_vectors_per_s": round(n / wall),
        "writers": summary.get("writers"),
        "peak_rss_mib": round(max(peak_kib, before) / 1024, 1),
        "recall@10": summary["recall@10"],
        "verified": summary["verified"],
    }


def report(path: Path) -> str:
    rows = read_records(path)
    lines = [
        "| points | writers | migrate s (all) | vectors/s overall | stream s | vectors/s "
        "streamed | peak RSS MiB | recall@10 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['count']:,} | {r['writers']} | {r['migrate_seconds']} | "
            f"{r['migrate_vectors_per_s']:,} | {r['stream_seconds']} | "
            f"{r['stream_vectors_per_s']:,} | {r['peak_rss_mib']} | {r['recall@10']} |"
        )
    text = (
        "Milvus 2.3.5 standalone, 384 -> 128 dims on the same server\n\n" + "\n".join(lines) + "\n"
    )
    path.with_suffix(".md").write_text(text)
    counts = [r["count"] for r in rows]
    line_plot(
        {
            "peak RSS of the migrate process (MiB)": (counts, [r["peak_rss_mib"] for r in rows]),
            "streamed (vectors/s / 10)": (counts, [r["stream_vectors_per_s"] / 10 for r in rows]),
        },
        path.with_suffix(".png"),
        "Milvus 2.3.5: migrate 384 -> 128 dims, memory vs collection size",
        "points in the collection",
        "MiB, or vectors/s / 10",
        logx=True,
    )
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, action="append", required=True)
    args = parser.parse_args()
    from smec_index.servers.milvus_standalone import milvus_standalone

    records = []
    with tempfile.TemporaryDirectory(prefix="milvus-migrate-") as scratch:
        with milvus_standalone(Path(scratch) / "server", timeout=120) as server:
            for n in args.n:
                records.append(run(n, server.uri, Path(scratch) / f"data-{n}"))
                print(json.dumps(records[-1]), flush=True)
    path = write_records(RESULTS_DIR / "milvus-migrate.jsonl", records)
    print(report(path))


if __name__ == "__main__":
    main()
