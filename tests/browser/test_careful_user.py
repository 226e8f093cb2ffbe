"""Issue 15, the dashboard as a careful user finds it, in Chromium at 1280 and 390 px wide: code in
descriptions reads as typed and the editor previews it; version tabs keep the picker, tabs and
actions above the fold; a corrupt file shows on every badge and chip of its version and downloads
only through a warning; refused actions are disabled with the reason; JSON is checked as typed;
confirmations are in-page dialogs (and pages without JavaScript); the empty state after the last
version; member suggestions and the tokens page's navigation; hashes on a phone, the skip link.
Screenshots land in test-artifacts/screenshots/issue15-*.png.
"""

from __future__ import annotations

import re

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture then skips, or fails under CI, with the reason
    expect = None

from django.contrib.auth.models import Group

from registry import services
from registry.models import Format, FormatStatus, Model, Version
from tests.browser.conftest import assert_no_horizontal_overflow, log_in, make_context, make_user, screenshot
from tests.browser.test_model_journeys import benign_pickle, confirm_in_dialog, flash, tab, upload

pytestmark = pytest.mark.django_db(transaction=True)

PHONE = {"width": 390, "height": 844}
SNIPPET = 'model = load("churn.pkl") if a < b && c > 0 else None'
DESCRIPTION = f"""Predicts which customers will leave within 90 days, from the last six months of activity.

Load it with `registry.load("churn", alias="production")` and call `predict(df)` where `df["x"] < 5`:

```python
{SNIPPET}
```

| Input | Type | Note |
|-------|------|------|
| `tenure` | int | months & counting |
| `plan` | str | "basic" or "pro" |

Trained weekly on the warehouse snapshot; owners: the retention team. Questions go to #ml-retention.
Known limits: new customers (under a month) get a flat score; very large accounts are underrepresented.
"""


def sign_in(new_page, username: str, **size):
    page = new_page(**size)
    log_in(page, username)
    return page


def cell_border(page, selector: str) -> str:
    return page.locator(selector).first.evaluate("el => getComputedStyle(el).borderTopWidth + ' ' + getComputedStyle(el).borderTopStyle")


# --- 1. Markdown ------------------------------------------------------------------------------------------------

def test_code_in_descriptions_reads_as_typed_and_the_editor_previews_it(new_page):
    acme = make_context("acme", "Acme")
    make_user("alice", contexts={acme: "editor"})
    model = services.model_create(actor=None, context=acme, name="Churn", description=DESCRIPTION)
    page = sign_in(new_page, "alice")
    page.goto(f"/models/{model.pk}/")
    shown = page.locator(".model-description")
    expect(shown.locator("pre code")).to_have_text(SNIPPET + "\n")
    expect(shown.locator("p code").first).to_have_text('registry.load("churn", alias="production")')
    expect(shown.locator("td").nth(2)).to_have_text("months & counting")
    assert "&quot;" not in shown.inner_text() and "&amp;" not in shown.inner_text()
    assert cell_border(page, ".markdown td") == "1px solid"
    screenshot(page, "issue15-markdown-1280")

    page.get_by_role("link", name="Edit model").click()
    dialog = page.get_by_role("dialog", name="Edit model")
    dialog.get_by_label("Description").fill('Use `x < 1 && "y"`\n\n| a | b |\n|---|---|\n| 1 & 2 | <script>alert(1)</script> |')
    dialog.get_by_role("button", name="Preview").click()
    preview = dialog.locator(".markdown-preview")
    expect(preview.locator("code")).to_have_text('x < 1 && "y"')
    expect(preview.locator("td").first).to_have_text("1 & 2")
    expect(preview.locator("script")).to_have_count(0)
    screenshot(page, "issue15-markdown-preview", full_page=False)


# --- 2. The header on version tabs --------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [{"width": 1280, "height": 800}, PHONE], ids=["1280", "390"])
def test_version_tabs_keep_the_picker_tabs_and_actions_above_the_fold(new_page, size):
    acme = make_context("acme", "Acme")
    make_user("alice", contexts={acme: "admin"})
    model = services.model_create(actor=None, context=acme, name="Churn", description=DESCRIPTION * 2,
                                  tags="tabular, churn", task="classification")
    for _ in range(2):
        upload(services.version_create(actor=None, model=model), benign_pickle())
    page = sign_in(new_page, "alice", **size)
    page.goto(f"/models/{model.pk}/versions/2/")
    description = page.locator("details.model-description")
    expect(description).not_to_have_attribute("open", "")
    fold = size["height"]
    for control in (page.locator("details.version-menu summary"), page.get_by_role("navigation", name="Version tabs"),
                    page.get_by_role("link", name="Publish…"), page.get_by_role("link", name="Delete version…")):
        box = control.bounding_box()
        assert box and box["y"] + box["height"] <= fold, f"{control} ends at {box} below the fold ({fold})"
    assert_no_horizontal_overflow(page)
    screenshot(page, f"issue15-version-tab-{size['width']}", full_page=False)
    description.locator("summary").click()
    expect(description.locator("pre code").first).to_be_visible()
    # The overview shows it in full.
    page.goto(f"/models/{model.pk}/")
    expect(page.locator("div.model-description pre code").first).to_be_visible()


