"""Team pages of the dashboard: training records, members, audit log, API tokens, comparison.

Django's test client drives every page and action; the permission matrix covers every URL
of dashboard/views/team.py for every persona.
"""

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from registry import services
from registry.models import ApiToken, AuditEvent, Membership, TrainingRecord
from registry.services.common import audit
from registry.services.contexts import hash_token
from tests.factories import UserFactory
from tests.helpers import store_file

PERSONAS = ["anonymous", "outsider", "viewer", "editor", "publisher", "admin"]
ROLE_RANK = {"viewer": 0, "editor": 1, "publisher": 2, "admin": 3}


@pytest.fixture
def browser(users):
    """browser("viewer") -> a test client signed in as that persona ("anonymous": signed out)."""
    def make(persona: str) -> Client:
        client = Client()
        if persona != "anonymous":
            client.force_login(users[persona])
        return client
    return make


@pytest.fixture
def record(context):
    return services.record_create(actor=None, context=context, name="transactions-q4", uri="s3://data/q4.parquet",
                                  checksum="sha256:abc", description="Card **transactions** of Q4.")


@pytest.fixture
def model(context):
    return services.model_create(actor=None, context=context, name="churn-classifier")


def signature(*inputs, outputs=()):
    return {"inputs": list(inputs), "outputs": list(outputs)}


@pytest.fixture
def two_versions(model):
    first = services.version_create(
        actor=None, model=model, name="baseline", hyperparameters={"C": 1.0, "penalty": "l2"},
        config={"threshold": 0.5},
        signature=signature({"name": "age", "dtype": "int64", "shape": [-1]},
                            {"name": "income", "dtype": "float32", "shape": [-1]},
                            outputs=[{"name": "label", "dtype": "int64", "shape": [-1]}]),
    )
    second = services.version_create(
        actor=None, model=model, name="tuned", hyperparameters={"C": 0.5, "penalty": "l2"},
        config={"threshold": 0.4},
        signature=signature({"name": "age", "dtype": "float64", "shape": [-1]},
                            outputs=[{"name": "label", "dtype": "int64", "shape": [-1]},
                                     {"name": "probability", "dtype": "float32", "shape": [-1, 2]}]),
    )
    services.metrics_log(actor=None, version=first, metrics=[{"key": "auc", "value": 0.81, "step": 1},
                                                              {"key": "auc", "value": 0.84, "step": 2}])
    services.metrics_log(actor=None, version=second, metrics=[{"key": "auc", "value": 0.90, "step": 1}])
    return first, second


def login_redirect(response) -> bool:
    return response.status_code == 302 and response["Location"].startswith(reverse("dashboard:login"))


def html(response) -> str:
    return response.content.decode()


def row_with(fragment: str, text: str) -> str:
    """The table row (<tr ...>...</tr>) of an HTML fragment that contains `text`."""
    for row in fragment.split("<tr")[1:]:
        row = "<tr" + row.split("</tr>", 1)[0]
        if text in row:
            return row
    raise AssertionError(f"no row contains {text!r}")


def field_error(response, field_id: str) -> str:
    """The error text shown right under the field with this id ('' if none)."""
    match = re.search(rf'<div class="field-error" id="{field_id}-error"[^>]*>(.*?)</div>', html(response), re.DOTALL)
    return match.group(1) if match else ""


# --- permission matrix ------------------------------------------------------------------

def context_get_urls(context, record, model, member_id):
    return [
        reverse("dashboard:record-list", kwargs={"ctx": context.slug}),
        reverse("dashboard:record-create", kwargs={"ctx": context.slug}),
        reverse("dashboard:record-detail", kwargs={"record_id": record.pk}),
        reverse("dashboard:record-edit", kwargs={"record_id": record.pk}),
        reverse("dashboard:record-delete", kwargs={"record_id": record.pk}),
        reverse("dashboard:member-list", kwargs={"ctx": context.slug}),
        reverse("dashboard:member-remove", kwargs={"ctx": context.slug, "membership_id": member_id}),
        reverse("dashboard:audit-list", kwargs={"ctx": context.slug}),
        reverse("dashboard:compare", kwargs={"model_id": model.pk}),
    ]


