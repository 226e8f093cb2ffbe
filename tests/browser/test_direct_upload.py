"""The dashboard's uploads on S3 storage take the client's path: the browser computes the file's
SHA-256, starts a direct upload, PUTs the parts straight to the bucket (a real S3 server, moto)
and completes; the web process never receives the file's bytes. An interrupted upload resumes
from the parts the bucket holds when the same file is chosen again.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from registry.models import Format, FormatStatus, UploadSession
from tests.browser.conftest import log_in, make_context, make_user, screenshot
from tests.browser.test_model_journeys import flash, tab
from tests.conftest import s3_storage_settings

pytestmark = pytest.mark.subprocess  # the S3 server

MiB = 1024 * 1024


@pytest.fixture
def on_s3(settings, s3_endpoint, s3_bucket):
    """The live server stores files in the bucket, and its pages may connect to it (connect-src),
    as registry/settings.py sets for REGISTRY_S3_BUCKET."""
    settings.STORAGES = {**settings.STORAGES, "default": s3_storage_settings(s3_endpoint, s3_bucket)}
    parts = urlsplit(s3_endpoint)
    directives = settings.CONTENT_SECURITY_POLICY["DIRECTIVES"]
    settings.CONTENT_SECURITY_POLICY = {
        **settings.CONTENT_SECURITY_POLICY,
        "DIRECTIVES": {**directives, "connect-src": ["'self'", f"{parts.scheme}://{parts.netloc}"]},
    }
    return s3_endpoint


@pytest.fixture
def fraud(transactional_db):
    from registry import services

    context = make_context("fraud")
    make_user("erin", contexts={context: "editor"})
    model = services.model_create(actor=None, context=context, name="Fraud detector")
    return model


@pytest.fixture
def big_pickle(tmp_path):
    """A file of three parts of the smallest part size (8 MiB), plain data only: (path, bytes).
    The browser reads it from disk (handing Playwright 17 MiB in a buffer is slow)."""
    data = pickle.dumps({"weights": os.urandom(17 * MiB), "bias": 0.25}, protocol=4)
    path = tmp_path / "fraud.pkl"
    path.write_bytes(data)
    return path, data


def watch_requests(page, bucket_origin: str) -> dict:
    """What the page sent: PUTs to the bucket by part number, and the bytes of every request to
    the registry itself."""
    seen = {"parts": [], "registry_bytes": 0}

    def on_request(request):
        if request.url.startswith(bucket_origin) and request.method == "PUT":
            seen["parts"].append(int(re.search(r"partNumber=(\d+)", request.url).group(1)))
        elif not request.url.startswith(bucket_origin):
            body = request.post_data_buffer
            seen["registry_bytes"] += len(body) if body else 0

    page.on("request", on_request)
    return seen


def test_a_file_added_in_the_formats_tab_goes_straight_to_the_bucket(page, server, fraud, on_s3, big_pickle):
    from registry import services

    services.version_create(actor=None, model=fraud)
    path, data = big_pickle
    log_in(page, "erin")
    seen = watch_requests(page, on_s3)
    page.goto(f"/models/{fraud.pk}/versions/1/formats/")
    add = page.locator("section", has=page.get_by_role("heading", name="Add a file"))
    add.get_by_label("Kind").select_option("pkl")
    add.get_by_label("File").set_input_files(path)
    add.get_by_role("button", name="Upload").click()

    badge = page.locator("#format-status-pkl .badge").first
    expect(badge).to_have_text("ready", timeout=60_000)
    screenshot(page, "direct-upload-formats-ready")
    assert sorted(seen["parts"]) == [1, 2, 3]
    assert seen["registry_bytes"] < 64 * 1024, "the file's bytes went through the registry"
    fmt = Format.objects.get(version__model=fraud, kind="pkl")
    assert fmt.status == FormatStatus.READY and fmt.size == len(data)
    assert fmt.sha256 == fmt.declared_sha256 == hashlib.sha256(data).hexdigest()
    assert not UploadSession.objects.exists()


def test_an_interrupted_upload_resumes_from_the_parts_the_bucket_holds(page, server, fraud, on_s3, big_pickle):
    from registry import services

    services.version_create(actor=None, model=fraud)
    path, data = big_pickle
    log_in(page, "erin")
    seen = watch_requests(page, on_s3)
    page.goto(f"/models/{fraud.pk}/versions/1/formats/")
    add = page.locator("section", has=page.get_by_role("heading", name="Add a file"))
    add.get_by_label("Kind").select_option("pkl")
    add.get_by_label("File").set_input_files(path)

    # The connection to the bucket drops for part 3, every time it is tried; part 1 is held on
    # its way until part 3 has failed all its tries.
    part_three = re.compile(re.escape(on_s3) + r".*partNumber=3(&|$)")
    part_one = re.compile(re.escape(on_s3) + r".*partNumber=1(&|$)")
    held = []
    page.route(part_three, lambda route: route.abort("connectionreset"))
    page.route(part_one, lambda route: held.append(route))
    add.get_by_role("button", name="Upload").click()
    status = add.locator("[data-upload-status]")
    for _ in range(600):
        if held and seen["parts"].count(3) == 3:
            break
        page.wait_for_timeout(100)
    assert held and seen["parts"].count(3) == 3
    # A part still on its way: the failure is not the last word yet (once shown, the late part's
    # progress used to overwrite it, and the page said "Uploading… 94%" for good).
    page.wait_for_timeout(1_000)
    assert "resume" not in status.text_content()
    held[0].continue_()
    expect(status).to_contain_text("Choose the same file again to resume", timeout=60_000)
    page.wait_for_timeout(500)
    expect(status).to_contain_text("The connection to the bucket failed. Choose the same file again to resume")
    expect(add.get_by_role("button", name="Upload")).to_be_enabled()
    screenshot(page, "direct-upload-interrupted", full_page=False)
    assert not Format.objects.filter(version__model=fraud).exists()
    assert UploadSession.objects.count() == 1

    # A new page (the tab was closed): the same file again sends only what is missing.
    page.unroute(part_three)
    page.unroute(part_one)
    seen["parts"].clear()
    page.goto(f"/models/{fraud.pk}/versions/1/formats/")
    add = page.locator("section", has=page.get_by_role("heading", name="Add a file"))
    add.get_by_label("Kind").select_option("pkl")
    add.get_by_label("File").set_input_files(path)
    add.get_by_role("button", name="Upload").click()
    expect(page.locator("#format-status-pkl .badge").first).to_have_text("ready", timeout=60_000)
    assert seen["parts"] == [3]
    fmt = Format.objects.get(version__model=fraud, kind="pkl")
    assert fmt.sha256 == hashlib.sha256(data).hexdigest()


def test_a_new_version_with_its_first_file_sends_the_file_to_the_bucket(page, server, fraud, on_s3, big_pickle):
    path, data = big_pickle
    log_in(page, "erin")
    seen = watch_requests(page, on_s3)
    page.goto(f"/models/{fraud.pk}/versions/new/")
    page.get_by_label("Kind of the first file").select_option("pkl")
    page.get_by_label("First file", exact=True).set_input_files(path)
    page.get_by_role("button", name="Create version").click()

    expect(tab(page, "Formats")).to_have_attribute("aria-current", "page")
    expect(flash(page)).to_contain_text("Version 1 created; sending its pkl file")
    expect(page.locator("#format-status-pkl .badge").first).to_have_text("ready", timeout=60_000)
    screenshot(page, "direct-upload-new-version")
    assert sorted(seen["parts"]) == [1, 2, 3]
    assert seen["registry_bytes"] < 64 * 1024, "the file's bytes went through the registry"
    assert Format.objects.get(version__model=fraud, kind="pkl").size == len(data)
