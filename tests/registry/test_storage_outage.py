"""When the file store fails, requests that need stored bytes answer 503 (507 for a full
disk) in the API's error shape with `Retry-After`, never a 500, and change nothing.

The failures are real ones at the network or OS boundary, not mocks of the registry's code:
S3 requests go through `S3Front`, a TCP front for the test S3 server (moto) that can refuse
connections, drop them, never answer, or answer S3's SlowDown and InternalError; the local
folder is replaced by a file (as when a volume is not mounted where it should be), or its
disk fills up (the kernel's ENOSPC, raised by the file object the storage writes through).
"""

from __future__ import annotations

import errno
import io
import logging
import os
import socket
import threading
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from botocore.config import Config
from django.core.files.storage import storages

from registry import services, storage
from registry.errors import StorageUnavailable
from registry.models import AuditEvent, Format, Version
from registry.services import maintenance

from tests.conftest import _free_port, s3_client, s3_storage_settings, stored_files
from tests.helpers import PICKLE, file_url, upload

pytestmark = pytest.mark.django_db

MiB = 1024 * 1024
ROW_FIELDS = ["id", "storage_key", "size", "original_filename", "content_type", "md5", "sha256", "status",
              "status_message", "report", "uploaded_by_id", "uploaded_at"]
# Fail fast in tests: one attempt, one second (production defaults are in registry/s3.py).
FAST_FAILING = Config(s3={"addressing_style": "path"}, connect_timeout=1, read_timeout=1,
                      retries={"mode": "standard", "max_attempts": 1})
UNAVAILABLE_DETAIL = ("The file store is unreachable, so the file was not stored and the format is unchanged. "
                      "Try again in 30 seconds.")
UNREADABLE_DETAIL = "The file store is unreachable, so the file cannot be read right now. Try again in 30 seconds."


# --- failing stores ------------------------------------------------------------------------

S3_ERRORS = {
    "slowdown": (503, "Slow Down", "SlowDown", "Please reduce your request rate."),
    "internal": (500, "Internal Server Error", "InternalError", "We encountered an internal error."),
}


class S3Front:
    """A TCP front for the test S3 server that fails the way a network and S3 do.

    Modes: "up" forwards to S3; "down" closes the port (connection refused); "hangup"
    accepts, reads the request and drops the connection; "silent" accepts and never answers
    (a read timeout); "slowdown" and "internal" answer S3's 503 SlowDown and 500
    InternalError. Changing the mode drops every open connection, as a network failure does.
    """

    def __init__(self, upstream: str):
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname, parts.port)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.mode = "up"
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self._listen()

    def set(self, mode: str) -> None:
        with self._lock:
            self.mode = mode
            sockets, self._sockets = self._sockets, []
            if mode == "down" and self._listener is not None:
                _drop(self._listener)
                self._listener = None
        for sock in sockets:
            _drop(sock)
        if mode != "down" and self._listener is None:
            self._listen()

    def close(self) -> None:
        self.set("down")

    def _listen(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _track(self, *socks: socket.socket) -> None:
        with self._lock:
            self._sockets.extend(socks)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            self._track(conn)
            threading.Thread(target=self._serve, args=(conn, self.mode), daemon=True).start()

    def _serve(self, conn: socket.socket, mode: str) -> None:
        if mode == "up":
            upstream = socket.create_connection(self.upstream)
            self._track(upstream)
            for source, sink in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=_pump, args=(source, sink), daemon=True).start()
            return
        if mode == "silent":
            return  # the connection stays open and unanswered until the mode changes
        try:
            head = _read_head(conn)
            if mode in S3_ERRORS and head:
                status, reason, code, message = S3_ERRORS[mode]
                body = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
                        f"<Message>{message}</Message><RequestId>front</RequestId></Error>").encode()
                conn.sendall(f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\n"
                             f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                             + (b"" if head.startswith(b"HEAD ") else body))
        except OSError:
            pass
        _drop(conn)  # "hangup": after reading the request, without a word


