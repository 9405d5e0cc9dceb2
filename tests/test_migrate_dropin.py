"""A migrated collection is the user's collection with smaller vectors: the app scripts in
``examples/`` make collections with qdrant-client and pymilvus, migrate them with
``--alias``, and run the same app code against the alias with only the query projected."""

from __future__ import annotations

import json
import re
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from smec_index.cli import main
from smec_index.synthetic import synthetic_vectors
from tests.probes import run_probe

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def example(name: str):
    """Import ``examples/<name>.py`` as a module (the examples are scripts, not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def scroll_all(client, collection: str) -> dict:
    """id -> (payload, vectors) of every point, through qdrant-client."""
    points, offset = {}, None
    while True:
        records, offset = client.scroll(collection, limit=1000, offset=offset, with_vectors=True)
        points.update({r.id: (r.payload, r.vector) for r in records})
        if offset is None:
            return points


def test_qdrant_app_runs_unchanged_against_the_alias(tmp_path):
    """Local-mode qdrant-client: named vector, int and UUID ids, nested payloads, a keyword
    payload index; the app's retrieve, filter and ``using=`` search give the same answers
    through the alias after the migration, and every point's id and payload is the same."""
    from qdrant_client import QdrantClient

    app = example("qdrant_app")
    result = app.main(tmp_path / "qdrant_data")
    before, after = result["before"], result["after"]
    assert after == before  # ids, payloads, filter results, top hits: all the same
    assert before["top"][0][0] == app.point_id(42) and before["count"] == app.N
    assert isinstance(before["by_id"][1][0], str)  # a UUID id came back as a UUID
    assert result["migration"]["schema_diff"] == [] and result["migration"]["verified"]

    client = QdrantClient(path=str(tmp_path / "qdrant_data"))
    try:
        source, copy = scroll_all(client, "docs"), scroll_all(client, "docs_16")
        assert set(copy) == set(source)
        assert all(copy[i][0] == source[i][0] for i in source), "a payload changed"
        assert {len(v["text"]) for _, v in copy.values()} == {16}
        original = synthetic_vectors(app.N, app.DIM, rank=10, noise=0.05, seed=1)
        stored = np.asarray([source[app.point_id(i)][1]["text"] for i in range(app.N)])
        assert np.allclose(stored, original / np.linalg.norm(original, axis=1, keepdims=True),
                           atol=1e-6), "the source's vectors changed"  # fmt: skip
        before_config = client.get_collection("docs").config.params.vectors
        after_config = client.get_collection("docs_16").config.params.vectors
        assert set(after_config) == {"text"} and after_config["text"].size == 16
        assert after_config["text"].distance == before_config["text"].distance
    finally:
        client.close()


def test_qdrant_other_named_and_sparse_vectors_are_carried(tmp_path):
    """The vector --using names is compressed; the point's other dense and sparse vectors
    are copied as they are."""
    from qdrant_client import QdrantClient, models

    vectors = synthetic_vectors(500, 32, rank=8, noise=0.05, seed=2)
    client = QdrantClient(path=str(tmp_path / "q"))
    client.create_collection(
        "docs",
        vectors_config={
            "text": models.VectorParams(size=32, distance=models.Distance.COSINE),
            "image": models.VectorParams(size=4, distance=models.Distance.DOT),
        },
        sparse_vectors_config={"bm25": models.SparseVectorParams()},
    )
    client.upsert("docs", [
        models.PointStruct(id=str(uuid.UUID(int=i)), payload={"i": i}, vector={
            "text": vectors[i].tolist(), "image": [float(i), 1.0, 0.0, 0.5],
            "bm25": models.SparseVector(indices=[i, i + 1000], values=[1.0, 0.5])})
        for i in range(500)
    ])  # fmt: skip
    client.close()
    common = ["migrate", "--backend", "qdrant", "--path", tmp_path / "q", "--collection", "docs",
              "--dim", 8, "--data-dir", tmp_path / "data", "--quiet", "--json"]  # fmt: skip
    run_probe(common, tmp_path, "pick the one to compress with --using", output=tmp_path / "q")
    done = run(*common, "--using", "text")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["schema_diff"] == []
    client = QdrantClient(path=str(tmp_path / "q"))
    try:
        (point,) = client.retrieve("docs_8", [str(uuid.UUID(int=7))], with_vectors=True)
        assert point.payload == {"i": 7} and len(point.vector["text"]) == 8
        assert point.vector["image"] == [7.0, 1.0, 0.0, 0.5]
        sparse = point.vector["bm25"]
        assert sparse.indices == [7, 1007] and sparse.values == [1.0, 0.5]
        config = client.get_collection("docs_8").config.params
        assert config.vectors["image"].distance == models.Distance.DOT
        assert set(config.sparse_vectors) == {"bm25"}
    finally:
        client.close()


