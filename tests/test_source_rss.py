"""RSS/Atom comment feeds over HTTP: a genuine WordPress main feed (following wfw:commentRss),
a genuine Discourse topic feed, into DuckDB."""

from __future__ import annotations

import pytest

from tests.source_helpers import DATA, ReplayServer, cursor_of, fixture_text, run, scalar, source_settings, sql
from tests.support.http_server import Reply, require_shared_fixtures

MAIN_FEED = "wordpress/wp_blog_main_feed_rss2_wp2.8.xml"
TOPIC_FEED = "discourse/topic_t2144.rss"
RSS = {"Content-Type": "application/rss+xml; charset=UTF-8"}
POST_FEED = "http://www.norm2782.com/2009/03/wth-reading-books/feed/"


@pytest.fixture(autouse=True)
def shared():
    return require_shared_fixtures()


def feed_settings(tmp_path, feeds, **extra):
    return source_settings(tmp_path, {"name": "feeds", "type": "rss", "feeds": feeds, **extra})


def serve_blog(server):
    """The genuine main feed, its first post's comment feed moved to this server and announced
    with three comments (the other posts keep slash:comments 0)."""
    def local(text: str) -> str:
        text = text.replace(f"<wfw:commentRss>{POST_FEED}</wfw:commentRss>",
                            f"<wfw:commentRss>{server.url}/2009/03/wth-reading-books/feed/</wfw:commentRss>")
        return text.replace("<slash:comments>0</slash:comments>", "<slash:comments>3</slash:comments>", 1)

    server.add_fixture("/feed/", MAIN_FEED, rewrite=local, headers=RSS)
    server.add_fixture("/2009/03/wth-reading-books/feed/", DATA / "rss" / "wp_comments_feed_p114.xml", headers=RSS)


def test_a_blog_feed_stores_posts_and_follows_comment_feeds_with_reply_links(tmp_path):
    with ReplayServer() as server:
        serve_blog(server)
        settings = feed_settings(tmp_path, [server.url + "/feed/"], follow_comment_feeds=True)
        result = run(settings)
    assert result.status == "ok" and result.new == 13  # 10 posts + 3 comments
    # Only the post that announces comments had its comment feed fetched.
    assert [r.path for r in server.requests] == ["/feed/", "/2009/03/wth-reading-books/feed/"]
    site = "blog:www.norm2782.com:"
    got = {r[0]: r[1:] for r in sql(settings, "SELECT native_id, parent_id, thread_id, text FROM posts")}
    assert got["comment-201"][:2] == (site + "post-114", site + "post-114")
    assert got["comment-202"][:2] == (site + "comment-201", site + "post-114")  # "In reply to" -> parent
    assert got["comment-202"][2] == "Not yet – it is next on the list after the Gang of Four."
    assert got["post-114"][0] is None and got["post-114"][1] == site + "post-114"
    assert got["post-114"][2].startswith("Wth… reading books?\n\nBeing in New Zealand")
    assert dict(sql(settings, "SELECT native_id, author FROM post_store"))["comment-203"] == "Padraic"
    assert str(scalar(settings, "SELECT created_at AT TIME ZONE 'UTC' FROM posts WHERE native_id = 'comment-201'")) \
        == "2009-03-02 19:02:31"


def test_without_following_only_the_main_feed_is_read(tmp_path):
    with ReplayServer() as server:
        serve_blog(server)
        settings = feed_settings(tmp_path, [server.url + "/feed/"])
        result = run(settings)
    assert result.new == 10 and [r.path for r in server.requests] == ["/feed/"]


