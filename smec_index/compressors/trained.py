"""Shared plumbing of the compressors that learn: settings, data split, device, history."""

from __future__ import annotations

import logging
import time
from typing import Any, ClassVar

import numpy as np
import torch

from smec_index.compressors.base import LinearCompressor, fit_data, fit_qrels
from smec_index.data import Qrels, RetrievalData
from smec_index.device import resolve_device
from smec_index.errors import SmecError, check_switch
from smec_index.training.chain import StageTree
from smec_index.training.config import TrainConfig, check_setting_names
from smec_index.training.examples import LOG_NEIGHBOURS, build_table, query_log_qrels
from smec_index.training.trainer import Objective, Trainer

log = logging.getLogger(__name__)


class TrainedCompressor(LinearCompressor):
    """A compressor fitted by :class:`Trainer`; ``settings`` are :class:`TrainConfig` fields.

    Subclasses define the stage tree, the objective and the groups trained together.
    """

    supervised = True
    needs_qrels = False
    pca_init = True  # False: always the identity (the published adapter baselines)
    # Constructor arguments besides the TrainConfig fields, offered when a name is misspelt.
    own_settings: ClassVar[tuple[str, ...]] = ("seed", "progress")
    # TrainConfig fields this method's training never reads: refused when given, never
    # recorded as if they had been used.
    unused_settings: ClassVar[tuple[str, ...]] = ()

    def __init__(self, dims, seed: int = 0, progress: bool = True, **settings: Any) -> None:
        check_setting_names(
            settings, (*TrainConfig.names(), *self.own_settings), f"{self.method} setting"
        )
        # An artifact's config.json lists every setting at its value: only a change counts.
        unused = [name for name in self.unused_settings
                  if name in settings and settings[name] != getattr(TrainConfig, name)]  # fmt: skip
        if unused:
            raise SmecError(f"{unused[0]} does not apply to {self.method} (its training "
                            "never reads it); drop it")  # fmt: skip
        self.train_config = TrainConfig.from_dict({**self.defaults(), **settings, "seed": seed})
        settings = self.train_config.to_dict()
        del settings["seed"]
        super().__init__(dims, seed=seed, **settings)
        self.progress = check_switch(progress, "progress")
        self.tree: StageTree | None = None

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {}

    def _start_fit(self, data: Any) -> None:
        self.check_below_input(self.dims, fit_data(data).dim)
        super()._start_fit(data)

    def check_below_input(self, dims, input_dim: int) -> None:
        """Every stage keeps fewer dims than it gets: a dim at (or above) the input's is
        refused in one line, before any training."""
        if dims and max(dims) >= input_dim:
            raise SmecError(
                f"{self.method} trains projections to fewer dims than the {input_dim}-d input; "
                f"choose dims below {input_dim} (the original vectors need no training: "
                f"build --dim {input_dim} keeps them, eval --method none scores them)"
            )

    def objective(self) -> Objective:  # pragma: no cover - abstract
        raise NotImplementedError

    def build_trees(self, input_dim: int) -> list[tuple[StageTree, list[list[int]]]]:
        """Trees to train, each with its groups in training order."""
        raise NotImplementedError  # pragma: no cover

    def fit(
        self,
        data: RetrievalData,
        qrels: Qrels | None = None,
        query_log: np.ndarray | None = None,
    ) -> TrainedCompressor:
        """Train on ``qrels`` (supervised) or without labels (``supervised=False``).

        Args:
            data: corpus and query embeddings.
            qrels: training judgements; never the test split.
            query_log: unsupervised only, optional: vectors of real queries without labels.
                Each one's top 10 documents of the original space become its labels, and
                training runs the supervised losses on them (see ``query_log_qrels``).
                Without it the corpus alone is used.
        """
        self._start_fit(data)
        fit_qrels(qrels, data)
        if query_log is None:
            return self._train(data, qrels, self.build_trees(data.dim))
        if self.train_config.supervised:
            raise SmecError(f"{self.method}: a query log is for unsupervised training; drop it")
        data, labels = query_log_qrels(data, query_log)
        recorded = self.train_config
        self.train_config = recorded.updated(supervised=True)
        try:
            self._train(data, labels, self.build_trees(data.dim))
        finally:
            self.train_config = recorded
        self.info["query_log"] = {
            "queries": len(labels),
            "labels": f"top {LOG_NEIGHBOURS} documents of the original space",
        }
        return self

    def _check_corpus(self, data: RetrievalData, qrels: Qrels | None, top: int) -> None:
        """Refuse a corpus too small to train on, before any work.

        Too few documents do not fail cleanly downstream: one document gives NaN ADS logits
        (its variance is undefined) and a crash in the loss, an unsupervised split can leave
        nothing to step on (the artifact would be its initialisation, reported as trained),
        and hard-negative mining crashes when it cannot fill its per-query table.
        """
        n = int(data.corpus.vectors.shape[0])
        config = self.train_config
        if n > 1 and not _varies(data.corpus.vectors):  # found after minutes of training,
            # by the PCA it is compared with, and named as a fault of "pca"
            raise SmecError(
                f"{self.method}: every document has the same vector, so there is nothing to "
                "learn; check the embeddings (truncation, which keeps the leading dims, needs "
                "no variance)"
            )
        if n <= top:
            fewer = f"use dims <= {n - 1} or a larger corpus" if n > 1 else "use a larger corpus"
            raise SmecError(
                f"{self.method} to {top} dims needs at least {top + 1} documents (n documents "
                f"span at most n-1 directions); the corpus has {n}: {fewer}"
            )
        if qrels is None:
            held_out = max(1, round(n * config.val_fraction))
            if n - held_out < 2:
                raise SmecError(
                    f"{self.method} without qrels holds out {held_out} of the {n} documents and "
                    "needs at least 2 left to train on; use a larger corpus"
                )
            return
        relevant = max((sum(r > 0 for r in rels.values()) for rels in qrels.values()), default=0)
        need = config.hard_negatives + relevant
        if n < need:
            raise SmecError(
                f"{self.method} mines {config.hard_negatives} hard negatives per query besides "
                f"up to {relevant} relevant documents, so it needs at least {need} documents; "
                f"the corpus has {n}: use a larger corpus"
                + ("" if self.needs_qrels else ", or train without qrels (`smec-index train "
                   "--unsupervised`, then build with its --artifact; supervised=False in "
                   "Python)")
            )

    def _against_pca(
        self, data: RetrievalData, trainer: Trainer, selected: dict[int, np.ndarray] | None = None
    ) -> tuple[dict[int, dict[str, Any]], dict[str, Any] | None]:
        """Score PCA on the trainer's held-out data at each trained dim; with ``pca_fallback``
        keep PCA's projection wherever the trained one did not beat it.

        ``selected``: the trained projections as selected (before the refit saw the held-out
        queries), scored against PCA on the unseen-document held-out queries
        (:func:`~smec_index.training.generalisation.unseen_check`); with ``unseen_guard``,
        PCA is kept too where the trained one is worse there by more than the noise.
        Returns the verdict per dim and the unseen-document check (None without qrels).
        """
        from smec_index.compressors.simple import PCA  # the trained baselines import this module
        from smec_index.training.generalisation import unseen_check

        dims = sorted(trainer.scores, reverse=True)
        if not dims:
            return {}, None
        pca = PCA(dims).fit(data)
        pca_scores = trainer.projection_scores(pca.projections)
        config = self.train_config
        unseen = None
        if selected is not None and config.supervised:
            unseen = unseen_check(trainer.table, {d: selected[d] for d in dims}, pca.projections)
        selection = {}
        for dim in dims:
            trained, baseline = trainer.scores[dim], pca_scores[dim]
            check = unseen["dims"][dim] if unseen and unseen["checked"] else None
            kept, why = "trained", None
            # A stage trained but not exported (SMEC's lead-in) only records its verdict.
            if config.pca_fallback and baseline >= trained:
                kept, why = "pca", "held-out"
            elif config.unseen_guard and check is not None and check["worse"]:
                kept, why = "pca", "unseen-doc"
            if kept == "pca" and dim in self.dims:
                self.projections[dim] = pca.projections[dim]
                scores = (f"{trained:.4f} against PCA {baseline:.4f}" if why == "held-out" else
                          f"{check['trained']:.4f} against PCA {check['pca']:.4f}, noise "
                          f"{check['noise']:.4f}")  # fmt: skip
                log.warning("%s at %d dims scored %s on the %s queries: keeping PCA",
                            self.method, dim, scores, why)  # fmt: skip
            selection[dim] = {
                "metric": trainer.metric,
                "trained": round(trained, 4),
                "pca": round(baseline, 4),
                "kept": kept,
            }
            if why is not None:
                selection[dim]["because"] = why
            if check is not None:
                selection[dim]["unseen"] = check
        header = None
        if unseen is not None:
            header = {k: v for k, v in unseen.items() if k != "dims"}
            header["guard"] = config.unseen_guard
        return selection, header

    def _train(
        self,
        data: RetrievalData,
        qrels: Qrels | None,
        trees: list[tuple[StageTree, list[list[int]]]],
    ) -> TrainedCompressor:
        config = self.train_config
        if config.supervised and qrels is None:
            raise SmecError(f"{self.method}: supervised training needs qrels; pass them, or "
                            "train without (--unsupervised; supervised=False in "
                            "Python)")  # fmt: skip
        if self.needs_qrels and not config.supervised:
            raise SmecError(f"{self.method} is supervised only; pass qrels (drop --unsupervised)")
        device = resolve_device(config.device)  # a missing GPU is reported before any work
        trained_dims = [d for _, groups in trees for group in groups for d in group]
        self._check_corpus(data, qrels if config.supervised else None, max(trained_dims))
        torch.manual_seed(config.seed)
        started = time.perf_counter()
        table = build_table(
            data,
            qrels if config.supervised else None,
            config.hard_negatives,
            config.val_fraction,
            config.seed,
            unsupervised_too=not self.needs_qrels,
            by_documents=config.val_split == "documents",
        )
        history, selection, negatives, unseen = [], {}, None, None
        how = "pca" if config.init == "pca" and self.pca_init else "identity"
        for tree, groups in trees:
            trainer = Trainer(tree, table, config, self.objective(), device, self.progress, how)
            for group in groups:
                trainer.train_group(group)
            selected = {d: tree.projection(d) for d in trainer.scores}
            if config.refit:
                trainer.refit(groups)
            history.extend(trainer.history)
            tree.cpu()
            for dim in tree.dims:
                if dim in self.dims:
                    self.projections[dim] = tree.projection(dim)
            verdicts, unseen = self._against_pca(data, trainer, selected)
            selection.update(verdicts)
            if trainer.negatives_scores:
                negatives = {"chosen": trainer.negatives, "held_out": trainer.negatives_scores}
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
            "negatives": negatives,
            "selection": {str(d): v for d, v in sorted(selection.items(), reverse=True)},
            "unseen": unseen,
            "history": history,
        }
        log.info("%s trained in %.1f s on %s", self.method, self.info["train_seconds"], device)
        return self


def _varies(vectors: np.ndarray, chunk: int = 65536) -> bool:
    """Whether any row differs from the first (read in chunks: a memory-mapped corpus
    stays on disk, and a corpus that varies answers at its first chunk)."""
    first = np.asarray(vectors[0])
    for start in range(0, len(vectors), chunk):
        if (np.asarray(vectors[start:start + chunk]) != first).any():
            return True
    return False
