"""Create, edit and delete models."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Q

from registry import storage
from registry.errors import InvalidInput, NameTaken
from registry.models import Context, EventType, Format, Model, ModelAttachment, Version
from registry.services import webhooks
from registry.names import lookalike_key
from registry.prepared import CompiledInsert
from registry.services.common import (
    apply_changes,
    audit,
    clean_json_object,
    clean_tags,
    clean_text,
    describe_changes,
    lock_for_update,
    lock_one,
    normalize_name,
    set_tags,
    tag_names,
)

UNSET: Any = object()


def _owner(value, *, context: Context, default):
    """The user named `value`, who must hold a role in `context` (directly or through a group).
    One answer for a stranger and for no such user, so an editor cannot learn which usernames
    exist in other contexts."""
    if value is UNSET:
        return default
    if value in (None, ""):
        return None
    user = None
    if isinstance(value, str):
        user = (
            get_user_model().objects.filter(username=value)
            .filter(Q(registry_memberships__context=context) | Q(groups__registry_memberships__context=context))
            .first()
        )
    if user is None:
        raise InvalidInput(f"The owner must be a member of context '{context.slug}'; '{value}' is not.", field="owner")
    return user


def _name_taken(context: Context, name: str, *, lookalike: bool = False, existing: str = "") -> NameTaken:
    """409 for a name in use: the same name, or (`lookalike`) one a reader could mistake for it,
    named when known (`existing`)."""
    if not lookalike:
        return NameTaken(f"A model named '{name}' already exists in context '{context.slug}'.", field="name")
    if existing:
        return NameTaken(f"A model whose name looks the same as '{name}' ('{existing}') already exists in "
                         f"context '{context.slug}'; choose a name that reads differently.", field="name")
    return NameTaken(f"A model named '{name}', or one whose name looks the same, already exists in context "
                     f"'{context.slug}'; choose a name that reads differently.", field="name")


def _name_conflict(context: Context, name: str, error: IntegrityError) -> NameTaken:
    """NameTaken for a unique constraint the database refused (PostgreSQL names the constraint,
    SQLite its columns; with both broken, either may be named)."""
    return _name_taken(context, name, lookalike="name_skeleton" in str(error) or "lookalike" in str(error))


@transaction.atomic
def model_create(
    *,
    actor,
    context: Context,
    name: str,
    description: str = "",
    tags: list[str] | str | None = None,
    task: str = "",
    owner: str | None = UNSET,
    metadata: dict | None = None,
) -> Model:
    """Create a model in `context`; the name is unique there after normalisation."""
    name, name_key = normalize_name(name)
    tags = clean_tags(tags)
    model = Model(
        context=context,
        name=name,
        name_key=name_key,
        name_skeleton=lookalike_key(name),
        description=clean_text(description, field="description"),
        task=clean_text(task, field="task", max_length=200),
        owner=_owner(owner, context=context, default=actor if actor is not None and actor.is_authenticated else None),
        metadata=clean_json_object(metadata, field="metadata"),
        created_by=actor if actor is not None else None,
        updated_by=actor if actor is not None else None,
    )
    try:
        # No read beforehand: the unique constraints on (context, name_key) and (context,
        # name_skeleton) decide, for a name taken long ago as for a concurrent create. No
        # savepoint either: the error leaves this function, and with it this transaction (or
        # savepoint, when nested), rolled back.
        _MODEL_INSERT.insert(model)
    except IntegrityError as error:
        raise _name_conflict(context, name, error) from None
    rows = set_tags(model, tags, new=True)
    audit(actor=actor, context=context, action="model.create", obj=model, summary=f"created model {name}")
    # The model as selectors.model_detail() shows it, known without reading it back: a new
    # model has no versions or aliases.
    model.tag_names, model.version_numbers, model.alias_rows = [t.name for t in rows], [], []
    return model


# Creating a model is the API's commonest write: its INSERT is compiled once per process.
_MODEL_INSERT = CompiledInsert(Model)


@transaction.atomic
def model_update(
    *,
    actor,
    model: Model,
    name: str = UNSET,
    description: str = UNSET,
    tags: list[str] | str | None = UNSET,
    task: str = UNSET,
    owner: str | None = UNSET,
    metadata: dict = UNSET,
) -> Model:
    """Edit a model's fields; only the arguments given change."""
    model = lock_one(Model, pk=model.pk)
    values: dict[str, Any] = {}
    if name is not UNSET:
        values["name"], values["name_key"] = normalize_name(name)
        values["name_skeleton"] = lookalike_key(values["name"])
        if values["name_key"] != model.name_key or values["name_skeleton"] != model.name_skeleton:
            other = (
                Model.objects.filter(context=model.context_id)
                .filter(Q(name_key=values["name_key"]) | Q(name_skeleton=values["name_skeleton"]))
                .exclude(pk=model.pk).values_list("name", "name_key").first()
            )
            if other is not None:
                lookalike = other[1] != values["name_key"]
                raise _name_taken(model.context, values["name"], lookalike=lookalike, existing=other[0])
    if description is not UNSET:
        values["description"] = clean_text(description, field="description")
    if task is not UNSET:
        values["task"] = clean_text(task, field="task", max_length=200)
    if owner is not UNSET:
        values["owner"] = _owner(owner, context=model.context, default=None)
    if metadata is not UNSET:
        values["metadata"] = clean_json_object(metadata, field="metadata")
    changes = apply_changes(model, values)
    changes.pop("name_key", None)
    changes.pop("name_skeleton", None)
    if tags is not UNSET:
        new_tags = clean_tags(tags)
        old_tags = tag_names(model)
        if sorted(t.casefold() for t in new_tags) != sorted(t.casefold() for t in old_tags):
            set_tags(model, new_tags)
            changes["tags"] = [old_tags, new_tags]
    if changes:
        model.updated_by = actor
        try:
            with transaction.atomic():
                model.save(update_fields=[*values.keys(), "updated_by", "updated_at"])
        except IntegrityError as error:
            raise _name_conflict(model.context, model.name, error) from None
        audit(actor=actor, context=model.context, action="model.update", obj=model,
              summary=f"changed {describe_changes(changes)}", changes=changes)
    return model


@transaction.atomic
def model_delete(*, actor, model: Model) -> None:
    """Delete a model with all its versions, formats and attachments; stored files go after commit."""
    model = lock_one(Model, pk=model.pk)
    # Its versions too, before their rows are listed: a request adding a file, a format or a
    # metric to one of them holds its version's lock, so it either ends before (and what it
    # added is deleted with the rest) or waits, then finds the version gone (404). Unlocked, a
    # row added meanwhile failed this delete at COMMIT, or that request at its own (500).
    list(lock_for_update(Version.objects.filter(model=model)).values_list("pk", flat=True))
    keys = list(Format.objects.filter(version__model=model).exclude(storage_key="").values_list("storage_key", flat=True))
    keys += ModelAttachment.objects.filter(model=model).values_list("storage_key", flat=True)
    context, name, model_id = model.context, model.name, str(model.pk)
    version_count = model.versions.count()
    model.aliases.all().delete()
    model.delete()
    transaction.on_commit(lambda: storage.delete_quietly(keys))
    audit(actor=actor, context=context, action="model.delete", object_type="model", object_id=model_id,
          object_repr=name, summary=f"deleted model {name} with {version_count} version(s)")
    webhooks.emit(context, EventType.MODEL_DELETED, {
        "model": {"id": model_id, "name": name}, "version_count": version_count}, actor=actor)