# --- 3. Worst file state ----------------------------------------------------------------------------------------

def corrupt_production(acme) -> Model:
    model = services.model_create(actor=None, context=acme, name="Churn")
    first = services.version_create(actor=None, model=model)
    upload(first, benign_pickle(), filename="churn.pkl")
    services.version_publish(actor=None, version=first)
    services.alias_set(actor=None, model=model, name="production", version_number=1)
    Format.objects.filter(version=first).update(status=FormatStatus.CORRUPT,
                                                status_message="the stored bytes no longer match their SHA-256")
    upload(services.version_create(actor=None, model=model), benign_pickle())
    return model


@pytest.mark.parametrize("size", [{"width": 1280, "height": 800}, PHONE], ids=["1280", "390"])
def test_a_corrupt_file_shows_wherever_its_version_does(new_page, size):
    acme = make_context("acme", "Acme")
    make_user("alice", contexts={acme: "viewer"})
    model = corrupt_production(acme)
    page = sign_in(new_page, "alice", **size)
    chip = page.locator("table.models .chip", has_text="production")
    expect(chip).to_have_text("production → v1 · pkl corrupt")
    assert "chip-bad" in chip.get_attribute("class")
    assert_no_horizontal_overflow(page)
    screenshot(page, f"issue15-model-list-corrupt-{size['width']}")

    page.get_by_role("link", name="Churn").click()
    page.locator("details.version-menu summary").click()
    menu = page.locator("details.version-menu ul")
    expect(menu.locator("li", has_text="Version 1").locator(".badge")).to_have_text("published · pkl corrupt")
    expect(menu.locator("li", has_text="Version 2").locator(".badge")).to_have_text("draft")
    screenshot(page, f"issue15-version-menu-corrupt-{size['width']}", full_page=False)
    menu.get_by_role("link", name=re.compile(r"^Version 1\b")).click()
    bar = page.locator(".version-bar")
    expect(bar.locator(":scope > .badge")).to_have_text("published · pkl corrupt")
    expect(bar.locator(":scope > .chip")).to_have_text("production · pkl corrupt")
    assert page.locator(".badge-ok").count() == 0  # nothing about version 1 is green
    assert_no_horizontal_overflow(page)
    screenshot(page, f"issue15-version-corrupt-{size['width']}")


def test_a_flagged_file_downloads_only_after_the_warning(new_page):
    acme = make_context("acme", "Acme")
    make_user("alice", contexts={acme: "viewer"})
    model = corrupt_production(acme)
    page = sign_in(new_page, "alice")
    page.goto(f"/models/{model.pk}/versions/1/formats/")
    card = page.locator("#format-pkl")
    expect(card.get_by_role("link", name="Download", exact=True)).to_have_count(0)
    card.get_by_role("link", name="Download…").click()
    warning = page.get_by_role("dialog", name="Download the pkl file anyway?")
    expect(warning).to_contain_text("This file is corrupt (the stored bytes no longer match their SHA-256)")
    expect(warning.get_by_role("link", name="Cancel")).to_be_focused()
    screenshot(page, "issue15-download-warning", full_page=False)
    warning.get_by_role("button", name="Download anyway").click()  # not acknowledged: the form does not go
    expect(warning).to_be_visible()
    warning.get_by_label(re.compile("I understand the warning")).check()
    with page.expect_download() as download:
        warning.get_by_role("button", name="Download anyway").click()
    assert download.value.suggested_filename == "churn.pkl"


