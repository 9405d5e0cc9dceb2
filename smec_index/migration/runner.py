"""The migration itself: plan, stream with checkpoints, verify, switch.

Progress lives in ``<data_dir>/migrations/<target backend>-<target>.json`` (written
atomically): the source, the target, the artifact's fingerprint, the source cursor of the
last checkpoint and the points written by then. A checkpoint is taken every
``checkpoint_rows`` points, after the target made them durable (flushed where its writes
live in memory: faiss and hnswlib). A killed run resumes from the last checkpoint: the
points after it are written again, and since writes are upserts by id nothing is doubled.

Verification, before any alias moves: counts equal; every id present (an order-free digest
of the id sets, both streamed, and a set difference only when they differ); a sample of
vectors equal to the projection of the source's (1e-5) and payloads equal; and the quality
gate: recall@10 of the compressed search against the source's own search for a sample of
source vectors used as queries, at least ``min_recall``.

A source with NaN or inf vectors is refused before anything is written (a NaN has no
place in either index, and dropping points silently would break "nothing missing").
"""

from __future__ import annotations

import contextlib
import hashlib
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from smec_index.artifact import artifact_fingerprint
from smec_index.compressors.base import LinearCompressor, check_input_dim, load_projection
from smec_index.connectors import Connector, IndexSpec, open_connector
from smec_index.connectors.base import check_collection_name, positive_int
from smec_index.connectors.storage import file_lock, write_json_atomic
from smec_index.errors import SmecError
from smec_index.index import Manifest
from smec_index.migration.sources import Partition, Source, open_source

IN_MEMORY_WRITES = ("faiss", "hnswlib")  # their writes are durable only once flushed
SAMPLE = 256  # source points read back, and used as quality-gate queries


@dataclass
class MigrateRequest:
    backend: str
    collection: str
    dim: int
    data_dir: Path
    source: dict[str, Any] = field(default_factory=dict)  # url/api_key/path or uri/token
    to: str | None = None
    to_backend: str | None = None
    to_options: dict[str, Any] = field(default_factory=dict)
    alias: str | None = None
    artifact: Path | None = None
    min_recall: float = 0.9
    dry_run: bool = False
    restart: bool = False
    rollback: bool = False
    batch_size: int = 1000
    checkpoint_rows: int = 20_000
    fit_rows: int = 20_000
    index_params: dict[str, Any] = field(default_factory=dict)
    progress: bool = True
    overwrite: bool = False
    partition: str | None = None  # "K/N": one slice of the source's ids
    writers: int | None = None  # concurrent writes; None: 4 into a server, else 1
    in_place: bool = False  # Qdrant: a new named vector in the source collection
    queries: Path | None = None  # query vectors (.npy with query_ids, or .parquet)
    query_ids: Path | None = None
    qrels: Path | None = None  # with queries: SMEC trained supervised, an nDCG@10 gate


def _progress_path(request: MigrateRequest, target: str, partition: Partition | None = None):
    backend = request.to_backend or request.backend
    slice_ = "" if partition is None else f".part{partition.k}of{partition.n}"
    return request.data_dir / "migrations" / f"{backend}-{target}{slice_}.json"


def _is_server(backend: str, options: dict[str, Any]) -> bool:
    uri = str(options.get("uri") or "")
    return bool(options.get("url")) or (
        backend == "milvus" and uri.startswith(("http://", "https://", "tcp://", "grpc://"))
    )


