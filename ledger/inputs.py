"""Checks of what callers pass to services (forms, the API, jobs), shared by every app: a reason
is required and is text; an id is a positive whole number; a US state is a real state or territory
code; a time zone is a real IANA name. Each failure is an InvalidInput that names the field. Forms
and serializers do not repeat these checks: the service's InvalidInput is shown on the field."""

from functools import cache
from zoneinfo import available_timezones

from ledger.errors import InvalidInput

# USPS codes of the 50 states, the District of Columbia and the inhabited territories (DOMAIN rule 17
# keys state law on them). Military "states" (AA, AE, AP) and the freely associated states are not.
US_STATES = frozenset((
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "FL", "GA", "HI", "ID", "IL", "IN", "IA", "KS", "KY", "LA",
    "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM", "NY", "NC", "ND", "OH", "OK",
    "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA", "WV", "WI", "WY",
    "DC", "AS", "GU", "MP", "PR", "VI",
))


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


def us_state_code(value, *, field: str = "us_state") -> str:
    """A US state or territory as its two-letter code ("tx " -> "TX"); "ZZ" or "Texas" is refused."""
    code = value.strip().upper() if isinstance(value, str) else ""
    if code not in US_STATES:
        raise InvalidInput(f"{field}: '{value}' is not a US state or territory code (e.g. TX)", field=field)
    return code


@cache
def _time_zones() -> frozenset:
    return frozenset(available_timezones())  # reads the tz database once per process


def time_zone_name(value, *, field: str = "time_zone") -> str:
    """An IANA time zone name the server's tz database knows ("America/Chicago"). Anything else
    ("Mars/Olympus", "../etc") is refused here, before the nightly schedule tries ZoneInfo() on it."""
    name = value.strip() if isinstance(value, str) else ""
    if name not in _time_zones():
        raise InvalidInput(f"{field}: '{value}' is not an IANA time zone (e.g. America/Chicago)", field=field)
    return name