def test_a_qdrant_multivector_source_is_refused_before_anything_is_written(tmp_path):
    """A multivector (late-interaction) vector cannot be projected point by point: one line,
    at once, instead of retries after a partial write."""
    from qdrant_client import QdrantClient, models

    client = QdrantClient(path=str(tmp_path / "q"))
    client.create_collection("multi", vectors_config={"colbert": models.VectorParams(
        size=16, distance=models.Distance.COSINE,
        multivector_config=models.MultiVectorConfig(
            comparator=models.MultiVectorComparator.MAX_SIM))})  # fmt: skip
    client.upsert("multi", [models.PointStruct(id=i, vector={"colbert": [[0.1 * i] * 16] * 2})
                            for i in range(1, 50)])  # fmt: skip
    client.close()
    run_probe(["migrate", "--backend", "qdrant", "--path", tmp_path / "q", "--collection",
               "multi", "--dim", 4, "--data-dir", tmp_path / "data", "--quiet"], tmp_path,
              "has only multivectors", output=tmp_path / "q")  # fmt: skip


def test_qdrant_unnamed_vector_with_sparse_vectors_keeps_both(tmp_path):
    """An unnamed dense vector beside sparse ones: the copy's dense vector stays unnamed and
    the sparse ones are copied."""
    from qdrant_client import QdrantClient, models

    vectors = synthetic_vectors(300, 32, rank=8, noise=0.05, seed=4)
    client = QdrantClient(path=str(tmp_path / "q"))
    client.create_collection(
        "docs", vectors_config=models.VectorParams(size=32, distance=models.Distance.EUCLID),
        sparse_vectors_config={"bm25": models.SparseVectorParams()},
    )  # fmt: skip
    client.upsert("docs", [models.PointStruct(id=i, payload={"i": i}, vector={
        "": vectors[i].tolist(), "bm25": models.SparseVector(indices=[i], values=[2.0])})
        for i in range(300)])  # fmt: skip
    client.close()
    done = run("migrate", "--backend", "qdrant", "--path", tmp_path / "q", "--collection",
               "docs", "--dim", 8, "--data-dir", tmp_path / "data", "--quiet",
               "--json")  # fmt: skip
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["schema_diff"] == []
    client = QdrantClient(path=str(tmp_path / "q"))
    try:
        (point,) = client.retrieve("docs_8", [5], with_vectors=True)
        assert len(point.vector[""]) == 8 and point.vector["bm25"].indices == [5]
        params = client.get_collection("docs_8").config.params
        assert params.vectors.size == 8 and params.vectors.distance == models.Distance.EUCLID
    finally:
        client.close()


