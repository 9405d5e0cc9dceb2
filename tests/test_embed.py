"""`smec-index embed` with the bundled all-MiniLM-L6-v2 (no hub download)."""

from __future__ import annotations

import itertools
import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

from smec_index.cli import main
from smec_index.data import load_embedding_dir, read_jsonl


@pytest.fixture(scope="module")
def tiny_scifact(scifact_dir, tmp_path_factory):
    """Five SciFact documents and three queries, as a BEIR directory."""
    root = tmp_path_factory.mktemp("tiny")
    docs = list(itertools.islice(read_jsonl(scifact_dir / "corpus.jsonl"), 5))
    queries = list(itertools.islice(read_jsonl(scifact_dir / "queries.jsonl"), 3))
    (root / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (root / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    return root


@pytest.mark.slow
def test_embed_matches_shared_embeddings_and_caches(tiny_scifact, scifact, tmp_path):
    out = tmp_path / "emb"
    env = {"HF_HUB_OFFLINE": "1"}
    result = CliRunner(env=env).invoke(
        main, ["embed", "--dataset", str(tiny_scifact), "--out", str(out), "--device", "cpu"]
    )
    assert result.exit_code == 0, result.output
    corpus, queries = load_embedding_dir(out, "corpus"), load_embedding_dir(out, "queries")
    assert corpus.vectors.shape == (5, 384) and queries.vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(corpus.vectors, axis=1), 1.0, rtol=1e-5)
    # Same model, same text recipe: the vectors shipped with SciFact are reproduced.
    cosines = np.sum(corpus.vectors * scifact.corpus.take(corpus.ids), axis=1)
    assert cosines.min() > 0.999, cosines
    cosines = np.sum(queries.vectors * scifact.queries.take(queries.ids), axis=1)
    assert cosines.min() > 0.999, cosines
    stamp = os.stat(out / "corpus.npy").st_mtime_ns
    again = CliRunner(env=env).invoke(
        main, ["embed", "--dataset", str(tiny_scifact), "--out", str(out), "--device", "cpu"]
    )
    assert again.exit_code == 0 and os.stat(out / "corpus.npy").st_mtime_ns == stamp


def test_embed_refuses_a_missing_model(tiny_scifact, tmp_path):
    result = CliRunner().invoke(
        main,
        [
            "embed",
            "--dataset",
            str(tiny_scifact),
            "--model",
            str(tmp_path / "nope"),
            "--out",
            str(tmp_path / "e"),
        ],
    )
    assert result.exit_code != 0 and "no such model directory" in result.output
    assert not (tmp_path / "e").exists()


@pytest.mark.slow
def test_embeddings_of_texts_edited_since_are_refused(tiny_scifact, tmp_path):
    """Sweep 31: after corpus.jsonl was edited, train and build used the old vectors with
    the new texts (search showed new titles over old vectors)."""
    import shutil

    from smec_index.data import load_retrieval_data
    from smec_index.errors import SmecError

    ds = tmp_path / "ds"
    shutil.copytree(tiny_scifact, ds)
    done = CliRunner().invoke(main, ["embed", "--dataset", str(ds), "--device", "cpu"])
    assert done.exit_code == 0, done.output
    assert len(load_retrieval_data(ds).corpus.ids) == 5  # the texts they encode: read
    docs = list(read_jsonl(ds / "corpus.jsonl"))
    docs[2]["text"] = "galaxies and telescopes"
    (ds / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    with pytest.raises(SmecError, match="encode other texts.*run `smec-index embed --dataset"):
        load_retrieval_data(ds)
    again = CliRunner().invoke(main, ["embed", "--dataset", str(ds), "--device", "cpu"])
    assert again.exit_code == 0, again.output
    assert len(load_retrieval_data(ds).corpus.ids) == 5
    (ds / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs[1:]))
    with pytest.raises(SmecError, match="edited, added or removed"):  # sweep 32: a removed
        load_retrieval_data(ds)  # document kept its vector, indexed under an empty title
