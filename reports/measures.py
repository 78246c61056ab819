"""The measures of DOMAIN rule 21, per practice, for a period of local dates [date_from, date_to].

A *resolution* is a case's move to "resolved" (its CaseEvent with to_state resolved) inside the
period; a case resolved, reopened and resolved again counts twice.

* turnaround: mean hours from the case's identification to each resolution;
* approval rate: approved ÷ decided proposals (decided in the period; approved includes those
  carried out or later refused at carrying out, decided = approved + rejected);
* error rate: cases resolved in the period that were later reopened (a move out of "resolved") or
  failed a second review ÷ cases resolved in the period;
* aging: open cases as of the as-of date by days since identified (0-30, 31-60, 61-90, 91-180,
  181-365, over 365) with the money still left on each, and totals by source, cause and payer:
  from the day's latest OpenCasesSnapshot (the daily books job takes one after the nightly scan; a
  manager's "Refresh" another), else counted at once;
* credit balances and gross A/R from the journal as of the end of the as-of date: credit balances =
  patient credits (available and locked) + payer credits due; gross A/R = patient receivable +
  charges receivable (what payers have not yet paid or split to the patient); share = credit
  balances ÷ gross A/R, a warning above 3%. A closed day's closing balances are kept (BalanceDay,
  exact for good: a closed day's journal never changes), so "as of" reads one row plus, for an
  open day, the lines since the last closed one;
* refunds issued in the period (count, amount, median days requested -> issued), the nightly runs of
  the period, the share of resolutions without staff action (resolved automatically by the nightly
  run, a recoupment or a refund policy, or kept by the patient's election), unmatched 835 claims by
  payer (waiting for staff now).

All figures are Decimal (rates to 4 places, hours to 2); None where there is nothing to measure."""

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.db import connection
from django.utils import timezone

from ledger.access import ensure_staff
from ledger.dates import DB_EARLIEST, DB_LATEST
from ledger.errors import InvalidInput, NotFound
from ledger.models import Practice
from reports.models import BalanceDay, OpenCasesSnapshot

REPLACED_SERVICE = {"turnaround_hours": Decimal("2.5"), "approval_rate": Decimal("0.87"),
                    "error_rate": Decimal("0.012")}
AR_WARNING = Decimal("0.03")
# (label, lowest day, highest day or None)
AGING_BUCKETS = (("0-30", 0, 30), ("31-60", 31, 60), ("61-90", 61, 90), ("91-180", 91, 180),
                 ("181-365", 181, 365), ("over 365", 366, None))
Q4 = Decimal("0.0001")
Q2 = Decimal("0.01")
CLOSE_MARGIN = timedelta(hours=1)  # a day is closed an hour after its end (no transaction runs that long)


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


# the period's resolutions and decided proposals, grouped by {group} (0: one group; the trend: its week)
RESOLUTIONS_SQL = """
WITH res AS (
    SELECT ev.case_id, ev.at, ev.data, c.identified_at, c.automatic, c.outcome, {group} AS grp
      FROM adjudication_caseevent ev JOIN adjudication_case c ON c.id = ev.case_id
     WHERE c.practice_id = %(p)s AND ev.to_state = 'resolved' AND ev.from_state <> 'resolved'
       AND ev.at >= %(start)s AND ev.at < %(end)s
)
SELECT res.grp, COUNT(*), AVG(EXTRACT(EPOCH FROM (res.at - res.identified_at))) / 3600,
       COUNT(DISTINCT res.case_id),
       COUNT(DISTINCT res.case_id) FILTER (WHERE EXISTS (
           SELECT 1 FROM adjudication_caseevent later WHERE later.case_id = res.case_id
              AND later.from_state = 'resolved' AND later.to_state <> 'resolved' AND later.at > res.at)
           OR EXISTS (SELECT 1 FROM reports_casereview r WHERE r.case_id = res.case_id AND r.state = 'failed')),
       COUNT(*) FILTER (WHERE res.automatic OR res.outcome = 'kept' OR res.data->>'via' = 'refund_policy')
  FROM res GROUP BY res.grp
"""

PROPOSALS_SQL = """
SELECT {group} AS grp, COUNT(*) FILTER (WHERE p.state IN ('approved', 'carried_out', 'refused')),
       COUNT(*) FILTER (WHERE p.state = 'rejected')
  FROM adjudication_proposal p JOIN adjudication_case c ON c.id = p.case_id
 WHERE c.practice_id = %(p)s AND p.decided_at >= %(start)s AND p.decided_at < %(end)s
 GROUP BY 1
"""
WEEK_OF = "(({col} AT TIME ZONE %(tz)s)::date - %(first)s) / 7"

