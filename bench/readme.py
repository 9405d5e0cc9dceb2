"""Splice the stored result tables into docs/results.md and the headline into README.md
(each between its markers).

    python -m bench.readme

No figure in the README or the docs is typed by hand: each section below names the command
that produced its ``bench/results/*.md`` file, and this script copies those files in.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from bench.results import RESULTS_DIR
from smec_index.bench.report import file_slug

ROOT = Path(__file__).resolve().parents[1]
README, RESULTS_PAGE = ROOT / "README.md", ROOT / "docs" / "results.md"
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
HEADLINE_BEGIN, HEADLINE_END = "<!-- headline:begin -->", "<!-- headline:end -->"
HEADLINE_BYTES = 64

# When SMEC's trainer last changed (held-out retrieval selection, refit, per-stage negatives,
# PCA fallback). A section with trained methods measured before it shows the previous trainer
# and says so, until its command is run again.
TRAINER_CHANGED = "2026-11-30T11:30:00"
# Sections whose figures involve no trained method, so the trainer's changes do not touch them.
UNTRAINED = {"milvus-migrate"}

SECTIONS = [
    (
        "How each training choice was made: one change at a time, held-out train queries",
        "scifact-ablation-heldout",
        "python -m bench.ablations heldout",
    ),
    (
        "Memorisation: every method on held-out train queries whose relevant documents no "
        "training query judges",
        "scifact-ablation-unseen",
        "python -m bench.ablations unseen",
    ),
    (
        "The chain: dims 128 / 64 / 32 trained through longer chains, held-out train queries",
        "scifact-ablation-chain",
        "python -m bench.ablations chain",
    ),
    (
        "DIVE's settings, one at a time, held-out train queries",
        "scifact-ablation-dive",
        "python -m bench.ablations dive",
    ),
    (
        "SMEC and the baselines (test nDCG@10 and recall@10)",
        "scifact-compare",
        "python -m bench.compare --dataset ../shared/data/scifact --dims 128,64,32 --seeds 0,1,2",
    ),
    (
        "SMEC and the baselines on a second dataset, NFCorpus (test nDCG@10 and recall@10)",
        "nfcorpus-compare",
        "python -m bench.compare --dataset ../shared/data/nfcorpus --dims 128,64,32 --seeds 0,1,2",
    ),
    (
        "Without qrels: SMEC from the corpus alone and from a query log, against PCA (NFCorpus)",
        "nfcorpus-unsupervised",
        "python -m bench.unsupervised --dataset ../shared/data/nfcorpus",
    ),
    (
        "Without qrels: SMEC from the corpus alone and from a query log, against PCA (SciFact)",
        "scifact-unsupervised",
        "python -m bench.unsupervised --dataset ../shared/data/scifact",
    ),
    (
        "Ablation: the paper's Table 1 on SciFact",
        "scifact-ablation-table1",
        "python -m bench.ablations table1",
    ),
    (
        "Ablation: SMRL vs parallel training, gradient variance per epoch (Figure 6a)",
        "scifact-ablation-gradvar",
        "python -m bench.ablations gradvar --epochs 15",
    ),
    (
        "Ablation: ADS vs truncation (stages start at the PCA rotation)",
        "scifact-ablation-ads",
        "python -m bench.ablations ads",
    ),
    (
        "Keeping documents training never judged: SMEC's levers one at a time, held-out train "
        "queries and their unseen-document part",
        "scifact-ablation-generalise",
        "python -m bench.ablations generalise",
    ),
    (
        "Ablation: ADS vs truncation (stages start at the identity: raw MiniLM dims)",
        "scifact-ablation-ads-identity",
        "python -m bench.ablations ads --init identity",
    ),
    (
        "Ablation: S-XBM memory size (Table 3)",
        "scifact-ablation-memory",
        "python -m bench.ablations memory",
    ),
    (
        "Migrating a Milvus collection: throughput and peak memory",
        "milvus-migrate",
        "python -m bench.migrate --n 250000 --n 1000000",
    ),
]


def speed_section() -> str:
    path = RESULTS_DIR / "speed.json"
    if not path.is_file():
        return ""
    runs = {b["name"]: b for b in json.loads(path.read_text())["benchmarks"]}
    lines = [
        "### Speed (pytest-benchmark, medians, one run on this 2-core machine)\n",
        "`python -m pytest bench/test_speed.py --benchmark-enable "
        "--benchmark-json bench/results/speed.json`\n",
    ]
    transform, matmul = (
        runs.get("test_transform_1m_vectors"),
        runs.get("test_bare_matmul_1m_vectors"),
    )
    if transform and matmul:
        t, m = transform["stats"]["median"], matmul["stats"]["median"]
        lines.append(
            f"- projecting 1M x 384 vectors to 128 dims and normalising: {t:.3f} s, "
            f"{1e6 / t / 1e6:.2f}M vectors/s ({t / m:.2f}x a bare numpy matmul in "
            "the same run)"
        )
    train = runs.get("test_train_smec_scifact")
    if train:
        lines.append(
            f"- training SMEC 384 -> 128/64/32 on SciFact (the defaults of `smec-index train`, "
            f"through the 256-d lead-in stage): "
            f"{train['stats']['median']:.1f} s"
        )
    return "\n".join(lines) + "\n"


def sweep_section() -> str:
    """Per dataset, the "best configuration under B bytes" table and the smallest vector that
    keeps the original's quality, from ``smec-index report``'s output."""
    blocks = _sweep_blocks()
    if not blocks:
        return ""
    lines = ["### Dims x encodings x backends: the best configuration under B bytes per vector\n",
             "`smec-index bench --config bench/sweeps/scifact.toml` (likewise `nfcorpus.toml`, "
             "`nfcorpus-pq.toml`, `opq.toml`, `nfcorpus-ef.toml`, `scifact-ef.toml`, "
             "`qdrant-norescore.toml`, "
             "`milvus-server.toml`), then `smec-index "
             "report bench/results/sweep.jsonl --out bench/results/sweep` (the full report, "
             "every run and all plots: `bench/results/sweep/report.md`)"
             f"{_stale('sweep')}\n"]  # fmt: skip
    for name, body in blocks:
        best = body.split("### Best configuration under B bytes per vector", 1)
        if len(best) < 2:
            continue
        table = best[1].split("\n### ", 1)[0].strip()
        slug = file_slug(name)
        plot = f"bench/results/sweep/{slug}-quality-vs-bytes.png"
        lines.append(f"**{name}**\n\n{table}\n\n![{name}: quality vs bytes]({plot})\n")
    return "\n".join(lines) + "\n"


def lean_section() -> str:
    """What the public search path costs over each engine's own call (issue 21), from
    ``smec-index report``'s table of the lean-path sweep."""
    report = RESULTS_DIR / "lean-path" / "report.md"
    if not report.is_file():
        return ""
    tables = []
    for block in report.read_text().split("\n## ")[1:]:
        name, body = block.split("\n", 1)
        found = body.split("### The search path against the engine", 1)
        if len(found) == 2:
            tables.append(f"**{name}**\n\n{found[1].split(chr(10) + '### ', 1)[0].strip()}\n")
    if not tables:
        return ""
    return ("### The search path against the engine: what smec-index adds\n\n"
            "`smec-index bench --config bench/sweeps/lean-path.toml`, then `smec-index report "
            "bench/results/lean-path.jsonl --out bench/results/lean-path` "
            "(`bench/results/lean-path/report.md`)\n\n"
            + "\n".join(tables))  # fmt: skip


