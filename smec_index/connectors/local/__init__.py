"""The in-process backends: FAISS and hnswlib, each a file-backed collection per directory."""
