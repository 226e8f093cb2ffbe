"""Statements compiled once per process, then run with each request's values.

The hottest reads (a token with its user's grants, a model as it is shown) are one ORM
queryset each, with joins and JSON subqueries (registry/expressions.py). Compiling such a
queryset to SQL costs more CPU than the database spends running it. A `CompiledQuery` builds
its queryset once per database and per shape of its values (a list's length) with stand-in
values, compiles it, notes where each stand-in landed among the SQL's parameters, and from
then on runs that SQL with the request's values in their place. The rows become objects as
the ORM makes them: the same compiler (its select, converters, select_related) and Django's
ModelIterable, so a compiled read and a plain one cannot differ (tests/registry/test_prepared.py).
"""

from __future__ import annotations

import copy
import threading
import uuid
from collections.abc import Callable

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import QuerySet
from django.db.models.query import ModelIterable

_STAND_IN_BASE = 0x5EED_0000_0000


def _stand_in(value, number: int):
    """A value of `value`'s type that no request sends."""
    if isinstance(value, uuid.UUID):
        return uuid.UUID(int=(_STAND_IN_BASE << 64) + number)
    if isinstance(value, bool):
        raise TypeError("a flag changes the statement's shape: build one CompiledQuery per value")
    if isinstance(value, int):  # within a 32-bit column's range: Django drops a lookup beyond it
        return 2_000_000_000 - number
    if isinstance(value, str):
        return f"\x1fstand-in-{number}\x1f"
    raise TypeError(f"no stand-in for a {type(value).__name__}")


def _same(param, stand_in) -> Callable | None:
    """How `param` (a compiled parameter) was made from `stand_in`, as a function making the
    request's parameter from its value; None if it was not."""
    if isinstance(param, type(stand_in)) and param == stand_in:
        kind = type(param)  # psycopg's Int4/Int8 wrap integers for server-side binding
        return (lambda value: value) if kind is type(stand_in) else kind
    if isinstance(stand_in, uuid.UUID):
        if param == stand_in.hex:
            return lambda value: value.hex
        if param == str(stand_in):
            return str
    return None


class _Compiled:
    def __init__(self, queryset: QuerySet, compiler, sql: str, slots: list):
        self.queryset, self.compiler, self.sql, self.slots = queryset, compiler, sql, slots


class CompiledQuery:
    """`build(**values)` returns the queryset; `run(**values)` its objects, as a list."""

    def __init__(self, build: Callable[..., QuerySet]):
        self.build = build
        self._compiled: dict[tuple, _Compiled] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _shape(values: dict) -> tuple:
        return tuple(sorted((name, len(value) if isinstance(value, (list, tuple)) else None)
                            for name, value in values.items()))

    def _compile(self, using: str, values: dict) -> _Compiled:
        stand_ins, number = {}, 0
        flat = []  # (name, index or None, stand-in)
        for name, value in values.items():
            if isinstance(value, (list, tuple)):
                stand_ins[name] = []
                for index, item in enumerate(value):
                    number += 1
                    stand_ins[name].append(_stand_in(item, number))
                    flat.append((name, index, stand_ins[name][-1]))
            else:
                number += 1
                stand_ins[name] = _stand_in(value, number)
                flat.append((name, None, stand_ins[name]))
        queryset = self.build(**stand_ins).using(using)
        compiler = queryset.query.get_compiler(using=using)
        sql, params = compiler.as_sql()
        slots, found = [], set()
        for param in params:
            for name, index, stand_in in flat:
                make = _same(param, stand_in)
                if make is not None:
                    slots.append((name, index, make))
                    found.add((name, index))
                    break
            else:
                slots.append((None, None, param))  # a constant of the statement
        missing = [(name, index) for name, index, _ in flat if (name, index) not in found]
        if missing:  # a value the ORM wrote into the SQL itself: it cannot be swapped
            raise TypeError(f"{missing} did not become parameters of the statement")
        return _Compiled(queryset, compiler, sql, slots)

    def run(self, using: str = DEFAULT_DB_ALIAS, **values) -> list:
        key = (using, connections[using].vendor, self._shape(values))
        compiled = self._compiled.get(key)
        if compiled is None:
            with self._lock:
                compiled = self._compiled.get(key) or self._compile(using, values)
                self._compiled[key] = compiled
        params = []
        for name, index, make in compiled.slots:
            if name is None:
                params.append(make)  # the constant itself
            else:
                value = values[name] if index is None else values[name][index]
                params.append(make(value))
        # A copy of the compiler on this request's connection, answering with the compiled SQL.
        compiler = copy.copy(compiled.compiler)
        compiler.connection = connections[using]
        compiler.as_sql = lambda *args, **kwargs: (compiled.sql, tuple(params))
        query = copy.copy(compiled.queryset.query)  # (copying a QuerySet would run it)
        query.get_compiler = lambda *args, **kwargs: compiler
        queryset = type(compiled.queryset)(model=compiled.queryset.model, query=query, using=using)
        return list(ModelIterable(queryset))
