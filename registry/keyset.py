"""Keyset (cursor) pagination of a list that grows without bound (a context's models, its audit
log, the metric points of a version): a page is the rows just past the last one shown, in the
list's order.

An OFFSET page reads and throws away every row before it, so page 2,000 costs 2,000 pages; a
keyset page is a range of the index that serves the order (`WHERE (name_key, id) > (last shown)
ORDER BY name_key, id LIMIT n`), so every page costs the same. And a row added or removed
meanwhile shifts no page: nothing is shown twice, nothing is skipped.

A cursor names the position (the ordering values of the row it starts after or before, and the
direction) as base64 JSON. It is not a secret and not trusted: a cursor that does not decode
into values of the list's ordering is `InvalidInput` (400), and a cursor only reaches rows the
queryset itself could return.

The queryset's ORDER BY must end in a unique column (the primary key is appended otherwise),
and a nullable column in it must say where its nulls go (`F(...).asc(nulls_last=True)`): the
comparison depends on it.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import uuid
from dataclasses import dataclass

from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db import connections
from django.db.models import F, Q, QuerySet
from django.db.models.expressions import OrderBy

from registry.errors import InvalidInput

NEXT, PREVIOUS = "n", "p"


@dataclass(frozen=True)
class Key:
    """One term of the ordering: a field or annotation, its direction, where its nulls go."""

    name: str
    descending: bool = False
    nullable: bool = False
    nulls_last: bool = False  # only read when nullable

    def reversed(self) -> "Key":
        return Key(self.name, not self.descending, self.nullable, not self.nulls_last)

    def order_by(self) -> OrderBy:
        nulls = {("nulls_last" if self.nulls_last else "nulls_first"): True} if self.nullable else {}
        return OrderBy(F(self.name), descending=self.descending, **nulls)

    def beyond(self, value) -> Q:
        """Rows that come after `value` in this key's order."""
        if value is None:  # nulls last: nothing comes after; nulls first: every value does
            return Q(pk__in=[]) if self.nulls_last else Q(**{f"{self.name}__isnull": False})
        after = Q(**{f"{self.name}__{'lt' if self.descending else 'gt'}": value})
        return after | Q(**{f"{self.name}__isnull": True}) if self.nullable and self.nulls_last else after

    def equal(self, value) -> Q:
        return Q(**{f"{self.name}__isnull": True}) if value is None else Q(**{self.name: value})

    def not_before(self, value) -> Q | None:
        """`value` or after, as one range condition an index can start from (None: no such)."""
        if value is None or self.nullable:
            return None
        return Q(**{f"{self.name}__{'lte' if self.descending else 'gte'}": value})


def ordering_keys(queryset: QuerySet) -> list[Key]:
    """The queryset's ORDER BY as keys (each name once), ending in the primary key."""
    model, keys, seen = queryset.model, [], set()
    pk_name = model._meta.pk.name
    for term in queryset.query.order_by:
        if isinstance(term, str):
            descending, name = term.startswith("-"), term.lstrip("-")
            nulls_last = None
        elif isinstance(term, OrderBy) and isinstance(term.expression, F):
            name, descending = term.expression.name, term.descending
            nulls_last = True if term.nulls_last else False if term.nulls_first else None
        else:
            raise TypeError(f"Keyset pagination orders by fields and annotations only, not {term!r}.")
        name = pk_name if name == "pk" else name
        if name in seen:
            continue
        seen.add(name)
        nullable = _nullable(queryset, name)
        if nullable and nulls_last is None:
            raise TypeError(f"Order by the nullable {name!r} with nulls_last or nulls_first for keyset pagination.")
        keys.append(Key(name, descending, nullable, bool(nulls_last)))
    if pk_name not in seen:
        keys.append(Key(pk_name))
    return keys


def _field(queryset: QuerySet, name: str):
    if name in queryset.query.annotations:
        return queryset.query.annotations[name].output_field
    try:
        return queryset.model._meta.get_field(name)
    except FieldDoesNotExist:
        raise TypeError(f"Keyset pagination cannot order by {name!r}: not a field of the model.") from None


def _in_range(queryset: QuerySet, field, value: int) -> bool:
    """Whether the column holds `value`: a cursor of a `next` link always does; the ORM would
    leave a comparison beyond the range out of the statement, a compiled one would send it."""
    low, high = connections[queryset.db].ops.integer_field_ranges.get(field.get_internal_type(),
                                                                     (-(2**63), 2**63 - 1))
    return low <= value <= high


def _nullable(queryset: QuerySet, name: str) -> bool:
    return name not in queryset.query.annotations and _field(queryset, name).null


