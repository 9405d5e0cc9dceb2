"""SMEC's ablations, one command each, each writing raw JSON lines, a table and a PNG.

    python -m bench.ablations gradvar   # SMRL vs parallel: gradient variance per epoch (Fig. 6a)
    python -m bench.ablations ads       # ADS vs truncation at each dim, plus WARE achievement
    python -m bench.ablations table1    # MRL, +SMRL, +ADS, +S-XBM, SMEC (Table 1)
    python -m bench.ablations memory    # S-XBM queue length (Table 3)
    python -m bench.ablations heldout   # each training choice, scored on held-out TRAIN queries
    python -m bench.ablations unseen    # every trained method on held-out and unseen-doc queries
    python -m bench.ablations chain     # dims 128/64/32 through longer chains and a branch
    python -m bench.ablations generalise  # SMEC's levers for documents training never judged

The first four train on SciFact train qrels and report test nDCG@10. ``heldout`` never reads
test: it holds out one train query in five (by a hash of its id), trains the defaults of
``smec-index train --method smec --dims 128,64,32`` and one change at a time on the rest,
and scores nDCG@10 of the held-out queries; it is how the defaults were chosen. ``unseen``
reads train only too: every trained method on the same split, and on its unseen-document
part.
"""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from bench.results import RESULTS_DIR, over_seeds, read_records, write_records
from smec_index.bench.plots import bar_plot, line_plot, markdown_table
from smec_index.compressors import make_compressor
from smec_index.data import RetrievalData, load_retrieval_data
from smec_index.evaluate import evaluate_dims, evaluate_transform
from smec_index.training.chain import StageTree
from smec_index.training.selection import achievement_rate, ware_importance

DIMS = [192, 128, 64, 32]


INIT = {"init": "pca"}
# The paper's ablations and the chain ablation train exactly the chain they name: no lead-in
# stage above it (``TrainConfig.lead_in``; the chain ablation is what it was chosen on).
AS_NAMED = {"lead_in": 0}


def _train(data: RetrievalData, train, dims, **settings: Any):
    return make_compressor("smec", dims, progress=False, **{**INIT, **settings}).fit(data, train)


def gradvar(data, train, test, out: Path, epochs: int) -> str:
    """Figure 6a: variance across mini-batches of the first stage's gradient, per epoch.

    Both runs train the same chain with the same losses for a fixed number of epochs (no
    early stopping, so the curves are comparable); only the schedule differs.
    """
    records = []
    for schedule in ("sequential", "parallel"):
        smec = _train(
            data,
            train,
            DIMS,
            sequential=schedule == "sequential",
            max_epochs=epochs,
            patience=epochs,
            **AS_NAMED,
        )
        first = str(DIMS[0]) if schedule == "sequential" else ",".join(map(str, DIMS))
        for h in smec.info["history"]:
            if h["stage"] == first and h.get("phase") == "select":
                records.append({"ablation": "gradvar", "schedule": schedule, **h})
        scores = evaluate_dims(data, test, smec, DIMS)
        for d in DIMS:
            records.append(
                {"ablation": "gradvar-ndcg", "schedule": schedule, "dim": d, **scores[d]}
            )
    write_records(out, records)
    curves = {
        s: (
            [r["epoch"] + 1 for r in records if r.get("schedule") == s and "epoch" in r],
            [r["grad_variance"] for r in records if r.get("schedule") == s and "epoch" in r],
        )
        for s in ("sequential", "parallel")
    }
    line_plot(
        {"SMRL (sequential)": curves["sequential"], "MRL (parallel)": curves["parallel"]},
        out.with_suffix(".png"),
        f"Gradient variance of the {DATA_LABEL} first-stage adapter ({DIMS[0]}-d)",
        "epoch",
        "variance of the gradient across mini-batches",
        logy=True,
    )
    ndcg = [r for r in records if r["ablation"] == "gradvar-ndcg"]
    lines = ["epoch | sequential | parallel", "---|---|---"]
    for e, (seq, par) in enumerate(
        zip(curves["sequential"][1], curves["parallel"][1], strict=False), 1
    ):
        lines.append(f"{e} | {seq:.3e} | {par:.3e}")
    return (
        "\n".join(lines)
        + "\n\nnDCG@10 (test)\n\n"
        + markdown_table(ndcg, "schedule", "dim", "ndcg@10")
    )


