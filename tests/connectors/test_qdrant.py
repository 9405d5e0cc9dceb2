"""Qdrant beyond the contract: settings reach the engine, ids, persistence, secrets, servers.

The edge tests read back what Qdrant itself wrote (``segment.json`` per segment and the
shard's ``info()``), so a mapping that silently fell back to Qdrant's defaults would fail.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import numpy as np
import pytest
from qdrant_client import QdrantClient, models

from smec_index.connectors import IndexSpec, Sizes, open_connector
from smec_index.connectors.qdrant import client_store, server
from smec_index.connectors.qdrant.client_store import ClientStore, spec_from_info
from smec_index.connectors.qdrant.edge_store import segment_configs
from smec_index.connectors.qdrant.server import telemetry_sizes
from smec_index.connectors.qdrant.settings import QdrantSettings
from smec_index.errors import SmecError

from .conftest import DIM, FakeClock

SMALL = 3000  # points for the per-setting tests: enough for HNSW, quick to build
HNSW = {"M": 8, "ef_construction": 64, "ef_search": 64}
ODD_IDS = [
    "42",
    "-7",
    "00000000-0000-0000-0000-000000000001",
    "doc/with/slashes",
    "ünïcödé id",
    "  spaces  ",
    "x" * 300,
]
SECRET = "secret-123"


def _small(points, n: int = SMALL):
    return points["ids"][:n], points["vectors"][:n], points["payloads"][:n]


def _recall(found: list[list[str]], vectors: np.ndarray, queries: np.ndarray, ids) -> float:
    exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    hits = [
        len(set(row) & {ids[j] for j in top}) / 10 for row, top in zip(found, exact, strict=True)
    ]
    return float(np.mean(hits))


@pytest.mark.parametrize(
    "quantization, bits, expected",
    [
        (None, None, None),
        ("scalar", None, {"scalar": {"type": "int8", "quantile": 0.99}}),
        ("binary", None, {"binary": {"encoding": "one_bit"}}),
        ("binary", 1.5, {"binary": {"encoding": "one_and_half_bits"}}),
        ("binary", 2, {"binary": {"encoding": "two_bits"}}),
        ("product", None, {"product": {"compression": "x16"}}),
        ("turbo", None, {"turbo": {"bits": "bits4"}}),
        ("turbo", 1.5, {"turbo": {"bits": "bits1_5"}}),
    ],
)
def test_edge_settings_reach_the_engine(tmp_path, points, quantization, bits, expected):
    ids, vectors, payloads = _small(points)
    connector = open_connector("qdrant", data_dir=tmp_path)
    bits_param = {} if bits is None else {"bits": bits}
    spec = IndexSpec(dim=DIM, params={**HNSW, "quantization": quantization, **bits_param})
    connector.create("tuned", spec)
    connector.add("tuned", ids, vectors, payloads)
    assert connector.count("tuned") == len(ids)  # builds the index (lazily, once)

    info = connector.backend.store.shard("tuned").info()
    assert info.points_count == SMALL and info.indexed_vectors_count == SMALL
    configs = segment_configs(tmp_path / "qdrant" / "tuned" / "shard")
    indexed = [c for c in configs if c["index"]["type"] == "hnsw"]
    assert len(indexed) == 1, "one HNSW segment holds the collection"
    options = indexed[0]["index"]["options"]
    assert (options["m"], options["ef_construct"], options["full_scan_threshold"]) == (8, 64, 10)
    stored = indexed[0]["quantization_config"]
    if expected is None:
        assert stored is None
    else:
        ((kind, fields),) = expected.items()
        assert set(stored) == {kind} and fields.items() <= stored[kind].items()

    # Rescoring with the originals: every score is the exact cosine of the returned point.
    queries = points["queries"][:20]
    found, scores = connector.search("tuned", queries, k=10)
    row_of = {point_id: n for n, point_id in enumerate(ids)}
    exact = np.array(
        [[queries[q] @ vectors[row_of[i]] for i in row] for q, row in enumerate(found)]
    )
    np.testing.assert_allclose(scores, exact, atol=1e-5)
    # Codes of 1 to 2 bits per dimension miss some true neighbours even oversampled (their
    # ladder is the next test); int8, product and 4-bit TurboQuant keep recall high.
    if quantization in (None, "scalar", "product") or (quantization, bits) == ("turbo", None):
        assert _recall(found, vectors, queries, ids) >= 0.9
    connector.close()


def test_more_bits_per_dimension_find_more(tmp_path, points):
    """Binary 1 / 1.5 / 2 bits and TurboQuant 1 / 2 / 4 / 8 bits, without oversampling
    (the codes alone pick the candidates): recall rises with the bits."""
    ids, vectors, payloads = _small(points)
    queries = points["queries"]
    connector = open_connector("qdrant", data_dir=tmp_path)
    for quantization, ladder in (("binary", (1, 1.5, 2)), ("turbo", (1, 2, 4, 8))):
        recalls = []
        for bits in ladder:
            name = f"{quantization}_{str(bits).replace('.', '_')}"
            params = {**HNSW, "quantization": quantization, "bits": bits, "oversampling": 1}
            connector.create(name, IndexSpec(dim=DIM, params=params))
            connector.add(name, ids, vectors, payloads)
            recalls.append(_recall(connector.search(name, queries, 10)[0], vectors, queries, ids))
        assert recalls == sorted(recalls) and recalls[0] < recalls[-1], (quantization, recalls)
    connector.close()


def test_without_rescoring_search_ranks_by_the_codes_and_leaves_the_originals_out(tmp_path, points):
    """``rescore=False``: the hits' scores are the codes' estimates, not exact cosines, and
    ``index_bytes`` drops the float32 originals that search no longer reads (their
    ``SMALL x DIM x 4`` bytes, give or take a page)."""
    ids, vectors, payloads = _small(points)
    queries = points["queries"][:50]
    connector = open_connector("qdrant", data_dir=tmp_path)
    row_of = {point_id: n for n, point_id in enumerate(ids)}
    sizes, error, recall = {}, {}, {}
    for rescore in (True, False):
        name = f"rescore_{rescore}"
        params = {**HNSW, "quantization": "turbo", "bits": 2, "rescore": rescore}
        connector.create(name, IndexSpec(dim=DIM, params=params))
        connector.add(name, ids, vectors, payloads)
        found, scores = connector.search(name, queries, k=10)
        exact = np.array(
            [[queries[q] @ vectors[row_of[i]] for i in row] for q, row in enumerate(found)]
        )
        error[rescore] = float(np.abs(np.asarray(scores) - exact).max())
        recall[rescore] = _recall(found, vectors, queries, ids)
        sizes[rescore] = connector.sizes(name)
    assert error[True] < 1e-5 < 1e-3 < error[False]
    assert recall[True] >= recall[False] > 0.3  # still a search, only a coarser one
    originals = SMALL * DIM * 4
    dropped = sizes[True].index_bytes - sizes[False].index_bytes
    assert originals <= dropped <= originals + 2 * 4096, (dropped, originals)
    assert "originals, unread without rescoring, left out" in sizes[False].method
    assert sizes[False].total_bytes > sizes[False].index_bytes + originals  # still kept
    connector.close()


def test_edge_searches_walk_the_graph_and_flat_scans(tmp_path, points):
    ids, vectors, _ = _small(points)
    connector = open_connector("qdrant", data_dir=tmp_path)
    recall = {}
    for index, params in [("flat", {}), ("hnsw", {"M": 4, "ef_construction": 8, "ef_search": 4})]:
        connector.create(index, IndexSpec(dim=DIM, index=index, params=params))
        connector.add(index, ids, vectors)
        assert connector.count(index) == SMALL  # builds the index (lazily, once)
        indexed = connector.backend.store.shard(index).info().indexed_vectors_count
        assert indexed == (SMALL if index == "hnsw" else 0)
        found, _ = connector.search(index, points["queries"], k=10)
        recall[index] = _recall(found, vectors, points["queries"], ids)
    # A scan (what Qdrant's default full_scan_threshold would do here) is exact; a sparse
    # graph with a narrow beam is not, which shows the searches walk it.
    assert recall["flat"] == 1.0 and recall["hnsw"] < 0.99
    connector.close()


def test_edge_persists_across_reopen(tmp_path, points):
    ids, vectors, payloads = _small(points)
    spec = IndexSpec(dim=DIM, params={**HNSW, "quantization": "scalar"})
    first = open_connector("qdrant", data_dir=tmp_path, mode="edge")
    stored = first.create("kept", spec)
    assert stored.params == {**HNSW, "quantization": "scalar"}
    first.add("kept", ids, vectors, payloads)
    before, _ = first.search("kept", points["queries"], k=10)
    intruder = open_connector("qdrant", data_dir=tmp_path)
    with pytest.raises(SmecError, match="another connector or process has it open"):
        intruder.count("kept")  # the shard is locked
    intruder.close()
    first.close()

    second = open_connector("qdrant", data_dir=tmp_path, mode="edge")
    assert second.exists("kept") and second.spec("kept") == stored
    assert second.count("kept") == SMALL
    after, _ = second.search("kept", points["queries"], k=10)
    assert after == before
    assert sum(len(batch.ids) for batch in second.iterate("kept")) == SMALL
    sizes = second.sizes("kept")
    assert sizes.index_bytes > SMALL * DIM  # at least one byte per int8 code
    assert sizes.total_bytes > sizes.index_bytes  # plus payloads, id tracker, log
    second.drop("kept")
    assert not (tmp_path / "qdrant" / "kept").exists()
    second.close()
    second.close()  # closing twice is fine


@pytest.mark.parametrize("mode", ["edge", "local"])
def test_ids_round_trip_and_payloads_come_back_clean(tmp_path, mode):
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((len(ODD_IDS), DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    payloads = [{"n": n, "tag": ["a", "b"]} for n in range(len(ODD_IDS))]
    connector = open_connector("qdrant", data_dir=tmp_path, mode=mode)
    connector.create("odd", IndexSpec(dim=DIM, params=HNSW))
    connector.add("odd", ODD_IDS, vectors, payloads)

    found, scores = connector.search("odd", vectors, k=len(ODD_IDS) + 2)
    assert [row[0] for row in found] == ODD_IDS
    assert all(row[-2:] == ["", ""] for row in found) and np.isneginf(scores[:, -2:]).all()
    seen = {}
    for batch in connector.iterate("odd", batch_size=3):
        seen.update(zip(batch.ids, batch.payloads, strict=True))
    assert seen == dict(zip(ODD_IDS, payloads, strict=True))

    with pytest.raises(SmecError, match="reserved"):
        connector.add("odd", ["y"], vectors[:1], [{"_smec_id": "z"}])
    connector.add("odd", ODD_IDS[:1], vectors[1:2])  # same id: overwritten, not added
    assert connector.count("odd") == len(ODD_IDS)
    connector.close()


@pytest.mark.parametrize("mode", ["edge", "local"])
def test_l2_scores_are_negated_euclidean_distances(tmp_path, mode):
    vectors = np.zeros((3, DIM), np.float32)
    vectors[1, 0], vectors[2, 0] = 3.0, 5.0
    connector = open_connector("qdrant", data_dir=tmp_path, mode=mode)
    connector.create("l2", IndexSpec(dim=DIM, metric="l2", index="flat"))
    connector.add("l2", ["zero", "three", "five"], vectors)
    found, scores = connector.search("l2", vectors[:1], k=3)
    assert found == [["zero", "three", "five"]]
    np.testing.assert_allclose(scores, [[0.0, -3.0, -5.0]], atol=1e-5)
    connector.close()


def test_local_mode_reopens_after_close(tmp_path, points):
    ids, vectors, payloads = _small(points, 500)
    first = open_connector("qdrant", data_dir=tmp_path, mode="local")
    first.create("loc", IndexSpec(dim=DIM, params={**HNSW, "quantization": "product"}))
    first.add("loc", ids, vectors, payloads)
    first.close()
    second = open_connector("qdrant", data_dir=tmp_path, mode="local")
    assert second.spec("loc").params["quantization"] == "product"
    assert second.count("loc") == 500
    sizes = second.sizes("loc")  # local mode has no index to measure, only its files
    assert sizes.index_bytes is None and sizes.total_bytes > 0 and "local mode" in sizes.method
    found, _ = second.search("loc", vectors[:5], k=1)
    assert [row[0] for row in found] == ids[:5]
    second.close()


def test_bad_specs_and_modes_say_what_to_do(tmp_path):
    connector = open_connector("qdrant", data_dir=tmp_path)
    with pytest.raises(SmecError, match="use scalar, binary, product or turbo"):
        connector.create("bad", IndexSpec(dim=DIM, params={"quantization": "int4"}))
    for params, message in (
        ({"quantization": "scalar", "bits": 2}, "bits=2 needs quantization binary or turbo"),
        ({"quantization": "binary", "bits": 4}, "binary bits=4: use one of 1, 1.5, 2"),
        ({"quantization": "turbo", "bits": True}, "turbo bits=True: use one of 1, 1.5, 2, 4, 8"),
        ({"rescore": False}, "rescore=false needs a quantization"),
        ({"quantization": "scalar", "rescore": "no"}, "rescore 'no': use true or false"),
        ({"quantization": "scalar", "rescore": False, "oversampling": 2}, "oversampling needs"),
    ):
        with pytest.raises(SmecError, match=re.escape(message)):
            connector.create("bad", IndexSpec(dim=DIM, params=params))
    with pytest.raises(SmecError, match="rescore=false needs index hnsw: a flat index"):
        flat = IndexSpec(dim=DIM, index="flat", params={"quantization": "turbo", "rescore": False})
        connector.create("bad", flat)
    with pytest.raises(SmecError, match="no 'ivf_pq' index"):
        connector.create("bad", IndexSpec(dim=DIM, index="ivf_pq"))
    with pytest.raises(SmecError, match=r"no collection 'missing' .*create \(build\) it first"):
        connector.count("missing")
    connector.close()
    with pytest.raises(SmecError, match="unknown Qdrant mode"):
        open_connector("qdrant", data_dir=tmp_path, mode="cloud")


def _served(info: models.CollectionInfo, **config) -> models.CollectionInfo:
    """``info`` with config fields as a server keeps them (local mode reports its defaults for
    HNSW, quantization and optimizers, whatever a collection was created with)."""
    return info.model_copy(update={"config": info.config.model_copy(update=config)})


def test_spec_is_rebuilt_from_a_collection_without_one(tmp_path):
    client = QdrantClient(path=str(tmp_path / "qdrant-local"))
    binary = models.BinaryQuantization(binary=models.BinaryQuantizationConfig())
    client.create_collection(  # created by another tool, or a server before 1.16
        "foreign",
        vectors_config=models.VectorParams(size=8, distance=models.Distance.EUCLID),
        hnsw_config=models.HnswConfigDiff(m=12, ef_construct=80, full_scan_threshold=10),
        quantization_config=binary,
    )
    info = client.get_collection("foreign")
    assert info.config.metadata is None
    spec = spec_from_info(info)
    hnsw = info.config.hnsw_config
    assert (spec.dim, spec.metric, spec.index) == (8, "l2", "hnsw")
    assert spec.params == {"M": hnsw.m, "ef_construction": hnsw.ef_construct}

    served = _served(
        info,
        hnsw_config=models.HnswConfig(m=12, ef_construct=80, full_scan_threshold=10),
        quantization_config=binary,
    )
    assert spec_from_info(served).params == {
        "M": 12,
        "ef_construction": 80,
        "quantization": "binary",
    }
    optimizer = served.config.optimizer_config.model_copy(update={"indexing_threshold": 0})
    flat = spec_from_info(_served(served, optimizer_config=optimizer))  # indexing off: flat
    assert flat.index == "flat" and flat.params == {"quantization": "binary"}
    two_bits = models.BinaryQuantization(
        binary=models.BinaryQuantizationConfig(encoding=models.BinaryQuantizationEncoding.TWO_BITS)
    )
    turbo = models.TurboQuantization(
        turbo=models.TurboQuantQuantizationConfig(bits=models.TurboQuantBitSize.BITS1_5)
    )
    for config, expected in ((two_bits, ("binary", 2.0)), (turbo, ("turbo", 1.5))):
        params = spec_from_info(_served(served, quantization_config=config)).params
        assert (params["quantization"], params["bits"]) == expected

    stored = IndexSpec(dim=8, params={"ef_search": 7})
    client.create_collection(
        "tagged",
        vectors_config=models.VectorParams(size=8, distance=models.Distance.COSINE),
        metadata={"smec_index_spec": stored.to_dict()},
    )
    assert spec_from_info(client.get_collection("tagged")) == stored  # the stored spec wins
    client.create_collection(
        "named", vectors_config={"text": models.VectorParams(size=8, distance="Cosine")}
    )
    with pytest.raises(SmecError, match="named vectors"):
        spec_from_info(client.get_collection("named"))
    client.close()

    connector = open_connector("qdrant", data_dir=tmp_path, mode="local")
    with pytest.raises(SmecError, match="not made by smec-index"):  # local mode keeps metadata:
        connector.spec("foreign")  # no spec is a user's own collection (a server may drop it)
    assert connector.spec("tagged") == stored
    connector.close()


class _IndexingServer:
    """get_collection answers from a script of (status, indexed) states, then the last one."""

    def __init__(self, *states: tuple[str, int]) -> None:
        self.states, self.updates = list(states), 0

    def get_collection(self, collection):
        status, indexed = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        return SimpleNamespace(
            status=models.CollectionStatus(status),
            indexed_vectors_count=indexed,
            points_count=100,
            optimizer_status="error: disk full",
        )

    def update_collection(self, collection, optimizers_config):
        self.updates += 1


def test_server_build_waits_for_the_index(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(client_store, "time", clock)
    settings = QdrantSettings.from_spec(IndexSpec(dim=DIM).resolved())
    # Green before the optimizer starts must not count; grey gets the optimizer nudged.
    fake = _IndexingServer(("green", 0), ("grey", 0), ("yellow", 60), ("green", 100))
    ClientStore(fake, "http://fake").build("c", settings)
    assert fake.states == [("green", 100)] and fake.updates == 2
    assert clock.sleeps == [0.2] * 3
    # A segment too small to index stays plain: green for ~1 s is done.
    clock.sleeps.clear()
    ClientStore(_IndexingServer(("green", 0)), "http://fake").build("c", settings)
    assert clock.sleeps == [0.2] * 4
    with pytest.raises(SmecError, match="failed to index 'c' .*disk full"):
        ClientStore(_IndexingServer(("red", 0)), "http://fake").build("c", settings)
    clock.sleeps.clear()
    with pytest.raises(SmecError, match="still indexing 'c' after 3600 s"):
        ClientStore(_IndexingServer(("yellow", 10)), "http://fake").build("c", settings)
    assert sum(clock.sleeps) == pytest.approx(client_store.BUILD_TIMEOUT_S, abs=0.3)


def _assert_clean(exc: BaseException, *hidden: str) -> None:
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    for secret in hidden:
        assert secret not in str(exc) and secret not in repr(exc) and secret not in text
    assert "\n" not in str(exc)


@pytest.mark.parametrize("via_env", [False, True])
def test_unreachable_server_fails_fast_without_the_key(monkeypatch, via_env):
    if via_env:
        monkeypatch.setenv("QDRANT_API_KEY", SECRET)
    clock = FakeClock()
    monkeypatch.setattr(server, "time", clock)
    with pytest.raises(SmecError) as caught:
        open_connector("qdrant", url="http://127.0.0.1:1", api_key=None if via_env else SECRET)
    message = str(caught.value)
    # A few tries with doubling waits, none whose probe could end past the ~8 s budget.
    tries = int(re.search(r"after (\d+) tries", message)[1])
    assert tries == len(clock.sleeps) + 1 >= 3
    assert all(later == 2 * earlier for earlier, later in itertools.pairwise(clock.sleeps))
    assert sum(clock.sleeps) + server._PROBE_TIMEOUT_S <= server._PROBE_BUDGET_S
    assert "http://127.0.0.1:1" in message and "QDRANT_URL" in message
    _assert_clean(caught.value, SECRET)
    # user:password in the URL is refused before any request, and never shown.
    with_password = "http://user:pa55@127.0.0.1:1"  # (a traceback quotes the raising line)
    with pytest.raises(SmecError, match="--api-key") as userinfo:
        open_connector("qdrant", url=with_password)
    _assert_clean(userinfo.value, "pa55")


class _FakeQdrant(BaseHTTPRequestHandler):
    """Answers GET /collections like Qdrant (or 401), recording the api-key header."""

    status = 200
    seen_keys: list[str | None] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        type(self).seen_keys.append(self.headers.get("api-key"))
        body = json.dumps({"result": {"collections": []}, "status": "ok", "time": 0.0})
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def fake_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeQdrant)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _FakeQdrant.status, _FakeQdrant.seen_keys = 200, []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_api_key_is_sent_but_never_shown(fake_server):
    with pytest.warns(UserWarning, match="insecure connection"):
        connector = open_connector("qdrant", url=fake_server, api_key=SECRET)
    assert _FakeQdrant.seen_keys == [SECRET]
    assert SECRET not in repr(connector) and SECRET not in str(connector)
    assert fake_server in repr(connector)
    connector.close()

    _FakeQdrant.status = 401
    with pytest.raises(SmecError, match="refused the API key") as caught:
        open_connector("qdrant", url=fake_server, api_key=SECRET)
    _assert_clean(caught.value, SECRET)


def test_server_sizes_come_from_telemetry_segments():
    def segment(disk, vectors=None):
        info = {"disk_usage_bytes": disk}
        if vectors is not None:
            info["vectors_size_bytes"] = vectors
        return {"info": info}

    shard = {"local": {"segments": [segment(1000, 600), segment(24, 40)]}}
    telemetry = {
        "result": {
            "collections": {
                "collections": [
                    {"id": "other", "shards": [{"local": {"segments": [segment(5, 5)]}}]},
                    {"id": "c", "shards": [shard]},
                ]
            }
        }
    }
    sizes = telemetry_sizes(telemetry, "c")
    assert (sizes.index_bytes, sizes.total_bytes) == (640, 1024)
    assert "telemetry" in sizes.method
    shard["local"]["segments"] = [segment(1000), segment(24)]  # no vector sizes reported
    sizes = telemetry_sizes(telemetry, "c")
    assert (sizes.index_bytes, sizes.total_bytes) == (None, 1024)
    missing = telemetry_sizes(telemetry, "missing")
    assert isinstance(missing, Sizes) and (missing.index_bytes, missing.total_bytes) == (None, None)


@pytest.mark.server
def test_server_builds_hnsw_with_the_spec(qdrant_url, points):
    ids, vectors, payloads = _small(points)
    connector = open_connector("qdrant", url=qdrant_url)
    spec = IndexSpec(dim=DIM, params={**HNSW, "quantization": "scalar"})
    try:
        stored = connector.create("smec_test_server", spec, overwrite=True)
        connector.add("smec_test_server", ids, vectors, payloads)
        assert connector.count("smec_test_server") == len(ids)
        info = connector.backend.store.client.get_collection("smec_test_server")
        assert info.status.value == "green" and info.indexed_vectors_count >= SMALL
        assert (info.config.hnsw_config.m, info.config.hnsw_config.ef_construct) == (8, 64)
        assert info.config.quantization_config.scalar is not None
        assert connector.spec("smec_test_server") == stored == spec
        sizes = connector.sizes("smec_test_server")
        assert sizes.index_bytes > 0 and sizes.total_bytes > 0
        found, _ = connector.search("smec_test_server", vectors[:5], k=1)
        assert [row[0] for row in found] == ids[:5]
        odd = np.repeat(vectors[:1], len(ODD_IDS), axis=0)
        connector.add("smec_test_server", ODD_IDS, odd)
        seen = {i for batch in connector.iterate("smec_test_server") for i in batch.ids}
        assert set(ODD_IDS) <= seen
    finally:
        connector.drop("smec_test_server")
        connector.close()


def test_unknown_index_parameters_are_refused(tmp_path):
    connector = open_connector("qdrant", data_dir=tmp_path)
    try:
        with pytest.raises(SmecError, match=r"unknown hnsw parameter\(s\) ef_serach"):
            connector.create("typo", IndexSpec(dim=DIM, params={"ef_serach": 64}))
        assert not connector.exists("typo")
    finally:
        connector.close()
