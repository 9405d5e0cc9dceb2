"""``smec-index search`` as a library call: text encoded and projected as the collection's
corpus was (or a stored point's own vector), top k, titles from the stored payloads.

    hits = run_search(SearchRequest(backend="qdrant", collection="scifact_smec_256",
                                    data_dir=Path("smec-data"), query="coffee"))["hits"]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smec_index.errors import SmecError


@dataclass
class SearchRequest:
    """One search: ``query`` text or ``like`` (a stored point id), ``top_k`` hits, this
    search's ``ef_search`` / ``nprobe`` (None: the collection's), ``model`` to encode the
    text with (None: the one recorded with the collection), ``options`` to reach the
    backend (url, api_key, uri, token)."""

    backend: str
    collection: str
    data_dir: Path
    query: str | None = None
    like: str | None = None
    top_k: int = 10
    model: str | None = None
    ef_search: int | None = None
    nprobe: int | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        """The request's own rules, before anything is opened."""
        from smec_index.connectors.base import check_fields, positive_int

        check_fields(self, paths=("data_dir",), mappings=("options",),
                     text=("backend", "collection", "query", "like"),
                     required=("data_dir", "backend", "collection"))  # fmt: skip
        if (self.query is None) == (self.like is None):
            raise SmecError("pass a QUERY text or --like ID (one of them)")
        for text in (self.query, self.like):
            try:
                (text or "").encode("utf-8")
            except UnicodeEncodeError:
                raise SmecError("the query holds bytes that are not UTF-8; pass UTF-8 "
                                "text") from None  # fmt: skip
        if self.query is not None and not self.query.strip():
            raise SmecError("the query text is empty; pass words to search for, or --like ID")
        if self.like is not None and self.model is not None:
            raise SmecError("--model encodes a QUERY text; --like searches with a stored "
                            "vector: leave --model out")  # fmt: skip
        if self.model is not None:
            from smec_index.embed import given_model

            given_model(self.model)
        self.top_k = positive_int(self.top_k, "--top-k")


def run_search(r: SearchRequest) -> dict[str, Any]:
    """``{"query", "like", "collection", "hits": [{"id", "score", "title"}]}``, best first."""
    from smec_index.connectors.contract import query_params
    from smec_index.index import CompressedIndex

    r.check()
    given = {"ef_search": r.ef_search, "nprobe": r.nprobe}
    params = {name: value for name, value in given.items() if value is not None}
    try:
        index = CompressedIndex.open(r.backend, r.collection, r.data_dir, **r.options)
    except SmecError:
        _not_a_migrated_copy(r)  # the better answer, where it is one
        raise
    try:
        spec = index.connector.spec(index.collection)
        for name, value in params.items():  # checked before a model is loaded
            try:
                query_params(spec, {name: value})
            except SmecError as exc:
                raise SmecError(f"--{name.replace('_', '-')}: {exc}") from None
        if r.like is not None:
            stored = index.connector.get(index.collection, [r.like])
            if not stored.ids:
                raise SmecError(f"no point {r.like!r} in {r.collection!r}; pass a stored id")
            ids, scores = index.connector.search(index.collection, stored.vectors, r.top_k,
                                                 params)  # fmt: skip
        else:
            from smec_index.embed import encode, load_model

            encoder = load_model(index.query_model(r.model), "auto")
            vectors = encode(encoder, [r.query], progress=False)
            width = index.compressor.input_dim if index.compressor is not None else index.dim
            if vectors.shape[1] != width:
                raise SmecError(
                    f"the query model {r.model or 'recorded with the collection'} embeds "
                    f"{vectors.shape[1]}-d vectors, but {r.collection!r} was built from "
                    f"{width}-d embeddings: pass --model DIR, the model that embedded its corpus"
                )
            ids, scores = index.search(vectors, k=r.top_k, params=params)
        stored = index.connector.get(index.collection, [i for i in ids[0] if i])
    finally:
        index.close()
    titles = dict(zip(stored.ids, (p.get("title", "") for p in stored.payloads), strict=True))
    hits = [{"id": i, "score": float(s), "title": titles.get(i, "")}
            for i, s in zip(ids[0], scores[0], strict=True) if i]  # fmt: skip
    return {"query": r.query, "like": r.like, "collection": r.collection, "hits": hits}


def _not_a_migrated_copy(r: SearchRequest) -> None:
    """A copy ``migrate`` made keeps the user's own schema, which only the user's client
    reads: say so (and how to query it), rather than that it has no manifest."""
    from smec_index.collection_info import migrated_copy

    copy = migrated_copy(r.backend, r.collection, Path(r.data_dir), r.options)
    if copy is not None:
        raise SmecError(f"{copy} (`smec-index info` with the same flags says the same)")
