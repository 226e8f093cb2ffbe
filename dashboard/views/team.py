"""Context-wide pages: training records, members, audit log, API tokens, version comparison.

Views parse input, call one selector or service and render. Who may do what is decided by
registry.permissions: once per request by the @requires a writing view names, and read
elsewhere only to show or hide buttons; a rule a user broke comes back as a RegistryError shown
next to the field.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from dashboard.forms import MemberAddForm, MemberRoleForm, RecordForm, TokenForm
from dashboard.views.base import add_service_error, page_numbers, requires
from registry import compare, keyset, selectors, services
from registry.errors import NotFound, RegistryError
from registry.models import Role
from registry.permissions import Perm, effective_role, permissions_in

RECORDS_PER_PAGE = 25
AUDIT_PER_PAGE = 50
AUDIT_OBJECT_TYPES = [
    ("model", "Model"), ("version", "Version"), ("format", "Format (file)"), ("alias", "Alias"),
    ("trainingrecord", "Training record"), ("trustedimport", "Trusted import"), ("membership", "Membership"),
    ("context", "Context"), ("webhook", "Webhook"), ("ssorule", "Single sign-on rule"),
    ("protectedalias", "Protected alias"), ("aliasmoverequest", "Alias move request"), ("apitoken", "API token"),
]
# Suggestions for the action filter, which matches a prefix ("format" finds every format.* event).
AUDIT_ACTION_HINTS = [
    "model", "version", "version.publish", "format", "format.tamper", "format.tamper_reported", "format.corrupt", "format.quarantined",
    "format.review", "format.trusted", "format.download_not_ready", "trusted_import", "webhook",
    "alias", "alias.protect", "alias.request", "record", "member", "metric.log", "sso_rule", "token",
]


# --- training records -------------------------------------------------------------------

@login_required
def record_list(request, ctx):
    context = selectors.context_get(request.user, ctx)
    search = request.GET.get("q", "").strip()
    page = Paginator(selectors.record_list(context, search=search), RECORDS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "dashboard/team/record_list.html", {
        "context": context, "page": page, "pages": page_numbers(page), "search": search,
        "can_edit": Perm.EDIT_MODEL in permissions_in(request.user, context), "form": RecordForm(),
    })


@login_required
@requires(Perm.EDIT_MODEL)
def record_create(request, ctx):
    context = selectors.context_get(request.user, ctx)
    form = RecordForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            record = services.record_create(actor=request.user, context=context, **form.cleaned_data)
        except RegistryError as error:
            add_service_error(form, error)
        else:
            messages.success(request, f"Training record “{record.name}” created.")
            return redirect("dashboard:record-detail", record_id=record.pk)
    return render(request, "dashboard/team/record_form.html", {
        "context": context, "form": form, "can_edit": Perm.EDIT_MODEL in permissions_in(request.user, context),
    }, status=400 if form.errors else 200)


@login_required
def record_detail(request, record_id):
    record = selectors.record_get(request.user, record_id)
    perms = permissions_in(request.user, record.context)
    return render(request, "dashboard/team/record_detail.html", {
        "context": record.context, "record": record, "versions": selectors.record_versions(record),
        "can_edit": Perm.EDIT_MODEL in perms, "can_delete": Perm.DELETE_MODEL in perms,
    })


@login_required
@requires(Perm.EDIT_MODEL)
def record_edit(request, record_id):
    record = selectors.record_get(request.user, record_id)
    initial = {"name": record.name, "uri": record.uri, "checksum": record.checksum, "description": record.description}
    form = RecordForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            record = services.record_update(actor=request.user, record=record, **form.cleaned_data)
        except RegistryError as error:
            add_service_error(form, error)
        else:
            messages.success(request, "Training record saved.")
            return redirect("dashboard:record-detail", record_id=record.pk)
    return render(request, "dashboard/team/record_form.html", {
        "context": record.context, "record": record, "form": form,
        "can_edit": Perm.EDIT_MODEL in permissions_in(request.user, record.context),
    }, status=400 if form.errors else 200)


@login_required
@requires(Perm.DELETE_MODEL)
def record_delete(request, record_id):
    """GET asks for confirmation; POST deletes (irreversible)."""
    record = selectors.record_get(request.user, record_id)
    error = None
    if request.method == "POST":
        try:
            services.record_delete(actor=request.user, record=record)
        except RegistryError as exc:
            error = exc
        else:
            messages.success(request, f"Training record “{record.name}” deleted.")
            return redirect("dashboard:record-list", ctx=record.context.slug)
    return render(request, "dashboard/team/record_delete.html", {
        "context": record.context, "record": record, "error": error,
        "can_delete": Perm.DELETE_MODEL in permissions_in(request.user, record.context),
    }, status=error.status_code if error else 200)


# --- members and roles ------------------------------------------------------------------

def _principal(membership) -> dict:
    return {"group": membership.group.name} if membership.group_id else {"username": membership.user.username}


def _member_page(request, context, *, add_form=None, error_row=None, error_message="", status=200):
    return render(request, "dashboard/team/member_list.html", {
        "context": context, "members": selectors.member_list(context), "roles": Role.choices,
        "add_form": add_form or MemberAddForm(), "error_row": error_row, "error_message": error_message,
        "my_role": effective_role(request.user, context),
        "can_manage": Perm.MANAGE_CONTEXT in permissions_in(request.user, context),
    }, status=status)


@login_required
def member_list(request, ctx):
    return _member_page(request, selectors.context_get(request.user, ctx))


@login_required
@require_POST
@requires(Perm.MANAGE_CONTEXT)
def member_add(request, ctx):
    context = selectors.context_get(request.user, ctx)
    form = MemberAddForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            membership = services.membership_set(
                actor=request.user, context=context, role=data["role"], create_only=True,
                username=data["username"].strip() or None, group=data["group"].strip() or None,
            )
        except RegistryError as error:
            add_service_error(form, error)
        else:
            messages.success(request, f"{membership.principal_name} is now {membership.role} in {context.name}.")
            return redirect("dashboard:member-list", ctx=context.slug)
    return _member_page(request, context, add_form=form, status=400)


@login_required
@require_POST
@requires(Perm.MANAGE_CONTEXT)
def member_role(request, ctx, membership_id):
    context = selectors.context_get(request.user, ctx)
    membership = selectors.member_get(context, membership_id, hand_granted=True)
    form = MemberRoleForm(request.POST)
    if not form.is_valid():
        return _member_page(request, context, error_row=membership.pk, error_message="Choose one of the roles.", status=400)
    try:
        services.membership_set(actor=request.user, context=context, role=form.cleaned_data["role"],
                                **_principal(membership))
    except RegistryError as error:
        return _member_page(request, context, error_row=membership.pk, error_message=error.message, status=error.status_code)
    messages.success(request, f"{membership.principal_name} is now {form.cleaned_data['role']}.")
    return redirect("dashboard:member-list", ctx=context.slug)


@login_required
@requires(Perm.MANAGE_CONTEXT)
def member_remove(request, ctx, membership_id):
    """GET asks for confirmation; POST takes the role away."""
    context = selectors.context_get(request.user, ctx)
    membership = selectors.member_get(context, membership_id, hand_granted=True)
    error = None
    if request.method == "POST":
        try:
            services.membership_remove(actor=request.user, context=context, **_principal(membership))
        except RegistryError as exc:
            error = exc
        else:
            messages.success(request, f"{membership.principal_name} no longer has a role in {context.name}.")
            return redirect("dashboard:member-list", ctx=context.slug)
    return render(request, "dashboard/team/member_remove.html", {
        "context": context, "membership": membership, "error": error,
        "removing_self": membership.user_id == request.user.pk,
        "can_manage": Perm.MANAGE_CONTEXT in permissions_in(request.user, context),
    }, status=error.status_code if error else 200)


# --- audit log --------------------------------------------------------------------------

@login_required
def audit_list(request, ctx):
    context = selectors.context_get(request.user, ctx)
    filters = {name: request.GET.get(name, "").strip() for name in ("action", "actor", "object_type", "object_id")}
    events = selectors.audit_list(context, **filters)
    # Millions of events: pages by cursor (registry/keyset.py), without a count.
    page = keyset.paginate(events, cursor=request.GET.get("cursor") or None, size=AUDIT_PER_PAGE)
    return render(request, "dashboard/team/audit_list.html", {
        "context": context, "page": page, "filters": filters,
        "filtered": any(filters.values()), "object_types": AUDIT_OBJECT_TYPES, "action_hints": AUDIT_ACTION_HINTS,
    })


# --- API tokens -------------------------------------------------------------------------

def _nav_context(request):
    """The context whose navigation the token pages keep: `?ctx=` (the page the user came from),
    or the user's only context. Tokens belong to the user, not to a context."""
    slug = request.GET.get("ctx", "")
    if slug:
        try:
            return selectors.context_get(request.user, slug)
        except NotFound:
            return None
    contexts = list(selectors.context_list(request.user)[:2])
    return contexts[0] if len(contexts) == 1 else None