# --- 4. Errors before the work ------------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [{"width": 1280, "height": 800}, PHONE], ids=["1280", "390"])
def test_actions_the_registry_would_refuse_are_disabled_with_the_reason(new_page, settings, size):
    settings.REGISTRY_MAX_VERSIONS = 3
    acme = make_context("acme", "Acme")
    make_user("alice", contexts={acme: "admin"})
    model = services.model_create(actor=None, context=acme, name="Churn")
    first = services.version_create(actor=None, model=model)
    upload(first, benign_pickle())
    services.version_publish(actor=None, version=first)
    services.alias_set(actor=None, model=model, name="production", version_number=1)
    services.version_create(actor=None, model=model)  # v2: no file
    services.version_create(actor=None, model=model)  # v3: at the limit
    page = sign_in(new_page, "alice", **size)

    page.goto(f"/models/{model.pk}/versions/2/")
    expect(page.get_by_role("button", name="Publish", exact=True)).to_be_disabled()
    expect(page.locator("#publish-refusal")).to_have_text(
        "Upload a file first: a version needs at least one file to be published.")
    screenshot(page, f"issue15-publish-disabled-{size['width']}", full_page=False)

    page.goto(f"/models/{model.pk}/versions/1/")
    expect(page.get_by_role("button", name="Delete version", exact=True)).to_be_disabled()
    expect(page.locator("#delete-refusal")).to_contain_text("Alias production points to version 1")

    tab(page, "Aliases").click()
    expect(page.get_by_role("button", name="Roll back", exact=True)).to_be_disabled()
    expect(page.locator("#rollback-refusal-production")).to_contain_text("No earlier version to go back to")
    assert_no_horizontal_overflow(page)
    screenshot(page, f"issue15-rollback-disabled-{size['width']}")

    tab(page, "+ New version").click()
    expect(page.get_by_text("No room for a new version.")).to_be_visible()
    expect(page.locator("main")).to_contain_text("Churn already has 3 versions, the most allowed (3).")
    expect(page.locator('input[type="file"]')).to_have_count(0)
    screenshot(page, f"issue15-version-limit-{size['width']}", full_page=False)


def test_json_fields_are_checked_as_they_are_typed(new_page):
    acme = make_context("acme", "Acme")
    make_user("alice", contexts={acme: "editor"})
    model = services.model_create(actor=None, context=acme, name="Churn")
    page = sign_in(new_page, "alice")
    page.goto(f"/models/{model.pk}/versions/new/")
    hyper = page.get_by_label("Hyperparameters")
    hyper.fill('{"max_depth": 6,')
    hyper.blur()
    error = page.locator("#id_hyperparameters-live-error")
    expect(error).to_contain_text("This is not valid JSON")
    expect(hyper).to_have_attribute("aria-invalid", "true")
    page.get_by_label("Config").fill("[1, 2]")
    page.get_by_label("Config").blur()
    summary = page.locator("[data-error-summary]")
    expect(summary).to_contain_text("2 fields need fixing")
    expect(summary.get_by_role("link")).to_have_count(2)
    page.get_by_role("button", name="Create version").click()  # held back: nothing is sent
    expect(summary).to_be_focused()
    assert not Version.objects.filter(model=model).exists()
    screenshot(page, "issue15-json-errors", full_page=False)
    hyper.fill('{"max_depth": 6}')
    page.get_by_label("Config").fill("")
    page.get_by_label("Config").blur()
    expect(summary).to_be_hidden()
    page.get_by_role("button", name="Create version").click()
    expect(flash(page)).to_contain_text("Version 1 created")
    assert Version.objects.get(model=model).hyperparameters == {"max_depth": 6}


# --- 7. Confirmations -----------------------------------------------------------------------------------------------

def test_confirmations_are_accessible_in_page_dialogs(new_page):
    acme = make_context("acme", "Acme")
    make_user("alice", contexts={acme: "publisher"})
    model = services.model_create(actor=None, context=acme, name="Churn")
    upload(services.version_create(actor=None, model=model), benign_pickle())
    page = sign_in(new_page, **PHONE, username="alice")
    page.goto(f"/models/{model.pk}/versions/1/")
    opener = page.get_by_role("link", name="Publish…")
    opener.click()
    dialog = page.get_by_role("dialog", name="Publish version 1?")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("link", name="Cancel")).to_be_focused()  # the least harmful choice first
    screenshot(page, "issue15-publish-dialog-390", full_page=False)
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(opener).to_be_focused()
    asked = confirm_in_dialog(page, opener, "Publish version 1")
    assert "freezes version 1" in asked
    expect(flash(page)).to_contain_text("Version 1 is published")


def test_without_javascript_confirmations_are_pages(browser, server, csp_violations):
    acme = make_context("acme", "Acme")
    make_user("alice", contexts={acme: "publisher"})
    model = services.model_create(actor=None, context=acme, name="Churn")
    upload(services.version_create(actor=None, model=model), benign_pickle())
    context = browser.new_context(base_url=server, java_script_enabled=False, viewport={"width": 1280, "height": 800})
    try:
        page = context.new_page()
        log_in(page, "alice")
        page.goto(f"/models/{model.pk}/versions/1/")
        page.get_by_role("link", name="Publish…").click()
        expect(page).to_have_url(re.compile(r"/versions/1/publish/confirm/$"))
        expect(page.get_by_role("heading", name="Publish version 1?")).to_be_visible()
        screenshot(page, "issue15-publish-confirm-page")
        page.get_by_role("button", name="Publish version 1").click()
        expect(flash(page)).to_contain_text("Version 1 is published")
    finally:
        context.close()


