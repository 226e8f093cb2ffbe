"""Streaming put/get/delete of model files over the configured django-storages backend.

Keys are generated here and only here: client input (a filename, a kind) never becomes
part of a storage path.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import IO

import botocore.exceptions
from django.conf import settings
from django.core.files.base import File
from django.core.files.storage import default_storage
from django.utils import timezone

from registry.errors import FileTooLarge, StorageFull, StorageUnavailable

logger = logging.getLogger(__name__)

KEY_PREFIX = "formats"


def new_storage_key() -> str:
    name = uuid.uuid4().hex
    return f"{KEY_PREFIX}/{name[:2]}/{name}"


class LimitedReader(File):
    """A read-only file over a stream that counts bytes and stops past `max_bytes`.

    `expected` is the declared length (Content-Length); reading stops there, so a
    keep-alive connection is never read past its body.
    """

    def __init__(self, stream: IO[bytes], *, max_bytes: int, expected: int | None = None):
        super().__init__(None, name="upload")
        self._stream = stream
        self._max = max_bytes
        self._remaining = expected
        self.bytes_read = 0
        # What reading the client's stream raised: a client that went away is not a failing store.
        self.source_error: BaseException | None = None

    def read(self, size: int = -1) -> bytes:
        if self._remaining is not None:
            if self._remaining <= 0:
                return b""
            size = self._remaining if size is None or size < 0 else min(size, self._remaining)
        try:
            chunk = self._stream.read(size)
        except BaseException as exc:
            self.source_error = exc
            raise
        self.bytes_read += len(chunk)
        if self._remaining is not None:
            self._remaining -= len(chunk)
        if self.bytes_read > self._max:
            raise FileTooLarge(f"The file is larger than the limit of {self._max} bytes.")
        return chunk

    def chunks(self, chunk_size: int | None = None) -> Iterator[bytes]:
        chunk_size = chunk_size or settings.REGISTRY_STREAM_CHUNK_BYTES
        while True:
            data = self.read(chunk_size)
            if not data:
                return
            yield data

    @property
    def size(self):  # unknown until read; storages must not rely on it
        return None

    def seek(self, *args):  # pragma: no cover - storages probe seekability
        raise OSError("not seekable")

    def tell(self) -> int:
        return self.bytes_read

    def close(self) -> None:
        pass


# --- a failing store ---------------------------------------------------------------------
# S3 answers "slow down" or "unavailable" with these codes (HTTP 503 or 500 on AWS; other
# S3-compatible servers are not always as careful with the status).
S3_BUSY_CODES = {"SlowDown", "ServiceUnavailable", "InternalError", "Throttling", "RequestLimitExceeded"}
DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
STORE_MESSAGES = {
    "upload": "The file store is unreachable, so the file was not stored and the format is unchanged. "
              "Try again in {seconds} seconds.",
    "download": "The file store is unreachable, so the file cannot be read right now. "
                "Try again in {seconds} seconds.",
    "request": "The file store is unreachable right now. Try again in {seconds} seconds.",
}
FULL_MESSAGE = ("The file store is full, so the file was not stored and the format is unchanged. "
                "Ask an operator to free space, then upload again.")


def is_store_failure(exc: BaseException) -> bool:
    """Whether `exc` says the store itself failed, as opposed to a missing object, a rule the
    user broke or a bug: S3 unreachable, a dropped or timed-out connection, S3 throttling or a
    5xx; a local disk that is full, read-only, or not where it should be."""
    if isinstance(exc, (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError)):
        return True
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return status >= 500 or error.get("Code") in S3_BUSY_CODES
    return isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError)


def store_failure(exc: BaseException, *, action: str) -> StorageUnavailable:
    """The error a user sees for a failed store `action` ("upload", "download", "request")."""
    if action == "upload" and isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
        return StorageFull(FULL_MESSAGE)
    return StorageUnavailable(STORE_MESSAGES[action].format(seconds=StorageUnavailable.retry_after))


def log_store_failure(action: str, key: str, exc: BaseException, *, note: str = "") -> None:
    """One line for operators: what failed, on which key, and the exception's class."""
    logger.error("file store failed: %s of %s raised %s: %s%s", action, key, type(exc).__name__, exc, note)


