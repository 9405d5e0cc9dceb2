"""The repository's benchmark scripts turn raw records into the tables the README shows."""

from __future__ import annotations

from bench.compare import report
from bench.results import over_seeds, write_records


def _record(method, dim, seed, ndcg, **extra):
    return {"dataset": "toy", "method": method, "dim": dim, "seed": seed, "ndcg@10": ndcg,
            "recall@10": ndcg / 2, "train_seconds": 10.0 + (seed or 0), **extra}  # fmt: skip


def test_over_seeds_means_and_spreads_within_the_filter():
    records = [
        {"variant": "a", "split": "held-out", "dim": 64, "ndcg@10": 0.5},
        {"variant": "a", "split": "held-out", "dim": 64, "ndcg@10": 0.7},
        {"variant": "a", "split": "unseen-doc", "dim": 64, "ndcg@10": 0.1},
        {"variant": "b", "split": "held-out", "dim": 32, "ndcg@10": 0.4},
    ]
    mean, spread = over_seeds(records, "variant", ["a", "b", "c"], [64, 32], split="held-out")
    assert mean == [{"variant": "a", "dim": 64, "ndcg@10": 0.6},
                    {"variant": "b", "dim": 32, "ndcg@10": 0.4}]  # fmt: skip
    assert [round(r["range"], 6) for r in spread] == [0.2, 0.0]


def test_compare_report_over_seeds(tmp_path):
    path = tmp_path / "toy-compare.jsonl"
    records = [{"dataset": "toy", "method": "none", "dim": 384, "seed": 0, "ndcg@10": 0.6}]
    records += [_record("pca", d, 0, 0.3) for d in (64, 32)]
    for seed, (at64, at32) in enumerate([(0.50, 0.40), (0.54, 0.42), (0.52, 0.47)]):
        records += [_record("smec", 64, seed, at64, **{"val_ndcg@10": at64 + 0.1}),
                    _record("smec", 32, seed, at32)]  # fmt: skip
    write_records(path, records)
    text = report(path)
    assert "mean over seeds 0, 1, 2" in text
    mean_table, spread_table, first_table = text.split("\n\n")[1:6:2]
    assert "| smec | 0.5200 | 0.4300 |" in mean_table
    assert "| pca | 0.3000 | 0.3000 |" in mean_table
    assert "| smec | 0.0400 | 0.0700 |" in spread_table and "pca" not in spread_table
    assert "| smec | 0.5000 | 0.4000 |" in first_table
    assert "training seconds (mean per seed): pca 10.0, smec 11.0" in text
    assert path.with_suffix(".png").stat().st_size > 0
    assert path.with_suffix(".md").read_text() == text


def test_compare_report_one_seed_has_no_spread(tmp_path):
    path = tmp_path / "toy-compare.jsonl"
    write_records(path, [{"dataset": "toy", "method": "none", "dim": 384, "seed": 0,
                          "ndcg@10": 0.6}, _record("smec", 64, 0, 0.5)])  # fmt: skip
    text = report(path)
    assert "mean over" not in text and "max - min" not in text
    assert "| smec | 0.5000 |" in text
