"""Helpers shared by the dashboard's views: forms show the services' errors next to fields."""

from __future__ import annotations

from django import forms

from registry.errors import RegistryError


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
