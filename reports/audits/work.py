"""The weekly checks of the adjudication work (DOMAIN rule 20): stale locked credits, available
credits next to a balance due that the nightly run left (practice off, patient excluded), payer
credits open too long, deadlines near and missed, and a random sample of resolved cases put up for
a second review. Limits come from the practice's AdjudicationSettings; ages are in days of the
practice's time zone."""

import random
from datetime import timedelta

from django.utils import timezone
from simple_history.utils import bulk_create_with_history

from ledger.access import system_user
from ledger.sql import ENCOUNTER_BALANCE_SQL, ENCOUNTER_PAYABLE_SQL, OPEN_CLAIM_STATES_SQL
from reports.audits.books import money, patient_label, rows
from reports.audits.runner import Finding, check
from reports.models import AuditFinding, AuditRun, CaseReview

K, S = AuditFinding.Kind, AuditFinding.Severity
WORK = AuditRun.Kind.WORK
OPEN_CASE_STATES = ("identified", "investigating", "waiting_payer", "proposed", "approved")
OPEN_CASES_SQL = "(" + ", ".join(f"'{s}'" for s in OPEN_CASE_STATES) + ")"


def local_day(column: str) -> str:
    return f"({column} AT TIME ZONE %(tz)s)::date"


def params(ctx, **more) -> dict:
    return {"p": ctx.practice.pk, "tz": ctx.practice.time_zone, "today": ctx.today, **more}


@check(K.STALE_LOCKED, run_kind=WORK)
def stale_locked(ctx):
    """A credit locked to a visit whose claim has been open with the payer longer than the limit."""
    limit = ctx.adjudication.locked_credit_max_days
    for cid, amount, dos, last, first, account, number, age in rows(f"""
        SELECT c.id, c.on_hand, e.date_of_service, p.last_name, p.first_name, p.account_number, cl.claim_number,
               %(today)s - MIN({local_day('cl.submitted_at')}) AS age
          FROM credits_credit c JOIN ledger_encounter e ON e.id = c.locked_encounter_id
          JOIN ledger_patient p ON p.id = c.patient_id
          JOIN ledger_claim cl ON cl.encounter_id = e.id AND cl.state IN {OPEN_CLAIM_STATES_SQL}
         WHERE c.practice_id = %(p)s AND c.state = 'locked'
         GROUP BY c.id, e.date_of_service, p.id, cl.claim_number
        HAVING %(today)s - MIN({local_day('cl.submitted_at')}) > %(limit)s
         ORDER BY c.id""", params(ctx, limit=limit)):
        yield Finding("credit", cid, f"Credit of {money(amount)} of {patient_label(last, first, account)}, "
                      f"locked to the visit of {dos:%m/%d/%Y}", severity=S.WARNING,
                      expected=f"claim decided within {limit} days", actual=f"claim {number} open {age} days",
                      amount=amount, age_days=age,
                      detail="Follow up with the payer, or unlock the credit if the patient's money should be used")


@check(K.SKIPPED_APPLICATION, run_kind=WORK)
def skipped_application(ctx):
    """An available credit while the same patient owes a payable balance: the nightly run did not
    use it (the practice's auto-apply is off, the patient is excluded, or the night has not come)."""
    balance, payable = ENCOUNTER_BALANCE_SQL.format(e="e"), ENCOUNTER_PAYABLE_SQL.format(e="e")
    off = not ctx.practice.auto_apply
    for pid, last, first, account, excluded, credits, due, age in rows(f"""
        WITH due AS (SELECT e.patient_id, SUM({balance}) AS amount FROM ledger_encounter e
                      WHERE e.practice_id = %(p)s AND {balance} > 0 AND {payable} GROUP BY e.patient_id),
             held AS (SELECT c.patient_id, SUM(c.on_hand) AS amount, MIN({local_day('c.created_at')}) AS since
                        FROM credits_credit c WHERE c.practice_id = %(p)s AND c.state = 'available'
                         AND c.on_hand > 0 GROUP BY c.patient_id)
        SELECT p.id, p.last_name, p.first_name, p.account_number, p.exclude_from_auto_apply, h.amount, d.amount,
               %(today)s - h.since
          FROM due d JOIN held h ON h.patient_id = d.patient_id JOIN ledger_patient p ON p.id = d.patient_id
         ORDER BY p.id""", params(ctx)):
        why = ("the practice's nightly application is off" if off else
               "the patient is excluded from the nightly application" if excluded else
               "the nightly run has not applied it yet")
        yield Finding("patient", pid, patient_label(last, first, account), severity=S.WARNING,
                      expected="credits applied to the balance due", actual=f"{money(credits)} available, "
                      f"{money(due)} due", amount=min(credits, due), age_days=age,
                      detail=f"Not applied because {why}; apply it at the patient's page or refund it")


@check(K.PAYER_CREDIT_OPEN, run_kind=WORK)
def payer_credit_open(ctx):
    limit = ctx.adjudication.payer_credit_max_open_days
    for pcid, payer, amount, resolved, number, age in rows(f"""
        SELECT pc.id, py.name, pc.amount, pc.resolved_amount, pc.payer_claim_number,
               %(today)s - {local_day('pc.created_at')}
          FROM credits_payercredit pc JOIN ledger_payer py ON py.id = pc.payer_id
         WHERE pc.practice_id = %(p)s AND pc.state = 'open'
           AND %(today)s - {local_day('pc.created_at')} > %(limit)s ORDER BY pc.id""", params(ctx, limit=limit)):
        yield Finding("payer_credit", pcid, f"{money(amount - resolved)} due to {payer}"
                      + (f" (claim {number})" if number else ""),
                      severity=S.ERROR if age > 2 * limit else S.WARNING,
                      expected=f"returned within {limit} days", actual=f"open {age} days", amount=amount - resolved,
                      age_days=age, detail="Refund the payer or confirm the recoupment")


