"""``smec-index migrate``: an existing Qdrant or Milvus collection to compressed vectors."""

# The gate's default: recall@10 of the copy's search against the source's own. PCA to 128 of
# SciFact's 384-d MiniLM vectors keeps 0.88 of it (python -m bench.migrate_gate;
# bench/results/migrate-gate.md).
DEFAULT_MIN_RECALL = 0.8
