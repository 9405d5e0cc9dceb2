"""Artifacts: JSON + safetensors round trip, one-line SmecError on damage, atomic writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors import SafetensorError

from smec_index.artifact import (
    CONFIG_FILE,
    FORMAT_VERSION,
    WEIGHTS_FILE,
    load_artifact,
    save_artifact,
)
from smec_index.errors import SmecError
from smec_index.outputs import MARKER


@pytest.fixture
def tensors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "projection.64": rng.standard_normal((8, 4)).astype(np.float32),
        "indices": np.array([3, 1, 0, 7], dtype=np.int64),
    }


@pytest.fixture
def saved(tmp_path: Path, tensors: dict[str, np.ndarray]) -> Path:
    return save_artifact(tmp_path / "model", {"method": "smec", "dims": [4]}, tensors)


def _one_line_error(directory: Path, *fragments: str) -> None:
    with pytest.raises(SmecError) as excinfo:
        load_artifact(directory)
    message = str(excinfo.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


def _siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir())


def test_round_trip(saved: Path, tensors: dict[str, np.ndarray]) -> None:
    assert sorted(p.name for p in saved.iterdir()) == sorted([CONFIG_FILE, WEIGHTS_FILE, MARKER])
    config, loaded = load_artifact(saved)
    assert config == {"format_version": FORMAT_VERSION, "method": "smec", "dims": [4]}
    assert set(loaded) == set(tensors)
    for name, array in tensors.items():
        assert loaded[name].dtype == array.dtype
        np.testing.assert_array_equal(loaded[name], array)
    assert _siblings(saved) == ["model"]  # no staging directory left over


def test_non_contiguous_tensor_is_saved(tmp_path: Path) -> None:
    base = np.arange(24, dtype=np.float32).reshape(4, 6)
    view = base[:, ::2].T
    assert not view.flags.c_contiguous
    _, loaded = load_artifact(save_artifact(tmp_path / "a", {}, {"w": view}))
    np.testing.assert_array_equal(loaded["w"], view)


def test_overwrite_replaces_and_refuses_when_told(saved: Path) -> None:
    save_artifact(saved, {"method": "pca"}, {"w": np.zeros((2, 2), np.float32)})
    config, loaded = load_artifact(saved)
    assert config["method"] == "pca" and set(loaded) == {"w"}
    with pytest.raises(SmecError, match="already exists"):
        save_artifact(saved, {"method": "x"}, {"w": np.ones(1, np.float32)}, overwrite=False)
    assert load_artifact(saved)[0]["method"] == "pca"


def test_corrupt_config(saved: Path) -> None:
    (saved / CONFIG_FILE).write_text('{"format_version": 1, "method": ')
    _one_line_error(saved, CONFIG_FILE, "corrupt JSON")


def test_config_not_utf8(saved: Path) -> None:
    (saved / CONFIG_FILE).write_bytes(b"\xff\xfe\x00garbage")
    _one_line_error(saved, "corrupt JSON")


@pytest.mark.parametrize("version", [2, 0, None, "1"])
def test_wrong_format_version(saved: Path, version: object) -> None:
    config = json.loads((saved / CONFIG_FILE).read_text())
    if version is None:
        del config["format_version"]
    else:
        config["format_version"] = version
    (saved / CONFIG_FILE).write_text(json.dumps(config))
    _one_line_error(saved, "unknown artifact format", f"reads format {FORMAT_VERSION}")


def test_config_not_an_object(saved: Path) -> None:
    (saved / CONFIG_FILE).write_text("[1, 2]")
    _one_line_error(saved, "unknown artifact format None")


@pytest.mark.parametrize("keep", [0, 6, 40, -4])
def test_truncated_weights(saved: Path, keep: int) -> None:
    data = (saved / WEIGHTS_FILE).read_bytes()
    (saved / WEIGHTS_FILE).write_bytes(data[:keep])
    _one_line_error(saved, WEIGHTS_FILE, "corrupt weights")


@pytest.mark.parametrize("missing", [CONFIG_FILE, WEIGHTS_FILE])
def test_missing_file(saved: Path, missing: str) -> None:
    (saved / missing).unlink()
    _one_line_error(saved, "not an artifact")


def test_missing_directory(tmp_path: Path) -> None:
    _one_line_error(tmp_path / "nowhere", "no such artifact folder")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_tensor(tmp_path: Path, bad: float) -> None:
    weights = np.ones((3, 3), dtype=np.float32)
    weights[1, 2] = bad
    directory = save_artifact(tmp_path / "a", {}, {"ok": np.ones(2, np.float32), "w": weights})
    _one_line_error(directory, "tensor 'w'", "NaN or inf")


def test_failed_save_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "out" / "model"
    bad = np.array([object(), object()], dtype=object)
    with pytest.raises(SafetensorError, match="object"):
        save_artifact(target, {"method": "smec"}, {"w": bad})
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_unserialisable_config_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "model"
    with pytest.raises(TypeError):
        save_artifact(target, {"when": object()}, {"w": np.ones(2, np.float32)})
    assert list(tmp_path.iterdir()) == []


def test_failed_overwrite_keeps_existing(
    saved: Path, tensors: dict[str, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    before = {p.name: p.read_bytes() for p in saved.iterdir()}

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("safetensors.numpy.save_file", refuse)
    with pytest.raises(OSError, match="disk full"):
        save_artifact(saved, {"method": "other"}, {"w": np.zeros(2, np.float32)})
    assert {p.name: p.read_bytes() for p in saved.iterdir()} == before
    assert _siblings(saved) == ["model"]
    config, loaded = load_artifact(saved)
    assert config["method"] == "smec"
    np.testing.assert_array_equal(loaded["projection.64"], tensors["projection.64"])


def test_failed_overwrite_with_bad_tensor_keeps_existing(saved: Path) -> None:
    before = {p.name: p.read_bytes() for p in saved.iterdir()}
    with pytest.raises(SafetensorError):
        save_artifact(saved, {}, {"w": np.array([object()], dtype=object)})
    assert {p.name: p.read_bytes() for p in saved.iterdir()} == before
    assert _siblings(saved) == ["model"]
