"""Discourse topics (``type = "discourse"``).

``base_url = "https://forum.example"`` and ``topics = [2144, "https://forum.example/t/slug/2144"]``.
For each topic ``/t/{id}.json`` gives the first posts and ``post_stream.stream``, the ids of
every post; the rest are fetched with ``/t/{id}/posts.json?post_ids[]=...`` in chunks of
``chunk_size`` (20, like the Discourse web client), in ascending id order so a run that stops
can resume. ``reply_to_post_number`` gives the parent (numbers of posts from earlier runs are
looked up with ``/posts/by_number/{topic}/{n}.json``); posts without it reply to the first
post, which is the thread root and carries the topic title.

``cooked`` (HTML) is stored as received in ``content``; ``text`` leaves out quoted posts
(``aside.quote``), link previews (``aside.onebox``) and image captions, and the quotes are kept
in ``raw["framewatch_quotes"]`` as ``{username, post_number, topic_id, text}``.

The cursor is the highest post id stored per topic; later runs fetch only ids above it.
Edits to older posts are therefore not picked up (run with a fresh cursor to re-read a topic).
"""

from __future__ import annotations

import re
from typing import Any, Iterator
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from selectolax.lexbor import LexborHTMLParser

from flows.sources import register
from flows.sources._dates import parse_iso
from flows.sources._http import PoliteClient, host_of, require_http_url
from flows.sources.base import BaseCollector, Batch, PostRecord, SourceError, SourceOptions
from nlp.text import html_to_text

PLATFORM = "discourse"
_TOPIC_URL = re.compile(r"/t/(?:[^/]+/)?(\d+)(?:/\d+)?/?$")
_SMALL_ACTION = 3
_NOT_TEXT = ("aside.quote", "aside.onebox", ".lightbox-wrapper .meta", ".onebox")


class DiscourseOptions(SourceOptions):
    base_url: str
    topics: list[int | str]
    chunk_size: int = Field(20, ge=1, le=100)
    api_key_env: str | None = None       # for private forums: env var holding an API key
    api_username: str | None = None      # sent as Api-Username with the key

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return require_http_url(value)


def topic_id(ref: int | str) -> int | None:
    if isinstance(ref, int):
        return ref
    ref = ref.strip()
    if ref.isdigit():
        return int(ref)
    found = _TOPIC_URL.search(urlsplit(ref).path)
    return int(found.group(1)) if found else None


def split_cooked(cooked: str) -> tuple[str, list[dict[str, Any]]]:
    """Plain text of a post without quoted posts and link previews, and the quotes."""
    if not cooked:
        return "", []
    tree = LexborHTMLParser(cooked)
    quotes = []
    for aside in tree.css("aside.quote"):
        block = aside.css_first("blockquote")
        number = aside.attributes.get("data-post")
        topic = aside.attributes.get("data-topic")
        quotes.append({
            "username": aside.attributes.get("data-username"),
            "post_number": int(number) if number and number.isdigit() else None,
            "topic_id": int(topic) if topic and topic.isdigit() else None,
            "text": html_to_text(block.inner_html if block is not None else aside.inner_html),
        })
    for selector in _NOT_TEXT:
        for node in tree.css(selector):
            node.decompose()
    root = tree.body or tree.root
    return html_to_text(root.inner_html if root is not None else ""), quotes


