"""Contexts, memberships and API tokens."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from registry.errors import Conflict, InvalidInput, NameTaken, NotFound
from registry.models import ApiToken, Context, Membership, MembershipSource, Model, Role, TokenReach
from registry.models.contexts import slug_validator
from registry.permissions import (
    READ_ONLY_PERMISSIONS,
    ROLE_PERMISSIONS,
    Perm,
    contexts_for,
    effective_roles,
    is_staff,
    models_for,
    require_staff,
    token_allows,
)
from registry.services.common import audit, clean_text, lock_for_update, normalize_name

TOKEN_PREFIX = "mreg_"
MAX_TOKEN_DAYS = 3650
MAX_TOKEN_SCOPE_ITEMS = 50  # contexts, or models, one token names


@transaction.atomic
def context_create(*, actor, slug: str, name: str = "", description: str = "") -> Context:
    """Create a context (site staff or the operator only)."""
    slug = clean_text(slug, field="slug", max_length=50, allow_blank=False)
    try:
        slug_validator(slug)
    except ValidationError as exc:
        raise InvalidInput(exc.messages[0], field="slug") from None
    name = clean_text(name, field="name", max_length=200) or slug
    description = clean_text(description, field="description")
    if Context.objects.filter(slug=slug).exists():
        raise NameTaken(f"A context with slug '{slug}' already exists.", field="slug")
    try:
        with transaction.atomic():
            context = Context.objects.create(slug=slug, name=name, description=description)
    except IntegrityError:
        raise NameTaken(f"A context with slug '{slug}' already exists.", field="slug") from None
    audit(actor=actor, context=context, action="context.create", obj=context, summary=f"created context {slug}")
    return context


def _clean_role(role) -> str:
    if role not in Role.values:
        raise InvalidInput(f"Role must be one of {', '.join(Role.values)}.", field="role")
    return role


def _principal(*, username: str | None, group: str | None):
    if bool(username) == bool(group):
        raise InvalidInput("Give either a username or a group.", field="username")
    if username:
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise InvalidInput(f"There is no user '{username}'.", field="username")
        return {"user": user}, f"user {username}"
    group_obj = Group.objects.filter(name=group).first()
    if group_obj is None:
        raise InvalidInput(f"There is no group '{group}'.", field="group")
    return {"group": group_obj}, f"group {group}"


@transaction.atomic
def membership_set(
    *, actor, context: Context, role: str, username: str | None = None, group: str | None = None,
    create_only: bool = False,
) -> Membership:
    """Grant `role` in `context` to a user or a group, or change the role they hold by hand
    (a role granted by a single sign-on rule is the rule's: registry/services/sso.py)."""
    role = _clean_role(role)
    principal, label = _principal(username=username, group=group)
    lock_for_update(Context).filter(pk=context.pk).first()
    membership = Membership.objects.filter(context=context, source=MembershipSource.MANUAL, **principal).first()
    if membership is None:
        membership = Membership.objects.create(context=context, role=role, **principal)
        audit(actor=actor, context=context, action="member.add", object_type="membership",
              object_id=str(membership.pk), object_repr=label, summary=f"granted {role} to {label}",
              changes={"role": [None, role]})
        return membership
    if create_only:
        raise Conflict(f"{label.capitalize()} is already a member; change the role instead.", field="username")
    if membership.role != role:
        old = membership.role
        _ensure_admin_remains(context, excluding=membership, when=old == Role.ADMIN)
        membership.role = role
        membership.save(update_fields=["role"])
        audit(actor=actor, context=context, action="member.change", object_type="membership",
              object_id=str(membership.pk), object_repr=label, summary=f"changed {label} from {old} to {role}",
              changes={"role": [old, role]})
    return membership


@transaction.atomic
def membership_remove(*, actor, context: Context, username: str | None = None, group: str | None = None) -> None:
    """Take a user's or group's hand-granted role in `context` away."""
    lock_for_update(Context).filter(pk=context.pk).first()
    filters = {"user__username": username} if username else {"group__name": group}
    membership = Membership.objects.filter(context=context, source=MembershipSource.MANUAL, **filters).first()
    if membership is None:
        who = 'User ' + username if username else 'Group ' + str(group)
        if Membership.objects.filter(context=context, **filters).exists():
            raise Conflict(f"{who} holds a role granted by a single sign-on rule only: delete the rule, or remove "
                           "them from the group at the identity provider.", field="username")
        raise NotFound(f"{who} is not a member of this context.")
    label = f"user {username}" if username else f"group {group}"
    _ensure_admin_remains(context, excluding=membership, when=membership.role == Role.ADMIN)
    membership_id, old_role = membership.pk, membership.role
    membership.delete()
    audit(actor=actor, context=context, action="member.remove", object_type="membership",
          object_id=str(membership_id), object_repr=label, summary=f"removed {label} ({old_role})",
          changes={"role": [old_role, None]})


def _ensure_admin_remains(context: Context, *, excluding: Membership, when: bool) -> None:
    """Refuse to remove or demote the last admin: a context would become unmanageable."""
    if when and not Membership.objects.filter(context=context, role=Role.ADMIN).exclude(pk=excluding.pk).exists():
        raise Conflict("This is the context's last admin; grant admin to someone else first.", field="role")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _scope_list(value, field: str) -> list | None:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) for item in value):
        raise InvalidInput(f"'{field}' must be a list of strings.", field=field)
    items = list(dict.fromkeys(item.strip() for item in value if item.strip()))
    if not items:
        raise InvalidInput(f"Name at least one of '{field}', or leave it out for no limit.", field=field)
    if len(items) > MAX_TOKEN_SCOPE_ITEMS:
        raise InvalidInput(f"A token names at most {MAX_TOKEN_SCOPE_ITEMS} {field}.", field=field)
    return items


