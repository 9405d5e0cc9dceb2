"""Does a trained projection still find documents no training query judged?

A collection grows after training, and the documents that arrive are ones no training query
judged. The held-out queries *none of whose relevant documents is judged for a training
query* (the unseen-document queries) measure exactly that: a projection cannot have learned
their answers by heart. :func:`unseen_check` scores them per dim for the trained projection
(as selected, before the refit that trains on the held-out queries too), for PCA and for the
original vectors, with the share of each space's top 10 that is training-judged documents
(a projection that memorised its labels pulls those documents up for every query).

The guard (``TrainConfig.unseen_guard``) keeps PCA's projection at a dim where the trained
one is worse than PCA on these queries by more than their noise: the 95% half-width (1.96
standard errors) of the mean per-query difference (paired, the same queries scored both
ways). One standard error would throw away a real gain on noise about one time in six per
dim; SciFact's held-out gains over PCA are 0.1-0.2 nDCG@10.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from smec_index.metrics import ndcg_at_k
from smec_index.training.examples import TrainingTable

# Fewer unseen-document queries than this are too noisy to judge a dim by; the check is then
# recorded as skipped, with the count.
MIN_UNSEEN_QUERIES = 30
# The guard's noise: this many standard errors of the paired difference (a 95% half-width).
NOISE_ERRORS = 1.96


def unseen_queries(table: TrainingTable) -> list[int]:
    """Indexes (into ``table.val``) of the held-out queries none of whose relevant documents
    is judged relevant for a training query."""
    if table.train is None or table.val is None:
        return []
    seen = {doc for judged in table.train.judged for doc in judged}
    return [i for i, judged in enumerate(table.val.judged) if not seen.intersection(judged)]


def _scores(queries: torch.Tensor, corpus: torch.Tensor, judged: list[dict[int, int]],
            seen: torch.Tensor) -> tuple[np.ndarray, float]:  # fmt: skip
    """Per-query nDCG@10 of exact inner-product search, and the share of the top 10 that is
    training-judged documents (``seen``: a corpus-row mask)."""
    top = (queries @ corpus.T).topk(min(10, corpus.shape[0]), dim=1).indices
    ndcg = np.array([ndcg_at_k(row, rels, 10) for row, rels in zip(top.tolist(), judged,
                                                                      strict=True)])  # fmt: skip
    return ndcg, float(seen[top].float().mean())


@torch.no_grad()
def unseen_check(
    table: TrainingTable,
    trained: dict[int, np.ndarray],
    pca: dict[int, np.ndarray],
) -> dict[str, Any]:
    """Score ``trained`` and ``pca`` (``input_dim x d`` matrices per dim) and the original
    vectors on the unseen-document held-out queries.

    Returns ``{"queries": n, "checked": bool, "original": {...}, "dims": {d: {...}}}``; each
    dim holds the trained and PCA nDCG@10, their paired difference and its noise
    (:data:`NOISE_ERRORS` standard errors), ``worse`` (trained below PCA by more than the
    noise) and the share of
    training-judged documents in each space's top 10. Not checked (no dims) when fewer than
    :data:`MIN_UNSEEN_QUERIES` queries qualify.
    """
    picked = unseen_queries(table)
    result: dict[str, Any] = {"queries": len(picked), "checked": len(picked) >= MIN_UNSEEN_QUERIES}
    if not result["checked"]:
        return result
    assert table.train is not None and table.val is not None
    vectors = table.vectors
    corpus, queries = vectors[: table.n_corpus], vectors[table.val.rows[picked]]
    judged = [table.val.judged[i] for i in picked]
    seen = torch.zeros(table.n_corpus, dtype=torch.bool)
    seen[[doc for rels in table.train.judged for doc in rels]] = True
    original, original_share = _scores(queries, corpus, judged, seen)
    result["original"] = {"ndcg@10": round(float(original.mean()), 4),
                          "judged_share": round(original_share, 4)}  # fmt: skip
    result["dims"] = {}
    for dim in sorted(trained, reverse=True):
        spaces = {}
        for name, matrix in (("trained", trained[dim]), ("pca", pca[dim])):
            m = torch.from_numpy(np.ascontiguousarray(matrix, dtype=np.float32))
            spaces[name] = _scores(
                torch.nn.functional.normalize(queries @ m, dim=1),
                torch.nn.functional.normalize(corpus @ m, dim=1),
                judged,
                seen,
            )
        difference = spaces["trained"][0] - spaces["pca"][0]
        noise = NOISE_ERRORS * float(difference.std(ddof=1) / math.sqrt(len(difference)))
        result["dims"][dim] = {
            "trained": round(float(spaces["trained"][0].mean()), 4),
            "pca": round(float(spaces["pca"][0].mean()), 4),
            "difference": round(float(difference.mean()), 4),
            "noise": round(noise, 4),
            "worse": bool(difference.mean() < -noise),
            "judged_share": round(spaces["trained"][1], 4),
            "pca_judged_share": round(spaces["pca"][1], 4),
        }
    return result