@pytest.mark.parametrize("persona", PERSONAS)
def test_get_matrix_for_context_pages(browser, context, users, record, model, persona):
    member_id = Membership.objects.get(context=context, user=users["viewer"]).pk
    client = browser(persona)
    for url in context_get_urls(context, record, model, member_id):
        response = client.get(url)
        if persona == "anonymous":
            assert login_redirect(response), url
        elif persona == "outsider":
            assert response.status_code == 404, url
        else:
            assert response.status_code == 200, url


@pytest.mark.parametrize("persona", PERSONAS)
def test_token_pages_are_for_every_signed_in_user(browser, users, persona):
    client = browser(persona)
    response = client.get(reverse("dashboard:token-list"))
    if persona == "anonymous":
        assert login_redirect(response)
        assert login_redirect(client.post(reverse("dashboard:token-create"), {"name": "x"}))
        return
    assert response.status_code == 200
    token, _ = services.token_create(actor=None, user=users[persona], name="mine")
    assert client.get(reverse("dashboard:token-revoke", kwargs={"token_id": token.pk})).status_code == 200


def post_actions(context, users, record):
    """(url, data, the lowest role allowed) for every POST of the team pages."""
    viewer_member = Membership.objects.get(context=context, user=users["viewer"]).pk
    UserFactory(username="newcomer")
    return [
        (reverse("dashboard:record-create", kwargs={"ctx": context.slug}),
         {"name": "new-data", "uri": "s3://d/new"}, "editor"),
        (reverse("dashboard:record-edit", kwargs={"record_id": record.pk}),
         {"name": record.name, "uri": "s3://d/moved"}, "editor"),
        (reverse("dashboard:record-delete", kwargs={"record_id": record.pk}), {}, "admin"),
        (reverse("dashboard:member-add", kwargs={"ctx": context.slug}),
         {"username": "newcomer", "role": "viewer"}, "admin"),
        (reverse("dashboard:member-role", kwargs={"ctx": context.slug, "membership_id": viewer_member}),
         {"role": "editor"}, "admin"),
        (reverse("dashboard:member-remove", kwargs={"ctx": context.slug, "membership_id": viewer_member}), {}, "admin"),
    ]


@pytest.mark.parametrize("persona", PERSONAS)
def test_post_matrix_for_context_actions(browser, context, users, record, persona):
    client = browser(persona)
    for url, data, lowest in post_actions(context, users, record):
        response = client.post(url, data)
        if persona == "anonymous":
            assert login_redirect(response), url
        elif persona == "outsider":
            assert response.status_code == 404, url
        elif ROLE_RANK[persona] >= ROLE_RANK[lowest]:
            assert response.status_code == 302, (url, response.status_code)
        else:
            assert response.status_code == 403, (url, persona)


def test_viewer_sees_no_manage_buttons(browser, context, users, record):
    client = browser("viewer")
    records = html(client.get(reverse("dashboard:record-list", kwargs={"ctx": context.slug})))
    assert reverse("dashboard:record-create", kwargs={"ctx": context.slug}) not in records
    detail = html(client.get(reverse("dashboard:record-detail", kwargs={"record_id": record.pk})))
    assert reverse("dashboard:record-edit", kwargs={"record_id": record.pk}) not in detail
    assert reverse("dashboard:record-delete", kwargs={"record_id": record.pk}) not in detail
    members = html(client.get(reverse("dashboard:member-list", kwargs={"ctx": context.slug})))
    assert "<form" not in members.split("<main", 1)[1]
    assert "Remove…" not in members and "Add a member" not in members
    for name in ("viewer", "editor", "publisher", "admin"):
        assert name in members
    edit = html(client.get(reverse("dashboard:record-edit", kwargs={"record_id": record.pk})))
    assert 'name="uri"' not in edit and "does not allow" in edit


def test_editor_can_edit_but_not_delete_records(browser, record):
    detail = html(browser("editor").get(reverse("dashboard:record-detail", kwargs={"record_id": record.pk})))
    assert reverse("dashboard:record-edit", kwargs={"record_id": record.pk}) in detail
    assert reverse("dashboard:record-delete", kwargs={"record_id": record.pk}) not in detail


