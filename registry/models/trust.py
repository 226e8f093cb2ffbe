"""Trusted imports: third-party globals a publisher approved for the pickles of one context."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from registry.models.contexts import Context

# A dotted Python path is rarely longer than 200 characters; the margin is for deep packages.
TRUSTED_IMPORT_MAX_LENGTH = 512


class TrustedImport(models.Model):
    """`name` is "module.qualname" as the pickle scanner reports it (report.details["unvetted"]).

    A pickle whose only unvetted imports are trusted in its context becomes `ready` instead of
    `review` (SPEC §2). The report itself keeps saying "review", so a revoke can be re-evaluated.
    """

    context = models.ForeignKey(Context, on_delete=models.CASCADE, related_name="trusted_imports")
    name = models.CharField(max_length=TRUSTED_IMPORT_MAX_LENGTH)
    reason = models.TextField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["context", "name"], name="trusted_import_unique_name"),
            models.CheckConstraint(condition=~Q(reason=""), name="trusted_import_has_reason"),
        ]

    def __str__(self) -> str:
        return self.name
