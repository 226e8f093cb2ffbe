"""Aliases: named pointers to published versions, with the history of every move; protected
alias names, and the move requests a second person approves.

A protected alias (ProtectedAlias, per context) moves directly only for a holder of
`move-protected-alias` (admins; the operator). A publisher's set, rollback or removal of one
becomes a pending AliasMoveRequest instead, which another publisher or an admin approves (the
move then happens, with the checks of a direct move made again) or rejects, and which its author
may withdraw. The door (the view) decides `publish-version` as for any alias move; which way the
move goes is asked of registry.permissions here, since it is what the service does, not who
may call it.
"""

from __future__ import annotations

import re

from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet, Subquery, UUIDField, Value
from django.db.models.functions import Lower
from django.utils import timezone

from registry import compare
from registry.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from registry.models import (
    Alias,
    AliasMove,
    AliasMoveRequest,
    EventType,
    Model,
    MoveAction,
    ProtectedAlias,
    RequestStatus,
    Version,
    VersionStatus,
)
from registry.permissions import Perm, has_perm
from registry.prepared import CompiledInsert, CompiledQuery
from registry.services import webhooks
from registry.services.common import audit, clean_text, lock_for_update, lock_one

ALIAS_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
COMMENT_MAX_LENGTH = 2000
MAX_PROTECTED_ALIASES = 100  # per context


def clean_alias_name(name) -> str:
    if not isinstance(name, str) or not ALIAS_NAME.match(name):
        raise InvalidInput(
            "An alias is 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit.", field="alias"
        )
    return name


def _version_number(model: Model, number) -> int:
    if not isinstance(number, int) or isinstance(number, bool):
        raise InvalidInput("'version' must be a version number.", field="version")
    if not 0 < number < 2**31:  # the column's range: no version has such a number
        raise InvalidInput(f"Model '{model.name}' has no version {number}.", field="version")
    return number


def _published(model: Model, version: Version | None, number: int) -> Version:
    if version is None:
        raise InvalidInput(f"Model '{model.name}' has no version {number}.", field="version")
    if version.status != VersionStatus.PUBLISHED:
        raise Conflict(f"Version {number} is not published; only published versions can have an alias.",
                       field="version")
    return version


def protection(context_id, name) -> QuerySet[ProtectedAlias]:
    """The row protecting alias `name` in a context, if any: names match case-insensitively
    (LOWER on both sides, as the unique index on LOWER(name), context is built)."""
    return ProtectedAlias.objects.annotate(name_lower=Lower("name")).filter(
        context_id=context_id, name_lower=Lower(Value(name)))


def is_protected(model: Model, name: str) -> bool:
    """Whether alias `name` is protected in the model's context (names match case-insensitively)."""
    return protection(model.context_id, name).exists()


def _move_read(model_id, number, name) -> QuerySet[Model]:
    """The model with all that setting its alias `name` to version `number` reads: the version
    (id, status, signature), the alias as it is (id, version id, number, signature) and whether
    the name is protected, each a scalar subquery of one statement."""
    version = Version.objects.filter(model_id=OuterRef("pk"), number=number)
    alias = Alias.objects.filter(model_id=OuterRef("pk"), name=name)
    return Model.objects.defer("name_upper", "description_upper").filter(pk=model_id).order_by().annotate(
        target_id=Subquery(version.values("pk")), target_status=Subquery(version.values("status")),
        target_signature=Subquery(version.values("signature")),
        alias_id=Subquery(alias.values("pk")),
        alias_version_id=Subquery(alias.values("version_id"), output_field=UUIDField()),  # SQLite: hex text else
        alias_number=Subquery(alias.values("version__number")),
        alias_signature=Subquery(alias.values("version__signature")),
        protected=Exists(protection(OuterRef("context_id"), name)),
    )


