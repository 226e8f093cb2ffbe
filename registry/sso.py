"""Single sign-on with an OpenID Connect provider, through mozilla-django-oidc.

Configured only by environment variables (registry/settings.py, README "Configuration"): the
provider's issuer URL, from which its endpoints are discovered
(`<issuer>/.well-known/openid-configuration`, read when a sign-in starts and kept for an hour),
the client id and secret, the scopes, and the claims that name the account and carry the values
that single sign-on rules map to roles (registry/services/sso.py).

The library's backend is kept for the code flow (PKCE, state, nonce, the ID token's signature
against the provider's JWKS); this module adds what it leaves open: the ID token's issuer and
audience are checked, the account is found by the provider's subject (`sub`), never by e-mail,
and every failure raises SignInFailed with words for the person signing in, which the callback
page shows (dashboard/views/signin.py).
"""

from __future__ import annotations

import logging
import time

import jwt
import requests
from django.conf import settings
from django.core.exceptions import SuspiciousOperation
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.utils import import_from_settings

from registry.errors import RegistryError

logger = logging.getLogger(__name__)

DISCOVERY_SECONDS = 3600
# mozilla-django-oidc's setting names, answered from the registry's own (or the discovery).
_FROM_REGISTRY = {
    "OIDC_RP_CLIENT_ID": "REGISTRY_OIDC_CLIENT_ID",
    "OIDC_RP_CLIENT_SECRET": "REGISTRY_OIDC_CLIENT_SECRET",
    "OIDC_RP_SCOPES": "REGISTRY_OIDC_SCOPES",
    "OIDC_RP_SIGN_ALGO": "REGISTRY_OIDC_SIGN_ALGO",
    "OIDC_TIMEOUT": "REGISTRY_OIDC_TIMEOUT_SECONDS",
}
_FROM_DISCOVERY = {
    "OIDC_OP_AUTHORIZATION_ENDPOINT": "authorization_endpoint",
    "OIDC_OP_TOKEN_ENDPOINT": "token_endpoint",
    "OIDC_OP_USER_ENDPOINT": "userinfo_endpoint",
    "OIDC_OP_JWKS_ENDPOINT": "jwks_uri",
}
_discovered: dict[str, tuple[float, dict]] = {}


