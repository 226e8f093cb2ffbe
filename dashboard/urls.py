"""The dashboard's pages. Each area keeps its views and its URL patterns in one module."""

from django.contrib.auth import views as auth_views
from django.urls import path

from dashboard.views import assist, catalog, confirmations, guards, model_pages, team, trusted_imports

app_name = "dashboard"

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    *catalog.urlpatterns,
    *model_pages.urlpatterns,
    *team.urlpatterns,
    *trusted_imports.urlpatterns,
    *guards.urlpatterns,
    *assist.urlpatterns,
    *confirmations.urlpatterns,
]
