"""What a flow task needs to rebuild its world from arguments alone (no global state), so the
same task runs in-process today and on a Dask worker tomorrow."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from framewatch.config import HttpConfig, Settings, load_settings


@dataclass(frozen=True)
class CollectorContext:
    http: HttpConfig
    project_root: Path

    def secret(self, env_name: str | None) -> str | None:
        """A token from the environment; never logged or stored."""
        return os.environ.get(env_name) if env_name else None


def settings_from(config_path: str | Path) -> Settings:
    return load_settings(Path(config_path))


def collector_context(settings: Settings) -> CollectorContext:
    return CollectorContext(http=settings.http, project_root=settings.base_dir)


def run_logger() -> logging.Logger | Any:
    """Prefect's run logger inside a flow or task, the module logger elsewhere."""
    try:
        from prefect import get_run_logger

        return get_run_logger()
    except Exception:  # outside a run context
        return logging.getLogger("framewatch")
