"""The dashboard's journeys as a new user walks them: sign in, pick a context, create, find and
page through models; outsiders see nothing; a narrow window stays usable.

Every page a test checks is saved under test-artifacts/screenshots/.
"""

from __future__ import annotations

import re

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture then skips, or fails under CI, with the reason
    expect = None

from registry import services
from registry.models import Model
from tests.browser.conftest import (
    PASSWORD,
    assert_no_horizontal_overflow,
    log_in,
    make_context,
    make_user,
    screenshot,
)

pytestmark = pytest.mark.django_db(transaction=True)


def model_names(page) -> list[str]:
    """Names in the model list, top to bottom."""
    return [name.strip() for name in page.locator("table.list tbody tr td:first-child").all_inner_texts()]


def test_sign_in_wrong_then_right_password_lands_on_the_only_context(page):
    acme = make_context("acme", "Acme")
    make_user("alice", contexts={acme: "editor"})

    # An anonymous visitor is sent to the login form, which remembers where they were going.
    page.goto("/c/acme/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/c/acme/"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    screenshot(page, "sign-in-form")

    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    error = page.get_by_role("alert")
    expect(error).to_contain_text("correct username and password")
    expect(page.get_by_label("Username")).to_have_value("alice")  # kept, so only the password is retyped
    screenshot(page, "sign-in-wrong-password")

    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/c/acme/$"))
    expect(page.get_by_role("heading", name="Models")).to_be_visible()
    expect(page.locator(".context-picker summary")).to_have_text("Acme")
    expect(page.get_by_text("No models in Acme yet.")).to_be_visible()
    screenshot(page, "sign-in-landed-on-model-list")

    # A fresh login (no ?next=) also goes straight to the only context's models.
    page.get_by_role("button", name="Sign out alice").click()
    expect(page).to_have_url(re.compile(r"/login/"))
    log_in(page, "alice")
    expect(page).to_have_url(re.compile(r"/c/acme/$"))


def test_context_selector_lists_only_my_contexts(page):
    acme, beta, other = make_context("acme", "Acme"), make_context("beta", "Beta Lab"), make_context("other", "Other")
    make_user("bob", contexts={acme: "editor", beta: "viewer"})
    make_user("carol", contexts={other: "admin"})
    services.model_create(actor=None, context=beta, name="Beta speech", tags="asr")

    log_in(page, "bob")
    # Two contexts: the home page lets the user choose.
    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.get_by_role("heading", name="Your contexts")).to_be_visible()
    cards = page.locator(".cards .card")
    expect(cards).to_have_count(2)
    expect(cards.filter(has_text="Acme")).to_be_visible()
    expect(cards.filter(has_text="Beta Lab")).to_be_visible()
    screenshot(page, "context-home")

    picker = page.locator(".context-picker")
    expect(picker.locator("summary")).to_have_text("Choose a context")
    picker.locator("summary").click()
    links = picker.get_by_role("link")
    expect(links).to_have_count(2)
    expect(picker).not_to_contain_text("Other")
    screenshot(page, "context-selector-open")

    picker.get_by_role("link", name=re.compile("Beta Lab")).click()
    expect(page).to_have_url(re.compile(r"/c/beta/$"))
    expect(picker.locator("summary")).to_have_text("Beta Lab")
    expect(page.get_by_role("link", name="Beta speech")).to_be_visible()
    # Bob is a viewer in Beta: no way to create a model there.
    expect(page.get_by_role("button", name="New model")).to_have_count(0)
    screenshot(page, "context-beta-as-viewer")

    picker.locator("summary").click()
    expect(picker.get_by_role("link", name=re.compile("Beta Lab"))).to_have_attribute("aria-current", "true")
    picker.get_by_role("link", name=re.compile("Acme")).click()
    expect(page).to_have_url(re.compile(r"/c/acme/$"))
    expect(page.get_by_role("button", name="New model")).to_be_visible()