def save_stream(stream: IO[bytes], *, max_bytes: int, expected: int | None = None) -> tuple[str, int]:
    """Stream `stream` into a new key; return (key, size). Nothing is left behind on error.

    A failing store raises StorageUnavailable (StorageFull for a full disk); what a partial
    write left is removed, or, if the store cannot even do that, left to `storage_sweep`.
    """
    key = new_storage_key()
    reader = LimitedReader(stream, max_bytes=max_bytes, expected=expected)
    try:
        saved = default_storage.save(key, reader)
    except BaseException as exc:
        if reader.source_error is not None or not is_store_failure(exc):
            delete_quietly([key])
            raise
        cleanup_error = _delete(key)
        log_store_failure("upload", key, exc,
                          note="; anything it wrote is left for storage_sweep" if cleanup_error else "")
        raise store_failure(exc, action="upload") from exc
    if saved != key:  # a backend must not rename; if it did, keep what it wrote addressable
        logger.warning("storage renamed %s to %s", key, saved)
    return saved, reader.bytes_read


def open_for_read(key: str) -> IO[bytes]:
    return default_storage.open(key, "rb")


def open_for_download(key: str) -> IO[bytes]:
    """open_for_read for a web request: a failing store raises StorageUnavailable (503);
    a missing object stays FileNotFoundError. Workers use open_for_read, whose backend
    errors their retries know."""
    try:
        return open_for_read(key)
    except Exception as exc:
        if not is_store_failure(exc):
            raise
        log_store_failure("download", key, exc)
        raise store_failure(exc, action="download") from exc


def presigned_download_url(key: str, *, filename_header: str) -> str | None:
    """A short-lived direct URL for `key` when the backend and the operator allow it, else None."""
    if not settings.REGISTRY_S3_PRESIGNED_DOWNLOADS:
        return None
    sign = getattr(default_storage, "presigned_download_url", None)
    if sign is None:
        return None
    return sign(key, filename_header=filename_header, expires_in=settings.REGISTRY_S3_PRESIGNED_EXPIRY_SECONDS)


def check_reachable() -> None:
    """Raise unless the storage answers: the bucket for S3, a writable folder for local files."""
    check = getattr(default_storage, "check_reachable", None)
    if check is not None:
        check()
        return
    location = getattr(default_storage, "location", None)
    if location is not None:
        os.makedirs(location, exist_ok=True)
        if not os.access(location, os.W_OK):
            raise PermissionError(f"the storage folder {location} is not writable")


def exists(key: str) -> bool:
    return bool(key) and default_storage.exists(key)


def _delete(key: str) -> BaseException | None:
    """Delete one object; None when it is gone, else what the store raised."""
    try:
        default_storage.delete(key)
    except FileNotFoundError:
        return None
    except Exception as exc:
        return exc
    return None


def delete_quietly(keys: Iterable[str]) -> None:
    """Remove stored objects; a missing object is already gone, other errors are logged.

    Called after a deletion committed, so it never raises: the rows are gone and an object
    left in the store is an orphan that `storage_sweep` removes later. When the store itself
    is failing, the remaining keys are not tried one by one (each could wait out timeouts
    and retries inside the request); one line says how many were left.
    """
    keys = [key for key in keys if key]
    for position, key in enumerate(keys):
        error = _delete(key)
        if error is None:
            continue
        if is_store_failure(error):
            log_store_failure("delete", key, error,
                              note=f"; {len(keys) - position} stored file(s) left for storage_sweep")
            return
        logger.error("could not delete stored file %s", key, exc_info=error)


def iter_keys() -> Iterator[str]:
    """Every key under the registry's prefix in the storage."""
    pending = [KEY_PREFIX]
    while pending:
        folder = pending.pop()
        try:
            dirs, files = default_storage.listdir(folder)
        except FileNotFoundError:
            continue
        pending.extend(f"{folder}/{d}" for d in dirs)
        yield from (f"{folder}/{f}" for f in files)


# --- direct uploads: the client sends the parts straight to the bucket (S3 only) ----------

def direct_uploads_available() -> bool:
    return hasattr(default_storage, "direct_upload_start")


@contextmanager
def _store_call(action: str, key: str):
    """A failing store raises StorageUnavailable (503), logged in one line."""
    try:
        yield
    except Exception as exc:
        if not is_store_failure(exc):
            raise
        log_store_failure(action, key, exc)
        raise store_failure(exc, action="request") from exc


