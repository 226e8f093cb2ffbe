"""S3 (or any S3-compatible server, such as MinIO) storage for model files, in constant memory.

django-storages' S3Storage reads a whole object into a spooled temporary file on the first
`read()` and hands uploads to boto3's transfer manager, which wants a seekable file. Model
files are gigabytes and arrive as a request body, so this backend:

- uploads by S3 multipart, one part (`part_size`, at least 8 MiB) in memory at a time, read
  straight from the request stream; a failed or cut-off upload aborts the multipart upload,
  so S3 keeps nothing of it;
- reads with ranged GetObject requests streamed from the socket, so a download, a `Range`
  request and the workers' hashing never hold more than one chunk;
- can sign a short-lived GetObject URL, optionally against the address clients see
  (`public_endpoint_url`) rather than the one the registry uses inside its network.
"""

from __future__ import annotations

import io
import logging
import os

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from django.core.exceptions import ImproperlyConfigured
from storages.backends.s3 import S3Storage
from storages.utils import clean_name

logger = logging.getLogger(__name__)

MIN_PART_BYTES = 8 * 1024 * 1024  # S3 allows 5 MiB; 8 MiB keeps 20 GiB under its 10,000 parts
MAX_PARTS = 10_000
# An unreachable store must fail a web request within seconds, so it answers 503: botocore's
# defaults (60 s to connect, 60 s per read, 5 attempts) outlast the gunicorn timeout, and
# the user would get a 502 or a cut connection. S3 answers in well under a second; a long
# CompleteMultipartUpload keeps its connection alive with whitespace. An explicit
# `client_config` in the storage OPTIONS overrides these.
CLIENT_DEFAULTS = Config(connect_timeout=5, read_timeout=20, retries={"mode": "standard", "max_attempts": 3})


def _not_found(error: ClientError) -> bool:
    code = str(error.response.get("Error", {}).get("Code", ""))
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return status == 404 or code in {"404", "NoSuchKey", "NotFound"}


