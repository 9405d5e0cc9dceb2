"""SMEC against every baseline on one dataset: train on train qrels, report on test.

    python -m bench.compare --dataset ../shared/data/scifact --dims 128,64,32 --seeds 0,1,2
    python -m bench.compare --dataset ../shared/data/scifact --dims 128,64,32 --seeds 0,1,2 \
        --methods dive --add     # one method more, the others' runs kept

Writes ``bench/results/<dataset>-compare.jsonl`` (raw), ``.md`` (table) and ``.png`` (plot).
Hyperparameters were chosen on a held-out 20% of the *train* queries (reported here as
``val_ndcg@10``); the test split is only ever evaluated. With several ``--seeds`` every trained
method is trained once per seed (the split inside training, the initial draws and the
batches) and the tables give the mean, the spread (max - min) and the lowest seed alone (seed
0 is what ``smec-index train`` gives with its defaults): a difference smaller than the spread
is noise.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from tqdm.auto import tqdm

from bench.results import RESULTS_DIR, over_seeds, read_records, write_records
from smec_index.bench.plots import line_plot, markdown_table
from smec_index.compressors import make_compressor
from smec_index.compressors.registry import TRAINED
from smec_index.data import load_retrieval_data
from smec_index.evaluate import evaluate_dims

ORDER = ["none", "truncate", "pca", "search-adaptor", "matryoshka-adaptor", "mrl", "dive", "smec"]


def run(
    dataset: Path,
    embeddings: Path | None,
    dims: list[int],
    methods: list[str],
    seeds: list[int],
    device: str,
    artifacts: Path | None,
) -> list[dict]:
    data = load_retrieval_data(dataset, embeddings)
    train, test = data.qrels("train"), data.qrels("test")
    records = []
    full = evaluate_dims(data, test, None, [data.dim])[data.dim]
    records.append({"dataset": data.dataset.name, "method": "none", "dim": data.dim, **full})
    # Truncation and PCA draw nothing at random: one run each.
    runs = [(m, s) for m in methods for s in (seeds if m in TRAINED else seeds[:1])]
    for method, seed in tqdm(runs, desc="methods x seeds"):
        started = time.perf_counter()
        compressor = make_compressor(method, dims, seed=seed, device=device, progress=False)
        compressor.fit(data, train)
        seconds = time.perf_counter() - started
        if artifacts is not None:
            compressor.save(artifacts / (method if len(seeds) == 1 else f"{method}-seed{seed}"))
        scores = evaluate_dims(data, test, compressor, dims)
        # The held-out score each trained dim was selected on (before the refit on all of
        # train, which includes those queries: scoring the final artifact on them would not
        # be held-out any more).
        val = {int(d): v["trained"] for d, v in compressor.info.get("selection", {}).items()}
        for dim in dims:
            record = {
                "dataset": data.dataset.name,
                "method": method,
                "dim": dim,
                **scores[dim],
                "train_seconds": round(seconds, 2),
                "seed": seed,
                "settings": compressor.settings if method in TRAINED else {},
            }
            if dim in val:
                record["val_ndcg@10"] = val[dim]
            records.append(record)
    return records


def report(path: Path) -> str:
    records = read_records(path)
    full = next(r for r in records if r["method"] == "none")
    compressed = [{**r, "seed": r.get("seed", 0)} for r in records if r["method"] != "none"]
    methods = [m for m in ORDER if any(r["method"] == m for r in compressed)]
    trained = [m for m in methods if m in TRAINED]
    dims = sorted({r["dim"] for r in compressed}, reverse=True)
    seeds = sorted({r["seed"] for r in compressed if r["method"] in TRAINED})
    several = len(seeds) > 1
    over = f"mean over seeds {', '.join(map(str, seeds))}" if several else ""
    suffix = f", {over}" if several else ""

    def mean(value: str) -> list[dict]:
        return over_seeds(compressed, "method", methods, dims, value)[0]

    ndcg = mean("ndcg@10")
    text = (
        f"nDCG@10 on {full['dataset']} test (full {full['dim']}-d: {full['ndcg@10']:.4f})"
        + (
            f"{suffix} of each trained method (truncate and pca draw nothing at random)"
            if several
            else ""
        )  # fmt: skip
        + "\n\n"
        + markdown_table(ndcg, "method", "dim", "ndcg@10", row_order=methods)
    )
    if several:
        spread = over_seeds(compressed, "method", trained, dims)[1]
        first = [r for r in compressed if r["seed"] == seeds[0] or r["method"] not in TRAINED]
        defaults = " (what `smec-index train` gives with its defaults)" if seeds[0] == 0 else ""
        text += (
            "\nmax - min over the seeds (0 where a dim kept PCA in every seed)\n\n"
            + markdown_table(spread, "method", "dim", "range", row_order=trained)
            + f"\nseed {seeds[0]} alone{defaults}\n\n"
            + markdown_table(first, "method", "dim", "ndcg@10", row_order=methods)
        )
    text += f"\nrecall@10{suffix}\n\n" + markdown_table(
        mean("recall@10"), "method", "dim", "recall@10", row_order=methods
    )
    if any("val_ndcg@10" in r for r in compressed):
        text += (
            "\nnDCG@10 on the held-out 20% of train, where each dim chose its epochs and "
            f"PCA or training (before the refit on all of train){suffix}\n\n"
        )
        text += markdown_table(mean("val_ndcg@10"), "method", "dim", "val_ndcg@10",
                               row_order=trained)  # fmt: skip
    runs = {(r["method"], r["seed"]): r["train_seconds"] for r in compressed}  # one per run
    seconds = {m: [t for (name, _), t in runs.items() if name == m] for m in methods}
    text += (
        f"\ntraining seconds{' (mean per seed)' if several else ''}: "
        + ", ".join(f"{m} {sum(s) / len(s):.1f}" for m, s in seconds.items())
        + "\n"
    )
    series = {
        m: ([r["dim"] for r in ndcg if r["method"] == m],
            [r["ndcg@10"] for r in ndcg if r["method"] == m])
        for m in methods
    }  # fmt: skip
    line_plot(
        series,
        path.with_suffix(".png"),
        f"{full['dataset']} test: nDCG@10 by dimension{f' ({over})' if several else ''}",
        "dimension",
        "nDCG@10",
        logx=True,
        reference=(full["ndcg@10"], f"original {full['dim']}-d"),
    )
    path.with_suffix(".md").write_text(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", type=Path, default=Path("../shared/data/scifact"))
    parser.add_argument("--embeddings", type=Path)
    parser.add_argument("--dims", default="192,128,64,32")
    parser.add_argument("--methods", default=",".join(ORDER[1:]))
    parser.add_argument(
        "--seeds",
        default="0",
        help="comma-separated training seeds (each trained method once per seed)",
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--artifacts", type=Path, help="also save each artifact under this directory"
    )
    parser.add_argument(
        "--out", type=Path, help="results file (default bench/results/<dataset>-compare.jsonl)"
    )
    parser.add_argument(
        "--report-only", action="store_true", help="redraw table and plot from --out"
    )
    parser.add_argument(
        "--add",
        action="store_true",
        help="keep --out's runs of the other methods (each keeps its own time stamp) and "
        "replace those of --methods",
    )
    args = parser.parse_args()
    out = args.out or RESULTS_DIR / f"{args.dataset.name}-compare.jsonl"
    if not args.report_only:
        dims = [int(d) for d in args.dims.split(",")]
        records = run(
            args.dataset,
            args.embeddings,
            dims,
            args.methods.split(","),
            sorted({int(s) for s in args.seeds.split(",")}),
            args.device,
            args.artifacts,
        )
        if args.add and out.is_file():
            ran = {r["method"] for r in records if r["method"] != "none"}
            records = [r for r in read_records(out) if r["method"] not in ran] + [
                r for r in records if r["method"] != "none"]  # fmt: skip
        write_records(out, records)
    print(report(out))
    print(f"raw: {out}\nplot: {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
