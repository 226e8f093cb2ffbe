"""The same storage tests on both backends: local files and S3 (moto's real S3 server over HTTP).

What the registry promises of its storage: bytes come back as they went in, whole or by
range; uploads and hashing run in constant memory; deleting a format removes its object;
an upload that fails (too large, cut off, connection lost) leaves nothing behind, not even
an unfinished S3 multipart upload; downloads can redirect to a short-lived presigned URL.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tracemalloc
import urllib.request
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.core.files.storage import storages

from registry import services, storage, tasks
from registry.errors import BodyIncomplete, FileTooLarge
from registry.models import AuditEvent, Format, FormatStatus
from registry.services import processing

from tests.conftest import s3_client, s3_storage_settings, stored_files
from tests.helpers import PICKLE, file_url, upload

pytestmark = pytest.mark.django_db

MiB = 1024 * 1024
KEY = re.compile(r"^formats/[0-9a-f]{2}/[0-9a-f]{32}$")
MISSING = "The stored file is missing: it is no longer in storage. Upload the file again."


class Backend:
    def __init__(self, name: str, *, folder: str | None = None, endpoint: str | None = None, bucket: str | None = None):
        self.name, self.folder, self.endpoint, self.bucket = name, folder, endpoint, bucket

    def keys(self) -> list[str]:
        if self.name == "local":
            return stored_files(self.folder)
        listing = s3_client(self.endpoint).list_objects_v2(Bucket=self.bucket)
        return sorted(item["Key"] for item in listing.get("Contents", []))

    def unfinished_uploads(self) -> list[str]:
        if self.name == "local":
            return []
        return [u["Key"] for u in s3_client(self.endpoint).list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])]


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.subprocess)])
def backend(request, settings, storage_dir):
    if request.param == "local":
        yield Backend("local", folder=storage_dir)
        return
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = request.getfixturevalue("s3_bucket")
    settings.STORAGES = {**settings.STORAGES, "default": s3_storage_settings(endpoint, bucket)}
    yield Backend("s3", endpoint=endpoint, bucket=bucket)


def pattern(size: int) -> bytes:
    """Deterministic, non-repeating-per-MiB bytes, so a misplaced range shows."""
    block = hashlib.sha256(b"seed").digest() * (MiB // 32)
    out, i = bytearray(), 0
    while len(out) < size:
        out += bytes([i % 251]) + block[: MiB - 1]
        i += 1
    return bytes(out[:size])


class GeneratedStream(io.RawIOBase):
    """`size` bytes produced on demand (a request body that never sits in memory)."""

    def __init__(self, size: int, *, fail_after: int | None = None):
        self.remaining, self.fail_after, self.sent = size, fail_after, 0
        self.sha256 = hashlib.sha256()

    def readable(self):
        return True

    def read(self, n=-1):
        if self.fail_after is not None and self.sent >= self.fail_after:
            raise ConnectionResetError("client went away")
        n = self.remaining if n is None or n < 0 else min(n, self.remaining, 1 * MiB)
        data = bytes([self.sent // MiB % 256]) * n
        self.remaining -= n
        self.sent += n
        self.sha256.update(data)
        return data


def test_the_backend_under_test_is_the_configured_one(backend):
    expected = "FileSystemStorage" if backend.name == "local" else "StreamingS3Storage"
    assert type(storages["default"]).__name__ == expected


def test_round_trip_through_the_api_and_the_worker(backend, editor, version):
    body = pattern(3 * MiB + 17)
    r = upload(editor, version.model_id, version.number, body=PICKLE)
    assert r.status_code == 200, r.json()
    r = upload(editor, version.model_id, version.number, kind="other", body=body)
    assert r.status_code == 200, r.json()
    fmt = Format.objects.get(version=version, kind="other")
    # The worker hashed what is in the storage, streaming it from there.
    assert fmt.status == FormatStatus.READY, fmt.status_message
    assert fmt.sha256 == hashlib.sha256(body).hexdigest() and fmt.md5 == hashlib.md5(body).hexdigest()
    assert KEY.match(fmt.storage_key) and fmt.storage_key in backend.keys()
    assert len(backend.keys()) == 2  # replaced nothing, left nothing extra

    response = editor.get(file_url(version, "other"))
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == body
    assert response["ETag"] == f'"{fmt.sha256}"'
    assert response["Content-Disposition"] == 'attachment; filename="model.other"'


def test_ranged_reads(backend, editor, version):
    body = pattern(2 * MiB + 5)
    assert upload(editor, version.model_id, version.number, kind="other", body=body).status_code == 200
    url = file_url(version, "other")
    for header, start, end in [
        ("bytes=0-9", 0, 9),
        (f"bytes={MiB - 3}-{MiB + 3}", MiB - 3, MiB + 3),  # across a chunk boundary
        ("bytes=-7", len(body) - 7, len(body) - 1),
        (f"bytes={2 * MiB}-", 2 * MiB, len(body) - 1),
    ]:
        response = editor.get(url, HTTP_RANGE=header)
        assert response.status_code == 206, header
        assert b"".join(response.streaming_content) == body[start:end + 1], header
        assert response["Content-Range"] == f"bytes {start}-{end}/{len(body)}"
    assert editor.get(url, HTTP_RANGE=f"bytes={len(body)}-").status_code == 416

    # Seeking back and forth on one handle (what the introspectors do through local_copy).
    fmt = Format.objects.get(version=version, kind="other")
    with storage.open_for_read(fmt.storage_key) as handle:
        handle.seek(MiB)
        assert handle.read(4) == body[MiB:MiB + 4]
        handle.seek(1)
        assert handle.read(3) == body[1:4]
        handle.seek(-2, io.SEEK_END)
        assert handle.read() == body[-2:]
        handle.seek(100)  # a long read after a seek crosses S3 read windows (1 MiB, then 2 MiB...)
        pieces = []
        while data := handle.read(300 * 1024):
            pieces.append(data)
        assert b"".join(pieces) == body[100:]
        assert handle.read(10) == b""
    with storage.local_copy(fmt.storage_key) as copy:
        assert hashlib.sha256(copy.read()).hexdigest() == fmt.sha256


@pytest.mark.slow
def test_large_upload_and_hashing_run_in_constant_memory(backend):
    size = 96 * MiB
    stream = GeneratedStream(size)
    tracemalloc.start()
    try:
        key, stored = storage.save_stream(stream, max_bytes=size, expected=size)
        _, upload_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        md5, sha256, hashed = storage.hash_object(key)
        _, hash_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert stored == hashed == size
    assert sha256 == stream.sha256.hexdigest()
    assert backend.keys() == [key]
    # One S3 part (8 MiB) plus the chunk being read, a few times over at most: never the file.
    assert upload_peak < 40 * MiB, f"upload peaked at {upload_peak / MiB:.0f} MiB"
    assert hash_peak < 40 * MiB, f"hashing peaked at {hash_peak / MiB:.0f} MiB"


def test_deleting_a_format_removes_its_object(backend, editor, version, django_capture_on_commit_callbacks):
    assert upload(editor, version.model_id, version.number, body=PICKLE).status_code == 200
    assert len(backend.keys()) == 1
    with django_capture_on_commit_callbacks(execute=True):
        r = editor.delete(f"/api/v1/models/{version.model_id}/versions/{version.number}/formats/pkl/")
    assert r.status_code == 204
    assert backend.keys() == []


def test_replacing_a_file_removes_the_old_object(backend, editor, version):
    assert upload(editor, version.model_id, version.number, body=PICKLE).status_code == 200
    first = backend.keys()
    assert upload(editor, version.model_id, version.number, body=b"\x80\x04K\x02.").status_code == 200
    second = backend.keys()
    assert len(second) == 1 and second != first


def test_deleting_a_model_removes_every_object(backend, clients, version, django_capture_on_commit_callbacks):
    editor = clients["editor"]
    assert upload(editor, version.model_id, version.number, body=PICKLE).status_code == 200
    assert upload(editor, version.model_id, version.number, kind="other", body=b"x" * 100).status_code == 200
    assert len(backend.keys()) == 2
    with django_capture_on_commit_callbacks(execute=True):
        assert clients["admin"].delete(f"/api/v1/models/{version.model_id}/").status_code == 204
    assert backend.keys() == []


@pytest.mark.slow
def test_too_large_upload_leaves_nothing(backend, settings):
    settings.REGISTRY_MAX_UPLOAD_BYTES = 20 * MiB
    # No Content-Length: the limit is found while streaming, after S3 parts were stored.
    with pytest.raises(FileTooLarge):
        storage.save_stream(GeneratedStream(30 * MiB), max_bytes=settings.REGISTRY_MAX_UPLOAD_BYTES)
    assert backend.keys() == []
    assert backend.unfinished_uploads() == []


@pytest.mark.slow
def test_connection_lost_mid_upload_leaves_nothing(backend):
    with pytest.raises(ConnectionResetError):
        storage.save_stream(GeneratedStream(40 * MiB, fail_after=17 * MiB), max_bytes=100 * MiB)
    assert backend.keys() == []
    assert backend.unfinished_uploads() == []


@pytest.mark.parametrize("size", [1000, 20 * MiB])  # one request, and a multipart upload
def test_cut_off_upload_leaves_nothing(backend, users, version, size):
    # The client stopped sending: 400 body_incomplete (a client disconnect, not bad input).
    with pytest.raises(BodyIncomplete) as excinfo:
        services.format_upload(actor=users["editor"], version=version, kind="other",
                               stream=GeneratedStream(size), content_length=size + 1)
    assert "cut off" in str(excinfo.value)
    assert backend.keys() == [] and backend.unfinished_uploads() == []
    assert not Format.objects.filter(version=version, kind="other").exists()


def test_a_missing_object_ends_failed_when_hashing(backend, editor, version):
    r = upload(editor, version.model_id, version.number, body=PICKLE, process=False)
    fmt = Format.objects.get(pk=r.json()["id"])
    storage.delete_quietly([fmt.storage_key])
    # Both backends report a missing object the same way: the format fails, once, and is never clean.
    assert tasks.format_hash.apply(args=[str(fmt.pk), fmt.storage_key]).get() == FormatStatus.FAILED
    fmt.refresh_from_db()
    assert fmt.status == FormatStatus.FAILED and not fmt.sha256
    assert fmt.status_message == MISSING
    [event] = AuditEvent.objects.filter(action="format.failed", object_id=str(fmt.pk))
    assert "stored file is missing" in event.summary
    assert processing.formats_reconcile(older_than=timedelta(0)) == 0
    assert tasks.format_hash.apply(args=[str(fmt.pk), fmt.storage_key]).get() is None


def test_a_missing_object_ends_failed_when_introspecting(backend, editor, version):
    r = upload(editor, version.model_id, version.number, body=PICKLE, process=False)
    fmt = Format.objects.get(pk=r.json()["id"])
    assert processing.format_hash(format_id=fmt.pk, storage_key=fmt.storage_key).status == FormatStatus.INTROSPECTING
    storage.delete_quietly([fmt.storage_key])  # gone between hashing and introspection
    assert tasks.format_introspect.apply(args=[str(fmt.pk), fmt.storage_key]).get() == FormatStatus.FAILED
    fmt.refresh_from_db()
    assert fmt.status_message == MISSING  # and no server path in it
    assert fmt.report["status"] == "failed" and fmt.sha256 == hashlib.sha256(PICKLE).hexdigest()
    assert AuditEvent.objects.filter(action="format.failed", object_id=str(fmt.pk)).count() == 1
    assert processing.formats_reconcile(older_than=timedelta(0)) == 0


def test_presigned_redirect(backend, editor, version, settings):
    settings.REGISTRY_S3_PRESIGNED_DOWNLOADS = True
    settings.REGISTRY_S3_PRESIGNED_EXPIRY_SECONDS = 120
    body = pattern(MiB + 3)
    assert upload(editor, version.model_id, version.number, kind="other", body=body).status_code == 200
    fmt = Format.objects.get(version=version, kind="other")
    response = editor.get(file_url(version, "other"))
    if backend.name == "local":  # nothing to sign: the web process streams the file
        assert response.status_code == 200
        assert b"".join(response.streaming_content) == body
        return
    assert response.status_code == 302
    assert response["ETag"] == f'"{fmt.sha256}"' and "no-store" in response["Cache-Control"]
    location = response["Location"]
    assert location.startswith(backend.endpoint) and "X-Amz-Expires=120" in location
    with urllib.request.urlopen(location) as direct:
        assert direct.read() == body
        assert direct.headers["Content-Disposition"] == 'attachment; filename="model.other"'
    request = urllib.request.Request(location, headers={"Range": "bytes=5-9"})
    with urllib.request.urlopen(request) as direct:
        assert direct.status == 206 and direct.read() == body[5:10]


def test_presigned_urls_name_the_public_endpoint(s3_endpoint, s3_bucket, editor, version, settings):
    """Inside docker-compose the registry reaches MinIO as http://minio:9000; clients cannot."""
    settings.REGISTRY_S3_PRESIGNED_DOWNLOADS = True
    public = "http://files.registry.example:9000"
    settings.STORAGES = {**settings.STORAGES,
                         "default": s3_storage_settings(s3_endpoint, s3_bucket, public_endpoint_url=public)}
    assert upload(editor, version.model_id, version.number, body=PICKLE).status_code == 200
    response = editor.get(file_url(version))
    assert response.status_code == 302
    location = urlsplit(response["Location"])
    assert f"{location.scheme}://{location.netloc}" == public
    assert location.path.startswith(f"/{s3_bucket}/formats/")


