"""Hostile input, the twentieth sweep and after (issue 23): each probe failed before its fix."""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from smec_index.cli import main
from smec_index.connectors import open_connector
from smec_index.connectors.base import IndexSpec
from smec_index.errors import SmecError
from smec_index.index import CompressedIndex
from tests.test_probes_hostile import _dataset


def _user_milvus(db: Path, name: str = "docs", n: int = 30, dim: int = 16) -> None:
    """A collection an app made with pymilvus: its own schema, ``n`` rows."""
    from pymilvus import DataType, MilvusClient

    client = MilvusClient(str(db))
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("pk", DataType.INT64, is_primary=True)
    schema.add_field("emb", DataType.FLOAT_VECTOR, dim=dim)
    schema.add_field("title", DataType.VARCHAR, max_length=32)
    index = client.prepare_index_params()
    index.add_index("emb", index_type="FLAT", metric_type="COSINE")
    client.create_collection(name, schema=schema, index_params=index)
    rows = np.random.default_rng(0).standard_normal((n, dim))
    client.insert(name, [{"pk": i, "emb": rows[i].tolist(), "title": f"t{i}"} for i in range(n)])
    client.flush(name)
    client.close()


def _user_rows(db: Path, name: str = "docs") -> tuple[list[str], int]:
    from pymilvus import MilvusClient

    client = MilvusClient(str(db))
    try:
        fields = [f["name"] for f in client.describe_collection(name)["fields"]]
        count = client.query(name, filter="", output_fields=["count(*)"])[0]["count(*)"]
        return fields, count
    finally:
        client.close()


# -- the twentieth sweep (API side and migrations): its faults --------------------------------


@pytest.mark.slow
def test_build_overwrite_never_replaces_a_users_own_milvus_collection(tmp_path):
    ds = _dataset(tmp_path)
    db = tmp_path / "app" / "app.db"
    db.parent.mkdir()
    _user_milvus(db)
    for extra in ([], ["--overwrite"]):
        result = CliRunner().invoke(main, [
            "build", "--dataset", str(ds), "--backend", "milvus", "--uri", str(db),
            "--collection", "docs", "--dim", "16", "--data-dir", str(tmp_path / "sd"),
            "--quiet", *extra])  # fmt: skip
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert result.exit_code == 2 and len(lines) == 1, result.output
        assert "was not made by smec-index" in lines[0] and "--overwrite" not in lines[0]
        assert "another --collection" in lines[0]
    assert _user_rows(db) == (["pk", "emb", "title"], 30)  # replaced by id/vector/payload before


def test_connector_create_overwrite_never_replaces_a_users_own_collection(tmp_path):
    from qdrant_client import QdrantClient, models

    db = tmp_path / "app.db"
    _user_milvus(db)
    with open_connector("milvus", uri=str(db)) as connector:
        for overwrite in (False, True):
            with pytest.raises(SmecError, match="was not made by smec-index"):
                connector.create("docs", IndexSpec(dim=8, index="flat"), overwrite=overwrite)
        with pytest.raises(SmecError, match="was not made by smec-index"):
            CompressedIndex(connector, "docs", None, dim=8).create({}, "flat", overwrite=True)
        with pytest.raises(SmecError, match="drop it with your own client"):
            connector.drop("docs")  # search refused it as someone's own, drop deleted it
        connector.create("mine", IndexSpec(dim=8, index="flat"))  # its own: replaceable
        connector.create("mine", IndexSpec(dim=4, index="flat"), overwrite=True)
        assert connector.spec("mine").dim == 4
    assert _user_rows(db) == (["pk", "emb", "title"], 30)
    # the same in a qdrant-client folder (local mode keeps it under DATA_DIR/qdrant-local)
    client = QdrantClient(path=str(tmp_path / "d" / "qdrant-local"))
    client.create_collection("docs", vectors_config=models.VectorParams(
        size=8, distance=models.Distance.COSINE))  # fmt: skip
    client.upsert("docs", models.Batch(ids=[1, 2], vectors=[[0.1] * 8, [0.2] * 8]))
    client.close()
    with open_connector("qdrant", data_dir=tmp_path / "d", mode="local") as connector:
        with pytest.raises(SmecError, match="was not made by smec-index"):
            connector.create("docs", IndexSpec(dim=4, index="flat"), overwrite=True)
    client = QdrantClient(path=str(tmp_path / "d" / "qdrant-local"))
    assert client.count("docs").count == 2
    client.close()


@pytest.mark.slow
def test_an_edge_shard_sources_sparse_vectors_are_in_the_schema_diff(tmp_path):
    import qdrant_edge as edge

    rows = np.random.default_rng(0).standard_normal((120, 16)).astype(np.float32)
    shard = edge.EdgeShard.create(str(tmp_path / "edge" / "docs"), edge.EdgeConfig(
        vectors={"d": edge.EdgeVectorParams(size=16, distance=edge.Distance.Cosine)},
        sparse_vectors={"s": edge.EdgeSparseVectorParams()}))  # fmt: skip
    sparse = edge.SparseVector(indices=[1, 2], values=[0.5, 0.1])
    points = [edge.Point(i, {"d": rows[i].tolist(), "s": sparse}, {"i": i}) for i in range(120)]
    shard.update(edge.UpdateOperation.upsert_points(points))
    shard.close()
    result = CliRunner().invoke(main, [
        "migrate", "--backend", "qdrant", "--path", str(tmp_path / "edge"), "--collection",
        "docs", "--dim", "8", "--data-dir", str(tmp_path / "sd"), "--to-backend", "qdrant",
        "--allow-schema-change", "--dry-run", "--json", "--quiet"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "sparse vectors s -> not carried" in json.loads(result.output)["schema_diff"]


def test_api_addresses_and_options_of_other_types_are_one_line(tmp_path):
    from smec_index.connectors.source import open_source
    from smec_index.migration.runner import MigrateRequest, migrate

    db = tmp_path / "app.db"
    _user_milvus(db)
    source = open_source("milvus", "docs", uri=db)  # a Path, as open_connector takes
    assert source.info.dim == 16
    source.close()
    with pytest.raises(SmecError, match="path: a path is a str"):
        open_source("qdrant", "docs", path=b"q")
    with pytest.raises(SmecError, match="milvus takes no option 'zzz'"):
        open_connector("milvus", uri=str(db), zzz=1)
    base = {"backend": "milvus", "collection": "docs", "dim": 8, "data_dir": tmp_path / "sd",
            "source": {"uri": db}}  # fmt: skip
    for bad, fragment in [
        ({"min_recall": "0.5"}, "--min-recall '0.5'"),
        ({"min_recall": None}, "--min-recall None"),
        ({"min_recall": True}, "--min-recall True"),
        ({"source": {"pth": "x", "uri": db}}, "source: unknown option 'pth'"),
        ({"to_backend": "milvus", "to_options": {"zzz": 1}}, "to_options: unknown option 'zzz'"),
        ({"to_backend": "milvus", "to_options": {"data_dir": "x"}},
         "data_dir is a field of its own"),
    ]:
        with pytest.raises(SmecError, match=fragment.replace("(", r"\(")):
            migrate(MigrateRequest(**{**base, **bad}), say=lambda *_: None)
    assert not (tmp_path / "sd").exists()
    assert _user_rows(db) == (["pk", "emb", "title"], 30)


# -- the twentieth sweep (command line): its judgement calls made rules ------------------------


def test_a_bench_results_file_with_a_torn_last_line_keeps_its_whole_runs(tmp_path):
    """A bench killed while appending leaves a last line cut off: the runs before it are
    kept (report reads them with a note, the next bench replaces the torn line), as a
    database keeps what was committed before a torn log write. Refused whole before."""
    results = tmp_path / "r.jsonl"
    common = ["bench", "--dataset", "synthetic:500x16", "--methods", "none,pca", "--dims",
              "16,8", "--latency-queries", "5", "--concurrency", "1"]  # fmt: skip
    _ok_cli(*common, "--out", results)
    whole = results.read_bytes()
    assert whole.count(b"\n") == 2
    torn = tmp_path / "t.jsonl"
    torn.write_bytes(whole[:-40])
    done = CliRunner().invoke(main, ["report", str(torn), "--out", str(tmp_path / "rep")])
    assert done.exit_code == 0, done.output
    assert "last line was cut off" in done.output and "the 1 run before it kept" in done.output
    _ok_cli(*common, "--out", torn)  # measures the torn run again, in place of the torn line
    lines = torn.read_bytes().splitlines()
    assert len(lines) == 2 and all(json.loads(line)["schema"] for line in lines)
    # a last line without its newline that is whole JSON is a run, not a torn one
    results.write_bytes(whole[:-1])
    done = CliRunner().invoke(main, ["report", str(results), "--out", str(tmp_path / "r2")])
    assert done.exit_code == 0 and "cut off" not in done.output, done.output


def test_a_flag_given_by_the_environment_is_named_by_its_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("QDRANT_URL", "http://bob:pw@127.0.0.1:9/")
    line = _error_line(["info", "--collection", "x"])
    assert line.startswith("error: QDRANT_URL http://127.0.0.1:9/:") and "pw" not in line
    line = _error_line(["info", "--collection", "x", "--url", "http://a:b@127.0.0.1:9/"])
    assert line.startswith("error: --url http://127.0.0.1:9/:")  # the flag, where it was given
    monkeypatch.setenv("MILVUS_URI", "http://bob:pw@127.0.0.1:9")
    assert _error_line(["info", "--backend", "milvus", "--collection", "x"]).startswith(
        "error: MILVUS_URI http://127.0.0.1:9:")  # fmt: skip


def test_a_dangling_data_dir_link_is_named_as_one(tmp_path):
    ds = _dataset(tmp_path)
    (tmp_path / "dangle").symlink_to(tmp_path / "nowhere")
    line = _error_line(["build", "--dataset", ds, "--dim", "16", "--backend", "faiss",
                        "--data-dir", tmp_path / "dangle", "--quiet"])  # fmt: skip
    assert "a symbolic link to" in line and "which does not exist" in line
    assert not (tmp_path / "nowhere").exists()


def _python(code: str, *args) -> subprocess.CompletedProcess:
    """``code`` run by this Python in a process of its own (``sys.argv[1:]``: ``args``)."""
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def _ok_cli(*args) -> str:
    done = CliRunner().invoke(main, [str(a) for a in args])
    assert done.exit_code == 0, done.output
    return done.output


def _error_line(args: list) -> str:
    done = CliRunner().invoke(main, [str(a) for a in args])
    lines = [line for line in done.output.splitlines() if line.strip()]
    assert done.exit_code == 2 and len(lines) == 1, done.output
    return lines[0]


# -- the twenty-first sweep (API side and migrations): its faults ------------------------------


def _ivf_source(db: Path) -> None:
    """A small milvus-lite collection with an IVF_FLAT index, made by an app that exits
    without closing its client (its rows not yet sealed): opening it builds the index, and
    FAISS's k-means warns that 200 points are few for 128 centroids, on stderr."""

    script = f"""
import numpy as np
from pymilvus import DataType, MilvusClient
client = MilvusClient({str(db)!r})
schema = MilvusClient.create_schema(auto_id=False)
schema.add_field("id", DataType.INT64, is_primary=True)
schema.add_field("v", DataType.FLOAT_VECTOR, dim=32)
index = client.prepare_index_params()
index.add_index("v", index_type="IVF_FLAT", metric_type="COSINE")
client.create_collection("docs", schema=schema, index_params=index)
rows = np.random.default_rng(0).standard_normal((200, 32)).astype(np.float32)
client.insert("docs", [{{"id": i, "v": rows[i].tolist()}} for i in range(200)])
"""
    made = _python(script)
    assert made.returncode == 0, made.stderr


@pytest.mark.slow
def test_migrating_a_small_ivf_milvus_lite_source_prints_no_faiss_advice(tmp_path):

    _ivf_source(tmp_path / "m.db")
    common = [sys.executable, "-m", "smec_index.cli", "migrate", "--backend", "milvus",
              "--uri", str(tmp_path / "m.db"), "--collection", "docs", "--dim", "8",
              "--min-recall", "0", "--quiet", "--data-dir"]  # fmt: skip
    done = subprocess.run([*common, str(tmp_path / "d")], capture_output=True, text=True,
                          cwd=Path(__file__).parent.parent, timeout=300)  # fmt: skip
    assert done.returncode == 0 and done.stderr == "", done.stderr  # the advice was printed
    done = subprocess.run([*common, str(tmp_path / "d2"), "--to", "docs_8"], capture_output=True,
                          text=True, cwd=Path(__file__).parent.parent, timeout=300)  # fmt: skip
    lines = done.stderr.splitlines()
    assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), lines


def test_a_source_is_searched_with_finite_vectors_only(tmp_path):
    from smec_index.connectors.source import open_source
    from tests.probes import qdrant_source

    qdrant_source(tmp_path, n=20, dim=16)
    with _no_warnings():
        source = open_source("qdrant", "docs", path=tmp_path / "q")
        try:
            for bad in (np.full((1, 16), np.inf), np.r_[[np.inf], np.ones(15)][None]):
                with pytest.raises(SmecError, match="query vectors hold NaN or inf"):
                    source.search(bad.astype(np.float32), 3)  # NaN-scored ids before
            with pytest.raises(SmecError, match=r"searched with \(n, 16\) vectors"):
                source.search(np.ones((1, 8), np.float32), 3)
            with pytest.raises(SmecError, match="k must be"):
                source.search(np.ones((1, 16), np.float32), 0)
            assert len(source.search(np.ones((1, 16), np.float32), 3)[0]) == 3
        finally:
            source.close()


def test_a_mirror_never_drops_its_source(tmp_path):
    from smec_index.connectors.source import open_source
    from tests.probes import qdrant_source

    qdrant_source(tmp_path, n=20, dim=16)
    source = open_source("qdrant", "docs", path=tmp_path / "q")
    try:
        with pytest.raises(SmecError, match="is the migration's source"):
            source.mirror().drop("docs")
    finally:
        source.close()
    db = tmp_path / "app.db"
    _user_milvus(db)
    source = open_source("milvus", "docs", uri=db)
    try:
        with pytest.raises(SmecError, match="is the migration's source"):
            source.mirror().drop("docs")
    finally:
        source.close()
    assert _user_rows(db) == (["pk", "emb", "title"], 30)


def test_migrate_request_fields_of_other_types_are_one_line(tmp_path):
    from smec_index.migration.runner import MigrateRequest, migrate

    base = {"backend": "qdrant", "collection": "docs", "dim": 8, "data_dir": tmp_path / "sd",
            "source": {"path": str(tmp_path / "q")}}  # fmt: skip
    for bad, fragment in [
        ({"source": {"path": 123}}, "path: a path is a str"),
        ({"source": {"url": 5}}, "url must be a server address"),
        ({"partition": (0, 2)}, "partition (0, 2): pass 'K/N' as text"),
        ({"dry_run": "no"}, "dry_run must be True or False"),
        ({"artifact": 7}, "artifact: a path is a str"),
    ]:
        with pytest.raises(SmecError, match=re.escape(fragment)):
            migrate(MigrateRequest(**{**base, **bad}), say=lambda *_: None)
    assert not (tmp_path / "sd").exists()


@contextlib.contextmanager
def _no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning from an inf query fails the probe
        yield


def test_a_multivector_is_never_offered_as_the_vector_to_compress(tmp_path):
    from qdrant_client import QdrantClient, models

    from smec_index.connectors.source import open_source

    client = QdrantClient(path=str(tmp_path / "q"))
    multi = models.MultiVectorConfig(comparator=models.MultiVectorComparator.MAX_SIM)
    client.create_collection("docs", vectors_config={
        "dense": models.VectorParams(size=16, distance=models.Distance.COSINE),
        "colb": models.VectorParams(size=8, distance=models.Distance.COSINE,
                                    multivector_config=multi)})  # fmt: skip
    client.create_collection("multi", vectors_config={"colb": models.VectorParams(
        size=8, distance=models.Distance.COSINE, multivector_config=multi)})  # fmt: skip
    client.close()
    source = open_source("qdrant", "docs", path=tmp_path / "q")  # asked for --using, offering colb
    try:
        assert source.info.vector == "dense"
    finally:
        source.close()
    with pytest.raises(SmecError, match="has only multivectors"):
        open_source("qdrant", "multi", path=tmp_path / "q")
    with pytest.raises(SmecError, match="pass one of its dense vectors: 'dense'$"):
        open_source("qdrant", "docs", path=tmp_path / "q", using="nope")


# -- the twenty-first sweep (command line): its fault ------------------------------------------


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="no /proc here")
def test_report_of_a_proc_file_is_one_line(tmp_path):
    for path in ("/proc/self/status", "/proc/cpuinfo"):  # an internal error (a seek) before
        line = _error_line(["report", path, "--out", tmp_path / "rep"])
        assert line.startswith(f"error: {path}:1: not a JSON line"), line
    assert not (tmp_path / "rep").exists()


def test_qdrant_quantization_flags_on_other_backends_name_themselves(tmp_path):
    ds = _dataset(tmp_path)
    line = _error_line(["build", "--dataset", ds, "--dim", "8", "--backend", "milvus", "--data-dir",
                        tmp_path / "d", "--quantization", "binary", "--no-rescore"])  # fmt: skip
    assert "--quantization, --no-rescore do not apply to --backend milvus" in line
    assert not (tmp_path / "d").exists()


# -- the twenty-second sweep: its faults ------------------------------------------------------


def test_fit_checks_the_qrels_it_is_given(synthetic):
    from smec_index.compressors import make_compressor

    data, train, _ = synthetic
    query, rels = next(iter(train.items()))
    for bad, fragment in [
        ({**train, query: {**rels, "no-such-doc": 1}}, "document 'no-such-doc' is not in"),
        ({**train, "zz": dict(rels)}, "query 'zz' has no query embedding"),
        ([(query, "d")], "got list"),
        ({query: 1}, "got a dict of int"),
        ({query: {next(iter(rels)): "x"}}, "grades are whole numbers"),
        ({1: dict(rels)}, "qrels ids are strings"),
    ]:
        for method in ("dive", "smec", "search-adaptor"):  # a raw KeyError or TypeError before
            with pytest.raises(SmecError, match=re.escape(fragment)):
                make_compressor(method, (8,), progress=False, max_epochs=1).fit(data, bad)


def test_numbers_beyond_float_are_refused_as_settings(tmp_path):
    from smec_index.compressors import make_compressor

    for method, name in [("dive", "margin"), ("dive", "view_weight"), ("smec", "alpha"),
                         ("smec", "lr"), ("search-adaptor", "reconstruction")]:  # fmt: skip
        with pytest.raises(SmecError, match=f"{name}.* is invalid"):  # OverflowError before
            make_compressor(method, (8,), **{name: 2**2000})


def test_supervised_only_methods_never_advise_unsupervised(tmp_path):
    ds = _dataset(tmp_path, qrels="q0\td0\t1\nq1\td1\t1\n")
    for method in ("dive", "search-adaptor"):
        line = _error_line(["train", "--dataset", ds, "--method", method, "--dims", "8",
                            "--out", tmp_path / method, "--quiet"])  # fmt: skip
        assert "supervised only" in line and "--unsupervised" not in line, line
    line = _error_line(["train", "--dataset", ds, "--method", "smec", "--dims", "8", "--out",
                        tmp_path / "smec", "--quiet"])  # fmt: skip
    assert "or pass --unsupervised" in line


SMEC_FLAGS = [["--init", "identity"], ["--alpha", "5"], ["--no-ads"], ["--parallel"],
              ["--no-xbm"], ["--memory-size", "10"]]  # fmt: skip


@pytest.mark.parametrize("flag", SMEC_FLAGS)
def test_smec_flags_are_refused_by_methods_that_ignore_them(tmp_path, flag):
    ds = _dataset(tmp_path)
    for method in ("dive", "search-adaptor", "matryoshka-adaptor"):  # recorded as used before
        line = _error_line(["train", "--dataset", ds, "--method", method, "--dims", "8",
                            "--out", tmp_path / method, *flag, "--quiet"])  # fmt: skip
        assert line == f"error: {flag[0]} does not apply to {method} (it is one of SMEC's " \
            "modules and settings); drop it"  # fmt: skip
        assert not (tmp_path / method).exists()


def test_an_artifact_folder_named_like_a_method_is_its_own_run(tmp_path):
    ds = _dataset(tmp_path, n=300, dim=16)
    _ok_cli("train", "--dataset", ds, "--method", "pca", "--dims", "8", "--out",
            tmp_path / "x" / "truncate", "--quiet")  # fmt: skip
    results = tmp_path / "r.jsonl"
    methods = f"truncate,artifact:{tmp_path}/x/truncate"
    out = _ok_cli("bench", "--dataset", ds, "--methods", methods, "--dims", "8", "--out", results,
                  "--latency-queries", "5", "--concurrency", "1")  # fmt: skip
    assert "artifact:truncate" in out
    _ok_cli("report", results, "--out", tmp_path / "rep")
    report = (tmp_path / "rep" / "report.md").read_text()
    assert "measured a setup again" not in report  # the method's run was dropped before
    assert "`artifact:truncate` is" in report


@pytest.mark.slow
def test_a_milvus_key_with_a_line_break_migrates(tmp_path):
    from pymilvus import DataType, MilvusClient

    client = MilvusClient(str(tmp_path / "m.db"))
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=20)
    schema.add_field("v", DataType.FLOAT_VECTOR, dim=16)
    index = client.prepare_index_params()
    index.add_index("v", index_type="FLAT", metric_type="COSINE")
    client.create_collection("docs", schema=schema, index_params=index)
    rows = np.random.default_rng(0).standard_normal((120, 16))
    ids = ["a\nb", "c\rd", "t\tx", *[f"k{i}" for i in range(117)]]
    client.insert("docs", [{"id": ids[i], "v": rows[i].tolist()} for i in range(120)])
    client.close()
    _ok_cli("migrate", "--backend", "milvus", "--uri", tmp_path / "m.db", "--collection", "docs",
            "--dim", "8", "--min-recall", "0", "--data-dir", tmp_path / "d", "--quiet")  # fmt: skip
    client = MilvusClient(str(tmp_path / "m.db"))
    client.load_collection("docs_8")
    got = client.query("docs_8", filter='id in ["a\\nb", "c\\rd"]', output_fields=["id"])
    assert sorted(r["id"] for r in got) == ["a\nb", "c\rd"]  # "unterminated string literal"
    client.close()


def test_migrate_request_numbers_and_folders_are_plain(tmp_path):
    from smec_index.migration.runner import MigrateRequest, migrate
    from tests.probes import qdrant_source

    qdrant_source(tmp_path, n=60, dim=16)
    done = migrate(MigrateRequest(backend="qdrant", collection="docs", dim=np.int64(8),
                                  data_dir=str(tmp_path / "d"), min_recall=0,
                                  source={"path": str(tmp_path / "q")}, progress=False),
                   say=lambda *_: None)  # fmt: skip
    assert done["verified"]  # numpy's int64 was no JSON before; a str data_dir no Path
    with pytest.raises(SmecError, match="data_dir is empty"):
        migrate(MigrateRequest(backend="qdrant", collection="docs", dim=8, data_dir="",
                               source={"path": str(tmp_path / "q")}))  # fmt: skip


@pytest.mark.slow
def test_overwrite_never_replaces_a_target_the_user_made_again(tmp_path):
    """The user dropped the copy and made their own collection of that name in the same
    schema: --overwrite replaced it (the schema was all that was checked)."""
    from qdrant_client import QdrantClient, models

    from tests.probes import qdrant_source

    qdrant_source(tmp_path, n=300, dim=16)
    common = ["migrate", "--backend", "qdrant", "--path", tmp_path / "q", "--collection", "docs",
              "--dim", 8, "--to", "t1", "--min-recall", 0, "--data-dir", tmp_path / "d",
              "--quiet"]  # fmt: skip
    _ok_cli(*common)
    client = QdrantClient(path=str(tmp_path / "q"))
    params = client.get_collection("t1").config.params.vectors
    client.delete_collection("t1")
    client.create_collection("t1", vectors_config=params)
    client.upsert("t1", [models.PointStruct(id=1, vector=[0.1] * 8, payload={"mine": 1})])
    client.close()
    line = _error_line([*common, "--overwrite"])
    assert "holds 1 points, fewer than the 300" in line
    client = QdrantClient(path=str(tmp_path / "q"))
    assert client.retrieve("t1", [1])[0].payload == {"mine": 1}
    client.close()


# -- the twenty-third sweep (API side and migrations): its faults ------------------------------


@pytest.mark.slow
def test_rollback_leaves_an_alias_the_user_moved_since(tmp_path):
    from qdrant_client import QdrantClient, models

    from tests.probes import qdrant_source

    qdrant_source(tmp_path, n=120, dim=16)
    client = QdrantClient(path=str(tmp_path / "q"))
    client.create_collection("v2", vectors_config=models.VectorParams(
        size=16, distance=models.Distance.COSINE))  # fmt: skip
    client.close()
    common = ["migrate", "--backend", "qdrant", "--path", tmp_path / "q", "--collection", "docs",
              "--dim", 8, "--alias", "live", "--min-recall", 0, "--data-dir", tmp_path / "d",
              "--quiet"]  # fmt: skip
    _ok_cli(*common)
    client = QdrantClient(path=str(tmp_path / "q"))
    client.update_collection_aliases(change_aliases_operations=[models.CreateAliasOperation(
        create_alias=models.CreateAlias(collection_name="v2", alias_name="live"))])  # fmt: skip
    client.close()
    line = _error_line([*common, "--rollback"])  # moved it back to docs before
    assert "alias 'live' now points at 'v2'" in line
    client = QdrantClient(path=str(tmp_path / "q"))
    aliases = {a.alias_name: a.collection_name for a in client.get_aliases().aliases}
    client.close()
    assert aliases == {"live": "v2"}


def test_a_milvus_source_caps_k_and_refuses_ids_its_key_cannot_hold(tmp_path):
    from smec_index.connectors.source import open_source

    db = tmp_path / "app.db"
    _user_milvus(db)
    source = open_source("milvus", "docs", uri=db)
    try:  # pymilvus sized its results by k: 10**9 allocated gigabytes
        assert len(source.search(np.ones((1, 16), np.float32), 10**9)[0]) == 30
        with pytest.raises(SmecError, match="cannot be a key of 'docs'"):
            source.get(["1 or 1=1"])  # int()'s raw ValueError before
        assert len(source.get([1, "2"]).ids) == 2
    finally:
        source.close()


# -- the twenty-third sweep (command line): its fault ------------------------------------------


@pytest.mark.parametrize("setting", ["M = [4]", "ef_construction = [40]", "nlist = [8]"])
def test_a_bench_setting_of_one_number_given_as_a_list_says_so(tmp_path, setting):
    config = tmp_path / "s.toml"
    config.write_text(f'datasets = ["synthetic:500x16"]\nmethods = ["none"]\nout = "r.jsonl"\n'
                      f"{setting}\n")
    line = _error_line(["bench", "--config", config])  # "use whole numbers >= 1" before
    assert "takes one whole number, not a list" in line, line
    assert not (tmp_path / "r.jsonl").exists()


# -- the twenty-fourth sweep (command line): its fault ------------------------------------------


def test_info_describes_a_collection_migrate_filled_in_place(tmp_path):
    """`info` on the collection `migrate --in-place` filled: the vector, its dim and the
    artifact its queries need ("no collection 'docs' that migrate wrote into" before)."""
    from qdrant_client import QdrantClient

    from tests.probes import qdrant_source

    qdrant_source(tmp_path, n=300, dim=48)
    places = ["--backend", "qdrant", "--path", tmp_path / "q", "--collection", "docs",
              "--data-dir", tmp_path / "dq"]  # fmt: skip
    migrated = json.loads(_ok_cli("migrate", *places, "--dim", 16, "--in-place", "--to", "small",
                                  "--min-recall", 0, "--quiet", "--json",
                                  "--allow-schema-change"))  # fmt: skip
    info = json.loads(_ok_cli("info", *places, "--json"))
    assert info["in_place"] and info["vector"] == "small" and info["dim"] == 16
    assert info["artifact"] == migrated["artifact"] and info["count"] == 300
    assert info["alias_target"] is None and info["migrated_from"] == migrated["source"]
    client = QdrantClient(path=str(tmp_path / "q"))  # the user's app queries the vector
    try:
        from smec_index import Projection

        query = Projection.load(info["artifact"]).project(np.ones((1, 48), np.float32), 16)[0]
        hits = client.query_points("docs", query=query.tolist(), using="small", limit=3).points
        assert len(hits) == 3
    finally:
        client.close()


# -- the twenty-fourth sweep (API side): its faults ---------------------------------------------


def test_take_of_a_generator_naming_a_missing_id_names_it():
    from smec_index.data import Embeddings

    vectors = Embeddings(["a", "b"], np.eye(2, dtype=np.float32))
    with pytest.raises(SmecError, match="no id 'zz'"):  # a bare StopIteration before
        vectors.take(i for i in ["a", "zz"])
    assert vectors.take(i for i in ["b", "a"]).tolist() == [[0, 1], [1, 0]]
    with pytest.raises(SmecError, match="takes a list of ids, got int"):
        vectors.take(3)