# Setting an alias is as frequent as publishing: its lock and its reads are a statement each,
# compiled once per process (registry/prepared.py).
_MODEL_LOCK = CompiledQuery(lambda model_id: lock_for_update(Model).filter(pk=model_id).only("id").order_by())
_MOVE_READ = CompiledQuery(_move_read)
# ... and so are the rows a move inserts: the alias when it is new, and its history's line.
_ALIAS_INSERT = CompiledInsert(Alias)
_MOVE_INSERT = CompiledInsert(AliasMove)


def _read_for_move(model: Model, number: int, name: str) -> tuple[Model, Version | None, Alias | None, bool]:
    """Lock `model`, then read in one statement the version `number` (None if there is none),
    alias `name` (None if unset) with its version, and whether the name is protected. The
    version and the alias carry the columns a move reads (ids, number, status, signature).

    Two statements, not one: a statement that waited for the lock still reads what its snapshot,
    taken before the wait, holds (PostgreSQL's READ COMMITTED re-checks only the locked row), so
    it would miss the alias a concurrent move just created. The read after the lock sees it."""
    if not _MODEL_LOCK.run(model_id=model.pk):
        raise NotFound("Model not found.")
    found = _MOVE_READ.run(model_id=model.pk, number=number, name=name)
    if not found:
        raise NotFound("Model not found.")
    row = found[0]
    row.context = model.context  # read with `model`, in this request
    version = None if row.target_id is None else Version(
        id=row.target_id, model_id=row.pk, number=number, status=row.target_status, signature=row.target_signature)
    alias = None
    if row.alias_id is not None:
        alias = Alias(id=row.alias_id, model_id=row.pk, name=name, version_id=row.alias_version_id)
        alias.version = Version(id=row.alias_version_id, model_id=row.pk, number=row.alias_number,
                                status=VersionStatus.PUBLISHED, signature=row.alias_signature)
    return row, version, alias, row.protected


def _needs_request(actor, model: Model, name: str, *, protected: bool | None = None) -> bool:
    """Whether `actor`'s move of alias `name` becomes a request (`protected`: if already read)."""
    if protected is None:
        protected = is_protected(model, name)
    return protected and not has_perm(actor, model.context, Perm.MOVE_PROTECTED_ALIAS, model_id=model.pk)


_UNREAD = object()


def _move(*, actor, model: Model, name: str, version: Version, action: str, note: str = "",
          current=_UNREAD) -> Alias:
    """Point the alias at `version` (`model` is locked). The returned alias carries
    `breaking_changes`: the breaking signature changes (registry/compare.py, per named
    signature) from the version it left, which its callers may now meet; they are kept in the
    audit event too. `current`: the alias as it is (None: unset), when the caller read it
    under the model's lock; else it is read here."""
    alias = current if current is not _UNREAD else Alias.objects.select_related("version").filter(
        model=model, name=name).first()
    previous = alias.version.number if alias else None
    breaking = []
    if alias is None:
        [alias] = _ALIAS_INSERT.insert(Alias(model=model, name=name, version=version, updated_by=actor))
    elif alias.version_id == version.pk:  # already there: nothing moves
        if current is not _UNREAD:
            alias = _existing_alias(model, name)  # `current` carries only what a move reads
        alias.breaking_changes = []
        return alias
    else:
        breaking = [change for change in compare.signature_diff(alias.version.signature, version.signature)
                    if change.breaking]
        alias.version = version
        alias.updated_by = actor
        alias.save(update_fields=["version", "updated_by", "updated_at"])
    _MOVE_INSERT.insert(AliasMove(model=model, alias_name=name, from_number=previous, to_number=version.number,
                                  actor=actor))
    moved = f"from version {previous} " if previous else ""
    warning = f"; {len(breaking)} breaking signature change(s)" if breaking else ""
    audit(actor=actor, context=model.context, action=action, obj=alias, object_repr=f"{model.name}@{name}",
          summary=f"{'moved' if previous else 'set'} alias {name} {moved}to version {version.number}{warning}{note}",
          changes={"version": [previous, version.number],
                   **({"breaking_signature_changes": [change.message for change in breaking]} if breaking else {})})
    alias.breaking_changes = breaking
    webhooks.emit(model.context, EventType.ALIAS_ROLLED_BACK if action == "alias.rollback" else EventType.ALIAS_MOVED, {
        "model": webhooks.model_fields(model),
        "alias": {"name": name, "version": version.number, "previous_version": previous},
    }, actor=actor)
    return alias