def migrate(request: MigrateRequest, say=print) -> dict[str, Any]:
    """Run (or plan, resume, roll back) one migration; the summary ``--json`` prints."""
    positive_int(request.dim, "--dim")
    positive_int(request.batch_size, "--batch-size")
    positive_int(request.checkpoint_rows, "--checkpoint-rows")
    positive_int(request.fit_rows, "--fit-rows")
    if not 0.0 <= request.min_recall <= 1.0:
        raise SmecError(f"--min-recall {request.min_recall}: use a number from 0 to 1")
    check_collection_name(request.collection)
    target = check_collection_name(request.to or f"{request.collection}_{request.dim}")
    if request.alias is not None:
        check_collection_name(request.alias)
    if request.writers is not None:
        positive_int(request.writers, "--writers")
    if (request.queries is None) != (request.qrels is None):
        raise SmecError("--queries and --qrels go together (supervised fitting and an nDCG@10 "
                        "gate); pass both or neither")  # fmt: skip
    if request.queries is not None and request.artifact is not None:
        raise SmecError("--artifact is applied as it is; leave out --queries/--qrels with it")
    partition = None if request.partition is None else Partition.parse(request.partition)
    if partition is not None and (request.dry_run or request.rollback):
        raise SmecError("--partition migrates; leave it out with --dry-run and --rollback")
    started = time.perf_counter()
    source = open_source(request.backend, request.collection, **request.source)
    try:
        if request.dim >= source.info.dim:
            raise SmecError(
                f"--dim {request.dim}: the source holds {source.info.dim}-d vectors; pick a "
                "smaller dim"
            )
        if request.in_place:
            from smec_index.migration.in_place import migrate_in_place

            return migrate_in_place(request, source, started, say)
        options = dict(request.to_options)
        if request.to_backend is None:  # the same place as the source
            options = {
                k: v for k, v in request.source.items() if k in ("url", "api_key", "uri", "token")
            }
        to_backend = request.to_backend or request.backend
        server = _is_server(to_backend, options)
        if partition is not None and not server:
            raise SmecError(
                "--partition is for a target on a server (Milvus --uri http://..., Qdrant "
                "--url): embedded targets are one process's files"
            )
        writers = request.writers or (4 if server else 1)
        if writers > 1 and not server:
            raise SmecError(f"--writers {writers}: an embedded target takes one writer")
        with open_connector(to_backend, data_dir=request.data_dir, **options) as connector:
            slice_ = "" if partition is None else f".part{partition.k}of{partition.n}"
            lock = request.data_dir / "locks" / "migrate" / f"{to_backend}-{target}{slice_}.lock"
            with file_lock(lock, f"a migration into {to_backend} collection {target!r}"):
                if request.rollback:
                    return _rollback(request, connector, target, started)
                job = _Job(request, source, connector, to_backend, target, partition, writers)
                return _run(job, started, say)
    finally:
        source.close()


def _rollback(
    request: MigrateRequest, connector: Connector, target: str, started: float
) -> dict[str, Any]:
    state = _read_state(_progress_path(request, target))
    if not state or not state.get("alias"):
        raise SmecError(f"no switched migration into {target!r} to roll back")
    previous = state.get("alias_before")
    if previous is None:
        connector.drop_alias(state["alias"])
    else:
        connector.set_alias(state["alias"], previous)
    return {
        "source": state["source"],
        "target": target,
        "alias": state["alias"],
        "rolled_back_to": previous,
        "seconds": round(time.perf_counter() - started, 3),
    }


def _read_state(path: Path) -> dict[str, Any] | None:
    import json

    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        raise SmecError(f"{path}: corrupt migration progress; pass --restart") from None


