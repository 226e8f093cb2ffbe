"""Webhooks delivered for real: a receiver (http.server) on 127.0.0.1 gets signed JSON events
from the services' own flows; destinations outside the public internet are refused unless the
operator allows them, checked after DNS resolution; redirects are not followed; failures are
retried with backoff; every attempt is recorded."""

from __future__ import annotations

import io
import json
import socket
import time
import uuid
from datetime import timedelta

import pytest
from django.test import TestCase
from django.utils import timezone
from registry_client import webhooks as client_webhooks

from registry import services
from registry.errors import InvalidInput, LimitReached
from registry.models import (
    AuditEvent,
    DeliveryStatus,
    EventType,
    FormatStatus,
    Webhook,
    WebhookAttempt,
    WebhookDelivery,
)
from registry.services import webhooks
from registry.webhooks import destinations, signing

from tests.helpers import PICKLE, store_file
from tests.webhook_receiver import Reply, receiver  # noqa: F401 (the fixture)

pytestmark = pytest.mark.django_db

ALL_EVENTS = list(EventType.values)
# Calls mylibrary.models.Scorer("f1"): a third-party import the scanner cannot vet, so `review`.
REVIEW_PICKLE = b"\x80\x02cmylibrary.models\nScorer\nX\x02\x00\x00\x00f1\x85R."
# Imports os.system: quarantined (never unpickled here).
DANGEROUS_PICKLE = b"\x80\x02cposix\nsystem\nX\x04\x00\x00\x00true\x85R."


def run_on_commit():
    """The work a write queues after commit (deliveries, processing) runs before this block ends,
    as the workers would run it."""
    return TestCase.captureOnCommitCallbacks(execute=True)


def hook_for(context, url, events=None, **kwargs):
    return services.webhook_create(actor=None, context=context, url=url, events=ALL_EVENTS if events is None else events,
                                    **kwargs)


def events_received(receiver, secret):
    """The events the receiver got, each checked with the client's verification helper."""
    found = []
    for request in receiver.requests:
        event = client_webhooks.verify(request.body, request.headers["X-Registry-Signature"], secret)
        assert request.headers["X-Registry-Event"] == event["type"]
        assert request.headers["X-Registry-Event-Id"] == event["id"]
        found.append(event)
    return found


# --- registration ------------------------------------------------------------------------------

@pytest.mark.parametrize("url", [
    "ftp://hooks.example.com/x", "javascript:alert(1)", "hooks.example.com/x", "http:///path",
    "https://user:secret@hooks.example.com/x", "https://user@hooks.example.com/x", "https://hooks.example.com:0/",
    "https://hooks.example.com:99999/", "https://hooks.example.com/a b", "https://hooks.example.com/#frag",
    "http://127.0.0.1/", "http://[::1]/", "http://localhost:8000/", "http://api.localhost/", "http://10.1.2.3/",
    "http://192.168.1.1/", "http://172.16.0.1/", "http://169.254.169.254/latest/meta-data/", "http://100.64.0.1/",
    "http://[fc00::1]/", "http://[fe80::1]/", "http://[::ffff:127.0.0.1]/", "http://[::ffff:10.0.0.1]/",
    "http://[64:ff9b::a00:1]/", "http://[2002:7f00:1::]/", "http://224.0.0.1/", "http://0.0.0.0/",
    "http://255.255.255.255/", "http://240.0.0.1/", "", "x" * 3000,
])
def test_a_bad_or_refused_url_is_refused_at_registration(context, url):
    with pytest.raises(InvalidInput) as refused:
        hook_for(context, url)
    assert refused.value.field == "url"
    assert Webhook.objects.count() == 0
    assert not AuditEvent.objects.filter(action__startswith="webhook").exists()


