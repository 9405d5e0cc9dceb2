"""`smec-index migrate`: stream an existing Qdrant or Milvus collection into a compressed one,
resumably, verify it, and only then switch an alias to it."""
