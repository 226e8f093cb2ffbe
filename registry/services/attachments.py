"""Attachments: files of a model itself (a model card, a monitoring report, a drift plot, a CSV of
benchmark results), beside its versions' formats. Upload (add or, when asked, replace), delete.

The registry never opens them after the upload: no worker inspects them and they are served only
as downloads. So what could be loaded as a model is refused at the door: while the bytes stream
to storage, their SHA-256 is computed and their two ends kept (registry.introspection.ends); a
serialized model (a pickle, a PyTorch zip...) is refused with 400 serialized_model, to be uploaded
as a version's format, where the workers scan it.

Like a format's file, the bytes go to a fresh server-chosen key outside any transaction, then the
row is written under the model's lock; on any failure the new object is removed, so a refused or
cut-off upload leaves no row and no stored object. The door decides who may do this (edit-model).
"""

from __future__ import annotations

import unicodedata
from typing import IO

from django.conf import settings
from django.db import IntegrityError, transaction
from django.template.defaultfilters import filesizeformat
from django.utils import timezone

from registry import storage
from registry.db import release_connection
from registry.errors import (AttachmentExists, AttachmentTooLarge, BodyIncomplete, ChecksumMismatch, FileTooLarge,
                             InvalidInput, NotFound, SerializedModelRefused, TooManyAttachments)
from registry.introspection import ends
from registry.models import EventType, Model, ModelAttachment
from registry.services import webhooks
from registry.services.common import audit, check_storable, clean_text, lock_for_update, lock_one
from registry.services.formats import clean_sha256

NAME_MAX_LENGTH = 200
DESCRIPTION_MAX_LENGTH = 500
# Characters no file name may hold on the systems people download to, and the path separators.
FORBIDDEN_NAME_CHARACTERS = set('/\\:*?"<>|')


def max_attachment_bytes() -> int:
    return min(settings.REGISTRY_MAX_ATTACHMENT_BYTES, settings.REGISTRY_MAX_UPLOAD_BYTES)


def clean_attachment_name(value) -> tuple[str, str]:
    """(name, uniqueness key) of an attachment: a file name, never a path. NFC, 1-200 characters,
    no control or invisible characters, none of / \\ : * ? " < > |, not starting with a dot or a
    space nor ending with a dot or a space ("..", ".env" and "report.pdf." are refused)."""
    if not isinstance(value, str):
        raise InvalidInput("An attachment's name must be a string.", field="name")
    check_storable(value, field="name", what="An attachment's name")
    name = unicodedata.normalize("NFC", value)
    if not name:
        raise InvalidInput("Name the attachment, e.g. model-card.pdf.", field="name")
    if len(name) > NAME_MAX_LENGTH:
        raise InvalidInput(f"An attachment's name has at most {NAME_MAX_LENGTH} characters.", field="name")
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        raise InvalidInput("An attachment's name cannot contain control or invisible characters.", field="name")
    bad = sorted({ch for ch in name if ch in FORBIDDEN_NAME_CHARACTERS})
    if bad:
        raise InvalidInput(f"An attachment's name is a file name, not a path: it cannot contain {' '.join(bad)}.",
                           field="name")
    if name[0] in ". " or name[-1] in ". " or unicodedata.category(name[0]) == "Zs":
        raise InvalidInput("An attachment's name cannot start with a dot or a space, nor end with one.",
                           field="name")
    return name, name.casefold()


def _overwrite_refused(model: Model, name: str) -> AttachmentExists:
    return AttachmentExists(f"{model.name} already has an attachment named {name!r}. Upload with ?overwrite=1 "
                            "to replace it, or choose another name.", field="name")


def _count_refused(model: Model, count: int) -> TooManyAttachments:
    return TooManyAttachments(f"{model.name} already has {count} attachments, the most allowed "
                              f"(REGISTRY_MAX_ATTACHMENTS = {settings.REGISTRY_MAX_ATTACHMENTS}). Delete one first.",
                              field="name")


def _room_check(model: Model, key: str, *, overwrite: bool, locked: bool = False) -> ModelAttachment | None:
    """The attachment `key` names (None if new), after checking that it may be written: 409
    attachment_exists without `overwrite`, 409 too_many_attachments for a new one at the limit."""
    rows = ModelAttachment.objects.filter(model=model, name_key=key)
    existing = (lock_for_update(rows) if locked else rows).first()
    if existing is not None:
        if not overwrite:
            raise _overwrite_refused(model, existing.name)
        return existing
    count = ModelAttachment.objects.filter(model=model).count()
    if count >= settings.REGISTRY_MAX_ATTACHMENTS:
        raise _count_refused(model, count)
    return None


