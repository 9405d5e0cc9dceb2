"""Reading BEIR datasets and precomputed embeddings, validated on load.

Layouts understood:

* BEIR: ``corpus.jsonl`` (``_id``, ``title``, ``text``), ``queries.jsonl`` (``_id``, ``text``),
  ``qrels/<split>.tsv`` (header ``query-id corpus-id score``).
* Embeddings as ``<name>.npy`` (float32, rows) + an ids file (one id per line, same order):
  ``corpus.npy`` + ``corpus_ids.txt`` and ``queries.npy`` + ``query_ids.txt``, as in
  ``embeddings/all-MiniLM-L6-v2/``. Large ``.npy``
  files are memory-mapped, not read into RAM.
* Embeddings as parquet with an id column and a list-of-float vector column.
"""

from __future__ import annotations

import codecs
import csv
import json
import logging
import math
import os
import re
import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from smec_index import safejson
from smec_index.errors import SmecError, brief, check_switch

log = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"
DEFAULT_MODEL_DIM = 384  # what DEFAULT_MODEL_NAME emits
Qrels = dict[str, dict[str, int]]

# Files above this size are memory-mapped rather than read.
_MMAP_BYTES = 256 * 1024**2
MAX_ABS_VALUE = 1e15
_CHECK_ROWS = 65536


@dataclass
class Embeddings:
    """Vectors with their ids, row ``i`` belonging to ``ids[i]``.

    ``vectors`` may be a read-only memory map; use :meth:`take` to gather rows by id.
    """

    ids: list[str]
    vectors: np.ndarray
    _row: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.vectors, np.ndarray) or self.vectors.ndim != 2:
            shown = getattr(self.vectors, "shape", type(self.vectors).__name__)
            raise SmecError(f"Embeddings takes vectors as a 2-D numpy array (one row per id), "
                            f"got {shown}")  # fmt: skip
        if isinstance(self.ids, (str, bytes)) or not isinstance(self.ids, (Sequence, np.ndarray)):
            raise SmecError(f"Embeddings takes ids as a list of strings, got "
                            f"{type(self.ids).__name__}")  # fmt: skip
        if len(self.ids) != len(self.vectors):
            raise SmecError(f"Embeddings got {len(self.ids)} ids for {len(self.vectors)} "
                            "vectors; pass one id per row")  # fmt: skip
        bad = next((i for i in self.ids if not isinstance(i, str)), None)
        if bad is not None:
            raise SmecError(f"Embeddings id {brief(bad, 40)} is a {type(bad).__name__}; ids are "
                            "strings")  # fmt: skip
        self._row = {doc_id: i for i, doc_id in enumerate(self.ids)}
        if len(self._row) != len(self.ids):
            seen: set[str] = set()
            twice = next(i for i in self.ids if i in seen or seen.add(i))  # type: ignore[func-returns-value]
            raise SmecError(f"Embeddings id {twice!r} appears twice; ids must be unique")

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return len(self.ids)

    def row(self, doc_id: str) -> int:
        """The row of ``doc_id``, or a one-line error (as :meth:`take`'s)."""
        try:
            return self._row[doc_id]
        except (KeyError, TypeError):  # TypeError: a list, unhashable
            raise SmecError(f"no id {brief(doc_id, 60)} among these embeddings") from None

    def __contains__(self, doc_id: object) -> bool:
        """Whether ``doc_id`` is one of the ids (a list or another non-string: never)."""
        return isinstance(doc_id, str) and doc_id in self._row

    def take(self, ids: list[str]) -> np.ndarray:
        """Rows for ``ids`` as a float32 array, in the order given."""
        if isinstance(ids, (str, bytes)):  # its characters would be taken as ids
            raise SmecError(f"take takes a list of ids, got one string {brief(ids, 40)}: pass "
                            f"[{brief(ids, 40)}]")  # fmt: skip
        try:  # a generator is read once: the search for a missing id reads it again
            ids = list(ids)
        except TypeError:
            raise SmecError(f"take takes a list of ids, got {type(ids).__name__}") from None
        try:
            rows = [self._row[i] for i in ids]
        except (KeyError, TypeError):
            missing = next(i for i in ids if not isinstance(i, str) or i not in self._row)
            raise SmecError(f"no id {brief(missing, 60)} among these embeddings") from None
        return np.asarray(self.vectors[rows], dtype=np.float32)


