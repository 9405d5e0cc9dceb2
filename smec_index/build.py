"""`smec-index build`: a dataset's corpus, projected, into a backend collection, measured.

Steps: load (or embed) the dataset, load (or train and cache) a SMEC artifact, project the
corpus, then, holding a lock on the name:

1. fill a *new physical* collection ``<name>__b<random>`` with the original ids and
   ``{title, text}`` payloads, and flush it;
2. verify it: the count, and a sample of points read back (ids, vectors, payloads);
3. measure nDCG@10 and recall@10 *through the built index* on the test qrels (recall
   against exact search in the same compressed space) and its sizes;
4. write its manifest (artifact fingerprint, model, spec), then switch the alias ``<name>``
   to it in one atomic step, and only then drop the collection the alias pointed at before.

A kill at any moment therefore leaves the old complete collection (or none, for a first
build) under the name; what a killed build leaves behind is not reachable by the name and
is removed by the next build of it. Ctrl-C while points are written drops the unfinished
collection, says ``interrupted`` and exits 130; during the engine's own long index step
(:func:`ctrl_c_kills`) it ends the process at once, by the signal, and the next build of the
name removes what it left.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from smec_index import safejson
from smec_index.artifact import artifact_fingerprint
from smec_index.compressors import load_compressor, make_compressor
from smec_index.compressors.base import LinearCompressor, check_input_dim
from smec_index.connectors import Connector, Persistent, open_connector
from smec_index.connectors.base import (
    MAX_NAME,
    PHYSICAL,
    PHYSICAL_HEX,
    IndexSpec,
    check_fields,
    check_hnsw_m,
    check_new_name,
    check_switches,
    derived_name,
    is_milvus_server,
    is_physical,
    positive_int,
)
from smec_index.connectors.storage import check_free_space, estimated_bytes, file_lock
from smec_index.data import (
    DEFAULT_MODEL_DIM,
    DEFAULT_MODEL_NAME,
    BeirDataset,
    RetrievalData,
    load_retrieval_data,
)
from smec_index.errors import SmecError, brief, check_say
from smec_index.index import (
    CompressedIndex,
    Manifest,
    check_stored_dim,
    manifest_folder,
    unnamed_builds,
)
from smec_index.metrics import mean_metric, ndcg_at_k, recall_vs_exact
from smec_index.outputs import check_apart, check_working_folder, refuse_odd_directory
from smec_index.vectors import exact_search, normalize

DEFAULT_DIMS = (256, 192, 128, 64, 32)
CHUNK = 5_000  # rows per connector.add: small enough that Ctrl-C is answered quickly
SAMPLE = 32  # points read back to verify a build


@dataclass
class BuildRequest:
    dataset: Path
    backend: str
    dim: int
    data_dir: Path
    embeddings: Path | None = None
    skip_unknown_qrels: bool = False
    artifact: Path | None = None
    collection: str | None = None
    index: str = "hnsw"
    params: dict[str, Any] = field(default_factory=dict)
    connector_options: dict[str, Any] = field(default_factory=dict)
    overwrite: bool = False
    force_train: bool = False  # retrain the cached default artifact even if its key matches
    batch_size: int = 1000
    progress: bool = True
    payloads: bool = True  # False: store empty titles and texts (to measure their bytes)


def check_before_encoding(request: BuildRequest) -> None:
    """A dataset without embeddings is encoded first (minutes on a large corpus): what
    training will refuse for the corpus' size is refused before that, and before anything
    is written."""
    if request.embeddings is not None or request.artifact is not None:
        return
    dataset = BeirDataset(request.dataset)
    if dataset.default_embedding_dir().is_dir() or request.dim == DEFAULT_MODEL_DIM:
        return
    if request.dim > DEFAULT_MODEL_DIM:
        raise SmecError(f"--dim {request.dim} is larger than the {DEFAULT_MODEL_DIM}-d "
                        f"embeddings {DEFAULT_MODEL_NAME} makes of {dataset.name}")  # fmt: skip
    documents = len(dataset.corpus)
    if documents <= request.dim:
        raise SmecError(
            f"--dim {request.dim}: {dataset.name} has {documents} documents, and n documents "
            f"span at most n-1 directions; use --dim {max(documents - 1, 1)} or less, or a "
            "larger corpus"
        )


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
    data = load_retrieval_data(
        dataset.root, directory, skip_unknown_qrels=request.skip_unknown_qrels
    )
    try:
        meta = safejson.loads((Path(directory) / "meta.json").read_text())
    except (OSError, ValueError):
        meta = None
    model = meta.get("model") if isinstance(meta, dict) else None
    return data, model if isinstance(model, str) else None  # unknown: queries need --model


HASH_ROWS = 65_536  # rows hashed per step: memory-mapped vectors stay out of RAM


def _cache_key(
    data: RetrievalData,
    dims: tuple[int, ...],
    qrels: dict[str, dict[str, int]] | None,
    settings: dict[str, Any],
) -> str:
    """SHA-256 of everything the default artifact's weights depend on.

    All corpus and query vectors with their ids (an edit anywhere changes the training
    data, not only in the first rows), the train qrels used, the dims, the full training
    settings and the package version (a new release may train differently).
    """
    from smec_index import __version__

    digest = hashlib.sha256()
    for part, embeddings in (("corpus", data.corpus), ("queries", data.queries)):
        digest.update(json.dumps([part, list(embeddings.vectors.shape), embeddings.ids]).encode())
        for start in range(0, len(embeddings), HASH_ROWS):
            rows = embeddings.vectors[start : start + HASH_ROWS]
            digest.update(np.ascontiguousarray(rows, dtype=np.float32).tobytes())
    judged = None if qrels is None else sorted((q, sorted(r.items())) for q, r in qrels.items())
    recipe = {
        "method": "smec",
        "dims": list(dims),
        "qrels": judged,
        "settings": settings,
        "smec_index_version": __version__,
    }
    digest.update(json.dumps(recipe, sort_keys=True).encode())
    return digest.hexdigest()


def default_artifact(
    data: RetrievalData,
    wanted: list[int],
    data_dir: Path,
    say,
    force: bool = False,
    progress: bool = False,
) -> tuple[LinearCompressor | None, Path | None]:
    """A SMEC artifact with default settings, trained once and cached under the data dir.

    It holds every dim of ``wanted`` below the input dim plus the defaults (256 ... 32).
    The cache is keyed on :func:`_cache_key`; ``force`` trains again into a new entry beside
    the old ones (``<key>-r2``, ``-r3`` ...; the newest is used), so a collection built from an
    older one keeps the artifact it was built with.
    Returns the compressor and its directory; ``(None, None)`` when nothing is to compress.
    """
    too_big = [d for d in wanted if d > data.dim]
    if too_big:
        raise SmecError(f"--dim {too_big[0]} is larger than the {data.dim}-d embeddings")
    compressed = {d for d in wanted if d < data.dim}
    if not compressed:
        return None, None
    # The defaults a corpus this small can hold (n documents span n - 1 directions): a build
    # at 32 dims of 100 documents must not fail for the sake of the 256-d default.
    fits = len(data.corpus.ids) - 1
    defaults = {d for d in DEFAULT_DIMS if d < data.dim and d <= fits}
    dims = tuple(sorted(compressed | defaults, reverse=True))
    supervised = bool(data.dataset and data.dataset.has_split("train"))
    qrels = data.qrels("train") if supervised else None
    smec = make_compressor("smec", dims, supervised=supervised, progress=progress)
    settings = smec.train_config.to_dict()  # type: ignore[attr-defined]
    name = data.dataset.name if data.dataset else "data"
    base = data_dir / "artifacts" / f"{name}-smec-{_cache_key(data, dims, qrels, settings)[:16]}"
    entries = [base, *sorted(base.parent.glob(f"{base.name}-r*"), key=_retrain_number)]
    made = [p for p in entries if (p / "config.json").is_file()]
    path = made[-1] if made else base
    if force and made:  # never over one earlier collections were built with: past the last
        last = max([1, *map(_retrain_number, entries[1:])])
        path = base.with_name(f"{base.name}-r{last + 1}")
    if (path / "config.json").is_file() and not force:
        cached = load_compressor(path)
        recorded = getattr(cached, "train_config", None)
        if (cached.method, tuple(sorted(cached.dims, reverse=True))) != ("smec", dims) or (
            recorded is None or recorded.to_dict() != settings
        ):  # written over by hand (`train --out` there): not what build trains
            raise SmecError(
                f"the cached SMEC artifact {path} now holds a {cached.method} artifact of dims "
                f"{list(cached.dims)} that build did not train; pass it as --artifact to "
                "build with it, or --force-train to train SMEC again beside it"
            )
        say(f"no --artifact: using the cached SMEC artifact {path}")
        return cached, path
    started = time.perf_counter()
    how = "train qrels" if supervised else "the corpus (unsupervised)"
    say(f"no --artifact: training SMEC {list(dims)} on {how} of {len(data.corpus.ids):,} "
        "documents (once: cached for the next build)")  # fmt: skip
    smec.fit(data, qrels)
    smec.save(path)
    again = " (--force-train)" if force else ""
    say(
        f"no --artifact: trained SMEC {list(dims)} on {how}{again} in "
        f"{time.perf_counter() - started:.1f} s, cached at {path}"
    )
    return smec, path


def _retrain_number(entry: Path) -> int:
    """N of a cache entry ``<key>-rN`` that --force-train made (0 for any other name)."""
    number = entry.name.rsplit("-r", 1)[1]
    return int(number) if number.isdigit() else 0


def measure(
    connector: Connector,
    collection: str,
    index: CompressedIndex,
    data: RetrievalData,
    qrels,
    corpus: np.ndarray,
    k: int = 10,
) -> dict[str, float]:
    """nDCG@10 through the index on ``qrels``; recall@10 of the index vs exact search.

    ``corpus`` is the corpus as stored (already projected), the exact-search reference.
    Recall divides by the number of exact neighbours there are (min(10, corpus size)).
    """
    query_ids = list(qrels)
    queries = index.project(data.queries.take(query_ids))
    found, _ = connector.search(collection, queries, max(k, 10))
    _, exact_rows = exact_search(corpus, queries, 10)
    exact = [[data.corpus.ids[r] for r in row if r >= 0] for row in exact_rows]
    run = {q: [i for i in row if i] for q, row in zip(query_ids, found, strict=True)}
    return {"ndcg@10": mean_metric(run, qrels, ndcg_at_k, 10),
            "recall@10": recall_vs_exact(found, exact, 10)}  # fmt: skip


def default_collection(data: RetrievalData, method: str, dim: int) -> str:
    """``<dataset>_<method>_<dim>``, from a dataset folder of any name (``msmarco-v2.1``)."""
    name = data.dataset.name if data.dataset else "data"
    return derived_name(name, f"{method}_{dim}", LONGEST_NAME)


def build(request: BuildRequest, say=print) -> dict[str, Any]:
    """Build the collection atomically; return the summary ``smec-index build --json`` prints.

    Cheap checks come first (names, the data directory, the backend's address and that it
    answers), then the data is loaded and an artifact trained if none was given.
    """
    say = check_say(say)
    check_switches(request, "skip_unknown_qrels", "overwrite", "force_train", "progress",
                   "payloads")  # fmt: skip
    check_fields(request, paths=("dataset", "data_dir", "embeddings", "artifact"),
                 mappings=("params", "connector_options"), text=("backend", "index"),
                 required=("dataset", "data_dir", "backend", "index"))  # fmt: skip
    if request.collection is not None:
        check_build_name(request.collection)
    # numpy's integers as ints: a manifest is JSON (np.int64 failed its save after the build)
    request.dim = positive_int(request.dim, "--dim")
    request.batch_size = positive_int(request.batch_size, "--batch-size")
    if request.force_train and request.artifact is not None:
        raise SmecError("--force-train retrains the default artifact; with --artifact nothing "
                        "is trained: drop one of them")  # fmt: skip
    if request.index == "hnsw" and "M" in request.params:
        check_hnsw_m(request.params["M"])  # before the data dir or a backend file is made
    if request.artifact is not None:  # what it is, before the data dir is judged against it
        from smec_index.artifact import check_artifact_folder

        check_artifact_folder(request.artifact)
    check_apart(request.data_dir, "--data-dir", [
        ("the dataset", request.dataset), ("the embeddings", request.embeddings),
        ("the artifact", request.artifact)])  # fmt: skip
    check_working_folder(request.data_dir)  # nor anyone else's folder
    check_before_encoding(request)
    lite = lite_database(request)
    made = [p for p in (*([lite, lite.parent] if lite else []), Path(request.data_dir),
                        *Path(request.data_dir).parents) if not p.exists()]  # fmt: skip
    try:
        return _build(request, say)
    except BaseException:
        if lite in made and not any((lite / "collections").glob("*")):
            from smec_index.connectors.milvus.client import opened_here

            # the empty database opening made: this process's, not one another build that
            # started at the same moment has open (refused, it deleted that build's files)
            if opened_here(lite):
                shutil.rmtree(lite, ignore_errors=True)
        for folder in made:  # a refused or failed first build leaves no empty folders
            remove_empty_folders(folder)
        raise


def lite_database(request: BuildRequest) -> Path | None:
    """The milvus-lite database a Milvus build writes into (``None``: another backend, or
    a server)."""
    if request.backend != "milvus":
        return None
    uri = str(request.connector_options.get("uri") or "")
    if is_milvus_server(uri):
        return None
    return Path(uri) if uri else Path(request.data_dir) / "milvus" / "milvus.db"


def remove_empty_folders(root: Path) -> None:
    """Remove ``root`` and the folders under it, innermost first, if no file is among them
    (a file anywhere keeps its folders and ``root``)."""
    if not root.is_dir() or root.is_symlink():
        return
    walked = list(os.walk(root))
    if any(files for _, _, files in walked):  # not only this run's: another build's, say,
        return  # whose empty wal folder was removed under it (same new data dir, same time)
    for folder, _, _ in sorted(walked, key=lambda w: -len(Path(w[0]).parts)):
        with contextlib.suppress(OSError):
            Path(folder).rmdir()


def _build(request: BuildRequest, say) -> dict[str, Any]:
    writable_directory(request.data_dir, "--data-dir")
    connector = open_connector(
        request.backend, data_dir=request.data_dir, **request.connector_options
    )
    try:
        # The index parameters, before the data is read or an artifact trained.
        connector.check_spec(IndexSpec(dim=request.dim, index=request.index, params=request.params))
        data, model = load_or_embed(request, say)
        nlist = request.params.get("nlist")
        if request.index.startswith("ivf") and nlist and nlist > len(data.corpus.ids):
            raise SmecError(  # FAISS refuses to train such lists, Milvus would silently not
                f"--nlist {nlist}: more inverted lists than the corpus's "
                f"{len(data.corpus.ids):,} documents; pass at most that (about sqrt(n) is usual)"
            )
        compressor, artifact_path = None, request.artifact
        if artifact_path is not None:
            compressor = load_compressor(artifact_path)
            check_input_dim(compressor, data.dim)
            check_stored_dim(compressor, request.dim)
            method = compressor.method
        else:
            method = "original" if request.dim == data.dim else "smec"
            if method == "original" and request.force_train:
                raise SmecError(f"--force-train: --dim {request.dim} is the embeddings' own "
                                "dim, so nothing is trained; drop --force-train")  # fmt: skip
        name = check_build_name(
            request.collection or default_collection(data, method, request.dim))
        place = local_storage(request)
        payloads = corpus_payloads(data, request.payloads)  # a document corpus.jsonl lacks:
        if place is not None:  # refused before the lock, the training and any write
            check_free_space(place, disk_estimate(request, len(data.corpus.ids), payloads))
        what = f"a build of {request.backend} collection {name!r}"
        with file_lock(lock_path(request, name), what):
            current = connector.resolve(name)
            if current == name:  # a collection of that name, not an alias
                connector.refuse_foreign(name, "pick another --collection, or drop it "
                                         "yourself first if you mean to replace it")
            # What no build made first: "pass --overwrite" would lead to these refusals.
            if current == name and not _legacy_build(request, name):
                # a build's name is an alias of NAME__b<hex>; a plain collection of that name
                # is a migration's copy, say, unless a build from before aliases made it
                raise SmecError(
                    f"collection {name!r} is a plain collection, not one a build made (a "
                    "migration's copy, say; a build keeps its vectors behind an alias of that "
                    "name); --overwrite replaces only what build made: pick another "
                    "--collection"
                )
            if current not in (None, name) and not is_physical(current, name):
                raise SmecError(
                    f"{name!r} is an alias of {current!r}, which no build of {name!r} made "
                    "(a migration's copy, or an alias of your own); --overwrite replaces only "
                    "what build made: pick another --collection, or move the alias yourself"
                )
            if current is not None and not request.overwrite:
                raise SmecError(
                    f"collection {name!r} already exists in {request.backend}; pass "
                    "--overwrite to replace it or --collection to pick another name"
                )
            if current not in (None, name) and connector.foreign(current):
                # its spec is gone (meta.json removed): it could not be dropped after the
                # switch, so the build is refused before it, not reported failed after it
                raise SmecError(
                    f"{current!r}, the collection behind {name!r}, has lost its smec-index "
                    "spec (a file of it removed by hand?), so smec-index will not replace or "
                    "drop it: restore it, or remove it yourself, then build again"
                )
            remove_leftovers(connector, request, name, keep=current)
            if artifact_path is None:
                compressor, artifact_path = default_artifact(
                    data, [request.dim], request.data_dir, say, force=request.force_train,
                    progress=request.progress,
                )  # fmt: skip
            fingerprint = artifact_fingerprint(artifact_path) if artifact_path else None
            return _build_and_switch(
                connector,
                request,
                data,
                model,
                compressor,
                (artifact_path, fingerprint),
                name,
                current,
                payloads,
            )
    finally:
        connector.close()


LONGEST_NAME = MAX_NAME - len(PHYSICAL) - PHYSICAL_HEX  # NAME__b<hex> within MAX_NAME


def check_build_name(name: str) -> str:
    """A name a build may give: a collection name short enough for its physical collections'
    suffix (a 200-character name was refused as over 200, then a shorter one as over 187;
    'a/b' was told the rule with 200 in it)."""
    return check_new_name(name, "--collection", most=LONGEST_NAME)


def writable_directory(path: Path, flag: str) -> None:
    """``path`` is (or can be made) a directory this process can write: or a one-line error."""
    refuse_odd_directory(path, flag)  # mkdir would say "File exists"
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
        probe = Path(path) / f".write-probe-{uuid.uuid4().hex[:8]}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise SmecError(
            f"{flag} {path}: cannot write there ({exc.strerror or type(exc).__name__}); "
            "pick a writable directory"
        ) from None


def _build_and_switch(
    connector: Connector,
    request: BuildRequest,
    data: RetrievalData,
    model: str | None,
    compressor: LinearCompressor | None,
    artifact: tuple[Path | None, str | None],
    name: str,
    current: str | None,
    payloads: list[dict[str, str]],
) -> dict[str, Any]:
    physical = f"{name}{PHYSICAL}{uuid.uuid4().hex[:PHYSICAL_HEX]}"
    index = CompressedIndex(connector, physical, compressor, request.dim)
    ids = data.corpus.ids
    vectors = index.project(np.asarray(data.corpus.vectors))
    started = time.perf_counter()
    try:  # from its creation on: a Ctrl-C while it is being made leaves nothing either
        spec = connector.create_build(physical, IndexSpec(dim=request.dim, index=request.index,
                                                          params=request.params))
        _fill(connector, physical, ids, vectors, payloads, request)
        with ctrl_c_kills():
            connector.flush(physical)
        build_seconds = time.perf_counter() - started
        count = verify(connector, physical, ids, vectors, payloads, request)
        summary = _measure_and_pin(
            connector, request, data, model, index, vectors, spec, artifact, name, count
        )
    except BaseException:
        # Nothing points at it yet: gone at once, and the name still serves the old one.
        connector.drop(physical)
        Manifest.remove(request.data_dir, _folder(request), physical)
        raise
    summary["build_seconds"] = round(build_seconds, 3)
    if current == name:
        # A plain collection of that name (made before builds used aliases) must go before
        # the name can become an alias: the one moment a kill leaves nothing under it.
        connector.drop(name)
    try:
        connector.set_alias(name, physical)  # the switch: atomic
    except BaseException:  # nothing points at it: gone, as when a step before failed
        if connector.resolve(name) != physical:
            connector.drop(physical)
            Manifest.remove(request.data_dir, _folder(request), physical)
        raise
    manifest = Manifest.find(request.data_dir, _folder(request), physical)
    if manifest is not None:  # switched: a finished build from now on, even without alias
        manifest.extra.pop("switching", None)
        manifest.save(request.data_dir, _folder(request))
    if current is not None and current != name and is_physical(current, name):
        if current not in connector.aliases().values():
            connector.drop(current)
            Manifest.remove(request.data_dir, _folder(request), current)
    return summary


def _measure_and_pin(
    connector: Connector,
    request: BuildRequest,
    data: RetrievalData,
    model: str | None,
    index: CompressedIndex,
    vectors: np.ndarray,
    spec: Any,
    artifact: tuple[Path | None, str | None],
    name: str,
    count: int,
) -> dict[str, Any]:
    """Sizes, quality through the index, and the manifest: all before the switch.

    The manifest pins the artifact's fingerprint taken when it was loaded; an artifact
    rewritten since (another train into the same path) fails the build instead.
    """
    artifact_path, fingerprint = artifact
    if artifact_path and artifact_fingerprint(artifact_path) != fingerprint:
        raise SmecError(f"{artifact_path} changed during the build; build again when it is done")
    physical = index.collection
    sizes = connector.sizes(physical)
    summary: dict[str, Any] = {
        "backend": request.backend,
        "collection": name,
        "physical_collection": physical,
        "dim": request.dim,
        "count": count,
        "index_bytes": sizes.index_bytes,
        "total_bytes": sizes.total_bytes,
        "bytes_method": sizes.method,
        "build_seconds": None,
        "ndcg@10": None,
        "recall@10": None,
    }
    if data.dataset is not None and data.dataset.has_split("test"):
        summary.update(measure(connector, physical, index, data, data.qrels("test"), vectors))
    Manifest(
        backend=request.backend,
        collection=physical,
        name=name,
        dim=request.dim,
        input_dim=data.dim,
        artifact=str(Path(artifact_path).resolve()) if artifact_path else None,
        artifact_fingerprint=fingerprint,
        model=model,
        dataset=str(data.dataset.root.resolve()) if data.dataset else None,
        spec=spec.to_dict(),
        count=count,
        # switching: until the alias points at it (unnamed_builds); location: which place's
        # leftovers its manifest may be taken for
        extra={"switching": True, "location": location(request)},
    ).save(request.data_dir, _folder(request))
    return summary


@contextmanager
def ctrl_c_kills() -> Iterator[None]:
    """Let Ctrl-C end the process at once during one long native call.

    Building an index (qdrant-edge's optimize holds the GIL for its whole run; FAISS trains
    IVF-PQ; Milvus flushes) can take minutes, and Python runs a signal handler only between
    bytecodes. A kill is safe at any moment of a build (nothing points at the unfinished
    collection, and the next build removes it), so SIGINT gets its default action here.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def local_storage(request: BuildRequest) -> Path | None:
    """The directory an embedded backend writes the collection under (``None``: a server
    holds it, whose disk is not ours to measure)."""
    options = request.connector_options
    uri = str(options.get("uri") or "")
    if options.get("url") or is_milvus_server(uri):
        return None
    return Path(uri).parent if uri else Path(request.data_dir)


