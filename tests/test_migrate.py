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
        vector = p.vector[""] if isinstance(p.vector, dict) else p.vector  # the original one
        digest.update(json.dumps([p.id, np.round(vector, 6).tolist(), p.payload]).encode())
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
    release_lite(db, client)
    return vectors


def release_lite(db: Path, client) -> None:
    """Close like a user's process that exits: milvus-lite serves the folder from inside
    this process and keeps it locked until its server is released."""
    from milvus_lite.server_manager import server_manager_instance

    client.close()
    server_manager_instance.release_server(str(db))


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result


def test_qdrant_local_copy_beside_the_source_verified_switched_and_rolled_back(tmp_path):
    """The default target is a copy in the source's own folder (qdrant-client local mode),
    where the app's ``QdrantClient(path=...)`` finds it; the alias moves to it, and back."""
    from qdrant_client import QdrantClient

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
    assert planned["schema_diff"] == [] and planned["target_location"] == str(source)
    assert qdrant_checksum(source) == before and not (tmp_path / "data" / "artifacts").exists()

    done = run(*[a for a in common if a != "--quiet"], "--json")  # notes on stderr
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)
    keys = {"source", "target", "alias", "count", "dim", "verified", "recall@10",
            "index_bytes_before", "index_bytes_after", "seconds", "schema_diff",
            "target_location", "artifact"}  # fmt: skip
    assert keys <= set(summary)
    assert summary["verified"] and summary["count"] == 3000 and summary["recall@10"] >= 0.9
    assert summary["schema_diff"] == []
    # the dry run predicted the gate on the same queries against the same truth
    assert abs(planned["recall@10"] - summary["recall@10"]) <= 0.02
    assert "Projection.load(" in done.stderr and summary["artifact"] in done.stderr
    assert qdrant_checksum(source) == before, "the source changed"
    shown = run("info", "--backend", "qdrant", "--path", source, "--collection", "docs_live",
                "--data-dir", tmp_path / "data", "--json")  # fmt: skip
    assert shown.exit_code == 0, shown.output
    info = json.loads(shown.stdout)
    assert info["artifact"] == summary["artifact"] and info["alias_target"] == "docs_16"
    assert info["count"] == 3000 and info["dim"] == 16 and info["vector"] == ""

    client = QdrantClient(path=str(source))
    try:
        aliases = {a.alias_name: a.collection_name for a in client.get_aliases().aliases}
        assert aliases == {"docs_live": "docs_16"}
        (got,) = client.retrieve("docs_live", [7])
        assert got.id == 7 and got.payload == {"title": "title 7", "tags": [1]}
    finally:
        client.close()

    again = run(*common, "--json")  # a finished migration run again: verified, switched
    assert again.exit_code == 0 and json.loads(again.stdout)["verified"], again.output
    back = run(*common, "--rollback", "--json")
    assert back.exit_code == 0, back.output
    client = QdrantClient(path=str(source))
    try:
        assert client.get_aliases().aliases == []  # it pointed nowhere before
    finally:
        client.close()


