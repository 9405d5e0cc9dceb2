"""A tree of compression stages, each one transition ``parent_dim -> dim``.

A stage is a residual linear adapter on its input (``h = x + x W^T``, W initialised to zero,
so training starts at the identity) followed by a selector that keeps ``dim`` of the
``parent_dim`` coordinates (ADS or truncation). Stages form a chain ``D -> d1 -> d2 ...``;
continued training may also hang a new stage off any existing dim (a tree).

Everything is linear, so each target dim exports as one matrix ``P_d = P_parent @ M_d`` with
``M_d = (I + W^T)[:, kept]``: applying a trained artifact costs one matrix product.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from smec_index.training.selection import AdaptiveDimensionSelector, TruncationSelector


class Stage(nn.Module):
    """One transition ``parent_dim -> dim``.

    Args:
        parent_dim: dims entering (the original D or an earlier stage's dim).
        dim: dims kept.
        adapter: learn a residual linear map before selecting (False: selection only).
        ads: learn which dims to keep (False: the first ``dim``).
    """

    def __init__(self, parent_dim: int, dim: int, adapter: bool = True, ads: bool = True) -> None:
        super().__init__()
        self.parent_dim, self.dim = parent_dim, dim
        self.adapter = nn.Linear(parent_dim, parent_dim, bias=False) if adapter else None
        if self.adapter is not None:
            nn.init.zeros_(self.adapter.weight)
        selector = AdaptiveDimensionSelector if ads else TruncationSelector
        self.selector = selector(parent_dim, dim)

    def adapt(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.adapter is None else x + self.adapter(x)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``(h, masked, y)``.

        ``h`` is the adapted input (parent_dim); ``masked = h * mask`` keeps every parent
        coordinate, zero where not selected, and is what losses see: its cosines equal those
        of the kept coordinates, but the straight-through gradient reaches the logit of
        *every* dim (``dL/dmask_i = dL/dmasked_i * h_i``), so ADS learns what an unselected
        dim would have added, not only what the kept ones do. ``y`` are the kept coordinates
        (dim), the input of a child stage.
        """
        h = self.adapt(x)
        mask = self.selector.mask().to(h.device)
        masked = h * mask
        kept = mask.detach().nonzero().squeeze(1)
        return h, masked, masked.index_select(1, kept)

    @torch.no_grad()
    def init_pca(self, inputs: torch.Tensor) -> None:
        """Start from the principal axes of ``inputs`` instead of the identity.

        The adapter becomes the PCA rotation (``I + W^T = V``, components by decreasing
        variance), and ADS logits start at the standardised log-variance of each component,
        so selection starts from PCA's choice and training moves away from it only where the
        losses say so.
        """
        centred = inputs - inputs.mean(dim=0)
        covariance = centred.T @ centred / max(inputs.shape[0] - 1, 1)
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance.double())
        order = eigenvalues.argsort(descending=True)
        rotation = eigenvectors[:, order].float()
        if self.adapter is not None:
            self.adapter.weight.copy_(rotation.T - torch.eye(self.parent_dim))
        if isinstance(self.selector, AdaptiveDimensionSelector):
            log_var = eigenvalues[order].clamp(min=1e-12).log().float()
            standard = (log_var - log_var.mean()) / log_var.std().clamp(min=1e-6)
            self.selector.logits.copy_(self.selector.init_scale * standard)

    @torch.no_grad()
    def init_importance(self, inputs: torch.Tensor) -> None:
        """Identity start for the adapter, ADS logits at each raw dim's standardised
        log-variance (truncation has nothing to initialise)."""
        if isinstance(self.selector, AdaptiveDimensionSelector):
            log_var = inputs.var(dim=0).clamp(min=1e-12).log()
            standard = (log_var - log_var.mean()) / log_var.std().clamp(min=1e-6)
            self.selector.logits.copy_(self.selector.init_scale * standard)

    def matrix(self) -> np.ndarray:
        """``parent_dim x dim`` matrix of this stage at inference."""
        with torch.no_grad():
            full = torch.eye(self.parent_dim)
            if self.adapter is not None:
                full = full + self.adapter.weight.detach().cpu().T
            return full[:, self.selector.indices().cpu()].numpy().astype(np.float32)


class StageTree(nn.Module):
    """Stages keyed by their output dim; ``parents[dim]`` is the dim each one starts from."""

    def __init__(self, input_dim: int) -> None:
        super().__init__()
        self.input_dim = input_dim
        self.stages = nn.ModuleDict()
        self.parents: dict[int, int] = {}

    @property
    def dims(self) -> list[int]:
        return sorted(self.parents, reverse=True)

    def add(self, stage: Stage) -> Stage:
        if stage.parent_dim != self.input_dim and stage.parent_dim not in self.parents:
            raise ValueError(f"no dim {stage.parent_dim} to hang a stage off")
        self.stages[str(stage.dim)] = stage
        self.parents[stage.dim] = stage.parent_dim
        return stage

    def stage(self, dim: int) -> Stage:
        return self.stages[str(dim)]  # type: ignore[return-value]

    def path(self, dim: int) -> list[Stage]:
        """Stages from the input down to ``dim``, in order."""
        path = []
        while dim != self.input_dim:
            path.append(self.stage(dim))
            dim = self.parents[dim]
        return path[::-1]

    @torch.no_grad()
    def initialise(self, corpus: torch.Tensor, dims: list[int], how: str) -> None:
        """Initialise the stages ``dims`` (and no other) on their parents' current output.

        ``how`` is ``pca`` (:meth:`Stage.init_pca`) or ``identity``
        (:meth:`Stage.init_importance`). Stages are visited from the largest dim down, so a
        new stage below another new one sees its parent's initialised projection. Stages
        not listed (frozen ones, when an artifact is extended) are left exactly as they are.
        """
        for dim in sorted(dims, reverse=True):
            parent = self.parents[dim]
            inputs = corpus
            if parent != self.input_dim:
                inputs = corpus @ torch.from_numpy(self.projection(parent))
            stage = self.stage(dim)
            stage.init_pca(inputs) if how == "pca" else stage.init_importance(inputs)

    def projection(self, dim: int) -> np.ndarray:
        """``input_dim x dim`` matrix for ``dim`` (product of its path's stage matrices)."""
        out = np.eye(self.input_dim, dtype=np.float32)
        for stage in self.path(dim):
            out = out @ stage.matrix()
        return out

    # -- persistence of the trainable parts (for continued training) ----------------------
    def state_tensors(self) -> dict[str, np.ndarray]:
        tensors = {}
        for dim in self.dims:
            stage = self.stage(dim)
            if stage.adapter is not None:
                tensors[f"stage.{dim}.adapter"] = stage.adapter.weight.detach().cpu().numpy()
            if isinstance(stage.selector, AdaptiveDimensionSelector):
                tensors[f"stage.{dim}.logits"] = stage.selector.logits.detach().cpu().numpy()
        return tensors

    @classmethod
    def from_state(
        cls, input_dim: int, parents: dict[int, int], tensors: dict[str, np.ndarray]
    ) -> StageTree:
        tree = cls(input_dim)
        for dim in sorted(parents, reverse=True):
            adapter_key, logits_key = f"stage.{dim}.adapter", f"stage.{dim}.logits"
            stage = Stage(
                parents[dim], dim, adapter=adapter_key in tensors, ads=logits_key in tensors
            )
            if stage.adapter is not None:
                stage.adapter.weight.data = torch.from_numpy(np.array(tensors[adapter_key]))
            if logits_key in tensors:
                stage.selector.logits.data = torch.from_numpy(np.array(tensors[logits_key]))
            tree.add(stage)
        return tree
