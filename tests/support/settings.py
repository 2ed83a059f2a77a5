"""Build real config files in a temp dir for tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from framewatch.config import Settings, load_settings


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):  # an inline table
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(str(value))


def write_config(folder: Path, sources: list[dict[str, Any]] | None = None, **sections: dict[str, Any]) -> Path:
    """A config file in ``folder`` with its warehouse in ``folder/wh.duckdb``; returns its path."""
    sections.setdefault("warehouse", {"path": str(folder / "wh.duckdb")})
    sections.setdefault("http", {"backoff_base_s": 0.01, "max_wait_s": 5.0, "timeout_s": 5.0})
    lines: list[str] = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in values.items()]
        lines.append("")
    for source in sources or []:
        lines.append("[[sources]]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in source.items()]
        lines.append("")
    path = folder / "framewatch.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def make_settings(folder: Path, sources: list[dict[str, Any]] | None = None, **sections: dict[str, Any]) -> Settings:
    return load_settings(write_config(folder, sources, **sections))
