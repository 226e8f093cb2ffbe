"""The dashboard's side of single sign-on: the sign-in page, passwords turned off, the callback's
failure pages (those that need no provider; tests/dashboard/test_sso_provider.py runs the rest
against a real one), the rules page and the members page."""

from __future__ import annotations

import socket

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from registry import services
from registry.models import AuditEvent, Membership, SsoRule

pytestmark = pytest.mark.django_db

RULES = reverse("dashboard:sso-rule-list")


def signed_in(user, backend="registry.signin.PasswordBackend") -> Client:
    client = Client()
    client.force_login(user, backend=backend)
    return client


@pytest.fixture
def sso_settings(settings):
    """Single sign-on configured; the provider is never reached by these tests."""
    from registry import sso

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.REGISTRY_OIDC_ISSUER = f"http://127.0.0.1:{port}/realms/corp"
    settings.REGISTRY_OIDC_CLIENT_ID, settings.REGISTRY_OIDC_CLIENT_SECRET = "registry", "secret"
    settings.REGISTRY_OIDC_PROVIDER_NAME = "Example Corp"
    sso._discovered.clear()
    yield settings
    sso._discovered.clear()


# --- the sign-in page ---------------------------------------------------------------------------

def test_without_sso_the_page_has_only_the_password_form(client):
    page = client.get("/login/").content.decode()
    assert 'name="password"' in page and "Sign in with" not in page
    assert client.get("/sso/start/").status_code == 404
    assert client.get("/sso/callback/?code=x&state=y").status_code == 404


def test_with_sso_the_page_offers_the_provider(client, sso_settings):
    page = client.get("/login/?next=/c/acme/").content.decode()
    assert 'href="/sso/start/?next=/c/acme/"' in page and "Sign in with Example Corp" in page
    assert 'name="password"' in page  # passwords still work unless turned off


def test_passwords_turned_off(client, users, sso_settings):
    sso_settings.REGISTRY_PASSWORD_SIGNIN = False
    page = client.get("/login/").content.decode()
    assert "Sign in with Example Corp" in page and 'name="password"' not in page

    refused = client.post("/login/", {"username": "viewer", "password": "secret-pass"})
    assert refused.status_code == 403
    assert "Signing in with a password is turned off: sign in with Example Corp." in refused.content.decode()
    assert "_auth_user_id" not in client.session
    # The admin's form is not a way around it.
    admin = client.get("/admin/login/?next=/admin/")
    assert admin.status_code == 302 and admin["Location"] == "/login/?next=%2Fadmin%2F"
    assert client.post("/admin/login/", {"username": "viewer", "password": "secret-pass"}).status_code == 302
    assert "_auth_user_id" not in client.session
    # A session opened with a password ends; one opened by single sign-on does not.
    assert signed_in(users["viewer"]).get("/c/acme/").status_code == 302
    assert signed_in(users["viewer"], backend="registry.sso.OidcBackend").get("/c/acme/").status_code == 200


def test_passwords_still_work_when_sso_is_on(client, users, sso_settings):
    response = client.post("/login/", {"username": "viewer", "password": "secret-pass"})
    assert response.status_code == 302 and client.session["_auth_user_id"] == str(users["viewer"].pk)


# --- the callback's failure pages ----------------------------------------------------------------

def test_a_provider_that_does_not_answer_is_a_page_not_a_500(client, sso_settings):
    response = client.get("/sso/start/")
    assert response.status_code == 502
    page = response.content.decode()
    assert "Example Corp is not answering" in page and 'href="/login/"' in page


@pytest.mark.parametrize(("query", "says"), [
    ("", "opened without a sign-in answer"),
    ("?code=abc", "opened without a sign-in answer"),
    ("?code=abc&state=never-issued", "not started in this browser"),
    ("?error=access_denied&error_description=You+are+not+in+the+app%27s+group&state=x",
     "Example Corp did not sign you in: You are not in the app&#x27;s group"),
    ("?error=%3Cscript%3E", "did not sign you in: &lt;script&gt;"),
])
def test_callback_failures(client, sso_settings, query, says):
    response = client.get(f"/sso/callback/{query}")
    assert response.status_code == 400
    assert says in response.content.decode()
    assert "_auth_user_id" not in client.session


# --- the rules page -------------------------------------------------------------------------------

def test_admins_add_and_delete_rules(users, context, other_context):
    admin = signed_in(users["admin"])
    page = admin.get(RULES).content.decode()
    assert '<option value="acme">' in page and '<option value="other">' not in page  # only what they manage

    response = admin.post(reverse("dashboard:sso-rule-create"),
                          {"claim_value": "ml-platform", "context": "acme", "role": "publisher"})
    assert response.status_code == 302
    rule = SsoRule.objects.get()
    assert (rule.claim_value, rule.context, rule.role, rule.created_by) == ("ml-platform", context, "publisher", users["admin"])
    assert AuditEvent.objects.filter(action="sso_rule.create", actor=users["admin"]).exists()
    services.sso_sign_in(issuer="https://idp", claims={"sub": "1", "groups": ["ml-platform"]}, roles_claim="groups",
                         username_claim="preferred_username")
    page = admin.get(RULES).content.decode()
    assert "<code>ml-platform</code>" in page and "Delete the rule “ml-platform” → publisher in Acme? The 1 role it granted is taken away now." in page

    response = admin.post(reverse("dashboard:sso-rule-delete", kwargs={"rule_id": rule.pk}))
    assert response.status_code == 302
    assert not SsoRule.objects.exists() and not Membership.objects.filter(source="sso").exists()
    assert "1 role it granted was taken away" in admin.get(RULES).content.decode()


