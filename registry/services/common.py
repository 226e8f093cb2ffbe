"""Helpers shared by the services: row locks, validation of common fields, tags and the audit log."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, models, transaction

from registry import jsoninput, signatures
from registry.errors import InvalidInput, NotFound
from registry.models import AuditEvent, Context, Tag
from registry.names import clean_label
from registry.prepared import CompiledInsert, CompiledQuery

TAG_MAX_LENGTH = 32
SIGNATURE_DTYPES = {
    "float16", "float32", "float64", "bfloat16", "int8", "int16", "int32", "int64",
    "uint8", "uint16", "uint32", "uint64", "string", "bool", "bytes", "datetime", "object",
    "complex64", "complex128",
}
SIGNATURE_PROFILES = {"numerical", "text", "image"}


def lock_for_update(rows: type[models.Model] | models.QuerySet) -> models.QuerySet:
    """`rows` (a model's or a queryset's), read with a lock held until the transaction ends:
    SELECT ... FOR NO KEY UPDATE OF their own table only. Only those rows: joined rows
    (select_related) stay unlocked, so a write on one model or version does not stall the
    rest of its context (tests/registry/test_lock_scope.py). NO KEY: inserts that reference a
    locked row (a version of a locked model, an audit event) do not wait for it."""
    queryset = rows._default_manager.all() if isinstance(rows, type) else rows
    return queryset.select_for_update(of=("self",), no_key=True)


def lock_one(rows: type[models.Model] | models.QuerySet, **lookup) -> models.Model:
    """The row of `rows` matching `lookup`, read again with lock_for_update()'s lock. A row that
    a concurrent request deleted since the caller read it is NotFound (404), as it would have
    been had the caller come a moment later."""
    queryset = lock_for_update(rows)
    try:
        return queryset.get(**lookup)
    except queryset.model.DoesNotExist:
        raise NotFound(f"{queryset.model._meta.verbose_name.capitalize()} not found.") from None


def normalize_name(value: Any, *, field: str = "name", max_length: int = 200) -> tuple[str, str]:
    """Return (display name, uniqueness key): cleaned by registry.names.clean_label (no invisible
    characters, NFKC, one space between words, trimmed); the key also case-folded. Names that
    only look alike are told apart by registry.names.lookalike_key."""
    if not isinstance(value, str):
        raise InvalidInput("A name must be a string.", field=field)
    check_storable(value, field=field, what="A name")
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        raise InvalidInput("A name cannot contain control characters.", field=field)
    name = clean_label(value)
    if not name:
        raise InvalidInput("A name cannot be empty (or only invisible characters).", field=field)
    if len(name) > max_length:
        raise InvalidInput(f"A name can have at most {max_length} characters.", field=field)
    return name, unicodedata.normalize("NFKC", name.casefold())


def clean_tags(value: Any, *, field: str = "tags") -> list[str]:
    """Validate tags given as a list or a comma-separated string, cleaned as names are
    (registry.names.clean_label); duplicates collapse, and at most REGISTRY_MAX_TAGS remain."""
    if value is None:
        return []
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, (list, tuple)):
        raise InvalidInput("Tags must be a list of strings.", field=field)
    tags: list[str] = []
    seen: set[str] = set()
    for raw in value:
        if not isinstance(raw, str):
            raise InvalidInput("Tags must be a list of strings.", field=field)
        if any(unicodedata.category(ch) == "Cc" for ch in raw):
            raise InvalidInput(f"Tag {raw[:40]!r} contains a control character.", field=field)
        check_storable(raw, field=field, what="A tag")
        tag = clean_label(raw)
        if not tag:  # "a, ,b" or a trailing comma in a form: nothing to keep
            continue
        if len(tag) > TAG_MAX_LENGTH:
            raise InvalidInput(
                f"Tag '{tag[:40]}' is too long: tags have 1 to {TAG_MAX_LENGTH} characters.", field=field
            )
        key = tag.casefold()
        if key not in seen:
            if len(tags) >= settings.REGISTRY_MAX_TAGS:
                raise InvalidInput(
                    f"A model or a version can have at most {settings.REGISTRY_MAX_TAGS} tags "
                    f"(REGISTRY_MAX_TAGS).", field=field,
                )
            seen.add(key)
            tags.append(tag)
    return tags


def set_tags(obj: models.Model, tags: list[str], *, new: bool = False) -> list[Tag]:
    """Point `obj.tags` at exactly `tags`, creating Tag rows as needed (race-safe).

    `new`: `obj` was just created and has no tags, so they are only added, by one statement
    that links the tags already known and answers their names (_link_tags); only tags never
    used before take more. Returns the Tag rows, ordered by key."""
    keys = {tag.casefold(): tag for tag in tags}
    if not keys:
        if not new:
            obj.tags.clear()
        return []
    if new:
        rows = _link_tags(obj, sorted(keys))
    else:
        rows = _TAGS.run(keys=sorted(keys))
    missing = keys.keys() - {row.key for row in rows}
    if missing:
        # Created, ignoring a concurrent insert of the same key, then linked (or read) as above.
        Tag.objects.bulk_create([Tag(name=keys[key], key=key) for key in missing], ignore_conflicts=True)
        rows += _link_tags(obj, sorted(missing)) if new else Tag.objects.filter(key__in=missing)
    rows.sort(key=lambda row: row.key)
    if not new:
        obj.tags.set(rows)
    return rows


# Every model and version updated with tags reads them: compiled once per process and number of tags.
_TAGS = CompiledQuery(lambda keys: Tag.objects.filter(key__in=keys).order_by())
# ... and every one created with tags links them: one statement per tags table, database and
# number of tags (at most REGISTRY_MAX_TAGS), built once.
_LINK_TAGS: dict[tuple, str] = {}


def _link_tags(obj: models.Model, keys: list[str]) -> list[Tag]:
    """Link new `obj` to the existing tags of these keys and return those tags, in one statement:
    INSERT INTO <obj's tags table> SELECT ... FROM the tags ... RETURNING each linked tag's id,
    name and key (a subquery per row). The ORM writes no INSERT ... SELECT: this raw statement is
    the only way links of a new model or version are written (SQLite and PostgreSQL both run it).
    A key with no tag links nothing, and is not returned."""
    through = obj.tags.through
    connection = connections[obj._state.db or DEFAULT_DB_ALIAS]
    owner = through._meta.get_field(obj.tags.source_field_name)
    key = (through, connection.alias, connection.vendor, len(keys))
    if key not in _LINK_TAGS:
        quote = connection.ops.quote_name
        links, tags = quote(through._meta.db_table), quote(Tag._meta.db_table)
        tag_column = quote(through._meta.get_field(obj.tags.target_field_name).column)
        tag = f"{links}.{tag_column}"
        tag_id, tag_key = quote(Tag._meta.pk.column), quote(Tag._meta.get_field("key").column)
        # Every column of the tag, in the model's order (as Tag.from_db() takes them): the link's
        # own tag id for the key, a subquery for the others.
        returned = ", ".join(
            tag if field.primary_key else f"(SELECT {quote(field.column)} FROM {tags} WHERE {tag_id} = {tag})"
            for field in Tag._meta.concrete_fields)
        _LINK_TAGS[key] = (
            f"INSERT INTO {links} ({quote(owner.column)}, {tag_column}) "
            f"SELECT %s, {tag_id} FROM {tags} WHERE {tag_key} IN ({', '.join(['%s'] * len(keys))}) "
            f"RETURNING {returned}"
        )
    # (As save(): a failed INSERT inside atomic() marks the transaction for rollback.)
    with transaction.mark_for_rollback_on_error(connection.alias), connection.cursor() as cursor:
        cursor.execute(_LINK_TAGS[key], [owner.get_db_prep_save(obj.pk, connection=connection), *keys])
        return [Tag.from_db(connection.alias, None, row) for row in cursor.fetchall()]


def tag_names(obj) -> list[str]:
    return sorted((tag.name for tag in obj.tags.all()), key=str.casefold)


def clean_json_object(value: Any, *, field: str) -> dict:
    """A JSON object the database can store: no NUL or unpaired surrogate in a key or a string,
    nested at most REGISTRY_MAX_JSON_DEPTH levels."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"'{field}' must be a JSON object.", field=field)
    found = jsoninput.unstorable(value, max_depth=settings.REGISTRY_MAX_JSON_DEPTH)
    if found:
        where, problem = found
        where = f"{field}{'' if not where or where.startswith('[') else '.'}{where}"
        raise InvalidInput(f"'{where}' {problem}.", field=field)
    return value