def ads(data, train, test, out: Path, epochs: int) -> str:
    """ADS vs truncation at each dim, and how many chosen dims are WARE-important."""
    records = []
    for selection in ("ads", "truncation"):
        smec = _train(data, train, DIMS, ads=selection == "ads", max_epochs=epochs, **AS_NAMED)
        scores = evaluate_dims(data, test, smec, DIMS)
        tree = StageTree.from_state(
            data.dim, {int(d): p for d, p in smec.info["parents"].items()}, smec.extra
        )
        corpus = torch.from_numpy(data.corpus.take(data.corpus.ids))
        for d in DIMS:
            parent = tree.parents[d]
            inputs = (
                corpus if parent == data.dim else corpus @ torch.from_numpy(tree.projection(parent))
            )
            stage = tree.stage(d)
            adapted = stage.adapt(inputs).detach()
            kept = stage.selector.indices().tolist()
            records.append(
                {
                    "ablation": "ads",
                    "selection": selection,
                    "dim": d,
                    **scores[d],
                    "achievement_rate": achievement_rate(kept, ware_importance(adapted)),
                }
            )
    write_records(out, records)
    bar_plot(
        {str(d): {r["selection"]: r["ndcg@10"] for r in records if r["dim"] == d} for d in DIMS},
        out.with_suffix(".png"),
        f"{DATA_LABEL} test: SMEC with ADS vs truncation",
        "nDCG@10",
    )
    return (
        markdown_table(records, "selection", "dim", "ndcg@10")
        + "\nShare of kept dims among the top-d by WARE importance of the stage input\n\n"
        + markdown_table(records, "selection", "dim", "achievement_rate", fmt="{:.1%}")
    )


LADDER = {
    "MRL": {"sequential": False, "ads": False, "xbm": False},
    "+SMRL": {"sequential": True, "ads": False, "xbm": False},
    "+ADS": {"sequential": False, "ads": True, "xbm": False},
    "+S-XBM": {"sequential": False, "ads": False, "xbm": True},
    "SMEC": {"sequential": True, "ads": True, "xbm": True},
}


def table1(data, train, test, out: Path, epochs: int) -> str:
    records = []
    for row, switches in tqdm(LADDER.items(), desc="table1"):
        scores = evaluate_dims(
            data, test, _train(data, train, DIMS, max_epochs=epochs, **switches, **AS_NAMED), DIMS
        )
        records += [{"ablation": "table1", "variant": row, "dim": d, **scores[d]} for d in DIMS]
    write_records(out, records)
    line_plot(
        {row: (DIMS, [r["ndcg@10"] for r in records if r["variant"] == row]) for row in LADDER},
        out.with_suffix(".png"),
        f"{DATA_LABEL} test: adding SMEC's modules to MRL",
        "dimension",
        "nDCG@10",
        logx=True,
    )
    return markdown_table(records, "variant", "dim", "ndcg@10", row_order=list(LADDER))


def memory(data, train, test, out: Path, epochs: int) -> str:
    records = []
    for size in tqdm((1000, 2000, 5000, 10000), desc="memory"):
        smec = _train(data, train, DIMS, memory_size=size, max_epochs=epochs, **AS_NAMED)
        scores = evaluate_dims(data, test, smec, DIMS)
        records += [
            {
                "ablation": "memory",
                "memory_size": size,
                "dim": d,
                **scores[d],
                "train_seconds": smec.info["train_seconds"],
            }
            for d in DIMS
        ]
    write_records(out, records)
    sizes = sorted({r["memory_size"] for r in records})
    line_plot(
        {f"{d}-d": (sizes, [r["ndcg@10"] for r in records if r["dim"] == d]) for d in DIMS},
        out.with_suffix(".png"),
        f"{DATA_LABEL} test: S-XBM memory size",
        "memory size (entries)",
        "nDCG@10",
        logx=True,
    )
    return markdown_table(records, "memory_size", "dim", "ndcg@10")


