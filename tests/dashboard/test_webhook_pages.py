"""The Webhooks pages: context admins register a hook (its secret shown once), send it a test
event, read its deliveries and attempts, edit, disable, rotate and delete it. Anyone else in the
context gets 403, even to read; outside it, 404."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from registry_client import webhooks as client_webhooks

from registry import services
from registry.models import AuditEvent, DeliveryStatus, Webhook, WebhookAttempt, WebhookDelivery

from tests.registry.test_webhooks import run_on_commit
from tests.webhook_receiver import Reply, receiver  # noqa: F401 (the fixture)

pytestmark = pytest.mark.django_db


@pytest.fixture
def browser(users):
    def make(persona: str) -> Client:
        client = Client()
        client.force_login(users[persona])
        return client
    return make


def hook_url(name, hook, **kwargs):
    return reverse(f"dashboard:webhook-{name}", kwargs={"ctx": hook.context.slug, "webhook_id": hook.pk, **kwargs})


def test_an_admin_adds_a_hook_sees_its_secret_once_and_sends_a_test_event(browser, context, receiver):
    admin = browser("admin")
    page = admin.get(reverse("dashboard:webhook-list", kwargs={"ctx": "acme"}))
    assert page.status_code == 200 and b"No webhook in Acme yet" in page.content

    response = admin.post(reverse("dashboard:webhook-create", kwargs={"ctx": "acme"}),
                          {"url": receiver.url(), "events": ["version.published", "alias.moved"], "description": "CI"})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    hook = Webhook.objects.get()
    secret = response.context["secret"]
    assert secret.encode() in response.content and b"will not be shown again" in response.content
    listing = admin.get(reverse("dashboard:webhook-list", kwargs={"ctx": "acme"}))
    assert receiver.url().encode() in listing.content and secret.encode() not in listing.content

    with run_on_commit():
        sent = admin.post(hook_url("test", hook))
    assert sent.status_code == 302
    [request] = receiver.requests
    assert client_webhooks.verify(request.body, request.headers["X-Registry-Signature"], secret)["type"] == "webhook.test"

    detail = admin.get(hook_url("detail", hook))
    assert detail.status_code == 200
    text = detail.content.decode()
    assert "webhook.test" in text and "delivered" in text and ">200<" in text and " ms" in text
    assert "&quot;type&quot;: &quot;webhook.test&quot;" in text  # the body sent, indented
    assert secret not in text


def test_the_detail_page_lists_failures_and_filters_by_state(browser, context, receiver):
    receiver.replies = [Reply(status=503, body=b"busy")]
    hook, _ = services.webhook_create(actor=None, context=context, url=receiver.url(), events=["model.deleted"])
    with run_on_commit():
        services.webhook_test(actor=None, webhook=hook)
    receiver.replies = [Reply(status=302, headers={"Location": "/elsewhere"})]
    with run_on_commit():
        services.webhook_test(actor=None, webhook=hook)
    admin = browser("admin")
    text = admin.get(hook_url("detail", hook)).content.decode()
    assert ">503<" in text and "pending" in text and ">302<" in text and "never followed" in text
    failed = admin.get(hook_url("detail", hook) + "?status=failed")
    assert [d.status for d in failed.context["page"].rows] == [DeliveryStatus.FAILED]


def test_an_admin_edits_disables_rotates_and_deletes(browser, context):
    hook, secret = services.webhook_create(actor=None, context=context, url="https://hooks.example.com/a",
                                           events=["model.deleted"])
    admin = browser("admin")
    bad = admin.post(hook_url("edit", hook), {"url": "http://192.168.0.10/", "events": ["model.deleted"]})
    assert bad.status_code == 400 and b"private address" in bad.content
    saved = admin.post(hook_url("edit", hook), {"url": "https://hooks.example.com/b",
                                                 "events": ["alias.moved", "alias.rolled_back"]})
    assert saved.status_code == 302
    hook.refresh_from_db()
    assert hook.url == "https://hooks.example.com/b" and hook.events == ["alias.moved", "alias.rolled_back"]

    assert admin.post(hook_url("toggle", hook)).status_code == 302
    hook.refresh_from_db()
    assert hook.enabled is False
    assert b"Enable" in admin.get(hook_url("detail", hook)).content

    rotated = admin.post(hook_url("rotate-secret", hook))
    assert rotated.status_code == 200 and rotated.context["secret"] not in ("", secret)
    assert rotated.context["secret"].encode() in rotated.content

    assert admin.get(hook_url("delete", hook)).status_code == 200
    assert admin.post(hook_url("delete", hook)).status_code == 302
    assert not Webhook.objects.exists()
    assert {"webhook.update", "webhook.rotate_secret", "webhook.delete"} <= set(
        AuditEvent.objects.values_list("action", flat=True))


def test_a_bad_registration_is_a_form_error_that_writes_nothing(browser, context):
    response = browser("admin").post(reverse("dashboard:webhook-create", kwargs={"ctx": "acme"}),
                                     {"url": "http://user:pw@hooks.example.com/", "events": ["model.deleted"]})
    assert response.status_code == 400 and b"credentials" in response.content
    response = browser("admin").post(reverse("dashboard:webhook-create", kwargs={"ctx": "acme"}),
                                     {"url": "https://hooks.example.com/"})
    assert response.status_code == 400
    assert not Webhook.objects.exists()


@pytest.mark.parametrize("persona", ["viewer", "editor", "publisher", "outsider"])
def test_only_admins_see_or_change_webhooks(browser, context, persona):
    hook, _ = services.webhook_create(actor=None, context=context, url="https://hooks.example.com/a",
                                      events=["model.deleted"])
    client = browser(persona)
    refused = 404 if persona == "outsider" else 403
    pages = [reverse("dashboard:webhook-list", kwargs={"ctx": "acme"}), hook_url("detail", hook),
             hook_url("delete", hook)]
    for page in pages:
        response = client.get(page)
        assert response.status_code == refused, page
        assert b"hooks.example.com" not in response.content
    for name in ("test", "toggle", "rotate-secret", "delete", "edit"):
        assert client.post(hook_url(name, hook), {"url": "https://evil.example.com/", "events": ["model.deleted"]}
                           ).status_code == refused
    assert client.post(reverse("dashboard:webhook-create", kwargs={"ctx": "acme"}),
                       {"url": "https://evil.example.com/", "events": ["model.deleted"]}).status_code == refused
    hook.refresh_from_db()
    assert hook.url == "https://hooks.example.com/a" and hook.enabled
    assert not WebhookDelivery.objects.exists() and Webhook.objects.count() == 1


def _grow(hook, count):
    now = timezone.now()
    for index in range(count):
        delivery = services.webhook_test(actor=None, webhook=hook)
        WebhookDelivery.objects.filter(pk=delivery.pk).update(created_at=now - timedelta(seconds=index))
        for number in range(1, 1 + index % 3):
            WebhookAttempt.objects.create(delivery=delivery, number=number, started_at=now, duration_ms=3,
                                          response_code=500, error="The receiver answered 500.")


def _constant(client, url, grow, django_assert_num_queries):
    client.get(url)
    with CaptureQueriesContext(connection) as small:
        assert client.get(url).status_code == 200
    grow()
    with django_assert_num_queries(len(small.captured_queries)):
        assert client.get(url).status_code == 200


def test_the_pages_take_the_same_queries_for_few_or_many_rows(browser, context, django_assert_num_queries):
    hook, _ = services.webhook_create(actor=None, context=context, url="https://hooks.example.com/a",
                                      events=["model.deleted"])
    _grow(hook, 3)
    _constant(browser("admin"), hook_url("detail", hook), lambda: _grow(hook, 22), django_assert_num_queries)

    def more_hooks():
        for index in range(15):
            other, _ = services.webhook_create(actor=None, context=context, url=f"https://hooks.example.com/{index}",
                                               events=["model.deleted"])
            _grow(other, 1)
    _constant(browser("admin"), reverse("dashboard:webhook-list", kwargs={"ctx": "acme"}), more_hooks,
              django_assert_num_queries)
