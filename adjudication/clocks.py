"""The clocks of rule 17, as data: which `ClockRule` applies to a case, and the dates it gives.

Rule choice (`rule_for`, and the same in SQL in `refresh_clocks`): the rules of the clock's kind
that are active and in effect on the day the money was determined (effective_from <= day <=
effective_to; blank ends are open); a rule only for billed claims (Florida) only when the money's
visit had a claim billed to an insurer or government program; then the most specific one: a
state's before "any state", a payer type's before "any payer" (so the law of the state, or the
federal Medicare rule, always beats a general policy), and for the same state and payer type a
practice's own rule before the rule for every practice (a practice may set a stricter policy for its
state), then the latest effective_from, the lowest id. A practice's own "any state" rule therefore
replaces the default of 60 days only where no state's law applies ("other states: the practice's
own policy", rule 17).

Which clock a case runs (`apply_clock`):

* a payer credit: the payer return clock of its payer type (Medicare and Medicaid: 60 days, a
  timely good-faith investigation suspends it for at most 180 days from identification);
* a patient credit, or a visit paid beyond its charge: the patient refund clock of the practice's
  state (the provider's state law: Texas 30 days, California a notice within 90 days and the refund
  30 days after it, Florida 30 days for billed claims from 2026, else the practice's policy).

Dates: the clock starts on `Case.determined_on` (the scan sets it in the practice's time zone);
"today" is the practice's today (`practice_today`). A case's `due_on` is blank while its clock is
paused (an investigation under a suspension rule) or stopped (the patient elected to keep the
credit where the rule lets that stop the clock); before a California notice is sent the first
deadline is the notice, so `due_on` is the notice's due day until the notice goes out, then the
notice day plus the rule's days.

Unclaimed property (`unclaimed_dates`): dormancy years from the last activity, presumed abandoned
on the state's cutoff day, reported on its report day, a due-diligence letter before the report
when the amount is above the state's threshold; nothing for amounts at or below a state's minimum
(Michigan 25.00)."""

import calendar
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.db import connection
from django.db.models import F, Q
from django.utils import timezone

from adjudication.models import Case, ClockRule
from ledger.bulk import history_from_table
from ledger.errors import NotFound
from ledger.inputs import parse_id
from ledger.models import Claim, Payer, Practice

PAYER_KIND = Case.Kind.PAYER_CREDIT


def practice_today(practice) -> date:
    """Today in the practice's time zone (a Practice or its id)."""
    return local_date(practice, timezone.now())


def local_date(practice, moment: datetime) -> date:
    """The calendar day of `moment` in the practice's time zone (a Practice or its id)."""
    if not isinstance(practice, Practice):
        practice = Practice.objects.only("time_zone").get(pk=practice)
    return moment.astimezone(ZoneInfo(practice.time_zone)).date()


def clock_kind_of(case: Case) -> str:
    """The clock a case runs: a payer credit returns money to the payer; the rest refunds a patient."""
    return ClockRule.Kind.PAYER_RETURN if case.kind == PAYER_KIND else ClockRule.Kind.PATIENT_REFUND


def _ordering():
    return [F("us_state").desc(), F("payer_type").desc(), F("practice_id").asc(nulls_last=True),
            F("effective_from").desc(nulls_last=True), "id"]


def rule_for(kind, *, practice, on: date, payer_type: str = "", us_state: str = "",
             billed: bool = False) -> ClockRule | None:
    """The rule of `kind` that applies to money determined `on` (see the module's docstring), or
    None when no rule covers it. `practice` is a Practice or its id."""
    practice_id = practice.pk if isinstance(practice, Practice) else practice
    qs = (ClockRule.objects.filter(kind=kind, active=True)
          .filter(Q(practice__isnull=True) | Q(practice_id=practice_id))
          .filter(Q(effective_from__isnull=True) | Q(effective_from__lte=on))
          .filter(Q(effective_to__isnull=True) | Q(effective_to__gte=on))
          .filter(us_state__in=sorted({"", us_state or ""}), payer_type__in=sorted({"", payer_type or ""})))
    if not billed:
        qs = qs.filter(billed_claims_only=False)
    # a state / payer type first ('' sorts last descending), then the practice's own (NULLs last)
    return qs.order_by(*_ordering()).first()


