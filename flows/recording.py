"""Run records around a flow: a row in pipeline_runs that says what ran, how long, and how it ended."""

from __future__ import annotations

import contextlib
import time
from typing import Any, Iterator

from framewatch.config import Settings
from warehouse import runs
from warehouse.db import open_warehouse


def _flow_run_id() -> str | None:
    try:
        from prefect.runtime import flow_run

        return str(flow_run.id) if flow_run.id else None
    except Exception:
        return None


@contextlib.contextmanager
def recorded_run(settings: Settings, kind: str, run_id: str) -> Iterator[dict[str, Any]]:
    """Yields a stats dict the caller fills; stats["status"] (ok/partial/failed) is honoured."""
    stats: dict[str, Any] = {}
    started = time.monotonic()
    con = open_warehouse(settings.warehouse_path)
    try:
        runs.start_run(con, run_id, kind, settings.config_hash, _flow_run_id())
    finally:
        con.close()
    error: str | None = None
    try:
        yield stats
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}"
        stats["status"] = "failed"
        raise
    finally:
        stats["seconds"] = round(time.monotonic() - started, 2)
        status = stats.pop("status", "ok")
        con = open_warehouse(settings.warehouse_path)
        try:
            runs.finish_run(con, run_id, kind, status, stats, error or stats.get("error"))
        finally:
            con.close()
        stats["status"] = status
