"""OpenAPI details shared by every operation: the error responses, the Idempotency-Key header
on POSTs and the response headers integrators rely on (Retry-After, Idempotent-Replayed)."""

from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers

from api.idempotency import KEY_PATTERN

ERROR_DESCRIPTIONS = {
    "400": "Invalid input: a field is missing or wrong, or the JSON cannot be read.",
    "401": "No token, an unknown token, or a revoked token.",
    "402": "The card was declined (code `card_declined` or `insufficient_funds`).",
    "403": "The token's role may not do this (e.g. approving a refund needs a manager token).",
    "404": "Not found: no such object in the token's practice (another practice's objects are never shown).",
    "409": "Conflict: a DOMAIN rule or the object's current state forbids it (`rule_violation`), it already "
           "exists (`duplicate`), a database rule refused it (`constraint_violation`), or a request with the "
           "same Idempotency-Key is still running (`idempotency_in_progress`, retry after Retry-After seconds).",
    "422": "The Idempotency-Key was already used with a different request (`idempotency_key_reused`).",
    "413": "The body is larger than allowed (`too_large`): JSON bodies 1 MB (SETTLE_API_MAX_JSON_BYTES), 835 "
           "uploads SETTLE_API_MAX_835_BYTES.",
    "429": "Rate limited: too many requests for this token; retry after Retry-After seconds.",
    "503": "The database is unavailable or busy (`unavailable`); nothing was kept. Retry after Retry-After "
           "seconds, with the same Idempotency-Key.",
}


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable, machine-readable, e.g. `required`, `not_found`, `rule_violation`.")
    message = serializers.CharField(help_text="What went wrong and where, for people.")
    field = serializers.CharField(allow_null=True, help_text="The input concerned (dotted path), or null.")


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


class SettleAutoSchema(AutoSchema):
    def _error_codes(self) -> list[str]:
        codes = ["400", "401", "429", "503"]
        if self.method in ("POST", "PATCH", "PUT", "DELETE"):
            codes += ["403", "404", "409", "413"]
        elif "{" in self.path:
            codes.append("404")
        if self.method == "POST":
            codes.append("422")
            if getattr(self.view, "card_payments", False):
                codes.append("402")
        return sorted(codes)

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction == "response":
            for code in self._error_codes():
                if code not in responses:
                    responses[code] = self._get_response_for_code(ErrorSerializer, code, direction=direction)
                    responses[code]["description"] = ERROR_DESCRIPTIONS[code]
        return responses

    def get_override_parameters(self):
        params = list(super().get_override_parameters())
        params.append(OpenApiParameter(
            "Retry-After", OpenApiTypes.INT, OpenApiParameter.HEADER, response=["429", "409", "503"],
            description="Seconds to wait before retrying."))
        if self.method == "POST":
            params.append(OpenApiParameter(
                "Idempotency-Key", {"type": "string", "minLength": 1, "maxLength": 255, "pattern": KEY_PATTERN},
                OpenApiParameter.HEADER, required=False,
                description="Strongly recommended on every POST: a unique string (e.g. a UUID) per operation, 1 to "
                            "255 visible ASCII characters. Sending the same key with the same request returns the "
                            "first answer again (nothing is posted twice); the same key with a different request is "
                            "refused (422). Keys are kept for 24 hours, per token."))
            params.append(OpenApiParameter(
                "Idempotent-Replayed", OpenApiTypes.STR, OpenApiParameter.HEADER, response=["200", "201"],
                enum=["true"], description="Present when this answer is the stored answer of an earlier request "
                                           "with the same Idempotency-Key."))
        return params


# --- money in the schema: a decimal string, with the shapes the API accepts ----------------------------

# the grammar of ledger/amounts.py ([0-9], not \d: \d matches other scripts' digits in some regex engines)
AMOUNT_OUT = r"^-?[0-9]+\.[0-9]{2}$"
AMOUNT_SIGNED = r"^-?[0-9]{1,12}(\.[0-9]{1,2})?$"
AMOUNT_NONNEG = r"^[0-9]{1,12}(\.[0-9]{1,2})?$"
AMOUNT_POSITIVE = r"^(0*[1-9][0-9]{0,11}(\.[0-9]{1,2})?|0+\.(0[1-9]|[1-9][0-9]?))$"  # > 0


class MoneyFieldExtension(OpenApiSerializerFieldExtension):
    target_class = "api.fields.MoneyField"

    def map_serializer_field(self, auto_schema, direction):
        field = self.target
        text = {"type": "string", "format": "decimal", "example": "50.00"}
        if field.read_only or direction == "response":
            return {**text, "pattern": AMOUNT_OUT, "description": "Money: a decimal string with two places."}
        low = field.min_value
        pattern = AMOUNT_SIGNED if low is None else AMOUNT_POSITIVE if low > 0 else AMOUNT_NONNEG
        whole = {"type": "integer", "maximum": 999_999_999_999}
        whole["minimum"] = -999_999_999_999 if low is None else 1 if low > 0 else 0
        return {"oneOf": [{**text, "pattern": pattern}, whole],
                "description": "Money: a decimal string with at most two places (\"50.00\"), or a whole number (50). "
                               "JSON numbers with a fraction are refused."
                               + ("" if low is None else " Greater than zero." if low > 0 else " Zero or more.")}
