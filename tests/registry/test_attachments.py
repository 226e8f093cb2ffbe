"""Attachments: files of a model itself (ModelBox's model-level artifacts), over the API: upload,
list, download, replace, delete; their names, limits, permissions, and the bytes they refuse."""

import gzip
import hashlib
import io
import json
import pickle
import zipfile
from collections import OrderedDict
from urllib.parse import quote

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from registry import services
from registry.errors import BodyIncomplete
from registry.models import AuditEvent, ModelAttachment, WebhookDelivery
from tests.conftest import stored_files

pytestmark = pytest.mark.django_db

CSV = b"version,auc\n1,0.91\n2,0.93\n"
PDF = b"%PDF-1.7\n" + b"0" * 2000 + b"\n%%EOF\n"


def file_url(model, name):
    return f"/api/v1/models/{model.pk}/attachments/{quote(name, safe='')}/file"


def detail_url(model, name):
    return f"/api/v1/models/{model.pk}/attachments/{quote(name, safe='')}/"


def list_url(model):
    return f"/api/v1/models/{model.pk}/attachments/"


def put(client, model, name, body: bytes, query: str = "", **extra):
    if not body and "CONTENT_LENGTH" not in extra:
        extra["CONTENT_LENGTH"] = "0"  # the test client leaves it out for an empty body
    return client.generic("PUT", file_url(model, name) + query, data=body,
                          content_type="application/octet-stream", **extra)


