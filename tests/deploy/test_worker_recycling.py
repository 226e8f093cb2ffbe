"""Worker recycling never leaves the shipped gunicorn setup without a worker that answers.

gunicorn replaces a worker after REGISTRY_WEB_MAX_REQUESTS requests. Without preload_app, the new
process imported the whole application first (seconds of CPU, tens of seconds under load),
and two workers recycled within seconds of each other left nothing answering. Here the limit is
tiny, so both workers are replaced many times while clients keep asking: every request must
be answered, and none may wait long.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import _free_port
from tests.deploy.test_database_outage import _environment
from tests.helpers import gunicorn_process

pytestmark = pytest.mark.slow


@pytest.fixture
def server(tmp_path):
    env = {**_environment(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
           "REGISTRY_BIND": f"127.0.0.1:{_free_port()}", "WEB_CONCURRENCY": "2",
           "REGISTRY_WEB_MAX_REQUESTS": "40", "DEBUG": "true"}
    log_path = tmp_path / "web.log"
    with gunicorn_process(env, log_path, probe="/login/") as url:
        yield url, log_path


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


def _master_probe(code: str) -> list[str]:
    """What `code` prints, run in a new interpreter as gunicorn's master runs: the last line's words."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "registry.settings"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_the_master_builds_what_a_first_request_would():
    """Under preload_app the master imports registry.wsgi before forking: the URL patterns, the
    names reverse() looks up and the cache's client are there, so a new worker's first request
    builds none of them."""
    printed = _master_probe("import sys, registry.wsgi\n"
                            "from django.urls import get_resolver\n"
                            "resolver = get_resolver()\n"
                            "print(resolver._populated, 'registry.api.views' in sys.modules, 'redis' in sys.modules)")
    assert printed[-3:] == ["True", "True", "True"]


def test_the_master_freezes_what_it_imported_before_each_fork():
    """gunicorn's pre_fork hook (registry.gunicorn_conf) puts the objects the master made out of
    the cycle collector's reach: a worker's full collections then walk only what it made
    itself, not the application's 100,000s of imported objects."""
    printed = _master_probe("import gc, registry.gunicorn_conf as conf, registry.wsgi\n"
                            "before = gc.get_freeze_count()\n"
                            "conf.pre_fork(None, None)\n"
                            "print(before, gc.get_freeze_count(), len(gc.get_objects()))")
    before, frozen, left = map(int, printed[-3:])
    assert before == 0
    assert frozen > 100_000, frozen
    assert left < 1_000, left  # nothing the master made is left for a worker's collections