# One change from the defaults per row: what each choice of the trainer is worth.
HELD_OUT_VARIANTS = {
    "defaults": {},
    "no refit (train on 80%, keep the held-out best)": {"refit": False},
    "negatives: own only": {"negatives": "own"},
    "negatives: in-batch only": {"negatives": "in-batch"},
    "negatives mined once, original space": {"mine_per_stage": False},
    "no all-pairs term (beta 0)": {"beta": 0.0},
    "all-pairs term x3 (beta 3)": {"beta": 3.0},
    "weight decay 0.01": {"weight_decay": 0.01},
    "no S-XBM term (alpha 0)": {"alpha": 0.0},
    "rank-loss scale 20": {"scale": 20.0},
    "no ADS (truncation)": {"ads": False},
    "parallel schedule (no SMRL)": {"sequential": False},
    "no lead-in stage (128 first)": {"lead_in": 0},
    "64 hard negatives (30)": {"hard_negatives": 64},
    "batch 16 queries (32)": {"batch_size": 16},
    "batch 64 queries (32)": {"batch_size": 64},
    "learning rate 5e-4 (1e-3)": {"lr": 5e-4},
    "learning rate 2e-3 (1e-3)": {"lr": 2e-3},
    "patience 5 epochs (3)": {"patience": 5},
}
HELD_OUT_DIMS = [128, 64, 32]


def heldout(data, train, test, out: Path, epochs: int) -> str:
    """Held-out TRAIN queries only (``test`` is not used): one change at a time, 3 seeds.

    Also scored on the *unseen-document* part of the held-out queries: those none of whose
    relevant documents is judged for any training query, where a projection cannot have
    learned the answer by heart.
    """
    del test
    inner, splits = _held_out_splits(train)
    held = splits["held-out"]
    records = []
    original = {
        name: evaluate_dims(data, qrels, None, [data.dim])[data.dim]
        for name, qrels in splits.items()
    }
    pca = make_compressor("pca", HELD_OUT_DIMS).fit(data)
    runs = [("PCA (no training)", None, pca, 0.0)]
    for seed in tqdm(HELD_OUT_SEEDS, desc="seeds"):
        for name, change in tqdm(HELD_OUT_VARIANTS.items(), desc="heldout", leave=False):
            smec = _train(data, inner, HELD_OUT_DIMS, max_epochs=epochs, seed=seed, **change)
            runs.append((name, seed, smec, smec.info["train_seconds"]))
    for name, seed, compressor, seconds in runs:
        for split, qrels in splits.items():
            scores = evaluate_dims(data, qrels, compressor, HELD_OUT_DIMS)
            records += [
                {
                    "ablation": "heldout",
                    "variant": name,
                    "seed": seed,
                    "split": split,
                    "queries": len(qrels),
                    "dim": d,
                    "train_seconds": seconds,
                    **scores[d],
                }
                for d in HELD_OUT_DIMS
            ]
    write_records(out, records)
    order = ["PCA (no training)", *HELD_OUT_VARIANTS]
    tables = {s: over_seeds(records, "variant", order, HELD_OUT_DIMS, split=s) for s in splits}
    bar_plot(
        {
            f"{d}-d": {r["variant"]: r["ndcg@10"] for r in tables["held-out"][0] if r["dim"] == d}
            for d in HELD_OUT_DIMS
        },
        out.with_suffix(".png"),
        f"{DATA_LABEL} held-out train queries, one change at a time "
        f"(mean of {len(HELD_OUT_SEEDS)} seeds)",
        "nDCG@10",
    )
    text = (
        f"SMEC trained on {len(inner)} {DATA_LABEL} train queries, scored on the other "
        f"{len(held)} (test not read); seeds {', '.join(map(str, HELD_OUT_SEEDS))} (the split "
        "inside training, initial draws and batches). Mean nDCG@10, then max - min over the "
        "seeds: a difference smaller than that range is noise.\n\n"
    )
    for split, qrels in splits.items():
        what = (
            "every held-out query"
            if split == "held-out"
            else "the held-out queries none of whose relevant documents is judged in training"
        )
        text += (
            f"#### {split}: {len(qrels)} queries, {what}\n\nOriginal {data.dim}-d vectors: "
            f"{original[split]['ndcg@10']:.4f}\n\n"
            + markdown_table(tables[split][0], "variant", "dim", "ndcg@10", row_order=order)
            + "\nmax - min over seeds\n\n"
            + markdown_table(tables[split][1], "variant", "dim", "range", row_order=order)
            + "\n"
        )
    return text


