"""Typed errors. Every failure the registry reports arrives as a `RegistryError` subclass that
carries the server's own message (`message`), its machine code (`code`) and the offending
field (`field`) when there is one.

Nothing here ever holds the token: error texts are built from the server's JSON body, the
method and the path, never from request headers.
"""

from __future__ import annotations


class RegistryError(Exception):
    """Base class. `status` is the HTTP status (None for errors raised by the client itself)."""

    status: int | None = None

    def __init__(self, message: str, *, status: int | None = None, code: str = "", field: str | None = None,
                 method: str = "", path: str = "", body: dict | None = None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        self.code = code
        self.field = field
        self.method = method
        self.path = path
        self.body = body or {}

    def __str__(self) -> str:
        where = f" ({self.method} {self.path})" if self.method else ""
        status = f"{self.status} " if self.status else ""
        field = f" [field: {self.field}]" if self.field and self.field not in self.message else ""
        return f"{status}{self.message}{field}{where}"


class MoveRequested(RegistryError):
    """202: the alias is protected, so the move became a move request (`request`: its JSON, with
    `id`, `status` and `signature_check`), waiting for another publisher or an admin. Nothing moved."""

    status = 202

    def __init__(self, request: dict, *, method: str = "", path: str = ""):
        super().__init__(f"Alias '{request.get('alias')}' is protected: request #{request.get('id')} asks for the "
                         f"move; another publisher or an admin approves it.", method=method, path=path, body=request)
        self.request = request


class BadRequest(RegistryError):
    """400 (invalid input) and 411 (no Content-Length)."""

    status = 400


class Unauthorized(RegistryError):
    """401: no token, or a wrong, expired or revoked one."""

    status = 401


class Forbidden(RegistryError):
    """403: the object is visible but your role does not allow the action."""

    status = 403


class NotFound(RegistryError):
    """404: it does not exist, or you cannot see it (the registry does not tell them apart)."""

    status = 404


class Conflict(RegistryError):
    """409: name taken, limit reached, version published, kind exists, not publishable..."""

    status = 409


class PayloadTooLarge(RegistryError):
    """413: the file is larger than the registry accepts."""

    status = 413


class ServerError(RegistryError):
    """5xx, after the retries for 502/503/504 were used up."""

    status = 500


class TransportError(RegistryError):
    """The registry could not be reached (connection refused, reset, timed out), after retries."""


class ConfigError(RegistryError):
    """No registry URL or token configured, or an unreadable config file."""


class OfflineError(RegistryError):
    """Offline mode (REGISTRY_OFFLINE=1 or offline=True) and the call needs the registry: the
    client never contacts it then, not even to try."""


class NotCached(OfflineError):
    """Offline mode, and a manifest's file is not in the cache (or its cached copy no longer
    matches its checksums and was discarded). `file` is the format kind, `sha256` the digest."""

    def __init__(self, message: str, *, file: str = "", sha256: str = ""):
        super().__init__(message, code="not_cached")
        self.file = file
        self.sha256 = sha256


class TamperError(RegistryError):
    """A downloaded file or a manifest does not match its recorded checksum.

    `file` is the format kind (empty for the manifest itself), `reason` one of
    `checksum_mismatch`, `lock_mismatch`, `missing_file`, or `corrupt` (the registry itself found
    the stored file changed), `expected`/`actual` the hex digests.
    """

    def __init__(self, message: str, *, file: str = "", reason: str = "checksum_mismatch", expected: str = "",
                 actual: str = "", path: str = ""):
        super().__init__(message, code=reason)
        self.file = file
        self.reason = reason
        self.expected = expected
        self.actual = actual
        self.local_path = path

    def __str__(self) -> str:
        return self.message


class TamperWarning(UserWarning):
    """Issued instead of TamperError for a file whose manifest entry has fail_on_tamper false."""


_BY_STATUS: dict[int, type[RegistryError]] = {
    400: BadRequest, 411: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict,
    413: PayloadTooLarge,
}


def error_for_status(status: int) -> type[RegistryError]:
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status >= 500:
        return ServerError
    return RegistryError
