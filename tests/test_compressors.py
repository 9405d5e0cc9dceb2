"""Every compressor behind one interface: fit, transform, save, load; plus SMEC specifics."""

from __future__ import annotations

import json

import numpy as np
import pytest

from smec_index.compressors import METHODS, Compressor, load_compressor, make_compressor
from smec_index.compressors.base import check_input_dim
from smec_index.errors import SmecError
from smec_index.evaluate import evaluate_dims
from smec_index.training.chain import StageTree

DIMS = (32, 16, 8)
FAST = {"max_epochs": 4, "progress": False}


@pytest.fixture(scope="module")
def fitted(synthetic):
    data, train, _ = synthetic
    return {m: make_compressor(m, DIMS, **FAST).fit(data, train) for m in METHODS}


@pytest.mark.parametrize("method", sorted(METHODS))
def test_interface_and_round_trip(method, fitted, synthetic, tmp_path):
    data, _, _ = synthetic
    compressor = fitted[method]
    assert isinstance(compressor, Compressor)
    assert compressor.dims == DIMS and compressor.input_dim == data.dim
    x = np.asarray(data.queries.vectors[:50])
    for dim in DIMS:
        y = compressor.transform(x, dim)
        assert y.shape == (50, dim) and y.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(y, axis=1), 1.0, rtol=1e-5)
    compressor.save(tmp_path / "a")
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert config["method"] == method and config["dims"] == list(DIMS) and "seed" in config
    loaded = load_compressor(tmp_path / "a")
    assert type(loaded) is type(compressor)
    for dim in DIMS:
        np.testing.assert_array_equal(loaded.transform(x, dim), compressor.transform(x, dim))


@pytest.mark.parametrize("method", ["smec", "mrl"])
def test_the_full_dim_adapter_is_the_first_stage_before_it_selects(method, fitted, tmp_path):
    compressor = fitted[method]
    matrix = compressor.adapted_projection()
    assert matrix.shape == (compressor.input_dim, compressor.input_dim)
    first = DIMS[0]
    columns = compressor.info["stage_selection"][str(first)]
    if compressor.info["selection"][str(first)]["kept"] == "trained":
        np.testing.assert_allclose(compressor.projection(first), matrix[:, columns], atol=1e-6)
    else:  # PCA kept for the dim; the adapter is still the trained stage's
        assert not np.allclose(compressor.projection(first), matrix[:, columns], atol=1e-6)
    compressor.save(tmp_path / "a")
    np.testing.assert_array_equal(load_compressor(tmp_path / "a").adapted_projection(), matrix)


def test_learned_methods_beat_truncation_at_low_dims(fitted, synthetic):
    data, _, test = synthetic
    scores = {
        m: evaluate_dims(data, test, fitted[m], [8])[8]["ndcg@10"]
        for m in ("truncate", "pca", "smec")
    }
    # Intrinsic rank 12 spread over 64 dims: the first 8 coordinates miss most of it.
    assert scores["truncate"] < 0.2
    assert scores["smec"] > scores["truncate"] + 0.3
    assert scores["smec"] > scores["pca"] - 0.05


def test_truncation_and_ads_export_selections(fitted):
    truncate = fitted["truncate"]
    assert truncate.selected_dims(8) == list(range(8))
    # Parallel MRL keeps its first-d truncation structure only in the chain, not globally.
    assert fitted["pca"].selected_dims(8) is None


def test_training_is_seeded(synthetic):
    data, train, _ = synthetic
    a = make_compressor("smec", (16, 8), seed=3, **FAST).fit(data, train)
    b = make_compressor("smec", (16, 8), seed=3, **FAST).fit(data, train)
    np.testing.assert_array_equal(a.projection(8), b.projection(8))


def test_unsupervised_training_uses_no_qrels(synthetic):
    data, _, test = synthetic
    smec = make_compressor("smec", (16, 8), supervised=False, **FAST).fit(data, None)
    assert smec.info["train_queries"] == 0
    assert evaluate_dims(data, test, smec, [8])[8]["ndcg@10"] > 0.4


