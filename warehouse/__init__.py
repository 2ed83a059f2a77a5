"""The DuckDB warehouse: the only package that owns SQL DDL, migrations and views."""
