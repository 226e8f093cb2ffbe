"""The model page and its actions, through Django's test client (SPEC §1 roles, §7).

Covers: who may see and do what on every URL of the page (anonymous, outsider, the four
roles), that viewers get no edit controls, form errors next to their fields, sanitized
Markdown, uploads without JavaScript reaching `ready`, the status poll, publish refusals,
aliases, deletes, and query counts that do not grow with versions, metrics or aliases.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import re
from dataclasses import dataclass

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client, TestCase
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from dashboard.views.model_pages import UploadedFileStream
from registry import services
from registry.models import AuditEvent, Format, FormatStatus, Model, Version, VersionStatus
from tests.helpers import PICKLE, store_file
from tests.registry.introspection.sandbox import MALICIOUS_PICKLE, artifact_members, zip_bytes

pytestmark = pytest.mark.django_db

ROLES = ["viewer", "editor", "publisher", "admin"]
RANK = {"viewer": 1, "editor": 2, "publisher": 3, "admin": 4}


def web(user=None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def html(response) -> str:
    return response.content.decode()


def url(name: str, **kwargs) -> str:
    return reverse(f"dashboard:{name}", kwargs=kwargs)


def post_processing(client, path, data, **kwargs):
    """POST, then run the work queued on commit (hashing, introspection) as a worker would."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        return client.post(path, data, **kwargs)


def field_error(page: str, field: str) -> str:
    """The error text shown under a form field (the element that follows the input)."""
    match = re.search(rf'id="id_{field}-error"[^>]*>(.*?)</div>', page, re.S)
    assert match, f"no error shown next to {field}"
    return match.group(1)


@dataclass
class World:
    model: Model
    draft: Version       # v1: a draft with a ready pkl file
    published: Version   # v2: published, alias "production" points at it


@pytest.fixture
def world(users, context) -> World:
    admin = users["admin"]
    model = services.model_create(actor=admin, context=context, name="Churn classifier", tags="tabular, fraud",
                                  task="churn prediction", description="Predicts **churn**.")
    draft = services.version_create(actor=admin, model=model, framework="scikit-learn", framework_version="1.5.2")
    store_file(draft, actor=admin)
    published = services.version_create(actor=admin, model=model, name="second")
    store_file(published, actor=admin)
    services.version_publish(actor=admin, version=published)
    services.alias_set(actor=admin, model=model, name="production", version_number=published.number)
    return World(model=model, draft=draft, published=published)


# --- the permission matrix ---------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    name: str
    method: str
    least_role: str
    kwargs: str = "model"   # which ids the URL takes: model, draft, published, draft_pkl, alias
    data: object = None     # a function of the world giving the POST body

    def path(self, w: World) -> str:
        model_id = w.model.pk
        if self.kwargs == "model":
            return url(self.name, model_id=model_id)
        if self.kwargs == "draft":
            return url(self.name, model_id=model_id, number=w.draft.number)
        if self.kwargs == "published":
            return url(self.name, model_id=model_id, number=w.published.number)
        if self.kwargs == "draft_pkl":
            return url(self.name, model_id=model_id, number=w.draft.number, kind="pkl")
        return url(self.name, model_id=model_id, alias="production")


CASES = [
    Case("model-detail", "GET", "viewer"),
    Case("model-edit", "GET", "viewer"),
    Case("model-delete", "GET", "viewer"),
    Case("version-create", "GET", "viewer"),
    Case("version-detail", "GET", "viewer", "draft"),
    Case("version-detail", "GET", "viewer", "published"),
    Case("version-edit", "GET", "viewer", "draft"),
    Case("version-delete", "GET", "viewer", "draft"),
    Case("version-formats", "GET", "viewer", "draft"),
    Case("format-status", "GET", "viewer", "draft_pkl"),
    Case("version-metrics", "GET", "viewer", "draft"),
    Case("version-manifest", "GET", "viewer", "draft"),
    Case("model-aliases", "GET", "viewer"),
    Case("model-metrics", "GET", "viewer"),
    # Confirmation pages (the dialogs' fallback without JavaScript): anyone who sees the model reads them.
    Case("version-publish-confirm", "GET", "viewer", "draft"),
    Case("format-delete-confirm", "GET", "viewer", "draft_pkl"),
    Case("format-download-confirm", "GET", "viewer", "draft_pkl"),
    Case("alias-rollback-confirm", "GET", "viewer", "alias"),
    Case("alias-delete-confirm", "GET", "viewer", "alias"),
    Case("model-edit", "POST", "editor",
         data=lambda w: {"name": "Renamed", "tags": "a, b", "task": "", "description": ""}),
    Case("version-create", "POST", "editor", data=lambda w: {"name": "third"}),
    Case("version-edit", "POST", "editor", "draft", data=lambda w: {"name": "edited", "framework": "xgboost"}),
    Case("format-upload", "POST", "editor", "draft",
         data=lambda w: {"kind": "joblib", "file": SimpleUploadedFile("m.joblib", PICKLE)}),
    Case("format-delete", "POST", "editor", "draft_pkl", data=lambda w: {}),
    Case("format-manifest-flags", "POST", "editor", "draft_pkl", data=lambda w: {"required": "on"}),
    Case("version-publish", "POST", "publisher", "draft", data=lambda w: {}),
    Case("alias-set", "POST", "publisher", data=lambda w: {"alias": "staging", "version": w.published.number}),
    Case("alias-rollback", "POST", "publisher", "alias", data=lambda w: {}),
    Case("alias-delete", "POST", "publisher", "alias", data=lambda w: {}),
    Case("version-delete", "POST", "admin", "draft", data=lambda w: {}),
    Case("model-delete", "POST", "admin", data=lambda w: {"confirm_name": w.model.name}),
]


