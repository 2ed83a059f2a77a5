"""A small polite HTTP client shared by the network sources.

What every source gets from it:

* an identifying ``User-Agent`` (``[http].user_agent``);
* at most ``max_concurrency_per_host`` requests in flight per host and at least ``delay_s``
  seconds between two requests to the same host (raised to a robots.txt ``Crawl-delay``);
* HTTP 429: wait for ``X-RateLimit-Reset`` / ``X-Rate-Limit-Reset`` / ``RateLimit-Reset``
  (epoch seconds, seconds from now, or ISO 8601) or ``Retry-After`` (seconds or an HTTP
  date), else exponential backoff; never longer than ``max_wait_s`` in one go;
* a response that says the quota is used up (``x-rate-limit-remaining: 0``) makes the next
  request to that host wait for the reset, again bounded by ``max_wait_s``;
* 5xx, timeouts and connection errors: ``max_retries`` retries with exponential backoff;
* then a ``SourceError`` that names the source, the URL (secrets removed) and the problem;
* ``json_of`` / ``html_of`` that turn malformed payloads into a clear ``SourceError``;
* robots.txt for HTML pages (fetched once per host through the same client);
* a request counter for ``Batch.requests``.

Secrets (e.g. a bearer token) are passed as ``secret_headers``: they are sent, but they never
appear in log lines, exception messages or ``repr``.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import ssl
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from urllib.robotparser import RobotFileParser

import httpx

from flows.sources.base import SourceError

log = logging.getLogger("framewatch.http")

# Tests replace this to record waits instead of sleeping.
sleep = time.sleep

_SECRET_PARAMS = ("token", "key", "secret", "password", "signature", "auth")
_RESET_HEADERS = ("x-ratelimit-reset", "x-rate-limit-reset", "ratelimit-reset")
_REMAINING_HEADERS = ("x-ratelimit-remaining", "x-rate-limit-remaining", "ratelimit-remaining")


def redact_url(url: str | httpx.URL) -> str:
    """The URL with the values of secret-looking query parameters replaced by ``***``."""
    parts = urlsplit(str(url))
    if not parts.query:
        return str(url)
    query = [
        (k, "***" if any(word in k.lower() for word in _SECRET_PARAMS) else v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit(parts._replace(query=urlencode(query, safe="[]:,/*")))


def host_of(url: str) -> str:
    """``site`` for a URL: its host (with a non-default port), lower case, no user info."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    port = parts.port
    if port and not ((parts.scheme == "http" and port == 80) or (parts.scheme == "https" and port == 443)):
        return f"{host}:{port}"
    return host


