"""The dashboard's forms. They validate shape only (types, lengths, JSON syntax); the rules live
in the services, whose errors the views put next to the field they name."""

from __future__ import annotations

import json
import re

from django import forms
from django.conf import settings

from registry import jsoninput
from registry.models import EventType, FormatKind, Role
from registry.permissions import Perm
from registry.services.contexts import MAX_TOKEN_DAYS

REASON_HELP = "Why this code can be trusted, e.g. “our own package, reviewed in PR 412”. Kept with the imports."


# --- models and versions --------------------------------------------------------------------

class ModelForm(forms.Form):
    name = forms.CharField(max_length=200, strip=False)
    tags = forms.CharField(required=False, help_text="Comma-separated, e.g. tabular, fraud")
    task = forms.CharField(required=False, max_length=200, help_text='Free text, e.g. "English ASR"')
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 6}),
                                  help_text="Markdown")


class JSONObjectField(forms.JSONField):
    """A JSON object typed in a textarea; empty means {}. Errors say where the JSON breaks."""

    widget = forms.Textarea(attrs={"rows": 5, "spellcheck": "false", "class": "mono"})

    json_type = dict
    wrong_type = 'Enter a JSON object in braces, e.g. {"learning_rate": 0.01}.'

    def to_python(self, value):
        if value in self.empty_values or (isinstance(value, str) and not value.strip()):
            return self.json_type()
        if isinstance(value, str):
            try:
                value = jsoninput.loads(value, max_depth=settings.REGISTRY_MAX_JSON_DEPTH)
            except json.JSONDecodeError as error:
                raise forms.ValidationError(
                    f"This is not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}."
                ) from None
            except ValueError as error:  # nested too deep, NaN or Infinity
                raise forms.ValidationError(str(error)) from None
        if not isinstance(value, self.json_type):
            raise forms.ValidationError(self.wrong_type)
        return value

    def prepare_value(self, value):
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        return json.dumps(value, indent=2, ensure_ascii=False) if value else ""

    def bound_data(self, data, initial):
        # Show what the person typed, even when it is valid JSON but not an object.
        return forms.fields.InvalidJSONInput(data) if isinstance(data, str) else data


class JSONListField(JSONObjectField):
    """A JSON list typed in a textarea; empty means []."""

    json_type = list
    wrong_type = 'Enter a JSON list in brackets, e.g. [{"name": "weights", …}].'


