"""Errors for rules a user broke. The API and the dashboard turn each into a 4xx."""


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


class FileTooLarge(RegistryError):
    status_code = 413
    code = "file_too_large"


class LengthRequired(RegistryError):
    status_code = 411
    code = "length_required"
