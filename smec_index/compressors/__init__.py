"""Compressors: SMEC and the baselines it is compared with, behind one interface.

The registry (and with it torch) loads on first use of ``METHODS``, ``compressor_class`` or
``make_compressor``, so applying a saved projection (:func:`load_projection`) needs numpy
alone.
"""

from __future__ import annotations

from typing import Any

from smec_index.compressors.base import (
    Compressor,
    LinearCompressor,
    load_compressor,
    load_projection,
)

_REGISTRY = ("METHODS", "compressor_class", "make_compressor")


def __getattr__(name: str) -> Any:
    if name in _REGISTRY:
        from smec_index.compressors import registry

        return getattr(registry, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "METHODS",
    "Compressor",
    "LinearCompressor",
    "compressor_class",
    "load_compressor",
    "load_projection",
    "make_compressor",
]
