"""The Mastodon source over real HTTP on 127.0.0.1, with the real Mastodon.py client.

Recorded payloads (../shared/fixtures/mastodon) are replayed by ReplayServer with their
recorded headers; mastodon-mock (a stateful Mastodon API) builds threads we can then edit
and delete. Everything is stored through ``collect_one`` into a DuckDB file in tmp_path and
checked with SQL.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import sqlite3
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import duckdb
import pytest

from flows.collect import collect_one
from flows.context import collector_context
from flows.sources import SourceError, build_collector
from flows.sources.mastodon import parse_thread
from tests.support.http_server import ReplayServer
from tests.support.http_server import SHARED_FIXTURES, Reply, require_shared_fixtures
from tests.support.settings import make_settings
from warehouse.db import open_warehouse

DATA = Path(__file__).parent / "data" / "mastodon"
ROOT_ID = "109294719267373593"              # the recorded mastodon.social thread
LEAF_ID = "114027213608365869"              # the recorded fosstodon.org reply
ANCESTOR_ID = "114026814291152535"          # its recorded parent
TAG = "fgiztsshwiaqqiztpmmjbtvmescsculuvmgjgopwoeidbcrixp"  # the recorded hashtag walk
TAG_PATH = f"/api/v1/timelines/tag/{TAG}"
PAGE1_NEWEST = "117020581413876942"
PAGE1_OLDEST = "117020581339834938"         # also the max_id of the recorded Link rel="next"
TOKEN_ENV = "FRAMEWATCH_TEST_MASTODON_TOKEN"
TOKEN = "tok-Zq81-secret-value-never-stored"
MOCK_DB = "mock.sqlite"
FAST_HTTP = {"backoff_base_s": 0.01, "max_wait_s": 5.0, "timeout_s": 2.0, "max_retries": 3}


# -- helpers ------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _pseudonym_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAMEWATCH_PSEUDONYM_KEY", "test-pseudonym-key")


@pytest.fixture
def replay() -> Iterator[ReplayServer]:
    """A replay server that also answers the instance endpoints Mastodon.py asks for."""
    require_shared_fixtures()
    with ReplayServer() as server:
        server.add_fixture("/api/v1/instance/", "mastodon/instance_v1_mastodon_hk.json")
        server.add_fixture("/api/v2/instance/", "mastodon/instance_v2_mastodon_social.json")
        yield server


def fixture_json(name: str) -> Any:
    return json.loads((SHARED_FIXTURES / "mastodon" / name).read_text(encoding="utf-8"))


def data_json(name: str) -> Any:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def source(instance: str, **keys: Any) -> dict[str, Any]:
    return {"name": "fedi", "type": "mastodon", "instance": instance, **keys}


@pytest.fixture(scope="session")
def empty_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated, empty warehouse made once; each test starts from a copy (as after
    ``framewatch init``), which keeps the suite fast."""
    path = tmp_path_factory.mktemp("template") / "wh.duckdb"
    open_warehouse(path).close()
    return path


@pytest.fixture(autouse=True)
def _fresh_warehouse(tmp_path: Path, empty_warehouse: Path) -> None:
    shutil.copyfile(empty_warehouse, tmp_path / "wh.duckdb")


def settings_for(tmp_path: Path, *sources: dict[str, Any], **http: Any):
    return make_settings(tmp_path, sources=list(sources), http={**FAST_HTTP, **http})


_readers: dict[Path, Any] = {}


@pytest.fixture(autouse=True)
def _close_readers() -> Iterator[None]:
    yield
    close_readers()


def close_readers() -> None:
    while _readers:
        _readers.popitem()[1].close()


def reader(settings) -> Any:
    """One read-only connection per warehouse between collections (DuckDB allows one
    configuration per file in a process, so it is closed before the next collection)."""
    path = settings.warehouse_path
    if path not in _readers:
        _readers[path] = duckdb.connect(str(path), read_only=True)
    return _readers[path]


def collect(settings, run_id: str):
    close_readers()
    return collect_one(settings, "fedi", run_id)


def rows(settings, sql: str, params: list[Any] | None = None) -> list[tuple]:
    return reader(settings).execute(sql, params or []).fetchall()


def value(settings, sql: str, params: list[Any] | None = None) -> Any:
    return rows(settings, sql, params)[0][0]


def stored_cursor(settings) -> dict[str, Any]:
    return json.loads(value(settings, "SELECT cursor FROM source_cursors WHERE source = 'fedi'"))


def dump_everything(settings) -> str:
    """Every row of every table in the warehouse as one string."""
    tables = [t for (t,) in rows(
        settings, "SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'")]
    return "\n".join(repr(rows(settings, f'SELECT * FROM "{t}"')) for t in tables)


def pid(site: str, native_id: str) -> str:
    return f"mastodon:{site}:{native_id}"


def serve_thread(server: ReplayServer, *, consenting: bool) -> None:
    """The recorded 59-reply context under a stand-in root status."""
    server.add_fixture(f"/api/v1/statuses/{ROOT_ID}", DATA / f"root_status_{ROOT_ID}.json")
    rewrite = (lambda text: text.replace('"indexable":false', '"indexable":true')) if consenting else None
    server.add_fixture(f"/api/v1/statuses/{ROOT_ID}/context",
                       "mastodon/context_59_descendants_mastodon_social.json", rewrite=rewrite)


