"""API authentication (tokens, sessions with CSRF), the operator commands, and the OpenAPI schema and docs."""

import hashlib
import io
import re
from datetime import timedelta

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import models as db_models
from django.test import Client
from django.urls import URLPattern
from django.utils import timezone
from rest_framework.test import APIClient

from registry import services
from registry.api import urls as api_urls
from registry.models import ApiToken, AuditEvent, Context, Membership, Model

from tests.helpers import upload
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


# --- tokens ---------------------------------------------------------------------------------

def test_tokens_are_stored_hashed(users):
    token, plain = services.token_create(actor=None, user=users["viewer"], name="ci")
    token.refresh_from_db()
    assert token.key_hash == hashlib.sha256(plain.encode()).hexdigest()
    assert token.prefix and len(token.prefix) < len(plain) and plain.startswith(token.prefix)
    # The plain token is in no text column of any table.
    for model in apps.get_models():
        for field in model._meta.concrete_fields:
            if isinstance(field, (db_models.CharField, db_models.TextField)):
                assert not model._default_manager.filter(**{f"{field.name}__contains": plain}).exists(), (
                    f"{model.__name__}.{field.name} holds the plain token")
    assert bearer(plain).get("/api/v1/contexts/").status_code == 200


def test_tokens_are_distinct(users):
    plains = {services.token_create(actor=None, user=users["viewer"])[1] for _ in range(5)}
    assert len(plains) == 5


def test_last_used_at_is_recorded(users):
    token, plain = services.token_create(actor=None, user=users["viewer"])
    assert token.last_used_at is None
    before = timezone.now()
    assert bearer(plain).get("/api/v1/contexts/acme/models/").status_code == 200
    token.refresh_from_db()
    assert token.last_used_at is not None and token.last_used_at >= before


def test_expired_token_is_401(users):
    token, plain = services.token_create(actor=None, user=users["viewer"], expires_in_days=1)
    assert bearer(plain).get("/api/v1/contexts/").status_code == 200
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    r = bearer(plain).get("/api/v1/contexts/")
    assert r.status_code == 401
    assert "expired" in r.json()["detail"]
    assert r["WWW-Authenticate"].startswith("Bearer")


def test_revoked_token_is_401(users):
    token, plain = services.token_create(actor=None, user=users["viewer"])
    assert bearer(plain).get("/api/v1/contexts/").status_code == 200
    services.token_revoke(actor=users["viewer"], token=token)
    assert bearer(plain).get("/api/v1/contexts/").status_code == 401
    assert bearer(plain).post("/api/v1/contexts/acme/models/", {"name": "m"}, format="json").status_code == 401


