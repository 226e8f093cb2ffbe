"""Errors before the work (issue 15): actions the services would refuse are disabled with the
reason shown, and each reason agrees with its service (dashboard/preflight.py); a model at its
version limit does not offer the New version form; problems of a file show on every badge and
alias chip of its version; the empty state after the last version is deleted."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from dashboard import preflight
from registry import selectors, services
from registry.errors import Conflict, NotPublishable
from registry.models import Format, FormatStatus, Version, VersionStatus
from tests.helpers import store_file

pytestmark = pytest.mark.django_db


def web(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def url(name: str, **kwargs) -> str:
    return reverse(f"dashboard:{name}", kwargs=kwargs)


def page(user, name: str, **kwargs) -> str:
    response = web(user).get(url(name, **kwargs))
    assert response.status_code == 200, response.status_code
    return response.content.decode()


@pytest.fixture
def model(users, context):
    return services.model_create(actor=users["admin"], context=context, name="Churn", description="Predicts churn.")


# --- publish: the page's reason and the service's gate agree -----------------------------------------------

@pytest.mark.parametrize("status", [None, *FormatStatus.values])
def test_publish_is_offered_exactly_when_the_service_would_publish(users, model, status):
    admin = users["admin"]
    version = services.version_create(actor=admin, model=model)
    if status is not None:
        store_file(version, actor=admin)
        Format.objects.filter(version=version).update(status=status)
    loaded = selectors.version_detail(model, version.number)
    refusal = preflight.publish_refusal(loaded)
    details = page(users["publisher"], "version-detail", model_id=model.pk, number=version.number)
    confirm_url = url("version-publish-confirm", model_id=model.pk, number=version.number)
    if refusal:
        assert f'href="{confirm_url}"' not in details
        assert 'aria-describedby="publish-refusal" disabled' in details or 'disabled aria-describedby="publish-refusal"' in details
        assert refusal in details.replace("&#x27;", "'")
        with pytest.raises(NotPublishable):
            services.version_publish(actor=admin, version=loaded)
    else:
        assert f'href="{confirm_url}" data-confirm-dialog>Publish…' in details
        services.version_publish(actor=admin, version=loaded)
        assert Version.objects.get(pk=version.pk).status == VersionStatus.PUBLISHED


def test_publish_refusals_say_what_to_do(users, model):
    version = services.version_create(actor=users["admin"], model=model)
    assert preflight.publish_refusal(selectors.version_detail(model, 1)).startswith("Upload a file first")
    store_file(version, actor=users["admin"])
    Format.objects.filter(version=version).update(status=FormatStatus.CORRUPT)
    assert preflight.publish_refusal(selectors.version_detail(model, 1)) == "The pkl file is corrupt: upload it again."


def test_publish_confirmation_page_asks_and_posts_to_the_action(users, model):
    version = services.version_create(actor=users["admin"], model=model)
    store_file(version, actor=users["admin"])
    confirm = page(users["publisher"], "version-publish-confirm", model_id=model.pk, number=1)
    assert "data-confirm-card" in confirm and "Publish version 1?" in confirm
    assert f'action="{url("version-publish", model_id=model.pk, number=1)}"' in confirm
    assert re.search(r'<button class="primary" type="submit">Publish version 1</button>', confirm)
    viewer = page(users["viewer"], "version-publish-confirm", model_id=model.pk, number=1)
    assert "does not allow this" in viewer and re.search(r'type="submit" disabled>Publish version 1', viewer)


# --- delete a version an alias points to ---------------------------------------------------------------------

def test_deleting_an_aliased_version_is_disabled_with_the_reason(users, model):
    admin = users["admin"]
    version = services.version_create(actor=admin, model=model)
    store_file(version, actor=admin)
    services.version_publish(actor=admin, version=version)
    services.alias_set(actor=admin, model=model, name="production", version_number=1)
    loaded = selectors.version_detail(model, 1)
    refusal = preflight.delete_refusal(loaded)
    assert refusal.startswith("Alias production points to version 1")
    with pytest.raises(Conflict):
        services.version_delete(actor=admin, version=loaded)
    details = page(admin, "version-detail", model_id=model.pk, number=1)
    assert f'href="{url("version-delete", model_id=model.pk, number=1)}"' not in details
    assert 'id="delete-refusal">Alias production points to version 1' in details
    confirm = page(admin, "version-delete", model_id=model.pk, number=1)
    assert re.search(r'type="submit" disabled aria-describedby="delete-refusal">Delete version 1', confirm)
    assert "production points to version 1, so it cannot be deleted" in confirm
    services.alias_delete(actor=admin, model=model, name="production")
    assert preflight.delete_refusal(selectors.version_detail(model, 1)) == ""


# --- roll back an alias without history -----------------------------------------------------------------------

def test_rollback_is_offered_only_with_an_earlier_version_to_go_back_to(users, model):
    admin = users["admin"]
    for _ in range(3):
        version = services.version_create(actor=admin, model=model)
        store_file(version, actor=admin)
        services.version_publish(actor=admin, version=version)
    services.alias_set(actor=admin, model=model, name="fresh", version_number=1)
    services.alias_set(actor=admin, model=model, name="moved", version_number=1)
    services.alias_set(actor=admin, model=model, name="moved", version_number=2)
    services.alias_set(actor=admin, model=model, name="orphaned", version_number=3)
    services.alias_set(actor=admin, model=model, name="orphaned", version_number=2)
    services.alias_set(actor=admin, model=model, name="orphaned", version_number=3)  # before: 2
    assert selectors.alias_rollback_targets(model) == {"fresh": None, "moved": 1, "orphaned": 2}
    services.alias_delete(actor=admin, model=model, name="moved")
    services.version_delete(actor=admin, version=Version.objects.get(model=model, number=2))
    assert selectors.alias_rollback_targets(model) == {"fresh": None, "orphaned": None}
    aliases = page(users["publisher"], "model-aliases", model_id=model.pk)
    for name in ("fresh", "orphaned"):
        assert f'href="{url("alias-rollback-confirm", model_id=model.pk, alias=name)}"' not in aliases
        assert f'id="rollback-refusal-{name}">No earlier version to go back to' in aliases
        with pytest.raises(Conflict):
            services.alias_rollback(actor=admin, model=model, name=name)
    services.alias_set(actor=admin, model=model, name="fresh", version_number=3)
    aliases = page(users["publisher"], "model-aliases", model_id=model.pk)
    assert f'href="{url("alias-rollback-confirm", model_id=model.pk, alias="fresh")}" data-confirm-dialog' in aliases
    confirm = page(users["publisher"], "alias-rollback-confirm", model_id=model.pk, alias="fresh")
    assert "moves it to version 1" in confirm and "Move fresh to version 1" in confirm


# --- the version limit ----------------------------------------------------------------------------------------

def test_at_the_version_limit_the_new_version_form_is_not_offered(users, model, settings):
    settings.REGISTRY_MAX_VERSIONS = 2
    services.version_create(actor=users["editor"], model=model)
    below = page(users["editor"], "version-create", model_id=model.pk)
    assert 'name="framework"' in below and "numbers it 2" in below
    services.version_create(actor=users["editor"], model=model)
    at_limit = page(users["editor"], "version-create", model_id=model.pk)
    assert 'name="framework"' not in at_limit and 'type="file"' not in at_limit
    assert "Churn already has 2 versions, the most allowed (2)" in at_limit
    assert "Delete a version you no longer need" in at_limit


# --- JSON fields and the error summary -----------------------------------------------------------------------

def test_json_fields_are_marked_for_checking_as_typed_and_errors_are_summarised(users, model):
    new = page(users["editor"], "version-create", model_id=model.pk)
    assert new.count("data-json-object") == 5  # hyperparameters, config, metadata, signature, external files
    assert new.count('data-json-object="list"') == 1  # external files: a JSON list
    response = web(users["editor"]).post(url("version-create", model_id=model.pk),
                                         {"hyperparameters": "{oops", "config": "[1]", "external_files": "{}"})
    assert response.status_code == 400
    summary = response.content.decode().split('class="error-summary"', 1)[1].split("</div>", 1)[0]
    assert "3 things need fixing" in summary
    assert '<a href="#id_external_files">External files: Enter a JSON list in brackets' in summary
    assert '<a href="#id_hyperparameters">Hyperparameters: This is not valid JSON' in summary
    assert '<a href="#id_config">Config: Enter a JSON object in braces' in summary


# --- worst file state on badges and chips ---------------------------------------------------------------------

@pytest.fixture
def corrupt_production(users, model):
    """v1 published with a pkl file that later went corrupt, aliased production; v2 a ready draft."""
    admin = users["admin"]
    v1 = services.version_create(actor=admin, model=model)
    store_file(v1, actor=admin)
    services.version_publish(actor=admin, version=v1)
    services.alias_set(actor=admin, model=model, name="production", version_number=1)
    Format.objects.filter(version=v1).update(status=FormatStatus.CORRUPT, status_message="checksum mismatch")
    v2 = services.version_create(actor=admin, model=model)
    store_file(v2, actor=admin)
    return model


def test_a_corrupt_file_shows_on_every_badge_and_chip_of_its_version(users, corrupt_production, context):
    model = corrupt_production
    listing = page(users["viewer"], "model-list", ctx=context.slug)
    assert re.search(r'<span class="chip chip-bad"[^>]*>production → v1 <span class="chip-problem">· pkl corrupt</span>',
                     listing)
    for name, kwargs in [("model-detail", {"model_id": model.pk}),
                         ("version-detail", {"model_id": model.pk, "number": 1}),
                         ("model-aliases", {"model_id": model.pk})]:
        shown = page(users["viewer"], name, **kwargs)
        # The version menu: v1 is red, v2 (a ready draft) is not flagged.
        assert '<span class="badge badge-bad" title="The pkl file of this version is corrupt.">published · pkl corrupt</span>' in shown
        assert "draft · " not in shown
        assert re.search(r'<span class="chip chip-bad"[^>]*>production( → v1)? <span class="chip-problem">· pkl corrupt', shown)
        assert '<span class="badge badge-ok">published</span>' not in shown
    details = page(users["viewer"], "version-detail", model_id=model.pk, number=1)
    assert details.count("published · pkl corrupt") >= 3  # the menu, the bar and the version's heading


def test_a_corrupt_file_downloads_only_through_the_warning_step(users, corrupt_production):
    model = corrupt_production
    formats = page(users["viewer"], "version-formats", model_id=model.pk, number=1)
    file_url = f"/api/v1/models/{model.pk}/versions/1/formats/pkl/file"
    assert f'href="{file_url}"' not in formats
    warning_url = url("format-download-confirm", model_id=model.pk, number=1, kind="pkl")
    assert f'href="{warning_url}" data-confirm-dialog>Download…' in formats
    warning = page(users["viewer"], "format-download-confirm", model_id=model.pk, number=1, kind="pkl")
    assert "This file is corrupt (checksum mismatch)" in warning
    assert f'<form method="get" action="{file_url}">' in warning
    assert 'name="acknowledge" value="corrupt" required' in warning


def test_model_list_query_count_does_not_grow_with_aliases_or_files(users, context, django_assert_num_queries):
    admin = users["admin"]

    def add_models(count: int) -> None:
        for index in range(count):
            model = services.model_create(actor=admin, context=context, name=f"m-{count}-{index}", tags="a, b")
            version = services.version_create(actor=admin, model=model)
            store_file(version, actor=admin)
            store_file(version, kind="joblib", actor=admin)
            services.version_publish(actor=admin, version=version)
            services.alias_set(actor=admin, model=model, name="production", version_number=1)
            services.alias_set(actor=admin, model=model, name="staging", version_number=1)

    client = web(users["viewer"])
    add_models(2)
    client.get(url("model-list", ctx=context.slug))  # warm up
    with CaptureQueriesContext(connection) as small:
        client.get(url("model-list", ctx=context.slug))
    add_models(8)
    with django_assert_num_queries(len(small.captured_queries)):
        response = client.get(url("model-list", ctx=context.slug))
    assert response.content.decode().count("production → v1") == 10


# --- the Aliases tab without ?version -------------------------------------------------------------------------

def test_the_aliases_tab_without_a_version_chooses_none(users, corrupt_production):
    model = corrupt_production
    aliases = page(users["viewer"], "model-aliases", model_id=model.pk)
    bar = aliases.split('<div class="version-bar">', 1)[1].split("</div>", 1)[0]
    assert "<summary>Go to a version</summary>" in bar and "2 versions" in bar
    assert 'aria-current="true"' not in bar
    chosen = web(users["viewer"]).get(url("model-aliases", model_id=model.pk) + "?version=1").content.decode()
    assert "<summary>Version 1</summary>" in chosen


# --- the empty state after the last version is deleted ----------------------------------------------------------

def test_after_deleting_the_last_version_the_real_next_number_and_a_model_delete_are_offered(users, model):
    admin = users["admin"]
    services.version_create(actor=admin, model=model)
    services.version_delete(actor=admin, version=Version.objects.get(model=model, number=1))
    shown = page(admin, "model-detail", model_id=model.pk)
    assert "Churn has no versions left" in shown and "Its next version will be version 2" in shown
    assert "/versions/2/formats/pkl/file" in shown and "/versions/1/formats" not in shown
    assert "Create version 2" in shown
    assert f'href="{url("model-delete", model_id=model.pk)}" data-confirm-dialog>Delete the model…' in shown
    assert "none yet (the next is version 2)" in shown
    assert "removes all 0 versions" not in shown and "it has no versions" in shown
    editor = page(users["editor"], "model-detail", model_id=model.pk)
    assert "Delete the model…" not in editor


def test_deleting_the_only_version_points_to_deleting_the_model(users, model):
    services.version_create(actor=users["admin"], model=model)
    confirm = page(users["admin"], "version-delete", model_id=model.pk, number=1)
    assert "It is the only version of Churn" in confirm
    assert f'href="{url("model-delete", model_id=model.pk)}">delete the model</a>' in confirm