def test_a_private_address_is_accepted_when_the_operator_allows_it(context, settings):
    with pytest.raises(InvalidInput):
        hook_for(context, "http://10.1.2.3/hook")
    settings.REGISTRY_WEBHOOK_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    hook, _ = hook_for(context, "http://10.1.2.3/hook")
    assert hook.url == "http://10.1.2.3/hook"
    with pytest.raises(InvalidInput):  # only the networks listed
        hook_for(context, "http://192.168.1.1/hook")
    settings.REGISTRY_WEBHOOK_ALLOWED_NETWORKS, settings.REGISTRY_WEBHOOK_ALLOW_PRIVATE = [], True
    hook_for(context, "http://192.168.1.1/hook")
    with pytest.raises(InvalidInput):  # never a destination, whatever the settings
        hook_for(context, "http://224.0.0.1/hook")


@pytest.mark.parametrize("events", [[], ["version.created", "no.such"], "nothing", [1]])
def test_events_must_be_known(context, events):
    with pytest.raises(InvalidInput) as refused:
        hook_for(context, "https://hooks.example.com/x", events=events)
    assert refused.value.field == "events"


def test_a_context_has_a_bounded_number_of_hooks(context):
    for n in range(webhooks.MAX_WEBHOOKS_PER_CONTEXT):
        hook_for(context, f"https://hooks.example.com/{n}")
    with pytest.raises(LimitReached):
        hook_for(context, "https://hooks.example.com/one-more")


def test_the_secret_is_shown_once_and_stored_encrypted(context, settings):
    hook, secret = hook_for(context, "https://hooks.example.com/x")
    assert secret.startswith("whsec_") and len(secret) > 40
    stored = Webhook.objects.filter(pk=hook.pk).values()[0]
    assert all(secret not in str(value) for value in stored.values())
    assert signing.decrypt_secret(hook.secret_encrypted) == secret
    event = AuditEvent.objects.get(action="webhook.create")
    assert secret not in json.dumps(event.changes) + event.summary
    # A new SECRET_KEY with the old one among the fallbacks still reads it; without, it is refused.
    old = settings.SECRET_KEY
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "another-key-" + "x" * 40, [old]
    assert signing.decrypt_secret(hook.secret_encrypted) == secret
    settings.SECRET_KEY_FALLBACKS = []
    with pytest.raises(signing.SecretUnreadable):
        signing.decrypt_secret(hook.secret_encrypted)


def test_a_non_ascii_host_or_path_is_sent_in_its_ascii_form(context, receiver, monkeypatch):
    real = socket.getaddrinfo
    asked = []

    def resolve(host, *args, **kwargs):
        if host == "xn--bcher-kva.example":
            asked.append(host)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", receiver.port))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    hook, _ = hook_for(context, f"http://bücher.example:{receiver.port}/hök?q=ü")
    with run_on_commit():
        delivery = services.webhook_test(actor=None, webhook=hook)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED, delivery.last_error
    [request] = receiver.requests
    assert request.headers["Host"] == f"xn--bcher-kva.example:{receiver.port}"
    assert request.path == "/h%C3%B6k?q=%C3%BC" and asked == ["xn--bcher-kva.example"]


# --- destinations, checked at delivery time ------------------------------------------------------

@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.8.9.10", "::1", "10.0.0.1", "172.31.255.255", "192.168.0.1", "169.254.169.254", "fe80::1",
    "fc00::1", "fd12:3456::1", "100.64.0.1", "192.0.2.1", "198.18.0.1", "240.0.0.1", "::ffff:127.0.0.1",
    "::ffff:192.168.0.1", "64:ff9b::7f00:1", "2002:a00:1::", "2001:0:4136:e378:8000:63bf:f5ff:fffe", "fec0::1",
    "224.0.0.1", "ff02::1", "0.0.0.0", "::", "255.255.255.255", "::ffff:8.8.8.8",
])
def test_an_address_outside_the_public_internet_is_refused(address):
    import ipaddress

    with pytest.raises(destinations.DestinationRefused):
        destinations.check_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "2002:808:808::"])
def test_a_public_address_is_allowed(address):
    import ipaddress

    destinations.check_address(ipaddress.ip_address(address))


