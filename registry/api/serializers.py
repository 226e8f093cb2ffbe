"""Shapes of the API's requests and responses. Validation of rules lives in the services."""

from __future__ import annotations

import functools

from django.urls import get_script_prefix, reverse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from registry.introspection.report import REVIEW
from registry.models import FormatKind, Role


def _username(user) -> str | None:
    return user.username if user is not None else None


@extend_schema_field(OpenApiTypes.STR)
class UsernameField(serializers.Field):
    def to_representation(self, user):
        return _username(user)


def user_field():
    return UsernameField(read_only=True)


@extend_schema_field({"type": "array", "items": {"type": "string"}})
class TagListField(serializers.Field):
    """Tags as a sorted list of names (from prefetched tags)."""

    def to_representation(self, manager):
        return [tag.name for tag in manager.all()]

    def to_internal_value(self, data):  # validated by the services
        return data


# --- contexts ---------------------------------------------------------------------------

class ContextSerializer(serializers.Serializer):
    slug = serializers.CharField(read_only=True)
    name = serializers.CharField(read_only=True)
    description = serializers.CharField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    role = serializers.SerializerMethodField()

    def get_role(self, context) -> str | None:
        return self.context.get("roles", {}).get(context.pk)


class ContextCreateSerializer(serializers.Serializer):
    slug = serializers.CharField(max_length=50)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    description = serializers.CharField(required=False, allow_blank=True, default="")


class MemberSerializer(serializers.Serializer):
    kind = serializers.CharField(source="principal_kind", read_only=True)
    name = serializers.CharField(source="principal_name", read_only=True)
    role = serializers.CharField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)


class MemberCreateSerializer(serializers.Serializer):
    username = serializers.CharField(required=False)
    group = serializers.CharField(required=False)
    role = serializers.ChoiceField(choices=Role.choices)


class MemberUpdateSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


# --- models -----------------------------------------------------------------------------

class ModelSerializer(serializers.Serializer):
    id = serializers.UUIDField(read_only=True)
    context = serializers.CharField(source="context.slug", read_only=True)
    name = serializers.CharField()
    description = serializers.CharField(required=False, allow_blank=True)
    tags = TagListField(required=False)
    task = serializers.CharField(required=False, allow_blank=True)
    owner = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    metadata = serializers.JSONField(required=False)
    version_numbers = serializers.SerializerMethodField()
    latest_version = serializers.SerializerMethodField()
    aliases = serializers.SerializerMethodField()
    created_by = user_field()
    created_at = serializers.DateTimeField(read_only=True)
    updated_by = user_field()
    updated_at = serializers.DateTimeField(read_only=True)
    url = serializers.SerializerMethodField()

    def to_representation(self, m):
        # Hand-written for speed (DRF's field-by-field path costs ~0.15 ms per model); the
        # declared fields above remain the schema. Relations come from
        # selectors.load_model_relations() when it ran, else from the database.
        tags = getattr(m, "tag_names", None)
        if tags is None:
            tags = [t.name for t in m.tags.all()]
        numbers = getattr(m, "version_numbers", None)
        if numbers is None:
            numbers = [v.number for v in m.versions.all()]
        aliases = getattr(m, "alias_map", None)
        if aliases is None:
            aliases = {a.name: a.version.number for a in m.aliases.all()}
        return {
            "id": str(m.pk),
            "context": m.context.slug,
            "name": m.name,
            "description": m.description,
            "tags": tags,
            "task": m.task,
            "owner": _name_of(m, "owner"),
            "metadata": m.metadata,
            "version_numbers": numbers,
            "latest_version": numbers[-1] if numbers else None,
            "aliases": aliases,
            "created_by": _name_of(m, "created_by"),
            "created_at": _timestamp(m.created_at),
            "updated_by": _name_of(m, "updated_by"),
            "updated_at": _timestamp(m.updated_at),
            "url": _model_url(m.pk),
        }

    def get_version_numbers(self, model) -> list[int]:  # schema only
        return []

    def get_latest_version(self, model) -> int | None:  # schema only
        return None

    def get_aliases(self, model) -> dict[str, int]:  # schema only
        return {}

    def get_url(self, model) -> str:  # schema only
        return ""