def test_qdrant_in_place_fills_a_named_vector_and_leaves_the_rest(tmp_path):
    """``--in-place`` on a qdrant-client collection: a new named vector holds the projection
    of every point; ids, original vectors and payloads are untouched; searching with
    ``using=`` finds what the original finds."""
    from qdrant_client import QdrantClient

    from smec_index.compressors.base import load_projection

    source = tmp_path / "src"
    vectors = qdrant_source(source, 3000)
    before = qdrant_checksum(source)
    common = ["migrate", "--backend", "qdrant", "--path", source, "--collection", "docs",
              "--dim", 16, "--data-dir", tmp_path / "data", "--in-place", "--quiet"]  # fmt: skip
    # its one vector is unnamed: named vectors change what the app reads and writes
    run_probe(common, tmp_path, "pass --allow-schema-change if the app can take that",
              output=tmp_path / "data")  # fmt: skip
    common.append("--allow-schema-change")
    done = run(*common, "--json")
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)
    assert summary["using"] == "dense_16" and summary["verified"] and summary["count"] == 3000
    assert summary["recall@10"] >= 0.9 and summary["alias"] is None
    assert qdrant_checksum(source) == before, "ids, original vectors or payloads changed"

    projection = load_projection(summary["artifact"])
    client = QdrantClient(path=str(source))
    try:
        records = client.retrieve("docs", [0, 1234, 2999], with_vectors=["dense_16"])
        got = np.asarray([r.vector["dense_16"] for r in records])
        assert np.abs(got - projection.transform(vectors[[0, 1234, 2999]], 16)).max() <= 1e-5
        hits = client.query_points("docs", query=got[1].tolist(), using="dense_16", limit=1)
        assert hits.points[0].id == 1234
    finally:
        client.close()
    # once more: resumes a finished run (verifies again); another name that exists is refused
    again = run(*common, "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["verified"], again.output
    at_8 = [8 if previous == "--dim" else a
            for previous, a in zip(["", *common[:-1]], common, strict=True)]
    run_probe([*at_8, "--to", "dense_16"], tmp_path, "has 16 dims",
              output=tmp_path / "data")  # fmt: skip
    run_probe([*common, "--alias", "live"], tmp_path, "leave out", output=tmp_path / "data")


@pytest.mark.slow
def test_supervised_with_queries_and_qrels_never_worse_than_pca(tmp_path):
    """--queries + --qrels: SMEC is trained on 80% of the queries and kept only if it beats
    PCA on the other 20%; the gate is nDCG@10 of those held-out queries relative to the
    source's own search; a rerun reuses the same projection."""
    from pymilvus import DataType, MilvusClient

    from smec_index.synthetic import synthetic_retrieval

    data, qrels = synthetic_retrieval(3000, 300, DIM, rank=10, query_noise=0.8, seed=3)
    client = MilvusClient(str(tmp_path / "src.db"))
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("doc", DataType.VARCHAR, is_primary=True, max_length=16)
    schema.add_field("emb", DataType.FLOAT_VECTOR, dim=DIM)
    index = client.prepare_index_params()
    index.add_index("emb", index_type="FLAT", metric_type="COSINE")
    client.create_collection("docs", schema=schema, index_params=index)
    pairs = zip(data.corpus.ids, data.corpus.vectors, strict=True)
    client.insert("docs", [{"doc": d, "emb": v.tolist()} for d, v in pairs])
    client.flush("docs")
    release_lite(tmp_path / "src.db", client)
    np.save(tmp_path / "queries.npy", data.queries.vectors)
    (tmp_path / "query_ids.txt").write_text("\n".join(data.queries.ids) + "\n")
    (tmp_path / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"{q}\t{d}\t{r}\n" for q, rels in qrels.items() for d, r in rels.items()))  # fmt: skip
    common = ["migrate", "--backend", "milvus", "--uri", tmp_path / "src.db", "--collection",
              "docs", "--dim", 16, "--data-dir", tmp_path / "data",
              "--queries", tmp_path / "queries.npy", "--qrels", tmp_path / "qrels.tsv",
              "--fit-rows", 1000, "--min-recall", 0.5, "--json"]  # fmt: skip
    done = run(*common)
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)
    assert summary["verified"] and summary["gate"] == "ndcg@10 ratio"
    assert summary["ndcg@10_queries"] > 30 and summary["ndcg@10"] > 0.3
    assert summary["ndcg@10"] >= 0.5 * summary["ndcg@10_source"]
    (selection,) = (tmp_path / "data" / "artifacts" / "migrations").glob("*.selection.json")
    chosen = json.loads(selection.read_text())
    assert chosen["chosen"] in ("smec", "pca")
    assert chosen["held_out"][chosen["chosen"]] >= chosen["held_out"]["pca"]
    assert "supervised fit:" in done.stderr
    again = run(*common)
    assert again.exit_code == 0 and "using the cached" in again.stderr, again.output
    run_probe(["migrate", "--backend", "milvus", "--uri", tmp_path / "src.db", "--collection",
               "docs", "--dim", 16, "--qrels", tmp_path / "qrels.tsv", "--data-dir",
               tmp_path / "x"], tmp_path, "go together", output=tmp_path / "x")  # fmt: skip


