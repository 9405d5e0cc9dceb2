"""What the Qdrant stores share: point ids, the reserved payload key and the index settings.

Qdrant keys points by unsigned integers or UUIDs only, so every string id becomes a
deterministic UUID5 and the original string rides along in the payload under
:data:`ID_KEY`. The same id therefore always maps to the same point, and search results are
turned back into the caller's ids from that payload key.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np

from smec_index.connectors.base import INDEX_DEFAULTS, Batch, IndexSpec, Sizes
from smec_index.connectors.contract import RESERVED_KEY
from smec_index.errors import SmecError, brief

ID_KEY = RESERVED_KEY
_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/smec-index/point-id")

# Both in KB, as Qdrant counts them. An indexing threshold of 0 would *disable* indexing;
# 1 KB means "build HNSW for any non-empty segment". Qdrant's default full-scan threshold
# (10,000 KB) makes every segment under ~10 MB of vectors answer by a plain scan even when
# its HNSW graph exists, so it is lowered to the smallest value the server accepts.
INDEXING_THRESHOLD_KB = 1
FULL_SCAN_THRESHOLD_KB = 10

QUANTIZATIONS = (None, "scalar", "binary", "product", "turbo")
COMPRESSIONS = (4, 8, 16, 32, 64)
# Bits per dimension of a code: binary (Qdrant's one_bit, one_and_half_bits, two_bits
# encodings) and TurboQuant (a random rotation, then a few bits per coordinate).
BITS = {"binary": (1, 1.5, 2), "turbo": (1, 1.5, 2, 4, 8)}
DEFAULT_BITS = {"binary": 1, "turbo": 4}
# Quantized codes steer the HNSW walk and pick the candidates that the original vectors then
# rescore, so fetch ``oversampling`` x k of them. On 10k rank-16 64-d vectors (M=16,
# ef_search=64) recall@10 without oversampling was int8 0.97, product x16 0.66, binary 0.33;
# with these defaults it is 0.999, 0.97 and 0.62 (binary needs hundreds of dims to be useful).
DEFAULT_OVERSAMPLING = {None: None, "scalar": 2.0, "binary": 4.0, "product": 4.0, "turbo": 4.0}


def point_uuid(point_id: str) -> str:
    """The UUID5 Qdrant stores for ``point_id`` (same id, same UUID, on every machine)."""
    return str(uuid.uuid5(_ID_NAMESPACE, point_id))


def point_int(point_id: str) -> int:
    """The integer point id qdrant-edge collections store for ``point_id``: the first 63
    bits of its UUID5 (59 of them random), so the same id is the same point everywhere.
    Hits come back as ints, which Python makes and hashes in C (a UUID costs a Python
    constructor per hit). Two ids of a batch that meet (odds about n**2 / 2**60: 1e-6 at a
    million points) are refused when written; across batches the build's count check
    catches it."""
    return uuid.uuid5(_ID_NAMESPACE, point_id).int >> 65


@dataclass(frozen=True)
class QdrantSettings:
    """An :class:`IndexSpec` translated to Qdrant's knobs.

    Attributes:
        hnsw: build an HNSW graph (``index="hnsw"``) or keep a plain, exact index (``flat``).
        m, ef_construct: HNSW graph degree and build beam (``M``, ``ef_construction``).
        ef_search: search beam (``ef_search``); ``None`` leaves Qdrant's default.
        quantization: ``None``, ``scalar`` (int8), ``binary``, ``product`` or ``turbo``
            (TurboQuant).
        compression: product quantization ratio against float32 (``pq_compression``).
        bits: bits per dimension of binary (1, 1.5, 2) and TurboQuant (1, 1.5, 2, 4, 8)
            codes (``bits``; None for the others).
        oversampling: candidates fetched per result before rescoring quantized hits.
        rescore: re-rank the quantized hits with the float32 originals (``rescore``, default
            True). False searches the codes alone: the originals stay on disk, unread, and
            the scores are the codes' estimates.
    """

    hnsw: bool
    m: int
    ef_construct: int
    ef_search: int | None
    quantization: str | None
    compression: int
    oversampling: float | None
    bits: float | None = None
    rescore: bool = True
    indexing_threshold_kb: ClassVar[int] = INDEXING_THRESHOLD_KB
    full_scan_threshold_kb: ClassVar[int] = FULL_SCAN_THRESHOLD_KB

    @classmethod
    def from_spec(cls, spec: IndexSpec) -> QdrantSettings:
        """Qdrant's knobs for a resolved ``spec``; raises :class:`SmecError`."""
        params = spec.params
        quantization = params.get("quantization")
        if quantization not in QUANTIZATIONS:
            raise SmecError(
                f"unknown Qdrant quantization {quantization!r}; use scalar, binary, product "
                "or turbo"
            )
        bits = params.get("bits")
        if bits is not None and quantization not in BITS:
            raise SmecError(
                f"bits={bits!r} needs quantization binary or turbo (got {quantization!r})"
            )
        if quantization in BITS:
            bits = DEFAULT_BITS[quantization] if bits is None else bits
            if isinstance(bits, bool) or bits not in BITS[quantization]:
                choices = ", ".join(f"{b:g}" for b in BITS[quantization])
                raise SmecError(f"{quantization} bits={bits!r}: use one of {choices}")
        compression = params.get("pq_compression", 16)
        if compression not in COMPRESSIONS or isinstance(compression, bool):
            raise SmecError(f"pq_compression {compression!r} is not one of {COMPRESSIONS}")
        ef_search = params.get("ef_search")
        oversampling = params.get("oversampling", DEFAULT_OVERSAMPLING[quantization])
        if oversampling is not None and (
            isinstance(oversampling, bool)
            or not isinstance(oversampling, (int, float))
            or not 1 <= oversampling <= 1000
        ):
            raise SmecError(f"oversampling {oversampling!r}: use a number from 1 to 1000")
        rescore = params.get("rescore", True)
        if not isinstance(rescore, bool):
            raise SmecError(f"rescore {rescore!r}: use true or false")
        if not rescore and quantization is None:
            raise SmecError(
                "rescore=false needs a quantization (there are no codes to search without "
                "the originals); add scalar, binary, product or turbo"
            )
        if not rescore and spec.index != "hnsw":
            raise SmecError(
                f"rescore=false needs index hnsw: a {spec.index} index searches the float32 "
                "originals exactly, never the codes"
            )
        if not rescore and "oversampling" in params:
            raise SmecError(
                "oversampling needs rescore: without it the extra candidates are never "
                "re-ranked; leave one of them out"
            )
        return cls(
            hnsw=spec.index == "hnsw",
            m=int(params.get("M", INDEX_DEFAULTS["hnsw"]["M"])),  # flat: unused, Qdrant's own
            ef_construct=int(
                params.get("ef_construction", INDEX_DEFAULTS["hnsw"]["ef_construction"])
            ),
            ef_search=None if ef_search is None else int(ef_search),
            quantization=quantization,
            compression=compression,
            oversampling=None if oversampling is None or not rescore else float(oversampling),
            bits=None if bits is None else float(bits),
            rescore=rescore,
        )