def attachment_upload(*, actor, model: Model, name: str, stream: IO[bytes], content_length: int | None,
                      overwrite: bool = False, description: str | None = None,
                      declared_sha256: str = "") -> tuple[ModelAttachment, bool]:
    """Store `stream` as the attachment `name` of `model`; return (attachment, replaced).

    Refused before a byte is read: a bad name (400), a declared size over the limit (413
    attachment_too_large), an existing name without `overwrite` (409 attachment_exists), a new
    name at the limit (409 too_many_attachments). After: a body cut off (400 body_incomplete), a
    SHA-256 that is not the declared one (400 checksum_mismatch), a serialized model (400
    serialized_model). `description` None keeps a replaced attachment's description."""
    name, key = clean_attachment_name(name)
    if description is not None:
        description = clean_text(description, field="description", max_length=DESCRIPTION_MAX_LENGTH)
    declared_sha256 = clean_sha256(declared_sha256)
    limit = max_attachment_bytes()
    if content_length is not None and content_length > limit:
        raise AttachmentTooLarge(f"The file is {content_length} bytes; an attachment has at most {limit} bytes "
                                 f"({filesizeformat(limit)}, REGISTRY_MAX_ATTACHMENT_BYTES).", field="file")
    _room_check(model, key, overwrite=overwrite)

    # The body may take minutes to arrive: the database connection is not held meanwhile.
    release_connection()
    recorder = ends.EndsRecorder(stream)
    try:
        storage_key, size = storage.save_stream(recorder, max_bytes=limit, expected=content_length)
    except FileTooLarge:
        raise AttachmentTooLarge(f"The file is larger than an attachment may be: {limit} bytes "
                                 f"({filesizeformat(limit)}, REGISTRY_MAX_ATTACHMENT_BYTES).", field="file") from None
    try:
        if content_length is not None and size != content_length:
            raise BodyIncomplete(f"The upload was cut off after {size} of {content_length} bytes (the client "
                                 "stopped sending); nothing was stored.", field="file")
        if declared_sha256 and recorder.sha256 != declared_sha256:
            raise ChecksumMismatch(f"The bytes received have SHA-256 {recorder.sha256}, not the declared "
                                   f"{declared_sha256}; nothing was stored.", field="X-Checksum-Sha256")
        refusal = ends.serialized_model(recorder)
        if refusal:
            raise SerializedModelRefused(
                f"{name!r} looks like a serialized model: {refusal}. Attachments are never scanned, so models "
                "are not accepted as attachments: upload it as a format of a version (its Formats tab, or PUT "
                "…/versions/{n}/formats/{kind}/file), where the registry checks it.", field="file")
        return _attach(actor=actor, model=model, name=name, key=key, storage_key=storage_key, size=size,
                       sha256=recorder.sha256, content_type=ends.safe_content_type(name, recorder.head),
                       description=description, overwrite=overwrite)
    except BaseException:
        storage.delete_quietly([storage_key])
        raise


def attachment_fields(attachment: ModelAttachment) -> dict:
    """An attachment as webhook events name it."""
    return {"name": attachment.name, "size": attachment.size, "sha256": attachment.sha256,
            "content_type": attachment.content_type}


@transaction.atomic
def _attach(*, actor, model, name, key, storage_key, size, sha256, content_type, description,
            overwrite) -> tuple[ModelAttachment, bool]:
    # The model's row lock orders every write of its attachments: the count cannot be overrun and
    # two uploads of one name cannot both insert.
    model = lock_one(Model.objects.select_related("context"), pk=model.pk)
    existing = _room_check(model, key, overwrite=overwrite, locked=True)
    now = timezone.now()
    if existing is None:
        try:
            with transaction.atomic():
                attachment = ModelAttachment.objects.create(
                    model=model, name=name, name_key=key, storage_key=storage_key, size=size, sha256=sha256,
                    content_type=content_type, description=description or "", uploaded_by=actor, uploaded_at=now)
        except IntegrityError:
            raise _overwrite_refused(model, name) from None
        old_key = None
    else:
        attachment, old_key = existing, existing.storage_key
        attachment.name, attachment.storage_key, attachment.size, attachment.sha256 = name, storage_key, size, sha256
        attachment.content_type, attachment.uploaded_by, attachment.uploaded_at = content_type, actor, now
        fields = ["name", "storage_key", "size", "sha256", "content_type", "uploaded_by", "uploaded_at"]
        if description is not None:
            attachment.description = description
            fields.append("description")
        attachment.save(update_fields=fields)
        transaction.on_commit(lambda: storage.delete_quietly([old_key]))
    attachment.model = model
    replaced = old_key is not None
    audit(actor=actor, context=model.context, action="attachment.replace" if replaced else "attachment.upload",
          obj=attachment, object_type="attachment", object_repr=f"{model.name} / {name}",
          summary=f"{'replaced' if replaced else 'attached'} {name} ({size} bytes) to model {model.name}",
          changes={"name": name, "size": size, "sha256": sha256})
    webhooks.emit(model.context, EventType.ATTACHMENT_REPLACED if replaced else EventType.ATTACHMENT_ADDED, {
        "model": webhooks.model_fields(model), "attachment": attachment_fields(attachment)}, actor=actor)
    return attachment, replaced


@transaction.atomic
def attachment_delete(*, actor, attachment: ModelAttachment) -> None:
    """Delete an attachment; its stored object goes after commit."""
    model = lock_one(Model.objects.select_related("context"), pk=attachment.model_id)
    row = ModelAttachment.objects.filter(pk=attachment.pk).first()
    if row is None:
        raise NotFound("That attachment no longer exists.")
    storage_key, attachment_id = row.storage_key, str(row.pk)
    row.delete()
    transaction.on_commit(lambda: storage.delete_quietly([storage_key]))
    audit(actor=actor, context=model.context, action="attachment.delete", object_type="attachment",
          object_id=attachment_id, object_repr=f"{model.name} / {row.name}",
          summary=f"deleted the attachment {row.name} of model {model.name}",
          changes={"name": row.name, "sha256": row.sha256})
    webhooks.emit(model.context, EventType.ATTACHMENT_DELETED, {
        "model": webhooks.model_fields(model), "attachment": attachment_fields(row)}, actor=actor)
