"""The sign-in page: passwords (with the sign-in limit, django-axes' AXES_LOCKOUT_CALLABLE)
and single sign-on with an OpenID Connect provider (registry/sso.py)."""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.contrib import admin
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import LoginView
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.generic import View
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from registry.sso import SignInFailed, oidc_setting, provider_name, sso_enabled


def lockout_minutes() -> int:
    return max(1, int(settings.AXES_COOLOFF_TIME.total_seconds() // 60))


def locked_out(request, original_response=None, credentials=None):
    """The sign-in page again, saying why it refuses and for how long: 429 with Retry-After."""
    minutes = lockout_minutes()
    message = (f"Too many failed sign-ins for this account or from this address. "
               f"Try again in {minutes} minutes.")
    response = render(request, "registration/login.html", {
        "form": AuthenticationForm(request), "locked_out": message, **signin_options(),
        "next": request.POST.get("next", "") if request.method == "POST" else "",
    }, status=429)
    response["Retry-After"] = str(minutes * 60)
    return response


# --- the sign-in page: passwords, single sign-on, or both -------------------------------------

def signin_options() -> dict:
    """What the sign-in page offers (settings REGISTRY_PASSWORD_SIGNIN, REGISTRY_OIDC_*)."""
    return {"password_signin": settings.REGISTRY_PASSWORD_SIGNIN, "sso_enabled": sso_enabled(),
            "sso_provider": provider_name()}


class SignInView(LoginView):
    """Django's sign-in page, offering "Sign in with <provider>" when single sign-on is set up,
    and refusing passwords when they are turned off (403, before any password is checked)."""

    redirect_authenticated_user = True

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), **signin_options()}

    def post(self, request, *args, **kwargs):
        if not settings.REGISTRY_PASSWORD_SIGNIN:
            return render(request, "registration/login.html", {
                "form": AuthenticationForm(request), "next": request.POST.get("next", ""), **signin_options(),
                "password_refused": "Signing in with a password is turned off"
                                    + (f": sign in with {provider_name()}." if sso_enabled() else "."),
            }, status=403)
        return super().post(request, *args, **kwargs)


def admin_sign_in(request, extra_context=None):
    """The admin's sign-in page while passwords work; the registry's otherwise (single sign-on)."""
    if settings.REGISTRY_PASSWORD_SIGNIN:
        return admin.site.login(request, extra_context)
    query = urlencode({"next": request.GET.get("next", reverse("admin:index"))})
    return redirect(f"{reverse('dashboard:login')}?{query}")


def sso_failed(request, message: str, status: int):
    return render(request, "registration/sso_failed.html", {"message": message, **signin_options()}, status=status)


class SsoStartView(OIDCAuthenticationRequestView):
    """Start a sign-in at the provider: a redirect to its authorization endpoint, with a state,
    a nonce and a PKCE challenge kept in the session. 404 when single sign-on is not set up."""

    get_settings = staticmethod(oidc_setting)

    def __init__(self, *args, **kwargs):
        View.__init__(self, *args, **kwargs)  # the endpoints are read in get(), not at start-up

    def get(self, request):
        if not sso_enabled():
            raise Http404("Single sign-on is not set up.")
        try:
            self.OIDC_OP_AUTH_ENDPOINT = self.get_settings("OIDC_OP_AUTHORIZATION_ENDPOINT")
        except SignInFailed as failure:
            return sso_failed(request, failure.message, failure.status)
        self.OIDC_RP_CLIENT_ID = self.get_settings("OIDC_RP_CLIENT_ID")
        return super().get(request)


class SsoCallbackView(OIDCAuthenticationCallbackView):
    """Where the provider sends the browser back. Every way it can fail ends on a page that says
    what happened, never a bare error: the provider refused or is down, the sign-in was not
    started in this browser (state), its answer could not be verified, claims are missing."""

    get_settings = staticmethod(oidc_setting)

    def get(self, request):
        if not sso_enabled():
            raise Http404("Single sign-on is not set up.")
        if request.GET.get("error"):
            # The provider said no: this sign-in's state is spent. (The library would also sign
            # out whoever is signed in; a link anyone can send must not do that.)
            states = request.session.get("oidc_states", {})
            if states.pop(request.GET.get("state", ""), None) is not None:
                request.session["oidc_states"] = states
            described = request.GET.get("error_description") or request.GET["error"]
            return sso_failed(request, f"{provider_name()} did not sign you in: {described[:300]}", 400)
        state = request.GET.get("state")
        if not state or not request.GET.get("code"):
            return sso_failed(request, "This page is where the identity provider sends you back after signing in; "
                                       "it was opened without a sign-in answer. Start again.", 400)
        if state not in request.session.get("oidc_states", {}):
            return sso_failed(request, "This sign-in was not started in this browser, or it expired. Start again.",
                              400)
        try:
            return super().get(request)
        except SignInFailed as failure:
            return sso_failed(request, failure.message, failure.status)

    def login_failure(self):
        return sso_failed(self.request, f"{provider_name()} did not sign you in. Start again.", 400)
