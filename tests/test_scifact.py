"""End to end on the shared SciFact data: the reference figures, then SMEC through the CLI."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from smec_index.cli import main

# MTEB/BEIR figures for all-MiniLM-L6-v2 on SciFact test (see shared/docs/SMEC.md).
REFERENCE = {
    "truncate": {128: 0.6016, 64: 0.4841, 32: 0.3371},
    "pca": {128: 0.6316, 64: 0.5594, 32: 0.4607},
}


def eval_json(*args) -> dict:
    result = CliRunner().invoke(main, ["eval", *map(str, args), "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_original_embeddings_reproduce_0_6451(scifact_dir):
    payload = eval_json("--dataset", scifact_dir, "--method", "none")
    assert payload["split"] == "test"
    assert round(payload["results"]["384"]["ndcg@10"], 4) == 0.6451


@pytest.mark.parametrize("method", sorted(REFERENCE))
def test_training_free_baselines_match_reference(scifact_dir, method):
    results = eval_json("--dataset", scifact_dir, "--method", method, "--dims", "128,64,32")
    for dim, expected in REFERENCE[method].items():
        assert abs(results["results"][str(dim)]["ndcg@10"] - expected) <= 0.002, (method, dim)


@pytest.mark.slow
def test_smec_trains_on_train_and_beats_pca_on_test(scifact_dir, tmp_path):
    out = tmp_path / "smec"
    result = CliRunner().invoke(
        main,
        [
            "train",
            "--dataset",
            str(scifact_dir),
            "--method",
            "smec",
            "--dims",
            "128,64,32",
            "--out",
            str(out),
            "--quiet",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["settings"]["sequential"] and config["settings"]["ads"]
    from smec_index.data import read_qrels

    held_out = set(config["info"]["val_query_ids"])
    train = read_qrels(scifact_dir / "qrels" / "train.tsv")
    test = read_qrels(scifact_dir / "qrels" / "test.tsv")
    # Early stopping uses a held-out part of *train*; no test query is ever seen in training.
    assert held_out and held_out <= set(train) and not held_out & set(test)
    smec = eval_json("--dataset", scifact_dir, "--artifact", out)["results"]
    for dim, pca in REFERENCE["pca"].items():
        # Supervised on 80% of train: far above the training-free projections at every dim.
        assert smec[str(dim)]["ndcg@10"] > pca + 0.05, (dim, smec[str(dim)])
