"""Filters for the model page: JSON shown to people, and introspection reports."""

import json

from django import forms, template

register = template.Library()

SCALARS = (str, int, float, bool)


@register.filter
def pretty_json(value) -> str:
    """Indented JSON (escaped by the template like any other text)."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)


@register.filter
def json_value(value) -> str:
    """A compact one-line form: strings as they are, everything else as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


@register.filter
def scalar_items(details) -> list[tuple[str, object]]:
    """The (key, value) pairs of a report's details whose value is a plain number or text."""
    if not isinstance(details, dict):
        return []
    return [(key.replace("_", " "), value) for key, value in details.items() if isinstance(value, SCALARS)]


@register.filter
def has_nested(details) -> bool:
    """True when a report's details hold lists or objects (shown as collapsible JSON)."""
    return isinstance(details, dict) and any(not isinstance(v, SCALARS) and v is not None for v in details.values())


@register.filter
def is_json_list(bound_field) -> bool:
    """True for a form field holding a JSON list (dashboard.forms.JSONListField)."""
    from dashboard.forms import JSONListField

    return isinstance(getattr(bound_field, "field", None), JSONListField)


@register.filter
def is_json_object(bound_field) -> bool:
    """True for a form field holding a JSON object (checked as it is typed by static/dashboard/app.js)."""
    return isinstance(getattr(bound_field, "field", None), forms.JSONField)