def serve_tag_walk(server: ReplayServer) -> None:
    """Recorded page 1 (its Link points at this server) and the recorded empty last page."""
    to_here = lambda text: text.replace("http://localhost:3000", server.url)  # noqa: E731
    server.add_fixture(TAG_PATH, "mastodon/tag_timeline_page4_empty_localhost.json",
                       query={"max_id": PAGE1_OLDEST}, rewrite=to_here)
    server.add_fixture(TAG_PATH, "mastodon/tag_timeline_page1_localhost.json", rewrite=to_here)


def page1_reply() -> Reply:
    """Recorded page 1 as a plain Reply (for fault sequences), without its Link header."""
    return Reply((SHARED_FIXTURES / "mastodon" / "tag_timeline_page1_localhost.json").read_text(encoding="utf-8"))


# -- mastodon-mock --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One mastodon-mock server for the module, on a file database. Tests keep to their own
    threads, hashtags and accounts. The mock creates every account with ``indexable: false``
    (as Mastodon does for accounts that never chose); all but carol are opted in here."""
    from mastodon_mock.config import DatabaseConfig, MastodonMockConfig, SeedAccount, SeedConfig
    from mastodon_mock.testing import MockServer

    people = ["alice", "bob", "carol", "erin", "frank"]
    seed = SeedConfig(accounts=[SeedAccount(username=name, display_name=name.title(),
                                            access_token=f"{name}_token") for name in people])  # nosec B106
    db_path = tmp_path_factory.mktemp("mock") / MOCK_DB
    with MockServer(config=MastodonMockConfig(database=DatabaseConfig(path=str(db_path)), seed=seed)) as server:
        set_indexable(db_path, ("alice", "bob", "erin", "frank"), True)
        yield server


def set_indexable(db_path: Path, usernames: tuple[str, ...], indexable: bool) -> None:
    with contextlib.closing(sqlite3.connect(db_path)) as db:
        marks = ",".join("?" for _ in usernames)
        db.execute(f"UPDATE accounts SET indexable = ? WHERE username IN ({marks})", [int(indexable), *usernames])
        db.commit()


def mock_site(settings) -> str:
    """The site (host:port) of the mock server a source collected from."""
    return settings.source("fedi").options()["instance"].split("://", 1)[1]


def build_thread(server, replier: str = "bob") -> dict[str, str]:
    """root (alice) <- first (replier) <- second (alice); root <- carol's reply (not opted in)."""
    alice, other, carol = server.client("alice"), server.client(replier), server.client("carol")
    root = alice.status_post("Is a social credit score ever fair? #fairness")
    first = other.status_post("Only with a right to appeal.", in_reply_to_id=root["id"])
    second = alice.status_post("Who would hear the appeal?", in_reply_to_id=first["id"])
    carols = carol.status_post("I would rather not be quoted.", in_reply_to_id=root["id"])
    return {"root": str(root["id"]), "first": str(first["id"]), "second": str(second["id"]),
            "carol": str(carols["id"])}


# -- threads --------------------------------------------------------------------------------


def test_thread_stores_root_and_its_59_replies_with_parent_links(tmp_path, replay):
    # The recorded accounts mostly did not opt in to indexing; this test is about thread
    # structure, so the replay marks every account indexable (the next test uses them as recorded).
    serve_thread(replay, consenting=True)
    settings = settings_for(tmp_path, source(replay.url, threads=[ROOT_ID]))

    result = collect(settings, "run-1")

    assert result.status == "ok", result.error
    assert (result.new, result.skipped_consent) == (60, 0)
    site = replay.host
    descendants = fixture_json("context_59_descendants_mastodon_social.json")["descendants"]
    expected = {pid(site, s["id"]): pid(site, s["in_reply_to_id"]) for s in descendants}
    got = dict(rows(settings, "SELECT post_id, parent_id FROM posts WHERE post_id <> ?", [pid(site, ROOT_ID)]))
    assert got == expected
    assert value(settings, "SELECT count(*) FROM posts WHERE parent_id = ?", [pid(site, ROOT_ID)]) == 43
    assert rows(settings, "SELECT DISTINCT thread_id FROM posts") == [(pid(site, ROOT_ID),)]
    assert rows(settings, "SELECT parent_id FROM posts WHERE post_id = ?", [pid(site, ROOT_ID)]) == [(None,)]
    assert value(settings, "SELECT n_posts FROM threads") == 60

    # Content as received, careful text, url, language and the raw status as the server sent it.
    first = descendants[0]
    content, text, url, lang, raw = rows(
        settings, "SELECT content, text, url, lang, raw FROM post_store WHERE native_id = ?", [first["id"]])[0]
    assert content == first["content"]
    assert "#SupportMastodon" in text and "@Gargron @Mastodon" in text
    assert text.endswith("mastodon.social/@austinkocher/…") and "https://" not in text
    assert url == first["url"] and lang == "en"
    assert json.loads(raw)["account"]["indexable"] is True and json.loads(raw)["content"] == first["content"]


