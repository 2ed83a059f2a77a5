"""Analysis on worker processes and the attribute index give the same results as in process."""

from __future__ import annotations

import json

import numpy as np
import pytest

from flows.analyze import analyze_posts
from flows.collect import collect_one
from nlp import embed, linguistic
from nlp.attribute_index import attribute_index_for
from nlp.parallel import MIN_POSTS_FOR_WORKERS, BatchRunner, worker_count
from tests.conftest import PROJECT_ROOT
from tests.support.settings import make_settings
from warehouse.db import connect

pytestmark = pytest.mark.slow

TRICKY = [
    "I ain't gonna do it, y'all. Let's go! C'mon,  gotta   see.\n\n It gets worse and he got it.",
    "Y'all ain't seen nothing yet.   \t The West has it too, they're just quieter about it.",
    "There's no nationwide score. There are 40+ pilot programs, and it's a hype cycle, innit?",
]


def _annotations(docs):
    return [[(t.tag_, t.pos_, str(t.morph), t.lemma_) for t in doc] for doc in docs]


def test_the_attribute_index_gives_the_stock_rulers_tags_morphology_and_lemmas():
    texts = TRICKY + [json.loads(line)["text"]
                      for line in (PROJECT_ROOT / "config/demo/seed_posts.jsonl").read_text().splitlines()]
    nlp = linguistic.load_pipeline()
    index = attribute_index_for(nlp)
    assert index is not None
    stock = _annotations(nlp.pipe(texts))
    lemmatizer = nlp.get_pipe("lemmatizer")
    fast = _annotations(lemmatizer(index(doc)) for doc in nlp.pipe(texts, disable=["attribute_ruler", "lemmatizer"]))
    assert fast == stock
    assert sum(len(doc) for doc in stock) > 3000


def test_small_runs_stay_in_process_and_large_ones_use_every_core(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 4)
    assert worker_count(0, MIN_POSTS_FOR_WORKERS - 1) == 0
    assert worker_count(0, MIN_POSTS_FOR_WORKERS) == 4
    assert worker_count(2, 50_000) == 2
    assert worker_count(1, 50_000) == 0


def _stored(settings):
    con = connect(settings.warehouse_path, read_only=True)
    try:
        nlp = con.execute("SELECT p.native_id, n.lang, n.sentences, n.lemmas FROM post_nlp n "
                          "JOIN post_store p USING (post_id) ORDER BY 1").fetchall()
        entities = con.execute("SELECT post_id, text, label, start_char FROM post_entity_store ORDER BY ALL").fetchall()
        vectors = con.execute("SELECT p.native_id, e.embedding FROM post_embeddings e "
                              "JOIN post_store p USING (post_id) ORDER BY 1").fetchall()
    finally:
        con.close()
    return nlp, entities, np.array([v for _, v in vectors], dtype=np.float32)


def test_worker_processes_store_what_an_in_process_run_stores(tmp_path):
    seeds = PROJECT_ROOT / "config/demo/seed_posts.jsonl"
    stored = []
    for name, workers in (("inproc", 0), ("workers", 2)):
        folder = tmp_path / name
        folder.mkdir()
        settings = make_settings(folder, [{"name": "demo", "type": "jsonl", "path": str(seeds)}],
                                 analysis={"batch_size": 8, "encoder_precision": "fp32"})
        collect_one(settings, "demo", "c")
        with BatchRunner(workers, settings.analysis.spacy_model) as runner:
            stats = analyze_posts(settings, "a", runner=runner)
        assert stats["posts"] == 60
        stored.append(_stored(settings))
    (nlp_a, ents_a, vec_a), (nlp_b, ents_b, vec_b) = stored
    assert nlp_a == nlp_b and ents_a == ents_b
    assert vec_a.shape == vec_b.shape == (60, 384)
    # One torch thread per worker sums in another order than two: equal up to float rounding
    # (fp32 here; bf16 vectors also move with their batch neighbours, see the next test).
    assert np.abs(vec_a - vec_b).max() < 1e-4


def test_bf16_vectors_point_where_fp32_vectors_point():
    texts = [json.loads(line)["text"] for line in (PROJECT_ROOT / "config/demo/seed_posts.jsonl").read_text().splitlines()]
    fp32 = embed.encode(texts, precision="fp32")
    bf16 = embed.encode(texts, precision="bf16")
    assert not np.array_equal(fp32, bf16)  # the autocast really changed the arithmetic
    assert np.allclose(np.linalg.norm(bf16, axis=1), 1.0, atol=1e-5)
    assert (fp32 * bf16).sum(axis=1).min() > 0.999
    # Nearest neighbours, which topics and the classifier's anchors rely on, stay the same.
    assert ((fp32 @ fp32.T).argsort(axis=1)[:, -2] == (bf16 @ bf16.T).argsort(axis=1)[:, -2]).mean() > 0.95


def test_entities_off_skips_the_recogniser_but_keeps_sentences_and_lemmas(tmp_path):
    seeds = PROJECT_ROOT / "config/demo/seed_posts.jsonl"
    settings = make_settings(tmp_path, [{"name": "demo", "type": "jsonl", "path": str(seeds)}],
                             analysis={"entities": False})
    collect_one(settings, "demo", "c")
    assert analyze_posts(settings, "a")["posts"] == 60
    con = connect(settings.warehouse_path, read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM post_entity_store").fetchone()[0] == 0
        pipelines = {r[0] for r in con.execute("SELECT DISTINCT pipeline FROM post_nlp").fetchall()}
        with_lemmas = con.execute("SELECT count(*) FROM post_nlp WHERE len(lemmas) > 0 AND n_sentences > 0").fetchone()[0]
    finally:
        con.close()
    assert len(pipelines) == 1 and "ner" not in pipelines.pop().split(":")[1]
    assert with_lemmas >= 55
