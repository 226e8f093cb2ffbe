"""Contexts, memberships and API tokens."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from registry.errors import Conflict, InvalidInput, NameTaken, NotFound
from registry.models import ApiToken, Context, Membership, MembershipSource, Role
from registry.models.contexts import slug_validator
from registry.permissions import require_staff
from registry.services.common import audit, clean_text, lock_for_update

TOKEN_PREFIX = "mreg_"
MAX_TOKEN_DAYS = 3650


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


@transaction.atomic
def token_create(
    *, actor, user, name: str = "", read_only: bool = False, expires_in_days: int | None = None
) -> tuple[ApiToken, str]:
    """Create an API token for `user`; return the row and the plain token (shown once)."""
    if actor is not None and actor.pk != user.pk:
        require_staff(actor)
    name = clean_text(name, field="name", max_length=100)
    if expires_in_days is not None and (
        not isinstance(expires_in_days, int) or not 1 <= expires_in_days <= MAX_TOKEN_DAYS
    ):
        raise InvalidInput(f"Expiry must be a whole number of days from 1 to {MAX_TOKEN_DAYS}.",
                           field="expires_in_days")
    plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        name=name,
        prefix=plain[: len(TOKEN_PREFIX) + 6],
        key_hash=hash_token(plain),
        read_only=read_only,
        expires_at=timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None,
    )
    audit(actor=actor, context=None, action="token.create", obj=token,
          summary=f"created {'read-only ' if read_only else ''}token {token.prefix}… for {user.username}")
    return token, plain


@transaction.atomic
def token_revoke(*, actor, token: ApiToken) -> ApiToken:
    if actor is not None and actor.pk != token.user_id:
        require_staff(actor)
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit(actor=actor, context=None, action="token.revoke", obj=token, summary=f"revoked token {token.prefix}…")
    return token
