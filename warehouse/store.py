"""Writing collected posts: idempotent upserts, edit history, provenance and cursors in one
transaction per batch."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

import duckdb
import pandas as pd

from warehouse.db import transaction

AuthorKey = Callable[[str, str, str | None], str | None]
ToText = Callable[[str | None], str]

POST_COLUMNS = [
    "post_id", "platform", "site", "native_id", "source", "thread_id", "parent_id", "author",
    "author_key", "created_at", "edited_at", "lang", "url", "content", "text", "spoiler_text",
    "content_hash", "raw",
]


@dataclass
class BatchCounts:
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped_consent: int = 0
    rejected: int = 0
    deleted: int = 0

    def add(self, other: "BatchCounts") -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


def make_post_id(platform: str, site: str, native_id: str) -> str:
    return f"{platform}:{site}:{native_id}"


def content_hash(content: str | None, spoiler_text: str | None) -> str:
    return hashlib.sha256(f"{content or ''}\x1f{spoiler_text or ''}".encode()).hexdigest()[:24]


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.astimezone(timezone.utc) if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _post_frame(source: str, posts: Iterable[Any], author_key: AuthorKey, to_text: ToText) -> pd.DataFrame:
    rows = {}
    for post in posts:
        post_id = make_post_id(post.platform, post.site, post.native_id)
        thread = post.thread_native_id or post.native_id
        rows[post_id] = {  # later duplicates in a batch win
            "post_id": post_id,
            "platform": post.platform,
            "site": post.site,
            "native_id": str(post.native_id),
            "source": source,
            "thread_id": make_post_id(post.platform, post.site, thread),
            "parent_id": make_post_id(post.platform, post.site, post.parent_native_id)
            if post.parent_native_id else None,
            "author": post.author,
            "author_key": author_key(post.platform, post.site, post.author),
            "created_at": _utc(post.created_at),
            "edited_at": _utc(post.edited_at),
            "lang": post.lang,
            "url": post.url,
            "content": post.content,
            "text": post.text if post.text is not None else to_text(post.content),
            "spoiler_text": post.spoiler_text,
            "content_hash": content_hash(post.content, post.spoiler_text),
            "raw": json.dumps(post.raw, default=str, ensure_ascii=False) if post.raw is not None else None,
        }
    frame = pd.DataFrame(list(rows.values()), columns=POST_COLUMNS)
    for column in ("created_at", "edited_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame.astype({c: "object" for c in POST_COLUMNS if c not in ("created_at", "edited_at")})


def store_batch(
    con: duckdb.DuckDBPyConnection,
    *,
    source: str,
    run_id: str,
    batch: Any,
    author_key: AuthorKey,
    to_text: ToText,
    now: datetime | None = None,
) -> BatchCounts:
    """Store one batch and its cursor atomically; re-storing the same batch changes nothing."""
    now = now or datetime.now(timezone.utc)
    counts = BatchCounts()
    frame = _post_frame(source, batch.posts, author_key, to_text)
    with transaction(con):
        if len(frame):
            con.register("incoming", frame)
            try:
                counts = _upsert_posts(con, run_id, now)
            finally:
                con.unregister("incoming")
        if batch.skips:
            counts.skipped_consent, counts.rejected = _record_skips(con, source, run_id, batch.skips, now)
        for platform, site, native_id in batch.deleted_native_ids:
            if _forget(con, make_post_id(platform, site, native_id), now, run_id, "gone at the source"):
                con.execute(
                    "INSERT INTO provenance VALUES (?, ?, ?, ?, ?, ?, 'deleted', 'gone at the source', NULL)",
                    [now, run_id, source, platform, site, native_id],
                )
                counts.deleted += 1
        if batch.cursor is not None:
            con.execute(
                "INSERT INTO source_cursors VALUES (?, ?, ?, ?) ON CONFLICT (source) DO UPDATE SET "
                "cursor = excluded.cursor, run_id = excluded.run_id, updated_at = excluded.updated_at",
                [source, json.dumps(batch.cursor, sort_keys=True), run_id, now],
            )
    return counts


def _record_skips(con: duckdb.DuckDBPyConnection, source: str, run_id: str, skips: list[Any],
                  now: datetime) -> tuple[int, int]:
    """Provenance rows for skipped records (one per record and reason, not one per run), and
    removal of anything stored earlier from an account that has since withdrawn consent."""
    frame = pd.DataFrame([{
        "platform": k.platform, "site": k.site, "native_id": k.native_id, "action": k.action,
        "reason": k.reason, "detail": k.detail,
        "post_id": make_post_id(k.platform, k.site, k.native_id) if k.native_id else None,
    } for k in skips]).astype("object")
    con.register("skips_in", frame)
    try:
        con.execute(
            """
            INSERT INTO provenance
            SELECT DISTINCT ?, ?, ?, k.platform, k.site, k.native_id, k.action, k.reason, k.detail
            FROM skips_in k
            WHERE NOT EXISTS (SELECT 1 FROM provenance p WHERE p.source = ? AND p.platform = k.platform
                              AND p.site = k.site AND p.native_id IS NOT DISTINCT FROM k.native_id
                              AND p.action = k.action AND p.reason = k.reason)
            """,
            [now, run_id, source, source],
        )
        con.execute(
            """
            UPDATE post_store SET content = NULL, text = NULL, spoiler_text = NULL, raw = NULL,
                   deleted_at = ?, updated_at = ?, run_id = ?
            WHERE deleted_at IS NULL AND post_id IN
                  (SELECT post_id FROM skips_in WHERE action = 'skipped_consent' AND post_id IS NOT NULL)
            """,
            [now, now, run_id],
        )
        con.execute("DELETE FROM post_history WHERE post_id IN "
                    "(SELECT post_id FROM skips_in WHERE action = 'skipped_consent')")
    finally:
        con.unregister("skips_in")
    consent = int((frame.action == "skipped_consent").sum())
    return consent, len(frame) - consent


def _upsert_posts(con: duckdb.DuckDBPyConnection, run_id: str, now: datetime) -> BatchCounts:
    # Classify incoming rows against what is stored.
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE incoming_classified AS
        SELECT i.*,
               CASE WHEN s.post_id IS NULL THEN 'new'
                    WHEN s.deleted_at IS NULL AND s.content_hash = i.content_hash
                         AND s.thread_id IS NOT DISTINCT FROM i.thread_id
                         AND s.parent_id IS NOT DISTINCT FROM i.parent_id THEN 'same'
                    WHEN s.deleted_at IS NULL AND s.content_hash = i.content_hash THEN 'relinked'
                    WHEN s.edited_at IS NOT NULL AND i.edited_at IS NOT NULL
                         AND i.edited_at < s.edited_at THEN 'older'
                    ELSE 'changed' END AS state
        FROM incoming i LEFT JOIN post_store s USING (post_id)
        """
    )
    con.execute(
        """
        INSERT INTO post_history
        SELECT s.post_id, s.content, s.text, s.content_hash, s.edited_at, ?, ?
        FROM post_store s JOIN incoming_classified i USING (post_id)
        WHERE i.state = 'changed' AND s.content IS NOT NULL
        """,
        [now, run_id],
    )
    con.execute(
        """
        INSERT INTO provenance
        SELECT ?, ?, i.source, i.platform, i.site, i.native_id, 'edited',
               'content changed at the source', 'previous version in post_history'
        FROM incoming_classified i WHERE i.state = 'changed'
        """,
        [now, run_id],
    )
    con.execute(
        """
        INSERT INTO post_store
        SELECT post_id, platform, site, native_id, source, thread_id, parent_id, author, author_key,
               created_at, edited_at, lang, url, content, text, spoiler_text, content_hash,
               CAST(raw AS JSON), ?, ?, NULL, ?
        FROM incoming_classified WHERE state IN ('new', 'changed', 'relinked')
        ON CONFLICT (post_id) DO UPDATE SET
            thread_id = excluded.thread_id, parent_id = excluded.parent_id,
            author = excluded.author, author_key = excluded.author_key,
            created_at = excluded.created_at, edited_at = excluded.edited_at, lang = excluded.lang,
            url = excluded.url, content = excluded.content, text = excluded.text,
            spoiler_text = excluded.spoiler_text, content_hash = excluded.content_hash,
            raw = excluded.raw, updated_at = excluded.updated_at, deleted_at = NULL,
            run_id = excluded.run_id
        """,
        [now, now, run_id],
    )
    states = dict(con.execute("SELECT state, count(*) FROM incoming_classified GROUP BY state").fetchall())
    con.execute("DROP TABLE incoming_classified")
    return BatchCounts(new=states.get("new", 0), updated=states.get("changed", 0) + states.get("relinked", 0),
                       unchanged=states.get("same", 0) + states.get("older", 0))


