"""Streaming downloads with ETag and single-range support, or a redirect to a presigned S3 URL;
and the name an upload gives its file."""

from __future__ import annotations

import re
from urllib.parse import unquote

from django.conf import settings
from django.http import FileResponse, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.utils.http import content_disposition_header
from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation

from registry import storage
from registry.api.conditional import none_match
from registry.db import release_connection
from registry.errors import NotFound
from registry.models import Format

RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
# RFC 5987 `charset'language'percent-encoded`, alone or as `filename*=` of Content-Disposition.
EXTENDED_VALUE = re.compile(r"^(?:filename\*=)?(utf-8|iso-8859-1)'[^']*'(.*)$", re.IGNORECASE)


def upload_filename(request) -> str:
    """The name an upload gives its file: `?filename=` (decoded as UTF-8 like any query
    parameter), else the X-Filename header.

    A header reaches Django as Latin-1 text (WSGI), so X-Filename is read as: RFC 5987
    `UTF-8''hdr%C3%A9.bin` (also after `filename*=`); percent-encoded UTF-8 (what the client
    sends); raw UTF-8 bytes (curl -H in a UTF-8 terminal); else Latin-1 as it came. The
    service then keeps only a display name (registry.services.formats.clean_filename)."""
    given = request.query_params.get("filename")
    if given:
        return given
    header = request._request.headers.get("X-Filename", "").strip()
    extended = EXTENDED_VALUE.match(header)
    if extended:
        return unquote(extended.group(2), encoding=extended.group(1), errors="replace")
    try:
        text = header.encode("latin-1").decode("utf-8")
    except UnicodeError:  # not UTF-8 bytes: the Latin-1 reading is the right one
        return header
    return unquote(text, errors="replace") if "%" in text else text


def _parse_range(header: str, size: int) -> tuple[int, int] | None | str:
    """(start, end inclusive) for one satisfiable range; None to ignore; 'unsatisfiable'."""
    match = RANGE.match(header.strip())
    if not match:
        return None  # malformed or several ranges: serve the whole file (RFC 9110 allows it)
    first, last = match.groups()
    if first == "" and last == "":
        return None
    if first == "":
        length = int(last)
        if length == 0 or size == 0:  # nothing to select from an empty file
            return "unsatisfiable"
        return max(size - length, 0), size - 1
    start = int(first)
    if last and int(last) < start:
        return None  # an invalid range-spec: ignore the header
    if start >= size:
        return "unsatisfiable"
    end = int(last) if last else size - 1
    return start, min(end, size - 1)


def _iter_range(handle, start: int, length: int):
    chunk = settings.REGISTRY_STREAM_CHUNK_BYTES
    try:
        handle.seek(start)
        remaining = length
        while remaining > 0:
            data = handle.read(min(chunk, remaining))
            if not data:
                break
            remaining -= len(data)
            yield data
    finally:
        handle.close()


def download_filename(fmt: Format) -> str:
    if fmt.original_filename:
        return fmt.original_filename
    return f"{fmt.version.model.name}-v{fmt.version.number}.{fmt.kind}"


def download_response(request, fmt: Format) -> HttpResponse:
    """Stream the stored bytes of `fmt` as an attachment."""
    if not fmt.storage_key:
        raise NotFound(f"The '{fmt.kind}' format has no file yet.")
    response = _file_response(request, fmt)
    # Whoever holds the bytes can tell what the registry thought of them when they left.
    response["X-Registry-Format-Status"] = fmt.status
    # The bytes stream from storage for as long as the client takes: without the database.
    release_connection()
    return response


def attachment_download_response(request, attachment) -> HttpResponse:
    """Stream an attachment's stored bytes, always as a download (never shown inline), typed as
    the server decided (registry.introspection.ends.safe_content_type)."""
    response = _stored_file_response(
        request, key=attachment.storage_key, sha256=attachment.sha256, size=attachment.size,
        filename=attachment.name, content_type=attachment.content_type)
    release_connection()
    return response


def _file_response(request, fmt: Format) -> HttpResponse:
    return _stored_file_response(request, key=fmt.storage_key, sha256=fmt.sha256, size=fmt.size,
                                 filename=download_filename(fmt))


def _stored_file_response(request, *, key: str, sha256: str, size: int | None, filename: str,
                          content_type: str = "application/octet-stream") -> HttpResponse:
    etag = f'"{sha256}"' if sha256 else None
    if etag and none_match(request.headers.get("If-None-Match"), etag):
        response = HttpResponse(status=304)
        response["ETag"] = etag
        return response
    disposition = content_disposition_header(True, filename)
    redirect_to = storage.presigned_download_url(key, filename_header=disposition)
    if redirect_to:
        # The bytes come straight from the bucket (which honours Range itself); the web
        # process only checked who may read them. The URL expires in minutes.
        response = HttpResponseRedirect(redirect_to)
        response["Cache-Control"] = "private, no-store"
        if etag:
            response["ETag"] = etag
        return response
    size = size or 0
    byte_range = _parse_range(request.headers["Range"], size) if "Range" in request.headers else None
    if byte_range == "unsatisfiable":
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{size}"
        return response
    if byte_range is not None and request.headers.get("If-Range") not in (None, etag):
        byte_range = None  # the client's copy is stale: send the whole file
    try:
        handle = storage.open_for_download(key)  # a failing store: 503
    except FileNotFoundError:
        raise NotFound("The stored file is missing.") from None
    if byte_range is None:
        response = FileResponse(handle, content_type=content_type)
    else:
        start, end = byte_range
        response = StreamingHttpResponse(
            _iter_range(handle, start, end - start + 1), status=206, content_type=content_type
        )
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
        response["Content-Length"] = str(end - start + 1)
    response["Content-Disposition"] = disposition
    response["X-Content-Type-Options"] = "nosniff"
    response["Accept-Ranges"] = "bytes"
    response["Cache-Control"] = "private, no-transform"
    if etag:
        response["ETag"] = etag
    return response


class FileNegotiation(DefaultContentNegotiation):
    """The file endpoint answers with the stored bytes whatever `Accept` asks for (a client
    sending `Accept: application/octet-stream` is right to); its errors still render as JSON."""

    def select_renderer(self, request, renderers, format_suffix=None):
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except NotAcceptable:
            return renderers[0], renderers[0].media_type
