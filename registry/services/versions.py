"""Create, edit, publish and delete versions."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from registry import storage
from registry.external_files import clean_external_files
from registry.errors import Conflict, InvalidInput, LimitReached, NotFound, NotPublishable, VersionPublished
from registry.models import Context, EventType, Format, FormatStatus, Model, TrainingRecord, Version, VersionStatus
from registry.services import webhooks
from registry.services.common import (
    apply_changes,
    audit,
    clean_json_object,
    clean_signature,
    clean_tags,
    clean_text,
    describe_changes,
    lock_for_update,
    lock_one,
    set_tags,
    tag_names,
)
from registry.services.trusted_imports import (
    describe_imports,
    trusted_names,
    untrusted_imports,
    unvetted_imports,
)

UNSET: Any = object()

# Only a file that has been hashed, verified and introspected without findings is published.
PUBLISHABLE_FORMAT_STATUSES = {FormatStatus.READY}
IN_PROGRESS_FORMAT_STATUSES = {
    FormatStatus.PENDING, FormatStatus.UPLOADED, FormatStatus.HASHING, FormatStatus.INTROSPECTING,
}


def _clean_records(model: Model, value) -> list[TrainingRecord]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidInput("'records' must be a list of training record IDs.", field="records")
    ids = []
    for item in value:
        item = item.get("id") if isinstance(item, dict) else item
        ids.append(str(item))
    try:
        records = list(TrainingRecord.objects.filter(context_id=model.context_id, id__in=ids))
    except (ValueError, ValidationError):  # a malformed UUID
        raise InvalidInput("'records' must be a list of training record IDs.", field="records") from None
    found = {str(r.id) for r in records}
    missing = [i for i in ids if i not in found]
    if missing:
        raise InvalidInput(f"No training record {missing[0]} in this context.", field="records")
    return records


def _version_values(*, model: Model, fields: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key in ("name", "framework", "framework_version"):
        if key in fields:
            values[key] = clean_text(fields[key], field=key, max_length=100 if key != "name" else 200)
    if "description" in fields:
        values["description"] = clean_text(fields["description"], field="description")
    for key in ("hyperparameters", "config", "metadata"):
        if key in fields:
            values[key] = clean_json_object(fields[key], field=key)
    if "external_files" in fields:
        values["external_files"] = clean_external_files(fields["external_files"])
    if "signature" in fields:
        values["signature"] = clean_signature(fields["signature"])
        values["signature_source"] = "client" if values["signature"] else ""
    return values


def ensure_draft(version: Version) -> None:
    if version.status == VersionStatus.PUBLISHED:
        raise VersionPublished(f"Version {version.number} is published and can no longer change.")


@transaction.atomic
def version_create(*, actor, model: Model, **fields) -> Version:
    """Create the next version of `model`.

    The model row is locked while the number is taken from its counter, so concurrent
    creates get distinct numbers and a number is never handed out twice.
    Fields: name, description, tags, hyperparameters, config, framework,
    framework_version, records, metadata, signature, external_files.
    """
    unknown = set(fields) - {
        "name", "description", "tags", "hyperparameters", "config", "framework",
        "framework_version", "records", "metadata", "signature", "external_files",
    }
    if unknown:
        raise InvalidInput(f"Unknown field '{sorted(unknown)[0]}'.", field=sorted(unknown)[0])
    values = _version_values(model=model, fields=fields)
    tags = clean_tags(fields.get("tags"))
    records = _clean_records(model, fields.get("records"))
    number, name = _take_version_number(model, actor)
    model.name = name
    # Live versions hold distinct numbers below `number`, so up to the limit there is room
    # without counting. Past it they are counted after the UPDATE above, which holds the
    # model row's lock until commit: a concurrent create waits for it, and its COUNT (a new
    # statement, so a new snapshot) then sees this version. The limit cannot be exceeded;
    # raising rolls the counter back too.
    live = 0 if number <= settings.REGISTRY_MAX_VERSIONS else Version.objects.filter(model_id=model.pk).count()
    if live >= settings.REGISTRY_MAX_VERSIONS:
        raise LimitReached(
            f"Model '{name}' already has {live} versions, the most allowed "
            f"({settings.REGISTRY_MAX_VERSIONS}); delete an old version first."
        )
    version = Version.objects.create(model=model, number=number, created_by=actor, updated_by=actor, **values)
    rows = set_tags(version, tags, new=True)
    if records:
        version.records.add(*records)
    audit(actor=actor, context=model.context, action="version.create", obj=version,
          summary=f"created version {number} of {name}")
    webhooks.emit(model.context, EventType.VERSION_CREATED, {
        "model": webhooks.model_fields(model), "version": webhooks.version_fields(version)}, actor=actor)
    # The version as selectors.version_detail() shows it, known without reading it back.
    version.tag_names = [row.name for row in rows]
    version.record_rows = [{"id": str(record.pk), "name": record.name, "uri": record.uri}
                           for record in sorted(records, key=lambda record: (record.name, record.pk))]
    version.format_rows, version.alias_names = [], []
    return version


def _take_version_number(model: Model, actor) -> tuple[int, str]:
    """Take the model's next version number in one statement: UPDATE ... RETURNING.

    The UPDATE locks the model row until the transaction ends (as SELECT ... FOR UPDATE did),
    so concurrent creates are serialised on it and each gets its own number; the counter only
    grows, so a number is never handed out twice, even after deletions."""
    table = connection.ops.quote_name(Model._meta.db_table)
    column = {f: connection.ops.quote_name(Model._meta.get_field(f).column)
              for f in ("next_version_number", "updated_by", "updated_at", "id", "name")}
    params = [
        actor.pk if actor is not None and actor.is_authenticated else None,
        Model._meta.get_field("updated_at").get_db_prep_value(timezone.now(), connection),
        Model._meta.pk.get_db_prep_value(model.pk, connection),
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET {column['next_version_number']} = {column['next_version_number']} + 1, "
            f"{column['updated_by']} = %s, {column['updated_at']} = %s WHERE {column['id']} = %s "
            f"RETURNING {column['next_version_number']} - 1, {column['name']}",
            params,
        )
        row = cursor.fetchone()
    if row is None:
        raise NotFound("Model not found.")
    return row[0], row[1]


@transaction.atomic
def version_update(*, actor, version: Version, **fields) -> Version:
    """Edit an unpublished version; only the fields given change."""
    version = lock_one(Version.objects.select_related("model__context"), pk=version.pk)
    ensure_draft(version)
    values = _version_values(model=version.model, fields=fields)
    changes = apply_changes(version, values)
    if "tags" in fields:
        new_tags, old_tags = clean_tags(fields["tags"]), tag_names(version)
        if sorted(t.casefold() for t in new_tags) != sorted(t.casefold() for t in old_tags):
            set_tags(version, new_tags)
            changes["tags"] = [old_tags, new_tags]
    if "records" in fields:
        records = _clean_records(version.model, fields["records"])
        old = sorted(str(r.pk) for r in version.records.all())
        new = sorted(str(r.pk) for r in records)
        if old != new:
            version.records.set(records)
            changes["records"] = [old, new]
    if changes:
        version.updated_by = actor
        version.save(update_fields=[*values.keys(), "updated_by", "updated_at"])
        audit(actor=actor, context=version.model.context, action="version.update", obj=version,
              summary=f"changed {describe_changes(changes)} of version {version.number}", changes=changes)
    return version


@transaction.atomic
def version_publish(*, actor, version: Version) -> Version:
    """Freeze a version. Needs at least one format, and every format in a publishable state."""
    version = lock_one(Version.objects.select_related("model__context"), pk=version.pk)
    ensure_draft(version)
    formats = list(version.formats.order_by("kind"))
    if any(unvetted_imports(fmt.report) for fmt in formats):
        # A file that is ready only because its imports are trusted: hold the context, as a
        # revoke does, so a revoke committing now is seen here or sees this version published.
        lock_for_update(Context).filter(pk=version.model.context_id).first()
        formats = list(version.formats.order_by("kind"))
    if not formats:
        raise NotPublishable(f"Version {version.number} has no format yet; upload a file first.")
    for fmt in formats:
        if fmt.status == FormatStatus.REVIEW:
            untrusted = untrusted_imports(fmt.report, trusted_names(version.model.context))
            named = f" ({describe_imports(untrusted)})" if untrusted else ""
            raise NotPublishable(
                f"Format '{fmt.kind}' needs review: it imports third-party code not trusted in this "
                f"context{named}. A publisher can approve these imports (the Formats tab, or POST "
                f".../formats/{fmt.kind}/approve-imports/), then publish.",
                field=fmt.kind,
            )
        if fmt.status not in PUBLISHABLE_FORMAT_STATUSES:
            detail = f" ({fmt.status_message})" if fmt.status_message else ""
            waiting = " and still being checked" if fmt.status in IN_PROGRESS_FORMAT_STATUSES else ""
            raise NotPublishable(
                f"Format '{fmt.kind}' is {fmt.status}{waiting}{detail}; only formats whose file is "
                f"hashed and introspected as ready can be published.",
                field=fmt.kind,
            )
    version.status = VersionStatus.PUBLISHED
    version.published_by = actor
    version.published_at = timezone.now()
    version.save(update_fields=["status", "published_by", "published_at", "updated_at"])
    audit(actor=actor, context=version.model.context, action="version.publish", obj=version,
          summary=f"published version {version.number}")
    webhooks.emit(version.model.context, EventType.VERSION_PUBLISHED, {
        "model": webhooks.model_fields(version.model), "version": webhooks.version_fields(version),
        "formats": [webhooks.format_fields(fmt) for fmt in formats]}, actor=actor)
    return version


@transaction.atomic
def version_delete(*, actor, version: Version) -> None:
    """Delete a version and its formats; its number is never reused. Files go after commit."""
    lock_for_update(Model).filter(pk=version.model_id).first()
    version = lock_one(Version.objects.select_related("model__context"), pk=version.pk)
    aliases = list(version.aliases.values_list("name", flat=True))
    if aliases:
        raise Conflict(
            f"Alias '{aliases[0]}' points to version {version.number}; move or delete the alias first.",
            field="aliases",
        )
    keys = list(Format.objects.filter(version=version).exclude(storage_key="").values_list("storage_key", flat=True))
    model, number, version_id = version.model, version.number, str(version.pk)
    version.delete()
    transaction.on_commit(lambda: storage.delete_quietly(keys))
    audit(actor=actor, context=model.context, action="version.delete", object_type="version", object_id=version_id,
          object_repr=f"{model.name} v{number}", summary=f"deleted version {number} of {model.name}")
