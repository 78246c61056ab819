"""Adjudication's rules and settings as services (DOMAIN rules 17 and 19): the clock rules table
(`ClockRule`), a practice's `AdjudicationSettings`, its `RefundPolicy` rows and its
`RefundApprovalBand` rows. The admin, the API and the shell save them only through these functions,
so the rules below hold wherever a change comes from.

* Who: a practice's rows are changed by managers of the practice (administrators anywhere); a
  general clock rule (blank practice: every practice uses it) only by administrators, since one
  practice's manager must not move every practice's clocks. Billing staff and other practices'
  managers are refused.
* What: every value is checked here (`*_clean` field by field, `*_check` the row as a whole), each
  failure an InvalidInput naming the field; the database's CHECK and unique constraints stay as
  the backstop. Rows are never deleted: a clock rule or a policy is retired with `active=False`.
* How: one transaction each (atomic, not durable: the admin's change form saves inside its own),
  the practice row(s) locked first (ledger.locks ORDER), which serialises the changes of one
  practice's rows (and, for a general rule, of every practice), the row re-read under that lock,
  then only what differs saved with one history row carrying the actor and the reason.
* A clock rule change moves the clocks at once: the open cases of the practices concerned (the
  rule's practice; every practice for a general rule) are locked and their clocks recomputed by
  `adjudication.clocks.refresh_clocks` in the same transaction, so the work queue shows the new due
  dates (each changed case gets a history row naming the rule and the reason). Unclaimed-property
  rules give no case clock; their dates move at the next scan's `unclaimed_find`."""

import calendar
from datetime import date
from email.utils import parseaddr

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import connection, transaction

from adjudication.clocks import refresh_clocks
from adjudication.models import (
    AdjudicationSettings,
    Case,
    ClockRule,
    RefundApprovalBand,
    RefundPolicy,
    UnclaimedProperty,
)
from ledger.access import ensure_staff
from ledger.errors import Duplicate, InvalidInput, NotFound, PermissionDenied, RuleViolation
from ledger.history import save_with_history
from ledger.inputs import parse_id, require_reason, us_state_code
from ledger.locks import lock, lock_sql
from ledger.models import Payer, Practice
from ledger.money import nonnegative_money, positive_money

DAYS_MAX = 3650  # every day count's upper bound (the models' CHECKs)
DORMANCY_YEARS_MAX = 99

# --- small checks -----------------------------------------------------------------------------------


def _text(value, *, field: str, max_length: int | None = None, required: bool = False) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidInput(f"{field}: not text", field=field)
    value = value.strip()
    if required and not value:
        raise InvalidInput(f"{field}: required", field=field)
    if max_length is not None and len(value) > max_length:
        raise InvalidInput(f"{field}: {len(value):,} characters; at most {max_length}", field=field)
    return value


