"""Reads, always filtered by what the user may see. An invisible object is simply not found."""

from __future__ import annotations

import uuid
from collections import defaultdict

from django.db.models import BooleanField, Count, F, Func, OuterRef, Prefetch, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce, Upper

from registry.errors import InvalidInput, NotFound
from registry.models import (
    Alias,
    AliasMove,
    ApiToken,
    AuditEvent,
    Context,
    Format,
    Membership,
    Metric,
    Model,
    Tag,
    TrainingRecord,
    TrustedImport,
    Version,
)
from registry import sql
from registry.permissions import Perm, context_scope, contexts_for, models_for
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


def context_list(user) -> QuerySet[Context]:
    """Contexts the user can see."""
    return contexts_for(user, Perm.VIEW_MODEL).order_by("slug")


def _sql_scope(user):
    """Where `user` may view, when the hand-written SQL can use it: on PostgreSQL with the roles
    read with the token (permissions.context_scope); otherwise None, and the ORM asks."""
    return context_scope(user, Perm.VIEW_MODEL) if sql.enabled() else None


def context_get(user, slug: str) -> Context:
    scope = _sql_scope(user)
    if scope is not None:  # roles known from the token: one hand-written query
        context = sql.context_get(slug, scope)
    else:
        context = contexts_for(user, Perm.VIEW_MODEL).filter(slug=slug).first()
    if context is None:
        raise NotFound("Context not found.")
    return context


def member_list(context: Context) -> QuerySet[Membership]:
    return Membership.objects.filter(context=context).select_related("user", "group").order_by(
        "group__name", "user__username"
    )


def member_get(context: Context, membership_id) -> Membership:
    """One membership of `context`; one of another context is simply not found."""
    try:
        membership_id = int(membership_id)
    except (TypeError, ValueError):
        raise NotFound("Membership not found.") from None
    membership = member_list(context).filter(pk=membership_id).first()
    if membership is None:
        raise NotFound("This membership does not exist (any more).")
    return membership


def _model_base(user) -> QuerySet[Model]:
    return models_for(user, Perm.VIEW_MODEL).select_related(
        "context", "owner", "created_by", "updated_by"
    ).prefetch_related(
        Prefetch("tags", queryset=Tag.objects.order_by("key")),
        Prefetch("versions", queryset=Version.objects.only("id", "model_id", "number").order_by("number")),
        Prefetch("aliases", queryset=Alias.objects.select_related("version").only(
            "id", "model_id", "name", "version__id", "version__number").order_by("name")),
    )


USERNAMES = {"owner_name": F("owner__username"), "created_by_name": F("created_by__username"),
             "updated_by_name": F("updated_by__username")}


def _model_light(queryset: QuerySet[Model]) -> QuerySet[Model]:
    """For the API: usernames instead of three joined User rows and no prefetch_related (the
    relations of a page are loaded by load_model_relations())."""
    return queryset.select_related("context").annotate(**USERNAMES)


def _version_count():
    # A correlated count: the GROUP BY over every selected column cost more than the rows.
    live = Version.objects.filter(model=OuterRef("pk")).order_by().values("model").annotate(n=Count("*")).values("n")
    return Coalesce(Subquery(live), 0)


def load_model_relations(models):
    """Attach tag names, version numbers and aliases to `models` (a page) in three queries."""
    models = list(models)
    if not models or all(hasattr(m, "alias_map") for m in models):  # none, or read with them
        return models
    ids = [m.pk for m in models]
    tags, versions, aliases = defaultdict(list), defaultdict(list), defaultdict(dict)
    through = Model.tags.through.objects.filter(model_id__in=ids).order_by("tag__key")
    for model_id, name in through.values_list("model_id", "tag__name"):
        tags[model_id].append(name)
    numbers = Version.objects.filter(model_id__in=ids).order_by("number").values_list("model_id", "number")
    for model_id, number in numbers:
        versions[model_id].append(number)
    rows = Alias.objects.filter(model_id__in=ids).order_by("name").values_list("model_id", "name", "version__number")
    for model_id, name, number in rows:
        aliases[model_id][name] = number
    for m in models:
        m.tag_names, m.version_numbers, m.alias_map = tags[m.pk], versions[m.pk], aliases[m.pk]
    return models