def test_make_compressor_of_a_list_names_the_methods():
    from smec_index.compressors import make_compressor

    with pytest.raises(SmecError, match=r"unknown method \['pca'\]; choose one of"):
        make_compressor(["pca"], [8])  # TypeError: unhashable type before


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m: m.ndcg_at_k(["a"], {"a": 1}, 1.5), "k 1.5: pass a whole number >= 1"),
        (lambda m: m.ndcg_at_k(["a"], {"a": "1"}), "grade '1': judgements grade documents"),
        (lambda m: m.recall_at_k(["a"], {"a": None}), "grade None"),
        (lambda m: m.recall_vs_exact([[1]], [[1, float("nan")]], 2), "id nan in a ranking"),
        (lambda m: m.evaluate_run({"q": ["a"]}, {"q": {"a": 1}}, "10"), "ks '10': pass a list"),
        (lambda m: m.mean_metric({"q": None}, {"q": {"a": 1}}, m.ndcg_at_k, 10),
         "a ranking must be a list of document ids, got NoneType"),
        (lambda m: m.ndcg_at_k([["a"]], {"a": 1}), "ids are strings or whole numbers"),
    ],
)
def test_metrics_refuse_bad_input_in_one_line(call, message):
    from smec_index import metrics

    with pytest.raises(SmecError, match=re.escape(message)):  # raw TypeError/ValueError before
        call(metrics)


def test_metrics_read_generators_like_lists():
    from smec_index import metrics

    assert metrics.ndcg_at_k((d for d in ["a", "b"]), {"b": 1}) == metrics.ndcg_at_k(["a", "b"],
                                                                                   {"b": 1})
    assert metrics.recall_vs_exact((r for r in [[1, 2]]), [[2, 3]], 2) == 0.5


def test_run_sweep_checks_a_sweep_made_in_python(tmp_path):
    from smec_index.bench.runner import run_sweep
    from smec_index.bench.sweep import Sweep

    common = {"datasets": ["synthetic:300x16"], "methods": ["pca"], "index": ["flat"],
              "latency_queries": 10}  # fmt: skip
    with pytest.raises(SmecError, match="latency_queries 1,000,000,000: at most"):
        run_sweep(Sweep(out=tmp_path / "a.jsonl", **{**common, "latency_queries": 10**9}),
                  say=lambda _m: None)  # allocated 60 GiB before  # fmt: skip
    with pytest.raises(SmecError, match="concurrency must be a positive integer"):
        run_sweep(Sweep(out=tmp_path / "b.jsonl", concurrency=[0], **common), say=lambda _m: None)
    assert not (tmp_path / "a.jsonl").exists() and not (tmp_path / "b.jsonl").exists()
    out = tmp_path / "c.jsonl"  # numpy ints broke the results' JSON after the runs
    records = run_sweep(Sweep(out=str(out), dims=[np.int64(8)], **common), say=lambda _m: None)
    assert [r["dim"] for r in records] == [8] and json.loads(out.read_text())["dim"] == 8


def _edge_shard(folder: Path) -> None:
    import qdrant_edge as edge

    (folder / "c").mkdir(parents=True)
    shard = edge.EdgeShard.create(str(folder / "c"), edge.EdgeConfig(
        vectors=edge.EdgeVectorParams(size=4, distance=edge.Distance.Cosine)))  # fmt: skip
    shard.update(edge.UpdateOperation.upsert_points(
        [edge.Point(i + 1, [1.0, 0.0, 0.0, float(i)], {}) for i in range(5)]))  # fmt: skip
    shard.close()


@pytest.mark.parametrize("size", [0, -1])
def test_source_batch_sizes_below_one_are_refused(tmp_path, size):
    """A qdrant-edge shard's ids(0) yielded empty pages forever, its -1 an OverflowError; a
    milvus-lite source's 0 yielded no rows at all."""
    from smec_index.connectors.source import open_source

    _edge_shard(tmp_path / "edge")
    db = tmp_path / "app.db"
    _user_milvus(db)
    for source in (open_source("qdrant", "c", path=tmp_path / "edge"),
                   open_source("milvus", "docs", uri=db)):  # fmt: skip
        try:
            for read in (lambda s: s.ids(size), lambda s: s.iterate(size, None)):
                with pytest.raises(SmecError, match="batch_size must be a positive integer"):
                    next(iter(read(source)))
        finally:
            source.close()


def test_a_second_handle_on_an_edge_shard_in_one_process_says_so(tmp_path):
    from smec_index.connectors.source import open_source

    _edge_shard(tmp_path)
    first = open_source("qdrant", "c", path=tmp_path)
    try:  # "another process has it open" before: there is none
        with pytest.raises(SmecError, match="an earlier open_source handle of this process"):
            open_source("qdrant", "c", path=tmp_path)
    finally:
        first.close()
    open_source("qdrant", "c", path=tmp_path).close()  # closed: free again


# -- the twenty-fifth sweep: its faults ---------------------------------------------------------


@pytest.mark.parametrize("grade", [float("inf"), float("nan"), -float("inf")])
def test_metrics_refuse_a_grade_that_is_not_finite(grade):
    from smec_index import metrics

    with pytest.raises(SmecError, match="judgements grade documents with finite numbers"):
        metrics.ndcg_at_k(["a", "b"], {"a": grade})  # nan (or a silent 0.0) before
    with pytest.raises(SmecError, match="finite numbers"):
        metrics.evaluate_run({"q": ["a"]}, {"q": {"a": grade}})


def test_index_params_for_a_copy_beside_the_source_are_refused(tmp_path):
    from smec_index.migration.runner import MigrateRequest, migrate
    from tests.probes import qdrant_source

    qdrant_source(tmp_path, n=120, dim=16)
    request = MigrateRequest(backend="qdrant", collection="docs", dim=4, to="small",
                             data_dir=tmp_path / "d", source={"path": str(tmp_path / "q")},
                             index_params={"M": 1}, min_recall=0, progress=False)  # fmt: skip
    with pytest.raises(SmecError, match="index_params apply to a to_backend target"):
        migrate(request, say=lambda _m: None)  # dropped without a word before
    assert not (tmp_path / "d").exists()


def test_float_payloads_migrate_into_embedded_qdrant_and_the_rounding_is_named(tmp_path):
    """qdrant-edge parses some payload floats to a neighbouring double; verification refused
    the finished copy ("sampled target payloads differ"), with no way forward."""
    from qdrant_client import QdrantClient, models

    client = QdrantClient(path=str(tmp_path / "q"))
    rows = np.random.default_rng(1).standard_normal((300, 16)).tolist()
    client.create_collection("docs", vectors_config=models.VectorParams(
        size=16, distance=models.Distance.COSINE))  # fmt: skip
    client.upsert("docs", [models.PointStruct(id=i, vector=rows[i], payload={
        "price": float(np.float32(i + 0.1))}) for i in range(300)])  # fmt: skip
    client.close()
    done = CliRunner().invoke(main, [str(a) for a in [
        "migrate", "--backend", "qdrant", "--path", tmp_path / "q", "--collection", "docs",
        "--dim", 8, "--data-dir", tmp_path / "d", "--to-backend", "qdrant",
        "--allow-schema-change", "--min-recall", 0]])  # fmt: skip
    assert done.exit_code == 0, done.output
    assert re.search(r"note: \d+ sampled payload floats came back as a neighbouring double",
                     done.output)  # fmt: skip
    with open_connector("qdrant", data_dir=tmp_path / "d") as connector:
        got = connector.get("docs_8", ["9", "250"]).payloads
    for stored, i in zip(got, (9, 250), strict=True):  # within 2 ulps, never further
        want = float(np.float32(i + 0.1))
        assert abs(stored["price"] - want) <= 2 * np.spacing(want)


def test_the_unseen_guard_flags_need_held_out_queries(tmp_path):
    done = CliRunner().invoke(main, ["train", "--dataset", str(_dataset(tmp_path)),
                                     "--unsupervised", "--no-unseen-guard", "--out",
                                     str(tmp_path / "art")])  # fmt: skip
    assert done.exit_code == 2
    assert "--unsupervised without --queries has none" in done.output


def test_rollback_refuses_restart_and_overwrite(tmp_path):
    from tests.probes import qdrant_source

    qdrant_source(tmp_path, n=50, dim=16)
    for flag in ("--restart", "--overwrite"):  # ignored without a word before
        line = _error_line(["migrate", "--backend", "qdrant", "--path", tmp_path / "q",
                            "--collection", "docs", "--dim", 4, "--data-dir", tmp_path / "d",
                            "--rollback", flag])  # fmt: skip
        assert f"--rollback only moves the alias back; {flag} would do nothing" in line
    assert not (tmp_path / "d").exists()


def test_a_dry_run_refuses_target_options_its_backend_does_not_take(tmp_path):
    from smec_index.migration.runner import MigrateRequest, migrate
    from tests.probes import qdrant_source

    qdrant_source(tmp_path, n=50, dim=16)
    request = MigrateRequest(backend="qdrant", collection="docs", dim=4, data_dir=tmp_path / "d",
                             source={"path": str(tmp_path / "q")}, to_backend="faiss",
                             to_options={"uri": "x"}, allow_schema_change=True, dry_run=True,
                             min_recall=0, progress=False)  # fmt: skip
    with pytest.raises(SmecError, match="uri"):  # the plan passed, the run refused, before
        migrate(request, say=lambda _m: None)


def test_supervised_training_without_qrels_names_the_python_setting(synthetic):
    from smec_index.compressors import make_compressor

    data, _, _ = synthetic
    with pytest.raises(SmecError, match=r"supervised=False in Python"):
        make_compressor("mrl", (8,), progress=False).fit(data)


@pytest.mark.parametrize("stored, source, ulps, same", [
    (9.100000381469728, 9.100000381469727, 2, True),
    (9.100000381469728, 9.100000381469727, 0, False),
    (1.0 + 3 * 2.0**-52, 1.0, 2, False),
    (1.0, float("inf"), 2, False),
    (float("inf"), float("inf"), 2, True),
    (0.0, 5e-324, 2, True),
    (float("nan"), float("nan"), 0, True),
])
def test_verification_takes_floats_within_its_ulps_and_no_further(stored, source, ulps, same):
    from smec_index.migration.verify import same_values

    near = [0]
    assert same_values({"x": [stored]}, {"x": [source]}, ulps, near) is same
    assert near[0] == (1 if same and stored != source and stored == stored else 0)


# -- the twenty-sixth sweep: its faults ---------------------------------------------------------


def test_metrics_take_a_cut_off_beyond_any_ranking():
    from smec_index import metrics

    # islice's ValueError before: no ranking is longer than sys.maxsize, so it cuts nothing
    assert metrics.ndcg_at_k(["a", "b"], {"a": 1}, 2**80) == 1.0
    assert metrics.recall_at_k(["b", "a"], {"a": 1}, 2**80) == 1.0
    assert metrics.recall_vs_exact([["a"]], [["a"]], 2**80) == 1.0


def test_metrics_refuse_a_grade_or_an_id_beyond_float_range():
    from smec_index import metrics

    with pytest.raises(SmecError, match="within float's range"):
        metrics.ndcg_at_k(["a"], {"a": 10**400})  # OverflowError before
    with pytest.raises(SmecError, match="within float's range"):
        metrics.evaluate_run({"q": ["a"]}, {"q": {"a": 10**400}})
    assert metrics.recall_vs_exact([[10**400]], [[10**400]], 1) == 1.0  # a whole number id


@pytest.mark.parametrize("qrels", [[("q", {"a": 1})], "q\t0\ta\t1"])
def test_evaluate_run_refuses_qrels_that_are_not_a_mapping(qrels):
    from smec_index import metrics

    with pytest.raises(SmecError, match="qrels must map query ids"):
        metrics.evaluate_run({"q": ["a"]}, qrels, [10])  # AttributeError before


@pytest.mark.parametrize("name", [b"docs", 5, None])
def test_open_source_refuses_a_collection_name_that_is_not_text(tmp_path, name):
    from smec_index.connectors.source import open_source

    with pytest.raises(SmecError, match="a collection name is text"):
        open_source("qdrant", name, path=tmp_path)  # TypeError from Path / bytes before


def test_open_source_refuses_an_unknown_option(tmp_path):
    from smec_index.connectors.source import open_source

    with pytest.raises(SmecError, match="unknown option 'pth'"):
        open_source("qdrant", "docs", path=tmp_path, pth=tmp_path)  # ignored before


def test_an_empty_migration_target_name_is_refused(tmp_path):
    from smec_index.migration.runner import MigrateRequest, migrate

    request = MigrateRequest(backend="qdrant", collection="docs", dim=4, to="",
                             data_dir=tmp_path / "d", source={"path": str(tmp_path / "q")},
                             progress=False)  # fmt: skip
    with pytest.raises(SmecError, match="--to is empty"):
        migrate(request, say=lambda _m: None)  # took the default name before
    assert not (tmp_path / "d").exists()


def test_recall_vs_exact_refuses_a_mapping_or_a_bool_id():
    from smec_index import metrics

    with pytest.raises(SmecError, match="one list of ids per query, in query order, got dict"):
        metrics.recall_vs_exact({"q": ["a"]}, {"q": ["a"]})  # "got str" (its keys) before
    with pytest.raises(SmecError, match="id True in a ranking"):
        metrics.recall_vs_exact([[True]], [[1]], 1)  # counted as id 1 before


def _migrate_to(tmp_path, *flags):
    if not (tmp_path / "m.db").exists():
        _user_milvus(tmp_path / "m.db", "src")
    return CliRunner().invoke(main, [str(a) for a in [
        "migrate", "--backend", "milvus", "--uri", tmp_path / "m.db", "--collection", "src",
        "--dim", 8, "--data-dir", tmp_path / "d", "--quiet", "--min-recall", 0, *flags]])


def test_a_target_servers_key_has_its_own_flag_and_its_messages_name_it(tmp_path):
    """The target's key message sent users to --api-key, which a Milvus source refused, and
    no flag gave a target server its key."""
    done = _migrate_to(tmp_path, "--to-backend", "qdrant", "--allow-schema-change",
                       "--to-url", "http://u:pw@127.0.0.1:9")  # fmt: skip
    assert done.exit_code == 2
    assert "takes its API key from --to-api-key (or QDRANT_API_KEY)" in done.output
    assert "pw" not in done.output
    for flags, refusal in [
        (["--to-backend", "qdrant", "--to-api-key", "k3y"], "--to-api-key does not apply to an "
         "embedded Qdrant target"),
        (["--to-backend", "milvus", "--to-uri", tmp_path / "t.db", "--to-token", "k3y"],
         "--to-token does not apply to a milvus-lite target"),
        (["--to-backend", "milvus", "--to-uri", "http://127.0.0.1:9", "--to-api-key", "k3y"],
         "--to-api-key does not apply to --to-backend milvus"),
        (["--to-api-key", "k3y"], "go with --to-backend"),
    ]:  # fmt: skip
        done = _migrate_to(tmp_path, *flags)
        assert done.exit_code == 2 and refusal in done.output, done.output
        assert "k3y" not in done.output
    assert not (tmp_path / "d").exists()


@pytest.mark.slow
def test_an_unreachable_target_server_is_named_by_the_flag_migrate_reads(tmp_path):
    """'check --to-url/QDRANT_URL' before: migrate reads no QDRANT_URL."""
    done = _migrate_to(tmp_path, "--to-backend", "qdrant", "--allow-schema-change",
                       "--to-url", "http://127.0.0.1:9")  # fmt: skip
    assert done.exit_code == 2
    assert "check --to-url and that the server is running" in done.output
    assert "QDRANT_URL" not in done.output


def test_a_missing_artifact_folder_is_named_as_missing(tmp_path):
    from smec_index.compressors import load_compressor

    with pytest.raises(SmecError, match="no such artifact folder"):
        load_compressor(tmp_path / "nope")  # "not an artifact (needs config.json...)" before


def test_an_embeddings_folder_without_vectors_does_not_advise_the_flag_given(tmp_path):
    from smec_index.data import load_embedding_dir

    with pytest.raises(SmecError, match="pass --embeddings the folder that holds them"):
        load_embedding_dir(tmp_path, "corpus")  # "or pass --embeddings" to one who had


# -- the twenty-seventh sweep: its faults -------------------------------------------------------


def _user_shard(path: Path, n: int = 40) -> None:
    """A qdrant-edge shard an app made with qdrant_edge itself."""
    import qdrant_edge as edge

    rows = np.random.default_rng(0).standard_normal((n, 16))
    shard = edge.EdgeShard.create(str(path), edge.EdgeConfig(
        vectors=edge.EdgeVectorParams(size=16, distance=edge.Distance.Cosine)))  # fmt: skip
    shard.update(edge.UpdateOperation.upsert_points(
        [edge.Point(i, rows[i].tolist(), {"app": path.name}) for i in range(n)]))  # fmt: skip
    shard.flush()
    shard.close()


def _tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*"))
            if p.is_file()}  # fmt: skip


def test_a_users_own_shard_in_the_data_dirs_qdrant_folder_is_never_replaced(tmp_path):
    """migrate --to-backend qdrant deleted a user's shard of the target's name (exit 0)."""
    root = tmp_path / "X" / "qdrant"
    for name, n in (("docs", 200), ("keep", 50), ("docs_8", 40)):
        _user_shard(root / name, n)
    before = {name: _tree(root / name) for name in ("keep", "docs_8")}
    dataset = _dataset(tmp_path)
    for to in (["--to", "keep"], []):
        done = CliRunner().invoke(main, [str(a) for a in [
            "migrate", "--backend", "qdrant", "--path", root, "--collection", "docs", "--dim",
            8, "--data-dir", tmp_path / "X", "--to-backend", "qdrant", "--allow-schema-change",
            "--min-recall", 0, "--quiet", *to]])  # fmt: skip
        assert done.exit_code == 2, done.output
        assert "already exists" in done.output and "no migration recorded in" in done.output
    for args in (["--collection", "keep"], ["--collection", "keep", "--overwrite"]):
        done = CliRunner().invoke(main, [str(a) for a in [
            "build", "--dataset", dataset, "--dim", 16, "--backend", "qdrant",
            "--data-dir", tmp_path / "X", *args]])  # fmt: skip
        assert done.exit_code == 2 and "not made by smec-index" in done.output, done.output
    assert {name: _tree(root / name) for name in ("keep", "docs_8")} == before


def test_a_users_folder_in_a_local_store_is_never_deleted_but_a_cut_short_create_is(tmp_path):
    mine = tmp_path / "faiss" / "notes"
    mine.mkdir(parents=True)
    (mine / "todo.txt").write_text("mine")
    spec = IndexSpec(dim=4, index="flat")
    with open_connector("faiss", data_dir=tmp_path) as connector:
        with pytest.raises(SmecError, match="not made by smec-index"):
            connector.create("notes", spec, overwrite=True)  # rmtree'd before
        assert (mine / "todo.txt").read_text() == "mine"
        (tmp_path / "faiss" / "cut").mkdir()
        (tmp_path / "faiss" / "cut" / ".smec-creating").write_bytes(b"")
        (tmp_path / "faiss" / "cut" / "payloads-1.jsonl").write_text("")
        connector.create("cut", spec)  # a create cut short: its leftovers go
        assert connector.count("cut") == 0


@pytest.mark.parametrize("value", [1e-20, 1e-30, 1e-40])
def test_a_projected_row_of_tiny_values_comes_out_unit_length(value):
    from smec_index.vectors import normalize

    rows = np.full((3, 8), value, dtype=np.float32)
    rows[2] = 0.0  # a zero row stays zero
    lengths = np.linalg.norm(normalize(rows), axis=1)  # 3e-30 long before: squares underflowed
    assert np.allclose(lengths, [1.0, 1.0, 0.0], atol=1e-6)


@pytest.mark.parametrize("where", ["flag", "environment"])
def test_a_key_holding_a_byte_that_is_not_utf8_gets_one_line(tmp_path, where):
    """The scrubber's quote() raised UnicodeEncodeError on the lone surrogate that stands for
    the byte: two tracebacks, exit 1."""
    import os

    key = os.fsencode("SEKRET") + b"\xe9"
    env = {**os.environ, "QDRANT_API_KEY": key} if where == "environment" else dict(os.environ)
    env = {os.fsencode(k): v if isinstance(v, bytes) else os.fsencode(v) for k, v in env.items()}
    flags = [b"--api-key", key] if where == "flag" else []
    done = subprocess.run([os.fsencode(sys.executable), b"-m", b"smec_index.cli", b"info",
                           b"--collection", b"c", b"--url", b"http://127.0.0.1:1", *flags],
                          env=env, cwd=tmp_path, capture_output=True, timeout=120)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.count(b"\n") == 1 and b"non-ASCII character" in done.stderr
    assert b"SEKRET" not in done.stderr + done.stdout


@pytest.mark.parametrize("clients", ["1.5", "1e3", "0", "-4", "٣"])
def test_report_refuses_a_client_count_that_is_not_a_whole_number(tmp_path, clients):
    done = CliRunner().invoke(main, [str(a) for a in [
        "bench", "--dataset", "synthetic:600x16", "--methods", "pca", "--dims", 8,
        "--concurrency", 1, "--latency-queries", 5, "--max-queries", 20,
        "--out", tmp_path / "r.jsonl"]])  # fmt: skip
    assert done.exit_code == 0, done.output
    record = json.loads((tmp_path / "r.jsonl").read_text().splitlines()[0])
    record["concurrency"] = {clients: record["concurrency"]["1"]}
    (tmp_path / "e.jsonl").write_text(json.dumps(record) + "\n")
    done = CliRunner().invoke(main, ["report", str(tmp_path / "e.jsonl"), "--out",
                                     str(tmp_path / "rep")])  # fmt: skip
    assert done.exit_code == 2, done.output  # "internal error: ValueError", exit 1 before
    assert "keyed by client counts, whole numbers >= 1" in done.output


def test_a_dry_run_refuses_a_milvus_lite_target_the_run_would(tmp_path):
    """The plan approved --to-uri out.txt (exit 0), which the run then refused."""
    for dry in (["--dry-run"], []):
        done = _migrate_to(tmp_path, "--to-backend", "milvus", "--to-uri", tmp_path / "out.txt",
                           *dry)  # fmt: skip
        assert done.exit_code == 2, done.output
        assert "--to-uri" in done.output and "a path ending in .db" in done.output
        assert "rename the folder" not in done.output  # there is no folder
    assert not (tmp_path / "out.txt").exists() and not (tmp_path / "d").exists()


def _kill_after_a_checkpoint(command: list[str], data: Path) -> None:
    """Run a migrate ``command`` and SIGKILL it once its progress records written rows."""
    import os
    import signal
    import time

    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if any(_state(path).get("written") for path in data.glob("migrations/*/*.json")):
            break
        time.sleep(0.02)
    assert process.poll() is None, "the run finished before the kill; use more points"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


def _state(path: Path) -> dict:
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):  # being replaced
        return {}
    return state if isinstance(state, dict) else {}


