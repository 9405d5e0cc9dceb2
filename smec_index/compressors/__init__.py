"""Compressors: SMEC and the baselines it is compared with, behind one interface."""

from smec_index.compressors.base import Compressor, LinearCompressor, load_compressor
from smec_index.compressors.registry import METHODS, compressor_class, make_compressor

__all__ = [
    "METHODS",
    "Compressor",
    "LinearCompressor",
    "compressor_class",
    "load_compressor",
    "make_compressor",
]
