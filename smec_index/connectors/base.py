"""The contract every vector-database backend implements, and what it means.

A backend stores *collections* of (id, vector, payload) points at one dim and metric, and
answers top-k searches with ids and scores. Callers never talk to a backend directly:
:func:`smec_index.connectors.open_connector` wraps it in
:class:`smec_index.connectors.contract.Connector`, the one place that validates input
(names, ids, vectors, payloads, k, batch sizes), fills index defaults, checks what comes
back (unique ids, sorted scores) and splits work into batches. Backends therefore receive
checked input only and stay small.

What every backend guarantees (the contract test checks each point on every backend):

* **upsert by id**: writing an id that exists replaces its vector and payload; the count
  does not grow.
* **get**: points by id, with vectors as stored and payloads.
* **iterate from a cursor**: every point exactly once, in batches; each batch carries a
  ``cursor`` (a string) that another process can pass to resume right after it.
* **flush**: what was written is durable and searchable through the index. Reads flush
  first, so a caller only needs it to bound what a crash can lose.
* **sizes**: ``index_bytes`` (what search needs: vectors or their codes plus the index
  structure, payload excluded) and ``total_bytes`` (everything the collection keeps:
  payload, write-ahead log, metadata), with the way each was measured.
* **aliases**: a name that points at a collection and can be switched in one step (native
  on Qdrant servers and Milvus, a pointer file for the embedded backends). Every call that
  takes a collection also takes an alias.

Ids are strings end to end. Backends that need integer or UUID keys map them internally and
give the original string back.
"""

from __future__ import annotations

import numbers
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from smec_index.errors import SmecError, brief, check_switch

METRICS = ("cosine", "ip", "l2")

# The one set of defaults: the same spec means the same index on every backend.
INDEX_DEFAULTS: dict[str, dict[str, int]] = {
    "flat": {},
    "hnsw": {"M": 16, "ef_construction": 200, "ef_search": 64},
    "ivf_flat": {"nlist": 128, "nprobe": 16},
    "ivf_pq": {"nlist": 128, "nprobe": 16, "pq_bits": 8},  # pq_m: dim / 2 unless given
}
MAX_M = 512  # HNSW links per node; usual 16 to 64
INTEGER_PARAMS = ("M", "ef_construction", "ef_search", "nlist", "nprobe", "pq_m", "pq_bits")
# What a search may set per call (:meth:`Connector.search`'s ``params``) without a rebuild:
# the beam of a graph, the lists an inverted file probes.
QUERY_PARAMS: dict[str, tuple[str, ...]] = {
    "flat": (),
    "hnsw": ("ef_search",),
    "ivf_flat": ("nprobe",),
    "ivf_pq": ("nprobe",),
}


MAX_VECTOR_DIM = 65536  # Qdrant's most (Milvus takes 32,768): wider than any embedding