def test_loopback_private_and_link_local_are_refused_at_delivery_without_the_setting(context, receiver, settings):
    """Hooks registered while the operator allowed loopback; the setting gone, nothing reaches
    the receiver, `localhost` (a name resolving to 127.0.0.1) included, and the attempt says why."""
    # 2130706433 and 127.1 are 127.0.0.1 to the resolver (inet_aton), though no IP literal to a parser.
    urls = [receiver.url(host="localhost"), receiver.url(host="127.0.0.1"), receiver.url(host="[::ffff:127.0.0.1]"),
            receiver.url(host="2130706433"), receiver.url(host="127.1")]
    hooks = [hook_for(context, url)[0] for url in urls]
    settings.REGISTRY_WEBHOOK_ALLOWED_NETWORKS = []
    settings.REGISTRY_WEBHOOK_ALLOW_PRIVATE = False
    for hook in hooks:
        with run_on_commit():
            delivery = services.webhook_test(actor=None, webhook=hook)
        delivery.refresh_from_db()
        assert delivery.status == DeliveryStatus.FAILED, delivery.last_error  # refused: never retried
        attempt = delivery.attempts.get()
        assert attempt.response_code is None
        assert "loopback" in attempt.error and "REGISTRY_WEBHOOK_ALLOW_PRIVATE" in attempt.error
    assert receiver.requests == []
    # Allowed again, the same hooks reach it.
    settings.REGISTRY_WEBHOOK_ALLOW_PRIVATE = True
    with run_on_commit():
        services.webhook_test(actor=None, webhook=hooks[0])
    assert len(receiver.requests) == 1


def test_a_name_resolving_to_a_private_address_is_refused(context, receiver, settings, monkeypatch):
    """A public-looking name whose DNS answer includes a private address is refused, even when
    the other answers are public."""
    real = socket.getaddrinfo

    def fake(host, *args, **kwargs):
        if host == "hooks.example.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", receiver.port)),
                    (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", receiver.port))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    hook, _ = hook_for(context, f"http://hooks.example.test:{receiver.port}/x")
    with run_on_commit():
        delivery = services.webhook_test(actor=None, webhook=hook)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED
    assert "10.0.0.7 is a private address" in delivery.last_error


def test_the_delivery_connects_to_the_address_it_checked(context, receiver, monkeypatch):
    """DNS rebinding: the name is resolved once; the connection goes to the address that was
    checked (here the receiver), never to what a second lookup would answer (here a refused one)."""
    real = socket.getaddrinfo
    lookups = []

    def rebinding(host, *args, **kwargs):
        if host == "rebind.example.test":
            lookups.append(host)
            address = "127.0.0.1" if len(lookups) == 1 else "10.9.9.9"
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, receiver.port))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    hook, secret = hook_for(context, f"http://rebind.example.test:{receiver.port}/in?x=1")
    with run_on_commit():
        delivery = services.webhook_test(actor=None, webhook=hook)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED, delivery.last_error
    assert lookups == ["rebind.example.test"]
    [request] = receiver.requests
    assert request.headers["Host"] == f"rebind.example.test:{receiver.port}"
    assert request.path == "/in?x=1"


# --- delivery ----------------------------------------------------------------------------------

def test_a_test_event_is_delivered_signed_and_recorded(context, users, receiver):
    hook, secret = hook_for(context, receiver.url())
    with run_on_commit():
        delivery = services.webhook_test(actor=users["admin"], webhook=hook)
    [request] = receiver.requests
    assert request.method == "POST" and request.path == "/hook"
    assert request.headers["Content-Type"] == "application/json"
    event = client_webhooks.verify(request.body, request.headers["X-Registry-Signature"], secret)
    assert set(event) == {"id", "type", "created_at", "context", "actor", "data"}
    assert event["type"] == "webhook.test" and event["actor"] == "admin"
    assert event["context"] == {"slug": "acme", "name": "Acme"}
    assert event["data"]["webhook"] == {"id": str(hook.pk), "url": hook.url}
    assert request.headers["X-Registry-Delivery"] == str(delivery.pk)

    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED and delivery.finished_at is not None
    assert delivery.attempt_count == 1 and delivery.last_response_code == 200
    attempt = delivery.attempts.get()
    assert attempt.succeeded and attempt.response_code == 200 and attempt.response_excerpt == "ok"
    assert 0 <= attempt.duration_ms < 5000
    assert AuditEvent.objects.filter(action="webhook.test", object_id=str(hook.pk)).exists()