def validate_embeddings(ids: list[str], vectors: np.ndarray, source: str) -> None:
    """Raise :class:`SmecError` unless ids and vectors describe one clean matrix.

    Checks: a non-empty 2-D matrix, ids count equal to rows, ids unique and non-empty, every
    value finite and within +-1e15 (a projection of larger ones overflows float32), no
    all-zero row (checked in chunks so memory-mapped files stay out of RAM).
    """
    if vectors.ndim != 2:
        raise SmecError(
            f"{source}: expected a 2-D matrix of vectors, got shape {vectors.shape}; "
            "store one vector per row"
        )
    if len(ids) != vectors.shape[0]:
        raise SmecError(
            f"{source}: {len(ids)} ids for {vectors.shape[0]} vectors; the ids file must "
            "have exactly one line per row"
        )
    if any(not i for i in ids):
        raise SmecError(f"{source}: empty id found; every row needs a non-empty id")
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        dup = next(i for i in ids if i in seen or seen.add(i))  # type: ignore[func-returns-value]
        raise SmecError(f"{source}: duplicate id {dup!r}; ids must be unique")
    if vectors.shape[0] == 0 or vectors.shape[1] == 0:
        raise SmecError(
            f"{source}: {vectors.shape[0]} vectors of {vectors.shape[1]} dims; nothing to work "
            "with: pass a file that holds vectors (`smec-index embed` makes a corpus's)"
        )
    for start in range(0, vectors.shape[0], _CHECK_ROWS):
        chunk = np.asarray(vectors[start : start + _CHECK_ROWS])
        if not np.isfinite(chunk).all():
            bad = start + int(np.argwhere(~np.isfinite(chunk))[0][0])
            raise SmecError(
                f"{source}: row {bad} (id {ids[bad]!r}) holds NaN or inf; "
                "re-embed or drop that row before training"
            )
        magnitude = np.abs(chunk).max(axis=1).astype(np.float64)  # float16: 1e15 is inf there
        if (magnitude > MAX_ABS_VALUE).any():
            bad = start + int(np.argmax(magnitude > MAX_ABS_VALUE))
            raise SmecError(
                f"{source}: row {bad} (id {ids[bad]!r}) holds values beyond +-{MAX_ABS_VALUE:g}, "
                "which overflow float32 arithmetic; rescale the vectors (only directions matter)"
            )
        if (magnitude == 0).any():
            bad = start + int(np.argmax(magnitude == 0))
            raise SmecError(
                f"{source}: row {bad} (id {ids[bad]!r}) is all zeros, which has no direction "
                "to search by; re-embed or drop that row"
            )


def _read_ids(path: Path) -> list[str]:
    """One id per line; blank lines at the end are no rows, and a blank line before them
    is refused as an empty id, naming its line (skipping it made a count one short)."""
    with _text(path) as handle:
        ids = [line.rstrip("\n") for line in handle]
    while ids and not ids[-1].strip():
        ids.pop()
    for n, value in enumerate(ids, 1):
        if not value.strip():
            raise SmecError(f"{path}:{n}: an empty id; every row needs a non-empty id, one "
                            "per line")  # fmt: skip
    return ids


@contextmanager
def _text(path: Path) -> Iterator[Any]:
    """A UTF-8 text file (a byte-order mark allowed) whose bad bytes are a one-line error
    naming it and the exact byte offset, not a traceback."""
    try:
        handle = open(path, encoding="utf-8-sig")
    except OSError as exc:  # unreadable (permissions), or gone since it was checked
        raise SmecError(f"{path}: cannot read it ({exc.strerror or type(exc).__name__}); "
                        "check it is a readable file") from None  # fmt: skip
    try:
        with handle:
            yield handle
    except UnicodeDecodeError:
        offset = _first_bad_byte(path)
        raise SmecError(f"{path}: not UTF-8 text (byte {offset}); save it as UTF-8") from None


def _first_bad_byte(path: Path) -> int:
    """The file offset of the first byte that is not UTF-8 (the decoder's own offset counts
    from the start of the chunk it was reading)."""
    decoder, offset = codecs.getincrementaldecoder("utf-8")(), 0
    with open(path, "rb") as handle:
        while True:
            chunk = handle.read(1 << 20)
            pending = len(decoder.getstate()[0])  # bytes of a character the last chunk began
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                return offset - pending + exc.start
            if not chunk:
                return offset
            offset += len(chunk)


