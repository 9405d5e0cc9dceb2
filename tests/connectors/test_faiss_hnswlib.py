"""faiss and hnswlib beyond the contract: files, reloads, parameters, metrics, errors."""

from __future__ import annotations

import os

import faiss
import numpy as np
import pytest

from smec_index.connectors import Connector, IndexSpec, Persistent, open_connector
from smec_index.errors import SmecError

DIM = 16
HNSW = {"M": 8, "ef_construction": 64, "ef_search": 48}
IVF_PQ = {"nlist": 4, "nprobe": 4, "pq_m": 4, "pq_bits": 6}

# (case id, backend, index kind, params)
CASES = [
    ("faiss-flat", "faiss", "flat", {}),
    ("faiss-hnsw", "faiss", "hnsw", HNSW),
    ("faiss-ivf_pq", "faiss", "ivf_pq", IVF_PQ),
    ("faiss-ivf_pq-refine", "faiss", "ivf_pq", {**IVF_PQ, "refine": 4}),
    ("hnswlib", "hnswlib", "hnsw", HNSW),
]
BY_ID = [pytest.param(c[1:], id=c[0]) for c in CASES]
EXACT = [  # backends whose search is exact on a few hundred points
    pytest.param("faiss", "flat", {}, id="faiss-flat"),
    pytest.param("faiss", "hnsw", {**HNSW, "ef_search": 400}, id="faiss-hnsw"),
    pytest.param("hnswlib", "hnsw", {**HNSW, "ef_search": 400}, id="hnswlib"),
]
LOCAL = ["faiss", "hnswlib"]


def _open(backend: str, data_dir, **options) -> Connector:
    return open_connector(backend, data_dir=data_dir, **options)


def _data(n: int, seed: int = 0, dim: int = DIM) -> tuple[list[str], np.ndarray, list[dict]]:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    ids = [f"p{seed}-{i}" for i in range(n)]
    return ids, vectors, [{"n": i, "tags": ["a", "b"]} for i in range(n)]


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("case", BY_ID)
def test_reopen_sees_same_collection(tmp_path, case):
    backend, kind, params = case
    ids, vectors, payloads = _data(400)
    first = _open(backend, tmp_path)
    assert isinstance(first.backend, Persistent)
    stored = first.create("docs", IndexSpec(DIM, "cosine", kind, params))
    first.add("docs", ids[:300], vectors[:300], payloads[:300])
    first.add("docs", ids[300:], vectors[300:], payloads[300:], batch_size=7)
    queries = vectors[:5] + 0.01
    before_ids, before_scores = first.search("docs", queries, k=5)
    first.close()  # commits what was written

    again = _open(backend, tmp_path)
    assert again.exists("docs") and again.count("docs") == 400
    assert again.spec("docs") == stored
    after_ids, after_scores = again.search("docs", queries, k=5)
    assert after_ids == before_ids
    np.testing.assert_allclose(after_scores, before_scores, rtol=1e-5)
    assert [row[0] for row in after_ids] == ids[:5]

    rows = [b for b in again.iterate("docs", batch_size=128)]
    assert [len(b.ids) for b in rows] == [128, 128, 128, 16]
    assert rows[-1].cursor is None and all(b.cursor is not None for b in rows[:-1])
    assert [i for b in rows for i in b.ids] == ids
    assert [p for b in rows for p in b.payloads] == payloads
    got = np.concatenate([b.vectors for b in rows])
    np.testing.assert_allclose(got, _unit(vectors), atol=1e-5)  # cosine: stored normalised

    more_ids, more, _ = _data(20, seed=1)
    again.add("docs", more_ids, more)
    again.flush("docs")  # writes stay in memory until a flush (or close)
    third = _open(backend, tmp_path)
    assert third.count("docs") == 420
    assert third.search("docs", more[:1], k=1)[0] == [[more_ids[0]]]
    again.close()
    third.close()