def test_milvus_auto_id_key_is_kept_only_with_the_flag(tmp_path):
    """A copy of an ``auto_id`` collection must keep the source's keys, so it is made
    without auto_id: the dry run names that, and the run needs --allow-schema-change."""
    from milvus_lite.server_manager import server_manager_instance
    from pymilvus import DataType, MilvusClient

    db = tmp_path / "src.db"
    vectors = synthetic_vectors(800, 32, rank=6, noise=0.05, seed=6)
    client = MilvusClient(str(db))
    schema = client.create_schema(auto_id=True, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=32)
    schema.add_field("note", DataType.VARCHAR, max_length=20, nullable=True)
    schema.add_field("lang", DataType.VARCHAR, max_length=8, default_value="en")
    index = client.prepare_index_params()
    index.add_index("vec", index_type="FLAT", metric_type="L2")
    client.create_collection("docs", schema=schema, index_params=index)
    keys = client.insert("docs", [{"vec": v.tolist(), "note": None if i % 2 else f"n{i}",
                                   **({} if i % 2 else {"lang": "de"})}
                                  for i, v in enumerate(vectors)])["ids"]  # fmt: skip
    client.flush("docs")
    client.close()
    server_manager_instance.release_server(str(db))
    common = ["migrate", "--backend", "milvus", "--uri", db, "--collection", "docs", "--dim", 8,
              "--data-dir", tmp_path / "data", "--quiet", "--json"]  # fmt: skip
    plan = run(*common, "--dry-run")
    assert plan.exit_code == 0, plan.output
    assert json.loads(plan.stdout)["schema_diff"] == ["auto_id: true -> false"]
    run_probe(common, tmp_path, "--allow-schema-change", output=db)
    done = run(*common, "--allow-schema-change")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["schema_diff"] == ["auto_id: true -> false"]
    client = MilvusClient(str(db))
    try:
        client.load_collection("docs_8")
        rows = client.get("docs_8", ids=keys[:4], output_fields=["id", "note", "lang"])
        expected = [(keys[0], "n0", "de"), (keys[1], None, "en"), (keys[2], "n2", "de"),
                    (keys[3], None, "en")]  # fmt: skip
        assert [(r["id"], r["note"], r["lang"]) for r in rows] == expected
        fields = {f["name"]: f for f in client.describe_collection("docs_8")["fields"]}
        assert fields["note"].get("nullable") and str(fields["lang"]["default_value"]).strip() == (
            'string_data: "en"')
        assert not client.describe_collection("docs_8")["auto_id"]
    finally:
        client.close()
        server_manager_instance.release_server(str(db))


def milvus_fields(client, collection: str) -> list[dict]:
    """pymilvus' own description of every field, the vector's dim left out."""
    fields = []
    for field in client.describe_collection(collection)["fields"]:
        field = {k: v for k, v in field.items() if k != "field_id"}
        field["params"] = {k: v for k, v in field.get("params", {}).items() if k != "dim"}
        fields.append({k: str(v) for k, v in field.items()})
    return fields


def check_milvus_app(result: dict, uri: str, server: bool) -> None:
    from pymilvus import MilvusClient

    before, after = result["before"], result["after"]
    for key in ("count", "by_key", "micro", "by_id"):
        assert after[key] == before[key], key  # every field value, dynamic ones too
    assert after["top"][0] == before["top"][0] and before["top"][0][0] == 42
    assert before["by_key"][0]["source"] == "feed2"  # a dynamic field's value came through
    assert result["migration"]["schema_diff"] == [] and result["migration"]["verified"]
    client = MilvusClient(uri=uri)
    try:
        assert milvus_fields(client, "docs_16") == milvus_fields(client, "docs")
        fields = {f["name"]: f for f in client.describe_collection("docs_16")["fields"]}
        assert fields["embedding"]["params"]["dim"] == 16
        assert fields["tenant"].get("is_partition_key") and fields["pk"].get("is_primary")
        described, original = (client.describe_collection(c) for c in ("docs_16", "docs"))
        assert described["enable_dynamic_field"] and not described["auto_id"]
        for key in ("description", "consistency_level", "num_partitions", "properties"):
            assert described.get(key) == original.get(key), key
        if server:  # milvus-lite keeps no description
            assert described["description"] == "the app's documents"
        assert sorted(client.list_indexes("docs_16")) == sorted(client.list_indexes("docs"))
        title = client.describe_index("docs_16", "title")["index_type"]
        assert title == client.describe_index("docs", "title")["index_type"]
        assert client.describe_alias("docs_live")["collection_name"] == "docs_16"
    finally:
        client.close()
        if not server:
            from milvus_lite.server_manager import server_manager_instance

            server_manager_instance.release_server(str(Path(uri).resolve()))