# the open cases as of a day, counted in one pass: aging buckets (width_bucket: 0 = 0-30 ... 5 = over
# 365) and totals by source, cause and payer (GROUPING SETS)
OPEN_CASES_SQL = """
WITH oc AS (
    SELECT COALESCE(c.source, '') AS source, c.cause, COALESCE(py.name, '') AS payer,
           width_bucket(%(as_of)s - (c.identified_at AT TIME ZONE %(tz)s)::date,
                        ARRAY[31, 61, 91, 181, 366]) AS bucket,
           CASE c.kind WHEN 'patient_credit' THEN COALESCE(cr.on_hand + cr.refund_hold, 0)
                       WHEN 'payer_credit' THEN COALESCE(pc.amount - pc.resolved_amount, 0)
                       ELSE c.amount END AS left_amount
      FROM adjudication_case c
      LEFT JOIN credits_credit cr ON cr.id = c.credit_id
      LEFT JOIN credits_payercredit pc ON pc.id = c.payer_credit_id
      LEFT JOIN ledger_payer py ON py.id = c.payer_id
     WHERE c.practice_id = %(p)s AND c.state <> 'resolved'
       AND (c.identified_at AT TIME ZONE %(tz)s)::date <= %(as_of)s
)
SELECT GROUPING(bucket), GROUPING(source), GROUPING(cause), bucket, source, cause, payer, COUNT(*), SUM(left_amount)
  FROM oc GROUP BY GROUPING SETS ((bucket), (source), (cause), (payer))
"""

CREDIT_ACCOUNTS_SQL = "('credits_available', 'credits_locked', 'payer_credits')"
AR_ACCOUNTS_SQL = "('patient_receivable', 'charges_receivable')"
BALANCE_SUMS = f"""COALESCE(-SUM(l.amount) FILTER (WHERE l.account IN {CREDIT_ACCOUNTS_SQL}), 0),
       COALESCE(SUM(l.amount) FILTER (WHERE l.account IN {AR_ACCOUNTS_SQL}), 0)"""
# the journal lines of a practice's entries created in [since, cut), optionally per local day
LINES_SQL = f"""
SELECT {{day}} {BALANCE_SUMS}
  FROM ledger_journalentry e JOIN ledger_journalline l ON l.entry_id = e.id
 WHERE e.practice_id = %(p)s AND e.created_at >= %(since)s AND e.created_at < %(cut)s
   AND l.account IN ('credits_available', 'credits_locked', 'payer_credits', 'patient_receivable',
                     'charges_receivable')
 {{group}}
"""

RECENT_LINES_SQL = f"""
SELECT {BALANCE_SUMS}
  FROM ledger_journalline l
 WHERE l.entry_id = ANY(ARRAY(SELECT e.id FROM ledger_journalentry e WHERE e.practice_id = %(p)s
                                 AND e.created_at >= %(since)s AND e.created_at < %(cut)s))
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


def check_day(day: date, field: str) -> None:
    if not DB_EARLIEST <= day <= DB_LATEST:
        raise InvalidInput(f"{field}: {day:%m/%d/%Y} is outside the years 1900 to 2199", field=field)


def check_period(date_from: date, date_to: date) -> None:
    check_day(date_from, "date_from")
    check_day(date_to, "date_to")
    if date_to < date_from:
        raise InvalidInput(f"date_to: {date_to:%m/%d/%Y} is before date_from {date_from:%m/%d/%Y}", field="date_to")
    if (date_to - date_from).days > 3660:
        raise InvalidInput("date_from: a period of at most ten years", field="date_from")


def _rates(resolutions, hours, resolved_cases, errors, automatic, approved, rejected) -> dict:
    return {
        "resolutions": resolutions, "resolved_cases": resolved_cases, "errors": errors,
        "turnaround_hours": Decimal(hours).quantize(Q2) if hours is not None else None,
        "approved": approved, "rejected": rejected, "approval_rate": _ratio(approved, approved + rejected),
        "error_rate": _ratio(errors, resolved_cases), "automatic": automatic,
        "automatic_share": _ratio(automatic, resolutions),
    }


def work_rates(practice: Practice, start: datetime, end: datetime) -> dict:
    p = {"p": practice.pk, "start": start, "end": end}
    res = _rows(RESOLUTIONS_SQL.format(group="0"), p)
    props = _rows(PROPOSALS_SQL.format(group="0"), p)
    resolutions, hours, resolved_cases, errors, automatic = res[0][1:] if res else (0, None, 0, 0, 0)
    approved, rejected = props[0][1:] if props else (0, 0)
    return _rates(resolutions, hours, resolved_cases, errors, automatic, approved, rejected)


def _cut(practice: Practice, day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=ZoneInfo(practice.time_zone))


def _lines(practice: Practice, since: datetime | None, cut: datetime) -> tuple[Decimal, Decimal]:
    if since is None:  # every line of the practice: one pass
        p = {"p": practice.pk, "since": datetime.min.replace(tzinfo=UTC), "cut": cut}
        return tuple(_rows(LINES_SQL.format(day="", group=""), p)[0])
    # the lines since the last closed day: the entries by time first (the planner, given a join,
    # overestimates them and scans every line)
    return tuple(_rows(RECENT_LINES_SQL, {"p": practice.pk, "since": since, "cut": cut})[0])


def closing_balances(practice: Practice, as_of: date) -> tuple[Decimal, Decimal]:
    """(credit balances, gross A/R) at the end of `as_of` (now, for today): the latest closed
    day's BalanceDay on or before it plus the journal lines since; without one, every line."""
    base = BalanceDay.objects.filter(practice=practice, day__lte=as_of).order_by("-day").first()
    if base is not None and base.day == as_of:
        return base.credit_balances, base.gross_ar
    credit, ar = _lines(practice, _cut(practice, base.day) if base else None, _cut(practice, as_of))
    if base is not None:
        credit, ar = credit + base.credit_balances, ar + base.gross_ar
    return credit, ar