def _scope_contexts(user, slugs: list[str]) -> list[Context]:
    found = {context.slug: context for context in contexts_for(user, Perm.VIEW_MODEL).filter(slug__in=slugs)}
    missing = [slug for slug in slugs if slug not in found]
    if missing:
        raise InvalidInput(f"{user.username} has no context '{missing[0]}'.", field="contexts")
    return [found[slug] for slug in slugs]


def _scope_models(user, references: list[str]) -> list[Model]:
    """Models by id, or by "context-slug/model name", among those `user` can see."""
    visible = models_for(user, Perm.VIEW_MODEL).select_related("context")
    chosen: dict = {}
    for reference in references:
        slug, slash, name = reference.partition("/")
        try:
            found = visible.filter(pk=uuid.UUID(reference)).first()
        except ValueError:
            found = None
            if slash and slug and name.strip():
                try:
                    key = normalize_name(name, field="models")[1]
                except InvalidInput:
                    key = None
                found = visible.filter(context__slug=slug, name_key=key).first() if key else None
        if found is None:
            raise InvalidInput(f"{user.username} has no model '{reference}' (give a model id or "
                               f"context/model name).", field="models")
        chosen[found.pk] = found
    return list(chosen.values())


def _scope_permissions(user, values: list[str] | None, contexts: list[Context] | None,
                       read_only: bool) -> list[str] | None:
    if values is None:
        return None
    unknown = [value for value in values if value not in {perm.value for perm in Perm}]
    if unknown:
        raise InvalidInput(f"Unknown permission '{unknown[0]}'; use {', '.join(Perm)}.", field="permissions")
    if read_only and not set(values) <= READ_ONLY_PERMISSIONS:
        raise InvalidInput("A read-only token has only 'view-model'.", field="permissions")
    if not is_staff(user):  # a token never exceeds its owner's roles
        roles = effective_roles(user)
        if contexts is not None:
            roles = {context_id: role for context_id, role in roles.items() if context_id in {c.pk for c in contexts}}
        granted = set().union(*(ROLE_PERMISSIONS[role] for role in roles.values())) if roles else set()
        granted = {perm for perm in granted if token_allows(user, perm)}  # created with a scoped token
        beyond = [value for value in values if value not in granted]
        if beyond:
            raise InvalidInput(f"{user.username}'s roles grant '{beyond[0]}' in none of the token's contexts.",
                               field="permissions")
    return [perm.value for perm in Perm if perm.value in values]


