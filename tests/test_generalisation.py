"""The unseen-document check and guard (issue 24): held-out queries whose relevant documents
no training query judges, scored per dim against PCA, and PCA kept where training is worse."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from smec_index.compressors import make_compressor
from smec_index.errors import SmecError
from smec_index.training.chain import StageTree
from smec_index.training.examples import build_table, ndcg_at_10
from smec_index.training.generalisation import MIN_UNSEEN_QUERIES, unseen_check, unseen_queries
from smec_index.training.trainer import Encoder, Trainer


def _shared_qrels(synthetic, per_doc: int):
    """The synthetic train queries, ``per_doc`` of them judging each document."""
    data, train, _ = synthetic
    docs = data.corpus.ids
    return data, {q: {docs[i // per_doc]: 1} for i, q in enumerate(train)}


def test_unseen_queries_are_those_whose_documents_no_training_query_judges(synthetic):
    data, qrels = _shared_qrels(synthetic, per_doc=3)
    table = build_table(data, qrels, hard_negatives=5, val_fraction=0.2, seed=0)
    row_to_doc = {data.corpus.row(d): d for rels in qrels.values() for d in rels}
    train_docs = {row_to_doc[r] for judged in table.train.judged for r in judged}
    val_docs = [[row_to_doc[r] for r in judged] for judged in table.val.judged]
    expected = [i for i, docs in enumerate(val_docs) if not train_docs.intersection(docs)]
    picked = unseen_queries(table)
    assert picked == expected
    # Three queries per document, a fifth held out: a few held-out queries share their
    # document only with other held-out ones, most do not.
    assert 0 < len(picked) < len(table.val)


def _pca(data, dims):
    return make_compressor("pca", dims).fit(data).projections


def test_unseen_check_scores_each_space_and_its_noise(synthetic):
    data, train, _ = synthetic
    table = build_table(data, train, hard_negatives=5, val_fraction=0.2, seed=0)
    assert len(unseen_queries(table)) == len(table.val) == 60  # one document per query
    pca = _pca(data, [16, 8])
    rng = np.random.default_rng(0)
    random = {d: np.linalg.qr(rng.standard_normal((64, 64)))[0][:, :d].astype(np.float32)
              for d in (16, 8)}  # fmt: skip
    same = unseen_check(table, pca, pca)
    assert same["checked"] and same["queries"] == 60
    for check in same["dims"].values():
        assert check["difference"] == 0 and check["noise"] == 0 and not check["worse"]
        assert check["judged_share"] == check["pca_judged_share"]
    worse = unseen_check(table, random, pca)
    queries = table.vectors[table.val.rows]
    corpus = table.vectors[: table.n_corpus]
    for dim, check in worse["dims"].items():
        m = torch.from_numpy(random[dim])
        unit = torch.nn.functional.normalize
        by_hand = ndcg_at_10(unit(queries @ m, dim=1), unit(corpus @ m, dim=1), table.val.judged)
        assert check["trained"] == pytest.approx(by_hand, abs=1e-4)
        assert check["difference"] == pytest.approx(check["trained"] - check["pca"], abs=2e-4)
        assert check["noise"] > 0 and check["worse"]
    full = ndcg_at_10(queries, corpus, table.val.judged)
    assert worse["original"]["ndcg@10"] == pytest.approx(full, abs=1e-4)
    assert 0 <= worse["original"]["judged_share"] <= 1


def test_too_few_unseen_queries_skip_the_check(synthetic):
    """Ten queries per document: no held-out query has a document training never judged."""
    data, qrels = _shared_qrels(synthetic, per_doc=10)
    table = build_table(data, qrels, hard_negatives=5, val_fraction=0.2, seed=0)
    assert len(unseen_queries(table)) < MIN_UNSEEN_QUERIES
    pca = _pca(data, [8])
    assert unseen_check(table, pca, pca) == {"queries": len(unseen_queries(table)),
                                             "checked": False}  # fmt: skip


@pytest.mark.parametrize("guard", [True, False])
def test_the_guard_keeps_pca_where_training_forgot_unseen_documents(synthetic, guard):
    """A trained dim that won on held-out queries but lost on the unseen-document ones keeps
    PCA's projection while the guard is on, and says why; off, it keeps the trained one."""
    data, train, _ = synthetic
    smec = make_compressor("smec", (16,), unseen_guard=guard, progress=False)
    table = build_table(data, train, hard_negatives=5, val_fraction=0.2, seed=0)
    trainer = Trainer(StageTree(64), table, smec.train_config, smec.objective(),
                      torch.device("cpu"), progress=False)  # fmt: skip
    trainer.scores = {16: 1.0}  # beat PCA on every held-out query
    rng = np.random.default_rng(1)
    forgetful = np.linalg.qr(rng.standard_normal((64, 64)))[0][:, :16].astype(np.float32)
    smec.projections = {16: forgetful}
    selection, unseen = smec._against_pca(data, trainer, {16: forgetful})
    assert unseen == {"queries": 60, "checked": True, "guard": guard,
                      "original": unseen["original"]}  # fmt: skip
    chosen = selection[16]
    assert chosen["unseen"]["worse"]
    if guard:
        assert chosen["kept"] == "pca" and chosen["because"] == "unseen-doc"
        np.testing.assert_array_equal(smec.projections[16], _pca(data, [16])[16])
    else:
        assert chosen["kept"] == "trained" and "because" not in chosen
        assert smec.projections[16] is forgetful


