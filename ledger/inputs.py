"""Checks of what callers pass to services (forms, the API, jobs), shared by every app: a reason
is required and is text; an id is a positive whole number. Each failure is an InvalidInput that
names the field."""

from ledger.errors import InvalidInput


def require_reason(reason, *, field: str = "reason") -> str:
    """The reason staff give for a change (kept in the history with their name): required."""
    reason = (reason or "").strip() if isinstance(reason, str) or reason is None else str(reason).strip()
    if not reason:
        raise InvalidInput(f"a {field.replace('_', ' ')} is required", field=field)
    return reason


def parse_id(value, *, field: str) -> int:
    """An id given by a caller (a form, the API): a positive whole number, or a clear error."""
    try:
        out = int(str(value).strip())
    except (TypeError, ValueError):
        raise InvalidInput(f"{field}: '{value}' is not an id", field=field) from None
    if out <= 0:
        raise InvalidInput(f"{field}: '{value}' is not an id", field=field)
    return out
