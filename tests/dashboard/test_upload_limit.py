"""The dashboard's multipart uploads check the declared Content-Length before reading a byte of
the body, as the API's PUT does: a form declaring more than a file may hold answers 413 at
once with the styled page, and nothing is spooled to the local disk."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from registry import services
from registry.limits import form_envelope_bytes
from registry.models import Format

GiB = 1024**3
BOUNDARY = "registry-test-boundary"
CSRF = "a" * 32


@pytest.fixture
def spool(settings, tmp_path):
    """Where Django would write an uploaded file it cannot keep in memory."""
    folder = tmp_path / "spool"
    folder.mkdir()
    settings.FILE_UPLOAD_TEMP_DIR = str(folder)
    return folder


def upload_url(version) -> str:
    return reverse("dashboard:format-upload", kwargs={"model_id": version.model_id, "number": version.number})


def first_part(kind: str = "pkl") -> bytes:
    return (
        f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"kind\"\r\n\r\n{kind}\r\n"
        f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.{kind}\"\r\n"
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()


def send_head_and_some_bytes(base_url: str, path: str, cookies: dict, declared: int, sent: bytes) -> bytes:
    """A browser posting a form with a huge file: the headers and the first bytes, then it waits
    for an answer. Returns what the server answered within 10 s."""
    address = urlsplit(base_url)
    cookie = "; ".join(f"{name}={value}" for name, value in cookies.items())
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {address.hostname}:{address.port}\r\n"
        f"Cookie: {cookie}\r\nX-CSRFToken: {CSRF}\r\nReferer: {base_url}/\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {declared}\r\n\r\n"
    ).encode()
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        sock.sendall(head + sent)
        answer = b""
        try:
            while b"</html>" not in answer:
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
        except TimeoutError:
            pass
    return answer


@pytest.mark.django_db(transaction=True)
def test_a_declared_25_gib_form_is_refused_at_once_and_nothing_is_spooled(live_server, users, context, spool):
    model = services.model_create(actor=users["editor"], context=context, name="Churn")
    version = services.version_create(actor=users["editor"], model=model)
    browser = Client()
    browser.force_login(users["editor"])

    answer = send_head_and_some_bytes(
        live_server.url, upload_url(version),
        {"sessionid": browser.cookies["sessionid"].value, "csrftoken": CSRF},
        declared=25 * GiB, sent=first_part() + b"\0" * (1024 * 1024),
    )

    assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
    page = answer.decode(errors="replace")
    assert "<h1>File too large</h1>" in page
    assert "the limit for a file is 21474836480 bytes (20.0 GB)" in page.replace("\xa0", " ")
    assert '<link rel="stylesheet"' in page and "Sign out editor" in page  # the styled page, signed in
    assert list(spool.iterdir()) == []
    assert not Format.objects.exists()


@pytest.fixture
def draft(users, context, db):
    model = services.model_create(actor=users["editor"], context=context, name="Churn")
    return services.version_create(actor=users["editor"], model=model)


def test_the_rule_is_the_apis(settings, users, draft, spool):
    """The form's allowance is the file limit plus what Django lets a form's other fields take."""
    settings.REGISTRY_MAX_UPLOAD_BYTES = 1000
    browser = Client()
    browser.force_login(users["editor"])
    assert form_envelope_bytes() >= settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    over = 1000 + form_envelope_bytes() + 1

    response = browser.post(upload_url(draft), data=first_part(), CONTENT_LENGTH=str(over),
                            content_type=f"multipart/form-data; boundary={BOUNDARY}")

    assert response.status_code == 413
    assert "the limit for a file is 1000 bytes" in response.content.decode()


def test_a_file_within_the_allowance_is_still_checked_by_the_service(settings, users, draft):
    settings.REGISTRY_MAX_UPLOAD_BYTES = 1000
    browser = Client()
    browser.force_login(users["editor"])

    response = browser.post(upload_url(draft), {"kind": "pkl", "file": SimpleUploadedFile("m.pkl", b"x" * 1001)})

    assert response.status_code == 400
    assert "The file is 1001 bytes; the limit is 1000 bytes." in response.content.decode()
    assert not Format.objects.exists()


def test_a_small_upload_goes_through(users, draft):
    browser = Client()
    browser.force_login(users["editor"])

    response = browser.post(upload_url(draft), {"kind": "pkl", "file": SimpleUploadedFile("m.pkl", b"\x80\x04K\x01.")})

    assert response.status_code == 302
    assert Format.objects.filter(version=draft, kind="pkl").exists()
