"""The model page: general section, versions drop-down, and tabs for the selected version
(details, formats, metrics), the model's aliases and a new-version form; plus publishing,
uploads without JavaScript, and deleting a version or the whole model.

Every write goes through a service; every permission question is asked of
registry.permissions. A view that writes names its permission with @requires, decided before
the form is read, so a viewer gets 403 whatever the form holds.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.utils.text import slugify
from django.urls import path
from django.views.decorators.http import require_POST

from dashboard import preflight
from dashboard.charts import across_versions_chart, metric_charts
from dashboard.forms import AliasForm, DeleteModelForm, ModelForm, NewVersionForm, UploadForm, VersionForm
from dashboard.views import guards
from dashboard.views.base import add_service_error, requires
from registry import selectors, services, storage
from registry.errors import Conflict, FileTooLarge, InvalidInput, StorageUnavailable
from registry.models import AliasMoveRequest, FormatKind, FormatStatus, RequestStatus, VersionStatus
from registry.permissions import Perm, permissions_in

# Rules a user can break by what they typed; PermissionDenied and NotFound are not caught
# here, so the middleware turns them into 403 and 404.
USER_ERRORS = (InvalidInput, Conflict, FileTooLarge)
# Plain strings: templates compare them with the `status` column's value.
POLLED_STATUSES = {FormatStatus.UPLOADED.value, FormatStatus.HASHING.value, FormatStatus.INTROSPECTING.value}
ALIAS_HISTORY_SHOWN = 50
MODEL_METRICS_ON_OVERVIEW = 8  # latest values of the model's own metrics in its general section


# --- uploads -------------------------------------------------------------------------------

class UploadedFileStream:
    """read(size) over an uploaded file's chunks(), so the service streams it in constant memory."""

    def __init__(self, uploaded):
        self._chunks = uploaded.chunks()
        self._buffer = bytearray()

    def read(self, size: int = -1) -> bytes:
        while size is None or size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        if size is None or size < 0:
            size = len(self._buffer)
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data


# --- the page --------------------------------------------------------------------------------

VERSION_TABS = {"details": "dashboard:version-detail", "formats": "dashboard:version-formats",
                "metrics": "dashboard:version-metrics"}


def _page(request, model, *, tab: str, version=None, selected: int | None = None, status: int = 200, **extra):
    """Render the model page with one tab. `version` is the fully loaded selected version
    (for the version tabs); `selected` a version number to keep in the links otherwise."""
    perms = permissions_in(request.user, model.context)
    versions = list(selectors.version_choices(model))
    file_states = selectors.version_file_states(model)  # every badge and alias chip shows the worst file
    alias_names: dict[int, list[str]] = {}
    for alias in model.alias_rows:
        alias_names.setdefault(alias["version"], []).append(alias["name"])
        alias["file_state"] = file_states.get(alias["version"])
    for item in versions:
        item.alias_names = alias_names.get(item.number, [])
        item.file_state = file_states.get(item.number)
    numbers = [item.number for item in versions]
    if version is not None:
        selected = version.number
    # The Aliases and New version tabs opened without ?version show no version as chosen; their
    # links still lead to the latest.
    chosen = selected in numbers
    if not chosen:
        selected = numbers[0] if numbers else None
    older = [n for n in numbers if selected is not None and n < selected]
    newer = [n for n in numbers if selected is not None and n > selected]
    compare = (older[0], selected) if older else ((selected, newer[-1]) if newer else None)
    return render(request, "dashboard/models/detail.html", {
        "context": model.context, "model": model, "tab": tab, "version": version, "versions": versions,
        "selected": next((item for item in versions if item.number == selected), None),
        "version_chosen": chosen, "menu_url_name": VERSION_TABS.get(tab, "dashboard:version-detail"),
        "compare": compare,
        "can_edit": Perm.EDIT_MODEL in perms, "can_publish": Perm.PUBLISH_VERSION in perms,
        "can_delete": Perm.DELETE_MODEL in perms, "file_states": file_states,
        # The details tab's actions, from the version as it shows it (selectors.version_detail).
        **({"publish_refusal": preflight.publish_refusal(version), "delete_refusal": preflight.delete_refusal(version)}
           if hasattr(version, "format_rows") else {}),
        "version_limit_refusal": preflight.version_limit_refusal(model, len(versions)),
        # On S3 the browser sends a file's parts straight to the bucket (static/dashboard/app.js).
        "direct_uploads": storage.direct_uploads_available(),
        "model_form": ModelForm(initial={
            "name": model.name, "description": model.description, "task": model.task,
            "tags": ", ".join(model.tag_names),
        }),
        **extra,
    }, status=status)


