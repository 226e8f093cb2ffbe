"""Format files: upload, replace, limits, cut-off uploads, cleanup on delete, downloads
(headers, ETag, Range) and constant-memory streaming through a real HTTP server.

Storage is a fresh local folder per test (`storage_dir`), so "nothing left behind" is
asserted by listing it.
"""

from __future__ import annotations

import base64
import gc
import hashlib
import http.client
import io
import json
import os
import pickle
import re
import socket
import threading
import time
from urllib.parse import quote, unquote, urlsplit

import psutil
import pytest
from django.db import transaction
from django.utils import timezone

from registry import services
from registry.errors import BodyIncomplete, FileTooLarge, VersionPublished
from registry.models import AuditEvent, Format, FormatStatus, Version

from tests.conftest import stored_files, token_for
from tests.factories import UserFactory
from tests.helpers import PICKLE, file_url

pytestmark = pytest.mark.django_db

KEY = re.compile(r"^formats/[0-9a-f]{2}/[0-9a-f]{32}$")
MiB = 1024 * 1024
ROW_FIELDS = [
    "storage_key", "size", "original_filename", "content_type", "md5", "sha256", "declared_md5",
    "declared_sha256", "status", "status_message", "report", "uploaded_by_id", "uploaded_at",
]


# --- helpers ------------------------------------------------------------------------------

def upload(client, version, body: bytes, kind="pkl", filename: str | None = "model.pkl",
           content_type="application/octet-stream", **extra):
    url = file_url(version, kind)
    if filename is not None:
        url += "?filename=" + quote(filename, safe="")
    if not body and "CONTENT_LENGTH" not in extra:
        extra["CONTENT_LENGTH"] = "0"  # the test client leaves it out for an empty body
    return client.generic("PUT", url, data=body, content_type=content_type, **extra)


def committed_upload(client, version, body: bytes, django_capture_on_commit_callbacks, **kwargs):
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(client, version, body, **kwargs)
    assert response.status_code == 200, response.json()
    return response


def row(kind="pkl") -> dict:
    return Format.objects.values(*ROW_FIELDS).get(kind=kind)


def read_stored(storage_dir, key) -> bytes:
    with open(os.path.join(storage_dir, key), "rb") as handle:
        return handle.read()


def content(response) -> bytes:
    # Consuming the streaming content closes the response (and the stored file) through
    # the test client's wrapper; closing it again here would fire request_finished.
    return b"".join(response.streaming_content) if response.streaming else response.content


class Stream:
    """A request body: yields `data`, optionally cut short or failing after `fail_after` bytes."""

    def __init__(self, data: bytes, *, fail_after: int | None = None, exc: BaseException | None = None,
                 on_exhausted=None):
        self._buffer = io.BytesIO(data)
        self._fail_after = fail_after
        self._exc = exc or ConnectionResetError("client went away")
        self._on_exhausted = on_exhausted
        self.reads = 0

    def read(self, size=-1) -> bytes:
        self.reads += 1
        if self._fail_after is not None and self._buffer.tell() >= self._fail_after:
            raise self._exc
        if self._fail_after is not None:
            limit = self._fail_after - self._buffer.tell()
            size = limit if size is None or size < 0 else min(size, limit)
        chunk = self._buffer.read(size)
        if not chunk and self._on_exhausted is not None:
            self._on_exhausted()
        return chunk

    @property
    def consumed(self) -> int:
        return self._buffer.tell()


class Untouchable:
    """A body that must not be read at all (the request is refused before streaming)."""

    def read(self, size=-1):  # pragma: no cover - reaching it is the failure
        raise AssertionError("the body was read although the upload should be refused first")


def disposition_filename(value: str) -> str:
    """Decode the filename of an `attachment` Content-Disposition, checking its syntax."""
    assert "\r" not in value and "\n" not in value
    quoted = re.fullmatch(r'attachment; filename="((?:[\t \x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e])*)"', value)
    if quoted:
        return re.sub(r"\\(.)", r"\1", quoted.group(1))
    extended = re.fullmatch(r"attachment; filename\*=utf-8''([A-Za-z0-9!#$&+\-.^_`|~%]*)", value)
    assert extended, f"malformed Content-Disposition: {value!r}"
    return unquote(extended.group(1), errors="strict")


def publish(version, users):
    Format.objects.filter(version=version).update(status=FormatStatus.READY, sha256="a" * 64, md5="b" * 32)
    services.version_publish(actor=users["publisher"], version=version)


# --- upload ---------------------------------------------------------------------------------

def test_upload_stores_the_body_under_a_server_key_with_its_metadata(clients, users, version, storage_dir):
    body = os.urandom(4096)
    r = upload(clients["editor"], version, body, content_type="application/x-pickle")
    assert r.status_code == 200, r.json()
    data = r.json()
    assert data["status"] == "uploaded"
    assert data["size"] == len(body)
    assert data["original_filename"] == "model.pkl"
    assert data["content_type"] == "application/x-pickle"
    assert data["uploaded_by"] == "editor"
    assert data["uploaded_at"]
    assert data["md5"] == data["sha256"] == ""  # the worker computes them, never the request
    assert data["declared_md5"] == data["declared_sha256"] == ""
    assert data["file_url"] == file_url(version)
    fmt = Format.objects.get()
    assert KEY.match(fmt.storage_key)
    assert stored_files(storage_dir) == [fmt.storage_key]
    assert read_stored(storage_dir, fmt.storage_key) == body


