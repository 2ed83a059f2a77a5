"""RSS/Atom comment feeds (``type = "rss"``), read with feedparser.

``feeds = [...]`` lists comment feeds (a WordPress post's ``/feed/``, a Discourse topic's
``.rss``, any RSS/Atom feed whose items are the comments of one page) or blog main feeds. Each
item of a comment feed is a comment: author from ``dc:creator``/``author``, time from
``published``/``updated``, text from ``content:encoded``/``content`` or ``description``.

WordPress feeds are recognised and get the same ids as the REST API and the HTML pages:
comment guids ``...?p=114#comment-5`` give ``comment-5`` in thread ``post-114``, and the
"In reply to <a href=...#comment-N>" line WordPress (5.4+) puts before replies gives the parent
(and is removed from the text). Other feeds: the item's guid (or link) is its id, the thread
is ``page-<hash of the channel link>`` (the id the HTML source gives that page) and every item
replies to it. A blog's main feed (items with ``wfw:commentRss``) stores each item as a thread
root; with ``follow_comment_feeds = true`` each item's comment feed is read as well (skipped
when ``slash:comments`` says there are none). Quoted posts (``aside.quote``, Discourse) are kept
out of the text as in the Discourse source.

Feeds are fetched with ``If-None-Match``/``If-Modified-Since`` from the last run (the cursor
keeps ``ETag`` and ``Last-Modified`` per feed URL); a feed only shows its latest items, so run
it often enough. robots.txt is not consulted for feeds (they are published for programs).
"""

from __future__ import annotations

import hashlib
import html as htmllib
import re
from typing import Any, Iterator, Literal
from urllib.parse import urljoin, urlsplit

import feedparser
from pydantic import Field, field_validator

from flows.sources import register
from flows.sources._dates import parse_iso, parse_struct
from flows.sources._http import PoliteClient, host_of
from flows.sources.base import BaseCollector, Batch, PostRecord, SourceOptions
from flows.sources.discourse import split_cooked
from flows.sources.html_comments import page_native_id

_WP_COMMENT_GUID = re.compile(r"[?&]p=(\d+)#comment-(\d+)$")
_COMMENT_FRAGMENT = re.compile(r"#comment-(\d+)$")
_WP_POST_GUID = re.compile(r"[?&](?:p|page_id)=(\d+)$")
# WordPress 5.4+: "In reply to <a href="...#comment-N">Name</a>." (translated in other languages)
_IN_REPLY_TO = re.compile(
    r"^\s*(?:<p>)?\s*[^<>]{0,60}<a\s+href=[\"']([^\"']*#comment-(\d+))[\"'][^>]*>[^<]*</a>"
    r"\s*[.:]?\s*(?:</p>|<br\s*/?>)?\s*",
    re.I,
)
_BENIGN = ("CharacterEncodingOverride", "NonXMLContentType")


class RssOptions(SourceOptions):
    feeds: list[str]
    follow_comment_feeds: bool = False
    kind: Literal["auto", "comments", "posts"] = "auto"
    platform: str = "blog"
    max_comment_feeds: int = Field(50, ge=1)
    skip_empty_comment_feeds: bool = True

    @field_validator("feeds")
    @classmethod
    def _http_urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
                raise ValueError(f"{url!r} is not an http(s) URL")
        return value


def _entry_html(entry: Any) -> str:
    for item in entry.get("content") or []:
        if item.get("value"):
            return item["value"]
    return entry.get("summary") or entry.get("description") or ""


def _entry_time(entry: Any):
    return (parse_struct(entry.get("published_parsed")) or parse_struct(entry.get("updated_parsed"))
            or parse_iso(entry.get("published")) or parse_iso(entry.get("updated")))


def _author(entry: Any) -> str | None:
    name = entry.get("author") or (entry.get("author_detail") or {}).get("name")
    return " ".join(str(name).split()) or None if name else None


