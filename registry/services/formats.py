"""Formats: add a kind to a version, upload its file, delete it."""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from typing import IO

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from registry import queue, storage
from registry.db import release_connection
from registry.errors import BodyIncomplete, InvalidInput, KindExists, LimitReached, NotFound, NotReady
from registry.limits import max_upload_bytes, upload_size_check
from registry.models import Format, FormatKind, FormatStatus, Version
from registry.services.common import audit, lock_for_update, lock_one
from registry.services.versions import ensure_draft

HEX_SHA256 = re.compile(r"^[0-9a-f]{64}$")
HEX_MD5 = re.compile(r"^[0-9a-f]{32}$")
# A file that is not ready downloads only with an explicit acknowledgement naming its status
# (?acknowledge=quarantined), which is audited (SPEC §1): one taken for another state (the file
# was still being checked when the user looked, and is quarantined now) does not count.
ACKNOWLEDGED_DOWNLOAD_STATUSES = frozenset(set(FormatStatus.values) - {FormatStatus.READY, FormatStatus.PENDING})


def clean_kind(kind) -> str:
    if kind not in FormatKind.values:
        raise InvalidInput(f"Unknown format kind {kind!r}; use one of {', '.join(FormatKind.values)}.", field="kind")
    return kind


def clean_filename(value: str | None) -> str:
    """Keep only a display name: no directories, no control characters. Never a path."""
    if not value:
        return ""
    value = unicodedata.normalize("NFC", value).replace("\\", "/").rsplit("/", 1)[-1]
    value = "".join(ch for ch in value if unicodedata.category(ch)[0] != "C").strip()
    return value[:255]


def clean_sha256(value: str | None) -> str:
    if not value:
        return ""
    value = value.strip().lower()
    if not HEX_SHA256.match(value):
        raise InvalidInput("X-Checksum-Sha256 must be 64 hexadecimal characters.", field="X-Checksum-Sha256")
    return value


def clean_md5(value: str | None) -> str:
    """Content-MD5 is base64 of the 16-byte digest (RFC 1864); hex is accepted too."""
    if not value:
        return ""
    value = value.strip()
    if HEX_MD5.match(value.lower()):
        return value.lower()
    try:
        digest = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        digest = b""
    if len(digest) != 16:
        raise InvalidInput("Content-MD5 must be the base64 (or hex) MD5 digest.", field="Content-MD5")
    return digest.hex()


def lock_draft_version(version: Version) -> Version:
    """Reload `version` locked for update (with its model and context, which audit events name)
    and check it is still a draft (VersionPublished, 409, if it was published meanwhile). Every
    write to a version's files takes this lock first: uploads, direct-upload completion, deletes."""
    version = lock_one(Version.objects.select_related("model__context"), pk=version.pk)
    ensure_draft(version)
    return version


