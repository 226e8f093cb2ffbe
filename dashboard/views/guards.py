"""Guards of a context: its settings page (protected aliases), the move requests of protected
aliases (a request's page, approve / reject / withdraw with their confirmation pages), and the
API tokens that can act in the context (its admins see and revoke them).

Writes go through registry.services; who may make them is decided once per request by
@requires (registry.permissions), and the service keeps the rules (a second person decides).
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from dashboard.forms import DecisionForm, ProtectedAliasForm
from dashboard.views.base import add_service_error, requires
from registry import selectors, services
from registry.errors import Conflict, InvalidInput, NotFound
from registry.models import MoveAction, RequestStatus
from registry.permissions import Perm, permissions_in, require

USER_ERRORS = (InvalidInput, Conflict, NotFound)


# --- the context's settings: protected aliases ----------------------------------------------

def _settings_page(request, context, *, form=None, status=200):
    return render(request, "dashboard/team/context_settings.html", {
        "context": context, "protected": selectors.protected_alias_list(context),
        "pending": selectors.alias_request_list(context=context, status=RequestStatus.PENDING)[:50],
        "form": form or ProtectedAliasForm(),
        "can_manage": Perm.MANAGE_CONTEXT in permissions_in(request.user, context),
    }, status=status)


@login_required
def context_settings(request, ctx):
    return _settings_page(request, selectors.context_get(request.user, ctx))


@login_required
@require_POST
@requires(Perm.MANAGE_CONTEXT)
def protected_alias_add(request, ctx):
    context = selectors.context_get(request.user, ctx)
    form = ProtectedAliasForm(request.POST)
    if form.is_valid():
        try:
            row = services.protected_alias_add(actor=request.user, context=context, name=form.cleaned_data["alias"])
        except USER_ERRORS as error:
            add_service_error(form, error)
        else:
            messages.success(request, f"Alias {row.name} is protected in {context.name}: publishers' moves of it "
                                      f"now wait for a second publisher or an admin.")
            return redirect("dashboard:context-settings", ctx=context.slug)
    return _settings_page(request, context, form=form, status=400)


@login_required
@require_POST
@requires(Perm.MANAGE_CONTEXT)
def protected_alias_remove(request, ctx, name):
    context = selectors.context_get(request.user, ctx)
    services.protected_alias_remove(actor=request.user, context=context, name=name)
    messages.success(request, f"Alias {name} is no longer protected in {context.name}.")
    return redirect("dashboard:context-settings", ctx=context.slug)


# --- move requests ----------------------------------------------------------------------------

def describe(move_request) -> str:
    """The move a request asks for, in words."""
    if move_request.action == MoveAction.DELETE:
        return f"Remove {move_request.alias_name} (at version {move_request.from_number})"
    verb = "Roll back" if move_request.action == MoveAction.ROLLBACK else ("Move" if move_request.from_number else "Set")
    start = f" from version {move_request.from_number}" if move_request.from_number else ""
    return f"{verb} {move_request.alias_name}{start} to version {move_request.to_number}"


def with_checks(requests) -> list:
    """Requests with their signature changes (`changes`, `breaking`) and words (`described`)."""
    rows = list(requests)
    for row in rows:
        row.changes = selectors.alias_request_check(row)
        row.breaking = [change for change in row.changes if change.breaking]
        row.described = describe(row)
    return rows


def _decisions(request, model, move_request) -> dict:
    """Which of approve / reject / withdraw the user is offered, and why not."""
    perms = permissions_in(request.user, model.context, model_id=model.pk)
    own = move_request.requested_by_id == request.user.pk
    pending = move_request.status == RequestStatus.PENDING
    may_decide = Perm.PUBLISH_VERSION in perms and (not own or Perm.MOVE_PROTECTED_ALIAS in perms)
    return {"can_decide": pending and may_decide, "can_withdraw": pending and own and Perm.PUBLISH_VERSION in perms,
            "own": own}


@login_required
def alias_request_detail(request, model_id, request_id):
    model = selectors.model_detail(request.user, model_id)
    move_request = with_checks([selectors.alias_request_get(model, request_id)])[0]
    return render(request, "dashboard/models/alias_request.html", {
        "context": model.context, "model": model, "move_request": move_request, "form": DecisionForm(),
        **_decisions(request, model, move_request),
    })


DECISIONS = {
    "approve": (services.alias_request_approve, "Approve", "primary", "approved: the alias moved"),
    "reject": (services.alias_request_reject, "Reject", "danger", "rejected: the alias stays where it is"),
    "withdraw": (services.alias_request_withdraw, "Withdraw", "", "withdrawn"),
}


@login_required
def alias_request_confirm(request, model_id, request_id, decision):
    """The confirmation card of a decision (an in-page dialog on the Aliases tab)."""
    if decision not in DECISIONS:
        raise NotFound("No such action.")
    model = selectors.model_get(request.user, model_id)
    move_request = with_checks([selectors.alias_request_get(model, request_id)])[0]
    _, label, tone, _ = DECISIONS[decision]
    offered = _decisions(request, model, move_request)
    allowed = offered["can_withdraw"] if decision == "withdraw" else offered["can_decide"]
    refusal = "" if allowed else (
        f"Request #{move_request.pk} was {move_request.status} already." if move_request.status != RequestStatus.PENDING
        else "You asked for this move: another publisher or an admin decides it." if offered["own"]
        and decision != "withdraw" else "Only publishers decide, and only the author withdraws.")
    return render(request, "dashboard/models/alias_request_confirm.html", {
        "context": model.context, "model": model, "move_request": move_request, "decision": decision,
        "label": label, "tone": tone, "refusal": refusal, "form": DecisionForm(),
    })


@login_required
@require_POST
@requires(Perm.PUBLISH_VERSION)
def alias_request_decide(request, model_id, request_id, decision):
    if decision not in DECISIONS:
        raise NotFound("No such action.")
    model = selectors.model_get(request.user, model_id)
    move_request = selectors.alias_request_get(model, request_id)
    service, _, _, done = DECISIONS[decision]
    form = DecisionForm(request.POST)
    comment = form.cleaned_data["comment"] if form.is_valid() else ""
    kwargs = {} if decision == "withdraw" else {"comment": comment}
    try:  # PermissionDenied (the author approving) is left to the middleware: 403
        service(actor=request.user, model=model, request=move_request, **kwargs)
    except USER_ERRORS as error:
        messages.error(request, f"Request #{move_request.pk} was not {decision}d: {error.message}")
    else:
        messages.success(request, f"Request #{move_request.pk} ({describe(move_request).lower()}) {done}.")
    return redirect("dashboard:model-aliases", model_id=model.pk)


# --- tokens that can act in a context ------------------------------------------------------------

@login_required
def context_token_list(request, ctx):
    """The context's admins see the live tokens of its members that can act in it."""
    context = selectors.context_get(request.user, ctx)
    require(request.user, context, Perm.MANAGE_CONTEXT)
    tokens = selectors.context_token_list(context)[:200]
    return render(request, "dashboard/team/context_tokens.html", {
        "context": context, "tokens": tokens, "now": timezone.now(), "can_manage": True,
    })