@pytest.mark.parametrize(("given", "kept"), [
    ("../../etc/passwd", "passwd"),
    ("/var/lib/../../root/.ssh/authorized_keys", "authorized_keys"),
    ("..\\..\\Windows\\System32\\evil.dll", "evil.dll"),
    ("C:\\Users\\me\\model.pkl", "model.pkl"),
    ("a\x07b\r\nX-Injected: 1\x1b[31m.pkl", "abX-Injected: 1[31m.pkl"),  # a NUL is refused: test_bad_input
    ("mode\u0301le\u202e.pkl", "mod\u00e9le.pkl"),  # NFC, bidi override dropped
    ("formats/00/" + "0" * 32, "0" * 32),
    ("x" * 1000, "x" * 255),
])
def test_client_filename_is_only_display_metadata(clients, version, storage_dir, given, kept):
    r = upload(clients["editor"], version, b"payload", filename=given)
    assert r.status_code == 200, r.json()
    assert r.json()["original_filename"] == kept
    fmt = Format.objects.get()
    assert fmt.original_filename == kept
    assert KEY.match(fmt.storage_key)
    assert kept not in fmt.storage_key and "passwd" not in fmt.storage_key
    files = stored_files(storage_dir)
    assert files == [fmt.storage_key]
    real = os.path.realpath(os.path.join(storage_dir, files[0]))
    assert real.startswith(os.path.realpath(storage_dir) + os.sep)


def test_filename_may_come_from_the_x_filename_header(clients, version):
    r = upload(clients["editor"], version, b"payload", filename=None, HTTP_X_FILENAME="../weights.pt")
    assert r.status_code == 200, r.json()
    assert r.json()["original_filename"] == "weights.pt"
    assert KEY.match(Format.objects.get().storage_key)


def test_declared_checksums_are_stored_normalised(clients, version):
    body = b"model bytes" * 100
    sha, md5 = hashlib.sha256(body).hexdigest(), hashlib.md5(body)
    r = upload(clients["editor"], version, body, HTTP_X_CHECKSUM_SHA256=f" {sha.upper()} ",
               HTTP_CONTENT_MD5=base64.b64encode(md5.digest()).decode())
    assert r.status_code == 200, r.json()
    assert r.json()["declared_sha256"] == sha
    assert r.json()["declared_md5"] == md5.hexdigest()
    assert row()["declared_sha256"] == sha and row()["declared_md5"] == md5.hexdigest()

    r = upload(clients["editor"], version, body, kind="onnx", HTTP_CONTENT_MD5=md5.hexdigest().upper())
    assert r.status_code == 200, r.json()
    assert r.json()["declared_md5"] == md5.hexdigest()
    assert r.json()["declared_sha256"] == ""


@pytest.mark.parametrize(("header", "value"), [
    ("HTTP_X_CHECKSUM_SHA256", "abc"),
    ("HTTP_X_CHECKSUM_SHA256", "g" * 64),
    ("HTTP_X_CHECKSUM_SHA256", "a" * 65),
    ("HTTP_X_CHECKSUM_SHA256", base64.b64encode(b"\x01" * 32).decode()),
    ("HTTP_CONTENT_MD5", "!!!not base64!!!"),
    ("HTTP_CONTENT_MD5", base64.b64encode(b"\x01" * 15).decode()),
    ("HTTP_CONTENT_MD5", base64.b64encode(b"\x01" * 32).decode()),
    ("HTTP_CONTENT_MD5", "a" * 31),
])
def test_malformed_checksum_header_is_refused_before_storing(clients, version, storage_dir, header, value):
    r = upload(clients["editor"], version, b"payload", **{header: value})
    assert r.status_code == 400
    expected_field = "X-Checksum-Sha256" if "SHA256" in header else "Content-MD5"
    assert r.json()["field"] == expected_field
    assert r.json()["detail"]
    assert not Format.objects.exists()
    assert stored_files(storage_dir) == []


def test_replacing_deletes_the_old_object_only_after_commit(clients, version, storage_dir,
                                                             django_capture_on_commit_callbacks):
    editor = clients["editor"]
    committed_upload(editor, version, b"first version of the file", django_capture_on_commit_callbacks,
                     HTTP_X_CHECKSUM_SHA256=hashlib.sha256(b"first version of the file").hexdigest())
    old_key = Format.objects.get().storage_key
    # The worker hashed and introspected the first file.
    Format.objects.update(status=FormatStatus.READY, sha256="c" * 64, md5="d" * 32, report={"kind": "pickle"})

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        r = upload(editor, version, b"second", filename="better.pkl")
        assert r.status_code == 200, r.json()
        # Before the commit the old object must still be there: a rollback keeps it valid.
        assert sorted(stored_files(storage_dir)) == sorted([old_key, Format.objects.get().storage_key])
    for callback in callbacks:
        callback()

    fmt = Format.objects.get()
    assert fmt.storage_key != old_key and KEY.match(fmt.storage_key)
    assert stored_files(storage_dir) == [fmt.storage_key]
    assert read_stored(storage_dir, fmt.storage_key) == b"second"
    assert (fmt.size, fmt.original_filename) == (6, "better.pkl")
    # Results computed for the old bytes are not kept: the new bytes were hashed and read
    # afresh on commit (b"second" is not a pickle, so the new file fails introspection).
    assert (fmt.sha256, fmt.md5, fmt.declared_sha256) == (
        hashlib.sha256(b"second").hexdigest(), hashlib.md5(b"second").hexdigest(), "")
    assert fmt.status == FormatStatus.FAILED and fmt.report != {"kind": "pickle"}
    assert Format.objects.count() == 1


