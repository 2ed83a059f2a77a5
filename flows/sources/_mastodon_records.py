"""Mastodon statuses as records: consent rules, careful plain text, raw payloads.

Everything here is pure (no network), so the rules can be read and tested on their own.
"""

from __future__ import annotations

import copy
import json
import re
from datetime import datetime
from functools import lru_cache
from typing import Any

from selectolax.lexbor import LexborHTMLParser

from flows.sources.base import PostRecord, SkipRecord
from nlp.text import html_to_text

PLATFORM = "mastodon"

# "#nobot", "#NoBots", "#noindex" as a word in a profile (after HTML is turned into text).
_OPT_OUT_TAG = re.compile(r"(?<![\w#])#(nobots?|noindex)(?![\w])", re.IGNORECASE)
PUBLIC_VISIBILITIES = {"public", "unlisted"}


def consent_refusal(account: dict[str, Any] | None) -> str | None:
    """Why an account's posts must not be stored, or None when nothing says so.

    Mastodon exposes the choice as ``indexable`` (opt-in to being found by search, false
    for anyone who did not opt in) and ``noindex`` (asks search engines to stay away; only
    set for the server's own accounts). The ``source`` block of one's own account repeats
    them. Many people also state it in their bio or profile fields with ``#nobot`` or
    ``#noindex``.
    """
    if not isinstance(account, dict):
        return "no account information"
    if account.get("indexable") is False:
        return "account is not indexable (indexable: false)"
    if account.get("noindex") is True:
        return "account asks not to be indexed (noindex: true)"
    source = account.get("source") if isinstance(account.get("source"), dict) else {}
    if source.get("indexable") is False:
        return "account is not indexable (source.indexable: false)"
    if source.get("noindex") is True:
        return "account asks not to be indexed (source.noindex: true)"
    other = account.get("other_settings") if isinstance(account.get("other_settings"), dict) else {}
    if other.get("noindex") is True:
        return "account asks not to be indexed (other_settings.noindex: true)"
    profile = [account.get("note") or "", source.get("note") or ""]
    for item in account.get("fields") or []:
        if isinstance(item, dict):
            profile += [str(item.get("name") or ""), str(item.get("value") or "")]
    return _profile_opt_out(tuple(str(part) for part in profile if part))


@lru_cache(maxsize=4096)
def _profile_opt_out(parts: tuple[str, ...]) -> str | None:
    """#nobot / #noindex in a profile; cached, as the same authors come back page after page."""
    for part in parts:
        found = _OPT_OUT_TAG.search(html_to_text(part) if "<" in part or "&" in part else part)
        if found:
            return f"profile says #{found.group(1).lower()}"
    return None


def status_refusal(status: dict[str, Any]) -> str | None:
    """Why this status must not be stored: its author's choice or its visibility."""
    visibility = status.get("visibility")
    if visibility and visibility not in PUBLIC_VISIBILITIES:
        return f"not public (visibility: {visibility})"
    return consent_refusal(status.get("account"))


def plain_text(status: dict[str, Any]) -> str:
    """The words a reader sees: mentions and hashtags as text, hidden URL parts dropped,
    shortened URLs ending in "…", paragraphs and ``<br>`` as line breaks, entities decoded.

    When the status carries a quote, the ``quote-inline`` "RE: <link>" fallback for old
    clients is dropped as well; readers see the quoted post instead of it.
    """
    content = status.get("content") or ""
    if status.get("quote") and "quote-inline" in content:
        tree = LexborHTMLParser(content)
        for node in tree.css(".quote-inline"):
            node.decompose()
        body = tree.body
        content = body.inner_html if body is not None else content
    return html_to_text(content)


def parse_time(value: Any) -> datetime | None:
    if not value or not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def author_of(account: dict[str, Any], site: str) -> str | None:
    """``user@host`` for everyone: local accounts get the fetching server's host."""
    acct = account.get("acct") or account.get("username")
    if not acct:
        return None
    acct = str(acct)
    if "@" not in acct:
        acct = f"{acct}@{site.split(':')[0]}"
    return acct


def raw_payload(status: dict[str, Any]) -> dict[str, Any]:
    """The status as received, except a quoted post whose author has not consented."""
    quote = status.get("quote")
    if isinstance(quote, dict) and isinstance(quote.get("quoted_status"), dict):
        quoted = quote["quoted_status"]
        why = status_refusal(quoted)
        if why:
            status = copy.copy(status)
            status["quote"] = {**quote, "quoted_status": {"id": quoted.get("id"), "omitted": why}}
    return status


def check_status(status: Any, where: str) -> None:
    """A status must at least be an object with an id; anything else is a broken payload."""
    if not isinstance(status, dict) or not status.get("id"):
        shown = json.dumps(status)[:60] if not isinstance(status, dict) else "an object without id"
        raise ValueError(f"{where}: expected a status object, got {shown}")


def to_record(status: dict[str, Any], site: str, *, thread_root: str | None = None,
              ) -> PostRecord | SkipRecord | None:
    """One status as a PostRecord, a SkipRecord (consent), or None for a boost."""
    if status.get("reblog"):
        return None
    native_id = str(status["id"])
    why = status_refusal(status)
    if why:
        return SkipRecord(platform=PLATFORM, site=site, native_id=native_id, action="skipped_consent",
                          reason=why)
    account = status.get("account") if isinstance(status.get("account"), dict) else {}
    parent = status.get("in_reply_to_id")
    return PostRecord(
        platform=PLATFORM,
        site=site,
        native_id=native_id,
        content=status.get("content") or "",
        text=plain_text(status),
        created_at=parse_time(status.get("created_at")),
        edited_at=parse_time(status.get("edited_at")),
        author=author_of(account, site),
        thread_native_id=thread_root,
        parent_native_id=str(parent) if parent else None,
        url=status.get("url") or status.get("uri"),
        lang=status.get("language"),
        spoiler_text=status.get("spoiler_text") or None,
        raw=raw_payload(status),
    )


def id_key(native_id: str) -> tuple[int, str]:
    """Order status ids: numeric snowflakes by value, fixed-width ULIDs/flakes by text."""
    return (len(native_id), native_id)