def check_storable(value: str, *, field: str, what: str | None = None) -> str:
    """Refuse text with a NUL or an unpaired surrogate (no database stores them)."""
    problem = jsoninput.bad_character(value)
    if problem:
        raise InvalidInput(f"{what or repr(field)} contains {problem}, which cannot be stored.", field=field)
    return value


def clean_text(value: Any, *, field: str, max_length: int | None = None, allow_blank: bool = True) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidInput(f"'{field}' must be a string.", field=field)
    check_storable(value, field=field)
    value = value.replace("\r\n", "\n")  # browsers send form text with CRLF line ends
    value = value.strip() if max_length else value
    if not allow_blank and not value.strip():
        raise InvalidInput(f"'{field}' cannot be empty.", field=field)
    if max_length is not None and len(value) > max_length:
        raise InvalidInput(f"'{field}' can have at most {max_length} characters.", field=field)
    return value


def clean_signature(value: Any, *, field: str = "signature") -> dict:
    """A signature: {"inputs": [...], "outputs": [...]} of {name, dtype, shape, profile?} (the
    signature named `predict`), and/or {"signatures": {name: {"inputs", "outputs"}}} (named ones);
    stored in the canonical form of registry.signatures."""
    value = clean_json_object(value, field=field)
    if not value:
        return {}
    unknown = set(value) - {"inputs", "outputs", "signatures"}
    if unknown:
        raise InvalidInput(f"A signature has only 'inputs' and 'outputs' (the '{signatures.DEFAULT_NAME}' "
                           f"signature) and 'signatures' (named ones), not {sorted(unknown)}.", field=field)
    named: dict[str, dict] = {}
    if "inputs" in value or "outputs" in value:
        named[signatures.DEFAULT_NAME] = _clean_one_signature(value, field=field, label="signature")
    others = value.get("signatures", {})
    if not isinstance(others, dict):
        raise InvalidInput("'signatures' must be an object of named signatures, e.g. "
                           '{"tokenize": {"inputs": [...], "outputs": [...]}}.', field=field)
    if len(named) + len(others) > signatures.MAX_SIGNATURES:
        raise InvalidInput(f"A contract holds at most {signatures.MAX_SIGNATURES} signatures.", field=field)
    for name, item in others.items():
        if not signatures.NAME.match(name):
            raise InvalidInput(f"Signature name {name!r} is not valid: 1-64 letters, digits, '_', '.' or '-', "
                               "starting with a letter or '_'.", field=field)
        if name in named:
            raise InvalidInput(f"Signature '{name}' is given twice: top-level inputs/outputs are the "
                               f"'{signatures.DEFAULT_NAME}' signature.", field=field)
        if not isinstance(item, dict):
            raise InvalidInput(f"Signature '{name}' must be an object with inputs and outputs.", field=field)
        extra = set(item) - {"inputs", "outputs"}
        if extra:
            raise InvalidInput(f"Signature '{name}' has only 'inputs' and 'outputs', not {sorted(extra)}.",
                               field=field)
        named[name] = _clean_one_signature(item, field=field, label=f"signature '{name}'")
    return signatures.canonical(named)


