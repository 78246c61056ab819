"""The daily checks of the books (DOMAIN rules 1, 2 and 20): each is one set-based query over the
practice, run by reports/audits/runner.py on one read-only snapshot. They are the SQL twins of the
test suite's `check_invariants` (tests/credits/test_invariants.py): a finding here is a fault the
database constraints could not refuse (a cache or a journal line out of step with its rows)."""

from decimal import Decimal

from django.db import connection

from credits.selectors import MISMATCH_SQL
from ledger.sql import ENCOUNTER_BALANCE_SQL
from reports.audits.runner import Finding, check
from reports.models import AuditFinding, AuditRun

K, S = AuditFinding.Kind, AuditFinding.Severity
BOOKS = AuditRun.Kind.BOOKS


def money(value) -> str:
    return f"{Decimal(value or 0):,.2f}"


def rows(sql: str, params) -> list[tuple]:
    with connection.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def patient_label(last, first, account) -> str:
    return f"{last}, {first} ({account})"


@check(K.JOURNAL_UNBALANCED, run_kind=BOOKS)
def journal_unbalanced(ctx):
    """Every journal entry's lines sum to zero and every entry has lines (rule 2)."""
    for entry_id, kind, created_at, total, n in rows("""
        SELECT e.id, e.kind, e.created_at, COALESCE(SUM(l.amount), 0), COUNT(l.id)
          FROM ledger_journalentry e LEFT JOIN ledger_journalline l ON l.entry_id = e.id
         WHERE e.practice_id = %s
         GROUP BY e.id HAVING COALESCE(SUM(l.amount), 0) <> 0 OR COUNT(l.id) = 0
         ORDER BY e.id""", [ctx.practice.pk]):
        yield Finding("journal_entry", entry_id, f"Journal entry {entry_id} ({kind.replace('_', ' ')}, "
                      f"{created_at:%m/%d/%Y})", severity=S.CRITICAL, expected="0.00", actual=money(total),
                      amount=total, detail="The entry's debits and credits differ" if n else "The entry has no lines")


@check(K.CREDIT_LIABILITY, run_kind=BOOKS)
def credit_liability(ctx):
    """Per patient, the credits on hand (available, locked, held for a refund) equal the credit
    liability in the journal; per credit, the ledger holds its cents on the account its state says."""
    for pid, last, first, account, held, ledger in rows("""
        WITH held AS (SELECT patient_id, SUM(on_hand + refund_hold) AS amount FROM credits_credit
                       WHERE practice_id = %(p)s GROUP BY patient_id),
             booked AS (SELECT patient_id, -SUM(amount) AS amount FROM ledger_journalline
                         WHERE practice_id = %(p)s AND account IN ('credits_available', 'credits_locked')
                         GROUP BY patient_id)
        SELECT p.id, p.last_name, p.first_name, p.account_number, COALESCE(h.amount, 0), COALESCE(b.amount, 0)
          FROM held h FULL JOIN booked b ON b.patient_id = h.patient_id
          JOIN ledger_patient p ON p.id = COALESCE(h.patient_id, b.patient_id)
         WHERE COALESCE(h.amount, 0) <> COALESCE(b.amount, 0) ORDER BY p.id""", {"p": ctx.practice.pk}):
        yield Finding("patient", pid, patient_label(last, first, account), severity=S.CRITICAL,
                      expected=f"credit liability {money(ledger)}", actual=f"credits on hand {money(held)}",
                      amount=held - ledger, detail="The patient's credits and the journal's credit liability differ")
    for cid, state, last, first, account, on_hand, hold, locked, available in rows("""
        WITH booked AS (SELECT credit_id,
                               -SUM(amount) FILTER (WHERE account = 'credits_locked') AS locked,
                               -SUM(amount) FILTER (WHERE account = 'credits_available') AS available
                          FROM ledger_journalline
                         WHERE practice_id = %(p)s AND account IN ('credits_available', 'credits_locked')
                         GROUP BY credit_id)
        SELECT c.id, c.state, p.last_name, p.first_name, p.account_number, c.on_hand, c.refund_hold,
               COALESCE(b.locked, 0), COALESCE(b.available, 0)
          FROM credits_credit c JOIN ledger_patient p ON p.id = c.patient_id
          LEFT JOIN booked b ON b.credit_id = c.id
         WHERE c.practice_id = %(p)s
           AND (CASE WHEN c.state = 'locked' THEN COALESCE(b.locked, 0) <> c.on_hand OR COALESCE(b.available, 0) <> 0
                     ELSE COALESCE(b.locked, 0) <> 0 OR COALESCE(b.available, 0) <> c.on_hand + c.refund_hold END)
         ORDER BY c.id""", {"p": ctx.practice.pk}):
        want = (on_hand, 0) if state == "locked" else (0, on_hand + hold)
        yield Finding("credit", cid, f"Credit of {money(on_hand + hold)} ({state}) of "
                      f"{patient_label(last, first, account)}", severity=S.CRITICAL,
                      expected=f"locked {money(want[0])}, available {money(want[1])}",
                      actual=f"locked {money(locked)}, available {money(available)}",
                      amount=(locked + available) - (on_hand + hold),
                      detail="The journal holds this credit on another account than its state says")


