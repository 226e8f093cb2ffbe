"""Turn the services' rule errors into the dashboard's 404/403 pages."""

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404

from registry.errors import NotFound, PermissionDenied


class RegistryErrorMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, NotFound):
            raise Http404(exception.message)
        if isinstance(exception, PermissionDenied):
            raise DjangoPermissionDenied(exception.message)
        return None
