"""Reading the many ways sources write a time. Everything returned is timezone-aware (UTC
when the source gives no zone) or ``None`` when nothing usable is there."""

from __future__ import annotations

import email.utils
import re
import time
from datetime import datetime, timedelta, timezone

from dateutil import parser as _dateparser

_RELATIVE = re.compile(r"(\d+)\s+(second|minute|hour|day|week|month|year)s?\s+ago", re.I)
_FILLER = {"at", "on", "posted", "published", "said", "says", "wrote", "|", "-", "–", "—", "@", "by", "the",
           "of", "in", "am", "pm", "a.m.", "p.m.", "utc", "gmt", "edited", "updated", "comment"}
_RELATIVE_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 7 * 86400,
                     "month": 30 * 86400, "year": 365 * 86400}


def utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.astimezone(timezone.utc) if value.tzinfo else value.replace(tzinfo=timezone.utc)


def parse_iso(value: object, *, assume_utc: bool = True) -> datetime | None:
    """ISO 8601 (``2019-02-08T15:28:33``, ``...Z``, ``...+02:00``, fractions). Naive values
    are taken as UTC (``assume_utc``)."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        try:
            stamp = _dateparser.isoparse(value.strip())
        except (ValueError, OverflowError):
            return None
    if stamp.tzinfo is None and not assume_utc:
        return stamp
    return utc(stamp)


def parse_twitter_classic(value: object) -> datetime | None:
    """``Wed Oct 10 20:19:24 +0000 2018`` (account archives and API v1.1)."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value.strip(), "%a %b %d %H:%M:%S %z %Y").astimezone(timezone.utc)
    except ValueError:
        return parse_loose(value)


def parse_struct(value: time.struct_time | None) -> datetime | None:
    """feedparser's ``*_parsed`` values (UTC struct_time)."""
    if value is None:
        return None
    try:
        return datetime(*value[:6], tzinfo=timezone.utc)
    except (TypeError, ValueError):
        return None


def parse_http_date(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return utc(email.utils.parsedate_to_datetime(value))
    except (TypeError, ValueError, IndexError):
        return None


def parse_loose(value: object, *, reference: datetime | None = None) -> datetime | None:
    """Best effort for what themes print: ``July 11, 2011 at 12:25 pm``, ``Jun 20th at 2:41 am``
    (the year then comes from ``reference``, e.g. the article's date, moved a year on if the
    result would precede it), ``3 days ago`` (relative to ``reference`` or now). Without a zone
    the time is taken as UTC. ``None`` if nothing date-like is found."""
    if not isinstance(value, str):
        return None
    text = " ".join(value.split())
    if not text or not any(ch.isdigit() for ch in text):
        return None
    iso = parse_iso(text)
    if iso is not None:
        return iso
    relative = _RELATIVE.search(text)
    if relative:
        base = reference or datetime.now(timezone.utc)
        return utc(base) - timedelta(seconds=int(relative.group(1)) * _RELATIVE_SECONDS[relative.group(2).lower()])
    ref = utc(reference)
    default = datetime(ref.year if ref else datetime.now(timezone.utc).year, 1, 1)
    try:
        stamp, skipped = _dateparser.parse(text, default=default, fuzzy_with_tokens=True)
    except (ValueError, OverflowError, TypeError):
        return None
    # A skipped word that is not filler is probably a month name in another language
    # ("5. März 2019"): better no time than a wrong one.
    words = {w.lower().strip(".,:;") for chunk in skipped for w in chunk.split()}
    if any(w and w not in _FILLER for w in words):
        return None
    has_year = bool(re.search(r"\b(1[89]|2\d)\d\d\b|'\d\d\b", text))
    stamp = utc(stamp)
    if ref is not None and not has_year and stamp < ref - timedelta(days=1):
        stamp = stamp.replace(year=stamp.year + 1)
    return stamp
