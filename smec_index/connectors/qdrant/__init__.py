"""Qdrant: the embedded engine (qdrant-edge), a server, or qdrant-client's local mode."""
