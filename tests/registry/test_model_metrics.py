"""Model-level metrics (ModelBox) and one version metric across versions, over the API and on
the model page, with constant query counts."""

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from registry import services
from registry.models import AuditEvent, ModelMetric

pytestmark = pytest.mark.django_db


def metrics_url(model):
    return f"/api/v1/models/{model.pk}/metrics/"


def across_url(model, key="accuracy"):
    return f"/api/v1/models/{model.pk}/metrics/across-versions/?key={key}"


def test_model_metrics_are_logged_listed_and_audited(clients, model):
    r = clients["editor"].post(metrics_url(model), [
        {"key": "drift", "value": 0.12, "step": 1, "wallclock": "2026-11-01T00:00:00Z"},
        {"key": "drift", "value": 0.18, "step": 2},
        {"key": "note", "value": "retrained upstream"},
    ], format="json")
    assert r.status_code == 201, r.json()
    assert [item["value"] for item in r.json()] == [0.12, 0.18, "retrained upstream"]
    one = clients["editor"].post(metrics_url(model), {"key": "latency_ms", "value": 31}, format="json")
    assert one.status_code == 201 and one.json()[0]["step"] is None
    listed = clients["viewer"].get(metrics_url(model)).json()
    assert [(m["key"], m["value"]) for m in listed["results"]] == [
        ("drift", 0.12), ("drift", 0.18), ("latency_ms", 31.0), ("note", "retrained upstream")]
    assert listed["results"][0]["wallclock"] == "2026-11-01T00:00:00Z"
    only = clients["viewer"].get(metrics_url(model), {"key": "drift"}).json()["results"]
    assert [m["step"] for m in only] == [1, 2]
    event = AuditEvent.objects.filter(action="metric.log").latest("id")
    assert event.object_type == "model" and event.object_id == str(model.pk)
    assert "model metric" in event.summary and "latency_ms" in event.summary


def test_model_metrics_page_by_cursor(clients, model):
    services.model_metrics_log(actor=None, model=model, metrics=[{"key": "m", "value": i, "step": i} for i in range(7)])
    page = clients["viewer"].get(metrics_url(model), {"page_size": 3}).json()
    steps = [m["step"] for m in page["results"]]
    while page["next"]:
        page = clients["viewer"].get(page["next"]).json()
        steps += [m["step"] for m in page["results"]]
    assert steps == list(range(7))


@pytest.mark.parametrize("body, fragment", [
    ([], "at least one metric"),
    ({"key": "", "value": 1}, "key of 1-200"),
    ({"key": "x", "value": None}, "number or string"),
    ({"key": "x", "value": 1, "step": 1.5}, "step must be an integer"),
    ({"key": "x", "value": 1, "wallclock": "yesterday"}, "wallclock must be ISO 8601"),
    ([{"key": "ok", "value": 1}, {"key": "x", "value": [1]}], "metric 1 'x' needs a number or string"),
])
def test_a_bad_model_metric_is_a_400_and_nothing_is_logged(clients, model, body, fragment):
    r = clients["editor"].post(metrics_url(model), body, format="json")
    assert r.status_code == 400 and fragment in r.json()["detail"], r.json()
    assert not ModelMetric.objects.exists()


def test_outsiders_and_viewers(clients, model):
    assert clients["outsider"].get(metrics_url(model)).status_code == 404
    assert clients["outsider"].get(across_url(model)).status_code == 404
    assert clients["viewer"].post(metrics_url(model), {"key": "x", "value": 1}, format="json").status_code == 403
    assert not ModelMetric.objects.exists()


def test_a_version_metric_across_versions_is_each_versions_latest_value(clients, model):
    versions = [services.version_create(actor=None, model=model) for _ in range(4)]
    services.metrics_log(actor=None, version=versions[0], metrics=[
        {"key": "accuracy", "value": 0.70, "step": 1}, {"key": "accuracy", "value": 0.81, "step": 9},
        {"key": "accuracy", "value": 0.75, "step": 3}])
    services.metrics_log(actor=None, version=versions[1], metrics=[{"key": "loss", "value": 0.3}])  # no accuracy
    services.metrics_log(actor=None, version=versions[2], metrics=[{"key": "accuracy", "value": 0.88}])
    services.metrics_log(actor=None, version=versions[3], metrics=[{"key": "accuracy", "value": "n/a", "step": 1}])
    services.version_delete(actor=None, version=versions[2])  # its number is gone from the chart too
    r = clients["viewer"].get(across_url(model))
    assert r.status_code == 200, r.json()
    assert r.json()["key"] == "accuracy"
    assert [(p["version"], p["value"], p["step"]) for p in r.json()["versions"]] == [(1, 0.81, 9), (4, "n/a", 1)]
    assert clients["viewer"].get(across_url(model, key="unknown")).json()["versions"] == []