def test_the_signature_fails_with_another_secret_a_changed_body_or_an_old_timestamp(context, receiver):
    hook, secret = hook_for(context, receiver.url())
    with run_on_commit():
        services.webhook_test(actor=None, webhook=hook)
    [request] = receiver.requests
    header = request.headers["X-Registry-Signature"]
    timestamp = int(header.split(",")[0].removeprefix("t="))
    assert abs(timestamp - time.time()) < 60
    with pytest.raises(client_webhooks.WebhookSignatureError):
        client_webhooks.verify(request.body, header, signing.new_secret())
    with pytest.raises(client_webhooks.WebhookSignatureError):
        client_webhooks.verify(request.body.replace(b"acme", b"acmf"), header, secret)
    with pytest.raises(client_webhooks.WebhookSignatureError):
        client_webhooks.verify(request.body, header, secret, now=timestamp + 301)
    assert client_webhooks.verify(request.body, header, secret, now=timestamp + 299)["type"] == "webhook.test"
    with pytest.raises(client_webhooks.WebhookSignatureError):
        client_webhooks.verify(request.body, "v1=abc", secret)


def test_a_redirect_is_not_followed(context, receiver):
    receiver.replies = [Reply(status=302, headers={"Location": receiver.url("/elsewhere")})]
    hook, _ = hook_for(context, receiver.url())
    with run_on_commit():
        delivery = services.webhook_test(actor=None, webhook=hook)
    assert [request.path for request in receiver.requests] == ["/hook"]
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED  # a redirect will be one again: not retried
    assert delivery.last_response_code == 302 and "never followed" in delivery.last_error


def _make_due(delivery):
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))


def test_a_5xx_is_retried_with_exponential_backoff_until_delivered(context, receiver):
    receiver.replies = [Reply(status=503, body=b"busy"), Reply(status=500), Reply(status=200)]
    hook, secret = hook_for(context, receiver.url())
    with run_on_commit():
        delivery = services.webhook_test(actor=None, webhook=hook)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING and delivery.last_response_code == 503
    first_wait = (delivery.next_attempt_at - timezone.now()).total_seconds()
    assert 30 * 0.9 - 2 <= first_wait <= 30 * 1.1, first_wait
    assert webhooks.deliveries_due() == 0  # not due yet: nothing is sent early

    _make_due(delivery)
    assert webhooks.deliveries_due() == 1
    delivery.refresh_from_db()
    second_wait = (delivery.next_attempt_at - timezone.now()).total_seconds()
    assert 60 * 0.9 - 2 <= second_wait <= 60 * 1.1, second_wait

    _make_due(delivery)
    webhooks.deliveries_due()
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED
    assert [(a.number, a.response_code, a.succeeded) for a in delivery.attempts.all()] == [
        (1, 503, False), (2, 500, False), (3, 200, True)]
    assert delivery.attempts.get(number=1).response_excerpt == "busy"
    bodies = {request.body for request in receiver.requests}
    assert len(receiver.requests) == 3 and len(bodies) == 1  # the same event each time
    for request in receiver.requests:
        client_webhooks.verify(request.body, request.headers["X-Registry-Signature"], secret)


def test_the_backoff_doubles_up_to_an_hour(settings):
    for attempt, base in [(1, 30), (2, 60), (3, 120), (7, 1920), (8, 3600), (20, 3600)]:
        assert base * 0.9 <= webhooks.retry_delay(attempt) <= base * 1.1


def test_a_timeout_is_retried(context, receiver, settings):
    settings.REGISTRY_WEBHOOK_READ_TIMEOUT = 0.5
    receiver.replies = [Reply(delay=2)]
    hook, _ = hook_for(context, receiver.url())
    started = time.monotonic()
    with run_on_commit():
        delivery = services.webhook_test(actor=None, webhook=hook)
    assert time.monotonic() - started < 2
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING and delivery.next_attempt_at > timezone.now()
    attempt = delivery.attempts.get()
    assert attempt.response_code is None and "did not answer in time" in attempt.error


