"""Losses of SMEC and of the adapter baselines, each an ``nn.Module`` with a visible config.

All similarities are cosines of L2-normalised vectors. Equation numbers refer to the SMEC
paper (arXiv 2510.12474).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class RankLoss(nn.Module):
    """Pairwise rank loss (SMEC eq. 8, from Search-Adaptor).

    For query i and candidates j, k with ``y_ij > y_ik``:
    ``(y_ij - y_ik) * log(1 + exp(scale * (s_ik - s_ij)))``, averaged over the weighted pairs
    (the paper sums; the mean keeps the learning rate independent of the batch size).

    Args:
        scale: multiplies cosine similarities before the softplus (an inverse temperature);
            cosines live in [-1, 1], so without it the loss barely separates pairs.
        margin: > 0 replaces the softplus by DIVE's self-limiting hinge,
            ``scale * max(0, margin - (s_ij - s_ik))``: a pair ranked right by ``margin``
            (in cosine) gives no gradient, so training stops moving the space for it.
    """

    def __init__(self, scale: float = 20.0, margin: float = 0.0) -> None:
        super().__init__()
        if scale <= 0:
            raise ValueError(f"scale must be positive, got {scale}")
        if margin < 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        self.scale, self.margin = scale, margin

    def get_config_dict(self) -> dict[str, float]:
        return {"scale": self.scale, "margin": self.margin}

    def forward(
        self, queries: torch.Tensor, docs: torch.Tensor, labels: torch.Tensor
    ) -> torch.Tensor:
        """
        Args:
            queries: (B, d) normalised query vectors.
            docs: (N, d) normalised candidate documents shared by the batch.
            labels: (B, N) graded relevance of each document for each query (0 = negative,
                -1 = leave this pair out: a judged document not drawn this step).
        """
        loss, weight = self.sums(queries, docs, labels)
        return loss / weight.clamp(min=1e-12)

    def sums(
        self, queries: torch.Tensor, docs: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The weighted loss sum and the weight sum, so that groups of queries can be added
        up exactly as one batch would be."""
        scores = self.scale * queries @ docs.T  # (B, N)
        # Only pairs whose better member is relevant contribute; bound j to the top labels.
        top = min(labels.shape[1], int((labels > 0).sum(dim=1).max().item()) or 1)
        pos_labels, pos_index = labels.topk(top, dim=1)  # (B, P)
        pos_scores = scores.gather(1, pos_index)
        others = labels.clamp(min=0)[:, None, :]
        weight = (pos_labels[:, :, None] - others).clamp(min=0)  # (B, P, N)
        weight = weight * (labels >= 0)[:, None, :]
        gap = scores[:, None, :] - pos_scores[:, :, None]
        pair_loss = F.relu(gap + self.scale * self.margin) if self.margin else F.softplus(gap)
        return (weight * pair_loss).sum(), weight.sum()


class SimilarityPreservationLoss(nn.Module):
    """Unsupervised loss (SMEC eq. 7; Matryoshka-Adaptor's top-k / pairwise loss).

    ``mean |Sim(e_i, e_j) - Sim(f(e_i), f(e_j))|`` over given pairs (i, j): the compressed
    space should keep the original similarities of close neighbours.
    """

    def get_config_dict(self) -> dict[str, float]:
        return {}

    def forward(
        self,
        original_anchor: torch.Tensor,
        original_neighbours: torch.Tensor,
        compressed_anchor: torch.Tensor,
        compressed_neighbours: torch.Tensor,
    ) -> torch.Tensor:
        """
        Args:
            original_anchor: (B, D) normalised original vectors.
            original_neighbours: (B, K, D) their neighbours, normalised.
            compressed_anchor: (B, d) normalised compressed anchors.
            compressed_neighbours: (B, K, d) normalised compressed neighbours.
        """
        target = torch.einsum("bd,bkd->bk", original_anchor, original_neighbours)
        got = torch.einsum("bd,bkd->bk", compressed_anchor, compressed_neighbours)
        return (target - got).abs().mean()


class PairwiseSimilarityLoss(nn.Module):
    """Matryoshka-Adaptor's pairwise loss: similarity preservation over all in-batch pairs."""

    def get_config_dict(self) -> dict[str, float]:
        return {}

    def forward(self, original: torch.Tensor, compressed: torch.Tensor) -> torch.Tensor:
        """Both inputs (B, *) normalised; compares the two B x B cosine matrices."""
        return (original @ original.T - compressed @ compressed.T).abs().mean()


class ReconstructionLoss(nn.Module):
    """L1 distance between the adapted and the original embedding (adapter regulariser).

    Search-Adaptor and Matryoshka-Adaptor both keep the adapter close to the identity so it
    cannot forget what the frozen model knew.
    """

    def get_config_dict(self) -> dict[str, float]:
        return {}

    def forward(self, adapted: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
        return (adapted - original).abs().mean()
