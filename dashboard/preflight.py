"""Errors before the work: which actions of the model page the services would refuse, and why.

The pages disable such an action and show the reason next to it, instead of letting a person
confirm it (or fill a long form, or upload a large file) only to be refused. The services stay
the judges: these read the same rules from what the page has already loaded, and
tests/dashboard/test_preflight.py checks each against its service.
"""

from __future__ import annotations

from django.conf import settings

from registry.models import FormatStatus
from registry.services.versions import PUBLISHABLE_FORMAT_STATUSES

# What a file's status means for publishing, in words for the disabled Publish button.
NOT_PUBLISHABLE_WORDS = {
    FormatStatus.PENDING: "has no file yet",
    FormatStatus.UPLOADED: "is still being checked",
    FormatStatus.HASHING: "is still being checked",
    FormatStatus.INTROSPECTING: "is still being checked",
    FormatStatus.REVIEW: "needs review: a publisher approves its imports in the Formats tab",
    FormatStatus.CORRUPT: "is corrupt: upload it again",
    FormatStatus.QUARANTINED: "is quarantined: upload a safe file",
    FormatStatus.FAILED: "failed its checks: upload it again",
}


def publish_refusal(version) -> str:
    """Why services.version_publish would refuse `version` ('' when it would publish it), from
    its formats as shown (selectors.version_detail's format_rows): at least one, every one ready."""
    if version.is_published:
        return f"Version {version.number} is already published."
    formats = sorted(version.format_rows, key=lambda fmt: fmt["kind"])
    if not formats:
        return "Upload a file first: a version needs at least one file to be published."
    for fmt in formats:
        if fmt["status"] not in PUBLISHABLE_FORMAT_STATUSES:
            words = NOT_PUBLISHABLE_WORDS.get(fmt["status"], f"is {fmt['status']}")
            return f"The {fmt['kind']} file {words}."
    return ""


def delete_refusal(version) -> str:
    """Why services.version_delete would refuse `version` ('' when it would delete it): an alias
    points to it (selectors.version_detail's alias_names)."""
    names = sorted(version.alias_names)
    if not names:
        return ""
    listed = ", ".join(names)
    return (f"Alias{'es' if len(names) > 1 else ''} {listed} point{'' if len(names) > 1 else 's'} to version "
            f"{version.number}: move or remove {'them' if len(names) > 1 else 'it'} in the Aliases tab first.")


def rollback_refusals(targets: dict[str, int | None]) -> dict[str, str]:
    """{alias name: why services.alias_rollback would refuse it ('' when it would move it)},
    from selectors.alias_rollback_targets."""
    return {name: "" if number is not None else "No earlier version to go back to: this alias was "
            "first set here, or the version it pointed to before was deleted."
            for name, number in targets.items()}


def version_limit_refusal(model, live_count: int) -> str:
    """Why services.version_create would refuse a new version of `model` ('' when it would not)."""
    limit = settings.REGISTRY_MAX_VERSIONS
    if live_count < limit:
        return ""
    return (f"{model.name} already has {live_count} versions, the most allowed ({limit}). "
            f"Delete a version you no longer need to make room for a new one.")
