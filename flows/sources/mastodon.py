"""Mastodon: threads, hashtag timelines, search results and account timelines.

Why it works the way it does:

* **Threads are fetched where they live.** A status URL on another server than ``instance``
  is read from its origin server, anonymously: that server has the whole conversation
  (the home server only knows the replies that reached it), and the token, which belongs to
  ``instance``, is never sent anywhere else. Records carry ``site`` = the host they were
  fetched from and that server's status id, so ``post_id`` stays stable per server.
  Anonymous context is capped by Mastodon (40 ancestors, 60 descendants); hitting a cap
  is logged, because the thread is then incomplete.
* **Deletions are only inferred from threads.** The cursor remembers which statuses of
  each configured thread were stored. On the next run any of them that is no longer in the
  context is asked for on its own: a 404/410 marks it deleted (text removed), a status that
  still answers stays. Timelines cannot tell "deleted" from "scrolled away".
* **Streams: one full walk, then only what is newer.** Hashtag and account timelines
  follow the ``Link: rel="next"`` headers (newest to oldest) to the end on the first run;
  later runs ask with ``since_id`` (search: ``min_id``) and walk down only to the newest
  status already stored. The stored ``since_id`` moves only when a walk is complete; until
  then the cursor keeps the walk's ``max_id`` and newest id, so a crash or a ``max_pages``
  stop resumes where it left off and never leaves a gap. Search has no ``Link`` header;
  it is paged with ``max_id``.
* **Consent before content.** Statuses of accounts that did not opt in to being indexed
  (``indexable: false``), ask not to be indexed (``noindex``), or say ``#nobot`` /
  ``#noindex`` in their profile are not stored, nor are non-public ones a token may reveal:
  a SkipRecord with the status id and the reason goes to provenance, without text or author.
  A quoted post by such an account is cut out of the raw payload of the post quoting it.
* **Waiting is ours, not the library's.** Mastodon.py runs with ``ratelimit_method="throw"``;
  429s wait for ``X-RateLimit-Reset`` or ``Retry-After`` (else back off), 5xx and timeouts
  are retried with backoff, all bounded by the ``[http]`` settings, so a run never hangs
  and a failure names the source and the URL (see ``_mastodon_http``).
* **What is stored:** ``content`` is the HTML as received, ``text`` the careful plain text,
  ``raw`` the status exactly as the server sent it (not Mastodon.py's converted objects).
  Boosts are not posts and are skipped.
"""

from __future__ import annotations

import copy
import logging
import re
from functools import partial
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

from mastodon.errors import MastodonVersionError
from pydantic import Field, field_validator, model_validator

from flows.sources import register
from flows.sources._http import host_of as site_of
from flows.sources._mastodon_http import Counter, Gone, Refused, Reply, Scrubber, Server
from flows.sources._mastodon_records import (
    PLATFORM,
    check_status,
    id_key,
    to_record,
)
from flows.sources.base import BaseCollector, Batch, PostRecord, SkipRecord, SourceError, SourceOptions

log = logging.getLogger("framewatch.sources.mastodon")

ANON_MAX_ANCESTORS = 40
ANON_MAX_DESCENDANTS = 60

# Paths of a status page, per server software; the id is that server's own status id.
_STATUS_PATHS = [
    re.compile(r"^/@[^/]+/(?P<id>[0-9A-Za-z]+)(/embed)?/?$"),            # Mastodon (and /@user@host/id)
    re.compile(r"^/users/[^/]+/statuses/(?P<id>[0-9A-Za-z]+)/?$"),       # Mastodon ActivityPub uri
    re.compile(r"^/@[^/]+/statuses/(?P<id>[0-9A-Za-z]+)/?$"),            # GoToSocial
    re.compile(r"^/notice/(?P<id>[0-9A-Za-z]+)/?$"),                     # Pleroma / Akkoma
    re.compile(r"^/web/statuses/(?P<id>[0-9A-Za-z]+)/?$"),               # old Mastodon web UI
]
_PLAIN_ID = re.compile(r"^[0-9A-Za-z]+$")


