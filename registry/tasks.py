"""Thin Celery tasks: take ids, call one service, own retries and time limits (SPEC §2)."""

from __future__ import annotations

import logging

import botocore.exceptions
from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import InterfaceError, OperationalError

from registry import queue, storage
from registry.introspection.report import FAILED, Report
from registry.models import Format
from registry.services import maintenance, processing, tamper, webhooks

logger = logging.getLogger(__name__)

# Retried with exponential backoff: the classes an outage raises (the database's, OSError and
# botocore's for the file store; botocore's connection errors are not the builtin
# ConnectionError). The format tasks let only what is_transient() calls an outage reach these
# retries: any other error ends the format `failed`.
TRANSIENT = (OperationalError, InterfaceError, OSError, botocore.exceptions.BotoCoreError,
             botocore.exceptions.ClientError)
RETRY = {
    "autoretry_for": TRANSIENT,
    "retry_backoff": 2,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 8,
    "acks_late": True,
    "reject_on_worker_lost": True,
}
LIMITS = {
    "soft_time_limit": settings.REGISTRY_TASK_SOFT_TIME_LIMIT,
    "time_limit": settings.REGISTRY_TASK_TIME_LIMIT,
}


def is_transient(exc: BaseException) -> bool:
    """An outage that retrying (then the reconciler) gets past: the database unreachable or
    refusing for now (a dropped connection, a deadlock, a timeout), or the file store failing
    (storage.is_store_failure). Anything else (a row or report the database refuses, a bug,
    a file that is not there) happens again on every retry, so it is permanent."""
    return isinstance(exc, (OperationalError, InterfaceError)) or storage.is_store_failure(exc)


def _cannot_fix(stage: str, format_id: str, exc: Exception) -> str:
    logger.exception("%s of format %s failed for good", stage, format_id)
    return f"The file could not be {stage}: {type(exc).__name__}: {exc}"


@shared_task(
    name="registry.tasks.format_hash", **RETRY,
    soft_time_limit=settings.REGISTRY_HASH_SOFT_TIME_LIMIT, time_limit=settings.REGISTRY_HASH_SOFT_TIME_LIMIT + 60,
)
def format_hash(format_id: str, storage_key: str) -> str | None:
    try:
        fmt = processing.format_hash(format_id=format_id, storage_key=storage_key)
    except SoftTimeLimitExceeded:
        fmt = processing.format_hash_fail(format_id=format_id, storage_key=storage_key,
                                          message="Hashing the file took longer than the time limit.")
    except Exception as exc:
        if is_transient(exc):
            raise
        fmt = processing.format_hash_fail(format_id=format_id, storage_key=storage_key,
                                          message=_cannot_fix("hashed", format_id, exc))
    if fmt is not None:  # this run moved it on: introspection next, unless it ended here
        queue.format_next_step(format_id, storage_key, fmt.status)
    return fmt.status if fmt is not None else None


@shared_task(name="registry.tasks.format_introspect", **RETRY, **LIMITS)
def format_introspect(format_id: str, storage_key: str) -> str | None:
    try:
        fmt = processing.format_introspect(format_id=format_id, storage_key=storage_key)
    except SoftTimeLimitExceeded:
        fmt = processing.format_record_report(
            format_id=format_id, storage_key=storage_key,
            report=Report(status=FAILED, message="Reading the file took longer than the time limit."),
        )
    except Exception as exc:
        if is_transient(exc):
            raise
        fmt = processing.format_record_report(
            format_id=format_id, storage_key=storage_key,
            report=Report(status=FAILED, message=_cannot_fix("introspected", format_id, exc)[:500]),
        )
    return fmt.status if fmt is not None else None


@shared_task(
    name="registry.tasks.format_verify", **RETRY,
    soft_time_limit=settings.REGISTRY_HASH_SOFT_TIME_LIMIT, time_limit=settings.REGISTRY_HASH_SOFT_TIME_LIMIT + 60,
)
def format_verify(format_id: str) -> str | None:
    tamper.format_verification_release(format_id=format_id)  # a report from now on queues another
    fmt = processing.format_verify(format_id=format_id)
    return fmt.status if fmt is not None else None


@shared_task(name="registry.tasks.integrity_sweep", **RETRY)
def integrity_sweep() -> int:
    """Queue a re-hash of every hashed file; each runs as its own task."""
    ids = list(Format.objects.filter(status__in=processing.VERIFIABLE).exclude(sha256="").values_list("id", flat=True))
    for format_id in ids:
        queue.send("registry.tasks.format_verify", str(format_id))
    return len(ids)


@shared_task(name="registry.tasks.formats_reconcile", **RETRY)
def formats_reconcile() -> int:
    return processing.formats_reconcile()


@shared_task(name="registry.tasks.storage_orphans_sweep", **RETRY)
def storage_orphans_sweep() -> int:
    return len(maintenance.storage_orphans_delete())


# A delivery's own time limits (connect, read) come first; this stops a receiver that drips its
# answer byte by byte. Failures are not retried by Celery: the delivery records them and the
# sweep sends the retries (services/webhooks.py), so a retry survives a worker restart.
WEBHOOK_TIME_LIMIT = int(settings.REGISTRY_WEBHOOK_CONNECT_TIMEOUT + settings.REGISTRY_WEBHOOK_READ_TIMEOUT + 20)


@shared_task(name="registry.tasks.webhook_deliver", acks_late=True, reject_on_worker_lost=True,
             soft_time_limit=WEBHOOK_TIME_LIMIT, time_limit=WEBHOOK_TIME_LIMIT + 10)
def webhook_deliver(delivery_id: str, ticket: str) -> str | None:
    delivery = webhooks.delivery_attempt(delivery_id=delivery_id, ticket=ticket)
    return delivery.status if delivery is not None else None


@shared_task(name="registry.tasks.webhook_deliveries_due", **RETRY)
def webhook_deliveries_due() -> int:
    return webhooks.deliveries_due()


@shared_task(name="registry.tasks.webhook_deliveries_prune", **RETRY)
def webhook_deliveries_prune() -> int:
    return webhooks.deliveries_prune()
