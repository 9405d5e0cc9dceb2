"""Encodings: how a backend stores each vector, the index parameters that ask for it, and
the bytes one vector's code takes.

The one table of them is :data:`ENCODINGS`, rendered by :func:`encodings_table` into the
docs (``docs/benchmarking.md``); which index kinds each backend builds an encoding with is
computed from :func:`supports`, and ``tests/test_docs.py`` checks each row's bytes formula
against :func:`bytes_per_vector`.

Qdrant keeps the float32 originals beside the codes to rescore, and ``index_bytes`` counts
them (they are what its search reads); ``bytes_per_vector`` is the code alone. A Qdrant
encoding with the suffix ``-norescore`` (``turbo2-norescore``) searches the codes alone:
the HNSW graph Qdrant built from the originals, walked and ranked with the codes, and
``index_bytes`` without the originals, which search then never reads.
"""

from __future__ import annotations

from typing import Any

from smec_index.codes import opq_bytes, pq_bytes, product_code_bytes
from smec_index.errors import SmecError

BACKENDS = ("faiss", "hnswlib", "qdrant", "milvus")
BACKEND_ENCODINGS = {
    "faiss": ("float32", "sq8", "sq4", "pq<m>", "opq<m>", "rabitq", "binary"),
    "hnswlib": ("float32",),
    "qdrant": ("float32", "sq8", "binary", "binary1.5", "binary2", "turbo<b>", "pq<m>"),
    "milvus": ("float32",),
}
TURBO_BITS = {"1": 1.0, "1.5": 1.5, "2": 2.0, "4": 4.0, "8": 8.0}
BINARY_BITS = {"binary": 1.0, "binary1.5": 1.5, "binary2": 2.0}
BACKEND_INDEXES = {"faiss": ("flat", "hnsw", "ivf"), "hnswlib": ("hnsw",),
                   "qdrant": ("flat", "hnsw"), "milvus": ("flat", "hnsw", "ivf")}  # fmt: skip
# Behind an inverted file (index ivf) the codes are the connector's ivf_flat with an encoding,
# or its ivf_pq: what each backend builds there.
IVF_ENCODINGS = {
    "faiss": ("float32", "sq8", "sq4", "pq<m>", "rabitq"),
    "milvus": ("float32", "sq8"),
    "milvus-server": ("float32", "sq8", "pq<m>"),
}
QDRANT_PQ_RATIOS = (4, 8, 16, 32, 64)

# The encodings table: name, an example the table's index kinds are computed with (at
# dim 128), bytes per vector as a formula of d (and m or b), and what FAISS and Qdrant
# build. hnswlib and Milvus store float32 (Milvus also sq8 and pq<m> behind ivf).
ENCODINGS = (
    ("float32", "float32", "4 d", "IndexFlat, IndexHNSWFlat, IndexIVFFlat", "plain"),
    ("sq8", "sq8", "d", "ScalarQuantizer 8 bit", "scalar int8, rescored"),
    ("sq4", "sq4", "d / 2", "ScalarQuantizer 4 bit", ""),
    ("binary", "binary", "d / 8", "IndexLSH: sign bits, Hamming, no rescoring",
     "binary 1 bit, oversampled x4, rescored"),
    ("binary1.5, binary2", "binary2", "3 d / 16, d / 4", "", "binary 1.5 / 2 bits, rescored"),
    ("turbo<b> (b = 1, 1.5, 2, 4, 8)", "turbo2", "b d / 8", "", "TurboQuant b bits, rescored"),
    ("pq<m>", "pq16", "m", "IndexPQ, IndexHNSWPQ, IndexIVFPQ (8-bit codes)",
     "product (ratio 4 d / m), rescored"),
    ("opq<m>", "opq16", "m (+ a d x d rotation per index)",
     "pq<m> after an OPQ rotation (IndexPreTransform)", ""),
    ("rabitq", "rabitq", "d / 8 + 8", "IndexRaBitQ, IndexIVFRaBitQ", ""),
    ("<code>-norescore", "turbo2-norescore", "the code's", "",
     "the code alone, no rescoring; originals out of index_bytes"),
)  # fmt: skip
NO_RESCORE = "-norescore"


def base_encoding(encoding: str) -> str:
    """The code an encoding stores: ``turbo2-norescore`` stores ``turbo2``."""
    return encoding.removesuffix(NO_RESCORE)


def _turbo_bits(encoding: str) -> float | None:
    return TURBO_BITS.get(encoding[5:]) if encoding.startswith("turbo") else None


def check_encoding(encoding: str) -> None:
    known = ("float32", "sq8", "sq4", *BINARY_BITS, "rabitq")
    code = base_encoding(encoding)
    if code not in known and not (product_code_bytes(code) or _turbo_bits(code)):
        raise SmecError(
            f"unknown encoding {encoding!r}; use float32, sq8, sq4, binary, binary1.5, "
            "binary2, turbo<b> (b bits: 1, 1.5, 2, 4 or 8), pq<m> (m bytes, e.g. pq16), "
            f"opq<m> (pq<m> after an OPQ rotation) or rabitq; a Qdrant code with {NO_RESCORE} "
            f"(e.g. turbo2{NO_RESCORE}) is searched without rescoring"
        )
    if code == "float32" and encoding != code:
        raise SmecError(f"{encoding}: float32 has nothing to rescore; use float32")


def family(backend: str) -> str:
    """The connector behind a bench backend name (``milvus-server`` is Milvus)."""
    return "milvus" if backend == "milvus-server" else backend


