"""A context admin sets up a webhook through the real UI: adds it (its secret shown once), sends a
test event that a real receiver on loopback gets and verifies, reads the delivery with its
attempt, then disables the hook. Every page checked is saved under test-artifacts/screenshots/."""

from __future__ import annotations

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture then skips, or fails under CI, with the reason
    expect = None

from registry_client import webhooks as client_webhooks

from registry.models import Webhook
from tests.browser.conftest import log_in, make_context, make_user, screenshot
from tests.browser.test_model_journeys import confirm_in_dialog, flash
from tests.webhook_receiver import receiver  # noqa: F401 (the fixture)

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_admin_adds_a_webhook_and_sends_a_test_event(page, receiver):
    acme = make_context("acme", "Acme")
    make_user("ada", contexts={acme: "admin"})
    log_in(page, "ada")
    page.goto("/")
    page.get_by_role("link", name="Webhooks").first.click()
    expect(page.get_by_role("heading", name="Webhooks")).to_be_visible()

    form = page.locator("#new-webhook")
    form.get_by_label("Payload URL").fill(receiver.url())
    form.get_by_label("Version published").check()
    form.get_by_label("Alias moved").check()
    form.get_by_role("button", name="Add webhook").click()
    secret = page.get_by_label("Signing secret").input_value()
    assert secret.startswith("whsec_")
    expect(page.get_by_text("Copy it now: it will not be shown again.")).to_be_visible()
    screenshot(page, "webhooks-added")

    page.get_by_role("link", name=receiver.url()).click()
    page.get_by_role("button", name="Send test event").click()
    expect(flash(page)).to_contain_text("Test event queued")
    [request] = receiver.requests
    event = client_webhooks.verify(request.body, request.headers["X-Registry-Signature"], secret)
    assert event["type"] == "webhook.test" and event["actor"] == "ada"
    row = page.locator("table.deliveries tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("webhook.test")
    expect(row).to_contain_text("delivered")
    expect(row.locator(".attempts li")).to_contain_text("200")
    screenshot(page, "webhook-detail")

    confirm_in_dialog(page, page.get_by_role("button", name="Disable"), "Disable")
    expect(flash(page)).to_contain_text("Webhook disabled")
    assert Webhook.objects.get().enabled is False
