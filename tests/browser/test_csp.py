"""The dashboard under its Content-Security-Policy in Chromium: each page answers with the policy,
nothing on it is blocked (the `new_page` fixture fails any browser test on a blocked script,
style, image or form, here and in every other journey), and what the pages do with JavaScript
still works: the New model dialog and the sort select, the model page's tabs and charts, the
upload progress, confirm questions, the API token's Copy button, htmx, the admin and the API docs.

Every page checked is saved under test-artifacts/screenshots/ (csp-*.png).
"""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture then skips, or fails under CI, with the reason
    expect = None

from registry import services
from registry.models import Format, TrustedImport
from tests.browser.conftest import PASSWORD, log_in, make_context, make_user, screenshot
from tests.browser.test_model_journeys import (
    benign_pickle,
    confirm_in_dialog,
    file_payload,
    flash,
    tab,
    upload,
)
from tests.dashboard.test_csp import POLICY  # the one policy the dashboard tests check

pytestmark = pytest.mark.django_db(transaction=True)

# Calls mylibrary.models.Scorer("f1") when loaded: a file that needs review (written as bytes, never loaded).
SCORER = b"\x80\x02cmylibrary.models\nScorer\nX\x02\x00\x00\x00f1\x85R."


def policy_of(header: str | None) -> dict[str, str]:
    assert header, "no Content-Security-Policy header"
    directives = (part.strip().split(None, 1) for part in header.split(";") if part.strip())
    return {name: value for name, value in directives}


def watch_documents(page) -> list[tuple[str, dict]]:
    """Every page (document) the browser loads from now on, with its policy: [(url, directives)]."""
    loaded: list[tuple[str, dict]] = []

    def on_response(response):
        if response.request.resource_type == "document" and response.status < 300:
            loaded.append((response.url, policy_of(response.headers.get("content-security-policy"))))

    page.on("response", on_response)
    return loaded


def open_version(page, name: str) -> None:
    """Pick a version in the model page's versions menu (the tab stays the same)."""
    menu = page.locator("details.version-menu")
    menu.locator("summary").click()
    menu.get_by_role("link", name=re.compile(re.escape(name))).click()
    expect(menu.locator("summary")).to_contain_text(name)


def assert_page_is_clean(page) -> None:
    """The page ran app.js and htmx (so it is ready for clicks), htmx evaluates no code, and no
    <style> element was added (any blocked one is also on the console, which the guard reads)."""
    page.wait_for_load_state()
    state = page.evaluate("""() => ({
        htmx: !!window.htmx, allowEval: window.htmx && window.htmx.config.allowEval,
        styles: document.querySelectorAll("style").length,
    })""")
    assert state == {"htmx": True, "allowEval": False, "styles": 0}, state


@pytest.fixture
def world():
    acme = make_context("acme", "Acme")
    make_user("alice", contexts={acme: "admin"})
    model = services.model_create(actor=None, context=acme, name="Fraud detector", tags="tabular",
                                  description="Scores **card payments**.")
    first = services.version_create(actor=None, model=model, name="baseline", hyperparameters={"depth": 4})
    upload(first, benign_pickle())
    services.metrics_log(actor=None, version=first, metrics=[
        {"key": "auc", "value": value, "step": step} for step, value in [(1, 0.71), (2, 0.78), (3, 0.83)]
    ])
    second = services.version_create(actor=None, model=model, name="tuned", hyperparameters={"depth": 6})
    upload(second, SCORER, filename="scorer.pkl")
    assert Format.objects.get(version=second).status == "review"
    services.record_create(actor=None, context=acme, name="payments-2024", uri="s3://data/payments.parquet")
    return model


def test_the_guard_sees_what_the_policy_blocks(page, csp_violations, world):
    """The check every browser test relies on: an inline script and a style attribute added to a
    dashboard page are blocked, and both Chromium's console message and the event are recorded."""
    log_in(page, "alice")
    page.evaluate("""() => {
        const script = document.createElement("script");
        script.textContent = "window.__inlineRan = true";
        document.body.append(script);
        const div = document.createElement("div");
        div.innerHTML = '<p style="color: red">styled</p>';
        document.body.append(div);
    }""")
    page.wait_for_timeout(200)
    assert page.evaluate("window.__inlineRan") is None
    found, csp_violations[:] = list(csp_violations), []
    assert any("violation event: script-src-elem blocked inline" in entry for entry in found), found
    assert any("violation event: style-src-attr blocked inline" in entry for entry in found), found
    assert any("inline script" in entry and "violation event" not in entry for entry in found), found  # Chromium's own


