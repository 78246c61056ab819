"""Unclaimed property (DOMAIN rule 17, example L): patient credits past their owner state's dormancy.

* `unclaimed_find` (called by the scan, adjudication/scan.py, after the cases are open): lists each
  open patient-credit case whose credit is still available and untouched past its state's dormancy
  (an `UnclaimedProperty` row, one per credit, with its letter and report dates), and releases the
  rows whose money moved, whose owner became active again or whose case was resolved meanwhile.
* `unclaimed_send_letter`: the due-diligence letter (PDF, adjudication/letters.py).
* `unclaimed_turn_over`: the credit is removed (credits' `credit_remove_tx`, reason "unclaimed
  property, <State>") and the case resolved, in one transaction.
* `holder_report_rows` / `holder_report_csv`: the yearly holder report per state.

Last activity is the latest of: the credit's creation, its last application, its last refund
(requested, decided or issued) and the patient's last payment, as a date in the practice's time
zone. The owner's state is the patient's (last known address), else the practice's. The rule is
the unclaimed-property `ClockRule` of that state in force today (adjudication.clocks.rule_for),
its dates come from adjudication.clocks.unclaimed_dates."""

import csv
import io
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.core.files.base import ContentFile
from django.db import connection, transaction
from django.db.models import Min
from django.utils import timezone

from adjudication import letters
from adjudication.clocks import practice_today, rule_for, unclaimed_dates
from adjudication.models import Case, CaseEvent, ClockRule, Proposal, UnclaimedProperty
from adjudication.services.core import locked_case, move, record
from credits.models import Credit, CreditApplication, Refund
from credits.services.credit import credit_remove_tx
from ledger.access import ensure_staff, system_user
from ledger.bulk import history_from_table
from ledger.dates import iso_date
from ledger.errors import InvalidInput, NotFound, RuleViolation
from ledger.exports import export_cell
from ledger.history import save_with_history
from ledger.inputs import parse_id, require_reason, us_state_code
from ledger.locks import lock, lock_ids
from ledger.models import Patient, Payment, Practice

LIVE = (UnclaimedProperty.State.LISTED, UnclaimedProperty.State.LETTER_SENT)

# The NAUPA standard property type of a patient's credit balance: MS09 "Credit balances" (the
# NAUPA code list states adopt, e.g. North Carolina's 20 NCAC 08 .0204; MS05 "Customer
# overpayments" is the nearest other code, MS11 "Refunds due" is for refunds already decided).
PROPERTY_TYPE = "MS09"
PROPERTY_TYPE_NAME = "Credit balances"


def _last_activity_sql(credit: str, tz_param: str) -> str:
    """The date of the credit's last owner activity in the practice's time zone (see the module)."""
    return f"""(GREATEST(
        {credit}.created_at,
        (SELECT max(a.created_at) FROM {CreditApplication._meta.db_table} a WHERE a.credit_id = {credit}.id),
        (SELECT max(GREATEST(r.requested_at, r.decided_at, r.issued_at)) FROM {Refund._meta.db_table} r
          WHERE r.credit_id = {credit}.id),
        (SELECT max(pm.received_at) FROM {Payment._meta.db_table} pm WHERE pm.patient_id = {credit}.patient_id)
    ) AT TIME ZONE {tz_param})::date"""


def _years_before(d: date, years: int) -> date:
    try:
        return d.replace(year=d.year - years)
    except ValueError:  # 29 Feb
        return d.replace(year=d.year - years, day=28)


# --- the list ----------------------------------------------------------------------------------------

