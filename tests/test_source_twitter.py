"""Twitter/X API v2 over HTTP (genuine twarc2/tweepy payloads) and file imports, into DuckDB."""

from __future__ import annotations

import json
import time

import pytest

from flows.sources import _http
from tests.source_helpers import (DATA, ReplayServer, cursor_of, fixture_text, run, scalar, source_settings, sql,
                                  whole_database_text)
from tests.support.http_server import SHARED_FIXTURES, Reply, require_shared_fixtures

TOKEN = "tw-bearer-Zq8Xr5LmN2"
SEARCH = "/2/tweets/search/recent"
PAGE1 = "twitter/twarc2_search_recent_page_from_user.jsonl"   # 100 tweets, meta.next_token
PAGE2 = "twitter/twarc2_search_all_small.jsonl"              # 1 tweet, last page
NEXT = "b26v89c19zqg8o3foswqkggm39wgo8ndmhejepwm9qzy5"
NEWEST = "1394735776701816833"
JSON = {"Content-Type": "application/json; charset=utf-8"}
STREAM = SHARED_FIXTURES / "twitter" / "twarc2_filter_stream_with_error.jsonl"


@pytest.fixture(autouse=True)
def token(monkeypatch):
    require_shared_fixtures()
    monkeypatch.setenv("TWITTER_BEARER_TOKEN", TOKEN)
    _http._GATES.clear()  # a fresh process: no quota state from other tests


def twitter(tmp_path, server=None, http=None, **options):
    base = {"base_url": server.url} if server else {}
    return source_settings(tmp_path, {"name": "x", "type": "twitter", **base, **options}, http=http)


def serve_search(server, page1_headers=None):
    server.add_fixture(SEARCH, PAGE1, headers={**JSON, **(page1_headers or {})})
    server.add_fixture(SEARCH, PAGE2, query={"next_token": NEXT}, headers=JSON)


def tid(native):
    return f"twitter:twitter.com:{native}"


def test_search_pages_to_the_last_page_and_links_replies_to_parents(tmp_path):
    with ReplayServer() as server:
        serve_search(server)
        settings = twitter(tmp_path, server, query="from:MariamBarghouti")
        result = run(settings)
    assert result.status == "ok", result.error
    first, second = server.requests_to(SEARCH)
    assert len(server.requests) == 2 and second.query["next_token"] == [NEXT] and "next_token" not in first.query
    assert first.query["query"] == ["from:MariamBarghouti"] and first.query["max_results"] == ["100"]
    assert first.query["expansions"] == ["author_id,referenced_tweets.id"]
    assert set(first.query["tweet.fields"][0].split(",")) >= {
        "created_at", "author_id", "conversation_id", "in_reply_to_user_id", "referenced_tweets", "lang",
        "edit_history_tweet_ids"}
    assert first.headers["authorization"] == f"Bearer {TOKEN}"
    # 100 + 1 tweets, plus the 6 replied-to tweets that came in includes.
    assert result.new == 107 and scalar(settings, "SELECT count(*) FROM posts") == 107
    reply = sql(settings, "SELECT parent_id, thread_id FROM posts WHERE native_id = '1391900143176327169'")[0]
    assert reply[0] == tid("1391899066431311872")
    assert scalar(settings, "SELECT count(*) FROM posts WHERE post_id = ?", [reply[0]]) == 1  # the parent is stored
    assert dict(sql(settings, "SELECT native_id, author FROM post_store"))["1392238204925906946"] == "MariamBarghouti"
    assert cursor_of(settings)["queries"]["from:MariamBarghouti"] == {"since_id": NEWEST, "root": True}


def test_rerun_asks_only_for_tweets_newer_than_the_newest_seen(tmp_path):
    with ReplayServer() as server:
        serve_search(server)
        settings = twitter(tmp_path, server, query="from:MariamBarghouti")
        run(settings)
        server.routes.clear()
        # Newer tweets (the genuine tweepy response, recorded rate-limit headers), then its last page.
        server.add_fixture(SEARCH, "twitter/api_v2_search_recent_minimal_tweepy.json", query={"since_id": NEWEST})
        server.add_fixture(SEARCH, "twitter/twarc2_tweet_lookup_reply_many_urls.jsonl", headers=JSON,
                           query={"since_id": NEWEST, "next_token": "b26v89c19zqg8o3fpzbn1e0ffhxjiofzw6po136rvbnul"})
        again = run(settings)
        third_before = len(server.requests)
        third = run(settings)
    later = server.requests_to(SEARCH)[2:]
    assert [r.query["since_id"] for r in later[:2]] == [[NEWEST], [NEWEST]]
    assert again.status == "ok" and again.new == 12  # 10 tweepy tweets + reply + its included parent
    assert cursor_of(settings)["queries"]["from:MariamBarghouti"]["since_id"] == "1610692575752601600"
    assert server.requests[third_before].query["since_id"] == ["1610692575752601600"]
    assert third.new == 0 and scalar(settings, "SELECT count(*) FROM posts") == 119


