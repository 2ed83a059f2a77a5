"""Discourse topics over HTTP: genuine topic views and posts, collected into DuckDB."""

from __future__ import annotations

import copy
import json

import pytest

from tests.source_helpers import ReplayServer, cursor_of, fixture_text, run, scalar, source_settings, sql
from tests.support.http_server import Reply, SeenRequest, require_shared_fixtures


@pytest.fixture(autouse=True)
def shared():
    return require_shared_fixtures()


def t2144_posts() -> list[dict]:
    return json.loads(fixture_text("discourse/topic_posts_t2144.json"))["post_stream"]["posts"]


def serve_t2144(server: ReplayServer) -> list[int]:
    """/t/2144.json as Discourse builds it: the first posts plus the stream of every id; the
    rest comes from the genuine /t/2144/posts.json payload."""
    posts = t2144_posts()
    stream = [p["id"] for p in posts]
    view = {"id": 2144, "title": "KPop Demon Hunters", "slug": "kpop-demon-hunters", "posts_count": len(posts),
            "post_stream": {"posts": posts[:5], "stream": stream}}
    server.add("/t/2144.json", Reply(view))
    server.add_fixture("/t/2144/posts.json", "discourse/topic_posts_t2144.json")
    return stream


def forum(tmp_path, server, topics, **extra):
    return source_settings(tmp_path, {"name": "forum", "type": "discourse", "base_url": server.url,
                                      "topics": topics, **extra})


def asked_ids(server, topic=2144) -> list[list[int]]:
    return [[int(i) for i in r.query.get("post_ids[]", [])] for r in server.requests_to(f"/t/{topic}/posts.json")]


def test_topic_stream_is_fetched_in_chunks_and_replies_point_to_their_parents(tmp_path):
    with ReplayServer() as server:
        stream = serve_t2144(server)
        settings = forum(tmp_path, server, [f"{server.url}/t/kpop-demon-hunters/2144"], chunk_size=6)
        result = run(settings)
    assert result.status == "ok" and result.new == 20
    # First posts came with the topic view; the others were asked for in id order, 6 per chunk.
    assert asked_ids(server) == [[20119], stream[6:12], stream[12:18], stream[18:20]]
    parent = dict(sql(settings, "SELECT native_id, parent_id FROM posts"))
    site = f"discourse:{server.host}:"
    assert parent["20089"] is None                       # the first post is the root
    assert parent["20127"] == site + "20110"             # reply_to_post_number 4
    assert parent["20128"] == site + "20127"             # reply_to_post_number 8
    assert parent["20102"] == site + "20089"             # no reply_to: a reply to the first post
    assert {r[0] for r in sql(settings, "SELECT DISTINCT thread_id FROM posts")} == {site + "20089"}
    assert scalar(settings, "SELECT text FROM posts WHERE native_id = '20089'").startswith("KPop Demon Hunters")
    edited = sql(settings, "SELECT native_id FROM posts WHERE edited_at IS NOT NULL ORDER BY 1")
    assert [r[0] for r in edited] == ["20128", "20187", "20198", "20199"]  # version > 1
    assert cursor_of(settings) == {"topics": {"2144": {"max_post_id": 20200}}}


def test_quotes_are_kept_out_of_the_text_and_stored_in_raw(tmp_path):
    with ReplayServer() as server:
        serve_t2144(server)
        settings = forum(tmp_path, server, [2144])
        run(settings)
    text, quotes, content = sql(settings, "SELECT p.text, s.raw->'framewatch_quotes', s.content FROM posts p "
                                          "JOIN post_store s USING (post_id) WHERE p.native_id = '20102'")[0]
    quotes = json.loads(quotes)
    assert len(quotes) == 4
    assert quotes[0]["username"] == "Elliot" and quotes[0]["post_number"] == 1 and quotes[0]["topic_id"] == 2144
    assert quotes[0]["text"].startswith("I find it interesting that people love this theme")
    assert "I find it interesting" not in text and text.startswith("~yeah idk how people process this message")
    assert '<aside class="quote' in content  # content stays as received


