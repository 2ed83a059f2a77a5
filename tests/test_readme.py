"""The README's sample SQL runs as written against an analysed demo warehouse."""

from __future__ import annotations

import re

import pytest

from framewatch.config import load_settings
from tests.conftest import PROJECT_ROOT
from warehouse.db import connect

pytestmark = pytest.mark.slow


def sql_blocks() -> list[str]:
    readme = (PROJECT_ROOT / "README.md").read_text()
    statements = []
    for block in re.findall(r"```sql\n(.*?)```", readme, flags=re.S):
        statements += [s.strip() for s in block.split(";") if s.strip()]
    return statements


def test_readme_has_sample_sql():
    assert len(sql_blocks()) >= 6


def test_every_readme_query_runs_on_the_demo_warehouse(analyzed_demo):
    con = connect(load_settings(analyzed_demo).warehouse_path, read_only=True, search=True)
    try:
        results = {sql.splitlines()[0]: con.execute(sql).fetchall() for sql in sql_blocks()}
    finally:
        con.close()
    assert results["-- posts per platform and year"]
    assert results["-- full-text search (BM25, English stemming), offline"]


def test_readme_lists_every_config_key_of_every_source_type():
    from flows.sources import _REGISTRY, source_types

    readme = (PROJECT_ROOT / "README.md").read_text()
    rows = {}
    for line in readme.splitlines():
        match = re.match(r"^\| ((?:`[\w-]+`(?:, )?)+) \| (.*) \|$", line)
        if match and "`" in match.group(2):
            for name in re.findall(r"`([\w-]+)`", match.group(1)):
                rows[name] = set(re.findall(r"`(\w+)`", match.group(2)))
    for type_name in source_types():
        documented = rows.get(type_name)
        assert documented is not None, f"README has no key row for {type_name}"
        missing = set(_REGISTRY[type_name].Options.model_fields) - documented
        assert not missing, f"README does not document {type_name} keys {sorted(missing)}"