def _projection(
    request: MigrateRequest, source: Source, say
) -> tuple[LinearCompressor, Path | None, str | None]:
    """The artifact to apply (checked against the source), or PCA fitted on a sample of the
    source's own vectors, saved where the target's manifest can find it."""
    if request.artifact is not None:
        projection = load_projection(request.artifact)
        check_input_dim(projection, source.info.dim, "source's vectors")
        if request.dim not in projection.dims:
            have = ", ".join(str(d) for d in projection.dims)
            raise SmecError(f"--dim {request.dim}: the artifact has dims {have}; pick one")
        return projection, Path(request.artifact), artifact_fingerprint(request.artifact)
    from smec_index.compressors.simple import PCA  # numpy only: no torch without qrels
    from smec_index.data import Embeddings, RetrievalData

    rows, ids = [], []
    for batch in source.iterate(min(request.fit_rows, 10_000), None):
        _check_finite(batch.vectors, batch.ids)
        rows.append(batch.vectors)
        ids += batch.ids
        if len(ids) >= request.fit_rows:
            break
    vectors = np.concatenate(rows)[: request.fit_rows]
    if request.queries is not None:
        from smec_index.migration.supervised import fit_supervised

        return fit_supervised(request, source, ids[: len(vectors)], vectors, say)
    data = RetrievalData(Embeddings(ids[: len(vectors)], vectors), Embeddings(["q"], vectors[:1]))
    pca = PCA([request.dim]).fit(data)
    if request.dry_run:  # a plan writes nothing
        return pca, None, None
    name = f"{source.info.collection}-pca-{request.dim}-{len(vectors)}"
    where = request.data_dir / "artifacts" / "migrations" / name
    # Partitions started together fit the same one: each waits its turn, the first keeps it.
    lock = request.data_dir / "locks" / "migrate" / f"{name}.lock"
    with file_lock(lock, "fitting PCA", wait=True):
        if not (where / "config.json").is_file():
            pca.save(where)
    say(f"no --artifact: PCA to {request.dim} dims fitted on {len(vectors)} source vectors")
    return load_projection(where), where, artifact_fingerprint(where)


def _check_finite(vectors: np.ndarray, ids: list[str]) -> None:
    bad = ~np.isfinite(vectors).all(axis=1)
    if bad.any():
        raise SourceDataError(
            f"the source holds NaN or inf vectors (e.g. id {ids[int(np.argmax(bad))]!r}); "
            "migrate refuses them: fix or delete those points in the source first"
        )


@dataclass
class _Job:
    request: MigrateRequest
    source: Source
    connector: Connector
    to_backend: str
    target: str
    partition: Partition | None
    writers: int
    read_ahead: bool = True  # False: a client that one thread at a time must use