class VersionForm(forms.Form):
    name = forms.CharField(required=False, max_length=200, help_text='Optional, e.g. "nightly retrain"')
    description = forms.CharField(required=False, strip=False, widget=forms.Textarea(attrs={"rows": 4}),
                                  help_text="Markdown")
    tags = forms.CharField(required=False, help_text="Comma-separated, e.g. baseline, gpu")
    framework = forms.CharField(required=False, max_length=100, help_text='e.g. "scikit-learn"')
    framework_version = forms.CharField(required=False, max_length=100, help_text='e.g. "1.5.2"')
    hyperparameters = JSONObjectField(required=False, help_text='A JSON object, e.g. {"max_depth": 6}')
    config = JSONObjectField(required=False, help_text="A JSON object that deployments read")
    metadata = JSONObjectField(
        required=False,
        help_text='A JSON object, e.g. {"provenance": {"repository": "…", "commit": "…"}, "taxonomy": {…}}',
    )
    records = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple,
                                        label="Training records", help_text="Datasets this version was trained on")
    signature = JSONObjectField(
        required=False,
        help_text='{"inputs": [{"name": "x", "dtype": "float32", "shape": [-1, 4]}], "outputs": […]} (the '
                  '“predict” signature), and named ones in {"signatures": {"tokenize": {"inputs": […], '
                  '"outputs": […]}}}; leave empty to take it from the uploaded file',
    )

    external_files = JSONListField(
        required=False, label="External files",
        help_text='Files the manifest lists but the registry does not store: [{"name": "weights", "source_uri": '
                  '"s3://bucket/weights.bin", "sha256_checksum": "<64 hex>", "size": 1024, "required": true}]; '
                  "s3://, gs://, https:// or data://",
    )

    def __init__(self, *args, records=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["records"].choices = [(str(record.pk), record.name) for record in records]

    def clean_description(self):
        # Browsers send textarea lines with CRLF; keep the stored text as it was typed.
        return self.cleaned_data["description"].replace("\r\n", "\n")

    @staticmethod
    def initial_for(version) -> dict:
        return {
            "name": version.name, "description": version.description,
            "tags": ", ".join(version.tag_names),
            "framework": version.framework, "framework_version": version.framework_version,
            "hyperparameters": version.hyperparameters, "config": version.config, "metadata": version.metadata,
            "records": [record["id"] for record in version.record_rows], "signature": version.signature,
            "external_files": version.external_files,
        }


class NewVersionForm(VersionForm):
    kind = forms.ChoiceField(required=False, choices=[("", "— no file yet —"), *FormatKind.choices],
                             label="Kind of the first file")
    file = forms.FileField(required=False, label="First file", help_text="Optional; more files can be added later")

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("file") and not cleaned.get("kind"):
            self.add_error("kind", "Choose the kind of the file (pkl, onnx, …).")
        return cleaned

    def version_fields(self) -> dict:
        return {key: value for key, value in self.cleaned_data.items() if key not in ("kind", "file")}


class UploadForm(forms.Form):
    kind = forms.ChoiceField(choices=FormatKind.choices)
    file = forms.FileField()


class AttachmentForm(forms.Form):
    file = forms.FileField()
    name = forms.CharField(required=False, max_length=200, help_text="Leave empty to keep the file's own name")
    description = forms.CharField(required=False, max_length=500)
    overwrite = forms.BooleanField(required=False, label="Replace an attachment of the same name")


class AliasForm(forms.Form):
    alias = forms.CharField(max_length=64, help_text="e.g. production, staging, champion",
                            widget=forms.TextInput(attrs={"list": "alias-names", "autocomplete": "off"}))
    version = forms.TypedChoiceField(coerce=int, help_text="Only published versions can have an alias")
    comment = forms.CharField(required=False, max_length=2000, label="Comment",
                              help_text="Why: kept with the move request when the alias is protected")

    def __init__(self, *args, published=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["version"].choices = [(v.number, f"Version {v.number}") for v in published]


class DeleteModelForm(forms.Form):
    confirm_name = forms.CharField(label="Type the model's name to confirm", strip=False)

    def __init__(self, *args, model, **kwargs):
        super().__init__(*args, **kwargs)
        self.model_name = model.name

    def clean_confirm_name(self):
        typed = self.cleaned_data["confirm_name"]
        if typed != self.model_name:
            raise forms.ValidationError(f"Type the name exactly as shown: {self.model_name}")
        return typed


# --- training records, members, API tokens ---------------------------------------------------

class RecordForm(forms.Form):
    name = forms.CharField(max_length=200, help_text="Unique in this context, e.g. transactions-2024-q4")
    uri = forms.CharField(label="URI", max_length=2000, help_text="Where the data lives, e.g. s3://bucket/train.parquet")
    checksum = forms.CharField(required=False, max_length=200, help_text="Optional, e.g. sha256:…")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 6}), strip=False,
                                  help_text="Markdown")


