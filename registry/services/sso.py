"""Single sign-on: the rules that map a claim's values to context roles, and what a sign-in does
with the claims the identity provider vouched for (registry/sso.py checks them first).

How SSO roles and hand-granted roles combine: a user may hold one membership of each source in
a context (MembershipSource); the highest role counts, as with group grants. Every sign-in
re-evaluates the user's `sso` memberships from the rules and the claim's values it carries:
a rule that no longer matches (the user left the group at the provider, or the claim is
missing) takes its role away, a new match grants one. Roles granted by hand are never touched
by a sign-in, and an admin's member changes act on them only. Deleting a rule takes away at once
the roles it granted (it is their `sso_rule`); another rule that still matches grants its role
back at the user's next sign-in.
"""

from __future__ import annotations

import re
import unicodedata

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from registry.errors import Conflict, InvalidInput
from registry.models import Context, Membership, MembershipSource, Role, SsoIdentity, SsoRule
from registry.models.sso import CLAIM_VALUE_MAX_LENGTH
from registry.permissions import ROLE_ORDER
from registry.services.common import audit, clean_text, lock_for_update

USERNAME_MAX_LENGTH = 150
# Django's username validator: letters, digits and @ . + - _
_USERNAME_UNSAFE = re.compile(r"[^\w.@+-]", re.ASCII)
# How many "-2", "-3"... suffixes a new account's username tries before taking a random one.
USERNAME_SUFFIXES_TRIED = 50


# --- rules -----------------------------------------------------------------------------------

def clean_claim_value(value) -> str:
    """A claim value a rule matches: 1-255 characters, compared exactly (case included), as
    providers send group names."""
    value = clean_text(value, field="claim_value", max_length=CLAIM_VALUE_MAX_LENGTH, allow_blank=False)
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        raise InvalidInput("A claim value cannot contain control characters.", field="claim_value")
    return value


@transaction.atomic
def sso_rule_create(*, actor, context: Context, claim_value: str, role: str) -> SsoRule:
    """Whoever signs in with `claim_value` among the roles claim's values holds `role` in
    `context`, from their next sign-in on. One rule per value and context (409 for a second)."""
    claim_value = clean_claim_value(claim_value)
    if role not in Role.values:
        raise InvalidInput(f"Role must be one of {', '.join(Role.values)}.", field="role")
    lock_for_update(Context).filter(pk=context.pk).first()
    if SsoRule.objects.filter(context=context, claim_value=claim_value).exists():
        raise Conflict(f"'{claim_value}' already has a rule in {context.slug}; delete it first to change its role.",
                       field="claim_value")
    try:
        with transaction.atomic():
            rule = SsoRule.objects.create(context=context, claim_value=claim_value, role=role,
                                          created_by=actor if actor is not None and actor.is_authenticated else None)
    except IntegrityError:
        raise Conflict(f"'{claim_value}' already has a rule in {context.slug}.", field="claim_value") from None
    audit(actor=actor, context=context, action="sso_rule.create", object_type="ssorule", object_id=str(rule.pk),
          object_repr=claim_value, summary=f"single sign-on: '{claim_value}' grants {role} in {context.slug}",
          changes={"claim_value": [None, claim_value], "role": [None, role]})
    return rule


@transaction.atomic
def sso_rule_delete(*, actor, rule: SsoRule) -> int:
    """Delete a rule and, at once, the roles it granted (audited one by one). Returns how many."""
    context = rule.context
    lock_for_update(Context).filter(pk=context.pk).first()
    granted = list(Membership.objects.filter(sso_rule=rule).select_related("user"))
    for membership in granted:
        membership.delete()
        label = f"user {membership.user.username}"
        audit(actor=actor, context=context, action="member.remove", object_type="membership",
              object_id=str(membership.pk), object_repr=label,
              summary=f"removed {label} ({membership.role}): its single sign-on rule '{rule.claim_value}' was deleted",
              changes={"role": [membership.role, None], "source": MembershipSource.SSO})
    rule_id = rule.pk
    rule.delete()
    audit(actor=actor, context=context, action="sso_rule.delete", object_type="ssorule", object_id=str(rule_id),
          object_repr=rule.claim_value,
          summary=f"single sign-on: deleted the rule '{rule.claim_value}' → {rule.role} in {context.slug}",
          changes={"claim_value": [rule.claim_value, None], "role": [rule.role, None]})
    return len(granted)


# --- sign-in ---------------------------------------------------------------------------------

def claim_values(claims: dict, claim: str) -> list[str]:
    """The values of `claim`: a list of strings, or one string; anything else counts as none
    (fail closed: a claim the provider stopped sending takes every SSO role away)."""
    value = claims.get(claim)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return []
    return sorted({item for item in value if isinstance(item, str) and item})


def _username_base(claims: dict, username_claim: str) -> str:
    for candidate in (claims.get(username_claim), str(claims.get("email") or "").split("@")[0]):
        if isinstance(candidate, str):
            cleaned = _USERNAME_UNSAFE.sub("-", unicodedata.normalize("NFKC", candidate)).strip("-.")
            if cleaned:
                return cleaned[: USERNAME_MAX_LENGTH - 8]
    return "user"


