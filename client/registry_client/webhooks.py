"""Verify a webhook delivery from the registry, in the receiver (standard library only).

    from registry_client import webhooks
    event = webhooks.verify(request_body_bytes, request.headers["X-Registry-Signature"], secret)
    # event: the delivery's JSON as a dict ({"id", "type", "created_at", "context", "actor", "data"})

The header is `t=<unix time>,v1=<hex HMAC-SHA256 of f"{t}." + body, keyed by the hook's secret>`.
Several `v1=` values may appear (one per secret while a secret is being rotated): any match passes.
A timestamp further than `tolerance` seconds from now is refused, so a captured delivery cannot
be replayed later; keep the event ids you have handled to drop a retry you already processed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time

from registry_client.errors import RegistryError

SIGNATURE_HEADER = "X-Registry-Signature"


class WebhookSignatureError(RegistryError):
    """The delivery is not signed with this secret, is malformed, or is too old."""


def _parse(header: str) -> tuple[int, list[str]]:
    timestamp, signatures = None, []
    for item in (header or "").split(","):
        key, _, value = item.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1" and value:
            signatures.append(value.strip())
    if timestamp is None or not signatures:
        raise WebhookSignatureError(f"The {SIGNATURE_HEADER} header is not 't=<timestamp>,v1=<signature>'.")
    return timestamp, signatures


def verify(body: bytes | str, header: str, secret: str, tolerance: float = 300, *, now: float | None = None) -> dict:
    """The delivery's event (its JSON body, parsed) if `header` signs `body` with `secret` within
    `tolerance` seconds of `now` (default: the current time); WebhookSignatureError otherwise.
    Pass the raw body bytes as received: re-serialized JSON would not match."""
    if isinstance(body, str):
        body = body.encode()
    timestamp, signatures = _parse(header)
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected, signature) for signature in signatures):
        raise WebhookSignatureError("The signature does not match: wrong secret, or the body was changed.")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise WebhookSignatureError(f"The delivery was signed {int(current - timestamp)} seconds from now, more "
                                    f"than the {tolerance:g} seconds allowed: a replay, or a clock off.")
    try:
        return json.loads(body)
    except ValueError as error:
        raise WebhookSignatureError(f"The body is not JSON: {error}") from None
