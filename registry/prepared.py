"""Statements compiled once per process, then run with each request's values.

The hottest reads (a token with its user's grants, a model as it is shown, a page of a
context's models) are one ORM queryset each, with joins and JSON subqueries
(registry/expressions.py). Compiling such a queryset to SQL costs more CPU than the database
spends running it. A `CompiledQuery` wraps a function `build(**shape, **values)` returning the
queryset:

- `shape` holds what changes the statement itself: a flag, an ordering, a direction. Each
  distinct shape is a statement of its own, compiled the first time it is asked for.
- `values` holds what only fills the statement: ids, names, a search term, the values of a
  cursor, the LIMIT. A value may also be None (part of the shape: the build leaves that
  filter out) or a list (its length is part of the shape).

For each shape `build` is called once with stand-ins in place of the values (unusual values of
the same types), the queryset is compiled, and each stand-in is looked for among the SQL's
parameters. From then on the SQL runs with the request's values in those places. A stand-in may
reach its parameter:
- unchanged (or wrapped by the driver's type, psycopg's Int4);
- as the database backend writes its type (a UUID as hex on SQLite, a datetime as text);
- escaped for LIKE and wrapped in %: `field__contains=value` (the backend's
  prep_for_like_query, as the ORM's lookups call it);
- as the bounds of a slice, `[:limit]` or `[offset:offset + limit]`, which the ORM writes into
  the SQL text: the compiled statement ends in `LIMIT %s` (`OFFSET %s`) instead.
A value the build changes before the ORM sees it (upper-cased, stripped, cut) is not found: it
is refused with TypeError when compiling, never run with the request's value unchanged. The
string stand-ins hold mixed case, an underscore (which LIKE escaping changes) and \\x1f
separators (which strip() removes, and which no constant of a statement holds), so each of
those changes is caught. The build must therefore receive its values in their final form.
Where the ORM itself would write another statement for some values, the caller keeps to the
values it compiles alike: an integer beyond its column's range (which the ORM leaves out of the
statement) is refused by a driver-typed parameter (ValueError) and by keyset.decode() before.
At most `shapes_kept` statements are kept per CompiledQuery (the least recently used goes).

The rows become objects as the ORM makes them: the same compiler (its select, converters,
select_related) and Django's ModelIterable. `queryset()` returns the plain queryset of the
same build with the request's values: tests/registry/test_prepared.py checks that both read the
same rows, for every shape of the lists that use this.
"""

from __future__ import annotations

import copy
import datetime
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable

from django.core.exceptions import EmptyResultSet
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import QuerySet
from django.db.models.query import ModelIterable
from django.db.models.signals import post_save, pre_save
from django.db.models.sql import InsertQuery

_STAND_IN_BASE = 0x5EED_0000_0000
_STAND_IN_TIME = datetime.datetime(1903, 4, 5, 6, 7, 8, tzinfo=datetime.UTC)


def _stand_in(value, number: int):
    """A value of `value`'s type that no request sends."""
    if isinstance(value, uuid.UUID):
        return uuid.UUID(int=(_STAND_IN_BASE << 64) + number)
    if isinstance(value, bool):
        raise TypeError("a flag changes the statement's shape: pass it in shape=")
    if isinstance(value, int):  # within a 32-bit column's range: Django drops a lookup beyond it
        return 2_000_000_000 - number
    if isinstance(value, str):
        return f"\x1fStand_In-{number}\x1f"
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            raise TypeError("a naive datetime has no stand-in: pass an aware one")
        return _STAND_IN_TIME + datetime.timedelta(microseconds=number)
    raise TypeError(f"no stand-in for a {type(value).__name__}")


def _same(param, stand_in, connection) -> Callable | None:
    """How `param` (a compiled parameter) was made from `stand_in`, as a function making the
    request's parameter from its value; None if it was not made from it."""
    if isinstance(param, type(stand_in)) and param == stand_in:
        kind = type(param)  # psycopg's Int2/Int4/Int8 wrap integers of a typed column or Value
        return (lambda value: value) if kind is type(stand_in) else _wrapped(kind)
    if isinstance(stand_in, uuid.UUID):
        if param == stand_in.hex:
            return lambda value: value.hex
        if param == str(stand_in):
            return str
    if isinstance(stand_in, datetime.datetime):
        adapt = connection.ops.adapt_datetimefield_value
        if param == adapt(stand_in):
            return adapt
    if isinstance(stand_in, str) and isinstance(param, str):
        escape = connection.ops.prep_for_like_query
        before, found, after = param.partition(escape(stand_in))
        if found and not (before + after).strip("%"):  # `contains`, `startswith`, `endswith`
            return lambda value: before + escape(value) + after
        if any(form.casefold() in param.casefold() for form in (stand_in, escape(stand_in))):
            raise TypeError(f"the value standing as {stand_in!r} reached a parameter as {param!r}, "
                            "a form that cannot be swapped: give the build the value in its final form")
    return None


