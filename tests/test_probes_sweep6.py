"""Hostile input, the eighth sweep's judgement calls made rules (issue 23): what a tester
could argue either way is now one answer, the same on every backend and command. Each
probe failed before its fix.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from smec_index.cli import main
from smec_index.connectors import open_connector
from smec_index.connectors.base import IndexSpec
from smec_index.errors import SmecError
from tests.probes import qdrant_source, run_probe
from tests.test_probes_hostile import _dataset

BACKENDS = ["faiss", "hnswlib", "qdrant", "milvus"]


def _ok(*args) -> str:
    done = CliRunner().invoke(main, [str(a) for a in args])
    assert done.exit_code == 0, done.output
    return done.output


def _connector(backend, root):
    if backend == "milvus":
        return open_connector("milvus", uri=str(root / "m.db"))
    return open_connector(backend, data_dir=root)


@pytest.fixture
def filled(tmp_path, request):
    """A 20-point 8-d collection ``t`` with alias ``al`` in ``request.param``."""
    connector = _connector(request.param, tmp_path)
    connector.create("t", IndexSpec(dim=8, index="flat" if request.param != "hnswlib" else "hnsw"))
    rows = np.random.default_rng(0).random((20, 8), dtype=np.float32)
    connector.add("t", [str(i) for i in range(20)], rows, [{} for _ in range(20)])
    connector.set_alias("al", "t")
    yield connector, rows
    connector.close()


@pytest.mark.parametrize("filled", BACKENDS, indirect=True)
def test_a_closed_connector_and_its_searchers_refuse_every_call(filled, tmp_path):
    connector, rows = filled
    searcher = connector.searcher("t")
    connector.close()
    connector.close()  # twice is fine
    calls = (lambda: connector.count("t"), lambda: connector.searcher("t"),
             lambda: connector.aliases(), lambda: connector.add("t", ["x"], rows[:1]))
    for call in calls:
        with pytest.raises(SmecError, match="connector is closed; open a new one"):
            call()
    with pytest.raises(SmecError, match="connector is closed"):
        searcher.search(rows[:1], 3)  # faiss and hnswlib answered from memory before
    with _connector(connector.name, tmp_path) as again:  # nothing was lost by closing
        assert again.count("t") == 20


@pytest.mark.parametrize("filled", BACKENDS, indirect=True)
def test_drop_alias_never_quietly_ignores_a_collection_name(filled):
    connector, _ = filled
    with pytest.raises(SmecError, match="is a collection in .*, not an alias"):
        connector.drop_alias("t")
    connector.drop_alias("no_such_alias")  # nothing to remove: like Qdrant's, not an error
    connector.drop_alias("al")
    assert connector.aliases() == {} and connector.count("t") == 20


@pytest.mark.parametrize("filled", ["faiss", "qdrant"], indirect=True)
@pytest.mark.parametrize("flag", ["yes", 1, None, [True]])
def test_normalized_must_be_a_bool(filled, flag):
    connector, rows = filled
    with pytest.raises(SmecError, match="normalized must be True or False"):
        connector.searcher("t").search(rows[:1], 3, normalized=flag)
    assert connector.searcher("t").search(rows[:1], 3, normalized=np.bool_(False))[0][0][0]


def test_milvus_blames_the_data_not_the_server_when_pymilvus_refuses_it():
    from pymilvus.exceptions import DataTypeNotMatchException, MilvusUnavailableException

    from smec_index.connectors.milvus.client import advice

    assert "fix what was sent" in advice(DataTypeNotMatchException(message="x"))
    assert "server is up" in advice(MilvusUnavailableException(message="x"))


@pytest.mark.parametrize(
    ("vectors", "fragment"),
    [
        (np.array([["1.0", "2.0"]]), "<U3 values, not a numeric array"),
        (np.array([["2020-01-01"] * 2], dtype="datetime64[D]"), "datetime64[D] values"),
        (np.array([[1, 2]], dtype="timedelta64[s]"), "timedelta64[s] values"),
    ],
)
def test_vectors_that_are_not_numbers_are_refused(vectors, fragment):
    from smec_index.vectors import as_rows

    with pytest.raises(SmecError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        as_rows(vectors, 2)


def test_a_torch_tensor_that_requires_grad_is_taken_as_its_values():
    import torch

    from smec_index.vectors import as_rows

    rows, one = as_rows(torch.ones(2, 4, requires_grad=True), 4)
    assert rows.dtype == np.float32 and rows.shape == (2, 4) and not one


@pytest.mark.parametrize("method", ["pca", "truncate", "smec", "mrl"])
def test_fit_names_what_it_takes(method):
    from smec_index.compressors import make_compressor

    with pytest.raises(SmecError, match="fit takes a RetrievalData, got ndarray"):
        make_compressor(method, [8]).fit(np.zeros((30, 16), np.float32))
    with pytest.raises(SmecError, match="beyond 65,536"):
        make_compressor(method, [2**40])


def test_synthetic_specs_take_ascii_digits_only(tmp_path):
    # "synthetic:٢٠٠x16" ran on 200 rows while --dims ٨ was refused: one rule now.
    run_probe(["bench", "--dataset", "synthetic:\u0662\u0660\u0660x16", "--methods", "pca",
               "--dims", 8, "--backends", "faiss", "--out", tmp_path / "r.jsonl"], tmp_path,
              "write synthetic datasets as synthetic:NxD")  # fmt: skip


def test_build_overwrite_never_takes_over_an_alias_it_did_not_make(tmp_path):
    ds = _dataset(tmp_path)
    _ok("train", "--dataset", ds, "--method", "pca", "--dims", 8, "--out", tmp_path / "art",
        "--quiet")  # fmt: skip
    with open_connector("faiss", data_dir=tmp_path / "d") as connector:
        connector.create("mine", IndexSpec(dim=8, index="flat"))
        connector.set_alias("live", "mine")
    common = ["build", "--dataset", ds, "--artifact", tmp_path / "art", "--dim", 8,
              "--backend", "faiss", "--data-dir", tmp_path / "d", "--quiet"]  # fmt: skip
    run_probe([*common, "--collection", "live", "--overwrite"], tmp_path,
              "'live' is an alias of 'mine', which no build of 'live' made")  # fmt: skip
    _ok(*common, "--collection", "built")
    _ok(*common, "--collection", "built", "--overwrite")  # its own alias: replaced as before
    with open_connector("faiss", data_dir=tmp_path / "d") as connector:
        assert connector.aliases()["live"] == "mine"


@pytest.mark.parametrize("kind", ["dataset", "artifact", "qdrant", "milvus", "inside"])
def test_build_and_migrate_refuse_the_same_working_folders(tmp_path, kind):
    # Folders that are none of the command's inputs (those have their own, sharper line):
    # a dataset, an artifact, a qdrant-client or milvus-lite store of the user's, or inside one.
    ds = _dataset(tmp_path)
    _ok("train", "--dataset", ds, "--method", "pca", "--dims", 8, "--out", tmp_path / "art",
        "--quiet")  # fmt: skip
    source = qdrant_source(tmp_path, n=60, dim=16)
    other = tmp_path / "other"
    other.mkdir()
    if kind == "dataset":
        folder = _dataset(other)
    elif kind in ("artifact", "inside"):
        _ok("train", "--dataset", ds, "--method", "pca", "--dims", 4, "--out", other / "art",
            "--quiet")  # fmt: skip
        folder = other / "art" / ("sub" if kind == "inside" else "")
    elif kind == "qdrant":
        folder = qdrant_source(other, n=10, dim=16)
    else:
        from pymilvus import MilvusClient

        folder = other / "lite.db"
        MilvusClient(str(folder)).close()
    fragment = {"dataset": "is a BEIR dataset", "artifact": "is a smec-index artifact output",
                "qdrant": "is a qdrant-client local storage", "milvus": "is a milvus-lite database",
                "inside": "(inside"}[kind]  # fmt: skip
    run_probe(["build", "--dataset", ds, "--artifact", tmp_path / "art", "--dim", 8, "--backend",
               "faiss", "--data-dir", folder, "--quiet"], tmp_path, fragment)  # fmt: skip
    run_probe(["migrate", "--backend", "qdrant", "--path", source, "--collection", "docs",
               "--dim", 8, "--dry-run", "--data-dir", folder], tmp_path, fragment)  # fmt: skip


# -- the tenth sweep (438 Python API and migration probes): its faults -----------------------

QUOTED_KEYS = ["a'b", "c\\d", "x\\'y", 'q"r']


def _milvus_source(db, keys, vector_field="vec", n=60, dim=16):
    """A user's milvus-lite collection ``docs`` made with pymilvus: VARCHAR key ``doc``."""
    from pymilvus import DataType, MilvusClient

    client = MilvusClient(str(db))
    schema = client.create_schema(auto_id=False)
    schema.add_field("doc", DataType.VARCHAR, is_primary=True, max_length=64)
    schema.add_field(vector_field, DataType.FLOAT_VECTOR, dim=dim)
    index = client.prepare_index_params()
    index.add_index(vector_field, index_type="FLAT", metric_type="COSINE")
    client.create_collection("docs", schema=schema, index_params=index)
    rows = np.random.default_rng(0).standard_normal((n, dim)).astype(np.float32)
    ids = [*keys, *(f"k{i:03d}" for i in range(n - len(keys)))]
    client.insert("docs", [{"doc": d, vector_field: rows[i].tolist()} for i, d in enumerate(ids)])
    client.flush("docs")
    client.close()
    return ids


def test_milvus_keys_with_quotes_and_backslashes_are_read_back(tmp_path):
    # pymilvus quotes keys as they are: get() broke on a'b, and its query iterator paged
    # x\'y's rows for ever (migrate hung, --dry-run too).
    with open_connector("milvus", uri=str(tmp_path / "m.db")) as connector:
        connector.create("c", IndexSpec(dim=4, index="flat"))
        rows = np.eye(4, dtype=np.float32)
        connector.add("c", QUOTED_KEYS, rows)
        assert connector.get("c", QUOTED_KEYS[::-1]).ids == QUOTED_KEYS[::-1]
        assert sorted(i for batch in connector.iterate("c", 2) for i in batch.ids) == sorted(
            QUOTED_KEYS)
        batches = list(connector.iterate("c", 1))
        resumed = [i for b in connector.iterate("c", 1, batches[1].cursor) for i in b.ids]
        assert resumed == [i for b in batches[2:] for i in b.ids]


