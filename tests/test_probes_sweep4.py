"""Hostile input, the fifth sweep's finds (issue 23): 701 new probes by someone who had not
seen the earlier tables, 63 bad answers in 25 faults. One probe per fault; each failed
before its fix. Every bad input ends as one ``error:`` line, exit 2, nothing changed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from smec_index.cli import main
from tests.probes import qdrant_source, run_probe
from tests.test_probes_hostile import _dataset, _results


def _ok(*args) -> str:
    done = CliRunner().invoke(main, [str(a) for a in args])
    assert done.exit_code == 0, done.output
    return done.output


def _qdrant_aliases(folder: Path) -> list[tuple[str, str]]:
    from qdrant_client import QdrantClient

    client = QdrantClient(path=str(folder))
    try:
        return sorted((a.alias_name, a.collection_name) for a in client.get_aliases().aliases)
    finally:
        client.close()


# -- G: an app's alias is never moved or dropped as a side effect ---------------------------


def test_overwrite_and_rollback_never_touch_an_alias_they_were_not_given(tmp_path):
    source = qdrant_source(tmp_path)
    common = ["migrate", "--backend", "qdrant", "--path", source, "--collection", "docs",
              "--dim", 16, "--data-dir", tmp_path / "d", "--to", "p16", "--min-recall", 0,
              "--quiet"]  # fmt: skip
    _ok(*common, "--alias", "app")
    _ok(*common, "--alias", "app2")  # the same copy under a second name
    assert _qdrant_aliases(source) == [("app", "p16"), ("app2", "p16")]
    # --overwrite would drop p16 and, with it, the names the app reads.
    run_probe([*common, "--overwrite"], tmp_path, "alias 'app' points at 'p16'")
    run_probe([*common, "--restart"], tmp_path, "--restart would drop it")
    # The record holds the last switch (app2): rolling back app would move app2.
    run_probe([*common, "--rollback", "--alias", "app"], tmp_path, "is of alias 'app2'")
    assert _qdrant_aliases(source) == [("app", "p16"), ("app2", "p16")]


# -- A, B: numbers ------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["１０", "٣", "1_0", "+٣"])
def test_integer_flags_take_ascii_digits_only(tmp_path, value):
    ds = _dataset(tmp_path)
    run_probe(["train", "--dataset", ds, "--method", "smec", "--dims", 8, "--epochs", value,
               "--out", tmp_path / "art"], tmp_path, "use a whole number")  # fmt: skip


def test_integers_longer_than_python_converts_are_one_line(tmp_path):
    ds = _dataset(tmp_path)
    huge = "9" * 5000
    run_probe(["train", "--dataset", ds, "--method", "pca", "--dims", huge, "--out",
               tmp_path / "art"], tmp_path, "--dims")  # fmt: skip
    run_probe(["bench", "--dataset", "synthetic:300x8", "--ef-search", f"8,{huge}", "--out",
               tmp_path / "r.jsonl"], tmp_path, "--ef-search")  # fmt: skip
    config = tmp_path / "c.toml"
    config.write_text(f'datasets = ["synthetic:300x8"]\nM = {huge}\n')
    run_probe(["bench", "--config", config], tmp_path, "c.toml")
    _ok("train", "--dataset", ds, "--method", "pca", "--dims", 8, "--out", tmp_path / "art",
        "--quiet")  # fmt: skip
    settings = tmp_path / "art" / "config.json"
    settings.write_text(settings.read_text().replace('"input_dim": 16', f'"input_dim": {huge}'))
    run_probe(["eval", "--dataset", ds, "--artifact", tmp_path / "art"], tmp_path, "corrupt")
    corpus = ds / "corpus.jsonl"
    corpus.write_text(corpus.read_text() + f'{{"_id": {huge}, "text": "x"}}\n')
    run_probe(["embed", "--dataset", ds, "--out", tmp_path / "emb"], tmp_path, "corpus.jsonl",
              output=tmp_path / "emb")  # fmt: skip


def test_format_version_must_be_the_integer(tmp_path):
    ds = _dataset(tmp_path)
    _ok("train", "--dataset", ds, "--method", "pca", "--dims", 8, "--out", tmp_path / "art",
        "--quiet")  # fmt: skip
    settings = tmp_path / "art" / "config.json"
    for version in ("1.0", "true"):
        config = json.loads(settings.read_text())
        settings.write_text(json.dumps(config).replace(
            f'"format_version": {config["format_version"]}', f'"format_version": {version}'))
        run_probe(["eval", "--dataset", ds, "--artifact", tmp_path / "art"], tmp_path,
                  "unknown artifact format")  # fmt: skip
