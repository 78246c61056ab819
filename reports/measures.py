"""The measures of DOMAIN rule 21, per practice, for a period of local dates [date_from, date_to].

A *resolution* is a case's move to "resolved" (its CaseEvent with to_state resolved) inside the
period; a case resolved, reopened and resolved again counts twice.

* turnaround: mean hours from the case's identification to each resolution;
* approval rate: approved ÷ decided proposals (decided in the period; approved includes those
  carried out or later refused at carrying out, decided = approved + rejected);
* error rate: cases resolved in the period that were later reopened (a move out of "resolved") or
  failed a second review ÷ cases resolved in the period;
* aging: open cases as of the as-of date by days since identified (0-30, 31-60, 61-90, 91-180,
  181-365, over 365) with the money still left on each;
* credit balances and gross A/R from the journal as of the end of the as-of date: credit balances =
  patient credits (available and locked) + payer credits due; gross A/R = patient receivable +
  charges receivable (what payers have not yet paid or split to the patient); share = credit
  balances ÷ gross A/R, a warning above 3%;
* refunds issued in the period (count, amount, median days requested -> issued), the nightly runs of
  the period, the share of resolutions without staff action (resolved automatically by the nightly
  run, a recoupment or a refund policy, or kept by the patient's election), unmatched 835 claims by
  payer (waiting for staff now).

All figures are Decimal (rates to 4 places, hours to 2); None where there is nothing to measure."""

from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.db import connection

from ledger.errors import InvalidInput, NotFound
from ledger.models import Practice

REPLACED_SERVICE = {"turnaround_hours": Decimal("2.5"), "approval_rate": Decimal("0.87"),
                    "error_rate": Decimal("0.012")}
AR_WARNING = Decimal("0.03")
# (label, lowest day, highest day or None)
AGING_BUCKETS = (("0-30", 0, 30), ("31-60", 31, 60), ("61-90", 61, 90), ("91-180", 91, 180),
                 ("181-365", 181, 365), ("over 365", 366, None))
Q4 = Decimal("0.0001")
Q2 = Decimal("0.01")


def _rows(sql: str, params: dict) -> list[tuple]:
    with connection.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def _ratio(num, den, q=Q4):
    return (Decimal(num) / Decimal(den)).quantize(q) if den else None


def _bounds(practice, date_from: date, date_to: date):
    tz = ZoneInfo(practice.time_zone)
    return (datetime.combine(date_from, time(0), tzinfo=tz),
            datetime.combine(date_to + timedelta(days=1), time(0), tzinfo=tz))


RESOLUTIONS_SQL = """
WITH res AS (
    SELECT ev.case_id, ev.at, ev.data, c.identified_at, c.automatic, c.outcome
      FROM adjudication_caseevent ev JOIN adjudication_case c ON c.id = ev.case_id
     WHERE c.practice_id = %(p)s AND ev.to_state = 'resolved' AND ev.from_state <> 'resolved'
       AND ev.at >= %(start)s AND ev.at < %(end)s
)
SELECT COUNT(*), AVG(EXTRACT(EPOCH FROM (res.at - res.identified_at))) / 3600,
       COUNT(DISTINCT res.case_id),
       COUNT(DISTINCT res.case_id) FILTER (WHERE EXISTS (
           SELECT 1 FROM adjudication_caseevent later WHERE later.case_id = res.case_id
              AND later.from_state = 'resolved' AND later.to_state <> 'resolved' AND later.at > res.at)
           OR EXISTS (SELECT 1 FROM reports_casereview r WHERE r.case_id = res.case_id AND r.state = 'failed')),
       COUNT(*) FILTER (WHERE res.automatic OR res.outcome = 'kept' OR res.data->>'via' = 'refund_policy')
  FROM res
"""

PROPOSALS_SQL = """
SELECT COUNT(*) FILTER (WHERE p.state IN ('approved', 'carried_out', 'refused')),
       COUNT(*) FILTER (WHERE p.state = 'rejected')
  FROM adjudication_proposal p JOIN adjudication_case c ON c.id = p.case_id
 WHERE c.practice_id = %(p)s AND p.decided_at >= %(start)s AND p.decided_at < %(end)s
"""