def _remove(*, actor, model: Model, alias: Alias, note: str = "") -> None:
    name, number, alias_id = alias.name, alias.version.number, str(alias.pk)
    alias.delete()
    _MOVE_INSERT.insert(AliasMove(model=model, alias_name=name, from_number=number, to_number=None, actor=actor))
    audit(actor=actor, context=model.context, action="alias.delete", object_type="alias", object_id=alias_id,
          object_repr=f"{model.name}@{name}", summary=f"removed alias {name} (was version {number}){note}",
          changes={"version": [number, None]})


def _locked_model(model: Model) -> Model:
    return lock_one(Model.objects.select_related("context"), pk=model.pk)


def _existing_alias(model: Model, name: str) -> Alias:
    alias = Alias.objects.select_related("version", "updated_by").filter(model=model, name=name).first()
    if alias is None:
        raise NotFound(f"Model '{model.name}' has no alias '{name}'.")
    return alias


def _rollback_target(model: Model, alias: Alias) -> Version:
    last_move = AliasMove.objects.filter(model=model, alias_name=alias.name, to_number=alias.version.number).first()
    if last_move is None or last_move.from_number is None:
        raise Conflict(f"Alias '{alias.name}' has no earlier version to roll back to.", field="alias")
    target = Version.objects.filter(model=model, number=last_move.from_number).first()
    if target is None:
        raise Conflict(f"Alias '{alias.name}' pointed to version {last_move.from_number} before, "
                       f"but that version has been deleted.", field="alias")
    return target


@transaction.atomic
def alias_set(*, actor, model: Model, name: str, version_number: int,
              comment: str = "") -> Alias | AliasMoveRequest:
    """Point alias `name` at a published version, creating or atomically moving it; for a
    protected alias and an actor without `move-protected-alias`, ask for it (a pending request)."""
    name = clean_alias_name(name)
    number = _version_number(model, version_number)
    model, version, current, protected = _read_for_move(model, number, name)
    version = _published(model, version, number)
    if _needs_request(actor, model, name, protected=protected):
        if current is not None and current.version_id == version.pk:
            return _existing_alias(model, name)  # already there: nothing to ask
        return _request(actor=actor, model=model, name=name, action=MoveAction.SET,
                        from_number=current.version.number if current else None, to_number=version.number,
                        comment=comment)
    return _move(actor=actor, model=model, name=name, version=version, action="alias.move", current=current)


@transaction.atomic
def alias_rollback(*, actor, model: Model, name: str, comment: str = "") -> Alias | AliasMoveRequest:
    """Move alias `name` back to the version it pointed to before its last move (or ask for it,
    when it is protected)."""
    model = _locked_model(model)
    alias = _existing_alias(model, name)
    target = _rollback_target(model, alias)
    if _needs_request(actor, model, name):
        return _request(actor=actor, model=model, name=name, action=MoveAction.ROLLBACK,
                        from_number=alias.version.number, to_number=target.number, comment=comment)
    return _move(actor=actor, model=model, name=name, version=target, action="alias.rollback")


@transaction.atomic
def alias_delete(*, actor, model: Model, name: str, comment: str = "") -> AliasMoveRequest | None:
    """Remove alias `name` (its history is kept), or ask for it when it is protected."""
    model = _locked_model(model)
    alias = _existing_alias(model, name)
    if _needs_request(actor, model, name):
        return _request(actor=actor, model=model, name=name, action=MoveAction.DELETE,
                        from_number=alias.version.number, to_number=None, comment=comment)
    _remove(actor=actor, model=model, alias=alias)
    return None


