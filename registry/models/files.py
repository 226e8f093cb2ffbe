"""Formats: the serialized files of a version."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from registry.models.catalog import Version


class FormatKind(models.TextChoices):
    PKL = "pkl", "Pickle"
    JOBLIB = "joblib", "Joblib"
    PT = "pt", "PyTorch"
    ONNX = "onnx", "ONNX"
    PMML = "pmml", "PMML"
    SAFETENSORS = "safetensors", "safetensors"
    RDA = "rda", "R data"
    H5 = "h5", "Keras / HDF5"
    SAVEDMODEL = "savedmodel", "TF SavedModel (zip)"
    # A zip model artifact in the sense of ADS (runtime.yaml, score.py, schemas: SPEC §2). It is
    # the only meaning of "artifact" here: one file of a version is a format, everywhere.
    ARTIFACT = "artifact", "Model artifact (zip)"
    OTHER = "other", "Other"


class FormatStatus(models.TextChoices):
    PENDING = "pending", "Pending (no file yet)"
    UPLOADED = "uploaded", "Uploaded"
    HASHING = "hashing", "Hashing"
    INTROSPECTING = "introspecting", "Introspecting"
    READY = "ready", "Ready"
    # Imports third-party globals that are neither on the scanner's allow-list nor trusted in
    # the context: a publisher approves them (registry.services.trusted_imports).
    REVIEW = "review", "Needs review"
    CORRUPT = "corrupt", "Corrupt"
    QUARANTINED = "quarantined", "Quarantined"
    FAILED = "failed", "Failed"


class Format(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    version = models.ForeignKey(Version, on_delete=models.CASCADE, related_name="formats")
    kind = models.CharField(max_length=16, choices=FormatKind.choices)
    # Chosen by the server (registry.storage.new_storage_key); never derived from client input.
    storage_key = models.CharField(max_length=255, blank=True, default="")
    original_filename = models.CharField(max_length=255, blank=True, default="")
    size = models.BigIntegerField(null=True, blank=True)
    content_type = models.CharField(max_length=255, blank=True, default="")
    md5 = models.CharField(max_length=32, blank=True, default="")
    sha256 = models.CharField(max_length=64, blank=True, default="")
    declared_md5 = models.CharField(max_length=32, blank=True, default="")
    declared_sha256 = models.CharField(max_length=64, blank=True, default="")
    status = models.CharField(max_length=16, choices=FormatStatus.choices, default=FormatStatus.PENDING)
    status_message = models.TextField(blank=True, default="")
    report = models.JSONField(default=dict, blank=True)
    # The version's model manifest (SPEC §4): a required file is fetched eagerly by a
    # consumer, an optional one lazily; a checksum mismatch on a fail_on_tamper file is an
    # error for the consumer, otherwise a warning. Editable until the version is published.
    required = models.BooleanField(default=True)
    fail_on_tamper = models.BooleanField(default=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    uploaded_at = models.DateTimeField(null=True, blank=True)
    # A verification (re-hash) of the stored file asked for by a tamper report and not started
    # yet: later reports add none while it waits (registry.services.tamper).
    verify_requested_at = models.DateTimeField(null=True, blank=True)
    # While a hashing or introspection task works on the file, the moment its hold (lease) on
    # the format runs out unless renewed; once past, the moment it was let go. Empty: never held
    # since the upload. The reconciler queues again only a format no task has held for a while
    # (registry.services.processing).
    processing_lease_until = models.DateTimeField(null=True, blank=True)
    # How many times the reconciler took this file back from a task that started on it and was
    # let go without finishing (a worker killed at its time limit, a crash) since its upload.
    processing_attempts = models.PositiveSmallIntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["version", "kind"]
        constraints = [
            models.UniqueConstraint(fields=["version", "kind"], name="format_unique_kind"),
            models.UniqueConstraint(
                fields=["storage_key"], condition=~Q(storage_key=""), name="format_unique_storage_key"
            ),
            models.CheckConstraint(condition=Q(kind__in=FormatKind.values), name="format_kind_valid"),
            models.CheckConstraint(condition=Q(status__in=FormatStatus.values), name="format_status_valid"),
            models.CheckConstraint(
                condition=Q(status=FormatStatus.PENDING) | ~Q(storage_key=""),
                name="format_file_when_not_pending",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.version} [{self.kind}]"

    @property
    def has_file(self) -> bool:
        return bool(self.storage_key)


class UploadSession(models.Model):
    """A file being sent straight to the bucket in parts (S3 multipart), not through the web
    processes. The client asks for presigned part URLs, sends the parts (in parallel, resuming
    from the parts already stored), and completes the session; only then does the file become
    the format's, `uploaded`, and the workers hash it against `declared_sha256` as usual. A
    session not completed by `expires_at` is aborted by the storage sweep."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    version = models.ForeignKey(Version, on_delete=models.CASCADE, related_name="upload_sessions")
    kind = models.CharField(max_length=16)
    storage_key = models.CharField(max_length=255)
    upload_id = models.CharField(max_length=1024)
    size = models.BigIntegerField()
    part_size = models.BigIntegerField()
    declared_sha256 = models.CharField(max_length=64)
    original_filename = models.CharField(max_length=255, blank=True, default="")
    content_type = models.CharField(max_length=255, blank=True, default="")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["version", "kind"], name="upload_session_one_per_kind")]

    @property
    def part_count(self) -> int:
        return max(1, -(-self.size // self.part_size))

    def expected_part_size(self, number: int) -> int:
        if number < self.part_count:
            return self.part_size
        return self.size - self.part_size * (self.part_count - 1)