def _read_head(conn: socket.socket) -> bytes:
    conn.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    _drop(source)
    _drop(sink)


def _drop(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


class Store:
    """The store under test, with a switch to make it fail and a way to list what it holds
    that does not go through the registry (the real bucket, the real folder)."""

    def __init__(self, failure: str, *, folder: str, front: S3Front | None = None, endpoint: str = "",
                 bucket: str = ""):
        self.failure, self.folder, self.front, self.endpoint, self.bucket = failure, folder, front, endpoint, bucket

    def fail(self) -> None:
        if self.front is not None:
            self.front.set(self.failure)
        else:  # the folder is not where it should be; a file is (a volume that did not mount)
            os.rename(self.folder, self.folder + ".away")
            with open(self.folder, "w") as handle:
                handle.write("not the storage folder")

    def recover(self) -> None:
        if self.front is not None:
            self.front.set("up")
        else:
            os.remove(self.folder)
            os.rename(self.folder + ".away", self.folder)

    def keys(self) -> list[str]:
        if self.front is None:
            return stored_files(self.folder if os.path.isdir(self.folder) else self.folder + ".away")
        listing = s3_client(self.endpoint).list_objects_v2(Bucket=self.bucket)
        return sorted(item["Key"] for item in listing.get("Contents", []))

    def unfinished_uploads(self) -> list[str]:
        if self.front is None:
            return []
        uploads = s3_client(self.endpoint).list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])
        return [item["Key"] for item in uploads]


S3_FAILURES = ["down", "hangup", "silent", "slowdown", "internal"]
# The S3 cases start moto's S3 server: `subprocess` tests (make test-fast leaves them out).
FAILURES = [pytest.param(f"s3-{name}", marks=pytest.mark.subprocess) for name in S3_FAILURES] + ["local-folder-gone"]


@pytest.fixture
def s3_front(s3_endpoint):
    front = S3Front(s3_endpoint)
    yield front
    front.close()


def s3_store(settings, front: S3Front, endpoint: str, bucket: str, failure: str, folder: str) -> Store:
    settings.STORAGES = {**settings.STORAGES,
                         "default": s3_storage_settings(front.url, bucket, client_config=FAST_FAILING)}
    return Store(failure, folder=folder, front=front, endpoint=endpoint, bucket=bucket)


@pytest.fixture(params=FAILURES)
def store(request, settings, storage_dir):
    backend, failure = request.param.split("-", 1)
    if backend == "local":
        yield Store(failure, folder=storage_dir)
    else:
        front = request.getfixturevalue("s3_front")
        yield s3_store(settings, front, request.getfixturevalue("s3_endpoint"),
                       request.getfixturevalue("s3_bucket"), failure, storage_dir)
    if os.path.isfile(storage_dir):  # a test that failed half-way: put the folder back
        os.remove(storage_dir)
        os.rename(storage_dir + ".away", storage_dir)


@pytest.fixture
def full_disk(storage_dir, monkeypatch):
    """The storage folder's disk fills up: a write into it stores 4 KiB, then the kernel's
    ENOSPC. Only files in the storage folder are affected."""
    folder = os.path.realpath(storage_dir)
    real_fdopen = os.fdopen

    class FillingFile:
        def __init__(self, file):
            self._file, self._room = file, 4096

        def write(self, data):
            if len(data) > self._room:
                self._file.write(data[: self._room])
                self._file.flush()
                self._room = 0
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            self._room -= len(data)
            return self._file.write(data)

        def __getattr__(self, name):
            return getattr(self._file, name)

    def fdopen(fd, *args, **kwargs):
        file = real_fdopen(fd, *args, **kwargs)
        if os.readlink(f"/proc/self/fd/{fd}").startswith(folder + os.sep):
            return FillingFile(file)
        return file

    monkeypatch.setattr(os, "fdopen", fdopen)
    return storage_dir


