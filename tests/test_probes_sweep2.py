"""Hostile input, the second sweep's finds (issue 23): 989 probes by someone who had not
seen the first table, 27 bad answers in the classes below. One probe per class; each failed
before its fix. Every bad input ends as one ``error:`` line, exit 2, nothing changed.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from smec_index.cli import main
from tests.probes import qdrant_source, run_probe, snapshot
from tests.test_probes_hostile import _build, _dataset, _search, _tmpfs

# -- credentials an HTTP header cannot carry ----------------------------------------------


@pytest.mark.parametrize("key", ["kéy-ünïcode", "key\nwith-newline", "tab\there"])
@pytest.mark.parametrize("flag", ["--api-key", "--token"])
def test_a_key_that_no_header_can_carry_is_one_line_and_never_shown(tmp_path, key, flag):
    backend = "qdrant" if flag == "--api-key" else "milvus"
    where = ["--url", "http://127.0.0.1:1"] if backend == "qdrant" else [
        "--uri", "http://127.0.0.1:1"]  # fmt: skip
    line = run_probe(["info", "--backend", backend, *where, flag, key, "--collection", "c"],
                     tmp_path, f"{flag} holds a")  # fmt: skip
    assert key not in line and "retry" not in line and "cannot reach" not in line


def test_a_key_from_the_environment_is_checked_too(tmp_path):
    result = CliRunner().invoke(
        main, ["info", "--backend", "qdrant", "--url", "http://127.0.0.1:1", "--collection", "c"],
        env={"QDRANT_API_KEY": "sécret"},
    )
    assert result.exit_code == 2  # named by the variable that gave it: no --api-key was passed
    assert result.output.startswith("error: QDRANT_API_KEY holds a non-ASCII")
    assert "sécret" not in result.output


# -- ef beyond what an engine can allocate ------------------------------------------------


def test_faiss_beam_wider_than_the_collection_costs_nothing(tmp_path):
    """ef = 2**31 - 1 made FAISS allocate 16 GB for 44 s; a beam past the count finds
    nothing more, so it is cut to the count (the answer is the same)."""
    _build(tmp_path)
    wide = CliRunner().invoke(main, [str(a) for a in _search(
        tmp_path, "--collection", "x15", "--like", "d1", "--json", "--ef-search", 2**31 - 1)])
    assert wide.exit_code == 0, wide.output
    exact = CliRunner().invoke(main, [str(a) for a in _search(
        tmp_path, "--collection", "x15", "--like", "d1", "--json", "--ef-search", 300)])
    assert json.loads(wide.output)["hits"] == json.loads(exact.output)["hits"]


def test_milvus_bounds_are_refused_before_building_or_searching(tmp_path):
    ds = _dataset(tmp_path)
    run_probe(["build", "--dataset", ds, "--backend", "milvus", "--dim", 16, "--index",
               "ivf_flat", "--nlist", 65537, "--data-dir", tmp_path / "d", "--quiet"], tmp_path,
              "Milvus takes at most 65,536", output=tmp_path / "d")  # fmt: skip
    _build(tmp_path, "milvus", "m")
    run_probe(["search", "--backend", "milvus", "--data-dir", tmp_path / "data", "--collection",
               "m", "--like", "d1", "--ef-search", 2**31 - 1], tmp_path,
              "ef_search must be at most 32,768")  # fmt: skip


# -- paths that are not what they are given as --------------------------------------------


@pytest.mark.parametrize("kind", ["text file", "plain folder", "empty folder"])
@pytest.mark.parametrize("command", [["info"], ["search", "--like", "d1"]])
def test_a_milvus_lite_uri_that_is_no_database_is_named_so(tmp_path, kind, command):
    uri = tmp_path / "x.db"
    if kind == "text file":
        uri.write_text("hello\n")
        fragment = "is a file, not a milvus-lite database"
    elif kind == "plain folder":
        uri.mkdir()
        (uri / "notes.txt").write_text("mine\n")
        fragment = "holds no milvus-lite database"
    else:
        uri.mkdir()
        fragment = "no milvus-lite database at"
    run_probe([*command, "--backend", "milvus", "--uri", uri, "--collection", "c"], tmp_path,
              fragment)  # fmt: skip


def test_a_migration_from_a_folder_that_is_no_milvus_database_writes_nothing(tmp_path):
    (tmp_path / "src.db").mkdir()
    run_probe(["migrate", "--backend", "milvus", "--uri", tmp_path / "src.db", "--collection",
               "docs", "--dim", 8, "--data-dir", tmp_path / "d"], tmp_path,
              "no milvus-lite database at")  # fmt: skip


def test_a_qdrant_client_folder_missing_a_collection_is_not_made_anew(tmp_path):
    import shutil

    from qdrant_client import QdrantClient, models

    client = QdrantClient(path=str(tmp_path / "q"))
    client.create_collection("docs", vectors_config=models.VectorParams(
        size=16, distance=models.Distance.COSINE))  # fmt: skip
    client.close()
    shutil.rmtree(tmp_path / "q" / "collection" / "docs")
    run_probe(["migrate", "--backend", "qdrant", "--path", tmp_path / "q", "--collection", "docs",
               "--dim", 8, "--data-dir", tmp_path / "d"], tmp_path,
              "its folder collection/docs is gone")  # fmt: skip
    assert not (tmp_path / "q" / "collection" / "docs").exists()


def test_a_text_file_named_npy_is_not_called_pickled(tmp_path):
    ds = _dataset(tmp_path)
    queries = tmp_path / "log.npy"
    queries.write_text("not numbers\n")
    line = run_probe(["train", "--dataset", ds, "--method", "smec", "--dims", 8, "--unsupervised",
                      "--queries", queries, "--out", tmp_path / "art"], tmp_path,
                     "not a .npy file (no NumPy header)")  # fmt: skip
    assert "pickle" not in line


def test_an_object_npy_is_refused_without_advising_pickle(tmp_path):
    ds = _dataset(tmp_path)
    queries = tmp_path / "log.npy"
    np.save(queries, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    line = run_probe(["train", "--dataset", ds, "--method", "smec", "--dims", 8, "--unsupervised",
                      "--queries", queries, "--out", tmp_path / "art"], tmp_path,
                     "never unpickled")  # fmt: skip
    assert "allow_pickle" not in line


@pytest.mark.parametrize("command", [
    ["train", "--method", "pca", "--dims", 8, "--out"],
    ["embed", "--out"],
])  # fmt: skip
def test_an_out_under_a_file_names_the_file(tmp_path, command):
    ds = _dataset(tmp_path)
    (tmp_path / "afile").write_text("mine\n")
    run_probe([command[0], "--dataset", ds, *command[1:], tmp_path / "afile" / "x"], tmp_path,
              "is a file, not a directory")  # fmt: skip


def test_report_out_under_a_file_names_the_file(tmp_path):
    (tmp_path / "afile").write_text("mine\n")
    (tmp_path / "r.jsonl").write_text("")
    run_probe(["report", tmp_path / "r.jsonl", "--out", tmp_path / "afile" / "rep"], tmp_path,
              "is a file, not a directory")  # fmt: skip


# -- messages that pointed the wrong way --------------------------------------------------


def test_a_pair_judged_twice_with_two_scores_is_named(tmp_path):
    rows = "q0\td0\t1\nq1\td1\t1\nq0\td0\t0\n"
    ds = _dataset(tmp_path, qrels=rows)
    run_probe(["eval", "--dataset", ds, "--method", "none"], tmp_path,
              "judges document 'd0' again, 0 after 1")  # fmt: skip


def test_a_pair_judged_twice_with_one_score_is_accepted(tmp_path):
    from smec_index.data import read_qrels

    path = tmp_path / "q.tsv"
    path.write_text("query-id\tcorpus-id\tscore\nq0\td0\t1\nq0\td0\t1\n")
    assert read_qrels(path) == {"q0": {"d0": 1}}


def _texts_only(root: Path, n: int) -> Path:
    ds = root / "texts"
    (ds / "qrels").mkdir(parents=True)
    (ds / "corpus.jsonl").write_text("".join(
        json.dumps({"_id": f"d{i}", "title": "", "text": f"doc {i}"}) + "\n" for i in range(n)))
    (ds / "queries.jsonl").write_text("".join(
        json.dumps({"_id": f"q{i}", "text": f"q {i}"}) + "\n" for i in range(3)))
    rows = "".join(f"q{i}\td{i}\t1\n" for i in range(3))
    for split in ("train", "test"):
        (ds / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\n" + rows)
    return ds


@pytest.mark.parametrize("dim,fragment", [(64, "use --dim 39 or less"), (500, "larger than")])
def test_a_build_the_corpus_cannot_hold_is_refused_before_encoding(tmp_path, dim, fragment):
    ds = _texts_only(tmp_path, 40)
    run_probe(["build", "--dataset", ds, "--backend", "faiss", "--dim", dim, "--data-dir",
               tmp_path / "d", "--quiet"], tmp_path, fragment)  # fmt: skip


def test_a_small_corpus_builds_at_a_dim_it_can_hold(tmp_path):
    """The default artifact trained the 256-d default stage too, which 100 documents cannot
    hold: a build at 16 dims failed for it."""
    ds = _dataset(tmp_path, n=100, dim=384)
    out = CliRunner().invoke(main, ["build", "--dataset", str(ds), "--backend", "faiss", "--dim",
                                    "16", "--data-dir", str(tmp_path / "d"), "--quiet", "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["count"] == 100


# -- nothing written by a run that is refused or only plans -------------------------------


def test_rollback_with_nothing_to_roll_back_makes_no_lock_file(tmp_path):
    qdrant_source(tmp_path, n=50, dim=16)
    (tmp_path / "d").mkdir()
    run_probe(["migrate", "--backend", "qdrant", "--path", tmp_path / "q", "--collection", "docs",
               "--dim", 8, "--alias", "live", "--rollback", "--data-dir", tmp_path / "d"],
              tmp_path, "no switched migration")  # fmt: skip


def test_an_in_place_dry_run_writes_nothing(tmp_path):
    qdrant_source(tmp_path, n=300, dim=16)
    (tmp_path / "d").mkdir()
    before = snapshot(tmp_path)
    result = CliRunner().invoke(main, [str(a) for a in [
        "migrate", "--backend", "qdrant", "--path", tmp_path / "q", "--collection", "docs",
        "--dim", 8, "--in-place", "--dry-run", "--data-dir", tmp_path / "d", "--quiet",
        "--allow-schema-change"]])
    assert result.exit_code == 0, result.output
    after = snapshot(tmp_path)
    changed = sorted(k for k in before.keys() | after.keys()
                     if before.get(k) != after.get(k) and not k.endswith(".lock"))
    assert not changed and not list((tmp_path / "d").rglob("*.lock")), changed


# -- output before an error ---------------------------------------------------------------


def test_quiet_means_the_error_line_alone(tmp_path):
    """A migration whose gate fails printed its "PCA fitted" note before the error, even
    with --quiet."""
    qdrant_source(tmp_path, n=400, dim=32)
    result = CliRunner().invoke(main, [str(a) for a in [
        "migrate", "--backend", "qdrant", "--path", tmp_path / "q", "--collection", "docs",
        "--dim", 2, "--min-recall", 0.99, "--data-dir", tmp_path / "d", "--quiet"]])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert lines[0].startswith("error: ") and "recall" in lines[0]


def test_an_unwritable_bench_out_is_refused_before_measuring(tmp_path):
    line = run_probe(["bench", "--dataset", "synthetic:2000x16", "--out",
                      "/proc/smec-results.jsonl"], tmp_path, "cannot write there")  # fmt: skip
    assert "bench" not in line.split("error:")[0]


def test_a_bench_whose_index_cannot_fit_is_refused_before_measuring(tmp_path, small_disk):
    line = run_probe(["bench", "--dataset", "synthetic:20000x128", "--backends", "qdrant",
                      "--out", tmp_path / "r.jsonl"], tmp_path, "not enough disk space",
                     output=small_disk)  # fmt: skip
    assert "TMPDIR" in line


@pytest.fixture
def small_disk(tmp_path, monkeypatch):
    disk = _tmpfs(tmp_path / "small", 5)
    monkeypatch.setenv("TMPDIR", str(disk))
    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def test_embedding_that_cannot_fit_is_refused_before_encoding(tmp_path, small_disk):
    ds = _texts_only(tmp_path, 4000)
    line = run_probe(["embed", "--dataset", ds, "--out", small_disk / "emb"], tmp_path,
                     "not enough disk space", output=small_disk)  # fmt: skip
    assert "Batches" not in line
    assert not list(small_disk.iterdir())


def test_reading_a_milvus_lite_source_whose_rows_are_in_its_log_keeps_them(tmp_path):
    """Loading such a collection makes milvus-lite fold its write-ahead log into a segment
    (as the user's app's next load would): files change, the collection does not."""
    import shutil
    import sys

    from pymilvus import MilvusClient

    from tests.test_migrate import milvus_checksum, release_lite

    db = tmp_path / "src.db"
    app = f"""
