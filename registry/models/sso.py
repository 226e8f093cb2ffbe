"""Single sign-on (OpenID Connect): who a provider's subject is here, and the rules that turn a
claim's values into roles (registry/services/sso.py applies them at every sign-in)."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from registry.models.contexts import Context, Role

# Group names at identity providers are short; the margin is for DNs ("cn=ml,ou=groups,dc=...").
CLAIM_VALUE_MAX_LENGTH = 255


class SsoIdentity(models.Model):
    """The account a provider's `sub` signs in as. Users are matched by (issuer, sub), never by
    e-mail: an address can change hands at the provider, a subject cannot."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sso_identity")
    issuer = models.CharField(max_length=500)
    subject = models.CharField(max_length=255)
    # The roles claim's values at the last sign-in, to show on the rules page.
    claim_values = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_sign_in_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["issuer", "subject"], name="sso_identity_unique_subject"),
        ]

    def __str__(self) -> str:
        return f"{self.subject} @ {self.issuer}"


class SsoRule(models.Model):
    """Whoever signs in with `claim_value` among the values of the roles claim
    (REGISTRY_OIDC_ROLES_CLAIM, e.g. `groups`) holds `role` in `context`."""

    claim_value = models.CharField(max_length=CLAIM_VALUE_MAX_LENGTH)
    context = models.ForeignKey(Context, on_delete=models.CASCADE, related_name="sso_rules")
    role = models.CharField(max_length=16, choices=Role.choices)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["claim_value", "context__slug"]
        constraints = [
            models.UniqueConstraint(fields=["claim_value", "context"], name="sso_rule_unique_value_context"),
            models.CheckConstraint(condition=Q(role__in=Role.values), name="sso_rule_role_valid"),
            models.CheckConstraint(condition=~Q(claim_value=""), name="sso_rule_has_value"),
        ]

    def __str__(self) -> str:
        return f"{self.claim_value} → {self.role} in {self.context_id}"
