"""Compressors by name, as the CLI and artifacts refer to them."""

from __future__ import annotations

from typing import Any

from smec_index.compressors.adapters import MatryoshkaAdaptor, SearchAdaptor
from smec_index.compressors.base import LinearCompressor
from smec_index.compressors.simple import PCA, Truncation
from smec_index.compressors.smec import SMEC, ParallelMRL
from smec_index.errors import SmecError

METHODS: dict[str, type[LinearCompressor]] = {
    cls.method: cls
    for cls in (Truncation, PCA, SearchAdaptor, MatryoshkaAdaptor, ParallelMRL, SMEC)
}
TRAINED = ("search-adaptor", "matryoshka-adaptor", "mrl", "smec")


def compressor_class(method: str) -> type[LinearCompressor]:
    try:
        return METHODS[method]
    except KeyError:
        raise SmecError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}") from None


def make_compressor(method: str, dims, **settings: Any) -> LinearCompressor:
    """A fresh compressor; ``settings`` are ignored by the training-free methods."""
    cls = compressor_class(method)
    if method in TRAINED:
        return cls(dims, **settings)
    return cls(dims, seed=settings.get("seed", 0))