def test_a_refused_connection_is_retried(context, receiver):
    hook, _ = hook_for(context, receiver.url())
    receiver.stop()
    with run_on_commit():
        delivery = services.webhook_test(actor=None, webhook=hook)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING
    assert "Could not connect" in delivery.last_error


def test_a_4xx_is_not_retried(context, receiver):
    receiver.replies = [Reply(status=410, body=b"gone")]
    hook, _ = hook_for(context, receiver.url())
    with run_on_commit():
        delivery = services.webhook_test(actor=None, webhook=hook)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED and delivery.last_response_code == 410


def test_retries_stop_after_a_day(context, receiver):
    receiver.default = Reply(status=503)
    hook, _ = hook_for(context, receiver.url())
    with run_on_commit():
        delivery = services.webhook_test(actor=None, webhook=hook)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(created_at=timezone.now() - timedelta(hours=24, minutes=1))
    _make_due(delivery)
    assert webhooks.deliveries_due() == 0
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED and "retry period" in delivery.last_error
    assert len(receiver.requests) == 1
    # The last retry that still fits in the day is the last one made.
    with run_on_commit():
        late = services.webhook_test(actor=None, webhook=hook)
    WebhookDelivery.objects.filter(pk=late.pk).update(created_at=timezone.now() - timedelta(hours=23, minutes=59, seconds=30))
    _make_due(late)
    webhooks.deliveries_due()
    late.refresh_from_db()
    assert late.status == DeliveryStatus.FAILED and late.attempt_count == 2


def test_an_endless_answer_is_cut_at_the_cap(context, receiver, settings):
    settings.REGISTRY_WEBHOOK_MAX_RESPONSE_BYTES = 100_000
    receiver.replies = [Reply(stream=True)]
    hook, _ = hook_for(context, receiver.url())
    started = time.monotonic()
    with run_on_commit():
        delivery = services.webhook_test(actor=None, webhook=hook)
    assert time.monotonic() - started < 5
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED
    assert len(delivery.attempts.get().response_excerpt) == 500


def test_two_messages_for_one_attempt_make_one_request(context, receiver):
    hook, _ = hook_for(context, receiver.url())
    with TestCase.captureOnCommitCallbacks(execute=False):
        delivery = services.webhook_test(actor=None, webhook=hook)
    ticket = str(delivery.ticket)
    assert webhooks.delivery_attempt(delivery_id=delivery.pk, ticket=ticket) is not None
    assert webhooks.delivery_attempt(delivery_id=delivery.pk, ticket=ticket) is None
    assert webhooks.delivery_attempt(delivery_id=delivery.pk, ticket=str(uuid.uuid4())) is None
    assert len(receiver.requests) == 1


def test_a_lost_message_is_sent_by_the_sweep(context, receiver):
    """The broker lost the first message (nothing ran after commit): once the queued grace has
    passed, the sweep queues it again."""
    hook, _ = hook_for(context, receiver.url())
    with TestCase.captureOnCommitCallbacks(execute=False):
        delivery = services.webhook_test(actor=None, webhook=hook)
    assert webhooks.deliveries_due() == 0  # still within the grace of its queued message
    _make_due(delivery)
    assert webhooks.deliveries_due() == 1
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED and len(receiver.requests) == 1


def test_disabling_cancels_pending_deliveries_and_stops_events(context, receiver, model):
    receiver.default = Reply(status=503)
    hook, _ = hook_for(context, receiver.url())
    with run_on_commit():
        delivery = services.webhook_test(actor=None, webhook=hook)
    services.webhook_update(actor=None, webhook=hook, enabled=False)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.CANCELLED
    _make_due(delivery)
    webhooks.deliveries_due()
    with run_on_commit():
        services.version_create(actor=None, model=model)
    assert len(receiver.requests) == 1
    assert not WebhookDelivery.objects.filter(event_type="version.created").exists()
    event = AuditEvent.objects.get(action="webhook.update")
    assert event.changes == {"enabled": [True, False]} and "1 pending" in event.summary


