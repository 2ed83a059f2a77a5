"""Storage for the framing classifier: analysts' labels, predictions and model cards.

Every write goes through a registered pandas frame and one INSERT ... SELECT inside a
transaction; nothing is inserted row by row.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Iterable

import duckdb
import numpy as np
import pandas as pd

from warehouse.db import transaction

DIMENSIONS = 384


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _vectors(table: Any, column: str) -> np.ndarray:
    """A FLOAT[384] column of an Arrow table as an (n, 384) float32 array (nulls → zeros)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    array = table.column(column).combine_chunks()
    if array.null_count:
        filler = pa.array([[0.0] * DIMENSIONS], type=array.type)
        array = pc.if_else(pc.is_null(array), filler.take(pa.array([0] * len(array))), array)
    values = array.flatten().to_numpy(zero_copy_only=False)
    return np.asarray(values, dtype=np.float32).reshape(len(array), DIMENSIONS)


def _with_frame(con: duckdb.DuckDBPyConnection, name: str, frame: pd.DataFrame, sql: str,
                params: list[Any] | None = None) -> None:
    con.register(name, frame)
    try:
        con.execute(sql, params or [])
    finally:
        con.unregister(name)


# --------------------------------------------------------------------------- reading posts

def stored_vectors(con: duckdb.DuckDBPyConnection, post_ids: Iterable[str], encoder: str) -> dict[str, np.ndarray]:
    """Stored embeddings (of the posts' current content) for the given posts that have one."""
    ids = sorted({p for p in post_ids if p})
    if not ids:
        return {}
    frame = pd.DataFrame({"post_id": ids})
    con.register("wanted_ids", frame)
    try:
        table = con.execute(
            "SELECT e.post_id, e.embedding FROM post_embeddings e JOIN wanted_ids w USING (post_id) "
            "JOIN post_store p ON p.post_id = e.post_id AND p.content_hash = e.content_hash "
            "WHERE e.model = ? AND p.deleted_at IS NULL ORDER BY e.post_id", [encoder]
        ).fetch_arrow_table()
    finally:
        con.unregister("wanted_ids")
    vectors = _vectors(table, "embedding")
    return dict(zip(table.column("post_id").to_pylist(), vectors))


def post_texts(con: duckdb.DuckDBPyConnection, post_ids: Iterable[str]) -> pd.DataFrame:
    """post_id, text, thread_id, parent_id, parent_text for stored (not deleted) posts."""
    frame = pd.DataFrame({"post_id": sorted({p for p in post_ids if p})}, dtype="object")
    con.register("wanted_ids", frame)
    try:
        return con.execute(
            "SELECT p.post_id, p.text, p.thread_id, p.parent_id, q.text AS parent_text "
            "FROM post_store p JOIN wanted_ids w USING (post_id) "
            "LEFT JOIN post_store q ON q.post_id = p.parent_id AND q.deleted_at IS NULL "
            "WHERE p.deleted_at IS NULL AND p.text IS NOT NULL ORDER BY p.post_id"
        ).df()
    finally:
        con.unregister("wanted_ids")


def existing_posts(con: duckdb.DuckDBPyConnection, post_ids: Iterable[str]) -> set[str]:
    return set(post_texts(con, post_ids).post_id)


_INPUT_HASH = "p.content_hash || ':' || coalesce(q.content_hash, '')"

_PENDING = f"""
SELECT p.post_id, p.text, p.spoiler_text, {_INPUT_HASH} AS input_hash, p.parent_id, q.text AS parent_text,
       e.embedding, qe.embedding AS parent_embedding, (qe.post_id IS NOT NULL) AS has_parent
FROM post_store p
JOIN post_embeddings e ON e.post_id = p.post_id AND e.content_hash = p.content_hash AND e.model = $encoder
LEFT JOIN post_store q ON q.post_id = p.parent_id AND q.deleted_at IS NULL
LEFT JOIN post_embeddings qe ON qe.post_id = q.post_id AND qe.content_hash = q.content_hash
                             AND qe.model = $encoder
WHERE p.deleted_at IS NULL AND p.text IS NOT NULL
  AND NOT EXISTS (
    SELECT 1 FROM stance_prediction_store s
    WHERE s.post_id = p.post_id AND s.codebook = $codebook AND s.model_version = $version
      AND s.input_hash = {_INPUT_HASH})
"""


def count_unclassified(con: duckdb.DuckDBPyConnection, codebook: str, version: str, encoder: str) -> int:
    return con.execute(f"SELECT count(*) FROM ({_PENDING})",
                       {"encoder": encoder, "codebook": codebook, "version": version}).fetchone()[0]