@pytest.mark.slow
def test_a_milvus_source_with_such_keys_migrates_and_verifies(tmp_path):
    from pymilvus import MilvusClient

    db = tmp_path / "src.db"
    ids = _milvus_source(db, QUOTED_KEYS)
    done = CliRunner().invoke(main, ["migrate", "--backend", "milvus", "--uri", str(db),
                                     "--collection", "docs", "--dim", "8", "--min-recall", "0",
                                     "--data-dir", str(tmp_path / "d"), "--quiet",
                                     "--json"])  # fmt: skip
    assert done.exit_code == 0, done.output
    client = MilvusClient(str(db))  # the user's own reads of the copy
    try:
        client.load_collection("docs_8")  # as of the source: milvus-lite keeps no load state
        got = client.query("docs_8", filter='doc != ""', output_fields=["doc"], limit=100)
        assert sorted(r["doc"] for r in got) == sorted(ids)
    finally:
        client.close()


def test_a_milvus_vector_field_named_id_is_not_taken_for_the_key(tmp_path):
    db = tmp_path / "src.db"
    _milvus_source(db, [], vector_field="id", n=120)
    done = CliRunner().invoke(main, ["migrate", "--backend", "milvus", "--uri", str(db),
                                     "--collection", "docs", "--dim", "12", "--dry-run",
                                     "--data-dir", str(tmp_path / "d"), "--json",
                                     "--quiet"])  # fmt: skip
    assert done.exit_code == 0, done.output
    import json

    assert json.loads(done.output)["gate_value"] > 0.5, done.output  # 0.000 before


def test_a_cosine_multivector_carried_by_qdrant_local_verifies_on_the_first_run(tmp_path):
    from qdrant_client import QdrantClient, models

    client = QdrantClient(path=str(tmp_path / "q"))
    multi = models.MultiVectorConfig(comparator=models.MultiVectorComparator.MAX_SIM)
    client.create_collection("multi", vectors_config={
        "text": models.VectorParams(size=16, distance=models.Distance.COSINE),
        "title": models.VectorParams(size=4, distance=models.Distance.COSINE),
        "colbert": models.VectorParams(size=4, distance=models.Distance.COSINE,
                                       multivector_config=multi)})  # fmt: skip
    rng = np.random.default_rng(0)
    client.upsert("multi", [models.PointStruct(id=i, vector={
        "text": rng.standard_normal(16).tolist(), "title": (rng.random(4) * 5).tolist(),
        "colbert": (rng.standard_normal((3, 4)) * 5).tolist()}) for i in range(120)])  # fmt: skip
    client.close()
    _ok("migrate", "--backend", "qdrant", "--path", tmp_path / "q", "--collection", "multi",
        "--using", "text", "--dim", 8, "--min-recall", 0, "--data-dir", tmp_path / "d",
        "--quiet")  # fmt: skip


@pytest.mark.parametrize("backend", ["faiss", "hnswlib"])
def test_searches_racing_writes_never_see_a_half_written_index(tmp_path, backend):
    import threading

    rng = np.random.default_rng(0)
    with open_connector(backend, data_dir=tmp_path) as connector:
        connector.create("c", IndexSpec(8, "cosine", "hnsw"))
        connector.add("c", [f"a{i}" for i in range(200)], rng.random((200, 8), np.float32))
        searcher, errors, stop = connector.searcher("c"), [], threading.Event()
        query = rng.random((2, 8), np.float32)

        def read():
            while not stop.is_set():
                try:
                    connector.search("c", query, 5)
                    ids, _ = searcher.search(query, 5)
                    assert all(i for i in ids.ravel())
                except Exception as exc:  # noqa: BLE001 - the probe records whatever escapes
                    errors.append(repr(exc))
                    return

        reader = threading.Thread(target=read)
        reader.start()
        for j in range(15):  # hnswlib resizes its index along the way
            connector.add("c", [f"b{j}_{i}" for i in range(40)], rng.random((40, 8), np.float32),
                          [{} for _ in range(40)])  # fmt: skip
        connector.add("c", [f"a{i}" for i in range(50)], rng.random((50, 8), np.float32))
        stop.set()
        reader.join()
        assert errors == [] and connector.count("c") == 800


@pytest.mark.parametrize("backend", ["faiss", "hnswlib"])
def test_an_index_whose_collection_was_dropped_refuses(tmp_path, backend):
    with open_connector(backend, data_dir=tmp_path) as connector:
        connector.create("c", IndexSpec(8, "cosine", "flat" if backend == "faiss" else "hnsw"))
        connector.add("c", ["a", "b"], np.eye(2, 8, dtype=np.float32))
        connector.flush("c")  # unflushed, its writer lock would refuse the drop below
        searcher = connector.searcher("c")
        with open_connector(backend, data_dir=tmp_path) as other:  # another one, same process
            other.drop("c")
            other.create("c", IndexSpec(16, "cosine", "flat" if backend == "faiss" else "hnsw"))
        with pytest.raises(SmecError, match="was dropped after this searcher opened it"):
            searcher.search(np.eye(1, 8, dtype=np.float32), 2)


def test_a_foreign_qdrant_cursor_is_one_line(tmp_path):
    with open_connector("qdrant", data_dir=tmp_path) as connector:
        connector.create("c", IndexSpec(4, index="flat"))
        connector.add("c", [f"p{i}" for i in range(30)], np.random.default_rng(0).random(
            (30, 4), np.float32))  # fmt: skip
        for cursor in ("zzz", "", "a\x00b", "-1", "1" * 25):
            with pytest.raises(SmecError, match="cursor"):
                list(connector.iterate("c", 10, cursor))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("levels", "fragment"), [
    (5000, "nested deeper than JSON encoding allows"),  # past Python's recursion limit
    (70, "nested more than 64 levels deep"),  # what qdrant-edge logged and could not replay
])  # fmt: skip
def test_payloads_nested_too_deep_are_one_line(tmp_path, backend, levels, fragment):
    deep: dict = {"leaf": 1}
    for _ in range(levels):
        deep = {"x": deep}
    with _connector(backend, tmp_path) as connector:
        connector.create("c", IndexSpec(4, index="flat" if backend != "hnswlib" else "hnsw"))
        with pytest.raises(SmecError, match=fragment):
            connector.add("c", ["a"], np.ones((1, 4), np.float32), [deep])


def test_values_beyond_float32_print_no_warning(tmp_path, recwarn):
    import warnings

    warnings.simplefilter("always")
    with open_connector("faiss", data_dir=tmp_path) as connector:
        connector.create("c", IndexSpec(8, index="flat"))
        for call in (lambda: connector.add("c", ["big"], np.full((1, 8), 1e39)),
                     lambda: connector.search("c", np.full((1, 8), 1e39), 1)):  # fmt: skip
            with pytest.raises(SmecError, match="beyond float32's range"):
                call()
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_hand_edited_store_files_are_named_unreadable(tmp_path):
    import json

    cases = (("hnswlib", {"spec": {"index": "flat"}}, "does not build"),
             ("faiss", {"ids": [0, 1]}, "ids that are not text"),
             ("faiss", {"ids": ["a", "a"]}, "an id listed twice"))
    for backend, edit, fragment in cases:
        root = tmp_path / backend / str(len(fragment))
        with open_connector(backend, data_dir=root) as connector:
            connector.create("c", IndexSpec(4, index="hnsw"))
            connector.add("c", ["a", "b"], np.eye(2, 4, dtype=np.float32))
        meta = root / backend / "c" / "meta.json"
        record = json.loads(meta.read_text())
        for key, value in edit.items():
            record[key] = {**record[key], **value} if isinstance(value, dict) else value
        meta.write_text(json.dumps(record))
        with open_connector(backend, data_dir=root) as connector:
            with pytest.raises(SmecError, match=f"is unreadable .*{fragment}"):
                connector.search("c", np.eye(1, 4, dtype=np.float32), 1)


def test_artifact_and_index_misuse_gets_the_right_line(built, tmp_path):
    import json

    from smec_index import Projection
    from smec_index.compressors import load_compressor, make_compressor
    from smec_index.index import CompressedIndex

    art = tmp_path / "art"
    import shutil

    shutil.copytree(built / "art", art)
    config = json.loads((art / "config.json").read_text())
    (art / "config.json").write_text(json.dumps({**config, "settings": {"dims": [8]}}))
    for load in (Projection.load, load_compressor):
        with pytest.raises(SmecError, match="settings must be an object of training settings"):
            load(art)
    with open_connector("faiss", data_dir=tmp_path / "d") as connector:
        with pytest.raises(SmecError, match="pca compressor is not fitted"):
            CompressedIndex(connector, "c", make_compressor("pca", [8]), 8)
        with pytest.raises(SmecError, match="got str"):
            CompressedIndex(connector, "c", "art", 8)
        as_projection = CompressedIndex(connector, "c", Projection.load(built / "art"), 8)
        assert as_projection.compressor.input_dim == 16
    for path, fragment in (("a\x00b", "NUL byte"), ("p" * 300, "of more than 255 bytes")):
        with pytest.raises(SmecError, match=fragment):
            load_compressor(built / "art").save(tmp_path / path)


def test_projection_load_by_name_refuses_a_retrained_artifact(built, tmp_path):
    import shutil

    from smec_index import Projection

    root = tmp_path / "copy"
    shutil.copytree(built, root)
    ds = root / "ds"
    _ok("build", "--dataset", ds, "--artifact", root / "art", "--dim", 8, "--backend", "faiss",
        "--collection", "mine", "--data-dir", root / "d2", "--quiet")  # fmt: skip
    assert Projection.load("mine", root / "d2").dims == [8]
    _ok("train", "--dataset", ds, "--method", "truncate", "--dims", 8, "--out", root / "art",
        "--overwrite", "--quiet")  # fmt: skip
    with pytest.raises(SmecError, match="changed since 'mine' was built"):
        Projection.load("mine", root / "d2")


@pytest.mark.slow
def test_every_alias_a_migration_switched_finds_its_artifact_and_odd_source_names_migrate(
    tmp_path,
):
    from qdrant_client import QdrantClient, models

    from smec_index import Projection

    client = QdrantClient(path=str(tmp_path / "q"))
    for name in ("docs", "my-docs.v2"):
        client.create_collection(name, vectors_config=models.VectorParams(
            size=16, distance=models.Distance.COSINE))  # fmt: skip
        client.upsert(name, models.Batch(ids=list(range(100)), vectors=np.random.default_rng(
            0).standard_normal((100, 16)).tolist()))  # fmt: skip
    client.close()
    common = ["migrate", "--backend", "qdrant", "--path", tmp_path / "q", "--dim", 8,
              "--min-recall", 0, "--data-dir", tmp_path / "d", "--quiet"]  # fmt: skip
    for alias in ("live_a", "live_b"):
        _ok(*common, "--collection", "docs", "--alias", alias)
    for alias in ("live_a", "live_b"):  # only live_b was found before
        assert Projection.load(alias, tmp_path / "d").dims == [8]
    _ok(*common, "--collection", "my-docs.v2")  # a name Qdrant takes, ours did not
    client = QdrantClient(path=str(tmp_path / "q"))
    try:
        assert client.count("my_docs_v2_8").count == 100
        assert client.count("my-docs.v2").count == 100  # the source, untouched
    finally:
        client.close()