def test_create_model_in_the_dialog_and_find_it_in_the_list(page):
    acme = make_context("acme", "Acme")
    make_user("alice", contexts={acme: "editor"})
    services.model_create(actor=None, context=acme, name="Existing model")
    log_in(page, "alice")

    page.get_by_role("button", name="New model").click()
    dialog = page.get_by_role("dialog", name="New model")
    expect(dialog).to_be_visible()
    screenshot(page, "create-dialog-open")

    # A name already taken: the error is shown next to the name field, the input is kept.
    dialog.get_by_label("Name").fill("existing MODEL")
    dialog.get_by_label("Tags").fill("tabular")
    dialog.get_by_role("button", name="Create model").click()
    expect(page).to_have_url(re.compile(r"/c/acme/models/new/$"))
    name_field = page.locator(".field", has=page.get_by_label("Name"))
    expect(name_field).to_have_class(re.compile("has-error"))
    expect(name_field.get_by_role("alert")).to_be_visible()
    expect(page.get_by_label("Tags")).to_have_value("tabular")
    screenshot(page, "create-name-taken")

    # Back to the list and the dialog for a proper model.
    page.get_by_role("link", name="Cancel").click()
    page.get_by_role("button", name="New model").click()
    description = "Detects **fraud** in card payments.\n\n- trained on 2024 data\n- see `README`"
    dialog.get_by_label("Name").fill("Fraud detector")
    dialog.get_by_label("Tags").fill("tabular, fraud, xgboost")
    dialog.get_by_label("Task").fill("binary classification")
    dialog.get_by_label("Description").fill(description)
    dialog.get_by_role("button", name="Create model").click()

    expect(page).to_have_url(re.compile(r"/models/[^/]+/$"))
    model = Model.objects.get(context=acme, name="Fraud detector")
    assert page.url.endswith(f"/models/{model.pk}/")
    # Browsers submit a textarea's line breaks as CRLF; the Markdown text is otherwise kept as typed.
    assert model.description.replace("\r\n", "\n") == description
    assert model.task == "binary classification"
    screenshot(page, "create-model-page")

    page.goto("/c/acme/")
    row = page.locator("table.list tbody tr", has_text="Fraud detector")
    expect(row).to_be_visible()
    expect(row.locator(".chip")).to_have_text(["fraud", "tabular", "xgboost"], ignore_case=True)
    expect(row).to_contain_text("binary classification")
    expect(page.get_by_text("2 models")).to_be_visible()
    screenshot(page, "create-model-in-list")

    # A chip filters the list by its tag.
    row.locator(".chip", has_text="fraud").click()
    expect(page).to_have_url(re.compile(r"tag=fraud"))
    assert model_names(page) == ["Fraud detector"]
    screenshot(page, "list-filtered-by-tag")


def test_search_and_sort_the_model_list(page):
    acme = make_context("acme", "Acme")
    make_user("alice", contexts={acme: "editor"})
    speech = services.model_create(actor=None, context=acme, name="speech-to-text", tags="asr, audio",
                                   description="Whisper fine-tuned for call centres.")
    services.model_create(actor=None, context=acme, name="Churn predictor", tags="tabular",
                          description="Predicts which customers leave.")
    services.model_create(actor=None, context=acme, name="arrival-times", tags="tabular, forecasting",
                          description="Bus arrival forecasts from GPS **audio**-free signals.")
    for _ in range(2):
        services.version_create(actor=None, model=speech)
    log_in(page, "alice")

    # Default sort is by name, case-insensitive.
    assert model_names(page) == ["arrival-times", "Churn predictor", "speech-to-text"]
    screenshot(page, "list-sorted-by-name")

    search = page.get_by_role("searchbox", name="Search models")
    # By tag (asr), by description (customers), by name (arrival).
    for term, expected in [("asr", ["speech-to-text"]), ("customers", ["Churn predictor"]),
                           ("ARRIVAL", ["arrival-times"]), ("audio", ["arrival-times", "speech-to-text"])]:
        search.fill(term)
        search.press("Enter")
        expect(page).to_have_url(re.compile(rf"q={term}"))
        assert model_names(page) == expected, term
    screenshot(page, "list-search-audio")

    search.fill("nothing like this")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_text("No model matches “nothing like this”.")).to_be_visible()
    screenshot(page, "list-search-no-match")
    page.get_by_role("link", name="Clear").click()
    expect(page.locator("table.list tbody tr")).to_have_count(3)

    # Changing the sort submits the form at once.
    sort = page.get_by_label("Sort")
    sort.select_option("-name")
    expect(page).to_have_url(re.compile(r"sort=-name"))
    assert model_names(page) == ["speech-to-text", "Churn predictor", "arrival-times"]
    sort.select_option("-created")
    expect(page).to_have_url(re.compile(r"sort=-created"))
    assert model_names(page) == ["arrival-times", "Churn predictor", "speech-to-text"]
    sort.select_option("-versions")
    expect(page).to_have_url(re.compile(r"sort=-versions"))
    assert model_names(page)[0] == "speech-to-text"
    expect(page.locator("table.list tbody tr").first.locator("td.num")).to_have_text("2")
    screenshot(page, "list-sorted-by-versions")

    # Search and sort together: the sort survives a new search.
    search.fill("tabular")
    search.press("Enter")
    expect(page.get_by_label("Sort")).to_have_value("-versions")
    assert sorted(model_names(page)) == ["Churn predictor", "arrival-times"]


