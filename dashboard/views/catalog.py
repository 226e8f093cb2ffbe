"""Home, the model list of a context (search, sort, pagination) and model creation."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import path

from dashboard.forms import ModelForm
from dashboard.views.base import add_service_error, requires
from registry import selectors, services
from registry.errors import RegistryError
from registry.permissions import Perm, has_perm

MODELS_PER_PAGE = 25
SORTS = [
    ("name", "Name (A–Z)"), ("-name", "Name (Z–A)"),
    ("-updated", "Recently updated"), ("updated", "Least recently updated"),
    ("-created", "Newest"), ("created", "Oldest"),
    ("-versions", "Most versions"), ("versions", "Fewest versions"),
]


@login_required
def home(request):
    contexts = list(selectors.context_list(request.user))
    if len(contexts) == 1:
        return redirect("dashboard:model-list", ctx=contexts[0].slug)
    return render(request, "dashboard/home.html", {"contexts": contexts})


@login_required
def model_list(request, ctx):
    context = selectors.context_get(request.user, ctx)
    search = request.GET.get("q", "").strip()
    tag = request.GET.get("tag", "").strip()
    sort = request.GET.get("sort", "name")
    if sort not in dict(SORTS):
        sort = "name"
    # A context may hold a hundred thousand models: pages by cursor (registry/keyset.py).
    page = selectors.model_list(request.user, context, search=search, tags=[tag] if tag else [], ordering=sort,
                                cursor=request.GET.get("cursor") or None, size=MODELS_PER_PAGE)
    return render(request, "dashboard/models/list.html", {
        "context": context, "page": page, "search": search, "tag": tag,
        "sort": sort, "sorts": SORTS, "can_edit": has_perm(request.user, context, Perm.EDIT_MODEL),
        "form": ModelForm(),
        # Each alias with the worst file state of its version: one query for the page.
        "alias_states": selectors.alias_file_states(model.pk for model in page.rows),
    })


@login_required
@requires(Perm.EDIT_MODEL)
def model_create(request, ctx):
    context = selectors.context_get(request.user, ctx)
    can_edit = has_perm(request.user, context, Perm.EDIT_MODEL)
    form = ModelForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            model = services.model_create(actor=request.user, context=context, **form.cleaned_data)
        except RegistryError as error:
            add_service_error(form, error)
        else:
            return redirect("dashboard:model-detail", model_id=model.pk)
    return render(request, "dashboard/models/create.html", {"context": context, "form": form, "can_edit": can_edit},
                  status=400 if form.errors else 200)


urlpatterns = [
    path("", home, name="home"),
    path("c/<slug:ctx>/", model_list, name="model-list"),
    path("c/<slug:ctx>/models/new/", model_create, name="model-create"),
]
