"""The audit log: who did what, when, in which context, to which object."""

from django.conf import settings
from django.db import models

from registry.models.contexts import Context


class AuditEvent(models.Model):
    context = models.ForeignKey(Context, null=True, blank=True, on_delete=models.CASCADE, related_name="audit_events")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # Kept as text so the log still names who acted after the user is deleted.
    actor_name = models.CharField(max_length=150)
    action = models.CharField(max_length=64)
    object_type = models.CharField(max_length=32)
    object_id = models.CharField(max_length=64, blank=True, default="")
    object_repr = models.CharField(max_length=300, blank=True, default="")
    summary = models.CharField(max_length=500)
    changes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        # Each serves a page of the log in its order (keyset pagination: newest first, the id
        # breaking ties), for the whole context or filtered by who acted or on what.
        indexes = [
            models.Index(fields=["context", "-created_at", "-id"], name="audit_ctx_time_id"),
            models.Index(fields=["context", "actor_name", "-created_at", "-id"], name="audit_ctx_actor"),
            models.Index(fields=["context", "object_id", "-created_at", "-id"], name="audit_ctx_object"),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_name} {self.action} {self.object_repr}"