@transaction.atomic
def unclaimed_find(*, practice_id: int, today: date | None = None) -> int:
    """List the practice's credits past dormancy and release the rows that no longer are (see the
    module). Two statements read, one INSERT ... ON CONFLICT DO NOTHING writes (the credit's unique
    row backs it: two scans at once list a credit once). Returns how many credits were listed
    (new rows, and released rows listed again after a new dormancy)."""
    practice_id = parse_id(practice_id, field="practice_id")
    practice = Practice.objects.filter(pk=practice_id).first()
    if practice is None:
        raise NotFound(f"unknown practice {practice_id}", field="practice_id")
    today = iso_date(today, field="today") if today is not None else practice_today(practice)
    actor = system_user()
    _release_moved(practice, actor=actor)

    min_years = ClockRule.objects.filter(kind=ClockRule.Kind.UNCLAIMED, active=True).aggregate(
        m=Min("dormancy_years"))["m"]
    if not min_years:
        return 0
    dormant_by = _years_before(today, min_years)
    # a loose pre-filter on the credit's creation (its index); the exact test is on the last activity
    created_before = datetime.combine(dormant_by + timedelta(days=2), time.min, tzinfo=ZoneInfo("UTC"))
    with connection.cursor() as cur:
        cur.execute(f"""
            SELECT * FROM (
              SELECT k.id, c.id, c.on_hand, COALESCE(NULLIF(p.us_state, ''), %(practice_state)s),
                     {_last_activity_sql("c", "%(tz)s")} AS last_activity_on, u.id
              FROM {Case._meta.db_table} k
              JOIN {Credit._meta.db_table} c ON c.id = k.credit_id
              JOIN {Patient._meta.db_table} p ON p.id = c.patient_id
              LEFT JOIN {UnclaimedProperty._meta.db_table} u ON u.credit_id = c.id
              WHERE k.practice_id = %(practice)s AND k.kind = %(kind)s AND k.state <> %(resolved)s
                AND c.practice_id = %(practice)s AND c.state = %(available)s AND c.on_hand > 0
                AND c.refund_hold = 0 AND c.created_at < %(created_before)s
                AND (u.id IS NULL OR u.state = %(released)s)
            ) cand
            WHERE last_activity_on <= %(dormant_by)s
            ORDER BY 2""", {
            "practice": practice.pk, "practice_state": practice.us_state, "tz": practice.time_zone,
            "kind": Case.Kind.PATIENT_CREDIT, "resolved": Case.State.RESOLVED, "available": Credit.State.AVAILABLE,
            "created_before": created_before, "released": UnclaimedProperty.State.RELEASED,
            "dormant_by": dormant_by})
        candidates = cur.fetchall()

    rules: dict[str, ClockRule | None] = {}
    new, again = [], {}
    for case_id, credit_id, amount, owner_state, last_on, unclaimed_id in candidates:
        if owner_state not in rules:
            rules[owner_state] = rule_for(ClockRule.Kind.UNCLAIMED, practice=practice, on=today, us_state=owner_state)
        rule = rules[owner_state]
        dates = unclaimed_dates(rule, last_activity_on=last_on, amount=amount) if rule is not None else None
        if dates is None or today < dates.presumed_on:
            continue
        row = UnclaimedProperty(
            practice_id=practice.pk, case_id=case_id, credit_id=credit_id, rule=rule, owner_state=owner_state,
            amount=amount, last_activity_on=last_on, presumed_on=dates.presumed_on,
            letter_due_on=dates.letter_due_on, report_due_on=dates.report_due_on, report_year=dates.report_year)
        if unclaimed_id is None:
            new.append(row)
        else:
            again[unclaimed_id] = row
    listed = _insert(new, actor=actor) + _relist(again, actor=actor)
    if listed:
        CaseEvent.objects.bulk_create([CaseEvent(
            case_id=row.case_id, kind=CaseEvent.Kind.CLOCK, actor=actor,
            text=(f"Presumed abandoned on {row.presumed_on} (unclaimed property, {letters.state_name(row.owner_state)}):"
                  f" {row.amount} untouched since {row.last_activity_on}; "
                  + (f"due-diligence letter by {row.letter_due_on}, " if row.letter_due_on else "no letter needed, ")
                  + f"report by {row.report_due_on}"),
            data={"unclaimed": row.pk, "presumed_on": str(row.presumed_on), "report_due_on": str(row.report_due_on),
                  "letter_due_on": str(row.letter_due_on) if row.letter_due_on else None})
            for row in listed])
    return len(listed)


