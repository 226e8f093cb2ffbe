"""Turn the services' rule errors into the dashboard's 404/403/400 pages, and refuse a multipart
form too large to carry an allowed file before its body is read."""

from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.messages.storage import default_storage
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, UnreadablePostError
from django.shortcuts import render
from django.utils.functional import SimpleLazyObject, empty
from django.utils.http import url_has_allowed_host_and_scheme

from registry import http_errors, outage
from registry.errors import FileTooLarge, InvalidInput, NotFound, PermissionDenied
from registry.limits import form_upload_size_check


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
        if isinstance(exception, InvalidInput):  # input a view does not show in a form: a ?cursor=
            return http_errors.error_page(request, 400, exception.message)
        cut_off = http_errors.incomplete_body(exception, request)  # logged there, in one line
        if cut_off is not None:
            return outage.mark_logged(http_errors.error_page(request, cut_off.status_code, cut_off.message,
                                                             cut_off.code))
        return None


class LazyMessageMiddleware(MessageMiddleware):
    """Django's MessageMiddleware, with each request's message storage made when a message is
    first added or read: API requests never use it, and making it (a cookie store, its signer,
    a session store) cost 1% of a created model's CPU. A storage never made has nothing to
    store: the messages a cookie holds stay there for the next page, as they would had it been
    made and not read."""

    def process_request(self, request):
        request._messages = SimpleLazyObject(lambda: default_storage(request))

    def process_response(self, request, response):
        messages = getattr(request, "_messages", None)
        if isinstance(messages, SimpleLazyObject) and messages._wrapped is empty:
            return response
        return super().process_response(request, response)


class UploadSizeMiddleware:
    """The dashboard's upload forms are multipart: Django spools a file part to a temporary
    file as it parses, and the first to parse is CsrfViewMiddleware (it reads the form's
    token). Listed before it, this answers a form declaring more bytes than a file may have
    with 413 and the styled page at once, as the API's PUT does (registry.limits), and a form
    whose client went away mid-body with 400 body_incomplete, logged as a client disconnect
    (CsrfViewMiddleware would log it as a missing CSRF token)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        if request.content_type != "multipart/form-data" or request.path.startswith("/api/"):
            return None  # the API reads no multipart body: JSON, or a raw PUT checked by its view
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return None  # Django reads no body with an unreadable length
        try:
            # A view taking smaller files names its limit (dashboard.views.attachments).
            limit = getattr(view_func, "upload_limit", None)
            form_upload_size_check(length, limit=limit() if limit else None)
        except FileTooLarge as error:
            back = request.META.get("HTTP_REFERER", "")
            if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()},
                                                   require_https=request.is_secure()):
                back = ""
            return render(request, "413.html", {"detail": error.message, "back": back}, status=413)
        try:
            request.POST  # noqa: B018 - parsed here: CsrfViewMiddleware would take a cut body for a missing token
        except UnreadablePostError as exc:  # the client went away mid-upload
            cut_off = http_errors.incomplete_body(exc, request)  # logged there, in one line
            return outage.mark_logged(http_errors.error_page(request, cut_off.status_code, cut_off.message,
                                                             cut_off.code))
        return None
