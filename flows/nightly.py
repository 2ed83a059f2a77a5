"""The nightly flow: collect → analyze → report, recorded as one run.

``framewatch run`` runs it once; ``framewatch serve`` registers it as a cron deployment with
a Prefect server. Parameters are plain strings so the same flow runs on any worker.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow

from flows.analyze import analyze_flow
from flows.collect import collect_flow, overall_status
from flows.context import run_logger, settings_from
from flows.recording import recorded_run
from flows.report_step import report_task
from warehouse.runs import new_run_id


@flow(name="framewatch-nightly")
def nightly_flow(config_path: str, run_id: str | None = None, out_dir: str | None = None) -> dict[str, Any]:
    """One full run. A failing source does not stop the others, analysis or the report."""
    settings = settings_from(config_path)
    run_id = run_id or new_run_id()
    log = run_logger()
    with recorded_run(settings, "run", run_id) as stats:
        sources = collect_flow(config_path, run_id)
        stats["collect"] = sources
        stats["analyze"] = analyze_flow(config_path, run_id)
        stats["report"] = report_task(config_path, run_id, out_dir)
        stats["status"] = overall_status(sources)
    log.info("run %s finished: %s; report at %s", run_id, stats["status"], stats["report"].get("index_path"))
    return {"run_id": run_id, **stats}


def serve_nightly(config_path: str) -> None:
    """Register the nightly deployment (cron from config) with the Prefect server and serve it."""
    from prefect.schedules import Cron

    settings = settings_from(config_path)
    nightly_flow.serve(
        name=settings.schedule.deployment_name,
        schedules=[Cron(settings.schedule.cron, timezone=settings.schedule.timezone)],
        parameters={"config_path": str(Path(config_path).resolve())},
        tags=["framewatch"],
        description="framewatch nightly collect → analyze → report",
    )
