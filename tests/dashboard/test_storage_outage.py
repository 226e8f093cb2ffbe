"""The dashboard's upload forms when the file store fails: the page again, with the API's
words next to the form (503, or 507 for a full disk), never a 500 page; nothing changed.
The failing stores are the real ones of tests/registry/test_storage_outage.py."""

from __future__ import annotations

import html as html_module

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from registry import services
from registry.models import Format, Version
from tests.helpers import PICKLE, store_file
from tests.registry.test_storage_outage import (  # noqa: F401 (fixtures)
    UNAVAILABLE_DETAIL, full_disk, rows, s3_front, store,
)

pytestmark = pytest.mark.django_db

# The S3 cases start moto's S3 server: `subprocess` tests (make test-fast leaves them out).
S3_DOWN = pytest.param("s3-down", marks=pytest.mark.subprocess)
FAILURES = [S3_DOWN, pytest.param("s3-slowdown", marks=pytest.mark.subprocess), "local-folder-gone"]


def url(name: str, **kwargs) -> str:
    return reverse(f"dashboard:{name}", kwargs=kwargs)


def page_of(response) -> str:
    return html_module.unescape(response.content.decode())


@pytest.fixture
def draft(users, context):
    model = services.model_create(actor=users["admin"], context=context, name="Churn")
    version = services.version_create(actor=users["admin"], model=model)
    store_file(version, actor=users["admin"])
    return version


@pytest.fixture
def editor_web(users) -> Client:
    client = Client()
    client.force_login(users["editor"])
    return client


@pytest.mark.parametrize("store", FAILURES, indirect=True)
@pytest.mark.parametrize("kind", ["joblib", "pkl"])  # a new file, and replacing the existing one
def test_upload_form_shows_the_store_failure(store, editor_web, draft, kind):
    before_rows, before_keys = rows(draft), store.keys()
    store.fail()
    try:
        response = editor_web.post(url("format-upload", model_id=draft.model_id, number=draft.number),
                                   {"kind": kind, "file": SimpleUploadedFile("m.pkl", PICKLE * 100)})
    finally:
        store.recover()
    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    page = page_of(response)
    assert f'<div class="form-error" role="alert">{UNAVAILABLE_DETAIL}' in page
    assert rows(draft) == before_rows and store.keys() == before_keys


def test_upload_form_on_a_full_disk_is_507_with_its_message(full_disk, editor_web, draft):
    before_rows = rows(draft)
    response = editor_web.post(url("format-upload", model_id=draft.model_id, number=draft.number),
                               {"kind": "joblib", "file": SimpleUploadedFile("m.joblib", b"x" * 65536)})
    assert response.status_code == 507 and "Retry-After" not in response
    assert "The file store is full, so the file was not stored" in page_of(response)
    assert "Ask an operator to free space" in page_of(response)
    assert rows(draft) == before_rows


@pytest.mark.parametrize("store", [S3_DOWN, "local-folder-gone"], indirect=True)
def test_new_version_with_a_file_while_the_store_fails_says_the_file_was_not_stored(store, editor_web, draft):
    store.fail()
    try:
        response = editor_web.post(url("version-create", model_id=draft.model_id),
                                   {"name": "third", "kind": "pkl", "file": SimpleUploadedFile("w.pkl", PICKLE)},
                                   follow=True)
    finally:
        store.recover()
    assert response.status_code == 200
    version = Version.objects.get(model_id=draft.model_id, name="third")
    assert not Format.objects.filter(version=version).exists()
    assert (f"Version {version.number} was created, but its file was not stored: {UNAVAILABLE_DETAIL}"
            in page_of(response))
