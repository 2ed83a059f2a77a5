"""Reading what the topic step needs and writing its results (tables of migration 0004).

A post is *eligible* for topics when it is current (not deleted), has text, has an embedding of
its current content, and is not known to be non-English (``post_nlp.is_english``; posts not
analysed by spaCy yet count by their source ``lang``). Nightly work is found by anti-joining on
``content_hash``, so it costs what the new posts cost.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

DIMENSIONS = 384

_ELIGIBLE = """
FROM post_store s
JOIN post_embeddings e ON e.post_id = s.post_id AND e.content_hash = s.content_hash
LEFT JOIN post_nlp n ON n.post_id = s.post_id AND n.content_hash = s.content_hash
{join}
WHERE s.deleted_at IS NULL
  AND length(trim(coalesce(s.text, ''))) > 0
  AND coalesce(n.is_english, s.lang IS NULL OR lower(s.lang) LIKE 'en%')
"""
_PREVIOUS = "LEFT JOIN post_topic_store a ON a.post_id = s.post_id AND a.content_hash = s.content_hash"


def topics_folder(warehouse_path: Path | str) -> Path:
    """Where topic models live: next to the warehouse file, e.g. ``data/framewatch.duckdb.topics``."""
    path = Path(warehouse_path)
    return path.with_name(path.name + ".topics")


def eligible_by_model(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Eligible posts per embedding model (normally one model)."""
    rows = con.execute(f"SELECT e.model, count(*) {_ELIGIBLE.format(join='')} GROUP BY e.model").fetchall()
    return {model: int(n) for model, n in rows}


def current_model(con: duckdb.DuckDBPyConnection) -> dict[str, Any] | None:
    """The latest topic model's row, or None before the first fit."""
    frame = con.execute("SELECT * FROM topic_model_store ORDER BY model_version DESC LIMIT 1").df()
    if frame.empty:
        return None
    row = frame.iloc[0].to_dict()
    row["model_version"] = int(row["model_version"])
    row["n_posts"] = int(row["n_posts"])
    return row


def model_versions(con: duckdb.DuckDBPyConnection) -> list[int]:
    return [int(v) for (v,) in con.execute("SELECT model_version FROM topic_model_store ORDER BY 1").fetchall()]


def _vectors(table) -> np.ndarray:
    if table.num_rows == 0:
        return np.zeros((0, DIMENSIONS), dtype=np.float32)
    flat = table.column("embedding").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    return flat.reshape(table.num_rows, -1).astype(np.float32, copy=False)


def read_corpus(con: duckdb.DuckDBPyConnection, embedding_model: str) -> tuple[pd.DataFrame, np.ndarray]:
    """Every eligible post: (frame of post_id, content_hash, text, previous topic or NA; vectors).

    ``previous`` is the stored topic of the post's current content (-1 included), NA if none.
    Ordered by post_id, so a fit sees the same input order every time.
    """
    table = con.execute(
        f"""SELECT s.post_id, s.content_hash, s.text, a.topic_id AS previous, e.embedding
            {_ELIGIBLE.format(join=_PREVIOUS)}
              AND e.model = ?
            ORDER BY s.post_id""",
        [embedding_model],
    ).fetch_arrow_table()
    frame = table.select(["post_id", "content_hash", "text", "previous"]).to_pandas()
    frame["previous"] = frame["previous"].astype("Int64")
    return frame, _vectors(table)


def read_unassigned(con: duckdb.DuckDBPyConnection, embedding_model: str) -> tuple[pd.DataFrame, np.ndarray]:
    """Eligible posts without a topic row for their current content (new or edited posts)."""
    table = con.execute(
        f"""SELECT s.post_id, s.content_hash, e.embedding
            {_ELIGIBLE.format(join='')}
              AND e.model = ?
              AND NOT EXISTS (SELECT 1 FROM post_topic_store a
                              WHERE a.post_id = s.post_id AND a.content_hash = s.content_hash)
            ORDER BY s.post_id""",
        [embedding_model],
    ).fetch_arrow_table()
    return table.select(["post_id", "content_hash"]).to_pandas(), _vectors(table)


def write_assignments(con: duckdb.DuckDBPyConnection, frame: pd.DataFrame, model_version: int, run_id: str,
                      now: datetime | None = None) -> int:
    """Upsert (post_id, content_hash, topic_id, probability) rows in one statement."""
    if frame.empty:
        return 0
    now = now or datetime.now(timezone.utc)
    incoming = pd.DataFrame({
        "post_id": frame["post_id"].astype(object),
        "content_hash": frame["content_hash"].astype(object),
        "topic_id": frame["topic_id"].astype("int32"),
        "probability": frame["probability"].astype("float64"),
    })
    con.register("topic_rows_in", incoming)
    try:
        con.execute(
            """INSERT INTO post_topic_store
               SELECT post_id, content_hash, topic_id, probability, ?, ?, ? FROM topic_rows_in
               ON CONFLICT (post_id) DO UPDATE SET
                   content_hash = excluded.content_hash, topic_id = excluded.topic_id,
                   probability = excluded.probability, model_version = excluded.model_version,
                   run_id = excluded.run_id, assigned_at = excluded.assigned_at""",
            [model_version, run_id, now],
        )
    finally:
        con.unregister("topic_rows_in")
    return len(incoming)


def replace_topics(con: duckdb.DuckDBPyConnection, rows: list[dict[str, Any]]) -> None:
    """The topic table as the current model describes it (topics are few: a full rewrite)."""
    frame = pd.DataFrame({
        "topic_id": pd.Series([r["topic_id"] for r in rows], dtype="int32"),
        "label": pd.Series([r["label"] for r in rows], dtype=object),
        "keywords": pd.Series([list(r["keywords"]) for r in rows], dtype=object),
        "model_version": pd.Series([r["model_version"] for r in rows], dtype="int32"),
    })
    con.execute("DELETE FROM topic_store")
    if frame.empty:
        return
    con.register("topics_in", frame)
    try:
        con.execute("INSERT INTO topic_store SELECT topic_id, label, keywords::VARCHAR[], model_version FROM topics_in")
    finally:
        con.unregister("topics_in")


def record_model(con: duckdb.DuckDBPyConnection, *, model_version: int, kind: str, run_id: str, folder: str,
                 embedding_model: str, n_posts: int, n_topics: int, n_new_topics: int, clusterer: str,
                 params: dict[str, Any], now: datetime | None = None) -> None:
    con.execute(
        "INSERT INTO topic_model_store VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [model_version, kind, now or datetime.now(timezone.utc), run_id, folder, embedding_model, n_posts,
         n_topics, n_new_topics, clusterer, json.dumps(params, sort_keys=True)],
    )


def clear_assignments(con: duckdb.DuckDBPyConnection) -> None:
    """Before a fresh fit (new ids): forget every assignment of the previous numbering."""
    con.execute("DELETE FROM post_topic_store")


def drop_stale(con: duckdb.DuckDBPyConnection) -> int:
    """Remove rows of posts that were deleted (the view hides them already)."""
    return con.execute(
        """DELETE FROM post_topic_store WHERE post_id IN (
               SELECT a.post_id FROM post_topic_store a LEFT JOIN post_store s USING (post_id)
               WHERE s.post_id IS NULL OR s.deleted_at IS NOT NULL)"""
    ).fetchone()[0]