def visit_was_billed(encounter_id: int | None) -> bool:
    """Whether a visit had a claim billed to an insurer or government program (not self-pay)."""
    if encounter_id is None:
        return False
    return Claim.objects.filter(encounter_id=encounter_id).exclude(payer__payer_type=Payer.Type.SELF_PAY).exists()


def _case_visit_id(case: Case) -> int | None:
    if case.encounter_id is not None:
        return case.encounter_id
    if case.credit_id is not None:
        return case.credit.origin_encounter_id
    return None


def _case_payer_type(case: Case) -> str:
    if case.payer_type:
        return case.payer_type
    return case.payer.payer_type if case.payer_id is not None else ""


@dataclass(frozen=True)
class ClockDates:
    due_on: date | None
    notice_due_on: date | None
    clock_stopped: bool


def clock_dates(rule: ClockRule | None, *, determined_on: date, today: date, investigation_started_on=None,
                investigation_ended_on=None, notice_sent_on=None, election: str = "") -> ClockDates:
    """The dates a rule gives one case (pure; `refresh_clocks` computes the same in SQL)."""
    if rule is None:
        return ClockDates(None, None, False)
    notice_due = determined_on + timedelta(days=rule.notice_days) if rule.notice_days is not None else None
    if rule.election_stops_clock and election == "keep":
        return ClockDates(None, notice_due, True)
    if rule.notice_days is not None:
        due = notice_sent_on + timedelta(days=rule.days) if notice_sent_on is not None else notice_due
        return ClockDates(due, notice_due, False)
    plain_due = determined_on + timedelta(days=rule.days)
    if rule.suspension_max_days is not None and investigation_started_on is not None \
            and investigation_started_on <= plain_due:
        cap = determined_on + timedelta(days=rule.suspension_max_days)
        if investigation_ended_on is not None:
            return ClockDates(min(investigation_ended_on, cap) + timedelta(days=rule.days), None, False)
        if today < cap:
            return ClockDates(None, None, False)  # paused
        return ClockDates(cap + timedelta(days=rule.days), None, False)
    return ClockDates(plain_due, None, False)


def apply_clock(case: Case, *, today: date | None = None) -> None:
    """Set the case's clock_rule, due_on, notice_due_on and clock_stopped from the rules (no save)."""
    practice = case.practice
    today = today or practice_today(practice)
    determined_on = case.determined_on or today  # a case not saved yet: determined today
    kind = clock_kind_of(case)
    if kind == ClockRule.Kind.PAYER_RETURN:
        rule = rule_for(kind, practice=practice, on=determined_on, payer_type=_case_payer_type(case),
                        us_state=practice.us_state, billed=True)
    else:
        rule = rule_for(kind, practice=practice, on=determined_on, us_state=practice.us_state,
                        billed=visit_was_billed(_case_visit_id(case)))
    dates = clock_dates(rule, determined_on=determined_on, today=today,
                        investigation_started_on=case.investigation_started_on,
                        investigation_ended_on=case.investigation_ended_on, notice_sent_on=case.notice_sent_on,
                        election=case.election)
    case.clock_rule = rule
    case.due_on, case.notice_due_on, case.clock_stopped = dates.due_on, dates.notice_due_on, dates.clock_stopped


def is_paused(case: Case, today: date) -> bool:
    """The clock waits on a good-faith investigation (due_on blank, investigation open, not stopped)."""
    return (case.due_on is None and not case.clock_stopped and case.investigation_started_on is not None
            and case.investigation_ended_on is None and case.state != Case.State.RESOLVED)


def days_left(case: Case, today: date) -> int | None:
    """Days until the due date (negative: overdue); None while the clock is paused, stopped or absent."""
    if case.due_on is None:
        return None
    return (case.due_on - today).days


def is_flagged(case: Case, *, warning_days: int, today: date) -> bool:
    """An open case due within the warning window, or overdue."""
    left = days_left(case, today)
    return case.state != Case.State.RESOLVED and left is not None and left <= warning_days