@pytest.mark.slow
def test_a_migration_cut_short_is_named_by_info_and_search_with_the_way_to_finish_it(tmp_path):
    """After a kill, `info` showed the partial copy as an ordinary collection and `search`
    said to build it with `smec-index build`; rerunning the migration finishes it."""

    from tests.probes import qdrant_source

    qdrant_source(tmp_path, n=20_000, dim=32)
    data = tmp_path / "d"
    command = [sys.executable, "-m", "smec_index.cli", "migrate", "--backend", "qdrant",
               "--path", str(tmp_path / "q"), "--collection", "docs", "--dim", "8",
               "--data-dir", str(data), "--to-backend", "hnswlib", "--allow-schema-change",
               "--min-recall", "0", "--batch-size", "500", "--checkpoint-rows", "1000",
               "--quiet"]  # fmt: skip
    _kill_after_a_checkpoint(command, data)
    info = CliRunner().invoke(main, ["info", "--backend", "hnswlib", "--collection", "docs_8",
                                     "--data-dir", str(data), "--json"])  # fmt: skip
    assert info.exit_code == 0, info.output
    described = json.loads(info.output)
    assert "was cut short" in described["migration"]
    # sweep 31: "(0 rows written)" beside a count of 2,967: the rows are the checkpoint's
    checkpoint = re.search(r"its last checkpoint recorded ([\d,]+) rows", described["migration"])
    assert checkpoint and int(checkpoint[1].replace(",", "")) <= described["count"], described
    search = CliRunner().invoke(main, ["search", "--backend", "hnswlib", "--collection",
                                       "docs_8", "--data-dir", str(data),
                                       "--like", "5"])  # fmt: skip
    assert search.exit_code == 2
    assert "run the same `smec-index migrate` command again to finish it" in search.output
    assert "smec-index build" not in search.output
    finished = subprocess.run(command, capture_output=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    info = CliRunner().invoke(main, ["info", "--backend", "hnswlib", "--collection", "docs_8",
                                     "--data-dir", str(data), "--json"])  # fmt: skip
    assert json.loads(info.output)["count"] == 20_000 and "migration" not in json.loads(info.output)


@pytest.mark.parametrize("flag", ["--to-url", "--to-uri", "--to-mode", "--url", "--using"])
def test_an_empty_migrate_address_is_refused_not_taken_as_left_out(tmp_path, flag):
    done = _migrate_to(tmp_path, "--to-backend", "qdrant", flag, "")
    assert done.exit_code == 2 and f"{flag} is empty" in done.output, done.output
    assert not (tmp_path / "d").exists()


def test_a_numpy_payload_value_is_named_as_numpys(tmp_path):
    with open_connector("faiss", data_dir=tmp_path) as connector:
        connector.create("c", IndexSpec(dim=4, index="flat"))
        with pytest.raises(SmecError, match=r"numpy\.bool is no JSON value; convert numpy"):
            connector.upsert("c", ["a"], np.ones((1, 4), np.float32), [{"ok": np.bool_(True)}])


# -- the twenty-eighth sweep: its faults --------------------------------------------------------


def test_the_info_command_advised_for_a_copy_beside_its_source_runs_as_given(tmp_path):
    """The advice left out the --data-dir the records live in: run as given, it failed."""

    from tests.probes import qdrant_source

    qdrant_source(tmp_path, n=120, dim=16)
    data = tmp_path / "my data"  # a space: the advice quotes it
    done = CliRunner().invoke(main, [str(a) for a in [
        "migrate", "--backend", "qdrant", "--path", tmp_path / "q", "--collection", "docs",
        "--dim", 8, "--alias", "live", "--min-recall", 0, "--data-dir", data, "--quiet"]])
    assert done.exit_code == 0, done.output
    done = CliRunner().invoke(main, [str(a) for a in [
        "search", "--mode", "local", "--data-dir", data, "--collection", "live", "--like", 3]])
    assert done.exit_code == 2
    advised = re.search(r"`smec-index (info [^`]*)`", done.output).group(1)
    info = CliRunner().invoke(main, shlex.split(advised))
    assert info.exit_code == 0, info.output
    assert "alias_target" in info.output


def test_report_never_deletes_a_png_of_the_users_in_its_folder(tmp_path):
    """Every *.png in a report folder was taken as a plot of the report's, and deleted."""
    from smec_index.outputs import REPORT_PLOT

    done = CliRunner().invoke(main, [str(a) for a in [
        "bench", "--dataset", "synthetic:600x16", "--methods", "pca", "--dims", "16,8",
        "--index", "hnsw,flat", "--ef-search", "16,32", "--latency-queries", 5,
        "--max-queries", 20, "--out", tmp_path / "r.jsonl"]])  # fmt: skip
    assert done.exit_code == 0, done.output
    report = ["report", str(tmp_path / "r.jsonl"), "--out", str(tmp_path / "rep")]
    assert CliRunner().invoke(main, report).exit_code == 0
    plots = sorted(p.name for p in (tmp_path / "rep").glob("*.png"))
    assert plots and all(REPORT_PLOT.fullmatch(name) for name in plots), plots
    assert CliRunner().invoke(main, report).exit_code == 0  # its own plots: replaced
    # sweep 34: a PNG of the user's named like a plot (SLUG-KIND.png) was deleted too; the
    # marker now lists the files the report wrote
    for mine in ("myplot.png", "paper-fig3-p50-vs-dim.png"):
        (tmp_path / "rep" / mine).write_bytes(b"mine")
        again = CliRunner().invoke(main, report)  # a report folder is replaced by the next
        assert again.exit_code == 2, again.output
        assert f"{mine!r}, which is no part of a smec-index report" in again.output
        assert (tmp_path / "rep" / mine).read_bytes() == b"mine"
        (tmp_path / "rep" / mine).unlink()


@pytest.mark.parametrize("flags, refusal", [
    (["--no-xbm", "--memory-size", "10"], "--memory-size sizes the S-XBM queue"),
    (["--parallel", "--lead-in", "0"], "--lead-in is the first stage"),
])  # fmt: skip
def test_training_flags_a_switch_turns_off_are_refused(tmp_path, flags, refusal):
    done = CliRunner().invoke(main, ["train", "--dataset", str(_dataset(tmp_path)), "--dims",
                                     "8", "--out", str(tmp_path / "a"), *flags])  # fmt: skip
    assert done.exit_code == 2 and refusal in done.output, done.output  # ignored before
    assert not (tmp_path / "a").exists()


def test_a_file_where_a_data_dir_keeps_its_store_is_named_with_the_fix(tmp_path):
    """A file at DATA/qdrant-local gave '[Errno 17] File exists ... close any other
    connector'; one at DATA/milvus/milvus.db blamed a --uri never passed."""
    data = tmp_path / "d"
    (data / "milvus").mkdir(parents=True)
    (data / "qdrant-local").write_text("mine")
    (data / "milvus" / "milvus.db").write_text("mine")
    with pytest.raises(SmecError, match="qdrant-local is a file, not a folder"):
        open_connector("qdrant", data_dir=data, mode="local")
    with pytest.raises(SmecError, match="the data dir's milvus-lite path .* move the file away "
                                        "or pass another --data-dir"):  # fmt: skip
        open_connector("milvus", data_dir=data)
    done = CliRunner().invoke(main, ["info", "--backend", "milvus", "--collection", "c",
                                     "--data-dir", str(data)])  # fmt: skip
    assert done.exit_code == 2 and "--uri" not in done.output, done.output
    assert (data / "qdrant-local").read_text() == "mine"
    assert (data / "milvus" / "milvus.db").read_text() == "mine"


@pytest.mark.slow
def test_info_names_a_copy_beside_its_source_cut_short(tmp_path):
    """After a kill, info said 'no collection that migrate wrote ...; check --collection and
    --data-dir' of a half-made copy whose flags were right."""

    from tests.probes import qdrant_source

    qdrant_source(tmp_path, n=20_000, dim=32)
    data = tmp_path / "d"
    _kill_after_a_checkpoint(
        [sys.executable, "-m", "smec_index.cli", "migrate", "--backend", "qdrant", "--path",
         str(tmp_path / "q"), "--collection", "docs", "--dim", "8", "--data-dir", str(data),
         "--min-recall", "0", "--batch-size", "500", "--checkpoint-rows", "1000", "--quiet"],
        data)  # fmt: skip
    done = CliRunner().invoke(main, ["info", "--backend", "qdrant", "--path",
                                     str(tmp_path / "q"), "--collection", "docs_8",
                                     "--data-dir", str(data)])  # fmt: skip
    assert done.exit_code == 2 and "was cut short" in done.output, done.output
    assert "run the same `smec-index migrate` command again" in done.output


# -- a review of sweeps 26 to 28's fixes --------------------------------------------------------


def test_a_create_cut_short_before_the_marker_existed_is_still_cleaned(tmp_path):
    """A folder of only the files a store writes (a create of an older smec-index killed
    before its first commit) is a leftover, not a user's folder."""
    import qdrant_edge  # noqa: F401 - the edge store's engine

    leftovers = {"faiss": ["payloads-1a2b.jsonl", "index-1a2b.faiss", ".meta.json.0c1d.tmp"],
                 "qdrant": ["int_point_ids", "index_spec.tmp"]}  # fmt: skip
    for backend, names in leftovers.items():
        folder = tmp_path / backend / "c"
        folder.mkdir(parents=True)
        for name in names:
            (folder / name).write_bytes(b"")
        with open_connector(backend, data_dir=tmp_path) as connector:
            assert not connector.exists("c")
            connector.create("c", IndexSpec(dim=4, index="flat"))
            assert connector.count("c") == 0
    linked = tmp_path / "elsewhere"  # a collection moved to another disk and linked back
    with open_connector("faiss", data_dir=tmp_path) as connector:
        connector.create("moved", IndexSpec(dim=4, index="flat"))
    (tmp_path / "faiss" / "moved").rename(linked)
    (tmp_path / "faiss" / "moved").symlink_to(linked)
    with open_connector("faiss", data_dir=tmp_path) as connector:
        assert not connector.foreign("moved") and connector.count("moved") == 0


def test_search_on_a_users_folder_in_a_local_store_says_whose_it_is(tmp_path):
    (tmp_path / "faiss" / "notes").mkdir(parents=True)
    (tmp_path / "faiss" / "notes" / "todo.txt").write_text("mine")
    with open_connector("faiss", data_dir=tmp_path) as connector:
        with pytest.raises(SmecError, match="was not made by smec-index .* move it away"):
            connector.count("notes")  # "create it first", which create refuses, before


def test_empty_target_options_are_refused_in_python_and_the_target_key_flags_too(tmp_path):
    from smec_index.migration.runner import MigrateRequest, migrate

    request = MigrateRequest(backend="qdrant", collection="docs", dim=4, to_backend="qdrant",
                             to_options={"url": ""}, data_dir=tmp_path / "d",
                             source={"path": str(tmp_path / "q")}, progress=False)  # fmt: skip
    with pytest.raises(SmecError, match="url is empty"):
        migrate(request, say=lambda _m: None)  # an embedded target before
    done = _migrate_to(tmp_path, "--to-backend", "qdrant", "--to-url", "http://127.0.0.1:9",
                       "--to-api-key", "")  # QDRANT_API_KEY was sent instead  # fmt: skip
    assert done.exit_code == 2 and "--to-api-key is empty" in done.output, done.output


def test_recall_keys_name_the_cut_offs_asked_for():
    from smec_index import metrics

    scores = metrics.evaluate_run({"q": ["a"]}, {"q": {"a": 1}}, [10**30, 10**31])
    assert scores["recall@" + str(10**30)] == 1.0 and scores["recall@" + str(10**31)] == 1.0


# -- the twenty-ninth sweep: its fault ----------------------------------------------------------


@pytest.mark.parametrize("backend", ["faiss", "hnswlib"])
def test_a_row_of_tiny_values_is_stored_unit_length_and_ranks_below_an_exact_match(
    tmp_path, backend
):
    """hnswlib's own normalisation stored 1e-30 x ones as ones: cosine 1.51, above the exact
    duplicate of the query."""
    rows = np.random.default_rng(0).standard_normal((20, 8)).astype(np.float32)
    with open_connector(backend, data_dir=tmp_path) as connector:
        connector.create("c", IndexSpec(dim=8, metric="cosine", index="hnsw"))
        connector.add("c", [f"i{i}" for i in range(20)], rows)
        connector.add("c", ["tiny"], np.full((1, 8), 1e-30, np.float32))
        ids, scores = connector.search("c", rows[:1], 3)
        assert ids[0][0] == "i0" and scores[0][0] <= 1.0 + 1e-5
        stored = connector.get("c", ["tiny"]).vectors[0]
    assert np.isclose(np.linalg.norm(stored), 1.0, atol=1e-5)


# -- the twenty-ninth sweep: the two faults left open --------------------------------------------


def test_a_short_user_name_is_hidden_as_a_word_not_inside_other_words():
    """User name "api": the refusal of --url read "from --***-key (or QDRANT_***_KEY)"."""
    from smec_index.secrets import redact

    line = _error_line(["info", "--backend", "qdrant", "--collection", "x",
                        "--url", "http://api:hunter22@127.0.0.1:1"])  # fmt: skip
    assert "--api-key" in line and "hunter22" not in line, line
    assert redact("user api at http://api@h, --api-key", ["api"]) == (
        "user *** at http://***@h, --api-key"
    )
    assert redact("key=abcdefghij-x", ["abcdefghij"]) == "key=***-x"  # long: hidden anywhere


@pytest.mark.parametrize("special", ["fifo", "/dev/null"])
def test_a_query_log_that_is_not_a_file_is_named_as_such(tmp_path, special):
    """--queries on a FIFO or /dev/null said "file not found"; --qrels named it."""
    import os

    if special == "fifo":
        special = tmp_path / "log.npy"
        os.mkfifo(special)
    line = _error_line(["train", "--dataset", _dataset(tmp_path), "--dims", "4", "--unsupervised",
                        "--queries", special, "--out", tmp_path / "a"])  # fmt: skip
    assert "not a regular file" in line and "not found" not in line, line


# -- the thirtieth sweep: its faults -------------------------------------------------------------


@pytest.mark.parametrize("backend", ["faiss", "qdrant"])
def test_build_overwrite_leaves_a_migrations_copy_and_the_apps_alias_alone(tmp_path, backend):
    """`build --collection live --overwrite`, live a migrate --to-backend copy that alias
    prodapp points at: the copy and prodapp were dropped, and the app's searches failed."""
    from tests.probes import qdrant_source, run_probe, snapshot

    source = qdrant_source(tmp_path, n=60, dim=16)
    data = tmp_path / "d"
    _ok_cli("migrate", "--backend", "qdrant", "--path", source, "--collection", "docs",
            "--dim", 8, "--to-backend", backend, "--to", "live", "--alias", "prodapp",
            "--min-recall", 0, "--allow-schema-change", "--data-dir", data, "--quiet")  # fmt: skip
    before = snapshot(data)
    run_probe(["build", "--dataset", _dataset(tmp_path), "--backend", backend, "--dim", 8,
               "--collection", "live", "--overwrite", "--data-dir", data, "--quiet"],
              data, "not one a build made")  # fmt: skip
    assert snapshot(data) == before
    found = _ok_cli("search", "--backend", backend, "--collection", "prodapp", "--like", 5,
                    "-k", 1, "--data-dir", data)  # fmt: skip
    assert "  1  1.0000  5" in found, found


def test_build_refuses_a_cached_artifact_that_was_written_over(tmp_path):
    """`train --method pca --out <build's cache folder> --overwrite`: the next build said
    "using the cached SMEC artifact" and projected with PCA."""
    ds, data = _dataset(tmp_path), tmp_path / "d"
    _ok_cli("build", "--dataset", ds, "--backend", "faiss", "--dim", 8, "--collection", "a",
            "--data-dir", data, "--quiet")  # fmt: skip
    (cache,) = (data / "artifacts").iterdir()
    _ok_cli("train", "--dataset", ds, "--method", "pca", "--dims", 8, "--out", cache,
            "--overwrite", "--quiet")  # fmt: skip
    line = _error_line(["build", "--dataset", ds, "--backend", "faiss", "--dim", 8,
                        "--collection", "b", "--data-dir", data])  # fmt: skip
    assert "now holds a pca artifact" in line and "--force-train" in line, line
    _ok_cli("build", "--dataset", ds, "--backend", "faiss", "--dim", 8, "--collection", "b",
            "--data-dir", data, "--force-train", "--quiet")  # fmt: skip
    fresh = cache.with_name(f"{cache.name}-r2")  # beside it: the user's pca stays as it is
    assert json.loads((fresh / "config.json").read_text())["method"] == "smec"
    assert json.loads((cache / "config.json").read_text())["method"] == "pca"
    built = _ok_cli("build", "--dataset", ds, "--backend", "faiss", "--dim", 8, "--collection",
                    "c", "--data-dir", data)  # fmt: skip
    assert f"using the cached SMEC artifact {fresh}" in built, built


def test_force_train_leaves_the_artifact_earlier_collections_were_built_with(tmp_path):
    """Sweep 33: build --force-train for a new collection replaced the cached artifact in
    place, and every collection built from it before refused to search ("artifact
    changed"), though only its timings differed."""
    ds, data = _dataset(tmp_path), tmp_path / "d"
    build = ["build", "--dataset", ds, "--backend", "faiss", "--dim", 8, "--data-dir", data,
             "--quiet"]  # fmt: skip
    _ok_cli(*build, "--collection", "old")
    _ok_cli(*build, "--collection", "new", "--force-train")
    assert len(list((data / "artifacts").iterdir())) == 2
    for name in ("old", "new"):
        found = _ok_cli("search", "--backend", "faiss", "--collection", name, "--like", "d1",
                        "-k", 1, "--data-dir", data)  # fmt: skip
        assert "d1" in found, found


@pytest.mark.parametrize("by_alias", [True, False])
def test_a_collection_a_build_made_is_no_migration_source(tmp_path, by_alias):
    """migrate --collection m1__b<hex> --alias m1 (as migrate's advice for the alias m1
    said) switched the build's alias to a copy projected twice: info gave the old dim and
    search said "build it"."""
    from tests.probes import run_probe

    data = tmp_path / "d"
    _ok_cli("build", "--dataset", _dataset(tmp_path), "--backend", "milvus", "--dim", 8,
            "--collection", "m1", "--data-dir", data, "--quiet")  # fmt: skip
    physical = json.loads(_ok_cli("info", "--backend", "milvus", "--collection", "m1",
                                  "--data-dir", data, "--json"))["alias_target"]  # fmt: skip
    run_probe(["migrate", "--backend", "milvus", "--uri", data / "milvus" / "milvus.db",
               "--collection", "m1" if by_alias else physical, "--dim", 4, "--alias", "m1",
               "--min-recall", 0, "--data-dir", data, "--quiet"],
              tmp_path, "build it again")  # fmt: skip


def test_compressed_index_open_on_a_migrated_copy_names_its_projection(tmp_path):
    """CompressedIndex.open on a copy migrate made said its projection was unknown and to
    build it; search on the same names the artifact (the same words now, from one place)."""
    db, data = tmp_path / "src.db", tmp_path / "d"
    _user_milvus(db, n=60)
    _ok_cli("migrate", "--backend", "milvus", "--uri", db, "--collection", "docs", "--dim", 4,
            "--alias", "live", "--min-recall", 0, "--data-dir", data, "--quiet")  # fmt: skip
    with pytest.raises(SmecError, match=r"Projection\.load\(.*\)\.project\(q, 4\)") as raised:
        CompressedIndex.open("milvus", "live", data, uri=str(db))
    assert "build it" not in str(raised.value)
    line = _error_line(["search", "--backend", "milvus", "--uri", db, "--collection", "live",
                        "--data-dir", data, "--like", 1])  # fmt: skip
    assert str(raised.value) in line, line


@pytest.mark.parametrize("change", ["delete", "edit"])
def test_a_source_changed_after_a_refused_gate_is_named_with_the_way_forward(tmp_path, change):
    """After a refused gate the user deleted source points (the message blamed an app writing
    into the copy) or edited their payloads ("payloads differ; not switched", again on every
    run, --restart never named)."""
    from qdrant_client import QdrantClient, models

    from tests.probes import qdrant_source, run_probe

    source, data = qdrant_source(tmp_path, n=300, dim=16), tmp_path / "d"
    _ok_cli("migrate", "--backend", "qdrant", "--path", source, "--collection", "docs", "--dim",
            4, "--to", "warm", "--min-recall", 0, "--data-dir", data, "--quiet")  # fmt: skip
    (artifact,) = (data / "artifacts" / "migrations").glob("*pca*[0-9]")
    common = ["migrate", "--backend", "qdrant", "--path", source, "--collection", "docs",
              "--dim", 4, "--alias", "live", "--artifact", artifact, "--data-dir", data,
              "--quiet"]  # fmt: skip
    assert "quality gate" in _error_line([*common, "--min-recall", 1])
    client = QdrantClient(path=str(source))
    if change == "delete":
        client.delete("docs", points_selector=models.PointIdsList(points=list(range(50))))
    else:
        client.set_payload("docs", {"edited": True}, points=list(range(300)))
    client.close()
    fragment = "deleted from the source" if change == "delete" else "--restart to copy"
    run_probe([*common, "--min-recall", 0], tmp_path, fragment, output=data)
    _ok_cli(*common, "--min-recall", 0, "--restart")


def test_an_output_folder_of_another_kind_is_not_called_foreign_files(tmp_path):
    """train --out <a faiss collection's folder>: refused, saying it held files smec-index
    did not write (its .writer.lock, smec-index's own)."""
    ds, data = _dataset(tmp_path), tmp_path / "d"
    _ok_cli("build", "--dataset", ds, "--backend", "faiss", "--dim", 16, "--collection", "c",
            "--data-dir", data, "--quiet")  # fmt: skip
    (folder,) = (data / "faiss").glob("c__b*")
    line = _error_line(["train", "--dataset", ds, "--method", "pca", "--dims", 8, "--out",
                        folder, "--overwrite"])  # fmt: skip
    assert "no smec-index artifact output" in line and "did not write" not in line, line


# -- the thirty-first sweep: its faults -----------------------------------------------------------


def test_create_takes_overwrite_as_a_bool_only(tmp_path):
    """create(..., overwrite="no") was taken as true and dropped the collection."""
    with open_connector("faiss", data_dir=tmp_path) as connector:
        connector.create("c", IndexSpec(dim=4))
        connector.add("c", ["a"], np.ones((1, 4), np.float32))
        for value in ("no", 1, None):
            with pytest.raises(SmecError, match="overwrite must be True or False"):
                connector.create("c", IndexSpec(dim=4), overwrite=value)
        assert connector.count("c") == 1


def test_weights_of_a_type_numpy_cannot_read_are_one_line(tmp_path):
    """bfloat16 weights (torch's save_file) raised a raw TypeError; the CLI said "internal
    error"."""
    import torch
    from safetensors.numpy import load_file
    from safetensors.torch import save_file

    from smec_index.compressors import load_compressor, make_compressor
    from smec_index.synthetic import synthetic_retrieval

    data, _ = synthetic_retrieval(40, 10, 16, 4)
    make_compressor("pca", [8]).fit(data).save(tmp_path / "art")
    weights = tmp_path / "art" / "weights.safetensors"
    save_file({k: torch.from_numpy(v).bfloat16() for k, v in load_file(weights).items()},
              weights)  # fmt: skip
    with pytest.raises(SmecError, match="a type numpy cannot read.*save the weights as float32"):
        load_compressor(tmp_path / "art")


def test_open_with_a_data_dir_that_is_no_path_is_one_line(tmp_path):
    with pytest.raises(SmecError, match="data_dir: a path is a str or a pathlib.Path, got int"):
        CompressedIndex.open("faiss", "c", 5)


def test_a_first_judgement_whose_query_is_called_query_is_no_header(tmp_path):
    """No header, first query "query7": the row was dropped as BEIR's header line."""
    from smec_index.data import read_qrels

    (tmp_path / "q.tsv").write_text("query7\tdoc1\t1\nquery8\tdoc2\t1\n")
    assert read_qrels(tmp_path / "q.tsv") == {"query7": {"doc1": 1}, "query8": {"doc2": 1}}
    (tmp_path / "h.tsv").write_text("query-id\tcorpus-id\tscore\nquery7\tdoc1\t1\n")
    assert read_qrels(tmp_path / "h.tsv") == {"query7": {"doc1": 1}}


def test_a_utf16_results_file_is_not_called_a_torn_bench_file(tmp_path):
    """Saved as UTF-16 by an editor, without a final newline: "its last line was cut off (a
    bench killed while writing it)" and "no runs stored yet", both untrue."""
    results = tmp_path / "r.jsonl"
    results.write_bytes('{"schema": "smec-index-bench/1"}'.encode("utf-16"))
    line = _error_line(["report", results, "--out", tmp_path / "rep"])
    assert "not UTF-8 text" in line, line


@pytest.mark.parametrize("call", ["build", "train", "save_artifact", "embed"])
def test_every_python_switch_is_a_bool_not_a_truthy_value(tmp_path, call):
    """The class of create(overwrite="no"): each request's switches are True or False."""
    from smec_index.artifact import save_artifact
    from smec_index.build import BuildRequest, build
    from smec_index.embed import embed_dataset
    from smec_index.train import TrainRequest, check_flags

    ds = _dataset(tmp_path)
    with pytest.raises(SmecError, match=r"(overwrite|force) must be True or False, got 'no'"):
        if call == "build":
            build(BuildRequest(dataset=ds, backend="faiss", dim=8, data_dir=tmp_path / "d",
                               overwrite="no"), say=lambda _m: None)  # fmt: skip
        elif call == "train":
            check_flags(TrainRequest(dataset=ds, dims="8", out=tmp_path / "a", overwrite="no"))
        elif call == "save_artifact":
            save_artifact(tmp_path / "a", {}, {}, overwrite="no")
        else:
            embed_dataset(ds, tmp_path / "e", force="no")
    assert not (tmp_path / "d").exists() and not (tmp_path / "a").exists()


def test_evaluate_run_reads_a_generator_ranking_once_and_refuses_query_ids_of_two_kinds():
    """A generator ranking was used up by nDCG, so recall@100 read 0.0; int query ids
    against a qrels file's text ids scored a silent 0."""
    from smec_index.metrics import evaluate_run

    scores = evaluate_run({"q": (d for d in ["a", "b"])}, {"q": {"a": 1}})
    assert scores == {"ndcg@10": 1.0, "recall@10": 1.0, "recall@100": 1.0}
    with pytest.raises(SmecError, match="the run's query id 1 is a number where the qrels' ids "
                       "have '1'"):  # fmt: skip
        evaluate_run({1: ["a"]}, {"1": {"a": 1}})
    with pytest.raises(SmecError, match="the run's query ids are numbers and the qrels' are"):
        evaluate_run({1: ["a"]}, {"q1": {"a": 1}})
    assert evaluate_run({"x": ["a"]}, {"q": {"a": 1}})["ndcg@10"] == 0.0  # one kind: allowed


def test_write_report_refuses_paths_that_are_no_paths(tmp_path):
    from smec_index.bench.report import write_report

    for results, out in ((5, tmp_path / "r"), (tmp_path / "x.jsonl", 5)):
        with pytest.raises(SmecError, match="a path is a str or a pathlib.Path, got int"):
            write_report(results, out)


def test_bench_measures_a_stored_run_again_for_other_client_counts(tmp_path):
    """--concurrency 2, then 1,4: "every run is stored", and no 1- or 4-client figures."""
    out = tmp_path / "r.jsonl"
    common = ["bench", "--dataset", "synthetic:400x8", "--methods", "none", "--index", "flat",
              "--latency-queries", 5, "--out", out]  # fmt: skip
    _ok_cli(*common, "--concurrency", "2")
    again = _ok_cli(*common, "--concurrency", "1,4")
    assert "measured with 2 concurrent clients, not 1, 4" in again, again
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(record["concurrency"]) == ["1", "4"]
    assert "every run" in _ok_cli(*common, "--concurrency", "1,4")  # the same: stored


def test_judgement_calls_of_sweep_31_made_rules(tmp_path):
    """A dict as a ranking (its keys were ranked), True as a grade (taken as 1), a metric
    that is no function (a raw TypeError), and CompressedIndex(dim=0 or True)."""
    from smec_index.metrics import mean_metric, ndcg_at_k

    with pytest.raises(SmecError, match="a ranking must be a list of document ids, got dict"):
        ndcg_at_k({"a": 1}, {"a": 1})
    with pytest.raises(SmecError, match="grade True"):
        ndcg_at_k(["a"], {"a": True})
    with pytest.raises(SmecError, match="pass a function such as ndcg_at_k"):
        mean_metric({"q": ["a"]}, {"q": {"a": 1}}, "ndcg", 10)
    with open_connector("faiss", data_dir=tmp_path) as connector:
        for dim in (0, True):
            with pytest.raises(SmecError, match="dim must be a positive integer"):
                CompressedIndex(connector, "c", None, dim)


def test_a_finished_copy_is_compared_point_by_point_before_a_later_run_switches_to_it(tmp_path):
    """A payload set on point 1777 of 3,000 after the copy was made: the rerun with --alias
    verified a sample of the first 256 points and switched the app to the stale copy."""
    from qdrant_client import QdrantClient

    from tests.probes import qdrant_source, run_probe

    source, data = qdrant_source(tmp_path, n=3000, dim=16), tmp_path / "d"
    common = ["migrate", "--backend", "qdrant", "--path", source, "--collection", "docs",
              "--dim", 4, "--min-recall", 0, "--data-dir", data, "--quiet"]  # fmt: skip
    _ok_cli(*common)
    client = QdrantClient(path=str(source))
    client.set_payload("docs", {"price": -1}, points=[1777])
    client.close()
    run_probe([*common, "--alias", "live"], tmp_path, "target payloads differ from the "
              "source's; the source's points were changed since", output=data)  # fmt: skip
    client = QdrantClient(path=str(source))
    assert "live" not in {a.alias_name for a in client.get_aliases().aliases}
    client.close()
    _ok_cli(*common, "--alias", "live", "--restart")
    client = QdrantClient(path=str(source))
    assert client.retrieve("live", [1777])[0].payload["price"] == -1
    client.close()


@pytest.mark.parametrize("backend, source, wrong", [
    ("qdrant", {"uri": "x.db"}, "uri"), ("qdrant", {"token": "t"}, "token"),
    ("milvus", {"using": "v"}, "using"), ("milvus", {"api_key": "k"}, "api_key")])  # fmt: skip
def test_a_source_option_of_the_other_backend_is_refused_in_python(tmp_path, backend, source,
                                                                   wrong):  # fmt: skip
    """MigrateRequest took a Milvus uri for a Qdrant source (and the reverse) and ignored it;
    the CLI refused the same flags."""
    from smec_index.connectors.source import open_source
    from smec_index.migration.runner import MigrateRequest, migrate

    place = {"path": str(tmp_path / "q")}
    if backend == "milvus":
        place = {"uri": str(tmp_path / "m.db")}
    request = MigrateRequest(backend=backend, collection="docs", dim=4, data_dir=tmp_path / "d",
                             source={**place, **source}, dry_run=True, progress=False)  # fmt: skip
    with pytest.raises(SmecError, match=f"another backend's option '{wrong}'"):
        migrate(request, say=lambda _m: None)
    with pytest.raises(SmecError, match=f"a {backend} source takes .*, not {wrong}"):
        open_source(backend, "docs", **place, **source)
    assert not (tmp_path / "d").exists()


def test_fit_rows_with_an_artifact_is_refused(tmp_path):
    """migrate --artifact A --fit-rows 100: exit 0, --fit-rows silently unused."""
    from tests.probes import qdrant_source, run_probe

    source = qdrant_source(tmp_path, n=50, dim=16)
    (tmp_path / "art").mkdir()
    run_probe(["migrate", "--backend", "qdrant", "--path", source, "--collection", "docs",
               "--dim", 4, "--artifact", tmp_path / "art", "--fit-rows", 100, "--data-dir",
               tmp_path / "d"],
              tmp_path, "with --artifact nothing is fitted: drop --fit-rows")  # fmt: skip


def test_build_names_a_migrations_copy_before_advising_overwrite(tmp_path):
    """build --collection <a migration's copy> said "pass --overwrite", which then refused."""
    from tests.probes import qdrant_source

    source, data = qdrant_source(tmp_path, n=40, dim=16), tmp_path / "d"
    _ok_cli("migrate", "--backend", "qdrant", "--path", source, "--collection", "docs", "--dim",
            8, "--to-backend", "faiss", "--to", "mine", "--allow-schema-change", "--min-recall",
            0, "--data-dir", data, "--quiet")  # fmt: skip
    line = _error_line(["build", "--dataset", _dataset(tmp_path), "--backend", "faiss", "--dim",
                        16, "--collection", "mine", "--data-dir", data])  # fmt: skip
    assert "not one a build made" in line and "pass --overwrite" not in line, line


# -- the thirty-second sweep: its faults ---------------------------------------------------------


def test_points_of_an_inverted_file_too_small_to_train_survive_close(tmp_path):
    """ivf_flat with nlist 1000 and 300 points: close() raised, and the collection reopened
    empty; a healthy collection of the same connector was lost with it."""
    rows = np.random.default_rng(0).standard_normal((300, 8)).astype(np.float32)
    connector = open_connector("faiss", data_dir=tmp_path)
    connector.create("iv", IndexSpec(8, "l2", "ivf_flat", {"nlist": 1000}))
    connector.add("iv", [f"d{i}" for i in range(300)], rows)
    connector.create("fine", IndexSpec(8, "l2", "flat"))
    connector.add("fine", ["a"], rows[:1])
    connector.close()
    with open_connector("faiss", data_dir=tmp_path) as again:
        assert again.count("iv") == 300 and again.count("fine") == 1
        np.testing.assert_array_equal(again.get("iv", ["d7"]).vectors[0], rows[7])
        with pytest.raises(SmecError, match="needs at least nlist=1000, got 300"):
            again.search("iv", rows[:1], 1)  # training still waits for enough points
        more = np.random.default_rng(1).standard_normal((700, 8)).astype(np.float32)
        again.add("iv", [f"e{i}" for i in range(700)], more)
        assert again.search("iv", rows[7:8], 1)[0][0][0] == "d7"


def test_build_refuses_embedded_documents_that_corpus_jsonl_lacks(tmp_path):
    """Embeddings from elsewhere (no texts digest), corpus.jsonl without d3: build stored d3
    with a blank title and text, and search showed blank hits."""
    ds = _dataset(tmp_path)
    lines = (ds / "corpus.jsonl").read_text().splitlines(keepends=True)
    (ds / "corpus.jsonl").write_text("".join(line for line in lines if '"d3"' not in line))
    line = _error_line(["build", "--dataset", ds, "--backend", "faiss", "--dim", 16,
                        "--data-dir", tmp_path / "d"])  # fmt: skip
    assert "1 documents of the embeddings are not in" in line and "'d3'" in line, line


def test_build_over_a_collection_that_lost_its_spec_is_refused_before_building(tmp_path):
    """meta.json of the collection behind e2 removed: build --overwrite built and switched
    e2 to a new collection, then reported a refusal (it could not drop the old one). With
    a file of the user's in that folder it is refused before building; holding only files
    smec-index writes (sweep 43: its writer lock is one), it is replaced, as info and the
    plain build advise."""
    ds, data = _dataset(tmp_path), tmp_path / "d"
    build = ["build", "--dataset", ds, "--backend", "faiss", "--dim", 16, "--collection",
             "e2", "--data-dir", data, "--quiet"]  # fmt: skip
    _ok_cli(*build)
    (old,) = (data / "faiss").glob("e2__b*")
    (old / "meta.json").unlink()
    (old / "notes.txt").write_text("mine")
    aliases = (data / "faiss" / "aliases.json").read_text()
    line = _error_line([*build, "--overwrite"])
    assert "has lost its smec-index spec" in line, line
    assert (data / "faiss" / "aliases.json").read_text() == aliases
    assert [p.name for p in (data / "faiss").glob("e2__b*")] == [old.name]
    assert (old / "notes.txt").read_text() == "mine"
    (old / "notes.txt").unlink()
    assert "pass --overwrite to replace it" in _error_line(build)
    _ok_cli(*build, "--overwrite")
    (new,) = (data / "faiss").glob("e2__b*")
    assert new != old and json.loads((data / "faiss" / "aliases.json").read_text())["e2"] == \
        new.name


def test_to_options_without_a_to_backend_are_refused_in_python(tmp_path):
    """to_options={"uri": "elsewhere.db"} with no to_backend: the copy went beside the
    source and elsewhere.db was never made (the CLI refused the same)."""
    from smec_index.migration.runner import MigrateRequest, migrate

    for to_options in ({"mode": "local"}, {"uri": str(tmp_path / "elsewhere.db")}):
        request = MigrateRequest(backend="qdrant", collection="docs", dim=4,
                                 data_dir=tmp_path / "d", source={"path": str(tmp_path / "q")},
                                 to_options=to_options, progress=False)  # fmt: skip
        with pytest.raises(SmecError, match="address a to_backend target"):
            migrate(request, say=lambda _m: None)
    assert not (tmp_path / "d").exists()


def test_an_apps_qdrant_alias_may_hold_a_dash(tmp_path):
    """migrate --alias docs-live was refused by smec-index's own naming rule, though Qdrant
    takes it and the app's alias was called so."""
    from qdrant_client import QdrantClient

    from tests.probes import qdrant_source

    source = qdrant_source(tmp_path, n=60, dim=16)
    _ok_cli("migrate", "--backend", "qdrant", "--path", source, "--collection", "docs", "--dim",
            4, "--alias", "docs-live", "--min-recall", 0, "--data-dir", tmp_path / "d",
            "--quiet")  # fmt: skip
    client = QdrantClient(path=str(source))
    assert {(a.alias_name, a.collection_name) for a in client.get_aliases().aliases} == {
        ("docs-live", "docs_4")}
    client.close()
    line = _error_line(["migrate", "--backend", "qdrant", "--path", source, "--collection",
                        "docs", "--dim", 4, "--alias", "docs__b0123456789a", "--data-dir",
                        tmp_path / "d"])  # fmt: skip
    assert "reserved for smec-index" in line, line


def test_request_fields_of_the_wrong_type_are_one_line(tmp_path):
    """BuildRequest(data_dir=str), connector_options with data_dir or as a list,
    TrainRequest(dims=[8, 4] or 8, dataset=str), SearchRequest(like=3, options=[1]): raw
    TypeErrors and AttributeErrors from deep inside."""
    from smec_index.build import BuildRequest, build
    from smec_index.search import SearchRequest, run_search
    from smec_index.train import TrainRequest, check_types

    ds = _dataset(tmp_path)
    for options, fragment in (({"data_dir": "x"}, "data_dir is a field of its own"),
                              ([1], "connector_options must be a dict, got list")):  # fmt: skip
        with pytest.raises(SmecError, match=fragment):
            build(BuildRequest(dataset=str(ds), backend="faiss", dim=8,
                               data_dir=str(tmp_path / "d"), connector_options=options),
                  say=lambda _m: None)  # fmt: skip
    for dims in ([8, 4], (8, 4), 8):
        request = TrainRequest(dataset=str(ds), out=str(tmp_path / "a"), dims=dims)
        check_types(request)
        assert request.dims in ("8,4", "8") and isinstance(request.dataset, Path)
    with pytest.raises(SmecError, match="dims \\[8.5\\]: pass a list of whole numbers"):
        check_types(TrainRequest(dataset=ds, out=tmp_path / "a", dims=[8.5]))
    for fields, fragment in (
        ({"like": 3}, "like must be text"),
        ({"like": "d1", "options": [1]}, "options must be a dict"),
    ):
        with pytest.raises(SmecError, match=fragment):
            run_search(SearchRequest(backend="faiss", collection="c", data_dir=tmp_path / "d",
                                     **fields))  # fmt: skip
    assert not (tmp_path / "d").exists() and not (tmp_path / "a").exists()


def test_sweep_32s_api_faults(tmp_path):
    """transform(x, dim="8") said the artifact had no dim 8; a tensor that requires grad
    met torch's raw RuntimeError in Connector.add and search; search's padding ("") was
    refused by nDCG as a document listed twice (a bench with nprobe 1 aborted)."""
    import torch

    from smec_index.compressors import make_compressor
    from smec_index.metrics import ndcg_at_k, recall_at_k
    from smec_index.synthetic import synthetic_retrieval

    data, _ = synthetic_retrieval(60, 10, 16, 4)
    pca = make_compressor("pca", [8]).fit(data)
    with pytest.raises(SmecError, match="dim '8': pass a whole number, one of the artifact's"):
        pca.transform(data.corpus.vectors[:1], "8")
    with open_connector("faiss", data_dir=tmp_path) as connector:
        connector.create("c", IndexSpec(dim=8))
        connector.add("c", ["a", "b"], torch.randn(2, 8, requires_grad=True))
        ids, _ = connector.search("c", torch.randn(1, 8, requires_grad=True), 5)
        assert sorted(ids[0][:2]) == ["a", "b"] and ids[0][2:] == ["", "", ""]
    assert ndcg_at_k(ids[0], {"a": 1}) > 0 and recall_at_k(ids[0], {"a": 1, "b": 1}) == 1.0


def test_an_index_opened_before_a_rebuild_names_the_rebuild(tmp_path):
    """Opened, then rebuilt in the same process: search said to build 'x__b<hex>'."""
    ds, data = _dataset(tmp_path), tmp_path / "d"
    build = ["build", "--dataset", ds, "--backend", "faiss", "--dim", 16, "--collection", "x",
             "--data-dir", data, "--quiet"]  # fmt: skip
    _ok_cli(*build)
    index = CompressedIndex.open("faiss", "x", data)
    _ok_cli(*build, "--overwrite")
    with pytest.raises(SmecError, match="the collection 'x' was opened on .* is gone: a rebuild"):
        index.search(np.ones((1, 16), np.float32), 1)
    index.close()


# -- the thirty-third sweep: its faults ----------------------------------------------------------


def test_sweep_33s_api_faults(tmp_path):
    """refine=inf met faiss's raw RuntimeError at the first search (1e9: bad_alloc); a 2-D
    array of ids met numpy's "truth value is ambiguous" in the metrics; create(overwrite=True)
    dropped the aliases pointing at the collection; a qdrant local-mode searcher answered
    from the collection made again under its name."""
    from smec_index.metrics import ndcg_at_k

    rows = np.random.default_rng(0).standard_normal((20, 16)).astype(np.float32)
    with open_connector("faiss", data_dir=tmp_path / "f") as connector:
        for refine in (float("inf"), float("nan"), 1e9):
            params = {"nlist": 4, "pq_m": 4, "refine": refine}
            with pytest.raises(SmecError, match="refine=.*: use a number from 1 to 1000"):
                connector.create("x", IndexSpec(16, "l2", "ivf_pq", params))
    with pytest.raises(SmecError, match="a ranking is one list of ids, got a 2-d array"):
        ndcg_at_k(np.array([["a", "b"]]), {"a": 1})
    for backend, options in (("faiss", {}), ("qdrant", {"mode": "local"})):
        with open_connector(backend, data_dir=tmp_path / backend, **options) as connector:
            connector.create("v1", IndexSpec(16))
            connector.add("v1", [f"a{i}" for i in range(20)], rows)
            connector.set_alias("prod", "v1")
            old = connector.searcher("v1")
            connector.create("v1", IndexSpec(16), overwrite=True)
            connector.add("v1", ["b0"], rows[:1])
            assert connector.aliases() == {"prod": "v1"}, backend
            assert connector.search("prod", rows[:1], 1)[0][0][0] == "b0"
            with pytest.raises(SmecError, match="searcher"):
                old.search(rows[:1], 1)


def test_an_in_place_vector_deleted_after_it_was_filled_names_restart(tmp_path):
    """The user deleted the filled vector (as --rollback advises): every rerun said "0 of
    200 points have vector a_8; run again to resume"."""
    from qdrant_client import QdrantClient, models

    client = QdrantClient(path=str(tmp_path / "q"))
    client.create_collection("docs", vectors_config={
        "a": models.VectorParams(size=16, distance=models.Distance.COSINE)})  # fmt: skip
    rng = np.random.default_rng(0)
    client.upsert("docs", [models.PointStruct(id=i, vector={"a": rng.standard_normal(16).tolist()})
                           for i in range(200)])  # fmt: skip
    client.close()
    common = ["migrate", "--backend", "qdrant", "--path", tmp_path / "q", "--collection",
              "docs", "--dim", 8, "--using", "a", "--in-place", "--min-recall", 0,
              "--data-dir", tmp_path / "d", "--quiet"]  # fmt: skip
    _ok_cli(*common)
    client = QdrantClient(path=str(tmp_path / "q"))
    client.delete_vector_name("docs", "a_8")
    client.close()
    line = _error_line(common)
    assert "pass --restart to fill it again" in line and "resume" not in line, line
    _ok_cli(*common, "--restart")


def test_a_corpus_too_small_for_hard_negatives_names_a_way_build_has(tmp_path):
    """build on 20 documents said "or --unsupervised", a flag build does not have."""
    line = _error_line(["build", "--dataset", _dataset(tmp_path, n=20), "--backend", "faiss",
                        "--dim", 8, "--data-dir", tmp_path / "d", "--quiet"])  # fmt: skip
    assert "smec-index train --unsupervised`, then build with its --artifact" in line, line


def test_a_build_refused_at_its_alias_step_leaves_nothing(tmp_path):
    """aliases.lock made a folder: one error line, but the new collection and its manifest
    stayed until the next build of that name."""
    ds, data = _dataset(tmp_path), tmp_path / "d"
    build = ["build", "--dataset", ds, "--backend", "hnswlib", "--dim", 16, "--data-dir", data,
             "--quiet"]  # fmt: skip
    _ok_cli(*build, "--collection", "first")
    (data / "hnswlib" / "aliases.lock").unlink()
    (data / "hnswlib" / "aliases.lock").mkdir()
    assert "Is a directory" in _error_line([*build, "--collection", "second"])
    assert not list((data / "hnswlib").glob("second__b*"))
    assert not [p for p in (data / "manifests").rglob("*.json") if "second" in p.read_text()]


def test_an_apps_alias_of_the_source_moves_to_a_copy_in_the_same_milvus_file(tmp_path):
    """--to-backend milvus --to-uri <the source's own file> --alias docs_app (the app's alias
    of the source): refused as an alias "not at the source"; the same file spelled two ways
    were two places ("this migration did not create it")."""
    from pymilvus import MilvusClient

    db = tmp_path / "m.db"
    _user_milvus(db, n=60)
    client = MilvusClient(str(db))
    client.create_alias("docs", "docs_app")
    client.close()
    for uri in (db, f"{tmp_path}/./m.db"):
        _ok_cli("migrate", "--backend", "milvus", "--uri", db, "--collection", "docs", "--dim",
                4, "--to-backend", "milvus", "--to-uri", uri, "--to", "docs4", "--alias",
                "docs_app", "--allow-schema-change", "--min-recall", 0, "--data-dir",
                tmp_path / "d", "--quiet")  # fmt: skip
    client = MilvusClient(str(db))
    assert client.describe_alias("docs_app")["collection_name"] == "docs4"
    client.close()


def test_info_takes_the_names_the_users_engine_takes(tmp_path):
    """migrate --alias 'ü live' was accepted, and info on it refused the name."""
    from tests.probes import qdrant_source

    source = qdrant_source(tmp_path, n=40, dim=16)
    common = ["--backend", "qdrant", "--path", source, "--data-dir", tmp_path / "d"]
    _ok_cli("migrate", *common, "--collection", "docs", "--dim", 4, "--alias", "ü live",
            "--min-recall", 0, "--quiet")  # fmt: skip
    described = json.loads(_ok_cli("info", *common, "--collection", "ü live", "--json"))
    assert described["alias_target"] == "docs_4" and described["dim"] == 4, described


def test_a_migration_killed_while_making_its_copy_makes_it_again(tmp_path):
    """Killed after the copy was created but before its partitions were: the rerun compared
    the half-made copy with the source and blamed a schema change (pass
    --allow-schema-change). Here the killed state is laid down by hand: the progress record
    before its target_schema, the copy without its partition."""
    from pymilvus import MilvusClient

    db, data = tmp_path / "m.db", tmp_path / "d"
    _user_milvus(db, n=40)
    client = MilvusClient(str(db))
    client.create_partition("docs", "p1")
    client.insert("docs", [{"pk": 100 + i, "emb": np.ones(16).tolist(), "title": "p"}
                           for i in range(5)], partition_name="p1")  # fmt: skip
    client.close()
    common = ["migrate", "--backend", "milvus", "--uri", db, "--collection", "docs", "--dim", 4,
              "--min-recall", 0, "--data-dir", data, "--quiet"]  # fmt: skip
    _ok_cli(*common)
    (record,) = [p for p in (data / "migrations").glob("*/milvus-*.json")]
    state = json.loads(record.read_text())
    state.update(written=0, done=False, cursor=None)
    state.pop("target_schema")
    record.write_text(json.dumps(state))
    client = MilvusClient(str(db))
    client.release_collection("docs_4")
    client.drop_partition("docs_4", "p1")
    client.close()
    assert "verified: True" in _ok_cli(*common)
    client = MilvusClient(str(db))
    assert sorted(client.list_partitions("docs_4")) == ["_default", "p1"]
    client.close()


def test_a_built_collection_whose_engine_files_were_damaged_is_not_read_as_empty(tmp_path):
    """milvus-lite's own manifest.json of a built collection damaged: info said count 0 and
    search --like said there was no such point."""
    ds, data = _dataset(tmp_path), tmp_path / "d"
    _ok_cli("build", "--dataset", ds, "--backend", "milvus", "--dim", 16, "--collection", "m",
            "--data-dir", data, "--quiet")  # fmt: skip
    (damaged,) = (data / "milvus" / "milvus.db" / "collections").glob("m__b*/manifest.json")
    damaged.write_text("{")
    for command in (["info"], ["search", "--like", "d1"]):
        line = _error_line([*command, "--backend", "milvus", "--collection", "m", "--data-dir",
                            data])  # fmt: skip
        assert "was built with 300 points, and its engine now reads none" in line, line


# -- a review of this stop's fixes ---------------------------------------------------------------


def test_pending_points_keep_their_exact_vectors_through_a_reopen(tmp_path):
    """The untrained commit wrote no exact copy of the vectors: after a reopen, get() read
    the lossy PQ codes back (max error 0.48)."""
    rng = np.random.default_rng(0)
    first, more = rng.standard_normal((3, 8)), rng.standard_normal((40, 8))
    spec = IndexSpec(8, "l2", "ivf_pq", {"nlist": 4, "pq_m": 2, "pq_bits": 4})
    with open_connector("faiss", data_dir=tmp_path) as connector:
        connector.create("pq", spec)
        connector.add("pq", ["a", "b", "c"], first.astype(np.float32))
    with open_connector("faiss", data_dir=tmp_path) as connector:
        connector.add("pq", [f"m{i}" for i in range(40)], more.astype(np.float32))
        connector.flush("pq")
    with open_connector("faiss", data_dir=tmp_path) as connector:
        got = connector.get("pq", ["a", "b", "c"]).vectors
    np.testing.assert_allclose(got, first, atol=1e-6)


def test_a_plain_collection_a_build_made_before_aliases_is_still_replaced(tmp_path):
    """Builds once kept a collection under its own name; --overwrite replaces such a one (its
    manifest is a build's), while a migration's copy stays refused."""
    from smec_index.index import Manifest

    ds, data = _dataset(tmp_path), tmp_path / "d"
    with open_connector("faiss", data_dir=data) as connector:
        stored = connector.create("old", IndexSpec(dim=16))
        connector.add("old", ["x"], np.ones((1, 16), np.float32))
    Manifest(backend="faiss", collection="old", dim=16, input_dim=16, artifact=None,
             model=None, dataset=str(ds), spec=stored.to_dict(), count=1,
             name="old").save(data)  # fmt: skip
    _ok_cli("build", "--dataset", ds, "--backend", "faiss", "--dim", 16, "--collection", "old",
            "--overwrite", "--data-dir", data, "--quiet")  # fmt: skip
    with open_connector("faiss", data_dir=data) as connector:
        assert connector.resolve("old").startswith("old__b") and connector.count("old") == 300


def test_force_train_numbers_past_the_last_entry_not_into_a_gap(tmp_path):
    """Entries base, -r3 (r2 removed): the next --force-train wrote into -r3, over the
    artifact a collection was built with."""
    import shutil

    ds, data = _dataset(tmp_path), tmp_path / "d"
    build = ["build", "--dataset", ds, "--backend", "faiss", "--dim", 8, "--data-dir", data,
             "--quiet", "--force-train"]  # fmt: skip
    for name in ("a", "b", "c"):
        _ok_cli(*build, "--collection", name)
    (base,) = [p for p in (data / "artifacts").iterdir() if "-r" not in p.name]
    shutil.rmtree(base.with_name(f"{base.name}-r2"))
    _ok_cli(*build, "--collection", "d")
    assert sorted(p.name[len(base.name):] for p in (data / "artifacts").iterdir()) == [
        "", "-r3", "-r4"]
    found = _ok_cli("search", "--backend", "faiss", "--collection", "c", "--like", "d1", "-k", 1,
                    "--data-dir", data)  # fmt: skip
    assert "d1" in found, found


def test_padding_is_no_id_kind_and_no_duplicate():
    """[None, None] against text judgements was "ids are numbers"; [5, -1, -1] was refused
    as a document listed twice."""
    from smec_index.metrics import ndcg_at_k, recall_at_k

    assert ndcg_at_k([None, None], {"d1": 1}) == 0.0
    assert recall_at_k([5, -1, -1], {5: 1}) == 1.0


# -- the thirty-fourth sweep: its faults ---------------------------------------------------------


def test_sweep_34s_metric_faults():
    """Raw errors for ks=['x'] (int() before the check), a silent 0 for a torch ranking
    (0-d tensors hash by identity), and silent 0s for a run or ranking of mixed id kinds."""
    import torch

    from smec_index.metrics import evaluate_run, ndcg_at_k, recall_at_k, recall_vs_exact

    run, qrels = {"q": ["a", "b"]}, {"q": {"a": 1}}
    for ks in (["x"], [None], [float("nan")], [float("inf")], [1j], [{}]):
        with pytest.raises(SmecError, match="pass a whole number >= 1"):
            evaluate_run(run, qrels, ks=ks)
    assert ndcg_at_k(torch.tensor([1, 2]), {1: 1}) == ndcg_at_k([1, 2], {1: 1}) == 1.0
    assert recall_at_k(torch.tensor([1, 2]), {1: 1}) == 1.0
    assert recall_vs_exact([torch.tensor([1, 2])], [[2, 1]], k=2) == 1.0
    with pytest.raises(SmecError, match="a ranking is ordered"):
        ndcg_at_k({"a", "b"}, {"a": 1})
    with pytest.raises(SmecError, match=r"the ranking's id 6 is a number where .*'6'"):
        ndcg_at_k(["5", 6], {"5": 1, "6": 1})
    with pytest.raises(SmecError, match=r"the run's query id 2 is a number where .*'2'"):
        evaluate_run({"1": ["a"], 2: ["a"]}, {"1": {"a": 1}, "2": {"a": 1}})
    with pytest.raises(SmecError, match="ids are strings or whole numbers"):
        recall_at_k([object()], {"a": 1})


def test_sweep_34s_reader_faults(tmp_path):
    """read_qrels and read_jsonl met None, an int, a long name, a folder or a missing file
    with raw TypeError/OSError; a 200 kB qrels field was a raw _csv.Error (the CLI's
    'internal error', exit 1)."""
    from smec_index.data import read_jsonl, read_qrels

    for reader in (read_qrels, read_jsonl):
        for path in (None, 5, "x" * 5000, tmp_path, tmp_path / "gone"):
            with pytest.raises(SmecError):
                list(reader(path)) if reader is read_jsonl else reader(path)
    lines = tmp_path / "rows.jsonl"
    lines.write_text('{"_id": "1"}\n[1, 2]\n')
    with pytest.raises(SmecError, match=r"rows.jsonl:2: not a JSON object"):
        list(read_jsonl(lines))
    ds = _dataset(tmp_path)
    big = tmp_path / "big.tsv"
    big.write_text("query-id\tcorpus-id\tscore\n" + f"q0\t{'d' * 200_000}\t1\n")
    with pytest.raises(SmecError, match=r"big.tsv:2: field larger than field limit"):
        read_qrels(big)
    line = _error_line(["train", "--dataset", ds, "--dims", 8, "--qrels", big, "--out",
                        tmp_path / "art"])  # fmt: skip
    assert "big.tsv:2: field larger" in line and not (tmp_path / "art").exists()


def test_a_build_takes_numpys_integers(tmp_path):
    """BuildRequest(dim=np.int64(16)) ran the whole build, then its manifest's JSON save
    failed with a raw TypeError; TrainRequest took numpy dims nowhere."""
    from smec_index.build import BuildRequest, build
    from smec_index.train import TrainRequest, check_types

    ds = _dataset(tmp_path)
    summary = build(BuildRequest(dataset=ds, backend="faiss", dim=np.int64(16),
                                 batch_size=np.int32(100), data_dir=tmp_path / "d",
                                 progress=False), say=lambda *_: None)  # fmt: skip
    assert summary["dim"] == 16 and type(summary["dim"]) is int
    request = TrainRequest(dataset=ds, out=tmp_path / "art", dims=[np.int64(16), np.int32(8)])
    check_types(request)
    assert request.dims == "16,8"


@pytest.mark.parametrize("backend,options", [("faiss", {}), ("hnswlib", {}),
                                             ("qdrant", {"mode": "edge"}),
                                             ("qdrant", {"mode": "local"})])  # fmt: skip
def test_a_data_dir_that_cannot_be_made_is_one_line(tmp_path, backend, options):
    """A data_dir linking to nowhere raised FileExistsError ('File exists': untrue), one
    under /proc a raw FileNotFoundError, from create()."""
    (tmp_path / "nowhere-link").symlink_to(tmp_path / "nowhere")
    with pytest.raises(SmecError, match="a symbolic link to .*nowhere, which does not exist"):
        open_connector(backend, data_dir=tmp_path / "nowhere-link", **options).create(
            "c", IndexSpec(dim=4, index="hnsw" if backend != "faiss" else "flat"))
    with pytest.raises(SmecError, match="pass a data directory you can write"):
        open_connector(backend, data_dir="/proc/self", **options).create(
            "c", IndexSpec(dim=4, index="hnsw" if backend != "faiss" else "flat"))
    assert not (tmp_path / "nowhere").exists()


def test_a_milvus_cursor_it_never_gave_is_refused(tmp_path):
    """iterate(cursor='garbage') on Milvus read 'id > garbage' and ended at once, as if the
    scan were done (the other backends refuse a cursor they did not give)."""
    connector = open_connector("milvus", data_dir=tmp_path)
    connector.create("c", IndexSpec(dim=4, index="hnsw"))
    connector.add("c", [f"d{i}" for i in range(6)], np.eye(6, 4, dtype=np.float32) + 0.1)
    connector.flush("c")
    first = next(iter(connector.iterate("c", batch_size=2)))
    rest = [i for batch in connector.iterate("c", batch_size=2, cursor=first.cursor)
            for i in batch.ids]  # fmt: skip
    assert rest == ["d2", "d3", "d4", "d5"]
    with pytest.raises(SmecError, match="cursor 'garbage' is not one 'c' gave"):
        list(connector.iterate("c", batch_size=2, cursor="garbage"))
    connector.close()


def test_a_build_whose_alias_was_lost_is_neither_deleted_nor_unexplained(tmp_path):
    """aliases.json 'corrupt; fix or remove it': removed, every build read 'no collection
    built', and the next build of a name deleted its finished build without --overwrite."""
    ds, data = _dataset(tmp_path), tmp_path / "d"
    build = ["build", "--dataset", ds, "--backend", "faiss", "--dim", 16, "--data-dir", data,
             "--quiet"]  # fmt: skip
    _ok_cli(*build, "--collection", "c1")
    _ok_cli(*build, "--collection", "keep")
    aliases = data / "faiss" / "aliases.json"
    aliases.write_text("{not json")
    assert "removing it unnames every collection in it" in _error_line(
        ["info", "--backend", "faiss", "--data-dir", data, "--collection", "keep"])
    aliases.unlink()
    physical = {p.name.split("__")[0]: p.name for p in (data / "faiss").glob("*__b*")}
    assert f"but its build {physical['keep']!r} is there" in _error_line(
        ["info", "--backend", "faiss", "--data-dir", data, "--collection", "keep"])
    assert f"but its build {physical['keep']!r} is there" in _error_line(
        ["search", "--backend", "faiss", "--data-dir", data, "--collection", "keep", "--like",
         "d1"])  # fmt: skip
    assert "pass --overwrite to replace that build" in _error_line([*build, "--collection", "c1"])
    assert (data / "faiss" / physical["c1"]).is_dir()  # kept: a finished build, not a leftover
    _ok_cli(*build, "--collection", "c1", "--overwrite")  # asked for: replaced
    assert not (data / "faiss" / physical["c1"]).exists()
    assert json.loads(aliases.read_text())["c1"].startswith("c1__b")
    # a build killed between its manifest and its switch is a leftover, removed unasked
    manifest = data / "manifests" / "faiss" / f"{physical['keep']}.json"
    record = json.loads(manifest.read_text())
    assert "switching" not in record["extra"]  # a finished build's manifest says so
    manifest.write_text(json.dumps({**record, "extra": {"switching": True}}))
    _ok_cli(*build, "--collection", "keep")
    assert not (data / "faiss" / physical["keep"]).exists()


@pytest.mark.parametrize("folder, name", [("msmarco-v2.1", "msmarco_v2_1_original_16"),
                                          ("2024 data-ü", "c_2024_data___original_16")])
def test_a_default_collection_name_comes_from_any_dataset_folder(tmp_path, folder, name):
    """build without --collection on a folder msmarco-v2.1 refused 'msmarco_v2.1_pca_64', a
    name the user never typed, without saying to pass --collection."""
    ds = _dataset(tmp_path).rename(tmp_path / folder)
    out = _ok_cli("build", "--dataset", ds, "--backend", "faiss", "--dim", 16, "--data-dir",
                  tmp_path / "d", "--json", "--quiet")  # fmt: skip
    assert json.loads(out)["collection"] == name


def test_a_dot_source_whose_later_points_are_not_unit_length_is_refused(tmp_path):
    """Only the first 256 points' norms were checked: a Dot source whose points 900 on
    have norm 3 was copied whole, then failed its gate at any dim with advice that could
    not help. Now the fit's rows and every streamed batch are checked; a copy cut short by
    it is dropped."""
    from qdrant_client import QdrantClient, models

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((1000, 16))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors[900:] *= 3
    client = QdrantClient(path=str(tmp_path / "q"))
    client.create_collection("dot", vectors_config=models.VectorParams(
        size=16, distance=models.Distance.DOT))  # fmt: skip
    client.upsert("dot", models.Batch(ids=list(range(1000)), vectors=vectors.tolist()))
    client.close()
    common = ["migrate", "--backend", "qdrant", "--path", tmp_path / "q", "--collection",
              "dot", "--dim", 8, "--data-dir", tmp_path / "d", "--quiet"]  # fmt: skip
    assert "point '900' has norm 3" in _error_line(common)  # the fit's rows
    artifact = tmp_path / "art"
    _ok_cli("train", "--dataset", _dataset(tmp_path), "--method", "pca", "--dims", 8, "--out",
            artifact, "--quiet")  # fmt: skip
    line = _error_line([*common, "--artifact", artifact, "--batch-size", 300])  # the stream's
    assert "point '900' has norm 3" in line and "its progress were dropped" in line
    client = QdrantClient(path=str(tmp_path / "q"))
    assert [c.name for c in client.get_collections().collections] == ["dot"]
    assert client.count("dot").count == 1000
    client.close()


def test_projection_load_names_a_rolled_back_alias(tmp_path):
    """After --rollback, Projection.load(alias) said no migration of that name existed; with
    a second app's source of the same alias name (another place, one data dir), it returned
    that app's artifact for the app whose alias names its source again."""
    from qdrant_client import QdrantClient, models

    from smec_index import Projection

    client = QdrantClient(path=str(tmp_path / "q"))
    client.create_collection("docs", vectors_config=models.VectorParams(
        size=16, distance=models.Distance.COSINE))  # fmt: skip
    client.upsert("docs", models.Batch(ids=list(range(200)), vectors=np.random.default_rng(
        0).standard_normal((200, 16)).tolist()))  # fmt: skip
    client.update_collection_aliases(change_aliases_operations=[models.CreateAliasOperation(
        create_alias=models.CreateAlias(collection_name="docs", alias_name="live"))])
    client.close()
    _user_milvus(tmp_path / "app.db", n=200)
    data = tmp_path / "d"
    qdrant = ["migrate", "--backend", "qdrant", "--path", tmp_path / "q", "--collection",
              "docs", "--dim", 8, "--alias", "live", "--min-recall", 0, "--data-dir", data,
              "--quiet"]  # fmt: skip
    _ok_cli(*qdrant)
    _ok_cli(*qdrant, "--rollback")
    with pytest.raises(SmecError, match="rolled back, so there it points at the collection it "
                       "named before the migration, 'docs'"):  # fmt: skip
        Projection.load("live", data)
    from pymilvus import MilvusClient

    milvus = MilvusClient(str(tmp_path / "app.db"))
    milvus.create_alias("docs", "live")
    milvus.close()
    _ok_cli("migrate", "--backend", "milvus", "--uri", tmp_path / "app.db", "--collection",
            "docs", "--dim", 4, "--alias", "live", "--min-recall", 0, "--data-dir", data,
            "--quiet")  # fmt: skip
    with pytest.raises(SmecError, match="rolled back.*elsewhere in .* it uses"):
        Projection.load("live", data)  # was: the Milvus app's 16 -> 4 artifact, silently


def test_sweep_34s_messages_say_what_is_wrong(tmp_path):
    """Messages that pointed the wrong way: a FIFO --data-dir 'cannot write there (File
    exists)'; a blank id line '299 ids for 300 vectors' (the file has 300 lines); pq_m that
    does not divide the dim named neither flag nor a value that does."""
    import os

    ds = _dataset(tmp_path)
    os.mkfifo(tmp_path / "fifo")
    line = _error_line(["build", "--dataset", ds, "--backend", "faiss", "--dim", 16,
                        "--data-dir", tmp_path / "fifo"])  # fmt: skip
    assert "is a device, socket or FIFO, not a directory" in line
    ids = ds / "embeddings" / "all-MiniLM-L6-v2" / "corpus_ids.txt"
    lines = ids.read_text().splitlines()
    ids.write_text("\n".join([*lines[:5], " ", *lines[6:]]) + "\n\n")  # line 6 blank
    assert "corpus_ids.txt:6: an empty id" in _error_line(
        ["build", "--dataset", ds, "--backend", "faiss", "--dim", 16, "--data-dir",
         tmp_path / "d"])  # fmt: skip
    with pytest.raises(SmecError, match=r"pq_m=7 \(--pq-m\) must divide dim 64; .* e\.g\. 32"):
        IndexSpec(dim=64, index="ivf_pq", params={"pq_m": 7}).resolved()


# -- the thirty-fifth sweep: its faults ----------------------------------------------------------


@pytest.mark.parametrize("gives", ["0.5", None, float("nan"), True])
def test_mean_metric_refuses_a_metric_that_gives_no_number(gives):
    """A metric of the user's returning text or None met a raw TypeError in sum(); NaN
    was averaged into a silent NaN."""
    from smec_index.metrics import mean_metric

    with pytest.raises(SmecError, match="a metric returns a finite number"):
        mean_metric({"q": ["a"]}, {"q": {"a": 1}}, lambda ranked, rels, k: gives, 10)


def test_a_derived_name_is_a_name_whatever_its_parts():
    """The review of sweep 34: only the base was cleaned, so an adaptor's default collection
    'scifact_search-adaptor_64' was refused."""
    from smec_index.connectors.base import check_collection_name, derived_name

    for base, suffix in [("scifact", "search-adaptor_64"), ("msmarco-v2.1", "pca_8"),
                         ("dócs", "4"), ("9lives", "x.y"), ("a" * 300, "smec_64")]:
        check_collection_name(derived_name(base, suffix, 187))


def test_a_source_folder_that_is_the_targets_store_is_named(tmp_path):
    """A Qdrant source kept in DATA/qdrant-local, migrated --to-backend qdrant --to-mode
    local: the target opened that folder again and the engine's 'accessed by another
    instance ... close any other connector' was all the user got."""
    from qdrant_client import QdrantClient, models

    source = tmp_path / "d" / "qdrant-local"
    client = QdrantClient(path=str(source))
    client.create_collection("docs", vectors_config=models.VectorParams(
        size=16, distance=models.Distance.COSINE))  # fmt: skip
    client.upsert("docs", models.Batch(ids=list(range(20)), vectors=np.random.default_rng(
        0).standard_normal((20, 16)).tolist()))  # fmt: skip
    client.close()
    line = _error_line(["migrate", "--backend", "qdrant", "--path", source, "--collection",
                        "docs", "--dim", 8, "--to-backend", "qdrant", "--to-mode", "local",
                        "--data-dir", tmp_path / "d"])  # fmt: skip
    assert "is where the qdrant target would be kept" in line


def test_qrels_naming_no_point_of_the_source_say_so(tmp_path):
    """Qrels whose ids are no points of the source (a typo'd prefix) were refused as 'the
    source's own search finds none of the judged documents', as if search were at fault."""
    from qdrant_client import QdrantClient, models

    rng = np.random.default_rng(0)
    rows = rng.standard_normal((200, 16)).astype(np.float32)
    client = QdrantClient(path=str(tmp_path / "q"))
    client.create_collection("docs", vectors_config=models.VectorParams(
        size=16, distance=models.Distance.COSINE))  # fmt: skip
    client.upsert("docs", models.Batch(ids=list(range(200)), vectors=rows.tolist()))
    client.close()
    np.save(tmp_path / "q.npy", rows[:60])
    (tmp_path / "qids.txt").write_text("".join(f"q{i}\n" for i in range(60)))
    (tmp_path / "qrels.tsv").write_text("".join(f"q{i}\tdoc{i}\t1\n" for i in range(60)))
    line = _error_line(["migrate", "--backend", "qdrant", "--path", tmp_path / "q",
                        "--collection", "docs", "--dim", 8, "--queries", tmp_path / "q.npy",
                        "--query-ids", tmp_path / "qids.txt", "--qrels", tmp_path / "qrels.tsv",
                        "--data-dir", tmp_path / "d"])  # fmt: skip
    assert "is a point of the source; --qrels must name the source's point ids" in line


@pytest.mark.parametrize("backend", ["faiss", "hnswlib", "qdrant", "milvus"])
def test_get_answers_plain_str_ids_for_a_numpy_array_of_ids(tmp_path, backend):
    """faiss and hnswlib answered get(np.array([...])) with numpy.str_ ids, Qdrant and
    Milvus with str: the contract has the backends answer alike."""
    connector = open_connector(backend, data_dir=tmp_path)
    connector.create("c", IndexSpec(dim=4, index="hnsw"))
    connector.add("c", np.array(["a", "b"]), np.eye(2, 4, dtype=np.float32) + 0.1)
    connector.flush("c")
    got = connector.get("c", np.array(["b", "a"]))
    assert got.ids == ["b", "a"] and {type(i) for i in got.ids} == {str}
    connector.close()


def test_bench_caps_a_synthetic_datasets_queries_too(tmp_path):
    """--max-queries 5 on synthetic:300x32 measured and recorded all 30 planted queries."""
    out = tmp_path / "r.jsonl"
    _ok_cli("bench", "--dataset", "synthetic:300x32", "--methods", "none", "--index", "flat",
            "--latency-queries", 5, "--concurrency", 1, "--max-queries", 5, "--out", out)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert records and {r["n_queries"] for r in records} == {5}


def test_train_queries_beyond_float32_and_empty_are_named_as_they_are(tmp_path):
    """Finite float64 --queries of 1e39 met a numpy overflow warning, then 'NaN or inf';
    an empty --queries file was told to 'embed the corpus first'."""
    ds = _dataset(tmp_path)
    big = np.full((4, 16), 1e39)
    np.save(tmp_path / "big.npy", big)
    np.save(tmp_path / "empty.npy", np.zeros((0, 16)))
    train = ["train", "--dataset", ds, "--method", "smec", "--unsupervised", "--dims", 8,
             "--out", tmp_path / "art", "--queries"]  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a numpy RuntimeWarning reached stderr
        assert "holds values beyond +-1e+15" in _error_line([*train, tmp_path / "big.npy"])
    line = _error_line([*train, tmp_path / "empty.npy"])
    assert "pass a file that holds vectors" in line and "embed the corpus" not in line


def test_search_and_info_show_the_users_text_on_one_line(tmp_path):
    """A title holding a newline added a forged hit row to `search`; escape codes reached
    the terminal; a model name holding one forged an `info` line."""
    ds = _dataset(tmp_path)
    corpus = [json.loads(line) for line in (ds / "corpus.jsonl").read_text().splitlines()]
    corpus[1]["title"] = "real\nFAKE  2  0.9999  999  injected row\x1b[2J"
    (ds / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in corpus))
    meta = ds / "embeddings" / "all-MiniLM-L6-v2" / "meta.json"
    meta.write_text(json.dumps({"model": "m\n                 count: 999999"}))
    data = tmp_path / "d"
    _ok_cli("build", "--dataset", ds, "--backend", "faiss", "--dim", 16, "--data-dir", data,
            "--collection", "c", "--quiet")  # fmt: skip
    out = _ok_cli("search", "--backend", "faiss", "--data-dir", data, "--collection", "c",
                  "--like", "d1", "-k", 3)  # fmt: skip
    assert len(out.splitlines()) == 3 and "\x1b" not in out
    assert "real\\nFAKE" in out and "\\x1b[2J" in out
    shown = _ok_cli("info", "--backend", "faiss", "--data-dir", data, "--collection", "c")
    counts = [line.strip() for line in shown.splitlines() if line.strip().startswith("count:")]
    assert counts == ["count: 300"] and "m\\n" in shown