HELD_OUT_SEEDS = (0, 1, 2)


def _held_out_splits(train) -> tuple[dict, dict[str, dict]]:
    """Training queries, and the held-out ones (one in five, by a hash of the id) with their
    unseen-document part: those none of whose relevant documents is judged for a training
    query."""
    inner, held = {}, {}
    for query, rels in train.items():
        digest = hashlib.blake2b(query.encode(), digest_size=8).digest()
        (held if int.from_bytes(digest, "big") % 5 == 0 else inner)[query] = rels
    seen = {doc for rels in inner.values() for doc, rel in rels.items() if rel > 0}
    unseen = {
        q: rels
        for q, rels in held.items()
        if not seen.intersection(d for d, r in rels.items() if r > 0)
    }
    return inner, {"held-out": held, "unseen-doc": unseen}


UNSEEN_METHODS = ("search-adaptor", "matryoshka-adaptor", "mrl", "dive", "smec")
ONLY: list[str] = []  # --methods: rerun these alone, keeping the file's other runs


def unseen(data, train, test, out: Path, epochs: int) -> str:
    """Every trained method (defaults of ``smec-index train``), PCA and the original vectors
    on the held-out train queries and on their unseen-document part (test not read), 3
    seeds: does a method's gain hold where it cannot have learned the answers by heart?
    SMEC's and MRL's full-dim adapters (their first stage before it selects dims) too."""
    del test
    inner, splits = _held_out_splits(train)
    records = []
    pca = make_compressor("pca", HELD_OUT_DIMS).fit(data)
    for split, qrels in splits.items():
        original = evaluate_dims(data, qrels, None, [data.dim])[data.dim]
        records.append({"ablation": "unseen", "method": "original", "split": split,
                        "seed": None, "dim": data.dim, **original})  # fmt: skip
        scores = evaluate_dims(data, qrels, pca, HELD_OUT_DIMS)
        records += [{"ablation": "unseen", "method": "pca", "split": split, "seed": None,
                     "dim": d, **scores[d]} for d in HELD_OUT_DIMS]  # fmt: skip
    if ONLY and out.is_file():
        records = [r for r in read_records(out) if r["method"] not in ONLY]
    for seed in tqdm(HELD_OUT_SEEDS, desc="seeds"):
        for method in tqdm(ONLY or UNSEEN_METHODS, desc="unseen", leave=False):
            compressor = make_compressor(
                method, HELD_OUT_DIMS, progress=False, seed=seed, max_epochs=epochs, **INIT
            ).fit(data, inner)
            adapter = getattr(compressor, "adapted_projection", lambda: None)()
            for split, qrels in splits.items():
                scores = evaluate_dims(data, qrels, compressor, HELD_OUT_DIMS)
                if adapter is not None:
                    scores[data.dim] = evaluate_transform(data, qrels, lambda x, m=adapter: x @ m)
                records += [{"ablation": "unseen", "method": method, "split": split,
                             "seed": seed, "dim": d, **scores[d]} for d in scores]  # fmt: skip
    write_records(out, records)
    dims = [data.dim, *HELD_OUT_DIMS]
    order = ["original", "pca", *UNSEEN_METHODS]
    text = (
        f"Trained on {len(inner)} {DATA_LABEL} train queries; scored on the other "
        f"{len(splits['held-out'])} (held-out) and on the {len(splits['unseen-doc'])} of them "
        "none of whose relevant documents is judged for a training query (unseen-doc). Mean "
        f"nDCG@10 over seeds {', '.join(map(str, HELD_OUT_SEEDS))}; test is not read. The "
        f"{data.dim} column of smec and mrl is their full-dim adapter.\n\n"
    )
    plots = {}
    for split in splits:
        mean, _ = over_seeds(records, "method", order, dims, split=split)
        for r in mean:
            plots.setdefault(f"{split} {r['dim']}", {})[r["method"]] = r["ndcg@10"]
        text += f"#### {split}\n\n" + markdown_table(mean, "method", "dim", "ndcg@10",
                                                      row_order=order) + "\n"  # fmt: skip
    bar_plot(plots, out.with_suffix(".png"),
             f"{DATA_LABEL} held-out train queries: all of them vs unseen documents",
             "nDCG@10")  # fmt: skip
    return text


