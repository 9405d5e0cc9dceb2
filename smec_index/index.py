"""Compressed collections: project with an artifact, store in a backend, search the same way.

:class:`CompressedIndex` is the Python API: it pairs a connector collection with the
compressor that made its vectors, so new full-size query vectors are projected exactly as
the corpus was. Which artifact and model built a collection is recorded in a *manifest*
(``<data_dir>/manifests/<backend>/<collection>.json``) written when the build completes.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from smec_index.compressors.base import LinearCompressor, check_input_dim, load_compressor
from smec_index.connectors import Connector, IndexSpec, open_connector
from smec_index.errors import SmecError
from smec_index.evaluate import normalize


@dataclass
class Manifest:
    """What a collection holds and how to query it."""

    backend: str
    collection: str
    dim: int
    input_dim: int
    artifact: str | None  # None: the original vectors, no projection
    model: str | None  # the embeddings' model as their meta.json names it (None: unknown)
    dataset: str | None
    spec: dict[str, Any]
    count: int

    @staticmethod
    def path(data_dir: Path, backend: str, collection: str) -> Path:
        return Path(data_dir) / "manifests" / backend / f"{collection}.json"

    def save(self, data_dir: Path) -> Path:
        path = self.path(data_dir, self.backend, self.collection)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1) + "\n")
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, data_dir: Path, backend: str, collection: str) -> Manifest:
        path = cls.path(data_dir, backend, collection)
        if not path.is_file():
            raise SmecError(
                f"no collection {collection!r} built for {backend} under {data_dir}; run "
                f"`smec-index build --backend {backend}` first (or pass --data-dir)"
            )
        try:
            return cls(**json.loads(path.read_text()))
        except (json.JSONDecodeError, TypeError):
            raise SmecError(f"{path}: corrupt manifest; rebuild the collection") from None


class CompressedIndex:
    """A backend collection plus the projection its vectors went through.

    Args:
        connector: an open connector.
        collection: collection name.
        compressor: the artifact that projected the corpus (None: original vectors).
        dim: the stored dim (one of the compressor's dims, or its input dim).
    """

    def __init__(
        self,
        connector: Connector,
        collection: str,
        compressor: LinearCompressor | None,
        dim: int,
    ) -> None:
        if compressor is not None and dim != compressor.input_dim and dim not in compressor.dims:
            have = ", ".join(str(d) for d in compressor.dims)
            raise SmecError(
                f"--dim {dim}: the artifact has dims {have} (and {compressor.input_dim}, the "
                "original); pick one of those or train an artifact with that dim"
            )
        self.connector = connector
        self.collection = collection
        self.compressor = compressor
        self.dim = dim
        self.manifest: Manifest | None = None  # set when reopened from a manifest

    def project(self, vectors: np.ndarray) -> np.ndarray:
        """Full-size vectors -> the stored space (projected and L2-normalised)."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if self.compressor is not None:
            check_input_dim(self.compressor, vectors.shape[1], "vectors")
        elif vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise SmecError(
                f"vectors of shape {vectors.shape} for a collection of original {self.dim}-d "
                "vectors; embed queries with the model that embedded the corpus"
            )
        if self.compressor is None or self.dim == self.compressor.input_dim:
            return normalize(vectors)
        return self.compressor.transform(vectors, self.dim)

    def create(
        self,
        spec_params: dict[str, Any],
        index: str,
        metric: str = "cosine",
        overwrite: bool = False,
    ) -> IndexSpec:
        spec = IndexSpec(dim=self.dim, metric=metric, index=index, params=spec_params)
        self.connector.create(self.collection, spec, overwrite=overwrite)
        return spec

    def add(self, ids, vectors: np.ndarray, payloads=None, batch_size: int = 1000) -> None:
        """Project full-size ``vectors`` and insert them with their ids and payloads."""
        self.connector.add(self.collection, ids, self.project(vectors), payloads, batch_size)

    def search(self, vectors: np.ndarray, k: int = 10) -> tuple[list[list[str]], np.ndarray]:
        """Top-k ids and scores for full-size query vectors."""
        return self.connector.search(self.collection, self.project(vectors), k)

    @classmethod
    def open(cls, backend: str, collection: str, data_dir: Path, **options: Any) -> CompressedIndex:
        """Reopen a built collection from its manifest."""
        manifest = Manifest.load(data_dir, backend, collection)
        compressor = load_compressor(manifest.artifact) if manifest.artifact else None
        connector = open_connector(backend, data_dir=data_dir, **options)
        if not connector.exists(collection):
            connector.close()
            raise SmecError(f"collection {collection!r} is gone from {backend}; rebuild it")
        index = cls(connector, collection, compressor, manifest.dim)
        index.manifest = manifest
        return index

    def query_model(self, override: str | None = None) -> str | None:
        """The sentence-transformers model directory to encode text queries with.

        ``None`` means the bundled all-MiniLM-L6-v2. A collection whose embeddings came from
        another model needs that model as a local directory (``override``).
        """
        if override:
            return override
        model = self.manifest.model if self.manifest else None
        if model is None or "all-MiniLM-L6-v2" in model:
            return None
        if Path(model).is_dir():
            return model
        raise SmecError(
            f"collection {self.collection!r} holds embeddings of {model!r}; pass --model DIR "
            "(that sentence-transformers model) to encode queries the same way"
        )

    def close(self) -> None:
        self.connector.close()
