"""Reads, always filtered by what the user may see. An invisible object is simply not found."""

from __future__ import annotations

import functools
import unicodedata
import uuid
from collections import defaultdict

from django.db import DEFAULT_DB_ALIAS
from django.db.models import Count, Exists, F, JSONField, OuterRef, Prefetch, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce, Upper
from django.utils import timezone

from registry import compare, keyset
from registry.errors import InvalidInput, NotFound
from registry.models import (
    ModelAttachment,
    Alias,
    AliasMove,
    AliasMoveRequest,
    ApiToken,
    AuditEvent,
    Context,
    Format,
    FormatStatus,
    Membership,
    MembershipSource,
    Metric,
    Model,
    SsoRule,
    ModelMetric,
    ProtectedAlias,
    RequestStatus,
    TrainingRecord,
    TrustedImport,
    Version,
    Webhook,
    WebhookAttempt,
    WebhookDelivery,
)
from registry.expressions import AmongIds, JSONList, UUIDText
from registry.permissions import (
    ALL_CONTEXTS,
    Perm,
    context_scope,
    contexts_for,
    granted_contexts,
    model_in_scope,
    model_scope,
    models_for,
)
from registry.prepared import CompiledQuery, CompiledRows
from registry.services.common import normalize_name

MODEL_ORDERINGS = {
    "name": "name_key",
    "created": "created_at",
    "created_at": "created_at",
    "updated": "updated_at",
    "updated_at": "updated_at",
    "versions": "version_count",
    "version_count": "version_count",
}


