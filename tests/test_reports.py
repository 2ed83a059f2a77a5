"""Narrative metrics (warehouse/views/30_narratives.sql) and the HTML reports built from them.

Every test builds a real DuckDB file in tmp_path through the real migrations: posts arrive
through the jsonl source and flows.collect.collect_one, framing and stance rows are added with
``add_framings``.
"""

from __future__ import annotations

import html
import json
import math
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from flows.collect import collect_one
from flows.report_step import build_report
from reports.build import MAX_REPORT_BYTES, build_reports
from reports.text import safe_url
from tests.support.settings import make_settings
from warehouse.db import connect, open_warehouse

RUN_ID = "20240101T000000Z-test01"
DEMO = Path(__file__).resolve().parents[1] / "config" / "demo" / "seed_posts.jsonl"
DEMO_LABELS = Path(__file__).resolve().parents[1] / "config" / "framings" / "labels" / "social_credit_demo.jsonl"
CODEBOOK_FILE = Path(__file__).resolve().parents[1] / "config" / "framings" / "social_credit.toml"
CODEBOOK = "social_credit"
FRAMINGS = ("west_same", "pr_stunt", "media_hype")
STANCES = ("affirms", "doubts", "neutral")
Z = 1.959963984540054


# Building warehouses -------------------------------------------------------------------------

def post(native_id: str, created_at: datetime, *, platform: str = "mastodon", site: str = "example.social",
         thread: str | None = None, parent: str | None = None, text: str = "a post", author: str = "someone",
         url: str | None = None) -> dict[str, Any]:
    return {"id": native_id, "thread_id": thread or native_id, "parent_id": parent, "author": author,
            "created_at": created_at.isoformat(), "text": text, "url": url, "platform": platform, "site": site,
            "lang": "en"}


def make_warehouse(folder: Path, rows: list[dict[str, Any]], *, extra_sources: list[dict[str, Any]] | None = None,
                   run_id: str = RUN_ID, **sections: Any):
    """Settings for a warehouse in ``folder`` holding ``rows`` (collected through the jsonl source)."""
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "posts.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    sources = [{"name": "posts", "type": "jsonl", "path": str(data)}, *(extra_sources or [])]
    sections.setdefault("report", {"out_dir": str(folder / "out"), "granularities": ["week", "month"],
                                   "title": "Test reports"})
    sections.setdefault("analysis", {"codebook": str(CODEBOOK_FILE)})
    settings = make_settings(folder, sources, **sections)
    for source in sources:
        collect_one(settings, source["name"], run_id)
    return settings


def add_topics(settings, assignments: dict[str, int], labels: dict[int, str]) -> None:
    """Topic assignments through the topic step's own storage (native id -> topic id)."""
    from warehouse import topics as store

    con = open_warehouse(settings.warehouse_path)
    try:
        store.replace_topics(con, [{"topic_id": t, "label": label, "keywords": label.split()[:3], "model_version": 1}
                                   for t, label in labels.items()])
        posts = con.execute("SELECT native_id, post_id, content_hash FROM post_store").fetchall()
        frame = pd.DataFrame([(post_id, chash, assignments[native], 0.9) for native, post_id, chash in posts
                              if native in assignments],
                             columns=["post_id", "content_hash", "topic_id", "probability"])
        store.write_assignments(con, frame, 1, RUN_ID)
    finally:
        con.close()


def add_framings(settings, labels: dict[str, tuple[list[str], str | None]], *,
                 model_version: str = "test-model-1") -> None:
    """Classifier output through the classifier's own storage: labels maps a native id to
    (framings present, stance); the model becomes the codebook's current one."""
    from warehouse import framings as store

    con = open_warehouse(settings.warehouse_path)
    try:
        ids = dict(con.execute("SELECT native_id, post_id FROM posts").fetchall())
        store.store_model_card(con, {
            "model_version": model_version, "codebook": CODEBOOK, "trained_at": "2024-01-01T00:00:00+00:00",
            "encoder": "test-encoder", "n_labels": 60, "n_analyst_labels": 45, "n_codebook_examples": 15,
            "thresholds": {f: 0.5 for f in FRAMINGS},
            "cv": {"n_groups": 5, "framings": {"macro_f1": 0.61, "per_framing": {
                f: {"precision": 0.7, "recall": 0.6, "f1": 0.65, "kappa": 0.5, "support": 12} for f in FRAMINGS}},
                   "stance": {"macro_f1": 0.55, "kappa": 0.4}},
        })
        framing_rows, stance_rows = [], []
        for native_id, (present, stance) in labels.items():
            post_id = ids[native_id]
            for framing in FRAMINGS:
                on = framing in present
                framing_rows.append((post_id, "test", framing, 0.9 if on else 0.1, on))
            chosen = stance or "neutral"
            for label in STANCES:
                stance_rows.append((post_id, "test", label, 0.8 if label == chosen else 0.1, label == chosen))
        store.store_predictions(
            con, CODEBOOK, model_version,
            pd.DataFrame(framing_rows, columns=["post_id", "input_hash", "framing", "score", "present"]),
            pd.DataFrame(stance_rows, columns=["post_id", "input_hash", "stance", "score", "chosen"]))
    finally:
        con.close()


