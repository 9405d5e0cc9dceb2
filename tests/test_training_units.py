"""Unit checks of the training parts: losses, S-XBM memory, dimension selection, stage chains."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from smec_index.training.chain import Stage, StageTree
from smec_index.training.losses import RankLoss, SimilarityPreservationLoss
from smec_index.training.memory import CrossBatchMemory, nearest_keys
from smec_index.training.selection import (
    AdaptiveDimensionSelector,
    TruncationSelector,
    achievement_rate,
    ware_importance,
)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _unit(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x, dim=-1)


def _low_rank(n: int, dim: int, rank: int, seed: int = 0) -> np.ndarray:
    """Rows near a ``rank``-dim subspace with distinct variances along it, plus small noise."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    scales = np.linspace(4.0, 1.0, rank)
    latent = rng.standard_normal((n, rank)) * scales
    x = latent @ basis[:, :rank].T + 0.05 * rng.standard_normal((n, dim))
    return x.astype(np.float32)


# -- RankLoss --------------------------------------------------------------------------------
def _rank_loss_reference(q: torch.Tensor, d: torch.Tensor, y: torch.Tensor, scale: float) -> float:
    """SMEC eq. 8 written as plain loops over every pair with y_ij > y_ik (weighted mean)."""
    s = (q @ d.T).double()
    num = den = 0.0
    for i in range(y.shape[0]):
        for j in range(y.shape[1]):
            for k in range(y.shape[1]):
                if y[i, j] > y[i, k]:
                    w = float(y[i, j] - y[i, k])
                    num += w * math.log1p(math.exp(scale * float(s[i, k] - s[i, j])))
                    den += w
    return num / den


def test_rank_loss_near_zero_when_positive_far_above_negatives() -> None:
    e = torch.eye(4)
    queries = e[:1]
    docs = torch.stack([e[0], e[1], -e[0]])  # cosines 1, 0, -1
    labels = torch.tensor([[1.0, 0.0, 0.0]])
    good = RankLoss(scale=20.0)(queries, docs, labels)
    assert 0 <= good.item() < 1e-6
    reversed_labels = torch.tensor([[0.0, 0.0, 1.0]])
    bad = RankLoss(scale=20.0)(queries, docs, reversed_labels)
    # Positive at cosine -1: pairs against 1 and 0 give softplus(40) and softplus(20).
    assert bad.item() == pytest.approx((F.softplus(torch.tensor(40.0)).item() + 20.0) / 2, rel=1e-4)
    assert bad.item() > 1e6 * good.item()


def test_rank_loss_weights_pairs_by_label_difference() -> None:
    q = _unit(torch.randn(1, 5))
    d = _unit(torch.randn(3, 5))
    s = (q @ d.T)[0] * 3.0
    labels = torch.tensor([[2.0, 1.0, 0.0]])
    # Pairs (0,1) weight 1, (0,2) weight 2, (1,2) weight 1.
    by_hand = (
        1 * F.softplus(s[1] - s[0]) + 2 * F.softplus(s[2] - s[0]) + 1 * F.softplus(s[2] - s[1])
    ) / 4
    got = RankLoss(scale=3.0)(q, d, labels)
    assert got.item() == pytest.approx(by_hand.item(), rel=1e-5)
    flat = RankLoss(scale=3.0)(q, d, torch.tensor([[1.0, 1.0, 0.0]]))
    assert flat.item() == pytest.approx(
        ((F.softplus(s[2] - s[0]) + F.softplus(s[2] - s[1])) / 2).item(), rel=1e-5
    )
    assert flat.item() != pytest.approx(got.item(), rel=1e-3)


def test_rank_loss_matches_pairwise_reference_on_random_batch() -> None:
    rng = np.random.default_rng(0)
    q = _unit(torch.randn(4, 6))
    d = _unit(torch.randn(7, 6))
    labels = torch.from_numpy(rng.integers(0, 3, size=(4, 7)).astype(np.float32))
    labels[0] = 0
    labels[0, 2] = 1  # one query with a single positive, others with several
    got = RankLoss(scale=5.0)(q, d, labels).item()
    assert got == pytest.approx(_rank_loss_reference(q, d, labels, 5.0), rel=1e-5)


def test_rank_loss_leaves_out_pairs_labelled_minus_one() -> None:
    """-1 marks a judged document not drawn this step: no pair involves it, so the loss
    equals the loss without that column."""
    q = _unit(torch.randn(2, 6))
    d = _unit(torch.randn(5, 6))
    labels = torch.tensor([[2.0, -1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 0.0, -1.0]])
    keep = [[0, 2, 3, 4], [0, 1, 2, 3]]
    num = den = 0.0
    for i, columns in enumerate(keep):
        part, weight = RankLoss(scale=4.0).sums(
            q[i : i + 1], d[columns], labels[i : i + 1, columns]
        )
        num, den = num + part.item(), den + weight.item()
    assert RankLoss(scale=4.0)(q, d, labels).item() == pytest.approx(num / den, rel=1e-5)