def test_a_conversation_brings_its_first_tweet_and_replies(tmp_path):
    lookup = json.loads(fixture_text("twitter/twarc2_tweet_lookup_reply_many_urls.jsonl"))
    root = next(t for t in lookup["includes"]["tweets"] if t["id"] == "1610623087061471232")
    with ReplayServer() as server:
        server.add("/2/tweets", Reply({"data": [root], "includes": {"users": lookup["includes"]["users"]}}),
                   query={"ids": "1610623087061471232"})
        server.add_fixture(SEARCH, "twitter/twarc2_tweet_lookup_reply_many_urls.jsonl", headers=JSON,
                           query={"query": "conversation_id:1610623087061471232"})
        settings = twitter(tmp_path, server, conversations=["1610623087061471232"])
        result = run(settings)
        run(settings)
    assert result.status == "ok" and result.new == 2
    rows = {r[0]: r[1:] for r in sql(settings, "SELECT native_id, parent_id, thread_id FROM posts")}
    assert rows["1610623087061471232"] == (None, tid("1610623087061471232"))
    assert rows["1610692575752601600"] == (tid("1610623087061471232"), tid("1610623087061471232"))
    assert len(server.requests_to("/2/tweets")) == 1  # the first tweet is fetched on the first run only


def test_a_used_up_rate_limit_stops_the_run_and_the_next_run_resumes_the_pages(tmp_path):
    reset = str(int(time.time()) + 3600)
    with ReplayServer() as server:
        serve_search(server, {"x-rate-limit-remaining": "0", "x-rate-limit-reset": reset})
        settings = twitter(tmp_path, server, query="from:MariamBarghouti")
        stopped = run(settings)
        assert stopped.status == "failed" and "rate limit used up" in stopped.error
        assert stopped.error.startswith(f"source 'x' ({server.url}{SEARCH}?")
        assert len(server.requests) == 1  # page 2 was not asked for before the reset
        assert scalar(settings, "SELECT count(*) FROM posts") == 106
        assert cursor_of(settings)["queries"]["from:MariamBarghouti"]["next_token"] == NEXT
        _http._GATES.clear()  # later, after the reset
        resumed = run(settings)
    assert resumed.status == "ok" and resumed.new == 1
    assert server.requests[-1].query["next_token"] == [NEXT]
    assert cursor_of(settings)["queries"]["from:MariamBarghouti"]["since_id"] == NEWEST


def test_a_429_waits_for_the_reset_and_carries_on(tmp_path, monkeypatch):
    waits: list[float] = []
    monkeypatch.setattr(_http, "sleep", waits.append)
    with ReplayServer() as server:
        serve_search(server)
        server.add(SEARCH, Reply({"title": "Too Many Requests", "status": 429}, 429,
                                 {"x-rate-limit-remaining": "0", "x-rate-limit-reset": str(int(time.time()) + 40)}),
                   Reply(json.loads(fixture_text(PAGE2)), 200, JSON), query={"next_token": NEXT, "query": "q"})
        settings = twitter(tmp_path, server, query="q", http={"max_wait_s": 60})
        result = run(settings)
    assert result.status == "ok" and result.new == 107
    assert len(waits) == 1 and 35 < waits[0] <= 40


