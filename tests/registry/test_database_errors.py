"""Database errors met in the middle of a request (a dropped connection: InterfaceError; out of
connection slots: OperationalError) answer 503 at both doors, logged in one line. The real
outage (a web process whose database refuses it) is tests/deploy/test_database_outage.py."""

from __future__ import annotations

import logging

import pytest
from django.db import InterfaceError, OperationalError
from django.test import Client

pytestmark = pytest.mark.django_db


def dropped(*args, **kwargs):
    raise InterfaceError("connection already closed")


def no_slots(*args, **kwargs):
    raise OperationalError('FATAL:  sorry, too many clients already\n')


def outage_records(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name in ("registry.outage", "django.request", "registry.health")]


def test_api_answers_503_on_a_dropped_connection(clients, monkeypatch, caplog):
    monkeypatch.setattr("registry.api.authentication._token_by_hash", dropped)

    response = clients["viewer"].get("/api/v1/contexts/")

    assert response.status_code == 503
    assert response["Retry-After"] == "10"
    assert response.json() == {"detail": "The registry's database is not answering; try again in a moment.",
                               "code": "database_unavailable"}
    records = outage_records(caplog)
    assert len(records) == 1 and records[0].exc_info is None
    assert records[0].getMessage() == ("database unavailable (InterfaceError: connection already closed): "
                                       "GET /api/v1/contexts/ answered 503")


def test_dashboard_answers_the_503_page(users, monkeypatch, caplog):
    browser = Client()
    browser.force_login(users["viewer"])
    monkeypatch.setattr("registry.selectors.context_list", no_slots)

    response = browser.get("/")

    assert response.status_code == 503
    assert response["Retry-After"] == "10"
    page = response.content.decode()
    assert "<h1>Database unavailable</h1>" in page and 'href="/"' in page
    assert "Sign out" not in page  # rendered without the user, who lives in the database
    records = outage_records(caplog)
    assert len(records) == 1
    assert "OperationalError: FATAL: sorry, too many clients already" in records[0].getMessage()


class FailingMiddleware:
    """Fails outside any view, as SessionMiddleware does when it cannot save the session."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        self.get_response(request)
        raise OperationalError("server closed the connection unexpectedly")


def test_a_failure_outside_the_views_still_answers_503(settings, users, caplog):
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, f"{__name__}.FailingMiddleware"]

    response = Client(raise_request_exception=False).get("/login/")

    assert response.status_code == 503
    assert "<h1>Database unavailable</h1>" in response.content.decode()
    assert len(outage_records(caplog)) == 1


def test_other_errors_stay_500(settings, caplog):
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, f"{__name__}.BrokenMiddleware"]

    response = Client(raise_request_exception=False).get("/login/")

    assert response.status_code == 500
    assert not [r for r in caplog.records if r.name == "registry.outage"]


def test_an_api_500_is_json(settings, caplog):
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, f"{__name__}.BrokenMiddleware"]

    response = Client(raise_request_exception=False).get("/api/v1/contexts/")

    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "The registry failed to answer this request; the error is in its log.",
                               "code": "server_error"}


class BrokenMiddleware(FailingMiddleware):
    def __call__(self, request):
        raise ValueError("a bug")
