"""S-XBM: the selectable cross-batch memory of SMEC (paper section 3.4).

A FIFO queue of *frozen-backbone* embeddings (the original D-dim vectors, never the trained
output, so stored features cannot drift as the adapter changes). For each sample of a batch
only its top-K most similar entries are retrieved and enter the unsupervised loss, instead of
every in-batch pair (Matryoshka-Adaptor) or the whole queue (XBM).
"""

from __future__ import annotations

import torch


class CrossBatchMemory:
    """A fixed-size FIFO queue of original embeddings with their keys.

    Args:
        size: queue capacity (paper Table 3: 5000 balances quality and speed).
        dim: embedding dimension D.
        device: where the queue lives.
    """

    def __init__(self, size: int, dim: int, device: torch.device | str = "cpu") -> None:
        if size <= 0:
            raise ValueError(f"memory size must be positive, got {size}")
        self.size = size
        self.features = torch.zeros(size, dim, device=device)
        # Keys identify entries so a sample never retrieves itself; -1 marks empty slots.
        self.keys = torch.full((size,), -1, dtype=torch.long, device=device)
        self._head = 0
        self._filled = 0

    def __len__(self) -> int:
        return self._filled

    def enqueue(self, features: torch.Tensor, keys: torch.Tensor) -> None:
        """Add normalised original embeddings, overwriting the oldest entries.

        Keys already in the queue are skipped: each entry is stored once, so a sample is
        never its own neighbour through a second copy and no neighbour counts twice.
        """
        fresh = ~torch.isin(keys, self.keys)  # empty slots hold -1, never a real key
        features, keys = features.detach()[fresh][-self.size :], keys[fresh][-self.size :]
        n = features.shape[0]
        slots = (torch.arange(n, device=self.keys.device) + self._head) % self.size
        self.features[slots] = features
        self.keys[slots] = keys
        self._head = (self._head + n) % self.size
        self._filled = min(self.size, self._filled + n)

    def neighbours(self, anchors: torch.Tensor, anchor_keys: torch.Tensor, k: int) -> torch.Tensor:
        """Keys (B, k') of each anchor's k most similar stored entries, itself excluded."""
        filled = self._filled
        return nearest_keys(anchors, anchor_keys, self.features[:filled], self.keys[:filled], k)


def nearest_keys(
    anchors: torch.Tensor,
    anchor_keys: torch.Tensor,
    pool: torch.Tensor,
    pool_keys: torch.Tensor,
    k: int,
) -> torch.Tensor:
    """Keys (B, k') of each anchor's k most similar pool entries, never its own key.

    ``k' = min(k, len(pool) - 1)``. With the batch itself as the pool this is the in-batch
    top-k selection that S-XBM replaces (Matryoshka-Adaptor, the S-XBM-off ablation).
    """
    k = min(k, pool.shape[0] - 1)
    if k < 1:
        return torch.empty(anchors.shape[0], 0, dtype=torch.long, device=anchors.device)
    sims = anchors.detach() @ pool.T
    sims = sims.masked_fill(anchor_keys[:, None] == pool_keys[None, :], float("-inf"))
    return pool_keys[sims.topk(k, dim=1).indices]