def test_context_nav_and_user_nav_link_the_team_pages(browser, context):
    page = html(browser("viewer").get(reverse("dashboard:record-list", kwargs={"ctx": context.slug})))
    for url in (reverse("dashboard:record-list", kwargs={"ctx": context.slug}),
                reverse("dashboard:member-list", kwargs={"ctx": context.slug}),
                reverse("dashboard:audit-list", kwargs={"ctx": context.slug}),
                f'{reverse("dashboard:token-list")}?ctx={context.slug}'):  # the tokens page keeps this navigation
        assert f'href="{url}"' in page
    assert 'aria-current="page">Records' in page


# --- training records -------------------------------------------------------------------

def test_record_list_search_and_empty_states(browser, context, record):
    services.record_create(actor=None, context=context, name="images-2023", uri="gs://bucket/images")
    url = reverse("dashboard:record-list", kwargs={"ctx": context.slug})
    client = browser("viewer")
    page = html(client.get(url))
    assert "transactions-q4" in page and "images-2023" in page and "s3://data/q4.parquet" in page
    page = html(client.get(url, {"q": "gs://"}))
    assert "images-2023" in page and "transactions-q4" not in page
    page = html(client.get(url, {"q": "nothing-like-this"}))
    assert "No training record matches" in page and "Show all records" in page


def test_record_list_empty_state_says_what_to_do(browser, context):
    url = reverse("dashboard:record-list", kwargs={"ctx": context.slug})
    assert "Register the first dataset" in html(browser("editor").get(url))
    viewer_page = html(browser("viewer").get(url))
    assert "when an editor registers a dataset" in viewer_page and "Register the first" not in viewer_page


def test_record_list_paginates(browser, context):
    for index in range(27):
        services.record_create(actor=None, context=context, name=f"data-{index:02d}", uri=f"s3://d/{index}")
    url = reverse("dashboard:record-list", kwargs={"ctx": context.slug})
    first, second = html(browser("viewer").get(url)), html(browser("viewer").get(url, {"page": 2}))
    assert "data-00" in first and "data-26" not in first and 'rel="next"' in first
    assert "data-26" in second and "data-00" not in second and "27 records" in second


def test_editor_creates_a_record(browser, context, users):
    response = browser("editor").post(reverse("dashboard:record-create", kwargs={"ctx": context.slug}), {
        "name": "clicks", "uri": "s3://d/clicks", "checksum": "", "description": "Click logs",
    })
    record = TrainingRecord.objects.get(context=context, name="clicks")
    assert response.status_code == 302
    assert response["Location"] == reverse("dashboard:record-detail", kwargs={"record_id": record.pk})
    assert record.created_by == users["editor"]
    assert AuditEvent.objects.filter(action="record.create", object_id=str(record.pk)).exists()


def test_record_form_errors_are_shown_next_to_fields(browser, context, record):
    url = reverse("dashboard:record-create", kwargs={"ctx": context.slug})
    response = browser("editor").post(url, {"name": "", "uri": ""})
    assert response.status_code == 400
    assert "required" in field_error(response, "id_name") and "required" in field_error(response, "id_uri")
    response = browser("editor").post(url, {"name": record.name, "uri": "s3://other"})
    assert response.status_code == 400
    assert "already exists" in field_error(response, "id_name")


def test_record_detail_shows_the_dataset_and_every_version_trained_on_it(browser, context, record, model):
    other = services.model_create(actor=None, context=context, name="fraud")
    services.version_create(actor=None, model=model, records=[str(record.pk)])
    services.version_create(actor=None, model=model)  # not trained on it
    services.version_create(actor=None, model=other, records=[str(record.pk)], name="fraud-v1")
    page = html(browser("viewer").get(reverse("dashboard:record-detail", kwargs={"record_id": record.pk})))
    assert "s3://data/q4.parquet" in page and "sha256:abc" in page
    assert "Card <strong>transactions</strong> of Q4." in page
    assert page.count(f'href="{reverse("dashboard:model-detail", kwargs={"model_id": model.pk})}?version=1"') == 1
    assert f'{reverse("dashboard:model-detail", kwargs={"model_id": other.pk})}?version=1' in page
    assert "?version=2" not in page
    assert "churn-classifier" in page and "fraud-v1" in page


