"""The adapter baselines SMEC is compared with.

Both use one residual linear adapter on the full embedding (``e + f(e)``, f initialised to
zero) shared by queries and documents, then keep the first d dims. They are trained with the
same loop, data split and early stopping as SMEC, so differences come from the methods.
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Any, ClassVar

from smec_index.compressors.trained import TrainedCompressor
from smec_index.errors import brief
from smec_index.training.chain import Stage, StageTree
from smec_index.training.config import SettingError, as_float
from smec_index.training.trainer import Objective


class SearchAdaptor(TrainedCompressor):
    """Search-Adaptor (Yoon et al. 2023): one adapter per target dim.

    Rank loss at that dim plus an L1 reconstruction regulariser that keeps the adapted
    embedding near the original (``reconstruction`` weight, default 0.1). Supervised only.
    """

    method = "search-adaptor"
    needs_qrels = True
    pca_init = False
    own_settings: ClassVar[tuple[str, ...]] = ("seed", "progress", "reconstruction")
    unused_settings: ClassVar[tuple[str, ...]] = ("corpus_anchors",)  # no neighbour terms

    def __init__(
        self,
        dims,
        seed: int = 0,
        progress: bool = True,
        reconstruction: float = 0.1,
        **settings: Any,
    ) -> None:
        super().__init__(dims, seed=seed, progress=progress, **settings)
        # Checked like the TrainConfig fields: inf or a string here would train into NaN.
        if (
            isinstance(reconstruction, bool)
            or not isinstance(reconstruction, Real)
            or not math.isfinite(as_float(reconstruction))
            or reconstruction < 0
        ):
            raise SettingError(
                f"search-adaptor setting reconstruction = {brief(reconstruction, 30)} is "
                "invalid: must be a finite number >= 0 (default 0.1)"
            )
        self.settings["reconstruction"] = float(reconstruction)

    def objective(self) -> Objective:
        return Objective(
            rank=1.0,
            neighbours=0.0,
            reconstruction=self.settings["reconstruction"],
            memory=False,
            include_input_dim=False,
        )

    def build_trees(self, input_dim: int) -> list[tuple[StageTree, list[list[int]]]]:
        trees = []
        for dim in self.dims:
            tree = StageTree(input_dim)
            tree.add(Stage(input_dim, dim, adapter=True, ads=False))
            trees.append((tree, [[dim]]))
        return trees


class MatryoshkaAdaptor(TrainedCompressor):
    """Matryoshka-Adaptor (Yoon et al. 2024): one shared adapter, every dim's loss at once.

    Unsupervised ``L_topk + a L_pair + b L_rec`` (in-batch top-k neighbours, k = 10) plus the
    supervised ``g L_rank``, with ``a = b = g = 1`` as reported.
    """

    method = "matryoshka-adaptor"
    pca_init = False

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {"sequential": False, "ads": False, "xbm": False, "neighbours": 10}

    def objective(self) -> Objective:
        return Objective(
            rank=1.0 if self.train_config.supervised else 0.0,
            neighbours=1.0,
            pairs=1.0,
            reconstruction=1.0,
            memory=False,
        )

    def build_trees(self, input_dim: int) -> list[tuple[StageTree, list[list[int]]]]:
        tree = StageTree(input_dim)
        parent = input_dim
        for i, dim in enumerate(self.dims):
            # Only the first stage learns; the rest truncate its output (nested prefixes).
            tree.add(Stage(parent, dim, adapter=i == 0, ads=False))
            parent = dim
        return [(tree, [list(self.dims)])]