def _timestamp(value) -> str | None:
    """A datetime as DRF's DateTimeField renders it (ISO 8601 in the current time zone, 'Z' for
    UTC), without the settings and field lookups it repeats on every call."""
    if value is None:
        return None
    text = value.astimezone(timezone.get_current_timezone()).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


_MISSING = object()
_ID_PLACEHOLDER = "00000000-0000-0000-0000-000000000000"


def _name_of(obj, field: str) -> str | None:
    name = getattr(obj, f"{field}_name", _MISSING)  # annotated by the selectors
    if name is _MISSING:
        return _username(getattr(obj, field))
    return name


def _model_url(model_id) -> str:
    return _model_url_template(get_script_prefix()).replace(_ID_PLACEHOLDER, str(model_id))


@functools.lru_cache(maxsize=8)
def _model_url_template(script_prefix: str) -> str:
    # reverse() costs ~0.05-0.1 ms; the pattern is fixed, so reverse once per script prefix.
    return reverse("api:model-detail", kwargs={"model_id": _ID_PLACEHOLDER})


class ModelCreateSerializer(serializers.Serializer):
    name = serializers.CharField(trim_whitespace=False)
    description = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    tags = serializers.JSONField(required=False, help_text="A list of tags, or a comma-separated string.")
    task = serializers.CharField(required=False, allow_blank=True)
    owner = serializers.CharField(required=False, allow_null=True, allow_blank=True, help_text="A username.")
    metadata = serializers.JSONField(required=False)


# --- versions ---------------------------------------------------------------------------

class RecordRefSerializer(serializers.Serializer):
    id = serializers.UUIDField(read_only=True)
    name = serializers.CharField(read_only=True)
    uri = serializers.CharField(read_only=True)


class FormatSummarySerializer(serializers.Serializer):
    kind = serializers.CharField(read_only=True)
    status = serializers.CharField(read_only=True)
    size = serializers.IntegerField(read_only=True, allow_null=True)
    sha256 = serializers.CharField(read_only=True)


class VersionSerializer(serializers.Serializer):
    id = serializers.UUIDField(read_only=True)
    model = serializers.UUIDField(source="model_id", read_only=True)
    number = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)
    description = serializers.CharField(read_only=True)
    tags = TagListField(read_only=True)
    hyperparameters = serializers.JSONField(read_only=True)
    config = serializers.JSONField(read_only=True)
    framework = serializers.CharField(read_only=True)
    framework_version = serializers.CharField(read_only=True)
    model_type = serializers.CharField(read_only=True)
    records = RecordRefSerializer(many=True, read_only=True)
    metadata = serializers.JSONField(read_only=True)
    signature = serializers.JSONField(read_only=True)
    status = serializers.CharField(read_only=True)
    formats = FormatSummarySerializer(many=True, read_only=True)
    aliases = serializers.SerializerMethodField()
    published_by = user_field()
    published_at = serializers.DateTimeField(read_only=True)
    created_by = user_field()
    created_at = serializers.DateTimeField(read_only=True)
    updated_by = user_field()
    updated_at = serializers.DateTimeField(read_only=True)
    url = serializers.SerializerMethodField()

    def to_representation(self, v):
        # Hand-written for speed, like ModelSerializer; the declared fields remain the schema.
        # Relations come from attributes a service set (a new version: no formats, no aliases)
        # or from the prefetches of selectors.version_list().
        tags = getattr(v, "tag_names", None)
        if tags is None:
            tags = [tag.name for tag in v.tags.all()]
        records = getattr(v, "record_rows", None)
        if records is None:
            records = v.records.all()
        formats = getattr(v, "format_rows", None)
        if formats is None:
            formats = v.formats.all()
        aliases = getattr(v, "alias_names", None)
        if aliases is None:
            aliases = [alias.name for alias in v.aliases.all()]
        return {
            "id": str(v.pk),
            "model": str(v.model_id),
            "number": v.number,
            "name": v.name,
            "description": v.description,
            "tags": tags,
            "hyperparameters": v.hyperparameters,
            "config": v.config,
            "framework": v.framework,
            "framework_version": v.framework_version,
            "model_type": v.model_type,
            "records": [{"id": str(r.pk), "name": r.name, "uri": r.uri} for r in records],
            "metadata": v.metadata,
            "signature": v.signature,
            "status": v.status,
            "formats": [{"kind": f.kind, "status": f.status, "size": f.size, "sha256": f.sha256} for f in formats],
            "aliases": aliases,
            "published_by": _name_of(v, "published_by"),
            "published_at": _timestamp(v.published_at),
            "created_by": _name_of(v, "created_by"),
            "created_at": _timestamp(v.created_at),
            "updated_by": _name_of(v, "updated_by"),
            "updated_at": _timestamp(v.updated_at),
            "url": _version_url(v.model_id, v.number),
        }

    def get_aliases(self, version) -> list[str]:  # schema only
        return []

    def get_url(self, version) -> str:  # schema only
        return ""


