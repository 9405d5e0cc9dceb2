"""`smec-index migrate` on collections made with the backends' own clients: streamed,
resumed after SIGKILL, verified, switched by alias, the source never written."""

from __future__ import annotations

import hashlib
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from smec_index.cli import main
from smec_index.synthetic import synthetic_vectors
from tests.probes import run_probe

DIM = 64


def qdrant_source(path: Path, n: int, seed: int = 5) -> np.ndarray:
    """A collection made with qdrant-client's own API (local mode): integer ids, payloads."""
    from qdrant_client import QdrantClient, models

    from smec_index.connectors.qdrant.client_store import _skip_fsync

    vectors = synthetic_vectors(n, DIM, rank=10, noise=0.05, seed=seed)
    client = QdrantClient(path=str(path))
    client.create_collection(
        "docs", vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE)
    )
    _skip_fsync(client, "docs")
    for start in range(0, n, 5000):
        ids = list(range(start, min(n, start + 5000)))
        client.upsert(
            "docs",
            points=models.Batch(
                ids=ids,
                vectors=vectors[ids].tolist(),
                payloads=[{"title": f"title {i}", "tags": [i % 3]} for i in ids],
            ),
        )
    client.close()
    return vectors


def qdrant_checksum(path: Path) -> str:
    """SHA-256 over the source's ids, vectors and payloads, in id order."""
    from qdrant_client import QdrantClient

    client = QdrantClient(path=str(path))
    points, offset = [], None
    while True:
        records, offset = client.scroll("docs", limit=5000, offset=offset, with_vectors=True)
        points += records
        if offset is None:
            break
    client.close()
    digest = hashlib.sha256()
    for p in sorted(points, key=lambda p: p.id):
        digest.update(json.dumps([p.id, np.round(p.vector, 6).tolist(), p.payload]).encode())
    return digest.hexdigest()


def milvus_source(db: Path, n: int) -> np.ndarray:
    """A milvus-lite collection made with pymilvus: INT64 key, vector, scalar fields."""
    from pymilvus import DataType, MilvusClient

    vectors = synthetic_vectors(n, DIM, rank=10, noise=0.05, seed=7)
    client = MilvusClient(str(db))
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("pk", DataType.INT64, is_primary=True)
    schema.add_field("emb", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("title", DataType.VARCHAR, max_length=64)
    schema.add_field("year", DataType.INT64)
    index = client.prepare_index_params()
    index.add_index("emb", index_type="FLAT", metric_type="COSINE")
    client.create_collection("docs", schema=schema, index_params=index)
    rows = [
        {"pk": i, "emb": vectors[i].tolist(), "title": f"title {i}", "year": 2000 + i % 20}
        for i in range(n)
    ]
    client.insert("docs", rows)
    client.flush("docs")
    client.close()
    return vectors


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result


def test_qdrant_local_to_qdrant_edge_verified_switched_and_rolled_back(tmp_path):
    source = tmp_path / "src"
    qdrant_source(source, 3000)
    before = qdrant_checksum(source)
    common = ["migrate", "--backend", "qdrant", "--path", source, "--collection", "docs",
              "--dim", 16, "--data-dir", tmp_path / "data", "--alias", "docs_live",
              "--quiet"]  # fmt: skip

    plan = run(*common, "--dry-run", "--json")
    assert plan.exit_code == 0, plan.output
    planned = json.loads(plan.stdout)
    assert planned["dry_run"] is True and planned["count"] == 3000 and planned["recall@10"] > 0.9
    assert not (tmp_path / "data" / "qdrant").exists(), "a dry run wrote something"

    done = run(*common, "--json")
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)
    keys = {"source", "target", "alias", "count", "dim", "verified", "recall@10",
            "index_bytes_before", "index_bytes_after", "seconds"}  # fmt: skip
    assert keys <= set(summary)
    assert summary["verified"] and summary["count"] == 3000 and summary["recall@10"] >= 0.9
    assert qdrant_checksum(source) == before, "the source changed"

    from smec_index.connectors import open_connector

    with open_connector("qdrant", data_dir=tmp_path / "data") as connector:
        assert connector.resolve("docs_live") == "docs_16"
        got = connector.get("docs_16", ["7"])
        assert got.payloads == [{"title": "title 7", "tags": [1]}]
    shown = run("search", "--like", "7", "--backend", "qdrant", "--collection", "docs_live",
                "--data-dir", tmp_path / "data", "--json")  # fmt: skip
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["hits"][0]["id"] == "7"

    back = run(*common, "--rollback", "--json")
    assert back.exit_code == 0, back.output
    with open_connector("qdrant", data_dir=tmp_path / "data") as connector:
        assert connector.resolve("docs_live") is None  # it pointed nowhere before


