"""The training loop shared by SMEC, parallel MRL and the adapter baselines.

A *group* is a set of stages trained together while every other stage is frozen:

* SMRL (sequential): one group per stage, ``[[d1], [d2], ...]``. Stage t's losses use only
  its input dim d(t-1) (the adapted input) and its output d(t), never the lower dims
  (SMEC section 3.2); when it stops improving on held-out data it is frozen.
* Parallel (MRL, Matryoshka-Adaptor): one group with every stage, losses at every dim.

Frozen stage outputs are computed once per group and cached for every row, so a sequential
stage costs no more per step than a single linear layer.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from smec_index.training.chain import Stage, StageTree
from smec_index.training.config import TrainConfig
from smec_index.training.examples import QuerySet, TrainingTable
from smec_index.training.losses import (
    PairwiseSimilarityLoss,
    RankLoss,
    ReconstructionLoss,
    SimilarityPreservationLoss,
)
from smec_index.training.memory import CrossBatchMemory, nearest_keys
from smec_index.training.selection import AdaptiveDimensionSelector


@dataclass
class Objective:
    """Weights of the loss terms; SMEC is ``rank + alpha * neighbours`` with S-XBM.

    Attributes:
        rank: rank loss (eq. 8) on queries vs judged docs, hard and in-batch negatives.
        neighbours: similarity preservation with each sample's top-K neighbours (eq. 7).
        pairs: similarity preservation over all in-batch pairs (Matryoshka-Adaptor).
        reconstruction: L1 between adapted and input vectors (adapter baselines).
        memory: take neighbours from the S-XBM queue (False: from the batch).
        include_input_dim: also put the loss on each group-entry stage's adapted input.
    """

    rank: float = 1.0
    neighbours: float = 1.0
    pairs: float = 0.0
    reconstruction: float = 0.0
    memory: bool = True
    include_input_dim: bool = True


class Encoder:
    """Runs a group of trainable stages on table rows, frozen parents served from a cache."""

    def __init__(self, tree: StageTree, group: list[int], table: torch.Tensor) -> None:
        self.tree = tree
        self.group = sorted(group, reverse=True)
        self.cache: dict[int, torch.Tensor] = {}
        with torch.no_grad():
            for dim in self.group:
                parent = tree.parents[dim]
                if parent not in self.group and parent not in self.cache:
                    matrix = (
                        torch.from_numpy(tree.projection(parent))
                        if parent != tree.input_dim
                        else None
                    )
                    self.cache[parent] = (
                        table if matrix is None else table @ matrix.to(table.device)
                    )

    def entry_dims(self) -> list[int]:
        return [d for d in self.group if self.tree.parents[d] not in self.group]

    def __call__(
        self, rows: torch.Tensor, include_input_dim: bool
    ) -> tuple[dict[int, torch.Tensor], list[tuple[torch.Tensor, torch.Tensor]]]:
        """Normalised representations at each loss dim, and (adapted, input) pairs."""
        outputs: dict[int, torch.Tensor] = {}
        reps: dict[int, torch.Tensor] = {}
        adapted: list[tuple[torch.Tensor, torch.Tensor]] = []
        for dim in self.group:
            parent = self.tree.parents[dim]
            x = self.cache[parent][rows] if parent in self.cache else outputs[parent]
            stage: Stage = self.tree.stage(dim)
            h, masked, y = stage(x)
            outputs[dim] = y
            if stage.adapter is not None:
                adapted.append((h, x))
            if include_input_dim and parent in self.cache:
                reps[parent] = torch.nn.functional.normalize(h, dim=1)
            reps[dim] = torch.nn.functional.normalize(masked, dim=1)
        return reps, adapted


class Trainer:
    """Trains groups of stages of a :class:`StageTree` on a :class:`TrainingTable`."""

    def __init__(
        self,
        tree: StageTree,
        table: TrainingTable,
        config: TrainConfig,
        objective: Objective,
        device: torch.device,
        progress: bool = True,
    ) -> None:
        self.tree = tree.to(device)
        self.table = table
        self.vectors = table.vectors.to(device)
        self.config = config
        self.objective = objective
        self.device = device
        self.progress = progress
        self.rank_loss = RankLoss(config.scale)
        self.neighbour_loss = SimilarityPreservationLoss()
        self.pair_loss = PairwiseSimilarityLoss()
        self.reconstruction_loss = ReconstructionLoss()
        self.memory = CrossBatchMemory(config.memory_size, table.dim, device)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.history: list[dict[str, Any]] = []
        if config.supervised and table.train is None:
            raise ValueError("supervised training needs judged queries")
        self._val_neighbours: torch.Tensor | None = None

    # -- losses -----------------------------------------------------------------------------
    def _neighbour_terms(
        self, encoder: Encoder, anchor_rows: torch.Tensor, pool_rows: torch.Tensor, reps_anchor
    ) -> dict[int, torch.Tensor]:
        anchors = self.vectors[anchor_rows]
        if self.objective.memory:
            keys = self.memory.neighbours(anchors, anchor_rows, self.config.neighbours)
        else:
            keys = nearest_keys(
                anchors, anchor_rows, self.vectors[pool_rows], pool_rows, self.config.neighbours
            )
        if keys.shape[1] == 0:
            return {}
        reps_neigh, _ = encoder(keys.flatten(), self.objective.include_input_dim)
        original_neigh = self.vectors[keys]
        b, k = keys.shape
        return {
            d: self.neighbour_loss(
                anchors, original_neigh, reps_anchor[d], reps_neigh[d].view(b, k, -1)
            )
            for d in reps_anchor
        }

    def _batch_loss(self, encoder: Encoder, batch: torch.Tensor) -> torch.Tensor:
        """Loss of one step; ``batch`` indexes train queries (or train docs, unsupervised)."""
        objective = self.objective
        total = torch.zeros((), device=self.device)
        if self.config.supervised:
            assert self.table.train is not None
            q_rows, d_rows, labels = self.table.train.batch(
                batch, self.config.max_positives, self.generator
            )
            q_rows, d_rows, labels = (
                q_rows.to(self.device),
                d_rows.to(self.device),
                labels.to(self.device),
            )
            reps_q, adapted_q = encoder(q_rows, objective.include_input_dim)
            reps_d, adapted_d = encoder(d_rows, objective.include_input_dim)
            if objective.rank:
                for d in reps_q:
                    total = total + objective.rank * self.rank_loss(reps_q[d], reps_d[d], labels)
            positives = d_rows[(labels > 0).any(dim=0)]
            anchor_rows = torch.cat([q_rows, positives])
            pool_rows = torch.cat([q_rows, d_rows])
            adapted = adapted_q + adapted_d
        else:
            anchor_rows = pool_rows = self.table.train_docs[batch].to(self.device)
            reps_q = None
            adapted = []
        if objective.memory:
            # Enqueue first: the queue then always holds at least this batch (own keys excluded).
            self.memory.enqueue(self.vectors[pool_rows], pool_rows)
        if objective.neighbours or objective.pairs or (objective.reconstruction and not adapted):
            reps_anchor, adapted_anchor = encoder(anchor_rows, objective.include_input_dim)
            if not adapted:
                adapted = adapted_anchor
            if objective.neighbours:
                for term in self._neighbour_terms(
                    encoder, anchor_rows, pool_rows, reps_anchor
                ).values():
                    total = total + objective.neighbours * term
            if objective.pairs:
                original = self.vectors[anchor_rows]
                for rep in reps_anchor.values():
                    total = total + objective.pairs * self.pair_loss(original, rep)
        if objective.reconstruction:
            for h, x in adapted:
                total = total + objective.reconstruction * self.reconstruction_loss(h, x)
        return total

    @torch.no_grad()
    def validation_loss(self, encoder: Encoder) -> float:
        """Held-out loss at the group's output dims (deterministic ADS selection)."""
        self.tree.eval()
        try:
            if self.config.supervised:
                val: QuerySet = self.table.val  # type: ignore[assignment]
                cap = self.config.max_positives
                loss: dict[int, float] = {}
                weight: dict[int, float] = {}
                for group in val.chunks(cap):  # bounded memory; one group when it fits
                    q_rows, d_rows, labels = val.batch(group, cap)
                    reps_q, _ = encoder(q_rows.to(self.device), False)
                    reps_d, _ = encoder(d_rows.to(self.device), False)
                    labels = labels.to(self.device)
                    for d in reps_q:
                        part, w = self.rank_loss.sums(reps_q[d], reps_d[d], labels)
                        loss[d] = loss.get(d, 0.0) + float(part)
                        weight[d] = weight.get(d, 0.0) + float(w)
                return float(sum(loss[d] / max(weight[d], 1e-12) for d in loss))
            rows = self.table.val_docs.to(self.device)
            if self._val_neighbours is None:
                corpus_rows = torch.arange(self.table.n_corpus, device=self.device)
                self._val_neighbours = nearest_keys(
                    self.vectors[rows],
                    rows,
                    self.vectors[corpus_rows],
                    corpus_rows,
                    self.config.neighbours,
                )
            keys = self._val_neighbours
            reps_a, _ = encoder(rows, False)
            reps_n, _ = encoder(keys.flatten(), False)
            b, k = keys.shape
            return float(
                sum(
                    self.neighbour_loss(
                        self.vectors[rows], self.vectors[keys], reps_a[d], reps_n[d].view(b, k, -1)
                    )
                    for d in reps_a
                )
            )
        finally:
            self.tree.train()

    # -- the loop ----------------------------------------------------------------------------
    def train_group(self, group: list[int]) -> list[dict[str, Any]]:
        """Train the stages ``group`` until the held-out loss stops improving, then freeze them."""
        config = self.config
        stages = [self.tree.stage(d) for d in group]
        for stage in self.tree.stages.values():
            stage.requires_grad_(False)
        adapter_params, logit_params = [], []
        for stage in stages:
            stage.requires_grad_(True)
            if stage.adapter is not None:
                adapter_params.append(stage.adapter.weight)
            if isinstance(stage.selector, AdaptiveDimensionSelector):
                logit_params.append(stage.selector.logits)
        groups = []
        if adapter_params:
            groups.append(
                {"params": adapter_params, "lr": config.lr, "weight_decay": config.weight_decay}
            )
        if logit_params:
            groups.append({"params": logit_params, "lr": config.logits_lr, "weight_decay": 0.0})
        if not groups:
            return []
        optimizer = torch.optim.Adam(groups)
        encoder = Encoder(self.tree, group, self.vectors)
        # Gradient statistics are read off the group's first trainable tensor (Figure 6a).
        watched = (adapter_params or logit_params)[0]
        n_items = len(self.table.train) if config.supervised else len(self.table.train_docs)
        batch_size = config.batch_size if config.supervised else config.batch_size * 8
        best, best_state, bad_epochs, records = float("inf"), None, 0, []
        label = ",".join(str(d) for d in sorted(group, reverse=True))
        bar = tqdm(
            range(config.max_epochs), desc=f"stage {label}", disable=not self.progress, leave=False
        )
        for epoch in bar:
            started = time.perf_counter()
            for stage in stages:
                stage.selector.tau = config.tau(epoch)
            order = torch.randperm(n_items, generator=self.generator)
            grad_sum = torch.zeros_like(watched)
            grad_sq = torch.zeros_like(watched)
            losses, steps = [], 0
            for start in range(0, n_items - 1, batch_size):
                batch = order[start : start + batch_size]
                if len(batch) < 2:
                    continue
                loss = self._batch_loss(encoder, batch)
                if not loss.requires_grad:
                    continue
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if watched.grad is not None:
                    grad_sum += watched.grad
                    grad_sq += watched.grad**2
                losses.append(loss.item())
                steps += 1
            mean = grad_sum / max(steps, 1)
            variance = float((grad_sq / max(steps, 1) - mean**2).clamp(min=0).mean())
            val = self.validation_loss(encoder)
            record = {
                "stage": label,
                "epoch": epoch,
                "train_loss": float(np.mean(losses)) if losses else float("nan"),
                "val_loss": val,
                "grad_variance": variance,
                "grad_mean_abs": float(mean.abs().mean()),
                "tau": stages[0].selector.tau,
                "seconds": time.perf_counter() - started,
            }
            records.append(record)
            bar.set_postfix(train=f"{record['train_loss']:.4f}", val=f"{val:.4f}")
            if val < best - 1e-5:
                best, bad_epochs = val, 0
                best_state = copy.deepcopy([s.state_dict() for s in stages])
            else:
                bad_epochs += 1
                if bad_epochs >= config.patience:
                    break
        if best_state is not None:
            for stage, state in zip(stages, best_state, strict=True):
                stage.load_state_dict(state)
        for stage in stages:
            stage.requires_grad_(False)
        self.history.extend(records)
        return records
