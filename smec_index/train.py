"""``smec-index train`` as a library call: a :class:`TrainRequest` (the flags, and which of
them the user typed), every rule checked before the embeddings are read, the artifact
written, and the lines that report it.

    request = TrainRequest(dataset=Path("../shared/data/scifact"), dims="128,64,32",
                           out=Path("runs/smec"))
    compressor = run_train(request)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smec_index.errors import SmecError, brief

# The training settings a trained method takes (None: the method's default).
OVERRIDES = ("sequential", "ads", "xbm", "init", "lead_in", "alpha", "memory_size", "max_epochs",
             "unseen_guard")  # fmt: skip
# The OVERRIDES each trained method uses (the rest are SMEC's modules): a flag a method would
# ignore is refused, never recorded as if it had been used. Absent: every one applies.
APPLIES = {
    "search-adaptor": ("max_epochs", "unseen_guard"),
    "matryoshka-adaptor": ("max_epochs", "unseen_guard"),
    "dive": ("max_epochs", "unseen_guard"),
}


@dataclass
class TrainRequest:
    """What to train, from where, into where. ``given`` maps the settings the user chose
    (not left at their defaults) to the flag that chose them: only those can be refused as
    not applying."""

    dataset: Path
    out: Path
    dims: str | None = "192,128,64,32"
    method: str = "smec"
    embeddings: Path | None = None
    skip_unknown_qrels: bool = False
    unsupervised: bool = False
    split: str = "train"
    qrels_file: Path | None = None
    extend: Path | None = None
    sequential: bool | None = None
    ads: bool | None = None
    xbm: bool | None = None
    init: str | None = None
    lead_in: float | None = None
    query_log: Path | None = None
    alpha: float | None = None
    memory_size: int | None = None
    max_epochs: int | None = None
    unseen_guard: bool | None = None
    device: str = "auto"
    seed: int = 0
    overwrite: bool = False
    quiet: bool = False
    given: dict[str, str] = field(default_factory=dict)

    def typed(self, *names: str) -> list[str]:
        """The flags among ``names`` the user gave, as spelled."""
        return [flag for name, flag in self.given.items() if name in names]

    def settings(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in OVERRIDES if getattr(self, k) is not None}


def run_train(request: TrainRequest):  # -> LinearCompressor (torch is imported lazily)
    """Check everything, train (or extend) and save the artifact; returns the compressor."""
    from smec_index.data import DEFAULT_MODEL_NAME
    from smec_index.outputs import dataset_files, prepare_output

    r = request
    check_types(r)
    # Before any work: --out must be new, empty or an artifact (replaced only with
    # --overwrite), and neither an input nor around one (replacing it would delete it).
    prepare_output(
        r.out,
        "artifact",
        overwrite=r.overwrite,
        roots=[r.dataset],
        inputs=[
            *dataset_files(r.dataset),
            r.embeddings or r.dataset / "embeddings" / DEFAULT_MODEL_NAME,
            r.qrels_file,
            r.extend,
            r.query_log,
            r.dataset,  # last: an artifact is no part of the user's dataset folder either
        ],
    )
    check_flags(r)
    compressor = _extend(r) if r.extend is not None else _fit(r)
    compressor.save(r.out, overwrite=r.overwrite)  # another run's, written meanwhile, stays
    return compressor


def check_types(r: TrainRequest) -> None:
    """Each field of the type the code that reads it needs (from Python a str path or a
    list of dims met a raw TypeError), before anything is read or written."""
    from smec_index.connectors.base import check_fields, check_switches

    check_switches(r, "skip_unknown_qrels", "unsupervised", "overwrite", "quiet")
    check_fields(r, paths=("dataset", "out", "embeddings", "qrels_file", "extend", "query_log"),
                 mappings=("given",), text=("method", "split", "init", "device"),
                 required=("dataset", "out", "method", "split", "device"))  # fmt: skip
    import numpy as np

    whole = (int, np.integer)  # numpy's too, as build's dim
    if isinstance(r.dims, whole) and not isinstance(r.dims, bool):
        r.dims = str(int(r.dims))  # dims=8 from Python: the flag's "8"
    elif isinstance(r.dims, (list, tuple, np.ndarray)) and all(
        isinstance(d, whole) and not isinstance(d, bool) for d in r.dims
    ):
        r.dims = ",".join(str(int(d)) for d in r.dims)  # [128, 64]: the flag's "128,64"
    elif r.dims is not None and not isinstance(r.dims, str):
        raise SmecError(f"dims {brief(r.dims, 40)}: pass a list of whole numbers, e.g. [128, 64], "
                        "or the flag's text, e.g. '128,64'")  # fmt: skip
    from smec_index.training.config import TrainConfig

    TrainConfig(**r.settings())  # each setting's kind and range, before a rule reads one


def check_flags(r: TrainRequest) -> None:
    """The rules between flags, before the embeddings are read."""
    from smec_index.device import resolve_device
    from smec_index.options import parse_dims

    check_types(r)
    parse_dims(r.dims)
    if r.split == "test" and r.qrels_file is None:
        raise SmecError("refusing to train on the test split; train on train qrels")
    if r.qrels_file is not None and r.typed("split"):
        raise SmecError("pass --split or --qrels, not both")
    if r.unsupervised and r.typed("split", "qrels_file"):
        raise SmecError(
            f"--unsupervised trains on the corpus alone; drop {r.typed('split', 'qrels_file')[0]}"
        )
    if r.query_log is not None and not r.unsupervised:
        raise SmecError(
            "--queries is a query log for --unsupervised training; with qrels, the queries "
            "come from the dataset: add --unsupervised or drop --queries"
        )
    if r.query_log is not None and r.extend is not None:
        raise SmecError("--queries cannot be used with --extend; train a new artifact")
    if r.query_log is not None and r.method not in ("smec", "mrl"):
        raise SmecError(f"--queries trains smec or mrl, not {r.method}")
    if r.unsupervised and r.query_log is None and r.typed("unseen_guard"):
        raise SmecError(f"{r.typed('unseen_guard')[0]} judges training by held-out queries; "
                        "--unsupervised without --queries has none: drop it")  # fmt: skip
    if r.unsupervised and r.skip_unknown_qrels:
        raise SmecError("--skip-unknown-qrels drops judgements; --unsupervised reads none: "
                        "drop one of them")  # fmt: skip
    resolve_device(r.device)
    if r.xbm is False and r.typed("memory_size"):
        raise SmecError("--memory-size sizes the S-XBM queue, which --no-xbm turns off: drop "
                        "one of them")  # fmt: skip
    if r.extend is None and (r.lead_in or r.typed("lead_in")) and (
        r.method != "smec" or r.unsupervised or r.sequential is False
    ):
        raise SmecError(
            "--lead-in is the first stage of smec's sequential chain trained with qrels; "
            "drop it (or use --method smec with qrels and without --parallel)"
        )


def _load(r: TrainRequest):
    from smec_index.data import load_retrieval_data

    return load_retrieval_data(r.dataset, r.embeddings, skip_unknown_qrels=r.skip_unknown_qrels)


def _extend(r: TrainRequest):
    """``--extend``: new stages below (or between) an artifact's dims, earlier ones kept."""
    from smec_index.compressors import load_compressor
    from smec_index.compressors.smec import SMEC
    from smec_index.options import parse_dims

    compressor = load_compressor(r.extend)  # what it is first: dropping a flag cannot mend
    if not isinstance(compressor, SMEC):  # this (it was advised, then this refused it)
        raise SmecError(
            f"{r.extend}: only smec/mrl artifacts can be extended, not {compressor.method}"
        )
    fixed = r.typed("method", "sequential", "ads", "xbm", "init", "lead_in")
    if fixed:
        raise SmecError(
            f"{fixed[0]} cannot be used with --extend: the artifact fixes its method, "
            "schedule, selection, neighbours, init and lead-in stage; drop it"
        )
    if compressor.train_config.supervised == r.unsupervised:
        how, fix = (
            ("with qrels", "drop --unsupervised")
            if r.unsupervised
            else ("without qrels", "pass --unsupervised")
        )
        raise SmecError(f"{r.extend} was trained {how}; {fix} to extend it the same way")
    settings = {**r.settings(), "device": r.device, "seed": r.seed}
    new_dims, _ = compressor.check_extend(parse_dims(r.dims), **settings)
    compressor.progress = not r.quiet
    data = _load(r)
    qrels = None if r.unsupervised else data.qrels(r.split, r.qrels_file)
    compressor.extend(data, qrels, new_dims, **settings)
    return compressor