def case_id(case: Case) -> str:
    return f"{case.method} {case.name} ({case.kwargs})"


@pytest.mark.parametrize("persona", ["anonymous", "outsider", *ROLES])
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_permission_matrix(case, persona, users, world):
    path = case.path(world)
    client = web(users.get(persona))
    events_before = AuditEvent.objects.count()
    with TestCase.captureOnCommitCallbacks(execute=True):
        if case.method == "GET":
            response = client.get(path)
        else:
            response = client.post(path, case.data(world))
    if persona == "anonymous":
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("dashboard:login"))
    elif persona == "outsider":
        assert response.status_code == 404
        assert world.model.name not in html(response)
    elif RANK[persona] < RANK[case.least_role]:
        assert response.status_code == 403
    elif case.method == "GET":
        assert response.status_code == 200
    else:
        assert response.status_code == 302, html(response)[:3000]
    if case.method == "POST" and response.status_code != 302 or persona == "anonymous":
        assert AuditEvent.objects.count() == events_before  # a refused request changes nothing


PAGES_FOR_EVERYONE = [
    ("model-detail", "model"), ("version-detail", "draft"), ("version-formats", "draft"),
    ("version-metrics", "draft"), ("model-aliases", "model"), ("model-metrics", "model"), ("version-edit", "draft"),
    ("version-create", "model"), ("model-delete", "model"), ("version-delete", "draft"), ("model-edit", "model"),
]
WRITE_MARKERS = {
    "editor": ["/edit/", "/formats/upload/", "/formats/pkl/delete/", "data-upload-url", "/versions/new/"],
    "publisher": ["/publish/", "/aliases/set/", "/aliases/production/rollback/", "/aliases/production/delete/"],
    "admin": ["/delete/\"", "Delete this model", "Delete version…", 'class="danger"', 'class="button danger"'],
}


@pytest.mark.parametrize("name,kwargs", PAGES_FOR_EVERYONE)
def test_viewer_sees_no_edit_controls(name, kwargs, users, world):
    page = html(web(users["viewer"]).get(Case(name, "GET", "viewer", kwargs).path(world)))
    for marker in [*WRITE_MARKERS["editor"], *WRITE_MARKERS["publisher"], *WRITE_MARKERS["admin"]]:
        assert marker not in page, marker
    assert 'method="post" action="/models/' not in page


def test_each_role_sees_the_controls_it_may_use(users, world):
    draft = url("version-detail", model_id=world.model.pk, number=world.draft.number)
    editor = html(web(users["editor"]).get(draft))
    assert url("version-edit", model_id=world.model.pk, number=1) in editor
    assert url("model-edit", model_id=world.model.pk) in editor
    assert "/publish/" not in editor and "Delete version" not in editor
    publisher = html(web(users["publisher"]).get(draft))
    assert url("version-publish", model_id=world.model.pk, number=1) in publisher
    assert "Delete version" not in publisher and "Danger zone" not in publisher
    admin = html(web(users["admin"]).get(draft))
    assert url("version-delete", model_id=world.model.pk, number=1) in admin
    assert url("model-delete", model_id=world.model.pk) in admin
    assert "irreversible" in admin
    aliases = html(web(users["publisher"]).get(url("model-aliases", model_id=world.model.pk)))
    assert url("alias-set", model_id=world.model.pk) in aliases
    assert "/aliases/set/" not in html(web(users["editor"]).get(url("model-aliases", model_id=world.model.pk)))


def test_unknown_version_and_malformed_model_id_are_404(users, world):
    client = web(users["admin"])
    assert client.get(url("version-detail", model_id=world.model.pk, number=99)).status_code == 404
    assert client.get(url("model-detail", model_id="not-a-uuid")).status_code == 404
    assert client.get(url("format-status", model_id=world.model.pk, number=1, kind="onnx")).status_code == 404


# --- general section, versions drop-down, details ---------------------------------------------------------

def test_general_section_shows_the_model(users, world):
    page = html(web(users["viewer"]).get(url("model-detail", model_id=world.model.pk)))
    assert str(world.model.pk) in page
    assert "<strong>churn</strong>" in page          # the description, rendered
    assert 'class="chip"' in page and ">tabular<" in page and ">fraud<" in page
    assert "churn prediction" in page
    assert "by admin" in page                        # created/modified by
    assert "production → v2" in page


