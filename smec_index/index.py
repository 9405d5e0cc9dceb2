"""Compressed collections: project with an artifact, store in a backend, search the same way.

:class:`CompressedIndex` is the Python API: it pairs a connector collection with the
projection that made its vectors, so new full-size query vectors are projected exactly as
the corpus was. What a built collection needs at search time is pinned in a *manifest*
(``<data_dir>/manifests/<backend>/<collection>.json``, one per physical collection, and
``manifests/qdrant-local/`` for Qdrant's local mode), written before ``build`` switches the
name to it: the artifact's path and fingerprint and the embedding model. This module imports
numpy, not torch: projecting a query is one matrix product.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from smec_index import safejson
from smec_index.artifact import artifact_fingerprint
from smec_index.compressors.base import LinearCompressor, load_projection
from smec_index.connectors import Connector, IndexSpec, open_connector
from smec_index.connectors.base import (
    _PHYSICAL,
    PHYSICAL,
    SearcherStale,
    check_collection_name,
    is_milvus_server,
)
from smec_index.connectors.storage import sweep_temporaries, write_json_atomic
from smec_index.data import check_path_name
from smec_index.errors import SmecError, brief
from smec_index.vectors import normalize

MANIFEST_FORMAT = 2


def manifest_folder(backend: str, options: dict[str, Any]) -> str:
    """The manifests folder of a collection's place: Qdrant's local mode keeps collections
    of its own (under ``qdrant-local``), so their manifests never describe, or replace, an
    edge collection's of the same name."""
    return "qdrant-local" if backend == "qdrant" and options.get("mode") == "local" else backend


def _copy_elsewhere(backend: str, name: str, data_dir: Path, options: dict[str, Any]) -> str:
    from smec_index.collection_info import copy_elsewhere

    return copy_elsewhere(backend, name, data_dir, options)


def _names_in(manifests: Path, name: str) -> bool:
    """Whether a manifest under ``manifests`` is of collection or alias ``name``."""
    for path in manifests.glob("*.json"):
        try:
            record = safejson.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and name in (record.get("collection"), record.get("name")):
            return True
    return False


def other_mode_hint(backend: str, data_dir: Path, options: dict[str, Any],
                    name: str | None = None) -> str:  # fmt: skip
    """Where ``name``, missing from one embedded Qdrant store, is instead: the other mode's
    store in the same data dir, where it holds a manifest of that name ("" otherwise)."""
    if backend != "qdrant" or options.get("url") or options.get("path"):
        return ""
    local = options.get("mode") == "local"
    other = Path(data_dir) / ("qdrant" if local else "qdrant-local")
    manifests = Path(data_dir) / "manifests" / ("qdrant" if local else "qdrant-local")
    if not other.is_dir() or (name is not None and not _names_in(manifests, name)):
        return ""
    return (f"; {other} holds Qdrant's {'edge' if local else 'local'}-mode collections: "
            + ("leave --mode out to read them" if local else "pass --mode local to read them"))


def unnamed_builds(connector: Any, data_dir: Path, folder: str, name: str) -> list[str]:
    """The physical collections of ``name`` whose build finished and switched (their
    manifest is written and no longer marked ``switching``) but that no alias points at:
    the alias was lost (aliases.json removed), not a build killed before its switch."""
    from smec_index.connectors.base import is_physical

    pointed = set(connector.aliases().values())
    found = []
    for collection in connector.collections():
        if is_physical(collection, name) and collection not in pointed:
            manifest = Manifest.find(data_dir, folder, collection)
            if manifest is not None and not manifest.extra.get("switching"):
                found.append(collection)
    return sorted(found)


def lost_alias(connector: Any, data_dir: Path, folder: str, name: str) -> None:
    """Refuse to say "no collection" where the build of ``name`` is there but no alias
    names it: the way back is the alias, or a build with ``--overwrite``."""
    unnamed = unnamed_builds(connector, data_dir, folder, name)
    if unnamed:
        raise SmecError(
            f"no alias names collection {name!r}, but its build {unnamed[0]!r} is there (its "
            f"manifest too): were the aliases removed or reset? Restore them (alias {name!r} "
            f"-> {unnamed[0]!r}), or build it again with --overwrite"
        )


