"""The one small interface every vector-database backend implements.

A connector stores *collections* of (id, vector, payload) points at one dim and metric, and
answers top-k searches with ids and scores. Connectors return ids; callers compute nDCG,
recall and distances themselves (as ann-benchmarks does), so a backend cannot flatter
itself. Optional abilities are separate protocols (:class:`Persistent`), never probed with
``hasattr``.

Ids are strings end to end. Backends that need integer or UUID keys map them internally and
give the original string back.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from smec_index.errors import SmecError

METRICS = ("cosine", "ip", "l2")


@dataclass
class IndexSpec:
    """What to build: dim, metric, index kind and its parameters.

    Attributes:
        dim: vector dimension; every added vector and query must have it.
        metric: ``cosine`` (vectors normalised by the caller or the backend), ``ip`` or ``l2``.
        index: backend index kind: ``flat``, ``hnsw``, ``ivf_flat``, ``ivf_pq`` (where the
            backend has it).
        params: index parameters by their usual names: ``M``, ``ef_construction``,
            ``ef_search``, ``nlist``, ``nprobe``, ``pq_m``, ``pq_bits``, ``quantization``
            (``scalar``, ``binary``, ``product``; Qdrant).
    """

    dim: int
    metric: str = "cosine"
    index: str = "hnsw"
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.dim = int(self.dim)
        if self.dim <= 0:
            raise SmecError(f"dim must be positive, got {self.dim}")
        if self.metric not in METRICS:
            raise SmecError(f"unknown metric {self.metric!r}; use one of {', '.join(METRICS)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Batch:
    """A slice of a collection as :meth:`Connector.iterate` yields it."""

    ids: list[str]
    vectors: np.ndarray  # (n, dim) float32
    payloads: list[dict[str, Any]]


@runtime_checkable
class Connector(Protocol):
    """Create, fill, search, count, iterate, measure and drop collections."""

    name: str

    def create(self, collection: str, spec: IndexSpec, overwrite: bool = False) -> None:
        """Create ``collection``; an existing one is an error unless ``overwrite``."""
        ...

    def exists(self, collection: str) -> bool: ...

    def spec(self, collection: str) -> IndexSpec:
        """The spec the collection was created with."""
        ...

    def add(
        self,
        collection: str,
        ids: Sequence[str],
        vectors: np.ndarray,
        payloads: Sequence[dict[str, Any]] | None = None,
        batch_size: int = 1000,
    ) -> None:
        """Insert points in batches; vectors of another dim are an error."""
        ...

    def search(
        self, collection: str, queries: np.ndarray, k: int
    ) -> tuple[list[list[str]], np.ndarray]:
        """Top-k ids per query (best first) and their scores, (nq, k) float32.

        Scores are similarities (higher is better) for ``cosine``/``ip`` and negated
        distances for ``l2`` (squared for FAISS, hnswlib and Milvus, plain Euclidean for
        Qdrant: compare l2 scores within one backend only), so every backend sorts the same
        way. Missing hits are padded with ``""`` and ``-inf``.
        """
        ...

    def count(self, collection: str) -> int: ...

    def iterate(self, collection: str, batch_size: int = 1000) -> Iterator[Batch]:
        """Every point exactly once, in batches, with its vector as stored (unit length for
        ``cosine``, since backends normalise on insert) and its payload."""
        ...

    def memory_bytes(self, collection: str) -> int | None:
        """Size as the backend reports it (serialized index, collection stats or files on
        disk); ``None`` only where the backend offers no figure."""
        ...

    def drop(self, collection: str) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class Persistent(Protocol):
    """Backends whose collections live in files under a data directory."""

    def path(self, collection: str) -> str:
        """Where the collection's files are."""
        ...


def check_vectors(vectors: np.ndarray, dim: int, what: str = "vectors") -> np.ndarray:
    """float32, C-contiguous, 2-D, finite, of dim ``dim``: or a one-line error."""
    array = np.ascontiguousarray(vectors, dtype=np.float32)
    if array.ndim != 2 or array.shape[1] != dim:
        raise SmecError(
            f"{what} of shape {tuple(np.shape(vectors))} do not fit a {dim}-d collection; "
            f"project them to {dim} dims (or recreate the collection with --overwrite)"
        )
    if not np.isfinite(array).all():
        raise SmecError(f"{what} hold NaN or inf; clean them before indexing")
    return array


def check_ids(ids: Sequence[str], n: int) -> list[str]:
    ids = [str(i) for i in ids]
    if len(ids) != n:
        raise SmecError(f"{len(ids)} ids for {n} vectors; pass one id per vector")
    if len(set(ids)) != len(ids) or any(not i for i in ids):
        raise SmecError("ids must be unique and non-empty")
    return ids


def check_collection_name(name: str) -> str:
    if not name or not all(c.isalnum() or c in "_-" for c in name) or not name[0].isalpha():
        raise SmecError(
            f"collection name {name!r}: use letters, digits, '_' or '-', starting with a letter"
        )
    return name


def default_data_dir() -> Path:
    """Where embedded backends keep their files: ``$SMEC_INDEX_DATA`` or ``./smec-data``."""
    return Path(os.environ.get("SMEC_INDEX_DATA", "smec-data"))
