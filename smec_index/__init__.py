"""smec-index: make retrieval embeddings small without making search worse.

Train compression projections (SMEC and its baselines) on embeddings you already have,
re-index a corpus at the reduced dimension into FAISS, hnswlib, Qdrant or Milvus, and
benchmark what it costs in nDCG@10, recall, latency and memory.
"""

import logging
from importlib import metadata

# A library's notes (``smec at 64 dims scored ...: keeping PCA``) go to its logger; the
# application decides where they show (the CLI prints warnings). Without this, Python's
# last-resort handler wrote them to stderr of callers who asked for silence.
logging.getLogger("smec_index").addHandler(logging.NullHandler())

try:
    __version__ = metadata.version("smec-index")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+source"


def __getattr__(name: str):
    # ``from smec_index import Projection`` without importing numpy at ``import smec_index``
    if name == "Projection":
        from smec_index.projection import Projection

        return Projection
    if name == "CompressedIndex":
        from smec_index.index import CompressedIndex

        return CompressedIndex
    raise AttributeError(f"module 'smec_index' has no attribute {name!r}")
