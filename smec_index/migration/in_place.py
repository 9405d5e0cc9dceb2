"""Qdrant in place: the projected vectors go into a new named vector of the source collection
itself (``create_vector_name``, Qdrant 1.18+, and qdrant-client's local mode), filled with
``update_vectors``, instead of into a copy of the collection.

The only write to the source is that new vector: its points, ids, original vectors and
payloads stay as they were (the tests check a digest of them). Progress (keyed by the source's
identity), resuming, retries and the quality gate are the copy's
(:mod:`smec_index.migration.stream`, :mod:`smec_index.migration.verify`);
verification checks that every point has the new vector (a count with ``has_vector``), a
sample of it equals the projection of the original, and recall@10 of searching it
(``using=<name>``) against the original's own search. No alias moves: queries pick the
vector with ``using``.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import numpy as np

from smec_index.connectors.base import check_collection_name
from smec_index.connectors.qdrant.mirror import search_batch
from smec_index.connectors.qdrant.source import QdrantSource
from smec_index.connectors.source import Source, SourceBatch
from smec_index.connectors.storage import file_lock
from smec_index.errors import SmecError
from smec_index.migration import verify
from smec_index.migration.fitting import fit_projection
from smec_index.migration.state import Progress
from smec_index.migration.stream import Job, stream


class NamedVector:
    """Writes one named vector of a Qdrant collection; what ``_stream`` calls a target."""

    def __init__(self, source: QdrantSource, name: str) -> None:
        self.client, self.collection, self.name = source.client, source.collection, name

    def write(self, collection: str, batch: SourceBatch, vectors: np.ndarray) -> None:
        from qdrant_client import models

        points = [
            models.PointVectors(id=point_id, vector={self.name: vector})
            for point_id, vector in zip(batch.raw_ids, vectors.tolist(), strict=True)
        ]
        self._call("writing", lambda: self.client.update_vectors(self.collection, points))

    def flush(self, collection: str) -> None:
        """``update_vectors`` waits for each write: nothing is pending."""

    def count_filled(self) -> int:
        from qdrant_client import models

        condition = models.Filter(must=[models.HasVectorCondition(has_vector=self.name)])
        return self._call(
            "counting",
            lambda: self.client.count(self.collection, count_filter=condition, exact=True).count,
        )

    def get(self, raw_ids: list[Any]) -> np.ndarray:
        records = self._call(
            "reading",
            lambda: self.client.retrieve(self.collection, raw_ids, with_vectors=[self.name]),
        )
        by_id = {str(r.id): r.vector[self.name] for r in records}
        return np.asarray([by_id[str(i)] for i in raw_ids], dtype=np.float32)

    def search(self, vectors: np.ndarray, k: int) -> list[list[str]]:
        return self._call(
            "searching", lambda: search_batch(self.client, self.collection, self.name, vectors, k)
        )

    def _call(self, doing: str, call):
        try:
            return call()
        except Exception as exc:  # qdrant-client raises many kinds; the retry loop takes these
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise SmecError(
                f"{doing} vector {self.name!r} of Qdrant collection {self.collection!r} failed: "
                f"{reason}"
            ) from None


def check_vector_name(name: str | None) -> None:
    """``--to`` of an in-place run, the vector it adds: the safe alphabet of collection names
    (``None``: the default, made from the source vector's name)."""
    if name is not None:
        check_collection_name(name, "--to: the new vector's name")


def vector_name(request: Any, source: Source) -> str:
    """``--to``, or ``<source vector>_<dim>`` with what that alphabet cannot hold as ``_``."""
    from smec_index.migration.runner import default_target

    using = getattr(source, "using", "")
    if request.to is not None:
        check_vector_name(request.to)
        return request.to
    return default_target(using, request.dim) if using else f"dense_{request.dim}"


def migrate_in_place(request: Any, source: Source, started: float, say) -> dict[str, Any]:
    if not isinstance(source, QdrantSource):
        raise SmecError(
            "--in-place adds a named vector through qdrant-client: a Qdrant server (--url) or "
            "a local storage folder (--path of QdrantClient(path=...)), not a qdrant-edge shard"
        )
    if request.to_backend or request.alias or request.partition:
        raise SmecError("--in-place writes into the source: leave out --to-backend, --alias and "
                        "--partition")  # fmt: skip
    name = vector_name(request, source)
    params = source.client.get_collection(source.collection).config.params
    config = params.vectors
    existing = config if isinstance(config, dict) else {"": config}
    if name in (params.sparse_vectors or {}):  # before a PCA is fitted or saved
        raise SmecError(f"--to {name}: collection {source.collection!r} has a sparse vector of "
                        "that name; pick another --to")  # fmt: skip
    unnamed = "" in existing and name not in existing  # the collection's one vector, unnamed
    if unnamed and not request.allow_schema_change and not request.rollback:
        raise SmecError(
            f"collection {source.collection!r} has one unnamed vector: adding vector {name!r} "
            "beside it makes its vectors named ('' and the new one), so the app's upserts of a "
            "plain list fail and point.vector reads come back as a dict; pass "
            "--allow-schema-change if the app can take that, or migrate into a copy (leave "
            "out --in-place)"
        )
    progress = Progress(request.data_dir, "qdrant", source, "qdrant-vector", name,
                        source.info.location)  # fmt: skip
    if request.rollback:  # advice to delete only a vector a migration recorded making
        made = name in existing and progress.read() is not None
        raise SmecError(
            "--rollback: an in-place migration switches nothing" + (
                f"; to undo it, delete vector {name!r} (qdrant-client: delete_vector_name)"
                if made else f", and none made a vector {name!r} of {source.collection!r} (with "
                f"--data-dir {request.data_dir}): there is nothing to undo")
        )  # fmt: skip
    lock = request.data_dir / "locks" / "migrate" / f"{progress.folder.name}-{progress.stem}.lock"
    what = f"an in-place migration of Qdrant collection {source.collection!r}"
    # A plan reads only: no lock file either (the lock guards writes).
    with contextlib.nullcontext() if request.dry_run else file_lock(lock, what):
        recorded = progress.read()
        state = None if request.restart else recorded
        if name in existing and recorded is None:  # the user's own (or another data dir's)
            raise SmecError(
                f"collection {source.collection!r} already has a vector {name!r} that no "
                f"in-place migration recorded in {request.data_dir} made; smec-index never "
                "writes over a vector it did not make: pick another --to"
            )
        if name in existing and int(existing[name].size) != request.dim:
            raise SmecError(
                f"vector {name!r} of {source.collection!r} has {existing[name].size} dims, not "
                f"{request.dim}; pick another --to"
            )
        count = source.count()
        verify.check_metric(source)
        projection, artifact, fingerprint, kept = fit_projection(request, source, progress, say)
        if request.dry_run:
            search = verify.exact_search(source, projection, request.dim, request.progress)
            gate = verify.recall_gate(source, search, projection, request.dim)
            return {"source": progress.shown_source, "target": f"{source.collection}:{name}",
                    "using": name, "count": count, "dim": request.dim, "dry_run": True,
                    "recall@10": round(gate["value"], 4), "gate": "recall@10",
                    "gate_value": round(gate["value"], 4),
                    "gate_passes": gate["value"] >= request.min_recall,
                    "schema_diff": [f"params.vectors.{name}: (none) -> {request.dim}-d "
                                    f"{source.info.metric}"] + (
                        ["params.vectors: one unnamed vector -> named vectors '' and "
                         f"{name!r} (point.vector reads a dict)"] if unnamed else []),
                    "target_location": source.info.where, "artifact": str(Path(kept).resolve()),
                    "seconds": round(time.perf_counter() - started, 3)}  # fmt: skip
        if state is not None and state.get("fingerprint") != fingerprint:
            raise SmecError(
                f"vector {name!r} was started with another projection; pass --restart to start over"
            )
        writer = NamedVector(source, name)
        if state is None:
            state = {"source": progress.shown_source,
                     "target": f"{source.collection}:{name}", "dim": request.dim,
                     "fingerprint": fingerprint, "cursor": None, "written": 0,
                     "done": False, "in_place_using": source.using,
                     **_described(source, name, artifact)}  # fmt: skip
            progress.write(state)  # before the vector exists: a vector of that name is ours
            if name not in existing:
                _create_vector(writer, request.dim, source.info.metric)
        elif state.get("vector") is None:  # a record from before `info` read them
            state.update(_described(source, name, artifact))
            progress.write(state)
        server = bool(request.source.get("url"))
        job = Job(source, writer, name, request.dim, request.batch_size,
                  request.checkpoint_rows, writers=request.writers or (4 if server else 1),
                  read_ahead=server, progress=request.progress)  # fmt: skip
        if job.writers > 1 and not server:
            raise SmecError(f"--writers {job.writers}: qdrant-client's local mode takes one")
        # Points an earlier run filled (a rerun after the gate, a resume): the source may
        # have changed since, which a sample cannot see, so every point is compared.
        earlier = bool(state.get("written"))
        if not state["done"]:
            stream(job, projection, state, progress.write, count)
        recall = _verify(request, source, writer, projection, count, full=earlier)
        if recall < request.min_recall:
            raise SmecError(
                f"quality gate: recall@10 of vector {name!r} against the source's own search is "
                f"{recall:.3f}, {request.min_recall - recall:.3f} below --min-recall "
                f"{request.min_recall} (the vector stays; try a larger --dim)"
            )
        say(f"filled vector {name!r} of {source.collection!r}: query it with using={name!r}")
        return {
            "source": state["source"],
            "target": state["target"],
            "using": name,
            "alias": None,
            "count": count,
            "dim": request.dim,
            "verified": True,
            "recall@10": round(recall, 4),
            "index_bytes_before": source.index_bytes(),
            "index_bytes_after": None,
            "artifact": str(Path(artifact).resolve()),
            "seconds": round(time.perf_counter() - started, 3),
            "stream_seconds": state.get("stream_seconds"),
        }


def _described(source, name: str, artifact) -> dict:
    """What `smec-index info` reads of an in-place migration: where the collection is, the
    vector filled and the artifact its queries need."""
    return {"target_place": source.info.location, "vector": name,
            "artifact": str(Path(artifact).resolve())}  # fmt: skip


def _create_vector(writer: NamedVector, dim: int, metric: str) -> None:
    from qdrant_client import models

    distance = {"cosine": models.Distance.COSINE, "ip": models.Distance.DOT,
                "l2": models.Distance.EUCLID}[metric]  # fmt: skip
    config = models.DenseVectorNameConfig(
        dense=models.DenseVectorConfig(size=dim, distance=distance)
    )
    try:
        writer.client.create_vector_name(writer.collection, writer.name, config)
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SmecError(
            f"cannot add vector {writer.name!r} to {writer.collection!r} ({reason}); adding a "
            "named vector needs Qdrant 1.18+: leave out --in-place to migrate into a new "
            "collection"
        ) from None


FILLED_CHANGED = ("the source's points were changed since the vector was filled (or the "
                  "vector since); pass --restart to fill it again")


def _verify(request, source: QdrantSource, writer: NamedVector, projection, count,
            full: bool = False) -> float:  # fmt: skip
    """Every point has the vector, a sample of them (``full``: all of them) the projection
    of the source's; returns recall@10 of the vector against the source's own search."""
    filled = writer.count_filled()
    if filled != count:
        # every point was written by then: a resume cannot mend it, only filling it again
        raise SmecError(
            f"{filled} of {count} points have vector {writer.name!r}, though every point was "
            "filled: the vector was deleted, or the source's points changed, since; pass "
            "--restart to fill it again"
        )
    sample = verify.gate_queries(source, nonzero=True)
    expected = projection.transform(sample.vectors, request.dim)
    for batch in verify.every_point(source, count) if full else []:
        if batch.ids and not np.allclose(writer.get(batch.raw_ids), projection.transform(
                batch.vectors, request.dim), atol=1e-5):  # fmt: skip
            raise SmecError(f"{writer.name!r} vectors differ from the projection of the "
                            f"source's; {FILLED_CHANGED}")  # fmt: skip
    if not np.allclose(writer.get(sample.raw_ids), expected, atol=1e-5):
        raise SmecError(f"sampled {writer.name!r} vectors differ from the projection of the "
                        f"source's; {FILLED_CHANGED}")  # fmt: skip
    return verify.recall_at_10(source.search(sample.vectors, 10), writer.search(expected, 10))