def supports(backend: str, index: str, encoding: str, dim: int) -> str | None:
    """None when ``backend`` can build ``encoding`` at ``dim`` with ``index``, else why not."""
    name, backend = backend, family(backend)
    if index not in BACKEND_INDEXES[backend]:
        return f"{backend} has no {index} index"
    if encoding != base_encoding(encoding):
        if backend != "qdrant":
            return f"{encoding}: only Qdrant's codes are rescored in the bench, {backend}'s never"
        encoding = base_encoding(encoding)
    names = IVF_ENCODINGS[name] if index == "ivf" else BACKEND_ENCODINGS[backend]
    pq = pq_bytes(encoding)
    opq = opq_bytes(encoding)
    turbo = _turbo_bits(encoding)
    if (
        encoding not in names
        and not (pq and "pq<m>" in names)
        and not (opq and "opq<m>" in names)
        and not (turbo and "turbo<b>" in names)
    ):
        where = f"{name} ivf" if index == "ivf" else backend
        return f"{where} has encodings {', '.join(names)}"
    if (pq or opq) and dim % (pq or opq):
        return f"{encoding}: {pq or opq} bytes do not divide dim {dim}"
    if pq and backend == "qdrant" and (4 * dim // pq) not in QDRANT_PQ_RATIOS:
        return f"{encoding}: Qdrant's product ratio 4*{dim}/{pq} is not one of {QDRANT_PQ_RATIOS}"
    if encoding == "rabitq" and index == "hnsw":
        return "faiss rabitq is exhaustive (flat) or behind an inverted file (ivf)"
    if backend == "faiss" and encoding == "binary" and index != "flat":
        return "faiss binary is an exhaustive Hamming scan (flat)"
    if backend == "qdrant" and index == "flat" and encoding != "float32":
        return "Qdrant's exact search reads the float32 originals, not the codes"
    return None


def index_spec(backend: str, index: str, encoding: str, dim: int) -> tuple[str, dict[str, Any]]:
    """The connector's index kind and the spec parameters that build ``encoding`` there
    (the sweep adds the graph or list sizes)."""
    backend = family(backend)
    if index == "ivf":
        pq = pq_bytes(encoding)
        if pq:
            return "ivf_pq", {"pq_m": pq, "pq_bits": 8}
        return "ivf_flat", {} if encoding == "float32" else {"encoding": encoding}
    return index, index_params(backend, encoding, dim)


def rescored(backend: str, encoding: str) -> bool:
    """Whether search re-ranks with float32 originals kept beside the codes (Qdrant's
    quantization unless ``-norescore``): the codes are what it scans in RAM, the originals
    sit on disk."""
    return backend == "qdrant" and encoding != "float32" and not encoding.endswith(NO_RESCORE)


def index_params(backend: str, encoding: str, dim: int) -> dict[str, Any]:
    """The connector's spec parameters that build ``encoding`` in a flat or HNSW index."""
    if encoding == "float32":
        return {}
    if backend == "faiss":
        return {"encoding": encoding}
    if backend == "qdrant" and encoding != base_encoding(encoding):
        return {**index_params(backend, base_encoding(encoding), dim), "rescore": False}
    if backend == "qdrant":
        if encoding == "sq8":
            return {"quantization": "scalar"}
        if encoding in BINARY_BITS:
            return {"quantization": "binary", "bits": BINARY_BITS[encoding]}
        if _turbo_bits(encoding) is not None:
            return {"quantization": "turbo", "bits": _turbo_bits(encoding)}
        return {"quantization": "product", "pq_compression": 4 * dim // pq_bytes(encoding)}
    raise SmecError(f"{backend} has no encoding {encoding!r}")


def bytes_per_vector(encoding: str, dim: int) -> float:
    """What one vector's code takes (graph links, ids and codebooks not included)."""
    encoding = base_encoding(encoding)
    if encoding == "float32":
        return 4.0 * dim
    if encoding == "sq8":
        return float(dim)
    if encoding == "sq4":
        return dim / 2
    if encoding in BINARY_BITS:
        return BINARY_BITS[encoding] * dim / 8
    if _turbo_bits(encoding) is not None:
        return _turbo_bits(encoding) * dim / 8  # the code; Qdrant's own per-vector extras aside
    if encoding == "rabitq":
        return dim / 8 + 8  # sign bits plus two float32 correction factors
    pq = product_code_bytes(encoding)
    if pq is None:
        check_encoding(encoding)
    return float(pq)


def _indexes(backend: str, example: str) -> list[str]:
    """The index kinds ``backend`` builds ``example`` with (at dim 128)."""
    kinds = BACKEND_INDEXES[family(backend)]
    return [kind for kind in kinds if supports(backend, kind, example, 128) is None]


def encodings_table() -> str:
    """The encodings table as Markdown: the docs include it, so it cannot drift from the code."""
    head = ("| encoding | bytes / vector | faiss | qdrant (qdrant-edge, server) | hnswlib | "
            "milvus (lite / server) |")  # fmt: skip
    lines = [head, "|---|---|---|---|---|---|"]
    for name, example, size, faiss_how, qdrant_how in ENCODINGS:
        cells = []
        for backend, how in (("faiss", faiss_how), ("qdrant", qdrant_how), ("hnswlib", ""),
                             ("milvus", ""), ("milvus-server", "")):  # fmt: skip
            kinds = _indexes(backend, example)
            cells.append(f"{', '.join(kinds)}{' (' + how + ')' if how else ''}" if kinds else "no")
        milvus = cells[3] if cells[3] == cells[4] else f"{cells[3]} / {cells[4]}"
        names = ", ".join(f"`{n.strip()}`" for n in name.split(",") if "(" not in n)
        names = names if "(" not in name else f"`{name.split(' (')[0]}` ({name.split(' (')[1]}"
        lines.append(f"| {names} | {size} | {cells[0]} | {cells[1]} | {cells[2]} | {milvus} |")
    return "\n".join(lines) + "\n"
