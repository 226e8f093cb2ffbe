"""The model page: general section, versions, tabs. (Being built; see issue 4.)"""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.urls import path

from registry import selectors


@login_required
def model_detail(request, model_id):
    model = selectors.model_get(request.user, model_id)
    return render(request, "dashboard/models/detail.html", {"context": model.context, "model": model})


urlpatterns = [
    path("models/<str:model_id>/", model_detail, name="model-detail"),
]