def _create_user(claims: dict, username_claim: str):
    """A new account named after the username claim (or the e-mail's local part). An existing
    username is never taken over: the new account is `name-2`, `name-3`..."""
    import secrets

    User = get_user_model()
    base = _username_base(claims, username_claim)
    candidates = [base] + [f"{base}-{n}" for n in range(2, USERNAME_SUFFIXES_TRIED + 2)]
    candidates.append(f"{base}-{secrets.token_hex(4)}")
    for username in candidates:
        if User.objects.filter(username__iexact=username).exists():
            continue
        try:
            with transaction.atomic():
                user = User(username=username)
                user.set_unusable_password()  # signs in through the provider only
                user.save()
                return user
        except IntegrityError:
            continue  # taken between the check and the insert
    raise Conflict("No free username could be found for this account; ask an administrator.")


def _profile_changes(user, claims: dict) -> list[str]:
    changed = []
    for field, claim, limit in (("email", "email", 254), ("first_name", "given_name", 150),
                                ("last_name", "family_name", 150)):
        value = claims.get(claim)
        if isinstance(value, str) and "\x00" not in value and getattr(user, field) != value[:limit]:
            setattr(user, field, value[:limit])
            changed.append(field)
    return changed


@transaction.atomic
def sso_sign_in(*, issuer: str, claims: dict, roles_claim: str, username_claim: str):
    """The account the provider's subject (`sub`) signs in as, created on its first sign-in,
    its profile (e-mail, names) refreshed from the claims and its SSO roles re-evaluated from
    the roles claim. `claims` were verified by the caller (signature, issuer, audience, nonce)."""
    subject = claims["sub"]
    identity = lock_for_update(SsoIdentity).filter(issuer=issuer, subject=subject).select_related("user").first()
    if identity is None:
        user = _create_user(claims, username_claim)
        try:
            with transaction.atomic():
                identity = SsoIdentity.objects.create(user=user, issuer=issuer, subject=subject)
        except IntegrityError:
            # The same subject's first sign-in in two tabs at once: the other one won.
            raise Conflict("This account is being created by another sign-in; try again.") from None
        audit(actor=user, context=None, action="user.create", obj=user,
              summary=f"single sign-on: created account {user.username} for subject {subject[:100]}")
    user = identity.user
    changed = _profile_changes(user, claims)
    if changed:
        user.save(update_fields=changed)
    values = claim_values(claims, roles_claim)
    identity.claim_values = values
    identity.last_sign_in_at = timezone.now()
    identity.save(update_fields=["claim_values", "last_sign_in_at"])
    sso_roles_apply(user=user, values=values)
    return user


def sso_roles_apply(*, user, values: list[str]) -> None:
    """Make the user's `sso` memberships what the rules say for these claim values: the highest
    role among the matching rules of each context; none where no rule matches."""
    rank = {role: index for index, role in enumerate(ROLE_ORDER)}
    wanted: dict[int, SsoRule] = {}
    for rule in SsoRule.objects.filter(claim_value__in=values).select_related("context").order_by("pk"):
        best = wanted.get(rule.context_id)
        if best is None or rank[rule.role] > rank[best.role]:
            wanted[rule.context_id] = rule
    held = {m.context_id: m for m in
            lock_for_update(Membership.objects.filter(user=user, source=MembershipSource.SSO)).select_related("context")}
    label = f"user {user.username}"
    for context_id, membership in held.items():
        if context_id not in wanted:
            membership_id = membership.pk
            membership.delete()
            audit(actor=user, context=membership.context, action="member.remove", object_type="membership",
                  object_id=str(membership_id), object_repr=label,
                  summary=f"single sign-on: removed {label} ({membership.role}): no rule matches any more",
                  changes={"role": [membership.role, None], "source": MembershipSource.SSO})
    for context_id, rule in wanted.items():
        membership = held.get(context_id)
        if membership is None:
            membership = Membership.objects.create(context=rule.context, user=user, role=rule.role,
                                                   source=MembershipSource.SSO, sso_rule=rule)
            audit(actor=user, context=rule.context, action="member.add", object_type="membership",
                  object_id=str(membership.pk), object_repr=label,
                  summary=f"single sign-on: granted {rule.role} to {label} (rule '{rule.claim_value}')",
                  changes={"role": [None, rule.role], "source": MembershipSource.SSO})
        elif membership.role != rule.role or membership.sso_rule_id != rule.pk:
            old = membership.role
            membership.role, membership.sso_rule = rule.role, rule
            membership.save(update_fields=["role", "sso_rule"])
            if old != rule.role:
                audit(actor=user, context=rule.context, action="member.change", object_type="membership",
                      object_id=str(membership.pk), object_repr=label,
                      summary=f"single sign-on: changed {label} from {old} to {rule.role} (rule '{rule.claim_value}')",
                      changes={"role": [old, rule.role], "source": MembershipSource.SSO})