@pytest.mark.parametrize(
    ("backend", "ef_of"),
    [
        pytest.param("faiss", lambda index: index.hnsw.efSearch, id="faiss"),
        pytest.param("hnswlib", lambda index: index.ef, id="hnswlib"),
    ],
)
def test_hnsw_parameters_survive_reload(tmp_path, backend, ef_of):
    ids, vectors, _ = _data(50)
    connector = _open(backend, tmp_path)
    connector.create("g", IndexSpec(DIM, "ip", "hnsw", {"M": 12, "ef_search": 77}))
    connector.add("g", ids, vectors)
    connector.flush("g")
    reloaded = _open(backend, tmp_path)
    index = reloaded.backend.native_index("g")
    assert reloaded.count("g") == 50
    assert ef_of(index) == 77
    assert reloaded.spec("g").params == {"M": 12, "ef_construction": 200, "ef_search": 77}
    if backend == "faiss":
        assert index.hnsw.efConstruction == 200 and index.hnsw.nb_neighbors(1) == 12
    else:
        assert index.M == 12 and index.ef_construction == 200
    connector.close()
    reloaded.close()


def test_ivf_pq_needs_enough_training_rows(tmp_path):
    connector = _open("faiss", tmp_path)
    connector.create("pq", IndexSpec(DIM, "l2", "ivf_pq", {**IVF_PQ, "pq_bits": 8}))
    ids, vectors, _ = _data(255)
    connector.add("pq", ids, vectors)  # IVF-PQ trains lazily, at the first search
    connector.flush("pq")  # too few to train on: committed as they came, untrained
    with pytest.raises(SmecError, match="needs at least 256 .*got 255") as error:
        connector.search("pq", vectors[:1], k=1)
    assert "\n" not in str(error.value)
    assert not connector.backend.native_index("pq").is_trained
    assert connector.count("pq") == 255  # the written points wait for more, none is lost
    assert _open("faiss", tmp_path).count("pq") == 255  # and survive a reopen

    more_ids, more, _ = _data(45, seed=1)
    connector.add("pq", more_ids, more)
    connector.flush("pq")
    assert connector.backend.native_index("pq").is_trained
    assert connector.count("pq") == 300
    assert _open("faiss", tmp_path).count("pq") == 300
    connector.close()


def test_ivf_pq_upsert_before_training_replaces_pending_points(tmp_path):
    connector = _open("faiss", tmp_path)
    connector.create("pq", IndexSpec(DIM, "l2", "ivf_pq", {**IVF_PQ, "pq_bits": 8}))
    ids, vectors, _ = _data(300)
    connector.add("pq", ids[:255], vectors[:255] + 1.0)  # waits for enough rows to train
    connector.add("pq", ids, vectors)  # replaces the 255, adds 45: 300 to train on
    assert connector.count("pq") == 300
    connector.flush("pq")
    np.testing.assert_allclose(connector.get("pq", ids[:1]).vectors, vectors[:1], atol=1e-6)
    connector.close()


@pytest.mark.parametrize("backend", LOCAL)
def test_user_errors(tmp_path, backend):
    connector = _open(backend, tmp_path)
    with pytest.raises(SmecError, match="no collection 'nope'"):
        connector.search("nope", np.zeros((1, DIM), np.float32), k=3)
    with pytest.raises(SmecError, match=r"unknown hnsw parameter\(s\) efSearch"):
        connector.create("c", IndexSpec(DIM, "cosine", "hnsw", {"efSearch": 10}))
    with pytest.raises(SmecError, match="letters, digits"):
        connector.create("../escape", IndexSpec(DIM))
    assert not (tmp_path / "escape").exists() and not (tmp_path / backend / "c").exists()
    ids, vectors, _ = _data(10)
    connector.create("c", IndexSpec(DIM, "cosine", "hnsw", HNSW))
    connector.add("c", ids, vectors)
    with pytest.raises(SmecError, match="'fresh' appears twice in one write"):
        connector.add("c", ["fresh", "fresh"], vectors[:2])
    with pytest.raises(SmecError, match="1 payloads for 2 points; pass one per point"):
        connector.add("c", ["a", "b"], vectors[:2], [{}])
    assert connector.count("c") == 10  # a refused write leaves nothing behind

    # An id that is stored is replaced (upsert), not added again.
    connector.add("c", ["fresh", ids[3]], vectors[5:7])
    assert connector.count("c") == 11
    got = connector.get("c", [ids[3]])
    np.testing.assert_allclose(got.vectors, _unit(vectors[6:7]), atol=1e-5)
    connector.close()


