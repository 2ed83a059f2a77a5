"""WordPress REST comments, collected over HTTP from genuine payloads into DuckDB."""

from __future__ import annotations

import json

import pytest

from tests.source_helpers import DATA, ReplayServer, cursor_of, fixture_text, run, scalar, source_settings, sql
from tests.support.http_server import Reply, require_shared_fixtures

POST60 = "wordpress/wp_v2_post_with_embedded_replies_demo_worona_org.json"
COMMENTS60 = "wordpress/wp_v2_comments_threaded_test_frontity_org.json"
SLUG = "the-beauties-of-gullfoss"
LEMIRE = "html/wp_lemire_me_simdjson_5_comments.html"
LEMIRE_PATH = "/blog/2019/08/02/json-parsing-simdjson-vs-json-for-modern-c/"

pytestmark = pytest.mark.usefixtures("shared")


@pytest.fixture
def shared():
    return require_shared_fixtures()


def serve_post60(server: ReplayServer) -> dict[str, object]:
    """Post 60 (genuine), its 3 genuine comments on page 1 and one more on page 2 (per_page 3)."""
    server.add_fixture("/wp-json/wp/v2/posts/60", POST60)
    server.add("/wp-json/wp/v2/posts", Reply("[" + fixture_text(POST60) + "]", 200,
                                             {"Content-Type": "application/json; charset=UTF-8"}),
               query={"slug": SLUG})
    pages = {"X-WP-Total": "4", "X-WP-TotalPages": "2", "Content-Type": "application/json; charset=UTF-8"}
    routes = {
        1: server.add_fixture("/wp-json/wp/v2/comments", COMMENTS60, query={"post": "60", "page": "1", "order": "asc"},
                              headers=pages),
        2: server.add_fixture("/wp-json/wp/v2/comments", DATA / "wordpress" / "comments_post60_page2.json",
                              query={"post": "60", "page": "2", "order": "asc"}, headers=pages),
        # Newest first (later runs): nothing new yet.
        "desc": server.add_fixture("/wp-json/wp/v2/comments", COMMENTS60, query={"post": "60", "order": "desc"},
                                   headers=pages),
    }
    return routes


def wp_settings(tmp_path, server, **extra):
    return source_settings(tmp_path, {"name": "blog", "type": "wordpress", "site": server.url,
                                      "posts": [f"{server.url}/2016/{SLUG}/"], "per_page": 3, **extra})


def comment_requests(server):
    return [r.query for r in server.requests_to("/wp-json/wp/v2/comments")]


def pid(server, native):
    return f"blog:{server.host}:{native}"


def test_comments_are_paged_to_the_last_page_and_threaded_under_the_post(tmp_path):
    with ReplayServer() as server:
        serve_post60(server)
        settings = wp_settings(tmp_path, server)
        result = run(settings)
    assert result.status == "ok", result.error
    assert [q["page"] for q in comment_requests(server)] == [["1"], ["2"]]  # X-WP-TotalPages = 2: no page 3
    assert all(q["per_page"] == ["3"] and q["orderby"] == ["id"] for q in comment_requests(server))
    rows = {r[0]: r[1:] for r in sql(settings, "SELECT native_id, parent_id, thread_id, text FROM posts")}
    assert set(rows) == {"post-60", "comment-5", "comment-124", "comment-129", "comment-131"}
    thread = pid(server, "post-60")
    assert {r[1] for r in rows.values()} == {thread}
    assert rows["post-60"][0] is None and rows["post-60"][2].startswith("The Beauties of Gullfoss")
    assert rows["comment-124"][0] == thread            # parent 0: a reply to the post
    assert rows["comment-129"][0] == pid(server, "comment-124")
    assert rows["comment-131"][0] == pid(server, "comment-5")
    assert rows["comment-129"][2] == "Hola Mario"       # content.rendered HTML -> text
    assert scalar(settings, "SELECT author FROM post_store WHERE native_id = 'comment-129'") == "David Arenas"
    assert str(scalar(settings, "SELECT created_at AT TIME ZONE 'UTC' FROM posts WHERE native_id = 'comment-129'")) \
        == "2019-02-08 15:28:33"                       # date_gmt, not the local date
    assert scalar(settings, "SELECT requests FROM collection_runs") == len(server.requests)
    assert cursor_of(settings)["posts"]["60"] == {"complete": True, "max_id": 131}


def test_rerun_adds_no_rows_and_later_runs_ask_only_for_newer_comments(tmp_path):
    with ReplayServer() as server:
        serve_post60(server)
        settings = wp_settings(tmp_path, server)
        run(settings)
        before = len(server.requests)
        again = run(settings)
        assert again.status == "ok" and again.new == 0
        assert scalar(settings, "SELECT count(*) FROM posts") == 5
        # The second run asked for the newest comments first and stopped at known ones.
        newest_first = comment_requests(server)[2:]
        assert newest_first == [
            {"post": ["60"], "per_page": ["3"], "page": ["1"], "orderby": ["id"], "order": ["desc"]}]
        assert len(server.requests) - before == 2  # the post itself and one comments page

        server.add_fixture("/wp-json/wp/v2/comments", DATA / "wordpress" / "comments_post60_newest_first.json",
                           query={"post": "60", "order": "desc", "page": "1"},
                           headers={"X-WP-TotalPages": "2", "Content-Type": "application/json"})
        third = run(settings)
    assert third.new == 1
    assert scalar(settings, "SELECT parent_id FROM posts WHERE native_id = 'comment-140'") == pid(server, "comment-129")
    assert cursor_of(settings)["posts"]["60"]["max_id"] == 140
    assert [q.get("order") for q in comment_requests(server)].count(["asc"]) == 2  # only the first run walked pages


