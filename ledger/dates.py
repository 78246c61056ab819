"""Dates from outside: ISO YYYY-MM-DD in ASCII digits, and dates of service in a sane range.

A date of service is between 1900-01-01 (`EARLIEST`) and today + 2 years (`FUTURE_YEARS`: a
visit can be booked, and credits bought for it, ahead of time; anything later is a typo such
as 2062 for 2026). The database also refuses a date of service outside the fixed outer range
1900-01-01..2199-12-31 (`DB_EARLIEST`/`DB_LATEST`, constraint `encounter_dos_in_range`; a CHECK
cannot use now()). A date of birth is between 1900-01-01 and today.

Every interface (API serializers, admin forms, the CSV import) and every service that takes
such a date calls `service_date` or `birth_date`, which raise `InvalidInput` naming the field."""

import re
from datetime import date, datetime

from django.utils import timezone

from ledger.errors import InvalidInput

EARLIEST = date(1900, 1, 1)
FUTURE_YEARS = 2
DB_EARLIEST = date(1900, 1, 1)
DB_LATEST = date(2199, 12, 31)

_ISO_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _shown(value) -> str:
    text = value if isinstance(value, str) else str(value)
    return repr(text[:30]) + ("…" if len(text) > 30 else "") if text.isprintable() else ascii(text[:30])


def iso_date(value, *, field: str) -> date:
    """YYYY-MM-DD with ASCII digits (or a `date`, not a datetime), else InvalidInput."""
    if isinstance(value, datetime):
        raise InvalidInput(f"{field}: give a date (YYYY-MM-DD), not a date and time", field=field)
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or not _ISO_RE.fullmatch(value):
        raise InvalidInput(f"{field}: {_shown(value)} is not a date; write it as YYYY-MM-DD, e.g. 2026-03-01",
                           field=field)
    try:
        return date(int(value[:4]), int(value[5:7]), int(value[8:]))
    except ValueError:
        raise InvalidInput(f"{field}: {_shown(value)} is not a date of the calendar", field=field) from None


def latest_service_date(today: date | None = None) -> date:
    today = today or timezone.localdate()
    try:
        return today.replace(year=today.year + FUTURE_YEARS)
    except ValueError:  # 29 February
        return today.replace(year=today.year + FUTURE_YEARS, day=28)


def service_date(value, *, field: str = "date_of_service", today: date | None = None) -> date:
    """A date of service: ISO YYYY-MM-DD (or a date), from 1900-01-01 to today + 2 years."""
    day = iso_date(value, field=field)
    latest = latest_service_date(today)
    if not EARLIEST <= day <= latest:
        raise InvalidInput(f"{field}: {day.isoformat()} is out of range; a date of service is between "
                           f"{EARLIEST.isoformat()} and {latest.isoformat()} (today + {FUTURE_YEARS} years)",
                           field=field)
    return day


def birth_date(value, *, field: str = "date_of_birth", today: date | None = None) -> date:
    """A date of birth: ISO YYYY-MM-DD (or a date), from 1900-01-01 to today."""
    day = iso_date(value, field=field)
    today = today or timezone.localdate()
    if not EARLIEST <= day <= today:
        raise InvalidInput(f"{field}: {day.isoformat()} is out of range; a date of birth is between "
                           f"{EARLIEST.isoformat()} and today ({today.isoformat()})", field=field)
    return day
