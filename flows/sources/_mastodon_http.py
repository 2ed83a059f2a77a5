"""HTTP plumbing for the Mastodon source: one Mastodon.py client per server, with our own
rate-limit waits, bounded retries and error messages.

Mastodon.py runs with ``ratelimit_method="throw"`` so that waiting is decided here, bounded
by ``http.max_wait_s``, and never blocks for minutes inside the library. A small
``requests.Session`` subclass sits under the client: it spaces requests (``delay_s``), counts
them, and remembers the last URL and response, because Mastodon.py's exceptions carry neither
the ``Retry-After``/``X-RateLimit-Reset`` headers nor the URL, and because we keep the
payload exactly as the server sent it (Mastodon.py turns timestamps into ``datetime``s).

The access token lives only inside the client for the configured instance. It is sent to
no other server, and every message that could echo server text is scrubbed of it.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Callable

import dateutil.parser
import requests
from mastodon import Mastodon
from mastodon.errors import (
    MastodonAPIError,
    MastodonNetworkError,
    MastodonNotFoundError,
    MastodonRatelimitError,
    MastodonServerError,
    MastodonUnauthorizedError,
)

from flows.sources._http import host_of, parse_reset, parse_retry_after
from flows.sources.base import SourceError

log = logging.getLogger("framewatch.sources.mastodon")

REDACTED = "[redacted]"


class Scrubber:
    """Removes the token from any text before it reaches a log line or an exception."""

    def __init__(self, secret: str | None):
        self.secret = secret or None

    def __call__(self, text: Any) -> str:
        text = str(text)
        if self.secret and self.secret in text:
            text = text.replace(self.secret, REDACTED)
        return text


@dataclass
class Counter:
    """Requests made by every client of one collector run (for ``Batch.requests``)."""

    total: int = 0
    reported: int = 0

    def take(self) -> int:
        new = self.total - self.reported
        self.reported = self.total
        return new


class _Session(requests.Session):
    """A session that spaces requests, counts them and remembers the last exchange.

    When a reply says the quota is used up (``X-RateLimit-Remaining: 0``), the next request
    waits for ``X-RateLimit-Reset`` (at most ``max_wait_s``) instead of running into a 429.
    """

    def __init__(self, counter: Counter, delay_s: float, max_wait_s: float):
        super().__init__()
        self.counter = counter
        self.delay_s = delay_s
        self.max_wait_s = max_wait_s
        self.last_url: str | None = None
        self.last_response: requests.Response | None = None
        self._last_at: float | None = None
        self._quota_back_at: float | None = None

    def request(self, method, url, *args, **kwargs):  # type: ignore[override]
        if self._quota_back_at is not None:
            pause = self._quota_back_at - time.monotonic()
            self._quota_back_at = None
            if pause > 0:
                log.info("rate-limit quota used up; waiting %.2fs for it to reset", pause)
                time.sleep(pause)
        if self.delay_s and self._last_at is not None:
            pause = self.delay_s - (time.monotonic() - self._last_at)
            if pause > 0:
                time.sleep(pause)
        try:
            self.last_url = requests.Request(method, url, params=kwargs.get("params")).prepare().url
        except Exception:  # an unpreparable URL: requests will say so itself
            self.last_url = url
        self.last_response = None
        self.counter.total += 1
        try:
            response = super().request(method, url, *args, **kwargs)
        finally:
            self._last_at = time.monotonic()
        _tidy_headers(response)
        self.last_response = response
        if response.status_code != 429 and response.headers.get("X-RateLimit-Remaining", "").strip() == "0":
            wait = parse_reset(response.headers.get("X-RateLimit-Reset"), now=_server_now(response.headers))
            if wait:
                self._quota_back_at = time.monotonic() + min(wait, self.max_wait_s)
        return response


def _tidy_headers(response: requests.Response) -> None:
    """Keep one readable ``Date`` and ``X-RateLimit-Reset``.

    A proxy (or a server adding its own ``Date`` to a cached reply) can send a header twice;
    requests joins the copies with ", " and Mastodon.py then fails on an ordinary reply while
    reading its rate-limit headers. The first copy Mastodon.py can read wins; if none can be
    read the header is dropped (the reply itself is fine).
    """
    headers = response.headers
    date = headers.get("Date")
    if date and not _readable(date):
        copies = [part.strip() for part in re.split(r"(?<=GMT),", date)]
        keep = next((c for c in copies if _readable(c)), None)
        if keep:
            headers["Date"] = keep
        else:
            del headers["Date"]
    reset = headers.get("X-RateLimit-Reset")
    if reset and not reset.strip().isdigit() and not _readable(reset):
        keep = next((c.strip() for c in reset.split(",") if c.strip().isdigit() or _readable(c.strip())), None)
        if keep:
            headers["X-RateLimit-Reset"] = keep
        else:
            del headers["X-RateLimit-Reset"]


def _readable(value: str) -> bool:
    """Whether Mastodon.py (which uses dateutil) can read this time."""
    try:
        dateutil.parser.parse(value)
    except (ValueError, OverflowError, TypeError):
        return False
    return True


@dataclass
class Reply:
    """What a call returned: Mastodon.py's object (for paging) and the JSON as received."""

    value: Any
    raw: Any
    url: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class _PlainMastodon(Mastodon):
    """Mastodon.py without its typed-entity conversion.

    Mastodon.py turns every reply into typed entities (recursively, with datetimes), which
    costs about 20 ms per status; we keep the JSON exactly as received and never use those
    objects. Its private cast hook is replaced by a no-op: lists still become paginatable
    (Link headers keep working, Mastodon.py wraps them itself) and objects stay plain dicts
    that accept pagination attributes. Should a future Mastodon.py rename the hook, this
    override is simply unused and only speed is lost.
    """

    def _Mastodon__try_cast_to_type(self, value, override_type=None):  # noqa: N802 (Mastodon.py's name)
        if type(value) is dict:
            value = _Plain(value)
        return value, None