@dataclass
class Manifest:
    """What a built collection holds and how to query it.

    Attributes:
        backend, collection: where it is (``collection`` is the physical collection; the
            name users pass is an alias of it).
        name: the name ``build`` was given (the alias).
        dim, input_dim: stored dim and the embeddings' dim.
        artifact, artifact_fingerprint: the projection (``None``: the original vectors) and
            the SHA-256 of its files when the collection was built.
        model: the model that embedded the corpus, as its embeddings' ``meta.json`` named it
            (``None``: unknown, so text queries need ``--model``).
        dataset: the dataset directory it was built from.
        spec: the index spec with every default filled in.
        count: points written and verified.
    """

    backend: str
    collection: str
    dim: int
    input_dim: int
    artifact: str | None
    model: str | None
    dataset: str | None
    spec: dict[str, Any]
    count: int
    name: str | None = None
    artifact_fingerprint: str | None = None
    format: int = MANIFEST_FORMAT
    extra: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def path(data_dir: Path, backend: str, collection: str) -> Path:
        check_collection_name(collection)  # never a path outside the data dir
        return Path(data_dir) / "manifests" / backend / f"{collection}.json"

    def save(self, data_dir: Path, folder: str | None = None) -> Path:
        """Written under ``manifests/<folder>`` (:func:`manifest_folder`; the backend's)."""
        path = self.path(data_dir, folder or self.backend, self.collection)
        sweep_temporaries(path, min_age_s=60)  # a killed build's (another may be writing)
        write_json_atomic(path, asdict(self))
        return path

    @classmethod
    def find(cls, data_dir: Path, backend: str, collection: str) -> Manifest | None:
        """The manifest of a physical collection, ``None`` where there is none."""
        path = cls.path(data_dir, backend, collection)
        if not path.is_file():
            return None
        try:
            raw = safejson.loads(path.read_text())
            known = {f.name for f in fields(cls)}
            manifest = cls(**{k: v for k, v in raw.items() if k in known})
            manifest.check_types()
        except (ValueError, TypeError, AttributeError):  # UnicodeDecodeError is a ValueError
            raise SmecError(f"{path}: corrupt manifest; rebuild the collection") from None
        if manifest.format > MANIFEST_FORMAT:
            raise SmecError(f"{path}: manifest format {manifest.format}, written by a newer "
                            f"smec-index (this one reads {MANIFEST_FORMAT}); upgrade "
                            "smec-index")  # fmt: skip
        if manifest.collection != collection:  # another's, copied over it: its artifact
            # projected the queries of this one, and search answered wrong hits in silence
            raise SmecError(
                f"{path} describes collection {brief(manifest.collection, 60)}, not {collection!r}"
                f" (copied over it, or edited); restore it, or build "
                f"{collection.split(PHYSICAL)[0]!r} again with --overwrite"
            )
        return manifest

    def check_types(self) -> None:
        """Each field of the type it is written with (a hand-edited file is refused)."""
        whole = lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0  # noqa: E731
        text = lambda v: isinstance(v, str)  # noqa: E731
        optional = lambda v: v is None or isinstance(v, str)  # noqa: E731
        checks = {"backend": text, "collection": text, "dim": whole, "input_dim": whole,
                  "count": whole, "format": whole, "artifact": optional, "model": optional,
                  "dataset": optional, "name": optional, "artifact_fingerprint": optional,
                  "spec": lambda v: isinstance(v, dict),
                  "extra": lambda v: isinstance(v, dict)}  # fmt: skip
        for name, ok in checks.items():
            if not ok(getattr(self, name)):
                raise TypeError(name)

    @classmethod
    def remove(cls, data_dir: Path, backend: str, collection: str) -> None:
        cls.path(data_dir, backend, collection).unlink(missing_ok=True)

    def projection(self) -> LinearCompressor | None:
        """The artifact, checked against its fingerprint (``None``: original vectors)."""
        if self.artifact is None:
            return None
        where = Path(self.artifact)
        check_path_name(where, f"the artifact that built {self.name or self.collection!r}")
        if not where.is_dir():
            raise SmecError(
                f"the artifact {where} that built {self.name or self.collection!r} is gone; "
                "restore it or rebuild the collection"
            )
        if (
            self.artifact_fingerprint is None
            or artifact_fingerprint(where) != self.artifact_fingerprint
        ):
            raise SmecError(
                f"the artifact {where} changed since {self.name or self.collection!r} was built "
                "(its fingerprint differs), so queries would be projected differently from "
                "the corpus; rebuild the collection or restore the artifact"
            )
        return load_projection(where)


