"""Contexts (team workspaces), who belongs to them, and API tokens."""

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q


class Role(models.TextChoices):
    """Roles in rising order of power; permissions live in registry.permissions."""

    VIEWER = "viewer", "Viewer"
    EDITOR = "editor", "Editor"
    PUBLISHER = "publisher", "Publisher"
    ADMIN = "admin", "Admin"


slug_validator = RegexValidator(
    r"^[a-z0-9](?:[a-z0-9-]{0,48}[a-z0-9])?$",
    "A slug is 1-50 lowercase letters, digits and dashes, not starting or ending with a dash.",
)


class Context(models.Model):
    slug = models.SlugField(max_length=50, unique=True, validators=[slug_validator])
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class MembershipSource(models.TextChoices):
    """Who granted a membership: an admin by hand, or a single sign-on rule (registry/sso.py).

    A user may hold one of each in a context; the highest role counts, as with group grants.
    Sign-in re-evaluates only the `sso` ones; hand-granted roles are left alone."""

    MANUAL = "manual", "By hand"
    SSO = "sso", "Single sign-on rule"


class Membership(models.Model):
    """One role held in one context by either a user or a group (never both)."""

    context = models.ForeignKey(Context, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE,
        related_name="registry_memberships",
    )
    group = models.ForeignKey(
        Group, null=True, blank=True, on_delete=models.CASCADE, related_name="registry_memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    source = models.CharField(max_length=8, choices=MembershipSource.choices, default=MembershipSource.MANUAL)
    # The rule that granted an `sso` membership: deleting the rule takes the role away at once.
    sso_rule = models.ForeignKey(
        "registry.SsoRule", null=True, blank=True, on_delete=models.CASCADE, related_name="memberships"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(Q(user__isnull=False, group__isnull=True) | Q(user__isnull=True, group__isnull=False)),
                name="membership_user_xor_group",
            ),
            models.CheckConstraint(condition=Q(role__in=Role.values), name="membership_role_valid"),
            # A hand-granted membership names no rule; an SSO one is a user's and names its rule.
            models.CheckConstraint(
                condition=(Q(source=MembershipSource.MANUAL, sso_rule__isnull=True)
                           | Q(source=MembershipSource.SSO, sso_rule__isnull=False, user__isnull=False)),
                name="membership_source_valid",
            ),
            models.UniqueConstraint(fields=["context", "user", "source"], name="membership_unique_user"),
            models.UniqueConstraint(fields=["context", "group"], name="membership_unique_group"),
        ]

    @property
    def principal_name(self) -> str:
        return self.user.username if self.user_id else self.group.name

    @property
    def principal_kind(self) -> str:
        return "user" if self.user_id else "group"


class TokenReach(models.TextChoices):
    """How far a token reaches: every context of its owner, the contexts it names, or only the
    models it names (in their contexts). Read by registry.permissions."""

    ALL = "all", "All contexts"
    CONTEXTS = "contexts", "Some contexts"
    MODELS = "models", "Some models"


class ApiToken(models.Model):
    """A bearer token. Only the SHA-256 of the token is stored; the token is shown once.

    Its scope (registry.permissions.TokenScope): `reach` with `scope_contexts` / `scope_models`,
    and `scope_permissions` (null: every permission the owner's roles grant). A scoped model
    that is deleted leaves the token reaching fewer models, never more (reach stays `models`).
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True, default="")
    prefix = models.CharField(max_length=16, help_text="First characters, to recognise a token in lists.")
    key_hash = models.CharField(max_length=64, unique=True)
    read_only = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    reach = models.CharField(max_length=16, choices=TokenReach.choices, default=TokenReach.ALL)
    scope_contexts = models.ManyToManyField(Context, blank=True, related_name="+")
    scope_models = models.ManyToManyField("registry.Model", blank=True, related_name="+")
    scope_permissions = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.CheckConstraint(condition=Q(reach__in=TokenReach.values), name="token_reach_valid")]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"
