"""hnswlib, embedded: one HNSW graph per collection, written with ``save_index``.

The one index kind is ``hnsw`` with ``M``, ``ef_construction`` and ``ef_search`` (hnswlib's
``ef``, which its files do not keep, so it is set again from the spec on every load).
Spaces are hnswlib's ``cosine``, ``ip`` and ``l2``. Cosine vectors and queries arrive unit
length (the connector contract normalises them, in float64 where hnswlib's float32 norm of a
row of 1e-30 values underflows to 0), so ``iterate`` gives them back normalised. hnswlib
returns distances; scores are ``1 - d`` for cosine and ip (the similarity) and ``-d``
(negated squared L2) for l2. Capacity starts at 1024 points and at least doubles when an
add needs more. Upserting a stored id updates its point in place (hnswlib re-links it).
``index_bytes`` is the serialized index (vectors, graph, labels) as ``save_index`` writes
it, measured with the capacity trimmed to the count so that growth slack is not counted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hnswlib
import numpy as np

from smec_index.connectors.local.store import Collection, LocalBackend

INITIAL_CAPACITY = 1024
SEED = 100


class HnswlibBackend(LocalBackend):
    """Collections as hnswlib indexes under ``<data_dir>/hnswlib/<collection>/``."""

    name = "hnswlib"
    index_kinds = {"hnsw": ()}
    index_bytes_method = "hnswlib save_index file, capacity trimmed to the count"

    def _index_bytes(self, col: Collection) -> int:
        return (self.root / col.name / col.files["index"]).stat().st_size

    def _new(self, col: Collection) -> Any:
        return hnswlib.Index(space=col.spec.metric, dim=col.spec.dim)

    def _init_index(self, col: Collection) -> None:
        col.index = self._new(col)
        params = col.spec.params
        col.index.init_index(
            max_elements=INITIAL_CAPACITY,
            ef_construction=params["ef_construction"],
            M=params["M"],
            random_seed=SEED,
        )
        col.index.set_ef(params["ef_search"])
        col.extra["ef"] = params["ef_search"]

    def _read_index(self, col: Collection, directory: Path) -> None:
        col.index = self._new(col)
        col.index.load_index(str(directory / col.files["index"]))
        col.index.set_ef(col.spec.params["ef_search"])
        col.extra["ef"] = col.spec.params["ef_search"]

    def _index_count(self, col: Collection) -> int | None:
        return int(col.index.get_current_count())

    def _write_index(self, col: Collection, directory: Path, generation: str) -> dict[str, str]:
        name = f"index-{generation}.bin"
        # Trimmed, the file holds the points and their links, not the growth slack.
        col.index.resize_index(max(1, col.index.get_current_count()))
        col.index.save_index(str(directory / name))
        return {"index": name}

    def _append(self, col: Collection, vectors: np.ndarray) -> None:
        first = len(col.ids)
        needed = first + len(vectors)
        capacity = col.index.get_max_elements()
        if needed > capacity:
            col.index.resize_index(max(needed, 2 * capacity, INITIAL_CAPACITY))
        col.index.add_items(vectors, np.arange(first, needed))

    def _replace(self, col: Collection, rows: np.ndarray, vectors: np.ndarray) -> None:
        col.index.add_items(vectors, rows)  # an existing label is updated in place

    def _search(
        self, col: Collection, queries: np.ndarray, k: int, params: dict[str, int]
    ) -> tuple[Any, Any]:
        # hnswlib keeps one ef per index (its knn_query takes none), so a call with another
        # ef_search sets it; concurrent searches of one collection with different values
        # may run with either.
        if col.extra.get("ef") != params["ef_search"]:
            col.index.set_ef(params["ef_search"])
            col.extra["ef"] = params["ef_search"]
        labels = np.full((len(queries), k), -1, dtype=np.int64)
        distances = np.full((len(queries), k), np.inf, dtype=np.float32)
        try:
            labels[:], distances[:] = col.index.knn_query(queries, k=k)
        except RuntimeError:
            # hnswlib refuses a batch where any query finds fewer than k points (k near the
            # collection size, or points the graph cannot reach): keep what each one finds.
            for row, query in enumerate(queries):
                found, got = _most_found(col.index, query[None], k)
                labels[row, :found], distances[row, :found] = got
        scores = -distances if col.spec.metric == "l2" else 1.0 - distances
        return labels, scores

    def _raw(self, col: Collection, params: dict[str, int]) -> Any:
        col.index.set_ef(params["ef_search"])
        col.extra["ef"] = params["ef_search"]
        return lambda queries, k: col.index.knn_query(queries, k=k)

    def _engine(self, col: Collection, params: dict[str, int]) -> Any:
        """hnswlib's ``knn_query`` (it releases the GIL); its one ef is set only when
        another search changed it (see :meth:`_search`)."""
        ef, l2 = params["ef_search"], col.spec.metric == "l2"

        def search(queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
            if col.extra.get("ef") != ef:
                col.index.set_ef(ef)
                col.extra["ef"] = ef
            try:
                labels, distances = col.index.knn_query(queries, k=k)
            except RuntimeError:  # fewer than k found for some query: the careful path
                return self._search(col, queries, k, params)
            # uint64 labels index the id table as they are (hnswlib raises, never pads -1)
            return labels, (-distances if l2 else 1.0 - distances)

        return search

    def _vectors(self, col: Collection, start: int, stop: int) -> np.ndarray:
        return col.index.get_items(np.arange(start, stop), return_type="numpy")


def _most_found(index: Any, query: np.ndarray, k: int) -> tuple[int, Any]:
    """The largest ``found <= k`` hnswlib answers for one query (by bisection), and its hits."""
    low, best, high = 0, (np.empty((1, 0)), np.empty((1, 0))), k + 1
    while high - low > 1:
        middle = (low + high) // 2
        try:
            best, low = index.knn_query(query, k=middle), middle
        except RuntimeError:
            high = middle
    return low, best

