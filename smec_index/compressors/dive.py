"""DIVE (Zhao 2026, arXiv 2605.20689), a baseline that does not forget unseen documents.

DIVE names two mechanisms against the overfitting of trained adapters when labels are
scarce: a *self-limiting* hinge triplet loss, whose gradient is zero once a triplet meets its
margin (so training stops moving the pretrained space where the labels are already served),
and a *head-wise NT-Xent* loss that treats several learned projections of one embedding as
views of it: dense self-supervised gradients over documents no query judges.

Only the paper's abstract could be read (no code or equations are public here), so every
choice below that it does not state is ours, and each is a setting:

* one model per target dim (as Search-Adaptor), made of ``views`` linear heads
  ``input_dim x dim``, each started at the PCA projection plus a small seeded perturbation (so
  the views differ); the exported projection is the heads' mean ("implicit view ensemble"),
  still one matrix, so search, build and migrate apply it like any other artifact;
* triplets: each training query, one of its judged documents, one of its hard negatives
  (mined in the original space); cosine of the ensemble's normalised outputs, ``margin``;
* NT-Xent (SimCLR's, temperature ``view_temperature``) between every pair of heads over the
  step's queries, their documents and as many random corpus documents, judged or not;
  ``L = L_triplet + view_weight * L_views``;
* the same held-out split, early stopping on held-out nDCG@10, refit on all of train and PCA
  fallback as every trained method here, so differences come from the objective.
"""

from __future__ import annotations

import math
import time
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from smec_index.compressors.trained import TrainedCompressor
from smec_index.data import Qrels, RetrievalData
from smec_index.device import resolve_device
from smec_index.errors import SmecError, brief
from smec_index.training.chain import StageTree
from smec_index.training.config import SettingError, as_float
from smec_index.training.examples import QuerySet, TrainingTable, build_table
from smec_index.training.trainer import Objective, Trainer

# How far each head starts from PCA (relative to PCA's entries): enough to break the views'
# symmetry (identical views would get identical gradients for ever), small beside training.
VIEW_SPREAD = 0.05


