"""A write that comes just after another request deleted its row answers 404, as it would a
moment later, never 500: every service that reads its row again under a lock (lock_one) finds
it gone and says so. Through the API, several clients deleting one model or version at once:
one 204, the others 404."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from registry import services
from registry.errors import NotFound
from registry.models import Model, TrainingRecord, Version, Webhook
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def _stale(obj):
    """`obj` as a request read it, then deleted by another request."""
    stale = type(obj).objects.get(pk=obj.pk)
    type(obj).objects.filter(pk=obj.pk).delete()
    return stale


def test_each_locked_write_on_a_deleted_row_is_not_found(settings, users, context, model, version):
    settings.REGISTRY_WEBHOOK_ALLOW_PRIVATE = True
    editor, admin = users["editor"], users["admin"]
    record = services.record_create(actor=editor, context=context, name="data", uri="s3://data/x.parquet")
    webhook, _secret = services.webhook_create(actor=admin, context=context, url="https://example.com/hook",
                                               events=["model.deleted"])
    other = services.model_create(actor=editor, context=context, name="Other")
    calls = [
        ("Version", lambda v: services.version_update(actor=editor, version=v, description="x"), version),
        ("Version", lambda v: services.version_publish(actor=editor, version=v),
         services.version_create(actor=editor, model=model)),
        ("Version", lambda v: services.version_delete(actor=editor, version=v),
         services.version_create(actor=editor, model=model)),
        ("Training record", lambda r: services.record_update(actor=editor, record=r, description="x"), record),
        ("Webhook", lambda w: services.webhook_update(actor=admin, webhook=w, description="x"), webhook),
        ("Webhook", lambda w: services.webhook_secret_rotate(actor=admin, webhook=w), webhook),
        ("Webhook", lambda w: services.webhook_delete(actor=admin, webhook=w), webhook),
        ("Model", lambda m: services.model_update(actor=editor, model=m, description="x"), other),
        ("Model", lambda m: services.model_delete(actor=editor, model=m), other),
    ]
    for what, call, obj in calls:
        # (a row several calls share is deleted before the first of them)
        stale = _stale(obj) if type(obj).objects.filter(pk=obj.pk).exists() else obj
        with pytest.raises(NotFound, match=f"^{what} not found.$"):
            call(stale)
    assert not Model.objects.filter(pk=other.pk).exists()
    assert not Version.objects.filter(pk=version.pk).exists()
    assert not TrainingRecord.objects.filter(pk=record.pk).exists()
    assert not Webhook.objects.filter(pk=webhook.pk).exists()


def _at_once(user, requests) -> list[int]:
    """Each of `requests` (a function of an API client) sent by a client of `user` of its own,
    from threads released together; their status codes, sorted."""
    barrier, statuses = threading.Barrier(len(requests)), []
    clients = [client_for(user) for _ in requests]

    def run(request, client):
        client.raise_request_exception = False
        try:
            barrier.wait()
            statuses.append(request(client).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=pair) for pair in zip(requests, clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(statuses)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent connections need PostgreSQL (the tests' "
                                                            "SQLite is one shared in-memory database)")
@pytest.mark.django_db(transaction=True)
def test_clients_deleting_one_model_or_version_at_once_get_one_204_and_404s(users, context):
    admin = users["admin"]
    model = services.model_create(actor=admin, context=context, name="Raced")
    services.version_create(actor=admin, model=model)
    for path in (f"/api/v1/models/{model.pk}/versions/1/", f"/api/v1/models/{model.pk}/"):
        assert _at_once(admin, [lambda client: client.delete(path)] * 6) == [204] + [404] * 5


@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent connections need PostgreSQL (the tests' "
                                                            "SQLite is one shared in-memory database)")
@pytest.mark.django_db(transaction=True)
def test_writes_racing_a_model_delete_answer_or_404_never_500(users, context):
    """A file, a format and metrics added to a model's version while the model is deleted: each
    ends before the delete (and goes with it) or finds its version gone. Before, a row added
    meanwhile failed the delete at COMMIT (a foreign key still referenced), or the writer at its."""
    admin = users["admin"]
    for round_ in range(4):
        model = services.model_create(actor=admin, context=context, name=f"Raced {round_}")
        services.version_create(actor=admin, model=model)
        base = f"/api/v1/models/{model.pk}"
        writes = [
            lambda client: client.delete(f"{base}/"),
            lambda client: client.put(f"{base}/versions/1/formats/pkl/file?filename=m.pkl", data=b"\x80\x04K\x01.",
                                      content_type="application/octet-stream"),
            lambda client: client.post(f"{base}/versions/1/formats/", {"kind": "onnx"}, format="json"),
            lambda client: client.post(f"{base}/versions/1/metrics/", [{"key": "acc", "value": 0.5}], format="json"),
            lambda client: client.post(f"{base}/metrics/", [{"key": "acc", "value": 0.5}], format="json"),
            lambda client: client.post(f"{base}/versions/", {}, format="json"),
        ]
        statuses = _at_once(admin, writes)
        assert all(status < 500 for status in statuses), statuses
        assert not Model.objects.filter(pk=model.pk).exists()
