"""Exact-search evaluation of a compressed space.

Queries and documents are projected with the same map, L2-normalised, and ranked by inner
product (= cosine) with a FAISS flat index, so the numbers measure the projection alone, not
an approximate index.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

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


@dataclass
class EvalRequest:
    """``smec-index eval``: an artifact, or ``method`` (none, truncate, pca) fitted here,
    scored by exact search on ``split`` (or the qrels file). ``split_given``: the user chose
    the split (so it cannot be combined with a qrels file)."""

    dataset: Path
    artifact: Path | None = None
    method: str | None = None
    dims: str | None = None
    split: str = "test"
    qrels_file: Path | None = None
    embeddings: Path | None = None
    skip_unknown_qrels: bool = False
    split_given: bool = False


def run_eval(r: EvalRequest) -> dict:
    """Check the flags, artifact and dims (before the embeddings are read), then score each
    dim: ``{"method", "split", "dataset", "queries", "results": {dim: metrics}}``."""
    from smec_index.compressors import load_compressor, make_compressor
    from smec_index.compressors.base import check_input_dim
    from smec_index.data import load_retrieval_data
    from smec_index.errors import SmecError
    from smec_index.options import parse_dims

    if (r.artifact is None) == (r.method is None):
        raise SmecError("pass exactly one of --artifact DIR or --method none|truncate|pca")
    if r.qrels_file is not None and r.split_given:
        raise SmecError("pass --split or --qrels, not both")
    eval_dims = parse_dims(r.dims)
    if r.method == "none" and eval_dims is not None:
        raise SmecError(
            "--method none evaluates the original vectors at their own dim; drop --dims"
        )
    if r.artifact is not None:
        compressor = load_compressor(r.artifact)
        eval_dims = eval_dims or list(compressor.dims)
        missing = [d for d in eval_dims if d not in compressor.dims and d != compressor.input_dim]
        if missing:
            have = ", ".join(str(d) for d in compressor.dims)
            raise SmecError(f"{r.artifact} has no dim {missing[0]}; pass --dims from {have}")
        name = compressor.method
    elif r.method == "none":
        compressor, name = None, "none"
    else:
        compressor, name = make_compressor(r.method, eval_dims or [128, 64, 32]), r.method
    data = load_retrieval_data(r.dataset, r.embeddings, skip_unknown_qrels=r.skip_unknown_qrels)
    qrels = data.qrels(r.split, r.qrels_file)
    if r.artifact is not None:
        check_input_dim(compressor, data.dim)
    elif r.method == "none":
        eval_dims = [data.dim]
    else:
        eval_dims = list(compressor.fit(data).dims)
    results = evaluate_dims(data, qrels, compressor, eval_dims)
    return {
        "method": name,
        "split": str(r.qrels_file) if r.qrels_file else r.split,
        "dataset": data.dataset.name if data.dataset else "",
        "queries": len(qrels),
        "results": {str(d): m for d, m in results.items()},
    }


def eval_lines(summary: dict) -> list[str]:
    """``eval``'s table: one line per dim."""
    lines = [f"{summary['method']} on {summary['dataset']} {summary['split']} "
             f"({summary['queries']} queries)",
             f"{'dim':>6} {'nDCG@10':>8} {'R@10':>8} {'R@100':>8}"]  # fmt: skip
    for d, m in summary["results"].items():
        lines.append(f"{d:>6} {m['ndcg@10']:>8.4f} {m['recall@10']:>8.4f} {m['recall@100']:>8.4f}")
    return lines