def test_model_page_defaults_to_the_latest_version_and_lists_all_in_the_drop_down(users, world):
    services.version_create(actor=users["admin"], model=world.model, name="third")
    page = html(web(users["viewer"]).get(url("model-detail", model_id=world.model.pk)))
    assert "<summary>Version 3 · third</summary>" in page
    for number in (1, 2, 3):
        assert url("version-detail", model_id=world.model.pk, number=number) in page
    # On another tab the drop-down keeps the tab.
    page = html(web(users["viewer"]).get(url("version-metrics", model_id=world.model.pk, number=1)))
    assert url("version-metrics", model_id=world.model.pk, number=3) in page


def test_details_tab_shows_every_field(users, world, context):
    admin = users["admin"]
    record = services.record_create(actor=admin, context=context, name="customers-2024", uri="s3://data/c.parquet")
    version = services.version_create(
        actor=admin, model=world.model, name="full", description="Trained on *Q3*.", tags="gpu, baseline",
        hyperparameters={"max_depth": 6, "lr": 0.1}, config={"threshold": 0.42},
        metadata={"provenance": {"repository": "git@x:churn.git", "commit": "abc123"}},
        framework="xgboost", framework_version="2.0.3", records=[str(record.pk)],
        signature={"inputs": [{"name": "age", "dtype": "int64", "shape": [-1, 1]}],
                   "outputs": [{"name": "churn", "dtype": "float32", "shape": [-1]}]},
    )
    page = html(web(users["viewer"]).get(url("version-detail", model_id=world.model.pk, number=version.number)))
    assert "<em>Q3</em>" in page
    assert "xgboost:2.0.3" in page
    assert ">gpu<" in page and ">baseline<" in page
    assert "max_depth" in page and "<code>6</code>" in page
    assert "&quot;threshold&quot;: 0.42" in page
    assert "&quot;commit&quot;: &quot;abc123&quot;" in page and '\n  "provenance"' not in page  # escaped, indented
    assert "customers-2024" in page and "s3://data/c.parquet" in page
    assert "<code>age</code>" in page and "int64" in page and "[any, 1]" in page and "<code>churn</code>" in page


def test_empty_state_says_what_to_do_next(users, context):
    model = services.model_create(actor=users["admin"], context=context, name="Empty")
    editor = html(web(users["editor"]).get(url("model-detail", model_id=model.pk)))
    assert "has no versions yet" in editor
    assert url("version-create", model_id=model.pk) in editor
    assert f"/api/v1/models/{model.pk}/versions/" in editor
    viewer = html(web(users["viewer"]).get(url("model-detail", model_id=model.pk)))
    assert "Versions appear here when an editor creates them" in viewer
    assert "/versions/new/" not in viewer
    assert web(users["editor"]).get(url("version-formats", model_id=model.pk, number=1)).status_code == 404


def test_empty_tabs_explain_how_to_fill_them(users, context):
    admin = users["admin"]
    model = services.model_create(actor=admin, context=context, name="Fresh")
    services.version_create(actor=admin, model=model)
    client = web(users["editor"])
    assert "has no files yet" in html(client.get(url("version-formats", model_id=model.pk, number=1)))
    assert "No metrics on version 1 yet" in html(client.get(url("version-metrics", model_id=model.pk, number=1)))
    assert "Publish a version first" in html(client.get(url("model-aliases", model_id=model.pk)))


# --- Markdown ----------------------------------------------------------------------------------------------

EVIL = (
    "Hello <script>alert('xss')</script>\n\n"
    "<img src=x onerror=\"alert(1)\">\n\n"
    "[click](javascript:alert(2)) [data](data:text/html;base64,PHNjcmlwdD4=)\n\n"
    '<a href="#" onclick="alert(3)" style="color:red">styled</a>'
)


def markdown_blocks(page: str) -> str:
    return "".join(re.findall(r'<div class="markdown">(.*?)</div>', page, re.S))


def test_markdown_descriptions_are_sanitized(users, world):
    services.model_update(actor=users["admin"], model=world.model, description=EVIL)
    services.version_update(actor=users["admin"], version=world.draft, description=EVIL)
    for user in ("viewer", "editor"):
        page = html(web(users[user]).get(url("version-detail", model_id=world.model.pk, number=1)))
        assert "<script" not in page.split("<body", 1)[1].replace('<script src="', "")
        rendered = markdown_blocks(page)
        assert rendered.count("Hello") == 2
        for bad in ("<script", "onerror", "onclick", "javascript:", "data:text", "style="):
            assert bad not in rendered, bad
    # In the edit dialog the raw text is shown as text, never as markup.
    editor = html(web(users["editor"]).get(url("model-detail", model_id=world.model.pk)))
    assert "&lt;script&gt;alert(&#x27;xss&#x27;)&lt;/script&gt;" in editor


# --- editing the model ----------------------------------------------------------------------------------------

def test_edit_model(users, world):
    response = web(users["editor"]).post(url("model-edit", model_id=world.model.pk), {
        "name": "Churn v2", "tags": "tabular, new, tabular", "task": "retention", "description": "# New"})
    assert response.status_code == 302
    world.model.refresh_from_db()
    assert world.model.name == "Churn v2" and world.model.task == "retention"
    assert sorted(t.name for t in world.model.tags.all()) == ["new", "tabular"]
    assert AuditEvent.objects.filter(action="model.update").exists()


