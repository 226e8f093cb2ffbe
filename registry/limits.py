"""How large an upload may be: one rule for both doors, checked on the declared length before
a byte of the body is read (the API's PUT, the dashboard's multipart forms), and enforced
again on the bytes actually received while they stream to storage."""

from __future__ import annotations

from django.conf import settings
from django.template.defaultfilters import filesizeformat

from registry.errors import FileTooLarge


def max_upload_bytes() -> int:
    return settings.REGISTRY_MAX_UPLOAD_BYTES


def form_envelope_bytes() -> int:
    """What a multipart form may carry besides its file: Django refuses other fields larger
    than DATA_UPLOAD_MAX_MEMORY_SIZE in total; the part headers are a few hundred bytes."""
    return (settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 0) + 64 * 1024


def upload_size_check(declared: int | None) -> None:
    """Refuse (413) a file whose declared size is over the limit."""
    limit = max_upload_bytes()
    if declared is not None and declared > limit:
        raise FileTooLarge(f"The file is {declared} bytes; the limit is {limit} bytes.")


def form_upload_size_check(content_length: int | None, *, limit: int | None = None) -> None:
    """Refuse (413) a multipart form whose Content-Length is more than a file of the largest
    allowed size (`limit`, by default the largest upload) plus the form's other fields: the body
    is then never read nor spooled."""
    limit = max_upload_bytes() if limit is None else limit
    if content_length is not None and content_length > limit + form_envelope_bytes():
        raise FileTooLarge(f"The form sends {content_length} bytes; the limit for a file is {limit} bytes "
                           f"({filesizeformat(limit)}).", field="file")