def test_presigned_download_still_checks_permissions(backend, clients, version, settings):
    settings.REGISTRY_S3_PRESIGNED_DOWNLOADS = True
    assert upload(clients["editor"], version.model_id, version.number, body=PICKLE).status_code == 200
    assert clients["outsider"].get(file_url(version)).status_code == 404
    assert clients["anonymous"].get(file_url(version)).status_code == 401
    assert clients["viewer"].get(file_url(version)).status_code in (200, 302)


def test_readiness_checks_the_storage(backend, client):
    storage.check_reachable()
    if backend.name == "s3":
        s3_client(backend.endpoint).delete_bucket(Bucket=backend.bucket)
        try:
            with pytest.raises(Exception):
                storage.check_reachable()
        finally:
            s3_client(backend.endpoint).create_bucket(Bucket=backend.bucket)


def _overwrite(backend, key: str, data: bytes) -> None:
    """Change stored bytes behind the registry's back, as an attacker or a bad disk would."""
    if backend.name == "local":
        with open(f"{backend.folder}/{key}", "wb") as handle:
            handle.write(data)
    else:
        s3_client(backend.endpoint).put_object(Bucket=backend.bucket, Key=key, Body=data)


def test_integrity_sweep_finds_changed_bytes(backend, editor, version):
    assert upload(editor, version.model_id, version.number, body=PICKLE).status_code == 200
    fmt = Format.objects.get(version=version, kind="pkl")
    assert processing.format_verify(format_id=fmt.pk).status == FormatStatus.READY
    _overwrite(backend, fmt.storage_key, b"\x80\x04K\x02.")
    fmt = processing.format_verify(format_id=fmt.pk)
    assert fmt.status == FormatStatus.CORRUPT and "hash to" in fmt.status_message


