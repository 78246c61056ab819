"""Cursor pagination, newest first by id: stable under concurrent writes (a page never repeats or
skips a row because rows were added meanwhile)."""

from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination


class IdCursorPagination(CursorPagination):
    ordering = "-id"
    page_size = 50
    page_size_query_param = "limit"
    page_size_query_description = "Rows per page, 1 to 200 (default 50)."
    cursor_query_description = "The `next` or `previous` cursor of an earlier page (opaque)."
    max_page_size = 200

    def decode_cursor(self, request):
        try:
            return super().decode_cursor(request)
        except NotFound:  # DRF says "Invalid cursor" with a 404: a bad cursor is bad input, not a missing object
            raise ValidationError({self.cursor_query_param: ["Invalid cursor."]}, code="invalid") from None

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        try:
            size = int(raw)
        except ValueError:
            size = 0
        if not 1 <= size <= self.max_page_size:  # refused, not silently clamped
            raise ValidationError({self.page_size_query_param: [f"A number from 1 to {self.max_page_size}."]},
                                  code="invalid")
        return size

    def get_schema_operation_parameters(self, view):
        params = super().get_schema_operation_parameters(view)
        for p in params:
            if p["name"] == self.page_size_query_param:
                p["schema"] = {"type": "integer", "minimum": 1, "maximum": self.max_page_size}
        return params
