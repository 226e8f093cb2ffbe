"""Request rates for the API (DRF throttles): per token, and per scope for the endpoints that
cause work out of proportion to the request (`throttle_scope` on the view).

Rates are DRF's "N/period" strings in REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], read at each
request. Counts are fixed windows in the default cache (Redis when REDIS_URL is set, so every
web process shares them): one increment per request instead of DRF's list of timestamps,
which would be thousands long at the API's rate. A cache that fails lets the request through:
the limits protect the registry, they must not take it down with the cache.
"""

from __future__ import annotations

import logging
import time

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.core.exceptions import ImproperlyConfigured
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


# The window's counter, added to and given its expiry by its first request, in one command.
_INCREMENT = """
local used = redis.call('INCR', KEYS[1])
if used == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return used
"""
_increment = None  # a redis-py Script (EVALSHA, loaded again if the server lost it)


def _count(key: str, ttl: int) -> int:
    """Add one to the window's counter and return it; the counter expires `ttl` seconds after
    the window's first request. On Redis, one round trip of one command (a script: INCR, and
    EXPIRE on the first); Django's `cache.incr` costs two round trips (EXISTS, then INCRBY),
    a pipeline of INCR and EXPIRE NX two commands to send and parse, and every API request
    pays it. Other caches (the zero-service default's memory) through the cache API."""
    global _increment
    cache = caches["default"]
    if isinstance(cache, RedisCache):
        full_key = cache.make_and_validate_key(key)
        # Django's RedisCache keeps its redis-py clients in `_cache` (RedisCacheClient), the
        # only way to its connection pool.
        client = cache._cache.get_client(full_key, write=True)
        if _increment is None:
            _increment = client.register_script(_INCREMENT)
        return int(_increment(keys=[full_key], args=[ttl], client=client))
    try:
        return cache.incr(key)
    except ValueError:  # this request opens the window (or another one just did)
        return 1 if cache.add(key, 1, timeout=ttl) else cache.incr(key)


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
        try:
            used = _count(key, seconds + 5)
        except _cache_errors() as exc:
            logger.warning("throttle %s not applied, the cache failed: %s", scope, describe(exc))
            return True
        if used <= limit:
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