def test_capped_positives_bound_the_batch_and_never_become_negatives() -> None:
    """A query judged relevant to 500 documents brings at most ``max_positives`` of them;
    its other judged documents among the candidates are -1 (left out), not 0 (negative);
    the validation groups keep queries x positives x candidates under the budget."""
    from smec_index.training.examples import QuerySet

    judged = [{d: 1 + d % 2 for d in range(500)}, {3: 1, 700: 2}, {701: 1}]
    negatives = torch.tensor([[600, 601], [0, 602], [1, 603]])
    queries = QuerySet(torch.tensor([1000, 1001, 1002]), judged, negatives)
    generator = torch.Generator().manual_seed(0)
    _, docs, labels = queries.batch(torch.arange(3), 8, generator)
    column = {int(d): c for c, d in enumerate(docs)}
    assert int((labels[0] > 0).sum()) == 8 and len(docs) <= 8 + 2 + 6 + 2
    for doc in (0, 1, 3):  # judged by query 0, candidates through the other queries
        if doc in column and labels[0, column[doc]] <= 0:
            assert labels[0, column[doc]] == -1.0
    assert labels[0, column[600]] == 0.0 and labels[1, column[700]] == 2.0
    _, _, again = queries.batch(torch.arange(3), 8)  # no generator: the most relevant ones
    assert int((again[0] == 2).sum()) == 8
    _, everything, full = queries.batch(torch.arange(3))  # no cap: every judged document
    assert int((full[0] > 0).sum()) == 500 and len(everything) > 500
    groups = queries.chunks(8, budget=200)
    assert sorted(int(i) for g in groups for i in g) == [0, 1, 2] and len(groups) > 1
    assert len(queries.chunks(8)) == 1


def test_rank_loss_gradient_moves_positive_up() -> None:
    q = _unit(torch.randn(1, 4))
    d = _unit(torch.randn(2, 4)).requires_grad_(True)
    RankLoss(scale=10.0)(q, d, torch.tensor([[1.0, 0.0]])).backward()
    # Descending the gradient raises the positive's score and lowers the negative's.
    assert (d.grad[0] @ q[0]).item() < 0 < (d.grad[1] @ q[0]).item()


@pytest.mark.parametrize("scale", [0.0, -1.0])
def test_rank_loss_rejects_non_positive_scale(scale: float) -> None:
    with pytest.raises(ValueError, match="scale"):
        RankLoss(scale=scale)


def test_rank_loss_config() -> None:
    assert RankLoss(scale=7.5).get_config_dict() == {"scale": 7.5, "margin": 0.0}


def test_rank_loss_with_a_margin_is_a_hinge_that_stops_once_pairs_are_apart() -> None:
    """DIVE's self-limiting form: zero loss and gradient for a pair ranked right by the
    margin, ``scale * (margin - gap)`` for one that is not."""
    e = torch.eye(4)
    docs = torch.stack([e[0], _unit(e[0] + e[1]), -e[0]])  # cosines 1, 0.707, -1
    queries = e[:1].clone().requires_grad_(True)
    apart = RankLoss(scale=10.0, margin=0.2)(queries, docs, torch.tensor([[1.0, -1.0, 0.0]]))
    apart.backward()
    assert apart.item() == 0 and float(queries.grad.abs().sum()) == 0
    close = RankLoss(scale=10.0, margin=0.5)(queries, docs, torch.tensor([[1.0, 0.0, -1.0]]))
    assert close.item() == pytest.approx(10.0 * (0.5 - (1 - 2**-0.5)), rel=1e-5)
    with pytest.raises(ValueError, match="margin must be >= 0"):
        RankLoss(margin=-0.1)


# -- SimilarityPreservationLoss --------------------------------------------------------------
def test_similarity_preservation_zero_when_unchanged() -> None:
    anchors = _unit(torch.randn(3, 8))
    neighbours = _unit(torch.randn(3, 4, 8))
    loss = SimilarityPreservationLoss()(anchors, neighbours, anchors.clone(), neighbours.clone())
    assert loss.item() == pytest.approx(0.0, abs=1e-7)


def test_similarity_preservation_by_hand() -> None:
    e = torch.eye(3)
    anchors = e[:1]  # (1, 3)
    neighbours = torch.stack([e[0], e[1]])[None]  # cosines 1 and 0
    squeezed = torch.tensor([[1.0, 0.0]])
    squeezed_neighbours = _unit(torch.tensor([[[0.0, 1.0], [1.0, 1.0]]]))  # cosines 0, 1/sqrt2
    loss = SimilarityPreservationLoss()(anchors, neighbours, squeezed, squeezed_neighbours)
    assert loss.item() == pytest.approx((1.0 + 1 / math.sqrt(2)) / 2, rel=1e-6)


# -- CrossBatchMemory / nearest_keys ---------------------------------------------------------
def test_memory_fifo_overwrites_oldest() -> None:
    memory = CrossBatchMemory(size=3, dim=2)
    assert len(memory) == 0
    memory.enqueue(torch.tensor([[0.0, 0.0], [1.0, 1.0]]), torch.tensor([0, 1]))
    assert len(memory) == 2
    memory.enqueue(torch.tensor([[2.0, 2.0], [3.0, 3.0]]), torch.tensor([2, 3]))
    assert len(memory) == 3
    assert memory.keys.tolist() == [3, 1, 2]
    assert memory.features[:, 0].tolist() == [3.0, 1.0, 2.0]
    memory.enqueue(torch.tensor([[4.0, 4.0]]), torch.tensor([4]))
    assert memory.keys.tolist() == [3, 4, 2]
    assert len(memory) == 3


