"""The dashboard's side of trusted imports: the context page (list, trust, revoke), a format in
review on the Formats tab (badge, imports, approval for publishers, a note for others), and the
acknowledgement a flagged file's download needs. Django's test client drives every page.

The pickles here are written by hand as bytes and never loaded.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from registry import services
from registry.models import AuditEvent, Format, FormatStatus, TrustedImport
from tests.helpers import store_file

pytestmark = pytest.mark.django_db

PERSONAS = ["anonymous", "outsider", "viewer", "editor", "publisher", "admin"]
RANK = {"viewer": 1, "editor": 2, "publisher": 3, "admin": 4}
SCORER = b"\x80\x02cmylibrary.models\nScorer\nX\x02\x00\x00\x00f1\x85R."
SCORER_AND_TOKENIZER = (b"\x80\x02(cmylibrary.models\nScorer\nX\x02\x00\x00\x00f1\x85R"
                        b"cvendorlib.text\nTokenizer\nl.")
SCORER_NAME, TOKENIZER_NAME = "mylibrary.models.Scorer", "vendorlib.text.Tokenizer"


def web(users, persona: str) -> Client:
    client = Client()
    if persona != "anonymous":
        client.force_login(users[persona])
    return client


def html(response) -> str:
    return response.content.decode()


def url(name: str, **kwargs) -> str:
    return reverse(f"dashboard:{name}", kwargs=kwargs)


def login_redirect(response) -> bool:
    return response.status_code == 302 and response["Location"].startswith(url("login"))


@pytest.fixture
def model(context):
    return services.model_create(actor=None, context=context, name="churn-classifier")


@pytest.fixture
def in_review(model):
    """Version 1, whose pkl file calls mylibrary.models.Scorer and references vendorlib's Tokenizer."""
    version = services.version_create(actor=None, model=model)
    fmt = store_file(version, "pkl", SCORER_AND_TOKENIZER)
    assert fmt.status == FormatStatus.REVIEW
    return fmt


@pytest.fixture
def trusted(context):
    return services.trusted_imports_add(actor=None, context=context, names=["vendorlib.io_free.Thing"],
                                        reason="our **own** <b>package</b>")[0]


def formats_url(fmt) -> str:
    return url("version-formats", model_id=fmt.version.model_id, number=fmt.version.number)


def approve_url(fmt) -> str:
    return url("format-approve-imports", model_id=fmt.version.model_id, number=fmt.version.number, kind=fmt.kind)


# --- who may do what ----------------------------------------------------------------------

@pytest.mark.parametrize("persona", PERSONAS)
def test_every_member_sees_the_list_and_nobody_else(users, context, trusted, persona):
    response = web(users, persona).get(url("trusted-import-list", ctx=context.slug))
    if persona == "anonymous":
        assert login_redirect(response)
    elif persona == "outsider":
        assert response.status_code == 404
    else:
        assert response.status_code == 200
        assert "vendorlib.io_free.Thing" in html(response)


@pytest.mark.parametrize("persona", PERSONAS)
def test_only_publishers_trust_revoke_and_approve(users, context, trusted, in_review, persona):
    client = web(users, persona)
    posts = [
        (url("trusted-import-add", ctx=context.slug), {"imports": "vendorlib.other.Thing", "reason": "ours"}),
        (url("trusted-import-revoke", ctx=context.slug, trusted_id=trusted.pk), {}),
        (approve_url(in_review), {"reason": "reviewed"}),
    ]
    before = AuditEvent.objects.count()
    for path, data in posts:
        response = client.post(path, data)
        if persona == "anonymous":
            assert login_redirect(response), path
        elif persona == "outsider":
            assert response.status_code == 404, path
        elif RANK[persona] >= RANK["publisher"]:
            assert response.status_code == 302, (path, response.status_code)
        else:
            assert response.status_code == 403, (path, persona)
    allowed = persona in ("publisher", "admin")
    assert (AuditEvent.objects.count() > before) == allowed
    assert Format.objects.get(pk=in_review.pk).status == ("ready" if allowed else "review")


def test_the_context_navigation_links_the_page(users, context):
    page = html(web(users, "viewer").get(url("trusted-import-list", ctx=context.slug)))
    assert f'href="{url("trusted-import-list", ctx=context.slug)}" aria-current="page">Trusted imports' in page


# --- the context page ---------------------------------------------------------------------

