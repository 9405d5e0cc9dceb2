"""Splice the stored result tables into README.md (between the RESULTS markers).

    python -m bench.readme

The README's figures are never typed by hand: each section below names the command that
produced its ``bench/results/*.md`` file, and this script copies those files in.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.results import RESULTS_DIR

README = Path(__file__).resolve().parents[1] / "README.md"
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"

SECTIONS = [
    (
        "SMEC and the baselines (test nDCG@10 and recall@10)",
        "scifact-compare",
        "python -m bench.compare --dataset ../shared/data/scifact",
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
        "ANN backends: nDCG through the index vs exact, recall, latency, build, bytes",
        "scifact-ann",
        "python -m bench.ann --dataset ../shared/data/scifact",
    ),
    (
        "Bytes: index_bytes and total_bytes with and without payload",
        "scifact-bytes",
        "python -m bench.bytes --dataset ../shared/data/scifact",
    ),
    (
        "Migrating a Milvus collection: throughput and peak memory",
        "milvus-migrate",
        "python -m bench.migrate --n 250000 --n 1000000",
    ),
    (
        "Scale: 1M synthetic vectors, FAISS HNSW32 at recall@10 >= 0.95, and the roofline",
        "hnsw-1m",
        "python -m bench.hnsw_1m",
    ),
    (
        "Scale: 200k synthetic 384-d vectors (intrinsic rank 48), PCA to each dim, HNSW",
        "synthetic-scale",
        "python -m bench.scale --n 200000",
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
            f"- training SMEC 384 -> 192/128/64/32 on SciFact: {train['stats']['median']:.1f} s"
        )
    return "\n".join(lines) + "\n"


def sweep_section() -> str:
    """Per dataset, the "best configuration under B bytes" table and the smallest vector that
    keeps the original's quality, from ``smec-index report``'s output."""
    report = RESULTS_DIR / "sweep" / "report.md"
    if not report.is_file():
        return ""
    lines = ["### Dims x encodings x backends: the best configuration under B bytes per vector\n",
             "`smec-index bench --config bench/sweeps/scifact.toml` (likewise `nfcorpus.toml`, "
             "`milvus-server.toml`), then `smec-index report bench/results/sweep.jsonl --out "
             "bench/results/sweep` (the full report, every run and all plots: "
             "[bench/results/sweep/report.md](bench/results/sweep/report.md))\n"]  # fmt: skip
    for block in report.read_text().split("\n## ")[1:]:
        name, body = block.split("\n", 1)
        if name.startswith("Machine"):
            continue
        best = body.split("### Best configuration under B bytes per vector", 1)
        if len(best) < 2:
            continue
        table = best[1].split("\n### ", 1)[0].strip()
        slug = "".join(c if c.isalnum() else "-" for c in name)
        plot = f"bench/results/sweep/{slug}-quality-vs-bytes.png"
        lines.append(f"**{name}**\n\n{table}\n\n![{name}: quality vs bytes]({plot})\n")
    return "\n".join(lines) + "\n"


def render() -> str:
    parts = [sweep_section()]
    for title, stem, command in SECTIONS:
        table = RESULTS_DIR / f"{stem}.md"
        if not table.is_file():
            continue
        plot = f"bench/results/{stem}.png"
        parts.append(
            f"### {title}\n\n`{command}`\n\n{table.read_text().strip()}\n\n![{title}]({plot})\n"
        )
    parts.append(speed_section())
    return "\n".join(parts)


def main() -> None:
    text = README.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{README}: add {BEGIN} and {END} where the results go")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{BEGIN}\n{render()}{END}{tail}")
    print(f"updated {README}")


if __name__ == "__main__":
    main()
