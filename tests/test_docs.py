"""The README and the docs say what the code does: sizes, links, commands, flags, tables.

The README's job commands run as written in a fresh layout (a scratch project beside
``../shared``); every ``smec-index`` line in the README and the docs names a command and
flags that exist; ``mkdocs build --strict`` fails on a broken link or a missing page; the
encodings table is generated from the code, and its bytes column agrees with it.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest

from smec_index.bench.encodings import ENCODINGS, bytes_per_vector, encodings_table
from smec_index.cli import main as cli

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").glob("*.md"))


def shell_blocks(path: Path) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", path.read_text(), re.S)


def smec_lines(path: Path) -> list[list[str]]:
    """Each ``smec-index ...`` command line of the file's bash blocks, as argv after the
    program name."""
    found = []
    for block in shell_blocks(path):
        for line in block.splitlines():
            for part in re.split(r"&&|;", line):
                words = shlex.split(part)
                if words and words[0].endswith("smec-index"):
                    found.append(words[1:])
    return found


def test_readme_is_short_and_keeps_its_two_commands():
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    first = shell_blocks(README)[0].splitlines()
    assert first == [
        "bash scripts/setup.sh && .venv/bin/smec-index build --dataset ../shared/data/scifact "
        "--dim 256 --backend qdrant",
        "bash scripts/test.sh",
    ]
    assert "bash scripts/test.sh" in (ROOT / ".ci" / "run").read_text()


@pytest.mark.parametrize("path", [README, *PAGES], ids=lambda p: p.name)
def test_every_documented_command_and_flag_exists(path):
    lines = smec_lines(path)
    if path.name in ("README.md", "getting-started.md", "backends.md", "benchmarking.md",
                     "migration.md", "training.md"):  # fmt: skip
        assert lines, f"{path.name} shows no smec-index command"
    for argv in lines:
        command = cli.commands.get(argv[0])
        assert isinstance(command, click.Command), f"{path.name}: no command {argv[0]!r}"
        names = {name for param in command.params for name in param.opts + param.secondary_opts}
        for word in argv[1:]:
            if word.startswith("-") and not re.fullmatch(r"-?\d+(\.\d+)?", word):
                flag = word.split("=", 1)[0]
                assert flag in names, f"{path.name}: `{argv[0]} {flag}` is not an option"


def test_docs_link_every_page_and_build_strict(tmp_path):
    """mkdocs' strict build: a broken link, anchor or snippet, or a page left out of the
    nav, fails it."""
    pytest.importorskip("mkdocs", reason="pip install -e '.[docs]' (scripts/setup.sh does)")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, env={"NO_MKDOCS_2_WARNING": "1",
                                                       "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    site = tmp_path / "site"
    assert "smec-index migrate" in (site / "cli" / "index.html").read_text()
    assert "TurboQuant" in (site / "benchmarking" / "index.html").read_text()
    assert "app_queries" in (site / "app" / "index.html").read_text()  # snippets included
    assert list((site / "bench" / "results").rglob("*.png")), "the results' plots are served"


def test_docs_build_fails_on_a_broken_link(tmp_path):
    """The strict build is a real check: a page linking a missing one fails it."""
    pytest.importorskip("mkdocs", reason="pip install -e '.[docs]' (scripts/setup.sh does)")
    copy = tmp_path / "repo"
    (copy / "docs").mkdir(parents=True)
    for name in ("examples", "scripts", "bench"):
        (copy / name).symlink_to(ROOT / name)
    for page in PAGES:
        (copy / "docs" / page.name).write_text(page.read_text())
    (copy / "docs" / "index.md").write_text("# x\n\n[gone](no-such-page.md)\n")
    (copy / "mkdocs.yml").write_text((ROOT / "mkdocs.yml").read_text())
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=copy, capture_output=True, text=True, env={"NO_MKDOCS_2_WARNING": "1",
                                                       "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert done.returncode != 0 and "no-such-page.md" in done.stdout + done.stderr


def test_encodings_table_is_the_codes_own():
    table = encodings_table()
    assert len(table.splitlines()) == 2 + len(ENCODINGS)
    for name, _, size, _, _ in ENCODINGS:
        if "norescore" in name or "opq" in name:
            continue  # the code's own size; opq adds a rotation per index, not per vector
        names = [n.strip() for n in name.split(" (")[0].split(",")]
        for encoding, formula in zip(names, size.split(","), strict=True):
            encoding = encoding.replace("<m>", "16").replace("<b>", "2")
            python = re.sub(r"([\db]) ([dmb])", r"\1*\2", formula.strip())
            value = eval(python, {"d": 128, "m": 16, "b": 2})
            assert bytes_per_vector(encoding, 128) == value, (name, encoding, formula)
    assert "| `float32` | 4 d | flat, hnsw, ivf" in table
    assert "| `rabitq` | d / 8 + 8 | flat, ivf" in table  # computed from supports()


def test_the_readme_python_block_is_the_docs_one():
    block = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    assert block in (ROOT / "docs" / "backends.md").read_text()


def test_faiss_app_example_runs(scifact_dir, tmp_path):
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import faiss_app
    finally:
        sys.path.pop(0)
    result = faiss_app.main(scifact_dir, tmp_path)
    assert [hits[0] for hits in result["ids"]] == result["asked"]  # a document finds itself
    assert result["batch_ids"] == result["ids"]  # the searcher answers as index.search
    assert result["scores"].shape == (3, 5)


@pytest.mark.slow
def test_readme_job_commands_run_verbatim(scifact_dir, tmp_path):
    """A fresh layout: a scratch project beside ``shared/``, the README's commands as written
    (its first block, set-up and the test suite, is what CI itself runs)."""
    project = tmp_path / "project"
    project.mkdir()
    (tmp_path / "shared").symlink_to(scifact_dir.parents[1])
    (project / ".venv").symlink_to(Path(sys.executable).parents[1])
    (project / "examples").symlink_to(ROOT / "examples")
    main_job = shell_blocks(README)[0].splitlines()[0].split(" && ", 1)[1]  # after set-up
    blocks = shell_blocks(README)[1:]
    assert len(blocks) == 3
    for block in [main_job, *blocks]:
        for line in block.strip().splitlines():
            done = subprocess.run(line, shell=True, cwd=project, capture_output=True, text=True,
                                  timeout=600)  # fmt: skip
            assert done.returncode == 0, f"{line}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    assert (project / "runs" / "report" / "report.md").is_file()
    assert (project / "smec-data" / "qdrant").is_dir()  # the main job's collection
    assert "schema_diff" in done.stdout  # the migration example's last line


def test_the_cli_only_parses():
    """cli.py declares commands and prints what the library returns: under 500 lines, no
    function (with its decorators) over 60."""
    import ast

    source = (ROOT / "smec_index" / "cli.py").read_text()
    assert len(source.splitlines()) < 500
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef):
            start = min([d.lineno for d in node.decorator_list] + [node.lineno])
            assert node.end_lineno - start < 60, node.name


def test_every_docs_code_block_is_run_by_the_tests():
    """A Python block in the docs is either a file the tests run (an included example, or a
    named section of one) or the README's block, which tests/test_readme.py runs."""
    readme_block = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    for page in PAGES:
        for lang, block in re.findall(r"```(\w*)\n(.*?)```", page.read_text(), re.S):
            if lang in ("bash", ""):
                continue
            assert lang == "python", f"{page.name}: a {lang!r} block nobody runs"
            include = re.fullmatch(r'--8<-- "(examples/\w+\.py)(:\w+)?"\n', block)
            assert include or block == readme_block, f"{page.name}: a block nobody runs"
            if include:
                tested = (ROOT / "tests" / "test_migrate_dropin.py").read_text() + (
                    ROOT / "tests" / "test_docs.py").read_text()  # fmt: skip
                assert Path(include[1]).stem in tested, f"{include[1]} is run by no test"