def test_memory_batch_larger_than_size_keeps_newest() -> None:
    memory = CrossBatchMemory(size=3, dim=1)
    memory.enqueue(torch.arange(5.0)[:, None], torch.arange(10, 15))
    assert sorted(memory.keys.tolist()) == [12, 13, 14]
    assert sorted(memory.features[:, 0].tolist()) == [2.0, 3.0, 4.0]
    memory.enqueue(torch.tensor([[9.0]]), torch.tensor([99]))
    assert 12 not in memory.keys.tolist() and 99 in memory.keys.tolist()


def test_memory_enqueue_detaches() -> None:
    memory = CrossBatchMemory(size=2, dim=2)
    memory.enqueue(torch.ones(1, 2, requires_grad=True), torch.tensor([0]))
    assert not memory.features.requires_grad


def test_memory_never_returns_own_key_and_caps_k() -> None:
    vectors = _unit(torch.randn(6, 4))
    keys = torch.arange(100, 106)
    memory = CrossBatchMemory(size=8, dim=4)
    memory.enqueue(vectors, keys)
    got = memory.neighbours(vectors, keys, k=3)
    assert got.shape == (6, 3)
    for row, own in zip(got.tolist(), keys.tolist(), strict=True):
        assert own not in row and len(set(row)) == 3
    capped = memory.neighbours(vectors, keys, k=50)
    assert capped.shape == (6, 5)
    for row, own in zip(capped.tolist(), keys.tolist(), strict=True):
        assert sorted(row) == sorted(set(keys.tolist()) - {own})


def test_memory_empty_or_single_gives_no_neighbours() -> None:
    memory = CrossBatchMemory(size=4, dim=2)
    anchors = _unit(torch.randn(3, 2))
    assert memory.neighbours(anchors, torch.arange(3), k=5).shape == (3, 0)
    memory.enqueue(anchors[:1], torch.tensor([0]))
    assert memory.neighbours(anchors, torch.arange(3), k=5).shape == (3, 0)


def test_memory_rejects_non_positive_size() -> None:
    with pytest.raises(ValueError, match="positive"):
        CrossBatchMemory(size=0, dim=4)


def test_memory_with_repeated_keys_never_returns_own_key() -> None:
    memory = CrossBatchMemory(size=4, dim=2)
    a, b = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    memory.enqueue(torch.cat([a, b]), torch.tensor([0, 1]))
    memory.enqueue(a, torch.tensor([0]))  # the same sample seen again in a later batch
    got = memory.neighbours(a, torch.tensor([0]), k=5)
    assert 0 not in got.tolist()[0]


def test_nearest_keys_orders_by_similarity() -> None:
    angles = torch.tensor([0.0, 0.3, 1.0, 2.0, 3.0])
    pool = torch.stack([angles.cos(), angles.sin()], dim=1)
    pool_keys = torch.tensor([10, 11, 12, 13, 14])
    anchors = pool[[0, 3]]
    got = nearest_keys(anchors, torch.tensor([10, 13]), pool, pool_keys, k=2)
    assert got.tolist() == [[11, 12], [14, 12]]


def test_nearest_keys_anchor_outside_pool() -> None:
    pool = torch.eye(3)
    anchors = _unit(torch.tensor([[1.0, 0.5, 0.0]]))
    got = nearest_keys(anchors, torch.tensor([-5]), pool, torch.tensor([0, 1, 2]), k=2)
    assert got.tolist() == [[0, 1]]


# -- dimension selection ---------------------------------------------------------------------
def test_ads_eval_mask_is_top_k_of_logits() -> None:
    logits = torch.tensor([0.1, 3.0, -1.0, 2.0, 0.5, 2.5])
    ads = AdaptiveDimensionSelector(6, 3, init_logits=logits).eval()
    mask = ads.mask()
    assert mask.tolist() == [0.0, 1.0, 0.0, 1.0, 0.0, 1.0]
    assert torch.equal(ads.mask(), mask)  # no noise at inference
    assert ads.indices().tolist() == [1, 3, 5]


def test_ads_training_mask_is_hard_forward_soft_backward() -> None:
    ads = AdaptiveDimensionSelector(10, 4, init_logits=torch.randn(10)).train()
    mask = ads.mask()
    kept = mask.detach() != 0
    assert int(kept.sum()) == 4
    torch.testing.assert_close(mask.detach()[kept], torch.ones(4), rtol=0, atol=1e-6)
    assert torch.all(mask.detach()[~kept] == 0)
    weights = torch.randn(10)
    (mask * weights).sum().backward()
    assert ads.logits.grad is not None
    assert ads.logits.grad.abs().sum().item() > 0


def test_ads_training_mask_samples_and_commits() -> None:
    ads = AdaptiveDimensionSelector(8, 3).train()
    draws = {tuple(ads.mask().detach().nonzero().squeeze(1).tolist()) for _ in range(30)}
    assert len(draws) > 1  # uniform logits: Gumbel noise picks different dims
    assert all(len(d) == 3 for d in draws)
    peaked = torch.full((8,), -50.0)
    peaked[[2, 5, 7]] = 50.0
    ads = AdaptiveDimensionSelector(8, 3, init_logits=peaked).train()
    for _ in range(10):
        assert ads.mask().detach().nonzero().squeeze(1).tolist() == [2, 5, 7]