class _Plain(dict):
    """A JSON object as received that, like Mastodon.py's entities, also reads keys as
    attributes (Mastodon.py does so internally) and can carry its paging attributes."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class Gone(Exception):
    """The server answered 404 or 410: the thing asked for does not exist (any more)."""


class Refused(Exception):
    """The server wants a token (401/403) for this request."""

    def __init__(self, status: int, url: str | None, with_token: bool = False):
        self.status = status
        self.url = url
        self.with_token = with_token
        super().__init__(f"HTTP {status}")


class Server:
    """One Mastodon server, reached through Mastodon.py with our retry policy."""

    def __init__(self, source: str, base_url: str, *, token: str | None, http: Any, delay_s: float,
                 counter: Counter, scrub: Scrubber):
        self.source = source
        self.base_url = base_url.rstrip("/")
        self.site = host_of(self.base_url)
        self.has_token = bool(token)
        self.http = http
        self.scrub = scrub
        self.session = _Session(counter, delay_s, float(http.max_wait_s))
        self.client = _PlainMastodon(
            api_base_url=self.base_url,
            access_token=token or None,
            version_check_mode="none",
            ratelimit_method="throw",
            request_timeout=float(http.timeout_s),
            user_agent=http.user_agent,
            session=self.session,
        )

    # -- the one place every request goes through -------------------------------------

    def call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Reply:
        """Run ``fn`` (a Mastodon.py method) with waits and retries; raise SourceError,
        ``Gone`` (404/410) or ``Refused`` (401/403) when it cannot succeed."""
        max_retries = max(0, int(self.http.max_retries))
        budget = float(self.http.max_wait_s)
        waited = 0.0
        failures = 0
        limited = 0
        while True:
            try:
                value = fn(*args, **kwargs)
            except MastodonRatelimitError as exc:
                response = self.session.last_response
                if response is not None and response.status_code != 429:
                    # Mastodon.py could not read the rate-limit headers of an ordinary reply.
                    raise SourceError(self.source, f"unreadable rate-limit headers in the reply to {what}: "
                                      f"{self.scrub(exc)}", url=self._url()) from None
                limited += 1
                wait, why = self._ratelimit_wait(limited)
                url = self._url()
                if limited > max_retries + 1 or waited + wait > budget:
                    raise SourceError(
                        self.source,
                        f"rate limited while fetching {what} (HTTP 429); the server asks to wait "
                        f"{wait:.1f}s ({why}), beyond http.max_wait_s={budget:g}s after {waited:.1f}s "
                        f"already waited; the next run resumes from the stored cursor",
                        url=url,
                    ) from None
                log.warning("%s: rate limited on %s; waiting %.2fs (%s)", self.source, self.site, wait, why)
                time.sleep(wait)
                waited += wait
                continue
            except MastodonNotFoundError:
                raise Gone(self._url()) from None
            except MastodonUnauthorizedError:
                raise Refused(401, self._url(), self.has_token) from None
            except (MastodonServerError, MastodonNetworkError) as exc:
                failures += 1
                problem = self._describe_failure(exc)
                url = self._url()
                wait = float(self.http.backoff_base_s) * (2 ** (failures - 1))
                if failures > max_retries or waited + wait > budget:
                    tries = "attempt" if failures == 1 else "attempts"
                    raise SourceError(self.source, f"{problem} while fetching {what}, after {failures} {tries}",
                                      url=url) from None
                log.warning("%s: %s from %s (attempt %d of %d); retrying in %.2fs",
                            self.source, problem, self.site, failures, max_retries + 1, wait)
                time.sleep(wait)
                waited += wait
                continue
            except MastodonAPIError as exc:
                status = _status_of(exc)
                url = self._url()
                if status in (404, 410):
                    raise Gone(url) from None
                if status in (401, 403):
                    raise Refused(status, url, self.has_token) from None
                if status is None and "parse response as JSON" in str(exc.args[0] if exc.args else ""):
                    raise SourceError(self.source, f"malformed JSON in the reply to {what}: "
                                      f"{self._body_hint()}", url=url) from None
                raise SourceError(self.source, f"HTTP {status or '?'} while fetching {what}: "
                                  f"{self.scrub(_error_text(exc))}", url=url) from None
            return self._reply(what, value)

    def _reply(self, what: str, value: Any) -> Reply:
        response = self.session.last_response
        url = self._url()
        if response is None:
            raise SourceError(self.source, f"no response recorded for {what}", url=url)
        try:
            raw = json.loads(response.content)  # JSON is UTF-8 (RFC 8259), whatever Content-Type says
        except ValueError:
            raise SourceError(self.source, f"malformed JSON in the reply to {what}: {self._body_hint()}",
                              url=url) from None
        return Reply(value=value, raw=raw, url=url)

    # -- helpers ------------------------------------------------------------------------

    def _url(self) -> str | None:
        return self.scrub(self.session.last_url) if self.session.last_url else None

    def _body_hint(self) -> str:
        response = self.session.last_response
        if response is None:
            return "no body"
        body = response.content or b""
        try:
            json.loads(body)
        except ValueError as exc:
            where = f"{exc.msg} at line {exc.lineno} column {exc.colno}" if hasattr(exc, "msg") else str(exc)
        else:
            where = "unexpected shape"
        snippet = body[:80].decode("utf-8", errors="replace")
        return f"{where} (HTTP {response.status_code}, {len(body)} bytes, starts {self.scrub(snippet)!r})"

    def _describe_failure(self, exc: Exception) -> str:
        if isinstance(exc, MastodonServerError):
            status = _status_of(exc)
            reason = exc.args[2] if len(exc.args) > 2 and exc.args[2] else ""
            return f"HTTP {status} {reason}".strip()
        text = str(exc)
        if "timed out" in text.lower() or "timeout" in text.lower():
            return f"no reply within http.timeout_s={float(self.http.timeout_s):g}s"
        return f"network error ({self.scrub(text)[:200]})"

    def _ratelimit_wait(self, attempt: int) -> tuple[float, str]:
        """Seconds to wait after a 429: X-RateLimit-Reset, else Retry-After, else backoff."""
        response = self.session.last_response
        headers = response.headers if response is not None else {}
        now = _server_now(headers)
        reset = parse_reset(headers.get("X-RateLimit-Reset"), now=now)
        if reset:
            return reset + 0.05, f"X-RateLimit-Reset {headers.get('X-RateLimit-Reset')}"
        retry_after = parse_retry_after(headers.get("Retry-After"), now=now)
        if retry_after is not None:
            return retry_after, f"Retry-After {headers.get('Retry-After')}"
        wait = float(self.http.backoff_base_s) * (2 ** (attempt - 1))
        return wait, "no reset time given; exponential backoff"


def _server_now(headers: Any) -> float:
    """The server's clock when it differs from ours by more than the one-second resolution of
    ``Date``: reset times are the server's, so waits are computed on its clock."""
    now = time.time()
    try:
        server = parsedate_to_datetime(headers.get("Date")).timestamp()
    except (TypeError, ValueError, IndexError, AttributeError):
        return now
    return server if abs(now - server) > 2 else now


def _status_of(exc: Exception) -> int | None:
    return exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else None


def _error_text(exc: Exception) -> str:
    if len(exc.args) > 3 and exc.args[3]:
        return str(exc.args[3])
    return str(exc.args[0]) if exc.args else type(exc).__name__