# --- helpers ---------------------------------------------------------------------------------

def rows(version) -> list[dict]:
    return list(Format.objects.filter(version=version).order_by("kind").values(*ROW_FIELDS))


def store_failures(caplog) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.getMessage().startswith("file store failed")]


def assert_one_line_for_operators(caplog, exception_class: str | tuple[str, ...]):
    """One ERROR line naming the exception's class, and no traceback anywhere in the log."""
    lines = store_failures(caplog)
    assert len(lines) == 1, [record.getMessage() for record in caplog.records]
    assert lines[0].levelno == logging.ERROR
    classes = (exception_class,) if isinstance(exception_class, str) else exception_class
    assert any(f"raised {name}:" in lines[0].getMessage() for name in classes), lines[0].getMessage()
    assert not [record for record in caplog.records if record.exc_info], "a traceback was logged"


EXPECTED_EXCEPTIONS = {
    "down": "EndpointConnectionError",
    "hangup": "ConnectionClosedError",
    "silent": "ReadTimeoutError",
    "slowdown": "ClientError",
    "internal": "ClientError",
    "folder-gone": "NotADirectoryError",
}


# --- uploads ---------------------------------------------------------------------------------

def test_upload_while_the_store_fails_is_503_and_changes_nothing(store, editor, version, caplog):
    assert upload(editor, version.model_id, version.number, body=PICKLE).status_code == 200
    before_rows, before_keys = rows(version), store.keys()
    before_events = AuditEvent.objects.count()
    assert len(before_keys) == 1

    store.fail()
    caplog.clear()
    replaced = upload(editor, version.model_id, version.number, body=b"\x80\x04K\x02." + b" " * 10_000)
    added = upload(editor, version.model_id, version.number, kind="other", body=b"new bytes" * 1000)
    store.recover()

    for response in (replaced, added):
        assert response.status_code == 503, response.content
        assert response.json() == {"detail": UNAVAILABLE_DETAIL, "code": "storage_unavailable"}
        assert response["Retry-After"] == "30"
    # The pkl row still points at its old, intact object; no 'other' row; nothing new stored.
    assert rows(version) == before_rows
    assert store.keys() == before_keys and store.unfinished_uploads() == []
    assert AuditEvent.objects.count() == before_events
    lines = store_failures(caplog)
    assert len(lines) == 2  # one per request
    assert all(f"raised {EXPECTED_EXCEPTIONS[store.failure]}:" in line.getMessage() for line in lines)
    assert not [record for record in caplog.records if record.exc_info], "a traceback was logged"
    assert b"".join(editor.get(file_url(version)).streaming_content) == PICKLE  # the old object, intact
    # And once the store is back, the same upload goes through.
    assert upload(editor, version.model_id, version.number, kind="other", body=b"new bytes").status_code == 200


def test_a_full_disk_is_507_and_leaves_no_partial_file(full_disk, editor, version, caplog):
    assert upload(editor, version.model_id, version.number, body=PICKLE).status_code == 200
    before_rows, before_keys = rows(version), stored_files(full_disk)
    caplog.clear()

    response = upload(editor, version.model_id, version.number, kind="other", body=b"x" * (64 * 1024))

    assert response.status_code == 507, response.content
    assert response.json() == {
        "detail": "The file store is full, so the file was not stored and the format is unchanged. "
                  "Ask an operator to free space, then upload again.",
        "code": "storage_full",
    }
    assert "Retry-After" not in response  # it will not clear up by itself; clients should not re-send on a timer
    assert rows(version) == before_rows
    assert stored_files(full_disk) == before_keys  # the 4 KiB written before the disk filled are gone
    assert_one_line_for_operators(caplog, "OSError")
    assert "No space left on device" in store_failures(caplog)[0].getMessage()


