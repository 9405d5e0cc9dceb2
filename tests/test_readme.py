"""The README's Python example runs as written (from a scratch working directory)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.slow
def test_readme_python_example_runs(scifact_dir, tmp_path, monkeypatch):
    block = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    # Run where the README would be run: beside ../shared, in a scratch copy of the layout.
    workdir = tmp_path / "project"
    workdir.mkdir()
    (tmp_path / "shared").symlink_to(scifact_dir.parents[1])
    monkeypatch.chdir(workdir)
    namespace: dict = {}
    exec(compile(block, str(README), "exec"), namespace)
    ids, scores = namespace["ids"], namespace["scores"]
    assert len(ids) == 1 and len(ids[0]) == 10 and len(set(ids[0])) == 10
    assert scores.shape == (1, 10)
    assert (workdir / "runs" / "smec" / "weights.safetensors").is_file()
    assert (workdir / "smec-data" / "hnswlib").is_dir()
