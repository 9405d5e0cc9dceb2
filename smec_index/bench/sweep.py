"""A sweep: datasets x methods x dims x backends x indexes x encodings x ef (HNSW) or nprobe
(IVF), from flags or a TOML file (flags win), checked before anything is built.

A TOML file holds the same names as the flags (``-`` or ``_``), lists as arrays::

    datasets = ["../shared/data/scifact"]
    methods = ["none", "pca", "smec"]
    dims = [384, 128, 64]
    backends = ["faiss", "hnswlib", "qdrant", "milvus"]
    encodings = ["float32", "sq8", "binary"]
    index = ["hnsw", "flat", "ivf"]
    ef_search = [32, 64, 128]
    nprobe = [4, 16]
    out = "results/scifact.jsonl"
"""

from __future__ import annotations

import numbers
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from smec_index.bench.encodings import BACKENDS, check_encoding
from smec_index.connectors.base import check_hnsw_m, positive_int
from smec_index.errors import SmecError, brief
from smec_index.outputs import no_file_above, refuse_odd_directory

METHODS = ("none", "truncate", "pca", "smec", "mrl", "matryoshka-adaptor", "search-adaptor",
           "dive")
BACKEND_NAMES = (*BACKENDS, "milvus-server")  # milvus = milvus-lite; -server: 2.3.5, started
INDEXES = ("hnsw", "flat", "ivf")
# What each point carries beside its vector: nothing, or its document's title and text as
# build stores them (index_bytes must not move with it, total_bytes does)
PAYLOADS = ("none", "corpus")
SYNTHETIC = re.compile(r"^synthetic:(\d{1,15})x(\d{1,9})(?::rank(\d{1,9}))?$", re.ASCII)
MIN_SYNTHETIC = 10  # rows: the 10 nearest neighbours, and at least 10 queries drawn
MAX_CLIENTS = 256  # concurrent clients of one level: threads (or processes) started at once
MAX_LATENCY_QUERIES = 1_000_000  # timed one at a time: past this the timings alone fill RAM


