"""The repository's benchmark scripts turn raw records into the tables the README shows."""

from __future__ import annotations

import pytest

from bench.compare import report
from bench.results import over_seeds, write_records


def _record(method, dim, seed, ndcg, **extra):
    return {"dataset": "toy", "method": method, "dim": dim, "seed": seed, "ndcg@10": ndcg,
            "recall@10": ndcg / 2, "train_seconds": 10.0 + seed, **extra}  # fmt: skip


FULL = {"dataset": "toy", "method": "none", "dim": 384, "seed": 0, "ndcg@10": 0.6}


def _table(text: str, heading: str) -> str:
    """The Markdown table that follows the paragraph starting with ``heading``."""
    paragraphs = text.split("\n\n")
    return next(paragraphs[i + 1] for i, p in enumerate(paragraphs) if p.startswith(heading))


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
    with pytest.raises(ValueError, match="splitt"):
        over_seeds(records, "variant", ["a"], [64], splitt="held-out")


def test_compare_report_over_seeds(tmp_path):
    path = tmp_path / "toy-compare.jsonl"
    records = [FULL, *(_record("pca", d, 0, 0.3) for d in (64, 32))]
    # Seeds in the file in another order than their numbers: the report sorts them.
    for seed, (at64, at32) in [(2, (0.52, 0.47)), (0, (0.50, 0.40)), (1, (0.54, 0.42))]:
        records += [_record("smec", 64, seed, at64, **{"val_ndcg@10": at64 + 0.1}),
                    _record("smec", 32, seed, at32)]  # fmt: skip
    records.append(_record("mrl", 64, 0, 0.45))  # a method trained at one dim only
    write_records(path, records)
    text = report(path)
    mean = _table(text, "nDCG@10 on toy test (full 384-d: 0.6000), mean over seeds 0, 1, 2")
    assert "| smec | 0.5200 | 0.4300 |" in mean and "| pca | 0.3000 | 0.3000 |" in mean
    assert "| mrl | 0.4500 |  |" in mean
    spread = _table(text, "max - min over the seeds")
    assert "| smec | 0.0400 | 0.0700 |" in spread and "pca" not in spread
    first = _table(text, "seed 0 alone (what `smec-index train` gives with its defaults)")
    assert "| smec | 0.5000 | 0.4000 |" in first and "| pca | 0.3000 | 0.3000 |" in first
    assert "| smec | 0.2600 | 0.2150 |" in _table(text, "recall@10, mean over seeds 0, 1, 2")
    assert _table(text, "nDCG@10 on the held-out 20% of train").endswith("| smec | 0.6200 |")
    assert "training seconds (mean per seed): pca 10.0, mrl 10.0, smec 11.0" in text
    assert path.with_suffix(".png").stat().st_size > 0
    assert path.with_suffix(".md").read_text() == text


def test_compare_report_one_seed_and_records_without_seed(tmp_path):
    path = tmp_path / "toy-compare.jsonl"
    old = {k: v for k, v in _record("smec", 64, 0, 0.5).items() if k != "seed"}
    write_records(path, [FULL, old])
    text = report(path)
    assert "mean over" not in text and "max - min" not in text and "alone" not in text
    assert "| smec | 0.5000 |" in _table(text, "nDCG@10 on toy test (full 384-d: 0.6000)")


def test_study_records_are_bench_lines_with_run_keys(tmp_path):
    """Every study stores ``smec-index-bench/1`` lines of kind "study" whose key names the
    run (the study and its identifying fields), not what it measured; one run is stored once;
    `report`, which tables bench runs, says what such a file is."""
    from click.testing import CliRunner

    from bench.results import read_records
    from smec_index.cli import main

    path = tmp_path / "toy-compare.jsonl"
    write_records(path, [_record("smec", 64, 0, 0.5), _record("smec", 64, 1, 0.5)])
    first, second = read_records(path)
    assert first["schema"] == "smec-index-bench/1" and first["kind"] == "study"
    assert first["key"] != second["key"]  # the seed is part of the run
    again = tmp_path / "toy-compare-2.jsonl"
    write_records(again, [_record("smec", 64, 0, 0.7, train_seconds=3.0)])
    assert read_records(again)[0]["key"] != first["key"]  # another study (file)
    write_records(path, [_record("smec", 64, 0, 0.9, train_seconds=99.0), second])
    assert read_records(path)[0]["key"] == first["key"]  # measured fields: not in the key
    with pytest.raises(ValueError, match="are one run"):
        write_records(path, [first, {**first, "ndcg@10": 0.1}])
    done = CliRunner().invoke(main, ["report", str(path), "--out", str(tmp_path / "r")])
    assert done.exit_code == 2 and "a training study's record" in done.output, done.output


def test_committed_study_results_carry_run_keys():
    from bench.results import RESULTS_DIR, read_records, study_key

    studies = 0
    for path in sorted(RESULTS_DIR.glob("*.jsonl")):
        for record in read_records(path):
            assert record.get("schema") == "smec-index-bench/1", path
            if record.get("kind") == "study":
                assert record["key"] == study_key(path.stem, record), path
                studies += 1
    assert studies > 1000
