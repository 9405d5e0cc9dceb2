"""Property: every option of every subcommand, given a bad value, is refused the same way.

Hypothesis draws an option of a subcommand and a value that is wrong for it (by the option's
type: integers out of C's range or not integers, choices not offered, names no backend
takes or smec-index reserves, paths that are missing or of the wrong kind, addresses with a
password in them) and puts it on a command line that works without it. Whatever it draws:
exit 2, exactly one ``error:`` line, no traceback, no password, nothing changed on disk.

The seed is fixed (``derandomize``) and the budget bounded, so CI runs the same examples
every time; ``SMEC_HYPOTHESIS_EXAMPLES`` raises the budget for a longer local hunt.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smec_index.cli import main
from smec_index.connectors.base import INT_MAX
from smec_index.options import Count
from tests.probes import snapshot

EXAMPLES = int(os.environ.get("SMEC_HYPOTHESIS_EXAMPLES", "12"))
SECRET = "Hunter2pw"  # planted in every address; must never be printed


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    """A dataset, a built collection, a results file and a Qdrant source: what the good
    command lines need to be good."""
    root = tmp_path_factory.mktemp("world")
    rng = np.random.default_rng(0)
    ds = root / "ds"
    (ds / "qrels").mkdir(parents=True)
    ids = [f"d{i}" for i in range(200)]
    (ds / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": i, "title": i, "text": "x"}) + "\n" for i in ids)
    )
    (ds / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": f"q{i}", "text": "q"}) + "\n" for i in range(5))
    )
    for split in ("train", "test"):
        (ds / "qrels" / f"{split}.tsv").write_text(
            "".join(f"q{i}\td{i}\t1\n" for i in range(5))
        )  # fmt: skip
    emb = ds / "embeddings" / "all-MiniLM-L6-v2"
    emb.mkdir(parents=True)
    np.save(emb / "corpus.npy", rng.standard_normal((200, 16)).astype(np.float32))
    (emb / "corpus_ids.txt").write_text("".join(f"{i}\n" for i in ids))
    np.save(emb / "queries.npy", rng.standard_normal((5, 16)).astype(np.float32))
    (emb / "query_ids.txt").write_text("".join(f"q{i}\n" for i in range(5)))
    data = root / "data"
    run = lambda *a: CliRunner().invoke(main, [str(x) for x in a])  # noqa: E731
    assert run("build", "--dataset", ds, "--backend", "faiss", "--dim", 16, "--data-dir", data,
               "--collection", "c", "--quiet").exit_code == 0  # fmt: skip
    results = root / "r.jsonl"
    assert run("bench", "--dataset", ds, "--methods", "none", "--latency-queries", 5,
               "--concurrency", 1, "--out", results).exit_code == 0  # fmt: skip
    from qdrant_client import QdrantClient, models

    client = QdrantClient(path=str(root / "qsrc"))
    client.create_collection("docs", vectors_config=models.VectorParams(
        size=16, distance=models.Distance.COSINE))  # fmt: skip
    client.upsert("docs", [models.PointStruct(id=i, vector=rng.standard_normal(16).tolist(),
                                              payload={"t": i}) for i in range(100)])  # fmt: skip
    client.close()
    (root / "afile").write_text("not a directory\n")
    (root / "mine").mkdir()
    (root / "mine" / "notes.txt").write_text("the user's own folder\n")
    return {"root": root, "ds": ds, "data": data, "results": results, "qsrc": root / "qsrc"}


def good_lines(w: dict[str, Path]) -> dict[str, list]:
    """A command line per subcommand that runs (and, where it writes, writes under root)."""
    return {
        "train": ["train", "--dataset", w["ds"], "--method", "pca", "--dims", "8", "--out",
                  w["root"] / "new-art", "--quiet"],
        "eval": ["eval", "--dataset", w["ds"], "--method", "none"],
        "embed": ["embed", "--dataset", w["ds"], "--out", w["root"] / "new-emb"],
        "build": ["build", "--dataset", w["ds"], "--backend", "faiss", "--dim", "16",
                  "--data-dir", w["data"], "--collection", "fresh", "--quiet"],
        "search": ["search", "--backend", "faiss", "--data-dir", w["data"], "--collection", "c",
                   "--like", "d1"],
        "info": ["info", "--backend", "faiss", "--data-dir", w["data"], "--collection", "c"],
        "migrate": ["migrate", "--backend", "qdrant", "--path", w["qsrc"], "--collection", "docs",
                    "--dim", "8", "--data-dir", w["root"] / "mdata", "--dry-run"],
        "bench": ["bench", "--dataset", w["ds"], "--methods", "none", "--latency-queries", "5",
                  "--concurrency", "1", "--out", w["root"] / "new.jsonl"],
        "report": ["report", w["results"], "--out", w["root"] / "new-report"],
    }  # fmt: skip


# Values wrong for any option of a kind; some options have wrong values of their own below.
NOT_A_NAME = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12).filter(
        lambda v: (
            not (
                v[:1].isascii() and v[:1].isalpha() and v.isascii() and v.replace("_", "").isalnum()
            )
        )
    ),  # fmt: skip
    st.sampled_from(["c__b0123456789", "x" * 201, "9lives", "a-b", "a b", "../etc"]),
)
UNKNOWN_WORD = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=10).map(
    lambda v: f"zz{v}"
)
BAD_FLOAT = st.sampled_from(["nan", "inf", "-inf", "-1", "-0.5", "1e400", "abc", ""])
BAD_NUMBER_LIST = st.one_of(
    st.lists(
        st.integers(max_value=0) | st.integers(min_value=INT_MAX + 1), min_size=1, max_size=3
    ).map(lambda v: ",".join(map(str, v))),  # fmt: skip
    st.sampled_from(["sixty", "8,x", "1.5", ",,", "8;4", "1e3"]),
)
ADDRESSES = st.sampled_from([
    f"http://admin:{SECRET}@127.0.0.1:1", f"//admin:{SECRET}@127.0.0.1:1",
    f"http:/admin:{SECRET}@127.0.0.1:1", f"http://127.0.0.1:1/?password={SECRET}",
    f"http://127.0.0.1:1/;token={SECRET}", "http://[::1", "ftp://127.0.0.1:1",
])  # fmt: skip


def missing_or_wrong_kind(w: dict[str, Path]) -> st.SearchStrategy:
    return st.sampled_from([w["root"] / "nowhere", w["root"] / "afile", w["root"] / "mine",
                            w["root"] / "afile" / "below"])  # fmt: skip


# Options whose wrong values are their own: (command or "*", option) -> strategy factory.
SPECIAL = {
    ("*", "--collection"): lambda w: NOT_A_NAME,
    ("*", "--to"): lambda w: NOT_A_NAME,
    ("*", "--alias"): lambda w: NOT_A_NAME,
    ("*", "--using"): lambda w: NOT_A_NAME,
    ("*", "--backend"): lambda w: UNKNOWN_WORD,
    ("*", "--to-backend"): lambda w: UNKNOWN_WORD,
    ("*", "--index"): lambda w: UNKNOWN_WORD,
    ("*", "--to-mode"): lambda w: UNKNOWN_WORD,
    ("*", "--mode"): lambda w: UNKNOWN_WORD,
    ("*", "--split"): lambda w: UNKNOWN_WORD,
    ("train", "--method"): lambda w: UNKNOWN_WORD,
    ("bench", "--methods"): lambda w: UNKNOWN_WORD,
    ("bench", "--backends"): lambda w: UNKNOWN_WORD,
    ("bench", "--encodings"): lambda w: UNKNOWN_WORD,
    ("bench", "--payloads"): lambda w: UNKNOWN_WORD,
    ("*", "--dims"): lambda w: BAD_NUMBER_LIST,
    ("bench", "--ef-search"): lambda w: BAD_NUMBER_LIST,
    ("bench", "--nprobe"): lambda w: BAD_NUMBER_LIST,
    ("bench", "--concurrency"): lambda w: BAD_NUMBER_LIST,
    ("bench", "--dataset"): lambda w: st.sampled_from(
        [
            "synthetic:0x16",
            "synthetic:10x0",
            "synthetic:99999999999x384",
            "synthetic:big",
            str(w["root"] / "nowhere"),
        ]
    ),  # fmt: skip
    ("*", "--url"): lambda w: ADDRESSES,
    ("*", "--uri"): lambda w: ADDRESSES,
    ("*", "--to-url"): lambda w: ADDRESSES,
    ("*", "--to-uri"): lambda w: ADDRESSES,
    ("*", "--partition"): lambda w: st.sampled_from(["0/0", "3/2", "x", "1/0", "-1/2", "1of2"]),
    ("*", "--like"): lambda w: st.sampled_from(["nope", "", " "]),
    ("search", "query"): lambda w: st.sampled_from(["", "   ", "\t"]),
    ("*", "--model"): lambda w: st.just(str(w["root"] / "no-model")),
    ("*", "--embeddings"): missing_or_wrong_kind,
    ("*", "--artifact"): missing_or_wrong_kind,
    ("*", "--extend"): missing_or_wrong_kind,
    ("*", "--qrels"): missing_or_wrong_kind,
    ("*", "--queries"): missing_or_wrong_kind,
    ("*", "--query-ids"): missing_or_wrong_kind,
    ("*", "--config"): missing_or_wrong_kind,
    ("*", "--dataset"): missing_or_wrong_kind,
    ("report", "results"): missing_or_wrong_kind,
    ("*", "--out"): lambda w: st.sampled_from([w["root"] / "mine", w["root"] / "afile" / "x"]),
    ("*", "--data-dir"): lambda w: st.sampled_from(
        [w["root"] / "afile", w["root"] / "afile" / "x"]
    ),  # fmt: skip
    ("*", "--path"): missing_or_wrong_kind,
}
# Not drawn: flags (no value), and keys (any string is a valid key; the addresses carry
# the password probes).
SKIP = {"--api-key", "--token", "--to-api-key", "--to-token"}


def bad_values(command: str, param: click.Parameter, w: dict[str, Path]) -> st.SearchStrategy:
    name = max(param.opts, key=len)
    for key in ((command, name), ("*", name)):
        if key in SPECIAL:
            return SPECIAL[key](w)
    kind = param.type
    if isinstance(kind, Count):
        most = INT_MAX if kind.most is None else kind.most
        return st.one_of(
            st.integers(max_value=kind.least - 1).map(str),
            st.integers(min_value=most + 1, max_value=10**30).map(str),
            st.sampled_from(["1.5", "1e20", "ten", "", "0x10", "½"]),
        )
    if isinstance(kind, click.Choice):
        return UNKNOWN_WORD
    if isinstance(kind, click.types.FloatParamType):
        return BAD_FLOAT
    raise AssertionError(f"no bad values for {command} {name}: add them to SPECIAL")


def options(command: str) -> list[click.Parameter]:
    params = main.commands[command].params
    return [p for p in params if not getattr(p, "is_flag", False) and p.opts[0] not in SKIP]


def with_value(line: list, param: click.Parameter, value: str) -> list:
    """``line`` with ``param`` set to ``value`` (replacing its good value where it has one)."""
    if isinstance(param, click.Argument):
        if param.name == "query":  # search's text replaces --like
            at = line.index("--like")
            return [*line[:at], *line[at + 2 :], "--", value]
        return [line[0], value, *line[2:]]
    name = max(param.opts, key=len)
    given = [i for i, a in enumerate(line) if a in param.opts]
    if given:
        line = [*line[: given[0]], *line[given[0] + 2 :]]
    return [*line, name, value]


COMMANDS = ["train", "eval", "embed", "build", "search", "info", "migrate", "bench", "report"]


def test_every_option_has_bad_values(world):
    """A new option without bad values fails here, not silently out of the property."""
    for command in COMMANDS:
        for param in options(command):
            bad_values(command, param, world)


@pytest.mark.parametrize("command", COMMANDS)
@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])  # fmt: skip
@given(data=st.data())
def test_a_bad_value_for_any_option_is_one_error_line(world, command, data):
    param = data.draw(st.sampled_from(options(command)), label="option")
    value = str(data.draw(bad_values(command, param, world), label="value"))
    line = with_value(good_lines(world)[command], param, value)
    before = snapshot(world["root"])
    result = CliRunner().invoke(main, [str(a) for a in line])
    lines = [t for t in result.output.splitlines() if t.strip()]
    assert result.exit_code == 2, (line, result.output)
    assert "Traceback" not in result.output, (line, result.output)
    assert len(lines) == 1 and lines[0].startswith("error: "), (line, result.output)
    assert SECRET not in result.output, (line, result.output)
    after = snapshot(world["root"])
    assert before == after, (line, sorted(set(after.items()) ^ set(before.items()))[:5])