def test_edit_model_errors_are_shown_next_to_the_field(users, world, context):
    services.model_create(actor=users["admin"], context=context, name="Taken")
    client = web(users["editor"])
    response = client.post(url("model-edit", model_id=world.model.pk), {"name": " taken ", "tags": ""})
    assert response.status_code == 400
    assert "already exists" in field_error(html(response), "name")
    response = client.post(url("model-edit", model_id=world.model.pk), {"name": "ok", "tags": "x" * 40})
    assert "too long" in field_error(html(response), "tags")
    world.model.refresh_from_db()
    assert world.model.name == "Churn classifier"


# --- new version and version edit ----------------------------------------------------------------------------

def test_new_version_with_every_setting_and_a_first_file(users, world, context):
    record = services.record_create(actor=users["admin"], context=context, name="events", uri="s3://e")
    client = web(users["editor"])
    page = html(client.get(url("version-create", model_id=world.model.pk)))
    assert 'enctype="multipart/form-data"' in page and "events" in page and 'name="signature"' in page
    response = post_processing(client, url("version-create", model_id=world.model.pk), {
        "name": "big", "description": "notes", "tags": "gpu", "framework": "pytorch", "framework_version": "2.3",
        "hyperparameters": '{"epochs": 3}', "config": '{"batch": 8}', "metadata": '{"taxonomy": {"use_case": "x"}}',
        "records": [str(record.pk)],
        "signature": '{"inputs": [{"name": "x", "dtype": "float32", "shape": [-1, 3]}], "outputs": []}',
        "kind": "pkl", "file": SimpleUploadedFile("weights.pkl", PICKLE),
    })
    assert response.status_code == 302
    version = Version.objects.get(model=world.model, number=3)
    assert response["Location"] == url("version-formats", model_id=world.model.pk, number=3)
    assert version.hyperparameters == {"epochs": 3} and version.config == {"batch": 8}
    assert version.model_type == "pytorch:2.3" and version.signature_source == "client"
    assert [r.name for r in version.records.all()] == ["events"]
    fmt = version.formats.get()
    assert (fmt.kind, fmt.status, fmt.original_filename) == ("pkl", FormatStatus.READY, "weights.pkl")
    page = html(client.get(response["Location"]))
    assert "created; its pkl file is being checked" in page and fmt.sha256 in page


def test_new_version_without_a_file_goes_to_its_details(users, world):
    response = web(users["editor"]).post(url("version-create", model_id=world.model.pk), {"name": "bare"})
    assert response["Location"] == url("version-detail", model_id=world.model.pk, number=3)


@pytest.mark.parametrize("field,value,message", [
    ("hyperparameters", '{"epochs": 3,}', "not valid JSON"),
    ("config", "[1, 2]", "JSON object"),
    ("metadata", '"text"', "JSON object"),
    ("signature", '{"inputs": [{"name": "x", "dtype": "float128", "shape": []}]}', "dtype"),
    ("tags", "y" * 33, "too long"),
])
def test_new_version_errors_are_shown_next_to_the_field(users, world, field, value, message):
    response = web(users["editor"]).post(url("version-create", model_id=world.model.pk), {field: value})
    assert response.status_code == 400
    page = html(response)
    assert message in field_error(page, field)
    if field != "tags":
        assert value.replace('"', "&quot;") in page  # what was typed is kept
    assert not Version.objects.filter(model=world.model, number=3).exists()


def test_new_version_file_without_kind(users, world):
    response = web(users["editor"]).post(url("version-create", model_id=world.model.pk),
                                         {"file": SimpleUploadedFile("m.bin", b"x")})
    assert response.status_code == 400
    assert "Choose the kind" in field_error(html(response), "kind")


def test_new_version_limit_is_shown(users, world, settings):
    settings.REGISTRY_MAX_VERSIONS = 2
    response = web(users["editor"]).post(url("version-create", model_id=world.model.pk), {"name": "over"})
    assert response.status_code == 400
    assert "the most allowed" in html(response)


def test_edit_a_draft_version_keeps_what_was_not_touched(users, world):
    draft = world.draft
    Version.objects.filter(pk=draft.pk).update(
        signature={"inputs": [{"name": "x", "dtype": "float32", "shape": [-1]}], "outputs": []},
        signature_source="introspection")
    client = web(users["editor"])
    page = html(client.get(url("version-edit", model_id=world.model.pk, number=1)))
    assert 'value="scikit-learn"' in page and "&quot;dtype&quot;: &quot;float32&quot;" in page
    form = {"name": "renamed", "framework": "scikit-learn", "framework_version": "1.5.2",
            "signature": '{"inputs": [{"name": "x", "dtype": "float32", "shape": [-1]}], "outputs": []}',
            "description": "line one\r\nline two"}
    response = client.post(url("version-edit", model_id=world.model.pk, number=1), form)
    assert response.status_code == 302
    draft.refresh_from_db()
    assert draft.name == "renamed" and draft.description == "line one\nline two"
    assert draft.signature_source == "introspection"