@dataclass
class IndexSpec:
    """What to build: dim, metric, index kind and its parameters.

    Attributes:
        dim: vector dimension; every added vector and query must have it.
        metric: ``cosine`` (vectors normalised by the backend), ``ip`` or ``l2``.
        index: ``flat`` (exact), ``hnsw``, ``ivf_flat``, ``ivf_pq`` (where the backend has
            it).
        params: index parameters by their usual names: ``M``, ``ef_construction``,
            ``ef_search``, ``nlist``, ``nprobe``, ``pq_m``, ``pq_bits``, plus a backend's
            own (``encoding`` and ``refine`` on FAISS, ``encoding`` of ivf_flat on Milvus;
            ``quantization``, ``pq_compression``, ``bits``, ``oversampling`` on Qdrant).
    """

    dim: int
    metric: str = "cosine"
    index: str = "hnsw"
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.dim, bool) or not isinstance(self.dim, (int, np.integer)):
            raise SmecError(f"dim must be an integer, got {self.dim!r}")
        self.dim = int(self.dim)
        if self.dim <= 0:
            raise SmecError(f"dim must be positive, got {self.dim}")
        if self.dim > MAX_VECTOR_DIM:
            raise SmecError(f"dim {self.dim}: engines store at most {MAX_VECTOR_DIM} dims "
                            "(Qdrant's limit; Milvus takes 32,768); project to fewer")  # fmt: skip
        if not isinstance(self.metric, str) or self.metric not in METRICS:
            raise SmecError(f"unknown metric {brief(self.metric, 40)}; use one of "
                            f"{', '.join(METRICS)}")  # fmt: skip
        if not isinstance(self.index, str):
            raise SmecError(f"index {brief(self.index, 40)} is not a name; use one of "
                            f"{', '.join(INDEX_DEFAULTS)}")  # fmt: skip
        if not isinstance(self.params, Mapping) or not all(
                isinstance(k, str) for k in self.params):  # fmt: skip
            raise SmecError(f"params {brief(self.params, 60)}: pass a dict of parameter names to "
                            "values, e.g. {'M': 16}")  # fmt: skip
        self.params = dict(self.params)

    def resolved(self, extra_params: Sequence[str] = ()) -> IndexSpec:
        """This spec with the shared defaults filled in and every parameter checked.

        Args:
            extra_params: the backend's own parameter names for this index kind.
        Raises:
            SmecError: an unknown kind or parameter, or an integer parameter below 1.
        """
        if self.index not in INDEX_DEFAULTS:
            raise SmecError(f"unknown index {self.index!r}; use one of {', '.join(INDEX_DEFAULTS)}")
        known = set(INDEX_DEFAULTS[self.index]) | set(extra_params)
        if self.index == "ivf_pq":
            known.add("pq_m")
        unknown = sorted(set(self.params) - known)
        if unknown:
            raise SmecError(
                f"unknown {self.index} parameter(s) {', '.join(unknown)}; "
                f"use {', '.join(sorted(known)) or 'none'}"
            )
        params = {**INDEX_DEFAULTS[self.index], **self.params}
        if "nlist" in self.params and "nprobe" not in self.params:  # the default, not asked
            nlist = positive_int(params["nlist"], "index parameter nlist")
            params["nprobe"] = min(params["nprobe"], nlist)
        if self.index == "ivf_pq" and params.get("pq_m") is None:
            params["pq_m"] = self.dim // 2 if self.dim % 2 == 0 else self.dim
        for name in INTEGER_PARAMS:
            if name in params:
                params[name] = positive_int(params[name], f"index parameter {name}")
        if self.index == "hnsw":
            check_hnsw_m(params["M"])
        if "nlist" in params and params["nprobe"] > params["nlist"]:
            raise SmecError(nprobe_beyond(params["nprobe"], params["nlist"]))
        if self.index == "ivf_pq":
            if self.dim % params["pq_m"]:
                fits = [m for m in (4, 8, 16, 32, 64) if self.dim % m == 0 and m < self.dim]
                raise SmecError(f"pq_m={params['pq_m']} (--pq-m) must divide dim {self.dim}; "
                                f"pass one that does, e.g. {fits[-1] if fits else 1}")
            if params["pq_bits"] > 16:
                raise SmecError(f"pq_bits={params['pq_bits']}: use 1 to 16")
        return IndexSpec(self.dim, self.metric, self.index, params)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Batch:
    """Points as :meth:`Backend.get` and :meth:`Backend.iterate` give them.

    Attributes:
        ids, vectors, payloads: the points, vectors (n, dim) float32 as stored.
        cursor: where to resume after this batch (pass it as ``cursor=``); ``None`` when
            nothing follows. Opaque: a row number, a point id or a primary key by backend.
    """

    ids: list[str]
    vectors: np.ndarray
    payloads: list[dict[str, Any]]
    cursor: str | None = None

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class Sizes:
    """A collection's bytes, defined the same way on every backend.

    Attributes:
        index_bytes: what search needs: the vectors (or their quantized codes, plus the
            originals where the backend rescores with them) and the index structure;
            no payload, no ids beyond what the index itself holds.
        total_bytes: everything the collection keeps: payloads, id maps, write-ahead log,
            metadata.
        method: how the figures were obtained (the engine's own report, or which files
            were counted, and how).
    """

    index_bytes: int | None
    total_bytes: int | None
    method: str