def test_record_detail_without_versions_says_how_to_link_one(browser, record):
    page = html(browser("viewer").get(reverse("dashboard:record-detail", kwargs={"record_id": record.pk})))
    assert "No version was trained on this dataset yet" in page


def test_record_of_another_context_is_404_and_bad_ids_too(browser, other_context):
    foreign = services.record_create(actor=None, context=other_context, name="secret", uri="s3://x")
    client = browser("admin")
    assert client.get(reverse("dashboard:record-detail", kwargs={"record_id": foreign.pk})).status_code == 404
    assert client.get(reverse("dashboard:record-detail", kwargs={"record_id": "not-a-uuid"})).status_code == 404


def test_record_description_markdown_is_sanitized(browser, context):
    description = "\n\n".join([
        "Safe **bold** and [a link](https://example.org).",
        "<script>alert('x')</script>",
        '<img src="x" onerror="alert(1)">',
        "[click](javascript:alert(1))",
        "![pixel](data:image/png;base64,iVBORw0KGgo=)",
        '<a href="data:text/html,<script>alert(1)</script>">data link</a>',
        '<p style="position:fixed;top:0">styled</p>',
        '<div onclick="alert(1)" onmouseover="alert(2)">hover</div>',
        "<iframe src='https://evil.example'></iframe>",
    ])
    record = services.record_create(actor=None, context=context, name="md", uri="s3://md", description=description)
    page = html(browser("viewer").get(reverse("dashboard:record-detail", kwargs={"record_id": record.pk})))
    rendered = page.split('<div class="markdown">', 1)[1].split("</section>", 1)[0]
    assert "<strong>bold</strong>" in rendered and 'href="https://example.org"' in rendered
    lowered = rendered.lower()
    for forbidden in ("<script", "onerror", "onclick", "onmouseover", "javascript:", "data:", "style=", "<iframe"):
        assert forbidden not in lowered, forbidden


def test_editor_edits_a_record(browser, record):
    url = reverse("dashboard:record-edit", kwargs={"record_id": record.pk})
    client = browser("editor")
    form = html(client.get(url))
    assert 'value="s3://data/q4.parquet"' in form
    response = client.post(url, {"name": "transactions-q4", "uri": "s3://data/q4-v2.parquet", "checksum": "",
                                 "description": "Updated"})
    assert response.status_code == 302
    record.refresh_from_db()
    assert (record.uri, record.checksum, record.description) == ("s3://data/q4-v2.parquet", "", "Updated")
    response = client.post(url, {"name": "transactions-q4", "uri": ""})
    assert response.status_code == 400 and "required" in field_error(response, "id_uri")


def test_record_delete_asks_for_confirmation_first(browser, record):
    url = reverse("dashboard:record-delete", kwargs={"record_id": record.pk})
    client = browser("admin")
    page = html(client.get(url))
    assert "irreversible" in page and f'action="{url}"' in page and "Delete record</button>" in page
    assert TrainingRecord.objects.filter(pk=record.pk).exists()
    response = client.post(url)
    assert response.status_code == 302 and not TrainingRecord.objects.filter(pk=record.pk).exists()


def test_record_used_by_a_published_version_cannot_be_deleted(browser, record, model):
    version = services.version_create(actor=None, model=model, records=[str(record.pk)])
    store_file(version)
    services.version_publish(actor=None, version=version)
    response = browser("admin").post(reverse("dashboard:record-delete", kwargs={"record_id": record.pk}))
    assert response.status_code == 409
    assert "Published version 1 of &#x27;churn-classifier&#x27; was trained on this record." in html(response)
    assert TrainingRecord.objects.filter(pk=record.pk).exists()


# --- members ----------------------------------------------------------------------------

def members_url(context):
    return reverse("dashboard:member-list", kwargs={"ctx": context.slug})


def test_member_list_shows_users_groups_and_roles(browser, context):
    group = Group.objects.create(name="data science")
    services.membership_set(actor=None, context=context, role="editor", group=group.name)
    page = html(browser("viewer").get(members_url(context)))
    assert "data science" in page and ">group<" in page and ">user<" in page
    assert "Your role: <span class=\"chip\">viewer</span>" in page


