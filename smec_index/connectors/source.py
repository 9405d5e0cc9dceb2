"""Reading a collection someone else made, and writing its copy with smaller vectors.

:class:`Source` is the read-only side of a Qdrant or Milvus wing (scroll / query / get /
search; nothing that writes). :class:`Mirror` is its schema-preserving counterpart: a new
collection beside the source with the same ids, fields, types, payload indexes and vector
name, only the migrated vector at another dim. Each wing implements both
(``connectors/qdrant/source.py``, ``connectors/milvus/source.py``); :func:`open_source`
opens one by backend name.

Points travel as :class:`SourceBatch`: ``raw_ids`` are the source's own id values (an
unsigned int or a UUID in Qdrant, an INT64 or VARCHAR key in Milvus) and ``ids`` the same as
strings, for digests and for targets that store strings. ``payloads`` are everything but
the id and the migrated vector, exactly as the client returned them; ``carried`` are a
Qdrant point's other named and sparse vectors, copied unchanged.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from smec_index.connectors.base import _PHYSICAL, MAX_NAME, PHYSICAL, typed_options
from smec_index.errors import SmecError, brief


@dataclass
class SourceBatch:
    """Points as read from the source; ``cursor`` resumes right after them."""

    ids: list[str]
    raw_ids: list[Any]
    vectors: np.ndarray
    payloads: list[dict[str, Any]]
    cursor: Any = None
    carried: list[dict[str, Any]] | None = None  # Qdrant: the other vectors of each point
    partition: str | None = None  # Milvus: the named partition these rows are in

    def take(self, keep: list[int]) -> SourceBatch:
        return SourceBatch(
            [self.ids[i] for i in keep],
            [self.raw_ids[i] for i in keep],
            self.vectors[keep],
            [self.payloads[i] for i in keep],
            self.cursor,
            None if self.carried is None else [self.carried[i] for i in keep],
            self.partition,
        )


@dataclass
class SourceInfo:
    """Where a source is and what its migrated vector is.

    ``where`` is shown to users (no credentials); ``location`` identifies the place for
    keying state: an absolute path for files, the credential-free URL for a server.
    ``vector`` is the migrated vector's name (``""``: Qdrant's unnamed vector).
    """

    where: str
    collection: str
    dim: int
    metric: str  # cosine | ip | l2
    location: str = ""
    vector: str = ""
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Partition:
    """Slice ``k`` of ``n`` of a source's id space (``--partition K/N``): the ids whose
    64-bit BLAKE2b hash is ``k`` modulo ``n`` (a Milvus integer key: the key itself modulo
    ``n``, filtered by the server). Every id is in exactly one slice."""

    k: int
    n: int

    @classmethod
    def parse(cls, text: str) -> Partition:
        try:
            k, n = (int(part) for part in text.split("/"))
        except ValueError:
            k = n = -1
        if not 0 <= k < n:
            raise SmecError(
                f"--partition {text}: use K/N with 0 <= K < N, e.g. 0/4 ... 3/4 on four machines"
            )
        return cls(k, n)

    def __str__(self) -> str:
        return f"{self.k}/{self.n}"

    def keeps(self, point_id: str) -> bool:
        digest = hashlib.blake2b(point_id.encode(), digest_size=8).digest()
        return int.from_bytes(digest, "little") % self.n == self.k

    def select(self, batch: SourceBatch) -> SourceBatch:
        return batch.take([i for i, point_id in enumerate(batch.ids) if self.keeps(point_id)])


class Source(Protocol):
    """A collection that is only ever read."""

    info: SourceInfo

    def count(self) -> int: ...

    def schema(self) -> dict[str, Any]:
        """The collection's schema as plain JSON values: what a :class:`Mirror` keeps, and
        what the source's fingerprint is taken over."""
        ...

    def iterate(
        self, batch_size: int, cursor: Any, partition: Partition | None = None
    ) -> Iterator[SourceBatch]:
        """Points in a stable order from after ``cursor``; with ``partition``, only that
        slice's (a batch may then be empty: its cursor still moves on)."""
        ...

    def ids(self, batch_size: int) -> Iterator[list[str]]:
        """Every id once, nothing else read (verification)."""
        ...

    def raw_id(self, point_id: str) -> Any:
        """The source's own id value for an id as a string (``"5"`` -> ``5``)."""
        ...

    def get(self, raw_ids: list[Any]) -> SourceBatch: ...

    def search(self, vectors: np.ndarray, k: int) -> list[list[str]]: ...

    def index_bytes(self) -> int | None: ...

    def index_bytes_unknown(self) -> str:
        """Why :meth:`index_bytes` is None, when it is."""
        ...

    def mirror(self) -> Mirror:
        """The schema-preserving writer for copies beside this source (same client)."""
        ...

    def close(self) -> None: ...


