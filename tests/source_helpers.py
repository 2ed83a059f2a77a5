"""Helpers for the network-source tests: a config with one source (inline tables allowed),
a collect run through the real flow code, and SQL on the resulting warehouse."""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

import duckdb

from flows.collect import SourceResult, collect_one
from framewatch.config import Settings, load_settings
from tests.support.http_server import SHARED_FIXTURES, ReplayServer
from tests.support.settings import _toml_value, write_config
from warehouse import runs

DATA = Path(__file__).resolve().parent / "data"
FAST_HTTP = {"backoff_base_s": 0.01, "max_wait_s": 5.0, "timeout_s": 5.0, "max_retries": 3}


_TEMPLATE: Path | None = None


def _empty_warehouse() -> Path:
    """A migrated, empty warehouse made once per test session (migrating costs ~1 s each time)."""
    global _TEMPLATE
    if _TEMPLATE is None:
        from warehouse.db import open_warehouse

        folder = tempfile.mkdtemp(prefix="framewatch-template-")
        atexit.register(shutil.rmtree, folder, True)
        path = Path(folder) / "wh.duckdb"
        open_warehouse(path).close()
        _TEMPLATE = path
    return _TEMPLATE


def source_settings(folder: Path, source: dict[str, Any], http: dict[str, Any] | None = None) -> Settings:
    """Settings with one source; its values may be TOML inline tables (dicts). The warehouse
    starts as a copy of an empty migrated one."""
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "wh.duckdb").exists():
        shutil.copy(_empty_warehouse(), folder / "wh.duckdb")
    path = write_config(folder, None, http={**FAST_HTTP, **(http or {})})
    lines = ["", "[[sources]]"] + [f"{k} = {_toml_value(v)}" for k, v in source.items()]
    path.write_text(path.read_text(encoding="utf-8") + "\n".join(lines) + "\n", encoding="utf-8")
    return load_settings(path)


_READERS: dict[Path, duckdb.DuckDBPyConnection] = {}


def _close_reader(path: Path) -> None:
    con = _READERS.pop(path, None)
    if con is not None:
        con.close()


def run(settings: Settings, name: str | None = None) -> SourceResult:
    _close_reader(settings.warehouse_path)  # the collect run needs the file for writing
    return collect_one(settings, name or settings.sources[0].name, runs.new_run_id())


def sql(settings: Settings, query: str, params: list[Any] | None = None) -> list[tuple]:
    """Query the warehouse through one read-only connection, kept until the next run."""
    path = settings.warehouse_path
    if path not in _READERS:
        for other in list(_READERS):  # one test at a time: drop readers of earlier tests
            _close_reader(other)
        _READERS[path] = duckdb.connect(str(path), read_only=True)  # no FTS needed to read
    return _READERS[path].execute(query, params or []).fetchall()


def scalar(settings: Settings, query: str, params: list[Any] | None = None) -> Any:
    return sql(settings, query, params)[0][0]


def cursor_of(settings: Settings, name: str | None = None) -> dict[str, Any] | None:
    rows = sql(settings, "SELECT cursor FROM source_cursors WHERE source = ?", [name or settings.sources[0].name])
    return json.loads(rows[0][0]) if rows else None


def fixture_text(relative: str) -> str:
    return (SHARED_FIXTURES / relative).read_text(encoding="utf-8")


def whole_database_text(settings: Settings) -> str:
    """Every value of every table, as one string (to look for leaked secrets)."""
    tables = [r[0] for r in sql(settings, "SELECT table_name FROM information_schema.tables "
                                          "WHERE table_type = 'BASE TABLE'")]
    return "\n".join(str(sql(settings, f'SELECT * FROM "{t}"')) for t in tables)