def load_npy(vectors_path: str | Path, ids_path: str | Path) -> Embeddings:
    """Load ``.npy`` vectors + ids text file, memory-mapping large files."""
    check_path_name(vectors_path, "the vectors file")
    check_path_name(ids_path, "the ids file")
    vectors_path, ids_path = Path(vectors_path), Path(ids_path)
    for p in (vectors_path, ids_path):
        if not p.exists():
            raise SmecError(f"{p}: file not found; pass the embeddings directory that holds it")
        check_regular_file(p, str(p))
    mmap = "r" if vectors_path.stat().st_size > _MMAP_BYTES else None
    vectors = read_npy(vectors_path, str(vectors_path), mmap)
    if vectors.dtype != np.float32 and not np.issubdtype(vectors.dtype, np.floating):
        raise SmecError(f"{vectors_path}: dtype {vectors.dtype}; store float vectors")
    ids = _read_ids(ids_path)
    validate_embeddings(ids, vectors, str(vectors_path))  # before a cast could overflow
    return Embeddings(ids, np.asarray(vectors, dtype=np.float32))


NPY_MAGIC = b"\x93NUMPY"


def _npy_header(handle) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from a ``.npy`` header, reading nothing past it."""
    fmt = np.lib.format
    version = fmt.read_magic(handle)
    read = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}.get(version)
    if read is None:
        raise ValueError(f"unknown .npy version {version}")
    shape, _, dtype = read(handle)
    return tuple(int(n) for n in shape), dtype


def check_path_name(path: str | Path, what: str) -> None:
    """A path every file and JSON record can hold: UTF-8 text (Linux allows other bytes,
    which no manifest or message could then carry) and short enough for the file system."""
    import errno

    try:
        text = os.fspath(path)
    except TypeError:
        text = None
    if not isinstance(text, str):
        raise SmecError(f"{what}: a path is a str or a pathlib.Path, got "
                        f"{type(path).__name__}; pass one")  # fmt: skip
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        raise SmecError(f"{what} {brief(str(path).encode('utf-8', 'replace').decode(), 80)}: a "
                        "name with bytes that are not UTF-8; rename it") from None  # fmt: skip
    if "\x00" in str(path):
        raise SmecError(f"{what} {brief(str(path), 60)}: a name with a NUL byte, which no file "
                        "system takes; rename it")  # fmt: skip
    long = next((p for p in Path(path).parts if len(p.encode("utf-8")) > 255), None)
    if long is not None:  # found before a parent folder is made for it (os.stat below says
        # "no such file" where a parent is missing, and the folders made stayed behind)
        raise SmecError(f"{what} {str(path)[:60]}...: a name ({long[:20]}...) of more than 255 "
                        "bytes, which no file system takes; use a shorter path")  # fmt: skip
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            raise SmecError(f"{what} {str(path)[:60]}...: {exc.strerror}; use a shorter "
                            "path") from None  # fmt: skip


def check_regular_file(path: Path, what: str) -> None:
    """``path`` is a regular file (or a link to one): a device, FIFO or folder is named as
    what it is, not as missing (reading /dev/zero would never end)."""
    if path.is_file():
        return
    if path.exists():
        kind = "a folder" if path.is_dir() else "not a regular file (a device, socket or FIFO)"
        raise SmecError(f"{what}: {kind}; pass a file")
    raise SmecError(f"{what}: file not found")


def read_npy(path: Path, what: str, mmap: str | None = None) -> np.ndarray:
    """A ``.npy`` array, never unpickled: a file without NumPy's header is named as that
    (numpy itself would call any other file "pickled data" and suggest allow_pickle)."""
    check_regular_file(path, what)
    try:
        with open(path, "rb") as handle:
            head = handle.read(len(NPY_MAGIC))
            if head == NPY_MAGIC:
                handle.seek(0)
                shape, dtype = _npy_header(handle)
                body = os.fstat(handle.fileno()).st_size - handle.tell()
    except OSError as exc:
        raise SmecError(f"{what}: cannot read it ({exc.strerror})") from None
    except ValueError as exc:  # numpy's header parser: a damaged header
        reason = str(exc).splitlines()[0] if str(exc) else ""
        if not reason or "0x" in reason or "<" in reason:  # the parser's own objects: noise
            reason = "not a NumPy header dictionary"
        raise SmecError(f"{what}: its NumPy header is damaged ({reason[:120]}); re-export it "
                        "with numpy.save") from None  # fmt: skip
    if head != NPY_MAGIC:
        raise SmecError(f"{what}: not a .npy file (no NumPy header); save the array with "
                        "numpy.save")  # fmt: skip
    if dtype.hasobject:
        raise SmecError(f"{what}: an array of Python objects, which is never unpickled; "
                        "re-export it as float32 with numpy.save")  # fmt: skip
    need = math.prod(shape) * dtype.itemsize
    if need != body:  # before numpy allocates what the header claims
        raise SmecError(
            f"{what}: its header says {' x '.join(map(str, shape)) or 'a scalar'} {dtype} "
            f"({need:,} bytes) but the file holds {body:,}: it is truncated or damaged; "
            "re-export it with numpy.save"
        )
    try:
        return np.load(path, mmap_mode=mmap, allow_pickle=False)
    except (ValueError, EOFError, OSError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "pickle" in reason:  # an object array: numpy's advice would be unsafe
            reason = "an array of Python objects, which is never unpickled"
        raise SmecError(f"{what}: not a readable .npy array ({reason}); re-export it as "
                        "float32 with numpy.save") from None  # fmt: skip


def load_parquet(
    path: str | Path, id_column: str = "id", vector_column: str = "vector"
) -> Embeddings:
    """Load a parquet file with an id column and a list-of-float vector column."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    check_path_name(path, "the parquet file")
    path = Path(path)
    check_regular_file(path, str(path))
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise SmecError(f"{path}: not a readable parquet file ({exc}); re-export it") from None
    missing = [c for c in (id_column, vector_column) if c not in table.column_names]
    if missing:
        raise SmecError(
            f"{path}: no column {missing[0]!r} (columns: {', '.join(table.column_names)}); "
            "name the id and vector columns"
        )
    if table.column(id_column).null_count:
        raise SmecError(
            f"{path}: {table.column(id_column).null_count} rows have no {id_column!r}; give "
            "every row an id"
        )
    kind = table.column(id_column).type
    plain = kind.value_type if pa.types.is_dictionary(kind) else kind  # pandas' categories
    if not (pa.types.is_string(plain) or pa.types.is_large_string(plain)
            or pa.types.is_integer(plain)):  # fmt: skip
        raise SmecError(f"{path}: column {id_column!r} is {kind}; ids are text or whole numbers "
                        "(str() of bytes, lists or dates would be stored as their Python "
                        "repr): cast the column first")  # fmt: skip
    ids = [str(i) for i in table.column(id_column).to_pylist()]
    bad = next((i for i in ids if _bad_id_character(i) or _surrogate(i)), None)
    if bad is not None:
        raise SmecError(
            f"{path}: id {bad!r} holds a newline or control character; ids are stored one "
            "per line: remove it"
        )
    column = table.column(vector_column).combine_chunks()
    if not (
        pa.types.is_list(column.type)
        or pa.types.is_large_list(column.type)
        or pa.types.is_fixed_size_list(column.type)
    ):
        raise SmecError(
            f"{path}: column {vector_column!r} is {column.type}, not a list of floats per row"
        )
    if column.null_count:
        raise SmecError(f"{path}: {column.null_count} rows have no vector; drop or re-embed them")
    values = column.type.value_type
    if not (pa.types.is_floating(values) or pa.types.is_integer(values)):
        raise SmecError(
            f"{path}: column {vector_column!r} holds lists of {values}, not of numbers; "
            "store each vector as a list of floats"
        )
    lengths = set(column.value_lengths().to_pylist()) if len(column) else {0}
    if len(lengths) != 1:
        raise SmecError(f"{path}: vectors of several lengths {sorted(lengths)}; one dim only")
    flat = column.flatten().to_numpy(zero_copy_only=False)
    vectors = flat.reshape(len(ids), lengths.pop())
    validate_embeddings(ids, vectors, str(path))  # before a cast to float32 could overflow
    return Embeddings(ids, vectors.astype(np.float32, copy=False))


