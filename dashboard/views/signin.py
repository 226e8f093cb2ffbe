"""The sign-in page when the sign-in limit is reached (django-axes' AXES_LOCKOUT_CALLABLE)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.shortcuts import render


def lockout_minutes() -> int:
    return max(1, int(settings.AXES_COOLOFF_TIME.total_seconds() // 60))


def locked_out(request, original_response=None, credentials=None):
    """The sign-in page again, saying why it refuses and for how long: 429 with Retry-After."""
    minutes = lockout_minutes()
    message = (f"Too many failed sign-ins for this account or from this address. "
               f"Try again in {minutes} minutes.")
    response = render(request, "registration/login.html", {
        "form": AuthenticationForm(request), "locked_out": message,
        "next": request.POST.get("next", "") if request.method == "POST" else "",
    }, status=429)
    response["Retry-After"] = str(minutes * 60)
    return response