@runtime_checkable
class Backend(Protocol):
    """What one backend implements. Input arrives checked (see the module docstring); names
    may be aliases wherever a collection is read or written."""

    name: str
    # index kind -> the backend's own parameters besides the shared ones
    index_kinds: dict[str, tuple[str, ...]]

    def create(self, collection: str, spec: IndexSpec) -> None:
        """Create a new, empty collection (the name is free: neither collection nor alias)."""
        ...

    def exists(self, collection: str) -> bool: ...

    def spec(self, collection: str) -> IndexSpec: ...

    def upsert(
        self, collection: str, ids: list[str], vectors: np.ndarray, payloads: list[dict]
    ) -> None:
        """Write one batch; ids present are replaced."""
        ...

    def get(self, collection: str, ids: list[str]) -> Batch:
        """The points of ``ids`` that exist, in the order asked."""
        ...

    def search(
        self, collection: str, queries: np.ndarray, k: int, params: dict[str, int]
    ) -> list[list[tuple[str, float]]]:
        """Up to ``k`` (id, score) per query, best first; scores are similarities, negated
        distances for ``l2``. ``params`` holds the :data:`QUERY_PARAMS` entries of the
        collection's index kind that the call or the spec sets (the call's value first);
        one absent leaves the engine's default."""
        ...

    def count(self, collection: str) -> int: ...

    def iterate(self, collection: str, batch_size: int, cursor: str | None) -> Iterator[Batch]:
        """Every point once from ``cursor`` on (the start when ``None``)."""
        ...

    def flush(self, collection: str) -> None: ...

    def sizes(self, collection: str) -> Sizes: ...

    def drop(self, collection: str) -> None:
        """Delete a collection (not an alias); a missing one is not an error."""
        ...

    def collections(self) -> list[str]: ...

    def aliases(self) -> dict[str, str]:
        """alias -> collection."""
        ...

    def set_alias(self, alias: str, collection: str) -> None:
        """Point ``alias`` at ``collection`` in one step (create or switch)."""
        ...

    def drop_alias(self, alias: str) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class Persistent(Protocol):
    """Backends whose collections live in files under a data directory."""

    def path(self, collection: str) -> str:
        """Where the collection's files are."""
        ...


@runtime_checkable
class ChecksSpecs(Protocol):
    """Backends that check their own parameters' values (beyond the names every backend
    declares in ``index_kinds``) without touching a collection."""

    def check(self, spec: IndexSpec) -> None:
        """Raise :class:`SmecError` if ``spec`` (resolved) cannot be built here."""
        ...


@runtime_checkable
class HoldsOthers(Protocol):
    """Backends that may hold collections smec-index did not make (a user's Milvus
    database or server, a qdrant-client folder or server)."""

    def foreign(self, collection: str) -> bool:
        """Whether ``collection`` (an existing physical name) was made by someone else:
        it lacks the spec smec-index stores with every collection it creates."""
        ...


INT_MAX = 2**31 - 1  # C int: the widest every engine's counts and beams take


def nprobe_beyond(nprobe: int, nlist: int) -> str:
    """The message for probing more lists than an inverted file has (engines would clamp
    it silently, and a sweep would report the same run twice under two names)."""
    return f"nprobe={nprobe} is more than the {nlist} lists (nlist) the index has; use 1 to {nlist}"


def check_hnsw_m(m: Any) -> None:
    """HNSW's M from 2 to :data:`MAX_M`: M = 1 leaves a node one link (FAISS crashes,
    hnswlib cannot allocate); above a few hundred no engine gains recall, only memory."""
    if isinstance(m, int) and not isinstance(m, bool) and not 2 <= m <= MAX_M:
        raise SmecError(f"index parameter M={m}: use 2 to {MAX_M} (16 and 32 are the usual "
                        "values)")  # fmt: skip


def check_switches(where: Any, *names: str) -> None:
    """Each named attribute of ``where`` (a request) is True or False: a switch given as
    "no" or 1 from Python would otherwise be taken as yes (an overwrite, a retraining)."""
    for name in names:
        check_switch(getattr(where, name), name)


