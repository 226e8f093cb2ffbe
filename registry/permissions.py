"""The only map from role to permission, and the checks every selector and service uses.

Rules (SPEC §1): a user's effective role in a context is the highest one granted directly
or through a group. Without `view-model` a context's contents do not exist for the user
(selectors filter them out, so lookups 404). With `view-model` but not the permission an
action needs, services raise PermissionDenied (403). Site staff (superusers) can do
everything. A request authenticated by a read-only token keeps only `view-model`.
"""

from __future__ import annotations

from enum import StrEnum

from django.db.models import Q, QuerySet

from registry.errors import PermissionDenied
from registry.models import Context, Membership, Model, Role


class Perm(StrEnum):
    VIEW_MODEL = "view-model"
    EDIT_MODEL = "edit-model"
    PUBLISH_VERSION = "publish-version"
    DELETE_MODEL = "delete-model"
    MANAGE_CONTEXT = "manage-context"


ROLE_PERMISSIONS: dict[str, frozenset[Perm]] = {
    Role.VIEWER: frozenset({Perm.VIEW_MODEL}),
    Role.EDITOR: frozenset({Perm.VIEW_MODEL, Perm.EDIT_MODEL}),
    Role.PUBLISHER: frozenset({Perm.VIEW_MODEL, Perm.EDIT_MODEL, Perm.PUBLISH_VERSION}),
    Role.ADMIN: frozenset(Perm),
}
ROLE_ORDER = [Role.VIEWER, Role.EDITOR, Role.PUBLISHER, Role.ADMIN]
READ_ONLY_PERMISSIONS = frozenset({Perm.VIEW_MODEL})

# Attribute set on a user object by token authentication when the token is read-only.
READ_ONLY_ATTRIBUTE = "registry_read_only"
# Attribute set on a request's user object by token authentication: {context id: highest
# role}, read in the same query as the token, so permission checks need no query of their own.
ROLES_ATTRIBUTE = "registry_roles"
_RANK = {role: index for index, role in enumerate(ROLE_ORDER)}


def is_staff(user) -> bool:
    return bool(user is not None and user.is_authenticated and user.is_superuser)


def is_read_only(user) -> bool:
    return bool(getattr(user, READ_ONLY_ATTRIBUTE, False))


def roles_granting(permission: Perm) -> list[str]:
    return [role for role in ROLE_ORDER if permission in ROLE_PERMISSIONS[role]]


def _membership_filter(user, permission: Perm, prefix: str = "") -> Q:
    """Q over Context (optionally reached through `prefix`) for memberships granting `permission`."""
    roles = roles_granting(permission)
    direct = Q(**{f"{prefix}memberships__user": user, f"{prefix}memberships__role__in": roles})
    via_group = Q(
        **{f"{prefix}memberships__group__user": user, f"{prefix}memberships__role__in": roles}
    )
    return direct | via_group


def highest_roles(pairs) -> dict[int, str]:
    """{context id: highest role} from (context id, role) pairs (direct and group grants)."""
    roles: dict[int, str] = {}
    for context_id, role in pairs:
        if context_id not in roles or _RANK[role] > _RANK[roles[context_id]]:
            roles[context_id] = role
    return roles


def cached_roles(user) -> dict[int, str] | None:
    """The user's roles read with its API token (see ROLES_ATTRIBUTE), or None when unknown."""
    return getattr(user, ROLES_ATTRIBUTE, None)


def _granted_context_ids(user, permission: Perm) -> list[int] | None:
    roles = cached_roles(user)
    if roles is None:
        return None
    granting = set(roles_granting(permission))
    return [context_id for context_id, role in roles.items() if role in granting]


ALL_CONTEXTS = "all"


def context_scope(user, permission: Perm = Perm.VIEW_MODEL) -> list[int] | str | None:
    """Where `user` holds `permission`, known without a query: ALL_CONTEXTS (site staff), a list
    of context ids, or None when the roles were not read with an API token (then
    contexts_for()/models_for() ask the database). Agrees with models_for()."""
    if user is None or not user.is_authenticated:
        return []
    if is_read_only(user) and permission not in READ_ONLY_PERMISSIONS:
        return []
    if is_staff(user):
        return ALL_CONTEXTS
    return _granted_context_ids(user, permission)