def clean_flag(value, *, field: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(f"'{field}' must be true or false.", field=field)
    return value


def _add_format(*, actor, version: Version, kind: str, required: bool = True, fail_on_tamper: bool = True) -> Format:
    """Insert a pending format; the caller holds the version lock."""
    if version.formats.filter(kind=kind).exists():
        raise KindExists(f"Version {version.number} already has a '{kind}' format.", field="kind")
    count = version.formats.count()
    if count >= settings.REGISTRY_MAX_FORMATS:
        raise LimitReached(
            f"Version {version.number} already has {count} formats, the most allowed "
            f"({settings.REGISTRY_MAX_FORMATS}).",
            field="kind",
        )
    try:
        with transaction.atomic():
            fmt = Format.objects.create(
                version=version, kind=kind, required=required, fail_on_tamper=fail_on_tamper, created_by=actor
            )
    except IntegrityError:
        raise KindExists(f"Version {version.number} already has a '{kind}' format.", field="kind") from None
    audit(actor=actor, context=version.model.context, action="format.create", obj=fmt,
          summary=f"added format {kind} to version {version.number}")
    return fmt


@transaction.atomic
def format_create(*, actor, version: Version, kind: str, required: bool = True, fail_on_tamper: bool = True) -> Format:
    """Add a format (without a file yet) to an unpublished version.

    `required` and `fail_on_tamper` place it in the version's manifest (SPEC §4).
    """
    kind = clean_kind(kind)
    required = clean_flag(required, field="required")
    fail_on_tamper = clean_flag(fail_on_tamper, field="fail_on_tamper")
    version = lock_draft_version(version)
    return _add_format(actor=actor, version=version, kind=kind, required=required, fail_on_tamper=fail_on_tamper)


@transaction.atomic
def format_update(*, actor, fmt: Format, required: bool | None = None, fail_on_tamper: bool | None = None) -> Format:
    """Change where a format stands in the manifest; frozen with the version at publish."""
    version = fmt.version
    values = {}
    if required is not None:
        values["required"] = clean_flag(required, field="required")
    if fail_on_tamper is not None:
        values["fail_on_tamper"] = clean_flag(fail_on_tamper, field="fail_on_tamper")
    version = lock_draft_version(version)
    fmt = lock_for_update(Format).filter(pk=fmt.pk).first()
    if fmt is None:
        raise NotFound("That format no longer exists.")
    changes = {name: [getattr(fmt, name), value] for name, value in values.items() if getattr(fmt, name) != value}
    if not changes:
        return fmt
    for name, (_, value) in changes.items():
        setattr(fmt, name, value)
    fmt.save(update_fields=list(changes))
    described = ", ".join(
        f"{name.replace('_', ' ')} {'on' if new else 'off'}" for name, (_, new) in changes.items()
    )
    audit(actor=actor, context=version.model.context, action="format.update", obj=fmt,
          summary=f"changed the {fmt.kind} format of version {version.number} in the manifest: {described}",
          changes=changes)
    return fmt


def format_upload(
    *,
    actor,
    version: Version,
    kind: str,
    stream: IO[bytes],
    content_length: int | None,
    filename: str = "",
    content_type: str = "",
    declared_sha256: str = "",
    declared_md5: str = "",
) -> Format:
    """Store the file of a format (creating the format if needed), streaming in constant memory.

    The bytes go to a fresh server-chosen key outside any transaction; the row is then
    pointed at it under the version lock, and the replaced file is deleted after commit.
    If anything fails, the new object is removed, so no stored file is left without a row
    and no row points at a missing file.
    """
    kind = clean_kind(kind)
    declared_sha256 = clean_sha256(declared_sha256)
    declared_md5 = clean_md5(declared_md5)
    filename = clean_filename(filename)
    upload_size_check(content_length)
    max_bytes = max_upload_bytes()
    # Cheap checks first, so a client does not stream gigabytes to be refused at the end.
    ensure_draft(version)
    if not version.formats.filter(kind=kind).exists() and version.formats.count() >= settings.REGISTRY_MAX_FORMATS:
        raise LimitReached(f"Version {version.number} already has the most formats allowed "
                           f"({settings.REGISTRY_MAX_FORMATS}).", field="kind")

    # The body may take minutes to arrive: the database connection is not held meanwhile.
    release_connection()
    key, size = storage.save_stream(stream, max_bytes=max_bytes, expected=content_length)
    if content_length is not None and size != content_length:
        storage.delete_quietly([key])
        raise BodyIncomplete(f"The upload was cut off after {size} of {content_length} bytes (the client "
                             "stopped sending); nothing was stored.", field="file")
    try:
        return attach_file(
            actor=actor, version=version, kind=kind, key=key, size=size, filename=filename,
            content_type=content_type, declared_sha256=declared_sha256, declared_md5=declared_md5,
        )
    except BaseException:
        storage.delete_quietly([key])
        raise


@transaction.atomic
def attach_file(*, actor, version, kind, key, size, filename, content_type, declared_sha256, declared_md5) -> Format:
    """Point the `kind` format of a draft `version` at an object already in storage under `key`
    (a streamed upload, or a completed direct upload), creating the format if needed: its
    checksums and report are reset and processing is queued after commit; a file it replaces is
    deleted after commit. The version is locked and checked a draft here."""
    version = lock_draft_version(version)
    fmt = lock_for_update(Format).filter(version=version, kind=kind).first()
    if fmt is None:
        fmt = _add_format(actor=actor, version=version, kind=kind)
    old_key = fmt.storage_key
    fmt.storage_key = key
    fmt.size = size
    fmt.original_filename = filename
    fmt.content_type = (content_type or "application/octet-stream")[:255]
    fmt.declared_sha256 = declared_sha256
    fmt.declared_md5 = declared_md5
    fmt.md5 = ""
    fmt.sha256 = ""
    fmt.report = {}
    fmt.status = FormatStatus.UPLOADED
    fmt.status_message = ""
    fmt.processing_attempts = 0
    fmt.uploaded_by = actor
    fmt.uploaded_at = timezone.now()
    fmt.save(update_fields=[
        "storage_key", "size", "original_filename", "content_type", "declared_sha256", "declared_md5",
        "md5", "sha256", "report", "status", "status_message", "processing_attempts", "uploaded_by", "uploaded_at",
    ])
    if old_key:
        transaction.on_commit(lambda: storage.delete_quietly([old_key]))
    format_id = fmt.pk
    transaction.on_commit(lambda: queue.format_processing(format_id, key))
    verb = "replaced" if old_key else "uploaded"
    audit(actor=actor, context=version.model.context, action="format.upload", obj=fmt,
          summary=f"{verb} the {kind} file of version {version.number} ({size} bytes)",
          changes={"size": size, "filename": filename})
    return fmt


@transaction.atomic
def format_delete(*, actor, fmt: Format) -> None:
    """Delete a format of an unpublished version; its stored file goes after commit."""
    version = fmt.version
    version = lock_draft_version(version)
    fmt = Format.objects.filter(pk=fmt.pk).first()
    if fmt is None:
        raise NotFound("That format no longer exists.")
    key, kind, format_id = fmt.storage_key, fmt.kind, str(fmt.pk)
    fmt.delete()
    if key:
        transaction.on_commit(lambda: storage.delete_quietly([key]))
    audit(actor=actor, context=version.model.context, action="format.delete", object_type="format",
          object_id=format_id, object_repr=f"{version} [{kind}]",
          summary=f"deleted format {kind} of version {version.number}")


@transaction.atomic
def format_download_gate(*, actor, fmt: Format, acknowledge: str) -> None:
    """Let a file that is not ready (still being checked, in review, quarantined, corrupt or
    failed) be downloaded only with an acknowledgement naming its status, and write down who
    took it. A ready file passes without a trace.

    Anyone who may see the model may acknowledge, read-only tokens included: it changes no data.
    """
    if fmt.status not in ACKNOWLEDGED_DOWNLOAD_STATUSES:
        return
    version = fmt.version
    state = "needs review" if fmt.status == FormatStatus.REVIEW else f"is {fmt.status}"
    if acknowledge != fmt.status:
        why = f" ({fmt.status_message})" if fmt.status_message else ""
        stale = f" You acknowledged '{acknowledge[:32]}', but it is {fmt.status} now." if acknowledge else ""
        raise NotReady(
            f"The {fmt.kind} file {state}{why}; it is not ready, so loading it may be unsafe.{stale} To download "
            f"it anyway, ask again with ?acknowledge={fmt.status} (the download is audited).",
            field="acknowledge",
        )
    audit(actor=actor, context=version.model.context, action="format.download_not_ready", obj=fmt,
          summary=f"downloaded the {fmt.kind} file of version {version.number}, which {state}, acknowledging it",
          changes={"status": fmt.status})
