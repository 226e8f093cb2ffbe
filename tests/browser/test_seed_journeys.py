"""The seed features on the model page, in a real browser: the model's own metrics and one version
metric charted across versions (server-rendered SVG), named signatures on the details tab and in
the comparison, and external files on the Formats tab. Screenshots under test-artifacts/screenshots/."""

from __future__ import annotations

import hashlib
import re

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture then skips, or fails under CI, with the reason
    expect = None

from registry import services
from tests.browser.conftest import assert_no_horizontal_overflow, log_in, make_context, make_user, screenshot

pytestmark = pytest.mark.django_db(transaction=True)


def tab(page, name: str):
    return page.get_by_role("navigation", name="Version tabs").get_by_role("link", name=name, exact=True)


def test_model_metrics_and_a_metric_across_versions(new_page):
    acme = make_context("acme", "Acme")
    make_user("alice", contexts={acme: "viewer"})
    model = services.model_create(actor=None, context=acme, name="Fraud detector")
    for accuracy, auc in ((0.81, 0.86), (0.84, 0.88), (0.83, 0.9), (0.89, 0.93)):
        version = services.version_create(actor=None, model=model)
        services.metrics_log(actor=None, version=version, metrics=[
            {"key": "accuracy", "value": round(accuracy - 0.05, 3), "step": 1},
            {"key": "accuracy", "value": accuracy, "step": 2}, {"key": "auc", "value": auc}])
    services.model_metrics_log(actor=None, model=model, metrics=[
        {"key": "drift", "value": value, "step": week} for week, value in enumerate((0.02, 0.03, 0.05, 0.04, 0.08), 1)])

    page = new_page()
    log_in(page, "alice")
    page.get_by_role("link", name="Fraud detector").click()
    # The overview names the model's latest metrics and leads to their charts.
    summary = page.locator(".model-metrics-summary")
    expect(summary).to_contain_text("drift: 0.08")
    screenshot(page, "model-overview-metrics", full_page=False)
    tab(page, "Model metrics").click()
    expect(tab(page, "Model metrics")).to_have_attribute("aria-current", "page")

    across = page.locator("section", has=page.get_by_role("heading", name="A version metric across versions"))
    svg = across.locator("svg.chart")
    expect(svg).to_have_attribute("aria-label", "accuracy by version")
    expect(svg.locator("circle")).to_have_count(4)
    expect(svg.locator("circle title").last).to_have_text("version 4: 0.89")  # each version's latest step
    expect(svg.locator("text.tick[text-anchor=middle]")).to_have_text(["1", "2", "3", "4"])  # every version labelled
    expect(across.locator("tbody tr")).to_have_count(4)
    drift = page.locator("figure.chart-card", has=page.locator("figcaption strong", has_text="drift"))
    expect(drift.locator("svg.chart circle")).to_have_count(5)
    screenshot(page, "model-metrics-across-versions")

    across.get_by_label("Metric").select_option("auc")
    across.get_by_role("button", name="Show").click()
    page.wait_for_url(re.compile(r"key=auc"))
    expect(page.locator("svg.chart").first).to_have_attribute("aria-label", "auc by version")

    phone = new_page(width=390, height=844)
    log_in(phone, "alice")
    phone.goto(f"/models/{model.pk}/metrics/")
    assert_no_horizontal_overflow(phone)
    screenshot(phone, "model-metrics-phone")


def test_named_signatures_and_external_files(new_page):
    acme = make_context("acme", "Acme")
    make_user("bob", contexts={acme: "viewer"})
    model = services.model_create(actor=None, context=acme, name="Tokenizer")
    text = {"name": "text", "dtype": "string", "shape": [-1, 1], "profile": "text"}
    tokens = {"name": "tokens", "dtype": "string", "shape": [-1, -1]}
    score = {"name": "score", "dtype": "float32", "shape": [-1]}
    services.version_create(actor=None, model=model, signature={"signatures": {
        "predict": {"inputs": [text], "outputs": [score]}, "tokenize": {"inputs": [text], "outputs": [tokens]}}})
    second = services.version_create(actor=None, model=model, signature={"inputs": [text], "outputs": [score]},
                                     external_files=[{"name": "vocabulary", "source_uri": "s3://nlp-models/tok/vocab.txt",
                                                      "sha256_checksum": hashlib.sha256(b"vocab").hexdigest(),
                                                      "size": 48213, "required": False}])

    page = new_page()
    log_in(page, "bob")
    page.goto(f"/models/{model.pk}/versions/1/")
    expect(page.locator("h4.signature-name")).to_have_text(["Signature predict", "Signature tokenize"])
    screenshot(page, "named-signatures")

    page.get_by_role("link", name="Compare v1 ↔ v2").click()
    expect(page.locator(".breaking-banner")).to_contain_text("1 breaking signature change")
    expect(page.locator("ul.sig-changes li.breaking")).to_contain_text("Signature 'tokenize' was removed")
    expect(page.locator("#signature h4.signature-name")).to_have_text(["Signature predict", "Signature tokenize", "Signature predict"])
    screenshot(page, "compare-named-signatures")

    page.goto(f"/models/{model.pk}/versions/{second.number}/formats/")
    external = page.locator("section.external-files")
    expect(external).to_contain_text("s3://nlp-models/tok/vocab.txt")
    expect(external).to_contain_text("optional, fails on tamper")
    screenshot(page, "external-files")
