"""`smec-index bench` and `report`: the CI smoke sweep (every embedded backend, two encodings,
a few thousand synthetic vectors), what a results line must hold, skipping stored runs, and
bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from smec_index.bench.report import pareto
from smec_index.bench.results import REQUIRED, SCHEMA
from smec_index.cli import main
from smec_index.errors import SmecError
from tests.probes import run_probe

SMOKE = ["bench", "--dataset", "synthetic:3000x64:rank8", "--methods", "none,pca",
         "--dims", "64,32", "--backends", "faiss,hnswlib,qdrant,milvus", "--encodings",
         "float32,sq8", "--index", "hnsw,flat", "--ef-search", "64", "--latency-queries", "30",
         "--concurrency", "1,2"]  # fmt: skip


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> tuple[Path, list[dict]]:
    out = tmp_path_factory.mktemp("bench") / "results.jsonl"
    done = run(*SMOKE, "--out", out)
    assert done.exit_code == 0, done.output
    return out, [json.loads(line) for line in out.read_text().splitlines()]


@pytest.mark.slow
def test_smoke_sweep_lines_are_complete_and_plausible(smoke):
    _, records = smoke
    seen = {(r["backend"], r["index"], r["encoding"]) for r in records}
    assert {("faiss", "hnsw", "sq8"), ("faiss", "flat", "sq8"), ("qdrant", "hnsw", "sq8"),
            ("hnswlib", "hnsw", "float32"), ("milvus", "hnsw", "float32"),
            ("milvus", "flat", "float32"), ("qdrant", "flat", "float32")} <= seen  # fmt: skip
    assert ("hnswlib", "flat", "float32") not in seen and ("milvus", "hnsw", "sq8") not in seen
    for r in records:
        assert r["schema"] == SCHEMA
        missing = [key for key in REQUIRED if key not in r]
        assert not missing, missing
        assert 0.0 <= r["recall@10"] <= 1.0 and 0.0 < r["ndcg@10"] <= 1.0
        assert 0 < r["index_bytes"] <= r["total_bytes"], r
        assert 0 < r["p50_ms"] <= r["p95_ms"] <= r["p99_ms"] and r["qps"] > 0
        assert set(r["concurrency"]) == {"1", "2"} and r["build_seconds"] > 0
        assert r["versions"]["faiss-cpu"] and r["machine"]["cpus"] >= 1
        if r["index"] == "flat" and r["encoding"] == "float32":
            assert r["recall@10"] == 1.0, r  # exhaustive float32 search is exact search
            assert 0 < r["scan_gb_per_s"] and r["machine"]["memory_gb_per_s"] > 0

    def size(method, dim, backend, index, encoding):
        (match,) = [r for r in records if (r["method"], r["dim"], r["backend"], r["index"],
                                           r["encoding"]) == (method, dim, backend, index,
                                                              encoding)]  # fmt: skip
        return match["index_bytes"]

    for backend, index in (("faiss", "flat"), ("faiss", "hnsw"), ("hnswlib", "hnsw"),
                           ("qdrant", "hnsw"), ("milvus", "hnsw")):  # fmt: skip
        assert size("pca", 32, backend, index, "float32") < size("none", 64, backend, index,
                                                                 "float32")  # fmt: skip
    assert size("none", 64, "faiss", "flat", "sq8") < size("none", 64, "faiss", "flat", "float32")
    assert size("pca", 32, "faiss", "hnsw", "sq8") < size("pca", 32, "faiss", "hnsw", "float32")


@pytest.mark.slow
def test_report_renders_from_results_and_reruns_skip_stored_runs(smoke, tmp_path):
    out, records = smoke
    again = run(*SMOKE, "--out", out)
    assert again.exit_code == 0, again.output
    assert len(out.read_text().splitlines()) == len(records), "stored runs were measured again"
    for method in ("none", "pca"):  # nothing fitted either
        assert f"every run of {method} on synthetic:3000x64:rank8 is stored" in again.output

    shown = run("report", out, "--out", tmp_path / "report")
    assert shown.exit_code == 0, shown.output
    report = (tmp_path / "report" / "report.md").read_text()
    assert "Pareto front" in report and "Best configuration under B bytes" in report
    for budget in (16, 32, 64, 128, 256):
        assert f"\n| {budget} | " in report
    plots = sorted(p.name for p in (tmp_path / "report").glob("*.png"))
    assert len(plots) == 5 and all((tmp_path / "report" / p).stat().st_size > 1000 for p in plots)
    assert "Roofline" in report and "of bandwidth" in report
    # Columns only for what was measured: these clients were 1 and 2, no table is empty.
    assert "QPS x2" in report and "QPS x4" not in report and "QPS x8" not in report
    for table_line in (line for line in report.splitlines() if line.startswith("| method")):
        header = [c.strip() for c in table_line.strip("|").split("|")]
        at = report.splitlines().index(table_line)
        body = [[c.strip() for c in line.strip("|").split("|")]
                for line in report.splitlines()[at + 2:] if line.startswith("|")]  # fmt: skip
        for k, name in enumerate(header):
            assert any(row[k] for row in body if len(row) == len(header)), name
    again = run("report", out, "--out", tmp_path / "report")  # its own earlier report: replaced
    assert again.exit_code == 0, again.output


def test_an_ef_sweep_builds_each_index_once(tmp_path):
    out = tmp_path / "ef.jsonl"
    done = run("bench", "--dataset", "synthetic:3000x64:rank8", "--methods", "none", "--dims",
               "64", "--backends", "faiss,hnswlib,qdrant", "--encodings", "float32", "--index",
               "hnsw", "--ef-search", "10,200", "--latency-queries", "20", "--concurrency", "1",
               "--out", out)  # fmt: skip
    assert done.exit_code == 0, done.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    for backend in ("faiss", "hnswlib", "qdrant"):
        narrow, wide = sorted((r for r in records if r["backend"] == backend),
                              key=lambda r: r["ef_search"])  # fmt: skip
        assert (narrow["ef_search"], wide["ef_search"]) == (10, 200)
        # one build measured once, searched with each beam
        assert narrow["build_seconds"] == wide["build_seconds"]
        assert narrow["index_bytes"] == wide["index_bytes"]
        assert narrow["recall@10"] < wide["recall@10"], backend


def test_recall_against_the_original_vectors_is_what_the_dim_and_the_index_lose(tmp_path):
    """recall@10 is the index against exact search in its own space (1.0 for a flat index);
    recall@10_original is the same top 10 against exact search over the original vectors."""
    from smec_index.bench.runner import Dataset, _project, fit_method, load_dataset
    from smec_index.bench.sweep import Sweep
    from smec_index.metrics import recall_vs_exact
    from smec_index.vectors import exact_search

    out = tmp_path / "orig.jsonl"
    done = run("bench", "--dataset", "synthetic:3000x64:rank8", "--methods", "none,pca",
               "--dims", "64,4", "--backends", "faiss", "--encodings", "float32", "--index",
               "flat,hnsw", "--ef-search", "64", "--latency-queries", "20", "--concurrency",
               "1", "--out", out)  # fmt: skip
    assert done.exit_code == 0, done.output
    records = {(r["method"], r["dim"], r["index"]): r
               for r in map(json.loads, out.read_text().splitlines())}  # fmt: skip
    for index in ("flat", "hnsw"):
        full = records[("none", 64, index)]
        assert full["recall@10_original"] == full["recall@10"]
    small = records[("pca", 4, "flat")]
    assert small["recall@10"] == 1.0  # exact in its own 4-d space ...
    # ... and what 4 dims of rank-8 data keep of the 64-d neighbours, found independently
    sweep = Sweep(datasets=[], out=out)
    dataset: Dataset = load_dataset("synthetic:3000x64:rank8", sweep)
    queries = dataset.data.queries.take(dataset.query_ids)
    pca = fit_method("pca", [64, 4], dataset, sweep)
    reduced = exact_search(*_project(pca, dataset, queries, 4), 10)[1]
    original = exact_search(*_project(None, dataset, queries, 64), 10)[1]
    ids = dataset.data.corpus.ids
    expected = recall_vs_exact([[ids[r] for r in row] for row in reduced],
                               [[ids[r] for r in row] for row in original], 10)  # fmt: skip
    assert small["recall@10_original"] == round(expected, 4) < 0.9, small
    assert run("report", out, "--out", tmp_path / "r").exit_code == 0
    assert "| recall@10 vs original |" in (tmp_path / "r" / "report.md").read_text()


@pytest.mark.parametrize("backend", ["faiss", "qdrant", "milvus"])
def test_a_payload_moves_total_bytes_and_not_index_bytes(tmp_path, backend):
    """payloads none,corpus: each index built bare and with its documents' title and text
    (what bench/bytes.py measured, now a sweep axis)."""
    from tests.test_probes_hostile import _dataset

    out = tmp_path / "bytes.jsonl"
    done = run("bench", "--dataset", _dataset(tmp_path), "--methods", "none", "--backends",
               backend, "--payloads", "none,corpus", "--latency-queries", "5",
               "--concurrency", "1", "--out", out)  # fmt: skip
    assert done.exit_code == 0, done.output
    bare, full = sorted((json.loads(line) for line in out.read_text().splitlines()),
                        key=lambda r: "payload" in r)  # fmt: skip
    assert "payload" not in bare and full["payload"] == "corpus" and bare["key"] != full["key"]
    assert full["index_bytes"] == bare["index_bytes"] > 0, (bare, full)
    assert full["total_bytes"] > bare["total_bytes"], (bare, full)
    assert run("report", out, "--out", tmp_path / "r").exit_code == 0
    text = (tmp_path / "r" / "report.md").read_text()
    assert "### Payload: bytes of each index bare and with" in text
    assert f"| {full['index_bytes']:,} | +0.00% | {bare['total_bytes']:,} |" in text


@pytest.mark.parametrize("payloads, fragment", [
    ("corpus", "has no documents' text"), ("title", "unknown payloads 'title'"),
    ("none,none", "a value twice")])  # fmt: skip
def test_a_payload_axis_that_cannot_run_is_refused_first(tmp_path, payloads, fragment):
    run_probe(["bench", "--dataset", "synthetic:300x8", "--payloads", payloads, "--out",
               tmp_path / "x.jsonl"], tmp_path, fragment)  # fmt: skip


def test_inverted_files_sweep_nprobe_on_one_build(tmp_path):
    out = tmp_path / "ivf.jsonl"
    done = run("bench", "--dataset", "synthetic:3000x64:rank8", "--methods", "none", "--dims",
               "64", "--backends", "faiss,milvus", "--encodings", "float32,sq8,rabitq", "--index",
               "ivf", "--nlist", "32", "--nprobe", "1,32", "--latency-queries", "20",
               "--concurrency", "1", "--out", out)  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "milvus ivf has encodings float32, sq8" in done.output  # rabitq: faiss only
    records = [json.loads(line) for line in out.read_text().splitlines()]
    built = {(r["backend"], r["encoding"]) for r in records}
    assert built == {("faiss", "float32"), ("faiss", "sq8"), ("faiss", "rabitq"),
                     ("milvus", "float32"), ("milvus", "sq8")}  # fmt: skip
    for backend, encoding in built:
        one, every = sorted((r for r in records if (r["backend"], r["encoding"]) ==
                             (backend, encoding)), key=lambda r: r["nprobe"])  # fmt: skip
        assert (one["nprobe"], every["nprobe"], one["nlist"]) == (1, 32, 32)
        assert one["build_seconds"] == every["build_seconds"]  # one build, two probes
        if encoding != "rabitq":  # 1-bit estimates may rank worse with more candidates
            assert one["recall@10"] < every["recall@10"], (backend, encoding)
        if encoding == "float32":  # every list probed: exact search
            assert every["recall@10"] == 1.0
    sizes = {(r["backend"], r["encoding"]): r["index_bytes"] for r in records}
    for backend in ("faiss", "milvus"):
        assert sizes[backend, "sq8"] < sizes[backend, "float32"]
    assert sizes["faiss", "rabitq"] < sizes["faiss", "sq8"]


@pytest.mark.slow
@pytest.mark.server
def test_a_servers_concurrent_clients_are_processes(tmp_path):
    """The Milvus 2.3.5 server the bench starts itself: its clients search from processes of
    their own; an embedded backend's from threads (its files are locked to one process)."""
    out = tmp_path / "server.jsonl"
    done = run("bench", "--dataset", "synthetic:2000x32:rank8", "--methods", "none",
               "--backends", "milvus-server,faiss", "--index", "flat", "--latency-queries",
               "20", "--concurrency", "1,2", "--out", out)  # fmt: skip
    assert done.exit_code == 0, done.output
    runs = {r["backend"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert runs["milvus-server"]["concurrency_mode"] == "client processes"
    assert runs["faiss"]["concurrency_mode"] == "threads in one process"
    for record in runs.values():
        assert record["recall@10"] == 1.0
        for clients in ("1", "2"):
            measured = record["concurrency"][clients]
            assert measured["qps"] > 0 and measured["p99_ms"] > 0


def test_qdrant_bit_encodings_map_to_the_engine_and_count_their_bits():
    from smec_index.bench.encodings import bytes_per_vector, index_params, supports

    for encoding, params, code_bytes in (
        ("binary", {"quantization": "binary", "bits": 1.0}, 16),
        ("binary1.5", {"quantization": "binary", "bits": 1.5}, 24),
        ("binary2", {"quantization": "binary", "bits": 2.0}, 32),
        ("turbo1.5", {"quantization": "turbo", "bits": 1.5}, 24),
        ("turbo4", {"quantization": "turbo", "bits": 4.0}, 64),
    ):
        assert index_params("qdrant", encoding, 128) == params
        assert bytes_per_vector(encoding, 128) == code_bytes
        assert supports("qdrant", "hnsw", encoding, 128) is None
        if encoding != "binary":
            assert "faiss has encodings" in supports("faiss", "hnsw", encoding, 128)
    # FAISS's 1-bit codes: an exhaustive Hamming scan, not rescored.
    assert supports("faiss", "flat", "binary", 128) is None
    assert "exhaustive Hamming scan" in supports("faiss", "hnsw", "binary", 128)
    assert index_params("faiss", "binary", 128) == {"encoding": "binary"}
    # OPQ: FAISS's product codes after a learnt rotation, flat or HNSW, m bytes a vector.
    assert supports("faiss", "hnsw", "opq64", 128) is None
    assert supports("faiss", "flat", "opq64", 128) is None
    assert bytes_per_vector("opq64", 128) == 64
    assert index_params("faiss", "opq64", 128) == {"encoding": "opq64"}
    assert "faiss ivf has encodings" in supports("faiss", "ivf", "opq64", 128)
    assert "do not divide dim" in supports("faiss", "flat", "opq48", 128)
    assert "qdrant has encodings" in supports("qdrant", "hnsw", "opq16", 128)


def test_a_qdrant_code_without_rescoring_is_the_same_code_searched_alone():
    from smec_index.bench.encodings import (
        bytes_per_vector,
        check_encoding,
        index_params,
        rescored,
        supports,
    )

    check_encoding("turbo2-norescore")
    assert index_params("qdrant", "turbo2-norescore", 256) == {
        "quantization": "turbo", "bits": 2.0, "rescore": False}  # fmt: skip
    assert index_params("qdrant", "pq16-norescore", 256)["pq_compression"] == 64
    assert bytes_per_vector("turbo2-norescore", 256) == bytes_per_vector("turbo2", 256) == 64
    assert rescored("qdrant", "turbo2") and not rescored("qdrant", "turbo2-norescore")
    assert supports("qdrant", "hnsw", "sq8-norescore", 64) is None
    assert "only Qdrant's codes are rescored" in supports("faiss", "hnsw", "sq8-norescore", 64)
    assert "exact search reads the float32" in supports("qdrant", "flat", "sq8-norescore", 64)
    with pytest.raises(SmecError, match="float32 has nothing to rescore"):
        check_encoding("float32-norescore")
    with pytest.raises(SmecError, match="unknown encoding 'int3-norescore'"):
        check_encoding("int3-norescore")


@pytest.mark.slow
def test_smec_is_measured_at_the_original_dim_through_its_full_dim_adapter(tmp_path):
    from smec_index.synthetic import synthetic_retrieval, write_beir

    data, qrels = synthetic_retrieval(1500, 200, 32, 8, seed=5)
    ids = list(qrels)
    splits = {"train": {q: qrels[q] for q in ids[:150]}, "test": {q: qrels[q] for q in ids[150:]}}
    dataset = write_beir(tmp_path / "d", data, splits)
    out = tmp_path / "r.jsonl"
    done = run("bench", "--dataset", dataset, "--methods", "none,pca,smec", "--dims", "32,8",
               "--backends", "faiss", "--encodings", "float32", "--index", "flat",
               "--latency-queries", "10", "--concurrency", "1", "--out", out)  # fmt: skip
    assert done.exit_code == 0, done.output
    runs = {(r["method"], r["dim"]): r for r in map(json.loads, out.read_text().splitlines())}
    assert set(runs) == {("none", 32), ("pca", 8), ("smec", 32), ("smec", 8)}
    assert runs["smec", 32]["full_dim_adapter"] is True
    assert all("full_dim_adapter" not in runs[k] for k in runs if k != ("smec", 32))
    assert runs["smec", 32]["recall@10"] == 1.0  # exact search in the adapted space
    assert runs["smec", 32]["ndcg@10"] != runs["none", 32]["ndcg@10"]
    # The chain trained is the run's identity: dim 8, through SMEC's 24-d lead-in stage.
    assert runs["smec", 8]["trained_dims"] == [8] and runs["smec", 8]["lead_in"] == 24
    assert "lead_in" not in runs["pca", 8]


def test_recall_qps_curves_follow_swept_indexes_and_keep_the_latest_run():
    from smec_index.bench.report import latest_runs, recall_qps_curves

    def run(dim, ef, recall, time, index="hnsw", lead_in=None):
        return {"dataset": "d", "backend": "faiss", "index": index, "method": "smec", "dim": dim,
                "encoding": "float32", "ef_search": ef, "recall@10": recall,
                "qps": 1000 / (ef or 1), "time": time, "lead_in": lead_in}  # fmt: skip

    lone = [run(384, 64, 0.9, "t1"), run(128, 64, 0.8, "t1"), run(384, None, 1.0, "t1", "flat")]
    assert recall_qps_curves(lone) == {"faiss hnsw smec 384-d float32": ([0.9], [1000 / 64])}
    # The 128-d setup at ef 64 measured three times (another trainer, say): t3 is the latest.
    again = [run(128, 64, 0.85, "t3", lead_in=256), run(128, 64, 0.7, "t0")]
    swept = latest_runs([*lone, run(128, 16, 0.5, "t2"), *again])
    assert len(swept) == 4 and again[0] in swept and lone[1] not in swept
    assert recall_qps_curves(swept) == {
        "faiss hnsw smec 128-d float32": ([0.5, 0.85], [1000 / 16, 1000 / 64])}  # fmt: skip


def test_pareto_front():
    points = [(8, 0.5), (16, 0.7), (16, 0.6), (32, 0.65), (64, 0.8), (4, 0.2), (64, 0.8)]
    assert pareto(points) == [5, 0, 1, 4]


def test_bad_input_is_one_line_before_any_work(tmp_path):
    out = tmp_path / "r.jsonl"
    base = ["bench", "--dataset", "synthetic:500x16", "--out", out]
    run_probe([*base, "--backends", "faiss,weaviate"], tmp_path, "unknown backend 'weaviate'")
    run_probe([*base, "--encodings", "float32,int3"], tmp_path, "unknown encoding 'int3'")
    run_probe([*base, "--encodings", "turbo3"], tmp_path, "unknown encoding 'turbo3'")
    run_probe([*base, "--index", "diskann"], tmp_path, "unknown index 'diskann'")
    run_probe([*base, "--nprobe", "0"], tmp_path, "nprobe must be a positive integer")
    run_probe([*base, "--index", "ivf", "--nlist", "600"], tmp_path, "more lists than")
    run_probe([*base, "--index", "ivf", "--nprobe", "200"], tmp_path, "more than --nlist 128")
    run_probe([*base, "--ef-search", "0"], tmp_path, "ef_search must be a positive integer")
    run_probe([*base, "--methods", "pca,magic"], tmp_path, "unknown method 'magic'")
    run_probe(["bench", "--dataset", "synthetic:big", "--out", out], tmp_path, "synthetic:NxD")
    run_probe(["bench", "--dataset", "synthetic:500x16"], tmp_path, "--out")
    config = tmp_path / "sweep.toml"
    config.write_text('datasets = ["synthetic:500x16"]\nout = "r.jsonl"\nef = [1]\n')
    run_probe(["bench", "--config", config], tmp_path, "unknown setting 'ef'")
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"dataset": "x", "qps": 1}) + "\n")
    run_probe(["report", other, "--out", tmp_path / "rep"], tmp_path, "schema None")
    run_probe(["bench", "--dataset", "synthetic:500x16", "--out", other], tmp_path, "schema None")
    assert not out.exists()