def test_milvus_lite_source_int_keys_and_scalar_fields(tmp_path):
    db = tmp_path / "src.db"
    milvus_source(db, 2000)
    result = run("migrate", "--backend", "milvus", "--uri", db, "--collection", "docs",
                 "--dim", 16, "--to-backend", "qdrant", "--data-dir", tmp_path / "data",
                 "--alias", "live", "--json", "--quiet")  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["verified"] and summary["count"] == 2000
    assert summary["index_bytes_before"] is None or summary["index_bytes_before"] > 0
    from smec_index.connectors import open_connector

    with open_connector("qdrant", data_dir=tmp_path / "data") as connector:
        assert connector.get("live", ["12"]).payloads == [{"title": "title 12", "year": 2012}]


@pytest.mark.slow
def test_sigkill_at_five_random_moments_then_resume(tmp_path):
    source, data = tmp_path / "src", tmp_path / "data"
    n = 20_000
    qdrant_source(source, n)
    before = qdrant_checksum(source)
    command = [sys.executable, "-m", "smec_index.cli", "migrate", "--backend", "qdrant",
               "--path", str(source), "--collection", "docs", "--dim", "16", "--data-dir",
               str(data), "--alias", "live", "--checkpoint-rows", "2000", "--quiet",
               "--json"]  # fmt: skip
    moments = random.Random(42).sample([x / 10 for x in range(15, 120)], 5)
    for moment in sorted(moments):
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            process.wait(timeout=moment)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=60)
        progress = data / "migrations" / "qdrant-docs_16.json"
        state = json.loads(progress.read_text()) if progress.is_file() else {}
        if "alias" not in state:  # switched only after verification
            from smec_index.connectors import open_connector

            with open_connector("qdrant", data_dir=data) as connector:
                assert connector.resolve("live") is None
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["verified"] and summary["count"] == n
    from smec_index.connectors import open_connector

    with open_connector("qdrant", data_dir=data) as connector:
        ids = [i for b in connector.iterate("live", 5000) for i in b.ids]
        assert len(ids) == n and len(set(ids)) == n, "duplicates or missing ids"
        assert set(ids) == {str(i) for i in range(n)}
    assert qdrant_checksum(source) == before, "the source changed"


def test_bad_input_is_one_line_and_switches_nothing(tmp_path):
    source = tmp_path / "src"
    qdrant_source(source, 1000)
    common = ["migrate", "--backend", "qdrant", "--path", source, "--data-dir", tmp_path / "data",
              "--quiet"]  # fmt: skip
    run_probe([*common, "--collection", "nope", "--dim", 16], tmp_path,
              "no Qdrant local collection", output=tmp_path / "data")  # fmt: skip
    from tests.test_probes_inputs import _artifact, _dataset

    art = _artifact(tmp_path / "x", _dataset(tmp_path / "x"), 1.0)  # made for 16-d input
    run_probe([*common, "--collection", "docs", "--dim", 8, "--artifact", art], tmp_path,
              "trained on 16-d", output=tmp_path / "data")  # fmt: skip
    assert run(*common, "--collection", "docs", "--dim", 16).exit_code == 0
    run_probe([*common, "--collection", "docs", "--dim", 16, "--restart", "--min-recall", "1.5"],
              tmp_path, "--min-recall", output=tmp_path / "data")  # fmt: skip
    gate = run(*common, "--collection", "docs", "--dim", 2, "--to", "tiny", "--alias", "live",
               "--min-recall", "0.99")  # fmt: skip
    assert gate.exit_code == 2 and "quality gate" in gate.output and "below" in gate.output
    from smec_index.connectors import open_connector

    with open_connector("qdrant", data_dir=tmp_path / "data") as connector:
        assert connector.resolve("live") is None, "the alias moved past a failed gate"


