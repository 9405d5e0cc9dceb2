"""Shared fixtures: seeded synthetic data (fast) and the shared SciFact data (real)."""

from __future__ import annotations

from pathlib import Path

import pytest

from smec_index.synthetic import synthetic_retrieval, write_beir

SCIFACT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "scifact"


@pytest.fixture(scope="session")
def synthetic():
    """(data, train qrels, test qrels): 2000 x 64 docs of intrinsic rank 12, 400 queries."""
    data, qrels = synthetic_retrieval()
    ids = list(qrels)
    return data, {q: qrels[q] for q in ids[:300]}, {q: qrels[q] for q in ids[300:]}


@pytest.fixture(scope="session")
def synthetic_beir(tmp_path_factory, synthetic) -> Path:
    """The synthetic data as a BEIR directory with train/test qrels and embeddings."""
    data, train, test = synthetic
    return write_beir(
        tmp_path_factory.mktemp("beir") / "synth", data, {"train": train, "test": test}
    )


@pytest.fixture(scope="session")
def scifact_dir() -> Path:
    if not (SCIFACT / "corpus.jsonl").is_file():
        pytest.fail(f"SciFact not found at {SCIFACT}; the repository expects ../shared beside it")
    return SCIFACT


@pytest.fixture(scope="session")
def scifact(scifact_dir):
    from smec_index.data import load_retrieval_data

    return load_retrieval_data(scifact_dir)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A 16-d PCA artifact (``art``) of a small dataset (``ds``) and its 8-d collection
    ``c8`` in each in-process engine (``d``), for the hostile-input probes."""
    from click.testing import CliRunner

    from smec_index.cli import main
    from tests.test_probes_hostile import _dataset

    def ok(*args):
        done = CliRunner().invoke(main, [str(a) for a in args])
        assert done.exit_code == 0, done.output

    root = tmp_path_factory.mktemp("api")
    ds = _dataset(root)
    ok("train", "--dataset", ds, "--method", "pca", "--dims", 8, "--out", root / "art", "--quiet")
    for backend in ("faiss", "hnswlib", "qdrant"):
        ok("build", "--dataset", ds, "--artifact", root / "art", "--dim", 8, "--backend",
           backend, "--collection", "c8", "--data-dir", root / "d", "--quiet")  # fmt: skip
    return root
