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

import hashlib
import sys
import time
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
from smec_index.migration.sources import Source, open_source

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


def _progress_path(request: MigrateRequest, target: str) -> Path:
    backend = request.to_backend or request.backend
    return request.data_dir / "migrations" / f"{backend}-{target}.json"


def migrate(request: MigrateRequest, say=print) -> dict[str, Any]:
    """Run (or plan, resume, roll back) one migration; the summary ``--json`` prints."""
    positive_int(request.dim, "--dim")
    positive_int(request.batch_size, "--batch-size")
    positive_int(request.checkpoint_rows, "--checkpoint-rows")
    if not 0.0 <= request.min_recall <= 1.0:
        raise SmecError(f"--min-recall {request.min_recall}: use a number from 0 to 1")
    check_collection_name(request.collection)
    target = check_collection_name(request.to or f"{request.collection}_{request.dim}")
    if request.alias is not None:
        check_collection_name(request.alias)
    started = time.perf_counter()
    source = open_source(request.backend, request.collection, **request.source)
    try:
        if request.dim >= source.info.dim:
            raise SmecError(
                f"--dim {request.dim}: the source holds {source.info.dim}-d vectors; pick a "
                "smaller dim"
            )
        options = dict(request.to_options)
        if request.to_backend is None:  # the same place as the source
            options = {
                k: v for k, v in request.source.items() if k in ("url", "api_key", "uri", "token")
            }
        to_backend = request.to_backend or request.backend
        with open_connector(to_backend, data_dir=request.data_dir, **options) as connector:
            lock = request.data_dir / "locks" / "migrate" / f"{to_backend}-{target}.lock"
            with file_lock(lock, f"a migration into {to_backend} collection {target!r}"):
                if request.rollback:
                    return _rollback(request, connector, target, started)
                return _run(request, source, connector, to_backend, target, started, say)
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
    from smec_index.compressors.simple import PCA  # numpy only: no torch in a migration
    from smec_index.data import Embeddings, RetrievalData

    rows, ids = [], []
    for batch in source.iterate(min(request.fit_rows, 10_000), None):
        _check_finite(batch.vectors, batch.ids)
        rows.append(batch.vectors)
        ids += batch.ids
        if len(ids) >= request.fit_rows:
            break
    vectors = np.concatenate(rows)[: request.fit_rows]
    data = RetrievalData(Embeddings(ids[: len(vectors)], vectors), Embeddings(["q"], vectors[:1]))
    pca = PCA([request.dim]).fit(data)
    if request.dry_run:  # a plan writes nothing
        return pca, None, None
    name = f"{source.info.collection}-pca-{request.dim}-{len(vectors)}"
    where = request.data_dir / "artifacts" / "migrations" / name
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


def _run(request, source, connector, to_backend, target, started, say) -> dict[str, Any]:
    progress = _progress_path(request, target)
    state = None if request.restart else _read_state(progress)
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
    if state is None or request.restart:
        if connector.exists(target) and not request.restart:
            raise SmecError(
                f"target {target!r} already exists in {to_backend}; pass --restart to replace "
                "it (or --to another name)"
            )
        spec = IndexSpec(request.dim, metric="cosine", index="hnsw", params=request.index_params)
        connector.create(target, spec, overwrite=request.restart)
        state = {"source": f"{request.backend}:{source.info.where}/{request.collection}",
                 "target": target, "dim": request.dim, "fingerprint": fingerprint,
                 "cursor": None, "written": 0, "done": False}  # fmt: skip
        write_json_atomic(progress, state)
    if not state["done"]:
        _stream(request, source, connector, to_backend, target, projection, state, progress, count)
    verified, recall = _verify(request, source, connector, target, projection, count)
    sizes = connector.sizes(target)
    Manifest(
        backend=to_backend, collection=target, name=request.alias or target, dim=request.dim,
        input_dim=source.info.dim, artifact=str(artifact.resolve()), model=None, dataset=None,
        spec=connector.spec(target).to_dict(), count=count, artifact_fingerprint=fingerprint,
        extra={"migrated_from": state["source"]},
    ).save(request.data_dir)  # fmt: skip
    if recall < request.min_recall:
        raise SmecError(
            f"quality gate: recall@10 against the source's own search is {recall:.3f}, "
            f"{request.min_recall - recall:.3f} below --min-recall {request.min_recall}; the "
            "alias was not switched (try a larger --dim, or lower --min-recall knowingly)"
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
        "index_bytes_before": before,
        "index_bytes_after": sizes.index_bytes,
        "seconds": round(time.perf_counter() - started, 3),
    }


RETRY_WAITS = (1.0, 2.0, 4.0, 8.0)  # seconds before each retry of a failed stream


class SourceDataError(SmecError):
    """Something in the source itself (NaN vectors): retrying cannot help."""


def _stream(request, source, connector, to_backend, target, projection, state, progress, count):
    """Copy from the last checkpoint on. A failure of either side (a server restarting, a
    lost connection) is retried from the last checkpoint after 1, 2, 4 and 8 s; then the run
    stops with one line, and the same command resumes it."""
    bar = tqdm(total=count, initial=state["written"], desc=f"migrate -> {target}", unit="vec",
               disable=not request.progress)  # fmt: skip
    began, checkpoint_written = time.perf_counter(), state["written"]
    for attempt in range(len(RETRY_WAITS) + 1):
        try:
            since = 0
            for batch in source.iterate(request.batch_size, state["cursor"]):
                _check_finite(batch.vectors, batch.ids)
                vectors = projection.transform(batch.vectors, request.dim)
                connector.add(target, batch.ids, vectors, batch.payloads,
                              batch_size=request.batch_size)  # fmt: skip
                since += len(batch.ids)
                state["written"] += len(batch.ids)
                bar.update(len(batch.ids))
                if since >= request.checkpoint_rows or batch.cursor is None:
                    _checkpoint(connector, to_backend, target, state, batch.cursor, progress)
                    since, checkpoint_written = 0, state["written"]
            break
        except SourceDataError:
            raise
        except SmecError as exc:
            if attempt == len(RETRY_WAITS):
                raise SmecError(
                    f"{exc} (gave up after {attempt + 1} tries; {checkpoint_written} points "
                    "are checkpointed: run the same command again to resume)"
                ) from None
            tqdm.write(
                f"retrying in {RETRY_WAITS[attempt]:.0f} s from the last checkpoint: {exc}",
                file=sys.stderr,
            )
            time.sleep(RETRY_WAITS[attempt])
            bar.update(checkpoint_written - state["written"])
            state["written"] = checkpoint_written
    state["stream_seconds"] = round(
        state.get("stream_seconds", 0.0) + time.perf_counter() - began, 3
    )  # reading, projecting and writing, over every run that resumed
    connector.flush(target)
    state["done"], state["cursor"] = True, None
    write_json_atomic(progress, state)
    bar.close()


def _checkpoint(connector, to_backend, target, state, cursor, progress) -> None:
    if to_backend in IN_MEMORY_WRITES:
        connector.flush(target)
    state["cursor"] = cursor
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
    source_ids = _id_digest(i for b in source.iterate(10_000, None) for i in b.ids)
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