# --- size limit -----------------------------------------------------------------------------

def test_declared_length_over_the_limit_is_413_and_stores_nothing(clients, version, storage_dir, settings):
    settings.REGISTRY_MAX_UPLOAD_BYTES = 100
    r = upload(clients["editor"], version, b"x" * 101)
    assert r.status_code == 413
    assert r.json()["code"] == "file_too_large"
    assert not Format.objects.exists()
    assert stored_files(storage_dir) == []

    # A lying header is refused before a single byte is read.
    r = upload(clients["editor"], version, b"x" * 10, CONTENT_LENGTH=str(50 * 1024**3))
    assert r.status_code == 413
    assert not Format.objects.exists()
    assert stored_files(storage_dir) == []

    r = upload(clients["editor"], version, b"x" * 100)
    assert r.status_code == 200, r.json()
    assert r.json()["size"] == 100


def test_declared_length_over_the_limit_leaves_the_existing_file(clients, version, storage_dir, settings,
                                                                 django_capture_on_commit_callbacks):
    committed_upload(clients["editor"], version, b"good", django_capture_on_commit_callbacks)
    before = row()
    settings.REGISTRY_MAX_UPLOAD_BYTES = 100
    with django_capture_on_commit_callbacks(execute=True):
        r = upload(clients["editor"], version, b"y" * 101)
    assert r.status_code == 413
    assert row() == before
    assert stored_files(storage_dir) == [before["storage_key"]]
    assert read_stored(storage_dir, before["storage_key"]) == b"good"


def test_declared_length_over_the_limit_is_refused_without_reading(users, version, settings, storage_dir):
    settings.REGISTRY_MAX_UPLOAD_BYTES = 100
    with pytest.raises(FileTooLarge):
        services.format_upload(actor=users["editor"], version=version, kind="pkl", stream=Untouchable(),
                               content_length=101)
    assert not Format.objects.exists()
    assert stored_files(storage_dir) == []


@pytest.mark.parametrize("replacing", [False, True])
def test_stream_larger_than_the_limit_is_stopped_and_removed(users, version, settings, storage_dir,
                                                             django_capture_on_commit_callbacks, replacing):
    """Without a declared length (or with one that lies low) the counted bytes enforce the limit."""
    if replacing:
        with django_capture_on_commit_callbacks(execute=True):
            services.format_upload(actor=users["editor"], version=version, kind="pkl",
                                   stream=io.BytesIO(b"old"), content_length=3)
    before = list(Format.objects.values(*ROW_FIELDS))
    before_files = stored_files(storage_dir)
    settings.REGISTRY_MAX_UPLOAD_BYTES = 1000
    settings.REGISTRY_STREAM_CHUNK_BYTES = 64  # several chunks hit the disk before the limit
    stream = Stream(b"z" * 10_000)
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(FileTooLarge):
        services.format_upload(actor=users["editor"], version=version, kind="pkl", stream=stream,
                               content_length=None)
    assert stream.consumed <= 1000 + 64  # reading stopped at the limit, not at the end of the body
    assert list(Format.objects.values(*ROW_FIELDS)) == before
    assert stored_files(storage_dir) == before_files
    if replacing:
        assert read_stored(storage_dir, before[0]["storage_key"]) == b"old"


def test_stream_longer_than_declared_is_read_only_up_to_the_declared_length(users, version, storage_dir,
                                                                            django_capture_on_commit_callbacks):
    """The bytes after Content-Length belong to the next request on the connection."""
    stream = Stream(b"0123456789" + b"next request")
    fmt = services.format_upload(actor=users["editor"], version=version, kind="pkl", stream=stream,
                                 content_length=10)
    assert fmt.size == 10
    assert stream.consumed == 10
    assert read_stored(storage_dir, fmt.storage_key) == b"0123456789"


# --- interrupted uploads --------------------------------------------------------------------

def _existing(users, version, django_capture_on_commit_callbacks, replacing):
    if replacing:
        with django_capture_on_commit_callbacks(execute=True):
            services.format_upload(actor=users["editor"], version=version, kind="pkl",
                                   stream=io.BytesIO(b"previous file"), content_length=13, filename="prev.pkl")
    return list(Format.objects.values(*ROW_FIELDS))


@pytest.mark.parametrize("replacing", [False, True])
def test_upload_cut_off_before_content_length_leaves_nothing(users, version, storage_dir, settings,
                                                             django_capture_on_commit_callbacks, replacing):
    before = _existing(users, version, django_capture_on_commit_callbacks, replacing)
    before_files = stored_files(storage_dir)
    settings.REGISTRY_STREAM_CHUNK_BYTES = 128
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(BodyIncomplete) as excinfo:
        services.format_upload(actor=users["editor"], version=version, kind="pkl",
                               stream=Stream(b"h" * 500), content_length=1000, filename="new.pkl")
    assert excinfo.value.field == "file" and excinfo.value.code == "body_incomplete"
    assert list(Format.objects.values(*ROW_FIELDS)) == before
    assert stored_files(storage_dir) == before_files
    if replacing:
        assert read_stored(storage_dir, before[0]["storage_key"]) == b"previous file"


