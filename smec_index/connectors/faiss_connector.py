"""FAISS, embedded: one index file per collection, written with ``faiss.write_index``.

Index kinds and their parameters (defaults in brackets):

- ``flat``: exact search (``IndexFlatIP`` / ``IndexFlatL2``).
- ``hnsw``: ``IndexHNSWFlat`` with ``M`` [16], ``ef_construction`` [200], ``ef_search`` [64].
- ``ivf_pq``: ``IndexIVFPQ`` with ``nlist`` [256], ``nprobe`` [16], ``pq_m`` (required, a
  divisor of dim), ``pq_bits`` [8]; ``refine`` (optional) wraps it in ``IndexRefineFlat``,
  which re-ranks ``refine * k`` candidates by exact distance. It is trained on the vectors of
  the first ``add``, which must hold at least ``max(nlist, 2 ** pq_bits)`` rows (k-means
  needs a point per centroid); FAISS warns below 39 rows per centroid, and quality suffers.

Cosine vectors and queries are L2-normalised here and searched by inner product, so
``iterate`` gives the normalised vectors back. Flat and HNSW indexes reconstruct their
vectors exactly; PQ codes are lossy, so an ``ivf_pq`` index without ``refine`` also keeps
the vectors as ``vectors-<gen>.npy`` (with ``refine`` the flat re-ranking store holds them).
``memory_bytes`` is the serialized index, without that ``.npy``.

With ``gpu="auto"`` (or ``"on"``) and a GPU build of FAISS, flat and IVF-PQ indexes are
copied to all GPUs for searching; adds and writes stay on the CPU copy.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from smec_index.connectors.local_files import (
    HNSW_DEFAULTS,
    Collection,
    LocalConnector,
    int_params,
)
from smec_index.errors import SmecError

IVF_PQ_DEFAULTS = {"nlist": 256, "nprobe": 16, "pq_bits": 8}


def normalized(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm; zero rows stay zero."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / np.where(norms > 0, norms, 1.0), dtype=np.float32)


class FaissConnector(LocalConnector):
    """Collections as FAISS indexes under ``<data_dir>/faiss/<collection>/``."""

    name = "faiss"
    index_params = {
        "flat": (),
        "hnsw": tuple(HNSW_DEFAULTS),
        "ivf_pq": ("nlist", "nprobe", "pq_m", "pq_bits", "refine"),
    }

    def __init__(self, data_dir: str | os.PathLike[str] | None = None, gpu: str = "auto") -> None:
        """Open the FAISS part of a data directory.

        Args:
            data_dir: root of the data directory (default ``$SMEC_INDEX_DATA`` or
                ``./smec-data``).
            gpu: ``auto`` (search on GPUs when FAISS has any), ``on`` (require them) or
                ``off``.
        """
        super().__init__(data_dir)
        if gpu not in ("auto", "on", "off"):
            raise SmecError(f"gpu={gpu!r}: use 'auto', 'on' or 'off'")
        gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
        if gpu == "on" and gpus == 0:
            raise SmecError("gpu='on' but FAISS sees no GPU; pip install faiss-gpu, or gpu='auto'")
        self.use_gpu = gpu != "off" and gpus > 0

    def memory_bytes(self, collection: str) -> int:
        return int(faiss.serialize_index(self._load(collection).index).size)

    def _resolve_params(self, kind: str, dim: int, params: dict[str, Any]) -> dict[str, Any]:
        if kind == "flat":
            return {}
        if kind == "hnsw":
            return int_params(params, HNSW_DEFAULTS)
        if "pq_m" not in params:
            raise SmecError(f"faiss ivf_pq needs pq_m, a divisor of dim {dim} (e.g. {dim // 4})")
        resolved: dict[str, Any] = int_params(params, {**IVF_PQ_DEFAULTS, "pq_m": 0})
        if dim % resolved["pq_m"] or not 1 <= resolved["pq_bits"] <= 16:
            raise SmecError(
                f"faiss ivf_pq: pq_m={resolved['pq_m']} must divide dim {dim} and "
                f"pq_bits={resolved['pq_bits']} be 1 to 16"
            )
        refine = params.get("refine")
        if refine is not None:
            if isinstance(refine, bool) or not isinstance(refine, (int, float)) or refine < 1:
                raise SmecError(f"refine={refine!r}: use a number >= 1 (candidates per hit)")
            resolved["refine"] = refine
        return resolved

    def _init_index(self, col: Collection) -> None:
        spec, params = col.spec, col.spec.params
        metric = faiss.METRIC_L2 if spec.metric == "l2" else faiss.METRIC_INNER_PRODUCT
        if spec.index == "flat":
            col.index = faiss.IndexFlat(spec.dim, metric)
        elif spec.index == "hnsw":
            col.index = faiss.IndexHNSWFlat(spec.dim, params["M"], metric)
        else:
            quantizer = faiss.IndexFlat(spec.dim, metric)
            col.index = faiss.IndexIVFPQ(
                quantizer, spec.dim, params["nlist"], params["pq_m"], params["pq_bits"], metric
            )
            if params.get("refine") is not None:
                col.index = faiss.IndexRefineFlat(col.index)
            else:
                col.extra["vectors"] = np.zeros((0, spec.dim), dtype=np.float32)
        _apply_params(col)

    def _read_index(self, col: Collection, directory: Path) -> None:
        col.index = faiss.read_index(str(directory / col.files["index"]))
        if "vectors" in col.files:
            col.extra["vectors"] = np.load(directory / col.files["vectors"])
        _apply_params(col)

    def _write_index(self, col: Collection, directory: Path, generation: str) -> dict[str, str]:
        files = {"index": f"index-{generation}.faiss"}
        faiss.write_index(col.index, str(directory / files["index"]))
        if "vectors" in col.extra:
            files["vectors"] = f"vectors-{generation}.npy"
            np.save(directory / files["vectors"], col.extra["vectors"])
        return files

    def _add(self, col: Collection, vectors: np.ndarray, batch_size: int) -> None:
        if col.spec.metric == "cosine":
            vectors = normalized(vectors)
        if not col.index.is_trained:
            params = col.spec.params
            needed = max(params["nlist"], 2 ** params["pq_bits"])
            if len(vectors) < needed:
                raise SmecError(
                    f"faiss ivf_pq trains on the first add, which needs at least {needed} "
                    f"vectors (nlist={params['nlist']}, 2**pq_bits={2 ** params['pq_bits']}), "
                    f"got {len(vectors)}; add more at once or lower nlist/pq_bits"
                )
            col.index.train(vectors)
        for start in range(0, len(vectors), batch_size):
            col.index.add(vectors[start : start + batch_size])
        if "vectors" in col.extra:
            col.extra["vectors"] = np.concatenate([col.extra["vectors"], vectors])
        col.extra.pop("gpu", None)

    def _search(self, col: Collection, queries: np.ndarray, k: int) -> tuple[Any, Any]:
        if col.spec.metric == "cosine":
            queries = normalized(queries)
        distances, labels = self._search_index(col).search(queries, k)
        return labels, (-distances if col.spec.metric == "l2" else distances)

    def _vectors(self, col: Collection, start: int, stop: int) -> np.ndarray:
        if "vectors" in col.extra:
            return col.extra["vectors"][start:stop]
        return col.index.reconstruct_n(start, stop - start)

    def _search_index(self, col: Collection) -> Any:
        """The index to search: a GPU copy of flat and IVF-PQ indexes when GPUs are in use."""
        if not self.use_gpu or col.spec.index == "hnsw":
            return col.index
        if "gpu" not in col.extra:
            try:
                col.extra["gpu"] = _to_gpus(col.index)
            except RuntimeError as exc:
                warnings.warn(f"faiss: searching {col.name!r} on CPU ({exc})", stacklevel=3)
                col.extra["gpu"] = col.index
        return col.extra["gpu"]


def _apply_params(col: Collection) -> None:
    """Search-time settings from the spec (the spec wins over what the file holds)."""
    params = col.spec.params
    if col.spec.index == "hnsw":
        col.index.hnsw.efConstruction = params["ef_construction"]
        col.index.hnsw.efSearch = params["ef_search"]
    elif col.spec.index == "ivf_pq":
        faiss.extract_index_ivf(col.index).nprobe = params["nprobe"]
        if params.get("refine") is not None:
            col.index.k_factor = float(params["refine"])


def _to_gpus(index: Any) -> Any:
    """A copy on all GPUs; with a refine stage only the IVF-PQ part moves, re-ranking stays."""
    if isinstance(index, faiss.IndexRefine):
        base = faiss.index_cpu_to_all_gpus(faiss.downcast_index(index.base_index))
        gpu_index = faiss.IndexRefine(base, index.refine_index)
        gpu_index.k_factor = index.k_factor
        gpu_index.referenced_objects = [base, index]  # keep both alive as long as the copy
        return gpu_index
    return faiss.index_cpu_to_all_gpus(index)
