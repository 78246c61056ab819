"""What the API reads.

JSON, with exact numbers: a JSON number with a fraction is read as a Decimal (never a float), and
NaN / Infinity are refused. Amounts should still be sent as strings ("50.00"). Hostile JSON is
refused before it is decoded: a body over SETTLE_API_MAX_JSON_BYTES (default 1 MB) is a 413, and
arrays / objects nested deeper than MAX_DEPTH are a 400 (found without recursion, so a body of
100,000 "[" never reaches the recursive decoder, the serializers or the idempotency fingerprint).

835 uploads (multipart/form-data): a body whose Content-Length already exceeds
SETTLE_API_MAX_835_BYTES (plus room for the multipart envelope) is a 413 before a byte is read."""

import json
import re
from decimal import Decimal

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import JSONParser, MultiPartParser

MAX_DEPTH = 64  # nesting of arrays and objects; settle's deepest request body is 3
MAX_JSON_BYTES = 1024 * 1024
MAX_835_BYTES = 100 * 1024 * 1024
MULTIPART_ENVELOPE_BYTES = 64 * 1024  # boundaries, part headers and the small form fields next to the file

# a JSON string (escapes included, matched without backtracking) or a bracket; strings are skipped whole
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.S)


class RequestTooLarge(APIException):
    """413 in the one error shape (api/exceptions.py): code `too_large`."""

    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"

    def __init__(self, limit: int, what: str = "the request body", field: str | None = None):
        super().__init__(f"{what} is larger than the {limit} bytes allowed", code="too_large")
        self.field = field


def max_json_bytes() -> int:
    return int(getattr(settings, "SETTLE_API_MAX_JSON_BYTES", MAX_JSON_BYTES))


def max_835_bytes() -> int:
    return int(getattr(settings, "SETTLE_API_MAX_835_BYTES", MAX_835_BYTES))


def content_length(request) -> int:
    try:
        return max(int(request.META.get("CONTENT_LENGTH") or 0), 0)
    except (TypeError, ValueError):
        return 0


def too_deep(text: str) -> int | None:
    """Index in `text` of the first "[" or "{" nested deeper than MAX_DEPTH (strings skipped), or None. A loop,
    not recursion; it stops at the first bracket too deep."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:  # the usual body: nothing to walk
        return None
    depth = 0
    for m in _TOKEN.finditer(text):
        c = m.group()
        if c == "[" or c == "{":
            depth += 1
            if depth > MAX_DEPTH:
                return m.start()
        elif c == "]" or c == "}":
            depth -= 1
    return None


def _refuse_constant(name):
    raise ValueError(f"{name} is not a number settle accepts")


class DecimalJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        limit = max_json_bytes()
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise RequestTooLarge(limit, "the JSON body")
        try:
            text = raw.decode(encoding)
        except (UnicodeDecodeError, LookupError) as exc:
            raise ParseError(f"JSON parse error: {exc}") from None
        at = too_deep(text)
        if at is not None:
            raise ParseError(f"JSON parse error: arrays and objects nested deeper than {MAX_DEPTH} levels "
                             f"(at character {at})")
        try:
            return json.loads(text, parse_float=Decimal, parse_constant=_refuse_constant)
        except RecursionError:  # not reachable past the depth check; never a 500 if it were
            raise ParseError(f"JSON parse error: nested deeper than {MAX_DEPTH} levels") from None
        except ValueError as exc:
            raise ParseError(f"JSON parse error: {exc}") from None


class UploadParser(MultiPartParser):
    """multipart/form-data for 835 uploads, refused with 413 from its Content-Length alone when it cannot fit."""

    def parse(self, stream, media_type=None, parser_context=None):
        request = (parser_context or {}).get("request")
        limit = max_835_bytes()
        if request is not None and content_length(request) > limit + MULTIPART_ENVELOPE_BYTES:
            raise RequestTooLarge(limit, "the file", field="file")
        return super().parse(stream, media_type, parser_context)
