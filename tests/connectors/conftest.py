"""Connector fixtures: one seeded dataset, and the real servers the tests start themselves."""

from __future__ import annotations

import os

import numpy as np
import pytest

from smec_index.synthetic import synthetic_vectors

N, NQ, DIM = 10_000, 100, 64


@pytest.fixture(scope="session")
def points():
    """10k seeded unit vectors of intrinsic rank 16, ids, payloads, 100 queries, exact top-10."""
    vectors = synthetic_vectors(N + NQ, DIM, rank=16, noise=0.05, seed=11)
    corpus, queries = vectors[:N], vectors[N:]
    ids = [f"doc-{i}" for i in range(N)]
    payloads = [{"title": f"title {i}", "n": i} for i in range(N)]
    exact = np.argsort(-(queries @ corpus.T), axis=1)[:, :10]
    return {
        "ids": ids,
        "vectors": corpus,
        "payloads": payloads,
        "queries": queries,
        "exact": [[ids[j] for j in row] for row in exact],
    }


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory):
    """A real Milvus 2.3.5 standalone server on loopback, files in a temp dir (~10 s);
    its handle (``.uri``, ``.storage``)."""
    from smec_index.servers.milvus_standalone import milvus_standalone

    with milvus_standalone(tmp_path_factory.mktemp("milvus-server")) as server:
        yield server


@pytest.fixture(scope="session")
def qdrant_url():
    url = os.environ.get("QDRANT_URL")
    if not url:
        pytest.skip(
            "QDRANT_URL is not set: Qdrant server tests skipped (no server binary "
            "can be installed here; set QDRANT_URL=http://host:6333 to run them)"
        )
    return url


class FakeClock:
    """A fake ``time`` for the module under test: sleeping moves it on, nobody waits."""

    def __init__(self) -> None:
        self.now, self.sleeps = 1000.0, []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
