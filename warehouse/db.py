"""Opening the warehouse: one place that knows how to connect, load FTS offline and migrate."""

from __future__ import annotations

import contextlib
from importlib import resources
from pathlib import Path
from typing import Iterator

import duckdb

from warehouse.errors import WarehouseError

MIGRATIONS = resources.files("warehouse") / "migrations"
VIEWS = resources.files("warehouse") / "views"


def fts_extension_path() -> Path:
    """The FTS extension shipped by the ``duckdb-extension-fts`` wheel (never downloaded)."""
    import duckdb_extension_fts  # the wheel's package

    base = Path(duckdb_extension_fts.__file__).parent / "extensions"
    candidates = sorted(base.glob(f"v{duckdb.__version__}/fts.duckdb_extension")) or sorted(
        base.glob("*/fts.duckdb_extension")
    )
    if not candidates:
        raise WarehouseError(f"FTS extension not found under {base}")
    return candidates[0]


def load_search_extension(con: duckdb.DuckDBPyConnection) -> None:
    """Load FTS from its pip package (needed to query ``search_posts`` or rebuild the index)."""
    con.execute(f"LOAD '{fts_extension_path()}'")


def connect(path: Path | str, read_only: bool = False, search: bool = False) -> duckdb.DuckDBPyConnection:
    """A connection; ``read_only=True`` for readers (one writer at a time), ``search=True`` to
    load the full-text-search extension (it costs a few hundred ms, so only when needed)."""
    path = Path(path)
    if read_only and not path.exists():
        raise WarehouseError(f"{path}: warehouse does not exist yet; run `framewatch init` first")
    if not read_only:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WarehouseError(f"{path}: cannot create the warehouse folder: {exc.strerror}") from exc
    try:
        con = duckdb.connect(str(path), read_only=read_only,
                             config={"autoinstall_known_extensions": "false", "autoload_known_extensions": "false"})
    except duckdb.Error as exc:
        raise WarehouseError(f"{path}: cannot open the warehouse: {exc}") from exc
    if search:
        load_search_extension(con)
    return con


@contextlib.contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """All or nothing: a crash inside leaves the warehouse as it was before."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    else:
        con.execute("COMMIT")


def migration_files() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every migration, in order."""
    found = []
    for entry in MIGRATIONS.iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def latest_version() -> int:
    return migration_files()[-1][0]


def current_version(con: duckdb.DuckDBPyConnection) -> int:
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_migrations'"
    ).fetchone()[0]
    if not exists:
        return 0
    return con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()[0]


def migrate(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Apply pending migrations (each in its own transaction) and refresh the views.

    Returns the names of the migrations applied; an up-to-date file gets none, and its views are
    only replaced when their definition changed, so a second ``init`` changes nothing.
    """
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR, "
        "applied_at TIMESTAMPTZ DEFAULT current_timestamp)"
    )
    applied = []
    have = current_version(con)
    for version, name, sql in migration_files():
        if version <= have:
            continue
        with transaction(con):
            con.execute(sql)
            con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [version, name])
        applied.append(name)
    _refresh_views(con, force=bool(applied))
    return applied


def view_sql() -> str:
    """All view definitions, in file order (later files may build on earlier views)."""
    files = sorted((e for e in VIEWS.iterdir() if e.name.endswith(".sql")), key=lambda e: e.name)
    return "\n".join(entry.read_text(encoding="utf-8") for entry in files)


def _refresh_views(con: duckdb.DuckDBPyConnection, force: bool) -> None:
    sql = view_sql()
    con.execute("CREATE TABLE IF NOT EXISTS view_definitions (sql VARCHAR)")
    stored = con.execute("SELECT sql FROM view_definitions").fetchone()
    if not force and stored and stored[0] == sql:
        return
    with transaction(con):
        con.execute(sql)
        con.execute("DELETE FROM view_definitions")
        con.execute("INSERT INTO view_definitions VALUES (?)", [sql])


def open_warehouse(path: Path | str) -> duckdb.DuckDBPyConnection:
    """A writer connection to a migrated warehouse (creating it at the latest version)."""
    con = connect(path)
    migrate(con)
    return con