def _model_and_version(request, model_id, number, *, shown: bool = False):
    """The model as its page shows it, and version `number`: as the details tab shows it when
    `shown` (the details, edit and delete pages), else its row (formats, metrics, actions)."""
    model = selectors.model_detail(request.user, model_id)
    return model, (selectors.version_detail if shown else selectors.version_get)(model, number)


def _selected_number(request) -> int | None:
    try:
        return int(request.GET.get("version", ""))
    except ValueError:
        return None


@login_required
def model_detail(request, model_id):
    """The model page on the latest version, or on `?version=N` (links from a training record)."""
    model = selectors.model_detail(request.user, model_id)
    numbers = model.version_numbers
    wanted = _selected_number(request)
    shown = wanted if wanted in numbers else (numbers[-1] if numbers else None)
    version = selectors.version_detail(model, shown) if shown is not None else None
    return _page(request, model, tab="details", version=version, overview=True,
                 model_metrics_latest=list(selectors.model_metric_latest(model)[:MODEL_METRICS_ON_OVERVIEW]))


@login_required
@requires(Perm.EDIT_MODEL)
def model_edit(request, model_id):
    model = selectors.model_detail(request.user, model_id)
    can_edit = Perm.EDIT_MODEL in permissions_in(request.user, model.context)
    form = ModelForm(request.POST or None, initial={
        "name": model.name, "description": model.description, "task": model.task,
        "tags": ", ".join(model.tag_names),
    })
    if request.method == "POST" and form.is_valid():
        try:
            services.model_update(actor=request.user, model=model, **form.cleaned_data)
        except USER_ERRORS as error:
            add_service_error(form, error)
        else:
            messages.success(request, "Model saved.")
            return redirect("dashboard:model-detail", model_id=model.pk)
    return render(request, "dashboard/models/edit.html", {
        "context": model.context, "model": model, "form": form, "can_edit": can_edit,
    }, status=400 if form.errors else 200)


@login_required
@requires(Perm.DELETE_MODEL)
def model_delete(request, model_id):
    model = selectors.model_detail(request.user, model_id)
    can_delete = Perm.DELETE_MODEL in permissions_in(request.user, model.context)
    form = DeleteModelForm(request.POST or None, model=model)
    if request.method == "POST" and form.is_valid():
        context_slug, name = model.context.slug, model.name
        services.model_delete(actor=request.user, model=model)
        messages.success(request, f"Model {name} and all its versions and files were deleted.")
        return redirect("dashboard:model-list", ctx=context_slug)
    return render(request, "dashboard/models/delete.html", {
        "context": model.context, "model": model, "form": form, "can_delete": can_delete,
        "version_count": len(model.version_numbers),
    }, status=400 if form.errors else 200)


# --- version tabs ------------------------------------------------------------------------------

@login_required
def version_detail(request, model_id, number):
    model, version = _model_and_version(request, model_id, number, shown=True)
    return _page(request, model, tab="details", version=version)


