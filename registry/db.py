"""The request's database connection, handed back before a long wait on the client.

The web process serves each request in a greenlet and borrows a connection from a small pool
(registry/gunicorn_conf.py, DATABASE_POOL_SIZE); a request keeps it until it ends. A request
that then waits minutes on its client (an upload's body arriving, a download's bytes being
read) would hold one of those few connections the whole time, and a dozen slow clients would
leave none for anyone else. Such requests give it back first; the next query borrows again.
"""

from __future__ import annotations

from django.conf import settings
from django.db import connection
from django.http import UnreadablePostError

from registry import http_errors, outage


def release_connection() -> None:
    """Return the connection to the pool (or close it, without a pool) unless a transaction
    is open on it; a kept connection (DATABASE_CONN_MAX_AGE, no pool) is left as it is."""
    if not connection.in_atomic_block:
        connection.close_if_unusable_or_obsolete()


class BodyBeforeDatabaseMiddleware:
    """Read a JSON or form body whole before anything borrows a database connection (a token
    or a session is looked up before a view parses its body): a client that sends it slowly
    then holds a greenlet, not a connection. Such bodies are read into memory by their
    parsers anyway, and only up to DATA_UPLOAD_MAX_MEMORY_SIZE (past it the parser answers 413
    unread); file uploads stream, and release the connection themselves."""

    BUFFERED = ("application/json", "application/x-www-form-urlencoded")

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.content_type in self.BUFFERED and self._within_limit(request):
            try:
                request.body  # noqa: B018 - read and kept by the request for its parser
            except UnreadablePostError as exc:
                error = http_errors.incomplete_body(exc, request)
                return outage.mark_logged(http_errors.error_page(request, error.status_code, error.message,
                                                                 error.code))
        return self.get_response(request)

    @staticmethod
    def _within_limit(request) -> bool:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return False
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return 0 < length and (limit is None or length <= limit)
