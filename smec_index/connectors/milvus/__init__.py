"""Milvus: milvus-lite files by default, or a Milvus server given by URI."""
