"""Build the HTML reports, the index and the Atom feed from a read-only warehouse connection.

Layout of ``out_dir``::

    index.html            every report, newest first; the latest and the whole-corpus report on top
    feed.xml              Atom feed, one entry per report
    overall/index.html    the whole corpus (timelines per month, or the coarsest configured unit)
    month-2019-02/…       one report per period of each configured granularity: every month
    week-2019-W07/…       (up to 36), the 8 latest weeks, the 7 latest days that hold posts
    day-2019-02-15/…

Each report folder holds ``index.html`` (self-contained: inline CSS, charts as data: images, a
CSP that forbids scripts and every network request) and ``report.json`` (its manifest, read back
to list reports from earlier runs). A report whose data did not change since it was last built
is left as it was, except the latest of each granularity and the whole-corpus report, which
every run rebuilds so they show the run's collection problems.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from importlib import metadata, resources
from pathlib import Path
from typing import Any

import duckdb
import jinja2

from reports import sections as S
from reports.data import COARSE_TO_FINE, Reader, Window, data_window, periods_with_posts
from reports.feed import write_feed
from reports.text import clean_text, number, period_end, period_name, period_slug, plural, upper_first

log = logging.getLogger(__name__)

MAX_REPORT_BYTES = 2 * 1024 * 1024
HISTORY = {"month": 36, "week": 8, "day": 7}
OVERALL_MAX_PERIODS = 80
PACKAGES = ["framewatch", "duckdb", "pandas", "altair", "vl-convert-python", "jinja2", "prefect", "spacy",
            "sentence-transformers", "bertopic", "scikit-learn", "torch"]
MANIFEST = "report.json"


@dataclass
class ReportResult:
    index_path: Path
    report_paths: list[Path]
    feed_path: Path | None = None
    built: list[str] = field(default_factory=list)  # slugs written in this call
    unchanged: list[str] = field(default_factory=list)  # slugs left as they were
    sizes: dict[str, int] = field(default_factory=dict)  # bytes per report folder

    def as_dict(self) -> dict[str, Any]:
        return {
            "index_path": str(self.index_path),
            "report_path": str(self.index_path),  # the entry point: the index links every report
            "feed_path": str(self.feed_path) if self.feed_path else None,
            "report_paths": [str(p) for p in self.report_paths],
            "built": list(self.built),
            "unchanged": list(self.unchanged),
            "max_report_bytes": max(self.sizes.values(), default=0),
        }


@dataclass(frozen=True)
class Plan:
    slug: str
    title: str
    scope: S.Scope
    always: bool  # rebuild even when the data did not change


# Planning ------------------------------------------------------------------------------------

def overall_granularity(reader: Reader, configured: list[str]) -> str:
    """The coarsest configured unit, or month when that would give too many periods."""
    chosen = next((g for g in COARSE_TO_FINE if g in configured), "month")
    if chosen != "month" and len(periods_with_posts(reader, chosen)) > OVERALL_MAX_PERIODS:
        return "month"
    return chosen


def plan_reports(reader: Reader, settings: Any) -> list[Plan]:
    window = data_window(reader)
    configured = list(settings.report.granularities) or ["month"]
    if window is None:
        today = datetime.now(timezone.utc).date()
        scope = S.Scope("overall", overall_granularity(reader, configured), Window(today, today + timedelta(days=1)))
        return [Plan("overall", "Whole corpus", scope, True)]
    first, last = window
    g_overall = overall_granularity(reader, configured)
    plans = [Plan("overall", "Whole corpus",
                  S.Scope("overall", g_overall, Window(first.date(), last.date() + timedelta(days=1))), True)]
    for g in sorted(set(configured), key=COARSE_TO_FINE.index):
        periods = periods_with_posts(reader, g)[-HISTORY[g]:]
        for start in periods:
            plans.append(Plan(
                period_slug(start, g), upper_first(period_name(start, g)),
                S.Scope("period", g, Window(start, period_end(start, g)), period_start=start),
                always=start == periods[-1]))
    return plans


# Rendering -----------------------------------------------------------------------------------

def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("reports", "templates"),
        autoescape=True,  # every template, whatever its name: post text is never markup
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["number"] = number
    env.filters["plural"] = plural
    return env


def _code_version() -> str:
    """Changes whenever the report code or templates change, so such a change rebuilds reports."""
    digest = hashlib.sha256()
    package = resources.files("reports")
    try:
        for name in sorted(["build.py", "sections.py", "charts.py", "text.py", "data.py", "feed.py"]):
            digest.update((package / name).read_bytes())
        for entry in sorted((package / "templates").iterdir(), key=lambda e: e.name):
            if entry.name.endswith(".j2"):
                digest.update(entry.read_bytes())
    except OSError:  # an installed copy without sources: fall back to the package version
        digest.update(", ".join(f"{n} {v}" for n, v in package_versions()).encode())
    return digest.hexdigest()[:12]


def package_versions() -> list[tuple[str, str]]:
    out = []
    for name in PACKAGES:
        try:
            out.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            continue
    return out


def _gather(reader: Reader, plan: Plan, settings: Any, labels: S.Labels, run_id: str
            ) -> tuple[list[S.Section], dict[str, Any]]:
    scope = plan.scope
    built: list[S.Section] = []
    facts: dict[str, Any] = {"n_significant": 0, "summary": [], "failed_sources": []}

    def attempt(section_id: str, title: str, make):
        try:
            return make()
        except Exception as exc:  # one broken section must not take the report down
            log.exception("report %s: section %s could not be built", plan.slug, section_id)
            broken = S.Section(section_id, title)
            broken.p(f"This section could not be built ({type(exc).__name__}); the rest of the report is complete.")
            return broken

    summary = attempt("summary", "Summary", lambda: S.summary_section(reader, scope, labels))
    if isinstance(summary, tuple):
        summary, facts["n_significant"] = summary
    facts["summary"] = [b.get("text") or " ".join(b.get("items", [])) for b in summary.blocks
                        if b["kind"] in ("p", "ul")]
    built.append(summary)
    built.append(attempt("framings", "Framings over time", lambda: S.framing_section(reader, scope, labels)))
    built.append(attempt("stances", "Stance over time", lambda: S.stance_section(reader, scope, labels)))
    built.append(attempt("volume", "Posts", lambda: S.volume_section(reader, scope)))
    built.append(attempt("topics", "Topics", lambda: S.topics_section(reader, scope)))
    built.append(attempt("transitions", "Replies", lambda: S.transitions_section(reader, scope, labels)))
    built.append(attempt("threads", "Threads", lambda: S.threads_section(reader, scope)))
    built.append(attempt("entities", "Entities", lambda: S.entities_section(reader, scope)))
    built.append(attempt("exemplars", "Example posts", lambda: S.exemplars_section(reader, scope, labels)))
    built.append(attempt("model", "Model card", lambda: S.model_section(reader)))
    run = attempt("run", "Collection in this run", lambda: S.run_section(reader, run_id))
    if isinstance(run, tuple):
        run, facts["failed_sources"] = run
    built.append(run)
    facts["n_posts"] = reader.scalar(
        f"SELECT count(*) FROM posts p WHERE {S.IN_WINDOW}", scope.window.params) if reader.has("posts") else 0
    row = reader.con.execute(
        f"SELECT min(p.created_at AT TIME ZONE 'UTC'), max(p.created_at AT TIME ZONE 'UTC') FROM posts p "
        f"WHERE {S.IN_WINDOW}", scope.window.params).fetchone() if reader.has("posts") else None
    facts["first_post"], facts["last_post"] = (row or (None, None))
    return built, facts


def _folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not (folder / "index.html").is_file() or data.get("slug") != folder.name:
        return None
    return data


def _stamp(settings: Any, run_id: str, reader: Reader, facts: dict[str, Any], built_at: datetime,
           plan: Plan) -> list[tuple[str, str]]:
    whole = data_window(reader)
    fmt = "%Y-%m-%d %H:%M UTC"
    items = [
        ("run id", run_id),
        ("config hash", settings.config_hash or "(not recorded)"),
        ("built", built_at.strftime(fmt)),
        ("report window", f"{plan.scope.window.start} to {plan.scope.window.end - timedelta(days=1)} (UTC)"),
        ("posts in window", f"{number(facts['n_posts'])}"
         + (f", {facts['first_post'].strftime(fmt)} to {facts['last_post'].strftime(fmt)}"
            if facts.get("first_post") else "")),
        ("warehouse data", f"{whole[0].strftime(fmt)} to {whole[1].strftime(fmt)}" if whole else "no dated posts"),
        ("packages", ", ".join(f"{n} {v}" for n, v in package_versions())),
    ]
    return items


def _render_report(env: jinja2.Environment, plan: Plan, settings: Any, built: list[S.Section],
                   stamp: list[tuple[str, str]], facts: dict[str, Any], compact: bool) -> str:
    if compact:  # too big: leave out the long tables behind charts (their summaries stay)
        for section in built:
            for block in section.blocks:
                if block["kind"] == "chart" and block["collapsed"]:
                    block["table"] = None
                    block["note"] = "The table of numbers behind this chart was left out to keep the report small."
    blocks = [b for section in built for b in section.blocks if b["kind"] == "chart"]
    pending = [b["chart"] for b in blocks if b["chart"].rendered is None]
    if len(pending) > 1:  # vl-convert releases the GIL: draw a report's charts side by side
        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1, len(pending))) as pool:
            list(pool.map(lambda chart: chart.render(), pending))
    for block in blocks:
        block["rendered"] = block["chart"].render()
    kind = (f"Every post in the warehouse, by {plan.scope.granularity}" if plan.scope.kind == "overall"
            else f"{plan.scope.granularity.capitalize()} report")
    return env.get_template("report.html.j2").render(
        site_title=clean_text(settings.report.title), title=plan.title, kind=kind, plan=plan,
        sections=built, stamp=stamp, facts=facts,
        last_day=(plan.scope.window.end - timedelta(days=1)).isoformat(),
        nav=[(s.id, s.title) for s in built],
    )


def build_one(reader: Reader, env: jinja2.Environment, plan: Plan, settings: Any, labels: S.Labels,
              run_id: str, out_dir: Path, code_version: str) -> tuple[dict[str, Any], bool]:
    """Build one report folder unless unchanged; returns (manifest, rebuilt)."""
    folder = out_dir / plan.slug
    built, facts = _gather(reader, plan, settings, labels, run_id)
    data_key = hashlib.sha256(json.dumps(
        [code_version, plan.slug, plan.title, [s.fingerprint() for s in built if s.id != "run"]],
        default=str, sort_keys=True).encode("utf-8")).hexdigest()[:20]
    old = _read_manifest(folder)
    if old and not plan.always and old.get("data_key") == data_key:
        return old, False
    built_at = datetime.now(timezone.utc)
    stamp = _stamp(settings, run_id, reader, facts, built_at, plan)
    html = _render_report(env, plan, settings, built, stamp, facts, compact=False)
    if len(html.encode("utf-8")) > MAX_REPORT_BYTES - 16_384:
        log.warning("report %s is %d bytes; leaving out chart tables", plan.slug, len(html.encode("utf-8")))
        html = _render_report(env, plan, settings, built, stamp, facts, compact=True)
    _write_atomic(folder / "index.html", html)
    scope = plan.scope
    manifest = {
        "slug": plan.slug,
        "title": plan.title,
        "kind": scope.kind,
        "granularity": scope.granularity,
        "period_start": scope.window.start.isoformat(),
        "period_end": scope.window.end.isoformat(),
        "n_posts": int(facts["n_posts"] or 0),
        "n_significant": int(facts["n_significant"]),
        "summary": [clean_text(s) for s in facts["summary"]][:8],
        "failed_sources": [clean_text(r["source"]) for r in facts["failed_sources"]],
        "built_at": built_at.isoformat(timespec="seconds"),
        "published_at": (old or {}).get("published_at") or built_at.isoformat(timespec="seconds"),
        "run_id": run_id,
        "config_hash": settings.config_hash,
        "data_key": data_key,
    }
    _write_atomic(folder / MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False))
    size = _folder_size(folder)
    if size > MAX_REPORT_BYTES:
        log.warning("report %s is %d bytes, over the %d byte budget", plan.slug, size, MAX_REPORT_BYTES)
    return manifest, True


def _sort_key(manifest: dict[str, Any]) -> tuple:
    """Newest first: later period end, then shorter span (a day before its week before its month)."""
    start = date.fromisoformat(manifest["period_start"])
    end = date.fromisoformat(manifest["period_end"])
    return (-end.toordinal(), (end - start).days, manifest["slug"])


def existing_manifests(out_dir: Path) -> list[dict[str, Any]]:
    found = []
    if out_dir.is_dir():
        for folder in out_dir.iterdir():
            if folder.is_dir() and not folder.name.startswith("."):
                manifest = _read_manifest(folder)
                if manifest:
                    try:
                        _sort_key(manifest)
                    except (KeyError, TypeError, ValueError):
                        continue
                    manifest["last_day"] = (date.fromisoformat(manifest["period_end"]) - timedelta(days=1)).isoformat()
                    found.append(manifest)
    return sorted(found, key=_sort_key)


def write_index(env: jinja2.Environment, settings: Any, out_dir: Path, manifests: list[dict[str, Any]],
                run_id: str) -> Path:
    overall = next((m for m in manifests if m.get("slug") == "overall"), None)
    latest = []  # the newest report of each granularity, finest first
    for granularity in reversed(COARSE_TO_FINE):
        newest = next((m for m in manifests if m.get("kind") == "period" and m.get("granularity") == granularity),
                      None)
        if newest:
            latest.append(newest)
    html = env.get_template("index.html.j2").render(
        site_title=clean_text(settings.report.title), reports=manifests,
        latest=latest, overall=overall, run_id=run_id,
        built=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    )
    path = out_dir / "index.html"
    _write_atomic(path, html)
    return path


def build_reports(con: duckdb.DuckDBPyConnection, settings: Any, run_id: str, out_dir: Path | str) -> ReportResult:
    """Build every planned report, the index and the feed into ``out_dir``; reads views only."""
    started = time.monotonic()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    labels = S.Labels(settings)
    reader = Reader(con, labels.codebook)
    reader.snapshot()
    env = _environment()
    code_version = _code_version()
    result = ReportResult(index_path=out_dir / "index.html", report_paths=[])
    for plan in plan_reports(reader, settings):
        manifest, rebuilt = build_one(reader, env, plan, settings, labels, run_id, out_dir, code_version)
        (result.built if rebuilt else result.unchanged).append(plan.slug)
        result.report_paths.append(out_dir / plan.slug / "index.html")
        result.sizes[plan.slug] = _folder_size(out_dir / plan.slug)
    manifests = existing_manifests(out_dir)
    result.index_path = write_index(env, settings, out_dir, manifests, run_id)
    result.feed_path = write_feed(out_dir / "feed.xml", settings, manifests)
    log.info("reports: %d built, %d unchanged in %.1fs -> %s", len(result.built), len(result.unchanged),
             time.monotonic() - started, result.index_path)
    return result
