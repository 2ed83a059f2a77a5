"""Reading the warehouse for reports: public views only, each query tolerant of missing views.

A report is built from a read-only connection. A view may be absent (an old warehouse that has
not been re-initialised, or an analysis step that never ran); ``Reader.has`` lets each section
say so instead of failing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import duckdb
import pandas as pd

GRANULARITIES = ("day", "week", "month")
# Coarse to fine, for choosing the whole-corpus report's time unit.
COARSE_TO_FINE = ("month", "week", "day")


# Views computed once per build (in dependency order: later ones read the earlier copies).
SNAPSHOT = ("narrative_post_framings", "narrative_post_stances", "framing_timeline", "stance_timeline",
            "narrative_shifts", "reply_framing_pairs", "framing_lead_lag", "topic_trends")


class Reader:
    """Queries over the public views. ``codebook`` scopes every framing and stance metric."""

    def __init__(self, con: duckdb.DuckDBPyConnection, codebook: str | None = None):
        self.con = con
        rows = con.execute("SELECT table_name FROM information_schema.tables").fetchall()
        self.objects = {r[0] for r in rows}
        self.codebook = self._choose_codebook(codebook)

    def _choose_codebook(self, configured: str | None) -> str | None:
        """The configured codebook if it has classified posts, else the one with the most."""
        if not self.has("post_framings"):
            return configured
        try:
            rows = self.con.execute(
                "SELECT codebook, count(DISTINCT post_id) AS n FROM post_framings GROUP BY 1 ORDER BY 2 DESC, 1"
            ).fetchall()
        except duckdb.Error:  # a post_framings without a codebook column
            return configured
        names = [r[0] for r in rows]
        if configured in names or not names:
            return configured
        return names[0]

    def snapshot(self, names: tuple[str, ...] = SNAPSHOT) -> list[str]:
        """Copy the metric views into temporary tables of the same names, which shadow them for
        this connection: a report runs dozens of queries over the same few views, and this
        computes each view once (the warehouse itself is not touched: temp objects live in memory)."""
        done = []
        for name in names:
            if name not in self.objects:
                continue
            try:
                self.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM main.{name}")
            except duckdb.Error:
                continue
            done.append(name)
        return done

    def has(self, *names: str) -> bool:
        return all(name in self.objects for name in names)

    def df(self, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
        return self.con.execute(sql, params or []).fetchdf()

    def records(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        cursor = self.con.execute(sql, params or [])
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]

    def scalar(self, sql: str, params: list[Any] | None = None) -> Any:
        row = self.con.execute(sql, params or []).fetchone()
        return row[0] if row else None


@dataclass(frozen=True)
class Window:
    """[start, end) in UTC calendar dates."""

    start: date
    end: date

    @property
    def params(self) -> list[datetime]:
        return [datetime(self.start.year, self.start.month, self.start.day),
                datetime(self.end.year, self.end.month, self.end.day)]


# A predicate on a view's codebook column; bind Reader.codebook.
SAME_CODEBOOK = "codebook IS NOT DISTINCT FROM ?"

# A predicate on posts aliased ``p``; bind Window.params.
IN_WINDOW = "(p.created_at AT TIME ZONE 'UTC') >= ? AND (p.created_at AT TIME ZONE 'UTC') < ?"


def check_granularity(granularity: str) -> str:
    if granularity not in GRANULARITIES and granularity != "hour":
        raise ValueError(f"unknown granularity {granularity!r}")
    return granularity


def bucket_expr(granularity: str) -> str:
    """SQL for a post's UTC period start (a TIMESTAMP) at ``granularity`` (validated)."""
    return f"date_trunc('{check_granularity(granularity)}', p.created_at AT TIME ZONE 'UTC')"


def data_window(reader: Reader) -> tuple[datetime, datetime] | None:
    """(first, last) created_at of all dated posts, in UTC; None when there are none."""
    if not reader.has("posts"):
        return None
    row = reader.con.execute(
        "SELECT min(created_at AT TIME ZONE 'UTC'), max(created_at AT TIME ZONE 'UTC') FROM posts p "
        "WHERE created_at IS NOT NULL"
    ).fetchone()
    if not row or row[0] is None:
        return None
    return row[0], row[1]


def periods_with_posts(reader: Reader, granularity: str) -> list[date]:
    """Start dates of the periods holding at least one dated post, oldest first."""
    if not reader.has("posts"):
        return []
    rows = reader.con.execute(
        f"SELECT DISTINCT CAST({bucket_expr(granularity)} AS DATE) AS d FROM posts p "
        "WHERE p.created_at IS NOT NULL ORDER BY d"
    ).fetchall()
    return [r[0] for r in rows]
