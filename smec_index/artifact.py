"""Artifacts on disk: ``config.json`` + ``weights.safetensors``, never pickle.

An artifact directory is written to a temporary sibling and renamed into place, so a crash
or a bad input never leaves a half-written artifact behind. It also gets the output marker
of :mod:`smec_index.outputs`, so a later ``--overwrite`` can tell it from a user's folder.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from smec_index.errors import SmecError
from smec_index.outputs import check_replaceable, write_marker

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.safetensors"
FORMAT_VERSION = 1


def save_artifact(
    directory: str | Path,
    config: dict[str, Any],
    tensors: dict[str, np.ndarray],
    overwrite: bool = True,
) -> Path:
    """Write ``config`` and ``tensors`` to ``directory`` atomically.

    Args:
        directory: target directory (created; replaced if it exists and ``overwrite``, but
            only when it is an artifact: anything else is refused, never deleted).
        config: JSON-serialisable description (method, dims, training config, ...).
        tensors: named float32/int64 arrays.
    """
    from safetensors.numpy import save_file

    directory = Path(directory)
    check_replaceable(directory, "artifact", overwrite=overwrite)
    with atomic_directory(directory, kind="artifact") as staging:
        payload = {"format_version": FORMAT_VERSION, **config}
        (staging / CONFIG_FILE).write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")
        save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, staging / WEIGHTS_FILE)
    return directory


@contextmanager
def atomic_directory(
    directory: str | Path, *, kind: str, marker: dict[str, Any] | None = None
) -> Iterator[Path]:
    """Yield a staging directory beside ``directory``; on success it replaces ``directory``.

    On any error the staging directory is removed and ``directory`` is left as it was, so a
    reader sees the old contents or the new ones, never half of them. (An existing
    ``directory`` is renamed aside before the swap and deleted after it.)

    ``directory`` must be new, empty or a ``kind`` output (:mod:`smec_index.outputs`),
    checked before and again just before the swap, since the swap deletes what it replaces;
    the staging directory gets the ``kind`` marker (plus ``marker``'s entries).
    """
    directory = Path(directory)
    check_replaceable(directory, kind, overwrite=True)
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    except OSError as exc:
        raise SmecError(
            f"{directory}: cannot write there ({exc.strerror}); choose another path"
        ) from None
    try:
        yield staging
        write_marker(staging, kind, marker)
        check_replaceable(directory, kind, overwrite=True)
        old = None
        if directory.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{directory.name}.old.", dir=directory.parent))
            os.replace(directory, old / directory.name)
        os.replace(staging, directory)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def load_artifact(directory: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read an artifact; any damage is a one-line :class:`SmecError`."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    directory = Path(directory)
    config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    if not config_path.is_file() or not weights_path.is_file():
        raise SmecError(
            f"{directory}: not an artifact (needs {CONFIG_FILE} and {WEIGHTS_FILE}); "
            "pass a directory written by `smec-index train`"
        )
    try:
        config = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise SmecError(f"{config_path}: corrupt JSON; retrain or restore the artifact") from None
    if not isinstance(config, dict) or config.get("format_version") != FORMAT_VERSION:
        raise SmecError(
            f"{config_path}: unknown artifact format "
            f"{config.get('format_version') if isinstance(config, dict) else None!r}; "
            f"this smec-index reads format {FORMAT_VERSION}"
        )
    try:
        tensors = load_file(weights_path)
    except (SafetensorError, OSError, ValueError) as exc:
        raise SmecError(
            f"{weights_path}: corrupt weights ({str(exc).splitlines()[0]}); retrain or restore"
        ) from None
    for name, array in tensors.items():
        if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
            raise SmecError(f"{weights_path}: tensor {name!r} holds NaN or inf; retrain")
    return config, tensors


def artifact_fingerprint(directory: str | Path) -> str:
    """SHA-256 over an artifact's config and weights: changes whenever either does."""
    import hashlib

    directory = Path(directory)
    digest = hashlib.sha256()
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        try:
            with open(directory / name, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        except OSError as exc:
            raise SmecError(
                f"{directory}: cannot read the artifact's {name} ({exc.strerror})"
            ) from None
    return digest.hexdigest()