class Mirror(Protocol):
    """Copies of a source collection at the same place, the migrated vector at ``dim``.

    Names may be aliases wherever a collection is read (``count``, ``get``, ``search``,
    ``ids``); ``create`` and ``drop`` take collection names only.
    """

    where: str  # shown to users
    place: str  # the source's location: the copy is beside it

    def exists(self, name: str) -> bool:
        """A collection or an alias of that name."""
        ...

    def resolve(self, name: str) -> str | None:
        """The collection ``name`` stands for: its alias target, itself, or ``None``."""
        ...

    def is_alias(self, name: str) -> bool: ...

    def aliases_of(self, name: str) -> list[str]:
        """The aliases that point at collection ``name``."""
        ...

    def planned_schema(self, dim: int) -> dict[str, Any]:
        """The schema :meth:`create` would give a copy (compare with ``Source.schema``)."""
        ...

    def schema(self, name: str) -> dict[str, Any]: ...

    def dim_path(self) -> str:
        """The path in :meth:`schema` of the migrated vector's size: the one difference a
        copy may have."""
        ...

    def create(self, name: str, dim: int) -> None: ...

    def drop(self, name: str) -> None: ...

    def write(self, name: str, batch: SourceBatch, vectors: np.ndarray) -> None:
        """Upsert ``batch`` with ``vectors`` in place of the migrated vector."""
        ...

    def flush(self, name: str) -> None: ...

    def count(self, name: str) -> int: ...

    def ids(self, name: str, batch_size: int) -> Iterator[list[str]]: ...

    def get(self, name: str, raw_ids: list[Any]) -> SourceBatch: ...

    def search(self, name: str, vectors: np.ndarray, k: int) -> list[list[str]]: ...

    def index_bytes(self, name: str) -> int | None: ...

    def verify_layout(self, name: str) -> None:
        """Raise :class:`SmecError` where the copy's points are laid out unlike the source's
        beyond ids and values (Milvus: rows per named partition)."""
        ...

    def set_alias(self, alias: str, name: str) -> None: ...

    def drop_alias(self, alias: str) -> None: ...


def _built(name: str, physical: str) -> SmecError:
    """A collection a build made is no migration source: its vectors are already projected
    by the build's artifact, which a copy's projection would not know of (queries through
    it would be projected once, the copy's points twice)."""
    return SmecError(
        f"{name!r} is a collection smec-index built ({physical!r} holds its vectors, already "
        "projected): to change its dim, build it again (`smec-index build --collection "
        f"{name.split(PHYSICAL)[0]} --dim N --overwrite` from the dataset it was built "
        "from); migrate moves collections of your own"
    )


def check_not_alias(collection: str, aliases: dict[str, str], where: str) -> None:
    """A source is a collection: an alias of one is named back to the user as such, and
    one a build made is refused."""
    if collection in aliases and _PHYSICAL.fullmatch(aliases[collection]):
        raise _built(collection, aliases[collection])
    if collection in aliases:
        raise SmecError(
            f"{collection!r} is an alias of {aliases[collection]!r} at {where}; pass the "
            f"collection (--collection {aliases[collection]}) and keep the alias for --alias"
        )


def fingerprint(schema: dict[str, Any]) -> str:
    """SHA-256 (first 16 hex digits) of a schema's canonical JSON."""
    text = json.dumps(schema, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def schema_diff(before: dict[str, Any], after: dict[str, Any], skip: set[str]) -> list[str]:
    """Every leaf that differs between two schemas, as ``path: old -> new``; paths in
    ``skip`` (the migrated vector's dim) are left out."""
    changes: list[str] = []

    def walk(a: Any, b: Any, path: str) -> None:
        if path in skip:
            return
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b), key=str):
                walk(a.get(key, "(none)"), b.get(key, "(none)"), f"{path}.{key}" if path else key)
        elif a != b:
            changes.append(f"{path}: {json.dumps(a, default=str)} -> {json.dumps(b, default=str)}")

    walk(before, after, "")
    return changes


def refuse_source(info: SourceInfo, name: str) -> None:
    """A mirror drops the copies it wrote, never the collection it copies."""
    if name == info.collection:
        raise SmecError(f"{name!r} at {info.where} is the migration's source: a mirror drops "
                        "only the copies it wrote, never the source")  # fmt: skip


# A k beyond this is capped at the source's count before an engine sizes buffers by it.
BIG_K = 1024