@pytest.mark.parametrize(("form", "error"), [
    ({"claim_value": "ml", "context": "other", "role": "viewer"}, "Select a valid choice"),
    ({"claim_value": "ml", "context": "acme", "role": "emperor"}, "Select a valid choice"),
    ({"claim_value": "", "context": "acme", "role": "viewer"}, "This field is required"),
    ({"claim_value": "a\u0000b", "context": "acme", "role": "viewer"}, "Null characters are not allowed"),
])
def test_invalid_rules_are_shown_with_their_error(users, context, other_context, form, error):
    response = signed_in(users["admin"]).post(reverse("dashboard:sso-rule-create"), form)
    assert response.status_code == 400 and error in response.content.decode()
    assert not SsoRule.objects.exists()


def test_a_duplicate_rule_is_a_form_error(users, context):
    services.sso_rule_create(actor=None, context=context, claim_value="ml", role="viewer")
    response = signed_in(users["admin"]).post(reverse("dashboard:sso-rule-create"),
                                              {"claim_value": "ml", "context": "acme", "role": "admin"})
    assert response.status_code == 400 and "already has a rule in acme" in response.content.decode()


def test_who_may_manage_rules(users, context):
    rule = services.sso_rule_create(actor=None, context=context, claim_value="ml", role="viewer")
    delete = reverse("dashboard:sso-rule-delete", kwargs={"rule_id": rule.pk})
    create = reverse("dashboard:sso-rule-create")
    for persona in ("viewer", "editor", "publisher"):
        client = signed_in(users[persona])
        assert "<code>ml</code>" not in client.get(RULES).content.decode()
        # Refused before the form is read: an invalid form is 403 too.
        assert client.post(create, {"claim_value": "", "role": "emperor"}).status_code == 403
        assert client.post(delete).status_code == 403
    # An admin of another context: acme's rule does not exist for them.
    assert signed_in(users["outsider"]).post(delete).status_code == 404
    assert signed_in(users["admin"]).post(reverse("dashboard:sso-rule-delete", kwargs={"rule_id": "999"})).status_code == 404
    assert SsoRule.objects.count() == 1 and not AuditEvent.objects.filter(action__startswith="sso_rule.delete").exists()


def test_rules_page_query_count(users, context):
    def add(count):
        for index in range(SsoRule.objects.count(), SsoRule.objects.count() + count):
            services.sso_rule_create(actor=users["admin"], context=context, claim_value=f"group-{index}", role="viewer")
            services.sso_sign_in(issuer="https://idp", claims={"sub": str(index), "groups": [f"group-{index}"]},
                                 roles_claim="groups", username_claim="preferred_username")
    add(2)
    admin = signed_in(users["admin"])
    admin.get(RULES)
    with CaptureQueriesContext(connection) as small:
        assert admin.get(RULES).status_code == 200
    add(25)
    with CaptureQueriesContext(connection) as large:
        assert admin.get(RULES).content.decode().count('<tr id="sso-rule-') == 27
    assert len(large.captured_queries) == len(small.captured_queries)


def test_members_page_marks_roles_from_rules(users, context):
    services.sso_rule_create(actor=None, context=context, claim_value="ml-platform", role="editor")
    user = services.sso_sign_in(issuer="https://idp", claims={"sub": "1", "groups": ["ml-platform"],
                                                              "preferred_username": "erin"},
                                roles_claim="groups", username_claim="preferred_username")
    membership = Membership.objects.get(user=user)
    page = signed_in(users["admin"]).get(reverse("dashboard:member-list", kwargs={"ctx": "acme"})).content.decode()
    assert "single sign-on: ml-platform" in page
    assert reverse("dashboard:member-remove", kwargs={"ctx": "acme", "membership_id": membership.pk}) not in page
    assert f'id="role-{membership.pk}"' not in page  # no role picker: the rule decides
    # Nor can the role or remove forms reach it: a hand-granted role beside it stays untouched.
    services.membership_set(actor=None, context=context, role="viewer", username="erin")
    admin = signed_in(users["admin"])
    remove = reverse("dashboard:member-remove", kwargs={"ctx": "acme", "membership_id": membership.pk})
    assert admin.get(remove).status_code == 404 and admin.post(remove).status_code == 404
    role = reverse("dashboard:member-role", kwargs={"ctx": "acme", "membership_id": membership.pk})
    assert admin.post(role, {"role": "admin"}).status_code == 404
    assert set(Membership.objects.filter(user=user).values_list("role", "source")) == {("editor", "sso"), ("viewer", "manual")}


def test_a_link_to_the_callback_does_not_sign_anyone_out(users, sso_settings):
    client = signed_in(users["viewer"])
    assert client.get("/sso/callback/?error=access_denied&state=x").status_code == 400
    assert client.session["_auth_user_id"] == str(users["viewer"].pk)
