"""Vector-database connectors: one wing per backend family, one contract, opened by name.

``local/`` (FAISS, hnswlib), ``qdrant/`` and ``milvus/`` each implement
:class:`~smec_index.connectors.base.Backend`; :func:`open_connector` wraps the backend in
the one validating :class:`~smec_index.connectors.contract.Connector`. Each backend's
client library is imported inside its wing, so the core installs and imports without any.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from smec_index.connectors.base import (
    Backend,
    Batch,
    IndexSpec,
    Persistent,
    Sizes,
    typed_options,
)
from smec_index.connectors.contract import Connector
from smec_index.errors import SmecError, brief

# backend name -> (module, class, extra): imported only when that backend is opened.
BACKENDS: dict[str, tuple[str, str, str]] = {
    "faiss": ("smec_index.connectors.local.faiss_backend", "FaissBackend", "faiss"),
    "hnswlib": ("smec_index.connectors.local.hnswlib_backend", "HnswlibBackend", "hnswlib"),
    "qdrant": ("smec_index.connectors.qdrant.backend", "QdrantBackend", "qdrant"),
    "milvus": ("smec_index.connectors.milvus.backend", "MilvusBackend", "milvus"),
}


def check_backend(backend: Any) -> str:
    """``backend`` if it names one of :data:`BACKENDS`, else a one-line error."""
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise SmecError(
            f"unknown backend {brief(backend, 40)}; choose one of {', '.join(BACKENDS)}"
        )
    return backend


def open_connector(backend: str, **options: Any) -> Connector:
    """Open a backend by name, behind the validating :class:`Connector`.

    Args:
        backend: ``faiss``, ``hnswlib``, ``qdrant`` or ``milvus``.
        options: backend options, e.g. ``data_dir`` (embedded backends), ``url``/``uri`` and
            ``api_key``/``token`` (servers), ``mode`` (``edge`` or ``local`` for Qdrant).
    """
    module_name, class_name, extra = BACKENDS[check_backend(backend)]
    options = typed_options(options)
    data_dir = options.get("data_dir")
    if data_dir is not None:
        from smec_index.outputs import no_file_above, refuse_odd_directory

        refuse_odd_directory(data_dir, "data_dir")
        no_file_above(data_dir, "data_dir")  # "notes.txt/smec-data"
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if (exc.name or "").startswith("smec_index"):
            raise  # our own bug, not a missing extra
        raise SmecError(
            f"backend {backend!r} needs {exc.name}; pip install 'smec-index[{extra}]'"
        ) from None
    cls = getattr(module, class_name)
    known = [n for n in inspect.signature(cls).parameters if n != "self"]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise SmecError(f"{backend} takes no option {unknown[0]!r}; its options are "
                        f"{', '.join(known)}")  # fmt: skip
    return Connector(cls(**options))


__all__ = [
    "BACKENDS",
    "Backend",
    "Batch",
    "Connector",
    "IndexSpec",
    "Persistent",
    "Sizes",
    "open_connector",
]
