"""Vector arithmetic that evaluation, training and the index share: one normalisation, one
exact search, one input check.

Only numpy is imported at module level, so the query path (project, normalise, search a
backend) loads without torch; FAISS is imported inside :func:`exact_search`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from smec_index.errors import SmecError

TINY_NORM = 1e-15  # below it a float32 sum of squares has lost digits to underflow


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation into a new C-contiguous float32 array (zero rows stay zero).

    Norms are taken in float32 and again in float64 for the rows whose float32 squares
    overflow (values near 1e20 and above) or underflow (near 1e-20 and below), so those
    still come out as unit vectors. (Taking
    every norm in float64 copied the whole matrix: projecting 1M vectors took 4.6x a bare
    matmul instead of 1.6x in bench/test_speed.py.)
    """
    out = np.array(vectors, dtype=np.float32, copy=True, order="C")
    if out.ndim != 2:
        raise SmecError(f"expected a 2-D array of vectors, got shape {out.shape}")
    with np.errstate(over="ignore"):
        norms = np.sqrt(np.einsum("ij,ij->i", out, out)).astype(np.float64)[:, None]
    # float32 squares overflow near 1e20 and underflow (or lose their digits) near 1e-20:
    # those rows' norms again in float64, so they too come out as unit vectors
    wide = ~np.isfinite(norms[:, 0]) | (norms[:, 0] < TINY_NORM)
    if wide.any():
        norms[wide] = np.linalg.norm(out[wide].astype(np.float64), axis=1, keepdims=True)
    np.divide(out, norms, out=out, where=norms > 0, casting="unsafe")
    return out


def check_vectors(vectors: np.ndarray, dim: int, what: str = "vectors") -> np.ndarray:
    """float32, C-contiguous, 2-D, finite, of dim ``dim``: or a one-line error."""
    if hasattr(vectors, "detach") and hasattr(vectors, "cpu"):  # a torch tensor, grad or not
        if getattr(vectors, "is_complex", lambda: False)():
            raise SmecError(f"{what} are complex numbers; pass real (float) embeddings")
        vectors = _tensor_rows(vectors, what)  # numpy refuses one that requires grad
    try:
        complex_values = np.iscomplexobj(vectors)  # it makes an array of a list
    except (TypeError, ValueError):  # a ragged list of rows, say
        raise SmecError(f"{what} are not a numeric array (rows of unequal length?); pass an "
                        f"(n, {dim}) float array") from None  # fmt: skip
    if complex_values:  # numpy would drop the imaginary part with a warning
        raise SmecError(f"{what} are complex numbers; pass real (float) embeddings")
    if getattr(getattr(vectors, "dtype", None), "kind", "f") in "MmUSV":
        raise SmecError(f"{what} are {vectors.dtype} values, not a numeric array; pass "
                        "float embeddings")  # fmt: skip
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # beyond float32: inf, refused below
            array = np.ascontiguousarray(vectors, dtype=np.float32)
    except (TypeError, ValueError):
        raise SmecError(f"{what} are not a numeric array; pass an (n, {dim}) float array") from None
    if array.ndim == 1 and array.shape[0] == dim:  # one vector, not a row of a matrix
        raise SmecError(f"{what} of shape ({dim},) are one vector, not rows: pass an (n, "
                        f"{dim}) array, e.g. v.reshape(1, -1) for one")  # fmt: skip
    if array.ndim != 2 or array.shape[1] != dim:
        raise SmecError(
            f"{what} of shape {tuple(np.shape(vectors))} do not fit a {dim}-d collection; "
            f"project them to {dim} dims (or recreate the collection with --overwrite)"
        )
    if not np.isfinite(array).all():
        raise SmecError(
            f"{what} hold NaN or inf (or values beyond float32's range); clean them first"
        )
    if array.size and float(np.abs(array).max()) > 1e15:  # squares overflow float32: engines
        raise SmecError(f"{what} hold values beyond +-1e15, which engines cannot normalise "
                        "or score (their squares overflow float32); pass embeddings (unit "
                        "length, or near it)")  # fmt: skip
    return array