def test_s3_failing_mid_multipart_upload_leaves_nothing_once_swept(s3_front, s3_endpoint, s3_bucket, settings,
                                                                     storage_dir, users, version, caplog):
    """The store goes away after the first 8 MiB part: the upload cannot even abort its
    multipart upload. The format is untouched, and the sweep aborts the unfinished upload."""
    store = s3_store(settings, s3_front, s3_endpoint, s3_bucket, "down", storage_dir)
    size = 20 * MiB

    class Body(io.RawIOBase):
        sent = 0

        def read(self, n=-1):
            if self.sent >= 9 * MiB and s3_front.mode == "up":
                s3_front.set("down")  # the network to the bucket fails while parts are going up
            n = min(MiB if n is None or n < 0 else n, size - self.sent)
            self.sent += n
            return b"p" * n

    with pytest.raises(StorageUnavailable) as raised:
        services.format_upload(actor=users["editor"], version=version, kind="other", stream=Body(),
                               content_length=size)
    assert raised.value.status_code == 503
    assert not Format.objects.filter(version=version).exists()
    assert_one_line_for_operators(caplog, ("EndpointConnectionError", "ConnectionClosedError"))
    assert any("could not abort multipart upload" in record.getMessage() for record in caplog.records)

    store.recover()
    assert store.keys() == [] and len(store.unfinished_uploads()) == 1  # invisible, but S3 keeps its parts
    # (moto reports every upload as started in 2010, so the age guard cannot be shown here.)
    assert maintenance.storage_orphans_delete(older_than=timedelta(seconds=-5), dry_run=True) != []
    assert len(store.unfinished_uploads()) == 1
    assert len(maintenance.storage_orphans_delete(older_than=timedelta(seconds=-5))) == 1
    assert store.unfinished_uploads() == [] and store.keys() == []


# --- downloads -------------------------------------------------------------------------------

@pytest.mark.parametrize("range_header", [None, "bytes=2-3"])
def test_download_while_the_store_fails_is_503(store, clients, version, range_header, caplog):
    assert upload(clients["editor"], version.model_id, version.number, body=PICKLE).status_code == 200
    before_rows, before_keys = rows(version), store.keys()
    headers = {"HTTP_RANGE": range_header} if range_header else {}

    store.fail()
    caplog.clear()
    response = clients["viewer"].get(file_url(version), **headers)
    store.recover()

    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": UNREADABLE_DETAIL, "code": "storage_unavailable"}
    assert response["Retry-After"] == "30"
    assert "Content-Disposition" not in response
    assert_one_line_for_operators(caplog, EXPECTED_EXCEPTIONS[store.failure])
    assert rows(version) == before_rows and store.keys() == before_keys
    response = clients["viewer"].get(file_url(version))
    assert response.status_code == 200 and b"".join(response.streaming_content) == PICKLE


def test_a_missing_object_is_still_404_not_503(clients, version, storage_dir):
    assert upload(clients["editor"], version.model_id, version.number, body=PICKLE).status_code == 200
    os.remove(os.path.join(storage_dir, Format.objects.get(version=version).storage_key))
    response = clients["viewer"].get(file_url(version))
    assert response.status_code == 404 and response.json()["code"] == "not_found"


def test_manifests_do_not_need_the_store(store, clients, version):
    """Manifests are built from the rows: they answer while the store is down."""
    assert upload(clients["editor"], version.model_id, version.number, body=PICKLE).status_code == 200
    url = f"/api/v1/models/{version.model_id}/versions/{version.number}/manifest/"
    expected = clients["viewer"].get(url, {"frozen": "true"}).json()
    store.fail()
    try:
        response = clients["viewer"].get(url, {"frozen": "true"})
    finally:
        store.recover()
    assert response.status_code == 200
    assert {key: value for key, value in response.json().items() if key not in ("timestamp", "lock_checksum")} == {
        key: value for key, value in expected.items() if key not in ("timestamp", "lock_checksum")}