def _insert(rows: list, *, actor) -> list:
    """INSERT the new rows (ON CONFLICT DO NOTHING: a concurrent scan listed the credit first) and
    their history rows; returns the rows inserted, with their ids."""
    if not rows:
        return []
    cols = ("practice_id", "case_id", "credit_id", "rule_id", "owner_state", "amount", "last_activity_on",
            "presumed_on", "letter_due_on", "report_due_on", "report_year")
    casts = ("bigint", "bigint", "bigint", "bigint", "text", "numeric", "date", "date", "date", "date", "int")
    arrays = [[getattr(r, c) for r in rows] for c in cols]
    with connection.cursor() as cur:
        cur.execute(f"""
            INSERT INTO {UnclaimedProperty._meta.db_table} ({", ".join(cols)}, state, letter)
            SELECT {", ".join(f"v.{c}" for c in cols)}, %s, ''
            FROM unnest({", ".join(f"%s::{t}[]" for t in casts)}) AS v({", ".join(cols)})
            ON CONFLICT DO NOTHING
            RETURNING id, credit_id""", [UnclaimedProperty.State.LISTED, *arrays])
        ids = {credit_id: pk for pk, credit_id in cur.fetchall()}
    inserted = []
    for r in rows:
        if r.credit_id in ids:
            r.pk = r.id = ids[r.credit_id]
            inserted.append(r)
    UnclaimedProperty.history.bulk_history_create(
        inserted, default_user=actor, default_change_reason="Nightly scan: presumed abandoned (unclaimed property)")
    return inserted


def _relist(rows: dict, *, actor) -> list:
    """Released rows whose credit is dormant again: listed again with the new dates (one UPDATE
    under the rows' locks, their history rows copied from the table)."""
    if not rows:
        return []
    locked = sorted(lock_ids("unclaimed", rows, where="state = %s", params=[UnclaimedProperty.State.RELEASED]))
    if not locked:
        return []
    cols = ("rule_id", "owner_state", "amount", "last_activity_on", "presumed_on", "letter_due_on", "report_due_on",
            "report_year")
    casts = ("bigint", "text", "numeric", "date", "date", "date", "date", "int")
    arrays = [[getattr(rows[pk], c) for pk in locked] for c in cols]
    with connection.cursor() as cur:
        cur.execute(f"""
            UPDATE {UnclaimedProperty._meta.db_table} u
               SET state = %s, letter_sent_on = NULL, letter = '', {", ".join(f"{c} = v.{c}" for c in cols)}
              FROM unnest(%s::bigint[], {", ".join(f"%s::{t}[]" for t in casts)}) AS v(id, {", ".join(cols)})
             WHERE u.id = v.id AND u.state = %s
            RETURNING u.id""", [UnclaimedProperty.State.LISTED, locked, *arrays, UnclaimedProperty.State.RELEASED])
        done = sorted(r[0] for r in cur.fetchall())
    history_from_table(UnclaimedProperty, ((pk, "Nightly scan: presumed abandoned again (unclaimed property)")
                                           for pk in done), user_id=actor.pk, at=timezone.now())
    out = []
    for pk in done:
        row = rows[pk]
        row.pk = row.id = pk
        out.append(row)
    return out


