"""Hostile input, the sixth sweep's finds (issue 23): 425 new probes (106 of the Python API)
after the fifth sweep's 25 faults were fixed; 21 bad answers in 7 faults. One probe per
fault; each failed before its fix.
"""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from smec_index.cli import main
from smec_index.errors import SmecError
from tests.probes import run_probe
from tests.test_probes_hostile import _dataset


def _ok(*args) -> str:
    done = CliRunner().invoke(main, [str(a) for a in args])
    assert done.exit_code == 0, done.output
    return done.output


BAD_VECTORS = [
    (np.full((1, 16), np.nan, np.float32), "NaN or inf"),
    (np.full((1, 16), np.inf, np.float32), "NaN or inf"),
    ([[1.0] * 16, [1.0] * 15], "not a numeric array"),
    ([["a"] * 16], "not a numeric array"),
    ({"x": 1}, "not a numeric array"),
    (np.ones((1, 16), np.complex64), "complex"),
    (np.ones((2, 3), np.float32), "of shape (2, 3)"),
]


@pytest.mark.parametrize("backend", ["faiss", "hnswlib", "qdrant"])
@pytest.mark.parametrize(("vectors", "fragment"), BAD_VECTORS)
def test_public_entry_points_check_their_vectors(built, backend, vectors, fragment):
    from smec_index import Projection
    from smec_index.index import CompressedIndex

    index = CompressedIndex.open(backend, "c8", built / "d")
    try:
        with pytest.raises(SmecError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
            index.search(vectors, k=3)
        with pytest.raises(SmecError, match="NaN or inf|not a numeric|complex|of shape"):
            index.add(["z"], vectors)
    finally:
        index.close()
    with pytest.raises(SmecError):
        Projection.load(built / "art").project(vectors, 8)


@pytest.mark.parametrize("backend", ["faiss", "hnswlib", "qdrant"])
def test_one_vector_empty_rows_and_odd_params(built, backend):
    from smec_index.index import CompressedIndex

    index = CompressedIndex.open(backend, "c8", built / "d")
    try:
        one = np.ones(16, np.float32)
        ids, scores = index.search(one, k=3)  # one vector is one row
        assert len(ids) == 1 and scores.shape == (1, 3)
        ids, scores = index.search(np.zeros((0, 16), np.float32), k=3)
        assert ids == [] and scores.shape == (0, 3)
        with pytest.raises(SmecError, match="pass a dict"):
            index.search(one, k=3, params=[("ef_search", 64)])
        with pytest.raises(SmecError, match="whole numbers"):
            index.search(one, k=3, params={"ef_search": [64]})
        searcher = index.connector.searcher(index.collection)
        with pytest.raises(SmecError, match="NaN or inf"):
            searcher.search(np.full((1, 8), np.nan, np.float32), 3)
    finally:
        index.close()


def test_ids_a_to_backend_target_cannot_hold_are_refused_before_writing(tmp_path):
    from pymilvus import DataType, MilvusClient

    db = tmp_path / "m.db"
    client = MilvusClient(str(db))
    schema = client.create_schema(auto_id=False)
    schema.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=2000)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=16)
    index = client.prepare_index_params()
    index.add_index("vector", index_type="FLAT", metric_type="COSINE")
    client.create_collection("long", schema=schema, index_params=index)
    rng = np.random.default_rng(0)
    client.insert("long", [{"pk": f"k{i}" + "x" * 1100, "vector": rng.standard_normal(16)
                            .tolist()} for i in range(200)])  # fmt: skip
    client.close()
    run_probe(["migrate", "--backend", "milvus", "--uri", db, "--collection", "long", "--dim",
               8, "--to-backend", "hnswlib", "--allow-schema-change", "--data-dir",
               tmp_path / "d", "--quiet"], tmp_path, "ids are limited to 1024 bytes")


def test_search_on_a_copy_migrate_made_says_how_to_query_it(tmp_path):
    from pymilvus import MilvusClient

    db = tmp_path / "m.db"
    client = MilvusClient(str(db))
    client.create_collection("docs", dimension=32, metric_type="COSINE", auto_id=False)
    rng = np.random.default_rng(1)
    client.insert("docs", [{"id": i, "vector": rng.standard_normal(32).tolist()}
                           for i in range(300)])  # fmt: skip
    client.close()
    _ok("migrate", "--backend", "milvus", "--uri", db, "--collection", "docs", "--dim", 16,
        "--data-dir", tmp_path / "d", "--min-recall", 0, "--quiet")  # fmt: skip
    run_probe(["search", "--backend", "milvus", "--uri", db, "--collection", "docs_16",
               "--data-dir", tmp_path / "d", "--like", 3], tmp_path,
              "a copy `migrate` made in the source's own schema")  # fmt: skip