def test_milvus_lite_app_runs_unchanged_against_the_alias(tmp_path):
    """pymilvus on milvus-lite: INT64 key ``pk``, VARCHAR, JSON, ARRAY, BOOL and DOUBLE
    fields, dynamic field on, a partition key, a scalar index; the app's query by key and by
    ``like``, ``get`` with ``output_fields`` and ``anns_field`` search answer the same."""
    uri = str(tmp_path / "app.db")
    result = example("milvus_app").main(uri)
    check_milvus_app(result, uri, server=False)


@pytest.mark.slow
@pytest.mark.server
def test_milvus_server_app_runs_unchanged_against_the_alias(tmp_path):
    """The same app on a real Milvus 2.3.5 standalone server."""
    from smec_index.servers.milvus_standalone import milvus_standalone

    with milvus_standalone(tmp_path / "server", timeout=120) as server:
        result = example("milvus_app").main(server.uri, tmp_path / "smec-data")
        check_milvus_app(result, server.uri, server=True)
        partitions_by_name_and_auto_id(server.uri, tmp_path / "smec-data")


def partitions_by_name_and_auto_id(uri: str, data_dir: Path) -> None:
    """Partitions made by name (no partition key): every row lands in the copy's partition
    of the same name; an auto_id key's values are kept (the copy is made without auto_id)."""
    from pymilvus import DataType, MilvusClient

    client = MilvusClient(uri=uri)
    vectors = synthetic_vectors(1200, 32, rank=6, noise=0.05, seed=5)
    schema = client.create_schema(auto_id=True, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=32)
    schema.add_field("year", DataType.INT16)
    index = client.prepare_index_params()
    index.add_index("vec", index_type="IVF_FLAT", metric_type="L2", params={"nlist": 16})
    index.add_index("year", index_type="STL_SORT")
    client.create_collection("parts", schema=schema, index_params=index)
    for year in (2024, 2025):
        client.create_partition("parts", f"y{year}")
        client.insert("parts", [{"vec": v.tolist(), "year": year} for v in vectors[:400]],
                      partition_name=f"y{year}")  # fmt: skip
    client.insert("parts", [{"vec": v.tolist(), "year": 0} for v in vectors[400:]])
    client.flush("parts")
    done = run("migrate", "--backend", "milvus", "--uri", uri, "--collection", "parts", "--dim",
               8, "--data-dir", data_dir, "--allow-schema-change", "--quiet", "--json")  # fmt: skip
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["schema_diff"] == ["auto_id: true -> false"]

    def rows(collection: str, partition: str) -> list[tuple]:
        found = client.query(collection, filter="", output_fields=["id", "year"], limit=16_384,
                             partition_names=[partition])  # fmt: skip
        return sorted((r["id"], r["year"]) for r in found)

    client.load_collection("parts_8")
    assert sorted(client.list_partitions("parts_8")) == ["_default", "y2024", "y2025"]
    for partition in ("_default", "y2024", "y2025"):
        assert rows("parts_8", partition) == rows("parts", partition), partition
    assert len(rows("parts_8", "y2025")) == 400
    client.close()


