"""The projection a migration applies: ``--artifact`` as given (checked against the
source), or one fitted on a sample of the source's own vectors, kept under the data dir and
keyed by the source's identity (:class:`~smec_index.migration.state.Progress`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from smec_index.artifact import artifact_fingerprint
from smec_index.compressors.base import LinearCompressor, check_input_dim, load_projection
from smec_index.connectors.source import Source
from smec_index.connectors.storage import file_lock
from smec_index.errors import SmecError
from smec_index.migration.state import Progress
from smec_index.migration.stream import check_source_vectors


def given_artifact(request: Any, dim: int) -> LinearCompressor:
    """``--artifact``, checked against the source's dim and ``--dim`` (before anything is
    written: a run calls this ahead of its lock too)."""
    projection = load_projection(request.artifact)
    check_input_dim(projection, dim, "source's vectors")
    if request.dim not in projection.dims:
        have = ", ".join(str(d) for d in projection.dims)
        raise SmecError(f"--dim {request.dim}: the artifact has dims {have}; pick one")
    return projection


def _refitted(pca: Any, where: Path) -> Path:
    """Where a refit of ``where`` goes: the newest of ``where``, ``where-r2``, ... when the
    refit equals it (the source unchanged; partitions restarted together), else a new
    ``where-rN`` beside them, so that nothing an earlier copy reads is written over."""
    import shutil
    import uuid

    numbered = {int(p.name[len(where.name) + 2:]): p for p in where.parent.glob(
        f"{where.name}-r*") if p.name[len(where.name) + 2:].isdigit()}  # fmt: skip
    newest = numbered[max(numbered)] if numbered else where
    trial = where.parent / f".{where.name}.{uuid.uuid4().hex[:8]}"
    pca.save(trial)
    try:
        if artifact_fingerprint(trial) == artifact_fingerprint(newest):
            return newest
        fresh = where.parent / f"{where.name}-r{max(numbered, default=1) + 1}"
        trial.rename(fresh)
        return fresh
    finally:
        shutil.rmtree(trial, ignore_errors=True)


def _refuse_foreign(where: Path) -> None:
    """Where migrate keeps the PCA it fits, something that is not one of its artifacts (a
    folder of the user's in the data dir) is one line naming it (it read as ``--out``, a
    flag migrate lacks, or as an artifact to pass from `smec-index train`)."""
    from smec_index.outputs import check_replaceable

    try:
        check_replaceable(where, "artifact", overwrite=True)
    except SmecError:
        raise SmecError(
            f"{where} is where migrate keeps the PCA it fits for this source (in the data "
            "dir), but it holds something else; move it away, or pass another --data-dir"
        ) from None


def _recorded_refit(progress: Progress, where: Path) -> Path | None:
    """The refit of ``where`` (``where-rN``, :func:`_refitted`) this migration's progress
    records, if it is still there: a plain rerun after a ``--restart`` on an edited source
    was refused forever, its projection compared with the shared one."""
    from smec_index.migration.state import read_state

    for path in (progress.path(), *progress.partitions()):
        artifact = (read_state(path) or {}).get("artifact")
        if not isinstance(artifact, str):
            continue
        refit = Path(artifact)
        number = refit.name[len(where.name) + 2:]
        if (refit.name.startswith(f"{where.name}-r") and number.isdigit()
                and refit.parent == where.parent.resolve()
                and (refit / "config.json").is_file()):  # fmt: skip
            return refit
    return None


def fit_projection(
    request: Any, source: Source, progress: Progress, say
) -> tuple[LinearCompressor, Path | None, str | None, Path]:
    """The artifact to apply (checked against the source), or one fitted on a sample of
    the source's own vectors (PCA; with qrels, the better of SMEC and PCA), kept under the
    data dir keyed by the source's identity. Returns the projection, its saved directory
    (``None`` in a dry run), its fingerprint, and where it is or will be kept."""
    if request.artifact is not None:
        projection = given_artifact(request, source.info.dim)
        where = Path(request.artifact)
        return projection, where, artifact_fingerprint(where), where
    from smec_index.compressors.simple import PCA  # numpy only: no torch without qrels
    from smec_index.data import Embeddings, RetrievalData

    rows, ids = [], []
    for batch in source.iterate(min(request.fit_rows, 10_000), None):
        check_source_vectors(batch.vectors, batch.ids, source.info.metric)
        rows.append(batch.vectors)
        ids += batch.ids
        if len(ids) >= request.fit_rows:
            break
    vectors = np.concatenate(rows)[: request.fit_rows]
    folder = lambda name: progress.artifact_dir(request.data_dir, name)  # noqa: E731
    if request.queries is not None:
        from smec_index.migration.supervised import fit_supervised

        projection, saved, fp = fit_supervised(request, source, ids[: len(vectors)], vectors,
                                               folder, say)  # fmt: skip
        return projection, saved, fp, saved or folder("supervised")
    data = RetrievalData(Embeddings(ids[: len(vectors)], vectors), Embeddings(["q"], vectors[:1]))
    pca = PCA([request.dim]).fit(data)
    where = folder(f"pca-{request.dim}-{len(vectors)}")
    if request.dry_run:  # a plan writes nothing
        return pca, None, None, where
    # Partitions started together fit the same one: each waits its turn, the first keeps it.
    # A restarted migration fits afresh: the source's vectors may have changed.
    lock = request.data_dir / "locks" / "migrate" / f"{where.name}.lock"
    with file_lock(lock, "fitting PCA", wait=True):
        _refuse_foreign(where)
        if not (where / "config.json").is_file():
            pca.save(where)
        elif request.restart:  # never over the one other copies were made with (a copy of
            # the same source at the same dim, untouched, was left with another projection)
            where = _refitted(pca, where)
        else:  # a rerun goes on with the refit its last --restart recorded
            where = _recorded_refit(progress, where) or where
    say(f"no --artifact: PCA to {request.dim} dims fitted on {len(vectors)} source vectors")
    return load_projection(where), where, artifact_fingerprint(where), where
