"""Offline embeddings: shipped weights, unit vectors, and similarities that order meaning."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from course_utils.embeddings import DIM, cosine, embed, embed_one


def test_loading_the_model_leaves_logging_as_it_was():
    # In a fresh process: wordllama's import-time logging.basicConfig must not survive model().
    code = (
        "import logging; root = logging.getLogger(); before = (list(root.handlers), root.level)\n"
        "from course_utils.embeddings import embed_one; embed_one('x')\n"
        "assert (list(root.handlers), root.level) == before, (root.handlers, root.level)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_embeds_offline_as_unit_rows():
    vectors = embed(["refund for order 123", "What is the weather like?"])
    assert vectors.shape == (2, DIM) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_paraphrase_is_closer_than_an_unrelated_question():
    question = "How do I reset my password?"
    assert cosine(question, "I forgot my password, how can I change it?") > cosine(question, "Where is my parcel?")


def test_empty_input_and_wrong_type():
    assert embed([]).shape == (0, DIM)
    assert embed_one("same text") @ embed_one("same text") == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(TypeError, match="sequence of strings"):
        embed("not a list")
