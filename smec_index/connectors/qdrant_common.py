"""What the Qdrant stores share: point ids, the reserved payload key and the index settings.

Qdrant keys points by unsigned integers or UUIDs only, so every string id becomes a
deterministic UUID5 and the original string rides along in the payload under
:data:`ID_KEY`. The same id therefore always maps to the same point, and search results are
turned back into the caller's ids from that payload key.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from smec_index.connectors.base import IndexSpec
from smec_index.errors import SmecError

ID_KEY = "_smec_id"
_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/smec-index/point-id")

# Both in KB, as Qdrant counts them. An indexing threshold of 0 would *disable* indexing;
# 1 KB means "build HNSW for any non-empty segment". Qdrant's default full-scan threshold
# (10,000 KB) makes every segment under ~10 MB of vectors answer by a plain scan even when
# its HNSW graph exists, so it is lowered to the smallest value the server accepts.
INDEXING_THRESHOLD_KB = 1
FULL_SCAN_THRESHOLD_KB = 10

QUANTIZATIONS = (None, "scalar", "binary", "product")
COMPRESSIONS = (4, 8, 16, 32, 64)
# Quantized codes steer the HNSW walk and pick the candidates that the original vectors then
# rescore, so fetch ``oversampling`` x k of them. On 10k rank-16 64-d vectors (M=16,
# ef_search=64) recall@10 without oversampling was int8 0.97, product x16 0.66, binary 0.33;
# with these defaults it is 0.999, 0.97 and 0.62 (binary needs hundreds of dims to be useful).
DEFAULT_OVERSAMPLING = {None: None, "scalar": 2.0, "binary": 4.0, "product": 4.0}


def point_uuid(point_id: str) -> str:
    """The UUID5 Qdrant stores for ``point_id`` (same id, same UUID, on every machine)."""
    return str(uuid.uuid5(_ID_NAMESPACE, point_id))


@dataclass(frozen=True)
class QdrantSettings:
    """An :class:`IndexSpec` translated to Qdrant's knobs.

    Attributes:
        hnsw: build an HNSW graph (``index="hnsw"``) or keep a plain, exact index (``flat``).
        m, ef_construct: HNSW graph degree and build beam (``M``, ``ef_construction``).
        ef_search: search beam (``ef_search``); ``None`` leaves Qdrant's default.
        quantization: ``None``, ``scalar`` (int8), ``binary`` or ``product``.
        compression: product quantization ratio against float32 (``pq_compression``).
        oversampling: candidates fetched per result before rescoring quantized hits.
    """

    hnsw: bool
    m: int
    ef_construct: int
    ef_search: int | None
    quantization: str | None
    compression: int
    oversampling: float | None

    @classmethod
    def from_spec(cls, spec: IndexSpec) -> QdrantSettings:
        """Check ``spec`` for Qdrant and resolve defaults; raises :class:`SmecError`."""
        if spec.index not in ("hnsw", "flat"):
            raise SmecError(
                f"Qdrant has no {spec.index!r} index; use index 'hnsw' (optionally with "
                "quantization) or 'flat'"
            )
        params = spec.params
        known = {"quantization", "pq_compression", "oversampling", "ef_search"}
        if spec.index == "hnsw":
            known |= {"M", "ef_construction"}
        unknown = sorted(set(params) - known)
        if unknown:
            raise SmecError(
                f"unknown Qdrant {spec.index} parameter(s) {', '.join(unknown)}; "
                f"use {', '.join(sorted(known))}"
            )
        quantization = params.get("quantization")
        if quantization not in QUANTIZATIONS:
            raise SmecError(
                f"unknown Qdrant quantization {quantization!r}; use scalar, binary or product"
            )
        compression = int(params.get("pq_compression", 16))
        if compression not in COMPRESSIONS:
            raise SmecError(f"pq_compression {compression} is not one of {COMPRESSIONS}")
        ef_search = params.get("ef_search")
        oversampling = params.get("oversampling", DEFAULT_OVERSAMPLING[quantization])
        return cls(
            hnsw=spec.index == "hnsw",
            m=int(params.get("M", 16)),
            ef_construct=int(params.get("ef_construction", 100)),
            ef_search=None if ef_search is None else int(ef_search),
            quantization=quantization,
            compression=compression,
            oversampling=None if oversampling is None else float(oversampling),
        )


def with_id(payload: dict[str, Any] | None, point_id: str) -> dict[str, Any]:
    """The payload to store: the caller's fields plus the original id."""
    payload = dict(payload or {})
    if ID_KEY in payload:
        raise SmecError(f"payload key {ID_KEY!r} is reserved by smec-index; rename that field")
    payload[ID_KEY] = point_id
    return payload


def split_id(payload: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
    """The original id and the caller's payload, without the reserved key."""
    payload = dict(payload or {})
    return str(payload.pop(ID_KEY, "")), payload


def disk_bytes(path: Path) -> int:
    """Bytes allocated on disk under ``path``, as ``du`` counts them.

    Qdrant preallocates sparse 32 MiB mmap chunks, so apparent file sizes overstate what
    a collection holds; allocated blocks do not (``st_size`` where there are no blocks).
    """
    if path.is_file():
        return _allocated(path)
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            total += _allocated(Path(root) / name)
    return total


def _allocated(path: Path) -> int:
    stat = path.stat()
    blocks = getattr(stat, "st_blocks", None)
    return stat.st_size if blocks is None else blocks * 512


def shown_url(url: str) -> str:
    """``url`` without any user:password part, fit for messages and reprs."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    return urlunsplit(parts._replace(netloc=f"{host}:{parts.port}" if parts.port else host))


Hit = tuple[str, float]  # (original id, Qdrant score)
Points = list[tuple[str, dict[str, Any], list[float]]]  # (original id, payload, vector)


class QdrantStore(Protocol):
    """One way to reach Qdrant (edge shard, local client, server); ids already mapped."""

    def exists(self, collection: str) -> bool: ...

    def create(self, collection: str, spec: IndexSpec, settings: QdrantSettings) -> None: ...

    def spec(self, collection: str) -> IndexSpec: ...

    def upsert(
        self, collection: str, ids: list[str], vectors: np.ndarray, payloads: list[dict]
    ) -> None: ...

    def build(self, collection: str, settings: QdrantSettings) -> None:
        """Build the index after a batch of upserts and make the points durable."""
        ...

    def search(
        self, collection: str, queries: np.ndarray, k: int, settings: QdrantSettings
    ) -> list[list[Hit]]: ...

    def scroll(self, collection: str, batch_size: int) -> Iterator[Points]: ...

    def count(self, collection: str) -> int: ...

    def memory_bytes(self, collection: str) -> int | None: ...

    def drop(self, collection: str) -> None: ...

    def close(self) -> None: ...