def disk_estimate(request: BuildRequest, rows: int, payloads: list[dict[str, str]]) -> int:
    """What the new collection will take on disk, from a sample of its payloads."""
    sample = payloads[:: max(1, len(payloads) // 1000)]  # spread: long texts may cluster
    payload = sum(len(json.dumps(p)) for p in sample) / max(1, len(sample))
    links = int(request.params.get("M", 16)) * 8 if request.index == "hnsw" else 0
    return estimated_bytes(request.backend, rows, request.dim, links, payload)


def corpus_payloads(data: RetrievalData, with_text: bool) -> list[dict[str, str]]:
    """``{title, text}`` per document (empty strings when ``with_text`` is false); an
    embedded document that corpus.jsonl lacks is refused, not stored with a blank text."""
    texts = data.dataset.corpus if (data.dataset and with_text) else {}
    unembedded = [i for i in texts if i not in data.corpus] if texts else []
    if unembedded:  # left out of the collection without a word, its count and scores "ok"
        raise SmecError(
            f"{len(unembedded):,} documents of {data.dataset.root / 'corpus.jsonl'} (e.g. "
            f"{brief(unembedded[0], 40)}) have no embedding, so the collection would lack "
            f"them: run `smec-index embed --dataset {data.dataset.root} --force`, or pass "
            "--embeddings of the whole corpus"
        )
    missing = [i for i in data.corpus.ids if i not in texts] if texts else []
    if missing:
        raise SmecError(
            f"{len(missing):,} documents of the embeddings are not in "
            f"{data.dataset.root / 'corpus.jsonl'} (e.g. {brief(missing[0], 40)}): the embeddings "
            "belong to another corpus, or to an older version of it; run `smec-index embed "
            f"--dataset {data.dataset.root}` again, or pass --embeddings of this corpus"
        )
    return [
        {"title": texts.get(i, {}).get("title", ""), "text": texts.get(i, {}).get("text", "")}
        for i in data.corpus.ids
    ]


def verify(
    connector: Connector,
    collection: str,
    ids: list[str],
    vectors: np.ndarray,
    payloads: list[dict[str, Any]],
    request: BuildRequest,
) -> int:
    """Check a filled collection before anything points at it: the count, and a sample of
    points read back (present, vectors within 1e-3 after normalisation, payloads equal).

    The in-process backends are read back through a second connector, from their files,
    so a collection that saved wrong cannot pass on what is still in memory.
    """
    if request.backend in ("faiss", "hnswlib"):
        with open_connector(request.backend, data_dir=request.data_dir) as fresh:
            return _verify(fresh, collection, ids, vectors, payloads)
    return _verify(connector, collection, ids, vectors, payloads)


def _verify(
    connector: Connector,
    collection: str,
    ids: list[str],
    vectors: np.ndarray,
    payloads: list[dict[str, Any]],
) -> int:
    count = connector.count(collection)
    if count != len(ids):
        raise SmecError(
            f"{connector.name} holds {count} points after writing {len(ids)}; the build was "
            "not switched in; check the backend and build again"
        )
    rng = np.random.default_rng(0)
    rows = rng.choice(len(ids), size=min(SAMPLE, len(ids)), replace=False)
    got = connector.get(collection, [ids[r] for r in rows])
    if (
        got.ids != [ids[r] for r in rows]
        or not np.allclose(normalize(got.vectors), normalize(vectors[rows]), atol=1e-3)
        or got.payloads != [payloads[r] for r in rows]
    ):
        raise SmecError(
            f"points read back from {connector.name} differ from those written; the build was "
            "not switched in; check the backend and build again"
        )
    return count


def _legacy_build(request: BuildRequest, name: str) -> bool:
    """Whether the plain collection ``name`` is one a build made before builds kept their
    vectors behind an alias: its manifest is a build's (a migration's records where the
    copy came from)."""
    manifest = Manifest.find(request.data_dir, _folder(request), name)
    return manifest is not None and "migrated_from" not in (manifest.extra or {})


def _folder(request: BuildRequest) -> str:
    return manifest_folder(request.backend, request.connector_options)


def location(request: BuildRequest) -> str:
    """Which place of its backend a build writes (a server, a milvus-lite file, a mode), as
    a short digest: builds into two places share a manifests folder and lock folder."""
    lite = lite_database(request)  # a file: one.db from two folders is two places
    where = json.dumps(sorted(
        (k, str(lite.resolve()) if k == "uri" and lite is not None else str(v))
        for k, v in request.connector_options.items() if k in ("url", "uri", "mode")
    ))  # fmt: skip
    return hashlib.sha1(where.encode()).hexdigest()[:8]


def lock_path(request: BuildRequest, name: str) -> Path:
    """One lock per (backend, location, name): builds elsewhere never wait for this one."""
    return request.data_dir / "locks" / request.backend / f"{name}.{location(request)}.lock"


def remove_leftovers(
    connector: Connector, request: BuildRequest, name: str, keep: str | None
) -> None:
    """Drop what killed builds of ``name`` left: its physical collections nothing points
    at, and their manifests. A finished build (its manifest written) that no alias names
    is no leftover but one whose alias was lost (aliases.json removed): it is replaced only
    with ``--overwrite``."""
    unnamed = unnamed_builds(connector, request.data_dir, _folder(request), name)
    if unnamed and not request.overwrite:
        raise SmecError(
            f"{unnamed[0]!r} holds a finished build of {name!r} (its manifest is there) that "
            "no alias names: were the aliases removed or reset? Restore them, or pass "
            "--overwrite to replace that build"
        )
    pointed = set(connector.aliases().values())
    for collection in connector.collections():
        if is_physical(collection, name) and collection != keep and collection not in pointed:
            connector.drop(collection)
            Manifest.remove(request.data_dir, _folder(request), collection)
    # A build killed before its collection's first commit leaves a directory that is no
    # collection yet (no marker file): only the file-backed backends have such directories.
    if isinstance(connector.backend, Persistent):
        try:
            root = Path(connector.backend.path(name)).parent
        except SmecError:  # a Qdrant server or local mode: no directories of ours
            root = None
        present = set(connector.collections())
        for directory in root.iterdir() if root is not None and root.is_dir() else ():
            if directory.is_dir() and is_physical(directory.name, name):
                if (directory.name not in present and directory.name != keep
                        and not connector.backend.foreign(directory.name)):  # fmt: skip
                    shutil.rmtree(directory, ignore_errors=True)
    # Manifests of builds of this place whose collection is gone. Builds into another
    # milvus-lite file or server share the folder: theirs are not this place's to judge (the
    # second --uri deleted the first one's manifest), nor are those recorded before places.
    manifests = request.data_dir / "manifests" / _folder(request)
    if manifests.is_dir():
        present, here = set(connector.collections()), location(request)
        for path in manifests.glob(f"{name}{PHYSICAL}*.json"):
            if is_physical(path.stem, name) and path.stem not in present:
                try:
                    manifest = Manifest.find(request.data_dir, _folder(request), path.stem)
                except SmecError:  # damaged: whose it was cannot be told, so it stays
                    continue
                if manifest is not None and manifest.extra.get("location") == here:
                    path.unlink(missing_ok=True)


def _fill(connector, collection, ids, vectors, payloads, request: BuildRequest) -> None:
    bar = tqdm(
        total=len(ids),
        desc=f"{request.backend}:{collection}",
        unit="vec",
        disable=not request.progress,
        leave=False,
    )
    try:
        for start in range(0, len(ids), CHUNK):
            stop = min(start + CHUNK, len(ids))
            connector.add(
                collection,
                ids[start:stop],
                vectors[start:stop],
                payloads[start:stop],
                batch_size=request.batch_size,
            )
            bar.update(stop - start)
    finally:
        bar.close()  # cleared (leave=False): an error's one line starts a line of its own


def _mib(value: int | None) -> str:
    return "not reported" if value is None else f"{value / 2**20:.2f} MiB"


def build_lines(summary: dict[str, Any]) -> list[str]:
    """What ``build`` prints: the collection, its sizes, and its quality through the index."""
    lines = [
        f"{summary['backend']} collection {summary['collection']}: {summary['count']} "
        f"vectors at {summary['dim']} dims, built in {summary['build_seconds']:.1f} s; "
        f"index {_mib(summary['index_bytes'])}, total {_mib(summary['total_bytes'])}"
    ]
    if summary["ndcg@10"] is not None:
        lines.append(
            f"through the index on test qrels: nDCG@10 {summary['ndcg@10']:.4f}, "
            f"recall@10 vs exact search {summary['recall@10']:.4f}"
        )
    return lines
