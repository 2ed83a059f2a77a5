"""The report step: read the warehouse (read-only) and write the HTML reports, index and feed."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prefect import task

from flows.context import run_logger, settings_from
from framewatch.config import Settings
from reports.build import build_reports
from warehouse.db import connect


def build_report(settings: Settings, run_id: str, out_dir: Path | None = None) -> dict[str, Any]:
    """Build every report into ``out_dir`` (default: ``[report] out_dir``); returns a summary
    with ``index_path``, ``feed_path``, ``report_paths``, what was rebuilt and the seconds taken."""
    log = run_logger()
    started = time.monotonic()
    target = Path(out_dir) if out_dir is not None else settings.resolve(settings.report.out_dir)
    con = connect(settings.warehouse_path, read_only=True)
    try:
        result = build_reports(con, settings, run_id, target)
    finally:
        con.close()
    summary = {**result.as_dict(), "seconds": round(time.monotonic() - started, 2)}
    log.info("reports: %d built, %d unchanged, index at %s", len(result.built), len(result.unchanged),
             result.index_path)
    return summary


@task(name="build-report", task_run_name="report-{run_id}")
def report_task(config_path: str, run_id: str, out_dir: str | None = None) -> dict[str, Any]:
    return build_report(settings_from(config_path), run_id, Path(out_dir) if out_dir else None)
