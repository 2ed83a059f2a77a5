"""Collect one 500-comment blog thread twice - through the WordPress REST API (100 per page)
and as an HTML comment page - from a local server, into a temporary DuckDB warehouse.

    .venv/bin/python bench/bench_collect_blog.py [--comments 500] [--repeat 3]

Prints, per mode, posts/s and requests/s for the whole ``collect_one`` (HTTP + parsing +
storing) and for the collector alone (HTTP + parsing, no warehouse).
"""

from __future__ import annotations

import argparse
import html
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flows.context import collector_context  # noqa: E402
from flows.sources import build_collector  # noqa: E402
from tests.source_helpers import ReplayServer, run, source_settings  # noqa: E402
from tests.support.http_server import Reply  # noqa: E402

WORDS = ("score system credit city pilot blacklist court data privacy trust points volunteer rule "
         "surveillance reward penalty company regulator local national debate framing report").split()


def thread(n: int, seed: int = 7) -> list[dict]:
    """n comments: about a third reply to an earlier one."""
    rng = random.Random(seed)
    comments = []
    for i in range(n):
        cid = 1000 + i
        parent = comments[rng.randrange(len(comments))]["id"] if comments and rng.random() < 0.35 else 0
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(12, 60))).capitalize() + "."
        minute = i * 7
        comments.append({
            "id": cid, "post": 1, "parent": parent, "author": 0, "author_name": f"Reader {rng.randrange(80)}",
            "date": f"2024-03-{1 + minute // 1440:02d}T{(minute // 60) % 24:02d}:{minute % 60:02d}:00",
            "date_gmt": f"2024-03-{1 + minute // 1440:02d}T{(minute // 60) % 24:02d}:{minute % 60:02d}:00",
            "content": {"rendered": f"<p>{text}</p>\n"}, "link": f"/2024/03/thread/#comment-{cid}",
            "status": "approved", "type": "comment", "author_avatar_urls": {}, "meta": [],
        })
    return comments


def rest_pages(comments: list[dict], per_page: int = 100) -> list[list[dict]]:
    ordered = sorted(comments, key=lambda c: c["id"])
    return [ordered[i:i + per_page] for i in range(0, len(ordered), per_page)]


def html_page(comments: list[dict]) -> str:
    children: dict[int, list[dict]] = {}
    for c in comments:
        children.setdefault(c["parent"], []).append(c)

    def render(c: dict, depth: int) -> str:
        kids = children.get(c["id"], [])
        nested = f'<ol class="children">{"".join(render(k, depth + 1) for k in kids)}</ol>' if kids else ""
        return (
            f'<li id="comment-{c["id"]}" class="comment depth-{depth}">'
            f'<article id="div-comment-{c["id"]}" class="comment-body"><footer class="comment-meta">'
            f'<div class="comment-author vcard"><b class="fn">{html.escape(c["author_name"])}</b> '
            f'<span class="says">says:</span></div><div class="comment-metadata">'
            f'<a href="#comment-{c["id"]}"><time datetime="{c["date_gmt"]}+00:00">{c["date_gmt"]}</time></a></div>'
            f'</footer><div class="comment-content">{c["content"]["rendered"]}</div>'
            f'<div class="reply"><a class="comment-reply-link" href="?replytocom={c["id"]}#respond">Reply</a></div>'
            f"</article>{nested}</li>"
        )

    items = "".join(render(c, 1) for c in children.get(0, []))
    return (
        '<!doctype html><html lang="en"><head><title>A long thread</title>'
        "<link rel='shortlink' href='/?p=1' />"
        '<meta property="article:published_time" content="2024-03-01T00:00:00+00:00"></head>'
        '<body class="single postid-1"><article id="post-1"><h1 class="entry-title">A long thread</h1>'
        '<div class="entry-content"><p>' + " ".join(WORDS * 20) + "</p></div></article>"
        f'<div id="comments" class="comments-area"><ol class="comment-list">{items}</ol></div></body></html>'
    )


def serve(server: ReplayServer, comments: list[dict]) -> None:
    pages = rest_pages(comments)
    headers = {"X-WP-Total": str(len(comments)), "X-WP-TotalPages": str(len(pages))}
    post = {"id": 1, "date_gmt": "2024-03-01T00:00:00", "modified_gmt": "2024-03-01T00:00:00",
            "link": server.url + "/2024/03/thread/", "title": {"rendered": "A long thread"},
            "content": {"rendered": "<p>" + " ".join(WORDS * 20) + "</p>"}, "author": 1}
    server.add("/wp-json/wp/v2/posts/1", Reply(post))
    for number, page in enumerate(pages, start=1):
        server.add("/wp-json/wp/v2/comments", Reply(json.dumps(page), 200,
                                                    {**headers, "Content-Type": "application/json"}),
                   query={"page": str(number)})
    server.add("/2024/03/thread/", Reply(html_page(comments)))


def measure(label: str, source: dict, repeat: int) -> dict:
    whole, alone = [], []
    posts = requests = 0
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as folder:
            settings = source_settings(Path(folder), source, http={"max_retries": 1})
            started = time.perf_counter()
            result = run(settings)
            whole.append(time.perf_counter() - started)
            assert result.status == "ok", result.error
            posts, requests = result.new, result.requests
            collector = build_collector("bench", source["type"],
                                        {k: v for k, v in source.items() if k not in ("name", "type")},
                                        collector_context(settings))
            started = time.perf_counter()
            count = sum(len(batch.posts) for batch in collector.collect(None))
            alone.append(time.perf_counter() - started)
            assert count == posts
    best, median = min(whole), statistics.median(whole)
    return {"mode": label, "posts": posts, "requests": requests,
            "collect_one_s": round(median, 3), "posts_per_s": round(posts / median, 1),
            "requests_per_s": round(requests / median, 1), "best_posts_per_s": round(posts / best, 1),
            "collector_only_s": round(statistics.median(alone), 3),
            "collector_only_posts_per_s": round(posts / statistics.median(alone), 1),
            "collector_only_requests_per_s": round(requests / statistics.median(alone), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comments", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    comments = thread(args.comments)
    with ReplayServer() as server:
        serve(server, comments)
        results = [
            measure("wordpress-rest", {"name": "bench", "type": "wordpress", "site": server.url, "posts": [1],
                                       "html_fallback": False}, args.repeat),
            measure("html-page", {"name": "bench", "type": "html", "urls": [server.url + "/2024/03/thread/"]},
                    args.repeat),
        ]
    print("whole collect_one (HTTP + parsing + DuckDB) | collector alone (HTTP + parsing)")
    print(f"{'mode':<16}{'posts':>7}{'reqs':>6}{'seconds':>9}{'posts/s':>10}{'reqs/s':>9}"
          f"{'| seconds':>11}{'posts/s':>10}{'reqs/s':>9}")
    for r in results:
        print(f"{r['mode']:<16}{r['posts']:>7}{r['requests']:>6}{r['collect_one_s']:>9}{r['posts_per_s']:>10}"
              f"{r['requests_per_s']:>9}{'| ':>4}{r['collector_only_s']:>7}{r['collector_only_posts_per_s']:>10}"
              f"{r['collector_only_requests_per_s']:>9}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
