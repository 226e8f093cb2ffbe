"""What every request pays, done once where it cannot change: the Content-Security-Policy
header (registry/csp.py), the content negotiation of the Accept headers clients send
(registry/api/negotiation.py), the context a token's request names (read with its token), the
token read from the environ without copying every header, an input serializer's fields, and
the dashboard's message storage (made on first use). Each answers what the library's own work
answers."""

from __future__ import annotations

import pytest
from csp.constants import NONCE
from csp.middleware import CSPMiddleware as DjangoCSPMiddleware
from django.contrib import messages
from django.http import HttpResponse
from django.test import RequestFactory
from django.utils.functional import empty

from dashboard.middleware import LazyMessageMiddleware
from registry import selectors, services
from registry.csp import CSPMiddleware
from tests.conftest import client_for, token_for

pytestmark = pytest.mark.django_db


def _django_csp(path="/api/v1/contexts/") -> HttpResponse:
    request = RequestFactory().get(path)
    middleware = DjangoCSPMiddleware(lambda request: HttpResponse())
    middleware.process_request(request)
    return middleware.process_response(request, HttpResponse())


def test_an_api_answer_carries_the_policy_django_csp_builds(users):
    response = client_for(users["viewer"]).get("/api/v1/contexts/")
    assert response.status_code == 200
    assert response["Content-Security-Policy"] == _django_csp()["Content-Security-Policy"]
    assert "Content-Security-Policy-Report-Only" not in response


def test_the_policy_follows_the_settings(settings, users):
    client = client_for(users["viewer"])
    first = client.get("/api/v1/contexts/")["Content-Security-Policy"]
    settings.CONTENT_SECURITY_POLICY = {"DIRECTIVES": {"default-src": ["'none'"]}}
    settings.CONTENT_SECURITY_POLICY_REPORT_ONLY = {"DIRECTIVES": {"img-src": ["'self'"]}}
    changed = client.get("/api/v1/contexts/")
    assert changed["Content-Security-Policy"] == "default-src 'none'" != first
    expected = _django_csp()
    assert changed["Content-Security-Policy"] == expected["Content-Security-Policy"]
    assert changed["Content-Security-Policy-Report-Only"] == expected["Content-Security-Policy-Report-Only"]
    assert "img-src 'self'" in changed["Content-Security-Policy-Report-Only"]


def test_a_response_that_changes_its_policy_goes_through_django_csp():
    middleware = CSPMiddleware(lambda request: HttpResponse())
    request = RequestFactory().get("/docs/")
    middleware.process_request(request)
    nonce = str(request.csp_nonce)  # a page that asked for a nonce
    response = HttpResponse()
    response._csp_update = {"worker-src": ["blob:"], "script-src": [NONCE]}
    response = middleware.process_response(request, response)
    assert f"'nonce-{nonce}'" in response["Content-Security-Policy"]
    assert "worker-src blob:" in response["Content-Security-Policy"]
    exempt = HttpResponse()
    exempt._csp_exempt = True
    assert "Content-Security-Policy" not in middleware.process_response(RequestFactory().get("/"), exempt)
    kept = HttpResponse(headers={"Content-Security-Policy": "sandbox"})
    assert middleware.process_response(RequestFactory().get("/"), kept)["Content-Security-Policy"] == "sandbox"


def test_a_nonce_asked_for_after_the_header_is_written_fails_loudly():
    from csp.exceptions import CSPNonceError

    middleware = CSPMiddleware(lambda request: HttpResponse())
    request = RequestFactory().get("/")
    middleware.process_request(request)
    middleware.process_response(request, HttpResponse())
    with pytest.raises(CSPNonceError):
        str(request.csp_nonce)


@pytest.mark.parametrize("accept, status", [
    (None, 200), ("*/*", 200), ("application/json", 200), ("application/json; indent=2", 200),
    ("text/html, application/json;q=0.9", 200), ("text/html", 406), ("application/xml", 406),
])
def test_the_accept_header_is_negotiated_as_drf_does(users, accept, status):
    client = client_for(users["viewer"])
    headers = {} if accept is None else {"HTTP_ACCEPT": accept}
    response = client.get("/api/v1/contexts/", **headers)
    assert response.status_code == status, response.content
    if status == 200:
        assert response["Content-Type"] == "application/json"
        assert response.json()["results"][0]["slug"] == "acme"
    if accept == "application/json; indent=2":
        assert response.content.startswith(b"{\n  ")  # DRF's negotiation: the parameter reaches the renderer


def test_a_format_override_is_negotiated_as_drf_does(users):
    client = client_for(users["viewer"])
    assert client.get("/api/v1/contexts/", {"format": "json"}).status_code == 200
    assert client.get("/api/v1/contexts/", {"format": "xml"}).status_code == 404


def test_a_token_requests_context_reads_whole_when_its_fields_are_read(context, users, django_assert_num_queries):
    """The context a token's request names is known from the slugs read with the token (its id
    and slug): a field it did not read loads when read, and one it may not see is not found."""
    from rest_framework.test import APIRequestFactory
    from rest_framework.views import APIView

    from registry.api.authentication import BearerTokenAuthentication
    from registry.errors import NotFound

    plain = token_for(users["viewer"])
    request = APIView().initialize_request(APIRequestFactory().get("/", HTTP_AUTHORIZATION=f"Bearer {plain}"))
    user, _ = BearerTokenAuthentication().authenticate(request)
    with django_assert_num_queries(0):
        found = selectors.context_get(user, "acme")
        assert (found.pk, found.slug) == (context.pk, "acme")
    assert (found.name, found.description, found.created_at) == (context.name, context.description, context.created_at)
    with pytest.raises(NotFound):
        selectors.context_get(user, "other")  # it exists; the viewer holds no role there
    with pytest.raises(NotFound):
        selectors.context_get(user, "ACME")  # slugs are matched exactly, as the query matches them
    services.membership_remove(actor=None, context=context, username="viewer")
    later = APIView().initialize_request(APIRequestFactory().get("/", HTTP_AUTHORIZATION=f"Bearer {plain}"))
    user, _ = BearerTokenAuthentication().authenticate(later)
    with pytest.raises(NotFound):
        selectors.context_get(user, "acme")  # the next request reads its grants again


