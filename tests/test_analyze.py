"""Analysis with the real spaCy pipeline and the real MiniLM, on real DuckDB files."""

from __future__ import annotations

import json

import pytest

from flows.analyze import analyze_posts
from flows.collect import collect_one
from tests.support.settings import make_settings
from warehouse.analysis import load_embeddings
from warehouse.db import connect

pytestmark = pytest.mark.slow


def query(settings, sql):
    con = connect(settings.warehouse_path, read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_demo_posts_get_sentences_lemmas_entities_and_384_float_embeddings(analyzed_demo):
    from framewatch.config import load_settings

    settings = load_settings(analyzed_demo)
    n_posts = query(settings, "SELECT count(*) FROM posts")[0][0]
    assert n_posts >= 50
    assert query(settings, "SELECT count(*) FROM post_analysis WHERE has_embedding") == [(n_posts,)]
    assert query(settings, "SELECT typeof(embedding) FROM post_embeddings LIMIT 1") == [("FLOAT[384]",)]
    top = dict(query(settings, "SELECT text, count(*) FROM post_entities GROUP BY 1"))
    assert top.get("China", 0) >= 5
    con = connect(settings.warehouse_path, read_only=True)
    ids, vectors = load_embeddings(con)
    con.close()
    assert vectors.shape == (n_posts, 384)
    assert abs(float((vectors[0] ** 2).sum()) - 1.0) < 1e-3


def test_a_second_analyze_computes_nothing_for_posts_already_done(analyzed_demo, tmp_path):
    import shutil

    from framewatch.config import load_settings

    settings = load_settings(analyzed_demo)
    copy = tmp_path / "copy.duckdb"
    shutil.copy(settings.warehouse_path, copy)
    settings.warehouse.path = copy
    stats = analyze_posts(settings, "again")
    assert stats["posts"] == 0 and stats["embedded"] == 0


def test_non_english_posts_are_kept_and_marked_and_edits_are_reanalysed(tmp_path):
    path = tmp_path / "p.jsonl"
    base = {"thread_id": "1", "author": "a", "created_at": "2020-01-01T00:00:00+00:00", "platform": "forum",
            "site": "f"}
    def write(english_text):
        path.write_text("\n".join(json.dumps({**base, **r}) for r in [
            {"id": "1", "text": english_text},
            {"id": "2", "parent_id": "1",
             "text": "Das Sozialkreditsystem in China wird von den westlichen Medien stark übertrieben."},
        ]) + "\n")
    write("The social credit system in China is mostly a media story in the West.")
    settings = make_settings(tmp_path, [{"name": "f", "type": "jsonl", "path": str(path)}])
    collect_one(settings, "f", "r1")
    analyze_posts(settings, "a1")
    assert query(settings, "SELECT p.native_id, a.lang, a.is_english FROM posts p JOIN post_analysis a "
                           "USING (post_id) ORDER BY 1") == [("1", "en", True), ("2", "de", False)]
    before = query(settings, "SELECT embedding FROM post_embeddings WHERE post_id LIKE '%:1'")

    write("Edited: Ring doorbell cameras in the US feed the police, the same thing with better marketing.")
    collect_one(settings, "f", "r2")
    stats = analyze_posts(settings, "a2")
    assert (stats["posts"], stats["embedded"]) == (1, 1)
    assert query(settings, "SELECT embedding FROM post_embeddings WHERE post_id LIKE '%:1'") != before
    assert query(settings, "SELECT count(*) FROM post_nlp n JOIN post_store p USING (post_id) "
                           "WHERE n.content_hash = p.content_hash") == [(2,)]
    assert "US" in {r[0] for r in query(settings, "SELECT text FROM post_entities")}