class SignInFailed(Exception):
    """A single sign-on that cannot complete; `message` is for the person signing in, `status`
    the page's HTTP status (502 when the provider does not answer as it should)."""

    def __init__(self, message: str, *, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


def sso_enabled() -> bool:
    return bool(settings.REGISTRY_OIDC_ISSUER and settings.REGISTRY_OIDC_CLIENT_ID)


def provider_name() -> str:
    return settings.REGISTRY_OIDC_PROVIDER_NAME


def issuer() -> str:
    return settings.REGISTRY_OIDC_ISSUER.rstrip("/")


def discovery() -> dict:
    """The provider's metadata (its endpoints), read once an hour. SignInFailed (502) when the
    provider does not answer, or answers for another issuer."""
    now = time.monotonic()
    cached = _discovered.get(issuer())
    if cached and now - cached[0] < DISCOVERY_SECONDS:
        return cached[1]
    url = f"{issuer()}/.well-known/openid-configuration"
    try:
        response = requests.get(url, timeout=settings.REGISTRY_OIDC_TIMEOUT_SECONDS)
        response.raise_for_status()
        metadata = response.json()
    except (requests.RequestException, ValueError) as exc:
        logger.warning("single sign-on: the provider's discovery document %s could not be read: %s", url, exc)
        raise SignInFailed(f"{provider_name()} is not answering, so you cannot sign in with it right now. "
                           "Try again in a moment.", status=502) from None
    missing = [key for key in (*_FROM_DISCOVERY.values(), "issuer") if not isinstance(metadata.get(key), str)]
    if missing or metadata["issuer"].rstrip("/") != issuer():
        logger.error("single sign-on: the discovery document %s is unusable (missing %s, issuer %r)",
                     url, missing, metadata.get("issuer"))
        raise SignInFailed(f"{provider_name()} is not configured as the registry expects; tell an administrator.",
                           status=502)
    _discovered[issuer()] = (now, metadata)
    return metadata


def oidc_setting(name: str, *default):
    """A mozilla-django-oidc setting: the provider's endpoints from its discovery document, the
    client's from the registry's environment variables, the rest from Django's settings."""
    if name in _FROM_DISCOVERY:
        return discovery()[_FROM_DISCOVERY[name]]
    if name in _FROM_REGISTRY:
        return getattr(settings, _FROM_REGISTRY[name])
    return import_from_settings(name, *default)


class OidcBackend(OIDCAuthenticationBackend):
    """The code flow's last step: trade the code for tokens, verify the ID token, read the
    user info, and sign in the account of the provider's subject (services.sso_sign_in)."""

    get_settings = staticmethod(oidc_setting)

    def __init__(self, *args, **kwargs):
        # The library reads every setting here; the endpoints come from the provider, which is
        # only asked when someone signs in with it (this backend is built for every session).
        from django.contrib.auth import get_user_model

        self.UserModel = get_user_model()

    def authenticate(self, request, **kwargs):
        if request is None or "code" not in request.GET or "state" not in request.GET or not sso_enabled():
            return None
        for name in ("OIDC_OP_TOKEN_ENDPOINT", "OIDC_OP_USER_ENDPOINT", "OIDC_OP_JWKS_ENDPOINT",
                     "OIDC_RP_CLIENT_ID", "OIDC_RP_CLIENT_SECRET", "OIDC_RP_SIGN_ALGO"):
            setattr(self, name, self.get_settings(name))
        self.OIDC_RP_IDP_SIGN_KEY = None
        try:
            return super().authenticate(request, **kwargs)
        except requests.HTTPError as exc:
            if exc.response is not None and exc.response.status_code >= 500:
                logger.warning("single sign-on: the provider failed: %s", exc)
                raise SignInFailed(f"{provider_name()} failed while signing you in (it answered "
                                   f"{exc.response.status_code}). Try again in a moment.", status=502) from None
            logger.warning("single sign-on: the provider refused the code: %s", exc)
            raise SignInFailed(f"{provider_name()} refused to complete the sign-in (the sign-in link may have "
                               "expired or been used already). Start again.") from None
        except requests.RequestException as exc:
            logger.warning("single sign-on: the provider did not answer: %s", exc)
            raise SignInFailed(f"{provider_name()} is not answering, so you cannot sign in with it right now. "
                               "Try again in a moment.", status=502) from None
        except (SuspiciousOperation, jwt.PyJWTError) as exc:
            logger.warning("single sign-on: the provider's answer was rejected: %s", exc)
            raise SignInFailed(f"The answer from {provider_name()} could not be verified, so you were not signed "
                               "in. Start again; if it happens again, tell an administrator.") from None

    def verify_token(self, token, **kwargs):
        """The library checks the signature, expiry and nonce; the issuer and the audience too."""
        if not isinstance(token, str) or not token:
            raise SuspiciousOperation("the token response has no ID token")
        payload = super().verify_token(token, **kwargs)
        audience = payload.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if str(payload.get("iss", "")).rstrip("/") != issuer():
            raise SuspiciousOperation(f"ID token from issuer {payload.get('iss')!r}")
        if self.OIDC_RP_CLIENT_ID not in audiences:
            raise SuspiciousOperation(f"ID token for audience {audience!r}")
        return payload

    def get_or_create_user(self, access_token, id_token, payload):
        from registry import services

        userinfo = self.get_userinfo(access_token, id_token, payload)
        subject = payload.get("sub")
        if not isinstance(subject, str) or not subject or len(subject) > 255:
            raise SignInFailed(f"{provider_name()} did not say who you are (no `sub` claim), so you were not "
                               "signed in. Tell an administrator.")
        if not isinstance(userinfo, dict) or userinfo.get("sub") != subject:
            # OpenID Connect Core 5.3.2: the user info of another subject must not be used.
            raise SignInFailed(f"{provider_name()} described someone else than the person who signed in, so you "
                               "were not signed in. Tell an administrator.")
        claims = {**payload, **userinfo}
        try:
            user = services.sso_sign_in(
                issuer=issuer(), claims=claims, roles_claim=settings.REGISTRY_OIDC_ROLES_CLAIM,
                username_claim=settings.REGISTRY_OIDC_USERNAME_CLAIM,
            )
        except RegistryError as exc:
            raise SignInFailed(exc.message, status=exc.status_code) from None
        if not user.is_active:
            raise SignInFailed("This account is deactivated in the registry. Ask an administrator.", status=403)
        return user