def model_list(
    user,
    context: Context,
    *,
    search: str = "",
    tags: list[str] | None = None,
    name: str = "",
    ordering: str = "",
    light: bool = False,
) -> QuerySet[Model]:
    """Models of a visible context, searched over name, description and tags.

    `tags` must all be present; `name` matches the normalised name exactly; `ordering`
    is one of name, created, updated, versions, with '-' for descending.
    """
    if light:  # `context` comes from context_get(), which checked visibility: no membership subquery
        models = _model_light(Model.objects.filter(context=context))
    else:
        models = _model_base(user).filter(context=context).annotate(version_count=_version_count())
    if search:
        # As icontains on PostgreSQL (UPPER ... LIKE UPPER), over the upper-cased copies the
        # database keeps, which the trigram indexes of migration 0011 serve; tag keys are
        # case-folded already.
        term = search.strip()
        upper = Upper(Value(term))
        tagged = Tag.models.through.objects.filter(tag__key__contains=term.casefold()).values("model_id")
        models = models.filter(Q(name_upper__contains=upper) | Q(description_upper__contains=upper)
                               | Q(_AmongIds("pk", tagged)))
    for tag in tags or []:
        tagged = Tag.models.through.objects.filter(tag__key=tag.strip().casefold()).values("model_id")
        models = models.filter(_AmongIds("pk", tagged))
    if name:
        try:
            _, key = normalize_name(name)
        except InvalidInput:
            return models.none()
        models = models.filter(name_key=key)
    field, descending = _model_ordering(ordering)
    if light and field == "version_count":
        models = models.annotate(version_count=_version_count())
    return models.order_by(f"-{field}" if descending else field, "name_key", "id")


def _model_ordering(ordering: str) -> tuple[str, bool]:
    field = MODEL_ORDERINGS.get(ordering.removeprefix("-"))
    if ordering and field is None:
        raise InvalidInput(
            f"Unknown ordering '{ordering}'; use name, created, updated or versions (prefix '-' to reverse).",
            field="ordering",
        )
    return field or "name_key", ordering.startswith("-")


class _AmongIds(Func):
    """`field` is one of the values `queryset` selects. On PostgreSQL `field = ANY(ARRAY(...))`:
    the subquery runs once and its ids are looked up in the primary key's index, also as one
    branch of an OR (the search: a BitmapOr with the trigram indexes). `IN (subquery)` there is
    a hashed filter tried on each row, and the planner walks the whole name index with it when
    the hits sort late (a tag that every "fraud-..." model has). Elsewhere `IN (subquery)`."""

    output_field = BooleanField()
    conditional = True

    def __init__(self, field: str, queryset: QuerySet):
        super().__init__(F(field), Subquery(queryset))

    def as_sql(self, compiler, connection, **extra_context):
        return super().as_sql(compiler, connection, template="%(expressions)s", arg_joiner=" IN ", **extra_context)

    def as_postgresql(self, compiler, connection, **extra_context):
        return super().as_sql(compiler, connection, template="%(expressions)s)", arg_joiner=" = ANY(ARRAY",
                              **extra_context)


def model_get(user, model_id, *, light: bool = False, relations: bool = False) -> Model:
    """A visible model. `light` (the API): usernames instead of User rows, and on PostgreSQL
    with token-known roles (registry/sql.py) also its tags, versions and aliases when
    `relations` is asked for, all in one query."""
    model_id = _uuid(model_id, "Model")
    scope = _sql_scope(user) if light else None
    if scope is not None:
        model = sql.model_get(model_id, scope, relations=relations)
    else:
        base = _model_light(models_for(user, Perm.VIEW_MODEL)) if light else _model_base(user)
        model = base.filter(pk=model_id).first()
    if model is None:
        raise NotFound("Model not found.")
    return model


def model_get_full(user, model_id) -> Model:
    """The API's model: the light row plus its relations, for serialization."""
    return load_model_relations([model_get(user, model_id, light=True, relations=True)])[0]


def version_list(model: Model) -> QuerySet[Version]:
    return (
        Version.objects.filter(model=model)
        .select_related("model__context", "created_by", "updated_by", "published_by")
        .prefetch_related(
            Prefetch("tags", queryset=Tag.objects.order_by("key")),
            Prefetch("records", queryset=TrainingRecord.objects.order_by("name")),
            Prefetch("formats", queryset=Format.objects.order_by("kind")),
            Prefetch("aliases", queryset=Alias.objects.order_by("name")),
        )
        .order_by("number")
    )


def version_choices(model: Model) -> QuerySet[Version]:
    """The versions of `model` with only what a version picker shows (number, name, status)."""
    return (
        Version.objects.filter(model=model)
        .only("id", "model_id", "number", "name", "status", "created_at", "published_at")
        .order_by("-number")
    )


def version_get(model: Model, number, *, light: bool = False) -> Version:
    """Version `number` of a visible `model`, with its relations prefetched. `light` (the API):
    usernames instead of User rows, read with hand-written SQL on PostgreSQL."""
    try:
        number = int(number)
    except (TypeError, ValueError):
        raise NotFound("Version not found.") from None
    if light and sql.enabled():
        version = sql.version_get(model, number)
    else:
        version = version_list(model).filter(number=number).first()
    if version is None:
        raise NotFound(f"Model '{model.name}' has no version {number}.")
    return version


