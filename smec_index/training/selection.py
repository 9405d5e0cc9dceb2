"""Choosing which d of D dimensions to keep: ADS (SMEC section 3.3) or plain truncation.

During training a selector returns a *mask* over its input dims (1 = kept) so losses can be
computed on ``h * mask``, whose cosines equal those of the kept coordinates. At inference it
returns the kept indices, and the stage exports a column selection.
"""

from __future__ import annotations

import torch
from torch import nn


class TruncationSelector(nn.Module):
    """Keep the first ``out_dim`` dims (MRL): nothing to learn."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        if not 0 < out_dim <= in_dim:
            raise ValueError(f"cannot keep {out_dim} of {in_dim} dims")
        self.in_dim, self.out_dim = in_dim, out_dim
        self.tau = 1.0  # unused; keeps one interface with ADS

    def mask(self) -> torch.Tensor:
        mask = torch.zeros(self.in_dim)
        mask[: self.out_dim] = 1.0
        return mask

    def indices(self) -> torch.Tensor:
        return torch.arange(self.out_dim)


class AdaptiveDimensionSelector(nn.Module):
    """ADS: learnable importance logits ``z_hat`` over the input dims.

    Training (eq. 6): ``z = softmax((z_hat + G) / tau)`` with ``G ~ Gumbel(0, 1)``; the
    forward mask is the hard top-``out_dim`` of ``z`` and gradients flow through the soft
    probabilities (straight-through). Inference: deterministic top-``out_dim`` of ``z_hat``.
    ``tau`` is annealed by the trainer; a ``tau`` that stays high never commits.

    Args:
        in_dim: dims entering the stage.
        out_dim: dims kept.
        init_logits: optional starting importance, e.g. each dim's standard deviation, so
            selection starts from an informed guess rather than at random.
    """

    def __init__(self, in_dim: int, out_dim: int, init_logits: torch.Tensor | None = None) -> None:
        super().__init__()
        if not 0 < out_dim <= in_dim:
            raise ValueError(f"cannot keep {out_dim} of {in_dim} dims")
        self.in_dim, self.out_dim = in_dim, out_dim
        start = torch.zeros(in_dim) if init_logits is None else init_logits.detach().clone()
        if start.shape != (in_dim,):
            raise ValueError(f"init_logits must have shape ({in_dim},), got {tuple(start.shape)}")
        self.logits = nn.Parameter(start.float())
        self.tau = 1.0
        # Spread of informed initial logits in units of Gumbel noise (see Stage.init_pca).
        self.init_scale = 4.0

    def mask(self) -> torch.Tensor:
        if not self.training:
            hard = torch.zeros_like(self.logits)
            return hard.scatter(0, self.indices(), 1.0)
        uniform = torch.rand_like(self.logits).clamp_(1e-9, 1 - 1e-9)
        gumbel = -torch.log(-torch.log(uniform))
        probs = torch.softmax((self.logits + gumbel) / self.tau, dim=0)
        hard = torch.zeros_like(probs).scatter(0, probs.topk(self.out_dim).indices, 1.0)
        soft = probs * self.out_dim
        return hard + soft - soft.detach()

    def indices(self) -> torch.Tensor:
        return self.logits.detach().topk(self.out_dim).indices.sort().values


def achievement_rate(selected: list[int], importance: torch.Tensor) -> float:
    """Share of ``selected`` dims among the top-``len(selected)`` dims by importance.

    The check of SMEC section 5.4 (Table 2), with importance from :func:`ware_importance`.
    """
    top = set(importance.topk(len(selected)).indices.tolist())
    return len(top.intersection(selected)) / len(selected)


def ware_importance(vectors: torch.Tensor, pairs: int = 10000, seed: int = 0) -> torch.Tensor:
    """Per-dimension importance by WARE (SMEC eq. 10, Yu et al. 2018).

    For random pairs (a, b), the relative change of their cosine when one dimension is
    removed, averaged over pairs: a larger change means a more important dimension.
    """
    generator = torch.Generator().manual_seed(seed)
    n = vectors.shape[0]
    a = vectors[torch.randint(n, (pairs,), generator=generator)]
    b = vectors[torch.randint(n, (pairs,), generator=generator)]
    dot = (a * b).sum(1, keepdim=True)
    na, nb = (a * a).sum(1, keepdim=True), (b * b).sum(1, keepdim=True)
    full = dot / (na * nb).sqrt()
    # Cosine with dimension i removed, for every i at once.
    pruned = (dot - a * b) / ((na - a * a) * (nb - b * b)).clamp(min=1e-12).sqrt()
    return ((pruned - full).abs() / full.abs().clamp(min=1e-6)).mean(0)