def _uuid(value, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except (ValueError, TypeError):
        raise NotFound(f"{what} not found.") from None


def _by_int_id(rows: QuerySet, row_id, *, missing: str, malformed: str = ""):
    """The row of `rows` whose integer primary key is `row_id` (as a URL gives it); NotFound
    (404) with `missing` when there is none, or with `malformed` (else `missing`) when `row_id`
    is not an integer, before any query."""
    try:
        row_id = int(row_id)
    except (TypeError, ValueError):
        raise NotFound(malformed or missing) from None
    row = rows.filter(pk=row_id).first()
    if row is None:
        raise NotFound(missing)
    return row


def context_list(user) -> QuerySet[Context]:
    """Contexts the user can see."""
    return contexts_for(user, Perm.VIEW_MODEL).order_by("slug")


# Every request under /contexts/{ctx}/ reads its context first: compiled once per process.
_CONTEXT = CompiledQuery(lambda slug, contexts=None: (
    Context.objects.all() if contexts is None else Context.objects.filter(pk__in=contexts)).filter(slug=slug).order_by())


def context_get(user, slug: str) -> Context:
    """A context the user can see, by slug, to read or act under. A request with an API token
    read the slugs of the user's contexts with its token: the context is known without a query,
    as its id and slug (its other fields load when read, as deferred fields do). Otherwise one
    statement, compiled when the scope is known without a query (site staff, or the context ids
    read with the token), as in _visible_model."""
    scope = context_scope(user, Perm.VIEW_MODEL)
    granted = granted_contexts(user)
    if scope != ALL_CONTEXTS and scope is not None and granted is not None:
        context_id = granted.get(str(slug))
        if context_id is None or context_id not in scope:
            raise NotFound("Context not found.")
        return Context.from_db(DEFAULT_DB_ALIAS, ["id", "slug"], [context_id, str(slug)])
    return context_detail(user, slug)


def context_detail(user, slug: str) -> Context:
    """A context the user can see, by slug, read whole (GET /contexts/{ctx}/ shows it)."""
    scope = context_scope(user, Perm.VIEW_MODEL)
    if scope == ALL_CONTEXTS:
        found = _CONTEXT.run(slug=str(slug))
    elif scope:
        found = _CONTEXT.run(slug=str(slug), contexts=sorted(scope))
    elif scope is None:
        found = list(contexts_for(user, Perm.VIEW_MODEL).filter(slug=slug)[:1])
    else:
        found = []
    if not found:
        raise NotFound("Context not found.")
    return found[0]


def member_list(context: Context) -> QuerySet[Membership]:
    """Hand-granted memberships and those of single sign-on rules (with the rule), by name."""
    return Membership.objects.filter(context=context).select_related("user", "group", "sso_rule").order_by(
        "group__name", "user__username", "source"
    )


def sso_rule_list(user) -> QuerySet[SsoRule]:
    """The single sign-on rules of every context `user` manages (site staff: all), with each
    rule's context and how many roles it grants now."""
    return (SsoRule.objects.filter(context__in=contexts_for(user, Perm.MANAGE_CONTEXT))
            .select_related("context", "created_by").annotate(granted=Count("memberships"))
            .order_by("claim_value", "context__slug", "pk"))


def sso_rule_get(user, rule_id) -> SsoRule:
    """A rule in a context `user` can see (whether they may delete it is @requires' to say)."""
    rule = None
    if str(rule_id).isdigit():
        rule = (SsoRule.objects.filter(pk=int(rule_id), context__in=contexts_for(user, Perm.VIEW_MODEL))
                .select_related("context").first())
    if rule is None:
        raise NotFound("Single sign-on rule not found.")
    return rule


def member_get(context: Context, membership_id, *, hand_granted: bool = False) -> Membership:
    """One membership of `context`; one of another context is simply not found. With
    `hand_granted`, only one an admin granted (those of single sign-on rules are the rules')."""
    rows = member_list(context)
    return _by_int_id(rows.filter(source=MembershipSource.MANUAL) if hand_granted else rows, membership_id,
                      missing="This membership does not exist (any more).", malformed="Membership not found.")


def _first(queryset):
    """The first row of `queryset` in one LIMIT 1 statement, without the ORDER BY of .first()
    (Version's default ordering would join its model only to sort one row)."""
    return next(iter(queryset[:1]), None)


@functools.cache
def _with_users(model_class, *fields: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(select_related, only) arguments that read the user foreign keys `fields` of
    `model_class` as User rows holding just their username, and every column of its own but
    the search helpers the database generates. An object a service has just written holds the
    same relations (its actor), so it is shown the same way."""
    own = tuple(f.name for f in model_class._meta.concrete_fields if not f.generated)
    return fields, own + tuple(f"{field}__username" for field in fields)


# --- models -------------------------------------------------------------------------------
# A model as it is shown (the API's model, a row of the model list, the dashboard's model
# page) carries its columns, its context, its owner, created_by and updated_by (usernames only),
# and: tag_names, version_numbers (ascending) and alias_rows ([{"name", "version"}] by name).

MODEL_USERS = (Model, "owner", "created_by", "updated_by")
SEARCH_COLUMNS = ("name_upper", "description_upper")  # read by the search's filters, never shown


def _model_shown() -> dict:
    tags = Model.tags.through.objects.filter(model_id=OuterRef("pk")).order_by("tag__key")
    versions = Version.objects.filter(model_id=OuterRef("pk")).order_by("number")
    aliases = Alias.objects.filter(model_id=OuterRef("pk")).order_by("name")
    return {
        "tag_names": JSONList(tags, "tag__name"),
        "version_numbers": JSONList(versions, "number"),
        "alias_rows": JSONList(aliases, name="name", version="version__number"),
    }


def _scoped(contexts) -> QuerySet[Model]:
    return Model.objects.all() if contexts is None else Model.objects.filter(context_id__in=contexts)


def _visible_model(compiled: CompiledQuery, query, user, model_id) -> Model:
    """Run `query(models, model_id)` over the models `user` may see: compiled once per process
    when the scope is known without a query (site staff, or the context ids read with the
    token), as a plain statement for a browser session (its roles are read by a subquery)."""
    model_id = _uuid(model_id, "Model")
    if not model_in_scope(user, model_id):  # a token limited to other models
        raise NotFound("Model not found.")
    scope = context_scope(user, Perm.VIEW_MODEL)
    if scope == ALL_CONTEXTS:
        found = compiled.run(model_id=model_id)
    elif scope:
        found = compiled.run(model_id=model_id, contexts=sorted(scope))
    elif scope is None:
        found = list(query(models_for(user, Perm.VIEW_MODEL), model_id))
    else:
        found = []
    if not found:
        raise NotFound("Model not found.")
    return found[0]


def _model_row_query(models: QuerySet[Model], model_id) -> QuerySet[Model]:
    return models.select_related("context").defer(*SEARCH_COLUMNS).filter(pk=model_id).order_by()


_MODEL_ROW = CompiledQuery(lambda model_id, contexts=None: _model_row_query(_scoped(contexts), model_id))


def model_get(user, model_id) -> Model:
    """A visible model with its context: the parent of what is read or written below it."""
    return _visible_model(_MODEL_ROW, _model_row_query, user, model_id)


def _model_detail_query(models: QuerySet[Model], model_id) -> QuerySet[Model]:
    related, columns = _with_users(*MODEL_USERS)
    return (models.select_related("context", *related).only(*columns).annotate(**_model_shown())
            .filter(pk=model_id).order_by())


# The API's hottest reads are compiled once per process (registry/prepared.py).
_MODEL_DETAIL = CompiledQuery(lambda model_id, contexts=None: _model_detail_query(_scoped(contexts), model_id))


def model_detail(user, model_id) -> Model:
    """A visible model as it is shown (see above), in one statement: the API's model and the
    dashboard's model page."""
    return _visible_model(_MODEL_DETAIL, _model_detail_query, user, model_id)


def _version_count():
    # A correlated count: the GROUP BY over every selected column cost more than the rows.
    live = Version.objects.filter(model=OuterRef("pk")).order_by().values("model").annotate(n=Count("*")).values("n")
    return Coalesce(Subquery(live), 0)


MODEL_PAGE_SIZE = 50  # the API's default page (registry/api/pagination.py)


@functools.cache
def _model_list_order(order: str) -> tuple[QuerySet[Model], list[keyset.Key]]:
    """The model list in the order `order` (a field of MODEL_ORDERINGS, '-' before it for
    descending, then by name and id), as a queryset (which decodes a cursor's values) and as
    its keyset keys: made once per process."""
    models = Model.objects.all()
    if order.removeprefix("-") == "version_count":
        models = models.annotate(version_count=_version_count())
    models = models.order_by(order, "name_key", "id")
    return models, keyset.ordering_keys(models)


def _model_page_query(*, order: str, direction: str, context_id: int, limit: int, position: list | None,
                      model_ids: list | None, term: str | None, tag_term: str | None, tag_keys: list[str],
                      name_key: str | None) -> QuerySet[Model]:
    """`limit` models of a context as they are shown, from the cursor position (`direction`,
    `position`) in the order `order`: within `model_ids` (a token limited to models), matching the
    search (`term` in the name or description, `tag_term` in a tag key), holding every tag of
    `tag_keys`, named `name_key`. Each value in its final form (see registry/prepared.py)."""
    ordered, keys = _model_list_order(order)
    related, columns = _with_users(*MODEL_USERS)
    models = ordered.filter(context_id=context_id).select_related(*related).only(*columns).annotate(**_model_shown())
    if model_ids is not None:
        models = models.filter(pk__in=model_ids)
    if term is not None:
        # The upper-cased copies the database keeps (Model.name_upper...): the term is
        # upper-cased once, not every row; tag keys are case-folded already.
        # The trigram indexes of migration 0011 serve the two LIKEs on PostgreSQL; AmongIds lets
        # the tag branch join them in one BitmapOr.
        tagged = Model.tags.through.objects.filter(tag__key__contains=tag_term).values("model_id")
        upper = Upper(Value(term))
        models = models.filter(Q(name_upper__contains=upper) | Q(description_upper__contains=upper)
                               | Q(AmongIds("pk", tagged)))
    for key in tag_keys:
        models = models.filter(AmongIds("pk", Model.tags.through.objects.filter(tag__key=key).values("model_id")))
    if name_key is not None:
        models = models.filter(name_key=name_key)
    return keyset.page_rows(models, keys, direction, position, limit)


# The model list (its search, tags, orders and pages) is read as often as a model: one statement
# per shape compiled once per process (registry/prepared.py).
_MODEL_PAGE = CompiledQuery(_model_page_query)


def model_list(
    user,
    context: Context,
    *,
    search: str = "",
    tags: list[str] | None = None,
    name: str = "",
    ordering: str = "",
    cursor: str | None = None,
    size: int = MODEL_PAGE_SIZE,
) -> keyset.Page:
    """A page of the models of a visible `context` as they are shown, searched over name,
    description and tags (the API's list and the dashboard's): one statement, whatever the page.

    `tags` must all be present; `name` matches the normalised name exactly; `ordering`
    is one of name, created, updated, versions, with '-' for descending; `cursor` comes from
    a page's next or previous cursor (None: the first page), `size` rows per page.
    """
    field, descending = _model_ordering(ordering)
    order = f"-{field}" if descending else field
    ordered, keys = _model_list_order(order)
    direction, position = keyset.position(cursor, keys, ordered)
    name_key = None
    if name:
        try:
            _, name_key = normalize_name(name)
        except InvalidInput:
            return keyset.Page([], None, None)
    term = search.strip() if search else None
    rows = _MODEL_PAGE.run(
        shape={"order": order, "direction": direction},
        context_id=context.pk, limit=size + 1, position=position, model_ids=model_scope(user),
        term=term, tag_term=None if term is None else term.casefold(),
        tag_keys=[tag.strip().casefold() for tag in tags or []], name_key=name_key,
    )
    for row in rows:
        row.context = context  # `context` came from context_get(), which checked visibility
    return keyset.page_of(keys, rows, direction, position, size)


def _model_ordering(ordering: str) -> tuple[str, bool]:
    field = MODEL_ORDERINGS.get(ordering.removeprefix("-"))
    if ordering and field is None:
        raise InvalidInput(
            f"Unknown ordering '{ordering}'; use name, created, updated or versions (prefix '-' to reverse).",
            field="ordering",
        )
    return field or "name_key", ordering.startswith("-")


# --- versions -----------------------------------------------------------------------------
# A version as it is shown (the API's version, the dashboard's details tab, a comparison)
# carries its columns, its model, its published_by, created_by and updated_by (usernames only),
# and: tag_names (by key), record_rows ([{"id", "name", "uri"}] by name), format_rows
# ([{"kind", "status", "size", "sha256"}] by kind) and alias_names (by name).

VERSION_USERS = (Version, "published_by", "created_by", "updated_by")


def _version_shown() -> dict:
    tags = Version.tags.through.objects.filter(version_id=OuterRef("pk")).order_by("tag__key")
    records = TrainingRecord.objects.filter(versions=OuterRef("pk")).order_by("name", "id")
    formats = Format.objects.filter(version_id=OuterRef("pk")).order_by("kind")
    aliases = Alias.objects.filter(version_id=OuterRef("pk")).order_by("name")
    return {
        "tag_names": JSONList(tags, "tag__name"),
        "record_rows": JSONList(records, id=UUIDText("id"), name="name", uri="uri"),
        "format_rows": JSONList(formats, kind="kind", status="status", size="size", sha256="sha256"),
        "alias_names": JSONList(aliases, "name"),
    }


def _versions_shown(versions: QuerySet[Version]) -> QuerySet[Version]:
    related, columns = _with_users(*VERSION_USERS)
    return versions.select_related(*related).only(*columns).annotate(**_version_shown())


def _version_page(model_id, offset: int | None, limit: int | None) -> QuerySet[Version]:
    versions = _versions_shown(Version.objects.filter(model_id=model_id)).order_by("number")
    return versions if limit is None else versions[offset:offset + limit]


# The versions of a model are listed as often as the model is read: compiled once per process.
_VERSION_PAGE = CompiledQuery(_version_page)


def version_list(model: Model) -> CompiledRows:
    """The versions of a visible `model` as they are shown, oldest first, for a paginator (or
    every one, iterated): one statement per page, and a count when a page is full."""
    def of_model(version):
        version.model = model

    return CompiledRows(_VERSION_PAGE, lambda: Version.objects.filter(model_id=model.pk).count(), each=of_model,
                        model_id=model.pk)


_VERSION_ROW = CompiledQuery(lambda model_id, number: Version.objects.filter(model_id=model_id, number=number)
                             .order_by())
_VERSION_DETAIL = CompiledQuery(lambda model_id, number: _versions_shown(
    Version.objects.filter(model_id=model_id, number=number)).order_by())


def _version_of(compiled: CompiledQuery, model: Model, number) -> Version:
    number = _version_number(model, number)
    found = compiled.run(model_id=model.pk, number=number) if 0 < number < 2**31 else []
    if not found:
        raise NotFound(f"Model '{model.name}' has no version {number}.")
    found[0].model = model  # the visible model the caller holds, not read again
    return found[0]


def version_choices(model: Model) -> QuerySet[Version]:
    """The versions of `model` with only what a version picker shows (number, name, status)."""
    return (
        Version.objects.filter(model=model)
        .only("id", "model_id", "number", "name", "status", "created_at", "published_at")
        .order_by("-number")
    )


def _version_number(model: Model, number) -> int:
    try:
        return int(number)
    except (TypeError, ValueError):
        raise NotFound(f"Model '{model.name}' has no version {number}.") from None


def version_get(model: Model, number) -> Version:
    """Version `number` of a visible `model`, its row only: the parent of an upload, a file,
    metrics, formats or a manifest, and what a write starts from."""
    return _version_of(_VERSION_ROW, model, number)


def version_detail(model: Model, number) -> Version:
    """Version `number` of a visible `model` as it is shown (see above), in one statement."""
    return _version_of(_VERSION_DETAIL, model, number)


def format_list(version: Version) -> QuerySet[Format]:
    """The formats of `version` (their .version is it, not read again), with who uploaded them."""
    return version.formats.select_related("uploaded_by").order_by("kind")


def format_get(version: Version, kind: str) -> Format:
    fmt = _first(format_list(version).filter(kind=kind))
    if fmt is None:
        raise NotFound(f"Version {version.number} has no '{kind}' format.")
    return fmt


def manifest_formats(version: Version) -> QuerySet[Format]:
    """The formats a manifest of `version` is made of (their .version is it)."""
    return version.formats.order_by("kind")


def version_manifest(version: Version, *, frozen: bool = False, formats=None) -> dict:
    """The model manifest of `version` (SPEC §4) from its `formats` (manifest_formats(), read
    here unless given); frozen adds checksums and a lock checksum. A published version's frozen
    manifest is stamped with its publication, so it reads the same every time (its formats
    cannot change any more)."""
    from registry import manifests

    if formats is None:
        formats = manifest_formats(version)
    moment = version.published_at if version.is_published else None
    return manifests.build(version, formats, frozen=frozen, now=moment)


def _metric_points(row_class, key: str, **owner) -> QuerySet:
    """The metric points of one owner (`version=` or `model=`), optionally of one key, in the
    order the lists page them."""
    metrics = row_class.objects.filter(**owner)
    if key:
        metrics = metrics.filter(key=key)
    # Nulls placed explicitly (the databases differ), which keyset pagination needs.
    return metrics.order_by("key", F("step").asc(nulls_last=True), "wallclock", "id")


def _metric_points_latest(row_class, owner_field: str, owner) -> QuerySet:
    """The latest point of each key of one owner (highest step, then newest wallclock).

    One query whatever the number of keys or logged values: each row is kept only if it is
    the newest of its key, decided by a correlated subquery that the (owner, key, step)
    index serves.
    """
    owner_id = f"{owner_field}_id"
    newest = (
        row_class.objects.filter(**{owner_id: OuterRef(owner_id)}, key=OuterRef("key"))
        .order_by(F("step").desc(nulls_last=True), "-wallclock", "-id")
        .values("id")[:1]
    )
    return row_class.objects.filter(**{owner_field: owner}, id=Subquery(newest)).order_by("key")


def metric_list(version: Version, *, key: str = "") -> QuerySet[Metric]:
    """The metric points logged on a visible `version`."""
    return _metric_points(Metric, key, version=version)


def metric_latest(version: Version) -> QuerySet[Metric]:
    """The latest value of each metric key of `version`, in one query."""
    return _metric_points_latest(Metric, "version", version)


def model_metric_list(model: Model, *, key: str = "") -> QuerySet[ModelMetric]:
    """The metric points logged on a visible `model` itself, in the order version metrics are."""
    return _metric_points(ModelMetric, key, model=model)


def attachment_list(model: Model) -> QuerySet[ModelAttachment]:
    """The attachments of a visible `model` (their .model is it, not read again), by name, with
    who uploaded them: the API's list and the Attachments tab."""
    return model.attachments.select_related("uploaded_by").order_by("name_key", "id")


def attachment_get(model: Model, name: str) -> ModelAttachment:
    """An attachment of `model` by name (case-insensitively, as names are unique); 404 otherwise."""
    key = unicodedata.normalize("NFC", name).casefold() if isinstance(name, str) else ""
    attachment = _first(attachment_list(model).filter(name_key=key))
    if attachment is None:
        raise NotFound(f"Model {model.name} has no attachment named {str(name)[:200]!r}.")
    return attachment


def model_metric_latest(model: Model) -> QuerySet[ModelMetric]:
    """The latest value of each of `model`'s own metric keys, in one query (as metric_latest)."""
    return _metric_points_latest(ModelMetric, "model", model)


MAX_METRIC_KEYS_OFFERED = 500  # keys a model page offers to chart across versions


def version_metric_keys(model: Model) -> list[str]:
    """The metric keys with a number logged on any version of `model` (for the across-versions
    chart's picker), at most MAX_METRIC_KEYS_OFFERED."""
    return list(Metric.objects.filter(version__model=model, value_number__isnull=False)
                .order_by("key").values_list("key", flat=True).distinct()[:MAX_METRIC_KEYS_OFFERED])


def metric_across_versions(model: Model, key: str) -> list[dict]:
    """The latest value of metric `key` in each version of `model` that has one ({version,
    value, step, wallclock}, by version number): one query, the newest point of each version
    chosen by a correlated subquery that the (version, key, step) index serves."""
    newest = (
        Metric.objects.filter(version_id=OuterRef("version_id"), key=key)
        .order_by(F("step").desc(nulls_last=True), "-wallclock", "-id")
        .values("id")[:1]
    )
    rows = (Metric.objects.filter(version__model=model, key=key, id=Subquery(newest))
            .order_by("version__number")
            .values("version__number", "value_number", "value_text", "step", "wallclock"))
    return [{"version": row["version__number"],
             "value": row["value_number"] if row["value_number"] is not None else row["value_text"],
             "step": row["step"], "wallclock": row["wallclock"]} for row in rows]


# --- aliases ------------------------------------------------------------------------------
# An alias as it is shown carries its version (number only) and updated_by (username only);
# a move, its actor (username only): what the alias services return hold the same.

ALIAS_SHOWN = ("version", "updated_by"), ("id", "model", "name", "version", "updated_by", "updated_at",
                                         "version__number", "updated_by__username")
MOVE_USERS = (AliasMove, "actor")



def alias_list(model: Model) -> QuerySet[Alias]:
    """The aliases of a visible `model` as they are shown, by name (the API and the dashboard)."""
    related, columns = ALIAS_SHOWN
    return model.aliases.select_related(*related).only(*columns).order_by("name")


_ALIAS = CompiledQuery(lambda model_id, name: Alias.objects.filter(model_id=model_id, name=name)
                       .select_related(*ALIAS_SHOWN[0]).only(*ALIAS_SHOWN[1]).order_by())


def alias_get(model: Model, name: str) -> Alias:
    """Alias `name` of a visible `model` as it is shown."""
    found = _ALIAS.run(model_id=model.pk, name=str(name))
    if not found:
        raise NotFound(f"Model '{model.name}' has no alias '{name}'.")
    found[0].model = model
    return found[0]


def _moves_shown(moves: QuerySet[AliasMove]) -> QuerySet[AliasMove]:
    related, columns = _with_users(*MOVE_USERS)
    return moves.select_related(*related).only(*columns).order_by("-created_at", "-id")


def alias_history(model: Model) -> QuerySet[AliasMove]:
    """Moves of the aliases of `model`, newest first, as shown (the dashboard's Aliases tab)."""
    return _moves_shown(model.alias_moves.all())


ALIAS_MOVES_SHOWN = 100  # the newest moves in an alias's detail
# An alias's detail is read as often as the alias is resolved: compiled once per process.
_ALIAS_MOVES = CompiledQuery(lambda model_id, name: _moves_shown(
    AliasMove.objects.filter(model_id=model_id, alias_name=name))[:ALIAS_MOVES_SHOWN])


def alias_moves(model: Model, name: str) -> list[AliasMove]:
    """The newest ALIAS_MOVES_SHOWN moves of alias `name` of a visible `model`, as shown."""
    return _ALIAS_MOVES.run(model_id=model.pk, name=str(name))


def _record_version_count():
    trained = Version.records.through.objects.filter(trainingrecord_id=OuterRef("pk")).order_by().values(
        "trainingrecord_id").annotate(n=Count("*")).values("n")
    return Coalesce(Subquery(trained), 0)


def record_list(context: Context, *, search: str = "") -> QuerySet[TrainingRecord]:
    """The records of a visible `context` as they are shown (with version_count), by name."""
    records = TrainingRecord.objects.filter(context=context).select_related("context", "created_by").annotate(
        version_count=_record_version_count()
    )
    if search:
        records = records.filter(Q(name__icontains=search) | Q(uri__icontains=search))
    return records.order_by("name", "id")


def record_get(user, record_id) -> TrainingRecord:
    """A visible record as it is shown (with version_count)."""
    record_uuid = _uuid(record_id, "Training record")
    record = (
        TrainingRecord.objects.select_related("context", "created_by")
        .filter(id=record_uuid, context__in=contexts_for(user, Perm.VIEW_MODEL))
        .annotate(version_count=_record_version_count()).first()
    )
    if record is None:
        raise NotFound("Training record not found.")
    return record


def record_versions(record: TrainingRecord) -> QuerySet[Version]:
    """Every version trained on `record` (the other direction of lineage)."""
    return record.versions.select_related("model").order_by("model__name_key", "number")


def trusted_import_list(context: Context) -> QuerySet[TrustedImport]:
    """The imports trusted in a visible context, with who trusted them (the API and the page)."""
    return TrustedImport.objects.filter(context=context).select_related("created_by").order_by("name", "id")


def trusted_import_get(context: Context, trusted_id) -> TrustedImport:
    """One trusted import of `context` by id; one of another context is simply not found."""
    return _by_int_id(trusted_import_list(context), trusted_id,
                      missing="This import is not trusted here (any more).", malformed="Trusted import not found.")


def audit_list(
    context: Context, *, action: str = "", actor: str = "", object_type: str = "", object_id: str = ""
) -> QuerySet[AuditEvent]:
    events = AuditEvent.objects.filter(context=context)
    if action:
        events = events.filter(action__startswith=action)
    if actor:
        events = events.filter(actor_name=actor)
    if object_type:
        events = events.filter(object_type=object_type)
    if object_id:
        events = events.filter(object_id=object_id)
    return events.order_by("-created_at", "-id")


def webhook_list(context: Context) -> QuerySet[Webhook]:
    """A context's hooks, oldest first, each with who created it and the status and time of its
    latest delivery (the API's list and the Webhooks page); the secret is never shown."""
    latest = WebhookDelivery.objects.filter(webhook=OuterRef("pk")).order_by("-created_at", "-id")
    return (Webhook.objects.filter(context=context).select_related("created_by")
            .annotate(last_delivery_status=Subquery(latest.values("status")[:1]),
                      last_delivery_at=Subquery(latest.values("created_at")[:1]))
            .order_by("created_at", "id"))


def webhook_get(context: Context, webhook_id) -> Webhook:
    """One hook of `context` by id; a hook of another context, or no id at all, is not found."""
    try:
        webhook_id = uuid.UUID(str(webhook_id))
    except ValueError:
        raise NotFound("Webhook not found.") from None
    webhook = webhook_list(context).filter(pk=webhook_id).first()
    if webhook is None:
        raise NotFound("Webhook not found.")
    return webhook


def webhook_delivery_list(webhook: Webhook, *, status: str = "") -> QuerySet[WebhookDelivery]:
    """A hook's deliveries, newest first, each with its attempts (at most one a retry, so a day's
    worth is a few dozen); `status` filters (pending, delivered, failed, cancelled)."""
    deliveries = WebhookDelivery.objects.filter(webhook=webhook)
    if status:
        deliveries = deliveries.filter(status=status)
    return deliveries.prefetch_related(
        Prefetch("attempts", queryset=WebhookAttempt.objects.order_by("number"))).order_by("-created_at", "-id")
def _token_shown() -> dict:
    """A token as the token pages and the API show it: its scope's context slugs and models
    ([{"id", "context", "name"}]) read with it, one statement for a page of tokens."""
    contexts = ApiToken.scope_contexts.through.objects.filter(apitoken_id=OuterRef("pk")).order_by("context__slug")
    models = ApiToken.scope_models.through.objects.filter(apitoken_id=OuterRef("pk")).order_by(
        "model__context__slug", "model__name_key")
    return {
        "scope_context_slugs": JSONList(contexts, "context__slug"),
        "scope_model_rows": JSONList(models, id=UUIDText("model_id"), context="model__context__slug",
                                     name="model__name"),
    }


def token_list(user) -> QuerySet[ApiToken]:
    """The user's own tokens, newest first, as shown (with their scope)."""
    return (ApiToken.objects.filter(user=user).select_related("user").annotate(**_token_shown())
            .order_by("-created_at", "-id"))


def context_token_list(context: Context) -> QuerySet[ApiToken]:
    """Tokens that can act in `context`, for its admins: live (not revoked, not expired) tokens of
    users who hold a role there (directly or through a group), reaching every context of their
    owner or this one (a token limited to models reaches the contexts of its models). Site staff
    who are no member are left out: their tokens are staff business. Newest first, as shown."""
    members = Membership.objects.filter(context=context)
    holders = Q(user_id__in=members.exclude(user=None).values("user_id")) | Q(
        user__groups__in=members.exclude(group=None).values("group_id"))
    reaching = ApiToken.scope_contexts.through.objects.filter(apitoken_id=OuterRef("pk"), context_id=context.pk)
    return (ApiToken.objects.filter(holders).filter(Q(reach="all") | Q(Exists(reaching)))
            .filter(revoked_at=None).filter(Q(expires_at=None) | Q(expires_at__gt=timezone.now()))
            .select_related("user").annotate(**_token_shown()).distinct().order_by("-created_at", "-id"))


def context_token_get(context: Context, token_id) -> ApiToken:
    """A token that can act in `context` (context_token_list); any other is not found (404)."""
    return _by_int_id(context_token_list(context), token_id, missing="Token not found.")


# --- protected aliases and move requests --------------------------------------------------------

def protected_alias_list(context: Context) -> QuerySet[ProtectedAlias]:
    return ProtectedAlias.objects.filter(context=context).select_related("created_by").order_by("name")


def alias_request_list(*, model: Model | None = None, context: Context | None = None,
                       status: str = "") -> QuerySet[AliasMoveRequest]:
    """Move requests of a model (or of every model of a context), newest first, with the
    signatures of the versions they move from and to (`from_signature`, `to_signature`: None
    when that version is gone), for the breaking-signature check (alias_request_check)."""
    requests = AliasMoveRequest.objects.all()
    if model is not None:
        requests = requests.filter(model=model)
    if context is not None:
        requests = requests.filter(model__context=context)
    if status:
        if status not in RequestStatus.values:
            raise InvalidInput(f"Unknown status '{status}'; use {', '.join(RequestStatus.values)}.", field="status")
        requests = requests.filter(status=status)

    def signature(number_field: str):
        return Subquery(Version.objects.filter(model_id=OuterRef("model_id"), number=OuterRef(number_field))
                        .values("signature")[:1], output_field=JSONField())

    return (requests.select_related("model__context", "requested_by", "decided_by")
            .annotate(from_signature=signature("from_number"), to_signature=signature("to_number"))
            .order_by("-requested_at", "-id"))


def alias_request_get(model: Model, request_id) -> AliasMoveRequest:
    """One move request on a visible `model`; one on another model is simply not found (404)."""
    return _by_int_id(alias_request_list(model=model), request_id, missing="Request not found.")


def alias_request_check(request: AliasMoveRequest) -> list:
    """The signature changes consumers of the alias would see if the request were approved
    (registry.compare.signature_diff, each flagged breaking or not); [] when nothing is compared:
    a new alias, or a removal."""
    if request.from_number is None or request.to_number is None:
        return []
    return compare.signature_diff(request.from_signature or {}, request.to_signature or {})


def token_get(user, token_id) -> ApiToken:
    """One of `user`'s own API tokens; anybody else's token is simply not found (404)."""
    return _by_int_id(token_list(user), token_id, missing="Token not found.")


# --- what the dashboard shows beside versions and aliases -----------------------------------------
# Small reads of their own, each one query, so a page's count does not grow with its rows.

# Worst first: the state a version (or an alias, through its version) is shown with is that of
# its worst file, so a published version whose file went corrupt never keeps a green badge.
FILE_STATE_SEVERITY = [FormatStatus.QUARANTINED, FormatStatus.CORRUPT, FormatStatus.FAILED, FormatStatus.REVIEW,
                       FormatStatus.INTROSPECTING, FormatStatus.HASHING, FormatStatus.UPLOADED, FormatStatus.PENDING,
                       FormatStatus.READY]


def worst_file_state(files) -> dict | None:
    """{"status", "kind"} of the worst of `files` ((kind, status) pairs); None without files."""
    worst = None
    for kind, status in files:
        rank = FILE_STATE_SEVERITY.index(status) if status in FILE_STATE_SEVERITY else 0
        if worst is None or rank < worst[0] or (rank == worst[0] and kind < worst[1]):
            worst = (rank, kind, status)
    return None if worst is None else {"status": worst[2], "kind": worst[1]}


def version_file_states(model: Model) -> dict[int, dict]:
    """The worst file state of each version of `model` that has a format, by version number."""
    files = defaultdict(list)
    for number, kind, status in Format.objects.filter(version__model=model).values_list(
            "version__number", "kind", "status"):
        files[number].append((kind, status))
    return {number: worst_file_state(pairs) for number, pairs in files.items()}


def alias_file_states(model_ids) -> dict:
    """For the model list: {model id: [{"name", "number", "state"}]} of each model's aliases, with
    the worst file state of the version each points to (None: no file)."""
    rows = (Alias.objects.filter(model_id__in=list(model_ids)).order_by("name")
            .values_list("model_id", "name", "version__number", "version__formats__kind", "version__formats__status"))
    files = defaultdict(list)
    for model_id, name, number, kind, status in rows:
        pairs = files[(model_id, name, number)]
        if kind is not None:
            pairs.append((kind, status))
    aliases = defaultdict(list)
    for (model_id, name, number), pairs in files.items():
        aliases[model_id].append({"name": name, "number": number, "state": worst_file_state(pairs)})
    return aliases


def alias_rollback_targets(model: Model) -> dict[str, int | None]:
    """The version each alias of `model` would roll back to (None: no earlier version), found as
    services.alias_rollback finds it: the move that set the alias to where it points now."""
    previous = AliasMove.objects.filter(
        model=OuterRef("model"), alias_name=OuterRef("name"), to_number=OuterRef("version__number"),
    ).order_by("-created_at", "-id").values("from_number")[:1]
    live = Version.objects.filter(model=OuterRef("model"), number=OuterRef("previous"))
    rows = Alias.objects.filter(model=model).annotate(previous=Subquery(previous)).annotate(
        previous_exists=Exists(live)).values_list("name", "previous", "previous_exists")
    return {name: number if exists else None for name, number, exists in rows}


MEMBER_CANDIDATES_SHOWN = 10


def member_candidates(context: Context, prefix: str) -> dict[str, list[str]]:
    """Active accounts and groups whose name starts with `prefix` and that hold no role in
    `context` yet: names only, a few of each (dashboard.views.assist says who may ask)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    members = Membership.objects.filter(context=context)
    users = (get_user_model().objects.filter(is_active=True, username__istartswith=prefix)
             .exclude(pk__in=members.exclude(user=None).values("user_id")).order_by("username")
             .values_list("username", flat=True)[:MEMBER_CANDIDATES_SHOWN])
    groups = (Group.objects.filter(name__istartswith=prefix)
              .exclude(pk__in=members.exclude(group=None).values("group_id")).order_by("name")
              .values_list("name", flat=True)[:MEMBER_CANDIDATES_SHOWN])
    return {"users": list(users), "groups": list(groups)}
