"""Template helpers of the team pages (records, members, audit log, tokens, comparison)."""

import json

from django import template

register = template.Library()

# Audit actions that mean a file can no longer be trusted: shown as alerts in the log.
ALERT_ACTIONS = {"format.tamper", "format.tamper_reported", "format.corrupt", "format.quarantined"}
WARNING_ACTIONS = {"format.failed", "format.review", "format.download_not_ready", "trusted_import.add",
                   "trusted_import.revoke"}


@register.filter
def audit_tone(action: str) -> str:
    """'alert' for tamper/corruption/quarantine events, 'warning' for failures, files in review,
    downloads of flagged files and changes of trusted imports, else ''."""
    if action in ALERT_ACTIONS or action.endswith(".tamper"):
        return "alert"
    if action in WARNING_ACTIONS:
        return "warning"
    return ""


@register.filter
def token_state(token, now) -> str:
    """'revoked', 'expired' or 'active': whether a token still authenticates."""
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at is not None and token.expires_at <= now:
        return "expired"
    return "active"


@register.filter
def indented_json(text: str) -> str:
    """A JSON document stored as text (a webhook delivery's body), indented for reading."""
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except (TypeError, ValueError):
        return text
