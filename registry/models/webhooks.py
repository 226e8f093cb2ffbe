"""Webhooks: URLs a context's admin registers to be told of events, and every delivery to them
with each of its attempts (registry.services.webhooks sends them)."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from registry.models.contexts import Context

WEBHOOK_URL_MAX_LENGTH = 2000


class EventType(models.TextChoices):
    """What a hook may subscribe to; the value is the `type` field of a delivery's body."""

    VERSION_CREATED = "version.created", "Version created"
    VERSION_PUBLISHED = "version.published", "Version published"
    FORMAT_READY = "format.ready", "File ready"
    FORMAT_REVIEW = "format.review", "File needs review"
    FORMAT_QUARANTINED = "format.quarantined", "File quarantined"
    FORMAT_CORRUPT = "format.corrupt", "File corrupt"
    FORMAT_FAILED = "format.failed", "File failed"
    ALIAS_MOVED = "alias.moved", "Alias moved"
    ALIAS_ROLLED_BACK = "alias.rolled_back", "Alias rolled back"
    MODEL_DELETED = "model.deleted", "Model deleted"
    TAMPER_REPORTED = "tamper.reported", "Tamper reported"
    ATTACHMENT_ADDED = "attachment.added", "Model attachment added"
    ATTACHMENT_REPLACED = "attachment.replaced", "Model attachment replaced"
    ATTACHMENT_DELETED = "attachment.deleted", "Model attachment deleted"


# Sent only by "send test event", to the one hook it names; never subscribed to.
TEST_EVENT = "webhook.test"


class Webhook(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    context = models.ForeignKey(Context, on_delete=models.CASCADE, related_name="webhooks")
    url = models.CharField(max_length=WEBHOOK_URL_MAX_LENGTH)
    description = models.CharField(max_length=200, blank=True, default="")
    # EventType values, sorted; at least one.
    events = models.JSONField(default=list)
    enabled = models.BooleanField(default=True)
    # The signing secret, encrypted with a key derived from SECRET_KEY (registry.webhooks.signing):
    # the registry must read it back to sign, so it cannot be hashed like an API token.
    secret_encrypted = models.TextField()
    secret_prefix = models.CharField(max_length=16, help_text="First characters, to recognise the secret.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["context", "created_at"], name="webhook_ctx_created")]

    def __str__(self) -> str:
        return self.url


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"  # waiting for its first attempt or for a retry
    DELIVERED = "delivered", "Delivered"  # a 2xx answer
    FAILED = "failed", "Failed"  # gave up: an answer retrying cannot change, or a day of retries
    CANCELLED = "cancelled", "Cancelled"  # the hook was disabled before it was delivered


class WebhookDelivery(models.Model):
    """One event for one hook. `body` is the exact JSON sent on every attempt (same event id);
    each attempt signs it with the time it is sent."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event_id = models.UUIDField()
    event_type = models.CharField(max_length=32)
    body = models.TextField()
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    created_at = models.DateTimeField()
    # When the next attempt is due (pending only). While a task is queued for it or an attempt
    # runs, it is pushed into the future, so the sweep does not send it twice.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # Set each time a task is queued for it: the task attempts only if the ticket is still this
    # one, so of two messages for one attempt (a sweep and a redelivery) one does the work.
    ticket = models.UUIDField(null=True, blank=True)
    attempt_count = models.PositiveIntegerField(default=0)
    last_response_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True, default="")
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["webhook", "-created_at", "-id"], name="delivery_hook_time"),
            models.Index(fields=["status", "next_attempt_at"], name="delivery_due",
                         condition=Q(status=DeliveryStatus.PENDING)),
            models.Index(fields=["finished_at"], name="delivery_finished"),  # the pruning
        ]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=DeliveryStatus.values), name="delivery_status_valid"),
        ]


class WebhookAttempt(models.Model):
    """One POST of a delivery: when, how long, the answer's status code or the error."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField()
    response_code = models.PositiveIntegerField(null=True, blank=True)
    # The start of the answer's body (at most 500 characters), or why there was no answer.
    response_excerpt = models.CharField(max_length=500, blank=True, default="")
    error = models.CharField(max_length=500, blank=True, default="")
    succeeded = models.BooleanField(default=False)

    class Meta:
        ordering = ["number"]
        constraints = [
            models.UniqueConstraint(fields=["delivery", "number"], name="webhook_attempt_unique_number"),
        ]
