"""Trusted imports: the third-party globals a publisher approved for the pickles of a context.

The pickle scanner knows nothing of contexts: it reports `review` with the imports it could not
vet (report.details["unvetted"]). Whether a format in review may become `ready` is decided here,
against its context's trusted imports, when its report is recorded and again whenever a trusted
import is added or revoked. The stored report keeps saying "review", so that decision can always
be taken again.

Every change here happens under a lock on the context row, taken before any format row (as
processing.format_record_report does), so an approval and a report recorded at the same moment
cannot miss each other.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction

from registry.errors import Conflict, InvalidInput, NotFound
from registry.introspection.pickle_policy import DANGEROUS, classify_global
from registry.introspection.report import REVIEW
from registry.models import Context, Format, FormatStatus, TrustedImport, VersionStatus
from registry.models.trust import TRUSTED_IMPORT_MAX_LENGTH
from registry.services import webhooks
from registry.services.common import audit, clean_text, lock_for_update, lock_one

REASON_MAX_LENGTH = 2000
# How many imports one request may name; a format's own approval is not limited by this.
MAX_IMPORTS_PER_REQUEST = 1000
# How many imports a status message names before it says "(+N more)".
IMPORTS_NAMED = 10


# --- what a report asks for ---------------------------------------------------------------------

def unvetted_imports(report: dict) -> list[str]:
    """The distinct "module.qualname" imports a `review` report asks a person to approve."""
    if not isinstance(report, dict) or report.get("status") != REVIEW:
        return []
    details = report.get("details")
    items = details.get("unvetted") if isinstance(details, dict) else None
    names: list[str] = []
    for item in items if isinstance(items, list) else []:
        name = item.get("import") if isinstance(item, dict) else None
        if isinstance(name, str) and name not in names:
            names.append(name)
    return names


def untrusted_imports(report: dict, trusted: set[str]) -> list[str]:
    """The imports of a `review` report that are not among `trusted`."""
    return [name for name in unvetted_imports(report) if name not in trusted]


def describe_imports(names: list[str]) -> str:
    """The first imports of `names`, comma-separated, then how many more there are."""
    shown = ", ".join(names[:IMPORTS_NAMED])
    return shown + (f" (+{len(names) - IMPORTS_NAMED} more)" if len(names) > IMPORTS_NAMED else "")


def review_outcome(report: dict, trusted: set[str]) -> tuple[str, str]:
    """(status, status_message) for a format whose report says `review`, given its context's
    trusted imports: `ready` when every unvetted import is trusted, else `review` naming the rest.

    A review report that names no import cannot be approved, so it stays in review (fail closed).
    """
    names = unvetted_imports(report)
    if not names:
        return FormatStatus.REVIEW, ("Needs review, but the report names no import that could be approved; "
                                     "upload the file again.")
    untrusted = [name for name in names if name not in trusted]
    if not untrusted:
        return FormatStatus.READY, f"Ready: its third-party imports are trusted in this context: {describe_imports(names)}."
    count = f"{len(untrusted)} third-party import{'s' if len(untrusted) != 1 else ''}"
    return FormatStatus.REVIEW, (f"Needs review: {count} not trusted in this context: {describe_imports(untrusted)}. "
                                 "A publisher can approve them.")


def trusted_names(context: Context) -> set[str]:
    return set(TrustedImport.objects.filter(context=context).values_list("name", flat=True))


# --- validation -----------------------------------------------------------------------------------

def dangerous_reason(name: str) -> str | None:
    """Why the scanner would call `name` dangerous, or None.

    A dotted name does not say where the module ends ("a.b.C" is a.b's C or a's b.C), and a
    trusted name matches both, so it is checked split at every dot.
    """
    parts = name.split(".")
    for end in range(1, len(parts)):
        verdict, reason = classify_global(".".join(parts[:end]), ".".join(parts[end:]))
        if verdict == DANGEROUS:
            return reason or "the scanner treats it as dangerous"
    return None


def clean_import_name(value) -> str:
    """A "module.qualname" Python path that the scanner does not call dangerous."""
    example = "e.g. mylibrary.models.Scorer"
    if not isinstance(value, str):
        raise InvalidInput(f"An import is a dotted Python path as a string ({example}).", field="imports")
    name = value.strip()
    if len(name) > TRUSTED_IMPORT_MAX_LENGTH:
        raise InvalidInput(f"An import can have at most {TRUSTED_IMPORT_MAX_LENGTH} characters.", field="imports")
    parts = name.split(".")
    if len(parts) < 2 or not all(part.isidentifier() for part in parts):
        raise InvalidInput(f"'{name[:100]}' is not a dotted Python path: give the module and the name "
                           f"({example}).", field="imports")
    reason = dangerous_reason(name)
    if reason:
        raise InvalidInput(f"{name} can never be trusted: the scanner treats it as dangerous ({reason}).",
                           field="imports")
    return name


def clean_import_names(value) -> list[str]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not value:
        raise InvalidInput("'imports' must be a non-empty list of dotted Python paths.", field="imports")
    if len(value) > MAX_IMPORTS_PER_REQUEST:
        raise InvalidInput(f"At most {MAX_IMPORTS_PER_REQUEST} imports can be trusted in one request.",
                           field="imports")
    return list(dict.fromkeys(clean_import_name(item) for item in value))


def clean_reason(value) -> str:
    """People must say why they trust code they have not read here."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InvalidInput("Say why these imports can be trusted (e.g. “our own package, reviewed in PR 412”).",
                           field="reason")
    return clean_text(value, field="reason", max_length=REASON_MAX_LENGTH, allow_blank=False)


# --- writes --------------------------------------------------------------------------------------

def _lock_context(context: Context) -> Context:
    return lock_one(Context, pk=context.pk)


