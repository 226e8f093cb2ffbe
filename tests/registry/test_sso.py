"""Single sign-on rules and what a sign-in does with the claims (registry/services/sso.py), and
the rules' API. The protocol itself runs against a real provider in
tests/dashboard/test_sso_provider.py."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext

from registry import services
from registry.errors import Conflict
from registry.models import AuditEvent, Membership, SsoIdentity, SsoRule
from registry.permissions import effective_role
from tests.conftest import client_for
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

ISSUER = "https://idp.example.com/realms/corp"
User = get_user_model()


def sign_in(sub: str, *groups: str, **claims):
    return services.sso_sign_in(issuer=ISSUER, claims={"sub": sub, "groups": list(groups), **claims},
                                roles_claim="groups", username_claim="preferred_username")


def roles(user) -> set[tuple[str, str, str]]:
    return set(Membership.objects.filter(user=user).values_list("context__slug", "role", "source"))


# --- sign-in --------------------------------------------------------------------------------

def test_first_sign_in_creates_an_account_named_by_the_claim(context):
    user = sign_in("s-1", preferred_username="Ada Lovelace", email="ada@corp.example", given_name="Ada")
    assert user.username == "Ada-Lovelace" and user.email == "ada@corp.example" and user.first_name == "Ada"
    assert not user.has_usable_password()
    assert SsoIdentity.objects.get(user=user).subject == "s-1"
    assert AuditEvent.objects.filter(action="user.create", actor=user).exists()


def test_the_subject_finds_the_account_whatever_the_other_claims_say(context):
    first = sign_in("s-1", preferred_username="ada", email="ada@corp.example")
    again = sign_in("s-1", preferred_username="someone-else", email="new@corp.example")
    assert again.pk == first.pk and again.username == "ada" and again.email == "new@corp.example"
    # Another subject with the same e-mail is another account: users are never matched by e-mail.
    other = sign_in("s-2", preferred_username="ada", email="new@corp.example")
    assert other.pk != first.pk and other.username == "ada-2"
    # The same subject at another issuer is someone else too.
    elsewhere = services.sso_sign_in(issuer="https://other.example", claims={"sub": "s-1"},
                                     roles_claim="groups", username_claim="preferred_username")
    assert elsewhere.pk not in (first.pk, other.pk)


def test_username_collisions_take_the_next_free_name(context):
    UserFactory(username="bob")
    UserFactory(username="BOB-2")
    assert sign_in("s-1", preferred_username="bob").username == "bob-3"
    # Without a username claim, the e-mail's local part; without either, "user".
    assert sign_in("s-2", email="carol@corp.example").username == "carol"
    assert sign_in("s-3").username == "user"
    assert sign_in("s-4", preferred_username="../../etc passwd").username == "etc-passwd"


def test_rules_grant_the_highest_matching_role_per_context(context, other_context):
    services.sso_rule_create(actor=None, context=context, claim_value="ml-platform", role="publisher")
    services.sso_rule_create(actor=None, context=context, claim_value="everyone", role="viewer")
    services.sso_rule_create(actor=None, context=other_context, claim_value="everyone", role="viewer")
    user = sign_in("s-1", "ml-platform", "everyone")
    assert roles(user) == {("acme", "publisher", "sso"), ("other", "viewer", "sso")}
    assert effective_role(user, context) == "publisher"

    # Re-evaluated at every sign-in: leaving ml-platform lowers the role, leaving everything removes it.
    sign_in("s-1", "everyone")
    assert roles(user) == {("acme", "viewer", "sso"), ("other", "viewer", "sso")}
    assert AuditEvent.objects.filter(action="member.change", context=context, changes__role=["publisher", "viewer"]).exists()
    sign_in("s-1")
    assert roles(user) == set()
    assert AuditEvent.objects.filter(action="member.remove", context=other_context).count() == 1


def test_a_claim_that_is_missing_or_malformed_counts_as_no_values(context):
    services.sso_rule_create(actor=None, context=context, claim_value="ml", role="editor")
    user = sign_in("s-1", "ml")
    assert roles(user) == {("acme", "editor", "sso")}
    for claims in ({}, {"groups": None}, {"groups": {"ml": True}}, {"groups": [["ml"]]}):
        services.sso_sign_in(issuer=ISSUER, claims={"sub": "s-1", **claims}, roles_claim="groups",
                             username_claim="preferred_username")
        assert roles(user) == set(), claims
        sign_in("s-1", "ml")
    # One string is one value.
    services.sso_sign_in(issuer=ISSUER, claims={"sub": "s-1", "groups": "ml"}, roles_claim="groups",
                         username_claim="preferred_username")
    assert roles(user) == {("acme", "editor", "sso")}


def test_hand_granted_roles_are_left_alone_and_the_highest_counts(context, users):
    services.sso_rule_create(actor=None, context=context, claim_value="ml", role="viewer")
    user = sign_in("s-1", "ml", preferred_username="dana")
    services.membership_set(actor=None, context=context, role="admin", username="dana")
    assert effective_role(user, context) == "admin"
    sign_in("s-1")  # no group any more: the SSO role goes, the admin's grant stays
    assert roles(user) == {("acme", "admin", "manual")}
    sign_in("s-1", "ml")
    assert roles(user) == {("acme", "admin", "manual"), ("acme", "viewer", "sso")}
    # An admin changes or removes the hand-granted role only.
    services.membership_set(actor=None, context=context, role="editor", username="dana")
    services.membership_remove(actor=None, context=context, username="dana")
    assert roles(user) == {("acme", "viewer", "sso")}
    with pytest.raises(Conflict):
        services.membership_remove(actor=None, context=context, username="dana")


def test_deleting_a_rule_takes_its_roles_away_at_once(context):
    rule = services.sso_rule_create(actor=None, context=context, claim_value="ml", role="editor")
    first, second = sign_in("s-1", "ml"), sign_in("s-2", "ml")
    admin = UserFactory(username="root", is_superuser=True)

    assert services.sso_rule_delete(actor=admin, rule=rule) == 2

    assert roles(first) == roles(second) == set()
    assert not SsoRule.objects.exists()
    assert AuditEvent.objects.filter(action="member.remove", context=context, actor=admin).count() == 2
    assert AuditEvent.objects.filter(action="sso_rule.delete", context=context, actor=admin).exists()


# --- the rules' API -------------------------------------------------------------------------

RULES = "/api/v1/sso-rules/"


def test_admins_create_list_and_delete_rules(clients, users, context):
    created = clients["admin"].post(RULES, {"claim_value": "ml-platform", "context": "acme", "role": "publisher"},
                                    format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body | {"id": 0, "created_at": ""} == {"id": 0, "claim_value": "ml-platform", "context": "acme",
                                                   "role": "publisher", "holders": 0, "created_by": "admin",
                                                   "created_at": ""}
    event = AuditEvent.objects.get(action="sso_rule.create")
    assert event.context == context and event.actor == users["admin"]
    sign_in("s-1", "ml-platform")
    listed = clients["admin"].get(RULES).json()["results"]
    assert [(rule["claim_value"], rule["holders"]) for rule in listed] == [("ml-platform", 1)]
    assert clients["viewer"].get(RULES).json()["results"] == []
    assert clients["outsider"].get(RULES).json()["results"] == []

    assert clients["admin"].delete(f"{RULES}{body['id']}/").status_code == 204
    assert not SsoRule.objects.exists() and not Membership.objects.filter(source="sso").exists()


@pytest.mark.parametrize(("body", "field"), [
    ({"claim_value": "ml", "context": "no-such-context", "role": "viewer"}, "context"),
    ({"claim_value": "ml", "context": "other", "role": "viewer"}, "context"),  # exists, not managed
    ({"claim_value": "ml", "context": "acme", "role": "emperor"}, "role"),
    ({"claim_value": "", "context": "acme", "role": "viewer"}, "claim_value"),
    ({"claim_value": "x" * 256, "context": "acme", "role": "viewer"}, "claim_value"),
    ({"claim_value": "a\u0000b", "context": "acme", "role": "viewer"}, None),
    ({"claim_value": "ml", "context": ["acme"], "role": "viewer"}, "context"),
    ({"context": "acme", "role": "viewer"}, "claim_value"),
])
def test_invalid_rules_are_400_and_write_nothing(clients, context, other_context, body, field):
    response = clients["admin"].post(RULES, body, format="json")
    assert response.status_code == 400, response.content
    if field:
        assert response.json()["field"] == field
    assert not SsoRule.objects.exists() and not AuditEvent.objects.filter(action__startswith="sso_rule").exists()
    # The answer for a context one does not manage is the one for a context that does not exist.
    if body.get("context") == "other":
        assert "other" in response.json()["detail"] and "that you manage" in response.json()["detail"]


def test_a_second_rule_for_a_value_and_context_is_409(clients, context):
    body = {"claim_value": "ml", "context": "acme", "role": "viewer"}
    assert clients["admin"].post(RULES, body, format="json").status_code == 201
    again = clients["admin"].post(RULES, {**body, "role": "admin"}, format="json")
    assert again.status_code == 409 and again.json()["field"] == "claim_value"
    assert SsoRule.objects.get().role == "viewer"


def test_staff_manage_the_rules_of_every_context(context, other_context):
    staff = client_for(UserFactory(username="root", is_superuser=True))
    for slug in ("acme", "other"):
        assert staff.post(RULES, {"claim_value": "ml", "context": slug, "role": "viewer"}, format="json").status_code == 201
    assert {rule["context"] for rule in staff.get(RULES).json()["results"]} == {"acme", "other"}


def test_rule_list_query_count(clients, context, other_context):
    def add(count):
        for index in range(SsoRule.objects.count(), SsoRule.objects.count() + count):
            services.sso_rule_create(actor=None, context=context, claim_value=f"group-{index}", role="viewer")
            sign_in(f"s-{index}", f"group-{index}")
    add(2)
    admin = clients["admin"]
    admin.get(RULES)
    with CaptureQueriesContext(connection) as small:
        assert admin.get(RULES).status_code == 200
    add(20)
    with CaptureQueriesContext(connection) as large:
        assert len(admin.get(RULES).json()["results"]) == 22
    assert len(large.captured_queries) == len(small.captured_queries)


def test_members_show_where_a_role_comes_from(clients, context):
    services.sso_rule_create(actor=None, context=context, claim_value="ml", role="editor")
    sign_in("s-1", "ml", preferred_username="erin")
    members = {m["name"]: m for m in clients["viewer"].get("/api/v1/contexts/acme/members/").json()["results"]}
    assert members["erin"]["source"] == "sso" and members["erin"]["sso_rule"] == "ml"
    assert members["admin"]["source"] == "manual" and members["admin"]["sso_rule"] is None
    # Only the rule decides an SSO role: removing it by hand is refused, naming why.
    refused = clients["admin"].delete("/api/v1/contexts/acme/members/erin/")
    assert refused.status_code == 409 and "single sign-on rule" in refused.json()["detail"]