def test_sweep_35s_judgement_calls_made_rules(tmp_path):
    """A 300-character --collection was refused as over 200, then a 200-character one as
    over 187; `embed --model FILE` said 'no such model directory'."""
    ds = _dataset(tmp_path)
    for name in ("a" * 300, "a/b", "a" * 195):  # sweep 47: 'a/b' was told "at most 200"
        line = _error_line(["build", "--dataset", ds, "--backend", "faiss", "--dim", 16,
                            "--data-dir", tmp_path / "d", "--collection", name])  # fmt: skip
        assert line.endswith("use ASCII letters, digits and '_', starting with a letter, at "
                             "most 187 characters"), line
    (tmp_path / "model.bin").write_bytes(b"x")
    line = _error_line(["embed", "--dataset", ds, "--model", tmp_path / "model.bin", "--out",
                        tmp_path / "e"])  # fmt: skip
    assert "a file, not a model directory" in line


# -- the thirty-sixth sweep: its faults ----------------------------------------------------------


def test_sweep_36s_api_faults(tmp_path):
    """A ragged list of rows met numpy's raw ValueError in Connector.add and search (the
    check asked np.iscomplexobj first, outside its guard); Embeddings.row raised a raw
    KeyError or TypeError where take() refused the same mistake in one line."""
    from smec_index.data import Embeddings

    connector = open_connector("faiss", data_dir=tmp_path)
    connector.create("s", IndexSpec(dim=8, index="flat"))
    ragged = [[1.0] * 8, [1.0] * 7]
    with pytest.raises(SmecError, match="rows of unequal length"):
        connector.add("s", ["a", "b"], ragged)
    with pytest.raises(SmecError, match="rows of unequal length"):
        connector.search("s", ragged, 1)
    connector.close()
    embeddings = Embeddings(["a"], np.ones((1, 4), np.float32))
    assert embeddings.row("a") == 0
    for wrong in ("zz", ["a"]):
        with pytest.raises(SmecError, match="among these embeddings"):
            embeddings.row(wrong)