@pytest.mark.parametrize("out_dim", [0, 7])
def test_selectors_reject_bad_out_dim(out_dim: int) -> None:
    with pytest.raises(ValueError, match="cannot keep"):
        AdaptiveDimensionSelector(6, out_dim)
    with pytest.raises(ValueError, match="cannot keep"):
        TruncationSelector(6, out_dim)


def test_ads_rejects_wrong_init_shape() -> None:
    with pytest.raises(ValueError, match="init_logits"):
        AdaptiveDimensionSelector(6, 2, init_logits=torch.zeros(5))


def test_truncation_selector_keeps_leading_dims() -> None:
    selector = TruncationSelector(5, 2)
    assert selector.mask().tolist() == [1.0, 1.0, 0.0, 0.0, 0.0]
    assert selector.indices().tolist() == [0, 1]


def test_achievement_rate() -> None:
    importance = torch.tensor([0.1, 0.9, 0.5, 0.3])
    assert achievement_rate([2, 1], importance) == 1.0
    assert achievement_rate([1, 3], importance) == 0.5
    assert achievement_rate([0, 3], importance) == 0.0
    assert achievement_rate([1, 2, 3], importance) == 1.0


def test_ware_importance_finds_the_dimension_carrying_similarity() -> None:
    rng = np.random.default_rng(0)
    vectors = 0.05 * rng.standard_normal((200, 8))
    vectors[:, 5] += 1.0  # every cosine comes from dimension 5
    vectors = torch.from_numpy(vectors.astype(np.float32))
    importance = ware_importance(vectors, pairs=2000, seed=0)
    assert importance.shape == (8,)
    assert int(importance.argmax()) == 5
    others = importance[torch.arange(8) != 5]
    assert importance[5].item() > 10 * others.max().item()
    torch.testing.assert_close(importance, ware_importance(vectors, pairs=2000, seed=0))


# -- stages and their exported matrices ------------------------------------------------------
def test_zero_adapter_with_truncation_is_identity_columns() -> None:
    tree = StageTree(8)
    stage = tree.add(Stage(8, 3, adapter=True, ads=False))
    expected = np.eye(8, dtype=np.float32)[:, :3]
    np.testing.assert_array_equal(stage.matrix(), expected)
    np.testing.assert_array_equal(tree.projection(3), expected)
    x = torch.randn(4, 8)
    h, _, y = stage.eval()(x)
    torch.testing.assert_close(h, x)
    torch.testing.assert_close(y, x[:, :3])


def _random_chain() -> StageTree:
    tree = StageTree(8)
    for parent, dim in [(8, 6), (6, 3)]:
        stage = tree.add(Stage(parent, dim))
        with torch.no_grad():
            stage.adapter.weight.normal_(std=0.2)
            stage.selector.logits.normal_()
    return tree


def test_chain_projection_is_product_and_matches_forward() -> None:
    tree = _random_chain().eval()
    assert tree.dims == [6, 3]
    assert [s.dim for s in tree.path(3)] == [6, 3]
    first, second = tree.stage(6), tree.stage(3)
    assert first.matrix().shape == (8, 6) and second.matrix().shape == (6, 3)
    np.testing.assert_allclose(
        tree.projection(3), first.matrix() @ second.matrix(), rtol=1e-6, atol=1e-6
    )
    x = torch.randn(5, 8)
    with torch.no_grad():
        _, _, y6 = first(x)
        _, _, y3 = second(y6)
    np.testing.assert_allclose(y6.numpy(), x.numpy() @ tree.projection(6), atol=1e-5)
    np.testing.assert_allclose(y3.numpy(), x.numpy() @ tree.projection(3), atol=1e-5)
    # The projection is not a plain column selection: the adapters did something.
    assert not np.allclose(tree.projection(3), np.eye(8)[:, first.selector.indices()][:, :3])


def test_training_forward_keeps_dim_columns() -> None:
    stage = Stage(8, 3).train()
    x = torch.randn(4, 8)
    h, masked, y = stage(x)
    assert h.shape == (4, 8) and masked.shape == (4, 8) and y.shape == (4, 3)
    # masked holds the kept coordinates and zeros: same cosines as y.
    assert int((masked.detach().abs().sum(0) > 0).sum()) == 3
    cos = torch.nn.functional.cosine_similarity
    torch.testing.assert_close(cos(masked[:1], masked[1:]), cos(y[:1], y[1:]))


def test_unselected_dims_get_a_gradient() -> None:
    """Straight-through over the full masked vector: every logit learns, kept or not."""
    torch.manual_seed(0)
    stage = Stage(8, 3, adapter=False).train()
    _, masked, _ = stage(torch.randn(16, 8))
    target = torch.randn(16, 8)
    (masked * target).sum().backward()
    kept = set(torch.nonzero(masked.detach().abs().sum(0) > 0).squeeze(1).tolist())
    grads = stage.selector.logits.grad
    assert grads is not None and all(grads[i] != 0 for i in range(8) if i not in kept)