def last_closed_day(practice: Practice, now: datetime | None = None) -> date:
    """The latest local day whose end is more than CLOSE_MARGIN ago: no transaction still running
    can add a line to it (a line's time is its entry's creation)."""
    now = now or timezone.now()
    return (now - CLOSE_MARGIN).astimezone(ZoneInfo(practice.time_zone)).date() - timedelta(days=1)


def balance_days_fill(practice_id: int) -> int:
    """Store the closing balances of every closed day not stored yet (one pass over the journal
    lines since the last stored day; the first time, over all of them). Idempotent; returns the
    days written."""
    practice = _practice(practice_id)
    closed = last_closed_day(practice)
    last = BalanceDay.objects.filter(practice=practice).order_by("-day").first()
    if last is not None and last.day >= closed:
        return 0
    since = _cut(practice, last.day) if last else datetime.min.replace(tzinfo=UTC)
    daily = {day: (c, a) for day, c, a in _rows(
        LINES_SQL.format(day="(e.created_at AT TIME ZONE %(tz)s)::date,", group="GROUP BY 1"),
        {"p": practice.pk, "tz": practice.time_zone, "since": since, "cut": _cut(practice, closed)})}
    if last is None and not daily:
        return 0
    day = last.day + timedelta(days=1) if last else min(daily)
    credit, ar = (last.credit_balances, last.gross_ar) if last else (Decimal("0.00"), Decimal("0.00"))
    rows = []
    while day <= closed:
        c, a = daily.get(day, (0, 0))
        credit, ar = credit + c, ar + a
        rows.append(BalanceDay(practice=practice, day=day, credit_balances=credit, gross_ar=ar))
        day += timedelta(days=1)
    BalanceDay.objects.bulk_create(rows, batch_size=1000, ignore_conflicts=True)
    return len(rows)


def _balances(credit: Decimal, ar: Decimal) -> dict:
    share = _ratio(credit, ar)
    return {"credit_balances": credit, "gross_ar": ar, "share_of_ar": share,
            "share_warning": share is not None and share > AR_WARNING}


def balances(practice: Practice, as_of: date) -> dict:
    return _balances(*closing_balances(practice, as_of))


def count_open_cases(practice: Practice, as_of: date) -> dict:
    """The open cases as of `as_of`, counted now: {"open_cases", "aging", "by_source", "by_cause",
    "by_payer"}, each a list of (label, count, amount)."""
    aging = {i: [label, 0, Decimal("0.00")] for i, (label, _, _) in enumerate(AGING_BUCKETS)}
    by = {"source": {}, "cause": {}, "payer": {}}
    for g_bucket, g_source, g_cause, bucket, source, cause, payer, n, amount in _rows(
            OPEN_CASES_SQL, {"p": practice.pk, "as_of": as_of, "tz": practice.time_zone}):
        if not g_bucket:
            aging[bucket][1:] = [n, amount]
        elif not g_source:
            by["source"][source or "payer"] = (n, amount)
        elif not g_cause:
            by["cause"][cause] = (n, amount)
        else:
            by["payer"][payer or "(patient)"] = (n, amount)
    out = {"open_cases": sum(row[1] for row in aging.values()), "aging": [tuple(r) for r in aging.values()]}
    for key, groups in by.items():
        out[f"by_{key}"] = sorted(((k, n, a) for k, (n, a) in groups.items()), key=lambda r: (-r[2], r[0]))
    return out


def _as_json(rows) -> list:
    return [[label, n, str(amount)] for label, n, amount in rows]


def _from_json(rows) -> list:
    return [(label, n, Decimal(amount)) for label, n, amount in rows]


