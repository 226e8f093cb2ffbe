"""The dashboard's Content-Security-Policy (registry/settings.py, django-csp): every page answers
with it (the error pages too), and neither a template nor a rendered page holds what it blocks:
inline scripts, event handler attributes, javascript: URLs, <style> blocks and style attributes.
The API docs pages have their own policy (registry/urls.py); tests/browser/test_csp.py checks
in Chromium that nothing is blocked.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.db import OperationalError
from django.test import Client
from django.urls import reverse

from registry import services
from registry.models import Membership
from tests.dashboard.test_model_pages import CASES as MODEL_PAGE_CASES
from tests.dashboard.test_model_pages import case_id, world  # noqa: F401 (fixture)
from tests.dashboard.test_team_pages import context_get_urls, record  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "object-src": "'none'",
    "base-uri": "'none'",
    "frame-ancestors": "'none'",
    "form-action": "'self'",
}
# What the policy blocks, as it is written in HTML (a template or a rendered page).
BLOCKED = {
    # <script src=...> and JSON data blocks (json_script) are fine; any other <script> runs inline code.
    "inline <script>": re.compile(r"<script\b(?![^>]*\ssrc=)(?![^>]*\stype=[\"']application/json)[^>]*>", re.I),
    "<style> block": re.compile(r"<style\b", re.I),
    "style attribute": re.compile(r"<[a-z][^>]*\sstyle\s*=", re.I),
    "event handler attribute": re.compile(r"<[a-z][^>]*\son[a-z]+\s*=", re.I),
    "javascript: URL": re.compile(r"javascript:", re.I),
    # htmx evaluates these as code; it is configured not to (allowEval false, templates/base.html).
    "htmx code": re.compile(r"\shx-on[:-]|\shx-vars\s*=|\shx-(?:vals|headers)\s*=\s*[\"']\s*(?:js|javascript):"
                            r"|\shx-trigger\s*=\s*[\"'][^\"']*\[", re.I),
}
TEMPLATE_COMMENTS = re.compile(r"{#.*?#}|{% comment %}.*?{% endcomment %}", re.S)


def blocked_by_the_policy(html: str) -> list[str]:
    """What in this HTML the policy would block: ['style attribute: <div style=...', ...]."""
    return [f"{name}: {match.group(0)[:80]}" for name, pattern in BLOCKED.items() for match in pattern.finditer(html)]


def policy(response) -> dict[str, str]:
    header = response.get("Content-Security-Policy")
    assert header, f"no Content-Security-Policy on {response.status_code} {response.get('Content-Type')}"
    directives = (part.strip().split(None, 1) for part in header.split(";") if part.strip())
    return {name: value for name, value in directives}


def assert_strict_page(response, *, status: int = 200) -> None:
    assert response.status_code == status, response.content.decode()[:2000]
    assert policy(response) == POLICY
    if response["Content-Type"].startswith("text/html"):
        assert blocked_by_the_policy(response.content.decode()) == []


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def dashboard(name: str, **kwargs) -> str:
    return reverse(f"dashboard:{name}", kwargs=kwargs)


# --- the templates ----------------------------------------------------------------------------

def test_the_checks_find_what_the_policy_blocks():
    page = """<script>alert(1)</script><script src="/static/a.js" defer></script>
      <script id="d" type="application/json">{"a": 1}</script><style>p {}</style><p style="color: red">
      <button type="button" onclick="go()">x</button><input ONFOCUS = "this.select()"><a href="JavaScript:go()">
      <div hx-on:click="go()"></div><div hx-get="/x" hx-trigger="click[ctrlKey]"></div>"""
    assert [finding.split(":")[0] for finding in blocked_by_the_policy(page)] == [
        "inline <script>", "<style> block", "style attribute",
        "event handler attribute", "event handler attribute", "javascript", "htmx code", "htmx code",
    ]
    assert blocked_by_the_policy('<p>Turn on=off and restyle</p><a href="/x" data-confirm="Sure?">') == []


@pytest.mark.parametrize("template", sorted(str(path.relative_to(TEMPLATES)) for path in TEMPLATES.rglob("*.html")))
def test_no_template_holds_what_the_policy_blocks(template):
    """Scripts live in static/dashboard/app.js (event delegation on data- attributes), styles in
    static/dashboard/app.css."""
    source = TEMPLATE_COMMENTS.sub("", (TEMPLATES / template).read_text())
    assert blocked_by_the_policy(source) == []


# --- every page answers with the policy -------------------------------------------------------

@pytest.fixture
def world_with_metrics(world):  # noqa: F811 (the imported fixture)
    """The model pages' world, with metrics on the draft so its Metrics tab draws charts."""
    services.metrics_log(actor=None, version=world.draft, metrics=[
        {"key": "auc", "value": 0.81, "step": 1}, {"key": "auc", "value": 0.84, "step": 2},
        {"key": "<script>alert(1)</script>", "value": 1.0, "step": 1},
    ])
    return world


