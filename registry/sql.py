"""Hand-written SQL for the API's hottest reads, on PostgreSQL.

Building a query through the ORM costs more CPU than running it (0.2-0.5 ms a query, against
0.05 ms of PostgreSQL's time for a lookup by key). Reading a model, a version or an alias, and
listing or searching a context's models run on every API request a notebook makes, so they are
written here once as SQL, with the relations a page shows gathered by the same statement where
they can be. Each function answers exactly what its ORM counterpart in selectors.py answers
(tests/registry/test_sql_fast_paths.py compares them); the ORM path stays for other databases
and for browser sessions. (Token authentication has one path, on every database:
registry/api/authentication.py.)

Table and column names come from the models' _meta, so a renamed field cannot drift from here.
Rows become model instances with Model.from_db(), as the ORM would build them.
"""

from __future__ import annotations

from functools import cache

from django.contrib.auth import get_user_model
from django.db import connection

from registry.models import Alias, AliasMove, Context, Format, Model, Tag, TrainingRecord, Version
from registry.permissions import ALL_CONTEXTS


def enabled() -> bool:
    return connection.vendor == "postgresql"


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


def _table(model) -> str:
    return _q(model._meta.db_table)


def _col(model, field: str) -> str:
    return _q(model._meta.get_field(field).column)


@cache
def _fields(model) -> tuple:
    """The columns read into an instance: the concrete fields but those the database generates
    (search helpers, never shown), which are left deferred."""
    return tuple(f for f in model._meta.concrete_fields if not f.generated)


def _select(model, alias: str) -> str:
    return ", ".join(f"{alias}.{_q(f.column)}" for f in _fields(model))


@cache
def _loaders(model):
    """Per field read: the from_db_value converter (JSON text to Python) or None."""
    return [getattr(f, "from_db_value", None) for f in _fields(model)]


@cache
def _attnames(model) -> list[str] | None:
    fields = _fields(model)
    return None if len(fields) == len(model._meta.concrete_fields) else [f.attname for f in fields]


def _build(model, values):
    """An instance of `model` from its columns, as the ORM's iterator builds it."""
    values = list(values)
    for index, load in enumerate(_loaders(model)):
        if load is not None and values[index] is not None:
            values[index] = load(values[index], None, connection)
    return model.from_db(connection.alias, _attnames(model), values)


def _width(model) -> int:
    return len(_fields(model))


# --- contexts ---------------------------------------------------------------------------