@login_required
@requires(Perm.EDIT_MODEL)
def version_edit(request, model_id, number):
    model, version = _model_and_version(request, model_id, number, shown=True)
    records = selectors.record_list(model.context)
    form = VersionForm(request.POST or None, initial=VersionForm.initial_for(version), records=records)
    if request.method == "POST" and form.is_valid():
        # Only what was changed: an untouched signature keeps the source it came from.
        changed = {key: form.cleaned_data[key] for key in form.changed_data}
        try:
            services.version_update(actor=request.user, version=version, **changed)
        except USER_ERRORS as error:
            add_service_error(form, error)
        else:
            messages.success(request, f"Version {version.number} saved.")
            return redirect("dashboard:version-detail", model_id=model.pk, number=version.number)
    return _page(request, model, tab="edit", version=version, form=form, status=400 if form.errors else 200)


@login_required
@require_POST
@requires(Perm.PUBLISH_VERSION)
def version_publish(request, model_id, number):
    model, version = _model_and_version(request, model_id, number)
    try:
        services.version_publish(actor=request.user, version=version)
    except USER_ERRORS as error:  # NotPublishable: the gate's own words
        messages.error(request, f"Version {version.number} was not published: {error.message}")
    else:
        messages.success(request, f"Version {version.number} is published; its files and fields are now frozen.")
    return redirect("dashboard:version-detail", model_id=model.pk, number=version.number)


@login_required
@requires(Perm.DELETE_MODEL)
def version_delete(request, model_id, number):
    model, version = _model_and_version(request, model_id, number, shown=True)
    can_delete = Perm.DELETE_MODEL in permissions_in(request.user, model.context)
    error = None
    if request.method == "POST":
        try:
            services.version_delete(actor=request.user, version=version)
        except USER_ERRORS as refused:  # an alias still points at it
            error = refused.message
        else:
            messages.success(request, f"Version {version.number} and its files were deleted.")
            return redirect("dashboard:model-detail", model_id=model.pk)
    return render(request, "dashboard/models/version_delete.html", {
        "context": model.context, "model": model, "version": version, "can_delete": can_delete, "error": error,
    }, status=409 if error else 200)


@login_required
@requires(Perm.EDIT_MODEL)
def version_create(request, model_id):
    model = selectors.model_detail(request.user, model_id)
    form = NewVersionForm(request.POST or None, request.FILES or None, records=selectors.record_list(model.context))
    if request.method == "POST" and form.is_valid():
        try:
            version = services.version_create(actor=request.user, model=model, **form.version_fields())
        except USER_ERRORS as error:
            add_service_error(form, error)
        else:
            return _after_create(request, model, version, form.cleaned_data["kind"], form.cleaned_data["file"])
    return _page(request, model, tab="new", selected=_selected_number(request), form=form,
                 status=400 if form.errors else 200)


def _after_create(request, model, version, kind, uploaded):
    """The version exists; store its first file if one came with the form."""
    if uploaded is None and request.POST.get("direct_upload") and kind:
        # The browser keeps the file and sends it straight to the bucket from the Formats tab
        # it lands on (static/dashboard/app.js): the web process never sees its bytes.
        messages.success(request, f"Version {version.number} created; sending its {kind} file…")
        return redirect("dashboard:version-formats", model_id=model.pk, number=version.number)
    if uploaded is None:
        messages.success(request, f"Version {version.number} created. Add a file in the Formats tab.")
        return redirect("dashboard:version-detail", model_id=model.pk, number=version.number)
    try:
        _store(request, version, kind, uploaded)
    except USER_ERRORS as error:
        messages.error(request, f"Version {version.number} was created, but its file was refused: {error.message}")
    except StorageUnavailable as error:
        messages.error(request, f"Version {version.number} was created, but its file was not stored: {error.message}")
    else:
        messages.success(request, f"Version {version.number} created; its {kind} file is being checked.")
    return redirect("dashboard:version-formats", model_id=model.pk, number=version.number)


def _store(request, version, kind, uploaded):
    return services.format_upload(
        actor=request.user, version=version, kind=kind, stream=UploadedFileStream(uploaded),
        content_length=uploaded.size, filename=uploaded.name or "",
        content_type=uploaded.content_type or "",
    )