_REFRESH_SQL = """
WITH target AS (
    SELECT c.id, c.determined_on, c.investigation_started_on, c.investigation_ended_on, c.notice_sent_on,
           c.election,
           CASE WHEN c.kind = %(payer_kind)s THEN %(payer_return)s ELSE %(patient_refund)s END AS clock_kind,
           CASE WHEN c.kind = %(payer_kind)s THEN COALESCE(NULLIF(c.payer_type, ''), py.payer_type, '')
                ELSE '' END AS payer_type,
           (c.kind = %(payer_kind)s OR EXISTS (
               SELECT 1 FROM ledger_claim cl JOIN ledger_payer bp ON bp.id = cl.payer_id
               WHERE cl.encounter_id = COALESCE(c.encounter_id, cr.origin_encounter_id)
                 AND bp.payer_type <> %(self_pay)s)) AS billed
    FROM adjudication_case c
    LEFT JOIN credits_credit cr ON cr.id = c.credit_id
    LEFT JOIN ledger_payer py ON py.id = c.payer_id
    WHERE c.practice_id = %(practice_id)s AND c.state <> 'resolved' {case_filter}
), chosen AS (
    SELECT t.*, r.id AS rule_id, r.days, r.notice_days, r.suspension_max_days, r.election_stops_clock
    FROM target t
    LEFT JOIN LATERAL (
        SELECT r.id, r.days, r.notice_days, r.suspension_max_days, r.election_stops_clock
        FROM adjudication_clockrule r
        WHERE r.kind = t.clock_kind AND r.active
          AND (r.practice_id IS NULL OR r.practice_id = %(practice_id)s)
          AND (r.effective_from IS NULL OR r.effective_from <= t.determined_on)
          AND (r.effective_to IS NULL OR r.effective_to >= t.determined_on)
          AND r.us_state IN ('', %(us_state)s) AND r.payer_type IN ('', t.payer_type)
          AND (NOT r.billed_claims_only OR t.billed)
        ORDER BY r.us_state DESC, r.payer_type DESC, r.practice_id ASC NULLS LAST,
                 r.effective_from DESC NULLS LAST, r.id
        LIMIT 1
    ) r ON TRUE
), computed AS (
    SELECT id, rule_id,
           (rule_id IS NOT NULL AND election_stops_clock AND election = 'keep') AS stopped,
           CASE WHEN rule_id IS NOT NULL AND notice_days IS NOT NULL THEN determined_on + notice_days END
               AS notice_due,
           CASE
               WHEN rule_id IS NULL THEN NULL
               WHEN election_stops_clock AND election = 'keep' THEN NULL
               WHEN notice_days IS NOT NULL THEN
                   CASE WHEN notice_sent_on IS NOT NULL THEN notice_sent_on + days
                        ELSE determined_on + notice_days END
               WHEN suspension_max_days IS NOT NULL AND investigation_started_on IS NOT NULL
                    AND investigation_started_on <= determined_on + days THEN
                   CASE WHEN investigation_ended_on IS NOT NULL
                            THEN LEAST(investigation_ended_on, determined_on + suspension_max_days) + days
                        WHEN %(today)s::date < determined_on + suspension_max_days THEN NULL
                        ELSE determined_on + suspension_max_days + days END
               ELSE determined_on + days
           END AS due
    FROM chosen
)
UPDATE adjudication_case c
SET clock_rule_id = x.rule_id, due_on = x.due, notice_due_on = x.notice_due, clock_stopped = x.stopped
FROM computed x
WHERE c.id = x.id
  AND (c.clock_rule_id, c.due_on, c.notice_due_on, c.clock_stopped)
      IS DISTINCT FROM (x.rule_id, x.due, x.notice_due, x.stopped)
RETURNING c.id
"""


