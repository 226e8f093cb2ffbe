"""The dashboard's doors to protected aliases, move requests and scoped tokens (issue 16, points
3 and 4): the context's settings page, the Aliases tab, a request's page and its decisions,
the tokens page's scope, and the context's tokens page."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from registry import services
from registry.models import Alias, AliasMoveRequest, ApiToken, AuditEvent, ProtectedAlias

from tests.factories import UserFactory
from tests.helpers import store_file

pytestmark = pytest.mark.django_db

F32 = {"inputs": [{"name": "x", "dtype": "float32", "shape": [-1, 4]}], "outputs": []}
I64 = {"inputs": [{"name": "x", "dtype": "int64", "shape": [-1, 4]}], "outputs": []}


@pytest.fixture
def browser(users):
    def make(persona) -> Client:
        client = Client()
        client.force_login(users[persona] if isinstance(persona, str) else persona)
        return client
    return make


@pytest.fixture
def served(context, users):
    model = services.model_create(actor=None, context=context, name="Churn")
    for signature in (F32, I64):
        version = services.version_create(actor=None, model=model, signature=signature)
        store_file(version)
        services.version_publish(actor=None, version=version)
    services.alias_set(actor=None, model=model, name="production", version_number=1)
    services.protected_alias_add(actor=None, context=context, name="production")
    return model


def test_admins_protect_aliases_on_the_settings_page(context, browser):
    url = reverse("dashboard:context-settings", kwargs={"ctx": "acme"})
    add = reverse("dashboard:protected-alias-add", kwargs={"ctx": "acme"})
    assert browser("viewer").get(url).status_code == 200
    assert browser("publisher").post(add, {"alias": "production"}).status_code == 403
    assert browser("admin").post(add, {"alias": "no spaces"}).status_code == 400
    r = browser("admin").post(add, {"alias": "production"})
    assert r.status_code == 302
    page = browser("viewer").get(url).content.decode()
    assert "<strong>production</strong>" in page and "Unprotect" not in page
    assert "Unprotect" in browser("admin").get(url).content.decode()
    remove = reverse("dashboard:protected-alias-remove", kwargs={"ctx": "acme", "name": "production"})
    assert browser("admin").post(remove).status_code == 302
    assert not ProtectedAlias.objects.exists()
    assert AuditEvent.objects.filter(action__in=["alias.protect", "alias.unprotect"]).count() == 2


def test_a_publishers_move_becomes_a_request_another_publisher_approves_in_the_dashboard(served, browser, context):
    set_url = reverse("dashboard:alias-set", kwargs={"model_id": served.pk})
    r = browser("publisher").post(set_url, {"alias": "production", "version": "2", "comment": "v2 is better"},
                                  follow=True)
    assert r.status_code == 200
    page = r.content.decode()
    assert "production is protected: request #" in page
    request = AliasMoveRequest.objects.get()
    assert Alias.objects.get(model=served, name="production").version.number == 1
    assert "protected-badge" in page and "BREAKING" in page and "v2 is better" in page
    # The author may only withdraw; another publisher gets Approve and Reject.
    confirm = reverse("dashboard:alias-request-confirm",
                      kwargs={"model_id": served.pk, "request_id": request.pk, "decision": "approve"})
    assert "Withdraw" in page and confirm not in page
    own = browser("publisher").get(confirm).content.decode()
    assert "data-confirm-card" in own and "another publisher or an admin decides" in own
    second = UserFactory(username="publisher2")
    services.membership_set(actor=None, context=context, role="publisher", username="publisher2")
    aliases = browser(second).get(reverse("dashboard:model-aliases", kwargs={"model_id": served.pk})).content.decode()
    assert confirm in aliases
    detail = browser(second).get(reverse("dashboard:alias-request-detail",
                                         kwargs={"model_id": served.pk, "request_id": request.pk}))
    assert "changed type from float32 to int64" in detail.content.decode()
    decide = reverse("dashboard:alias-request-decide",
                     kwargs={"model_id": served.pk, "request_id": request.pk, "decision": "approve"})
    assert browser("viewer").post(decide).status_code == 403
    r = browser(second).post(decide, {"comment": "ok"}, follow=True)
    assert "approved: the alias moved" in r.content.decode()
    assert Alias.objects.get(model=served, name="production").version.number == 2
    request.refresh_from_db()
    assert (request.status, request.decided_by, request.decision_comment) == ("approved", second, "ok")


def test_the_author_withdraws_in_the_dashboard(served, browser, users):
    request = services.alias_set(actor=users["publisher"], model=served, name="production", version_number=2)
    url = reverse("dashboard:alias-request-decide",
                  kwargs={"model_id": served.pk, "request_id": request.pk, "decision": "withdraw"})
    assert browser("admin").post(url).status_code == 403
    browser("publisher").post(url)
    request.refresh_from_db()
    assert request.status == "withdrawn"


def test_the_aliases_tab_and_settings_page_cost_the_same_with_few_and_many_requests(served, browser, users, context,
                                                                   django_assert_num_queries):
    url = reverse("dashboard:model-aliases", kwargs={"model_id": served.pk})
    client = browser("admin")

    def add(total):
        while AliasMoveRequest.objects.count() < total:
            n = AliasMoveRequest.objects.count()
            services.protected_alias_add(actor=None, context=context, name=f"env-{n}")
            request = services.alias_set(actor=users["publisher"], model=served, name=f"env-{n}", version_number=2)
            if n % 2:
                services.alias_request_reject(actor=users["admin"], model=served, request=request)

    settings = reverse("dashboard:context-settings", kwargs={"ctx": "acme"})
    add(2)
    counts = {}
    for page in (url, settings):
        with CaptureQueriesContext(connection) as small:
            assert client.get(page).status_code == 200
        counts[page] = len(small.captured_queries)
    add(20)
    for page in (url, settings):
        with django_assert_num_queries(counts[page]):
            assert client.get(page).status_code == 200


# --- tokens ------------------------------------------------------------------------------------

def test_a_token_made_in_the_dashboard_takes_a_scope(served, browser):
    url = reverse("dashboard:token-create")
    r = browser("admin").post(url, {"name": "deploy", "contexts": ["acme"], "models": "acme/churn\n",
                                    "permissions": ["view-model"]})
    assert r.status_code == 200
    page = r.content.decode()
    assert "acme/Churn" in page and "view-model" in page
    token = ApiToken.objects.get(name="deploy")
    assert token.reach == "models" and token.scope_permissions == ["view-model"]
    bad = browser("viewer").post(url, {"name": "x", "models": "acme/nothing-here"})
    assert bad.status_code == 400 and "has no model" in bad.content.decode()
    beyond = browser("viewer").post(url, {"name": "x", "permissions": ["delete-model"]})
    assert beyond.status_code == 400
    assert ApiToken.objects.filter(name="x").count() == 0


def test_context_admins_see_and_revoke_tokens_that_can_act_in_their_context(context, other_context, users, browser):
    token, _ = services.token_create(actor=None, user=users["viewer"], name="notebook")
    services.token_create(actor=None, user=users["outsider"], name="outsider's")
    url = reverse("dashboard:context-token-list", kwargs={"ctx": "acme"})
    assert browser("publisher").get(url).status_code == 403
    assert browser("outsider").get(url).status_code == 404
    page = browser("admin").get(url).content.decode()
    assert "notebook" in page and "outsider's" not in page
    revoke = reverse("dashboard:context-token-revoke", kwargs={"ctx": "acme", "token_id": token.pk})
    assert "data-confirm-card" in browser("admin").get(revoke).content.decode()
    assert browser("publisher").post(revoke).status_code == 403
    assert browser("admin").post(revoke).status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert AuditEvent.objects.filter(action="token.revoke", context=context, actor_name="admin").exists()


def test_token_pages_cost_the_same_with_few_and_many_tokens(served, users, browser, django_assert_num_queries):
    urls = [reverse("dashboard:token-list"), reverse("dashboard:context-token-list", kwargs={"ctx": "acme"})]

    def add(total):
        while ApiToken.objects.filter(user=users["admin"]).count() < total:
            services.token_create(actor=None, user=users["admin"], models=["acme/churn"])

    add(2)
    client = browser("admin")
    small = {}
    for url in urls:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        small[url] = len(captured)
    add(20)
    for url in urls:
        with django_assert_num_queries(small[url]):
            assert client.get(url).status_code == 200