def test_across_versions_needs_a_key(clients, model):
    r = clients["viewer"].get(f"/api/v1/models/{model.pk}/metrics/across-versions/")
    assert r.status_code == 400 and r.json()["field"] == "key"


@pytest.mark.parametrize("path", [metrics_url, across_url])
def test_reads_cost_the_same_whatever_the_number_of_versions_and_points(clients, model, users, path):
    def grow(count):
        for _ in range(count):
            version = services.version_create(actor=None, model=model)
            services.metrics_log(actor=None, version=version, metrics=[
                {"key": "accuracy", "value": 0.5 + step / 10, "step": step} for step in range(3)])
        services.model_metrics_log(actor=None, model=model, metrics=[
            {"key": f"k{i}", "value": i, "step": i} for i in range(count * 3)])

    client = clients["viewer"]
    grow(2)
    client.get(path(model))
    with CaptureQueriesContext(connection) as small:
        assert client.get(path(model)).status_code == 200
    grow(12)
    with CaptureQueriesContext(connection) as large:
        response = client.get(path(model))
    assert response.status_code == 200
    assert len(large) == len(small)
    if path is across_url:
        assert len(response.json()["versions"]) == 14


# --- the model page ---------------------------------------------------------------------------------

@pytest.fixture
def viewer(users):
    client = Client()
    client.force_login(users["viewer"])
    return client


def test_the_overview_shows_the_latest_model_metrics(viewer, model):
    services.model_metrics_log(actor=None, model=model, metrics=[
        {"key": "drift", "value": 0.1, "step": 1}, {"key": "drift", "value": 0.25, "step": 2},
        {"key": "<b>traffic</b>", "value": 1200}])
    page = viewer.get(reverse("dashboard:model-detail", kwargs={"model_id": model.pk})).content.decode()
    summary = page.split('class="model-metrics-summary"', 1)[1].split("</dd>", 1)[0]
    assert "drift: 0.25" in summary and "&lt;b&gt;traffic&lt;/b&gt;: 1200" in summary and "<b>" not in summary


def test_the_model_metrics_tab_charts_model_metrics_and_a_metric_across_versions(viewer, model):
    for accuracy in (0.71, 0.78, 0.83):
        version = services.version_create(actor=None, model=model)
        services.metrics_log(actor=None, version=version, metrics=[{"key": "accuracy", "value": accuracy},
                                                                    {"key": "f1", "value": accuracy - 0.1}])
    services.model_metrics_log(actor=None, model=model, metrics=[{"key": "drift", "value": v, "step": s}
                                                                 for s, v in enumerate((0.1, 0.2, 0.15))])
    url = reverse("dashboard:model-metrics", kwargs={"model_id": model.pk})
    page = viewer.get(url).content.decode()
    assert '<option value="accuracy" selected>' in page and '<option value="f1">' in page
    assert 'aria-label="accuracy by version"' in page and page.count("<title>version ") == 3
    assert "<title>version 3: 0.83</title>" in page
    assert 'aria-label="drift"' in page and "<title>step 2: 0.15</title>" in page
    f1 = viewer.get(url + "?key=f1").content.decode()
    assert 'aria-label="f1 by version"' in f1 and "<title>version 1: 0.61</title>" in f1
    # An unknown key falls back to the first one rather than drawing nothing.
    assert 'aria-label="accuracy by version"' in viewer.get(url + "?key=nope").content.decode()


def test_the_model_metrics_tab_says_how_to_start(viewer, model):
    page = viewer.get(reverse("dashboard:model-metrics", kwargs={"model_id": model.pk})).content.decode()
    assert "No version has a numeric metric yet" in page
    assert 'model.log_metric("drift", 0.12, step=7)' in page