@pytest.mark.parametrize("replacing", [False, True])
@pytest.mark.parametrize("exc", [ConnectionResetError("peer reset"), OSError("disk full"), KeyboardInterrupt()])
def test_upload_failing_mid_stream_leaves_nothing(users, version, storage_dir, settings,
                                                  django_capture_on_commit_callbacks, replacing, exc):
    before = _existing(users, version, django_capture_on_commit_callbacks, replacing)
    before_files = stored_files(storage_dir)
    settings.REGISTRY_STREAM_CHUNK_BYTES = 128
    stream = Stream(b"h" * 1000, fail_after=512, exc=exc)
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(type(exc)):
        services.format_upload(actor=users["editor"], version=version, kind="pkl", stream=stream,
                               content_length=1000, filename="new.pkl")
    assert stream.consumed == 512  # bytes did reach the storage before the failure
    assert list(Format.objects.values(*ROW_FIELDS)) == before
    assert stored_files(storage_dir) == before_files
    if replacing:
        assert read_stored(storage_dir, before[0]["storage_key"]) == b"previous file"


def test_version_published_while_streaming_discards_the_new_object(users, version, storage_dir):
    def publish_now():
        Version.objects.filter(pk=version.pk).update(status="published", published_at=timezone.now())

    with pytest.raises(VersionPublished):
        services.format_upload(actor=users["editor"], version=version, kind="pkl",
                               stream=Stream(b"q" * 100, on_exhausted=publish_now), content_length=None)
    assert not Format.objects.exists()
    assert stored_files(storage_dir) == []


@pytest.mark.parametrize(("extra", "status", "field"), [
    ({"CONTENT_LENGTH": ""}, 411, None),
    ({"CONTENT_LENGTH": "abc"}, 400, "Content-Length"),
    ({"CONTENT_LENGTH": "-1"}, 400, "Content-Length"),
])
def test_content_length_is_required_and_numeric(clients, version, storage_dir, extra, status, field):
    r = upload(clients["editor"], version, b"payload", **extra)
    assert r.status_code == status, r.json()
    assert r.json()["detail"]
    if field:
        assert r.json()["field"] == field
    assert not Format.objects.exists()
    assert stored_files(storage_dir) == []


def test_empty_request_without_content_length_is_411(clients, version, storage_dir):
    r = clients["editor"].generic("PUT", file_url(version), data=b"", content_type="application/octet-stream")
    assert r.status_code == 411
    assert r.json()["code"] == "length_required"
    assert stored_files(storage_dir) == []


@pytest.mark.parametrize(("persona", "status"), [
    ("anonymous", 401), ("outsider", 404), ("viewer", 403), ("readonly", 403),
])
def test_only_editors_upload(clients, version, storage_dir, persona, status):
    r = upload(clients[persona], version, b"payload")
    assert r.status_code == status
    assert not Format.objects.exists()
    assert stored_files(storage_dir) == []


# --- published versions ---------------------------------------------------------------------

def test_published_version_refuses_uploads_and_deletes(clients, users, version, storage_dir,
                                                       django_capture_on_commit_callbacks):
    committed_upload(clients["editor"], version, b"frozen", django_capture_on_commit_callbacks)
    publish(version, users)
    before = row()

    with django_capture_on_commit_callbacks(execute=True):
        for kind in ("pkl", "onnx"):  # replace, and add a new kind
            r = upload(clients["editor"], version, b"changed", kind=kind)
            assert r.status_code == 409
            assert r.json()["code"] == "version_published"
        r = clients["admin"].delete(f"/api/v1/models/{version.model_id}/versions/{version.number}/formats/pkl/")
        assert r.status_code == 409
    assert list(Format.objects.values_list("kind", flat=True)) == ["pkl"]
    assert row() == before
    assert stored_files(storage_dir) == [before["storage_key"]]
    assert read_stored(storage_dir, before["storage_key"]) == b"frozen"

    version.refresh_from_db()
    with pytest.raises(VersionPublished):
        services.format_upload(actor=users["admin"], version=version, kind="onnx", stream=Untouchable(),
                               content_length=10)
    assert stored_files(storage_dir) == [before["storage_key"]]


# --- deletes remove stored files, after commit ----------------------------------------------

def _two_versions_with_files(clients, users, model, django_capture_on_commit_callbacks):
    v1 = services.version_create(actor=users["editor"], model=model)
    v2 = services.version_create(actor=users["editor"], model=model)
    for v in (v1, v2):
        for kind in ("pkl", "onnx"):
            committed_upload(clients["editor"], v, f"{v.number}-{kind}".encode(),
                             django_capture_on_commit_callbacks, kind=kind)
    return v1, v2


def _keys(**filters) -> list[str]:
    return sorted(Format.objects.filter(**filters).values_list("storage_key", flat=True))


def test_deleting_a_format_removes_its_file_after_commit(clients, users, model, storage_dir,
                                                         django_capture_on_commit_callbacks):
    v1, v2 = _two_versions_with_files(clients, users, model, django_capture_on_commit_callbacks)
    gone = _keys(version=v1, kind="pkl")
    kept = _keys(kind="onnx") + _keys(version=v2, kind="pkl")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        r = clients["editor"].delete(f"/api/v1/models/{model.pk}/versions/1/formats/pkl/")
        assert r.status_code == 204
    assert len(stored_files(storage_dir)) == 4  # not yet committed
    for callback in callbacks:
        callback()
    assert stored_files(storage_dir) == sorted(kept)
    assert gone[0] not in stored_files(storage_dir)


