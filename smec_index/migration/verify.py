"""Checking a migration before any alias moves, and predicting its gate in a dry run.

Verification: counts equal; every id present (an order-free digest of the id sets, both
streamed); a sample of vectors equal to the projection of the source's (1e-5), payloads
(and a Qdrant point's other vectors) equal to the source's.

The gate: recall@10 of the target's search against the source's own search, with the first
:data:`SAMPLE` source points (in the source's stable order) as queries; with ``--queries``
and ``--qrels``, nDCG@10 of the held-out queries instead. A dry run measures the same
queries against the same truth (the source's own search), with exact search over every
projected source vector standing in for the target's index, which does not exist yet.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from smec_index.connectors.source import Source, SourceBatch
from smec_index.errors import SmecError
from smec_index.metrics import recall_vs_exact


class Stale(SmecError):
    """The target no longer holds the source as copied: only ``--restart`` mends it."""


SAMPLE = 256  # source points read back, and used as quality-gate queries
# Why sampled points can differ, and the way forward (resuming cannot mend it)
CHANGED = ("the source's points were changed since they were copied (or the copy's since it "
           "was written); not switched: pass --restart to copy the source again")

Search = Callable[[np.ndarray, int], list[list[str]]]


def id_digest(ids: Iterable[str]) -> tuple[int, int]:
    """Count and an order-free digest of a stream of ids (sum of 64-bit hashes)."""
    count, total = 0, 0
    for point_id in ids:
        count += 1
        digest = hashlib.blake2b(point_id.encode(), digest_size=8).digest()
        total = (total + int.from_bytes(digest, "little")) % (1 << 64)
    return count, total


def gate_queries(source: Source, nonzero: bool = False) -> SourceBatch:
    """The first :data:`SAMPLE` points of the source; ``nonzero``: the first of its first
    ``4 * SAMPLE`` whose vectors are not all zeros, as the recall gate's queries (a zero query
    ties with every point: its top 10 is any 10, which read as recall lost at every dim)."""
    if not nonzero:
        return next(iter(source.iterate(SAMPLE, None)))
    batch = next(iter(source.iterate(4 * SAMPLE, None)))
    rows = np.flatnonzero(np.abs(np.asarray(batch.vectors)).max(axis=1, initial=0) > 0)
    return batch.take([int(i) for i in (rows if len(rows) else range(len(batch.ids)))[:SAMPLE]])


def recall_at_10(truth: list[list[str]], found: list[list[str]]) -> float:
    return recall_vs_exact(found, truth, 10)


def verify(source: Source, target: Any, name: str, projection, dim: int, count: int,
           streamed: bool = False, full: bool = False) -> int:  # fmt: skip
    """Raise :class:`SmecError` (the alias stays) unless the target holds the source.
    ``streamed``: every batch of the source was written (so a count that differs means the
    source changed, and resuming cannot help). ``full``: compare every point, not a sample
    (a copy written by an earlier run, or partly by one: the source may have changed
    since). Returns how many compared float payload values the target holds within its
    ``float_ulps`` of the source's, not bit for bit."""
    got = target.count(name)
    if got != count:
        if streamed and got > count:
            raise Stale(f"the finished copy holds {got} points and the source {count}: "
                            "points were deleted from the source since it was copied, or "
                            "written into the copy since (an app through its alias?), so it "
                            "is no longer the source's copy; it stays as it is (--restart "
                            "copies the source again)")  # fmt: skip
        if streamed:
            raise Stale(f"the source holds {count} points now and the finished copy {got}: "
                            "the source changed since it was copied; not switched: pass "
                            "--restart to copy it again")  # fmt: skip
        raise SmecError(
            f"the target holds {got} points, the source {count}; not switched: run again to resume"
        )
    source_ids = id_digest(i for ids in source.ids(10_000) for i in ids)
    target_ids = id_digest(i for ids in target.ids(name, 10_000) for i in ids)
    if source_ids != target_ids:
        raise Stale("the target's ids differ from the source's; not switched: pass --restart")
    target.verify_layout(name)
    near = [0]
    what = "target" if full else "sampled target"
    for batch in every_point(source, count) if full else [gate_queries(source)]:
        _compare(batch, target.get(name, batch.raw_ids), projection, dim,
                 getattr(target, "float_ulps", 0), near, what)  # fmt: skip
    return near[0]


VERIFY_BATCH = 1_000  # points compared at a time when every point is


