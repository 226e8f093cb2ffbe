"""Lists that grow without bound page by cursor (registry/keyset.py, registry/api/pagination.py):
every row once, in order, while rows come and go; a deep page costs what the first costs; a
cursor that is not one of ours is a 400."""

import base64
import datetime
import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from registry import services
from registry.models import AuditEvent, Metric, Model
from registry.services.common import audit

pytestmark = pytest.mark.django_db

MODELS = "/api/v1/contexts/acme/models/"
AUDIT = "/api/v1/contexts/acme/audit/"


def make_models(users, context, count, prefix="m"):
    return [services.model_create(actor=users["editor"], context=context, name=f"{prefix}-{index:03d}")
            for index in range(count)]


def walk(client, url, *, follow="next"):
    """Every page from `url` by its `follow` links: (rows of each page, in page order)."""
    pages = []
    while url:
        r = client.get(url)
        assert r.status_code == 200, r.content[:300]
        body = r.json()
        assert set(body) == {"next", "previous", "results"}
        pages.append(body["results"])
        url = body[follow]
    return pages


def flat(pages, key="name"):
    return [row[key] for page in pages for row in page]


@pytest.mark.parametrize("ordering", ["", "-name", "created", "-created", "updated", "-updated", "versions",
                                      "-versions"])
def test_walking_the_pages_shows_every_model_once_in_order(clients, users, context, ordering):
    models = make_models(users, context, 23)
    for model in models[::4]:  # unequal version counts, and ties between them
        services.version_create(actor=users["editor"], model=model)
    # Ties on the timestamps too: the id breaks them.
    Model.objects.filter(pk__in=[m.pk for m in models[5:12]]).update(updated_at=models[5].updated_at)
    viewer = clients["viewer"]
    everything = [m["name"] for m in viewer.get(MODELS, {"ordering": ordering, "page_size": 500}).json()["results"]]
    assert sorted(everything) == sorted(m.name for m in models)
    pages = walk(viewer, f"{MODELS}?ordering={ordering}&page_size=5")
    assert [len(page) for page in pages] == [5, 5, 5, 5, 3]
    assert flat(pages) == everything
    # And back from the last page by the `previous` links.
    last = viewer.get(f"{MODELS}?ordering={ordering}&page_size=5").json()
    while last["next"]:
        last = viewer.get(last["next"]).json()
    backwards = walk(viewer, last["previous"], follow="previous")
    assert flat(backwards[::-1]) + [m["name"] for m in last["results"]] == everything


def test_rows_added_and_removed_meanwhile_neither_repeat_nor_skip(clients, users, context):
    models = make_models(users, context, 12)
    viewer = clients["viewer"]
    first = viewer.get(MODELS, {"page_size": 4}).json()
    assert [m["name"] for m in first["results"]] == ["m-000", "m-001", "m-002", "m-003"]
    # Before the boundary (would shift an OFFSET page by two), after it, and a removal.
    for name in ("a-early", "b-early", "m-0035", "z-late"):
        services.model_create(actor=users["editor"], context=context, name=name)
    services.model_delete(actor=users["admin"], model=models[6])
    rest = flat(walk(viewer, first["next"]))
    assert rest == ["m-0035", "m-004", "m-005", "m-007", "m-008", "m-009", "m-010", "m-011", "z-late"]


def test_the_audit_log_pages_newest_first_with_ties_broken_by_id(clients, context):
    moment = timezone.now()
    for index in range(17):
        audit(actor=None, context=context, action="model.update", object_type="model", object_id=f"id-{index % 3}",
              summary=f"change {index:02d}")
    AuditEvent.objects.filter(context=context).update(created_at=moment)  # all at the same instant
    newest = AuditEvent.objects.filter(context=context).order_by("-id")
    expected = [event.summary for event in newest]
    pages = walk(clients["viewer"], f"{AUDIT}?page_size=4")
    assert flat(pages, "summary") == expected
    filtered = walk(clients["viewer"], f"{AUDIT}?page_size=2&object_id=id-1")
    assert flat(filtered, "summary") == [e.summary for e in newest.filter(object_id="id-1")]


def test_metric_points_page_with_steps_missing(clients, users, version):
    points = [{"key": "loss", "value": 1.0 / (step + 1), "step": step} for step in range(7)]
    points += [{"key": "loss", "value": 0.5}, {"key": "auc", "value": 0.9}, {"key": "auc", "value": 0.8, "step": 2}]
    services.metrics_log(actor=users["editor"], version=version, metrics=points)
    url = f"/api/v1/models/{version.model_id}/versions/{version.number}/metrics/"
    pages = walk(clients["viewer"], f"{url}?page_size=3")
    shown = [(row["key"], row["step"]) for page in pages for row in page]
    assert shown == [("auc", 2), ("auc", None)] + [("loss", step) for step in range(7)] + [("loss", None)]
    assert len(shown) == Metric.objects.filter(version=version).count()


def test_a_deep_page_costs_the_queries_of_the_first(clients, users, context):
    make_models(users, context, 40)
    viewer = clients["viewer"]
    viewer.get(MODELS)  # the token's first use writes last_used_at: keep it out of the counts
    url, counts = f"{MODELS}?page_size=3", []
    while url:
        with CaptureQueriesContext(connection) as captured:
            r = viewer.get(url)
        counts.append(len(captured))
        url = r.json()["next"]
    assert len(counts) == 14
    assert set(counts) == {counts[0]}, counts
    sql = [query["sql"].upper() for query in captured.captured_queries]
    assert not any(" OFFSET " in statement or statement.startswith("SELECT COUNT(") for statement in sql), sql