def test_the_tenth_sweeps_judgement_calls_made_rules(built, tmp_path):
    import json
    import shutil

    from smec_index import Projection
    from smec_index.index import CompressedIndex

    with open_connector("faiss", data_dir=built / "d") as connector:  # any iterable of ids
        assert connector.get("c8", (i for i in ["d1", "d0"])).ids == ["d1", "d0"]
    with pytest.raises(SmecError, match="the artifact projects to"):
        Projection.load(built / "art").project(np.ones(16), np.array([8]))
    art = tmp_path / "art"
    shutil.copytree(built / "art", art)
    config = json.loads((art / "config.json").read_text())
    (art / "config.json").write_text(json.dumps({**config, "input_dim": 4}))
    with pytest.raises(SmecError, match="go beyond the input_dim 4"):
        Projection.load(art)
    data = tmp_path / "d"
    shutil.copytree(built / "d", data)
    manifest = next((data / "manifests" / "faiss").glob("*.json"))
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "format": 99}))
    with pytest.raises(SmecError, match="written by a newer smec-index"):
        CompressedIndex.open("faiss", "c8", data)


def test_milvus_uri_set_to_a_lite_path_is_taken_as_uri_not_refused_by_pymilvus(tmp_path):
    import os
    import subprocess
    import sys

    # pymilvus reads MILVUS_URI itself when imported, and refused a path: every milvus
    # command was an internal error (a fresh process: pymilvus is imported once).
    env = {**os.environ, "MILVUS_URI": str(tmp_path / "none.db")}
    done = subprocess.run([sys.executable, "-m", "smec_index.cli", "info", "--backend", "milvus",
                           "--collection", "c", "--data-dir", str(tmp_path / "d")],
                          capture_output=True, text=True, env=env)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: no milvus-lite database at"), done.stderr


def test_a_killed_writer_not_yet_reaped_counts_as_gone():
    import subprocess
    import time

    from smec_index.artifact import _alive

    child = subprocess.Popen(["sleep", "60"])
    try:
        assert _alive(child.pid)
        child.kill()
        time.sleep(0.2)  # dead, not reaped: a zombie until wait()
        assert not _alive(child.pid)
    finally:
        child.wait()


@pytest.mark.slow
def test_migrate_after_the_source_grew_and_in_place_over_a_users_vector(tmp_path):
    import json

    from qdrant_client import QdrantClient, models

    source = qdrant_source(tmp_path, n=300, dim=32)
    common = ["migrate", "--backend", "qdrant", "--path", source, "--collection", "docs",
              "--dim", 8, "--min-recall", 0, "--data-dir", tmp_path / "d", "--quiet"]  # fmt: skip
    artifact = json.loads(_ok(*common, "--json"))["artifact"]
    client = QdrantClient(path=str(source))
    client.upsert("docs", [models.PointStruct(id=1000 + i, vector=[0.1] * 32) for i in range(5)])
    client.create_collection("own", vectors_config={"small": models.VectorParams(
        size=8, distance=models.Distance.COSINE), "big": models.VectorParams(
        size=32, distance=models.Distance.COSINE)})  # fmt: skip
    client.upsert("own", [models.PointStruct(id=i, vector={"small": [5.0] * 8, "big": np.random
                  .default_rng(i).random(32).tolist()}) for i in range(100)])  # fmt: skip
    client.close()
    # "run again to resume" for ever before: the finished copy can only be made again
    run_probe([*common, "--artifact", artifact], tmp_path, "the source changed since it was "
              "copied; not switched: pass --restart")  # fmt: skip
    for extra in ([], ["--overwrite"], ["--restart"]):  # the user's own vector "small"
        run_probe(["migrate", "--backend", "qdrant", "--path", source, "--collection", "own",
                   "--using", "big", "--in-place", "--to", "small", "--dim", 8, "--min-recall",
                   0, "--data-dir", tmp_path / "d", *extra], tmp_path,
                  "smec-index never writes over a vector it did not make")  # fmt: skip


def test_bench_measures_again_when_what_a_stored_run_measured_changed(tmp_path):
    import json

    ds = _dataset(tmp_path)
    args = ["bench", "--dataset", ds, "--methods", "none", "--backends", "faiss", "--index",
            "flat", "--latency-queries", 5, "--concurrency", 1, "--out", tmp_path / "r.jsonl"]
    _ok(*args)
    assert "is stored; not trained or measured again" in _ok(*args)
    corpus = next(ds.rglob("corpus.npy"))
    np.save(corpus, np.load(corpus)[::-1].copy())  # the same shape, other vectors
    assert "is stored; not trained or measured again" not in _ok(*args)
    lines = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert len(lines) == 1 and len({line["inputs"] for line in lines}) == 1


def test_bench_removes_what_killed_runs_left_in_its_workdir(tmp_path):
    import json
    import subprocess

    dead = subprocess.Popen(["true"])
    dead.wait()
    left = tmp_path / "work" / "smec-bench-killed"
    left.mkdir(parents=True)
    (left / ".smec-staging").write_text(json.dumps({"pid": dead.pid, "host": __import__(
        "socket").gethostname()}))  # fmt: skip
    (tmp_path / "b.toml").write_text(
        'datasets = ["synthetic:300x16"]\nmethods = ["none"]\nbackends = ["faiss"]\n'
        'index = ["flat"]\nlatency_queries = 5\nconcurrency = [1]\nworkdir = "work"\n'
        'out = "r.jsonl"\n')  # fmt: skip
    _ok("bench", "--config", tmp_path / "b.toml")
    assert list((tmp_path / "work").iterdir()) == []


@pytest.mark.slow
def test_qrels_naming_qdrant_uuids_in_capitals_find_their_points(tmp_path):
    import uuid

    from qdrant_client import QdrantClient, models

    rng = np.random.default_rng(0)
    rows = rng.standard_normal((300, 32)).astype(np.float32)
    client = QdrantClient(path=str(tmp_path / "q"))
    client.create_collection("docs", vectors_config=models.VectorParams(
        size=32, distance=models.Distance.COSINE))  # fmt: skip
    client.upsert("docs", [models.PointStruct(id=str(uuid.UUID(int=i + 1)), vector=v.tolist())
                           for i, v in enumerate(rows)])  # fmt: skip
    client.close()
    np.save(tmp_path / "q.npy", rows[:60] + 0.1 * rng.standard_normal((60, 32)).astype(np.float32))
    (tmp_path / "qids.txt").write_text("".join(f"q{i}\n" for i in range(60)))
    (tmp_path / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"q{i}\t{str(uuid.UUID(int=i + 1)).upper()}\t1\n" for i in range(60)))  # fmt: skip
    _ok("migrate", "--backend", "qdrant", "--path", tmp_path / "q", "--collection", "docs",
        "--dim", 8, "--queries", tmp_path / "q.npy", "--query-ids", tmp_path / "qids.txt",
        "--qrels", tmp_path / "qrels.tsv", "--data-dir", tmp_path / "d", "--dry-run",
        "--quiet")  # fmt: skip


@pytest.mark.parametrize("args", [
    ["search", "--collection", "c", "--collection", "d", "q"],
    ["search", "-k", "3", "-k4", "q"],
    ["build", "--dim", "8", "--dim=16"],
    ["train", "--out", "a", "--method", "pca", "--out", "b"],
])  # fmt: skip
def test_an_option_given_twice_is_refused_not_silently_overridden(tmp_path, args):
    run_probe(args, tmp_path, "is given 2 times; give it once")


def test_bench_config_paths_expand_the_home_folder(tmp_path, monkeypatch):
    from smec_index.bench.sweep import read_config

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "b.toml").write_text('out = "~/r.jsonl"\nworkdir = "~/work"\n')
    values = read_config(tmp_path / "b.toml")
    assert values["out"] == str(tmp_path / "home" / "r.jsonl")
    assert values["workdir"] == str(tmp_path / "home" / "work")


# -- the eleventh sweep (779 new probes): its faults --------------------------------------


def test_a_file_size_limit_is_one_line(tmp_path):
    import resource
    import subprocess
    import sys

    ds = _dataset(tmp_path)
    _ok("train", "--dataset", ds, "--method", "pca", "--dims", 8, "--out", tmp_path / "art",
        "--quiet")  # fmt: skip
    limit = lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (8192, 8192))  # noqa: E731
    for backend in ("faiss", "milvus"):
        done = subprocess.run([sys.executable, "-m", "smec_index.cli", "build", "--dataset",
                               str(ds), "--artifact", str(tmp_path / "art"), "--dim", "8",
                               "--backend", backend, "--data-dir", str(tmp_path / backend),
                               "--quiet"], capture_output=True, text=True,
                              preexec_fn=limit)  # fmt: skip
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1, done.stderr
        assert "file size limit (ulimit -f)" in lines[0], lines[0]
    # the failed milvus build's half-made database is still one milvus-lite opens
    _ok("build", "--dataset", ds, "--artifact", tmp_path / "art", "--dim", 8, "--backend",
        "milvus", "--data-dir", tmp_path / "milvus", "--quiet")  # fmt: skip