# BEIR-style names: corpus.npy + corpus_ids.txt, queries.npy + query_ids.txt.
_IDS_FILE = {"corpus": "corpus_ids.txt", "queries": "query_ids.txt"}


def ids_file(directory: Path, name: str) -> Path:
    """The ids file that goes with ``<name>.npy`` (``query_ids.txt`` for ``queries``)."""
    preferred = directory / _IDS_FILE.get(name, f"{name}_ids.txt")
    fallback = directory / f"{name}_ids.txt"
    return preferred if preferred.exists() or not fallback.exists() else fallback


def load_embedding_dir(directory: str | Path, name: str) -> Embeddings:
    """Load ``<name>.npy`` + its ids file (or ``<name>.parquet``) from ``directory``."""
    directory = Path(directory)
    if (directory / f"{name}.npy").exists():
        return load_npy(directory / f"{name}.npy", ids_file(directory, name))
    if (directory / f"{name}.parquet").exists():
        return load_parquet(directory / f"{name}.parquet")
    raise SmecError(
        f"{directory}: no {name}.npy + {ids_file(directory, name).name} or {name}.parquet; "
        "write them with `smec-index embed`, or pass --embeddings the folder that holds them"
    )


def read_jsonl(path: str | Path) -> Iterator[dict]:
    """The JSON objects of a ``.jsonl`` file, one per non-blank line."""
    check_path_name(path, "the JSON lines file")
    path = Path(path)
    check_regular_file(path, f"{path} (JSON lines)")
    with _text(path) as handle:
        for n, line in enumerate(handle, 1):
            if line.strip():
                try:
                    record = safejson.loads(line)
                except json.JSONDecodeError as exc:
                    raise SmecError(json_error(path, n, exc)) from None
                if not isinstance(record, dict):
                    raise SmecError(f"{path}:{n}: not a JSON object; write one object per line")
                yield record


