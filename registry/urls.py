from csp.constants import NONCE
from csp.decorators import csp_update
from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView

from dashboard.views.signin import admin_sign_in
from registry import http_errors

# The API docs pages run under the site's Content-Security-Policy (settings.CONTENT_SECURITY_POLICY).
# Swagger UI needs nothing more: its start-up script is served by the split view from the page's
# own address, and its page rules are a static file (templates/drf_spectacular/). Redoc adds its
# styles as <style> elements: those of its components carry this response's nonce, and the one it
# adds while loading, before it knows the nonce (the sidebar's scrollbar rules), is allowed by its
# hash (and that of the empty element it starts as). Its search index runs in a worker it starts
# from a blob: URL. A sidecar release that changes those rules fails tests/browser/test_csp.py,
# which prints the new hash.
REDOC_LOADING_STYLE_HASHES = [
    "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='",  # the empty <style>
    "'sha256-QMIg+bpjm3JdElJ388KYke01izlUW0UoNOeKjpMxdgc='",  # perfect-scrollbar's rules
]
api_docs = SpectacularSwaggerSplitView.as_view(url_name="schema")
api_redoc = csp_update({"style-src": [NONCE, *REDOC_LOADING_STYLE_HASHES], "worker-src": ["'self'", "blob:"]})(
    SpectacularRedocView.as_view(url_name="schema")
)

urlpatterns = [
    # Before the admin's own: with passwords turned off, its sign-in is the registry's (single sign-on).
    path("admin/login/", admin_sign_in, name="admin-login"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("registry.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", api_docs, name="api-docs"),
    path("api/redoc/", api_redoc, name="api-redoc"),
    # Last of /api/: a path no endpoint matches answers 404 in the API's JSON shape.
    re_path(r"^api/", http_errors.api_not_found, name="api-not-found"),
    path("", include("dashboard.urls")),
]

# A database failure raised outside a view still answers 503, not the bare 500 page.
handler500 = "registry.outage.server_error"
# Django's own 400s (a body over the limit is 413) as JSON under /api/, as a page elsewhere.
handler400 = "registry.http_errors.bad_request"