@pytest.mark.parametrize(("backend", "kind", "params"), EXACT)
@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_ranks_like_brute_force(tmp_path, backend, kind, params, metric):
    ids, vectors, _ = _data(300, seed=3)
    vectors *= np.random.default_rng(4).uniform(0.5, 2.0, (300, 1)).astype(np.float32)
    queries = np.random.default_rng(5).standard_normal((8, DIM)).astype(np.float32)
    connector = _open(backend, tmp_path)
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
    connector.close()


@pytest.mark.parametrize("case", BY_ID)
def test_short_results_are_padded(tmp_path, case):
    backend, kind, params = case
    ids, vectors, _ = _data(300)
    connector = _open(backend, tmp_path)
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
    connector.close()


@pytest.mark.parametrize("case", BY_ID)
def test_sizes_grow_with_vectors(tmp_path, case):
    backend, kind, params = case
    ids, vectors, _ = _data(1200)
    connector = _open(backend, tmp_path)
    connector.create("mem", IndexSpec(DIM, "cosine", kind, params))
    connector.add("mem", ids[:300], vectors[:300])
    small = connector.sizes("mem")
    connector.add("mem", ids[300:], vectors[300:])
    large = connector.sizes("mem")
    assert 0 < small.index_bytes < large.index_bytes
    per_point = DIM * 4 if kind in ("flat", "hnsw") else IVF_PQ["pq_m"] // 2
    assert large.index_bytes - small.index_bytes >= 900 * per_point
    # total: every file of the collection (index, ids, payloads), measured on disk
    assert small.total_bytes >= small.index_bytes and large.total_bytes > small.total_bytes
    assert large.method
    connector.close()


@pytest.mark.parametrize("backend", LOCAL)
def test_crash_before_commit_keeps_old_collection(tmp_path, backend, monkeypatch):
    ids, vectors, payloads = _data(60)
    connector = _open(backend, tmp_path)
    connector.create("safe", IndexSpec(DIM, "cosine", "hnsw", HNSW))
    connector.add("safe", ids[:40], vectors[:40], payloads[:40])
    connector.flush("safe")
    path = connector.backend.path("safe")
    files_before = sorted(os.listdir(path))

    def crash(*args, **kwargs):
        raise OSError("disk full")

    connector.add("safe", ids[40:], vectors[40:], payloads[40:])
    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        connector.flush("safe")  # the commit dies before meta.json is swapped in
    monkeypatch.undo()

    reopened = _open(backend, tmp_path)
    assert reopened.count("safe") == 40  # what another reader sees: the last commit
    assert [i for b in reopened.iterate("safe") for i in b.ids] == ids[:40]
    assert connector.count("safe") == 60  # the writes wait in memory for the next commit
    connector.flush("safe")
    assert reopened.count("safe") == 60
    assert [p for b in reopened.iterate("safe") for p in b.payloads] == payloads
    # The next commit removes what the crashed one left behind.
    assert len(os.listdir(path)) == len(files_before)
    connector.close()
    reopened.close()


@pytest.mark.parametrize("backend", LOCAL)
def test_drop_and_overwrite(tmp_path, backend):
    ids, vectors, _ = _data(30)
    connector = _open(backend, tmp_path)
    connector.create("d", IndexSpec(DIM, "ip", "hnsw", HNSW))
    connector.add("d", ids, vectors)
    connector.create("d", IndexSpec(DIM + 4, "l2", "hnsw", HNSW), overwrite=True)
    assert connector.count("d") == 0 and connector.spec("d").dim == DIM + 4
    assert _open(backend, tmp_path).spec("d").metric == "l2"
    path = connector.backend.path("d")
    connector.drop("d")
    assert not connector.exists("d") and not os.path.exists(path)
    assert os.listdir(tmp_path / backend) == []
    connector.drop("d")  # dropping twice is harmless
    connector.close()


