"""Errors the services raise. Each carries a stable code, a message that says what and where,
and (when it concerns one input) the field. Views, admin and the API show them as they are."""


class SettleError(Exception):
    code = "error"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        if code:
            self.code = code

    def as_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "field": self.field}


class InvalidInput(SettleError):
    code = "invalid"


class NotFound(SettleError):
    code = "not_found"


class PermissionDenied(SettleError):
    code = "permission_denied"


class RuleViolation(SettleError):
    """The request is well formed but a DOMAIN.md rule forbids it (e.g. refunding a locked credit)."""

    code = "rule_violation"


class Duplicate(SettleError):
    code = "duplicate"