def _token_page(request, *, form=None, created=None, plain_token="", status=200):
    return render(request, "dashboard/team/token_list.html", {
        "tokens": selectors.token_list(request.user), "now": timezone.now(),
        "form": form or TokenForm(contexts=selectors.context_list(request.user)),
        "created": created, "plain_token": plain_token, "context": _nav_context(request),
    }, status=status)


@login_required
def token_list(request):
    return _token_page(request)


@never_cache
@login_required
@require_POST
def token_create(request):
    """Create a token and show it in this response only: it is stored hashed and never shown again.

    Rendering instead of redirecting keeps the plain token out of the session store; the
    response is marked no-store so no cache keeps it either.
    """
    form = TokenForm(request.POST, contexts=selectors.context_list(request.user))
    if form.is_valid():
        try:
            token, plain = services.token_create(actor=request.user, user=request.user, **form.service_arguments())
        except RegistryError as error:
            add_service_error(form, error)
        else:
            return _token_page(request, created=selectors.token_get(request.user, token.pk), plain_token=plain)
    return _token_page(request, form=form, status=400)


@login_required
def token_revoke(request, token_id):
    """GET asks for confirmation; POST revokes (irreversible). Only the user's own tokens exist here."""
    token = selectors.token_get(request.user, token_id)
    if request.method == "POST":
        services.token_revoke(actor=request.user, token=token)
        messages.success(request, f"Token “{token.name or token.prefix}” revoked; requests using it now fail.")
        context = _nav_context(request)
        return redirect(reverse("dashboard:token-list") + (f"?ctx={context.slug}" if context else ""))
    return render(request, "dashboard/team/token_revoke.html", {"token": token, "context": _nav_context(request)})