def test_edit_a_published_version_is_refused_with_a_message(users, world):
    client = web(users["editor"])
    page = html(client.get(url("version-edit", model_id=world.model.pk, number=2)))
    assert "is published" in page and "<form method=\"post\" action=\"/models/" not in page.split("edit-title")[1]
    response = client.post(url("version-edit", model_id=world.model.pk, number=2), {"name": "sneaky"})
    assert response.status_code == 400
    assert "can no longer change" in html(response)
    world.published.refresh_from_db()
    assert world.published.name == "second"


# --- formats ---------------------------------------------------------------------------------------------------

def test_upload_without_javascript_reaches_ready(users, world):
    client = web(users["editor"])
    formats_url = url("version-formats", model_id=world.model.pk, number=1)
    page = html(client.get(formats_url))
    assert 'data-upload-url="/api/v1/models/%s/versions/1/formats/__kind__/file"' % world.model.pk in page
    assert f'action="{url("format-upload", model_id=world.model.pk, number=1)}"' in page
    body = pickle.dumps({"weights": list(range(1000))}, protocol=4)
    response = post_processing(client, url("format-upload", model_id=world.model.pk, number=1),
                               {"kind": "joblib", "file": SimpleUploadedFile("model.joblib", body)})
    assert response.status_code == 302 and response["Location"] == formats_url
    fmt = Format.objects.get(version=world.draft, kind="joblib")
    assert fmt.status == FormatStatus.READY and fmt.original_filename == "model.joblib"
    assert fmt.sha256 == hashlib.sha256(body).hexdigest() and fmt.md5 == hashlib.md5(body).hexdigest()  # noqa: S324
    page = html(client.get(formats_url))
    assert fmt.sha256 in page and fmt.md5 in page and "badge-ok" in page
    assert f"/api/v1/models/{world.model.pk}/versions/1/formats/joblib/file" in page  # download link


def test_large_upload_streams_from_a_temporary_file(users, world):
    body = pickle.dumps(b"\x00" * (3 * 1024 * 1024), protocol=4)  # above the in-memory upload limit
    response = post_processing(web(users["editor"]), url("format-upload", model_id=world.model.pk, number=1),
                               {"kind": "pt", "file": SimpleUploadedFile("big.pt", body)})
    assert response.status_code == 302
    fmt = Format.objects.get(version=world.draft, kind="pt")
    assert fmt.size == len(body) and fmt.sha256 == hashlib.sha256(body).hexdigest()


def test_uploaded_file_stream_reads_in_pieces():
    uploaded = SimpleUploadedFile("x", bytes(range(256)) * 1000)
    uploaded.DEFAULT_CHUNK_SIZE = 1000
    stream = UploadedFileStream(uploaded)
    pieces = [stream.read(4096), stream.read(100), stream.read(-1), stream.read(10)]
    assert [len(p) for p in pieces] == [4096, 100, 256_000 - 4196, 0]
    assert b"".join(pieces) == bytes(range(256)) * 1000


def test_replace_a_file(users, world):
    old_sha = Format.objects.get(version=world.draft, kind="pkl").sha256
    body = pickle.dumps([1, 2, 3], protocol=4)
    post_processing(web(users["editor"]), url("format-upload", model_id=world.model.pk, number=1),
                    {"kind": "pkl", "file": SimpleUploadedFile("new.pkl", body)})
    fmt = Format.objects.get(version=world.draft, kind="pkl")
    assert fmt.sha256 != old_sha and fmt.sha256 == hashlib.sha256(body).hexdigest()


def test_upload_errors_are_shown_next_to_the_field(users, world, settings):
    client = web(users["editor"])
    upload = url("format-upload", model_id=world.model.pk, number=1)
    response = client.post(upload, {"kind": "joblib"})
    assert response.status_code == 400
    assert "required" in field_error(html(response), "file")
    response = client.post(upload, {"kind": "zip", "file": SimpleUploadedFile("m", b"x")})
    assert "valid choice" in field_error(html(response), "kind")
    settings.REGISTRY_MAX_UPLOAD_BYTES = 10
    response = client.post(upload, {"kind": "joblib", "file": SimpleUploadedFile("m", b"x" * 11)})
    assert response.status_code == 400 and "the limit is 10 bytes" in html(response)
    response = client.post(url("format-upload", model_id=world.model.pk, number=2),
                           {"kind": "joblib", "file": SimpleUploadedFile("m", b"x")})
    assert response.status_code == 400 and "can no longer change" in html(response)
    assert not Format.objects.filter(kind="joblib").exists()


def test_status_is_polled_until_final(users, world):
    client = web(users["editor"])
    with TestCase.captureOnCommitCallbacks(execute=False) as queued:
        client.post(url("format-upload", model_id=world.model.pk, number=1),
                    {"kind": "joblib", "file": SimpleUploadedFile("m.joblib", PICKLE)})
    status_url = url("format-status", model_id=world.model.pk, number=1, kind="joblib")
    formats = html(client.get(url("version-formats", model_id=world.model.pk, number=1)))
    assert f'hx-get="{status_url}" hx-trigger="every 2s" hx-swap="outerHTML"' in formats
    assert f'hx-get="{url("format-status", model_id=world.model.pk, number=1, kind="pkl")}"' not in formats
    partial = html(client.get(status_url))
    assert "<html" not in partial and 'hx-trigger="every 2s"' in partial and ">uploaded<" in partial
    for callback in queued:
        callback()  # the worker runs
    partial = html(client.get(status_url))
    assert "hx-trigger" not in partial and ">ready<" in partial
    assert Format.objects.get(version=world.draft, kind="joblib").sha256 in partial


