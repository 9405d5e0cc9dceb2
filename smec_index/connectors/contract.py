"""The one validating wrapper every backend gets: :class:`Connector`.

Input is checked here and nowhere else (names, ids, vectors, payloads, k, batch sizes),
index defaults are filled here (:meth:`IndexSpec.resolved`), and what a backend answers is
checked here too (unique ids per query, scores best first), so no backend can accept what
another rejects, or return what the metrics would miscount.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any

import numpy as np

from smec_index.connectors.base import (
    INT_MAX,
    QUERY_PARAMS,
    Backend,
    Batch,
    ChecksSpecs,
    HoldsOthers,
    IndexSpec,
    SearcherStale,
    Sizes,
    alias_to_nothing,
    check_collection_name,
    check_new_name,
    nprobe_beyond,
    positive_int,
)
from smec_index.errors import SmecError, brief, check_switch
from smec_index.vectors import as_rows, check_vectors, normalize

MAX_ID_BYTES = 1024  # the longest id every backend stores (Milvus' VARCHAR primary key)
RESERVED_KEY = "_smec_id"  # Qdrant keeps the original id in the payload under this key
SCORE_TOLERANCE = 1e-5
PAD_LIMIT = 1024  # k above this is capped at the count before anything is allocated


_CREATING = threading.RLock()  # creates are rare: one at a time in a process


class Connector:
    """A backend behind the contract of :mod:`smec_index.connectors.base`.

    Get one from :func:`smec_index.connectors.open_connector`. Every method that takes a
    collection also takes an alias. Use it as a context manager, or call :meth:`close`.
    """

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.name = backend.name
        self._specs: dict[str, tuple[IndexSpec, Any]] = {}  # with its life

    def __repr__(self) -> str:
        return f"Connector({self.backend!r})"

    def __enter__(self) -> Connector:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        try:
            self.close()
        except SmecError:
            if exc_type is None:
                raise
            # Already failing (say, the server is gone): that error is the one to report.

    # -- collections ---------------------------------------------------------------------
    def create(self, collection: str, spec: IndexSpec, overwrite: bool = False) -> IndexSpec:
        """Create ``collection``; an existing one is an error unless ``overwrite``.

        The names of the physical collections builds make (``NAME__b<hex>``) are reserved:
        one made here was taken by the next ``build`` of NAME for a leftover of its own, and
        deleted with its points.

        Returns:
            the spec as stored, with every default filled in.
        """
        check_new_name(collection, "collection")
        return self.create_build(collection, spec, overwrite)

    def create_build(self, collection: str, spec: IndexSpec,
                     overwrite: bool = False) -> IndexSpec:  # fmt: skip
        """:meth:`create` for smec-index's build machinery, which alone may make the
        physical ``NAME__b<hex>`` collections behind a built name."""
        check_collection_name(collection)
        check_switch(overwrite, "overwrite")  # "no" is truthy: it dropped one
        spec = self.check_spec(spec)
        with _CREATING:  # threads creating one name: one makes it, the others are refused
            return self._create(collection, spec, overwrite)

    def _create(self, collection: str, spec: IndexSpec, overwrite: bool) -> IndexSpec:
        target = self.aliases().get(collection)
        if target is not None:
            raise SmecError(
                f"{collection!r} is an alias of {target!r} in {self.name}; create the new "
                "collection under another name and switch the alias to it"
            )
        if self.backend.exists(collection):
            self.refuse_foreign(collection)
            if not overwrite:
                raise SmecError(
                    f"collection {collection!r} already exists in {self.name}; pass "
                    "--overwrite to replace it, or pick another name"
                )
            # the names pointing at it stay the user's: replacing a collection is no
            # reason to drop them (the engines drop a collection's aliases with it)
            kept = sorted(a for a, t in self.aliases().items() if t == collection)
            self.drop(collection)
        else:
            kept = []
        self._specs.pop(collection, None)
        self.backend.create(collection, spec)
        self._specs[collection] = (spec, self._life(collection))
        for alias in kept:
            self._specs.pop(alias, None)
            self.backend.set_alias(alias, collection)
        return spec

    def foreign(self, collection: str) -> bool:
        """Whether the existing collection ``collection`` (not an alias) was made by someone
        else, not by smec-index: a user's own collection in their Milvus or Qdrant."""
        check_collection_name(collection)
        return isinstance(self.backend, HoldsOthers) and self.backend.foreign(collection)

    def refuse_foreign(
        self,
        collection: str,
        fix: str = "pick another name, or drop it yourself first if you mean to replace it",
    ) -> None:
        """Refuse a collection of this name that smec-index did not make: nothing of
        smec-index's replaces or drops a user's own data (``fix``: what to do instead)."""
        if self.foreign(collection):
            raise SmecError(
                f"collection {collection!r} in {self.name} was not made by smec-index (it "
                f"has no smec-index spec), so smec-index leaves it alone: {fix}"
            )

    def check_spec(self, spec: IndexSpec) -> IndexSpec:
        """``spec`` with its defaults filled in, or :class:`SmecError` if this backend cannot
        build it: the index kind, the parameter names and, where the backend
        :class:`ChecksSpecs`, their values. Touches no collection, so a command can call it
        before any expensive work."""
        if not isinstance(spec, IndexSpec):
            raise SmecError(f"spec must be an IndexSpec, got {type(spec).__name__}: e.g. "
                            "IndexSpec(dim=256, index='hnsw')")  # fmt: skip
        extra = self.backend.index_kinds.get(spec.index)
        if extra is None:
            kinds = ", ".join(self.backend.index_kinds)
            raise SmecError(f"{self.name} has no {spec.index!r} index; use one of {kinds}")
        spec = spec.resolved(extra)
        if isinstance(self.backend, ChecksSpecs):
            self.backend.check(spec)
        return spec

    def exists(self, collection: str) -> bool:
        """Whether ``collection`` names a collection or an alias."""
        check_collection_name(collection)
        return collection in self.aliases() or self.backend.exists(collection)

    def spec(self, collection: str) -> IndexSpec:
        """The stored spec, cached per physical collection (an alias is resolved on every
        call, so a switch never leaves a stale dim or index behind)."""
        check_collection_name(collection)  # before a lookup: a list is unhashable
        target = self.aliases().get(collection, collection)
        cached = self._specs.get(target)
        if cached is not None and (cached[1] is None or not cached[1].ended):
            return cached[0]
        # Not read yet, or dropped or made again by another connector of this process since.
        if cached is not None and not self.backend.exists(target):
            raise SmecError(f"collection {collection!r} was dropped (by another connector of "
                            "this process) after this one read it; create it again first")
        self._require(target)
        life = self._life(target)
        spec = self.backend.spec(target)
        self._specs[target] = (spec, life)
        return spec

    def _life(self, collection: str) -> Any:
        """The backend's record of whether ``collection`` still exists as this process
        knows it (``None`` where a backend keeps none: a server's collections)."""
        life = getattr(self.backend, "life", None)
        return None if life is None else life(collection)

    def collections(self) -> list[str]:
        return sorted(self.backend.collections())

    def drop(self, collection: str) -> None:
        """Delete a collection and the aliases that point at it; a missing one is fine."""
        check_collection_name(collection)
        aliases = self.aliases()
        if collection in aliases:
            raise SmecError(
                f"{collection!r} is an alias of {aliases[collection]!r}; drop the alias "
                "(drop_alias) or the collection it points at"
            )
        if self.backend.exists(collection):
            self.refuse_foreign(collection, "drop it with your own client if you mean to")
        for alias, target in aliases.items():
            if target == collection:
                self.backend.drop_alias(alias)
        self._specs.clear()  # aliases may have pointed at it
        self.backend.drop(collection)

    # -- points --------------------------------------------------------------------------
    def add(
        self,
        collection: str,
        ids: Sequence[str],
        vectors: np.ndarray,
        payloads: Sequence[dict[str, Any]] | None = None,
        batch_size: int = 1000,
    ) -> None:
        """Upsert points by id in batches of ``batch_size``: an id already stored is
        replaced (vector and payload) and the count does not grow.

        Args:
            collection: a collection or alias.
            ids: one non-empty string per vector, unique within the call.
            vectors: (n, dim) finite values of the collection's dim.
            payloads: one JSON-serialisable dict per vector, or ``None`` (empty payloads).
            batch_size: points per backend write.
        """
        batch_size = positive_int(batch_size, "batch_size")
        spec = self.spec(collection)
        vectors = check_vectors(vectors, spec.dim)
        if spec.metric == "cosine":  # here, once for every backend: an engine's own float32
            # normalisation scored vectors of tiny norm (1e-30) 0 or as any direction
            vectors = normalize(vectors)
        ids = check_ids(ids, len(vectors))
        payloads = check_payloads(payloads, len(ids))
        for start in range(0, len(ids), batch_size):
            stop = start + batch_size
            self.backend.upsert(
                collection, ids[start:stop], vectors[start:stop], payloads[start:stop]
            )

    upsert = add

    def get(self, collection: str, ids: Sequence[str]) -> Batch:
        """The stored points of ``ids`` (vectors as stored, payloads), in the order asked;
        ids that are not stored are left out."""
        self._require(collection)
        if not isinstance(ids, (str, bytes)):
            try:
                ids = list(ids)  # a generator, a set, a numpy array of strings
            except TypeError:
                raise SmecError(f"ids {brief(ids, 40)}: pass a list of string ids") from None
        wanted = list(dict.fromkeys(check_ids(ids, len(ids), unique=False)))
        if not wanted:
            return Batch([], np.zeros((0, self.spec(collection).dim), np.float32), [])
        got = self.backend.get(collection, wanted)
        position = {point_id: n for n, point_id in enumerate(got.ids)}
        if len(position) != len(got.ids) or not set(position) <= set(wanted):
            raise SmecError(f"{self.name} answered get() with ids not asked for; please report")
        order = [position[i] for i in wanted if i in position]
        return Batch(
            [got.ids[n] for n in order],
            np.ascontiguousarray(got.vectors[order], dtype=np.float32),
            [got.payloads[n] for n in order],
        )

    def search(
        self,
        collection: str,
        queries: np.ndarray,
        k: int,
        params: Mapping[str, int] | None = None,
    ) -> tuple[list[list[str]], np.ndarray]:
        """Top-``k`` ids per query, best first, and their (nq, k) float32 scores.

        ``params`` sets this call's query parameters instead of the spec's, without touching
        the index: ``ef_search`` (hnsw; the search uses ``max(ef_search, k)``) or ``nprobe``
        (ivf_*). A sweep over them builds the index once.

        Scores are similarities for ``cosine``/``ip`` and negated distances for ``l2``
        (squared on FAISS, hnswlib and Milvus, plain on Qdrant: compare l2 scores within one
        backend). A query that finds fewer than ``k`` points (``k`` above the count) is
        padded with ``""`` and ``-inf`` to ``k`` columns; a ``k`` above 1,024
        (:data:`PAD_LIMIT`) is first capped at the count, so no more columns than points
        are allocated.

        Raises:
            SmecError: bad input, or a backend that answered with an id twice for one query
                or with unsorted scores (never passed on: metrics would miscount them).
        """
        k = positive_int(k, "k")
        if k > PAD_LIMIT:  # one count query, paid only by a k no ranking page needs
            k = max(1, min(k, self.count(collection)))
        spec = self.spec(collection)
        resolved = query_params(spec, params, getattr(self.backend, "query_limits", None))
        queries = check_vectors(queries, spec.dim, "queries")
        if spec.metric == "cosine":  # as add does: queries of tiny norm scored 3.76 or 2e-30
            queries = normalize(queries)
        ids = [[""] * k for _ in range(len(queries))]
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        if not len(queries):
            return ids, scores
        hits = self.backend.search(collection, queries, k, resolved)
        if len(hits) != len(queries):
            raise SmecError(f"{self.name} answered {len(hits)} of {len(queries)} queries")
        for row, found in enumerate(hits):
            if len(found) > k:
                raise SmecError(f"{self.name} returned {len(found)} hits for k={k}")
            row_ids = [str(point_id) for point_id, _ in found]
            if len(set(row_ids)) != len(row_ids) or "" in row_ids:
                raise SmecError(
                    f"{self.name} returned an id twice (or an empty id) for one query in "
                    f"{collection!r}; the collection may be corrupt: rebuild it"
                )
            ids[row][: len(found)] = row_ids
            scores[row, : len(found)] = [score for _, score in found]
        with np.errstate(invalid="ignore"):  # -inf padding: -inf - -inf
            steps = np.diff(np.where(np.isfinite(scores), scores, -np.inf), axis=1)
        if np.any(steps > SCORE_TOLERANCE * max(1.0, _largest(scores))):
            raise SmecError(f"{self.name} returned hits out of score order; please report")
        return ids, scores

    def searcher(self, collection: str, params: Mapping[str, int] | None = None) -> Searcher:
        """A :class:`Searcher` of ``collection`` (a name or an alias, resolved now) with
        ``params`` (``ef_search`` / ``nprobe``) checked and bound once: the path to time and
        to serve many queries through."""
        return Searcher(self, collection, params)

    def count(self, collection: str) -> int:
        self._require(collection)
        return int(self.backend.count(collection))

    def iterate(
        self, collection: str, batch_size: int = 1000, cursor: str | None = None
    ) -> Iterator[Batch]:
        """Every point once, ``batch_size`` at a time, from ``cursor`` on.

        Each batch's ``cursor`` resumes right after it, in this process or another:
        ``iterate(c, cursor=batch.cursor)``. Points written while iterating may or may not
        be seen.
        """
        batch_size = positive_int(batch_size, "batch_size")
        if cursor is not None and not isinstance(cursor, str):
            raise SmecError(f"cursor {cursor!r}: pass a cursor a batch gave, or None")
        self._require(collection)
        dim = self.spec(collection).dim
        for batch in self.backend.iterate(collection, batch_size, cursor):
            if len(batch.ids) > batch_size or batch.vectors.shape != (len(batch.ids), dim):
                raise SmecError(f"{self.name} iterated a malformed batch; please report")
            yield batch

    def flush(self, collection: str) -> None:
        """Make everything written durable and searchable through the index."""
        self._require(collection)
        self.backend.flush(collection)

    def sizes(self, collection: str) -> Sizes:
        """``index_bytes`` and ``total_bytes`` as :class:`Sizes` defines them."""
        self._require(collection)
        return self.backend.sizes(collection)

    # -- aliases -------------------------------------------------------------------------
    def aliases(self) -> dict[str, str]:
        """Every alias of this backend (location), alias -> collection."""
        return dict(self.backend.aliases())

    def resolve(self, name: str) -> str | None:
        """The collection ``name`` stands for: its alias target, itself, or ``None``."""
        check_collection_name(name)
        target = self.aliases().get(name)
        if target is not None:
            return target
        return name if self.backend.exists(name) else None

    def set_alias(self, alias: str, collection: str) -> None:
        """Create ``alias`` or switch it to ``collection`` in one atomic step."""
        check_new_name(alias, "alias")  # never a name of the physical NAME__b<hex> kind
        check_collection_name(collection)
        aliases = self.aliases()
        if collection in aliases:  # aliases of aliases: no engine has them
            raise SmecError(
                f"cannot point alias {alias!r} at {collection!r}: that is an alias (of "
                f"{aliases[collection]!r}) in {self.name}, and an alias points at a "
                f"collection; point it at {aliases[collection]!r}"
            )
        if not self.backend.exists(collection):
            raise SmecError(
                f"cannot point alias {alias!r} at {collection!r}: not a collection in "
                f"{self.name}; create it first"
            )
        if alias not in aliases and self.backend.exists(alias):
            raise SmecError(
                f"{alias!r} is a collection in {self.name}, so it cannot become an alias; "
                "drop it or pick another alias name"
            )
        self._specs.pop(alias, None)
        self.backend.set_alias(alias, collection)

    def drop_alias(self, alias: str) -> None:
        """Remove ``alias`` (its collection stays); a name that is no alias is not an
        error, a collection's name is refused (drop it with :meth:`drop`)."""
        check_collection_name(alias)
        if alias in self.aliases():
            self._specs.pop(alias, None)
            self.backend.drop_alias(alias)
        elif self.backend.exists(alias):
            raise SmecError(
                f"{alias!r} is a collection in {self.name}, not an alias; drop_alias leaves "
                "collections alone (drop() deletes one)"
            )

    def close(self) -> None:
        """Release files, locks and connections; closing twice is fine, any other call
        after it is refused."""
        self._specs.clear()
        backend, self.backend = self.backend, _Closed(self.name)  # type: ignore[assignment]
        backend.close()

    def _require(self, collection: str) -> None:
        if not self.exists(collection):
            named = sorted(a for a, t in self.aliases().items() if t == collection)
            if named:  # "create (build) it first" was refused: the alias's name exists
                raise alias_to_nothing(named[0], collection, self.name)
            raise SmecError(
                f"no collection {collection!r} in {self.name}; create (build) it first, or "
                "check the name"
            )


