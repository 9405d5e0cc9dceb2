"""Property: every argument of the documented Python API, given a value of the wrong kind,
is refused with a one-line :class:`SmecError` (or taken), never a raw exception.

The command line has its own property test (``test_hostile_property.py``); sweeps of the
Python API kept finding functions that one kind of value reached unchecked (a path given as
None, ``ks=["x"]``, a torch ranking). Here each call of the API that ``docs/`` and the
examples show is made once as it works, then once per argument per value below, every
other argument left good. A call may succeed (a value can be legal), or raise
:class:`SmecError` with one line of text; anything else is a fault, listed with the call.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from smec_index.errors import SmecError

# Values of the wrong kind for almost any argument: none is right everywhere.
HOSTILE: list[Any] = [
    None, True, -1, 0, 2**70, 1.5, float("nan"), float("inf"), 1j, "", "x" * 5000,
    "a\x00b", "\udcff", b"bytes", [], [None], [[1, 2]], [[1.0, 2.0], [1.0]], {},
    {"a": object()}, object(),
    np.array(["a", "b"]), np.zeros((2, 2, 2)), np.float16(1.0), np.int64(-3), {1, 2},
    (x for x in range(3)), Path("/dev/null"), Path("/proc/self"),
]  # fmt: skip


# Every embedded backend, for the Connector calls.
BACKENDS = {"faiss": {}, "hnswlib": {}, "qdrant": {"mode": "edge"}, "qdrant-local": {
    "mode": "local"}, "milvus": {}}  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Any]:
    """A dataset, a PCA artifact, a built faiss collection and an open connector with a
    collection of its own: what the good calls need."""
    from click.testing import CliRunner

    from smec_index.cli import main
    from tests.test_probes_hostile import _dataset

    root = tmp_path_factory.mktemp("api")
    ds = _dataset(root)
    run = lambda *a: CliRunner().invoke(main, [str(x) for x in a])  # noqa: E731
    assert run("train", "--dataset", ds, "--method", "pca", "--dims", "8", "--out",
               root / "art", "--quiet").exit_code == 0  # fmt: skip
    assert run("build", "--dataset", ds, "--backend", "faiss", "--dim", 8, "--artifact",
               root / "art", "--data-dir", root / "data", "--collection", "c",
               "--quiet").exit_code == 0  # fmt: skip
    (root / "q.jsonl").write_text(json.dumps({"_id": "1"}) + "\n")
    from smec_index.connectors import IndexSpec, open_connector

    connectors = {}
    for backend, options in BACKENDS.items():
        connector = open_connector(backend.split("-")[0], data_dir=root / "store", **options)
        connector.create("own", IndexSpec(dim=4, index="hnsw"))
        connector.add("own", ["a", "b", "c"], np.eye(3, 4, dtype=np.float32) + 0.1)
        connector.flush("own")
        connectors[backend] = connector
    yield {"root": root, "ds": ds, "connectors": connectors}
    for connector in connectors.values():
        connector.close()


def calls(w: dict[str, Any], backend: str = "faiss") -> dict[str, tuple[Callable, dict]]:
    """Each documented call, as (function, good keyword arguments); the Connector calls on
    ``backend``'s connector."""
    from smec_index import Projection, metrics
    from smec_index.compressors import load_compressor, make_compressor
    from smec_index.connectors import IndexSpec, open_connector
    from smec_index.data import load_npy, load_retrieval_data, read_jsonl, read_qrels
    from smec_index.index import CompressedIndex
    from smec_index.synthetic import synthetic_vectors

    root, ds, connector = w["root"], w["ds"], w["connectors"][backend]
    emb = ds / "embeddings" / "all-MiniLM-L6-v2"
    projection = Projection.load(root / "art")

    def index_search(vectors, k, params):
        index = CompressedIndex.open("faiss", "c", root / "data")
        try:
            return index.search(vectors, k, params)
        finally:
            index.close()

    q16 = np.random.default_rng(0).standard_normal((2, 16)).astype(np.float32)
    q4 = np.ones((1, 4), np.float32)
    return {
        "Projection.load": (Projection.load, {"where": "c", "data_dir": root / "data"}),
        "Projection.project": (projection.project, {"vectors": q16, "dim": 8}),
        "CompressedIndex.open": (
            lambda backend, name, data_dir: CompressedIndex.open(backend, name, data_dir).close(),
            {"backend": "faiss", "name": "c", "data_dir": root / "data"}),
        "CompressedIndex.search": (index_search, {"vectors": q16, "k": 3, "params": None}),
        "load_retrieval_data": (load_retrieval_data, {"dataset_dir": ds, "embeddings_dir": None,
                                                      "skip_unknown_qrels": False}),
        "load_npy": (load_npy, {"vectors_path": emb / "corpus.npy",
                                "ids_path": emb / "corpus_ids.txt"}),
        "read_qrels": (read_qrels, {"path": ds / "qrels" / "test.tsv"}),
        "read_jsonl": (lambda path: list(read_jsonl(path)), {"path": root / "q.jsonl"}),
        "synthetic_vectors": (synthetic_vectors, {"n": 10, "dim": 8, "rank": 4, "noise": 0.05,
                                                  "seed": 0}),
        "load_compressor": (load_compressor, {"directory": root / "art"}),
        "make_compressor": (make_compressor, {"method": "pca", "dims": [8]}),
        "open_connector": (lambda backend, data_dir: open_connector(
            backend, data_dir=data_dir).close(), {"backend": "faiss", "data_dir": root / "o"}),
        "IndexSpec": (IndexSpec, {"dim": 4, "metric": "cosine", "index": "hnsw",
                                  "params": {"M": 8}}),
        "Connector.search": (connector.search, {"collection": "own", "queries": q4, "k": 2,
                                                "params": None}),
        "Connector.get": (connector.get, {"collection": "own", "ids": ["a"]}),
        "Connector.count": (connector.count, {"collection": "own"}),
        "Connector.spec": (connector.spec, {"collection": "own"}),
        "Connector.iterate": (lambda collection, batch_size, cursor: list(connector.iterate(
            collection, batch_size, cursor)), {"collection": "own", "batch_size": 2,
                                               "cursor": None}),
        "Connector.resolve": (connector.resolve, {"name": "own"}),
        "Connector.upsert": (connector.upsert, {"collection": "own", "ids": ["b"],
                                                "vectors": q4, "payloads": [{"t": 1}],
                                                "batch_size": 10}),
        "Connector.create": (connector.create, {"collection": "made",
                                                "spec": IndexSpec(dim=4, index="hnsw"),
                                                "overwrite": True}),
        "Connector.set_alias": (connector.set_alias, {"alias": "nick", "collection": "own"}),
        "ndcg_at_k": (metrics.ndcg_at_k, {"ranked": ["d1", "d2"], "relevance": {"d1": 1},
                                          "k": 10}),
        "recall_at_k": (metrics.recall_at_k, {"ranked": ["d1"], "relevance": {"d1": 1},
                                              "k": 10}),
        "recall_vs_exact": (metrics.recall_vs_exact, {"found": [["a"]], "exact": [["a"]],
                                                      "k": 10}),
        "evaluate_run": (metrics.evaluate_run, {"run": {"q": ["d1"]},
                                                "qrels": {"q": {"d1": 1}}, "ks": (10,)}),
        "mean_metric": (metrics.mean_metric, {"run": {"q": ["d1"]}, "qrels": {"q": {"d1": 1}},
                                              "metric": metrics.ndcg_at_k, "k": 10}),
    }  # fmt: skip