# --- version comparison -----------------------------------------------------------------

def _version_number(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


@login_required
def version_compare(request, model_id):
    model = selectors.model_get(request.user, model_id)
    versions = list(selectors.version_list(model))
    by_number = {version.number: version for version in versions}
    page = {"context": model.context, "model": model, "versions": versions}
    if len(versions) < 2:
        return render(request, "dashboard/team/compare.html", page)
    a_number = _version_number(request.GET.get("a")) or versions[-2].number
    b_number = _version_number(request.GET.get("b")) or versions[-1].number
    for number in (a_number, b_number):
        if number not in by_number:
            raise NotFound(f"Model '{model.name}' has no version {number}.")
    a, b = by_number[a_number], by_number[b_number]
    comparison = compare.compare_versions(
        compare.snapshot(a, selectors.metric_latest(a)), compare.snapshot(b, selectors.metric_latest(b)),
    )
    return render(request, "dashboard/team/compare.html", {**page, "a": a, "b": b, "comparison": comparison})


urlpatterns = [
    path("c/<slug:ctx>/records/", record_list, name="record-list"),
    path("c/<slug:ctx>/records/new/", record_create, name="record-create"),
    path("records/<str:record_id>/", record_detail, name="record-detail"),
    path("records/<str:record_id>/edit/", record_edit, name="record-edit"),
    path("records/<str:record_id>/delete/", record_delete, name="record-delete"),
    path("c/<slug:ctx>/members/", member_list, name="member-list"),
    path("c/<slug:ctx>/members/add/", member_add, name="member-add"),
    path("c/<slug:ctx>/members/<int:membership_id>/role/", member_role, name="member-role"),
    path("c/<slug:ctx>/members/<int:membership_id>/remove/", member_remove, name="member-remove"),
    path("c/<slug:ctx>/audit/", audit_list, name="audit-list"),
    path("tokens/", token_list, name="token-list"),
    path("tokens/new/", token_create, name="token-create"),
    path("tokens/<int:token_id>/revoke/", token_revoke, name="token-revoke"),
    path("models/<str:model_id>/compare/", version_compare, name="compare"),
]
