"""Hostile input, the third sweep's finds (issue 23): 486 probes by someone who had seen
neither earlier table, 35 bad answers in the classes below. One probe per class; each
failed before its fix. Every bad input ends as one ``error:`` line, exit 2, nothing
changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from smec_index.cli import main
from tests.probes import qdrant_source, run_probe
from tests.test_probes_hostile import _build, _dataset, _results, _tmpfs

# -- a milvus-lite source is never written by reading it ----------------------------------

APP = """
import numpy as np
from pymilvus import MilvusClient
rng = np.random.default_rng(1)
client = MilvusClient({db!r})
client.create_collection("docs", dimension=32, metric_type="COSINE", auto_id=False)
client.insert("docs", [{{"id": i, "vector": rng.standard_normal(32).tolist(), "title": f"t{{i}}"}}
                       for i in range(400)])
client.close()
"""  # the quick set-up of pymilvus' docs: its index file is built on the first load


def _files(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


def _copies() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("smec-lite-read-*")}


def test_reading_a_milvus_lite_source_never_writes_into_it(tmp_path):
    db = tmp_path / "src.db"
    subprocess.run([sys.executable, "-c", APP.format(db=str(db))], check=True,
                   capture_output=True)  # fmt: skip
    source = db / "collections" / "docs"
    before, copies = _files(source), _copies()
    common = ["migrate", "--backend", "milvus", "--uri", db, "--collection", "docs",
              "--data-dir", tmp_path / "d", "--quiet"]  # fmt: skip
    plan = CliRunner().invoke(main, [str(a) for a in [*common, "--dim", 16, "--dry-run"]])
    assert plan.exit_code == 0, plan.output
    run_probe([*common, "--dim", 64], tmp_path, "the source holds 32-d vectors")
    run_probe([*common, "--dim", 16, "--alias", "docs"], tmp_path, "not an alias")
    done = CliRunner().invoke(main, [str(a) for a in [*common, "--dim", 16, "--json",
                                                     "--min-recall", 0.1]])  # fmt: skip
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["count"] == 400
    assert _files(source) == before, "the source collection's files changed"
    assert _copies() == copies, "a read copy was left behind"


# -- a .npy header that claims more than the file holds -----------------------------------


def test_a_npy_header_claiming_terabytes_is_refused_before_allocating(tmp_path):
    ds = _dataset(tmp_path)
    header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (100000000000, 16), }"
    header += b" " * (118 - len(header)) + b"\n"
    npy = ds / "embeddings" / "all-MiniLM-L6-v2" / "corpus.npy"
    npy.write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header
                    + b"\0" * 1024)  # fmt: skip
    run_probe(["train", "--dataset", ds, "--method", "pca", "--dims", 8, "--out",
               tmp_path / "art", "--quiet"], tmp_path, "truncated or damaged",
              output=tmp_path / "art")  # fmt: skip


# -- refused runs leave no lock file and no empty folder ----------------------------------


def test_a_refused_build_leaves_no_lock_and_no_data_dir(tmp_path):
    ds = _dataset(tmp_path)
    art = tmp_path / "art"
    CliRunner().invoke(main, ["train", "--dataset", str(ds), "--method", "pca", "--dims",
                              "8,4", "--out", str(art), "--quiet"])  # fmt: skip
    run_probe(["build", "--dataset", ds, "--artifact", art, "--dim", 6, "--backend", "faiss",
               "--data-dir", tmp_path / "new" / "d", "--collection", "x1", "--quiet"],
              tmp_path, "the artifact has dims 8, 4")  # fmt: skip
    assert not (tmp_path / "new").exists()


def test_a_build_too_big_for_the_disk_leaves_no_lock(tmp_path):
    disk = _tmpfs(tmp_path / "small", 1)
    try:
        ds = _dataset(tmp_path, n=3000, dim=64)
        for backend in ("faiss", "qdrant"):
            run_probe(["build", "--dataset", ds, "--backend", backend, "--dim", 64,
                       "--data-dir", disk / "dd", "--collection", "fd", "--quiet"], tmp_path,
                      "not enough disk space")  # fmt: skip
        assert not (disk / "dd").exists()
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_pca_the_sample_cannot_hold_is_refused_before_the_lock(tmp_path):
    q = qdrant_source(tmp_path)
    (tmp_path / "d").mkdir()
    run_probe(["migrate", "--backend", "qdrant", "--path", q, "--collection", "docs", "--dim",
               16, "--fit-rows", 5, "--data-dir", tmp_path / "d", "--quiet"], tmp_path,
              "needs at least 17 points to fit on and would get 5")  # fmt: skip


# -- what a migration cannot use is refused, not dropped ----------------------------------


def test_a_key_a_local_source_cannot_use_is_refused(tmp_path):
    q = qdrant_source(tmp_path)
    run_probe(["migrate", "--backend", "qdrant", "--path", q, "--collection", "docs", "--dim",
               16, "--api-key", "K123", "--data-dir", tmp_path / "d"], tmp_path,
              "--api-key does not apply to a local folder")  # fmt: skip
    db = tmp_path / "src.db"
    subprocess.run([sys.executable, "-c", APP.format(db=str(db))], check=True,
                   capture_output=True)  # fmt: skip
    run_probe(["migrate", "--backend", "milvus", "--uri", db, "--collection", "docs", "--dim",
               16, "--token", "root:Milvus", "--data-dir", tmp_path / "d"], tmp_path,
              "--token does not apply to a milvus-lite source")  # fmt: skip


def test_query_ids_beside_a_parquet_of_queries_is_refused(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    q = qdrant_source(tmp_path)
    pq.write_table(pa.table({"id": ["a"], "vector": [[0.0] * 32]}), tmp_path / "q.parquet")
    (tmp_path / "ids.txt").write_text("a\n")
    (tmp_path / "r.tsv").write_text("query-id\tcorpus-id\tscore\na\t1\t1\n")
    run_probe(["migrate", "--backend", "qdrant", "--path", q, "--collection", "docs", "--dim",
               16, "--queries", tmp_path / "q.parquet", "--query-ids", tmp_path / "ids.txt",
               "--qrels", tmp_path / "r.tsv", "--data-dir", tmp_path / "d"], tmp_path,
              "--query-ids does not apply")  # fmt: skip


# -- values out of range ------------------------------------------------------------------


@pytest.mark.parametrize("dims", ["16,", "16,,8", ",16", "１６"])
def test_dims_with_an_empty_or_foreign_entry_are_refused(tmp_path, dims):
    ds = _dataset(tmp_path)
    run_probe(["train", "--dataset", ds, "--method", "pca", "--dims", dims, "--out",
               tmp_path / "a"], tmp_path, "use whole numbers separated by commas")  # fmt: skip


def test_nprobe_beyond_nlist_is_refused_at_build_and_search(tmp_path):
    ds = _dataset(tmp_path)
    run_probe(["build", "--dataset", ds, "--backend", "faiss", "--dim", 16, "--index",
               "ivf_flat", "--nlist", 8, "--nprobe", 50, "--data-dir", tmp_path / "data",
               "--collection", "x4", "--quiet"], tmp_path, "nprobe=50 is more than the 8",
              output=tmp_path / "data")  # fmt: skip
    _build(tmp_path, "faiss", "x5", "--index", "ivf_flat", "--nlist", "8", "--nprobe", "4")
    run_probe(["search", "--backend", "faiss", "--data-dir", tmp_path / "data", "--collection",
               "x5", "--like", "d3", "--nprobe", 9999], tmp_path,
              "nprobe=9999 is more than")  # fmt: skip


# -- what is not a regular file is named as such ------------------------------------------


def test_devices_and_fifos_are_not_called_missing(tmp_path):
    ds = _dataset(tmp_path)
    run_probe(["eval", "--dataset", ds, "--method", "none", "--qrels", "/dev/null"], tmp_path,
              "not a regular file")  # fmt: skip
    npy = ds / "embeddings" / "all-MiniLM-L6-v2" / "corpus.npy"
    npy.unlink()
    os.mkfifo(npy)
    run_probe(["eval", "--dataset", ds, "--method", "none"], tmp_path, "not a regular file")
    run_probe(["report", "/dev/zero", "--out", tmp_path / "r"], tmp_path, "not a regular file")
    run_probe(["bench", "--dataset", "synthetic:2000x16", "--out", "/dev/full"], tmp_path,
              "not a regular file")  # fmt: skip
    run_probe(["bench", "--config", tmp_path], tmp_path, "a folder")


# -- messages that named the wrong cause or flag ------------------------------------------


def test_a_sparse_only_collection_is_named_so(tmp_path):
    q = qdrant_source(tmp_path, sparse=True)
    line = run_probe(["migrate", "--backend", "qdrant", "--path", q, "--collection", "docs",
                      "--dim", 16, "--data-dir", tmp_path / "d"], tmp_path,
                     "has no dense vector")  # fmt: skip
    assert "--using" not in line


def test_a_path_and_a_url_together_are_named_so(tmp_path):
    q = qdrant_source(tmp_path)
    run_probe(["migrate", "--backend", "qdrant", "--path", q, "--url", "http://127.0.0.1:1",
               "--collection", "docs", "--dim", 16, "--data-dir", tmp_path / "d"], tmp_path,
              "not both")  # fmt: skip


def test_a_target_address_error_names_the_target_flag(tmp_path):
    q = qdrant_source(tmp_path)
    line = run_probe(["migrate", "--backend", "qdrant", "--path", q, "--collection", "docs",
                      "--dim", 16, "--to-backend", "qdrant", "--to-url",
                      "http://u:PW@127.0.0.1:1", "--allow-schema-change", "--data-dir",
                      tmp_path / "d"], tmp_path, "--to-url")  # fmt: skip
    assert "PW" not in line and " --url" not in line


# -- library noise ------------------------------------------------------------------------


def test_faiss_training_advice_stays_off_a_quiet_terminal(tmp_path):
    ds = _dataset(tmp_path, n=600, dim=16)
    done = subprocess.run(
        [sys.executable, "-m", "smec_index.cli", "build", "--dataset", str(ds), "--backend",
         "faiss", "--dim", "16", "--index", "ivf_pq", "--nlist", "8", "--pq-m", "4",
         "--data-dir", str(tmp_path / "d"), "--quiet"], capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr
    verbose = subprocess.run(
        [sys.executable, "-m", "smec_index.cli", "-v", "build", "--dataset", str(ds),
         "--backend", "faiss", "--dim", "16", "--index", "ivf_pq", "--nlist", "8", "--pq-m", "4",
         "--data-dir", str(tmp_path / "d"), "--collection", "again"],
        capture_output=True, text=True)  # fmt: skip
    assert "faiss: WARNING clustering" in verbose.stderr  # -v shows it, once each


def test_a_truncated_faiss_index_is_one_plain_line(tmp_path):
    _build(tmp_path)
    (index,) = (tmp_path / "data" / "faiss").glob("x15__b*/index-*.faiss")
    index.write_bytes(index.read_bytes()[:100])
    line = run_probe(["search", "--backend", "faiss", "--data-dir", tmp_path / "data",
                      "--collection", "x15", "--like", "d1"], tmp_path, "unreadable")  # fmt: skip
    assert "faiss::" not in line and ".cpp" not in line


@pytest.mark.parametrize("field", ["index_bytes", "total_bytes", "p50_ms", "qps"])
def test_report_refuses_figures_no_run_gives(tmp_path, field):
    run_probe(["report", _results(tmp_path, **{field: 1e308}), "--out", tmp_path / "rep"],
              tmp_path, f"'{field}'")  # fmt: skip


# -- hand-edited artifacts, and a data dir among the inputs -------------------------------


def _artifact(root: Path) -> Path:
    ds = root / "ds" if (root / "ds").is_dir() else _dataset(root)
    result = CliRunner().invoke(main, ["train", "--dataset", str(ds), "--method", "pca",
                                       "--dims", "8", "--out", str(root / "art"),
                                       "--quiet"])  # fmt: skip
    assert result.exit_code == 0, result.output
    return root / "art"


def test_an_artifact_selecting_dims_the_input_lacks_is_refused(tmp_path):
    art = _artifact(tmp_path)
    config = json.loads((art / "config.json").read_text())
    config["selected_dims"] = {"8": [0, 1, 2, 3, 4, 5, 6, 99]}
    (art / "config.json").write_text(json.dumps(config))
    run_probe(["eval", "--dataset", tmp_path / "ds", "--artifact", art], tmp_path,
              "selected_dims['8']")  # fmt: skip


def test_an_artifact_config_with_a_key_twice_is_refused(tmp_path):
    art = _artifact(tmp_path)
    text = (art / "config.json").read_text()
    twice = text.replace('"method":', '"method": "truncate", "method":', 1)
    (art / "config.json").write_text(twice)
    run_probe(["eval", "--dataset", tmp_path / "ds", "--artifact", art], tmp_path,
              "appears twice")  # fmt: skip


def test_a_data_dir_among_the_inputs_is_refused(tmp_path):
    art = _artifact(tmp_path)
    for data_dir, fragment in ((tmp_path / "ds", "is the dataset"),
                               (art / "x", "is the artifact")):  # fmt: skip
        run_probe(["build", "--dataset", tmp_path / "ds", "--artifact", art, "--dim", 8,
                   "--backend", "faiss", "--data-dir", data_dir, "--quiet"], tmp_path,
                  fragment)  # fmt: skip
    q = qdrant_source(tmp_path)
    run_probe(["migrate", "--backend", "qdrant", "--path", q, "--collection", "docs", "--dim",
               16, "--data-dir", q], tmp_path, "is the source's folder")  # fmt: skip


# -- the fourth sweep (re-run of the third's 486 probes, 318 new): its finds --------------

WAL_APP = """
import os
import numpy as np
from pymilvus import MilvusClient
rng = np.random.default_rng(2)
client = MilvusClient({db!r})
client.create_collection("wal", dimension=32, metric_type="COSINE", auto_id=False)
client.insert("wal", [{{"id": i, "vector": rng.standard_normal(32).tolist()}} for i in range(600)])
os._exit(0)
"""  # an app killed with its rows still in the write-ahead log


def _wal_source(root: Path) -> Path:
    db = root / "w.db"
    subprocess.run([sys.executable, "-c", WAL_APP.format(db=str(db))], check=True,
                   capture_output=True)  # fmt: skip
    assert list((db / "collections" / "wal" / "wal").iterdir())
    return db


def test_a_dry_run_of_a_milvus_lite_source_with_rows_in_its_log_changes_no_byte(tmp_path):
    """Opening a milvus-lite database folds its log into segments: a plan opens only a copy."""
    db = _wal_source(tmp_path)
    before = _files(db)
    plan = CliRunner().invoke(main, [str(a) for a in [
        "migrate", "--backend", "milvus", "--uri", db, "--collection", "wal", "--dim", 8,
        "--dry-run", "--data-dir", tmp_path / "d", "--quiet", "--json"]])
    assert plan.exit_code == 0, plan.output
    assert json.loads(plan.output)["count"] == 600
    assert _files(db) == before


def test_a_read_only_milvus_lite_source_can_be_planned_and_is_named_read_only(tmp_path):
    db = _wal_source(tmp_path)
    ro = tmp_path / "ro.db"
    ro.mkdir()
    mounted = subprocess.run(["mount", "--bind", str(db), str(ro)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("a read-only bind mount needs root; not run here")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(ro)], check=True)
        common = ["migrate", "--backend", "milvus", "--uri", ro, "--collection", "wal", "--dim",
                  8, "--data-dir", tmp_path / "d", "--quiet"]  # fmt: skip
        plan = CliRunner().invoke(main, [str(a) for a in [*common, "--dry-run"]])
        assert plan.exit_code == 0, plan.output
        result = CliRunner().invoke(main, [str(a) for a in [*common, "--min-recall", 0]])
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert result.exit_code == 2 and len(lines) == 1 and "read-only" in lines[0], lines
    finally:
        subprocess.run(["umount", "-l", str(ro)], check=False)


def test_a_plan_into_a_new_target_database_makes_none(tmp_path):
    db = _wal_source(tmp_path)
    plan = CliRunner().invoke(main, [str(a) for a in [
        "migrate", "--backend", "milvus", "--uri", db, "--collection", "wal", "--dim", 8,
        "--to-backend", "milvus", "--to-uri", tmp_path / "new.db", "--allow-schema-change",
        "--dry-run", "--data-dir", tmp_path / "d", "--quiet"]])
    assert plan.exit_code == 0, plan.output
    assert not (tmp_path / "new.db").exists() and not (tmp_path / "d").exists()
    run_probe(["migrate", "--backend", "milvus", "--uri", db, "--collection", "wal", "--dim", 8,
               "--to-backend", "milvus", "--to-uri", db / "collections" / "wal" / "t.db",
               "--allow-schema-change", "--data-dir", tmp_path / "d"], tmp_path,
              "is inside the source's database")  # fmt: skip


def test_a_read_copy_is_never_made_inside_the_source_and_a_dead_ones_is_removed(
    tmp_path, monkeypatch
):
    db = _wal_source(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", None)
    monkeypatch.setenv("TMPDIR", str(db / "collections" / "wal"))
    run_probe(["migrate", "--backend", "milvus", "--uri", db, "--collection", "wal", "--dim", 8,
               "--dry-run", "--data-dir", tmp_path / "d"], tmp_path,
              "inside the source database")  # fmt: skip
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again
    dead = scratch / "smec-lite-read-999999999-x1y2z3"  # a pid no process has
    (dead / "w.db" / "collections").mkdir(parents=True)
    plan = CliRunner().invoke(main, [str(a) for a in [
        "migrate", "--backend", "milvus", "--uri", db, "--collection", "wal", "--dim", 8,
        "--dry-run", "--data-dir", tmp_path / "d", "--quiet"]])
    assert plan.exit_code == 0, plan.output
    assert list(scratch.iterdir()) == []  # the dead reader's copy and this run's, both gone


def test_info_after_a_rollback_does_not_name_the_copy_as_the_alias_target(tmp_path):
    db = _wal_source(tmp_path)
    common = ["migrate", "--backend", "milvus", "--uri", db, "--collection", "wal", "--dim", 8,
              "--data-dir", tmp_path / "d", "--alias", "live", "--quiet"]  # fmt: skip
    done = CliRunner().invoke(main, [str(a) for a in [*common, "--min-recall", 0]])
    assert done.exit_code == 0, done.output
    back = CliRunner().invoke(main, [str(a) for a in [*common, "--rollback"]])
    assert back.exit_code == 0, back.output
    shown = CliRunner().invoke(main, [str(a) for a in [
        "info", "--backend", "milvus", "--uri", db, "--collection", "live", "--data-dir",
        tmp_path / "d", "--json"]])
    assert "wal_8" not in shown.output, shown.output
    run_probe([*common, "--rollback"], tmp_path, "no switched migration")


@pytest.mark.parametrize(("flags", "fragment"), [
    (["--concurrency", "100000"], "at most 256 clients"),
    (["--ef-search", "32769", "--backends", "milvus"], "Milvus takes at most 32,768"),
])  # fmt: skip
def test_bench_settings_beyond_what_runs_are_refused_first(tmp_path, flags, fragment):
    run_probe(["bench", "--dataset", "synthetic:500x16", *flags, "--out", tmp_path / "r.jsonl"],
              tmp_path, fragment)  # fmt: skip


@pytest.mark.parametrize("selected", [{"8": [0, 0, 1, 2, 3, 4, 5, 6]},
                                      {"8": None, "4": None}])  # fmt: skip
def test_selected_dims_with_a_dim_twice_or_a_dim_not_trained_are_refused(tmp_path, selected):
    art = _artifact(tmp_path)
    config = json.loads((art / "config.json").read_text())
    config["selected_dims"] = selected
    (art / "config.json").write_text(json.dumps(config))
    run_probe(["eval", "--dataset", tmp_path / "ds", "--artifact", art], tmp_path,
              "selected_dims")  # fmt: skip


def test_an_artifact_is_not_written_inside_the_dataset(tmp_path):
    ds = _dataset(tmp_path)
    run_probe(["train", "--dataset", ds, "--method", "pca", "--dims", 8, "--out",
               ds / "embeddings" / "x"], tmp_path, "inside the input")  # fmt: skip


def test_a_fifo_out_is_not_called_a_file(tmp_path):
    ds = _dataset(tmp_path)
    os.mkfifo(tmp_path / "f")
    run_probe(["train", "--dataset", ds, "--method", "pca", "--dims", 8, "--out",
               tmp_path / "f"], tmp_path, "a device, socket or FIFO")  # fmt: skip


def test_a_npy_header_holding_code_is_refused_without_the_parser_noise(tmp_path):
    ds = _dataset(tmp_path)
    header = b"__import__('os').system('touch pwned')"
    header += b" " * (118 - len(header)) + b"\n"
    npy = ds / "embeddings" / "all-MiniLM-L6-v2" / "corpus.npy"
    npy.write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header)
    line = run_probe(["eval", "--dataset", ds, "--method", "none"], tmp_path,
                     "header is damaged")  # fmt: skip
    assert "0x" not in line and "ast." not in line and not (tmp_path / "pwned").exists()


def test_a_milvus_lite_source_folder_without_db_is_named_and_leaves_no_copy(tmp_path,
                                                                            monkeypatch):
    db = _wal_source(tmp_path)
    plain = tmp_path / "plain"
    db.rename(plain)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", None)
    plan = CliRunner().invoke(main, [str(a) for a in [
        "migrate", "--backend", "milvus", "--uri", plain, "--collection", "wal", "--dim", 8,
        "--dry-run", "--data-dir", tmp_path / "d", "--quiet"]])
    assert plan.exit_code == 0, plan.output  # read through a copy named as pymilvus wants
    run_probe(["migrate", "--backend", "milvus", "--uri", plain, "--collection", "wal", "--dim",
               8, "--min-recall", 0, "--data-dir", tmp_path / "d", "--quiet"], tmp_path,
              "only at a path ending in .db", output=tmp_path / "d")  # fmt: skip
    assert list(scratch.iterdir()) == []
