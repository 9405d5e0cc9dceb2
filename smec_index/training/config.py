"""Training settings: one dataclass, filled by the CLI, recorded in every artifact."""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from numbers import Integral, Real
from typing import Any

import numpy as np

from smec_index.errors import SmecError, brief


def as_float(value: Real) -> float:
    """``value`` as a float; an integer beyond float's range is ``inf`` (refused as not
    finite), never Python's OverflowError."""
    try:
        return float(value)
    except OverflowError:
        return math.inf


class SettingError(SmecError):
    """An unknown or invalid training setting.

    Its own type so a loader can say where the setting came from (an artifact's config.json)
    without rewording every other error.
    """


# Command-line spellings of the settings that have a flag, named in errors so a CLI user
# knows which flag to fix.
FLAGS = {
    "max_epochs": "--epochs",
    "alpha": "--alpha",
    "memory_size": "--memory-size",
    "seed": "--seed",
    "device": "--device",
    "init": "--init",
    "lead_in": "--lead-in",
}


@dataclass
class TrainConfig:
    """Settings shared by SMEC and the trained baselines.

    Schedule and modules (SMEC's ablation switches):
        sequential: SMRL, one stage at a time (False: every dim's loss at once, as MRL).
        ads: adaptive dimension selection (False: keep the first d dims).
        xbm: S-XBM neighbours for the unsupervised loss (False: in-batch top-k).
        supervised: use qrels with the rank loss (False: corpus only, unsupervised loss).
        init: start each stage's adapter at the identity (ADS logits at each input dim's
            standardised log-variance) or at the PCA rotation of its input (logits at the
            components' log-variance). SMEC.md allows both. PCA is the default because it
            is robust: on the held-out 20% of SciFact train identity averaged 0.726 nDCG@10
            over 192/128/64/32 against 0.714 for PCA, but on synthetic embeddings whose
            information is spread over every dim identity fell to 0.54 at 8 dims (PCA
            0.80). ``--init identity`` suits models like MiniLM.

    Selection (what keeps a trained dim honest; the ablation in bench/results shows each):
        max_epochs / patience: each stage (or the single parallel run) stops when its held-out
            retrieval score has not improved for ``patience`` epochs. The score is nDCG@10 of
            the held-out judged queries (supervised) or recall@10 of the original space's
            neighbours of held-out documents (unsupervised), exact search in the stage's
            output space: the loss is not what users measure. The numbers quoted below are
            from ``python -m bench.ablations heldout`` (SciFact, held-out train queries,
            mean of 3 seeds, nDCG@10 at 128/64/32; differences under about 0.02 are noise).
            Patience 5 instead of 3 is within noise (0.802 / 0.765 / 0.649).
        val_fraction: share of the training queries (or corpus, unsupervised) held out.
        val_split: ``queries`` holds out a random share of the judged queries; ``documents``
            keeps queries that share a relevant document on one side, so every held-out
            query is an unseen-document one and selection (epochs, negatives, the PCA
            fallback) is judged on documents training never saw judged.
        refit: after the held-out run has chosen the epoch count, train the stage again from
            its initialisation on all of train (held-out part included) for that many
            epochs, so no judged query is spent on selection alone (0.806 / 0.767 / 0.642
            against 0.782 / 0.736 / 0.623 without).
        pca_fallback: where a trained dim does not beat PCA on the held-out score, the
            artifact keeps PCA's projection for that dim and says so.
        unseen_guard: the same, independent of ``pca_fallback``, judged on the held-out
            queries none of whose relevant
            documents is judged for a training query (documents that arrive after training
            are like theirs): PCA is kept where the trained dim, as selected, is worse than
            PCA there by more than 1.96 standard errors of the paired per-query difference.
            Skipped (and said so) with fewer than 30 such queries; with qrels only. The
            scores, the noise and each space's share of training-judged documents in the
            top 10 are in ``info.selection[dim].unseen`` (see
            :mod:`smec_index.training.generalisation`).

        lead_in: SMRL (sequential, with qrels) starts its chain with an extra stage at this
            share of the input dim, rounded to a multiple of 8 (384 -> 256), when every
            requested dim is at most 3/4 of it; the artifact exports the requested dims only
            and records the stage (``info.lead_in``, its held-out verdict against PCA in
            ``info.lead_in_selection``). 0 turns it off. Measured by ``python -m
            bench.ablations chain`` (SciFact held-out train queries, 3 seeds): 128/64/32
            reached through 256 score 0.806 / 0.767 / 0.642 against 0.777 / 0.749 / 0.641
            straight from 384 (seed spread 0.011-0.033 at 128); through 192 0.799 / 0.751
            / 0.643. A 384 -> 128 stage discards two thirds of the space in one step. At 32
            every chain is within noise, and so is 32 hung off 128 beside 64 (a branch, by
            continued training: 0.643 against 0.642 off 64 in the chain). With
            192 first, ``bench.compare``'s held-out scores at 192 / 128 / 64 / 32 went from
            0.782 / 0.778 / 0.753 / 0.671 (its results at commit 091efd1) to 0.802 / 0.792 /
            0.767 / 0.664 (one seed). Not
            used without qrels or with a query log: neither was measured with it.

    Optimisation:
        batch_size: queries per step (supervised) or documents per step (unsupervised).
            16 and 64 are within noise of 32 (0.806 / 0.760 / 0.655 and 0.808 / 0.762 /
            0.645 against 0.806 / 0.767 / 0.642).
        lr / logits_lr: Adam learning rates of the adapters and of ADS logits. An adapter
            rate of 5e-4 scores a little lower, at the edge of the noise (0.796 / 0.747 /
            0.631); 2e-3 is within noise (0.801 / 0.766 / 0.654).
        weight_decay: L2 on the adapters (0.01: 0.800 / 0.760 / 0.621, no help).

    Losses:
        scale: inverse temperature of the rank loss (cosines times ``scale``).
        rank_margin: 0 keeps the paper's softplus rank loss; > 0 is DIVE's self-limiting
            hinge (zero gradient once a judged document leads a negative by this cosine).
        hard_negatives: top-K unjudged documents of each query used as its negatives; 64
            instead of 30 is within noise (0.806 / 0.763 / 0.642).
        mine_per_stage: mine them again for each stage in that stage's input space (the
            parent dim's projection), where the documents it confuses are, instead of once
            in the original space. With the all-pairs term on, its effect is within noise
            (0.806 / 0.767 / 0.642 against 0.801 / 0.761 / 0.640 mined once).
        negatives: which candidates a query is ranked against. ``own``: its judged documents
            and its hard negatives. ``in-batch``: every candidate of the batch (every other
            query's too). ``auto`` (default) trains the first stage both ways and keeps the
            one with the better held-out score for the whole chain (``info.negatives`` of
            the artifact): neither wins everywhere. On SciFact (about one judged document
            per query) the many easy in-batch candidates dilute the hard ones (0.801 /
            0.763 / 0.648 own, 0.757 / 0.693 / 0.524 in-batch). On NFCorpus (43 judged per
            query, so many top unjudged documents are unjudged relevant ones) own hard
            negatives pull relevant documents away: ``smec-index train`` there scores the
            first stage 0.323 own (no better than its PCA start) and 0.336 in-batch.
        max_positives: judged documents a query brings to one step at most (a random draw
            each step), which bounds memory whatever the number of judgements per query.
        alpha: weight of the unsupervised loss, ``L = L_rank + alpha * L_un``. The paper uses
            1.0; on held-out SciFact train queries 1.0 cost about 0.04 nDCG@10 against 0.1
            with an earlier trainer. Now 0 is within noise of 0.1 (0.799 / 0.766 / 0.650):
            S-XBM stays, as the paper's design, and the ablation shows what it is worth.
        beta: weight of the all-pairs term: similarity preservation between every two of the
            batch's queries and documents (Matryoshka-Adaptor's pairwise loss), which keeps
            the global geometry while S-XBM's neighbours keep the local one (0.806 / 0.767 /
            0.642 with 1.0, 0.788 / 0.745 / 0.628 with 0). Of the changes measured it holds
            back memorisation most: with 3.0, SMEC's 128 scores 0.670 on the held-out queries
            whose relevant documents no training query judges, against 0.649 with 1.0 and
            PCA's 0.653 (in-batch negatives 0.662, rank-loss scale 20 0.659; the original
            384-d vectors 0.695), but its 64 stays below PCA there (0.573 against 0.613) and
            it costs the small dims over all held-out queries (0.593 against 0.642 at 32),
            so 1.0 stays.
        corpus_anchors: documents drawn at random from the whole corpus (judged or not) each
            supervised step and added to the anchors of the neighbour and all-pairs terms, so
            the geometry of documents no query judges is kept too, not only that of the
            batch's queries and judged documents.
        proximal: weight of ``||W - W0||^2`` over each trained stage's adapter, ``W0`` where
            it started (PCA's rotation with ``init="pca"``): how far training may move the
            space the unjudged documents live in. 0 (the paper) leaves it free.
        memory_size / neighbours: S-XBM queue length and the K nearest entries per sample.
        tau_start / tau_end: ADS Gumbel-softmax temperature, annealed geometrically per epoch.
    """

    sequential: bool = True
    ads: bool = True
    init: str = "pca"
    xbm: bool = True
    supervised: bool = True
    max_epochs: int = 25
    patience: int = 3
    val_fraction: float = 0.2
    val_split: str = "queries"
    refit: bool = True
    pca_fallback: bool = True
    unseen_guard: bool = True
    lead_in: float = 2 / 3
    batch_size: int = 32
    lr: float = 1e-3
    logits_lr: float = 0.05
    weight_decay: float = 0.0
    scale: float = 10.0
    rank_margin: float = 0.0
    hard_negatives: int = 30
    mine_per_stage: bool = True
    negatives: str = "auto"
    max_positives: int = 32
    alpha: float = 0.1
    beta: float = 1.0
    corpus_anchors: int = 0
    proximal: float = 0.0
    memory_size: int = 5000
    neighbours: int = 10
    tau_start: float = 1.0
    tau_end: float = 0.05
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every field's type and range, normalising numbers to ``int``/``float``.

        This is the one place settings are checked, whether they come from the CLI, from
        ``make_compressor(...)`` or from an artifact's config.json, so a bad value (``inf``,
        a string for a switch, a non-positive rate) is refused before any data is read and
        can never train silently into NaN weights.
        """
        for name in BOOLEANS:
            value = getattr(self, name)
            if not isinstance(value, (bool, np.bool_)):
                self._refuse(name, "must be true or false")
            setattr(self, name, bool(value))
        for name, low in INT_RANGES.items():
            value, high = getattr(self, name), INT_MOST.get(name, INT_DEFAULT_MOST)
            if isinstance(value, bool) or not isinstance(value, Integral):
                self._refuse(name, f"must be an integer >= {low}")
            if not low <= int(value) <= high:  # a bound the value broke, named (it read as
                # "must be an integer >= 0" for 2**64)
                self._refuse(name, f"must be an integer from {low} to {high:,}")
            setattr(self, name, int(value))
        for name, (rule, ok) in FLOAT_RULES.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, Real):
                self._refuse(name, f"must be a finite number {rule}")
            value = as_float(value)
            if not math.isfinite(value) or not ok(value):
                self._refuse(name, f"must be a finite number {rule}")
            setattr(self, name, value)
        if self.tau_end > self.tau_start:
            self._refuse("tau_end", f"must be <= tau_start ({self.tau_start:g})")
        for name, choices in CHOICES.items():
            if getattr(self, name) not in choices:
                self._refuse(name, f"must be one of {', '.join(choices)}")

    def _refuse(self, name: str, rule: str) -> None:
        flag = f" ({FLAGS[name]})" if name in FLAGS else ""
        default = next(f.default for f in fields(self) if f.name == name)
        raise SettingError(
            f"training setting {name}{flag} = {brief(getattr(self, name), 40)} is invalid: {rule} "
            f"(default {default!r})"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        """A validated config from ``values``; an unknown key is an error, not ignored.

        Dropping unknown keys silently turned a typo (``alpah=5``) or a near miss
        (``epochs=3`` for ``max_epochs``) into a run with the defaults.
        """
        if not isinstance(values, Mapping):
            raise SettingError(
                f"training settings must be a mapping of name to value, got {type(values).__name__}"
            )
        check_setting_names(values, cls.names(), "training setting")
        return cls(**values)

    def updated(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied, checked like any other config."""
        return self.from_dict({**self.to_dict(), **changes})

    def tau(self, epoch: int) -> float:
        """Temperature for ``epoch`` (0-based): tau_start -> tau_end over max_epochs."""
        if self.max_epochs == 1:
            return self.tau_end
        ratio = self.tau_end / self.tau_start
        return self.tau_start * ratio ** (min(epoch, self.max_epochs - 1) / (self.max_epochs - 1))


