"""Errors answered before or beside the views, in each door's shape: the API's JSON
`{"detail", "code"}` under /api/, the dashboard's page elsewhere.

- a NUL character in the path, the query string or a header (PostgreSQL cannot compare or
  store text with one): 400, before any view runs;
- Django's own 400s (a body over DATA_UPLOAD_MAX_MEMORY_SIZE is 413, too many form fields,
  a malformed multipart body...), through `handler400`;
- an /api/ path that matches no endpoint: 404 JSON, not the dashboard's page;
- a request body that stopped arriving (the client went away, or sent nothing for the web
  process's idle time) or ended before its Content-Length: 408 or 400, logged in one line as a
  client disconnect, through `incomplete_body`.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponsePermanentRedirect, JsonResponse, UnreadablePostError
from django.shortcuts import render
from django.urls import Resolver404, resolve
from django.views.decorators.csrf import csrf_exempt

from registry.errors import BodyIncomplete, RequestTimeout

logger = logging.getLogger(__name__)

NUL_MESSAGE = "The address contains a NUL character (%00), which is not allowed in a path or a query parameter."


def is_api(request) -> bool:
    return request.path_info.startswith("/api/")


def json_error(status: int, detail: str, code: str, *, field: str | None = None) -> JsonResponse:
    """The API's error body, for answers made outside DRF (registry/api/exceptions.py is the
    same shape for errors raised in views)."""
    body = {"detail": detail, "code": code}
    if field:
        body["field"] = field
    return JsonResponse(body, status=status)


def body_too_large_message() -> str:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return (f"The request body is larger than {limit:,} bytes ({limit / 1024**2:g} MiB), the most a JSON body "
            f"or a form may be (REGISTRY_MAX_JSON_BODY_BYTES); send fewer items per request.")


def incomplete_body(exc: BaseException, request=None) -> BodyIncomplete | None:
    """The error to answer when the client stopped sending the request body, else None: reading
    it failed (the connection was reset, or idle past the web process's timeout), or it ended
    before its Content-Length (the service that streamed it raises BodyIncomplete). A client
    that went away is no server error: one warning line, no traceback."""
    where = f"{request.method} {request.path}" if request is not None else "a request"
    if isinstance(exc, BodyIncomplete):
        error, cause = exc, "the body ended before its Content-Length"
    elif isinstance(exc, UnreadablePostError):
        causes, cause = [], exc
        while cause is not None and len(causes) < 10:  # Django re-raises its own error once more
            causes.append(cause)
            cause = cause.__cause__
        if any(isinstance(cause, TimeoutError) for cause in causes):
            error = RequestTimeout("The request body stopped arriving: nothing was received for too long, "
                                   "so the connection was closed and nothing was stored.")
        else:
            error = BodyIncomplete("The request body ended before its declared length; nothing was stored.")
        cause = str(exc) or "connection closed"
    else:
        return None
    what = "client idle" if isinstance(error, RequestTimeout) else "client disconnected"
    logger.warning("%s: %s stopped sending its body (%s); answered %s, nothing stored", what, where, cause,
                   error.status_code)
    return error


def error_page(request, status: int, message: str, code: str = "invalid"):
    if is_api(request):
        return json_error(status, message, code)
    return render(request, "400.html", {"message": message, "status": status}, status=status)


class RefuseNulMiddleware:
    """400 for a NUL in the path, the query string or a header (RFC 9110 lets a server reject
    those), whatever the view. Form and JSON bodies are checked where they are parsed (forms'
    CharField, the API's JSON parser, the services' validators)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if "\x00" in request.path_info or _query_has_nul(request):
            return error_page(request, 400, NUL_MESSAGE)
        header = _header_with_nul(request)
        if header:
            return error_page(request, 400, f"The {header} header contains a NUL character, which HTTP does not allow.")
        return self.get_response(request)


def _header_with_nul(request) -> str | None:
    for key, value in request.META.items():
        if (key.startswith("HTTP_") or key in ("CONTENT_TYPE", "CONTENT_LENGTH")) and isinstance(value, str) \
                and "\x00" in value:
            return key.removeprefix("HTTP_").replace("_", "-").title()
    return None


def _query_has_nul(request) -> bool:
    if "%00" not in request.META.get("QUERY_STRING", "") and "\x00" not in request.META.get("QUERY_STRING", ""):
        return False
    return any("\x00" in key or any("\x00" in value for value in values) for key, values in request.GET.lists())


def bad_request(request, exception=None):
    """`handler400`: Django's own refusals, in the door's shape; a body over the limit is 413."""
    if isinstance(exception, RequestDataTooBig):
        return error_page(request, 413, body_too_large_message(), "body_too_large")
    return error_page(request, 400, "The request could not be read (malformed or too many fields).", "bad_request")


@csrf_exempt
def api_not_found(request, *args, **kwargs):
    """The last /api/ route: a path no endpoint matches is 404 in the API's shape. A GET that
    only lacks the trailing slash is redirected, as APPEND_SLASH does for other paths."""
    path = request.path_info
    if not path.endswith("/"):
        try:
            match = resolve(path + "/")
        except Resolver404:
            match = None
        if match is not None and match.func is not api_not_found:
            if request.method in ("GET", "HEAD"):
                query = request.META.get("QUERY_STRING", "")
                return HttpResponsePermanentRedirect(request.path + "/" + (f"?{query}" if query else ""))
            return json_error(404, f"Not found. Did you mean {request.path}/ (with a trailing slash)?", "not_found")
    return json_error(404, "Not found.", "not_found")
