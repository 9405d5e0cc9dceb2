"""The interface every compressor implements, and the linear projection they all export.

Every method in smec-index ends as one ``input_dim x dim`` matrix per target dim: truncation
and ADS are column selections, PCA is a rotation, the adapters are residual linear layers, and
a chain of SMEC stages multiplies out into one matrix. So applying any artifact at index or
query time is one matrix product plus L2 normalisation, whatever trained it.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from smec_index.artifact import check_compressor_config, load_artifact, save_artifact
from smec_index.errors import SmecError, brief
from smec_index.vectors import as_rows, normalize

MAX_DIM = 1 << 16  # wider than any embedding model: a typo or a damaged file


@runtime_checkable
class Compressor(Protocol):
    """Fit on embeddings, transform to any of its dims, save and load."""

    method: str
    input_dim: int
    dims: tuple[int, ...]

    def fit(self, data: Any, qrels: Any = None) -> Compressor: ...

    def transform(self, vectors: np.ndarray, dim: int) -> np.ndarray: ...

    def save(self, directory: str | Path, overwrite: bool = True) -> Path: ...


def check_dims(dims: Sequence[int], input_dim: int | None = None) -> tuple[int, ...]:
    """Validate a target-dim list: positive, strictly decreasing, below the input dim."""
    if isinstance(dims, (str, bytes)) or not isinstance(dims, Sequence):
        # "84" would be read as (8, 4), 8 as nothing iterable: say what is wanted
        raise SmecError(f"dims {dims!r}: pass a list of whole numbers, e.g. [128, 64, 32]")
    if not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in dims):
        raise SmecError(f"dims {list(dims)!r}: every dim must be a whole number, e.g. "
                        "[128, 64, 32]")  # fmt: skip
    dims = tuple(int(d) for d in dims)
    if not dims:
        raise SmecError("no target dims; pass e.g. --dims 128,64,32")
    if any(d <= 0 for d in dims):
        raise SmecError(f"dims {list(dims)}: every dim must be a positive integer")
    if dims[0] > MAX_DIM:
        raise SmecError(f"dim {dims[0]:,} is beyond {MAX_DIM:,}, wider than any embedding "
                        "model; pass the dims to compress to, e.g. [128, 64, 32]")  # fmt: skip
    if any(b >= a for a, b in zip(dims, dims[1:], strict=False)):
        raise SmecError(f"dims {list(dims)}: must be strictly decreasing, e.g. 128,64,32")
    if input_dim is not None and dims[0] > input_dim:
        raise SmecError(
            f"dim {dims[0]} is larger than the {input_dim}-d input embeddings; "
            f"choose dims <= {input_dim}"
        )
    return dims


def fit_data(data: Any) -> Any:
    """``data`` if it is what ``fit`` takes (a ``RetrievalData``), or a one-line error."""
    from smec_index.data import RetrievalData

    if not isinstance(data, RetrievalData):
        raise SmecError(
            f"fit takes a RetrievalData, got {type(data).__name__}: load one with "
            "smec_index.data.load_retrieval_data(dataset_dir), or build it from "
            "Embeddings(ids, vectors) of the corpus and the queries"
        )
    for what, part in (("corpus", data.corpus), ("query", data.queries)):
        # The loaders check their files; Embeddings built in Python get the same checks.
        vectors = part.vectors
        if not isinstance(vectors, np.ndarray) or vectors.ndim != 2 or \
                vectors.dtype.kind not in "fiu":  # fmt: skip
            shown = getattr(vectors, "shape", type(vectors).__name__)
            raise SmecError(f"{what} vectors must be a 2-D real numeric array (rows of "
                            f"embeddings), got {shown}")  # fmt: skip
        if len(part.ids) != len(vectors):
            raise SmecError(f"{len(part.ids)} {what} ids for {len(vectors)} vectors")
        with np.errstate(over="ignore", invalid="ignore"):
            finite = bool(np.isfinite(np.asarray(vectors, np.float32)).all())
        if not finite:
            raise SmecError(f"{what} vectors hold NaN or inf (or values beyond float32's "
                            "range); clean them first")  # fmt: skip
    return data


def fit_qrels(qrels: Any, data: Any) -> Any:
    """``qrels`` if ``fit`` can train on them with ``data``: ``{query id: {doc id: grade}}``
    with whole-number grades, every id among the embeddings; else a one-line error."""
    from numbers import Integral

    if qrels is None:
        return None
    inner = next((r for r in qrels.values() if not isinstance(r, dict)), {}) if isinstance(
        qrels, dict) else None  # fmt: skip
    if not isinstance(inner, dict):
        got = type(qrels).__name__ if inner is None else f"a dict of {type(inner).__name__}"
        raise SmecError(f"qrels must be {{query id: {{doc id: grade}}}}, got {got}: load "
                        "them with RetrievalData.qrels(split)")  # fmt: skip
    for query, rels in qrels.items():
        for doc, grade in rels.items():
            if not isinstance(query, str) or not isinstance(doc, str):
                raise SmecError(f"qrels ids are strings, got {brief(query, 30)} -> "
                                f"{brief(doc, 30)}")  # fmt: skip
            if isinstance(grade, bool) or not isinstance(grade, Integral):
                raise SmecError(f"qrels grade of {brief(query, 30)} -> {brief(doc, 30)} is "
                                f"{brief(grade, 20)}; grades are whole numbers (0 not "
                                "relevant, 1, 2 ...)")  # fmt: skip
    unknown_q = next((q for q in qrels if q not in data.queries), None)
    unknown_d = next((d for rels in qrels.values() for d in rels if d not in data.corpus), None)
    if unknown_q is not None or unknown_d is not None:
        what = (f"query {brief(unknown_q, 40)} has no query embedding" if unknown_q is not None
                else f"document {brief(unknown_d, 40)} is not in the corpus")  # fmt: skip
        raise SmecError(f"qrels: {what}; pass qrels of these embeddings (drop the judgements "
                        "of ids they lack)")  # fmt: skip
    return qrels


def _all_or_nothing(fit: Any) -> Any:
    """``fit`` that leaves its compressor as it was when it raises: a refused refit of a
    fitted compressor kept the new input dim beside the old projections, and its save
    wrote an artifact no one could load."""

    @functools.wraps(fit)
    def whole(self: LinearCompressor, *args: Any, **kwargs: Any) -> Any:
        before = {name: copy.deepcopy(value) if isinstance(value, (dict, list)) else value
                  for name, value in vars(self).items()}  # fmt: skip
        try:
            return fit(self, *args, **kwargs)
        except BaseException:
            vars(self).clear()
            vars(self).update(before)
            raise

    return whole


class LinearCompressor:
    """A fitted compressor: one projection matrix per target dim.

    Subclasses implement :meth:`fit` and fill ``self.projections``; transform, save and load
    are shared. ``extra`` tensors (e.g. SMEC's per-stage weights for continued training) are
    saved alongside the projections.
    """

    method: ClassVar[str] = "linear"
    supervised: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "fit" in cls.__dict__:  # every fit all or nothing, however a subclass writes it
            cls.fit = _all_or_nothing(cls.__dict__["fit"])

    def __init__(self, dims: Sequence[int], seed: int = 0, **settings: Any) -> None:
        self.dims = check_dims(dims)
        self.seed = seed
        self.settings = settings
        self.input_dim: int | None = None
        self.projections: dict[int, np.ndarray] = {}
        self.extra: dict[str, np.ndarray] = {}
        self.info: dict[str, Any] = {}

    # -- fitting --------------------------------------------------------------------------
    def fit(self, data: Any, qrels: Any = None) -> LinearCompressor:  # pragma: no cover
        raise NotImplementedError

    def _start_fit(self, data: Any) -> None:
        self.dims = check_dims(self.dims, fit_data(data).dim)
        self.input_dim = data.dim

    # -- inference ------------------------------------------------------------------------
    def projection(self, dim: int) -> np.ndarray:
        if not self.projections:
            raise SmecError(f"this {self.method} compressor is not fitted: call fit(data) "
                            "first, or load a trained artifact (load_compressor)")  # fmt: skip
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
            raise SmecError(f"dim {brief(dim, 30)}: pass a whole number, one of the artifact's "
                            f"dims {sorted(self.projections, reverse=True)}")  # fmt: skip
        if dim not in self.projections:
            have = ", ".join(str(d) for d in sorted(self.projections, reverse=True))
            raise SmecError(f"this {self.method} artifact has no dim {dim}; it has {have}")
        return self.projections[dim]

    def transform(self, vectors: np.ndarray, dim: int) -> np.ndarray:
        """Project ``vectors`` (n x input_dim) to ``dim`` and L2-normalise each row.

        Returns:
            a new C-contiguous float32 array of shape (n, dim).
        """
        matrix = self.projection(dim)
        fits = (f"do not fit this artifact, made for {matrix.shape[0]}-d input rows; use the "
                "artifact trained on this embedding model")  # fmt: skip
        rows, one = as_rows(vectors, matrix.shape[0], needs=fits)  # numeric, finite, in range
        if one:  # the right size: one vector where rows are asked for
            raise SmecError(f"vectors of shape ({matrix.shape[0]},) are one vector, not rows: "
                            "pass an (n, d) array, e.g. v.reshape(1, -1), or use "
                            "Projection.project, which takes one")  # fmt: skip
        return normalize(rows @ matrix)

    def project_checked(self, rows: np.ndarray, dim: int) -> np.ndarray:
        """:meth:`transform` of rows :func:`~smec_index.vectors.as_rows` has checked already
        (the query path of ``Projection`` and ``CompressedIndex``: checked once, not twice)."""
        return normalize(rows @ self.projection(dim))

    def selected_dims(self, dim: int) -> list[int] | None:
        """Input dimensions a selection-only projection keeps (None if it mixes dims)."""
        matrix = self.projection(dim)
        if not np.all((matrix == 0) | (matrix == 1)) or not np.all(matrix.sum(axis=0) == 1):
            return None
        return [int(i) for i in np.argmax(matrix, axis=0)]

    # -- persistence ----------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "input_dim": self.input_dim,
            "dims": list(self.dims),
            "seed": self.seed,
            "settings": self.settings,
            "selected_dims": {str(d): self.selected_dims(d) for d in self.dims},
            "info": self.info,
        }

    def save(self, directory: str | Path, overwrite: bool = True) -> Path:
        """The artifact (JSON + safetensors) in ``directory``, written atomically; an
        artifact there is replaced unless ``overwrite`` is False."""
        if self.input_dim is None:
            raise SmecError(f"{self.method}: fit before saving")
        for d, matrix in self.projections.items():  # never write an artifact that cannot work
            check_projection(matrix, f"{self.method} projection to {d} dims")
        for name, tensor in self.extra.items():
            # SMEC's stage weights feed continued training; NaN there would only surface
            # (as a load error) when someone extends the artifact.
            if np.issubdtype(tensor.dtype, np.floating) and not np.isfinite(tensor).all():
                raise SmecError(
                    f"{self.method} training diverged: {name} holds NaN or inf, so nothing was "
                    "saved; retrain with a smaller --alpha or learning rate"
                )
        tensors = {f"projection.{d}": m.astype(np.float32) for d, m in self.projections.items()}
        tensors.update(self.extra)
        return save_artifact(directory, self.config(), tensors, overwrite=overwrite)

    @classmethod
    def _from_artifact(
        cls, config: dict[str, Any], tensors: dict[str, np.ndarray]
    ) -> LinearCompressor:
        settings = config.get("settings", {})
        if not isinstance(settings, dict) or "dims" in settings:
            raise SmecError("config.json's settings must be an object of training settings "
                            "(the dims belong at the top level); fix it or retrain")  # fmt: skip
        settings = {k: v for k, v in settings.items() if k != "seed"}
        obj = cls(config["dims"], seed=config.get("seed", 0), **settings)
        obj.input_dim = int(config["input_dim"])
        obj.info = config.get("info", {})
        obj.projections = {}
        for d in obj.dims:
            key = f"projection.{d}"
            if key not in tensors or tensors[key].shape != (obj.input_dim, d):
                raise SmecError(f"artifact is missing or has a malformed {key!r}; retrain it")
            check_projection(tensors[key], key)
            obj.projections[d] = tensors[key]
        obj.extra = {k: v for k, v in tensors.items() if not k.startswith("projection.")}
        return obj


MAX_WEIGHT = 1e6  # a projection entry beyond this overflows float32 on ordinary vectors
# Any projection that keeps vectors apart has an entry of at least 1/sqrt(input dim) (1/64
# at 4096-d); one whose largest is below this would make unit vectors underflow to zero.
MIN_WEIGHT = 1e-4


def check_projection(matrix: np.ndarray, what: str) -> None:
    """A projection that can give every vector a direction: finite, not all zero, and small
    enough that a product with embeddings stays within float32."""
    largest = float(np.abs(matrix).max()) if matrix.size else 0.0
    if not np.isfinite(matrix).all() or largest > MAX_WEIGHT:
        raise SmecError(
            f"{what} holds NaN, inf or weights beyond +-{MAX_WEIGHT:g}; the artifact is "
            "broken: retrain it"
        )
    if largest == 0.0:
        raise SmecError(f"{what} is all zeros, so every vector would project to nothing; retrain")
    if largest < MIN_WEIGHT:  # a unit vector's projection would underflow when normalised
        raise SmecError(f"{what} has no weight above {MIN_WEIGHT:g} (largest {largest:.1e}), so "
                        "every vector would project to almost nothing; the artifact is "
                        "broken: retrain it")  # fmt: skip


def load_compressor(directory: str | Path) -> LinearCompressor:
    """Load any compressor artifact written by :meth:`LinearCompressor.save`."""
    from smec_index.compressors.registry import compressor_class
    from smec_index.training.config import SettingError

    config, tensors = load_artifact(directory)
    check_compressor_config(config, directory)
    try:
        cls = compressor_class(config["method"])
        return cls._from_artifact(config, tensors)
    except (KeyError, TypeError, AttributeError) as exc:
        raise SmecError(f"{directory}: config.json does not describe an artifact "
                        f"({type(exc).__name__}: {str(exc)[:80]}); retrain") from None  # fmt: skip
    except SettingError as exc:  # an unknown or invalid training setting in config.json
        raise SmecError(
            f"{directory}/config.json holds a bad setting, fix it or retrain: {exc}"
        ) from None


def load_projection(directory: str | Path) -> LinearCompressor:
    """An artifact's projections alone, for applying it: no training code, no torch.

    The result transforms exactly as :func:`load_compressor`'s does; its ``info`` keeps
    the artifact's method under ``"method"``.
    """
    config, tensors = load_artifact(directory)
    check_compressor_config(config, directory)
    try:
        projection = LinearCompressor._from_artifact(config, tensors)
    except (KeyError, TypeError) as exc:
        raise SmecError(f"{directory}: config.json does not describe an artifact "
                        f"({type(exc).__name__}: {str(exc)[:80]}); retrain") from None  # fmt: skip
    projection.info = {**projection.info, "method": config.get("method")}
    return projection


def check_input_dim(compressor: LinearCompressor, dim: int, source: str = "embeddings") -> None:
    """Refuse to apply an artifact to embeddings of another size."""
    if compressor.input_dim != dim:
        raise SmecError(
            f"the artifact was trained on {compressor.input_dim}-d embeddings but the {source} "
            f"are {dim}-d; use an artifact trained on the same embedding model"
        )
