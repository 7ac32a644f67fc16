"""The vector index: tenant filter inside the KNN query, recall@k on the labelled set, persistence."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from course_utils import embeddings
from course_utils.architecture.vectors import VectorIndex, VectorIndexError, recall_at_k

DATA = Path(__file__).resolve().parents[1] / "data"


def _jsonl(name: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / name).read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def kb() -> list[dict]:
    return _jsonl("lesson08_kb.jsonl")


@pytest.fixture(scope="module")
def questions() -> list[dict]:
    return _jsonl("lesson08_questions.jsonl")


@pytest.fixture(scope="module")
def index(kb) -> VectorIndex:
    idx = VectorIndex()
    by_tenant: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for a in kb:
        by_tenant[a["tenant"]].append((a["doc_id"], f"{a['title']}. {a['text']}"))
    for tenant, docs in by_tenant.items():
        idx.add(tenant, docs)
    return idx


def test_the_data_is_what_its_generator_makes(kb, questions):
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_kb", DATA / "make_lesson08_kb.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    articles, public, hidden = module.make()
    assert (articles, public, hidden) == (kb, questions, _jsonl("lesson08_questions_hidden.jsonl"))
    assert {q["doc_id"] for q in questions} <= {a["doc_id"] for a in kb}


def test_every_hit_is_the_tenants_own_and_k_are_returned(index, kb):
    tenants = sorted({a["tenant"] for a in kb})
    for tenant in tenants[:5]:
        hits = index.search(tenant, "I forgot my password and cannot log in", k=5)
        assert len(hits) == 5
        assert {h.tenant for h in hits} == {tenant}
        assert all(h.doc_id.startswith(f"{tenant}/") for h in hits)
        assert [h.distance for h in hits] == sorted(h.distance for h in hits)
    assert index.search("nobody", "password", k=3) == []


def test_recall_at_3_on_the_labelled_questions(index, questions):
    retrieved = [[h.doc_id for h in index.search(q["tenant"], q["question"], k=3)] for q in questions]
    gold = [q["doc_id"] for q in questions]
    assert recall_at_k(retrieved, gold, 3) >= 0.95
    assert recall_at_k(retrieved, gold, 1) < recall_at_k(retrieved, gold, 3)  # k matters


def test_filtering_after_a_global_top_k_loses_results_and_no_filter_leaks(index, kb, questions):
    """The two wrong designs, measured on the same vectors: fewer results, and other tenants' documents."""
    texts = [f"{a['title']}. {a['text']}" for a in kb]
    matrix = embeddings.embed(texts)
    owners = [a["tenant"] for a in kb]
    ids = [a["doc_id"] for a in kb]
    sample = questions[::9]
    short, leaked, post_hits = 0, 0, []
    for q in sample:
        order = np.argsort(-(matrix @ embeddings.embed_one(q["question"])))[:3]
        post = [ids[i] for i in order if owners[i] == q["tenant"]]  # filter after top-k
        short += len(post) < 3
        leaked += any(owners[i] != q["tenant"] for i in order)  # no filter
        post_hits.append(post)
    gold = [q["doc_id"] for q in sample]
    filtered = [[h.doc_id for h in index.search(q["tenant"], q["question"], k=3)] for q in sample]
    assert short > len(sample) / 2 and leaked > len(sample) / 2
    assert recall_at_k(post_hits, gold, 3) < recall_at_k(filtered, gold, 3) - 0.3


def test_the_index_survives_a_restart_and_re_adding_replaces(tmp_path):
    path = tmp_path / "vectors.db"
    idx = VectorIndex(path)
    idx.add("acme", [("a/1", "How to reset your password"), ("a/2", "Refund policy for annual plans")])
    idx.add("acme", [("a/1", "Exporting your data as CSV")])  # replaces a/1
    idx.close()
    again = VectorIndex(path)
    assert again.count("acme") == 2
    top = again.search("acme", "download my data as a CSV file", k=1)[0]
    assert (top.doc_id, top.text) == ("a/1", "Exporting your data as CSV")
    assert 0.0 < top.similarity <= 1.0
    again.close()


def test_bad_input_gets_a_clear_error(index):
    with pytest.raises(VectorIndexError, match="needs a tenant"):
        index.search("", "password")
    with pytest.raises(VectorIndexError, match="k must be between"):
        index.search("acme", "password", k=0)
    with pytest.raises(VectorIndexError, match="must have 256 floats"):
        index.search("acme", np.zeros(3, dtype=np.float32))
    with pytest.raises(VectorIndexError, match="non-empty strings"):
        index.add("acme", [("id", "  ")])
    with pytest.raises(VectorIndexError, match="expected 1 vectors"):
        index.add("acme", [("id", "text")], vectors=np.zeros((2, 256)))
    with pytest.raises(VectorIndexError, match="2 result lists for 1 questions"):
        recall_at_k([["a"], ["b"]], ["a"], 1)