def test_deleting_a_version_removes_its_files_after_commit(clients, users, model, storage_dir,
                                                           django_capture_on_commit_callbacks):
    v1, v2 = _two_versions_with_files(clients, users, model, django_capture_on_commit_callbacks)
    kept = _keys(version=v2)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        r = clients["admin"].delete(f"/api/v1/models/{model.pk}/versions/1/")
        assert r.status_code == 204
    assert len(stored_files(storage_dir)) == 4
    for callback in callbacks:
        callback()
    assert stored_files(storage_dir) == kept


def test_deleting_a_published_version_removes_its_files(clients, users, model, storage_dir,
                                                        django_capture_on_commit_callbacks):
    v1, _ = _two_versions_with_files(clients, users, model, django_capture_on_commit_callbacks)
    publish(v1, users)
    with django_capture_on_commit_callbacks(execute=True):
        assert clients["admin"].delete(f"/api/v1/models/{model.pk}/versions/1/").status_code == 204
    assert stored_files(storage_dir) == _keys()
    assert len(stored_files(storage_dir)) == 2


def test_deleting_a_model_removes_all_its_files_after_commit(clients, users, model, storage_dir,
                                                             django_capture_on_commit_callbacks):
    v1, _ = _two_versions_with_files(clients, users, model, django_capture_on_commit_callbacks)
    publish(v1, users)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        r = clients["admin"].delete(f"/api/v1/models/{model.pk}/")
        assert r.status_code == 204
    assert len(stored_files(storage_dir)) == 4
    for callback in callbacks:
        callback()
    assert stored_files(storage_dir) == []
    assert not Format.objects.exists()


@pytest.mark.parametrize("target", ["format", "version", "model"])
def test_rolled_back_delete_keeps_the_files(clients, users, model, storage_dir,
                                            django_capture_on_commit_callbacks, target):
    v1, _ = _two_versions_with_files(clients, users, model, django_capture_on_commit_callbacks)
    before_files, before_rows = stored_files(storage_dir), list(Format.objects.values(*ROW_FIELDS))

    class Abort(Exception):
        pass

    with django_capture_on_commit_callbacks(execute=True) as callbacks, pytest.raises(Abort):
        with transaction.atomic():
            if target == "format":
                services.format_delete(actor=users["admin"], fmt=Format.objects.get(version=v1, kind="pkl"))
            elif target == "version":
                services.version_delete(actor=users["admin"], version=v1)
            else:
                services.model_delete(actor=users["admin"], model=model)
            raise Abort
    assert callbacks == []
    assert stored_files(storage_dir) == before_files
    assert list(Format.objects.values(*ROW_FIELDS)) == before_rows


@pytest.mark.django_db(transaction=True)
def test_real_commits_remove_replaced_and_deleted_files(storage_dir):
    """With real transactions (no captured callbacks): replace, then roll back and commit deletes."""
    context = services.context_create(actor=None, slug="tx", name="Tx")
    user = UserFactory(username="tx-admin")
    services.membership_set(actor=None, context=context, role="admin", username=user.username)
    model = services.model_create(actor=user, context=context, name="tx-model")
    version = services.version_create(actor=user, model=model)

    def put(kind, body):
        return services.format_upload(actor=user, version=version, kind=kind, stream=io.BytesIO(body),
                                      content_length=len(body))

    first = put("pkl", b"one")
    second = put("pkl", b"two")
    put("onnx", b"three")
    assert first.storage_key != second.storage_key
    assert stored_files(storage_dir) == sorted(Format.objects.values_list("storage_key", flat=True))
    assert len(stored_files(storage_dir)) == 2

    with pytest.raises(RuntimeError), transaction.atomic():
        services.model_delete(actor=user, model=model)
        raise RuntimeError("rolled back")
    assert len(stored_files(storage_dir)) == 2

    services.format_delete(actor=user, fmt=Format.objects.get(kind="onnx"))
    assert stored_files(storage_dir) == [Format.objects.get().storage_key]
    services.model_delete(actor=user, model=model)
    assert stored_files(storage_dir) == []


# --- download -------------------------------------------------------------------------------

# 100 bytes that are a real, benign pickle (bytes 0-84), so the file ends `ready` and downloads
# without the acknowledgement a flagged file needs (see test_trusted_imports.py).
BODY = pickle.dumps(bytes(range(85)), protocol=4)
assert len(BODY) == 100


@pytest.fixture
def stored(clients, version, django_capture_on_commit_callbacks):
    committed_upload(clients["editor"], version, BODY, django_capture_on_commit_callbacks,
                     content_type="text/html")
    return Format.objects.get()


def test_download_streams_the_bytes_with_safe_headers(clients, version, stored):
    r = clients["viewer"].get(file_url(version))
    assert r.status_code == 200
    assert r.streaming
    assert r["Content-Type"] == "application/octet-stream"  # never the client's text/html
    assert r["X-Content-Type-Options"] == "nosniff"
    assert r["Accept-Ranges"] == "bytes"
    assert r["Content-Length"] == "100"
    assert r["Content-Disposition"] == 'attachment; filename="model.pkl"'
    assert r["ETag"] == f'"{hashlib.sha256(BODY).hexdigest()}"'  # hashed by the worker on commit
    assert content(r) == BODY


