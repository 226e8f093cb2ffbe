"""Protected aliases, and the requests to move one that a second person approves (SPEC §1, §3)."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower

from registry.models.catalog import Model
from registry.models.contexts import Context


class ProtectedAlias(models.Model):
    """An alias name (`production`) protected in a context: moving an alias of that name, on any
    model of the context, needs `move-protected-alias` (admins) or an approved move request.
    Names match case-insensitively, so `Production` is protected with `production`."""

    context = models.ForeignKey(Context, on_delete=models.CASCADE, related_name="protected_aliases")
    name = models.CharField(max_length=64)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(Lower("name"), "context", name="protected_alias_unique_name")]

    def __str__(self) -> str:
        return self.name


class MoveAction(models.TextChoices):
    SET = "set", "Set or move"
    ROLLBACK = "rollback", "Roll back"
    DELETE = "delete", "Remove"


class RequestStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    WITHDRAWN = "withdrawn", "Withdrawn"


class AliasMoveRequest(models.Model):
    """A publisher's move of a protected alias, waiting for a second publisher or an admin.

    `from_number` is where the alias pointed when the move was asked for (None: it did not
    exist); approving refuses (409) if it has moved since, so what was reviewed is what happens.
    `to_number` is None for a removal. At most one request per alias is pending."""

    model = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="alias_requests")
    alias_name = models.CharField(max_length=64)
    action = models.CharField(max_length=16, choices=MoveAction.choices)
    from_number = models.PositiveIntegerField(null=True, blank=True)
    to_number = models.PositiveIntegerField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=RequestStatus.choices, default=RequestStatus.PENDING)
    comment = models.TextField(blank=True, default="")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_at = models.DateTimeField(auto_now_add=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_comment = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-requested_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["model", "alias_name"], condition=Q(status=RequestStatus.PENDING),
                                    name="alias_request_one_pending"),
            models.CheckConstraint(condition=Q(status__in=RequestStatus.values), name="alias_request_status_valid"),
            models.CheckConstraint(condition=Q(action__in=MoveAction.values), name="alias_request_action_valid"),
            models.CheckConstraint(condition=Q(action="delete", to_number__isnull=True)
                                   | (~Q(action="delete") & Q(to_number__isnull=False)),
                                   name="alias_request_target"),
        ]
        indexes = [models.Index(fields=["model", "status", "-requested_at"], name="alias_request_lookup")]

    def __str__(self) -> str:
        return f"request #{self.pk} to {self.action} {self.alias_name}"
