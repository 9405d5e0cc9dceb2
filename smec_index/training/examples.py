"""Training examples: queries with their judged documents and mined hard negatives.

All vectors live in one table of *rows*: corpus rows ``0..N-1`` then query rows
``N..N+M-1``. Batches, the S-XBM keys and the cached stage inputs all refer to these rows,
so nothing is copied per step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from smec_index.data import Embeddings, Qrels, RetrievalData
from smec_index.errors import SmecError
from smec_index.metrics import ndcg_at_k
from smec_index.vectors import exact_search, normalize


@dataclass
class QuerySet:
    """Judged queries: their rows, and per query the judged docs and hard negatives."""

    rows: torch.Tensor  # (M,) query rows in the table
    judged: list[dict[int, int]]  # per query: doc row -> relevance
    negatives: torch.Tensor  # (M, K) doc rows, most similar unjudged docs

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    def batch(
        self,
        index: torch.Tensor,
        max_positives: int | None = None,
        generator: torch.Generator | None = None,
        in_batch: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Query rows, the batch's candidate doc rows, and labels (B, N).

        Candidates are every judged doc and hard negative of the batch. Each query is scored
        against its own judged docs and hard negatives; the other queries' candidates are
        labelled -1 (left out) unless ``in_batch``, which makes them its negatives too.

        With ``max_positives``, a query judged relevant to more documents brings at most that
        many (a random draw with ``generator``, else its most relevant ones), so memory does
        not grow with the number of judgements (NFCorpus has queries with 1,363). Its other
        judged documents that are candidates anyway are labelled -1: neither positive nor
        negative for it (never mistaken for a negative).
        """
        picked = index.tolist()
        chosen = [self._positives(i, max_positives, generator) for i in picked]
        docs = sorted(
            {d for c in chosen for d in c}.union(self.negatives[index].flatten().tolist())
        )
        column = {d: c for c, d in enumerate(docs)}
        labels = torch.full((len(picked), len(docs)), 0.0 if in_batch else -1.0)
        for b, (i, kept) in enumerate(zip(picked, chosen, strict=True)):
            if not in_batch:
                labels[b, [column[d] for d in self.negatives[i].tolist()]] = 0.0
            for d, rel in self.judged[i].items():
                if d in column:
                    labels[b, column[d]] = float(rel) if d in kept else -1.0
        return self.rows[index], torch.tensor(docs, dtype=torch.long), labels

    def _positives(
        self, query: int, cap: int | None, generator: torch.Generator | None
    ) -> set[int]:
        judged = self.judged[query]
        if cap is None or len(judged) <= cap:
            return set(judged)
        docs = sorted(judged, key=lambda d: (-judged[d], d))  # most relevant first
        if generator is None:
            return set(docs[:cap])
        order = torch.randperm(len(docs), generator=generator)[:cap].tolist()
        return {docs[j] for j in order}

    def mine(self, corpus: np.ndarray, queries: np.ndarray) -> None:
        """Replace the hard negatives by the most similar unjudged docs of ``corpus`` (rows
        ``0..N-1``) for ``queries`` (one row per query of this set), as many as before."""
        k = int(self.negatives.shape[1])
        self.negatives = mine_negatives(corpus, queries, self.judged, k)

    def merged(self, other: QuerySet) -> QuerySet:
        """This set followed by ``other`` (train plus held-out, for the refit)."""
        return QuerySet(
            torch.cat([self.rows, other.rows]),
            self.judged + other.judged,
            torch.cat([self.negatives, other.negatives]),
        )

    def chunks(self, max_positives: int, budget: int = 50_000_000) -> list[torch.Tensor]:
        """Query indexes in groups whose rank loss (queries x positives x candidates) stays
        under ``budget`` elements; one group when everything fits (SciFact's validation)."""
        per_query = [min(len(j), max_positives) for j in self.judged]
        width = self.negatives.shape[1]
        groups, current, positives, candidates = [], [], 0, 0
        for i, p in enumerate(per_query):
            size = (len(current) + 1) * max(positives, p) * (candidates + p + width)
            if current and size > budget:
                groups.append(torch.tensor(current))
                current, positives, candidates = [], 0, 0
            current.append(i)
            positives, candidates = max(positives, p), candidates + p + width
        if current:
            groups.append(torch.tensor(current))
        return groups


# Documents of the original space a logged query is taught to keep in its top 10.
LOG_NEIGHBOURS = 10


def query_log_qrels(data: RetrievalData, log: np.ndarray) -> tuple[RetrievalData, Qrels]:
    """Labels from a query log without judgements: each logged query's top 10 documents of
    the original space count as its relevant ones.

    Training then learns to keep what real queries find (not only what the corpus looks
    like), and its held-out score is recall@10 of the original neighbours of held-out
    logged queries.
    """
    if len(log) < 4:
        raise SmecError(f"--queries holds {len(log)} queries; pass at least 4 to train on")
    ids = [f"log-{i}" for i in range(len(log))]
    corpus = np.asarray(data.corpus.vectors, dtype=np.float32)
    k = min(LOG_NEIGHBOURS, corpus.shape[0])
    _, nearest = exact_search(normalize(corpus), normalize(np.asarray(log, np.float32)), k)
    qrels = {q: {data.corpus.ids[r]: 1 for r in row} for q, row in zip(ids, nearest, strict=True)}
    return RetrievalData(corpus=data.corpus, queries=Embeddings(ids, log)), qrels


