"""The webhooks' API: context admins register, change, test and delete hooks and read their
deliveries; bad input is a clear 400 that writes nothing; another context's hook is not found."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from registry_client import webhooks as client_webhooks

from registry import services
from registry.models import AuditEvent, Webhook, WebhookAttempt, WebhookDelivery

from tests.registry.test_webhooks import run_on_commit
from tests.webhook_receiver import receiver  # noqa: F401 (the fixture)

pytestmark = pytest.mark.django_db

HOOKS = "/api/v1/contexts/acme/webhooks/"


def test_an_admin_registers_tests_and_reads_a_hook(clients, receiver):
    admin = clients["admin"]
    with run_on_commit():
        created = admin.post(HOOKS, {"url": receiver.url(), "events": ["version.published", "alias.moved"],
                                     "description": "CI"}, format="json")
    assert created.status_code == 201, created.content
    assert created["Cache-Control"] == "no-store"
    body = created.json()
    secret = body["secret"]
    assert secret.startswith(body["secret_prefix"])
    assert body["events"] == ["alias.moved", "version.published"] and body["enabled"] is True
    assert body["created_by"] == "admin" and body["last_delivery_status"] is None
    hook = f"{HOOKS}{body['id']}/"

    listed = admin.get(HOOKS).json()["results"]
    assert [row["id"] for row in listed] == [body["id"]]
    assert "secret" not in listed[0] and "secret" not in admin.get(hook).json()

    with run_on_commit():
        tested = admin.post(f"{hook}test/")
    assert tested.status_code == 202
    assert tested.json()["event_type"] == "webhook.test"
    [request] = receiver.requests
    client_webhooks.verify(request.body, request.headers["X-Registry-Signature"], secret)

    deliveries = admin.get(f"{hook}deliveries/").json()["results"]
    assert len(deliveries) == 1
    assert deliveries[0]["status"] == "delivered" and deliveries[0]["body"]["type"] == "webhook.test"
    [attempt] = deliveries[0]["attempts"]
    assert attempt["response_code"] == 200 and attempt["succeeded"] is True and attempt["duration_ms"] >= 0
    assert admin.get(hook).json()["last_delivery_status"] == "delivered"
    assert admin.get(f"{hook}deliveries/?status=failed").json()["results"] == []

    rotated = admin.post(f"{hook}rotate-secret/")
    assert rotated.status_code == 200 and rotated["Cache-Control"] == "no-store"
    new_secret = rotated.json()["secret"]
    assert new_secret != secret
    with run_on_commit():
        admin.post(f"{hook}test/")
    client_webhooks.verify(receiver.requests[-1].body, receiver.requests[-1].headers["X-Registry-Signature"],
                           new_secret)

    patched = admin.patch(hook, {"enabled": False, "events": ["model.deleted"]}, format="json")
    assert patched.status_code == 200
    assert patched.json()["enabled"] is False and patched.json()["events"] == ["model.deleted"]
    assert admin.delete(hook).status_code == 204
    assert admin.get(hook).status_code == 404
    assert not WebhookDelivery.objects.exists()
    actions = list(AuditEvent.objects.filter(action__startswith="webhook.").values_list("action", flat=True))
    assert sorted(actions) == sorted(["webhook.create", "webhook.test", "webhook.rotate_secret", "webhook.test",
                                      "webhook.update", "webhook.delete"])


@pytest.mark.parametrize(("body", "field"), [
    ({"url": "ftp://x.example.com/", "events": ["model.deleted"]}, "url"),
    ({"url": "https://u:p@x.example.com/", "events": ["model.deleted"]}, "url"),
    ({"url": "http://127.0.0.1:9/", "events": ["model.deleted"]}, "url"),
    ({"url": "http://[fd00::1]/", "events": ["model.deleted"]}, "url"),
    ({"url": "http://169.254.169.254/", "events": ["model.deleted"]}, "url"),
    ({"url": "https://x.example.com/", "events": []}, "events"),
    ({"url": "https://x.example.com/", "events": ["model.exploded"]}, "events"),
    ({"url": "https://x.example.com/"}, "events"),
    ({"events": ["model.deleted"]}, "url"),
    ({"url": "https://x.example.com/\u0000", "events": ["model.deleted"]}, "url"),
])
def test_bad_input_is_a_400_naming_the_field_and_writes_nothing(clients, body, field):
    response = clients["admin"].post(HOOKS, body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["field"] == field or field in response.json().get("errors", {}), response.json()
    assert not Webhook.objects.exists() and not AuditEvent.objects.filter(action__startswith="webhook").exists()


def test_a_bad_patch_changes_nothing(clients, context):
    hook, _ = services.webhook_create(actor=None, context=context, url="https://x.example.com/", events=["model.deleted"])
    response = clients["admin"].patch(f"{HOOKS}{hook.pk}/", {"url": "http://10.0.0.1/", "enabled": False},
                                      format="json")
    assert response.status_code == 400 and response.json()["field"] == "url"
    hook.refresh_from_db()
    assert hook.enabled and hook.url == "https://x.example.com/"
    assert clients["admin"].get(f"{HOOKS}{hook.pk}/deliveries/?status=nope").status_code == 400


def test_another_contexts_hook_is_not_found(clients, other_context, context):
    theirs, _ = services.webhook_create(actor=None, context=other_context, url="https://x.example.com/",
                                        events=["model.deleted"])
    for path in (f"{HOOKS}{theirs.pk}/", f"{HOOKS}{theirs.pk}/deliveries/", f"{HOOKS}not-a-uuid/"):
        assert clients["admin"].get(path).status_code == 404
    assert clients["admin"].delete(f"{HOOKS}{theirs.pk}/").status_code == 404
    assert clients["admin"].post(f"{HOOKS}{theirs.pk}/test/").status_code == 404
    assert Webhook.objects.filter(pk=theirs.pk).exists()


def _add_deliveries(hook, total):
    now = timezone.now()
    while WebhookDelivery.objects.filter(webhook=hook).count() < total:
        n = WebhookDelivery.objects.count()
        delivery = services.webhook_test(actor=None, webhook=hook)
        WebhookDelivery.objects.filter(pk=delivery.pk).update(created_at=now - timedelta(seconds=n))
        for number in range(1, 1 + n % 4):
            WebhookAttempt.objects.create(delivery=delivery, number=number, started_at=now, duration_ms=5,
                                          response_code=503 if number < 3 else 200, succeeded=number == 3)


def _count(client, url) -> tuple[int, dict]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, response.content
    return len(captured), response.json()


@pytest.mark.parametrize("listing", ["hooks", "deliveries"])
def test_the_lists_take_the_same_queries_for_3_or_many_rows(clients, context, listing, django_assert_num_queries):
    admin = clients["admin"]
    hook, _ = services.webhook_create(actor=None, context=context, url="https://x.example.com/",
                                      events=["model.deleted"])

    def add(total):
        if listing == "deliveries":
            _add_deliveries(hook, total)
        else:
            while Webhook.objects.count() < total:
                services.webhook_create(actor=None, context=context, url=f"https://x.example.com/{Webhook.objects.count()}",
                                        events=["model.deleted"])
                _add_deliveries(Webhook.objects.order_by("-created_at").first(), 1)

    url = f"{HOOKS}{hook.pk}/deliveries/" if listing == "deliveries" else HOOKS
    add(3)
    admin.get(url)  # the token's first use records last_used_at
    expected, body = _count(admin, url)
    assert len(body["results"]) == 3 and expected <= 8
    large = 30 if listing == "deliveries" else services.webhooks.MAX_WEBHOOKS_PER_CONTEXT
    add(large)
    with django_assert_num_queries(expected):
        response = admin.get(url)
    assert len(response.json()["results"]) == large