def contexts_for(user, permission: Perm = Perm.VIEW_MODEL) -> QuerySet[Context]:
    """Contexts in which `user` holds `permission`."""
    if user is None or not user.is_authenticated:
        return Context.objects.none()
    if is_read_only(user) and permission not in READ_ONLY_PERMISSIONS:
        return Context.objects.none()
    if is_staff(user):
        return Context.objects.all()
    known = _granted_context_ids(user, permission)
    if known is not None:
        return Context.objects.filter(id__in=known)
    roles = roles_granting(permission)
    ids = Membership.objects.filter(
        Q(user=user) | Q(group__in=user.groups.all()), role__in=roles
    ).values("context_id")
    return Context.objects.filter(id__in=ids)


def models_for(user, permission: Perm = Perm.VIEW_MODEL) -> QuerySet[Model]:
    """Models in contexts where `user` holds `permission`; the base of every model selector."""
    if is_staff(user) and not (is_read_only(user) and permission not in READ_ONLY_PERMISSIONS):
        return Model.objects.all()
    if user is not None and user.is_authenticated and not is_staff(user):
        known = _granted_context_ids(user, permission)
        if known is not None and not (is_read_only(user) and permission not in READ_ONLY_PERMISSIONS):
            return Model.objects.filter(context_id__in=known)
    return Model.objects.filter(context__in=contexts_for(user, permission))


def effective_role(user, context: Context) -> str | None:
    """The highest role `user` holds in `context`, directly or through a group."""
    if user is None or not user.is_authenticated:
        return None
    if is_staff(user):
        return Role.ADMIN
    known = cached_roles(user)
    if known is not None:
        return known.get(context.pk)
    roles = set(
        Membership.objects.filter(context=context)
        .filter(Q(user=user) | Q(group__in=user.groups.all()))
        .values_list("role", flat=True)
    )
    for role in reversed(ROLE_ORDER):
        if role in roles:
            return role
    return None


def effective_roles(user) -> dict[int, str]:
    """{context id: the highest role `user` holds there, directly or through a group}."""
    if user is None or not user.is_authenticated:
        return {}
    known = cached_roles(user)
    if known is not None:
        return dict(known)
    return highest_roles(
        Membership.objects.filter(Q(user=user) | Q(group__in=user.groups.all())).values_list("context_id", "role")
    )


def permissions_in(user, context: Context) -> frozenset[Perm]:
    """Every permission `user` holds in `context`. `None` is the operator (manage.py)."""
    if user is None:
        return frozenset(Perm)
    cache = user.__dict__.setdefault("_registry_perm_cache", {})  # one request's user object
    if context.pk in cache:
        return cache[context.pk]
    role = effective_role(user, context)
    perms = ROLE_PERMISSIONS.get(role, frozenset()) if role else frozenset()
    if is_read_only(user):
        perms = perms & READ_ONLY_PERMISSIONS
    cache[context.pk] = perms
    return perms


def has_perm(user, context: Context, permission: Perm) -> bool:
    """True when `user` holds `permission` in `context`."""
    return permission in permissions_in(user, context)


def require(user, context: Context, permission: Perm) -> None:
    """Raise PermissionDenied (403) unless `user` holds `permission` in `context`.

    Callers reach this only for objects the user can already see, so a missing
    `view-model` never surfaces here as a 403 in practice.
    """
    if not has_perm(user, context, permission):
        if is_read_only(user) and permission not in READ_ONLY_PERMISSIONS:
            raise PermissionDenied("This token is read-only.")
        raise PermissionDenied(f"You need the '{permission}' permission in context '{context.slug}'.")


def require_staff(user) -> None:
    if not is_staff(user) or is_read_only(user):
        raise PermissionDenied("Only site staff can do this.")
