"""Comment sections of saved pages (genuine themes, Disqus no-script, unseen themes), served on
127.0.0.1 and collected into DuckDB."""

from __future__ import annotations

from tests.source_helpers import DATA, ReplayServer, cursor_of, run, scalar, source_settings, sql
from tests.support.http_server import Reply, require_shared_fixtures

LEMIRE = "html/wp_lemire_me_simdjson_5_comments.html"
WPCOM = "html/wpcom_blog_wordpress_com_diverse_13_comments.html"
NERVOUS = "html/wp_thenervousbreakdown_11_comments.html"
DISQUS = "html/disqus_noscript_toptal_python_comments.html"
ASTRA = DATA / "html" / "astra_like_theme.html"
CUSTOM = DATA / "html" / "custom_theme_needs_selectors.html"
TALK_SELECTORS = {"comment": ".talk-entry", "author": ".talk-who", "time": ".talk-when", "text": ".talk-body",
                  "children": ".talk-replies"}


def html_settings(tmp_path, urls, **extra):
    return source_settings(tmp_path, {"name": "pages", "type": "html", "urls": urls, **extra})


def rows(settings):
    """native_id -> (parent native_id, thread native_id, text, created_at as text)."""
    out = {}
    for native, parent, thread, text, created in sql(
            settings, "SELECT native_id, parent_id, thread_id, text, strftime(created_at AT TIME ZONE 'UTC', "
                      "'%Y-%m-%d %H:%M') FROM posts"):
        out[native] = (parent.rsplit(":", 1)[-1] if parent else None, thread.rsplit(":", 1)[-1], text, created)
    return out


def test_wordpress_theme_comments_keep_ids_authors_times_and_nesting(tmp_path):
    require_shared_fixtures()
    with ReplayServer() as server:
        server.add_fixture("/blog/simdjson/", LEMIRE)
        settings = html_settings(tmp_path, [server.url + "/blog/simdjson/"])
        first = run(settings)
        second = run(settings)
    assert first.status == "ok" and first.new == 6
    assert second.status == "ok" and second.new == 0 and second.updated == 0
    got = rows(settings)
    assert set(got) == {"post-17725", "comment-421882", "comment-422154", "comment-422230", "comment-422240",
                        "comment-422257"}
    assert got["comment-422230"][:2] == ("comment-422154", "post-17725")
    assert got["comment-422257"][0] == "comment-422240"
    assert got["comment-421882"][0] == "post-17725" and got["post-17725"][0] is None
    assert got["comment-422154"][2] == "vcpkg has simdjson in its repo (for those that did not know)."
    assert got["comment-421882"][3] == "2019-08-03 04:11"
    assert got["post-17725"][2].startswith("JSON parsing: simdjson vs. JSON for Modern C++")
    assert "Leave a Reply" not in got["post-17725"][2] and "degski" not in got["post-17725"][2]
    authors = dict(sql(settings, "SELECT native_id, author FROM post_store"))
    assert authors["comment-422230"] == "Daniel Lemire" and authors["comment-422240"] == "wmu"


def test_a_theme_closing_the_li_before_its_replies_still_nests_them(tmp_path):
    require_shared_fixtures()
    with ReplayServer() as server:
        server.add_fixture("/2019/06/19/diverse/", WPCOM)
        settings = html_settings(tmp_path, [server.url + "/2019/06/19/diverse/"])
        result = run(settings)
    assert result.status == "ok" and result.new == 14
    got = rows(settings)
    assert got["comment-411829"][0] == "comment-411811"
    assert got["comment-411831"][0] == "comment-411829"
    assert got["comment-411834"][0] == "comment-411821"
    assert got["comment-411817"][0] == "post-41513"  # the article's id from div#post-41513
    # "Jun 20th at 2:41 am" has no year: it comes from the article (published 2019-06-19).
    assert got["comment-411811"][3] == "2019-06-20 02:41"
    assert "Liked by" not in got["comment-411811"][2] and got["comment-411811"][2].startswith("Are there workshops")


def test_printed_comment_times_are_parsed_and_theme_chrome_is_left_out(tmp_path):
    require_shared_fixtures()
    with ReplayServer() as server:
        server.add_fixture("/loneliest/", NERVOUS)
        settings = html_settings(tmp_path, [server.url + "/loneliest/"])
        run(settings)
    got = rows(settings)
    assert len(got) == 12
    assert got["comment-148542"][3] == "2011-07-11 12:25"   # "July 11, 2011 at 12:25 pm"
    text = got["comment-148542"][2]
    assert text.startswith("“How can you not hear Ann Wilson")
    assert "says" not in text and "Reply" not in text and "Art Edwards" not in text
    assert got["comment-148605"][0] == "comment-148573"
    assert got["post-67347"][2].startswith("The Loneliest Woman in the World")


