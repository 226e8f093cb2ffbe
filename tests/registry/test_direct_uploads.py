"""Direct uploads: the parts of a file go straight to the bucket (a real S3 server, moto), not
through the web process; the registry checks the parts and the workers the checksum.

Start a session, PUT parts to presigned URLs (in any order, from any process), complete;
resume from the parts already stored; refuse what does not add up; expire and abort.
"""

from __future__ import annotations

import hashlib
import os
from datetime import timedelta

import httpx
import pytest
from django.utils import timezone

from registry.models import AuditEvent, Format, FormatStatus, UploadSession
from registry.services import maintenance
from tests.conftest import s3_client, s3_storage_settings

pytestmark = pytest.mark.django_db(transaction=True)

MiB = 1024 * 1024


@pytest.fixture
def s3_storage(settings, s3_endpoint, s3_bucket):
    settings.STORAGES = {**settings.STORAGES, "default": s3_storage_settings(s3_endpoint, s3_bucket)}
    return s3_bucket


def _start(client, version, data: bytes, kind: str = "pkl", **extra):
    return client.post(f"/api/v1/models/{version.model_id}/versions/{version.number}/formats/{kind}/uploads/",
                       {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "filename": "model.pkl",
                        **extra}, format="json")


def _parts(client, upload_id: str, numbers: str = ""):
    response = client.get(f"/api/v1/uploads/{upload_id}/parts/", {"numbers": numbers} if numbers else {})
    assert response.status_code == 200, response.content
    return response.json()


def _send(url: str, chunk: bytes) -> None:
    # A presigned URL carries its own authority: no registry token goes with it.
    response = httpx.put(url, content=chunk, timeout=60)
    assert response.status_code == 200, response.text


def _chunks(data: bytes, part_size: int) -> dict[int, bytes]:
    return {n + 1: data[offset:offset + part_size] for n, offset in enumerate(range(0, len(data), part_size))}


def test_a_file_sent_in_parts_to_the_bucket_becomes_the_formats_file(clients, version, s3_storage):
    data = os.urandom(17 * MiB + 123)
    started = _start(clients["editor"], version, data)
    assert started.status_code == 201, started.content
    session = started.json()
    assert session["part_size"] == 8 * MiB and session["part_count"] == 3

    listing = _parts(clients["editor"], session["id"])
    assert listing["stored"] == [] and sorted(listing["urls"]) == ["1", "2", "3"]
    chunks = _chunks(data, session["part_size"])
    for number in (3, 1, 2):  # any order
        _send(listing["urls"][str(number)], chunks[number])

    completed = clients["editor"].post(f"/api/v1/uploads/{session['id']}/complete/")
    assert completed.status_code == 200, completed.content
    body = completed.json()
    assert body["size"] == len(data) and body["original_filename"] == "model.pkl"
    fmt = Format.objects.get(version=version, kind="pkl")
    assert fmt.declared_sha256 == hashlib.sha256(data).hexdigest()
    assert fmt.status != FormatStatus.READY or fmt.sha256 == fmt.declared_sha256
    assert not UploadSession.objects.exists()
    assert AuditEvent.objects.filter(action="format.upload_start").count() == 1
    assert AuditEvent.objects.filter(action="format.upload").count() == 1


def settings_endpoint(_bucket):
    from django.conf import settings

    return settings.STORAGES["default"]["OPTIONS"]["endpoint_url"]


def test_the_stored_object_is_the_bytes_sent(clients, version, s3_storage):
    data = os.urandom(9 * MiB)
    session = _start(clients["editor"], version, data).json()
    chunks = _chunks(data, session["part_size"])
    urls = _parts(clients["editor"], session["id"])["urls"]
    for number, chunk in chunks.items():
        _send(urls[str(number)], chunk)
    assert clients["editor"].post(f"/api/v1/uploads/{session['id']}/complete/").status_code == 200
    fmt = Format.objects.get(version=version, kind="pkl")
    obj = s3_client(settings_endpoint(s3_storage)).get_object(Bucket=s3_storage, Key=fmt.storage_key)
    assert hashlib.sha256(obj["Body"].read()).hexdigest() == hashlib.sha256(data).hexdigest()