def test_thread_as_recorded_stores_only_replies_from_consenting_accounts(tmp_path, replay):
    serve_thread(replay, consenting=False)
    settings = settings_for(tmp_path, source(replay.url, threads=[ROOT_ID]))

    result = collect(settings, "run-1")

    descendants = fixture_json("context_59_descendants_mastodon_social.json")["descendants"]
    opted_in = {s["id"] for s in descendants if s["account"].get("indexable") is True}
    opted_out = {s["id"] for s in descendants} - opted_in
    assert (len(opted_in), len(opted_out)) == (9, 50)
    assert (result.new, result.skipped_consent) == (10, 50)
    assert {n for (n,) in rows(settings, "SELECT native_id FROM posts")} == opted_in | {ROOT_ID}
    skipped = rows(settings, "SELECT native_id, reason, detail FROM provenance WHERE action = 'skipped_consent'")
    assert {n for n, _, _ in skipped} == opted_out
    assert {r for _, r, _ in skipped} == {"account is not indexable (indexable: false)"}
    assert value(settings, "SELECT count(*) FROM post_store WHERE native_id IN ?", [list(opted_out)]) == 0
    # No author and no text of theirs: the provenance row holds the status id and the reason.
    authors = {a for (a,) in rows(settings, "SELECT author FROM post_store")}
    assert not authors & {s["account"]["acct"] for s in descendants if s["id"] in opted_out}
    assert {d for _, _, d in skipped} == {None}
    # Replies that are stored keep their parent link, even to a status that is not stored.
    for status in descendants:
        if status["id"] in opted_in:
            assert value(settings, "SELECT parent_id FROM posts WHERE native_id = ?", [status["id"]]) == \
                pid(replay.host, status["in_reply_to_id"])


def test_thread_rerun_adds_no_rows_and_no_history(tmp_path, replay):
    serve_thread(replay, consenting=True)
    settings = settings_for(tmp_path, source(replay.url, threads=[ROOT_ID]))
    collect(settings, "run-1")

    again = collect(settings, "run-2")

    assert again.status == "ok" and (again.new, again.updated) == (0, 0)
    assert value(settings, "SELECT count(*) FROM post_store") == 60
    assert value(settings, "SELECT count(*) FROM post_history") == 0
    assert value(settings, "SELECT count(*) FROM post_store WHERE deleted_at IS NOT NULL") == 0
    assert len(stored_cursor(settings)[f"thread:{ROOT_ID}"]["ids"]) == 60


