"""API request rates: per token (a browser session per user), 429 in the API's error shape with
Retry-After; rates from settings (environment variables); counts in the shared cache."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from registry.api.throttling import parse_rate

from tests.conftest import _free_port, client_for

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def rate(settings):
    def set_rate(scope: str, value: str) -> None:
        settings.REST_FRAMEWORK = {
            **settings.REST_FRAMEWORK,
            "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], scope: value},
        }
    return set_rate


def test_a_token_past_its_rate_gets_429_with_retry_after(users, rate):
    rate("token", "5/minute")
    token = client_for(users["viewer"])

    answers = [token.get("/api/v1/contexts/").status_code for _ in range(6)]

    assert answers == [200] * 5 + [429]
    refused = token.get("/api/v1/contexts/")
    assert refused.status_code == 429
    body = refused.json()
    assert body["code"] == "throttled" and "throttled" in body["detail"].lower()
    assert set(body) == {"detail", "code"}
    assert 1 <= int(refused["Retry-After"]) <= 60
    # Counted per token: the same user's other token, and other users, go on.
    assert client_for(users["viewer"]).get("/api/v1/contexts/").status_code == 200
    assert client_for(users["editor"]).get("/api/v1/contexts/").status_code == 200


def test_a_browser_session_is_counted_per_user(users, rate):
    rate("token", "3/minute")
    browser = APIClient()
    browser.force_login(users["viewer"])

    assert [browser.get("/api/v1/contexts/").status_code for _ in range(4)] == [200, 200, 200, 429]


def test_the_default_rates_leave_room_for_normal_clients(settings):
    rates = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    count, seconds = parse_rate(rates["token"])
    assert count / seconds * 60 >= 1000  # thousands a minute
    assert parse_rate(rates["tamper_report"]) == (10, 3600)


@pytest.mark.subprocess
def test_rates_come_from_the_environment(tmp_path):
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")},
           "DJANGO_SETTINGS_MODULE": "registry.settings", "REGISTRY_DATA_DIR": str(tmp_path),
           "REGISTRY_API_RATE": "50/second", "REGISTRY_TAMPER_REPORT_RATE": "3/day",
           "REDIS_URL": "redis://127.0.0.1:6379/3"}
    code = ("import json; from django.conf import settings; import django; django.setup(); "
            "print(json.dumps([settings.REST_FRAMEWORK['DEFAULT_THROTTLE_RATES'], settings.CACHES['default']]))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    rates, cache = json.loads(result.stdout)
    assert rates == {"token": "50/second", "tamper_report": "3/day"}
    # With a Redis, every web process shares the counts.
    assert cache["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    assert cache["LOCATION"] == "redis://127.0.0.1:6379/3"


def test_a_cache_that_does_not_answer_lets_requests_through(settings, users, rate, caplog):
    rate("token", "1/minute")
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": f"redis://127.0.0.1:{_free_port()}/0",
                                   "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1}}}
    token = client_for(users["viewer"])

    assert [token.get("/api/v1/contexts/").status_code for _ in range(3)] == [200, 200, 200]
    warnings = [r for r in caplog.records if r.name == "registry.api.throttling"]
    assert len(warnings) == 3 and warnings[0].levelno == logging.WARNING and warnings[0].exc_info is None
    assert "throttle token not applied, the cache failed: ConnectionError" in warnings[0].getMessage()


def test_counts_are_shared_through_redis(settings, users, rate):
    """The production cache: every web process increments the same counter."""
    import uuid

    import redis

    url = os.environ.get("REDIS_URL")
    if not url:
        if os.environ.get("CI") == "true":
            pytest.fail("CI runs with REDIS_URL")
        pytest.skip("needs Redis (REDIS_URL)")
    prefix = f"registry-test-{uuid.uuid4().hex[:12]}"
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": url, "KEY_PREFIX": prefix}}
    rate("token", "4/minute")
    token = client_for(users["viewer"])
    try:
        assert [token.get("/api/v1/contexts/").status_code for _ in range(5)] == [200] * 4 + [429]
        server = redis.Redis.from_url(url)
        keys = server.keys(f"{prefix}:*")
        assert len(keys) == 1 and int(server.get(keys[0])) == 5
        assert 0 < server.ttl(keys[0]) <= 65  # the window's counter expires by itself
    finally:
        server = redis.Redis.from_url(url)
        for key in server.keys(f"{prefix}:*"):
            server.delete(key)


def test_a_process_asks_the_cache_once_per_share_of_the_rate(users, rate, monkeypatch):
    """At 3000 an hour a process takes 30 requests at a time from the shared counter: the
    cache is asked once for 30 requests, not on every request. (Hours and days: no window
    ends during the test.)"""
    from registry.api import throttling

    asked = []
    count = throttling._count
    monkeypatch.setattr(throttling, "_count", lambda key, ttl, n: asked.append(n) or count(key, ttl, n))
    rate("token", "3000/hour")
    token = client_for(users["viewer"])

    assert {token.get("/api/v1/contexts/").status_code for _ in range(30)} == {200}
    assert asked == [30]
    assert token.get("/api/v1/contexts/").status_code == 200
    assert asked == [30, 30]


def test_shares_never_let_a_caller_past_its_rate(users, rate, monkeypatch):
    """Three web processes (each its own shares) serving one token at 250 a day (shares of 2):
    together they allow at most 250, and refuse at most a share per process early."""
    from registry.api import throttling

    processes = [throttling._Shares() for _ in range(3)]
    rate("token", "250/day")
    token = client_for(users["viewer"])
    answers = []
    for i in range(300):
        monkeypatch.setattr(throttling, "_shares", processes[i % 3])
        answers.append(token.get("/api/v1/contexts/").status_code)

    allowed = answers.count(200)
    assert 250 - 3 * 2 <= allowed <= 250
    assert set(answers) == {200, 429}
    assert 429 not in answers[:240] and answers[-20:] == [429] * 20


def test_a_share_ends_with_its_window():
    from registry.api.throttling import _Shares

    shares = _Shares()
    shares.add("throttle:token:token:1:60:100", time.time() - 1, 5)  # a window that is over
    shares.add("throttle:token:token:1:60:101", time.time() + 60, 2)

    assert not shares.take_one("throttle:token:token:1:60:100")  # dropped with its window
    assert [shares.take_one("throttle:token:token:1:60:101") for _ in range(3)] == [True, True, False]
