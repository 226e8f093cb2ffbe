"""Tamper reports: a consumer (the Python client) found bytes or a manifest that do not
match what the registry froze, and tells the registry."""

from __future__ import annotations

import re
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from registry import queue
from registry.errors import InvalidInput
from registry.models import AuditEvent, EventType, Format, Version
from registry.services import webhooks
from registry.services.common import audit, clean_text

REASONS = {
    "checksum_mismatch": "a file's checksum did not match the frozen manifest",
    "lock_mismatch": "the manifest's lock checksum did not match its content",
    "missing_file": "a file listed in the manifest could not be fetched",
}
HEX_DIGEST = re.compile(r"^[0-9a-f]{0,128}$")


def _clean_digest(value, *, field: str) -> str:
    if value in (None, ""):
        return ""
    if not isinstance(value, str) or not HEX_DIGEST.match(value.strip().lower()):
        raise InvalidInput(f"'{field}' must be a hexadecimal digest.", field=field)
    return value.strip().lower()


@transaction.atomic
def tamper_report(
    *,
    actor,
    version: Version,
    file: str = "",
    reason: str,
    expected: str = "",
    actual: str = "",
    detail: str = "",
    fail_on_tamper: bool = True,
) -> AuditEvent:
    """Record a consumer's tamper report in the audit log and re-check the stored file.

    Anyone who may see the model can report, read-only tokens included: a report changes
    no model data, and the consumers that verify downloads are typically deployments with
    read-only tokens. The stored file named by the report is re-hashed after commit, so a
    change in storage also turns the format `corrupt`; while such a re-hash waits in the
    queue, further reports on the file are recorded but queue nothing more. The API limits
    how many reports a token may send (the `tamper_report` throttle rate).
    """
    context = version.model.context
    if reason not in REASONS:
        raise InvalidInput(f"'reason' must be one of {', '.join(REASONS)}.", field="reason")
    if not isinstance(file, str):
        raise InvalidInput("'file' must be a format kind (or empty for the manifest).", field="file")
    if not isinstance(fail_on_tamper, bool):
        raise InvalidInput("'fail_on_tamper' must be true or false.", field="fail_on_tamper")
    expected = _clean_digest(expected, field="expected")
    actual = _clean_digest(actual, field="actual")
    detail = clean_text(detail, field="detail", max_length=500, allow_blank=True)
    fmt = Format.objects.filter(version=version, kind=file).first() if file else None
    external = file and fmt is None and any(item["name"] == file for item in version.external_files)
    if file and fmt is None and not external:
        raise InvalidInput(f"Version {version.number} has no '{file}' format or external file.", field="file")
    # An external file's bytes are not the registry's: the report is recorded, nothing is re-hashed.
    subject = f"the external file {file}" if external else (f"the {file} file" if file else "the manifest")
    summary = f"tamper reported on {subject} of version {version.number}: {REASONS[reason]}"
    if detail:
        summary = f"{summary} ({detail})"
    event = audit(
        actor=actor, context=context, action="format.tamper_reported",
        obj=fmt if fmt is not None else version, summary=summary,
        changes={"reason": reason, "file": file, "expected": expected, "actual": actual,
                 "fail_on_tamper": fail_on_tamper, **({"external": True} if external else {})},
    )
    webhooks.emit(context, EventType.TAMPER_REPORTED, {
        "model": webhooks.model_fields(version.model), "version": webhooks.version_fields(version),
        "tamper": {"file": file, "reason": reason, "expected": expected, "actual": actual, "detail": detail,
                   "fail_on_tamper": fail_on_tamper},
    }, actor=actor)
    if fmt is not None and fmt.sha256 and format_verification_claim(format_id=fmt.pk):
        format_id = str(fmt.pk)
        transaction.on_commit(lambda: _send_verification(format_id))
    return event


def _send_verification(format_id: str) -> None:
    if not queue.send("registry.tasks.format_verify", format_id):
        # The broker refused it: nothing waits, so the next report may queue one.
        format_verification_release(format_id=format_id)


def format_verification_claim(*, format_id) -> bool:
    """Mark a verification of the file as pending; False if one already is, so reports on
    one file (a hundred deployments, or one client in a loop) queue one re-hash, not one each.

    One conditional UPDATE: of two reports at once, the second finds the row already marked.
    A mark older than the hashing time limit belongs to a verification that was lost on the
    way (the integrity sweep would re-check the file anyway) and is taken over.
    """
    now = timezone.now()
    lost_before = now - timedelta(seconds=settings.REGISTRY_HASH_SOFT_TIME_LIMIT)
    return bool(
        Format.objects.filter(pk=format_id)
        .filter(Q(verify_requested_at__isnull=True) | Q(verify_requested_at__lt=lost_before))
        .update(verify_requested_at=now)
    )


def format_verification_release(*, format_id) -> None:
    """The pending verification started (or was never queued): from now on the stored bytes
    are being read, so a new report may queue another."""
    Format.objects.filter(pk=format_id, verify_requested_at__isnull=False).update(verify_requested_at=None)