def _trust(*, actor, context: Context, names: Iterable[str], reason: str, why: str = "") -> list[TrustedImport]:
    """Insert the names not yet trusted (the caller holds the context lock); one audit event each."""
    names = list(dict.fromkeys(names))
    existing = trusted_names(context)
    new = [name for name in names if name not in existing]
    TrustedImport.objects.bulk_create(
        [TrustedImport(context=context, name=name, reason=reason, created_by=actor) for name in new]
    )
    rows = list(TrustedImport.objects.filter(context=context, name__in=names).select_related("created_by"))
    for row in rows:
        row.newly_trusted = row.name in new  # what the API answers (201 or 200), known without a query
        if row.newly_trusted:
            audit(actor=actor, context=context, action="trusted_import.add", obj=row,
                  summary=f"trusted import {row.name}{why}: {reason}",
                  changes={"name": row.name, "reason": reason})
    order = {name: index for index, name in enumerate(names)}
    return sorted(rows, key=lambda row: order[row.name])


def _reevaluate(*, actor, context: Context, cause: str) -> list[Format]:
    """Decide again every format of `context` whose report says review: those in review, and
    the ready ones of draft versions (ready because of a trusted import). Published versions are
    never reopened: their formats keep the status they were published with.

    Returns the formats whose status changed; each change writes an audit event."""
    trusted = trusted_names(context)
    candidates = (
        lock_for_update(Format)
        .select_related("version__model")
        .filter(version__model__context=context, report__status=REVIEW)
        .filter(status__in=[FormatStatus.REVIEW, FormatStatus.READY], version__status=VersionStatus.DRAFT)
        .order_by("version__model__name_key", "version__number", "kind")
    )
    changed = []
    for fmt in candidates:
        status, message = review_outcome(fmt.report, trusted)
        if (status, message) == (fmt.status, fmt.status_message):
            continue
        moved = status != fmt.status
        fmt.status, fmt.status_message = status, message
        fmt.save(update_fields=["status", "status_message"])
        if not moved:
            continue  # still in review, with fewer (or more) imports left to approve
        changed.append(fmt)
        version = fmt.version
        where = f"{fmt.kind} file of version {version.number} of {version.model.name}"
        if status == FormatStatus.READY:
            audit(actor=actor, context=context, action="format.trusted", obj=fmt,
                  summary=f"{where} is ready: {cause}", changes={"status": [FormatStatus.REVIEW, status]})
        else:
            audit(actor=actor, context=context, action="format.review", obj=fmt,
                  summary=f"{where} needs review again: {cause}", changes={"status": [FormatStatus.READY, status]})
        webhooks.format_event(fmt, context, actor=actor)
    return changed


@transaction.atomic
def trusted_imports_add(*, actor, context: Context, names: list[str], reason: str) -> list[TrustedImport]:
    """Trust third-party imports in `context`, then make ready every format in review whose
    unvetted imports are now all trusted.

    Idempotent: a name already trusted keeps its first reason and author. A name the scanner
    calls dangerous can never be trusted (400). Returns the rows of `names`, in their order,
    each with `newly_trusted` set.
    """
    names = clean_import_names(names)
    reason = clean_reason(reason)
    context = _lock_context(context)
    rows = _trust(actor=actor, context=context, names=names, reason=reason)
    _reevaluate(actor=actor, context=context, cause=f"its imports were trusted ({reason})")
    return rows


@transaction.atomic
def format_imports_approve(*, actor, fmt: Format, reason: str) -> Format:
    """Trust exactly the unvetted imports of a format in review (the common way to approve),
    and decide again every format in review of its context. Returns the format, now ready."""
    reason = clean_reason(reason)
    context = _lock_context(fmt.version.model.context)
    fmt = lock_for_update(Format).select_related("version__model").filter(
        pk=fmt.pk).first()
    if fmt is None:
        raise NotFound("That format no longer exists.")
    if fmt.status != FormatStatus.REVIEW:
        raise Conflict(f"The {fmt.kind} file is {fmt.status}, not in review: it has no imports to approve.",
                       field="status")
    names = unvetted_imports(fmt.report)
    if not names:
        raise Conflict(f"The report of the {fmt.kind} file names no import to approve; upload the file again.",
                       field="status")
    for name in names:
        clean_import_name(name)  # a name the scanner reported but that no rule may trust: refused whole
    version = fmt.version
    _trust(actor=actor, context=context, names=names, reason=reason,
           why=f" (approved from the {fmt.kind} file of version {version.number} of {version.model.name})")
    _reevaluate(actor=actor, context=context, cause=f"its imports were approved ({reason})")
    fmt.refresh_from_db(fields=["status", "status_message"])
    return fmt


@transaction.atomic
def trusted_import_revoke(*, actor, context: Context, name: str) -> list[Format]:
    """Stop trusting `name` in `context`. Formats of draft versions that were ready only
    because of it go back to review; published versions are left as they are.

    Returns the formats sent back to review."""
    context = _lock_context(context)
    row = TrustedImport.objects.select_related("created_by").filter(context=context, name=name).first()
    if row is None:
        raise NotFound(f"'{str(name)[:100]}' is not a trusted import of this context.")
    row_id, author = str(row.pk), row.created_by.username if row.created_by else "operator"
    row.delete()
    audit(actor=actor, context=context, action="trusted_import.revoke", object_type="trustedimport",
          object_id=row_id, object_repr=name,
          summary=f"revoked trust in import {name} (trusted by {author} on {row.created_at:%Y-%m-%d}: {row.reason})",
          changes={"name": name, "reason": row.reason, "trusted_by": author})
    return _reevaluate(actor=actor, context=context, cause=f"import {name} is no longer trusted")
