"""Training records (datasets) and metrics."""

from __future__ import annotations

import math
from datetime import datetime
from datetime import timezone as dt_timezone
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from registry.errors import Conflict, InvalidInput, NameTaken
from registry.models import Context, Metric, Model, ModelMetric, TrainingRecord, Version, VersionStatus
from registry.services.common import (
    apply_changes,
    audit,
    check_storable,
    clean_text,
    describe_changes,
    lock_one,
    normalize_name,
)

MAX_METRICS_PER_CALL = 10_000
# What Metric.step (a BigIntegerField) holds.
STEP_MIN, STEP_MAX = -(2**63), 2**63 - 1
UNSET: Any = object()


def _record_values(fields: dict[str, Any]) -> dict[str, Any]:
    values = {}
    if "name" in fields:
        values["name"] = normalize_name(fields["name"], max_length=200)[0]  # cleaned as model names are
    if "uri" in fields:
        values["uri"] = clean_text(fields["uri"], field="uri", max_length=2000, allow_blank=False)
    if "checksum" in fields:
        values["checksum"] = clean_text(fields["checksum"], field="checksum", max_length=200)
    if "description" in fields:
        values["description"] = clean_text(fields["description"], field="description")
    return values


def _record_name_taken(name: str) -> NameTaken:
    return NameTaken(f"A training record named '{name}' already exists in this context.", field="name")


@transaction.atomic
def record_create(*, actor, context: Context, name: str, uri: str, checksum: str = "", description: str = "") -> TrainingRecord:
    """Register a training dataset in `context`; versions link to it."""
    values = _record_values({"name": name, "uri": uri, "checksum": checksum, "description": description})
    try:
        with transaction.atomic():
            record = TrainingRecord.objects.create(context=context, created_by=actor, **values)
    except IntegrityError:
        raise _record_name_taken(values["name"]) from None
    audit(actor=actor, context=context, action="record.create", obj=record, summary=f"created training record {record.name}")
    return record


@transaction.atomic
def record_update(*, actor, record: TrainingRecord, **fields) -> TrainingRecord:
    record = lock_one(TrainingRecord.objects.select_related("context"), pk=record.pk)
    values = _record_values(fields)
    changes = apply_changes(record, values)
    if changes:
        try:
            with transaction.atomic():
                record.save(update_fields=list(values))
        except IntegrityError:
            raise _record_name_taken(record.name) from None
        audit(actor=actor, context=record.context, action="record.update", obj=record,
              summary=f"changed {describe_changes(changes)}", changes=changes)
    return record


@transaction.atomic
def record_delete(*, actor, record: TrainingRecord) -> None:
    """Delete a training record. Published versions keep their lineage: refuse if one links it."""
    linked = record.versions.filter(status=VersionStatus.PUBLISHED).select_related("model").first()
    if linked is not None:
        raise Conflict(f"Published version {linked.number} of '{linked.model.name}' was trained on this record.")
    context, name, record_id = record.context, record.name, str(record.pk)
    record.delete()
    audit(actor=actor, context=context, action="record.delete", object_type="trainingrecord", object_id=record_id,
          object_repr=name, summary=f"deleted training record {name}")


