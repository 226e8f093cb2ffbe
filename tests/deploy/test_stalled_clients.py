"""Clients that stop sending cannot hold the registry hostage (the shipped gunicorn setup).

40 connections open a request and stall: uploads that send 10 bytes of a declared 1 MB body,
API POSTs with a token and sign-in forms that send half their body, and one that never
finishes its headers. With gthread's 2 × 8 threads, they held every thread and /healthz timed out. Now
/healthz and a model GET still answer within a second, every stalled connection is cut off
after the idle time, and no stalled upload leaves a file or a format behind.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import httpx
import pytest
from django.db import connection

from registry.models import Format, Membership
from tests.conftest import _free_port, token_for
from tests.deploy.test_database_outage import _environment
from tests.factories import ContextFactory, ModelFactory, UserFactory, VersionFactory
from tests.helpers import gunicorn_process

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

IDLE_TIMEOUT = 4


@pytest.fixture
def site(tmp_path):
    if connection.vendor != "postgresql":
        if os.environ.get("CI") == "true":
            pytest.fail("the stalled-clients test runs the web process on PostgreSQL under CI")
        pytest.skip("the web process cannot share the SQLite in-memory test database")
    user = UserFactory(username="stall-editor")
    context = ContextFactory(slug="stall")
    Membership.objects.create(context=context, user=user, role="admin")
    model = ModelFactory(context=context, name="churn")
    VersionFactory(model=model, number=1)
    db = connection.settings_dict
    env = {
        **_environment(tmp_path),
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "REGISTRY_BIND": f"127.0.0.1:{_free_port()}",
        # One process with 4 pooled connections: stalled requests outnumber them six to one.
        "WEB_CONCURRENCY": "1",
        "DATABASE_POOL_SIZE": "4",
        "REGISTRY_WEB_IDLE_TIMEOUT": str(IDLE_TIMEOUT),
        "DEBUG": "true",  # static files from the app: no collectstatic needed
    }
    with gunicorn_process(env, tmp_path / "web.log") as url:
        yield url, token_for(user), model, tmp_path


def _stall(url: str, request_head: str, body_start: bytes) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    sock.sendall(request_head.encode() + body_start)
    return sock


def _stalled_connections(url: str, token: str, model) -> list[socket.socket]:
    upload = (f"PUT /api/v1/models/{model.pk}/versions/1/formats/pkl/file HTTP/1.1\r\n"
              f"Host: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
              "Content-Type: application/octet-stream\r\nContent-Length: 1048576\r\n\r\n")
    login = ("POST /login/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
             "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 4096\r\n\r\n")
    api = ("POST /api/v1/contexts/stall/models/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
           f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n")
    # Many more stalled uploads than the web process has database connections: none may hold
    # one while its body does not arrive.
    sockets = [_stall(url, upload, b"0123456789") for _ in range(24)]
    sockets += [_stall(url, api, b'{"name": "x') for _ in range(8)]
    sockets += [_stall(url, login, b"username=al") for _ in range(2)]
    sockets += [_stall(url, login.replace("\r\n\r\n", f"\r\nCookie: csrftoken={'c' * 32}\r\n\r\n"), b"username=al")
                for _ in range(5)]
    sockets.append(_stall(url, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Half-Written", b""))
    return sockets


def _answer_before_close(sock: socket.socket, seconds: float) -> bytes | None:
    """What the server sent before closing the connection, or None if it was still open
    after `seconds`."""
    sock.settimeout(seconds)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except TimeoutError:
        return None
    except OSError:
        pass  # reset by the server
    return received


def test_stalled_bodies_neither_starve_other_requests_nor_stay_open(site):
    url, token, model, tmp_path = site
    sockets = _stalled_connections(url, token, model)
    try:
        time.sleep(0.5)  # every stalled request has reached the server
        with httpx.Client(base_url=url, timeout=10, headers={"Authorization": f"Bearer {token}"}) as client:
            for _ in range(3):
                started = time.monotonic()
                assert client.get("/healthz").status_code == 200
                healthz = time.monotonic() - started
                started = time.monotonic()
                response = client.get(f"/api/v1/models/{model.pk}/")
                model_get = time.monotonic() - started
                assert response.status_code == 200, response.text
                assert response.json()["name"] == "churn"
                assert healthz < 1 and model_get < 1, (healthz, model_get)

        # Every stalled client is disconnected once it has sent nothing for the idle time; an
        # request cut off in its body is told so (408) before the connection closes.
        started = time.monotonic()
        answers = [_answer_before_close(sock, max(0.1, IDLE_TIMEOUT + 5 - (time.monotonic() - started)))
                   for sock in sockets]
        still_open = [index for index, answer in enumerate(answers) if answer is None]
        assert still_open == [], f"{len(still_open)} stalled connections still open after {IDLE_TIMEOUT + 5} s"
        for index, answer in enumerate(answers[:-1]):  # the last one never finished its headers
            assert answer.startswith(b"HTTP/1.1 408 "), answer[:300]
            if index < 32:
                assert b'"code":"request_timeout"' in answer.replace(b" ", b"")
    finally:
        for sock in sockets:
            sock.close()

    # A cut-off upload stored nothing: no format row, no file in the data folder.
    assert not Format.objects.filter(version__model=model).exists()
    stored = [path for path in Path(tmp_path / "var").rglob("*") if path.is_file() and "files" in path.parts]
    assert stored == []
    log = (tmp_path / "web.log").read_text()
    assert "Traceback" not in log, log[-3000:]
