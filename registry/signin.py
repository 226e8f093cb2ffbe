"""Limits on sign-in failures, per user and per address (django-axes, configured in settings:
AXES_FAILURE_LIMIT failures within AXES_COOLOFF_TIME lock the username, or the address, out
for that time). Every password sign-in goes through Django's `authenticate` with the request:
the dashboard's and the admin's sign-in pages. The API takes tokens, never a password."""

from __future__ import annotations

from axes.backends import AxesStandaloneBackend
from django.conf import settings
from django.contrib.auth.backends import ModelBackend


class SignInLimitBackend(AxesStandaloneBackend):
    """Refuses a locked-out username or address before the password is checked. A call with
    no request (a management command, a test's `Client.login`) comes from no address and is
    not counted: every sign-in over HTTP passes its request."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


class PasswordBackend(ModelBackend):
    """Django's username and password check, unless REGISTRY_PASSWORD_SIGNIN is false: then no
    password signs anyone in (the dashboard's and the admin's sign-in pages alike), and sessions
    opened with a password end. Sessions opened by single sign-on and API tokens are unaffected."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if not settings.REGISTRY_PASSWORD_SIGNIN:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)

    def get_user(self, user_id):
        if not settings.REGISTRY_PASSWORD_SIGNIN:
            return None
        return super().get_user(user_id)


def client_address(request) -> str:
    """The address a request came from. Behind the TLS proxy (REGISTRY_BEHIND_PROXY) that is
    the last X-Forwarded-For entry, the one the proxy appended: earlier entries are whatever
    the client sent, and REMOTE_ADDR is the proxy itself."""
    if getattr(settings, "REGISTRY_BEHIND_PROXY", False):
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        last = forwarded.split(",")[-1].strip()
        if last:
            return last
    return request.META.get("REMOTE_ADDR", "")
