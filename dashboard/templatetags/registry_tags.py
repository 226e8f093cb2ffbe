from django import template
from django.utils.safestring import mark_safe

from registry.api.files import download_filename
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


# --- versions and aliases shown with their worst file state (selectors.version_file_states) --------

FILE_STATE_WORDS = {
    "quarantined": "quarantined", "corrupt": "corrupt", "failed": "failed", "review": "needs review",
    "uploaded": "being checked", "hashing": "being checked", "introspecting": "being checked",
    "pending": "has no file",
}


def file_state_problem(state) -> str:
    """'pkl corrupt' for a worst file state that is not ready, else ''."""
    if not state or state.get("status") not in FILE_STATE_WORDS:
        return ""
    return f"{state['kind']} {FILE_STATE_WORDS[state['status']]}"


@register.inclusion_tag("dashboard/partials/badge.html")
def version_badge(status: str, state=None):
    """A version's status, in the tone of its worst file when that is not ready: a published
    version whose file went corrupt reads 'published · pkl corrupt' in red, never green."""
    problem = file_state_problem(state)
    if not problem:
        return status_badge(status)
    tone = STATUS_TONES.get(state["status"], "muted")
    return {"status": f"{status} · {problem}", "tone": tone,
            "message": f"The {state['kind']} file of this version is {FILE_STATE_WORDS[state['status']]}."}


@register.inclusion_tag("dashboard/partials/alias_chip.html")
def alias_chip(name: str, state=None, number=None):
    """An alias chip ('production', or 'production → v2' with `number`), marked when the worst
    file of the version it points to is not ready."""
    problem = file_state_problem(state)
    return {"name": name, "number": number, "problem": problem,
            "tone": STATUS_TONES.get(state["status"], "muted") if problem else ""}


@register.filter
def lookup(mapping, key):
    """mapping[key], or None (a dict keyed by numbers, which templates cannot index)."""
    return mapping.get(key) if mapping else None


@register.filter
def file_problem(state) -> str:
    return file_state_problem(state)


@register.filter
def status_tone(status: str) -> str:
    return STATUS_TONES.get(status, "muted")


@register.filter
def download_name(fmt) -> str:
    """The file name a download of `fmt` carries (the one it was sent with, or one the registry gives)."""
    return download_filename(fmt)


@register.filter
def named_signatures(signature) -> list[tuple[str, dict]]:
    """[(name, {"inputs", "outputs"})] of a stored signature, named or not (registry/signatures.py)."""
    from registry import signatures

    return list(signatures.named(signature).items())
