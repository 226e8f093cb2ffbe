"""Every URL of the dashboard and the API, with each of its path values replaced by one that
names nothing (malformed, out of any column's range, or well-formed and unknown), answers a
4xx to every method, signed in as the context's admin: never a 500. The URL list is read from
Django's resolver, so a URL added later is covered without being named here."""

from __future__ import annotations

import re
import uuid

import pytest
from django.test import Client
from django.urls import get_resolver
from django.urls.resolvers import URLResolver

from tests.conftest import client_for

pytestmark = [pytest.mark.django_db, pytest.mark.slow]  # (some 2,000 requests: not in `make test-fast`)

# Path values each parameter is tried with, by converter.
BAD = {
    "int": ["0", "99999999999999999999999", "2147483648", "9223372036854775808"],
    "str": ["abc", "0" * 40, str(uuid.UUID(int=1)), "6a1d2b7e-0000-4000-8000-00000000000z", "x" * 2000, "%E2%80%AE"],
    "slug": ["no-such-context", "x" * 300],
    "path": ["abc"],
}


def _patterns(patterns, prefix=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            if not str(pattern.pattern).startswith("admin/"):  # Django's own admin
                yield from _patterns(pattern.url_patterns, prefix + str(pattern.pattern))
        elif "<" in str(pattern.pattern):
            yield prefix + str(pattern.pattern)


def _urls(valid: dict) -> list[str]:
    """Each pattern with one parameter bad at a time and the others valid."""
    urls = []
    for route in _patterns(get_resolver().url_patterns):
        params = re.findall(r"<(?:(\w+):)?(\w+)>", route)
        for position, (converter, _name) in enumerate(params):
            for bad in BAD.get(converter or "str", BAD["str"]):
                index = 0

                def fill(match):
                    nonlocal index
                    value = bad if index == position else valid.get(match.group(2), "x")
                    index += 1
                    return value

                filled = re.sub(r"<(?:(\w+):)?(\w+)>", fill, route)
                urls.append("/" + filled)
    return urls


def test_no_url_answers_500_to_a_path_value_that_names_nothing(users, context, model, version):
    valid = {"ctx": context.slug, "model_id": str(model.id), "number": str(version.number), "kind": "pkl",
             "alias": "production", "name": "x"}
    urls = _urls(valid)
    assert len(urls) > 300  # every route of both, not a few
    browser = Client(raise_request_exception=False)
    browser.force_login(users["admin"])
    api = client_for(users["admin"])
    api.raise_request_exception = False
    failures = []
    for url in urls:
        for client in (browser, api) if url.startswith("/api/") else (browser,):
            for method in ("get", "post", "put", "patch", "delete"):
                response = getattr(client, method)(url)
                if response.status_code >= 500:
                    failures.append((method.upper(), url[:120], response.status_code))
    assert failures == []
