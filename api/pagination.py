"""Cursor pagination, newest first by id: stable under concurrent writes (a page never repeats or
skips a row because rows were added meanwhile).

A cursor is what an earlier page's `next` / `previous` gave, nothing else: strict base64 of
`o=<offset>&r=<0|1>&p=<id>`, each at most once. Anything else (`zzz`, `%ff`, base64 of junk, a
position that is not an id) is a 400 naming the field `cursor`, never a 500 from the query."""

import binascii
import re
from base64 import b64decode
from urllib import parse

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import Cursor, CursorPagination

MAX_ID = 2**63 - 1
_DIGITS = re.compile(r"[0-9]{1,19}")


class IdCursorPagination(CursorPagination):
    ordering = "-id"
    page_size = 50
    page_size_query_param = "limit"
    page_size_query_description = "Rows per page, 1 to 200 (default 50)."
    cursor_query_description = "The `next` or `previous` cursor of an earlier page (opaque)."
    max_page_size = 200

    def decode_cursor(self, request):
        encoded = request.query_params.get(self.cursor_query_param)
        if encoded is None:
            return None
        cursor = self._parse_cursor(encoded)
        if cursor is None:  # DRF would say "Invalid cursor" with a 404, or pass the junk on to the query
            raise ValidationError({self.cursor_query_param: [
                "Invalid cursor: pass the `next` or `previous` link of an earlier page as it is."]}, code="invalid")
        return cursor

    def _parse_cursor(self, encoded: str) -> Cursor | None:
        try:
            text = b64decode(encoded.encode("ascii"), validate=True).decode("ascii")
            tokens = parse.parse_qs(text, keep_blank_values=True, strict_parsing=True) if text else {}
        except (UnicodeError, binascii.Error, ValueError):
            return None
        if set(tokens) - {"o", "r", "p"} or any(len(v) != 1 for v in tokens.values()):
            return None
        offset, reverse, position = tokens.get("o", ["0"])[0], tokens.get("r", ["0"])[0], tokens.get("p", [None])[0]
        if not _DIGITS.fullmatch(offset) or int(offset) > self.offset_cutoff or reverse not in ("0", "1"):
            return None
        if position is not None and not (_DIGITS.fullmatch(position) and int(position) <= MAX_ID):
            return None  # the position is an id (ordering "-id"): anything else would fail in the query
        return Cursor(offset=int(offset), reverse=reverse == "1", position=position)

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