DIVE_VARIANTS = {
    "defaults (margin 0.3, view weight 0.1, 4 views)": {},
    "margin 0.1": {"margin": 0.1},
    "margin 0.5": {"margin": 0.5},
    "no NT-Xent (view weight 0)": {"view_weight": 0.0},
    "view weight 0.5": {"view_weight": 0.5},
    "2 views": {"views": 2},
}


def dive(data, train, test, out: Path, epochs: int) -> str:
    """DIVE's settings one at a time on held-out TRAIN queries and their unseen-document
    part (``test`` is not read), seed 0: how its defaults were chosen."""
    del test
    inner, splits = _held_out_splits(train)
    pca = make_compressor("pca", HELD_OUT_DIMS).fit(data)
    runs = [("PCA (no training)", pca)]
    for name, change in tqdm(DIVE_VARIANTS.items(), desc="dive"):
        compressor = make_compressor("dive", HELD_OUT_DIMS, progress=False, max_epochs=epochs,
                                     **change)  # fmt: skip
        runs.append((name, compressor.fit(data, inner)))
    records = []
    for name, compressor in runs:
        for split, qrels in splits.items():
            scores = evaluate_dims(data, qrels, compressor, HELD_OUT_DIMS)
            records += [{"ablation": "dive", "variant": name, "seed": 0, "split": split,
                         "queries": len(qrels), "dim": d, **scores[d]}
                        for d in HELD_OUT_DIMS]  # fmt: skip
    write_records(out, records)
    order = [name for name, _ in runs]
    text = (f"DIVE trained on {len(inner)} {DATA_LABEL} train queries (seed 0), scored on the "
            "other train queries (test not read). nDCG@10.\n\n")  # fmt: skip
    plots = {}
    for split, qrels in splits.items():
        mean, _ = over_seeds(records, "variant", order, HELD_OUT_DIMS, split=split)
        for r in mean:
            plots.setdefault(f"{split} {r['dim']}", {})[r["variant"]] = r["ndcg@10"]
        text += f"#### {split}: {len(qrels)} queries\n\n" + markdown_table(
            mean, "variant", "dim", "ndcg@10", row_order=order) + "\n"  # fmt: skip
    bar_plot(plots, out.with_suffix(".png"), f"{DATA_LABEL}: DIVE's settings, held-out train "
             "queries", "nDCG@10")  # fmt: skip
    return text


def _split_tables(records, key: str, order: list[str], splits) -> tuple[str, dict]:
    """Per split: the mean over seeds of each ``key`` value at each held-out dim, then its
    max - min, as Markdown; and the means keyed for :func:`bar_plot`."""
    text, plots = "", {}
    for split in splits:
        mean, spread = over_seeds(records, key, order, HELD_OUT_DIMS, split=split)
        for r in mean:
            plots.setdefault(f"{split} {r['dim']}", {})[r[key]] = r["ndcg@10"]
        text += f"#### {split}\n\n" + markdown_table(mean, key, "dim", "ndcg@10",
                                                      row_order=order)  # fmt: skip
        text += "\nmax - min over seeds\n\n"
        text += markdown_table(spread, key, "dim", "range", row_order=order) + "\n"
    return text, plots


