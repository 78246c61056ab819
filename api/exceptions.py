"""One error shape everywhere:

    {"error": {"code": "rule_violation", "message": "credit 12 is locked ...", "field": "credit"}}

`code` is stable and machine-readable, `message` says what and where, `field` names the input
concerned (dotted path for nested input, e.g. "credits.0.amount") or is null.

Status codes: 400 invalid input (DRF validation, ledger InvalidInput, unreadable JSON),
401 no or bad token, 402 card declined, 403 not allowed (e.g. a manager's action with a billing
token), 404 not found (also: another practice's object), 405 method not allowed, 409 a DOMAIN
rule or the current state forbids it (ledger RuleViolation), a duplicate (Duplicate), a database
rule, or the same Idempotency-Key still in progress, 413 a body over the limits
(api/parsers.py), 415 unsupported media type, 422 an Idempotency-Key reused with another
request, 429 rate limited (with Retry-After), 500 a bug, 503 the database unavailable or busy (an
outage, a connection cut, a timeout: nothing was kept, retry after Retry-After with the same key).

Errors that never reach DRF's handler (a path no route matches, an exception raised after the view
or by a middleware, Django's own 400/403/404/500 pages) are answered in the same shape by
ApiErrorMiddleware (api/middleware.py), first in settings.MIDDLEWARE, for every path under /api/.
"""

