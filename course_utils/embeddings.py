"""Sentence embeddings that run offline: WordLlama's shipped weights, loaded once per process.

WordLlama (``wordllama`` on PyPI) ships its 256-dimension weights and its tokenizer inside the
wheel, so embedding needs no download. Its own ``WordLlama.load()`` looks for the shipped
tokenizer in the wrong folder and then tries the network; pointing ``cache_dir`` at the package
itself makes it find both shipped files, and ``disable_download`` turns any miss into an error
instead of a hidden network call.

Vectors are L2-normalised float32 rows, so a dot product is the cosine similarity.
"""

from __future__ import annotations

import functools
import logging
import threading
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["DIM", "embed", "embed_one", "cosine", "model"]

DIM = 256
_lock = threading.Lock()


@functools.cache
def model():
    """The process-wide WordLlama model (loaded on first use, about a second; thread-safe)."""
    with _lock:
        # wordllama calls logging.basicConfig(level=INFO) on import, which would switch on INFO logs
        # of every library in the process (httpx prints each request into notebook outputs): undo it.
        root = logging.getLogger()
        handlers, level = list(root.handlers), root.level
        import wordllama
        from wordllama import WordLlama

        for handler in root.handlers[:]:
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)
        return WordLlama.load(dim=DIM, cache_dir=Path(wordllama.__file__).parent, disable_download=True)


def embed(texts: Sequence[str]) -> np.ndarray:
    """Embed ``texts`` as an ``(n, DIM)`` float32 array of unit vectors (zero rows stay zero)."""
    if isinstance(texts, str):
        raise TypeError("embed() takes a sequence of strings; use embed_one() for one string")
    if not texts:
        return np.zeros((0, DIM), dtype=np.float32)
    vectors = np.asarray(model().embed(list(texts), norm=False), dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def embed_one(text: str) -> np.ndarray:
    """Embed one string as a ``(DIM,)`` unit vector."""
    return embed([text])[0]


def cosine(a: str | np.ndarray, b: str | np.ndarray) -> float:
    """Cosine similarity of two texts or two vectors from :func:`embed`, in [-1, 1]."""
    va = embed_one(a) if isinstance(a, str) else np.asarray(a, dtype=np.float32)
    vb = embed_one(b) if isinstance(b, str) else np.asarray(b, dtype=np.float32)
    return float(np.dot(va, vb))
