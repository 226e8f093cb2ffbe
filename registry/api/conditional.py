"""Strong ETags, 304s and a cache for what cannot change: a published version, its formats and
its manifests.

A published version is frozen (its fields, tags, records and files); what its representation
can still show differently is small and read with it: the aliases pointing at it, the status
of its files (the integrity sweep can find one corrupt), the names of its users and records,
the model's name in a manifest. A view passes that `state`, everything its response is made
from but the frozen columns, and the ETag is a digest of it: the same state is the same bytes
(a strong validator), so If-None-Match is answered 304 without building anything, and the
serialized form is kept in the cache (Redis when REDIS_URL is set) under that digest.

The digest also covers the code that builds these responses, so a release that changes a
representation changes every ETag and never serves an old body.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.http import HttpResponse, HttpResponseNotModified
from django.urls import get_script_prefix
from django.utils.cache import parse_etags
from rest_framework.renderers import JSONRenderer

logger = logging.getLogger("registry.api")

_HERE = Path(__file__).resolve().parent
# The modules whose code decides these representations' bytes.
_CODE = hashlib.blake2b(b"".join((path.read_bytes() for path in (
    _HERE / "serializers.py", _HERE / "conditional.py", _HERE.parent / "manifests.py",
))), digest_size=8).hexdigest()

CACHE_PREFIX = "representation:"


def etag_for(state: tuple) -> str:
    """A strong ETag for the representation made from `state` (a tuple of plain values)."""
    # The script prefix is in the URLs the representations carry.
    digest = hashlib.blake2b(repr((_CODE, get_script_prefix(), state)).encode(), digest_size=16).hexdigest()
    return f'"{digest}"'


def none_match(header: str | None, etag: str) -> bool:
    """If-None-Match uses the weak comparison and may list several tags or be '*'."""
    if not header:
        return False
    tags = parse_etags(header)
    return "*" in tags or any(tag.removeprefix("W/") == etag for tag in tags)


def _cache_errors() -> tuple[type[BaseException], ...]:
    try:
        from redis.exceptions import RedisError
    except ImportError:  # pragma: no cover - redis is installed with the project
        return (OSError,)
    return (RedisError, OSError)


def frozen_response(request, state: tuple, build: Callable[[], object]) -> HttpResponse:
    """The JSON of `build()` with a strong ETag for `state`: 304 when the client holds it, else
    the serialized form from the cache, or built, serialized and kept there."""
    etag = etag_for(state)
    if none_match(request.headers.get("If-None-Match"), etag):
        response = HttpResponseNotModified()
    else:
        key = CACHE_PREFIX + etag.strip('"')
        try:
            body = cache.get(key)
        except _cache_errors() as exc:  # a cache that fails costs a build, never the answer
            logger.warning("representation cache not read: %s", exc)
            body = None
        if body is None:
            body = JSONRenderer().render(build())
            try:
                cache.set(key, body, timeout=settings.REGISTRY_REPRESENTATION_CACHE_SECONDS)
            except _cache_errors() as exc:
                logger.warning("representation cache not written: %s", exc)
        response = HttpResponse(body, content_type="application/json")
    response["ETag"] = etag
    # Personal (who may see it is checked on every request), and revalidated before reuse.
    response["Cache-Control"] = "private, no-cache"
    return response