def fitted(compressor: Any) -> LinearCompressor | None:
    """``compressor`` as what projects a collection: a fitted compressor (a
    :class:`~smec_index.projection.Projection` is taken as the one it applies), or ``None``."""
    from smec_index.projection import Projection

    if isinstance(compressor, Projection):
        compressor = compressor._compressor
    if compressor is None:
        return None
    if not isinstance(compressor, LinearCompressor):
        raise SmecError(f"compressor must be a fitted compressor (make_compressor(...).fit, "
                        "load_compressor) or a Projection, got "
                        f"{type(compressor).__name__}")  # fmt: skip
    if compressor.input_dim is None or not compressor.projections:
        raise SmecError(f"this {compressor.method} compressor is not fitted: call fit(data) "
                        "first, or load a trained artifact (load_compressor)")  # fmt: skip
    return compressor


def check_stored_dim(compressor: LinearCompressor | None, dim: int) -> None:
    """``dim`` is one the artifact projects to (or its input dim, the original vectors)."""
    from smec_index.compressors.base import MAX_DIM
    from smec_index.connectors.base import positive_int

    positive_int(dim, "dim", MAX_DIM)  # 0 or True made an index no vector fits
    if compressor is not None and dim != compressor.input_dim and dim not in compressor.dims:
        have = ", ".join(str(d) for d in compressor.dims)
        raise SmecError(
            f"--dim {dim}: the artifact has dims {have} (and {compressor.input_dim}, the "
            "original); pick one of those or train an artifact with that dim"
        )


def check_not_emptied(connector: Connector, collection: str, name: str,
                      manifest: Manifest) -> None:  # fmt: skip
    """A built collection that now reads as empty lost its engine's files (milvus-lite's own
    manifest damaged, say): refused, not answered as empty."""
    if manifest.count > 0 and connector.count(collection) == 0:
        raise SmecError(
            f"{name!r} was built with {manifest.count:,} points, and its engine now reads "
            f"none in {collection!r}: its files were damaged or removed; build it again"
        )


