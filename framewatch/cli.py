"""The ``framewatch`` command. Subcommands mirror the flows; each takes ``--config PATH``.

Exit codes: 0 all went well, 1 the run finished but something was partial or failed (bad
rows, a failing source), 2 a problem to fix before anything can run (config, missing file,
unknown source type, warehouse not writable).
"""

from __future__ import annotations

import csv
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Optional

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

import typer
from rich.console import Console
from rich.table import Table

from framewatch.config import DEFAULT_CONFIG, ConfigError, Settings, load_settings

app = typer.Typer(
    help="Collect online debates, analyse their framings and report how narratives shift.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Piped output (logs, CI, tests) gets a fixed, roomy width instead of 80 columns.
console = Console() if sys.stdout.isatty() else Console(width=140)
err = Console(stderr=True) if sys.stderr.isatty() else Console(stderr=True, width=140)

ConfigOption = typer.Option(DEFAULT_CONFIG, "--config", "-c", help="Config file (TOML).")


class Abort(Exception):
    """A user-facing failure with an exit code."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


def settings_or_exit(config: Path) -> Settings:
    try:
        return load_settings(config)
    except ConfigError as exc:
        fail(str(exc), 2)
        raise  # unreachable


def fail(message: str, code: int) -> None:
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _guard(fn):
    """Turn known failures into one clear line and the documented exit code."""
    from flows.sources.base import SourceError
    from warehouse.errors import WarehouseError

    try:
        return fn()
    except (ConfigError, WarehouseError) as exc:
        fail(str(exc), 2)
    except SourceError as exc:
        fail(str(exc), 2 if exc.fatal_config else 1)


def _print_collection(results: list[dict[str, Any]]) -> int:
    table = Table(title="collection")
    for column in ("source", "status", "fetched", "new", "updated", "consent-skipped", "failed", "seconds"):
        table.add_column(column, justify="right" if column not in ("source", "status") else "left",
                         overflow="fold")
    for r in results:
        colour = {"ok": "green", "partial": "yellow"}.get(r["status"], "red")
        table.add_row(r["source"], f"[{colour}]{r['status']}[/{colour}]", *(str(r[k]) for k in (
            "fetched", "new", "updated", "skipped_consent", "failed", "seconds")))
    console.print(table)
    for r in results:
        for problem in r.get("problems", [])[:50]:
            err.print(problem, highlight=False, soft_wrap=True)
        if len(r.get("problems", [])) > 50:
            err.print(f"… and {len(r['problems']) - 50} more problems in {r['source']}")
        if r["error"] and r["status"] == "failed":
            err.print(f"[red]{r['error']}[/red]", highlight=False, soft_wrap=True)
    return 0 if all(r["status"] == "ok" for r in results) else 1


def _print_report(result: dict[str, Any]) -> None:
    paths = result.get("report_paths") or []
    if paths:
        console.print(f"latest report: {paths[0]}")
    console.print(f"report index: {result['index_path']}")


def _preflight(settings: Settings, only: list[str] | None = None) -> None:
    from flows.collect import preflight
    from warehouse.db import open_warehouse

    preflight(settings, only)
    open_warehouse(settings.warehouse_path).close()


@app.command()
def init(config: Path = ConfigOption) -> None:
    """Create the warehouse (or upgrade it in place) at the latest schema version."""
    from warehouse.db import connect, current_version, migrate
    from warehouse.search import has_search_index, rebuild_search_index

    settings = settings_or_exit(config)

    def run() -> None:
        con = connect(settings.warehouse_path)
        try:
            applied = migrate(con)
            if not has_search_index(con):
                rebuild_search_index(con)
            version = current_version(con)
        finally:
            con.close()
        what = f"applied {', '.join(applied)}" if applied else "already up to date"
        console.print(f"warehouse {settings.warehouse_path} at schema version {version} ({what})")

    _guard(run)


@app.command()
def collect(config: Path = ConfigOption,
            source: Optional[list[str]] = typer.Option(None, "--source", "-s", help="Only these sources.")) -> None:
    """Collect every enabled source into the warehouse and print a run record per source."""
    from flows.collect import collect_flow
    from warehouse.runs import new_run_id

    settings = settings_or_exit(config)
    _guard(lambda: _preflight(settings, source))
    console.print(f"collecting {len(source or settings.sources)} source(s) into {settings.warehouse_path}")
    results = _guard(lambda: collect_flow(str(config), new_run_id(), source))
    raise typer.Exit(_print_collection(results))


@app.command()
def analyze(config: Path = ConfigOption,
            refit_topics: bool = typer.Option(False, "--refit-topics",
                                              help="Refit topics now and merge them into the existing model.")) -> None:
    """spaCy, embeddings, framings and topics for new or changed posts."""
    from flows.analyze import analyze_flow
    from warehouse.runs import new_run_id

    settings = settings_or_exit(config)
    _guard(lambda: _preflight(settings, []))
    console.print(f"analysing new posts in {settings.warehouse_path}")
    stats = _guard(lambda: analyze_flow(str(config), new_run_id(), refit_topics))
    console.print_json(data=stats)


@app.command()
def report(config: Path = ConfigOption,
           out: Optional[Path] = typer.Option(None, "--out", help="Report folder (overrides [report] out_dir).")) -> None:
    """Write the HTML reports, index and feed from the warehouse views."""
    from flows.report_step import build_report
    from warehouse.runs import new_run_id

    settings = settings_or_exit(config)
    result = _guard(lambda: build_report(settings, new_run_id(), out))
    _print_report(result)


@app.command()
def run(config: Path = ConfigOption,
        out: Optional[Path] = typer.Option(None, "--out", help="Report folder (overrides [report] out_dir).")) -> None:
    """Collect → analyze → report once (the nightly flow), recorded as one run."""
    from flows.nightly import nightly_flow

    settings = settings_or_exit(config)
    _guard(lambda: _preflight(settings))
    console.print(f"nightly run: {len(settings.sources)} source(s) → {settings.warehouse_path}")
    result = _guard(lambda: nightly_flow(str(config), out_dir=str(out) if out else None))
    code = _print_collection(result["collect"])
    console.print(f"run {result['run_id']}: {result['status']}")
    _print_report(result["report"])
    raise typer.Exit(code)


@app.command()
def serve(config: Path = ConfigOption) -> None:
    """Register the nightly deployment (cron from the schedule section) with a Prefect server and serve it."""
    from flows.nightly import serve_nightly

    settings = settings_or_exit(config)
    _guard(lambda: _preflight(settings))
    console.print(f"serving deployment {settings.schedule.deployment_name!r} on cron "
                  f"{settings.schedule.cron!r} ({settings.schedule.timezone})")
    serve_nightly(str(config))


@app.command()
def sql(query: str = typer.Argument(..., help="SQL to run read-only against the warehouse."),
        config: Path = ConfigOption,
        as_csv: bool = typer.Option(False, "--csv", help="Print CSV instead of a table."),
        limit: int = typer.Option(1000, help="At most this many rows in table output.")) -> None:
    """Run a read-only query against the warehouse views."""
    import duckdb

    from warehouse.db import connect

    settings = settings_or_exit(config)
    con = _guard(lambda: connect(settings.warehouse_path, read_only=True, search=True))
    try:
        cursor = con.execute(query)
        columns = [d[0] for d in cursor.description or []]
        rows = cursor.fetchall() if as_csv else cursor.fetchmany(limit)
    except duckdb.Error as exc:
        fail(f"query failed: {exc}", 2)
    finally:
        con.close()
    if as_csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
        return
    table = Table(*columns, show_lines=False)
    for row in rows:
        table.add_row(*("NULL" if v is None else str(v) for v in row))
    console.print(table)
    console.print(f"{len(rows)} row(s)", style="dim")


def _register_plugins() -> None:
    """Command groups contributed by other parts of framewatch."""
    try:
        from framewatch import cli_framing
    except ImportError:
        return
    cli_framing.register(app)


_register_plugins()


def main() -> None:  # pragma: no cover - console entry
    logging.basicConfig(level=logging.WARNING)
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