def test_nan_vectors_in_the_source_are_refused_before_writing(tmp_path):
    """milvus-lite stores a NaN vector (Qdrant refuses one at insert): migrate aborts on it,
    with one line naming the point, and writes nothing."""
    from pymilvus import MilvusClient

    client = MilvusClient(str(tmp_path / "src.db"))
    client.create_collection("docs", dimension=4)
    client.insert("docs", [{"id": 1, "vector": [float("nan"), 0, 0, 1]},
                           {"id": 2, "vector": [1.0, 0, 0, 0]}])  # fmt: skip
    client.flush("docs")
    client.close()
    run_probe(["migrate", "--backend", "milvus", "--uri", tmp_path / "src.db", "--collection",
               "docs", "--dim", 2, "--to-backend", "qdrant", "--data-dir", tmp_path / "data",
               "--quiet"], tmp_path, "NaN or inf", output=tmp_path / "data")  # fmt: skip
    assert not (tmp_path / "data" / "qdrant").exists()


@pytest.mark.slow
@pytest.mark.server
def test_milvus_server_stopped_mid_run_stops_cleanly_and_resumes(tmp_path):
    """A real Milvus 2.3.5 stopped while migrate streams: retries with backoff, one line,
    then the same command (at the restarted server's address) resumes and completes."""
    from pymilvus import MilvusClient

    from smec_index.servers.milvus_standalone import MilvusStandalone

    server = MilvusStandalone(tmp_path / "server", timeout=120)
    uri = server.start()
    try:
        n = 30_000
        client = MilvusClient(uri=uri)
        client.create_collection("docs", dimension=DIM, primary_field_name="id",
                                 vector_field_name="vector", metric_type="COSINE")  # fmt: skip
        vectors = synthetic_vectors(n, DIM, rank=10, noise=0.05, seed=9)
        for first in range(0, n, 10_000):
            rows = [{"id": first + i, "vector": v.tolist()}
                    for i, v in enumerate(vectors[first : first + 10_000])]  # fmt: skip
            client.insert("docs", rows)
        client.flush("docs")
        client.close()

        def command(address: str) -> list[str]:
            return [sys.executable, "-m", "smec_index.cli", "migrate", "--backend", "milvus",
                    "--uri", address, "--collection", "docs", "--dim", "16", "--data-dir",
                    str(tmp_path / "data"), "--batch-size", "500", "--checkpoint-rows", "2000",
                    "--alias", "live", "--json", "--quiet"]  # fmt: skip

        process = subprocess.Popen(command(uri), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)  # fmt: skip
        progress = tmp_path / "data" / "migrations" / "milvus-docs_16.json"
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not (
            progress.is_file() and json.loads(progress.read_text())["written"] > 0
        ):
            time.sleep(0.1)
        server.stop()
        out, err = process.communicate(timeout=300)
        assert process.returncode == 2, err
        lines = [line for line in err.splitlines() if line.startswith("error: ")]
        assert len(lines) == 1 and "run the same command again to resume" in lines[0], err
        assert "Traceback" not in err and err.count("retrying in") == 4, err

        uri = server.start()  # the same files, new ports
        done = subprocess.run(command(uri), capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        summary = json.loads(done.stdout)
        assert summary["verified"] and summary["count"] == n
    finally:
        server.stop()
