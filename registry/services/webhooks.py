"""Webhooks: register, change, test and delete hooks (context admins), emit events from the other
services, and deliver them (the workers).

Emitting is part of the write that causes the event: emit() runs inside the service's
transaction and stores one delivery per subscribed hook, so an event is recorded if and only if
its change commits. The deliveries are queued after commit (transaction.on_commit); a delivery
whose message is lost (the broker down, a worker killed) is queued again by the sweep
(deliveries_due, on beat every REGISTRY_WEBHOOK_SWEEP_SECONDS), which also sends the retries.

Each queued task carries a ticket; an attempt first takes the delivery with a conditional update
on that ticket, so two messages for one attempt (a sweep and a redelivery) make one POST.

The body of an event (one schema for every type, documented in the README):

    {"id": "<uuid, the same on every attempt and for every hook>", "type": "version.published",
     "created_at": "2026-01-02T03:04:05.123456Z", "context": {"slug": "...", "name": "..."},
     "actor": "alice" | "operator" | null, "data": {<the objects, by type>}}
"""

from __future__ import annotations

import json
import random
import time
import uuid
from datetime import UTC, timedelta
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from registry import queue
from registry.errors import InvalidInput, LimitReached
from registry.models import (
    Context,
    DeliveryStatus,
    EventType,
    Format,
    Model,
    Version,
    Webhook,
    WebhookAttempt,
    WebhookDelivery,
)
from registry.models.webhooks import TEST_EVENT
from registry.prepared import CompiledQuery
from registry.services.common import (actor_name, apply_changes, audit, clean_text, describe_changes, lock_for_update,
                                      lock_one)
from registry.webhooks import destinations, sending, signing

UNSET: Any = object()
MAX_WEBHOOKS_PER_CONTEXT = 20
# A queued task that has not started after this long is queued again by the sweep.
QUEUED_GRACE_SECONDS = 120
MAX_RETRY_DELAY_SECONDS = 3600
SWEEP_BATCH = 500
DELIVER_TASK = "registry.tasks.webhook_deliver"


# --- the objects an event names ---------------------------------------------------------------

def model_fields(model: Model) -> dict:
    return {"id": str(model.pk), "name": model.name}


def version_fields(version: Version) -> dict:
    return {"number": version.number, "name": version.name, "status": version.status}


def format_fields(fmt: Format) -> dict:
    return {"kind": fmt.kind, "status": fmt.status, "status_message": fmt.status_message,
            "sha256": fmt.sha256 or None, "size": fmt.size}


def format_event(fmt: Format, context: Context, *, actor=False) -> None:
    """Emit the event of a format's outcome (format.ready, .review, .quarantined, .corrupt,
    .failed), by the workers unless an `actor` caused it; `fmt` with its version and model loaded."""
    event_type = f"format.{fmt.status}"
    if event_type not in EventType.values:  # a status no event names (still in progress)
        return
    version = fmt.version
    emit(context, event_type, {
        "model": model_fields(version.model), "version": version_fields(version), "format": format_fields(fmt),
    }, actor=actor)


# --- emitting -----------------------------------------------------------------------------------

def _timestamp(value) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _body(*, event_id, event_type: str, at, context: Context, actor, data: dict) -> str:
    return json.dumps({
        "id": str(event_id), "type": event_type, "created_at": _timestamp(at),
        "context": {"slug": context.slug, "name": context.name},
        "actor": None if actor is False else actor_name(actor), "data": data,
    }, separators=(",", ":"), ensure_ascii=False)


def _queue_after_commit(deliveries: list[WebhookDelivery]) -> None:
    sent = [(str(delivery.pk), str(delivery.ticket)) for delivery in deliveries]
    transaction.on_commit(lambda: [queue.send(DELIVER_TASK, *args) for args in sent])


# Read by every write that emits an event, mostly to find none: compiled once per process.
_ENABLED_HOOKS = CompiledQuery(lambda context_id: Webhook.objects.filter(context_id=context_id, enabled=True)
                               .only("id", "events").order_by("created_at", "id"))