def _clean_metric(item: Any, index: int, *, row_class=Metric):
    where = f"metric {index}" if index else "metric"
    if not isinstance(item, dict):
        raise InvalidInput(f"{where} must be an object with key and value.", field="metrics")
    key = item.get("key")
    if not isinstance(key, str) or not key.strip() or len(key) > 200:
        raise InvalidInput(f"{where} needs a key of 1-200 characters.", field="key")
    check_storable(key, field="key", what=f"{where} key")
    value = item.get("value")
    number, text = None, None
    if isinstance(value, bool) or value is None:
        raise InvalidInput(f"{where} '{key}' needs a number or string value.", field="value")
    if isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:  # an integer past a double's range (about 1.8e308)
            number = math.inf
        if not math.isfinite(number):
            raise InvalidInput(f"{where} '{key}' must be a finite number (a double: at most about 1.8e308).",
                               field="value")
    elif isinstance(value, str):
        if len(value) > 500:
            raise InvalidInput(f"{where} '{key}' can have at most 500 characters.", field="value")
        text = check_storable(value, field="value", what=f"{where} '{key}' value")
    else:
        raise InvalidInput(f"{where} '{key}' needs a number or string value.", field="value")
    step = item.get("step")
    if step is not None and (not isinstance(step, int) or isinstance(step, bool) or not STEP_MIN <= step <= STEP_MAX):
        raise InvalidInput(f"{where} '{key}' step must be an integer from {STEP_MIN} to {STEP_MAX} (signed 64-bit).",
                           field="step")
    wallclock = item.get("wallclock")
    if wallclock is None:
        wallclock = timezone.now()
    elif isinstance(wallclock, (int, float)) and not isinstance(wallclock, bool):
        try:
            wallclock = datetime.fromtimestamp(wallclock, tz=dt_timezone.utc)
        except (OverflowError, OSError, ValueError):
            raise InvalidInput(f"{where} '{key}' wallclock is out of range.", field="wallclock") from None
    elif isinstance(wallclock, str):
        try:
            parsed = parse_datetime(wallclock)
        except ValueError:  # well-formed but not a date: month 13, year 0
            parsed = None
        if parsed is None:
            raise InvalidInput(f"{where} '{key}' wallclock must be ISO 8601 or a Unix time.", field="wallclock")
        wallclock = parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed, dt_timezone.utc)
    elif not isinstance(wallclock, datetime):
        raise InvalidInput(f"{where} '{key}' wallclock must be ISO 8601 or a Unix time.", field="wallclock")
    try:
        wallclock = wallclock.astimezone(dt_timezone.utc)  # stored in UTC: 9999-12-31T23:59-01:00 is past it
    except OverflowError:
        raise InvalidInput(f"{where} '{key}' wallclock is out of range.", field="wallclock") from None
    return row_class(key=key.strip(), value_number=number, value_text=text, step=step, wallclock=wallclock)


def _clean_metrics(metrics: Any, *, row_class) -> list:
    if not isinstance(metrics, list) or not metrics:
        raise InvalidInput("Send at least one metric.", field="metrics")
    if len(metrics) > MAX_METRICS_PER_CALL:
        raise InvalidInput(f"Send at most {MAX_METRICS_PER_CALL} metrics at once.", field="metrics")
    return [_clean_metric(item, index if len(metrics) > 1 else 0, row_class=row_class)
            for index, item in enumerate(metrics)]


def _metric_points_create(*, row_class, metrics: Any, **owner) -> tuple[list, str]:
    """Clean a batch of metric points and insert them on their owner (`version=` or `model=`),
    in one statement. Returns the rows and their keys, listed for the audit summary."""
    rows = _clean_metrics(metrics, row_class=row_class)
    for row in rows:
        for field, value in owner.items():
            setattr(row, field, value)
    created = row_class.objects.bulk_create(rows)
    keys = ", ".join(sorted({row.key for row in rows}))[:300]
    return created, keys


@transaction.atomic
def metrics_log(*, actor, version: Version, metrics: list[dict]) -> list[Metric]:
    """Record metrics on a version. Metrics describe results, so published versions accept them too."""
    lock_one(Version, pk=version.pk)  # (a version deleted meanwhile: 404; see model_delete)
    created, keys = _metric_points_create(row_class=Metric, metrics=metrics, version=version)
    audit(actor=actor, context=version.model.context, action="metric.log", obj=version,
          summary=f"logged {len(created)} metric value(s) on version {version.number}: {keys}")
    return created


@transaction.atomic
def model_metrics_log(*, actor, model: Model, metrics: list[dict]) -> list[ModelMetric]:
    """Record metrics on the model itself (ModelBox): figures about the model across its
    versions, such as a monitoring series, with the same shape and rules as a version's."""
    lock_one(Model, pk=model.pk)  # (a model deleted meanwhile: 404; see model_delete)
    created, keys = _metric_points_create(row_class=ModelMetric, metrics=metrics, model=model)
    audit(actor=actor, context=model.context, action="metric.log", obj=model,
          summary=f"logged {len(created)} model metric value(s) on {model.name}: {keys}")
    return created
