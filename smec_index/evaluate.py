"""Exact-search evaluation of a compressed space.

Queries and documents are projected with the same map, L2-normalised, and ranked by inner
product (= cosine) with a FAISS flat index, so the numbers measure the projection alone, not
an approximate index.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from smec_index.data import Qrels, RetrievalData
from smec_index.metrics import evaluate_run
from smec_index.vectors import exact_search, normalize

Transform = Callable[[np.ndarray], np.ndarray]


def retrieve(
    data: RetrievalData, qrels: Qrels, transform: Transform | None, k: int = 100
) -> dict[str, list[str]]:
    """Rank the corpus for every judged query in the (optionally) compressed space."""
    query_ids = list(qrels)
    queries = data.queries.take(query_ids)
    corpus = np.asarray(data.corpus.vectors, dtype=np.float32)
    if transform is not None:
        queries, corpus = transform(queries), transform(corpus)
    _, rows = exact_search(normalize(corpus), normalize(queries), k)
    ids = data.corpus.ids
    return {q: [ids[r] for r in row if r >= 0] for q, row in zip(query_ids, rows, strict=True)}


def evaluate_transform(
    data: RetrievalData, qrels: Qrels, transform: Transform | None
) -> dict[str, float]:
    """nDCG@10, recall@10 and recall@100 of exact search after ``transform``."""
    return evaluate_run(retrieve(data, qrels, transform, k=100), qrels, ks=(10, 100))


def evaluate_dims(
    data: RetrievalData, qrels: Qrels, compressor, dims: Sequence[int]
) -> dict[int, dict[str, float]]:
    """Metrics at each dim of a fitted compressor (anything with ``transform(x, dim)``)."""
    results = {}
    for dim in dims:
        if dim == data.dim and dim not in getattr(compressor, "dims", ()):
            results[dim] = evaluate_transform(data, qrels, None)
        else:
            results[dim] = evaluate_transform(
                data, qrels, lambda x, d=dim: compressor.transform(x, d)
            )
    return results
