"""A protected alias as two publishers walk it through the real UI: the admin protects
`production` on the context's settings page; a publisher moves it, which makes a move request
showing that the move breaks the signature; the author may only withdraw; a second publisher
approves it in the in-page dialog, and the alias moves. Screenshots under test-artifacts/screenshots/.
"""

from __future__ import annotations

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture then skips, or fails under CI, with the reason
    expect = None

from registry import services
from registry.models import Alias
from tests.browser.conftest import log_in, make_context, make_user, screenshot
from tests.helpers import store_file

pytestmark = pytest.mark.django_db(transaction=True)

F32 = {"inputs": [{"name": "x", "dtype": "float32", "shape": [-1, 4]}], "outputs": []}
I64 = {"inputs": [{"name": "x", "dtype": "int64", "shape": [-1, 4]}], "outputs": []}


def test_a_protected_alias_moves_after_a_second_publishers_approval(new_page):
    acme = make_context("acme", "Acme")
    make_user("ada", contexts={acme: "admin"})
    make_user("alice", contexts={acme: "publisher"})
    make_user("bob", contexts={acme: "publisher"})
    model = services.model_create(actor=None, context=acme, name="Churn")
    for signature in (F32, I64):
        version = services.version_create(actor=None, model=model, signature=signature)
        store_file(version)
        services.version_publish(actor=None, version=version)
    services.alias_set(actor=None, model=model, name="production", version_number=1)

    admin = new_page()
    log_in(admin, "ada")
    admin.goto("/c/acme/settings/")
    admin.get_by_label("Alias name").fill("production")
    admin.get_by_role("button", name="Protect").click()
    expect(admin.locator("table.protected-aliases")).to_contain_text("production")
    screenshot(admin, "context-settings-protected-aliases")

    alice = new_page()
    log_in(alice, "alice")
    alice.goto(f"/models/{model.pk}/aliases/")
    expect(alice.locator(".protected-badge")).to_have_text("protected")
    form = alice.get_by_role("region", name="Set or move an alias")
    form.get_by_role("combobox", name="Alias").fill("production")
    form.get_by_label("Version").select_option("2")
    form.get_by_label("Comment").fill("v2 scores better")
    form.get_by_role("button", name="Set alias").click()
    requests = alice.locator("table.move-requests")
    expect(requests).to_contain_text("Move production from version 1 to version 2")
    expect(requests).to_contain_text("BREAKING")
    expect(requests.get_by_role("link", name="Approve…")).to_have_count(0)
    expect(requests.get_by_role("link", name="Withdraw…")).to_be_visible()
    screenshot(alice, "aliases-tab-move-request-author")

    bob = new_page()
    log_in(bob, "bob")
    bob.goto(f"/models/{model.pk}/aliases/")
    bob.locator("table.move-requests").get_by_role("link", name="Approve…").click()
    dialog = bob.get_by_role("dialog")
    expect(dialog).to_contain_text("changed type from float32 to int64")
    dialog.get_by_label("Comment").fill("checked the callers")
    screenshot(bob, "approve-move-request-dialog", full_page=False)
    dialog.get_by_role("button", name="Approve").click()
    expect(bob.locator("ul.messages")).to_contain_text("approved")
    expect(bob.locator("table.move-requests")).to_have_count(0)
    screenshot(bob, "aliases-tab-after-approval")
    assert Alias.objects.get(model=model, name="production").version.number == 2


def test_a_scoped_token_made_in_the_dashboard_and_revoked_by_the_context_admin(new_page):
    acme = make_context("acme", "Acme")
    make_context("other", "Other")
    make_user("ada", contexts={acme: "admin"})
    make_user("dev", contexts={acme: "publisher"})
    services.model_create(actor=None, context=acme, name="Churn")

    dev = new_page()
    log_in(dev, "dev")
    dev.goto("/tokens/")
    form = dev.locator("#new-token-form")
    form.get_by_label("Name").fill("deploy churn")
    form.get_by_label("Only these models").fill("acme/churn")
    form.get_by_label("view-model").check()
    form.get_by_role("button", name="Create token").click()
    expect(dev.locator(".token-reveal")).to_contain_text("acme/Churn")
    row = dev.locator("table.list tbody tr").first
    expect(row).to_contain_text("only acme/Churn")
    expect(row).to_contain_text("view-model")
    screenshot(dev, "tokens-page-scoped-token")

    admin = new_page()
    log_in(admin, "ada")
    admin.goto("/c/acme/settings/")
    admin.get_by_role("link", name="Tokens that can act in Acme").click()
    table = admin.locator("table.context-tokens")
    expect(table).to_contain_text("deploy churn")
    screenshot(admin, "context-tokens-page")
    table.get_by_role("link", name="Revoke…").click()
    admin.get_by_role("dialog").get_by_role("button", name="Revoke the token").click()
    expect(admin.locator("ul.messages")).to_contain_text("was revoked")
    expect(admin.locator("table.context-tokens")).to_have_count(0)
