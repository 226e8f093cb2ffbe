"""Transfers survive broken connections: an upload cut mid-body is restarted, a download cut
mid-body resumes with Range. A TCP proxy between the client and the live server breaks the
first large transfer on purpose."""

from __future__ import annotations

import hashlib
import os

import pytest

from registry_client import TransportError
from tests.client.conftest import stored_files, stored_path, wait_for

MiB = 1024 * 1024


@pytest.fixture
def big_file(tmp_path):
    path = tmp_path / "weights.bin"
    with open(path, "wb") as handle:
        for _ in range(6):
            handle.write(os.urandom(MiB))
    return path


def test_an_interrupted_upload_is_retried_and_leaves_no_orphan(connect, proxy_factory, big_file, storage_dir):
    proxy = proxy_factory(cut_upload_after=2 * MiB)
    reg = connect("editor", url=proxy.url)
    version = reg.context("acme").model("big", create=True).create_version()

    uploaded = version.upload("other", big_file)

    assert proxy.cuts == 1
    puts = [head for head in proxy.request_heads if head.startswith("PUT ")]
    assert len(puts) == 2  # the cut attempt and the retry
    digest = hashlib.sha256(big_file.read_bytes()).hexdigest()
    assert uploaded.size == big_file.stat().st_size
    assert uploaded.sha256 == digest and uploaded.status == "ready"
    stored = stored_path(storage_dir, version, "other")
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == digest
    # The cut attempt's partial file is removed by the server (it may still be finishing).
    key = os.path.relpath(stored, storage_dir)
    assert wait_for(lambda: stored_files(storage_dir) == [key]), stored_files(storage_dir)


def test_upload_gives_up_after_its_retries(connect, proxy_factory, big_file, storage_dir):
    proxy = proxy_factory(cut_upload_after=2 * MiB)
    reg = connect("editor", url=proxy.url, retries=0)
    version = reg.context("acme").model("big", create=True).create_version()
    with pytest.raises(TransportError):
        version.upload("other", big_file)
    assert wait_for(lambda: stored_files(storage_dir) == [])
    assert version.format("other").status == "pending"  # the format exists, without a file


def test_an_interrupted_download_resumes_with_range(connect, proxy_factory, big_file, tmp_path):
    version = connect("editor").context("acme").model("big", create=True).create_version()
    version.upload("other", big_file)

    proxy = proxy_factory(cut_download_after=3 * MiB)
    reg = connect("viewer", url=proxy.url)
    path = reg.context("acme").model("big").version(1).download("other", tmp_path / "copy.bin")

    assert proxy.cuts == 1
    gets = [head for head in proxy.request_heads if head.startswith("GET ") and "/file" in head.split("\r\n")[0]]
    assert len(gets) == 2
    assert "range: bytes=" in gets[1].lower() and "if-range:" in gets[1].lower()
    assert path.read_bytes() == big_file.read_bytes()
