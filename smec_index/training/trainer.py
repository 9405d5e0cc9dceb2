"""The training loop shared by SMEC, parallel MRL and the adapter baselines.

A *group* is a set of stages trained together while every other stage is frozen:

* SMRL (sequential): one group per stage, ``[[d1], [d2], ...]``. Stage t's losses use only
  its input dim d(t-1) (the adapted input) and its output d(t), never the lower dims
  (SMEC section 3.2); when it stops improving on held-out data it is frozen.
* Parallel (MRL, Matryoshka-Adaptor): one group with every stage, losses at every dim.

Each group is initialised when its turn comes (on its parent's trained projection), its
hard negatives are mined in its parent's space, it trains until its held-out retrieval score
stops improving, and then (``refit``) trains again from the same start on all of train for
the epoch count that scored best.

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
from smec_index.training.examples import QuerySet, TrainingTable, ndcg_at_10
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
        init: str = "pca",
    ) -> None:
        self.tree = tree.to(device)
        self.init = init
        self.table = table
        self.vectors = table.vectors.to(device)
        self.config = config
        self.objective = objective
        self.device = device
        self.progress = progress
        self.rank_loss = RankLoss(config.scale, config.rank_margin)
        self.neighbour_loss = SimilarityPreservationLoss()
        self.pair_loss = PairwiseSimilarityLoss()
        self.reconstruction_loss = ReconstructionLoss()
        # The queue's keys are the table's rows, each held once: it never holds more entries
        # than rows, so a longer queue is the same queue (and --memory-size 2e9 allocates
        # nothing it cannot use).
        rows = int(table.vectors.shape[0])
        self.memory = CrossBatchMemory(max(2, min(config.memory_size, rows)), table.dim, device)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.history: list[dict[str, Any]] = []
        # Held-out score of each trained dim at its chosen epoch (what PCA must beat).
        self.scores: dict[int, float] = {}
        self.chosen_epochs: dict[tuple[int, ...], int] = {}
        # "own" or "in-batch"; with negatives="auto", set by the first group trained.
        self.negatives: str | None = None if config.negatives == "auto" else config.negatives
        self.negatives_scores: dict[str, float] = {}
        if config.supervised and (table.train is None or table.val is None):
            raise ValueError("supervised training needs judged queries")
        self.metric = "ndcg@10" if config.supervised else "recall@10"
        self._items: QuerySet | torch.Tensor = (
            table.train if config.supervised else table.train_docs
        )
        self._val_neighbours: torch.Tensor | None = None
        self._starts: list[tuple[torch.Tensor, torch.Tensor]] = []

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
        if isinstance(self._items, QuerySet):
            q_rows, d_rows, labels = self._items.batch(
                batch, self.config.max_positives, self.generator, self.negatives == "in-batch"
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
            if self.config.corpus_anchors:  # at most the corpus's size, however many asked
                size = min(self.config.corpus_anchors, self.table.n_corpus)
                drawn = torch.randint(self.table.n_corpus, (size,), generator=self.generator)
                drawn = drawn.to(self.device)
                anchor_rows = torch.cat([anchor_rows, drawn])
                pool_rows = torch.cat([pool_rows, drawn])
            adapted = adapted_q + adapted_d
        else:
            anchor_rows = pool_rows = self._items[batch].to(self.device)
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
        if self.config.proximal:
            for weight, start in self._starts:
                total = total + self.config.proximal * (weight - start).pow(2).sum()
        return total

    # -- held-out selection -----------------------------------------------------------------
    @torch.no_grad()
    def validation_scores(self, encode) -> dict[int, float]:
        """Held-out retrieval score per dim of ``encode(rows) -> {dim: normalised reps}``.

        Supervised: nDCG@10 of the held-out judged queries. Unsupervised: recall@10, against
        the original space's 10 nearest documents, of up to ``VAL_ANCHORS`` held-out
        documents searched in the compressed corpus (themselves excluded). Exact search.
        """
        corpus_rows = torch.arange(self.table.n_corpus, device=self.device)
        corpus = _encode_in_chunks(encode, corpus_rows)
        if self.config.supervised:
            val: QuerySet = self.table.val  # type: ignore[assignment]
            queries = encode(val.rows.to(self.device))
            return {d: ndcg_at_10(queries[d], corpus[d], val.judged) for d in queries}
        rows = self.table.val_docs[:VAL_ANCHORS].to(self.device)
        if self._val_neighbours is None:
            self._val_neighbours = nearest_keys(
                self.vectors[rows], rows, self.vectors[corpus_rows], corpus_rows, 10
            )
        anchors = encode(rows)
        scores = {}
        for d, reps in anchors.items():
            found = 0
            for start in range(0, len(rows), 1024):
                part = slice(start, start + 1024)
                top = nearest_keys(reps[part], rows[part], corpus[d], corpus_rows, 10)
                truth = self._val_neighbours[part]
                found += int((top[:, :, None] == truth[:, None, :]).any(dim=2).sum())
            scores[d] = found / max(1, self._val_neighbours.numel())
        return scores

    def group_scores(self, encoder: Encoder) -> dict[int, float]:
        """:meth:`validation_scores` of the group's output dims (deterministic selection)."""
        self.tree.eval()
        try:
            return self.validation_scores(lambda rows: encoder(rows, False)[0])
        finally:
            self.tree.train()

    def projection_scores(self, matrices: dict[int, np.ndarray]) -> dict[int, float]:
        """:meth:`validation_scores` of fixed ``input_dim x d`` projections (e.g. PCA)."""
        on_device = {d: torch.from_numpy(m).to(self.device) for d, m in matrices.items()}

        def encode(rows: torch.Tensor) -> dict[int, torch.Tensor]:
            x = self.vectors[rows]
            return {d: torch.nn.functional.normalize(x @ m, dim=1) for d, m in on_device.items()}

        return self.validation_scores(encode)

    def _mine(self, group: list[int]) -> None:
        """Hard negatives of every judged query, mined in the group's input space."""
        if not (self.config.supervised and self.config.mine_per_stage):
            return
        parent = self.tree.parents[max(group)]
        vectors = self.table.vectors
        if parent != self.tree.input_dim:
            vectors = vectors @ torch.from_numpy(self.tree.projection(parent))
        corpus = vectors[: self.table.n_corpus].numpy()
        for queries in (self.table.train, self.table.val):
            assert queries is not None
            queries.mine(corpus, vectors[queries.rows].numpy())

    # -- the loop ----------------------------------------------------------------------------
    def train_group(self, group: list[int]) -> list[dict[str, Any]]:
        """Train the stages ``group`` on train, keeping its best epoch on held-out data.

        The group is initialised on its parent's trained projection and its negatives are
        mined there. The number of epochs that scored best is kept for :meth:`refit`.
        """
        group = sorted(group, reverse=True)
        self._start(group)
        if self.negatives is None and self.config.supervised:
            return self._choose_negatives(group)
        records, best_epoch = self._run(group, self.config.max_epochs, select=True)
        self.chosen_epochs[tuple(group)] = best_epoch + 1
        self._freeze(group)
        return records

    def _choose_negatives(self, group: list[int]) -> list[dict[str, Any]]:
        """Train ``group`` with each kind of negatives and keep the better held-out run."""
        stages = [self.tree.stage(d) for d in group]
        start = copy.deepcopy([s.state_dict() for s in stages])
        runs = {}
        for kind in ("own", "in-batch"):
            for stage, state in zip(stages, start, strict=True):
                stage.load_state_dict(state)
            self.negatives = kind
            scores_before = dict(self.scores)
            records, best_epoch = self._run(group, self.config.max_epochs, select=True)
            for record in records:
                record["negatives"] = kind
            best = max(r["val_score"] for r in records)
            state = copy.deepcopy([s.state_dict() for s in stages])
            runs[kind] = (best, best_epoch, state, {d: self.scores[d] for d in group})
            self.negatives_scores[kind] = best
            self.scores = scores_before
        kind = max(runs, key=lambda k: runs[k][0])  # ties keep "own", tried first
        best, best_epoch, state, scores = runs[kind]
        for stage, saved in zip(stages, state, strict=True):
            stage.load_state_dict(saved)
        self.negatives = kind
        self.scores.update(scores)
        self.chosen_epochs[tuple(group)] = best_epoch + 1
        self._freeze(group)
        return [r for r in self.history if r.get("negatives") is not None]

    def refit(self, groups: list[list[int]]) -> list[dict[str, Any]]:
        """Train every group again, in order and from its initialisation, on all of train
        (the held-out part included) for the epoch count it chose.

        The whole chain is selected first and refitted after: a refitted stage has seen the
        held-out queries, so the stages below it could no longer be selected on them.
        """
        records = []
        try:
            for group in groups:
                group = sorted(group, reverse=True)
                self._start(group)  # mines the negatives of train and held-out again
                self._items = (
                    self.table.train.merged(self.table.val)  # type: ignore[union-attr]
                    if self.config.supervised
                    else torch.cat([self.table.train_docs, self.table.val_docs])
                )
                epochs = self.chosen_epochs.get(tuple(group), 0)
                if epochs:
                    records += self._run(group, epochs, select=False)[0]
                self._freeze(group)
        finally:
            self._items = self.table.train if self.config.supervised else self.table.train_docs
        return records

    def _start(self, group: list[int]) -> None:
        self.tree.initialise(self.table.vectors[: self.table.n_corpus], group, self.init)
        self._mine(group)
        # Where the group's adapters start (PCA's rotation, or the identity): the proximal
        # term pulls them back toward it.
        self._starts = [
            (stage.adapter.weight, stage.adapter.weight.detach().clone())
            for stage in (self.tree.stage(d) for d in group)
            if stage.adapter is not None
        ]

    def _freeze(self, group: list[int]) -> None:
        for dim in group:
            self.tree.stage(dim).requires_grad_(False)

    def _optimizer(self, stages: list[Stage]) -> tuple[torch.optim.Optimizer, torch.Tensor] | None:
        config = self.config
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
            return None
        # Gradient statistics are read off the group's first trainable tensor (Figure 6a).
        return torch.optim.Adam(groups), (adapter_params or logit_params)[0]

    def _run(self, group: list[int], epochs: int, select: bool) -> tuple[list[dict[str, Any]], int]:
        """Train ``group`` on ``self._items`` for up to ``epochs`` epochs.

        With ``select``, score the held-out data after each epoch, stop after ``patience``
        epochs without improvement and restore the best epoch's weights. Returns the epoch
        records and the best epoch (-1 when nothing was trained or nothing improved).
        """
        config = self.config
        stages = [self.tree.stage(d) for d in group]
        made = self._optimizer(stages)
        if made is None:
            return [], -1
        optimizer, watched = made
        encoder = Encoder(self.tree, group, self.vectors)
        n_items = len(self._items)
        batch_size = config.batch_size if config.supervised else config.batch_size * 8
        best, best_epoch, best_state, bad_epochs, records = -1.0, -1, None, 0, []
        label = ",".join(str(d) for d in group)
        phase = "select" if select else "refit"
        if select:  # the starting point (PCA, with --init pca) is a candidate too
            scores = self.group_scores(encoder)
            best = float(np.mean(list(scores.values())))
            best_state = copy.deepcopy([s.state_dict() for s in stages])
            self.scores.update({d: v for d, v in scores.items() if d in group})
            records.append(
                {
                    "stage": label,
                    "phase": "start",
                    "epoch": -1,
                    "metric": self.metric,
                    "val_score": best,
                    "val_scores": {str(d): v for d, v in scores.items()},
                }
            )
        bar = tqdm(
            range(epochs), desc=f"stage {label} ({phase})", disable=not self.progress, leave=False
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
            record = {
                "stage": label,
                "phase": phase,
                "epoch": epoch,
                "train_loss": float(np.mean(losses)) if losses else float("nan"),
                "grad_variance": variance,
                "grad_mean_abs": float(mean.abs().mean()),
                "tau": stages[0].selector.tau,
            }
            if select:
                scores = self.group_scores(encoder)
                score = float(np.mean(list(scores.values())))
                record.update(metric=self.metric, val_score=score)
                record["val_scores"] = {str(d): v for d, v in scores.items()}
                bar.set_postfix(train=f"{record['train_loss']:.4f}", held_out=f"{score:.4f}")
                if score > best + 1e-5:
                    best, best_epoch, bad_epochs = score, epoch, 0
                    best_state = copy.deepcopy([s.state_dict() for s in stages])
                    self.scores.update({d: v for d, v in scores.items() if d in group})
                else:
                    bad_epochs += 1
            record["seconds"] = time.perf_counter() - started
            records.append(record)
            if select and bad_epochs >= config.patience:
                break
        if best_state is not None:
            for stage, state in zip(stages, best_state, strict=True):
                stage.load_state_dict(state)
        self.history.extend(records)
        return records, best_epoch


# Held-out documents scored per epoch without labels; enough for a stable recall@10 (its
# standard error is under 0.01) at a cost independent of the corpus size.
VAL_ANCHORS = 2000


def _encode_in_chunks(encode, rows: torch.Tensor, chunk: int = 65536) -> dict[int, torch.Tensor]:
    parts = [encode(rows[start : start + chunk]) for start in range(0, len(rows), chunk)]
    return {d: torch.cat([p[d] for p in parts]) for d in parts[0]}
