"""Compressors by name, as the CLI and artifacts refer to them."""

from __future__ import annotations

from typing import Any

from smec_index.compressors.adapters import MatryoshkaAdaptor, SearchAdaptor
from smec_index.compressors.base import LinearCompressor
from smec_index.compressors.dive import DIVE
from smec_index.compressors.simple import PCA, Truncation
from smec_index.compressors.smec import SMEC, ParallelMRL
from smec_index.errors import SmecError, brief
from smec_index.training.config import TrainConfig, check_setting_names

METHODS: dict[str, type[LinearCompressor]] = {
    cls.method: cls
    for cls in (Truncation, PCA, SearchAdaptor, MatryoshkaAdaptor, ParallelMRL, DIVE, SMEC)
}
TRAINED = ("search-adaptor", "matryoshka-adaptor", "mrl", "dive", "smec")


def compressor_class(method: str) -> type[LinearCompressor]:
    try:
        return METHODS[method]
    except (KeyError, TypeError):  # TypeError: a list or another unhashable value
        known = ", ".join(METHODS)
        raise SmecError(f"unknown method {brief(method, 40)}; choose one of {known}") from None


def make_compressor(method: str, dims, **settings: Any) -> LinearCompressor:
    """A fresh compressor, its ``settings`` checked before any data is read.

    Every name must be a setting of some method (a typo is an error naming the closest one,
    never a silent default), and every value must be valid. The training-free methods accept
    and then ignore the training settings, so one loop can build every method with the same
    keyword arguments.
    """
    cls = compressor_class(method)
    if method in TRAINED:
        return cls(dims, **settings)
    check_setting_names(
        settings, (*TrainConfig.names(), "progress", "reconstruction"), f"{method} setting"
    )
    training = {k: v for k, v in settings.items() if k in TrainConfig.names()}
    config = TrainConfig.from_dict(training)  # a bad value is an error even where ignored
    return cls(dims, seed=config.seed)