def test_outputs_keep_the_users_folders_beside_and_in_place(tmp_path):
    """A user's '.myart.backup' beside --out myart, an hour old, was deleted as a killed
    writer's staging folder; so was a 'smec-bench-notes' folder in bench's workdir; an empty
    --out folder of the user's was replaced by a new one of mode 0700 (group access lost)."""
    import os
    import stat
    import time

    ds = _dataset(tmp_path)
    backup, notes = tmp_path / ".myart.backup", tmp_path / "work" / "smec-bench-notes"
    for folder in (backup, notes):
        folder.mkdir(parents=True)
        (folder / "mine.txt").write_text("mine")
        os.utime(folder, (time.time() - 7200, time.time() - 7200))
    out = tmp_path / "myart"
    out.mkdir()
    out.chmod(0o2775)
    inode = out.stat().st_ino
    _ok_cli("train", "--dataset", ds, "--method", "pca", "--dims", 8, "--out", out, "--quiet")
    assert (backup / "mine.txt").read_text() == "mine"
    assert out.stat().st_ino == inode and stat.S_IMODE(out.stat().st_mode) == 0o2775
    assert (out / "config.json").is_file()
    (tmp_path / "bench.toml").write_text(f'workdir = "{tmp_path / "work"}"\n')
    _ok_cli("bench", "--config", tmp_path / "bench.toml", "--dataset", "synthetic:300x16",
            "--methods", "none", "--index", "flat", "--latency-queries", 5, "--concurrency", 1,
            "--out", tmp_path / "r.jsonl")  # fmt: skip
    assert (notes / "mine.txt").read_text() == "mine"
    fresh = tmp_path / "fresh"
    _ok_cli("train", "--dataset", ds, "--method", "pca", "--dims", 8, "--out", fresh, "--quiet")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o777 & ~umask


def test_sweep_36s_migrate_faults_are_refused_before_a_write(tmp_path):
    """A cosine source holding values of 1e30 was refused after the fit and the target's
    creation (an empty copy, an artifact and a progress record stayed, with advice to
    resume); index_params={"M": -5} passed a dry run and failed the real run after the fit."""
    from qdrant_client import QdrantClient, models

    from smec_index.migration.runner import MigrateRequest, migrate

    rows = np.random.default_rng(0).standard_normal((300, 16))
    client = QdrantClient(path=str(tmp_path / "q"))
    for name, scale in (("huge", 1e30), ("docs", 1.0)):
        client.create_collection(name, vectors_config=models.VectorParams(
            size=16, distance=models.Distance.COSINE))  # fmt: skip
        client.upsert(name, models.Batch(ids=list(range(300)), vectors=(rows * scale).tolist()))
    client.close()
    line = _error_line(["migrate", "--backend", "qdrant", "--path", tmp_path / "q",
                        "--collection", "huge", "--dim", 8, "--data-dir", tmp_path / "d"])
    assert "holds values beyond +-1e+15" in line and "resume" not in line
    assert not (tmp_path / "d").exists()
    for dry_run in (True, False):
        with pytest.raises(SmecError, match="index parameter M must be a positive integer"):
            migrate(MigrateRequest(backend="qdrant", collection="docs", dim=8,
                                   data_dir=tmp_path / "d2", source={"path": str(tmp_path / "q")},
                                   to_backend="faiss", index_params={"M": -5},
                                   dry_run=dry_run, progress=False), say=lambda *_: None)
    assert not list((tmp_path / "d2").rglob("*.json"))  # no progress record, no artifact
    client = QdrantClient(path=str(tmp_path / "q"))
    assert sorted(c.name for c in client.get_collections().collections) == ["docs", "huge"]
    client.close()


def test_sweep_36s_judgement_calls_made_rules(tmp_path, monkeypatch):
    """SMEC_INDEX_DATA naming a file met "Invalid value for '--data-dir'", a flag the user
    never passed; a failed gate with no --alias said 'the alias was not switched'."""
    from smec_index.migration.runner import MigrateRequest, migrate

    (tmp_path / "afile").write_text("x")
    monkeypatch.setenv("SMEC_INDEX_DATA", str(tmp_path / "afile"))
    line = _error_line(["info", "--backend", "faiss", "--collection", "c"])
    assert "SMEC_INDEX_DATA (for '--data-dir')" in line
    monkeypatch.delenv("SMEC_INDEX_DATA")
    from tests.probes import qdrant_source

    qdrant_source(tmp_path, n=300, dim=16)
    with pytest.raises(SmecError, match="below --min-recall 1.0; the finished copy") as caught:
        migrate(MigrateRequest(backend="qdrant", collection="docs", dim=2, min_recall=1.0,
                               data_dir=tmp_path / "d", source={"path": str(tmp_path / "q")},
                               progress=False), say=lambda *_: None)  # fmt: skip
    assert "alias" not in str(caught.value)


# -- the thirty-seventh sweep: its faults --------------------------------------------------------


def _copied_then_dropped(tmp_path: Path) -> tuple[Path, list, dict]:
    """A user's milvus-lite ``docs`` (200 rows) migrated to ``docs_8``, which the user then
    dropped: the database, the migrate command, and the copy's schema as it was."""
    from pymilvus import MilvusClient

    db = tmp_path / "app.db"
    _user_milvus(db, n=200)
    migrate = ["migrate", "--backend", "milvus", "--uri", db, "--collection", "docs", "--dim",
               8, "--min-recall", 0, "--data-dir", tmp_path / "d", "--quiet"]  # fmt: skip
    _ok_cli(*migrate)
    client = MilvusClient(str(db))
    schema = client.describe_collection("docs_8")
    client.drop_collection("docs_8")
    client.close()
    return db, migrate, schema


def test_a_refused_overwrite_leaves_no_record_that_lets_the_next_run_drop_the_users(tmp_path):
    """The copy dropped and a collection of the user's made under its name: --overwrite was
    refused, but the record it wrote first (no target schema yet) read to the next run as a
    create of its own cut short, and --restart, the same --overwrite or the plain command
    dropped the user's 40 rows for the copy."""
    db, migrate, _ = _copied_then_dropped(tmp_path)
    _user_milvus(db, name="docs_8", n=40, dim=4)  # the user's own, another schema
    for flags in (["--overwrite"], ["--overwrite"], ["--restart"], []):
        assert "migrate never drops what it did not create" in _error_line([*migrate, *flags])
        assert _user_rows(db, "docs_8") == (["pk", "emb", "title"], 40)


@pytest.mark.parametrize("backend", ["faiss", "hnswlib", "qdrant"])
def test_sweep_37s_store_folders_and_files_that_are_not_what_they_seem(tmp_path, backend):
    """A file where DATA/<backend> should be, or an aliases.json that is a folder or a link
    to /dev/zero, met raw NotADirectoryError / IsADirectoryError or a read without end; a
    user's folder holding a file named meta.json (or index_spec.json) was taken for a
    collection: create(overwrite=True) wrote over their file and drop() deleted the folder."""
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / backend).write_text("mine")
    with pytest.raises(SmecError, match="is a file where smec-index keeps a store's"):
        open_connector(backend, data_dir=tmp_path / "a").create("c", IndexSpec(dim=4,
                                                                              index="hnsw"))
    root = tmp_path / "b" / backend
    root.mkdir(parents=True)
    for odd in ("folder", "zero"):
        aliases = root / "aliases.json"
        if odd == "folder":
            aliases.mkdir()
        else:
            aliases.rmdir()
            aliases.symlink_to("/dev/zero")
        with pytest.raises(SmecError, match="aliases.json is not a regular file"):
            open_connector(backend, data_dir=tmp_path / "b").create(
                "c", IndexSpec(dim=4, index="hnsw"))
    marker = "index_spec.json" if backend == "qdrant" else "meta.json"
    mine = tmp_path / "c" / backend / "notes"
    mine.mkdir(parents=True)
    (mine / marker).write_text('{"mine": true}')
    (mine / "todo.txt").write_text("mine")
    connector = open_connector(backend, data_dir=tmp_path / "c")
    assert connector.collections() == []
    for call in (lambda: connector.create("notes", IndexSpec(dim=4, index="hnsw"),
                                          overwrite=True),
                 lambda: connector.drop("notes")):  # fmt: skip
        with pytest.raises(SmecError, match="not made by smec-index|did not write"):
            call()
    assert (mine / marker).read_text() == '{"mine": true}' and (mine / "todo.txt").exists()
    connector.close()


def test_bench_rewrites_the_file_its_out_names_and_no_file_of_the_users(tmp_path):
    """bench --force --out LINK replaced the user's symlink by a file of its own (the file it
    named kept the old run); the rewrite went through RESULTS.jsonl.tmp, emptying and
    removing a user's file of that name; a link to nowhere was refused after a measurement."""
    bench = ["bench", "--dataset", "synthetic:300x16", "--methods", "none", "--index", "flat",
             "--latency-queries", 5, "--concurrency", 1]  # fmt: skip
    real, link, mine = tmp_path / "real.jsonl", tmp_path / "link.jsonl", tmp_path / "real.jsonl.tmp"
    _ok_cli(*bench, "--out", real)
    first = real.read_text()
    link.symlink_to(real)
    mine.write_text("mine")
    _ok_cli(*bench, "--force", "--out", link)
    assert link.is_symlink() and real.read_text() != first  # the run replaced in the file named
    assert mine.read_text() == "mine"
    (tmp_path / "nowhere.jsonl").symlink_to(tmp_path / "gone" / "r.jsonl")
    assert "a symbolic link to" in _error_line([*bench, "--out", tmp_path / "nowhere.jsonl"])


# -- the thirty-eighth sweep: its faults ---------------------------------------------------------


def test_sweep_38s_names_and_numbers_too_long_for_anything(tmp_path):
    """A last path name of 300 characters was refused only after its parent folders were
    made (they stayed), and bench measured a run before --out failed; a qrels score of 5000
    digits met Python's digit limit raw ('internal error', exit 1)."""
    from smec_index.data import read_qrels

    ds = _dataset(tmp_path)
    long = "n" * 300
    for args in (["train", "--dataset", ds, "--method", "pca", "--dims", 8, "--out",
                  tmp_path / "x" / "b" / long],
                 ["build", "--dataset", ds, "--backend", "faiss", "--dim", 16, "--data-dir",
                  tmp_path / "y" / long],
                 ["bench", "--dataset", "synthetic:300x16", "--methods", "none", "--index",
                  "flat", "--out", tmp_path / "z" / f"{long}.jsonl"]):  # fmt: skip
        assert "of more than 255 bytes" in _error_line(args)
    assert not any((tmp_path / name).exists() for name in "xyz")
    (tmp_path / "big.tsv").write_text(f"q0\td0\t{'9' * 5000}\n")
    with pytest.raises(SmecError, match="not a whole number of at most 18 digits"):
        read_qrels(tmp_path / "big.tsv")


def test_a_restart_refits_beside_the_projection_other_copies_use(tmp_path):
    """Two copies of one source at one dim share a fitted PCA; the source edited, --restart
    of one refitted it into the same folder, and the other copy no longer matched the
    projection its app was told to use."""
    from qdrant_client import QdrantClient, models

    from smec_index import Projection
    from smec_index.artifact import artifact_fingerprint

    rng = np.random.default_rng(0)
    client = QdrantClient(path=str(tmp_path / "q"))
    client.create_collection("docs", vectors_config=models.VectorParams(
        size=16, distance=models.Distance.COSINE))  # fmt: skip
    client.upsert("docs", models.Batch(ids=list(range(300)), vectors=rng.standard_normal(
        (300, 16)).tolist()))  # fmt: skip
    client.close()
    common = ["migrate", "--backend", "qdrant", "--path", tmp_path / "q", "--collection", "docs",
              "--dim", 8, "--min-recall", 0, "--data-dir", tmp_path / "d", "--quiet", "--json"]
    first = json.loads(_ok_cli(*common, "--to", "docs_a"))
    other = json.loads(_ok_cli(*common, "--to", "docs_b"))
    assert first["artifact"] == other["artifact"]
    kept = artifact_fingerprint(other["artifact"])
    client = QdrantClient(path=str(tmp_path / "q"))
    client.upsert("docs", models.Batch(ids=list(range(200)), vectors=rng.standard_normal(
        (200, 16)).tolist()))  # fmt: skip
    client.close()
    again = json.loads(_ok_cli(*common, "--to", "docs_a", "--restart"))
    assert again["artifact"] != other["artifact"]  # a new entry beside the shared one
    assert artifact_fingerprint(other["artifact"]) == kept
    assert Projection.load("docs_b", tmp_path / "d").path == Path(other["artifact"])
    same = json.loads(_ok_cli(*common, "--to", "docs_a", "--restart"))  # unchanged: reused
    assert same["artifact"] == again["artifact"]


@pytest.mark.parametrize("flags", [["--restart"], ["--overwrite"]])
def test_a_restart_never_drops_a_users_collection_of_the_copys_schema(tmp_path, flags):
    """The copy dropped and a collection of the user's made under its name, with the copy's
    schema and as many points: only the schema and the count were compared, so --restart
    (which the refused plain run advised) and --overwrite dropped the user's rows."""
    from pymilvus import MilvusClient

    db, migrate, schema = _copied_then_dropped(tmp_path)
    _user_milvus(db, name="docs_8", n=250, dim=8)  # the user's own: the copy's fields, more rows
    client = MilvusClient(str(db))
    assert [f["name"] for f in client.describe_collection("docs_8")["fields"]] == [
        f["name"] for f in schema["fields"]]  # fmt: skip
    client.close()
    for run in (flags, []):  # nor resumed into, with --restart advised
        assert "is not the copy this migration made" in _error_line([*migrate, *run])
        assert _user_rows(db, "docs_8") == (["pk", "emb", "title"], 250)
    client = MilvusClient(str(db))
    client.drop_collection("docs_8")
    client.close()
    _ok_cli(*migrate, *flags)  # the copy gone: made again
    assert _user_rows(db, "docs_8") == (["pk", "emb", "title"], 200)


def test_a_restart_never_drops_a_users_qdrant_collection_of_the_copys_schema(tmp_path):
    """The same with qdrant-client: the user's collection made under the copy's name with
    the copy's vector config and more points."""
    from qdrant_client import QdrantClient, models

    rng = np.random.default_rng(0)
    config = lambda size: models.VectorParams(size=size, distance=models.Distance.COSINE)  # noqa: E731
    client = QdrantClient(path=str(tmp_path / "q"))
    client.create_collection("docs", vectors_config=config(16))
    vectors = rng.standard_normal((300, 16)).tolist()
    client.upsert("docs", models.Batch(ids=list(range(300)), vectors=vectors))
    client.close()
    migrate = ["migrate", "--backend", "qdrant", "--path", tmp_path / "q", "--collection", "docs",
               "--dim", 8, "--min-recall", 0, "--data-dir", tmp_path / "d", "--quiet"]  # fmt: skip
    _ok_cli(*migrate)
    client = QdrantClient(path=str(tmp_path / "q"))
    made = client.get_collection("docs_8").config.params.vectors
    client.delete_collection("docs_8")
    client.create_collection("docs_8", vectors_config=made)
    vectors = rng.standard_normal((300, 8)).tolist()
    client.upsert("docs_8", models.Batch(ids=list(range(300)), vectors=vectors,
                                         payloads=[{"mine": 1}] * 300))  # fmt: skip
    client.close()
    for run in (["--restart"], ["--overwrite"], []):
        assert "is not the copy this migration made" in _error_line([*migrate, *run])
        client = QdrantClient(path=str(tmp_path / "q"))
        assert client.count("docs_8").count == 300
        assert client.retrieve("docs_8", [7])[0].payload == {"mine": 1}
        client.close()


# -- the thirty-ninth sweep: its faults ----------------------------------------------------------


def test_a_users_own_collection_in_qdrant_local_mode_is_left_alone(tmp_path):
    """A collection the user made with qdrant-client in the folder local mode uses: drop was
    refused as someone's own, but add wrote a point into it, iterate gave that point the id
    '', and search raised a raw KeyError('_smec_id'). A point the user's client added to a
    collection smec-index made is one line too."""
    from qdrant_client import QdrantClient, models

    vectors = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32)
    client = QdrantClient(path=str(tmp_path / "qdrant-local"))
    client.create_collection("mine", vectors_config=models.VectorParams(
        size=8, distance=models.Distance.COSINE))  # fmt: skip
    client.upsert("mine", [models.PointStruct(id=1, vector=vectors[0].tolist(), payload={"a": 1})])
    client.close()
    connector = open_connector("qdrant", data_dir=tmp_path, mode="local")
    for call in (lambda: connector.add("mine", ["x"], vectors[1:2]),
                 lambda: connector.search("mine", vectors[:1], 2),
                 lambda: list(connector.iterate("mine")), lambda: connector.drop("mine")):
        with pytest.raises(SmecError, match="not made by smec-index") as refused:
            call()
        assert "\n" not in str(refused.value)
    connector.create("ours", IndexSpec(dim=8, index="flat"))
    connector.add("ours", ["a", "b"], vectors[:2])
    connector.close()
    client = QdrantClient(path=str(tmp_path / "qdrant-local"))
    assert [(p.id, p.payload) for p in client.scroll("mine")[0]] == [(1, {"a": 1})]
    client.upsert("ours", [models.PointStruct(id=7, vector=vectors[2].tolist(), payload={})])
    client.close()
    connector = open_connector("qdrant", data_dir=tmp_path, mode="local")
    for call in (lambda: connector.search("ours", vectors[2:3], 3),
                 lambda: list(connector.iterate("ours"))):
        with pytest.raises(SmecError, match="has no '_smec_id' payload"):
            call()
    connector.close()


def test_projection_load_of_an_empty_name_says_it_is_empty(tmp_path):
    with pytest.raises(SmecError, match="^the artifact or collection is empty; pass"):
        from smec_index import Projection

        Projection.load("", tmp_path)


@pytest.mark.parametrize("folder", ["manifests", "artifacts"])
def test_a_file_where_the_data_dir_keeps_a_folder_is_refused_before_any_work(tmp_path, folder):
    """A user's file named ``manifests`` in the data dir failed a build after the whole corpus
    was indexed (leaving a store behind); one named ``artifacts`` after the default SMEC was
    trained, with 'File exists' for the cause."""
    ds = _dataset(tmp_path)
    data = tmp_path / "d"
    data.mkdir()
    (data / folder).write_text("my notes")
    line = _error_line(["build", "--dataset", ds, "--dim", 8, "--backend", "faiss",
                        "--data-dir", data, "--quiet"])  # fmt: skip
    assert f"{data / folder} is not a folder, where smec-index keeps its {folder}" in line
    assert sorted(p.name for p in data.iterdir()) == [folder]
    assert (data / folder).read_text() == "my notes"


def test_search_on_a_users_own_milvus_collection_names_the_cause(tmp_path):
    """It said the collection had no manifest and advised `smec-index build`, which is then
    refused: the collection is not smec-index's."""
    db = tmp_path / "app.db"
    _user_milvus(db, name="usercol", n=5, dim=8)
    (tmp_path / "d" / "faiss").mkdir(parents=True)
    line = _error_line(["search", "--backend", "milvus", "--uri", db, "--collection", "usercol",
                        "--like", 1, "--data-dir", tmp_path / "d"])  # fmt: skip
    assert "was not built by smec-index" in line and "build it" not in line
    assert _user_rows(db, "usercol") == (["pk", "emb", "title"], 5)


