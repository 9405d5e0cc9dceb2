"""FAISS, embedded: one index file per collection, written with ``faiss.write_index``.

Index kinds and their parameters (the shared defaults of
:data:`smec_index.connectors.base.INDEX_DEFAULTS`):

- ``flat``: exact search (``IndexFlatIP`` / ``IndexFlatL2``).
- ``hnsw``: ``IndexHNSWFlat`` with ``M``, ``ef_construction``, ``ef_search``.
- ``ivf_flat``: an inverted file (``nlist`` lists, ``nprobe`` probed) over the encoding's
  codes: ``IndexIVFFlat``, ``IndexIVFScalarQuantizer`` or ``IndexIVFRaBitQ``.
- ``encoding`` (flat, hnsw and ivf_flat): how the index stores each vector. ``float32``
  (default); ``sq8`` / ``sq4`` (``ScalarQuantizer`` 8 / 4 bits per dimension:
  ``IndexScalarQuantizer``, ``IndexHNSWSQ``, ``IndexIVFScalarQuantizer``); ``pq<m>`` (``m``
  bytes: ``IndexPQ``, ``IndexHNSWPQ``, 8-bit codes, ``m`` divides dim; behind an inverted
  file it is ``ivf_pq``); ``opq<m>`` (flat and hnsw: the same codes after an OPQ rotation,
  ``IndexPreTransform(OPQMatrix, IndexPQ / IndexHNSWPQ)``, trained with the codes; the
  ``d x d`` rotation is counted in ``index_bytes``); ``rabitq`` (flat and ivf_flat:
  ``IndexRaBitQ``, ``IndexIVFRaBitQ``, 1 bit per dimension plus two floats); ``binary``
  (flat only: ``IndexLSH`` over the sign of each dimension, ranked by Hamming distance with
  no rescoring, scores ``1 - 2 h / dim``; cosine or ip). Encoded and inverted-file indexes
  train on the first ``add`` (like ``ivf_pq``: ivf_flat needs ``nlist`` rows) and keep the
  vectors beside the index for ``get``/``iterate``; searching uses the codes only.
- ``ivf_pq``: ``IndexIVFPQ`` with ``nlist``, ``nprobe``, ``pq_m`` (a divisor of dim),
  ``pq_bits``; ``refine`` (optional, FAISS only) wraps it in ``IndexRefineFlat``,
  which re-ranks ``refine * k`` candidates by exact distance. It is trained on the vectors of
  the first ``add``, which must hold at least ``max(nlist, 2 ** pq_bits)`` rows (k-means
  needs a point per centroid); FAISS warns below 39 rows per centroid, and quality suffers.

Cosine vectors and queries arrive L2-normalised (the connector contract normalises them once
for every backend) and are searched by inner product, so ``iterate`` gives the normalised
vectors back. One exception: a cosine collection's HNSW
over product codes (``hnsw`` + ``pq<m>`` or ``opq<m>``) is built and searched with L2 on those unit
vectors, the same order for the vectors themselves; scores come back as ``1 - d / 2``. Over
the codes (whose reconstructions are not unit vectors) L2 and inner product rank a little
differently, so flat PQ (inner product) and HNSW PQ no longer estimate the same score.
Built with inner product, FAISS's graph over PQ codes found about half of what flat PQ finds
with the same codes, and less the larger ``ef_construction``;
``test_hnsw_over_product_codes_keeps_flat_recall`` measures both. An ``ip`` collection, or a
cosine one written before this, keeps the inner-product graph.

Flat and HNSW indexes reconstruct their vectors exactly; PQ codes are lossy, so an
``ivf_pq`` index without ``refine`` also keeps the vectors as ``vectors-<gen>.npy`` (with
``refine`` the flat re-ranking store holds them). ``index_bytes`` is the serialized index
(``faiss.serialize_index``), without that ``.npy``.

Upserting stored ids rebuilds the index from its vectors with the new ones in their rows
(FAISS HNSW cannot replace a point; IVF keeps its trained quantizer), which is fine for
the occasional replacement and slow for streams of them.

With ``gpu="auto"`` (or ``"on"``) and a GPU build of FAISS, flat and inverted-file indexes
are copied to all GPUs for searching; adds and writes stay on the CPU copy. (This machine has
no GPU: that path is not exercised by the tests here.)
"""

from __future__ import annotations

import logging
import math
import os
import threading
import warnings
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from smec_index.codes import product_code_bytes
from smec_index.connectors.local.store import Collection, LocalBackend
from smec_index.connectors.storage import native_notes
from smec_index.errors import SmecError