def test_search_adaptor_refuses_unsupervised(synthetic):
    data, _, _ = synthetic
    with pytest.raises(SmecError, match="supervised only"):
        make_compressor("search-adaptor", (16,), supervised=False, **FAST).fit(data)


def test_smec_records_ablation_switches_and_history(fitted):
    smec = fitted["smec"]
    settings = smec.config()["settings"]
    assert settings["sequential"] and settings["ads"] and settings["xbm"]
    mrl = fitted["mrl"].config()["settings"]
    assert not (mrl["sequential"] or mrl["ads"] or mrl["xbm"])
    stages = {h["stage"] for h in smec.info["history"]}
    # 64-d input: 2/3 of it is 40, and 32 is above 3/4 of that, so no lead-in stage.
    assert smec.info["lead_in"] is None and smec.info["parents"]["32"] == 64
    assert stages == {"32", "16", "8"}, "sequential training runs one stage at a time"
    assert {h["stage"] for h in fitted["mrl"].info["history"]} == {"32,16,8"}
    trained = [h for h in smec.info["history"] if h["phase"] != "start"]
    assert trained and all(h["grad_variance"] >= 0 for h in trained)
    # Every stage scored its starting point and each epoch on held-out queries.
    assert {h["phase"] for h in smec.info["history"]} <= {"start", "select", "refit"}
    assert all(0 <= h["val_score"] <= 1 for h in smec.info["history"] if h["phase"] != "refit")
    assert set(smec.info["selection"]) == {"32", "16", "8"}
    kept = smec.info["stage_selection"]
    assert {d: len(v) for d, v in kept.items()} == {"32": 32, "16": 16, "8": 8}
    assert all(len(set(v)) == len(v) and max(v) < smec.info["parents"][d] for d, v in kept.items())


def test_continued_training_keeps_earlier_stages(fitted, synthetic, tmp_path):
    data, train, test = synthetic
    fitted["smec"].save(tmp_path / "base")
    base = load_compressor(tmp_path / "base")
    before = {d: base.projection(d).copy() for d in base.dims}
    weights = {k: v.copy() for k, v in base.extra.items()}
    base.progress = False
    base.extend(data, train, [4, 24])
    assert base.dims == (32, 24, 16, 8, 4)
    for dim, matrix in before.items():
        np.testing.assert_array_equal(base.projection(dim), matrix)
    # The frozen stages' own weights are untouched too, and the new stages build on them.
    for key, value in weights.items():
        np.testing.assert_array_equal(base.extra[key], value)
    tree = StageTree.from_state(
        64, {int(d): p for d, p in base.info["parents"].items()}, base.extra
    )
    pca = make_compressor("pca", (24, 4)).fit(data)
    for dim, parent in ((4, 8), (24, 32)):
        chained = tree.projection(parent) @ tree.stage(dim).matrix()
        kept = base.info["selection"][str(dim)]["kept"]
        # A new dim that did not beat PCA on held-out data keeps PCA's projection instead.
        expected = chained if kept == "trained" else pca.projection(dim)
        np.testing.assert_allclose(base.projection(dim), expected, atol=1e-6)
    assert base.info["parents"] == {"32": 64, "24": 32, "16": 32, "8": 16, "4": 8}
    assert evaluate_dims(data, test, base, [4])[4]["ndcg@10"] > 0.1
    with pytest.raises(SmecError, match="already has dim 8"):
        base.extend(data, train, [8])
    with pytest.raises(SmecError, match=f"choose dims below {data.dim}"):
        base.extend(data, train, [data.dim])


@pytest.mark.parametrize(
    ("dims", "message"),
    [
        ((16, 32), "strictly decreasing"),
        ((16, 16), "strictly decreasing"),
        ((128, 8), "larger than"),
        ((8, 0), "positive"),
        ((), "no target dims"),
    ],
)
def test_bad_dims(dims, message, synthetic):
    data, train, _ = synthetic
    with pytest.raises(SmecError, match=message):
        make_compressor("pca", dims).fit(data, train)


