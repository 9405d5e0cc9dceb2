"""What the contract promises across connectors and processes: alias switches are seen,
local collections have one writer at a time, cursors belong to their collection."""

from __future__ import annotations

import numpy as np
import pytest

from smec_index.connectors import IndexSpec, open_connector
from smec_index.errors import SmecError

BACKENDS = ["faiss", "hnswlib", "qdrant", "milvus"]


def _fill(connector, name: str, dim: int, n: int = 20) -> np.ndarray:
    vectors = np.random.default_rng(dim).standard_normal((n, dim)).astype(np.float32)
    connector.create(name, IndexSpec(dim, index="flat" if connector.name != "hnswlib" else "hnsw"))
    connector.add(name, [f"p{i}" for i in range(n)], vectors)
    connector.flush(name)
    return vectors


@pytest.mark.parametrize("backend", ["faiss", "hnswlib", "qdrant"])
def test_an_alias_switched_by_another_connector_is_seen(backend, tmp_path):
    first = open_connector(backend, data_dir=tmp_path)
    _fill(first, "small", 8)
    _fill(first, "large", 16)
    first.set_alias("live", "small")
    assert first.spec("live").dim == 8
    if backend == "qdrant":  # an embedded shard has one user at a time
        first.close()
    second = open_connector(backend, data_dir=tmp_path)
    second.set_alias("live", "large")
    if backend == "qdrant":
        second.close()
        first = open_connector(backend, data_dir=tmp_path)
    assert first.spec("live").dim == 16
    ids, _ = first.search("live", np.ones((1, 16), np.float32), k=3)
    assert len(ids[0]) == 3
    with pytest.raises(SmecError, match="do not fit a 16-d collection"):
        first.search("live", np.ones((1, 8), np.float32), k=3)
    first.close()
    second.close()


@pytest.mark.parametrize("backend", ["faiss", "hnswlib"])
def test_one_writer_per_local_collection(backend, tmp_path):
    first = open_connector(backend, data_dir=tmp_path)
    _fill(first, "c", 8)
    second = open_connector(backend, data_dir=tmp_path)
    first.add("c", ["new-1"], np.ones((1, 8), np.float32))
    with pytest.raises(SmecError, match="another connector or process is writing"):
        second.add("c", ["new-2"], np.ones((1, 8), np.float32))
    first.flush("c")
    second.add("c", ["new-2"], np.ones((1, 8), np.float32))  # sees the first's commit
    second.close()
    first.close()
    reopened = open_connector(backend, data_dir=tmp_path)
    assert reopened.count("c") == 22
    assert reopened.get("c", ["new-1", "new-2"]).ids == ["new-1", "new-2"]
    reopened.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_cursor_resumes_only_its_own_collection(backend, tmp_path):
    with open_connector(backend, data_dir=tmp_path) as connector:
        _fill(connector, "one", 8)
        _fill(connector, "two", 8)
        batch = next(iter(connector.iterate("one", batch_size=5)))
        rest = [i for b in connector.iterate("one", 5, cursor=batch.cursor) for i in b.ids]
        assert len(rest) == 15 and not set(rest) & set(batch.ids)
        if backend in ("faiss", "hnswlib"):  # row cursors name their collection
            with pytest.raises(SmecError, match="is not one 'two' gave"):
                list(connector.iterate("two", 5, cursor=batch.cursor))
            with pytest.raises(SmecError, match="is not one 'one' gave"):
                list(connector.iterate("one", 5, cursor="one:-3"))
