"""Bytes per backend, with and without payload: does ``index_bytes`` mean the same thing?

    python -m bench.bytes --dataset ../shared/data/scifact --dims 384,128,64

Builds every (backend, dim) twice through ``smec-index build``'s code path: once with the
documents' titles and texts as payload, once with both empty. ``index_bytes`` (what search
needs) must not move with the payload; ``total_bytes`` (everything kept) does. The Milvus
standalone server is started by the benchmark, and its sizes are read from its storage.
Writes ``bench/results/<dataset>-bytes.jsonl`` and ``.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from pathlib import Path

from tqdm.auto import tqdm

from bench.results import RESULTS_DIR, read_records, write_records
from smec_index.bench.plots import line_plot
from smec_index.build import BuildRequest, build, default_artifact
from smec_index.data import load_retrieval_data

HNSW = {"M": 16, "ef_construction": 200, "ef_search": 128}
# name -> (backend, connector options, index kind, params)
TARGETS = {
    "faiss-hnsw": ("faiss", {}, "hnsw", HNSW),
    "hnswlib": ("hnswlib", {}, "hnsw", HNSW),
    "qdrant-edge": ("qdrant", {"mode": "edge"}, "hnsw", HNSW),
    "qdrant-edge-int8": ("qdrant", {"mode": "edge"}, "hnsw", {**HNSW, "quantization": "scalar"}),
    "milvus-lite": ("milvus", {}, "hnsw", HNSW),
    "milvus-server": ("milvus", {"uri": None}, "hnsw", HNSW),
}


def milvus_server_options(stack: contextlib.ExitStack) -> dict:
    """Start a Milvus 2.3.5 standalone server for the stack's lifetime; its connector options
    (the URI, and its storage folder so that sizes are measured from its files)."""
    from smec_index.servers.milvus_standalone import milvus_standalone

    base = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="milvus-")))
    server = stack.enter_context(milvus_standalone(base))
    return {"uri": server.uri, "storage": str(server.storage)}


def build_request(
    dataset: Path,
    data,
    target: str,
    dim: int,
    data_dir: Path,
    artifact: Path | None,
    options: dict,
    collection: str,
    **extra,
) -> BuildRequest:
    """The build of one (target, dim): the artifact below the input dim, the original above."""
    backend, _, kind, params = TARGETS[target]
    return BuildRequest(
        dataset=dataset,
        backend=backend,
        dim=dim,
        data_dir=data_dir,
        artifact=artifact if dim != data.dim else None,
        collection=f"{collection}_{target.replace('-', '_')}_{dim}",
        index=kind,
        params=params,
        connector_options=options,
        overwrite=True,
        progress=False,
        **extra,
    )


def run(dataset: Path, dims: list[int], targets: list[str], data_dir: Path) -> list[dict]:
    data = load_retrieval_data(dataset)
    records = []
    with contextlib.ExitStack() as stack:
        server = milvus_server_options(stack) if "milvus-server" in targets else {}
        _, artifact = default_artifact(data, dims, data_dir, print)
        for name in tqdm(targets, desc="backends"):
            backend, options, _, _ = TARGETS[name]
            options = server if "uri" in options else options
            for dim in dims:
                for with_payload in (True, False):
                    request = build_request(
                        dataset, data, name, dim, data_dir, artifact, options,
                        collection=f"bytes{int(with_payload)}", payloads=with_payload,
                    )  # fmt: skip
                    summary = build(request, say=lambda _m: None)
                    records.append(
                        {
                            "dataset": data.dataset.name,
                            "target": name,
                            "backend": backend,
                            "dim": dim,
                            "payload": "title+text" if with_payload else "empty",
                            "count": summary["count"],
                            "index_bytes": summary["index_bytes"],
                            "total_bytes": summary["total_bytes"],
                            "bytes_method": summary["bytes_method"],
                        }
                    )
    return records


def report(path: Path) -> str:
    records = read_records(path)
    rows = []
    for r in records:
        if r["payload"] != "title+text":
            continue
        empty = next(
            e
            for e in records
            if e["target"] == r["target"] and e["dim"] == r["dim"] and e["payload"] == "empty"
        )
        change = (
            abs(r["index_bytes"] - empty["index_bytes"]) / empty["index_bytes"]
            if r["index_bytes"] and empty["index_bytes"]
            else float("nan")
        )
        rows.append(
            {
                "row": f"{r['target']} @{r['dim']}",
                "index_bytes": r["index_bytes"],
                "index_bytes (empty)": empty["index_bytes"],
                "index change": f"{100 * change:.2f}%",
                "total_bytes": r["total_bytes"],
                "total_bytes (empty)": empty["total_bytes"],
            }
        )
    columns = [
        "index_bytes",
        "index_bytes (empty)",
        "index change",
        "total_bytes",
        "total_bytes (empty)",
    ]
    methods = {r["target"]: r["bytes_method"] for r in records}
    text = (
        f"{records[0]['dataset']}: bytes with the payload (title + text) and with it empty\n\n"
        + "| backend @dim | "
        + " | ".join(columns)
        + " |\n"
        + "|---|"
        + "---|" * len(columns)
        + "\n"
        + "\n".join(
            f"| {r['row']} | " + " | ".join(_cell(r[c]) for c in columns) + " |" for r in rows
        )
        + "\n\nHow each backend's figures were measured:\n\n"
        + "\n".join(f"- {t}: {m}" for t, m in methods.items())
        + "\n"
    )
    path.with_suffix(".md").write_text(text)
    targets = list(dict.fromkeys(r["target"] for r in records))
    line_plot(
        {
            f"{t} ({kind})": (
                [r["dim"] for r in records if r["target"] == t and r["payload"] == "title+text"],
                [
                    r[f"{kind}_bytes"] / 2**20
                    for r in records
                    if r["target"] == t and r["payload"] == "title+text"
                ],
            )
            for t in targets
            for kind in ("index", "total")
        },
        path.with_suffix(".png"),
        f"{records[0]['dataset']}: index_bytes (what search needs) and total_bytes, by dim",
        "dimension",
        "MiB",
        logx=True,
    )
    return text


def _cell(value) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=Path("../shared/data/scifact"))
    parser.add_argument("--dims", default="384,128,64")
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--data-dir", type=Path, default=None, help="default: a temp dir")
    args = parser.parse_args()
    dims = [int(d) for d in args.dims.split(",")]
    targets = args.targets.split(",")
    with tempfile.TemporaryDirectory(prefix="smec-bytes-") as scratch:
        data_dir = args.data_dir or Path(scratch)
        records = run(args.dataset, dims, targets, data_dir)
    name = records[0]["dataset"]
    path = write_records(RESULTS_DIR / f"{name}-bytes.jsonl", records)
    print(report(path))


if __name__ == "__main__":
    main()
