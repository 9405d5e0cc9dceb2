"""Where a migration keeps its progress, keyed by the source's identity, never its name.

A source is identified by its backend, its location (an absolute path for files, the
credential-free URL of a server), its collection name and the vector migrated (Qdrant's
``--using``); its schema's fingerprint is
recorded beside the progress and checked on every resume. Two collections called ``docs``
in two files therefore never share progress, a fitted PCA or a trained SMEC, and a source
whose schema changed mid-migration is one clear line instead of a silent mix.

Layout under ``<data_dir>/migrations/<collection>-<source key>/``:
``<target backend>-<target>-<target place key>[.partKofN].json`` (the progress, written
atomically), and ``source.json`` (what the key stands for, for people reading the folder).
A progress file also records that the migration created its target: only a target with a
progress file may be replaced (``--overwrite``, ``--restart``) or dropped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from smec_index import safejson
from smec_index.connectors.source import Partition, Source
from smec_index.connectors.storage import sweep_temporaries, write_json_atomic
from smec_index.errors import SmecError


def records(
    data_dir: str | Path, pattern: str = "*.json", unreadable: list[Path] | None = None
) -> Iterator[tuple[Path, dict[str, Any]]]:
    """``(path, record)`` of each progress file under ``data_dir`` whose name matches
    ``pattern`` (and each folder's ``source.json``), in path order: the one reader of them
    for info, search, CompressedIndex.open and Projection.load. A file that is not a JSON
    object is left out, and added to ``unreadable`` when given."""
    for path in sorted(Path(data_dir).glob(f"migrations/*/{pattern}")):
        try:
            record = safejson.loads(path.read_text())
        except (OSError, ValueError):
            record = None
        if isinstance(record, dict):
            yield path, record
        elif unreadable is not None:
            unreadable.append(path)


def key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def source_identity(backend: str, source: Source) -> str:
    info = source.info
    return f"{backend}|{info.location}|{info.collection}|{info.vector}"


class Progress:
    """The progress files of one source into one target (name and place)."""

    def __init__(self, data_dir: Path, backend: str, source: Source, target_backend: str,
                 target: str, target_place: str) -> None:  # fmt: skip
        """``target_place``: where the target is, however the user typed it (an absolute
        path, a credential-free URL)."""
        identity = source_identity(backend, source)
        self.folder = Path(data_dir) / "migrations" / f"{source.info.collection}-{key(identity)}"
        self.identity = identity
        self.stem = f"{target_backend}-{target}-{key(target_place)}"
        self.shown_source = f"{backend}:{source.info.where}/{source.info.collection}"
        self._swept: set[Path] = set()  # records whose killed writes' leftovers are gone

    def path(self, partition: Partition | None = None) -> Path:
        slice_ = "" if partition is None else f".part{partition.k}of{partition.n}"
        return self.folder / f"{self.stem}{slice_}.json"

    def read(self, partition: Partition | None = None) -> dict[str, Any] | None:
        return read_state(self.path(partition))

    def write(self, state: dict[str, Any], partition: Partition | None = None) -> None:
        if self.path(partition) not in self._swept:
            self._sweep(partition)
        if not (self.folder / "source.json").is_file():
            write_json_atomic(self.folder / "source.json",
                              {"source": self.shown_source, "identity": self.identity})  # fmt: skip
        write_json_atomic(self.path(partition), state)

    def _sweep(self, partition: Partition | None) -> None:
        """Remove the temporary files a run killed while writing this record left (its
        writer holds the record's lock, so none is another's in flight), and those of
        ``source.json`` a minute old (written once, by whichever run comes first)."""
        record = self.path(partition)
        self._swept.add(record)
        sweep_temporaries(record)
        sweep_temporaries(self.folder / "source.json", min_age_s=60)

    def records(self) -> Iterator[tuple[Path, dict[str, Any]]]:
        """Every readable progress record of this source's migrations (each target's,
        each slice's), with its path; ``source.json`` and damaged records are skipped."""
        for path in self.folder.glob("*.json"):
            if path.name == "source.json":
                continue
            try:
                state = read_state(path)
            except SmecError:
                continue
            if isinstance(state, dict):
                yield path, state

    def partitions(self) -> list[Path]:
        return sorted(self.folder.glob(f"{self.stem}.part*of*.json"))

    def owns_target(self) -> bool:
        """Whether this migration (whole, or any slice) created its target."""
        return self.path().is_file() or bool(self.partitions())

    def artifact_dir(self, data_dir: Path, name: str) -> Path:
        """Where a projection fitted for this source lives (keyed like the progress)."""
        return Path(data_dir) / "artifacts" / "migrations" / f"{self.folder.name}-{name}"


def read_state(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        return safejson.loads(path.read_text())
    except ValueError:
        raise SmecError(f"{path}: corrupt migration progress; pass --restart") from None


def check_schema(state: dict[str, Any], schema_fingerprint: str, source: str) -> None:
    recorded = state.get("source_schema")
    if recorded is not None and recorded != schema_fingerprint:
        raise SmecError(
            f"the schema of {source} changed since this migration started (fingerprint "
            f"{recorded} -> {schema_fingerprint}); pass --restart to migrate it afresh"
        )