def test_tree_rejects_unknown_parent() -> None:
    tree = StageTree(8)
    with pytest.raises(ValueError, match="no dim 6"):
        tree.add(Stage(6, 3))


def test_state_round_trip_reproduces_projections() -> None:
    tree = _random_chain()
    tree.add(Stage(6, 2, adapter=False, ads=False))  # a branch off dim 6, nothing learned
    state = {name: array.copy() for name, array in tree.state_tensors().items()}
    assert set(state) == {"stage.6.adapter", "stage.6.logits", "stage.3.adapter", "stage.3.logits"}
    restored = StageTree.from_state(8, dict(tree.parents), state)
    assert restored.parents == tree.parents
    for dim in tree.dims:
        np.testing.assert_array_equal(restored.projection(dim), tree.projection(dim))
    assert restored.stage(2).adapter is None
    assert isinstance(restored.stage(2).selector, TruncationSelector)


def test_init_pca_gives_orthonormal_columns_by_variance() -> None:
    x = torch.from_numpy(_low_rank(400, 6, rank=4))
    stage = Stage(6, 3)
    stage.init_pca(x)
    matrix = stage.matrix().astype(np.float64)
    np.testing.assert_allclose(matrix.T @ matrix, np.eye(3), atol=1e-5)
    assert stage.selector.indices().tolist() == [0, 1, 2]
    centred = x.numpy().astype(np.float64) - x.numpy().mean(0)
    variances = (centred @ matrix).var(axis=0, ddof=1)
    assert np.all(np.diff(variances) < 0)
    eigenvalues = np.linalg.eigvalsh(np.cov(centred.T))[::-1]
    np.testing.assert_allclose(variances, eigenvalues[:3], rtol=1e-4)
    # The whole adapter is a rotation: I + W^T orthogonal.
    full = np.eye(6) + stage.adapter.weight.detach().numpy().T
    np.testing.assert_allclose(full.T @ full, np.eye(6), atol=1e-5)


def test_tree_init_pca_chain_stays_orthonormal() -> None:
    x = torch.from_numpy(_low_rank(300, 8, rank=5, seed=1))
    tree = StageTree(8)
    tree.add(Stage(8, 5))
    tree.add(Stage(5, 2))
    tree.initialise(x, [5, 2], "pca")
    projection = tree.projection(2).astype(np.float64)
    np.testing.assert_allclose(projection.T @ projection, np.eye(2), atol=1e-5)
    centred = x.numpy().astype(np.float64) - x.numpy().mean(0)
    eigenvalues = np.linalg.eigvalsh(np.cov(centred.T))[::-1]
    np.testing.assert_allclose((centred @ projection).var(0, ddof=1), eigenvalues[:2], rtol=1e-4)


def test_initialise_leaves_unlisted_stages_alone() -> None:
    x = torch.from_numpy(_low_rank(300, 8, rank=5, seed=2))
    tree = StageTree(8)
    tree.add(Stage(8, 5))
    tree.add(Stage(5, 2))
    before = {k: v.copy() for k, v in tree.state_tensors().items()}
    tree.initialise(x, [2], "pca")
    after = tree.state_tensors()
    np.testing.assert_array_equal(after["stage.5.adapter"], before["stage.5.adapter"])
    np.testing.assert_array_equal(after["stage.5.logits"], before["stage.5.logits"])
    assert not np.array_equal(after["stage.2.adapter"], before["stage.2.adapter"])


# -- settings: every value checked once, unknown names refused (issue "no silent wrong answer")


def _config_error(**values: object) -> str:
    from smec_index.errors import SmecError
    from smec_index.training.config import TrainConfig

    with pytest.raises(SmecError) as caught:
        TrainConfig.from_dict(values)
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("key", "suggestion"),
    [
        ("alpah", "'alpha'"),
        ("epochs", "'max_epochs'"),
        ("memory-size", "'memory_size'"),
        ("neighbors", "'neighbours'"),
        ("batchsize", "'batch_size'"),
    ],
)
def test_config_unknown_key_names_the_closest_setting(key: str, suggestion: str) -> None:
    message = _config_error(**{key: 3})
    assert f"unknown training setting {key!r}" in message
    assert f"did you mean {suggestion}?" in message


