"""Servers smec-index starts itself for tests and benchmarks (not part of any connector)."""
