"""Errors for rules a user broke, which the API and the dashboard turn into a 4xx; and for a
file store that failed, which they turn into a 5xx with a message a user can act on."""


class RegistryError(Exception):
    status_code = 400
    code = "invalid"

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(RegistryError):
    status_code = 400
    code = "invalid"


class PermissionDenied(RegistryError):
    status_code = 403
    code = "permission_denied"


class NotFound(RegistryError):
    status_code = 404
    code = "not_found"


class Conflict(RegistryError):
    status_code = 409
    code = "conflict"


class NameTaken(Conflict):
    code = "name_taken"


class LimitReached(Conflict):
    code = "limit_reached"


class VersionPublished(Conflict):
    code = "version_published"


class KindExists(Conflict):
    code = "kind_exists"


class NotPublishable(Conflict):
    code = "not_publishable"


class NotReady(Conflict):
    """A file the registry flagged (in review, quarantined, corrupt, failed) asked for without
    an explicit acknowledgement."""

    code = "not_ready"


class FileTooLarge(RegistryError):
    status_code = 413
    code = "file_too_large"


class LengthRequired(RegistryError):
    status_code = 411
    code = "length_required"


class BodyIncomplete(RegistryError):
    """The client stopped sending its request body before the end it declared (it went away,
    or sent nothing for REGISTRY_WEB_IDLE_TIMEOUT seconds): nothing was stored."""

    code = "body_incomplete"


class RequestTimeout(BodyIncomplete):
    status_code = 408
    code = "request_timeout"


class StorageUnavailable(RegistryError):
    """The file store (S3 or the local disk) did not answer or refused to work: not the
    user's doing, and nothing was changed. The API answers 503 with `Retry-After`."""

    status_code = 503
    code = "storage_unavailable"
    retry_after: int | None = 30


class StorageFull(StorageUnavailable):
    """The local disk has no space left (or the quota is used up). 507, not 503: it will not
    clear up by itself in seconds, so clients should not re-send gigabytes on a timer."""

    status_code = 507
    code = "storage_full"
    retry_after = None


class DatabaseUnavailable(RegistryError):
    """The database refused or dropped the connection (down, restarting, out of connection
    slots): not the user's doing. Every door answers 503 with `Retry-After` (registry.outage)."""

    status_code = 503
    code = "database_unavailable"
    retry_after: int | None = 10


class AttachmentExists(Conflict):
    """An attachment of that name exists and the upload did not ask to replace it."""

    code = "attachment_exists"


class TooManyAttachments(Conflict):
    code = "too_many_attachments"


class AttachmentTooLarge(FileTooLarge):
    code = "attachment_too_large"


class SerializedModelRefused(InvalidInput):
    """The bytes are a serialized model (a pickle, a PyTorch zip...): it goes in a version's format,
    where the workers scan it, not in an attachment, which nothing scans."""

    code = "serialized_model"


class ChecksumMismatch(InvalidInput):
    code = "checksum_mismatch"
