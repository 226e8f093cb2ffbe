"""What the workers do to a stored file: hash it, verify it, introspect it (SPEC §2).

Every step is idempotent and safe against stale runs: a step claims the format with a
conditional update on (id, storage_key, expected status), so a run for a file that has
since been replaced, or that another run already finished, changes nothing.

A running step holds its format with a lease (Format.processing_lease_until): hashing renews a
short one while it reads, introspection takes one as long as its hard time limit. A second run
(a redelivered message, the reconciler's) finds the format held and does nothing; the
reconciler queues again only a format that no step has held for REGISTRY_RECONCILE_AFTER_SECONDS.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import IO

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import F, Q
from django.utils import timezone

from registry import queue, storage
from registry.introspection.dispatch import introspect
from registry.introspection.report import FAILED, REVIEW, Report, storable
from registry.models import Context, Format, FormatStatus, Version, VersionStatus
from registry.services import webhooks
from registry.services.common import audit, lock_for_update, lock_one
from registry.services.trusted_imports import review_outcome, trusted_names

logger = logging.getLogger(__name__)

IN_PROGRESS = [FormatStatus.UPLOADED, FormatStatus.HASHING, FormatStatus.INTROSPECTING]
# The store no longer has the file (removed by hand, a lost bucket): no retry brings it back.
MISSING_FILE = "The stored file is missing: it is no longer in storage. Upload the file again."
VERIFIABLE = [FormatStatus.READY, FormatStatus.REVIEW, FormatStatus.QUARANTINED, FormatStatus.FAILED]


def _locked(format_id, storage_key: str, status: str) -> Format | None:
    return (
        lock_for_update(Format)
        .select_related("version__model__context")
        .filter(pk=format_id, storage_key=storage_key, status=status)
        .first()
    )


# --- leases --------------------------------------------------------------------------------
# Hashing holds its format this long past its last read; it renews the lease as it reads.
HASH_LEASE_SECONDS = 60


class LeaseLost(Exception):
    """Another run holds the format now (this run's lease ran out first), or the file changed."""


@dataclass
class Lease:
    """A running step's hold on a format, taken, renewed and let go with conditional updates
    on the row, so that of two runs at most one holds it."""

    format_id: object
    storage_key: str
    status: str
    until: datetime
    seconds: float

    @classmethod
    def take(cls, *, format_id, storage_key: str, status: str, seconds: float,
             waiting: tuple[str, ...] = ()) -> Lease | None:
        """Hold the format in `status` when it is in `status` and no run holds it, or in one of
        the `waiting` statuses, in which no run works (a lease found there was left by a run on
        the file this one replaced). None when it cannot be taken."""
        now = timezone.now()
        until = now + timedelta(seconds=seconds)
        free = Q(processing_lease_until__isnull=True) | Q(processing_lease_until__lte=now)
        taken = Format.objects.filter(Q(status__in=waiting) | Q(free, status=status),
                                      pk=format_id, storage_key=storage_key
                                      ).update(status=status, processing_lease_until=until)
        return cls(format_id, storage_key, status, until, seconds) if taken else None

    def _held(self):
        return Format.objects.filter(pk=self.format_id, storage_key=self.storage_key, status=self.status,
                                     processing_lease_until=self.until)

    def renew_if_due(self) -> None:
        """Renew the lease once a third of it has gone by; LeaseLost if it is no longer this run's."""
        now = timezone.now()
        if now < self.until - timedelta(seconds=self.seconds * 2 / 3):
            return
        until = now + timedelta(seconds=self.seconds)
        if not self._held().update(processing_lease_until=until):
            raise LeaseLost()
        self.until = until

    def release(self) -> None:
        """Let the format go now (the run stops early); a database that fails here is left to
        the lease running out."""
        try:
            self._held().update(processing_lease_until=timezone.now())
        except DatabaseError:
            logger.warning("could not release the lease on format %s", self.format_id, exc_info=True)


class _RenewingReader:
    """A stored file's stream that renews the reading run's lease as the file is read."""

    def __init__(self, handle: IO[bytes], lease: Lease):
        self._handle, self._lease = handle, lease

    def read(self, size: int = -1) -> bytes:
        self._lease.renew_if_due()
        return self._handle.read(size)


def format_hash(*, format_id, storage_key: str) -> Format | None:
    """Hash the stored bytes; a declared checksum that differs makes the format corrupt, a
    stored file that has gone makes it failed.

    Returns the format when this run moved it on (to introspecting, corrupt or failed), else
    None: the format had moved on, its file was replaced, or another run holds it.
    """
    lease = Lease.take(format_id=format_id, storage_key=storage_key, status=FormatStatus.HASHING,
                       seconds=HASH_LEASE_SECONDS, waiting=(FormatStatus.UPLOADED,))
    if lease is None:
        return None
    try:
        with storage.open_for_read(storage_key) as handle:
            md5, sha256, size = storage.hash_stream(_RenewingReader(handle, lease))
        return _record_hash(format_id=format_id, storage_key=storage_key, md5=md5, sha256=sha256, size=size)
    except FileNotFoundError:
        return format_hash_fail(format_id=format_id, storage_key=storage_key, message=MISSING_FILE)
    except LeaseLost:
        logger.info("hashing of format %s stopped: another run holds it", format_id)
        return None
    except Exception:
        lease.release()  # a retry, or the reconciler's run, takes it at once
        raise


@transaction.atomic
def _record_hash(*, format_id, storage_key: str, md5: str, sha256: str, size: int) -> Format | None:
    """Record the digests of a hashed file and the status they lead to; None for a stale run."""
    fmt = _locked(format_id, storage_key, FormatStatus.HASHING)
    if fmt is None:
        return None
    fmt.processing_lease_until = timezone.now()  # let go: introspection takes it from here
    fmt.md5, fmt.sha256, fmt.size = md5, sha256, size
    problems = []
    if fmt.declared_sha256 and fmt.declared_sha256 != sha256:
        problems.append(f"SHA-256 is {sha256}, the uploader declared {fmt.declared_sha256}")
    if fmt.declared_md5 and fmt.declared_md5 != md5:
        problems.append(f"MD5 is {md5}, the uploader declared {fmt.declared_md5}")
    if problems:
        fmt.status = FormatStatus.CORRUPT
        fmt.status_message = "Checksum mismatch: " + "; ".join(problems) + "."
    else:
        fmt.status = FormatStatus.INTROSPECTING
        fmt.status_message = ""
    fmt.save(update_fields=["md5", "sha256", "size", "status", "status_message", "processing_lease_until"])
    if problems:
        audit(actor=None, context=fmt.version.model.context, action="format.corrupt", obj=fmt,
              summary=f"{fmt.kind} file of version {fmt.version.number} is corrupt: checksum mismatch",
              changes={"problems": problems})
        webhooks.format_event(fmt, fmt.version.model.context)
    return fmt


def format_introspect(*, format_id, storage_key: str) -> Format | None:
    """Read what can be known from the file without executing it, and set the final status.

    The run holds the format for its hard time limit: its worker child is killed by then."""
    lease = Lease.take(format_id=format_id, storage_key=storage_key, status=FormatStatus.INTROSPECTING,
                       seconds=settings.REGISTRY_TASK_TIME_LIMIT)
    if lease is None:
        return None
    fmt = Format.objects.filter(pk=format_id, storage_key=storage_key).first()
    if fmt is None:  # deleted since
        return None
    try:
        try:
            with storage.local_copy(storage_key) as handle:
                report = _inspect(fmt, handle)
        except FileNotFoundError:  # from the store, not from a parser: _inspect catches those
            report = Report(status=FAILED, message=MISSING_FILE)
        return format_record_report(format_id=format_id, storage_key=storage_key, report=report)
    except Exception:
        lease.release()  # a retry, or the task recording the failure, takes it from here
        raise


def _inspect(fmt: Format, handle) -> Report:
    try:
        return introspect(fmt.kind, handle, size=fmt.size or 0)
    except SoftTimeLimitExceeded:
        raise  # the task records the time-out
    except Exception as exc:  # a parser bug must end as failed, never as clean
        logger.exception("introspection of format %s crashed", fmt.pk)
        return Report(status=FAILED, message=f"The file could not be read: {type(exc).__name__}: {exc}"[:500])


@transaction.atomic
def format_record_report(*, format_id, storage_key: str, report: Report) -> Format | None:
    """Store an introspection report and the status it leads to (also used for time-outs).

    What is stored, shown and audited is the storable form of the report (Report.as_dict):
    text read from a file can hold characters no text or jsonb column accepts.
    A `review` report becomes `ready` when every import it names is trusted in the format's
    context (registry.services.trusted_imports); the report itself is stored as it is.
    """
    if report.status == REVIEW:
        # The context first, as the trusted-import services lock it: an approval committing now
        # is either seen here or sees this format in review.
        lock_for_update(Context).filter(
            models__versions__formats__pk=format_id).first()
    fmt = _locked(format_id, storage_key, FormatStatus.INTROSPECTING)
    if fmt is None:
        return None
    version = fmt.version
    fmt.report = stored = report.as_dict()
    if report.status == REVIEW:
        fmt.status, message = review_outcome(stored, trusted_names(version.model.context))
    else:
        fmt.status, message = stored["status"], stored["message"] if report.status != FormatStatus.READY else ""
    fmt.status_message = message[:2000]
    fmt.processing_lease_until = timezone.now()
    fmt.save(update_fields=["report", "status", "status_message", "processing_lease_until"])
    where = f"{fmt.kind} file of version {version.number}"
    if fmt.status == FormatStatus.REVIEW:
        audit(actor=None, context=version.model.context, action="format.review", obj=fmt,
              summary=f"{where}: {message}"[:500])
    elif fmt.status != FormatStatus.READY:
        audit(actor=None, context=version.model.context, action=f"format.{fmt.status}", obj=fmt,
              summary=f"{where} is {fmt.status}: {stored['message']}"[:500])
    elif report.status == REVIEW:
        audit(actor=None, context=version.model.context, action="format.trusted", obj=fmt,
              summary=f"{where}: {message}"[:500])
    if stored["signature"]:
        _fill_signature(version, stored)
    webhooks.format_event(fmt, version.model.context)
    return fmt


def format_hash_fail(*, format_id, storage_key: str, message: str) -> Format | None:
    """End hashing that cannot succeed (an error retrying cannot fix, a time-out) as `failed`.

    Returns the format when this run failed it, None when it had moved on or been replaced."""
    message = storable(message)
    with transaction.atomic():
        fmt = _locked(format_id, storage_key, FormatStatus.HASHING)
        if fmt is None:
            return None
        fmt.status, fmt.status_message = FormatStatus.FAILED, message[:2000]
        fmt.save(update_fields=["status", "status_message"])
        audit(actor=None, context=fmt.version.model.context, action="format.failed", obj=fmt,
              summary=f"{fmt.kind} file of version {fmt.version.number} is failed: {message}"[:500])
        webhooks.format_event(fmt, fmt.version.model.context)
    return fmt


def _fill_signature(version: Version, report: dict) -> None:
    """A signature found in a file fills the version's unless the client gave one."""
    version = lock_one(Version, pk=version.pk)
    if version.status != VersionStatus.DRAFT or version.signature_source == "client":
        return
    source = report["details"].get("signature_source", "introspection")
    if version.signature_source == "contract" and source != "contract":
        return  # a contract file outranks a signature inferred from a model file
    version.signature = report["signature"]
    version.signature_source = source
    version.save(update_fields=["signature", "signature_source"])


def format_verify(*, format_id) -> Format | None:
    """Integrity sweep: re-hash the stored file; a change marks it corrupt (a tamper event)."""
    fmt = Format.objects.filter(pk=format_id, status__in=VERIFIABLE).exclude(sha256="").first()
    if fmt is None:
        return None
    key = fmt.storage_key
    try:
        md5, sha256, size = storage.hash_object(key)
        problem = None if sha256 == fmt.sha256 else f"stored bytes now hash to {sha256}, recorded {fmt.sha256}"
    except FileNotFoundError:
        problem = "the stored file is missing"
    if problem is None:
        return fmt
    with transaction.atomic():
        fmt = lock_for_update(Format).select_related("version__model__context").filter(
            pk=format_id, storage_key=key, status__in=VERIFIABLE
        ).first()
        if fmt is None:
            return None
        fmt.status = FormatStatus.CORRUPT
        fmt.status_message = f"Integrity check failed: {problem}."
        fmt.save(update_fields=["status", "status_message"])
        audit(actor=None, context=fmt.version.model.context, action="format.tamper", obj=fmt,
              summary=f"tamper detected on the {fmt.kind} file of version {fmt.version.number}: {problem}",
              changes={"sha256": [fmt.sha256, None if problem.endswith("missing") else sha256]})
        webhooks.format_event(fmt, fmt.version.model.context)
    return fmt


def formats_stuck(*, older_than: timedelta | None = None):
    """Formats in progress that no task holds, nor has held for `older_than` (by default
    REGISTRY_RECONCILE_AFTER_SECONDS): their task never ran, or its worker died."""
    age = older_than if older_than is not None else timedelta(seconds=settings.REGISTRY_RECONCILE_AFTER_SECONDS)
    now = timezone.now()
    cutoff = now - age
    # No run works on an uploaded file, so a lease on one is either the reconciler's mark (it
    # queued the file then) or was left by a run on the file this one replaced (ignored).
    waiting_for_its_hash = (Q(status=FormatStatus.UPLOADED, uploaded_at__lt=cutoff)
                            & ~Q(processing_lease_until__range=(cutoff, now)))
    let_go = Q(status__in=[FormatStatus.HASHING, FormatStatus.INTROSPECTING]) & (
        Q(processing_lease_until__lt=cutoff) | Q(processing_lease_until__isnull=True, uploaded_at__lt=cutoff))
    return Format.objects.filter(waiting_for_its_hash | let_go)


def formats_reconcile(*, older_than: timedelta | None = None) -> int:
    """Queue processing again for every stuck format; returns how many were queued.

    Each is marked let go now, with a conditional update: of two reconciler runs only one
    queues it, and the next waits the whole delay again for the queued task to start. A file
    whose tasks started and were let go unfinished REGISTRY_MAX_PROCESSING_ATTEMPTS times (its
    worker killed at the time limit each time) ends `failed` instead of being queued for ever;
    one that no task ever started (the broker was down) is queued until one does."""
    queued = 0
    stuck = formats_stuck(older_than=older_than).values_list(
        "id", "storage_key", "status", "processing_lease_until", "processing_attempts")
    for format_id, key, status, lease_until, attempts in stuck:
        started = status != FormatStatus.UPLOADED
        taken = Format.objects.filter(pk=format_id, storage_key=key, status=status,
                                      processing_lease_until=lease_until
                                      ).update(processing_lease_until=timezone.now(),
                                               processing_attempts=F("processing_attempts") + int(started))
        if not taken:
            continue
        if started and attempts + 1 >= settings.REGISTRY_MAX_PROCESSING_ATTEMPTS:
            _give_up(format_id=format_id, storage_key=key, status=status, attempts=attempts + 1)
            continue
        queued += queue.format_next_step(format_id, key, status)
    return queued


@transaction.atomic
def _give_up(*, format_id, storage_key: str, status: str, attempts: int) -> None:
    fmt = _locked(format_id, storage_key, status)
    if fmt is None:
        return
    step = "hashed" if status == FormatStatus.HASHING else "introspected"
    fmt.status = FormatStatus.FAILED
    fmt.status_message = (f"The file could not be {step}: its processing was started {attempts} times and never "
                          "finished (the worker was stopped each time, by its time limit or a crash).")
    fmt.save(update_fields=["status", "status_message"])
    audit(actor=None, context=fmt.version.model.context, action="format.failed", obj=fmt,
          summary=f"{fmt.kind} file of version {fmt.version.number} is failed: processing never finished "
                  f"in {attempts} attempts")
    webhooks.format_event(fmt, fmt.version.model.context)
