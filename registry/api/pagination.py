from django.core.paginator import Paginator
from rest_framework.pagination import PageNumberPagination


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