# --- move requests ------------------------------------------------------------------------

def _describe(request: AliasMoveRequest) -> str:
    if request.action == MoveAction.DELETE:
        return f"remove alias {request.alias_name} (at version {request.from_number})"
    verb = "roll back" if request.action == MoveAction.ROLLBACK else ("move" if request.from_number else "set")
    start = f" from version {request.from_number}" if request.from_number else ""
    return f"{verb} alias {request.alias_name}{start} to version {request.to_number}"


def _request(*, actor, model: Model, name: str, action: str, from_number, to_number, comment: str):
    comment = clean_text(comment, field="comment", max_length=COMMENT_MAX_LENGTH)
    pending = AliasMoveRequest.objects.filter(model=model, alias_name=name, status=RequestStatus.PENDING).first()
    if pending is not None:  # the model row is locked: no second request can slip in
        raise Conflict(f"Request #{pending.pk} to move alias '{name}' is pending: it must be approved, rejected "
                       f"or withdrawn first.", field="alias")
    request = AliasMoveRequest.objects.create(
        model=model, alias_name=name, action=action, from_number=from_number, to_number=to_number,
        comment=comment, requested_by=actor,
    )
    audit(actor=actor, context=model.context, action="alias.request", obj=request,
          object_repr=f"{model.name}@{name}",
          summary=f"asked to {_describe(request)}: {name} is protected, another publisher or an admin approves",
          changes={"request": request.pk, "action": action, "version": [from_number, to_number]})
    return request


def _pending(model: Model, request: AliasMoveRequest) -> AliasMoveRequest:
    locked = lock_for_update(AliasMoveRequest).filter(pk=request.pk, model=model).first()
    if locked is None:
        raise NotFound("Request not found.")
    if locked.status != RequestStatus.PENDING:
        raise Conflict(f"Request #{locked.pk} was {locked.status} already.", field="request")
    return locked


def _decide(*, actor, model: Model, request: AliasMoveRequest, status: str, comment: str, action: str, summary: str):
    request.status = status
    request.decided_by = actor
    request.decided_at = timezone.now()
    request.decision_comment = comment
    request.save(update_fields=["status", "decided_by", "decided_at", "decision_comment"])
    audit(actor=actor, context=model.context, action=action, obj=request, object_repr=f"{model.name}@{request.alias_name}",
          summary=summary, changes={"request": request.pk, "status": [RequestStatus.PENDING, status]})
    return request


def _may_decide(actor, model: Model, request: AliasMoveRequest, verb: str) -> None:
    """A second person decides: the author may not, unless they may move protected aliases."""
    if (actor is not None and request.requested_by_id == actor.pk
            and not has_perm(actor, model.context, Perm.MOVE_PROTECTED_ALIAS, model_id=model.pk)):
        raise PermissionDenied(f"You asked for this move: another publisher or an admin {verb}s it"
                               f"{'; you can withdraw it' if verb == 'reject' else ''}.")


