"""A file that needs review, as a publisher walks it through the real UI: upload a pickle that
imports third-party code, see it needs review and why publishing is refused, approve its imports
with a reason, see it ready, publish, and find the import on the context's Trusted imports page.

The pickle is written by hand as bytes and never loaded. Every page checked is saved under
test-artifacts/screenshots/.
"""

from __future__ import annotations

import re

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture then skips, or fails under CI, with the reason
    expect = None

from registry import services
from registry.models import Format, TrustedImport, Version
from tests.browser.conftest import log_in, make_context, make_user, screenshot
from tests.browser.test_model_journeys import (
    file_payload,
    flash,
    publish_in_details_tab,
    tab,
)

pytestmark = pytest.mark.django_db(transaction=True)

# Calls mylibrary.models.Scorer("f1") when loaded (protocol 2): third-party code the scanner cannot vet.
SCORER = b"\x80\x02cmylibrary.models\nScorer\nX\x02\x00\x00\x00f1\x85R."
REASON = "Our own scoring package, reviewed in PR 412"


def test_a_publisher_approves_the_imports_of_a_file_in_review_and_publishes(page):
    acme = make_context("acme", "Acme")
    make_user("alice", contexts={acme: "publisher"})
    model = services.model_create(actor=None, context=acme, name="Credit scorer")
    services.version_create(actor=None, model=model, framework="mylibrary")

    log_in(page, "alice")
    page.get_by_role("link", name="Credit scorer").click()
    tab(page, "Formats").click()
    add = page.locator("section", has=page.get_by_role("heading", name="Add a file"))
    add.get_by_label("Kind").select_option("pkl")
    add.get_by_label("File").set_input_files(file_payload(SCORER, "scorer.pkl"))
    add.get_by_role("button", name="Upload").click()

    card = page.locator("#format-pkl")
    expect(card.locator("#format-status-pkl .badge").first).to_have_text("needs review")
    review = card.get_by_role("region", name="Imports that need review")
    row = review.locator("table.unvetted tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("mylibrary.models.Scorer")
    expect(row).to_contain_text("called")
    # The download is not one click away: it asks for an acknowledgement first.
    expect(card.get_by_role("link", name="Download", exact=True)).to_have_count(0)
    card.get_by_role("link", name="Download…").click()
    warning = page.get_by_role("dialog", name="Download the pkl file anyway?")
    expect(warning).to_contain_text("This file needs review")
    expect(warning.get_by_role("button", name="Download anyway")).to_be_visible()
    screenshot(page, "format-needs-review")
    warning.get_by_role("link", name="Cancel").click()
    expect(warning).to_be_hidden()

    # Publishing is not offered while the file needs review: the button says why.
    tab(page, "Details").click()
    expect(page.get_by_role("button", name="Publish", exact=True)).to_be_disabled()
    expect(page.locator("#publish-refusal")).to_have_text(
        "The pkl file needs review: a publisher approves its imports in the Formats tab.")
    screenshot(page, "publish-refused-needs-review")
    assert Version.objects.get(model=model, number=1).status == "draft"

    tab(page, "Formats").click()
    review = page.locator("#format-pkl").get_by_role("region", name="Imports that need review")
    review.get_by_label("Why can this code be trusted?").fill(REASON)
    review.get_by_role("button", name="Approve these imports").click()
    expect(flash(page)).to_contain_text("The imports of the pkl file are now trusted in Acme; the file is ready.")
    card = page.locator("#format-pkl")
    expect(card.locator("#format-status-pkl .badge").first).to_have_text("ready")
    expect(card.locator("#format-status-pkl")).to_contain_text("trusted in this context: mylibrary.models.Scorer")
    expect(card.get_by_role("region", name="Imports that need review")).to_have_count(0)
    expect(card.get_by_role("link", name="Download", exact=True)).to_be_visible()
    screenshot(page, "format-imports-approved")
    assert Format.objects.get(version__model=model).status == "ready"

    publish_in_details_tab(page, 1)
    expect(flash(page)).to_contain_text("Version 1 is published")
    expect(page.get_by_role("heading", name=re.compile("Version 1")).locator(".badge")).to_have_text("published")
    screenshot(page, "published-after-review")
    assert Version.objects.get(model=model, number=1).status == "published"

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Trusted imports").click()
    entry = page.locator("table.trusted-imports tbody tr")
    expect(entry).to_have_count(1)
    expect(entry).to_contain_text("mylibrary.models.Scorer")
    expect(entry).to_contain_text(REASON)
    expect(entry).to_contain_text("alice")
    expect(entry.get_by_role("button", name="Revoke mylibrary.models.Scorer")).to_be_visible()
    screenshot(page, "trusted-imports")
    assert TrustedImport.objects.get().reason == REASON
