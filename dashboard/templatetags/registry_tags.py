from django import template
from django.utils.safestring import mark_safe

from registry.markdown import render_markdown
from registry.models import FormatStatus, VersionStatus
from registry.services.formats import ACKNOWLEDGED_DOWNLOAD_STATUSES

register = template.Library()


@register.filter
def markdown(text: str) -> str:
    """Render Markdown to sanitized HTML (safe to output)."""
    return mark_safe(render_markdown(text))  # noqa: S308 - bleach-sanitized


STATUS_TONES = {
    FormatStatus.READY: "ok", VersionStatus.PUBLISHED: "ok",
    FormatStatus.PENDING: "muted", VersionStatus.DRAFT: "muted",
    FormatStatus.UPLOADED: "busy", FormatStatus.HASHING: "busy", FormatStatus.INTROSPECTING: "busy",
    FormatStatus.REVIEW: "warn",
    FormatStatus.CORRUPT: "bad", FormatStatus.QUARANTINED: "bad", FormatStatus.FAILED: "bad",
}
# Words shown instead of a status value that would not read on its own.
STATUS_WORDS = {FormatStatus.REVIEW: "needs review"}


@register.inclusion_tag("dashboard/partials/badge.html")
def status_badge(status: str, message: str = ""):
    return {"status": STATUS_WORDS.get(status, status), "tone": STATUS_TONES.get(status, "muted"),
            "message": message}


@register.filter
def needs_acknowledgement(status: str) -> bool:
    """True when a file in this status downloads only with an explicit acknowledgement."""
    return status in ACKNOWLEDGED_DOWNLOAD_STATUSES


@register.filter
def filesize(value) -> str:
    if value is None:
        return "—"
    size = float(value)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(value)


@register.simple_tag(takes_context=True)
def query(context, **changes) -> str:
    """The current query string with some parameters replaced (for sort and page links)."""
    params = context["request"].GET.copy()
    for key, value in changes.items():
        if value in (None, ""):
            params.pop(key, None)
        else:
            params[key] = value
    encoded = params.urlencode()
    return f"?{encoded}" if encoded else "?"