def every_point(source: Source, count: int) -> Iterable[SourceBatch]:
    """The source's points in batches of :data:`VERIFY_BATCH`, with a progress bar: what a
    full verification compares."""
    return tqdm(source.iterate(VERIFY_BATCH, None), total=-(-count // VERIFY_BATCH),
                desc="verify every point", disable=None, leave=False)  # fmt: skip


def _compare(batch: SourceBatch, stored, projection, dim: int, ulps: int, near: list[int],
             what: str) -> None:  # fmt: skip
    """The target's points for ``batch`` hold its ids, the projection of its vectors, its
    payloads and its other vectors, or a one-line error with the way forward."""
    if not holds_points(stored, batch.ids, projection.transform(batch.vectors, dim)):
        raise Stale(f"{what} vectors differ from the projection of the source's; "
                        f"{CHANGED}")  # fmt: skip
    if not same_values(stored.payloads, batch.payloads, ulps, near):
        raise Stale(f"{what} payloads differ from the source's; {CHANGED}")
    if stored.carried is not None and batch.carried is not None:
        if not all(_same_vectors(a, b) for a, b in zip(stored.carried, batch.carried,
                                                       strict=True)):  # fmt: skip
            raise Stale(f"{what} points' other vectors differ from the source's; "
                            f"{CHANGED}")  # fmt: skip


def holds_points(stored, ids: list[str], vectors: np.ndarray) -> bool:
    """Whether the points ``stored`` (read back from a target) are ``ids`` with the projected
    ``vectors`` written for them (to float32 rounding and an engine's normalisation)."""
    got = np.asarray(stored.vectors)
    return (stored.ids == ids and got.shape == np.shape(vectors)
            and bool(np.allclose(got, vectors, atol=1e-5)))  # fmt: skip


def same_values(a: Any, b: Any, ulps: int = 0, near: list[int] | None = None) -> bool:
    """``a == b``, with NaN equal to NaN (a float field may hold it, and the copy must).

    ``ulps``: floats within that many units in the last place are the same too, counted in
    ``near[0]`` (qdrant-edge parses a payload float to a neighbouring double one time in
    four: 9.100000381469727 comes back as 9.100000381469728)."""
    if isinstance(a, float) and isinstance(b, float):
        if a != a and b != b:
            return True
        if (a != b and ulps and math.isfinite(a) and math.isfinite(b)
                and abs(a - b) <= ulps * math.ulp(b)):  # fmt: skip
            if near is not None:
                near[0] += 1
            return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_values(a[k], b[k], ulps, near) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_values(x, y, ulps, near)
                                        for x, y in zip(a, b, strict=True))  # fmt: skip
    same = a == b
    return same if isinstance(same, bool) else bool(np.array_equal(a, b))


def _same_vectors(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if set(a) != set(b):
        return False
    for name, value in a.items():
        other = b[name]
        if hasattr(value, "indices"):  # a sparse vector
            if list(value.indices) != list(other.indices) or not np.allclose(
                value.values, other.values
            ):
                return False
        else:
            mine, theirs = np.asarray(value, np.float32), np.asarray(other, np.float32)
            if mine.shape != theirs.shape:
                return False
            # Qdrant stores Cosine vectors unit-length (qdrant-client's local mode too, in
            # the writing client's memory): the same vector, normalised, is the same.
            if not (np.allclose(mine, theirs) or np.allclose(_unit(mine), _unit(theirs),
                                                              atol=1e-5)):  # fmt: skip
                return False
    return True


def _unit(rows: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=-1, keepdims=True)
    return np.divide(rows, norms, out=np.zeros_like(rows), where=norms > 0)


def recall_gate(source: Source, search: Search, projection, dim: int) -> dict[str, Any]:
    sample = gate_queries(source, nonzero=True)
    truth = source.search(sample.vectors, 10)
    found = search(projection.transform(sample.vectors, dim), 10)
    return {"metric": "recall@10", "value": recall_at_10(truth, found),
            "queries": len(sample.ids)}  # fmt: skip


def exact_search(source: Source, projection, dim: int, progress: bool) -> Search:
    """Exact top-k by inner product over every projected source vector (the projection's
    output is unit-length, so cosine, dot and L2 rank alike): one pass over the source per
    call, a progress bar over its points."""

    def search(queries: np.ndarray, k: int) -> list[list[str]]:
        best_ids: list[list[str]] = [[] for _ in range(len(queries))]
        best = np.full((len(queries), 0), -np.inf, np.float32)
        total = source.count()
        with tqdm(total=total, desc="dry run: exact search", unit="vec",
                  disable=not progress) as bar:  # fmt: skip
            for batch in source.iterate(10_000, None):
                if not batch.ids:
                    continue
                scores = queries @ projection.transform(batch.vectors, dim).T
                if scores.shape[1] > k:  # this batch's own top k first, then the merge
                    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
                else:
                    top = np.tile(np.arange(scores.shape[1]), (len(queries), 1))
                merged = np.concatenate([best, np.take_along_axis(scores, top, axis=1)], axis=1)
                names = [row + [batch.ids[j] for j in cols]
                         for row, cols in zip(best_ids, top, strict=True)]  # fmt: skip
                keep = np.argsort(-merged, axis=1, kind="stable")[:, :k]
                best = np.take_along_axis(merged, keep, axis=1)
                best_ids = [[row[j] for j in cols] for row, cols in zip(names, keep, strict=True)]
                bar.update(len(batch.ids))
        return best_ids

    return search


def check_metric(source: Source) -> None:
    """A source ranked by inner product or L2 over vectors that are not unit length would
    rank otherwise once compressed: a projection's output is unit length (it ranks by angle,
    and the norms the source ranks by are gone). Refused up front, naming that, instead of
    a quality gate failing after the whole copy was written."""
    if source.info.metric == "cosine":
        return
    sample = gate_queries(source)
    if not len(sample.vectors):
        return
    from smec_index.migration.stream import not_unit_length, off_unit

    norms = np.linalg.norm(np.asarray(sample.vectors, np.float64), axis=1)
    if not off_unit(norms).any():
        return  # unit vectors rank alike by angle, inner product and L2
    seen = f"norms {norms.min():.3g} to {norms.max():.3g} in its first {len(norms)} points"
    raise SmecError(not_unit_length(source.info.metric, seen))
