"""Template helpers of the team pages (records, members, audit log, tokens, comparison)."""

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