def test_config_unknown_key_without_a_near_name_lists_the_known_ones() -> None:
    assert "known: ads, alpha, batch_size" in _config_error(colour="red")


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"alpha": math.inf}, "alpha (--alpha) = inf is invalid: must be a finite number >= 0"),
        ({"alpha": math.nan}, "alpha (--alpha) = nan"),
        ({"alpha": -0.5}, "alpha (--alpha) = -0.5"),
        ({"lr": 0.0}, "lr = 0.0 is invalid: must be a finite number > 0"),
        ({"lr": math.inf}, "lr = inf"),
        ({"logits_lr": -1.0}, "logits_lr = -1.0"),
        (
            {"weight_decay": -1e-4},
            "weight_decay = -0.0001 is invalid: must be a finite number >= 0",
        ),
        ({"weight_decay": math.inf}, "weight_decay = inf"),
        ({"scale": 0}, "scale = 0 is invalid"),
        ({"scale": -math.inf}, "scale = -inf"),
        ({"tau_start": 0.0}, "tau_start = 0.0"),
        ({"tau_end": 0.0}, "tau_end = 0.0"),
        ({"tau_end": 2.0}, "tau_end = 2.0 is invalid: must be <= tau_start"),
        ({"tau_start": math.nan}, "tau_start = nan"),
        (
            {"val_fraction": 0.0},
            "val_fraction = 0.0 is invalid: must be a finite number in (0, 0.5]",
        ),
        ({"val_fraction": 0.9}, "val_fraction = 0.9"),
        ({"max_epochs": 0}, "max_epochs (--epochs) = 0 is invalid: must be an integer from 1"),
        ({"max_epochs": 2.5}, "max_epochs (--epochs) = 2.5"),
        ({"max_epochs": True}, "max_epochs (--epochs) = True"),
        ({"max_epochs": "3"}, "max_epochs (--epochs) = '3'"),
        ({"patience": 0}, "patience = 0 is invalid: must be an integer from 1 to"),
        ({"batch_size": 1}, "batch_size = 1 is invalid: must be an integer from 2 to"),
        ({"hard_negatives": -1}, "hard_negatives = -1"),
        ({"memory_size": 1}, "memory_size (--memory-size) = 1 is invalid: must be an integer"),
        ({"neighbours": 0}, "neighbours = 0"),
        ({"seed": -1}, "seed (--seed) = -1 is invalid: must be an integer from 0 to 4,294,967,295"),
        ({"seed": 2**64}, "seed (--seed) = 18446744073709551616 is invalid: must be an integer "
                            "from 0 to 4,294,967,295"),
        ({"max_epochs": 2**63}, "must be an integer from 1 to 2,147,483,647"),
        ({"sequential": "no"}, "sequential = 'no' is invalid: must be true or false"),
        ({"ads": 1}, "ads = 1 is invalid: must be true or false"),
        ({"xbm": None}, "xbm = None"),
        ({"supervised": "yes"}, "supervised = 'yes'"),
        ({"init": "random"}, "init (--init) = 'random' is invalid: must be one of pca, identity"),
        ({"device": "gpu"}, "device (--device) = 'gpu' is invalid: must be one of auto, cpu, cuda"),
    ],
)
def test_config_refuses_every_bad_value(values: dict, fragment: str) -> None:
    message = _config_error(**values)
    assert message.startswith("training setting ")
    assert fragment in message
    assert "(default " in message  # says what a sensible value looks like


def test_config_normalises_numbers_and_keeps_defaults() -> None:
    from smec_index.training.config import TrainConfig

    config = TrainConfig.from_dict(
        {
            "alpha": 1,
            "max_epochs": np.int64(3),
            "sequential": np.bool_(False),
            "lr": np.float32(0.5),
        }
    )
    assert config.alpha == 1.0 and type(config.alpha) is float
    assert config.max_epochs == 3 and type(config.max_epochs) is int
    assert config.sequential is False and config.lr == 0.5 and type(config.lr) is float
    assert TrainConfig().to_dict() == TrainConfig.from_dict(TrainConfig().to_dict()).to_dict()
    assert config.updated(alpha=0.25).alpha == 0.25
    with pytest.raises(ValueError, match="alpha"):
        config.updated(alpha=math.inf)


def test_config_refuses_a_non_mapping() -> None:
    from smec_index.errors import SmecError
    from smec_index.training.config import TrainConfig

    with pytest.raises(SmecError, match="must be a mapping"):
        TrainConfig.from_dict([("alpha", 1.0)])  # type: ignore[arg-type]


def test_make_compressor_refuses_typos_before_training() -> None:
    """The issue's example: epochs=3, alpah=5 trained 25 epochs with alpha 0.1."""
    from smec_index.compressors import make_compressor
    from smec_index.errors import SmecError

    with pytest.raises(
        SmecError, match=r"unknown smec setting 'epochs'; did you mean 'max_epochs'"
    ):
        make_compressor("smec", (16, 8), epochs=3, alpah=5)
    with pytest.raises(SmecError, match=r"unknown smec setting 'alpah'; did you mean 'alpha'"):
        make_compressor("smec", (16, 8), max_epochs=3, alpah=5)
    with pytest.raises(SmecError, match="unknown mrl setting 'sequentail'"):
        make_compressor("mrl", (16, 8), sequentail=True)
    with pytest.raises(SmecError, match="did you mean 'reconstruction'"):
        make_compressor("search-adaptor", (16,), reconstruktion=0.5)
    with pytest.raises(SmecError, match="reconstruction = inf is invalid"):
        make_compressor("search-adaptor", (16,), reconstruction=math.inf)
    with pytest.raises(SmecError, match="alpha .* = inf is invalid"):
        make_compressor("matryoshka-adaptor", (16,), alpha=math.inf)


