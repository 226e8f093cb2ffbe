"""Trusted imports: the context's page (list, trust, revoke) and the approval of a format's
imports from its Formats tab. Writes go through registry.services.trusted_imports; who may
make them (publish-version) is decided once per request by @requires.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from dashboard.forms import TrustedImportForm
from dashboard.views.base import add_service_error, page_numbers, requires
from registry import selectors, services
from registry.errors import Conflict, InvalidInput
from registry.permissions import Perm, permissions_in

TRUSTED_PER_PAGE = 50
USER_ERRORS = (InvalidInput, Conflict)


def _list_page(request, context, *, form=None, status=200):
    page = Paginator(selectors.trusted_import_list(context), TRUSTED_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "dashboard/team/trusted_import_list.html", {
        "context": context, "page": page, "pages": page_numbers(page), "form": form or TrustedImportForm(),
        "can_publish": Perm.PUBLISH_VERSION in permissions_in(request.user, context),
    }, status=status)


@login_required
def trusted_import_list(request, ctx):
    return _list_page(request, selectors.context_get(request.user, ctx))


@login_required
@require_POST
@requires(Perm.PUBLISH_VERSION)
def trusted_import_add(request, ctx):
    context = selectors.context_get(request.user, ctx)
    form = TrustedImportForm(request.POST)
    if form.is_valid():
        try:
            rows = services.trusted_imports_add(actor=request.user, context=context,
                                                names=form.cleaned_data["imports"], reason=form.cleaned_data["reason"])
        except USER_ERRORS as error:
            add_service_error(form, error)
        else:
            messages.success(request, f"Trusted in {context.name}: {', '.join(row.name for row in rows)}. "
                                      "Files in review that import nothing else are now ready.")
            return redirect("dashboard:trusted-import-list", ctx=context.slug)
    return _list_page(request, context, form=form, status=400)


@login_required
@require_POST
@requires(Perm.PUBLISH_VERSION)
def trusted_import_revoke(request, ctx, trusted_id):
    context = selectors.context_get(request.user, ctx)
    row = selectors.trusted_import_get(context, trusted_id)
    reopened = services.trusted_import_revoke(actor=request.user, context=context, name=row.name)
    back = f" {len(reopened)} draft file{'s' if len(reopened) != 1 else ''} went back to review." if reopened else ""
    messages.success(request, f"{row.name} is no longer trusted in {context.name}.{back}")
    return redirect("dashboard:trusted-import-list", ctx=context.slug)


@login_required
@require_POST
@requires(Perm.PUBLISH_VERSION)
def format_imports_approve(request, model_id, number, kind):
    """The "Approve these imports" form of a format in review (Formats tab)."""
    model = selectors.model_get(request.user, model_id)
    version = selectors.version_get(model, number)
    fmt = selectors.format_get(version, kind)
    try:
        fmt = services.format_imports_approve(actor=request.user, fmt=fmt, reason=request.POST.get("reason", ""))
    except USER_ERRORS as error:
        messages.error(request, f"The imports of the {kind} file were not approved: {error.message}")
    else:
        messages.success(request, f"The imports of the {kind} file are now trusted in {model.context.name}; "
                                  f"the file is {fmt.get_status_display().lower()}.")
    url = reverse("dashboard:version-formats", kwargs={"model_id": model.pk, "number": version.number})
    return redirect(f"{url}#format-{kind}")


urlpatterns = [
    path("c/<slug:ctx>/trusted-imports/", trusted_import_list, name="trusted-import-list"),
    path("c/<slug:ctx>/trusted-imports/add/", trusted_import_add, name="trusted-import-add"),
    path("c/<slug:ctx>/trusted-imports/<int:trusted_id>/revoke/", trusted_import_revoke,
         name="trusted-import-revoke"),
    path("models/<str:model_id>/versions/<int:number>/formats/<str:kind>/approve-imports/", format_imports_approve,
         name="format-approve-imports"),
]
