"""A model's attachments in a real browser: an editor attaches a model card and a drift plot with the
upload form (progress shown), sees them listed with a short SHA-256, downloads one as a file,
is refused a pickle with the reason beside the field, deletes one through the in-page dialog;
a viewer on a phone sees the list without sideways scrolling. Screenshots under
test-artifacts/screenshots/."""

from __future__ import annotations

import hashlib
import pickle
from collections import OrderedDict

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture then skips, or fails under CI, with the reason
    expect = None

from registry import services
from registry.models import ModelAttachment
from tests.browser.conftest import assert_no_horizontal_overflow, log_in, make_context, make_user, screenshot

pytestmark = pytest.mark.django_db(transaction=True)

CARD = b"%PDF-1.7\n% the model card of the fraud detector\n%%EOF\n"
PLOT = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8


def tab(page, name: str):
    return page.get_by_role("navigation", name="Version tabs").get_by_role("link", name=name, exact=True)


def test_attach_list_download_refuse_and_delete(new_page, tmp_path):
    acme = make_context("acme", "Acme")
    make_user("erin", contexts={acme: "editor"})
    make_user("vic", contexts={acme: "viewer"})
    model = services.model_create(actor=None, context=acme, name="Fraud detector")
    services.version_create(actor=None, model=model)
    card = tmp_path / "model-card.pdf"
    card.write_bytes(CARD)
    plot = tmp_path / "drift-2026-q4.png"
    plot.write_bytes(PLOT)
    pickled = tmp_path / "model.pkl"
    pickled.write_bytes(pickle.dumps(OrderedDict(a=1)))

    page = new_page()
    log_in(page, "erin")
    page.goto(f"/models/{model.pk}/")
    tab(page, "Attachments").click()
    expect(tab(page, "Attachments")).to_have_attribute("aria-current", "page")
    expect(page.get_by_text("No attachments on Fraud detector yet.")).to_be_visible()
    screenshot(page, "attachments-empty")

    form = page.locator("form", has=page.get_by_role("button", name="Attach"))
    form.get_by_label("File").set_input_files(str(card))
    form.get_by_label("Description").fill("Intended use, limits, evaluation")
    form.get_by_role("button", name="Attach").click()
    expect(page.locator("ul.messages")).to_contain_text("model-card.pdf was attached")
    form = page.locator("form", has=page.get_by_role("button", name="Attach"))
    form.get_by_label("File").set_input_files(str(plot))
    form.get_by_role("button", name="Attach").click()
    expect(page.locator("ul.messages")).to_contain_text("drift-2026-q4.png was attached")

    rows = page.locator("table.attachments tbody tr")
    expect(rows).to_have_count(2)
    card_row = rows.filter(has_text="model-card.pdf")
    sha = hashlib.sha256(CARD).hexdigest()
    expect(card_row.locator("code.sha-short")).to_have_text(f"{sha[:12]}…")
    expect(card_row.locator("code.sha-short")).to_have_attribute("title", sha)
    expect(card_row).to_contain_text("Intended use, limits, evaluation")
    expect(card_row).to_contain_text("by erin")
    card_row.get_by_role("button", name="Copy the SHA-256 of model-card.pdf").click()
    expect(card_row.get_by_role("button", name="Copy the SHA-256 of model-card.pdf")).to_have_text("Copied")

    with page.expect_download() as download_info:
        card_row.get_by_role("link", name="Download").click()
    download = download_info.value
    assert download.suggested_filename == "model-card.pdf"
    assert open(download.path(), "rb").read() == CARD
    screenshot(page, "attachments-listed")

    # A serialized model is refused, with the reason beside the file field; nothing is added.
    form = page.locator("form", has=page.get_by_role("button", name="Attach"))
    form.get_by_label("File").set_input_files(str(pickled))
    form.get_by_role("button", name="Attach").click()
    expect(page.locator("#id_file-error")).to_contain_text("looks like a serialized model")
    expect(page.locator("table.attachments tbody tr")).to_have_count(2)
    screenshot(page, "attachments-pickle-refused")

    # Delete asks in the page's own dialog (never window.confirm), focus on Cancel.
    page.once("dialog", lambda native: pytest.fail(f"window.confirm() asked: {native.message}"))
    page.locator("table.attachments tbody tr", has_text="drift-2026-q4.png").get_by_role("link", name="Delete…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Delete drift-2026-q4.png?")
    screenshot(page, "attachments-delete-dialog", full_page=False)
    dialog.get_by_role("button", name="Delete drift-2026-q4.png").click()
    expect(page.locator("ul.messages")).to_contain_text("drift-2026-q4.png and its stored file were deleted")
    expect(page.locator("table.attachments tbody tr")).to_have_count(1)
    assert list(ModelAttachment.objects.values_list("name", flat=True)) == ["model-card.pdf"]

    phone = new_page(width=390, height=844)
    log_in(phone, "vic")
    phone.goto(f"/models/{model.pk}/attachments/")
    expect(phone.locator("table.attachments")).to_contain_text("model-card.pdf")
    expect(phone.get_by_role("button", name="Attach")).to_have_count(0)  # a viewer cannot attach
    assert_no_horizontal_overflow(phone)
    screenshot(phone, "attachments-phone")