def test_admin_adds_a_user_and_a_group(browser, context):
    UserFactory(username="carol")
    Group.objects.create(name="ml-platform")
    client = browser("admin")
    url = reverse("dashboard:member-add", kwargs={"ctx": context.slug})
    assert client.post(url, {"username": "carol", "role": "publisher"}).status_code == 302
    assert client.post(url, {"group": "ml-platform", "role": "viewer"}).status_code == 302
    assert Membership.objects.get(context=context, user__username="carol").role == "publisher"
    assert Membership.objects.get(context=context, group__name="ml-platform").role == "viewer"
    page = html(client.get(members_url(context)))
    assert "carol" in page and "ml-platform" in page


@pytest.mark.parametrize(("data", "field", "message"), [
    ({"username": "nobody", "role": "viewer"}, "id_username", "There is no user"),
    ({"group": "no-such-group", "role": "viewer"}, "id_group", "There is no group"),
    ({"role": "viewer"}, "id_username", "Give either a username or a group"),
    ({"username": "viewer", "group": "x", "role": "viewer"}, "id_username", "Give either a username or a group"),
    ({"username": "viewer", "role": "admin"}, "id_username", "already a member"),
    ({"username": "viewer", "role": "owner"}, "id_role", "Select a valid choice"),
])
def test_add_member_errors_are_shown_next_to_the_field(browser, context, data, field, message):
    response = browser("admin").post(reverse("dashboard:member-add", kwargs={"ctx": context.slug}), data)
    assert response.status_code == 400
    assert message in field_error(response, field)
    assert Membership.objects.get(context=context, user__username="viewer").role == "viewer"


def test_admin_changes_a_role(browser, context, users):
    member = Membership.objects.get(context=context, user=users["editor"])
    url = reverse("dashboard:member-role", kwargs={"ctx": context.slug, "membership_id": member.pk})
    response = browser("admin").post(url, {"role": "publisher"})
    assert response.status_code == 302
    member.refresh_from_db()
    assert member.role == "publisher"
    assert AuditEvent.objects.filter(action="member.change", object_id=str(member.pk)).exists()


def test_last_admin_cannot_be_demoted_and_the_error_is_shown_on_the_row(browser, context, users):
    member = Membership.objects.get(context=context, user=users["admin"])
    url = reverse("dashboard:member-role", kwargs={"ctx": context.slug, "membership_id": member.pk})
    response = browser("admin").post(url, {"role": "viewer"})
    assert response.status_code == 409
    row = row_with(html(response), f'id="member-{member.pk}"')
    assert "last admin" in row and 'class="form-error"' in row
    member.refresh_from_db()
    assert member.role == "admin"


def test_member_remove_asks_for_confirmation_then_removes(browser, context, users):
    member = Membership.objects.get(context=context, user=users["editor"])
    url = reverse("dashboard:member-remove", kwargs={"ctx": context.slug, "membership_id": member.pk})
    client = browser("admin")
    page = html(client.get(url))
    assert "Remove user “editor”" in page and f'action="{url}"' in page
    assert Membership.objects.filter(pk=member.pk).exists()
    assert client.post(url).status_code == 302
    assert not Membership.objects.filter(pk=member.pk).exists()
    assert browser("editor").get(members_url(context)).status_code == 404


def test_last_admin_cannot_be_removed(browser, context, users):
    member = Membership.objects.get(context=context, user=users["admin"])
    url = reverse("dashboard:member-remove", kwargs={"ctx": context.slug, "membership_id": member.pk})
    client = browser("admin")
    assert "This is you" in html(client.get(url))
    response = client.post(url)
    assert response.status_code == 409 and "last admin" in html(response)
    assert Membership.objects.filter(pk=member.pk).exists()


def test_membership_of_another_context_is_404(browser, other_context, users):
    foreign = Membership.objects.get(context=other_context, user=users["outsider"])
    url = reverse("dashboard:member-role", kwargs={"ctx": "acme", "membership_id": foreign.pk})
    assert browser("admin").post(url, {"role": "viewer"}).status_code == 404


# --- audit log --------------------------------------------------------------------------

def audit_url(context):
    return reverse("dashboard:audit-list", kwargs={"ctx": context.slug})