@check(K.CREDIT_BUCKETS, run_kind=BOOKS)
def credit_buckets(ctx):
    """Every cent of a credit is in exactly one bucket (rule 1), the applied bucket equals its
    applications, the refund hold equals the refunds still open, the refunded bucket the issued ones."""
    for (cid, last, first, account, amount, on_hand, hold, applied, refunded, removed, apps, open_refunds,
         issued) in rows("""
        WITH a AS (SELECT credit_id, SUM(amount) AS s FROM credits_creditapplication
                    WHERE practice_id = %(p)s AND credit_id IS NOT NULL AND amount > 0 GROUP BY credit_id),
             r AS (SELECT credit_id, SUM(amount) FILTER (WHERE state IN ('requested', 'approved')) AS open,
                          SUM(amount) FILTER (WHERE state = 'issued') AS issued
                     FROM credits_refund WHERE practice_id = %(p)s GROUP BY credit_id)
        SELECT c.id, p.last_name, p.first_name, p.account_number, c.amount, c.on_hand, c.refund_hold,
               c.applied_amount, c.refunded_amount, c.removed_amount, COALESCE(a.s, 0), COALESCE(r.open, 0),
               COALESCE(r.issued, 0)
          FROM credits_credit c JOIN ledger_patient p ON p.id = c.patient_id
          LEFT JOIN a ON a.credit_id = c.id LEFT JOIN r ON r.credit_id = c.id
         WHERE c.practice_id = %(p)s
           AND (c.amount <> c.on_hand + c.refund_hold + c.applied_amount + c.refunded_amount + c.removed_amount
                OR c.applied_amount <> COALESCE(a.s, 0) OR c.refund_hold <> COALESCE(r.open, 0)
                OR c.refunded_amount <> COALESCE(r.issued, 0)
                OR LEAST(c.on_hand, c.refund_hold, c.applied_amount, c.refunded_amount, c.removed_amount) < 0)
         ORDER BY c.id""", {"p": ctx.practice.pk}):
        label = f"Credit of {money(amount)} of {patient_label(last, first, account)}"
        parts = on_hand + hold + applied + refunded + removed
        if amount != parts:
            yield Finding("credit", cid, label, expected=f"amount {money(amount)}", actual=f"buckets {money(parts)}",
                          amount=parts - amount, detail=f"on hand {money(on_hand)} + held {money(hold)} + applied "
                          f"{money(applied)} + refunded {money(refunded)} + removed {money(removed)}")
        elif applied != apps:
            yield Finding("credit", cid, label, expected=f"applied {money(apps)}", actual=f"applied {money(applied)}",
                          amount=applied - apps, detail="The applied amount differs from the credit's applications")
        elif hold != open_refunds:
            yield Finding("credit", cid, label, expected=f"held {money(open_refunds)}", actual=f"held {money(hold)}",
                          amount=hold - open_refunds, detail="The refund hold differs from the refunds still open")
        elif refunded != issued:
            yield Finding("credit", cid, label, expected=f"refunded {money(issued)}",
                          actual=f"refunded {money(refunded)}", amount=refunded - issued,
                          detail="The refunded amount differs from the refunds issued")
        else:
            yield Finding("credit", cid, label, expected="no negative amount", actual="a negative amount",
                          detail=f"on hand {money(on_hand)}, held {money(hold)}, applied {money(applied)}, "
                                 f"refunded {money(refunded)}, removed {money(removed)}")