@pytest.mark.parametrize("method", ["pca", "truncate"])
def test_training_free_methods_check_settings_they_ignore(method: str) -> None:
    """Loops pass one set of settings to every method: names and values are still checked."""
    from smec_index.compressors import make_compressor
    from smec_index.compressors.registry import compressor_class
    from smec_index.errors import SmecError

    compressor = make_compressor(method, (16, 8), max_epochs=4, progress=False, seed=3)
    assert compressor.seed == 3 and compressor.settings == {}
    with pytest.raises(SmecError, match=f"unknown {method} setting 'alpah'; did you mean 'alpha'"):
        make_compressor(method, (16, 8), alpah=5)
    with pytest.raises(SmecError, match="max_epochs .* = 0 is invalid"):
        make_compressor(method, (16, 8), max_epochs=0)
    # Called directly, a training-free class takes no settings at all.
    with pytest.raises(SmecError, match=f"{method} is fitted without training.*drop alpha"):
        compressor_class(method)((16, 8), alpha=0.5)


def _retrieval(n_docs: int, dim: int = 16, n_queries: int = 8, seed: int = 0):
    from smec_index.data import Embeddings, RetrievalData

    rng = np.random.default_rng(seed)
    corpus = rng.standard_normal((n_docs, dim)).astype(np.float32)
    queries = rng.standard_normal((n_queries, dim)).astype(np.float32)
    data = RetrievalData(
        Embeddings([f"d{i}" for i in range(n_docs)], corpus),
        Embeddings([f"q{i}" for i in range(n_queries)], queries),
    )
    qrels = {f"q{i}": {f"d{i % max(n_docs, 1)}": 1} for i in range(n_queries)} if n_docs else {}
    return data, qrels


@pytest.mark.parametrize(
    ("n_docs", "dims", "fragment"),
    [
        (0, (4,), "pca needs at least 2 documents to measure variance; the corpus has 0"),
        (1, (4,), "pca needs at least 2 documents to measure variance; the corpus has 1"),
        (5, (8, 4), "pca to 8 dims needs at least 9 documents"),
        (8, (8,), "the corpus has 8: use dims <= 7 or a larger corpus"),
    ],
)
def test_pca_refuses_a_corpus_too_small(n_docs: int, dims: tuple, fragment: str) -> None:
    """Before: one document gave NaN explained variance; n <= d gave arbitrary components."""
    from smec_index.compressors import make_compressor
    from smec_index.errors import SmecError

    data, _ = _retrieval(n_docs)
    with pytest.raises(SmecError, match=re.escape(fragment)):
        make_compressor("pca", dims).fit(data)


def test_pca_fits_with_just_enough_documents() -> None:
    from smec_index.compressors import make_compressor

    data, _ = _retrieval(9)
    pca = make_compressor("pca", (8, 4)).fit(data)
    assert all(math.isfinite(v) for v in pca.info["explained_variance"].values())


def test_pca_refuses_identical_documents() -> None:
    from smec_index.compressors import make_compressor
    from smec_index.data import Embeddings, RetrievalData
    from smec_index.errors import SmecError

    same = np.ones((20, 16), np.float32)
    data = RetrievalData(
        Embeddings([f"d{i}" for i in range(20)], same), Embeddings(["q"], same[:1])
    )
    with pytest.raises(SmecError, match="no variance"):
        make_compressor("pca", (4,)).fit(data)


def test_truncate_refuses_an_empty_corpus() -> None:
    from smec_index.compressors import make_compressor
    from smec_index.errors import SmecError

    data, _ = _retrieval(0)
    with pytest.raises(SmecError, match="truncate: the corpus has no documents"):
        make_compressor("truncate", (4,)).fit(data)


@pytest.mark.parametrize(
    ("n_docs", "dims", "supervised", "fragment"),
    [
        (1, (8,), False, "smec to 8 dims needs at least 9 documents"),
        (5, (8, 4), True, "the corpus has 5: use dims <= 4 or a larger corpus"),
        (2, (1,), False, "holds out 1 of the 2 documents and needs at least 2 left"),
        (20, (8,), True, "mines 30 hard negatives per query besides up to 1 relevant"),
    ],
)
def test_trained_methods_refuse_a_corpus_too_small(
    n_docs: int, dims: tuple, supervised: bool, fragment: str
) -> None:
    """Before: NaN ADS logits (one document), a crash in hard-negative mining, or an
    artifact that was its initialisation reported as trained (nothing left to step on)."""
    from smec_index.compressors import make_compressor
    from smec_index.errors import SmecError

    data, qrels = _retrieval(n_docs)
    smec = make_compressor(
        "smec", dims, supervised=supervised, init="identity", max_epochs=1, progress=False
    )
    with pytest.raises(SmecError, match=re.escape(fragment)):
        smec.fit(data, qrels if supervised else None)


def test_cuda_without_a_gpu_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from smec_index.device import resolve_device
    from smec_index.errors import SmecError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SmecError) as caught:
        resolve_device("cuda")
    assert str(caught.value) == "CUDA requested but torch sees no GPU; use --device cpu or auto"
    assert resolve_device("auto").type == "cpu"


def _saved_smec(tmp_path, **settings):
    """A SMEC artifact with identity-like projections (no training needed)."""
    from smec_index.compressors import make_compressor

    smec = make_compressor("smec", (8, 4), progress=False, **settings)
    smec.input_dim = 16
    eye = np.eye(16, dtype=np.float32)
    smec.projections = {8: eye[:, :8].copy(), 4: eye[:, :4].copy()}
    smec.extra = {
        "stage.8.adapter": np.zeros((16, 16), np.float32),
        "stage.4.adapter": np.zeros((8, 8), np.float32),
        "stage.8.logits": np.zeros(16, np.float32),  # ADS: each stage's selection logits
        "stage.4.logits": np.zeros(8, np.float32),
    }
    smec.info = {"parents": {"8": 16, "4": 8}}
    return smec