def test_a_failing_page_keeps_earlier_pages_and_the_next_run_resumes_there(tmp_path):
    with ReplayServer() as server:
        routes = serve_post60(server)
        routes[2].replies = [Reply({"code": "internal_server_error"}, 500)]
        settings = wp_settings(tmp_path, server)
        result = run(settings)
        assert result.status == "failed"
        assert "source 'blog'" in result.error and "HTTP 500" in result.error
        assert f"{server.url}/wp-json/wp/v2/comments?" in result.error and "page=2" in result.error
        assert scalar(settings, "SELECT count(*) FROM posts") == 4  # the post and page 1 stay stored
        assert cursor_of(settings)["posts"]["60"] == {"page": 2, "max_id": 129}
        assert sql(settings, "SELECT status, error IS NOT NULL FROM collection_runs") == [("failed", True)]

        page2 = json.loads((DATA / "wordpress" / "comments_post60_page2.json").read_text())
        routes[2].replies, routes[2].hits = [Reply(page2, 200, {"X-WP-TotalPages": "2"})], 0
        seen = len(server.requests)
        resumed = run(settings)
    assert resumed.status == "ok" and resumed.new == 1
    assert [q["page"] for q in comment_requests(server)[-1:]] == [["2"]]
    assert not any(r.query.get("page") == ["1"] for r in server.requests[seen:] if r.path.endswith("/comments"))
    assert scalar(settings, "SELECT count(*) FROM posts") == 5


def test_malformed_json_fails_with_an_error_naming_source_and_url(tmp_path):
    with ReplayServer() as server:
        serve_post60(server)
        server.add("/wp-json/wp/v2/comments", Reply('[{"id": 129, "post": 60, "content": {"rende', 200,
                                                    {"Content-Type": "application/json"}),
                   query={"post": "60", "page": "1", "order": "asc", "orderby": "id"})
        settings = wp_settings(tmp_path, server)
        result = run(settings)
    assert result.status == "failed"
    assert "source 'blog'" in result.error and "malformed JSON" in result.error
    assert "/wp-json/wp/v2/comments?post=60" in result.error


@pytest.mark.parametrize("disabled", [
    Reply("<!doctype html><html><body><h1>Page not found</h1></body></html>", 404),
    Reply({"code": "rest_login_required", "message": "REST API restricted to authenticated users.",
           "data": {"status": 401}}, 401),
], ids=["html-404", "rest_login_required-401"])
def test_a_disabled_rest_api_falls_back_to_the_html_comment_page(tmp_path, disabled):
    with ReplayServer() as server:
        server.add("/blog/wp-json/wp/v2/posts", disabled)
        server.add_fixture(LEMIRE_PATH, LEMIRE)
        settings = source_settings(tmp_path, {"name": "lemire", "type": "wordpress", "site": server.url + "/blog",
                                              "posts": [server.url + LEMIRE_PATH]})
        result = run(settings)
    assert result.status == "ok", result.error
    rows = dict(sql(settings, "SELECT native_id, parent_id FROM posts"))
    assert len(rows) == 6 and rows["post-17725"] is None  # shortlink ?p=17725 gives the REST id
    assert rows["comment-422230"] == f"blog:{server.host}:comment-422154"
    assert rows["comment-421882"] == f"blog:{server.host}:post-17725"
    assert not server.requests_to("/blog/wp-json/wp/v2/comments")


def test_the_html_fallback_honours_robots_txt(tmp_path):
    with ReplayServer() as server:
        server.add("/robots.txt", Reply("User-agent: *\nDisallow: /blog/2019/\n", 200, {"Content-Type": "text/plain"}))
        server.add("/blog/wp-json/wp/v2/posts", Reply("<html><body>no</body></html>", 404))
        server.add_fixture(LEMIRE_PATH, LEMIRE)
        settings = source_settings(tmp_path, {"name": "lemire", "type": "wordpress", "site": server.url + "/blog",
                                              "posts": [server.url + LEMIRE_PATH]})
        result = run(settings)
    assert result.status == "ok" and result.skipped_consent == 1
    assert not server.requests_to(LEMIRE_PATH)
    assert scalar(settings, "SELECT count(*) FROM posts") == 0
    assert sql(settings, "SELECT action, reason, detail FROM provenance") == [
        ("skipped_consent", "robots.txt disallows fetching this page", server.url + LEMIRE_PATH)]


def test_post_ids_and_urls_naming_the_same_post_are_collected_once(tmp_path):
    with ReplayServer() as server:
        serve_post60(server)
        settings = source_settings(tmp_path, {"name": "blog", "type": "wordpress", "site": server.url, "per_page": 3,
                                              "posts": [60, f"{server.url}/2016/{SLUG}/", f"{server.url}/?p=60"]})
        result = run(settings)
        rerun = run(settings)
    assert result.status == "ok" and result.new == 5
    assert len(server.requests_to("/wp-json/wp/v2/posts/60")) == 2  # once per run
    assert rerun.new == 0 and len(server.requests_to("/wp-json/wp/v2/posts")) == 1  # slug resolved once, then cached
