"""Tables (Markdown) and plots (PNG) derived from stored results, for `smec-index report`
and the paper reproductions in the repository's `bench/`."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

# A name in a script the bundled font lacks (a CJK dataset name) is drawn as boxes, and
# matplotlib says so on stderr at every draw: the boxes are the whole consequence.
warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from font", category=UserWarning)

INSIDE_LEGEND = 8  # series a legend inside the axes holds without hiding them


def pivot(records: Sequence[dict[str, Any]], row: str, column: str, value: str) -> dict:
    table: dict = {}
    for r in records:
        table.setdefault(r[row], {})[r[column]] = r[value]
    return table


def markdown_table(
    records: Sequence[dict[str, Any]],
    row: str,
    column: str,
    value: str,
    fmt: str = "{:.4f}",
    row_order: Sequence | None = None,
) -> str:
    table = pivot(records, row, column, value)
    columns = sorted({c for cells in table.values() for c in cells}, reverse=True)
    rows = list(row_order) if row_order else list(table)
    lines = [
        f"| {row} \\ {column} | " + " | ".join(str(c) for c in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for name in rows:
        if name not in table:
            continue
        cells = [fmt.format(table[name][c]) if c in table[name] else "" for c in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def line_plot(
    series: dict[str, tuple[Sequence[float], Sequence[float]]],
    path: str | Path,
    title: str,
    xlabel: str,
    ylabel: str,
    logx: bool = False,
    logy: bool = False,
    reference: tuple[float, str] | None = None,
) -> Path:
    """One line per series; optional horizontal reference line (e.g. the full-dim score).
    More than :data:`INSIDE_LEGEND` series: a wider figure with the legend beside the axes."""
    crowded = len(series) > INSIDE_LEGEND
    width = 11 + 4 * (len(series) // 25)  # a legend column of 25 entries per 4 inches
    fig, ax = plt.subplots(figsize=(width, 5.5) if crowded else (7, 4.5), dpi=120)
    markers = "osD^v<>p*"  # 9 against 10 colours: no two of 90 series look alike
    for i, (name, (x, y)) in enumerate(series.items()):
        ax.plot(x, y, marker=markers[i % len(markers)], label=name)
    if reference is not None:
        ax.axhline(reference[0], color="grey", linestyle="--", linewidth=1, label=reference[1])
    if logx:
        ax.set_xscale("log", base=2)
        xs = sorted({v for x, _ in series.values() for v in x})
        ax.set_xticks(xs, [str(int(v)) for v in xs])
    if logy:
        ax.set_yscale("log")
    beside = {"loc": "upper left", "bbox_to_anchor": (1.01, 1), "fontsize": "small",
              "ncol": 1 + len(series) // 25}  # fmt: skip
    return _finish(fig, ax, path, title, xlabel, ylabel, **(beside if crowded else {}))


def facets(panels: dict[str, dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """``panels`` cut so that none holds more than :data:`INSIDE_LEGEND` series: a group of
    20 becomes "name (1/3)", "(2/3)", "(3/3)"."""
    chunks = []
    for name, series in panels.items():
        items = list(series.items())
        parts = [items[i : i + INSIDE_LEGEND] for i in range(0, len(items), INSIDE_LEGEND)]
        for k, part in enumerate(parts):
            chunks.append((f"{name} ({k + 1}/{len(parts)})" if len(parts) > 1 else name,
                           dict(part)))  # fmt: skip
    return chunks


def facet_plot(
    panels: dict[str, dict[str, tuple[Sequence[float], Sequence[float]]]],
    path: str | Path,
    title: str,
    xlabel: str,
    ylabel: str,
    logy: bool = False,
) -> Path:
    """One panel per group (a backend, say), at most :data:`INSIDE_LEGEND` series in each: a
    larger group is split over several panels, so every legend fits inside its axes."""
    chunks = facets(panels)
    columns = min(len(chunks), 2)
    rows = -(-len(chunks) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(6.5 * columns, 4.5 * rows), dpi=110,
                             squeeze=False)  # fmt: skip
    markers = "osD^v<>p*"
    for ax, (name, series) in zip(axes.flat, chunks, strict=False):
        for i, (label, (x, y)) in enumerate(series.items()):
            ax.plot(x, y, marker=markers[i % len(markers)], label=label)
        if logy:
            ax.set_yscale("log")
        ax.set_title(name)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    for ax in list(axes.flat)[len(chunks):]:
        ax.set_visible(False)
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def bar_plot(
    groups: dict[str, dict[str, float]], path: str | Path, title: str, ylabel: str
) -> Path:
    """Grouped bars: ``groups[x_label][series] = value``."""
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    labels = list(groups)
    series = list(dict.fromkeys(s for g in groups.values() for s in g))
    width = 0.8 / max(len(series), 1)
    for i, name in enumerate(series):
        xs = [j + i * width for j in range(len(labels))]
        ax.bar(xs, [groups[g].get(name, 0) for g in labels], width, label=name)
    ax.set_xticks([j + width * (len(series) - 1) / 2 for j in range(len(labels))], labels)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def scatter_front(
    points: Sequence[tuple[float, float]],
    front: Sequence[int],
    labels: Sequence[str],
    path: str | Path,
    title: str,
    xlabel: str,
    ylabel: str,
) -> Path:
    """Every (x, y) point grey, the Pareto front's points joined and numbered; the numbers'
    configurations are listed beside the axes, where no label can overlap another or be
    cut at the figure's edge."""
    fig, ax = plt.subplots(figsize=(11, 5), dpi=120)
    ax.scatter([p[0] for p in points], [p[1] for p in points], color="lightgrey", s=18,
               label="every configuration")  # fmt: skip
    xs, ys = [points[i][0] for i in front], [points[i][1] for i in front]
    ax.plot(xs, ys, marker="o", color="tab:red", label="Pareto front")
    for number, (x, y) in enumerate(zip(xs, ys, strict=True), 1):
        ax.annotate(str(number), (x, y), textcoords="offset points", xytext=(0, 6),
                    ha="center", fontsize=7)  # fmt: skip
    for number, text in enumerate(labels, 1):
        ax.plot([], [], linestyle="none", label=f"{number}  {text}")
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    return _finish(fig, ax, path, title, xlabel, ylabel, loc="upper left",
                   bbox_to_anchor=(1.01, 1), fontsize="x-small")  # fmt: skip


def roofline_plot(
    series: dict[str, tuple[Sequence[float], Sequence[float]]],
    bandwidth_gb_s: float,
    path: str | Path,
    title: str,
) -> Path:
    """QPS against MB read per query, per backend, under the memory-bandwidth roof."""
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    xs = sorted({x for x, _ in series.values() for x in x})
    for i, (name, (x, y)) in enumerate(series.items()):
        ax.plot(x, y, marker="osD^v<>"[i % 7], linestyle="none", label=name)
    if xs:
        span = [xs[0] / 1.5, xs[-1] * 1.5]
        ax.plot(span, [bandwidth_gb_s * 1e3 / x for x in span], color="grey", linestyle="--",
                label=f"memory bandwidth {bandwidth_gb_s:g} GB/s")  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    return _finish(fig, ax, path, title, "MB read per query (every float32 vector once)",
                   "QPS (single client)")  # fmt: skip


def _finish(fig, ax, path: str | Path, title: str, xlabel: str, ylabel: str, **legend) -> Path:
    """Title, labels, grid and legend; the figure written to ``path`` and closed."""
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(**legend)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")  # a legend beside the axes is kept whole
    plt.close(fig)
    return path
