"""Shared plumbing of the compressors that learn: settings, data split, device, history."""

from __future__ import annotations

import logging
import time
from typing import Any

import torch

from smec_index.compressors.base import LinearCompressor
from smec_index.data import Qrels, RetrievalData
from smec_index.device import resolve_device
from smec_index.errors import SmecError
from smec_index.training.chain import StageTree
from smec_index.training.config import TrainConfig
from smec_index.training.examples import build_table
from smec_index.training.trainer import Objective, Trainer

log = logging.getLogger(__name__)


class TrainedCompressor(LinearCompressor):
    """A compressor fitted by :class:`Trainer`; ``settings`` are :class:`TrainConfig` fields.

    Subclasses define the stage tree, the objective and the groups trained together.
    """

    supervised = True
    needs_qrels = False
    pca_init = True  # False: always the identity (the published adapter baselines)

    def __init__(self, dims, seed: int = 0, progress: bool = True, **settings: Any) -> None:
        self.train_config = TrainConfig.from_dict({**self.defaults(), **settings, "seed": seed})
        settings = self.train_config.to_dict()
        del settings["seed"]
        super().__init__(dims, seed=seed, **settings)
        self.progress = progress
        self.tree: StageTree | None = None

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {}

    def objective(self) -> Objective:  # pragma: no cover - abstract
        raise NotImplementedError

    def build_trees(self, input_dim: int) -> list[tuple[StageTree, list[list[int]]]]:
        """Trees to train, each with its groups in training order."""
        raise NotImplementedError  # pragma: no cover

    def fit(self, data: RetrievalData, qrels: Qrels | None = None) -> TrainedCompressor:
        """Train on ``qrels`` (supervised) or on the corpus alone (``supervised=False``).

        Args:
            data: corpus and query embeddings.
            qrels: training judgements; never the test split.
        """
        self._start_fit(data.dim)
        return self._train(data, qrels, self.build_trees(data.dim))

    def _train(
        self,
        data: RetrievalData,
        qrels: Qrels | None,
        trees: list[tuple[StageTree, list[list[int]]]],
    ) -> TrainedCompressor:
        config = self.train_config
        if config.supervised and qrels is None:
            raise SmecError(f"{self.method}: supervised training needs qrels; pass --unsupervised")
        if self.needs_qrels and not config.supervised:
            raise SmecError(f"{self.method} is supervised only; pass qrels (drop --unsupervised)")
        torch.manual_seed(config.seed)
        device = resolve_device(config.device)
        started = time.perf_counter()
        table = build_table(
            data,
            qrels if config.supervised else None,
            config.hard_negatives,
            config.val_fraction,
            config.seed,
        )
        history = []
        for tree, groups in trees:
            how = "pca" if config.init == "pca" and self.pca_init else "identity"
            trained_dims = [d for group in groups for d in group]
            tree.initialise(table.vectors[: table.n_corpus], trained_dims, how)
            trainer = Trainer(tree, table, config, self.objective(), device, self.progress)
            for group in groups:
                trainer.train_group(group)
            history.extend(trainer.history)
            tree.cpu()
            for dim in tree.dims:
                if dim in self.dims:
                    self.projections[dim] = tree.projection(dim)
            self.tree = tree
        self.info = {
            "device": str(device),
            "train_seconds": round(time.perf_counter() - started, 3),
            "train_queries": len(table.train) if table.train is not None else 0,
            "val_query_ids": (
                [data.queries.ids[r - table.n_corpus] for r in table.val.rows.tolist()]
                if table.val is not None
                else []
            ),
            "history": history,
        }
        log.info("%s trained in %.1f s on %s", self.method, self.info["train_seconds"], device)
        return self