_WRAPPED_BITS = {"Int2": 16, "Int4": 32, "Int8": 64}


def _wrapped(kind: type) -> Callable:
    """The request's integer in the driver's type of the compiled parameter, refused beyond that
    type's range (where the ORM would have left the comparison out of the statement)."""
    bits = _WRAPPED_BITS.get(kind.__name__, 64)

    def make(value):
        if not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
            raise ValueError(f"{value} is beyond the range of the statement's {kind.__name__} parameter")
        return kind(value)
    return make


class _Kept:
    """Compiled statements by key, at most `size` of them (the least recently used goes), shared
    by the threads and greenlets of the process."""

    def __init__(self, size: int):
        self.size = size  # a bound on memory, whatever shapes requests ask for
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key, compile: Callable):
        # A statement already kept is found without the lock (each of these steps is one
        # operation on the dictionary, whole under the GIL): under gevent's patching the lock is
        # gevent's, whose acquire and release cost more than the lookup. The lock keeps two
        # compilations of one shape from racing and the size bound.
        found = self._items.get(key)
        if found is not None:
            try:
                self._items.move_to_end(key)
            except KeyError:  # the least recently used, dropped meanwhile: it stays dropped
                pass
            return found
        with self._lock:
            found = self._items.get(key)
            if found is None:
                found = self._items[key] = compile()
                if len(self._items) > self.size:
                    self._items.popitem(last=False)
            return found


class _Compiled:
    def __init__(self, queryset: QuerySet, compiler, sql: str | None, slots: list):
        # sql None: the shape matches nothing (an empty `__in` list), whatever the values.
        self.queryset, self.compiler, self.sql, self.slots = queryset, compiler, sql, slots
        self._converters = None

    def converters(self, expressions) -> dict:
        """The compiler's get_converters(): the statement's columns are always the same, so their
        converters are too (functions of the fields and the backend, given the running
        connection when they convert)."""
        if self._converters is None:
            self._converters = type(self.compiler).get_converters(self.compiler, expressions)
        return self._converters


