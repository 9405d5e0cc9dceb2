"""Vector-database connectors, one module per backend, opened by name.

Each backend's client library is imported inside its module's factory, so the core of
smec-index installs and imports without any of them.
"""

from __future__ import annotations

import importlib
from typing import Any

from smec_index.connectors.base import Batch, Connector, IndexSpec, Persistent
from smec_index.errors import SmecError

# backend name -> (module, class): imported only when that backend is opened.
BACKENDS: dict[str, tuple[str, str]] = {
    "faiss": ("smec_index.connectors.faiss_connector", "FaissConnector"),
    "hnswlib": ("smec_index.connectors.hnswlib_connector", "HnswlibConnector"),
    "qdrant": ("smec_index.connectors.qdrant_connector", "QdrantConnector"),
    "milvus": ("smec_index.connectors.milvus_connector", "MilvusConnector"),
}


def open_connector(backend: str, **options: Any) -> Connector:
    """Open a backend by name.

    Args:
        backend: ``faiss``, ``hnswlib``, ``qdrant`` or ``milvus``.
        options: backend options, e.g. ``data_dir`` (embedded backends), ``url``/``uri`` and
            ``api_key`` (servers), ``mode`` (``edge`` or ``local`` for Qdrant).
    """
    try:
        module_name, class_name = BACKENDS[backend]
    except KeyError:
        raise SmecError(
            f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}"
        ) from None
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SmecError(
            f"backend {backend!r} needs {exc.name}; pip install 'smec-index[{backend}]'"
        ) from None
    return getattr(module, class_name)(**options)


__all__ = ["BACKENDS", "Batch", "Connector", "IndexSpec", "Persistent", "open_connector"]