@pytest.mark.parametrize("method", ["smec", "mrl", "search-adaptor", "matryoshka-adaptor", "dive"])
def test_trained_methods_refuse_the_input_dim_before_training(method, synthetic):
    data, train, _ = synthetic
    with pytest.raises(SmecError, match=f"choose dims below {data.dim}"):
        make_compressor(method, (data.dim, 8), progress=False).fit(data, train)


def test_artifact_for_another_input_dim_is_refused(fitted):
    with pytest.raises(SmecError, match="trained on 64-d"):
        check_input_dim(fitted["pca"], 384)
    with pytest.raises(SmecError, match="do not fit this artifact"):
        fitted["pca"].transform(np.ones((2, 384), np.float32), 8)
    with pytest.raises(SmecError, match="has no dim 12"):
        fitted["pca"].transform(np.ones((2, 64), np.float32), 12)


def test_a_dim_training_cannot_improve_keeps_pca(synthetic):
    """Selection starts from the initialisation (PCA at the first stage): a run that cannot
    move (learning rates of 1e-12) scores exactly PCA there, so the artifact keeps PCA and
    says so; with pca_fallback off it keeps the trained projection."""
    data, _, _ = synthetic
    frozen = {"lr": 1e-12, "logits_lr": 1e-12, "max_epochs": 2, "progress": False}
    smec = make_compressor("smec", (16,), supervised=False, **frozen).fit(data)
    pca = make_compressor("pca", (16,)).fit(data)
    chosen = smec.info["selection"]["16"]
    assert chosen["kept"] == "pca" and chosen["metric"] == "recall@10"
    assert chosen["trained"] == chosen["pca"]
    np.testing.assert_array_equal(smec.projection(16), pca.projection(16))
    kept = make_compressor("smec", (16,), supervised=False, pca_fallback=False, **frozen)
    kept.fit(data)
    assert kept.info["selection"]["16"]["kept"] == "trained"
    assert not np.array_equal(kept.projection(16), pca.projection(16))


def test_an_artifact_saved_before_the_lead_in_stage_loads_as_trained_without_it(fitted, tmp_path):
    """Its settings lack lead_in: it was trained without one, not with the default 2/3."""
    import json

    fitted["smec"].save(tmp_path / "old")
    path = tmp_path / "old" / "config.json"
    config = json.loads(path.read_text())
    del config["settings"]["lead_in"]
    path.write_text(json.dumps(config))
    assert load_compressor(tmp_path / "old").train_config.lead_in == 0
    assert load_compressor(tmp_path / "old").dims == fitted["smec"].dims


def test_the_lead_in_stage_is_trained_recorded_and_exported_only_on_request(synthetic, tmp_path):
    """Dims 16 and 8 of 64-d vectors train through a 40-d first stage (2/3 of 64): recorded
    with its held-out verdict against PCA, not exported; extending with dim 40 exports that
    stage as it was trained (or PCA, where PCA won), training nothing."""
    data, train, _ = synthetic
    make_compressor("smec", (16, 8), **FAST).fit(data, train).save(tmp_path / "a")
    smec = load_compressor(tmp_path / "a")
    assert smec.info["lead_in"] == 40 and smec.info["parents"] == {"40": 64, "16": 40, "8": 16}
    assert {h["stage"] for h in smec.info["history"]} == {"40", "16", "8"}
    assert smec.dims == (16, 8) and set(smec.info["selection"]) == {"16", "8"}
    recorded = smec.info["lead_in_selection"]
    assert recorded["kept"] in ("trained", "pca")
    before = {d: smec.projection(d).copy() for d in smec.dims}
    tree = StageTree.from_state(64, {40: 64, 16: 40, 8: 16}, smec.extra)
    history = list(smec.info["history"])
    smec.progress = False
    smec.extend(data, train, [40])
    assert smec.dims == (40, 16, 8) and smec.info["history"] == history
    assert smec.info["selection"]["40"] == recorded
    pca = make_compressor("pca", (40,)).fit(data).projection(40)
    expected = tree.projection(40) if recorded["kept"] == "trained" else pca
    np.testing.assert_allclose(smec.projection(40), expected, atol=1e-6)
    for dim, matrix in before.items():
        np.testing.assert_array_equal(smec.projection(dim), matrix)
