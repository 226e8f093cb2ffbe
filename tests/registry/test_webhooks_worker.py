"""A real Celery worker on the real Redis delivers webhooks after the real commit: the web side
commits a change, the worker hashes and introspects the file, and every event reaches the
receiver signed; a delivery whose receiver failed is retried by the sweep, as beat sends it."""

import hashlib
import io
import pickle
import time
from datetime import timedelta

import pytest
from django.utils import timezone
from registry_client import webhooks as client_webhooks

from registry import services
from registry.models import DeliveryStatus, WebhookDelivery

from tests.conftest import client_for
from tests.factories import UserFactory
from tests.registry.test_worker_integration import broker, worker  # noqa: F401 (fixtures)
from tests.webhook_receiver import Reply, receiver  # noqa: F401 (the fixture)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.subprocess]


@pytest.fixture
def loopback_allowed(monkeypatch):
    """The worker process, started after this, may deliver to the receiver on loopback."""
    monkeypatch.setenv("REGISTRY_WEBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8")


def wait_until(check, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_a_real_worker_delivers_events_after_commit(loopback_allowed, receiver, worker, broker):
    context = services.context_create(actor=None, slug="hooks-itest")
    admin = UserFactory(username="hooks-admin")
    services.membership_set(actor=None, context=context, role="admin", username=admin.username)
    client = client_for(admin)
    created = client.post("/api/v1/contexts/hooks-itest/webhooks/", {
        "url": receiver.url(), "events": ["version.created", "format.ready", "version.published"]}, format="json")
    assert created.status_code == 201, created.content
    secret = created.json()["secret"]

    model = services.model_create(actor=admin, context=context, name="m")
    version = services.version_create(actor=admin, model=model)
    body = pickle.dumps({"weights": [0.1]})
    services.format_upload(actor=admin, version=version, kind="pkl", stream=io.BytesIO(body),
                           content_length=len(body), declared_sha256=hashlib.sha256(body).hexdigest())
    wait_until(lambda: len(receiver.requests) >= 2)
    assert client.post(f"/api/v1/models/{model.pk}/versions/1/publish/").status_code == 200
    wait_until(lambda: len(receiver.requests) >= 3)

    events = [client_webhooks.verify(r.body, r.headers["X-Registry-Signature"], secret) for r in receiver.requests]
    assert sorted(event["type"] for event in events) == ["format.ready", "version.created", "version.published"]
    assert WebhookDelivery.objects.filter(status=DeliveryStatus.DELIVERED).count() == 3

    # A receiver down for a moment: the attempt is recorded, and the sweep (beat's task) retries.
    receiver.replies = [Reply(status=503)]
    assert client.post("/api/v1/contexts/hooks-itest/webhooks/"
                       f"{created.json()['id']}/test/").status_code == 202
    wait_until(lambda: WebhookDelivery.objects.filter(event_type="webhook.test", attempt_count=1,
                                                      last_response_code=503).exists())
    delivery = WebhookDelivery.objects.get(event_type="webhook.test")
    assert delivery.status == DeliveryStatus.PENDING
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    broker.send_task("registry.tasks.webhook_deliveries_due")
    wait_until(lambda: WebhookDelivery.objects.get(pk=delivery.pk).status == DeliveryStatus.DELIVERED)
    assert [a.response_code for a in WebhookDelivery.objects.get(pk=delivery.pk).attempts.all()] == [503, 200]