def test_audit_log_lists_events_with_filters(browser, context, users, record):
    services.record_update(actor=users["editor"], record=record, uri="s3://moved")
    client = browser("viewer")
    page = html(client.get(audit_url(context)))
    assert "record.create" in page and "record.update" in page and "member.add" in page
    page = html(client.get(audit_url(context), {"action": "record"}))
    assert "record.update" in page and "member.add" not in page
    page = html(client.get(audit_url(context), {"actor": "editor"}))
    assert "record.update" in page and "record.create" not in page
    page = html(client.get(audit_url(context), {"object_type": "membership"}))
    assert "member.add" in page and "record.create" not in page
    page = html(client.get(audit_url(context), {"object_id": str(record.pk)}))
    assert "record.update" in page and "record.create" in page and "member.add" not in page
    page = html(client.get(audit_url(context), {"action": "nothing.like.this"}))
    assert "No event matches these filters" in page


def test_audit_log_highlights_tamper_events(browser, context):
    audit(actor=None, context=context, action="format.tamper", object_type="format", object_id="1",
          object_repr="churn v1 pkl", summary="tamper detected on the pkl file of version 1")
    audit(actor=None, context=context, action="format.quarantined", object_type="format", object_id="2",
          object_repr="churn v2 pkl", summary="pkl file of version 2 is quarantined: os.system")
    audit(actor=None, context=context, action="model.create", object_type="model", object_id="3",
          object_repr="churn", summary="created model churn")
    audit(actor=None, context=context, action="format.tamper_reported", object_type="format", object_id="4",
          object_repr="churn v3 pkl", summary="tamper reported on the pkl file of version 3")
    page = html(browser("viewer").get(audit_url(context)))
    rows = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0].split("</tr>")
    highlighted = [row for row in rows if 'class="audit-alert"' in row]
    assert len(highlighted) == 3
    assert any("format.tamper_reported" in row for row in highlighted)
    assert any("format.tamper" in row for row in highlighted)
    assert any("format.quarantined" in row for row in highlighted)
    assert all("model.create" not in row for row in highlighted)


def test_audit_log_paginates_and_other_contexts_stay_out(browser, context, other_context):
    for index in range(55):
        audit(actor=None, context=context, action="model.update", object_type="model", summary=f"change {index:02d}.")
    audit(actor=None, context=other_context, action="model.create", object_type="model", summary="secret event")
    client = browser("viewer")
    first = html(client.get(audit_url(context)))
    assert "change 54." in first and "change 00." not in first and 'rel="next"' in first
    next_page = re.search(r'href="(\?[^"]*)" rel="next"', first).group(1).replace("&amp;", "&")
    second = html(client.get(audit_url(context) + next_page))
    assert "change 00." in second and "change 54." not in second
    assert "secret event" not in first + second


def test_audit_log_empty_state(browser, db):
    context = services.context_create(actor=None, slug="fresh")
    user = UserFactory(username="lonely")
    Membership.objects.create(context=context, user=user, role="viewer")
    AuditEvent.objects.filter(context=context).delete()  # only "context.create" was logged
    client = Client()
    client.force_login(user)
    assert "Nothing has happened in fresh yet" in html(client.get(audit_url(context)))


# --- API tokens -------------------------------------------------------------------------

def tokens_url():
    return reverse("dashboard:token-list")


def test_token_is_shown_once_after_creation(browser, users):
    client = browser("editor")
    response = client.post(reverse("dashboard:token-create"), {"name": "CI", "read_only": "on",
                                                               "expires_in_days": "30"})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    plain = re.search(r'value="(mreg_[^"]+)"', html(response)).group(1)
    assert "will not be shown again" in html(response)
    token = ApiToken.objects.get(user=users["editor"], name="CI")
    assert token.key_hash == hash_token(plain) and token.read_only
    assert timedelta(days=29) < token.expires_at - timezone.now() <= timedelta(days=30)
    later = html(client.get(tokens_url()))
    assert plain not in later and token.prefix in later and "CI" in later
    api = Client(HTTP_AUTHORIZATION=f"Bearer {plain}")
    assert api.get("/api/v1/contexts/").status_code == 200


