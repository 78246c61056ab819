"""Under /api/, what never reaches DRF's exception handler still leaves in the one error shape
(api/exceptions.py): the middleware below, first in MIDDLEWARE."""

import logging
import sys

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import (
    RequestDataTooBig,
    SuspiciousOperation,
)
from django.core.signals import got_request_exception
from django.http import Http404, JsonResponse

from api import idempotency
from api.exceptions import (
    RETRY_AFTER_UNAVAILABLE,
    UNAVAILABLE,
    body,
    suspicious_error,
    too_large_body,
    unavailable_body,
)

log = logging.getLogger("api")


# --- what never reaches DRF's handler ----------------------------------------------------------------

CODE_BY_STATUS = {400: "bad_request", 401: "not_authenticated", 403: "permission_denied", 404: "not_found",
                  405: "method_not_allowed", 413: "too_large", 429: "throttled", 500: "server_error",
                  503: "unavailable"}
MESSAGE_BY_STATUS = {
    400: "The request cannot be read.", 403: "Permission denied.", 404: "Not found.",
    405: "Method not allowed.", 413: "the request body is too large",
    500: "Something went wrong on our side; it was logged. Nothing you sent was wrong.",
}


def is_api_path(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


COMPACT = {"separators": (",", ":")}  # the bytes DRF's JSONRenderer writes for the same body


def _json_error(status_code: int, data: dict, **headers) -> JsonResponse:
    response = JsonResponse(data, status=status_code, json_dumps_params=COMPACT)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def _remember_exception(sender, request=None, **kwargs):
    """Django sends this while it handles an exception no view caught (a middleware's, say): keep it on the
    request so ApiErrorMiddleware can tell an outage (503) from a bug (500)."""
    if request is not None:
        request.settle_exception = sys.exc_info()[1]


got_request_exception.connect(_remember_exception, dispatch_uid="settle-api-remember-exception")


class ApiErrorMiddleware:
    """Under /api/, every error leaves in the one JSON shape: an exception that escaped DRF's handler
    (raised after the view, e.g. while storing an idempotent answer, or by a middleware), and Django's own
    HTML pages (404 of a path no route matches, 400 / 403 / 500). First in MIDDLEWARE, so it sees them all,
    with DEBUG on too (no debug page under /api/). Other paths are untouched."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not is_api_path(request.path_info):
            return self.get_response(request)
        response = self.get_response(request)
        if response.status_code >= 400 and "json" not in response.get("Content-Type", ""):
            response = self._replace(request, response)
        return response

    def process_exception(self, request, exception):
        if not is_api_path(request.path_info):
            return None
        response = self._response_for(request, exception)
        idempotency.abandon(request, response, release_key=isinstance(exception, UNAVAILABLE))
        return response

    @staticmethod
    def _response_for(request, exception):
        if isinstance(exception, UNAVAILABLE):
            log.error("API request cut off by the database: %s %s: %s", request.method, request.path, exception,
                      exc_info=exception)
            return _json_error(503, unavailable_body(), Retry_After=RETRY_AFTER_UNAVAILABLE)
        if isinstance(exception, SuspiciousOperation):
            status_code, data = suspicious_error(exception, request)
            return _json_error(status_code, data)
        if isinstance(exception, Http404):
            return _json_error(404, body("not_found", "Not found."))
        if isinstance(exception, DjangoPermissionDenied):
            return _json_error(403, body("permission_denied", "Permission denied."))
        log.error("API request failed: %s %s", request.method, request.path, exc_info=exception)
        return _json_error(500, body("server_error", MESSAGE_BY_STATUS[500]))

    @staticmethod
    def _replace(request, response):
        exc = getattr(request, "settle_exception", None)
        if isinstance(exc, UNAVAILABLE):
            return _json_error(503, unavailable_body(), Retry_After=RETRY_AFTER_UNAVAILABLE)
        if isinstance(exc, RequestDataTooBig) or response.status_code == 413:
            return _json_error(413, too_large_body(request))
        status_code = response.status_code
        code = CODE_BY_STATUS.get(status_code, "server_error" if status_code >= 500 else "bad_request")
        message = MESSAGE_BY_STATUS.get(status_code) or MESSAGE_BY_STATUS[500 if status_code >= 500 else 400]
        if status_code == 404:
            message = f"No endpoint at {request.path}; see /api/docs/."
        replaced = _json_error(status_code, body(code, message))
        for name in ("Retry-After", "Allow", "WWW-Authenticate"):
            if name in response:
                replaced[name] = response[name]
        return replaced