# --- 5. The last version deleted ----------------------------------------------------------------------------------

def test_after_the_last_version_the_empty_state_has_the_next_number_and_offers_the_model(new_page):
    acme = make_context("acme", "Acme")
    make_user("alice", contexts={acme: "admin"})
    model = services.model_create(actor=None, context=acme, name="Churn")
    upload(services.version_create(actor=None, model=model), benign_pickle())
    page = sign_in(new_page, "alice")
    page.goto(f"/models/{model.pk}/versions/1/")
    confirm_in_dialog(page, page.get_by_role("link", name="Delete version…"), "Delete version 1")
    expect(flash(page)).to_contain_text("Version 1 and its files were deleted.")
    empty = page.locator(".empty")
    expect(empty).to_contain_text("Churn has no versions left. Its next version will be version 2")
    expect(empty.locator("pre")).to_contain_text("/versions/2/formats/pkl/file")
    expect(page.locator("section.danger-zone")).to_contain_text("it has no versions")
    screenshot(page, "issue15-last-version-deleted")
    empty.get_by_role("link", name="Delete the model…").click()
    asking = page.get_by_role("dialog", name="Delete model Churn")
    asking.get_by_label("Type the model's name to confirm").fill("Churn")
    asking.get_by_role("button", name="Delete this model for good").click()
    expect(flash(page)).to_contain_text("Model Churn and all its versions and files were deleted.")
    assert not Model.objects.exists()


# --- 8. Team pages --------------------------------------------------------------------------------------------------

def test_adding_a_member_suggests_names_and_the_tokens_page_keeps_the_navigation(new_page):
    acme = make_context("acme", "Acme")
    make_context("beta", "Beta")
    make_user("alice", contexts={acme: "admin"})
    make_user("dana.lee")
    make_user("daniel", contexts={acme: "viewer"})
    Group.objects.create(name="data-science")
    page = sign_in(new_page, "alice")
    page.goto("/c/acme/members/")
    page.get_by_label("User name").press_sequentially("da", delay=30)
    options = page.locator("datalist#id_username-suggestions option")
    expect(options).to_have_count(1)
    assert options.first.get_attribute("value") == "dana.lee"  # daniel is a member already
    page.get_by_label("…or group").press_sequentially("dat", delay=30)
    expect(page.locator("datalist#id_group-suggestions option")).to_have_count(1)
    screenshot(page, "issue15-members")

    page.get_by_role("link", name="API tokens").click()
    main_nav = page.get_by_role("navigation", name="Main")
    expect(main_nav.get_by_role("link", name="Records")).to_be_visible()
    expect(page.get_by_label("Expires in (days)")).not_to_have_attribute("placeholder", re.compile(".*"))
    expect(page.locator("main")).to_contain_text("Empty: the token never expires.")
    page.get_by_label("Name").fill("CI")
    page.get_by_role("button", name="Create token").click()
    expect(main_nav.get_by_role("link", name="Records")).to_be_visible()  # still there after creating one
    screenshot(page, "issue15-tokens")


# --- 9. Small things -----------------------------------------------------------------------------------------------

def test_phones_do_not_scroll_sideways_and_the_skip_link_leads_to_the_content(new_page):
    acme = make_context("acme", "Acme")
    make_user("alice", contexts={acme: "editor"})
    model = services.model_create(actor=None, context=acme, name="Churn")
    first = services.version_create(actor=None, model=model)
    upload(first, benign_pickle(), filename="")  # as curl -T sends it: no name
    page = sign_in(new_page, "alice", **PHONE)
    page.goto(f"/models/{model.pk}/versions/1/formats/")
    card = page.locator("#format-pkl")
    expect(card.locator("dd").first).to_contain_text("Churn-v1.pkl (sent without a name")
    expect(card.locator("code", has_text=re.compile("^[0-9a-f]{64}$"))).to_be_visible()
    assert_no_horizontal_overflow(page)
    screenshot(page, "issue15-hashes-390")

    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()
    screenshot(page, "issue15-skip-link", full_page=False)
    page.keyboard.press("Enter")
    expect(page.locator("main#main")).to_be_focused()

    icon = page.locator('link[rel="icon"]').get_attribute("href")
    assert page.request.get(icon).status == 200
    page.goto(f"/models/{model.pk}/aliases/")
    expect(page.locator("details.version-menu summary")).to_have_text("Go to a version")
    expect(page.locator(".version-bar > .badge")).to_have_count(0)
    screenshot(page, "issue15-aliases-tab-390")
