"""A client that goes away in the middle of an upload is the client's doing, not a server
error: the registry answers 400 `body_incomplete` if anyone is still listening, stores nothing,
and logs one warning line saying the client disconnected, with no traceback. The upload is
really cut: a raw socket sends part of the declared body to the live server, then closes
(FIN) or resets (RST) the connection."""

from __future__ import annotations

import json
import logging
import socket
import struct
import time

import pytest

from tests.client.conftest import stored_files, wait_for
from tests.conftest import s3_storage_settings

MiB = 1024 * 1024


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.subprocess)])
def storage_backend(request, settings):
    if request.param == "s3":
        endpoint, bucket = request.getfixturevalue("s3_endpoint"), request.getfixturevalue("s3_bucket")
        settings.STORAGES = {**settings.STORAGES, "default": s3_storage_settings(endpoint, bucket)}
    return request.param


def _cut_upload(server_url: str, token: str, path: str, *, declared: int, sent: int, how: str) -> bytes:
    """PUT `sent` of `declared` bytes, then close ("fin": and read what the server answers) or reset."""
    host, port = server_url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall((f"PUT {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
                      f"Content-Type: application/octet-stream\r\nContent-Length: {declared}\r\n\r\n").encode())
        sock.sendall(b"\x00" * sent)
        time.sleep(0.3)  # the server is reading the body now
        if how == "rst":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return b""
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(10)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
            if b"\r\n\r\n" in answer and answer.endswith(b"}"):
                break
        return answer


@pytest.mark.parametrize("how", ["fin", "rst"])
def test_an_upload_cut_by_the_client_is_one_warning_line_and_stores_nothing(
        storage_backend, how, connect, server_url, tokens, storage_dir, caplog):
    version = connect("editor").context("acme").model("cut", create=True).create_version()
    path = f"/api/v1/models/{version.model_id}/versions/1/formats/other/file"
    caplog.set_level(logging.INFO)
    caplog.clear()

    answer = _cut_upload(server_url, tokens["editor"], path, declared=12 * MiB, sent=3 * MiB, how=how)

    if how == "fin":  # the client still listens: it is told
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400")
        error = json.loads(body)
        assert error["code"] == "body_incomplete"
        assert "cut off after 3145728 of 12582912 bytes" in error["detail"]

    def server_lines():
        return [r for r in caplog.records if r.name.startswith(("registry", "django"))]

    lines = wait_for(lambda: [r for r in server_lines() if "client disconnected" in r.getMessage()])
    assert len(lines) == 1, [r.getMessage() for r in server_lines()]
    line = lines[0]
    assert line.levelno == logging.WARNING and line.exc_info is None
    assert f"PUT {path} stopped sending its body" in line.getMessage()
    assert "answered 400, nothing stored" in line.getMessage()
    time.sleep(0.3)  # nothing else comes after it: no "Bad Request", no 500, no traceback
    others = [r for r in server_lines() if r is not line and path in r.getMessage()]
    assert others == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not _format_exists(version)  # the PUT would have created it with its file
    if storage_backend == "local":
        assert wait_for(lambda: stored_files(storage_dir) == [])


def _format_exists(version) -> bool:
    from registry.models import Format

    return Format.objects.filter(version__model_id=version.model_id, kind="other").exists()


def test_a_dashboard_upload_cut_by_the_browser_is_a_client_disconnect_not_a_csrf_failure(
        connect, server_url, users, caplog):
    """A multipart form whose connection is reset: CsrfViewMiddleware would read the broken body
    as a form without its token and log "Forbidden (CSRF token missing.)"."""
    from django.test import Client

    version = connect("editor").context("acme").model("cut", create=True).create_version()
    browser = Client()
    browser.force_login(users["editor"])
    session = browser.cookies["sessionid"].value
    csrf = "a" * 32
    boundary = "cutboundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"csrfmiddlewaretoken\"\r\n\r\n{csrf}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"kind\"\r\n\r\nother\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"w.bin\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode()
    path = f"/models/{version.model_id}/versions/1/formats/upload/"
    host, port = server_url.removeprefix("http://").rsplit(":", 1)
    caplog.set_level(logging.INFO)
    caplog.clear()
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall((f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nCookie: sessionid={session}; csrftoken={csrf}"
                      f"\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n"
                      f"Content-Length: {len(head) + 12 * MiB}\r\n\r\n").encode() + head + b"\x00" * (3 * MiB))
        time.sleep(0.3)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    lines = wait_for(lambda: [r for r in caplog.records if "client disconnected" in r.getMessage()])
    assert len(lines) == 1 and f"POST {path} stopped sending its body" in lines[0].getMessage()
    time.sleep(0.3)
    assert not [r for r in caplog.records if "CSRF" in r.getMessage() or r.levelno >= logging.ERROR]
    assert not _format_exists(version)
