"""Run one bad-input probe through the CLI and check what a user gets back.

A probe must end with exit status 2 and exactly one line, ``error: ...``, naming what is
wrong; no traceback; and no file outside the probe's intended output may change.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

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