def _release_moved(practice: Practice, *, actor) -> int:
    """Release the live rows whose credit's money moved (applied, refunded, removed, on hold), whose
    owner became active again (a later last activity), or whose case was resolved otherwise: one
    read, the rows locked, one UPDATE, their history rows and events in bulk."""
    with connection.cursor() as cur:
        cur.execute(f"""
            SELECT u.id, u.case_id, CASE
                WHEN k.state = %(resolved)s THEN 'the case was resolved'
                WHEN c.state <> %(available)s OR c.on_hand <> u.amount OR c.refund_hold > 0
                  THEN 'the money moved'
                ELSE 'the owner was active on ' || {_last_activity_sql("c", "%(tz)s")}::text END
            FROM {UnclaimedProperty._meta.db_table} u
            JOIN {Credit._meta.db_table} c ON c.id = u.credit_id
            JOIN {Case._meta.db_table} k ON k.id = u.case_id
            WHERE u.practice_id = %(practice)s AND u.state = ANY(%(live)s)
              AND (k.state = %(resolved)s OR c.state <> %(available)s OR c.on_hand <> u.amount
                   OR c.refund_hold > 0 OR {_last_activity_sql("c", "%(tz)s")} > u.last_activity_on)
            ORDER BY u.id""", {
            "practice": practice.pk, "tz": practice.time_zone, "resolved": Case.State.RESOLVED,
            "available": Credit.State.AVAILABLE, "live": [str(s) for s in LIVE]})
        found = {pk: (case_id, why) for pk, case_id, why in cur.fetchall()}
    if not found:
        return 0
    locked = sorted(lock_ids("unclaimed", found, where="state = ANY(%s)", params=[[str(s) for s in LIVE]]))
    if not locked:
        return 0
    with connection.cursor() as cur:
        cur.execute(f"UPDATE {UnclaimedProperty._meta.db_table} SET state = %s WHERE id = ANY(%s) RETURNING id",
                    [UnclaimedProperty.State.RELEASED, locked])
        done = sorted(r[0] for r in cur.fetchall())
    texts = {pk: f"Released from the unclaimed-property list: {found[pk][1]}" for pk in done}
    history_from_table(UnclaimedProperty, texts.items(), user_id=actor.pk, at=timezone.now())
    CaseEvent.objects.bulk_create([CaseEvent(case_id=found[pk][0], kind=CaseEvent.Kind.CLOCK, text=texts[pk],
                                             actor=actor, data={"unclaimed": pk, "released": True})
                                   for pk in done])
    return len(done)


# --- the letter and the turn-over ---------------------------------------------------------------------

def _item_id(item) -> int:
    return item.pk if isinstance(item, UnclaimedProperty) else parse_id(item, field="item")


def _locked_item(item, actor):
    """Check the actor, lock the case, then the unclaimed row (ledger.locks ORDER)."""
    item_id = _item_id(item)
    row = UnclaimedProperty.objects.filter(pk=item_id).only("pk", "practice_id", "case_id").first()
    if row is None:
        raise NotFound(f"unknown unclaimed property {item_id}", field="item")
    ensure_staff(actor, row.practice_id)
    case = locked_case(row.case_id, actor)
    return case, lock(unclaimed=[row.pk]).unclaimed[row.pk]


def _on(on, practice) -> date:
    today = practice_today(practice)
    if on is None:
        return today
    on = iso_date(on, field="on")
    if on > today:
        raise InvalidInput(f"on: {on} is in the future (today is {today} in the practice's time zone)", field="on")
    return on


