"""Artifacts on disk: ``config.json`` + ``weights.safetensors``, never pickle.

An artifact directory is written to a temporary sibling and renamed into place, so a crash
or a bad input never leaves a half-written artifact behind. It also gets the output marker
of :mod:`smec_index.outputs`, so a later ``--overwrite`` can tell it from a user's folder.
"""

from __future__ import annotations

import errno
import glob
import json
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from smec_index import safejson
from smec_index.errors import SmecError, brief, check_switch
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
    check_switch(overwrite, "overwrite")
    from safetensors.numpy import save_file

    from smec_index.data import check_path_name

    check_path_name(directory, "artifact directory")  # before Path(): None, 123, bytes
    directory = Path(directory)
    check_replaceable(directory, "artifact", overwrite=overwrite)
    with atomic_directory(directory, kind="artifact", overwrite=overwrite) as staging:
        payload = {"format_version": FORMAT_VERSION, **config}
        (staging / CONFIG_FILE).write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")
        save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, staging / WEIGHTS_FILE)
        (staging / WEIGHTS_FILE).chmod(0o666 & ~_umask())  # safetensors writes it 0600
    return directory


@contextmanager
def atomic_directory(
    directory: str | Path, *, kind: str, marker: dict[str, Any] | None = None,
    overwrite: bool = True,
) -> Iterator[Path]:
    """Yield a staging directory beside ``directory``; on success it replaces ``directory``.

    On any error the staging directory is removed and ``directory`` is left as it was, so a
    reader sees the old contents or the new ones, never half of them. (An existing
    ``directory`` is renamed aside before the swap and deleted after it.)

    ``directory`` must be new, empty or a ``kind`` output (:mod:`smec_index.outputs`),
    checked before and again just before the swap, since the swap deletes what it replaces;
    the staging directory gets the ``kind`` marker (plus ``marker``'s entries). Without
    ``overwrite``, an output another run wrote there meanwhile (two runs given one new
    ``--out``) is refused, not replaced.
    """
    directory = Path(directory)
    if directory.name in ("", ".."):  # `.`, `..`: staged beside it by its own name, not in it
        directory = directory.resolve()
    check_replaceable(directory, kind, overwrite=True)
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        clean_staging(directory)
        staging = owned_tempdir(f".{directory.name}.{STAGING}", directory.parent, output=True)
    except OSError as exc:
        raise SmecError(
            f"{directory}: cannot write there ({exc.strerror}); choose another path"
        ) from None
    try:
        yield staging
        (staging / OWNER).unlink()
        write_marker(staging, kind, marker)
        check_replaceable(directory, kind, overwrite=True)
        if not overwrite and directory.is_dir() and any(directory.iterdir()):
            # two runs given one new --out both said "-> DIR", and DIR held one of them
            raise SmecError(_WRITTEN_MEANWHILE.format(directory))
        old = None
        if directory.is_dir() and not any(directory.iterdir()):
            _fill(directory, staging)  # the user's empty folder stays theirs (mode, owner)
        else:
            if directory.exists():
                old = owned_tempdir(f".{directory.name}.{STAGING}old-", directory.parent)
                os.replace(directory, old / directory.name)
            try:
                os.replace(staging, directory)
            except OSError as exc:  # made and filled by another run since the line above
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
                raise SmecError(_WRITTEN_MEANWHILE.format(directory)) from None
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


_WRITTEN_MEANWHILE = (
    "{}: another run wrote it while this one worked (it was new or empty when this one "
    "started), so this run's result is not kept; pass --overwrite to replace it, or another "
    "--out"
)
OWNER = ".smec-staging"  # in a staging folder: the pid and host that write it
ORPHAN_AGE = 3600  # s: an empty staging folder with no owner file this old was never claimed
STAGING = "smec-staging-"  # in the names of the folders atomic_directory stages beside one


def owned_tempdir(prefix: str, parent: Path, output: bool = False) -> Path:
    """A new folder ``parent/PREFIXxxxxxxxx`` holding its :data:`OWNER` file: private
    (mkdtemp's 0700), or for an ``output``, the mode the umask gives a folder (0700 locked
    the group out of an artifact or a report)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    (path / OWNER).write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    if output:
        path.chmod(0o777 & ~_umask())
    return path


def _umask() -> int:
    """This process's umask, read without setting it (os.umask sets it, for a moment, for
    every thread) where Linux tells it."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def orphaned(staging: Path) -> bool:
    """Whether the process that made ``staging`` is gone (a kill, a crash, a power cut).
    A folder without an owner file is one only when empty and old (a writer killed between
    mkdtemp and its owner file): a folder of the user's that happens to share the name is
    never taken for one."""
    try:
        owner = safejson.loads((staging / OWNER).read_text())
        pid, host = int(owner["pid"]), str(owner["host"])
    except FileNotFoundError:
        try:
            empty = not any(staging.iterdir())
            return empty and time.time() - staging.stat().st_mtime > ORPHAN_AGE
        except OSError:
            return False
    except (OSError, ValueError, KeyError, TypeError):
        return False  # unreadable: not ours to judge
    if host != socket.gethostname():
        return False  # another machine's writer on a shared disk: leave it be
    return not _alive(pid)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    try:  # killed but not yet reaped by its parent (a zombie): gone all the same
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except (OSError, IndexError):
        return True