@check(K.ENCOUNTER_CACHE, run_kind=BOOKS)
def encounter_cache(ctx):
    """A visit's applied and written-off totals equal their rows, and its patient receivable in the
    journal equals its balance."""
    balance = ENCOUNTER_BALANCE_SQL.format(e="e")
    for eid, dos, last, first, account, applied, wo, bal, apps, wos, receivable in rows(f"""
        WITH a AS (SELECT encounter_id, SUM(amount) AS s FROM credits_creditapplication
                    WHERE practice_id = %(p)s GROUP BY encounter_id),
             w AS (SELECT encounter_id, SUM(amount) AS s FROM credits_writeoff
                    WHERE practice_id = %(p)s AND state = 'active' GROUP BY encounter_id),
             j AS (SELECT encounter_id, SUM(amount) AS s FROM ledger_journalline
                    WHERE practice_id = %(p)s AND account = 'patient_receivable' GROUP BY encounter_id)
        SELECT e.id, e.date_of_service, p.last_name, p.first_name, p.account_number, e.applied_amount,
               e.written_off_amount, {balance}, COALESCE(a.s, 0), COALESCE(w.s, 0), COALESCE(j.s, 0)
          FROM ledger_encounter e JOIN ledger_patient p ON p.id = e.patient_id
          LEFT JOIN a ON a.encounter_id = e.id LEFT JOIN w ON w.encounter_id = e.id
          LEFT JOIN j ON j.encounter_id = e.id
         WHERE e.practice_id = %(p)s
           AND (e.applied_amount <> COALESCE(a.s, 0) OR e.written_off_amount <> COALESCE(w.s, 0)
                OR {balance} <> COALESCE(j.s, 0))
         ORDER BY e.id""", {"p": ctx.practice.pk}):
        label = f"Visit of {dos:%m/%d/%Y} of {patient_label(last, first, account)}"
        if applied != apps:
            yield Finding("encounter", eid, label, expected=f"applied {money(apps)}",
                          actual=f"applied {money(applied)}", amount=applied - apps,
                          detail="The visit's applied total differs from its applications")
        elif wo != wos:
            yield Finding("encounter", eid, label, expected=f"written off {money(wos)}",
                          actual=f"written off {money(wo)}", amount=wo - wos,
                          detail="The visit's written-off total differs from its active write-offs")
        else:
            yield Finding("encounter", eid, label, expected=f"receivable {money(bal)}",
                          actual=f"receivable {money(receivable)}", amount=receivable - bal,
                          detail="The journal's patient receivable differs from the visit's balance")


@check(K.TOTALS_TABLE, run_kind=BOOKS)
def totals_table(ctx):
    """The per-patient totals table (the responsibility list's source) equals a recount."""
    for r in rows(MISMATCH_SQL, {"practice": ctx.practice.pk}):
        pid = r[0]
        names = ("due now", "pending the payer", "available", "locked")
        pairs = [(n, r[1 + 2 * i], r[2 + 2 * i]) for i, n in enumerate(names)]
        off = [(n, row, truth) for n, row, truth in pairs if row != truth]
        last, first, account = rows("SELECT last_name, first_name, account_number FROM ledger_patient WHERE id = %s",
                                    [pid])[0]
        yield Finding("patient", pid, patient_label(last, first, account),
                      expected=", ".join(f"{n} {money(t)}" for n, _, t in off),
                      actual=", ".join(f"{n} {money(v)}" for n, v, _ in off),
                      amount=sum((v - t for _, v, t in off), Decimal(0)),
                      detail="The patient's totals row differs from the sums of their visits and credits")