def require_http_url(value: str) -> str:
    """A base URL from the config: http(s) with a host, without a trailing slash."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{value!r} is not an http(s) URL")
    return value.rstrip("/")


def parse_reset(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait according to a rate-limit reset header value.

    Accepts epoch seconds (``1665183229``, also with a fraction), a number of seconds from now
    (small numbers, as in the IETF ``RateLimit-Reset`` draft), an ISO 8601 time (Mastodon) or an
    HTTP date. ``None`` if the value is absent or unreadable.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    now = time.time() if now is None else now
    try:
        # "1665183229" (a repeated header arrives joined: "1665183229, 1665183229")
        number = float(value.split(",")[0].strip())
    except ValueError:
        number = None
    if number is not None:
        # Epoch seconds are ~1.7e9; anything below a year of seconds is relative.
        return max(0.0, number - now) if number > 10**8 else max(0.0, number)
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=timezone.utc)
        return max(0.0, stamp.timestamp() - now)
    except ValueError:
        pass
    return _seconds_until_http_date(value, now)


def _seconds_until_http_date(value: str, now: float) -> float | None:
    """Seconds from ``now`` to an HTTP date (RFC 9110), or None if it is not one."""
    try:
        stamp = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if stamp is None:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone.utc)
    return max(0.0, stamp.timestamp() - now)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After``: delta seconds or an HTTP date."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    return _seconds_until_http_date(value, time.time() if now is None else now)


@dataclass
class _HostGate:
    """Per-host politeness state, shared by every client in the process."""

    limit: int
    semaphore: threading.BoundedSemaphore = field(init=False)
    lock: threading.Lock = field(default_factory=threading.Lock)
    last_request: float = 0.0
    blocked_until: float = 0.0  # wall clock: the quota is used up until then
    crawl_delay: float = 0.0

    def __post_init__(self) -> None:
        self.semaphore = threading.BoundedSemaphore(max(1, self.limit))


_SSL: ssl.SSLContext | None = None


def _ssl_context() -> ssl.SSLContext:
    """One verifying TLS context per process (building one costs ~0.1 s)."""
    global _SSL
    if _SSL is None:
        import certifi

        _SSL = ssl.create_default_context(cafile=certifi.where())
    return _SSL


_GATES: dict[str, _HostGate] = {}
_GATES_LOCK = threading.Lock()


def _gate(host: str, limit: int) -> _HostGate:
    with _GATES_LOCK:
        gate = _GATES.get(host)
        if gate is None:
            gate = _GATES[host] = _HostGate(limit)
        return gate


class PoliteClient:
    """One per collector run: ``with PoliteClient(name, context.http) as client: ...``."""

    def __init__(self, source: str, http: Any, *, headers: dict[str, str] | None = None,
                 secret_headers: dict[str, str] | None = None, robots: bool = True,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.source = source
        self.cfg = http
        self.user_agent: str = http.user_agent
        self.robots_enabled = robots
        self.requests = 0
        self._reported = 0
        self._robots: dict[str, RobotFileParser] = {}
        base_headers = {"User-Agent": self.user_agent, "Accept-Encoding": "gzip, deflate"}
        base_headers.update(headers or {})
        base_headers.update(secret_headers or {})
        self._client = httpx.Client(
            headers=base_headers,
            timeout=httpx.Timeout(http.timeout_s),
            follow_redirects=True,
            verify=_ssl_context(),
            transport=transport,
        )

    def __repr__(self) -> str:  # never show headers (they may hold a token)
        return f"PoliteClient(source={self.source!r}, requests={self.requests})"

    def __enter__(self) -> "PoliteClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def take_requests(self) -> int:
        """Requests made since the last call (for ``Batch.requests``)."""
        count, self._reported = self.requests - self._reported, self.requests
        return count

    # -- errors -------------------------------------------------------------------------

    def error(self, problem: str, url: str | httpx.URL | None = None, **kwargs: Any) -> SourceError:
        return SourceError(self.source, problem, url=redact_url(url) if url is not None else None, **kwargs)

    # -- waiting ------------------------------------------------------------------------

    def _backoff(self, attempt: int) -> float:
        base = self.cfg.backoff_base_s * (2 ** attempt)
        return min(self.cfg.max_wait_s, base * (1 + random.random() * 0.1))

    def _wait_turn(self, gate: _HostGate, url: str) -> None:
        with gate.lock:
            now = time.time()
            blocked = gate.blocked_until - now
            if blocked > self.cfg.max_wait_s:
                resume = datetime.fromtimestamp(gate.blocked_until, timezone.utc).isoformat(timespec="seconds")
                raise self.error(
                    f"rate limit used up until {resume} ({blocked:.0f}s), longer than "
                    f"http.max_wait_s={self.cfg.max_wait_s:g}s; what was collected is stored, "
                    "the next run resumes", url)
            delay = max(self.cfg.delay_s, gate.crawl_delay)
            pause = max(blocked, gate.last_request + delay - time.monotonic() if gate.last_request else 0.0)
            if pause > 0:
                log.debug("%s: waiting %.2fs before %s", self.source, pause, redact_url(url))
                sleep(pause)
            gate.last_request = time.monotonic()

    def _note_quota(self, gate: _HostGate, response: httpx.Response) -> None:
        remaining = next((response.headers.get(h) for h in _REMAINING_HEADERS if h in response.headers), None)
        if remaining is None:
            return
        try:
            if int(float(remaining.split(",")[0])) > 0:
                return
        except ValueError:
            return
        wait = next((parse_reset(response.headers.get(h)) for h in _RESET_HEADERS if h in response.headers), None)
        if wait:
            gate.blocked_until = max(gate.blocked_until, time.time() + wait)

    def _rate_limit_wait(self, response: httpx.Response, attempt: int) -> tuple[float, str]:
        for header in _RESET_HEADERS:
            wait = parse_reset(response.headers.get(header))
            if wait is not None:
                return wait, f"{header} header"
        wait = parse_retry_after(response.headers.get("retry-after"))
        if wait is not None:
            return wait, "Retry-After header"
        return self._backoff(attempt), "backoff"

    # -- requests -----------------------------------------------------------------------

    def get(self, url: str, *, params: dict[str, Any] | list[tuple[str, Any]] | None = None,
            headers: dict[str, str] | None = None, allow_status: Iterable[int] = ()) -> httpx.Response:
        """GET with politeness and retries. Returns 2xx responses and those in ``allow_status``;
        raises ``SourceError`` for anything else once retries are spent."""
        allowed = set(allow_status)
        try:
            request_url = httpx.URL(url).copy_merge_params(params) if params else httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise self.error(f"invalid URL ({exc})", url, fatal_config=True) from None
        gate = _gate(host_of(str(request_url)), self.cfg.max_concurrency_per_host)
        max_retries = max(0, int(self.cfg.max_retries))
        attempt = 0
        while True:
            self._wait_turn(gate, str(request_url))
            try:
                with gate.semaphore:
                    self.requests += 1
                    response = self._client.get(request_url, headers=headers)
            except httpx.TimeoutException:
                problem = f"timed out after {self.cfg.timeout_s:g}s"
            except (httpx.TooManyRedirects, httpx.UnsupportedProtocol) as exc:
                raise self.error(f"{type(exc).__name__}: {exc}", request_url) from None
            except httpx.TransportError as exc:
                problem = f"connection failed ({type(exc).__name__})"
            else:
                problem = None
            if problem is not None:
                if attempt < max_retries:
                    wait = self._backoff(attempt)
                    log.info("%s: %s for %s; retry %d/%d in %.2fs", self.source, problem,
                             redact_url(request_url), attempt + 1, max_retries, wait)
                    sleep(wait)
                    attempt += 1
                    continue
                raise self.error(f"{problem} ({attempt + 1} attempts)", request_url)

            self._note_quota(gate, response)
            status = response.status_code
            if status == 429:
                wait, why = self._rate_limit_wait(response, attempt)
                if wait > self.cfg.max_wait_s:
                    raise self.error(
                        f"rate limited (HTTP 429); the server asks to wait {wait:.0f}s ({why}), longer than "
                        f"http.max_wait_s={self.cfg.max_wait_s:g}s", request_url)
                if attempt >= max_retries:
                    raise self.error(f"still rate limited (HTTP 429) after {attempt + 1} attempts", request_url)
                log.info("%s: HTTP 429 for %s; waiting %.2fs (%s)", self.source, redact_url(request_url), wait, why)
                response.close()
                sleep(wait)
                gate.blocked_until = min(gate.blocked_until, time.time())  # that wait covered the reset
                attempt += 1
                continue
            if status >= 500 and status not in allowed:
                if attempt < max_retries:
                    wait = parse_retry_after(response.headers.get("retry-after"))
                    wait = min(wait, self.cfg.max_wait_s) if wait is not None else self._backoff(attempt)
                    log.info("%s: HTTP %d for %s; retry %d/%d in %.2fs", self.source, status,
                             redact_url(request_url), attempt + 1, max_retries, wait)
                    response.close()
                    sleep(wait)
                    attempt += 1
                    continue
                raise self.error(f"HTTP {status} {response.reason_phrase} after {attempt + 1} attempts",
                                 request_url)
            if 200 <= status < 300 or status in allowed:
                return response
            raise self.error(f"HTTP {status} {response.reason_phrase}{_api_detail(response)}", request_url)

    # -- payloads -----------------------------------------------------------------------

    def json_of(self, response: httpx.Response) -> Any:
        """The JSON body, or a SourceError saying what came instead."""
        url = response.request.url
        ctype = response.headers.get("content-type", "")
        text = response.text.lstrip("\ufeff")
        if not text.strip():
            raise self.error("empty response where JSON was expected", url)
        if text.lstrip()[:1] == "<":  # decided by the body: some servers label JSON text/html
            raise self.error(f"expected JSON but got HTML (content-type {ctype or 'missing'})", url)
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise self.error(f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", url) from None

    def html_of(self, response: httpx.Response):
        """The parsed HTML page, or a SourceError if the body is not an HTML document."""
        from selectolax.lexbor import LexborHTMLParser

        url = response.request.url
        ctype = response.headers.get("content-type", "").lower()
        text = response.text.lstrip("\ufeff")
        head = text.lstrip()[:1]
        if not text.strip():
            raise self.error("empty response where an HTML page was expected", url)
        if "json" in ctype or (head in ("{", "[") and "html" not in ctype):
            raise self.error(f"expected an HTML page but got JSON (content-type {ctype or 'missing'})", url)
        sample = text[:200000].lower()
        if head != "<" or not any(tag in sample for tag in ("<html", "<body", "<div", "<p", "<article", "<head")):
            raise self.error("malformed HTML: the body is not an HTML document "
                             f"(content-type {ctype or 'missing'})", url)
        return LexborHTMLParser(text)

    # -- robots.txt ---------------------------------------------------------------------

    def robots_allows(self, url: str) -> bool:
        """Whether robots.txt of the URL's host lets this user agent fetch it (RFC 9309: a
        missing robots.txt (4xx) allows everything; 5xx after retries is an error)."""
        if not self.robots_enabled:
            return True
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        parser = self._robots.get(origin)
        if parser is None:
            parser = RobotFileParser(origin + "/robots.txt")
            response = self.get(origin + "/robots.txt", allow_status=range(400, 500))
            if 200 <= response.status_code < 300:
                parser.parse(response.text.splitlines())
            else:
                parser.allow_all = True
            parser.modified()
            self._robots[origin] = parser
            delay = parser.crawl_delay(self.user_agent)
            if delay:
                gate = _gate(host_of(url), self.cfg.max_concurrency_per_host)
                gate.crawl_delay = min(float(delay), self.cfg.max_wait_s)
        return parser.can_fetch(self.user_agent, url)


def _api_detail(response: httpx.Response) -> str:
    """A short reason from an API error body (never headers), e.g. ``: rest_no_route``."""
    try:
        body = response.json()
    except Exception:
        return ""
    if isinstance(body, dict):
        for key in ("detail", "title", "message", "error", "code", "errors"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return f": {value[:200]}"
            if isinstance(value, list) and value:
                first = value[0]
                if isinstance(first, dict):
                    text = first.get("message") or first.get("detail") or first.get("title")
                    if text:
                        return f": {str(text)[:200]}"
                elif isinstance(first, str):
                    return f": {first[:200]}"
    return ""


class _RedactUrls(logging.Filter):
    """httpx logs every request URL at INFO: keep secret query values out of those lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, httpx.URL) for a in record.args):
            record.args = tuple(redact_url(a) if isinstance(a, httpx.URL) else a for a in record.args)
        return True


if not any(isinstance(f, _RedactUrls) for f in logging.getLogger("httpx").filters):
    logging.getLogger("httpx").addFilter(_RedactUrls())