def test_parquet_ids_that_are_not_text_or_numbers_are_refused(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from smec_index.data import load_parquet

    table = pa.table({"id": pa.array([b"d0", b"d1"]), "vector": [[1.0, 0.0], [0.0, 1.0]]})
    pq.write_table(table, tmp_path / "c.parquet")
    with pytest.raises(SmecError, match="column 'id' is binary; ids are text or whole numbers"):
        load_parquet(tmp_path / "c.parquet")
    table = pa.table({"id": pa.array(["d0", "d1"]).dictionary_encode(),
                      "vector": [[1.0, 0.0], [0.0, 1.0]]})  # fmt: skip
    pq.write_table(table, tmp_path / "d.parquet")
    assert load_parquet(tmp_path / "d.parquet").ids == ["d0", "d1"]


@pytest.mark.parametrize("vectors", [np.full((30, 16), np.nan, np.float32),
                                     np.ones((30, 16), np.complex64), np.ones(16, np.float32),
                                     [[1.0] * 16] * 30])  # fmt: skip
def test_fit_checks_embeddings_built_in_python(vectors):
    from smec_index.compressors import make_compressor
    from smec_index.data import Embeddings, RetrievalData

    with pytest.raises(SmecError, match="NaN or inf|2-D real numeric|2-D numpy array"):
        ids = [f"d{i}" for i in range(30)]
        data = RetrievalData(Embeddings(ids, vectors), Embeddings(ids, vectors))
        make_compressor("pca", [4], progress=False).fit(data)




@pytest.mark.parametrize("filled", BACKENDS, indirect=True)
def test_an_iteration_whose_collection_was_dropped_says_so(filled):
    connector, _ = filled
    pages = connector.iterate("t", 5)
    next(pages)
    connector.drop("t")
    with pytest.raises(SmecError, match="was dropped while it was being iterated"):
        list(pages)


@pytest.mark.parametrize("backend", ["faiss", "hnswlib"])
def test_an_index_file_of_another_size_than_its_ids_is_named_unreadable(tmp_path, backend):
    import shutil

    for name, n in (("c", 50), ("other", 10)):
        with open_connector(backend, data_dir=tmp_path) as connector:
            connector.create(name, IndexSpec(4, index="hnsw"))
            connector.add(name, [f"{name}{i}" for i in range(n)],
                          np.random.default_rng(n).random((n, 4), np.float32))  # fmt: skip
    root = tmp_path / backend
    (mine,) = [p for p in (root / "c").iterdir() if p.name.startswith("index-")]
    (theirs,) = [p for p in (root / "other").iterdir() if p.name.startswith("index-")]
    shutil.copyfile(theirs, mine)  # the wrong backup restored
    with open_connector(backend, data_dir=tmp_path) as connector:
        with pytest.raises(SmecError, match="its index file holds 10 vectors for 50 ids"):
            connector.count("c")


@pytest.mark.slow
def test_migrate_odd_sources_and_resumes(tmp_path):
    import json

    from qdrant_client import QdrantClient, models

    from smec_index import Projection

    client = QdrantClient(path=str(tmp_path / "q"))
    client.create_collection("docs", vectors_config=models.VectorParams(
        size=32, distance=models.Distance.COSINE))  # fmt: skip
    client.create_collection("dot", vectors_config=models.VectorParams(
        size=32, distance=models.Distance.DOT))  # fmt: skip
    rng = np.random.default_rng(0)
    for name, scale in (("docs", 1.0), ("dot", 5.0)):
        client.upsert(name, models.Batch(ids=list(range(200)), vectors=(
            rng.standard_normal((200, 32)) * scale).tolist()))  # fmt: skip
    client.close()
    common = ["migrate", "--backend", "qdrant", "--path", tmp_path / "q", "--min-recall", 0,
              "--data-dir", tmp_path / "d", "--quiet"]  # fmt: skip
    # a Dot source over vectors that are not unit length: refused up front, naming why
    run_probe([*common, "--collection", "dot", "--dim", 8], tmp_path,
              "ranks by ip over vectors that are not unit length", output=tmp_path / "d")
    # an alias two migrations switched in turn: Projection.load follows the last switch
    _ok(*common, "--collection", "docs", "--dim", 8, "--alias", "app")
    _ok(*common, "--collection", "docs", "--dim", 16, "--alias", "app")
    assert Projection.load("app", tmp_path / "d").dims == [16]
    # a copy whose creation failed before a point was written: the same command starts it
    state = json.loads(_ok(*common, "--collection", "docs", "--dim", 4, "--json"))
    client = QdrantClient(path=str(tmp_path / "q"))
    client.delete_collection(state["target"])
    client.close()
    progress = next((tmp_path / "d" / "migrations").rglob("*docs_4*.json"))
    progress.write_text(json.dumps({**json.loads(progress.read_text()), "written": 0,
                                    "done": False}))  # fmt: skip
    assert json.loads(_ok(*common, "--collection", "docs", "--dim", 4, "--json"))["verified"]


@pytest.mark.slow
def test_a_migrated_milvus_ivf_copy_prints_nothing_of_faiss(tmp_path):
    import subprocess
    import sys

    make = f"""
import numpy as np
from pymilvus import MilvusClient, DataType
c = MilvusClient({str(tmp_path / "src.db")!r})
s = c.create_schema(auto_id=False); s.add_field("id", DataType.INT64, is_primary=True)
s.add_field("v", DataType.FLOAT_VECTOR, dim=32)
i = c.prepare_index_params(); i.add_index("v", index_type="IVF_FLAT", metric_type="COSINE",
                                           params={{"nlist": 16}})
c.create_collection("iv", schema=s, index_params=i)
v = np.random.default_rng(0).normal(size=(300, 32))
c.insert("iv", [{{"id": k, "v": v[k].tolist()}} for k in range(300)]); c.flush("iv"); c.close()
"""
    subprocess.run([sys.executable, "-c", make], check=True, capture_output=True)
    done = subprocess.run([sys.executable, "-m", "smec_index.cli", "migrate", "--backend",
                           "milvus", "--uri", str(tmp_path / "src.db"), "--collection", "iv",
                           "--dim", "8", "--min-recall", "0", "--data-dir", str(tmp_path / "d"),
                           "--quiet"], capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0 and done.stderr == "", done.stderr


# -- the twelfth sweep (API and migrations): its faults --------------------------------------


@pytest.mark.slow
def test_one_alias_name_in_two_places_stays_ambiguous(tmp_path):
    from smec_index import Projection

    for place in ("a", "b"):
        source = qdrant_source(tmp_path / place, n=120, dim=16)
        _ok("migrate", "--backend", "qdrant", "--path", source, "--collection", "docs", "--dim",
            8, "--alias", "live", "--min-recall", 0, "--data-dir", tmp_path / "d", "--quiet")
    # the last switch of *another* app's alias must never hand this app its projection
    with pytest.raises(SmecError, match="2 collections of that name"):
        Projection.load("live", tmp_path / "d")


def test_qdrant_searches_racing_writes_map_every_hit(tmp_path):
    import threading

    rng = np.random.default_rng(0)
    with open_connector("qdrant", data_dir=tmp_path) as connector:
        connector.create("c", IndexSpec(8, index="flat"))
        connector.add("c", [f"s{i}" for i in range(100)], rng.random((100, 8), np.float32))
        searcher, errors, stop = connector.searcher("c"), [], threading.Event()

        def read():
            while not stop.is_set():
                try:
                    searcher.search(rng.random((1, 8), np.float32), 3)
                except Exception as exc:  # noqa: BLE001 - the probe records whatever escapes
                    errors.append(repr(exc))
                    return

        reader = threading.Thread(target=read)
        reader.start()
        for j in range(40):
            connector.add("c", [f"u{j}_{i}" for i in range(50)], rng.random((50, 8), np.float32))
        stop.set()
        reader.join()
        assert errors == []
        ids, _ = connector.searcher("c").search(rng.random((1, 8), np.float32), 3)
        assert all(ids[0])


def test_a_milvus_searcher_refuses_once_its_collection_was_dropped(tmp_path):
    with open_connector("milvus", uri=str(tmp_path / "m.db")) as connector:
        connector.create("a", IndexSpec(4, index="flat"))
        connector.add("a", ["old"], np.ones((1, 4), np.float32))
        searcher = connector.searcher("a")
        connector.drop("a")
        connector.create("a", IndexSpec(4, index="flat"))
        connector.add("a", ["brand_new"], np.ones((1, 4), np.float32))
        with pytest.raises(SmecError, match="was dropped after this searcher opened it"):
            searcher.search(np.ones((1, 4), np.float32), 3)


def test_data_dirs_that_are_files_or_missing_are_one_line_and_make_nothing(tmp_path):
    from smec_index.index import CompressedIndex

    (tmp_path / "notes.txt").write_text("the user's file\n")
    for backend in BACKENDS:
        with pytest.raises(SmecError, match="is a file, not a directory"):
            open_connector(backend, data_dir=tmp_path / "notes.txt")
        with pytest.raises(SmecError, match="no data directory"):
            CompressedIndex.open(backend, "docs", tmp_path / "typo")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    (tmp_path / "d").mkdir()
    with pytest.raises(SmecError, match="no milvus-lite database at"):
        CompressedIndex.open("milvus", "docs", tmp_path / "d")
    assert list((tmp_path / "d").iterdir()) == []


def test_qdrant_edge_engine_errors_are_one_line(tmp_path):
    import json
    import shutil

    with open_connector("qdrant", data_dir=tmp_path) as connector:
        connector.create("c", IndexSpec(8, index="flat"))
        connector.add("c", [f"p{i}" for i in range(20)], np.ones((20, 8), np.float32))
    spec = tmp_path / "qdrant" / "c" / "index_spec.json"
    spec.write_text(json.dumps({**json.loads(spec.read_text()), "dim": 16}))
    with open_connector("qdrant", data_dir=tmp_path) as connector:
        with pytest.raises(SmecError, match="not 16 numbers each"):
            connector.get("c", ["p1"])
        with pytest.raises(SmecError, match="Qdrant could not search collection 'c'"):
            connector.search("c", np.ones((1, 16), np.float32), 3)
    with open_connector("qdrant", data_dir=tmp_path / "e") as connector:
        connector.create("c", IndexSpec(8, index="hnsw"))
        connector.add("c", [f"d{i}" for i in range(100)], np.random.default_rng(0).random(
            (100, 8), np.float32))  # fmt: skip
        connector.flush("c")
        shutil.rmtree(tmp_path / "e")
        with pytest.raises(SmecError, match="Qdrant could not write collection 'c'"):
            connector.add("c", ["x"], np.ones((1, 8), np.float32))


@pytest.mark.parametrize("method", ["pca", "truncate", "smec"])
def test_transform_of_an_unfitted_compressor_says_fit_first(method):
    from smec_index.compressors import make_compressor

    with pytest.raises(SmecError, match="compressor is not fitted: call fit"):
        make_compressor(method, [8]).transform(np.ones((1, 16), np.float32), 8)


@pytest.mark.slow
def test_a_copy_an_app_wrote_into_is_not_called_a_changed_source(tmp_path):
    from qdrant_client import QdrantClient, models

    source = qdrant_source(tmp_path, n=150, dim=16)
    common = ["migrate", "--backend", "qdrant", "--path", source, "--collection", "docs",
              "--dim", 8, "--min-recall", 0, "--alias", "live", "--data-dir", tmp_path / "d",
              "--quiet"]  # fmt: skip
    _ok(*common)
    client = QdrantClient(path=str(source))
    client.upsert("live", [models.PointStruct(id=999, vector=[0.1] * 8)])  # the app, via alias
    client.close()
    run_probe(common, tmp_path, "or written into the copy since (an app through its alias?)",
              output=tmp_path / "d")  # fmt: skip


# -- the twelfth sweep (command line): its faults ---------------------------------------------


@pytest.mark.slow
def test_an_in_place_run_resumes_with_the_same_command(tmp_path):
    qdrant_source(tmp_path, n=200, dim=16, collection="big", vector="text")
    common = ["migrate", "--backend", "qdrant", "--path", tmp_path / "q", "--collection", "big",
              "--in-place", "--dim", 8, "--min-recall", 0, "--data-dir", tmp_path / "d",
              "--quiet"]  # fmt: skip
    _ok(*common, "--using", "text")
    _ok(*common)  # "has 2 vectors ('text', 'text_8'); pick --using" before: not resumable


def test_bench_keeps_runs_of_other_embeddings_apart_and_judges_qrels(tmp_path):
    import json
    import shutil

    ds = _dataset(tmp_path)
    other = tmp_path / "other-model"
    shutil.copytree(next(ds.rglob("corpus.npy")).parent, other)
    np.save(other / "corpus.npy", np.load(other / "corpus.npy")[::-1].copy())
    args = ["bench", "--dataset", ds, "--methods", "none", "--backends", "faiss", "--index",
            "flat", "--latency-queries", 5, "--concurrency", 1, "--out", tmp_path / "r.jsonl"]
    _ok(*args)
    _ok(*args, "--embeddings", other)
    lines = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert len(lines) == 2 and lines[1]["embeddings"] == "other-model"
    # a dataset folder whose name starts with "synthetic" is a folder, not a malformed spec
    shutil.copytree(ds, tmp_path / "synthetic_set")
    _ok(*args[:2], tmp_path / "synthetic_set", *args[3:])


def test_open_file_limits_are_named():
    import errno

    from smec_index.connectors.storage import too_many_files

    assert too_many_files(OSError(errno.EMFILE, "Too many open files"))
    assert too_many_files(Exception("IO Error: os error 24"))
    assert not too_many_files(OSError(errno.ENOENT, "No such file"))


def test_a_summary_that_cannot_be_printed_is_not_called_lost_work(tmp_path):
    import subprocess
    import sys

    ds = _dataset(tmp_path)
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "smec_index.cli", "train", "--dataset",
                               str(ds), "--method", "pca", "--dims", "8", "--out",
                               str(tmp_path / "art")], stdout=full, stderr=subprocess.PIPE,
                              text=True)  # fmt: skip
    assert done.returncode == 2 and "could not be written to stdout" in done.stderr, done.stderr
    assert "nothing was kept" not in done.stderr and (tmp_path / "art" / "config.json").is_file()