def _open_cases(ctx, where: str, **more):
    return rows(f"""
        SELECT c.id, c.amount, c.due_on, c.notice_due_on, c.notice_sent_on, c.cause,
               COALESCE(p.last_name || ', ' || p.first_name || ' (' || p.account_number || ')', py.name, '')
          FROM adjudication_case c LEFT JOIN ledger_patient p ON p.id = c.patient_id
          LEFT JOIN ledger_payer py ON py.id = c.payer_id
         WHERE c.practice_id = %(p)s AND c.state IN {OPEN_CASES_SQL} AND ({where}) ORDER BY c.id""",
                params(ctx, **more))


def case_label(case_id, amount, who) -> str:
    return f"Case {case_id}: {money(amount)}" + (f" of {who}" if who else "")


@check(K.CLOCK_NEAR_BREACH, run_kind=WORK)
def clock_near_breach(ctx):
    """An open case due within the practice's warning window (a running clock: not paused, not stopped)."""
    window = ctx.adjudication.warning_window_days
    for cid, amount, due, _, _, _, who in _open_cases(
            ctx, "NOT c.clock_stopped AND c.due_on BETWEEN %(today)s AND %(until)s",
            until=ctx.today + timedelta(days=window)):
        left = (due - ctx.today).days
        yield Finding("case", cid, case_label(cid, amount, who), severity=S.WARNING,
                      expected=f"resolved by {due:%m/%d/%Y}", actual=f"{left} days left", amount=amount,
                      age_days=-left, detail=f"Due within the warning window of {window} days")


@check(K.CLOCK_BREACHED, run_kind=WORK)
def clock_breached(ctx):
    """An open case past its due date, or whose patient notice is past due and not sent."""
    for cid, amount, due, notice_due, notice_sent, _, who in _open_cases(
            ctx, "NOT c.clock_stopped AND (c.due_on < %(today)s "
                 "OR (c.notice_due_on < %(today)s AND c.notice_sent_on IS NULL))"):
        if due is not None and due < ctx.today:
            expected, late = f"resolved by {due:%m/%d/%Y}", (ctx.today - due).days
            detail = "The deadline passed with the case still open"
        else:
            expected, late = f"notice sent by {notice_due:%m/%d/%Y}", (ctx.today - notice_due).days
            detail = "The patient notice is late"
        yield Finding("case", cid, case_label(cid, amount, who), severity=S.ERROR, expected=expected,
                      actual=f"{late} days late", amount=amount, age_days=late, detail=detail)


def _create_reviews(ctx, findings: list[AuditFinding]) -> None:
    """The review sample's rows, with their first history rows."""
    if findings:
        bulk_create_with_history(
            [CaseReview(practice=ctx.practice, case_id=f.object_id, run=ctx.run, finding=f, sampled_at=f.created_at)
             for f in findings], CaseReview, default_user=ctx.run.triggered_by or system_user(),
            default_change_reason=f"Sampled by audit run {ctx.run.pk}")


@check(K.REVIEW_SAMPLE, run_kind=WORK, after=_create_reviews, recheck=False)
def review_sample(ctx):
    """A random sample (ReportSettings.review_sample_size, chosen with the run's id as the seed, so a
    run can be replayed) of the cases resolved since the previous weekly audit (else the last 7
    days) and never sampled, each put up for a second review."""
    size = ctx.settings.review_sample_size
    if not size:
        return
    previous = (AuditRun.objects.filter(practice=ctx.practice, kind=WORK).exclude(pk=ctx.run.pk)
                .exclude(status=AuditRun.Status.RUNNING).order_by("-started_at").values_list("started_at", flat=True)
                .first())
    since = previous or (timezone.now() - timedelta(days=7))
    pool = rows(f"""
        SELECT c.id, c.amount, c.outcome, {local_day('c.resolved_at')},
               COALESCE(p.last_name || ', ' || p.first_name || ' (' || p.account_number || ')', py.name, '')
          FROM adjudication_case c LEFT JOIN ledger_patient p ON p.id = c.patient_id
          LEFT JOIN ledger_payer py ON py.id = c.payer_id
         WHERE c.practice_id = %(p)s AND c.state = 'resolved' AND c.resolved_at > %(since)s
           AND NOT EXISTS (SELECT 1 FROM reports_casereview r WHERE r.case_id = c.id)
         ORDER BY c.id""", params(ctx, since=since))
    for cid, amount, outcome, resolved_on, who in sorted(random.Random(ctx.run.pk).sample(pool, min(size, len(pool)))):
        yield Finding("case", cid, case_label(cid, amount, who), severity=S.INFO,
                      expected="a second review", actual=f"resolved {resolved_on:%m/%d/%Y}: "
                      f"{outcome.replace('_', ' ')}", amount=amount,
                      detail="Review the case's record and record whether the resolution was right")
