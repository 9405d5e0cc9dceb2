"""The results file: one JSON object per run, appended as each run finishes (so Ctrl-C
keeps what finished), each stamped with the schema, library versions, machine and threads.

A run is identified by its configuration (:func:`run_key`): a run already stored is
skipped unless ``--force``, which replaces it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import sys
import time
import uuid
from importlib import metadata
from pathlib import Path
from typing import Any

from smec_index import safejson
from smec_index.errors import SmecError, brief

SCHEMA = "smec-index-bench/1"
REQUIRED = ("dataset", "method", "dim", "backend", "index", "encoding", "bytes_per_vector",
            "index_bytes", "total_bytes", "ndcg@10", "recall@10", "p50_ms", "p95_ms",
            "p99_ms", "qps", "build_seconds", "versions")  # fmt: skip
PACKAGES = ("smec-index", "numpy", "torch", "faiss-cpu", "faiss-gpu", "hnswlib", "qdrant-edge-py",
            "qdrant-client", "pymilvus", "milvus-lite", "milvus")  # fmt: skip


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return found


def machine() -> dict[str, Any]:
    """What the numbers were measured on: CPU model and count, memory, thread settings."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {"cpu": model, "cpus": os.cpu_count(), "system": platform.system()}
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        info["memory_gib"] = round(pages / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    import faiss

    info["threads"] = {"faiss_omp": faiss.omp_get_max_threads(),
                       "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")}  # fmt: skip
    return info