@pytest.mark.slow
@pytest.mark.parametrize(
    "run", [["--dry-run"], ["--to-backend", "faiss", "--to", "g1", "--allow-schema-change"]]
)
def test_a_supervised_gate_whose_source_scores_zero_judges_nothing(tmp_path, run):
    """Sweep 30: a real run was refused only after the whole copy was written, and left it."""
    source = qdrant_source(tmp_path, n=200, dim=16)
    points = np.random.default_rng(0).standard_normal((200, 16))  # qdrant_source's points
    np.save(tmp_path / "q.npy", -points[:60].astype(np.float32))  # each opposite its judged one
    (tmp_path / "qids.txt").write_text("".join(f"q{i}\n" for i in range(60)))
    (tmp_path / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"q{i}\t{i}\t1\n" for i in range(60)))  # fmt: skip
    run_probe(["migrate", "--backend", "qdrant", "--path", source, "--collection", "docs",
               "--dim", 2, "--queries", tmp_path / "q.npy", "--query-ids", tmp_path / "qids.txt",
               "--qrels", tmp_path / "qrels.tsv", "--data-dir", tmp_path / "d", *run,
               "--quiet"],
              tmp_path, "cannot judge a copy")  # fmt: skip


# -- the thirteenth sweep (API side): its faults ----------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_thirteenth_sweeps_api_faults(tmp_path, backend):
    import torch

    from smec_index.compressors import make_compressor
    from smec_index.data import Embeddings
    from smec_index.index import CompressedIndex
    from smec_index.vectors import as_rows

    with pytest.raises(SmecError, match=r"smec_index\.data\.load_retrieval_data"):
        make_compressor("pca", [4]).fit(Embeddings(["a"], np.ones((1, 8), np.float32)))
    with pytest.raises(SmecError, match="complex numbers"):
        as_rows(torch.ones(2, 4, dtype=torch.complex64), 4)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(SmecError, match="is a file, not a directory"):
        open_connector(backend, data_dir=tmp_path / "notes.txt" / "smec-data")
    with _connector(backend, tmp_path / "d") as connector:
        index = CompressedIndex(connector, "docs", None, 4)
        kind = "hnsw" if backend == "hnswlib" else "flat"
        index.create({}, kind)
        index.add(["a", "b"], np.eye(2, 4, dtype=np.float32))
        index.search(np.eye(1, 4, dtype=np.float32), k=1)
        index.create({}, kind, overwrite=True)  # its own searcher goes with what it replaced
        index.add(["c"], np.eye(1, 4, dtype=np.float32))
        assert index.search(np.eye(1, 4, dtype=np.float32), k=1)[0] == [["c"]]
        with pytest.raises(SmecError, match="k must be a positive integer"):
            connector.searcher("docs").search(np.zeros((0, 4), np.float32), -1)
        with pytest.raises(SmecError, match="beyond \\+-1e15"):
            connector.add("docs", ["big"], np.array([[3e19, 4e19, 0, 0]], np.float32))


def test_a_qdrant_write_after_another_connectors_drop_is_refused(tmp_path):
    with open_connector("qdrant", data_dir=tmp_path) as first:
        first.create("b", IndexSpec(4, index="flat"))
        first.add("b", ["a"], np.ones((1, 4), np.float32))
        with open_connector("qdrant", data_dir=tmp_path) as second:
            second.drop("b")
        with pytest.raises(SmecError, match="was dropped \\(by another connector"):
            first.add("b", ["x"], np.ones((1, 4), np.float32))


# -- the thirteenth sweep (command line): its one fault ----------------------------------------


@pytest.mark.slow
def test_a_copy_migrate_wrote_in_qdrant_local_mode_is_read_with_mode_local(tmp_path):
    from pymilvus import DataType, MilvusClient

    client = MilvusClient(str(tmp_path / "src.db"))
    rows = np.random.default_rng(2).standard_normal((200, 16)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    schema = client.create_schema(auto_id=False)
    schema.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=64)
    schema.add_field("emb", DataType.FLOAT_VECTOR, dim=16)
    index = client.prepare_index_params()
    index.add_index("emb", index_type="FLAT", metric_type="COSINE")
    client.create_collection("docs", schema=schema, index_params=index)
    client.insert("docs", [{"pk": f"k{i}", "emb": row.tolist()} for i, row in enumerate(rows)])
    client.close()
    data = tmp_path / "sd"
    summary = json.loads(_ok(
        "migrate", "--backend", "milvus", "--uri", tmp_path / "src.db", "--collection", "docs",
        "--dim", 4, "--to-backend", "qdrant", "--to-mode", "local", "--to", "mq",
        "--allow-schema-change", "--data-dir", data, "--quiet", "--min-recall", 0, "--json"))
    assert summary["target_location"] == f"qdrant local mode in {data.resolve()}"
    where = ["--backend", "qdrant", "--data-dir", data, "--collection", "mq"]
    described = json.loads(_ok("info", *where, "--mode", "local", "--json"))
    assert (described["count"], described["dim"], described["manifest"]) == (200, 4, True)
    assert described["artifact"] == summary["artifact"]
    hits = json.loads(_ok("search", *where, "--mode", "local", "--like", "k1", "-k", 2, "--json"))
    assert hits["hits"][0]["id"] == "k1"
    # Without --mode (edge's store), and with the local folder as --path: what to pass instead.
    run_probe(["info", *where], tmp_path, "holds Qdrant's local-mode collections: pass --mode "
              "local", output=data)  # fmt: skip
    run_probe(["search", *where, "--like", "k1"], tmp_path, "pass --mode local", output=data)
    run_probe(["info", *where, "--path", data / "qdrant-local"], tmp_path,
              "pass --mode local instead of --path", output=data)
    for extra, says in ((["--mode", "local", "--url", "http://127.0.0.1:1"], "pass one of them"),
                        (["--mode", "lokal"], "--mode 'lokal': use edge"),
                        (["--mode", "local", "--path", data / "qdrant-local"], "pass one of")):
        run_probe(["info", *where, *extra], tmp_path, says, output=data)
    run_probe(["info", "--backend", "faiss", "--data-dir", data, "--collection", "mq", "--mode",
               "local"], tmp_path, "--mode does not apply to --backend faiss", output=data)


# -- the fourteenth sweep (API side): its faults ---------------------------------------------


def test_sparse_and_meta_tensors_are_one_line(tmp_path):
    import torch

    from smec_index.vectors import as_rows

    rows = torch.ones(2, 8)
    for tensor, says in ((rows.to_sparse(), "sparse_coo tensor; pass a dense one"),
                         (torch.empty(2, 8, device="meta"), "meta tensor, which holds no")):
        with pytest.raises(SmecError, match=says):
            as_rows(tensor, 8)
    assert as_rows(rows.requires_grad_(), 8)[0].shape == (2, 8)  # a dense one still reads


def test_a_loaded_compressors_transform_checks_its_input(tmp_path):
    from smec_index.compressors import load_compressor, make_compressor
    from smec_index.synthetic import synthetic_retrieval

    data, _ = synthetic_retrieval(200, 20, 16, 4)
    make_compressor("pca", [4]).fit(data).save(tmp_path / "art")
    compressor = load_compressor(tmp_path / "art")
    rows = np.ones((2, 16), np.float32)
    rows[0, 3] = np.nan
    huge = np.full((1, 16), 1e39)
    text = np.array([["a"] * 16])
    with np.errstate(all="raise"):  # no RuntimeWarning may be printed on the way
        for bad, says in ((rows, "NaN or inf"), (huge, "NaN or inf"), (text, "<U1 values"),
                          (np.ones(16), "are one vector, not rows")):
            with pytest.raises(SmecError, match=says):
                compressor.transform(bad, 4)
    assert np.isfinite(compressor.transform(np.ones((3, 16)), 4)).all()


