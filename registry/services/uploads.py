"""Direct uploads: a file sent straight to the bucket in parts, not through the web processes.

1. `upload_session_start`: the client declares the size and SHA-256; the registry checks what
   it can before a byte moves (permission, draft, size limit, format limit), starts an S3
   multipart upload to a fresh server-chosen key and chooses the part size.
2. `upload_session_parts`: presigned part URLs for the numbers asked for, and the parts the
   bucket already holds, so an interrupted upload resumes from any process.
3. `upload_session_complete`: every part must be there with the size the session set; the
   upload is completed and the object becomes the format's file, `uploaded`, queued for the
   workers, which hash it and compare with the declared SHA-256: nothing is `ready` before.
4. `upload_session_abort`, and `upload_sessions_expire` (the storage sweep) for sessions not
   completed in time: their parts are aborted, so the bucket keeps nothing of them.

Local-file storage has no such thing: the API's streamed PUT stays the way to upload there.
The door decides who may do this (edit-model, registry/permissions.py); a session is found
only by those who may edit its model.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from registry import storage
from registry.errors import Conflict, InvalidInput, LimitReached, NotFound
from registry.limits import upload_size_check
from registry.models import UploadSession, Version
from registry.permissions import Perm, permissions_in
from registry.services.common import audit, lock_for_update, lock_one
from registry.services.formats import attach_file, clean_filename, clean_kind, clean_sha256, lock_draft_version
from registry.services.versions import ensure_draft
from registry.s3 import MAX_PARTS as MAX_DIRECT_PARTS
from registry.s3 import MIN_PART_BYTES as MIN_DIRECT_PART_BYTES

MAX_URLS_PER_REQUEST = 1000


class DirectUploadUnavailable(Conflict):
    code = "direct_upload_unavailable"


def _part_size(size: int) -> int:
    """The smallest whole number of MiB, at least 8 MiB, that keeps the file within S3's
    10,000 parts."""
    mib = 1024 * 1024
    needed = -(-size // MAX_DIRECT_PARTS)
    return max(MIN_DIRECT_PART_BYTES, -(-needed // mib) * mib)


def upload_session_start(*, actor, version: Version, kind: str, size, sha256: str, filename: str = "",
                         content_type: str = "") -> UploadSession:
    if not storage.direct_uploads_available():
        raise DirectUploadUnavailable(
            "This registry stores files on its own disk: upload with PUT …/formats/<kind>/file instead.")
    kind = clean_kind(kind)
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise InvalidInput("'size' must be the file's size in bytes (at least 1).", field="size")
    upload_size_check(size)
    sha256 = clean_sha256(sha256)
    if not sha256:
        raise InvalidInput("'sha256' is required: the workers check the stored file against it.", field="sha256")
    filename = clean_filename(filename)
    content_type = (content_type or "application/octet-stream")[:255]
    ensure_draft(version)
    if not version.formats.filter(kind=kind).exists() and version.formats.count() >= settings.REGISTRY_MAX_FORMATS:
        raise LimitReached(f"Version {version.number} already has the most formats allowed "
                           f"({settings.REGISTRY_MAX_FORMATS}).", field="kind")
    key, upload_id = storage.direct_upload_start(content_type=content_type)
    try:
        with transaction.atomic():
            version = lock_one(Version, pk=version.pk)
            ensure_draft(version)
            replaced = list(lock_for_update(UploadSession.objects.filter(version=version, kind=kind)))
            for old in replaced:  # a new session for the same file replaces an abandoned one
                old.delete()
                transaction.on_commit(lambda old=old: storage.direct_upload_abort(old.storage_key, old.upload_id))
            session = UploadSession.objects.create(
                version=version, kind=kind, storage_key=key, upload_id=upload_id, size=size,
                part_size=_part_size(size), declared_sha256=sha256, original_filename=filename,
                content_type=content_type, created_by=actor,
                expires_at=timezone.now() + timedelta(hours=settings.REGISTRY_UPLOAD_SESSION_HOURS),
            )
            audit(actor=actor, context=version.model.context, action="format.upload_start", obj=session,
                  object_type="upload", object_repr=f"{version} [{kind}]",
                  summary=f"started a direct upload of the {kind} file of version {version.number} ({size} bytes)",
                  changes={"size": size, "filename": filename})
    except BaseException:
        storage.direct_upload_abort(key, upload_id)
        raise
    return session


def upload_session_get(actor, session_id) -> UploadSession:
    """An open session on a model `actor` may edit; 404 otherwise (whether it exists or not)."""
    try:
        session = UploadSession.objects.select_related("version__model__context").get(pk=session_id)
    except (UploadSession.DoesNotExist, ValidationError, ValueError, TypeError):  # (a malformed id: ValidationError)
        raise NotFound("Upload not found.") from None
    if Perm.EDIT_MODEL not in permissions_in(actor, session.version.model.context, model_id=session.version.model_id):
        raise NotFound("Upload not found.")
    if session.expires_at <= timezone.now():
        raise NotFound("Upload not found (it expired; start a new one).")
    return session


def upload_session_parts(*, actor, session: UploadSession, numbers: list[int]) -> tuple[list[dict], dict[int, str]]:
    """(the parts stored so far, presigned URLs for `numbers`)."""
    wrong = [n for n in numbers if not 1 <= n <= session.part_count]
    if wrong:
        raise InvalidInput(f"Part numbers run from 1 to {session.part_count}; {wrong[0]} is not one.", field="numbers")
    if len(numbers) > MAX_URLS_PER_REQUEST:
        raise InvalidInput(f"Ask for at most {MAX_URLS_PER_REQUEST} part URLs at a time.", field="numbers")
    stored = storage.direct_upload_parts(session.storage_key, session.upload_id)
    expires_in = max(60, min(3600, int((session.expires_at - timezone.now()).total_seconds())))
    urls = storage.direct_upload_part_urls(session.storage_key, session.upload_id, numbers, expires_in=expires_in)
    return stored, urls


def upload_session_complete(*, actor, session: UploadSession):
    """Check every part, complete the upload and make the object the format's file."""
    stored = {part["number"]: part for part in storage.direct_upload_parts(session.storage_key, session.upload_id)}
    missing = [n for n in range(1, session.part_count + 1) if n not in stored]
    if missing:
        shown = ", ".join(map(str, missing[:20])) + (" …" if len(missing) > 20 else "")
        raise Conflict(f"{len(missing)} of {session.part_count} parts are not uploaded yet: {shown}.", field="parts")
    wrong = [n for n in range(1, session.part_count + 1) if stored[n]["size"] != session.expected_part_size(n)]
    if wrong:
        n = wrong[0]
        raise Conflict(f"Part {n} has {stored[n]['size']} bytes; it must have {session.expected_part_size(n)} "
                       f"(parts of {session.part_size} bytes, the last one the rest). Upload it again.", field="parts")
    extra = [n for n in stored if n > session.part_count]
    if extra:
        raise Conflict(f"Part {extra[0]} is beyond the {session.part_count} parts of this file.", field="parts")
    completed = False
    try:
        with transaction.atomic():
            # One completion wins: the session row is locked, and deleted with the format's update.
            locked = lock_for_update(UploadSession.objects.filter(pk=session.pk)).first()
            if locked is None:
                raise NotFound("Upload not found (it was completed or aborted meanwhile).")
            version = lock_draft_version(session.version)  # published meanwhile: 409, nothing completed
            storage.direct_upload_complete(session.storage_key, session.upload_id,
                                           [stored[n] for n in range(1, session.part_count + 1)])
            completed = True
            locked.delete()
            return attach_file(
                actor=actor, version=version, kind=session.kind, key=session.storage_key, size=session.size,
                filename=session.original_filename, content_type=session.content_type,
                declared_sha256=session.declared_sha256, declared_md5="",
            )
    except BaseException:
        if completed:  # the object exists but no format points at it, and the session is spent
            storage.delete_quietly([session.storage_key])
            UploadSession.objects.filter(pk=session.pk).delete()
        raise


@transaction.atomic
def upload_session_abort(*, actor, session: UploadSession) -> None:
    deleted, _ = UploadSession.objects.filter(pk=session.pk).delete()
    if deleted:
        key, upload_id = session.storage_key, session.upload_id
        transaction.on_commit(lambda: storage.direct_upload_abort(key, upload_id))
        audit(actor=actor, context=session.version.model.context, action="format.upload_abort",
              object_type="upload", object_id=str(session.pk), object_repr=f"{session.version} [{session.kind}]",
              summary=f"aborted the direct upload of the {session.kind} file of version {session.version.number}")


def upload_sessions_expire(*, dry_run: bool = False) -> list[str]:
    """Abort the sessions past their expiry; return their keys."""
    expired = list(UploadSession.objects.filter(expires_at__lte=timezone.now()))
    if not dry_run:
        for session in expired:
            storage.direct_upload_abort(session.storage_key, session.upload_id)
            UploadSession.objects.filter(pk=session.pk).delete()
    return [session.storage_key for session in expired]


def open_upload_keys() -> list[str]:
    return list(UploadSession.objects.filter(expires_at__gt=timezone.now()).values_list("storage_key", flat=True))