def counts_posts(spec: list[tuple[str, datetime, int, dict[str, int]]]):
    """Posts and labels for (platform, when, n posts, {framing: k}) groups: the first k posts of
    the group carry the framing (groups of several framings overlap from the first post on)."""
    rows, labels = [], {}
    for g, (platform, when, n, ks) in enumerate(spec):
        for i in range(n):
            native = f"g{g}-{i}"
            rows.append(post(native, when + timedelta(minutes=i), platform=platform))
            labels[native] = ([f for f, k in ks.items() if i < k], "neutral")
    return rows, labels


def query(settings, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    con = connect(settings.warehouse_path, read_only=True)
    try:
        cursor = con.execute(sql, params or [])
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, r)) for r in cursor.fetchall()]
    finally:
        con.close()


def wilson(k: int, n: int) -> tuple[float, float]:
    p = k / n
    centre = (p + Z * Z / (2 * n)) / (1 + Z * Z / n)
    half = Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n)) / (1 + Z * Z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def two_proportion_p(k1: int, n1: int, k2: int, n2: int) -> float:
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    return math.erfc(abs(k2 / n2 - k1 / n1) / se / math.sqrt(2))


def benjamini_hochberg(ps: list[float]) -> list[float]:
    m = len(ps)
    order = sorted(range(m), key=lambda i: ps[i])
    q = [0.0] * m
    running = 1.0
    for rank in range(m, 0, -1):
        i = order[rank - 1]
        running = min(running, ps[i] * m / rank)
        q[i] = running
    return q


def demo_settings(folder: Path):
    """The demo corpus with its hand labels standing in for classifier output."""
    settings = make_warehouse(folder, [json.loads(line) for line in DEMO.read_text(encoding="utf-8").splitlines()
                                       if line.strip()])
    labels = {}
    for line in DEMO_LABELS.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            labels[row["id"]] = (row["framings"], row["stance"])
    con = connect(settings.warehouse_path, read_only=True)
    try:
        known = {r[0] for r in con.execute("SELECT native_id FROM posts").fetchall()}
    finally:
        con.close()
    add_framings(settings, {k: v for k, v in labels.items() if k in known})
    return settings


W1 = datetime(2024, 1, 1, 12, tzinfo=timezone.utc)  # a Monday
W2, W3, W5 = W1 + timedelta(weeks=1), W1 + timedelta(weeks=2), W1 + timedelta(weeks=4)


# Metric views --------------------------------------------------------------------------------

def test_views_return_no_rows_before_anything_is_classified(tmp_path):
    settings = make_warehouse(tmp_path, [post("a", W1), post("b", W2, parent="a", thread="a")])
    for view in ("framing_timeline", "stance_timeline", "narrative_shifts", "framing_transitions",
                 "framing_lead_lag", "topic_trends", "reply_framing_pairs"):
        assert query(settings, f"SELECT count(*) AS n FROM {view}")[0]["n"] == 0, view


def test_wilson_intervals_for_known_counts(tmp_path):
    rows, labels = counts_posts([("mastodon", W1, 10, {"west_same": 3, "pr_stunt": 10}),
                                 ("reddit", W1, 10, {})])
    settings = make_warehouse(tmp_path, rows)
    add_framings(settings, labels)
    got = {(r["platform"], r["framing"]): r for r in query(
        settings, "SELECT * FROM framing_timeline WHERE granularity = 'week'")}
    ws = got[("mastodon", "west_same")]
    assert (ws["n_posts"], ws["n_framing"], ws["share"]) == (10, 3, 0.3)
    assert ws["ci_low"] == pytest.approx(0.10779, abs=1e-5)  # textbook Wilson 95% for 3/10
    assert ws["ci_high"] == pytest.approx(0.60322, abs=1e-5)
    assert (got[("mastodon", "pr_stunt")]["ci_low"], got[("mastodon", "pr_stunt")]["ci_high"]) == \
        pytest.approx(wilson(10, 10))
    none = got[("reddit", "west_same")]  # a framing absent from a period still has its row
    assert (none["n_framing"], none["ci_low"]) == (0, 0.0)
    assert none["ci_high"] == pytest.approx(0.27753, abs=1e-5)
    both = got[("all", "west_same")]
    assert (both["n_posts"], both["n_framing"]) == (20, 3)
    assert (both["ci_low"], both["ci_high"]) == pytest.approx(wilson(3, 20))
    stances = query(settings, "SELECT * FROM stance_timeline WHERE granularity = 'month' AND platform = 'all'")
    assert [(s["stance"], s["n_posts"], s["n_stance"]) for s in stances] == [("neutral", 20, 20)]


def test_periods_are_utc_calendar_days_weeks_and_months(tmp_path):
    late = datetime(2024, 1, 31, 23, 30, tzinfo=timezone(timedelta(hours=-5)))  # 1 Feb 04:30 UTC
    settings = make_warehouse(tmp_path, [post("a", late)])
    add_framings(settings, {"a": (["media_hype"], "doubts")})
    got = {r["granularity"]: str(r["period_start"]) for r in query(
        settings, "SELECT DISTINCT granularity, period_start FROM framing_timeline")}
    assert got == {"day": "2024-02-01", "week": "2024-01-29", "month": "2024-02-01"}


def test_shift_test_and_benjamini_hochberg_match_reference(tmp_path):
    spec = [("mastodon", W1, 40, {"media_hype": 4, "west_same": 10}),
            ("mastodon", W2, 40, {"media_hype": 20, "west_same": 12}),
            ("reddit", W1, 30, {"media_hype": 6, "pr_stunt": 3}),
            ("reddit", W2, 30, {"media_hype": 7, "pr_stunt": 9})]
    rows, labels = counts_posts(spec)
    settings = make_warehouse(tmp_path, rows)
    add_framings(settings, labels)
    shifts = query(settings, "SELECT * FROM narrative_shifts WHERE granularity = 'week' ORDER BY platform, framing")
    assert {str(s["period_start"]) for s in shifts} == {"2024-01-08"}
    counts = {("mastodon", "media_hype"): (4, 40, 20, 40), ("mastodon", "west_same"): (10, 40, 12, 40),
              ("mastodon", "pr_stunt"): (0, 40, 0, 40), ("reddit", "media_hype"): (6, 30, 7, 30),
              ("reddit", "pr_stunt"): (3, 30, 9, 30), ("reddit", "west_same"): (0, 30, 0, 30),
              ("all", "media_hype"): (10, 70, 27, 70), ("all", "west_same"): (10, 70, 12, 70),
              ("all", "pr_stunt"): (3, 70, 9, 70)}
    by_key = {(s["platform"], s["framing"]): s for s in shifts}
    tested = {key: c for key, c in counts.items() if max(c[0], c[2]) >= 3}
    assert {k for k, s in by_key.items() if s["tested"]} == set(tested)
    reference_p = {key: two_proportion_p(*c) for key, c in tested.items()}
    reference_q = dict(zip(reference_p, benjamini_hochberg(list(reference_p.values()))))
    for key, p in reference_p.items():
        row = by_key[key]
        assert row["p_value"] == pytest.approx(p, abs=2e-7), key
        assert row["q_value"] == pytest.approx(reference_q[key], abs=1e-6), key
        assert row["significant"] == (reference_q[key] <= 0.05), key
        k1, n1, k2, n2 = counts[key]
        assert row["delta"] == pytest.approx(k2 / n2 - k1 / n1)
    assert by_key[("mastodon", "media_hype")]["significant"] and by_key[("all", "media_hype")]["significant"]
    assert not by_key[("mastodon", "west_same")]["significant"]
    untested = by_key[("mastodon", "pr_stunt")]  # 0 of 40 in both: never tested
    assert untested["p_value"] is None and untested["significant"] is False


def test_minimum_count_guard_never_flags_tiny_periods(tmp_path):
    spec = [("mastodon", W1, 6, {}), ("mastodon", W2, 6, {"media_hype": 6}),  # 0% -> 100%, but 6 posts
            ("reddit", W1, 30, {"pr_stunt": 0}), ("reddit", W2, 30, {"pr_stunt": 2})]  # too few framed
    rows, labels = counts_posts(spec)
    settings = make_warehouse(tmp_path, rows)
    add_framings(settings, labels)
    got = {(r["platform"], r["framing"]): r for r in query(
        settings, "SELECT * FROM narrative_shifts WHERE granularity = 'week'")}
    tiny = got[("mastodon", "media_hype")]
    assert (tiny["share_prev"], tiny["share"], tiny["tested"], tiny["significant"]) == (0.0, 1.0, False, False)
    assert tiny["p_value"] is None
    assert got[("reddit", "pr_stunt")]["tested"] is False
    assert not any(r["significant"] for (platform, _), r in got.items() if platform != "all")
    # across platforms media_hype goes from 0 of 36 to 6 of 36: enough posts to be tested
    assert got[("all", "media_hype")]["tested"]


def test_shift_compares_with_previous_non_empty_period(tmp_path):
    rows, labels = counts_posts([("mastodon", W1, 12, {"west_same": 2}), ("mastodon", W5, 12, {"west_same": 9})])
    settings = make_warehouse(tmp_path, rows)
    add_framings(settings, labels)
    row = query(settings, "SELECT * FROM narrative_shifts WHERE granularity = 'week' AND platform = 'mastodon' "
                          "AND framing = 'west_same'")
    assert len(row) == 1
    assert (str(row[0]["period_start_prev"]), str(row[0]["period_start"])) == ("2024-01-01", "2024-01-29")
    assert row[0]["tested"] and row[0]["p_value"] == pytest.approx(two_proportion_p(2, 12, 9, 12), abs=2e-7)


def test_transition_counts_include_none(tmp_path):
    rows = [post("p1", W1), post("r1", W1 + timedelta(hours=1), thread="p1", parent="p1"),
            post("r2", W1 + timedelta(hours=2), thread="p1", parent="p1"),
            post("r3", W1 + timedelta(hours=3), thread="p1", parent="p1"),
            post("p2", W1), post("r4", W1 + timedelta(hours=1), thread="p2", parent="p2"),
            post("r5", W1 + timedelta(hours=2), thread="p2", parent="r4"),
            post("r6", W1 + timedelta(hours=3), thread="p2", parent="p2")]  # r6 is never classified
    settings = make_warehouse(tmp_path, rows)
    add_framings(settings, {"p1": (["west_same"], "affirms"), "r1": (["pr_stunt"], None), "r2": ([], None),
                            "r3": (["west_same", "media_hype"], None), "p2": ([], None),
                            "r4": (["west_same"], None), "r5": (["west_same"], None)})
    got = {(r["parent_framing"], r["reply_framing"]): (r["n"], r["share"], r["n_parent_replies"])
           for r in query(settings, "SELECT * FROM framing_transitions")}
    assert got == {
        ("west_same", "pr_stunt"): (1, pytest.approx(1 / 4), 4),
        ("west_same", "none"): (1, pytest.approx(1 / 4), 4),
        ("west_same", "west_same"): (2, pytest.approx(2 / 4), 4),  # r3 and r5 (a reply to a reply)
        ("west_same", "media_hype"): (1, pytest.approx(1 / 4), 4),
        ("none", "west_same"): (1, 1.0, 1),
    }


def test_lead_lag_finds_the_platform_that_rises_first(tmp_path):
    pattern = [1, 1, 8, 9, 2, 1, 1, 7, 1, 1, 1, 1]  # west_same posts out of 10 per week
    spec = []
    for week, k in enumerate(pattern):
        spec.append(("reddit", W1 + timedelta(weeks=week), 10, {"west_same": k, "pr_stunt": 3}))
    for week, k in enumerate(pattern):
        spec.append(("mastodon", W1 + timedelta(weeks=week + 2), 10, {"west_same": k, "pr_stunt": 3}))
    rows, labels = counts_posts(spec)
    settings = make_warehouse(tmp_path, rows)
    add_framings(settings, labels)
    got = query(settings, "SELECT * FROM framing_lead_lag")
    assert [(r["framing"], r["leader_platform"], r["follower_platform"], r["lag_periods"]) for r in got] == \
        [("west_same", "reddit", "mastodon", 2)]
    assert got[0]["correlation"] == pytest.approx(1.0) and got[0]["n_periods"] == 12
    # The whole-corpus summary says it in words.
    from reports import sections
    from reports.data import Reader, Window

    con = connect(settings.warehouse_path, read_only=True)
    try:
        reader = Reader(con, CODEBOOK)
        scope = sections.Scope("overall", "week", Window(W1.date(), (W1 + timedelta(weeks=15)).date()))
        summary, _ = sections.summary_section(reader, scope, sections.Labels(settings))
    finally:
        con.close()
    assert ("west_same tended to rise on Reddit 2 weeks before Mastodon (weekly shares, r = 1.00 over 12 weeks)."
            in [block.get("text") for block in summary.blocks])
    # pr_stunt never varies: no correlation, no row.


def _topic_corpus() -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Posts per (month, topic): January 10/10/1, February 10/2/8/4, April 3 (March empty)."""
    counts = [("2024-01-15", 0, 10), ("2024-01-15", 1, 10), ("2024-01-15", 2, 1),
              ("2024-02-15", 0, 10), ("2024-02-15", 1, 2), ("2024-02-15", 2, 8), ("2024-02-15", 3, 4),
              ("2024-04-15", 0, 3)]
    rows, assignments = [], {}
    for day, topic, n in counts:
        for i in range(n):
            native = f"t{day}-{topic}-{i}"
            rows.append(post(native, datetime.fromisoformat(day).replace(tzinfo=timezone.utc) + timedelta(minutes=i),
                             text=f"topic {topic} post {i}"))
            assignments[native] = topic
    return rows, assignments


TOPIC_LABELS = {0: "credit scores banks", 1: "cameras police ring", 2: "propaganda video footage",
                3: "media coverage hype"}


def test_topic_trends_statuses(tmp_path):
    rows, assignments = _topic_corpus()
    settings = make_warehouse(tmp_path, rows)
    add_topics(settings, assignments, TOPIC_LABELS)
    got = {(str(r["period_start"]), r["topic_id"]): (r["n_posts"], r["prev_n"], r["status"])
           for r in query(settings, "SELECT * FROM topic_trends WHERE granularity = 'month'")}
    assert got[("2024-01-01", 0)] == (10, 0, "baseline")
    assert got[("2024-02-01", 0)] == (10, 10, "steady")
    assert got[("2024-02-01", 1)] == (2, 10, "fading")
    assert got[("2024-02-01", 2)] == (8, 1, "emerging")
    assert got[("2024-02-01", 3)] == (4, 0, "emerging")
    assert got[("2024-04-01", 2)] == (0, 8, "fading")  # compared with February: March had no posts
    assert got[("2024-04-01", 0)][2] == "emerging"  # 3 of 3 posts after 10 of 24
    assert got[("2024-04-01", 1)] == (0, 2, "steady")  # too few posts before to call it fading
    assert ("2024-04-01", 3) in got and ("2024-01-01", 3) not in got  # absent on both sides: no row


def test_report_shows_topics_and_their_trend(tmp_path):
    rows, assignments = _topic_corpus()
    settings = make_warehouse(tmp_path, rows, report={"out_dir": str(tmp_path / "out"), "granularities": ["month"],
                                                      "title": "Topics"})
    add_topics(settings, assignments, TOPIC_LABELS)
    build_report(settings, RUN_ID, tmp_path / "out")
    text = _visible_text((tmp_path / "out" / "month-2024-02" / "index.html").read_text(encoding="utf-8"))
    assert "Emerging: propaganda video footage and media coverage hype." in text
    assert "Fading: cameras police ring." in text
    assert "Posts per month in the 4 largest topics" in text
    overall = (tmp_path / "out" / "overall" / "index.html").read_text(encoding="utf-8")
    assert "No topics yet" not in overall and "credit scores banks" in overall


# Reports -------------------------------------------------------------------------------------

def _shift_corpus() -> tuple[list[dict[str, Any]], dict[str, tuple[list[str], str | None]]]:
    """Two weeks: media_hype goes from 4/40 to 22/40 on Mastodon (discussing Ring cameras)."""
    rows, labels = [], {}
    for week, (k, when) in enumerate([(4, W1), (22, W2)]):
        root = f"w{week}-root"
        for i in range(40):
            native = root if i == 0 else f"w{week}-{i}"
            rows.append(post(native, when + timedelta(minutes=i), thread=root, parent=None if i == 0 else root,
                             text=f"Post {i} about Amazon Ring and the police", author=f"user{i % 7}",
                             url=f"https://example.social/@user{i % 7}/{week}{i}"))
            labels[native] = (["media_hype"] if i < k else ["west_same"], "doubts" if i < k else "affirms")
    return rows, labels


def test_report_states_significant_shifts_in_words(tmp_path):
    rows, labels = _shift_corpus()
    settings = make_warehouse(tmp_path, rows)
    add_framings(settings, labels)
    out = tmp_path / "out"
    result = build_report(settings, RUN_ID, out)
    week = (out / "week-2024-W02" / "index.html").read_text(encoding="utf-8")
    text = _visible_text(week)
    assert "media_hype rose from 10% to 55% of posts week on week (p < 0.001), mostly in Mastodon threads" in text
    assert "west_same fell from 90% to 45%" in text
    first = _visible_text((out / "week-2024-W01" / "index.html").read_text(encoding="utf-8"))
    assert "This is the first week with classified posts, so there is nothing to compare it with yet." in first
    assert "Framings this week: media_hype 55% (40%–69%), west_same 45% (31%–60%) and pr_stunt 0% (0%–9%) of 40 classified posts" in text
    assert result["index_path"] == str(out / "index.html")
    manifest = json.loads((out / "week-2024-W02" / "report.json").read_text())
    assert manifest["n_significant"] >= 2 and manifest["n_posts"] == 40


def test_report_end_to_end_demo_corpus(tmp_path):
    feedparser = pytest.importorskip("feedparser")
    settings = demo_settings(tmp_path / "wh")
    out = tmp_path / "site"
    con = connect(settings.warehouse_path, read_only=True)
    try:
        result = build_reports(con, settings, RUN_ID, out)
    finally:
        con.close()
    slugs = {p.parent.name for p in result.report_paths}
    assert {"overall", "month-2018-04", "month-2018-09", "month-2018-12", "month-2019-02", "month-2022-12"} <= slugs
    assert sum(s.startswith("week-") for s in slugs) == 5  # one per week holding posts, up to 8
    for path in result.report_paths:
        html = path.read_text(encoding="utf-8")
        assert "default-src 'none'; img-src data:; style-src 'unsafe-inline'" in html
        assert '<html lang="en">' in html and "<script" not in html.lower()
        assert sum(f.stat().st_size for f in path.parent.rglob("*") if f.is_file()) <= MAX_REPORT_BYTES
        _check_links(html)
        _check_heading_order(html)
    overall = (out / "overall" / "index.html").read_text(encoding="utf-8")
    text = _visible_text(overall)
    for phrase in ("Summary", "Posts per month and platform", "Framings over time", "Stance over time",
                   "Topics", "How replies answer each framing", "Threads", "Example posts per framing",
                   "Model card", "Collection in this run", "Reproducibility", "config hash",
                   settings.config_hash, RUN_ID, "duckdb "):
        assert phrase in text, phrase
    assert "No topics yet" in text  # topics not modelled in this warehouse
    assert overall.count("data:image/svg+xml;base64,") >= 4
    assert "<caption>" in overall and 'scope="col"' in overall and 'scope="row"' in overall
    # index: newest first, latest on top
    index = (out / "index.html").read_text(encoding="utf-8")
    links = re.findall(r'href="([^"]+)/index.html"', index)
    assert links[0] == "week-2022-W48" or links[0].startswith("week-2022"), links[:3]
    assert links.index("month-2022-12") < links.index("month-2019-02") < links.index("month-2018-04")
    for link in set(links):
        assert (out / link / "index.html").is_file()
    # feed
    feed = feedparser.parse((out / "feed.xml").read_bytes())
    assert not feed.bozo, feed.get("bozo_exception")
    assert feed.feed.title == settings.report.title
    assert len(feed.entries) == len(slugs)
    assert all(e.id.startswith("urn:uuid:") and e.link.endswith("/index.html") for e in feed.entries)


def test_sections_say_so_when_there_is_no_data(tmp_path):
    settings = make_warehouse(tmp_path, [post("a", W1), post("b", W1 + timedelta(hours=2), thread="a", parent="a")])
    result = build_report(settings, "another-run", tmp_path / "out")
    text = _visible_text((tmp_path / "out" / "overall" / "index.html").read_text(encoding="utf-8"))
    assert "No posts have been classified yet" in text
    assert "No topics yet" in text and "No model yet" in text
    assert "No classified replies" in text
    assert f"No source was collected in run another-run (this report was built from data already stored); " \
           f"the latest collection was run {RUN_ID}." in text
    assert len(result["report_paths"]) == 3  # overall, the week and the month


def test_empty_warehouse_still_gets_an_index_and_feed(tmp_path):
    feedparser = pytest.importorskip("feedparser")
    settings = make_warehouse(tmp_path, [])
    result = build_report(settings, RUN_ID, tmp_path / "out")
    assert [Path(p).parent.name for p in result["report_paths"]] == ["overall"]
    assert "No dated posts" in _visible_text(Path(result["report_paths"][0]).read_text(encoding="utf-8"))
    assert not feedparser.parse((tmp_path / "out" / "feed.xml").read_bytes()).bozo


def test_failed_sources_of_the_run_are_listed(tmp_path):
    rows, labels = _shift_corpus()
    settings = make_warehouse(tmp_path, rows, extra_sources=[
        {"name": "gone", "type": "jsonl", "path": str(tmp_path / "missing.jsonl")}])
    add_framings(settings, labels)
    build_report(settings, RUN_ID, tmp_path / "out")
    text = _visible_text((tmp_path / "out" / "week-2024-W02" / "index.html").read_text(encoding="utf-8"))
    assert f"1 of 2 sources did not complete cleanly in run {RUN_ID}: gone (failed)" in text
    manifest = json.loads((tmp_path / "out" / "week-2024-W02" / "report.json").read_text())
    assert manifest["failed_sources"] == ["gone"]


def test_model_card_is_shown(tmp_path):
    rows, labels = _shift_corpus()
    settings = make_warehouse(tmp_path, rows)
    add_framings(settings, labels, model_version="old-model")
    add_framings(settings, labels, model_version="logreg-2024-01")  # the current one
    build_report(settings, RUN_ID, tmp_path / "out")
    text = _visible_text((tmp_path / "out" / "overall" / "index.html").read_text(encoding="utf-8"))
    assert "Model card: logreg-2024-01" in text and "old-model" not in text
    for phrase in ("labelled set size 60", "of which analysts' labels 45", "cross-validation groups (threads) 5",
                   "grouped CV: framing macro F1 0.610", "grouped CV: stance Cohen's kappa 0.400",
                   "Grouped cross-validation per framing", "framings: logreg-2024-01 80 posts"):
        assert phrase in text, phrase


def test_unchanged_reports_are_not_rebuilt(tmp_path):
    rows, labels = _shift_corpus()
    settings = make_warehouse(tmp_path, rows)
    add_framings(settings, labels)
    first = build_report(settings, RUN_ID, tmp_path / "out")
    old = tmp_path / "out" / "week-2024-W01" / "index.html"
    before = old.stat().st_mtime_ns
    second = build_report(settings, "second-run", tmp_path / "out")
    assert set(first["built"]) == {"overall", "month-2024-01", "week-2024-W01", "week-2024-W02"}
    assert second["unchanged"] == ["week-2024-W01"]  # latest periods and overall are always rebuilt
    assert old.stat().st_mtime_ns == before
    assert "second-run" in (tmp_path / "out" / "week-2024-W02" / "index.html").read_text(encoding="utf-8")


def test_oversized_report_leaves_out_chart_tables(tmp_path, monkeypatch):
    import reports.build

    rows, labels = _shift_corpus()
    settings = make_warehouse(tmp_path, rows, report={"out_dir": str(tmp_path / "out"), "granularities": ["week"],
                                                      "title": "Small"})
    add_framings(settings, labels)
    monkeypatch.setattr(reports.build, "MAX_REPORT_BYTES", 40_000)
    build_report(settings, RUN_ID, tmp_path / "out")
    html = (tmp_path / "out" / "overall" / "index.html").read_text(encoding="utf-8")
    assert "left out to keep the report small" in html
    assert "Numbers behind the chart" not in html and "data:image/svg+xml" in html


# What the posts say once stored as plain text. The jsonl source treats text as HTML, so each is
# sent entity-escaped and arrives as literal markup (raw markup would simply be stripped).
HOSTILE = [
    "<script>alert('xss')</script> social credit is coming",
    "<img src=x onerror=alert(1)> look at this",
    '<a href="javascript:alert(2)">click</a> and </td></tr></table></div><h1>broken',
    "Totally" + "A" * 3000 + " long word",
    "<svg onload=alert(3)><style>body{display:none}</style> <!-- unclosed",
    '"><iframe src="https://evil.example/"></iframe>&amp;&lt; <b>bold',
]


def hostile_settings(folder: Path):
    """Posts carrying markup, script URLs and huge words, classified so they reach every section."""
    rows = []
    urls = ["javascript:alert(document.domain)", " JavaScript:alert(1)", "data:text/html,<script>alert(1)</script>",
            "java\nscript:alert(1)", "https://example.social/ok?a=1&b=<2>", "vbscript:msgbox(1)"]
    for i in range(24):
        rows.append(post(f"h{i}", W1 + timedelta(hours=i), thread="h0", parent=None if i == 0 else "h0",
                         text=html.escape(HOSTILE[i % len(HOSTILE)] + f" #{i}"), author="<b>mallory</b>",
                         url=urls[i % len(urls)],
                         platform="mastodon" if i % 2 else "<script>alert('platform')</script>"))
    settings = make_warehouse(folder, rows, report={"out_dir": str(folder / "out"), "granularities": ["week"],
                                                    "title": "<script>alert('title')</script> reports"})
    add_framings(settings, {f"h{i}": ([FRAMINGS[i % 3]], "doubts") for i in range(24)})
    con = open_warehouse(settings.warehouse_path)
    try:
        con.execute("INSERT INTO post_entity_store SELECT post_id, '<script>alert(4)</script>', 'ORG', 0, 5 "
                    "FROM posts")
    finally:
        con.close()
    return settings


def test_hostile_content_is_escaped_and_unlinked(tmp_path):
    settings = hostile_settings(tmp_path)
    result = build_report(settings, RUN_ID, tmp_path / "out")
    for path in [*result["report_paths"], result["index_path"]]:
        html = Path(path).read_text(encoding="utf-8")
        lowered = html.lower()
        assert "<script" not in lowered and "<iframe" not in lowered and "<svg" not in lowered
        assert "onerror=" not in lowered.replace("onerror=alert(1)&gt;", "")  # only as escaped text
        assert "javascript:" not in re.sub(r">[^<]*<", "><", lowered)  # never inside a tag
        _check_links(html)
    html = Path(result["report_paths"][0]).read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(&#39;xss&#39;)&lt;/script&gt;" in html
    assert 'href="https://example.social/ok?a=1&amp;b=%3C2%3E"' in html or \
        'href="https://example.social/ok?a=1&amp;b=&lt;2&gt;"' in html
    feed = (tmp_path / "out" / "feed.xml").read_text(encoding="utf-8")
    assert "<script" not in feed


def test_safe_url_allows_only_http_and_https():
    assert safe_url("https://example.org/a?b=c") == "https://example.org/a?b=c"
    assert safe_url("HTTP://Example.org") == "http://Example.org"
    for bad in ("javascript:alert(1)", " javascript:alert(1)", "java\tscript:alert(1)", "data:text/html,x",
                "//example.org/x", "mailto:a@b.c", "https:///nohost", "", None, "file:///etc/passwd"):
        assert safe_url(bad) is None, bad


# Helpers for checking HTML -------------------------------------------------------------------

def _visible_text(page: str) -> str:
    body = re.sub(r"<style.*?</style>", " ", page, flags=re.S)
    body = re.sub(r"<img[^>]*>", " ", body)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


def _check_links(page: str) -> None:
    for tag in re.findall(r"<a\s[^>]*>", page):
        href = re.search(r'href="([^"]*)"', tag).group(1)
        if href.startswith(("http://", "https://")):
            assert 'rel="noopener noreferrer nofollow"' in tag, tag
        else:
            assert href.startswith("#") or re.fullmatch(r"(\.\./)?[\w./-]+", href), tag
    for src in re.findall(r'<img[^>]*src="([^"]*)"', page):
        assert src.startswith("data:image/svg+xml;base64,"), src[:60]


def _check_heading_order(page: str) -> None:
    levels = [int(h) for h in re.findall(r"<h([1-6])[\s>]", page)]
    assert levels.count(1) == 1 and levels[0] == 1
    for before, after in zip(levels, levels[1:]):
        assert after <= before + 1, levels