def test_an_interrupted_upload_resumes_from_the_parts_stored(clients, version, s3_storage, users):
    data = os.urandom(20 * MiB)
    session = _start(clients["editor"], version, data).json()
    chunks = _chunks(data, session["part_size"])
    _send(_parts(clients["editor"], session["id"], "1")["urls"]["1"], chunks[1])

    # Another process (a new client, the same user) asks what is there and sends the rest.
    from tests.conftest import client_for

    fresh = client_for(users["editor"])
    listing = _parts(fresh, session["id"], "2-3")
    assert [part["number"] for part in listing["stored"]] == [1]
    assert listing["stored"][0]["size"] == 8 * MiB
    for number in (2, 3):
        _send(listing["urls"][str(number)], chunks[number])
    assert fresh.post(f"/api/v1/uploads/{session['id']}/complete/").status_code == 200


def test_completing_with_parts_missing_is_409_and_the_session_stays_open(clients, version, s3_storage):
    data = os.urandom(17 * MiB)
    session = _start(clients["editor"], version, data).json()
    chunks = _chunks(data, session["part_size"])
    _send(_parts(clients["editor"], session["id"], "1")["urls"]["1"], chunks[1])

    response = clients["editor"].post(f"/api/v1/uploads/{session['id']}/complete/")
    assert response.status_code == 409
    assert "2 of 3 parts" in response.json()["detail"]
    assert not Format.objects.filter(version=version, storage_key__gt="").exists()
    assert UploadSession.objects.filter(pk=session["id"]).exists()


def test_a_part_of_the_wrong_size_is_409(clients, version, s3_storage):
    data = os.urandom(17 * MiB)
    session = _start(clients["editor"], version, data).json()
    chunks = _chunks(data, session["part_size"])
    urls = _parts(clients["editor"], session["id"])["urls"]
    _send(urls["1"], chunks[1])
    _send(urls["2"], chunks[2][:-1])  # one byte short
    _send(urls["3"], chunks[3])
    response = clients["editor"].post(f"/api/v1/uploads/{session['id']}/complete/")
    assert response.status_code == 409
    assert "Part 2" in response.json()["detail"]


