"""Signing in with single sign-on in a real browser: the registry's "Sign in with Example Corp",
the identity provider's own sign-in page (a real OpenID Connect provider in its own process,
tests/oidc.py), and back to the registry with the role a single sign-on rule grants."""

from __future__ import annotations

import re

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture then skips, or fails under CI, with the reason
    expect = None

from registry import services
from registry.models import Membership
from tests.browser.conftest import make_context, screenshot
from tests.oidc import PROVIDER_NAME, oidc_provider, sso  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.subprocess]


def test_sign_in_through_the_identity_provider(page, sso, settings):
    settings.REGISTRY_PASSWORD_SIGNIN = False
    fraud = make_context("fraud", "Fraud detection")
    services.sso_rule_create(actor=None, context=fraud, claim_value="ml-platform", role="publisher")
    sso.user("alice", "alice-at-corp", "ml-platform", "everyone")

    page.goto("/c/fraud/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/c/fraud/"))
    button = page.get_by_role("link", name=f"Sign in with {PROVIDER_NAME}")
    expect(button).to_be_visible()
    expect(page.get_by_label("Password")).to_have_count(0)  # passwords are turned off
    screenshot(page, "sso-sign-in-page")

    button.click()
    expect(page.get_by_role("heading", name="Example Corp identity provider")).to_be_visible()
    assert page.url.startswith(sso.url)
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("alice-at-corp")
    screenshot(page, "sso-provider-sign-in")
    page.get_by_role("button", name="Sign in to Example Corp").click()

    expect(page).to_have_url(re.compile(r"/c/fraud/$"))
    expect(page.get_by_role("heading", name="Models")).to_be_visible()
    expect(page.locator(".context-picker summary")).to_have_text("Fraud detection")
    screenshot(page, "sso-signed-in")
    assert Membership.objects.get(user__username="alice", context=fraud).role == "publisher"

    page.goto("/c/fraud/members/")
    row = page.locator("tr", has_text="alice")
    expect(row).to_contain_text("single sign-on: ml-platform")
    expect(row).to_contain_text("Publisher")
    screenshot(page, "sso-members")