def _run(job: _Job, started: float, say) -> dict[str, Any]:
    request, source, connector, target = job.request, job.source, job.connector, job.target
    progress = _progress_path(request, target, job.partition)
    state = None if request.restart else _read_state(progress)
    fresh = state is None and not request.dry_run and job.partition is None
    if fresh and not (request.restart or request.overwrite) and connector.exists(target):
        if not list(_partition_progress(request, target)):
            raise SmecError(
                f"target {target!r} already exists in {job.to_backend}; pass --overwrite to "
                "replace it (or --to another name)"
            )
    count = source.count()
    projection, artifact, fingerprint = _projection(request, source, say)
    before = source.index_bytes()
    if request.dry_run:
        return _plan(request, source, projection, count, before, target, connector, started)
    if state is not None and (
        state.get("fingerprint") != fingerprint or state.get("dim") != request.dim
    ):
        raise SmecError(
            f"a migration into {target!r} was started with another projection; pass "
            "--restart to start over"
        )
    label = f"{request.backend}:{source.info.where}/{request.collection}"
    if state is None and job.partition is None:
        state = _joined_partitions(request, target, fingerprint)
    if state is None or request.restart:
        _create_target(job)
        state = {"source": label, "target": target, "dim": request.dim,
                 "fingerprint": fingerprint, "cursor": None, "written": 0,
                 "done": False}  # fmt: skip
        if job.partition is not None:
            state["partition"] = str(job.partition)
        write_json_atomic(progress, state)
    if not state["done"]:
        _stream(job, projection, state, progress, count)
    if job.partition is not None:
        return {
            "source": label, "target": target, "partition": str(job.partition),
            "written": state["written"], "count": count, "dim": request.dim,
            "verified": False, "seconds": round(time.perf_counter() - started, 3),
            "next": "when every partition is done, run the same command without --partition "
            "(same --data-dir) to verify the whole target and switch the alias",
        }  # fmt: skip
    verified, recall = _verify(request, source, connector, target, projection, count)
    gate = {"metric": "recall@10", "value": recall}
    if request.queries is not None:
        from smec_index.migration.supervised import ndcg_gate

        gate = ndcg_gate(request, source, connector, target, projection)
    sizes = connector.sizes(target)
    Manifest(
        backend=job.to_backend, collection=target, name=request.alias or target,
        dim=request.dim, input_dim=source.info.dim, artifact=str(artifact.resolve()),
        model=None, dataset=None, spec=connector.spec(target).to_dict(), count=count,
        artifact_fingerprint=fingerprint, extra={"migrated_from": state["source"]},
    ).save(request.data_dir)  # fmt: skip
    if gate["value"] < request.min_recall:
        what = ("recall@10 against the source's own search" if gate["metric"] == "recall@10"
                else "nDCG@10 of held-out queries relative to the source's own search")  # fmt: skip
        raise SmecError(
            f"quality gate: {what} is {gate['value']:.3f}, "
            f"{request.min_recall - gate['value']:.3f} below --min-recall {request.min_recall}; "
            "the alias was not switched (try a larger --dim, or lower --min-recall knowingly)"
        )
    if request.alias:
        state["alias"], state["alias_before"] = request.alias, connector.resolve(request.alias)
        if state["alias_before"] == request.alias:
            raise SmecError(f"--alias {request.alias}: that is a collection, not an alias")
        write_json_atomic(progress, state)
        connector.set_alias(request.alias, target)
    return {
        "source": state["source"],
        "target": target,
        "alias": request.alias,
        "count": count,
        "dim": request.dim,
        "verified": verified,
        "recall@10": round(recall, 4),
        **{k: v for k, v in gate.items() if k.startswith("ndcg")},
        "gate": gate["metric"],
        "index_bytes_before": before,
        "index_bytes_after": sizes.index_bytes,
        "seconds": round(time.perf_counter() - started, 3),
        "stream_seconds": state.get("stream_seconds"),
        "writers": job.writers,
        **({} if before is not None else {"index_bytes_before_is": source.index_bytes_unknown()}),
    }


def _create_target(job: _Job) -> None:
    """A new target, or (``--restart`` / ``--overwrite``) a replaced one. A partition
    joins a target another partition created: a smec-index collection of the same dim."""
    request, target = job.request, job.target
    # Partitions started together take turns, so none joins a target another is still
    # creating (a Milvus collection without its index yet cannot be loaded).
    lock = request.data_dir / "locks" / "migrate" / f"create-{job.to_backend}-{target}.lock"
    with file_lock(lock, f"creating {target!r}", wait=True):
        _create_or_join(job)


def _create_or_join(job: _Job) -> None:
    request, connector, target = job.request, job.connector, job.target
    if connector.exists(target):
        if job.partition is not None and not request.restart:
            if connector.spec(target).dim == request.dim:
                return
        elif not (request.restart or request.overwrite):
            raise SmecError(
                f"target {target!r} already exists in {job.to_backend}; pass --overwrite to "
                "replace it (or --to another name)"
            )
    spec = IndexSpec(request.dim, metric="cosine", index="hnsw", params=request.index_params)
    try:
        connector.create(target, spec, overwrite=request.restart or request.overwrite)
    except SmecError:
        # another partition created it between the check and here: join it
        if job.partition is None or connector.spec(target).dim != request.dim:
            raise


def _partition_progress(request: MigrateRequest, target: str) -> list[Path]:
    stem = _progress_path(request, target).stem
    return sorted((request.data_dir / "migrations").glob(f"{stem}.part*of*.json"))


