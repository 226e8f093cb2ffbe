"""The model's Attachments tab: who sees and does what, the upload form without JavaScript, its
errors, delete with its confirmation page, and a query count that does not grow with attachments."""

from __future__ import annotations

import io
import pickle
from collections import OrderedDict

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client, TestCase
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from registry import services
from registry.models import AuditEvent, ModelAttachment
from tests.conftest import stored_files

pytestmark = pytest.mark.django_db

ROLES = ["viewer", "editor", "publisher", "admin"]
RANK = {"viewer": 1, "editor": 2, "publisher": 3, "admin": 4}
PDF = b"%PDF-1.7\n% a model card\n%%EOF\n"


def web(user=None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def url(url_name: str, **kwargs) -> str:
    return reverse(f"dashboard:{url_name}", kwargs=kwargs)


def attach(model, name="model-card.pdf", body=PDF, actor=None, **options):
    with TestCase.captureOnCommitCallbacks(execute=True):
        return services.attachment_upload(actor=actor, model=model, name=name, stream=io.BytesIO(body),
                                          content_length=len(body), **options)[0]


@pytest.fixture
def model(users, context):
    model = services.model_create(actor=users["admin"], context=context, name="Churn classifier")
    services.version_create(actor=users["admin"], model=model)
    attach(model, description="What it does, for whom", actor=users["editor"])
    return model


CASES = [
    ("model-attachments", "GET", "viewer", lambda m: {"model_id": m.pk}, None),
    ("attachment-delete-confirm", "GET", "viewer", lambda m: {"model_id": m.pk, "name": "model-card.pdf"}, None),
    ("attachment-upload", "POST", "editor", lambda m: {"model_id": m.pk},
     lambda: {"file": SimpleUploadedFile("drift.csv", b"day,drift\n1,0.1\n"), "description": "weekly drift"}),
    ("attachment-delete", "POST", "editor", lambda m: {"model_id": m.pk, "name": "model-card.pdf"}, lambda: {}),
]


@pytest.mark.parametrize("persona", ["anonymous", "outsider", *ROLES])
@pytest.mark.parametrize("case", CASES, ids=[f"{c[1]} {c[0]}" for c in CASES])
def test_permission_matrix(case, persona, users, model, storage_dir):
    name, method, least_role, kwargs, data = case
    client = web(users.get(persona))
    events, files = AuditEvent.objects.count(), stored_files(storage_dir)
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = client.get(url(name, **kwargs(model))) if method == "GET" else \
            client.post(url(name, **kwargs(model)), data())
    if persona == "anonymous":
        assert response.status_code == 302 and response["Location"].startswith(reverse("dashboard:login"))
    elif persona == "outsider":
        assert response.status_code == 404 and model.name not in response.content.decode()
    elif RANK[persona] < RANK[least_role]:
        assert response.status_code == 403
    elif method == "GET":
        assert response.status_code == 200
    else:
        assert response.status_code == 302, response.content.decode()[:2000]
        assert AuditEvent.objects.count() == events + 1
    if method == "POST" and response.status_code != 302 or persona == "anonymous":
        assert AuditEvent.objects.count() == events and stored_files(storage_dir) == files


def test_the_tab_lists_attachments_with_size_short_sha_uploader_and_download(users, model):
    attachment = ModelAttachment.objects.get()
    page = web(users["viewer"]).get(url("model-attachments", model_id=model.pk)).content.decode()
    assert "model-card.pdf" in page and "What it does, for whom" in page
    assert f"{attachment.sha256[:12]}…" in page and f'value="{attachment.sha256}"' in page
    assert f'title="{attachment.sha256}"' in page and 'data-copy="sha-1"' in page
    assert f"/api/v1/models/{model.pk}/attachments/model-card.pdf/file" in page
    assert "by editor" in page and "application/pdf" in page
    # A viewer gets no upload form and no delete.
    assert "/attachments/upload/" not in page and "/delete/confirm/" not in page
    editor_page = web(users["editor"]).get(url("model-attachments", model_id=model.pk)).content.decode()
    assert "/attachments/upload/" in editor_page and "/attachments/model-card.pdf/delete/confirm/" in editor_page


def test_the_empty_tab_says_how_to_attach(users, context):
    bare = services.model_create(actor=users["admin"], context=context, name="Bare")
    page = web(users["viewer"]).get(url("model-attachments", model_id=bare.pk)).content.decode()
    assert "No attachments on Bare yet." in page
    assert 'model.upload_attachment("model-card.pdf")' in page and "curl -T model-card.pdf" in page


def test_upload_without_javascript_and_its_errors_next_to_the_fields(users, model, storage_dir):
    client = web(users["editor"])
    response = client.post(url("attachment-upload", model_id=model.pk),
                           {"file": SimpleUploadedFile("drift plot.png", b"\x89PNG\r\n\x1a\n1234"), "name": ""})
    assert response.status_code == 302
    assert ModelAttachment.objects.get(name="drift plot.png").content_type == "image/png"

    taken = client.post(url("attachment-upload", model_id=model.pk),
                        {"file": SimpleUploadedFile("x.pdf", PDF), "name": "Model-Card.pdf"})
    assert taken.status_code == 409 and "overwrite" in taken.content.decode()
    with TestCase.captureOnCommitCallbacks(execute=True):  # the replaced bytes go after commit
        replaced = client.post(url("attachment-upload", model_id=model.pk),
                               {"file": SimpleUploadedFile("x.pdf", b"%PDF-1.7 v2"), "name": "model-card.pdf",
                                "overwrite": "on"})
    assert replaced.status_code == 302
    assert "was replaced" in client.get(replaced["Location"]).content.decode()

    refused = client.post(url("attachment-upload", model_id=model.pk),
                          {"file": SimpleUploadedFile("m.pkl", pickle.dumps(OrderedDict(a=1)))})
    page = refused.content.decode()
    assert refused.status_code == 400 and 'id="id_file-error"' in page and "serialized model" in page
    bad = client.post(url("attachment-upload", model_id=model.pk),
                      {"file": SimpleUploadedFile("a.txt", b"a"), "name": "../etc/passwd"})
    assert bad.status_code == 400 and 'id="id_name-error"' in bad.content.decode()
    assert ModelAttachment.objects.count() == 2 and len(stored_files(storage_dir)) == 2


def test_delete_asks_on_its_confirmation_page_then_deletes(users, model, storage_dir):
    client = web(users["editor"])
    page = client.get(url("attachment-delete-confirm", model_id=model.pk, name="model-card.pdf")).content.decode()
    assert "Delete model-card.pdf?" in page and "cannot be undone" in page
    assert f'action="{url("attachment-delete", model_id=model.pk, name="model-card.pdf")}"' in page
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = client.post(url("attachment-delete", model_id=model.pk, name="model-card.pdf"))
    assert response.status_code == 302 and not ModelAttachment.objects.exists()
    assert stored_files(storage_dir) == []


def test_the_tab_costs_the_same_queries_for_one_attachment_or_twenty(users, model, django_assert_num_queries):
    client = web(users["viewer"])
    path = url("model-attachments", model_id=model.pk)
    client.get(path)  # warm up: session, content types
    with CaptureQueriesContext(connection) as one:
        assert client.get(path).status_code == 200
    for index in range(19):
        attach(model, name=f"report-{index}.csv", body=b"a,b\n", actor=[users["admin"], users["editor"]][index % 2])
    with django_assert_num_queries(len(one)):
        page = client.get(path).content.decode()
    assert page.count('class="attachment-name"') == 20


def test_a_form_larger_than_an_attachment_may_be_is_refused_before_it_is_read(users, model, settings, storage_dir):
    settings.REGISTRY_MAX_ATTACHMENT_BYTES = 100
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    files = stored_files(storage_dir)
    response = web(users["editor"]).post(url("attachment-upload", model_id=model.pk),
                                         {"file": SimpleUploadedFile("big.csv", b"x" * 200_000)})
    assert response.status_code == 413 and "The form sends" in response.content.decode()  # unread
    assert ModelAttachment.objects.count() == 1 and stored_files(storage_dir) == files
    # A form within the envelope reaches the service, which counts the file itself.
    small = web(users["editor"]).post(url("attachment-upload", model_id=model.pk),
                                      {"file": SimpleUploadedFile("mid.csv", b"x" * 500)})
    assert small.status_code == 413 and "REGISTRY_MAX_ATTACHMENT_BYTES" in small.content.decode()