def json_error(path: Path, n: int, exc: json.JSONDecodeError) -> str:
    """What is wrong with line ``n`` of ``path``, the parser's reason included (a key given
    twice read as "not valid JSON", which other tools accept)."""
    if exc.msg.endswith("appears twice"):
        return f"{path}:{n}: {exc.msg} (which one counts is ambiguous); write each key once"
    return f"{path}:{n}: not valid JSON ({exc.msg})"


def _bad_id_character(text: str) -> bool:
    """Control characters and line breaks: ids are written one per line in ``*_ids.txt``."""
    return any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in text)


def read_beir_records(path: Path) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """``(line number, id, record)`` for each JSON object of a BEIR ``.jsonl`` file.

    Ids are where a dataset goes wrong silently: ``12345`` and ``"12345"`` both become
    ``"12345"``, so the later row would replace the earlier one in a dict and a document
    would vanish; an id with a newline would split in two in the ids file. So a missing,
    empty, non-scalar, duplicate (after ``str()``) or control-character id is an error
    naming the line.
    """
    seen: dict[str, tuple[int, Any]] = {}
    with _text(path) as handle:
        for n, line in enumerate(handle, 1):
            if line.strip():
                yield _beir_record(path, n, line, seen)


def _beir_record(
    path: Path, n: int, line: str, seen: dict[str, tuple[int, Any]]
) -> tuple[int, str, dict[str, Any]]:
    """One checked line of :func:`read_beir_records` (``seen``: id -> its line and raw id)."""
    try:
        record = safejson.loads(line)
    except json.JSONDecodeError as exc:
        raise SmecError(json_error(path, n, exc)) from None
    if not isinstance(record, dict):
        raise SmecError(f"{path}:{n}: not a JSON object; write one object per line")
    if "_id" not in record:
        raise SmecError(f'{path}:{n}: no "_id"; every record needs one')
    raw = record["_id"]
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        raise SmecError(f"{path}:{n}: _id {raw!r}; ids must be strings or integers")
    doc_id = str(raw)
    if not doc_id.strip():
        raise SmecError(f"{path}:{n}: empty _id {doc_id!r}; every record needs an id")
    if _bad_id_character(doc_id) or _surrogate(doc_id):
        raise SmecError(
            f"{path}:{n}: _id {doc_id!r} holds a newline or control character; "
            "ids are stored one per line: remove it"
        )
    if doc_id in seen:
        first, first_raw = seen[doc_id]
        same = "" if type(first_raw) is type(raw) else f", {first_raw!r} and {raw!r} are one id"
        raise SmecError(
            f"{path}:{n}: duplicate _id {doc_id!r} (also on line {first}{same}); make ids unique"
        )
    seen[doc_id] = (n, raw)
    return n, doc_id, record