def open_cases_snapshot_take(*, practice_id: int, actor=None) -> OpenCasesSnapshot:
    """Count the practice's open cases now and keep the counts for the dashboard (the daily books
    job after the nightly scan; a manager's "Refresh")."""
    practice = _practice(practice_id)
    if actor is not None:
        ensure_staff(actor, practice.pk, manager=True)
    taken_at = timezone.now()
    counted = count_open_cases(practice, taken_at.astimezone(ZoneInfo(practice.time_zone)).date())
    return OpenCasesSnapshot.objects.create(
        practice=practice, taken_at=taken_at, taken_by=actor, open_cases=counted["open_cases"],
        aging=_as_json(counted["aging"]), **{k: _as_json(counted[k]) for k in ("by_source", "by_cause", "by_payer")})


def open_cases(practice: Practice, as_of: date) -> dict:
    """The open cases of `as_of`: from the latest snapshot taken that day when there is one (with
    `counted_at`), else counted now (`counted_at` None)."""
    day_start = datetime.combine(as_of, time(0), tzinfo=ZoneInfo(practice.time_zone))
    snap = (OpenCasesSnapshot.objects.filter(practice=practice, taken_at__gte=day_start,
                                             taken_at__lt=_cut(practice, as_of)).order_by("-taken_at").first())
    if snap is None:
        return {**count_open_cases(practice, as_of), "counted_at": None}
    return {"open_cases": snap.open_cases, "aging": _from_json(snap.aging), "by_source": _from_json(snap.by_source),
            "by_cause": _from_json(snap.by_cause), "by_payer": _from_json(snap.by_payer),
            "counted_at": snap.taken_at}


def measures(*, practice_id: int, date_from: date, date_to: date, as_of: date | None = None) -> dict:
    practice = _practice(practice_id)
    check_period(date_from, date_to)
    as_of = as_of or date_to
    check_day(as_of, "as_of")
    start, end = _bounds(practice, date_from, date_to)
    p = {"p": practice.pk, "start": start, "end": end, "as_of": as_of, "tz": practice.time_zone}
    out = {"practice": practice.pk, "practice_name": practice.name, "date_from": date_from, "date_to": date_to,
           "as_of": as_of, **work_rates(practice, start, end), **balances(practice, as_of)}
    out.update(open_cases(practice, as_of))
    count, amount, median = _rows(REFUNDS_SQL, p)[0]
    out["refunds_issued"] = {"count": count, "amount": amount,
                             "median_days": Decimal(median).quantize(Q2) if median is not None else None}
    out["nightly_runs"] = [{"started_at": r[0], "status": r[1], "applications": r[2], "applied": r[3],
                            "released": r[4]} for r in _rows(NIGHTLY_SQL, p)]
    out["unmatched_by_payer"] = _rows(UNMATCHED_SQL, p)
    out["replaced_service"] = REPLACED_SERVICE
    return out


def trend(*, practice_id: int, end: date, weeks: int = 12) -> list[dict]:
    """Weekly points (each week ends on a day of `end`'s weekday) of turnaround, approval and error
    rates, resolutions, credit balances and their share of gross A/R. The rates come from two
    queries grouped by week; the balances of each week's end from its BalanceDay (the open end:
    the closed day before it plus the lines since)."""
    if not 1 <= weeks <= 104:
        raise InvalidInput("weeks: between 1 and 104", field="weeks")
    check_day(end, "end")
    check_day(end - timedelta(days=7 * weeks), "end")
    practice = _practice(practice_id)
    first = end - timedelta(days=7 * weeks - 1)  # the first day of the first week
    start, stop = _bounds(practice, first, end)
    p = {"p": practice.pk, "start": start, "end": stop, "tz": practice.time_zone, "first": first}
    res = {row[0]: row[1:] for row in _rows(RESOLUTIONS_SQL.format(group=WEEK_OF.format(col="ev.at")), p)}
    props = {row[0]: row[1:] for row in _rows(PROPOSALS_SQL.format(group=WEEK_OF.format(col="p.decided_at")), p)}
    ends = [first + timedelta(days=7 * i + 6) for i in range(weeks)]
    stored = {d.day: (d.credit_balances, d.gross_ar)
              for d in BalanceDay.objects.filter(practice=practice, day__in=ends)}
    points = []
    for i, week_end in enumerate(ends):
        rates = _rates(*res.get(i, (0, None, 0, 0, 0)), *props.get(i, (0, 0)))
        credit, ar = stored[week_end] if week_end in stored else closing_balances(practice, week_end)
        points.append({"week_end": week_end, "turnaround_hours": rates["turnaround_hours"],
                       "approval_rate": rates["approval_rate"], "error_rate": rates["error_rate"],
                       "resolutions": rates["resolutions"], "credit_balances": credit, "gross_ar": ar,
                       "share_of_ar": _ratio(credit, ar)})
    return points