def test_the_dashboard_pages_work_under_the_policy(page, world):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    documents = watch_documents(page)
    log_in(page, "alice")

    # Model list: the New model dialog opens and closes; a sort choice sends the form at once.
    expect(page.get_by_role("heading", name=re.compile("^Models"))).to_be_visible()
    assert_page_is_clean(page)
    page.get_by_role("button", name="New model").click()
    dialog = page.get_by_role("dialog", name="New model")
    expect(dialog).to_be_visible()
    screenshot(page, "csp-model-list-dialog", full_page=False)
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    page.get_by_label("Sort").select_option("-created")
    expect(page).to_have_url(re.compile(r"sort=-created"))
    screenshot(page, "csp-model-list")

    # The model page and its tabs.
    page.get_by_role("link", name="Fraud detector").click()
    expect(page.get_by_role("heading", name="Fraud detector", level=1)).to_be_visible()
    expect(page.locator(".markdown strong", has_text="card payments")).to_be_visible()
    assert_page_is_clean(page)
    page.get_by_role("link", name="Edit model").click()
    edit = page.get_by_role("dialog", name=re.compile("Edit"))
    expect(edit).to_be_visible()
    edit.get_by_role("button", name="Cancel").click()
    expect(edit).to_be_hidden()
    for name in ["Details", "Formats", "Metrics", "Aliases", "+ New version"]:
        tab(page, name).click()
        expect(tab(page, name)).to_have_attribute("aria-current", "page")
        assert_page_is_clean(page)
    screenshot(page, "csp-version-new")

    # Metrics of version 1: the chart is drawn (inline SVG, styled by app.css).
    open_version(page, "Version 1 · baseline")
    tab(page, "Metrics").click()
    chart = page.locator("figure.chart-card", has=page.locator("figcaption strong", has_text="auc")).locator("svg.chart")
    expect(chart).to_be_visible()
    expect(chart.locator("circle")).to_have_count(3)
    assert chart.locator("polyline").evaluate("e => getComputedStyle(e).fill") == "none"  # app.css reached the SVG
    screenshot(page, "csp-metrics")

    # Formats of version 1: add a file (PUT to the API, held here a moment to see the progress bar),
    # then delete it, asked first.
    tab(page, "Formats").click()
    assert_page_is_clean(page)
    add = page.locator("section", has=page.get_by_role("heading", name="Add a file"))
    add.get_by_label("Kind").select_option("joblib")
    add.get_by_label("File").set_input_files(file_payload(benign_pickle(), "model.joblib"))
    held = []
    page.route(re.compile(r"/formats/joblib/file\?filename=model\.joblib$"), lambda route: held.append(route))
    add.get_by_role("button", name="Upload").click()
    expect(add.locator("progress")).to_be_visible()
    expect(add.get_by_role("button", name="Upload")).to_be_disabled()
    screenshot(page, "csp-formats-uploading", full_page=False)
    held[0].continue_()
    card = page.locator("#format-joblib")
    expect(card.locator("#format-status-joblib .badge").first).to_have_text("ready")
    screenshot(page, "csp-formats-uploaded")
    assert_page_is_clean(page)
    card.get_by_role("link", name="Delete…").click()
    question = page.get_by_role("dialog", name="Delete the joblib file?")
    expect(question).to_be_visible()
    page.keyboard.press("Escape")  # answered no: nothing was sent
    expect(question).to_be_hidden()
    expect(card).to_be_visible()
    asked = confirm_in_dialog(page, card.get_by_role("link", name="Delete…"), "Delete the joblib file")
    expect(flash(page)).to_be_visible()
    expect(page.locator("#format-joblib")).to_have_count(0)
    assert "cannot be undone" in asked

    # Version 2: the file in review; its download needs the acknowledgement form (form-action 'self').
    open_version(page, "Version 2 · tuned")
    assert_page_is_clean(page)
    review = page.locator("#format-pkl")
    expect(review.locator("#format-status-pkl .badge").first).to_have_text("needs review")
    review.get_by_role("link", name="Download…").click()
    warning = page.get_by_role("dialog")
    warning.get_by_label(re.compile("I understand the warning")).check()
    with page.expect_download() as download:
        warning.get_by_role("button", name="Download anyway").click()
    assert download.value.suggested_filename == "scorer.pkl"
    screenshot(page, "csp-formats-review")

    # Compare, records, members, trusted imports (trust, then revoke after the question), audit log.
    page.goto(f"/models/{world.pk}/compare/")
    expect(page.get_by_role("heading", name=re.compile("Compare versions"))).to_be_visible()
    page.locator('select[name="a"]').select_option("1")
    page.locator('select[name="b"]').select_option("2")
    page.get_by_role("button", name="Compare", exact=True).click()
    expect(page).to_have_url(re.compile(r"a=1&b=2"))
    expect(page.locator("#hyperparameters tbody tr", has_text="depth").locator(".chip")).to_have_text("changed")
    screenshot(page, "csp-compare")
    main_nav = page.get_by_role("navigation", name="Main")
    main_nav.get_by_role("link", name="Records").click()
    expect(page.get_by_role("link", name="payments-2024")).to_be_visible()
    main_nav.get_by_role("link", name="Members").click()
    expect(page.locator("main")).to_contain_text("alice")
    main_nav.get_by_role("link", name="Trusted imports").click()
    trust = page.locator("#trust-imports")
    trust.get_by_label("Imports").fill("mylibrary.models.Scorer")
    trust.get_by_label("Reason").fill("Our own package")
    trust.get_by_role("button", name="Trust these imports").click()
    row = page.locator("table.trusted-imports tbody tr", has_text="mylibrary.models.Scorer")
    expect(row).to_be_visible()
    screenshot(page, "csp-trusted-imports")
    assert_page_is_clean(page)
    asked = confirm_in_dialog(page, row.get_by_role("button", name="Revoke mylibrary.models.Scorer"), "Revoke")
    expect(row).to_have_count(0)
    assert "Stop trusting mylibrary.models.Scorer?" in asked
    assert not TrustedImport.objects.exists()
    main_nav.get_by_role("link", name="Audit log").click()
    page.get_by_label("Action").fill("trusted_import")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("table.audit tbody tr").first).to_contain_text("trusted_import")
    screenshot(page, "csp-audit")

    # API tokens: the new token's field selects itself, and Copy puts it on the clipboard.
    page.get_by_role("link", name="API tokens").click()
    form = page.locator("#new-token-form")
    form.get_by_label("Name").fill("notebook")
    form.get_by_role("button", name="Create token").click()
    token = page.get_by_label("New API token")
    plain = token.input_value()
    assert_page_is_clean(page)
    token.focus()
    assert token.evaluate("field => field.value.slice(field.selectionStart, field.selectionEnd)") == plain
    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == plain
    screenshot(page, "csp-token-copied", full_page=False)

    assert len(documents) >= 15
    for url, directives in documents:
        assert directives == POLICY, url