def test_bench_names_a_retrained_artifact_as_what_changed(tmp_path):
    """Only the artifact:DIR changed; the note said the dataset's vectors had."""
    ds = _dataset(tmp_path)
    art = tmp_path / "art"
    _ok_cli("train", "--dataset", ds, "--method", "pca", "--dims", 8, "--out", art, "--quiet")
    bench = ["bench", "--dataset", ds, "--methods", f"artifact:{art}", "--dims", 8,
             "--concurrency", 1, "--latency-queries", 5, "--out", tmp_path / "r.jsonl"]
    _ok_cli(*bench)
    _ok_cli("train", "--dataset", ds, "--method", "truncate", "--dims", 8, "--out", art,
            "--quiet", "--overwrite")  # fmt: skip
    done = CliRunner().invoke(main, [str(a) for a in bench])
    assert done.exit_code == 0, done.output
    assert f"was measured with another {art} (the artifact's files changed since)" in done.output
    assert "its vectors changed" not in done.output


def _qdrant_source(path: Path, n: int = 300, dim: int = 32) -> np.ndarray:
    from qdrant_client import QdrantClient, models

    vectors = np.random.default_rng(0).standard_normal((n, dim))
    client = QdrantClient(path=str(path))
    client.create_collection("docs", vectors_config={"text": models.VectorParams(
        size=dim, distance=models.Distance.COSINE)})  # fmt: skip
    client.upsert("docs", [models.PointStruct(id=i, vector={"text": vectors[i].tolist()},
                                              payload={"i": i}) for i in range(n)])  # fmt: skip
    client.close()
    return vectors


def test_a_users_collection_with_an_alias_under_the_copys_name_is_named_as_theirs(tmp_path):
    """--overwrite and --restart blamed the user's alias on their own docs_8 and advised
    --rollback, which has nothing to roll back; the cause (not this migration's) went unsaid."""
    from qdrant_client import QdrantClient, models

    _qdrant_source(tmp_path / "q")
    client = QdrantClient(path=str(tmp_path / "q"))
    client.create_collection("docs_8", vectors_config={"text": models.VectorParams(
        size=8, distance=models.Distance.COSINE)})  # fmt: skip
    client.upsert("docs_8", [models.PointStruct(id=i, vector={"text": [1.0] * 8})
                             for i in range(5)])  # fmt: skip
    client.update_collection_aliases(change_aliases_operations=[models.CreateAliasOperation(
        create_alias=models.CreateAlias(collection_name="docs_8", alias_name="docs_16"))])
    client.close()
    migrate = ["migrate", "--backend", "qdrant", "--path", tmp_path / "q", "--collection", "docs",
               "--dim", 8, "--min-recall", 0, "--data-dir", tmp_path / "d", "--quiet"]  # fmt: skip
    for flags in ([], ["--overwrite"], ["--restart"]):
        line = _error_line([*migrate, *flags])
        assert "no migration recorded in --data-dir" in line and "--rollback" not in line


def test_a_plain_rerun_after_a_restart_on_an_edited_source_goes_on_with_its_refit(tmp_path):
    """One source vector edited, --restart refitted the PCA to -r2 and finished; the plain
    command was then refused forever ('started with another projection ... pass --restart')."""
    from qdrant_client import QdrantClient, models

    _qdrant_source(tmp_path / "q")
    migrate = ["migrate", "--backend", "qdrant", "--path", tmp_path / "q", "--collection", "docs",
               "--dim", 8, "--min-recall", 0, "--data-dir", tmp_path / "d", "--quiet",
               "--json"]  # fmt: skip
    _ok_cli(*migrate)
    client = QdrantClient(path=str(tmp_path / "q"))
    edited = np.random.default_rng(1).standard_normal(32).tolist()
    client.upsert("docs", [models.PointStruct(id=3, vector={"text": edited}, payload={"i": 3})])
    client.close()
    again = json.loads(_ok_cli(*migrate, "--restart"))
    assert again["artifact"].endswith("-r2")
    assert json.loads(_ok_cli(*migrate))["artifact"] == again["artifact"]


def test_a_users_folder_where_migrate_keeps_its_pca_is_named(tmp_path):
    """A folder of the user's at the artifact path --dry-run printed: the error named --out
    (migrate has none), then 'pass a directory written by smec-index train', then a missing
    weights file."""
    _qdrant_source(tmp_path / "q")
    migrate = ["migrate", "--backend", "qdrant", "--path", tmp_path / "q", "--collection", "docs",
               "--dim", 8, "--min-recall", 0, "--data-dir", tmp_path / "d", "--quiet"]  # fmt: skip
    planned = Path(json.loads(_ok_cli(*migrate, "--dry-run", "--json"))["artifact"])
    planned.mkdir(parents=True)
    (planned / "notes.txt").write_text("my notes")
    for flags in ([], ["--restart"]):
        line = _error_line([*migrate, *flags])
        assert f"{planned} is where migrate keeps the PCA it fits" in line
        assert "--out" not in line and "train" not in line
    (planned / "config.json").write_text('{"mine": 1}')
    for flags in ([], ["--restart"]):
        assert "is where migrate keeps the PCA" in _error_line([*migrate, *flags])
    assert sorted(p.name for p in planned.iterdir()) == ["config.json", "notes.txt"]


def test_an_artifacts_weights_get_the_umasks_mode_as_its_config_does(tmp_path):
    import os

    from smec_index.artifact import save_artifact

    previous = os.umask(0o022)
    try:
        save_artifact(tmp_path / "art", {"method": "pca"}, {"w": np.eye(2, dtype=np.float32)})
    finally:
        os.umask(previous)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "art").iterdir()
             if not p.name.startswith(".")}  # fmt: skip
    assert modes["weights.safetensors"] == modes["config.json"] == 0o644


def test_an_empty_model_is_refused_not_taken_for_the_bundled_one(tmp_path):
    """`embed --model ''` encoded with the bundled model without a word; `bench` said
    'no method runs at dims []' for the dataset's own dim."""
    ds = _dataset(tmp_path)
    for command in (["embed", "--dataset", ds, "--model", "", "--out", tmp_path / "e"],
                    ["search", "--collection", "c", "--model", "", "some text",
                     "--data-dir", tmp_path / "d"]):  # fmt: skip
        assert "--model '' names no model" in _error_line(command)
    assert not (tmp_path / "e").exists()
    line = _error_line(["bench", "--dataset", "synthetic:500x16", "--methods", "pca",
                        "--out", tmp_path / "r.jsonl"])  # fmt: skip
    assert "no method runs at the dataset's own dim (no --dims)" in line


# -- the fortieth sweep: its faults --------------------------------------------------------------


def test_a_search_right_after_an_add_keeps_milvus_lites_kmeans_advice_quiet(tmp_path, capfd):
    """FAISS's 'WARNING clustering 300 points to 128 centroids' reached the user's stdout:
    only an explicit flush caught it, not the flush a search does first."""
    vectors = np.random.default_rng(0).standard_normal((300, 8)).astype(np.float32)
    with open_connector("milvus", data_dir=tmp_path / "d") as connector:
        connector.create("docs", IndexSpec(8, "cosine", "ivf_flat"))
        connector.add("docs", [f"d{i}" for i in range(300)], vectors)
        ids, _ = connector.search("docs", vectors[:1], 3)
    assert ids[0][0] == "d0"
    captured = capfd.readouterr()
    assert "clustering" not in captured.out + captured.err


@pytest.mark.parametrize("mode", ["edge", "local"])
def test_a_qdrant_cursor_another_collection_gave_is_refused(tmp_path, mode):
    """A's cursor passed to b yielded 6 of b's 10 points; made-up ids yielded 0, 8 or all,
    without a word (faiss, hnswlib and milvus refuse both)."""
    vectors = np.random.default_rng(1).standard_normal((10, 2)).astype(np.float32)
    with open_connector("qdrant", data_dir=tmp_path / "d", mode=mode) as connector:
        for name, prefix in (("a", "x"), ("b", "y")):
            connector.create(name, IndexSpec(2, "l2", "hnsw"))
            connector.add(name, [f"{prefix}{i}" for i in range(10)], vectors)
        cursor = next(iter(connector.iterate("a", 3))).cursor
        for other in (cursor, "18446744073709551615", "7"):
            with pytest.raises(SmecError, match="is not one this collection gave"):
                list(connector.iterate("b", 3, cursor=other))
        resumed = next(iter(connector.iterate("b", 3))).cursor  # its own: resumes
        rest = [i for batch in connector.iterate("b", 3, cursor=resumed) for i in batch.ids]
        assert len(rest) == 7


def test_one_vector_where_rows_are_asked_for_is_named_as_one(tmp_path):
    """A 4-d vector on a 4-d collection 'did not fit a 4-d collection; project them to 4
    dims'; transform of one 16-d vector on a 16-d artifact advised 'the artifact trained on
    this embedding model'; build(..., say=None) raised a raw TypeError."""
    from smec_index.build import BuildRequest, build
    from smec_index.compressors.base import load_compressor

    with open_connector("faiss", data_dir=tmp_path / "d") as connector:
        connector.create("c", IndexSpec(4, index="flat"))
        for call in (lambda: connector.add("c", ["a"], np.ones(4, np.float32)),
                     lambda: connector.search("c", np.ones(4, np.float32), 1)):
            with pytest.raises(SmecError, match=r"are one vector, not rows: pass an \(n, 4\)"):
                call()
    ds = _dataset(tmp_path)
    _ok_cli("train", "--dataset", ds, "--method", "pca", "--dims", 8, "--out", tmp_path / "art",
            "--quiet")  # fmt: skip
    with pytest.raises(SmecError, match="are one vector, not rows.*Projection.project"):
        load_compressor(tmp_path / "art").transform(np.ones(16, np.float32), 8)
    summary = build(BuildRequest(dataset=ds, backend="faiss", dim=8, artifact=tmp_path / "art",
                                 data_dir=tmp_path / "d", progress=False), say=None)  # fmt: skip
    assert summary["dim"] == 8
    with pytest.raises(SmecError, match="say must be a function"):
        build(BuildRequest(dataset=ds, backend="faiss", dim=8, artifact=tmp_path / "art",
                           data_dir=tmp_path / "d", progress=False), say="loud")  # fmt: skip


def test_zero_vectors_of_a_cosine_source_are_not_gate_queries(tmp_path):
    """A third of the points zero: their top 10 is any 10 ties, and the gate read 0.664 at
    every dim, advising a larger --dim up to the one the source has (then refused)."""
    from qdrant_client import QdrantClient, models

    rng = np.random.default_rng(0)
    vectors = (rng.standard_normal((600, 6)) @ rng.standard_normal((6, 32))).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors[::3] = 0
    client = QdrantClient(path=str(tmp_path / "q"))
    client.create_collection("docs", vectors_config=models.VectorParams(
        size=32, distance=models.Distance.COSINE))  # fmt: skip
    client.upsert("docs", models.Batch(ids=list(range(600)), vectors=vectors.tolist()))
    client.close()
    done = json.loads(_ok_cli("migrate", "--backend", "qdrant", "--path", tmp_path / "q",
                              "--collection", "docs", "--dim", 8, "--data-dir", tmp_path / "d",
                              "--quiet", "--json"))  # fmt: skip
    assert done["recall@10"] > 0.95  # rank 6: PCA to 8 keeps every ranking


def test_info_of_a_name_gone_here_but_migrated_elsewhere_says_where(tmp_path):
    """Two milvus-lite files migrated with --alias live, a.db's rolled back: info on a.db
    called 'live' a copy migrate made and sent the user to b.db as if it were a.db's."""
    for db in ("a.db", "b.db"):
        _user_milvus(tmp_path / db, n=200)
    common = ["--backend", "milvus", "--collection", "docs", "--dim", 8, "--alias", "live",
              "--min-recall", 0, "--data-dir", tmp_path / "d", "--quiet"]  # fmt: skip
    for db in ("a.db", "b.db"):
        _ok_cli("migrate", "--uri", tmp_path / db, *common)
    _ok_cli("migrate", "--uri", tmp_path / "a.db", *common, "--rollback")
    line = _error_line(["info", "--backend", "milvus", "--uri", tmp_path / "a.db",
                        "--collection", "live", "--data-dir", tmp_path / "d"])  # fmt: skip
    assert f"'live' is an alias a migration switched at {tmp_path / 'b.db'} (not here)" in line


def test_an_in_place_rollback_never_advises_deleting_a_users_vector(tmp_path):
    """No in-place run ever made: --rollback advised deleting 'text_8', the user's own vector
    (or 'dense_8', which did not exist)."""
    from qdrant_client import QdrantClient, models

    rng = np.random.default_rng(0)
    client = QdrantClient(path=str(tmp_path / "q"))
    client.create_collection("docs", vectors_config={
        "text": models.VectorParams(size=16, distance=models.Distance.COSINE),
        "text_8": models.VectorParams(size=8, distance=models.Distance.COSINE)})  # fmt: skip
    client.upsert("docs", [models.PointStruct(id=i, vector={
        "text": rng.standard_normal(16).tolist(), "text_8": rng.standard_normal(8).tolist()})
        for i in range(50)])  # fmt: skip
    client.close()
    line = _error_line(["migrate", "--backend", "qdrant", "--path", tmp_path / "q",
                        "--collection", "docs", "--using", "text", "--dim", 8, "--in-place",
                        "--rollback", "--data-dir", tmp_path / "d"])  # fmt: skip
    assert "none made a vector 'text_8'" in line and "delete vector" not in line


def test_info_of_a_copy_cut_short_says_so_not_someone_elses(tmp_path):
    """A milvus-lite copy in the source's schema, cut short: search said 'not ready, rerun',
    info with the migration's own --data-dir called it someone's own."""
    db, data = tmp_path / "m.db", tmp_path / "d"
    _user_milvus(db, n=200)
    _ok_cli("migrate", "--backend", "milvus", "--uri", db, "--collection", "docs", "--dim", 8,
            "--min-recall", 0, "--data-dir", data, "--quiet")  # fmt: skip
    (record,) = [p for p in (data / "migrations").glob("*/milvus-*.json")]
    record.write_text(json.dumps({**json.loads(record.read_text()), "done": False,
                                  "written": 100}))  # the state a kill leaves  # fmt: skip
    for command in ("info", "search"):
        line = _error_line([command, "--backend", "milvus", "--uri", db, "--collection",
                            "docs_8", "--data-dir", data, *(["--like", 1] * (command == "search"))])
        assert "is not ready: a migration" in line and "was cut short" in line, command


def test_a_damaged_embedded_qdrant_collection_is_named_damaged_not_in_use(tmp_path):
    """edge_config.json damaged, or the shard folder gone: search and info said 'close the
    other user or pick another --data-dir' (no other user; another data dir finds nothing)
    with qdrant-edge's 'Service runtime error: IO Error:' wrapping."""
    import shutil

    ds = _dataset(tmp_path)
    data = tmp_path / "d"
    _ok_cli("build", "--dataset", ds, "--dim", 8, "--backend", "qdrant", "--collection", "c1",
            "--data-dir", data, "--quiet")  # fmt: skip
    (shard,) = (data / "qdrant").glob("c1__b*/shard")
    (shard / "edge_config.json").write_text("{garbage")
    for damage in ("config", "folder"):
        if damage == "folder":
            shutil.rmtree(shard)
        for command in (["search", "--collection", "c1", "--like", "d1"],
                        ["info", "--collection", "c1"]):  # fmt: skip
            line = _error_line([*command, "--backend", "qdrant", "--data-dir", data])
            assert "its files are damaged or missing" in line and "build --overwrite" in line
            assert "other user" not in line and "Service runtime error" not in line


def test_stale_embeddings_name_the_embed_command_that_refreshes_them(tmp_path):
    """`eval --embeddings embX` on edited texts advised `embed --dataset ds`, which writes
    ds/embeddings/all-MiniLM-L6-v2, not embX: the same refusal again."""
    import shutil

    ds = _dataset(tmp_path)
    out = tmp_path / "embX"
    shutil.copytree(ds / "embeddings" / "all-MiniLM-L6-v2", out)
    from smec_index.data import BeirDataset
    from smec_index.embed import BUNDLED_MODEL, texts_digest

    dataset = BeirDataset(ds)
    meta = {"model": BUNDLED_MODEL, "texts_digest": texts_digest(
        dataset, list(dataset.corpus), list(dataset.queries))}  # fmt: skip
    (out / "meta.json").write_text(json.dumps(meta))
    (ds / "queries.jsonl").write_text((ds / "queries.jsonl").read_text().replace('"q"', '"Q"'))
    line = _error_line(["eval", "--dataset", ds, "--embeddings", out, "--method", "truncate",
                        "--dims", 8])  # fmt: skip
    assert f"run `smec-index embed --dataset {ds} --out {out}` again" in line


# -- the forty-first sweep: its faults -----------------------------------------------------------


@pytest.mark.parametrize("backend,options", [("faiss", {}), ("hnswlib", {}),
                                             ("qdrant", {"mode": "edge"}), ("milvus", {})])
def test_an_alias_pointed_at_an_alias_names_the_collection_to_point_at(tmp_path, backend,
                                                                       options):  # fmt: skip
    """It said 'not a collection; create it first', and creating it is refused: an alias."""
    with open_connector(backend, data_dir=tmp_path / "d", **options) as connector:
        connector.create("x2", IndexSpec(4, index="hnsw" if backend != "faiss" else "flat"))
        connector.set_alias("a1", "x2")
        with pytest.raises(SmecError, match="that is an alias .of 'x2'.*point it at 'x2'"):
            connector.set_alias("a2", "a1")


def test_sweep_41s_messages_name_the_limit_and_the_reason(tmp_path):
    """seed=2**64 'must be an integer >= 0'; a JSON line with a key twice 'not valid JSON'
    (from read_jsonl and build), the parser's reason dropped."""
    from smec_index.compressors.registry import make_compressor
    from smec_index.data import read_jsonl

    for settings, says in (({"seed": 2**64}, "from 0 to 4,294,967,295"),
                           ({"max_epochs": 2**63}, "from 1 to 2,147,483,647")):
        with pytest.raises(SmecError, match=says):
            make_compressor("smec", [8], **settings)
    path = tmp_path / "x.jsonl"
    path.write_text('{"_id": "a", "text": "x", "text": "y"}\n')
    with pytest.raises(SmecError, match="1: key 'text' appears twice .* write each key once"):
        list(read_jsonl(path))
    ds = _dataset(tmp_path)
    (ds / "corpus.jsonl").write_text('{"_id": "d0", "title": "t", "title": "u", "text": "x"}\n'
                                     + (ds / "corpus.jsonl").read_text())  # fmt: skip
    assert "key 'title' appears twice" in _error_line(["build", "--dataset", ds, "--dim", 8,
                                                       "--data-dir", tmp_path / "d"])


def test_builds_of_one_name_into_two_milvus_files_keep_each_others_manifests(tmp_path):
    """The second file's build took the first one's manifest (one folder for both) for a
    leftover and deleted it: one.db's collection could no longer be searched, and the
    advised build was refused (it exists); --overwrite there deleted two.db's in turn."""
    ds = _dataset(tmp_path)
    build = ["build", "--dataset", ds, "--dim", 8, "--backend", "milvus", "--collection", "c",
             "--data-dir", tmp_path / "d", "--quiet"]  # fmt: skip
    for db in ("one.db", "two.db", "one.db"):
        _ok_cli(*build, "--uri", tmp_path / db, *(["--overwrite"] * (db == "one.db" and
                                                    (tmp_path / "two.db").exists())))
    for db in ("one.db", "two.db"):
        found = _ok_cli("search", "--backend", "milvus", "--uri", tmp_path / db, "--collection",
                        "c", "--like", "d1", "-k", 1, "--data-dir", tmp_path / "d")  # fmt: skip
        assert "d1" in found, db


def test_a_refused_build_leaves_the_folders_of_a_build_that_runs_beside_it(tmp_path):
    """Its cleanup removed every empty folder under the data dir it had found missing, the
    other build's empty write-ahead-log folder too (or its whole new milvus-lite file):
    that build then failed on a missing wal file."""
    from smec_index.build import remove_empty_folders

    live = tmp_path / "d" / "milvus" / "milvus.db"
    (live / "collections" / "c__b1" / "wal").mkdir(parents=True)
    (live / "LOCK").write_text("")
    remove_empty_folders(tmp_path / "d")
    assert (live / "collections" / "c__b1" / "wal").is_dir()
    (tmp_path / "e" / "a" / "b").mkdir(parents=True)
    remove_empty_folders(tmp_path / "e")  # only this run's empty folders: all of them go
    assert not (tmp_path / "e").exists()


def test_a_copy_migrated_with_another_data_dir_is_named_as_possibly_that(tmp_path):
    """From another folder (another default --data-dir) the copy read as one 'this migration
    did not create', with 'drop it yourself' advised while the app's alias read it."""
    _qdrant_source(tmp_path / "q")
    common = ["migrate", "--backend", "qdrant", "--path", tmp_path / "q", "--collection", "docs",
              "--dim", 8, "--min-recall", 0, "--alias", "live", "--quiet"]  # fmt: skip
    _ok_cli(*common, "--data-dir", tmp_path / "x")
    line = _error_line([*common, "--data-dir", tmp_path / "y"])
    assert "an earlier migrate with another --data-dir? pass that one" in line
    assert "alias 'live' reads it" in line and "drop it yourself" not in line


# -- the forty-second sweep: its faults ----------------------------------------------------------


def test_sweep_42s_messages_name_the_real_cause(tmp_path):
    """aliases.json damaged to {"c1": 5}: info and search refused a collection name '5' the
    user never typed (and a later build rewrote it "5"); `train --extend PCA --method pca`
    advised dropping --method, and then refused the PCA artifact itself."""
    ds = _dataset(tmp_path)
    data = tmp_path / "d"
    _ok_cli("build", "--dataset", ds, "--dim", 8, "--collection", "c1", "--data-dir", data,
            "--quiet")  # fmt: skip
    (data / "qdrant" / "aliases.json").write_text(json.dumps({"c1": 5}))  # the default backend
    for command in (["info", "--collection", "c1"], ["search", "--collection", "c1", "--like",
                                                     "d1"]):  # fmt: skip
        line = _error_line([*command, "--data-dir", data])
        assert "aliases.json is corrupt: alias 'c1' names 5, not a collection's name" in line
    _ok_cli("train", "--dataset", ds, "--method", "pca", "--dims", 8, "--out", tmp_path / "art",
            "--quiet")  # fmt: skip
    line = _error_line(["train", "--dataset", ds, "--extend", tmp_path / "art", "--method",
                        "pca", "--dims", 4, "--out", tmp_path / "new", "--quiet"])  # fmt: skip
    assert "only smec/mrl artifacts can be extended, not pca" in line


def test_another_sources_copy_under_the_default_name_is_named_as_that(tmp_path):
    """my-docs and my_docs both default to my_docs_8: the second was told no migration in
    its --data-dir made the copy (one did), and to try another --data-dir or drop it."""
    from qdrant_client import QdrantClient, models

    rng = np.random.default_rng(0)
    client = QdrantClient(path=str(tmp_path / "q"))
    for name in ("my-docs", "my_docs"):
        client.create_collection(name, vectors_config=models.VectorParams(
            size=16, distance=models.Distance.COSINE))  # fmt: skip
        vectors = rng.standard_normal((100, 16)).tolist()
        client.upsert(name, models.Batch(ids=list(range(100)), vectors=vectors))
    client.close()
    common = ["migrate", "--backend", "qdrant", "--path", tmp_path / "q", "--dim", 8,
              "--min-recall", 0, "--data-dir", tmp_path / "d", "--quiet"]  # fmt: skip
    _ok_cli(*common, "--collection", "my-docs")
    line = _error_line([*common, "--collection", "my_docs"])
    assert "is the copy a migration of qdrant:" in line and "my-docs made" in line
    assert "pick another --to" in line and "drop it" not in line


@pytest.mark.parametrize("backend", ["faiss", "hnswlib"])
def test_a_drop_under_another_connectors_unflushed_writes_is_refused(tmp_path, backend):
    """Connector B dropped and made again a collection A had unflushed writes to; A's close
    then wrote the dropped one back over B's, and B's points were lost without a word."""
    vectors = np.random.default_rng(0).standard_normal((10, 8)).astype(np.float32)
    index = "flat" if backend == "faiss" else "hnsw"
    a = open_connector(backend, data_dir=tmp_path / "d")
    a.create("c1", IndexSpec(8, index=index))
    a.add("c1", [f"a{i}" for i in range(5)], vectors[:5])
    a.flush("c1")
    a.add("c1", ["a9"], vectors[9:])  # unflushed: A holds the writer lock
    with open_connector(backend, data_dir=tmp_path / "d") as b:
        for call in (lambda: b.drop("c1"),
                     lambda: b.create("c1", IndexSpec(4, index=index), overwrite=True)):
            with pytest.raises(SmecError, match="another connector or process is writing"):
                call()
    a.close()
    with open_connector(backend, data_dir=tmp_path / "d") as b:
        assert b.count("c1") == 6
        b.drop("c1")  # no writer now: dropped
        assert not b.exists("c1")


def test_milvus_lite_answers_after_an_add_to_a_collection_loaded_before(tmp_path):
    """add, flush, add, then count, search or flush waited 600 s for an index file
    milvus-lite never writes for a collection released by a write, then blamed load."""
    vectors = np.random.default_rng(0).standard_normal((1030, 8)).astype(np.float32)
    with open_connector("milvus", uri=str(tmp_path / "m.db")) as connector:
        connector.create("c1", IndexSpec(8, "cosine", "hnsw"))
        connector.add("c1", [f"d{i}" for i in range(30)], vectors[:30])
        connector.flush("c1")
        connector.add("c1", [f"n{i}" for i in range(1000)], vectors[30:])
        assert connector.count("c1") == 1030
        assert connector.search("c1", vectors[:1], 1)[0][0] == ["d0"]
        connector.add("c1", ["x"], vectors[5:6])
        connector.flush("c1")
        assert connector.count("c1") == 1031


def test_tiny_vectors_on_qdrant_edge_score_as_their_direction(tmp_path):
    """Norms below ~2e-4 scored 0.0 against a query pointing their way (qdrant-edge's own
    float32 normalisation), 1.0 on every other backend."""
    scales = [1e-2, 1e-4, 1e-6]
    points = np.array([[s] * 4 for s in scales], np.float32)
    with open_connector("qdrant", data_dir=tmp_path / "d") as connector:
        connector.create("c1", IndexSpec(4, "cosine", "flat"))
        connector.add("c1", ["a", "b", "c"], points)
        _, scores = connector.search("c1", np.ones((1, 4), np.float32), 3)
    assert np.allclose(scores[0], 1.0, atol=1e-5)


# -- the forty-third sweep: its faults -----------------------------------------------------------


def test_a_compressed_index_opened_with_another_dim_names_the_dim(tmp_path):
    """A CompressedIndex opened with dim=8 on a 16-d collection: add blamed the user's
    vectors for a (1, 8) shape they never passed and advised projecting them to 16 dims,
    which the same call refused; search blamed the queries."""
    from smec_index.compressors import make_compressor
    from smec_index.data import Embeddings, RetrievalData

    rows = np.random.default_rng(0).standard_normal((100, 32)).astype(np.float32)
    ids = [f"c{i}" for i in range(100)]
    pca = make_compressor("pca", [16, 8]).fit(
        RetrievalData(Embeddings(ids, rows), Embeddings(["q"], rows[:1])))
    with open_connector("faiss", data_dir=tmp_path / "d") as connector:
        connector.create("docs", IndexSpec(dim=16, index="flat"))
        index = CompressedIndex(connector, "docs", pca, dim=8)
        for call in (lambda: index.add(["a"], rows[:1]), lambda: index.search(rows[:1], 2)):
            with pytest.raises(SmecError) as raised:
                call()
            assert str(raised.value) == ("'docs' holds 16-d vectors, but this CompressedIndex "
                                         "was opened with dim=8; open it with dim=16")
        right = CompressedIndex(connector, "docs", pca, dim=16)
        right.add(ids, rows)
        assert right.search(rows[:1], 1)[0] == [["c0"]]


def test_the_librarys_notes_stay_silent_unless_the_application_shows_them(tmp_path):
    """A fit that kept PCA printed 'smec at N dims scored ...: keeping PCA' on stderr of a
    Python caller who asked for no progress (Python's last-resort handler): the library's
    logger has a NullHandler, and the CLI's logging still shows it."""

    code = ("import logging, smec_index\n"
            "logging.getLogger('smec_index.x').warning('a note')\n")  # fmt: skip
    quiet = _python(code)
    assert quiet.returncode == 0 and quiet.stderr == ""
    shown = _python("import logging; logging.basicConfig()\n" + code)
    assert "a note" in shown.stderr
    import smec_index

    assert smec_index.CompressedIndex is CompressedIndex


def _users_alias(tmp_path: Path, backend: str, collection: str, alias: str) -> None:
    """An alias the user makes with their own client on ``collection``."""
    if backend == "qdrant":
        from qdrant_client import QdrantClient, models

        client = QdrantClient(path=str(tmp_path / "q"))
        client.update_collection_aliases(change_aliases_operations=[models.CreateAliasOperation(
            create_alias=models.CreateAlias(collection_name=collection, alias_name=alias))])
    else:
        from pymilvus import MilvusClient

        client = MilvusClient(str(tmp_path / "m.db"))
        client.create_alias(collection, alias)
    client.close()