def ndcg_at_10(queries: torch.Tensor, corpus: torch.Tensor, judged: list[dict[int, int]]) -> float:
    """Mean nDCG@10 of exact search by inner product, by :func:`smec_index.metrics.ndcg_at_k`
    (the one reported: linear gains, relevance <= 0 not relevant, 0 for a query with no
    relevant document); ``judged[i]`` maps corpus rows to the relevance of query ``i``."""
    top = (queries @ corpus.T).topk(min(10, corpus.shape[0]), dim=1).indices.tolist()
    scores = [ndcg_at_k(row, rels, 10) for row, rels in zip(top, judged, strict=True)]
    return sum(scores) / max(1, len(scores))


@dataclass
class TrainingTable:
    """Normalised original vectors for every row, and the train/validation split."""

    vectors: torch.Tensor  # (N + M, D) normalised originals
    n_corpus: int
    train: QuerySet | None
    val: QuerySet | None
    train_docs: torch.Tensor  # corpus rows for unsupervised steps
    val_docs: torch.Tensor  # held-out corpus rows (unsupervised validation)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])


def mine_negatives(
    corpus: np.ndarray, queries: np.ndarray, judged: list[dict[int, int]], k: int
) -> torch.Tensor:
    """(M, k) rows of each query's ``k`` most similar documents that it has not judged."""
    if k == 0:
        return torch.zeros(len(judged), 0, dtype=torch.long)
    _, nearest = exact_search(
        normalize(corpus), normalize(queries), k + max(len(j) for j in judged)
    )
    negatives = [
        [int(r) for r in row if r not in j][:k] for row, j in zip(nearest, judged, strict=True)
    ]
    return torch.tensor(negatives, dtype=torch.long).reshape(len(judged), k)


def _query_set(
    data: RetrievalData, qrels: Qrels, query_ids: list[str], corpus: np.ndarray, k: int
) -> QuerySet:
    queries = normalize(data.queries.take(query_ids))
    judged = [
        {data.corpus.row(d): rel for d, rel in qrels[q].items() if rel > 0} for q in query_ids
    ]
    offset = data.corpus.vectors.shape[0]
    rows = torch.tensor([offset + data.queries.row(q) for q in query_ids], dtype=torch.long)
    return QuerySet(rows, judged, mine_negatives(corpus, queries, judged, k))


def _grouped_by_documents(order: list[str], qrels: Qrels, n_val: int) -> tuple[list[str], int]:
    """``order`` regrouped so that its first queries (about ``n_val``; their count is
    returned) share no relevant document with the rest: groups of queries linked by shared
    relevant documents, in the order their first query appears, each held out whole while
    the held-out part stays within a tenth above ``n_val`` (a larger group trains)."""
    parent = {q: q for q in order}

    def root(q: str) -> str:
        while parent[q] != q:
            parent[q] = parent[parent[q]]
            q = parent[q]
        return q

    first_query: dict[str, str] = {}
    for q in order:
        for doc, rel in qrels[q].items():
            if rel > 0:
                other = first_query.setdefault(doc, q)
                parent[root(q)] = root(other)
    groups: dict[str, list[str]] = {}
    for q in order:
        groups.setdefault(root(q), []).append(q)
    most = n_val + max(1, n_val // 10)
    val: list[str] = []
    rest: list[str] = []
    for members in groups.values():
        (val if len(val) < n_val and len(val) + len(members) <= most else rest).extend(members)
    if len(val) < max(1, n_val // 2) or not rest:
        largest = max(len(m) for m in groups.values())
        raise SmecError(
            f"the judged queries share relevant documents so widely (one group of {largest} "
            f"of {len(order)} queries) that no held-out part of about {n_val} queries shares "
            "none with training; hold out by queries (val_split=\"queries\", the default)"
        )
    return val + rest, len(val)


def build_table(
    data: RetrievalData,
    qrels: Qrels | None,
    hard_negatives: int,
    val_fraction: float,
    seed: int,
    unsupervised_too: bool = True,
    by_documents: bool = False,
) -> TrainingTable:
    """Split judged queries (or, unsupervised, the corpus) into train and validation parts.

    The split is seeded; test qrels must never be passed here. ``unsupervised_too``: the
    method can also train without qrels (the refusal of too few queries may say so).
    ``by_documents``: queries that share a relevant document stay on one side, so no
    held-out query has a relevant document a training query judges (selection then scores
    documents training never saw judged).
    """
    rng = np.random.default_rng(seed)
    corpus = normalize(data.corpus.vectors)
    table = torch.from_numpy(np.concatenate([corpus, normalize(data.queries.vectors)]))
    n = corpus.shape[0]
    doc_order = torch.from_numpy(rng.permutation(n))
    n_val_docs = max(1, int(round(n * val_fraction)))
    train_set = val_set = None
    if qrels is not None:
        judged = [q for q in qrels if any(r > 0 for r in qrels[q].values())]
        if len(judged) < 4:
            raise SmecError(
                f"only {len(judged)} queries with relevant documents; supervised training needs "
                "at least 4" + (", or pass --unsupervised" if unsupervised_too else
                                " (this method is supervised only)")
            )  # fmt: skip
        order = [judged[i] for i in rng.permutation(len(judged))]
        n_val = max(1, int(round(len(order) * val_fraction)))
        if by_documents:
            order, n_val = _grouped_by_documents(order, qrels, n_val)
        val_set = _query_set(data, qrels, order[:n_val], corpus, hard_negatives)
        train_set = _query_set(data, qrels, order[n_val:], corpus, hard_negatives)
    return TrainingTable(
        vectors=table,
        n_corpus=n,
        train=train_set,
        val=val_set,
        train_docs=doc_order[n_val_docs:],
        val_docs=doc_order[:n_val_docs],
    )