# --- events from the real flows ------------------------------------------------------------------

def test_every_event_type_is_emitted_by_its_flow(context, other_context, users, receiver, settings):
    hook, secret = hook_for(context, receiver.url())
    only_aliases, _ = hook_for(context, receiver.url("/aliases"), events=["alias.moved", "alias.rolled_back"])
    hook_for(other_context, receiver.url("/other"))
    editor, publisher, admin = users["editor"], users["publisher"], users["admin"]

    with run_on_commit():
        model = services.model_create(actor=editor, context=context, name="Churn")
        v1 = services.version_create(actor=editor, model=model)
    fmt = store_file(v1, actor=editor)
    assert fmt.status == FormatStatus.READY
    with run_on_commit():
        services.version_publish(actor=publisher, version=v1)
    v2 = services.version_create(actor=editor, model=model)
    store_file(v2, actor=editor)
    with run_on_commit():
        services.version_publish(actor=publisher, version=v2)
        services.alias_set(actor=publisher, model=model, name="production", version_number=1)
        services.alias_set(actor=publisher, model=model, name="production", version_number=2)
        services.alias_rollback(actor=publisher, model=model, name="production")
        services.tamper_report(actor=users["viewer"], version=v2, file="pkl", reason="checksum_mismatch",
                               expected="ab" * 32, actual="cd" * 32)
    v3 = services.version_create(actor=editor, model=model)
    assert store_file(v3, "pkl", REVIEW_PICKLE).status == FormatStatus.REVIEW
    assert store_file(v3, "joblib", DANGEROUS_PICKLE).status == FormatStatus.QUARANTINED
    with run_on_commit():
        corrupt = services.format_upload(actor=editor, version=v3, kind="pt", stream=io.BytesIO(PICKLE),
                                         content_length=len(PICKLE), declared_sha256="0" * 64)
    corrupt.refresh_from_db()
    assert corrupt.status == FormatStatus.CORRUPT
    v4 = services.version_create(actor=editor, model=model)
    assert store_file(v4, "onnx", b"not an onnx model at all").status == FormatStatus.FAILED
    with run_on_commit():
        card, _ = services.attachment_upload(actor=editor, model=model, name="card.pdf",
                                             stream=io.BytesIO(b"%PDF-1.7 card"), content_length=13)
        services.attachment_upload(actor=editor, model=model, name="card.pdf", stream=io.BytesIO(b"%PDF-1.7 v2"),
                                   content_length=11, overwrite=True)
        services.attachment_delete(actor=editor, attachment=card)
        services.model_delete(actor=admin, model=model)

    main = [r for r in receiver.requests if r.path == "/hook"]
    assert all(r.path in ("/hook", "/aliases") for r in receiver.requests), "nothing from another context"
    got = [client_webhooks.verify(r.body, r.headers["X-Registry-Signature"], secret) for r in main]
    types = [event["type"] for event in got]
    assert set(types) == set(ALL_EVENTS), sorted(set(ALL_EVENTS) - set(types))
    by_type = {}
    for event in got:
        by_type.setdefault(event["type"], []).append(event)
        assert event["context"]["slug"] == "acme"

    created = by_type["version.created"][0]
    assert created["actor"] == "editor"
    assert created["data"]["model"] == {"id": str(model.pk), "name": "Churn"}
    assert created["data"]["version"]["number"] == 1
    assert by_type["version.published"][0]["data"]["version"]["status"] == "published"
    assert by_type["version.published"][0]["data"]["formats"][0]["sha256"] == fmt.sha256
    ready = by_type["format.ready"][0]
    assert ready["actor"] is None  # the workers
    assert ready["data"]["format"]["kind"] == "pkl" and ready["data"]["format"]["status"] == "ready"
    moves = [event["data"]["alias"] for event in by_type["alias.moved"]]
    assert moves == [{"name": "production", "version": 1, "previous_version": None},
                     {"name": "production", "version": 2, "previous_version": 1}]
    assert by_type["alias.rolled_back"][0]["data"]["alias"] == {"name": "production", "version": 1,
                                                                "previous_version": 2}
    tamper = by_type["tamper.reported"][0]
    assert tamper["actor"] == "viewer"
    assert tamper["data"]["tamper"]["reason"] == "checksum_mismatch" and tamper["data"]["tamper"]["file"] == "pkl"
    assert by_type["format.review"][0]["data"]["format"]["kind"] == "pkl"
    assert by_type["format.quarantined"][0]["data"]["format"]["kind"] == "joblib"
    assert "Checksum mismatch" in by_type["format.corrupt"][0]["data"]["format"]["status_message"]
    assert by_type["format.failed"][0]["data"]["format"]["kind"] == "onnx"
    deleted = by_type["model.deleted"][0]
    assert deleted["actor"] == "admin" and deleted["data"] == {"model": {"id": str(model.pk), "name": "Churn"},
                                                                "version_count": 4}
    # The hook subscribed to aliases only got exactly those, as the same events (same ids).
    alias_events = [json.loads(r.body) for r in receiver.requests if r.path == "/aliases"]
    assert [event["type"] for event in alias_events] == ["alias.moved", "alias.moved", "alias.rolled_back"]
    assert {event["id"] for event in alias_events} <= {event["id"] for event in got}
    assert WebhookDelivery.objects.filter(webhook=only_aliases, status=DeliveryStatus.DELIVERED).count() == 3