def test_faiss_gpu_option(tmp_path):
    assert _open("faiss", tmp_path, gpu="off").backend.use_gpu is False
    with pytest.raises(SmecError, match="'auto', 'on' or 'off'"):
        _open("faiss", tmp_path, gpu="yes")


ENCODED = [("flat", "sq8"), ("flat", "sq4"), ("flat", "pq16"), ("flat", "opq16"),
           ("flat", "rabitq"), ("hnsw", "sq8"), ("hnsw", "sq4"), ("hnsw", "pq16"),
           ("hnsw", "opq16"),
           ("ivf_flat", "sq8"), ("ivf_flat", "sq4"), ("ivf_flat", "rabitq")]  # fmt: skip
KIND_PARAMS = {
    "flat": {},
    "hnsw": {**HNSW, "ef_search": 128},
    "ivf_flat": {"nlist": 32, "nprobe": 32},
}  # every list probed: the codes decide


@pytest.mark.parametrize(("kind", "encoding"), ENCODED, ids=[f"{k}-{e}" for k, e in ENCODED])
def test_faiss_encodings_search_codes_and_keep_exact_vectors(tmp_path, kind, encoding):
    """Each encoding searches its codes (recall against exact search is high but, for the
    lossy ones, measured rather than assumed), ``get`` returns the exact vectors, a reopen
    keeps the encoding, and the index is smaller than float32's."""
    from smec_index.bench.encodings import bytes_per_vector
    from smec_index.synthetic import synthetic_vectors
    from smec_index.vectors import exact_search, normalize

    vectors = synthetic_vectors(3000, 64, rank=12, noise=0.05, seed=1)
    ids = [str(i) for i in range(len(vectors))]
    params = KIND_PARAMS[kind]
    sizes = {}
    for enc in ("float32", encoding):
        with _open("faiss", tmp_path) as connector:
            connector.create(enc, IndexSpec(64, index=kind, params={**params, "encoding": enc}))
            connector.add(enc, ids, vectors, [{} for _ in ids])
            connector.flush(enc)
            sizes[enc] = connector.sizes(enc).index_bytes
    with _open("faiss", tmp_path) as connector:
        assert connector.spec(encoding).params["encoding"] == encoding
        found, _ = connector.search(encoding, vectors[:200], 10)
        truth = exact_search(normalize(vectors), normalize(vectors[:200]), 10)[1]
        recall = np.mean([len(set(f) & {ids[t] for t in row}) / 10
                          for f, row in zip(found, truth, strict=True)])  # fmt: skip
        floor = {"sq8": 0.9, "sq4": 0.6, "pq16": 0.5, "opq16": 0.5, "rabitq": 0.3}[encoding]
        assert recall >= floor, recall
        got = connector.get(encoding, ["5", "2999"])
        np.testing.assert_allclose(got.vectors, normalize(vectors[[5, 2999]]), atol=1e-6)
    assert sizes[encoding] < sizes["float32"]
    assert bytes_per_vector(encoding, 64) < bytes_per_vector("float32", 64)