def test_the_admin_works_under_the_policy(page):
    staff = get_user_model().objects.create_superuser("root", password=PASSWORD)
    documents = watch_documents(page)
    log_in(page, "root", next_url="/admin/")
    page.goto(f"/admin/auth/user/{staff.pk}/change/")
    # The admin's JavaScript built the two-list group and permission pickers.
    expect(page.locator("#id_groups_from")).to_be_visible()
    expect(page.locator("#id_user_permissions_add_all")).to_be_visible()
    screenshot(page, "csp-admin-user", full_page=False)
    page.goto("/admin/registry/context/add/")
    page.get_by_label("Slug").fill("beta")
    page.get_by_label("Name").fill("Beta")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("ul.messagelist")).to_contain_text("was added successfully")
    screenshot(page, "csp-admin-context-added", full_page=False)
    assert documents
    for url, directives in documents:
        assert directives == POLICY, url


def test_the_api_docs_work_under_their_policy(page, csp_violations):
    make_user("alice", contexts={make_context("acme", "Acme"): "viewer"})
    log_in(page, "alice")

    # Swagger UI under the dashboard's policy: it lists the API and runs a request from the page.
    response = page.goto("/api/docs/")
    assert policy_of(response.headers.get("content-security-policy")) == POLICY
    operation = page.locator("#operations-contexts-contexts_list")
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    operation.get_by_role("button", name="Execute").click()
    expect(operation.locator(".live-responses-table tr.response .response-col_status")).to_have_text("200")
    expect(operation.locator(".live-responses-table")).to_contain_text('"slug": "acme"')
    operation.locator(".live-responses-table").scroll_into_view_if_needed()
    screenshot(page, "csp-api-docs", full_page=False)

    # Redoc: its own <style> elements by nonce, its search in a blob: worker.
    response = page.goto("/api/redoc/")
    directives = policy_of(response.headers.get("content-security-policy"))
    assert directives["style-src"].startswith("'self' 'nonce-") and directives["worker-src"] == "'self' blob:"
    # Redoc renders the whole OpenAPI document first: seconds of CPU on a busy 2-core machine.
    expect(page.get_by_role("heading", name=re.compile("Model Registry API"))).to_be_visible(timeout=60_000)
    page.get_by_placeholder("Search...").fill("contexts")
    expect(page.locator('[data-role="search:results"]')).to_contain_text("List the contexts you can see")
    screenshot(page, "csp-api-redoc", full_page=False)
    # Redoc's "API docs by Redocly" logo comes from its CDN: blocked, as the page loads nothing from
    # elsewhere, and Redoc hides it.
    csp_violations[:] = [entry for entry in csp_violations if "https://cdn.redoc.ly/redoc/logo-mini.svg" not in entry]
