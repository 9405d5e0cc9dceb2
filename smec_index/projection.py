"""Projecting query vectors exactly as a compressed collection's vectors were: the one
thing an app changes after ``smec-index build`` or ``migrate``.

    from smec_index import Projection

    projection = Projection.load("smec-data/artifacts/migrations/docs-1a2b3c4d5e-pca-64-20000")
    query = projection.project(model.encode("what is X?"), 64)  # L2-normalised, float32
    client.query_points("docs_live", query=query.tolist(), using="text", limit=10)

Numpy and safetensors only (no torch): a query is one matrix product and a normalisation,
``normalize(q @ P[:, :dim])``, the same function that projected the collection.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from smec_index import safejson
from smec_index.compressors.base import LinearCompressor, load_projection
from smec_index.errors import SmecError, brief


class Projection:
    """A loaded projection artifact.

    Attributes:
        path: the artifact directory (``config.json`` + ``weights.safetensors``).
        input_dim: the embedding size it takes.
        dims: the dims it projects to.
    """

    def __init__(self, compressor: LinearCompressor, path: Path) -> None:
        self._compressor, self.path = compressor, path
        self.input_dim = int(compressor.input_dim)
        self.dims = list(compressor.dims)

    @classmethod
    def load(cls, where: str | Path, data_dir: str | Path = "smec-data") -> Projection:
        """Load an artifact directory, or the artifact of a collection or alias that
        ``build`` or ``migrate`` wrote, found through ``data_dir``'s manifests and
        migration records.

        Raises:
            SmecError: nothing (or more than one thing) of that name; the error says what
                to pass instead.
        """
        from smec_index.data import check_path_name

        check_path_name(where, "the artifact or collection")
        check_path_name(data_dir, "data_dir")
        if str(where) == "":
            raise SmecError("the artifact or collection is empty; pass the artifact path that "
                            "build or migrate printed, or a collection's name")  # fmt: skip
        path = Path(where)
        try:
            is_artifact = (path / "config.json").is_file()
        except OSError as exc:  # a name too long for the file system, say
            raise SmecError(f"{str(where)[:60]}...: {exc.strerror}; pass an artifact directory "
                            "or a collection's name") from None  # fmt: skip
        if is_artifact:
            return cls(load_projection(path), path)
        candidates = list(_artifacts_of(str(where), Path(data_dir)))
        if (
            len({a for a, *_ in candidates}) > 1
            and all(w is not None for _, _, w, _ in candidates)
            and len({place for *_, place in candidates}) == 1
        ):  # an alias of one place that several migrations switched in turn: the last holds it
            candidates = [max(candidates, key=lambda c: c[2])]
        records = {artifact: fp for artifact, fp, _, _ in candidates}
        found = sorted(records)
        # where a migration's switch of this alias was rolled back and nothing switched it
        # since, the alias names the source again (its queries take no projection)
        active = {place for *_, place in candidates}
        rolled = sorted((place, before) for place, before in _rolled_back(
            str(where), Path(data_dir)) if place not in active)  # fmt: skip
        if rolled:
            place, before = rolled[0]
            now = ("points at the collection it named before the migration, "
                   f"{before!r}" if before else "was dropped (it named nothing before)")
            back = (f"at {place}, a migration's switch of alias {str(where)!r} was rolled "
                    f"back, so there it {now}: its queries take the original vectors, "
                    "unprojected")  # fmt: skip
            if not found:
                raise SmecError(f"{where}: {back}")
            raise SmecError(f"{where}: {back}; elsewhere in {data_dir} it uses "
                            f"{', '.join(found)}: pass that artifact path to project for it")
        if len(found) == 1:
            _check_unchanged(found[0], records[found[0]], where)
            return cls(load_projection(found[0]), Path(found[0]))
        if not found:
            raise SmecError(
                f"{where}: not an artifact directory, and no collection or alias of that name "
                f"in {data_dir}'s manifests or migrations; pass the artifact path that build "
                "or migrate printed (or the --data-dir they used)"
            )
        raise SmecError(
            f"{where}: {len(found)} collections of that name in {data_dir} use different "
            f"artifacts ({', '.join(found)}); pass the artifact path instead"
        )

    def project(self, vectors: np.ndarray | list, dim: int | None = None) -> np.ndarray:
        """``vectors`` (one, or a batch of rows) projected to ``dim`` and L2-normalised.

        Args:
            vectors: full-size embeddings from the same model as the collection's.
            dim: the collection's dim; may be left out when the artifact has one dim.
        """
        if dim is None:
            if len(self.dims) != 1:
                raise SmecError(f"pass dim: the artifact projects to {self.dims}")
            dim = self.dims[0]
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or \
                int(dim) not in self.dims:  # fmt: skip
            raise SmecError(f"dim {brief(dim, 40)}: the artifact projects to {self.dims}")
        dim = int(dim)
        from smec_index.vectors import as_rows

        rows, one = as_rows(vectors, self.input_dim, needs=f"the artifact takes "
                            f"{self.input_dim}-d embeddings (one vector, or rows of them)")
        projected = self._compressor.project_checked(rows, dim)
        return projected[0] if one else projected

    def __repr__(self) -> str:
        return f"Projection({str(self.path)!r}, input_dim={self.input_dim}, dims={self.dims})"


def _artifacts_of(name: str, data_dir: Path):
    """``(artifact path, its fingerprint when built, when the alias was switched to it,
    where)`` recorded for collection or alias ``name`` under ``data_dir`` (``None``: not an
    alias a migration switched; where: the migrated copy's location)."""
    for path in data_dir.glob("manifests/*/*.json"):
        record = _read(path)
        migrated = isinstance(record.get("extra"), dict) and "migrated_from" in record["extra"]
        names = (record.get("collection"),) if migrated else (  # its alias: the record below
            record.get("collection"), record.get("name"))  # fmt: skip
        if name in names and record.get("artifact"):
            yield str(record["artifact"]), record.get("artifact_fingerprint"), None, None
    from smec_index.migration.state import records

    for _, record in records(data_dir):
        if not record.get("artifact"):
            continue
        switched = record.get("aliases") or {}
        switched = dict.fromkeys(switched, 0.0) if isinstance(switched, list) else switched
        place = str(record.get("target_location"))  # an alias is one place's name
        if name == record.get("target"):
            yield str(record["artifact"]), record.get("fingerprint"), None, place
        elif name in switched or name == record.get("alias"):
            when = switched.get(name, 0.0)
            yield (str(record["artifact"]), record.get("fingerprint"),
                   when if isinstance(when, (int, float)) else 0.0, place)  # fmt: skip


def _rolled_back(name: str, data_dir: Path):
    """``(place, what the alias named before)`` where a migration's switch of alias
    ``name`` was rolled back and the record has not switched it again (place: the copy's
    location; before: None where the alias was made by the switch, so the rollback
    dropped it)."""
    from smec_index.migration.state import records

    for _, record in records(data_dir):
        switched = record.get("aliases") or {}
        if record.get("rolled_back") == name and name not in switched and \
                name != record.get("alias"):  # fmt: skip
            before = record.get("alias_before")
            yield str(record.get("target_location")), before if isinstance(before, str) else None


def _check_unchanged(artifact: str, recorded: Any, name: Any) -> None:
    """The artifact is still the one that projected ``name``'s vectors: queries projected
    with a retrained one would land elsewhere (as CompressedIndex.open refuses too)."""
    from smec_index.artifact import artifact_fingerprint

    if not Path(artifact).is_dir():
        raise SmecError(f"the artifact {artifact} that projected {str(name)!r} is gone; "
                        "restore it or rebuild (migrate again) the collection")  # fmt: skip
    if recorded is not None and artifact_fingerprint(artifact) != recorded:
        raise SmecError(f"the artifact {artifact} changed since {str(name)!r} was built (its "
                        "fingerprint differs), so queries would be projected differently from "
                        "the stored vectors; restore it or rebuild the collection")  # fmt: skip


def _read(path: Path) -> dict:
    try:
        record = safejson.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}
