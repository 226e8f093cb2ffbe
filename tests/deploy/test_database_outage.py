"""The database unreachable: a real web process (gunicorn) whose DATABASE_URL points at a port
where nothing listens (every connection refused by the kernel), or at a PostgreSQL role with no
connection slots (every connection refused by the server: "too many connections").

The API answers 503 `database_unavailable` with Retry-After in its one error shape, the
dashboard a styled 503 page, and the log says it in one line per request: no traceback, no
second "Service Unavailable" line. /healthz stays up (liveness); /readyz reports the database.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import _free_port
from tests.helpers import gunicorn_process

ROOT = Path(__file__).resolve().parents[2]


def _environment(folder: Path) -> dict:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("REGISTRY_", "AWS_")) and key not in {"REDIS_URL", "DEBUG", "DATABASE_URL"}}
    env.update({
        "DJANGO_SETTINGS_MODULE": "registry.settings",
        "DEBUG": "false",
        "SECRET_KEY": "database-outage-test-" + "k" * 50,
        "ALLOWED_HOSTS": "127.0.0.1",
        "REGISTRY_SECURE_COOKIES": "false",
        "REGISTRY_DATA_DIR": str(folder / "var"),
        "REGISTRY_STATIC_ROOT": str(folder / "static"),
        "REGISTRY_LOG_FORMAT": "text",
    })
    return env


@pytest.fixture(scope="module")
def site_folder(tmp_path_factory) -> Path:
    """A data folder with the static files collected: DEBUG off serves hashed names from a
    manifest, as the Dockerfile builds it."""
    folder = tmp_path_factory.mktemp("database-down")
    collected = subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput"],
                               cwd=ROOT, env=_environment(folder), capture_output=True, text=True, timeout=300)
    assert collected.returncode == 0, collected.stderr
    return folder


@pytest.fixture(scope="module")
def role_without_connection_slots():
    """A PostgreSQL role allowed no connection at all: the server answers every attempt with
    53300 "too many connections", as a database out of connection slots does."""
    import psycopg

    admin_url = os.environ.get("DATABASE_URL", "")
    if not admin_url.startswith("postgres"):
        if os.environ.get("CI") == "true":
            pytest.fail("CI runs on PostgreSQL: DATABASE_URL must point at it")
        pytest.skip("needs PostgreSQL (DATABASE_URL)")
    parts = urlsplit(admin_url)
    admin_url = parts._replace(path="/postgres").geturl()  # the maintenance database is always there
    role = f"registry_no_slots_{os.getpid()}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f"DROP ROLE IF EXISTS {role}")
        admin.execute(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 0")
    try:
        yield f"postgres://{role}@{parts.hostname}:{parts.port or 5432}/postgres"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f"DROP ROLE IF EXISTS {role}")


@pytest.fixture(scope="module", params=["refused", "too-many-connections"])
def server(request, site_folder):
    """One gunicorn process on a database that does not let it in; yields (url, log path)."""
    if request.param == "refused":  # nothing listens there: the kernel refuses the connection
        database_url = f"postgres://registry@127.0.0.1:{_free_port()}/registry"
    else:
        database_url = request.getfixturevalue("role_without_connection_slots")
    env = {**_environment(site_folder), "DATABASE_URL": database_url, "REGISTRY_BIND": f"127.0.0.1:{_free_port()}",
           "WEB_CONCURRENCY": "1", "DATABASE_POOL_TIMEOUT": "2"}
    log_path = site_folder / f"web-{request.param}.log"
    with gunicorn_process(env, log_path) as url:
        yield url, log_path


def new_log_lines(log_path: Path, since: int) -> list[str]:
    """The application's log lines written after byte `since` (gunicorn's own lines left out)."""
    time.sleep(0.3)  # the handler writes after the response is sent
    text = log_path.read_text()[since:]
    return [line for line in text.splitlines()
            if line.strip() and " gunicorn.access " not in line and " gunicorn.error " not in line]


def test_api_answers_503_json_with_retry_after_and_logs_one_line(server):
    url, log_path = server
    since = len(log_path.read_text())

    response = httpx.get(f"{url}/api/v1/contexts/", headers={"Authorization": "Bearer some-token"}, timeout=10)

    assert response.status_code == 503, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert int(response.headers["Retry-After"]) > 0
    body = response.json()
    assert body["code"] == "database_unavailable"
    assert "database" in body["detail"].lower()
    lines = new_log_lines(log_path, since)
    assert len(lines) == 1, lines
    assert "database unavailable" in lines[0] and "OperationalError" in lines[0]
    assert "refused" in lines[0].lower() or "too many connections" in lines[0].lower()
    assert "GET /api/v1/contexts/" in lines[0]


def test_api_write_answers_the_same(server):
    url, _ = server
    response = httpx.post(f"{url}/api/v1/contexts/acme/models/", json={"name": "churn"},
                          headers={"Authorization": "Bearer some-token"}, timeout=10)
    assert response.status_code == 503
    assert response.json()["code"] == "database_unavailable"


def test_dashboard_answers_a_styled_503_page_and_logs_one_line(server):
    url, log_path = server
    since = len(log_path.read_text())

    # A signed-in browser: its session is read from the database.
    response = httpx.get(f"{url}/", cookies={"sessionid": "a" * 32}, timeout=10)

    assert response.status_code == 503
    assert response.headers["Content-Type"].startswith("text/html")
    assert int(response.headers["Retry-After"]) > 0
    page = response.text
    assert '<link rel="stylesheet" href="/static/dashboard/app.' in page  # base.html, as 403 and 404
    assert '<section class="card narrow">' in page
    assert "<h1>Database unavailable</h1>" in page
    assert "Traceback" not in page and "Server Error" not in page
    lines = new_log_lines(log_path, since)
    assert len(lines) == 1, lines
    assert "database unavailable" in lines[0] and "GET /" in lines[0]


def test_sign_in_answers_the_styled_page(server):
    url, _ = server
    with httpx.Client(base_url=url, timeout=10) as browser:
        form = browser.get("/login/")  # an anonymous page needs no database
        assert form.status_code == 200
        response = browser.post("/login/", data={
            "username": "alice", "password": "wrong", "csrfmiddlewaretoken": browser.cookies["csrftoken"],
        })
    assert response.status_code == 503
    assert "<h1>Database unavailable</h1>" in response.text


def test_no_traceback_is_logged(server):
    url, log_path = server
    for _ in range(3):
        httpx.get(f"{url}/api/v1/contexts/", headers={"Authorization": "Bearer some-token"}, timeout=10)
    assert "Traceback" not in log_path.read_text()


def test_liveness_stays_up_and_readiness_reports_the_database_in_one_line(server):
    url, log_path = server
    assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
    since = len(log_path.read_text())

    ready = httpx.get(f"{url}/readyz", timeout=10)

    assert ready.status_code == 503
    assert ready.json()["checks"]["database"].startswith("unavailable")
    lines = new_log_lines(log_path, since)
    assert [line for line in lines if "database" in line] == lines and len(lines) == 1, lines
    assert "Traceback" not in log_path.read_text()