class CompiledQuery:
    """`run(shape=..., **values)`: the objects of `build(**shape, **values)`, as a list, from a
    statement compiled once per database and shape (see the module's docstring).
    `queryset(shape=..., **values)`: the same build as a plain queryset."""

    def __init__(self, build: Callable[..., QuerySet], *, shapes_kept: int = 256):
        self.build = build
        self._compiled = _Kept(shapes_kept)

    def queryset(self, shape: dict | None = None, **values) -> QuerySet:
        return self.build(**(shape or {}), **values)

    @staticmethod
    def _key(using: str, shape: dict, values: dict) -> tuple:
        def form(value):  # (a list of 1 and None must differ: not `len(value) or value is None`)
            return ("list", len(value)) if isinstance(value, (list, tuple)) else "none" if value is None else "one"

        return (using, connections[using].vendor, tuple(sorted(shape.items())),
                tuple(sorted((name, form(value)) for name, value in values.items())))

    def _compile(self, using: str, shape: dict, values: dict) -> _Compiled:
        connection = connections[using]
        stand_ins, number = {}, 0
        flat = []  # (name, index or None, stand-in)
        for name, value in values.items():
            if value is None:
                stand_ins[name] = None
            elif isinstance(value, (list, tuple)):
                stand_ins[name] = []
                for index, item in enumerate(value):
                    number += 1
                    stand_ins[name].append(_stand_in(item, number))
                    flat.append((name, index, stand_ins[name][-1]))
            else:
                number += 1
                stand_ins[name] = _stand_in(value, number)
                flat.append((name, None, stand_ins[name]))
        queryset = self.build(**shape, **stand_ins).using(using)
        compiler = queryset.query.get_compiler(using=using)
        try:
            sql, params = compiler.as_sql()
        except EmptyResultSet:
            return _Compiled(queryset, compiler, None, [])
        slots, found = [], set()
        for param in params:
            for name, index, stand_in in flat:
                make = _same(param, stand_in, connection)
                if make is not None:
                    slots.append((name, index, make))
                    found.add((name, index))
                    break
            else:
                slots.append((None, None, param))  # a constant of the statement
        # The ORM writes a slice's LIMIT (and OFFSET) into the SQL: they become its last parameters.
        unfound = {stand_in: (name, index) for name, index, stand_in in flat
                   if (name, index) not in found and isinstance(stand_in, int)}
        query = queryset.query
        if query.high_mark is not None:
            low, count = query.low_mark, query.high_mark - query.low_mark
            tail = f" LIMIT {count}" + (f" OFFSET {low}" if low else "")
            if count in unfound and (not low or low in unfound) and sql.endswith(tail):
                sql = sql.removesuffix(tail) + " LIMIT %s" + (" OFFSET %s" if low else "")
                for stand_in in (count, low) if low else (count,):
                    slots.append((*unfound[stand_in], int))
                    found.add(unfound[stand_in])
        missing = [(name, index) for name, index, _ in flat if (name, index) not in found]
        if missing:  # a value the ORM wrote into the SQL itself: it cannot be swapped
            raise TypeError(f"{missing} did not become parameters of the statement")
        return _Compiled(queryset, compiler, sql, slots)

    def _compiled_for(self, using: str, shape: dict, values: dict) -> _Compiled:
        return self._compiled.get(self._key(using, shape, values), lambda: self._compile(using, shape, values))

    def run(self, using: str = DEFAULT_DB_ALIAS, shape: dict | None = None, **values) -> list:
        compiled = self._compiled_for(using, shape or {}, values)
        if compiled.sql is None:
            return []
        params = []
        for name, index, make in compiled.slots:
            if name is None:
                params.append(make)  # the constant itself
            else:
                value = values[name] if index is None else values[name][index]
                params.append(make(value))
        # A copy of the compiler on this request's connection, answering with the compiled SQL
        # and with the converters of its columns found once (the ORM looks them up per statement).
        compiler = copy.copy(compiled.compiler)
        compiler.connection = connections[using]
        compiler.as_sql = lambda *args, **kwargs: (compiled.sql, tuple(params))
        compiler.get_converters = compiled.converters
        query = copy.copy(compiled.queryset.query)  # (copying a QuerySet would run it)
        query.get_compiler = lambda *args, **kwargs: compiler
        queryset = type(compiled.queryset)(model=compiled.queryset.model, query=query, using=using)
        return list(ModelIterable(queryset))


class CompiledRows:
    """The rows of a CompiledQuery whose build takes `offset` and `limit` (None and None: every
    row; else the slice `[offset:offset + limit]`), as the sequence Django's Paginator pages
    through: a slice runs the compiled statement, `count()` calls the `count` function given,
    iterating reads every row. `each(row)`, if given, completes each row read (sets a parent
    known without reading it)."""

    ordered = True  # (the Paginator warns about an unordered list)

    def __init__(self, compiled: CompiledQuery, count: Callable[[], int], *, each: Callable | None = None, **values):
        self.compiled, self._count, self.each, self.values = compiled, count, each, values

    def _read(self, **bounds) -> list:
        rows = self.compiled.run(**bounds, **self.values)
        if self.each is not None:
            for row in rows:
                self.each(row)
        return rows

    def __getitem__(self, item: slice) -> list:
        if not isinstance(item, slice) or item.step is not None or (item.start or 0) < 0 or (
                item.stop is not None and item.stop < (item.start or 0)):
            raise TypeError("CompiledRows reads slices [start:stop] of non-negative bounds only")
        if item.stop is None:
            return list(self)[item.start or 0:]
        return self._read(offset=item.start or 0, limit=item.stop - (item.start or 0))

    def __iter__(self):
        return iter(self._read(offset=None, limit=None))

    def count(self) -> int:
        return self._count()

    def __len__(self) -> int:
        return self.count()


