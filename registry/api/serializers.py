"""Shapes of the API's requests and responses. Validation of rules lives in the services.

Each resource is rendered one way. Most are declared serializers fed the rows their selector
reads. Models, versions, aliases and alias moves, the hottest reads, are built by a serialize
function (`serialize_model`...) from the fixed shape their selector loads (see selectors.py);
their declared serializer (`ModelSerializer`...) is the schema only, for the OpenAPI document.
tests/registry/test_api_schema.py compares every endpoint's keys with that document.
"""

from __future__ import annotations

import functools
import json

from django.urls import get_script_prefix, reverse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from registry.introspection.report import REVIEW
from registry.models import FormatKind, MembershipSource, Role


def _username(user) -> str | None:
    return user.username if user is not None else None


@extend_schema_field(OpenApiTypes.STR)
class UsernameField(serializers.Field):
    def to_representation(self, user):
        return _username(user)


def user_field():
    return UsernameField(read_only=True)


class SchemaOnly(serializers.Serializer):
    """The schema of a response built by a serialize function (the OpenAPI document's only)."""

    def to_representation(self, instance):
        raise TypeError(f"{type(self).__name__} is a schema; the response is built by its serialize function.")


def _user(user_id, user) -> str | None:
    """The username of a user foreign key read as shown (a User row holding the username)."""
    return user.username if user_id is not None else None


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
    source = serializers.ChoiceField(choices=MembershipSource.choices, read_only=True,
                                     help_text="`manual`: granted by an admin; `sso`: by a single sign-on rule at sign-in")
    sso_rule = serializers.CharField(source="sso_rule.claim_value", read_only=True, allow_null=True, default=None,
                                     help_text="The claim value of the single sign-on rule that granted it")
    created_at = serializers.DateTimeField(read_only=True)


class MemberCreateSerializer(serializers.Serializer):
    username = serializers.CharField(required=False)
    group = serializers.CharField(required=False)
    role = serializers.ChoiceField(choices=Role.choices)


class MemberUpdateSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


# --- models -----------------------------------------------------------------------------

class ModelSerializer(SchemaOnly):
    id = serializers.UUIDField()
    context = serializers.CharField(help_text="The context's slug")
    name = serializers.CharField()
    description = serializers.CharField()
    tags = serializers.ListField(child=serializers.CharField())
    task = serializers.CharField()
    owner = serializers.CharField(allow_null=True, help_text="A username")
    metadata = serializers.JSONField()
    version_numbers = serializers.ListField(child=serializers.IntegerField(), help_text="Ascending")
    latest_version = serializers.IntegerField(allow_null=True)
    aliases = serializers.DictField(child=serializers.IntegerField(), help_text="{alias: version number}")
    created_by = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_by = serializers.CharField(allow_null=True)
    updated_at = serializers.DateTimeField()
    url = serializers.CharField()


def serialize_model(m) -> dict:
    """A model as selectors.model_detail() / model_list() read it (or services.model_create
    returns it): its columns, context, users and tag_names, version_numbers, alias_rows."""
    numbers = m.version_numbers
    return {
        "id": str(m.pk),
        "context": m.context.slug,
        "name": m.name,
        "description": m.description,
        "tags": m.tag_names,
        "task": m.task,
        "owner": _user(m.owner_id, m.owner),
        "metadata": m.metadata,
        "version_numbers": numbers,
        "latest_version": numbers[-1] if numbers else None,
        "aliases": {row["name"]: row["version"] for row in m.alias_rows},
        "created_by": _user(m.created_by_id, m.created_by),
        "created_at": _timestamp(m.created_at),
        "updated_by": _user(m.updated_by_id, m.updated_by),
        "updated_at": _timestamp(m.updated_at),
        "url": _model_url(m.pk),
    }


def _timestamp(value) -> str | None:
    """A datetime as DRF's DateTimeField renders it (ISO 8601 in the current time zone, 'Z' for
    UTC), without the settings and field lookups it repeats on every call."""
    if value is None:
        return None
    text = value.astimezone(timezone.get_current_timezone()).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


_ID_PLACEHOLDER = "00000000-0000-0000-0000-000000000000"


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

class RecordRefSerializer(SchemaOnly):
    id = serializers.UUIDField()
    name = serializers.CharField()
    uri = serializers.CharField()


class FormatSummarySerializer(SchemaOnly):
    kind = serializers.CharField()
    status = serializers.CharField()
    size = serializers.IntegerField(allow_null=True)
    sha256 = serializers.CharField()


