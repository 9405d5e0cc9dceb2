"""Training settings: one dataclass, filled by the CLI, recorded in every artifact."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from smec_index.errors import SmecError


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

    Optimisation:
        max_epochs / patience: each stage (or the single parallel run) stops when the held-out
            loss has not improved for ``patience`` epochs; the best epoch's weights are kept.
        val_fraction: share of the training queries (or corpus, unsupervised) held out.
        batch_size: queries per step (supervised) or documents per step (unsupervised).
        lr / logits_lr: Adam learning rates of the adapters and of ADS logits.
        weight_decay: L2 on the adapters.

    Losses:
        scale: inverse temperature of the rank loss (cosines times ``scale``).
        hard_negatives: top-K documents of the original embedding used as negatives.
        alpha: weight of the unsupervised loss, ``L = L_rank + alpha * L_un``. The paper uses
            1.0; on held-out SciFact train queries 1.0 cost about 0.04 nDCG@10 against 0.1.
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
    batch_size: int = 32
    lr: float = 1e-3
    logits_lr: float = 0.05
    weight_decay: float = 0.0
    scale: float = 10.0
    hard_negatives: int = 30
    alpha: float = 0.1
    memory_size: int = 5000
    neighbours: int = 10
    tau_start: float = 1.0
    tau_end: float = 0.05
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        checks = [
            (self.max_epochs >= 1, "max_epochs must be >= 1"),
            (self.patience >= 1, "patience must be >= 1"),
            (0 < self.val_fraction < 1, "val_fraction must be in (0, 1)"),
            (self.batch_size >= 2, "batch_size must be >= 2"),
            (self.lr > 0 and self.logits_lr > 0, "learning rates must be positive"),
            (self.scale > 0, "scale must be positive"),
            (self.hard_negatives >= 0, "hard_negatives must be >= 0"),
            (self.alpha >= 0, "alpha must be >= 0"),
            (self.memory_size >= 2, "memory_size must be >= 2"),
            (self.neighbours >= 1, "neighbours must be >= 1"),
            (0 < self.tau_end <= self.tau_start, "need 0 < tau_end <= tau_start"),
            (self.device in ("auto", "cpu", "cuda"), "device must be auto, cpu or cuda"),
            (self.init in ("pca", "identity"), "init must be pca or identity"),
        ]
        for ok, message in checks:
            if not ok:
                raise SmecError(f"training config: {message}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    def tau(self, epoch: int) -> float:
        """Temperature for ``epoch`` (0-based): tau_start -> tau_end over max_epochs."""
        if self.max_epochs == 1:
            return self.tau_end
        ratio = self.tau_end / self.tau_start
        return self.tau_start * ratio ** (min(epoch, self.max_epochs - 1) / (self.max_epochs - 1))