# --- deletes: committed, the objects left for the orphan sweep ---------------------------------

@pytest.mark.parametrize("what", ["format", "version", "model"])
def test_deletes_while_the_store_fails_succeed_and_leave_the_objects_to_the_sweep(
        store, clients, version, what, django_capture_on_commit_callbacks, caplog):
    editor = clients["editor"]
    assert upload(editor, version.model_id, version.number, body=PICKLE).status_code == 200
    assert upload(editor, version.model_id, version.number, kind="other", body=b"x" * 100).status_code == 200
    keys = store.keys()
    assert len(keys) == 2
    base = f"/api/v1/models/{version.model_id}"
    url, client = {
        "format": (f"{base}/versions/{version.number}/formats/pkl/", editor),
        "version": (f"{base}/versions/{version.number}/", clients["admin"]),
        "model": (f"{base}/", clients["admin"]),
    }[what]

    store.fail()
    caplog.clear()
    # The objects' deletion is queued for after commit and runs when this block exits: had it
    # raised, as it would have raised into the request in production, the test would fail.
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = client.delete(url)
    assert callbacks, "nothing was scheduled after commit"
    store.recover()

    assert response.status_code == 204
    if what == "format":
        assert list(Format.objects.filter(version=version).values_list("kind", flat=True)) == ["other"]
    else:
        assert not Version.objects.filter(pk=version.pk).exists()
    assert store.keys() == keys  # nothing could be removed
    lines = store_failures(caplog)
    assert len(lines) == 1  # the first failure stops the attempts: one line, however many files
    left = 1 if what == "format" else 2
    assert f"{left} stored file(s) left for storage_sweep" in lines[0].getMessage()
    assert f"raised {EXPECTED_EXCEPTIONS[store.failure]}:" in lines[0].getMessage()
    assert not [record for record in caplog.records if record.exc_info]

    # Once the store is back, the orphan sweep removes what the deletion could not.
    swept = maintenance.storage_orphans_delete(older_than=timedelta(seconds=-5))
    assert len(swept) == left
    assert store.keys() == ([] if left == 2 else [Format.objects.get(version=version).storage_key])


# --- pieces ------------------------------------------------------------------------------------

def test_s3_clients_fail_fast_by_default(s3_endpoint, s3_bucket, settings):
    """botocore's defaults (60 s to connect, 5 attempts) would outlive the web timeout."""
    settings.STORAGES = {**settings.STORAGES, "default": s3_storage_settings(s3_endpoint, s3_bucket)}
    config = storages["default"].client_config
    assert (config.connect_timeout, config.read_timeout) == (5, 20)
    assert config.retries == {"mode": "standard", "max_attempts": 3}
    assert config.s3 == {"addressing_style": "path"} and config.signature_version == "s3v4"
    settings.STORAGES = {**settings.STORAGES,
                         "default": s3_storage_settings(s3_endpoint, s3_bucket, client_config=FAST_FAILING)}
    assert storages["default"].client_config.connect_timeout == 1  # an operator's explicit choice wins


def test_a_client_that_goes_away_is_not_a_failing_store(storage_dir, users, version):
    class Gone(io.RawIOBase):
        def read(self, n=-1):
            raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        storage.save_stream(Gone(), max_bytes=100, expected=10)
    assert stored_files(storage_dir) == []


def test_an_s3_error_that_escaped_the_storage_helpers_is_still_503(caplog):
    from botocore.exceptions import EndpointConnectionError

    from registry.api.exceptions import exception_handler

    response = exception_handler(EndpointConnectionError(endpoint_url="http://10.0.0.5:9000"), {})
    assert response.status_code == 503 and response["Retry-After"] == "30"
    assert response.data == {"detail": "The file store is unreachable right now. Try again in 30 seconds.",
                             "code": "storage_unavailable"}
    assert "10.0.0.5" not in str(response.data)
    assert_one_line_for_operators(caplog, "EndpointConnectionError")