class _Closed:
    """What a closed connector's backend becomes: every use is one line."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<closed {self.name} backend>"

    def close(self) -> None:
        pass

    def __getattr__(self, attribute: str) -> Any:
        raise SmecError(f"this {self.name} connector is closed; open a new one")


class Searcher:
    """One collection, resolved once, searched many times: the lean path.

    Opening resolves the alias, reads the spec, checks the query parameters and lets the
    backend bind its engine (a FAISS ``SearchParameters`` object, hnswlib's ef). A search
    is then a shape check, one engine call and one vectorised id lookup: no file system
    call, no per-hit Python loop, nothing allocated that grows with the collection.

    A searcher sees the collection as it was when opened (an alias switched later is not
    followed: open another). What a backend answers is checked by the contract test and
    by :meth:`Connector.search`, not on this path. Backends without a lean engine (the
    Qdrant and Milvus clients) are searched through :meth:`Connector.search`.
    """

    def __init__(self, connector: Connector, collection: str,
                 params: Mapping[str, int] | None = None) -> None:  # fmt: skip
        resolved = connector.resolve(collection)
        if resolved is None:
            connector._require(collection)  # the one-line "no collection" error
        self.collection = resolved or collection
        self.spec = connector.spec(self.collection)
        self.params = query_params(
            self.spec, params, getattr(connector.backend, "query_limits", None)
        )
        self._connector = connector
        bind = getattr(connector.backend, "searcher", None)
        self._engine = None if bind is None else bind(self.collection, self.params)
        life = getattr(connector.backend, "life", None)  # Milvus: no engine holds the name
        self._life = None if life is None or self._engine else life(self.collection)
        self.layer = "engine + id lookup" if self._engine else "Connector.search"

    def search(
        self, queries: np.ndarray, k: int = 10, normalized: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` ids (an object array, ``""`` past the last hit) and scores (``-inf``
        there) of each query row, best first. ``normalized``: the rows are unit length
        already (a cosine collection's queries must be; :class:`CompressedIndex` makes
        them so), which saves normalising them again."""
        if (
            not isinstance(queries, np.ndarray)
            or queries.dtype != np.float32
            or queries.ndim != 2
            or not queries.flags.c_contiguous
        ):
            queries, _ = as_rows(queries, self.spec.dim, "queries")
        if queries.ndim != 2 or queries.shape[1] != self.spec.dim:
            raise SmecError(
                f"queries of shape {queries.shape}; {self.collection!r} holds {self.spec.dim}-d "
                "vectors"
            )
        check_switch(normalized, "normalized")
        if not len(queries):  # nothing asked: every engine's empty answer
            k = positive_int(k, "k")
            return np.empty((0, k), dtype=object), np.empty((0, k), dtype=np.float32)
        # Rows said to be unit length were checked where they were made (CompressedIndex's
        # projection); others get one sum (a NaN or inf anywhere makes it non-finite), and
        # only then every value (finite values can sum past float32).
        if not normalized and not math.isfinite(queries.sum()) and \
                not np.isfinite(queries).all():  # fmt: skip
            raise SmecError("queries hold NaN or inf; clean them first")
        if type(self._connector.backend) is _Closed:
            raise SmecError(f"this searcher's {self._connector.name} connector is closed; "
                            "open a new connector and searcher")  # fmt: skip
        if self._engine is None:
            if self._life is not None and self._life.ended:
                raise SearcherStale(f"collection {self.collection!r} was dropped after this "
                                    "searcher opened it; open a new one (connector.searcher)")
            ids, scores = self._connector.search(self.collection, queries, k, self.params)
            return np.array(ids, dtype=object).reshape(len(queries), -1), scores
        if type(k) is not int or not 0 < k <= PAD_LIMIT:
            k = positive_int(k, "k")
        if not normalized and self.spec.metric == "cosine":
            queries = normalize(queries)
        return self._engine(queries, k)


def check_ids(ids: Sequence[Any], n: int, unique: bool = True) -> list[str]:
    """One non-empty string id per vector, each at most 1024 UTF-8 bytes, no control
    characters, unique when ``unique``."""
    if isinstance(ids, (str, bytes)):
        raise SmecError("ids must be a list of strings, not one string")
    if unique and isinstance(ids, (AbstractSet, Mapping)):  # no order to pair with rows
        raise SmecError(f"ids as a {type(ids).__name__} have no order, so which vector each "
                        "would get is chance; pass a list in the vectors' order")  # fmt: skip
    try:
        ids = list(ids)
    except TypeError:  # a number, None
        raise SmecError(f"ids {brief(ids, 40)}: pass a list of string ids, one per "
                        "vector") from None  # fmt: skip
    if len(ids) != n:
        raise SmecError(f"{len(ids)} ids for {n} vectors; pass one id per vector")
    for point_id in ids:
        if not isinstance(point_id, str) or not point_id:
            raise SmecError(f"id {point_id!r}: ids must be non-empty strings")
        try:
            point_id.encode("utf-8")
        except UnicodeEncodeError:
            raise SmecError(f"id {point_id!r} is not UTF-8 text (a lone surrogate); pass "
                            "text ids") from None  # fmt: skip
        if len(point_id.encode("utf-8")) > MAX_ID_BYTES:
            raise SmecError(f"id {brief(point_id, 40)}: ids are limited to {MAX_ID_BYTES} bytes")
        if any(ord(c) < 32 or ord(c) == 127 for c in point_id):
            raise SmecError(f"id {point_id!r} holds a control character; remove it")
    if unique and len(set(ids)) != len(ids):
        seen: set[str] = set()
        twice = next(i for i in ids if i in seen or seen.add(i))
        raise SmecError(f"id {twice!r} appears twice in one write; pass each id once")
    return [str(point_id) for point_id in ids]  # numpy's str_ as str: every backend alike


def _no_json(value: Any) -> Any:
    """What json.dumps calls for a value it cannot write: a message naming its full type
    ("bool is not JSON serializable" read as if Python's bool were refused, for numpy's)."""
    kind = type(value)
    where = "" if kind.__module__ == "builtins" else f"{kind.__module__}."
    advice = "; convert numpy values with .item() or .tolist()" if where.startswith(
        "numpy") else ""  # fmt: skip
    raise TypeError(f"{where}{kind.__name__} is no JSON value{advice}")


def check_payloads(payloads: Sequence[dict[str, Any]] | None, n: int) -> list[dict[str, Any]]:
    """One JSON object per point (empty ones when ``None``), copied through JSON so that
    every backend stores and gives back the same thing (tuples become lists)."""
    if payloads is None:
        return [{} for _ in range(n)]
    if isinstance(payloads, (str, bytes, Mapping)):  # one payload, or text: not a list
        raise SmecError(f"payloads {brief(payloads, 40)}: pass a list of dicts, one per point")
    try:
        payloads = list(payloads)
    except TypeError:
        raise SmecError(f"payloads {brief(payloads, 40)}: pass a list of dicts, one per "
                        "point") from None  # fmt: skip
    if len(payloads) != n:
        raise SmecError(f"{len(payloads)} payloads for {n} points; pass one per point or none")
    checked = []
    for payload in payloads:
        if not isinstance(payload, dict):
            raise SmecError(f"payload {brief(payload, 60)} is not a dict; pass one dict per point")
        if RESERVED_KEY in payload:
            raise SmecError(f"payload key {RESERVED_KEY!r} is reserved; rename that field")
        try:
            text = json.dumps(payload, allow_nan=False, ensure_ascii=False, default=_no_json)
            text.encode("utf-8")  # a lone surrogate: not text any engine stores
            checked.append(json.loads(text, parse_int=_int64, object_pairs_hook=_one_each))
        except (TypeError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
            if "Out of range float" in str(exc):  # json's words for NaN and inf
                raise SmecError("a payload holds a NaN or inf float, which JSON cannot hold "
                                "and no engine stores; replace it (with null, say)") from None
            raise SmecError(f"payloads must be JSON-serialisable dicts of UTF-8 text, 64-bit "
                            f"integers, finite floats, booleans and nulls, in lists and dicts "
                            f"({str(exc)[:120]})") from None  # fmt: skip
        except RecursionError:
            raise SmecError("a payload is nested deeper than JSON encoding allows (a "
                            "self-referencing or runaway structure?); flatten it"
                            ) from None  # fmt: skip
        if _deeper_than(checked[-1], MAX_PAYLOAD_DEPTH):
            raise SmecError(f"a payload is nested more than {MAX_PAYLOAD_DEPTH} levels deep, "
                            "which Qdrant stores but cannot read back; flatten it")  # fmt: skip
    return checked


MAX_PAYLOAD_DEPTH = 64  # qdrant-edge wrote 130 levels to its log and could not replay it


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether lists and objects nest in ``value`` more than ``limit`` levels deep."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(
            item, list) else ()  # fmt: skip
        for child in children:
            if isinstance(child, (dict, list)):
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False


def _one_each(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are all different once written as text: ``{1: a, "1": b}``
    would keep one of its two values."""
    found = dict(pairs)
    if len(found) != len(pairs):
        seen: set[str] = set()
        twice = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise ValueError(f"two keys are both {twice!r} once written as JSON text; rename one")
    return found


def _int64(digits: str) -> int:
    """A payload integer every backend keeps exactly (Qdrant turned larger ones into floats,
    Milvus refuses them)."""
    value = int(digits) if len(digits) < 30 else None
    if value is None or not -(2**63) <= value < 2**63:
        raise ValueError(f"an integer beyond 64 bits ({digits[:30]})")
    return value


def _largest(scores: np.ndarray) -> float:
    finite = np.abs(scores[np.isfinite(scores)])
    return float(finite.max()) if finite.size else 0.0


def query_params(
    spec: IndexSpec, params: Mapping[str, int] | None, limits: Mapping[str, int] | None = None
) -> dict[str, int]:
    """The query parameters of ``spec``'s index kind: ``params``' values where given, the
    spec's otherwise; one neither sets is left out (the engine's own default: a Qdrant
    collection made by another tool has no ef_search). A parameter the index kind has no use
    for is an error, not ignored: an ``ef_search`` sent to a flat index would change nothing
    and look like it did."""
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise SmecError(f"search params must be a mapping of name to value, got {params!r}")
    allowed = QUERY_PARAMS.get(spec.index, ())
    for name in params:
        if name not in allowed:
            what = ", ".join(allowed) if allowed else "none"
            raise SmecError(
                f"search parameter {name!r} does not apply to a {spec.index} index "
                f"(its search parameters: {what})"
            )
    given = {**{n: spec.params[n] for n in allowed if n in spec.params}, **params}
    most = limits or {}
    resolved = {
        name: positive_int(value, f"search parameter {name}", most.get(name, INT_MAX))
        for name, value in given.items()
    }
    nlist = spec.params.get("nlist")
    if isinstance(nlist, int) and resolved.get("nprobe", 0) > nlist:
        raise SmecError(nprobe_beyond(resolved["nprobe"], nlist))
    return resolved