def _fit(r: TrainRequest):
    """A new artifact: ``--method`` fitted on the corpus, the qrels or a query log."""
    from smec_index.compressors import compressor_class, make_compressor
    from smec_index.compressors.registry import TRAINED
    from smec_index.compressors.smec import SMEC
    from smec_index.options import parse_dims

    target_dims = parse_dims(r.dims)
    compressor_class(r.method)  # an unknown method is named before anything else
    trained = r.method in TRAINED
    if not trained:
        ignored = r.typed(*OVERRIDES, "split", "qrels_file", "seed", "device",
                          "skip_unknown_qrels")  # fmt: skip
        if ignored:
            raise SmecError(
                f"{ignored[0]} does not apply to {r.method}, which is fitted without "
                "training or qrels; drop it"
            )
    elif r.method in APPLIES:
        ignored = r.typed(*(o for o in OVERRIDES if o not in APPLIES[r.method]))
        if ignored:
            raise SmecError(f"{ignored[0]} does not apply to {r.method} (it is one of SMEC's "
                            "modules and settings); drop it")  # fmt: skip
    settings = {**r.settings(), "device": r.device, "seed": r.seed,
                "supervised": not r.unsupervised, "progress": not r.quiet}  # fmt: skip
    compressor = make_compressor(r.method, target_dims, **settings)
    log = read_query_log(r.query_log) if r.query_log is not None else None
    data = _load(r)
    qrels = data.qrels(r.split, r.qrels_file) if trained and not r.unsupervised else None
    if r.typed("lead_in") and r.lead_in and isinstance(compressor, SMEC):
        labelled = not r.unsupervised and log is None
        if compressor.lead_in_dim(data.dim, len(data.corpus.ids), labelled) is None:
            raise SmecError(
                f"--lead-in {r.lead_in}: no lead-in stage for dims {target_dims} from "
                f"{data.dim}-d embeddings (the stage, {r.lead_in:g} of the input rounded to "
                "a multiple of 8, must lie below the input and at least 4/3 of the "
                "largest dim); pass another share, or 0"
            )
    if log is None:
        compressor.fit(data, qrels)
    else:
        if log.shape[1] != data.dim:
            raise SmecError(
                f"--queries {r.query_log}: {log.shape[1]}-d vectors, the corpus's are "
                f"{data.dim}-d; embed the queries with the corpus's model"
            )
        compressor.fit(data, None, query_log=log)
    return compressor


