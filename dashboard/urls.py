"""The dashboard's pages. Each area keeps its views and its URL patterns in one module."""

from django.contrib.auth import views as auth_views
from django.urls import path

from dashboard.views import (assist, attachments, catalog, confirmations, guards, model_pages, signin, sso_rules, team,
                             trusted_imports, webhooks)

app_name = "dashboard"

urlpatterns = [
    path("login/", signin.SignInView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("sso/start/", signin.SsoStartView.as_view(), name="sso-start"),
    path("sso/callback/", signin.SsoCallbackView.as_view(), name="sso-callback"),
    *sso_rules.urlpatterns,
    *catalog.urlpatterns,
    *model_pages.urlpatterns,
    *attachments.urlpatterns,
    *team.urlpatterns,
    *trusted_imports.urlpatterns,
    *webhooks.urlpatterns,
    *guards.urlpatterns,
    *assist.urlpatterns,
    *confirmations.urlpatterns,
]
