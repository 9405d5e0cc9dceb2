"""The lean search path (:class:`Searcher`): the same answers as ``Connector.search`` on
every backend and index kind, and no file system call per query."""

from __future__ import annotations

import builtins
import os

import numpy as np
import pytest

from smec_index.connectors import IndexSpec, open_connector

CASES = [
    ("faiss", "hnsw", "cosine"),
    ("faiss", "flat", "cosine"),
    ("faiss", "ivf_flat", "cosine"),
    ("faiss", "flat", "l2"),
    ("faiss", "hnsw", "ip"),
    ("hnswlib", "hnsw", "cosine"),
    ("hnswlib", "hnsw", "l2"),
    ("qdrant", "hnsw", "cosine"),
    ("qdrant", "flat", "l2"),
    ("qdrant", "hnsw", "ip"),
]


def _filled(backend, index, metric, points, root, n=2000):
    connector = open_connector(backend, data_dir=root)
    params = {"nlist": 16, "nprobe": 4} if index == "ivf_flat" else {}
    connector.create("c", IndexSpec(dim=64, metric=metric, index=index, params=params))
    connector.add("c", points["ids"][:n], points["vectors"][:n], points["payloads"][:n])
    connector.flush("c")
    return connector


@pytest.mark.parametrize(("backend", "index", "metric"), CASES)
def test_the_lean_path_answers_as_the_checked_one(points, tmp_path, backend, index, metric):
    connector = _filled(backend, index, metric, points, tmp_path)
    try:
        searcher = connector.searcher("c")
        queries = points["queries"][:20]
        ids, scores = searcher.search(queries, 10)
        want_ids, want_scores = connector.search("c", queries, 10)
        assert ids.shape == (20, 10) and ids.tolist() == want_ids
        np.testing.assert_allclose(scores, want_scores, rtol=1e-5, atol=1e-5)
        one, _ = searcher.search(queries[0], 10)  # a single row, as CompressedIndex sends
        assert one.tolist() == want_ids[:1]
    finally:
        connector.close()


@pytest.mark.parametrize("backend", ["faiss", "hnswlib", "qdrant"])
def test_k_above_the_count_pads_and_a_huge_k_allocates_nothing(points, tmp_path, backend):
    connector = _filled(backend, "hnsw", "cosine", points, tmp_path, n=30)
    try:
        ids, scores = connector.searcher("c").search(points["queries"][:2], 50)
        assert ids.shape == (2, 50) and set(ids[:, 30:].ravel()) == {""}
        assert np.isneginf(scores[:, 30:]).all() and np.isfinite(scores[:, :30]).all()
        ids, _ = connector.searcher("c").search(points["queries"][:1], 10**9)
        assert ids.shape == (1, 30)  # capped at the count, as Connector.search caps it
    finally:
        connector.close()


@pytest.mark.parametrize("backend", ["faiss", "hnswlib", "qdrant"])
def test_searching_touches_no_file(points, tmp_path, monkeypatch, backend):
    """Per query: no stat, no open (the old path read aliases.json twice and meta.json
    once for every search)."""
    connector = _filled(backend, "hnsw", "cosine", points, tmp_path)
    try:
        searcher = connector.searcher("c")
        searcher.search(points["queries"][:1], 10)
        calls = []
        for module, name in ((os, "stat"), (os, "lstat"), (os, "fstat"), (builtins, "open")):
            real = getattr(module, name)
            monkeypatch.setattr(module, name, lambda *a, _r=real, _n=name, **k: (
                calls.append(_n), _r(*a, **k))[1])  # fmt: skip
        for query in points["queries"][:50]:
            searcher.search(query[None, :], 10, normalized=True)
        monkeypatch.undo()
        assert calls == []
    finally:
        connector.close()


def test_qdrant_edge_maps_hits_back_without_reading_payloads(points, tmp_path):
    """The lean qdrant-edge path maps the engine's point ids through a local table (read
    once), so a search asks for no payload; a write after the table was read is found."""
    connector = _filled("qdrant", "hnsw", "cosine", points, tmp_path, n=500)
    try:
        searcher = connector.searcher("c")
        assert searcher.layer == "engine + id lookup"
        want = connector.search("c", points["queries"][:3], 10)[0]
        shard = connector.backend.store.shard("c")
        asked = []

        class Spy:
            def __getattr__(self, name):
                return getattr(shard, name)

            def query_batch(self, batch):
                asked.append(batch)
                return shard.query_batch(batch)

        connector.backend.store._shards["c"] = Spy()
        searcher = connector.searcher("c")
        ids, _ = searcher.search(points["queries"][:3], 10)
        assert ids.tolist() == want
        connector.add("c", ["late"], points["queries"][:1], [{}])
        connector.flush("c")
        ids, _ = searcher.search(points["queries"][:1], 1)
        assert ids.tolist() == [["late"]]
        requests = [r for batch in asked for r in batch.queries]
        assert len(requests) == 4 and all(r.with_payload is False for r in requests)
    finally:
        connector.close()


def test_a_qdrant_edge_collection_with_uuid_point_ids_still_reads(points, tmp_path):
    """Collections made before integer point ids keep their UUIDs: written, read, searched
    and iterated as they were."""
    from smec_index.connectors.qdrant.edge_store import INT_IDS_FILE

    connector = open_connector("qdrant", data_dir=tmp_path)
    try:
        connector.create("old", IndexSpec(dim=64))
        store = connector.backend.store
        (store.directory("old") / INT_IDS_FILE).unlink()
        store._int_ids.clear()
        connector.add("old", points["ids"][:200], points["vectors"][:200],
                      points["payloads"][:200])  # fmt: skip
        connector.flush("old")
        first = store.shard("old").scroll(__import__("qdrant_edge").ScrollRequest(limit=1))[0][0]
        assert isinstance(first.id, __import__("uuid").UUID)
        ids, _ = connector.searcher("old").search(points["vectors"][:5], 1)
        assert ids.ravel().tolist() == points["ids"][:5]
        assert connector.get("old", points["ids"][7:8]).ids == points["ids"][7:8]
        assert sum(len(b.ids) for b in connector.iterate("old", 64)) == 200
    finally:
        connector.close()