def test_token_of_an_inactive_user_is_401(users):
    plain = services.token_create(actor=None, user=users["viewer"])[1]
    get_user_model().objects.filter(pk=users["viewer"].pk).update(is_active=False)
    assert bearer(plain).get("/api/v1/contexts/").status_code == 401


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Bearer ",
        "Bearer two parts",
        "Bearer mreg_not-a-real-token",
        "Bearer caf\u00e9",
        "Basic dXNlcjpwYXNz",
        "Token abc",
        "bearer",
    ],
)
def test_malformed_or_unknown_authorization_is_401(users, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    r = client.get("/api/v1/contexts/acme/models/")
    assert r.status_code == 401
    assert "WWW-Authenticate" in r


def test_no_credentials_is_401(users):
    assert APIClient().get("/api/v1/contexts/acme/models/").status_code == 401
    assert APIClient().post("/api/v1/contexts/acme/models/", {"name": "m"}, format="json").status_code == 401


def test_token_lookup_reads_the_token_its_user_and_every_role_in_one_statement(context, other_context,
                                                                               django_assert_num_queries):
    """One path on every database (registry/api/authentication.py): the token and its user as
    the ORM reads them, and the highest role per context, granted directly or through groups."""
    from django.contrib.auth.models import Group

    from registry.api.authentication import token_with_roles
    from registry.services.contexts import hash_token

    user = get_user_model().objects.create_user(username="grants", password="x", first_name="Gr")
    Group.objects.create(name="data-team").user_set.add(user)
    Group.objects.create(name="reviewers").user_set.add(user)
    third = services.context_create(actor=None, slug="third", name="Third")
    services.membership_set(actor=None, context=context, role="viewer", username="grants")
    services.membership_set(actor=None, context=context, role="publisher", group="data-team")
    services.membership_set(actor=None, context=other_context, role="admin", username="grants")
    services.membership_set(actor=None, context=other_context, role="editor", group="reviewers")
    services.membership_set(actor=None, context=third, role="editor", group="reviewers")
    services.membership_set(actor=None, context=third, role="viewer", group="data-team")
    token, plain = services.token_create(actor=None, user=user, name="ci", read_only=True, expires_in_days=3)

    with django_assert_num_queries(1):
        found, roles = token_with_roles(hash_token(plain))

    stored = ApiToken.objects.select_related("user").get(pk=token.pk)
    assert {field.attname: getattr(found, field.attname) for field in ApiToken._meta.concrete_fields} == {
        field.attname: getattr(stored, field.attname) for field in ApiToken._meta.concrete_fields}
    assert found.read_only is True and timezone.is_aware(found.expires_at)
    assert {field.attname: getattr(found.user, field.attname) for field in get_user_model()._meta.concrete_fields} == {
        field.attname: getattr(stored.user, field.attname) for field in get_user_model()._meta.concrete_fields}
    assert roles == {context.pk: "publisher", other_context.pk: "admin", third.pk: "editor"}
    assert token_with_roles(hash_token(plain + "x")) is None


def test_token_lookup_of_a_user_without_any_role(db):
    from registry.api.authentication import token_with_roles
    from registry.services.contexts import hash_token

    user = get_user_model().objects.create_user(username="loner", password="x")
    token, plain = services.token_create(actor=None, user=user)
    found, roles = token_with_roles(hash_token(plain))
    assert found.pk == token.pk and found.user.username == "loner" and roles == {}
    assert bearer(plain).get("/api/v1/contexts/").json()["results"] == []


def test_a_token_request_asks_no_other_statement_about_roles(context, users):
    """A role granted through a group counts, and the roles read with the token answer every
    permission question of the request: no other statement reads memberships."""
    from django.contrib.auth.models import Group
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    member = get_user_model().objects.create_user(username="via-group", password="x")
    Group.objects.create(name="editors").user_set.add(member)
    services.membership_set(actor=None, context=context, role="viewer", username="via-group")
    services.membership_set(actor=None, context=context, role="editor", group="editors")
    model = services.model_create(actor=None, context=context, name="m")
    client = bearer(services.token_create(actor=None, user=member)[1])

    with CaptureQueriesContext(connection) as queries:
        response = client.patch(f"/api/v1/models/{model.pk}/", {"task": "asr"}, format="json")

    assert response.status_code == 200, response.content
    membership_table = Membership._meta.db_table
    assert sum(membership_table in query["sql"] for query in queries.captured_queries) == 1
    Group.objects.get(name="editors").user_set.remove(member)
    assert client.patch(f"/api/v1/models/{model.pk}/", {"task": "x"}, format="json").status_code == 403


@pytest.fixture
def world(clients):
    """A model with a draft v1 (pending pkl), a published v2 under alias 'production', and a record."""
    editor, publisher = clients["editor"], clients["publisher"]
    model_id = editor.post("/api/v1/contexts/acme/models/", {"name": "m"}, format="json").json()["id"]
    record_id = editor.post("/api/v1/contexts/acme/records/", {"name": "d", "uri": "s3://d"}, format="json").json()["id"]
    for _ in range(2):
        assert editor.post(f"/api/v1/models/{model_id}/versions/", {}, format="json").status_code == 201
    assert editor.post(f"/api/v1/models/{model_id}/versions/1/formats/", {"kind": "pkl"}, format="json").status_code == 201
    assert upload(editor, model_id, 2).status_code == 200
    assert publisher.post(f"/api/v1/models/{model_id}/versions/2/publish/").status_code == 200
    assert publisher.put(f"/api/v1/models/{model_id}/aliases/production/", {"version": 2}, format="json").status_code == 200
    return {"model": model_id, "record": record_id}


def test_read_only_token_reads_but_never_writes(clients, world):
    readonly = clients["readonly"]  # an admin's read-only token
    m, rec = f"/api/v1/models/{world['model']}", f"/api/v1/records/{world['record']}/"
    for url in ["/api/v1/contexts/", "/api/v1/contexts/acme/", "/api/v1/contexts/acme/members/",
                "/api/v1/contexts/acme/models/", "/api/v1/contexts/acme/records/", "/api/v1/contexts/acme/audit/",
                rec, f"{m}/", f"{m}/versions/", f"{m}/versions/2/", f"{m}/versions/2/metrics/",
                f"{m}/versions/2/formats/", f"{m}/versions/2/formats/pkl/",
                f"{m}/aliases/", f"{m}/aliases/production/"]:
        assert readonly.get(url).status_code == 200, url
    assert readonly.get(f"{m}/versions/2/formats/pkl/file").status_code == 200

    writes = [
        ("post", "/api/v1/contexts/", {"slug": "new"}),
        ("post", "/api/v1/contexts/acme/members/", {"username": "outsider", "role": "viewer"}),
        ("patch", "/api/v1/contexts/acme/members/viewer/", {"role": "editor"}),
        ("delete", "/api/v1/contexts/acme/members/viewer/", None),
        ("post", "/api/v1/contexts/acme/models/", {"name": "new"}),
        ("patch", f"{m}/", {"description": "x"}),
        ("delete", f"{m}/", None),
        ("post", "/api/v1/contexts/acme/records/", {"name": "e", "uri": "s3://e"}),
        ("patch", rec, {"uri": "s3://changed"}),
        ("delete", rec, None),
        ("post", f"{m}/versions/", {}),
        ("patch", f"{m}/versions/1/", {"name": "x"}),
        ("delete", f"{m}/versions/1/", None),
        ("post", f"{m}/versions/1/publish/", None),
        ("post", f"{m}/versions/1/metrics/", {"key": "auc", "value": 1}),
        ("post", f"{m}/versions/1/formats/", {"kind": "onnx"}),
        ("delete", f"{m}/versions/1/formats/pkl/", None),
        ("put", f"{m}/aliases/staging/", {"version": 2}),
        ("delete", f"{m}/aliases/production/", None),
        ("post", f"{m}/aliases/production/rollback/", None),
    ]
    events = AuditEvent.objects.count()
    for method, url, body in writes:
        r = getattr(readonly, method)(url, body, format="json")
        assert r.status_code == 403, (method, url, r.status_code)
    r = readonly.generic("PUT", f"{m}/versions/1/formats/pkl/file", data=b"bytes",
                         content_type="application/octet-stream")
    assert r.status_code == 403
    assert "read-only" in r.json()["detail"]
    assert AuditEvent.objects.count() == events
    # The same user with a full token can do it.
    assert clients["admin"].patch(f"{m}/", {"description": "x"}, format="json").status_code == 200


# --- browser sessions -----------------------------------------------------------------------

def test_session_auth_enforces_csrf(users):
    client = APIClient(enforce_csrf_checks=True)
    assert client.login(username="editor", password="secret-pass")
    assert client.get("/api/v1/contexts/acme/models/").status_code == 200
    r = client.post("/api/v1/contexts/acme/models/", {"name": "m"}, format="json")
    assert r.status_code == 403
    assert "CSRF" in r.json()["detail"]
    assert not Model.objects.exists()

    # With the token from the cookie, the same request goes through.
    client.get("/admin/login/")
    csrf = client.cookies["csrftoken"].value
    r = client.post("/api/v1/contexts/acme/models/", {"name": "m"}, format="json", HTTP_X_CSRFTOKEN=csrf)
    assert r.status_code == 201, r.content
    assert r.json()["created_by"] == "editor"


def test_session_without_login_is_refused(users):
    client = APIClient(enforce_csrf_checks=True)
    assert client.get("/api/v1/contexts/").status_code == 401


# --- management commands ---------------------------------------------------------------------

def run(*args) -> str:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue()


def test_context_create_prints_only_the_slug(db):
    assert run("context_create", "vision", "--name", "Vision team") == "vision\n"
    context = Context.objects.get(slug="vision")
    assert context.name == "Vision team"
    assert AuditEvent.objects.filter(action="context.create", context=context, actor_name="operator").count() == 1


@pytest.mark.parametrize("slug", ["Not A Slug", "-dash", ""])
def test_context_create_rejects_bad_slugs(db, slug):
    with pytest.raises(CommandError):
        run("context_create", slug)
    assert not Context.objects.exists()


def test_context_create_rejects_a_taken_slug(context):
    with pytest.raises(CommandError, match="already exists"):
        run("context_create", "acme")


def test_member_add_creates_a_user_who_can_log_in(context):
    out = run("member_add", "acme", "carol", "editor", "--create-user", "--password", "carol-pass-123")
    assert out.strip().splitlines() == [out.strip()]  # one line
    assert "carol" in out
    user = get_user_model().objects.get(username="carol")
    assert user.check_password("carol-pass-123")
    assert Client().login(username="carol", password="carol-pass-123")
    assert Membership.objects.get(context=context, user=user).role == "editor"
    assert client_for(user).post("/api/v1/contexts/acme/models/", {"name": "m"}, format="json").status_code == 201


def test_member_add_changes_an_existing_role(context, users):
    run("member_add", "acme", "viewer", "publisher")
    assert Membership.objects.get(context=context, user=users["viewer"]).role == "publisher"


def test_member_add_without_password_creates_a_user_who_cannot_log_in(context):
    run("member_add", "acme", "robot", "viewer", "--create-user")
    assert not get_user_model().objects.get(username="robot").has_usable_password()


@pytest.mark.parametrize(
    "args, message",
    [
        (["member_add", "nowhere", "viewer", "viewer"], "nowhere"),
        (["member_add", "acme", "ghost", "viewer"], "ghost"),
        (["member_add", "acme", "viewer", "owner"], "owner"),
    ],
)
def test_member_add_errors(users, args, message):
    with pytest.raises(CommandError, match=message):
        run(*args)
    assert not get_user_model().objects.filter(username="ghost").exists()


def test_token_create_prints_only_a_working_token(users):
    out = run("token_create", "editor")
    lines = out.splitlines()
    assert len(lines) == 1 and out == lines[0] + "\n"
    plain = lines[0]
    assert re.fullmatch(r"\S+", plain)
    token = ApiToken.objects.get(key_hash=hashlib.sha256(plain.encode()).hexdigest())
    assert token.user == users["editor"]
    assert not token.read_only and token.expires_at is None
    assert bearer(plain).post("/api/v1/contexts/acme/models/", {"name": "m"}, format="json").status_code == 201


def test_token_create_read_only_and_expiry(users):
    plain = run("token_create", "editor", "--read-only", "--expires-in-days", "3").strip()
    token = ApiToken.objects.get(key_hash=hashlib.sha256(plain.encode()).hexdigest())
    assert token.read_only
    expected = timezone.now() + timedelta(days=3)
    assert abs((token.expires_at - expected).total_seconds()) < 60
    client = bearer(plain)
    assert client.get("/api/v1/contexts/acme/models/").status_code == 200
    assert client.post("/api/v1/contexts/acme/models/", {"name": "m"}, format="json").status_code == 403


@pytest.mark.parametrize("args", [["token_create", "ghost"], ["token_create", "editor", "--expires-in-days", "0"],
                                  ["token_create", "editor", "--expires-in-days", "-2"]])
def test_token_create_errors(users, args):
    count = ApiToken.objects.count()
    with pytest.raises(CommandError):
        run(*args)
    assert ApiToken.objects.count() == count


# --- OpenAPI schema and docs --------------------------------------------------------------------

def _documented_path(pattern: URLPattern) -> str:
    return "/api/v1/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", str(pattern.pattern))


