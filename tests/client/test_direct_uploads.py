"""The client sends a file straight to the bucket when the registry stores files on S3: parts
in parallel to presigned URLs, resumed by a new process from the parts already stored."""

from __future__ import annotations

import hashlib
import os

import pytest

from registry.models import Format, UploadSession
from registry_client import transfer
from tests.conftest import s3_client, s3_storage_settings

MiB = 1024 * 1024


@pytest.fixture
def s3_storage(settings, s3_endpoint, s3_bucket):
    settings.STORAGES = {**settings.STORAGES, "default": s3_storage_settings(s3_endpoint, s3_bucket)}
    return s3_endpoint, s3_bucket


@pytest.fixture
def big_model(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(os.urandom(25 * MiB + 7))
    return path


def _stored_bytes(endpoint, bucket, key) -> bytes:
    return s3_client(endpoint).get_object(Bucket=bucket, Key=key)["Body"].read()


def test_upload_goes_straight_to_the_bucket_in_parallel_parts(connect, s3_storage, big_model, live_server):
    registry = connect("editor")
    version = registry.context("acme").model("churn", create=True).create_version()
    artifact = version.upload("other", big_model, parallel=4)
    assert artifact.size == big_model.stat().st_size
    fmt = Format.objects.get(kind="other")
    assert fmt.declared_sha256 == hashlib.sha256(big_model.read_bytes()).hexdigest()
    assert _stored_bytes(*s3_storage, fmt.storage_key) == big_model.read_bytes()
    assert not UploadSession.objects.exists()


def test_an_interrupted_upload_resumes_in_a_new_process(connect, s3_storage, big_model, monkeypatch):
    registry = connect("editor")
    version = registry.context("acme").model("churn", create=True).create_version()
    real_send = transfer.DirectUpload._send_part
    sent = []

    def crash_after_two(self, bucket, url, session, number, bar):
        if len(sent) >= 2:
            raise KeyboardInterrupt("the laptop lid closed")
        real_send(self, bucket, url, session, number, bar)
        sent.append(number)

    monkeypatch.setattr(transfer.DirectUpload, "_send_part", crash_after_two)
    with pytest.raises(KeyboardInterrupt):
        version.upload("other", big_model, parallel=1)
    assert UploadSession.objects.count() == 1 and not Format.objects.filter(storage_key__gt="").exists()

    # A new process (a new client): only the parts the bucket lacks are sent.
    monkeypatch.setattr(transfer.DirectUpload, "_send_part", real_send)
    resent = []
    monkeypatch.setattr(transfer.DirectUpload, "_send_part",
                        lambda self, bucket, url, session, number, bar: (resent.append(number),
                                                                         real_send(self, bucket, url, session, number, bar)))
    again = connect("editor").context("acme").model("churn").version(1)
    again.upload("other", big_model, parallel=2)
    assert sorted(resent) == [n for n in range(1, 5) if n not in sent]
    fmt = Format.objects.get(kind="other")
    assert _stored_bytes(*s3_storage, fmt.storage_key) == big_model.read_bytes()
    assert not UploadSession.objects.exists()


def test_local_storage_falls_back_to_the_streamed_put(connect, storage_dir, big_model):
    registry = connect("editor")
    version = registry.context("acme").model("churn", create=True).create_version()
    artifact = version.upload("other", big_model)
    assert artifact.size == big_model.stat().st_size
    assert Format.objects.get(kind="other").storage_key