# Sweeps of the package's own harness (bench/sweeps/*.toml) whose report sections are shown:
# (title, stem, the report's "###" sections to copy, the plots to show).
REPORTS = [
    ("ANN backends: nDCG through the index vs exhaustive search, recall, latency, QPS, bytes",
     "ann", ["Every run"], ["p50-vs-dim"]),
    ("Scale: 200k synthetic vectors, FAISS HNSW16, hnswlib and qdrant-edge at recall@10 >= "
     "0.95 in each dim's space, recall against the 384-d neighbours, and the roofline",
     "scale-200k",
     ["Dims at equal recall", "Roofline"], ["recall-vs-qps"]),
    ("Scale: 1M synthetic vectors, FAISS HNSW32 and hnswlib at recall@10 >= 0.95, and the "
     "roofline", "scale-1m", ["Dims at equal recall", "Roofline"], ["recall-vs-qps"]),
    ("Bytes: index_bytes and total_bytes of every backend, bare and with payload", "bytes",
     ["Payload"], []),
]  # fmt: skip


def report_section(title: str, stem: str, wanted: list[str], plots: list[str]) -> str:
    """Chosen sections of ``bench/results/<stem>/report.md`` (``smec-index report``'s), under
    the commands that made it."""
    report = RESULTS_DIR / stem / "report.md"
    if not report.is_file():
        return ""
    parts = [f"### {title}\n\n`smec-index bench --config bench/sweeps/{stem}.toml`, then "
             f"`smec-index report bench/results/{stem}.jsonl --out bench/results/{stem}` "
             f"(every run and plot: `bench/results/{stem}/report.md`)\n"]  # fmt: skip
    for dataset, body in (b.split("\n", 1) for b in report.read_text().split("\n## ")[1:]):
        if dataset.startswith("Machine"):
            continue
        slug = file_slug(dataset)
        for section in body.split("\n### ")[1:]:
            heading, text = section.split("\n", 1)
            if any(heading.startswith(w) for w in wanted):
                # The report's own images are named relative to its folder.
                text = re.sub(r"\]\(([^/()]+\.png)\)", rf"](bench/results/{stem}/\1)", text)
                parts.append(f"**{dataset}: {heading}**\n\n{text.strip()}\n")
        for plot in plots:
            if (RESULTS_DIR / stem / f"{slug}-{plot}.png").is_file():
                parts.append(f"![{dataset} {plot}](bench/results/{stem}/{slug}-{plot}.png)\n")
    return "\n".join(parts) + "\n"


