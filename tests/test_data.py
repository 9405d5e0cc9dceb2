"""Loading embeddings and qrels: happy paths and one-line SmecErrors for every bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from smec_index.data import (
    Embeddings,
    RetrievalData,
    check_qrels,
    load_embedding_dir,
    load_npy,
    load_parquet,
    load_retrieval_data,
    read_qrels,
)
from smec_index.errors import SmecError


def _assert_one_line(excinfo: pytest.ExceptionInfo, *fragments: str) -> str:
    message = str(excinfo.value)
    assert type(excinfo.value) is SmecError
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message
    return message


def _write_npy(directory: Path, name: str, vectors: np.ndarray, ids: list[str]) -> None:
    np.save(directory / f"{name}.npy", vectors)
    ids_name = "query_ids.txt" if name == "queries" else f"{name}_ids.txt"
    (directory / ids_name).write_text("".join(f"{i}\n" for i in ids))


def _write_parquet(path: Path, ids: list[str], vectors: list, **names: str) -> None:
    table = pa.table({names.get("id", "id"): ids, names.get("vector", "vector"): vectors})
    pq.write_table(table, path)


def _write_beir(root: Path, corpus: np.ndarray, queries: np.ndarray, qrels: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    docs = [f"d{i}" for i in range(len(corpus))]
    qids = [f"q{i}" for i in range(len(queries))]
    (root / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": d, "title": "", "text": d}) + "\n" for d in docs)
    )
    (root / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": q, "text": q}) + "\n" for q in qids)
    )
    (root / "qrels").mkdir(exist_ok=True)
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + qrels)
    embeddings = root / "embeddings" / "all-MiniLM-L6-v2"
    embeddings.mkdir(parents=True, exist_ok=True)
    _write_npy(embeddings, "corpus", corpus, docs)
    _write_npy(embeddings, "queries", queries, qids)
    return root


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


# -- .npy + ids ------------------------------------------------------------------------------
def test_load_npy_maps_ids_to_rows(tmp_path: Path, rng: np.random.Generator) -> None:
    vectors = rng.standard_normal((5, 4)).astype(np.float32)
    _write_npy(tmp_path, "corpus", vectors, ["a", "b", "c", "d", "e"])
    emb = load_npy(tmp_path / "corpus.npy", tmp_path / "corpus_ids.txt")
    assert len(emb) == 5 and emb.dim == 4
    assert emb.row("d") == 3 and "e" in emb and "z" not in emb
    np.testing.assert_array_equal(emb.take(["d", "a", "d"]), vectors[[3, 0, 3]])
    assert emb.take(["b"]).dtype == np.float32


def test_load_npy_converts_float64_to_float32(tmp_path: Path, rng: np.random.Generator) -> None:
    vectors = rng.standard_normal((3, 2))
    _write_npy(tmp_path, "corpus", vectors, ["x", "y", "z"])
    emb = load_npy(tmp_path / "corpus.npy", tmp_path / "corpus_ids.txt")
    assert emb.vectors.dtype == np.float32
    np.testing.assert_allclose(emb.take(["z"])[0], vectors[2], rtol=1e-6)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_load_npy_rejects_non_finite_row(tmp_path: Path, bad: float) -> None:
    vectors = np.ones((4, 3), dtype=np.float32)
    vectors[2, 1] = bad
    _write_npy(tmp_path, "corpus", vectors, ["a", "b", "c", "d"])
    with pytest.raises(SmecError) as excinfo:
        load_npy(tmp_path / "corpus.npy", tmp_path / "corpus_ids.txt")
    _assert_one_line(excinfo, "row 2", "'c'", "NaN or inf")


def test_load_npy_rejects_ids_count_mismatch(tmp_path: Path) -> None:
    _write_npy(tmp_path, "corpus", np.ones((3, 2), dtype=np.float32), ["a", "b"])
    with pytest.raises(SmecError) as excinfo:
        load_npy(tmp_path / "corpus.npy", tmp_path / "corpus_ids.txt")
    _assert_one_line(excinfo, "2 ids for 3 vectors")


def test_load_npy_rejects_duplicate_ids(tmp_path: Path) -> None:
    _write_npy(tmp_path, "corpus", np.ones((3, 2), dtype=np.float32), ["a", "b", "a"])
    with pytest.raises(SmecError) as excinfo:
        load_npy(tmp_path / "corpus.npy", tmp_path / "corpus_ids.txt")
    _assert_one_line(excinfo, "duplicate id 'a'")


def test_load_npy_rejects_1d_array(tmp_path: Path) -> None:
    _write_npy(tmp_path, "corpus", np.ones(3, dtype=np.float32), ["a", "b", "c"])
    with pytest.raises(SmecError) as excinfo:
        load_npy(tmp_path / "corpus.npy", tmp_path / "corpus_ids.txt")
    _assert_one_line(excinfo, "2-D", "(3,)")


def test_load_npy_rejects_integer_dtype(tmp_path: Path) -> None:
    _write_npy(tmp_path, "corpus", np.ones((2, 2), dtype=np.int64), ["a", "b"])
    with pytest.raises(SmecError) as excinfo:
        load_npy(tmp_path / "corpus.npy", tmp_path / "corpus_ids.txt")
    _assert_one_line(excinfo, "int64")


def test_load_npy_rejects_missing_ids_file(tmp_path: Path) -> None:
    np.save(tmp_path / "corpus.npy", np.ones((2, 2), dtype=np.float32))
    with pytest.raises(SmecError) as excinfo:
        load_npy(tmp_path / "corpus.npy", tmp_path / "corpus_ids.txt")
    _assert_one_line(excinfo, "corpus_ids.txt", "not found")


def test_load_npy_rejects_truncated_file(tmp_path: Path) -> None:
    np.save(tmp_path / "corpus.npy", np.ones((4, 3), dtype=np.float32))
    data = (tmp_path / "corpus.npy").read_bytes()
    (tmp_path / "corpus.npy").write_bytes(data[:100])
    (tmp_path / "corpus_ids.txt").write_text("a\nb\nc\nd\n")
    with pytest.raises(SmecError) as excinfo:
        load_npy(tmp_path / "corpus.npy", tmp_path / "corpus_ids.txt")
    _assert_one_line(excinfo, "damaged")


def test_load_npy_rejects_empty_file(tmp_path: Path) -> None:
    (tmp_path / "corpus.npy").write_bytes(b"")
    (tmp_path / "corpus_ids.txt").write_text("a\n")
    with pytest.raises(SmecError) as excinfo:
        load_npy(tmp_path / "corpus.npy", tmp_path / "corpus_ids.txt")
    _assert_one_line(excinfo, "corpus.npy")


# -- embedding directories -------------------------------------------------------------------
def test_load_embedding_dir_pairs_queries_with_query_ids(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    vectors = rng.standard_normal((2, 3)).astype(np.float32)
    _write_npy(tmp_path, "queries", vectors, ["q1", "q2"])
    assert (tmp_path / "query_ids.txt").is_file()
    emb = load_embedding_dir(tmp_path, "queries")
    assert emb.ids == ["q1", "q2"]
    np.testing.assert_array_equal(emb.take(["q2"]), vectors[[1]])


def test_load_embedding_dir_falls_back_to_name_ids(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    vectors = rng.standard_normal((2, 3)).astype(np.float32)
    np.save(tmp_path / "queries.npy", vectors)
    (tmp_path / "queries_ids.txt").write_text("x\ny\n")
    assert load_embedding_dir(tmp_path, "queries").ids == ["x", "y"]


def test_load_embedding_dir_reads_parquet(tmp_path: Path) -> None:
    _write_parquet(tmp_path / "corpus.parquet", ["a", "b"], [[1.0, 2.0], [3.0, 4.0]])
    emb = load_embedding_dir(tmp_path, "corpus")
    np.testing.assert_array_equal(emb.take(["b", "a"]), [[3.0, 4.0], [1.0, 2.0]])


def test_load_embedding_dir_missing_files(tmp_path: Path) -> None:
    with pytest.raises(SmecError) as excinfo:
        load_embedding_dir(tmp_path, "queries")
    _assert_one_line(excinfo, "queries.npy", "query_ids.txt", "queries.parquet")


# -- parquet ---------------------------------------------------------------------------------
def test_load_parquet_happy_path(tmp_path: Path) -> None:
    path = tmp_path / "emb.parquet"
    _write_parquet(path, [10, 11, 12], [[0.5, 1.5], [2.5, 3.5], [4.5, 5.5]], id="doc", vector="v")
    emb = load_parquet(path, id_column="doc", vector_column="v")
    assert emb.ids == ["10", "11", "12"]
    assert emb.vectors.dtype == np.float32 and emb.vectors.shape == (3, 2)
    np.testing.assert_array_equal(emb.take(["12", "10"]), [[4.5, 5.5], [0.5, 1.5]])


def test_load_parquet_rejects_mixed_lengths(tmp_path: Path) -> None:
    path = tmp_path / "emb.parquet"
    _write_parquet(path, ["a", "b"], [[1.0, 2.0], [1.0, 2.0, 3.0]])
    with pytest.raises(SmecError) as excinfo:
        load_parquet(path)
    _assert_one_line(excinfo, "several lengths [2, 3]")


@pytest.mark.parametrize("missing", ["id", "vector"])
def test_load_parquet_rejects_missing_column(tmp_path: Path, missing: str) -> None:
    path = tmp_path / "emb.parquet"
    names = {"id": "doc_id"} if missing == "id" else {"vector": "embedding"}
    _write_parquet(path, ["a"], [[1.0, 2.0]], **names)
    with pytest.raises(SmecError) as excinfo:
        load_parquet(path)
    _assert_one_line(excinfo, f"no column {missing!r}")


def test_load_parquet_rejects_nan_and_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "nan.parquet"
    _write_parquet(path, ["a", "b"], [[1.0, 2.0], [float("nan"), 2.0]])
    with pytest.raises(SmecError) as excinfo:
        load_parquet(path)
    _assert_one_line(excinfo, "row 1", "NaN or inf")
    path = tmp_path / "dup.parquet"
    _write_parquet(path, ["a", "a"], [[1.0, 2.0], [3.0, 2.0]])
    with pytest.raises(SmecError) as excinfo:
        load_parquet(path)
    _assert_one_line(excinfo, "duplicate id 'a'")


def test_load_parquet_rejects_null_vector(tmp_path: Path) -> None:
    path = tmp_path / "emb.parquet"
    _write_parquet(path, ["a", "b"], [[1.0, 2.0], None])
    with pytest.raises(SmecError) as excinfo:
        load_parquet(path)
    _assert_one_line(excinfo, "emb.parquet")


def test_load_parquet_rejects_scalar_vector_column(tmp_path: Path) -> None:
    path = tmp_path / "emb.parquet"
    _write_parquet(path, ["a", "b"], [1.0, 2.0])
    with pytest.raises(SmecError) as excinfo:
        load_parquet(path)
    _assert_one_line(excinfo, "emb.parquet")


# -- qrels -----------------------------------------------------------------------------------
def test_read_qrels_with_and_without_header(tmp_path: Path) -> None:
    path = tmp_path / "test.tsv"
    path.write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t2\n\nq2\td1\t0\n")
    assert read_qrels(path) == {"q1": {"d1": 1, "d2": 2}, "q2": {"d1": 0}}
    path.write_text("q1\td1\t1\n")
    assert read_qrels(path) == {"q1": {"d1": 1}}


@pytest.mark.parametrize(
    ("body", "line", "says"),
    [("q1\td1\t1\nq2\td2\n", 3, "query-id<TAB>corpus-id<TAB>score"),
     ("q1\td1\t1\nq2\td2\tx\n", 3, "score 'x' is not a whole number"),
     ("q1 d1 1\n", 2, "query-id<TAB>corpus-id<TAB>score")],
)  # fmt: skip
def test_read_qrels_rejects_malformed_line(tmp_path: Path, body: str, line: int, says) -> None:
    path = tmp_path / "bad.tsv"
    path.write_text("query-id\tcorpus-id\tscore\n" + body)
    with pytest.raises(SmecError) as excinfo:
        read_qrels(path)
    _assert_one_line(excinfo, f"bad.tsv:{line}:", says)


def test_read_qrels_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SmecError) as excinfo:
        read_qrels(tmp_path / "nope.tsv")
    _assert_one_line(excinfo, "nope.tsv", "not found")


def _ids(*ids: str) -> Embeddings:
    return Embeddings(list(ids), np.zeros((len(ids), 2), dtype=np.float32))


def test_check_qrels_known_ids_pass_through() -> None:
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}}
    assert check_qrels(qrels, _ids("q1", "q2"), _ids("d1", "d2"), "x", False) == qrels


@pytest.mark.parametrize(
    ("qrels", "expected"),
    [
        ({"q1": {"d1": 1}, "qX": {"d1": 1}}, "1 unknown queries (e.g. 'qX')"),
        ({"q1": {"d1": 1, "dX": 1}}, "1 unknown documents (e.g. 'dX')"),
    ],
)
def test_check_qrels_unknown_is_error_by_default(qrels: dict, expected: str) -> None:
    with pytest.raises(SmecError) as excinfo:
        check_qrels(qrels, _ids("q1"), _ids("d1"), "qrels.tsv", skip_unknown=False)
    _assert_one_line(excinfo, "qrels.tsv", expected, "--skip-unknown-qrels")


def test_check_qrels_skip_unknown_drops_them() -> None:
    qrels = {"q1": {"d1": 1, "dX": 2}, "q2": {"dX": 1}, "qX": {"d1": 1}}
    cleaned = check_qrels(qrels, _ids("q1", "q2"), _ids("d1"), "x", skip_unknown=True)
    # q2 loses its only judgement, qX is unknown: only q1 with its known doc remains.
    assert cleaned == {"q1": {"d1": 1}}


# -- RetrievalData ---------------------------------------------------------------------------
def test_load_retrieval_data_tiny_dataset(tmp_path: Path, rng: np.random.Generator) -> None:
    corpus = rng.standard_normal((4, 3)).astype(np.float32)
    queries = rng.standard_normal((2, 3)).astype(np.float32)
    root = _write_beir(tmp_path / "tiny", corpus, queries, "q0\td1\t1\nq1\td3\t2\nq1\tdX\t1\n")
    with pytest.raises(SmecError) as excinfo:
        load_retrieval_data(root).qrels("test")
    _assert_one_line(excinfo, "unknown documents (e.g. 'dX')")
    data = load_retrieval_data(root, skip_unknown_qrels=True)
    assert data.dim == 3 and len(data.corpus) == 4 and len(data.queries) == 2
    assert data.qrels("test") == {"q0": {"d1": 1}, "q1": {"d3": 2}}
    np.testing.assert_array_equal(data.queries.take(["q1"]), queries[[1]])
    np.testing.assert_array_equal(data.corpus.take(["d3", "d0"]), corpus[[3, 0]])


def test_retrieval_data_rejects_dim_mismatch(tmp_path: Path, rng: np.random.Generator) -> None:
    corpus = rng.standard_normal((4, 3)).astype(np.float32)
    queries = rng.standard_normal((2, 5)).astype(np.float32)
    root = _write_beir(tmp_path / "tiny", corpus, queries, "q0\td1\t1\n")
    with pytest.raises(SmecError) as excinfo:
        load_retrieval_data(root)
    _assert_one_line(excinfo, "3-d", "5-d")
    with pytest.raises(SmecError):
        RetrievalData(corpus=_ids("d1"), queries=Embeddings(["q"], np.zeros((1, 3), np.float32)))


def test_load_retrieval_data_missing_embeddings_dir(tmp_path: Path) -> None:
    root = tmp_path / "bare"
    root.mkdir()
    (root / "corpus.jsonl").write_text('{"_id": "d0", "text": "x"}\n')
    with pytest.raises(SmecError) as excinfo:
        load_retrieval_data(root)
    _assert_one_line(excinfo, "no embeddings directory")


def test_retrieval_data_qrels_needs_split_or_path() -> None:
    data = RetrievalData(corpus=_ids("d1"), queries=_ids("q1"))
    with pytest.raises(SmecError) as excinfo:
        data.qrels("test")
    _assert_one_line(excinfo, "--qrels")


def test_load_real_scifact(scifact_dir) -> None:
    data = load_retrieval_data(scifact_dir)
    assert data.corpus.vectors.shape == (5183, 384)
    assert data.queries.vectors.shape == (1109, 384)
    assert data.dim == 384
    qrels = data.qrels("test")
    assert len(qrels) == 300
    assert all(q in data.queries for q in qrels)
    assert all(d in data.corpus for rels in qrels.values() for d in rels)
    norms = np.linalg.norm(data.corpus.take(data.corpus.ids[:50]), axis=1)
    assert np.all(norms > 0)


def test_a_parquet_row_without_an_id_is_refused(tmp_path: Path) -> None:
    """A null id would be stored under the id "None": refused, naming the column."""
    table = pa.table({"id": ["a", None, "c"], "vector": [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]})
    pq.write_table(table, tmp_path / "corpus.parquet")
    with pytest.raises(SmecError, match="1 rows have no 'id'"):
        load_parquet(tmp_path / "corpus.parquet")


def test_text_inputs_take_a_byte_order_mark_and_name_the_exact_bad_byte(tmp_path: Path) -> None:
    from smec_index.data import read_jsonl

    path = tmp_path / "corpus.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b'{"_id": "1", "text": "x"}\n')  # a BOM, as Notepad saves
    assert [row["_id"] for row in read_jsonl(path)] == ["1"]
    text = b'{"_id": "2", "text": "' + b"a" * 3_000_000 + "é".encode() + b'"}\n'
    path.write_bytes(text + b"\xff\n")  # 3 MB in: far past the decoder's first chunk
    with pytest.raises(SmecError, match=f"byte {len(text)}\\)"):
        list(read_jsonl(path))