def test_orphan_sweep_lists_and_removes_objects_no_format_points_to(backend, editor, version):
    from datetime import timedelta

    from registry.services import maintenance

    assert upload(editor, version.model_id, version.number, body=PICKLE).status_code == 200
    kept = Format.objects.get(version=version, kind="pkl").storage_key
    orphan, _ = storage.save_stream(io.BytesIO(b"left by a killed upload"), max_bytes=100)
    assert sorted(backend.keys()) == sorted([kept, orphan])
    assert maintenance.storage_orphans_delete(older_than=timedelta(hours=1)) == []  # too young to judge
    assert maintenance.storage_orphans_delete(older_than=timedelta(seconds=-5)) == [orphan]
    assert backend.keys() == [kept]


@pytest.mark.slow
def test_large_http_upload_and_download_stream_in_constant_memory(backend, live_server):
    """256 MiB through a real HTTP server into the backend and back: this process (server and
    client; the S3 server runs in its own) grows by about one part, never by the file."""
    from tests.registry.test_files import RssSampler, _connection, _live_setup, _put, _rss

    size, chunk = 256 * MiB, MiB
    user, version, token = _live_setup(f"big-{backend.name}")
    path = file_url(version, "other")
    assert _put(live_server, token, path, [b"w" * chunk] * 9, 9 * chunk)[0] == 200  # warm up, multipart too

    digest, seed = hashlib.sha256(), os.urandom(chunk)

    def body():
        for i in range(size // chunk):
            block = i.to_bytes(8, "big") + seed[8:]
            digest.update(block)
            yield block

    baseline = _rss()
    with RssSampler() as upload_sampler:
        status, data = _put(live_server, token, path + "?filename=big.bin", body(), size)
    assert status == 200, data
    fmt = Format.objects.get(version=version, kind="other")
    assert fmt.size == size and fmt.sha256 == digest.hexdigest()  # hashed from the backend
    assert backend.keys() == [fmt.storage_key] and backend.unfinished_uploads() == []
    upload_growth = upload_sampler.peak - baseline

    baseline = _rss()
    received, downloaded = 0, hashlib.sha256()
    with RssSampler() as download_sampler:
        conn = _connection(live_server)
        try:
            conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
            response = conn.getresponse()
            assert response.status == 200 and response.getheader("Content-Length") == str(size)
            while block := response.read(chunk):
                received += len(block)
                downloaded.update(block)
        finally:
            conn.close()
    download_growth = download_sampler.peak - baseline
    assert received == size and downloaded.hexdigest() == digest.hexdigest()
    print(f"\n{backend.name}: upload peak RSS growth {upload_growth / MiB:.1f} MiB, "
          f"download {download_growth / MiB:.1f} MiB")
    assert upload_growth < 48 * MiB
    assert download_growth < 32 * MiB


def s3_going_away(settings, bucket: str) -> None:
    """The bucket's server goes away (nothing listens on port 1)."""
    from botocore.config import Config

    settings.STORAGES = {**settings.STORAGES, "default": s3_storage_settings(
        "http://127.0.0.1:1", bucket, client_config=Config(retries={"max_attempts": 1}, connect_timeout=1))}


def test_an_s3_outage_during_hashing_is_retried_then_reconciled(s3_endpoint, s3_bucket, settings, editor, version,
                                                                  monkeypatch):
    settings.STORAGES = {**settings.STORAGES, "default": s3_storage_settings(s3_endpoint, s3_bucket)}
    r = upload(editor, version.model_id, version.number, body=PICKLE, process=False)
    fmt = Format.objects.get(pk=r.json()["id"])

    s3_going_away(settings, s3_bucket)
    attempts = []
    real_open = storage.open_for_read
    monkeypatch.setattr(storage, "open_for_read", lambda key: attempts.append(key) or real_open(key))
    result = tasks.format_hash.apply(args=[str(fmt.pk), fmt.storage_key])
    assert result.state == "FAILURE" and type(result.result).__name__ == "EndpointConnectionError"
    assert len(attempts) == tasks.RETRY["max_retries"] + 1  # retried, not given up at once
    fmt.refresh_from_db()
    assert fmt.status == FormatStatus.HASHING and not fmt.sha256  # shown as in progress, never clean

    # It is back: the periodic reconciler finds the stuck format and a worker finishes it.
    settings.STORAGES = {**settings.STORAGES, "default": s3_storage_settings(s3_endpoint, s3_bucket)}
    assert processing.formats_reconcile(older_than=timedelta(seconds=-1)) == 1
    fmt.refresh_from_db()
    assert fmt.status == FormatStatus.READY and fmt.sha256 == hashlib.sha256(PICKLE).hexdigest()


def test_an_s3_outage_during_introspection_is_retried_not_failed(s3_endpoint, s3_bucket, settings, editor, version,
                                                                 monkeypatch):
    settings.STORAGES = {**settings.STORAGES, "default": s3_storage_settings(s3_endpoint, s3_bucket)}
    r = upload(editor, version.model_id, version.number, body=PICKLE, process=False)
    fmt = Format.objects.get(pk=r.json()["id"])
    assert processing.format_hash(format_id=fmt.pk, storage_key=fmt.storage_key).status == FormatStatus.INTROSPECTING

    s3_going_away(settings, s3_bucket)
    attempts = []
    real_open = storage.open_for_read
    monkeypatch.setattr(storage, "open_for_read", lambda key: attempts.append(key) or real_open(key))
    result = tasks.format_introspect.apply(args=[str(fmt.pk), fmt.storage_key])
    assert result.state == "FAILURE" and type(result.result).__name__ == "EndpointConnectionError"
    assert len(attempts) == tasks.RETRY["max_retries"] + 1
    fmt.refresh_from_db()
    assert fmt.status == FormatStatus.INTROSPECTING and fmt.report == {}  # an outage is not the file's fault

    settings.STORAGES = {**settings.STORAGES, "default": s3_storage_settings(s3_endpoint, s3_bucket)}
    assert processing.formats_reconcile(older_than=timedelta(seconds=-1)) == 1
    fmt.refresh_from_db()
    assert fmt.status == FormatStatus.READY


# --- a model's attachments: the same storage, the same promises ----------------------------------

def test_an_attachment_round_trips_and_a_cut_off_one_leaves_nothing(backend, clients, users, model,
                                                                    django_capture_on_commit_callbacks):
    body = pattern(3 * MiB + 17)
    with django_capture_on_commit_callbacks(execute=True):
        response = clients["editor"].generic("PUT", f"/api/v1/models/{model.pk}/attachments/drift.csv/file",
                                             data=body, content_type="application/octet-stream")
    assert response.status_code == 201, response.json()
    assert response.json()["sha256"] == hashlib.sha256(body).hexdigest()
    keys = backend.keys()
    assert len(keys) == 1 and KEY.match(keys[0])
    got = clients["viewer"].get(f"/api/v1/models/{model.pk}/attachments/drift.csv/file")
    assert b"".join(got.streaming_content) == body

    with pytest.raises(BodyIncomplete):
        services.attachment_upload(actor=users["editor"], model=model, name="cut.csv",
                                   stream=GeneratedStream(2 * MiB), content_length=4 * MiB)
    assert backend.keys() == keys and backend.unfinished_uploads() == []
    with django_capture_on_commit_callbacks(execute=True):
        assert clients["editor"].delete(f"/api/v1/models/{model.pk}/attachments/drift.csv/").status_code == 204
    assert backend.keys() == []
