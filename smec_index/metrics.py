"""Ranking metrics, computed the way trec_eval does.

nDCG uses trec_eval's *linear* gain (``gain = rel``, discount ``log2(rank + 1)``), the variant
BEIR and MTEB report; the ideal ranking is built from every judged document of the query.
Scores are averaged over the queries in the qrels, as ``pytrec_eval`` does for a run that
answers every judged query.
"""

from __future__ import annotations

import itertools
import math
import numbers
import sys
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any

import numpy as np

from smec_index.errors import SmecError, brief

Ranking = Mapping[str, Sequence[str]]


def _cut(k: Any) -> int:
    """A cut-off: a whole number >= 1."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise SmecError(f"k {brief(k, 30)}: pass a whole number >= 1")
    return min(int(k), sys.maxsize)  # no ranking is longer: a larger k cuts nothing more


def _top(ranked: Any, k: int) -> list:
    """The first ``k`` ids of a ranking (a sequence, array or generator of ids)."""
    if isinstance(ranked, (str, bytes, Mapping)) or not isinstance(ranked, Iterable):
        raise SmecError(f"a ranking must be a list of document ids, got "
                        f"{type(ranked).__name__}")  # fmt: skip
    if isinstance(ranked, AbstractSet):  # no order: its "top k" would be any k
        raise SmecError(f"a ranking is ordered, best first; got a {type(ranked).__name__}: "
                        "pass a list")  # fmt: skip
    if type(ranked).__module__.startswith("torch") and hasattr(ranked, "detach"):
        ranked = ranked.detach().cpu().numpy()  # a tensor's items are 0-d tensors, no ids
    if isinstance(ranked, np.ndarray) and ranked.ndim != 1:  # Searcher.search's ids, whole
        raise SmecError(f"a ranking is one list of ids, got a {ranked.ndim}-d array (one row "
                        "per query?): pass one row, e.g. ids[0]")  # fmt: skip
    top = list(itertools.islice(ranked, _cut(k)))
    for doc in top:  # what is no id (a tensor, 1.5, True) would match nothing: a silent 0
        _padding(doc)
    return top


def _unique_top(ranked: Sequence[str], k: int) -> list:
    """The top ``k``, refused when an id appears twice (it would be counted twice)."""
    top = _top(ranked, k)  # each a string or a whole number: hashable
    real = [d for d in top if not _pad(d)]  # search pads short lists
    if len(set(real)) != len(real):
        raise SmecError("a ranking lists the same document twice; deduplicate it before scoring")
    return top


def _grades(relevance: Mapping[str, Any]) -> list:
    """The judged grades, refused unless each is a number."""
    if not isinstance(relevance, Mapping):
        raise SmecError(f"judgements must map document ids to grades, got "
                        f"{type(relevance).__name__}")  # fmt: skip
    grades = list(relevance.values())
    for grade in grades:
        if isinstance(grade, bool) or not isinstance(grade, numbers.Real) or not _finite(grade):
            raise SmecError(f"grade {brief(grade, 30)}: judgements grade documents with finite "
                            "numbers within float's range, e.g. 0, 1, 2")  # fmt: skip
    return grades


def _judged_top(ranked: Sequence[str], relevance: Mapping[str, Any], k: int) -> list:
    """The unique top ``k``, refused where its ids and the judgements' are of two kinds
    (text and numbers: 1 never equals "1", which scored a silent 0)."""
    top = _unique_top(ranked, k)
    _one_kind([d for d in top if not _pad(d)], relevance, "the judgements'")
    return top


def _one_kind(ranked: list, other: Collection, whose: str) -> None:
    """Refuse ids of two kinds where they meet: text in ``ranked`` and numbers in ``other``
    or the other way round, or an id of one kind whose twin of the other (``5`` and ``"5"``)
    is what ``other`` holds: 1 never equals "1", which scored a silent 0."""
    ranked_text = {isinstance(d, str) for d in ranked}
    other_text = {isinstance(d, str) for d in other}
    if len(ranked_text) == len(other_text) == 1 and ranked_text != other_text:
        kinds = ("text", "numbers") if ranked_text == {True} else ("numbers", "text")
        raise SmecError(f"the ranking's ids are {kinds[0]} and {whose} ids are {kinds[1]} "
                        f"(e.g. {next(iter(other))!r}), so none could match; convert one to "
                        "the other")  # fmt: skip
    _refuse_twins(ranked, other, "the ranking's id", whose)


def _twin(value: Any) -> Any:
    """The id of the other kind that ``value`` is mistaken for: ``"5"`` for 5, 5 for ``"5"``
    (None where there is none)."""
    if isinstance(value, str):
        digits = value[1:] if value[:1] == "-" else value
        return int(value) if digits.isascii() and digits.isdigit() else None
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return str(int(value))
    return None


def _refuse_twins(ids: Iterable, other: Collection, what: str, whose: str) -> None:
    """Refuse an id of ``ids`` that ``other`` lacks while it holds its twin: a run or a
    ranking of mixed kinds, which scored some queries or documents a silent 0."""
    for value in ids:
        if value not in other and (twin := _twin(value)) is not None and twin in other:
            kind = "text" if isinstance(value, str) else "a number"
            raise SmecError(f"{what} {brief(value, 40)} is {kind} where {whose} ids have "
                            f"{brief(twin, 40)}, so they could not match; convert one to the "
                            "other")  # fmt: skip


def _finite(value: numbers.Real) -> bool:
    """Whether ``value`` is a finite number within float's range (a huge int is not)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def ndcg_at_k(ranked: Sequence[str], relevance: Mapping[str, int], k: int = 10) -> float:
    """nDCG@k of one ranked list (trec_eval ``ndcg_cut``, linear gain).

    Args:
        ranked: document ids, best first.
        relevance: graded judgements of the query (``rel <= 0`` counts as not relevant).
        k: cut-off.
    """
    grades = _grades(relevance)
    dcg = sum(
        relevance.get(doc, 0) / math.log2(rank + 2)
        for rank, doc in enumerate(_judged_top(ranked, relevance, k))
        if relevance.get(doc, 0) > 0
    )
    ideal = sorted((r for r in grades if r > 0), reverse=True)[:k]
    idcg = sum(r / math.log2(rank + 2) for rank, r in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at_k(ranked: Sequence[str], relevance: Mapping[str, int], k: int = 10) -> float:
    """Share of the query's relevant documents found in the top k."""
    _grades(relevance)
    relevant = {d for d, r in relevance.items() if r > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(_judged_top(ranked, relevance, k))) / len(relevant)


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
    found, exact = _rankings(found), _rankings(exact)
    if len(found) != len(exact):
        raise SmecError(f"{len(found)} rankings for {len(exact)} exact ones; pass one per query")
    if not len(exact):
        raise SmecError("no queries: nothing to measure recall on")
    total = 0.0
    for got, want in zip(found, exact, strict=True):
        truth = {i for i in _top(want, k) if not _padding(i)}
        top = [i for i in _top(got, k) if not _padding(i)]
        _one_kind(top, truth, "exact search's")  # neither holds padding
        total += len(truth.intersection(top)) / len(truth) if truth else 0.0
    return total / len(exact)


def _rankings(rankings: Any) -> Sequence:
    """One ranking per query: a list (or array) of them; a generator is read into a list."""
    if isinstance(rankings, (str, bytes, Mapping)) or not isinstance(rankings, Iterable):
        raise SmecError(f"rankings must be one list of ids per query, in query order, got "
                        f"{type(rankings).__name__}")  # fmt: skip
    return rankings if isinstance(rankings, (Sequence, np.ndarray)) else list(rankings)


def _padding(value: Any, check: bool = True) -> bool:
    """Whether ``value`` pads a ranking (``""``, a negative row, None), not an id; what is
    no id at all (True, 1.5, a list) is refused, or with ``check`` false, no padding."""
    if value is None or isinstance(value, str):
        return not value
    if not isinstance(value, bool) and (isinstance(value, numbers.Integral) or (
        isinstance(value, numbers.Real) and _finite(value) and float(value).is_integer()
    )):
        return value < 0
    if check:  # True would count as id 1
        raise SmecError(f"id {brief(value, 30)} in a ranking: ids are strings or whole numbers")
    return False


def _pad(value: Any) -> bool:
    """:func:`_padding` that never raises (the kind checks refuse what is no id)."""
    return _padding(value, check=False)


def mean_metric(run: Ranking, qrels: Mapping[str, Mapping[str, int]], metric, k: int) -> float:
    """Mean of ``metric`` over the judged queries; a query missing from ``run`` scores 0."""
    if not callable(metric):
        raise SmecError(f"metric {brief(metric, 30)}: pass a function such as ndcg_at_k")
    if not isinstance(run, Mapping):
        raise SmecError(f"a run must map query ids to rankings, got {type(run).__name__}")
    if not isinstance(qrels, Mapping):
        raise SmecError(f"qrels must map query ids to {{document id: grade}}, got "
                        f"{type(qrels).__name__}; read a qrels file with "
                        "smec_index.data.read_qrels")  # fmt: skip
    if not qrels:
        raise SmecError("qrels are empty: nothing to evaluate; pass qrels with judgements")
    _refuse_twins(run, qrels, "the run's query id", "the qrels'")  # a silent 0 for those
    if run and not any(q in run for q in qrels):  # 1 never matches "1": a silent 0
        run_text, judged_text = {isinstance(q, str) for q in run}, {
            isinstance(q, str) for q in qrels}  # fmt: skip
        if len(run_text) == len(judged_text) == 1 and run_text != judged_text:
            kinds = ("text", "numbers") if run_text == {True} else ("numbers", "text")
            raise SmecError(f"the run's query ids are {kinds[0]} and the qrels' are {kinds[1]} "
                            f"(e.g. {next(iter(qrels))!r}), so no query could match; convert "
                            "one to the other")  # fmt: skip
    total = 0.0
    for query, rels in qrels.items():
        value = metric(run.get(query, ()), rels, k)
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not _finite(value):
            raise SmecError(f"metric {getattr(metric, '__name__', 'metric')} gave "
                            f"{brief(value, 30)} for query {brief(query, 40)}; a metric returns a "
                            "finite number, e.g. nDCG from 0 to 1")  # fmt: skip
        total += float(value)
    return total / len(qrels)


def evaluate_run(
    run: Ranking, qrels: Mapping[str, Mapping[str, int]], ks: Sequence[int] = (10, 100)
) -> dict[str, float]:
    """``ndcg@10`` plus ``recall@k`` for each k in ``ks``."""
    if isinstance(ks, (str, bytes)) or not isinstance(ks, Iterable):
        raise SmecError(f"ks {brief(ks, 30)}: pass a list of cut-offs, e.g. (10, 100)")
    cuts = [(k, _cut(k)) for k in ks]  # each refused before int() reads it
    ks = [(int(k), cut) for k, cut in cuts]  # the key names the k asked for
    if isinstance(run, Mapping):  # each ranking is read once per metric: a generator once
        run = {q: list(r) if isinstance(r, Iterator) else r for q, r in run.items()}
    scores = {"ndcg@10": mean_metric(run, qrels, ndcg_at_k, 10)}
    for k, cut in ks:
        scores[f"recall@{k}"] = mean_metric(run, qrels, recall_at_k, cut)
    return scores