def milvus_docs(db: Path, seed: int, n: int = 1500) -> str:
    """A milvus-lite collection ``docs`` made with pymilvus; returns a checksum of it."""
    from pymilvus import MilvusClient

    vectors = synthetic_vectors(n, 32, rank=6, noise=0.05, seed=seed)
    client = MilvusClient(str(db))
    client.create_collection("docs", dimension=32, metric_type="COSINE")
    client.insert("docs", [{"id": i, "vector": vectors[i].tolist(), "t": f"d{i}"}
                           for i in range(n)])  # fmt: skip
    client.flush("docs")
    client.create_alias("docs", "docs_alias")
    client.close()
    return milvus_checksum(db)


def milvus_checksum(db: Path) -> str:
    import hashlib

    from milvus_lite.server_manager import server_manager_instance
    from pymilvus import MilvusClient

    client = MilvusClient(str(db))
    client.load_collection("docs")
    rows = client.query("docs", filter="id >= 0", output_fields=["*"], limit=16_384)
    client.close()
    server_manager_instance.release_server(str(db))
    text = json.dumps(sorted([r["id"], np.round(r["vector"], 6).tolist(), r.get("t")]
                              for r in rows))  # fmt: skip
    return hashlib.sha256(text.encode()).hexdigest()


def test_milvus_target_that_is_the_source_is_refused_and_the_source_unchanged(tmp_path):
    db = tmp_path / "src.db"
    before = milvus_docs(db, seed=1)
    common = ["migrate", "--backend", "milvus", "--uri", db, "--collection", "docs", "--dim", 8,
              "--data-dir", tmp_path / "data", "--quiet"]  # fmt: skip
    for refused, says in ((["--to", "docs"], "the source collection"),
                          (["--to", "docs", "--overwrite"], "the source collection"),
                          (["--to", "docs_alias"], "that is an alias"),
                          (["--to", "docs_alias", "--overwrite"], "that is an alias"),
                          (["--alias", "docs"], "that is a collection")):  # fmt: skip
        run_probe([*common, *refused], tmp_path, says, output=db)
    assert milvus_checksum(db) == before


def test_two_sources_with_one_name_in_two_files_each_get_their_own_projection(tmp_path):
    """``docs`` in a.db and ``docs`` in b.db, one data dir: progress and the fitted PCA are
    keyed by the source, so each migrates (and restarts) with its own."""
    from smec_index.projection import Projection

    data = tmp_path / "data"
    summaries = {}
    for name, seed in (("a", 1), ("b", 2)):
        milvus_docs(tmp_path / f"{name}.db", seed=seed)
        done = run("migrate", "--backend", "milvus", "--uri", tmp_path / f"{name}.db",
                   "--collection", "docs", "--dim", 8, "--data-dir", data, "--quiet",
                   "--json")  # fmt: skip
        assert done.exit_code == 0, done.output
        summaries[name] = json.loads(done.stdout)
    a, b = summaries["a"], summaries["b"]
    assert a["artifact"] != b["artifact"] and a["recall@10"] > 0.8 and b["recall@10"] > 0.8
    matrices = [Projection.load(s["artifact"])._compressor.projection(8) for s in (a, b)]
    assert not np.allclose(matrices[0], matrices[1])
    fitted = (Path(b["artifact"]) / "config.json").stat().st_mtime_ns
    again = run("migrate", "--backend", "milvus", "--uri", tmp_path / "b.db", "--collection",
                "docs", "--dim", 8, "--data-dir", data, "--quiet", "--json",
                "--restart")  # fmt: skip
    assert again.exit_code == 0, again.output
    # refitted on the unchanged source: the same projection, so the kept one is reused and
    # not written over (another copy may read it; a changed source's refit goes beside it)
    assert json.loads(again.stdout)["artifact"] == b["artifact"]
    assert (Path(b["artifact"]) / "config.json").stat().st_mtime_ns == fitted
    assert json.loads(again.stdout)["recall@10"] == pytest.approx(b["recall@10"], abs=0.02)


