"""/healthz (liveness) and /readyz (database, broker, storage), and the JSON log format."""

from __future__ import annotations

import json
import logging

import pytest

from registry import health
from registry.logs import JsonFormatter

pytestmark = pytest.mark.django_db


def test_liveness_answers_without_touching_anything(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["Cache-Control"] == "no-store"
    assert "Set-Cookie" not in response  # no session for a probe
    assert response["Content-Length"] == str(len(response.content))  # (not sent chunked)


def test_probes_ignore_allowed_hosts_and_the_https_redirect(client, settings):
    """Orchestrators probe a container by its IP over plain http."""
    settings.ALLOWED_HOSTS = ["registry.example"]
    settings.SECURE_SSL_REDIRECT = True
    for path in ("/healthz", "/healthz/", "/readyz"):
        assert client.get(path, HTTP_HOST="10.0.3.7:8000").status_code == 200, path
    # Everything else still meets both.
    assert client.get("/api/v1/contexts/", HTTP_HOST="10.0.3.7:8000").status_code == 400
    assert client.get("/api/v1/contexts/", HTTP_HOST="registry.example").status_code == 301


def test_readiness_reports_each_dependency(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "broker", "storage"}
    assert all(value.startswith("ok") for value in body["checks"].values())


@pytest.mark.parametrize("dependency", ["database", "broker", "storage"])
def test_readiness_fails_when_a_dependency_is_down(client, monkeypatch, dependency):
    def down():
        raise ConnectionRefusedError("secret internal detail 10.0.0.5")

    monkeypatch.setitem(health.READINESS_CHECKS, dependency, down)
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"][dependency] == "unavailable (ConnectionRefusedError)"
    assert "10.0.0.5" not in response.content.decode()
    assert all(v.startswith("ok") for k, v in body["checks"].items() if k != dependency)


def test_readiness_sees_an_unreachable_broker(client, settings, monkeypatch):
    from registry.celery import app

    monkeypatch.setattr(app.conf, "broker_url", "redis://127.0.0.1:1/0")
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["broker"].startswith("unavailable")


def test_readiness_sees_a_broken_storage_folder(client, settings, tmp_path):
    blocker = tmp_path / "files"
    blocker.write_text("a file where the storage folder should be")
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(blocker)}}}
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["storage"].startswith("unavailable")


def test_probes_only_answer_get(client):
    assert client.post("/healthz").status_code == 405
    assert client.head("/healthz").status_code == 200


def test_json_log_lines():
    record = logging.LogRecord("registry.tasks", logging.WARNING, __file__, 1, "queued %s", ("x",), None)
    record.format_id = "abc"
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "WARNING" and entry["logger"] == "registry.tasks"
    assert entry["message"] == "queued x" and entry["format_id"] == "abc"
    assert "ValueError: boom" in entry["exception"]
    assert entry["time"].endswith("+00:00")