@login_required
@requires(Perm.MANAGE_CONTEXT)
def context_token_revoke(request, ctx, token_id):
    """GET asks for confirmation (an in-page dialog); POST revokes, for the context's admins."""
    context = selectors.context_get(request.user, ctx)
    require(request.user, context, Perm.MANAGE_CONTEXT)
    token = selectors.context_token_get(context, token_id)
    if request.method == "POST":
        services.token_revoke(actor=request.user, token=token, context=context)
        messages.success(request, f"{token.user.username}'s token “{token.name or token.prefix}” was revoked; "
                                  f"requests using it now fail.")
        return redirect("dashboard:context-token-list", ctx=context.slug)
    back = reverse("dashboard:context-token-list", kwargs={"ctx": context.slug})
    return render(request, "dashboard/models/confirm.html", {
        "context": context, "title": f"Revoke {token.user.username}'s token “{token.name or token.prefix}”?",
        "question": f"The token {token.prefix}… stops working everywhere, in every context it could reach. "
                    f"{token.user.username} can create another. This is recorded in the audit log.",
        "action": reverse("dashboard:context-token-revoke", kwargs={"ctx": context.slug, "token_id": token.pk}),
        "confirm_label": "Revoke the token", "back": back, "allowed": True, "tone": "danger", "method": "post",
    })


M = "models/<str:model_id>"

urlpatterns = [
    path("c/<slug:ctx>/settings/", context_settings, name="context-settings"),
    path("c/<slug:ctx>/settings/protected-aliases/", protected_alias_add, name="protected-alias-add"),
    path("c/<slug:ctx>/settings/protected-aliases/<str:name>/remove/", protected_alias_remove,
         name="protected-alias-remove"),
    path("c/<slug:ctx>/tokens/", context_token_list, name="context-token-list"),
    path("c/<slug:ctx>/tokens/<int:token_id>/revoke/", context_token_revoke, name="context-token-revoke"),
    path(f"{M}/alias-requests/<int:request_id>/", alias_request_detail, name="alias-request-detail"),
    path(f"{M}/alias-requests/<int:request_id>/<str:decision>/confirm/", alias_request_confirm,
         name="alias-request-confirm"),
    path(f"{M}/alias-requests/<int:request_id>/<str:decision>/", alias_request_decide, name="alias-request-decide"),
]
