"""One error shape for every failure: {"detail": message, "code": ..., "field": ...}."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

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


def exception_handler(exc, context):
    if isinstance(exc, RegistryError):
        body = {"detail": exc.message, "code": exc.code}
        if exc.field:
            body["field"] = exc.field
        return Response(body, status=exc.status_code)
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
