"""Bearer tokens (stored hashed) and CSRF-checked browser sessions."""

from __future__ import annotations

from datetime import timedelta
from functools import cache

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from registry.models import ApiToken, Membership
from registry.permissions import READ_ONLY_ATTRIBUTE, ROLES_ATTRIBUTE, highest_roles
from registry.services.contexts import hash_token


# Hand-written SQL, and the only way a token is read: every API request runs it, and the ORM
# cannot say it in one statement that both databases run (a user's memberships, direct and
# through groups: ArraySubquery is PostgreSQL's only, and following both relations multiplies
# rows). Table and column names come from the models' _meta, so a renamed field cannot drift.
@cache
def _token_sql(vendor: str) -> str:
    q = connection.ops.quote_name
    user_model = get_user_model()
    user_groups = user_model._meta.get_field("groups").remote_field.through
    user_pk = q(user_model._meta.pk.column)

    def column(model, field: str) -> str:
        return q(model._meta.get_field(field).column)

    def select(model, alias: str) -> str:
        return ", ".join(f"{alias}.{q(field.column)}" for field in model._meta.concrete_fields)

    groups_of_user = (
        f"SELECT ug.{column(user_groups, 'group')} FROM {q(user_groups._meta.db_table)} ug "
        f"WHERE ug.{column(user_groups, user_model._meta.model_name)} = u.{user_pk}"
    )
    return (
        f"SELECT {select(ApiToken, 't')}, {select(user_model, 'u')}, "
        f"m.{column(Membership, 'context')}, m.{column(Membership, 'role')} "
        f"FROM {q(ApiToken._meta.db_table)} t "
        f"JOIN {q(user_model._meta.db_table)} u ON u.{user_pk} = t.{column(ApiToken, 'user')} "
        f"LEFT JOIN {q(Membership._meta.db_table)} m ON m.{column(Membership, 'user')} = u.{user_pk} "
        f"OR m.{column(Membership, 'group')} IN ({groups_of_user}) "
        f"WHERE t.{column(ApiToken, 'key_hash')} = %s"
    )


def _build(model, values):
    """An instance of `model` from its columns, converted as the ORM converts them."""
    values = list(values)
    table = model._meta.db_table
    for index, field in enumerate(model._meta.concrete_fields):
        col = field.get_col(table)
        for convert in connection.ops.get_db_converters(col) + col.get_db_converters(connection):
            values[index] = convert(values[index], col, connection)
    return model.from_db(connection.alias, [field.attname for field in model._meta.concrete_fields], values)


def token_with_roles(key_hash: str) -> tuple[ApiToken, dict[int, str]] | None:
    """The token with this hash, its user (token.user) and the user's highest role in each
    context, direct or through a group, in one statement; None when there is no such token.
    The roles then answer every permission check of the request (permissions.ROLES_ATTRIBUTE)."""
    with connection.cursor() as cursor:
        cursor.execute(_token_sql(connection.vendor), [key_hash])
        rows = cursor.fetchall()  # one per grant, or one with no grant
    if not rows:
        return None
    user_model = get_user_model()
    split = len(ApiToken._meta.concrete_fields)
    token = _build(ApiToken, rows[0][:split])
    token.user = _build(user_model, rows[0][split: split + len(user_model._meta.concrete_fields)])
    roles = highest_roles((row[-2], row[-1]) for row in rows if row[-2] is not None)
    return token, roles


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
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
        setattr(user, ROLES_ATTRIBUTE, roles)
        return user, token

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = BearerTokenAuthentication
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "An API token from the dashboard or `manage.py token_create`."}