class CompiledInsert:
    """`insert(*objs)`: save() of new `model` rows, by an INSERT compiled once per database and
    number of rows.

    Model.save(), QuerySet.create() and bulk_create() compile their INSERT every time: the
    compiler lists the fields, quotes each column and builds the statement, which costs more CPU
    than the database spends on a small row. Every write of the API inserts at least one row
    (the audit event). The statement depends only on the model, the database, whether the
    primary keys are given and the number of rows; the values are prepared as save() prepares
    them (each field's pre_save(), as auto_now and defaults need, then get_db_prep_save()), and
    the columns the database returns (an automatic primary key, generated columns) are set on
    the objects through their converters. The pre_save and post_save signals are sent as save()
    sends them. A field writing its own placeholder, or a value that is an expression (F(), a
    database default), is refused with TypeError: the ORM would write another statement for it.
    At most `shapes_kept` statements are kept (the least recently used goes).
    """

    def __init__(self, model, *, shapes_kept: int = 128):
        self.model = model
        self._compiled = _Kept(shapes_kept)

    def _compile(self, using: str, pk_set: bool, objs: tuple) -> tuple:
        meta = self.model._meta
        connection = connections[using]
        returning = meta.db_returning_fields
        if not (connection.features.can_return_columns_from_insert
                and (len(objs) == 1 or connection.features.can_return_rows_from_bulk_insert)):
            raise TypeError(f"{connection.vendor} returns no rows from this INSERT")
        fields = [field for field in meta.local_concrete_fields
                  if not field.generated and (pk_set or field is not meta.auto_field)]
        custom = [field.name for field in fields if getattr(field, "get_placeholder", None) is not None]
        if custom:
            raise TypeError(f"{custom} write their own placeholders: their INSERT cannot be compiled")
        query = InsertQuery(self.model)
        query.insert_values(fields, objs, raw=True)  # raw: the values are not prepared, only counted
        compiler = query.get_compiler(using=using)
        compiler.returning_fields = returning
        [(sql, params)] = compiler.as_sql()
        returning_params = tuple(getattr(compiler, "returning_params", ()))
        values = len(params) - len(returning_params)
        # Rows of parameters, or (PostgreSQL, several rows: UNNEST) one array per column.
        by_column = len(objs) > 1 and values == len(fields)
        if values != len(fields) * (1 if by_column else len(objs)):
            raise TypeError(f"the INSERT of {meta.label} has {len(params)} parameters for "
                            f"{len(objs)} rows of {len(fields)} fields")
        converters = compiler.get_converters([field.get_col(meta.db_table) for field in returning])
        return sql, fields, by_column, returning, returning_params, converters

    def _compiled_for(self, using: str, pk_set: bool, objs: tuple) -> tuple:
        key = (using, connections[using].vendor, pk_set, len(objs))
        return self._compiled.get(key, lambda: self._compile(using, pk_set, objs))

    def insert(self, *objs, using: str = DEFAULT_DB_ALIAS) -> list:
        if not objs:
            return []
        if any(type(obj) is not self.model or not obj._state.adding for obj in objs):
            raise TypeError(f"insert() takes new {self.model.__name__} objects")
        meta = self.model._meta
        connection = connections[using]
        for obj in objs:
            obj._prepare_related_fields_for_save(operation_name="save")
            pre_save.send(sender=self.model, instance=obj, raw=False, using=using, update_fields=None)
            if not obj._is_pk_set(meta):
                setattr(obj, meta.pk.attname, meta.pk.get_pk_value_on_save(obj))
            expressions = [field.name for field in meta.local_concrete_fields if not field.generated
                           and hasattr(obj.__dict__.get(field.attname), "resolve_expression")]
            if expressions:
                raise TypeError(f"{meta.label}.{expressions} hold expressions: their INSERT cannot be compiled")
        pk_set = {obj._is_pk_set(meta) for obj in objs}
        if len(pk_set) > 1:
            raise TypeError("insert() takes rows that all give their primary key, or none")
        sql, fields, by_column, returning, returning_params, converters = self._compiled_for(
            using, pk_set.pop(), objs)
        rows = []
        for obj in objs:
            row = []
            for field in fields:
                value = field.pre_save(obj, add=True)
                if hasattr(value, "resolve_expression"):
                    raise TypeError(f"{meta.label}.{field.name} is an expression: its INSERT cannot be compiled")
                row.append(field.get_db_prep_save(value, connection=connection))
            rows.append(row)
        params = [list(column) for column in zip(*rows)] if by_column else [value for row in rows for value in row]
        params += returning_params
        # (As save(): a failed INSERT inside atomic() marks the transaction for rollback.)
        with transaction.mark_for_rollback_on_error(using), connection.cursor() as cursor:
            cursor.execute(sql, params)
            if not returning:
                rows = []
            elif len(objs) == 1:
                rows = [connection.ops.fetch_returned_insert_columns(cursor, returning_params)]
            else:
                rows = connection.ops.fetch_returned_insert_rows(cursor)
        for obj, row in zip(objs, rows):
            row = list(row)
            for position, (functions, expression) in converters.items():
                for convert in functions:
                    row[position] = convert(row[position], expression, connection)
            for value, field in zip(row, returning):
                setattr(obj, field.attname, value)
        for obj in objs:
            obj._state.adding, obj._state.db = False, using
            post_save.send(sender=self.model, instance=obj, created=True, update_fields=None, raw=False, using=using)
        return list(objs)
