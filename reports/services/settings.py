"""A practice's report settings (reports.models.ReportSettings) as a service: the Medicare provider
numbers (PTAN) and the contact of the CMS-838 header, the end of the last settled cost-report period
and the size of the weekly review sample. The admin, the API and the shell change them only through
`report_settings_update`, so the checks below hold wherever a change comes from.

* Who: managers of the practice (administrators and the system anywhere); billing staff and other
  practices' managers are refused.
* What: a PTAN is 1 to 10 letters and digits (stored upper case), a phone 10 to 15 digits with the
  usual separators and an optional extension, the sample 0 to 100 cases, the cost-report date a
  real date not after the practice's today; each failure an InvalidInput naming the field.
* How: one transaction (atomic, not durable: an admin change form may save inside its own), the
  practice row locked first (ledger.locks ORDER: two first saves at once make one row), the row
  re-read under that lock and created with its defaults when missing, then only what differs
  saved with one history row carrying the actor and the reason."""

import re
from datetime import date

from django.db import transaction

from adjudication.clocks import practice_today
from ledger.access import ensure_staff
from ledger.dates import DB_EARLIEST, iso_date
from ledger.errors import InvalidInput, NotFound, PermissionDenied
from ledger.history import save_with_history
from ledger.inputs import parse_id, require_reason
from ledger.locks import lock
from ledger.models import Practice
from reports.models import ReportSettings

SETTINGS_FIELDS = ("medicare_ptan_part_a", "medicare_ptan_part_b", "report_contact_name", "report_contact_phone",
                   "cost_report_closed_through", "review_sample_size")
SAMPLE_MAX = 100
PTAN = re.compile(r"[A-Z0-9]{1,10}")
PHONE = re.compile(r"(?P<main>\+?[0-9().\- ]+?)(?:\s*(?:x|ext\.?)\s*(?P<ext>[0-9]{1,6}))?", re.IGNORECASE)


def _text(value, *, field: str, max_length: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidInput(f"{field}: not text", field=field)
    value = value.strip()
    if len(value) > max_length:
        raise InvalidInput(f"{field}: {len(value):,} characters; at most {max_length}", field=field)
    return value


def _ptan(value, *, field: str) -> str:
    text = _text(value, field=field, max_length=40).upper()
    if text and not PTAN.fullmatch(text):
        raise InvalidInput(f"{field}: {text!r} is not a provider number (1 to 10 letters and digits, no spaces "
                           "or dashes)", field=field)
    return text


def _phone(value, *, field: str) -> str:
    text = _text(value, field=field, max_length=30)
    if not text:
        return ""
    found = PHONE.fullmatch(text)
    if not found or not 10 <= len(re.sub(r"[^0-9]", "", found["main"])) <= 15:
        raise InvalidInput(f"{field}: {text!r} is not a phone number (10 to 15 digits, e.g. 512-555-0100 or "
                           "(512) 555-0100 x12)", field=field)
    return text


def _sample(value, *, field: str) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= SAMPLE_MAX:
        raise InvalidInput(f"{field}: a whole number of cases from 0 to {SAMPLE_MAX} is required (got {value!r})",
                           field=field)
    return value


def _day(value, *, field: str, today: date) -> date | None:
    if value is None or value == "":
        return None
    value = iso_date(value.strip() if isinstance(value, str) else value, field=field)
    if value > today:
        raise InvalidInput(f"{field}: {value:%m/%d/%Y} is after today ({today:%m/%d/%Y}); a cost-report period "
                           "is closed only once it has ended", field=field)
    if value < DB_EARLIEST:
        raise InvalidInput(f"{field}: {value:%m/%d/%Y} is before 1900", field=field)
    return value


def report_settings_clean(values: dict, *, today: date) -> dict:
    """The checked values (the practice's `today` bounds the cost-report date)."""
    unknown = sorted(set(values) - set(SETTINGS_FIELDS))
    if unknown:
        raise InvalidInput(f"not a report setting: {', '.join(unknown)}", field=unknown[0])
    out = {}
    for name, value in values.items():
        if name.startswith("medicare_ptan"):
            out[name] = _ptan(value, field=name)
        elif name == "report_contact_name":
            out[name] = _text(value, field=name, max_length=100)
        elif name == "report_contact_phone":
            out[name] = _phone(value, field=name)
        elif name == "review_sample_size":
            out[name] = _sample(value, field=name)
        else:
            out[name] = _day(value, field=name, today=today)
    return out


@transaction.atomic
def report_settings_update(*, practice_id, actor, reason: str, **fields) -> ReportSettings:
    """Change a practice's report settings (its managers); the row is created with its defaults first
    when the practice has none. Only what differs is saved, with one history row (a new row's first
    history row carries the values given)."""
    reason = require_reason(reason)
    pid = parse_id(practice_id, field="practice")
    practice = Practice.objects.filter(pk=pid).first()
    if practice is None:
        raise NotFound(f"unknown practice {practice_id}", field="practice")
    try:
        ensure_staff(actor, pid, manager=True)
    except PermissionDenied as exc:
        raise PermissionDenied(f"only a manager of practice {pid} changes its report settings ({exc.message})",
                               field="practice") from None
    values = report_settings_clean(fields, today=practice_today(practice))
    lock(practices=[pid])
    row = ReportSettings.objects.filter(practice_id=pid).first()
    if row is None:
        row = ReportSettings(practice_id=pid, **values)
        save_with_history(row, actor=actor, reason=reason)
        return row
    changed = [name for name, value in values.items() if getattr(row, name) != value]
    for name in changed:
        setattr(row, name, values[name])
    if changed:
        save_with_history(row, actor=actor, reason=reason, update_fields=changed)
    return row