@login_required
def version_formats(request, model_id, number):
    model, version = _model_and_version(request, model_id, number)
    return _formats_page(request, model, version, UploadForm())


def _formats_page(request, model, version, upload_form, status=200):
    formats = list(selectors.format_list(version))
    kinds = {fmt.kind for fmt in formats}
    failed_kind = upload_form.data.get("kind") if upload_form.is_bound else None
    return _page(
        request, model, tab="formats", version=version, formats=formats, upload_form=upload_form,
        free_kinds=[(kind, label) for kind, label in FormatKind.choices if kind not in kinds],
        can_add_format=len(formats) < settings.REGISTRY_MAX_FORMATS, max_formats=settings.REGISTRY_MAX_FORMATS,
        # A failed upload for a kind that exists came from that format's replace form.
        replace_failed=failed_kind if failed_kind in kinds else None,
        polled=POLLED_STATUSES, status=status,
    )


@login_required
@require_POST
@requires(Perm.EDIT_MODEL)
def format_upload(request, model_id, number):
    """The upload form without JavaScript: a multipart POST, streamed into the service."""
    model, version = _model_and_version(request, model_id, number)
    form = UploadForm(request.POST, request.FILES)
    status, retry_after = 400, None
    if form.is_valid():
        try:
            _store(request, version, form.cleaned_data["kind"], form.cleaned_data["file"])
        except USER_ERRORS as error:
            add_service_error(form, error)
        except StorageUnavailable as error:  # the file store failed: the same words as the API's 503/507
            add_service_error(form, error)
            status, retry_after = error.status_code, error.retry_after
        else:
            messages.success(request, f"The {form.cleaned_data['kind']} file was uploaded and is being checked.")
            return redirect("dashboard:version-formats", model_id=model.pk, number=version.number)
    response = _formats_page(request, model, version, form, status=status)
    if retry_after:
        response["Retry-After"] = str(retry_after)
    return response


@login_required
def format_status(request, model_id, number, kind):
    """The status part of one format, polled by htmx every 2 s until the status is final; its
    Download control comes along out of band, since a file in review needs an acknowledgement."""
    model, version = _model_and_version(request, model_id, number)
    fmt = selectors.format_get(version, kind)
    return render(request, "dashboard/models/partials/format_status.html", {
        "model": model, "version": version, "fmt": fmt, "polled": POLLED_STATUSES, "oob": True,
        "can_publish": Perm.PUBLISH_VERSION in permissions_in(request.user, model.context),
    })


@login_required
@require_POST
@requires(Perm.EDIT_MODEL)
def format_delete(request, model_id, number, kind):
    model, version = _model_and_version(request, model_id, number)
    fmt = selectors.format_get(version, kind)
    try:
        services.format_delete(actor=request.user, fmt=fmt)
    except USER_ERRORS as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"The {kind} format and its file were deleted.")
    return redirect("dashboard:version-formats", model_id=model.pk, number=version.number)


@login_required
@require_POST
@requires(Perm.EDIT_MODEL)
def format_manifest_flags(request, model_id, number, kind):
    """Required or optional, fails on tamper or warns: the format's place in the manifest."""
    model, version = _model_and_version(request, model_id, number)
    fmt = selectors.format_get(version, kind)
    try:
        services.format_update(actor=request.user, fmt=fmt, required="required" in request.POST,
                               fail_on_tamper="fail_on_tamper" in request.POST)
    except USER_ERRORS as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"The {kind} file's place in the manifest was saved.")
    return redirect("dashboard:version-formats", model_id=model.pk, number=version.number)