def _clean_one_signature(value: dict, *, field: str, label: str) -> dict[str, list]:
    cleaned: dict[str, list] = {}
    for part in ("inputs", "outputs"):
        fields = value.get(part, [])
        if not isinstance(fields, list):
            raise InvalidInput(f"{label.capitalize()} {part} must be a list.", field=field)
        out = []
        for index, item in enumerate(fields):
            where = f"{label} {part}[{index}]"
            if not isinstance(item, dict):
                raise InvalidInput(f"{where} must be an object.", field=field)
            name = item.get("name")
            if not isinstance(name, str) or not name.strip():
                raise InvalidInput(f"{where} needs a name.", field=field)
            dtype = item.get("dtype")
            if dtype not in SIGNATURE_DTYPES:
                raise InvalidInput(
                    f"{where} has dtype {dtype!r}; use one of {', '.join(sorted(SIGNATURE_DTYPES))}.", field=field
                )
            shape = item.get("shape", [])
            if not isinstance(shape, list) or not all(
                isinstance(d, int) and not isinstance(d, bool) and d >= -1 for d in shape
            ):
                raise InvalidInput(f"{where} shape must be a list of integers (-1 = any).", field=field)
            entry = {"name": name.strip(), "dtype": dtype, "shape": shape}
            profile = item.get("profile")
            if profile is not None:
                if profile not in SIGNATURE_PROFILES:
                    raise InvalidInput(
                        f"{where} profile must be one of {', '.join(sorted(SIGNATURE_PROFILES))}.", field=field
                    )
                entry["profile"] = profile
            out.append(entry)
        cleaned[part] = out
    return cleaned


def actor_name(actor) -> str:
    if actor is None:
        return "operator"
    return actor.get_username() or "anonymous"


def audit(
    *,
    actor,
    context: Context | None,
    action: str,
    obj: models.Model | None = None,
    object_type: str = "",
    object_id: str = "",
    object_repr: str = "",
    summary: str,
    changes: dict | None = None,
) -> AuditEvent:
    """Write one audit event; services call this inside their transaction."""
    if obj is not None:
        object_type = object_type or obj._meta.model_name
        object_id = object_id or str(obj.pk)
        object_repr = object_repr or str(obj)
    [event] = _AUDIT_INSERT.insert(AuditEvent(
        context=context,
        actor=actor if actor is not None and actor.is_authenticated else None,
        actor_name=actor_name(actor),
        action=action,
        object_type=object_type,
        object_id=object_id,
        object_repr=object_repr[:300],
        summary=summary[:500],
        changes=changes or {},
    ))
    return event


# Every write inserts an audit event: its INSERT is compiled once per process.
_AUDIT_INSERT = CompiledInsert(AuditEvent)


def apply_changes(instance: models.Model, values: dict[str, Any]) -> dict[str, list]:
    """Set fields whose value differs; return {field: [old, new]} for the audit log."""
    changes: dict[str, list] = {}
    for field, new in values.items():
        old = getattr(instance, field)
        if old != new:
            setattr(instance, field, new)
            changes[field] = [_jsonable(old), _jsonable(new)]
    return changes


def _jsonable(value):
    if isinstance(value, (str, int, float, bool, type(None), dict, list)):
        return value
    return str(value)


def describe_changes(changes: Iterable[str]) -> str:
    return ", ".join(sorted(changes)) or "nothing"