def test_the_list_shows_who_when_and_why_and_publishers_can_revoke(users, context, trusted):
    page = html(web(users, "publisher").get(url("trusted-import-list", ctx=context.slug)))
    assert "<code>vendorlib.io_free.Thing</code>" in page
    assert "our **own** &lt;b&gt;package&lt;/b&gt;" in page  # the reason is text, escaped
    assert "operator" in page and f'datetime="{trusted.created_at:%Y-%m-%d}' in page
    revoke = url("trusted-import-revoke", ctx=context.slug, trusted_id=trusted.pk)
    assert f'action="{revoke}"' in page and 'data-confirm="Stop trusting vendorlib.io_free.Thing?' in page
    assert "csrfmiddlewaretoken" in page and "Trust these imports" in page


def test_viewers_and_editors_see_no_forms(users, context, trusted):
    for persona in ("viewer", "editor"):
        page = html(web(users, persona).get(url("trusted-import-list", ctx=context.slug)))
        main = page.split("<main", 1)[1]
        assert "<form" not in main and "Revoke" not in main
        assert "Only publishers of Acme can trust or revoke imports." in page


def test_empty_list_says_where_imports_come_from(users, context):
    page = html(web(users, "viewer").get(url("trusted-import-list", ctx=context.slug)))
    assert "No import is trusted in Acme yet." in page


def test_a_publisher_trusts_imports_and_files_in_review_become_ready(users, context, in_review):
    client = web(users, "publisher")
    response = client.post(url("trusted-import-add", ctx=context.slug),
                           {"imports": f"{SCORER_NAME},\n {TOKENIZER_NAME}\n", "reason": "both are ours"})
    assert response.status_code == 302
    assert sorted(TrustedImport.objects.values_list("name", flat=True)) == [SCORER_NAME, TOKENIZER_NAME]
    assert Format.objects.get(pk=in_review.pk).status == FormatStatus.READY
    page = html(client.get(response["Location"]))
    assert f"Trusted in Acme: {SCORER_NAME}, {TOKENIZER_NAME}." in page


def test_trust_form_errors_are_shown_next_to_the_field(users, context):
    client = web(users, "publisher")
    response = client.post(url("trusted-import-add", ctx=context.slug), {"imports": "os.system", "reason": "x"})
    assert response.status_code == 400
    page = html(response)
    assert 'id="id_imports-error"' in page and "os.system can never be trusted" in page
    response = client.post(url("trusted-import-add", ctx=context.slug), {"imports": SCORER_NAME, "reason": ""})
    assert response.status_code == 400 and 'id="id_reason-error"' in html(response)
    assert not TrustedImport.objects.exists()


def test_revoking_sends_drafts_back_to_review_and_says_so(users, context, in_review):
    services.format_imports_approve(actor=users["publisher"], fmt=in_review, reason="ours")
    row = TrustedImport.objects.get(name=SCORER_NAME)
    client = web(users, "publisher")
    response = client.post(url("trusted-import-revoke", ctx=context.slug, trusted_id=row.pk))
    assert response.status_code == 302
    assert Format.objects.get(pk=in_review.pk).status == FormatStatus.REVIEW
    page = html(client.get(response["Location"]))
    assert f"{SCORER_NAME} is no longer trusted in Acme. 1 draft file went back to review." in page
    assert client.post(url("trusted-import-revoke", ctx=context.slug, trusted_id=row.pk)).status_code == 404
    assert client.get(url("trusted-import-revoke", ctx=context.slug, trusted_id=row.pk)).status_code == 405


def test_a_trusted_import_of_another_context_is_404(users, other_context):
    row = services.trusted_imports_add(actor=None, context=other_context, names=[SCORER_NAME], reason="theirs")[0]
    response = web(users, "admin").post(url("trusted-import-revoke", ctx="acme", trusted_id=row.pk))
    assert response.status_code == 404
    assert TrustedImport.objects.filter(pk=row.pk).exists()


def test_trusted_import_list_query_count(users, context, django_assert_num_queries):
    def add(start, count):
        services.trusted_imports_add(actor=users["publisher"], context=context, reason="vendored",
                                     names=[f"vendorlib.m{index}.Thing" for index in range(start, start + count)])
    add(0, 3)
    client = web(users, "publisher")
    path = url("trusted-import-list", ctx=context.slug)
    client.get(path)
    with CaptureQueriesContext(connection) as small:
        assert client.get(path).status_code == 200
    add(3, 30)
    with django_assert_num_queries(len(small.captured_queries)):
        assert client.get(path).status_code == 200


# --- a format in review on the Formats tab ------------------------------------------------