def emit(context: Context, event_type: str, payload: dict, *, actor=None) -> list[WebhookDelivery]:
    """Record `event_type` for every enabled hook of `context` that subscribes to it; each is
    sent after the surrounding transaction commits. Call it inside the write's transaction.
    `payload` is the event's `data` (JSON-ready). `actor`: the user who acted, None for the
    operator (manage.py), False for the workers (the body's `actor` is then null)."""
    if event_type not in EventType.values:
        raise ValueError(f"unknown webhook event type {event_type!r}")
    hooks = [hook.pk for hook in _ENABLED_HOOKS.run(context_id=context.pk) if event_type in hook.events]
    if not hooks:
        return []
    now = timezone.now()
    event_id = uuid.uuid4()
    body = _body(event_id=event_id, event_type=event_type, at=now, context=context, actor=actor, data=payload)
    deliveries = WebhookDelivery.objects.bulk_create([
        WebhookDelivery(webhook_id=hook_id, event_id=event_id, event_type=event_type, body=body, created_at=now,
                        next_attempt_at=now + timedelta(seconds=QUEUED_GRACE_SECONDS), ticket=uuid.uuid4())
        for hook_id in hooks
    ])
    _queue_after_commit(deliveries)
    return deliveries


# --- hooks ----------------------------------------------------------------------------------------

def clean_events(value) -> list[str]:
    if isinstance(value, str):
        value = [item for item in value.split(",") if item.strip()]
    if not isinstance(value, (list, tuple)) or not value:
        raise InvalidInput(f"Choose at least one event: {', '.join(EventType.values)}.", field="events")
    events = set()
    for item in value:
        if not isinstance(item, str) or item.strip() not in EventType.values:
            raise InvalidInput(f"Unknown event {str(item)[:60]!r}; the events are {', '.join(EventType.values)}.",
                               field="events")
        events.add(item.strip())
    return sorted(events)


@transaction.atomic
def webhook_create(*, actor, context: Context, url: str, events, description: str = "") -> tuple[Webhook, str]:
    """Register a hook; returns it and its signing secret, which is shown this once."""
    url = destinations.check_registration(url)
    events = clean_events(events)
    description = clean_text(description, field="description", max_length=200)
    lock_for_update(Context).filter(pk=context.pk).first()  # counted below: one create at a time
    if Webhook.objects.filter(context=context).count() >= MAX_WEBHOOKS_PER_CONTEXT:
        raise LimitReached(f"Context '{context.slug}' already has {MAX_WEBHOOKS_PER_CONTEXT} webhooks, the most "
                           f"allowed; delete one first.")
    secret = signing.new_secret()
    hook = Webhook.objects.create(
        context=context, url=url, events=events, description=description,
        secret_encrypted=signing.encrypt_secret(secret), secret_prefix=secret[:12],
        created_by=actor if actor is not None and actor.is_authenticated else None,
    )
    audit(actor=actor, context=context, action="webhook.create", obj=hook,
          summary=f"added webhook {url} for {', '.join(events)}", changes={"url": url, "events": events})
    return hook, secret


@transaction.atomic
def webhook_update(*, actor, webhook: Webhook, url: str = UNSET, events=UNSET, description: str = UNSET,
                   enabled: bool = UNSET) -> Webhook:
    """Change a hook; only the arguments given change. Disabling it cancels its pending deliveries."""
    values: dict[str, Any] = {}
    if url is not UNSET:
        values["url"] = destinations.check_registration(url)
    if events is not UNSET:
        values["events"] = clean_events(events)
    if description is not UNSET:
        values["description"] = clean_text(description, field="description", max_length=200)
    if enabled is not UNSET:
        if not isinstance(enabled, bool):
            raise InvalidInput("'enabled' must be true or false.", field="enabled")
        values["enabled"] = enabled
    webhook = lock_one(Webhook.objects.select_related("context"), pk=webhook.pk)
    changes = apply_changes(webhook, values)
    if not changes:
        return webhook
    webhook.save(update_fields=[*values, "updated_at"])
    cancelled = 0
    if changes.get("enabled") == [True, False]:
        cancelled = WebhookDelivery.objects.filter(webhook=webhook, status=DeliveryStatus.PENDING).update(
            status=DeliveryStatus.CANCELLED, next_attempt_at=None, ticket=None, finished_at=timezone.now(),
            last_error="The webhook was disabled.")
    if set(changes) == {"enabled"}:
        summary = f"{'enabled' if webhook.enabled else 'disabled'} webhook {webhook.url}"
        if cancelled:
            summary += f" ({cancelled} pending deliveries cancelled)"
    else:
        summary = f"changed {describe_changes(changes)} of webhook {webhook.url}"
    audit(actor=actor, context=webhook.context, action="webhook.update", obj=webhook, summary=summary,
          changes=changes)
    return webhook