def unclassified_posts(con: duckdb.DuckDBPyConnection, codebook: str, version: str, encoder: str,
                       limit: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Up to ``limit`` embedded posts lacking a prediction of this model for their current input:
    (frame of post_id/text/input_hash/parent_text/has_parent, own vectors, parent vectors)."""
    table = con.execute(f"{_PENDING} ORDER BY p.post_id LIMIT $limit",
                        {"encoder": encoder, "codebook": codebook, "version": version, "limit": limit}
                        ).fetch_arrow_table()
    own = _vectors(table, "embedding")
    parent = _vectors(table, "parent_embedding")
    frame = table.select(["post_id", "text", "spoiler_text", "input_hash", "parent_id", "parent_text",
                          "has_parent"]).to_pandas()
    return frame, own, parent


# --------------------------------------------------------------------------- labels

LABEL_COLUMNS = ["post_id", "codebook", "framings", "stance", "annotator", "imported_at", "source_file", "note"]


def store_labels(con: duckdb.DuckDBPyConnection, labels: pd.DataFrame) -> int:
    """Append analysts' labels (columns: post_id, codebook, framings (list), stance, annotator,
    source_file, note); the latest import of a post wins in the ``framing_labels`` view."""
    if labels.empty:
        return 0
    frame = labels.copy()
    frame["imported_at"] = pd.Timestamp(_now())
    for column in LABEL_COLUMNS:
        if column not in frame:
            frame[column] = None
    frame = frame[LABEL_COLUMNS]
    with transaction(con):
        _with_frame(con, "labels_in", frame,
                    "INSERT INTO framing_label_store SELECT post_id, codebook, CAST(framings AS VARCHAR[]), "
                    "stance, annotator, imported_at, source_file, note FROM labels_in")
    return len(frame)


def analyst_labels(con: duckdb.DuckDBPyConnection, codebook: str) -> pd.DataFrame:
    """The current label of every labelled post still in the warehouse, with its text and parent."""
    return con.execute(
        "SELECT l.post_id, l.framings, l.stance, l.annotator, p.text, p.thread_id, p.parent_id, "
        "q.text AS parent_text "
        "FROM framing_labels l JOIN post_store p ON p.post_id = l.post_id AND p.deleted_at IS NULL "
        "LEFT JOIN post_store q ON q.post_id = p.parent_id AND q.deleted_at IS NULL "
        "WHERE l.codebook = ? AND p.text IS NOT NULL ORDER BY l.post_id", [codebook]
    ).df()


# --------------------------------------------------------------------------- predictions

def store_predictions(con: duckdb.DuckDBPyConnection, codebook: str, version: str,
                      framings: pd.DataFrame, stances: pd.DataFrame) -> None:
    """Replace the posts' predictions (of any model of this codebook) in one transaction.

    ``framings``: post_id, input_hash, framing, score, present; ``stances``: post_id,
    input_hash, stance, score, chosen.
    """
    if stances.empty:
        return
    now = pd.Timestamp(_now())
    ids = pd.DataFrame({"post_id": stances.post_id.unique()})
    with transaction(con):
        con.register("ids_in", ids)
        try:
            con.execute("DELETE FROM framing_prediction_store WHERE codebook = ? "
                        "AND post_id IN (SELECT post_id FROM ids_in)", [codebook])
            con.execute("DELETE FROM stance_prediction_store WHERE codebook = ? "
                        "AND post_id IN (SELECT post_id FROM ids_in)", [codebook])
        finally:
            con.unregister("ids_in")
        if len(framings):
            _with_frame(con, "framings_in", framings,
                        "INSERT INTO framing_prediction_store SELECT post_id, ?, ?, input_hash, framing, "
                        "score, present, ? FROM framings_in", [codebook, version, now])
        _with_frame(con, "stances_in", stances,
                    "INSERT INTO stance_prediction_store SELECT post_id, ?, ?, input_hash, stance, score, "
                    "chosen, ? FROM stances_in", [codebook, version, now])


def forget_deleted(con: duckdb.DuckDBPyConnection) -> int:
    """Drop predictions of posts that were deleted at the source or whose author withdrew consent."""
    gone = "SELECT post_id FROM post_store WHERE deleted_at IS NOT NULL"
    n = con.execute(f"SELECT count(DISTINCT post_id) FROM stance_prediction_store WHERE post_id IN ({gone})").fetchone()[0]
    if n:
        with transaction(con):
            con.execute(f"DELETE FROM framing_prediction_store WHERE post_id IN ({gone})")
            con.execute(f"DELETE FROM stance_prediction_store WHERE post_id IN ({gone})")
    return n


# --------------------------------------------------------------------------- model cards

def store_model_card(con: duckdb.DuckDBPyConnection, card: dict[str, Any]) -> None:
    """Record a model (once) and make it the codebook's current one."""
    now = _now()
    cv = card.get("cv", {})
    per = (cv.get("framings") or {}).get("per_framing", {})
    stance = cv.get("stance") or {}
    row = pd.DataFrame([{
        "model_version": card["model_version"], "codebook": card["codebook"],
        "codebook_hash": card.get("codebook_hash"), "encoder": card.get("encoder"),
        "code_version": card.get("code_version"),
        "trained_at": pd.Timestamp(card["trained_at"]), "activated_at": pd.Timestamp(now),
        "n_labels": int(card.get("n_labels", 0)), "n_analyst_labels": card.get("n_analyst_labels"),
        "n_codebook_examples": card.get("n_codebook_examples"), "cv_groups": cv.get("n_groups"),
        "cv_framing_macro_f1": (cv.get("framings") or {}).get("macro_f1"),
        "cv_stance_macro_f1": stance.get("macro_f1"), "cv_stance_kappa": stance.get("kappa"),
        "card": json.dumps(card, sort_keys=True, default=str),
    }])
    metrics = pd.DataFrame([
        {"model_version": card["model_version"], "framing": key,
         "threshold": card.get("thresholds", {}).get(key),
         "precision": per.get(key, {}).get("precision"), "recall": per.get(key, {}).get("recall"),
         "f1": per.get(key, {}).get("f1"), "kappa": per.get(key, {}).get("kappa"),
         "support": per.get(key, {}).get("support")}
        for key in card.get("thresholds", {})
    ], columns=["model_version", "framing", "threshold", "precision", "recall", "f1", "kappa", "support"])
    metrics = metrics.astype({"precision": "float64", "recall": "float64", "f1": "float64", "kappa": "float64",
                              "threshold": "float64", "support": "Int64"})
    with transaction(con):
        _with_frame(con, "card_in", row,
                    "INSERT INTO framing_model_store SELECT model_version, codebook, codebook_hash, encoder, "
                    "code_version, trained_at, activated_at, n_labels, n_analyst_labels, n_codebook_examples, "
                    "cv_groups, cv_framing_macro_f1, cv_stance_macro_f1, cv_stance_kappa, CAST(card AS JSON) "
                    "FROM card_in ON CONFLICT (model_version) DO UPDATE SET activated_at = excluded.activated_at")
        if len(metrics):
            _with_frame(con, "metrics_in", metrics,
                        "INSERT INTO framing_model_metrics SELECT * FROM metrics_in ON CONFLICT DO NOTHING")