BOOLEANS = (
    "sequential",
    "ads",
    "xbm",
    "supervised",
    "refit",
    "pca_fallback",
    "unseen_guard",
    "mine_per_stage",
)
# Ranges every setting must satisfy. Where the trainer needs more than the obvious bound the
# reason is given: a batch of one is skipped (no in-batch negatives), so batch_size >= 2; an
# S-XBM queue of one holds only the sample itself, so memory_size >= 2; patience 0 would
# stop exactly like 1; a validation share above one half leaves less to train on than to
# judge by.
INT_RANGES = {
    "max_epochs": 1,
    "patience": 1,
    "batch_size": 2,
    "hard_negatives": 0,
    "max_positives": 1,
    "memory_size": 2,
    "neighbours": 1,
    "corpus_anchors": 0,
    "seed": 0,
}
# numpy's and torch's seeds (the CLI's --seed too); else C's int, the CLI's bound of every
# integer flag (a bound of int64 here was refused at 2**31 by the flag it advised)
INT_MOST = {"seed": 2**32 - 1}
INT_DEFAULT_MOST = 2**31 - 1

FLOAT_RULES = {
    "val_fraction": ("in (0, 0.5]", lambda v: 0 < v <= 0.5),
    "lead_in": ("in [0, 1)", lambda v: 0 <= v < 1),
    "lr": ("> 0", lambda v: v > 0),
    "logits_lr": ("> 0", lambda v: v > 0),
    "weight_decay": (">= 0", lambda v: v >= 0),
    "scale": ("> 0", lambda v: v > 0),
    "rank_margin": (">= 0", lambda v: v >= 0),
    "alpha": (">= 0", lambda v: v >= 0),
    "beta": (">= 0", lambda v: v >= 0),
    "proximal": (">= 0", lambda v: v >= 0),
    "tau_start": ("> 0", lambda v: v > 0),
    "tau_end": ("> 0", lambda v: v > 0),
}
CHOICES = {
    "init": ("pca", "identity"),
    "device": ("auto", "cpu", "cuda"),
    "negatives": ("auto", "own", "in-batch"),
    "val_split": ("queries", "documents"),
}


def check_setting_names(names: Iterable[str], known: Iterable[str], what: str) -> None:
    """Refuse the first name not in ``known``, suggesting the closest known one.

    ``epochs`` suggests ``max_epochs`` and ``memory-size`` ``memory_size``: the near misses
    users actually type.
    """
    known = list(known)
    for name in names:
        if name in known:
            continue
        if not isinstance(name, str):
            raise SettingError(f"{what} names must be strings, got {name!r}")
        spelled = name.replace("-", "_").lower()
        close = [spelled] if spelled in known else difflib.get_close_matches(spelled, known, n=1)
        if spelled in ("epochs", "epoch", "n_epochs", "num_epochs") and "max_epochs" in known:
            close = ["max_epochs"]
        hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(sorted(known))}"
        raise SettingError(f"unknown {what} {name!r}; {hint}")
