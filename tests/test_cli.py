"""The framewatch command end to end: real Prefect flow runs, real DuckDB files."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from framewatch.cli import app
from tests.support.settings import write_config

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_collect_prints_a_run_record_and_a_second_collect_adds_nothing(demo_project, prefect_harness):
    first = invoke("collect", "--config", str(demo_project))
    assert first.exit_code == 0, first.output
    assert "seed-threads" in first.output and "ok" in first.output
    counts = invoke("sql", "--config", str(demo_project), "--csv",
                    "select platform, count(*) as n from posts group by 1 order by 1")
    assert list(csv.reader(io.StringIO(counts.output))) == [
        ["platform", "n"], ["blog", "30"], ["discourse", "15"], ["mastodon", "15"]]
    second = invoke("collect", "--config", str(demo_project))
    assert second.exit_code == 0
    log = invoke("sql", "--config", str(demo_project), "--csv",
                 "select new, updated from collection_log order by started_at")
    assert log.output.splitlines()[1:] == ["60,0", "0,0"]


def test_bad_rows_make_collect_exit_1_naming_file_and_line(tmp_path, prefect_harness):
    data = tmp_path / "in.jsonl"
    good = {"id": "1", "thread_id": "1", "created_at": "2020-01-01T00:00:00Z", "text": "ok"}
    data.write_text(json.dumps(good) + "\n{oops\n")
    config = write_config(tmp_path, [{"name": "mine", "type": "jsonl", "path": str(data)}])
    result = invoke("collect", "--config", str(config))
    assert result.exit_code == 1
    assert f"{data}:2: invalid JSON" in result.output
    assert "partial" in result.output


@pytest.mark.parametrize("source, message", [
    ({"name": "gone", "type": "jsonl", "path": "/nonexistent/posts.jsonl"}, "posts.jsonl: file not found"),
    ({"name": "odd", "type": "fax"}, "unknown source type 'fax'"),
])
def test_config_problems_exit_2_and_change_nothing(tmp_path, source, message):
    config = write_config(tmp_path, [source])
    result = invoke("collect", "--config", str(config))
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "wh.duckdb").exists()


def test_unwritable_warehouse_exits_2(tmp_path):
    (tmp_path / "blocker").write_text("a file, not a folder")
    data = tmp_path / "in.jsonl"
    data.write_text("")
    config = write_config(tmp_path, [{"name": "x", "type": "jsonl", "path": str(data)}],
                          warehouse={"path": str(tmp_path / "blocker" / "wh.duckdb")})
    result = invoke("collect", "--config", str(config))
    assert result.exit_code == 2
    assert "cannot create the warehouse folder" in result.output


def test_sql_is_read_only(demo_project):
    assert invoke("init", "--config", str(demo_project)).exit_code == 0
    result = invoke("sql", "--config", str(demo_project), "delete from post_store")
    assert result.exit_code == 2
    assert "read-only" in result.output


def test_init_twice_reports_up_to_date(demo_project):
    first = invoke("init", "--config", str(demo_project))
    second = invoke("init", "--config", str(demo_project))
    assert "applied 0001_core.sql" in first.output
    assert "already up to date" in second.output


@pytest.mark.slow
def test_run_on_the_demo_fills_every_view_records_each_stage_and_prints_the_report(demo_project, prefect_harness):
    result = invoke("run", "--config", str(demo_project))
    assert result.exit_code == 0, result.output
    latest = next(line.split(": ", 1)[1] for line in result.output.splitlines() if line.startswith("latest report: "))
    assert Path(latest).is_file() and Path(latest).read_text().count("<h2") >= 5

    def scalar(sql: str) -> str:
        out = invoke("sql", "--config", str(demo_project), "--csv", sql)
        return list(csv.reader(io.StringIO(out.output)))[1][0]

    assert scalar("select count(distinct post_id) from post_framings") == "60"
    assert scalar("select count(distinct post_id) from post_stances") == "60"
    assert int(scalar("select count(*) from topics")) >= 2
    assert int(scalar("select count(*) from framing_timeline")) > 0
    assert scalar("select string_agg(kind || '=' || status, ',' order by kind) from pipeline_runs") == \
        "analyze=ok,collect=ok,run=ok"