def check_fields(
    where: Any,
    paths: tuple[str, ...] = (),
    mappings: tuple[str, ...] = (),
    text: tuple[str, ...] = (),
    required: tuple[str, ...] = (),
) -> None:
    """A request's fields of the types the code that reads them needs, or a one-line
    error (from Python a str path, a list of options or a number id met a raw TypeError
    deep inside): ``paths`` (None allowed unless ``required``) become Paths, ``mappings``
    are dicts without a ``data_dir`` (a field of its own), ``text`` fields are str or None
    (str where ``required``)."""
    from smec_index.data import check_path_name

    for name in required:
        if getattr(where, name) is None:
            raise SmecError(f"{name} is None; pass one")
    for name in paths:
        value = getattr(where, name)
        if value is not None:
            check_path_name(value, name)
            setattr(where, name, Path(value))
    for name in mappings:
        value = getattr(where, name)
        if not isinstance(value, Mapping):
            raise SmecError(f"{name} must be a dict, got {type(value).__name__}")
        if "data_dir" in value:
            raise SmecError(f"{name}: data_dir is a field of its own; pass it as data_dir=")
    for name in text:
        value = getattr(where, name)
        if value is not None and not isinstance(value, str):
            raise SmecError(f"{name} must be text (str), got {type(value).__name__} "
                            f"{brief(value, 30)}")  # fmt: skip