@pytest.mark.parametrize("backend", ["qdrant", "milvus"])
def test_info_reads_a_copy_through_an_alias_the_user_made_on_it(tmp_path, backend):
    """An alias of the user's on a copy migrate made: `info --collection ALIAS` said "no
    collection that migrate wrote" (qdrant) or "not built by smec-index" (milvus), though
    --collection takes aliases and the copy's own name worked."""
    if backend == "qdrant":
        _qdrant_source(tmp_path / "q")
        place = ["--path", tmp_path / "q"]
    else:
        _user_milvus(tmp_path / "m.db", n=300, dim=32)
        place = ["--uri", tmp_path / "m.db"]
    common = ["--backend", backend, *place, "--data-dir", tmp_path / "d"]
    _ok_cli("migrate", *common, "--collection", "docs", "--dim", 8, "--min-recall", 0, "--quiet")
    _users_alias(tmp_path, backend, "docs_8", "myapp")
    own = json.loads(_ok_cli("info", *common, "--collection", "docs_8", "--json"))
    through = json.loads(_ok_cli("info", *common, "--collection", "myapp", "--json"))
    assert through["alias_target"] == "docs_8" and through["collection"] == "myapp"
    assert {k: v for k, v in through.items() if k not in ("collection", "alias_target")} == \
        {k: v for k, v in own.items() if k not in ("collection", "alias_target")}
    assert "no collection 'nothere'" in _error_line(
        ["info", *common, "--collection", "nothere"])


def test_info_reads_a_vector_filled_in_place_through_the_users_alias(tmp_path):
    """The same for a collection `migrate --in-place` filled: its alias of the user's read
    as no collection migrate wrote."""
    from tests.probes import qdrant_source

    qdrant_source(tmp_path, n=300, dim=48)
    common = ["--backend", "qdrant", "--path", tmp_path / "q", "--data-dir", tmp_path / "d"]
    _ok_cli("migrate", *common, "--collection", "docs", "--dim", 16, "--in-place", "--to",
            "small", "--min-recall", 0, "--quiet", "--allow-schema-change")
    _users_alias(tmp_path, "qdrant", "docs", "live")
    info = json.loads(_ok_cli("info", *common, "--collection", "live", "--json"))
    assert info["in_place"] and info["vector"] == "small" and info["dim"] == 16
    assert info["alias_target"] == "docs" and info["count"] == 300


def test_rolling_back_an_alias_no_run_switched_says_so(tmp_path):
    """`--rollback --alias neverused` said 'neverused' "was switched by an earlier run whose
    record that switch replaced": no run ever switched it."""
    _qdrant_source(tmp_path / "q")
    migrate = ["migrate", "--backend", "qdrant", "--path", tmp_path / "q", "--collection", "docs",
               "--dim", 8, "--min-recall", 0, "--data-dir", tmp_path / "d", "--quiet"]
    _ok_cli(*migrate, "--alias", "live")
    _ok_cli(*migrate, "--alias", "live2")
    never = _error_line([*migrate, "--alias", "neverused", "--rollback"])
    assert "no migration into 'docs_8' switched that alias" in never and "earlier run" not in never
    assert "--rollback --alias live2 undoes" in never
    earlier = _error_line([*migrate, "--alias", "live", "--rollback"])
    assert "'live' was switched by an earlier run" in earlier


@pytest.mark.parametrize("backend", ["faiss", "hnswlib"])
def test_a_damaged_meta_json_is_replaced_by_the_build_overwrite_info_advises(tmp_path, backend):
    """A garbled meta.json: info advised `build --overwrite`, which refused the collection
    as one that lost its smec-index spec (the writer lock beside it read as a user's file)."""
    ds = _dataset(tmp_path)
    build = ["build", "--dataset", ds, "--dim", 16, "--backend", backend, "--collection", "c1",
             "--data-dir", tmp_path / "d", "--quiet"]  # fmt: skip
    _ok_cli(*build)
    info = ["info", "--backend", backend, "--collection", "c1", "--data-dir", tmp_path / "d"]
    count = json.loads(_ok_cli(*info, "--json"))["count"]
    (meta,) = (tmp_path / "d" / backend).glob("c1__*/meta.json")
    meta.write_text("garbage\n")
    assert "build --overwrite` replaces it" in _error_line(info)
    _ok_cli(*build, "--overwrite")
    assert json.loads(_ok_cli(*info, "--json"))["count"] == count
    assert not meta.parent.exists()


def test_an_output_named_dot_is_written_there(tmp_path, monkeypatch):
    """`train --out .` in an empty folder was refused for holding '..smec-staging-...', the
    staging folder smec-index had just made inside it (its name was '')."""
    ds = _dataset(tmp_path)
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    _ok_cli("train", "--dataset", ds, "--method", "pca", "--dims", 8, "--out", ".")
    assert sorted(p.name for p in (tmp_path / "here").iterdir()) == \
        [".smec-index-output", "config.json", "weights.safetensors"]
    assert not list(tmp_path.glob("*smec-staging*"))
    assert "already exists; pass --overwrite" in _error_line(
        ["train", "--dataset", ds, "--method", "pca", "--dims", 8, "--out", "."])
    # Replacing it would rename the folder the shell stands in away and delete it.
    assert "is the current folder (or holds it)" in _error_line(
        ["train", "--dataset", ds, "--method", "pca", "--dims", 8, "--out", ".", "--overwrite"])
    assert (tmp_path / "here" / "config.json").is_file()


def test_an_empty_path_flag_is_refused_not_read_as_the_current_folder(tmp_path, monkeypatch):
    """`--out ''` was read as '.' (and refused for a staging folder of smec-index's own);
    `--data-dir ''` wrote into the current folder."""
    ds = _dataset(tmp_path)
    monkeypatch.chdir(tmp_path)
    for args in (["train", "--dataset", ds, "--method", "pca", "--dims", 8, "--out", ""],
                 ["info", "--backend", "faiss", "--collection", "c", "--data-dir", ""],
                 ["bench", "--dataset", ds, "--out", ""]):  # fmt: skip
        assert "'' is an empty path; pass one ('.' for the current folder)" in _error_line(args)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_a_link_loop_or_fifo_as_data_dir_is_named_by_its_flag_and_as_a_loop(tmp_path, monkeypatch):
    """A --data-dir whose links loop was "a symbolic link to loop2, which does not exist"
    (loop2 was there); a FIFO from SMEC_INDEX_DATA was named as the API's data_dir; a bench
    workdir that is a file was named 'notes.txt/x'."""
    import os

    (tmp_path / "l1").symlink_to(tmp_path / "l2")
    (tmp_path / "l2").symlink_to(tmp_path / "l1")
    os.mkfifo(tmp_path / "fifo")
    info = ["info", "--backend", "faiss", "--collection", "c"]
    line = _error_line([*info, "--data-dir", tmp_path / "l1"])
    assert line.startswith(f"error: --data-dir {tmp_path / 'l1'}: a symbolic link to ")
    assert "lead back round in a loop" in line and "does not exist" not in line
    monkeypatch.setenv("SMEC_INDEX_DATA", str(tmp_path / "fifo"))
    line = _error_line(info)
    assert line.startswith("error: SMEC_INDEX_DATA ") and "FIFO" in line and "data_dir" not in line
    monkeypatch.delenv("SMEC_INDEX_DATA")
    (tmp_path / "notes.txt").write_text("mine")
    config = tmp_path / "s.toml"
    config.write_text(f'datasets = ["synthetic:500x16"]\nmethods = ["none"]\nout = '
                      f'"{tmp_path / "r.jsonl"}"\nworkdir = "{tmp_path / "notes.txt"}"\n')
    line = _error_line(["bench", "--config", config])
    assert f"workdir {tmp_path / 'notes.txt'} is a file" in line and "/x" not in line
    assert (tmp_path / "notes.txt").read_text() == "mine" and not (tmp_path / "r.jsonl").exists()


def test_a_users_file_where_smec_index_makes_its_locks_folder_is_named(tmp_path):
    """A file of the user's at DATA_DIR/locks/migrate: "w/locks/migrate: File exists; pick
    another path", the OS's words, with nothing said of what the folder is for."""
    _qdrant_source(tmp_path / "q")
    (tmp_path / "d" / "locks").mkdir(parents=True)
    (tmp_path / "d" / "locks" / "migrate").write_text("mine")
    line = _error_line(["migrate", "--backend", "qdrant", "--path", tmp_path / "q", "--collection",
                        "docs", "--dim", 8, "--min-recall", 0, "--data-dir", tmp_path / "d",
                        "--quiet"])  # fmt: skip
    assert line == (f"error: {tmp_path / 'd' / 'locks' / 'migrate'} is a file where smec-index "
                    "makes the folder 'migrate' for its own files; move it away, or pass "
                    "another path")
    assert (tmp_path / "d" / "locks" / "migrate").read_text() == "mine"


def test_a_qdrant_folder_another_client_holds_is_said_in_smec_indexs_words(tmp_path):
    """A --path folder (or local-mode store) another QdrantClient holds: the one line carried
    qdrant-client's own "If you require concurrent access, use Qdrant server instead."."""
    from qdrant_client import QdrantClient

    _qdrant_source(tmp_path / "q")
    holder = QdrantClient(path=str(tmp_path / "q"))
    try:
        line = _error_line(["migrate", "--backend", "qdrant", "--path", tmp_path / "q",
                            "--collection", "docs", "--dim", 8, "--min-recall", 0,
                            "--data-dir", tmp_path / "d", "--quiet"])  # fmt: skip
    finally:
        holder.close()
    assert "another QdrantClient (an app, or another smec-index run) has this folder open" in line
    assert "Qdrant server instead" not in line
    with open_connector("qdrant", mode="local", data_dir=tmp_path / "d2") as connector:
        connector.create("c1", IndexSpec(4, "cosine", "flat"))
        with pytest.raises(SmecError) as raised:
            open_connector("qdrant", mode="local", data_dir=tmp_path / "d2").collections()
    assert "another connector or process has it open" in str(raised.value)
    assert "Qdrant server instead" not in str(raised.value)


def test_a_nan_payload_is_named_as_one(tmp_path):
    """A NaN or inf in a payload: json's "(Out of range float values are not JSON
    compliant)" inside a line that listed text and integers only, though floats are kept."""
    from smec_index.connectors.contract import check_payloads

    for bad in (float("nan"), float("inf"), [1.0, float("-inf")]):
        with pytest.raises(SmecError) as raised:
            check_payloads([{"ok": 1.5}, {"x": bad}], 2)
        assert str(raised.value) == ("a payload holds a NaN or inf float, which JSON cannot "
                                     "hold and no engine stores; replace it (with null, say)")
    assert check_payloads([{"f": 1.5, "b": True, "n": None}], 1) == [
        {"f": 1.5, "b": True, "n": None}]


# -- the forty-fourth sweep: its faults ----------------------------------------------------------


def test_a_manifest_copied_over_another_collections_is_refused(tmp_path):
    """Collection a's manifest copied over b's: info showed a's artifact for b, and search b
    projected its queries with it and answered wrong hits, exit 0."""
    ds, data = _dataset(tmp_path), tmp_path / "d"
    for name, method in (("a", "pca"), ("b", "truncate")):
        _ok_cli("train", "--dataset", ds, "--method", method, "--dims", 8, "--out",
                tmp_path / name)  # fmt: skip
        _ok_cli("build", "--dataset", ds, "--artifact", tmp_path / name, "--dim", 8,
                "--backend", "faiss", "--collection", name, "--data-dir", data, "--quiet")
    (mine,) = (data / "manifests" / "faiss").glob("a__b*.json")
    (theirs,) = (data / "manifests" / "faiss").glob("b__b*.json")
    theirs.write_bytes(mine.read_bytes())
    where = ["--backend", "faiss", "--collection", "b", "--data-dir", data]
    for args in (["info", *where], ["search", *where, "--like", "d1"]):
        line = _error_line(args)
        assert f"{theirs} describes collection '{mine.stem}', not '{theirs.stem}'" in line
        assert "build 'b' again with --overwrite" in line
    _ok_cli("build", "--dataset", ds, "--artifact", tmp_path / "b", "--dim", 8, "--backend",
            "faiss", "--collection", "b", "--data-dir", data, "--quiet", "--overwrite")
    assert json.loads(_ok_cli("info", *where, "--json"))["artifact"] == str(tmp_path / "b")


@pytest.mark.parametrize("entries, says", [
    ({"c3": "../../../tmp"}, "alias 'c3' names '../../../tmp', not a collection's name"),
    ({"c3": "c3__b0123456789", "c3__b0123456789": "c1"},
     "alias 'c3' names 'c3__b0123456789', which is itself an alias here"),
])  # fmt: skip
def test_an_aliases_file_edited_into_a_path_or_a_chain_is_named_corrupt(tmp_path, entries, says):
    """aliases.json naming '../../../tmp' blamed a collection name the user never typed; an
    alias of an alias showed one collection's target and another's index and points."""
    ds, data = _dataset(tmp_path), tmp_path / "d"
    _ok_cli("build", "--dataset", ds, "--dim", 16, "--backend", "faiss", "--collection", "c1",
            "--data-dir", data, "--quiet")  # fmt: skip
    aliases = data / "faiss" / "aliases.json"
    aliases.write_text(json.dumps({**json.loads(aliases.read_text()), **entries}))
    for args in (["info"], ["search", "--like", "d1"]):
        line = _error_line([*args, "--backend", "faiss", "--collection", "c3", "--data-dir",
                            data])  # fmt: skip
        assert line.startswith(f"error: {aliases} is corrupt: ") and says in line, line


def test_a_training_flags_stated_range_is_the_one_the_flag_takes():
    """--memory-size 1: "from 2 to 9,223,372,036,854,775,807"; 3000000000 then: "at most
    2,147,483,647"."""
    from smec_index.training.config import TrainConfig

    with pytest.raises(SmecError, match="from 2 to 2,147,483,647"):
        TrainConfig(memory_size=1)
    with pytest.raises(SmecError, match="from 2 to 2,147,483,647"):
        TrainConfig(memory_size=3_000_000_000)
    assert TrainConfig(memory_size=2**31 - 1).memory_size == 2**31 - 1


def test_a_store_file_gone_is_named_without_the_os_errors_own_text(tmp_path):
    """A collection whose payloads file is gone (its meta.json copied from another's): the
    line carried "FileNotFoundError: [Errno 2] No such file or directory: '/…'"."""
    with open_connector("hnswlib", data_dir=tmp_path / "d") as connector:
        connector.create("c1", IndexSpec(4, "cosine", "hnsw"))
        connector.add("c1", ["a", "b"], np.eye(2, 4, dtype=np.float32))
    (payloads,) = (tmp_path / "d" / "hnswlib" / "c1").glob("payloads-*")
    payloads.unlink()
    with pytest.raises(SmecError) as raised:
        with open_connector("hnswlib", data_dir=tmp_path / "d") as connector:
            connector.count("c1")
    assert f"is unreadable ({payloads.name}: no such file or directory); drop it" in \
        str(raised.value)
    assert "Errno" not in str(raised.value) and "FileNotFoundError" not in str(raised.value)


@pytest.mark.parametrize("to", [["--to-backend", "qdrant"],
                                ["--to-backend", "qdrant", "--to-mode", "local"],
                                ["--to-backend", "milvus"]])
def test_a_qdrant_edge_source_with_uuid_ids_migrates(tmp_path, to):
    """A qdrant-edge shard whose point ids are UUIDs: "internal error: TypeError: Object of
    type UUID is not JSON serializable" when the progress record kept its first ids, every
    rerun too, and a copy being created left behind."""
    import uuid

    import qdrant_edge as edge

    rows = np.random.default_rng(0).standard_normal((300, 16)).astype(np.float32)
    (tmp_path / "src").mkdir()
    shard = edge.EdgeShard.create(str(tmp_path / "src" / "docs"), edge.EdgeConfig(vectors={
        "d": edge.EdgeVectorParams(size=16, distance=edge.Distance.Cosine)}))
    shard.update(edge.UpdateOperation.upsert_points([
        edge.Point(str(uuid.UUID(int=i + 7)), {"d": rows[i].tolist()}, {"i": i})
        for i in range(300)]))
    shard.close()
    if to[1] == "milvus":
        to = [*to, "--to-uri", tmp_path / "copy.db"]
    done = json.loads(_ok_cli(
        "migrate", "--backend", "qdrant", "--path", tmp_path / "src", "--collection", "docs",
        "--dim", 4, "--min-recall", 0, "--quiet", *to, "--allow-schema-change", "--data-dir",
        tmp_path / "d", "--json"))  # fmt: skip
    assert done["verified"] and done["count"] == 300
    (record,) = [p for p in (tmp_path / "d" / "migrations").rglob("*.json")
                 if p.name != "source.json"]  # fmt: skip
    assert json.loads(record.read_text())["sample"]["ids"][0] == str(uuid.UUID(int=7))


def test_an_in_place_rerun_compares_every_point_an_earlier_run_filled(tmp_path):
    """--in-place refused by the gate, a source vector past the sampled ones changed, then
    a rerun with a lower --min-recall: verified True with that point's vector stale (a copy
    is compared point by point on such a rerun)."""
    from qdrant_client import QdrantClient, models

    rows = np.random.default_rng(0).standard_normal((600, 32))
    client = QdrantClient(path=str(tmp_path / "q"))
    client.create_collection("docs", vectors_config={"dense": models.VectorParams(
        size=32, distance=models.Distance.COSINE)})  # fmt: skip
    client.upsert("docs", [models.PointStruct(id=i, vector={"dense": rows[i].tolist()})
                           for i in range(600)])  # fmt: skip
    client.close()
    migrate = ["migrate", "--backend", "qdrant", "--path", tmp_path / "q", "--collection", "docs",
               "--dim", 4, "--in-place", "--using", "dense", "--to", "small", "--quiet",
               "--data-dir", tmp_path / "d", "--allow-schema-change"]  # fmt: skip
    assert "quality gate" in _error_line([*migrate, "--min-recall", 0.99])
    client = QdrantClient(path=str(tmp_path / "q"))
    client.update_vectors("docs", points=[models.PointVectors(id=590, vector={
        "dense": (-np.ones(32)).tolist()})])  # fmt: skip
    client.close()
    line = _error_line([*migrate, "--min-recall", 0])
    assert "'small' vectors differ from the projection of the source's" in line
    assert "pass --restart to fill it again" in line
    assert json.loads(_ok_cli(*migrate, "--min-recall", 0, "--restart", "--json"))["verified"]


@pytest.mark.parametrize("command", ["migrate", "build"])
def test_an_artifact_flag_naming_no_artifact_says_so_first(tmp_path, monkeypatch, command):
    """`--artifact .` with the default data dir: "--data-dir smec-data is the artifact .
    (inside it); pick a folder of its own, e.g. smec-data", and that advice followed said
    the same."""
    monkeypatch.delenv("SMEC_INDEX_DATA", raising=False)
    if command == "migrate":
        _qdrant_source(tmp_path / "q")
        args = ["migrate", "--backend", "qdrant", "--path", tmp_path / "q", "--collection",
                "docs", "--dim", 4, "--min-recall", 0, "--quiet"]  # fmt: skip
    else:
        args = ["build", "--dataset", _dataset(tmp_path), "--dim", 8, "--backend", "faiss",
                "--quiet"]  # fmt: skip
    monkeypatch.chdir(tmp_path)
    for more in ([], ["--data-dir", "smec-data"]):
        line = _error_line([*args, "--artifact", ".", *more])
        assert line == ("error: .: not an artifact (needs config.json and weights.safetensors); "
                        "pass a directory written by `smec-index train`")
    assert not (tmp_path / "smec-data").exists()


def test_a_second_milvus_lite_connector_of_a_process_closes(tmp_path):
    """Open, write and close one connector, then a second on the same data dir: its add
    and close waited 600 s for index files milvus-lite writes only for loaded collections
    (restarted, it had not loaded this one)."""

    code = ("import sys, numpy as np\n"
            "from smec_index.connectors import open_connector, IndexSpec\n"
            "V = np.eye(2, 8, dtype=np.float32)\n"
            "with open_connector('milvus', data_dir=sys.argv[1]) as c:\n"
            "    c.create('x', IndexSpec(8, 'cosine', 'flat')); c.add('x', ['a'], V[:1])\n"
            "with open_connector('milvus', data_dir=sys.argv[1]) as c:\n"
            "    c.add('x', ['b'], V[1:])\n"
            "with open_connector('milvus', data_dir=sys.argv[1]) as c:\n"
            "    print(c.count('x'), c.search('x', V[1:], 1)[0][0][0])\n")  # fmt: skip
    done = _python(code, tmp_path / "d")
    assert done.returncode == 0 and done.stdout.split() == ["2", "b"], done.stderr


@pytest.mark.parametrize("backend, options", [
    ("faiss", {}), ("hnswlib", {}), ("qdrant", {}), ("qdrant", {"mode": "local"}), ("milvus", {})])
def test_cosine_vectors_and_queries_of_tiny_norm_score_as_their_direction(tmp_path, backend,
                                                                          options):
    """Queries (or vectors) of norm ~1e-30 on a cosine collection: hnswlib scored 2.4-3.8,
    qdrant-edge 2e-30, milvus-lite answered p0 for every query at 0.0; each engine's own
    float32 normalisation. The contract normalises both, in float64 where tiny."""
    rows = np.random.default_rng(9).standard_normal((50, 8)).astype(np.float32)
    ids = [f"p{i}" for i in range(50)]
    kind = "hnsw" if backend == "hnswlib" else "flat"
    with open_connector(backend, data_dir=tmp_path / "d", **options) as connector:
        connector.create("normal", IndexSpec(8, "cosine", kind))
        connector.add("normal", ids, rows)
        connector.create("tiny", IndexSpec(8, "cosine", kind))
        connector.add("tiny", ids, rows * 1e-30)
        for name, queries in (("normal", rows[:3] * 1e-30), ("tiny", rows[:3])):
            found, scores = connector.search(name, queries, 1)
            assert [f[0] for f in found] == ["p0", "p1", "p2"]
            assert np.allclose(scores[:, 0], 1.0, atol=1e-5)


def test_an_unclosed_qdrant_local_connector_leaves_no_traceback_at_exit(tmp_path):
    """A local-mode connector an app object kept in a reference cycle and never closed:
    qdrant-client's __del__ at interpreter shutdown printed "Exception ignored ...
    ImportError: sys.meta_path is None" and its traceback."""

    code = ("import sys, numpy as np\n"
            "from smec_index.connectors import open_connector, IndexSpec\n"
            "class App:\n"
            "    def __init__(self, where):\n"
            "        self.me = self\n"
            "        self.db = open_connector('qdrant', data_dir=where, mode='local')\n"
            "app = App(sys.argv[1])\n"
            "app.db.create('docs', IndexSpec(4, 'cosine', 'flat'))\n"
            "app.db.add('docs', ['a', 'b'], np.eye(2, 4, dtype=np.float32))\n"
            "print(app.db.count('docs'))\n")  # fmt: skip
    done = _python(code, tmp_path / "d")
    assert done.returncode == 0 and done.stdout.strip() == "2"
    assert "Exception ignored" not in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_another_process_neither_drops_nor_damages_a_qdrant_edge_collection_held_open(tmp_path):
    """Process B's count of a collection process A held was refused, but its failed open
    had cut A's payload tracker journal short (A's next count, flush and close raised
    qdrant-edge's raw error); B's drop went through, and A's next add was lost, "ok"."""

    vectors = np.eye(3, 4, dtype=np.float32)
    other = ("import sys\n"
             "from smec_index.connectors import open_connector\n"
             "from smec_index.errors import SmecError\n"
             "c = open_connector('qdrant', data_dir=sys.argv[1])\n"
             "for step in (lambda: c.count('docs'), lambda: c.drop('docs')):\n"
             "    try:\n"
             "        step(); print('done')\n"
             "    except SmecError as e:\n"
             "        print('refused', e)\n"
             "c.close()\n")  # fmt: skip
    with open_connector("qdrant", data_dir=tmp_path / "d") as connector:
        connector.create("docs", IndexSpec(4, "cosine", "flat"))
        connector.add("docs", ["a", "b"], vectors[:2])
        connector.flush("docs")
        done = _python(other, tmp_path / "d")
        lines = done.stdout.splitlines()
        assert len(lines) == 2 and all(line.startswith("refused ") for line in lines), done
        assert "another connector or process has it open" in lines[0]
        assert lines[1].endswith("(it is not dropped)")
        connector.add("docs", ["c"], vectors[2:])
        assert connector.count("docs") == 3
        connector.flush("docs")
    with open_connector("qdrant", data_dir=tmp_path / "d") as connector:
        assert connector.count("docs") == 3


# -- the forty-fifth sweep: its faults -----------------------------------------------------------


def test_a_second_connector_of_a_process_leaves_an_open_qdrant_edge_collection_whole(tmp_path):
    """A second connector of the same process refused a collection the first had open, but
    its failed load cut the first one's payload journal short: the first's next flush,
    count and close raised qdrant-edge's raw Exception."""
    vectors = np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32)
    first = open_connector("qdrant", data_dir=tmp_path / "d")
    first.create("c", IndexSpec(8, "cosine", "flat"))
    first.add("c", [f"i{i}" for i in range(50)], vectors)
    first.flush("c")
    with open_connector("qdrant", data_dir=tmp_path / "d") as second:
        held = r"another connector or process has it open \(a connector of this process\)"
        with pytest.raises(SmecError, match=held):
            second.count("c")
    first.add("c", ["new"], vectors[:1])
    first.flush("c")
    assert first.count("c") == 51
    first.close()
    with open_connector("qdrant", data_dir=tmp_path / "d") as again:
        assert again.count("c") == 51


@pytest.mark.parametrize("bad", [None, 123, b"runs/pca", ["runs/pca"]])
def test_saving_a_compressor_to_no_path_is_one_line(tmp_path, bad):
    """LinearCompressor.save(None) (or 123, bytes, a list) raised a raw TypeError."""
    from smec_index.compressors import make_compressor
    from smec_index.synthetic import synthetic_retrieval

    data, _ = synthetic_retrieval(n_docs=200, n_queries=20, dim=16, rank=4)
    pca = make_compressor("pca", [8]).fit(data)
    with pytest.raises(SmecError, match="artifact directory: a path is a str or a pathlib.Path"):
        pca.save(bad)


def test_a_faiss_nlist_beyond_what_it_can_allocate_is_refused(tmp_path):
    """nlist=2**30 on a FAISS ivf_flat create: a raw MemoryError (std::bad_alloc); 1e8 took
    39 s and 15 GB before any point was added."""
    with open_connector("faiss", data_dir=tmp_path / "d") as connector:
        for nlist in (2**31 - 1, 2**30, 2**20 + 1):
            with pytest.raises(SmecError, match=f"nlist={nlist:,}: FAISS allocates every list"):
                connector.create("x", IndexSpec(8, "cosine", "ivf_flat", {"nlist": nlist}))
        assert connector.collections() == []


@pytest.mark.parametrize("backend", ["faiss", "qdrant", "milvus"])
def test_a_physical_build_name_cannot_be_created_by_hand(tmp_path, backend):
    """Connector.create('docs__b0123456789') was accepted; the next `build --collection docs`
    took it for a leftover of its own and deleted it with its points."""
    with open_connector(backend, data_dir=tmp_path / "d") as connector:
        with pytest.raises(SmecError, match="'docs__b0123456789': names ending in '__b'"):
            connector.create("docs__b0123456789", IndexSpec(8, "cosine", "flat"))
        assert connector.collections() == []
    ds = _dataset(tmp_path)
    _ok_cli("build", "--dataset", ds, "--dim", 16, "--backend", backend, "--collection", "docs",
            "--data-dir", tmp_path / "d", "--quiet")  # the build machinery still may


def test_bench_says_when_a_method_measures_nothing_without_dims(tmp_path):
    """`bench` (default methods none,pca) with no --dims stored the none run alone and said
    nothing of pca; with --dims the skip was noted."""
    done = CliRunner().invoke(main, ["bench", "--dataset", "synthetic:1000x16", "--out",
                                     str(tmp_path / "r.jsonl"), "--max-queries", "20",
                                     "--latency-queries", "10", "--concurrency", "1"])
    assert done.exit_code == 0, done.output
    assert ("note: method pca measures nothing without --dims: it projects below the "
            "original 16 dims; pass e.g. --dims 8") in done.output


@pytest.mark.parametrize("backend", ["faiss", "qdrant"])
def test_an_alias_whose_collection_is_gone_says_so_and_what_rebuilds_it(tmp_path, backend):
    """The collection behind c3 removed: search and info advised "create (build) it first"
    about 'c3__b...', a name the user never typed, and that build was refused."""
    import shutil

    ds, data = _dataset(tmp_path), tmp_path / "d"
    build = ["build", "--dataset", ds, "--dim", 16, "--backend", backend, "--collection", "c3",
             "--data-dir", data, "--quiet"]  # fmt: skip
    _ok_cli(*build)
    (physical,) = (data / backend).glob("c3__b*")
    shutil.rmtree(physical)
    where = ["--backend", backend, "--collection", "c3", "--data-dir", data]
    for args in (["search", *where, "--like", "d1"], ["info", *where]):
        line = _error_line(args)
        assert (f"alias 'c3' names collection '{physical.name}' in {backend}, which is gone "
                "(its files removed?); build 'c3' again with --overwrite") in line
    _ok_cli(*build, "--overwrite")
    assert json.loads(_ok_cli("info", *where, "--json"))["count"] == 300


def test_a_copy_another_source_made_in_a_milvus_lite_file_is_named_as_its(tmp_path):
    """A milvus-lite source's copy docs_8 beside it, then a Qdrant source with --to-backend
    milvus --to-uri of that file: "no migration recorded in --data-dir created it (another
    --data-dir?) ... or drop it yourself", though this data dir recorded it."""
    _user_milvus(tmp_path / "m.db", n=300, dim=32)
    _qdrant_source(tmp_path / "q")
    common = ["--dim", 8, "--min-recall", 0, "--quiet", "--data-dir", tmp_path / "d"]
    _ok_cli("migrate", "--backend", "milvus", "--uri", tmp_path / "m.db", "--collection", "docs",
            *common)
    line = _error_line(["migrate", "--backend", "qdrant", "--path", tmp_path / "q",
                        "--collection", "docs", "--to-backend", "milvus", "--to-uri",
                        tmp_path / "m.db", "--allow-schema-change", *common])  # fmt: skip
    assert "is the copy a migration of milvus:" in line and "another --data-dir" not in line
    assert "drop it yourself" not in line


