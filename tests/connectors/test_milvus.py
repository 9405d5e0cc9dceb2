"""Milvus-specific checks the contract cannot make: milvus-lite persistence, index params that
really reach Milvus, clear errors, and a server launcher that keeps to loopback and its folder.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

from smec_index.connectors import IndexSpec, open_connector
from smec_index.connectors.milvus import client as milvus_client
from smec_index.errors import SmecError
from smec_index.servers import milvus_standalone as milvus_standalone_module
from smec_index.servers.milvus_standalone import milvus_standalone

from .conftest import DIM, FakeClock

SUBSET = 3000  # above Milvus' 1024-row threshold, so sealed segments get a real index


def _one_line(error: pytest.ExceptionInfo[SmecError]) -> str:
    message = str(error.value)
    assert "\n" not in message, f"not one line: {message!r}"
    return message


def test_lite_persists_across_reopen(tmp_path, points):
    spec = IndexSpec(dim=DIM, metric="cosine", index="hnsw", params={"M": 8, "ef_search": 32})
    first = open_connector("milvus", data_dir=tmp_path)
    stored = first.create("kept", spec)
    assert stored.params == {"M": 8, "ef_construction": 200, "ef_search": 32}  # defaults filled
    first.add(
        "kept", points["ids"][:SUBSET], points["vectors"][:SUBSET], points["payloads"][:SUBSET]
    )
    first.close()
    assert (tmp_path / "milvus" / "milvus.db" / "collections" / "kept").is_dir()

    second = open_connector("milvus", data_dir=tmp_path)
    try:
        assert second.exists("kept")
        assert second.spec("kept") == stored
        assert second.count("kept") == SUBSET
        ids, scores = second.search("kept", points["vectors"][:5], k=3)
        assert [row[0] for row in ids] == points["ids"][:5]
        np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-4)
        sizes = second.sizes("kept")
        assert sizes.index_bytes > SUBSET * DIM * 4 // 2  # the HNSW file holds the vectors
        assert sizes.total_bytes > sizes.index_bytes
    finally:
        second.close()


def test_lite_index_params_reach_milvus_lite(tmp_path):
    connector = open_connector("milvus", data_dir=tmp_path)
    try:
        spec = IndexSpec(dim=DIM, metric="l2", index="ivf_flat", params={"nlist": 7})
        connector.create("ivf", spec)
        index = connector.backend.client.describe_index("ivf", "vector")
        assert index["index_type"] == "IVF_FLAT" and index["metric_type"] == "L2"
        assert int(index["params"]["nlist"]) == 7
        spec = IndexSpec(dim=DIM, index="ivf_flat", params={"nlist": 7, "encoding": "sq8"})
        connector.create("sq8", spec)
        assert connector.backend.client.describe_index("sq8", "vector")["index_type"] == "IVF_SQ8"
        with pytest.raises(SmecError) as error:
            connector.create("pq", IndexSpec(dim=DIM, index="ivf_flat", params={"encoding": "pq8"}))
        assert "float32 (IVF_FLAT) or sq8 (IVF_SQ8)" in _one_line(error)
        assert not connector.exists("pq")
    finally:
        connector.close()


def test_lite_rejects_ivf_pq_without_substituting(tmp_path):
    connector = open_connector("milvus", data_dir=tmp_path)
    try:
        spec = IndexSpec(dim=DIM, index="ivf_pq", params={"nlist": 16, "pq_m": 8})
        with pytest.raises(SmecError) as error:
            connector.create("pq", spec)
        message = _one_line(error)
        assert "ivf_pq" in message and "flat, hnsw, ivf_flat" in message
        assert not connector.exists("pq")
    finally:
        connector.close()


@pytest.mark.parametrize(
    ("name", "index", "params", "expected"),
    [
        ("ok_name", "ivf_flat", {"nlist": 8, "refine": 4}, "unknown ivf_flat parameter(s) refine"),
        ("ok_name", "hnsw", {"M": 8, "nprobe": 4}, "unknown hnsw parameter(s) nprobe"),
        ("bad.name", "flat", {}, "use ASCII letters, digits and '_'"),
    ],
)
def test_bad_names_and_params_are_one_line_errors(tmp_path, name, index, params, expected):
    connector = open_connector("milvus", data_dir=tmp_path)
    try:
        with pytest.raises(SmecError) as error:
            connector.create(name, IndexSpec(dim=DIM, index=index, params=params))
        assert expected in _one_line(error)
    finally:
        connector.close()


def test_unreachable_server_fails_fast_without_the_token(monkeypatch, caplog, capsys):
    secret = "s3cr3t-token-value"
    monkeypatch.setenv("MILVUS_TOKEN", secret)
    # (token, connect budget in s, tries expected): the default budget allows all 4 tries,
    # a short one stops as soon as the next wait would overrun it.
    for token, budget, expected in ((None, 10.0, 4), (secret, 10.0, 4), (secret, 2.0, 3)):
        clock = FakeClock()
        monkeypatch.setattr(milvus_client, "time", clock)
        with pytest.raises(SmecError) as error:
            open_connector("milvus", uri="http://127.0.0.1:1", token=token, timeout=budget)
        message = _one_line(error)
        assert int(re.search(r"after (\d+) tries", message)[1]) == expected
        assert len(clock.sleeps) == expected - 1 and sum(clock.sleeps) <= budget
        assert "http://127.0.0.1:1" in message and "--uri" in message
        assert secret not in message
    captured = capsys.readouterr()
    assert secret not in caplog.text + captured.out + captured.err


# ---- a real Milvus 2.3.5 standalone server -------------------------------------------------


@pytest.mark.server
@pytest.mark.parametrize(
    ("index", "params", "expected"),
    [
        (
            "hnsw",
            {"M": 12, "ef_construction": 80, "ef_search": 40},
            {"M": 12, "efConstruction": 80},
        ),
        (
            "ivf_pq",
            {"nlist": 32, "nprobe": 8, "pq_m": 16, "pq_bits": 8},
            {"nlist": 32, "m": 16, "nbits": 8},
        ),
    ],
)
def test_server_index_type_and_params_reach_milvus(milvus_server, points, index, params, expected):
    connector = open_connector("milvus", uri=milvus_server.uri, storage=str(milvus_server.storage))
    collection = f"params_{index}"
    try:
        connector.create(collection, IndexSpec(DIM, "ip", index, params), overwrite=True)
        described = connector.backend.client.describe_index(collection, "vector")
        assert described["index_type"] == index.upper() and described["metric_type"] == "IP"
        assert {key: int(described["params"][key]) for key in expected} == expected

        connector.add(collection, points["ids"][:SUBSET], points["vectors"][:SUBSET])
        assert connector.count(collection) == SUBSET  # flushes, awaits the index, loads
        described = connector.backend.client.describe_index(collection, "vector")
        assert described["indexed_rows"] == SUBSET and described["pending_index_rows"] == 0
        segments = connector.backend.client.list_loaded_segments(collection)
        assert sum(s.num_rows for s in segments) == SUBSET
        assert all(s.state_name == "Sealed" and s.index_name == "vector" for s in segments)
        sizes = connector.sizes(collection)  # counted from the server's files
        assert 0 < sizes.index_bytes <= sizes.total_bytes and "local storage" in sizes.method
    finally:
        connector.drop(collection)
        connector.close()


@pytest.mark.parametrize("backend", ["faiss", "hnswlib", "qdrant", "milvus"])
def test_names_with_hyphens_are_refused_on_every_backend(backend, tmp_path):
    """Milvus takes letters, digits and '_' only, so the contract allows no more anywhere."""
    connector = open_connector(backend, data_dir=tmp_path)
    try:
        with pytest.raises(SmecError, match="letters, digits and '_'"):
            connector.create("with-hyphen", IndexSpec(DIM, "ip", "flat"))
        connector.create("with_underscore", IndexSpec(DIM, "ip", "hnsw"))
        with pytest.raises(SmecError, match="letters, digits and '_'"):
            connector.set_alias("hyphen-alias", "with_underscore")
    finally:
        connector.close()


def _listening(pid: int) -> dict[int, str]:
    """Port -> bound address of every TCP socket ``pid`` listens on (from /proc, no ss)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except FileNotFoundError:  # closed since the listing: a busy server opens and closes
            continue  # files all the time, and skipping it must not skip the whole process
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports: dict[int, str] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A" or fields[9] not in inodes:  # 0A: LISTEN
                continue
            address, port = fields[1].rsplit(":", 1)
            if len(address) == 8:
                ip = ".".join(str(int(address[i : i + 2], 16)) for i in (6, 4, 2, 0))
            else:
                ip = "::" if int(address, 16) == 0 else address
            ports[int(port, 16)] = ip
    return ports


