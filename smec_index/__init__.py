"""smec-index: make retrieval embeddings small without making search worse.

Train compression projections (SMEC and its baselines) on embeddings you already have,
re-index a corpus at the reduced dimension into FAISS, hnswlib, Qdrant or Milvus, and
benchmark what it costs in nDCG@10, recall, latency and memory.
"""

from importlib import metadata

try:
    __version__ = metadata.version("smec-index")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+source"


def __getattr__(name: str):
    # ``from smec_index import Projection`` without importing numpy at ``import smec_index``
    if name == "Projection":
        from smec_index.projection import Projection

        return Projection
    raise AttributeError(f"module 'smec_index' has no attribute {name!r}")