@pytest.mark.parametrize("header", ["Bearer {plain}", "bearer {plain}", "  Bearer   {plain}  "])
def test_a_token_is_read_from_the_environ_without_copying_the_headers(users, header):
    from rest_framework.test import APIRequestFactory
    from rest_framework.views import APIView

    from registry.api.authentication import BearerTokenAuthentication

    plain = token_for(users["viewer"])
    request = APIView().initialize_request(APIRequestFactory().get("/", HTTP_AUTHORIZATION=header.format(plain=plain)))
    user, _ = BearerTokenAuthentication().authenticate(request)
    assert user == users["viewer"]
    assert "headers" not in request._request.__dict__  # (HttpHeaders, built on first read of request.headers)


@pytest.mark.parametrize("header, expected", [
    ("", None), ("Basic abc", None), ("Bearer", "Invalid Authorization header"), ("Bearer a b", "Invalid Authorization header"),
    ("Bearer caf\u00e9", "Invalid token."), ("Bearer nope", "Invalid or revoked token."),
])
def test_a_malformed_authorization_header_is_refused_as_before(db, header, expected):
    from rest_framework.exceptions import AuthenticationFailed
    from rest_framework.test import APIRequestFactory
    from rest_framework.views import APIView

    from registry.api.authentication import BearerTokenAuthentication

    request = APIView().initialize_request(APIRequestFactory().get("/", HTTP_AUTHORIZATION=header))
    if expected is None:
        assert BearerTokenAuthentication().authenticate(request) is None
    else:
        with pytest.raises(AuthenticationFailed, match=expected):
            BearerTokenAuthentication().authenticate(request)


def test_an_input_serializer_builds_its_fields_once(users, monkeypatch):
    from rest_framework import serializers as drf

    from registry.api import serializers as s

    built = []
    get_fields = drf.Serializer.get_fields
    monkeypatch.setattr(drf.Serializer, "get_fields", lambda self: built.append(type(self)) or get_fields(self))
    client = client_for(users["editor"])
    for n in range(3):
        answer = client.post("/api/v1/contexts/acme/models/", {"name": f"churn {n}", "tags": ["a"]}, format="json")
        assert answer.status_code == 201, answer.content
        patched = client.patch(f"/api/v1/models/{answer.json()['id']}/", {"description": f"v{n}"}, format="json")
        assert patched.status_code == 200 and patched.json()["description"] == f"v{n}"
        assert patched.json()["name"] == f"churn {n}" and patched.json()["tags"] == ["a"]  # partial: kept
    assert built.count(s.ModelCreateSerializer) <= 2  # once whole, once partial (none when built before)


@pytest.mark.parametrize("body, errors", [
    ({}, {"name": ["This field is required."]}),
    ({"name": ""}, {"name": ["This field may not be blank."]}),
    ({"name": None, "description": 5}, {"name": ["This field may not be null."]}),
    ({"name": ["x"], "owner": {}}, {"name": ["Not a valid string."], "owner": ["Not a valid string."]}),
    ({"name": True, "task": 7}, {"name": ["Not a valid string."]}),
])
def test_an_input_serializer_answers_as_a_new_one(users, body, errors):
    from registry.api import serializers as s

    fresh = s.ModelCreateSerializer(data=body)
    assert not fresh.is_valid()
    assert fresh.errors == errors
    for _ in range(2):  # the same serializer answers every request, and keeps nothing of the last
        answer = client_for(users["editor"]).post("/api/v1/contexts/acme/models/", body, format="json")
        assert answer.status_code == 400
        assert answer.json()["errors"] == errors and answer.json()["code"] == "invalid"
        field, [message, *_] = next(iter(errors.items()))
        assert answer.json()["detail"] == f"{field}: {message}"


def test_an_api_request_makes_no_message_storage_and_keeps_the_cookie(users):
    """The dashboard's messages (a cookie) are made into a storage only when a message is added
    or read: an API request leaves them as they are for the next page."""
    client = client_for(users["viewer"])
    client.cookies["messages"] = "kept-as-it-is"
    response = client.get("/api/v1/contexts/")
    assert response.status_code == 200
    assert response.wsgi_request._messages._wrapped is empty
    assert "messages" not in response.cookies
    assert client.cookies["messages"].value == "kept-as-it-is"


def test_a_message_added_on_one_page_is_shown_on_the_next_once():
    middleware = LazyMessageMiddleware(lambda request: HttpResponse())
    factory = RequestFactory()
    first = factory.post("/models/new/")
    first.session = {}
    middleware.process_request(first)
    messages.success(first, "Model created.")
    response = middleware.process_response(first, HttpResponse())
    cookie = response.cookies["messages"].value
    assert cookie

    second = factory.get("/models/")
    second.session, second.COOKIES["messages"] = {}, cookie
    middleware.process_request(second)
    assert [str(message) for message in messages.get_messages(second)] == ["Model created."]
    cleared = middleware.process_response(second, HttpResponse())
    assert cleared.cookies["messages"].value == ""  # read once: the cookie is deleted