def train_lines(compressor, request: TrainRequest) -> list[str]:
    """What ``train`` prints: the artifact, its lead-in stage, and each dim's verdict of the
    held-out comparison with PCA."""
    seconds = compressor.info.get("train_seconds")
    took = f" in {seconds:.1f} s" if seconds is not None else ""
    lines = [f"{compressor.method} {list(compressor.dims)} trained{took} -> {request.out}"]
    lead = compressor.info.get("lead_in") if request.extend is None else None
    if lead:
        lines.append(f"  through a {lead}-d lead-in stage (trained, not exported; --lead-in 0: "
                     "off)")  # fmt: skip
    selection = compressor.info.get("selection", {})
    for dim, chosen in selection.items():
        verdict = {
            "held-out": "kept PCA: training did not beat it",
            "unseen-doc": "kept PCA: worse on documents training never judged",
        }.get(chosen.get("because", ""), "kept trained")
        lines.append(
            f"  {dim:>5}-d held-out {chosen['metric']}: trained {chosen['trained']:.4f}, "
            f"PCA {chosen['pca']:.4f} -> {verdict}"
        )
    lines += unseen_lines(compressor.info.get("unseen"), selection)
    return lines


def unseen_lines(unseen: dict | None, selection: dict) -> list[str]:
    """The unseen-document check per dim (:mod:`smec_index.training.generalisation`)."""
    if not unseen:
        return []
    from smec_index.training.generalisation import MIN_UNSEEN_QUERIES

    n = unseen["queries"]
    if not unseen["checked"]:
        return [f"  unseen-document check skipped: {n} held-out queries whose relevant "
                f"documents no training query judges (it needs {MIN_UNSEEN_QUERIES})"]  # fmt: skip
    original = unseen["original"]
    guard = "guard on" if unseen["guard"] else "guard off (--no-unseen-guard)"
    lines = [f"  on the {n} held-out queries whose relevant documents no training query judges "
             f"(nDCG@10, as selected; {guard}; original vectors {original['ndcg@10']:.4f}, "
             f"{original['judged_share']:.1%} of their top 10 training-judged):"]  # fmt: skip
    for dim, chosen in selection.items():
        check = chosen.get("unseen")
        if check is None:
            continue
        lines.append(
            f"  {dim:>5}-d unseen-doc: trained {check['trained']:.4f}, PCA {check['pca']:.4f} "
            f"({check['difference']:+.4f}, noise {check['noise']:.4f}); top 10 "
            f"training-judged {check['judged_share']:.1%}"
        )
    return lines


def read_query_log(path: Path):  # -> np.ndarray (numpy is imported lazily)
    """Vectors of a query log: a 2-D float .npy, or a .parquet of (id, vector)."""
    import numpy as np

    from smec_index.data import check_regular_file, load_parquet, read_npy, validate_embeddings

    check_regular_file(path, f"--queries {path}")
    if path.suffix == ".parquet":
        return np.asarray(load_parquet(path).vectors, dtype=np.float32)
    if path.suffix != ".npy":
        raise SmecError(f"--queries {path}: use a .npy of vectors or a .parquet (id, vector)")
    vectors = read_npy(path, f"--queries {path}")
    if vectors.ndim != 2 or not np.issubdtype(vectors.dtype, np.floating):
        raise SmecError(
            f"--queries {path}: {vectors.ndim}-d {vectors.dtype} array; store one float "
            "vector per row"
        )
    # checked as stored: a float64 beyond float32's range became inf (and a numpy warning)
    validate_embeddings([str(i) for i in range(len(vectors))], vectors, f"--queries {path}")
    return np.asarray(vectors, dtype=np.float32)