def body_of(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_an_attachment_is_uploaded_listed_downloaded_and_audited(clients, model, storage_dir,
                                                                  django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        r = put(clients["editor"], model, "benchmarks.csv", CSV, "?description=Offline%20benchmark",
                HTTP_X_CHECKSUM_SHA256=hashlib.sha256(CSV).hexdigest())
    assert r.status_code == 201, r.json()
    data = r.json()
    assert data["name"] == "benchmarks.csv" and data["size"] == len(CSV)
    assert data["sha256"] == hashlib.sha256(CSV).hexdigest()
    assert data["content_type"] == "text/csv" and data["description"] == "Offline benchmark"
    assert data["uploaded_by"] == "editor" and data["file_url"].endswith("/attachments/benchmarks.csv/file")
    listed = clients["viewer"].get(list_url(model)).json()
    assert [item["name"] for item in listed["results"]] == ["benchmarks.csv"] and listed["count"] == 1
    assert clients["viewer"].get(detail_url(model, "BENCHMARKS.csv")).json()["id"] == data["id"]

    got = clients["viewer"].get(file_url(model, "benchmarks.csv"))
    assert got.status_code == 200 and body_of(got) == CSV
    assert got["Content-Disposition"].startswith("attachment;") and "benchmarks.csv" in got["Content-Disposition"]
    assert got["X-Content-Type-Options"] == "nosniff"
    assert got["ETag"] == f'"{data["sha256"]}"'
    assert got["Content-Type"] == "text/csv"
    again = clients["viewer"].get(file_url(model, "benchmarks.csv"), HTTP_IF_NONE_MATCH=got["ETag"])
    assert again.status_code == 304
    part = clients["viewer"].get(file_url(model, "benchmarks.csv"), HTTP_RANGE="bytes=0-6")
    assert part.status_code == 206 and body_of(part) == CSV[:7]

    event = AuditEvent.objects.get(action="attachment.upload")
    assert event.object_type == "attachment" and "benchmarks.csv" in event.summary
    assert event.changes["sha256"] == data["sha256"]
    assert len(stored_files(storage_dir)) == 1


def test_html_is_served_as_a_download_of_octet_stream_whatever_the_client_said(clients, model):
    page = b"<html><script>alert(1)</script></html>"
    r = clients["editor"].generic("PUT", file_url(model, "report.html"), data=page, content_type="text/html")
    assert r.status_code == 201 and r.json()["content_type"] == "application/octet-stream"
    got = clients["viewer"].get(file_url(model, "report.html"))
    assert got["Content-Type"] == "application/octet-stream"
    assert got["Content-Disposition"].startswith("attachment;") and got["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("name, body, content_type", [
    ("plot.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "image/png"),
    ("plot.png", b"<svg onload=alert(1)>", "application/octet-stream"),  # the name says png, the bytes do not
    ("card.pdf", PDF, "application/pdf"),
    ("notes.txt", "grüße\n".encode(), "text/plain"),
    ("notes.txt", b"\x00\x01binary", "application/octet-stream"),
    ("drift.svg", b"<svg></svg>", "application/octet-stream"),
    ("eval.ipynb", b'{"cells": []}', "application/octet-stream"),
])
def test_the_content_type_comes_from_the_name_and_the_bytes_only(clients, model, name, body, content_type):
    r = put(clients["editor"], model, name, body)
    assert r.status_code == 201, r.json()
    assert r.json()["content_type"] == content_type


def test_an_existing_name_is_refused_without_overwrite_and_replaced_with_it(
        clients, model, storage_dir, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        first = put(clients["editor"], model, "card.pdf", PDF, "?description=v1%20card")
    refused = put(clients["editor"], model, "Card.PDF", b"%PDF-2 other")
    assert refused.status_code == 409 and refused.json()["code"] == "attachment_exists"
    assert "overwrite=1" in refused.json()["detail"]
    assert len(stored_files(storage_dir)) == 1
    with django_capture_on_commit_callbacks(execute=True):
        replaced = put(clients["editor"], model, "Card.pdf", b"%PDF-1.7 newer", "?overwrite=1")
    assert replaced.status_code == 200, replaced.json()
    data = replaced.json()
    assert data["id"] == first.json()["id"] and data["name"] == "Card.pdf"
    assert data["description"] == "v1 card"  # not given: kept
    assert data["sha256"] == hashlib.sha256(b"%PDF-1.7 newer").hexdigest()
    assert body_of(clients["viewer"].get(file_url(model, "card.pdf"))) == b"%PDF-1.7 newer"
    assert len(stored_files(storage_dir)) == 1  # the replaced bytes are gone
    assert AuditEvent.objects.filter(action="attachment.replace").count() == 1


def test_delete_removes_the_row_and_the_stored_file(clients, model, storage_dir, django_capture_on_commit_callbacks):
    put(clients["editor"], model, "card.pdf", PDF)
    with django_capture_on_commit_callbacks(execute=True):
        r = clients["editor"].delete(detail_url(model, "card.pdf"))
    assert r.status_code == 204
    assert not ModelAttachment.objects.exists() and stored_files(storage_dir) == []
    assert clients["viewer"].get(file_url(model, "card.pdf")).status_code == 404
    assert AuditEvent.objects.filter(action="attachment.delete").count() == 1
    assert clients["editor"].delete(detail_url(model, "card.pdf")).status_code == 404


def test_deleting_the_model_deletes_its_attachments_files(clients, model, storage_dir,
                                                          django_capture_on_commit_callbacks):
    put(clients["editor"], model, "card.pdf", PDF)
    with django_capture_on_commit_callbacks(execute=True):
        services.model_delete(actor=None, model=model)
    assert stored_files(storage_dir) == []


def test_the_storage_sweep_keeps_attachments(clients, model, storage_dir):
    from datetime import timedelta

    from registry.services.maintenance import storage_orphans_delete

    put(clients["editor"], model, "card.pdf", PDF)
    assert storage_orphans_delete(older_than=timedelta(seconds=-60)) == []
    assert len(stored_files(storage_dir)) == 1


@pytest.mark.parametrize("name", [
    "..", ".", ".env", "a/b.csv", "..%2Fetc%2Fpasswd", "a\\b.csv", "report.pdf.", " lead.txt", "trail.txt ",
    "tab\there.txt", "nul\x00.txt", "zero\u200bwidth.txt", "rtl\u202etxt.exe", "what?.txt", "x" * 201,
])
def test_bad_names_are_refused_and_nothing_is_stored(clients, model, storage_dir, name):
    r = clients["editor"].generic("PUT", f"/api/v1/models/{model.pk}/attachments/{quote(name, safe='%')}/file",
                                  data=CSV, content_type="application/octet-stream")
    assert r.status_code in (400, 404), r.content  # a "/" in the path is no attachment URL at all
    if r.status_code == 400:
        assert r.json()["code"] == "invalid"
        assert r.json().get("field", "name") == "name"  # a NUL anywhere in a path is refused before any view
    assert not ModelAttachment.objects.exists() and stored_files(storage_dir) == []


def test_names_may_be_unicode_and_spaced(clients, model):
    r = put(clients["editor"], model, "Modellkarte für Q3 (final).pdf", PDF)
    assert r.status_code == 201 and r.json()["name"] == "Modellkarte für Q3 (final).pdf"
    got = clients["viewer"].get(file_url(model, "Modellkarte für Q3 (final).pdf"))
    assert "filename*=utf-8''Modellkarte%20f%C3%BCr%20Q3%20%28final%29.pdf" in got["Content-Disposition"]


def test_the_size_limit_is_413_attachment_too_large_before_and_while_streaming(clients, model, settings,
                                                                              storage_dir, users):
    settings.REGISTRY_MAX_ATTACHMENT_BYTES = 100
    r = put(clients["editor"], model, "big.csv", b"x" * 101)
    assert r.status_code == 413 and r.json()["code"] == "attachment_too_large"
    assert "REGISTRY_MAX_ATTACHMENT_BYTES" in r.json()["detail"]
    from registry.errors import AttachmentTooLarge

    with pytest.raises(AttachmentTooLarge):  # no declared length: counted as it streams
        services.attachment_upload(actor=users["editor"], model=model, name="big.csv",
                                   stream=io.BytesIO(b"x" * 1000), content_length=None)
    assert not ModelAttachment.objects.exists() and stored_files(storage_dir) == []


def test_the_count_limit_is_409_too_many_attachments(clients, model, settings, storage_dir,
                                                     django_capture_on_commit_callbacks):
    settings.REGISTRY_MAX_ATTACHMENTS = 2
    assert put(clients["editor"], model, "a.txt", b"a").status_code == 201
    assert put(clients["editor"], model, "b.txt", b"b").status_code == 201
    r = put(clients["editor"], model, "c.txt", b"c")
    assert r.status_code == 409 and r.json()["code"] == "too_many_attachments"
    assert "REGISTRY_MAX_ATTACHMENTS" in r.json()["detail"]
    with django_capture_on_commit_callbacks(execute=True):
        assert put(clients["editor"], model, "b.txt", b"b2", "?overwrite=1").status_code == 200  # a replace adds none
    assert ModelAttachment.objects.count() == 2 and len(stored_files(storage_dir)) == 2


class _Torch:
    pass


def _torch_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("model/data.pkl", pickle.dumps([1, 2]))
        archive.writestr("model/version", "3")
    return buffer.getvalue()


def _report_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("report/index.html", "<html></html>")
        archive.writestr("report/drift.csv", "a,b\n1,2\n")
    return buffer.getvalue()


@pytest.mark.parametrize("name, body, said", [
    ("model.pkl", pickle.dumps(OrderedDict(a=1)), "a pickle"),
    ("innocent.csv", pickle.dumps(OrderedDict(a=1), protocol=0), "a pickle"),
    ("weights.bin", pickle.dumps({"w": [0.1] * 10}), "a pickle"),
    ("model.joblib", gzip.compress(pickle.dumps(OrderedDict(a=1))), "joblib"),
    ("model.zip", _torch_zip(), "PyTorch"),
    ("exploit.txt", b"cos\nsystem\n(S'echo hi'\ntR.", "pickle"),
])
def test_a_serialized_model_is_refused_and_nothing_is_stored(clients, model, storage_dir, name, body, said):
    r = put(clients["editor"], model, name, body)
    assert r.status_code == 400, r.json()
    assert r.json()["code"] == "serialized_model" and said in r.json()["detail"]
    assert "format of a version" in r.json()["detail"]
    assert not ModelAttachment.objects.exists() and stored_files(storage_dir) == []


def test_a_zip_of_reports_and_a_pickle_of_constants_are_plain_data(clients, model):
    assert put(clients["editor"], model, "report.zip", _report_zip()).status_code == 201
    assert put(clients["editor"], model, "none.bin", b"N.").status_code == 201


def _zip(members: dict[str, bytes], method=zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_large_zips_are_judged_by_their_central_directory(clients, model, storage_dir):
    # Megabytes of report pages: only the directory at the end is read, and it lists no model.
    pages = _zip({f"report/page{i}.html": bytes([i]) * 400_000 for i in range(8)})
    assert put(clients["editor"], model, "report-big.zip", pages).status_code == 201
    # A PyTorch zip of thousands of tensors and megabytes of data is still a PyTorch zip.
    tensors = {"model/data.pkl": pickle.dumps([1]), "model/version": b"3",
               **{f"model/data/{i}": b"\0" * 64 for i in range(3000)}, "model/data/big": b"\1" * 3_000_000}
    refused = put(clients["editor"], model, "weights.zip", _zip(tensors))
    assert refused.status_code == 400 and "PyTorch" in refused.json()["detail"]
    # A directory too large to keep: it cannot be checked, so it is refused (fail closed).
    many = _zip({f"f/{i:06d}-a-rather-long-file-name-to-fill-the-central-directory.txt": b"x"
                 for i in range(25_000)}, zipfile.ZIP_DEFLATED)
    unchecked = put(clients["editor"], model, "many.zip", many)
    assert unchecked.status_code == 400 and "too large to check" in unchecked.json()["detail"]
    assert ModelAttachment.objects.count() == 1 and len(stored_files(storage_dir)) == 1


def test_a_checksum_mismatch_stores_nothing(clients, model, storage_dir):
    r = put(clients["editor"], model, "a.csv", CSV, HTTP_X_CHECKSUM_SHA256="0" * 64)
    assert r.status_code == 400 and r.json()["code"] == "checksum_mismatch"
    assert not ModelAttachment.objects.exists() and stored_files(storage_dir) == []


class CutOff:
    """A request body that ends after `data` although more was declared."""

    def __init__(self, data: bytes):
        self._buffer = io.BytesIO(data)

    def read(self, size=-1):
        return self._buffer.read(size)


@pytest.mark.parametrize("replacing", [False, True])
def test_a_cut_off_upload_leaves_nothing_behind(users, model, storage_dir, django_capture_on_commit_callbacks,
                                                settings, replacing):
    if replacing:
        with django_capture_on_commit_callbacks(execute=True):
            services.attachment_upload(actor=users["editor"], model=model, name="a.csv", stream=io.BytesIO(CSV),
                                       content_length=len(CSV))
    before = list(ModelAttachment.objects.values())
    files = stored_files(storage_dir)
    settings.REGISTRY_STREAM_CHUNK_BYTES = 16
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(BodyIncomplete):
        services.attachment_upload(actor=users["editor"], model=model, name="a.csv", stream=CutOff(b"x" * 50),
                                   content_length=1000, overwrite=True)
    assert list(ModelAttachment.objects.values()) == before
    assert stored_files(storage_dir) == files


def test_a_connection_lost_mid_upload_leaves_nothing_behind(users, model, storage_dir):
    class Lost:
        def __init__(self):
            self.sent = 0

        def read(self, size=-1):
            if self.sent:
                raise ConnectionResetError("client went away")
            self.sent += 1
            return b"x" * 10

    with pytest.raises(ConnectionResetError):
        services.attachment_upload(actor=users["editor"], model=model, name="a.csv", stream=Lost(),
                                   content_length=1000)
    assert not ModelAttachment.objects.exists() and stored_files(storage_dir) == []


def test_put_without_content_length_is_411(clients, model):
    # The test client sends no Content-Length for an empty body.
    r = clients["editor"].generic("PUT", file_url(model, "a.csv"), data=b"", content_type="application/octet-stream")
    assert r.status_code == 411 and r.json()["code"] == "length_required"
    assert not ModelAttachment.objects.exists()
    empty = put(clients["editor"], model, "empty.txt", b"")  # an empty file, declared as such, is a file
    assert empty.status_code == 201 and empty.json()["size"] == 0


@pytest.mark.parametrize("persona, read, write", [
    ("viewer", 200, 403), ("editor", 200, 201), ("publisher", 200, 201), ("admin", 200, 201),
    ("readonly", 200, 403), ("outsider", 404, 404), ("anonymous", 401, 401),
])
def test_who_may_read_and_write(clients, model, persona, read, write):
    services_put = put(clients["editor"], model, "seed.txt", b"seed")
    assert services_put.status_code == 201
    client = clients[persona]
    assert client.get(list_url(model)).status_code == read
    assert client.get(file_url(model, "seed.txt")).status_code == read
    assert put(client, model, f"{persona}.txt", b"mine").status_code == write
    delete = client.delete(detail_url(model, "seed.txt"))
    assert delete.status_code == (204 if write == 201 else write)


def test_another_contexts_attachment_is_not_found(clients, users, other_context):
    theirs = services.model_create(actor=None, context=other_context, name="Theirs")
    assert put(clients["outsider"], theirs, "card.pdf", PDF).status_code == 201
    for persona in ("viewer", "admin"):
        assert clients[persona].get(file_url(theirs, "card.pdf")).status_code == 404
        assert clients[persona].get(list_url(theirs)).status_code == 404
        assert put(clients[persona], theirs, "mine.txt", b"x").status_code == 404
        assert clients[persona].delete(detail_url(theirs, "card.pdf")).status_code == 404
    assert ModelAttachment.objects.count() == 1


def test_a_token_limited_to_another_model_does_not_find_it(users, model, context):
    from rest_framework.test import APIClient

    other = services.model_create(actor=users["editor"], context=context, name="Other")
    _, token = services.token_create(actor=None, user=users["editor"], models=[str(other.pk)])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.get(list_url(model)).status_code == 404
    assert put(client, model, "a.txt", b"a").status_code == 404
    assert put(client, other, "a.txt", b"a").status_code == 201


def test_webhooks_hear_of_attachments(clients, model, context, users, django_capture_on_commit_callbacks):
    services.webhook_create(actor=users["admin"], context=context, url="https://hooks.example/x",
                            events=["attachment.added", "attachment.replaced", "attachment.deleted"])
    put(clients["editor"], model, "card.pdf", PDF)
    put(clients["editor"], model, "card.pdf", b"%PDF-2", "?overwrite=1")
    clients["editor"].delete(detail_url(model, "card.pdf"))
    deliveries = list(WebhookDelivery.objects.order_by("created_at", "id"))
    assert [d.event_type for d in deliveries] == ["attachment.added", "attachment.replaced", "attachment.deleted"]
    body = json.loads(deliveries[0].body)
    assert body["data"]["model"]["name"] == "Churn"
    assert body["data"]["attachment"]["name"] == "card.pdf"
    assert body["data"]["attachment"]["sha256"] == hashlib.sha256(PDF).hexdigest()


def test_the_list_costs_the_same_queries_for_one_or_many(clients, model, users):
    def count_for_list():
        with CaptureQueriesContext(connection) as queries:
            r = clients["viewer"].get(list_url(model))
        assert r.status_code == 200
        return len(queries), len(r.json()["results"])

    services.attachment_upload(actor=users["editor"], model=model, name="a.txt", stream=io.BytesIO(b"a"),
                               content_length=1)
    count_for_list()  # the token's first use is recorded once
    one, shown = count_for_list()
    assert shown == 1
    for index, user in enumerate([users["admin"], users["publisher"], users["editor"]] * 3):
        services.attachment_upload(actor=user, model=model, name=f"n{index}.txt", stream=io.BytesIO(b"n"),
                                   content_length=1)
    many, shown = count_for_list()
    assert shown == 10 and many == one
