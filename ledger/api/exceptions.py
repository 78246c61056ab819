"""One error shape everywhere:

    {"error": {"code": "rule_violation", "message": "credit 12 is locked ...", "field": "credit"}}

`code` is stable and machine-readable, `message` says what and where, `field` names the input
concerned (dotted path for nested input, e.g. "credits.0.amount") or is null.

Status codes: 400 invalid input (DRF validation, ledger InvalidInput, unreadable JSON),
401 no or bad token, 402 card declined, 403 not allowed (e.g. a manager's action with a billing
token), 404 not found (also: another practice's object), 405 method not allowed, 409 a DOMAIN
rule or the current state forbids it (ledger RuleViolation), a duplicate (Duplicate), a database
rule, or the same Idempotency-Key still in progress, 415 unsupported media type, 422 an
Idempotency-Key reused with another request, 429 rate limited (with Retry-After), 500 a bug.
"""

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError, IntegrityError
from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django_fsm import TransitionNotAllowed
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from ledger import errors

log = logging.getLogger("ledger.api")

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
    """An Idempotency-Key that cannot be honoured (see ledger/api/idempotency.py)."""

    def __init__(self, message: str, *, code: str, status_code: int):
        super().__init__(message)
        self.status_code, self.error_code = status_code, code


def body(code: str, message: str, field: str | None = None) -> dict:
    return {"error": {"code": code, "message": message, "field": field}}


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
    else:
        log.exception("API request failed", exc_info=exc)
        status_code, data = status.HTTP_500_INTERNAL_SERVER_ERROR, body(
            "server_error", "Something went wrong on our side; it was logged. Nothing you sent was wrong.")
    set_rollback()
    return Response(data, status=status_code, headers=headers)


@csrf_exempt  # any method may land here; the answer is a JSON 404, never a CSRF page
def not_found_view(request, *args, **kwargs):
    """Any path under /api/ that names no endpoint."""
    return JsonResponse(body("not_found", f"No endpoint at {request.path}; see /api/docs/."), status=404)