def test_a_wrong_declared_checksum_never_becomes_ready(clients, version, s3_storage, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    data = os.urandom(9 * MiB)
    session = clients["editor"].post(
        f"/api/v1/models/{version.model_id}/versions/1/formats/pkl/uploads/",
        {"size": len(data), "sha256": "0" * 64}, format="json").json()
    urls = _parts(clients["editor"], session["id"])["urls"]
    for number, chunk in _chunks(data, session["part_size"]).items():
        _send(urls[str(number)], chunk)
    assert clients["editor"].post(f"/api/v1/uploads/{session['id']}/complete/").status_code == 200
    fmt = Format.objects.get(version=version, kind="pkl")
    assert fmt.status != FormatStatus.READY


@pytest.mark.parametrize("body, field", [
    ({"size": 0, "sha256": "a" * 64}, "size"),
    ({"size": 10, "sha256": "not-hex"}, "sha256"),
    ({"size": 10}, "sha256"),
])
def test_bad_session_requests_are_400(clients, version, s3_storage, body, field):
    response = clients["editor"].post(f"/api/v1/models/{version.model_id}/versions/1/formats/pkl/uploads/",
                                      body, format="json")
    assert response.status_code == 400, response.content
    assert not UploadSession.objects.exists()


def test_a_file_over_the_limit_is_413_before_anything_is_sent(clients, version, s3_storage, settings):
    settings.REGISTRY_MAX_UPLOAD_BYTES = 10 * MiB
    response = _start(clients["editor"], version, b"x" * (11 * MiB))
    assert response.status_code == 413
    assert not UploadSession.objects.exists()
    assert s3_client(settings_endpoint(s3_storage)).list_multipart_uploads(Bucket=s3_storage).get("Uploads", []) == []


def test_local_storage_answers_409_and_points_at_put(clients, version, storage_dir):
    response = _start(clients["editor"], version, b"x" * 100)
    assert response.status_code == 409
    assert response.json()["code"] == "direct_upload_unavailable"
    assert "PUT" in response.json()["detail"]


@pytest.mark.parametrize("persona", ["viewer", "readonly", "outsider", "anonymous"])
def test_who_may_not_edit_cannot_start_or_touch_a_session(clients, version, s3_storage, persona):
    data = b"y" * 100
    response = _start(clients[persona], version, data)
    assert response.status_code in (401, 403, 404)
    session = _start(clients["editor"], version, data).json()
    for method, path in [("get", f"/api/v1/uploads/{session['id']}/parts/"),
                         ("post", f"/api/v1/uploads/{session['id']}/complete/"),
                         ("delete", f"/api/v1/uploads/{session['id']}/")]:
        answer = getattr(clients[persona], method)(path)
        assert answer.status_code in (401, 404), (persona, method, answer.status_code)
    assert UploadSession.objects.filter(pk=session["id"]).exists()


@pytest.mark.parametrize("upload_id", ["abc", "12345", "6a1d2b7e-0000-4000-8000-00000000000z", "0" * 40])
def test_a_malformed_upload_id_is_404(clients, upload_id):
    for method, path in [("get", f"/api/v1/uploads/{upload_id}/parts/"),
                         ("post", f"/api/v1/uploads/{upload_id}/complete/"),
                         ("delete", f"/api/v1/uploads/{upload_id}/")]:
        answer = getattr(clients["editor"], method)(path)
        assert answer.status_code == 404, (method, answer.status_code)
        assert answer.json()["detail"] == "Upload not found."


def test_abort_drops_the_parts(clients, version, s3_storage):
    data = os.urandom(9 * MiB)
    session = _start(clients["editor"], version, data).json()
    _send(_parts(clients["editor"], session["id"], "1")["urls"]["1"], data[:8 * MiB])
    assert clients["editor"].delete(f"/api/v1/uploads/{session['id']}/").status_code == 204
    assert not UploadSession.objects.exists()
    assert s3_client(settings_endpoint(s3_storage)).list_multipart_uploads(Bucket=s3_storage).get("Uploads", []) == []
    assert clients["editor"].get(f"/api/v1/uploads/{session['id']}/parts/").status_code == 404


def test_the_sweep_aborts_expired_sessions_and_keeps_open_ones(clients, version, s3_storage, model, users):
    from registry import services

    other = services.version_create(actor=users["editor"], model=model)
    expired = _start(clients["editor"], version, b"a" * 100).json()
    kept = _start(clients["editor"], other, b"b" * 100).json()
    UploadSession.objects.filter(pk=expired["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    # Even with a zero age, the open session's upload is not one the sweep aborts.
    maintenance.storage_orphans_delete(older_than=timedelta(0))
    assert list(UploadSession.objects.values_list("id", flat=True)) == [UploadSession.objects.get().pk]
    assert str(UploadSession.objects.get().pk) == kept["id"]
    uploads = s3_client(settings_endpoint(s3_storage)).list_multipart_uploads(Bucket=s3_storage).get("Uploads", [])
    assert len(uploads) == 1


def test_a_published_version_refuses_completion(clients, version, s3_storage, users):
    data = os.urandom(100)
    session = _start(clients["editor"], version, data).json()
    _send(_parts(clients["editor"], session["id"])["urls"]["1"], data)
    from registry.models import Version, VersionStatus

    Version.objects.filter(pk=version.pk).update(status=VersionStatus.PUBLISHED, published_at=timezone.now())
    response = clients["editor"].post(f"/api/v1/uploads/{session['id']}/complete/")
    assert response.status_code == 409
    assert not Format.objects.filter(version=version, storage_key__gt="").exists()


def test_bad_part_numbers_are_400(clients, version, s3_storage):
    session = _start(clients["editor"], version, b"z" * 100).json()
    for numbers in ("0", "2", "x", "5-1", "1-5000"):
        response = clients["editor"].get(f"/api/v1/uploads/{session['id']}/parts/", {"numbers": numbers})
        assert response.status_code == 400, (numbers, response.content)


def test_every_direct_upload_answer_has_the_keys_of_its_schema(client, clients, version, s3_storage):
    import json

    from tests.registry.test_api_schema import CHECKED_WITH_S3, json_answers, mismatches

    schema = json.loads(client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").content)
    answers = json_answers(schema)
    data = os.urandom(100)
    started = _start(clients["editor"], version, data)
    listing = clients["editor"].get(f"/api/v1/uploads/{started.json()['id']}/parts/")
    _send(listing.json()["urls"]["1"], data)
    completed = clients["editor"].post(f"/api/v1/uploads/{started.json()['id']}/complete/")
    checked = [
        ("post", "/api/v1/models/{model_id}/versions/{number}/formats/{kind}/uploads/", started, 201),
        ("get", "/api/v1/uploads/{upload_id}/parts/", listing, 200),
        ("post", "/api/v1/uploads/{upload_id}/complete/", completed, 200),
    ]
    assert {(method, path) for method, path, *_ in checked} == CHECKED_WITH_S3
    for method, path, response, status in checked:
        assert response.status_code == status, response.content
        assert mismatches(schema, answers[(method, path)][status], response.json()) == [], path
