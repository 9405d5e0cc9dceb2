"""Bad training and evaluation input through the CLI: a one-line error, exit 2, no traceback,
nothing written, and each refused before the embeddings are read.

Covers the training settings (unknown names, non-finite or out-of-range values), flags that
do not apply (to ``--extend``, to the training-free methods), ``--device cuda`` without a
GPU, and corpora too small for the method asked for.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from smec_index.cli import main
from smec_index.data import Embeddings, RetrievalData
from smec_index.synthetic import write_beir
from tests.probes import run_probe, snapshot

FAST = ["--epochs", "2", "--quiet"]
NO_GPU = "CUDA requested but torch sees no GPU; use --device cpu or auto"


def _run(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def artifact(synthetic_beir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("probe-art") / "smec"
    result = _run("train", "--dataset", synthetic_beir, "--dims", "32,16,8", "--out", out, *FAST)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def pca_artifact(synthetic_beir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("probe-pca") / "pca"
    result = _run(
        "train", "--dataset", synthetic_beir, "--method", "pca", "--dims", "8", "--out", out
    )
    assert result.exit_code == 0, result.output
    return out


def _tiny(root: Path, n_docs: int, synthetic) -> Path:
    """A BEIR directory of the first ``n_docs`` synthetic documents and 6 judged queries."""
    data = synthetic[0]
    corpus = Embeddings([f"d{i}" for i in range(n_docs)], np.asarray(data.corpus.vectors[:n_docs]))
    queries = Embeddings([f"q{i}" for i in range(6)], np.asarray(data.queries.vectors[:6]))
    qrels = {f"q{i}": {f"d{i % n_docs}": 1} for i in range(6)}
    return write_beir(
        root / f"docs{n_docs}", RetrievalData(corpus, queries), {"train": qrels, "test": qrels}
    )


def _probe(args: list, fragment: str, out: Path, *roots: Path) -> str:
    """``run_probe`` on the first root, the others snapshotted too; nothing may be written."""
    others = {root: snapshot(root) for root in roots[1:]}
    line = run_probe(args, roots[0], fragment, out)
    for root, before in others.items():
        assert snapshot(root) == before, f"{root} changed"
    assert not out.exists(), "a refused command wrote its output"
    return line


def _train(dataset: Path, out: Path, *args: object) -> list:
    return ["train", "--dataset", dataset, "--out", out, *args]


# -- training settings: every value checked before the data is read -------------------------

SETTINGS = [
    (["--alpha", "inf"], "alpha (--alpha) = inf is invalid: must be a finite number >= 0"),
    (["--alpha", "nan"], "alpha (--alpha) = nan is invalid"),
    (["--alpha", "-1"], "alpha (--alpha) = -1.0 is invalid"),
    (["--epochs", "0"], "--epochs must be a positive integer, got 0"),
    (["--memory-size", "0"], "--memory-size must be a positive integer, got 0"),
    (["--memory-size", "1"], "memory_size (--memory-size) = 1 is invalid"),
    (["--seed", "-1"], "--seed must be a whole number from 0 to 4,294,967,295, got -1"),
]


@pytest.mark.parametrize(("args", "fragment"), SETTINGS, ids=[" ".join(a) for a, _ in SETTINGS])
def test_bad_training_setting(args, fragment, synthetic_beir, tmp_path):
    """Before: --alpha inf trained every epoch into NaN weights, refused only when saving;
    --seed -1 crashed inside numpy; the rest failed only after reading the data."""
    out = tmp_path / "out"
    args = _train(synthetic_beir, out, "--dims", "16,8", *args, "--quiet")
    _probe(args, fragment, out, synthetic_beir)


@pytest.mark.parametrize("method", ["smec", "pca", "truncate"])
def test_cuda_without_gpu(method, synthetic_beir, tmp_path, monkeypatch):
    """Before: pca/truncate reported success; smec failed only after reading the data."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "out"
    args = _train(synthetic_beir, out, "--method", method, "--dims", "8", "--device", "cuda")
    assert _probe(args, NO_GPU, out, synthetic_beir) == f"error: {NO_GPU}"


# -- flags that do not apply are refused, not ignored ----------------------------------------

NOT_APPLYING = [
    ("pca", ["--alpha", "5"], "--alpha does not apply to pca"),
    ("pca", ["--no-ads"], "--no-ads does not apply to pca"),
    ("pca", ["--split", "train"], "--split does not apply to pca"),
    ("truncate", ["--epochs", "3"], "--epochs does not apply to truncate"),
    ("truncate", ["--parallel"], "--parallel does not apply to truncate"),
]