def test_disqus_noscript_comments_get_stable_ids_and_no_invented_times(tmp_path):
    require_shared_fixtures()
    with ReplayServer() as server:
        server.add_fixture("/python-mistakes", DISQUS)
        settings = html_settings(tmp_path, [server.url + "/python-mistakes"])
        first = run(settings)
        ids_first = {r[0] for r in sql(settings, "SELECT native_id FROM posts")}
        second = run(settings)
    assert first.new == 87 and second.new == 0
    assert ids_first == {r[0] for r in sql(settings, "SELECT native_id FROM posts")}
    got = rows(settings)
    root = next(k for k in got if k.startswith("page-"))
    comments = {k: v for k, v in got.items() if k != root}
    assert len(comments) == 86 and all(k.startswith("h-") for k in comments)
    assert all(v[0] == root and v[1] == root for v in comments.values())
    assert all(v[3] is None for v in comments.values())  # Disqus' fallback prints no dates
    assert any(v[2] == "That's good. May I possibly translate this article into Korean?" for v in comments.values())
    assert scalar(settings, "SELECT raw->>'method' FROM post_store WHERE native_id = ?", [next(iter(comments))]) \
        == "disqus-noscript"


def test_an_unseen_astra_like_theme_is_read_by_the_heuristics(tmp_path):
    with ReplayServer() as server:
        server.add_fixture("/2023/04/scoring-citizens/", ASTRA)
        settings = html_settings(tmp_path, [server.url + "/2023/04/scoring-citizens/"])
        result = run(settings)
    assert result.status == "ok"
    got = rows(settings)
    assert set(got) == {"post-88", "comment-1201", "comment-1207", "comment-1212", "comment-1230"}
    assert got["comment-1207"][0] == "comment-1201" and got["comment-1212"][0] == "comment-1207"
    assert got["comment-1230"][0] == "post-88"
    assert got["comment-1207"][3] == "2023-04-11 10:40"  # datetime attribute, +02:00 -> UTC
    assert got["comment-1207"][2].startswith("Yes – though the court blacklist")
    assert "Reply" not in got["comment-1201"][2] and "Post author" not in got["comment-1207"][2]
    assert dict(sql(settings, "SELECT native_id, author FROM post_store"))["comment-1207"] == "Mei Lin"


def test_an_unknown_theme_needs_selector_overrides_and_then_works(tmp_path):
    with ReplayServer() as server:
        server.add_fixture("/debatte", CUSTOM)
        plain = html_settings(tmp_path / "plain", [server.url + "/debatte"])
        run(plain)
        assert scalar(plain, "SELECT count(*) FROM posts") == 1  # the article only: nothing looks like a comment
        tuned = html_settings(tmp_path / "tuned", [server.url + "/debatte"], selectors=TALK_SELECTORS)
        first = run(tuned)
        second = run(tuned)
    assert first.status == "ok" and first.new == 6 and second.new == 0
    got = rows(tuned)
    root = next(k for k in got if k.startswith("page-"))
    by_text = {v[2]: (k, v) for k, v in got.items()}
    reply_id, reply = by_text["Laut Satzungsentwurf werden die Daten nach zwölf Monaten gelöscht."]
    parent_id, parent = by_text["Freiwillig ist es nur am Anfang. Wer Daten sammelt, findet später neue Zwecke."]
    assert reply[0] == parent_id and parent[0] == root
    assert by_text["Satzungen kann man ändern."][1][0] == reply_id
    assert reply[3] == "2024-02-05 09:40"           # from the title attribute
    assert by_text["Nachtrag: Die Teilnahme sollte jederzeit widerrufbar sein."][1][3] is None  # "gerade eben"


def test_a_selector_matching_nothing_makes_the_run_partial_with_the_reason(tmp_path):
    with ReplayServer() as server:
        server.add_fixture("/debatte", CUSTOM)
        settings = html_settings(tmp_path, [server.url + "/debatte"], selectors={"comment": ".no-such-thing"})
        result = run(settings)
    assert result.status == "partial"
    assert result.problems == [f"{server.url}/debatte: the selector '.no-such-thing' matched no comment"]