# Issue 24's levers for keeping documents no training query judged, one at a time.
GENERALISE_VARIANTS = {
    "defaults (unseen-document guard on)": {},
    "guard off": {"unseen_guard": False},
    "held-out part split by documents": {"val_split": "documents"},
    "64 corpus documents per step as anchors": {"corpus_anchors": 64},
    "proximal 0.01 toward the PCA start": {"proximal": 0.01},
    "hinge rank loss (margin 0.1)": {"rank_margin": 0.1},
    "hinge rank loss (margin 0.05)": {"rank_margin": 0.05},
    "hinge rank loss (margin 0.2)": {"rank_margin": 0.2},
    "hinge (margin 0.1) and 64 corpus anchors": {"rank_margin": 0.1, "corpus_anchors": 64},
    "all-pairs weight 3 (1)": {"beta": 3.0},
}


def generalise(data, train, test, out: Path, epochs: int) -> str:
    """SMEC with each lever of issue 24 (one change at a time) on held-out TRAIN queries
    and their unseen-document part, 3 seeds (test not read): which keeps documents no
    training query judged at least as well as PCA?"""
    del test
    inner, splits = _held_out_splits(train)
    records = []
    pca = make_compressor("pca", HELD_OUT_DIMS).fit(data)
    for split, qrels in splits.items():
        scores = evaluate_dims(data, qrels, pca, HELD_OUT_DIMS)
        records += [{"ablation": "generalise", "variant": "PCA (no training)", "split": split,
                     "seed": None, "dim": d, **scores[d]} for d in HELD_OUT_DIMS]  # fmt: skip
    if ONLY and out.is_file():
        records = [r for r in read_records(out) if r["variant"] not in ONLY]
    for seed in tqdm(HELD_OUT_SEEDS, desc="seeds"):
        for name in tqdm(ONLY or GENERALISE_VARIANTS, desc="generalise", leave=False):
            smec = _train(data, inner, HELD_OUT_DIMS, max_epochs=epochs, seed=seed,
                          **GENERALISE_VARIANTS[name])  # fmt: skip
            kept = [d for d, v in smec.info["selection"].items() if v["kept"] == "pca"]
            for split, qrels in splits.items():
                scores = evaluate_dims(data, qrels, smec, HELD_OUT_DIMS)
                records += [{"ablation": "generalise", "variant": name, "split": split,
                             "seed": seed, "dim": d, "kept_pca": str(d) in kept,
                             "train_seconds": smec.info["train_seconds"], **scores[d]}
                            for d in HELD_OUT_DIMS]  # fmt: skip
    write_records(out, records)
    order = ["PCA (no training)", *GENERALISE_VARIANTS]
    text = (
        f"SMEC trained on {len(inner)} {DATA_LABEL} train queries with one change at a time, "
        f"scored on the other {len(splits['held-out'])} and on the "
        f"{len(splits['unseen-doc'])} of them whose relevant documents no training query "
        f"judges. Mean nDCG@10 over seeds {', '.join(map(str, HELD_OUT_SEEDS))}, then max - "
        "min over them; test is not read. Where PCA was kept at a dim, that seed's "
        "score there is PCA's (the count of such seeds is in the last table).\n\n"
    )
    tables, plots = _split_tables(records, "variant", order, splits)
    text += tables
    kept = [{"variant": v, "dim": d, "seeds": sum(r.get("kept_pca", False) for r in records
             if r["variant"] == v and r["dim"] == d and r["split"] == "held-out")}
            for v in GENERALISE_VARIANTS for d in HELD_OUT_DIMS]  # fmt: skip
    text += ("#### seeds where PCA was kept (the held-out fallback or the guard)\n\n"
             + markdown_table(kept, "variant", "dim", "seeds", fmt="{:d}",
                              row_order=list(GENERALISE_VARIANTS))
             + "\n")  # fmt: skip
    bar_plot(plots, out.with_suffix(".png"),
             f"{DATA_LABEL} held-out train queries: SMEC's levers for unseen documents",
             "nDCG@10")  # fmt: skip
    return text


CHAINS = ([128, 64, 32], [192, 128, 64, 32], [256, 128, 64, 32])
# The longest chain's dims, except that 32 hangs off 128 beside 64 instead of off 64:
# continued training hangs each new dim off the smallest trained dim above it. Its 256 and
# 128 stages are trained alike but not bit for bit (the random draws after them differ).
BRANCH = "256,128 then 32 and 64 each from 128"