class MastodonOptions(SourceOptions):
    instance: str
    threads: list[str] = Field(default_factory=list)
    hashtags: list[str] = Field(default_factory=list)
    search: list[str] = Field(default_factory=list)
    accounts: list[str] = Field(default_factory=list)
    token_env: str | None = None
    page_limit: int = Field(40, ge=1, le=40)          # statuses per request (Mastodon's maximum is 40)
    max_pages: int | None = Field(None, ge=1)         # per stream and run; the walk resumes next run
    pages_per_batch: int = Field(1, ge=1)             # pages stored (and cursor committed) together
    delay_s: float | None = Field(None, ge=0)         # pause between requests (default: [http] delay_s)
    search_resolve: bool = True                       # resolve remote URLs in search (needs a token)
    verify_missing_max: int = Field(100, ge=0)        # thread statuses re-checked one by one per run

    @field_validator("instance")
    @classmethod
    def _url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be the server's base URL, e.g. https://mastodon.social")
        if parts.path not in ("", "/") or parts.query:
            raise ValueError("must be the server's base URL without a path, e.g. https://mastodon.social")
        return value

    @field_validator("threads")
    @classmethod
    def _threads(cls, value: list[str]) -> list[str]:
        out = []
        for spec in value:
            spec = spec.strip()
            if not _PLAIN_ID.match(spec):
                parts = urlsplit(spec)
                if parts.scheme not in ("http", "https") or not parts.netloc:
                    raise ValueError(f"{spec!r} is neither a status id nor a status URL")
            out.append(spec)
        return out

    @field_validator("hashtags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        tags = [v.strip().lstrip("#") for v in value]
        bad = [t for t in tags if not t or not re.fullmatch(r"\w+", t)]
        if bad:
            raise ValueError(f"{bad[0]!r} is not a hashtag (letters, digits and _ only)")
        return tags

    @field_validator("accounts")
    @classmethod
    def _accounts(cls, value: list[str]) -> list[str]:
        accts = [v.strip().lstrip("@") for v in value]
        bad = [a for a in accts if not re.fullmatch(r"[\w.-]+(@[\w.-]+\.[\w.-]+(:\d+)?)?", a)]
        if bad:
            raise ValueError(f"{bad[0]!r} is not an account (user or user@server)")
        return accts

    @model_validator(mode="after")
    def _something(self) -> "MastodonOptions":
        if not (self.threads or self.hashtags or self.search or self.accounts):
            raise ValueError("nothing to collect: set threads, hashtags, search or accounts")
        return self


def parse_thread(spec: str, instance: str) -> tuple[str, str | None, str | None]:
    """(server base URL, status id or None, status URL or None) for a ``threads`` entry."""
    if _PLAIN_ID.match(spec):
        return instance, spec, None
    parts = urlsplit(spec)
    base = f"{parts.scheme}://{parts.netloc}"
    if site_of(base) == site_of(instance):
        base = instance
    for pattern in _STATUS_PATHS:
        found = pattern.match(parts.path)
        if found:
            return base, found.group("id"), spec
    return base, None, spec


def _newer(current: str | None, sid: str) -> str:
    """The later of two status ids (ids order by their numeric key, not as strings)."""
    return sid if current is None or id_key(sid) > id_key(current) else current


def _older(current: str | None, sid: str) -> str:
    return sid if current is None or id_key(sid) < id_key(current) else current


@register("mastodon")
class MastodonCollector(BaseCollector):
    Options = MastodonOptions

    def __init__(self, name: str, options: MastodonOptions, context: Any):
        super().__init__(name, options, context)
        self.http = context.http
        self.cursor: dict[str, Any] = {}
        self._servers: dict[str, Server] = {}
        self._counter = Counter()
        self._scrub = Scrubber(None)
        self._token: str | None = None

    # -- entry point ------------------------------------------------------------------

    def collect(self, cursor: dict[str, Any] | None) -> Iterator[Batch]:
        token = self.context.secret(self.options.token_env) if self.options.token_env else None
        if self.options.token_env and not token:
            log.warning("%s: %s is not set; collecting anonymously", self.name, self.options.token_env)
        self._scrub = Scrubber(token)
        self._token = token
        self.cursor = {k: v for k, v in (cursor or {}).items() if isinstance(v, dict)}
        if self.options.search and not token:
            log.warning("%s: search usually needs a token (set token_env); anonymous search may return "
                        "no statuses", self.name)
        main = self._server(self.options.instance)
        try:
            for spec in self.options.threads:
                yield from self._guard(f"thread {spec}", partial(self._thread, spec))
            for tag in self.options.hashtags:
                yield from self._guard(
                    f"hashtag #{tag}",
                    partial(self._timeline, f"tag:{tag}", f"hashtag timeline #{tag}",
                            partial(main.client.timeline_hashtag, tag)))
            for query in self.options.search:
                yield from self._guard(f"search {query!r}", partial(self._search, query))
            for acct in self.options.accounts:
                yield from self._guard(f"account {acct}", partial(self._account, acct))
        finally:
            for server in self._servers.values():
                server.session.close()
            self._servers.clear()

    def check(self) -> None:
        """Options are validated when the collector is built; nothing else to check offline."""

    # -- plumbing ---------------------------------------------------------------------

    def _server(self, base_url: str) -> Server:
        """The client for a server; only the configured instance gets the token."""
        base_url = base_url.rstrip("/")
        if base_url not in self._servers:
            is_home = site_of(base_url) == site_of(self.options.instance)
            delay = self.options.delay_s if self.options.delay_s is not None else float(self.http.delay_s)
            self._servers[base_url] = Server(
                self.name, base_url, token=self._token if is_home else None, http=self.http,
                delay_s=delay, counter=self._counter, scrub=self._scrub,
            )
        return self._servers[base_url]

    def _guard(self, label: str, produce: Callable[[], Iterator[Batch]]) -> Iterator[Batch]:
        """Per-stream problems that are not the source's fault become batch errors."""
        try:
            yield from produce()
        except Refused as exc:
            where = f" ({exc.url})" if exc.url else ""
            if exc.with_token:
                hint = "the token is not accepted (expired, or without read scope?)"
            elif exc.url and site_of(exc.url) != site_of(self.options.instance):
                hint = "that server wants a login; statuses on other servers are read without one"
            else:
                hint = "set token_env to a token for this server"
            yield self._problem(f"{label}: the server refused the request with HTTP {exc.status}{where}; {hint}")
        except Gone as exc:
            where = f" ({exc.args[0]})" if exc.args and exc.args[0] else ""
            yield self._problem(f"{label}: not found (HTTP 404){where}")
        except SourceError as exc:
            exc.problem = self._scrub(exc.problem)
            exc.args = (self._scrub(exc.args[0]),) if exc.args else exc.args
            raise

    def _problem(self, message: str) -> Batch:
        return Batch(errors=[self._scrub(message)], requests=self._counter.take())

    def _snapshot(self, key: str, state: dict[str, Any]) -> dict[str, Any]:
        self.cursor[key] = {k: v for k, v in state.items() if v is not None}
        return copy.deepcopy(self.cursor)

    def _malformed(self, reply: Reply, problem: str) -> SourceError:
        return SourceError(self.name, f"malformed payload: {problem}", url=reply.url)

    @staticmethod
    def _merge(pending: Batch | None, batch: Batch) -> Batch:
        """Pages stored together: their records, and the cursor after the last of them."""
        if pending is None:
            return batch
        pending.posts += batch.posts
        pending.skips += batch.skips
        pending.errors += batch.errors
        pending.fetched += batch.fetched
        pending.cursor = batch.cursor
        return pending

    @staticmethod
    def _add(batch: Batch, record: PostRecord | SkipRecord | None) -> None:
        if isinstance(record, PostRecord):
            batch.posts.append(record)
        elif isinstance(record, SkipRecord):
            batch.skips.append(record)

    # -- threads ----------------------------------------------------------------------

    def _thread(self, spec: str) -> Iterator[Batch]:
        key = f"thread:{spec}"
        previous = self.cursor.get(key) or {}
        base, native_id, url = parse_thread(spec, self.options.instance)
        server = self._server(base)
        site = server.site
        if native_id is None:
            native_id = self._resolve(server, url or spec)
            if native_id is None:
                yield self._problem(f"thread {spec}: {site} does not know this status URL")
                return
        root: dict[str, Any] | None = None
        ancestors: list[Any] = []
        descendants: list[Any] = []
        try:
            reply = server.call(f"status {native_id}", server.client.status, native_id)
            root = reply.raw
            try:
                check_status(root, f"status {native_id}")
            except ValueError as exc:
                raise self._malformed(reply, str(exc)) from None
        except Gone:
            root = None
        if root is not None:
            try:
                reply = server.call(f"the context of status {native_id}", server.client.status_context, native_id)
            except Gone:  # the status is there but its context is not: check the stored ones one by one
                reply = None
            if reply is not None:
                if not isinstance(reply.raw, dict) or not isinstance(reply.raw.get("descendants"), list) \
                        or not isinstance(reply.raw.get("ancestors"), list):
                    raise self._malformed(reply, "a status context needs 'ancestors' and 'descendants' lists")
                ancestors, descendants = reply.raw["ancestors"], reply.raw["descendants"]
                for item in ancestors + descendants:
                    try:
                        check_status(item, f"context of status {native_id}")
                    except ValueError as exc:
                        raise self._malformed(reply, str(exc)) from None
        if root is None and not previous.get("ids"):
            yield self._problem(f"thread {spec}: status {native_id} not found on {site} (404)")
            return
        if not server.has_token and (len(ancestors) >= ANON_MAX_ANCESTORS
                                     or len(descendants) >= ANON_MAX_DESCENDANTS):
            log.warning(
                "%s: thread %s: %s returned %d ancestors and %d descendants, its cap for requests "
                "without a token (%d/%d); the rest of the thread is not collected",
                self.name, spec, site, len(ancestors), len(descendants), ANON_MAX_ANCESTORS,
                ANON_MAX_DESCENDANTS)
        if ancestors:
            thread_root = str(ancestors[0]["id"])
        elif root is not None:
            thread_root = str(root["id"])
        else:
            thread_root = previous.get("root") or native_id
        batch = Batch()
        statuses = ancestors + ([root] if root is not None else []) + descendants
        batch.fetched = len(statuses)
        seen: set[str] = set()
        for status in statuses:
            seen.add(str(status["id"]))
            self._add(batch, to_record(status, site, thread_root=thread_root))
        stored = {p.native_id for p in batch.posts}
        # Statuses stored last time that the context no longer lists: ask for each one.
        missing = [i for i in previous.get("ids") or [] if i not in seen]
        unverified = missing[self.options.verify_missing_max:]
        for gone_id in missing[: self.options.verify_missing_max]:
            if root is None and gone_id == native_id:
                batch.deleted_native_ids.append((PLATFORM, site, gone_id))
                continue
            try:
                reply = server.call(f"status {gone_id} (missing from its thread)", server.client.status, gone_id)
            except Gone:
                batch.deleted_native_ids.append((PLATFORM, site, gone_id))
                continue
            try:
                check_status(reply.raw, f"status {gone_id}")
            except ValueError as exc:
                raise self._malformed(reply, str(exc)) from None
            batch.fetched += 1
            record = to_record(reply.raw, site, thread_root=thread_root)
            self._add(batch, record)
            if isinstance(record, PostRecord):
                stored.add(record.native_id)
        if batch.deleted_native_ids:
            log.info("%s: thread %s: %d stored status(es) are gone from %s", self.name, spec,
                     len(batch.deleted_native_ids), site)
        ids = sorted(stored | set(unverified), key=id_key)
        batch.cursor = self._snapshot(key, {"site": site, "status": native_id, "root": thread_root, "ids": ids})
        batch.requests = self._counter.take()
        yield batch

    def _resolve(self, server: Server, url: str) -> str | None:
        """The local id of a status URL whose path we do not recognise, via search."""
        resolve = server.has_token and self.options.search_resolve
        reply = server.call(f"search for {url}", server.client.search_v2, url, resolve=resolve,
                            result_type="statuses", exclude_unreviewed=False)
        statuses = reply.raw.get("statuses") if isinstance(reply.raw, dict) else None
        for status in statuses or []:
            if isinstance(status, dict) and url in (status.get("url"), status.get("uri")):
                return str(status["id"])
        return None

    # -- timelines (hashtags, accounts) -----------------------------------------------

    def _end_page(self, key: str, label: str, batch: Batch, pending: Batch | None, pages: int, done: bool,
                  since: str | None, newest: str | None, walk_max: str | None
                  ) -> tuple[Batch | None, Batch | None, bool]:
        """Close one page of a newest-first walk: give it the cursor that holds once it is stored
        (the new since_id only when the walk is complete, else where to resume), merge it into the
        pending batch, and say whether a batch is ready and whether the walk stops here."""
        if done:
            batch.cursor = self._snapshot(key, {"since_id": newest or since})
        else:
            batch.cursor = self._snapshot(key, {"since_id": since, "walk": {"max_id": walk_max, "newest": newest}})
        stop = done or bool(self.options.max_pages and pages >= self.options.max_pages)
        pending = self._merge(pending, batch)
        ready = None
        if stop or pages % self.options.pages_per_batch == 0:
            pending.requests = self._counter.take()
            ready, pending = pending, None
        if stop and not done:
            log.info("%s: %s: stopped after max_pages=%d; the next run continues the walk",
                     self.name, label, self.options.max_pages)
        return pending, ready, stop

    def _checked(self, reply: Any, statuses: list[Any], label: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """(id, status) for each status of a page; a broken one is a malformed-reply error."""
        for status in statuses:
            try:
                check_status(status, label)
            except ValueError as exc:
                raise self._malformed(reply, str(exc)) from None
            yield str(status["id"]), status

    def _timeline(self, key: str, label: str, fetch: Callable[..., Any]) -> Iterator[Batch]:
        server = self._server(self.options.instance)
        state = self.cursor.get(key) or {}
        since: str | None = state.get("since_id")
        walk: dict[str, Any] = state.get("walk") or {}
        newest: str | None = walk.get("newest")
        params: dict[str, Any] = {"limit": self.options.page_limit}
        if since:
            params["since_id"] = since
        if walk.get("max_id"):
            params["max_id"] = walk["max_id"]
        reply = server.call(label, fetch, **params)
        pages = 0
        pending: Batch | None = None
        while True:
            statuses = reply.raw
            if not isinstance(statuses, list):
                raise self._malformed(reply, f"{label}: expected a list of statuses")
            batch = Batch(fetched=len(statuses))
            reached_known = False
            oldest: str | None = None
            for sid, status in self._checked(reply, statuses, label):
                if since and id_key(sid) <= id_key(since):
                    reached_known = True  # a later page without since_id reached stored ground
                    continue
                newest, oldest = _newer(newest, sid), _older(oldest, sid)
                self._add(batch, to_record(status, server.site))
            pages += 1
            has_next = getattr(reply.value, "_pagination_next", None) is not None
            done = not statuses or reached_known or not has_next or oldest is None
            pending, ready, stop = self._end_page(key, label, batch, pending, pages, done, since, newest, oldest)
            if ready is not None:
                yield ready
            if stop:
                return
            reply = server.call(f"{label} (next page)", server.client.fetch_next, reply.value)

    def _account(self, acct: str) -> Iterator[Batch]:
        server = self._server(self.options.instance)
        try:
            reply = server.call(f"account lookup {acct}", server.client.account_lookup, acct)
        except Gone:
            yield self._problem(f"account {acct}: not found on {server.site} (404)")
            return
        if not isinstance(reply.raw, dict) or not reply.raw.get("id"):
            raise self._malformed(reply, f"account lookup {acct}: expected an account with an id")
        fetch = partial(server.client.account_statuses, str(reply.raw["id"]), exclude_reblogs=True)
        yield from self._timeline(f"account:{acct}", f"statuses of {acct}", fetch)

    # -- search -----------------------------------------------------------------------

    def _search(self, query: str) -> Iterator[Batch]:
        """v2 search has no Link header: page backwards with max_id, bounded below by
        min_id = the newest status stored by the last complete walk."""
        server = self._server(self.options.instance)
        key = f"search:{query}"
        label = f"search {query!r}"
        state = self.cursor.get(key) or {}
        since: str | None = state.get("since_id")
        walk: dict[str, Any] = state.get("walk") or {}
        max_id: str | None = walk.get("max_id")
        newest: str | None = walk.get("newest")
        resolve = server.has_token and self.options.search_resolve
        pages = 0
        pending: Batch | None = None
        while True:
            params: dict[str, Any] = {"resolve": resolve, "result_type": "statuses",
                                      "exclude_unreviewed": False, "limit": self.options.page_limit}
            if max_id:
                params["max_id"] = max_id
            if since:
                params["min_id"] = since
            try:
                reply = server.call(label, server.client.search_v2, query, **params)
            except MastodonVersionError:
                log.warning("%s: %s: %s did not report a Mastodon version (2.8+ is needed to page "
                            "search results); stopping here", self.name, label, server.site)
                if pending is not None:
                    pending.requests = self._counter.take()
                    yield pending
                return
            statuses = reply.raw.get("statuses") if isinstance(reply.raw, dict) else None
            if not isinstance(statuses, list):
                raise self._malformed(reply, f"{label}: expected an object with a 'statuses' list")
            batch = Batch(fetched=len(statuses))
            fresh = 0
            page_max = max_id
            for sid, status in self._checked(reply, statuses, label):
                if (since and id_key(sid) <= id_key(since)) or (page_max and id_key(sid) >= id_key(page_max)):
                    continue
                fresh += 1
                newest, max_id = _newer(newest, sid), _older(max_id, sid)
                self._add(batch, to_record(status, server.site))
            pages += 1
            done = fresh == 0
            pending, ready, stop = self._end_page(key, label, batch, pending, pages, done, since, newest, max_id)
            if ready is not None:
                yield ready
            if stop:
                return