def test_comment_pages_are_followed_and_share_the_article_thread(tmp_path):
    page = ASTRA.read_text(encoding="utf-8")
    nav = ('<nav class="navigation comment-navigation"><div class="nav-links"><div class="nav-previous">'
           '<a href="/2023/04/scoring-citizens/comment-page-2/#comments">Older Comments</a></div></div></nav>')
    page1 = page.replace('<div id="respond"', nav + '<div id="respond"')
    page2 = page.replace("comment-12", "comment-13").replace("replytocom=12", "replytocom=13")
    with ReplayServer() as server:
        server.add("/2023/04/scoring-citizens/", Reply(page1))
        server.add("/2023/04/scoring-citizens/comment-page-2/", Reply(page2))
        settings = html_settings(tmp_path, [server.url + "/2023/04/scoring-citizens/"])
        result = run(settings)
    assert result.status == "ok" and result.new == 9
    got = rows(settings)
    assert got["comment-1307"][:2] == ("comment-1301", "post-88")
    assert {v[1] for v in got.values()} == {"post-88"}
    assert len(server.requests_to("/2023/04/scoring-citizens/comment-page-2/")) == 1


def test_robots_txt_disallow_is_honoured_and_recorded(tmp_path):
    with ReplayServer() as server:
        server.add("/robots.txt", Reply("User-agent: framewatch\nDisallow: /private/\n\nUser-agent: *\nDisallow:\n",
                                        200, {"Content-Type": "text/plain"}))
        server.add_fixture("/private/scoring/", ASTRA)
        server.add_fixture("/public/scoring/", ASTRA)
        settings = html_settings(tmp_path, [server.url + "/private/scoring/", server.url + "/public/scoring/"])
        result = run(settings)
    assert result.status == "ok" and result.skipped_consent == 1
    assert not server.requests_to("/private/scoring/") and len(server.requests_to("/public/scoring/")) == 1
    assert scalar(settings, "SELECT count(*) FROM posts") == 5
    assert sql(settings, "SELECT action, detail FROM provenance") == [
        ("skipped_consent", server.url + "/private/scoring/")]


def test_json_where_a_page_was_expected_fails_clearly_and_keeps_earlier_pages(tmp_path):
    with ReplayServer() as server:
        server.add_fixture("/good/", ASTRA)
        server.add("/api-not-a-page", Reply({"comments": []}))
        settings = html_settings(tmp_path, [server.url + "/good/", server.url + "/api-not-a-page"])
        result = run(settings)
    assert result.status == "failed"
    assert result.error == (f"source 'pages' ({server.url}/api-not-a-page): expected an HTML page but got JSON "
                            "(content-type application/json; charset=utf-8)")
    assert scalar(settings, "SELECT count(*) FROM posts") == 5


def test_a_missing_page_is_reported_and_the_others_are_collected(tmp_path):
    with ReplayServer() as server:
        server.add_fixture("/good/", ASTRA)
        settings = html_settings(tmp_path, [server.url + "/gone/", server.url + "/good/"])
        result = run(settings)
    assert result.status == "partial"
    assert result.problems == [f"{server.url}/gone/: page missing (HTTP 404)"]
    assert scalar(settings, "SELECT count(*) FROM posts") == 5


def test_an_unchanged_page_is_not_downloaded_again(tmp_path):
    with ReplayServer() as server:
        server.add("/p/", Reply(ASTRA.read_text(encoding="utf-8"), 200, {"ETag": '"v1"'}), Reply(b"", 304))
        settings = html_settings(tmp_path, [server.url + "/p/"])
        run(settings)
        again = run(settings)
    assert again.status == "ok" and again.new == 0
    assert server.requests_to("/p/")[1].headers.get("if-none-match") == '"v1"'
    assert cursor_of(settings)["pages"][server.url + "/p/"]["etag"] == '"v1"'
    assert scalar(settings, "SELECT count(*) FROM posts") == 5


def test_comment_pages_are_still_checked_when_the_first_page_is_unchanged(tmp_path):
    page = ASTRA.read_text(encoding="utf-8")
    nav = ('<nav class="comment-navigation"><a href="/2023/04/scoring-citizens/comment-page-2/">Older</a></nav>')
    page1 = page.replace('<div id="respond"', nav + '<div id="respond"')
    page2 = page.replace("comment-12", "comment-13").replace("replytocom=12", "replytocom=13")
    page2_later = page2.replace("</ol>\n<div id=\"respond\"", '<li id="li-comment-1399" class="comment"><article '
                                'id="comment-1399"><cite><b class="fn">Late</b></cite><section class="ast-comment-'
                                'content"><p>One more thought.</p></section></article></li></ol>\n<div id="respond"')
    assert page2_later != page2
    with ReplayServer() as server:
        server.add("/2023/04/scoring-citizens/", Reply(page1, 200, {"ETag": '"p1"'}), Reply(b"", 304))
        server.add("/2023/04/scoring-citizens/comment-page-2/", Reply(page2), Reply(page2_later))
        settings = html_settings(tmp_path, [server.url + "/2023/04/scoring-citizens/"])
        run(settings)
        again = run(settings)
    assert again.status == "ok" and again.new == 1
    assert rows(settings)["comment-1399"][:2] == ("post-88", "post-88")