import numpy as np
from pymilvus import DataType, MilvusClient
client = MilvusClient({str(db)!r})
schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
schema.add_field("pk", DataType.INT64, is_primary=True)
schema.add_field("emb", DataType.FLOAT_VECTOR, dim=16)
schema.add_field("title", DataType.VARCHAR, max_length=64)
schema.add_field("year", DataType.INT64)
index = client.prepare_index_params()
index.add_index("emb", index_type="HNSW", metric_type="COSINE", params={{"M": 8}})
client.create_collection("docs", schema=schema, index_params=index)
rng = np.random.default_rng(3)
client.insert("docs", [{{"pk": i, "emb": rng.standard_normal(16).tolist(), "title": f"t{{i}}",
                        "year": 2000 + i % 9}} for i in range(400)])
client.release_collection("docs")
import os
os._exit(0)
"""  # the user's app ends (killed, say) with its rows still in the log
    subprocess.run([sys.executable, "-c", app], check=True, capture_output=True)
    assert list((db / "collections" / "docs" / "wal").iterdir())
    shutil.copytree(db, tmp_path / "before.db")
    result = CliRunner().invoke(main, [str(a) for a in [
        "migrate", "--backend", "milvus", "--uri", db, "--collection", "docs", "--dim", 8,
        "--dry-run", "--data-dir", tmp_path / "d", "--quiet"]])
    assert result.exit_code == 0, result.output
    described = []
    for where in (db, tmp_path / "before.db"):
        client = MilvusClient(str(where))
        found = client.describe_collection("docs")
        release_lite(where, client)
        described.append({k: v for k, v in found.items() if "timestamp" not in k})
    assert described[0] == described[1]
    assert milvus_checksum(db) == milvus_checksum(tmp_path / "before.db")
