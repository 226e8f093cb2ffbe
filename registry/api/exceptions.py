"""One error shape for every failure: {"detail": message, "code": ..., "field": ...}.

A failing file store is no exception: 503 `storage_unavailable` with `Retry-After` (507
`storage_full` for a full disk), never a 500 with a traceback; nor is a database that does not
answer: 503 `database_unavailable` with `Retry-After` (registry/outage.py).
"""

from __future__ import annotations

import botocore.exceptions
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from registry import http_errors, outage, storage
from registry.errors import RegistryError


def _first_error(detail, prefix: str = ""):
    """The first (field, message) of a DRF ValidationError's nested detail."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = key if key != "non_field_errors" else ""
            field, message = _first_error(value, f"{prefix}.{name}" if prefix and name else (name or prefix))
            return field, message
    if isinstance(detail, list) and detail:
        for item in detail:
            if item:
                return _first_error(item, prefix)
    return prefix or None, str(detail)


def _unexpected_store_failure(exc):
    """An S3 error that reached the API without passing through registry.storage's request
    helpers (which translate and log it themselves): still a 503, logged in one line."""
    # Only botocore's own errors: a plain OSError here is not known to come from the store.
    if not isinstance(exc, (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError)):
        return None
    if not storage.is_store_failure(exc):
        return None
    storage.log_store_failure("request", "an object", exc)
    return storage.store_failure(exc, action="request")


def exception_handler(exc, context):
    request = context.get("request")
    database_down = outage.database_failure(exc, request)  # logged there, in one line
    cut_off = http_errors.incomplete_body(exc, request)  # logged there, in one line
    exc = database_down or cut_off or _unexpected_store_failure(exc) or exc
    if isinstance(exc, RegistryError):
        body = {"detail": exc.message, "code": exc.code}
        if exc.field:
            body["field"] = exc.field
        response = Response(body, status=exc.status_code)
        if getattr(exc, "retry_after", None):
            response["Retry-After"] = str(exc.retry_after)
        return outage.mark_logged(response) if database_down or cut_off else response
    if isinstance(exc, RequestDataTooBig):  # read by the JSON parser: a body over the limit
        return Response({"detail": http_errors.body_too_large_message(), "code": "body_too_large"},
                        status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, exceptions.ValidationError):
        field, message = _first_error(exc.detail)
        body = {"detail": f"{field}: {message}" if field else message, "code": "invalid", "errors": exc.detail}
        if field:
            body["field"] = field
        return Response(body, status=status.HTTP_400_BAD_REQUEST)
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(response.data, dict) and "detail" in response.data:
        response.data["code"] = getattr(response.data["detail"], "code", "error")
    return response