def positive_int(value: Any, what: str, most: int = INT_MAX) -> int:
    """``value`` as an int from 1 to ``most``, or a one-line error naming ``what``.

    The one check every integer flag and config value goes through: a count beyond C's
    ``int`` would overflow the engine (or allocate for it) instead of being refused.
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise SmecError(f"{what} must be a positive integer, got {value!r}")
    if value > most:
        raise SmecError(f"{what} must be at most {most:,}, got {value:,}")
    return int(value)


# A Milvus --uri with one of these is a server; anything else is a milvus-lite path.
MILVUS_SERVER_SCHEMES = ("http://", "https://", "tcp://", "grpc://", "unix://")


def is_milvus_server(uri: str | None) -> bool:
    return bool(uri) and str(uri).startswith(MILVUS_SERVER_SCHEMES)


def check_lite_uri(uri: str) -> None:
    """A milvus-lite path is no URL: milvus-lite would take ``ftp://h`` for a folder
    named ``ftp:``."""
    if not is_milvus_server(uri) and re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", uri):
        from smec_index.secrets import shown_url

        raise SmecError(
            f"--uri {shown_url(uri)}: Milvus servers are reached over "
            f"{', '.join(s[:-3] for s in MILVUS_SERVER_SCHEMES)}; a milvus-lite database is a "
            "path ending in .db"
        )


MAX_NAME = 200
PHYSICAL = "__b"  # <name>__b<hex>: the physical collections behind a built name
PHYSICAL_HEX = 10
_PHYSICAL = re.compile(rf".+{PHYSICAL}[0-9a-f]{{{PHYSICAL_HEX},}}")  # and longer look-alikes


def is_physical(collection: str, name: str) -> bool:
    """Whether ``collection`` is one of the physical collections builds of ``name`` make."""
    return (
        re.fullmatch(rf"{re.escape(name)}{PHYSICAL}[0-9a-f]{{{PHYSICAL_HEX}}}", collection)
        is not None
    )


def derived_name(base: str, suffix: str, most: int = MAX_NAME) -> str:
    """A collection name made of ``base`` (a dataset folder's or a source collection's name,
    which may hold any character) and ``suffix``: what a name cannot hold written as ``_``,
    ``c_`` before a start that is no letter, and a name longer than ``most`` cut to its start
    and a hash of ``base`` (``msmarco-v2.1`` and ``dócs`` met a refusal of a name the user
    never typed, or none)."""
    import hashlib

    safe, suffix = (re.sub(r"[^A-Za-z0-9_]", "_", part) for part in (base, suffix))
    name = f"{safe if safe[:1].isalpha() else 'c_' + safe}_{suffix}"
    if len(name) > most:
        digest = hashlib.sha256(base.encode("utf-8", "surrogatepass")).hexdigest()[:10]
        name = f"{name[:most - 12 - len(suffix)]}_{digest}_{suffix}"
    return name


class SearcherStale(SmecError):
    """A :class:`Searcher`'s collection was dropped (or made again) after it was opened: a
    new searcher searches what is there now."""


def alias_to_nothing(alias: str, collection: str, backend: str) -> SmecError:
    """An alias whose collection is gone: "no collection; create (build) it first" was
    refused, the alias holding the name."""
    gone = (f"alias {alias!r} names collection {collection!r} in {backend}, which is gone "
            "(its files removed?)")
    if collection.startswith(f"{alias}{PHYSICAL}") and _PHYSICAL.fullmatch(collection):
        return SmecError(f"{gone}; build {alias!r} again with --overwrite (or drop_alias it)")
    # an alias of the user's own (or a migration's): build --overwrite replaces none of those
    return SmecError(f"{gone}; point it at a collection that exists, or drop it "
                     "(Connector.set_alias / drop_alias)")


def check_new_name(
    name: str, flag: str, what: str = "collection name", most: int = MAX_NAME
) -> str:
    """A name a user command may create, replace or drop: a safe collection name (of at
    most ``most`` characters) that is not one of the physical ``NAME__b<hex>`` collections
    builds make (only the build and alias machinery creates or drops those; replacing one
    by name would destroy NAME)."""
    check_collection_name(name, what, most)
    if _PHYSICAL.fullmatch(name):
        raise SmecError(
            f"{flag} {name!r}: names ending in '{PHYSICAL}' and {PHYSICAL_HEX} or more hex "
            "digits are the physical collections behind a built name, reserved for "
            "smec-index; pick another name"
        )
    return name


def check_collection_name(name: str, what: str = "collection name", most: int = MAX_NAME) -> str:
    """ASCII letters, digits and ``_``, starting with a letter, at most ``most`` (200)
    characters: safe as a file name and accepted by every backend (Milvus takes no ``-``, so
    none does)."""
    if (
        not isinstance(name, str)
        or not name
        or len(name) > most
        or not all(c.isascii() and (c.isalnum() or c == "_") for c in name)
        or not name[0].isalpha()
    ):
        shown = name if isinstance(name, str) and len(name) <= 60 else f"{str(name)[:60]}..."
        raise SmecError(
            f"{what} {shown!r}: use ASCII letters, digits and '_', starting with a "
            f"letter, at most {most} characters"
        )
    return name


def default_data_dir() -> Path:
    """Where embedded backends keep their files: ``$SMEC_INDEX_DATA`` or ``./smec-data``."""
    return Path(os.environ.get("SMEC_INDEX_DATA", "smec-data"))


def typed_options(options: dict[str, Any]) -> dict[str, Any]:
    """Addresses and keys as text, folders as paths, a timeout as seconds: a milvus-lite
    ``uri`` may be a ``Path`` (as ``data_dir`` may), anything else of another type is refused
    by name (never a C library's TypeError)."""
    typed = dict(options)
    if isinstance(typed.get("uri"), os.PathLike):
        typed["uri"] = os.fspath(typed["uri"])
    for name in ("url", "api_key", "uri", "token", "mode", "using"):
        value = typed.get(name)
        if value is not None and not isinstance(value, str):
            what = "a server address" if name in ("url", "uri") else "text"
            raise SmecError(f"{name} must be {what} (a str), got {type(value).__name__}")
    timeout = typed.get("timeout")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, numbers.Real)
        or not 0 < timeout < float("inf")
    ):  # checked though an embedded engine has no use for it: an app moved to a server
        raise SmecError(f"timeout {brief(timeout, 40)}: pass seconds, a positive number")
    for name in ("data_dir", "storage"):  # folders: a path's rules, before Path() is called
        if typed.get(name) is not None:
            from smec_index.data import check_path_name

            check_path_name(typed[name], name)
    return typed