NAMES = [
    "Projection.load", "Projection.project", "CompressedIndex.open", "CompressedIndex.search",
    "load_retrieval_data", "load_npy", "read_qrels", "read_jsonl", "synthetic_vectors",
    "load_compressor", "make_compressor", "open_connector", "IndexSpec", "Connector.search",
    "Connector.get", "Connector.count", "Connector.spec", "Connector.iterate",
    "Connector.resolve", "Connector.upsert", "Connector.create", "Connector.set_alias",
    "ndcg_at_k", "recall_at_k", "recall_vs_exact", "evaluate_run", "mean_metric",
]  # fmt: skip


def test_the_table_names_every_call(world):
    assert sorted(calls(world)) == sorted(NAMES)


CASES = [(name, "faiss") for name in NAMES if not name.startswith("Connector.")] + [
    (name, backend) for name in NAMES if name.startswith("Connector.") for backend in BACKENDS]


@pytest.mark.parametrize("name, backend", CASES)
def test_a_value_of_the_wrong_kind_is_one_line_or_taken(world, name, backend):
    function, good = calls(world, backend)[name]
    function(**good)  # the call works as it is
    faults = []
    for argument in good:
        for value in HOSTILE:
            if isinstance(value, type(x for x in ())):
                value = (x for x in range(3))  # a generator is used up by one call
            try:
                function(**{**good, argument: value})
            except SmecError as exc:
                text = str(exc)
                if not text or "\n" in text:
                    faults.append(f"{argument}={value!r:.40}: SmecError of {len(text.splitlines())}"
                                  " lines")  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - what the property is about
                faults.append(f"{argument}={value!r:.40}: {type(exc).__name__}: {exc!s:.120}")
    assert not faults, f"{name}:\n" + "\n".join(faults)


