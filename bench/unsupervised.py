"""Compression without qrels: SMEC from the corpus alone and from a query log, against PCA.

    python -m bench.unsupervised --dataset ../shared/data/nfcorpus

A team compressing an existing collection usually has no judgements, but often has a log of
real queries. This trains ``smec-index train --unsupervised`` twice on one dataset: on the
corpus alone, and with ``--queries`` set to the vectors of the train split's queries, saved as
a plain ``.npy`` log (their qrels are never read). Both are scored on the test split beside PCA.

Writes ``bench/results/<dataset>-unsupervised.{jsonl,md,png}``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from bench.results import RESULTS_DIR, write_records
from smec_index.bench.plots import line_plot, markdown_table
from smec_index.cli import main as cli
from smec_index.compressors import load_compressor, make_compressor
from smec_index.data import load_retrieval_data, read_qrels
from smec_index.evaluate import evaluate_dims

DIMS = [128, 64, 32]


def _train(dataset: Path, out: Path, *extra: str) -> None:
    args = ["train", "--dataset", str(dataset), "--method", "smec", "--unsupervised"]
    args += ["--dims", ",".join(map(str, DIMS)), "--out", str(out), "--quiet", *extra]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    if result.exit_code != 0:
        raise SystemExit(result.output)
    print(result.output.strip())


def run(dataset: Path, out: Path) -> str:
    data = load_retrieval_data(dataset)
    test = data.qrels("test")
    # The log: which queries the train split has, as vectors only (no judgement is read).
    logged = sorted(q for q in read_qrels(data.dataset.qrels_path("train")) if q in data.queries)
    rows = {"PCA": make_compressor("pca", DIMS).fit(data)}
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "log.npy"
        np.save(log, data.queries.take(logged))
        _train(dataset, Path(tmp) / "corpus")
        _train(dataset, Path(tmp) / "log", "--queries", str(log))
        rows["SMEC, corpus alone"] = load_compressor(Path(tmp) / "corpus")
        rows[f"SMEC, log of {len(logged)} queries"] = load_compressor(Path(tmp) / "log")
        records = []
        for name, compressor in rows.items():
            scores = evaluate_dims(data, test, compressor, DIMS)
            kept = getattr(compressor, "info", {}).get("selection", {})
            records += [
                {
                    "dataset": data.dataset.name,
                    "variant": name,
                    "dim": d,
                    "kept": kept.get(str(d), {}).get("kept", "pca" if name == "PCA" else None),
                    **scores[d],
                }
                for d in DIMS
            ]
    write_records(out, records)
    line_plot(
        {name: (DIMS, [r["ndcg@10"] for r in records if r["variant"] == name]) for name in rows},
        out.with_suffix(".png"),
        f"{data.dataset.name} test without qrels: nDCG@10 by dimension",
        "dimension",
        "nDCG@10",
        logx=True,
    )
    text = (
        f"nDCG@10 on {data.dataset.name} test; no qrels used in training. Which projection "
        "each dim kept (trained, or PCA where training did not beat it on held-out data):\n\n"
        + markdown_table(records, "variant", "dim", "ndcg@10", row_order=list(rows))
        + "\n"
        + markdown_table(records, "variant", "dim", "kept", fmt="{}", row_order=list(rows))
    )
    out.with_suffix(".md").write_text(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", type=Path, default=Path("../shared/data/nfcorpus"))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    out = args.out or RESULTS_DIR / f"{args.dataset.name}-unsupervised.jsonl"
    print(run(args.dataset, out))
    print(f"raw: {out}\nplot: {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