def format_list(version: Version) -> QuerySet[Format]:
    return Format.objects.filter(version=version).select_related("uploaded_by", "version__model").order_by("kind")


def format_get(version: Version, kind: str) -> Format:
    fmt = format_list(version).filter(kind=kind).first()
    if fmt is None:
        raise NotFound(f"Version {version.number} has no '{kind}' format.")
    return fmt


def version_manifest(version: Version, *, frozen: bool = False) -> dict:
    """The version's model manifest (SPEC §4); frozen adds checksums and a lock checksum."""
    from registry import manifests

    formats = sorted(version.formats.all(), key=lambda fmt: fmt.kind)  # prefetched by version_get
    return manifests.build(version, formats, frozen=frozen)


def metric_list(version: Version, *, key: str = "") -> QuerySet[Metric]:
    metrics = Metric.objects.filter(version=version)
    if key:
        metrics = metrics.filter(key=key)
    # Nulls placed explicitly (the databases differ), which keyset pagination needs.
    return metrics.order_by("key", F("step").asc(nulls_last=True), "wallclock", "id")


def metric_latest(version: Version) -> QuerySet[Metric]:
    """The latest value of each metric key of `version` (highest step, then newest wallclock).

    One query whatever the number of keys or logged values: each row is kept only if it is
    the newest of its key, decided by a correlated subquery that the (version, key, step)
    index serves.
    """
    newest = (
        Metric.objects.filter(version_id=OuterRef("version_id"), key=OuterRef("key"))
        .order_by(F("step").desc(nulls_last=True), "-wallclock", "-id")
        .values("id")[:1]
    )
    return Metric.objects.filter(version=version, id=Subquery(newest)).order_by("key")


def alias_list(model: Model) -> QuerySet[Alias]:
    return Alias.objects.filter(model=model).select_related("version", "updated_by").order_by("name")


def alias_get(model: Model, name: str, *, light: bool = False) -> Alias:
    """Alias `name` of a visible `model`. `light` (the API): on PostgreSQL, one hand-written
    query that reads the version's number and the updater's name, not their rows."""
    if light and sql.enabled():
        alias = sql.alias_get(model, name)
    else:
        alias = alias_list(model).filter(name=name).first()
    if alias is None:
        raise NotFound(f"Model '{model.name}' has no alias '{name}'.")
    return alias


def alias_history(model: Model, name: str | None = None) -> QuerySet[AliasMove]:
    moves = AliasMove.objects.filter(model=model).select_related("actor")
    if name is not None:
        moves = moves.filter(alias_name=name)
    return moves.order_by("-created_at", "-id")


def alias_history_rows(model: Model, name: str, *, limit: int) -> list[dict]:
    """The newest `limit` moves of one alias as plain rows (from_number, to_number, actor_name,
    created_at): what the API shows, without building model instances."""
    if sql.enabled():
        return sql.alias_history_rows(model, name, limit=limit)
    return list(
        alias_history(model, name).select_related(None)
        .values("from_number", "to_number", "created_at", actor_name=F("actor__username"))[:limit]
    )


def record_list(context: Context, *, search: str = "") -> QuerySet[TrainingRecord]:
    records = TrainingRecord.objects.filter(context=context).select_related("context", "created_by").annotate(
        version_count=Count("versions", distinct=True)
    )
    if search:
        records = records.filter(Q(name__icontains=search) | Q(uri__icontains=search))
    return records.order_by("name", "id")


def record_get(user, record_id) -> TrainingRecord:
    record_uuid = _uuid(record_id, "Training record")
    record = (
        TrainingRecord.objects.select_related("context", "created_by")
        .filter(id=record_uuid, context__in=contexts_for(user, Perm.VIEW_MODEL))
        .first()
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
    try:
        trusted_id = int(trusted_id)
    except (TypeError, ValueError):
        raise NotFound("Trusted import not found.") from None
    row = trusted_import_list(context).filter(pk=trusted_id).first()
    if row is None:
        raise NotFound("This import is not trusted here (any more).")
    return row


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


def token_list(user) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(user=user).order_by("-created_at")


def token_get(user, token_id) -> ApiToken:
    """One of `user`'s own API tokens; anybody else's token is simply not found (404)."""
    try:
        token_id = int(token_id)
    except (TypeError, ValueError):
        raise NotFound("Token not found.") from None
    token = token_list(user).filter(pk=token_id).first()
    if token is None:
        raise NotFound("Token not found.")
    return token