# --- cursors ------------------------------------------------------------------------------

def _plain(value):
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def encode(keys: list[Key], row, direction: str) -> str:
    """The cursor of the position just after (NEXT) or just before (PREVIOUS) `row`."""
    values = [_plain(getattr(row, key.name)) for key in keys]
    text = json.dumps({"d": direction, "k": values, "o": _signature(keys)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _signature(keys: list[Key]) -> str:
    """The ordering a cursor was made for: one made for another (a changed ?ordering=) is refused."""
    return ",".join(("-" if key.descending else "") + key.name for key in keys)


def decode(cursor: str, keys: list[Key], queryset: QuerySet) -> tuple[str, list]:
    """(direction, values) of `cursor` for `keys`, each value valid for its field."""
    invalid = InvalidInput("Invalid cursor: use the `next` or `previous` link of a page of this list, "
                           "with the same filters and ordering.", field="cursor")
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(text)
        direction, values, signature = data["d"], data["k"], data["o"]
    except (binascii.Error, ValueError, TypeError, KeyError, UnicodeDecodeError):
        raise invalid from None
    if direction not in (NEXT, PREVIOUS) or signature != _signature(keys) or not isinstance(values, list) \
            or len(values) != len(keys):
        raise invalid
    typed = []
    for key, value in zip(keys, values, strict=True):
        if value is None:
            if not key.nullable:
                raise invalid
            typed.append(None)
            continue
        if isinstance(value, (dict, list, bool)) or not isinstance(value, (str, int, float)):
            raise invalid
        try:
            field = _field(queryset, key.name)
            value = field.to_python(value)
            field.get_prep_value(value)  # what the database would be sent: out of range, wrong type
        except (ValidationError, ValueError, TypeError, OverflowError):
            raise invalid from None
        if isinstance(value, int) and not _in_range(queryset, field, value):
            raise invalid
        if isinstance(value, datetime.datetime) and value.tzinfo is None:  # encode() writes the offset
            raise invalid
        typed.append(value)
    return direction, typed


# --- pages --------------------------------------------------------------------------------

@dataclass
class Page:
    rows: list
    next_cursor: str | None
    previous_cursor: str | None


def after(keys: list[Key], values: list) -> Q:
    """Rows past the position `values` in the order of `keys`: (k1 > v1) or (k1 = v1 and k2 > v2)
    or ..., with the first key's range repeated on its own so an index can start there."""
    condition, equal = Q(pk__in=[]), Q()
    for key, value in zip(keys, values, strict=True):
        condition |= equal & key.beyond(value)
        equal &= key.equal(value)
    start = keys[0].not_before(values[0])
    return condition if start is None else start & condition


def paginate(queryset: QuerySet, *, cursor: str | None, size: int) -> Page:
    """The page of `size` rows of `queryset` that `cursor` points to (the first without one),
    in one query, with the cursors of the pages next to it (None at either end)."""
    keys = ordering_keys(queryset)
    direction, values = position(cursor, keys, queryset)
    return page_of(keys, list(page_rows(queryset, keys, direction, values, size + 1)), direction, values, size)


def position(cursor: str | None, keys: list[Key], queryset: QuerySet) -> tuple[str, list | None]:
    """(direction, values) where the page of `cursor` starts: (NEXT, None) for the first page."""
    return (NEXT, None) if not cursor else decode(cursor, keys, queryset)


def page_rows(queryset: QuerySet, keys: list[Key], direction: str, values: list | None, limit) -> QuerySet:
    """The statement of a page: `limit` rows of `queryset` from the position (`direction`,
    `values`), in the order of the walk (reversed for PREVIOUS). Ask for one row more than the
    page shows: it says whether there is a page beyond."""
    walk = keys if direction == NEXT else [key.reversed() for key in keys]
    rows = queryset.order_by(*(key.order_by() for key in walk))
    if values is not None:
        rows = rows.filter(after(walk, values))
    return rows[:limit]


def page_of(keys: list[Key], rows: list, direction: str, values: list | None, size: int) -> Page:
    """The page (in the list's order, with its cursors) of the `rows` page_rows() read for it."""
    more = len(rows) > size
    rows = rows[:size]
    if direction == PREVIOUS:
        rows.reverse()
    if not rows:
        return Page(rows, None, None)
    further_back = more if direction == PREVIOUS else values is not None
    further_on = more if direction == NEXT else True
    return Page(
        rows,
        encode(keys, rows[-1], NEXT) if further_on else None,
        encode(keys, rows[0], PREVIOUS) if further_back else None,
    )