def test_milvus_lite_to_qdrant_names_every_schema_change_and_needs_the_flag(tmp_path):
    """Across engines the mapping changes the schema: --dry-run lists each change, and the
    run refuses without --allow-schema-change, writing nothing."""
    db = tmp_path / "src.db"
    milvus_source(db, 2000)
    common = ["migrate", "--backend", "milvus", "--uri", db, "--collection", "docs", "--dim",
              16, "--to-backend", "qdrant", "--data-dir", tmp_path / "data", "--alias", "live",
              "--json", "--quiet"]  # fmt: skip
    plan = run(*common, "--dry-run")
    assert plan.exit_code == 0, plan.output
    diff = json.loads(plan.stdout)["schema_diff"]
    assert any(line.startswith("ids:") for line in diff)
    assert "vector 'emb' -> the unnamed vector" in diff
    assert "fields title, year -> keys of one payload" in diff
    run_probe(common, tmp_path, "--allow-schema-change", output=tmp_path / "data")
    result = run(*common, "--allow-schema-change")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["verified"] and summary["count"] == 2000 and summary["schema_diff"] == diff
    assert summary["index_bytes_before"] is None or summary["index_bytes_before"] > 0
    from smec_index.connectors import open_connector

    with open_connector("qdrant", data_dir=tmp_path / "data") as connector:
        assert connector.get("live", ["12"]).payloads == [{"title": "title 12", "year": 2012}]


def edge_source(folder: Path, n: int) -> np.ndarray:
    """A shard made with qdrant-edge's own API: integer ids, payloads, the unnamed vector."""
    import qdrant_edge as edge

    vectors = synthetic_vectors(n, DIM, rank=10, noise=0.05, seed=11)
    config = edge.EdgeConfig(vectors=edge.EdgeVectorParams(size=DIM, distance=edge.Distance.Cosine))
    shard = edge.EdgeShard.create(str(folder / "docs"), config)
    for start in range(0, n, 5000):
        points = [edge.Point(i, vectors[i].tolist(), {"title": f"title {i}", "tags": [i % 3]})
                  for i in range(start, min(n, start + 5000))]  # fmt: skip
        shard.update(edge.UpdateOperation.upsert_points(points))
    shard.close()
    return vectors


def edge_checksum(folder: Path) -> str:
    import qdrant_edge as edge

    shard = edge.EdgeShard.load(str(folder / "docs"))
    points, offset = [], None
    while True:
        records, offset = shard.scroll(
            edge.ScrollRequest(offset=offset, limit=5000, with_payload=True, with_vector=True)
        )
        points += [(r.id, list(r.vector), dict(r.payload)) for r in records]
        if offset is None:
            break
    shard.close()
    return _digest(points)


def milvus_checksum(db: Path) -> str:
    from pymilvus import MilvusClient

    client = MilvusClient(str(db))
    client.load_collection("docs")
    rows = client.query("docs", filter="pk >= 0", output_fields=["emb", "title", "year"],
                        limit=16_384)  # fmt: skip
    release_lite(db, client)
    return _digest([(r["pk"], list(r["emb"]), [r["title"], r["year"]]) for r in rows])


def _digest(points: list) -> str:
    digest = hashlib.sha256()
    for point_id, vector, payload in sorted(points, key=lambda p: p[0]):
        digest.update(json.dumps([point_id, np.round(vector, 6).tolist(), payload]).encode())
    return digest.hexdigest()


# source kind -> target flags -> where the test reads the target: "mirror" (the copy beside
# the source, read through the source's wing) or a smec-index connector's options
FLOWS = {
    "milvus-lite": ("milvus", [], "mirror"),
    "qdrant-client": ("qdrant", [], "mirror"),
    "qdrant-edge": ("edge", ["--to-backend", "qdrant", "--allow-schema-change"], {}),
    "qdrant-to-milvus": ("qdrant", ["--to-backend", "milvus", "--to-uri", "{tmp}/target.db",
                                    "--allow-schema-change"], {"uri": "{tmp}/target.db"}),
}  # fmt: skip


