"""SMEC (SMRL + ADS + S-XBM) and parallel MRL, its ablation baseline.

SMEC builds a chain ``D -> d1 -> d2 -> ...`` of stages (residual linear adapter + selector,
see :mod:`smec_index.training.chain`) and trains it stage by stage (SMRL, section 3.2), each
stage keeping ``d(t)`` of ``d(t-1)`` dims by ADS (section 3.3), with the unsupervised loss on
neighbours drawn from the S-XBM queue (section 3.4): ``L = L_rank + alpha * L_un``.

The three switches ``sequential``, ``ads`` and ``xbm`` turn each module off, so the paper's
Table 1 ablation is ``mrl`` (all off) plus one module at a time.

Where we fix what the paper leaves open (documented in ``shared/docs/SMEC.md``): the adapter
is linear with a residual path and zero initialisation, so a trained artifact exports one
matrix per dim; the loss of stage t uses its adapted input (dim d(t-1)) and its output d(t).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from smec_index.compressors.base import check_dims, fit_data
from smec_index.compressors.trained import TrainedCompressor
from smec_index.data import Qrels, RetrievalData
from smec_index.errors import SmecError
from smec_index.training.chain import Stage, StageTree
from smec_index.training.config import SettingError, TrainConfig
from smec_index.training.trainer import Objective

# What defines an artifact and so cannot change when it is extended: the schedule, the
# selection, the neighbour source, the initialisation, the supervision and the chain's
# lead-in stage (already trained above every dim, or not at all). Every other
# training setting only shapes how the new stages are optimised.
FIXED_BY_ARTIFACT = ("sequential", "ads", "xbm", "init", "supervised", "lead_in")


class SMEC(TrainedCompressor):
    """Sequential Matryoshka Embedding Compression."""

    method = "smec"
    _lead_in: int | None = None  # set for the duration of fit

    def objective(self) -> Objective:
        config = self.train_config
        return Objective(
            rank=1.0 if config.supervised else 0.0,
            neighbours=config.alpha if config.supervised else max(config.alpha, 1.0),
            pairs=config.beta,
            memory=config.xbm,
        )

    def _groups(self, dims: list[int]) -> list[list[int]]:
        return [[d] for d in dims] if self.train_config.sequential else [list(dims)]

    def build_trees(self, input_dim: int) -> list[tuple[StageTree, list[list[int]]]]:
        tree = StageTree(input_dim)
        parent = input_dim
        chain = ([self._lead_in] if self._lead_in else []) + list(self.dims)
        for dim in chain:
            tree.add(Stage(parent, dim, adapter=True, ads=self.train_config.ads))
            parent = dim
        return [(tree, self._groups(chain))]

    def lead_in_dim(self, input_dim: int, documents: int, labelled: bool) -> int | None:
        """The dim of the extra first stage (``TrainConfig.lead_in``), or None: only for
        the sequential schedule with qrels, only where every requested dim is at most 3/4
        of it (measured: 192 and 128 under 256; a stage just above the largest dim would
        only add training), below the input, and where the corpus spans it."""
        config = self.train_config
        if not (config.sequential and labelled and config.lead_in > 0):
            return None
        lead = 8 * round(config.lead_in * input_dim / 8)
        if max(self.dims) > 0.75 * lead or lead >= input_dim or documents <= lead:
            return None
        return lead

    def fit(self, data: RetrievalData, qrels: Qrels | None = None, query_log: Any = None) -> SMEC:
        labelled = self.train_config.supervised and query_log is None
        fit_data(data)
        self._lead_in = self.lead_in_dim(data.dim, data.corpus.vectors.shape[0], labelled)
        try:
            super().fit(data, qrels, query_log)
        finally:
            lead, self._lead_in = self._lead_in, None
        self.info["lead_in"] = lead
        # Its held-out score against PCA, applied if the stage is ever exported (extend).
        self.info["lead_in_selection"] = self.info["selection"].pop(str(lead), None)
        self._record_tree()
        return self

    @classmethod
    def _from_artifact(cls, config: dict[str, Any], tensors: dict[str, np.ndarray]) -> SMEC:
        settings = config.get("settings", {})
        if "lead_in" not in settings:  # saved before the lead-in stage existed: none trained
            config = {**config, "settings": {**settings, "lead_in": 0}}
        return super()._from_artifact(config, tensors)  # type: ignore[return-value]

    def adapted_projection(self) -> np.ndarray | None:
        """The full-dim adapted space: ``input_dim x input_dim``, ``I + W^T`` of the stage that
        starts from the input (the largest, should continued training have added another),
        before it selects dims.

        Training puts the losses on it as well as on the selected dims
        (``Objective.include_input_dim``), so it is the same run's answer to "adapt, but keep
        every dim": against it, fewer dims and fewer bits per dim are compared with the same
        training. ``None`` for an artifact without stage weights.
        """
        parents = {int(d): int(p) for d, p in self.info.get("parents", {}).items()}
        children = [d for d, p in parents.items() if p == self.input_dim]
        key = f"stage.{max(children)}.adapter" if children else ""
        if key not in self.extra:
            return None
        adapter = np.asarray(self.extra[key], dtype=np.float32)
        return np.eye(adapter.shape[0], dtype=np.float32) + adapter.T

    def _record_tree(self) -> None:
        assert self.tree is not None
        self.extra = self.tree.state_tensors()
        self.info["parents"] = {str(d): p for d, p in self.tree.parents.items()}
        # Which coordinates of its parent each stage keeps (ADS choice or first d).
        self.info["stage_selection"] = {
            str(d): self.tree.stage(d).selector.indices().tolist() for d in self.tree.dims
        }

    def check_extend(self, new_dims: list[int], **settings: Any) -> tuple[list[int], TrainConfig]:
        """Validate an extension before any data is read: the new dims and the settings.

        Returns the new dims (sorted, largest first) and the config the new stages train
        with: the artifact's, with ``settings`` applied. Settings in ``FIXED_BY_ARTIFACT``
        are refused, since new stages trained otherwise would not belong to the same chain.
        """
        fixed = [name for name in settings if name in FIXED_BY_ARTIFACT]
        if fixed:
            raise SettingError(
                f"{fixed[0]} is fixed by the {self.method} artifact being extended "
                f"(it was trained with {fixed[0]}={getattr(self.train_config, fixed[0])!r}); "
                "drop it, or train a new artifact"
            )
        config = self.train_config.updated(**settings)
        if self.input_dim is None:
            raise SmecError(f"{self.method}: fit or load an artifact before extending it")
        new_dims = list(check_dims(sorted(set(new_dims), reverse=True), self.input_dim))
        self.check_below_input(new_dims, self.input_dim)
        clash = [d for d in new_dims if d in self.dims]
        if clash:
            raise SmecError(f"the artifact already has dim {clash[0]}; ask for new dims only")
        parents = self.stage_parents()
        if not set(self.dims) <= set(parents):
            raise SmecError("this artifact has no stage weights to extend; retrain it with smec")
        return new_dims, config

    def stage_parents(self) -> dict[int, int]:
        """``info.parents`` of an artifact to extend, checked against its stage weights: each
        stage hangs off the input or a larger stage, and has the adapter (and, with ADS, the
        selection logits) of its parent's size. A damaged artifact is named here, not by
        the trainer's tensors half-way (nor extended on a chain it was not trained as)."""
        raw = self.info.get("parents", {})
        where = "config.json info.parents"
        if not isinstance(raw, dict):
            raise SmecError(f"{where} is not a mapping of dim to parent dim; retrain the artifact")
        try:
            parents = {int(d): int(p) for d, p in raw.items()}
        except (TypeError, ValueError):
            raise SmecError(f"{where} holds a value that is not a dim; retrain the "
                            "artifact") from None  # fmt: skip
        if not isinstance(self.info.get("negatives") or {}, dict):
            raise SmecError("config.json info.negatives is not a mapping; retrain the artifact")
        for dim, parent in parents.items():
            if parent <= dim or (parent != self.input_dim and parent not in parents):
                raise SmecError(f"{where}: stage {dim} hangs off {parent}, which is neither the "
                                "input nor a larger stage; retrain the artifact")  # fmt: skip
            wanted = {f"stage.{dim}.adapter": (parent, parent)}
            if self.train_config.ads:
                wanted[f"stage.{dim}.logits"] = (parent,)
            for key, shape in wanted.items():
                found = self.extra.get(key)
                if found is None or tuple(np.shape(found)) != shape:
                    got = "missing" if found is None else f"of shape {tuple(np.shape(found))}"
                    raise SmecError(f"weights.safetensors: {key} is {got}, not {shape}; the "
                                    "artifact's stages are damaged: retrain it")  # fmt: skip
        return parents

    def extend(
        self,
        data: RetrievalData,
        qrels: Qrels | None,
        new_dims: list[int],
        **settings: Any,
    ) -> SMEC:
        """Continued training: add stages for ``new_dims`` without touching existing ones.

        Each new dim hangs off the smallest existing dim above it (or the input), so a lower
        dim continues the chain and an intermediate one (e.g. D/3) branches from a larger
        stage. Earlier stages stay frozen; their projections are unchanged bit for bit.

        ``settings`` (e.g. ``max_epochs``, ``alpha``, ``device``, ``seed``) apply to the new
        stages only; the artifact keeps its recorded settings and notes the changes under
        ``info["extended_settings"]``. Settings that define the artifact are refused.
        """
        if self.input_dim != data.dim:
            raise SmecError(
                f"the artifact was trained on {self.input_dim}-d embeddings but these are "
                f"{data.dim}-d; extend it with the embeddings it was trained on"
            )
        new_dims, config = self.check_extend(new_dims, **settings)
        chosen = (self.info.get("negatives") or {}).get("chosen")
        if config.negatives == "auto" and chosen:  # the chain's stages share one kind
            config = config.updated(negatives=chosen)
        parents = self.stage_parents()
        tree = StageTree.from_state(self.input_dim, parents, self.extra)
        # A dim the chain already trained without exporting it (its lead-in stage) is
        # exported as it is (or as PCA, where PCA beat it on held-out data when it was
        # trained): training it again would change the stages below it.
        stored, stored_selection = self._stored_stages(data, tree, new_dims)
        to_train = [d for d in new_dims if d not in parents]
        for dim in to_train:
            above = [d for d in tree.dims if d > dim]
            parent = min(above) if above else self.input_dim
            tree.add(Stage(parent, dim, adapter=True, ads=self.train_config.ads))
        old_info = self.info
        old_projections = {**self.projections, **stored}
        old_dims, recorded = self.dims, self.train_config
        self.dims = tuple(sorted(set(self.dims) | set(new_dims), reverse=True))
        self.train_config = config
        try:
            if to_train:
                self._train(data, qrels, [(tree, self._groups(to_train))])
            else:
                self.info, self.tree = {**old_info, "history": [], "selection": {}}, tree
        except BaseException:
            self.dims, self.info = old_dims, old_info
            raise
        finally:
            self.train_config = recorded
        old_history = old_info.get("history", [])
        old_selection = old_info.get("selection", {})
        for name in ("lead_in", "lead_in_selection"):
            self.info[name] = old_info.get(name)
        self.projections.update(old_projections)
        self.info["history"] = old_history + self.info["history"]
        self.info["selection"] = {
            **old_selection,
            **stored_selection,
            **self.info.get("selection", {}),
        }
        self.info["extended_with"] = new_dims
        if settings:
            applied = config.to_dict()
            self.info["extended_settings"] = {name: applied[name] for name in settings}
        self._record_tree()
        return self

    def _stored_stages(
        self, data: RetrievalData, tree: StageTree, new_dims: list[int]
    ) -> tuple[dict[int, np.ndarray], dict[str, Any]]:
        """Projections of the new dims the tree already holds (the lead-in stage), with the
        held-out comparison it was trained with: PCA's projection where PCA won."""
        from smec_index.compressors.simple import PCA  # simple imports the trained module

        stored, selection = {}, {}
        recorded = self.info.get("lead_in_selection") or {}
        for dim in (d for d in new_dims if d in tree.parents):
            stored[dim] = tree.projection(dim)
            if dim == self.info.get("lead_in") and recorded:
                selection[str(dim)] = recorded
                if recorded["kept"] == "pca":
                    stored[dim] = PCA([dim]).fit(data).projection(dim)
        return stored, selection


class ParallelMRL(SMEC):
    """Parallel MRL with SMEC's losses: every dim's loss at once, truncation, in-batch pairs.

    The baseline row of the paper's Table 1, i.e. SMEC with all three modules switched off.
    """

    method = "mrl"

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {"sequential": False, "ads": False, "xbm": False}