def test_a_dataset_without_qrels_still_measures_speed(tmp_path):
    """No qrels/test.tsv: nDCG@10 stays empty (a note says so), the rest is measured."""
    from smec_index.synthetic import synthetic_retrieval, write_beir

    data, qrels = synthetic_retrieval(800, 40, 16, 4)
    root = tmp_path / "unjudged"
    write_beir(root, data, {})  # no qrels at all
    done = run("bench", "--dataset", root, "--out", tmp_path / "r.jsonl", "--index", "flat",
               "--latency-queries", "10", "--concurrency", "1")  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "nDCG@10 stays empty" in done.output
    (record,) = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert record["ndcg@10"] is None and record["recall@10"] == 1.0 and record["qps"] > 0


@pytest.mark.slow
def test_from_a_wheel_in_a_fresh_venv_outside_the_repository(tmp_path):
    """Build the wheel, install it (no dependencies: those come from this environment) into
    a new venv, and run `smec-index bench --config` and `report` from a folder outside the
    repository: the installed package, not the checkout, does the work."""
    repo = Path(__file__).resolve().parents[1]
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(wheels), str(repo)], check=True, timeout=300)  # fmt: skip
    (wheel,) = wheels.glob("smec_index-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    import site

    (site_dir,) = (venv / "lib").glob("python*/site-packages")
    deps = [p for p in site.getsitepackages() if "site-packages" in p]
    (site_dir / "deps.pth").write_text("\n".join(deps) + "\n")  # dependencies, after the wheel
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q",
                    "--target", str(site_dir), str(wheel)], check=True)  # fmt: skip
    python = venv / "bin" / "python"
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = subprocess.run([str(python), "-c", "import smec_index; print(smec_index.__file__)"],
                           cwd=work, capture_output=True, text=True, check=True)  # fmt: skip
    assert str(site_dir) in where.stdout and str(repo) not in where.stdout, where.stdout
    (work / "sweep.toml").write_text(
        'datasets = ["synthetic:1500x32:rank6"]\nmethods = ["none", "pca"]\ndims = [32, 16]\n'
        'backends = ["faiss", "hnswlib"]\nencodings = ["float32", "sq8"]\n'
        'index = ["hnsw", "flat"]\nlatency_queries = 20\nconcurrency = [1, 2]\n'
        'out = "results/sweep.jsonl"\n'
    )
    cli = [str(python), "-m", "smec_index.cli"]
    done = subprocess.run([*cli, "bench", "--config", "sweep.toml"], cwd=work,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    lines = (work / "results" / "sweep.jsonl").read_text().splitlines()
    assert len(lines) == 10  # none 32 x (faiss hnsw/flat x 2 + hnswlib) = 5, pca 16 the same
    shown = subprocess.run([*cli, "report", "results/sweep.jsonl", "--out", "report"], cwd=work,
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert (work / "report" / "report.md").is_file() and list((work / "report").glob("*.png"))


def test_the_terminal_summary_names_each_run_and_says_when_nothing_was_new():
    from smec_index.bench.report import SUMMARY_ROWS, summary_lines

    run = {"dataset": "ds", "method": "artifact:/a/very/long/path/smec-128", "dim": 128,
           "backend": "faiss", "index": "hnsw", "encoding": "float32", "ef_search": 64,
           "ndcg@10": 0.71234, "recall@10": 0.99, "p50_ms": 0.123, "qps": 8000.0,
           "index_bytes": 2**21}  # fmt: skip
    lines = summary_lines([run])
    assert len(lines) == 2 and "smec-128" in lines[1] and "/a/very" not in lines[1]
    assert "0.7123" in lines[1] and "2.00" in lines[1]
    many = summary_lines([run] * (SUMMARY_ROWS + 5))
    assert len(many) == SUMMARY_ROWS + 2 and many[-1].startswith("... and 5 more")
    assert "stored already" in summary_lines([])[0]


def test_plots_hold_at_most_eight_series_a_panel_and_labels_are_short():
    from smec_index.bench.plots import INSIDE_LEGEND, facets
    from smec_index.bench.report import label

    panels = {"faiss": {f"curve {i}": ([0.5], [1.0]) for i in range(20)}, "hnswlib": {"a": 1}}
    cut = facets(panels)
    assert [name for name, _ in cut] == ["faiss (1/3)", "faiss (2/3)", "faiss (3/3)", "hnswlib"]
    assert all(len(series) <= INSIDE_LEGEND for _, series in cut)
    assert sum(len(series) for _, series in cut) == 21
    record = {"method": "artifact:/home/me/runs/smec-nf", "dim": 64, "encoding": "float32",
              "backend": "faiss", "index": "hnsw", "ef_search": 64}  # fmt: skip
    assert label(record) == "artifact:smec-nf 64-d float32, faiss hnsw ef64"


def test_dims_at_equal_recall_take_the_smallest_ef_reaching_it():
    from smec_index.bench.report import _iso_recall

    def run_(dim, ef, recall, p50, size):
        return {"backend": "faiss", "index": "hnsw", "encoding": "float32", "method": "pca",
                "dim": dim, "ef_search": ef, "recall@10": recall, "p50_ms": p50,
                "index_bytes": size, "M": 32, "ef_construction": 100}  # fmt: skip

    rows = [run_(384, 16, 0.90, 0.05, 1000), run_(384, 32, 0.96, 0.08, 1000),
            run_(384, 64, 0.99, 0.12, 1000), run_(64, 16, 0.97, 0.02, 250),
            run_(64, 32, 0.99, 0.03, 250), run_(32, 16, 0.80, 0.01, 150),
            run_(32, 32, 0.85, 0.015, 150)]  # fmt: skip
    lines = _iso_recall(rows)
    body = [line for line in lines if line.startswith("| faiss")]
    assert body[0].startswith(
        "| faiss | 32 / 100 | pca | 384 | 32 | 0.960 |  | 0.0800 | 1.000 | 1.000 |")
    assert "| 64 | 16 | 0.970 |  | 0.0200 | 0.250 | 0.375 | 250 | 0.250 |" in body[1]
    assert "none up to ef 32 (best 0.850)" in body[2]
    assert _iso_recall([r for r in rows if r["dim"] == 384]) == []  # one dim: nothing to compare
