"""Throughput of the Mastodon source: a generated hashtag timeline served from 127.0.0.1.

The server holds N statuses (default 2,000) and answers ``/api/v1/timelines/tag/<tag>``
the way Mastodon does: newest first, ``limit`` at most 40, ``max_id`` / ``since_id`` /
``min_id`` filters, and a ``Link`` header with ``rel="next"`` while pages are full. The
source is collected through ``collect_one`` into a fresh DuckDB file, twice: the first run
walks the whole timeline, the second only asks for newer statuses (there are none).

    .venv/bin/python bench/bench_collect_mastodon.py [--statuses 2000] [--page 40] [--pages-per-batch 1]

Prints statuses served, posts stored, consent skips, requests, seconds, posts/s and
requests/s, and the same for the collector alone (HTTP + parsing, no warehouse).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TAG = "socialcredit"
FIRST_ID = 110_000_000_000_000_000


def make_statuses(count: int, host: str) -> list[dict]:
    """Newest first, like a timeline; one account in twenty has not opted in to indexing."""
    statuses = []
    for n in range(count):
        sid = str(FIRST_ID + (count - n) * 1000)
        user = f"user{n % 97}"
        account = {
            "id": str(200_000 + n % 97), "username": user, "acct": user, "display_name": user.title(),
            "locked": False, "bot": False, "discoverable": True, "indexable": n % 20 != 7, "group": False,
            "created_at": "2023-01-01T00:00:00.000Z", "note": "<p>Reads about policy.</p>",
            "url": f"http://{host}/@{user}", "uri": f"http://{host}/users/{user}", "avatar": "", "avatar_static": "",
            "header": "", "header_static": "", "followers_count": 3, "following_count": 4, "statuses_count": 20,
            "last_status_at": "2024-05-01", "emojis": [], "fields": [],
        }
        created = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(1_714_000_000 + (count - n) * 60))
        content = (
            f"<p>Post {n} on <a href=\"http://{host}/tags/{TAG}\" class=\"mention hashtag\" rel=\"tag\">#<span>"
            f"{TAG}</span></a>: scores, appeals and who decides. "
            f"<span class=\"h-card\"><a href=\"http://{host}/@user{(n + 1) % 97}\" class=\"u-url mention\">@<span>"
            f"user{(n + 1) % 97}</span></a></span></p>"
            f"<p>More at <a href=\"https://example.org/articles/{n}/a-long-title\">"
            f"<span class=\"invisible\">https://</span><span class=\"ellipsis\">example.org/articles/{n}/a-lo</span>"
            f"<span class=\"invisible\">ng-title</span></a></p>"
        )
        statuses.append({
            "id": sid, "created_at": created, "in_reply_to_id": None, "in_reply_to_account_id": None,
            "sensitive": False, "spoiler_text": "", "visibility": "public", "language": "en",
            "uri": f"http://{host}/users/{user}/statuses/{sid}", "url": f"http://{host}/@{user}/{sid}",
            "replies_count": 0, "reblogs_count": 0, "favourites_count": 0, "edited_at": None, "content": content,
            "reblog": None, "application": None, "account": account, "media_attachments": [], "mentions": [],
            "tags": [{"name": TAG, "url": f"http://{host}/tags/{TAG}"}], "emojis": [], "card": None, "poll": None,
        })
    return statuses


class Timeline:
    def __init__(self, statuses: list[dict]):
        self.statuses = statuses
        self.requests = 0

    def page(self, query: dict[str, list[str]]) -> tuple[list[dict], bool]:
        limit = min(int(query.get("limit", ["20"])[0]), 40)
        max_id = int(query["max_id"][0]) if "max_id" in query else None
        since_id = int(query["since_id"][0]) if "since_id" in query else None
        min_id = int(query["min_id"][0]) if "min_id" in query else None
        chosen = [s for s in self.statuses
                  if (max_id is None or int(s["id"]) < max_id)
                  and (since_id is None or int(s["id"]) > since_id)
                  and (min_id is None or int(s["id"]) > min_id)]
        page = chosen[-limit:] if min_id is not None else chosen[:limit]
        return page, len(page) == limit


def serve(timeline: Timeline) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # else every reply waits ~40 ms for a delayed ACK

        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            timeline.requests += 1
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            headers = {"Content-Type": "application/json; charset=utf-8"}
            if parts.path == f"/api/v1/timelines/tag/{TAG}":
                page, full = timeline.page(query)
                base = f"http://{self.headers['Host']}{parts.path}"
                links = []
                if page and full:
                    links.append(f'<{base}?{urlencode({"limit": len(page), "max_id": page[-1]["id"]})}>; rel="next"')
                if page:
                    links.append(f'<{base}?{urlencode({"limit": len(page), "min_id": page[0]["id"]})}>; rel="prev"')
                if links:
                    headers["Link"] = ", ".join(links)
                body, status = json.dumps(page).encode(), 200
            else:
                body, status = b'{"error":"Record not found"}', 404
            self.send_response(status)
            for key, val in headers.items():
                self.send_header(key, val)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--statuses", type=int, default=2000)
    parser.add_argument("--page", type=int, default=40)
    parser.add_argument("--pages-per-batch", type=int, default=1)
    args = parser.parse_args()
    os.environ.setdefault("FRAMEWATCH_PSEUDONYM_KEY", "bench-key")

    import logging

    logging.disable(logging.WARNING)
    from flows.collect import collect_one
    from flows.context import collector_context
    from flows.sources import build_collector
    from framewatch.config import load_settings
    from warehouse.db import open_warehouse

    timeline = Timeline([])
    server = serve(timeline)
    host = f"127.0.0.1:{server.server_address[1]}"
    timeline.statuses = make_statuses(args.statuses, host)
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "bench.toml"
        config.write_text(
            f'[warehouse]\npath = "{Path(folder) / "bench.duckdb"}"\n\n'
            f"[http]\ntimeout_s = 10.0\n\n"
            f'[[sources]]\nname = "bench"\ntype = "mastodon"\ninstance = "http://{host}"\n'
            f'hashtags = ["{TAG}"]\npage_limit = {args.page}\npages_per_batch = {args.pages_per_batch}\n',
            encoding="utf-8",
        )
        settings = load_settings(config)
        open_warehouse(settings.warehouse_path).close()  # `framewatch init`, outside the timing

        # The collector alone: HTTP, Mastodon.py, JSON, consent and text conversion.
        collector = build_collector("bench", "mastodon", settings.source("bench").options(),
                                    collector_context(settings))
        timeline.requests = 0
        started = time.perf_counter()
        batches = list(collector.collect(None))
        alone = time.perf_counter() - started
        alone_posts = sum(len(b.posts) for b in batches)
        alone_requests = timeline.requests

        runs = []
        for run_id in ("bench-1", "bench-2"):
            timeline.requests = 0
            started = time.perf_counter()
            result = collect_one(settings, "bench", run_id)
            runs.append((run_id, result, time.perf_counter() - started, timeline.requests))

    server.shutdown()
    print(f"statuses served: {args.statuses} ({args.page} per page, {args.pages_per_batch} page(s) per batch)")
    print(f"collector only:  {alone_posts} posts, {alone_requests} requests in {alone:.2f}s "
          f"-> {alone_posts / alone:.0f} posts/s, {alone_requests / alone:.1f} requests/s")
    for run_id, result, seconds, requests in runs:
        if result.status != "ok":
            print(f"{run_id}: {result.status}: {result.error}")
            continue
        print(f"{run_id} (collect_one): {result.new} new posts, {result.skipped_consent} consent skips, "
              f"{requests} requests in {seconds:.2f}s -> {result.new / seconds:.0f} posts/s, "
              f"{requests / seconds:.1f} requests/s")


if __name__ == "__main__":
    main()