def test_pagination_over_more_than_25_models(page):
    acme = make_context("acme", "Acme")
    make_user("alice", contexts={acme: "editor"})
    for number in range(1, 31):
        services.model_create(actor=None, context=acme, name=f"model-{number:02d}", tags="bulk")
    log_in(page, "alice")

    # Pages by cursor (no page numbers, no total: a context may hold 100,000 models).
    rows = page.locator("table.list tbody tr")
    expect(rows).to_have_count(25)
    expect(page.get_by_text("30 models")).to_have_count(0)
    pages = page.get_by_role("navigation", name="Pages")
    expect(pages.get_by_role("link", name="‹ Previous")).to_have_count(0)
    screenshot(page, "pagination-page-1")

    pages.get_by_role("link", name="Next ›").click()
    expect(page).to_have_url(re.compile(r"cursor="))
    expect(rows).to_have_count(5)
    assert model_names(page) == [f"model-{n}" for n in range(26, 31)]
    expect(pages.get_by_role("link", name="Next ›")).to_have_count(0)
    screenshot(page, "pagination-page-2")

    # Page links keep the sort order.
    page.get_by_label("Sort").select_option("-name")
    expect(page).to_have_url(re.compile(r"sort=-name"))
    assert "cursor=" not in page.url  # a new sort starts again at the first page
    assert model_names(page)[0] == "model-30"
    pages.get_by_role("link", name="Next ›").click()
    expect(page).to_have_url(re.compile(r"sort=-name"))
    assert model_names(page) == [f"model-{n:02d}" for n in range(5, 0, -1)]
    pages.get_by_role("link", name="‹ Previous").click()
    expect(rows).to_have_count(25)
    assert model_names(page)[0] == "model-30"


def test_an_outsider_cannot_see_the_context(page):
    acme, other = make_context("acme", "Acme"), make_context("other", "Other")
    make_user("alice", contexts={acme: "editor"})
    make_user("mallory", contexts={other: "admin"})
    secret = services.model_create(actor=None, context=acme, name="Secret model", description="hush")

    log_in(page, "mallory")
    expect(page).to_have_url(re.compile(r"/c/other/$"))
    page.locator(".context-picker summary").click()
    expect(page.locator(".context-picker")).not_to_contain_text("Acme")

    for url in ("/c/acme/", "/c/acme/models/new/", f"/models/{secret.pk}/", "/c/acme/?q=secret"):
        response = page.goto(url)
        assert response.status == 404, url
        expect(page.locator("body")).not_to_contain_text("Secret model")
    screenshot(page, "outsider-404")

    # Creating a model there is refused the same way, and nothing is created.
    response = page.request.post("/c/acme/models/new/", form={"name": "Sneaky"})
    assert response.status in (403, 404)
    assert not Model.objects.filter(name="Sneaky").exists()


def test_narrow_window_layout_is_usable(new_page):
    acme, beta = make_context("acme", "Acme Research and Development"), make_context("beta", "Beta")
    make_user("alice-with-a-rather-long-username", contexts={acme: "editor", beta: "editor"})
    services.model_create(
        actor=None, context=acme, name="a-very-long-model-name-without-any-spaces-to-break-on-v2-final",
        tags="tabular, fraud, gradient-boosting, production-candidate, europe-west",
        task="binary classification of card transactions",
        description="Long description " * 20,
    )
    for number in range(1, 31):
        services.model_create(actor=None, context=acme, name=f"model-{number:02d}", tags="bulk, narrow")
    page = new_page(width=375, height=740)

    page.goto("/login/")
    assert_no_horizontal_overflow(page)
    screenshot(page, "narrow-login")

    log_in(page, "alice-with-a-rather-long-username")
    expect(page.get_by_role("heading", name="Your contexts")).to_be_visible()
    assert_no_horizontal_overflow(page)
    screenshot(page, "narrow-home")

    page.locator(".context-picker summary").click()
    expect(page.locator(".context-picker ul")).to_be_visible()
    assert_no_horizontal_overflow(page)
    screenshot(page, "narrow-context-selector")
    page.locator(".context-picker").get_by_role("link", name=re.compile("Acme")).click()

    expect(page.get_by_role("heading", name="Models")).to_be_visible()
    assert_no_horizontal_overflow(page)
    screenshot(page, "narrow-model-list")
    screenshot(page, "narrow-model-list-window", full_page=False)
    # The controls are still reachable inside the window.
    for control in (page.get_by_role("searchbox"), page.get_by_label("Sort"),
                    page.get_by_role("button", name="New model"), page.get_by_role("link", name="Next ›")):
        box = control.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= 375, control

    page.get_by_role("button", name="New model").click()
    dialog = page.get_by_role("dialog", name="New model")
    expect(dialog).to_be_visible()
    box = dialog.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 375
    assert_no_horizontal_overflow(page)
    screenshot(page, "narrow-create-dialog", full_page=False)
    dialog.get_by_role("button", name="Cancel").click()

    page.goto("/c/acme/models/new/")
    page.get_by_role("button", name="Create model").click()  # empty name: error next to the field
    expect(page.locator(".field.has-error")).to_be_visible()
    assert_no_horizontal_overflow(page)
    screenshot(page, "narrow-create-page-error")
