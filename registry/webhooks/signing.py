"""Signing deliveries, and keeping the secrets that sign them.

The header, for a body sent at Unix time `t`:

    X-Registry-Signature: t=<t>,v1=<hex HMAC-SHA256(secret, f"{t}." + body)>

A receiver recomputes the HMAC over the timestamp, a dot and the raw body bytes with its secret,
compares in constant time, and refuses a timestamp older than its tolerance (a replay).
`registry_client.webhooks.verify` does exactly that; the README shows it in a few lines.

Secrets: generated here (`whsec_` + 32 random bytes, URL-safe base64), shown once to the admin
who creates the hook (or rotates its secret), and stored encrypted (Fernet: AES-128-CBC with an
HMAC) under a key derived from SECRET_KEY. A copy of the database alone does not let anyone sign
deliveries. Rotating SECRET_KEY: keep the old value in SECRET_KEY_FALLBACKS until every hook's
secret has been rotated (or the hooks recreated); secrets encrypted under a fallback are still
read.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

SECRET_PREFIX = "whsec_"
SIGNATURE_HEADER = "X-Registry-Signature"
SCHEME = "v1"


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def _fernet_for(secret_key: str) -> Fernet:
    digest = hashlib.sha256(b"registry.webhooks.signing:" + secret_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def _keys() -> MultiFernet:
    return MultiFernet([_fernet_for(key) for key in [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]])


def encrypt_secret(secret: str) -> str:
    return _keys().encrypt(secret.encode()).decode()


class SecretUnreadable(Exception):
    """The stored secret was encrypted under a SECRET_KEY that is no longer configured."""


def decrypt_secret(stored: str) -> str:
    try:
        return _keys().decrypt(stored.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable(
            "The hook's secret cannot be read: SECRET_KEY changed and the old key is not in "
            "SECRET_KEY_FALLBACKS. Rotate the hook's secret."
        ) from None


def signature(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},{SCHEME}={signature(secret, timestamp, body)}"
