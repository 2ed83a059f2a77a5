"""Reading posts that need analysis and storing per-post NLP results and embeddings.

Work is found by anti-joining on ``content_hash``: a post is processed once, and again only
if its content changed, so a nightly run costs what the new posts cost.
"""

from __future__ import annotations

from datetime import datetime, timezone

import duckdb
import numpy as np
import pandas as pd

from warehouse.db import transaction


def count_pending(con: duckdb.DuckDBPyConnection, embed_model: str) -> int:
    return con.execute(_PENDING.format(select="count(*)", tail=""), [embed_model]).fetchone()[0]


_PENDING = """
SELECT {select}
FROM post_store p
LEFT JOIN post_nlp n ON n.post_id = p.post_id AND n.content_hash = p.content_hash
LEFT JOIN post_embeddings e ON e.post_id = p.post_id AND e.content_hash = p.content_hash AND e.model = ?
WHERE p.deleted_at IS NULL AND p.text IS NOT NULL AND (n.post_id IS NULL OR e.post_id IS NULL)
{tail}
"""


def pending_posts(con: duckdb.DuckDBPyConnection, embed_model: str, limit: int,
                  exclude: list[str] | None = None) -> pd.DataFrame:
    """Up to ``limit`` posts lacking NLP results or an embedding for their current content.

    ``exclude`` holds post ids already handed out and not yet stored (work in flight).
    """
    select = ("p.post_id, p.text, p.spoiler_text, p.lang AS source_lang, p.content_hash, "
              "n.post_id IS NULL AS need_nlp, e.post_id IS NULL AS need_embedding")
    tail = "ORDER BY p.post_id LIMIT ?"
    params: list = [embed_model, limit]
    if exclude:
        tail = "AND p.post_id NOT IN (SELECT unnest(?::VARCHAR[])) " + tail
        params = [embed_model, exclude, limit]
    return con.execute(_PENDING.format(select=select, tail=tail), params).df()


def store_analysis(
    con: duckdb.DuckDBPyConnection,
    nlp_rows: pd.DataFrame,
    entity_rows: pd.DataFrame,
    embeddings: pd.DataFrame,
    embed_model: str,
) -> None:
    """Write one chunk's results atomically (replacing results of older content)."""
    now = datetime.now(timezone.utc)
    with transaction(con):
        if len(nlp_rows):
            con.register("nlp_in", nlp_rows)
            con.execute("DELETE FROM post_nlp WHERE post_id IN (SELECT post_id FROM nlp_in)")
            con.execute("DELETE FROM post_entity_store WHERE post_id IN (SELECT post_id FROM nlp_in)")
            con.execute(
                "INSERT INTO post_nlp SELECT post_id, content_hash, lang, is_english, n_tokens, n_sentences, "
                "sentences, lemmas, pipeline, ? FROM nlp_in", [now]
            )
            con.unregister("nlp_in")
        if len(entity_rows):
            con.register("ent_in", entity_rows)
            con.execute("INSERT INTO post_entity_store SELECT post_id, text, label, start_char, end_char FROM ent_in")
            con.unregister("ent_in")
        if len(embeddings):
            con.register("emb_in", embeddings)
            con.execute("DELETE FROM post_embeddings WHERE post_id IN (SELECT post_id FROM emb_in)")
            con.execute(
                "INSERT INTO post_embeddings SELECT post_id, content_hash, ?, embedding::FLOAT[384], ? FROM emb_in",
                [embed_model, now],
            )
            con.unregister("emb_in")


def embedding_frame(post_ids: list[str], hashes: list[str], vectors: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"post_id": post_ids, "content_hash": hashes, "embedding": list(vectors)})


def load_embeddings(con: duckdb.DuckDBPyConnection, post_ids: list[str] | None = None) -> tuple[list[str], np.ndarray]:
    """Stored vectors (current content only) as an (n, 384) float32 array."""
    sql = ("SELECT e.post_id, e.embedding FROM post_embeddings e JOIN post_store p USING (post_id) "
           "WHERE e.content_hash = p.content_hash AND p.deleted_at IS NULL")
    params: list = []
    if post_ids is not None:
        sql += " AND e.post_id IN (SELECT unnest(?))"
        params.append(post_ids)
    table = con.execute(sql + " ORDER BY e.post_id", params).fetch_arrow_table()
    ids = table.column("post_id").to_pylist()
    if not ids:
        return [], np.zeros((0, 384), dtype=np.float32)
    flat = table.column("embedding").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    return ids, flat.reshape(len(ids), -1).astype(np.float32, copy=False)