def test_pickle_report_lists_globals_with_verdicts(users, world):
    admin = users["admin"]
    version = services.version_create(actor=admin, model=world.model)
    store_file(version, "pkl", MALICIOUS_PICKLE, actor=admin)
    store_file(version, "joblib", pickle.dumps(io.BytesIO(b"abc"), protocol=4), actor=admin)
    page = html(web(users["viewer"]).get(url("version-formats", model_id=world.model.pk, number=version.number)))
    assert ">quarantined<" in page
    assert "<code>os</code>" in page and "<code>system</code>" in page and "badge-bad\">dangerous<" in page
    assert "<code>_io</code>" in page or "<code>io</code>" in page
    assert "Imported globals" in page


def test_artifact_report_lists_its_checks(users, world):
    admin = users["admin"]
    version = services.version_create(actor=admin, model=world.model)
    store_file(version, "artifact", zip_bytes(artifact_members()), actor=admin)
    page = html(web(users["viewer"]).get(url("version-formats", model_id=world.model.pk, number=version.number)))
    assert "<th>Check</th><th>Category</th><th>Description</th><th>Result</th><th>Message</th>" in page
    assert "<code>runtime_yaml_present</code>" in page and "badge-ok\">passed<" in page
    assert "Signature found in the file" in page
    assert "All details (JSON)" in page


def test_delete_a_format(users, world):
    response = web(users["editor"]).post(url("format-delete", model_id=world.model.pk, number=1, kind="pkl"))
    assert response.status_code == 302
    assert not Format.objects.filter(version=world.draft).exists()
    response = web(users["editor"]).post(url("format-delete", model_id=world.model.pk, number=2, kind="pkl"),
                                         follow=True)
    assert "can no longer change" in html(response)
    assert Format.objects.filter(version=world.published).exists()


# --- the manifest --------------------------------------------------------------------------------------------------

def test_manifest_flags_are_edited_on_the_formats_tab(users, world):
    formats_url = url("version-formats", model_id=world.model.pk, number=1)
    page = html(web(users["editor"]).get(formats_url))
    assert 'name="required" checked' in page and 'name="fail_on_tamper" checked' in page

    response = web(users["editor"]).post(
        url("format-manifest-flags", model_id=world.model.pk, number=1, kind="pkl"), {"fail_on_tamper": "on"},
        follow=True,
    )

    fmt = Format.objects.get(version=world.draft, kind="pkl")
    assert (fmt.required, fmt.fail_on_tamper) == (False, True)
    assert "place in the manifest was saved" in html(response)
    assert AuditEvent.objects.filter(action="format.update", object_id=str(fmt.pk)).exists()
    # A published version shows its manifest flags but no longer offers to change them.
    published_page = html(web(users["editor"]).get(url("version-formats", model_id=world.model.pk, number=2)))
    assert "In the manifest: required, fails on tamper." in published_page
    assert 'name="required"' not in published_page


def test_manifest_downloads(users, world):
    client = web(users["viewer"])
    plain = client.get(url("version-manifest", model_id=world.model.pk, number=2))
    frozen = client.get(url("version-manifest", model_id=world.model.pk, number=2) + "?frozen=1")

    assert plain["Content-Disposition"] == 'attachment; filename="churn-classifier-v2-manifest.json"'
    assert plain.json()["required_files"][0]["source_uri"] == f"registry://acme/{world.model.pk}/versions/2/formats/pkl"
    assert frozen["Content-Disposition"] == 'attachment; filename="churn-classifier-v2-manifest-frozen.json"'
    assert frozen.json()["required_files"][0]["sha256_checksum"] == hashlib.sha256(PICKLE).hexdigest()
    assert len(frozen.json()["lock_checksum"]) == 32


def test_frozen_manifest_of_an_unready_version_explains_why(users, world):
    Format.objects.filter(version=world.draft).update(status=FormatStatus.HASHING)

    response = web(users["viewer"]).get(
        url("version-manifest", model_id=world.model.pk, number=1) + "?frozen=1", follow=True
    )

    assert response.redirect_chain[-1][0] == url("version-formats", model_id=world.model.pk, number=1)
    assert "still being checked: pkl (hashing) (try again once the workers are done)" in html(response)


# --- publish -------------------------------------------------------------------------------------------------------

def test_publish(users, world):
    response = web(users["publisher"]).post(url("version-publish", model_id=world.model.pk, number=1), follow=True)
    world.draft.refresh_from_db()
    assert world.draft.status == VersionStatus.PUBLISHED
    assert "Version 1 is published" in html(response)