import logging

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import (
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError, IntegrityError, InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django_fsm import TransitionNotAllowed
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from api.parsers import max_json_bytes
from ledger import errors

log = logging.getLogger("api")

# SettleError subclasses -> HTTP status
STATUS_BY_ERROR = [
    (errors.InvalidInput, status.HTTP_400_BAD_REQUEST),
    (errors.NotFound, status.HTTP_404_NOT_FOUND),
    (errors.PermissionDenied, status.HTTP_403_FORBIDDEN),
    (errors.Duplicate, status.HTTP_409_CONFLICT),
    (errors.RuleViolation, status.HTTP_409_CONFLICT),
]
# card processor codes carried by a RuleViolation
STATUS_BY_CODE = {"card_declined": 402, "insufficient_funds": 402, "invalid_token": 400}

DRF_CODES = {
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
    exceptions.ParseError: "parse_error",
}


class IdempotencyError(exceptions.APIException):
    """An Idempotency-Key that cannot be honoured (see api/idempotency.py)."""

    def __init__(self, message: str, *, code: str, status_code: int):
        super().__init__(message)
        self.status_code, self.error_code = status_code, code


def body(code: str, message: str, field: str | None = None) -> dict:
    return {"error": {"code": code, "message": message, "field": field}}


UNAVAILABLE = (OperationalError, InterfaceError)  # the database went away, cut the connection, or timed out
RETRY_AFTER_UNAVAILABLE = "5"


def unavailable_body() -> dict:
    return body("unavailable", "The database is unavailable or busy, so the request did not complete. Retry after "
                               "Retry-After seconds (with the same Idempotency-Key).")


def too_large_body(request) -> dict:

    json_body = "json" in (getattr(request, "content_type", None) or request.META.get("CONTENT_TYPE", "")).lower()
    limit = max_json_bytes() if json_body else settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return body("too_large", f"the {'JSON' if json_body else 'request'} body is larger than the {limit} bytes allowed")


def _first_error(detail, path=()):
    """(dotted field path, ErrorDetail) of the first error in a DRF validation error."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            found = _first_error(value, path if key in ("non_field_errors", "__all__") else path + (str(key),))
            if found:
                return found
        return None
    if isinstance(detail, list):
        # a list of errors for one field, or a list of children's errors (dicts / lists)
        for i, value in enumerate(detail):
            if isinstance(value, (dict, list)):
                found = _first_error(value, path + (str(i),))
            else:
                found = (path, value)
            if found:
                return found
        return None
    return path, detail


def _validation_body(detail) -> dict:
    found = _first_error(detail)
    if not found:
        return body("invalid", "The request is not valid.")
    path, err = found
    field = ".".join(path) or None
    code = getattr(err, "code", None) or "invalid"
    message = str(err)
    return body(code, f"{field}: {message}" if field else message, field)


def _integrity_body(exc: IntegrityError) -> tuple[int, dict]:
    cause = exc.__cause__
    rule = getattr(getattr(cause, "diag", None), "constraint_name", None)
    pgcode = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
    code = "duplicate" if pgcode == "23505" else "constraint_violation"
    message = f"refused by the database rule {rule}" if rule else "refused by a database rule"
    return status.HTTP_409_CONFLICT, body(code, message)


def error_response(exc, context=None) -> Response | None:
    """DRF's EXCEPTION_HANDLER: every exception becomes the one error shape."""
    headers = {}
    if isinstance(exc, errors.SettleError):
        status_code = STATUS_BY_CODE.get(exc.code) or next(s for cls, s in STATUS_BY_ERROR + [(errors.SettleError, 400)]
                                                          if isinstance(exc, cls))
        data = body(exc.code, exc.message, exc.field)
    elif isinstance(exc, IdempotencyError):
        status_code, data = exc.status_code, body(exc.error_code, str(exc.detail), "Idempotency-Key")
        if status_code == status.HTTP_409_CONFLICT:
            headers["Retry-After"] = "1"
    elif isinstance(exc, exceptions.ValidationError):
        status_code, data = status.HTTP_400_BAD_REQUEST, _validation_body(exc.detail)
    elif isinstance(exc, DjangoValidationError):
        status_code = status.HTTP_400_BAD_REQUEST
        data = _validation_body(serializers.as_serializer_error(exc))
    elif isinstance(exc, (Http404, exceptions.NotFound)):
        status_code, data = status.HTTP_404_NOT_FOUND, body("not_found", "Not found.")
    elif isinstance(exc, DjangoPermissionDenied):
        status_code, data = status.HTTP_403_FORBIDDEN, body("permission_denied", "Permission denied.")
    elif isinstance(exc, exceptions.APIException) and getattr(exc, "default_code", None) == "too_large":
        status_code, data = exc.status_code, body("too_large", str(exc.detail), getattr(exc, "field", None))
    elif isinstance(exc, exceptions.APIException):
        status_code = exc.status_code
        code = DRF_CODES.get(type(exc)) or next((c for cls, c in DRF_CODES.items() if isinstance(exc, cls)), None) \
            or (exc.get_codes() if isinstance(exc.get_codes(), str) else "error")
        data = body(code, str(exc.detail))
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait) + (0 if exc.wait == int(exc.wait) else 1))
    elif isinstance(exc, TransitionNotAllowed):
        status_code, data = status.HTTP_409_CONFLICT, body("rule_violation", str(exc))
    elif isinstance(exc, IntegrityError):
        status_code, data = _integrity_body(exc)
    elif isinstance(exc, DataError):  # a value the database cannot hold (out of range, too long...)
        log.warning("API input refused by the database: %s", exc)
        status_code, data = status.HTTP_400_BAD_REQUEST, body("invalid", "A value is out of range.")
    elif isinstance(exc, (RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent, SuspiciousOperation)):
        status_code, data = suspicious_error(exc, (context or {}).get("request"))
    elif isinstance(exc, UNAVAILABLE):
        log.error("API request cut off by the database: %s", exc, exc_info=exc)
        status_code, data = status.HTTP_503_SERVICE_UNAVAILABLE, unavailable_body()
        headers["Retry-After"] = RETRY_AFTER_UNAVAILABLE
    else:
        log.exception("API request failed", exc_info=exc)
        status_code, data = status.HTTP_500_INTERNAL_SERVER_ERROR, body(
            "server_error", "Something went wrong on our side; it was logged. Nothing you sent was wrong.")
    set_rollback()
    response = Response(data, status=status_code, headers=headers)
    # a request the database cut off kept nothing: its Idempotency-Key is released, not answered (idempotency.py)
    response.settle_release_key = isinstance(exc, UNAVAILABLE)
    return response


def suspicious_error(exc, request) -> tuple[int, dict]:
    """Django's refusals of a body it will not read (RequestDataTooBig when the body passes
    DATA_UPLOAD_MAX_MEMORY_SIZE, too many fields or files), as 413 / 400 instead of a 500 or an HTML 400."""
    if isinstance(exc, RequestDataTooBig):
        return status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, too_large_body(request) if request is not None else \
            body("too_large", "the request body is too large")
    if isinstance(exc, TooManyFilesSent):
        return status.HTTP_400_BAD_REQUEST, body("too_many_files", "too many files in one request; send one file",
                                                 "file")
    if isinstance(exc, TooManyFieldsSent):
        return status.HTTP_400_BAD_REQUEST, body("too_many_fields", "too many form fields in one request")
    log.warning("API request refused as suspicious: %s", exc)
    return status.HTTP_400_BAD_REQUEST, body("bad_request", "The request cannot be read.")


@csrf_exempt  # any method may land here; the answer is a JSON 404, never a CSRF page
def not_found_view(request, *args, **kwargs):
    """Any path under /api/ that names no endpoint."""
    return JsonResponse(body("not_found", f"No endpoint at {request.path}; see /api/docs/."), status=404,
                        json_dumps_params={"separators": (",", ":")})