OPEN_CASES_SQL = """
SELECT c.source, c.cause, COALESCE(py.name, ''), (%(as_of)s - (c.identified_at AT TIME ZONE %(tz)s)::date) AS days,
       CASE c.kind WHEN 'patient_credit' THEN COALESCE(cr.on_hand + cr.refund_hold, 0)
                   WHEN 'payer_credit' THEN COALESCE(pc.amount - pc.resolved_amount, 0)
                   ELSE c.amount END AS left_amount
  FROM adjudication_case c
  LEFT JOIN credits_credit cr ON cr.id = c.credit_id
  LEFT JOIN credits_payercredit pc ON pc.id = c.payer_credit_id
  LEFT JOIN ledger_payer py ON py.id = c.payer_id
 WHERE c.practice_id = %(p)s AND c.state <> 'resolved' AND (c.identified_at AT TIME ZONE %(tz)s)::date <= %(as_of)s
"""

BALANCES_SQL = """
SELECT COALESCE(-SUM(l.amount) FILTER (WHERE l.account IN ('credits_available', 'credits_locked', 'payer_credits')), 0),
       COALESCE(SUM(l.amount) FILTER (WHERE l.account IN ('patient_receivable', 'charges_receivable')), 0)
  FROM ledger_journalline l JOIN ledger_journalentry e ON e.id = l.entry_id
 WHERE l.practice_id = %(p)s AND e.created_at < %(cut)s
   AND l.account IN ('credits_available', 'credits_locked', 'payer_credits', 'patient_receivable',
                     'charges_receivable')
"""

REFUNDS_SQL = """
SELECT COUNT(*), COALESCE(SUM(amount), 0),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM (issued_at - requested_at)) / 86400)
  FROM credits_refund WHERE practice_id = %(p)s AND state = 'issued' AND issued_at >= %(start)s AND issued_at < %(end)s
"""

NIGHTLY_SQL = """
SELECT started_at, status, application_count, applied_total, released_credits
  FROM credits_nightlyrun WHERE practice_id = %(p)s AND started_at >= %(start)s AND started_at < %(end)s
 ORDER BY started_at
"""

UNMATCHED_SQL = """
SELECT COALESCE(NULLIF(t.payer_name, ''), '(payer not named)'), COUNT(*)
  FROM ledger_remittanceclaim rc JOIN ledger_remittancetransaction t ON t.id = rc.transaction_id
 WHERE rc.practice_id = %(p)s AND rc.state IN ('unmatched', 'held_reversal', 'failed')
 GROUP BY 1 ORDER BY 2 DESC, 1
"""


def _practice(practice_id: int) -> Practice:
    practice = Practice.objects.filter(pk=practice_id).first()
    if practice is None:
        raise NotFound(f"practice {practice_id} not found", field="practice")
    return practice


def check_period(date_from: date, date_to: date) -> None:
    if date_to < date_from:
        raise InvalidInput(f"date_to: {date_to:%m/%d/%Y} is before date_from {date_from:%m/%d/%Y}", field="date_to")
    if (date_to - date_from).days > 3660:
        raise InvalidInput("date_from: a period of at most ten years", field="date_from")


def work_rates(practice: Practice, start: datetime, end: datetime) -> dict:
    p = {"p": practice.pk, "start": start, "end": end}
    resolutions, hours, resolved_cases, errors, automatic = _rows(RESOLUTIONS_SQL, p)[0]
    approved, rejected = _rows(PROPOSALS_SQL, p)[0]
    return {
        "resolutions": resolutions, "resolved_cases": resolved_cases, "errors": errors,
        "turnaround_hours": Decimal(hours).quantize(Q2) if hours is not None else None,
        "approved": approved, "rejected": rejected, "approval_rate": _ratio(approved, approved + rejected),
        "error_rate": _ratio(errors, resolved_cases), "automatic": automatic,
        "automatic_share": _ratio(automatic, resolutions),
    }


def balances(practice: Practice, as_of: date) -> dict:
    cut = datetime.combine(as_of + timedelta(days=1), time(0), tzinfo=ZoneInfo(practice.time_zone))
    credit, ar = _rows(BALANCES_SQL, {"p": practice.pk, "cut": cut})[0]
    share = _ratio(credit, ar)
    return {"credit_balances": credit, "gross_ar": ar, "share_of_ar": share,
            "share_warning": share is not None and share > AR_WARNING}