def _forget(con: duckdb.DuckDBPyConnection, post_id: str, now: datetime, run_id: str, why: str) -> bool:
    """Mark a stored post deleted and remove its content; True if there was one to forget."""
    hit = con.execute(
        "SELECT count(*) FROM post_store WHERE post_id = ? AND deleted_at IS NULL", [post_id]
    ).fetchone()[0]
    if not hit:
        return False
    con.execute(
        "UPDATE post_store SET content = NULL, text = NULL, spoiler_text = NULL, raw = NULL, "
        "deleted_at = ?, updated_at = ?, run_id = ? WHERE post_id = ?",
        [now, now, run_id, post_id],
    )
    con.execute("DELETE FROM post_history WHERE post_id = ?", [post_id])
    return True


def read_cursor(con: duckdb.DuckDBPyConnection, source: str) -> dict[str, Any] | None:
    row = con.execute("SELECT cursor FROM source_cursors WHERE source = ?", [source]).fetchone()
    return json.loads(row[0]) if row else None


def register_source(con: duckdb.DuckDBPyConnection, name: str, type_name: str, options: dict[str, Any]) -> None:
    public = {k: v for k, v in options.items() if "token" not in k.lower() or k.endswith("_env")}
    now = datetime.now(timezone.utc)
    con.execute(
        "INSERT INTO sources VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
        "type = excluded.type, options = excluded.options, last_seen = excluded.last_seen",
        [name, type_name, json.dumps(public, sort_keys=True, default=str), now, now],
    )