@transaction.atomic
def unclaimed_send_letter(*, item, actor, reason: str, on: date | None = None) -> UnclaimedProperty:
    """Send the due-diligence letter of a listed credit: the PDF is stored with the row, the
    date recorded and the case's record says so. A second letter is refused (it is sent once)."""
    reason = require_reason(reason)
    case, row = _locked_item(item, actor)
    practice = Practice.objects.get(pk=row.practice_id)
    on = _on(on, practice)
    if row.state != UnclaimedProperty.State.LISTED:
        raise RuleViolation(f"unclaimed property {row.pk} is {row.get_state_display().lower()}; "
                            "the due-diligence letter is sent once, while it is listed", field="item",
                            code="invalid_transition")
    if on < row.presumed_on:
        raise RuleViolation(f"the credit is presumed abandoned only on {row.presumed_on}; no letter before",
                            field="on")
    patient = Patient.objects.get(pk=case.patient_id)
    respond_by = row.report_due_on - timedelta(days=30) if row.letter_due_on else row.report_due_on
    respond_by = max(respond_by, on + timedelta(days=30))
    pdf = letters.due_diligence_pdf(practice_name=practice.name, to=letters.Addressee.of(patient), on=on,
                                    amount=row.amount, last_activity_on=row.last_activity_on,
                                    state=row.owner_state, respond_by=respond_by, report_due_on=row.report_due_on)
    row.letter_sent(on=on)
    row.letter.save(f"due-diligence-{row.pk}-{on}.pdf", ContentFile(pdf), save=False)
    save_with_history(row, actor=actor, reason=reason)
    late = row.letter_due_on is not None and on > row.letter_due_on
    record(case, CaseEvent.Kind.NOTE, f"Due-diligence letter sent on {on} (unclaimed property, "
                                      f"{letters.state_name(row.owner_state)})"
           + (f", after its due date {row.letter_due_on}" if late else "") + f": {reason}",
           actor=actor, data={"unclaimed": row.pk, "letter": row.letter.name, "sent_on": str(on), "late": late})
    return row


@transaction.atomic
def unclaimed_turn_over(*, item, actor, reason: str, on: date | None = None) -> UnclaimedProperty:
    """Turn a listed credit over to the owner's state (a manager's decision: removing a patient's
    money is approved by a manager; billing staff propose it on the case, `case_propose(kind=
    "unclaimed_property")`, and another manager approves). Refused before the credit is presumed
    abandoned, when a due-diligence letter is needed and was not sent, and while the case has a live
    proposal. Under the case's and the row's locks the credit's money is re-read: it must still be
    what was listed, else the row is stale and the next scan releases it. The credit is removed with
    the reason "unclaimed property, <State>" and the case resolved (outcome unclaimed_property)."""
    reason = require_reason(reason)
    case, row = _locked_item(item, actor)
    ensure_staff(actor, row.practice_id, manager=True)
    if Proposal.objects.filter(case_id=case.pk, state__in=Proposal.LIVE).exists():
        raise RuleViolation(f"case {case.pk} has a proposal waiting; decide it first", field="item")
    turn_over_locked(case, row, actor=actor, reason=reason, on=on)
    move(case, "resolve", actor=actor, reason=reason, outcome=Case.Outcome.UNCLAIMED,
         note=f"Turned over as unclaimed property to {letters.state_name(row.owner_state)} on {row.turned_over_on}",
         by=actor, data={"unclaimed": row.pk, "amount": str(row.amount), "state": row.owner_state,
                         "turned_over_on": str(row.turned_over_on)})
    return row


