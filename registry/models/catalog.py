"""Models, their versions, tags and aliases."""

import uuid

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.db.models import Q
from django.db.models.functions import Cast, Upper

from registry.models.contexts import Context


class Tag(models.Model):
    """A free-form label shared by models and versions; `key` is its case-folded form."""

    name = models.CharField(max_length=32)
    key = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return self.name


class Model(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    context = models.ForeignKey(Context, on_delete=models.CASCADE, related_name="models")
    name = models.CharField(max_length=200)
    # The cleaned, case-folded name (registry.names): what ?name= and the ordering use.
    name_key = models.CharField(max_length=400, editable=False)
    # SHA-256 of the name's confusable skeleton (registry.names.lookalike_key): names a reader
    # could mistake for each other share it, and the constraint below refuses the second.
    name_skeleton = models.CharField(max_length=64, editable=False)
    description = models.TextField(blank=True, default="")
    tags = models.ManyToManyField(Tag, blank=True, related_name="models")
    task = models.CharField(max_length=200, blank=True, default="")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    metadata = models.JSONField(default=dict, blank=True)
    # Version numbers are handed out from this counter under a row lock and never reused.
    next_version_number = models.PositiveIntegerField(default=1, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)
    # What the API's search compares with (UPPER(...) LIKE UPPER(term), as icontains does on
    # PostgreSQL), kept by the database so a search does not upper-case every row again.
    name_upper = models.GeneratedField(
        expression=Upper(Cast("name", models.TextField())), output_field=models.TextField(), db_persist=True
    )
    description_upper = models.GeneratedField(
        expression=Upper("description"), output_field=models.TextField(), db_persist=True
    )

    class Meta:
        ordering = ["name_key"]
        constraints = [
            models.UniqueConstraint(fields=["context", "name_key"], name="model_unique_name_in_context"),
            models.UniqueConstraint(fields=["context", "name_skeleton"], name="model_unique_lookalike_in_context"),
            models.CheckConstraint(condition=Q(next_version_number__gte=1), name="model_next_version_positive"),
        ]
        indexes = [
            models.Index(fields=["context", "updated_at"], name="model_ctx_updated"),
            models.Index(fields=["context", "created_at"], name="model_ctx_created"),
            # The search (selectors.model_list): substrings of the upper-cased copies, found by
            # trigrams. PostgreSQL only (pg_trgm); migration 0011 skips them elsewhere.
            GinIndex(fields=["name_upper"], opclasses=["gin_trgm_ops"], name="model_name_trgm"),
            GinIndex(fields=["description_upper"], opclasses=["gin_trgm_ops"], name="model_description_trgm"),
        ]

    def __str__(self) -> str:
        return self.name


class VersionStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    PUBLISHED = "published", "Published"


class Version(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    model = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    name = models.CharField(max_length=200, blank=True, default="")
    description = models.TextField(blank=True, default="")
    tags = models.ManyToManyField(Tag, blank=True, related_name="versions")
    hyperparameters = models.JSONField(default=dict, blank=True)
    config = models.JSONField(default=dict, blank=True)
    framework = models.CharField(max_length=100, blank=True, default="")
    framework_version = models.CharField(max_length=100, blank=True, default="")
    records = models.ManyToManyField("registry.TrainingRecord", blank=True, related_name="versions")
    metadata = models.JSONField(default=dict, blank=True)
    signature = models.JSONField(default=dict, blank=True)
    # Files of the manifest the registry does not store (s3://, gs://, https://, data://), each
    # {name, source_uri, sha256_checksum, md5_checksum?, size?, filename, required, fail_on_tamper}:
    # registry/external_files.py validates them, registry/manifests.py lists them.
    external_files = models.JSONField(default=list, blank=True)
    # Where the signature came from: "client" (given explicitly, never overwritten),
    # "contract"/"introspection" (found in a file), or "" (none yet).
    signature_source = models.CharField(max_length=16, blank=True, default="")
    status = models.CharField(max_length=16, choices=VersionStatus.choices, default=VersionStatus.DRAFT)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    published_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model", "number"]
        constraints = [
            models.UniqueConstraint(fields=["model", "number"], name="version_unique_number"),
            models.CheckConstraint(condition=Q(number__gte=1), name="version_number_positive"),
            models.CheckConstraint(condition=Q(status__in=VersionStatus.values), name="version_status_valid"),
            models.CheckConstraint(
                condition=Q(status=VersionStatus.DRAFT) | Q(published_at__isnull=False),
                name="version_published_has_time",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model.name} v{self.number}"

    @property
    def is_published(self) -> bool:
        return self.status == VersionStatus.PUBLISHED

    @property
    def model_type(self) -> str:
        if not self.framework:
            return ""
        return f"{self.framework}:{self.framework_version}" if self.framework_version else self.framework


class Alias(models.Model):
    """A named pointer (production, staging...) to one published version of a model."""

    model = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="aliases")
    name = models.CharField(max_length=64)
    # RESTRICT: a version an alias points at cannot be deleted on its own (move the alias
    # first), but deleting the whole model takes both.
    version = models.ForeignKey(Version, on_delete=models.RESTRICT, related_name="aliases")
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["model", "name"], name="alias_unique_name")]


class AliasMove(models.Model):
    """History of an alias. Numbers, not foreign keys, so history outlives deleted versions."""

    model = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="alias_moves")
    alias_name = models.CharField(max_length=64)
    from_number = models.PositiveIntegerField(null=True, blank=True)
    to_number = models.PositiveIntegerField(null=True, blank=True)  # null: the alias was removed
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["model", "alias_name", "-created_at"], name="aliasmove_lookup")]