def with_id(payload: dict[str, Any] | None, point_id: str) -> dict[str, Any]:
    """The payload to store: the caller's fields (checked by the contract) plus the id."""
    return {**(payload or {}), ID_KEY: point_id}


def split_id(payload: dict[str, Any] | None, point: Any = None) -> tuple[str, dict[str, Any]]:
    """The original id and the caller's payload, without the reserved key; a point without
    it (``point``: its Qdrant id) is one line: smec-index did not write it."""
    payload = dict(payload or {})
    if ID_KEY not in payload:
        raise SmecError(not_written(point))
    return str(payload.pop(ID_KEY)), payload


def original_id(payload: dict[str, Any] | None, point: Any) -> str:
    """The id a search hit was added under (its payload holds only the reserved key)."""
    if not payload or ID_KEY not in payload:
        raise SmecError(not_written(point))
    return str(payload[ID_KEY])


def not_written(point: Any) -> str:
    return (f"Qdrant point {point!r} has no {ID_KEY!r} payload, where smec-index keeps the id "
            "it was added under: the collection holds points smec-index did not write (a "
            "collection of your own, or points your own client added); read it with your own "
            "client")  # fmt: skip


Hit = tuple[str, float]  # (original id, Qdrant score)
Points = list[tuple[str, dict[str, Any], list[float]]]  # (original id, payload, vector)


def to_points(records: list[Any]) -> Points:
    """Qdrant records as (original id, payload without the reserved key, vector)."""
    return [(*split_id(r.payload, r.id), r.vector) for r in records]