def _server_pid(port: int) -> int:
    """The process listening on ``port``."""
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and proc.name != str(os.getpid()):
            try:
                if port in _listening(int(proc.name)):
                    return int(proc.name)
            except OSError:
                continue
    raise AssertionError(f"no process listens on port {port}")


@pytest.mark.server
def test_server_stays_in_its_folder_and_dials_loopback(milvus_server, tmp_path_factory):
    port = milvus_server.port
    assert milvus_server.uri == f"http://127.0.0.1:{port}"
    pid = _server_pid(port)
    assert pid == milvus_server.pid
    base = Path(os.readlink(f"/proc/{pid}/cwd"))  # MilvusServer starts it in its base dir
    assert base == milvus_server.base_dir
    assert base.is_relative_to(tmp_path_factory.getbasetemp())
    assert milvus_server.storage.is_relative_to(base)
    assert Path(os.readlink(f"/proc/{pid}/exe")).is_relative_to(base)
    config = (base / "configs" / "milvus.yaml").read_text()
    for setting in ("dir: {}/data/etcd.data", "path: {}/data/rocksmq", "rootPath: {}/logs"):
        assert setting.format(base) in config
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except FileNotFoundError:  # closed since the listing
            continue
        if target.startswith("/") and not target.startswith(("/dev/", "/proc/")):
            # Only its pid file may lie outside (its folder is the binary's own choice).
            assert Path(target).is_relative_to(base) or Path(target).suffix == ".pid", target

    ip_lines = [line.split("#")[0].strip() for line in config.splitlines() if line.strip()]
    assert ip_lines.count("ip: 127.0.0.1") == 7  # every component that has an ip key
    listening = _listening(pid)
    assert listening[port] in ("0.0.0.0", "::", "127.0.0.1")
    etcd = [p for p, ip in listening.items() if ip == "127.0.0.1"]
    assert len(etcd) >= 2, f"embedded etcd should listen on loopback: {listening}"


