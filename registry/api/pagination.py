from django.core.paginator import Paginator
from rest_framework.pagination import BasePagination, PageNumberPagination
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from registry import keyset
from registry.errors import InvalidInput


class CountWhenNeededPaginator(Paginator):
    """Reads the first page before counting: when it holds every row (the usual case for a
    search or a small list) the count is known and the COUNT(*) query, which repeats the
    whole WHERE clause, is skipped."""

    def page(self, number):
        if str(number) != "1" or self.orphans:
            return super().page(number)
        rows = list(self.object_list[: self.per_page + 1])
        if len(rows) <= self.per_page:
            self.__dict__["count"] = len(rows)  # fills the cached_property
        return self._get_page(rows[: self.per_page], 1, self)


class Pagination(PageNumberPagination):
    django_paginator_class = CountWhenNeededPaginator
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class CursorPagination(BasePagination):
    """For the lists that grow without bound (a context's models, training records and audit
    log, a version's metric points): `?cursor=` from a page's `next` or `previous` link, and
    `?page_size=` as elsewhere. A page costs one statement whatever its depth
    (registry/keyset.py), so the answer carries no `count`: counting would read every row."""

    page_size = Pagination.page_size
    page_size_query_param = Pagination.page_size_query_param
    max_page_size = Pagination.max_page_size
    cursor_query_param = "cursor"

    def page_request(self, request) -> tuple[str | None, int]:
        """(cursor, size) of the page `request` asks for."""
        if "page" in request.query_params:
            # Refused, not ignored: a client counting pages would otherwise get the first one
            # back for ever.
            raise InvalidInput("This list pages with a cursor, not page numbers: follow the `next` link.",
                               field="page")
        self.request = request
        return (request.query_params.get(self.cursor_query_param) or None,
                PageNumberPagination.get_page_size(self, request))

    def paginate_queryset(self, queryset, request, view=None):
        cursor, size = self.page_request(request)
        self.keyset_page = keyset.paginate(queryset, cursor=cursor, size=size)
        return self.keyset_page.rows

    def page_response(self, page: keyset.Page, data) -> Response:
        """The answer for a page a selector read itself (after page_request())."""
        self.keyset_page = page
        return self.get_paginated_response(data)

    def _link(self, cursor: str | None) -> str | None:
        if cursor is None:
            return None
        return replace_query_param(self.request.build_absolute_uri(), self.cursor_query_param, cursor)

    def get_paginated_response(self, data):
        return Response({
            "next": self._link(self.keyset_page.next_cursor),
            "previous": self._link(self.keyset_page.previous_cursor),
            "results": data,
        })

    def get_paginated_response_schema(self, schema):
        link = {"type": "string", "nullable": True, "format": "uri"}
        return {
            "type": "object",
            "required": ["next", "previous", "results"],
            "properties": {"next": {**link, "example": "http://registry.example/api/v1/…/?cursor=eyJkIjoibiJ9"},
                           "previous": link, "results": schema},
        }

    def get_schema_operation_parameters(self, view):
        return [
            {"name": self.cursor_query_param, "required": False, "in": "query", "schema": {"type": "string"},
             "description": "Where the page starts: the cursor in the `next` or `previous` link of another page "
                            "(absent: the first page)."},
            {"name": self.page_size_query_param, "required": False, "in": "query", "schema": {"type": "integer"},
             "description": f"Rows per page (default {self.page_size}, at most {self.max_page_size})."},
        ]