class DIVE(TrainedCompressor):
    """DIVE: self-limiting hinge triplets plus head-wise NT-Xent (module docstring)."""

    method = "dive"
    needs_qrels = True
    unused_settings: ClassVar[tuple[str, ...]] = ("rank_margin", "proximal", "corpus_anchors")
    own_settings: ClassVar[tuple[str, ...]] = (
        "seed", "progress", "margin", "views", "view_weight", "view_temperature")  # fmt: skip

    def __init__(
        self,
        dims,
        seed: int = 0,
        progress: bool = True,
        margin: float = 0.3,
        views: int = 4,
        view_weight: float = 0.1,
        view_temperature: float = 0.1,
        **settings: Any,
    ) -> None:
        super().__init__(dims, seed=seed, progress=progress, **settings)
        checks = {
            "margin": (margin, 0.0, 2.0, "a number from 0 to 2 (cosines differ by at most 2)"),
            "view_weight": (view_weight, 0.0, math.inf, "a finite number >= 0"),
            "view_temperature": (view_temperature, 1e-3, 10.0, "a number from 0.001 to 10"),
        }
        for name, (value, low, high, want) in checks.items():
            if isinstance(value, bool) or not isinstance(value, Real) or \
                    not math.isfinite(as_float(value)) or not low <= value <= high:  # fmt: skip
                raise SettingError(
                    f"dive setting {name} = {brief(value, 30)} is invalid: must be {want}"
                )
            self.settings[name] = float(value)
        if isinstance(views, bool) or not isinstance(views, Integral) or not 2 <= views <= 16:
            raise SettingError(f"dive setting views = {brief(views, 30)} is invalid: must be a "
                               "whole number from 2 to 16 (NT-Xent needs two views)")  # fmt: skip
        self.settings["views"] = int(views)

    def objective(self) -> Objective:  # the selection scorer's; DIVE's losses are its own
        return Objective(rank=1.0, neighbours=0.0, memory=False)

    def build_trees(self, input_dim: int) -> list[tuple[StageTree, list[list[int]]]]:
        return []  # no stage chain: each dim's heads are trained by _train below

    def _train(
        self,
        data: RetrievalData,
        qrels: Qrels | None,
        trees: list[tuple[StageTree, list[list[int]]]],
    ) -> DIVE:
        from smec_index.compressors.simple import PCA

        config = self.train_config
        if not config.supervised or qrels is None:
            raise SmecError("dive is supervised only; pass qrels (drop --unsupervised)")
        device = resolve_device(config.device)
        self._check_corpus(data, qrels, max(self.dims))
        torch.manual_seed(config.seed)
        started = time.perf_counter()
        table = build_table(data, qrels, config.hard_negatives, config.val_fraction, config.seed,
                            unsupervised_too=False,
                            by_documents=config.val_split == "documents")  # fmt: skip
        # Trainer scores held-out queries exactly as every other trained method is selected.
        scorer = Trainer(StageTree(data.dim), table, config, self.objective(), device,
                         progress=False)  # fmt: skip
        pca = PCA(self.dims).fit(data)
        history, selected = [], {}
        for dim in self.dims:
            fit = _HeadsFit(table, config, self.settings, device, scorer, self.progress, dim)
            start = fit.initial(pca.projections[dim], seed=config.seed + dim)
            heads, epochs, score, records = fit.run(start, config.max_epochs, fit.train, True)
            selected[dim] = heads.mean(0).cpu().numpy().astype(np.float32)
            if config.refit and epochs > 0:
                heads, _, _, more = fit.run(start, epochs, fit.train.merged(fit.val), False)
                records += more
            scorer.scores[dim] = score
            self.projections[dim] = heads.mean(0).cpu().numpy().astype(np.float32)
            history += records
        selection, unseen = self._against_pca(data, scorer, selected)
        self.info = {
            "device": str(device),
            "train_seconds": round(time.perf_counter() - started, 3),
            "train_queries": len(table.train) if table.train is not None else 0,
            "val_query_ids": [data.queries.ids[r - table.n_corpus]
                              for r in table.val.rows.tolist()],  # fmt: skip
            "selection": {str(d): v for d, v in sorted(selection.items(), reverse=True)},
            "unseen": unseen,
            "history": history,
        }
        return self


