"""A real HTTP server on 127.0.0.1 that replays recorded payloads, for collector tests.

Routes match on path and, optionally, a subset of query parameters. A route can hold a
sequence of responses (e.g. 429 then 200) to inject faults; the last one repeats. Every
request is logged so tests can assert on what the client actually sent.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

SHARED_FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"


@dataclass
class Reply:
    body: bytes | str | Any = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    content_type: str | None = None

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode("utf-8")
        return json.dumps(self.body).encode("utf-8")


@dataclass
class Route:
    method: str
    path: str
    query: dict[str, str]
    replies: list[Reply]
    hits: int = 0

    def matches(self, method: str, path: str, query: dict[str, list[str]]) -> bool:
        if method != self.method or path != self.path:
            return False
        return all(query.get(k, [None])[0] == v for k, v in self.query.items())

    def next_reply(self) -> Reply:
        reply = self.replies[min(self.hits, len(self.replies) - 1)]
        self.hits += 1
        return reply


@dataclass
class SeenRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


class ReplayServer:
    """``with ReplayServer() as server: server.add('/api', Reply(...)); server.url``"""

    def __init__(self) -> None:
        self.routes: list[Route] = []
        self.requests: list[SeenRequest] = []
        self.fallback: Callable[[SeenRequest], Reply] | None = None
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        # Poll every 20 ms rather than 0.5 s so stopping a server in a test is instant.
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                        daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def host(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"{host}:{port}"

    def add(self, path: str, *replies: Reply, method: str = "GET", query: dict[str, str] | None = None) -> Route:
        """Most specific routes first: a route with query constraints beats a bare one."""
        route = Route(method, path, dict(query or {}), list(replies) or [Reply()])
        with self._lock:
            self.routes.append(route)
            self.routes.sort(key=lambda r: -len(r.query))
        return route

    def add_fixture(self, path: str, fixture: str | Path, *, status: int | None = None,
                    query: dict[str, str] | None = None, headers: dict[str, str] | None = None,
                    rewrite: Callable[[str], str] | None = None) -> Route:
        """Serve a file from shared/fixtures with the headers recorded in its .meta.json sidecar.

        ``rewrite`` may replace recorded absolute URLs (e.g. in Link headers) with this server's.
        """
        file = fixture if isinstance(fixture, Path) else SHARED_FIXTURES / fixture
        recorded: dict[str, str] = {}
        meta = file.with_name(file.name.rsplit(".", 1)[0] + ".meta.json")
        if meta.exists():
            info = json.loads(meta.read_text())
            headers_seen = info.get("response_headers") or info.get("headers") or {}
            recorded = {k: ", ".join(v) if isinstance(v, list) else str(v) for k, v in headers_seen.items()}
            recorded_status = info.get("status") or 200
            if isinstance(recorded_status, dict):
                recorded_status = recorded_status.get("code", 200)
            status = status or int(recorded_status)
        text = file.read_text(encoding="utf-8")
        if rewrite:
            text = rewrite(text)
            recorded = {k: rewrite(v) for k, v in recorded.items()}
        recorded.update(headers or {})
        return self.add(path, Reply(text, status or 200, recorded), query=query)

    def requests_to(self, path: str) -> list[SeenRequest]:
        return [r for r in self.requests if r.path == path]

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # small replies otherwise stall ~40 ms each

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                seen = SeenRequest(self.command, parts.path, parse_qs(parts.query),
                                   {k.lower(): v for k, v in self.headers.items()},
                                   self.rfile.read(length) if length else b"")
                with server._lock:
                    server.requests.append(seen)
                    route = next((r for r in server.routes if r.matches(seen.method, seen.path, seen.query)), None)
                    reply = route.next_reply() if route else None
                if reply is None:
                    reply = server.fallback(seen) if server.fallback else Reply({"error": "Record not found"}, 404)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                body = reply.encoded()
                self.send_response(reply.status)
                content_type = reply.content_type or next(
                    (v for k, v in reply.headers.items() if k.lower() == "content-type"), None
                ) or ("application/json; charset=utf-8" if not isinstance(reply.body, (str, bytes))
                      or body[:1] in (b"{", b"[") else "text/html; charset=utf-8")
                self.send_header("Content-Type", content_type)
                for key, value in reply.headers.items():
                    if key.lower() not in {"content-type", "content-length", "transfer-encoding",
                                           "content-encoding", "connection", "date", "server"}:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    try:
                        self.wfile.write(body)
                    except (BrokenPipeError, ConnectionResetError):
                        pass

            do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = _serve

        return Handler

    def __enter__(self) -> "ReplayServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def require_shared_fixtures() -> Path:
    """The shared fixtures folder, or skip the calling test with the reason."""
    import pytest

    if not SHARED_FIXTURES.is_dir():
        pytest.skip(f"shared fixtures not found at {SHARED_FIXTURES} (they sit beside the project in CI)")
    return SHARED_FIXTURES
