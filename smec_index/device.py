"""Where torch work runs: ``auto`` picks CUDA when a GPU is present, else the CPU."""

from __future__ import annotations

import torch

from smec_index.errors import SmecError


def resolve_device(name: str = "auto") -> torch.device:
    """Map ``auto|cpu|cuda`` to a torch device; asking for CUDA without one is an error.

    Called before any data is read (the CLI resolves ``--device`` first), so a missing GPU
    is reported at once rather than after loading, and never silently replaced by the CPU.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SmecError("CUDA requested but torch sees no GPU; use --device cpu or auto")
    if name not in ("cpu", "cuda"):
        raise SmecError(f"unknown device {name!r}; use auto, cpu or cuda")
    return torch.device(name)
