"""Single sign-on rules: which value of the provider's roles claim grants which role in which
context (registry/services/sso.py). Context admins manage the rules of their contexts, site
staff all of them; the rules apply at each sign-in."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import path
from django.views.decorators.http import require_POST

from dashboard.forms import SsoRuleForm
from dashboard.views.base import add_service_error, requires, requires_somewhere
from registry import selectors, services
from registry.errors import RegistryError
from registry.permissions import Perm, contexts_for, sso_rule_context
from registry.sso import provider_name, sso_enabled


def _managed_contexts(user):
    return list(contexts_for(user, Perm.MANAGE_CONTEXT).order_by("slug"))


def _page(request, *, form=None, status=200):
    contexts = _managed_contexts(request.user)
    return render(request, "dashboard/team/sso_rule_list.html", {
        "rules": selectors.sso_rule_list(request.user), "form": form or SsoRuleForm(contexts=contexts),
        "can_manage": bool(contexts), "sso_enabled": sso_enabled(), "sso_provider": provider_name(),
        "roles_claim": settings.REGISTRY_OIDC_ROLES_CLAIM, "password_signin": settings.REGISTRY_PASSWORD_SIGNIN,
    }, status=status)


@login_required
def sso_rule_list(request):
    return _page(request)


@login_required
@require_POST
@requires_somewhere(Perm.MANAGE_CONTEXT)
def sso_rule_create(request):
    form = SsoRuleForm(request.POST, contexts=_managed_contexts(request.user))
    if form.is_valid():
        data = form.cleaned_data
        try:
            context = sso_rule_context(request.user, data["context"])
            rule = services.sso_rule_create(actor=request.user, context=context, claim_value=data["claim_value"],
                                            role=data["role"])
        except RegistryError as error:
            add_service_error(form, error)
        else:
            messages.success(request, f"Whoever signs in with “{rule.claim_value}” is now {rule.role} in "
                                      f"{context.name}, from their next sign-in.")
            return redirect("dashboard:sso-rule-list")
    return _page(request, form=form, status=400)


@login_required
@require_POST
@requires(Perm.MANAGE_CONTEXT)
def sso_rule_delete(request, rule_id):
    rule = selectors.sso_rule_get(request.user, rule_id)
    removed = services.sso_rule_delete(actor=request.user, rule=rule)
    messages.success(request, f"The rule “{rule.claim_value}” → {rule.role} in {rule.context.name} is deleted; "
                              f"{removed} role{'s' if removed != 1 else ''} it granted {'were' if removed != 1 else 'was'} taken away.")
    return redirect("dashboard:sso-rule-list")


urlpatterns = [
    path("sso-rules/", sso_rule_list, name="sso-rule-list"),
    path("sso-rules/new/", sso_rule_create, name="sso-rule-create"),
    path("sso-rules/<str:rule_id>/delete/", sso_rule_delete, name="sso-rule-delete"),
]
