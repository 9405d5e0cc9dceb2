"""An app on Milvus, before and after ``smec-index migrate``: only the query vector changes.

    python examples/milvus_app.py ./milvus_app.db          # milvus-lite, the embedded default
    python examples/milvus_app.py http://127.0.0.1:19530   # a Milvus server

1. The app's collection, made with pymilvus as any app would: an INT64 key ``pk``, a vector
   field ``embedding``, VARCHAR, JSON, ARRAY, BOOL and DOUBLE fields, the dynamic field on,
   a partition key ``tenant``, a scalar index on ``title``, and the alias ``docs_live``.
2. ``smec-index migrate --alias docs_live`` copies it beside the original with 16-d vectors
   (same key, fields, types, indexes and vector field name) and, once verified, switches
   the alias.
3. The same :func:`app_queries` runs against ``docs_live`` again; the one change is that the
   query vector goes through ``Projection.load(...).project(q, 16)`` first.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from pymilvus import DataType, MilvusClient

from smec_index import Projection

COLLECTION, ALIAS, DIM, N = "docs", "docs_live", 64, 2000
FIELDS = ["title", "meta", "tags", "ok", "score", "tenant", "source"]  # "source": dynamic


def make_collection(client: MilvusClient, server: bool) -> np.ndarray:
    from smec_index.synthetic import synthetic_vectors

    vectors = synthetic_vectors(N, DIM, rank=10, noise=0.05, seed=1)
    schema = client.create_schema(auto_id=False, enable_dynamic_field=True,
                                  description="the app's documents")  # fmt: skip
    schema.add_field("pk", DataType.INT64, is_primary=True)
    schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("title", DataType.VARCHAR, max_length=200)
    schema.add_field("meta", DataType.JSON)
    schema.add_field("tags", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=8,
                     max_length=32)  # fmt: skip
    schema.add_field("ok", DataType.BOOL)
    schema.add_field("score", DataType.DOUBLE)
    schema.add_field("tenant", DataType.VARCHAR, max_length=16, is_partition_key=True)
    index = client.prepare_index_params()
    index.add_index("embedding", index_type="HNSW", metric_type="COSINE",
                    params={"M": 16, "efConstruction": 64})  # fmt: skip
    index.add_index("title", index_type="Trie" if server else "INVERTED")  # Milvus 2.3: Trie
    client.create_collection(COLLECTION, schema=schema, index_params=index)
    rows = [
        {"pk": i, "embedding": vectors[i].tolist(), "title": f"{['Micro', 'Macro'][i % 2]} {i}",
         "meta": {"year": 2000 + i % 25, "authors": [f"a{i % 7}"]}, "tags": ["x", str(i % 3)],
         "ok": i % 2 == 0, "score": i / 7, "tenant": f"t{i % 4}", "source": f"feed{i % 5}"}
        for i in range(N)
    ]  # fmt: skip
    client.insert(COLLECTION, rows)
    client.flush(COLLECTION)
    client.create_alias(COLLECTION, ALIAS)
    return vectors


def app_queries(client: MilvusClient, query: list[float]) -> dict:
    """What the app does with its collection, by the alias it always uses."""
    client.load_collection(ALIAS)
    by_key = client.query(ALIAS, filter="pk == 42", output_fields=FIELDS)
    micro = client.query(ALIAS, filter='title like "Micro%" and pk < 20',
                         output_fields=["title"])  # fmt: skip
    got = client.get(ALIAS, ids=[7, 8], output_fields=FIELDS)
    hits = client.search(ALIAS, data=[query], anns_field="embedding", limit=3,
                         output_fields=["title", "source"])[0]  # fmt: skip
    count = client.query(ALIAS, filter="", output_fields=["count(*)"])[0]["count(*)"]
    return {
        "count": count,
        "by_key": [dict(r) for r in by_key],
        "micro": sorted(r["pk"] for r in micro),
        "by_id": [dict(r) for r in got],
        # a hit names its key "id" on a Milvus 2.3 server and by the key field in milvus-lite
        "top": [(h["id"] if "id" in h else h["pk"],
                 {k: h["entity"][k] for k in ("title", "source")}) for h in hits],  # fmt: skip
    }


def main(uri: str, data_dir: Path | None = None) -> dict:
    """Make, query, migrate, query again. ``data_dir``: smec-index's progress and artifacts
    (default: ``smec-data`` beside a milvus-lite file, or in the current folder)."""
    server = uri.startswith(("http://", "https://", "tcp://"))
    client = MilvusClient(uri=uri)
    vectors = make_collection(client, server)
    query = vectors[42]  # an embedding from the app's model (here: point 42's own vector)
    before = app_queries(client, query.tolist())
    client.close()
    if not server:  # milvus-lite serves the file from inside this process: let migrate open it
        from milvus_lite.server_manager import server_manager_instance

        server_manager_instance.release_server(str(Path(uri).resolve()))

    data_dir = data_dir or (Path("smec-data") if server else Path(uri).parent / "smec-data")
    migrated = subprocess.run(
        [sys.executable, "-m", "smec_index.cli", "migrate", "--backend", "milvus", "--uri", uri,
         "--collection", COLLECTION, "--dim", "16", "--alias", ALIAS, "--data-dir",
         str(data_dir), "--quiet", "--json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    summary = json.loads(migrated.stdout)

    # --8<-- [start:after]
    projection = Projection.load(summary["artifact"])  # the one change in the app:
    client = MilvusClient(uri=uri)
    after = app_queries(client, projection.project(query, 16).tolist())  # the query projected
    # --8<-- [end:after]
    client.close()
    return {"before": before, "after": after, "migration": summary}


if __name__ == "__main__":
    result = main(sys.argv[1] if len(sys.argv) > 1 else "milvus_app.db")
    for step in ("before", "after"):
        shown = {k: result[step][k] for k in ("count", "micro")}
        shown["top"] = [i for i, _ in result[step]["top"]]
        print(f"{step:>6}: {shown}")
    print(f"schema_diff: {result['migration']['schema_diff']}  (empty: only the dim changed)")
