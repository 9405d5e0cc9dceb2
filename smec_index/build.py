"""`smec-index build`: a dataset's corpus, projected, into a backend collection, measured.

Steps: load (or embed) the dataset, load (or train and cache) a SMEC artifact, project the
corpus, write the collection with the original ids and ``{title, text}`` payloads, then
measure nDCG@10 and recall@10 *through the built index* on the test qrels (recall against
exact search in the same compressed space), and record a manifest for `smec-index search`.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from smec_index.compressors import load_compressor, make_compressor
from smec_index.compressors.base import LinearCompressor, check_input_dim
from smec_index.connectors import open_connector
from smec_index.data import BeirDataset, RetrievalData, load_retrieval_data
from smec_index.errors import SmecError
from smec_index.evaluate import exact_search
from smec_index.index import CompressedIndex, Manifest
from smec_index.metrics import mean_metric, ndcg_at_k

DEFAULT_DIMS = (256, 192, 128, 64, 32)
CHUNK = 100_000  # rows per connector.add during a build


@dataclass
class BuildRequest:
    dataset: Path
    backend: str
    dim: int
    data_dir: Path
    embeddings: Path | None = None
    artifact: Path | None = None
    collection: str | None = None
    index: str = "hnsw"
    params: dict[str, Any] = field(default_factory=dict)
    connector_options: dict[str, Any] = field(default_factory=dict)
    overwrite: bool = False
    batch_size: int = 1000
    progress: bool = True


def load_or_embed(request: BuildRequest, say) -> tuple[RetrievalData, str | None]:
    """The dataset's embeddings (encoded first, into the data dir, when it has none) and the
    model that made them, as their ``meta.json`` names it."""
    dataset = BeirDataset(request.dataset)
    directory = request.embeddings
    if directory is None and dataset.default_embedding_dir().is_dir():
        directory = dataset.default_embedding_dir()
    if directory is None:
        from smec_index.embed import embed_dataset

        directory = request.data_dir / "embeddings" / dataset.name / "all-MiniLM-L6-v2"
        say(f"{dataset.name} has no embeddings: encoding it with all-MiniLM-L6-v2 -> {directory}")
        embed_dataset(dataset, None, directory, progress=request.progress)
    data = load_retrieval_data(dataset.root, directory)
    try:
        model = json.loads((Path(directory) / "meta.json").read_text()).get("model")
    except (OSError, ValueError):
        model = None
    return data, model


def _cache_key(data: RetrievalData, dims: tuple[int, ...]) -> str:
    digest = hashlib.sha1()
    digest.update(np.ascontiguousarray(data.corpus.vectors[:256]).tobytes())
    digest.update(",".join(data.corpus.ids[:256]).encode())
    digest.update(repr((len(data.corpus), dims)).encode())
    return digest.hexdigest()[:12]


def default_artifact(
    data: RetrievalData, wanted: list[int], data_dir: Path, say
) -> tuple[LinearCompressor | None, Path | None]:
    """A SMEC artifact with default settings, trained once and cached under the data dir.

    It holds every dim of ``wanted`` below the input dim plus the defaults (256 ... 32).
    Returns the compressor and its directory; ``(None, None)`` when nothing is to compress.
    """
    too_big = [d for d in wanted if d > data.dim]
    if too_big:
        raise SmecError(f"--dim {too_big[0]} is larger than the {data.dim}-d embeddings")
    compressed = {d for d in wanted if d < data.dim}
    if not compressed:
        return None, None
    dims = tuple(sorted(compressed | {d for d in DEFAULT_DIMS if d < data.dim}, reverse=True))
    name = data.dataset.name if data.dataset else "data"
    path = data_dir / "artifacts" / f"{name}-smec-{_cache_key(data, dims)}"
    if (path / "config.json").is_file():
        say(f"no --artifact: using the cached SMEC artifact {path}")
        return load_compressor(path), path
    supervised = bool(data.dataset and data.dataset.has_split("train"))
    qrels = data.qrels("train") if supervised else None
    started = time.perf_counter()
    smec = make_compressor("smec", dims, supervised=supervised, progress=False).fit(data, qrels)
    smec.save(path)
    how = "train qrels" if supervised else "the corpus (unsupervised)"
    say(
        f"no --artifact: trained SMEC {list(dims)} on {how} in "
        f"{time.perf_counter() - started:.1f} s, cached at {path}"
    )
    return smec, path


def measure(
    index: CompressedIndex, data: RetrievalData, qrels, corpus: np.ndarray, k: int = 10
) -> dict[str, float]:
    """nDCG@10 through the index on ``qrels``; recall@10 of the index vs exact search.

    ``corpus`` is the corpus as stored (already projected), the exact-search reference.
    """
    query_ids = list(qrels)
    queries = index.project(data.queries.take(query_ids))
    found, _ = index.connector.search(index.collection, queries, max(k, 10))
    _, exact_rows = exact_search(corpus, queries, 10)
    exact = [{data.corpus.ids[r] for r in row} for row in exact_rows]
    run = dict(zip(query_ids, found, strict=True))
    recall = np.mean([len(e.intersection(f[:10])) / 10 for e, f in zip(exact, found, strict=True)])
    return {"ndcg@10": mean_metric(run, qrels, ndcg_at_k, 10), "recall@10": float(recall)}


def build(request: BuildRequest, say=print) -> dict[str, Any]:
    """Build the collection; return the summary ``smec-index build --json`` prints."""
    data, model = load_or_embed(request, say)
    compressor, artifact_path = None, request.artifact
    if artifact_path is not None:
        compressor = load_compressor(artifact_path)
        check_input_dim(compressor, data.dim)
        method = compressor.method
    else:
        method = "original" if request.dim == data.dim else "smec"
    collection = request.collection or f"{data.dataset.name}_{method}_{request.dim}".replace(
        "-", "_"
    )
    connector = open_connector(
        request.backend, data_dir=request.data_dir, **request.connector_options
    )
    try:
        if connector.exists(collection) and not request.overwrite:
            raise SmecError(
                f"collection {collection!r} already exists in {request.backend}; pass "
                "--overwrite to replace it or --collection to pick another name"
            )
        if artifact_path is None:
            compressor, artifact_path = default_artifact(data, [request.dim], request.data_dir, say)
        index = CompressedIndex(connector, collection, compressor, request.dim)
        corpus_ids = data.corpus.ids
        vectors = index.project(np.asarray(data.corpus.vectors))
        texts = data.dataset.corpus if data.dataset else {}
        payloads = [
            {"title": texts.get(i, {}).get("title", ""), "text": texts.get(i, {}).get("text", "")}
            for i in corpus_ids
        ]
        started = time.perf_counter()
        spec = index.create(request.params, request.index, overwrite=request.overwrite)
        try:
            _fill(connector, collection, corpus_ids, vectors, payloads, request)
        except BaseException:
            # Nothing half-written: a collection that did not fill completely is removed.
            connector.drop(collection)
            raise
        count = connector.count(collection)  # flushes and loads where the backend needs it
        build_seconds = time.perf_counter() - started
        memory = connector.memory_bytes(collection)
        summary: dict[str, Any] = {
            "backend": request.backend,
            "collection": collection,
            "dim": request.dim,
            "count": count,
            "memory_bytes": memory,
            "build_seconds": round(build_seconds, 3),
            "ndcg@10": None,
            "recall@10": None,
        }
        if data.dataset is not None and data.dataset.has_split("test"):
            summary.update(measure(index, data, data.qrels("test"), vectors))
        Manifest(
            backend=request.backend,
            collection=collection,
            dim=request.dim,
            input_dim=data.dim,
            artifact=str(artifact_path.resolve()) if artifact_path else None,
            model=model,
            dataset=str(data.dataset.root.resolve()) if data.dataset else None,
            spec=spec.to_dict(),
            count=count,
        ).save(request.data_dir)
        return summary
    finally:
        connector.close()


def _fill(connector, collection, ids, vectors, payloads, request: BuildRequest) -> None:
    bar = tqdm(
        total=len(ids),
        desc=f"{request.backend}:{collection}",
        unit="vec",
        disable=not request.progress,
        leave=False,
    )
    # Connectors batch inside add (batch_size); the outer chunks are only for the progress
    # bar, and large because each add may rewrite or retrain a file-backed index.
    step = max(request.batch_size, 1)
    for start in range(0, len(ids), CHUNK):
        stop = min(start + CHUNK, len(ids))
        connector.add(
            collection, ids[start:stop], vectors[start:stop], payloads[start:stop], batch_size=step
        )
        bar.update(stop - start)
    bar.close()