@login_required
def version_manifest(request, model_id, number):
    """The version's manifest as a JSON download; `?frozen=1` for the frozen one."""
    model, version = _model_and_version(request, model_id, number)
    frozen = request.GET.get("frozen") == "1"
    try:
        manifest = selectors.version_manifest(version, frozen=frozen)
    except Conflict as error:
        messages.error(request, error.message)
        return redirect("dashboard:version-formats", model_id=model.pk, number=version.number)
    name = f"{slugify(model.name) or 'model'}-v{version.number}-manifest{'-frozen' if frozen else ''}.json"
    response = JsonResponse(manifest, json_dumps_params={"indent": 2, "ensure_ascii": False})
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@login_required
def version_metrics(request, model_id, number):
    model, version = _model_and_version(request, model_id, number)
    metrics = list(selectors.metric_list(version))
    return _page(request, model, tab="metrics", version=version, metrics=metrics, charts=metric_charts(metrics))


# --- the model's own metrics, and one version metric across versions ------------------------------

@login_required
def model_metrics(request, model_id):
    """The model's own metrics (a chart per key and every value), and a chart of one version
    metric across versions (`?key=`, by default the first key any version has)."""
    model = selectors.model_detail(request.user, model_id)
    metrics = list(selectors.model_metric_list(model))
    keys = selectors.version_metric_keys(model)
    key = request.GET.get("key", "")
    if key not in keys:
        key = keys[0] if keys else ""
    across = selectors.metric_across_versions(model, key) if key else []
    numeric = [(point["version"], point["value"]) for point in across
               if isinstance(point["value"], (int, float)) and not isinstance(point["value"], bool)]
    return _page(request, model, tab="model-metrics", selected=_selected_number(request), metrics=metrics,
                 charts=metric_charts(metrics), version_metric_keys=keys, across_key=key, across=across,
                 across_chart=across_versions_chart(numeric, key=key) if numeric else "")


# --- aliases ---------------------------------------------------------------------------------------

@login_required
def model_aliases(request, model_id):
    model = selectors.model_detail(request.user, model_id)
    return _aliases_page(request, model, None)


def _aliases_page(request, model, form, status=200):
    published = [v for v in selectors.version_choices(model) if v.status == VersionStatus.PUBLISHED]
    if form is None:
        selected = _selected_number(request)
        numbers = [v.number for v in published]
        default = selected if selected in numbers else (numbers[0] if numbers else None)
        form = AliasForm(initial={"version": default}, published=published)
    protected = {row.name.casefold() for row in selectors.protected_alias_list(model.context)}
    aliases = list(selectors.alias_list(model))
    for alias in aliases:
        alias.protected = alias.name.casefold() in protected
    perms = permissions_in(request.user, model.context, model_id=model.pk)
    return _page(request, model, tab="aliases", selected=_selected_number(request), alias_form=form,
                 published=published, aliases=aliases, protected_names=sorted(protected),
                 may_move_protected=Perm.MOVE_PROTECTED_ALIAS in perms,
                 move_requests=guards.with_checks(selectors.alias_request_list(model=model, status=RequestStatus.PENDING)),
                 decided_requests=guards.with_checks(
                     selectors.alias_request_list(model=model).exclude(status=RequestStatus.PENDING)[:ALIAS_HISTORY_SHOWN]),
                 rollback_refusals=preflight.rollback_refusals(selectors.alias_rollback_targets(model)),
                 alias_moves=selectors.alias_history(model)[:ALIAS_HISTORY_SHOWN], status=status)


@login_required
@require_POST
@requires(Perm.PUBLISH_VERSION)
def alias_set(request, model_id):
    model = selectors.model_detail(request.user, model_id)
    published = [v for v in selectors.version_choices(model) if v.status == VersionStatus.PUBLISHED]
    form = AliasForm(request.POST, published=published)
    if form.is_valid():
        try:
            moved = services.alias_set(actor=request.user, model=model, name=form.cleaned_data["alias"],
                                       version_number=form.cleaned_data["version"],
                                       comment=form.cleaned_data["comment"])
        except USER_ERRORS as error:
            add_service_error(form, error)
        else:
            if not _requested(request, moved):
                messages.success(request, f"Alias {form.cleaned_data['alias']} now points to version "
                                          f"{form.cleaned_data['version']}.")
                _warn_breaking(request, moved)
            return redirect("dashboard:model-aliases", model_id=model.pk)
    return _aliases_page(request, model, form, status=400)