@register("rss")
class RssCollector(BaseCollector):
    Options = RssOptions

    def check(self) -> None:
        self.require("feeds", "list the feed URLs")

    def collect(self, cursor: dict[str, Any] | None) -> Iterator[Batch]:
        self.check()
        self.state = {"feeds": {k: dict(v) for k, v in ((cursor or {}).get("feeds") or {}).items()}}
        accept = "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.8, */*;q=0.5"
        with PoliteClient(self.name, self.context.http, headers={"Accept": accept}, robots=False) as client:
            self.client = client
            for url in self.options.feeds:
                yield from self._feed(url, thread=None, kind=self.options.kind)

    def snapshot(self) -> dict[str, Any]:
        return {"feeds": {k: dict(v) for k, v in self.state["feeds"].items()}}

    def _fetch(self, url: str) -> Any | None:
        state = self.state["feeds"].setdefault(url, {})
        headers = {}
        if state.get("etag"):
            headers["If-None-Match"] = state["etag"]
        if state.get("last_modified"):
            headers["If-Modified-Since"] = state["last_modified"]
        response = self.client.get(url, headers=headers, allow_status={304})
        if response.status_code == 304:
            return None
        ctype = response.headers.get("content-type", "")
        parsed = feedparser.parse(response.content, response_headers={"content-type": ctype, "content-location": url})
        problem = parsed.get("bozo_exception")
        if not parsed.entries and (problem is not None or not parsed.version):
            what = f"{type(problem).__name__}: {problem}" if problem is not None else "no RSS/Atom elements"
            if not parsed.version and "html" in ctype.lower():
                what = f"an HTML page, not a feed (content-type {ctype})"
            raise self.client.error(f"malformed feed: {what}", url)
        for key, header in (("etag", "etag"), ("last_modified", "last-modified")):
            if response.headers.get(header):
                state[key] = response.headers[header]
            else:
                state.pop(key, None)
        parsed["framewatch_warning"] = None
        if parsed.bozo and problem is not None and type(problem).__name__ not in _BENIGN:
            parsed["framewatch_warning"] = (
                f"{url}: feed is not well-formed ({type(problem).__name__}: {problem}); "
                f"{len(parsed.entries)} item(s) read with the lenient parser")
        return parsed

    def _feed(self, url: str, *, thread: str | None, kind: str) -> Iterator[Batch]:
        parsed = self._fetch(url)
        batch = Batch()
        if parsed is None:  # not modified
            batch.cursor = self.snapshot()
            batch.requests = self.client.take_requests()
            yield batch
            # A main feed does not change when its posts get comments: check their feeds anyway.
            if self.options.follow_comment_feeds:
                for comment_url, root in self.state["feeds"][url].get("comment_feeds") or []:
                    yield from self._feed(comment_url, thread=root, kind="comments")
            return
        if parsed["framewatch_warning"]:
            batch.errors.append(parsed["framewatch_warning"])
        entries = list(parsed.entries)
        channel_link = urljoin(url, parsed.feed.get("link") or url)
        if kind == "auto":
            kind = "posts" if any(e.get("wfw_commentrss") or e.get("slash_comments") is not None
                                  for e in entries) else "comments"
        follow: list[tuple[str, str]] = []
        for index, entry in enumerate(entries):
            batch.fetched += 1
            try:
                if kind == "posts":
                    record = self._post(entry, url)
                    comment_feed = entry.get("wfw_commentrss")
                    count = str(entry.get("slash_comments") or "").strip()
                    if (self.options.follow_comment_feeds and comment_feed
                            and not (self.options.skip_empty_comment_feeds and count == "0")):
                        follow.append((urljoin(url, comment_feed), record.native_id))
                else:
                    if parsed["framewatch_warning"] and not (entry.get("id") or entry.get("link")):
                        raise ValueError("incomplete item (no guid or link) in a broken feed; not stored")
                    record = self._comment(entry, url, channel_link, thread)
            except ValueError as exc:
                batch.errors.append(f"{url}: item {index + 1}: {exc}")
                continue
            batch.posts.append(record)
        follow = follow[: self.options.max_comment_feeds]
        if kind == "posts":
            self.state["feeds"][url]["comment_feeds"] = [list(pair) for pair in follow]
        batch.cursor = self.snapshot()
        batch.requests = self.client.take_requests()
        yield batch
        for comment_url, root in follow:
            yield from self._feed(comment_url, thread=root, kind="comments")

    def _post(self, entry: Any, feed_url: str) -> PostRecord:
        link = entry.get("link")
        guid = entry.get("id") or link
        if not guid:
            raise ValueError("item has neither guid nor link")
        found = _WP_POST_GUID.search(guid)
        native = f"post-{found.group(1)}" if found else page_native_id(urljoin(feed_url, link or guid))
        title = (entry.get("title") or "").strip()
        heading = f"<h1>{htmllib.escape(title)}</h1>\n" if title else ""
        created = _entry_time(entry)
        updated = parse_struct(entry.get("updated_parsed"))
        return PostRecord(
            platform=self.options.platform, site=host_of(link or feed_url), native_id=native,
            thread_native_id=native, content=heading + _entry_html(entry), created_at=created,
            edited_at=updated if updated and created and updated > created else None,
            author=_author(entry), url=link, raw=_raw(entry, feed_url),
        )

    def _comment(self, entry: Any, feed_url: str, channel_link: str, thread: str | None) -> PostRecord:
        guid = entry.get("id") or ""
        link = entry.get("link") or ""
        content = _entry_html(entry)
        site = host_of(link or channel_link or feed_url)
        wp = _WP_COMMENT_GUID.search(guid)
        frag = _COMMENT_FRAGMENT.search(guid) or _COMMENT_FRAGMENT.search(link)
        if wp:
            native, thread = f"comment-{wp.group(2)}", thread or f"post-{wp.group(1)}"
        elif frag:
            native = f"comment-{frag.group(1)}"
        elif guid or link:
            native = guid or link
        else:
            if not content.strip():
                raise ValueError("item has no guid, link or content")
            key = f"{_author(entry) or ''}\x1f{entry.get('published') or ''}\x1f{content}"
            native = "h-" + hashlib.sha1(key.encode("utf-8")).hexdigest()[:16]
        thread = thread or page_native_id(channel_link)
        parent = thread
        reply = _IN_REPLY_TO.match(content) or _IN_REPLY_TO.match(htmllib.unescape(content))
        if reply and native.startswith("comment-"):
            parent = f"comment-{reply.group(2)}"
            content = (content if _IN_REPLY_TO.match(content) else htmllib.unescape(content))[reply.end():]
        text, quotes = split_cooked(content)
        raw = _raw(entry, feed_url)
        if quotes:
            raw["framewatch_quotes"] = quotes
        if parent == native:
            parent = thread
        return PostRecord(
            platform=self.options.platform, site=site, native_id=native, thread_native_id=thread,
            parent_native_id=parent if parent != native else None, author=_author(entry),
            created_at=_entry_time(entry), content=content, text=text, url=link or None, raw=raw,
        )


def _raw(entry: Any, feed_url: str) -> dict[str, Any]:
    keep = ("id", "link", "title", "author", "published", "updated", "comments", "wfw_commentrss",
            "slash_comments", "tags")
    raw = {k: entry.get(k) for k in keep if entry.get(k) is not None}
    if "tags" in raw:
        raw["tags"] = [t.get("term") for t in raw["tags"] if isinstance(t, dict)]
    raw["feed"] = feed_url
    return raw
