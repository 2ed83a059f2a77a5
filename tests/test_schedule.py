"""`framewatch serve` registers the nightly cron deployment with a real local Prefect server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: process exited early:\n{proc.stdout.read() if proc.stdout else ''}")
        try:
            value = predicate()
            if value:
                return value
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def test_serve_registers_the_nightly_cron_deployment(demo_project, tmp_path):
    text = demo_project.read_text().replace('cron = "0 2 * * *"', 'cron = "15 3 * * *"')
    demo_project.write_text(text)
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_API_URL": api,
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
           "PREFECT_UI_ENABLED": "false"}
    server = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True, cwd=tmp_path)
    serving = None
    try:
        wait_for(lambda: httpx.get(f"{api}/health", timeout=2).status_code == 200, 120, "prefect server", server)
        serving = subprocess.Popen([str(BIN / "framewatch"), "serve", "--config", str(demo_project)],
                                   env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   start_new_session=True, cwd=PROJECT_ROOT)

        def deployment():
            found = httpx.post(f"{api}/deployments/filter", json={}, timeout=5).json()
            return next((d for d in found if d["name"] == "nightly"), None)

        found = wait_for(deployment, 120, "the nightly deployment", serving)
        schedules = [s["schedule"] for s in found["schedules"]]
        assert schedules == [{"cron": "15 3 * * *", "timezone": "UTC", "day_or": True}]
        assert found["parameters"] == {"config_path": str(demo_project.resolve())}
        flow = httpx.get(f"{api}/flows/{found['flow_id']}", timeout=5).json()
        assert flow["name"] == "framewatch-nightly"
    finally:
        if serving is not None:
            stop(serving)
        stop(server)
