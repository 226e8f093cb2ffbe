"""The web process's waits for PostgreSQL (registry.gunicorn_worker.wait_for_database): with
the shipped gunicorn configuration imported, as in a worker, a statement's wait lets the other
greenlets run, and every kind of answer still arrives whole: many rows (several reads), a large
parameter (several writes), an error, a query cancelled with a deadline; and the pool's check
of a connection polls without gevent's watchers.

In a subprocess, since the configuration patches the standard library with gevent's. Needs
PostgreSQL (a failure under CI=true, never a skip).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import postgres_url, require_postgresql

pytestmark = [pytest.mark.django_db]

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import registry.gunicorn_conf  # noqa: F401 - gevent's patching, and the wait installed
import json, os, time
import gevent, psycopg, psycopg.waiting
from registry.gunicorn_worker import wait_for_database

url = os.environ["DATABASE_URL"]
out = {"installed": psycopg.waiting.wait is wait_for_database}
conns = [psycopg.connect(url, autocommit=True) for _ in range(3)]
ticks = []
def tick():  # runs only while the statements wait
    for _ in range(5):
        ticks.append(time.monotonic())
        gevent.sleep(0.05)
started = time.monotonic()
jobs = [gevent.spawn(conn.execute, "SELECT pg_sleep(0.6)") for conn in conns] + [gevent.spawn(tick)]
gevent.joinall(jobs, raise_error=True)
out["three_sleeps_s"] = time.monotonic() - started
out["ticks_during"] = sum(1 for at in ticks if at - started < 0.55)
conn = conns[0]
out["rows"] = len(conn.execute("SELECT generate_series(1, 300000)").fetchall())
out["length"] = conn.execute("SELECT length(%s)", ["x" * 30_000_000]).fetchone()[0]
try:
    conn.execute("SELECT 1 / 0")
except psycopg.errors.DivisionByZero:
    out["error"] = "division_by_zero"
cancelled = gevent.spawn(conns[1].execute, "SELECT pg_sleep(5)")
gevent.sleep(0.3)
conns[1].cancel_safe(timeout=5)  # (its own wait has a deadline: psycopg's function answers it)
try:
    cancelled.get()
except psycopg.errors.QueryCanceled:
    out["cancelled"] = True
out["after"] = conns[1].execute("SELECT 42").fetchone()[0]
# The pool's check of a connection it hands out asks the operating system's poll, not gevent's
# (which builds watchers and a timer even for a timeout of 0), and still tells an ended one.
import select
from registry.postgresql.base import check_connection
gevent_polls, gevent_poll = [], select.poll
select.poll = lambda *args: gevent_polls.append(1) or gevent_poll(*args)
live, ended = psycopg.connect(url, autocommit=True), psycopg.connect(url, autocommit=True)
check_connection(live)
conns[2].execute("SELECT pg_terminate_backend(%s)", [ended.info.backend_pid])
time.sleep(0.5)
try:
    check_connection(ended)
    out["ended"] = "handed out"
except psycopg.OperationalError:
    out["ended"] = "refused"
out["gevent_polls"] = len(gevent_polls)
print(json.dumps(out))
"""


def test_a_statement_waits_without_holding_up_the_others():
    require_postgresql("the web process's database")
    result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "DJANGO_SETTINGS_MODULE": "registry.settings", "DATABASE_URL": postgres_url()})
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])

    assert out["installed"]
    assert out["three_sleeps_s"] < 1.5  # together, not one after the other (1.8 s)
    assert out["ticks_during"] >= 5  # and another greenlet ran meanwhile
    assert out["rows"] == 300_000
    assert out["length"] == 30_000_000
    assert out["error"] == "division_by_zero"
    assert out["cancelled"] and out["after"] == 42
    assert out["ended"] == "refused" and out["gevent_polls"] == 0