@dataclass
class Sweep:
    datasets: list[str]
    out: Path
    methods: list[str] = field(default_factory=lambda: ["none", "pca"])
    dims: list[int] = field(default_factory=list)  # empty: the dataset's own dim only
    backends: list[str] = field(default_factory=lambda: ["faiss"])
    encodings: list[str] = field(default_factory=lambda: ["float32"])
    index: list[str] = field(default_factory=lambda: ["hnsw"])
    payloads: list[str] = field(default_factory=lambda: ["none"])
    ef_search: list[int] = field(default_factory=lambda: [64])
    nprobe: list[int] = field(default_factory=lambda: [16])
    M: int = 16
    ef_construction: int = 200
    nlist: int = 128
    embeddings: str | None = None
    split: str = "test"
    train_split: str = "train"
    max_queries: int | None = None
    latency_queries: int = 200
    concurrency: list[int] = field(default_factory=lambda: [1, 4, 8])
    workdir: Path | None = None
    force: bool = False
    seed: int = 0

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def check_types(self) -> None:
        """Each setting of the type its field declares (a TOML file can hold anything):
        lists are lists, counts are integers from 1 to C's int, names are strings (numpy
        integers are taken as the ints they hold: the results are JSON)."""
        for f in fields(self):
            value, kind = _plain(getattr(self, f.name)), str(f.type)
            setattr(self, f.name, value)
            if value is None and "None" in kind:
                continue
            if kind.startswith("list["):
                if not isinstance(value, list) or (not value and f.name != "dims"):
                    raise SmecError(
                        f"{f.name} {value!r}: give a non-empty list, e.g. {f.name} = "
                        f"{'[128, 64]' if 'int' in kind else '[' + repr('a') + ']'} in TOML"
                    )
                for item in value:
                    _check_item(f.name, item, kind)
            elif kind.startswith("int"):
                if f.name == "seed":
                    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                        raise SmecError(f"seed {value!r}: use a whole number >= 0")
                    if value >= 2**32:
                        raise SmecError(f"seed {value:,}: use a whole number below 2**32")
                elif isinstance(value, list):  # M = [4]: the number is right, the list not
                    raise SmecError(f"{f.name} {brief(value, 40)}: takes one whole number, not a "
                                    f"list, e.g. {f.name} = 16 (one value per sweep; ef_search "
                                    "and nprobe take lists)")  # fmt: skip
                else:
                    _check_item(f.name, value, "int")
            elif kind == "bool" and not isinstance(value, bool):
                raise SmecError(f"{f.name} {value!r}: use true or false")
            elif kind.startswith("str") and not isinstance(value, str):
                raise SmecError(f"{f.name} {value!r}: use a string")
            elif kind.startswith("Path") and not isinstance(value, (str, Path)):
                raise SmecError(f"{f.name} {value!r}: use a path (a string)")

    @classmethod
    def from_sources(cls, config: Path | None, flags: dict[str, Any]) -> Sweep:
        """The file's settings, then every flag that was given on top."""
        values: dict[str, Any] = {}
        if config is not None:
            values.update(read_config(config))
        values.update({k: v for k, v in flags.items() if v is not None})
        missing = [name for name in ("datasets", "out") if not values.get(name)]
        if missing:
            need = " and ".join(f"--{m.rstrip('s') if m == 'datasets' else m}" for m in missing)
            raise SmecError(f"bench needs {need} (a flag, or in --config)")
        sweep = cls(**{k: v for k, v in values.items() if k in cls.names()})
        sweep.check_types()
        sweep.out = Path(sweep.out)
        sweep.check()
        sweep.check_given(set(values))
        return sweep

    def check_given(self, given: set[str]) -> None:
        """A setting given (flag or file) that no run of this sweep would use is refused,
        not dropped: the user believes it was measured."""
        unused = []
        if "ivf" not in self.index:
            unused += [n for n in ("nprobe", "nlist") if n in given]
        if "hnsw" not in self.index:
            unused += [n for n in ("ef_search", "M", "ef_construction") if n in given]
        if all(SYNTHETIC.match(d) for d in self.datasets):
            unused += [n for n in ("embeddings", "split", "train_split") if n in given]
        if unused:
            raise SmecError(
                f"{', '.join(unused)} would change no run of this sweep (index {self.index}, "
                f"datasets {self.datasets}); drop {'it' if len(unused) == 1 else 'them'}"
            )
        from smec_index.compressors.registry import TRAINED

        if self.split == self.train_split and any(m in TRAINED for m in self.methods):
            raise SmecError(
                f"train_split and split are both {self.split!r}: trained methods would be "
                "scored on the queries they learned from; train on another split"
            )

    def check(self) -> None:
        """Every name and number valid, or a one-line error naming the bad one."""
        self.check_types()
        self.out = Path(self.out)
        for method in self.methods:
            if method not in METHODS and not method.startswith("artifact:"):
                raise SmecError(
                    f"unknown method {method!r}; use {', '.join(METHODS)} or artifact:DIR"
                )
            if method == "artifact:":  # Path("") is ".", which was named as no artifact
                raise SmecError("artifact: names no folder; pass artifact:DIR, the folder "
                                "`smec-index train --out DIR` wrote")  # fmt: skip
            if method.startswith("artifact:") and not Path(method[9:]).is_dir():
                raise SmecError(f"{method}: no artifact directory {method[9:]!r}")
        for backend in self.backends:
            if backend not in BACKEND_NAMES:
                raise SmecError(f"unknown backend {backend!r}; use {', '.join(BACKEND_NAMES)}")
        for kind in self.index:
            if kind not in INDEXES:
                raise SmecError(
                    f"unknown index {kind!r}; use hnsw, flat (exhaustive) or ivf (inverted file)"
                )
        for encoding in self.encodings:
            check_encoding(encoding)
        for payload in self.payloads:
            if payload not in PAYLOADS:
                raise SmecError(f"unknown payloads {payload!r}; use none (vectors alone) or "
                                "corpus (each document's title and text, as build stores "
                                "them)")  # fmt: skip
        synthetic = [d for d in self.datasets if SYNTHETIC.match(d)]
        if "corpus" in self.payloads and synthetic:
            raise SmecError(f"payloads corpus: {synthetic[0]} has no documents' text to store; "
                            "bench a BEIR dataset, or leave corpus out")  # fmt: skip
        for name in ("datasets", "methods", "backends", "encodings", "index", "dims",
                     "ef_search", "nprobe", "concurrency", "payloads"):  # fmt: skip
            values = getattr(self, name)
            if len(set(values)) != len(values):
                raise SmecError(f"{name} {values}: a value twice; list each once")
        check_hnsw_m(self.M)
        if max(self.concurrency) > MAX_CLIENTS:
            raise SmecError(f"concurrency {max(self.concurrency):,}: at most {MAX_CLIENTS} "
                            "clients (each is a thread, or a process for a server)")  # fmt: skip
        if any(b.startswith("milvus") for b in self.backends):  # Milvus' own bounds, first
            from smec_index.connectors.milvus.backend import BUILD_LIMITS

            given = {"ef_search": max(self.ef_search), "nprobe": max(self.nprobe),
                     "nlist": self.nlist, "M": self.M}  # fmt: skip
            for name, value in given.items():
                most = BUILD_LIMITS.get(name)
                if most is not None and value > most:
                    raise SmecError(f"{name} {value:,}: Milvus takes at most {most:,}; lower "
                                    "it or leave Milvus out")  # fmt: skip
        if self.latency_queries > MAX_LATENCY_QUERIES:
            raise SmecError(f"latency_queries {self.latency_queries:,}: at most "
                            f"{MAX_LATENCY_QUERIES:,} (200 give a stable p50)")  # fmt: skip
        if self.workdir is not None:
            refuse_odd_directory(self.workdir, "workdir")  # a file, FIFO or dangling link
            no_file_above(self.workdir, "workdir")
            if not Path(self.workdir).is_dir():
                raise SmecError(f"workdir {self.workdir}: no such directory; make it, or leave "
                                "workdir out (a temporary one is used)")  # fmt: skip
        for dataset in self.datasets:
            match = SYNTHETIC.match(dataset)
            if match:
                check_synthetic(dataset, *match.groups())
                continue
            if dataset.startswith("synthetic:"):
                raise SmecError(
                    f"{dataset!r}: write synthetic datasets as synthetic:NxD or "
                    "synthetic:NxD:rankR, e.g. synthetic:100000x384:rank48"
                )
            if not Path(dataset).is_dir():
                raise SmecError(f"--dataset {dataset}: no such directory")
        for method in self.methods:  # an artifact is read now, not after the first runs
            if method.startswith("artifact:") and Path(method[9:]).is_dir():
                self.check_artifact(method[9:])
        no_file_above(self.out, "--out")
        if self.out.is_dir():
            raise SmecError(f"--out {self.out}: a directory; pass a .jsonl file path")
        if self.out.exists() and not self.out.is_file():
            raise SmecError(f"--out {self.out}: not a regular file (a device, socket or FIFO); "
                            "pass a .jsonl file path")  # fmt: skip


    def check_artifact(self, folder: str) -> None:
        """``artifact:DIR`` fits every dataset's dim, and holds every dim asked for."""
        from smec_index.compressors import load_compressor

        compressor = load_compressor(folder)
        have = {*compressor.dims, compressor.input_dim}
        missing = [d for d in self.dims if d not in have]
        if missing:
            raise SmecError(f"artifact:{folder} has no dim {missing[0]} (it has "
                            f"{', '.join(map(str, sorted(have)))}); change --dims")  # fmt: skip
        for dataset in self.datasets:
            dim = dataset_dim(dataset, self.embeddings)
            if dim is not None and dim != compressor.input_dim:
                raise SmecError(f"artifact:{folder} projects {compressor.input_dim}-d vectors; "
                                f"{dataset} holds {dim}-d ones: pass an artifact trained on "
                                "its embeddings")  # fmt: skip


