"""Sign-in failures are limited per user and per address (django-axes): past the limit the
sign-in page says so (429, Retry-After), even to the right password, until the lockout ends.
The API takes no password, so it is no way around the limit."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "right-pass-123"


@pytest.fixture
def alice():
    user = UserFactory(username="alice")
    user.set_password(PASSWORD)
    user.save(update_fields=["password"])
    return user


def sign_in(username: str, password: str, *, address: str = "203.0.113.7", path: str = "/login/", **extra):
    return Client(REMOTE_ADDR=address, **extra).post(path, {"username": username, "password": password})


def test_forty_wrong_passwords_in_a_row_are_not_all_answered_normally(settings, alice):
    limit = settings.AXES_FAILURE_LIMIT

    answers = [sign_in("alice", f"guess-{n}").status_code for n in range(40)]

    assert answers[:limit - 1] == [200] * (limit - 1)  # the form again, with its error
    assert set(answers[limit:]) == {429}


def test_the_locked_out_page_says_what_happened_and_when_to_retry(settings, alice):
    for n in range(settings.AXES_FAILURE_LIMIT):
        sign_in("alice", f"guess-{n}")

    response = sign_in("alice", PASSWORD)  # the right password too, while locked out

    assert response.status_code == 429
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    assert response["Retry-After"] == str(minutes * 60)
    page = response.content.decode()
    assert "<h1>Sign in</h1>" in page and '<link rel="stylesheet"' in page  # the sign-in page itself
    assert ("Too many failed sign-ins for this account or from this address. "
            f"Try again in {minutes} minutes.") in page
    assert "_auth_user_id" not in response.client.session


def test_failures_count_per_user_from_any_address(settings, alice):
    for n in range(settings.AXES_FAILURE_LIMIT):
        sign_in("alice", f"guess-{n}", address=f"198.51.100.{n + 1}")

    assert sign_in("alice", PASSWORD, address="192.0.2.200").status_code == 429
    assert sign_in("bob", "whatever", address="192.0.2.200").status_code == 200  # others are not locked


def test_failures_count_per_address_for_any_user(settings, alice):
    for n in range(settings.AXES_FAILURE_LIMIT):
        sign_in(f"user{n}", "guess", address="198.51.100.9")

    assert sign_in("alice", PASSWORD, address="198.51.100.9").status_code == 429
    assert sign_in("alice", PASSWORD, address="198.51.100.10").status_code == 302  # alice herself is fine


def test_the_lockout_ends_after_the_cool_off(settings, alice):
    from axes.models import AccessAttempt

    for n in range(settings.AXES_FAILURE_LIMIT):
        sign_in("alice", f"guess-{n}")
    assert sign_in("alice", PASSWORD).status_code == 429

    AccessAttempt.objects.update(attempt_time=timezone.now() - settings.AXES_COOLOFF_TIME - timedelta(seconds=1))

    assert sign_in("alice", PASSWORD).status_code == 302


def test_a_successful_sign_in_forgets_earlier_failures(settings, alice):
    for n in range(settings.AXES_FAILURE_LIMIT - 1):
        sign_in("alice", f"guess-{n}")
    assert sign_in("alice", PASSWORD).status_code == 302
    for n in range(settings.AXES_FAILURE_LIMIT - 1):
        sign_in("alice", f"guess-{n}")
    assert sign_in("alice", PASSWORD).status_code == 302


def test_the_admin_sign_in_is_limited_too(settings, alice):
    for n in range(settings.AXES_FAILURE_LIMIT):
        sign_in("alice", f"guess-{n}", path="/admin/login/")
    assert sign_in("alice", PASSWORD, path="/admin/login/").status_code == 429


def test_behind_the_proxy_the_address_is_the_one_the_proxy_saw(settings, alice):
    settings.REGISTRY_BEHIND_PROXY = True
    settings.SECURE_PROXY_SSL_HEADER = None
    for n in range(settings.AXES_FAILURE_LIMIT):
        # Every request comes from the proxy; a client cannot pick its address by a header it sends.
        sign_in(f"user{n}", "guess", address="10.0.0.2", HTTP_X_FORWARDED_FOR=f"1.2.3.{n}, 198.51.100.9")

    assert sign_in("alice", PASSWORD, address="10.0.0.2",
                   HTTP_X_FORWARDED_FOR="198.51.100.9").status_code == 429
    assert sign_in("alice", PASSWORD, address="10.0.0.2",
                   HTTP_X_FORWARDED_FOR="198.51.100.10").status_code == 302


def test_the_api_takes_no_password(alice):
    """No password-based API authentication exists, so the API cannot be used to guess one."""
    basic = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()

    response = Client().get("/api/v1/contexts/", HTTP_AUTHORIZATION=f"Basic {basic}")

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