@pytest.mark.parametrize(
    ("method", "args", "fragment"),
    NOT_APPLYING,
    ids=[f"{m} {' '.join(a)}" for m, a, _ in NOT_APPLYING],
)
def test_training_flag_with_training_free_method(method, args, fragment, synthetic_beir, tmp_path):
    out = tmp_path / "out"
    _probe(
        _train(synthetic_beir, out, "--method", method, "--dims", "8", *args),
        fragment,
        out,
        synthetic_beir,
    )


def test_split_and_qrels_together(synthetic_beir, tmp_path):
    out, qrels = tmp_path / "out", synthetic_beir / "qrels" / "train.tsv"
    args = _train(synthetic_beir, out, "--split", "train", "--qrels", qrels)
    _probe(args, "pass --split or --qrels, not both", out, synthetic_beir)


def test_unsupervised_with_qrels(synthetic_beir, tmp_path):
    out, qrels = tmp_path / "out", synthetic_beir / "qrels" / "train.tsv"
    args = _train(synthetic_beir, out, "--unsupervised", "--qrels", qrels)
    _probe(args, "--unsupervised trains on the corpus alone; drop --qrels", out, synthetic_beir)


EXTEND = [
    (["--method", "pca"], "--method cannot be used with --extend"),
    (["--method", "smec"], "--method cannot be used with --extend"),
    (["--parallel"], "--parallel cannot be used with --extend"),
    (["--no-ads"], "--no-ads cannot be used with --extend"),
    (["--no-xbm"], "--no-xbm cannot be used with --extend"),
    (["--init", "identity"], "--init cannot be used with --extend"),
    (["--lead-in", "0"], "--lead-in cannot be used with --extend"),
    (["--unsupervised"], "was trained with qrels; drop --unsupervised"),
    (["--alpha", "inf"], "alpha (--alpha) = inf is invalid"),
    (["--epochs", "0"], "--epochs must be a positive integer, got 0"),
    (["--dims", "8"], "the artifact already has dim 8"),
]


@pytest.mark.parametrize(("args", "fragment"), EXTEND, ids=[" ".join(a) for a, _ in EXTEND])
def test_extend_refuses_what_it_cannot_apply(args, fragment, artifact, synthetic_beir, tmp_path):
    """Before: every one of these was ignored and the artifact extended as it was trained."""
    out = tmp_path / "out"
    dims = [] if "--dims" in args else ["--dims", "4"]
    cmd = _train(synthetic_beir, out, "--extend", artifact, *dims, *args, "--quiet")
    _probe(cmd, fragment, out, artifact, synthetic_beir)


