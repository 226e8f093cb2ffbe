"""Attachments: files that belong to a model itself, not to one of its versions (ModelBox's
model-level artifacts): a model card, a monitoring report, a drift plot, a CSV of benchmark
results. The registry stores and serves them; it never opens, loads or renders them.

Not called "artifacts": an artifact here is a format kind (an ADS zip model artifact, one
serialized file of a version), and "files" are a version's formats and external files.
"""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Length
from django.db.models.lookups import Exact

from registry.models.catalog import Model


class ModelAttachment(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    model = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="attachments")
    # As given, cleaned (registry.services.attachments.clean_attachment_name): a file name, never a path.
    name = models.CharField(max_length=200)
    # The name case-folded: unique per model, so "Report.pdf" and "report.pdf" are one attachment.
    name_key = models.CharField(max_length=200)
    # Chosen by the server (registry.storage.new_storage_key); never derived from client input.
    storage_key = models.CharField(max_length=255, db_index=True)
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    # Decided by the server from the name and the first bytes, never taken from the client.
    content_type = models.CharField(max_length=100, default="application/octet-stream")
    description = models.CharField(max_length=500, blank=True, default="")
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    uploaded_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name_key"]
        constraints = [
            models.UniqueConstraint(fields=["model", "name_key"], name="attachment_name_unique_per_model"),
            models.CheckConstraint(condition=Q(size__gte=0), name="attachment_size_not_negative"),
            models.CheckConstraint(condition=Exact(Length("sha256"), 64), name="attachment_sha256_has_64_characters"),
        ]

    def __str__(self) -> str:
        return self.name
