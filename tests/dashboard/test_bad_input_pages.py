"""Bad input on the dashboard: a 400 page or a form error next to the field, never a 500, and
nothing stored (issue 13). Runs on SQLite and PostgreSQL (where a NUL used to be a 500)."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import reverse

from registry import services
from registry.models import Model, Version

pytestmark = pytest.mark.django_db

NUL = "\x00"


def web(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def url(name: str, **kwargs) -> str:
    return reverse(f"dashboard:{name}", kwargs=kwargs)


@pytest.fixture
def model(users, context):
    return services.model_create(actor=users["editor"], context=context, name="Churn")


@pytest.mark.parametrize("name, params", [
    ("model-list", {"q": f"a{NUL}b"}),
    ("model-list", {"tag": f"a{NUL}b"}),
    ("model-list", {"sort": f"name{NUL}"}),
    ("record-list", {"q": f"a{NUL}b"}),
    ("audit-list", {"object_id": f"a{NUL}b"}),
    ("audit-list", {"actor": f"a{NUL}b"}),
    ("audit-list", {"action": f"a{NUL}b"}),
])
def test_nul_in_a_search_box_or_filter_is_a_400_page(users, model, name, params):
    r = web(users["viewer"]).get(url(name, ctx="acme"), params)
    assert r.status_code == 400
    assert r["Content-Type"].startswith("text/html")
    assert "NUL" in r.content.decode()


def test_nul_in_a_dashboard_path_is_a_400_page(users, model):
    r = web(users["viewer"]).get(f"/models/{model.pk}/aliases/pro%00d/rollback/")
    assert r.status_code == 400
    assert r["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("field", ["metadata", "hyperparameters", "config"])
def test_nul_in_a_json_field_of_the_version_form_is_a_form_error(users, model, field):
    r = web(users["editor"]).post(url("version-create", model_id=model.pk),
                                  {field: json.dumps({"k": f"v{NUL}"})})
    assert r.status_code == 400
    assert "cannot be stored" in r.content.decode()
    assert not Version.objects.exists()


def test_nul_in_a_signature_name_is_a_form_error(users, model):
    signature = {"inputs": [{"name": f"x{NUL}", "dtype": "float32", "shape": [-1]}]}
    r = web(users["editor"]).post(url("version-create", model_id=model.pk), {"signature": json.dumps(signature)})
    assert r.status_code == 400
    assert not Version.objects.exists()


def test_nul_in_a_text_field_of_the_model_form_is_a_form_error(users, context):
    r = web(users["editor"]).post(url("model-create", ctx="acme"), {"name": "fresh", "description": f"a{NUL}b"})
    assert r.status_code == 400
    assert not Model.objects.exists()


def test_json_nested_too_deep_in_a_form_field_is_a_form_error(users, model, settings):
    deep = "[" * 5000 + "]" * 5000
    r = web(users["editor"]).post(url("version-create", model_id=model.pk), {"metadata": '{"a": ' + deep + "}"})
    assert r.status_code == 400
    assert f"{settings.REGISTRY_MAX_JSON_DEPTH} levels" in r.content.decode()
    assert not Version.objects.exists()


def test_a_look_alike_model_name_is_a_form_error(users, model):
    r = web(users["editor"]).post(url("model-create", ctx="acme"), {"name": "\u0421hurn\u200b"})
    assert r.status_code == 400
    assert "looks the same" in r.content.decode()
    assert Model.objects.count() == 1


def test_a_look_alike_rename_is_a_form_error(users, model):
    services.model_create(actor=users["editor"], context=model.context, name="Other")
    other = Model.objects.get(name="Other")
    r = web(users["editor"]).post(url("model-edit", model_id=other.pk), {"name": "\u0421hurn"})
    assert r.status_code == 400
    assert "looks the same" in r.content.decode() and "Churn" in r.content.decode()
    other.refresh_from_db()
    assert other.name == "Other"