def measures(*, practice_id: int, date_from: date, date_to: date, as_of: date | None = None) -> dict:
    practice = _practice(practice_id)
    check_period(date_from, date_to)
    as_of = as_of or date_to
    start, end = _bounds(practice, date_from, date_to)
    p = {"p": practice.pk, "start": start, "end": end, "as_of": as_of, "tz": practice.time_zone}
    out = {"practice": practice.pk, "practice_name": practice.name, "date_from": date_from, "date_to": date_to,
           "as_of": as_of, **work_rates(practice, start, end), **balances(practice, as_of)}
    aging = {label: [0, Decimal("0.00")] for label, _, _ in AGING_BUCKETS}
    by = {"source": {}, "cause": {}, "payer": {}}
    for source, cause, payer, days, left in _rows(OPEN_CASES_SQL, p):
        label = next(lbl for lbl, lo, hi in AGING_BUCKETS if days >= lo and (hi is None or days <= hi))
        aging[label][0] += 1
        aging[label][1] += left
        for key, value in (("source", source or "payer"), ("cause", cause), ("payer", payer or "(patient)")):
            slot = by[key].setdefault(value, [0, Decimal("0.00")])
            slot[0] += 1
            slot[1] += left
    out["aging"] = [(label, n, amount) for label, (n, amount) in aging.items()]
    for key in by:
        out[f"by_{key}"] = sorted(((k, n, a) for k, (n, a) in by[key].items()), key=lambda r: (-r[2], r[0]))
    count, amount, median = _rows(REFUNDS_SQL, p)[0]
    out["refunds_issued"] = {"count": count, "amount": amount,
                             "median_days": Decimal(median).quantize(Q2) if median is not None else None}
    out["nightly_runs"] = [{"started_at": r[0], "status": r[1], "applications": r[2], "applied": r[3],
                            "released": r[4]} for r in _rows(NIGHTLY_SQL, p)]
    out["unmatched_by_payer"] = _rows(UNMATCHED_SQL, p)
    out["replaced_service"] = REPLACED_SERVICE
    return out


WEEKLY_BALANCES_SQL = """
SELECT ((e.created_at AT TIME ZONE %(tz)s)::date - %(first)s) / 7 AS week,
       COALESCE(-SUM(l.amount) FILTER (WHERE l.account IN ('credits_available', 'credits_locked', 'payer_credits')), 0),
       COALESCE(SUM(l.amount) FILTER (WHERE l.account IN ('patient_receivable', 'charges_receivable')), 0)
  FROM ledger_journalline l JOIN ledger_journalentry e ON e.id = l.entry_id
 WHERE l.practice_id = %(p)s AND e.created_at < %(cut)s
   AND l.account IN ('credits_available', 'credits_locked', 'payer_credits', 'patient_receivable',
                     'charges_receivable')
 GROUP BY 1
"""


def trend(*, practice_id: int, end: date, weeks: int = 12) -> list[dict]:
    """Weekly points (each week ends on a day of `end`'s weekday) of turnaround, approval and error
    rates, resolutions, credit balances and their share of gross A/R. The balances come from one
    pass over the journal (weekly sums, then running totals); the rates from two queries per week."""
    if not 1 <= weeks <= 104:
        raise InvalidInput("weeks: between 1 and 104", field="weeks")
    practice = _practice(practice_id)
    first = end - timedelta(days=7 * weeks - 1)  # the first day of the first week
    tz = ZoneInfo(practice.time_zone)
    cut = datetime.combine(end + timedelta(days=1), time(0), tzinfo=tz)
    sums = {w: (c, a) for w, c, a in _rows(WEEKLY_BALANCES_SQL, {"p": practice.pk, "tz": practice.time_zone,
                                                                 "first": first, "cut": cut})}
    credit = sum((c for w, (c, _) in sums.items() if w < 0), Decimal("0.00"))
    ar = sum((a for w, (_, a) in sums.items() if w < 0), Decimal("0.00"))
    points = []
    for i in range(weeks):
        c, a = sums.get(i, (Decimal("0.00"), Decimal("0.00")))
        credit, ar = credit + c, ar + a
        week_start = first + timedelta(days=7 * i)
        week_end = week_start + timedelta(days=6)
        start, stop = _bounds(practice, week_start, week_end)
        rates = work_rates(practice, start, stop)
        share = _ratio(credit, ar)
        points.append({"week_end": week_end, "turnaround_hours": rates["turnaround_hours"],
                       "approval_rate": rates["approval_rate"], "error_rate": rates["error_rate"],
                       "resolutions": rates["resolutions"], "credit_balances": credit, "gross_ar": ar,
                       "share_of_ar": share})
    return points