def cursor_of(payload) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def real_cursor(client, url=MODELS):
    next_link = client.get(url, {"page_size": 1}).json()["next"]
    return next_link.split("cursor=")[1].split("&")[0]


@pytest.mark.parametrize("cursor", [
    "not-a-cursor", "%%%", "e30", cursor_of([]), cursor_of({"d": "n"}),
    cursor_of({"d": "x", "k": ["a", "00000000-0000-0000-0000-000000000000"], "o": "name_key,id"}),
    cursor_of({"d": "n", "k": ["a"], "o": "name_key,id"}),
    cursor_of({"d": "n", "k": ["a", "not-a-uuid"], "o": "name_key,id"}),
    cursor_of({"d": "n", "k": [{"a": 1}, "00000000-0000-0000-0000-000000000000"], "o": "name_key,id"}),
    cursor_of({"d": "n", "k": [None, "00000000-0000-0000-0000-000000000000"], "o": "name_key,id"}),
    cursor_of({"d": "n", "k": ["a", "00000000-0000-0000-0000-000000000000"], "o": "-updated_at,name_key,id"}),
    cursor_of({"d": "n", "k": ["yesterday", "a", "00000000-0000-0000-0000-000000000000"],
               "o": "updated_at,name_key,id"}),
    cursor_of({"d": "n", "k": ["2026-01-01T00:00:00", "a", "00000000-0000-0000-0000-000000000000"],
               "o": "updated_at,name_key,id"}),
    cursor_of({"d": "n", "k": [10**30, "a", "00000000-0000-0000-0000-000000000000"],
               "o": "version_count,name_key,id"}),
])
def test_a_cursor_that_is_not_ours_is_400(clients, users, context, cursor):
    make_models(users, context, 2)
    r = clients["viewer"].get(MODELS, {"cursor": cursor, "ordering": "updated" if "updated_at" in cursor else ""})
    assert r.status_code == 400, r.content[:300]
    assert r.json()["code"] == "invalid" and r.json()["field"] == "cursor"


def test_a_cursor_of_another_ordering_or_list_is_400(clients, users, context):
    make_models(users, context, 3)
    viewer = clients["viewer"]
    by_name = real_cursor(viewer)
    assert viewer.get(MODELS, {"cursor": by_name}).status_code == 200
    r = viewer.get(MODELS, {"cursor": by_name, "ordering": "-updated"})
    assert r.status_code == 400 and r.json()["field"] == "cursor"
    r = viewer.get(AUDIT, {"cursor": by_name})
    assert r.status_code == 400 and r.json()["field"] == "cursor"


def test_a_cursor_reaches_only_rows_the_list_shows(clients, users, context, other_context):
    """A cursor is a position, not a filter: forged, it still starts inside the caller's list."""
    make_models(users, context, 2)
    services.model_create(actor=None, context=other_context, name="zz-secret")
    forged = cursor_of({"d": "n", "k": ["", "00000000-0000-0000-0000-000000000000"], "o": "name_key,id"})
    shown = flat(walk(clients["viewer"], f"{MODELS}?cursor={forged}"))
    assert shown == ["m-000", "m-001"]


def test_page_numbers_are_refused_where_lists_page_by_cursor(clients, version):
    for url in (MODELS, AUDIT, "/api/v1/contexts/acme/records/",
                f"/api/v1/models/{version.model_id}/versions/1/metrics/"):
        r = clients["viewer"].get(url, {"page": 2})
        assert r.status_code == 400 and r.json()["field"] == "page", url
    # Lists bounded by a limit keep page numbers and a count.
    body = clients["viewer"].get(f"/api/v1/models/{version.model_id}/versions/", {"page": 1}).json()
    assert body["count"] == 1


def test_training_records_page_by_cursor(clients, users, context):
    for index in range(7):
        services.record_create(actor=users["editor"], context=context, name=f"data-{index}", uri=f"s3://d/{index}")
    assert flat(walk(clients["viewer"], "/api/v1/contexts/acme/records/?page_size=3")) == [
        f"data-{index}" for index in range(7)]


def test_links_keep_the_filters(clients, users, context):
    for index in range(5):
        services.model_create(actor=users["editor"], context=context, name=f"fraud-{index}", tags=["tabular"])
    services.model_create(actor=users["editor"], context=context, name="speech")
    pages = walk(clients["viewer"], f"{MODELS}?search=FRAUD&tag=tabular&ordering=-name&page_size=2")
    assert flat(pages) == [f"fraud-{index}" for index in range(4, -1, -1)]


def test_datetime_cursor_values_keep_microseconds(clients, users, context):
    models = make_models(users, context, 3)
    base = timezone.now().replace(microsecond=0)
    for offset, model in enumerate(models):  # one microsecond apart
        Model.objects.filter(pk=model.pk).update(updated_at=base + datetime.timedelta(microseconds=offset))
    assert flat(walk(clients["viewer"], f"{MODELS}?ordering=updated&page_size=1")) == ["m-000", "m-001", "m-002"]
