"""Query expressions the selectors share."""

from __future__ import annotations

from django.db.models import BooleanField, CharField, F, Func, JSONField, QuerySet, Subquery


class JSONList(Subquery):
    """The rows of a correlated `queryset`, in its order, as one JSON array in the outer row.

    `JSONList(tags, "tag__name")` reads ["a", "b"]; with several fields each item is an object
    (`JSONList(aliases, name="name", version="version__number")` reads [{"name": ..., "version":
    ...}]). So a page and the relations it shows are one statement. It is the same statement on
    both databases the registry runs on, only spelled for each: ARRAY(subquery) made JSON on
    PostgreSQL (the array ArraySubquery builds, kept in the subquery's order), json_group_array()
    over the ordered subquery on SQLite. An empty relation is [] on both.

    Values keep their JSON types (text, numbers, null), but two differ between the databases:
    read a UUID through UUIDText (SQLite stores it without dashes), and a boolean is true/false
    on PostgreSQL but 1/0 on SQLite.
    """

    output_field = JSONField()

    def __init__(self, queryset, *field: str, **fields: str):
        if (len(field), len(fields)) == (1, 0):
            row, self.rows_are_json = F(field[0]), False
        elif not field and fields:
            row, self.rows_are_json = JSONRow(**fields), True
        else:
            raise TypeError("JSONList takes one field name, or named fields for objects.")
        super().__init__(queryset.values(json_row=row))

    def as_sql(self, compiler, connection, **extra_context):
        # SQLite: a value read from a subquery loses its JSON subtype, so objects are parsed again.
        item = "JSON(json_row)" if self.rows_are_json else "json_row"
        template = f"(SELECT JSON_GROUP_ARRAY({item}) FROM (%(subquery)s))"
        return super().as_sql(compiler, connection, template=template, **extra_context)

    def as_postgresql(self, compiler, connection, **extra_context):
        return super().as_sql(compiler, connection, template="TO_JSONB(ARRAY(%(subquery)s))", **extra_context)


class UUIDText(Func):
    """A UUID column as its canonical text (lowercase 8-4-4-4-12), for JSON read by JSONList:
    PostgreSQL casts it; SQLite keeps 32 hex digits, to which the dashes are added."""

    output_field = CharField()

    def as_sql(self, compiler, connection, **extra_context):  # SQLite
        sql, params = compiler.compile(self.source_expressions[0])
        parts = [f"SUBSTR({sql}, {start}, {length})" for start, length in ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12))]
        return " || '-' || ".join(parts), params * len(parts)

    def as_postgresql(self, compiler, connection, **extra_context):
        sql, params = compiler.compile(self.source_expressions[0])
        return f"({sql})::text", params


class JSONRow(Func):
    """A JSON object of named columns: JSONB_BUILD_OBJECT on PostgreSQL, JSON_OBJECT on SQLite.

    Not Django's JSONObject: it asks the server's version while it compiles, which opens a
    connection of its own when no query of the request has opened one yet (and each gevent
    request has its own connection object), and it casts every value."""

    output_field = JSONField()

    def __init__(self, **fields):
        if not all(key.isidentifier() for key in fields):  # the keys are written into the SQL
            raise ValueError("JSONRow keys are identifiers.")
        self.keys = list(fields)
        super().__init__(*fields.values())

    def _object(self, compiler, function: str):
        items, params = [], []
        for key, expression in zip(self.keys, self.get_source_expressions(), strict=True):
            sql, item_params = compiler.compile(expression)
            items.append(f"'{key}', {sql}")
            params.extend(item_params)
        return f"{function}({', '.join(items)})", params

    def as_sql(self, compiler, connection, **extra_context):  # SQLite
        return self._object(compiler, "JSON_OBJECT")

    def as_postgresql(self, compiler, connection, **extra_context):
        return self._object(compiler, "JSONB_BUILD_OBJECT")


class AmongIds(Func):
    """`AmongIds(field, queryset)`: `field` is one of the values `queryset` selects, a condition
    for filter() or Q(). On PostgreSQL `field = ANY(ARRAY(subquery))`: the subquery runs once and
    its ids are looked up in the field's index, also as one branch of an OR (the model search: a
    BitmapOr with the trigram indexes). There `IN (subquery)` is a filter tried on each row, and
    the planner walks the whole name index with it when the hits sort late (a tag that every
    "fraud-..." model carries). Elsewhere `IN (subquery)`."""

    output_field = BooleanField()
    conditional = True

    def __init__(self, field: str, queryset: QuerySet):
        super().__init__(F(field), Subquery(queryset))

    def as_sql(self, compiler, connection, **extra_context):
        return super().as_sql(compiler, connection, template="%(expressions)s", arg_joiner=" IN ", **extra_context)

    def as_postgresql(self, compiler, connection, **extra_context):
        return super().as_sql(compiler, connection, template="%(expressions)s)", arg_joiner=" = ANY(ARRAY",
                              **extra_context)