class _HeadsFit:
    """Training of one dim's heads: the loop, its losses and its held-out selection."""

    def __init__(
        self,
        table: TrainingTable,
        config: Any,
        settings: dict[str, Any],
        device: torch.device,
        scorer: Trainer,
        progress: bool,
        dim: int,
    ) -> None:
        assert table.train is not None and table.val is not None
        self.table, self.config, self.device, self.scorer = table, config, device, scorer
        self.train, self.val = table.train, table.val
        self.margin = settings["margin"]
        self.views = settings["views"]
        self.view_weight = settings["view_weight"]
        self.temperature = settings["view_temperature"]
        self.vectors = table.vectors.to(device)
        self.generator = torch.Generator().manual_seed(config.seed + dim)
        self.progress, self.dim = progress, dim

    def initial(self, pca: np.ndarray, seed: int) -> torch.Tensor:
        """``views`` heads at PCA plus a seeded spread of :data:`VIEW_SPREAD` of its scale."""
        start = torch.from_numpy(np.ascontiguousarray(pca, dtype=np.float32))
        noise = torch.randn((self.views, *start.shape), generator=torch.Generator()
                            .manual_seed(seed))  # fmt: skip
        return start[None] + VIEW_SPREAD * start.std() * noise

    def held_out(self, heads: torch.Tensor) -> float:
        matrix = heads.mean(0)
        encode = lambda rows: {self.dim: F.normalize(self.vectors[rows] @ matrix, dim=1)}  # noqa: E731
        return self.scorer.validation_scores(encode)[self.dim]

    def loss(self, heads: torch.Tensor, items: QuerySet, batch: torch.Tensor) -> torch.Tensor:
        queries = items.rows[batch]
        positives = torch.tensor([self._pick(list(items.judged[i])) for i in batch.tolist()])
        width = items.negatives.shape[1]
        choice = torch.randint(width, (len(batch),), generator=self.generator)
        negatives = items.negatives[batch, choice]
        ensemble = heads.mean(0)
        q, p, n = (F.normalize(self.vectors[r.to(self.device)] @ ensemble, dim=1)
                   for r in (queries, positives, negatives))  # fmt: skip
        # Zero once cos(q, p) beats cos(q, n) by the margin: satisfied triplets move nothing.
        triplet = F.relu(self.margin - (q * p).sum(1) + (q * n).sum(1)).mean()
        if not self.view_weight:
            return triplet
        others = torch.randint(self.table.n_corpus, (len(batch),), generator=self.generator)
        rows = torch.cat([queries, positives, negatives, others]).to(self.device)
        views = F.normalize(torch.einsum("nd,hdk->hnk", self.vectors[rows], heads), dim=2)
        pairs = [(a, b) for a in range(self.views) for b in range(a + 1, self.views)]
        contrast = sum(_nt_xent(views[a], views[b], self.temperature) for a, b in pairs)
        return triplet + self.view_weight * contrast / len(pairs)

    def _pick(self, docs: list[int]) -> int:
        return docs[int(torch.randint(len(docs), (1,), generator=self.generator))]

    def run(
        self, start: torch.Tensor, epochs: int, items: QuerySet, select: bool
    ) -> tuple[torch.Tensor, int, float, list[dict[str, Any]]]:
        """Train from ``start`` for up to ``epochs`` on ``items``; with ``select``, keep the
        epoch that scored best on held-out queries (patience as every trained method).
        Returns the heads, the epochs that gave them, their held-out score and the records."""
        config = self.config
        heads = torch.nn.Parameter(start.clone().to(self.device))
        optimizer = torch.optim.Adam([heads], lr=config.lr, weight_decay=config.weight_decay)
        phase = "select" if select else "refit"
        best = self.held_out(heads.detach()) if select else float("nan")
        best_heads, best_epochs, bad, records = heads.detach().clone(), 0, 0, []
        bar = tqdm(range(epochs), desc=f"dive {self.dim} ({phase})", disable=not self.progress,
                   leave=False)  # fmt: skip
        for epoch in bar:
            began = time.perf_counter()
            order = torch.randperm(len(items), generator=self.generator)
            losses = []
            for first in range(0, len(order) - 1, config.batch_size):
                batch = order[first : first + config.batch_size]
                if len(batch) < 2:
                    continue
                loss = self.loss(heads, items, batch)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
            record = {"stage": str(self.dim), "phase": phase, "epoch": epoch,
                      "train_loss": float(np.mean(losses)) if losses else float("nan")}  # fmt: skip
            if select:
                score = self.held_out(heads.detach())
                record.update(metric="ndcg@10", val_score=score)
                if score > best + 1e-5:
                    best, best_heads, best_epochs, bad = score, heads.detach().clone(), epoch + 1, 0
                else:
                    bad += 1
            else:
                best_heads, best_epochs = heads.detach().clone(), epoch + 1
            record["seconds"] = time.perf_counter() - began
            records.append(record)
            if select and bad >= config.patience:
                break
        return best_heads, best_epochs, best, records


def _nt_xent(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's NT-Xent of two views ``a``, ``b`` (N, d), rows normalised: each item's other
    view is its positive, the other 2N - 2 vectors its negatives."""
    z = torch.cat([a, b])
    n = a.shape[0]
    logits = z @ z.T / temperature
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), -math.inf)
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(logits, target)