def test_the_bearer_token_never_reaches_the_database_or_the_logs(tmp_path, caplog):
    caplog.set_level("DEBUG")
    with ReplayServer() as server:
        serve_search(server)
        settings = twitter(tmp_path, server, query="from:MariamBarghouti")
        ok = run(settings)
        server.routes.clear()
        server.add(SEARCH, Reply({"title": "Unauthorized", "type": "about:blank", "status": 401,
                                  "detail": "Unauthorized"}, 401))
        refused = run(settings)
    assert ok.status == "ok" and server.requests[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert refused.status == "failed" and "$TWITTER_BEARER_TOKEN was rejected" in refused.error
    assert TOKEN not in refused.error
    assert TOKEN not in whole_database_text(settings)
    assert TOKEN not in caplog.text


def test_a_missing_token_is_a_configuration_error_before_any_request(tmp_path, monkeypatch):
    monkeypatch.delenv("TWITTER_BEARER_TOKEN")
    with ReplayServer() as server:
        settings = twitter(tmp_path, server, query="q")
        result = run(settings)
    assert result.status == "failed" and "TWITTER_BEARER_TOKEN is not set" in result.error
    assert server.requests == []


def test_malformed_api_json_fails_with_an_error_naming_source_and_url(tmp_path):
    with ReplayServer() as server:
        server.add(SEARCH, Reply('{"data": [{"id": "1", "text": "cut', 200, JSON))
        settings = twitter(tmp_path, server, query="q")
        result = run(settings)
    assert result.status == "failed"
    assert result.error.startswith(f"source 'x' ({server.url}{SEARCH}?query=q&") and "malformed JSON" in result.error


def test_a_twarc2_stream_file_with_a_truncated_line_stores_the_valid_lines(tmp_path):
    settings = twitter(tmp_path, files=[str(STREAM)])
    result = run(settings)
    assert result.status == "partial"
    assert len(result.problems) == 1 and result.problems[0].startswith(f"{STREAM}:8: invalid JSON")
    assert scalar(settings, "SELECT count(*) FROM post_store WHERE raw->>'framewatch_from_includes' IS NULL") == 7
    reply = sql(settings, "SELECT parent_id, thread_id FROM posts WHERE native_id = '1377650093109743620'")[0]
    assert reply[1] == tid("1377266697850257410") and reply[0] is not None
    rerun = run(settings)
    assert rerun.status == "ok" and rerun.new == 0  # unchanged file: skipped
    assert cursor_of(settings)["files"][str(STREAM)]


def test_flattened_twarc2_lines_and_page_lines_import_alike(tmp_path):
    flat = SHARED_FIXTURES / "twitter" / "twarc2_flattened_tweets_first25.jsonl"
    page = SHARED_FIXTURES / "twitter" / "twarc2_tweet_lookup_reply_quote_edited.jsonl"
    settings = twitter(tmp_path, files=[str(flat), str(page)], format="twarc2")
    result = run(settings)
    assert result.status == "ok"
    rows = {r[0]: r[1:] for r in sql(settings, "SELECT native_id, parent_id, thread_id FROM posts")}
    assert len([k for k in rows if k.startswith("13802")]) >= 25
    assert rows["1380242586288328707"] == (tid("1380229267770933248"), tid("1380220754978086917"))
    assert rows["1576995594388000768"][0] == tid("1576994789110992896")  # reply (and quote): parent = replied_to
    authors = dict(sql(settings, "SELECT native_id, author FROM post_store"))
    assert authors["1380242586288328707"] == "PDXPapaG" and authors["1576995594388000768"] == "dappdavid99"


def test_an_account_archive_imports_with_threads_and_its_owner_as_author(tmp_path):
    tweets = DATA / "twitter" / "archive" / "data" / "tweets.js"
    settings = twitter(tmp_path, files=[str(tweets)])
    result = run(settings)
    assert result.status == "ok" and result.new == 3
    rows = {r[0]: r[1:] for r in sql(settings, "SELECT native_id, parent_id, thread_id, text FROM posts")}
    assert rows["1713990742113763584"][:2] == (tid("1713989470132355073"), tid("1713989470132355073"))
    assert rows["1714101187654321000"][:2] == (tid("1714100000000000000"), tid("1714100000000000000"))
    assert rows["1713989470132355073"][2].endswith("court blacklists & local pilots.")
    assert {r[0] for r in sql(settings, "SELECT DISTINCT author FROM post_store")} == {"fieldnotes_mei"}
    assert str(scalar(settings, "SELECT created_at AT TIME ZONE 'UTC' FROM posts WHERE native_id = "
                                "'1713989470132355073'")) == "2023-10-16 18:33:11"


def test_a_broken_archive_reports_file_and_line(tmp_path):
    broken = tmp_path / "tweets.js"
    broken.write_text('window.YTD.tweets.part0 = [\n  {\n    "tweet" : {\n      "id_str" : "1",\n  }\n]\n')
    settings = twitter(tmp_path / "run", files=[str(broken)])
    result = run(settings)
    assert result.status == "partial"
    assert result.problems[0].startswith(f"{broken}:5: invalid JSON")



def test_a_since_id_older_than_the_search_window_falls_back_to_the_whole_window(tmp_path):
    too_old = {"errors": [{"parameters": {"since_id": [NEWEST]},
                           "message": f"Invalid 'since_id':'{NEWEST}'. 'since_id' must be a tweet id created "
                                      "after 2021-05-19T00:00Z."}],
               "title": "Invalid Request", "detail": "One or more parameters to your request was invalid.",
               "type": "https://api.twitter.com/2/problems/invalid-request"}
    with ReplayServer() as server:
        serve_search(server)
        settings = twitter(tmp_path, server, query="from:MariamBarghouti")
        run(settings)
        server.add(SEARCH, Reply(too_old, 400), query={"since_id": NEWEST})
        later = run(settings)
    assert later.status == "ok" and later.new == 0
    asked = [r.query.get("since_id") for r in server.requests_to(SEARCH)[2:]]
    assert asked == [[NEWEST], None, None]  # refused, then the whole window (two pages)
    assert cursor_of(settings)["queries"]["from:MariamBarghouti"]["since_id"] == NEWEST