class S3ObjectReader(io.RawIOBase):
    """A seekable, read-only stream over one S3 object, fetched with ranged GetObject calls.

    Read from the start (a download, the workers' hashing and copies), it is one GetObject
    streamed to the end. After a seek (a `Range` request), reads open windows from the new
    position: small at first, so a short range costs a short request and not a transfer of
    the rest of the file, and doubling while reads go on. Nothing is buffered beyond what the
    caller asks for.
    """

    FIRST_WINDOW = 1024 * 1024
    LARGEST_WINDOW = 64 * 1024 * 1024

    def __init__(self, client, bucket: str, key: str, size: int):
        super().__init__()
        self._client = client
        self._bucket = bucket
        self._key = key
        self.name = key
        self.size = size
        self._position = 0
        self._body = None
        self._window_end = 0  # exclusive end of the range the open body covers
        self._window = size  # until a seek: the whole object in one request

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_SET:
            position = offset
        elif whence == os.SEEK_CUR:
            position = self._position + offset
        elif whence == os.SEEK_END:
            position = self.size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if position < 0:
            raise ValueError("negative seek position")
        if position != self._position:
            self._close_body()
            self._window = self.FIRST_WINDOW
            self._position = position
        return self._position

    def read(self, size: int = -1) -> bytes:
        if self.closed:
            raise ValueError("read of a closed file")
        if self._position >= self.size:
            return b""
        want = self.size - self._position if size is None or size < 0 else min(size, self.size - self._position)
        if self._body is not None and self._position >= self._window_end:
            self._close_body()  # window used up: the next one is twice as large
            self._window = max(self._window, min(self._window * 2, self.LARGEST_WINDOW))
        if self._body is None:
            end = min(self.size, self._position + max(self._window, want))
            response = self._client.get_object(
                Bucket=self._bucket, Key=self._key, Range=f"bytes={self._position}-{end - 1}"
            )
            self._body, self._window_end = response["Body"], end
        data = self._body.read(min(want, self._window_end - self._position))
        if not data:
            raise OSError(f"{self._key} ended at byte {self._position} of {self.size}")
        self._position += len(data)
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readall(self) -> bytes:  # callers of this backend stream; this exists for io's sake
        return self.read(-1)

    def _close_body(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None

    def close(self) -> None:
        self._close_body()
        super().close()


class StreamingS3Storage(S3Storage):
    """S3Storage with multipart streaming uploads, ranged streaming reads and presigning."""

    def __init__(self, *, part_size: int = MIN_PART_BYTES, public_endpoint_url: str | None = None, **settings):
        if part_size < 5 * 1024 * 1024:
            raise ImproperlyConfigured("S3 multipart parts must be at least 5 MiB.")
        self.part_size = part_size
        self.public_endpoint_url = public_endpoint_url or None
        super().__init__(**settings)
        self.client_config = CLIENT_DEFAULTS.merge(self.client_config)
        self._public_client = None

    @property
    def client(self):
        return self.connection.meta.client

    def key_for(self, name: str) -> str:
        return self._normalize_name(clean_name(name))

    # --- writes --------------------------------------------------------------------------
    def _read_part(self, content) -> bytes:
        """Up to one part from the stream; short only at the end of the stream."""
        pieces, have = [], 0
        while have < self.part_size:
            data = content.read(self.part_size - have)
            if not data:
                break
            pieces.append(data)
            have += len(data)
        return b"".join(pieces)

    def _save(self, name, content):
        cleaned = clean_name(name)
        key = self.key_for(cleaned)
        params = {"ContentType": "application/octet-stream", **self.get_object_parameters(key)}
        first = self._read_part(content)
        if len(first) < self.part_size:  # fits in one request: no multipart needed
            self.client.put_object(Bucket=self.bucket_name, Key=key, Body=first, **params)
            return cleaned
        upload_id = self.client.create_multipart_upload(Bucket=self.bucket_name, Key=key, **params)["UploadId"]
        try:
            parts, number, data = [], 1, first
            while data:
                if number > MAX_PARTS:
                    raise ValueError(f"the file needs more than {MAX_PARTS} parts of {self.part_size} bytes")
                response = self.client.upload_part(
                    Bucket=self.bucket_name, Key=key, UploadId=upload_id, PartNumber=number, Body=data
                )
                parts.append({"PartNumber": number, "ETag": response["ETag"]})
                del data  # let the part go before reading the next one
                number += 1
                data = self._read_part(content)
            self.client.complete_multipart_upload(
                Bucket=self.bucket_name, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            # The parts stored so far are invisible but billed and kept until aborted.
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket_name, Key=key, UploadId=upload_id)
            except Exception as exc:
                logger.warning("could not abort multipart upload %s of %s (%s: %s); storage_sweep aborts it later",
                               upload_id, key, type(exc).__name__, exc)
            raise
        return cleaned

    # --- reads ---------------------------------------------------------------------------
    def _open(self, name, mode="rb"):
        if "w" in mode or "a" in mode or "+" in mode:
            raise ValueError("this storage writes through save() only")
        key = self.key_for(name)
        try:
            head = self.client.head_object(Bucket=self.bucket_name, Key=key)
        except ClientError as error:
            if _not_found(error):
                raise FileNotFoundError(f"no stored object {name}") from None
            raise
        return S3ObjectReader(self.client, self.bucket_name, key, head["ContentLength"])

    def open(self, name, mode="rb"):  # an io object, not a django File: it streams as it is
        return self._open(name, mode)

    # --- presigned downloads -------------------------------------------------------------
    def _presigning_client(self):
        if not self.public_endpoint_url:
            return self.client
        if self._public_client is None:
            session = boto3.session.Session()
            self._public_client = session.client(
                "s3",
                endpoint_url=self.public_endpoint_url,
                region_name=self.region_name,
                aws_access_key_id=self.access_key or None,
                aws_secret_access_key=self.secret_key or None,
                aws_session_token=self.security_token or None,
                config=Config(signature_version="s3v4", s3={"addressing_style": self.addressing_style or "path"}),
            )
        return self._public_client

    def presigned_download_url(self, name: str, *, filename_header: str, expires_in: int) -> str:
        """A GetObject URL valid for `expires_in` seconds that downloads as an attachment."""
        return self._presigning_client().generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket_name,
                "Key": self.key_for(name),
                "ResponseContentDisposition": filename_header,
                "ResponseContentType": "application/octet-stream",
            },
            ExpiresIn=expires_in,
        )

    # --- operations ----------------------------------------------------------------------
    def check_reachable(self) -> None:
        """Raise unless the bucket answers (used by /readyz)."""
        self.client.head_bucket(Bucket=self.bucket_name)

    def unfinished_uploads(self, prefix: str):
        """(key, upload id, started) of each multipart upload under `prefix` that was neither
        completed nor aborted: an upload whose connection to S3 failed could not abort its own."""
        paginator = self.client.get_paginator("list_multipart_uploads")
        for page in paginator.paginate(Bucket=self.bucket_name, Prefix=self.key_for(prefix)):
            for upload in page.get("Uploads", []):
                yield upload["Key"], upload["UploadId"], upload["Initiated"]

    def abort_upload(self, key: str, upload_id: str) -> None:
        self.client.abort_multipart_upload(Bucket=self.bucket_name, Key=key, UploadId=upload_id)

    # --- direct uploads (the client sends the parts straight to the bucket) --------------
    def direct_upload_start(self, name: str, *, content_type: str) -> str:
        """Start a multipart upload of `name`; return its upload id."""
        key = self.key_for(name)
        params = {"ContentType": content_type or "application/octet-stream", **self.get_object_parameters(key)}
        return self.client.create_multipart_upload(Bucket=self.bucket_name, Key=key, **params)["UploadId"]

    def direct_upload_part_url(self, name: str, upload_id: str, number: int, *, expires_in: int) -> str:
        """A presigned UploadPart URL (PUT the part's bytes to it), against the address clients see."""
        return self._presigning_client().generate_presigned_url(
            "upload_part",
            Params={"Bucket": self.bucket_name, "Key": self.key_for(name), "UploadId": upload_id,
                    "PartNumber": number},
            ExpiresIn=expires_in,
        )

    def direct_upload_parts(self, name: str, upload_id: str) -> list[dict]:
        """The parts stored so far: [{"number", "size", "etag"}], by number."""
        parts = []
        paginator = self.client.get_paginator("list_parts")
        for page in paginator.paginate(Bucket=self.bucket_name, Key=self.key_for(name), UploadId=upload_id):
            parts += [{"number": part["PartNumber"], "size": part["Size"], "etag": part["ETag"]}
                      for part in page.get("Parts", [])]
        return sorted(parts, key=lambda part: part["number"])

    def direct_upload_complete(self, name: str, upload_id: str, parts: list[dict]) -> None:
        self.client.complete_multipart_upload(
            Bucket=self.bucket_name, Key=self.key_for(name), UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": part["number"], "ETag": part["etag"]} for part in parts]},
        )