# -- the seventh sweep (405 new probes, 14 bad answers in 6 faults) ---------------------------


def test_bench_appends_after_a_results_file_without_its_last_newline(tmp_path):
    import json

    out = tmp_path / "r.jsonl"
    args = ["bench", "--dataset", "synthetic:300x8", "--methods", "none", "--latency-queries",
            20, "--concurrency", 1, "--out", out]  # fmt: skip
    _ok(*args)
    out.write_text(out.read_text().rstrip("\n"))  # saved by an editor without it
    _ok(*args[:2], "synthetic:400x8", *args[3:])
    assert [json.loads(line)["dataset"] for line in out.read_text().splitlines()] == [
        "synthetic:300x8", "synthetic:400x8"]  # fmt: skip
    _ok("report", out, "--out", tmp_path / "rep")


def test_a_closed_pipe_and_a_cjk_name_print_nothing_more(tmp_path):
    import subprocess
    import sys

    from tests.test_probes_hostile import _results

    results = _results(tmp_path, dataset="中文 😀")
    done = subprocess.run([sys.executable, "-m", "smec_index.cli", "report", str(results),
                           "--out", str(tmp_path / "rep")], capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    # A reader that leaves after one line: the writer stops quietly (as `ls | head -1`).
    piped = subprocess.run(f"{sys.executable} -m smec_index.cli --help | head -1", shell=True,
                           capture_output=True, text=True)  # fmt: skip
    assert "internal error" not in piped.stderr and piped.stdout.startswith("Usage")


def test_a_qdrant_searcher_of_a_collection_built_again_says_so(tmp_path):
    from smec_index.connectors import open_connector
    from smec_index.connectors.base import IndexSpec

    connector = open_connector("qdrant", data_dir=tmp_path / "d")
    spec = IndexSpec(dim=8, metric="cosine", index="hnsw", params={})
    rng = np.random.default_rng(0)
    connector.create("e2", spec)
    connector.add("e2", [f"p{i}" for i in range(20)], rng.standard_normal((20, 8)))
    searcher = connector.searcher("e2")
    connector.drop("e2")
    connector.create("e2", spec)
    connector.add("e2", ["z1", "z2"], rng.standard_normal((2, 8)))
    with pytest.raises(SmecError, match="changed under this searcher"):
        searcher.search(rng.standard_normal((1, 8)).astype(np.float32), 3)
    connector.close()


def test_api_names_what_it_cannot_use(tmp_path):
    from smec_index import Projection
    from smec_index.compressors import make_compressor

    with pytest.raises(SmecError, match="File name too long|of more than 255 bytes"):
        Projection.load("a" * 300, data_dir=tmp_path)
    for dims, fragment in [("84", "list of whole numbers"), (8, "list of whole numbers"),
                           ([8.5], "whole number"), (None, "list of whole numbers")]:
        with pytest.raises(SmecError, match=fragment):
            make_compressor("pca", dims)


# -- the eighth sweep (495 new probes, 29 bad answers in 6 faults) -----------------------------


def test_api_refuses_huge_values_long_names_and_surrogates(tmp_path, built):
    from smec_index import Projection
    from smec_index.compressors import load_compressor
    from smec_index.connectors.contract import check_ids, check_payloads
    from smec_index.data import load_retrieval_data

    with pytest.raises(SmecError, match="beyond"):
        Projection.load(built / "art").project(np.full((1, 16), 3e38, np.float32), 8)
    with pytest.raises(SmecError, match="File name too long|of more than 255 bytes"):
        load_compressor("x" * 300)
    with pytest.raises(SmecError, match="File name too long|of more than 255 bytes"):
        load_retrieval_data("x" * 300)
    with pytest.raises(SmecError, match="not UTF-8"):
        check_ids(["a\ud800"], 1)
    for payload in ({"a": "x\udc80"}, {"\udc80": 1}, {"a": 2**70}):
        with pytest.raises(SmecError, match="UTF-8 text, 64-bit integers"):
            check_payloads([payload], 1)


def test_paths_that_are_not_utf8_are_one_line(tmp_path):
    import os

    ds = _dataset(tmp_path)
    data = os.fsdecode(bytes(tmp_path) + b"/d\xff")
    run_probe(["build", "--dataset", ds, "--dim", 16, "--backend", "faiss", "--data-dir",
               data], tmp_path, "not UTF-8")  # fmt: skip
    run_probe(["migrate", "--backend", "qdrant", "--path", data, "--collection", "x", "--dim",
               8, "--data-dir", tmp_path / "m", "--dry-run"], tmp_path, "not UTF-8")
