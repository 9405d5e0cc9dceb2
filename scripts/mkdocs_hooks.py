"""mkdocs hooks: what the docs take from the code and the stored results, so neither drifts.

- ``<!-- encodings -->`` in a page becomes :func:`smec_index.bench.encodings.encodings_table`.
- Images under ``bench/results/`` (the plots ``docs/results.md`` shows, which ``python -m
  bench.readme`` splices in) are served from where the benchmarks write them.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[1]


def on_files(files, config):
    for png in sorted((ROOT / "bench" / "results").rglob("*.png")):
        files.append(
            File(
                str(png.relative_to(ROOT)),
                src_dir=str(ROOT),
                dest_dir=config["site_dir"],
                use_directory_urls=config["use_directory_urls"],
            )
        )
    return files


def on_page_markdown(markdown, page, config, files):
    if "<!-- encodings -->" in markdown:
        from smec_index.bench.encodings import encodings_table

        markdown = markdown.replace("<!-- encodings -->", encodings_table())
    return markdown
