"""Hostile input, round two (issue 23): one probe per class the second sweep found.

Each probe failed before its class was fixed at the layer that owns it: reserved physical
names, numbers beyond C's int, huge k, typed result files and configs, corrupt sidecars,
qrels scores, sweeps with nothing to measure, silently accepted values, crash leftovers
and a full disk. Every bad input ends as one ``error:`` line, exit 2, nothing changed.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from smec_index.artifact import OWNER, atomic_directory
from smec_index.cli import main
from tests.probes import run_probe

N = 300


def _dataset(root: Path, qrels: str | None = None, n: int = N, dim: int = 16) -> Path:
    rng = np.random.default_rng(1)
    ds = root / "ds"
    (ds / "qrels").mkdir(parents=True)
    ids = [f"d{i}" for i in range(n)]
    (ds / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": i, "title": f"t {i}", "text": "x"}) + "\n" for i in ids)
    )
    (ds / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": f"q{i}", "text": "q"}) + "\n" for i in range(5))
    )
    rows = qrels if qrels is not None else "".join(f"q{i}\td{i}\t1\n" for i in range(5))
    for split in ("train", "test"):
        (ds / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\n" + rows)
    emb = ds / "embeddings" / "all-MiniLM-L6-v2"
    emb.mkdir(parents=True)
    np.save(emb / "corpus.npy", rng.standard_normal((n, dim)).astype(np.float32))
    (emb / "corpus_ids.txt").write_text("".join(f"{i}\n" for i in ids))
    np.save(emb / "queries.npy", rng.standard_normal((5, dim)).astype(np.float32))
    (emb / "query_ids.txt").write_text("".join(f"q{i}\n" for i in range(5)))
    return ds


def _ok(*args) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def _build(root: Path, backend: str = "faiss", name: str = "x15", *flags) -> dict:
    ds = root / "ds" if (root / "ds").is_dir() else _dataset(root)
    out = _ok("build", "--dataset", ds, "--backend", backend, "--dim", 16, "--data-dir",
              root / "data", "--collection", name, "--quiet", "--json", *flags)  # fmt: skip
    return json.loads(out)


def _search(root: Path, *args) -> list:
    return ["search", "--backend", "faiss", "--data-dir", root / "data", *args]


# -- class 1: physical collections are reserved ------------------------------------------


def test_a_physical_collection_cannot_be_built_over_by_name(tmp_path):
    physical = _build(tmp_path)["physical_collection"]
    ds = tmp_path / "ds"
    for name in (physical, "mine__b0123456789", "x15__bffffffffff", "foo__b0123456789abcdef"):
        run_probe(["build", "--dataset", ds, "--backend", "faiss", "--dim", 16, "--data-dir",
                   tmp_path / "data", "--collection", name, "--overwrite", "--quiet"],
                  tmp_path, "reserved")  # fmt: skip
    hits = json.loads(_ok(*_search(tmp_path, "--collection", "x15", "--like", "d1", "--json")))
    assert hits["hits"][0]["id"] == "d1"  # x15 and its alias are intact


@pytest.mark.parametrize("flag", ["--to", "--alias"])
def test_migrate_never_creates_a_physical_name(tmp_path, flag):
    run_probe(["migrate", "--backend", "qdrant", "--path", tmp_path / "src", "--collection",
               "docs", "--dim", 8, flag, "docs__b0123456789", "--data-dir", tmp_path / "d"],
              tmp_path, "reserved")  # fmt: skip


# -- classes 6 and 7: one bounded integer type; k capped before allocation ----------------

NUMBERS = [
    (["search", "q", "--backend", "faiss", "--collection", "c", "-k", "9" * 20], "at most"),
    (["search", "q", "--backend", "faiss", "--collection", "c", "--ef-search", "1e20"],
     "whole number"),
    (["search", "q", "--backend", "faiss", "--collection", "c", "-k", "0"], "positive"),
    (["build", "--dataset", "ds", "--backend", "faiss", "--dim", "8", "--m", "99999999999"],
     "at most 2,147,483,647"),
    (["build", "--dataset", "ds", "--backend", "faiss", "--dim", "6.5"], "whole number"),
    (["train", "--dataset", "ds", "--out", "a", "--dims", "8", "--seed", "-1"], "from 0"),
    (["train", "--dataset", "ds", "--out", "a", "--dims", "8", "--seed", "99999999999"],
     "from 0"),
    (["bench", "--dataset", "synthetic:100000000000x384", "--out", "r.jsonl"], "GiB"),
    (["bench", "--dataset", "synthetic:1000x16:rank48", "--out", "r.jsonl"], "R at most D"),
    (["bench", "--dataset", "synthetic:1000x16", "--ef-search", "99999999999", "--out",
      "r.jsonl"], "at most"),
    (["bench", "--dataset", "synthetic:1000x16", "--max-queries", "0", "--out", "r.jsonl"],
     "positive"),
    (["migrate", "--backend", "qdrant", "--path", "s", "--collection", "c", "--dim", "8",
      "--batch-size", "4294967296"], "at most"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "fragment"), NUMBERS, ids=[" ".join(a[:1] + a[-2:])
                                                              for a, _ in NUMBERS])  # fmt: skip
def test_numbers_beyond_the_engines_are_one_line(tmp_path, monkeypatch, args, fragment):
    monkeypatch.chdir(tmp_path)
    run_probe(args, tmp_path, fragment)


def test_a_huge_k_is_capped_at_the_count_before_anything_is_allocated(tmp_path):
    _build(tmp_path)
    out = _ok(*_search(tmp_path, "--collection", "x15", "--like", "d1", "-k", 10**9, "--json"))
    hits = json.loads(out)["hits"]
    assert len(hits) == N and hits[0]["id"] == "d1"  # every point once, not 10**9 slots


# -- class 5: internal errors on bad files -------------------------------------------------


def _results(root: Path, **change) -> Path:
    record = {"schema": "smec-index-bench/1", "key": "k1", "dataset": "ds", "method": "none",
              "dim": 16, "backend": "faiss", "index": "hnsw", "encoding": "float32", "n_docs": 10,
              "n_queries": 5, "bytes_per_vector": 64.0, "index_bytes": 1, "total_bytes": 1,
              "p50_ms": 0.1, "p99_ms": 0.2, "qps": 10.0, "ndcg@10": 0.5, "recall@10": 1.0,
              "build_seconds": 1.0}  # fmt: skip
    record.update(change)
    path = root / "r.jsonl"
    path.write_text(json.dumps({k: v for k, v in record.items() if v != "<drop>"}) + "\n")
    return path


@pytest.mark.parametrize(
    ("change", "fragment"),
    [({"ndcg@10": "high"}, "'ndcg@10' is 'high'"), ({"dim": "64"}, "'dim' is '64'"),
     ({"dim": "<drop>"}, "'dim' is None"), ({"qps": float("inf")}, "'qps'"),
     ({"recall@10": 7}, "from 0 to 1"), ({"machine": [1]}, "'machine'")],
)  # fmt: skip
def test_report_refuses_a_record_of_the_wrong_shape(tmp_path, change, fragment):
    run_probe(["report", _results(tmp_path, **change), "--out", tmp_path / "rep"],
              tmp_path, fragment)  # fmt: skip


def test_report_on_random_bytes_is_one_line(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_bytes(np.random.default_rng(0).bytes(3000))
    run_probe(["report", path, "--out", tmp_path / "rep"], tmp_path, "not UTF-8")


def test_report_still_reads_what_bench_wrote(tmp_path):
    assert "report.md" in _ok("report", _results(tmp_path), "--out", tmp_path / "rep")


@pytest.mark.parametrize("backend", ["faiss", "hnswlib"])
@pytest.mark.parametrize("meta", ["{bad", "[1]", '"x"', '{"files": 3}'])
def test_a_corrupt_sidecar_is_one_line(tmp_path, backend, meta):
    physical = _build(tmp_path, backend)["physical_collection"]
    (tmp_path / "data" / backend / physical / "meta.json").write_text(meta)
    run_probe(["search", "--backend", backend, "--data-dir", tmp_path / "data", "--collection",
               "x15", "--like", "d1"], tmp_path, "unreadable")  # fmt: skip


def test_a_corrupt_manifest_is_one_line(tmp_path):
    physical = _build(tmp_path)["physical_collection"]
    (tmp_path / "data" / "manifests" / "faiss" / f"{physical}.json").write_text("[1]")
    run_probe(["info", "--backend", "faiss", "--data-dir", tmp_path / "data", "--collection",
               "x15"], tmp_path, "corrupt manifest")  # fmt: skip


@pytest.mark.parametrize(
    ("change", "fragment"),
    [({"input_dim": "abc"}, "'input_dim' is 'abc'"), ({"dims": "8"}, "'dims' is '8'"),
     ({"dims": [8.5]}, "'dims' is [8.5]"), ({"seed": "x"}, "'seed'"), ({"method": 5}, "'method'")],
)  # fmt: skip
def test_an_artifact_config_of_the_wrong_types_is_refused(tmp_path, change, fragment):
    ds = _dataset(tmp_path)
    art = tmp_path / "art"
    _ok("train", "--dataset", ds, "--method", "pca", "--dims", 8, "--out", art, "--quiet")
    config = json.loads((art / "config.json").read_text())
    (art / "config.json").write_text(json.dumps({**config, **change}))
    run_probe(["eval", "--dataset", ds, "--artifact", art], tmp_path, fragment)


# -- class 12: messages that say what is wrong ---------------------------------------------


@pytest.mark.parametrize("score", ["1.5", "nan", "high", "1e3"])
def test_a_qrels_score_must_be_a_whole_number(tmp_path, score):
    ds = _dataset(tmp_path, qrels=f"q0\td0\t1\nq1\td1\t{score}\n")
    line = run_probe(["eval", "--dataset", ds, "--method", "none"], tmp_path, "whole number")
    assert ".tsv:3:" in line and repr(score) in line  # the line (after the header), the value


@pytest.mark.parametrize("rows", ["q0\td0\t0\nq1\td1\t0\n", "q0\td0\t-1\n"])
def test_qrels_with_nothing_relevant_are_refused_like_empty_ones(tmp_path, rows):
    ds = _dataset(tmp_path, qrels=rows)
    run_probe(["eval", "--dataset", ds, "--method", "none"], tmp_path, "above 0")


@pytest.mark.parametrize(
    ("toml", "fragment"),
    [('dims = "sixty"', "dims 'sixty'"), ('dims = ["128"]', "dims '128'"), ("M = 1e20", "M "),
     ("out = 5", "out 5"), ("force = 1", "force 1"), ('methods = "pca"', "methods 'pca'")],
)  # fmt: skip
def test_a_bench_config_is_typed(tmp_path, toml, fragment):
    config = tmp_path / "c.toml"
    config.write_text(toml + "\n")
    extra = [] if toml.startswith("out") else ["--out", tmp_path / "r.jsonl"]
    run_probe(["bench", "--config", config, "--dataset", "synthetic:100x8", *extra],
              tmp_path, fragment)  # fmt: skip


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [(["--encodings", "pq7"], "7 bytes do not divide"), (["--dims", "64"], "no method runs")],
)
def test_a_sweep_with_nothing_to_measure_is_refused(tmp_path, flags, fragment):
    ds = _dataset(tmp_path)
    out = tmp_path / "r.jsonl"
    run_probe(["bench", "--dataset", ds, "--out", out, *flags], tmp_path, fragment)
    assert not out.exists()


# -- class 13: nothing silently accepted ---------------------------------------------------


def test_an_empty_query_text_is_refused(tmp_path):
    _build(tmp_path)
    run_probe([*_search(tmp_path, "  ", "--collection", "x15")], tmp_path, "query text is empty")


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [(["--nprobe", "4"], "--nprobe does not apply to a hnsw index"),
     (["--index", "flat", "--m", "8"], "--m does not apply to a flat index"),
     (["--index", "ivf_flat", "--ef-search", "8"], "--ef-search does not apply")],
)  # fmt: skip
def test_an_index_flag_of_another_kind_is_refused_not_dropped(tmp_path, flags, fragment):
    ds = _dataset(tmp_path)
    run_probe(["build", "--dataset", ds, "--backend", "faiss", "--dim", 16, "--data-dir",
               tmp_path / "data", "--quiet", *flags], tmp_path, fragment)  # fmt: skip


# -- class 14: crash leftovers are cleaned by the next run ---------------------------------


def _dead_pid() -> int:
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)  # fmt: skip
    return int(child.stdout)


def _staging(parent: Path, name: str, pid: int) -> Path:
    folder = parent / name
    folder.mkdir()
    (folder / OWNER).write_text(json.dumps({"pid": pid, "host": socket.gethostname()}))
    (folder / "half-written.bin").write_bytes(b"\0" * 100)
    return folder


def test_a_killed_writers_staging_folder_goes_with_the_next_run(tmp_path):
    ds = _dataset(tmp_path)
    dead = _staging(tmp_path, ".art.smec-staging-k1ll3d", _dead_pid())
    alive = _staging(tmp_path, ".art.smec-staging-w0rk1ng", os.getpid())  # still at work
    unowned = tmp_path / ".art.smec-staging-n0own3r"
    unowned.mkdir()
    never = tmp_path / ".art.smec-staging-n3v3r"  # killed before its owner file, long ago
    never.mkdir()
    users = tmp_path / ".art.backup"  # sweep 36: the user's own, old and ownerless: deleted
    users.mkdir()
    (users / "notes.txt").write_text("mine")
    for old in (never, users):
        os.utime(old, (time.time() - 2 * 3600, time.time() - 2 * 3600))
    _ok("train", "--dataset", ds, "--method", "pca", "--dims", 8, "--out", tmp_path / "art",
        "--quiet")  # fmt: skip
    assert not dead.exists() and not never.exists()
    assert alive.exists() and unowned.exists()  # young and unclaimed: maybe mid-mkdtemp
    assert (users / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.glob(".art.*")) == [
        ".art.backup", ".art.smec-staging-n0own3r", ".art.smec-staging-w0rk1ng"]


def test_a_swap_cut_between_its_renames_puts_the_old_directory_back(tmp_path):
    target = tmp_path / "out"
    with atomic_directory(target, kind="artifact") as staging:
        (staging / "v").write_text("1")
    aside = _staging(tmp_path, ".out.smec-staging-old-cut", _dead_pid())
    os.replace(target, aside / "out")  # killed after setting the old one aside
    with pytest.raises(RuntimeError):
        with atomic_directory(target, kind="artifact"):
            assert (target / "v").read_text() == "1"  # restored before anything else
            raise RuntimeError("stop")
    assert (target / "v").read_text() == "1" and not aside.exists()


# -- class 4: a full disk --------------------------------------------------------------------


def _tmpfs(where: Path, mib: int) -> Path:
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={mib}m", "tmpfs", str(where)],
                             capture_output=True)  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"a full-disk test needs root to mount a {mib} MiB tmpfs; not run here")
    return where


@pytest.fixture
def small_disk(tmp_path):
    """A 5 MiB tmpfs: a real full disk (needs root to mount; skipped, saying so, without)."""
    yield _tmpfs(tmp_path / "small", 5)
    subprocess.run(["umount", "-l", str(tmp_path / "small")], check=False)


def test_a_migration_beside_a_source_on_a_full_disk_is_refused_before_writing(tmp_path):
    from qdrant_client import QdrantClient, models

    disk = _tmpfs(tmp_path / "disk", 16)
    try:
        client = QdrantClient(path=str(disk / "src"))
        client.create_collection("docs", vectors_config=models.VectorParams(
            size=384, distance=models.Distance.COSINE))  # fmt: skip
        rng = np.random.default_rng(0)
        client.upload_collection(
            "docs",
            vectors=rng.standard_normal((4000, 384)),
            payload=[{"t": i} for i in range(4000)],
            ids=list(range(4000)),
        )
        client.close()  # the source nearly fills the disk; its copy cannot fit beside it
        line = run_probe(["migrate", "--backend", "qdrant", "--path", disk / "src", "--collection",
                          "docs", "--dim", 64, "--data-dir", tmp_path / "d"], tmp_path,
                         f"not enough disk space at {disk / 'src'}")  # fmt: skip
        assert "--to-backend" in line
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.mark.parametrize("backend", ["qdrant", "faiss", "hnswlib", "milvus"])
def test_a_build_that_cannot_fit_is_refused_before_writing(tmp_path, small_disk, backend):
    ds = _dataset(tmp_path, n=5000, dim=384)  # ~7.7 MB of vectors for a 5 MiB disk
    line = run_probe(["build", "--dataset", ds, "--backend", backend, "--dim", 384, "--quiet",
                      "--data-dir", small_disk / "d"], tmp_path, "not enough disk space at",
                     output=small_disk / "d")  # fmt: skip
    assert "MiB free" in line and str(small_disk) in line
    collections = [p for p in (small_disk / "d" / backend).glob("*") if "__b" in p.name]
    assert collections == []  # qdrant-edge would have died of SIGBUS half-way


@pytest.mark.parametrize("backend", ["faiss", "hnswlib"])
def test_a_disk_that_fills_mid_write_leaves_the_last_commit(small_disk, backend):
    from smec_index.connectors import open_connector
    from smec_index.connectors.base import IndexSpec
    from smec_index.errors import SmecError

    rng = np.random.default_rng(0)
    connector = open_connector(backend, data_dir=small_disk)
    connector.create("c", IndexSpec(dim=64, index="flat" if backend == "faiss" else "hnsw"))
    connector.add("c", ["a"], rng.standard_normal((1, 64)), [{}])
    connector.flush("c")
    rows = 30_000  # 7.7 MB: the commit cannot fit
    connector.add("c", [f"p{i}" for i in range(rows)], rng.standard_normal((rows, 64)),
                  [{}] * rows)  # fmt: skip
    with pytest.raises(SmecError, match="not enough disk space at .* MiB free"):
        connector.flush("c")
    with pytest.raises(SmecError, match="not enough disk space"):
        connector.close()  # the writes are not durable, and closing says so too
    files = sorted(p.name for p in (small_disk / backend / "c").iterdir())
    with open_connector(backend, data_dir=small_disk) as connector:
        assert connector.count("c") == 1  # the last commit, whole; no half generation beside
    assert len([f for f in files if f.startswith("payloads-")]) == 1, files


# -- found by the property test (tests/test_hostile_property.py) ----------------------------


@pytest.mark.parametrize(
    ("args", "fragment"),
    [(["search", "--backend", "faiss", "--collection", "c", "--like", "d1", "--url", "http://h:1"],
      "--url does not apply to --backend faiss"),
     (["info", "--backend", "milvus", "--collection", "c", "--api-key", "k3y"],
      "--api-key does not apply to --backend milvus"),
     (["migrate", "--backend", "qdrant", "--path", "s", "--collection", "c", "--dim", "8",
       "--uri", "http://h:1"], "--uri does not apply to a qdrant source"),
     (["migrate", "--backend", "milvus", "--uri", "s.db", "--collection", "c", "--dim", "8",
       "--using", "v"], "--using does not apply to a milvus source"),
     (["migrate", "--backend", "qdrant", "--path", "s", "--collection", "c", "--dim", "8",
       "--query-ids", "ids.txt"], "pass --queries too"),
     (["search", "--backend", "faiss", "--collection", "c", "--like", "d1", "--model", "m"],
      "leave --model out"),
     (["bench", "--dataset", "synthetic:100x8", "--dims", ",,", "--out", "r.jsonl"],
      "use whole numbers"),
     (["info", "--backend", "faiss", "--collection", "c", "--data-dir", "afile/x"],
      "is a file, not a directory"),
     (["bench", "--dataset", "synthetic:100x8", "--out", "afile/r.jsonl"],
      "is a file, not a directory"),
     (["eval", "--dataset", "ds", "--qrels", "nowhere.tsv"], "does not exist")],
)  # fmt: skip
def test_flags_that_would_be_ignored_or_break_deep_inside(tmp_path, monkeypatch, args, fragment):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("x")
    (tmp_path / "ids.txt").write_text("q1\n")
    run_probe(args, tmp_path, fragment)


def test_a_flag_from_the_environment_is_a_standing_setting_not_a_stray_flag(tmp_path, monkeypatch):
    _build(tmp_path)
    monkeypatch.setenv("QDRANT_API_KEY", "k3y-from-env")  # set for the user's Qdrant work
    _ok(*_search(tmp_path, "--collection", "x15", "--like", "d1"))


def test_a_control_character_in_a_value_cannot_break_the_one_line(tmp_path):
    line = run_probe(["migrate", "--backend", "qdrant", "--path", tmp_path, "--collection",
                      "a\x0bb\u2028c", "--dim", 8], tmp_path, "collection name")  # fmt: skip
    assert "\\x0b" in line and "\\u2028" in line


def test_the_shells_working_directory_is_not_a_secret():
    from smec_index.secrets import process_secrets

    environ = {"PWD": "/data", "OLDPWD": "/home", "DB_PASSWORD": "hunter2"}
    found = process_secrets(["--path", "/data/src"], environ)
    assert found == ["hunter2"]


# -- class 10: only what can pass is retried ------------------------------------------------


def test_a_lost_server_is_transient_and_bad_data_or_a_full_disk_is_not():
    import errno

    from qdrant_client import QdrantClient

    from smec_index.connectors.qdrant.source import call
    from smec_index.errors import SmecError
    from smec_index.migration.stream import is_transient

    client = QdrantClient(url="http://127.0.0.1:1", timeout=2)  # nothing listens there
    with pytest.raises(SmecError) as lost:
        call("reading", "127.0.0.1:1", lambda: client.get_collections())
    assert is_transient(lost.value), lost.value
    assert is_transient(ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"))
    assert not is_transient(SmecError("50 ids for 100 vectors"))
    assert not is_transient(OSError(errno.ENOSPC, "No space left on device"))
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise SmecError("Milvus insert failed at x.db: write error") from None
    except SmecError as full:
        assert not is_transient(full)


# -- the second sweep (a fresh tester, 300+ probes): what it found ----------------------------


def test_an_unknown_group_option_is_one_line(tmp_path):
    run_probe(["--bogus"], tmp_path, "No such option '--bogus'")
    run_probe([], tmp_path, "no command given; use one of train, eval")


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [(["--method", "pca", "--seed", "5"], "--seed does not apply to pca"),
     (["--method", "truncate", "--device", "cpu"], "--device does not apply to truncate"),
     (["--unsupervised", "--skip-unknown-qrels"], "--unsupervised reads none"),
     (["--method", "pca", "--skip-unknown-qrels"], "--skip-unknown-qrels does not apply"),
     (["--lead-in", "0.1", "--epochs", "1"], "--lead-in 0.1: no lead-in stage")],
)  # fmt: skip
def test_training_flags_that_would_change_nothing_are_refused(tmp_path, flags, fragment):
    ds = _dataset(tmp_path)
    run_probe(["train", "--dataset", ds, "--dims", 8, "--out", tmp_path / "a", "--quiet",
               *flags], tmp_path, fragment)  # fmt: skip


@pytest.mark.parametrize("backend", ["faiss", "hnswlib", "qdrant", "milvus"])
def test_hnsw_m_below_two_is_refused_not_crashed(tmp_path, backend):
    ds = _dataset(tmp_path)
    run_probe(["build", "--dataset", ds, "--backend", backend, "--dim", 16, "--data-dir",
               tmp_path / "d", "--m", 1, "--quiet"], tmp_path, "M=1: use 2 to 512")  # fmt: skip


def test_force_train_with_an_artifact_is_refused(tmp_path):
    ds = _dataset(tmp_path)
    _ok("train", "--dataset", ds, "--method", "pca", "--dims", 8, "--out", tmp_path / "a")
    run_probe(["build", "--dataset", ds, "--backend", "faiss", "--dim", 8, "--artifact",
               tmp_path / "a", "--force-train", "--data-dir", tmp_path / "d"], tmp_path,
              "--force-train")  # fmt: skip


def test_json_nested_beyond_the_parser_is_one_line(tmp_path):
    ds = _dataset(tmp_path)
    art = tmp_path / "art"
    _ok("train", "--dataset", ds, "--method", "pca", "--dims", 8, "--out", art, "--quiet")
    (art / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    run_probe(["eval", "--dataset", ds, "--artifact", art], tmp_path, "corrupt JSON")
    corpus = ds / "corpus.jsonl"
    corpus.write_text(corpus.read_text() + '{"_id": "deep", "text": ' + "[" * 100_000 + "\n")
    run_probe(["build", "--dataset", ds, "--backend", "faiss", "--dim", 16, "--data-dir",
               tmp_path / "d", "--quiet"], tmp_path, "not valid JSON",
              output=tmp_path / "d")  # fmt: skip


def test_parquet_vectors_that_are_not_numbers_are_one_line(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    ds = _dataset(tmp_path)
    emb = tmp_path / "emb"
    emb.mkdir()
    pq.write_table(pa.table({"id": ["d0", "d1"], "vector": [["a", "b"], ["c", "d"]]}),
                   emb / "corpus.parquet")  # fmt: skip
    pq.write_table(pa.table({"id": ["q0"], "vector": [[1.0, 0.0]]}), emb / "queries.parquet")
    run_probe(["eval", "--dataset", ds, "--embeddings", emb, "--method", "none"], tmp_path,
              "holds lists of string, not of numbers")  # fmt: skip


def test_an_unpaired_surrogate_in_a_text_is_refused_before_any_backend_sees_it(tmp_path):
    ds = _dataset(tmp_path)
    corpus = ds / "corpus.jsonl"
    lines = corpus.read_text().splitlines()
    lines[3] = '{"_id": "d3", "title": "t", "text": "caf\\udce9"}'
    corpus.write_text("\n".join(lines) + "\n")
    run_probe(
        [
            "build",
            "--dataset",
            ds,
            "--backend",
            "qdrant",
            "--dim",
            16,
            "--data-dir",
            tmp_path / "d",
            "--quiet",
        ],
        tmp_path,
        "corpus.jsonl:4",
        output=tmp_path / "d",
    )  # its lock file: the data dir is the build's own
    assert not list((tmp_path / "d").glob("qdrant/*__b*"))  # no collection was begun


@pytest.mark.parametrize(("field", "value"), [("model", 5), ("artifact", 7), ("dim", "16")])
def test_a_manifest_field_of_the_wrong_type_is_a_corrupt_manifest(tmp_path, field, value):
    physical = _build(tmp_path)["physical_collection"]
    path = tmp_path / "data" / "manifests" / "faiss" / f"{physical}.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), field: value}))
    for args in (["search", "heart"], ["search", "--like", "d1"], ["info"]):
        run_probe([args[0], *args[1:], "--backend", "faiss", "--data-dir", tmp_path / "data",
                   "--collection", "x15"], tmp_path, "corrupt manifest")  # fmt: skip


def test_an_embeddings_meta_json_that_is_no_object_means_an_unknown_model(tmp_path):
    ds = _dataset(tmp_path)
    (ds / "embeddings" / "all-MiniLM-L6-v2" / "meta.json").write_text("[1, 2]")
    built = _build(tmp_path)
    assert built["count"] == N


def test_a_damaged_qdrant_spec_file_is_one_line(tmp_path):
    from smec_index.connectors.qdrant.edge_store import SPEC_FILE

    physical = _build(tmp_path, "qdrant")["physical_collection"]
    (tmp_path / "data" / "qdrant" / physical / SPEC_FILE).write_text("garbage")
    run_probe(["info", "--backend", "qdrant", "--data-dir", tmp_path / "data", "--collection",
               "x15"], tmp_path, "unreadable")  # fmt: skip


def test_info_takes_a_local_path_or_a_server_not_both(tmp_path):
    run_probe(["info", "--backend", "qdrant", "--path", tmp_path, "--url", "http://h:1",
               "--collection", "c"], tmp_path, "pass one of them")  # fmt: skip


def test_skipping_every_unknown_judgement_is_one_error_not_a_warning_and_an_error(tmp_path):
    ds = _dataset(tmp_path, qrels="QQQ\tDDD\t1\n")
    run_probe(["eval", "--dataset", ds, "--method", "none", "--skip-unknown-qrels"], tmp_path,
              "would leave no relevant judgement")  # fmt: skip


@pytest.mark.parametrize(
    ("url", "hidden"),
    [("http://bob:hunter@2secret@127.0.0.1:9", "2secret"),
     ("http://bob:p4ss/w0rdQ@127.0.0.1:9", "p4ss"),
     ("http://bob:hunter2sec#ret@127.0.0.1:9", "hunter2sec")],
)  # fmt: skip
def test_a_password_with_reserved_characters_is_hidden_whole(tmp_path, url, hidden):
    line = run_probe(["info", "--backend", "qdrant", "--collection", "c", "--url", url],
                     tmp_path, "--url http://127.0.0.1:9")  # fmt: skip
    assert hidden not in line and "bob" not in line


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [(["--to-backend", "faiss", "--to-mode", "local"], "--to-mode does not apply"),
     (["--to-backend", "qdrant", "--to-uri", "x.db"], "--to-uri does not apply"),
     (["--dry-run", "--restart"], "--restart would do nothing"),
     (["--dry-run", "--overwrite"], "--overwrite would do nothing"),
     (["--dry-run", "--rollback", "--alias", "live"], "--rollback would do nothing")],
)  # fmt: skip
def test_migrate_flags_that_cannot_go_together(tmp_path, flags, fragment):
    run_probe(["migrate", "--backend", "qdrant", "--path", tmp_path, "--collection", "docs",
               "--dim", 8, "--data-dir", tmp_path / "d", *flags], tmp_path, fragment)  # fmt: skip


def test_in_place_on_milvus_is_refused_before_the_file_is_opened(tmp_path):
    run_probe(["migrate", "--backend", "milvus", "--uri", tmp_path / "none.db", "--collection",
               "docs", "--dim", 8, "--in-place"], tmp_path, "drop --in-place")  # fmt: skip


@pytest.mark.parametrize("command", ["build", "migrate"])
def test_a_milvus_uri_of_another_scheme_is_no_lite_folder(tmp_path, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    ds = _dataset(tmp_path)
    args = (["build", "--dataset", ds, "--backend", "milvus", "--dim", 8, "--quiet",
             "--data-dir", tmp_path / "d"] if command == "build" else
            ["migrate", "--backend", "milvus", "--collection", "c", "--dim", 8])  # fmt: skip
    run_probe([*args, "--uri", "ftp://127.0.0.1:1"], tmp_path, "ftp://127.0.0.1:1",
              output=tmp_path / "d")  # fmt: skip
    assert not (tmp_path / "ftp:").exists()


def test_supervised_inputs_are_checked_before_anything_is_written(tmp_path):
    from qdrant_client import QdrantClient, models

    client = QdrantClient(path=str(tmp_path / "src"))
    client.create_collection("docs", vectors_config=models.VectorParams(
        size=16, distance=models.Distance.COSINE))  # fmt: skip
    rng = np.random.default_rng(0)
    client.upsert("docs", [models.PointStruct(id=i, vector=rng.standard_normal(16).tolist())
                           for i in range(50)])  # fmt: skip
    client.close()
    np.save(tmp_path / "q.npy", rng.standard_normal((3, 16)).astype(np.float32))
    (tmp_path / "q.txt").write_text("a\nb\nc\n")
    (tmp_path / "qrels.tsv").write_text("zz\t1\t1\n")  # no query of --queries
    run_probe(["migrate", "--backend", "qdrant", "--path", tmp_path / "src", "--collection",
               "docs", "--dim", 8, "--data-dir", tmp_path / "d", "--queries", tmp_path / "q.npy",
               "--query-ids", tmp_path / "q.txt", "--qrels", tmp_path / "qrels.tsv"], tmp_path,
              "none of its queries are in --queries")  # fmt: skip
    assert not (tmp_path / "d").exists()


def test_a_server_that_answers_but_is_not_qdrant_is_one_line(tmp_path):
    import http.server
    import threading

    class Html(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the handler's name
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html>a proxy's login page</html>")

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Html)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        run_probe(["info", "--backend", "qdrant", "--collection", "c", "--url", url], tmp_path,
                  "not as a Qdrant server")  # fmt: skip
        migrate = ["migrate", "--backend", "qdrant", "--url", url, "--collection", "c"]
        run_probe([*migrate, "--dim", 8, "--data-dir", tmp_path / "d"], tmp_path,
                  "not as a Qdrant server")  # fmt: skip
    finally:
        server.shutdown()


def test_a_secret_looking_session_parameter_is_hidden(tmp_path):
    url = "http://127.0.0.1:9/?session=s3cr3tKEY"
    line = run_probe(["info", "--backend", "qdrant", "--collection", "c", "--url", url],
                     tmp_path, "session=***")  # fmt: skip
    assert "s3cr3tKEY" not in line


SWEEPS = [
    (["--dataset", "synthetic:3x2"], "N at least 10"),
    (["--dataset", "synthetic:" + "9" * 5000 + "x8"], "synthetic:NxD"),
    (["--dims", "8,8"], "a value twice"),
    (["--nprobe", "4"], "nprobe would change no run"),
    (["--index", "flat", "--ef-search", "32"], "ef_search would change no run"),
    (["--embeddings", "x"], "embeddings would change no run"),
    (["--latency-queries", "2147483647"], "at most 1,000,000"),
]


@pytest.mark.parametrize(("flags", "fragment"), SWEEPS, ids=[s[1] for s in SWEEPS])
def test_a_sweep_setting_that_cannot_work_is_refused_before_any_run(tmp_path, flags, fragment):
    args = ["bench", "--out", tmp_path / "r.jsonl", *flags]
    if "--dataset" not in flags:
        args += ["--dataset", "synthetic:100x16"]
    run_probe(args, tmp_path, fragment)


@pytest.mark.parametrize(
    ("toml", "fragment"),
    [(b"dims = [8]\n\xff\n", "not UTF-8"), (b"datasets = 5\n", "datasets 5"),
     (b"datasets = [5]\n", "datasets [5]"), (b"x = " + b"[" * 5000 + b"]" * 5000 + b"\n",
      "--config"), (b"M = 1\n", "M=1: use 2 to 512"),
     (b'train_split = "test"\nmethods = ["smec"]\n', "scored on the queries they learned")],
)  # fmt: skip
def test_a_bench_config_that_cannot_work_is_one_line(tmp_path, toml, fragment):
    config = tmp_path / "c.toml"
    config.write_bytes(toml)
    run_probe(["bench", "--config", config, "--dataset", _dataset(tmp_path), "--out",
               tmp_path / "r.jsonl"], tmp_path, fragment)  # fmt: skip


def test_a_bench_config_with_a_byte_order_mark_is_read(tmp_path):
    config = tmp_path / "c.toml"
    config.write_bytes(b'\xef\xbb\xbfmethods = ["none"]\nlatency_queries = 5\nconcurrency = [1]\n')
    _ok("bench", "--config", config, "--dataset", "synthetic:100x16", "--out",
        tmp_path / "r.jsonl")  # fmt: skip
    assert (tmp_path / "r.jsonl").is_file()


@pytest.mark.parametrize(
    ("change", "fragment"),
    [({"dim": 10**400}, "'dim'"), ({"bytes_per_vector": 0}, "bytes_per_vector"),
     ({"concurrency": {"4": 7}}, "'concurrency'"),
     ({"concurrency": {"4": {"qps": "x", "p99_ms": 1}}}, "'concurrency'"),
     ({"scan_gb_per_s": 1.0}, "'machine'"), ({"machine": {"memory_gb_per_s": "x"}}, "'machine'"),
     ({"time": 5}, "'time'"), ({"versions": "x"}, "'versions'"), ({"key": "<drop>"}, "'key'")],
)  # fmt: skip
def test_report_refuses_damaged_fields_it_would_plot(tmp_path, change, fragment):
    run_probe(["report", _results(tmp_path, **change), "--out", tmp_path / "rep"],
              tmp_path, fragment)  # fmt: skip


@pytest.mark.parametrize("command", [["info"], ["search", "--like", "d1"]])
def test_reading_a_milvus_lite_file_that_is_not_there_creates_none(tmp_path, command):
    run_probe([*command, "--backend", "milvus", "--collection", "c", "--data-dir",
               tmp_path / "d"], tmp_path, "no milvus-lite database at")  # fmt: skip
    run_probe([*command, "--backend", "milvus", "--collection", "c", "--uri",
               tmp_path / "x.db"], tmp_path, "no milvus-lite database at")  # fmt: skip


def test_a_parquet_id_with_a_newline_is_refused(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    ds = _dataset(tmp_path)
    emb = tmp_path / "emb"
    emb.mkdir()
    table = {"id": ["d0", "d\n1"], "vector": [[1.0, 0.0], [0.0, 1.0]]}
    pq.write_table(pa.table(table), emb / "corpus.parquet")
    pq.write_table(pa.table({"id": ["q0"], "vector": [[1.0, 0.0]]}), emb / "queries.parquet")
    run_probe(["eval", "--dataset", ds, "--embeddings", emb, "--method", "none"], tmp_path,
              "newline or control character")  # fmt: skip


def test_points_whose_vectors_are_not_numbers_are_a_damaged_store():
    from smec_index.connectors.qdrant.settings import to_batch
    from smec_index.errors import SmecError

    with pytest.raises(SmecError, match="storage is damaged"):
        to_batch([("a", {}, {"named": [1.0, 2.0]})], dim=2)


def test_an_artifact_that_fills_the_disk_is_one_line_and_leaves_nothing(tmp_path, small_disk):
    ds = _dataset(tmp_path, n=500, dim=384)
    filler = small_disk / "filler"
    free = __import__("shutil").disk_usage(small_disk).free
    filler.write_bytes(b"\0" * (free - 64 * 1024))  # room for the config, not the weights
    line = run_probe(["train", "--dataset", ds, "--method", "pca", "--dims", "64,32", "--out",
                      small_disk / "art", "--quiet"], tmp_path, "no space left",
                     output=small_disk)  # fmt: skip
    assert "internal error" not in line
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]  # no staging, no art


def test_a_damaged_qdrant_client_folder_is_one_line(tmp_path):
    from qdrant_client import QdrantClient, models

    client = QdrantClient(path=str(tmp_path / "q"))
    client.create_collection("docs", vectors_config=models.VectorParams(
        size=16, distance=models.Distance.COSINE))  # fmt: skip
    client.close()
    (tmp_path / "q" / "meta.json").write_text("[1]")
    run_probe(["migrate", "--backend", "qdrant", "--path", tmp_path / "q", "--collection", "docs",
               "--dim", 8, "--data-dir", tmp_path / "d"], tmp_path,
              "its meta.json is damaged")  # fmt: skip


def test_force_train_at_the_original_dim_is_refused(tmp_path):
    ds = _dataset(tmp_path)
    run_probe(["build", "--dataset", ds, "--backend", "faiss", "--dim", 16, "--force-train",
               "--data-dir", tmp_path / "d", "--quiet"], tmp_path, "nothing is trained",
              output=tmp_path / "d")  # fmt: skip
