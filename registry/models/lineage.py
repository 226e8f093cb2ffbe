"""What produced a version: training records (datasets) and metrics."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from registry.models.catalog import Model, Version
from registry.models.contexts import Context


class TrainingRecord(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    context = models.ForeignKey(Context, on_delete=models.CASCADE, related_name="records")
    name = models.CharField(max_length=200)
    uri = models.CharField(max_length=2000)
    checksum = models.CharField(max_length=200, blank=True, default="")
    description = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "created_at"]
        constraints = [models.UniqueConstraint(fields=["context", "name"], name="record_unique_name")]

    def __str__(self) -> str:
        return self.name


# A point holds exactly one value, a number or a text; the database enforces it too.
ONE_VALUE = (Q(value_number__isnull=False, value_text__isnull=True)
             | Q(value_number__isnull=True, value_text__isnull=False))


class MetricPoint(models.Model):
    """The fields and rules a metric point has whatever it is logged on (a version or a model)."""

    key = models.CharField(max_length=200)
    value_number = models.FloatField(null=True, blank=True)
    value_text = models.CharField(max_length=500, null=True, blank=True)
    step = models.BigIntegerField(null=True, blank=True)
    wallclock = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True
        ordering = ["key", "step", "wallclock", "id"]

    @property
    def value(self):
        return self.value_number if self.value_number is not None else self.value_text


class Metric(MetricPoint):
    version = models.ForeignKey(Version, on_delete=models.CASCADE, related_name="metrics")

    class Meta(MetricPoint.Meta):
        constraints = [models.CheckConstraint(condition=ONE_VALUE, name="metric_one_value")]
        indexes = [models.Index(fields=["version", "key", "step"], name="metric_lookup")]


class ModelMetric(MetricPoint):
    """A metric of the model itself, beside its versions' (ModelBox): a monitoring figure such
    as drift or traffic, logged over time whatever version serves."""

    model = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="metrics")

    class Meta(MetricPoint.Meta):
        constraints = [models.CheckConstraint(condition=ONE_VALUE, name="model_metric_one_value")]
        indexes = [models.Index(fields=["model", "key", "step"], name="model_metric_lookup")]
