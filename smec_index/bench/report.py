"""``smec-index report``: Markdown and PNG from stored results only.

Per dataset: nDCG@10 against dim per method; p50 latency against dim per backend; recall
against QPS per backend (each point one ef, ann-benchmarks style); nDCG@10 against bytes
per vector across dims x encodings with the Pareto front marked; a table "best
configuration under B bytes" for B = 16, 32, 64, 128, 256; and the smallest vector that keeps
the original vectors' quality.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from smec_index.artifact import atomic_directory
from smec_index.bench.results import read_results
from smec_index.outputs import plot_path, prepare_output

BUDGETS = (16, 32, 64, 128, 256)
PER_BACKEND = 64  # the budget the per-backend table answers


def pareto(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indexes of the points no other point beats: fewer or equal bytes and a higher score,
    or fewer bytes and an equal one. Sorted by bytes."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], float("-inf")
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def file_slug(name: str) -> str:
    """A dataset's name as part of a plot's file name: letters and digits, and short enough
    for any file system (a long name keeps 60 characters and a hash of the whole)."""
    slug = "".join(c if c.isalnum() else "-" for c in name)
    if len(slug) <= 80:
        return slug
    import hashlib

    return f"{slug[:60]}-{hashlib.sha1(name.encode()).hexdigest()[:10]}"


def file_slugs(datasets: list[str]) -> dict[str, str]:
    """Each dataset's :func:`file_slug`, made unique: names that differ only in the
    characters a slug replaces (``syn.a``, ``syn-a``) get a hash of the name each, so no
    dataset's plots overwrite another's."""
    import hashlib
    from collections import Counter

    slugs = {name: file_slug(name) for name in datasets}
    shared = Counter(slugs.values())
    return {name: slug if shared[slug] == 1 or slug == name
            else f"{slug}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"
            for name, slug in slugs.items()}  # fmt: skip


def quality(record: dict[str, Any]) -> float | None:
    """What the Pareto front and the budget table rank by: nDCG@10, else recall@10."""
    value = record.get("ndcg@10")
    return record.get("recall@10") if value is None else value


def label(record: dict[str, Any]) -> str:
    ef = f" ef{record['ef_search']}" if record.get("ef_search") else ""
    ef += f" nlist{record['nlist']} nprobe{record['nprobe']}" if record.get("nprobe") else ""
    rescore = " (+ float32 rescoring)" if record.get("rescored_from_float32") else ""
    adapted = " adapted" if record.get("full_dim_adapter") else ""
    payload = f", payload {record['payload']}" if record.get("payload") else ""
    return (f"{_label(record['method'])} {record['dim']}-d{adapted} {record['encoding']}, "
            f"{record['backend']} {record['index']}{ef}{rescore}{payload}")  # fmt: skip


def best_under(records: list[dict[str, Any]], budget: float) -> dict[str, Any] | None:
    fitting = [r for r in records if r["bytes_per_vector"] <= budget and quality(r) is not None]
    return max(fitting, key=lambda r: (quality(r), -r["p50_ms"]), default=None)


def write_report(results: str | Path, out: str | Path) -> Path:
    """``out/report.md`` and its PNGs, from the results file alone."""
    from smec_index.data import check_path_name

    check_path_name(results, "results")  # a path, before Path() of anything else
    check_path_name(out, "out")
    records = read_results(results)
    if not records:
        from smec_index.errors import SmecError

        raise SmecError(f"{results}: no runs stored yet; run `smec-index bench` first")
    out = Path(out)
    prepare_output(out, "report", overwrite=True, inputs=[results])
    with atomic_directory(out, kind="report") as stage:  # a killed report leaves no half
        _write(records, results, stage)
    return out / "report.md"


def recall_qps_curves(rows: list[dict[str, Any]]) -> dict[str, tuple[list[float], list[float]]]:
    """ann-benchmarks' recall@10 against QPS: a curve per index searched with several ef or
    nprobe values, in their order. Where no index was, the lone points of the original space
    (those of every dim would crowd the plot). ``rows``: one per setup (:func:`latest_runs`)."""
    latest: dict[str, dict[int, dict[str, Any]]] = {}
    for r in rows:
        if r["index"] in ("hnsw", "ivf"):
            name = f"{r['backend']} {r['index']} {r['method']} {r['dim']}-d {r['encoding']}"
            latest.setdefault(name, {})[r.get("ef_search") or r.get("nprobe") or 0] = r
    widest = max((r["dim"] for r in rows), default=0)
    swept = [name for name, points in latest.items() if len(points) > 1]
    lone = [name for name, points in latest.items()
            if next(iter(points.values()))["dim"] == widest]  # fmt: skip
    return {
        name: ([latest[name][p]["recall@10"] for p in sorted(latest[name])],
               [latest[name][p]["qps"] for p in sorted(latest[name])])
        for name in swept or lone
    }  # fmt: skip


def _data_print(record: dict[str, Any]) -> str:
    """The digest of the vectors, ids and judgements a run measured (its ``inputs`` less an
    artifact's part; "" for runs recorded before there was one)."""
    return str(record.get("inputs") or "").split("-")[0]


def dataset_names(records: list[dict[str, Any]]) -> dict[int, str]:
    """Each run's dataset as the report names it: its name, or, where runs of one name
    measured different data (two folders called ``ds``, other ``--embeddings``), the name
    and the data's digest."""
    prints: dict[str, set[str]] = {}
    for r in records:
        prints.setdefault(r["dataset"], set()).add(_data_print(r))
    return {id(r): r["dataset"] if len(prints[r["dataset"]]) == 1
            else f"{r['dataset']} (data {_data_print(r)[:8] or 'unrecorded'})"
            for r in records}  # fmt: skip


def latest_runs(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One run per setup: where a setup was measured again under the same label, graph
    settings and dataset (another chain trained, or the trainer changed since), its latest
    run; in first-measured order."""
    latest: dict[tuple, dict[str, Any]] = {}
    for r in sorted(records, key=lambda r: r.get("time", "")):  # other data: another setup
        latest[r["dataset"], _data_print(r), r["method"], label(r), r.get("M"),
               r.get("ef_construction")] = r  # fmt: skip
    kept = {id(r) for r in latest.values()}
    return [r for r in records if id(r) in kept]


def _write(records: list[dict[str, Any]], results: str | Path, out: Path) -> None:
    current = latest_runs(records)
    superseded = len(records) - len(current)
    lines = ["# smec-index bench report", "", f"From `{results}`: {len(records)} runs"
             + (f", of which {superseded} measured a setup again later and only the latest "
                "counts" if superseded else "")
             + ". Bytes per vector are the encoding's code alone; `index_bytes` is everything "
             "search needs (codes, graph, and for Qdrant's rescored quantization the float32 "
             "originals it rescores with, kept on disk).", ""]  # fmt: skip
    names = dataset_names(current)
    slugs = file_slugs(list(dict.fromkeys(names[id(r)] for r in current)))
    for dataset, slug in slugs.items():
        rows = [r for r in current if names[id(r)] == dataset]
        lines += _dataset_section(dataset, rows, out, slug)
    machine = records[-1].get("machine") or {}
    lines += ["## Machine and versions", "",
              f"- CPU: {machine.get('cpu')} x {machine.get('cpus')}; memory "
              f"{machine.get('memory_gib')} GiB; threads {machine.get('threads')}",
              f"- {', '.join(f'{k} {v}' for k, v in (records[-1].get('versions') or {}).items())}",
              ""]  # fmt: skip
    (out / "report.md").write_text("\n".join(lines))


def _dataset_section(dataset: str, rows: list[dict[str, Any]], out: Path,
                     slug: str) -> list[str]:  # fmt: skip
    from smec_index.bench.plots import facet_plot, line_plot, scatter_front

    every = rows  # runs with a payload are compared in their own table, and listed below
    rows = [r for r in rows if not r.get("payload")] or rows
    metric = "nDCG@10" if any(r.get("ndcg@10") is not None for r in rows) else "recall@10"
    lines = [f"## {dataset}", ""]
    # nDCG@10 against dim per method: exhaustive float32 where there is one
    by_method: dict[str, dict[int, float]] = {}
    for r in sorted(rows, key=lambda r: r["dim"]):
        if r["encoding"] == "float32" and quality(r) is not None:
            by_method.setdefault(r["method"], {})
            by_method[r["method"]][r["dim"]] = max(
                quality(r), by_method[r["method"]].get(r["dim"], float("-inf"))
            )
    if by_method:
        path = line_plot({m: (list(v), list(v.values())) for m, v in by_method.items()},
                         plot_path(out, slug, "quality-vs-dim"), f"{dataset}: {metric} vs dim",
                         "dim", metric, logx=True)  # fmt: skip
        lines += [f"![{metric} vs dim]({path.name})", ""]
        adapted = sorted({r["method"] for r in rows if r.get("full_dim_adapter")})
        if adapted:
            lines += [f"At the original dim, {' and '.join(adapted)}: the full-dim adapter "
                      "(the first stage's learned linear map before it selects dims; "
                      "`adapted` in the tables).", ""]  # fmt: skip
    latency: dict[str, dict[int, float]] = {}
    for r in sorted(rows, key=lambda r: r["dim"]):
        if r["encoding"] == "float32" and r["index"] == "hnsw":
            series = latency.setdefault(r["backend"], {})
            series[r["dim"]] = min(r["p50_ms"], series.get(r["dim"], float("inf")))
    if latency:
        path = line_plot({b: (list(v), list(v.values())) for b, v in latency.items()},
                         plot_path(out, slug, "p50-vs-dim"),
                         f"{dataset}: p50 latency vs dim (HNSW)", "dim",
                         "p50 ms (single client, log scale)", logx=True, logy=True)  # fmt: skip
        lines += [f"![p50 vs dim]({path.name})", ""]
    curves = recall_qps_curves(rows)
    if curves:
        panels: dict[str, dict] = {}
        for name, curve in curves.items():
            backend, rest = name.split(" ", 1)
            panels.setdefault(backend, {})[rest] = curve
        path = facet_plot(panels, plot_path(out, slug, "recall-vs-qps"),
                          f"{dataset}: recall@10 vs QPS (each point one ef or nprobe)",
                          "recall@10 against exact search", "QPS (single client)",
                          logy=True)  # fmt: skip
        lines += [f"![recall vs QPS]({path.name})", ""]
    rescoring = [r for r in rows if quality(r) is not None and r.get("rescored_from_float32")]
    scored = [r for r in rows if quality(r) is not None and not r.get("rescored_from_float32")]
    if scored:
        points = [(r["bytes_per_vector"], quality(r)) for r in scored]
        front = pareto(points)
        path = scatter_front(points, front, [label(scored[i]) for i in front],
                             plot_path(out, slug, "quality-vs-bytes"),
                             f"{dataset}: {metric} vs bytes per vector (Pareto front; no "
                             "rescoring)",
                             "bytes per vector (code only)", metric)  # fmt: skip
        lines += [
            f"![{metric} vs bytes]({path.name})",
            "",
            "### Pareto front",
            "",
            f"| bytes / vector | {metric} | configuration | p50 ms |",
            "|---|---|---|---|",
        ]
        lines += [f"| {points[i][0]:g} | {points[i][1]:.4f} | {label(scored[i])} | "
                  f"{scored[i]['p50_ms']:.3f} |" for i in front]  # fmt: skip
        lines += ["", "### Best configuration under B bytes per vector", "",
                  f"| B | best {metric} | configuration | p50 ms | index_bytes |",
                  "|---|---|---|---|---|"]  # fmt: skip
        for budget in BUDGETS:
            best = best_under(scored, budget)
            if best is None:
                lines.append(f"| {budget} | | nothing measured this small | | |")
            else:
                lines.append(f"| {budget} | {quality(best):.4f} | {label(best)} | "
                             f"{best['p50_ms']:.3f} | {best['index_bytes']:,} |")  # fmt: skip
        bests = {backend: best_under([r for r in scored if r["backend"] == backend
                                      and r["index"] == "hnsw"], PER_BACKEND)
                 for backend in dict.fromkeys(r["backend"] for r in scored)}  # fmt: skip
        bests = {backend: best for backend, best in bests.items() if best is not None}
        most = _levels(list(bests.values()))[-1:]
        if bests:
            lines += ["", f"Per backend, through its ANN index (HNSW), at <= {PER_BACKEND} "
                      "bytes per vector:", "", f"| backend | best {metric} | configuration | "
                      "p50 ms |" + "".join(f" QPS x{n} |" for n in most),
                      "|---|---|---|---|" + "---|" * len(most)]  # fmt: skip
        for backend, best in bests.items():
            qps = "".join(f" {_qps(best.get('concurrency') or {}, n)} |" for n in most)
            lines.append(f"| {backend} | {quality(best):.4f} | {label(best)} | "
                         f"{best['p50_ms']:.3f} |{qps}")  # fmt: skip
        lines += [""] + _smallest_keeping(scored, metric)
    if rescoring:
        lines += ["### Codes with float32 rescoring (Qdrant quantization)", "",
                  "Qdrant scans the codes (in RAM) and re-ranks with the float32 originals it "
                  "keeps on disk, so these are left out of the front and the budget table "
                  "above: their `index_bytes` include the originals.", "",
                  f"| bytes / vector (code) | {metric} | configuration | p50 ms | index_bytes |",
                  "|---|---|---|---|---|"]  # fmt: skip
        for budget in BUDGETS:
            best = best_under(rescoring, budget)
            if best is not None:
                lines.append(f"| <= {budget} | {quality(best):.4f} | {label(best)} | "
                             f"{best['p50_ms']:.3f} | {best['index_bytes']:,} |")  # fmt: skip
        lines.append("")
    lines += _iso_recall(rows)
    lines += _roofline(rows, slug, dataset, out)
    lines += _overhead(rows)
    lines += _payload_bytes(every)
    return [*lines, *_every_run(every), *_artifacts(every)]


def _payload_bytes(rows: list[dict[str, Any]]) -> list[str]:
    """Each index built bare and with its documents' title and text as payload, side by
    side: ``index_bytes`` (what search needs) must not move with the payload,
    ``total_bytes`` (everything kept) does."""
    def build(r: dict[str, Any]) -> tuple:
        return (r["backend"], r["index"], r["encoding"], r["method"], r["dim"], r.get("M"),
                r.get("ef_construction"), r.get("nlist"))  # fmt: skip

    bare = {build(r): r for r in rows if not r.get("payload")}
    table = []
    for r in rows:
        other = bare.pop(build(r), None) if r.get("payload") == "corpus" else None
        if other is None:
            continue
        change = ("" if not other["index_bytes"] or r["index_bytes"] is None
                  else f"{(r['index_bytes'] - other['index_bytes']) / other['index_bytes']:+.2%}")
        table.append(
            f"| {r['backend']} | {r['index']} | {r['encoding']} | {_label(r['method'])} | "
            f"{r['dim']} | {_bytes(other['index_bytes'])} | {_bytes(r['index_bytes'])} | "
            f"{change} | {other['total_bytes']:,} | {r['total_bytes']:,} |"
        )  # fmt: skip
    if not table:
        return []
    return ["### Payload: bytes of each index bare and with its documents' title and text", "",
            "The same vectors and index built twice, bare and with each document's title and "
            "text as its payload (as build stores them): `index_bytes` (what search needs: "
            "vectors or codes and the index) should not move with the payload; `total_bytes` "
            "(everything the collection keeps) does.", "",
            "| backend | index | encoding | method | dim | index_bytes bare | index_bytes with "
            "payload | change | total_bytes bare | total_bytes with payload |",
            "|" + "---|" * 10, *table, "", "How each backend's figures were measured:", "",
            *sorted({f"- {r['backend']}: {r['size_method']}" for r in rows
                     if r.get("size_method")}), ""]  # fmt: skip


def _bytes(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


def _every_run(rows: list[dict[str, Any]]) -> list[str]:
    """Every run, with a column only for what some run measured."""
    layers = sorted({r.get("timed_layer") or "Connector.search" for r in rows})
    levels = [n for n in _levels(rows) if n != "1"]
    columns: list[tuple[str, Any]] = [
        ("method", lambda r: _label(r["method"])), ("dim", lambda r: r["dim"]),
        ("backend", lambda r: r["backend"]), ("index", lambda r: r["index"]),
        ("ef", lambda r: r.get("ef_search") or ""), ("nprobe", lambda r: r.get("nprobe") or ""),
        ("encoding", lambda r: r["encoding"]), ("payload", lambda r: r.get("payload", "")),
        ("B/vec", lambda r: f"{r['bytes_per_vector']:g}"),
        ("index_bytes", lambda r: "" if r["index_bytes"] is None else f"{r['index_bytes']:,}"),
        ("total_bytes", lambda r: f"{r['total_bytes']:,}"),
        ("nDCG@10", lambda r: _num(r.get("ndcg@10"))),
        ("recall@10", lambda r: _num(r["recall@10"])),
        ("recall@10 vs original", lambda r: _num(r.get("recall@10_original"))),
        ("p50 ms", lambda r: f"{r['p50_ms']:.3f}"),
        ("engine p50 ms", lambda r: _num(r.get("engine_p50_ms"), 3)),
        ("p99 ms", lambda r: f"{r['p99_ms']:.3f}"), ("QPS", lambda r: f"{r['qps']:,.0f}"),
        *[(f"QPS x{n}", lambda r, n=n: _qps(r.get("concurrency") or {}, n)) for n in levels],
        ("build s", lambda r: f"{r['build_seconds']:.2f}"),
    ]  # fmt: skip
    shown = [(name, cell) for name, cell in columns if any(str(cell(r)) for r in rows)]
    lines = ["### Every run", "",
             f"p50 ms times {' / '.join(layers)}, one query at a time"
             + ("; engine p50 ms times the engine's own search call on the same index in the "
                "same run (in-process engines only)" if any(n == "engine p50 ms"
                                                             for n, _ in shown) else "")
             + ".", "", "| " + " | ".join(name for name, _ in shown) + " |",
             "|" + "---|" * len(shown)]  # fmt: skip
    lines += ["| " + " | ".join(str(cell(r)) for _, cell in shown) + " |" for r in rows]
    return [*lines, ""]


def _levels(rows: list[dict[str, Any]]) -> list[str]:
    """The client counts some run was measured with, in increasing order."""
    return sorted({n for r in rows for n, m in (r.get("concurrency") or {}).items() if m},
                  key=int)  # fmt: skip


def _artifacts(rows: list[dict[str, Any]]) -> list[str]:
    """The artifacts the tables name by their folder, with their paths."""
    paths = sorted({r["method"].split(":", 1)[1] for r in rows
                    if r["method"].startswith("artifact:")})  # fmt: skip
    if not paths:
        return []
    return ["Artifacts: " + "; ".join(f"`artifact:{Path(p).name}` is `{p}`" for p in paths)
            + ".", ""]  # fmt: skip



ISO_RECALL = 0.95


def _iso_recall(rows: list[dict[str, Any]]) -> list[str]:
    """Dims compared at equal recall: per backend and method, each dim's HNSW searched with
    the smallest ef that reaches recall@10 >= :data:`ISO_RECALL` against exact search in its
    own space, and its p50 and ``index_bytes`` against the widest dim's (the ratios of one
    run). Only where an ef sweep was measured at two dims or more."""
    swept: dict[tuple, dict[int, list[dict[str, Any]]]] = {}
    for r in rows:
        if r["index"] == "hnsw" and r["encoding"] == "float32" and r.get("ef_search"):
            key = (r["backend"], r.get("M"), r.get("ef_construction"))
            swept.setdefault(key, {}).setdefault(r["dim"], []).append(r)
    table = []
    for (backend, m, efc), dims in swept.items():
        if len(dims) < 2 or all(len(runs) < 2 for runs in dims.values()):
            continue
        chosen = {}
        for dim, runs in dims.items():
            reaching = [r for r in runs if r["recall@10"] >= ISO_RECALL]
            chosen[dim] = min(reaching, key=lambda r: r["ef_search"]) if reaching else None
        widest = chosen[max(chosen)]
        for dim in sorted(chosen, reverse=True):
            r = chosen[dim]
            if r is None:
                best = max(dims[dim], key=lambda r: r["recall@10"])
                table.append(f"| {backend} | {m} / {efc} | {_label(best['method'])} | {dim} | "
                             f"none up to ef {max(x['ef_search'] for x in dims[dim])} (best "
                             f"{best['recall@10']:.3f}) | | | | | | | |")  # fmt: skip
                continue
            same = widest and next((x for x in dims[dim]
                                    if x["ef_search"] == widest["ef_search"]), None)  # fmt: skip
            table.append(
                f"| {backend} | {m} / {efc} | {_label(r['method'])} | {dim} | {r['ef_search']} | "
                f"{r['recall@10']:.3f} | {_num(r.get('recall@10_original'), 3)} | "
                f"{r['p50_ms']:.4f} | "
                f"{_ratio(r['p50_ms'], widest and widest['p50_ms'])} | "
                f"{_ratio(same['p50_ms'], widest['p50_ms']) if same else ''} | "
                f"{r['index_bytes']:,} | "
                f"{_ratio(r['index_bytes'], widest and widest['index_bytes'])} |"
            )
    if not table:
        return []
    return [f"### Dims at equal recall: the smallest ef reaching recall@10 >= {ISO_RECALL}", "",
            "Each dim's index searched with each ef of the sweep (one build per dim); the row "
            "is the smallest ef whose recall@10 against exact search in that dim's own space "
            "reaches the bar. Ratios are to the widest dim's row, measured in the same run. "
            "The ef grid is coarse, so which ef first reaches the bar can turn on a recall "
            "difference of 0.001; \"at the same ef\" divides this dim's p50 at the widest "
            "dim's ef by the widest dim's, which does not. \"vs original\" is the same "
            "search's recall@10 against exact search over the original vectors: what the "
            "reduced dim and the index lose together (empty for runs stored before it was "
            "measured).",
            "", "| backend | M / ef_construction | method | dim | ef | recall@10 | "
            "recall@10 vs original | p50 ms | p50 ratio | p50 ratio at the same ef | "
            "index_bytes | bytes ratio |",
            "|" + "---|" * 12, *table, ""]  # fmt: skip


def _ratio(value: float, reference: float | None) -> str:
    return f"{value / reference:.3f}" if reference else ""


def _roofline(rows: list[dict[str, Any]], slug: str, dataset: str, out: Path) -> list[str]:
    """Exhaustive float32 search against the memory bandwidth measured in the same run."""
    from smec_index.bench.plots import roofline_plot

    scans = [r for r in rows if r.get("scan_gb_per_s") and r["machine"].get("memory_gb_per_s")]
    if not scans:
        return []
    bandwidth = scans[0]["machine"]["memory_gb_per_s"]
    series: dict[str, tuple[list[float], list[float]]] = {}
    for r in sorted(scans, key=lambda r: r["dim"]):
        x, y = series.setdefault(r["backend"], ([], []))
        x.append(r["n_docs"] * r["dim"] * 4 / 1e6)
        y.append(r["qps"])
    path = roofline_plot(series, bandwidth, plot_path(out, slug, "roofline"),
                         f"{dataset}: exhaustive float32 search vs memory bandwidth")  # fmt: skip
    lines = [f"### Roofline: exhaustive float32 search (memory bandwidth {bandwidth:g} GB/s, "
             "numpy copy, measured in the same run)", "", f"![roofline]({path.name})", "",
             "| backend | method | dim | MB / query | QPS | GB/s read | of bandwidth |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in sorted(scans, key=lambda r: (r["backend"], -r["dim"])):
        lines.append(
            f"| {r['backend']} | {r['method']} | {r['dim']} | "
            f"{r['n_docs'] * r['dim'] * 4 / 1e6:.2f} | {r['qps']:,.0f} | "
            f"{r['scan_gb_per_s']:.2f} | {r['scan_gb_per_s'] / bandwidth:.0%} |"
        )
    if any(r["scan_gb_per_s"] > bandwidth for r in scans):
        lines += [
            "",
            "Above 100%: those corpora fit in the CPU's caches, which are faster than memory; "
            "the roof binds on corpora larger than the last cache level.",
        ]
    return [*lines, ""]


def _smallest_keeping(scored: list[dict[str, Any]], metric: str) -> list[str]:
    originals = [r for r in scored if r["method"] == "none" and r["encoding"] == "float32"]
    if not originals:
        return []
    exact = [r for r in originals if r["index"] == "flat" and r["backend"] == "faiss"]
    reference = exact[0] if exact else max(originals, key=quality)  # exact search, else best
    keeping = [r for r in scored if quality(r) >= quality(reference)]
    smallest = min(keeping, key=lambda r: (r["bytes_per_vector"], -quality(r)))
    ratio = reference["bytes_per_vector"] / smallest["bytes_per_vector"]
    return [f"Smallest vector keeping the original's {metric} ({quality(reference):.4f}, "
            f"{reference['bytes_per_vector']:g} B): **{label(smallest)}**, "
            f"{smallest['bytes_per_vector']:g} B ({ratio:.1f}x smaller), {metric} "
            f"{quality(smallest):.4f}.", ""]  # fmt: skip


def _overhead(rows: list[dict[str, Any]]) -> list[str]:
    """What the public search path costs over the engine's own call (same index, same
    run, paired query by query), and what threads gain over one client."""
    timed = [r for r in rows if r.get("engine_p50_ms")]
    if not timed:
        return []
    most = [n for n in _levels(timed) if n != "1"][-1:]
    scaling_head = f" QPS x{most[0]} / x1 |" if most else ""
    lines = ["### The search path against the engine", "",
             "Ratios of the public path (`Searcher.search`, which `CompressedIndex.search` and "
             "`Connector.search` use) to the engine's own call on the same index, timed in "
             "turn in one run: single queries (p50) and one batch."
             + (f" QPS x{most[0]} / x1: {most[0]} client threads against one." if most else ""),
             "", "| backend | index | dim | docs | ef | p50 ms | engine p50 ms | ratio | "
             "batch ms | engine batch ms | ratio |" + scaling_head,
             "|" + "---|" * (11 + len(most))]  # fmt: skip
    for r in timed:
        conc = r.get("concurrency") or {}
        one, many = conc.get("1"), conc.get(most[0]) if most else None
        scaling = f" {many['qps'] / one['qps']:.2f} |" if one and many and one["qps"] else " |"
        batch = (f"{r['batch_ms']:.2f} | {r['engine_batch_ms']:.2f} | "
                 f"{r['batch_ms'] / r['engine_batch_ms']:.2f}"
                 if r.get("batch_ms") and r.get("engine_batch_ms") else " | | ")  # fmt: skip
        lines.append(
            f"| {r['backend']} | {r['index']} | {r['dim']} | {r['n_docs']:,} | "
            f"{r.get('ef_search') or ''} | {r['p50_ms']:.4f} | {r['engine_p50_ms']:.4f} | "
            f"{r['p50_ms'] / r['engine_p50_ms']:.2f} | {batch} |{scaling if most else ''}"
        )
    return [*lines, ""]


SUMMARY_ROWS = 30


def summary_lines(records: list[dict[str, Any]]) -> list[str]:
    """What one ``bench`` command measured, as a short table for the terminal (the report
    has every field): one line per run, at most :data:`SUMMARY_ROWS`."""
    if not records:
        return ["measured nothing new (every run was stored already; --force measures again)"]
    shown = records[:SUMMARY_ROWS]  # names as wide as they are (up to 48): never cut into
    names = dataset_names(shown)  # two folders called "ds" told apart
    data = max(7, min(48, max(len(names[id(r)]) for r in shown)))  # another valid one
    meth = max(6, min(32, max(len(_label(r["method"])) for r in shown)))
    head = (f"{'dataset':<{data}} {'method':<{meth}} {'dim':>5} {'backend':<9} {'index':<6} "
            f"{'encoding':<9} {'ef':>4} {'nDCG@10':>7} {'R@10':>6} {'p50 ms':>8} {'QPS':>8} "
            f"{'index MiB':>9}")  # fmt: skip
    lines = [head]
    for r in shown:
        lines.append(
            f"{_cell(names[id(r)], data)} {_cell(_label(r['method']), meth)} {r['dim']:>5} "
            f"{r['backend'][:9]:<9} {r['index'][:6]:<6} {r['encoding'][:9]:<9} "
            f"{r.get('ef_search') or r.get('nprobe') or '':>4} {_num(r.get('ndcg@10')):>7} "
            f"{_num(r['recall@10'], 3):>6} {r['p50_ms']:>8.3f} {r['qps']:>8,.0f} "
            f"{'' if r['index_bytes'] is None else format(r['index_bytes'] / 2**20, '.2f'):>9}"
        )
    if len(records) > SUMMARY_ROWS:
        lines.append(f"... and {len(records) - SUMMARY_ROWS} more runs (smec-index report)")
    return lines


def _cell(text: str, width: int) -> str:
    """``text`` left-aligned in ``width``; a longer one ends in "…", so it is never read as
    another name."""
    return f"{text:<{width}}" if len(text) <= width else f"{text[:width - 1]}…"


def _label(method: str) -> str:
    """An artifact by its folder's name, not its whole path, marked as one (a folder called
    ``truncate`` is not the method truncate)."""
    if method.startswith("artifact:"):
        return f"artifact:{Path(method.split(':', 1)[1]).name}"
    return method


def _num(value: float | None, places: int = 4) -> str:
    return "" if value is None else f"{value:.{places}f}"


def _qps(concurrency: dict[str, Any], clients: str) -> str:
    found = concurrency.get(clients)
    return "" if not found else f"{found['qps']:,.0f}"
