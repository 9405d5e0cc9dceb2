"""Raw results: one JSON object per run in a ``.jsonl`` file (rewritten by each benchmark).

Each record carries the dataset, method, dim, settings, metrics and timings plus the
versions of the software that produced it; tables and plots are derived from these files,
never typed by hand.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from smec_index.bench.results import versions

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def write_records(path: str | Path, records: list[dict[str, Any]]) -> Path:
    """Replace ``path`` with ``records`` (one JSON line each), stamped with time and versions
    (a record kept from an earlier run keeps its own stamp)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "versions": versions()}
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as handle:
        for record in records:
            handle.write(json.dumps({**stamp, **record}) + "\n")
    tmp.replace(path)
    return path


def read_records(path: str | Path) -> list[dict[str, Any]]:
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]


def over_seeds(
    records: list[dict[str, Any]],
    key: str,
    names: list[str],
    dims: list[int],
    value: str = "ndcg@10",
    **where: Any,
) -> tuple[list[dict], list[dict]]:
    """Per ``records[key]`` name and dim, among the records matching ``where`` (e.g.
    ``split="held-out"``): the mean of ``value`` over seeds, and its max - min (a record
    without seeds counts as one); pairs with no records are left out."""
    missing = [k for k in where if not any(k in r for r in records)]
    if missing:
        raise ValueError(f"no record has the key {missing[0]!r} to filter on")
    mean, spread = [], []
    for name in names:
        for d in dims:
            values = [
                r[value]
                for r in records
                if r[key] == name and r["dim"] == d and value in r
                and all(r.get(k) == v for k, v in where.items())
            ]  # fmt: skip
            if values:
                mean.append({key: name, "dim": d, value: sum(values) / len(values)})
                spread.append({key: name, "dim": d, "range": max(values) - min(values)})
    return mean, spread
