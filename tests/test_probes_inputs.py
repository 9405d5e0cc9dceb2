"""Bad input through the CLI, one row per probe: a one-line error, exit 2, no traceback,
nothing outside the intended output changed. (Outputs and training settings have their
own probe files.)"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from smec_index.artifact import load_artifact, save_artifact
from smec_index.cli import main
from tests.probes import run_probe


def _dataset(root: Path, corpus: np.ndarray | None = None, qrels: str | None = None) -> Path:
    """A small BEIR directory with embeddings; ``corpus`` replaces the document vectors."""
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((50, 16)).astype(np.float32) if corpus is None else corpus
    ds = root / "ds"
    (ds / "qrels").mkdir(parents=True)
    ids = [f"d{i}" for i in range(len(vectors))]
    (ds / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": i, "title": f"t {i}", "text": "x"}) + "\n" for i in ids)
    )
    (ds / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "q"}) + "\n")
    first = ids[0] if ids else "d0"
    (ds / "qrels" / "test.tsv").write_text(
        qrels if qrels is not None else f"query-id\tcorpus-id\tscore\nq1\t{first}\t1\n"
    )
    emb = ds / "embeddings" / "all-MiniLM-L6-v2"
    emb.mkdir(parents=True)
    np.save(emb / "corpus.npy", vectors)
    (emb / "corpus_ids.txt").write_text("".join(f"{i}\n" for i in ids))
    np.save(emb / "queries.npy", rng.standard_normal((1, vectors.shape[1])).astype(np.float32))
    (emb / "query_ids.txt").write_text("q1\n")
    return ds


def _artifact(root: Path, ds: Path, scale: float) -> Path:
    out = root / "art"
    result = CliRunner().invoke(
        main, ["train", "--dataset", str(ds), "--method", "pca", "--dims", "8", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    config, tensors = load_artifact(out)
    config.pop("format_version")
    save_artifact(out, config, {k: v * scale for k, v in tensors.items()})
    return out


def _eval(ds: Path) -> list:
    return ["eval", "--dataset", ds, "--method", "none"]


# (id, how to make the input under root -> CLI args, fragment of the one error line)
PROBES = [
    ("empty-corpus", lambda r: _eval(_dataset(r, np.zeros((0, 16), np.float32))), "0 vectors"),
    ("zero-dims", lambda r: _eval(_dataset(r, np.zeros((5, 0), np.float32))), "of 0 dims"),
    ("all-zero-rows", lambda r: _eval(_dataset(r, np.zeros((5, 16), np.float32))), "all zeros"),
    ("huge-values", lambda r: _eval(_dataset(r, np.full((5, 16), 1e37, np.float32))), "beyond"),
    (
        "header-only-qrels",
        lambda r: _eval(_dataset(r, qrels="query-id\tcorpus-id\tscore\n")),
        "no judgements",
    ),
    (
        "superscript-score",
        lambda r: _eval(_dataset(r, qrels="query-id\tcorpus-id\tscore\nq1\td0\t\u00b2\n")),
        "score '\u00b2' is not a whole number",
    ),
    ("non-utf8-qrels", lambda r: _eval(_qrels_bytes(r)), "not UTF-8"),
    (
        "artifact-weights-x1e37",
        lambda r: ["eval", "--dataset", (ds := _dataset(r)), "--artifact", _artifact(r, ds, 1e37)],
        "beyond",
    ),
    (
        "artifact-all-zero",
        lambda r: ["eval", "--dataset", (ds := _dataset(r)), "--artifact", _artifact(r, ds, 0.0)],
        "all zeros",
    ),
    (
        "qdrant-m-negative",
        lambda r: _build(r, "qdrant", "--m", "-1"),
        "--m must be a positive integer, got -1",
    ),
    (
        "ef-search-negative",
        lambda r: _build(r, "hnswlib", "--ef-search", "-3"),
        "--ef-search must be a positive integer, got -3",
    ),
    # Index parameters are refused before SMEC would train (--dim 8 < the data's 16): one
    # line, no "trained" message, no artifact cached.
    (
        "no-rescore-without-quantization",
        lambda r: _build(r, "qdrant", "--no-rescore", dim=8),
        "--no-rescore ranks by quantized codes alone",
    ),
    (
        "no-rescore-on-faiss",
        lambda r: _build(r, "faiss", "--no-rescore", dim=8),
        "--no-rescore does not apply to --backend faiss",
    ),
    ("batch-size-zero", lambda r: _build(r, "faiss", "--batch-size", "0"), "--batch-size"),
    ("data-dir-under-a-file", lambda r: _build_under_file(r), "is a file, not a directory"),
    ("collection-301", lambda r: _build(r, "faiss", "--collection", "c" * 301), "collection"),
    ("unparsable-url", lambda r: _build(r, "qdrant", "--url", "http://[::1"), "--url"),
    ("unparsable-uri", lambda r: _build(r, "milvus", "--uri", "http://[::1"), "--uri"),
    (
        "unknown-qrels-in-build",
        lambda r: _build(r, "faiss", dataset=_dataset(r, qrels="q1\tnope\t1\nq1\td1\t1\n")),
        "--skip-unknown-qrels",
    ),
    (
        "non-utf8-query",
        lambda r: [
            "search",
            "caf\udce9",
            "--backend",
            "faiss",
            "--collection",
            "c",
            "--data-dir",
            r / "data",
        ],  # fmt: skip
        "not UTF-8",
    ),
]


def _qrels_bytes(root: Path) -> Path:
    ds = _dataset(root)
    (ds / "qrels" / "test.tsv").write_bytes(b"q1\td0\t1\nq\xff\xfe\td1\t1\n")
    return ds


def _build(root: Path, backend: str, *flags: str, dataset: Path | None = None, dim: int = 16):
    ds = dataset or _dataset(root)
    return ["build", "--dataset", ds, "--backend", backend, "--dim", dim,
            "--data-dir", root / "data", "--quiet", *flags]  # fmt: skip


def _build_under_file(root: Path) -> list:
    (root / "afile").write_text("x")
    return ["build", "--dataset", _dataset(root), "--backend", "faiss", "--dim", 16,
            "--data-dir", root / "afile" / "data"]  # fmt: skip


@pytest.mark.parametrize(("name", "make", "fragment"), PROBES, ids=[p[0] for p in PROBES])
def test_probe(name, make, fragment, tmp_path):
    args = make(tmp_path)
    run_probe(args, tmp_path, fragment, output=tmp_path / "data")
    assert not (tmp_path / "data" / "artifacts").exists(), "nothing trained before the refusal"


def test_a_one_document_corpus_reports_recall_of_one_for_a_perfect_index(tmp_path):
    ds = _dataset(tmp_path, np.ones((1, 16), np.float32))
    result = CliRunner().invoke(main, ["build", "--dataset", str(ds), "--backend", "faiss",
                                       "--dim", "16", "--index", "flat", "--data-dir",
                                       str(tmp_path / "data"), "--json", "--quiet"])  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["recall@10"] == 1.0 and summary["ndcg@10"] == 1.0


def test_vectors_scaled_by_1e30_keep_their_directions(tmp_path):
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((30, 16)).astype(np.float32)
    plain = _dataset(tmp_path / "a", vectors)
    scaled = _dataset(tmp_path / "b", vectors * np.float32(1e14))
    runs = [CliRunner().invoke(main, ["eval", "--dataset", str(d), "--method", "none",
                                      "--json"]) for d in (plain, scaled)]  # fmt: skip
    assert all(r.exit_code == 0 for r in runs), [r.output for r in runs]
    assert json.loads(runs[0].stdout)["results"] == json.loads(runs[1].stdout)["results"]


def test_a_bug_is_one_line_asking_for_a_report_and_v_shows_the_traceback(monkeypatch, tmp_path):
    import smec_index.collection_info as info

    def broken(*_args, **_kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(info, "collection_info", broken)
    args = ["info", "--backend", "faiss", "--collection", "c", "--data-dir", str(tmp_path)]
    quiet = CliRunner().invoke(main, args)
    assert quiet.exit_code == 1 and "Traceback" not in quiet.output
    assert quiet.output.strip() == (
        "internal error: ZeroDivisionError: division by zero; please report it "
        "(run with -v for the traceback)"
    )
    loud = CliRunner().invoke(main, ["-v", *args])
    assert loud.exit_code == 1 and "Traceback" in loud.output


def test_milvus_builds_print_no_spurious_traceback(synthetic_beir, tmp_path):
    import subprocess
    import sys

    command = [
        sys.executable,
        "-m",
        "smec_index.cli",
        "build",
        "--dataset",
        str(synthetic_beir),
        "--backend",
        "milvus",
        "--dim",
        "64",
        "--data-dir",
        str(tmp_path),
        "--quiet",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "Method not implemented" not in done.stderr
    assert "mvccTs" not in done.stderr


def test_build_takes_the_skip_unknown_qrels_it_suggests(tmp_path):
    ds = _dataset(tmp_path, qrels="query-id\tcorpus-id\tscore\nq1\td0\t1\nq1\tnope\t1\n")
    args = ["build", "--dataset", str(ds), "--backend", "faiss", "--dim", "16", "--index",
            "flat", "--data-dir", str(tmp_path / "data"), "--quiet", "--json"]  # fmt: skip
    refused = CliRunner().invoke(main, args)
    assert refused.exit_code == 2 and "--skip-unknown-qrels" in refused.output
    built = CliRunner().invoke(main, [*args, "--skip-unknown-qrels"])
    assert built.exit_code == 0, built.output
    assert json.loads(built.stdout)["count"] == 50
