"""Hostile input, the fifth sweep's finds (issue 23): 701 new probes by someone who had not
seen the earlier tables, 63 bad answers in 25 faults. One probe per fault; each failed
before its fix. Every bad input ends as one ``error:`` line, exit 2, nothing changed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
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


def test_an_alias_of_another_collection_is_not_taken_over(tmp_path):
    from qdrant_client import QdrantClient, models

    source = qdrant_source(tmp_path)
    client = QdrantClient(path=str(source))
    client.create_collection("other", vectors_config=models.VectorParams(
        size=8, distance=models.Distance.COSINE))  # fmt: skip
    alias = models.CreateAlias(collection_name="other", alias_name="userapp")
    client.update_collection_aliases([models.CreateAliasOperation(create_alias=alias)])
    client.close()
    common = ["migrate", "--backend", "qdrant", "--path", source, "--collection", "docs",
              "--data-dir", tmp_path / "d", "--min-recall", 0, "--quiet"]  # fmt: skip
    run_probe([*common, "--dim", 16, "--alias", "userapp"], tmp_path, "points at 'other'")
    # A copy of the same source at another dim may take the alias over (a smaller dim later).
    _ok(*common, "--dim", 16, "--alias", "app")
    _ok(*common, "--dim", 8, "--alias", "app")
    assert ("app", "docs_8") in _qdrant_aliases(source)


# -- F: written despite refusing ----------------------------------------------------------


def test_a_refused_milvus_lite_build_leaves_no_database(tmp_path):
    ds = _dataset(tmp_path)
    _ok("train", "--dataset", ds, "--method", "pca", "--dims", 8, "--out", tmp_path / "art",
        "--quiet")  # fmt: skip
    for data in (tmp_path / "new", tmp_path / "existing"):
        if data.name == "existing":
            data.mkdir()
        run_probe(["build", "--dataset", ds, "--dim", 4, "--backend", "milvus", "--artifact",
                   tmp_path / "art", "--data-dir", data], tmp_path, "the artifact has dims")
        assert not (data / "milvus").exists()


def test_a_source_holding_smec_ids_is_refused_before_anything_is_written(tmp_path):
    from qdrant_client import QdrantClient, models

    client = QdrantClient(path=str(tmp_path / "q"))
    client.create_collection("res", vectors_config=models.VectorParams(
        size=16, distance=models.Distance.COSINE))  # fmt: skip
    rng = np.random.default_rng(0)
    client.upsert("res", [models.PointStruct(id=i, vector=rng.standard_normal(16).tolist(),
                                             payload={"_smec_id": f"d{i}"}) for i in range(300)])
    client.close()
    common = ["migrate", "--backend", "qdrant", "--path", tmp_path / "q", "--collection", "res",
              "--dim", 8, "--data-dir", tmp_path / "d", "--to-backend", "hnswlib",
              "--allow-schema-change", "--quiet"]  # fmt: skip
    run_probe([*common, "--dry-run"], tmp_path, "carry the payload key '_smec_id'")
    run_probe([*common, "--min-recall", 0], tmp_path, "carry the payload key '_smec_id'")


def test_in_place_into_a_sparse_vectors_name_writes_no_artifact(tmp_path):
    from qdrant_client import QdrantClient, models

    client = QdrantClient(path=str(tmp_path / "q"))
    client.create_collection(
        "named", vectors_config={"text": models.VectorParams(size=16,
                                                             distance=models.Distance.COSINE)},
        sparse_vectors_config={"sp": models.SparseVectorParams()})  # fmt: skip
    rng = np.random.default_rng(0)
    client.upsert("named", [models.PointStruct(id=i, vector={"text": rng.standard_normal(16)
                                                             .tolist()}) for i in range(300)])
    client.close()
    run_probe(["migrate", "--backend", "qdrant", "--path", tmp_path / "q", "--collection",
               "named", "--using", "text", "--dim", 8, "--data-dir", tmp_path / "d",
               "--in-place", "--to", "sp"], tmp_path, "has a sparse vector of that name")


# -- A: internal errors --------------------------------------------------------------------


def test_a_point_without_the_migrated_named_vector_is_one_line(tmp_path):
    from qdrant_client import QdrantClient, models

    client = QdrantClient(path=str(tmp_path / "q"))
    params = models.VectorParams(size=16, distance=models.Distance.COSINE)
    client.create_collection("holes", vectors_config={"a": params, "b": params})
    rng = np.random.default_rng(0)
    client.upsert("holes", [models.PointStruct(id=i, vector={"a": rng.standard_normal(16)
                                                             .tolist(), **({"b": rng
                                                             .standard_normal(16).tolist()}
                                                             if i % 2 else {})})
                            for i in range(300)])  # fmt: skip
    client.close()
    run_probe(["migrate", "--backend", "qdrant", "--path", tmp_path / "q", "--collection",
               "holes", "--using", "b", "--dim", 8, "--data-dir", tmp_path / "d", "--dry-run"],
              tmp_path, "has no vector 'b'")  # fmt: skip


def test_a_schemeless_url_with_a_password_is_refused_by_migrate_too(tmp_path):
    line = run_probe(["migrate", "--backend", "qdrant", "--url", "user:PWsecret@127.0.0.1:1",
                      "--collection", "x", "--dim", 8, "--data-dir", tmp_path / "d",
                      "--dry-run"], tmp_path, "takes its API key from --api-key")  # fmt: skip
    assert "PWsecret" not in line


@pytest.mark.parametrize(
    ("damage", "fragment"),
    [
        (lambda info, extra: extra.update({"stage.8.adapter": np.zeros((5, 5), np.float32)}),
         "stage.8.adapter is of shape (5, 5)"),
        (lambda info, extra: info.update(parents={"8": 999}), "hangs off 999"),
        (lambda info, extra: info.update(parents=["x"]), "not a mapping"),
        (lambda info, extra: info.update(parents={"8": "x"}), "not a dim"),
        (lambda info, extra: info.update(negatives="own"), "info.negatives"),
        (lambda info, extra: extra.clear(), "is missing"),
    ],
)  # fmt: skip
def test_extend_names_a_damaged_artifact_before_training(tmp_path, damage, fragment):
    from safetensors.numpy import load_file, save_file

    ds = _dataset(tmp_path)
    _ok("train", "--dataset", ds, "--method", "smec", "--dims", 8, "--epochs", 1, "--lead-in",
        0, "--out", tmp_path / "art", "--quiet")  # fmt: skip
    config_path = tmp_path / "art" / "config.json"
    weights = tmp_path / "art" / "weights.safetensors"
    config, tensors = json.loads(config_path.read_text()), load_file(weights)
    extra = {k: v for k, v in tensors.items() if k.startswith("stage.")}
    damage(config["info"], extra)
    config_path.write_text(json.dumps(config))
    save_file({**{k: v for k, v in tensors.items() if not k.startswith("stage.")}, **extra},
              weights)  # fmt: skip
    run_probe(["train", "--dataset", ds, "--extend", tmp_path / "art", "--dims", 4, "--out",
               tmp_path / "more"], tmp_path, fragment, output=tmp_path / "more")  # fmt: skip


# -- B: silently accepted ------------------------------------------------------------------


def test_a_projection_too_small_to_keep_a_direction_is_refused(tmp_path):
    from safetensors.numpy import load_file, save_file

    ds = _dataset(tmp_path)
    _ok("train", "--dataset", ds, "--method", "pca", "--dims", 8, "--out", tmp_path / "art",
        "--quiet")  # fmt: skip
    weights = tmp_path / "art" / "weights.safetensors"
    tensors = {k: v * np.float32(1e-30) for k, v in load_file(weights).items()}
    save_file(tensors, weights)
    run_probe(["eval", "--dataset", ds, "--artifact", tmp_path / "art"], tmp_path,
              "no weight above")  # fmt: skip


def test_flags_a_backend_cannot_use_are_refused_not_dropped(tmp_path):
    ds = _dataset(tmp_path)
    run_probe(["build", "--dataset", ds, "--dim", 16, "--backend", "milvus", "--token", "t",
               "--data-dir", tmp_path / "d"], tmp_path, "--token does not apply to milvus-lite")
    run_probe(["build", "--dataset", ds, "--dim", 16, "--backend", "qdrant", "--api-key", "k",
               "--data-dir", tmp_path / "d"], tmp_path, "--api-key does not apply")
    run_probe(["build", "--dataset", ds, "--dim", 16, "--backend", "milvus", "--index",
               "ivf_flat", "--nlist", 9999, "--data-dir", tmp_path / "d"], tmp_path,
              "more inverted lists than")  # fmt: skip


def test_a_bench_config_naming_a_setting_twice_is_refused(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('dataset = ["synthetic:300x8"]\ndatasets = ["synthetic:500x16"]\n')
    run_probe(["bench", "--config", config], tmp_path, "sets datasets a second time")
    config.write_text('datasets = ["synthetic:300x8"]\nef-search = [32]\nef_search = [128]\n')
    run_probe(["bench", "--config", config], tmp_path, "sets ef_search a second time")


# -- D: found late -------------------------------------------------------------------------


def test_bench_checks_workdir_and_artifacts_before_the_first_run(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('datasets = ["synthetic:300x8"]\nworkdir = "nowhere"\nout = "r.jsonl"\n')
    run_probe(["bench", "--config", config], tmp_path, "no such directory")
    ds = _dataset(tmp_path)
    _ok("train", "--dataset", ds, "--method", "pca", "--dims", 8, "--out", tmp_path / "art",
        "--quiet")  # fmt: skip
    bench = ["bench", "--dataset", "synthetic:300x32", "--methods", f"artifact:{tmp_path / 'art'}",
             "--out", tmp_path / "r.jsonl"]  # fmt: skip
    run_probe(bench, tmp_path, "projects 16-d vectors")
    run_probe([*bench[:2], "synthetic:300x16", *bench[3:], "--dims", 12], tmp_path,
              "has no dim 12")


# -- E, C: messages and noise --------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "fragment"),
    [({"qps": 0}, "'qps' is 0"), ({"nprobe": 16}, "'nlist' is None"),
     ({"n_docs": 10**13}, "'n_docs'")],
)  # fmt: skip
def test_report_refuses_records_its_writer_cannot_draw(tmp_path, change, fragment):
    run_probe(["report", _results(tmp_path, **change), "--out", tmp_path / "rep"], tmp_path,
              fragment)  # fmt: skip


def test_report_draws_records_without_machine_or_versions_and_long_names(tmp_path):
    results = _results(tmp_path, machine=None, versions=None, dataset="x" * 300)
    _ok("report", results, "--out", tmp_path / "rep")
    assert all(len(p.name) < 120 for p in (tmp_path / "rep").iterdir())


def test_milvus_lite_ivf_prints_no_faiss_advice(tmp_path, capfd):
    ds = _dataset(tmp_path)
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "smec_index.cli", "build", "--dataset", str(ds),
                           "--dim", "16", "--backend", "milvus", "--index", "ivf_flat",
                           "--data-dir", str(tmp_path / "d"), "--quiet"],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "WARNING clustering" not in done.stderr + done.stdout


def test_info_names_a_damaged_migration_record(tmp_path):
    source = qdrant_source(tmp_path)
    _ok("migrate", "--backend", "qdrant", "--path", source, "--collection", "docs", "--dim", 16,
        "--data-dir", tmp_path / "d", "--min-recall", 0, "--quiet")  # fmt: skip
    (record,) = [p for p in (tmp_path / "d" / "migrations").glob("*/*.json")
                 if p.name != "source.json"]  # fmt: skip
    record.write_text("{not json")
    run_probe(["info", "--backend", "qdrant", "--path", source, "--collection", "docs_16",
               "--data-dir", tmp_path / "d"], tmp_path, "is unreadable (damaged JSON)")