def refresh_clocks(*, practice_id: int, case_ids=None, today: date | None = None, actor=None,
                   reason: str = "Clock refreshed from the rules") -> int:
    """Recompute the clocks of a practice's open cases (or of `case_ids`) in one UPDATE: the rule
    is chosen per case in SQL (a LATERAL subquery on the small rules table), the dates computed as
    `clock_dates` does. Only rows whose clock changed are written; returns how many. With an
    `actor`, the changed cases get a history row each (one INSERT ... SELECT)."""
    practice = Practice.objects.only("us_state", "time_zone").filter(pk=parse_id(practice_id, field="practice")).first()
    if practice is None:
        raise NotFound(f"unknown practice {practice_id}", field="practice")
    today = today or practice_today(practice)
    params = {
        "practice_id": practice.pk, "us_state": practice.us_state or "", "today": today,
        "payer_kind": Case.Kind.PAYER_CREDIT.value, "payer_return": ClockRule.Kind.PAYER_RETURN.value,
        "patient_refund": ClockRule.Kind.PATIENT_REFUND.value, "self_pay": Payer.Type.SELF_PAY.value,
    }
    case_filter = ""
    if case_ids is not None:
        params["case_ids"] = [parse_id(i, field="case_ids") for i in case_ids]
        if not params["case_ids"]:
            return 0
        case_filter = "AND c.id = ANY(%(case_ids)s)"
    with connection.cursor() as cur:
        cur.execute(_REFRESH_SQL.format(case_filter=case_filter), params)
        changed = [row[0] for row in cur.fetchall()]
    if actor is not None and changed:
        history_from_table(Case, ((pk, reason) for pk in changed), user_id=actor.pk, at=timezone.now())
    return len(changed)


# --- unclaimed property ------------------------------------------------------------------------------

@dataclass(frozen=True)
class UnclaimedDates:
    dormant_on: date
    presumed_on: date
    letter_due_on: date | None
    report_due_on: date
    report_year: int


def _day(year: int, month: int, day: int) -> date:
    """month/day of `year`, the month's last day when it has fewer days (29 Feb, 31 Jun)."""
    return date(year, month, min(day, calendar.monthrange(year, month)[1]))


def _add_years(d: date, years: int) -> date:
    return _day(d.year + years, d.month, d.day)


def _on_or_after(start: date, month: int, day: int) -> date:
    d = _day(start.year, month, day)
    return d if d >= start else _day(start.year + 1, month, day)


def unclaimed_dates(rule: ClockRule | None, *, last_activity_on: date, amount) -> UnclaimedDates | None:
    """When a credit untouched since `last_activity_on` is presumed abandoned, when its
    due-diligence letter (above the rule's threshold) and the holder report are due; None when the
    rule is no unclaimed-property rule or the amount is not escheated (at or below its minimum)."""
    if rule is None or rule.kind != ClockRule.Kind.UNCLAIMED:
        return None
    amount = Decimal(amount)
    if rule.min_amount is not None and amount <= rule.min_amount:
        return None
    dormant_on = _add_years(last_activity_on, rule.dormancy_years)
    presumed_on = _on_or_after(dormant_on, rule.cutoff_month, rule.cutoff_day)
    report_due_on = _on_or_after(presumed_on, rule.report_month, rule.report_day)
    letter_due_on = None
    needs_letter = rule.letter_threshold is None or amount > rule.letter_threshold
    if rule.letter_month and rule.letter_day and needs_letter:
        letter_due_on = _day(report_due_on.year, rule.letter_month, rule.letter_day)
        if letter_due_on > report_due_on:  # the letter window of a report early in the year: the year before
            letter_due_on = _day(report_due_on.year - 1, rule.letter_month, rule.letter_day)
    return UnclaimedDates(dormant_on, presumed_on, letter_due_on, report_due_on, report_due_on.year)


def unclaimed_rule_for(*, practice, owner_state: str, on: date) -> ClockRule | None:
    """The unclaimed-property rule of the owner's (patient's) state in effect `on`."""
    if not owner_state:
        return None
    return rule_for(ClockRule.Kind.UNCLAIMED, practice=practice, on=on, us_state=owner_state)


__all__ = ["ClockDates", "UnclaimedDates", "apply_clock", "clock_dates", "clock_kind_of", "days_left", "is_flagged",
           "is_paused", "local_date", "practice_today", "refresh_clocks", "rule_for", "unclaimed_dates",
           "unclaimed_rule_for", "visit_was_billed"]