@login_required
@require_POST
@requires(Perm.PUBLISH_VERSION)
def alias_rollback(request, model_id, alias):
    model = selectors.model_detail(request.user, model_id)
    try:
        moved = services.alias_rollback(actor=request.user, model=model, name=alias)
    except USER_ERRORS as error:
        messages.error(request, error.message)
    else:
        if not _requested(request, moved):
            messages.success(request, f"Alias {alias} rolled back to version {moved.version.number}.")
            _warn_breaking(request, moved)
    return redirect("dashboard:model-aliases", model_id=model.pk)


def _warn_breaking(request, moved) -> None:
    """Say which breaking signature changes an alias move brought to the alias's callers."""
    if moved.breaking_changes:
        listed = " ".join(change.message for change in moved.breaking_changes[:5])
        more = f" (and {len(moved.breaking_changes) - 5} more)" if len(moved.breaking_changes) > 5 else ""
        messages.warning(request, f"Breaking for callers of {moved.name}: {listed}{more}")


@login_required
@require_POST
@requires(Perm.PUBLISH_VERSION)
def alias_delete(request, model_id, alias):
    model = selectors.model_detail(request.user, model_id)
    try:
        requested = services.alias_delete(actor=request.user, model=model, name=alias)
    except USER_ERRORS as error:  # a removal of it is pending already
        messages.error(request, error.message)
    else:
        if not _requested(request, requested):
            messages.success(request, f"Alias {alias} was removed; its history is kept.")
    return redirect("dashboard:model-aliases", model_id=model.pk)


def _requested(request, result) -> bool:
    """Say so when a protected alias's move became a move request; False when it just happened."""
    if not isinstance(result, AliasMoveRequest):
        return False
    messages.info(request, f"{result.alias_name} is protected: request #{result.pk} asks to "
                           f"{guards.describe(result).lower()}. Another publisher or an admin approves it "
                           f"(below, under Move requests).")
    return True


M = "models/<str:model_id>"
V = f"{M}/versions/<int:number>"

urlpatterns = [
    path(f"{M}/", model_detail, name="model-detail"),
    path(f"{M}/edit/", model_edit, name="model-edit"),
    path(f"{M}/delete/", model_delete, name="model-delete"),
    path(f"{M}/versions/new/", version_create, name="version-create"),
    path(f"{V}/", version_detail, name="version-detail"),
    path(f"{V}/edit/", version_edit, name="version-edit"),
    path(f"{V}/publish/", version_publish, name="version-publish"),
    path(f"{V}/delete/", version_delete, name="version-delete"),
    path(f"{V}/formats/", version_formats, name="version-formats"),
    path(f"{V}/formats/upload/", format_upload, name="format-upload"),
    path(f"{V}/formats/<str:kind>/status/", format_status, name="format-status"),
    path(f"{V}/formats/<str:kind>/delete/", format_delete, name="format-delete"),
    path(f"{V}/formats/<str:kind>/manifest/", format_manifest_flags, name="format-manifest-flags"),
    path(f"{V}/manifest.json", version_manifest, name="version-manifest"),
    path(f"{V}/metrics/", version_metrics, name="version-metrics"),
    path(f"{M}/metrics/", model_metrics, name="model-metrics"),
    path(f"{M}/aliases/", model_aliases, name="model-aliases"),
    path(f"{M}/aliases/set/", alias_set, name="alias-set"),
    path(f"{M}/aliases/<str:alias>/rollback/", alias_rollback, name="alias-rollback"),
    path(f"{M}/aliases/<str:alias>/delete/", alias_delete, name="alias-delete"),
]
