"""Bearer tokens (stored hashed) and CSRF-checked browser sessions."""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.conf import settings
from django.db.models import OuterRef, Q
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import HTTP_HEADER_ENCODING, authentication, exceptions

from registry.expressions import JSONList, UUIDText
from registry.prepared import CompiledQuery
from registry.models import ApiToken, Membership, TokenReach
from registry.permissions import (
    GRANTED_CONTEXTS_ATTRIBUTE,
    READ_ONLY_ATTRIBUTE,
    ROLES_ATTRIBUTE,
    SCOPE_ATTRIBUTE,
    TokenScope,
    highest_roles,
)
from registry.services.contexts import hash_token


def _token_query(key_hash: str):
    grants = Membership.objects.filter(Q(user_id=OuterRef("user_id")) | Q(group__user=OuterRef("user_id")))
    contexts = ApiToken.scope_contexts.through.objects.filter(apitoken_id=OuterRef("pk")).order_by("context_id")
    models = ApiToken.scope_models.through.objects.filter(apitoken_id=OuterRef("pk")).order_by("model_id")
    return (ApiToken.objects.select_related("user")
            .annotate(registry_grants=JSONList(grants, context="context_id", slug="context__slug", role="role"),
                      registry_scope_contexts=JSONList(contexts, "context_id"),
                      registry_scope_models=JSONList(models.annotate(text=UUIDText("model_id")), "text"))
            .filter(key_hash=key_hash))


# (TokenReach.values builds its list anew at each call.)
_REACHES = frozenset(TokenReach.values)


def scope_of(token: ApiToken) -> TokenScope:
    """The token's scope as registry.permissions applies it, from the lists read with it."""
    contexts = models = None
    if token.reach in (TokenReach.CONTEXTS, TokenReach.MODELS):
        contexts = frozenset(token.registry_scope_contexts)
    if token.reach == TokenReach.MODELS:
        models = frozenset(uuid.UUID(text) for text in token.registry_scope_models)
    if token.reach not in _REACHES:  # fail closed: a reach this code does not know reaches nothing
        contexts, models = frozenset(), frozenset()
    permissions = None if token.scope_permissions is None else frozenset(token.scope_permissions)
    return TokenScope(contexts=contexts, models=models, permissions=permissions)


# Every API request reads its token: compiled once per process (registry/prepared.py).
_TOKEN = CompiledQuery(_token_query)


def _token_by_hash(key_hash: str) -> ApiToken | None:
    """The token with this hash, its user, and the user's grants ([{"context", "slug", "role"}], direct
    and through groups) in one statement: authentication and every permission check of the
    request then cost one query."""
    found = _TOKEN.run(key_hash=key_hash)
    return found[0] if found else None


def token_with_roles(key_hash: str) -> tuple[ApiToken, dict[int, str]] | None:
    """The token with this hash, its user (token.user) and the user's highest role in each
    context, direct or through a group, read in one statement; None when there is no such
    token. The roles then answer every permission check of the request (ROLES_ATTRIBUTE)."""
    token = _token_by_hash(key_hash)
    if token is None:
        return None
    return token, highest_roles((grant["context"], grant["role"]) for grant in token.registry_grants)


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        # The header as DRF's get_authorization_header() reads it, from the WSGI environ itself:
        # that reads request.headers, which copies every header of the request into a mapping.
        header = request._request.META.get("HTTP_AUTHORIZATION", b"")
        header = (header.encode(HTTP_HEADER_ENCODING) if isinstance(header, str) else header).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Invalid Authorization header: use 'Bearer <token>'.")
        try:
            plain = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        token, roles = token_with_roles(hash_token(plain)) or (None, {})
        now = timezone.now()
        if token is None or token.revoked_at is not None:
            raise exceptions.AuthenticationFailed("Invalid or revoked token.")
        if token.expires_at is not None and token.expires_at <= now:
            raise exceptions.AuthenticationFailed("This token has expired.")
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("This user is inactive.")
        touch_after = timedelta(seconds=settings.REGISTRY_TOKEN_TOUCH_SECONDS)
        if token.last_used_at is None or now - token.last_used_at > touch_after:
            # One write a minute at most, so reads stay cheap under load.
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        user = token.user
        setattr(user, READ_ONLY_ATTRIBUTE, token.read_only)
        setattr(user, SCOPE_ATTRIBUTE, scope_of(token))
        setattr(user, ROLES_ATTRIBUTE, roles)  # roles read with the token
        setattr(user, GRANTED_CONTEXTS_ATTRIBUTE, {grant["slug"]: grant["context"] for grant in token.registry_grants})
        return user, token

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = BearerTokenAuthentication
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "An API token from the dashboard or `manage.py token_create`."}