@pytest.mark.parametrize("form", ["npy", "parquet"])
def test_float64_embeddings_beyond_float32_are_named_without_a_warning(tmp_path, form):
    from smec_index.data import load_npy, load_parquet

    rows = np.ones((3, 4))
    rows[1, 2] = 1e39  # finite in float64, inf once cast
    if form == "npy":
        np.save(tmp_path / "e.npy", rows)
        (tmp_path / "ids.txt").write_text("a\nb\nc\n")
        load = lambda: load_npy(tmp_path / "e.npy", tmp_path / "ids.txt")  # noqa: E731
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"id": ["a", "b", "c"], "vector": rows.tolist()}),
                       tmp_path / "e.parquet")  # fmt: skip
        load = lambda: load_parquet(tmp_path / "e.parquet")  # noqa: E731
    with np.errstate(all="raise"), pytest.raises(SmecError, match=r"row 1 \(id 'b'\) holds "
                                                 "values beyond"):  # fmt: skip
        load()


def test_datasets_whose_names_share_a_slug_keep_their_own_plots():
    from smec_index.bench.report import file_slugs

    slugs = file_slugs(["syn.a", "syn-a", "scifact", "synthetic:2000x64"])
    assert len(set(slugs.values())) == 4
    assert slugs["syn-a"] == "syn-a" and slugs["scifact"] == "scifact"
    assert slugs["synthetic:2000x64"] == "synthetic-2000x64"  # no clash: the plain slug
    assert slugs["syn.a"].startswith("syn-a-")


@pytest.mark.slow
def test_in_place_of_a_vector_whose_name_is_not_ascii(tmp_path):
    from qdrant_client import QdrantClient

    qdrant_source(tmp_path, n=120, dim=16, vector="vé.ctor 1")
    common = ["migrate", "--backend", "qdrant", "--path", tmp_path / "q", "--collection", "docs",
              "--in-place", "--dim", 8, "--min-recall", 0, "--data-dir", tmp_path / "d",
              "--quiet"]  # fmt: skip
    run_probe([*common, "--to", "vé_8"], tmp_path, "--to: the new vector's name 'vé_8': use "
              "ASCII", output=tmp_path / "d")  # fmt: skip
    _ok(*common)  # its own default name was refused as a "collection name" before
    client = QdrantClient(path=str(tmp_path / "q"))
    vectors = client.get_collection("docs").config.params.vectors
    client.close()
    assert set(vectors) == {"vé.ctor 1", "v__ctor_1_8"}


def test_paths_of_other_types_and_reserved_alias_names_are_one_line(tmp_path):
    from smec_index import Projection
    from smec_index.compressors import load_compressor
    from smec_index.data import load_npy, load_parquet, load_retrieval_data

    calls = (Projection.load, load_parquet, load_retrieval_data, load_compressor,
             lambda p: load_npy(p, "ids.txt"),
             lambda p: open_connector("faiss", data_dir=p or 0.5))  # None: the default dir
    for call in calls:
        for bad in (bytes(tmp_path / "x"), 5, None):
            with pytest.raises(SmecError, match="a path is a str or a pathlib.Path, got"):
                call(bad)
    with _connector("faiss", tmp_path) as connector:
        connector.create("t", IndexSpec(dim=8, index="flat"))
        with pytest.raises(SmecError, match="reserved for smec-index"):
            connector.set_alias("t__b0123456789", "t")


# -- the fourteenth sweep (command line): its faults --------------------------------------------


def test_using_a_sparse_vector_says_it_is_sparse(tmp_path):
    source = qdrant_source(tmp_path, sparse=True)
    run_probe(["migrate", "--backend", "qdrant", "--path", source, "--collection", "docs", "--dim",
               8, "--using", "s", "--dry-run", "--data-dir", tmp_path / "d"], tmp_path,
              "--using s: a sparse vector of collection 'docs'; it has no single dense vector")
    source = qdrant_source(tmp_path / "dense", n=20, dim=16)
    run_probe(["migrate", "--backend", "qdrant", "--path", source, "--collection", "docs", "--dim",
               8, "--using", "nope", "--dry-run", "--data-dir", tmp_path / "d"], tmp_path,
              "--using nope: no vector in collection 'docs'; pass one of its dense vectors: the "
              "unnamed vector")  # fmt: skip


@pytest.mark.parametrize("to_backend", ["qdrant", "faiss"])
def test_a_shard_smec_index_built_is_sent_to_build_not_around_in_a_loop(built, tmp_path,
                                                                        to_backend):  # fmt: skip
    shard = next((built / "d" / "qdrant").glob("c8__b*"))
    run_probe(["migrate", "--backend", "qdrant", "--path", shard, "--collection", "shard",
               "--dim", 4, "--to-backend", to_backend, "--allow-schema-change", "--data-dir",
               tmp_path / "m", "--quiet"], built,
              "build it again at the new dim (`smec-index build --dim N`", output=tmp_path)


def test_a_qdrant_edge_shard_source_is_read_without_a_byte_changing(tmp_path):
    import fcntl
    import os

    from tests.probes import snapshot
    from tests.test_migrate import edge_source

    (tmp_path / "src").mkdir()
    edge_source(tmp_path / "src", 300)
    before = snapshot(tmp_path / "src")
    common = ["migrate", "--backend", "qdrant", "--path", tmp_path / "src", "--collection",
              "docs", "--dim", 8, "--to-backend", "qdrant", "--allow-schema-change",
              "--min-recall", 0, "--data-dir", tmp_path / "d", "--quiet"]  # fmt: skip
    _ok(*common, "--dry-run")
    _ok(*common)  # opening a shard rewrote its edge_config.json and payload journal before
    assert snapshot(tmp_path / "src") == before
    with open_connector("qdrant", data_dir=tmp_path / "d") as connector:
        assert connector.count("docs_8") == 300
    assert not list(Path(tempfile.gettempdir()).glob("smec-shard-*"))  # its copy is gone
    handle = os.open(tmp_path / "src" / "docs" / "wal", os.O_RDONLY)  # as a writer's lock
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        run_probe([*common, "--restart"], tmp_path,
                  "another process, or a qdrant-edge shard this process opened, has it open",
                  output=tmp_path / "d")
    finally:
        os.close(handle)


# -- the fifteenth sweep (API side): its faults ------------------------------------------------


@pytest.mark.parametrize("filled", BACKENDS, indirect=True)
def test_unordered_ids_and_payload_keys_that_collide_are_refused(filled):
    connector, rows = filled
    for ids, says in (({"x", "y"}, "ids as a set have no order"),
                      ({"x": 0, "y": 1}.keys(), "have no order")):
        with pytest.raises(SmecError, match=says):
            connector.add("t", ids, rows[:2])
    with pytest.raises(SmecError, match="two keys are both '1' once written as JSON"):
        connector.add("t", ["x"], rows[:1], [{1: "int key", "1": "str key"}])
    with pytest.raises(SmecError, match="two keys are both 'true'"):
        connector.add("t", ["x"], rows[:1], [{"deep": {True: 1, "true": 2}}])
    assert connector.count("t") == 20  # nothing was written
    assert connector.get("t", {"1", "2"}).ids in (["1", "2"], ["2", "1"])  # get: any order


@pytest.mark.parametrize("backend", BACKENDS)
def test_index_specs_of_wrong_kinds_and_sizes_are_one_line(tmp_path, backend):
    for make, says in ((lambda: IndexSpec(dim=2**40), "engines store at most 65536 dims"),
                       (lambda: IndexSpec(dim=8, params=None), "params None: pass a dict"),
                       (lambda: IndexSpec(dim=8, params="ab"), "params 'ab': pass a dict"),
                       (lambda: IndexSpec(dim=8, params={1: 2}), "pass a dict of parameter"),
                       (lambda: IndexSpec(dim=8, metric=["l2"]), "unknown metric"),
                       (lambda: IndexSpec(dim=8, index=None), "is not a name")):
        with pytest.raises(SmecError, match=says):
            make()
    with _connector(backend, tmp_path) as connector:
        with pytest.raises(SmecError, match="spec must be an IndexSpec, got dict"):
            connector.create("x", {"dim": 8})
        if backend == "milvus":
            with pytest.raises(SmecError, match="Milvus stores at most 32,768 dims"):
                connector.create("x", IndexSpec(dim=40000, index="flat"))
        assert connector.collections() == []


def test_constructors_refuse_parts_of_other_types():
    from smec_index.data import Embeddings, RetrievalData
    from smec_index.index import CompressedIndex

    rows = np.ones((3, 4), np.float32)
    for make, says in ((lambda: Embeddings(None, rows), "ids as a list of strings, got NoneType"),
                       (lambda: Embeddings("abc", rows), "got str"),
                       (lambda: Embeddings(["a", "b"], rows), "2 ids for 3 vectors"),
                       (lambda: Embeddings(["a", "b", 3], rows), "id 3 is a int"),
                       (lambda: Embeddings(["a", "b", "a"], rows), "'a' appears twice"),
                       (lambda: RetrievalData(Embeddings(["a", "b", "c"], rows), None),
                        "takes queries as Embeddings"),
                       (lambda: Embeddings(["a", "b", "c"], rows).take(["a", "z"]), "no id 'z'"),
                       (lambda: CompressedIndex(None, "c", None, 8), "takes a connector")):
        with pytest.raises(SmecError, match=says):
            make()


# -- the fifteenth sweep (command line): its faults ---------------------------------------------


def test_float16_embeddings_load_without_a_warning(tmp_path):
    from smec_index.data import load_npy

    np.save(tmp_path / "e.npy", np.eye(4, dtype=np.float16))
    (tmp_path / "ids.txt").write_text("a\nb\nc\nd\n")
    with np.errstate(all="raise"):  # 1e15 compared in float16 overflowed (a RuntimeWarning)
        assert load_npy(tmp_path / "e.npy", tmp_path / "ids.txt").vectors.dtype == np.float32


def test_advice_names_no_flag_the_command_lacks():
    from smec_index.compressors.simple import PCA
    from smec_index.data import Embeddings, RetrievalData
    from smec_index.migration.supervised import split

    same = Embeddings([f"d{i}" for i in range(20)], np.ones((20, 8), np.float32))
    with pytest.raises(SmecError, match="same vector") as refused:
        PCA([4]).fit(RetrievalData(same, same))
    assert "--method" not in str(refused.value)  # migrate, build and bench have none
    few = {f"q{i}": {"d1": int(i < 2)} for i in range(40)}  # 2 with a relevant document
    with pytest.raises(SmecError, match="leave out --queries and --qrels") as refused:
        split(few)
    assert "--unsupervised" not in str(refused.value)


