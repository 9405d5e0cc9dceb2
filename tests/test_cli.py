"""The CLI as users and scripts call it: real files, real training, one-line errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from smec_index.cli import main

FAST = ["--epochs", "3", "--quiet"]


def run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def assert_one_line_error(result, fragment: str) -> None:
    assert result.exit_code != 0, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def artifact(synthetic_beir, tmp_path_factory):
    out = tmp_path_factory.mktemp("art") / "smec"
    result = run(
        "train",
        "--dataset",
        synthetic_beir,
        "--method",
        "smec",
        "--dims",
        "32,16,8",
        "--out",
        out,
        *FAST,
    )
    assert result.exit_code == 0, result.output
    return out


def test_train_then_eval_json(artifact, synthetic_beir):
    result = run("eval", "--dataset", synthetic_beir, "--artifact", artifact, "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["method"] == "smec" and payload["split"] == "test"
    assert set(payload["results"]) == {"32", "16", "8"}
    for scores in payload["results"].values():
        assert 0 <= scores["recall@10"] <= 1 and 0 < scores["ndcg@10"] <= 1


def test_eval_table_and_baselines(synthetic_beir):
    result = run("eval", "--dataset", synthetic_beir, "--method", "none")
    assert result.exit_code == 0 and "nDCG@10" in result.output and "    64" in result.output
    truncate = json.loads(
        run(
            "eval", "--dataset", synthetic_beir, "--method", "truncate", "--dims", "16", "--json"
        ).output
    )
    pca = json.loads(
        run("eval", "--dataset", synthetic_beir, "--method", "pca", "--dims", "16", "--json").output
    )
    assert pca["results"]["16"]["ndcg@10"] > truncate["results"]["16"]["ndcg@10"]


def test_eval_with_qrels_file(synthetic_beir, artifact):
    qrels = synthetic_beir / "qrels" / "train.tsv"
    result = run(
        "eval",
        "--dataset",
        synthetic_beir,
        "--artifact",
        artifact,
        "--qrels",
        qrels,
        "--dims",
        "8",
        "--json",
    )
    assert json.loads(result.output)["split"] == str(qrels)


def test_extend_via_cli(artifact, synthetic_beir, tmp_path):
    out = tmp_path / "extended"
    result = run(
        "train",
        "--dataset",
        synthetic_beir,
        "--extend",
        artifact,
        "--dims",
        "4",
        "--out",
        out,
        *FAST,
    )
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["dims"] == [32, 16, 8, 4]


@pytest.fixture
def broken_beir(synthetic_beir, tmp_path):
    """A writable copy of the synthetic dataset to damage."""
    return shutil.copytree(synthetic_beir, tmp_path / "copy")


def emb(root):
    return root / "embeddings" / "all-MiniLM-L6-v2"


def test_error_nan_embeddings(broken_beir, tmp_path):
    vectors = np.load(emb(broken_beir) / "corpus.npy")
    vectors[5, 3] = np.nan
    np.save(emb(broken_beir) / "corpus.npy", vectors)
    out = tmp_path / "out"
    result = run("train", "--dataset", broken_beir, "--dims", "16", "--out", out, *FAST)
    assert_one_line_error(result, "NaN or inf")
    assert not out.exists()


def test_error_inf_query(broken_beir):
    vectors = np.load(emb(broken_beir) / "queries.npy")
    vectors[0, 0] = np.inf
    np.save(emb(broken_beir) / "queries.npy", vectors)
    assert_one_line_error(run("eval", "--dataset", broken_beir, "--method", "none"), "NaN or inf")


def test_error_ids_length(broken_beir):
    ids = (emb(broken_beir) / "corpus_ids.txt").read_text().splitlines()
    (emb(broken_beir) / "corpus_ids.txt").write_text("\n".join(ids[:-1]) + "\n")
    assert_one_line_error(run("eval", "--dataset", broken_beir, "--method", "none"), "ids for")


@pytest.mark.parametrize(
    ("dims", "fragment"),
    [("16,32", "strictly decreasing"), ("128,16", "larger than"), ("a,b", "whole numbers")],
)
def test_error_dims(synthetic_beir, tmp_path, dims, fragment):
    out = tmp_path / "out"
    result = run(
        "train", "--dataset", synthetic_beir, "--method", "pca", "--dims", dims, "--out", out
    )
    assert_one_line_error(result, fragment)
    assert not out.exists()


def test_error_unknown_qrels(broken_beir):
    with open(broken_beir / "qrels" / "test.tsv", "a") as handle:
        handle.write("q0\tno-such-doc\t1\n")
    result = run("eval", "--dataset", broken_beir, "--method", "none")
    assert_one_line_error(result, "unknown documents")
    ok = run("eval", "--dataset", broken_beir, "--method", "none", "--skip-unknown-qrels", "--json")
    assert ok.exit_code == 0 and json.loads(ok.output)["results"]["64"]["ndcg@10"] > 0


def test_error_corrupt_artifact(artifact, synthetic_beir, tmp_path):
    broken = shutil.copytree(artifact, tmp_path / "broken")
    weights = broken / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    assert_one_line_error(run("eval", "--dataset", synthetic_beir, "--artifact", broken), "corrupt")
    (broken / "config.json").write_text("{not json")
    assert_one_line_error(run("eval", "--dataset", synthetic_beir, "--artifact", broken), "corrupt")


def test_error_artifact_for_other_input_dim(artifact, scifact_dir):
    result = run("eval", "--dataset", scifact_dir, "--artifact", artifact)
    assert_one_line_error(result, "trained on 64-d")


def test_error_existing_out_and_unknown_method(artifact, synthetic_beir):
    assert_one_line_error(
        run("train", "--dataset", synthetic_beir, "--out", artifact), "already exists"
    )
    result = run(
        "train",
        "--dataset",
        synthetic_beir,
        "--method",
        "nope",
        "--dims",
        "8",
        "--out",
        artifact.parent / "x",
    )
    assert_one_line_error(result, "unknown method")


def test_error_training_on_test_split(synthetic_beir, tmp_path):
    result = run("train", "--dataset", synthetic_beir, "--split", "test", "--out", tmp_path / "o")
    assert_one_line_error(result, "test split")


def test_error_missing_embeddings(tmp_path):
    (tmp_path / "corpus.jsonl").write_text('{"_id": "a", "text": "x"}\n')
    assert_one_line_error(
        run("eval", "--dataset", tmp_path, "--method", "none"), "smec-index embed"
    )


def test_train_unsupervised_with_a_query_log(synthetic_beir, tmp_path):
    """A query log (vectors, no labels) trains on each query's original top 10; the output
    and the artifact say, per dim, the held-out score against PCA and which one was kept."""
    from smec_index.data import load_retrieval_data

    data = load_retrieval_data(synthetic_beir)
    log = tmp_path / "log.npy"
    np.save(log, np.asarray(data.queries.vectors[:200], dtype=np.float32))
    out = tmp_path / "art"
    result = run(
        "train", "--dataset", synthetic_beir, "--method", "smec", "--dims", "16,8",
        "--unsupervised", "--queries", log, "--out", out, *FAST,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["settings"]["supervised"] is False
    assert config["info"]["query_log"]["queries"] == 200
    assert config["info"]["lead_in"] is None and "lead-in" not in result.output
    selection = config["info"]["selection"]
    assert set(selection) == {"16", "8"}
    for dim, chosen in selection.items():
        assert chosen["kept"] in ("trained", "pca")
        assert (chosen["kept"] == "pca") == (chosen["pca"] >= chosen["trained"])
        line = f"{dim:>5}-d held-out {chosen['metric']}: trained {chosen['trained']:.4f}"
        assert line in result.output


@pytest.mark.parametrize("lead_in", [None, "0"])
def test_train_says_when_it_trained_a_lead_in_stage(synthetic_beir, tmp_path, lead_in):
    """On 64-d vectors, dims 16,8 train through a 40-d first stage unless --lead-in 0; the
    stage is recorded, not exported."""
    out = tmp_path / "art"
    flag = [] if lead_in is None else ["--lead-in", lead_in]
    result = run(
        "train", "--dataset", synthetic_beir, "--method", "smec", "--dims", "16,8",
        "--out", out, *flag, *FAST,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    info = json.loads((out / "config.json").read_text())["info"]
    if lead_in is None:
        assert info["lead_in"] == 40 and info["parents"] == {"40": 64, "16": 40, "8": 16}
        assert "through a 40-d lead-in stage" in result.output
        # Each of the 60 held-out queries judges its own document: all are unseen-document
        # queries, scored per exported dim against PCA, with the guard's verdict.
        assert info["unseen"]["queries"] == 60 and info["unseen"]["guard"] is True
        assert "on the 60 held-out queries whose relevant documents no training" in result.output
        for dim in ("16", "8"):
            check = info["selection"][dim]["unseen"]
            assert (info["selection"][dim].get("because") == "unseen-doc") == (
                check["worse"] and info["selection"][dim]["trained"] > info["selection"][dim]["pca"]
            )
            assert f"{dim:>5}-d unseen-doc: trained {check['trained']:.4f}" in result.output
    else:
        assert info["lead_in"] is None and info["parents"] == {"16": 64, "8": 16}
        assert "lead-in" not in result.output
    assert set(info["selection"]) == {"16", "8"}


@pytest.mark.parametrize(
    "extra, fragment",
    [
        ([], "--queries is a query log for --unsupervised training"),
        (["--unsupervised", "--method", "pca"], "--queries trains smec or mrl, not pca"),
    ],
)
def test_train_query_log_flag_errors(synthetic_beir, tmp_path, extra, fragment):
    log = tmp_path / "log.npy"
    np.save(log, np.ones((10, 4), dtype=np.float32))
    result = run(
        "train", "--dataset", synthetic_beir, "--dims", "8", "--queries", log,
        "--out", tmp_path / "art", *extra,
    )  # fmt: skip
    assert_one_line_error(result, fragment)
    assert not (tmp_path / "art").exists()


@pytest.mark.parametrize(
    "content, fragment",
    [
        (np.ones((10, 4), dtype=np.float32), "4-d vectors, the corpus's are"),
        (np.ones(10, dtype=np.float32), "store one float vector per row"),
        (None, "use a .npy of vectors or a .parquet"),
    ],
)
def test_train_query_log_bad_files(synthetic_beir, tmp_path, content, fragment):
    log = tmp_path / ("log.npy" if content is not None else "log.txt")
    if content is None:
        log.write_text("not vectors\n")
    else:
        np.save(log, content)
    result = run(
        "train", "--dataset", synthetic_beir, "--dims", "8", "--unsupervised",
        "--queries", log, "--out", tmp_path / "art",
    )  # fmt: skip
    assert_one_line_error(result, fragment)
    assert not (tmp_path / "art").exists()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["nosuch"], "No such command 'nosuch'"),
        (["migrate", "--bogus"], "No such option '--bogus'"),
        (["migrate", "--backend", "qdrant"], "Missing option"),
        (["info", "--data-dir", __file__, "--collection", "c"], "is a file"),
    ],
)
def test_usage_errors_are_one_error_line_pointing_to_help(args, says, tmp_path):
    """click's usage errors (bad value, unknown flag or command, missing option) come out as
    the one ``error:`` line every other bad input gets, with exit 2; ``--help`` still works."""
    from tests.probes import run_probe

    line = run_probe(args, tmp_path, says)
    assert line.endswith("--help`")
    shown = CliRunner().invoke(main, [args[0], "--help"] if args[0] != "nosuch" else ["--help"])
    assert shown.exit_code == 0 and shown.output.startswith("Usage:")
