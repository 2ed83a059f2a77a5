"""WordPress comments through the REST API (``type = "wordpress"``).

``site = "https://blog.example"`` and ``posts = [123, "https://blog.example/2019/01/slug/"]``.
A post given by URL is found through ``/wp-json/wp/v2/posts?slug=...`` (then ``pages``), or
from ``?p=ID`` in the URL. Each post is stored as the thread root (``post-ID``) and its
comments (``comment-ID``) are paged through ``/wp-json/wp/v2/comments?post=ID&per_page=100``
in id order, following ``X-WP-TotalPages``; ``parent`` gives the reply structure (0 = a reply
to the post).

The first run walks all pages in ascending id order and can resume at the page it stopped at;
once a post is complete, later runs ask for the newest comments first (``order=desc``) and stop
at the first comment they already have. ``full_refresh = true`` walks everything again (to pick
up edited comments).

When the REST API is switched off (401/403, a 404 without a REST route, or HTML where JSON was
expected), the post's page is read with the HTML comment parser instead (same ids, robots.txt
honoured). The ids are the ones WordPress uses everywhere, so the same comment collected via
REST, the HTML page or the comment feed is one row.
"""

from __future__ import annotations

import re
from typing import Any, Iterator
from urllib.parse import urlsplit

import httpx
from pydantic import Field, field_validator

from flows.sources import register
from flows.sources._dates import parse_iso
from flows.sources._http import PoliteClient, host_of, require_http_url
from flows.sources.base import BaseCollector, Batch, PostRecord, SourceError, SourceOptions
from flows.sources.html_comments import PLATFORM, Selectors, collect_pages

_REST_OFF_CODES = {
    "rest_no_route", "rest_disabled", "rest_cannot_access", "rest_forbidden", "rest_login_required",
    "rest_not_logged_in", "rest_authentication_error", "rest_api_disabled",
}
_KEEP_POST_FIELDS = ("id", "date", "date_gmt", "modified", "modified_gmt", "slug", "status", "type", "link",
                     "title", "author", "categories", "tags", "comment_status")


class WordPressOptions(SourceOptions):
    site: str
    posts: list[int | str]
    per_page: int = Field(100, ge=1, le=100)
    store_post: bool = True
    html_fallback: bool = True
    selectors: Selectors | None = None
    max_pages: int | None = Field(None, ge=1)
    full_refresh: bool = False
    api_root: str | None = None

    @field_validator("site")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return require_http_url(value)


class _RestOff(Exception):
    """The REST API does not answer for this site; use the HTML page."""

    def __init__(self, why: str):
        super().__init__(why)
        self.why = why


