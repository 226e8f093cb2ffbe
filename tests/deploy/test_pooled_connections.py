"""The web process's pooled database connections (registry/postgresql): a connection is handed
out without a round trip to check it, and one the server ended is still never handed out.

A real gunicorn (registry.gunicorn_conf: gevent workers, DATABASE_POOL_SIZE) on the test
database: its connections are ended by the server (pg_terminate_backend, as a restart, a
failover or an idle timeout ends them) between two requests, and the second still answers 200.
Needs PostgreSQL (a failure under CI=true, never a skip).
"""

from __future__ import annotations

import os
import time

import httpx
import psycopg
import pytest
from django.db import connection
from psycopg_pool import ConnectionPool

from registry.postgresql.base import check_connection
from tests.conftest import _free_port, token_for
from tests.factories import UserFactory
from tests.helpers import gunicorn_process, postgres_url, require_postgresql

pytestmark = [pytest.mark.django_db(transaction=True)]


def _require_postgresql():
    require_postgresql("the pooled connections")


def _terminate(pids) -> None:
    with psycopg.connect(postgres_url(), autocommit=True) as admin:
        for pid in pids:
            admin.execute("SELECT pg_terminate_backend(%s)", [pid])


def test_a_live_connection_is_handed_out_without_a_round_trip(monkeypatch):
    _require_postgresql()
    checked = []
    monkeypatch.setattr(ConnectionPool, "check_connection", staticmethod(lambda conn: checked.append(conn)))
    with psycopg.connect(postgres_url(), autocommit=True) as conn:
        conn.execute("SELECT 1")
        check_connection(conn)
        assert checked == []  # nothing to read on the socket: no query sent


def test_a_connection_the_server_ended_is_refused():
    _require_postgresql()
    with psycopg.connect(postgres_url(), autocommit=True) as conn:
        _terminate([conn.info.backend_pid])
        time.sleep(0.2)  # the server's error and its closing reach the socket
        with pytest.raises(psycopg.OperationalError):
            check_connection(conn)
    conn = psycopg.connect(postgres_url(), autocommit=True)
    conn.close()
    with pytest.raises(psycopg.OperationalError):
        check_connection(conn)


def test_the_web_process_replaces_connections_the_server_ended(tmp_path):
    _require_postgresql()
    user = UserFactory(username="pool-reader")
    token = token_for(user)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("REGISTRY_", "AWS_")) and k != "REDIS_URL"},
        "DJANGO_SETTINGS_MODULE": "registry.settings",
        "DATABASE_URL": postgres_url(),
        "REGISTRY_DATA_DIR": str(tmp_path / "var"),
        "DEBUG": "false",
        "SECRET_KEY": "pooled-connections-test-" + "k" * 50,
        "ALLOWED_HOSTS": "127.0.0.1",
        "REGISTRY_SECURE_COOKIES": "false",
        "REGISTRY_LOG_FORMAT": "text",
        "REGISTRY_BIND": f"127.0.0.1:{_free_port()}",
        "WEB_CONCURRENCY": "1",
    }
    headers = {"Authorization": f"Bearer {token}"}
    with gunicorn_process(env, tmp_path / "web.log") as url:
        for _ in range(3):
            assert httpx.get(f"{url}/api/v1/contexts/", headers=headers, timeout=10).status_code == 200
        connection.ensure_connection()
        with psycopg.connect(postgres_url(), autocommit=True) as admin:
            pids = [row[0] for row in admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid() AND pid <> %s",
                [connection.settings_dict["NAME"], connection.connection.info.backend_pid]).fetchall()]
        assert pids, "the web process holds pooled connections"
        _terminate(pids)
        time.sleep(0.3)
        for _ in range(5):
            response = httpx.get(f"{url}/api/v1/contexts/", headers=headers, timeout=10)
            assert response.status_code == 200, response.text
    assert "database unavailable" not in (tmp_path / "web.log").read_text()
