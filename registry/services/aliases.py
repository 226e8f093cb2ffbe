"""Aliases: named pointers to published versions, with the history of every move."""

from __future__ import annotations

import re

from django.db import transaction

from registry import compare
from registry.errors import Conflict, InvalidInput, NotFound
from registry.models import Alias, AliasMove, EventType, Model, Version, VersionStatus
from registry.services import webhooks
from registry.services.common import audit, lock_for_update

ALIAS_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def clean_alias_name(name) -> str:
    if not isinstance(name, str) or not ALIAS_NAME.match(name):
        raise InvalidInput(
            "An alias is 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit.", field="alias"
        )
    return name


def _published_version(model: Model, number) -> Version:
    if not isinstance(number, int) or isinstance(number, bool):
        raise InvalidInput("'version' must be a version number.", field="version")
    version = Version.objects.filter(model=model, number=number).first()
    if version is None:
        raise InvalidInput(f"Model '{model.name}' has no version {number}.", field="version")
    if version.status != VersionStatus.PUBLISHED:
        raise Conflict(f"Version {number} is not published; only published versions can have an alias.",
                       field="version")
    return version


def _move(*, actor, model: Model, name: str, version: Version, action: str) -> Alias:
    """Point the alias at `version`. The returned alias carries `breaking_changes`: the breaking
    signature changes (registry/compare.py, per named signature) from the version it left, which
    its callers may now meet; they are kept in the audit event too."""
    alias = lock_for_update(Alias).select_related("version").filter(
        model=model, name=name).first()
    previous = alias.version.number if alias else None
    breaking = []
    if alias is None:
        alias = Alias.objects.create(model=model, name=name, version=version, updated_by=actor)
    elif alias.version_id == version.pk:
        alias.breaking_changes = []
        return alias
    else:
        breaking = [change for change in compare.signature_diff(alias.version.signature, version.signature)
                    if change.breaking]
        alias.version = version
        alias.updated_by = actor
        alias.save(update_fields=["version", "updated_by", "updated_at"])
    AliasMove.objects.create(model=model, alias_name=name, from_number=previous, to_number=version.number, actor=actor)
    moved = f"from version {previous} " if previous else ""
    warning = f"; {len(breaking)} breaking signature change(s)" if breaking else ""
    audit(actor=actor, context=model.context, action=action, obj=alias, object_repr=f"{model.name}@{name}",
          summary=f"{'moved' if previous else 'set'} alias {name} {moved}to version {version.number}{warning}",
          changes={"version": [previous, version.number],
                   **({"breaking_signature_changes": [change.message for change in breaking]} if breaking else {})})
    alias.breaking_changes = breaking
    webhooks.emit(model.context, EventType.ALIAS_ROLLED_BACK if action == "alias.rollback" else EventType.ALIAS_MOVED, {
        "model": webhooks.model_fields(model),
        "alias": {"name": name, "version": version.number, "previous_version": previous},
    }, actor=actor)
    return alias


@transaction.atomic
def alias_set(*, actor, model: Model, name: str, version_number: int) -> Alias:
    """Point alias `name` at a published version, creating or atomically moving it."""
    name = clean_alias_name(name)
    model = lock_for_update(Model).select_related("context").get(pk=model.pk)
    version = _published_version(model, version_number)
    return _move(actor=actor, model=model, name=name, version=version, action="alias.move")


@transaction.atomic
def alias_rollback(*, actor, model: Model, name: str) -> Alias:
    """Move alias `name` back to the version it pointed to before its last move."""
    model = lock_for_update(Model).select_related("context").get(pk=model.pk)
    alias = Alias.objects.select_related("version").filter(model=model, name=name).first()
    if alias is None:
        raise NotFound(f"Model '{model.name}' has no alias '{name}'.")
    last_move = AliasMove.objects.filter(model=model, alias_name=name, to_number=alias.version.number).first()
    if last_move is None or last_move.from_number is None:
        raise Conflict(f"Alias '{name}' has no earlier version to roll back to.", field="alias")
    target = Version.objects.filter(model=model, number=last_move.from_number).first()
    if target is None:
        raise Conflict(f"Alias '{name}' pointed to version {last_move.from_number} before, "
                       f"but that version has been deleted.", field="alias")
    return _move(actor=actor, model=model, name=name, version=target, action="alias.rollback")


@transaction.atomic
def alias_delete(*, actor, model: Model, name: str) -> None:
    model = lock_for_update(Model).select_related("context").get(pk=model.pk)
    alias = Alias.objects.select_related("version").filter(model=model, name=name).first()
    if alias is None:
        raise NotFound(f"Model '{model.name}' has no alias '{name}'.")
    number, alias_id = alias.version.number, str(alias.pk)
    alias.delete()
    AliasMove.objects.create(model=model, alias_name=name, from_number=number, to_number=None, actor=actor)
    audit(actor=actor, context=model.context, action="alias.delete", object_type="alias", object_id=alias_id,
          object_repr=f"{model.name}@{name}", summary=f"removed alias {name} (was version {number})",
          changes={"version": [number, None]})