def test_extend_cuda_without_gpu(artifact, synthetic_beir, tmp_path, monkeypatch):
    """Before: --device was ignored with --extend (the artifact's device was used)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "out"
    cmd = _train(synthetic_beir, out, "--extend", artifact, "--dims", "4", "--device", "cuda")
    _probe(cmd, NO_GPU, out, artifact, synthetic_beir)


def test_extend_non_smec_artifact(pca_artifact, synthetic_beir, tmp_path):
    out = tmp_path / "out"
    cmd = _train(synthetic_beir, out, "--extend", pca_artifact, "--dims", "4")
    _probe(cmd, "only smec/mrl artifacts can be extended, not pca", out, pca_artifact)


def test_extend_applies_epochs_alpha_and_seed(artifact, synthetic_beir, tmp_path):
    """--epochs, --alpha, --seed and --device reach the new stages and are recorded."""
    out = tmp_path / "out"
    result = _run(
        *_train(synthetic_beir, out, "--extend", artifact, "--dims", "4"),
        *["--epochs", "1", "--alpha", "0.5", "--seed", "3", "--device", "cpu", "--quiet"],
    )
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["dims"] == [32, 16, 8, 4]
    assert config["info"]["extended_settings"] == {
        "alpha": 0.5,
        "max_epochs": 1,
        "device": "cpu",
        "seed": 3,
    }
    epochs = [r for r in config["info"]["history"] if r["stage"] == "4" and r["phase"] == "select"]
    assert len(epochs) == 1
    assert config["settings"]["max_epochs"] == 2  # the artifact's own record is kept


# -- corpora too small for the method ---------------------------------------------------------

SMALL = [
    (1, ["train", "--method", "pca", "--dims", "4"], "pca needs at least 2 documents"),
    (
        10,
        ["train", "--method", "pca", "--dims", "16"],
        "pca to 16 dims needs at least 17 documents",
    ),
    (1, ["train", "--method", "smec", "--dims", "8"], "smec to 8 dims needs at least 9 documents"),
    (
        1,
        ["train", "--method", "smec", "--dims", "8", "--unsupervised"],
        "smec to 8 dims needs at least 9 documents",
    ),
    (
        10,
        ["train", "--method", "mrl", "--dims", "8"],
        "mrl mines 30 hard negatives per query besides up to 1 relevant documents",
    ),
    (1, ["eval", "--method", "pca", "--dims", "4"], "pca needs at least 2 documents"),
    (10, ["eval", "--method", "pca", "--dims", "16"], "the corpus has 10: use dims <= 9"),
]


@pytest.mark.parametrize(
    ("n_docs", "args", "fragment"), SMALL, ids=[f"{n}docs {' '.join(a)}" for n, a, _ in SMALL]
)
def test_corpus_too_small(n_docs, args, fragment, synthetic, tmp_path):
    """Before: NaN in the artifact (pca, smec on one document), arbitrary components, or a
    crash in hard-negative mining."""
    dataset = _tiny(tmp_path, n_docs, synthetic)
    out = tmp_path / "out"
    extra = ["--out", out, "--quiet"] if args[0] == "train" else []
    _probe([*args, "--dataset", dataset, *extra], fragment, out, dataset)


def test_truncate_on_one_document_is_well_defined(synthetic, tmp_path):
    """Truncation needs no statistics: one document is enough, and nothing is NaN."""
    dataset = _tiny(tmp_path, 1, synthetic)
    result = _run("eval", "--dataset", dataset, "--method", "truncate", "--dims", "4", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["results"]["4"]["ndcg@10"] == 1.0


# -- eval -------------------------------------------------------------------------------------


def test_eval_none_with_dims(synthetic_beir, tmp_path):
    args = ["eval", "--dataset", synthetic_beir, "--method", "none", "--dims", "16"]
    _probe(
        args,
        "--method none evaluates the original vectors at their own dim; drop --dims",
        tmp_path / "out",
        synthetic_beir,
    )


def test_eval_dim_the_artifact_lacks(artifact, synthetic_beir, tmp_path):
    args = ["eval", "--dataset", synthetic_beir, "--artifact", artifact, "--dims", "7"]
    _probe(
        args, "has no dim 7; pass --dims from 32, 16, 8", tmp_path / "out", artifact, synthetic_beir
    )


def test_eval_split_and_qrels(synthetic_beir, tmp_path):
    qrels = synthetic_beir / "qrels" / "test.tsv"
    args = [
        "eval",
        "--dataset",
        synthetic_beir,
        "--method",
        "none",
        "--split",
        "test",
        "--qrels",
        qrels,
    ]
    _probe(args, "pass --split or --qrels, not both", tmp_path / "out", synthetic_beir)


def test_eval_artifact_with_unknown_setting(artifact, synthetic_beir, tmp_path):
    """Before: the misspelt setting was dropped and the artifact loaded with the default."""
    copy = shutil.copytree(artifact, tmp_path / "copy")
    config = json.loads((copy / "config.json").read_text())
    config["settings"]["alpah"] = 5
    (copy / "config.json").write_text(json.dumps(config))
    args = ["eval", "--dataset", synthetic_beir, "--artifact", copy]
    line = _probe(
        args, "unknown smec setting 'alpah'; did you mean 'alpha'?", tmp_path / "out", copy
    )
    assert "config.json holds a bad setting, fix it or retrain" in line


@pytest.mark.parametrize(
    "args",
    [["--unsupervised"], ["--method", "mrl"], ["--parallel"], ["--method", "pca"]],
    ids=["unsupervised", "mrl", "parallel", "pca"],
)
def test_lead_in_where_no_lead_in_stage_is_trained(args, synthetic_beir, tmp_path):
    """Before: --lead-in was accepted and silently ignored wherever it cannot apply."""
    out = tmp_path / "out"
    cmd = _train(synthetic_beir, out, "--dims", "8", "--lead-in", "0.5", *args)
    _probe(cmd, "--lead-in is the first stage of smec's sequential chain", out, synthetic_beir)