def _one_in(sql: str, params: list, context_column: str, scope: list[int] | str):
    """The first row of `sql`, restricted to `context_column` in `scope` (a list of context ids,
    or permissions.ALL_CONTEXTS)."""
    if scope != ALL_CONTEXTS:
        sql += f" AND {context_column} = ANY(%s)"
        params = [*params, list(scope)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def context_get(slug: str, scope: list[int] | str) -> Context | None:
    """The context with this slug if it lies in `scope` (see _one_in)."""
    row = _one_in(f"SELECT {_select(Context, 'c')} FROM {_table(Context)} c WHERE c.{_col(Context, 'slug')} = %s",
                  [slug], f"c.{_q(Context._meta.pk.column)}", scope)
    return None if row is None else _build(Context, row)


# --- models -----------------------------------------------------------------------------

@cache
def _model_columns(with_context: bool = True, relations: bool = True) -> str:
    """The model, its context (unless the caller has it), three usernames, then (with
    `relations`) tag names, version numbers, alias names and alias version numbers (arrays in
    matching order), for a row aliased `m`."""
    user_model = get_user_model()
    user_pk, username = _q(user_model._meta.pk.column), _q(user_model.USERNAME_FIELD)
    names = ", ".join(
        f"(SELECT {username} FROM {_table(user_model)} WHERE {user_pk} = m.{_col(Model, field)})"
        for field in ("owner", "created_by", "updated_by")
    )
    through = Model.tags.through
    model_id = _q(Model._meta.pk.column)
    tags = (
        f"ARRAY(SELECT tg.{_col(Tag, 'name')} FROM {_table(through)} mt JOIN {_table(Tag)} tg "
        f"ON tg.{_q(Tag._meta.pk.column)} = mt.{_q(through._meta.get_field('tag').column)} "
        f"WHERE mt.{_q(through._meta.get_field('model').column)} = m.{model_id} ORDER BY tg.{_col(Tag, 'key')})"
    )
    numbers = (
        f"ARRAY(SELECT v.{_col(Version, 'number')} FROM {_table(Version)} v "
        f"WHERE v.{_col(Version, 'model')} = m.{model_id} ORDER BY v.{_col(Version, 'number')})"
    )
    alias_from = (
        f"FROM {_table(Alias)} a JOIN {_table(Version)} av ON av.{_q(Version._meta.pk.column)} = a.{_col(Alias, 'version')} "
        f"WHERE a.{_col(Alias, 'model')} = m.{model_id} ORDER BY a.{_col(Alias, 'name')}"
    )
    aliases = (
        f"ARRAY(SELECT a.{_col(Alias, 'name')} {alias_from}), "
        f"ARRAY(SELECT av.{_col(Version, 'number')} {alias_from})"
    )
    context = f"{_select(Context, 'c')}, " if with_context else ""
    arrays = f", {tags}, {numbers}, {aliases}" if relations else ""
    return f"{_select(Model, 'm')}, {context}{names}{arrays}"


def _model_from_row(row, context: Context | None = None) -> Model:
    split = _width(Model)
    model = _build(Model, row[:split])
    if context is None:
        model.context = _build(Context, row[split: split + _width(Context)])
        split += _width(Context)
    else:
        model.context = context
    model.owner_name, model.created_by_name, model.updated_by_name = row[split: split + 3]
    if len(row) > split + 3:
        model.tag_names, model.version_numbers, alias_names, alias_numbers = row[split + 3:]
        model.alias_map = dict(zip(alias_names, alias_numbers, strict=True))
    return model


def _context_join() -> str:
    return f"JOIN {_table(Context)} c ON c.{_q(Context._meta.pk.column)} = m.{_col(Model, 'context')}"


def model_get(model_id, scope: list[int] | str, *, relations: bool = True) -> Model | None:
    """The model with this id (a UUID) with its context, usernames and (`relations`) tags,
    versions and aliases, if it lies in `scope` (see _one_in)."""
    sql = (f"SELECT {_model_columns(True, relations)} FROM {_table(Model)} m {_context_join()} "
           f"WHERE m.{_q(Model._meta.pk.column)} = %s")
    row = _one_in(sql, [model_id], f"m.{_col(Model, 'context')}", scope)
    return None if row is None else _model_from_row(row)


class ModelSearch:
    """A context's models, filtered and ordered as selectors.model_list() does, that the
    paginator slices: each slice is one statement (page rows with their relations), count()
    another. Quacks like the QuerySet the paginator expects (count, slicing, ordered)."""

    ordered = True

    def __init__(self, *, context: Context, search: str = "", tag_keys: list[str] = (), name_key: str | None = None,
                 order_field: str = "name_key", descending: bool = False):
        model_id, context_column = _q(Model._meta.pk.column), _col(Model, "context")
        where, params = [f"m.{context_column} = %s"], [context.pk]
        self._context = context
        through = Model.tags.through
        tag_models = (
            f"SELECT mt.{_q(through._meta.get_field('model').column)} FROM {_table(through)} mt "
            f"JOIN {_table(Tag)} tg ON tg.{_q(Tag._meta.pk.column)} = mt.{_q(through._meta.get_field('tag').column)} "
            f"WHERE tg.{_col(Tag, 'key')} "
        )
        if search:
            term = search.strip()
            like = f"%{connection.ops.prep_for_like_query(term)}%"
            # As the ORM's icontains on PostgreSQL (UPPER ... LIKE UPPER), over the upper-cased
            # copies the database keeps, and the tag keys (case-folded) containing the
            # case-folded term; the tag subquery runs once.
            where.append(
                f"(m.{_col(Model, 'name_upper')} LIKE UPPER(%s) "
                f"OR m.{_col(Model, 'description_upper')} LIKE UPPER(%s) "
                f"OR m.{model_id} IN ({tag_models} LIKE %s))"
            )
            params += [like, like, f"%{connection.ops.prep_for_like_query(term.casefold())}%"]
        for key in tag_keys:
            where.append(f"m.{model_id} IN ({tag_models} = %s)")
            params.append(key)
        if name_key is not None:
            where.append(f"m.{_col(Model, 'name_key')} = %s")
            params.append(name_key)
        if order_field == "version_count":
            sort = (f"(SELECT COUNT(*) FROM {_table(Version)} v WHERE v.{_col(Version, 'model')} = m.{model_id})")
        else:
            sort = f"m.{_col(Model, order_field)}"
        direction = " DESC" if descending else ""
        self._where, self._params = " AND ".join(where), params
        self._order = f"{sort}{direction}, m.{_col(Model, 'name_key')}, m.{model_id}"
        self._count: int | None = None

    def count(self) -> int:
        if self._count is None:
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT COUNT(*) FROM {_table(Model)} m WHERE {self._where}", self._params)
                self._count = cursor.fetchone()[0]
        return self._count

    def __len__(self) -> int:
        return self.count()

    def __getitem__(self, index):
        if not isinstance(index, slice) or index.step not in (None, 1):
            raise TypeError("ModelSearch supports plain slices only.")
        start = index.start or 0
        limit = None if index.stop is None else max(index.stop - start, 0)
        if limit == 0:
            return []
        # The page is chosen first; the relation arrays are computed for its rows only.
        page = (f"SELECT {_select(Model, 'm')} FROM {_table(Model)} m WHERE {self._where} ORDER BY {self._order} "
                f"{'' if limit is None else 'LIMIT %s'} OFFSET %s")
        params = [*self._params, *([] if limit is None else [limit]), start]
        sql = f"WITH page AS MATERIALIZED ({page}) SELECT {_model_columns(False)} FROM page m ORDER BY {self._order}"
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return [_model_from_row(row, self._context) for row in cursor.fetchall()]


# --- versions ---------------------------------------------------------------------------

@cache
def _version_sql() -> tuple[str, dict[str, tuple]]:
    """The version row with three usernames, and one statement per relation that
    selectors.version_list() prefetches, in the same order."""
    user_model = get_user_model()
    user_pk, username = _q(user_model._meta.pk.column), _q(user_model.USERNAME_FIELD)
    names = ", ".join(
        f"(SELECT {username} FROM {_table(user_model)} WHERE {user_pk} = v.{_col(Version, field)})"
        for field in ("published_by", "created_by", "updated_by")
    )
    row = (f"SELECT {_select(Version, 'v')}, {names} FROM {_table(Version)} v "
           f"WHERE v.{_col(Version, 'model')} = %s AND v.{_col(Version, 'number')} = %s")

    def through(field: str, target, order: str) -> str:
        link = Version._meta.get_field(field).remote_field.through
        target_column = link._meta.get_field(target._meta.model_name).column
        return (f"SELECT {_select(target, 'x')} FROM {_table(link)} l JOIN {_table(target)} x "
                f"ON x.{_q(target._meta.pk.column)} = l.{_q(target_column)} "
                f"WHERE l.{_q(link._meta.get_field('version').column)} = %s ORDER BY x.{_col(target, order)}")

    def reverse(target, order: str) -> str:
        return (f"SELECT {_select(target, 'x')} FROM {_table(target)} x WHERE x.{_col(target, 'version')} = %s "
                f"ORDER BY x.{_col(target, order)}")

    relations = {  # accessor: (model, statement)
        "tags": (Tag, through("tags", Tag, "key")),
        "records": (TrainingRecord, through("records", TrainingRecord, "name")),
        "formats": (Format, reverse(Format, "kind")),
        "aliases": (Alias, reverse(Alias, "name")),
    }
    return row, relations


def version_get(model: Model, number: int) -> Version | None:
    """Version `number` of `model` (already checked visible) as selectors.version_get() returns
    it: usernames instead of User rows, its model set, and tags, records, formats and aliases
    prefetched (the related managers' .all() answer from memory)."""
    row_sql, relations = _version_sql()
    with connection.cursor() as cursor:
        cursor.execute(row_sql, [model.pk, number])
        row = cursor.fetchone()
        if row is None:
            return None
        split = _width(Version)
        version = _build(Version, row[:split])
        version.published_by_name, version.created_by_name, version.updated_by_name = row[split:]
        version.model = model
        version._prefetched_objects_cache = {}
        for name, (related_model, sql) in relations.items():
            cursor.execute(sql, [version.pk])
            rows = [_build(related_model, values) for values in cursor.fetchall()]
            related = getattr(version, name).get_queryset()  # the manager's own filter, unevaluated
            related._result_cache, related._prefetch_done = rows, True
            version._prefetched_objects_cache[name] = related
    return version


# --- aliases ----------------------------------------------------------------------------

def _username_of(alias: str, column: str) -> str:
    user_model = get_user_model()
    return (f"(SELECT {_q(user_model.USERNAME_FIELD)} FROM {_table(user_model)} "
            f"WHERE {_q(user_model._meta.pk.column)} = {alias}.{column})")


def alias_get(model: Model, name: str) -> Alias | None:
    """Alias `name` of `model` with .version_number and .updated_by_name set (no Version or
    User rows built)."""
    sql = (f"SELECT {_select(Alias, 'a')}, v.{_col(Version, 'number')}, {_username_of('a', _col(Alias, 'updated_by'))} "
           f"FROM {_table(Alias)} a JOIN {_table(Version)} v ON v.{_q(Version._meta.pk.column)} = a.{_col(Alias, 'version')} "
           f"WHERE a.{_col(Alias, 'model')} = %s AND a.{_col(Alias, 'name')} = %s")
    with connection.cursor() as cursor:
        cursor.execute(sql, [model.pk, name])
        row = cursor.fetchone()
    if row is None:
        return None
    alias = _build(Alias, row[:-2])
    alias.version_number, alias.updated_by_name = row[-2:]
    alias.model = model
    return alias


def alias_history_rows(model: Model, name: str, *, limit: int) -> list[dict]:
    """As selectors.alias_history_rows(): the newest moves first."""
    sql = (f"SELECT m.{_col(AliasMove, 'from_number')}, m.{_col(AliasMove, 'to_number')}, "
           f"m.{_col(AliasMove, 'created_at')}, {_username_of('m', _col(AliasMove, 'actor'))} "
           f"FROM {_table(AliasMove)} m WHERE m.{_col(AliasMove, 'model')} = %s AND m.{_col(AliasMove, 'alias_name')} = %s "
           f"ORDER BY m.{_col(AliasMove, 'created_at')} DESC, m.{_q(AliasMove._meta.pk.column)} DESC LIMIT %s")
    with connection.cursor() as cursor:
        cursor.execute(sql, [model.pk, name, limit])
        keys = ("from_number", "to_number", "created_at", "actor_name")
        return [dict(zip(keys, row, strict=True)) for row in cursor.fetchall()]