def turn_over_locked(case: Case, row: UnclaimedProperty, *, actor, reason: str, on: date | None = None) -> dict:
    """The turn-over itself, under the case's and the row's locks (the caller took them, in the
    ledger.locks ORDER, and decides who may do it; it resolves the case): the checks, then the
    patient's lock and the credit's removal. Returns what was done, for the case's record."""
    practice = Practice.objects.get(pk=row.practice_id)
    on = _on(on, practice)
    if row.state not in LIVE:
        raise RuleViolation(f"unclaimed property {row.pk} is {row.get_state_display().lower()}; only a listed "
                            "credit is turned over", field="item", code="invalid_transition")
    if on < row.presumed_on:
        raise RuleViolation(f"the credit is presumed abandoned only on {row.presumed_on}; it cannot be turned "
                            f"over on {on}", field="on")
    if row.letter_due_on is not None and row.letter_sent_on is None:
        raise RuleViolation(f"a due-diligence letter is needed first (amount {row.amount} is above the "
                            f"{letters.state_name(row.owner_state)} threshold; due by {row.letter_due_on})",
                            field="item")
    if case.state == Case.State.RESOLVED:
        raise RuleViolation(f"case {case.pk} is resolved; the money is no longer held", field="item")
    patient_id = Credit.objects.filter(pk=row.credit_id).values_list("patient_id", flat=True).get()
    lock(patients=[patient_id])  # all of the patient's money waits; credit_remove_tx then locks the credit
    credit = Credit.objects.get(pk=row.credit_id)
    if credit.state != Credit.State.AVAILABLE or credit.on_hand != row.amount or credit.refund_hold:
        raise RuleViolation(f"credit {credit.pk} changed since it was listed ({credit.on_hand} on hand, listed "
                            f"{row.amount}); it is not abandoned", field="item")
    state = letters.state_name(row.owner_state)
    credit_remove_tx(credit_id=credit.pk, actor=actor, reason=f"unclaimed property, {state}", amount=row.amount)
    row.turn_over(on=on)
    save_with_history(row, actor=actor, reason=reason)
    return {"unclaimed": row.pk, "amount": str(row.amount), "state": row.owner_state, "turned_over_on": str(on)}


# --- the holder report -------------------------------------------------------------------------------

REPORT_COLUMNS = ("owner_name", "owner_address_line1", "owner_address_line2", "owner_city", "owner_state",
                  "owner_postal_code", "property_type", "property_type_name", "amount", "last_activity_on",
                  "holder", "holder_state", "report_year", "status", "turned_over_on", "account_number",
                  "reference")


def holder_report_rows(*, practice_id: int, year: int, us_state: str | None = None, actor=None) -> list[dict]:
    """The holder report of a practice for a report year (one row per credit reported), per owner
    state when `us_state` is given: the rows turned over, and those still listed for that year's
    report (status says which). With `actor`, staff of the practice only."""
    practice_id = parse_id(practice_id, field="practice_id")
    practice = Practice.objects.filter(pk=practice_id).first()
    if practice is None:
        raise NotFound(f"unknown practice {practice_id}", field="practice_id")
    if actor is not None:
        ensure_staff(actor, practice.pk)
    try:
        year = int(year)
    except (TypeError, ValueError):
        raise InvalidInput(f"year: '{year}' is not a year", field="year") from None
    if not 1900 <= year <= 2199:
        raise InvalidInput(f"year: {year} is out of range", field="year")
    qs = (UnclaimedProperty.objects.filter(practice_id=practice.pk, report_year=year)
          .exclude(state=UnclaimedProperty.State.RELEASED)
          .select_related("credit__patient").order_by("owner_state", "credit__patient__last_name", "id"))
    if us_state:
        qs = qs.filter(owner_state=us_state_code(us_state))
    out = []
    for row in qs:
        p = row.credit.patient
        out.append({
            "owner_name": f"{p.last_name}, {p.first_name}", "owner_address_line1": p.address_line1,
            "owner_address_line2": p.address_line2, "owner_city": p.city, "owner_state": row.owner_state,
            "owner_postal_code": p.postal_code, "property_type": PROPERTY_TYPE,
            "property_type_name": PROPERTY_TYPE_NAME, "amount": Decimal(row.amount),
            "last_activity_on": row.last_activity_on, "holder": practice.name, "holder_state": practice.us_state,
            "report_year": row.report_year, "status": row.state,
            "turned_over_on": row.turned_over_on, "account_number": p.account_number,
            "reference": f"credit {row.credit_id}",
        })
    return out


def holder_report_csv(*, practice_id: int, year: int, us_state: str | None = None, actor=None) -> str:
    """The holder report as CSV text (a header line, then one line per credit)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(REPORT_COLUMNS)
    for r in holder_report_rows(practice_id=practice_id, year=year, us_state=us_state, actor=actor):
        w.writerow([export_cell(r[c]) for c in REPORT_COLUMNS])
    return buf.getvalue()
