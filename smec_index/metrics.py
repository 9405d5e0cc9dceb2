"""Ranking metrics, computed the way trec_eval does.

nDCG uses trec_eval's *linear* gain (``gain = rel``, discount ``log2(rank + 1)``), the variant
BEIR and MTEB report; the ideal ranking is built from every judged document of the query.
Scores are averaged over the queries in the qrels, as ``pytrec_eval`` does for a run that
answers every judged query.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from smec_index.errors import SmecError

Ranking = Mapping[str, Sequence[str]]


def _unique_top(ranked: Sequence[str], k: int) -> Sequence[str]:
    """The top ``k``, refused when an id appears twice (it would be counted twice)."""
    top = ranked[:k]
    if len(set(top)) != len(top):
        raise SmecError("a ranking lists the same document twice; deduplicate it before scoring")
    return top


def ndcg_at_k(ranked: Sequence[str], relevance: Mapping[str, int], k: int = 10) -> float:
    """nDCG@k of one ranked list (trec_eval ``ndcg_cut``, linear gain).

    Args:
        ranked: document ids, best first.
        relevance: graded judgements of the query (``rel <= 0`` counts as not relevant).
        k: cut-off.
    """
    dcg = sum(
        relevance.get(doc, 0) / math.log2(rank + 2)
        for rank, doc in enumerate(_unique_top(ranked, k))
        if relevance.get(doc, 0) > 0
    )
    ideal = sorted((r for r in relevance.values() if r > 0), reverse=True)[:k]
    idcg = sum(r / math.log2(rank + 2) for rank, r in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at_k(ranked: Sequence[str], relevance: Mapping[str, int], k: int = 10) -> float:
    """Share of the query's relevant documents found in the top k."""
    relevant = {d for d, r in relevance.items() if r > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(_unique_top(ranked, k))) / len(relevant)


def recall_vs_exact(
    found: Sequence[Sequence[Any]], exact: Sequence[Sequence[Any]], k: int = 10
) -> float:
    """ann-benchmarks' recall@k of an index against exact search, the one smec-index
    reports everywhere (build, bench, migrate, training's held-out score, the scripts).

    Per query: how many of the exact top ``k`` are among the index's top ``k``, divided by
    how many exact neighbours there are (``k``, or fewer in a collection of fewer points);
    then the mean over queries. Padding (``""``, ``-1``, ``None``) is no neighbour. Ids may
    be strings or row numbers, the same kind in both.
    """
    if len(found) != len(exact):
        raise SmecError(f"{len(found)} rankings for {len(exact)} exact ones; pass one per query")
    if not len(exact):
        raise SmecError("no queries: nothing to measure recall on")
    total = 0.0
    for got, want in zip(found, exact, strict=True):
        truth = {i for i in list(want)[:k] if not _padding(i)}
        total += len(truth.intersection(list(got)[:k])) / len(truth) if truth else 0.0
    return total / len(exact)


def _padding(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value == "") or (
        not isinstance(value, str) and int(value) < 0)  # fmt: skip


def mean_metric(run: Ranking, qrels: Mapping[str, Mapping[str, int]], metric, k: int) -> float:
    """Mean of ``metric`` over the judged queries; a query missing from ``run`` scores 0."""
    if not qrels:
        raise SmecError("qrels are empty: nothing to evaluate; pass qrels with judgements")
    return sum(metric(run.get(q, ()), rels, k) for q, rels in qrels.items()) / len(qrels)


def evaluate_run(
    run: Ranking, qrels: Mapping[str, Mapping[str, int]], ks: Sequence[int] = (10, 100)
) -> dict[str, float]:
    """``ndcg@10`` plus ``recall@k`` for each k in ``ks``."""
    scores = {"ndcg@10": mean_metric(run, qrels, ndcg_at_k, 10)}
    for k in ks:
        scores[f"recall@{k}"] = mean_metric(run, qrels, recall_at_k, k)
    return scores