def _branched(data: RetrievalData, train, epochs: int, seed: int):
    smec = _train(data, train, [256, 128], max_epochs=epochs, seed=seed, **AS_NAMED)
    smec.extend(data, train, [32])
    return smec.extend(data, train, [64])


def chain(data, train, test, out: Path, epochs: int) -> str:
    """The same dims 128 / 64 / 32 reached through longer chains (SMRL stages above 128),
    on held-out train queries and their unseen-document part, 3 seeds (test not read)."""
    del test
    inner, splits = _held_out_splits(train)
    records = []
    for seed in tqdm(HELD_OUT_SEEDS, desc="seeds"):
        for dims in tqdm([*CHAINS, BRANCH], desc="chain", leave=False):
            started = time.perf_counter()
            if dims == BRANCH:
                smec, name = _branched(data, inner, epochs, seed), BRANCH
            else:
                smec = _train(data, inner, dims, max_epochs=epochs, seed=seed, **AS_NAMED)
                name = ",".join(map(str, dims))
            seconds = round(time.perf_counter() - started, 2)
            for split, qrels in splits.items():
                scores = evaluate_dims(data, qrels, smec, HELD_OUT_DIMS)
                records += [{"ablation": "chain", "chain": name,
                             "split": split, "seed": seed, "dim": d,
                             "train_seconds": seconds, **scores[d]}
                            for d in HELD_OUT_DIMS]  # fmt: skip
    write_records(out, records)
    order = [",".join(map(str, dims)) for dims in CHAINS] + [BRANCH]
    text = (
        f"SMEC trained on {len(inner)} {DATA_LABEL} train queries with each chain of dims, "
        f"scored at 128 / 64 / 32 on the other {len(splits['held-out'])} and on the "
        f"{len(splits['unseen-doc'])} of them whose relevant documents no training query "
        f"judges. Mean nDCG@10 over seeds {', '.join(map(str, HELD_OUT_SEEDS))}, then max - "
        "min over them; test is not read.\n\n"
    )
    tables, plots = _split_tables(records, "chain", order, splits)
    text += tables
    bar_plot(plots, out.with_suffix(".png"),
             f"{DATA_LABEL} held-out train queries: dims 128/64/32 through each chain",
             "nDCG@10")  # fmt: skip
    return text


ABLATIONS = {
    "gradvar": gradvar,
    "ads": ads,
    "table1": table1,
    "memory": memory,
    "heldout": heldout,
    "unseen": unseen,
    "chain": chain,
    "dive": dive,
    "generalise": generalise,
}
DATA_LABEL = "SciFact"


def main() -> None:
    global DATA_LABEL
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("ablation", choices=sorted(ABLATIONS))
    parser.add_argument("--dataset", type=Path, default=Path("../shared/data/scifact"))
    parser.add_argument("--embeddings", type=Path)
    parser.add_argument("--epochs", type=int, default=25, help="max epochs per stage")
    parser.add_argument(
        "--init",
        choices=["pca", "identity"],
        default="pca",
        help="stage initialisation for every run (identity: adapters start at the "
        "identity and ADS chooses among the raw dims)",
    )
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--methods",
        help="unseen: run only these methods (generalise: these variants; comma-separated), "
        "keeping the file's others",
    )
    args = parser.parse_args()
    INIT["init"] = args.init
    ONLY[:] = args.methods.split(",") if args.methods else []
    data = load_retrieval_data(args.dataset, args.embeddings)
    DATA_LABEL = data.dataset.name
    suffix = "" if args.init == "pca" else f"-{args.init}"
    out = args.out or RESULTS_DIR / f"{data.dataset.name}-ablation-{args.ablation}{suffix}.jsonl"
    text = ABLATIONS[args.ablation](data, data.qrels("train"), data.qrels("test"), out, args.epochs)
    out.with_suffix(".md").write_text(text)
    print(text)
    print(f"raw: {out}\nplot: {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
