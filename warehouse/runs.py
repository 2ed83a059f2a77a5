"""Run records: one row per pipeline run and one per source per collection."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from typing import Any

import duckdb


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:6]


def start_run(con: duckdb.DuckDBPyConnection, run_id: str, kind: str, config_hash: str,
              flow_run_id: str | None = None) -> None:
    con.execute(
        "INSERT INTO pipeline_runs VALUES (?, ?, ?, NULL, 'running', ?, ?, NULL, NULL) "
        "ON CONFLICT (run_id, kind) DO NOTHING",
        [run_id, kind, datetime.now(timezone.utc), config_hash, flow_run_id],
    )


def finish_run(con: duckdb.DuckDBPyConnection, run_id: str, kind: str, status: str, stats: dict[str, Any],
               error: str | None = None) -> None:
    con.execute(
        "UPDATE pipeline_runs SET finished_at = ?, status = ?, stats = ?, error = ? WHERE run_id = ? AND kind = ?",
        [datetime.now(timezone.utc), status, json.dumps(stats, default=str, sort_keys=True), error, run_id, kind],
    )


def start_collection(con: duckdb.DuckDBPyConnection, run_id: str, source: str) -> None:
    con.execute(
        "INSERT INTO collection_runs (run_id, source, started_at, status) VALUES (?, ?, ?, 'running') "
        "ON CONFLICT (run_id, source) DO UPDATE SET started_at = excluded.started_at, status = 'running'",
        [run_id, source, datetime.now(timezone.utc)],
    )


def finish_collection(con: duckdb.DuckDBPyConnection, run_id: str, source: str, *, status: str,
                      fetched: int, new: int, updated: int, skipped_consent: int, failed: int,
                      seconds: float, requests: int, error: str | None) -> None:
    con.execute(
        """UPDATE collection_runs SET finished_at = ?, status = ?, fetched = ?, new = ?, updated = ?,
               skipped_consent = ?, failed = ?, seconds = ?, requests = ?, error = ?
           WHERE run_id = ? AND source = ?""",
        [datetime.now(timezone.utc), status, fetched, new, updated, skipped_consent, failed, seconds,
         requests, error, run_id, source],
    )