def test_faiss_encoding_errors(tmp_path):
    with _open("faiss", tmp_path) as connector:
        for params, index, fragment in (({"encoding": "pq7"}, "flat", "must divide dim"),
                                        ({"encoding": "rabitq"}, "hnsw", "flat or ivf_flat"),
                                        ({"encoding": "pq16"}, "ivf_flat", "index ivf_pq"),
                                        ({"encoding": "opq16"}, "ivf_flat", "flat or hnsw"),
                                        ({"encoding": "opq5"}, "hnsw", "must divide dim"),
                                        ({"encoding": "opq0"}, "flat", "use one of"),
                                        ({"encoding": "opqx"}, "hnsw", "use one of"),
                                        ({"encoding": "pq²"}, "flat", "use one of"),
                                        ({"encoding": "int3"}, "flat", "use one of")):  # fmt: skip
            with pytest.raises(SmecError, match=fragment):
                connector.create("x", IndexSpec(64, index=index, params=params))
        connector.create("ivf", IndexSpec(64, index="ivf_flat", params={"nlist": 16}))
        connector.add("ivf", ["a"], np.ones((1, 64), np.float32), [{}])
        with pytest.raises(SmecError, match="needs at least nlist=16, got 1"):
            connector.search("ivf", np.ones((1, 64), np.float32), 1)
        connector.drop("ivf")
        connector.create("pq", IndexSpec(64, params={"encoding": "pq16"}))
        connector.add("pq", ["a"], np.ones((1, 64), np.float32), [{}])
        with pytest.raises(SmecError, match="at least 256"):
            connector.search("pq", np.ones((1, 64), np.float32), 1)
        connector.drop("pq")


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_opq_rotation_lifts_product_codes_on_ordered_variance(tmp_path, kind):
    """PCA and SMEC outputs put most of the variance in their first dims, so plain PQ spends
    the same byte on a sub-vector that carries almost nothing as on one that carries most;
    OPQ rotates first. On such vectors (3000 x 64, PCA-ordered), the same 16 bytes found
    0.55 of the exact top 10 flat and 0.84 with the rotation (0.66 and 0.86 through HNSW);
    the rotation's 64 x 64 floats are in ``index_bytes``."""
    from smec_index.synthetic import synthetic_vectors
    from smec_index.vectors import exact_search, normalize

    vectors = synthetic_vectors(3000, 64, rank=32, noise=0.05, seed=1)
    _, _, axes = np.linalg.svd(vectors - vectors.mean(axis=0), full_matrices=False)
    vectors = (vectors @ axes.T).astype(np.float32)  # variance falls off along the dims
    ids = [str(i) for i in range(len(vectors))]
    truth = exact_search(normalize(vectors), normalize(vectors[:300]), 10)[1]
    params = {"M": 16, "ef_construction": 100, "ef_search": 128} if kind == "hnsw" else {}
    recall, size = {}, {}
    with _open("faiss", tmp_path) as connector:
        for enc in ("pq16", "opq16"):
            connector.create(enc, IndexSpec(64, index=kind, params={**params, "encoding": enc}))
            connector.add(enc, ids, vectors)
            connector.flush(enc)
            found, _ = connector.search(enc, vectors[:300], 10)
            recall[enc] = np.mean([len(set(f) & {ids[t] for t in row}) / 10
                                   for f, row in zip(found, truth, strict=True)])  # fmt: skip
            size[enc] = connector.sizes(enc).index_bytes
        native = connector.backend.native_index("opq16")
        if kind == "hnsw":  # the ef of the spec reaches the graph behind the rotation
            assert faiss.downcast_index(native.index).hnsw.efSearch == 128
        # The connector rotates the queries itself (FAISS's per-search BLAS call stalls under
        # concurrent searches) and finds what FAISS's own pre-transform search finds.
        _, rows = native.search(normalize(vectors[:300]), 10)
        same = [{ids[r] for r in row} == set(f) for row, f in zip(rows, found, strict=True)]
        assert np.mean(same) >= 0.98  # float32 products in another order may swap a near-tie
    assert recall["opq16"] >= recall["pq16"] + 0.15, recall
    assert 64 * 64 * 4 <= size["opq16"] - size["pq16"] <= 64 * 64 * 4 + 1024, size


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_opq_collection_created_in_one_session_trains_in_the_next(tmp_path, kind):
    """``create`` commits an untrained index; FAISS writes its OPQ rotation as a plain linear
    transform that cannot train, so the next session starts the index afresh rather than
    failing at its first flush. Replacing stored ids keeps the trained rotation."""
    vectors = _unit(np.random.default_rng(0).standard_normal((600, 32)).astype(np.float32))
    ids = [str(i) for i in range(len(vectors))]
    with _open("faiss", tmp_path) as connector:
        connector.create("x", IndexSpec(32, index=kind, params={"encoding": "opq8"}))
    with _open("faiss", tmp_path) as connector:
        connector.add("x", ids, vectors)
        connector.flush("x")
        found, _ = connector.search("x", vectors[:50], 1)
        assert np.mean([f[0] == i for f, i in zip(found, ids, strict=False)]) >= 0.9
    with _open("faiss", tmp_path) as connector:
        connector.add("x", ids[:10], vectors[10:20])  # the first ten now hold rows 10-19
        assert connector.count("x") == 600
        found, _ = connector.search("x", vectors[10:11], 2)
        assert set(found[0]) == {"0", "10"}