def test_save_refuses_non_finite_stage_tensors(tmp_path) -> None:
    """Projections were checked, SMEC's stage weights (used to extend) were not."""
    from smec_index.errors import SmecError

    smec = _saved_smec(tmp_path)
    smec.extra["stage.4.adapter"][0, 0] = np.nan
    with pytest.raises(SmecError, match="stage.4.adapter holds NaN or inf, so nothing was saved"):
        smec.save(tmp_path / "art")
    assert not (tmp_path / "art").exists()


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("alpah", 5, "unknown smec setting 'alpah'; did you mean 'alpha'?"),
        ("alpha", "Infinity", "alpha (--alpha) = inf is invalid"),
        ("sequential", "yes", "sequential = 'yes' is invalid"),
    ],
)
def test_loading_an_artifact_checks_its_settings(tmp_path, key, value, fragment) -> None:
    import json

    from smec_index.compressors import load_compressor
    from smec_index.errors import SmecError

    directory = _saved_smec(tmp_path).save(tmp_path / "art")
    config_path = directory / "config.json"
    text = config_path.read_text()
    config = json.loads(text)
    config["settings"][key] = "@@"
    rendered = json.dumps(value) if value != "Infinity" else "Infinity"
    config_path.write_text(json.dumps(config).replace('"@@"', rendered))
    with pytest.raises(SmecError) as caught:
        load_compressor(directory)
    message = str(caught.value)
    assert message.startswith(f"{directory}/config.json holds a bad setting, fix it or retrain: ")
    assert fragment in message and "\n" not in message


def test_extend_refuses_settings_fixed_by_the_artifact(tmp_path) -> None:
    from smec_index.compressors import load_compressor
    from smec_index.errors import SmecError

    smec = load_compressor(_saved_smec(tmp_path).save(tmp_path / "art"))
    with pytest.raises(SmecError, match="ads is fixed by the smec artifact being extended"):
        smec.check_extend([2], ads=False)
    with pytest.raises(SmecError, match="unknown training setting 'epochs'"):
        smec.check_extend([2], epochs=1)
    with pytest.raises(SmecError, match="alpha .* = inf"):
        smec.check_extend([2], alpha=math.inf)
    new_dims, config = smec.check_extend([2], max_epochs=1, alpha=0.5, seed=4)
    assert new_dims == [2] and (config.max_epochs, config.alpha, config.seed) == (1, 0.5, 4)
    assert smec.train_config.max_epochs == 25  # the artifact's own record is unchanged


def test_extend_trains_new_stages_with_the_given_settings(synthetic) -> None:
    """Before: extend used the artifact's epochs, alpha, device and seed whatever was asked."""
    from smec_index.compressors import make_compressor

    data, train, _ = synthetic
    smec = make_compressor("smec", (16, 8), max_epochs=3, patience=3, progress=False)
    smec.fit(data, train)
    smec.extend(data, train, [4], max_epochs=1, alpha=0.5, seed=2)
    new_stage = [record for record in smec.info["history"] if record["stage"] == "4"]
    assert [r["phase"] for r in new_stage if r["phase"] != "refit"] == ["start", "select"]
    assert smec.info["extended_settings"] == {"max_epochs": 1, "alpha": 0.5, "seed": 2}
    assert smec.train_config.max_epochs == 3 and smec.settings["alpha"] == 0.1


def test_lead_in_stage_only_where_it_was_measured() -> None:
    """SMRL with qrels starts at 2/3 of the input dim (rounded to 8) when every requested dim
    is below it; not without qrels or with a query log (never measured there), not for the
    parallel schedule, not where the corpus cannot span it, and never at or above the input."""
    from smec_index.compressors import make_compressor
    from smec_index.errors import SmecError

    smec = make_compressor("smec", [128, 64, 32])
    assert smec.lead_in_dim(384, 5000, labelled=True) == 256
    assert smec.lead_in_dim(768, 5000, labelled=True) == 512
    assert smec.lead_in_dim(1024, 5000, labelled=True) == 680
    assert smec.lead_in_dim(384, 5000, labelled=False) is None
    assert smec.lead_in_dim(384, 256, labelled=True) is None
    assert smec.lead_in_dim(160, 5000, labelled=True) is None  # 2/3 of 160 is below 128
    assert make_compressor("smec", [256, 64]).lead_in_dim(384, 5000, True) is None
    assert make_compressor("smec", [128], lead_in=0).lead_in_dim(384, 5000, True) is None
    assert make_compressor("smec", [128], lead_in=0.5).lead_in_dim(384, 5000, True) == 192
    assert make_compressor("mrl", [128]).lead_in_dim(384, 5000, True) is None
    with pytest.raises(SmecError, match=r"lead_in \(--lead-in\) = 1.0 is invalid: .* in \[0, 1\)"):
        make_compressor("smec", [128], lead_in=1.0)
