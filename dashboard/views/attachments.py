"""The model's Attachments tab: files of the model itself (a model card, a monitoring report, a
drift plot, benchmark results), listed with their size and SHA-256, downloaded from the API (always
as a download), uploaded and deleted by editors. The service decides everything else
(registry.services.attachments); this door names the permission and shows the service's words."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from dashboard.forms import AttachmentForm
from dashboard.views.base import add_service_error, requires
from dashboard.views.confirmations import _confirm
from dashboard.views.model_pages import USER_ERRORS, UploadedFileStream, _page, _selected_number
from registry import selectors, services
from registry.errors import StorageUnavailable
from registry.permissions import Perm
from registry.services.attachments import max_attachment_bytes

M = "models/<str:model_id>"


def _attachments_page(request, model, form, status=200):
    attachments = list(selectors.attachment_list(model))
    return _page(request, model, tab="attachments", selected=_selected_number(request), attachments=attachments,
                 attachment_form=form, max_attachments=settings.REGISTRY_MAX_ATTACHMENTS,
                 max_attachment_bytes=max_attachment_bytes(),
                 room_for_more=len(attachments) < settings.REGISTRY_MAX_ATTACHMENTS, status=status)


@login_required
def model_attachments(request, model_id):
    model = selectors.model_detail(request.user, model_id)
    return _attachments_page(request, model, AttachmentForm())


@login_required
@require_POST
@requires(Perm.EDIT_MODEL)
def attachment_upload(request, model_id):
    """The upload form (a multipart POST, streamed into the service; its progress shown by
    app.js's data-progress-submit)."""
    model = selectors.model_detail(request.user, model_id)
    form = AttachmentForm(request.POST, request.FILES)
    status, retry_after = 400, None
    if form.is_valid():
        uploaded = form.cleaned_data["file"]
        name = form.cleaned_data["name"] or uploaded.name or ""
        try:
            attachment, replaced = services.attachment_upload(
                actor=request.user, model=model, name=name, stream=UploadedFileStream(uploaded),
                content_length=uploaded.size, overwrite=form.cleaned_data["overwrite"],
                description=form.cleaned_data["description"] or None)
        except USER_ERRORS as error:
            add_service_error(form, error)
            status = error.status_code
        except StorageUnavailable as error:  # the same words as the API's 503/507
            add_service_error(form, error)
            status, retry_after = error.status_code, error.retry_after
        else:
            messages.success(request, f"{attachment.name} was {'replaced' if replaced else 'attached'} "
                                      f"({attachment.size} bytes).")
            return redirect("dashboard:model-attachments", model_id=model.pk)
    response = _attachments_page(request, model, form, status=status)
    if retry_after:
        response["Retry-After"] = str(retry_after)
    return response


# A form larger than an attachment may be is refused before it is read (dashboard.middleware).
attachment_upload.upload_limit = max_attachment_bytes


@login_required
@require_POST
@requires(Perm.EDIT_MODEL)
def attachment_delete(request, model_id, name):
    model = selectors.model_detail(request.user, model_id)
    attachment = selectors.attachment_get(model, name)
    services.attachment_delete(actor=request.user, attachment=attachment)
    messages.success(request, f"{attachment.name} and its stored file were deleted.")
    return redirect("dashboard:model-attachments", model_id=model.pk)


@login_required
def attachment_delete_confirm(request, model_id, name):
    model = selectors.model_get(request.user, model_id)
    attachment = selectors.attachment_get(model, name)
    return _confirm(
        request, model, title=f"Delete {attachment.name}?",
        question=f"This deletes the attachment {attachment.name} of {model.name} and its stored file. "
                 f"It cannot be undone.",
        action=reverse("dashboard:attachment-delete", kwargs={"model_id": model.pk, "name": attachment.name}),
        confirm_label=f"Delete {attachment.name}", permission=Perm.EDIT_MODEL, tone="danger",
        back=reverse("dashboard:model-attachments", kwargs={"model_id": model.pk}),
    )


urlpatterns = [
    path(f"{M}/attachments/", model_attachments, name="model-attachments"),
    path(f"{M}/attachments/upload/", attachment_upload, name="attachment-upload"),
    path(f"{M}/attachments/<str:name>/delete/", attachment_delete, name="attachment-delete"),
    path(f"{M}/attachments/<str:name>/delete/confirm/", attachment_delete_confirm, name="attachment-delete-confirm"),
]