def scope_summary(token: ApiToken, contexts, models) -> str:
    """The scope in words, for the audit log."""
    parts = []
    if token.reach == TokenReach.CONTEXTS:
        parts.append("contexts " + ", ".join(context.slug for context in contexts))
    elif token.reach == TokenReach.MODELS:
        parts.append("models " + ", ".join(f"{model.context.slug}/{model.name}" for model in models))
    if token.scope_permissions is not None:
        parts.append("permissions " + ", ".join(token.scope_permissions))
    return "; ".join(parts) or "unscoped"


@transaction.atomic
def token_create(
    *, actor, user, name: str = "", read_only: bool = False, expires_in_days: int | None = None,
    contexts: list[str] | None = None, models: list[str] | None = None, permissions: list[str] | None = None,
) -> tuple[ApiToken, str]:
    """Create an API token for `user`; return the row and the plain token (shown once).

    Scope (None: no limit): `contexts` (slugs), `models` (ids or "context/name"; the token
    then reaches only them), `permissions` (Perm values). Each must be within what `user` can
    see and hold, else 400: the token never exceeds its owner's roles (and at use, what it may do
    is always the intersection with the owner's roles of the moment)."""
    if actor is not None and actor.pk != user.pk:
        require_staff(actor)
    name = clean_text(name, field="name", max_length=100)
    if expires_in_days is not None and (
        not isinstance(expires_in_days, int) or not 1 <= expires_in_days <= MAX_TOKEN_DAYS
    ):
        raise InvalidInput(f"Expiry must be a whole number of days from 1 to {MAX_TOKEN_DAYS}.",
                           field="expires_in_days")
    context_slugs, model_refs = _scope_list(contexts, "contexts"), _scope_list(models, "models")
    permission_values = _scope_list(permissions, "permissions")
    scope_contexts = _scope_contexts(user, context_slugs) if context_slugs is not None else None
    scope_models = _scope_models(user, model_refs) if model_refs is not None else None
    if scope_models is not None:
        if scope_contexts is not None:
            outside = [m for m in scope_models if m.context_id not in {c.pk for c in scope_contexts}]
            if outside:
                raise InvalidInput(f"Model '{outside[0].context.slug}/{outside[0].name}' is not in the token's "
                                   f"contexts.", field="models")
        scope_contexts = list({model.context_id: model.context for model in scope_models}.values())
    permission_values = _scope_permissions(user, permission_values, scope_contexts, read_only)
    reach = TokenReach.MODELS if scope_models is not None else (
        TokenReach.CONTEXTS if scope_contexts is not None else TokenReach.ALL)
    plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        name=name,
        prefix=plain[: len(TOKEN_PREFIX) + 6],
        key_hash=hash_token(plain),
        read_only=read_only,
        expires_at=timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None,
        reach=reach,
        scope_permissions=permission_values,
    )
    if scope_contexts:
        token.scope_contexts.set(scope_contexts)
    if scope_models:
        token.scope_models.set(scope_models)
    audit(actor=actor, context=None, action="token.create", obj=token,
          summary=f"created {'read-only ' if read_only else ''}token {token.prefix}… for {user.username} "
                  f"({scope_summary(token, scope_contexts or [], scope_models or [])})")
    return token, plain


@transaction.atomic
def token_revoke(*, actor, token: ApiToken, context: Context | None = None) -> ApiToken:
    """Revoke a token: the owner's own, anyone's for site staff, or, with `context`, a token that
    can act in that context, by its admin (the door decided manage-context there; the token was
    found by selectors.context_token_get, so it does reach the context)."""
    if context is None and actor is not None and actor.pk != token.user_id:
        require_staff(actor)
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        whose = f" of {token.user.username}" if context is not None else ""
        audit(actor=actor, context=context, action="token.revoke", obj=token,
              summary=f"revoked token {token.prefix}…{whose}"
                      + (f" (it could act in {context.slug})" if context is not None else ""))
    return token