def test_publish_refused_shows_the_gate_message(users, world):
    admin = users["admin"]
    empty = services.version_create(actor=admin, model=world.model)
    client = web(users["publisher"])
    response = client.post(url("version-publish", model_id=world.model.pk, number=empty.number), follow=True)
    assert "was not published" in html(response) and "has no format yet; upload a file first" in html(response)
    with TestCase.captureOnCommitCallbacks(execute=False):
        services.format_upload(actor=admin, version=empty, kind="pkl", stream=io.BytesIO(PICKLE),
                               content_length=len(PICKLE))
    response = client.post(url("version-publish", model_id=world.model.pk, number=empty.number), follow=True)
    assert "is uploaded and still being checked" in html(response)
    empty.refresh_from_db()
    assert empty.status == VersionStatus.DRAFT


# --- metrics ------------------------------------------------------------------------------------------------------

def test_metrics_tab_draws_a_chart_per_key_and_a_table(users, world):
    services.metrics_log(actor=users["editor"], version=world.draft, metrics=[
        {"key": "loss", "value": 0.9, "step": 1}, {"key": "loss", "value": 0.5, "step": 2},
        {"key": "loss", "value": 0.3, "step": 3}, {"key": "auc", "value": 0.91},
        {"key": "<script>x</script>", "value": 1, "step": 0}, {"key": "note", "value": "looks good"},
    ])
    page = html(web(users["viewer"]).get(url("version-metrics", model_id=world.model.pk, number=1)))
    assert page.count('<svg class="chart"') == 3  # loss, auc, the odd key; text-only "note" has none
    assert "<polyline points=" in page and "<title>step 3: 0.3</title>" in page
    assert "<script>x</script>" not in page and "&lt;script&gt;x&lt;/script&gt;" in page
    assert "looks good" in page and "Text values only" in page
    assert page.count("<tr><td>loss</td>") == 3


def test_chart_of_a_flat_series_and_a_single_point():
    from dashboard.charts import line_chart

    assert "<circle" in line_chart([(1, 5.0)], title="one")
    flat = line_chart([(1, 2.0), (2, 2.0)], title="flat")
    assert "NaN" not in flat and flat.count("<circle") == 2
    assert line_chart([], title="none") == ""
    assert "&lt;b&gt;" in line_chart([(0, 1)], title="<b>")


# --- aliases ---------------------------------------------------------------------------------------------------------

def test_set_move_roll_back_and_delete_an_alias(users, world):
    admin = users["admin"]
    third = services.version_create(actor=admin, model=world.model)
    store_file(third, actor=admin)
    services.version_publish(actor=admin, version=third)
    client = web(users["publisher"])
    aliases_url = url("model-aliases", model_id=world.model.pk)
    page = html(client.get(aliases_url))
    assert '<option value="3"' in page and '<option value="2"' in page and '<option value="1"' not in page
    response = client.post(url("alias-set", model_id=world.model.pk), {"alias": "production", "version": 3})
    assert response.status_code == 302
    assert world.model.aliases.get(name="production").version.number == 3
    page = html(client.post(url("alias-rollback", model_id=world.model.pk, alias="production"), follow=True))
    assert "rolled back to version 2" in page
    assert "v3 → v2" in page and "v2 → v3" in page and "set to v2" in page  # the history
    page = html(client.post(url("alias-delete", model_id=world.model.pk, alias="production"), follow=True))
    assert "was removed" in page and "removed (was v2)" in page
    assert not world.model.aliases.exists()


def test_alias_errors_are_shown_next_to_the_field(users, world):
    client = web(users["publisher"])
    response = client.post(url("alias-set", model_id=world.model.pk), {"alias": "bad name!", "version": 2})
    assert response.status_code == 400
    assert "letters, digits" in field_error(html(response), "alias")
    response = client.post(url("alias-set", model_id=world.model.pk), {"alias": "staging", "version": 1})
    assert "valid choice" in field_error(html(response), "version")  # a draft is not offered
    page = html(client.post(url("alias-rollback", model_id=world.model.pk, alias="production"), follow=True))
    assert "no earlier version to roll back to" in page


# --- deleting ---------------------------------------------------------------------------------------------------------

def test_delete_a_version_after_confirming(users, world, storage_dir):
    client = web(users["admin"])
    page = html(client.get(url("version-delete", model_id=world.model.pk, number=1)))
    assert "irreversible" in page and "(pkl)" in page
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = client.post(url("version-delete", model_id=world.model.pk, number=1))
    assert response["Location"] == url("model-detail", model_id=world.model.pk)
    assert not Version.objects.filter(pk=world.draft.pk).exists()
    page = html(client.get(response["Location"]))
    assert "Version 1 and its files were deleted" in page


def test_a_version_with_an_alias_cannot_be_deleted(users, world):
    response = web(users["admin"]).post(url("version-delete", model_id=world.model.pk, number=2))
    assert response.status_code == 409
    assert "Alias &#x27;production&#x27; points to version 2" in html(response)
    assert Version.objects.filter(pk=world.published.pk).exists()


