"""Protected aliases with move requests, and scoped API tokens (issue 16, points 3 and 4)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from registry import services
from registry.models import Alias, ApiToken, AliasMoveRequest, AuditEvent, Version

from tests.conftest import client_for
from tests.factories import UserFactory
from tests.helpers import store_file

pytestmark = pytest.mark.django_db

INPUT_F32 = {"inputs": [{"name": "x", "dtype": "float32", "shape": [-1, 4]}], "outputs": []}
INPUT_I64 = {"inputs": [{"name": "x", "dtype": "int64", "shape": [-1, 4]}], "outputs": []}


def bearer(plain: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plain}")
    return client


def published(model, signature=None) -> Version:
    version = services.version_create(actor=None, model=model, **({"signature": signature} if signature else {}))
    store_file(version)
    return services.version_publish(actor=None, version=version)


@pytest.fixture
def served(context, users):
    """Churn with v1 and v2 published (v2 retypes input x: breaking), production at v1 and
    protected; a second publisher."""
    model = services.model_create(actor=None, context=context, name="Churn")
    published(model, INPUT_F32)
    published(model, INPUT_I64)
    services.alias_set(actor=None, model=model, name="production", version_number=1)
    services.protected_alias_add(actor=users["admin"], context=context, name="production")
    UserFactory(username="publisher2")
    services.membership_set(actor=None, context=context, role="publisher", username="publisher2")
    return model


def alias_version(model, name="production"):
    alias = Alias.objects.filter(model=model, name=name).select_related("version").first()
    return alias.version.number if alias else None


# --- protected aliases ------------------------------------------------------------------------

def test_a_publishers_move_of_a_protected_alias_becomes_a_request_with_the_signature_check(served, clients):
    url = f"/api/v1/models/{served.pk}/aliases/production/"
    r = clients["publisher"].put(url, {"version": 2, "comment": "new features"}, format="json")
    assert r.status_code == 202, r.content
    body = r.json()
    assert (body["status"], body["action"], body["from_version"], body["to_version"]) == ("pending", "set", 1, 2)
    assert body["requested_by"] == "publisher" and body["comment"] == "new features"
    check = body["signature_check"]
    assert check["compared"] and check["breaking"]
    assert [c["change"] for c in check["changes"]] == ["dtype"]
    assert alias_version(served) == 1, "nothing moved yet"
    assert AuditEvent.objects.filter(action="alias.request", object_id=str(body["id"])).exists()
    listed = clients["viewer"].get(f"/api/v1/models/{served.pk}/alias-requests/?status=pending").json()
    assert [row["id"] for row in listed["results"]] == [body["id"]]
    in_context = clients["viewer"].get("/api/v1/contexts/acme/alias-requests/").json()
    assert [row["id"] for row in in_context["results"]] == [body["id"]]
    # A second request for the same alias waits for the first.
    again = clients["publisher"].put(url, {"version": 2}, format="json")
    assert again.status_code == 409 and f"#{body['id']}" in again.json()["detail"]


def test_the_author_cannot_approve_another_publisher_can_and_the_move_happens(served, clients, users):
    request = services.alias_set(actor=users["publisher"], model=served, name="production", version_number=2)
    base = f"/api/v1/models/{served.pk}/alias-requests/{request.pk}"
    own = clients["publisher"].post(base + "/approve/", {}, format="json")
    assert own.status_code == 403 and "another publisher" in own.json()["detail"]
    assert alias_version(served) == 1
    second = client_for(UserFactory(username="publisher2"))
    r = second.post(base + "/approve/", {"comment": "metrics checked"}, format="json")
    assert r.status_code == 200, r.content
    assert (r.json()["status"], r.json()["decided_by"], r.json()["decision_comment"]) == (
        "approved", "publisher2", "metrics checked")
    assert alias_version(served) == 2
    move = AuditEvent.objects.get(action="alias.move", summary__contains=f"request #{request.pk}")
    assert move.actor_name == "publisher2"
    assert AuditEvent.objects.filter(action="alias.request_approve").count() == 1
    # Decided once only.
    assert second.post(base + "/reject/", {}, format="json").status_code == 409


def test_an_admin_moves_a_protected_alias_directly_and_unprotected_aliases_move_as_before(served, clients):
    r = clients["admin"].put(f"/api/v1/models/{served.pk}/aliases/production/", {"version": 2}, format="json")
    assert r.status_code == 200 and r.json()["version"] == 2
    r = clients["publisher"].put(f"/api/v1/models/{served.pk}/aliases/staging/", {"version": 2}, format="json")
    assert r.status_code == 200 and r.json()["version"] == 2
    assert not AliasMoveRequest.objects.exists()


def test_protection_ignores_case_and_covers_rollback_and_removal(served, clients, users):
    services.alias_set(actor=None, model=served, name="Production", version_number=1)
    services.alias_set(actor=None, model=served, name="Production", version_number=2)
    base = f"/api/v1/models/{served.pk}/aliases/Production"
    r = clients["publisher"].post(base + "/rollback/")
    assert r.status_code == 202 and (r.json()["action"], r.json()["to_version"]) == ("rollback", 1)
    services.alias_request_withdraw(actor=users["publisher"], model=served,
                                    request=AliasMoveRequest.objects.get(pk=r.json()["id"]))
    r = clients["publisher"].delete(base + "/")
    assert r.status_code == 202 and r.json()["action"] == "delete"
    assert alias_version(served, "Production") == 2
    approved = clients["admin"].post(f"/api/v1/models/{served.pk}/alias-requests/{r.json()['id']}/approve/")
    assert approved.status_code == 200
    assert alias_version(served, "Production") is None


def test_approval_checks_the_move_again(served, clients, users):
    request = services.alias_set(actor=users["publisher"], model=served, name="production", version_number=2)
    url = f"/api/v1/models/{served.pk}/alias-requests/{request.pk}/approve/"
    # The alias moved since the request: what was reviewed is not what would happen.
    services.alias_set(actor=None, model=served, name="production", version_number=2)
    services.alias_set(actor=None, model=served, name="production", version_number=1)
    services.alias_set(actor=None, model=served, name="staging", version_number=1)
    Alias.objects.filter(model=served, name="production").update(
        version=Version.objects.get(model=served, number=2))
    r = clients["admin"].post(url)
    assert r.status_code == 409 and "has moved" in r.json()["detail"]
    assert AliasMoveRequest.objects.get(pk=request.pk).status == "pending"
    # Back where it was asked from, but the target version is gone.
    Alias.objects.filter(model=served, name="production").update(
        version=Version.objects.get(model=served, number=1))
    v3 = published(served)
    pending = services.alias_request_reject(actor=users["admin"], model=served, request=request)
    assert pending.status == "rejected"
    request = services.alias_set(actor=users["publisher"], model=served, name="production", version_number=v3.number)
    services.version_delete(actor=None, version=v3)
    r = clients["admin"].post(f"/api/v1/models/{served.pk}/alias-requests/{request.pk}/approve/")
    assert r.status_code == 409 and "deleted" in r.json()["detail"]
    assert alias_version(served) == 1


def test_only_the_author_withdraws_and_others_reject(served, clients, users):
    request = services.alias_set(actor=users["publisher"], model=served, name="production", version_number=2)
    base = f"/api/v1/models/{served.pk}/alias-requests/{request.pk}"
    assert clients["admin"].post(base + "/withdraw/").status_code == 403
    assert clients["publisher"].post(base + "/reject/").status_code == 403
    assert clients["editor"].post(base + "/withdraw/").status_code == 403  # the door: publish-version
    r = clients["publisher"].post(base + "/withdraw/")
    assert r.status_code == 200 and r.json()["status"] == "withdrawn"
    assert AuditEvent.objects.filter(action="alias.request_withdraw").count() == 1
    assert alias_version(served) == 1


def test_protecting_names_is_for_admins_audited_and_validated(context, clients):
    url = "/api/v1/contexts/acme/protected-aliases/"
    assert clients["publisher"].post(url, {"name": "production"}, format="json").status_code == 403
    assert clients["admin"].post(url, {"name": "bad name!"}, format="json").status_code == 400
    assert clients["admin"].post(url, {"name": "production"}, format="json").status_code == 201
    assert clients["admin"].post(url, {"name": "PRODUCTION"}, format="json").status_code == 409
    assert [row["name"] for row in clients["viewer"].get(url).json()["results"]] == ["production"]
    assert clients["admin"].delete(url + "production/").status_code == 204
    assert clients["admin"].delete(url + "production/").status_code == 404
    actions = list(AuditEvent.objects.filter(action__startswith="alias.").values_list("action", flat=True))
    assert sorted(actions) == ["alias.protect", "alias.unprotect"]


def test_a_scoped_admin_token_without_move_protected_alias_asks_instead(served, users):
    _, plain = services.token_create(actor=None, user=users["admin"],
                                     permissions=["view-model", "publish-version"])
    r = bearer(plain).put(f"/api/v1/models/{served.pk}/aliases/production/", {"version": 2}, format="json")
    assert r.status_code == 202


def _count(client, url) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


def test_request_and_protected_lists_cost_the_same_for_few_and_many_rows(served, clients, users, context,
                                                                          django_assert_num_queries):
    urls = [f"/api/v1/models/{served.pk}/alias-requests/", "/api/v1/contexts/acme/alias-requests/",
            "/api/v1/contexts/acme/protected-aliases/"]

    def add(total):
        while AliasMoveRequest.objects.count() < total:
            n = AliasMoveRequest.objects.count()
            services.protected_alias_add(actor=None, context=context, name=f"env-{n}")
            services.alias_set(actor=users["publisher"], model=served, name=f"env-{n}", version_number=2)

    add(2)
    for url in urls:
        clients["viewer"].get(url)
    small = {url: _count(clients["viewer"], url) for url in urls}
    add(20)
    for url in urls:
        with django_assert_num_queries(small[url]):
            body = clients["viewer"].get(url).json()
        assert len(body["results"]) >= 20


# --- scoped tokens ----------------------------------------------------------------------------

@pytest.fixture
def two_models(context, other_context, users):
    churn = services.model_create(actor=None, context=context, name="Churn")
    fraud = services.model_create(actor=None, context=context, name="Fraud")
    services.membership_set(actor=None, context=other_context, role="viewer", username="admin")
    elsewhere = services.model_create(actor=None, context=other_context, name="Elsewhere")
    return churn, fraud, elsewhere


def test_a_token_limited_to_one_model_sees_that_model_only(two_models, users):
    churn, fraud, elsewhere = two_models
    _, plain = services.token_create(actor=users["admin"], user=users["admin"], models=["acme/churn"],
                                     permissions=["view-model"])
    client = bearer(plain)
    assert client.get(f"/api/v1/models/{churn.pk}/").status_code == 200
    assert client.get(f"/api/v1/models/{churn.pk}/versions/").status_code == 200
    for other in (fraud, elsewhere):
        r = client.get(f"/api/v1/models/{other.pk}/")
        assert r.status_code == 404 and r.json()["code"] == "not_found"
    assert [m["name"] for m in client.get("/api/v1/contexts/acme/models/").json()["results"]] == ["Churn"]
    assert [c["slug"] for c in client.get("/api/v1/contexts/").json()["results"]] == ["acme"]
    assert client.get("/api/v1/contexts/other/models/").status_code == 404
    # Context-wide contents and writes are beyond a token limited to models.
    for path in ("audit/", "records/", "members/", "trusted-imports/", "protected-aliases/"):
        r = client.get(f"/api/v1/contexts/acme/{path}")
        assert r.status_code == 403 and "limited to some models" in r.json()["detail"], path
    # A permission outside its list: 403.
    r = client.patch(f"/api/v1/models/{churn.pk}/", {"task": "x"}, format="json")
    assert r.status_code == 403 and "edit-model" in r.json()["detail"]


def test_a_token_limited_to_a_context_and_to_writing_models(two_models, users):
    churn, fraud, elsewhere = two_models
    _, plain = services.token_create(actor=None, user=users["admin"], contexts=["acme"],
                                     permissions=["view-model", "edit-model"])
    client = bearer(plain)
    assert client.get(f"/api/v1/models/{elsewhere.pk}/").status_code == 404
    assert client.patch(f"/api/v1/models/{fraud.pk}/", {"task": "x"}, format="json").status_code == 200
    assert client.post("/api/v1/contexts/acme/models/", {"name": "New"}, format="json").status_code == 201
    assert client.delete(f"/api/v1/models/{fraud.pk}/").status_code == 403
    assert client.get("/api/v1/contexts/acme/audit/").status_code == 200
    # A scoped token mints no token, wider or not.
    assert client.post("/api/v1/tokens/", {"name": "wider"}, format="json").status_code == 403


def test_a_token_never_exceeds_its_owners_roles(two_models, users, context):
    churn = two_models[0]
    _, plain = services.token_create(actor=None, user=users["publisher"], permissions=["view-model", "edit-model"])
    services.membership_set(actor=None, context=context, role="viewer", username="publisher")
    r = bearer(plain).patch(f"/api/v1/models/{churn.pk}/", {"task": "x"}, format="json")
    assert r.status_code == 403


def test_a_scoped_staff_token_is_limited_too(two_models):
    churn, fraud, elsewhere = two_models
    staff = UserFactory(username="root", is_superuser=True)
    _, plain = services.token_create(actor=None, user=staff, contexts=["other"])
    client = bearer(plain)
    assert client.get(f"/api/v1/models/{churn.pk}/").status_code == 404
    assert client.get(f"/api/v1/models/{elsewhere.pk}/").status_code == 200
    assert client.post("/api/v1/contexts/", {"slug": "new"}, format="json").status_code == 403


@pytest.mark.parametrize(("body", "field"), [
    ({"contexts": ["nowhere"]}, "contexts"),
    ({"contexts": ["other"]}, "contexts"),  # the viewer is not a member of other
    ({"contexts": []}, "contexts"),
    ({"models": ["other/elsewhere"]}, "models"),
    ({"models": ["not-a-model"]}, "models"),
    ({"contexts": "acme"}, "contexts"),
    ({"permissions": ["edit-model"]}, "permissions"),  # beyond the viewer's role
    ({"permissions": ["fly"]}, "permissions"),
    ({"read_only": True, "permissions": ["view-model", "edit-model"]}, "permissions"),
])
def test_a_scope_beyond_the_owner_is_400_and_writes_nothing(two_models, clients, body, field):
    tokens, events = ApiToken.objects.count(), AuditEvent.objects.count()
    r = clients["viewer"].post("/api/v1/tokens/", {"name": "x", **body}, format="json")
    assert r.status_code == 400, r.content
    assert field in r.content.decode()
    assert (ApiToken.objects.count(), AuditEvent.objects.count()) == (tokens, events)


def test_the_tokens_list_shows_scope_and_last_use(two_models, clients, users):
    churn = two_models[0]
    r = clients["admin"].post("/api/v1/tokens/", {"name": "deploy", "models": [str(churn.pk)],
                                                  "permissions": ["view-model"]}, format="json")
    assert r.status_code == 201
    created = r.json()
    assert created["token"].startswith("mreg_") and created["reach"] == "models"
    assert created["models"] == [{"id": str(churn.pk), "context": "acme", "name": "Churn"}]
    assert created["contexts"] == ["acme"] and created["permissions"] == ["view-model"]
    bearer(created["token"]).get(f"/api/v1/models/{churn.pk}/")
    shown = clients["admin"].get(f"/api/v1/tokens/{created['id']}/").json()
    assert shown["last_used_at"] is not None and "token" not in shown


def test_context_admins_see_and_revoke_the_tokens_that_can_act_in_their_context(two_models, users, clients):
    _, reaching = services.token_create(actor=None, user=users["viewer"], name="everywhere")
    scoped_here, _ = services.token_create(actor=None, user=users["admin"], contexts=["acme"])
    services.token_create(actor=None, user=users["admin"], contexts=["other"], name="elsewhere")
    services.token_create(actor=None, user=users["outsider"], name="not a member")
    revoked, _ = services.token_create(actor=None, user=users["editor"], name="old")
    services.token_revoke(actor=None, token=revoked)
    listed = clients["admin"].get("/api/v1/contexts/acme/tokens/").json()["results"]
    names = {row["name"] for row in listed}
    assert "everywhere" in names and scoped_here.pk in {row["id"] for row in listed}
    assert not names & {"elsewhere", "not a member", "old"}
    assert clients["publisher"].get("/api/v1/contexts/acme/tokens/").status_code == 403
    elsewhere = ApiToken.objects.get(name="elsewhere")
    assert clients["admin"].delete(f"/api/v1/contexts/acme/tokens/{elsewhere.pk}/").status_code == 404
    target = ApiToken.objects.get(name="everywhere")
    assert clients["admin"].delete(f"/api/v1/contexts/acme/tokens/{target.pk}/").status_code == 204
    assert bearer(reaching).get("/api/v1/contexts/").status_code == 401
    event = AuditEvent.objects.get(action="token.revoke", context__slug="acme")
    assert event.actor_name == "admin" and "viewer" in event.summary


def test_token_lists_cost_the_same_for_few_and_many_tokens(two_models, users, clients, django_assert_num_queries):
    def add(total):
        while ApiToken.objects.filter(user=users["admin"]).count() < total:
            services.token_create(actor=None, user=users["admin"], models=["acme/churn", "acme/fraud"])

    add(3)
    urls = ["/api/v1/tokens/", "/api/v1/contexts/acme/tokens/"]
    for url in urls:
        clients["admin"].get(url)
    small = {url: _count(clients["admin"], url) for url in urls}
    add(25)
    for url in urls:
        with django_assert_num_queries(small[url]):
            assert len(clients["admin"].get(url).json()["results"]) >= 25


def test_token_create_command_takes_a_scope(two_models, users):
    import io

    from django.core.management import call_command
    from django.core.management.base import CommandError

    out = io.StringIO()
    call_command("token_create", "admin", "--model", "acme/churn", "--permission", "view-model", stdout=out)
    client = bearer(out.getvalue().strip())
    assert client.get(f"/api/v1/models/{two_models[0].pk}/").status_code == 200
    assert client.get(f"/api/v1/models/{two_models[1].pk}/").status_code == 404
    with pytest.raises(CommandError, match="no context"):
        call_command("token_create", "viewer", "--context", "other", stdout=io.StringIO())