def _joined_partitions(request: MigrateRequest, target: str, fingerprint: str | None):
    """The state of a target that ``--partition 0/N`` ... ``N-1/N`` filled, once all are
    done: the whole-target run then only verifies and switches. None: no partitions ran."""
    import json

    found: dict[int, dict[int, dict[str, Any]]] = {}
    for path in _partition_progress(request, target):
        state = json.loads(path.read_text())
        k, n = (int(x) for x in state["partition"].split("/"))
        found.setdefault(n, {})[k] = state
    if not found:
        return None
    if len(found) > 1:
        raise SmecError(
            f"progress of partitions into {target!r} with different N ({sorted(found)}) in "
            f"{request.data_dir / 'migrations'}; remove the stale ones or pass --restart"
        )
    n, parts = next(iter(found.items()))
    unfinished = [f"{k}/{n}" for k in range(n) if not parts.get(k, {}).get("done")]
    if unfinished:
        raise SmecError(
            f"partitions {', '.join(unfinished)} of {target!r} have not finished (or ran "
            "with another --data-dir: copy their progress files into this one's migrations/); "
            "run them, then this command again"
        )
    if any(state["fingerprint"] != fingerprint for state in parts.values()):
        raise SmecError(
            f"the partitions of {target!r} used another projection than this run; pass the "
            "same --artifact to all of them"
        )
    first = parts[0]
    return {**first, "partition": None, "partitions": n, "done": True,
            "written": sum(state["written"] for state in parts.values()),
            "stream_seconds": max(state.get("stream_seconds", 0.0)
                                  for state in parts.values())}  # fmt: skip


RETRY_WAITS = (1.0, 2.0, 4.0, 8.0)  # seconds before each retry of a failed stream


class SourceDataError(SmecError):
    """Something in the source itself (NaN vectors): retrying cannot help."""


def _stream(job: _Job, projection, state, progress, count) -> None:
    """Copy from the last checkpoint on. A failure of either side (a server restarting, a
    lost connection) is retried from the last checkpoint after 1, 2, 4 and 8 s; then the run
    stops with one line, and the same command resumes it."""
    request = job.request
    total = count if job.partition is None else None  # a slice's size is known at the end
    bar = tqdm(total=total, initial=state["written"], desc=f"migrate -> {job.target}",
               unit="vec", disable=not request.progress)  # fmt: skip
    began = time.perf_counter()
    for attempt in range(len(RETRY_WAITS) + 1):
        try:
            _copy(job, projection, state, progress, bar)
            break
        except SourceDataError:
            raise
        except SmecError as exc:
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
    job.connector.flush(job.target)
    state["done"], state["cursor"] = True, None
    write_json_atomic(progress, state)
    bar.close()


def _copy(job: _Job, projection, state, progress, bar) -> None:
    """One pass from ``state["cursor"]``: a reader thread fetches the next source batch
    while this thread projects and up to ``job.writers`` threads write. Writes complete in
    any order; the checkpoint only moves past a batch once it and every batch before it are
    written, so a kill loses at most what came after the last checkpoint. ``state`` holds
    only checkpointed progress: after a failure it is exactly where the next pass starts."""
    request, connector = job.request, job.connector
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
            if since >= request.checkpoint_rows:
                _checkpoint(connector, job.to_backend, job.target, state, cursor, progress,
                            written)  # fmt: skip
                since = 0

    batches = job.source.iterate(request.batch_size, state["cursor"], job.partition)
    with ThreadPoolExecutor(job.writers, thread_name_prefix="migrate-write") as pool:
        try:
            ahead = prefetched(batches, depth=2) if job.read_ahead else batches
            with contextlib.closing(ahead):
                for batch in ahead:
                    _check_finite(batch.vectors, batch.ids)
                    future: Future = Future()
                    if batch.ids:
                        vectors = projection.transform(batch.vectors, request.dim)
                        future = pool.submit(
                            connector.add, job.target, batch.ids, vectors, batch.payloads,
                            batch_size=request.batch_size,
                        )  # fmt: skip
                    else:  # a partition's empty slice of a batch: only the cursor moves
                        future.set_result(None)
                    in_flight.append((future, len(batch.ids), batch.cursor))
                    settle(job.writers if job.read_ahead else 0)
            settle(0)
        finally:
            for future, _, _ in in_flight:
                future.cancel()
    state["written"] = written  # all of it; the caller records it as done


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