@pytest.mark.parametrize("accept", ["application/octet-stream", "application/x-pickle", "*/*"])
def test_download_answers_any_accept_header_with_the_bytes(clients, version, stored, accept):
    r = clients["viewer"].get(file_url(version), HTTP_ACCEPT=accept)
    assert r.status_code == 200
    assert r["Content-Type"] == "application/octet-stream"
    assert content(r) == BODY


def test_download_errors_stay_json_whatever_the_accept_header(clients, version):
    r = clients["viewer"].get(file_url(version, "onnx"), HTTP_ACCEPT="application/octet-stream")
    assert r.status_code == 404
    assert r["Content-Type"] == "application/json"
    assert "onnx" in r.json()["detail"]


@pytest.mark.parametrize("name", [
    'my "best" model.pkl',
    "back\\slash.pkl",
    "mod\u00e8le \U0001f680.pkl",
    'x.pkl"; filename="evil.exe',
    "evil.pkl\r\nSet-Cookie: session=stolen",
    "evil.pkl\nX-Injected: yes",
    "tab\there.pkl",
])
def test_content_disposition_escapes_any_stored_filename(clients, version, stored, name):
    Format.objects.filter(pk=stored.pk).update(original_filename=name)  # whatever the row holds
    r = clients["viewer"].get(file_url(version))
    assert r.status_code == 200
    header = r["Content-Disposition"]
    assert disposition_filename(header) == name
    assert not r.has_header("Set-Cookie") and not r.has_header("X-Injected")
    assert not r.cookies
    assert content(r) == BODY


def test_uploaded_filename_round_trips_to_the_download_header(clients, version):
    r = upload(clients["editor"], version, b"abc", filename='dir/a "q"\n\u00e9\u0007.pkl')
    assert r.status_code == 200
    assert r.json()["original_filename"] == 'a "q"\u00e9.pkl'
    r = clients["viewer"].get(file_url(version), {"acknowledge": "uploaded"})
    assert disposition_filename(r["Content-Disposition"]) == 'a "q"\u00e9.pkl'
    assert content(r) == b"abc"


def test_download_name_falls_back_to_model_version_and_kind(clients, users, context, storage_dir,
                                                            django_capture_on_commit_callbacks):
    model = services.model_create(actor=users["editor"], context=context, name='Mod\u00e8le "x"')
    version = services.version_create(actor=users["editor"], model=model)
    committed_upload(clients["editor"], version, PICKLE, django_capture_on_commit_callbacks, filename=None)
    r = clients["viewer"].get(file_url(version))
    assert r.status_code == 200
    assert disposition_filename(r["Content-Disposition"]) == 'Mod\u00e8le "x"-v1.pkl'
    content(r)


def test_etag_is_the_sha256_and_if_none_match_gives_304(clients, version, stored):
    sha = hashlib.sha256(BODY).hexdigest()
    Format.objects.filter(pk=stored.pk).update(sha256=sha, md5=hashlib.md5(BODY).hexdigest(),
                                               status=FormatStatus.READY)
    viewer = clients["viewer"]
    r = viewer.get(file_url(version))
    assert r.status_code == 200
    assert r["ETag"] == f'"{sha}"'
    assert content(r) == BODY

    for header in (f'"{sha}"', f'"{"0" * 64}", "{sha}"', f'W/"{sha}"', "*"):
        r = viewer.get(file_url(version), HTTP_IF_NONE_MATCH=header)
        assert r.status_code == 304, header
        assert r["ETag"] == f'"{sha}"'
        assert content(r) == b""

    r = viewer.get(file_url(version), HTTP_IF_NONE_MATCH=f'"{"0" * 64}"')
    assert r.status_code == 200
    assert content(r) == BODY


def test_no_etag_before_hashing(clients, version, stored):
    Format.objects.filter(pk=stored.pk).update(sha256="", md5="", status=FormatStatus.UPLOADED)  # not hashed yet
    r = clients["viewer"].get(file_url(version), {"acknowledge": "uploaded"}, HTTP_IF_NONE_MATCH='""')
    assert r.status_code == 200
    assert not r.has_header("ETag")
    assert content(r) == BODY


@pytest.mark.parametrize(("header", "start", "end"), [
    ("bytes=0-9", 0, 9),
    ("bytes=-5", 95, 99),
    ("bytes=10-", 10, 99),
    ("bytes=90-1000", 90, 99),
    ("bytes=99-99", 99, 99),
    ("bytes=-1000", 0, 99),
    (" bytes=20-29 ", 20, 29),
])
def test_single_range_gives_206_with_exact_bytes(clients, version, stored, header, start, end):
    r = clients["viewer"].get(file_url(version), HTTP_RANGE=header)
    assert r.status_code == 206
    assert r["Content-Range"] == f"bytes {start}-{end}/100"
    assert r["Content-Length"] == str(end - start + 1)
    assert r["Content-Type"] == "application/octet-stream"
    assert r["X-Content-Type-Options"] == "nosniff"
    assert r["Content-Disposition"].startswith("attachment")
    assert r["Accept-Ranges"] == "bytes"
    assert content(r) == BODY[start:end + 1]


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=500-600", "bytes=-0"])
def test_unsatisfiable_range_is_416(clients, version, stored, header):
    r = clients["viewer"].get(file_url(version), HTTP_RANGE=header)
    assert r.status_code == 416
    assert r["Content-Range"] == "bytes */100"
    assert BODY not in content(r)


