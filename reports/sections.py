"""The sections of one report, built from the warehouse views.

Each builder returns a ``Section``: a heading and a list of blocks the template knows how to
draw (paragraphs, lists, tables, charts, posts). Charts are *pending* until the report is
known to need rendering, so an unchanged report costs queries only. A builder that finds no
data says so in a sentence; a builder that fails is shown as "could not be built" and the rest
of the report still renders.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Callable

import pandas as pd

from reports import charts
from reports.data import IN_WINDOW, SAME_CODEBOOK, Reader, Window, bucket_expr
from reports.text import (
    as_date, clean_text, comparison_phrase, join_words, number, one_line, p_text, pct, period_end, period_name,
    platform_name, plural, safe_url, share_with_ci, snippet, upper_first,
)

log = logging.getLogger(__name__)

MAX_PLATFORMS = 6
CONTEXT_PERIODS = 12
MAX_SUMMARY_SHIFTS = 6
SUB_UNIT = {"month": "day", "week": "day", "day": "hour"}
UNIT_WORD = {"hour": "hour", "day": "day", "week": "week", "month": "month"}


# Building blocks -----------------------------------------------------------------------------

DATE_LIKE = re.compile(r"\d{4}-\d{2}(-\d{2})?( \d{2}:\d{2})?")


@dataclass
class Cell:
    text: str
    href: str | None = None
    num: bool = False

    @property
    def nowrap(self) -> bool:
        return bool(DATE_LIKE.fullmatch(self.text))


@dataclass
class Table:
    caption: str
    headers: list[str]
    rows: list[list[Cell]]
    row_headers: bool = True  # first cell of each row is a header (<th scope="row">)
    note: str = ""


@dataclass
class PendingChart:
    """A chart to render later; ``fingerprint`` identifies its data for change detection."""

    make: Callable[[], charts.Chart]
    fingerprint: str
    rendered: charts.Chart | None = None

    def render(self) -> charts.Chart:
        if self.rendered is None:
            self.rendered = self.make()
        return self.rendered


@dataclass
class Post:
    framing: str
    platform: str
    author: str
    when: str
    text: str
    href: str | None
    score: str
    thread: str


@dataclass
class Section:
    id: str
    title: str
    blocks: list[dict[str, Any]] = field(default_factory=list)

    def p(self, text: str) -> None:
        self.blocks.append({"kind": "p", "text": text})

    def ul(self, items: list[str]) -> None:
        if items:
            self.blocks.append({"kind": "ul", "items": items})

    def table(self, table: Table, collapsed: bool = False, summary: str = "") -> None:
        self.blocks.append({"kind": "table", "table": table, "collapsed": collapsed,
                            "summary": summary or f"Table: {table.caption}"})

    def chart(self, pending: PendingChart, table: Table, collapsed: bool = False) -> None:
        """A chart always comes with its table (the text equivalent), drawn right after it."""
        self.blocks.append({"kind": "chart", "chart": pending, "table": table, "collapsed": collapsed,
                            "summary": f"Numbers behind the chart: {table.caption}", "note": ""})

    def posts(self, heading: str, posts: list[Post], empty: str) -> None:
        self.blocks.append({"kind": "posts", "heading": heading, "posts": posts, "empty": empty})

    def fingerprint(self) -> Any:
        return {"id": self.id, "title": self.title, "blocks": [_block_key(b) for b in self.blocks]}


def _block_key(block: dict[str, Any]) -> Any:
    out = {}
    for key, value in block.items():
        if isinstance(value, PendingChart):
            out[key] = value.fingerprint
        elif isinstance(value, Table):
            out[key] = [value.caption, value.headers, [[(c.text, c.href) for c in r] for r in value.rows], value.note]
        elif isinstance(value, list) and value and isinstance(value[0], Post):
            out[key] = [p.__dict__ for p in value]
        else:
            out[key] = value
    return out


def frame_fingerprint(frame: pd.DataFrame, *extra: Any) -> str:
    digest = hashlib.sha256(frame.to_csv(index=False).encode("utf-8"))
    digest.update(json.dumps(extra, default=str).encode("utf-8"))
    return digest.hexdigest()[:16]


def cells(*values: Any, num_from: int = 1) -> list[Cell]:
    return [v if isinstance(v, Cell) else Cell(clean_text(v), num=i >= num_from and _numeric(v))
            for i, v in enumerate(values)]


def _numeric(value: Any) -> bool:
    """Counts, shares and scores (right-aligned); not dates."""
    text = str(value)
    return bool(text) and (text[0].isdigit() or text == "–") and not DATE_LIKE.fullmatch(text)


# Labels --------------------------------------------------------------------------------------

class Labels:
    """Human names for framing keys and stances, from the configured codebook when it loads."""

    def __init__(self, settings: Any):
        self.framings: dict[str, str] = {}
        self.definitions: dict[str, str] = {}
        self.stances: list[str] = []
        self.topic = ""
        self.codebook: str | None = None
        try:
            from nlp.codebook import load_codebook

            book = load_codebook(settings.resolve(settings.analysis.codebook))
            self.framings = {f.key: f.label for f in book.framings}
            self.definitions = {f.key: " ".join(f.definition.split()) for f in book.framings}
            self.stances = list(book.stance_labels)
            self.topic = book.topic
            self.codebook = book.name
        except Exception as exc:  # reports work without a codebook
            log.info("codebook not loaded for report labels: %s", exc)

    def framing(self, key: str) -> str:
        if key == "none":
            return "no framing"
        return self.framings.get(key, key)

    def order(self, keys: list[str]) -> list[str]:
        known = [k for k in self.framings if k in keys]
        return known + sorted(k for k in keys if k not in known and k != "none") + (["none"] if "none" in keys else [])

    def stance_order(self, keys: list[str]) -> list[str]:
        known = [k for k in self.stances if k in keys]
        return known + sorted(k for k in keys if k not in known)


# Report context ------------------------------------------------------------------------------

@dataclass
class Scope:
    """What one report covers."""

    kind: str  # overall | period
    granularity: str  # unit of the timelines (the period's own unit for period reports)
    window: Window
    period_start: date | None = None  # period reports only

    @property
    def unit(self) -> str:
        return UNIT_WORD[self.granularity]

    @property
    def sub_unit(self) -> str:
        return self.granularity if self.kind == "overall" else SUB_UNIT[self.granularity]


def _platform_order(reader: Reader, scope: Scope) -> list[str]:
    rows = reader.records(
        f"SELECT p.platform, count(*) AS n FROM posts p WHERE {IN_WINDOW} GROUP BY 1 ORDER BY n DESC, 1",
        scope.window.params,
    )
    return [r["platform"] for r in rows]


def context_periods(reader: Reader, scope: Scope, view: str = "framing_timeline") -> list[date]:
    """Periods shown on timelines: up to 12 non-empty ones ending with the report's period
    (period reports), or every period of the corpus up to the last 120 (overall)."""
    if not reader.has(view):
        return []
    g = scope.granularity
    if scope.kind == "period":
        rows = reader.con.execute(
            f"SELECT DISTINCT period_start FROM {view} WHERE granularity = ? AND platform = 'all' "
            f"AND {SAME_CODEBOOK} AND period_start <= ? ORDER BY period_start DESC LIMIT ?",
            [g, reader.codebook, scope.period_start, CONTEXT_PERIODS],
        ).fetchall()
    else:
        rows = reader.con.execute(
            f"SELECT DISTINCT period_start FROM {view} WHERE granularity = ? AND platform = 'all' "
            f"AND {SAME_CODEBOOK} ORDER BY period_start DESC LIMIT 120",
            [g, reader.codebook],
        ).fetchall()
    return sorted(r[0] for r in rows)


# Summary -------------------------------------------------------------------------------------

def _about(reader: Reader, scope: Scope, framing: str, platform: str | None, window: Window) -> str:
    """'about <topic>' or 'about <entity> and <entity>' for the posts with a framing, or ''."""
    params = [framing, reader.codebook, *window.params]
    platform_sql = ""
    if platform:
        platform_sql = " AND p.platform = ?"
        params.append(platform)
    if reader.has("post_topics", "topics"):
        rows = reader.records(
            "SELECT t.label, count(DISTINCT pt.post_id) AS n FROM narrative_post_framings f "
            "JOIN posts p USING (post_id) JOIN post_topics pt ON pt.post_id = f.post_id "
            "JOIN topics t ON t.topic_id = pt.topic_id "
            f"WHERE f.framing = ? AND f.{SAME_CODEBOOK} AND {IN_WINDOW}{platform_sql} "
            "AND t.topic_id <> -1 AND t.label IS NOT NULL "
            "GROUP BY t.label ORDER BY n DESC, t.label LIMIT 1",
            params,
        )
        if rows and rows[0]["n"] >= 2:
            return f"about {one_line(rows[0]['label'], 80)}"
    if reader.has("post_entities"):
        rows = reader.records(
            "SELECT mode(e.text) AS text, count(DISTINCT e.post_id) AS n FROM narrative_post_framings f "
            "JOIN posts p USING (post_id) JOIN post_entities e ON e.post_id = f.post_id "
            f"WHERE f.framing = ? AND f.{SAME_CODEBOOK} AND {IN_WINDOW}{platform_sql} "
            "AND e.label NOT IN ('DATE', 'TIME', 'CARDINAL', 'ORDINAL', 'PERCENT', 'MONEY', 'QUANTITY') "
            "GROUP BY lower(e.text) ORDER BY n DESC, lower(e.text) LIMIT 2",
            params,
        )
        names = [one_line(r["text"], 40) for r in rows if r["n"] >= 2]
        if names:
            return f"about {join_words(names)}"
    return ""


def _where_mostly(reader: Reader, scope: Scope, row: dict[str, Any]) -> str:
    """', mostly in Mastodon threads about …' for a rise across all platforms."""
    per_platform = reader.records(
        f"SELECT platform, n_framing FROM framing_timeline WHERE granularity = ? AND period_start = ? "
        f"AND framing = ? AND {SAME_CODEBOOK} AND platform <> 'all' AND n_framing > 0 "
        "ORDER BY n_framing DESC, platform",
        [row["granularity"], row["period_start"], row["framing"], reader.codebook],
    )
    total = sum(r["n_framing"] for r in per_platform)
    window = Window(row["period_start"], period_end(row["period_start"], row["granularity"]))
    if per_platform and total and per_platform[0]["n_framing"] / total >= 0.5:
        top = per_platform[0]["platform"]
        about = _about(reader, scope, row["framing"], top, window)
        return f", mostly in {platform_name(top)} threads" + (f" {about}" if about else "")
    about = _about(reader, scope, row["framing"], None, window)
    return f", {about}" if about else ""


def shift_sentence(reader: Reader, scope: Scope, row: dict[str, Any], with_period: bool) -> str:
    g = row["granularity"]
    verb = "rose" if row["delta"] > 0 else "fell"
    phrase = comparison_phrase(row["period_start"], row["period_start_prev"], g)
    lead = f"In {period_name(row['period_start'], g)}, " if with_period else ""
    where = ""
    if row["platform"] != "all":
        lead += f"on {platform_name(row['platform'])}, "
    elif row["delta"] > 0:
        try:
            where = _where_mostly(reader, scope, row)
        except Exception as exc:  # the sentence stands without its detail
            log.info("no detail for shift sentence: %s", exc)
    if row["platform"] == "all":
        where += _platform_caveat(reader, row)
    # Starts lower-case when it starts with a framing key: keys are names, written as in the codebook.
    return (f"{upper_first(lead)}{clean_text(row['framing'])} {verb} from {pct(row['share_prev'])} to "
            f"{pct(row['share'])} of posts {phrase} ({p_text(row['p_value'])}){where}.")


def _platform_caveat(reader: Reader, row: dict[str, Any]) -> str:
    """' (note: … different platforms …)' when the two periods share no platform."""
    found = reader.records(
        f"SELECT period_start, list(DISTINCT platform ORDER BY platform) AS platforms FROM framing_timeline "
        f"WHERE granularity = ? AND period_start IN (?, ?) AND platform <> 'all' AND {SAME_CODEBOOK} "
        "GROUP BY period_start",
        [row["granularity"], row["period_start_prev"], row["period_start"], reader.codebook])
    sets = {r["period_start"]: r["platforms"] for r in found}
    before, after = sets.get(row["period_start_prev"], []), sets.get(row["period_start"], [])
    if before and after and not set(before) & set(after):
        return (f" (note: the posts of the two {row['granularity']}s come from different platforms, "
                f"{join_words([platform_name(p) for p in before])} before and "
                f"{join_words([platform_name(p) for p in after])} after)")
    return ""


def summary_section(reader: Reader, scope: Scope, labels: Labels) -> tuple[Section, int]:
    """The plain-language summary; also returns the number of significant shifts."""
    section = Section("summary", "Summary")
    if not reader.has("narrative_shifts", "framing_timeline"):
        section.p("Framing metrics are not available in this warehouse yet: run `framewatch init` "
                  "to create the narrative views.")
        return section, 0
    n_classified = reader.scalar(
        f"SELECT count(DISTINCT f.post_id) FROM narrative_post_framings f JOIN posts p USING (post_id) "
        f"WHERE f.{SAME_CODEBOOK} AND {IN_WINDOW}", [reader.codebook, *scope.window.params]) or 0
    n_posts = reader.scalar(f"SELECT count(*) FROM posts p WHERE {IN_WINDOW}", scope.window.params) or 0
    span = f"in this {scope.unit}" if scope.kind == "period" else "in the corpus"
    section.p(f"{plural(n_posts, 'post')} {span}, {number(n_classified)} of them classified by framing.")
    if n_classified == 0:
        section.p("No posts have been classified yet, so there are no framing shifts to report.")
        return section, 0

    g = scope.granularity
    if scope.kind == "period":
        where, params = f"granularity = ? AND period_start = ? AND {SAME_CODEBOOK}", [g, scope.period_start,
                                                                                      reader.codebook]
    else:
        where, params = f"granularity = ? AND {SAME_CODEBOOK}", [g, reader.codebook]
    shifts = reader.records(
        f"SELECT * FROM narrative_shifts WHERE {where} "
        "ORDER BY significant DESC, (platform = 'all') DESC, q_value, p_value, abs(delta) DESC", params)
    tested = [s for s in shifts if s["tested"]]
    significant = [s for s in shifts if s["significant"]]
    if significant:
        sentences = [shift_sentence(reader, scope, s, with_period=scope.kind == "overall")
                     for s in significant[:MAX_SUMMARY_SHIFTS]]
        section.ul(sentences)
        more = len(significant) - MAX_SUMMARY_SHIFTS
        if more > 0:
            section.p(f"{more} more significant shift{'s' if more > 1 else ''} in the table below.")
        section.p("Significant means a two-proportion z-test against the previous non-empty "
                  f"{g}, with the false discovery rate held at 5% (Benjamini–Hochberg) across framings "
                  "and platforms. p-values shown are before that correction; q-values in the table after it.")
    else:
        section.p(_nothing_significant(scope, shifts, tested))
    if scope.kind == "period":
        current = _current_sentence(reader, scope)
        if current:
            section.p(current)
    shown = significant or sorted(tested, key=lambda s: s["p_value"])[:10]
    if shown:
        rows = [cells(
            f"{clean_text(s['framing'])} · {platform_name(s['platform'])}",
            period_name(s["period_start"], g),
            pct(s["share_prev"]), pct(s["share"]), f"{s['delta'] * 100:+.0f} pts",
            p_text(s["p_value"]).removeprefix("p = ").removeprefix("p "),
            f"{s['q_value']:.3f}" if s["q_value"] is not None else "–",
            "yes" if s["significant"] else "no",
        ) for s in shown]
        caption = ("Significant framing shifts" if significant else "Smallest p-values (none significant)")
        section.table(Table(caption, ["framing · platform", g, "before", "after", "change", "p", "q (BH)",
                                      "significant"], rows), collapsed=not significant)
    if scope.kind == "overall":
        _overall_sentences(reader, scope, labels, section)
    return section, len(significant)


def _nothing_significant(scope: Scope, shifts: list[dict[str, Any]], tested: list[dict[str, Any]]) -> str:
    g = scope.granularity
    guard = ("a test needs at least 10 classified posts in both periods and at least 3 posts with the framing "
             "in one of them")
    if scope.kind == "overall":
        if tested:
            return (f"No framing's share changed significantly between consecutive {g}s with posts "
                    f"({plural(len(tested), 'comparison')} tested; false discovery rate 5%).")
        return f"No framing's share changed significantly: no pair of consecutive {g}s could be tested, because {guard}."
    if not shifts:
        return f"This is the first {g} with classified posts, so there is nothing to compare it with yet."
    previous = period_name(shifts[0]["period_start_prev"], g)
    adjacent = comparison_phrase(scope.period_start, shifts[0]["period_start_prev"], g)
    named = f"the {previous}" if g == "week" else previous
    against = f"the previous {g}, {named}," if adjacent.endswith(" on " + g) else \
        f"the last {g} with classified posts, {named},"
    if tested:
        return (f"No framing's share changed significantly compared with {against} "
                f"{plural(len(tested), 'comparison')} tested (false discovery rate 5%).")
    return f"No framing's share could be tested against {against} because {guard}."


def _current_sentence(reader: Reader, scope: Scope) -> str:
    """'Framings this week: media_hype 40% (20–64%), … of 15 classified posts.'"""
    rows = reader.records(
        f"SELECT framing, share, ci_low, ci_high, n_posts FROM framing_timeline WHERE granularity = ? "
        f"AND period_start = ? AND platform = 'all' AND {SAME_CODEBOOK} ORDER BY share DESC, framing",
        [scope.granularity, scope.period_start, reader.codebook])
    if not rows:
        return ""
    parts = [f"{clean_text(r['framing'])} {share_with_ci(r['share'], r['ci_low'], r['ci_high'])}" for r in rows]
    return (f"Framings this {scope.unit}: {join_words(parts)} of {plural(rows[0]['n_posts'], 'classified post')} "
            "(95% intervals in brackets).")


def _overall_sentences(reader: Reader, scope: Scope, labels: Labels, section: Section) -> None:
    totals = reader.records(
        "SELECT framing, sum(n_framing) AS k, sum(n_posts) AS n FROM framing_timeline "
        f"WHERE granularity = ? AND platform = 'all' AND {SAME_CODEBOOK} GROUP BY framing ORDER BY k DESC, framing",
        [scope.granularity, reader.codebook])
    if totals and totals[0]["n"]:
        parts = [f"{clean_text(t['framing'])} ({pct(t['k'] / t['n'])})" for t in totals]
        section.p(f"Across the whole corpus, the most common framing is {parts[0]}"
                  + (f", followed by {join_words(parts[1:])}." if len(parts) > 1 else "."))
    arc = _arc_sentence(reader, labels)
    if arc:
        section.p(arc)
    if reader.has("framing_lead_lag"):
        leads = reader.records(
            f"SELECT * FROM framing_lead_lag WHERE lag_periods > 0 AND correlation >= 0.5 AND {SAME_CODEBOOK} "
            "ORDER BY correlation DESC, framing LIMIT 4", [reader.codebook])
        for lead in leads:
            section.p(f"{clean_text(lead['framing'])} tended to rise on {platform_name(lead['leader_platform'])} "
                      f"{lead['lag_periods']} week{'s' if lead['lag_periods'] > 1 else ''} before "
                      f"{platform_name(lead['follower_platform'])} (weekly shares, r = {lead['correlation']:.2f} "
                      f"over {lead['n_periods']} weeks).")


def _arc_sentence(reader: Reader, labels: Labels) -> str:
    """How the corpus's first year compares with its last: the long arc a reader looks for first
    (descriptive only; the significance tests are per period above)."""
    rows = reader.records(
        f"""
        WITH classified AS (
            SELECT DISTINCT f.post_id, year(p.created_at AT TIME ZONE 'UTC') AS yr
            FROM narrative_post_framings f JOIN posts p USING (post_id)
            WHERE f.{SAME_CODEBOOK} AND p.created_at IS NOT NULL),
        years AS (SELECT min(yr) AS first_yr, max(yr) AS last_yr FROM classified),
        totals AS (SELECT yr, count(*) AS n FROM classified GROUP BY yr)
        SELECT f.framing, c.yr, t.n, count(DISTINCT f.post_id) AS k
        FROM narrative_post_framings f JOIN classified c USING (post_id) JOIN totals t USING (yr), years y
        WHERE f.{SAME_CODEBOOK} AND f.framing <> 'none' AND c.yr IN (y.first_yr, y.last_yr)
          AND y.first_yr < y.last_yr
        GROUP BY ALL ORDER BY f.framing, c.yr""", [reader.codebook, reader.codebook])
    if not rows:
        return ""
    years = sorted({r["yr"] for r in rows})
    if len(years) < 2:
        return ""
    first, last = years[0], years[-1]
    n = {r["yr"]: r["n"] for r in rows}
    share = {(r["framing"], r["yr"]): r["k"] / r["n"] for r in rows}
    framings = sorted({r["framing"] for r in rows},
                      key=lambda f: -abs(share.get((f, last), 0) - share.get((f, first), 0)))
    parts = [f"{clean_text(f)} {pct(share.get((f, first), 0))} → {pct(share.get((f, last), 0))}" for f in framings]
    caution = " The later year has few posts, so read it as indicative." if min(n[first], n[last]) < 10 else ""
    return (f"From {first} ({plural(n[first], 'classified post')}) to {last} "
            f"({plural(n[last], 'classified post')}): {join_words(parts)}.{caution}")


# Volume and threads --------------------------------------------------------------------------

def volume_section(reader: Reader, scope: Scope) -> Section:
    unit = scope.sub_unit
    section = Section("volume", f"Posts per {unit} and platform")
    frame = reader.df(
        f"SELECT {bucket_expr(unit)} AS bucket, p.platform, count(*) AS n FROM posts p "
        f"WHERE {IN_WINDOW} GROUP BY ALL ORDER BY bucket, p.platform", scope.window.params)
    if frame.empty:
        section.p("No dated posts in this window.")
        return section
    platforms = list(frame.groupby("platform")["n"].sum().sort_values(ascending=False).index)
    frame["platform_label"] = [platform_name(p) for p in frame["platform"]]
    order = [platform_name(p) for p in platforms]
    fmt = "%Y-%m-%dT%H:%M" if unit == "hour" else "%Y-%m-%d"
    frame["bucket"] = [b.strftime(fmt) for b in frame["bucket"]]
    if scope.kind == "period":  # every day (hour) of the period gets its slot, empty or not
        step = timedelta(hours=1) if unit == "hour" else timedelta(days=1)
        start = datetime(scope.window.start.year, scope.window.start.month, scope.window.start.day)
        slots = [(start + i * step).strftime(fmt)
                 for i in range(int((scope.window.end - scope.window.start).days * timedelta(days=1) / step))]
        missing = sorted(set(slots) - set(frame["bucket"]))
        if missing:
            frame = pd.concat([frame, pd.DataFrame({"bucket": missing, "platform": platforms[0], "n": 0,
                                                    "platform_label": platform_name(platforms[0])})],
                              ignore_index=True).sort_values(["bucket", "platform"], ignore_index=True)
    totals = frame.groupby("platform")["n"].sum()
    section.p(f"{number(frame['n'].sum())} posts: "
              + join_words([f"{number(totals[p])} on {platform_name(p)}" for p in platforms]) + ".")
    pivot = frame.pivot_table(index="bucket", columns="platform", values="n", aggfunc="sum", fill_value=0)
    rows = [cells(_bucket_label(b, unit), *[number(pivot.at[b, p]) for p in platforms],
                  number(pivot.loc[b].sum())) for b in pivot.index]
    table = Table(f"Posts per {unit} and platform (UTC)", [unit, *order, "total"], rows)
    section.chart(PendingChart(lambda: charts.volume_chart(frame[["bucket", "platform_label", "n"]], unit, order),
                               frame_fingerprint(frame, unit)), table, collapsed=len(rows) > 14)
    return section


def _bucket_label(bucket: str, unit: str) -> str:
    if unit == "hour":
        return bucket.replace("T", " ")
    if unit == "month":
        return bucket[:7]
    return bucket


def threads_section(reader: Reader, scope: Scope) -> Section:
    section = Section("threads", "Threads")
    if not reader.has("threads"):
        section.p("Thread information is not available.")
        return section
    stats = reader.records(
        f"""SELECT count(*) AS n, median(t.n_posts) AS median, max(t.n_posts) AS largest,
                   sum(CASE WHEN t.n_posts = 1 THEN 1 ELSE 0 END) AS singles
            FROM threads t WHERE t.thread_id IN (SELECT p.thread_id FROM posts p WHERE {IN_WINDOW})""",
        scope.window.params)[0]
    if not stats["n"]:
        section.p("No threads in this window.")
        return section
    singles = int(stats["singles"] or 0)
    single_text = {0: "none is a single post", 1: "1 is a single post"}.get(singles, f"{number(singles)} are single posts")
    if stats["n"] == 1:
        section.p(f"1 thread had posts in this window; it has {plural(stats['largest'], 'post')} in all.")
    else:
        section.p(f"{number(stats['n'])} threads had posts in this window; the median size is {stats['median']:g} "
                  f"posts and the largest has {number(stats['largest'])} ({single_text}).")
    rows = reader.records(
        f"""WITH active AS (
                SELECT p.thread_id, count(*) AS n_window FROM posts p WHERE {IN_WINDOW} GROUP BY p.thread_id
            )
            SELECT a.thread_id, a.n_window, t.n_posts, t.platform, t.first_at AT TIME ZONE 'UTC' AS first_at,
                   t.last_at AT TIME ZONE 'UTC' AS last_at, r.text AS root_text, r.url AS root_url
            FROM active a JOIN threads t USING (thread_id)
            LEFT JOIN posts r ON r.post_id = t.root_post_id
            ORDER BY a.n_window DESC, t.n_posts DESC, a.thread_id LIMIT 15""",
        scope.window.params)
    table_rows = []
    for r in rows:
        href = safe_url(r["root_url"])
        opening = one_line(r["root_text"], 110) or "(no text)"
        table_rows.append([Cell(opening, href), *cells(platform_name(r["platform"]), number(r["n_window"]),
                                                       number(r["n_posts"]), _day(r["first_at"]),
                                                       _day(r["last_at"]), num_from=1)])
    section.table(Table("Most active threads (by posts in this window)",
                        ["thread (opening post)", "platform", "posts in window", "posts in all", "first post",
                         "last post"], table_rows))
    return section


def period_label(value: Any, granularity: str) -> str:
    """'2018-09' for a month, the start date for a week or a day: sorts chronologically."""
    day = as_date(value)
    if day is None:
        return "–"
    return f"{day:%Y-%m}" if granularity == "month" else day.isoformat()


def _day(value: Any) -> str:
    return value.strftime("%Y-%m-%d") if value is not None and hasattr(value, "strftime") else "–"


def entities_section(reader: Reader, scope: Scope) -> Section:
    section = Section("entities", "Most frequent entities")
    if not reader.has("post_entities"):
        section.p("Named entities are not available.")
        return section
    rows = reader.records(
        f"""SELECT mode(e.text) AS text, e.label, count(DISTINCT e.post_id) AS n
            FROM post_entities e JOIN posts p USING (post_id) WHERE {IN_WINDOW}
            GROUP BY lower(e.text), e.label ORDER BY n DESC, lower(e.text), e.label LIMIT 15""",
        scope.window.params)
    if not rows:
        section.p("No named entities have been extracted for posts in this window yet.")
        return section
    if sum(r["n"] >= 2 for r in rows) >= 5:  # enough recurring ones: leave out the one-offs
        rows = [r for r in rows if r["n"] >= 2]
    section.table(Table("Entities mentioned in the most posts",
                        ["entity", "type", "posts"],
                        [cells(one_line(r["text"], 80), r["label"], number(r["n"]), num_from=2) for r in rows]))
    return section


# Framings and stances ------------------------------------------------------------------------

def _shares_section(reader: Reader, scope: Scope, labels: Labels, *, view: str, key: str, what: str,
                    section: Section) -> Section:
    if not reader.has(view):
        section.p(f"The {view} view is not available: run `framewatch init`.")
        return section
    periods = context_periods(reader, scope, view)
    if not periods:
        section.p(f"No posts have a {what} yet, so there is nothing to chart.")
        return section
    platforms = _platform_order(reader, scope)[:MAX_PLATFORMS]
    shown = ["all", *platforms] if len(platforms) > 1 else (platforms or ["all"])
    frame = reader.df(
        f"SELECT period_start, platform, {key}, n_posts, share, ci_low, ci_high FROM {view} "
        f"WHERE granularity = ? AND {SAME_CODEBOOK} AND period_start BETWEEN ? AND ? "
        f"ORDER BY period_start, platform, {key}",
        [scope.granularity, reader.codebook, periods[0], periods[-1]])
    frame = frame[frame["platform"].isin(shown)].copy()
    frame["period_start"] = [as_date(v) for v in frame["period_start"]]
    if frame.empty:
        section.p(f"No classified posts from these platforms in the charted {scope.unit}s.")
        return section
    keys = list(dict.fromkeys(frame[key]))
    keys = labels.order(keys) if key == "framing" else labels.stance_order(keys)
    frame["platform_label"] = [platform_name(p) for p in frame["platform"]]
    order = [platform_name(p) for p in shown]
    span = (f"the {len(periods)} {scope.unit}s up to this one" if scope.kind == "period"
            else f"every {scope.unit} with classified posts")
    section.p(f"Share of classified posts with each {what}, per {scope.unit} over {span}; bars are 95% "
              "Wilson intervals (wide bars mean few posts).")

    # This period (or the whole corpus) first, in words and numbers.
    current = frame[frame["period_start"] == periods[-1]] if scope.kind == "period" else None
    if current is not None and not current.empty:
        rows = []
        for platform in shown:
            part = current[current["platform"] == platform]
            if part.empty:
                continue
            by_key = {r[key]: r for r in part.to_dict("records")}
            rows.append(cells(platform_name(platform), number(part["n_posts"].iloc[0]),
                              *[share_with_ci(by_key[k]["share"], by_key[k]["ci_low"], by_key[k]["ci_high"])
                                if k in by_key else "–" for k in keys]))
        section.table(Table(f"{upper_first(what)} shares in {period_name(periods[-1], scope.granularity)} "
                            "(95% interval)", ["platform", "classified posts", *keys], rows))
    table_rows = []
    for (period, platform), part in frame.groupby(["period_start", "platform"], sort=True):
        by_key = {r[key]: r for r in part.to_dict("records")}
        table_rows.append(cells(f"{period_label(period, scope.granularity)} · {platform_name(platform)}",
                                number(part["n_posts"].iloc[0]),
                                *[share_with_ci(by_key[k]["share"], by_key[k]["ci_low"], by_key[k]["ci_high"])
                                  if k in by_key else "–" for k in keys]))
    chart_frame = frame[["period_start", "platform_label", key, "share", "ci_low", "ci_high", "n_posts"]].copy()
    chart_frame["period"] = [period_label(d, scope.granularity) for d in chart_frame["period_start"]]
    chart_frame = chart_frame.drop(columns=["period_start"])
    table = Table(f"{upper_first(what)} share per {scope.unit} and platform (95% interval)",
                  [f"{scope.unit} · platform", "classified posts", *keys], table_rows)
    section.chart(PendingChart(
        lambda: charts.share_chart(chart_frame, key, scope.granularity, order, keys, what),
        frame_fingerprint(chart_frame, key, order, keys)), table, collapsed=True)
    return section


def framing_section(reader: Reader, scope: Scope, labels: Labels) -> Section:
    section = Section("framings", "Framings over time")
    if labels.framings:
        section.p("Framings: " + "; ".join(f"{key} = {label}" for key, label in labels.framings.items())
                  + ". A post may carry several framings or none.")
        section.table(Table("Framing definitions from the codebook", ["framing", "definition"],
                            [cells(key, snippet(labels.definitions.get(key, ""), 600))
                             for key in labels.framings]), collapsed=True)
    _shares_section(reader, scope, labels, view="framing_timeline", key="framing", what="framing", section=section)
    if scope.kind == "overall" and reader.has("framing_lead_lag"):
        rows = reader.records(
            f"SELECT * FROM framing_lead_lag WHERE {SAME_CODEBOOK} ORDER BY framing, correlation DESC",
            [reader.codebook])
        if rows:
            section.p("Which platform moves first: for each framing and pair of platforms, the lag (0–4 weeks) "
                      "at which one platform's weekly share correlates best with the other's. Only weeks with "
                      "at least 5 classified posts count, and a pair needs 6 such weeks in common.")
            section.table(Table("Lead and lag between platforms (weekly shares)",
                                ["framing", "first", "then", "lag (weeks)", "correlation", "weeks compared"],
                                [cells(r["framing"], platform_name(r["leader_platform"]),
                                       platform_name(r["follower_platform"]), str(r["lag_periods"]),
                                       f"{r['correlation']:.2f}", number(r["n_periods"]), num_from=3)
                                 for r in rows]))
    return section


def stance_section(reader: Reader, scope: Scope, labels: Labels) -> Section:
    section = Section("stances", "Stance over time")
    return _shares_section(reader, scope, labels, view="stance_timeline", key="stance", what="stance",
                           section=section)


# Topics --------------------------------------------------------------------------------------

def topics_section(reader: Reader, scope: Scope) -> Section:
    section = Section("topics", "Topics")
    if not reader.has("topics", "topic_timeline") or not reader.scalar("SELECT count(*) FROM topics"):
        section.p("No topics yet: topics are modelled once enough posts have been analysed.")
        return section
    granularities = [r[0] for r in reader.con.execute(
        "SELECT DISTINCT granularity FROM topic_timeline").fetchall()]
    g = scope.granularity if scope.granularity in granularities else next(
        (x for x in ("month", "week", "day") if x in granularities), None)
    if g is None:
        section.p("The topic timeline is empty.")
        return section
    topic_labels = {r["topic_id"]: one_line(r["label"] if r["label"] is not None else f"topic {r['topic_id']}", 60)
                    for r in reader.records("SELECT topic_id, label FROM topics")}
    bounds: list[Any]
    if scope.kind == "period":
        bounds = [g, scope.period_start - timedelta(days=_days_back(g)), scope.window.end]
    else:
        bounds = [g, date(1, 1, 1), date(9999, 1, 1)]
    frame = reader.df(
        "SELECT CAST(period_start AS DATE) AS period_start, topic_id, sum(n_posts) AS n_posts FROM topic_timeline "
        "WHERE granularity = ? AND CAST(period_start AS DATE) >= ? AND CAST(period_start AS DATE) < ? "
        "GROUP BY ALL ORDER BY 1, 2", bounds)
    frame = frame[frame["topic_id"] != -1]
    if frame.empty:
        section.p("No topic activity in the charted periods.")
    else:
        top = list(frame.groupby("topic_id")["n_posts"].sum().sort_values(ascending=False).index[:8])
        frame = frame[frame["topic_id"].isin(top)].copy()
        frame["topic_label"] = [f"{t}: {topic_labels.get(t, '')}" for t in frame["topic_id"]]
        frame["period"] = [period_label(d, g) for d in frame["period_start"]]
        names = [f"{t}: {topic_labels.get(t, '')}" for t in top]
        pivot = frame.pivot_table(index="period", columns="topic_label", values="n_posts", aggfunc="sum",
                                  fill_value=0)
        rows = [cells(d, *[number(pivot.at[d, n]) if n in pivot.columns else "0" for n in names])
                for d in pivot.index]
        section.p(f"Posts per {g} in the {len(top)} largest topics.")
        section.chart(PendingChart(lambda: charts.topic_chart(frame[["period", "topic_label", "n_posts"]], g, names),
                                   frame_fingerprint(frame, g)),
                      Table(f"Posts per {g} and topic", [g, *names], rows), collapsed=True)
    # The topics of this window, with their trend.
    trends: dict[Any, str] = {}
    if scope.kind == "period" and reader.has("topic_trends"):
        trends = {r["topic_id"]: r["status"] for r in reader.records(
            "SELECT topic_id, status FROM topic_trends WHERE granularity = ? AND period_start = ?",
            [g, scope.period_start])}
    if reader.has("post_topics"):
        rows = reader.records(
            f"""SELECT pt.topic_id, count(DISTINCT pt.post_id) AS n FROM post_topics pt JOIN posts p USING (post_id)
                WHERE {IN_WINDOW} AND pt.topic_id <> -1 GROUP BY pt.topic_id ORDER BY n DESC, pt.topic_id LIMIT 12""",
            scope.window.params)
        if rows:
            keywords = {r["topic_id"]: r["keywords"] for r in reader.records("SELECT topic_id, keywords FROM topics")}
            table_rows = [cells(topic_labels.get(r["topic_id"], str(r["topic_id"])),
                                _keywords(keywords.get(r["topic_id"])), number(r["n"]), num_from=2)
                          + ([Cell(trends.get(r["topic_id"], "–"))] if scope.kind == "period" else [])
                          for r in rows]
            headers = ["topic", "keywords", "posts"] + ([f"trend vs previous {g}"] if scope.kind == "period" else [])
            section.table(Table("Topics of the posts in this window", headers, table_rows))
            emerging = [topic_labels.get(t, str(t)) for t, s in trends.items() if s == "emerging"]
            fading = [topic_labels.get(t, str(t)) for t, s in trends.items() if s == "fading"]
            if emerging or fading:
                section.p(" ".join(filter(None, [
                    f"Emerging: {join_words(emerging[:5])}." if emerging else "",
                    f"Fading: {join_words(fading[:5])}." if fading else ""])))
    return section


def _days_back(g: str) -> int:
    return {"day": CONTEXT_PERIODS, "week": 7 * CONTEXT_PERIODS, "month": 31 * CONTEXT_PERIODS}[g]


def _keywords(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return one_line(", ".join(clean_text(v) for v in value[:8]), 120)
    if hasattr(value, "tolist"):
        return _keywords(value.tolist())
    return one_line(value, 120)


# Replies -------------------------------------------------------------------------------------

def transitions_section(reader: Reader, scope: Scope, labels: Labels) -> Section:
    section = Section("transitions", "How replies answer each framing")
    if not reader.has("reply_framing_pairs"):
        section.p("Reply transitions are not available: run `framewatch init`.")
        return section
    frame = reader.df(
        f"""WITH pairs AS (
                SELECT f.* FROM reply_framing_pairs f JOIN posts p ON p.post_id = f.reply_post_id
                WHERE f.{SAME_CODEBOOK} AND {IN_WINDOW}),
            totals AS (SELECT parent_framing, count(DISTINCT reply_post_id) AS total FROM pairs GROUP BY 1)
            SELECT parent_framing, reply_framing, count(DISTINCT reply_post_id) AS n,
                   count(DISTINCT reply_post_id)::DOUBLE / any_value(total) AS share
            FROM pairs JOIN totals USING (parent_framing) GROUP BY 1, 2 ORDER BY 1, 2""",
        [reader.codebook, *scope.window.params])
    if frame.empty:
        section.p("No classified replies to classified posts in this window.")
        return section
    keys = labels.order(sorted(set(frame["parent_framing"]) | set(frame["reply_framing"])))
    section.p("For replies whose parent post is classified: given the parent's framing (rows), the share of "
              "its replies carrying each framing (columns); 'none' means no framing. A reply with two "
              "framings counts in both columns.")
    lookup = {(r["parent_framing"], r["reply_framing"]): r for r in frame.to_dict("records")}
    rows = []
    for parent in keys:
        if not any((parent, reply) in lookup for reply in keys):
            continue
        rows.append(cells(parent, *[f"{pct(lookup[(parent, reply)]['share'])} ({lookup[(parent, reply)]['n']})"
                                    if (parent, reply) in lookup else "0" for reply in keys]))
    table = Table("Reply framing by parent framing: share of replies (count)", ["parent \\ reply", *keys], rows)
    section.chart(PendingChart(lambda: charts.transition_chart(frame, keys), frame_fingerprint(frame, keys)), table)
    return section


# Exemplars -----------------------------------------------------------------------------------

def exemplars_section(reader: Reader, scope: Scope, labels: Labels, per_framing: int = 3) -> Section:
    section = Section("exemplars", "Example posts per framing")
    if not reader.has("narrative_post_framings"):
        section.p("Framings are not available.")
        return section
    rows = reader.records(
        f"""SELECT f.framing, f.score, p.post_id, p.platform, p.author_key, p.url, p.text, p.thread_id,
                   p.created_at AT TIME ZONE 'UTC' AS created
            FROM narrative_post_framings f JOIN posts p USING (post_id)
            WHERE f.framing <> 'none' AND f.{SAME_CODEBOOK} AND {IN_WINDOW}
            QUALIFY row_number() OVER (PARTITION BY f.framing
                                       ORDER BY f.score DESC NULLS LAST, p.created_at, p.post_id) <= ?
            ORDER BY f.framing, f.score DESC NULLS LAST, p.created_at, p.post_id""",
        [reader.codebook, *scope.window.params, per_framing])
    if not rows:
        section.p("No posts in this window carry a framing yet.")
        return section
    section.p("The posts the classifier is most confident about, as plain text. Authors are pseudonyms; "
              "links go to the original page.")
    by_framing: dict[str, list[Post]] = {}
    for r in rows:
        by_framing.setdefault(r["framing"], []).append(Post(
            framing=r["framing"], platform=platform_name(r["platform"]),
            author=clean_text(r["author_key"]) or "unknown author",
            when=r["created"].strftime("%Y-%m-%d %H:%M UTC") if r["created"] else "undated",
            text=snippet(re.sub(r"\n\s*\n+", "\n", clean_text(r["text"])), 450) or "(no text)",
            href=safe_url(r["url"]),
            score=f"{r['score']:.2f}" if r["score"] is not None else "", thread=clean_text(r["thread_id"])))
    for framing in labels.order(list(by_framing)):
        section.posts(f"{framing}: {labels.framing(framing)}", by_framing[framing], "No example.")
    return section


# Model card, run, stamp ----------------------------------------------------------------------

CARD_FIELDS = [  # (column, label) of the model_cards view, in display order
    ("model_version", "model version"), ("codebook", "codebook"), ("trained_at", "trained"),
    ("n_labels", "labelled set size"), ("n_analyst_labels", "of which analysts' labels"),
    ("n_codebook_examples", "of which codebook examples"), ("cv_groups", "cross-validation groups (threads)"),
    ("cv_framing_macro_f1", "grouped CV: framing macro F1"), ("cv_stance_macro_f1", "grouped CV: stance macro F1"),
    ("cv_stance_kappa", "grouped CV: stance Cohen's kappa"), ("encoder", "text encoder"),
    ("code_version", "code version"),
]
SKIP_CARD = {"card", "cv_framings", "is_current", "activated_at"}


def model_section(reader: Reader) -> Section:
    section = Section("model", "Model card")
    versions = []
    for view, what in (("post_framings", "framings"), ("post_stances", "stances")):
        if reader.has(view):
            versions += [(f"{what}: {clean_text(r['model_version']) or 'unversioned'}",
                          f"{number(r['n'])} posts") for r in reader.records(
                f"SELECT model_version, count(DISTINCT post_id) AS n FROM {view} WHERE {SAME_CODEBOOK} "
                "GROUP BY 1 ORDER BY 1", [reader.codebook])]
    cards: list[dict[str, Any]] = []
    if reader.has("model_cards"):
        cards = reader.records(f"SELECT * FROM model_cards WHERE {SAME_CODEBOOK}", [reader.codebook]) \
            if "codebook" in _columns(reader, "model_cards") else reader.records("SELECT * FROM model_cards")
        current = [c for c in cards if c.get("is_current")]
        cards = current or cards[-1:]
    if not cards and not versions:
        section.p("No model yet: no posts have been classified.")
        return section
    if not cards:
        section.p("No model card has been recorded for the classifier.")
    for card in cards:
        name = clean_text(card.get("model_version") or "model")
        known = [(label, card[column]) for column, label in CARD_FIELDS if column in card]
        other = [(column.replace("_", " "), value) for column, value in card.items()
                 if column not in SKIP_CARD and column not in dict(CARD_FIELDS)]
        section.table(Table(f"Model card: {name}", ["field", "value"],
                            [cells(label, _card_value(value), num_from=99) for label, value in known + other]))
        per = card.get("cv_framings")
        if per:
            rows = [cells(m.get("framing"), *[_card_value(m.get(k)) for k in
                                              ("threshold", "precision", "recall", "f1", "kappa")],
                          number(m.get("support"))) for m in per if isinstance(m, dict)]
            section.table(Table(f"Grouped cross-validation per framing ({name})",
                                ["framing", "threshold", "precision", "recall", "F1", "kappa", "support"], rows))
    if versions:
        section.table(Table("Model versions behind the classified posts", ["model", "posts"],
                            [cells(a, b) for a, b in versions]))
    return section


def _card_value(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, (dict, list, tuple)):
        return snippet(json.dumps(value, default=str, ensure_ascii=False), 1500)
    return snippet(value, 1500)


def _columns(reader: Reader, view: str) -> list[str]:
    return [d[0] for d in reader.con.execute(f"SELECT * FROM {view} LIMIT 0").description]


def run_section(reader: Reader, run_id: str) -> tuple[Section, list[dict[str, Any]]]:
    section = Section("run", "Collection in this run")
    if not reader.has("collection_log"):
        section.p("The collection log is not available.")
        return section, []
    query = ("SELECT source, status, fetched, new, updated, failed, error FROM collection_log WHERE run_id = ? "
             "ORDER BY source")
    rows = reader.records(query, [run_id])
    if not rows:
        latest = reader.scalar("SELECT run_id FROM collection_log ORDER BY started_at DESC, run_id DESC LIMIT 1")
        if latest is None:
            section.p(f"No source was collected in run {run_id}, and the warehouse records no collection yet.")
            return section, []
        section.p(f"No source was collected in run {run_id} (this report was built from data already stored); "
                  f"the latest collection was run {clean_text(latest)}.")
        run_id = clean_text(latest)
        rows = reader.records(query, [run_id])
    failed = [r for r in rows if r["status"] not in ("ok",)]
    if failed:
        section.p(f"{len(failed)} of {len(rows)} sources did not complete cleanly in run {run_id}: "
                  + join_words([f"{clean_text(r['source'])} ({clean_text(r['status'])})" for r in failed])
                  + ". Their posts may be missing or incomplete in this report.")
    else:
        section.p(f"The one source was collected successfully in run {run_id}." if len(rows) == 1
                  else f"All {len(rows)} sources were collected successfully in run {run_id}.")
    section.table(Table(f"Sources in run {run_id}", ["source", "status", "fetched", "new", "updated", "rejected",
                                                     "error"],
                        [cells(r["source"], r["status"], number(r["fetched"]), number(r["new"]),
                               number(r["updated"]), number(r["failed"]), one_line(r["error"], 300) or "–")
                         for r in rows]))
    return section, failed
