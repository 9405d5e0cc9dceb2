"""DIVE, the baseline of issue 24: its two losses behave as the paper's abstract states, its
settings are checked, and it trains behind the same interface as every other method."""

from __future__ import annotations

import pytest
import torch

from smec_index.compressors import make_compressor
from smec_index.compressors.dive import _nt_xent
from smec_index.errors import SmecError

FAST = {"max_epochs": 3, "progress": False}


def test_the_triplet_loss_limits_itself(synthetic):
    """The hinge is zero (and so is its gradient) for a triplet that meets its margin: at
    margin 0 nearly every training triplet does from the start, at margin 1 none does."""
    data, train, _ = synthetic
    still = make_compressor("dive", (16,), margin=0.0, view_weight=0.0, pca_fallback=False,
                            refit=False, **FAST).fit(data, train)  # fmt: skip
    moved = make_compressor("dive", (16,), margin=1.0, view_weight=0.0, pca_fallback=False,
                            refit=False, **FAST).fit(data, train)  # fmt: skip
    def losses(dive):
        return [r["train_loss"] for r in dive.info["history"] if "train_loss" in r]

    assert losses(still) and max(losses(still)) < 0.05  # nearly every triplet satisfied
    assert min(losses(moved)) > 0.5  # a margin no cosine gap meets: every triplet active


def test_nt_xent_prefers_views_that_agree():
    rng = torch.Generator().manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(16, 8, generator=rng), dim=1)
    same = _nt_xent(a, a, 0.1)
    other = _nt_xent(a, torch.nn.functional.normalize(torch.randn(16, 8, generator=rng), dim=1),
                     0.1)  # fmt: skip
    assert same < other


def test_the_export_is_one_matrix_per_dim_and_selection_is_recorded(synthetic):
    data, train, _ = synthetic
    dive = make_compressor("dive", (16, 8), **FAST).fit(data, train)
    for dim in (16, 8):
        assert dive.projection(dim).shape == (data.dim, dim)
        assert dive.info["selection"][str(dim)]["kept"] in ("trained", "pca")
    assert dive.settings["views"] == 4 and dive.settings["margin"] == 0.3


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"views": 1}, "views = 1 is invalid"),
        ({"views": True}, "views = True is invalid"),
        ({"margin": -0.1}, "margin = -0.1 is invalid"),
        ({"margin": float("nan")}, "margin = nan is invalid"),
        ({"view_weight": "high"}, "view_weight = 'high' is invalid"),
        ({"view_temperature": 0}, "view_temperature = 0 is invalid"),
        ({"magin": 0.2}, "margin"),  # a typo names the closest setting
    ],
)
def test_settings_are_checked_before_any_data_is_read(settings, message):
    with pytest.raises(SmecError, match=message):
        make_compressor("dive", (16,), **settings)


def test_dive_is_supervised_only(synthetic):
    data, _, _ = synthetic
    with pytest.raises(SmecError, match="dive is supervised only"):
        make_compressor("dive", (16,), supervised=False, **FAST).fit(data)