@register("discourse")
class DiscourseCollector(BaseCollector):
    Options = DiscourseOptions

    def __init__(self, name: str, options: DiscourseOptions, context: Any):
        super().__init__(name, options, context)
        self.site = host_of(options.base_url)

    def check(self) -> None:
        bad = [ref for ref in self.options.topics if topic_id(ref) is None]
        if bad:
            raise SourceError(self.name, f"cannot read a topic id from {bad[0]!r}", fatal_config=True)
        self.require("topics", "list topic URLs or ids")
        if self.options.api_key_env and not self.context.secret(self.options.api_key_env):
            raise SourceError(self.name, f"environment variable {self.options.api_key_env} is not set",
                              fatal_config=True)

    def collect(self, cursor: dict[str, Any] | None) -> Iterator[Batch]:
        self.check()
        self.state = {"topics": {k: dict(v) for k, v in ((cursor or {}).get("topics") or {}).items()}}
        secret = {}
        if self.options.api_key_env:
            secret = {"Api-Key": self.context.secret(self.options.api_key_env) or "",
                      "Api-Username": self.options.api_username or "system"}
        with PoliteClient(self.name, self.context.http, headers={"Accept": "application/json"},
                          secret_headers=secret) as client:
            self.client = client
            for ref in dict.fromkeys(topic_id(r) for r in self.options.topics):
                yield from self._topic(ref)

    def snapshot(self) -> dict[str, Any]:
        return {"topics": {k: dict(v) for k, v in self.state["topics"].items()}}

    def _get(self, path: str, params: Any = None, missing_ok: bool = False) -> Any:
        url = f"{self.options.base_url}{path}"
        response = self.client.get(url, params=params, allow_status={403, 404, 410} if missing_ok else ())
        if response.status_code in (403, 404, 410):
            return None
        return self.client.json_of(response)

    def _topic(self, topic: int) -> Iterator[Batch]:
        state = self.state["topics"].setdefault(str(topic), {})
        known = int(state.get("max_post_id") or 0)
        view_url = f"{self.options.base_url}/t/{topic}.json"
        view = self._get(f"/t/{topic}.json", missing_ok=True)
        if view is None:
            yield Batch(errors=[f"{view_url}: topic not found or not visible (HTTP 403/404)"],
                        cursor=self.snapshot(), requests=self.client.take_requests())
            return
        stream_info = view.get("post_stream") if isinstance(view, dict) else None
        if not isinstance(stream_info, dict) or not isinstance(stream_info.get("stream"), list):
            raise self.client.error("malformed topic: no post_stream.stream", view_url)
        stream = [i for i in stream_info["stream"] if isinstance(i, int)]
        if not stream:
            yield Batch(cursor=self.snapshot(), requests=self.client.take_requests())
            return
        self.topic = topic
        self.title = view.get("title") or view.get("fancy_title") or ""
        self.slug = view.get("slug") or "topic"
        self.first_id = stream[0]
        self.by_number: dict[int, int] = {}
        have: dict[int, dict[str, Any]] = {}
        for post in stream_info.get("posts") or []:
            if isinstance(post, dict) and isinstance(post.get("id"), int):
                have[post["id"]] = post
                if isinstance(post.get("post_number"), int):
                    self.by_number[post["post_number"]] = post["id"]
        wanted = sorted(i for i in set(stream) if i > known)
        size = self.options.chunk_size
        for start in range(0, len(wanted), size):
            chunk = wanted[start:start + size]
            missing = [i for i in chunk if i not in have]
            if missing:
                have.update(self._fetch_posts(topic, missing))
            posts = [have[i] for i in chunk if i in have]
            for post in posts:
                if isinstance(post.get("post_number"), int):
                    self.by_number[post["post_number"]] = post["id"]
            batch = Batch()
            for post in posts:
                self._add(batch, post)
            state["max_post_id"] = max(chunk[-1], known)
            batch.cursor = self.snapshot()
            batch.requests = self.client.take_requests()
            yield batch
        if not wanted:
            yield Batch(cursor=self.snapshot(), requests=self.client.take_requests())

    def _fetch_posts(self, topic: int, ids: list[int]) -> dict[int, dict[str, Any]]:
        path = f"/t/{topic}/posts.json"
        data = self._get(path, params=[("post_ids[]", i) for i in ids])
        posts = ((data or {}).get("post_stream") or {}).get("posts") if isinstance(data, dict) else None
        if not isinstance(posts, list):
            raise self.client.error("malformed posts response: no post_stream.posts",
                                    f"{self.options.base_url}{path}")
        wanted = set(ids)
        return {p["id"]: p for p in posts if isinstance(p, dict) and p.get("id") in wanted}

    def _parent_id(self, number: int) -> int | None:
        if number in self.by_number:
            return self.by_number[number]
        post = self._get(f"/posts/by_number/{self.topic}/{number}.json", missing_ok=True)
        if isinstance(post, dict) and isinstance(post.get("id"), int):
            self.by_number[number] = post["id"]
            return post["id"]
        return None

    def _add(self, batch: Batch, post: dict[str, Any]) -> None:
        batch.fetched += 1
        post_id = post["id"]
        if post.get("deleted_at") or post.get("user_deleted"):
            batch.deleted_native_ids.append((PLATFORM, self.site, str(post_id)))
            return
        if post.get("post_type") == _SMALL_ACTION:
            return  # "closed the topic", "pinned" ...: not part of the debate
        number = post.get("post_number")
        cooked = post.get("cooked") or ""
        is_first = post_id == self.first_id or number == 1
        parent = None
        raw = dict(post)
        if not is_first:
            reply_to = post.get("reply_to_post_number")
            parent = self._parent_id(reply_to) if isinstance(reply_to, int) else self.first_id
            if parent is None:
                raw["framewatch_parent_unresolved"] = reply_to
                parent = self.first_id
        text, quotes = split_cooked(cooked)
        raw["framewatch_quotes"] = quotes
        if is_first and self.title:
            cooked = f"<h1>{self.title}</h1>\n{cooked}"
            text = f"{self.title}\n\n{text}".strip()
        created = parse_iso(post.get("created_at"))
        version = post.get("version") or 1
        edited = parse_iso(post.get("updated_at")) if isinstance(version, int) and version > 1 else None
        path = post.get("post_url") or f"/t/{self.slug}/{self.topic}/{number}"
        batch.posts.append(PostRecord(
            platform=PLATFORM, site=self.site, native_id=str(post_id), thread_native_id=str(self.first_id),
            parent_native_id=str(parent) if parent is not None else None,
            author=post.get("username") or None, created_at=created,
            edited_at=edited if edited and created and edited > created else None,
            content=cooked, text=text, url=f"{self.options.base_url}{path}" if path.startswith("/") else path,
            raw=raw,
        ))