class _Reader:
    """The target as the test reads it: the mirror beside the source (raw ids), or a
    smec-index connector (string ids)."""

    def __init__(self, flow: str, tmp: Path, data: Path, options) -> None:
        self.flow, self.tmp, self.data, self.options = flow, tmp, data, options

    def __enter__(self):
        from smec_index.connectors import open_connector
        from smec_index.connectors.source import open_source

        if self.options == "mirror":
            where = ({"uri": str(self.tmp / "src.db")} if self.flow == "milvus-lite"
                     else {"path": str(self.tmp / "src")})  # fmt: skip
            self.source = open_source(FLOWS[self.flow][0], "docs", **where)
            self.mirror = self.source.mirror()
        else:
            backend = "milvus" if "milvus" in self.flow else "qdrant"
            self.source = None
            self.connector = open_connector(backend, data_dir=self.data, **self.options)
        return self

    def __exit__(self, *exc) -> None:
        (self.source or self.connector).close()

    def resolve(self, name: str) -> str | None:
        return (self.mirror if self.source else self.connector).resolve(name)

    def ids(self, name: str) -> list[str]:
        if self.source:
            return [i for ids in self.mirror.ids(name, 5000) for i in ids]
        return [i for b in self.connector.iterate(name, 5000) for i in b.ids]

    def get(self, name: str, keys: list[int]):
        if self.source:
            return self.mirror.get(name, keys)
        return self.connector.get(name, [str(k) for k in keys])


@pytest.mark.slow
@pytest.mark.parametrize("flow", list(FLOWS))
def test_sigkill_at_five_random_moments_then_resume(tmp_path, flow):
    """SIGKILL at five random points of the stream (after a random number of written points
    plus a random delay), resume each time; then nothing is missing or doubled, sampled
    vectors are the projection of the source's, payloads are equal, the alias moved only
    after verification, and the source is byte-for-byte what it was."""
    kind, target_flags, target_options = FLOWS[flow]
    data, n = tmp_path / "data", 12_000
    if kind == "milvus":
        vectors = milvus_source(tmp_path / "src.db", n)
        source_flags = ["--backend", "milvus", "--uri", tmp_path / "src.db"]
        checksum = lambda: milvus_checksum(tmp_path / "src.db")  # noqa: E731
        payload = lambda i: {"title": f"title {i}", "year": 2000 + i % 20}  # noqa: E731
    else:
        make, checksum_of = (edge_source, edge_checksum) if kind == "edge" else (
            qdrant_source, qdrant_checksum)  # fmt: skip
        vectors = make(tmp_path / "src", n)
        source_flags = ["--backend", "qdrant", "--path", tmp_path / "src"]
        checksum = lambda: checksum_of(tmp_path / "src")  # noqa: E731
        payload = lambda i: {"title": f"title {i}", "tags": [i % 3]}  # noqa: E731
    before = checksum()
    flags = [str(f).format(tmp=tmp_path) for f in target_flags]
    options = target_options if target_options == "mirror" else {
        k: v.format(tmp=tmp_path) for k, v in target_options.items()}  # fmt: skip
    command = [sys.executable, "-m", "smec_index.cli", "migrate", *map(str, source_flags),
               "--collection", "docs", "--dim", "16", "--data-dir", str(data), "--alias",
               "live", "--batch-size", "500", "--checkpoint-rows", "1000", "--quiet",
               "--json", *flags]  # fmt: skip
    reader = lambda: _Reader(flow, tmp_path, data, options)  # noqa: E731
    summary = kill_five_times_then_finish(command, data, f"{flow}-42", reader, "live", n)
    assert summary["verified"] and summary["count"] == n and summary["alias"] == "live"
    assert (summary["schema_diff"] == []) == (target_options == "mirror")

    from smec_index.compressors.base import load_projection

    (artifact,) = (data / "artifacts" / "migrations").iterdir()
    projection = load_projection(artifact)
    with reader() as target:
        assert target.resolve("live") == "docs_16"
        ids = target.ids("live")
        assert len(ids) == n and len(set(ids)) == n, "duplicates or missing ids"
        assert set(ids) == {str(i) for i in range(n)}
        sample = sorted(random.Random(7).sample(range(n), 200))
        got = target.get("live", sample)
        expected = projection.transform(vectors[sample], 16)
        assert np.abs(got.vectors - expected).max() <= 1e-5
        assert got.payloads == [payload(i) for i in sample]
    assert checksum() == before, "the source changed"