# -- the sixteenth sweep (command line): its faults ---------------------------------------------


@pytest.mark.slow
def test_search_prints_titles_of_any_json_type_and_names_a_model_of_another_width(
    built, tmp_path
):
    from qdrant_client import QdrantClient, models

    from smec_index.embed import bundled_model_path

    client = QdrantClient(path=str(tmp_path / "q"))
    client.create_collection("docs", vectors_config=models.VectorParams(
        size=16, distance=models.Distance.COSINE))  # fmt: skip
    titles = [7, None, True, {"a": 1}, ["x", "y"], 2.5] * 10
    client.upsert("docs", [models.PointStruct(id=i, vector=np.random.default_rng(i)
                  .standard_normal(16).tolist(), payload={"title": t})
                  for i, t in enumerate(titles)])  # fmt: skip
    client.close()
    _ok("migrate", "--backend", "qdrant", "--path", tmp_path / "q", "--collection", "docs",
        "--dim", 8, "--to-backend", "faiss", "--allow-schema-change", "--min-recall", 0,
        "--data-dir", tmp_path / "d", "--quiet")  # fmt: skip
    lines = _ok("search", "--backend", "faiss", "--data-dir", tmp_path / "d", "--collection",
                "docs_8", "--like", "3", "-k", 60).splitlines()  # fmt: skip
    assert len(lines) == 60 and lines[0].split()[2:] == ["3", '{"a":', "1}"]
    run_probe(["search", "--backend", "qdrant", "--data-dir", built / "d", "--collection", "c8",
               "cells", "--model", bundled_model_path()], built,
              "embeds 384-d vectors, but 'c8' was built from 16-d embeddings: pass --model DIR",
              output=built / "d")  # fmt: skip


def test_payloads_holding_nan_are_the_same_payloads():
    from smec_index.migration.verify import same_values

    nan = float("nan")
    assert same_values([{"s": nan, "t": [1, nan]}], [{"s": nan, "t": [1, nan]}])
    assert not same_values([{"s": nan}], [{"s": 1.0}])
    assert not same_values([{"s": 1, "t": 2}], [{"s": 1}])
    assert same_values({"v": np.array([1.0, 2.0])}, {"v": np.array([1.0, 2.0])})


@pytest.mark.slow
def test_a_milvus_source_with_nan_in_a_double_field_migrates_and_switches(tmp_path):
    from pymilvus import DataType, MilvusClient

    client = MilvusClient(str(tmp_path / "src.db"))
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("v", DataType.FLOAT_VECTOR, dim=16)
    schema.add_field("score", DataType.DOUBLE)
    index = client.prepare_index_params()
    index.add_index("v", index_type="FLAT", metric_type="COSINE")
    client.create_collection("docs", schema=schema, index_params=index)
    rows = np.random.default_rng(4).standard_normal((60, 16)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    client.insert("docs", [{"id": i, "v": rows[i].tolist(), "score": [float("nan"), 1.5][i % 2]}
                           for i in range(60)])  # fmt: skip
    client.close()
    summary = json.loads(_ok("migrate", "--backend", "milvus", "--uri", tmp_path / "src.db",
                             "--collection", "docs", "--dim", 8, "--alias", "app", "--min-recall",
                             0, "--data-dir", tmp_path / "d", "--quiet", "--json"))  # fmt: skip
    assert summary["verified"] and summary["alias"] == "app"  # "payloads differ" before


# -- the sixteenth sweep (API side and migrations): its faults ----------------------------------


@pytest.mark.slow
def test_small_and_long_named_sources_get_a_fix_that_works(tmp_path):
    from qdrant_client import QdrantClient, models

    source = qdrant_source(tmp_path, n=5, dim=16)
    line = run_probe(["migrate", "--backend", "qdrant", "--path", source, "--collection", "docs",
                      "--dim", 8, "--data-dir", tmp_path / "d"], tmp_path,
                     "would get 5 (all the source holds): pick a --dim below 5",
                     output=tmp_path / "d")  # fmt: skip
    assert "--fit-rows" not in line  # the fit already had every point
    long = "c" * 180
    client = QdrantClient(path=str(tmp_path / "long"))
    client.create_collection(long, vectors_config=models.VectorParams(
        size=16, distance=models.Distance.COSINE))  # fmt: skip
    client.upsert(long, models.Batch(ids=list(range(50)), vectors=np.random.default_rng(0)
                  .standard_normal((50, 16)).tolist()))  # fmt: skip
    client.close()
    summary = json.loads(_ok("migrate", "--backend", "qdrant", "--path", tmp_path / "long",
                             "--collection", long, "--dim", 8, "--min-recall", 0, "--data-dir",
                             tmp_path / "d", "--quiet", "--json"))  # "File name too long" before
    assert summary["target"] == f"{long}_8" and summary["verified"]
    from smec_index.migration.runner import default_target

    name = default_target("c" * 255, 8)
    assert len(name) == 200 and name.endswith("_8") and name != default_target("c" * 254, 8)


@pytest.mark.slow
@pytest.mark.parametrize("value, says", [
    ("hello", "holds a JSON cell that pymilvus cannot decode"),  # no client reads it again
    ("42", "a JSON field holds a bare number or true/false"),  # read as 42, never written
])  # fmt: skip
def test_milvus_json_cells_pymilvus_cannot_carry_are_named(tmp_path, value, says):
    from pymilvus import DataType, MilvusClient

    client = MilvusClient(str(tmp_path / "src.db"))
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("pk", DataType.INT64, is_primary=True)
    schema.add_field("emb", DataType.FLOAT_VECTOR, dim=16)
    schema.add_field("j", DataType.JSON)
    index = client.prepare_index_params()
    index.add_index("emb", index_type="FLAT", metric_type="COSINE")
    client.create_collection("docs", schema=schema, index_params=index)
    rows = np.random.default_rng(0).standard_normal((60, 16)).astype(np.float32)
    client.insert("docs", [{"pk": i, "emb": rows[i].tolist(), "j": json.dumps(value)}
                           for i in range(60)])  # fmt: skip
    client.close()
    done = CliRunner().invoke(main, ["migrate", "--backend", "milvus", "--uri",
                                     str(tmp_path / "src.db"), "--collection", "docs", "--dim",
                                     "8", "--min-recall", "0", "--data-dir",
                                     str(tmp_path / "d"), "--quiet"])  # fmt: skip
    lines = done.output.strip().splitlines()  # the copy beside it may exist, empty: resumable
    assert done.exit_code == 2 and len(lines) == 1 and says in lines[0], done.output


# -- the seventeenth sweep (API side): its faults -----------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_collection_made_again_by_another_connector_is_seen(tmp_path, backend):
    index = "hnsw" if backend == "hnswlib" else "flat"
    one, two = _connector(backend, tmp_path), _connector(backend, tmp_path)
    try:
        one.create("s", IndexSpec(dim=8, index=index))
        one.add("s", ["x"], np.ones((1, 8), np.float32))
        one.flush("s")
        searcher = one.searcher("s")
        two.create("s", IndexSpec(dim=16, index=index), overwrite=True)
        two.add("s", ["z"], np.ones((1, 16), np.float32))
        two.close()  # qdrant-edge lets one connector at a time open a shard
        with pytest.raises(SmecError, match="do not fit a 16-d collection"):
            one.add("s", ["w"], np.ones((1, 8), np.float32))  # a raw engine error before
        with pytest.raises(SmecError, match="dropped|made again"):
            searcher.search(np.ones((1, 8), np.float32), 1)  # qdrant-edge answered old points
        assert one.count("s") == 1 and one.spec("s").dim == 16
    finally:
        one.close()
        two.close()


@pytest.mark.parametrize("filled", ["milvus", "qdrant"], indirect=True)
def test_an_alias_switched_by_another_connector_is_followed(filled, tmp_path):
    connector, rows = filled
    connector.create("u", IndexSpec(dim=4, index="flat"))
    connector.add("u", ["only"], np.ones((1, 4), np.float32))
    assert connector.spec("al").dim == 8
    with _connector(connector.name, tmp_path) as other:
        other.set_alias("al", "u")
    assert connector.spec("al").dim == 4  # milvus kept its alias table: searched "t"
    assert connector.search("al", np.ones((1, 4), np.float32), 1)[0] == [["only"]]


def test_qdrant_local_mode_takes_threads_in_turn(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    with open_connector("qdrant", data_dir=tmp_path, mode="local") as connector:
        connector.create("t", IndexSpec(dim=8, index="flat"))
        rows = np.random.default_rng(0).random((200, 8), dtype=np.float32)

        def write(k: int) -> None:
            part = slice(50 * k, 50 * (k + 1))
            connector.add("t", [str(i) for i in range(200)][part], rows[part])

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(write, range(4)))  # sqlite3 errors and lost points before
        assert connector.count("t") == 200
        assert sorted(i for b in connector.iterate("t", 64) for i in b.ids) == sorted(
            str(i) for i in range(200))  # fmt: skip


def test_server_addresses_and_keys_of_other_types_are_one_line(tmp_path):
    from smec_index.index import CompressedIndex

    for backend, options, says in (("qdrant", {"url": 1234}, "url must be a server address"),
                                   ("qdrant", {"api_key": 123}, "api_key must be text"),
                                   ("milvus", {"uri": 123}, "uri must be a server address"),
                                   ("milvus", {"token": ["a"]}, "token must be text")):
        with pytest.raises(SmecError, match=says):
            open_connector(backend, **options)
        with pytest.raises(SmecError, match=says):
            CompressedIndex.open(backend, "c", tmp_path, **options)
    with open_connector("milvus", uri=tmp_path / "m.db") as connector:  # a Path, as data_dir
        assert connector.collections() == []


# -- the seventeenth sweep (command line): its faults -------------------------------------------


def test_the_bench_summary_never_cuts_a_name_into_another():
    from smec_index.bench.report import summary_lines

    run = {"method": "none", "dim": 16, "backend": "faiss", "index": "flat",
           "encoding": "float32", "ef_search": None, "ndcg@10": None, "recall@10": 1.0,
           "p50_ms": 0.1, "qps": 10.0, "index_bytes": 2**20}  # fmt: skip
    names = ["synthetic:300x16:rank16", "synthetic:300x16:rank10"]
    lines = summary_lines([{**run, "dataset": name} for name in names])
    assert [line.split()[0] for line in lines[1:]] == names  # both read "...:rank1" before
    long = summary_lines([{**run, "dataset": "d" * 80}])[1].split()[0]
    assert long.endswith("…") and len(long) == 48


@pytest.mark.slow
def test_an_alias_two_migrations_switched_is_described_by_the_last(tmp_path):
    source = qdrant_source(tmp_path, n=120, dim=32)
    common = ["migrate", "--backend", "qdrant", "--path", source, "--collection", "docs",
              "--alias", "live", "--min-recall", 0, "--data-dir", tmp_path / "d", "--quiet"]
    _ok(*common, "--dim", 16)
    _ok(*common, "--dim", 8)
    described = json.loads(_ok("info", "--backend", "qdrant", "--path", source, "--data-dir",
                               tmp_path / "d", "--collection", "live", "--json"))  # fmt: skip
    assert (described["alias_target"], described["dim"]) == ("docs_8", 8)  # docs_16 before


@pytest.mark.slow
def test_a_uint8_qdrant_vector_is_not_copied_into_a_uint8_vector_of_floats(tmp_path):
    from qdrant_client import QdrantClient, models

    client = QdrantClient(path=str(tmp_path / "q"))
    client.create_collection("docs", vectors_config={"a": models.VectorParams(
        size=16, distance=models.Distance.COSINE, datatype=models.Datatype.UINT8)})  # fmt: skip
    rows = np.random.default_rng(0).integers(0, 256, (80, 16))
    client.upsert("docs", models.Batch(ids=list(range(80)), vectors={"a": rows.tolist()}))
    client.close()
    common = ["migrate", "--backend", "qdrant", "--path", tmp_path / "q", "--collection", "docs",
              "--dim", 8, "--min-recall", 0, "--data-dir", tmp_path / "d", "--quiet"]
    run_probe([*common, "--dry-run"], tmp_path, "stores uint8 values, and a projection's are "
              "floats", output=tmp_path / "d")  # fmt: skip
    _ok(*common, "--to-backend", "faiss", "--allow-schema-change")  # as the message says
    with open_connector("faiss", data_dir=tmp_path / "d") as connector:
        assert connector.count("docs_8") == 80


def test_a_one_point_source_is_not_told_to_pick_a_dim_below_one(tmp_path):
    source = qdrant_source(tmp_path, n=1, dim=16)
    line = run_probe(["migrate", "--backend", "qdrant", "--path", source, "--collection",
                      "docs", "--dim", 8, "--data-dir", tmp_path / "d"], tmp_path,
                     "pass --artifact", output=tmp_path / "d")  # fmt: skip
    assert "below 1" not in line


# -- the eighteenth sweep (API side): its faults ------------------------------------------------


@pytest.mark.parametrize("filled", BACKENDS, indirect=True)
def test_complex_vectors_are_refused_by_the_connector_too(filled):
    connector, rows = filled
    complex_rows = np.array([[1 + 5j] + [0] * 7])
    with np.errstate(all="raise"):  # ComplexWarning, and the imaginary part dropped, before
        with pytest.raises(SmecError, match="complex numbers"):
            connector.add("t", ["c"], complex_rows)
        with pytest.raises(SmecError, match="complex numbers"):
            connector.search("t", complex_rows, 3)
    assert connector.count("t") == 20


@pytest.mark.parametrize("backend", ["faiss", "hnswlib", "qdrant"])
def test_threads_creating_one_collection_make_it_once(tmp_path, backend):
    from concurrent.futures import ThreadPoolExecutor

    index = "hnsw" if backend == "hnswlib" else "flat"
    with _connector(backend, tmp_path) as connector:
        def make(k: int) -> str:
            try:
                connector.create("n", IndexSpec(dim=8, index=index))
            except SmecError as exc:
                return str(exc)
            connector.add("n", [f"p{i}" for i in range(10)], np.ones((10, 8), np.float32))
            return "made"

        with ThreadPoolExecutor(3) as pool:
            answers = list(pool.map(make, range(3)))
        assert answers.count("made") == 1, answers  # raw OSErrors, and two "made", before
        assert all("already exists" in a for a in answers if a != "made")
        assert connector.count("n") == 10


def test_take_of_one_string_is_refused():
    from smec_index.data import Embeddings

    embeddings = Embeddings(["1", "2", "12"], np.eye(3, dtype=np.float32))
    with pytest.raises(SmecError, match=r"got one string '12': pass \['12'\]"):
        embeddings.take("12")  # the rows of "1" and "2" before
    assert embeddings.take(["12"]).tolist() == [[0.0, 0.0, 1.0]]


# -- the eighteenth sweep (command line): its fault ---------------------------------------------


def test_report_keeps_runs_of_two_datasets_of_one_name_apart(tmp_path):
    from smec_index.bench.report import latest_runs, summary_lines, write_report

    run = {"method": "none", "dim": 16, "backend": "faiss", "index": "flat",
           "encoding": "float32", "ef_search": None, "ndcg@10": 0.5, "recall@10": 1.0,
           "p50_ms": 0.1, "qps": 10.0, "index_bytes": 2**20, "dataset": "ds"}  # fmt: skip
    first = {**run, "inputs": "aaaaaaaa11111111", "time": "2026-01-01T00:00:00"}
    again = {**first, "inputs": "aaaaaaaa11111111-artifact", "time": "2026-01-02T00:00:00"}
    other = {**run, "inputs": "bbbbbbbb22222222", "time": "2026-01-03T00:00:00"}
    assert latest_runs([first, again]) == [again]  # the same data measured again: the latest
    assert latest_runs([first, other]) == [first, other]  # other data: kept (dropped before)
    rows = summary_lines([first, other])[1:]
    assert [r.split()[:3] for r in rows] == [["ds", "(data", "aaaaaaaa)"],
                                             ["ds", "(data", "bbbbbbbb)"]]
    del write_report


@pytest.mark.slow
def test_report_of_one_dataset_with_other_embeddings_has_two_sections(tmp_path):
    import shutil

    ds = _dataset(tmp_path / "made")
    default = next(ds.rglob("corpus.npy")).parent
    other = shutil.copytree(default, tmp_path / "other")
    np.save(other / "corpus.npy", np.roll(np.load(other / "corpus.npy"), 1, axis=1))
    common = ["bench", "--dataset", ds, "--methods", "none", "--dims", 16, "--backends",
              "faiss", "--index", "flat", "--encodings", "float32", "--out", tmp_path / "r.jsonl"]
    _ok(*common)
    _ok(*common, "--embeddings", other)  # bench keeps both runs
    _ok("report", tmp_path / "r.jsonl", "--out", tmp_path / "rep")
    text = (tmp_path / "rep" / "report.md").read_text()
    assert text.count(f"## {ds.name} (data ") == 2, text[:400]  # one section, one run before
    assert "measured a setup again" not in text


# -- the nineteenth sweep (API side and migrations): its faults ---------------------------------


def _milvus_partitioned_source(path, ids, partition=None, metric="COSINE", scale=1.0):
    from pymilvus import DataType, MilvusClient

    client = MilvusClient(str(path))
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=64)
    schema.add_field("emb", DataType.FLOAT_VECTOR, dim=16)
    index = client.prepare_index_params()
    index.add_index("emb", index_type="FLAT", metric_type=metric)
    client.create_collection("docs", schema=schema, index_params=index)
    rows = np.random.default_rng(0).standard_normal((len(ids), 16)).astype(np.float32)
    rows = scale * rows / np.linalg.norm(rows, axis=1, keepdims=True)
    if partition is not None:
        client.create_partition("docs", partition)
    for n, point_id in enumerate(ids):
        place = partition if partition is not None and n == len(ids) - 1 else "_default"
        client.insert("docs", [{"pk": point_id, "emb": rows[n].tolist()}], partition_name=place)
    client.close()