def test_a_source_whose_schema_changed_since_the_start_is_one_clear_line(tmp_path):
    """Progress records the source schema's fingerprint; a resume against a changed schema
    (here: a partition added) stops with one line instead of mixing two sources."""
    from milvus_lite.server_manager import server_manager_instance
    from pymilvus import MilvusClient

    db = tmp_path / "src.db"
    milvus_docs(db, seed=4)
    common = ["migrate", "--backend", "milvus", "--uri", db, "--collection", "docs", "--dim", 2,
              "--alias", "docs_alias", "--data-dir", tmp_path / "data", "--quiet"]  # fmt: skip
    failed = run(*common, "--min-recall", 1.0)  # streamed and verified; the gate stops it
    assert failed.exit_code == 2 and "quality gate" in failed.output, failed.output
    client = MilvusClient(str(db))
    client.create_partition("docs", "added_later")
    client.close()
    server_manager_instance.release_server(str(db))
    run_probe([*common, "--min-recall", 0], tmp_path, "changed since this migration started",
              output=db)  # fmt: skip
    again = run(*common, "--min-recall", 0, "--restart", "--json")
    assert again.exit_code == 0, again.output


def test_projection_loads_by_artifact_or_by_the_name_migrate_switched(tmp_path):
    from smec_index import Projection
    from smec_index.errors import SmecError

    milvus_docs(tmp_path / "a.db", seed=3)
    done = run("migrate", "--backend", "milvus", "--uri", tmp_path / "a.db", "--collection",
               "docs", "--dim", 8, "--alias", "docs_alias", "--data-dir", tmp_path / "data",
               "--quiet", "--json")  # fmt: skip
    assert done.exit_code == 0, done.output
    artifact = json.loads(done.stdout)["artifact"]
    shown = run("info", "--backend", "milvus", "--uri", tmp_path / "a.db", "--collection",
                "docs_alias", "--data-dir", tmp_path / "data", "--json")  # fmt: skip
    assert shown.exit_code == 0, shown.output
    info = json.loads(shown.stdout)
    assert info["artifact"] == artifact and info["alias_target"] == "docs_8"
    assert info["count"] == 1500 and info["dim"] == 8 and info["migrated_from"].endswith("/docs")
    run_probe(["info", "--backend", "milvus", "--uri", tmp_path / "a.db", "--collection", "docs",
               "--data-dir", tmp_path / "data"], tmp_path, "someone's own",
              output=tmp_path / "a.db")  # the source: the user's, not smec-index's  # fmt: skip
    by_path = Projection.load(artifact)
    by_alias = Projection.load("docs_alias", data_dir=tmp_path / "data")
    assert by_path.dims == by_alias.dims == [8] and by_path.input_dim == 32
    query = synthetic_vectors(3, 32, rank=6, noise=0.05, seed=3)
    one, rows = by_alias.project(query[0]), by_path.project(query, 8)
    assert one.shape == (8,) and rows.shape == (3, 8)
    assert np.allclose(one, rows[0]) and np.allclose(np.linalg.norm(rows, axis=1), 1.0)
    for bad, says in ((lambda: by_path.project(query, 4), "projects to [8]"),
                      (lambda: by_path.project(query[:, :16]), "takes 32-d"),
                      (lambda: Projection.load("nope", data_dir=tmp_path / "data"),
                       "nope")):  # fmt: skip
        with pytest.raises(SmecError, match=re.escape(says)):
            bad()


def test_examples_run_as_scripts(tmp_path):
    """``python examples/qdrant_app.py DIR`` as the docs show it: before == after."""
    import subprocess

    done = subprocess.run([sys.executable, str(EXAMPLES / "qdrant_app.py"), str(tmp_path / "q")],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = dict(line.strip().split(": ", 1) for line in done.stdout.splitlines() if ": " in line)
    assert lines["before"].strip() == lines["after"].strip()
    assert lines["schema_diff"].startswith("[]")