def test_a_tamper_found_by_the_integrity_sweep_is_a_corrupt_event(context, receiver, version, storage_dir):
    import os

    from registry.services import processing

    fmt = store_file(version)
    hook, secret = hook_for(context, receiver.url(), events=["format.corrupt"])
    path = os.path.join(storage_dir, fmt.storage_key)
    with open(path, "ab") as handle:
        handle.write(b"changed")
    with run_on_commit():
        processing.format_verify(format_id=fmt.pk)
    [event] = events_received(receiver, secret)
    assert event["type"] == "format.corrupt" and "Integrity check failed" in event["data"]["format"]["status_message"]


def test_an_event_of_a_write_that_rolls_back_is_never_sent(context, receiver, model):
    hook_for(context, receiver.url())
    with pytest.raises(InvalidInput), run_on_commit():
        services.version_create(actor=None, model=model, signature={"inputs": "no"})
    assert receiver.requests == []
    assert not WebhookDelivery.objects.exists()


def test_trusting_imports_sends_format_ready(context, receiver, version):
    fmt = store_file(version, "pkl", REVIEW_PICKLE)
    assert fmt.status == FormatStatus.REVIEW
    hook, secret = hook_for(context, receiver.url(), events=["format.ready"])
    with run_on_commit():
        services.format_imports_approve(actor=None, fmt=fmt, reason="ours")
    [event] = events_received(receiver, secret)
    assert event["data"]["format"]["status"] == "ready" and event["actor"] == "operator"



def test_finished_deliveries_are_pruned_after_the_keep_period(context, receiver, settings):
    settings.REGISTRY_WEBHOOK_KEEP_DAYS = 30
    receiver.replies = [Reply(status=200), Reply(status=503)]
    hook, _ = hook_for(context, receiver.url())
    with run_on_commit():
        old = services.webhook_test(actor=None, webhook=hook)
        pending = services.webhook_test(actor=None, webhook=hook)
        recent = services.webhook_test(actor=None, webhook=hook)
    long_ago = timezone.now() - timedelta(days=31)
    WebhookDelivery.objects.filter(pk__in=[old.pk, pending.pk]).update(created_at=long_ago)
    WebhookDelivery.objects.filter(pk=old.pk).update(finished_at=long_ago)
    assert webhooks.deliveries_prune() == 1
    assert set(WebhookDelivery.objects.values_list("pk", flat=True)) == {pending.pk, recent.pk}
    assert not WebhookAttempt.objects.filter(delivery_id=old.pk).exists()