def test_token_form_errors_are_next_to_fields(browser, users):
    response = browser("editor").post(reverse("dashboard:token-create"), {"name": "", "expires_in_days": "0"})
    assert response.status_code == 400
    assert "required" in field_error(response, "id_name")
    assert "greater than or equal to 1" in field_error(response, "id_expires_in_days")
    assert not ApiToken.objects.filter(user=users["editor"]).exists()
    assert "mreg_" not in html(response)


def test_token_list_shows_only_own_tokens_with_their_state(browser, users):
    now = timezone.now()
    services.token_create(actor=None, user=users["editor"], name="active-one")
    expired, _ = services.token_create(actor=None, user=users["editor"], name="expired-one", expires_in_days=1)
    ApiToken.objects.filter(pk=expired.pk).update(expires_at=now - timedelta(hours=1))
    revoked, _ = services.token_create(actor=None, user=users["editor"], name="revoked-one")
    services.token_revoke(actor=None, token=revoked)
    used, _ = services.token_create(actor=None, user=users["editor"], name="used-one")
    ApiToken.objects.filter(pk=used.pk).update(last_used_at=now.replace(year=2030, month=1, day=2, hour=3, minute=4))
    services.token_create(actor=None, user=users["admin"], name="admins-secret-token")
    page = html(browser("editor").get(tokens_url()))
    assert "admins-secret-token" not in page
    rows = {name: row_with(page, name) for name in ("active-one", "expired-one", "revoked-one", "used-one")}
    assert ">active<" in rows["active-one"] and ">never<" in rows["active-one"]
    assert ">expired<" in rows["expired-one"]
    assert ">revoked<" in rows["revoked-one"] and "Revoke…" not in rows["revoked-one"]
    assert "2030-01-02" in rows["used-one"]


def test_token_list_empty_state(browser):
    assert "You have no API tokens yet" in html(browser("viewer").get(tokens_url()))


def test_token_revoke_asks_for_confirmation_then_revokes(browser, users):
    token, plain = services.token_create(actor=None, user=users["editor"], name="laptop")
    url = reverse("dashboard:token-revoke", kwargs={"token_id": token.pk})
    client = browser("editor")
    page = html(client.get(url))
    assert "irreversible" in page and f'action="{url}?ctx=acme"' in page  # back to the tokens page with its navigation
    token.refresh_from_db()
    assert token.revoked_at is None
    assert client.post(url).status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert Client(HTTP_AUTHORIZATION=f"Bearer {plain}").get("/api/v1/contexts/").status_code == 401


def test_another_users_token_is_404(browser, users):
    token, _ = services.token_create(actor=None, user=users["admin"], name="admins")
    url = reverse("dashboard:token-revoke", kwargs={"token_id": token.pk})
    client = browser("editor")
    assert client.get(url).status_code == 404
    assert client.post(url).status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None


# --- version comparison -----------------------------------------------------------------