def _surrogate(text: str) -> bool:
    """Whether ``text`` holds a lone surrogate (JSON's ``"\\udce9"``): no character, so
    nothing can store or encode it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _field(record: dict[str, Any], name: str, path: Path, n: int) -> str:
    """A title or text: a string, with a missing or ``null`` one read as ""."""
    value = record.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise SmecError(
            f'{path}:{n}: "{name}" is a JSON {type(value).__name__}, not a string; store text '
            "as a string"
        )
    if _surrogate(value):
        raise SmecError(
            f'{path}:{n}: "{name}" holds an unpaired surrogate escape (\\ud800-\\udfff), '
            "which is no character in UTF-8; fix the text"
        )
    return value


@dataclass
class BeirDataset:
    """A BEIR dataset directory; texts are read on first use."""

    root: Path

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        if not (self.root / "corpus.jsonl").exists():
            raise SmecError(f"{self.root}: no corpus.jsonl; pass a BEIR dataset directory")
        check_regular_file(self.root / "corpus.jsonl", str(self.root / "corpus.jsonl"))
        self._corpus: dict[str, dict[str, str]] | None = None
        self._queries: dict[str, str] | None = None

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def corpus(self) -> dict[str, dict[str, str]]:
        """``{id: {"title", "text"}}``; ids checked by :func:`read_beir_records`."""
        if self._corpus is None:
            path = self.root / "corpus.jsonl"
            self._corpus = {
                doc_id: {"title": _field(r, "title", path, n), "text": _field(r, "text", path, n)}
                for n, doc_id, r in read_beir_records(path)
            }
        return self._corpus

    @property
    def queries(self) -> dict[str, str]:
        """``{id: text}``; a query needs a ``text`` key (``null`` reads as "")."""
        if self._queries is None:
            path = self.root / "queries.jsonl"
            if not path.exists():
                raise SmecError(f"{self.root}: no queries.jsonl; pass a BEIR dataset directory")
            check_regular_file(path, str(path))
            queries = {}
            for n, query_id, r in read_beir_records(path):
                if "text" not in r:
                    raise SmecError(f'{path}:{n}: query {query_id!r} has no "text"; add it')
                queries[query_id] = _field(r, "text", path, n)
            self._queries = queries
        return self._queries

    def qrels_path(self, split: str) -> Path:
        return self.root / "qrels" / f"{split}.tsv"

    def has_split(self, split: str) -> bool:
        return self.qrels_path(split).is_file()

    def default_embedding_dir(self, model_name: str = DEFAULT_MODEL_NAME) -> Path:
        return self.root / "embeddings" / model_name


def read_qrels(path: str | Path) -> Qrels:
    """Read a BEIR qrels TSV (header ``query-id corpus-id score``) into ``{qid: {docid: rel}}``."""
    check_path_name(path, "the qrels file")
    path = Path(path)
    if not path.exists():
        raise SmecError(f"{path}: qrels file not found; pass --split or --qrels with a real file")
    check_regular_file(path, f"{path} (qrels)")
    qrels: Qrels = {}
    score = re.compile(r"-?[0-9]+")  # ASCII digits only: str.isdigit() takes '²'
    with _text(path) as handle:
        rows = _tsv_rows(path, handle)
        for n, row in enumerate(rows, 1):
            if n == 1 and _is_header(row):
                continue
            if not row:
                continue
            if len(row) != 3:
                raise SmecError(
                    f"{path}:{n}: {len(row)} fields; expected 'query-id<TAB>corpus-id<TAB>score'"
                )
            if not score.fullmatch(row[2].strip()) or len(row[2].strip()) > 18:
                raise SmecError(
                    f"{path}:{n}: score {brief(row[2].strip(), 20)} is not a whole number of at "
                    "most 18 digits; qrels grade relevance with integers (0 not relevant, 1, 2, "
                    "... more relevant)"
                )
            judged, value = qrels.setdefault(row[0], {}), int(row[2])
            if judged.get(row[1], value) != value:  # the same score twice is harmless
                raise SmecError(
                    f"{path}:{n}: query {brief(row[0], 40)} judges document "
                    f"{brief(row[1], 40)} again, {value} after {judged[row[1]]}; keep one row "
                    "per pair"
                )
            judged[row[1]] = value
    if not qrels:
        raise SmecError(f"{path}: no judgements (only a header?); pass a qrels file with rows")
    if not any(rel > 0 for rels in qrels.values() for rel in rels.values()):
        raise SmecError(
            f"{path}: no judgement has a score above 0, so every query would score nDCG 0; "
            "mark relevant documents with 1 (or higher grades)"
        )
    return qrels


def _tsv_rows(path: Path, handle: Any) -> Iterator[list[str]]:
    """The rows of a TSV file; a field beyond csv's limit (128 KiB: no id is that long) is a
    one-line error naming its line, not a raw ``_csv.Error``."""
    rows = csv.reader(handle, delimiter="\t")
    while True:
        try:
            row = next(rows)
        except StopIteration:
            return
        except csv.Error as exc:
            raise SmecError(f"{path}:{rows.line_num}: {exc}; a qrels row is "
                            "'query-id<TAB>corpus-id<TAB>score' with short ids: check the "
                            "file is a qrels TSV") from None  # fmt: skip
        yield row


def _is_header(row: list[str]) -> bool:
    """BEIR's ``query-id corpus-id score`` line (or one like it): words, not a judgement; a
    first row whose score is a number is a judgement, whatever its query is called (a
    query ``query7`` was dropped as a header)."""
    named = len(row) >= 2 and ("query" in row[0].lower() or row[0].strip().lower() == "qid")
    if not named or len(row) < 3:
        return named
    try:
        float(row[2])
    except ValueError:
        return True
    return False


def check_qrels(
    qrels: Qrels, query_ids: Embeddings, corpus_ids: Embeddings, source: str, skip_unknown: bool
) -> Qrels:
    """Make sure every judged query and document has an embedding.

    Unknown ids are an error by default: they almost always mean the embeddings belong to a
    different corpus, and silently dropping them would inflate or deflate every metric. With
    ``skip_unknown`` they are dropped with a warning (some BEIR sets judge documents that are
    missing from their corpus).
    """
    unknown_q = [q for q in qrels if q not in query_ids]
    unknown_d = sorted({d for rels in qrels.values() for d in rels if d not in corpus_ids})
    if not unknown_q and not unknown_d:
        return qrels
    what = []
    if unknown_q:
        what.append(f"{len(unknown_q)} unknown queries (e.g. {brief(unknown_q[0], 60)})")
    if unknown_d:
        what.append(f"{len(unknown_d)} unknown documents (e.g. {brief(unknown_d[0], 60)})")
    message = f"{source}: {' and '.join(what)} not in the embeddings"
    bad_d = set(unknown_d)
    cleaned = {
        q: {d: r for d, r in rels.items() if d not in bad_d}
        for q, rels in qrels.items()
        if q in query_ids
    }
    kept = {q: rels for q, rels in cleaned.items() if rels}
    if not any(r > 0 for rels in kept.values() for r in rels.values()):
        # said first, not after --skip-unknown-qrels was advised and followed
        raise SmecError(message + "; skipping them would leave no relevant judgement: these "
                        "qrels belong to other embeddings (check --embeddings and the "
                        "qrels file)")  # fmt: skip
    if not skip_unknown:
        raise SmecError(message + "; check --embeddings, or pass --skip-unknown-qrels")
    log.warning("%s; skipping them", message)
    return kept


@dataclass
class RetrievalData:
    """Everything evaluation and training need: corpus and query vectors plus qrels by split."""

    corpus: Embeddings
    queries: Embeddings
    dataset: BeirDataset | None = None
    skip_unknown_qrels: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.skip_unknown_qrels, bool):  # "no" would be taken as yes
            raise SmecError(f"skip_unknown_qrels {brief(self.skip_unknown_qrels, 30)}: pass "
                            "True or False")  # fmt: skip
        for what, part in (("corpus", self.corpus), ("queries", self.queries)):
            if not isinstance(part, Embeddings):
                raise SmecError(f"RetrievalData takes {what} as Embeddings(ids, vectors), got "
                                f"{type(part).__name__}")  # fmt: skip
        if self.corpus.dim != self.queries.dim:
            raise SmecError(
                f"corpus vectors are {self.corpus.dim}-d but query vectors {self.queries.dim}-d; "
                "embed both with the same model"
            )

    @property
    def dim(self) -> int:
        return self.corpus.dim

    def qrels(self, split: str | None = None, path: str | Path | None = None) -> Qrels:
        if path is None:
            if self.dataset is None or split is None:
                raise SmecError("no qrels: pass --qrels FILE or a dataset with qrels/<split>.tsv")
            path = self.dataset.qrels_path(split)
        raw = read_qrels(path)
        return check_qrels(raw, self.queries, self.corpus, str(path), self.skip_unknown_qrels)


def load_retrieval_data(
    dataset_dir: str | Path,
    embeddings_dir: str | Path | None = None,
    skip_unknown_qrels: bool = False,
) -> RetrievalData:
    """Load a BEIR dataset's corpus and query embeddings.

    Args:
        dataset_dir: the BEIR directory (``corpus.jsonl``, ``queries.jsonl``, ``qrels/``).
        embeddings_dir: where ``corpus.npy``/``queries.npy`` live; defaults to the dataset's
            ``embeddings/all-MiniLM-L6-v2/``.
        skip_unknown_qrels: drop (with a warning) judgements naming ids without embeddings.
    """
    check_path_name(dataset_dir, "dataset")
    if embeddings_dir is not None:
        check_path_name(embeddings_dir, "embeddings")
    check_switch(skip_unknown_qrels, "skip_unknown_qrels")  # before anything is read
    dataset = BeirDataset(Path(dataset_dir))
    directory = Path(embeddings_dir) if embeddings_dir else dataset.default_embedding_dir()
    if not directory.is_dir():
        raise SmecError(
            f"{directory}: no embeddings directory; run `smec-index embed --dataset "
            f"{dataset.root}` first or pass --embeddings"
        )
    data = RetrievalData(
        corpus=load_embedding_dir(directory, "corpus"),
        queries=load_embedding_dir(directory, "queries"),
        dataset=dataset,
        skip_unknown_qrels=skip_unknown_qrels,
    )
    check_texts_unchanged(directory, data)
    return data


def check_texts_unchanged(directory: Path, data: RetrievalData) -> None:
    """Embeddings ``smec-index embed`` made record a digest of the texts they encode: one
    that no longer matches the dataset's texts (corpus.jsonl or queries.jsonl edited since)
    is refused, not trained or built on as if the vectors were the texts'. Embeddings
    without the digest (made elsewhere, or by an older smec-index) are not checked."""
    try:
        meta = safejson.loads((directory / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    recorded = meta.get("texts_digest") if isinstance(meta, dict) else None
    dataset = data.dataset
    if not isinstance(recorded, str) or dataset is None:
        return
    from smec_index.embed import texts_digest

    # over the dataset's own documents and queries, as embed read them: an added, removed
    # or edited one changes it
    if texts_digest(dataset, list(dataset.corpus), list(dataset.queries)) != recorded:
        import shlex

        from smec_index.embed import BUNDLED_MODEL, model_name, other_datasets

        model = meta.get("model")
        model = None if model in (None, BUNDLED_MODEL) else str(model)
        again = f"smec-index embed --dataset {shlex.quote(str(dataset.root))}"
        if model is not None:
            again += f" --model {shlex.quote(model)}"
        default = dataset.default_embedding_dir(model_name(model))
        other = other_datasets(directory, dataset)
        if other is not None:  # not edits: another dataset's (re-embedding there lost them)
            raise SmecError(
                f"{directory}: these embeddings encode {other}'s texts, not {dataset.root}'s; "
                f"pass {dataset.root}'s own embeddings (`{again}` writes them to {default})"
            )
        if Path(directory).resolve() != Path(default).resolve():  # where these are, again
            again += f" --out {shlex.quote(str(directory))}"
        raise SmecError(
            f"{directory}: these embeddings encode other texts than {dataset.root}'s "
            "corpus.jsonl and queries.jsonl hold now (documents or queries edited, added or "
            f"removed since `smec-index embed` made them); run `{again}` again"
        )