def search_queries(vectors: Any, k: Any, dim: int) -> tuple[np.ndarray, int]:
    """What a source's ``search`` takes: ``(n, dim)`` finite vectors and a whole ``k`` >= 1,
    or a one-line error (an engine would rank by NaN scores, with a warning, for an inf)."""
    from smec_index.connectors.base import positive_int
    from smec_index.vectors import check_vectors

    if np.ndim(vectors) != 2 or np.shape(vectors)[1] != dim:
        raise SmecError(f"query vectors of shape {tuple(np.shape(vectors))}: a source of "
                        f"{dim}-d vectors is searched with (n, {dim}) vectors")  # fmt: skip
    return check_vectors(vectors, dim, "query vectors"), positive_int(k, "k")


# What a source is addressed by (open_source's options, MigrateRequest.source).
SOURCE_OPTIONS = ("url", "api_key", "path", "using", "uri", "token")
# Each backend's own: a Milvus --uri given for a Qdrant source is refused, not ignored
BACKEND_SOURCE_OPTIONS = {"qdrant": ("url", "api_key", "path", "using"), "milvus": ("uri", "token")}


def source_options(backend: Any) -> tuple[str, ...]:
    """The options a ``backend`` source takes (every one, for a backend open_source refuses
    by name)."""
    return BACKEND_SOURCE_OPTIONS.get(backend, SOURCE_OPTIONS) if isinstance(backend, str) else (
        SOURCE_OPTIONS)  # fmt: skip


def check_source_name(name: Any, what: str = "--collection") -> str:
    """A source collection as its engine allows it (Qdrant takes ``my-docs`` and
    ``dokumenté``, which no name smec-index makes may hold), as long as it is safe in the
    file names of progress records and locks: no path separator, control character or
    leading dot, at most :data:`MAX_NAME` characters."""
    if not isinstance(name, str):
        raise SmecError(f"{what} {brief(name, 60)}: a collection name is text (str), got "
                        f"{type(name).__name__}")  # fmt: skip
    if (
        not name
        or len(name) > MAX_NAME
        or name.startswith(".")
        or any(c in "/\\" or ord(c) < 32 or ord(c) == 127 for c in name)
    ):
        shown = name if len(name) <= 60 else f"{name[:60]}..."
        raise SmecError(f"{what} {shown!r}: not a collection name (no '/', '\\', "
                        f"control character or leading '.', at most {MAX_NAME} "
                        "characters)")  # fmt: skip
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise SmecError(f"{what} {name!r}: not UTF-8 text") from None
    if _PHYSICAL.fullmatch(name):  # a name only builds make
        raise _built(name, name)
    return name


def open_source(backend: str, collection: str, **where: Any) -> Source:
    """Open ``collection`` for reading.

    Args:
        backend: ``qdrant`` or ``milvus``.
        where: ``url`` / ``api_key`` (a Qdrant server) or ``path`` (a qdrant-client local
            storage folder, or a folder holding qdrant-edge shards: ``<path>/<collection>``
            is the shard); ``using`` (Qdrant: which named vector, when there are several);
            ``uri`` / ``token`` (Milvus: a server or a milvus-lite ``.db`` path).
    """
    check_source_name(collection, "collection")
    unknown = sorted(str(k) for k in where if k not in SOURCE_OPTIONS)
    if unknown:
        raise SmecError(f"open_source: unknown option {brief(unknown[0], 40)}; use "
                        f"{', '.join(SOURCE_OPTIONS)}")  # fmt: skip
    known = source_options(backend)
    other = sorted(str(k) for k, v in where.items() if v is not None and k not in known)
    if other:
        raise SmecError(f"a {backend} source takes {', '.join(known)}, not {other[0]} (another "
                        "backend's option); drop it")  # fmt: skip
    where = typed_options(where)
    if backend == "milvus":
        if not where.get("uri"):
            raise SmecError("a Milvus source needs --uri (a server address or a .db path)")
        from smec_index.connectors.milvus.source import MilvusSource

        return MilvusSource(where["uri"], where.get("token"), collection)
    if backend == "qdrant":
        if where.get("url") and where.get("path"):
            raise SmecError("a Qdrant source is a server (--url) or a local folder (--path), "
                            "not both: leave one out")  # fmt: skip
        if not where.get("url") and not where.get("path"):
            raise SmecError("a Qdrant source needs one of --url or --path")
        from smec_index.connectors.qdrant.source import EDGE_CONFIG, EdgeSource, QdrantSource

        path = where.get("path")
        if path is not None:
            from smec_index.data import check_path_name

            check_path_name(path, "path")
        if path is not None and (Path(path) / collection / EDGE_CONFIG).is_file():
            return EdgeSource(Path(path) / collection, collection, where.get("using"))
        return QdrantSource(
            collection, where.get("url"), where.get("api_key"), path, where.get("using")
        )
    raise SmecError(f"migrate reads qdrant or milvus collections, not {backend!r}")