log = logging.getLogger(__name__)


class FaissBackend(LocalBackend):
    """Collections as FAISS indexes under ``<data_dir>/faiss/<collection>/``."""

    name = "faiss"
    index_kinds = {
        "flat": ("encoding",),
        "hnsw": ("encoding",),
        "ivf_flat": ("encoding",),
        "ivf_pq": ("refine",),
    }
    index_bytes_method = "faiss.serialize_index"

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
        self._gpu_lock = threading.Lock()

    def _index_bytes(self, col: Collection) -> int:
        return int(faiss.serialize_index(self._trained(col)).size)

    def check(self, spec) -> None:
        """The values of ``refine`` and ``encoding`` (the connector checked the names)."""
        refine = spec.params.get("refine")
        if refine is not None and (
            isinstance(refine, bool) or not isinstance(refine, (int, float))
            or not math.isfinite(refine) or not 1 <= refine <= MAX_REFINE
        ):  # fmt: skip
            raise SmecError(f"refine={refine!r}: use a number from 1 to {MAX_REFINE} "
                            "(candidates per hit re-ranked)")
        check_encoding(spec.params.get("encoding"), spec.dim, spec.index, spec.metric)
        nlist = spec.params.get("nlist")
        if isinstance(nlist, int) and nlist > MAX_NLIST:  # allocated when the index is made:
            # 2**30 raised a raw MemoryError, 1e8 took 39 s and 15 GB before any point came
            raise SmecError(f"nlist={nlist:,}: FAISS allocates every list when the index is "
                            f"made; use at most {MAX_NLIST:,} (about 4 to 16 x sqrt(points) "
                            "is usual, and never more than the points you add)")  # fmt: skip

    def create(self, collection: str, spec) -> None:
        self.check(spec)
        super().create(collection, spec)

    def _init_index(self, col: Collection) -> None:
        spec, params = col.spec, col.spec.params
        metric = faiss.METRIC_L2 if spec.metric == "l2" else faiss.METRIC_INNER_PRODUCT
        encoding = params.get("encoding") or "float32"
        if spec.index == "ivf_flat":
            col.index = _inverted_file(encoding, spec.dim, params["nlist"], metric)
            col.extra["vectors"] = np.zeros((0, spec.dim), dtype=np.float32)
        elif encoding != "float32":
            if spec.metric == "cosine" and spec.index == "hnsw" and product_code_bytes(encoding):
                metric = faiss.METRIC_L2  # unit vectors: same order, a working graph
            col.index = _encoded_index(spec.index, encoding, spec.dim, params, metric)
            col.extra["vectors"] = np.zeros((0, spec.dim), dtype=np.float32)
        elif spec.index == "flat":
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

    def _index_count(self, col: Collection) -> int | None:
        return int(col.index.ntotal) if col.index.is_trained else None

    def _read_index(self, col: Collection, directory: Path) -> None:
        col.index = faiss.read_index(str(directory / col.files["index"]))
        if isinstance(col.index, faiss.IndexPreTransform) and not col.index.is_trained:
            # FAISS writes an OPQMatrix as a plain LinearTransform, which cannot train: an
            # opq<m> index written before its first training starts afresh (it holds nothing).
            col.index = _encoded_index(
                col.spec.index,
                col.spec.params["encoding"],
                col.spec.dim,
                col.spec.params,
                col.index.metric_type,
            )
        if "vectors" in col.files:
            col.extra["vectors"] = np.load(directory / col.files["vectors"])
        if "pending" in col.files:  # added, not yet enough to train on
            col.extra["pending"] = [np.load(directory / col.files["pending"])]
        _apply_params(col)

    def _write_index(self, col: Collection, directory: Path, generation: str) -> dict[str, str]:
        files = {"index": f"index-{generation}.faiss"}
        pending = col.extra.get("pending")
        if pending and sum(len(p) for p in pending) < _training_need(col.spec)[0]:
            # Too few to train on yet: the vectors are kept as they came, with the untrained
            # index, and trained on at the first read once there are enough (a commit that
            # refused instead lost every point the collection had acknowledged).
            files["pending"] = f"pending-{generation}.npy"
            np.save(directory / files["pending"], np.concatenate(pending))
            faiss.write_index(col.index, str(directory / files["index"]))
            if "vectors" in col.extra:  # the exact copy kept beside lossy codes: still empty
                files["vectors"] = f"vectors-{generation}.npy"
                np.save(directory / files["vectors"], col.extra["vectors"])
            return files
        faiss.write_index(self._trained(col), str(directory / files["index"]))
        if "vectors" in col.extra:
            files["vectors"] = f"vectors-{generation}.npy"
            np.save(directory / files["vectors"], col.extra["vectors"])
        return files

    def _append(self, col: Collection, vectors: np.ndarray) -> None:
        if not col.index.is_trained:
            # IVF-PQ trains once, on everything added before the first read or flush.
            col.extra.setdefault("pending", []).append(vectors)
            return
        self._add_trained(col, vectors)

    def _add_trained(self, col: Collection, vectors: np.ndarray) -> None:
        col.index.add(vectors)
        if "vectors" in col.extra:
            col.extra["vectors"] = np.concatenate([col.extra["vectors"], vectors])
        col.extra.pop("gpu", None)

    def _trained(self, col: Collection) -> Any:
        """The index, trained on the pending vectors first where it waits for them (by one
        reader: the others wait for it)."""
        if "pending" not in col.extra:
            return col.index
        with self._training:
            return self._train_pending(col)

    def _train_pending(self, col: Collection) -> Any:
        # "pending" stays until its vectors are in the index: a reader that finds it waits
        # for this one, and a failed training loses nothing added.
        pending = col.extra.get("pending")
        if pending:
            vectors = np.concatenate(pending)
            needed, what, why, remedy = _training_need(col.spec)
            if len(vectors) < needed:
                raise SmecError(
                    f"faiss {what} trains on the vectors added before its first read, which "
                    f"needs at least {why}, got {len(vectors)}; add more first{remedy}"
                )
            with native_notes("faiss"):
                col.index.train(vectors)
            self._add_trained(col, vectors)
        col.extra.pop("pending", None)
        return col.index

    def _replace(self, col: Collection, rows: np.ndarray, vectors: np.ndarray) -> None:
        if not col.index.is_trained:  # every row is still pending: replace it there
            pending = np.concatenate(col.extra.get("pending") or [vectors[:0]])
            pending[rows] = vectors
            col.extra["pending"] = [pending]
            return
        stored = np.array(self._vectors(col, 0, len(col.ids)), dtype=np.float32)
        stored[rows] = vectors
        col.index.reset()  # an IVF index keeps its trained quantizer
        col.index.add(stored)
        if "vectors" in col.extra:
            col.extra["vectors"] = stored
        col.extra.pop("gpu", None)

    def _search(
        self, col: Collection, queries: np.ndarray, k: int, params: dict[str, int]
    ) -> tuple[Any, Any]:
        self._trained(col)
        index = self._search_index(col)
        on_gpu = index is not col.index
        if isinstance(index, faiss.IndexPreTransform):
            # Rotate here and search the codes' own index: FAISS applies the rotation with a
            # BLAS call per search, which stalls once several threads search at a time (8
            # threads: 1,800 single-query searches a second against 17,000 this way).
            queries, index = queries @ _rotation(col).T, _graph(index)
        if on_gpu and "nprobe" in params:
            # GPU copies on several GPUs (IndexReplicas) refuse SearchParameters: set nprobe
            # on the copy itself, one search at a time.
            with self._gpu_lock:
                target = index.base_index if isinstance(index, faiss.IndexRefine) else index
                faiss.GpuParameterSpace().set_index_parameter(target, "nprobe", params["nprobe"])
                distances, labels = index.search(queries, k)
        else:
            distances, labels = index.search(queries, k, params=_search_parameters(col, k, params))
        if col.spec.metric == "l2":
            return labels, -distances
        if isinstance(col.index, faiss.IndexLSH):  # Hamming distances of the sign bits
            return labels, 1.0 - 2.0 * distances / col.spec.dim
        if col.index.metric_type == faiss.METRIC_L2:  # cosine over an L2 graph (HNSW + PQ)
            return labels, 1.0 - distances / 2.0  # unit vectors: |q - x|^2 = 2 - 2 q.x
        return labels, distances

    def _lean(self, col: Collection) -> bool:
        """Whether FAISS's ``search`` answers this index's searches as they are: a CPU
        index of unit vectors by inner product (no GPU copy, rotation or sign bits)."""
        self._trained(col)
        return not (
            self.use_gpu
            or isinstance(col.index, (faiss.IndexLSH, faiss.IndexPreTransform))
            or col.spec.metric != "cosine"
            or col.index.metric_type != faiss.METRIC_INNER_PRODUCT
        )

    def _raw(self, col: Collection, params: dict[str, int]) -> Any:
        if not self._lean(col):
            return None
        index, bound = col.index, {}

        def search(queries: np.ndarray, k: int) -> Any:
            if k not in bound:
                bound[k] = _search_parameters(col, k, params)
            return index.search(queries, k, params=bound[k])

        return search

    def _engine(self, col: Collection, params: dict[str, int]) -> Any:
        """:meth:`_raw` answered as ``(labels, scores)``; queries arrive unit length
        (:class:`Searcher`). Indexes that need more per call (GPU copies, a rotation, sign
        bits, cosine over an L2 graph) take :meth:`_search`."""
        raw = self._raw(col, params)
        if raw is None:
            return super()._engine(col, params)

        def search(queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
            distances, labels = raw(queries, k)
            return labels, distances

        return search

    def _vectors(self, col: Collection, start: int, stop: int) -> np.ndarray:
        pending = col.extra.get("pending")
        if pending and not col.index.is_trained:  # every row waits there, in order: read it
            return np.concatenate(pending)[start:stop]  # without training (a search trains)
        self._trained(col)
        if "vectors" in col.extra:
            return col.extra["vectors"][start:stop]
        return col.index.reconstruct_n(start, stop - start)

    def _search_index(self, col: Collection) -> Any:
        """The index to search: a GPU copy of flat and inverted-file indexes when GPUs are in
        use."""
        # FAISS has no GPU IndexLSH, nor IndexPQ / IndexHNSWPQ (behind an OPQ rotation)
        if (
            not self.use_gpu
            or col.spec.index == "hnsw"
            or isinstance(col.index, (faiss.IndexLSH, faiss.IndexPreTransform))
        ):
            return col.index
        if "gpu" not in col.extra:
            try:
                col.extra["gpu"] = _to_gpus(col.index)
            except RuntimeError as exc:
                warnings.warn(f"faiss: searching {col.name!r} on CPU ({exc})", stacklevel=3)
                col.extra["gpu"] = col.index
        return col.extra["gpu"]


ENCODINGS = ("float32", "sq8", "sq4", "pq<m>", "opq<m>", "rabitq", "binary")
_SQ = {"sq8": "QT_8bit", "sq4": "QT_4bit"}


def check_encoding(encoding: str | None, dim: int, index: str, metric: str) -> None:
    """A one-line error for an encoding FAISS cannot build here."""
    if encoding in (None, "float32", *_SQ):
        return
    if encoding == "binary":
        if index != "flat":
            raise SmecError(
                "faiss binary needs index flat (IndexLSH: an exhaustive Hamming scan); a graph "
                "over binary codes with rescoring is qdrant's quantization binary"
            )
        if metric == "l2":
            raise SmecError(
                "faiss binary ranks by the signs of the coordinates, which says nothing of L2 "
                "distance; use metric cosine or ip, or another encoding"
            )
        return
    if encoding == "rabitq":
        if index not in ("flat", "ivf_flat"):
            raise SmecError(
                "faiss rabitq needs index flat or ivf_flat (IndexRaBitQ, IndexIVFRaBitQ)"
            )
        return
    if isinstance(encoding, str) and encoding.startswith("opq") and index not in ("flat", "hnsw"):
        raise SmecError(f"faiss {encoding} needs index flat or hnsw (an OPQ rotation before PQ)")
    if index == "ivf_flat":
        raise SmecError(
            f"faiss ivf_flat encoding {encoding!r}: use float32, sq8, sq4 or rabitq (product "
            "codes behind an inverted file are index ivf_pq)"
        )
    m = product_code_bytes(encoding) if isinstance(encoding, str) else None
    if m is None:
        raise SmecError(f"faiss encoding {encoding!r}: use one of {', '.join(ENCODINGS)}")
    if dim % m:
        raise SmecError(f"faiss encoding {encoding}: {m} bytes must divide dim {dim}")


def _encoded_index(kind: str, encoding: str, dim: int, params: dict, metric: int) -> Any:
    if encoding in _SQ:
        qtype = getattr(faiss.ScalarQuantizer, _SQ[encoding])
        if kind == "hnsw":
            return faiss.IndexHNSWSQ(dim, qtype, params["M"], metric)
        return faiss.IndexScalarQuantizer(dim, qtype, metric)
    if encoding == "rabitq":
        return faiss.IndexRaBitQ(dim, metric)
    if encoding == "binary":
        return faiss.IndexLSH(dim, dim, False, False)  # one sign bit per dim, no rotation
    m = product_code_bytes(encoding)
    if kind == "hnsw":
        codes = faiss.IndexHNSWPQ(dim, m, params["M"], 8, metric)
    else:
        codes = faiss.IndexPQ(dim, m, 8, metric)
    if not encoding.startswith("opq"):
        return codes
    rotation = faiss.OPQMatrix(dim, m)
    # OPQ alternates a rotation and a PQ fit (50 times by default); the PQ it fits is ours,
    # so that FAISS's "please provide more training points" warning, printed by every
    # sub-quantizer's k-means, comes once per sub-quantizer (from the codes' own training,
    # as for pq<m>) rather than 50 times over. The threshold changes the warning only.
    fitting = faiss.ProductQuantizer(dim, m, 8)
    fitting.cp.min_points_per_centroid = 1
    rotation.pq = fitting
    index = faiss.IndexPreTransform(rotation, codes)
    index.referenced_objects = [*getattr(index, "referenced_objects", []), fitting]
    return index


def _rotation(col: Collection) -> np.ndarray:
    """The trained OPQ rotation (``d x d``) of an ``opq<m>`` index: codes = PQ(x @ R.T)."""
    if "rotation" not in col.extra:
        if not col.index.is_trained:  # never cache a rotation still being fitted
            raise SmecError(f"faiss {col.spec.params['encoding']}: searched before training")
        opq = faiss.downcast_VectorTransform(col.index.chain.at(0))
        col.extra["rotation"] = faiss.vector_to_array(opq.A).reshape(opq.d_out, opq.d_in)
    return col.extra["rotation"]


def _graph(index: Any) -> Any:
    """The HNSW index itself (behind an OPQ rotation, the index it transforms for)."""
    if isinstance(index, faiss.IndexPreTransform):
        return faiss.downcast_index(index.index)
    return index


def _inverted_file(encoding: str, dim: int, nlist: int, metric: int) -> Any:
    quantizer = faiss.IndexFlat(dim, metric)
    if encoding in _SQ:
        qtype = getattr(faiss.ScalarQuantizer, _SQ[encoding])
        return faiss.IndexIVFScalarQuantizer(quantizer, dim, nlist, qtype, metric)
    if encoding == "rabitq":
        return faiss.IndexIVFRaBitQ(quantizer, dim, nlist, metric)
    return faiss.IndexIVFFlat(quantizer, dim, nlist, metric)


MAX_NLIST = 2**20  # inverted lists: 16 x sqrt(points) of 4 billion points
MAX_REFINE = 1000  # candidates per hit: refine * k are re-ranked; beyond this, a typo (inf)


def _training_need(spec) -> tuple[int, str, str, str]:
    """Rows an index must be trained on (k-means needs a point per centroid), and how an
    error says so: what trains, why that many, and what else can be lowered."""
    params = spec.params
    if spec.index == "ivf_flat":
        nlist = params["nlist"]
        return nlist, "ivf_flat", f"nlist={nlist}", " or lower nlist"
    if spec.index == "ivf_pq":
        needed = max(params["nlist"], 2 ** params["pq_bits"])
        why = f"{needed} (nlist={params['nlist']}, 2**pq_bits={2 ** params['pq_bits']})"
        return needed, "ivf_pq", why, " or lower nlist/pq_bits"
    needed = 256 if product_code_bytes(str(params.get("encoding"))) else 1  # PQ: 256 centroids
    return needed, str(params.get("encoding")), str(needed), ""


def _search_parameters(col: Collection, k: int, params: dict[str, int]) -> Any:
    """One call's FAISS ``SearchParameters`` (nothing is set on the shared index, so
    concurrent searches with different values do not race)."""
    if col.spec.index == "hnsw":  # as the other backends do: ef = max(ef_search, k)
        # FAISS allocates its beam up front: a beam wider than the collection finds nothing
        # more and would cost 16 GB at ef = 2**31 - 1.
        ef = min(params["ef_search"], max(col.index.ntotal, 1))
        return faiss.SearchParametersHNSW(efSearch=max(ef, k))
    if col.spec.index in ("ivf_flat", "ivf_pq"):
        ivf = faiss.SearchParametersIVF(nprobe=params["nprobe"])
        if isinstance(col.index, faiss.IndexRefine):
            return faiss.IndexRefineSearchParameters(
                k_factor=col.index.k_factor, base_index_params=ivf
            )
        return ivf
    return None


def _apply_params(col: Collection) -> None:
    """Search-time settings from the spec (the spec wins over what the file holds)."""
    params = col.spec.params
    if col.spec.index == "hnsw":
        graph = _graph(col.index)
        graph.hnsw.efConstruction = params["ef_construction"]
        graph.hnsw.efSearch = params["ef_search"]
    elif col.spec.index in ("ivf_flat", "ivf_pq"):
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
