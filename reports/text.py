"""Small text helpers for reports: safe links, clean snippets, numbers and dates in words.

Nothing here produces markup: templates escape everything (autoescape), so these functions
return plain strings and decide only *what* is shown (e.g. a link or no link).
"""

from __future__ import annotations

import math
import re
import unicodedata
from datetime import date, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

PLATFORM_NAMES = {
    "mastodon": "Mastodon",
    "reddit": "Reddit",
    "hackernews": "Hacker News",
    "hn": "Hacker News",
    "discourse": "Discourse",
    "lemmy": "Lemmy",
    "bluesky": "Bluesky",
    "blog": "blog",
    "wordpress": "WordPress",
    "rss": "RSS",
    "import": "imported",
    "all": "all platforms",
}

# C0/C1 control characters except tab, newline and carriage return; also lone surrogates.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def clean_text(value: object) -> str:
    """Text safe for HTML and XML 1.0 (control characters removed); '' for None."""
    if value is None:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return ""
    return _CONTROL.sub("", str(value))


def snippet(value: object, limit: int = 600) -> str:
    """Clean text cut at ``limit`` characters (on a word boundary when one is near)."""
    text = clean_text(value).strip()
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    if space > limit * 0.8:
        cut = cut[:space]
    return cut.rstrip() + "…"


def one_line(value: object, limit: int = 140) -> str:
    return snippet(" ".join(clean_text(value).split()), limit)


def safe_url(value: object) -> str | None:
    """An http(s) URL with a host, normalised; None for anything else (javascript:, data:, …)."""
    text = clean_text(value).strip()
    if not text or len(text) > 2048:
        return None
    try:
        parts = urlsplit(text)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    if any(ch.isspace() for ch in parts.netloc) or "\\" in parts.netloc:
        return None
    return urlunsplit((parts.scheme.lower(), parts.netloc, parts.path, parts.query, parts.fragment))


def platform_name(platform: object) -> str:
    key = clean_text(platform)
    return PLATFORM_NAMES.get(key.lower(), key) if key else "unknown platform"


def pct(value: float | None, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value * 100:.{digits}f}%"


def share_with_ci(share: float, low: float, high: float) -> str:
    return f"{pct(share)} ({pct(low)}–{pct(high)})"


def p_text(p: float | None) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "not tested"
    if p < 0.001:
        return "p < 0.001"
    if p < 0.01:
        return f"p = {p:.3f}"
    return f"p = {p:.2f}"


def number(n: object) -> str:
    try:
        return f"{int(n):,}"
    except (TypeError, ValueError):
        return "–"


def as_date(value: object) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if hasattr(value, "to_pydatetime"):
        return value.to_pydatetime().date()
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def period_end(start: date, granularity: str) -> date:
    """The first day after the period that starts on ``start``."""
    if granularity == "day":
        return start + timedelta(days=1)
    if granularity == "week":
        return start + timedelta(days=7)
    if granularity == "month":
        return date(start.year + (start.month == 12), start.month % 12 + 1, 1)
    raise ValueError(f"unknown granularity {granularity!r}")


def period_name(start: date, granularity: str) -> str:
    """'March 2019', 'week of 11 Feb 2019 (2019-W07)', '15 Feb 2019'."""
    if granularity == "month":
        return start.strftime("%B %Y")
    if granularity == "week":
        iso = start.isocalendar()
        return f"week of {start.day} {start.strftime('%b %Y')} ({iso.year}-W{iso.week:02d})"
    return f"{start.day} {start.strftime('%b %Y')}"


def period_slug(start: date, granularity: str) -> str:
    if granularity == "month":
        return f"month-{start:%Y-%m}"
    if granularity == "week":
        iso = start.isocalendar()
        return f"week-{iso.year}-W{iso.week:02d}"
    return f"day-{start:%Y-%m-%d}"


def comparison_phrase(start: date, prev: date | None, granularity: str) -> str:
    """'week on week' when the previous period is adjacent, else 'compared with <period>'."""
    if prev is None:
        return ""
    if period_end(prev, granularity) == start:
        return {"day": "day on day", "week": "week on week", "month": "month on month"}[granularity]
    return f"compared with the {period_name(prev, granularity)}" if granularity == "week" else \
        f"compared with {period_name(prev, granularity)}"


def join_words(items: list[str]) -> str:
    items = [i for i in items if i]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def ascii_slug(value: str) -> str:
    text = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def plural(n: object, word: str, words: str | None = None) -> str:
    """'1 post', '2 posts', '1,234 posts'."""
    try:
        one = int(n) == 1
    except (TypeError, ValueError):
        one = False
    return f"{number(n)} {word if one else (words or word + 's')}"
