"""faiss and hnswlib beyond the contract: files, reloads, parameters, metrics, errors."""

from __future__ import annotations

import os

import numpy as np
import pytest

from smec_index.connectors import IndexSpec, Persistent
from smec_index.connectors.faiss_connector import FaissConnector
from smec_index.connectors.hnswlib_connector import HnswlibConnector
from smec_index.errors import SmecError

DIM = 16
HNSW = {"M": 8, "ef_construction": 64, "ef_search": 48}
IVF_PQ = {"nlist": 4, "nprobe": 4, "pq_m": 4, "pq_bits": 6}

# (case id, connector class, index kind, params)
CASES = [
    ("faiss-flat", FaissConnector, "flat", {}),
    ("faiss-hnsw", FaissConnector, "hnsw", HNSW),
    ("faiss-ivf_pq", FaissConnector, "ivf_pq", IVF_PQ),
    ("faiss-ivf_pq-refine", FaissConnector, "ivf_pq", {**IVF_PQ, "refine": 4}),
    ("hnswlib", HnswlibConnector, "hnsw", HNSW),
]
BY_ID = [pytest.param(c[1:], id=c[0]) for c in CASES]
EXACT = [  # backends whose search is exact on a few hundred points
    pytest.param(FaissConnector, "flat", {}, id="faiss-flat"),
    pytest.param(FaissConnector, "hnsw", {**HNSW, "ef_search": 400}, id="faiss-hnsw"),
    pytest.param(HnswlibConnector, "hnsw", {**HNSW, "ef_search": 400}, id="hnswlib"),
]


def _data(n: int, seed: int = 0, dim: int = DIM) -> tuple[list[str], np.ndarray, list[dict]]:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    ids = [f"p{seed}-{i}" for i in range(n)]
    return ids, vectors, [{"n": i, "tags": ["a", "b"]} for i in range(n)]


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("case", BY_ID)
def test_reopen_sees_same_collection(tmp_path, case):
    cls, kind, params = case
    ids, vectors, payloads = _data(400)
    first = cls(data_dir=tmp_path)
    assert isinstance(first, Persistent)
    first.create("docs", IndexSpec(DIM, "cosine", kind, params))
    first.add("docs", ids[:300], vectors[:300], payloads[:300])
    first.add("docs", ids[300:], vectors[300:], payloads[300:], batch_size=7)
    queries = vectors[:5] + 0.01
    before_ids, before_scores = first.search("docs", queries, k=5)
    first.close()

    again = cls(data_dir=tmp_path)
    assert again.exists("docs") and again.count("docs") == 400
    assert again.spec("docs").params == {**first.spec("docs").params}
    after_ids, after_scores = again.search("docs", queries, k=5)
    assert after_ids == before_ids
    np.testing.assert_allclose(after_scores, before_scores, rtol=1e-5)
    assert [row[0] for row in after_ids] == ids[:5]

    rows = [b for b in again.iterate("docs", batch_size=128)]
    assert [len(b.ids) for b in rows] == [128, 128, 128, 16]
    assert [i for b in rows for i in b.ids] == ids
    assert [p for b in rows for p in b.payloads] == payloads
    got = np.concatenate([b.vectors for b in rows])
    np.testing.assert_allclose(got, _unit(vectors), atol=1e-5)  # cosine: stored normalised

    more_ids, more, _ = _data(20, seed=1)
    again.add("docs", more_ids, more)
    assert cls(data_dir=tmp_path).search("docs", more[:1], k=1)[0] == [[more_ids[0]]]


@pytest.mark.parametrize(
    ("cls", "ef_of"),
    [
        pytest.param(FaissConnector, lambda index: index.hnsw.efSearch, id="faiss"),
        pytest.param(HnswlibConnector, lambda index: index.ef, id="hnswlib"),
    ],
)
def test_hnsw_parameters_survive_reload(tmp_path, cls, ef_of):
    ids, vectors, _ = _data(50)
    connector = cls(data_dir=tmp_path)
    connector.create("g", IndexSpec(DIM, "ip", "hnsw", {"M": 12, "ef_search": 77}))
    connector.add("g", ids, vectors)
    reloaded = cls(data_dir=tmp_path)
    index = reloaded.native_index("g")
    assert ef_of(index) == 77
    assert reloaded.spec("g").params == {"M": 12, "ef_construction": 200, "ef_search": 77}
    if cls is FaissConnector:
        assert index.hnsw.efConstruction == 200 and index.hnsw.nb_neighbors(1) == 12
    else:
        assert index.M == 12 and index.ef_construction == 200


def test_ivf_pq_needs_enough_training_rows(tmp_path):
    connector = FaissConnector(data_dir=tmp_path)
    connector.create("pq", IndexSpec(DIM, "l2", "ivf_pq", {**IVF_PQ, "pq_bits": 8}))
    ids, vectors, _ = _data(255)
    with pytest.raises(SmecError, match="at least 256 vectors") as error:
        connector.add("pq", ids, vectors)
    assert "\n" not in str(error.value)
    assert connector.count("pq") == 0 and not connector.native_index("pq").is_trained
    ids, vectors, _ = _data(300)
    connector.add("pq", ids, vectors)
    assert connector.count("pq") == 300