class ExternalFileSerializer(SchemaOnly):
    name = serializers.CharField()
    source_uri = serializers.CharField(help_text="s3://, gs://, https:// or data://")
    sha256_checksum = serializers.CharField()
    md5_checksum = serializers.CharField(help_text="Empty when not given")
    size = serializers.IntegerField(allow_null=True)
    filename = serializers.CharField()
    required = serializers.BooleanField()
    fail_on_tamper = serializers.BooleanField()


class VersionSerializer(SchemaOnly):
    id = serializers.UUIDField()
    model = serializers.UUIDField(help_text="The model's id")
    number = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField()
    tags = serializers.ListField(child=serializers.CharField())
    hyperparameters = serializers.JSONField()
    config = serializers.JSONField()
    framework = serializers.CharField()
    framework_version = serializers.CharField()
    model_type = serializers.CharField()
    records = RecordRefSerializer(many=True)
    metadata = serializers.JSONField()
    signature = serializers.JSONField(help_text='{"inputs", "outputs"} (the "predict" signature) or '
                                                '{"signatures": {name: {"inputs", "outputs"}}}')
    external_files = ExternalFileSerializer(many=True)
    status = serializers.CharField()
    formats = FormatSummarySerializer(many=True)
    aliases = serializers.ListField(child=serializers.CharField())
    published_by = serializers.CharField(allow_null=True)
    published_at = serializers.DateTimeField(allow_null=True)
    created_by = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_by = serializers.CharField(allow_null=True)
    updated_at = serializers.DateTimeField()
    url = serializers.CharField()


def serialize_version(v) -> dict:
    """A version as selectors.version_detail() / version_list() read it (or
    services.version_create returns it): its columns, users and tag_names, record_rows,
    format_rows, alias_names."""
    return {
        "id": str(v.pk),
        "model": str(v.model_id),
        "number": v.number,
        "name": v.name,
        "description": v.description,
        "tags": v.tag_names,
        "hyperparameters": v.hyperparameters,
        "config": v.config,
        "framework": v.framework,
        "framework_version": v.framework_version,
        "model_type": v.model_type,
        "records": [{"id": r["id"], "name": r["name"], "uri": r["uri"]} for r in v.record_rows],
        "metadata": v.metadata,
        "signature": v.signature,
        "external_files": v.external_files,
        "status": v.status,
        "formats": [{"kind": f["kind"], "status": f["status"], "size": f["size"], "sha256": f["sha256"]}
                    for f in v.format_rows],
        "aliases": v.alias_names,
        "published_by": _user(v.published_by_id, v.published_by),
        "published_at": _timestamp(v.published_at),
        "created_by": _user(v.created_by_id, v.created_by),
        "created_at": _timestamp(v.created_at),
        "updated_by": _user(v.updated_by_id, v.updated_by),
        "updated_at": _timestamp(v.updated_at),
        "url": _version_url(v.model_id, v.number),
    }


def version_state(v) -> tuple:
    """What serialize_version() makes of a published version besides its frozen columns (the
    ETag and cache key of registry/api/conditional.py)."""
    return ("version", str(v.pk), v.updated_at, v.status, v.tag_names, v.record_rows, v.format_rows, v.alias_names,
            _user(v.published_by_id, v.published_by), _user(v.created_by_id, v.created_by),
            _user(v.updated_by_id, v.updated_by))


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
    external_files = serializers.JSONField(
        required=False, help_text="Files of the manifest the registry does not store: a list of {name, source_uri "
                                  "(s3://, gs://, https://, data://), sha256_checksum, md5_checksum?, size?, "
                                  "filename?, required?, fail_on_tamper?}; replaced whole")


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


class AttachmentSerializer(serializers.Serializer):
    """A file of the model itself (a model card, a report, a plot): served only as a download."""

    id = serializers.UUIDField(read_only=True)
    name = serializers.CharField(read_only=True, help_text="Unique in the model, case-insensitively")
    size = serializers.IntegerField(read_only=True)
    sha256 = serializers.CharField(read_only=True, help_text="Of the stored bytes; the download's ETag")
    content_type = serializers.CharField(
        read_only=True, help_text="What the download is served as: application/octet-stream unless the name's "
                                  "extension and first bytes agree on png, jpeg, pdf, csv, plain text, "
                                  "Markdown or JSON")
    description = serializers.CharField(read_only=True)
    uploaded_by = user_field()
    uploaded_at = serializers.DateTimeField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    file_url = serializers.SerializerMethodField()

    def get_file_url(self, attachment) -> str:
        return reverse("api:attachment-file", kwargs={"model_id": attachment.model_id, "name": attachment.name})