def render() -> str:
    parts = [sweep_section(), lean_section()]
    parts += [report_section(*entry) for entry in REPORTS]
    for title, stem, command in SECTIONS:
        table = RESULTS_DIR / f"{stem}.md"
        if not table.is_file():
            continue
        plot = f"bench/results/{stem}.png"
        parts.append(
            f"### {title}\n\n`{command}`{_stale(stem)}\n\n{table.read_text().strip()}\n\n"
            f"![{title}]({plot})\n"
        )
    parts.append(speed_section())
    return "\n".join(part for part in parts if part)


def _measured(stem: str) -> str | None:
    raw = RESULTS_DIR / f"{stem}.jsonl"
    if not raw.is_file():
        return None
    with open(raw) as handle:
        times = [json.loads(line).get("time") or "" for line in handle if line.strip()]
    return min(times) if times else None


def _stale(stem: str) -> str:
    """A warning after the command when the section predates the current trainer."""
    when = _measured(stem)
    if stem in UNTRAINED or when is None or when >= TRAINER_CHANGED:
        return ""
    return (
        f" (measured {when[:10]} with the previous SMEC trainer; run the command again to refresh)"
    )


def _sweep_blocks() -> list[tuple[str, str]]:
    """(dataset, its section) of the sweep report, the machine section left out."""
    report = RESULTS_DIR / "sweep" / "report.md"
    if not report.is_file():
        return []
    blocks = [block.split("\n", 1) for block in report.read_text().split("\n## ")[1:]]
    return [(name, body) for name, body in blocks if not name.startswith("Machine")]


def headline() -> str:
    """The README's one figure: per dataset, the best nDCG@10 at most ``HEADLINE_BYTES``
    bytes per vector against the original vectors, from the sweep's report."""
    rows = []
    for name, body in _sweep_blocks():
        original = re.search(r"original's nDCG@10 \(([0-9.]+), ([0-9,]+) B\)", body)
        best = re.search(rf"^\| {HEADLINE_BYTES} \| ([0-9.]+) \| ([^|]+) \|", body, re.M)
        if original and best:
            rows.append(f"| {name} | {original[1]} ({original[2]} B) | {best[1]} | "
                        f"{best[2].strip()} |")  # fmt: skip
    if not rows:
        return ""
    slug = file_slug(_sweep_blocks()[0][0])
    plot = f"bench/results/sweep/{slug}-quality-vs-bytes.png"
    head = (f"| dataset | original 384-d float32 | best at <= {HEADLINE_BYTES} B per vector | "
            "how (method, dim, encoding, index) |\n|---|---|---|---|\n")  # fmt: skip
    return head + "\n".join(rows) + f"\n\n![quality vs bytes]({plot})\n"


def splice(path: Path, begin: str, end: str, text: str) -> None:
    old = path.read_text()
    if begin not in old or end not in old:
        raise SystemExit(f"{path}: add {begin} and {end} where the figures go")
    head, rest = old.split(begin, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{begin}\n{text}{end}{tail}")
    print(f"updated {path}")


def main() -> None:
    splice(RESULTS_PAGE, BEGIN, END, render())
    splice(README, HEADLINE_BEGIN, HEADLINE_END, headline())


if __name__ == "__main__":
    main()
