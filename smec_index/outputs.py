"""Where commands may write: the one place that decides whether an output directory is safe.

A command writes its output (embeddings, an artifact) into a directory that is new, empty,
or one smec-index wrote itself, recognised by a marker file, :data:`MARKER`, holding JSON
``{"kind": "embeddings" | "artifact", "smec_index_version": ...}``. Anything else, a user's
folder with a thesis in it or the dataset itself, is refused with one line before any
expensive work, because replacing an output directory deletes what was in it.

Even a recognised output is only replaced when it holds nothing but the files its kind
writes (a file the user dropped in it would be lost) and never when it is, contains or lies
inside one of the command's inputs. Artifacts written before the marker existed
(``config.json`` with ``format_version`` + ``weights.safetensors``) count as artifacts;
embeddings written before it (``meta.json`` with embed's recipe) are replaced only when the
caller says so (``embed --force``), because nothing recorded what made them.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from smec_index import safejson
from smec_index.errors import SmecError

MARKER = ".smec-index-output"
KINDS = ("embeddings", "artifact", "report")

# Every file each kind of output writes: anything else inside one is not ours to delete.
OWN_FILES = {
    "embeddings": frozenset(
        {"meta.json", "corpus.npy", "corpus_ids.txt", "queries.npy", "query_ids.txt", MARKER}
    ),
    "artifact": frozenset({"config.json", "weights.safetensors", MARKER}),
    "report": frozenset({"report.md", MARKER}),  # and its plots, REPORT_PLOT
}
# The plots `smec-index report` writes: SLUG-KIND.png (a PNG of another name is the user's).
PLOT_KINDS = ("quality-vs-dim", "p50-vs-dim", "recall-vs-qps", "quality-vs-bytes", "roofline")
REPORT_PLOT = re.compile(rf".+-({'|'.join(PLOT_KINDS)})\.png")


def plot_path(out: Path, slug: str, kind: str) -> Path:
    """Where a report's plot of ``kind`` (one of :data:`PLOT_KINDS`) goes. The report's
    marker lists it, so a report written again replaces it (:data:`REPORT_PLOT` tells a
    report's plots only in reports whose marker lists no files, from older versions)."""
    if kind not in PLOT_KINDS:
        raise ValueError(f"no report plot kind {kind!r}")  # a bug of ours, not user input
    return out / f"{slug}-{kind}.png"
# The keys `smec-index embed` has always put in meta.json (to recognise pre-marker outputs).
_EMBED_META_KEYS = frozenset({"model", "normalized", "corpus_text", "rows"})


def marker_payload(kind: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the marker of a new ``kind`` output holds."""
    from smec_index import __version__

    if kind not in KINDS:
        raise ValueError(f"unknown output kind {kind!r}")
    return {"kind": kind, "smec_index_version": __version__, **(extra or {})}


def write_marker(directory: Path, kind: str, extra: dict[str, Any] | None = None) -> None:
    """Mark ``directory`` (a staging directory about to be renamed) as a ``kind`` output,
    naming the files it holds: only those are replaced with it (a user's file that happens
    to look like a plot of ours is not)."""
    files = sorted(p.name for p in Path(directory).iterdir() if p.name != MARKER)
    payload = marker_payload(kind, {**(extra or {}), "files": files})
    (Path(directory) / MARKER).write_text(json.dumps(payload) + "\n")


def read_marker(directory: str | Path) -> dict[str, Any] | None:
    """The marker's JSON object, or None when there is none (or it is not ours)."""
    try:
        payload = safejson.loads((Path(directory) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(payload, dict) or payload.get("kind") not in KINDS:
        return None
    return payload


def _json_object(path: Path) -> dict[str, Any] | None:
    try:
        payload = safejson.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return payload if isinstance(payload, dict) else None


def output_kind(directory: str | Path) -> tuple[str, bool] | None:
    """``(kind, legacy)`` when ``directory`` is a smec-index output, else None.

    ``legacy`` is True for outputs written before the marker existed.
    """
    directory = Path(directory)
    marker = read_marker(directory)
    if marker is not None:
        return marker["kind"], False
    config = _json_object(directory / "config.json")
    if (
        config is not None
        and "format_version" in config
        and (directory / "weights.safetensors").is_file()
    ):
        return "artifact", True
    meta = _json_object(directory / "meta.json")
    if meta is not None and _EMBED_META_KEYS <= meta.keys() and (directory / "corpus.npy").exists():
        return "embeddings", True
    return None


def link_to_nowhere(path: Path, kind: str) -> str:
    """Why the symbolic link ``path`` leads to no ``kind``, and what to do: its target is
    missing, or links lead back to it (a loop read as "a link to X, which does not exist"
    while X was there)."""
    import errno

    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return (f"a symbolic link to {os.readlink(path)} whose links lead back round in a "
                    f"loop, never to a {kind}; point one of them at a {kind}, or pass another")
    return (f"a symbolic link to {os.readlink(path)}, which does not exist; make that {kind} "
            "or pass another")


def refuse_odd_directory(path: str | Path, flag: str) -> None:
    """Refuse a path meant to be (or to become) a directory that cannot be one: a link to
    nowhere (mkdir says "File exists"), a file, a device, socket or FIFO, each named as
    what it is."""
    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise SmecError(f"{flag} {path}: {link_to_nowhere(path, 'directory')}")
    if path.exists() and not path.is_dir():
        kind = "a file" if path.is_file() else "a device, socket or FIFO"
        raise SmecError(f"{flag} {path} is {kind}, not a directory; pass a directory")


def no_file_above(path: str | Path, flag: str) -> None:
    """Refuse a path with a file among its parents: nothing could ever be written there."""
    for parent in Path(path).absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise SmecError(f"{flag} {path}: {parent} is a file, not a directory; "
                                "pick a path in a directory")  # fmt: skip
            return


def _resolved(path: str | Path) -> Path:
    return Path(os.path.abspath(os.path.realpath(path)))


def check_placement(
    directory: str | Path,
    *,
    flag: str = "--out",
    roots: Iterable[str | Path | None] = (),
    inputs: Iterable[str | Path | None] = (),
) -> None:
    """Refuse an output that is an input, holds one, or (for ``inputs``) lies inside one.

    ``roots`` are input directories an output may live inside (the dataset, whose
    ``embeddings/`` folder is the default place for embeddings) but never be nor contain.
    """
    out = _resolved(directory)
    for path, inside_ok in [(p, True) for p in roots] + [(p, False) for p in inputs]:
        if path is None:
            continue
        source = _resolved(path)
        if out == source:
            raise SmecError(f"{flag} {directory} is the input {path}; write to a new directory")
        if out in source.parents:
            raise SmecError(
                f"{flag} {directory} contains the input {path}; replacing it would delete "
                "that input: write to a new directory"
            )
        if not inside_ok and source in out.parents:
            raise SmecError(
                f"{flag} {directory} is inside the input {path}; write to a directory outside it"
            )


def check_replaceable(
    directory: str | Path,
    kind: str,
    *,
    overwrite: bool,
    legacy_ok: bool = True,
    flag: str = "--out",
    legacy_hint: str = "pass --force to replace them",
) -> None:
    """Refuse unless ``directory`` is new, empty, or a ``kind`` output we may replace.

    Args:
        directory: where the output will be written.
        kind: ``embeddings`` or ``artifact``.
        overwrite: whether an existing ``kind`` output may be replaced at all.
        legacy_ok: whether a ``kind`` output written before the marker existed may be.
        flag: the option that named ``directory`` (for the message).
        legacy_hint: what to do about a pre-marker output when ``legacy_ok`` is False.
    """
    directory = Path(directory)
    if directory.is_symlink():
        raise SmecError(
            f"{flag} {directory} is a symbolic link; pass the directory it points to or a new one"
        )
    if not directory.exists():
        return
    if not directory.is_dir():
        kind = "a file" if directory.is_file() else "a device, socket or FIFO"
        raise SmecError(f"{flag} {directory} is {kind}, not a directory; choose a new directory")
    try:
        names = sorted(p.name for p in directory.iterdir())
    except OSError as exc:
        raise SmecError(
            f"{flag} {directory}: cannot read it ({exc.strerror}); choose another"
        ) from None
    if not names:
        return
    found = output_kind(directory)
    if found is None:
        raise SmecError(
            f"{flag} {directory} holds files that are no smec-index {kind} output (e.g. "
            f"{names[0]!r}); choose a new or empty directory"
        )
    found_kind, legacy = found
    if found_kind != kind:
        raise SmecError(
            f"{flag} {directory} holds smec-index {found_kind}, not {kind}; choose another "
            "directory"
        )
    foreign = _foreign_files(directory, kind, names)
    if foreign:
        raise SmecError(
            f"{flag} {directory} holds {foreign[0]!r}, which is no part of a smec-index "
            f"{kind} output; move it out or choose another directory"
        )
    if not overwrite:
        raise SmecError(f"{directory}: already exists; pass --overwrite or another {flag}")
    here = Path.cwd()
    if here == directory.resolve() or directory.resolve() in here.parents:
        # the swap renames the old output away and deletes it: the shell's folder with it
        raise SmecError(
            f"{flag} {directory} is the current folder (or holds it), which replacing it "
            f"would delete from under your shell; cd elsewhere first, or choose another {flag}"
        )
    if legacy and not legacy_ok:
        raise SmecError(
            f"{flag} {directory} holds {kind} written before smec-index recorded how they "
            f"were made; {legacy_hint} or choose another directory"
        )


def _foreign_files(directory: Path, kind: str, names: list[str]) -> list[str]:
    """The ``names`` in the ``kind`` output ``directory`` that are none of its files: its
    files are those its marker lists or, where the marker lists none (older versions), the
    names the kind writes."""
    recorded = (read_marker(directory) or {}).get("files")
    if isinstance(recorded, list) and all(isinstance(n, str) for n in recorded):
        own = {*recorded, MARKER}
        return [n for n in names if n not in own]
    return [n for n in names if n not in OWN_FILES[kind]
            and not (kind == "report" and REPORT_PLOT.fullmatch(n))]  # fmt: skip


def prepare_output(
    directory: str | Path,
    kind: str,
    *,
    overwrite: bool,
    legacy_ok: bool = True,
    flag: str = "--out",
    roots: Iterable[str | Path | None] = (),
    inputs: Iterable[str | Path | None] = (),
    legacy_hint: str = "pass --force to replace them",
) -> Path:
    """Every check on an output directory, to run before any expensive work.

    See :func:`check_placement` and :func:`check_replaceable`; returns ``directory``.
    """
    check_placement(directory, flag=flag, roots=roots, inputs=inputs)
    no_file_above(directory, flag)
    check_replaceable(
        directory,
        kind,
        overwrite=overwrite,
        legacy_ok=legacy_ok,
        flag=flag,
        legacy_hint=legacy_hint,
    )
    return Path(directory)


def dataset_files(root: str | Path) -> list[Path]:
    """The files of a BEIR dataset an output must never replace nor be written inside."""
    root = Path(root)
    return [root / "corpus.jsonl", root / "queries.jsonl", root / "qrels"]


def check_writable_file(path: str | Path, flag: str) -> None:
    """A file this process can append to, found out before any measuring or training, and
    without leaving anything behind: the file itself opened for append (nothing written), or
    a probe made and removed in the nearest folder that exists."""
    import uuid

    from smec_index.data import check_path_name

    check_path_name(path, flag)  # a name too long for any file system: refused here
    path = Path(path)
    no_file_above(path, flag)
    try:
        if path.exists():
            with open(path, "a"):
                pass
            return
        folder = next(p for p in path.absolute().parents if p.exists())
        probe = folder / f".smec-write-probe-{uuid.uuid4().hex[:8]}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise SmecError(f"{flag} {path}: cannot write there ({exc.strerror or type(exc).__name__}"
                        "); pick a writable path") from None  # fmt: skip


def check_apart(directory: str | Path, flag: str, inputs: Iterable[tuple[str, Any]]) -> None:
    """A working folder (``--data-dir``) that is none of the user's input folders nor inside
    one: what it gets (collections, manifests, locks) must not land among their files."""
    here = _resolved(directory)
    for what, folder in inputs:
        if folder is None or is_url(str(folder)):
            continue
        source = _resolved(folder)
        if here == source or source in here.parents:
            raise SmecError(f"{flag} {directory} is {what} {folder}"
                            f"{'' if here == source else ' (inside it)'}; pick a folder of its "
                            "own, e.g. smec-data")  # fmt: skip


def is_url(text: str) -> bool:
    return "://" in text


# What other tools' folders hold, so a working folder is never one of them.
_FOREIGN = (
    ("a BEIR dataset", ("corpus.jsonl", "queries.jsonl")),
    ("a milvus-lite database", ("LOCK", "collections", "databases")),
    ("a qdrant-client local storage", ("meta.json", "collection", ".lock")),
)


def folder_kind(directory: str | Path) -> str | None:
    """What ``directory`` is when it is not a folder of its own: a smec-index output, a
    dataset, or another tool's storage (None otherwise, or when it does not exist)."""
    directory = Path(directory)
    if not directory.is_dir():
        return None
    kind = output_kind(directory)
    if kind is not None:
        return f"a smec-index {kind[0]} output"
    for what, files in _FOREIGN:
        if all((directory / name).exists() for name in files):
            return what
    return None


# The folders smec-index keeps in a working folder (--data-dir).
DATA_FOLDERS = ("manifests", "artifacts", "locks", "migrations", "embeddings", "faiss",
                "hnswlib", "qdrant", "qdrant-local", "milvus")  # fmt: skip


def check_working_folder(directory: str | Path, flag: str = "--data-dir") -> None:
    """A working folder (collections, manifests, locks, progress) that is neither an
    output, a dataset or another tool's storage, nor inside one, and where no file stands
    in the place of one of its folders: the same rule for every command that takes
    ``--data-dir``, before any work (a file named ``manifests`` failed a build after the
    whole corpus was indexed)."""
    here = _resolved(directory)
    for folder in (here, *here.parents):
        what = folder_kind(folder)
        if what is not None:
            inside = "" if folder == here else f" (inside {folder})"
            raise SmecError(f"{flag} {directory} is {what}{inside}; pick a folder of its own "
                            "for smec-index's files, e.g. smec-data")  # fmt: skip
    for name in DATA_FOLDERS:
        path = Path(directory) / name
        if os.path.lexists(path) and not path.is_dir():
            raise SmecError(f"{path} is not a folder, where smec-index keeps its {name}; move "
                            f"it away, or pass another {flag}")  # fmt: skip