def format_state(fmt) -> tuple:
    """Everything FormatSerializer reads of a format (the ETag and cache key of the formats of a
    published version, registry/api/conditional.py)."""
    return ("format", str(fmt.pk), fmt.version.model_id, fmt.version.number, fmt.kind, fmt.status, fmt.status_message,
            fmt.original_filename, fmt.size, fmt.content_type, fmt.md5, fmt.sha256, fmt.declared_md5,
            fmt.declared_sha256, json.dumps(fmt.report, sort_keys=True), fmt.required, fmt.fail_on_tamper,
            _user(fmt.uploaded_by_id, fmt.uploaded_by), fmt.uploaded_at, fmt.created_at)


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


# --- single sign-on rules ----------------------------------------------------------------

class SsoRuleSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    claim_value = serializers.CharField(read_only=True, help_text="A value of the roles claim (e.g. a group name)")
    context = serializers.CharField(source="context.slug", read_only=True)
    role = serializers.CharField(read_only=True)
    holders = serializers.IntegerField(source="granted", read_only=True, default=0,
                                       help_text="How many users hold the role through this rule now")
    created_by = user_field()
    created_at = serializers.DateTimeField(read_only=True)


class SsoRuleCreateSerializer(serializers.Serializer):
    claim_value = serializers.CharField(trim_whitespace=False,
                                        help_text="A value of the roles claim, exactly as the provider sends it")
    context = serializers.CharField(help_text="The slug of a context you manage")
    role = serializers.ChoiceField(choices=Role.choices)


# --- manifests --------------------------------------------------------------------------

class ManifestFileSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="The format kind, or an external file's name")
    source_uri = serializers.CharField(help_text="registry://<context>/<model-id>/versions/<n>/formats/<kind>, or "
                                                 "an external file's s3://, gs://, https:// or data:// URI")
    fail_on_tamper = serializers.BooleanField()
    filename = serializers.CharField()
    size = serializers.IntegerField(allow_null=True)
    external = serializers.BooleanField(required=False, help_text="External files only (always true)")
    md5_checksum = serializers.CharField(required=False, help_text="Frozen manifests and external files")
    sha256_checksum = serializers.CharField(required=False, help_text="Frozen manifests and external files")


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


def manifest_state(version, formats, *, frozen: bool) -> tuple:
    """What manifests.build() makes a published version's manifest of (its ETag and cache key)."""
    files = tuple((f.kind, f.original_filename, f.size, f.md5, f.sha256, f.status, f.required, f.fail_on_tamper,
                   f.has_file) for f in formats)
    return ("manifest", frozen, str(version.pk), version.number, version.published_at, version.model.name,
            version.model.context.slug, files, json.dumps(version.external_files, sort_keys=True))


class TamperReportSerializer(serializers.Serializer):
    file = serializers.CharField(required=False, allow_blank=True, default="",
                                 help_text="The format kind or external file name, or empty for the manifest itself")
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


class MetricByVersionSerializer(serializers.Serializer):
    version = serializers.IntegerField(help_text="The version number")
    value = serializers.JSONField(help_text="The version's latest value of the metric (highest step, then newest)")
    step = serializers.IntegerField(allow_null=True)
    wallclock = serializers.DateTimeField()


class MetricAcrossVersionsSerializer(serializers.Serializer):
    key = serializers.CharField()
    versions = MetricByVersionSerializer(many=True)


# --- aliases ----------------------------------------------------------------------------

class AliasMoveSerializer(SchemaOnly):
    from_version = serializers.IntegerField(allow_null=True)
    to_version = serializers.IntegerField(allow_null=True, help_text="null: the alias was removed")
    actor = serializers.CharField(allow_null=True)
    at = serializers.DateTimeField()


def serialize_alias_move(move) -> dict:
    """A move as selectors.alias_history() reads it."""
    return {"from_version": move.from_number, "to_version": move.to_number, "actor": _user(move.actor_id, move.actor),
            "at": _timestamp(move.created_at)}


class AliasSerializer(SchemaOnly):
    name = serializers.CharField()
    version = serializers.IntegerField()
    updated_by = serializers.CharField(allow_null=True)
    updated_at = serializers.DateTimeField()


