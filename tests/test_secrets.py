"""No credential in any message, whatever form the URL takes."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from smec_index.cli import main
from smec_index.secrets import redact, shown_url

SECRET = "SECRET123"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:SECRET123@host:6333", "http://host:6333"),
        ("user:SECRET123@127.0.0.1:19530", "127.0.0.1:19530"),
        ("https://SECRET123@host", "https://host"),
        ("http://host:6333/?api_key=SECRET123", "http://host:6333/?api_key=***"),
        (
            "http://host/?x=1&token=SECRET123&Api-Key=SECRET123",
            "http://host/?x=1&token=***&Api-Key=***",
        ),
        ("host:1/path?password=SECRET123#frag", "host:1/path?password=***"),
        ("http://host:6333#SECRET123", "http://host:6333"),
        ("http://host:6333", "http://host:6333"),
        ("//u:SECRET123@127.0.0.1:1", "127.0.0.1:1"),
        ("http:/u:SECRET123@host:1", "http:/host:1"),
        ("http://host:1/?pass=SECRET123", "http://host:1/?pass=***"),
        ("http://host:1/;pass=SECRET123", "http://host:1/;pass=***"),
        ("http://host:1/?db_passwd=SECRET123&x=1", "http://host:1/?db_passwd=***&x=1"),
    ],
)
def test_shown_url_keeps_the_address_and_drops_every_secret(url, shown):
    assert shown_url(url) == shown
    assert SECRET not in shown_url(url)


def test_redact_finds_secrets_in_library_text_also_url_encoded():
    text = "failed http://u:p%40ss@h:1 with token tok-123 and key=tok%2D123; pw p@ss"
    out = redact(text, ["tok-123"], ["http://u:p%40ss@h:1"])
    assert "tok-123" not in out and "p@ss" not in out and "p%40ss" not in out


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.parametrize(
    "flags",
    [
        ["--backend", "milvus", "--uri", f"user:{SECRET}@127.0.0.1:1"],
        ["--backend", "milvus", "--uri", f"http://user:{SECRET}@127.0.0.1:1"],
        ["--backend", "milvus", "--uri", "http://127.0.0.1:1", "--token", f"root:{SECRET}"],
        ["--backend", "qdrant", "--url", f"http://127.0.0.1:1/?api_key={SECRET}"],
        ["--backend", "qdrant", "--url", f"http://user:{SECRET}@127.0.0.1:1"],
        ["--backend", "qdrant", "--url", "http://127.0.0.1:1", "--api-key", SECRET],
        ["--backend", "qdrant", "--url", f"//u:{SECRET}@127.0.0.1:1"],
        ["--backend", "qdrant", "--url", f"///u:{SECRET}@127.0.0.1:1"],
        ["--backend", "qdrant", "--url", f"http:/u:{SECRET}@127.0.0.1:1"],
        ["--backend", "milvus", "--uri", f"//root:{SECRET}@127.0.0.1:1"],
        ["--backend", "milvus", "--uri", f"http://127.0.0.1:1/;pass={SECRET}"],
        ["--backend", "milvus", "--uri", f"http://127.0.0.1:1/?pass={SECRET}"],
    ],
    ids=[
        "milvus-no-scheme",
        "milvus-userinfo",
        "milvus-token",
        "qdrant-query",
        "qdrant-userinfo",
        "qdrant-api-key",
        "qdrant-slashes",
        "qdrant-three-slashes",
        "qdrant-one-slash-scheme",
        "milvus-slashes",
        "milvus-matrix-param",
        "milvus-pass-param",
    ],  # fmt: skip
)
@pytest.mark.parametrize("command", ["build", "info"])
def test_no_credential_reaches_the_terminal(command, flags, synthetic_beir, tmp_path):
    args = [command, *flags, "--data-dir", tmp_path]
    if command == "build":
        args += ["--dataset", synthetic_beir, "--dim", 16]
    args += ["--collection", "c"]
    result = _run(*args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert SECRET not in result.output and "Traceback" not in result.output
    if "://user:" in " ".join(flags) and "qdrant" in flags:
        assert "--api-key" in lines[0]  # the user:password form is refused, not dropped