@pytest.mark.slow
def test_a_refused_migration_into_a_new_milvus_lite_file_leaves_no_file(tmp_path):
    _milvus_partitioned_source(tmp_path / "src.db", [f"k{i}" for i in range(40)], metric="L2",
                               scale=20.0)  # fmt: skip
    run_probe(["migrate", "--backend", "milvus", "--uri", tmp_path / "src.db", "--collection",
               "docs", "--dim", 4, "--to-backend", "milvus", "--to-uri", tmp_path / "new.db",
               "--allow-schema-change", "--data-dir", tmp_path / "d", "--quiet"], tmp_path,
              "not unit length", output=tmp_path / "d")  # new.db was left behind before


@pytest.mark.slow
def test_a_point_past_the_first_batch_that_the_schema_cannot_hold_is_named(tmp_path):
    ids = [f"k{i:03d}" for i in range(200)] + ["tab\there"]
    _milvus_partitioned_source(tmp_path / "src.db", ids, partition="later")
    done = CliRunner().invoke(main, [str(a) for a in (
        "migrate", "--backend", "milvus", "--uri", tmp_path / "src.db", "--collection", "docs",
        "--dim", 4, "--to-backend", "milvus", "--to-uri", tmp_path / "new.db",
        "--allow-schema-change", "--min-recall", 0, "--data-dir", tmp_path / "d", "--quiet",
        "--batch-size", 50)])  # fmt: skip
    lines = done.output.strip().splitlines()
    assert done.exit_code == 2 and len(lines) == 1, done.output
    assert "no run can resume past it" in lines[0] and "run again to resume" not in lines[0]
    with open_connector("milvus", uri=str(tmp_path / "new.db")) as connector:
        assert connector.collections() == []  # no half-written copy left


# -- the nineteenth sweep (command line): its fault ---------------------------------------------


@pytest.mark.slow
def test_a_copy_beside_a_qdrant_folder_is_pointed_to_and_reads_make_nothing(tmp_path):
    source = qdrant_source(tmp_path, n=120, dim=16)
    _ok("migrate", "--backend", "qdrant", "--path", source, "--collection", "docs", "--dim", 8,
        "--min-recall", 0, "--data-dir", tmp_path / "d", "--quiet")  # fmt: skip
    where = ["--backend", "qdrant", "--data-dir", tmp_path / "d", "--collection", "docs_8"]
    advice = (f"copy `migrate` made beside its source at {source}: `smec-index info --backend "
              "qdrant --path")  # fmt: skip
    for args in (["search", *where, "--mode", "local", "--like", "1"],
                 ["info", *where, "--mode", "local"], ["search", *where, "--like", "1"],
                 ["info", *where]):
        line = run_probe(args, tmp_path, advice, output=None)  # made qdrant-local before
        assert "smec-index build" not in line and "--mode local" not in line
