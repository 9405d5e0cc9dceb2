"""Training-free baselines: truncation and PCA."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from smec_index.compressors.base import LinearCompressor
from smec_index.data import RetrievalData
from smec_index.errors import SmecError


def corpus_covariance(vectors: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """D x D covariance, accumulated in chunks so a memory-mapped corpus stays on disk."""
    n, dim = vectors.shape
    gram, total = np.zeros((dim, dim)), np.zeros(dim)
    for start in range(0, n, chunk):
        block = np.asarray(vectors[start : start + chunk], dtype=np.float64)
        gram += block.T @ block
        total += block.sum(axis=0)
    mean = total / n
    return (gram - n * np.outer(mean, mean)) / max(n - 1, 1)


class TrainingFree(LinearCompressor):
    """A compressor fitted without training: it takes a seed and no settings.

    A setting passed here would be recorded in the artifact yet change nothing, so it is
    refused (``make_compressor`` is the place that tolerates training settings, for loops
    over every method).
    """

    def __init__(self, dims: Sequence[int], seed: int = 0, **settings: Any) -> None:
        if settings:
            from smec_index.training.config import SettingError

            raise SettingError(
                f"{self.method} is fitted without training and takes no settings; drop "
                f"{', '.join(sorted(settings))}"
            )
        super().__init__(dims, seed=seed)


class Truncation(TrainingFree):
    """Keep the first ``d`` dimensions (what a Matryoshka-trained model expects)."""

    method = "truncate"

    def fit(self, data: RetrievalData, qrels=None) -> Truncation:
        self._start_fit(data)
        if data.corpus.vectors.shape[0] == 0:
            raise SmecError("truncate: the corpus has no documents; embed the corpus first")
        eye = np.eye(data.dim, dtype=np.float32)
        self.projections = {d: eye[:, :d].copy() for d in self.dims}
        return self


class PCA(TrainingFree):
    """Principal components of the corpus.

    Components are fitted on the mean-centred corpus, then applied to the raw vectors (no
    mean subtraction at transform time). For unit-length text embeddings this keeps the
    cosine geometry the model was trained for; subtracting the mean costs about 0.02 nDCG@10
    on SciFact at 128 dims (0.6107 vs 0.6316).
    """

    method = "pca"

    def fit(self, data: RetrievalData, qrels=None) -> PCA:
        """Fit on the corpus; refuse one too small to define the components asked for.

        One document has no variance (the explained-variance ratios come out NaN), and n
        documents span at most n - 1 directions, so components beyond that are arbitrary.
        """
        self._start_fit(data)
        n = int(data.corpus.vectors.shape[0])
        if n < 2:
            raise SmecError(
                f"pca needs at least 2 documents to measure variance; the corpus has {n}: "
                "use a larger corpus or --method truncate"
            )
        top = self.dims[0]
        if n <= top:
            raise SmecError(
                f"pca to {top} dims needs at least {top + 1} documents (n documents span at "
                f"most n-1 directions); the corpus has {n}: use dims <= {n - 1} or a larger corpus"
            )
        covariance = corpus_covariance(data.corpus.vectors)
        eigenvalues, eigenvectors = np.linalg.eigh(covariance)
        if not eigenvalues.sum() > 0:  # identical documents: the ratios below would be NaN
            raise SmecError(
                "pca: every document has the same vector, so there is no variance to find; "
                "check the embeddings (truncation, which keeps the leading dims, needs no "
                "variance)"
            )
        order = np.argsort(eigenvalues)[::-1]
        components = eigenvectors[:, order]
        # Fix the sign of each component so the fit is deterministic across BLAS builds.
        signs = np.sign(components[np.argmax(np.abs(components), axis=0), range(data.dim)])
        components = (components * signs).astype(np.float32)
        self.projections = {d: components[:, :d].copy() for d in self.dims}
        explained = eigenvalues[order] / eigenvalues.sum()
        self.info = {"explained_variance": {str(d): float(explained[:d].sum()) for d in self.dims}}
        return self