_NUMBER_PLACEHOLDER = 987654321


def _version_url(model_id, number) -> str:
    template = _version_url_template(get_script_prefix())
    # The number first: the all-zero model placeholder cannot contain it.
    return template.replace(f"/{_NUMBER_PLACEHOLDER}/", f"/{number}/").replace(_ID_PLACEHOLDER, str(model_id))


@functools.lru_cache(maxsize=8)
def _version_url_template(script_prefix: str) -> str:
    return reverse("api:version-detail", kwargs={"model_id": _ID_PLACEHOLDER, "number": _NUMBER_PLACEHOLDER})


class VersionWriteSerializer(serializers.Serializer):
    name = serializers.CharField(required=False, allow_blank=True)
    description = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    tags = serializers.JSONField(required=False)
    hyperparameters = serializers.JSONField(required=False)
    config = serializers.JSONField(required=False)
    framework = serializers.CharField(required=False, allow_blank=True)
    framework_version = serializers.CharField(required=False, allow_blank=True)
    records = serializers.ListField(child=serializers.CharField(), required=False, help_text="Training record IDs.")
    metadata = serializers.JSONField(required=False)
    signature = serializers.JSONField(required=False)


# --- formats ----------------------------------------------------------------------------

UNVETTED_IMPORTS_SCHEMA = {
    "type": "array",
    "description": "While the report says review: the third-party imports a publisher must approve "
                   "(`called`: the file calls it with arguments, else it only references it).",
    "items": {
        "type": "object",
        "properties": {
            "import": {"type": "string", "description": "module.qualname"},
            "module": {"type": "string"},
            "name": {"type": "string"},
            "called": {"type": "boolean"},
        },
        "required": ["import", "module", "name", "called"],
    },
}


class FormatSerializer(serializers.Serializer):
    id = serializers.UUIDField(read_only=True)
    kind = serializers.CharField(read_only=True)
    status = serializers.CharField(read_only=True)
    status_message = serializers.CharField(read_only=True)
    original_filename = serializers.CharField(read_only=True)
    size = serializers.IntegerField(read_only=True, allow_null=True)
    content_type = serializers.CharField(read_only=True)
    md5 = serializers.CharField(read_only=True)
    sha256 = serializers.CharField(read_only=True)
    declared_md5 = serializers.CharField(read_only=True)
    declared_sha256 = serializers.CharField(read_only=True)
    report = serializers.JSONField(read_only=True)
    required = serializers.BooleanField(read_only=True, help_text="Listed under required_files of the manifest")
    fail_on_tamper = serializers.BooleanField(read_only=True)
    uploaded_by = user_field()
    uploaded_at = serializers.DateTimeField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    unvetted_imports = serializers.SerializerMethodField()
    file_url = serializers.SerializerMethodField()

    @extend_schema_field(UNVETTED_IMPORTS_SCHEMA)
    def get_unvetted_imports(self, fmt) -> list:
        # From the stored report, which keeps saying "review" after the imports were trusted.
        report = fmt.report if isinstance(fmt.report, dict) else {}
        details = report.get("details") if isinstance(report.get("details"), dict) else {}
        items = details.get("unvetted") if report.get("status") == REVIEW else None
        return [{"import": str(item.get("import", "")), "module": str(item.get("module", "")),
                 "name": str(item.get("name", "")), "called": bool(item.get("called"))}
                for item in items or [] if isinstance(item, dict)]

    def get_file_url(self, fmt) -> str:
        return reverse(
            "api:format-file",
            kwargs={"model_id": fmt.version.model_id, "number": fmt.version.number, "kind": fmt.kind},
        )


class FormatCreateSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=FormatKind.choices)
    required = serializers.BooleanField(
        default=True, help_text="A required file is fetched when a consumer loads the manifest; optional ones lazily")
    fail_on_tamper = serializers.BooleanField(
        default=True, help_text="A checksum mismatch is an error for the consumer (else a warning)")


class FormatUpdateSerializer(serializers.Serializer):
    required = serializers.BooleanField(required=False)
    fail_on_tamper = serializers.BooleanField(required=False)


class ApproveImportsSerializer(serializers.Serializer):
    reason = serializers.CharField(allow_blank=True, trim_whitespace=False,
                                   help_text="Why these imports can be trusted; kept with them and in the audit log")


# --- trusted imports --------------------------------------------------------------------

class TrustedImportSerializer(serializers.Serializer):
    name = serializers.CharField(read_only=True, help_text="module.qualname, as the pickle scanner reports it")
    reason = serializers.CharField(read_only=True)
    created_by = user_field()
    created_at = serializers.DateTimeField(read_only=True)


class TrustedImportCreateSerializer(serializers.Serializer):
    imports = serializers.ListField(child=serializers.CharField(trim_whitespace=False),
                                    help_text="Dotted Python paths, e.g. mylibrary.models.Scorer")
    reason = serializers.CharField(allow_blank=True, trim_whitespace=False,
                                   help_text="Why these imports can be trusted; kept with them and in the audit log")


# --- manifests --------------------------------------------------------------------------

class ManifestFileSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="The format kind")
    source_uri = serializers.CharField(help_text="registry://<context>/<model-id>/versions/<n>/formats/<kind>")
    fail_on_tamper = serializers.BooleanField()
    filename = serializers.CharField()
    size = serializers.IntegerField(allow_null=True)
    md5_checksum = serializers.CharField(required=False, help_text="Frozen manifests only")
    sha256_checksum = serializers.CharField(required=False, help_text="Frozen manifests only")


class ManifestSerializer(serializers.Serializer):
    context = serializers.CharField()
    model_id = serializers.UUIDField()
    model_name = serializers.CharField()
    version = serializers.IntegerField()
    required_files = ManifestFileSerializer(many=True)
    optional_files = ManifestFileSerializer(many=True)
    timestamp = serializers.CharField(required=False, help_text="Frozen manifests only (ISO 8601, UTC)")
    lock_checksum = serializers.CharField(
        required=False,
        help_text="Frozen manifests only: MD5 of the canonical JSON (sorted keys, no spaces, UTF-8) of the rest",
    )


class TamperReportSerializer(serializers.Serializer):
    file = serializers.CharField(required=False, allow_blank=True, default="",
                                 help_text="The format kind, or empty for the manifest itself")
    reason = serializers.ChoiceField(choices=["checksum_mismatch", "lock_mismatch", "missing_file"])
    expected = serializers.CharField(required=False, allow_blank=True, default="")
    actual = serializers.CharField(required=False, allow_blank=True, default="")
    detail = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)
    fail_on_tamper = serializers.BooleanField(default=True)


# --- metrics ----------------------------------------------------------------------------

