"""An app searching a FAISS collection that ``smec-index build`` wrote: full-size query
vectors in, ids and scores out, each query projected as the corpus was.

    python examples/faiss_app.py ../shared/data/scifact

1. What a user runs once: ``smec-index train --method pca`` (an artifact in seconds; any
   method works) and ``smec-index build --backend faiss --dim 64``.
2. The app: ``CompressedIndex.open("faiss", NAME, data_dir)`` finds the collection's
   artifact in its manifest and projects each query with it; ``search`` takes vectors from
   the model that embedded the corpus.
3. Many queries already in the stored space go straight to a searcher: the collection
   resolved once, then one FAISS call per batch and one id lookup.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from smec_index.data import load_retrieval_data
from smec_index.index import CompressedIndex

NAME, DIM = "docs_faiss", 64


def build(dataset: Path, data_dir: Path, artifact: Path) -> None:
    cli = [sys.executable, "-m", "smec_index.cli"]
    subprocess.run([*cli, "train", "--dataset", str(dataset), "--method", "pca", "--dims",
                    str(DIM), "--out", str(artifact), "--quiet", "--overwrite"], check=True)
    subprocess.run([*cli, "build", "--dataset", str(dataset), "--dim", str(DIM), "--backend",
                    "faiss", "--artifact", str(artifact), "--collection", NAME, "--data-dir",
                    str(data_dir), "--overwrite", "--quiet"], check=True)  # fmt: skip


def app(data_dir: Path, queries: np.ndarray) -> dict:
    """What the app does: open the collection by name, search with full-size vectors."""
    index = CompressedIndex.open("faiss", NAME, data_dir)
    try:
        ids, scores = index.search(queries, k=5)  # projected with the collection's artifact
        # --8<-- [start:searcher]
        searcher = index.connector.searcher(index.collection, {"ef_search": 128})
        batch_ids, _ = searcher.search(index.project(queries), k=5)  # already projected
        # --8<-- [end:searcher]
    finally:
        index.close()
    return {"ids": ids, "scores": scores, "batch_ids": batch_ids.tolist()}


def main(dataset: Path, workdir: Path) -> dict:
    build(dataset, workdir / "smec-data", workdir / "pca")
    corpus = load_retrieval_data(dataset).corpus
    found = app(workdir / "smec-data", corpus.vectors[:3])  # three documents as queries
    return {**found, "asked": list(corpus.ids[:3])}


if __name__ == "__main__":
    result = main(Path(sys.argv[1]), Path(sys.argv[2] if len(sys.argv) > 2 else "runs"))
    for asked, hits in zip(result["asked"], result["ids"], strict=True):
        print(f"document {asked}: top 5 {hits}")