def kill_five_times_then_finish(command, data: Path, seed: str, target, alias: str, n: int) -> dict:
    """SIGKILL ``command`` five times, each after a random number of newly checkpointed
    points plus a random delay, checking after each that the alias has not moved unless the
    progress says verification passed; then run it to the end and return its summary.

    Each kill waits for at most a third of the ``n`` points not yet written, and the delay
    only while more than a third of them are left, which makes a kill after the stream has
    finished unlikely (with a fixed 1,500 points and up to 0.1 s, CI once saw the fifth miss
    a finished run); should it happen, the assertion below says so."""
    progress = data / "migrations"
    chance = random.Random(seed)
    for _ in range(5):
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        written = _written(progress)
        left = n - written
        goal = written + chance.randrange(1, max(2, min(1500, left // 3)))
        deadline = time.monotonic() + 120
        while process.poll() is None and _written(progress) < goal:
            assert time.monotonic() < deadline, "no progress"
            time.sleep(0.02)
        if left > n // 3:
            time.sleep(chance.uniform(0.0, 0.1))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        assert process.returncode == -signal.SIGKILL, process.stderr.read()  # killed mid-run
        if not any(json.loads(p.read_text()).get("alias") for p in progress.rglob("*.json")):
            with target() as reader:
                assert reader.resolve(alias) is None, "switched before verification"
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.slow
@pytest.mark.server
def test_sigkill_then_resume_on_a_qdrant_server(tmp_path):
    """The kill-and-resume flow against a real Qdrant server (source and target on it)."""
    import os
    import uuid

    url = os.environ.get("QDRANT_URL")
    if not url:
        pytest.skip("QDRANT_URL is not set: the Qdrant server migration test is skipped (no "
                    "server binary can be installed here; set QDRANT_URL)")  # fmt: skip
    from qdrant_client import QdrantClient, models

    n, name = 12_000, f"smec_migrate_{uuid.uuid4().hex[:8]}"
    vectors = synthetic_vectors(n, DIM, rank=10, noise=0.05, seed=13)
    client = QdrantClient(url=url, api_key=os.environ.get("QDRANT_API_KEY"))
    client.create_collection(
        name, vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE)
    )
    client.create_payload_index(name, "i", models.PayloadSchemaType.INTEGER, wait=True)
    try:
        for start in range(0, n, 2000):
            ids = list(range(start, min(n, start + 2000)))
            client.upsert(name, points=models.Batch(ids=ids, vectors=vectors[ids].tolist(),
                                                    payloads=[{"i": i} for i in ids]))  # fmt: skip
        command = [sys.executable, "-m", "smec_index.cli", "migrate", "--backend", "qdrant",
                   "--url", url, "--collection", name, "--dim", "16", "--data-dir",
                   str(tmp_path / "data"), "--alias", f"{name}_live", "--batch-size", "500",
                   "--checkpoint-rows", "1000", "--quiet", "--json"]  # fmt: skip
        summary = kill_five_times_then_finish(
            command, tmp_path / "data", "server-42", lambda: _ServerAliases(client),
            f"{name}_live", n,
        )  # fmt: skip
        assert summary["verified"] and summary["count"] == n and summary["schema_diff"] == []
        ids, offset = [], None
        while True:
            records, offset = client.scroll(f"{name}_live", limit=5000, offset=offset)
            ids += [r.id for r in records]
            if offset is None:
                break
        assert sorted(ids) == list(range(n))
        assert client.retrieve(f"{name}_live", [5])[0].payload == {"i": 5}
        indexes = client.get_collection(f"{name}_16").payload_schema  # recreated, typed
        assert set(indexes) == {"i"} and indexes["i"].data_type == models.PayloadSchemaType.INTEGER
        client.delete_alias(f"{name}_live")
        client.delete_collection(f"{name}_16")
    finally:
        client.delete_collection(name)
        client.close()


class _ServerAliases:
    """A Qdrant server's aliases, for the kill loop's "not switched yet" check."""

    def __init__(self, client) -> None:
        self.client = client

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass

    def resolve(self, name: str) -> str | None:
        found = {a.alias_name: a.collection_name for a in self.client.get_aliases().aliases}
        return found.get(name)


def _written(progress: Path) -> int:
    files = list(progress.rglob("*-*.json")) if progress.is_dir() else []
    try:
        return max((json.loads(p.read_text()).get("written", 0) for p in files), default=0)
    except (ValueError, KeyError):  # replaced while being read: ask again
        return 0


def test_bad_input_is_one_line_and_switches_nothing(tmp_path):
    source = tmp_path / "src"
    qdrant_source(source, 1000)
    common = ["migrate", "--backend", "qdrant", "--path", source, "--data-dir", tmp_path / "data",
              "--quiet"]  # fmt: skip
    run_probe([*common, "--collection", "nope", "--dim", 16], tmp_path,
              "no Qdrant collection 'nope'", output=tmp_path / "data")  # fmt: skip
    from tests.test_probes_inputs import _artifact, _dataset

    art = _artifact(tmp_path / "x", _dataset(tmp_path / "x"), 1.0)  # made for 16-d input
    run_probe([*common, "--collection", "docs", "--dim", 8, "--artifact", art], tmp_path,
              "trained on 16-d", output=tmp_path / "data")  # fmt: skip
    assert run(*common, "--collection", "docs", "--dim", 16).exit_code == 0
    run_probe([*common, "--collection", "docs", "--dim", 16, "--restart", "--min-recall", "1.5"],
              tmp_path, "--min-recall", output=tmp_path / "data")  # fmt: skip
    from qdrant_client import QdrantClient, models

    client = QdrantClient(path=str(source))  # someone's collection and alias beside the source
    client.create_collection("taken", vectors_config=models.VectorParams(
        size=8, distance=models.Distance.COSINE))  # fmt: skip
    client.update_collection_aliases([models.CreateAliasOperation(create_alias=models.CreateAlias(
        collection_name="docs", alias_name="docs_alias"))])  # fmt: skip
    client.close()
    before = qdrant_checksum(source)
    for refused, says in ((["--to", "taken"], "no migration recorded in"),
                          (["--to", "taken", "--overwrite"], "no migration recorded in"),
                          (["--to", "docs"], "the source collection"),
                          (["--to", "docs", "--overwrite"], "the source collection"),
                          (["--to", "docs_alias", "--overwrite"], "that is an alias"),
                          (["--alias", "docs"], "that is a collection"),
                          (["--alias", "taken"], "that is a collection")):  # fmt: skip
        run_probe([*common, "--collection", "docs", "--dim", 8, *refused], tmp_path, says,
                  output=source)  # fmt: skip
    run_probe([*common, "--collection", "docs_alias", "--dim", 8], tmp_path, "is an alias of",
              output=source)  # fmt: skip
    assert qdrant_checksum(source) == before, "the source changed"
    replaced = run(*common, "--collection", "docs", "--dim", 16, "--overwrite", "--restart",
                   "--min-recall", 0, "--json")  # its own target, from the first run above
    assert replaced.exit_code == 0, replaced.output
    assert json.loads(replaced.stdout)["count"] == 1000
    run_probe([*common, "--collection", "docs", "--dim", 8, "--partition", "2/2"], tmp_path,
              "--partition 2/2", output=tmp_path / "data")  # fmt: skip
    run_probe([*common, "--collection", "docs", "--dim", 8, "--partition", "0/2", "--to", "p"],
              tmp_path, "target on a server", output=tmp_path / "data")  # fmt: skip
    gate = run(*common, "--collection", "docs", "--dim", 2, "--to", "tiny", "--alias", "live",
               "--min-recall", "0.99")  # fmt: skip
    assert gate.exit_code == 2 and "quality gate" in gate.output and "below" in gate.output
    for advice in ("--queries/--qrels", "a larger --dim than 2", "--min-recall 0.",
                   "the finished copy 'tiny' stays at"):  # and how to give it up
        assert advice in gate.output, gate.output
    client = QdrantClient(path=str(source))
    try:
        aliases = {a.alias_name: a.collection_name for a in client.get_aliases().aliases}
        assert "live" not in aliases, "the alias moved past a failed gate"
    finally:
        client.close()


def test_nan_vectors_in_the_source_are_refused_before_writing(tmp_path):
    """milvus-lite stores a NaN vector (Qdrant refuses one at insert): migrate aborts on it,
    with one line naming the point, and writes nothing."""
    from pymilvus import MilvusClient

    client = MilvusClient(str(tmp_path / "src.db"))
    client.create_collection("docs", dimension=4)
    rows = [{"id": i, "vector": [1.0, i, 0, 0]} for i in range(2, 6)]
    client.insert("docs", [{"id": 1, "vector": [float("nan"), 0, 0, 1]}, *rows])
    client.flush("docs")
    client.close()
    run_probe(["migrate", "--backend", "milvus", "--uri", tmp_path / "src.db", "--collection",
               "docs", "--dim", 2, "--to-backend", "qdrant", "--allow-schema-change",
               "--data-dir", tmp_path / "data", "--quiet"], tmp_path, "NaN or inf",
              output=tmp_path / "data")  # fmt: skip
    assert not (tmp_path / "data" / "qdrant").exists()


def test_nan_found_mid_stream_leaves_nothing_written(tmp_path):
    """A NaN after 2,500 points (past the fitting sample): the run stops with one line, and
    the target it had partly written and its progress are gone; an empty source is refused
    before anything is written."""
    from pymilvus import MilvusClient

    vectors = synthetic_vectors(3000, 8, rank=4, noise=0.05, seed=8)
    vectors[2500, 3] = np.nan
    client = MilvusClient(str(tmp_path / "src.db"))
    client.create_collection("docs", dimension=8)
    client.create_collection("empty", dimension=8)
    client.insert("docs", [{"id": i, "vector": v.tolist()} for i, v in enumerate(vectors)])
    client.flush("docs")
    release_lite(tmp_path / "src.db", client)
    common = ["migrate", "--backend", "milvus", "--uri", tmp_path / "src.db", "--dim", 2,
              "--data-dir", tmp_path / "data", "--quiet", "--batch-size", 500,
              "--checkpoint-rows", 500, "--fit-rows", 1000]  # fmt: skip
    failed = run(*common, "--collection", "docs")
    errors = [line for line in failed.output.splitlines() if line.startswith("error: ")]
    assert failed.exit_code == 2 and len(errors) == 1 and "Traceback" not in failed.output
    assert "NaN or inf" in errors[0] and "'2500'" in errors[0]
    assert "its progress were dropped" in errors[0]
    client = MilvusClient(str(tmp_path / "src.db"))
    try:
        assert sorted(client.list_collections()) == ["docs", "empty"]
    finally:
        release_lite(tmp_path / "src.db", client)
    assert not list((tmp_path / "data" / "migrations").rglob("*-*.json"))
    run_probe([*common, "--collection", "empty"], tmp_path, "holds no points",
              output=tmp_path / "src.db")  # fmt: skip


def test_a_milvus_lite_file_another_process_holds_is_one_line(tmp_path):
    """milvus-lite admits one process per file: while the app holds it, migrate says so in
    one line (no milvus_lite traceback) and writes nothing."""
    db = tmp_path / "src.db"
    milvus_source(db, 300)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pymilvus import MilvusClient; "
         f"MilvusClient({str(db)!r}); print('open', flush=True); time.sleep(120)"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "open"
        run_probe(["migrate", "--backend", "milvus", "--uri", db, "--collection", "docs",
                   "--dim", 8, "--data-dir", tmp_path / "data", "--quiet"], tmp_path,
                  "is open in another process", output=db)  # fmt: skip
    finally:
        holder.kill()
        holder.wait()


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
                    "--alias", "live", "--json"]  # fmt: skip

        process = subprocess.Popen(command(uri), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)  # fmt: skip
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not _written(tmp_path / "data" / "migrations"):
            time.sleep(0.1)
        server.stop()
        out, err = process.communicate(timeout=300)
        assert process.returncode == 2, err
        lines = [line for line in err.splitlines() if line.startswith("error: ")]
        assert len(lines) == 1 and "run the same command again to resume" in lines[0], err
        assert "Traceback" not in err and err.count("retrying in") == 4, err

        restarted = server.start()  # the same files and, as a real server's, the same address
        assert restarted == uri
        done = subprocess.run(command(uri), capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        summary = json.loads(done.stdout)
        assert summary["verified"] and summary["count"] == n
    finally:
        server.stop()


@pytest.mark.slow
@pytest.mark.server
def test_partitions_on_a_milvus_server_then_one_verify_and_switch(tmp_path):
    """``--partition K/N`` on a real Milvus 2.3.5: two slices of an integer-key collection
    run at once (the server filters ``pk % 2``), three of a string-key one one after another
    (hashed ids); each writes only its slice, and the run without ``--partition`` verifies the
    whole target and switches the alias."""
    from pymilvus import DataType, MilvusClient

    from smec_index.servers.milvus_standalone import milvus_standalone

    with milvus_standalone(tmp_path / "server", timeout=120) as server:
        client = MilvusClient(uri=server.uri)
        for name, key in (("ints", DataType.INT64), ("strs", DataType.VARCHAR)):
            schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("pk", key, is_primary=True, max_length=32)
            schema.add_field("emb", DataType.FLOAT_VECTOR, dim=DIM)
            schema.add_field("title", DataType.VARCHAR, max_length=64)
            index = client.prepare_index_params()
            index.add_index("emb", index_type="FLAT", metric_type="COSINE")
            client.create_collection(name, schema=schema, index_params=index)
            n = 20_000 if name == "ints" else 6_000
            vectors = synthetic_vectors(n, DIM, rank=10, noise=0.05, seed=3)
            keys = list(range(-5, n - 5)) if name == "ints" else [f"doc-{i}" for i in range(n)]
            rows = [{"pk": keys[i], "emb": vectors[i].tolist(), "title": f"t{i}"}
                    for i in range(n)]  # fmt: skip
            for first in range(0, n, 5000):
                client.insert(name, rows[first : first + 5000])
            client.flush(name)
        client.close()

        def command(name: str, *extra: str) -> list[str]:
            return [sys.executable, "-m", "smec_index.cli", "migrate", "--backend", "milvus",
                    "--uri", server.uri, "--collection", name, "--dim", "16", "--data-dir",
                    str(tmp_path / "data"), "--alias", f"{name}_live", "--json", "--quiet",
                    *extra]  # fmt: skip

        running = [subprocess.Popen(command("ints", "--partition", f"{k}/2"), text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                   for k in range(2)]  # fmt: skip
        outputs = [p.communicate(timeout=600) for p in running]
        for process, (_, err) in zip(running, outputs, strict=True):
            assert process.returncode == 0, err
        slices = [json.loads(out) for out, _ in outputs]
        assert [s["written"] for s in slices] == [10_000, 10_000]  # pk % 2, negatives too
        assert not any(s["verified"] for s in slices)
        for k in range(3):
            done = subprocess.run(command("strs", "--partition", f"{k}/3"), capture_output=True,
                                  text=True, timeout=600)  # fmt: skip
            assert done.returncode == 0, done.stderr
        client = MilvusClient(uri=server.uri)
        assert client.list_aliases("ints_16")["aliases"] == [], "a partition switched the alias"
        for name, n in (("ints", 20_000), ("strs", 6_000)):
            done = subprocess.run(command(name), capture_output=True, text=True, timeout=600)
            assert done.returncode == 0, done.stderr
            summary = json.loads(done.stdout)
            assert summary["verified"] and summary["count"] == n and summary["writers"] == 4
        assert client.describe_alias("ints_live")["collection_name"] == "ints_16"
        client.load_collection("strs_live")
        assert client.query("strs_live", filter="", output_fields=["count(*)"])[0][
            "count(*)"] == 6_000  # fmt: skip
        client.close()