@transaction.atomic
def webhook_secret_rotate(*, actor, webhook: Webhook) -> tuple[Webhook, str]:
    """Give the hook a new secret (returned, shown once); deliveries from now on are signed with it."""
    webhook = lock_one(Webhook.objects.select_related("context"), pk=webhook.pk)
    secret = signing.new_secret()
    webhook.secret_encrypted, webhook.secret_prefix = signing.encrypt_secret(secret), secret[:12]
    webhook.save(update_fields=["secret_encrypted", "secret_prefix", "updated_at"])
    audit(actor=actor, context=webhook.context, action="webhook.rotate_secret", obj=webhook,
          summary=f"rotated the secret of webhook {webhook.url}")
    return webhook, secret


@transaction.atomic
def webhook_delete(*, actor, webhook: Webhook) -> None:
    """Delete a hook with its deliveries; nothing more is sent to it."""
    webhook = lock_one(Webhook.objects.select_related("context"), pk=webhook.pk)
    context, url, hook_id = webhook.context, webhook.url, str(webhook.pk)
    webhook.delete()
    audit(actor=actor, context=context, action="webhook.delete", object_type="webhook", object_id=hook_id,
          object_repr=url, summary=f"deleted webhook {url}")


@transaction.atomic
def webhook_test(*, actor, webhook: Webhook) -> WebhookDelivery:
    """Send this hook (enabled or not) a `webhook.test` event, delivered like any other."""
    webhook = Webhook.objects.select_related("context").get(pk=webhook.pk)
    now = timezone.now()
    event_id = uuid.uuid4()
    body = _body(event_id=event_id, event_type=TEST_EVENT, at=now, context=webhook.context, actor=actor, data={
        "webhook": {"id": str(webhook.pk), "url": webhook.url},
        "message": "A test event sent from the registry: this hook receives and verifies deliveries.",
    })
    delivery = WebhookDelivery.objects.create(
        webhook=webhook, event_id=event_id, event_type=TEST_EVENT, body=body, created_at=now,
        next_attempt_at=now + timedelta(seconds=QUEUED_GRACE_SECONDS), ticket=uuid.uuid4())
    audit(actor=actor, context=webhook.context, action="webhook.test", obj=webhook,
          summary=f"sent a test event to webhook {webhook.url}", changes={"delivery": str(delivery.pk)})
    _queue_after_commit([delivery])
    return delivery


# --- delivering -------------------------------------------------------------------------------

def retry_delay(attempt: int) -> float:
    """Seconds before the attempt after attempt number `attempt` (1 = the first): doubling from
    REGISTRY_WEBHOOK_RETRY_BASE_SECONDS, at most an hour, with ±10% jitter so deliveries that
    failed together do not all come back at once."""
    delay = min(settings.REGISTRY_WEBHOOK_RETRY_BASE_SECONDS * 2 ** (attempt - 1), MAX_RETRY_DELAY_SECONDS)
    return delay * random.uniform(0.9, 1.1)


def _give_up_at(delivery: WebhookDelivery):
    return delivery.created_at + timedelta(hours=settings.REGISTRY_WEBHOOK_RETRY_HOURS)


def _attempt_lease() -> timedelta:
    """How long an attempt holds its delivery: past its time limits, the sweep takes it back."""
    return timedelta(seconds=settings.REGISTRY_WEBHOOK_CONNECT_TIMEOUT + settings.REGISTRY_WEBHOOK_READ_TIMEOUT + 60)


