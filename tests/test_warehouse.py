"""The warehouse on real DuckDB files: migrations, idempotent upserts, edits, views, search."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from flows.collect import collect_one
from framewatch.config import load_settings
from tests.support.settings import make_settings
from warehouse import store
from warehouse.db import connect, current_version, latest_version, migrate, migration_files, open_warehouse
from warehouse.search import rebuild_search_index

POST_COLUMNS = ["post_id", "platform", "source", "native_id", "thread_id", "parent_id", "url", "author_key",
                "created_at", "edited_at", "lang", "text", "collected_at"]
THREAD_COLUMNS = ["thread_id", "platform", "source", "root_post_id", "n_posts", "first_at", "last_at"]


def rows(tmp_path: Path, lines: list[dict | str], name: str = "posts.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(l if isinstance(l, str) else json.dumps(l) for l in lines) + "\n")
    return path


def post(native_id: str, text: str, parent: str | None = None, **extra) -> dict:
    return {"id": native_id, "thread_id": "t1", "parent_id": parent, "author": extra.pop("author", "Alice"),
            "created_at": extra.pop("created_at", "2019-02-15T10:00:00+00:00"), "text": text,
            "platform": "blog", "site": "example.org", **extra}


def jsonl_settings(tmp_path: Path, path: Path):
    return make_settings(tmp_path, [{"name": "file", "type": "jsonl", "path": str(path)}])


def query(settings, sql: str, params=None):
    con = connect(settings.warehouse_path, read_only=True, search=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


# --- migrations -----------------------------------------------------------------------------

def test_fresh_warehouse_is_created_at_the_latest_version(tmp_path):
    con = open_warehouse(tmp_path / "w.duckdb")
    assert current_version(con) == latest_version() >= 2
    columns = [r[0] for r in con.execute("DESCRIBE posts").fetchall()]
    assert columns == POST_COLUMNS
    assert [r[0] for r in con.execute("DESCRIBE threads").fetchall()] == THREAD_COLUMNS


def test_older_warehouse_is_upgraded_in_place_keeping_its_data(tmp_path):
    path = tmp_path / "w.duckdb"
    version, name, sql = migration_files()[0]
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR, "
                "applied_at TIMESTAMPTZ DEFAULT current_timestamp)")
    con.execute(sql)
    con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [version, name])
    con.execute("INSERT INTO sources VALUES ('old', 'jsonl', '{}', now(), now())")
    con.close()

    con = connect(path)
    applied = migrate(con)
    assert applied == [n for v, n, _ in migration_files() if v > version]
    assert current_version(con) == latest_version()
    assert con.execute("SELECT name FROM sources").fetchall() == [("old",)]
    assert con.execute("SELECT count(*) FROM post_embeddings").fetchone() == (0,)


def test_running_init_again_changes_nothing(tmp_path):
    path = tmp_path / "w.duckdb"
    con = open_warehouse(path)
    before = con.execute("SELECT sql FROM duckdb_views() WHERE NOT internal ORDER BY view_name").fetchall()
    versions = con.execute("SELECT version, applied_at FROM schema_migrations ORDER BY 1").fetchall()
    assert migrate(con) == []
    assert con.execute("SELECT sql FROM duckdb_views() WHERE NOT internal ORDER BY view_name").fetchall() == before
    assert con.execute("SELECT version, applied_at FROM schema_migrations ORDER BY 1").fetchall() == versions


def test_unwritable_warehouse_path_is_a_clear_error(tmp_path):
    from warehouse.errors import WarehouseError

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(WarehouseError, match="cannot"):
        open_warehouse(blocker / "sub" / "w.duckdb")


# --- import -----------------------------------------------------------------------------------

def test_importing_the_same_file_twice_leaves_the_same_rows(tmp_path):
    settings = jsonl_settings(tmp_path, rows(tmp_path, [post("1", "root"), post("2", "reply", "1")]))
    first = collect_one(settings, "file", "r1")
    snapshot = query(settings, "SELECT * EXCLUDE (collected_at) FROM posts ORDER BY post_id")
    stored = query(settings, "SELECT post_id, collected_at, updated_at, content_hash FROM post_store ORDER BY 1")
    second = collect_one(settings, "file", "r2")
    assert (first.new, second.new, second.updated) == (2, 0, 0)
    assert query(settings, "SELECT * EXCLUDE (collected_at) FROM posts ORDER BY post_id") == snapshot
    assert query(settings, "SELECT post_id, collected_at, updated_at, content_hash FROM post_store ORDER BY 1") == stored
    assert query(settings, "SELECT count(*) FROM post_history") == [(0,)]


def test_an_edited_post_updates_its_row_and_keeps_the_old_text(tmp_path):
    path = rows(tmp_path, [post("1", "first version")])
    settings = jsonl_settings(tmp_path, path)
    collect_one(settings, "file", "r1")
    rows(tmp_path, [post("1", "<p>second &amp; better</p>", edited_at="2019-02-16T00:00:00Z")])
    result = collect_one(settings, "file", "r2")
    assert (result.new, result.updated) == (0, 1)
    assert query(settings, "SELECT text FROM posts") == [("second & better",)]
    assert query(settings, "SELECT text, run_id FROM post_history") == [("first version", "r2")]
    assert query(settings, "SELECT action FROM provenance") == [("edited",)]


def test_bad_lines_are_reported_and_the_valid_ones_stored(tmp_path):
    path = rows(tmp_path, [
        post("1", "fine"),
        "{not json",
        post("2", "no zone", created_at="2019-02-15T10:00:00"),
        {"id": "3", "thread_id": "t1", "created_at": "2019-02-15T10:00:00Z"},
        post("4", "also fine", "1"),
    ])
    settings = jsonl_settings(tmp_path, path)
    result = collect_one(settings, "file", "r1")
    assert result.status == "partial"
    assert result.problems == [
        f"{path}:2: invalid JSON (Expecting property name enclosed in double quotes at column 2)",
        f"{path}:3: created_at '2019-02-15T10:00:00' has no time zone",
        f"{path}:4: missing text",
    ]
    assert query(settings, "SELECT native_id FROM posts ORDER BY 1") == [("1",), ("4",)]
    assert query(settings, "SELECT status, failed FROM collection_runs") == [("partial", 3)]


def test_csv_rows_import_like_jsonl_rows(tmp_path):
    path = tmp_path / "posts.csv"
    path.write_text(
        "id,thread_id,parent_id,author,created_at,text,platform,site\n"
        '1,1,,Ann,2020-01-01T00:00:00+00:00,"multi\nline",forum,f.example\n'
        "2,1,1,Bo,2020-01-01T01:00:00+00:00,reply,forum,f.example\n"
        "3,1,1,Bo,yesterday,bad,forum,f.example\n"
    )
    settings = make_settings(tmp_path, [{"name": "sheet", "type": "csv", "path": str(path)}])
    result = collect_one(settings, "sheet", "r1")
    assert result.problems == [f"{path}:5: created_at 'yesterday' is not ISO 8601"]
    assert query(settings, "SELECT native_id, parent_id, text FROM posts ORDER BY 1") == [
        ("1", None, "multi\nline"), ("2", "forum:f.example:1", "reply")]


def test_a_crash_halfway_leaves_the_warehouse_as_before_that_batch_and_a_rerun_completes(tmp_path, monkeypatch):
    import flows.sources.interchange as interchange

    monkeypatch.setattr(interchange, "BATCH_ROWS", 2)
    settings = jsonl_settings(tmp_path, rows(tmp_path, [post(str(i), f"post {i}") for i in range(1, 6)]))
    real = store._upsert_posts
    calls = {"n": 0}

    def crash_on_second_batch(con, run_id, now):
        calls["n"] += 1
        counts = real(con, run_id, now)  # the rows are written inside the transaction ...
        if calls["n"] == 2:
            raise RuntimeError("power cut")  # ... and then the process dies before COMMIT
        return counts

    monkeypatch.setattr(store, "_upsert_posts", crash_on_second_batch)
    failed = collect_one(settings, "file", "r1")
    assert failed.status == "failed" and "power cut" in failed.error
    assert query(settings, "SELECT native_id FROM posts ORDER BY 1") == [("1",), ("2",)]

    monkeypatch.setattr(store, "_upsert_posts", real)
    rerun = collect_one(settings, "file", "r2")
    assert rerun.status == "ok"
    assert query(settings, "SELECT count(*) FROM posts") == [(5,)]


# --- views ------------------------------------------------------------------------------------

def test_posts_view_gives_plain_text_linked_parents_and_pseudonymous_authors(tmp_path):
    settings = jsonl_settings(tmp_path, rows(tmp_path, [
        post("1", "<p>Root &amp; <b>bold</b> &lt;script&gt;</p>", author="Alice"),
        post("2", "reply", "1", author="Alice", created_at="2019-02-15T11:00:00+00:00"),
        post("3", "other", "1", author="Bob", created_at="2019-02-15T12:00:00+00:00"),
    ]))
    collect_one(settings, "file", "r1")
    got = query(settings, "SELECT post_id, parent_id, author_key, text FROM posts ORDER BY post_id")
    assert got[0][3] == "Root & bold <script>"
    assert got[1][1] == got[0][0] == "blog:example.org:1"
    keys = [r[2] for r in got]
    assert keys[0] == keys[1] != keys[2] and all(k.startswith("a_") and "Alice" not in k for k in keys)
    assert query(settings, "SELECT root_post_id, n_posts, first_at < last_at FROM threads") == [
        ("blog:example.org:1", 3, True)]


def test_pseudonyms_depend_on_the_secret_and_can_be_switched_off(tmp_path, monkeypatch):
    path = rows(tmp_path, [post("1", "x", author="Alice")])
    settings = jsonl_settings(tmp_path, path)
    collect_one(settings, "file", "r1")
    (first,) = query(settings, "SELECT author_key FROM posts")[0]

    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.setenv("FRAMEWATCH_PSEUDONYM_KEY", "another secret")
    settings2 = jsonl_settings(other, path)
    collect_one(settings2, "file", "r1")
    assert query(settings2, "SELECT author_key FROM posts")[0][0] != first

    plain = tmp_path / "plain"
    plain.mkdir()
    settings3 = make_settings(plain, [{"name": "file", "type": "jsonl", "path": str(path)}],
                              privacy={"pseudonymize_authors": False})
    collect_one(settings3, "file", "r1")
    assert query(settings3, "SELECT author_key FROM posts") == [("Alice",)]


def test_full_text_search_macro_ranks_matching_posts(tmp_path):
    settings = jsonl_settings(tmp_path, rows(tmp_path, [
        post("1", "Credit scores in the West work the same way"),
        post("2", "Cute cat pictures", "1"),
        post("3", "My credit rating dropped", "1"),
    ]))
    collect_one(settings, "file", "r1")
    con = connect(settings.warehouse_path)
    rebuild_search_index(con)
    con.close()
    hits = query(settings, "SELECT native_id FROM search_posts('credit scoring', k := 5)")
    assert {h[0] for h in hits} == {"1", "3"}


def test_missing_input_file_is_a_config_error_naming_the_source(tmp_path):
    from flows.collect import preflight
    from flows.sources import SourceError

    settings = jsonl_settings(tmp_path, tmp_path / "absent.jsonl")
    with pytest.raises(SourceError, match=r"source 'file': .*absent\.jsonl: file not found") as info:
        preflight(settings)
    assert info.value.fatal_config


def test_unknown_source_type_is_a_config_error(tmp_path):
    from flows.collect import preflight
    from flows.sources import SourceError

    settings = make_settings(tmp_path, [{"name": "x", "type": "carrier-pigeon"}])
    with pytest.raises(SourceError, match="unknown source type 'carrier-pigeon'"):
        preflight(settings)
