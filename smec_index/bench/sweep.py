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

import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from smec_index.bench.encodings import BACKENDS, check_encoding
from smec_index.errors import SmecError

METHODS = ("none", "truncate", "pca", "smec", "mrl", "matryoshka-adaptor", "search-adaptor")
BACKEND_NAMES = (*BACKENDS, "milvus-server")  # milvus = milvus-lite; -server: 2.3.5, started
INDEXES = ("hnsw", "flat", "ivf")
SYNTHETIC = re.compile(r"^synthetic:(\d+)x(\d+)(?::rank(\d+))?$")


@dataclass
class Sweep:
    datasets: list[str]
    out: Path
    methods: list[str] = field(default_factory=lambda: ["none", "pca"])
    dims: list[int] = field(default_factory=list)  # empty: the dataset's own dim only
    backends: list[str] = field(default_factory=lambda: ["faiss"])
    encodings: list[str] = field(default_factory=lambda: ["float32"])
    index: list[str] = field(default_factory=lambda: ["hnsw"])
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
        sweep.out = Path(sweep.out)
        sweep.check()
        return sweep

    def check(self) -> None:
        """Every name and number valid, or a one-line error naming the bad one."""
        for method in self.methods:
            if method not in METHODS and not method.startswith("artifact:"):
                raise SmecError(
                    f"unknown method {method!r}; use {', '.join(METHODS)} or artifact:DIR"
                )
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
        for name in ("dims", "ef_search", "nprobe", "concurrency"):
            for value in getattr(self, name):
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise SmecError(f"{name} {value!r}: use whole numbers >= 1")
        for name in ("M", "ef_construction", "nlist", "latency_queries"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SmecError(f"{name} {value!r}: use a whole number >= 1")
        for dataset in self.datasets:
            if SYNTHETIC.match(dataset):
                continue
            if dataset.startswith("synthetic"):
                raise SmecError(
                    f"{dataset!r}: write synthetic datasets as synthetic:NxD or "
                    "synthetic:NxD:rankR, e.g. synthetic:100000x384:rank48"
                )
            if not Path(dataset).is_dir():
                raise SmecError(f"--dataset {dataset}: no such directory")
        if self.out.exists() and not self.out.is_file():
            raise SmecError(f"--out {self.out}: a directory; pass a .jsonl file path")


def read_config(path: Path) -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    if not Path(path).is_file():
        raise SmecError(f"--config {path}: no such file")
    try:
        raw = tomllib.loads(Path(path).read_text())
    except tomllib.TOMLDecodeError as exc:
        raise SmecError(f"--config {path}: not valid TOML ({exc})") from None
    values = {key.replace("-", "_"): value for key, value in raw.items()}
    values = {("datasets" if k == "dataset" else k): v for k, v in values.items()}
    unknown = sorted(set(values) - set(Sweep.names()))
    if unknown:
        raise SmecError(
            f"--config {path}: unknown setting {unknown[0]!r}; known: {', '.join(Sweep.names())}"
        )
    if isinstance(values.get("datasets"), str):
        values["datasets"] = [values["datasets"]]
    base = Path(path).parent
    for key in ("out", "workdir", "embeddings"):  # relative to the file, as a user reads it
        if isinstance(values.get(key), str):
            values[key] = str(base / values[key])
    if "datasets" in values:
        values["datasets"] = [
            d if d.startswith("synthetic") or Path(d).is_absolute() else str(base / d)
            for d in values["datasets"]
        ]
    return values