def delivery_attempt(*, delivery_id, ticket) -> WebhookDelivery | None:
    """Make one attempt at a delivery whose task holds `ticket`, and record it. None when the
    ticket is no longer the delivery's (another message made this attempt, or it is finished)."""
    now = timezone.now()
    taken = WebhookDelivery.objects.filter(pk=delivery_id, ticket=ticket, status=DeliveryStatus.PENDING).update(
        ticket=None, next_attempt_at=now + _attempt_lease(), attempt_count=F("attempt_count") + 1)
    if not taken:
        return None
    delivery = WebhookDelivery.objects.select_related("webhook").filter(pk=delivery_id).first()
    if delivery is None:  # its hook was deleted since
        return None
    hook = delivery.webhook
    started_at = timezone.now()
    body = delivery.body.encode()
    try:
        secret = signing.decrypt_secret(hook.secret_encrypted)
    except signing.SecretUnreadable as error:
        answer = sending.Answer(None, "", str(error), 0, retryable=False)
    else:
        headers = {
            signing.SIGNATURE_HEADER: signing.signature_header(secret, int(time.time()), body),
            "X-Registry-Event": delivery.event_type,
            "X-Registry-Event-Id": str(delivery.event_id),
            "X-Registry-Delivery": str(delivery.pk),
        }
        try:
            target = destinations.parse_url(hook.url)
        except InvalidInput as error:
            answer = sending.Answer(None, "", error.message, 0, retryable=False)
        else:
            try:
                answer = sending.post(target, body, headers)
            except SoftTimeLimitExceeded:  # a receiver dripping its answer past the task's limit
                answer = sending.Answer(None, "", "The receiver took too long to answer.",
                                        int((timezone.now() - started_at).total_seconds() * 1000), retryable=True)
    return _record_attempt(delivery_id=delivery.pk, number=delivery.attempt_count, started_at=started_at,
                           answer=answer)


@transaction.atomic
def _record_attempt(*, delivery_id, number: int, started_at, answer: sending.Answer) -> WebhookDelivery | None:
    delivery = lock_for_update(WebhookDelivery).filter(pk=delivery_id).first()
    if delivery is None:  # the hook was deleted meanwhile
        return None
    WebhookAttempt.objects.create(
        delivery=delivery, number=number, started_at=started_at, duration_ms=answer.duration_ms,
        response_code=answer.status, response_excerpt=answer.excerpt, error=answer.error,
        succeeded=answer.succeeded)
    now = timezone.now()
    delivery.last_response_code, delivery.last_error = answer.status, answer.error[:500]
    if delivery.status != DeliveryStatus.PENDING:  # cancelled while this attempt ran
        pass
    elif answer.succeeded:
        delivery.status, delivery.next_attempt_at, delivery.finished_at = DeliveryStatus.DELIVERED, None, now
    else:
        retry_at = now + timedelta(seconds=retry_delay(number))
        if answer.retryable and retry_at <= _give_up_at(delivery):
            delivery.next_attempt_at = retry_at
        else:
            delivery.status, delivery.next_attempt_at, delivery.finished_at = DeliveryStatus.FAILED, None, now
    delivery.save(update_fields=["status", "next_attempt_at", "finished_at", "last_response_code", "last_error"])
    return delivery


def deliveries_due() -> int:
    """The sweep: queue every pending delivery whose attempt is due (a retry, or a first attempt
    whose message was lost); give up those past REGISTRY_WEBHOOK_RETRY_HOURS. Returns how many
    were queued."""
    now = timezone.now()
    oldest = now - timedelta(hours=settings.REGISTRY_WEBHOOK_RETRY_HOURS)
    WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now,
                                   created_at__lt=oldest).update(
        status=DeliveryStatus.FAILED, next_attempt_at=None, ticket=None, finished_at=now,
        last_error="Gave up: not delivered within the retry period.")
    due = list(WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
               .order_by("next_attempt_at").values_list("id", "next_attempt_at")[:SWEEP_BATCH])
    queued = 0
    for delivery_id, due_at in due:
        ticket = uuid.uuid4()
        taken = WebhookDelivery.objects.filter(pk=delivery_id, status=DeliveryStatus.PENDING,
                                               next_attempt_at=due_at).update(
            ticket=ticket, next_attempt_at=now + timedelta(seconds=QUEUED_GRACE_SECONDS))
        if taken:
            queued += queue.send(DELIVER_TASK, str(delivery_id), str(ticket))
    return queued


PRUNE_BATCH = 1000


def deliveries_prune() -> int:
    """Delete the deliveries (with their attempts) that finished more than REGISTRY_WEBHOOK_KEEP_DAYS
    ago, a batch at a time so no statement holds many rows; returns how many went. The audit log
    keeps the hooks' history; pending deliveries are never pruned."""
    cutoff = timezone.now() - timedelta(days=settings.REGISTRY_WEBHOOK_KEEP_DAYS)
    deleted = 0
    while True:
        batch = list(WebhookDelivery.objects.filter(finished_at__lt=cutoff).values_list("id", flat=True)[:PRUNE_BATCH])
        if not batch:
            return deleted
        WebhookAttempt.objects.filter(delivery_id__in=batch).delete()
        deleted += WebhookDelivery.objects.filter(pk__in=batch).delete()[1].get(WebhookDelivery._meta.label, 0)
