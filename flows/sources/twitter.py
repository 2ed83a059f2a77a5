"""Twitter/X (``type = "twitter"``): API v2 recent search, whole conversations, and imports of
twarc2 JSONL files and account archives - one source type, configured by which keys are set.

API (needs a bearer token in the environment variable named by ``token_env``):

* ``query = "..."`` / ``queries = [...]``: ``GET /2/tweets/search/recent`` (last 7 days);
* ``conversations = ["<tweet id>", ...]``: the same search for ``conversation_id:<id>``, plus
  the conversation's first tweet (``GET /2/tweets?ids=<id>``) on the first run.

Pages follow ``meta.next_token``; every page is a batch whose cursor says where to resume,
and when a query is complete its cursor becomes ``since_id`` = the newest id seen, so the
next run asks only for newer tweets. ``x-rate-limit-remaining: 0`` makes the client wait
for ``x-rate-limit-reset`` (at most ``[http].max_wait_s``; beyond that the run stops with what
it has and resumes from the stored cursor). Requested fields: ``created_at, author_id,
conversation_id, in_reply_to_user_id, referenced_tweets, lang, edit_history_tweet_ids,
note_tweet`` with ``expansions=author_id,referenced_tweets.id``; authors and referenced
tweets come from ``includes``. parent = the ``replied_to`` tweet, thread = ``conversation_id``,
author = ``username``. Replied-to tweets found in ``includes`` are stored too
(``include_referenced``).

Files (no network, no token): ``files = [...]`` with ``format``:

* ``"twarc2"``: JSONL as written by twarc2 - a line is an API page (``data`` is a list), a
  stream message (``data`` is one tweet) or a flattened tweet (``twarc2 flatten``);
* ``"archive"``: ``data/tweets.js`` of an account archive (``window.YTD.tweets.part0 = [...]``);
  the author is ``archive_username`` or read from ``account.js`` beside it;
* ``"auto"`` (default): ``archive`` for ``*.js`` files starting with ``window.YTD``, else twarc2.

A bad line is reported as ``file:line: reason`` (the run becomes partial) and the valid
lines are stored. A file imported before and unchanged (same SHA-256) is skipped.

Ids: ``native_id`` is the tweet id - for an edited tweet the id of its first version
(``edit_history_tweet_ids[0]``), so edits update one row and keep the old text in history.
``site`` is ``twitter.com`` whatever the ``base_url``, so imports and API runs meet.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal

from pydantic import Field, field_validator, model_validator

from flows.sources import register
from flows.sources._dates import parse_iso, parse_twitter_classic
from flows.sources._http import PoliteClient
from flows.sources.base import BaseCollector, Batch, PostRecord, SourceError, SourceOptions

log = logging.getLogger("framewatch.sources.twitter")

PLATFORM = "twitter"
TWEET_FIELDS = ("created_at,author_id,conversation_id,in_reply_to_user_id,referenced_tweets,lang,"
                "edit_history_tweet_ids,note_tweet")
EXPANSIONS = "author_id,referenced_tweets.id"
USER_FIELDS = "username,name"
_ARCHIVE_PREFIX = re.compile(r"^\s*window\.YTD\.[\w.]+\s*=\s*")
_TWEPOCH_MS = 1288834974657
_FILE_BATCH = 2000


class TwitterOptions(SourceOptions):
    query: str | None = None
    queries: list[str] = Field(default_factory=list)
    conversations: list[str | int] = Field(default_factory=list)
    token_env: str = "TWITTER_BEARER_TOKEN"
    base_url: str = "https://api.twitter.com"
    max_results: int = Field(100, ge=10, le=100)
    max_pages: int | None = Field(None, ge=1)
    include_referenced: bool = True
    include_retweets: bool = True
    files: list[Path] = Field(default_factory=list)
    format: Literal["auto", "twarc2", "archive"] = "auto"
    archive_username: str | None = None
    site: str = "twitter.com"

    @field_validator("conversations")
    @classmethod
    def _numeric(cls, value: list[str | int]) -> list[str | int]:
        for item in value:
            if not str(item).strip().isdigit():
                raise ValueError(f"{item!r} is not a tweet id")
        return value

    @model_validator(mode="after")
    def _something(self) -> "TwitterOptions":
        if not (self.query or self.queries or self.conversations or self.files):
            raise ValueError("set query, queries, conversations or files")
        return self

    def searches(self) -> list[tuple[str, str | None]]:
        """(search query, conversation id or None), without duplicates."""
        out: dict[str, str | None] = {}
        for query in ([self.query] if self.query else []) + list(self.queries):
            out.setdefault(query, None)
        for conv in self.conversations:
            out.setdefault(f"conversation_id:{str(conv).strip()}", str(conv).strip())
        return list(out.items())


class _SinceTooOld(Exception):
    """The API refused since_id as older than the recent-search window."""


def snowflake_time(tweet_id: str) -> datetime | None:
    try:
        value = int(tweet_id)
    except (TypeError, ValueError):
        return None
    if value < 2**32:  # before snowflake ids (2010)
        return None
    return datetime.fromtimestamp(((value >> 22) + _TWEPOCH_MS) / 1000, timezone.utc)


class _Parser:
    """Turns API v2 tweets (+ includes) into PostRecords."""

    def __init__(self, options: TwitterOptions):
        self.options = options
        self.site = options.site

    def record(self, tweet: dict[str, Any], users: dict[str, dict[str, Any]], *,
               from_includes: bool = False) -> PostRecord | None:
        if not isinstance(tweet, dict) or not str(tweet.get("id") or "").strip():
            raise ValueError("tweet without id")
        tweet_id = str(tweet["id"])
        refs = [r for r in tweet.get("referenced_tweets") or [] if isinstance(r, dict)]
        if not self.options.include_retweets and any(r.get("type") == "retweeted" for r in refs):
            return None
        history = [str(i) for i in tweet.get("edit_history_tweet_ids") or []]
        native = history[0] if history else tweet_id
        created = parse_iso(tweet.get("created_at"))
        edited = None
        if native != tweet_id:
            edited, created = created, snowflake_time(native) or created
        author_obj = tweet.get("author") if isinstance(tweet.get("author"), dict) else \
            users.get(str(tweet.get("author_id")))
        username = (author_obj or {}).get("username")
        author = username or (str(tweet["author_id"]) if tweet.get("author_id") else None)
        parent = next((str(r["id"]) for r in refs if r.get("type") == "replied_to" and r.get("id")), None)
        note = tweet.get("note_tweet") if isinstance(tweet.get("note_tweet"), dict) else {}
        text = note.get("text") or tweet.get("text")
        if text is None:
            raise ValueError(f"tweet {tweet_id} has no text")
        lang = tweet.get("lang")
        raw = {k: v for k, v in tweet.items() if k not in ("author", "__twarc")}
        if author_obj:
            raw["framewatch_user"] = {k: author_obj.get(k) for k in ("id", "username", "name") if author_obj.get(k)}
        if from_includes:
            raw["framewatch_from_includes"] = True
        return PostRecord(
            platform=PLATFORM, site=self.site, native_id=native,
            thread_native_id=str(tweet.get("conversation_id") or native),
            parent_native_id=parent if parent != native else None,
            author=author, created_at=created, edited_at=edited, content=text,
            url=f"https://twitter.com/{username or 'i/web'}/status/{tweet_id}",
            lang=None if lang in (None, "", "und", "zxx", "qme", "qht", "qst") else lang,
            raw=raw,
        )

    def page(self, payload: dict[str, Any]) -> tuple[list[PostRecord], list[str]]:
        """Records of an API page / stream message; problems with single tweets as strings."""
        data = payload.get("data")
        tweets = data if isinstance(data, list) else [data] if isinstance(data, dict) else []
        if data is not None and not isinstance(data, (list, dict)):
            raise ValueError("data is neither a list nor a tweet")
        includes = payload.get("includes") if isinstance(payload.get("includes"), dict) else {}
        users = {str(u.get("id")): u for u in includes.get("users") or [] if isinstance(u, dict)}
        included = {str(t.get("id")): t for t in includes.get("tweets") or [] if isinstance(t, dict)}
        records: list[PostRecord] = []
        problems: list[str] = []
        if self.options.include_referenced:
            parents = {str(r.get("id")) for t in tweets if isinstance(t, dict)
                       for r in t.get("referenced_tweets") or []
                       if isinstance(r, dict) and r.get("type") == "replied_to"}
            for parent_id in sorted(parents & set(included)):
                try:
                    record = self.record(included[parent_id], users, from_includes=True)
                except ValueError as exc:
                    problems.append(str(exc))
                    continue
                if record is not None:
                    records.append(record)
        for tweet in tweets:  # after the includes: a tweet in data wins over its included copy
            try:
                record = self.record(tweet, users)
            except ValueError as exc:
                problems.append(str(exc))
                continue
            if record is not None:
                records.append(record)
        return records, problems

    def flattened(self, tweet: dict[str, Any]) -> list[PostRecord]:
        """A ``twarc2 flatten`` line: author and referenced tweets are inlined."""
        records: list[PostRecord] = []
        if self.options.include_referenced:
            for ref in tweet.get("referenced_tweets") or []:
                if isinstance(ref, dict) and ref.get("type") == "replied_to" and ref.get("text") is not None:
                    record = self.record({k: v for k, v in ref.items() if k != "type"}, {}, from_includes=True)
                    if record is not None:
                        records.append(record)
        slim = dict(tweet)
        slim["referenced_tweets"] = [{"type": r.get("type"), "id": r.get("id")}
                                     for r in tweet.get("referenced_tweets") or [] if isinstance(r, dict)]
        record = self.record(slim, {})
        if record is not None:
            records.append(record)
        return records


@register("twitter")
class TwitterCollector(BaseCollector):
    Options = TwitterOptions

    def __init__(self, name: str, options: TwitterOptions, context: Any):
        super().__init__(name, options, context)
        self.parser = _Parser(options)
        self.paths = [self.resolve_path(p) for p in options.files]

    def check(self) -> None:
        if self.options.searches() and not self.context.secret(self.options.token_env):
            raise SourceError(self.name, f"environment variable {self.options.token_env} is not set "
                                         "(a Twitter/X API bearer token is needed for query/conversations)",
                              fatal_config=True)
        for path in self.paths:
            if not path.is_file():
                raise SourceError(self.name, f"{path}: file not found", fatal_config=True)

    def collect(self, cursor: dict[str, Any] | None) -> Iterator[Batch]:
        self.check()
        cursor = cursor or {}
        self.state = {
            "queries": {k: dict(v) for k, v in (cursor.get("queries") or {}).items()},
            "files": dict(cursor.get("files") or {}),
        }
        for path in self.paths:
            yield from self._import(path)
        if self.options.searches():
            token = self.context.secret(self.options.token_env) or ""
            with PoliteClient(self.name, self.context.http, headers={"Accept": "application/json"},
                              secret_headers={"Authorization": f"Bearer {token}"}, robots=False) as client:
                self.client = client
                for query, conversation in self.options.searches():
                    yield from self._search(query, conversation)

    def snapshot(self) -> dict[str, Any]:
        return {"queries": {k: dict(v) for k, v in self.state["queries"].items()},
                "files": dict(self.state["files"])}

    # -- API -----------------------------------------------------------------------------

    def _api(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.options.base_url.rstrip('/')}{path}"
        response = self.client.get(url, params=params, allow_status={400, 401, 403})
        status = response.status_code
        if status == 401:
            raise self.client.error(f"HTTP 401: the bearer token in ${self.options.token_env} was rejected",
                                    response.request.url, fatal_config=True)
        if status in (400, 403):
            try:
                body = response.json()
                detail = body.get("detail") or (body.get("errors") or [{}])[0].get("message") or body.get("title")
            except Exception:
                detail = response.reason_phrase
            if status == 400 and "since_id" in params and "since_id" in response.text:
                raise _SinceTooOld(params["since_id"])
            raise self.client.error(f"HTTP {status}: {str(detail)[:300]}", response.request.url,
                                    fatal_config=status == 400)
        payload = self.client.json_of(response)
        if not isinstance(payload, dict):
            raise self.client.error(f"expected a JSON object, got {type(payload).__name__}", response.request.url)
        if "data" in payload and not isinstance(payload["data"], list):
            raise self.client.error("malformed page: data is not a list", response.request.url)
        return payload

    def _fields(self) -> dict[str, Any]:
        return {"tweet.fields": TWEET_FIELDS, "expansions": EXPANSIONS, "user.fields": USER_FIELDS}

    def _records(self, payload: dict[str, Any], where: str, batch: Batch) -> list[int]:
        records, problems = self.parser.page(payload)
        batch.posts.extend(records)
        batch.fetched += len(payload.get("data") or [])
        batch.errors.extend(f"{where}: {p}" for p in problems)
        return [int(t["id"]) for t in payload.get("data") or []
                if isinstance(t, dict) and str(t.get("id", "")).isdigit()]

    def _search(self, query: str, conversation: str | None) -> Iterator[Batch]:
        qstate = self.state["queries"].setdefault(query, {})
        since = qstate.get("since_id")
        token = qstate.get("next_token")
        newest = int(qstate.get("newest_id") or 0)
        if conversation and not since and not token and not qstate.get("root"):
            batch = Batch()
            payload = self._api("/2/tweets", {"ids": conversation, **self._fields()})
            self._records(payload, f"conversation {conversation}", batch)
            qstate["root"] = True
            batch.cursor = self.snapshot()
            batch.requests = self.client.take_requests()
            yield batch
        pages = 0
        while True:
            params = {"query": query, "max_results": self.options.max_results, **self._fields()}
            if since:
                params["since_id"] = since
            if token:
                params["next_token"] = token
            try:
                payload = self._api("/2/tweets/search/recent", params)
            except _SinceTooOld:
                # Recent search reaches back 7 days and rejects an older since_id: the whole
                # window is new to us then (stored tweets are upserted, not duplicated).
                log.info("%s: since_id %s is outside the search window; searching the whole window",
                         self.name, since)
                since, token, pages = None, None, 0
                continue
            batch = Batch()
            ids = self._records(payload, f"search {query!r}", batch)
            meta = payload.get("meta") if isinstance(payload.get("meta"), dict) else {}
            newest = max([newest, *ids, int(meta["newest_id"]) if str(meta.get("newest_id", "")).isdigit() else 0])
            token = meta.get("next_token")
            pages += 1
            more = bool(token) and (self.options.max_pages is None or pages < self.options.max_pages)
            if token:
                # Resume point: the same since_id with the next page; since_id moves on only at the end.
                qstate.clear()
                qstate.update({"next_token": token, "newest_id": str(newest), "root": True})
                if since:
                    qstate["since_id"] = since
            else:
                qstate.clear()
                qstate.update({"root": True})
                if newest or since:
                    qstate["since_id"] = str(newest) if newest else since
            batch.cursor = self.snapshot()
            batch.requests = self.client.take_requests()
            yield batch
            if not more:
                return

    # -- files ---------------------------------------------------------------------------

    def _import(self, path: Path) -> Iterator[Batch]:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if self.state["files"].get(str(path)) == digest:
            yield Batch(cursor=self.snapshot())
            return
        fmt = self.options.format
        if fmt == "auto":
            head = path.read_text(encoding="utf-8", errors="replace")[:200]
            fmt = "archive" if _ARCHIVE_PREFIX.match(head) else "twarc2"
        items = self._archive(path) if fmt == "archive" else self._twarc2(path)
        batch = Batch()
        for records, problem in items:
            batch.fetched += 1
            if problem:
                batch.errors.append(problem)
            batch.posts.extend(records)
            if len(batch.posts) >= _FILE_BATCH:
                yield batch
                batch = Batch()
        self.state["files"][str(path)] = digest
        batch.cursor = self.snapshot()
        yield batch

    def _twarc2(self, path: Path) -> Iterable[tuple[list[PostRecord], str | None]]:
        with path.open(encoding="utf-8", errors="replace") as handle:
            for line_no, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                where = f"{path}:{line_no}"
                try:
                    payload = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield [], f"{where}: invalid JSON ({exc.msg} at column {exc.colno})"
                    continue
                if not isinstance(payload, dict):
                    yield [], f"{where}: not a JSON object"
                    continue
                try:
                    if "data" in payload:
                        records, problems = self.parser.page(payload)
                        yield records, (f"{where}: " + "; ".join(problems)) if problems else None
                    elif "id" in payload and "text" in payload:
                        yield self.parser.flattened(payload), None
                    elif "errors" in payload:
                        yield [], None  # a page of API errors only (e.g. deleted tweets)
                    else:
                        yield [], f"{where}: neither an API page (data) nor a flattened tweet (id, text)"
                except ValueError as exc:
                    yield [], f"{where}: {exc}"

    def _archive(self, path: Path) -> Iterable[tuple[list[PostRecord], str | None]]:
        text = path.read_text(encoding="utf-8", errors="replace")
        body = _ARCHIVE_PREFIX.sub("", text, count=1)
        offset_lines = text[: len(text) - len(body)].count("\n")
        try:
            items = json.loads(body)
        except json.JSONDecodeError as exc:
            yield [], f"{path}:{exc.lineno + offset_lines}: invalid JSON ({exc.msg} at column {exc.colno})"
            return
        if not isinstance(items, list):
            yield [], f"{path}:1: expected a list of tweets after the window.YTD prefix"
            return
        username = self.options.archive_username or _archive_username(path)
        tweets = [(i, item.get("tweet", item)) for i, item in enumerate(items, start=1) if isinstance(item, dict)]
        parents = {str(t.get("id_str") or t.get("id")): str(t.get("in_reply_to_status_id_str") or "") or None
                   for _, t in tweets if isinstance(t, dict)}
        for index, tweet in tweets:
            where = f"{path}:item {index}"
            if not isinstance(tweet, dict):
                yield [], f"{where}: not a tweet object"
                continue
            tweet_id = str(tweet.get("id_str") or tweet.get("id") or "")
            text_value = tweet.get("full_text") or tweet.get("text")
            if not tweet_id.isdigit() or text_value is None:
                yield [], f"{where}: tweet without id or text"
                continue
            if not self.options.include_retweets and str(text_value).startswith("RT @"):
                yield [], None
                continue
            parent = parents.get(tweet_id)
            thread, seen = tweet_id, {tweet_id}
            while parents.get(thread) and parents[thread] not in seen:
                thread = parents[thread]
                seen.add(thread)
                if thread not in parents:
                    break
            lang = tweet.get("lang")
            yield [PostRecord(
                platform=PLATFORM, site=self.options.site, native_id=tweet_id, thread_native_id=thread,
                parent_native_id=parent, author=username, content=str(text_value),
                created_at=parse_twitter_classic(tweet.get("created_at")) or snowflake_time(tweet_id),
                url=f"https://twitter.com/{username or 'i/web'}/status/{tweet_id}",
                lang=None if lang in (None, "", "und", "zxx", "qme", "qht", "qst") else lang, raw=tweet,
            )], None


def _archive_username(tweets_js: Path) -> str | None:
    account = tweets_js.with_name("account.js")
    if not account.is_file():
        return None
    try:
        items = json.loads(_ARCHIVE_PREFIX.sub("", account.read_text(encoding="utf-8"), count=1))
        return items[0]["account"]["username"]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
