"""The collect flow: every enabled source, one task each, writing through idempotent upserts."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from prefect import flow, task

from flows.context import collector_context, run_logger, settings_from
from flows.recording import recorded_run
from flows.sources import SourceError, build_collector
from framewatch.config import Settings
from framewatch.pseudonym import pseudonymizer_for
from nlp.text import html_to_text
from warehouse import runs
from warehouse.db import open_warehouse
from warehouse.search import rebuild_search_index
from warehouse.store import BatchCounts, read_cursor, register_source, store_batch


@dataclass
class SourceResult:
    source: str
    status: str = "ok"  # ok | partial | failed
    fetched: int = 0
    new: int = 0
    updated: int = 0
    skipped_consent: int = 0
    failed: int = 0
    seconds: float = 0.0
    requests: int = 0
    error: str | None = None
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def preflight(settings: Settings, only: list[str] | None = None) -> list[Any]:
    """Build every selected collector before anything is written; SourceError on config faults."""
    context = collector_context(settings)
    chosen = [s for s in settings.sources if s.enabled and (not only or s.name in only)]
    if only:
        unknown = sorted(set(only) - {s.name for s in settings.sources})
        if unknown:
            raise SourceError(unknown[0], "no such source in the configuration", fatal_config=True)
    collectors = []
    for source in chosen:
        collector = build_collector(source.name, source.type, source.options(), context)
        check = getattr(collector, "check", None)
        if check is not None:
            check()
        collectors.append(collector)
    return collectors


def collect_one(settings: Settings, source_name: str, run_id: str) -> SourceResult:
    """Collect one source into the warehouse, batch by batch, each batch with its cursor."""
    log = run_logger()
    source = settings.source(source_name)
    result = SourceResult(source=source_name)
    started = time.monotonic()
    author_key = pseudonymizer_for(settings)
    con = open_warehouse(settings.warehouse_path)
    try:
        register_source(con, source.name, source.type, source.options())
        runs.start_collection(con, run_id, source.name)
        totals = BatchCounts()
        try:
            collector = build_collector(source.name, source.type, source.options(), collector_context(settings))
            for batch in collector.collect(read_cursor(con, source.name)):
                counts = store_batch(con, source=source.name, run_id=run_id, batch=batch,
                                     author_key=author_key, to_text=html_to_text)
                totals.add(counts)
                result.fetched += batch.fetched
                result.requests += batch.requests
                result.problems.extend(batch.errors)
                for problem in batch.errors:
                    log.warning("%s", problem)
        except SourceError as exc:
            result.status, result.error = "failed", str(exc)
            log.error("%s", exc)
        except Exception as exc:  # a bug or an unexpected payload: name the source, keep going
            result.status, result.error = "failed", f"source {source.name!r}: {type(exc).__name__}: {exc}"
            log.exception("source %s failed", source.name)
        result.new, result.updated, result.skipped_consent = totals.new, totals.updated, totals.skipped_consent
        result.failed = len(result.problems) + totals.rejected
        if result.status == "ok" and result.failed:
            result.status = "partial"
            result.error = f"{result.failed} item(s) rejected"
        result.seconds = round(time.monotonic() - started, 3)
        runs.finish_collection(con, run_id, source.name, status=result.status, fetched=result.fetched,
                               new=result.new, updated=result.updated,
                               skipped_consent=result.skipped_consent, failed=result.failed,
                               seconds=result.seconds, requests=result.requests, error=result.error)
    finally:
        con.close()
    return result


@task(name="collect-source", task_run_name="collect-{source_name}")
def collect_source_task(config_path: str, source_name: str, run_id: str) -> dict[str, Any]:
    return collect_one(settings_from(config_path), source_name, run_id).as_dict()


@flow(name="framewatch-collect", log_prints=False)
def collect_flow(config_path: str, run_id: str, only: list[str] | None = None) -> list[dict[str, Any]]:
    """Run every enabled source. One failing source does not stop the others."""
    settings = settings_from(config_path)
    names = [c.name for c in preflight(settings, only)]
    with recorded_run(settings, "collect", run_id) as stats:
        # Sources run one after another: DuckDB has one writer, and each source is polite to its
        # own host. The tasks take only names, so a Dask task runner can spread them later.
        results = [collect_source_task(config_path, name, run_id) for name in names]
        if any(r["new"] or r["updated"] for r in results):
            refresh_search_task(config_path)
        stats["sources"] = {r["source"]: {k: r[k] for k in ("status", "fetched", "new", "updated",
                                                             "skipped_consent", "failed", "seconds")}
                            for r in results}
        stats["status"] = overall_status(results)
    return results


def overall_status(results: list[dict[str, Any]]) -> str:
    """ok when every source is ok, failed when all failed, else partial."""
    states = {r["status"] for r in results}
    if states <= {"ok"}:
        return "ok"
    return "failed" if states == {"failed"} else "partial"


def refresh_search(settings: Settings) -> None:
    con = open_warehouse(settings.warehouse_path)
    try:
        rebuild_search_index(con)
    finally:
        con.close()


@task(name="refresh-search-index")
def refresh_search_task(config_path: str) -> None:
    """The FTS index is a snapshot; rebuild it when posts changed."""
    refresh_search(settings_from(config_path))
