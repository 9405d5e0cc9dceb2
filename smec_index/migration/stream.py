"""Streaming a source into a target with checkpoints: the part of a migration that a kill
can interrupt and the same command resumes.

A checkpoint is taken every ``checkpoint_rows`` points, after the target made them durable
(flushed where its writes live in memory: faiss and hnswlib). A killed run resumes from the
last checkpoint: the points after it are written again, and since writes are upserts by id
nothing is doubled.
"""

from __future__ import annotations

import contextlib
import queue
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from smec_index.connectors.source import Partition, Source
from smec_index.errors import SmecError
from smec_index.migration.verify import holds_points

RETRY_WAITS = (1.0, 2.0, 4.0, 8.0)  # seconds before each retry of a failed stream


# What a server or a network says when it is away for a moment (gRPC UNAVAILABLE, a
# refused or reset connection, a timeout): worth a retry. Anything else is permanent.
_TRANSIENT = re.compile(
    r"connect|unavailable|timed? ?out|deadline|refused|reset by peer|broken pipe|"
    r"temporarily|try again|server closed|disconnect|not ready",
    re.IGNORECASE,
)


class SourceDataError(SmecError):
    """Something in the source itself (NaN vectors): retrying cannot help."""


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it was raised from or during) says a server or the network
    is away for a moment. A full disk, a refused request or bad data are permanent: a retry
    would only repeat them (and wait 15 s doing so)."""
    from smec_index.connectors.storage import is_disk_full

    seen, chain = exc, 0
    while seen is not None and chain < 10:
        if is_disk_full(seen):
            return False
        if isinstance(seen, (ConnectionError, TimeoutError)):
            return True
        if _TRANSIENT.search(type(seen).__name__) or _TRANSIENT.search(str(seen)):
            return True
        seen, chain = seen.__cause__ or seen.__context__, chain + 1
    return False


def check_finite(vectors: np.ndarray, ids: list[str]) -> None:
    bad = ~np.isfinite(vectors).all(axis=1)
    if bad.any():
        raise SourceDataError(
            f"the source holds NaN or inf vectors (e.g. id {ids[int(np.argmax(bad))]!r}); "
            "migrate refuses them: fix or delete those points in the source first"
        )


def not_unit_length(metric: str, seen: str) -> str:
    """Why a source ranked by ``metric`` over vectors that are not unit length is refused
    (``seen``: the norms found)."""
    return (
        f"the source ranks by {metric} over vectors that are not unit length ({seen}); a "
        "compressed copy holds unit-length vectors, which rank by angle, so its results would "
        "differ at any dim: normalise the source's vectors (or migrate a cosine collection); "
        "smec-index does not yet keep vector norms"
    )


def off_unit(norms: np.ndarray) -> np.ndarray:
    """Which ``norms`` are not unit length (float16 sources stay within 1e-3 of it)."""
    return np.abs(norms - 1.0) > 1e-3


def check_source_vectors(vectors: np.ndarray, ids: list[str], metric: str) -> None:
    """Every vector a migration reads: finite, within +-1e15 (beyond, a projection
    overflows; refused after the fit and the target's creation before) and, where the
    source ranks by inner product or L2, unit length (the first points alone were checked up
    front, so a source whose later points are longer was copied whole, then failed its gate
    at any dim)."""
    check_finite(vectors, ids)
    if not len(ids):
        return
    from smec_index.data import MAX_ABS_VALUE

    largest = np.abs(np.asarray(vectors, np.float64)).max(axis=1)
    if (largest > MAX_ABS_VALUE).any():  # refused by the fit's rows, before any write
        at = int(np.argmax(largest > MAX_ABS_VALUE))
        raise SourceDataError(
            f"point {ids[at]!r} of the source holds values beyond +-{MAX_ABS_VALUE:g}, which "
            "overflow float32 arithmetic in a projection; rescale the source's vectors (only "
            "their directions matter at cosine) or delete those points"
        )
    if metric == "cosine":
        return
    norms = np.linalg.norm(np.asarray(vectors, np.float64), axis=1)
    off = off_unit(norms)
    if off.any():
        at = int(np.argmax(off))
        raise SourceDataError(not_unit_length(metric, f"point {ids[at]!r} has norm "
                                                      f"{norms[at]:.3g}"))  # fmt: skip


@dataclass
class Job:
    """One stream: ``target`` takes ``write(name, batch, vectors)`` and ``flush(name)``
    (a :class:`~smec_index.connectors.source.Mirror`, or anything with those two)."""

    source: Source
    target: Any
    name: str
    dim: int
    batch_size: int
    checkpoint_rows: int
    partition: Partition | None = None
    writers: int = 1
    read_ahead: bool = True  # False: a client that one thread at a time must use
    flush_at_checkpoints: bool = False  # the target's writes are durable only once flushed
    progress: bool = True


def stream(job: Job, projection, state: dict[str, Any], save: Callable[[dict], None],
           total: int | None) -> None:  # fmt: skip
    """Copy from ``state["cursor"]`` on, calling ``save(state)`` at each checkpoint and at
    the end (``state["done"]``). A transient failure of either side (a server restarting,
    a lost connection: :func:`is_transient`) is retried from the last checkpoint after 1,
    2, 4 and 8 s; then, or at once for any other failure, the run stops with one line, and
    the same command resumes it."""
    bar = tqdm(total=total, initial=state["written"], desc=f"migrate -> {job.name}",
               unit="vec", disable=not job.progress)  # fmt: skip
    try:
        _stream(job, projection, state, save, bar)
    except BaseException:
        bar.leave = False  # cleared, so the error's one line starts a line of its own
        bar.close()
        raise
    bar.close()


def _stream(job: Job, projection, state, save, bar) -> None:
    began = time.perf_counter()
    for attempt in range(len(RETRY_WAITS) + 1):
        try:
            _copy(job, projection, state, save, bar)
            break
        except SourceDataError:
            raise
        except SmecError as exc:
            if not is_transient(exc):
                raise SmecError(
                    f"{exc} ({state['written']} points are checkpointed: fix the cause, then "
                    "run the same command again to resume)"
                ) from None
            if attempt == len(RETRY_WAITS):
                raise SmecError(
                    f"{exc} (gave up after {attempt + 1} tries; {state['written']} points "
                    "are checkpointed: run the same command again to resume)"
                ) from None
            tqdm.write(
                f"retrying in {RETRY_WAITS[attempt]:.0f} s from the last checkpoint: {exc}",
                file=sys.stderr,
            )
            time.sleep(RETRY_WAITS[attempt])
            bar.update(state["written"] - bar.n)  # back to the checkpoint
    state["stream_seconds"] = round(
        state.get("stream_seconds", 0.0) + time.perf_counter() - began, 3
    )  # reading, projecting and writing, over every run that resumed
    job.target.flush(job.name)
    state["done"], state["cursor"] = True, None
    save(state)


def _copy(job: Job, projection, state, save, bar) -> None:
    """One pass from ``state["cursor"]``: a reader thread fetches the next source batch
    while this thread projects and up to ``job.writers`` threads write. Writes complete in
    any order; the checkpoint only moves past a batch once it and every batch before it are
    written, so a kill loses at most what came after the last checkpoint. ``state`` holds
    only checkpointed progress: after a failure it is exactly where the next pass starts."""
    in_flight: deque[tuple[Future, int, Any]] = deque()
    since, written = 0, state["written"]

    def settle(limit: int) -> None:
        """Take finished writes in order; wait while more than ``limit`` are in flight."""
        nonlocal since, written
        while in_flight and (len(in_flight) > limit or in_flight[0][0].done()):
            future, n, cursor = in_flight.popleft()
            future.result()
            written += n
            since += n
            bar.update(n)
            if since >= job.checkpoint_rows:
                if job.flush_at_checkpoints:
                    job.target.flush(job.name)
                state["cursor"], state["written"] = cursor, written
                save(state)
                since = 0

    batches = job.source.iterate(job.batch_size, state["cursor"], job.partition)
    with ThreadPoolExecutor(job.writers, thread_name_prefix="migrate-write") as pool:
        try:
            ahead = prefetched(batches, depth=2) if job.read_ahead else batches
            with contextlib.closing(ahead):
                for batch in ahead:
                    check_source_vectors(batch.vectors, batch.ids, job.source.info.metric)
                    future: Future = Future()
                    if batch.ids:
                        vectors = projection.transform(batch.vectors, job.dim)
                        future = pool.submit(job.target.write, job.name, batch, vectors)
                        if "sample" not in state:  # checkpointed with the first batch
                            state["sample"] = sample_of(batch, vectors)
                    else:  # a partition's empty slice of a batch: only the cursor moves
                        future.set_result(None)
                    in_flight.append((future, len(batch.ids), batch.cursor))
                    settle(job.writers if job.read_ahead else 0)
            settle(0)
        finally:
            for future, _, _ in in_flight:
                future.cancel()
    state["written"] = written  # all of it; the caller records it as done


SAMPLE = 4  # points of the first batch a run wrote, kept to know its copy again


def sample_of(batch, vectors: np.ndarray) -> dict[str, Any]:
    """The first points of ``batch`` as written (their source ids, projected vectors), for
    the progress record: a later run drops or resumes into a target only while it still
    holds them (a collection of the user's with the copy's name, schema and as many points
    was taken for the copy, and dropped by ``--restart``)."""
    ids = [i.item() if isinstance(i, np.generic) else i if isinstance(i, (int, str)) else str(i)
           for i in batch.raw_ids[:SAMPLE]]  # a qdrant-edge UUID as its text, as JSON keeps it
    return {"ids": ids, "vectors": np.asarray(vectors[:SAMPLE], dtype=np.float64).tolist()}


def holds_sample(target: Any, name: str, sample: dict[str, Any] | None) -> bool:
    """Whether ``target``'s collection ``name`` still holds the points of ``sample`` (from
    :func:`sample_of`; True when there is none: a record from before samples were kept)."""
    if not sample:
        return True
    try:
        got = target.get(name, list(sample["ids"]))
    except SmecError:
        return False  # ids of another type, or none of them
    return holds_points(got, [str(i) for i in sample["ids"]],
                        np.asarray(sample["vectors"], dtype=np.float32))  # fmt: skip


def prefetched(items: Iterator[Any], depth: int) -> Iterator[Any]:
    """``items``, read ahead by a thread (at most ``depth`` waiting), so that reading the
    source overlaps projecting and writing. Its exceptions come out here."""
    done = object()
    waiting: queue.Queue = queue.Queue(depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                waiting.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for item in items:
                if not put(item):
                    break
            else:
                put(done)
        except BaseException as exc:  # handed over to the consumer
            put(_Raised(exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    close()

    reader = threading.Thread(target=read, name="migrate-read", daemon=True)
    reader.start()
    try:
        while True:
            item = waiting.get()
            if item is done:
                return
            if isinstance(item, _Raised):
                raise item.error
            yield item
    finally:
        stop.set()
        reader.join(timeout=30)


@dataclass
class _Raised:
    error: BaseException
