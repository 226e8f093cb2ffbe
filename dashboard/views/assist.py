"""Help while a form is filled in: a Markdown preview and suggestions of members to add; and
the site's icon where no page names it.

Both answer small fragments to the page's own scripts (htmx and static/dashboard/app.js); the
forms they help work without them.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.templatetags.static import static
from django.urls import path
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from registry import selectors
from registry.markdown import render_markdown
from registry.permissions import Perm, require

# A description is a few screens of text; a preview of more would only cost the server.
PREVIEW_MAX_CHARS = 100_000
SUGGESTIONS_MIN_CHARS = 2


@login_required
@require_POST
def markdown_preview(request):
    """The `description` field rendered exactly as its page will show it: the same Markdown and
    the same sanitizer. A POST (the text may be long), so Django's CSRF check applies."""
    text = request.POST.get("description", "")[:PREVIEW_MAX_CHARS]
    if not text.strip():
        return HttpResponse(format_html('<p class="muted">{}</p>', "Nothing to preview yet."))
    return HttpResponse(mark_safe(render_markdown(text)))  # noqa: S308 - bleach-sanitized


@never_cache
@login_required
@require_GET
def member_suggestions(request, ctx):
    """Accounts and groups whose name starts with `q`, for the Add member form of a context.

    Only for those who may add members there (context admins): they can already grant a role
    to any account by its exact name, so a prefix search shows them nothing they could not
    reach; it shows no e-mail or real name, at least two characters are needed, and the list
    is short. Everybody else gets 403 (or 404 for a context they cannot see)."""
    context = selectors.context_get(request.user, ctx)
    require(request.user, context, Perm.MANAGE_CONTEXT)
    prefix = request.GET.get("q", "").strip()
    if len(prefix) < SUGGESTIONS_MIN_CHARS:
        return JsonResponse({"users": [], "groups": []})
    return JsonResponse(selectors.member_candidates(context, prefix))


def favicon(request):
    """Browsers ask for /favicon.ico where no page names the icon (a JSON answer of the API)."""
    return redirect(static("dashboard/favicon.svg"))


urlpatterns = [
    path("favicon.ico", favicon, name="favicon"),
    path("markdown/preview/", markdown_preview, name="markdown-preview"),
    path("c/<slug:ctx>/members/suggestions/", member_suggestions, name="member-suggestions"),
]
