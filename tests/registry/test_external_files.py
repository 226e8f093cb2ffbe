"""External files in manifests (SPEC §4): entries the registry does not store (s3://, gs://,
https://, data://), given with their checksums, validated, listed live and frozen."""

import hashlib

import pytest
from django.test import Client
from django.urls import reverse

from registry import manifests, services
from registry.models import AuditEvent, Version

from tests.helpers import upload

pytestmark = pytest.mark.django_db

WEIGHTS = b"weights kept in a bucket"
SHA = hashlib.sha256(WEIGHTS).hexdigest()
MD5 = hashlib.md5(WEIGHTS).hexdigest()


def external(**overrides):
    return {"name": "weights", "source_uri": "s3://models/churn/weights.bin", "sha256_checksum": SHA, **overrides}


def versions_url(model):
    return f"/api/v1/models/{model.pk}/versions/"


def test_external_files_are_stored_with_their_defaults(clients, model):
    r = clients["editor"].post(versions_url(model), {"external_files": [
        external(md5_checksum=MD5.upper(), size=len(WEIGHTS)),
        {"name": "vocab", "source_uri": "HTTPS://example.com/v1/vocab.txt", "sha256_checksum": SHA.upper(),
         "required": False, "fail_on_tamper": False, "filename": "vocabulary.txt"},
    ]}, format="json")
    assert r.status_code == 201, r.json()
    assert r.json()["external_files"] == [
        {"name": "weights", "source_uri": "s3://models/churn/weights.bin", "sha256_checksum": SHA,
         "md5_checksum": MD5, "size": len(WEIGHTS), "filename": "weights.bin", "required": True,
         "fail_on_tamper": True},
        {"name": "vocab", "source_uri": "https://example.com/v1/vocab.txt", "sha256_checksum": SHA,
         "md5_checksum": "", "size": None, "filename": "vocabulary.txt", "required": False,
         "fail_on_tamper": False},
    ]


def test_the_manifest_lists_them_live_and_frozen_under_the_lock(clients, model):
    number = clients["editor"].post(versions_url(model), {"external_files": [
        external(), external(name="tokenizer", source_uri="data://team/tok.json", required=False)]},
        format="json").json()["number"]
    url = f"{versions_url(model)}{number}/manifest/"
    live = clients["viewer"].get(url).json()
    assert live["required_files"] == [{
        "name": "weights", "source_uri": "s3://models/churn/weights.bin", "fail_on_tamper": True,
        "filename": "weights.bin", "size": None, "external": True, "md5_checksum": "", "sha256_checksum": SHA}]
    assert [entry["name"] for entry in live["optional_files"]] == ["tokenizer"]
    assert upload(clients["editor"], model.pk, number, "pkl").status_code == 200
    frozen = clients["viewer"].get(url, {"frozen": "true"}).json()
    assert [entry["name"] for entry in frozen["required_files"]] == ["pkl", "weights"]
    assert frozen["required_files"][1]["sha256_checksum"] == SHA
    assert frozen["lock_checksum"] == manifests.lock_checksum(frozen)
    edited = {**frozen, "required_files": [frozen["required_files"][0],
                                           {**frozen["required_files"][1], "source_uri": "s3://evil/weights.bin"}]}
    assert manifests.lock_checksum(edited) != frozen["lock_checksum"]


@pytest.mark.parametrize("entry, fragment", [
    (external(source_uri="ftp://host/weights.bin"), "has 'ftp://'; an external file is one of s3://, gs://, https://"),
    (external(source_uri="http://host/weights.bin"), "has 'http://'"),
    (external(source_uri="file:///etc/passwd"), "has 'file://'"),
    (external(source_uri="registry://acme/x/versions/1/formats/pkl"), "has 'registry://'"),
    (external(source_uri="/weights.bin"), "has no scheme"),
    (external(source_uri="https://alice:s3cret@example.com/w.bin"), "carries credentials"),
    (external(source_uri="https://token@example.com/w.bin"), "carries credentials"),
    (external(source_uri="https://b.s3.amazonaws.com/w.bin?X-Amz-Signature=abc&X-Amz-Credential=x"),
     "credential or signature in its query (X-Amz-Signature)"),
    (external(source_uri="https://example.com/w.bin?access_token=abc"), "(access_token)"),
    (external(source_uri="s3://bucket-only"), "must name a bucket and a path"),
    (external(source_uri="https://example.com/"), "must name a host and a path"),
    (external(source_uri="https://example.com/w bin"), "spaces or control characters"),
    (external(source_uri="https://example.com:port/w.bin"), "is not a valid URI"),
    (external(source_uri="https://example.com/w.bin#frag"), "cannot have a fragment"),
    (external(source_uri=""), "'source_uri' is required"),
    (external(sha256_checksum=None), "'sha256_checksum' is required"),
    (external(sha256_checksum="abc"), "'sha256_checksum' is required: the file's SHA-256 as 64 hex digits"),
    (external(md5_checksum="xyz"), "'md5_checksum' must be 32 hex digits"),
    (external(size=-1), "'size' must be"),
    (external(size=True), "'size' must be"),
    (external(required="yes"), "'required' must be true or false"),
    (external(name="pkl"), "'pkl' is a format kind"),
    (external(name="../w"), "'name' must be 1-64"),
    (external(filename="../../etc/passwd"), "'filename' must be a bare file name"),
    (external(token="x"), "unknown key 'token'"),
    ("s3://bucket/w.bin", "must be an object"),
])
def test_a_bad_entry_is_a_clear_400_naming_it(clients, model, entry, fragment):
    r = clients["editor"].post(versions_url(model), {"external_files": [external(name="first"), entry]}, format="json")
    assert r.status_code == 400, r.json()
    assert r.json()["field"] == "external_files"
    assert fragment in r.json()["detail"]
    assert "external_files[1]" in r.json()["detail"]
    assert not Version.objects.filter(model=model).exists()


