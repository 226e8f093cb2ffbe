"""Housekeeping that keeps storage and database consistent."""

from __future__ import annotations

from datetime import timedelta

from registry import storage
from registry.models import Format, ModelAttachment


def storage_orphans_delete(*, older_than: timedelta = timedelta(hours=24), dry_run: bool = False) -> list[str]:
    """Delete stored objects no format or attachment points to, such as what an upload killed mid-stream left,
    and abort direct uploads whose session expired.

    Only objects older than `older_than` are touched, so an upload still streaming (its
    row is written when the last byte has arrived) is never removed under its feet.
    """
    cutoff = storage.orphan_cutoff(older_than)
    orphans = []
    for key in storage.iter_keys():
        if Format.objects.filter(storage_key=key).exists() or ModelAttachment.objects.filter(storage_key=key).exists():
            continue
        if storage.modified_before(key, cutoff):
            orphans.append(key)
    if not dry_run:
        storage.delete_quietly(orphans)
    # Direct uploads not completed in time, then multipart uploads an S3 outage kept from
    # aborting: not objects, but billed as such (an open session's upload is kept).
    from registry.services import uploads

    expired = uploads.upload_sessions_expire(dry_run=dry_run)
    return orphans + expired + storage.unfinished_uploads_abort(cutoff, dry_run=dry_run,
                                                                keep=uploads.open_upload_keys())