class CompressedIndex:
    """A backend collection plus the projection its vectors went through.

    Args:
        connector: an open connector.
        collection: collection name (or alias).
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
        if not isinstance(connector, Connector):
            raise SmecError(f"CompressedIndex takes a connector (open_connector(...)), got "
                            f"{type(connector).__name__}")  # fmt: skip
        check_collection_name(collection)
        compressor = fitted(compressor)
        check_stored_dim(compressor, dim)
        self.connector = connector
        self.collection = collection
        self.compressor = compressor
        self.dim = dim
        self.manifest: Manifest | None = None  # set when reopened from a manifest
        self._searchers: dict[tuple, Any] = {}  # per search params: the lean path, bound once

    def project(self, vectors: np.ndarray) -> np.ndarray:
        """Full-size vectors -> the stored space (projected and L2-normalised)."""
        from smec_index.vectors import as_rows

        if self.compressor is None:
            width, needs = self.dim, f"a collection of original {self.dim}-d vectors"
        else:
            width = self.compressor.input_dim
            needs = f"the artifact was trained on {width}-d embeddings"
        needs += ": pass one such vector or rows of them, embedded with the corpus's model"
        vectors, _ = as_rows(vectors, width, needs=needs)  # one vector is one row
        if self.compressor is None or self.dim == self.compressor.input_dim:
            return normalize(vectors)
        return self.compressor.project_checked(vectors, self.dim)

    def create(
        self,
        spec_params: dict[str, Any],
        index: str,
        metric: str = "cosine",
        overwrite: bool = False,
    ) -> IndexSpec:
        """Create the collection; returns the spec with every default filled in."""
        spec = IndexSpec(dim=self.dim, metric=metric, index=index, params=spec_params)
        self._searchers.clear()  # bound to what this replaces
        return self.connector.create(self.collection, spec, overwrite=overwrite)

    def _check_fits(self) -> None:
        """The collection holds vectors of the dim this index projects to: one opened with
        another ``dim`` blamed the user's vectors for a shape they never passed, and its
        advice (project them to the collection's dim) was refused by the same call."""
        stored = self.connector.spec(self.collection).dim
        if stored != self.dim:
            fix = (f"open it with dim={stored}" if self.compressor is None
                   or stored == self.compressor.input_dim or stored in self.compressor.dims
                   else f"the artifact has no {stored}-d projection: pass the one that "
                   "made the collection")  # fmt: skip
            raise SmecError(f"{self.collection!r} holds {stored}-d vectors, but this "
                            f"CompressedIndex was opened with dim={self.dim}; {fix}")  # fmt: skip

    def add(self, ids, vectors: np.ndarray, payloads=None, batch_size: int = 1000) -> None:
        """Project full-size ``vectors`` and upsert them with their ids and payloads."""
        self._searchers.clear()  # bound to the index as it was: bind again after writes
        self._check_fits()
        self.connector.add(self.collection, ids, self.project(vectors), payloads, batch_size)

    def search(
        self, vectors: np.ndarray, k: int = 10, params: dict[str, int] | None = None
    ) -> tuple[list[list[str]], np.ndarray]:
        """Top-k ids and scores for full-size query vectors; ``params``: this search's
        ``ef_search`` or ``nprobe`` (see :meth:`Connector.search`).

        The first search with given ``params`` binds a :class:`Searcher` (the collection
        resolved, the engine's parameters built); later ones reuse it, so a search costs
        the projection, the engine call and an id lookup."""
        if params is not None and not isinstance(params, Mapping):
            raise SmecError(f"params {brief(params, 60)}: pass a dict such as {{'ef_search': 128}}")
        try:
            key = tuple(sorted((params or {}).items()))
            hash(key)
        except TypeError:
            raise SmecError(f"params {brief(params, 60)}: values must be whole numbers") from None
        projected = self.project(vectors)
        try:
            ids, scores = self._searcher(key, params).search(projected, k, normalized=True)
        except SearcherStale:  # dropped, or made again, since this index bound its searcher
            self._searchers.pop(key, None)
            if self.manifest is not None:  # pinned to the physical collection it opened
                raise self._gone() from None
            # made by hand on a name: search what the name holds now, as FAISS users expect
            ids, scores = self._searcher(key, params).search(projected, k, normalized=True)
        return ids.tolist(), scores

    def _searcher(self, key: tuple, params: dict[str, int] | None) -> Any:
        searcher = self._searchers.get(key)
        if searcher is None:
            if self.manifest is not None and not self.connector.exists(self.collection):
                raise self._gone()
            self._check_fits()
            searcher = self._searchers[key] = self.connector.searcher(self.collection, params)
        return searcher

    def _gone(self) -> SmecError:
        """The collection this index was opened on, pinned by :meth:`open`, was replaced by
        a rebuild or dropped: say so by the name the user opened, not the physical one."""
        name = self.manifest.name if self.manifest is not None else self.collection
        return SmecError(
            f"the collection {name!r} was opened on ({self.collection!r}) is gone: a rebuild "
            f"of {name!r} replaced it, or it was dropped; open it again "
            f"(CompressedIndex.open(..., {name!r}, ...)) to search what is there now"
        )

    @classmethod
    def open(cls, backend: str, name: str, data_dir: Path, **options: Any) -> CompressedIndex:
        """Reopen a built collection (by its name or alias) from its manifest.

        Raises:
            SmecError: not built, no manifest, or an artifact that changed since the build.
        """
        from smec_index.connectors import check_backend

        check_backend(backend)  # before it is compared below: a list met a raw TypeError
        check_collection_name(name)
        from smec_index.connectors.base import typed_options
        from smec_index.data import check_path_name

        check_path_name(data_dir, "data_dir")  # before Path() of it, as open_connector does
        options = typed_options(options)  # a Path as uri, say, before it is looked at here
        if not Path(data_dir).is_dir():  # nothing was built there: open nothing, make nothing
            raise SmecError(f"no data directory {data_dir}: no collection {name!r} was built "
                            "there; pass the --data-dir (data_dir) the build used")  # fmt: skip
        local = Path(data_dir) / "qdrant-local"
        if backend == "qdrant" and options.get("mode") == "local" and not local.is_dir():
            from smec_index.collection_info import copy_elsewhere

            raise SmecError(f"no Qdrant local-mode store at {local}: no collection {name!r} "
                            "was written there in local mode"
                            + copy_elsewhere(backend, name, data_dir, options)
                            + other_mode_hint(backend, data_dir, options, name))  # fmt: skip
        lite = options.get("uri") or str(Path(data_dir) / "milvus" / "milvus.db")
        if backend == "milvus" and not is_milvus_server(lite) and not Path(lite).exists():
            raise SmecError(f"no milvus-lite database at {lite}: no collection {name!r} was "
                            "built there; pass the data_dir (or uri) the build used")  # fmt: skip
        connector = open_connector(backend, data_dir=data_dir, **options)
        try:
            collection = connector.resolve(name)
            if collection is None:
                lost_alias(connector, Path(data_dir), manifest_folder(backend, options), name)
                copy = _copy_elsewhere(backend, name, data_dir, options)
                if not copy and _PHYSICAL.fullmatch(name):  # build refuses the name
                    built = name[: name.rindex(PHYSICAL)]
                    copy = (f": names like it are the physical collections behind a built "
                            f"name, and this one is gone (a rebuild of {built!r} replaced "
                            f"it?); search {built!r}, the name that was built")
                raise SmecError(
                    f"no collection {name!r} built for {backend} here"
                    + (copy or f"; run `smec-index build --backend {backend} --collection "
                       f"{name}` first (or check --data-dir)")
                    + other_mode_hint(backend, data_dir, options, name)
                )  # fmt: skip
            manifest = Manifest.find(data_dir, manifest_folder(backend, options), collection)
            if manifest is None:
                from smec_index.collection_info import unfinished_migration

                unfinished = unfinished_migration(data_dir, backend, collection)
                if unfinished:
                    raise SmecError(f"{backend} collection {name!r} is not ready: {unfinished}")
                from smec_index.collection_info import migrated_copy

                copy = migrated_copy(backend, name, Path(data_dir), options)
                if copy is not None:  # the user's own schema: their client queries it
                    raise SmecError(copy)
                if connector.foreign(collection):  # "build it" would be refused: not ours
                    raise SmecError(  # a copy another --data-dir's migration made, too
                        f"{backend} collection {name!r} was not built by smec-index (it has no "
                        "smec-index spec), so its projection is unknown here: if `migrate` "
                        "made it, pass that migration's --data-dir; else it is someone's own: "
                        "search a collection `build` made, or query it with your own client"
                    )
                raise SmecError(
                    f"{backend} collection {name!r} has no smec-index manifest under "
                    f"{data_dir}, so its projection is unknown; build it with `smec-index "
                    "build`, or pass the right --data-dir"
                )
            check_not_emptied(connector, collection, name, manifest)
            # Pinned to the physical collection: a rebuild under the name later cannot make
            # this index project queries with one artifact into another's vectors.
            index = cls(connector, collection, manifest.projection(), manifest.dim)
        except BaseException:
            connector.close()
            raise
        index.manifest = manifest
        return index

    def query_model(self, override: str | None = None) -> str | None:
        """The sentence-transformers model directory to encode text queries with.

        ``None`` means the bundled all-MiniLM-L6-v2. A collection whose embeddings came from
        another model, or from an unrecorded one, needs that model as a local directory
        (``override``).
        """
        if override:
            return override
        model = self.manifest.model if self.manifest else None
        if model is not None and "all-MiniLM-L6-v2" in model:
            return None
        if model is not None and Path(model).is_dir():
            return model
        what = f"embeddings of {model!r}" if model else "embeddings of an unrecorded model"
        raise SmecError(
            f"collection {(self.manifest.name if self.manifest else None) or self.collection!r}"
            f" holds {what}; pass --model DIR (the "
            "sentence-transformers model that embedded the corpus) to encode queries the "
            "same way"
        )

    def close(self) -> None:
        self.connector.close()