def test_the_whole_stream_of_a_long_topic_is_paged_through(tmp_path):
    view = json.loads(fixture_text("discourse/topic_t2108_at_post452_raw.json"))
    stream = view["post_stream"]["stream"]
    genuine = {p["id"]: p for p in view["post_stream"]["posts"]}
    template = view["post_stream"]["posts"][0]

    def synthetic(post_id: int) -> dict:
        number = stream.index(post_id) + 1
        post = copy.deepcopy(template)
        post.update(id=post_id, post_number=number, cooked=f"<p>post {number}</p>", version=1,
                    reply_to_post_number=number - 1 if number % 3 == 0 else None, username=f"user{number % 7}")
        return post

    def posts_json(seen: SeenRequest) -> Reply:
        ids = [int(i) for i in seen.query.get("post_ids[]", [])]
        return Reply({"post_stream": {"posts": [genuine.get(i) or synthetic(i) for i in ids]}, "id": 2108})

    with ReplayServer() as server:
        server.add("/t/2108.json", Reply(view))
        server.fallback = lambda seen: posts_json(seen) if seen.path == "/t/2108/posts.json" else Reply({}, 404)
        settings = forum(tmp_path, server, [2108])
        result = run(settings)
    assert result.status == "ok" and result.new == 446
    requested = [i for chunk in asked_ids(server, 2108) for i in chunk]
    assert len(requested) == 426 and set(requested) == set(stream) - set(genuine)  # each missing id once
    assert max(len(chunk) for chunk in asked_ids(server, 2108)) == 20
    parent = dict(sql(settings, "SELECT native_id, parent_id FROM posts"))
    assert parent["20130"] == f"discourse:{server.host}:{stream[148]}"  # post 443 replies to post 149
    assert cursor_of(settings) == {"topics": {"2108": {"max_post_id": max(stream)}}}


def test_rerun_adds_no_rows_and_later_runs_fetch_only_new_post_ids(tmp_path):
    posts = t2144_posts()
    new_reply_to_old = dict(copy.deepcopy(posts[-1]), id=20300, post_number=22, reply_to_post_number=3,
                            cooked="<p>Late to this, but the third post had it right.</p>", version=1)
    new_top_level = dict(copy.deepcopy(posts[-1]), id=20301, post_number=23, reply_to_post_number=None,
                         cooked="<p>New thought.</p>", version=1)
    with ReplayServer() as server:
        stream = serve_t2144(server)
        settings = forum(tmp_path, server, [2144])
        run(settings)
        again = run(settings)
        assert again.status == "ok" and again.new == 0 and len(asked_ids(server)) == 1
        # Two new posts appear; the topic view now shows the last posts, not post 3.
        later_view = {"id": 2144, "title": "KPop Demon Hunters", "slug": "kpop-demon-hunters",
                      "post_stream": {"posts": posts[-3:], "stream": stream + [20300, 20301]}}
        server.routes = [r for r in server.routes if r.path != "/t/2144.json"]
        server.add("/t/2144.json", Reply(later_view))
        server.add("/t/2144/posts.json", Reply({"post_stream": {"posts": [new_reply_to_old, new_top_level]}}),
                   query={"post_ids[]": "20300"})
        server.add("/posts/by_number/2144/3.json", Reply(posts[2]))
        third = run(settings)
    assert third.new == 2
    assert asked_ids(server)[-1] == [20300, 20301]
    parent = dict(sql(settings, "SELECT native_id, parent_id FROM posts"))
    assert parent["20300"] == f"discourse:{server.host}:20104"  # post 3, looked up by number
    assert parent["20301"] == f"discourse:{server.host}:20089"
    assert len(server.requests_to("/posts/by_number/2144/3.json")) == 1
    assert cursor_of(settings)["topics"]["2144"]["max_post_id"] == 20301


def test_a_malformed_topic_fails_with_an_error_naming_source_and_url(tmp_path):
    with ReplayServer() as server:
        server.add("/t/77.json", Reply({"errors": ["The requested URL or resource could not be found."]}, 200))
        settings = forum(tmp_path, server, [77])
        result = run(settings)
    assert result.status == "failed"
    assert result.error == f"source 'forum' ({server.url}/t/77.json): malformed topic: no post_stream.stream"


def test_rate_limited_chunks_are_retried_after_retry_after(tmp_path):
    with ReplayServer() as server:
        serve_t2144(server)
        server.add("/t/2144/posts.json",
                   Reply({"errors": ["You’ve performed this action too many times."], "error_type": "rate_limit"},
                         429, {"Retry-After": "0.05"}),
                   Reply(json.loads(fixture_text("discourse/topic_posts_t2144.json"))),
                   query={"post_ids[]": "20119"})
        settings = forum(tmp_path, server, [2144])
        result = run(settings)
    assert result.status == "ok" and result.new == 20
    assert len(server.requests_to("/t/2144/posts.json")) == 2
    assert scalar(settings, "SELECT requests FROM collection_runs") == 3


def test_an_old_schema_topic_with_all_posts_inline_needs_one_request(tmp_path):
    with ReplayServer() as server:
        server.add_fixture("/t/57.json", "discourse/topic_try_discourse_org_2013.json")
        settings = forum(tmp_path, server, [f"{server.url}/t/this-site-is-a-sandbox-it-is-reset-every-day/57/3"])
        result = run(settings)
    assert result.status == "ok" and result.new == 4 and result.requests == 1
    assert dict(sql(settings, "SELECT native_id, parent_id FROM posts"))["226"] == f"discourse:{server.host}:83"