def test_schema_lists_every_api_path(db):
    r = APIClient().get("/api/schema/", {"format": "json"})
    assert r.status_code == 200
    schema = r.json()
    assert schema["openapi"].startswith("3.")
    expected = {_documented_path(p) for p in api_urls.urlpatterns}
    assert len(expected) == len(api_urls.urlpatterns)
    missing = expected - set(schema["paths"])
    assert not missing, f"not in the schema: {sorted(missing)}"
    assert "bearerAuth" in schema["components"]["securitySchemes"]
    upload = schema["paths"]["/api/v1/models/{model_id}/versions/{number}/formats/{kind}/file"]
    assert "put" in upload and "get" in upload
    assert {"503", "507"} <= set(upload["put"]["responses"]), "a failing file store is documented"
    assert "503" in upload["get"]["responses"]


def test_docs_page_uses_only_local_assets(db):
    r = Client().get("/api/docs/")
    assert r.status_code == 200
    html = r.content.decode()
    for marker in ("cdn.", "jsdelivr", "unpkg", "cdnjs", "googleapis"):
        assert marker not in html, marker
    referenced = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
    assert referenced, html
    external = [url for url in referenced if re.match(r"^(?:[a-z]+:)?//", url, re.IGNORECASE)]
    assert not external, external
    static = [url for url in referenced if url.startswith(settings.STATIC_URL) or url.startswith("/" + settings.STATIC_URL)]
    assert static, referenced
    for url in static:
        relative = url.split(settings.STATIC_URL, 1)[1].split("?", 1)[0]
        assert finders.find(relative), f"{url} is not a local static file"
