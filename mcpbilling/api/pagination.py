"""Cursor pagination of every list: ``{"results": [...], "next": url|null, "previous": url|null}``.

A cursor holds the position of the last row seen in the view's ``ordering``
(its first field decides the position and should be indexed), so a page deep
in a list costs what the first page costs, and rows inserted meanwhile never
shift the pages that follow.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError
from rest_framework.exceptions import APIException, NotFound
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response


class InvalidCursor(APIException):
    status_code = 400
    default_code = "invalid_cursor"
    default_detail = "This cursor is not one this list gave out; follow next or previous."


class CursorPage(CursorPagination):
    page_size = 50
    page_size_query_param = "limit"
    page_size_query_description = "Rows per page (at most 200; default 50)."
    max_page_size = 200
    ordering = ("-id",)
    # Lists are read through the API, not browsed page by page in HTML.
    template = None

    def get_ordering(self, request, queryset, view):
        """The view's ``ordering`` (a tuple of fields), else newest id first."""
        ordering = getattr(view, "ordering", None) or self.ordering
        return (ordering,) if isinstance(ordering, str) else tuple(ordering)

    def decode_cursor(self, request):
        try:
            return super().decode_cursor(request)
        except NotFound as exc:
            raise InvalidCursor() from exc

    def paginate_queryset(self, queryset, request, view=None):
        try:
            return super().paginate_queryset(queryset, request, view)
        except (DjangoValidationError, ValueError, TypeError, OverflowError, DataError) as exc:
            # A forged cursor whose position is not a value of the ordering field.
            raise InvalidCursor() from exc

    def get_paginated_response(self, data):
        return Response(
            {"results": data, "next": self.get_next_link(), "previous": self.get_previous_link()}
        )

    def get_paginated_response_schema(self, schema):
        link = {"type": "string", "format": "uri", "nullable": True}
        return {
            "type": "object",
            "required": ["results", "next", "previous"],
            "properties": {"results": schema, "next": link, "previous": link},
        }
