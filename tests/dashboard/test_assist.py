"""Help while filling in forms (issue 15): the Markdown preview, member suggestions for context
admins only, the tokens page's navigation and wording, and small page furniture."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from registry import services

pytestmark = pytest.mark.django_db


def web(user=None, **kwargs) -> Client:
    client = Client(**kwargs)
    if user is not None:
        client.force_login(user)
    return client


# --- the Markdown preview --------------------------------------------------------------------------------------

PREVIEW = reverse("dashboard:markdown-preview")


def test_preview_renders_through_the_same_sanitizer(users):
    text = 'Run `a < b && "c"`\n\n<script>alert(1)</script>\n\n| x |\n|---|\n| <img src=x onerror=alert(1)> |'
    response = web(users["viewer"]).post(PREVIEW, {"description": text})
    assert response.status_code == 200
    body = response.content.decode()
    assert "<code>a &lt; b &amp;&amp; \"c\"</code>" in body
    assert "<table>" in body
    for bad in ("<script", "onerror", "&amp;lt;"):
        assert bad not in body
    assert "Nothing to preview" in web(users["viewer"]).post(PREVIEW, {"description": "  "}).content.decode()


def test_preview_is_csrf_protected_and_for_signed_in_users_only(users):
    assert web().post(PREVIEW, {"description": "x"}).status_code == 302  # to the sign-in page
    assert web(users["viewer"], enforce_csrf_checks=True).post(PREVIEW, {"description": "x"}).status_code == 403
    assert web(users["viewer"]).get(PREVIEW).status_code == 405


def test_description_fields_offer_the_preview(users, context):
    model = services.model_create(actor=users["editor"], context=context, name="m")
    for name, kwargs in [("model-list", {"ctx": context.slug}), ("model-edit", {"model_id": model.pk}),
                         ("version-create", {"model_id": model.pk}), ("record-create", {"ctx": context.slug})]:
        page = web(users["editor"]).get(reverse(f"dashboard:{name}", kwargs=kwargs)).content.decode()
        assert f'hx-post="{PREVIEW}"' in page and 'hx-params="description"' in page, name


# --- member suggestions ------------------------------------------------------------------------------------------

def suggestions_url(context, q: str) -> str:
    return reverse("dashboard:member-suggestions", kwargs={"ctx": context.slug}) + f"?q={q}"


def test_admins_get_accounts_and_groups_by_prefix_that_are_not_members_yet(users, context):
    accounts = get_user_model().objects
    accounts.create_user(username="dana.lee", password="x")
    accounts.create_user(username="daniel", password="x")
    accounts.create_user(username="dave-gone", password="x", is_active=False)
    Group.objects.create(name="data-science")
    services.membership_set(actor=None, context=context, role="viewer", username="daniel")
    found = web(users["admin"]).get(suggestions_url(context, "Da")).json()
    assert found == {"users": ["dana.lee"], "groups": ["data-science"]}
    assert web(users["admin"]).get(suggestions_url(context, "d")).json() == {"users": [], "groups": []}


@pytest.mark.parametrize("persona,status", [("viewer", 403), ("editor", 403), ("publisher", 403), ("outsider", 404)])
def test_nobody_else_may_search_accounts(users, context, persona, status):
    assert web(users[persona]).get(suggestions_url(context, "ad")).status_code == status


def test_the_add_member_form_knows_where_to_ask(users, context):
    page = web(users["admin"]).get(reverse("dashboard:member-list", kwargs={"ctx": context.slug})).content.decode()
    assert f'data-suggest-url="{reverse("dashboard:member-suggestions", kwargs={"ctx": context.slug})}"' in page


# --- the tokens page -----------------------------------------------------------------------------------------------

def test_the_tokens_page_keeps_the_context_navigation(users, context, other_context):
    tokens = reverse("dashboard:token-list")
    records = reverse("dashboard:record-list", kwargs={"ctx": context.slug})
    page = web(users["editor"]).get(f"{tokens}?ctx={context.slug}").content.decode()
    assert f'href="{records}"' in page and f'action="{reverse("dashboard:token-create")}?ctx=acme"' in page
    # The user's only context is the default; a context the user cannot see gives none.
    assert f'href="{records}"' in web(users["editor"]).get(tokens).content.decode()
    hidden = web(users["editor"]).get(f"{tokens}?ctx={other_context.slug}").content.decode()
    assert "/records/" not in hidden
    services.membership_set(actor=None, context=other_context, role="viewer", username=users["editor"].username)
    assert "/records/" not in web(users["editor"]).get(tokens).content.decode()  # two contexts: which one?


def test_token_expiry_has_no_placeholder_that_reads_like_a_default(users):
    page = web(users["editor"]).get(reverse("dashboard:token-list")).content.decode()
    field = page.split('name="expires_in_days"', 1)[1].split(">", 1)[0]
    assert "placeholder" not in field
    assert "Empty: the token never expires." in page


# --- page furniture -------------------------------------------------------------------------------------------------

def test_every_page_has_a_skip_link_and_an_icon(users, context):
    page = web(users["viewer"]).get(reverse("dashboard:model-list", kwargs={"ctx": context.slug})).content.decode()
    assert '<a class="skip-link" href="#main">Skip to content</a>' in page and '<main class="page" id="main"' in page
    assert 'rel="icon" href="/static/dashboard/favicon.svg"' in page
    response = web().get("/favicon.ico")
    assert response.status_code == 302 and response["Location"] == "/static/dashboard/favicon.svg"


def test_a_file_sent_without_a_name_shows_the_name_downloads_get(users, context):
    from tests.helpers import store_file

    model = services.model_create(actor=users["editor"], context=context, name="churn")
    version = services.version_create(actor=users["editor"], model=model)
    store_file(version, actor=users["editor"])  # as curl -T sends it: no filename
    page = web(users["viewer"]).get(reverse("dashboard:version-formats", kwargs={
        "model_id": model.pk, "number": 1})).content.decode()
    assert "(no name given)" not in page
    assert "churn-v1.pkl <span class=\"muted\">(sent without a name" in page


def test_the_description_shows_on_the_overview_and_is_collapsed_on_version_tabs(users, context):
    model = services.model_create(actor=users["editor"], context=context, name="m", description="Use **it**.")
    services.version_create(actor=users["editor"], model=model)
    overview = web(users["viewer"]).get(reverse("dashboard:model-detail", kwargs={"model_id": model.pk})).content.decode()
    assert '<div class="markdown model-description"><p>Use <strong>it</strong>.</p></div>' in overview
    for name in ("version-detail", "version-formats", "version-metrics"):
        tab = web(users["viewer"]).get(reverse(f"dashboard:{name}", kwargs={"model_id": model.pk, "number": 1}))
        assert '<details class="model-description"><summary>Description</summary>' in tab.content.decode(), name
