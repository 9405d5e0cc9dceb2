"""Run one bad-input probe through the CLI and check what a user gets back.

A probe must end with exit status 2 and exactly one line, ``error: ...``, naming what is
wrong; no traceback; and no file outside the probe's intended output may change.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from smec_index.cli import main


def snapshot(root: Path, skip: Path | None = None) -> dict[str, str]:
    """Path -> content hash (or "dir") of everything under ``root`` except ``skip``."""
    found = {}
    for path in sorted(root.rglob("*")):
        if skip is not None and (path == skip or skip in path.parents):
            continue
        found[str(path.relative_to(root))] = (
            hashlib.sha1(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        )
    return found


def run_probe(args: list, root: Path, fragment: str, output: Path | None = None) -> str:
    """Invoke ``smec-index ARGS``; assert a one-line error containing ``fragment``, exit 2,
    and that nothing under ``root`` but ``output`` changed. Returns the error line."""
    before = snapshot(root, output)
    result = CliRunner().invoke(main, [str(a) for a in args])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, f"exit {result.exit_code}: {result.output}"
    assert "Traceback" not in result.output, result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert fragment in lines[0], lines[0]
    after = snapshot(root, output)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"files outside the intended output changed: {changed}"
    return lines[0]


def qdrant_source(
    root: Path,
    n: int = 300,
    dim: int = 32,
    sparse: bool = False,
    collection: str = "docs",
    vector: str | None = None,
) -> Path:
    """A user's qdrant-client local folder ``root/q`` holding ``collection``: ``n`` random
    ``dim``-d points (in the named ``vector`` if given, else the unnamed one), or
    (``sparse``) 20 points with a sparse vector only."""
    from qdrant_client import QdrantClient, models

    client = QdrantClient(path=str(root / "q"))
    rng = np.random.default_rng(0)
    if sparse:
        sparse_config = {"s": models.SparseVectorParams()}
        client.create_collection("docs", vectors_config={}, sparse_vectors_config=sparse_config)
        client.upsert("docs", [models.PointStruct(id=i, vector={"s": models.SparseVector(
            indices=[1, 5], values=[0.1, 0.2])}) for i in range(20)])  # fmt: skip
    else:
        params = models.VectorParams(size=dim, distance=models.Distance.COSINE)
        rows = rng.standard_normal((n, dim)).tolist()
        client.create_collection(collection, vectors_config=params if vector is None
                                 else {vector: params})  # fmt: skip
        client.upsert(collection, models.Batch(ids=list(range(n)), vectors=rows if vector is None
                                               else {vector: rows}))  # fmt: skip
    client.close()
    return root / "q"
