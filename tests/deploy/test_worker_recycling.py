"""Worker recycling never leaves the shipped gunicorn setup without a worker that answers.

gunicorn replaces a worker after REGISTRY_WEB_MAX_REQUESTS requests. Without preload_app, the new
process imported the whole application first (seconds of CPU, tens of seconds under load),
and two workers recycled within seconds of each other left nothing answering. Here the limit is
tiny, so both workers are replaced many times while clients keep asking: every request must
be answered, and none may wait long.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import _free_port
from tests.deploy.test_database_outage import ROOT, _environment

pytestmark = pytest.mark.slow


@pytest.fixture
def server(tmp_path):
    port = _free_port()
    env = {**_environment(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
           "REGISTRY_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "2", "REGISTRY_WEB_THREADS": "4",
           "REGISTRY_WEB_MAX_REQUESTS": "40", "DEBUG": "true"}
    log_path = tmp_path / "web.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "python:registry.gunicorn_conf", "registry.wsgi"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "gunicorn did not start\n" + log_path.read_text()
            try:
                if httpx.get(f"{url}/login/", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        yield url, log_path
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_recycled_workers_never_leave_requests_waiting(server):
    url, log_path = server

    def ask(_):
        started = time.monotonic()
        with httpx.Client(timeout=30) as client:  # a new connection each time, as most clients make
            status = client.get(f"{url}/login/").status_code
        return status, time.monotonic() - started

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(ask, range(400)))

    statuses = {status for status, _ in results}
    slowest = max(seconds for _, seconds in results)
    restarts = len(re.findall(r"Autorestarting worker", log_path.read_text()))
    assert statuses == {200}
    assert restarts >= 4, log_path.read_text()[-3000:]
    print(f"slowest {slowest:.2f} s, {restarts} restarts")
    assert slowest < 5, f"a request waited {slowest:.2f} s while workers were recycled ({restarts} restarts)"