# -- the levers measured by `python -m bench.ablations generalise` ------------------------------


def test_a_held_out_part_split_by_documents_shares_none_with_training(synthetic):
    data, qrels = _shared_qrels(synthetic, per_doc=3)
    table = build_table(data, qrels, hard_negatives=5, val_fraction=0.2, seed=0,
                        by_documents=True)  # fmt: skip
    train_docs = {d for judged in table.train.judged for d in judged}
    assert not any(train_docs.intersection(judged) for judged in table.val.judged)
    assert unseen_queries(table) == list(range(len(table.val)))
    # Whole groups of three: at least the share asked for, at most one group more.
    assert 60 <= len(table.val) <= 62 and len(table.val) + len(table.train) == 300


def test_a_split_by_documents_needs_two_groups(synthetic):
    data, train, _ = synthetic
    one_document = {q: {data.corpus.ids[0]: 1} for q in train}
    with pytest.raises(SmecError, match="one group of 300 of 300 queries"):
        build_table(data, one_document, hard_negatives=5, val_fraction=0.2, seed=0,
                    by_documents=True)  # fmt: skip


@pytest.mark.parametrize("setting, value", [("proximal", -1.0), ("rank_margin", -0.1),
                                            ("corpus_anchors", -1), ("val_split", "docs")])
def test_the_levers_settings_are_checked(setting, value):
    with pytest.raises(SmecError, match=setting):
        make_compressor("smec", (16,), **{setting: value})


def test_the_proximal_term_is_the_squared_distance_from_the_start(synthetic):
    data, train, _ = synthetic
    losses = {}
    for weight in (0.0, 2.0):
        smec = make_compressor("smec", (16,), proximal=weight, neighbours=1, lead_in=0)
        table = build_table(data, train, hard_negatives=5, val_fraction=0.2, seed=0)
        tree = smec.build_trees(64)[0][0]
        trainer = Trainer(tree, table, smec.train_config, smec.objective(),
                          torch.device("cpu"), progress=False)  # fmt: skip
        trainer._start([16])
        with torch.no_grad():
            tree.stage(16).adapter.weight.add_(0.01)
        torch.manual_seed(0)
        trainer.generator.manual_seed(0)
        loss = trainer._batch_loss(Encoder(tree, [16], trainer.vectors), torch.arange(8))
        losses[weight] = loss.detach().item()
    assert losses[2.0] - losses[0.0] == pytest.approx(2.0 * 64 * 64 * 0.01**2, rel=1e-3)


def test_corpus_anchors_beyond_the_corpus_train_without_allocating_them(synthetic):
    data, train, _ = synthetic
    smec = make_compressor("smec", (16,), corpus_anchors=10**9, max_epochs=1, lead_in=0,
                           progress=False).fit(data, train)  # fmt: skip
    assert smec.projection(16).shape == (64, 16)


def test_a_split_by_documents_trains_a_group_too_large_to_hold_out(synthetic):
    """One group of 250 queries (NFCorpus has one of 2,567 in 2,590) goes to training; the
    held-out part is made of the small groups, never of (nearly) everything."""
    data, train, _ = synthetic
    docs = data.corpus.ids
    qrels = {q: {docs[0] if i < 250 else docs[i]: 1} for i, q in enumerate(train)}
    table = build_table(data, qrels, hard_negatives=5, val_fraction=0.2, seed=0,
                        by_documents=True)  # fmt: skip
    assert len(table.val) == 50 and len(table.train) == 250
    wide = {q: {docs[0] if i < 280 else docs[i]: 1} for i, q in enumerate(train)}
    with pytest.raises(SmecError, match="one group of 280 of 300 queries"):
        build_table(data, wide, hard_negatives=5, val_fraction=0.2, seed=0, by_documents=True)


@pytest.mark.parametrize("method, setting", [("dive", {"rank_margin": 0.1}),
                                             ("dive", {"proximal": 0.01}),
                                             ("search-adaptor", {"corpus_anchors": 8})])
def test_a_lever_a_method_never_reads_is_refused(method, setting):
    with pytest.raises(SmecError, match="does not apply to"):
        make_compressor(method, (8,), **setting)
    make_compressor(method, (8,), **{name: 0 for name in setting})  # the default: accepted