def serialize_alias(alias) -> dict:
    """An alias as selectors.alias_list() reads it (or the alias services return it)."""
    return {
        "name": alias.name,
        "version": alias.version.number,
        "updated_by": _user(alias.updated_by_id, alias.updated_by),
        "updated_at": _timestamp(alias.updated_at),
    }


class AliasDetailSerializer(AliasSerializer):
    history = AliasMoveSerializer(many=True, help_text="Newest first")


def serialize_alias_detail(alias, history) -> dict:
    return {**serialize_alias(alias), "history": [serialize_alias_move(move) for move in history]}


class AliasSetSerializer(serializers.Serializer):
    version = serializers.IntegerField(min_value=1)
    comment = serializers.CharField(required=False, allow_blank=True, default="", trim_whitespace=False,
                                    help_text="Why: kept with the move request if the alias is protected")


class SignatureChangeSerializer(SchemaOnly):
    part = serializers.CharField(help_text="inputs, outputs, or signature (the whole contract)")
    name = serializers.CharField()
    change = serializers.CharField(help_text="added, removed, dtype, shape or profile")
    breaking = serializers.BooleanField()
    message = serializers.CharField()


class SignatureCheckSerializer(SchemaOnly):
    compared = serializers.BooleanField(help_text="false: nothing to compare (a new alias, a removal, a deleted version)")
    breaking = serializers.BooleanField(help_text="true when a change breaks callers of the alias")
    changes = SignatureChangeSerializer(many=True)


class AliasRequestSerializer(SchemaOnly):
    id = serializers.IntegerField()
    context = serializers.CharField()
    model = serializers.UUIDField()
    model_name = serializers.CharField()
    alias = serializers.CharField()
    action = serializers.ChoiceField(choices=["set", "rollback", "delete"])
    from_version = serializers.IntegerField(allow_null=True, help_text="Where the alias pointed when asked (null: nowhere)")
    to_version = serializers.IntegerField(allow_null=True, help_text="null: a removal")
    status = serializers.ChoiceField(choices=["pending", "approved", "rejected", "withdrawn"])
    comment = serializers.CharField()
    requested_by = serializers.CharField(allow_null=True)
    requested_at = serializers.DateTimeField()
    decided_by = serializers.CharField(allow_null=True)
    decided_at = serializers.DateTimeField(allow_null=True)
    decision_comment = serializers.CharField()
    signature_check = SignatureCheckSerializer()


def serialize_alias_request(request, changes) -> dict:
    """A move request as selectors.alias_request_list() reads it, with its signature changes
    (selectors.alias_request_check)."""
    compared = request.from_number is not None and request.to_number is not None
    return {
        "id": request.pk, "context": request.model.context.slug, "model": str(request.model_id),
        "model_name": request.model.name, "alias": request.alias_name, "action": request.action,
        "from_version": request.from_number, "to_version": request.to_number, "status": request.status,
        "comment": request.comment, "requested_by": _user(request.requested_by_id, request.requested_by),
        "requested_at": _timestamp(request.requested_at),
        "decided_by": _user(request.decided_by_id, request.decided_by),
        "decided_at": _timestamp(request.decided_at), "decision_comment": request.decision_comment,
        "signature_check": {
            "compared": compared,
            "breaking": any(change.breaking for change in changes),
            "changes": [{"part": c.part, "name": c.name, "change": c.change, "breaking": c.breaking,
                         "message": c.message} for c in changes],
        },
    }


class AliasRequestDecisionSerializer(serializers.Serializer):
    comment = serializers.CharField(required=False, allow_blank=True, default="", trim_whitespace=False)


class ProtectedAliasSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="An alias name protected in every model of the context (any case)")
    created_by = user_field()
    created_at = serializers.DateTimeField(read_only=True)


# --- API tokens ---------------------------------------------------------------------------

class TokenModelSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    context = serializers.CharField()
    name = serializers.CharField()


class TokenSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    owner = serializers.CharField(source="user.username", read_only=True)
    name = serializers.CharField(read_only=True)
    prefix = serializers.CharField(read_only=True, help_text="The token's first characters")
    read_only = serializers.BooleanField(read_only=True)
    reach = serializers.ChoiceField(choices=["all", "contexts", "models"], read_only=True,
                                    help_text="all: every context of the owner; contexts or models: those named")
    contexts = serializers.ListField(child=serializers.CharField(), source="scope_context_slugs", read_only=True)
    models = TokenModelSerializer(many=True, source="scope_model_rows", read_only=True)
    permissions = serializers.ListField(child=serializers.CharField(), source="scope_permissions", read_only=True,
                                        allow_null=True, help_text="null: every permission of the owner's roles")
    created_at = serializers.DateTimeField(read_only=True)
    expires_at = serializers.DateTimeField(read_only=True, allow_null=True)
    last_used_at = serializers.DateTimeField(read_only=True, allow_null=True,
                                             help_text="Recorded at most once a minute")
    revoked_at = serializers.DateTimeField(read_only=True, allow_null=True)


class TokenCreatedSerializer(TokenSerializer):
    token = serializers.CharField(read_only=True, help_text="The token itself: shown in this answer only")


class TokenCreateSerializer(serializers.Serializer):
    name = serializers.CharField(required=False, allow_blank=True, default="")
    read_only = serializers.BooleanField(required=False, default=False)
    expires_in_days = serializers.IntegerField(required=False, allow_null=True, default=None)
    contexts = serializers.ListField(child=serializers.CharField(), required=False, allow_null=True, default=None,
                                     help_text="Context slugs the token is limited to (leave out: all of yours)")
    models = serializers.ListField(child=serializers.CharField(), required=False, allow_null=True, default=None,
                                   help_text="Model ids or 'context/model name' the token is limited to")
    permissions = serializers.ListField(child=serializers.CharField(), required=False, allow_null=True, default=None,
                                        help_text="Permissions the token keeps (leave out: all of your roles')")


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
    version_count = serializers.IntegerField(read_only=True, help_text="How many versions were trained on it")


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


# --- webhooks ---------------------------------------------------------------------------

class WebhookSerializer(serializers.Serializer):
    id = serializers.UUIDField(read_only=True)
    url = serializers.CharField(read_only=True)
    description = serializers.CharField(read_only=True)
    events = serializers.ListField(child=serializers.CharField(), read_only=True)
    enabled = serializers.BooleanField(read_only=True)
    secret_prefix = serializers.CharField(read_only=True, help_text="The secret's first characters, to recognise it")
    created_by = user_field()
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)
    last_delivery_status = serializers.CharField(read_only=True, allow_null=True, default=None)
    last_delivery_at = serializers.DateTimeField(read_only=True, allow_null=True, default=None)


class WebhookCreatedSerializer(WebhookSerializer):
    secret = serializers.CharField(read_only=True, help_text="Shown in this answer only: keep it to verify "
                                                             "the X-Registry-Signature header")


class WebhookCreateSerializer(serializers.Serializer):
    url = serializers.CharField(trim_whitespace=False, help_text="http:// or https://, without credentials")
    events = serializers.ListField(child=serializers.CharField(), allow_empty=True)
    description = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)


class WebhookUpdateSerializer(serializers.Serializer):
    url = serializers.CharField(required=False, trim_whitespace=False)
    events = serializers.ListField(child=serializers.CharField(), required=False, allow_empty=True)
    description = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    enabled = serializers.BooleanField(required=False)


class WebhookAttemptSerializer(serializers.Serializer):
    number = serializers.IntegerField(read_only=True)
    started_at = serializers.DateTimeField(read_only=True)
    duration_ms = serializers.IntegerField(read_only=True)
    response_code = serializers.IntegerField(read_only=True, allow_null=True)
    response_excerpt = serializers.CharField(read_only=True)
    error = serializers.CharField(read_only=True)
    succeeded = serializers.BooleanField(read_only=True)


class WebhookDeliverySerializer(serializers.Serializer):
    id = serializers.UUIDField(read_only=True)
    event_id = serializers.UUIDField(read_only=True)
    event_type = serializers.CharField(read_only=True)
    status = serializers.CharField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    next_attempt_at = serializers.DateTimeField(read_only=True, allow_null=True,
                                                help_text="When a pending delivery is tried again")
    finished_at = serializers.DateTimeField(read_only=True, allow_null=True)
    attempt_count = serializers.IntegerField(read_only=True)
    last_response_code = serializers.IntegerField(read_only=True, allow_null=True)
    last_error = serializers.CharField(read_only=True)
    attempts = WebhookAttemptSerializer(many=True, read_only=True)
    body = serializers.SerializerMethodField(help_text="The JSON sent (the same on every attempt)")

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_body(self, delivery) -> dict:
        return json.loads(delivery.body)