def compare_url(model, **params):
    url = reverse("dashboard:compare", kwargs={"model_id": model.pk})
    return url + ("?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else "")


def test_compare_shows_differences_and_breaking_signature_changes(browser, model, two_versions):
    page = html(browser("viewer").get(compare_url(model, a=1, b=2)))
    assert "BREAKING" in page
    assert "Input &#x27;age&#x27; changed type from int64 to float64." in page
    assert "Input &#x27;income&#x27; was removed." in page
    assert "New output &#x27;probability&#x27;" in page and "badge-ok\">compatible" in page
    hyper = page.split('id="hyperparameters"', 1)[1].split("</section>", 1)[0]
    c_row = row_with(hyper, ">C ")
    assert c_row.startswith('<tr class="diff') and "1.0" in c_row and "0.5" in c_row and ">changed<" in c_row
    assert "diff" not in row_with(hyper, ">penalty<")
    config = page.split('id="config"', 1)[1].split("</section>", 1)[0]
    assert "0.5" in config and "0.4" in config
    metrics = page.split('id="metrics"', 1)[1].split("</section>", 1)[0]
    assert "0.84" in metrics and "0.81" not in metrics and "0.9" in metrics and "+0.06" in metrics


def test_compare_defaults_to_the_last_two_versions_and_has_pickers(browser, model, two_versions):
    services.version_create(actor=None, model=model, name="third")
    page = html(browser("viewer").get(compare_url(model)))
    assert '<option value="2" selected>' in page and '<option value="3" selected>' in page
    assert 'name="a"' in page and 'name="b"' in page and "Swap" in page


def test_compare_with_one_version_says_what_to_do(browser, model):
    services.version_create(actor=None, model=model)
    page = html(browser("viewer").get(compare_url(model)))
    assert "There is nothing to compare yet" in page and "Create another version" in page


def test_compare_unknown_version_or_model_is_404(browser, model, two_versions, other_context):
    client = browser("viewer")
    assert client.get(compare_url(model, a=1, b=9)).status_code == 404
    foreign = services.model_create(actor=None, context=other_context, name="theirs")
    assert client.get(compare_url(foreign)).status_code == 404
    assert client.get("/models/not-a-uuid/compare/").status_code == 404


def test_compare_a_version_with_itself(browser, model, two_versions):
    page = html(browser("viewer").get(compare_url(model, a=2, b=2)))
    assert "comparing version 2 with itself" in page and "are the same" in page


# --- query counts: a list costs the same whatever its length -----------------------------

def assert_constant_queries(client, url, grow, django_assert_num_queries):
    client.get(url)  # warm up the session
    with CaptureQueriesContext(connection) as small:
        assert client.get(url).status_code == 200
    grow()
    with django_assert_num_queries(len(small.captured_queries)):
        assert client.get(url).status_code == 200


def test_record_list_query_count(browser, context, django_assert_num_queries):
    def add(count):
        start = TrainingRecord.objects.count()
        for index in range(start, start + count):
            services.record_create(actor=None, context=context, name=f"data-{index}", uri=f"s3://d/{index}")
    add(3)
    assert_constant_queries(browser("viewer"), reverse("dashboard:record-list", kwargs={"ctx": context.slug}),
                            lambda: add(22), django_assert_num_queries)


def test_record_detail_query_count(browser, context, record, django_assert_num_queries):
    def add(count):
        for index in range(count):
            model = services.model_create(actor=None, context=context, name=f"model-{index}-{count}")
            services.version_create(actor=None, model=model, records=[str(record.pk)])
    add(3)
    assert_constant_queries(browser("viewer"), reverse("dashboard:record-detail", kwargs={"record_id": record.pk}),
                            lambda: add(27), django_assert_num_queries)


def test_member_list_query_count(browser, context, django_assert_num_queries):
    def add(count, kind):
        for index in range(count):
            if kind == "group":
                group = Group.objects.create(name=f"group-{index}")
                services.membership_set(actor=None, context=context, role="viewer", group=group.name)
            else:
                user = UserFactory(username=f"member-{index}")
                services.membership_set(actor=None, context=context, role="editor", username=user.username)
    # 4 role users + outsider-free context: grow from 4 members to 34 (users and groups).
    assert_constant_queries(browser("admin"), members_url(context),
                            lambda: (add(15, "user"), add(15, "group")), django_assert_num_queries)


def test_audit_list_query_count(browser, context, django_assert_num_queries):
    def add(count):
        for index in range(count):
            audit(actor=None, context=context, action="format.tamper", object_type="format", object_id=str(index),
                  summary=f"event {index}", changes={"sha256": ["a", "b"]})
    add(3)
    assert_constant_queries(browser("viewer"), audit_url(context), lambda: add(27), django_assert_num_queries)


def test_token_list_query_count(browser, users, django_assert_num_queries):
    def add(count):
        for index in range(count):
            services.token_create(actor=None, user=users["editor"], name=f"token-{index}", expires_in_days=5)
    add(3)
    assert_constant_queries(browser("editor"), tokens_url(), lambda: add(27), django_assert_num_queries)


def test_compare_query_count(browser, model, two_versions, django_assert_num_queries):
    first, second = two_versions

    def add(count):
        for version in (first, second):
            services.metrics_log(actor=None, version=version, metrics=[
                {"key": f"m{index}", "value": index, "step": step} for index in range(count) for step in (1, 2)
            ])
    add(3)
    assert_constant_queries(browser("viewer"), compare_url(model, a=1, b=2), lambda: add(30),
                            django_assert_num_queries)
