"""Confirmation pages of the model page's actions, for browsers without JavaScript.

With JavaScript each action asks in an in-page <dialog> (templates/dashboard/partials/
confirm_dialog.html); its opener is a link to one of these pages, which asks the same question
with the same form. They only read: the form posts to the action's own view, which checks the
permission and calls the service. An action the service would refuse is shown disabled, with
the reason (dashboard.preflight).
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.urls import path, reverse

from dashboard import preflight
from registry import selectors
from registry.models import FormatStatus
from registry.permissions import Perm, has_perm, permissions_in
from registry.services.aliases import is_protected

M = "models/<str:model_id>"
V = f"{M}/versions/<int:number>"


def _confirm(request, model, *, title: str, question: str, action: str, confirm_label: str, back: str,
             permission: Perm | None, refusal: str = "", tone: str = "primary", method: str = "post",
             acknowledge: str = ""):
    allowed = permission is None or permission in permissions_in(request.user, model.context)
    return render(request, "dashboard/models/confirm.html", {
        "context": model.context, "model": model, "title": title, "question": question, "action": action,
        "confirm_label": confirm_label, "back": back, "allowed": allowed, "refusal": refusal, "tone": tone,
        "method": method, "acknowledge": acknowledge,
    })


@login_required
def version_publish_confirm(request, model_id, number):
    model = selectors.model_get(request.user, model_id)
    version = selectors.version_detail(model, number)  # its formats, for the refusal
    return _confirm(
        request, model, title=f"Publish version {version.number}?",
        question=f"Publishing freezes version {version.number} of {model.name}: its fields and files can no "
                 f"longer change, and aliases can point to it.",
        action=reverse("dashboard:version-publish", kwargs={"model_id": model.pk, "number": version.number}),
        confirm_label=f"Publish version {version.number}", permission=Perm.PUBLISH_VERSION,
        back=reverse("dashboard:version-detail", kwargs={"model_id": model.pk, "number": version.number}),
        refusal=preflight.publish_refusal(version),
    )


@login_required
def format_delete_confirm(request, model_id, number, kind):
    model = selectors.model_get(request.user, model_id)
    version = selectors.version_get(model, number)
    fmt = selectors.format_get(version, kind)
    return _confirm(
        request, model, title=f"Delete the {fmt.kind} file?",
        question=f"This deletes the {fmt.kind} format of version {version.number} and its stored file. "
                 f"It cannot be undone.",
        action=reverse("dashboard:format-delete", kwargs={"model_id": model.pk, "number": version.number,
                                                          "kind": fmt.kind}),
        confirm_label=f"Delete the {fmt.kind} file", permission=Perm.EDIT_MODEL, tone="danger",
        back=reverse("dashboard:version-formats", kwargs={"model_id": model.pk, "number": version.number}),
        refusal=f"Version {version.number} is published: its files are frozen." if version.is_published else "",
    )


@login_required
def format_download_confirm(request, model_id, number, kind):
    """The warning step before downloading a file that is not ready: the API sends it only when
    the request names its status (`?acknowledge=<status>`), and records the download."""
    model = selectors.model_get(request.user, model_id)
    version = selectors.version_get(model, number)
    fmt = selectors.format_get(version, kind)
    return _confirm(
        request, model, title=f"Download the {fmt.kind} file anyway?",
        question=download_warning(fmt), method="get", acknowledge=fmt.status,
        action=reverse("api:format-file", kwargs={"model_id": model.pk, "number": version.number, "kind": fmt.kind}),
        confirm_label="Download anyway", permission=None, tone="danger",
        back=reverse("dashboard:version-formats", kwargs={"model_id": model.pk, "number": version.number}),
        refusal="" if fmt.has_file else f"The {fmt.kind} format has no file yet.",
    )


def download_warning(fmt) -> str:
    checking = "is still being checked"
    state = {FormatStatus.REVIEW: "needs review: it imports code nobody has approved",
             FormatStatus.UPLOADED: checking, FormatStatus.HASHING: checking,
             FormatStatus.INTROSPECTING: checking}.get(fmt.status, f"is {fmt.status}")
    detail = f" ({fmt.status_message})" if fmt.status_message and fmt.status != FormatStatus.REVIEW else ""
    return (f"This file {state}{detail}. Loading it may be unsafe. The download is recorded in the "
            f"audit log.")


def _asks(request, model, name: str) -> str:
    """What the question adds when the move of a protected alias will be a move request."""
    if is_protected(model, name) and not has_perm(request.user, model.context, Perm.MOVE_PROTECTED_ALIAS,
                                                  model_id=model.pk):
        return (f" {name} is protected: this asks for the move (a move request), which another publisher or "
                f"an admin approves.")
    return ""


@login_required
def alias_rollback_confirm(request, model_id, alias):
    model = selectors.model_get(request.user, model_id)
    row = selectors.alias_get(model, alias)
    target = selectors.alias_rollback_targets(model).get(row.name)
    return _confirm(
        request, model, title=f"Roll back {row.name}?",
        question=f"{row.name} points to version {row.version.number}; rolling back moves it to version "
                 f"{target}, where it pointed before. Consumers loading by this alias get that version."
                 + _asks(request, model, row.name),
        action=reverse("dashboard:alias-rollback", kwargs={"model_id": model.pk, "alias": row.name}),
        confirm_label=f"Move {row.name} to version {target}", permission=Perm.PUBLISH_VERSION,
        back=reverse("dashboard:model-aliases", kwargs={"model_id": model.pk}),
        refusal=preflight.rollback_refusals({row.name: target})[row.name],
    )


@login_required
def alias_delete_confirm(request, model_id, alias):
    model = selectors.model_get(request.user, model_id)
    row = selectors.alias_get(model, alias)
    return _confirm(
        request, model, title=f"Remove alias {row.name}?",
        question=f"{row.name} points to version {row.version.number}. Consumers loading by this alias will "
                 f"fail until it is set again; its history is kept." + _asks(request, model, row.name),
        action=reverse("dashboard:alias-delete", kwargs={"model_id": model.pk, "alias": row.name}),
        confirm_label=f"Remove {row.name}", permission=Perm.PUBLISH_VERSION, tone="danger",
        back=reverse("dashboard:model-aliases", kwargs={"model_id": model.pk}),
    )


urlpatterns = [
    path(f"{V}/publish/confirm/", version_publish_confirm, name="version-publish-confirm"),
    path(f"{V}/formats/<str:kind>/delete/confirm/", format_delete_confirm, name="format-delete-confirm"),
    path(f"{V}/formats/<str:kind>/download/", format_download_confirm, name="format-download-confirm"),
    path(f"{M}/aliases/<str:alias>/rollback/confirm/", alias_rollback_confirm, name="alias-rollback-confirm"),
    path(f"{M}/aliases/<str:alias>/delete/confirm/", alias_delete_confirm, name="alias-delete-confirm"),
]
