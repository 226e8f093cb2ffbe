"""Helpers shared by the dashboard's views: the permission a view's writes need, and forms
that show the services' errors next to fields."""

from __future__ import annotations

from functools import wraps

from django import forms

from registry.errors import RegistryError
from registry.permissions import Perm, context_of, has_perm, require, require_somewhere


def requires(permission: Perm, *, to_read: bool = False):
    """Decorate a view whose POST writes: the user needs `permission` in the context of the
    object its URL names, else 403, decided before the form is read (a viewer gets 403 whatever
    the form holds). A GET (the page, the form) needs only to see the object, unless `to_read`
    (a page showing what only holders of `permission` may see: a context's webhooks). An object
    that does not exist, or that the user cannot see, is left to the view's own read: 404."""
    def decorate(view):
        @wraps(view)
        def decided(request, *args, **kwargs):
            if request.method == "POST" or to_read:
                context = context_of(slug=kwargs.get("ctx"), model_id=kwargs.get("model_id"),
                                     version_number=kwargs.get("number"), record_id=kwargs.get("record_id"),
                                     sso_rule_id=kwargs.get("rule_id"))
                if context is not None and has_perm(request.user, context, Perm.VIEW_MODEL):
                    require(request.user, context, permission)
            return view(request, *args, **kwargs)

        decided.required_permission = permission
        return decided

    return decorate


def requires_somewhere(permission: Perm):
    """Decorate a view whose POST writes in the context its form names: the user needs
    `permission` in some context, else 403, decided before the form is read; the context the
    form names is then checked by the view (registry.permissions.sso_rule_context)."""
    def decorate(view):
        @wraps(view)
        def decided(request, *args, **kwargs):
            if request.method == "POST":
                require_somewhere(request.user, permission)
            return view(request, *args, **kwargs)

        decided.required_permission = permission
        return decided

    return decorate


def add_service_error(form: forms.Form, error: RegistryError) -> None:
    """Put a service's rule error on the field it names (or on the whole form)."""
    field = error.field if error.field in form.fields else None
    form.add_error(field, error.message)


def page_numbers(page) -> list[int | None]:
    """Page links to show: first, last and neighbours of the current page (None = gap)."""
    total, current = page.paginator.num_pages, page.number
    wanted = sorted({1, total, *range(max(1, current - 2), min(total, current + 2) + 1)})
    shown: list[int | None] = []
    for number in wanted:
        if shown and number - shown[-1] > 1:
            shown.append(None)
        shown.append(number)
    return shown