def current_model(con: duckdb.DuckDBPyConnection, codebook: str) -> dict[str, Any] | None:
    row = con.execute("SELECT model_version, card FROM model_cards WHERE codebook = ? AND is_current",
                      [codebook]).fetchone()
    return {"model_version": row[0], "card": json.loads(row[1])} if row else None


def uncertain_posts(con: duckdb.DuckDBPyConnection, codebook: str, limit: int,
                    exclude: Iterable[str] = ()) -> pd.DataFrame:
    """The ``limit`` classified posts the current model is least sure of, most uncertain first.

    A framing is uncertain when its score is near its threshold (1 at the threshold, 0 at 0 or
    1); the stance when its two best labels are close (1 - margin). A post's uncertainty is
    the largest of these. Posts already labelled (in the warehouse or ``exclude``) are skipped.
    """
    skip = pd.DataFrame({"post_id": sorted(set(exclude))}, dtype="object")
    con.register("skip_ids", skip)
    try:
        return con.execute(
            """
            WITH cur AS (SELECT model_version FROM current_framing_models WHERE codebook = $codebook),
            f AS (
                SELECT x.post_id,
                       max(1 - abs(x.score - coalesce(t.threshold, 0.5))
                               / greatest(coalesce(t.threshold, 0.5), 1 - coalesce(t.threshold, 0.5))) AS u,
                       list(x.framing ORDER BY x.framing) FILTER (WHERE x.present) AS framings,
                       json_group_object(x.framing, round(x.score, 4)) AS scores
                FROM framing_prediction_store x JOIN cur USING (model_version)
                LEFT JOIN framing_model_metrics t ON t.model_version = x.model_version AND t.framing = x.framing
                WHERE x.codebook = $codebook
                GROUP BY x.post_id
            ),
            s AS (
                SELECT post_id, arg_max(stance, score) AS stance,
                       1 - (max(score) - list_sort(list(score), 'DESC')[2]) AS u,
                       json_group_object(stance, round(score, 4)) AS stance_scores
                FROM stance_prediction_store JOIN cur USING (model_version)
                WHERE codebook = $codebook
                GROUP BY post_id
            )
            SELECT p.post_id, p.platform, p.thread_id, p.url, p.text, q.text AS parent_text,
                   coalesce(f.framings, []) AS predicted_framings, f.scores, s.stance AS predicted_stance,
                   s.stance_scores, round(greatest(f.u, s.u), 4) AS uncertainty
            FROM s JOIN f USING (post_id)
            JOIN post_store p ON p.post_id = s.post_id AND p.deleted_at IS NULL
            LEFT JOIN post_store q ON q.post_id = p.parent_id AND q.deleted_at IS NULL
            WHERE s.post_id NOT IN (SELECT post_id FROM framing_labels WHERE codebook = $codebook)
              AND s.post_id NOT IN (SELECT post_id FROM skip_ids)
            ORDER BY uncertainty DESC, p.post_id
            LIMIT $limit
            """,
            {"codebook": codebook, "limit": limit},
        ).df()
    finally:
        con.unregister("skip_ids")
