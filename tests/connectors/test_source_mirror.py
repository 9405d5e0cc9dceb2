"""One contract for every :class:`Source` / :class:`Mirror` pair (what ``migrate`` reads a
user's collection with and writes its copy with), over real engines: qdrant-client's local
mode, milvus-lite, a Milvus 2.3.5 server, and a Qdrant server where ``QDRANT_URL`` is set."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from smec_index.connectors.source import Partition, open_source, schema_diff
from smec_index.synthetic import synthetic_vectors

N, DIM = 600, 16


def qdrant_collection(client, name: str, vectors: np.ndarray) -> list:
    from qdrant_client import models

    client.create_collection(name, vectors_config={
        "text": models.VectorParams(size=DIM, distance=models.Distance.COSINE)})  # fmt: skip
    keys = [i if i % 2 else str(uuid.UUID(int=i)) for i in range(N)]
    payloads = [{"n": i, "tags": [i % 3]} for i in range(N)]
    client.upsert(name, models.Batch(ids=keys, vectors={"text": vectors.tolist()},
                                     payloads=payloads))  # fmt: skip
    return keys


def milvus_collection(client, name: str, vectors: np.ndarray) -> list:
    from pymilvus import DataType

    schema = client.create_schema(auto_id=False, enable_dynamic_field=True)
    schema.add_field("key", DataType.VARCHAR, is_primary=True, max_length=16)
    schema.add_field("emb", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("n", DataType.INT64)
    index = client.prepare_index_params()
    index.add_index("emb", index_type="FLAT", metric_type="COSINE")
    client.create_collection(name, schema=schema, index_params=index)
    keys = [f"k{i}" for i in range(N)]
    client.insert(name, [{"key": keys[i], "emb": vectors[i].tolist(), "n": i, "extra": i % 3}
                         for i in range(N)])  # fmt: skip
    client.flush(name)
    return keys


@pytest.fixture(params=["qdrant-local", "milvus-lite",
                        pytest.param("milvus-server", marks=pytest.mark.server),
                        pytest.param("qdrant-server", marks=pytest.mark.server)])  # fmt: skip
def opened(request, tmp_path):
    """(source over a fresh collection ``src_<hex>``, its keys, its vectors)."""
    vectors = synthetic_vectors(N, DIM, rank=6, noise=0.05, seed=21)
    name = f"src_{uuid.uuid4().hex[:8]}"
    if request.param.startswith("qdrant"):
        from qdrant_client import QdrantClient

        if request.param == "qdrant-server":
            where = {"url": request.getfixturevalue("qdrant_url")}
            client = QdrantClient(url=where["url"])
        else:
            where = {"path": str(tmp_path / "q")}
            client = QdrantClient(path=where["path"])
        keys = qdrant_collection(client, name, vectors)
        client.close()
        backend = "qdrant"
    else:
        from pymilvus import MilvusClient

        if request.param == "milvus-server":
            uri = request.getfixturevalue("milvus_server").uri
        else:
            uri = str(tmp_path / "m.db")
        client = MilvusClient(uri=uri)
        keys = milvus_collection(client, name, vectors)
        client.close()
        if request.param == "milvus-lite":
            from milvus_lite.server_manager import server_manager_instance

            server_manager_instance.release_server(str(tmp_path / "m.db"))
        where, backend = {"uri": uri}, "milvus"
    source = open_source(backend, name, **where)
    yield source, keys, vectors
    mirror = source.mirror()
    if mirror.exists(f"{name}_4") and not mirror.is_alias(f"{name}_4"):
        mirror.drop(f"{name}_4")
    source.close()
    if request.param == "milvus-server":  # a server outlives the test: the source, as made
        from pymilvus import MilvusClient

        client = MilvusClient(uri=uri)
        client.drop_collection(name)
        client.close()


def test_source_reads_every_point_once_in_a_resumable_order(opened):
    source, keys, vectors = opened
    assert source.count() == N and source.info.dim == DIM and source.info.metric == "cosine"
    batches = list(source.iterate(100, None))
    read = [i for b in batches for i in b.ids]
    assert sorted(read) == sorted(str(k) for k in keys) and len(set(read)) == N
    resumed = [i for b in source.iterate(100, batches[2].cursor) for i in b.ids]
    assert resumed == read[300:]  # a cursor resumes right after its batch
    assert sorted(i for ids in source.ids(250) for i in ids) == sorted(read)
    got = source.get([source.raw_id(str(keys[5])), source.raw_id(str(keys[8]))])
    assert got.ids == [str(keys[5]), str(keys[8])]
    unit = vectors[[5, 8]] / np.linalg.norm(vectors[[5, 8]], axis=1, keepdims=True)
    assert np.allclose(got.vectors, unit, atol=1e-5)  # Qdrant normalises cosine vectors
    assert got.payloads[0]["n"] == 5
    assert source.search(vectors[[7]], 3)[0][0] == str(keys[7])
    halves = [[i for b in source.iterate(100, None, Partition(k, 2)) for i in b.ids]
              for k in (0, 1)]  # fmt: skip
    assert sorted(halves[0] + halves[1]) == sorted(read) and not set(halves[0]) & set(halves[1])


def test_mirror_copies_everything_but_the_dim(opened):
    source, keys, vectors = opened
    mirror, name = source.mirror(), f"{source.info.collection}_4"
    assert schema_diff(source.schema(), mirror.planned_schema(4), {mirror.dim_path()}) == []
    assert not mirror.exists(name) and mirror.resolve(name) is None
    mirror.create(name, 4)
    assert schema_diff(source.schema(), mirror.schema(name), {mirror.dim_path()}) == []
    small = np.random.default_rng(0).normal(size=(N, 4)).astype(np.float32)
    small /= np.linalg.norm(small, axis=1, keepdims=True)
    row = {str(k): i for i, k in enumerate(keys)}
    written = 0
    for batch in source.iterate(250, None):
        mirror.write(name, batch, small[[row[i] for i in batch.ids]])
        written += len(batch.ids)
    mirror.flush(name)
    mirror.verify_layout(name)
    assert written == N and mirror.count(name) == N
    assert sorted(i for ids in mirror.ids(name, 250) for i in ids) == sorted(str(k) for k in keys)
    raw = [source.raw_id(str(keys[i])) for i in (3, 4)]
    copied, original = mirror.get(name, raw), source.get(raw)
    assert copied.ids == original.ids and copied.payloads == original.payloads
    assert np.allclose(copied.vectors, small[[3, 4]], atol=1e-5)
    assert mirror.search(name, small[[9]], 1)[0][0] == str(keys[9])
    alias = f"{name}_live"
    mirror.set_alias(alias, name)
    assert mirror.is_alias(alias) and mirror.resolve(alias) == name and mirror.exists(alias)
    assert mirror.count(alias) == N
    mirror.drop_alias(alias)
    assert not mirror.exists(alias)