@pytest.mark.parametrize("cls", [FaissConnector, HnswlibConnector])
def test_user_errors(tmp_path, cls):
    connector = cls(data_dir=tmp_path)
    with pytest.raises(SmecError, match="no collection 'nope'"):
        connector.search("nope", np.zeros((1, DIM), np.float32), k=3)
    with pytest.raises(SmecError, match="unknown .* parameter.*efSearch"):
        connector.create("c", IndexSpec(DIM, "cosine", "hnsw", {"efSearch": 10}))
    with pytest.raises(SmecError, match="letters, digits"):
        connector.create("../escape", IndexSpec(DIM))
    ids, vectors, _ = _data(10)
    connector.create("c", IndexSpec(DIM, "cosine", "hnsw", HNSW))
    connector.add("c", ids, vectors)
    with pytest.raises(SmecError, match="already in 'c'"):
        connector.add("c", ["fresh", ids[3]], vectors[:2])
    with pytest.raises(SmecError, match="one per vector"):
        connector.add("c", ["a", "b"], vectors[:2], [{}])
    assert connector.count("c") == 10


@pytest.mark.parametrize(("cls", "kind", "params"), EXACT)
@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_ranks_like_brute_force(tmp_path, cls, kind, params, metric):
    ids, vectors, _ = _data(300, seed=3)
    vectors *= np.random.default_rng(4).uniform(0.5, 2.0, (300, 1)).astype(np.float32)
    queries = np.random.default_rng(5).standard_normal((8, DIM)).astype(np.float32)
    connector = cls(data_dir=tmp_path)
    connector.create("m", IndexSpec(DIM, metric, kind, params))
    connector.add("m", ids, vectors)
    got_ids, scores = connector.search("m", queries, k=10)

    if metric == "l2":
        expected = -((queries[:, None, :] - vectors[None, :, :]) ** 2).sum(-1)
    elif metric == "ip":
        expected = queries @ vectors.T
    else:
        expected = _unit(queries) @ _unit(vectors).T
    best = np.argsort(-expected, axis=1)[:, :10]
    assert got_ids == [[ids[j] for j in row] for row in best]
    np.testing.assert_allclose(scores, np.take_along_axis(expected, best, 1), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("case", BY_ID)
def test_short_results_are_padded(tmp_path, case):
    cls, kind, params = case
    ids, vectors, _ = _data(300)
    connector = cls(data_dir=tmp_path)
    connector.create("few", IndexSpec(DIM, "l2", kind, params))
    empty_ids, empty_scores = connector.search("few", vectors[:2], k=3)
    assert empty_ids == [["", "", ""]] * 2 and np.isneginf(empty_scores).all()
    connector.add("few", ids, vectors)
    got, scores = connector.search("few", vectors[:1], k=305)
    assert scores.shape == (1, 305) and scores.dtype == np.float32
    real = [i for i in got[0] if i]
    assert len(real) == len(set(real)) and real[0] == ids[0]
    assert got[0][len(real) :] == [""] * (305 - len(real))
    assert np.isneginf(scores[0, len(real) :]).all() and np.isfinite(scores[0, : len(real)]).all()


@pytest.mark.parametrize("case", BY_ID)
def test_memory_grows_with_vectors(tmp_path, case):
    cls, kind, params = case
    ids, vectors, _ = _data(1200)
    connector = cls(data_dir=tmp_path)
    connector.create("mem", IndexSpec(DIM, "cosine", kind, params))
    connector.add("mem", ids[:300], vectors[:300])
    small = connector.memory_bytes("mem")
    connector.add("mem", ids[300:], vectors[300:])
    large = connector.memory_bytes("mem")
    assert 0 < small < large
    assert large - small >= 900 * (DIM * 4 if kind in ("flat", "hnsw") else IVF_PQ["pq_m"] // 2)


@pytest.mark.parametrize("cls", [FaissConnector, HnswlibConnector])
def test_crash_before_commit_keeps_old_collection(tmp_path, cls, monkeypatch):
    ids, vectors, payloads = _data(60)
    connector = cls(data_dir=tmp_path)
    connector.create("safe", IndexSpec(DIM, "cosine", "hnsw", HNSW))
    connector.add("safe", ids[:40], vectors[:40], payloads[:40])
    files_before = sorted(os.listdir(connector.path("safe")))

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        connector.add("safe", ids[40:], vectors[40:], payloads[40:])
    monkeypatch.undo()

    assert connector.count("safe") == 40  # the failed add is forgotten in memory too
    reopened = cls(data_dir=tmp_path)
    assert reopened.count("safe") == 40
    assert [i for b in reopened.iterate("safe") for i in b.ids] == ids[:40]
    reopened.add("safe", ids[40:], vectors[40:], payloads[40:])
    assert reopened.count("safe") == 60
    # The next commit removes what the crashed one left behind.
    assert len(os.listdir(connector.path("safe"))) == len(files_before)


@pytest.mark.parametrize("cls", [FaissConnector, HnswlibConnector])
def test_drop_and_overwrite(tmp_path, cls):
    ids, vectors, _ = _data(30)
    connector = cls(data_dir=tmp_path)
    connector.create("d", IndexSpec(DIM, "ip", "hnsw", HNSW))
    connector.add("d", ids, vectors)
    connector.create("d", IndexSpec(DIM + 4, "l2", "hnsw", HNSW), overwrite=True)
    assert connector.count("d") == 0 and connector.spec("d").dim == DIM + 4
    assert cls(data_dir=tmp_path).spec("d").metric == "l2"
    connector.drop("d")
    assert not connector.exists("d") and not os.path.exists(connector.path("d"))
    assert os.listdir(tmp_path / cls.name) == []
    connector.drop("d")  # dropping twice is harmless


def test_faiss_gpu_option(tmp_path):
    assert FaissConnector(data_dir=tmp_path, gpu="off").use_gpu is False
    with pytest.raises(SmecError, match="'auto', 'on' or 'off'"):
        FaissConnector(data_dir=tmp_path, gpu="yes")