class MetricSerializer(serializers.Serializer):
    key = serializers.CharField()
    value = serializers.JSONField(help_text="A number or a string.")
    step = serializers.IntegerField(required=False, allow_null=True)
    wallclock = serializers.DateTimeField(required=False)


# --- aliases ----------------------------------------------------------------------------

class AliasMoveSerializer(serializers.Serializer):
    from_version = serializers.IntegerField(source="from_number", read_only=True, allow_null=True)
    to_version = serializers.IntegerField(source="to_number", read_only=True, allow_null=True)
    actor = user_field()
    at = serializers.DateTimeField(source="created_at", read_only=True)

    def to_representation(self, move):
        # Hand-written for speed: an alias's detail carries up to 100 moves. `move` is a row of
        # selectors.alias_history_rows() or an AliasMove.
        if not isinstance(move, dict):
            move = {"from_number": move.from_number, "to_number": move.to_number,
                    "actor_name": _username(move.actor), "created_at": move.created_at}
        return {"from_version": move["from_number"], "to_version": move["to_number"], "actor": move["actor_name"],
                "at": _timestamp(move["created_at"])}


class AliasSerializer(serializers.Serializer):
    name = serializers.CharField(read_only=True)
    version = serializers.IntegerField(source="version.number", read_only=True)
    updated_by = user_field()
    updated_at = serializers.DateTimeField(read_only=True)

    def to_representation(self, alias):
        # Hand-written for speed; the version's number and the updater's name come from
        # selectors.alias_get(light=True) when it read them, else from the related rows.
        number = getattr(alias, "version_number", None)
        return {
            "name": alias.name,
            "version": alias.version.number if number is None else number,
            "updated_by": _name_of(alias, "updated_by"),
            "updated_at": _timestamp(alias.updated_at),
        }


class AliasDetailSerializer(AliasSerializer):
    history = serializers.SerializerMethodField()

    @extend_schema_field(AliasMoveSerializer(many=True))
    def get_history(self, alias):
        return AliasMoveSerializer(self.context.get("history", []), many=True).data

    def to_representation(self, alias):
        return {**super().to_representation(alias), "history": self.get_history(alias)}


class AliasSetSerializer(serializers.Serializer):
    version = serializers.IntegerField(min_value=1)


# --- lineage ----------------------------------------------------------------------------

class RecordSerializer(serializers.Serializer):
    id = serializers.UUIDField(read_only=True)
    context = serializers.CharField(source="context.slug", read_only=True)
    name = serializers.CharField()
    uri = serializers.CharField()
    checksum = serializers.CharField(required=False, allow_blank=True)
    description = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    created_by = user_field()
    created_at = serializers.DateTimeField(read_only=True)
    version_count = serializers.IntegerField(read_only=True, required=False)


class RecordVersionSerializer(serializers.Serializer):
    model_id = serializers.UUIDField(read_only=True)
    model_name = serializers.CharField(source="model.name", read_only=True)
    number = serializers.IntegerField(read_only=True)
    status = serializers.CharField(read_only=True)


class RecordDetailSerializer(RecordSerializer):
    versions = serializers.SerializerMethodField()

    @extend_schema_field(RecordVersionSerializer(many=True))
    def get_versions(self, record):
        return RecordVersionSerializer(self.context.get("versions", []), many=True).data


class RecordUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(required=False)
    uri = serializers.CharField(required=False)
    checksum = serializers.CharField(required=False, allow_blank=True)
    description = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)


# --- audit ------------------------------------------------------------------------------

class AuditEventSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    at = serializers.DateTimeField(source="created_at", read_only=True)
    actor = serializers.CharField(source="actor_name", read_only=True)
    action = serializers.CharField(read_only=True)
    object_type = serializers.CharField(read_only=True)
    object_id = serializers.CharField(read_only=True)
    object = serializers.CharField(source="object_repr", read_only=True)
    summary = serializers.CharField(read_only=True)
    changes = serializers.JSONField(read_only=True)
