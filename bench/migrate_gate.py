"""The migration gate's figure on real embeddings: what ``--dry-run`` predicts and what the
run measures, PCA at each dim.

    python -m bench.migrate_gate

For SciFact and NFCorpus (MiniLM, 384-d), the corpus goes into a qdrant-client local
collection made the way a user would (integer ids, the BEIR id as payload); then
``smec-index migrate --dry-run`` at 256, 128, 64 and 32 dims, and the real migration at the
same dims. The gate is recall@10 of the copy's search against the source's own search, the
first 256 points as queries (``smec_index.migration.verify``). Writes
``bench/results/migrate-gate.jsonl``, ``.md`` and ``.png``; the default ``--min-recall``
is chosen from this table.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from click.testing import CliRunner

from bench.results import RESULTS_DIR, write_records
from smec_index.bench.plots import line_plot
from smec_index.cli import main as cli
from smec_index.data import load_retrieval_data
from smec_index.migration import DEFAULT_MIN_RECALL

DIMS = (256, 128, 64, 32)


def make_source(folder: Path, dataset: Path) -> int:
    from qdrant_client import QdrantClient, models

    corpus = load_retrieval_data(dataset).corpus
    client = QdrantClient(path=str(folder))
    client.create_collection("docs", vectors_config=models.VectorParams(
        size=corpus.dim, distance=models.Distance.COSINE))  # fmt: skip
    for first in range(0, len(corpus.ids), 2000):
        ids = list(range(first, min(first + 2000, len(corpus.ids))))
        client.upsert("docs", models.Batch(
            ids=ids, vectors=corpus.vectors[ids].tolist(),
            payloads=[{"doc": corpus.ids[i]} for i in ids]))  # fmt: skip
    client.close()
    return len(corpus.ids)


def migrate(folder: Path, data: Path, dim: int, *extra: str) -> dict:
    args = ["migrate", "--backend", "qdrant", "--path", str(folder), "--collection", "docs",
            "--dim", str(dim), "--data-dir", str(data), "--min-recall", "0", "--quiet",
            "--json", *extra]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    if result.exit_code != 0:
        raise SystemExit(result.output)
    return json.loads(result.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", default="../shared/data", help="folder with the datasets")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args()
    records = []
    for name in ("scifact", "nfcorpus"):
        with tempfile.TemporaryDirectory() as tmp:
            folder, data = Path(tmp) / "qdrant", Path(tmp) / "smec-data"
            count = make_source(folder, Path(args.shared) / name)
            for dim in DIMS:
                planned = migrate(folder, data, dim, "--dry-run")
                done = migrate(folder, data, dim)
                records.append({"dataset": name, "points": count, "dim": dim,
                                "dry_run_recall@10": planned["recall@10"],
                                "recall@10": done["recall@10"],
                                "schema_diff": done["schema_diff"]})  # fmt: skip
                print(json.dumps(records[-1]))
    write_records(args.out / "migrate-gate.jsonl", records)
    lines = ["# The migration gate on real embeddings (PCA, qdrant-client local mode)", "",
             "`python -m bench.migrate_gate`: recall@10 of the copy's search against the "
             "source's own search (256 source points as queries), as `--dry-run` predicts it "
             f"and as the run measures it. Default `--min-recall`: {DEFAULT_MIN_RECALL}.", "",
             "| dataset | points | dim | dry run | run |", "|---|---|---|---|---|"]  # fmt: skip
    lines += [f"| {r['dataset']} | {r['points']} | {r['dim']} | {r['dry_run_recall@10']:.4f} | "
              f"{r['recall@10']:.4f} |" for r in records]  # fmt: skip
    (args.out / "migrate-gate.md").write_text("\n".join(lines) + "\n")
    series = {f"{name} ({kind})": ([r["dim"] for r in records if r["dataset"] == name],
                                   [r[key] for r in records if r["dataset"] == name])
              for name in ("scifact", "nfcorpus")
              for kind, key in (("dry run", "dry_run_recall@10"),
                                ("run", "recall@10"))}  # fmt: skip
    line_plot(series, args.out / "migrate-gate.png", "Migration gate: recall@10 vs the source",
              "dim", "recall@10", logx=True,
              reference=(DEFAULT_MIN_RECALL, "default --min-recall"))  # fmt: skip
    print("\n".join(lines))


if __name__ == "__main__":
    main()