def _flag(value, *, field: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(f"{field}: must be true or false (got {value!r})", field=field)
    return value


def _whole(value, *, field: str, low: int, high: int, blank: bool = False) -> int | None:
    """A whole number in low..high (None when `blank` allows it)."""
    if value is None or value == "":
        if blank:
            return None
        raise InvalidInput(f"{field}: required (a whole number from {low} to {high})", field=field)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{field}: a whole number from {low} to {high} is required (got {value!r})", field=field)
    if not low <= value <= high:
        raise InvalidInput(f"{field}: a whole number from {low} to {high} (got {value})", field=field)
    return value


def _day(value, *, field: str) -> date | None:
    if value is None or value == "":
        return None
    if not isinstance(value, date):
        try:
            value = date.fromisoformat(str(value).strip())
        except ValueError:
            raise InvalidInput(f"{field}: '{value}' is not a date (YYYY-MM-DD)", field=field) from None
    return value


def _money(value, *, field: str, positive: bool = False, blank: bool = True):
    if value is None or value == "":
        if blank:
            return None
        raise InvalidInput(f"{field}: required", field=field)
    return positive_money(value, field=field) if positive else nonnegative_money(value, field=field)


def _only(values: dict, allowed, *, what: str) -> None:
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise InvalidInput(f"not {what}: {', '.join(unknown)}", field=unknown[0])


def _save_changes(obj, values: dict, *, actor, reason: str) -> list[str]:
    """Set the values that differ and save only those, with one history row; [] when nothing changed."""
    fields = [name for name, value in values.items() if getattr(obj, name) != value]
    for name in fields:
        setattr(obj, name, values[name])
    if fields:
        save_with_history(obj, actor=actor, reason=reason, update_fields=fields)
    return fields


def _practice_id(practice_id) -> int:
    pid = parse_id(practice_id, field="practice")
    if not Practice.objects.filter(pk=pid).exists():
        raise NotFound(f"unknown practice {practice_id}", field="practice")
    return pid


def _manager(actor, practice_id: int, what: str) -> None:
    """Managers of the practice (administrators and the system anywhere) change its `what`."""
    try:
        ensure_staff(actor, practice_id, manager=True)
    except PermissionDenied as exc:
        raise PermissionDenied(f"only a manager of practice {practice_id} changes its {what} ({exc.message})",
                               field="practice") from None


# --- clock rules (rule 17) --------------------------------------------------------------------------

REFUND_CLOCK_FIELDS = ("days", "notice_days", "suspension_max_days")
REFUND_CLOCK_FLAGS = ("election_stops_clock", "billed_claims_only")
UNCLAIMED_FIELDS = ("dormancy_years", "cutoff_month", "cutoff_day", "letter_month", "letter_day", "letter_threshold",
                    "report_month", "report_day", "min_amount")
MONTH_DAY_PAIRS = (("cutoff_month", "cutoff_day"), ("letter_month", "letter_day"), ("report_month", "report_day"))
# what a clock rule's create and update take (the practice is given to create only: a rule's scope is fixed)
CLOCK_RULE_FIELDS = ("kind", "name", "payer_type", "us_state", "effective_from", "effective_to", "active",
                     *REFUND_CLOCK_FIELDS, *REFUND_CLOCK_FLAGS, *UNCLAIMED_FIELDS, "citation", "note")
CLOCK_RULE_DEFAULTS = {"payer_type": "", "us_state": "", "effective_from": None, "effective_to": None, "active": True,
                       "notice_days": None, "suspension_max_days": None, "days": None, "election_stops_clock": False,
                       "billed_claims_only": False, "citation": "", "note": "",
                       **{name: None for name in UNCLAIMED_FIELDS}}


def clock_rule_clean(values: dict) -> dict:
    """The checked values of clock-rule fields, each alone (the admin form runs it field by field);
    `clock_rule_check` then checks the rule as a whole."""
    _only(values, CLOCK_RULE_FIELDS, what="a clock rule field")
    out = {}
    for name, value in values.items():
        if name == "kind":
            if value not in ClockRule.Kind.values:
                raise InvalidInput(f"kind: '{value}' is not one of {', '.join(ClockRule.Kind.values)}", field=name)
            out[name] = str(value)
        elif name == "name":
            out[name] = _text(value, field=name, max_length=200, required=True)
        elif name == "citation":
            out[name] = _text(value, field=name, max_length=300)
        elif name == "note":
            out[name] = _text(value, field=name)
        elif name == "payer_type":
            text = _text(value, field=name).lower()
            if text and text not in Payer.Type.values:
                raise InvalidInput(f"payer_type: '{value}' is not one of {', '.join(Payer.Type.values)} "
                                   "(blank: any payer)", field=name)
            out[name] = text
        elif name == "us_state":
            text = _text(value, field=name)
            out[name] = us_state_code(text, field=name) if text else ""
        elif name in ("effective_from", "effective_to"):
            out[name] = _day(value, field=name)
        elif name in ("active", *REFUND_CLOCK_FLAGS):
            out[name] = _flag(value, field=name)
        elif name in REFUND_CLOCK_FIELDS:
            out[name] = _whole(value, field=name, low=1, high=DAYS_MAX, blank=True)
        elif name == "dormancy_years":
            out[name] = _whole(value, field=name, low=1, high=DORMANCY_YEARS_MAX, blank=True)
        elif name.endswith("_month"):
            out[name] = _whole(value, field=name, low=1, high=12, blank=True)
        elif name.endswith("_day"):
            out[name] = _whole(value, field=name, low=1, high=31, blank=True)
        else:  # letter_threshold, min_amount
            out[name] = _money(value, field=name)
    return out


def clock_rule_check(values: dict) -> None:
    """The rule as a whole (all of CLOCK_RULE_FIELDS, checked by clock_rule_clean): what its kind
    needs is there, what belongs to the other kind is blank, each month/day is a real calendar day
    (29 February counts: leap years have it), the dates are in order."""
    kind = values.get("kind")
    if kind not in ClockRule.Kind.values:
        raise InvalidInput("kind: required", field="kind")
    if kind == ClockRule.Kind.UNCLAIMED:
        for name in ("dormancy_years", "cutoff_month", "cutoff_day", "report_month", "report_day"):
            if values.get(name) is None:
                raise InvalidInput(f"{name}: required for an unclaimed-property rule", field=name)
        for name in REFUND_CLOCK_FIELDS:
            if values.get(name) is not None:
                raise InvalidInput(f"{name}: an unclaimed-property rule has no refund clock (leave it blank)",
                                   field=name)
        for name in REFUND_CLOCK_FLAGS:
            if values.get(name):
                raise InvalidInput(f"{name}: not for an unclaimed-property rule", field=name)
        if values.get("payer_type"):
            raise InvalidInput("payer_type: an unclaimed-property rule is for a patient's credit (leave it blank)",
                               field="payer_type")
        if (values.get("letter_month") is None) != (values.get("letter_day") is None):
            name = "letter_day" if values.get("letter_day") is None else "letter_month"
            raise InvalidInput(f"{name}: the letter's month and day go together (both or neither)", field=name)
        for month_name, day_name in MONTH_DAY_PAIRS:
            month, day = values.get(month_name), values.get(day_name)
            if month is not None and day is not None and day > calendar.monthrange(2024, month)[1]:
                raise InvalidInput(f"{day_name}: {calendar.month_name[month]} has no day {day}", field=day_name)
    else:
        if values.get("days") is None:
            raise InvalidInput(f"days: required (1 to {DAYS_MAX}) for a {ClockRule.Kind(kind).label.lower()} rule",
                               field="days")
        for name in UNCLAIMED_FIELDS:
            if values.get(name) is not None:
                raise InvalidInput(f"{name}: only for an unclaimed-property rule (leave it blank)", field=name)
        if kind == ClockRule.Kind.PATIENT_REFUND and values.get("payer_type"):
            raise InvalidInput("payer_type: a patient-refund rule is for the practice's state, not a payer type "
                               "(leave it blank)", field="payer_type")
    start, end = values.get("effective_from"), values.get("effective_to")
    if start is not None and end is not None and end < start:
        raise InvalidInput(f"effective_to: {end:%Y-%m-%d} is before effective_from {start:%Y-%m-%d}",
                           field="effective_to")


def ensure_rule_editor(actor, practice_id: int | None) -> None:
    """Who changes a clock rule: a manager of the rule's practice; a general rule (blank practice),
    administrators only."""
    if actor is None or not getattr(actor, "pk", None):
        raise PermissionDenied("an acting user is required")
    if practice_id is None:
        if not actor.is_superuser:
            raise PermissionDenied("only an administrator changes a clock rule every practice uses (blank "
                                   "practice); add a rule for your practice instead", field="practice")
        return
    _manager(actor, practice_id, "clock rules")


def _lock_rule_scope(practice_id: int | None) -> list[int]:
    """Lock the practices a rule concerns (its own, or every practice for a general rule), then
    their open cases, in the ORDER of ledger.locks; returns the practice ids."""
    if practice_id is not None:
        ids = [practice_id]
    else:
        ids = list(Practice.objects.order_by("pk").values_list("pk", flat=True))
    lock(practices=ids)
    if ids:
        with connection.cursor() as cur:
            cur.execute(lock_sql("cases", where="practice_id = ANY(%s) AND state <> %s"),
                        [ids, Case.State.RESOLVED.value])
    return ids


def _refresh(rule: ClockRule, practice_ids: list[int], *, kinds: set, actor, reason: str) -> int:
    """Recompute the open cases' clocks of the practices (none for unclaimed-property rules)."""
    if kinds <= {ClockRule.Kind.UNCLAIMED}:
        return 0
    with_cases = set(Case.objects.open().filter(practice_id__in=practice_ids).values_list("practice_id", flat=True)
                     .distinct())
    text = f"Clock rule {rule.pk} ({rule.name}) changed: {reason}"
    return sum(refresh_clocks(practice_id=pid, actor=actor, reason=text) for pid in practice_ids if pid in with_cases)


@transaction.atomic
def clock_rule_create(*, actor, reason: str, practice_id: int | None = None, **fields) -> ClockRule:
    """Add a clock rule: a practice's own (its managers) or a general one (`practice_id` None:
    administrators). `fields` are CLOCK_RULE_FIELDS (kind and name required). The open cases'
    clocks of the practices concerned follow at once."""
    reason = require_reason(reason)
    pid = None if practice_id in (None, "") else _practice_id(practice_id)
    ensure_rule_editor(actor, pid)
    values = {**CLOCK_RULE_DEFAULTS, **clock_rule_clean(fields)}
    if "name" not in values:
        raise InvalidInput("name: required", field="name")
    clock_rule_check(values)
    practice_ids = _lock_rule_scope(pid)
    rule = ClockRule(practice_id=pid, **values)
    save_with_history(rule, actor=actor, reason=reason)
    _refresh(rule, practice_ids, kinds={rule.kind}, actor=actor, reason=reason)
    return rule


@transaction.atomic
def clock_rule_update(*, rule_id: int, actor, reason: str, changes: dict) -> ClockRule:
    """Change a clock rule (`changes`: some of CLOCK_RULE_FIELDS; retire it with active=False, rules
    are never deleted). Its practice is fixed. The kind is fixed once a case or an unclaimed-property
    row uses the rule. The open cases' clocks of the practices concerned follow at once."""
    reason = require_reason(reason)
    rule_id = parse_id(rule_id, field="rule")
    if "practice" in changes or "practice_id" in changes:
        raise InvalidInput("practice: a rule's practice is fixed; add a new rule (and retire this one)",
                           field="practice")
    values = clock_rule_clean(changes)
    row = ClockRule.objects.filter(pk=rule_id).only("pk", "practice_id").first()
    if row is None:
        raise NotFound(f"unknown clock rule {rule_id}", field="rule")
    ensure_rule_editor(actor, row.practice_id)
    practice_ids = _lock_rule_scope(row.practice_id)  # serialises every change of this rule
    rule = ClockRule.objects.get(pk=rule_id)
    merged = {name: getattr(rule, name) for name in CLOCK_RULE_FIELDS} | values
    clock_rule_check(merged)
    if merged["kind"] != rule.kind and (Case.objects.filter(clock_rule_id=rule.pk).exists()
                                        or UnclaimedProperty.objects.filter(rule_id=rule.pk).exists()):
        raise RuleViolation(f"kind: clock rule {rule.pk} is in use; its kind is fixed (retire it and add a new rule)",
                            field="kind")
    kinds = {rule.kind, merged["kind"]}
    if _save_changes(rule, values, actor=actor, reason=reason):
        _refresh(rule, practice_ids, kinds=kinds, actor=actor, reason=reason)
    return rule


# --- a practice's adjudication settings ---------------------------------------------------------------

SETTINGS_FIELDS = ("min_credit_age_days", "warning_window_days", "payer_credit_max_open_days",
                   "locked_credit_max_days", "notice_sender")
SETTINGS_DAY_RANGES = {"min_credit_age_days": DAYS_MAX, "warning_window_days": 365,
                       "payer_credit_max_open_days": DAYS_MAX, "locked_credit_max_days": DAYS_MAX}


def settings_clean(values: dict) -> dict:
    """The checked values of adjudication settings (the ranges of the model's CHECK; a real e-mail
    address, optionally with a display name, as the notices' sender)."""
    _only(values, SETTINGS_FIELDS, what="an adjudication setting")
    out = {}
    for name, value in values.items():
        if name == "notice_sender":
            text = _text(value, field=name, max_length=200)
            if text:
                _, address = parseaddr(text)
                try:
                    if "\n" in text or "\r" in text or not address:
                        raise ValidationError("bad")
                    validate_email(address)
                except ValidationError:
                    raise InvalidInput(f"notice_sender: '{text}' is not an e-mail address (blank: the server's "
                                       "default)", field=name) from None
            out[name] = text
        else:
            out[name] = _whole(value, field=name, low=0, high=SETTINGS_DAY_RANGES[name])
    return out


@transaction.atomic
def adjudication_settings_update(*, practice_id: int, actor, reason: str, changes: dict) -> AdjudicationSettings:
    """Change a practice's adjudication settings (managers of the practice); the row is created with
    its defaults first when the practice has none yet. Only what differs is saved, with one history
    row (a new row's first history row carries the values given)."""
    reason = require_reason(reason)
    pid = _practice_id(practice_id)
    _manager(actor, pid, "adjudication settings")
    values = settings_clean(changes)
    lock(practices=[pid])  # one settings row per practice: two first saves at once make one row
    row = AdjudicationSettings.objects.filter(practice_id=pid).first()
    if row is None:
        row = AdjudicationSettings(practice_id=pid, **values)
        save_with_history(row, actor=actor, reason=reason)
        return row
    _save_changes(row, values, actor=actor, reason=reason)
    return row


# --- refund policies and approval bands (rule 19) -----------------------------------------------------

POLICY_FIELDS = ("name", "active", "min_amount", "max_amount", "min_age_days", "require_no_open_balance",
                 "require_no_pending_claim")
POLICY_DEFAULTS = {"active": True, "min_amount": None, "max_amount": None, "min_age_days": 0,
                   "require_no_open_balance": True, "require_no_pending_claim": True}


def refund_policy_clean(values: dict) -> dict:
    _only(values, POLICY_FIELDS, what="a refund policy field")
    out = {}
    for name, value in values.items():
        if name == "name":
            out[name] = _text(value, field=name, max_length=200, required=True)
        elif name == "min_amount":
            out[name] = _money(value, field=name, positive=True, blank=False)
        elif name == "max_amount":
            out[name] = _money(value, field=name, positive=True)
        elif name == "min_age_days":
            out[name] = _whole(value, field=name, low=0, high=DAYS_MAX)
        else:
            out[name] = _flag(value, field=name)
    return out


def refund_policy_check(values: dict) -> None:
    low, high = values.get("min_amount"), values.get("max_amount")
    if low is None:
        raise InvalidInput("min_amount: required (more than 0.00)", field="min_amount")
    if high is not None and high < low:
        raise InvalidInput(f"max_amount: {high} is below the minimum {low}", field="max_amount")


@transaction.atomic
def refund_policy_create(*, practice_id: int, actor, reason: str, **fields) -> RefundPolicy:
    """Add a refund policy (managers of the practice). `fields`: POLICY_FIELDS (name and min_amount
    required)."""
    reason = require_reason(reason)
    pid = _practice_id(practice_id)
    _manager(actor, pid, "refund policies")
    values = {**POLICY_DEFAULTS, **refund_policy_clean(fields)}
    if "name" not in values:
        raise InvalidInput("name: required", field="name")
    refund_policy_check(values)
    lock(practices=[pid])
    policy = RefundPolicy(practice_id=pid, **values)
    save_with_history(policy, actor=actor, reason=reason)
    return policy


def _practice_row_for_change(model, row_id, changes: dict, *, clean, actor, field: str, noun: str, what: str):
    """The row of one practice that `changes` are for, under the practice's lock, and the cleaned
    changes: the id checked, the practice fixed, the values cleaned, the row found, the actor a
    manager of its practice (refund policies and bands alike)."""
    row_id = parse_id(row_id, field=field)
    if "practice" in changes or "practice_id" in changes:
        raise InvalidInput(f"practice: a {noun}'s practice is fixed", field="practice")
    values = clean(changes)
    pid = model.objects.filter(pk=row_id).values_list("practice_id", flat=True).first()
    if pid is None:
        raise NotFound(f"unknown {noun} {row_id}", field=field)
    _manager(actor, pid, what)
    lock(practices=[pid])
    return model.objects.get(pk=row_id), values


@transaction.atomic
def refund_policy_update(*, policy_id: int, actor, reason: str, changes: dict) -> RefundPolicy:
    """Change a refund policy (managers of its practice; retire it with active=False)."""
    reason = require_reason(reason)
    policy, values = _practice_row_for_change(RefundPolicy, policy_id, changes, clean=refund_policy_clean, actor=actor,
                                              field="policy", noun="refund policy", what="refund policies")
    refund_policy_check({name: getattr(policy, name) for name in POLICY_FIELDS} | values)
    _save_changes(policy, values, actor=actor, reason=reason)
    return policy


BAND_FIELDS = ("up_to", "role", "four_eyes")
BAND_ROLES = ("billing", "manager")


def refund_band_clean(values: dict) -> dict:
    _only(values, BAND_FIELDS, what="a refund approval band field")
    out = {}
    for name, value in values.items():
        if name == "up_to":
            out[name] = _money(value, field=name, positive=True)
        elif name == "role":
            if value not in BAND_ROLES:
                raise InvalidInput(f"role: '{value}' is not one of {', '.join(BAND_ROLES)}", field=name)
            out[name] = str(value)
        else:
            out[name] = _flag(value, field=name)
    return out


def _band_unique(pid: int, up_to, *, exclude_id: int | None = None) -> None:
    same = RefundApprovalBand.objects.filter(practice_id=pid, up_to=up_to)
    if exclude_id is not None:
        same = same.exclude(pk=exclude_id)
    if same.exists():
        which = f"up to {up_to}" if up_to is not None else "above the other bands (blank up_to)"
        raise Duplicate(f"up_to: practice {pid} already has a band {which}", field="up_to")


@transaction.atomic
def refund_band_create(*, practice_id: int, actor, reason: str, **fields) -> RefundApprovalBand:
    """Add a refund approval band (managers of the practice): refunds up to `up_to` (None: above
    every other band) need `role`, and with `four_eyes` someone other than the requester. One band
    per practice per up_to."""
    reason = require_reason(reason)
    pid = _practice_id(practice_id)
    _manager(actor, pid, "refund approval bands")
    values = {"up_to": None, "four_eyes": False, **refund_band_clean(fields)}
    if "role" not in values:
        raise InvalidInput(f"role: required ({', '.join(BAND_ROLES)})", field="role")
    lock(practices=[pid])  # the uniqueness check and the insert, one practice's bands at a time
    _band_unique(pid, values["up_to"])
    band = RefundApprovalBand(practice_id=pid, **values)
    save_with_history(band, actor=actor, reason=reason)
    return band


@transaction.atomic
def refund_band_update(*, band_id: int, actor, reason: str, changes: dict) -> RefundApprovalBand:
    """Change a refund approval band (managers of its practice)."""
    reason = require_reason(reason)
    band, values = _practice_row_for_change(RefundApprovalBand, band_id, changes, clean=refund_band_clean, actor=actor,
                                            field="band", noun="refund approval band", what="refund approval bands")
    if "up_to" in values and values["up_to"] != band.up_to:
        _band_unique(band.practice_id, values["up_to"], exclude_id=band.pk)
    _save_changes(band, values, actor=actor, reason=reason)
    return band