def requests(w: dict[str, Any]) -> dict[str, tuple[Callable, type, dict[str, Any]]]:
    """Each request object and the function that runs it, with good fields: a build, a
    training, a search and a dry-run migration, each quick on the world's small data."""
    from qdrant_client import QdrantClient, models

    from smec_index.build import BuildRequest, build
    from smec_index.migration.runner import MigrateRequest, migrate
    from smec_index.search import SearchRequest, run_search
    from smec_index.train import TrainRequest, run_train

    root, ds = w["root"], w["ds"]
    if not (root / "qsrc").exists():
        client = QdrantClient(path=str(root / "qsrc"))
        client.create_collection("docs", vectors_config=models.VectorParams(
            size=16, distance=models.Distance.COSINE))  # fmt: skip
        client.upsert("docs", models.Batch(ids=list(range(50)), vectors=np.random.default_rng(
            1).standard_normal((50, 16)).tolist()))  # fmt: skip
        client.close()
    quiet = lambda *_: None  # noqa: E731
    return {
        "build": (lambda r: build(r, say=quiet), BuildRequest, {
            "dataset": ds, "backend": "faiss", "dim": 16, "data_dir": root / "bdata",
            "collection": "b", "overwrite": True, "progress": False}),
        "train": (run_train, TrainRequest, {
            "dataset": ds, "out": root / "tart", "dims": "8", "method": "pca",
            "overwrite": True, "quiet": True}),
        "search": (run_search, SearchRequest, {
            "backend": "faiss", "collection": "c", "data_dir": root / "data", "like": "d1",
            "top_k": 3}),
        "migrate": (lambda r: migrate(r, say=quiet), MigrateRequest, {
            "backend": "qdrant", "collection": "docs", "dim": 8, "data_dir": root / "mdata",
            "source": {"path": str(root / "qsrc")}, "dry_run": True, "progress": False}),
    }  # fmt: skip


@pytest.mark.parametrize("name", ["build", "train", "search", "migrate"])
def test_a_request_field_of_the_wrong_kind_is_one_line_or_taken(world, name, monkeypatch):
    """As above, for every field of the request objects (each field the CLI's flags fill),
    the good ones and the defaults alike."""
    import dataclasses

    monkeypatch.chdir(world["root"])  # a path "" is the working directory: this one
    run, kind, good = requests(world)[name]
    run(kind(**good))
    faults = []
    for field in dataclasses.fields(kind):
        for value in HOSTILE:
            if isinstance(value, type(x for x in ())):
                value = (x for x in range(3))
            try:
                run(kind(**{**good, field.name: value}))
            except SmecError as exc:
                if "\n" in str(exc) or not str(exc):
                    faults.append(f"{field.name}={value!r:.40}: SmecError of several lines")
            except Exception as exc:  # noqa: BLE001 - what the property is about
                faults.append(f"{field.name}={value!r:.40}: {type(exc).__name__}: {exc!s:.120}")
    assert not faults, f"{name}:\n" + "\n".join(faults)
