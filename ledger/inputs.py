"""Checks of what callers pass to services (forms, the API, jobs), shared by every app: a reason
is required and is text; an id is a positive whole number; a US state is a real state or territory
code; a time zone is a real IANA name. Each failure is an InvalidInput that names the field. Forms
and serializers do not repeat these checks: the service's InvalidInput is shown on the field."""

import re
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


_HEX_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")


def _luminance(colour: str) -> float:
    """WCAG 2.1 relative luminance of #RRGGBB (a colour, not money: floats are right here)."""
    def channel(hex2: str) -> float:
        c = int(hex2, 16) / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (channel(colour[i:i + 2]) for i in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_with_white(colour: str) -> float:
    return 1.05 / (_luminance(colour) + 0.05)


def portal_colour(value, *, field: str = "portal_colour") -> str:
    """A brand colour for the patient portal: #RRGGBB, dark enough that white text on it meets
    WCAG 2.1 AA (a contrast of at least 4.5:1), since the portal writes white on it."""
    text = value.strip() if isinstance(value, str) else ""
    if not _HEX_COLOUR.fullmatch(text):
        raise InvalidInput(f"{field}: a colour as #RRGGBB, e.g. #1d4f91 (got {value!r})", field=field)
    ratio = contrast_with_white(text)
    if ratio < 4.5:
        raise InvalidInput(f"{field}: {text} is too light for white text (contrast {ratio:.1f}:1; at least 4.5:1 "
                           "is needed for WCAG 2.1 AA); choose a darker colour", field=field)
    return text.lower()