@pytest.mark.parametrize("header", ["bytes=0-9,20-29", "bytes=0-9, -5", "bytes=5-2", "items=0-9", "bytes=abc", "bytes=-"])
def test_multiple_or_invalid_ranges_serve_the_whole_file(clients, version, stored, header):
    r = clients["viewer"].get(file_url(version), HTTP_RANGE=header)
    assert r.status_code == 200
    assert not r.has_header("Content-Range")
    assert r["Content-Length"] == "100"
    assert content(r) == BODY


def test_if_range_honours_the_range_only_for_the_current_etag(clients, version, stored):
    sha = hashlib.sha256(BODY).hexdigest()
    Format.objects.filter(pk=stored.pk).update(sha256=sha)
    viewer = clients["viewer"]
    r = viewer.get(file_url(version), HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE=f'"{sha}"')
    assert r.status_code == 206
    assert r["ETag"] == f'"{sha}"'
    assert content(r) == BODY[:10]
    for stale in (f'"{"0" * 64}"', "Wed, 21 Oct 2015 07:28:00 GMT"):
        r = viewer.get(file_url(version), HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE=stale)
        assert r.status_code == 200
        assert content(r) == BODY


def test_empty_file_downloads_and_no_range_is_satisfiable(clients, version):
    r = upload(clients["editor"], version, b"")
    assert r.status_code == 200, r.json()
    assert r.json()["size"] == 0
    r = clients["viewer"].get(file_url(version), {"acknowledge": "uploaded"})
    assert r.status_code == 200
    assert r["Content-Length"] == "0"
    assert content(r) == b""
    for header in ("bytes=0-0", "bytes=-5", "bytes=0-"):
        r = clients["viewer"].get(file_url(version), {"acknowledge": "uploaded"}, HTTP_RANGE=header)
        assert r.status_code == 416, header
        assert r["Content-Range"] == "bytes */0"


def test_download_of_a_format_without_a_file_is_404(clients, users, version, storage_dir):
    services.format_create(actor=users["editor"], version=version, kind="onnx")
    r = clients["viewer"].get(file_url(version, "onnx"))
    assert r.status_code == 404
    assert r.json()["code"] == "not_found"
    assert clients["viewer"].get(file_url(version, "pkl")).status_code == 404  # no such format
    assert clients["viewer"].get(file_url(version, "nonsense")).status_code == 404


def test_download_of_a_missing_stored_object_is_404(clients, version, stored, storage_dir):
    os.remove(os.path.join(storage_dir, stored.storage_key))
    r = clients["viewer"].get(file_url(version))
    assert r.status_code == 404


@pytest.mark.parametrize(("persona", "status"), [("anonymous", 401), ("outsider", 404), ("readonly", 200)])
def test_download_visibility(clients, version, stored, persona, status):
    r = clients[persona].get(file_url(version))
    assert r.status_code == status
    body = content(r)
    assert (body == BODY) == (status == 200)


# --- flagged files need an acknowledgement ---------------------------------------------------

NOT_READY = ["uploaded", "hashing", "introspecting", "review", "quarantined", "corrupt", "failed"]


@pytest.mark.parametrize("status", NOT_READY)
def test_a_file_that_is_not_ready_downloads_only_with_an_acknowledgement_naming_its_status(
        clients, users, version, stored, status):
    Format.objects.filter(pk=stored.pk).update(status=status, status_message="something is wrong with it")
    refused = clients["viewer"].get(file_url(version))
    assert refused.status_code == 409
    body = refused.json()
    assert body["code"] == "not_ready" and body["field"] == "acknowledge"
    assert status in body["detail"] and "something is wrong with it" in body["detail"]
    assert f"?acknowledge={status}" in body["detail"]
    other = "corrupt" if status != "corrupt" else "failed"
    stale = clients["viewer"].get(file_url(version), {"acknowledge": other})
    assert stale.status_code == 409 and f"You acknowledged '{other}'" in stale.json()["detail"]
    assert not AuditEvent.objects.filter(action="format.download_not_ready").exists()

    r = clients["viewer"].get(file_url(version), {"acknowledge": status})
    assert r.status_code == 200
    assert content(r) == BODY
    assert r["X-Registry-Format-Status"] == status
    [event] = AuditEvent.objects.filter(action="format.download_not_ready")
    assert event.actor == users["viewer"] and event.object_id == str(stored.pk)
    assert event.changes == {"status": status}


def test_a_read_only_token_may_acknowledge_too(clients, version, stored):
    Format.objects.filter(pk=stored.pk).update(status=FormatStatus.QUARANTINED)
    assert clients["readonly"].get(file_url(version)).status_code == 409
    r = clients["readonly"].get(file_url(version), {"acknowledge": "quarantined"}, HTTP_RANGE="bytes=0-9")
    assert r.status_code == 206 and content(r) == BODY[:10]
    assert r["X-Registry-Format-Status"] == "quarantined"


def test_a_ready_file_downloads_without_a_trace_and_says_it_is_ready(clients, version, stored):
    Format.objects.filter(pk=stored.pk).update(status=FormatStatus.READY)
    before = AuditEvent.objects.count()
    r = clients["viewer"].get(file_url(version))
    assert r.status_code == 200 and content(r) == BODY
    assert r["X-Registry-Format-Status"] == "ready"
    assert AuditEvent.objects.count() == before