@register("wordpress")
class WordPressCollector(BaseCollector):
    Options = WordPressOptions

    def __init__(self, name: str, options: WordPressOptions, context: Any):
        super().__init__(name, options, context)
        self.site = host_of(options.site)
        self.api = (options.api_root or f"{options.site}/wp-json").rstrip("/")
        self.rest_off: str | None = None

    def check(self) -> None:
        self.require("posts", "list post ids or URLs")

    # -- state ---------------------------------------------------------------------------

    def collect(self, cursor: dict[str, Any] | None) -> Iterator[Batch]:
        self.check()
        cursor = cursor or {}
        self.state = {
            "posts": {k: dict(v) for k, v in (cursor.get("posts") or {}).items()},
            "resolved": dict(cursor.get("resolved") or {}),
            "pages": {k: dict(v) for k, v in (cursor.get("pages") or {}).items()},
        }
        with PoliteClient(self.name, self.context.http) as client:
            self.client = client
            done: set[str] = set()
            for ref in self.options.posts:
                batch = Batch()
                try:
                    post_id = self._resolve(ref)
                except _RestOff as off:
                    self.rest_off = off.why
                    post_id = None
                if post_id is None and self.rest_off is None:
                    batch.errors.append(f"{self.options.site}: no post or page found for {ref!r}")
                    batch.cursor = self.snapshot()
                    batch.requests = client.take_requests()
                    yield batch
                    continue
                if post_id is not None and post_id in done:
                    # Already collected under another name; keep what resolving it learned.
                    yield Batch(cursor=self.snapshot(), requests=client.take_requests())
                    continue
                if post_id is not None:
                    done.add(post_id)
                if self.rest_off is None:
                    try:
                        yield from self._collect_rest(post_id)
                        continue
                    except _RestOff as off:
                        self.rest_off = off.why
                if not self.options.html_fallback:
                    raise SourceError(self.name, f"the REST API is not available ({self.rest_off}) and "
                                                 "html_fallback is off", url=self.api)
                yield from self._collect_html(ref, post_id)

    def snapshot(self) -> dict[str, Any]:
        return {
            "posts": {k: dict(v) for k, v in self.state["posts"].items()},
            "resolved": dict(self.state["resolved"]),
            "pages": {k: dict(v) for k, v in self.state["pages"].items()},
        }

    # -- REST ----------------------------------------------------------------------------

    def _rest(self, path: str, params: dict[str, Any] | None = None) -> tuple[Any, httpx.Response] | None:
        """GET a REST route. None for a missing object (404 that is not about the route);
        raises _RestOff when the API itself is unavailable."""
        url = f"{self.api}{path}"
        response = self.client.get(url, params=params, allow_status={401, 403, 404, 410},
                                   headers={"Accept": "application/json"})
        body = response.text.lstrip("\ufeff").lstrip()
        is_json = body[:1] in ("{", "[")  # by the body: plugins mislabel both ways
        if response.status_code in (401, 403):
            raise _RestOff(f"HTTP {response.status_code} from {path}")
        if response.status_code in (404, 410):
            if not is_json:
                raise _RestOff(f"HTTP {response.status_code} (not JSON) from {path}")
            try:
                code = (response.json() or {}).get("code")
            except Exception:
                code = None
            if code in _REST_OFF_CODES:
                raise _RestOff(f"{code} from {path}")
            return None
        if body[:1] == "<":
            raise _RestOff(f"HTML instead of JSON from {path}")
        return self.client.json_of(response), response

    def _resolve(self, ref: int | str) -> str | None:
        if isinstance(ref, int) or (isinstance(ref, str) and ref.strip().isdigit()):
            return str(ref).strip()
        url = ref.strip()
        if url in self.state["resolved"]:
            return str(self.state["resolved"][url])
        found = re.search(r"[?&](?:p|page_id)=(\d+)", url)
        if found:
            return found.group(1)
        if self.rest_off is not None:
            return None
        slug = [part for part in urlsplit(url).path.split("/") if part]
        if not slug:
            raise SourceError(self.name, f"{url!r} has no slug to look up", fatal_config=True)
        for kind in ("posts", "pages"):
            result = self._rest(f"/wp/v2/{kind}", {"slug": slug[-1], "_fields": "id,link"})
            if result is None:
                continue
            data, response = result
            if not isinstance(data, list):
                raise self.client.error(f"expected a list of {kind}, got {type(data).__name__}", response.request.url)
            if data:
                match = next((p for p in data if isinstance(p, dict) and
                              str(p.get("link", "")).rstrip("/").endswith(urlsplit(url).path.rstrip("/"))), data[0])
                if not isinstance(match, dict) or "id" not in match:
                    raise self.client.error(f"a {kind} entry without id", response.request.url)
                self.state["resolved"][url] = match["id"]
                return str(match["id"])
        return None

    def _root(self, post_id: str) -> PostRecord | None:
        result = self._rest(f"/wp/v2/posts/{post_id}", {"_embed": "author"})
        if result is None:
            result = self._rest(f"/wp/v2/pages/{post_id}", {"_embed": "author"})
        if result is None:
            return None
        post, response = result
        if not isinstance(post, dict) or "id" not in post:
            raise self.client.error("expected a post object with an id", response.request.url)
        title = ((post.get("title") or {}).get("rendered") or "").strip()
        body = ((post.get("content") or {}).get("rendered") or "")
        created = parse_iso(post.get("date_gmt")) or parse_iso(post.get("date"))
        modified = parse_iso(post.get("modified_gmt")) or parse_iso(post.get("modified"))
        authors = ((post.get("_embedded") or {}).get("author") or [{}])
        author = authors[0].get("name") if isinstance(authors[0], dict) and authors[0].get("name") else (
            f"user-{post['author']}" if post.get("author") else None)
        native = f"post-{post['id']}"
        return PostRecord(
            platform=PLATFORM, site=self.site, native_id=native, thread_native_id=native,
            content=(f"<h1>{title}</h1>\n" if title else "") + body, created_at=created,
            edited_at=modified if modified and created and modified > created else None,
            author=author, url=post.get("link"),
            raw={k: post[k] for k in _KEEP_POST_FIELDS if k in post},
        )

    def _comment(self, item: Any, post_id: str) -> PostRecord:
        if not isinstance(item, dict) or "id" not in item:
            raise ValueError("a comment without id")
        parent = item.get("parent") or 0
        return PostRecord(
            platform=PLATFORM, site=self.site, native_id=f"comment-{item['id']}",
            thread_native_id=f"post-{post_id}",
            parent_native_id=f"comment-{parent}" if parent else f"post-{post_id}",
            author=item.get("author_name") or None,
            created_at=parse_iso(item.get("date_gmt")) or parse_iso(item.get("date")),
            content=((item.get("content") or {}).get("rendered") or ""),
            url=item.get("link"),
            raw={k: v for k, v in item.items() if k not in ("_links", "author_avatar_urls")},
        )

    def _collect_rest(self, post_id: str) -> Iterator[Batch]:
        state = self.state["posts"].setdefault(post_id, {})
        pending: list[PostRecord] = []
        if self.options.store_post:
            root = self._root(post_id)
            if root is None:
                batch = Batch(errors=[f"{self.api}/wp/v2/posts/{post_id}: no such post or page"],
                              cursor=self.snapshot(), requests=self.client.take_requests())
                yield batch
                return
            pending.append(root)
        if self.options.full_refresh and state.get("complete"):
            state.clear()
        incremental = bool(state.get("complete"))
        known = int(state.get("max_id") or 0)
        page = 1 if incremental else int(state.get("page") or 1)
        pages_done = 0
        while True:
            params = {"post": post_id, "per_page": self.options.per_page, "page": page,
                      "orderby": "id", "order": "desc" if incremental else "asc"}
            result = self._rest("/wp/v2/comments", params)
            if result is None:
                raise self.client.error("comments route answered 404", f"{self.api}/wp/v2/comments")
            data, response = result
            if not isinstance(data, list):
                raise self.client.error(f"expected a list of comments, got {type(data).__name__}",
                                        response.request.url)
            batch = Batch(posts=pending)
            pending = []
            seen_ids: list[int] = []
            for index, item in enumerate(data):
                try:
                    record = self._comment(item, post_id)
                except ValueError as exc:
                    batch.errors.append(f"{response.request.url}: item {index}: {exc}")
                    continue
                seen_ids.append(int(item["id"]))
                if incremental and int(item["id"]) <= known:
                    continue
                batch.posts.append(record)
            batch.fetched = len(batch.posts)
            total_pages = _int(response.headers.get("x-wp-totalpages"))
            pages_done += 1
            last = (not data or (total_pages is not None and page >= total_pages)
                    or (total_pages is None and len(data) < self.options.per_page))
            if incremental:
                reached_known = any(i <= known for i in seen_ids)
                last = last or reached_known
                if last:
                    state["max_id"] = max([known, *seen_ids])
            else:
                state["max_id"] = max([int(state.get("max_id") or 0), *seen_ids])
                state["page"] = page + 1
                if last:
                    state.pop("page", None)
                    state["complete"] = True
            stop = last or (self.options.max_pages is not None and pages_done >= self.options.max_pages)
            batch.cursor = self.snapshot()
            batch.requests = self.client.take_requests()
            yield batch
            if stop:
                return
            page += 1

    # -- HTML fallback ---------------------------------------------------------------------

    def _collect_html(self, ref: int | str, post_id: str | None) -> Iterator[Batch]:
        url = ref if isinstance(ref, str) and not ref.strip().isdigit() else f"{self.options.site}/?p={post_id}"
        yield from collect_pages(
            self.client, self.name, url, site=self.site, selectors=self.options.selectors, follow=True,
            max_pages=self.options.max_pages or 20, store_article=self.options.store_post,
            pages_state=self.state["pages"], cursor_of=self.snapshot,
        )


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
