"""Benchmarks: runs -> raw JSON lines in ``bench/results/`` -> tables and plots."""