@pytest.mark.server
@pytest.mark.xfail(
    strict=True,
    reason="Milvus 2.3.5 binds every gRPC server and the metrics port to all interfaces "
    "(':port'); '<component>.ip' only sets the address it advertises and dials",
)
def test_server_binds_loopback_only(milvus_server):
    listening = _listening(_server_pid(milvus_server.port))
    assert set(listening.values()) == {"127.0.0.1"}, listening


@pytest.mark.server
def test_launcher_stops_the_server_on_exceptions(tmp_path):
    # (The launcher itself fails when the server is not ready within its 60 s timeout.)
    with pytest.raises(RuntimeError, match="boom"), milvus_standalone(tmp_path) as server:
        pid = _server_pid(server.port)
        assert pid == server.pid and server.startup_seconds > 0
        raise RuntimeError("boom")
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
    # The file Milvus 2.3.5 writes outside its base dir (its folder chosen by the binary),
    # found where the server reports it.
    reported = milvus_standalone_module.server_info_files(tmp_path / "logs" / "milvus-stdout.log")
    assert {p.name for p in reported} == {f"server_id_{pid}"}
    assert not any(p.exists() for p in reported)
    assert (tmp_path / "logs" / "milvus-stdout.log").is_file()


def test_launcher_rejects_config_keys_milvus_would_drop(tmp_path):
    pytest.importorskip("milvus")
    with pytest.raises(SmecError) as error, milvus_standalone(tmp_path, extra_configs={"x.y": 1}):
        pass
    assert "x.y" in _one_line(error)


def test_milvus_failures_surface_as_one_line_errors(tmp_path):
    connector = open_connector("milvus", data_dir=tmp_path)
    try:
        with pytest.raises(SmecError) as error:
            connector.backend.client.describe_collection("no_such_collection")
        message = str(error.value)
        assert "\n" not in message and "describe_collection failed" in message
    finally:
        connector.close()
