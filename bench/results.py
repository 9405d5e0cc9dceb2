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

from smec_index.bench.results import SCHEMA, run_key, versions

RESULTS_DIR = Path(__file__).resolve().parent / "results"

STUDY = "study"  # the ``kind`` of a training study's record; `smec-index bench` runs have none

# What identifies one run of a study (the fields a record has of these, with the study's
# name): its run key. Everything else in a record is measured or chosen by the run
# (nDCG, seconds, the epoch or PCA it kept) and does not change the key.
RUN_FIELDS = ("dataset", "ablation", "method", "variant", "chain", "selection", "schedule",
              "phase", "stage", "epoch", "metric", "negatives", "tau", "memory_size",
              "queries", "split", "seed", "dim", "source_dim", "points", "writers")  # fmt: skip


def study_key(study: str, record: dict[str, Any]) -> str:
    """The run key of ``record`` in the study ``study`` (its results file's stem)."""
    return run_key({"study": study, **{k: record[k] for k in RUN_FIELDS if k in record}})


def write_records(path: str | Path, records: list[dict[str, Any]]) -> Path:
    """Replace ``path`` with ``records`` as ``smec-index-bench/1`` lines of kind
    ``"study"``, each with its run key (:func:`study_key`), stamped with time and versions
    (a record kept from an earlier run keeps its own stamp). Two records of one key are
    refused: a key names one run."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "versions": versions()}
    study = path.stem
    lines, seen = [], {}
    for n, record in enumerate(records):
        key = study_key(study, record)
        if key in seen:
            raise ValueError(f"records {seen[key]} and {n} of {study} are one run (the same "
                             f"{', '.join(k for k in RUN_FIELDS if k in record)}); a run is "
                             "stored once")  # fmt: skip
        seen[key] = n
        own = {k: v for k, v in record.items() if k not in ("schema", "kind", "key")}
        lines.append({"schema": SCHEMA, "kind": STUDY, "key": key, **stamp, **own})
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as handle:
        for line in lines:
            handle.write(json.dumps(line) + "\n")
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


def restamp(paths: list[str]) -> None:
    """Rewrite study results written before records carried a schema and run key, each
    record as it was (its own time and versions): ``python -m bench.results FILE...``."""
    for path in paths:
        records = read_records(path)
        write_records(path, records)
        print(f"{path}: {len(records)} records")


if __name__ == "__main__":
    import sys

    restamp(sys.argv[1:])