def dataset_dim(dataset: str, embeddings: str | None) -> int | None:
    """A dataset's embedding dim without loading it (``None`` where it is not on disk yet:
    embedded later, and checked then)."""
    from smec_index.data import DEFAULT_MODEL_NAME, _npy_header

    match = SYNTHETIC.match(dataset)
    if match:
        return int(match.group(2))
    folder = Path(embeddings) if embeddings else Path(dataset) / "embeddings" / DEFAULT_MODEL_NAME
    try:
        with open(folder / "corpus.npy", "rb") as handle:
            shape, _ = _npy_header(handle)
    except (OSError, ValueError):
        return None  # read (and named) when the run loads it
    return int(shape[1]) if len(shape) == 2 else None


def _plain(value: Any) -> Any:
    """numpy integers (alone or in a list) as Python ints."""
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, numbers.Integral) and not isinstance(value, (bool, int)):
        return int(value)
    return value


def _check_item(name: str, item: Any, kind: str) -> None:
    if "int" in kind:
        if isinstance(item, bool) or not isinstance(item, int):
            raise SmecError(f"{name} {item!r}: use whole numbers >= 1")
        positive_int(item, name)
    elif not isinstance(item, str):
        raise SmecError(f"{name} {item!r}: use strings")


def check_synthetic(dataset: str, rows: str, dim: str, rank: str | None) -> None:
    """A synthetic:NxD[:rankR] this machine can hold: N, D, R >= 1, R <= D, and the vectors'
    float32 bytes within the memory there is (a typo of a few zeros is refused, not
    allocated)."""
    n, d = int(rows), int(dim)
    if n < MIN_SYNTHETIC or d < 1 or (rank is not None and not 1 <= int(rank) <= d):
        raise SmecError(
            f"{dataset!r}: N at least {MIN_SYNTHETIC}, D and R at least 1 and R at most D, "
            "e.g. synthetic:100000x384:rank48"
        )
    need, have = n * d * 4, physical_memory()
    if need > have // 2:
        raise SmecError(
            f"{dataset!r}: {n:,} x {d} float32 vectors take {need / 2**30:,.1f} GiB; this "
            f"machine has {have / 2**30:,.1f} GiB of memory; use fewer rows"
        )