@pytest.mark.parametrize("case", [case for case in MODEL_PAGE_CASES if case.method == "GET"], ids=case_id)
def test_model_pages_send_the_policy(case, users, world_with_metrics):
    assert_strict_page(signed_in(users["admin"]).get(case.path(world_with_metrics)))


def test_team_pages_send_the_policy(users, context, record, world):  # noqa: F811 (the imported fixtures)
    member_id = Membership.objects.get(context=context, user=users["viewer"]).pk
    admin = signed_in(users["admin"])
    for url in context_get_urls(context, record, world.model, member_id):
        assert_strict_page(admin.get(url))


def test_the_other_dashboard_pages_send_the_policy(users, context, world):  # noqa: F811
    token, _ = services.token_create(actor=None, user=users["admin"], name="ci")
    admin = signed_in(users["admin"])
    assert_strict_page(admin.get(dashboard("home")), status=302)  # to the only context
    for url in [dashboard("model-list", ctx=context.slug), dashboard("model-create", ctx=context.slug),
                dashboard("token-list"), dashboard("token-revoke", token_id=token.pk),
                dashboard("trusted-import-list", ctx=context.slug)]:
        assert_strict_page(admin.get(url))
    assert_strict_page(Client().get(dashboard("login")))
    # A created token is shown once, with its Copy button.
    created = admin.post(dashboard("token-create"), {"name": "notebook"}, follow=True)
    assert_strict_page(created)
    assert 'data-copy="new-token"' in created.content.decode()


def test_error_pages_send_the_policy(settings, users, context, world, monkeypatch):  # noqa: F811
    assert_strict_page(signed_in(users["outsider"]).get(dashboard("model-detail", model_id=world.model.pk)), status=404)
    publish = dashboard("version-publish", model_id=world.model.pk, number=world.draft.number)
    assert_strict_page(signed_in(users["viewer"]).post(publish), status=403)
    settings.REGISTRY_MAX_UPLOAD_BYTES = 1000
    upload = dashboard("format-upload", model_id=world.model.pk, number=world.draft.number)
    too_large = signed_in(users["editor"]).post(upload, data=b"--x\r\n", CONTENT_LENGTH=str(10**9),
                                                content_type="multipart/form-data; boundary=x")
    assert_strict_page(too_large, status=413)
    settings.AXES_FAILURE_LIMIT = 1
    for _ in range(2):
        locked_out = Client().post(dashboard("login"), {"username": "viewer", "password": "wrong"})
    assert_strict_page(locked_out, status=429)

    def database_gone(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr("registry.selectors.context_list", database_gone)
    assert_strict_page(signed_in(users["viewer"]).get(dashboard("home")), status=503)


def test_the_admin_runs_under_the_same_policy():
    """Django's admin has no inline scripts or styles of its own (tests/browser/test_csp.py uses it)."""
    staff = get_user_model().objects.create_superuser("root", password="x")
    client = signed_in(staff)
    for url in ["/admin/", "/admin/auth/user/", f"/admin/auth/user/{staff.pk}/change/", "/admin/registry/context/add/"]:
        assert_strict_page(client.get(url))


def test_the_api_docs_pages_run_under_a_policy(users):
    client = signed_in(users["viewer"])
    swagger = client.get(reverse("api-docs"))
    assert_strict_page(swagger)
    script_url = re.search(r'<script src="([^"]*\?[^"]*script=[^"]*)"', swagger.content.decode()).group(1)
    script = client.get(script_url.replace("&amp;", "&"))
    assert script.status_code == 200 and script["Content-Type"].startswith("application/javascript")

    # Redoc: its own <style> elements carry this response's nonce; nothing else is inline.
    redoc = client.get(reverse("api-redoc"))
    assert redoc.status_code == 200
    page = redoc.content.decode()
    assert blocked_by_the_policy(page) == []
    nonce = re.search(r'<script src="[^"]*/api-docs/redoc\.js" nonce="([^"]+)"', page).group(1)
    redoc_policy = policy(redoc)
    styles = redoc_policy.pop("style-src").split()
    assert styles[:2] == ["'self'", f"'nonce-{nonce}'"]
    assert all(source.startswith("'sha256-") for source in styles[2:])
    assert redoc_policy.pop("worker-src") == "'self' blob:"
    assert redoc_policy == {key: value for key, value in POLICY.items() if key != "style-src"}
    assert "fonts.googleapis.com" not in page
    # A new nonce on every response.
    assert nonce not in client.get(reverse("api-redoc"))["Content-Security-Policy"]