def test_thread_url_on_another_server_is_read_from_its_origin_without_the_token(tmp_path, replay, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    with ReplayServer() as origin:
        origin.add_fixture(f"/api/v1/statuses/{LEAF_ID}", DATA / f"leaf_status_{LEAF_ID}.json")
        origin.add_fixture(f"/api/v1/statuses/{LEAF_ID}/context", "mastodon/context_with_ancestor_fosstodon.json")
        thread_url = f"{origin.url}/@leaf_replier/{LEAF_ID}"
        settings = settings_for(tmp_path, source(replay.url, threads=[thread_url], token_env=TOKEN_ENV))

        result = collect(settings, "run-1")

        assert result.status == "ok", result.error
        assert [r.path for r in origin.requests] == [f"/api/v1/statuses/{LEAF_ID}",
                                                     f"/api/v1/statuses/{LEAF_ID}/context"]
        assert all("authorization" not in r.headers for r in origin.requests)
        assert not replay.requests_to(f"/api/v1/statuses/{LEAF_ID}")
        site = origin.host
        # The reply is stored under the origin's host and id, in the thread of its ancestor,
        # which the recorded account did not open to indexing (skipped, with provenance).
        assert rows(settings, "SELECT post_id, parent_id, thread_id FROM posts") == [
            (pid(site, LEAF_ID), pid(site, ANCESTOR_ID), pid(site, ANCESTOR_ID))]
        assert rows(settings, "SELECT site, native_id FROM provenance WHERE action = 'skipped_consent'") == [
            (site, ANCESTOR_ID)]


def test_thread_url_in_an_unknown_form_is_resolved_by_search_on_its_own_server(tmp_path, replay):
    leaf = data_json(f"leaf_status_{LEAF_ID}.json")
    with ReplayServer() as origin:
        thread_url = f"{origin.url}/notes/9xyz"  # not a path whose status id can be read off
        origin.add("/api/v2/search", Reply({"accounts": [], "hashtags": [],
                                            "statuses": [dict(leaf, url=thread_url)]}), query={"q": thread_url})
        origin.add_fixture(f"/api/v1/statuses/{LEAF_ID}", DATA / f"leaf_status_{LEAF_ID}.json")
        origin.add_fixture(f"/api/v1/statuses/{LEAF_ID}/context", "mastodon/context_with_ancestor_fosstodon.json")
        settings = settings_for(tmp_path, source(replay.url, threads=[thread_url]))

        result = collect(settings, "run-1")

    assert result.status == "ok", result.error
    assert [r.path for r in origin.requests] == ["/api/v2/search", f"/api/v1/statuses/{LEAF_ID}",
                                                 f"/api/v1/statuses/{LEAF_ID}/context"]
    assert rows(settings, "SELECT native_id FROM posts") == [(LEAF_ID,)]


@pytest.mark.parametrize("with_token", [False, True], ids=["anonymous", "with-token"])
def test_capped_thread_context_logs_a_warning_only_without_a_token(tmp_path, replay, caplog, monkeypatch,
                                                                   with_token):
    if with_token:
        monkeypatch.setenv(TOKEN_ENV, TOKEN)
    root = data_json(f"root_status_{ROOT_ID}.json")
    replies = []
    for n in range(60):
        reply = dict(root, id=str(int(ROOT_ID) + 1 + n), in_reply_to_id=ROOT_ID, content=f"<p>reply {n}</p>")
        replies.append(reply)
    replay.add_fixture(f"/api/v1/statuses/{ROOT_ID}", DATA / f"root_status_{ROOT_ID}.json")
    replay.add(f"/api/v1/statuses/{ROOT_ID}/context", Reply({"ancestors": [], "descendants": replies}))
    settings = settings_for(tmp_path, source(replay.url, threads=[ROOT_ID], token_env=TOKEN_ENV))
    caplog.set_level(logging.WARNING, logger="framewatch.sources.mastodon")

    result = collect(settings, "run-1")

    assert result.new == 61
    capped = [r.getMessage() for r in caplog.records if "cap" in r.getMessage()]
    if with_token:
        assert capped == []
    else:
        assert len(capped) == 1 and "60 descendants" in capped[0] and "without a token" in capped[0]


def test_edited_status_updates_the_post_and_keeps_the_old_version_in_history(tmp_path, mock):
    ids = build_thread(mock)
    settings = settings_for(tmp_path, source(mock.base_url, threads=[ids["root"]]))
    first = collect(settings, "run-1")
    mock.client("bob").status_update(ids["first"], "Only with a right to appeal, heard by people.")

    second = collect(settings, "run-2")

    assert (first.new, first.skipped_consent) == (3, 1)  # carol never opted in
    assert (second.new, second.updated) == (0, 1)
    site = mock_site(settings)
    post = pid(site, ids["first"])
    assert value(settings, "SELECT text FROM posts WHERE post_id = ?", [post]) == \
        "Only with a right to appeal, heard by people."
    assert value(settings, "SELECT edited_at IS NOT NULL FROM posts WHERE post_id = ?", [post])
    assert rows(settings, "SELECT text, run_id FROM post_history WHERE post_id = ?", [post]) == [
        ("Only with a right to appeal.", "run-2")]
    assert value(settings, "SELECT count(*) FROM provenance WHERE action = 'edited' AND native_id = ?",
                 [ids["first"]]) == 1


def test_thread_status_that_answers_404_is_marked_deleted_and_its_text_removed(tmp_path, mock):
    ids = build_thread(mock)
    settings = settings_for(tmp_path, source(mock.base_url, threads=[ids["root"]]))
    collect(settings, "run-1")
    mock.client("alice").status_delete(ids["second"])

    result = collect(settings, "run-2")

    assert result.status == "ok"
    site = mock_site(settings)
    gone = pid(site, ids["second"])
    assert value(settings, "SELECT count(*) FROM posts WHERE post_id = ?", [gone]) == 0
    assert rows(settings, "SELECT content, text, raw, deleted_at IS NOT NULL FROM post_store WHERE post_id = ?",
                [gone]) == [(None, None, None, True)]
    assert rows(settings, "SELECT native_id FROM provenance WHERE action = 'deleted'") == [(ids["second"],)]
    assert ids["second"] not in stored_cursor(settings)[f"thread:{ids['root']}"]["ids"]
    assert value(settings, "SELECT count(*) FROM posts") == 2


def test_deleted_thread_root_is_marked_deleted_while_surviving_replies_stay(tmp_path, mock):
    ids = build_thread(mock)
    settings = settings_for(tmp_path, source(mock.base_url, threads=[ids["root"]]))
    collect(settings, "run-1")
    mock.client("alice").status_delete(ids["root"])

    result = collect(settings, "run-2")

    assert result.status == "ok", result.error
    assert rows(settings, "SELECT native_id FROM provenance WHERE action = 'deleted'") == [(ids["root"],)]
    assert {n for (n,) in rows(settings, "SELECT native_id FROM posts")} == {ids["first"], ids["second"]}


def test_account_that_withdraws_consent_has_its_stored_posts_removed(tmp_path, mock):
    ids = build_thread(mock, replier="frank")
    settings = settings_for(tmp_path, source(mock.base_url, threads=[ids["root"]]))
    collect(settings, "run-1")
    set_indexable(Path(mock.config.database.path), ("frank",), False)

    collect(settings, "run-2")

    site = mock_site(settings)
    assert rows(settings, "SELECT content, text, deleted_at IS NOT NULL FROM post_store WHERE post_id = ?",
                [pid(site, ids["first"])]) == [(None, None, True)]
    assert value(settings, "SELECT count(*) FROM provenance WHERE action = 'skipped_consent' AND native_id = ?",
                 [ids["first"]]) == 1


def test_thread_that_does_not_exist_is_reported_and_other_streams_continue(tmp_path, replay):
    serve_tag_walk(replay)
    settings = settings_for(tmp_path, source(replay.url, threads=["123"], hashtags=[TAG]))

    result = collect(settings, "run-1")

    assert result.status == "partial"
    assert result.problems == [f"thread 123: status 123 not found on {replay.host} (404)"]
    assert result.new == 10


# -- timelines and search ---------------------------------------------------------------------


def test_hashtag_timeline_follows_link_headers_to_the_empty_last_page(tmp_path, replay):
    serve_tag_walk(replay)
    settings = settings_for(tmp_path, source(replay.url, hashtags=[TAG]))

    result = collect(settings, "run-1")

    assert result.status == "ok" and result.new == 10
    asked = replay.requests_to(TAG_PATH)
    assert len(asked) == 2
    assert "max_id" not in asked[0].query and "since_id" not in asked[0].query
    assert asked[1].query["max_id"] == [PAGE1_OLDEST]  # taken from the recorded Link header
    assert stored_cursor(settings) == {f"tag:{TAG}": {"since_id": PAGE1_NEWEST}}
    page = fixture_json("tag_timeline_page1_localhost.json")
    assert {n for (n,) in rows(settings, "SELECT native_id FROM posts")} == {s["id"] for s in page}
    assert value(settings, "SELECT text FROM posts WHERE native_id = ?", [PAGE1_NEWEST]) == f"Toot number 29! #{TAG}"


def test_second_run_asks_only_for_newer_statuses_and_adds_no_rows(tmp_path, replay):
    serve_tag_walk(replay)
    replay.add(TAG_PATH, Reply([]), query={"since_id": PAGE1_NEWEST})
    settings = settings_for(tmp_path, source(replay.url, hashtags=[TAG]))
    collect(settings, "run-1")
    before = len(replay.requests_to(TAG_PATH))

    again = collect(settings, "run-2")

    later = replay.requests_to(TAG_PATH)[before:]
    assert [r.query.get("since_id") for r in later] == [[PAGE1_NEWEST]]
    assert again.status == "ok" and again.new == 0
    assert value(settings, "SELECT count(*) FROM post_store") == 10
    assert stored_cursor(settings) == {f"tag:{TAG}": {"since_id": PAGE1_NEWEST}}


def test_search_v2_pages_with_max_id_and_later_asks_with_min_id(tmp_path, replay):
    found = fixture_json("search_v2_mastodon_social.json")["statuses"]
    newest, oldest = found[0]["id"], found[1]["id"]
    replay.add_fixture("/api/v2/search", "mastodon/search_v2_mastodon_social.json")
    empty = Reply({"accounts": [], "statuses": [], "hashtags": []})
    replay.add("/api/v2/search", empty, query={"max_id": oldest})
    replay.add("/api/v2/search", empty, query={"min_id": newest})
    settings = settings_for(tmp_path, source(replay.url, search=["halcy"]))

    first = collect(settings, "run-1")
    second = collect(settings, "run-2")

    assert first.status == "ok" and first.new == 2 and second.new == 0
    asked = replay.requests_to("/api/v2/search")
    assert [(r.query["q"], r.query["type"]) for r in asked] == [(["halcy"], ["statuses"])] * 3
    assert asked[1].query["max_id"] == [oldest] and asked[2].query["min_id"] == [newest]
    assert "resolve" not in asked[0].query  # resolving remote URLs needs a token
    assert rows(settings, "SELECT native_id, parent_id FROM posts ORDER BY native_id") == sorted(
        (s["id"], pid(replay.host, s["in_reply_to_id"])) for s in found)
    assert stored_cursor(settings) == {"search:halcy": {"since_id": newest}}


def test_search_with_a_token_asks_the_server_to_resolve_remote_urls(tmp_path, replay, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    replay.add("/api/v2/search", Reply({"accounts": [], "statuses": [], "hashtags": []}))
    settings = settings_for(tmp_path, source(replay.url, search=["https://example.social/@someone/1"],
                                             token_env=TOKEN_ENV))

    result = collect(settings, "run-1")

    assert result.status == "ok"
    (asked,) = replay.requests_to("/api/v2/search")
    assert asked.query["resolve"] == ["1"] and asked.query["type"] == ["statuses"]
    assert asked.headers["authorization"] == f"Bearer {TOKEN}"


def test_later_run_with_more_new_statuses_than_a_page_walks_back_to_the_stored_newest(tmp_path, mock):
    alice = mock.client("alice")
    old = [str(alice.status_post(f"Early {n} #appeals")["id"]) for n in range(2)]
    settings = settings_for(tmp_path, source(mock.base_url, hashtags=["appeals"], page_limit=2))
    collect(settings, "run-1")
    new = [str(alice.status_post(f"Later {n} #appeals")["id"]) for n in range(3)]

    # A full page newer than since_id, then rel="next" (which drops since_id) down to stored ground.
    second = collect(settings, "run-2")

    assert second.status == "ok" and second.new == 3
    assert {n for (n,) in rows(settings, "SELECT native_id FROM posts")} == set(old + new)
    assert stored_cursor(settings) == {"tag:appeals": {"since_id": new[-1]}}


def test_search_refused_without_a_token_is_reported_and_other_streams_continue(tmp_path, replay):
    replay.add("/api/v2/search", Reply({"error": "The access token is invalid"}, 401))
    serve_tag_walk(replay)
    settings = settings_for(tmp_path, source(replay.url, search=["social credit"], hashtags=[TAG]))

    result = collect(settings, "run-1")

    assert result.status == "partial" and result.new == 10
    assert len(result.problems) == 1
    assert result.problems[0].startswith("search 'social credit': the server refused the request with HTTP 401 (")
    assert result.problems[0].endswith("set token_env to a token for this server")


def test_account_timeline_is_looked_up_and_paged_to_the_end(tmp_path, mock):
    erin = mock.client("erin")
    posted = [str(erin.status_post(f"Note {n} on scoring")["id"]) for n in range(5)]
    erin.status_reblog(mock.client("bob").status_post("Bob's take")["id"])
    settings = settings_for(tmp_path, source(mock.base_url, accounts=["@erin"], page_limit=2))

    first = collect(settings, "run-1")
    newer = str(erin.status_post("Note 5 on scoring")["id"])
    second = collect(settings, "run-2")

    assert first.status == "ok", first.error
    assert first.new == 5 and second.new == 1  # the boost is not a post
    assert {n for (n,) in rows(settings, "SELECT native_id FROM posts")} == set(posted) | {newer}
    assert stored_cursor(settings) == {"account:erin": {"since_id": newer}}


def test_max_pages_stops_a_walk_that_the_next_run_resumes_without_gaps(tmp_path, mock):
    alice = mock.client("alice")
    posted = [str(alice.status_post(f"Tagged {n} #scoring")["id"]) for n in range(5)]
    settings = settings_for(tmp_path, source(mock.base_url, hashtags=["scoring"], page_limit=2, max_pages=1))

    first = collect(settings, "run-1")
    walk = stored_cursor(settings)["tag:scoring"]
    collect(settings, "run-2")
    collect(settings, "run-3")

    assert first.new == 2
    assert walk == {"walk": {"max_id": posted[3], "newest": posted[4]}}  # since_id not moved yet
    assert {n for (n,) in rows(settings, "SELECT native_id FROM posts")} == set(posted)
    assert stored_cursor(settings) == {"tag:scoring": {"since_id": posted[4]}}


def test_pages_per_batch_stores_several_pages_together_with_the_cursor_after_the_last(tmp_path, mock):
    alice = mock.client("alice")
    posted = [str(alice.status_post(f"Batched {n} #batching")["id"]) for n in range(5)]
    settings = settings_for(tmp_path, source(mock.base_url, hashtags=["batching"], page_limit=2,
                                             pages_per_batch=2))
    options = settings.source("fedi").options()
    collector = build_collector("fedi", "mastodon", options, collector_context(settings))

    batches = list(collector.collect(None))

    # Pages of 2, 2, 1 (the short last page has no rel="next"): two batches, not three.
    assert [len(b.posts) for b in batches] == [4, 1]
    assert batches[0].cursor == {"tag:batching": {"walk": {"max_id": posted[1], "newest": posted[4]}}}
    assert batches[1].cursor == {"tag:batching": {"since_id": posted[4]}}
    assert sum(b.requests for b in batches) == 4  # instance info + three pages


# -- consent and text -------------------------------------------------------------------------


def test_consent_rules_keep_opted_out_accounts_and_non_public_posts_out(tmp_path, replay):
    replay.add_fixture("/api/v1/timelines/tag/socialcredit", DATA / "consent_timeline.json")
    settings = settings_for(tmp_path, source(replay.url, hashtags=["socialcredit"]))

    result = collect(settings, "run-1")

    assert result.status == "ok" and (result.new, result.skipped_consent) == (3, 5)
    assert {n for (n,) in rows(settings, "SELECT native_id FROM post_store")} == {
        "300000000000000009", "300000000000000002", "299999999999999999"}
    assert dict(rows(settings, "SELECT native_id, reason FROM provenance WHERE action = 'skipped_consent'")) == {
        "300000000000000008": "account is not indexable (indexable: false)",
        "300000000000000007": "account asks not to be indexed (noindex: true)",
        "300000000000000006": "profile says #nobot",
        "300000000000000005": "profile says #noindex",
        "300000000000000003": "not public (visibility: private)",
    }
    dump = dump_everything(settings)
    for marker in ("UNIQUE-NOT-INDEXABLE", "UNIQUE-NOINDEX", "UNIQUE-NOBOT", "UNIQUE-FIELD", "UNIQUE-PRIVATE"):
        assert marker not in dump
    for author in ("noindex_set", "nobot_bio", "noindex_field"):
        assert author not in dump
    assert "Boosted original" not in dump  # boosts are not posts
    # A quote of an opted-out account keeps only the quoted id in the raw payload.
    quote = json.loads(value(settings, "SELECT raw FROM post_store WHERE native_id = '300000000000000002'"))["quote"]
    assert quote["quoted_status"] == {"id": "300000000000000008",
                                      "omitted": "account is not indexable (indexable: false)"}
    assert value(settings, "SELECT text FROM posts WHERE native_id = '300000000000000002'") == "Worth reading."


def test_text_is_careful_plain_text_and_html_content_spoiler_and_edit_time_are_kept(tmp_path, replay):
    replay.add_fixture("/api/v1/timelines/tag/socialcredit", DATA / "consent_timeline.json")
    settings = settings_for(tmp_path, source(replay.url, hashtags=["socialcredit"]))
    collect(settings, "run-1")
    original = data_json("consent_timeline.json")[0]

    content, text, spoiler, edited, lang, url, author_key, raw = rows(
        settings, "SELECT content, text, spoiler_text, edited_at, lang, url, author_key, raw FROM post_store "
        "WHERE native_id = ?", [original["id"]])[0]

    assert content == original["content"]
    assert text == ("Line one & more\nLine two with #socialcredit and @someone example.org/a/very/long/pat…"
                    "\n\nSecond paragraph.")
    assert spoiler == "scoring systems" and lang == "en" and url == original["url"]
    assert edited == datetime(2024, 5, 1, 11, 0, tzinfo=timezone.utc)
    assert author_key.startswith("a_") and "consenting" not in author_key
    assert json.loads(raw) == original


# -- rate limits, retries and failures ---------------------------------------------------------


def test_429_waits_until_x_ratelimit_reset_then_succeeds(tmp_path, replay):
    reset = (datetime.now(timezone.utc) + timedelta(seconds=0.6)).isoformat().replace("+00:00", "Z")
    replay.add(TAG_PATH, Reply({"error": "Too many requests"}, 429,
                               {"X-RateLimit-Reset": reset, "X-RateLimit-Remaining": "0"}), page1_reply())
    settings = settings_for(tmp_path, source(replay.url, hashtags=[TAG]))

    started = time.monotonic()
    result = collect(settings, "run-1")

    assert result.status == "ok" and result.new == 10
    assert time.monotonic() - started >= 0.5
    assert len(replay.requests_to(TAG_PATH)) == 2


def test_429_waits_for_retry_after_then_succeeds(tmp_path, replay):
    replay.add(TAG_PATH, Reply({"error": "Too many requests"}, 429, {"Retry-After": "1"}), page1_reply())
    settings = settings_for(tmp_path, source(replay.url, hashtags=[TAG]))

    started = time.monotonic()
    result = collect(settings, "run-1")

    assert result.status == "ok" and result.new == 10
    assert time.monotonic() - started >= 0.95
    assert len(replay.requests_to(TAG_PATH)) == 2


def test_429_without_reset_or_retry_after_backs_off_then_succeeds(tmp_path, replay):
    replay.add(TAG_PATH, Reply({"error": "Too many requests"}, 429), Reply({"error": "Too many requests"}, 429),
               page1_reply())
    settings = settings_for(tmp_path, source(replay.url, hashtags=[TAG]))

    result = collect(settings, "run-1")

    assert result.status == "ok" and result.new == 10
    assert len(replay.requests_to(TAG_PATH)) == 3


def test_429_asking_to_wait_beyond_max_wait_fails_at_once_naming_source_and_url(tmp_path, replay):
    replay.add(TAG_PATH, Reply({"error": "Too many requests"}, 429, {"Retry-After": "3600"}))
    settings = settings_for(tmp_path, source(replay.url, hashtags=[TAG]))

    started = time.monotonic()
    result = collect(settings, "run-1")

    assert time.monotonic() - started < 3
    assert result.status == "failed"
    assert "source 'fedi'" in result.error and f"{replay.url}{TAG_PATH}" in result.error
    assert "rate limited" in result.error and "max_wait_s" in result.error


def test_used_up_quota_waits_for_the_reset_before_the_next_request(tmp_path, replay):
    reset = (datetime.now(timezone.utc) + timedelta(seconds=0.6)).isoformat().replace("+00:00", "Z")
    to_here = lambda text: text.replace("http://localhost:3000", replay.url)  # noqa: E731
    replay.add_fixture(TAG_PATH, "mastodon/tag_timeline_page4_empty_localhost.json",
                       query={"max_id": PAGE1_OLDEST}, rewrite=to_here)
    replay.add_fixture(TAG_PATH, "mastodon/tag_timeline_page1_localhost.json", rewrite=to_here,
                       headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": reset})
    settings = settings_for(tmp_path, source(replay.url, hashtags=[TAG]))

    started = time.monotonic()
    result = collect(settings, "run-1")

    assert result.status == "ok" and result.new == 10
    assert time.monotonic() - started >= 0.5
    assert len(replay.requests_to(TAG_PATH)) == 2  # no request was spent on a 429


def test_500_then_success_is_retried(tmp_path, replay):
    replay.add(TAG_PATH, Reply({"error": "boom"}, 500), page1_reply())
    settings = settings_for(tmp_path, source(replay.url, hashtags=[TAG]))

    result = collect(settings, "run-1")

    assert result.status == "ok" and result.new == 10
    assert len(replay.requests_to(TAG_PATH)) == 2


def test_timeout_then_success_is_retried(tmp_path, replay):
    slow = page1_reply()
    slow.delay_s = 1.0
    replay.add(TAG_PATH, slow, page1_reply())
    settings = settings_for(tmp_path, source(replay.url, hashtags=[TAG]), timeout_s=0.3)

    result = collect(settings, "run-1")

    assert result.status == "ok" and result.new == 10
    assert len(replay.requests_to(TAG_PATH)) == 2


def test_503_injected_by_the_mock_is_retried(tmp_path, mock):
    ids = build_thread(mock)
    mock.fault(path=f"/api/v1/statuses/{ids['root']}/context", status=503, count=1)
    settings = settings_for(tmp_path, source(mock.base_url, threads=[ids["root"]]))

    result = collect(settings, "run-1")

    assert result.status == "ok" and result.new == 3


def test_persistent_500_fails_the_source_keeps_what_was_stored_and_resumes_the_walk(tmp_path, replay):
    to_here = lambda text: text.replace("http://localhost:3000", replay.url)  # noqa: E731
    failing = replay.add(TAG_PATH, Reply({"error": "boom"}, 500), query={"max_id": PAGE1_OLDEST})
    replay.add_fixture(TAG_PATH, "mastodon/tag_timeline_page1_localhost.json", rewrite=to_here)
    settings = settings_for(tmp_path, source(replay.url, hashtags=[TAG]))

    result = collect(settings, "run-1")

    assert result.status == "failed"
    assert "source 'fedi'" in result.error
    assert f"{replay.url}{TAG_PATH}?" in result.error and f"max_id={PAGE1_OLDEST}" in result.error
    assert "HTTP 500" in result.error and "after 4 attempts" in result.error
    assert failing.hits == 4  # max_retries = 3
    assert value(settings, "SELECT count(*) FROM posts") == 10
    # since_id does not move before the walk is complete; the walk's position does.
    assert stored_cursor(settings) == {f"tag:{TAG}": {"walk": {"max_id": PAGE1_OLDEST, "newest": PAGE1_NEWEST}}}
    assert value(settings, "SELECT status FROM collection_log WHERE run_id = 'run-1'") == "failed"

    failing.replies = [Reply([])]  # the server recovers
    resumed = collect(settings, "run-2")

    assert resumed.status == "ok" and resumed.new == 0
    assert replay.requests_to(TAG_PATH)[-1].query["max_id"] == [PAGE1_OLDEST]
    assert stored_cursor(settings) == {f"tag:{TAG}": {"since_id": PAGE1_NEWEST}}


def test_malformed_json_fails_with_an_error_naming_source_url_and_problem(tmp_path, replay):
    replay.add(TAG_PATH, Reply('[{"id": "1", "content": "<p>cut off', 200, content_type="application/json"))
    settings = settings_for(tmp_path, source(replay.url, hashtags=[TAG]))

    result = collect(settings, "run-1")

    assert result.status == "failed"
    assert "source 'fedi'" in result.error and f"{replay.url}{TAG_PATH}" in result.error
    assert "malformed JSON" in result.error and "HTTP 200" in result.error
    assert value(settings, "SELECT count(*) FROM post_store") == 0


def test_json_that_is_not_a_status_list_is_a_malformed_payload(tmp_path, replay):
    replay.add(TAG_PATH, Reply({"unexpected": "object"}))
    settings = settings_for(tmp_path, source(replay.url, hashtags=[TAG]))

    result = collect(settings, "run-1")

    assert result.status == "failed"
    assert "malformed payload" in result.error and f"{replay.url}{TAG_PATH}" in result.error


# -- the token ---------------------------------------------------------------------------------


def test_token_is_sent_to_the_instance_but_never_stored_or_logged(tmp_path, replay, monkeypatch, caplog):
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    caplog.set_level(logging.DEBUG)
    serve_thread(replay, consenting=True)
    serve_tag_walk(replay)
    # A server that echoes the token in an error must not get it into the error message.
    replay.add("/api/v1/accounts/lookup", Reply({"error": f"token {TOKEN} has no read scope"}, 422))
    settings = settings_for(tmp_path, source(replay.url, threads=[ROOT_ID], hashtags=[TAG], accounts=["someone"],
                                             token_env=TOKEN_ENV))

    result = collect(settings, "run-1")

    assert result.new == 70
    assert result.status == "failed" and "has no read scope" in result.error
    assert replay.requests_to(TAG_PATH)[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in result.error and "[redacted]" in result.error
    assert TOKEN not in dump_everything(settings)
    assert TOKEN not in caplog.text
    assert TOKEN_ENV in value(settings, "SELECT options FROM sources WHERE name = 'fedi'")


# -- configuration -------------------------------------------------------------------------------


def test_user_agent_comes_from_the_http_settings(tmp_path, replay):
    serve_tag_walk(replay)
    settings = make_settings(tmp_path, sources=[source(replay.url, hashtags=[TAG])],
                             http={**FAST_HTTP, "user_agent": "framewatch-test/1.0 (+mailto:team@example.org)"})

    collect(settings, "run-1")

    assert {r.headers["user-agent"] for r in replay.requests} == {"framewatch-test/1.0 (+mailto:team@example.org)"}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"instance": "https://mastodon.social"}, "nothing to collect"),
        ({"instance": "mastodon.social", "hashtags": ["x"]}, "base URL"),
        ({"instance": "https://mastodon.social", "threads": ["not a url"]}, "neither a status id nor a status URL"),
        ({"instance": "https://mastodon.social", "hashtags": ["two words"]}, "is not a hashtag"),
        ({"instance": "https://mastodon.social", "hashtags": ["x"], "page_limit": 80}, "page_limit"),
        ({"instance": "https://mastodon.social", "hashtags": ["x"], "tokens": "x"}, "unknown key"),
    ],
)
def test_invalid_options_are_configuration_errors(options, message):
    with pytest.raises(SourceError) as caught:
        build_collector("fedi", "mastodon", options, context=None)
    assert caught.value.fatal_config and message in str(caught.value)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("1099", ("https://home.example", "1099", None)),
        ("https://home.example/@someone/1234", ("https://home.example", "1234", "https://home.example/@someone/1234")),
        ("https://other.example/@someone/1234",
         ("https://other.example", "1234", "https://other.example/@someone/1234")),
        ("https://other.example/users/someone/statuses/1234",
         ("https://other.example", "1234", "https://other.example/users/someone/statuses/1234")),
        ("https://gts.example/@someone/statuses/01HXYZ",
         ("https://gts.example", "01HXYZ", "https://gts.example/@someone/statuses/01HXYZ")),
        ("https://pleroma.example/notice/AbC123", ("https://pleroma.example", "AbC123",
                                                   "https://pleroma.example/notice/AbC123")),
        ("https://misc.example/notes/9xyz", ("https://misc.example", None, "https://misc.example/notes/9xyz")),
    ],
)
def test_thread_entries_name_the_server_that_holds_the_status(spec, expected):
    assert parse_thread(spec, "https://home.example") == expected
