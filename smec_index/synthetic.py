"""Seeded synthetic retrieval data with low intrinsic dimension.

Documents are ``normalise(Z A + noise)`` with a latent ``Z`` of ``rank`` dims mapped into
``dim`` dims, so a learned projection has structure to find (as FAISS's SyntheticDataset).
Each query is a noisy copy of one document, which is its single relevant document. Rows are
generated in chunks, so a 1M x 384 corpus fits in memory as float32 (1.5 GB) and can be
streamed straight to a ``.npy`` memory map.
"""

from __future__ import annotations

import json
import numbers
from pathlib import Path

import numpy as np

from smec_index.connectors.base import positive_int
from smec_index.data import Embeddings, RetrievalData
from smec_index.errors import SmecError, brief

_CHUNK = 100_000


def _basis(rank: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # Decaying latent scales: a few directions matter most, like real embeddings.
    scales = 1.0 / np.sqrt(np.arange(1, rank + 1))
    return (rng.standard_normal((rank, dim)) * scales[:, None]).astype(np.float32)


def _rows(n: int, basis: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    latent = rng.standard_normal((n, basis.shape[0]), dtype=np.float32)
    x = latent @ basis + noise * rng.standard_normal((n, basis.shape[1]), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def synthetic_vectors(
    n: int,
    dim: int = 384,
    rank: int = 32,
    noise: float = 0.05,
    seed: int = 0,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """``n`` unit vectors of low intrinsic dimension, generated in chunks into ``out``."""
    n, dim, rank = (positive_int(v, what) for v, what in ((n, "n"), (dim, "dim"), (rank, "rank")))
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or \
            not 0 <= seed <= 2**32 - 2:  # fmt: skip  (seed + 1 seeds the rows)
        raise SmecError(f"seed {brief(seed, 30)}: pass a whole number from 0 to 4,294,967,294")
    seed = int(seed)
    if isinstance(noise, bool) or not isinstance(noise, numbers.Real) or \
            not 0 <= float(noise) < float("inf"):  # fmt: skip
        raise SmecError(f"noise {brief(noise, 30)}: pass a finite number >= 0, e.g. 0.05")
    if out is None:
        try:
            out = np.empty((n, dim), dtype=np.float32)
        except MemoryError:
            raise SmecError(f"{n:,} x {dim} float32 values ({n * dim * 4 / 2**30:,.1f} GiB) do "
                            "not fit in memory: pass out= a memory map (numpy.lib.format."
                            "open_memmap) or a smaller n") from None  # fmt: skip
    elif not isinstance(out, np.ndarray) or out.shape != (n, dim) or out.dtype != np.float32:
        raise SmecError(f"out: pass a float32 array of shape ({n}, {dim}) (or None)")
    basis = _basis(rank, dim, seed)
    rng = np.random.default_rng(seed + 1)
    for start in range(0, n, _CHUNK):
        stop = min(n, start + _CHUNK)
        out[start:stop] = _rows(stop - start, basis, noise, rng)
    return out


def synthetic_retrieval(
    n_docs: int = 2000,
    n_queries: int = 400,
    dim: int = 64,
    rank: int = 12,
    noise: float = 0.05,
    query_noise: float = 1.0,
    seed: int = 0,
) -> tuple[RetrievalData, dict[str, dict[str, int]]]:
    """A small corpus, queries near one document each, and their qrels."""
    rng = np.random.default_rng(seed + 7)
    corpus = synthetic_vectors(n_docs, dim, rank, noise, seed)
    targets = rng.choice(n_docs, size=n_queries, replace=False)
    queries = corpus[targets] + query_noise * rng.standard_normal((n_queries, dim)).astype(
        np.float32
    ) / np.sqrt(dim)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    doc_ids = [f"d{i}" for i in range(n_docs)]
    query_ids = [f"q{i}" for i in range(n_queries)]
    qrels = {q: {doc_ids[t]: 1} for q, t in zip(query_ids, targets, strict=True)}
    data = RetrievalData(
        Embeddings(doc_ids, corpus), Embeddings(query_ids, queries.astype(np.float32))
    )
    return data, qrels


def write_beir(
    directory: str | Path,
    data: RetrievalData,
    qrels_by_split: dict[str, dict[str, dict[str, int]]],
    model_name: str = "all-MiniLM-L6-v2",
) -> Path:
    """Write ``data`` as a BEIR directory with its embeddings (for CLI tests and demos)."""
    root = Path(directory)
    (root / "qrels").mkdir(parents=True, exist_ok=True)
    with open(root / "corpus.jsonl", "w") as handle:
        for doc_id in data.corpus.ids:
            handle.write(
                json.dumps({"_id": doc_id, "title": f"title {doc_id}", "text": f"text {doc_id}"})
                + "\n"
            )
    with open(root / "queries.jsonl", "w") as handle:
        for query_id in data.queries.ids:
            handle.write(json.dumps({"_id": query_id, "text": f"query {query_id}"}) + "\n")
    for split, qrels in qrels_by_split.items():
        with open(root / "qrels" / f"{split}.tsv", "w") as handle:
            handle.write("query-id\tcorpus-id\tscore\n")
            for q, rels in qrels.items():
                for d, r in rels.items():
                    handle.write(f"{q}\t{d}\t{r}\n")
    emb = root / "embeddings" / model_name
    emb.mkdir(parents=True, exist_ok=True)
    np.save(emb / "corpus.npy", np.asarray(data.corpus.vectors))
    np.save(emb / "queries.npy", np.asarray(data.queries.vectors))
    (emb / "corpus_ids.txt").write_text("\n".join(data.corpus.ids) + "\n")
    (emb / "query_ids.txt").write_text("\n".join(data.queries.ids) + "\n")
    return root
