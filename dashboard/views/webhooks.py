"""A context's webhooks (admins only, reading included: URLs and delivery logs are theirs): the
list with the form that registers one, and a hook's page with its deliveries, its settings,
"send test event", secret rotation and delete. Writes go through registry.services.webhooks.
"""

from __future__ import annotations

from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import path
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from dashboard.forms import WebhookForm
from dashboard.views.base import add_service_error, requires
from registry import keyset, selectors, services
from registry.errors import RegistryError
from registry.models import DeliveryStatus
from registry.permissions import Perm

DELIVERIES_PER_PAGE = 25


def webhook_view(*, post_only: bool = True, no_store: bool = False):
    """Decorate a view of one hook: signed in, MANAGE_WEBHOOKS in its context decided once by
    @requires (for reading too when not `post_only`: a hook's URL and log are the admins'), and
    the view called as `view(request, context, webhook)` with the hook its URL names (404 when
    the context or the hook is not visible). `no_store` for a response that shows a secret."""
    def decorate(view):
        @wraps(view)
        def loaded(request, ctx, webhook_id):
            context = selectors.context_get(request.user, ctx)
            return view(request, context, selectors.webhook_get(context, webhook_id))

        decided = requires(Perm.MANAGE_WEBHOOKS, to_read=not post_only)(loaded)
        if post_only:
            decided = require_POST(decided)
        decided = login_required(decided)
        return never_cache(decided) if no_store else decided

    return decorate


def _to_detail(context, webhook):
    return redirect("dashboard:webhook-detail", ctx=context.slug, webhook_id=webhook.pk)


def _list_page(request, context, *, form=None, created=None, secret="", status=200):
    return render(request, "dashboard/team/webhook_list.html", {
        "context": context, "webhooks": selectors.webhook_list(context), "form": form or WebhookForm(),
        "created": created, "secret": secret,
    }, status=status)


@login_required
@requires(Perm.MANAGE_WEBHOOKS, to_read=True)
def webhook_list(request, ctx):
    return _list_page(request, selectors.context_get(request.user, ctx))


@never_cache
@login_required
@require_POST
@requires(Perm.MANAGE_WEBHOOKS)
def webhook_create(request, ctx):
    """Register a hook and show its secret in this response only (rendered, not redirected, so
    the secret never sits in the session; no-store, so no cache keeps it)."""
    context = selectors.context_get(request.user, ctx)
    form = WebhookForm(request.POST)
    if form.is_valid():
        try:
            webhook, secret = services.webhook_create(actor=request.user, context=context, **form.cleaned_data)
        except RegistryError as error:
            add_service_error(form, error)
        else:
            return _list_page(request, context, created=webhook, secret=secret)
    return _list_page(request, context, form=form, status=400)


def _detail_page(request, context, webhook, *, form=None, secret="", status=200):
    wanted = request.GET.get("status", "")
    if wanted not in DeliveryStatus.values:
        wanted = ""
    deliveries = selectors.webhook_delivery_list(webhook, status=wanted)
    page = keyset.paginate(deliveries, cursor=request.GET.get("cursor") or None, size=DELIVERIES_PER_PAGE)
    initial = {"url": webhook.url, "events": webhook.events, "description": webhook.description}
    return render(request, "dashboard/team/webhook_detail.html", {
        "context": context, "webhook": webhook, "page": page, "status_filter": wanted,
        "statuses": DeliveryStatus.choices, "form": form or WebhookForm(initial=initial), "secret": secret,
    }, status=status)


@webhook_view(post_only=False)
def webhook_detail(request, context, webhook):
    return _detail_page(request, context, webhook)


@webhook_view()
def webhook_edit(request, context, webhook):
    form = WebhookForm(request.POST)
    if form.is_valid():
        try:
            services.webhook_update(actor=request.user, webhook=webhook, **form.cleaned_data)
        except RegistryError as error:
            add_service_error(form, error)
        else:
            messages.success(request, "Webhook saved.")
            return _to_detail(context, webhook)
    return _detail_page(request, context, webhook, form=form, status=400)


@webhook_view()
def webhook_toggle(request, context, webhook):
    """Enable a disabled hook, or disable an enabled one (its pending deliveries are cancelled)."""
    webhook = services.webhook_update(actor=request.user, webhook=webhook, enabled=not webhook.enabled)
    messages.success(request, f"Webhook {'enabled' if webhook.enabled else 'disabled'}.")
    return _to_detail(context, webhook)


@webhook_view()
def webhook_test(request, context, webhook):
    services.webhook_test(actor=request.user, webhook=webhook)
    messages.success(request, "Test event queued: its delivery is listed below (reload to see the answer).")
    return _to_detail(context, webhook)


@webhook_view(no_store=True)
def webhook_rotate_secret(request, context, webhook):
    webhook, secret = services.webhook_secret_rotate(actor=request.user, webhook=webhook)
    return _detail_page(request, context, selectors.webhook_get(context, webhook.pk), secret=secret)


@webhook_view(post_only=False)
def webhook_delete(request, context, webhook):
    """GET asks for confirmation; POST deletes the hook and its deliveries."""
    if request.method == "POST":
        services.webhook_delete(actor=request.user, webhook=webhook)
        messages.success(request, f"Webhook {webhook.url} deleted.")
        return redirect("dashboard:webhook-list", ctx=context.slug)
    return render(request, "dashboard/team/webhook_delete.html", {"context": context, "webhook": webhook})


urlpatterns = [
    path("c/<slug:ctx>/webhooks/", webhook_list, name="webhook-list"),
    path("c/<slug:ctx>/webhooks/add/", webhook_create, name="webhook-create"),
    path("c/<slug:ctx>/webhooks/<str:webhook_id>/", webhook_detail, name="webhook-detail"),
    path("c/<slug:ctx>/webhooks/<str:webhook_id>/edit/", webhook_edit, name="webhook-edit"),
    path("c/<slug:ctx>/webhooks/<str:webhook_id>/toggle/", webhook_toggle, name="webhook-toggle"),
    path("c/<slug:ctx>/webhooks/<str:webhook_id>/test/", webhook_test, name="webhook-test"),
    path("c/<slug:ctx>/webhooks/<str:webhook_id>/rotate-secret/", webhook_rotate_secret,
         name="webhook-rotate-secret"),
    path("c/<slug:ctx>/webhooks/<str:webhook_id>/delete/", webhook_delete, name="webhook-delete"),
]
