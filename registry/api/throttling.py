"""Request rates for the API (DRF throttles): per token, and per scope for the endpoints that
cause work out of proportion to the request (`throttle_scope` on the view).

Rates are DRF's "N/period" strings in REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], read at each
request. Counts are fixed windows in the default cache (Redis when REDIS_URL is set, so every
web process shares them), a counter instead of DRF's list of timestamps, which would be
thousands long at the API's rate.

A process takes a window's requests from the shared counter in shares, a hundredth of the rate
(at least 1), and counts each share down itself: the cache is asked once per share instead of
on every request (at 3000 a minute, once every 30 requests). The counter only grows by what
fits under the rate, so no caller ever gets more than its rate; a caller whose requests go to
several processes may be refused up to one share per process early, when the others still hold
part of theirs (a rate under 100 per window is exact). A cache that fails lets the request
through: the limits protect the registry, they must not take it down with the cache.
"""

from __future__ import annotations

import logging
import threading
import time

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

from registry.models import ApiToken
from registry.outage import describe

logger = logging.getLogger(__name__)

PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _cache_errors() -> tuple[type[BaseException], ...]:
    import redis

    return (redis.exceptions.RedisError, OSError)


def parse_rate(rate: str) -> tuple[int, int]:
    """"3000/minute" -> (3000, 60), as DRF reads it."""
    try:
        count, period = rate.split("/")
        return int(count), PERIODS[period.strip()[0]]
    except (ValueError, KeyError, IndexError):
        raise ImproperlyConfigured(f"A throttle rate is 'N/second|minute|hour|day', not {rate!r}.") from None


def rate_for(scope: str) -> tuple[int, int] | None:
    rates = api_settings.DEFAULT_THROTTLE_RATES
    if scope not in rates:
        raise ImproperlyConfigured(f"REST_FRAMEWORK['DEFAULT_THROTTLE_RATES'] has no rate for {scope!r}.")
    return parse_rate(rates[scope]) if rates[scope] else None  # None: not limited


def caller(request) -> str | None:
    """Whose requests are counted together: a token (each token its own), or the signed-in
    user of a browser session; None for an anonymous request (refused before throttling)."""
    if isinstance(request.auth, ApiToken):
        return f"token:{request.auth.pk}"
    if request.user and request.user.is_authenticated:
        return f"user:{request.user.pk}"
    return None


# The window's counter: `n` added to it, and its expiry set by the window's first share, in one command.
_INCREMENT = """
local used = redis.call('INCRBY', KEYS[1], ARGV[2])
if used == tonumber(ARGV[2]) then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return used
"""
_increment = None  # a redis-py Script (EVALSHA, loaded again if the server lost it)


def _count(key: str, ttl: int, n: int) -> int:
    """Add `n` to the window's counter and return it; the counter expires `ttl` seconds after
    the window's first request. On Redis, one round trip of one command (a script: INCRBY, and
    EXPIRE on the first); Django's `cache.incr` costs two round trips (EXISTS, then INCRBY).
    Other caches (the zero-service default's memory) through the cache API."""
    global _increment
    cache = caches["default"]
    if isinstance(cache, RedisCache):
        full_key = cache.make_and_validate_key(key)
        # Django's RedisCache keeps its redis-py clients in `_cache` (RedisCacheClient), the
        # only way to its connection pool.
        client = cache._cache.get_client(full_key, write=True)
        if _increment is None:
            _increment = client.register_script(_INCREMENT)
        return int(_increment(keys=[full_key], args=[ttl, n], client=client))
    try:
        return cache.incr(key, n)
    except ValueError:  # this request opens the window (or another one just did)
        return n if cache.add(key, n, timeout=ttl) else cache.incr(key, n)


def share_of(limit: int) -> int:
    """How many of a window's requests a process takes from the shared counter at once."""
    return max(1, limit // 100)


class _Shares:
    """This process's shares of the windows being counted: {key: (window's end, requests left)}."""

    def __init__(self):
        self._left: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def take_one(self, key: str) -> bool:
        with self._lock:
            end, left = self._left.get(key, (0.0, 0))
            if left <= 0:
                return False
            self._left[key] = (end, left - 1)
            return True

    def add(self, key: str, end: float, requests: int) -> None:
        with self._lock:
            now = time.time()
            for old in [old for old, (ends, _) in self._left.items() if ends <= now]:
                del self._left[old]  # windows that are over
            _, left = self._left.get(key, (end, 0))
            self._left[key] = (end, left + requests)

    def clear(self) -> None:
        with self._lock:
            self._left.clear()


_shares = _Shares()


@receiver(setting_changed)
def _forget_shares(*, setting, **_):
    """Shares are of a counter in the cache, at a rate: another cache or rate starts anew."""
    if setting in ("CACHES", "REST_FRAMEWORK"):
        _shares.clear()


class WindowThrottle(BaseThrottle):
    scope = ""

    def __init__(self):
        self._wait = None

    def scope_for(self, view) -> str | None:
        return self.scope

    def allow_request(self, request, view) -> bool:
        scope, who = self.scope_for(view), caller(request)
        rate = rate_for(scope) if scope and who else None
        if rate is None:
            return True
        limit, seconds = rate
        now = time.time()
        window = int(now // seconds)
        key = f"throttle:{scope}:{who}:{seconds}:{window}"
        if _shares.take_one(key):
            return True
        share = share_of(limit)
        try:
            used = _count(key, seconds + 5, share)
        except _cache_errors() as exc:
            logger.warning("throttle %s not applied, the cache failed: %s", scope, describe(exc))
            return True
        granted = min(share, limit - (used - share))  # the part of the share under the rate
        if granted > 0:
            _shares.add(key, (window + 1) * seconds, granted - 1)  # (this request takes one)
            return True
        self._wait = max(1.0, (window + 1) * seconds - now)
        return False

    def wait(self):
        return self._wait


class TokenRateThrottle(WindowThrottle):
    """Every API request, counted per token (rate `token`)."""

    scope = "token"


class ScopedTokenThrottle(WindowThrottle):
    """A view's own rate (`throttle_scope = "tamper_report"`), counted per token."""

    def scope_for(self, view) -> str | None:
        return getattr(view, "throttle_scope", None)