def memory_bandwidth(megabytes: int = 256, repeats: int = 3) -> float:
    """GB/s this machine copies memory at (``numpy.copyto``, bytes read + written, best of
    ``repeats``): the roof that exhaustive float32 search, which reads every vector once
    per query, is held against."""
    import numpy as np

    source = np.ones(megabytes * 2**20 // 4, dtype=np.float32)
    target = np.empty_like(source)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        np.copyto(target, source)
        best = min(best, time.perf_counter() - started)
    return round(2 * source.nbytes / best / 1e9, 2)


def run_key(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def read_results(path: str | Path, say: Any = None) -> list[dict[str, Any]]:
    """Every stored run; a file of another schema (or not JSON lines) is a one-line error.

    A last line cut off without its newline (a bench killed while appending it) is a torn
    write, as a database's log would have: left out, with a note through ``say``; every run
    before it is kept (and the next bench's append replaces it, :func:`torn_tail`).
    """
    path = Path(path)
    if not path.exists():
        raise SmecError(f"{path}: no results file; run `smec-index bench --out {path}` first")
    from smec_index.data import check_regular_file

    check_regular_file(path, f"{path} (results)")
    try:
        records = _read_records(path, torn_tail(path))
    except UnicodeDecodeError:
        raise SmecError(
            f"{path}: not UTF-8 text; pass a results file written by `smec-index bench`"
        ) from None
    if torn_tail(path) is not None:
        (say or (lambda text: print(text, file=sys.stderr)))(
            f"note: {path}'s last line was cut off (a bench killed while writing it); it is "
            f"left out, the {len(records)} run{'' if len(records) == 1 else 's'} before it kept"
        )
    return records


def torn_tail(path: Path) -> int | None:
    """Where a torn last line of ``path`` starts: one without its newline that is not JSON
    (``None``: the file ends with a whole line)."""
    with open(path, "rb") as handle:
        # the size the file system states: /proc files state 0 (and refuse a seek to the end)
        size = os.fstat(handle.fileno()).st_size
        if size == 0:
            return None
        handle.seek(size - 1)
        if handle.read(1) == b"\n":
            return None
        start = max(0, size - (1 << 20))
        handle.seek(start)
        tail = handle.read()
    cut = tail.rfind(b"\n")
    if cut < 0 and start > 0:
        return None  # a last line over 1 MiB: no run is that long, let the reader refuse it
    line = tail[cut + 1 :]
    try:
        text = line.decode("utf-8-sig")
    except UnicodeDecodeError as exc:  # a cut inside a character is at the very end; bytes
        # that are not UTF-8 before it (UTF-16 from an editor) are no torn append of bench's
        return start + cut + 1 if exc.start >= len(line) - 3 else None
    try:
        safejson.loads(text)
        return None  # whole, only its newline is missing (a file saved by an editor)
    except ValueError:
        return start + cut + 1


def _read_records(path: Path, stop: int | None = None) -> list[dict[str, Any]]:
    """The runs of ``path``'s lines, up to byte ``stop`` (a torn last line's start)."""
    records = []
    with open(path, "rb") as handle:
        for n, raw in enumerate(iter(handle.readline, b""), 1):
            if stop is not None and handle.tell() > stop:
                break
            line = raw.decode("utf-8-sig" if n == 1 else "utf-8")
            if not line.strip():
                continue
            try:
                record = safejson.loads(line)
            except ValueError:
                raise SmecError(
                    f"{path}:{n}: not a JSON line; is this a bench results file?"
                ) from None
            if not isinstance(record, dict) or record.get("schema") != SCHEMA:
                found = record.get("schema") if isinstance(record, dict) else None
                raise SmecError(
                    f"{path}:{n}: schema {found!r}, not {SCHEMA!r}; pass a file written by "
                    "`smec-index bench`"
                )
            if record.get("kind") == "study":
                raise SmecError(
                    f"{path}:{n}: a training study's record (the repository's bench/ scripts), "
                    "not a `smec-index bench` run; report reads bench runs: the study's own "
                    "tables and plot are the .md and .png beside its .jsonl"
                )
            check_record(record, f"{path}:{n}")
            records.append(record)
    return records


# What `report` reads of each run, with its type: a file edited by hand (or by another tool)
# is refused naming the line and the field, never half-plotted.
_TEXT = ("key", "dataset", "method", "backend", "index", "encoding")
MAX_DIM = 1 << 16  # no embedding model comes near: a bigger "dim" is a damaged file
MAX_ROWS = 10**12  # documents: a larger "n_docs" is a damaged file
MAX_BYTES = 1e15  # a petabyte of index: beyond it the plots' log axes overflow
MAX_FIGURE = 1e12  # milliseconds, seconds, QPS, GB/s: a larger one is a damaged file
_COUNTS = ("dim", "n_docs")  # whole numbers >= 1
_NUMBERS = ("bytes_per_vector", "p50_ms", "p99_ms", "qps", "n_queries", "index_bytes",
            "total_bytes", "build_seconds", "recall@10")  # fmt: skip
_OPTIONAL = ("ndcg@10", "p95_ms", "engine_p50_ms", "ef_search", "nprobe", "nlist", "M",
             "ef_construction", "scan_gb_per_s", "batch_ms", "engine_batch_ms",
             "batch_queries", "recall@10_original")  # fmt: skip
_MAPS = ("concurrency", "machine", "versions")


def check_record(record: dict[str, Any], where: str) -> None:
    """One stored run as ``bench`` writes it, or a one-line error naming the bad field."""

    def bad(key: str, want: str) -> SmecError:
        shown = repr(record.get(key))[:40]
        return SmecError(
            f"{where}: {key!r} is {shown}, expected {want}; the file was not written by "
            "`smec-index bench` or was edited: run the bench again"
        )

    def number(value: Any) -> bool:
        return (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and math.isfinite(value)
            and value >= 0
        )

    for key in _TEXT:
        if not isinstance(record.get(key), str) or not record[key]:
            raise bad(key, "a name")
        try:
            record[key].encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: no plot or table can show it
            raise bad(key, "UTF-8 text") from None
    for key in _COUNTS:
        value = record.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise bad(key, "a whole number >= 1")
    for key in _NUMBERS:
        if not number(record.get(key)):
            raise bad(key, "a number >= 0")
    for key in _OPTIONAL:
        if record.get(key) is not None and not number(record[key]):
            raise bad(key, "a number >= 0 or null")
    for key in ("ndcg@10", "recall@10", "recall@10_original"):
        if record.get(key) is not None and record[key] > 1:
            raise bad(key, "a number from 0 to 1 or null")
    if record.get("payload") not in (None, "corpus"):
        raise bad("payload", "corpus or absent")
    for key in _MAPS:
        if record.get(key) is not None and not isinstance(record[key], dict):
            raise bad(key, "an object")
    if record["dim"] > MAX_DIM:
        raise bad("dim", f"at most {MAX_DIM:,}")
    if record["n_docs"] > MAX_ROWS:
        raise bad("n_docs", f"at most {MAX_ROWS:,}")
    if record["qps"] <= 0:  # a run that answered queries answered some per second
        raise bad("qps", "a number > 0")
    if record.get("nprobe") is not None and record.get("nlist") is None:
        raise bad("nlist", "a number (nprobe is a share of nlist lists)")
    if record["bytes_per_vector"] <= 0:
        raise bad("bytes_per_vector", "a number > 0")
    if record["bytes_per_vector"] > 8 * MAX_DIM:  # float64 at the largest dim
        raise bad("bytes_per_vector", f"at most {8 * MAX_DIM:,}")
    for key in ("index_bytes", "total_bytes"):  # a petabyte: no bench run comes near
        if record.get(key) is not None and record[key] > MAX_BYTES:
            raise bad(key, f"at most {MAX_BYTES:.0e} bytes")
    for key in ("p50_ms", "p95_ms", "p99_ms", "engine_p50_ms", "batch_ms", "engine_batch_ms",
                "build_seconds", "qps", "scan_gb_per_s"):  # fmt: skip
        if record.get(key) is not None and record[key] > MAX_FIGURE:
            raise bad(key, f"at most {MAX_FIGURE:.0e}")
    for key in ("concurrency", "concurrency_per_client"):  # keyed by client count: 1, 4...
        if record.get(key) is not None and not isinstance(record[key], dict):
            raise bad(key, "an object")
        clients = next((c for c in (record.get(key) or {})
                        if not (c.isdigit() and c.isascii() and int(c) >= 1)), None)  # fmt: skip
        if clients is not None:
            raise bad(key, f"keyed by client counts, whole numbers >= 1 ({brief(clients, 20)} is "
                      "not)")  # fmt: skip
    for clients, level in (record.get("concurrency") or {}).items():
        if not (isinstance(level, dict) and number(level.get("qps"))
                and number(level.get("p99_ms"))):  # fmt: skip
            raise bad("concurrency", f"an object of {{qps, p99_ms}} per client count "
                      f"({clients!r} is not)")  # fmt: skip
    machine = record.get("machine") or {}
    if record.get("scan_gb_per_s") is not None and not machine:
        raise bad("machine", "an object (scan_gb_per_s is read against its bandwidth)")
    bandwidth = machine.get("memory_gb_per_s")
    if bandwidth is not None and not (number(bandwidth) and bandwidth > 0):
        raise bad("machine", "memory_gb_per_s > 0")
    if record.get("time") is not None and not isinstance(record["time"], str):
        raise bad("time", "an ISO time string")
    if record.get("versions") is not None and not isinstance(record["versions"], dict):
        raise bad("versions", "an object")
    if record.get("inputs") is not None and not isinstance(record["inputs"], str):
        raise bad("inputs", "a digest string")


def _other_inputs(method: str, stored: str, now: Any) -> str:
    """Why a stored run's ``inputs`` (bench.runner.inputs_of: the dataset's fingerprint,
    then for ``artifact:DIR`` the artifact's) differ from this run's."""
    if method.startswith("artifact:") and isinstance(now, str) and (
            stored.rsplit("-", 1)[0] == now.rsplit("-", 1)[0]):  # fmt: skip
        return f"with another {method[9:]} (the artifact's files changed since)"
    return "on other data (its vectors changed, or another dataset of that name)"


def client_levels(concurrency: Any) -> tuple[str, ...]:
    """The client counts a run was measured with (its ``concurrency`` keys), in order."""
    if not isinstance(concurrency, dict):
        return ()
    return tuple(sorted(concurrency, key=lambda n: int(n) if str(n).isdigit() else 0))


class ResultsFile:
    """Append-only results; :meth:`add` writes one line and fsyncs it."""

    def __init__(self, path: str | Path, force: bool, say: Any = None) -> None:
        self.path = Path(path)
        if self.path.is_symlink() and not self.path.exists():  # before anything is measured
            from smec_index.outputs import link_to_nowhere

            raise SmecError(f"--out {self.path}: {link_to_nowhere(self.path, 'file')}")
        self.force = force
        self.say = say or (lambda text: print(text, file=sys.stderr))
        self.records = read_results(self.path, self.say) if self.path.is_file() else []
        self.torn = torn_tail(self.path) if self.path.is_file() else None
        self.stored = {r["key"]: r.get("inputs") for r in self.records}
        self.levels = {r["key"]: client_levels(r.get("concurrency")) for r in self.records}
        self.replaced: set[str] = set()

    def has(self, key: str, inputs: str | None = None, levels: tuple | None = None) -> bool:
        """Whether ``key`` is stored, measured with ``inputs`` (a run stored before inputs
        were recorded counts as theirs) and with the client counts ``levels`` (a sweep that
        asks for others measures it again), and not to be measured again (``--force``)."""
        if self.force or key not in self.stored:
            return False
        if levels is not None and self.levels.get(key) != levels:
            return False
        return inputs is None or self.stored[key] in (None, inputs)

    def add(self, record: dict[str, Any]) -> None:
        record = {"schema": SCHEMA, **record, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
        key = record["key"]
        stale = key in self.stored and self.stored[key] not in (None, record.get("inputs"))
        levels = client_levels(record.get("concurrency"))
        other_clients = key in self.levels and self.levels[key] != levels
        if (stale or other_clients) and not self.force and key not in self.replaced:
            why = (_other_inputs(str(record.get("method")), self.stored[key],
                                 record.get("inputs"))
                   if stale else f"with {', '.join(self.levels[key]) or 'no'} concurrent "
                   f"clients, not {', '.join(levels)}")  # fmt: skip
            self.say(f"note: the stored run of {record.get('dataset')} {record.get('method')} "
                     f"{record.get('dim')}-d {record.get('backend')} was measured {why}: "
                     "measured again and replaced (write to another --out to keep "
                     "both)")  # fmt: skip
        if (self.force or stale or other_clients) and key in self.stored and (
                key not in self.replaced):  # fmt: skip
            self._drop(key)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+b") as handle:
            if self.torn is not None:  # the torn line of a killed bench gives way to this one
                handle.truncate(self.torn)
                self.torn = None
            handle.seek(0, os.SEEK_END)
            if handle.tell():  # a file someone saved without its last newline: one line each
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) != b"\n":
                    handle.write(b"\n")
            handle.write((json.dumps(record) + "\n").encode())
            handle.flush()
            os.fsync(handle.fileno())
        self.stored[key] = record.get("inputs")
        self.levels[key] = levels
        self.replaced.add(key)
        self.records.append(record)

    def _drop(self, key: str) -> None:
        """Rewrite the file without ``key``'s old line (atomically), before its new one."""
        self.records = [r for r in self.records if r["key"] != key]
        # the file a link points at (renaming over the link made it a file of its own, and
        # the file it named kept the old run), through a temporary name no user's file has
        # (RESULTS.jsonl.tmp of the user's was emptied and removed)
        target = self.path.resolve()
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            with open(tmp, "w") as handle:
                for r in self.records:
                    handle.write(json.dumps(r) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        self.torn = None  # rewritten from the whole runs alone