def physical_memory() -> int:
    """Bytes of RAM on this machine."""
    import os

    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX: no limit known
        return 2**62


def read_config(path: Path) -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    if not Path(path).exists():
        raise SmecError(f"--config {path}: no such file")
    from smec_index.data import check_regular_file

    check_regular_file(Path(path), f"--config {path}")
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError:
        raise SmecError(f"--config {path}: not UTF-8 text; save the TOML as UTF-8") from None
    except RecursionError:
        raise SmecError(f"--config {path}: nested too deeply; write a flat TOML") from None
    except tomllib.TOMLDecodeError as exc:
        raise SmecError(f"--config {path}: not valid TOML ({exc})") from None
    except ValueError:  # an integer of more digits than Python converts
        raise SmecError(f"--config {path}: a number too long to read; no setting takes "
                        "one that large") from None  # fmt: skip
    values: dict[str, Any] = {}
    for key, value in raw.items():
        name = key.replace("-", "_")
        name = "datasets" if name == "dataset" else name
        if name in values:  # two spellings of one setting: neither may silently win
            raise SmecError(f"--config {path}: {key!r} sets {name} a second time; keep one "
                            "spelling")  # fmt: skip
        values[name] = value
    unknown = sorted(set(values) - set(Sweep.names()))
    if unknown:
        raise SmecError(
            f"--config {path}: unknown setting {unknown[0]!r}; known: {', '.join(Sweep.names())}"
        )
    if isinstance(values.get("datasets"), str):
        values["datasets"] = [values["datasets"]]
    if "datasets" in values and not (
        isinstance(values["datasets"], list) and all(isinstance(d, str) for d in values["datasets"])
    ):
        raise SmecError(f"--config {path}: datasets {values['datasets']!r}: give a path or "
                        "synthetic:NxD, or a list of them")  # fmt: skip
    base = Path(path).parent
    if str(Path(path).absolute()).startswith(("/dev/", "/proc/")):  # /dev/stdin: an `out`
        # was written into /dev. `< FILE`: the file's folder; a here-document's (a pipe or
        # a deleted temporary file): the folder it is run from
        read = Path(path).resolve()
        base = read.parent if read.is_file() and not str(read).startswith(
            ("/dev/", "/proc/")) else Path.cwd()  # fmt: skip
    home = lambda p: os.path.expanduser(p)  # noqa: E731 - "~/x" as a shell reads it
    for key in ("out", "workdir", "embeddings"):  # relative to the file, as a user reads it
        if isinstance(values.get(key), str):
            values[key] = str(base / home(values[key]))
    if "datasets" in values:
        values["datasets"] = [
            d if d.startswith("synthetic:") else str(base / home(d))
            for d in values["datasets"]
        ]
    if isinstance(values.get("methods"), list):  # artifact:DIR, too, from the file's folder
        values["methods"] = [
            f"artifact:{base / home(m[9:])}"
            if isinstance(m, str) and m.startswith("artifact:") and m[9:] else m
            for m in values["methods"]
        ]  # fmt: skip
    return values
