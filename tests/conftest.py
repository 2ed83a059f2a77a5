"""Shared fixtures: real Prefect runs (test harness), real DuckDB files, the demo corpus."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("FRAMEWATCH_PSEUDONYM_KEY", "test-pseudonym-key")
if "FRAMEWATCH_CACHE_DIR" not in os.environ:  # models trained by tests stay out of the user's cache
    import tempfile

    os.environ["FRAMEWATCH_CACHE_DIR"] = tempfile.mkdtemp(prefix="framewatch-test-cache-")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEMO_CONFIG = PROJECT_ROOT / "config" / "demo.toml"
DEMO_POSTS = PROJECT_ROOT / "config" / "demo" / "seed_posts.jsonl"


@pytest.fixture(scope="session")
def prefect_harness():
    """A real Prefect API (temporary SQLite-backed server) for flow runs in this session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def demo_project(tmp_path: Path) -> Path:
    """A copy of the demo config whose warehouse and reports live in tmp_path; returns the config."""
    config_dir = tmp_path / "config"
    shutil.copytree(PROJECT_ROOT / "config", config_dir)
    text = (config_dir / "demo.toml").read_text()
    text = text.replace('path = "data/framewatch.duckdb"', f'path = "{tmp_path / "wh.duckdb"}"')
    text = text.replace('out_dir = "reports_out"', f'out_dir = "{tmp_path / "reports"}"')
    (config_dir / "demo.toml").write_text(text)
    return config_dir / "demo.toml"


@pytest.fixture(scope="session")
def analyzed_demo(tmp_path_factory) -> Path:
    """The demo corpus collected and analysed once (real spaCy + MiniLM); returns the config path.

    Tests using it must open the warehouse read-only.
    """
    from flows.analyze import analyze_posts
    from flows.collect import collect_one, refresh_search
    from framewatch.config import load_settings

    root = tmp_path_factory.mktemp("analyzed-demo")
    shutil.copytree(PROJECT_ROOT / "config", root / "config")
    config = root / "config" / "demo.toml"
    config.write_text(config.read_text().replace('path = "data/framewatch.duckdb"', f'path = "{root / "wh.duckdb"}"')
                      .replace('out_dir = "reports_out"', f'out_dir = "{root / "reports"}"'))
    settings = load_settings(config)
    collect_one(settings, "seed-threads", "test-collect")
    refresh_search(settings)
    analyze_posts(settings, "test-analyze")
    return config
