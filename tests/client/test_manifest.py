"""Loading through a frozen manifest: eager required files, lazy optional ones, the cache,
and tamper detection reported to the registry."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from registry_client import Conflict, Manifest, TamperError, TamperWarning
from tests.client.conftest import MODEL_BYTES, stored_path


def _downloads(registry) -> list[str]:
    """Record the file downloads the client makes (an httpx event hook on its own session)."""
    seen: list[str] = []
    registry._transport.client.event_hooks["request"].append(
        lambda request: seen.append(request.url.path) if request.url.path.endswith("/file") else None
    )
    return seen


def test_load_fetches_required_files_eagerly_and_optional_ones_lazily(published, tmp_path, connect):
    _, model, version = published
    path = tmp_path / "manifest.json"
    version.freeze(path)

    consumer = connect("readonly")  # a deployment with a read-only token
    downloads = _downloads(consumer)
    manifest = Manifest.load(path, consumer)
    assert [d.rsplit("/", 2)[-2] for d in downloads] == ["pkl"]  # only the required file
    assert set(manifest.paths) == {"pkl"}
    assert manifest.paths["pkl"].read_bytes() == MODEL_BYTES
    cache = tmp_path / "cache" / "files"
    assert not any(p.name == "notes.bin" for p in cache.rglob("*"))  # the optional file is not there yet

    optional = manifest.get_model("other")
    assert optional.read_bytes() == b"optional side file\n" * 100
    assert [d.rsplit("/", 2)[-2] for d in downloads] == ["pkl", "other"]
    sha = hashlib.sha256(MODEL_BYTES).hexdigest()
    assert manifest.paths["pkl"] == cache / sha[:2] / sha / "model.pkl"
    with pytest.raises(KeyError, match="lists: pkl, other"):
        manifest.get_model("onnx")


def test_a_second_load_is_served_from_the_cache(published, connect):
    _, model, version = published
    consumer = connect("viewer")
    downloads = _downloads(consumer)
    first = consumer.context("acme").model("churn").alias("production").get_model("pkl")
    second = consumer.context("acme").model("churn").version(1).get_model("pkl")
    again = Manifest.load(version.manifest(frozen=True), consumer).get_model("pkl")
    assert first == second == again
    assert len(downloads) == 1

    # A cached copy changed locally is noticed (size/mtime), discarded and fetched again.
    first.write_bytes(b"X" * len(MODEL_BYTES))
    with pytest.warns(RuntimeWarning, match="discarded"):
        refetched = consumer.context("acme").model("churn").version(1).get_model("pkl")
    assert refetched.read_bytes() == MODEL_BYTES
    assert len(downloads) == 2


def test_changed_stored_bytes_raise_a_tamper_error_and_are_reported(published, connect, storage_dir, tmp_path):
    _, model, version = published
    manifest_path = tmp_path / "manifest.json"
    version.freeze(manifest_path)
    stored = stored_path(storage_dir, version, "pkl")
    stored.write_bytes(MODEL_BYTES[:-2] + b"X.")  # same size, different bytes

    consumer = connect("readonly")
    with pytest.raises(TamperError) as caught:
        Manifest.load(manifest_path, consumer)
    error = caught.value
    assert (error.file, error.reason) == ("pkl", "checksum_mismatch")
    assert error.expected == hashlib.sha256(MODEL_BYTES).hexdigest()
    assert error.actual == hashlib.sha256(stored.read_bytes()).hexdigest()
    assert not any(p.is_file() for p in (tmp_path / "cache").rglob("model.pkl"))  # nothing kept

    events = list(connect("admin").context("acme").audit(action="format.tamper_reported"))
    assert len(events) == 1
    assert "pkl" in events[0]["summary"]
    assert events[0]["actor"] == "viewer"

    # The report made the registry re-hash the stored file: it is corrupt now, so a direct download
    # needs an acknowledgement, and the client still verifies what it receives.
    direct = connect("viewer").context("acme").model("churn").version(1)
    with pytest.raises(Conflict, match="corrupt"):
        direct.download("pkl", tmp_path / "direct.pkl")
    with pytest.raises(TamperError):
        direct.download("pkl", tmp_path / "direct.pkl", acknowledge_not_ready=True)
    assert not (tmp_path / "direct.pkl").exists()


def test_a_file_without_fail_on_tamper_only_warns(published, connect, storage_dir, tmp_path):
    _, model, version = published
    manifest = version.freeze(tmp_path / "manifest.json")
    assert manifest.files["other"].fail_on_tamper is False
    stored = stored_path(storage_dir, version, "other")
    stored.write_bytes(b"changed behind the registry's back")

    consumer = connect("viewer")
    loaded = Manifest.load(tmp_path / "manifest.json", consumer)  # the required pkl is intact
    with pytest.warns(TamperWarning, match="does not match"):
        path = loaded.get_model("other")
    assert path.read_bytes() == b"changed behind the registry's back"
    expected_sha = manifest.files["other"].sha256
    assert expected_sha not in str(path)  # never cached under the digest it should have had
    reports = list(connect("admin").context("acme").audit(action="format.tamper_reported"))
    assert len(reports) == 1 and "other" in reports[0]["summary"]


def test_an_edited_manifest_fails_its_lock_check_whatever_its_flags_say(published, connect, tmp_path):
    _, model, version = published
    path = tmp_path / "manifest.json"
    version.freeze(path)
    data = json.loads(path.read_text())
    data["required_files"][0]["fail_on_tamper"] = False  # an attacker would try exactly this
    data["required_files"][0]["sha256_checksum"] = "0" * 64
    path.write_text(json.dumps(data))

    consumer = connect("viewer")
    downloads = _downloads(consumer)
    with pytest.raises(TamperError) as caught:
        Manifest.load(path, consumer)
    assert (caught.value.reason, caught.value.file) == ("lock_mismatch", "")
    assert downloads == []  # nothing fetched through a manifest that cannot be trusted
    reports = list(connect("admin").context("acme").audit(action="format.tamper_reported"))
    assert len(reports) == 1


def test_a_failing_report_never_hides_the_tamper_error(published, connect, storage_dir, tmp_path):
    """The outsider cannot see the model, so the report is refused (404): still a TamperError."""
    _, model, version = published
    data = version.manifest(frozen=True)
    data["version"] = 99  # breaks the lock; the report will go to a version that does not exist
    with pytest.warns(RuntimeWarning, match="Could not report"), pytest.raises(TamperError):
        Manifest.load(data, connect("viewer"))


def test_a_missing_stored_file_is_tamper(published, connect, storage_dir, tmp_path):
    _, model, version = published
    manifest = version.freeze(tmp_path / "manifest.json")
    os.remove(stored_path(storage_dir, version, "pkl"))
    with pytest.raises(TamperError) as caught:
        Manifest.load(manifest.data, connect("viewer"))
    assert caught.value.reason == "missing_file"