def direct_upload_start(*, content_type: str) -> tuple[str, str]:
    """A new key and the id of a multipart upload to it: (key, upload id)."""
    key = new_storage_key()
    with _store_call("direct upload start", key):
        return key, default_storage.direct_upload_start(key, content_type=content_type)


def direct_upload_part_urls(key: str, upload_id: str, numbers: Iterable[int], *, expires_in: int) -> dict[int, str]:
    with _store_call("direct upload signing", key):
        return {number: default_storage.direct_upload_part_url(key, upload_id, number, expires_in=expires_in)
                for number in numbers}


def direct_upload_parts(key: str, upload_id: str) -> list[dict]:
    with _store_call("direct upload listing", key):
        return default_storage.direct_upload_parts(key, upload_id)


def direct_upload_complete(key: str, upload_id: str, parts: list[dict]) -> None:
    with _store_call("direct upload completion", key):
        default_storage.direct_upload_complete(key, upload_id, parts)


def direct_upload_abort(key: str, upload_id: str) -> None:
    """Abort quietly: an upload the store no longer knows (or cannot abort now) is left to the
    sweep of unfinished uploads."""
    try:
        default_storage.abort_upload(key, upload_id)
    except Exception as exc:  # noqa: BLE001 - logged; storage_sweep aborts it later
        logger.warning("could not abort direct upload %s of %s (%s: %s)", upload_id, key, type(exc).__name__, exc)


def unfinished_uploads_abort(cutoff, *, dry_run: bool = False, keep: Iterable[str] = ()) -> list[str]:
    """Abort S3 multipart uploads started before `cutoff` and never finished; return their keys.

    S3 keeps (and bills) the parts of an unfinished upload, invisible in any listing of
    objects, until it is aborted. Local storage has nothing of the kind.
    """
    find = getattr(default_storage, "unfinished_uploads", None)
    if find is None:
        return []
    aborted, keep = [], {default_storage.key_for(name) for name in keep}
    for key, upload_id, started in find(f"{KEY_PREFIX}/"):
        if started >= cutoff or key in keep:  # `keep`: the uploads of open direct-upload sessions
            continue
        if not dry_run:
            default_storage.abort_upload(key, upload_id)
        aborted.append(key)
    return aborted


def modified_before(key: str, cutoff) -> bool:
    try:
        return default_storage.get_modified_time(key) < cutoff
    except (FileNotFoundError, NotImplementedError):
        return False


def orphan_cutoff(age: timedelta):
    return timezone.now() - age


HASH_CHUNK_BYTES = 8 * 1024 * 1024


def hash_stream(handle: IO[bytes], *, chunk_size: int = HASH_CHUNK_BYTES) -> tuple[str, str, int]:
    """MD5 and SHA-256 of a stream in one pass, in constant memory: (md5, sha256, size).

    The two digests run in parallel threads (hashlib releases the GIL on large buffers)
    while the next chunk is read, so throughput approaches the slower hash alone.
    """
    md5, sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    size = 0
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="hash") as pool:
        pending = ()
        while True:
            data = handle.read(chunk_size)
            for future in pending:
                future.result()
            if not data:
                break
            size += len(data)
            pending = (pool.submit(md5.update, data), pool.submit(sha256.update, data))
    return md5.hexdigest(), sha256.hexdigest(), size


def hash_object(key: str) -> tuple[str, str, int]:
    """Hash the stored bytes of `key` (what is in storage, not what the client sent)."""
    with open_for_read(key) as handle:
        return hash_stream(handle)


@contextmanager
def local_copy(key: str) -> Iterator[IO[bytes]]:
    """A seekable local file with the stored bytes: the file itself when storage is local,
    else a temporary copy streamed from the backend (removed afterwards)."""
    try:
        path = default_storage.path(key)
    except NotImplementedError:
        path = None
    if path is not None:
        with open(path, "rb") as handle:
            yield handle
        return
    with tempfile.NamedTemporaryFile(prefix="registry-", suffix=".bin") as tmp:
        with open_for_read(key) as source:
            shutil.copyfileobj(source, tmp, length=settings.REGISTRY_STREAM_CHUNK_BYTES)
        tmp.flush()
        tmp.seek(0)
        yield tmp