@transaction.atomic
def alias_request_approve(*, actor, model: Model, request: AliasMoveRequest, comment: str = "") -> AliasMoveRequest:
    """Approve a pending request: the move happens now, with the checks of a direct move (the
    version still exists and is published), and only if the alias still points where it did
    when the move was asked for (else 409: what was reviewed is not what would happen)."""
    comment = clean_text(comment, field="comment", max_length=COMMENT_MAX_LENGTH)
    model = _locked_model(model)
    request = _pending(model, request)
    _may_decide(actor, model, request, "approve")
    alias = lock_for_update(Alias).select_related("version").filter(model=model, name=request.alias_name).first()
    now_at = alias.version.number if alias else None
    if now_at != request.from_number:
        where = f"version {now_at}" if now_at else "nowhere (it was removed)"
        raise Conflict(f"Alias '{request.alias_name}' has moved since request #{request.pk}: it points to {where}. "
                       f"Reject this request and ask again.", field="request")
    note = f" (request #{request.pk} by {request.requested_by.username if request.requested_by else 'operator'})"
    if request.action == MoveAction.DELETE:
        _remove(actor=actor, model=model, alias=alias, note=note)
    else:
        version = Version.objects.filter(model=model, number=request.to_number).first()
        if version is None:
            raise Conflict(f"Version {request.to_number} was deleted since request #{request.pk}.", field="request")
        if version.status != VersionStatus.PUBLISHED:
            raise Conflict(f"Version {request.to_number} is not published.", field="request")
        _move(actor=actor, model=model, name=request.alias_name, version=version, note=note,
              action="alias.rollback" if request.action == MoveAction.ROLLBACK else "alias.move")
    return _decide(actor=actor, model=model, request=request, status=RequestStatus.APPROVED, comment=comment,
                   action="alias.request_approve", summary=f"approved request #{request.pk} to {_describe(request)}")


@transaction.atomic
def alias_request_reject(*, actor, model: Model, request: AliasMoveRequest, comment: str = "") -> AliasMoveRequest:
    """Reject a pending request: the alias stays where it is."""
    comment = clean_text(comment, field="comment", max_length=COMMENT_MAX_LENGTH)
    model = _locked_model(model)
    request = _pending(model, request)
    _may_decide(actor, model, request, "reject")
    return _decide(actor=actor, model=model, request=request, status=RequestStatus.REJECTED, comment=comment,
                   action="alias.request_reject", summary=f"rejected request #{request.pk} to {_describe(request)}")


@transaction.atomic
def alias_request_withdraw(*, actor, model: Model, request: AliasMoveRequest) -> AliasMoveRequest:
    """Withdraw one's own pending request."""
    model = _locked_model(model)
    request = _pending(model, request)
    if actor is not None and request.requested_by_id != actor.pk:
        raise PermissionDenied("Only the person who asked for this move can withdraw it; reject it instead.")
    return _decide(actor=actor, model=model, request=request, status=RequestStatus.WITHDRAWN, comment="",
                   action="alias.request_withdraw", summary=f"withdrew request #{request.pk} to {_describe(request)}")


# --- protected alias names ------------------------------------------------------------------

@transaction.atomic
def protected_alias_add(*, actor, context, name: str) -> ProtectedAlias:
    """Protect alias `name` in `context` (every model's alias of that name, case-insensitively)."""
    name = clean_alias_name(name)
    lock_for_update(type(context)).filter(pk=context.pk).first()
    if protection(context.pk, name).exists():
        raise Conflict(f"Alias '{name}' is protected in this context already.", field="alias")
    if ProtectedAlias.objects.filter(context=context).count() >= MAX_PROTECTED_ALIASES:
        raise Conflict(f"A context protects at most {MAX_PROTECTED_ALIASES} alias names.", field="alias")
    row = ProtectedAlias.objects.create(context=context, name=name, created_by=actor)
    audit(actor=actor, context=context, action="alias.protect", obj=row, object_type="protectedalias",
          summary=f"protected alias {name}: moving it needs an admin or a second publisher's approval")
    return row


@transaction.atomic
def protected_alias_remove(*, actor, context, name: str) -> None:
    """Stop protecting alias `name`; pending requests stay, to be decided or withdrawn."""
    row = protection(context.pk, name).first()
    if row is None:
        raise NotFound(f"Alias '{name}' is not protected in this context.")
    row_id, row_name = str(row.pk), row.name
    row.delete()
    audit(actor=actor, context=context, action="alias.unprotect", object_type="protectedalias", object_id=row_id,
          object_repr=row_name, summary=f"alias {row_name} is no longer protected")