def test_a_format_in_review_shows_its_imports_and_the_approval_form_to_publishers(users, in_review):
    page = html(web(users, "publisher").get(formats_url(in_review)))
    assert 'badge badge-warn"' in page and ">needs review<" in page
    assert "Imports that need review" in page
    rows = page.split('<table class="list unvetted labelled">', 1)[1].split("</table>", 1)[0]
    scorer, tokenizer = rows.split(f"<code>{TOKENIZER_NAME}</code>")
    assert f"<code>{SCORER_NAME}</code>" in scorer and ">called<" in scorer
    assert ">referenced<" in tokenizer
    assert f'action="{approve_url(in_review)}"' in page and "Approve these imports" in page
    assert 'name="reason"' in page and "required" in page


@pytest.mark.parametrize("persona", ["viewer", "editor"])
def test_others_are_told_a_publisher_must_approve(users, in_review, persona):
    page = html(web(users, persona).get(formats_url(in_review)))
    assert "Imports that need review" in page
    assert "A publisher of Acme must approve these imports before version 1 can be published." in page
    assert approve_url(in_review) not in page


def test_approving_from_the_formats_tab_makes_the_file_ready(users, in_review):
    client = web(users, "publisher")
    response = client.post(approve_url(in_review), {"reason": "both are ours, reviewed in PR 412"})
    assert response.status_code == 302 and response["Location"] == formats_url(in_review) + "#format-pkl"
    assert Format.objects.get(pk=in_review.pk).status == FormatStatus.READY
    page = html(client.get(response["Location"]))
    assert "The imports of the pkl file are now trusted in Acme; the file is ready." in page
    assert ">ready<" in page and "Imports that need review" not in page
    assert "trusted in this context" in page  # the status message says why it is ready


def test_approving_without_a_reason_says_why_it_was_refused(users, in_review):
    client = web(users, "publisher")
    response = client.post(approve_url(in_review), {"reason": "  "})
    assert response.status_code == 302
    page = html(client.get(response["Location"]))
    assert "were not approved: Say why" in page
    assert Format.objects.get(pk=in_review.pk).status == FormatStatus.REVIEW


def test_the_status_poll_brings_the_review_block_and_the_download_control(users, in_review):
    fmt = in_review
    status_url = url("format-status", model_id=fmt.version.model_id, number=fmt.version.number, kind="pkl")
    partial = html(web(users, "publisher").get(status_url))
    assert "Approve these imports" in partial and "csrfmiddlewaretoken" in partial
    assert 'id="format-download-pkl" hx-swap-oob="true"' in partial
    warning = url("format-download-confirm", model_id=fmt.version.model_id, number=fmt.version.number, kind="pkl")
    assert f'href="{warning}" data-confirm-dialog>Download…' in partial


# --- downloads of flagged files -----------------------------------------------------------

def test_a_flagged_file_has_no_plain_download_link(users, in_review, model):
    page = html(web(users, "viewer").get(formats_url(in_review)))
    file_url = f"/api/v1/models/{model.pk}/versions/1/formats/pkl/file"
    assert f'href="{file_url}"' not in page
    assert 'hx-swap-oob' not in page
    # Its Download… opens a warning step (a dialog, or this page without JavaScript) whose form
    # names the status, as the API requires.
    warning_url = url("format-download-confirm", model_id=model.pk, number=1, kind="pkl")
    assert f'href="{warning_url}" data-confirm-dialog>Download…' in page
    warning = html(web(users, "viewer").get(warning_url))
    assert f'action="{file_url}"' in warning and 'name="acknowledge" value="review" required' in warning
    assert "This file needs review" in warning and "Loading it may be unsafe" in warning
    assert "I understand that this file is review" not in warning

    ready_version = services.version_create(actor=None, model=model)
    store_file(ready_version, "pkl")
    page = html(web(users, "viewer").get(formats_url(Format.objects.get(version=ready_version))))
    assert f'href="/api/v1/models/{model.pk}/versions/2/formats/pkl/file" download>Download</a>' in page
    assert 'name="acknowledge"' not in page


def test_the_acknowledged_download_is_served_and_audited(users, in_review, model):
    client = web(users, "viewer")
    file_url = f"/api/v1/models/{model.pk}/versions/1/formats/pkl/file"
    assert client.get(file_url).status_code == 409
    response = client.get(file_url, {"acknowledge": "review"})
    assert response.status_code == 200 and b"".join(response.streaming_content) == SCORER_AND_TOKENIZER
    assert AuditEvent.objects.filter(action="format.download_not_ready", actor=users["viewer"]).count() == 1