# --- through a real HTTP server -------------------------------------------------------------

class RssSampler(threading.Thread):
    """Samples this process's resident set size until stopped; keeps the peak."""

    def __init__(self, interval: float = 0.002):
        super().__init__(daemon=True)
        self._process = psutil.Process()
        self._interval = interval
        self._stopped = threading.Event()
        self.peak = self._process.memory_info().rss
        self.samples = 0

    def run(self):
        while not self._stopped.is_set():
            self.peak = max(self.peak, self._process.memory_info().rss)
            self.samples += 1
            self._stopped.wait(self._interval)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self._stopped.set()
        self.join()
        self.peak = max(self.peak, self._process.memory_info().rss)


def _live_setup(slug):
    context = services.context_create(actor=None, slug=slug, name=slug)
    user = UserFactory(username=f"{slug}-editor")
    services.membership_set(actor=None, context=context, role="editor", username=user.username)
    model = services.model_create(actor=user, context=context, name=f"{slug}-model")
    version = services.version_create(actor=user, model=model)
    return user, version, token_for(user)


def _connection(live_server) -> http.client.HTTPConnection:
    parts = urlsplit(live_server.url)
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)


def _put(live_server, token, path, body, length: int):
    conn = _connection(live_server)
    try:
        conn.request("PUT", path, body=body, headers={
            "Authorization": f"Bearer {token}", "Content-Type": "application/octet-stream",
            "Content-Length": str(length),
        })
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        conn.close()


def _rss() -> int:
    gc.collect()
    return psutil.Process().memory_info().rss


@pytest.mark.slow
def test_large_upload_and_download_stream_in_constant_memory(live_server, storage_dir):
    size, chunk = 256 * MiB, MiB
    user, version, token = _live_setup("big")
    path = file_url(version, "other")  # any bytes end `ready` as "other", so they download plainly

    # Warm up: imports, server threads, database connections, allocator pools.
    status, _ = _put(live_server, token, path + "?filename=warm.bin", [b"w" * chunk] * 4, 4 * chunk)
    assert status == 200

    digest = hashlib.sha256()
    seed = os.urandom(chunk)

    def body():
        for i in range(size // chunk):
            block = i.to_bytes(8, "big") + seed[8:]  # every chunk distinct, only one alive at a time
            digest.update(block)
            yield block

    baseline = _rss()
    started = time.monotonic()
    with RssSampler() as sampler:
        status, data = _put(live_server, token, path + "?filename=big.bin", body(), size)
    upload_seconds = time.monotonic() - started
    upload_growth = sampler.peak - baseline
    assert status == 200, data
    assert data["size"] == size
    assert data["original_filename"] == "big.bin"
    fmt = Format.objects.get(version=version)
    assert fmt.size == size
    assert stored_files(storage_dir) == [fmt.storage_key]  # the warm-up file was replaced
    on_disk = hashlib.sha256()
    with open(os.path.join(storage_dir, fmt.storage_key), "rb") as handle:
        for block in iter(lambda: handle.read(4 * MiB), b""):
            on_disk.update(block)
    assert on_disk.hexdigest() == digest.hexdigest()

    baseline = _rss()
    started = time.monotonic()
    received, downloaded = 0, hashlib.sha256()
    with RssSampler() as download_sampler:
        conn = _connection(live_server)
        try:
            conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
            response = conn.getresponse()
            assert response.status == 200
            assert response.getheader("Content-Length") == str(size)
            while block := response.read(chunk):
                received += len(block)
                downloaded.update(block)
        finally:
            conn.close()
    download_seconds = time.monotonic() - started
    download_growth = download_sampler.peak - baseline
    assert received == size
    assert downloaded.hexdigest() == digest.hexdigest()

    print(f"\nupload {size // MiB} MiB in {upload_seconds:.1f}s, peak RSS growth {upload_growth / MiB:.1f} MiB "
          f"({sampler.samples} samples); download in {download_seconds:.1f}s, peak RSS growth "
          f"{download_growth / MiB:.1f} MiB ({download_sampler.samples} samples)")
    assert sampler.samples > 10 and download_sampler.samples > 10
    assert upload_growth < 32 * MiB
    assert download_growth < 32 * MiB


def test_http_upload_cut_off_by_the_client_leaves_nothing(live_server, storage_dir):
    user, version, token = _live_setup("cut")
    path = file_url(version)
    status, data = _put(live_server, token, path, [b"previous"], 8)
    assert status == 200, data
    before = row()

    parts = urlsplit(live_server.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(
            f"PUT {path}?filename=new.bin HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Length: {4 * MiB}\r\nConnection: close\r\n\r\n".encode()
            + b"n" * (2 * MiB)
        )
        sock.shutdown(socket.SHUT_WR)  # the client stops halfway and closes its side
        reply = b""
        while part := sock.recv(65536):
            reply += part
    status_line, _, rest = reply.partition(b"\r\n")
    assert status_line.split()[1] == b"400", reply[:500]
    assert json.loads(rest.split(b"\r\n\r\n", 1)[1])["field"] == "file"
    assert row() == before
    assert stored_files(storage_dir) == [before["storage_key"]]
    assert read_stored(storage_dir, before["storage_key"]) == b"previous"