def scroll_pages(
    fetch: Callable[[str | None], tuple[list[Any], Any]], offset: str | None
) -> Iterator[tuple[Points, str | None]]:
    """Qdrant's scroll, paged: ``fetch(offset)`` returns (records, next offset); yields each
    page's points with the offset that resumes after it (``None`` after the last)."""
    if offset is not None:
        check_cursor(offset)
        try:
            records, next_offset = fetch(offset)
        except (ValueError, TypeError):  # edge's int(), the client's id parsing
            raise SmecError(f"cursor {offset!r} is not one this collection gave (point "
                            "ids are integers or UUIDs); resume with a cursor it gave"
                            ) from None  # fmt: skip
        if not records or not _same_point(records[0].id, offset):  # scroll starts at or
            # after it: any id read as a place in another collection's order, or a made-up one
            raise SmecError(f"cursor {brief(offset, 40)} is not one this collection gave (no point "
                            "has that id); resume with a cursor it gave")  # fmt: skip
        offset = None if next_offset is None else str(next_offset)
        if records:
            yield to_points(records), offset
        if offset is None:
            return
    while True:
        records, offset = fetch(offset)
        offset = None if offset is None else str(offset)
        if records:
            yield to_points(records), offset
        if offset is None:
            return


def _same_point(point: Any, cursor: str) -> bool:
    """Whether Qdrant's point id ``point`` is the one ``cursor`` (its text) names."""
    if isinstance(point, int):
        return cursor.isdigit() and int(cursor) == point
    try:
        return uuid.UUID(str(point)) == uuid.UUID(cursor)
    except ValueError:
        return False


def check_cursor(cursor: Any) -> None:
    """A scroll cursor is a point id as text: an unsigned integer or a UUID."""
    if isinstance(cursor, str) and cursor.isascii() and cursor.isdigit():
        if len(cursor) <= 20 and int(cursor) < 2**64:  # Qdrant's ids are unsigned 64-bit
            return
        raise SmecError(f"cursor {brief(cursor, 40)} is beyond Qdrant's 64-bit point ids; resume "
                        "with a cursor the collection gave")  # fmt: skip
    try:
        uuid.UUID(cursor)
    except (TypeError, ValueError, AttributeError):
        raise SmecError(f"cursor {cursor!r} is not one a Qdrant collection gives (point ids are "
                        "integers or UUIDs); resume with a cursor it gave") from None  # fmt: skip


def to_batch(points: Points, dim: int, cursor: str | None = None) -> Batch:
    try:
        vectors = np.asarray([p[2] for p in points], dtype=np.float32).reshape(-1, dim)
    except (TypeError, ValueError):  # a damaged store: named vectors, ragged or missing
        raise SmecError(
            f"Qdrant returned points whose vectors are not {dim} numbers each: the collection's "
            "storage is damaged or was not written by smec-index; rebuild it (build --overwrite)"
        ) from None
    if len(vectors) != len(points):  # dims the collection's files disagree on
        raise SmecError(
            f"Qdrant returned vectors that are not {dim} numbers each: the collection's "
            "storage is damaged or its index_spec.json was edited; rebuild it (build --overwrite)"
        )
    return Batch([p[0] for p in points], vectors, [p[1] for p in points], cursor)


class QdrantStore(Protocol):
    """One way to reach Qdrant (edge shard, local client, server); ids already mapped."""

    def exists(self, collection: str) -> bool: ...

    def create(self, collection: str, spec: IndexSpec, settings: QdrantSettings) -> None: ...

    def spec(self, collection: str) -> IndexSpec: ...

    def foreign(self, collection: str) -> bool:
        """Whether ``collection`` lacks the spec smec-index stores (made by someone else)."""
        ...

    def upsert(
        self, collection: str, ids: list[str], vectors: np.ndarray, payloads: list[dict]
    ) -> None: ...

    def build(self, collection: str, settings: QdrantSettings) -> None:
        """Build the index after a batch of upserts and make the points durable."""
        ...

    def search(
        self, collection: str, queries: np.ndarray, k: int, settings: QdrantSettings
    ) -> list[list[Hit]]: ...

    def retrieve(self, collection: str, point_ids: list[str]) -> Points:
        """Points by their Qdrant ids (UUIDs), in any order; missing ones left out."""
        ...

    def scroll(
        self, collection: str, batch_size: int, offset: str | None
    ) -> Iterator[tuple[Points, str | None]]:
        """Pages from ``offset`` (a point UUID, inclusive) with the next page's offset."""
        ...

    def count(self, collection: str) -> int: ...

    def sizes(self, collection: str, settings: QdrantSettings) -> Sizes: ...

    def drop(self, collection: str) -> None: ...

    def collections(self) -> list[str]: ...

    def aliases(self) -> dict[str, str]: ...

    def set_alias(self, alias: str, collection: str) -> None: ...

    def drop_alias(self, alias: str) -> None: ...

    def close(self) -> None: ...