def test_delete_model_requires_the_exact_name(users, world):
    client = web(users["admin"])
    page = html(client.get(url("model-delete", model_id=world.model.pk)))
    assert "irreversible" in page and f"<code>{world.model.name}</code>" in page
    for typed in ("churn classifier", "Churn", ""):
        response = client.post(url("model-delete", model_id=world.model.pk), {"confirm_name": typed})
        assert response.status_code == 400
        assert field_error(html(response), "confirm_name")
    assert Model.objects.filter(pk=world.model.pk).exists()
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = client.post(url("model-delete", model_id=world.model.pk), {"confirm_name": "Churn classifier"})
    assert response["Location"] == url("model-list", ctx="acme")
    assert not Model.objects.filter(pk=world.model.pk).exists()
    assert "were deleted" in html(client.get(response["Location"]))


# --- query counts ----------------------------------------------------------------------------------------------------

def build_model(admin, context, name: str, count: int) -> Model:
    """A model with `count` published versions, one alias each, `count` metric keys and a few files."""
    model = services.model_create(actor=admin, context=context, name=name, tags="a, b")
    for _ in range(count):
        services.version_create(actor=admin, model=model, tags="x, y", hyperparameters={"k": 1})
    first = model.versions.get(number=1)
    store_file(first, actor=admin)
    Version.objects.filter(model=model).update(status=VersionStatus.PUBLISHED, published_at=timezone.now())
    for version in model.versions.all():
        services.alias_set(actor=admin, model=model, name=f"alias-{version.number}", version_number=version.number)
    latest = model.versions.get(number=count)
    services.metrics_log(actor=admin, version=latest, metrics=[
        {"key": f"m{i}", "value": float(step), "step": step} for i in range(count) for step in range(3)])
    services.metrics_log(actor=admin, version=first, metrics=[{"key": "m", "value": 1.0}])
    for version in model.versions.all():  # charted across versions on the Model metrics tab
        services.metrics_log(actor=admin, version=version, metrics=[
            {"key": "acc", "value": 0.5 + version.number / 100, "step": step} for step in range(2)])
    services.model_metrics_log(actor=admin, model=model, metrics=[
        {"key": f"drift{i}", "value": float(step), "step": step} for i in range(count) for step in range(3)])
    return model


PAGES_COUNTED = [
    ("model-detail", lambda m, n: {"model_id": m.pk}),
    ("version-detail", lambda m, n: {"model_id": m.pk, "number": 1}),
    ("version-formats", lambda m, n: {"model_id": m.pk, "number": 1}),
    ("format-status", lambda m, n: {"model_id": m.pk, "number": 1, "kind": "pkl"}),
    ("version-metrics", lambda m, n: {"model_id": m.pk, "number": n}),
    ("model-aliases", lambda m, n: {"model_id": m.pk}),
    ("model-metrics", lambda m, n: {"model_id": m.pk}),
    ("version-create", lambda m, n: {"model_id": m.pk}),
    ("version-edit", lambda m, n: {"model_id": m.pk, "number": 1}),
    ("version-delete", lambda m, n: {"model_id": m.pk, "number": 1}),
    ("compare", lambda m, n: {"model_id": m.pk}),
]


@pytest.mark.parametrize("name,kwargs", PAGES_COUNTED, ids=[name for name, _ in PAGES_COUNTED])
def test_query_count_does_not_grow_with_versions_metrics_or_aliases(name, kwargs, users, context,
                                                                     django_assert_num_queries):
    small = build_model(users["admin"], context, "small", 3)
    large = build_model(users["admin"], context, "large", 20)
    client = web(users["viewer"])
    client.get(url("model-detail", model_id=small.pk))  # warm up: session, content types
    with CaptureQueriesContext(connection) as small_queries:
        assert client.get(url(name, **kwargs(small, 3))).status_code == 200
    with django_assert_num_queries(len(small_queries)):
        response = client.get(url(name, **kwargs(large, 20)))
    assert response.status_code == 200
    if name == "model-detail":
        assert html(response).count('<li><a href="/models/') == 20  # every version is in the drop-down
    if name == "model-metrics":
        page = html(response)
        assert page.count('<figure class="card chart-card">') == 20  # one chart per model metric key
        assert page.count('data-label="Version"><a href=') == 20  # acc in each of the 20 versions


def test_model_list_page_query_count_does_not_grow_with_models(users, context, django_assert_num_queries):
    """The model list reads a page of models with their tags and versions in one statement."""
    def add(total):
        while Model.objects.filter(context=context).count() < total:
            n = Model.objects.count()
            model = services.model_create(actor=users["editor"], context=context, name=f"model-{n}",
                                          tags=[f"t{n}", "shared"])
            services.version_create(actor=None, model=model, tags=["v"])

    client = web(users["viewer"])
    add(3)
    client.get(url("model-list", ctx="acme"))  # warm up: session, content types
    with CaptureQueriesContext(connection) as small:
        assert client.get(url("model-list", ctx="acme")).status_code == 200
    add(25)
    with django_assert_num_queries(len(small)):
        response = client.get(url("model-list", ctx="acme") + "?sort=-versions")
    assert response.status_code == 200
    assert html(response).count('<td class="tags">') == 25 and "shared" in html(response)
