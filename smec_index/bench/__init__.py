"""``smec-index bench`` and ``report``: what each dim x encoding x backend costs and keeps.

- :mod:`~smec_index.bench.sweep`: the sweep, from flags or a TOML file, checked up front.
- :mod:`~smec_index.bench.encodings`: which encodings each backend has, and their bytes.
- :mod:`~smec_index.bench.runner`: one build + quality + latency measurement per run.
- :mod:`~smec_index.bench.results`: the JSON-lines results file and its schema.
- :mod:`~smec_index.bench.report`: Markdown + PNG from stored results, Pareto front.
"""