_CHUNK_ROWS = 65536


def as_rows(
    vectors: Any, dim: int, what: str = "vectors", needs: str | None = None
) -> tuple[np.ndarray, bool]:
    """One vector or rows of them, as float32 rows of ``dim`` that are all finite, and
    whether one vector was given: the check behind every public entry point that takes
    vectors (``Projection.project``, ``CompressedIndex.add`` and ``search``)."""
    if hasattr(vectors, "detach") and hasattr(vectors, "cpu"):  # a torch tensor, grad or not
        if getattr(vectors, "is_complex", lambda: False)():
            raise SmecError(f"{what} are complex numbers; pass real (float) embeddings")
        vectors = _tensor_rows(vectors, what)
    try:
        raw = np.asarray(vectors)
        if raw.dtype.kind in "MmUSV":  # dates, durations, text, records: not embeddings
            raise SmecError(f"{what} are {raw.dtype} values, not a numeric array; pass "
                            "float embeddings")  # fmt: skip
        if np.iscomplexobj(raw):
            raise SmecError(f"{what} are complex numbers; pass real (float) embeddings")
        with np.errstate(over="ignore", invalid="ignore"):  # beyond float32: inf, refused below
            array = raw.astype(np.float32, copy=False)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, SmecError):
            raise
        raise SmecError(f"{what} are not a numeric array; pass one {dim}-d float vector or "
                        f"(n, {dim}) rows") from None  # fmt: skip
    if array.ndim not in (1, 2) or array.shape[-1] != dim:
        needs = needs or f"pass one {dim}-d vector or (n, {dim}) rows of them"
        raise SmecError(f"{what} of shape {array.shape}: {needs}")
    one = array.ndim == 1
    array = np.ascontiguousarray(array.reshape(-1, dim))
    for start in range(0, len(array), _CHUNK_ROWS):  # a corpus: no array-sized temporaries
        chunk = array[start : start + _CHUNK_ROWS]
        if not np.isfinite(chunk).all():
            raise SmecError(f"{what} hold NaN or inf (or values beyond float32's range); "
                            "clean them first")  # fmt: skip
        if chunk.size and float(np.abs(chunk).max()) > 1e15:  # as data files: products overflow
            raise SmecError(f"{what} hold values beyond +-1e15, which overflow float32 once "
                            "projected; pass embeddings (unit length, or near it)")  # fmt: skip
    return array, one


def _tensor_rows(tensor: Any, what: str) -> np.ndarray:
    """A torch tensor's values as a float32 array: dense ones only, on any device."""
    if getattr(getattr(tensor, "device", None), "type", None) == "meta":
        raise SmecError(f"{what} are a meta tensor, which holds no values; pass a tensor "
                        "with data")  # fmt: skip
    if "strided" not in str(getattr(tensor, "layout", "strided")):
        raise SmecError(f"{what} are a {tensor.layout} tensor; pass a dense one "
                        "(tensor.to_dense())")  # fmt: skip
    try:
        return tensor.detach().cpu().float().numpy()
    except (TypeError, RuntimeError, NotImplementedError) as exc:
        raise SmecError(f"{what}: this tensor cannot be read as numbers ({exc}); pass a "
                        "dense float tensor or a numpy array") from None  # fmt: skip


def exact_search(corpus: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k rows of ``corpus`` by inner product, with ``faiss.IndexFlatIP``.

    Returns:
        (scores, row indices), each (n_queries, min(k, n_corpus)); pass normalised vectors
        for cosine.
    """
    import faiss

    index = faiss.IndexFlatIP(corpus.shape[1])
    index.add(np.ascontiguousarray(corpus, dtype=np.float32))
    return index.search(np.ascontiguousarray(queries, dtype=np.float32), min(k, corpus.shape[0]))
