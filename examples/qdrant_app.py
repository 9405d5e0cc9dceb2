"""An app on Qdrant, before and after ``smec-index migrate``: only the query vector changes.

    python examples/qdrant_app.py ./qdrant_data

1. The app's collection, made with qdrant-client as any app would (local mode here; a
   server works the same with ``--url``): a named vector ``text``, integer and UUID ids,
   nested payloads, a keyword payload index, and the alias ``docs_live`` the app queries.
2. ``smec-index migrate --alias docs_live`` copies it beside the original with 16-d vectors
   (same ids, payloads, vector name) and, once verified, switches the alias.
3. The same :func:`app_queries` runs against ``docs_live`` again; the one change is that the
   query vector goes through ``Projection.load(...).project(q, 16)`` first.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
from qdrant_client import QdrantClient, models

from smec_index import Projection

COLLECTION, ALIAS, DIM, N = "docs", "docs_live", 64, 2000


def point_id(i: int) -> int | str:
    """Odd points get integer ids, even ones UUIDs: an app may use either."""
    return i if i % 2 else str(uuid.UUID(int=i))


def make_collection(client: QdrantClient) -> np.ndarray:
    from smec_index.synthetic import synthetic_vectors

    vectors = synthetic_vectors(N, DIM, rank=10, noise=0.05, seed=1)
    client.create_collection(
        COLLECTION,
        vectors_config={"text": models.VectorParams(size=DIM, distance=models.Distance.COSINE)},
    )
    client.create_payload_index(COLLECTION, "lang", models.PayloadSchemaType.KEYWORD)
    client.upsert(
        COLLECTION,
        models.Batch(
            ids=[point_id(i) for i in range(N)],
            vectors={"text": vectors.tolist()},
            payloads=[
                {"title": f"Doc {i}", "lang": ["en", "de", "fr"][i % 3],
                 "meta": {"year": 2000 + i % 25, "authors": [{"name": f"a{i % 7}"}]}}
                for i in range(N)
            ],  # fmt: skip
        ),
    )
    alias = models.CreateAlias(collection_name=COLLECTION, alias_name=ALIAS)
    client.update_collection_aliases([models.CreateAliasOperation(create_alias=alias)])
    return vectors


def app_queries(client: QdrantClient, query: list[float]) -> dict:
    """What the app does with its collection, by the alias it always uses."""
    by_id = client.retrieve(ALIAS, [7, point_id(8)], with_payload=True)
    german = client.scroll(
        ALIAS,
        scroll_filter=models.Filter(
            must=[models.FieldCondition(key="lang", match=models.MatchValue(value="de"))]
        ),
        limit=5,
    )[0]
    hits = client.query_points(ALIAS, query=query, using="text", limit=3, with_payload=True)
    return {
        "count": client.count(ALIAS, exact=True).count,
        "by_id": [(r.id, r.payload) for r in by_id],
        "german": [(r.id, r.payload) for r in german],
        "top": [(p.id, p.payload) for p in hits.points],
    }


def main(folder: Path, data_dir: Path | None = None) -> dict:
    """Make, query, migrate, query again. ``data_dir``: smec-index's progress and artifacts
    (default: ``smec-data`` beside the Qdrant folder, never inside it)."""
    data_dir = data_dir or folder.parent / "smec-data"
    client = QdrantClient(path=str(folder))
    vectors = make_collection(client)
    query = vectors[42]  # an embedding from the app's model (here: point 42's own vector)
    before = app_queries(client, query.tolist())
    client.close()  # a local folder admits one client: the app stops while migrate runs

    migrated = subprocess.run(
        [sys.executable, "-m", "smec_index.cli", "migrate", "--backend", "qdrant", "--path",
         str(folder), "--collection", COLLECTION, "--dim", "16", "--alias", ALIAS,
         "--data-dir", str(data_dir), "--quiet", "--json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    summary = json.loads(migrated.stdout)

    # --8<-- [start:after]
    projection = Projection.load(summary["artifact"])  # the one change in the app:
    client = QdrantClient(path=str(folder))
    after = app_queries(client, projection.project(query, 16).tolist())  # the query projected
    # --8<-- [end:after]
    client.close()
    return {"before": before, "after": after, "migration": summary}


if __name__ == "__main__":
    result = main(Path(sys.argv[1] if len(sys.argv) > 1 else "qdrant_data"))
    for step in ("before", "after"):
        shown = {k: v if k == "count" else [i for i, _ in v] for k, v in result[step].items()}
        print(f"{step:>6}: {shown}")
    print(f"schema_diff: {result['migration']['schema_diff']}  (empty: only the dim changed)")
