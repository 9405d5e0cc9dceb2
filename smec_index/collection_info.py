"""`smec-index info`: what a built collection holds and what it costs, in one dict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from smec_index.connectors import open_connector
from smec_index.connectors.base import check_collection_name
from smec_index.errors import SmecError
from smec_index.index import Manifest


def collection_info(backend: str, name: str, data_dir: Path, **options: Any) -> dict[str, Any]:
    """Count, dim, spec, model, artifact and its fingerprint, alias target and sizes.

    Raises:
        SmecError: ``name`` is neither a collection nor an alias there.
    """
    check_collection_name(name)
    with open_connector(backend, data_dir=data_dir, **options) as connector:
        collection = connector.resolve(name)
        if collection is None:
            raise SmecError(
                f"no collection {name!r} built for {backend} here; run `smec-index build` "
                "first (or check --collection and --data-dir)"
            )
        manifest = Manifest.find(data_dir, backend, collection)
        spec = connector.spec(collection)
        sizes = connector.sizes(collection)
        return {
            "backend": backend,
            "collection": name,
            "alias_target": collection if collection != name else None,
            "count": connector.count(collection),
            "dim": spec.dim,
            "metric": spec.metric,
            "index": spec.index,
            "params": spec.params,
            "model": manifest.model if manifest else None,
            "artifact": manifest.artifact if manifest else None,
            "artifact_fingerprint": manifest.artifact_fingerprint if manifest else None,
            "input_dim": manifest.input_dim if manifest else None,
            "dataset": manifest.dataset if manifest else None,
            "manifest": manifest is not None,
            "index_bytes": sizes.index_bytes,
            "total_bytes": sizes.total_bytes,
            "bytes_method": sizes.method,
        }