@pytest.mark.parametrize("value, fragment", [
    ({"name": "w"}, "must be a list"),
    ([external(), external(name="WEIGHTS")], "the name 'WEIGHTS' is used twice"),
    ([external(name=f"f{i}") for i in range(101)], "at most 100 external files"),
])
def test_a_bad_list_is_a_clear_400(clients, model, version, value, fragment):
    r = clients["editor"].patch(f"{versions_url(model)}{version.number}/", {"external_files": value}, format="json")
    assert r.status_code == 400 and fragment in r.json()["detail"], r.json()
    version.refresh_from_db()
    assert version.external_files == []


def test_a_published_version_keeps_its_external_files(clients, model, version):
    assert upload(clients["editor"], model.pk, version.number, "pkl").status_code == 200
    clients["editor"].patch(f"{versions_url(model)}{version.number}/", {"external_files": [external()]}, format="json")
    assert clients["publisher"].post(f"{versions_url(model)}{version.number}/publish/").status_code == 200
    r = clients["editor"].patch(f"{versions_url(model)}{version.number}/", {"external_files": []}, format="json")
    assert r.status_code == 409
    version.refresh_from_db()
    assert [item["name"] for item in version.external_files] == ["weights"]


def test_changes_are_audited(clients, model, version):
    clients["editor"].patch(f"{versions_url(model)}{version.number}/", {"external_files": [external()]}, format="json")
    event = AuditEvent.objects.filter(action="version.update").latest("id")
    assert "external_files" in event.summary
    assert event.changes["external_files"][1][0]["source_uri"] == "s3://models/churn/weights.bin"


def test_a_tamper_report_on_an_external_file_is_recorded(clients, model, version):
    services.version_update(actor=None, version=version, external_files=[external()])
    r = clients["readonly"].post(f"{versions_url(model)}{version.number}/tamper-reports/",
                                 {"file": "weights", "reason": "checksum_mismatch", "expected": SHA, "actual": MD5},
                                 format="json")
    assert r.status_code == 201, r.json()
    event = AuditEvent.objects.get(action="format.tamper_reported")
    assert "the external file weights" in event.summary and event.changes["external"] is True
    r = clients["readonly"].post(f"{versions_url(model)}{version.number}/tamper-reports/",
                                 {"file": "nothing", "reason": "checksum_mismatch"}, format="json")
    assert r.status_code == 400 and "no 'nothing' format or external file" in r.json()["detail"]


# --- the dashboard ----------------------------------------------------------------------------------

@pytest.fixture
def signed_in(users):
    def make(persona):
        client = Client()
        client.force_login(users[persona])
        return client

    return make


def test_the_formats_tab_lists_external_files(signed_in, model, version):
    services.version_update(actor=None, version=version, external_files=[external(size=2048)])
    page = signed_in("viewer").get(reverse("dashboard:version-formats", kwargs={
        "model_id": model.pk, "number": version.number})).content.decode()
    assert "External files" in page and "<code>weights</code>" in page
    assert "s3://models/churn/weights.bin" in page and SHA in page and "2.0\xa0KB" in page
    assert "required, fails on tamper" in page


def test_the_edit_form_sets_external_files_and_says_what_is_wrong(signed_in, model, version):
    url = reverse("dashboard:version-edit", kwargs={"model_id": model.pk, "number": version.number})
    client = signed_in("editor")
    form = {"name": "", "description": "", "tags": "", "framework": "", "framework_version": "",
            "hyperparameters": "", "config": "", "metadata": "", "signature": ""}
    bad = client.post(url, {**form, "external_files": '[{"name": "w", "source_uri": "ftp://h/w", '
                                                       f'"sha256_checksum": "{SHA}"}}]'})
    assert bad.status_code == 400
    assert "has &#x27;ftp://&#x27;" in bad.content.decode()
    not_a_list = client.post(url, {**form, "external_files": '{"name": "w"}'})
    assert not_a_list.status_code == 400 and "Enter a JSON list" in not_a_list.content.decode()
    version.refresh_from_db()
    assert version.external_files == []
    good = client.post(url, {**form, "external_files": f'[{{"name": "w", "source_uri": "gs://b/w.bin", '
                                                        f'"sha256_checksum": "{SHA}"}}]'})
    assert good.status_code == 302
    version.refresh_from_db()
    assert version.external_files[0]["source_uri"] == "gs://b/w.bin"