def test_a_discourse_topic_feed_is_one_thread_with_quotes_kept_out_of_the_text(tmp_path):
    with ReplayServer() as server:
        server.add_fixture("/t/kpop-demon-hunters/2144.rss", TOPIC_FEED, headers=RSS)
        settings = feed_settings(tmp_path, [server.url + "/t/kpop-demon-hunters/2144.rss"], platform="discourse")
        result = run(settings)
    assert result.status == "ok" and result.new == 25
    threads = sql(settings, "SELECT DISTINCT thread_id, parent_id FROM posts")
    assert len(threads) == 1 and threads[0][0] == threads[0][1]  # every item replies to the topic
    assert threads[0][0].startswith("discourse:discuss.criticalfallibilism.com:page-")
    text = scalar(settings, "SELECT text FROM posts WHERE native_id = "
                            "'discuss.criticalfallibilism.com-post-2144-31'")
    assert text.startswith("For my physical copies with roughly same font size")
    assert "Is We the Living also short?" not in text
    assert scalar(settings, "SELECT json_array_length(raw->'framewatch_quotes') FROM post_store WHERE native_id = "
                            "'discuss.criticalfallibilism.com-post-2144-31'") == 3


def test_rerun_adds_no_rows_and_an_unchanged_feed_is_not_downloaded(tmp_path):
    with ReplayServer() as server:
        server.add("/t/2144.rss", Reply(fixture_text(TOPIC_FEED), 200, {**RSS, "ETag": 'W/"abc"'}),
                   Reply(fixture_text(TOPIC_FEED), 200, {**RSS, "ETag": 'W/"abc"'}), Reply(b"", 304))
        settings = feed_settings(tmp_path, [server.url + "/t/2144.rss"])
        first, second, third = run(settings), run(settings), run(settings)
    assert (first.new, second.new, second.updated, third.new) == (25, 0, 0, 0)
    assert [r.headers.get("if-none-match") for r in server.requests] == [None, 'W/"abc"', 'W/"abc"']
    assert cursor_of(settings) == {"feeds": {server.url + "/t/2144.rss": {"etag": 'W/"abc"'}}}
    assert scalar(settings, "SELECT count(*) FROM posts") == 25


def test_an_html_page_instead_of_a_feed_fails_with_a_clear_error(tmp_path):
    with ReplayServer() as server:
        server.add("/feed/", Reply("<!doctype html><html><body><h1>Moved</h1></body></html>"))
        settings = feed_settings(tmp_path, [server.url + "/feed/"])
        result = run(settings)
    assert result.status == "failed"
    assert result.error.startswith(f"source 'feeds' ({server.url}/feed/): malformed feed: an HTML page, not a feed")


def test_a_truncated_feed_keeps_the_readable_items_and_is_reported(tmp_path):
    text = fixture_text(TOPIC_FEED)
    cut = text[: text.index("<item>", text.index("<item>") + 10) + 200]
    with ReplayServer() as server:
        server.add("/t/2144.rss", Reply(cut, 200, RSS))
        settings = feed_settings(tmp_path, [server.url + "/t/2144.rss"])
        result = run(settings)
    assert result.status == "partial"
    assert "feed is not well-formed" in result.problems[0] and f"{server.url}/t/2144.rss" in result.problems[0]
    assert result.problems[1] == f"{server.url}/t/2144.rss: item 2: incomplete item (no guid or link) in a broken " \
                                 "feed; not stored"
    stored = [r[0] for r in sql(settings, "SELECT native_id FROM posts")]
    assert stored == ["discuss.criticalfallibilism.com-post-2144-31"]


def test_comment_feeds_are_checked_even_when_the_main_feed_is_unchanged(tmp_path):
    with ReplayServer() as server:
        serve_blog(server)
        server.routes = [r for r in server.routes if r.path != "/feed/"]
        main = fixture_text(MAIN_FEED).replace(
            f"<wfw:commentRss>{POST_FEED}</wfw:commentRss>",
            f"<wfw:commentRss>{server.url}/2009/03/wth-reading-books/feed/</wfw:commentRss>").replace(
            "<slash:comments>0</slash:comments>", "<slash:comments>3</slash:comments>", 1)
        server.add("/feed/", Reply(main, 200, {**RSS, "ETag": '"main-1"'}), Reply(b"", 304))
        settings = feed_settings(tmp_path, [server.url + "/feed/"], follow_comment_feeds=True)
        run(settings)
        again = run(settings)
    assert again.status == "ok" and again.new == 0
    assert [r.path for r in server.requests[2:]] == ["/feed/", "/2009/03/wth-reading-books/feed/"]
    assert server.requests[2].headers["if-none-match"] == '"main-1"'
