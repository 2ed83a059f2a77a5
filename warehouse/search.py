"""Offline full-text search over post text (DuckDB's FTS extension from its pip package).

DuckDB's FTS index is a snapshot: it is rebuilt after a collection that changed posts, and
the ``search_posts(query, k := 50)`` table macro is re-created with it, e.g.::

    SELECT post_id, platform, score, text FROM search_posts('credit score', k := 20);
"""

from __future__ import annotations

import duckdb

from warehouse.db import load_search_extension, transaction

SEARCH_MACRO = """
CREATE OR REPLACE MACRO search_posts(q, k := 50) AS TABLE
SELECT p.*, s.score
FROM (SELECT post_id, fts_main_post_store.match_bm25(post_id, q) AS score FROM post_store) s
JOIN posts p USING (post_id)
WHERE s.score IS NOT NULL
ORDER BY s.score DESC
LIMIT k
"""


def rebuild_search_index(con: duckdb.DuckDBPyConnection) -> None:
    """(Re)build the BM25 index over ``post_store.text`` (English stemmer, stop words)."""
    load_search_extension(con)
    with transaction(con):
        con.execute(
            "PRAGMA create_fts_index('post_store', 'post_id', 'text', stemmer = 'english', "
            "stopwords = 'english', lower = 1, strip_accents = 1, overwrite = 1)"
        )
        con.execute(SEARCH_MACRO)


def has_search_index(con: duckdb.DuckDBPyConnection) -> bool:
    return bool(con.execute(
        "SELECT count(*) FROM duckdb_schemas() WHERE schema_name = 'fts_main_post_store'"
    ).fetchone()[0])
