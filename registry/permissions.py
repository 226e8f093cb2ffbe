"""The only map from role to permission, and the checks the two doors and the selectors use.

Rules (SPEC §1): a user's effective role in a context is the highest one granted directly
or through a group. Site staff (superusers) can do everything. A request authenticated by a
read-only token keeps only `view-model` (token_allows(), the one place that rule is written).

Scoped tokens: a token may also be limited to contexts, to models and to permissions
(TokenScope, set on the request's user by token authentication). It never exceeds its owner's
roles: what it may do is the intersection. The scope is applied here only: contexts outside it
do not exist (context_scope, contexts_for, effective_role[s], permissions_in); a token limited
to models sees only those models (models_for, model_in_scope: 404 for others) and holds no
permission on its contexts as a whole (permissions_in without a model_id: 403 for a context-wide
list or write, such as the audit log or creating a model); a permission outside the token's
list is 403 (token_allows).

Who decides, once per request:

- Seeing. Without `view-model` a context's contents do not exist for the user: every selector
  filters through contexts_for()/models_for(), so a lookup answers 404, the same answer as for
  an object that does not exist, and nothing is learnt about other contexts.
- Doing. Each API handler and dashboard view that writes names the permission it needs:
  `@requires(Perm.X)` (registry/api/views.py, dashboard/views/base.py) or `@staff_only` (API).
  The decorator decides it on the context of the object the URL names, before the body or the
  form is read or validated: a user who can see the object but lacks the permission gets 403
  whatever they sent. tests/registry/test_permission_matrix.py and
  tests/dashboard/test_permission_decisions.py hold every door to this.
- Services do not ask again. A service checks a permission itself only when it is also called
  from somewhere no door decided for its actor: a management command, a task or another
  service acting for a user. Today those callers act for the operator (actor=None, or a user
  named only to attribute the work, as demo_setup does), who may do everything, so no service
  checks a role; a new caller of that kind must call require() itself. What no door decides
  stays in its service: token_create and token_revoke let a user act on their own tokens only
  (site staff on anyone's); the alias services ask has_perm(move-protected-alias) to choose
  between moving a protected alias and making a move request (the door decided publish-version).
- Single sign-on rules name their context in the body. Creating one is decided in two steps:
  @requires_somewhere(Perm.MANAGE_CONTEXT) before the body is read (the user manages some
  context, else 403), then sso_rule_context() on the context the body names, which answers 400
  for one the user does not manage, exactly as for one that does not exist. Deleting one is
  @requires(Perm.MANAGE_CONTEXT) on the rule's context, like any object a URL names.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

from django.db.models import Q, QuerySet

from registry.errors import InvalidInput, PermissionDenied
from registry.models import Context, Membership, Model, Role


class Perm(StrEnum):
    VIEW_MODEL = "view-model"
    EDIT_MODEL = "edit-model"
    PUBLISH_VERSION = "publish-version"
    DELETE_MODEL = "delete-model"
    MANAGE_CONTEXT = "manage-context"
    # A context's webhooks, reading included: their URLs and delivery logs say where the
    # context's events go (registry.services.webhooks).
    MANAGE_WEBHOOKS = "manage-webhooks"
    # Move a protected alias directly; without it a publisher's move becomes a move request.
    MOVE_PROTECTED_ALIAS = "move-protected-alias"


ROLE_PERMISSIONS: dict[str, frozenset[Perm]] = {
    Role.VIEWER: frozenset({Perm.VIEW_MODEL}),
    Role.EDITOR: frozenset({Perm.VIEW_MODEL, Perm.EDIT_MODEL}),
    Role.PUBLISHER: frozenset({Perm.VIEW_MODEL, Perm.EDIT_MODEL, Perm.PUBLISH_VERSION}),
    Role.ADMIN: frozenset(Perm),
}
ROLE_ORDER = [Role.VIEWER, Role.EDITOR, Role.PUBLISHER, Role.ADMIN]
READ_ONLY_PERMISSIONS = frozenset({Perm.VIEW_MODEL})
# What creating a context needs: no role grants it, only site staff (superusers) hold it.
STAFF = "site-staff"

# Attribute set on a user object by token authentication when the token is read-only.
READ_ONLY_ATTRIBUTE = "registry_read_only"
# Attribute set on a request's user object by token authentication: {context id: highest
# role}, read in the same query as the token, so permission checks need no query of their own.
ROLES_ATTRIBUTE = "registry_roles"
# Attribute set on a request's user object by token authentication: the token's TokenScope.
SCOPE_ATTRIBUTE = "registry_token_scope"
# Attribute set on a request's user object by token authentication: {slug: context id} of the
# contexts the user's roles are in, read in the same query as the token (selectors.context_get).
GRANTED_CONTEXTS_ATTRIBUTE = "registry_granted_contexts"
_RANK = {role: index for index, role in enumerate(ROLE_ORDER)}


@dataclass(frozen=True)
class TokenScope:
    """What a token is limited to, besides read-only: None in a field means no limit there.
    `models` set means the token reaches only those models (and `contexts` holds their contexts)."""

    contexts: frozenset[int] | None = None
    models: frozenset[uuid.UUID] | None = None
    permissions: frozenset[str] | None = None

    @property
    def limited(self) -> bool:
        return self.contexts is not None or self.models is not None or self.permissions is not None


def token_scope(user) -> TokenScope | None:
    """The scope of the token this request was authenticated by; None for a browser session."""
    return getattr(user, SCOPE_ATTRIBUTE, None)


def _reaches_context(user, context_id: int) -> bool:
    scope = token_scope(user)
    return scope is None or scope.contexts is None or context_id in scope.contexts


def model_in_scope(user, model_id) -> bool:
    """False when the request's token is limited to models and `model_id` is not one of them:
    such a model does not exist for the request (404). Needs no query."""
    scope = token_scope(user)
    if scope is None or scope.models is None:
        return True
    try:
        return uuid.UUID(str(model_id)) in scope.models
    except ValueError:
        return False


def is_staff(user) -> bool:
    return bool(user is not None and user.is_authenticated and user.is_superuser)


def is_read_only(user) -> bool:
    return bool(getattr(user, READ_ONLY_ATTRIBUTE, False))


def token_allows(user, permission: Perm | str) -> bool:
    """The token rules on permissions, written here only: a request authenticated by a read-only
    token keeps READ_ONLY_PERMISSIONS and nothing else, whatever the user's role (site staff
    included); a token limited to permissions keeps those only; a scoped token of site staff
    cannot act as staff (creating contexts reaches beyond any scope)."""
    if permission not in READ_ONLY_PERMISSIONS and is_read_only(user):
        return False
    scope = token_scope(user)
    if scope is None:
        return True
    if permission == STAFF:
        return not scope.limited
    return scope.permissions is None or permission in scope.permissions


def roles_granting(permission: Perm) -> list[str]:
    return [role for role in ROLE_ORDER if permission in ROLE_PERMISSIONS[role]]


def highest_roles(pairs) -> dict[int, str]:
    """{context id: highest role} from (context id, role) pairs (direct and group grants)."""
    roles: dict[int, str] = {}
    for context_id, role in pairs:
        if context_id not in roles or _RANK[role] > _RANK[roles[context_id]]:
            roles[context_id] = role
    return roles


def granted_contexts(user) -> dict[str, int] | None:
    """{slug: context id} of the contexts the user holds a role in, read with its API token (see
    GRANTED_CONTEXTS_ATTRIBUTE), or None when unknown."""
    return getattr(user, GRANTED_CONTEXTS_ATTRIBUTE, None)


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
    if user is None or not user.is_authenticated or not token_allows(user, permission):
        return []
    scope = token_scope(user)
    if is_staff(user):
        return ALL_CONTEXTS if scope is None or scope.contexts is None else sorted(scope.contexts)
    granted = _granted_context_ids(user, permission)
    if granted is None:
        return None
    return [context_id for context_id in granted if _reaches_context(user, context_id)]


def contexts_for(user, permission: Perm = Perm.VIEW_MODEL) -> QuerySet[Context]:
    """Contexts in which `user` holds `permission`."""
    scope = context_scope(user, permission)
    if scope == ALL_CONTEXTS:
        return Context.objects.all()
    if scope is not None:
        return Context.objects.filter(id__in=scope)
    ids = Membership.objects.filter(
        Q(user=user) | Q(group__in=user.groups.all()), role__in=roles_granting(permission)
    ).values("context_id")
    return Context.objects.filter(id__in=ids)


def models_for(user, permission: Perm = Perm.VIEW_MODEL) -> QuerySet[Model]:
    """Models in contexts where `user` holds `permission`; the base of every model selector."""
    scope = context_scope(user, permission)
    if scope == ALL_CONTEXTS:
        models = Model.objects.all()
    elif scope is not None:
        models = Model.objects.filter(context_id__in=scope)
    else:
        models = Model.objects.filter(context__in=contexts_for(user, permission))
    return models_in_scope(user, models)


def model_scope(user) -> list[uuid.UUID] | None:
    """The models the request's token is limited to (sorted), or None when it is not limited to
    models: for reads that start from a visible context (a context's model list). Needs no query."""
    token = token_scope(user)
    return None if token is None or token.models is None else sorted(token.models)


def models_in_scope(user, models: QuerySet[Model]) -> QuerySet[Model]:
    """`models` less those outside the request's token's models (when it is limited to models)."""
    scope = model_scope(user)
    return models if scope is None else models.filter(pk__in=scope)


def context_of(*, slug: str | None = None, model_id=None, version_number: int | None = None,
               record_id=None, sso_rule_id=None) -> Context | None:
    """The context whose rules apply to the object a URL names (a context by slug, a model by id,
    or one of its versions by number, a training record by id), whoever asks; None when there is
    no such object. For deciding a permission before the object itself is read: whether the
    asker may see it is theirs to check (has_perm(..., Perm.VIEW_MODEL))."""
    contexts = Context.objects.all()
    if slug is not None:
        return contexts.filter(slug=slug).first()
    if sso_rule_id is not None:
        return contexts.filter(sso_rules__id=sso_rule_id).first() if str(sso_rule_id).isdigit() else None
    try:
        if record_id is not None:
            return contexts.filter(records__id=uuid.UUID(str(record_id))).first()
        model_id = uuid.UUID(str(model_id))
    except ValueError:
        return None
    if version_number is None:
        return contexts.filter(models__id=model_id).first()
    return contexts.filter(models__id=model_id, models__versions__number=version_number).first()


def effective_role(user, context: Context) -> str | None:
    """The highest role `user` holds in `context`, directly or through a group."""
    if user is None or not user.is_authenticated or not _reaches_context(user, context.pk):
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
        return {context_id: role for context_id, role in known.items() if _reaches_context(user, context_id)}
    return highest_roles(
        Membership.objects.filter(Q(user=user) | Q(group__in=user.groups.all())).values_list("context_id", "role")
    )


def permissions_in(user, context: Context, *, model_id=None) -> frozenset[Perm]:
    """Every permission `user` holds in `context`, on model `model_id` when the question is about
    one (None: on the context as a whole). `None` is the operator (manage.py)."""
    if user is None:
        return frozenset(Perm)
    if not _reaches_model(user, model_id):
        return frozenset()
    cache = user.__dict__.setdefault("_registry_perm_cache", {})  # one request's user object
    if context.pk in cache:
        return cache[context.pk]
    role = effective_role(user, context)
    granted = ROLE_PERMISSIONS.get(role, frozenset()) if role else frozenset()
    perms = frozenset(permission for permission in granted if token_allows(user, permission))
    cache[context.pk] = perms
    return perms


def _reaches_model(user, model_id) -> bool:
    """A token limited to models reaches those (model_in_scope) and nothing context-wide."""
    scope = token_scope(user)
    if scope is None or scope.models is None:
        return True
    return model_id is not None and model_in_scope(user, model_id)


def has_perm(user, context: Context, permission: Perm, *, model_id=None) -> bool:
    """True when `user` holds `permission` in `context` (on model `model_id`, if about one)."""
    return permission in permissions_in(user, context, model_id=model_id)


def require(user, context: Context, permission: Perm, *, model_id=None) -> None:
    """Raise PermissionDenied (403) unless `user` holds `permission` in `context` (on model
    `model_id` when the request is about one; without it, on the context as a whole).

    Callers reach this only for objects the user can already see, so a missing
    `view-model` never surfaces here as a 403 in practice.
    """
    if not has_perm(user, context, permission, model_id=model_id):
        if not _reaches_model(user, model_id):
            raise PermissionDenied("This token is limited to some models; it cannot act on the context as a whole.")
        if is_read_only(user) and permission not in READ_ONLY_PERMISSIONS:
            raise PermissionDenied("This token is read-only.")
        if not token_allows(user, permission):
            raise PermissionDenied(f"This token is not allowed '{permission}'.")
        raise PermissionDenied(f"You need the '{permission}' permission in context '{context.slug}'.")


def require_unrestricted(user) -> None:
    """Raise PermissionDenied (403) for a request by a read-only or scoped token: creating or
    revoking tokens needs the user's whole power (a browser session or an unscoped token), so a
    token can never mint a wider one."""
    scope = token_scope(user)
    if is_read_only(user) or (scope is not None and scope.limited):
        raise PermissionDenied("A read-only or scoped token cannot create or revoke tokens.")


def require_staff(user) -> None:
    """Raise PermissionDenied (403) unless `user` is site staff, not on a read-only token."""
    if not is_staff(user) or not token_allows(user, STAFF):
        raise PermissionDenied("Only site staff can do this.")


def require_somewhere(user, permission: Perm) -> None:
    """Raise PermissionDenied (403) unless `user` holds `permission` in at least one context
    (site staff always do): the first step of a write whose context is named in its body."""
    if is_staff(user) and token_allows(user, permission):
        return
    if not token_allows(user, permission):
        raise PermissionDenied("This token is read-only.")
    if not contexts_for(user, permission).exists():
        raise PermissionDenied(f"You need the '{permission}' permission in a context.")


def sso_rule_context(user, slug) -> Context:
    """The context a new single sign-on rule names, if `user` may manage it; else 400, the same
    answer whether the context does not exist or is one the user does not manage."""
    context = contexts_for(user, Perm.MANAGE_CONTEXT).filter(slug=slug).first() if isinstance(slug, str) else None
    if context is None:
        raise InvalidInput(f"There is no context '{str(slug)[:50]}' that you manage.", field="context")
    return context
