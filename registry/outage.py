"""The database unreachable: refused, restarting, out of connection slots, a dropped link.

Django's OperationalError and InterfaceError are the cases. Neither door answers them with a
500 and a traceback: the API answers 503 `database_unavailable` with `Retry-After` in its
error shape (registry/api/exceptions.py calls `database_failure`), the dashboard a 503 page
like its 403 and 404 pages, rendered without the session or the user (both live in the
database). Each failed request writes one log line naming the cause; `/readyz` reports the
database as well, and `/healthz` does not look at it.
"""

from __future__ import annotations

import logging
import sys

from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse
from django.template import loader
from django.views import defaults

from registry import http_errors
from registry.errors import DatabaseUnavailable
from registry.logs import PoolConnectErrors

logger = logging.getLogger(__name__)

DATABASE_ERRORS = (OperationalError, InterfaceError)
MESSAGE = "The registry's database is not answering; try again in a moment."
API_PREFIX = "/api/"


def describe(exc: BaseException) -> str:
    """`Type: message` on one line (psycopg's messages span several). No connection from the
    web process's pool in time: also why the pool's last attempt to connect failed."""
    text = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
    if type(exc.__cause__).__name__ == "PoolTimeout" and PoolConnectErrors.last:
        text += f"; the pool's last attempt to connect: {PoolConnectErrors.last}"
    return text


def database_failure(exc: BaseException, request=None) -> DatabaseUnavailable | None:
    """The error to answer for `exc` if it is the database failing (logged here, once), else None."""
    if not isinstance(exc, DATABASE_ERRORS):
        return None
    where = f"{request.method} {request.path}" if request is not None else "a request"
    logger.error("database unavailable (%s): %s answered 503", describe(exc), where)
    return DatabaseUnavailable(MESSAGE)


def mark_logged(response: HttpResponse) -> HttpResponse:
    """Django's request logger would add a second line ("Service Unavailable: /path")."""
    response._has_been_logged = True
    return response


def outage_response(request, error: DatabaseUnavailable) -> HttpResponse:
    if request.path.startswith(API_PREFIX):
        response = JsonResponse({"detail": error.message, "code": error.code}, status=error.status_code)
    else:
        # No RequestContext: its processors would read the session and the user again.
        again = request.get_full_path() if request.method == "GET" else None
        page = loader.render_to_string(
            "503.html", {"detail": error.message, "retry_after": error.retry_after, "again": again}
        )
        response = HttpResponse(page, status=error.status_code)
    response["Retry-After"] = str(error.retry_after)
    response["Cache-Control"] = "no-store"
    return mark_logged(response)


class DatabaseOutageMiddleware:
    """Answers a view that failed on the database (the API's views answer through DRF's
    exception handler first; this covers the dashboard and anything else)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        error = database_failure(exception, request)
        return outage_response(request, error) if error is not None else None


def server_error(request):
    """handler500: a database failure outside any view (a middleware saving the session) still
    answers 503; anything else is the usual 500, in the API's JSON shape under /api/ (a client
    parsing the API's errors gets one it can read) and the dashboard's page elsewhere."""
    error = database_failure(sys.exc_info()[1], request)
    if error is not None:
        return outage_response(request, error)
    if http_errors.is_api(request):
        return http_errors.json_error(500, "The registry failed to answer this request; the error is in its log.",
                                      "server_error")
    return defaults.server_error(request)
