"""Model manifests, frozen manifests and tamper reports (SPEC §4)."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from datetime import datetime

import pytest
from django.test import TestCase

from registry import services
from registry.models import AuditEvent, Format, FormatStatus

from tests.helpers import PICKLE, store_file, upload

pytestmark = pytest.mark.django_db

ONNX_LIKE = b"not really onnx"  # kind "other": hashed, nothing to introspect, so it becomes ready
EVIL = pickle.dumps(os.system, protocol=4)  # a global the scanner quarantines (never loaded)


def manifest_url(model, number=1, frozen=False):
    return f"/api/v1/models/{model.pk}/versions/{number}/manifest/" + ("?frozen=true" if frozen else "")


def canonical_md5(value: dict) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.md5(text.encode("utf-8")).hexdigest()


@pytest.fixture
def model(context):
    return services.model_create(actor=None, context=context, name="Churn")


@pytest.fixture
def version(model):
    return services.version_create(actor=None, model=model)


def test_manifest_lists_files_by_required_flag(clients, model, version, context):
    store_file(version, "pkl", PICKLE)
    store_file(version, "other", ONNX_LIKE)
    services.format_create(actor=None, version=version, kind="onnx")  # no file yet: not listed
    Format.objects.filter(version=version, kind="other").update(required=False, fail_on_tamper=False)

    response = clients["viewer"].get(manifest_url(model))

    assert response.status_code == 200
    assert response.json() == {
        "context": "acme",
        "model_id": str(model.pk),
        "model_name": "Churn",
        "version": 1,
        "required_files": [{
            "name": "pkl", "source_uri": f"registry://acme/{model.pk}/versions/1/formats/pkl",
            "fail_on_tamper": True, "filename": "", "size": len(PICKLE),
        }],
        "optional_files": [{
            "name": "other", "source_uri": f"registry://acme/{model.pk}/versions/1/formats/other",
            "fail_on_tamper": False, "filename": "", "size": len(ONNX_LIKE),
        }],
    }


def test_frozen_manifest_carries_checksums_and_a_lock_checksum(clients, model, version):
    store_file(version, "pkl", PICKLE)
    store_file(version, "other", ONNX_LIKE)
    Format.objects.filter(version=version, kind="other").update(required=False)

    frozen = clients["viewer"].get(manifest_url(model, frozen=True)).json()

    pkl, = frozen["required_files"]
    other, = frozen["optional_files"]
    assert pkl["md5_checksum"] == hashlib.md5(PICKLE).hexdigest()
    assert pkl["sha256_checksum"] == hashlib.sha256(PICKLE).hexdigest()
    assert other["sha256_checksum"] == hashlib.sha256(ONNX_LIKE).hexdigest()
    assert frozen["timestamp"].endswith("Z")
    assert datetime.fromisoformat(frozen["timestamp"].replace("Z", "+00:00")).tzinfo is not None
    rest = {key: value for key, value in frozen.items() if key != "lock_checksum"}
    assert frozen["lock_checksum"] == canonical_md5(rest)
    # Any edit of the manifest (here: a file made optional) no longer matches the lock.
    rest["required_files"][0]["fail_on_tamper"] = False
    assert canonical_md5(rest) != frozen["lock_checksum"]


def test_frozen_manifest_refused_until_every_file_is_ready(clients, model, version):
    with TestCase.captureOnCommitCallbacks(execute=False):  # uploaded, not hashed yet
        response = upload(clients["editor"], model.pk, 1, "pkl", PICKLE, process=False)
    assert response.status_code == 200

    frozen = clients["viewer"].get(manifest_url(model, frozen=True))
    plain = clients["viewer"].get(manifest_url(model))

    assert frozen.status_code == 409
    assert "pkl (uploaded)" in frozen.json()["detail"]
    assert plain.status_code == 200
    assert "md5_checksum" not in plain.json()["required_files"][0]


def test_frozen_manifest_refused_for_a_quarantined_file(clients, model, version):
    fmt = store_file(version, "pkl", EVIL)
    assert fmt.status == FormatStatus.QUARANTINED

    response = clients["viewer"].get(manifest_url(model, frozen=True))

    assert response.status_code == 409
    assert "pkl (quarantined)" in response.json()["detail"]


def test_frozen_manifest_says_a_corrupt_file_is_not_a_wait(clients, model, version):
    store_file(version, "pkl", PICKLE)
    Format.objects.filter(version=version, kind="pkl").update(
        status=FormatStatus.CORRUPT, status_message="The stored bytes do not match their recorded SHA-256.")

    body = clients["viewer"].get(manifest_url(model, frozen=True)).json()

    assert body["code"] == "not_freezable"
    assert "will not become ready as they are: pkl (corrupt): The stored bytes do not match" in body["detail"]
    assert "still being checked" not in body["detail"]


@pytest.mark.parametrize("with_pending_format", [False, True])
def test_frozen_manifest_of_a_version_without_files_is_refused(clients, model, version, with_pending_format):
    if with_pending_format:
        services.format_create(actor=None, version=version, kind="pkl")  # a format, no file yet

    response = clients["viewer"].get(manifest_url(model, frozen=True))

    assert response.status_code == 409
    assert response.json()["code"] == "no_files"
    assert "Version 1 has no file to freeze" in response.json()["detail"]
    assert clients["viewer"].get(manifest_url(model)).status_code == 200  # the live manifest: empty lists


def test_manifest_of_a_published_version_is_stable(clients, model, version):
    store_file(version, "pkl", PICKLE)
    services.version_publish(actor=None, version=version)

    first = clients["viewer"].get(manifest_url(model, frozen=True)).json()
    second = clients["viewer"].get(manifest_url(model, frozen=True)).json()

    strip = lambda m: {k: v for k, v in m.items() if k not in ("timestamp", "lock_checksum")}  # noqa: E731
    assert strip(first) == strip(second)


def test_manifest_query_count_does_not_grow_with_formats(clients, model, version, django_assert_max_num_queries):
    for kind, body in (("pkl", PICKLE), ("other", ONNX_LIKE), ("safetensors", None)):
        if body is None:
            services.format_create(actor=None, version=version, kind=kind)
        else:
            store_file(version, kind, body)
    client = clients["viewer"]
    client.get(manifest_url(model, frozen=True))  # warm the token's last-used write
    with django_assert_max_num_queries(7):
        assert client.get(manifest_url(model, frozen=True)).status_code == 200


# --- the manifest flags on formats ------------------------------------------------------

def test_format_created_with_manifest_flags(clients, model, version):
    response = clients["editor"].post(
        f"/api/v1/models/{model.pk}/versions/1/formats/",
        {"kind": "onnx", "required": False, "fail_on_tamper": False}, format="json",
    )

    assert response.status_code == 201
    assert response.json()["required"] is False
    assert response.json()["fail_on_tamper"] is False


def test_format_create_rejects_unknown_kind_naming_the_field(clients, model, version):
    response = clients["editor"].post(f"/api/v1/models/{model.pk}/versions/1/formats/", {"kind": "exe"}, format="json")

    assert response.status_code == 400
    assert response.json()["field"] == "kind"


def test_format_flags_edited_until_publish(clients, model, version):
    store_file(version, "pkl", PICKLE)
    url = f"/api/v1/models/{model.pk}/versions/1/formats/pkl/"

    changed = clients["editor"].patch(url, {"required": False}, format="json")

    assert changed.status_code == 200
    assert changed.json()["required"] is False
    assert changed.json()["fail_on_tamper"] is True
    event = AuditEvent.objects.filter(action="format.update").get()
    assert event.changes == {"required": [True, False]}
    assert clients["viewer"].get(manifest_url(model)).json()["optional_files"][0]["name"] == "pkl"

    bad = clients["editor"].patch(url, {"fail_on_tamper": "maybe"}, format="json")
    assert bad.status_code == 400
    assert bad.json()["field"] == "fail_on_tamper"

    services.version_publish(actor=None, version=version)
    frozen = clients["editor"].patch(url, {"required": True}, format="json")
    assert frozen.status_code == 409
    assert Format.objects.get(version=version, kind="pkl").required is False


def test_unchanged_flags_write_no_audit_event(clients, model, version):
    store_file(version, "pkl", PICKLE)
    before = AuditEvent.objects.count()

    response = clients["editor"].patch(
        f"/api/v1/models/{model.pk}/versions/1/formats/pkl/", {"required": True}, format="json"
    )

    assert response.status_code == 200
    assert AuditEvent.objects.count() == before


# --- tamper reports ---------------------------------------------------------------------

def report_url(model, number=1):
    return f"/api/v1/models/{model.pk}/versions/{number}/tamper-reports/"


def test_tamper_report_lands_in_the_audit_log(clients, model, version, users):
    store_file(version, "pkl", PICKLE)
    body = {"file": "pkl", "reason": "checksum_mismatch", "expected": "AB" * 32, "actual": "cd" * 32,
            "detail": "pulled on ci-runner-7"}

    with TestCase.captureOnCommitCallbacks(execute=True):
        response = clients["readonly"].post(report_url(model), body, format="json")

    assert response.status_code == 201
    event = AuditEvent.objects.get(pk=response.json()["id"])
    assert event.action == "format.tamper_reported"
    assert event.actor == users["admin"]
    assert event.object_type == "format"
    assert "pulled on ci-runner-7" in event.summary
    assert event.changes == {"reason": "checksum_mismatch", "file": "pkl", "expected": "ab" * 32,
                             "actual": "cd" * 32, "fail_on_tamper": True}
    # The stored bytes are intact, so the re-check the report triggered leaves the file ready.
    assert Format.objects.get(version=version, kind="pkl").status == FormatStatus.READY


def test_tamper_report_rechecks_the_stored_file(clients, model, version, storage_dir):
    fmt = store_file(version, "pkl", PICKLE)
    with open(os.path.join(storage_dir, fmt.storage_key), "wb") as handle:
        handle.write(b"\x80\x04K\x02.")  # someone changed the stored bytes

    with TestCase.captureOnCommitCallbacks(execute=True):
        response = clients["viewer"].post(report_url(model), {"file": "pkl", "reason": "checksum_mismatch"},
                                          format="json")

    assert response.status_code == 201
    fmt.refresh_from_db()
    assert fmt.status == FormatStatus.CORRUPT
    assert AuditEvent.objects.filter(action="format.tamper", object_id=str(fmt.pk)).exists()


def test_tamper_report_about_the_manifest_itself(clients, model, version):
    response = clients["viewer"].post(report_url(model), {"reason": "lock_mismatch"}, format="json")

    assert response.status_code == 201
    event = AuditEvent.objects.get(pk=response.json()["id"])
    assert event.object_type == "version"
    assert "the manifest of version 1" in event.summary


@pytest.mark.parametrize("body, field", [
    ({"reason": "bored"}, "reason"),
    ({"reason": "checksum_mismatch", "file": "onnx"}, "file"),
    ({"reason": "checksum_mismatch", "expected": "not hex!"}, "expected"),
    ({"reason": "checksum_mismatch", "detail": "x" * 501}, "detail"),
])
def test_tamper_report_bad_input(clients, model, version, body, field):
    before = AuditEvent.objects.count()

    response = clients["viewer"].post(report_url(model), body, format="json")

    assert response.status_code == 400
    assert response.json()["field"] == field
    assert AuditEvent.objects.count() == before