def test_hnsw_over_product_codes_keeps_flat_recall(tmp_path):
    """FAISS HNSW over PQ codes built with inner product found 0.45 of the exact top 10 here,
    against 0.85 for flat PQ on the same codes; cosine collections now build it with L2 on
    their unit vectors (the same order) and give cosine scores back."""
    from smec_index.synthetic import synthetic_vectors

    vectors = _unit(synthetic_vectors(3000, 64, rank=32, seed=0).astype(np.float32))
    queries = _unit(synthetic_vectors(300, 64, rank=32, seed=1).astype(np.float32))
    ids = [str(i) for i in range(len(vectors))]
    exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    connector = _open("faiss", tmp_path)
    recall = {}
    for kind, params in (("flat", {}), ("hnsw", {"M": 32, "ef_construction": 200})):
        connector.create(kind, IndexSpec(64, "cosine", kind, {**params, "encoding": "pq32"}))
        connector.add(kind, ids, vectors)
        found, scores = connector.search(kind, queries, k=10, params=None)
        hits = [len({int(i) for i in r} & set(top)) for r, top in zip(found, exact, strict=True)]
        recall[kind] = np.mean(hits) / 10
        scores = np.asarray(scores)
        assert np.all(np.diff(scores, axis=1) <= 1e-6) and np.all(np.abs(scores) <= 1.1)
    assert recall["flat"] > 0.7
    assert recall["hnsw"] >= 0.9 * recall["flat"], recall
    connector.close()


def test_binary_codes_rank_by_the_hamming_distance_of_sign_bits(tmp_path):
    ids, vectors, _ = _data(300, seed=3)
    queries = np.random.default_rng(5).standard_normal((8, DIM)).astype(np.float32)
    connector = _open("faiss", tmp_path)
    connector.create("b", IndexSpec(DIM, "cosine", "flat", {"encoding": "binary"}))
    connector.add("b", ids, vectors)
    found, scores = connector.search("b", queries, k=10)
    hamming = ((queries[:, None, :] > 0) != (vectors[None, :, :] > 0)).sum(-1)
    row_of = {point: n for n, point in enumerate(ids)}
    for q, row in enumerate(found):  # ties in Hamming distance come in any order
        got = hamming[q, [row_of[point] for point in row]]
        np.testing.assert_array_equal(got, np.sort(hamming[q])[:10])
    np.testing.assert_allclose(scores, 1 - 2 * np.sort(hamming, axis=1)[:, :10] / DIM)
    # One bit per dim is what search reads; the float vectors beside it serve get/iterate.
    assert connector.sizes("b").index_bytes < 300 * DIM / 8 + 1024
    np.testing.assert_allclose(connector.get("b", ids[:2]).vectors, _unit(vectors[:2]), atol=1e-6)
    for kind, metric, fragment in (("hnsw", "cosine", "needs index flat"),
                                   ("flat", "l2", "use metric cosine or ip")):  # fmt: skip
        with pytest.raises(SmecError, match=fragment):
            connector.create("x", IndexSpec(DIM, metric, kind, {"encoding": "binary"}))
    connector.close()