def _checkpoint(connector, to_backend, target, state, cursor, progress, written) -> None:
    if to_backend in IN_MEMORY_WRITES:
        connector.flush(target)
    state["cursor"], state["written"] = cursor, written
    write_json_atomic(progress, state)


def _id_digest(ids) -> tuple[int, int]:
    """Count and an order-free digest of a stream of ids (sum of 64-bit hashes)."""
    count, total = 0, 0
    for point_id in ids:
        count += 1
        total = (
            total
            + int.from_bytes(hashlib.blake2b(point_id.encode(), digest_size=8).digest(), "little")
        ) % (1 << 64)
    return count, total


def _verify(request, source, connector, target, projection, count) -> tuple[bool, float]:
    got = connector.count(target)
    if got != count:
        raise SmecError(
            f"the target holds {got} points, the source {count}; not switched: run again to resume"
        )
    source_ids = _id_digest(i for ids in source.ids(10_000) for i in ids)
    target_ids = _id_digest(i for b in connector.iterate(target, 10_000) for i in b.ids)
    if source_ids != target_ids:
        raise SmecError("the target's ids differ from the source's; not switched: pass --restart")
    sample = [b for _, b in zip(range(1), source.iterate(SAMPLE, None), strict=False)][0]
    stored = connector.get(target, sample.ids)
    expected = projection.transform(sample.vectors, request.dim)
    if stored.ids != sample.ids or not np.allclose(stored.vectors, expected, atol=1e-5):
        raise SmecError(
            "sampled target vectors differ from the projection of the source's; not switched"
        )
    if stored.payloads != sample.payloads:
        raise SmecError("sampled target payloads differ from the source's; not switched")
    truth = source.search(sample.vectors, 10)
    found, _ = connector.search(target, expected, 10)
    recall = float(
        np.mean([len(set(t) & set(f)) / max(1, len(t)) for t, f in zip(truth, found, strict=True)])
    )
    return True, recall


def _plan(request, source, projection, count, before, target, connector, started) -> dict[str, Any]:
    """What a migration would do, from one sample batch, writing nothing.

    Quality is estimated inside the sample: how many of each point's 10 nearest sample
    neighbours (full vectors, exact) stay among its 10 nearest after projection. Time is the
    sample's read-and-project rate extrapolated to the count (writing and index building
    come on top).
    """
    began = time.perf_counter()
    sample = next(iter(source.iterate(SAMPLE, None)))
    full = _unit(sample.vectors)
    projected = projection.transform(sample.vectors, request.dim)
    rate = len(sample.ids) / max(time.perf_counter() - began, 1e-9)
    k = min(10, len(sample.ids) - 1)
    truth = np.argsort(-(full @ full.T), axis=1)[:, 1 : k + 1]
    found = np.argsort(-(projected @ projected.T), axis=1)[:, 1 : k + 1]
    estimate = float(
        np.mean([len(set(t) & set(f)) / max(1, k) for t, f in zip(truth, found, strict=True)])
    )
    after = None if before is None else int(before * request.dim / source.info.dim)
    return {
        "source": f"{request.backend}:{source.info.where}/{request.collection}",
        "target": target,
        "alias": request.alias,
        "count": count,
        "dim": request.dim,
        "verified": False,
        "dry_run": True,
        "recall@10": round(estimate, 4),
        "recall@10_is": f"an estimate: neighbours kept within a {len(sample.ids)}-point sample",
        "index_bytes_before": before,
        "index_bytes_after": after,
        "index_bytes_after_is": "the source's scaled by the dim ratio",
        "estimated_seconds": round(count / rate, 1),
        "seconds": round(time.perf_counter() - started, 3),
    }


def _unit(vectors: np.ndarray) -> np.ndarray:
    from smec_index.vectors import normalize

    return normalize(vectors)
