from django.shortcuts import render

from registry import selectors


def home(request):
    """A landing page until the dashboard (issue 4): where the API, its docs and admin live."""
    contexts = list(selectors.context_list(request.user)) if request.user.is_authenticated else []
    return render(request, "dashboard/home.html", {"contexts": contexts})