class MemberAddForm(forms.Form):
    username = forms.CharField(required=False, max_length=150, label="User name",
                               help_text="An existing account's user name")
    group = forms.CharField(required=False, max_length=150, label="…or group",
                            help_text="A group created by site staff; all its users get the role")
    role = forms.ChoiceField(choices=Role.choices, initial=Role.VIEWER)


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What will use it, e.g. “CI pipeline” or “laptop notebook”")
    read_only = forms.BooleanField(required=False, label="Read-only",
                                   help_text="Can view and download, never change anything")
    expires_in_days = forms.IntegerField(
        required=False, min_value=1, max_value=MAX_TOKEN_DAYS, label="Expires in (days)",
        help_text=f"Empty: the token never expires. At most {MAX_TOKEN_DAYS} days.",
    )
    contexts = forms.MultipleChoiceField(
        required=False, widget=forms.CheckboxSelectMultiple, label="Only in these contexts",
        help_text="None ticked: every context you belong to.")
    models = forms.CharField(
        required=False, label="Only these models",
        widget=forms.Textarea(attrs={"rows": 2, "spellcheck": "false", "class": "mono",
                                     "placeholder": "acme/churn-classifier"}),
        help_text="One per line: context/model name, or a model id. Empty: every model. E.g. a deployment "
                  "that reads one model.")
    permissions = forms.MultipleChoiceField(
        required=False, widget=forms.CheckboxSelectMultiple, label="Only these permissions",
        choices=[(perm.value, perm.value) for perm in Perm],
        help_text="None ticked: whatever your roles allow. A token never exceeds your roles.")

    def __init__(self, *args, contexts=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["contexts"].choices = [(context.slug, context.name) for context in contexts]

    def service_arguments(self) -> dict:
        """The cleaned form as token_create's arguments: an empty scope field is no limit."""
        data = self.cleaned_data
        models = [line.strip() for line in data["models"].splitlines() if line.strip()]
        return {"name": data["name"], "read_only": data["read_only"], "expires_in_days": data["expires_in_days"],
                "contexts": data["contexts"] or None, "models": models or None,
                "permissions": data["permissions"] or None}


# --- protected aliases and move requests ------------------------------------------------------

class ProtectedAliasForm(forms.Form):
    alias = forms.CharField(max_length=64, label="Alias name", help_text="e.g. production: every model's alias "
                            "of that name (any case) then moves only by an admin or with a second publisher's approval")


class DecisionForm(forms.Form):
    comment = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}), max_length=2000)

    def __init__(self, *args, **kwargs):
        # Its dialog opens on the Aliases tab, whose alias form has a comment field of its own.
        kwargs.setdefault("auto_id", "decision_%s")
        super().__init__(*args, **kwargs)


# --- trusted imports ---------------------------------------------------------------------------

class TrustedImportForm(forms.Form):
    imports = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false", "class": "mono",
                                     "placeholder": "mylibrary.models.Scorer"}),
        help_text="Dotted Python paths (module.name), one per line or separated by commas")
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), help_text=REASON_HELP)

    def clean_imports(self) -> list[str]:
        return [name for name in re.split(r"[\s,]+", self.cleaned_data["imports"]) if name]


# --- webhooks ------------------------------------------------------------------------------------

class WebhookForm(forms.Form):
    url = forms.CharField(label="Payload URL", max_length=2000, strip=True,
                          widget=forms.URLInput(attrs={"placeholder": "https://hooks.example.com/registry"}),
                          help_text="http:// or https://, no user:password@. Addresses outside the public internet "
                                    "are refused unless the operator allows them.")
    events = forms.MultipleChoiceField(choices=EventType.choices, widget=forms.CheckboxSelectMultiple,
                                       help_text="What to send.")
    description = forms.CharField(required=False, max_length=200, help_text="Optional: who receives it, and why.")
# --- single sign-on rules --------------------------------------------------------------------

class SsoRuleForm(forms.Form):
    claim_value = forms.CharField(max_length=255, label="Claim value",
                                  help_text="A value of the roles claim, exactly as the provider sends it, e.g. ml-platform")
    context = forms.ChoiceField(choices=[], help_text="A context you manage")
    role = forms.ChoiceField(choices=Role.choices)

    def __init__(self, *args, contexts=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["context"].choices = [(context.slug, context.name) for context in contexts]
