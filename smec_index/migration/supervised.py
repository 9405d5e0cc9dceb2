"""Supervised migrate: ``--queries`` (real query vectors) + ``--qrels`` (which source points
are relevant to them).

The queries are split by a hash of their ids: 80% train, 20% held out. SMEC is trained on the
train queries against a corpus made of the fitting sample plus every judged point (read from
the source by id); PCA is fitted on the same corpus. Whichever scores the higher nDCG@10 on
the held-out queries (exact search in the sample) is applied, so the projection is never
worse than PCA there, and the choice is printed and recorded beside the artifact. The
trained projection is cached under the data dir, keyed on the query and qrels files, the dim
and the sample size, so a resumed run applies the same one.

The quality gate then becomes nDCG@10 of the held-out queries searched in the target,
relative to the same queries searched in the source with their original vectors.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from smec_index.artifact import artifact_fingerprint
from smec_index.compressors.base import load_projection
from smec_index.connectors.storage import file_lock, write_json_atomic
from smec_index.data import Embeddings, RetrievalData, load_npy, load_parquet, read_qrels
from smec_index.errors import SmecError, brief
from smec_index.metrics import ndcg_at_k

HELD_OUT = 5  # one query in five is held out


def load_queries(request: Any, dim: int) -> Embeddings:
    path = Path(request.queries)
    if path.suffix == ".parquet":
        queries = load_parquet(path)
    elif path.suffix == ".npy":
        ids = request.query_ids or path.with_name("query_ids.txt")
        if not Path(ids).is_file():
            raise SmecError(f"--queries {path}: pass --query-ids FILE (one id per line)")
        queries = load_npy(path, ids)
    else:
        raise SmecError(
            f"--queries {path}: use a .npy (with --query-ids) or a .parquet (id, vector)"
        )
    if queries.dim != dim:
        raise SmecError(f"--queries {path}: {queries.dim}-d vectors, the source's are {dim}-d")
    return queries


MIN_TRAIN_QUERIES = 4  # training.examples refuses fewer


def split(qrels: dict[str, dict[str, int]]) -> tuple[dict, dict]:
    """(train, held-out) by a hash of each query id: the same split on every run."""
    train, held = {}, {}
    for query_id, rels in qrels.items():
        digest = hashlib.blake2b(query_id.encode(), digest_size=8).digest()
        (held if int.from_bytes(digest, "little") % HELD_OUT == 0 else train)[query_id] = rels
    if not train or not held:
        raise SmecError(
            f"--qrels: {len(qrels)} judged queries are too few to train and hold out; pass more"
        )
    relevant = sum(any(score > 0 for score in rels.values()) for rels in train.values())
    if relevant < MIN_TRAIN_QUERIES:  # what SMEC's training needs
        raise SmecError(
            f"--qrels: {relevant} of the queries it trains on have a relevant document; "
            f"supervised fitting needs at least {MIN_TRAIN_QUERIES}: pass more judged queries, "
            "or leave out --queries and --qrels to fit without labels (PCA)"
        )
    return train, held


def _judged(request: Any, queries: Embeddings, source: Any = None) -> dict[str, dict[str, int]]:
    qrels = read_qrels(request.qrels)
    canonical = getattr(source, "canonical_id", None)
    if canonical is not None:  # a Qdrant UUID in capitals is the same point
        qrels = {q: {canonical(d): s for d, s in rels.items()} for q, rels in qrels.items()}
    known = {q: rels for q, rels in qrels.items() if q in queries}
    if not known:
        raise SmecError(f"--qrels {request.qrels}: none of its queries are in --queries")
    return known


def check_supervised(request: Any, dim: int) -> None:
    """--queries and --qrels read and matched before anything is written (the run reads
    them again when it fits)."""
    split(_judged(request, load_queries(request, dim)))


def fit_supervised(
    request: Any, source: Any, ids: list[str], vectors: np.ndarray, folder: Any, say
):
    """The better of SMEC (trained on the train queries) and PCA on the held-out queries.

    ``folder(name)`` is where an artifact of that name is kept for this source."""
    queries = load_queries(request, source.info.dim)
    qrels = _judged(request, queries, source)
    key = hashlib.sha256()
    for path in (request.queries, request.qrels):
        key.update(Path(path).read_bytes())
    key.update(f"{request.dim}-{len(ids)}".encode())
    where = folder(f"supervised-{request.dim}-{key.hexdigest()[:12]}")
    name = where.name
    record = where.with_name(f"{name}.selection.json")
    if (where / "config.json").is_file() and record.is_file():
        chosen = json.loads(record.read_text())
        say(f"using the cached {chosen['chosen']} projection {where} ({chosen['why']})")
        return load_projection(where), where, artifact_fingerprint(where)
    corpus = _corpus(source, ids, vectors, qrels)
    train, held = split(qrels)
    data = RetrievalData(corpus, queries)
    from smec_index.compressors import make_compressor
    from smec_index.compressors.simple import PCA
    from smec_index.evaluate import evaluate_transform

    smec = make_compressor("smec", [request.dim], progress=False).fit(data, train)
    pca = PCA([request.dim]).fit(data)
    scores = {
        name: evaluate_transform(data, held, lambda x, c=c: c.transform(x, request.dim))["ndcg@10"]
        for name, c in (("smec", smec), ("pca", pca))
    }
    chosen = "smec" if scores["smec"] > scores["pca"] else "pca"
    why = (f"held-out nDCG@10 of {len(held)} queries: smec {scores['smec']:.4f}, pca "
           f"{scores['pca']:.4f}")  # fmt: skip
    say(f"supervised fit: {chosen} to {request.dim} dims ({why})")
    best = smec if chosen == "smec" else pca
    if request.dry_run:
        return best, None, None
    with file_lock(request.data_dir / "locks" / "migrate" / f"{name}.lock", "fitting"):
        if not (where / "config.json").is_file():
            best.save(where)
        write_json_atomic(record, {"chosen": chosen, "why": why, "held_out": scores})
    return load_projection(where), where, artifact_fingerprint(where)


def _corpus(source: Any, ids: list[str], vectors: np.ndarray, qrels) -> Embeddings:
    """The fitting sample plus every judged point it lacks, read from the source."""
    have = set(ids)
    wanted = sorted({d for rels in qrels.values() for d in rels} - have)
    extra_ids, extra = [], []
    for first in range(0, len(wanted), 1000):
        raws = [source.raw_id(d) for d in wanted[first : first + 1000]]
        batch = source.get(raws)
        extra_ids += batch.ids
        extra.append(batch.vectors)
    present = have | set(extra_ids)
    if not any(d in present for rels in qrels.values() for d in rels):
        raise SmecError("--qrels: none of its judged ids are in the source; check the ids")
    if extra:
        return Embeddings(ids + extra_ids, np.concatenate([vectors, *extra]))
    return Embeddings(list(ids), vectors)


def _source_scores(request: Any, source: Any):
    """The held-out queries, their vectors, the source's own top 10 for each and its mean
    nDCG@10; refused when that is 0 (the queries and qrels cannot judge anything)."""
    queries = load_queries(request, source.info.dim)
    _, held = split(_judged(request, queries, source))
    vectors = queries.take(list(held))
    truth = source.search(vectors, 10)
    before = float(np.mean([ndcg_at_k(r, held[q], 10) for q, r in zip(held, truth, strict=True)]))
    if before <= 0:
        judged = sorted({d for rels in held.values() for d in rels})
        try:  # none of them a point of the source: say that, not that search missed them
            found = source.get([source.raw_id(d) for d in judged[:1000]]).ids
        except SmecError:  # an id the source's key cannot be
            found = []
        if not found:
            raise SmecError(
                f"--qrels: none of the documents judged for the {len(held)} held-out queries "
                f"(e.g. {brief(judged[0], 40)}) is a point of the source; --qrels must name the "
                "source's point ids"
            )
        raise SmecError(
            f"--qrels: the source's own search finds none of the judged documents of the "
            f"{len(held)} held-out queries (nDCG@10 0), so they cannot judge a copy; check "
            "that --qrels names the source's point ids and --queries' ids"
        )
    return held, vectors, before


def check_source_judges(request: Any, source: Any) -> None:
    """Before any training or write: the source's own search scores the held-out queries
    above 0, or the gate could never pass (it was found only after the whole copy)."""
    _source_scores(request, source)


def ndcg_gate(request: Any, source: Any, search: Any, projection) -> dict:
    """nDCG@10 of the held-out queries searched by ``search(vectors, k)`` (the target's,
    or a dry run's exact search) relative to the source's own search."""
    held, vectors, before = _source_scores(request, source)
    found = search(projection.transform(vectors, request.dim), 10)
    after = float(np.mean([ndcg_at_k(r, held[q], 10) for q, r in zip(held, found, strict=True)]))
    return {
        "metric": "ndcg@10 ratio",
        "value": after / before,
        "ndcg@10": round(after, 4),
        "ndcg@10_source": round(before, 4),
        "ndcg@10_queries": len(held),
    }