# -- the forty-sixth sweep: its faults -----------------------------------------------------------


def test_a_corpus_without_variance_is_refused_before_training(tmp_path):
    """5,000 identical documents: smec trained for 20-29 s, then failed in the PCA it is
    compared with, naming "pca", a method the user did not ask for."""
    import time

    from smec_index.compressors import make_compressor
    from smec_index.data import Embeddings, RetrievalData

    rows = np.ones((600, 32), np.float32)
    data = RetrievalData(Embeddings([f"d{i}" for i in range(600)], rows),
                         Embeddings(["q"], rows[:1]))  # fmt: skip
    started = time.perf_counter()
    with pytest.raises(SmecError) as raised:
        make_compressor("smec", [16, 8], max_epochs=30, supervised=False).fit(data)
    assert str(raised.value).startswith("smec: every document has the same vector")
    assert time.perf_counter() - started < 5  # refused before training (which takes ~20 s)


@pytest.mark.parametrize("backend, kind", [("faiss", "flat"), ("hnswlib", "hnsw")])
def test_every_call_through_an_alias_whose_files_are_gone_says_so(tmp_path, backend, kind):
    """An alias's collection folder removed by hand: search and add named the cause, count
    and get said "no collection 'al'; create it first", which create('al') refused."""
    import shutil

    rows = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    with open_connector(backend, data_dir=tmp_path / "d") as connector:
        connector.create("a1", IndexSpec(4, "ip", kind))
        connector.add("a1", [str(i) for i in range(5)], rows)
        connector.set_alias("al", "a1")
    shutil.rmtree(tmp_path / "d" / backend / "a1")
    with open_connector(backend, data_dir=tmp_path / "d") as connector:
        for call in (lambda: connector.search("al", rows, 2), lambda: connector.count("al"),
                     lambda: connector.add("al", ["z"], rows[:1]),
                     lambda: connector.get("al", ["0"])):  # fmt: skip
            with pytest.raises(SmecError) as raised:
                call()
            assert str(raised.value) == (  # (sweep 49: not "build 'al' again", refused)
                f"alias 'al' names collection 'a1' in {backend}, which is gone (its files "
                "removed?); point it at a collection that exists, or drop it "
                "(Connector.set_alias / drop_alias)")


def test_a_rerun_removes_the_temporary_file_a_killed_record_write_left(tmp_path):
    """A SIGKILL while migrate wrote its progress record left '.RECORD.json.<hex>.tmp';
    the resumed run and every later one kept it."""
    _qdrant_source(tmp_path / "q")
    migrate = ["migrate", "--backend", "qdrant", "--path", tmp_path / "q", "--collection", "docs",
               "--dim", 8, "--min-recall", 0, "--data-dir", tmp_path / "d", "--quiet"]
    _ok_cli(*migrate)
    (record,) = [p for p in (tmp_path / "d" / "migrations").rglob("*.json")
                 if p.name != "source.json"]  # fmt: skip
    left = record.with_name(f".{record.name}.0123abcd.tmp")
    left.write_text('{"half": ')  # what the killed write left
    mine = record.with_name("notes.txt")
    mine.write_text("not smec-index's")
    _ok_cli(*migrate, "--restart")
    assert not left.exists() and mine.read_text() == "not smec-index's"


def test_an_alias_write_removes_the_temporary_file_a_killed_one_left(tmp_path):
    """The temporary files of a killed aliases.json write are swept by the next writer, as
    migrate's progress records' are (one sweep beside write_json_atomic)."""
    with open_connector("faiss", data_dir=tmp_path / "d") as connector:
        connector.create("a1", IndexSpec(4, "ip", "flat"))
        connector.set_alias("al", "a1")
        (aliases,) = (tmp_path / "d").rglob("aliases.json")
        left = aliases.with_name(".aliases.json.0123abcd.tmp")
        left.write_text('{"al": ')  # what a killed write left
        connector.set_alias("al2", "a1")
        assert not left.exists() and connector.resolve("al2") == "a1"


# -- the forty-seventh sweep: its faults ---------------------------------------------------------


@pytest.mark.parametrize("options, message", [
    ({"storage": 5}, "storage: a path is a str or a pathlib.Path, got int; pass one"),
    ({"storage": b"/tmp"}, "storage: a path is a str or a pathlib.Path, got bytes; pass one"),
    ({"storage": ["a"]}, "storage: a path is a str or a pathlib.Path, got list; pass one"),
    ({"timeout": "x"}, "timeout 'x': pass seconds, a positive number"),
    ({"timeout": float("nan")}, "timeout nan: pass seconds, a positive number"),
    ({"timeout": -1}, "timeout -1: pass seconds, a positive number"),
])
def test_a_connectors_folder_and_timeout_options_are_typed(tmp_path, options, message):
    """open_connector('milvus', storage=5) raised builtins.TypeError from Path(); a timeout
    of 'x' or nan was taken without a word (embedded engines never use it, a server would)."""
    backend = "milvus" if "storage" in options else "qdrant"
    with pytest.raises(SmecError) as raised:
        open_connector(backend, data_dir=tmp_path / "d", **options)
    assert str(raised.value) == message
    assert not (tmp_path / "d").exists()


def _beir_with_embeddings(root: Path, word: str, n: int = 40) -> Path:
    """A BEIR folder of ``n`` documents about ``word`` and its embeddings, as embed makes
    them (the bundled MiniLM)."""
    from smec_index.data import BeirDataset
    from smec_index.embed import embed_dataset

    (root / "qrels").mkdir(parents=True)
    with open(root / "corpus.jsonl", "w") as handle:
        for i in range(n):
            handle.write(json.dumps({"_id": f"d{i}", "title": f"{word} {i}",
                                     "text": f"{word} text {i}"}) + "\n")  # fmt: skip
    with open(root / "queries.jsonl", "w") as handle:
        for i in range(10):
            handle.write(json.dumps({"_id": f"q{i}", "text": f"{word} query {i}"}) + "\n")
    (root / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{i}\t1\n" for i in range(10)))
    embed_dataset(BeirDataset(root), device="cpu", progress=False)
    return root


@pytest.mark.slow
def test_another_datasets_embeddings_are_named_and_never_re_embedded_over(tmp_path,
                                                                         monkeypatch):
    """build --dataset beta --embeddings alpha/embeddings/MODEL blamed edits "since embed
    made them" and advised `embed --dataset beta --out alpha/embeddings/MODEL`, which,
    followed, replaced alpha's embeddings with beta's (no --force asked), and alpha no
    longer built. Embed records whose texts it encoded; the advice is beta's own folder."""
    monkeypatch.chdir(tmp_path)
    _beir_with_embeddings(Path("alpha"), "apple")
    _beir_with_embeddings(Path("beta"), "banana")
    theirs = Path("alpha/embeddings/all-MiniLM-L6-v2")
    before = (theirs / "corpus.npy").read_bytes()
    _ok_cli("train", "--dataset", "alpha", "--method", "pca", "--dims", 32, "--unsupervised",
            "--out", "art", "--quiet")  # fmt: skip
    line = _error_line(["build", "--dataset", "beta", "--embeddings", theirs, "--dim", 32,
                        "--artifact", "art", "--backend", "faiss", "--quiet"])  # fmt: skip
    assert line == (
        f"error: {theirs}: these embeddings encode {Path('alpha').resolve()}'s texts, not "
        "beta's; pass beta's own embeddings (`smec-index embed --dataset beta` writes them "
        "to beta/embeddings/all-MiniLM-L6-v2)")
    line = _error_line(["embed", "--dataset", "beta", "--out", theirs, "--device", "cpu"])
    assert line == (
        f"error: --out {theirs} holds the embeddings of {Path('alpha').resolve()}'s texts, "
        "not beta's; pass another --out (or none: beta's own embeddings folder), or --force "
        "to replace them")
    assert (theirs / "corpus.npy").read_bytes() == before
    meta = json.loads((theirs / "meta.json").read_text())
    del meta["dataset"]  # embeddings made before embed recorded it: known by the layout
    (theirs / "meta.json").write_text(json.dumps(meta))
    assert "holds the embeddings of" in _error_line(
        ["embed", "--dataset", "beta", "--out", theirs, "--device", "cpu"])
    _ok_cli("build", "--dataset", "alpha", "--dim", 32, "--artifact", "art", "--backend",
            "faiss", "--quiet")  # fmt: skip
    # a dataset copied with its embeddings, then edited, re-embeds into its own folder
    import shutil

    shutil.copytree("alpha", "alpha2")
    with open("alpha2/corpus.jsonl", "a") as handle:
        handle.write(json.dumps({"_id": "new", "title": "apple", "text": "new"}) + "\n")
    _ok_cli("embed", "--dataset", "alpha2", "--device", "cpu")
    assert (theirs / "corpus.npy").read_bytes() == before


def test_a_new_out_written_by_another_run_meanwhile_is_not_replaced(tmp_path, monkeypatch):
    """Two trains given one new --out, neither with --overwrite: both printed "trained ->
    out" and exited 0, and out held one of them (the swap replaced what the other wrote)."""
    from smec_index import train
    from smec_index.artifact import atomic_directory, save_artifact
    from smec_index.train import TrainRequest, run_train

    ds = _dataset(tmp_path)
    out = tmp_path / "out"
    fit = train._fit

    def fit_while_another_run_saves(request):
        fitted = fit(request)
        save_artifact(out, {"method": "theirs"}, {"p": np.eye(2, dtype=np.float32)})
        return fitted

    monkeypatch.setattr(train, "_fit", fit_while_another_run_saves)
    with pytest.raises(SmecError) as raised:
        run_train(TrainRequest(dataset=ds, out=out, dims="8", method="pca", unsupervised=True,
                               quiet=True))  # fmt: skip
    assert str(raised.value) == f"{out}: already exists; pass --overwrite or another --out"
    assert json.loads((out / "config.json").read_text())["method"] == "theirs"
    # the narrower window: written between this run's last check and its swap
    with pytest.raises(SmecError) as raised:
        with atomic_directory(tmp_path / "o2", kind="artifact", overwrite=False) as staging:
            (staging / "config.json").write_text("{}")
            save_artifact(tmp_path / "o2", {"method": "theirs"}, {"p": np.eye(2)})
    assert "another run wrote it while this one worked" in str(raised.value)
    assert json.loads((tmp_path / "o2" / "config.json").read_text())["method"] == "theirs"
    assert [p.name for p in tmp_path.iterdir() if "staging" in p.name] == []


@pytest.mark.parametrize("backend", ["qdrant", "milvus"])
def test_migrating_a_collection_onto_itself_names_the_source(tmp_path, backend):
    """A user's qdrant-edge shard kept at DATA/qdrant/docs, migrated --to docs into the same
    folder: the refusal blamed "an earlier migrate with another --data-dir" and ended "or
    drop it yourself", the user's only copy. The same for a milvus-lite file as --to-uri."""
    data = tmp_path / "data"
    if backend == "qdrant":
        (data / "qdrant").mkdir(parents=True)
        _user_shard(data / "qdrant" / "docs")
        where = ["--path", data / "qdrant"]
    else:
        data.mkdir()
        _user_milvus(tmp_path / "src.db")
        where = ["--uri", tmp_path / "src.db", "--to-uri", tmp_path / "src.db"]
    before = _tree(tmp_path)
    for flags in ([], ["--overwrite"]):
        line = _error_line(["migrate", "--backend", backend, *where, "--collection", "docs",
                            "--dim", 4, "--to-backend", backend, "--to", "docs",
                            "--allow-schema-change", "--data-dir", data, *flags])  # fmt: skip
        assert line.startswith("error: --to docs is the source collection itself ("), line
        assert line.endswith("pick another --to")
    assert _tree(tmp_path) == before


def test_sweep_47s_judgement_calls_made_rules():
    """`[1] in Embeddings(...)` raised Python's TypeError (unhashable), where `in` of any
    container answers False for what it cannot hold."""
    from smec_index.data import Embeddings

    embeddings = Embeddings(["a"], np.zeros((1, 2), dtype=np.float32))
    assert "a" in embeddings and [1] not in embeddings and 1 not in embeddings


def test_sweep_48s_judgement_calls_made_rules(tmp_path):
    """smec to dims at the input's advised "method none keeps the original vectors", which
    train refuses (eval alone has --method none); the advice given now works as written."""
    ds = _dataset(tmp_path)  # 16-d
    line = _error_line(["train", "--dataset", ds, "--dims", 16, "--out", tmp_path / "a"])
    assert line.endswith("(the original vectors need no training: build --dim 16 keeps them, "
                         "eval --method none scores them)"), line
    _ok_cli("build", "--dataset", ds, "--dim", 16, "--backend", "faiss", "--data-dir",
            tmp_path / "d", "--quiet")  # fmt: skip
    _ok_cli("eval", "--dataset", ds, "--method", "none")
    # a grade of 10**400 was shown as 1 and 29 zeros: a value cut short is marked as cut
    from smec_index.metrics import ndcg_at_k

    with pytest.raises(SmecError) as raised:
        ndcg_at_k(["d1"], {"d1": 10**400}, 10)
    assert str(raised.value).startswith("grade 1" + "0" * 29 + "...: ")


# -- the forty-eighth sweep: its faults ----------------------------------------------------------


def test_judgements_of_other_embeddings_are_named_before_skip_is_advised(tmp_path):
    """Qrels none of whose queries or documents are in the embeddings: eval and build
    advised --skip-unknown-qrels, which, followed, was refused as leaving no judgement."""
    ds = _dataset(tmp_path, qrels="x1\ty1\t1\nx2\ty2\t1\n")
    for flags in ([], ["--skip-unknown-qrels"]):
        line = _error_line(["eval", "--dataset", ds, "--method", "none", *flags])
        assert "--skip-unknown-qrels" not in line
        assert line.endswith("skipping them would leave no relevant judgement: these qrels "
                             "belong to other embeddings (check --embeddings and the qrels "
                             "file)"), line


def test_a_command_started_with_stderr_or_stdout_closed(tmp_path):
    """`build ... 2>&-` (no --quiet), bench and smec training exited 1 with nothing said and
    nothing done: tqdm wrote to a missing stderr. `eval ... >&-` exited 0 and its results
    went nowhere."""

    ds = _dataset(tmp_path)
    cli = f"{shlex.quote(sys.executable)} -m smec_index.cli"
    build = (f"{cli} build --dataset {ds} --backend faiss --dim 8 --data-dir "
             f"{tmp_path / 'd'} --collection c 2>&-")  # fmt: skip
    done = subprocess.run(["bash", "-c", build], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "faiss collection c:" in done.stdout, done
    shown = subprocess.run(["bash", "-c", f"{cli} eval --dataset {ds} --method none >&-"],
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert shown.returncode == 2 and shown.stderr == (
        "error: stdout is closed (>&-), so what eval prints would be lost; redirect it "
        "instead (> FILE, or > /dev/null)\n")
    closed = build.replace("2>&-", ">&-").replace("--collection c", "--collection c2")
    built = subprocess.run(["bash", "-c", closed], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr  # its result is the collection, on disk


def test_a_stale_switched_copy_names_the_rollback_its_restart_needs(tmp_path):
    """A copy switched to alias 'live', then a source payload edited: the rerun said "pass
    --restart", which was refused ("switch it back first (--rollback)"); one message, one
    way forward. A user's alias never named by --alias is called the target's default."""
    from qdrant_client import QdrantClient

    _qdrant_source(tmp_path / "q")
    migrate = ["migrate", "--backend", "qdrant", "--path", tmp_path / "q", "--collection", "docs",
               "--dim", 8, "--min-recall", 0, "--data-dir", tmp_path / "d", "--quiet"]
    _ok_cli(*migrate, "--alias", "live")
    client = QdrantClient(path=str(tmp_path / "q"))
    client.set_payload("docs", {"i": -1}, points=[0])
    client.close()
    line = _error_line([*migrate, "--alias", "live"])
    assert line.endswith("not switched: pass --restart to copy the source again (alias 'live' "
                         "reads the copy: switch it back first (--rollback --alias live))"), line
    _ok_cli(*migrate, "--rollback", "--alias", "live")
    _ok_cli(*migrate, "--restart", "--alias", "live")
    # a user's alias under the default target's name: named as the default, not as --to
    from qdrant_client import models

    _qdrant_source(tmp_path / "q2")
    client = QdrantClient(path=str(tmp_path / "q2"))
    client.update_collection_aliases([models.CreateAliasOperation(
        create_alias=models.CreateAlias(collection_name="docs", alias_name="docs_8"))])  # fmt: skip
    client.close()
    line = _error_line(["migrate", "--backend", "qdrant", "--path", tmp_path / "q2",
                        "--collection", "docs", "--dim", 8, "--data-dir", tmp_path / "d2"])
    assert line.startswith("error: the default target docs_8 (--to not given): that is an "
                           "alias (of 'docs')"), line


def test_sweep_48s_bench_judgement_calls_made_rules(tmp_path, monkeypatch):
    """`bench --config /dev/stdin < FILE` resolved its relative `out` against /dev (and wrote
    /dev/cres.jsonl); `--methods artifact:` (no folder) named '.' as not an artifact."""
    config = tmp_path / "c.toml"
    config.write_text('datasets = ["synthetic:300x16"]\nout = "cres.jsonl"\ndims = [8]\n'
                      'methods = ["pca"]\nbackends = ["faiss"]\n')  # fmt: skip
    monkeypatch.chdir("/")
    cli = f"{shlex.quote(sys.executable)} -m smec_index.cli bench --config /dev/stdin"
    done = subprocess.run(["bash", "-c", f"{cli} < {shlex.quote(str(config))}"],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "cres.jsonl").is_file()  # beside the file, not in /dev
    config.write_text('datasets = ["synthetic:300x16"]\nmethods = ["artifact:"]\nout = "r"\n')
    for args in (["--config", config], ["--dataset", "synthetic:300x16", "--methods",
                                        "artifact:", "--dims", 8, "--out", "r"]):  # fmt: skip
        assert _error_line(["bench", *args]) == (
            "error: artifact: names no folder; pass artifact:DIR, the folder `smec-index "
            "train --out DIR` wrote")


def test_two_benches_into_one_results_file_take_turns(tmp_path, monkeypatch):
    """Two benches at once on one --out both measured the same runs and both appended them
    (no lock); the second is now refused while the first holds the file, and none leaves
    its lock file behind."""
    from smec_index.connectors.storage import file_lock

    monkeypatch.chdir(tmp_path)
    bench = ["bench", "--dataset", "synthetic:300x16", "--methods", "pca", "--dims", 8,
             "--backends", "faiss", "--out", "r.jsonl"]  # fmt: skip
    with file_lock(tmp_path / ".r.jsonl.lock", "another bench"):  # what a running one holds
        assert _error_line(bench) == ("error: a bench into r.jsonl is in progress in another "
                                      "process; wait for it")  # fmt: skip
    assert not (tmp_path / "r.jsonl").exists()
    _ok_cli(*bench)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.jsonl"]


# -- the forty-ninth sweep: its faults -----------------------------------------------------------


@pytest.mark.parametrize("backend", ["faiss", "hnswlib", "qdrant", "milvus"])
def test_a_compressed_index_made_by_hand_searches_its_collection_made_again(tmp_path, backend):
    """A CompressedIndex made as the README shows, its collection then dropped and made
    again through the connector: every later search failed, advising CompressedIndex.open
    (refused: no manifest) or "open a new searcher" (none a CompressedIndex user has)."""
    from smec_index.compressors import make_compressor
    from smec_index.data import Embeddings, RetrievalData

    rng = np.random.default_rng(0)
    ids = [f"d{i}" for i in range(80)]
    corpus = rng.standard_normal((80, 16)).astype(np.float32)
    queries = rng.standard_normal((1, 16)).astype(np.float32)
    pca = make_compressor("pca", [8]).fit(
        RetrievalData(Embeddings(ids, corpus), Embeddings(["q0"], queries)))
    kind = "hnsw" if backend == "hnswlib" else "flat"
    with open_connector(backend, data_dir=tmp_path / "d") as connector:
        index = CompressedIndex(connector, "docs", pca, dim=8)
        index.create({}, kind)
        index.add(ids, corpus)
        assert len(index.search(queries, k=2)[0][0]) == 2
        connector.drop("docs")
        connector.create("docs", IndexSpec(8, "cosine", kind))
        connector.add("docs", ["new"], np.ones((1, 8), dtype=np.float32))
        assert index.search(queries, k=2)[0][0][0] == "new"


def test_a_refused_refit_leaves_a_fitted_compressor_as_it_was(tmp_path):
    """A fit refused (too few documents) on a fitted compressor kept the new input dim
    beside the old projections: its save wrote an artifact no one could load, over the good
    one, and CompressedIndex.add raised numpy's matmul ValueError."""
    from smec_index.compressors import make_compressor
    from smec_index.data import Embeddings, RetrievalData
    from smec_index.projection import Projection

    rng = np.random.default_rng(0)

    def data(n: int, dim: int) -> RetrievalData:
        return RetrievalData(
            Embeddings([f"d{i}" for i in range(n)], rng.standard_normal((n, dim)).astype(
                np.float32)), Embeddings(["q0"], rng.standard_normal((1, dim)).astype(
                np.float32)))  # fmt: skip

    pca = make_compressor("pca", [8]).fit(data(60, 16))
    before = pca.projection(8).copy()
    with pytest.raises(SmecError, match="needs at least 9 documents"):
        pca.fit(data(3, 32))
    assert pca.input_dim == 16 and np.array_equal(pca.projection(8), before)
    pca.save(tmp_path / "art")
    assert Projection.load(tmp_path / "art").input_dim == 16


def test_milvus_lite_indexing_an_added_segment_at_load_prints_nothing(tmp_path):
    """An ivf_flat collection reopened and given one point: milvus-lite indexed that segment
    when the next read loaded the collection, and FAISS's "WARNING clustering 1 points to 1
    centroids" reached the caller's stderr."""
    code = ("import sys, numpy as np\n"
            "from smec_index.connectors import open_connector, IndexSpec\n"
            "rng = np.random.default_rng(0)\n"
            "c = open_connector('milvus', data_dir=sys.argv[1])\n"
            "c.create('c1', IndexSpec(8, 'cosine', 'ivf_flat', {'nlist': 4}))\n"
            "c.add('c1', [f'p{i}' for i in range(40)], rng.standard_normal((40, 8)))\n"
            "c.close()\n"
            "c = open_connector('milvus', data_dir=sys.argv[1])\n"
            "c.add('c1', ['late'], rng.standard_normal((1, 8)))\n"
            "print(c.count('c1'))\n"
            "c.close()\n")  # fmt: skip
    done = _python(code, tmp_path / "d")
    assert done.returncode == 0 and done.stdout.split() == ["41"], done.stderr
    assert "WARNING" not in done.stderr, done.stderr


def test_searching_a_migrated_copy_from_another_data_dir_names_the_way_to_it(tmp_path):
    """`search --like` on a milvus-lite copy migrate made, with another --data-dir: "not
    made by smec-index ... it is someone's own", though migrate made it (info hedged)."""
    _user_milvus(tmp_path / "src.db", n=300)
    _ok_cli("migrate", "--backend", "milvus", "--uri", tmp_path / "src.db", "--collection",
            "docs", "--dim", 8, "--min-recall", 0, "--data-dir", tmp_path / "m", "--quiet")
    (tmp_path / "other").mkdir()
    line = _error_line(["search", "--backend", "milvus", "--uri", tmp_path / "src.db",
                        "--collection", "docs_8", "--like", 3, "--data-dir", tmp_path / "other"])
    assert "if `migrate` made it, pass that migration's --data-dir" in line, line


def test_rolling_back_under_a_later_migrations_switch_names_it(tmp_path):
    """Two migrations of one source switched one alias in turn (dim 8, then 6): rolling
    back the first said "someone moved it after the switch ... point it back yourself";
    it was the source's own later migration, whose rollback is the way."""
    _qdrant_source(tmp_path / "q")
    common = ["migrate", "--backend", "qdrant", "--path", tmp_path / "q", "--collection",
              "docs", "--min-recall", 0, "--data-dir", tmp_path / "d", "--quiet"]  # fmt: skip
    _ok_cli(*common, "--dim", 8, "--alias", "live")
    _ok_cli(*common, "--dim", 6, "--alias", "live")
    line = _error_line([*common, "--dim", 8, "--rollback", "--alias", "live"])
    assert line.endswith("which a later migration of this source switched it to; roll that "
                         "one back first (the same command with --to docs_6 --rollback "
                         "--alias live), then this one"), line
    _ok_cli(*common, "--dim", 8, "--to", "docs_6", "--rollback", "--alias", "live")
    _ok_cli(*common, "--dim", 8, "--rollback", "--alias", "live")


def test_an_alias_to_nothing_advises_build_only_for_a_name_build_made(tmp_path):
    """A user's alias on a built collection, whose physical collection a rebuild then
    removed: info advised "build 'myal' again with --overwrite", which build refused (not a
    name it made). A built name whose files are gone is rebuilt as advised."""
    import shutil

    ds = _dataset(tmp_path)
    data = tmp_path / "d"
    build = ["build", "--dataset", ds, "--backend", "faiss", "--dim", 16, "--data-dir", data,
             "--collection", "c", "--quiet"]  # fmt: skip
    _ok_cli(*build)
    with open_connector("faiss", data_dir=data) as connector:
        connector.set_alias("myal", connector.resolve("c"))
        gone = connector.resolve("myal")
    _ok_cli(*build, "--overwrite")  # kept while myal reads it; then removed by hand
    shutil.rmtree(data / "faiss" / gone)
    info = ["info", "--backend", "faiss", "--data-dir", data, "--collection"]
    assert _error_line([*info, "myal"]).endswith(
        "point it at a collection that exists, or drop it (Connector.set_alias / drop_alias)")
    with open_connector("faiss", data_dir=data) as connector:
        physical = connector.resolve("c")
    shutil.rmtree(data / "faiss" / physical)
    assert _error_line([*info, "c"]).endswith("build 'c' again with --overwrite (or "
                                              "drop_alias it)")  # fmt: skip
    _ok_cli(*build, "--overwrite")
    _ok_cli(*info, "c")


def test_the_ctrl_c_line_says_what_running_again_does_for_each_command(tmp_path, monkeypatch):
    """Ctrl-C of train or bench said "run the same command again to redo it (migrate
    resumes where it stopped)": bench resumes too, and train is no migrate."""
    from smec_index.bench import runner

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt  # what Ctrl-C raises mid-run

    monkeypatch.setattr(runner, "run_sweep", interrupted)
    done = CliRunner().invoke(main, ["bench", "--dataset", "synthetic:300x16", "--dims", "8",
                                     "--out", str(tmp_path / "r.jsonl")])  # fmt: skip
    assert done.exit_code == 130 and done.output.strip() == (
        "error: interrupted (Ctrl-C); run the same command again to measure the runs not yet "
        "stored")


# -- the fiftieth sweep: its faults --------------------------------------------------------------


def test_closing_a_connector_leaves_the_apps_own_milvus_lite_client_working(tmp_path):
    """An app's own MilvusClient open on x.db, then a connector of this process opened on it
    and closed: close stopped the milvus-lite server the app's client had started, and the
    app's next query failed ("server unavailable")."""
    from pymilvus import MilvusClient

    mine = MilvusClient(str(tmp_path / "mine.db"))
    mine.create_collection("mine", dimension=4)
    mine.insert("mine", [{"id": 1, "vector": [1.0, 0.0, 0.0, 0.0], "k": "v"}])
    connector = open_connector("milvus", uri=str(tmp_path / "mine.db"))
    assert connector.collections() == ["mine"]
    connector.close()
    assert [row["k"] for row in mine.query("mine", filter="id >= 0", output_fields=["k"])] == ["v"]
    mine.close()


def test_a_build_refuses_documents_of_the_corpus_without_an_embedding(tmp_path):
    """corpus.jsonl of 300 documents, embeddings (BEIR layout, no marker) of 250: build
    stored 250 vectors, reported nDCG@10 1.0 and exited 0 (the reverse was refused)."""
    ds = _dataset(tmp_path)  # 300 documents
    with open(ds / "corpus.jsonl", "a") as handle:
        handle.write(json.dumps({"_id": "d_late", "title": "late", "text": "x"}) + "\n")
    line = _error_line(["build", "--dataset", ds, "--backend", "faiss", "--dim", 8,
                        "--data-dir", tmp_path / "d"])  # fmt: skip
    assert line == (
        f"error: 1 documents of {ds / 'corpus.jsonl'} (e.g. 'd_late') have no embedding, so "
        f"the collection would lack them: run `smec-index embed --dataset {ds} --force`, or "
        "pass --embeddings of the whole corpus")
    assert not (tmp_path / "d" / "faiss").exists()


@pytest.mark.parametrize("backend", ["faiss", "milvus"])
def test_searching_a_gone_physical_name_advises_the_built_name(tmp_path, backend):
    """`search --collection docs__b<hex>` (info's alias_target, gone after a rebuild, or a
    name that never was): "run `smec-index build --collection docs__b...` first", a name
    build refuses as reserved."""
    ds = _dataset(tmp_path)
    _ok_cli("build", "--dataset", ds, "--backend", backend, "--dim", 16, "--data-dir",
            tmp_path / "d", "--collection", "docs", "--quiet")  # fmt: skip
    line = _error_line(["search", "--backend", backend, "--data-dir", tmp_path / "d",
                        "--collection", "docs__b0123456789", "--like", "d1"])  # fmt: skip
    assert line.endswith("search 'docs', the name that was built"), line
    assert "smec-index build" not in line