def _fill(directory: Path, staging: Path) -> None:
    """Move what ``staging`` holds into the empty folder ``directory``, the marker last (what
    marks it a finished output), and remove ``staging``."""
    from smec_index.outputs import MARKER

    for item in sorted(staging.iterdir(), key=lambda p: p.name == MARKER):
        os.replace(item, directory / item.name)
    staging.rmdir()


def clean_staging(directory: Path) -> None:
    """Remove what killed writers of ``directory`` left beside it: staging folders
    (``.NAME.smec-staging-xxxx``), and old copies set aside by a swap cut between its two
    renames (``.NAME.smec-staging-old-xxxx``), which are put back first when ``directory``
    itself is missing. A folder of the user's (``.NAME.backup``) is never one of them."""
    for sibling in directory.parent.glob(f".{glob.escape(directory.name)}.{STAGING}*"):
        if not sibling.is_dir() or (sibling / OWNER).is_symlink() or not orphaned(sibling):
            continue
        kept = sibling / directory.name
        if sibling.name.startswith(f".{directory.name}.{STAGING}old-") and kept.is_dir():
            if not directory.exists():
                os.replace(kept, directory)
        shutil.rmtree(sibling, ignore_errors=True)


def check_artifact_folder(directory: str | Path) -> Path:
    """``directory`` holds an artifact's two files, or the one line saying what it is not
    (called before a working folder is judged against it: `--artifact .` read as "the
    data dir is inside the artifact", and the advice to move the data dir led nowhere)."""
    from smec_index.data import check_path_name

    check_path_name(directory, "artifact")
    directory = Path(directory)
    if not directory.exists():
        raise SmecError(f"{directory}: no such artifact folder; pass a directory written by "
                        "`smec-index train`")  # fmt: skip
    if not (directory / CONFIG_FILE).is_file() or not (directory / WEIGHTS_FILE).is_file():
        raise SmecError(
            f"{directory}: not an artifact (needs {CONFIG_FILE} and {WEIGHTS_FILE}); "
            "pass a directory written by `smec-index train`"
        )
    return directory


def load_artifact(directory: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read an artifact; any damage is a one-line :class:`SmecError`."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    directory = check_artifact_folder(directory)
    config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    try:
        config = safejson.loads(config_path.read_text(encoding="utf-8-sig"))  # a BOM too
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        why = f" ({exc.msg})" if isinstance(exc, json.JSONDecodeError) else ""
        raise SmecError(f"{config_path}: corrupt JSON{why[:80]}; retrain or restore the "
                        "artifact") from None  # fmt: skip
    version = config.get("format_version") if isinstance(config, dict) else None
    if type(version) is not int or version != FORMAT_VERSION:  # 1.0 and true are not 1
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
    except TypeError as exc:  # a dtype numpy lacks (bfloat16, float8) from another tool
        raise SmecError(
            f"{weights_path}: a tensor of a type numpy cannot read ({str(exc)[:60]}); "
            "smec-index writes float32: retrain, or save the weights as float32"
        ) from None
    for name, array in tensors.items():
        if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
            raise SmecError(f"{weights_path}: tensor {name!r} holds NaN or inf; retrain")
    return config, tensors


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def check_compressor_config(config: dict[str, Any], directory: str | Path) -> None:
    """The fields every compressor artifact has, of their types: a config edited by hand is
    refused here, naming the field, rather than failing (or silently working) later."""
    path = Path(directory) / CONFIG_FILE
    expected = {
        "method": (lambda v: isinstance(v, str) and bool(v), "a method name"),
        "input_dim": (_whole, "a whole number >= 1"),
        "dims": (
            lambda v: isinstance(v, list) and bool(v) and all(_whole(d) for d in v),
            "a non-empty list of whole numbers >= 1",
        ),
        "seed": (lambda v: isinstance(v, int) and not isinstance(v, bool), "a whole number"),
        "settings": (lambda v: isinstance(v, dict), "an object"),
        "selected_dims": (lambda v: isinstance(v, dict), "an object"),
        "info": (lambda v: isinstance(v, dict), "an object"),
    }
    for key, (ok, want) in expected.items():
        required = key in ("method", "input_dim", "dims")
        if (required or key in config) and not ok(config.get(key)):
            raise SmecError(
                f"{path}: {key!r} is {brief(config.get(key), 40)}, expected {want}; retrain or "
                "restore the artifact"
            )
    if max(config["dims"]) > config["input_dim"]:
        raise SmecError(f"{path}: dims {config['dims'][:8]} go beyond the input_dim "
                        f"{config['input_dim']}; a projection compresses: retrain or restore "
                        "the artifact")  # fmt: skip
    for dim, chosen in (config.get("selected_dims") or {}).items():
        # What ADS chose, as `info` shows it: dims of the input, as many as the key says.
        fits = str(dim) in {str(d) for d in config["dims"]} and (chosen is None or (
            isinstance(chosen, list)
            and str(len(chosen)) == str(dim)
            and all(type(i) is int and 0 <= i < config["input_dim"] for i in chosen)
            and len(set(chosen)) == len(chosen)
        ))  # fmt: skip
        if not fits:
            raise SmecError(
                f"{path}: selected_dims[{brief(str(dim), 12)}] is {brief(chosen, 40)}, expected "
                f"one of the dims {config['dims']} with that many distinct input dims from 0 to "
                f"{config['input_dim'] - 1}; retrain or restore the artifact"
            )


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
