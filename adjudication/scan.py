"""The scan (DOMAIN rule 15, issue 11 item 1): every night, after the nightly application, settle
finds every credit balance of a practice and opens one case for it; a case whose money is gone
closes itself and says why.

What it finds, in set-based SQL (one INSERT ... SELECT per batch, never a Python loop over rows):

* patient credits: available, money on hand, created at least `AdjudicationSettings.min_credit_age_days`
  days ago (in the practice's time zone). Locked credits are not credit balances yet: they wait for
  a payer's decision on their visit. Amount: on hand plus what a refund in flight holds; the clock
  starts on the day the credit appeared (`determined_on`, practice time zone); the case keeps the
  credit's source.
* payer credits: open ones (`credits.PayerCredit`), cause from the payer credit's reason (paid twice,
  paid above the charge, paid as primary when another payer was) or `takeback_pending` when a
  negative PLB WO opened it (a recoupment the payer deferred); amount: what is still due to the payer.
* visits paid beyond their charge: the payers' net payments on the visit's claims plus the patient
  money applied to it exceed the charge (`core.encounter_paid_beyond_charge` is the same in Python);
  amount: the excess, determined on the day of the scan.

One case per credit balance, never two: the INSERTs skip money that has a case and end in
`ON CONFLICT DO NOTHING` against the partial unique indexes `case_one_per_credit`,
`case_one_per_payer_credit` and `case_one_open_per_encounter`, so two scans at once, or a scan and a
staff member, cannot open a second case (the loser's row is simply not inserted). Each new case gets
its history row ('+', the acting user, the reason), an "opened" event and its clock (`refresh_clocks`,
adjudication/clocks.py) in the transaction that inserts it.

Then `cases_close_gone` resolves the open cases whose money is gone, then `unclaimed_find` lists the
credits past their state's dormancy (adjudication/services/unclaimed.py).

Batches: each kind is read in keyset batches of `batch_size` candidate rows (one transaction each),
and so is the self-closing step, so Python never holds more than one batch of ids whatever the size
of the practice.
"""

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.db import connection, transaction
from django.utils import timezone

from adjudication.clocks import practice_today, refresh_clocks
from adjudication.models import AdjudicationSettings, Case, CaseEvent, Proposal
from adjudication.services.unclaimed import unclaimed_find
from ledger.access import ensure_staff, system_user
from ledger.bulk import history_fields
from ledger.errors import NotFound
from ledger.inputs import require_reason
from ledger.locks import lock_sql
from ledger.models import Practice

log = logging.getLogger(__name__)

DEFAULT_BATCH = 5000
ANALYZE_AFTER = 10_000  # cases opened by one scan


@dataclass
class ScanResult:
    practice_id: int
    opened: int = 0
    closed: int = 0
    clocks_updated: int = 0
    unclaimed_listed: int = 0
    seconds: float = 0.0
    opened_patient_credits: int = 0
    opened_payer_credits: int = 0
    opened_encounters: int = 0
    steps: dict = field(default_factory=dict)  # seconds of each step

    def as_dict(self) -> dict:
        out = asdict(self)
        out["seconds"] = round(self.seconds, 3)
        return out


# --- SQL pieces ------------------------------------------------------------------------------------

def _q(name: str) -> str:
    return connection.ops.quote_name(name)


def _defaults(model, given: set[str]) -> tuple[list[str], list[str], dict]:
    """Columns of `model` the caller does not give, with their Django defaults as named
    parameters (`d_<column>`): the INSERTs below name every column, so a column another part adds
    later (with a default) is filled the way the ORM would fill it."""
    cols, exprs, params = [], [], {}
    for f in model._meta.concrete_fields:
        if f.primary_key or f.column in given:
            continue
        value = f.get_default() if f.has_default() else None
        if value is None and not f.null and f.get_internal_type() in ("CharField", "TextField"):
            value = ""
        cast = ""
        if f.get_internal_type() == "JSONField":
            value, cast = json.dumps(value if value is not None else {}), "::jsonb"
        cols.append(f.column)
        exprs.append(f"%(d_{f.column})s{cast}")
        params[f"d_{f.column}"] = value
    return cols, exprs, params


def _case_insert(select_exprs: dict[str, str]) -> tuple[str, dict]:
    """INSERT INTO adjudication_case (every column) SELECT `select_exprs` FROM the batch of
    candidates (scan_batch s), skipping any conflict with the one-case-per-money indexes; the new
    ids go to scan_new."""
    cols, exprs, params = _defaults(Case, set(select_exprs))
    all_cols = list(select_exprs) + cols
    all_exprs = list(select_exprs.values()) + exprs
    sql = (f"WITH ins AS (INSERT INTO adjudication_case ({', '.join(_q(c) for c in all_cols)}) "
           f"SELECT {', '.join(all_exprs)} FROM scan_batch s ORDER BY s.id "
           "ON CONFLICT DO NOTHING RETURNING id) INSERT INTO scan_new SELECT id FROM ins")
    return sql, params


COMMON = {
    "practice_id": "%(practice)s", "state": "'identified'", "outcome": "''", "outcome_note": "''",
    "automatic": "false", "identified_at": "%(now)s", "clock_stopped": "false", "reopened_count": "0",
}

# patient credits: available, money on hand, old enough; keyset on (patient, id) along
# credit_onhand_practice_idx. The money became the patient's credit balance when the credit
# appeared, or, for one that was locked to a visit (a held payment), when it was last released:
# the first history row back in "available" after its last "locked" one (example J).
PATIENT_SOURCE = """
    SELECT c.id, c.patient_id, c.source, c.on_hand + c.refund_hold AS amount,
           (d.at AT TIME ZONE %(tz)s)::date AS determined_on
      FROM credits_credit c
     CROSS JOIN LATERAL (
           SELECT COALESCE((SELECT MIN(h.history_date) FROM credits_historicalcredit h
                             WHERE h.id = c.id AND h.state = 'available' AND h.history_date > lk.at),
                           lk.at, c.created_at) AS at
             FROM (SELECT MAX(h.history_date) AS at FROM credits_historicalcredit h
                    WHERE h.id = c.id AND h.state = 'locked') lk) d
     WHERE c.practice_id = %(practice)s AND c.state = 'available' AND c.on_hand > 0
       AND d.at < %(cutoff)s
       AND c.patient_id >= %(after_a)s AND (c.patient_id, c.id) > (%(after_a)s, %(after_b)s)
       AND NOT EXISTS (SELECT 1 FROM adjudication_case k WHERE k.credit_id = c.id)
     ORDER BY c.patient_id, c.id
     LIMIT %(batch)s"""
PATIENT_COLUMNS = {
    **COMMON, "kind": "'patient_credit'", "cause": "'patient_overpayment'", "source": "s.source",
    "credit_id": "s.id", "patient_id": "s.patient_id", "amount": "s.amount", "determined_on": "s.determined_on",
    "payer_type": "''",
}

# payer credits: open, with what is still due; cause from the reason, or a deferred recoupment
PAYER_SOURCE = """
    SELECT pc.id, pc.payer_id, p.payer_type, pc.amount - pc.resolved_amount AS amount,
           (pc.created_at AT TIME ZONE %(tz)s)::date AS determined_on, e.patient_id,
           CASE WHEN EXISTS (SELECT 1 FROM ledger_remittanceadjustment a
                              WHERE a.payer_credit_id = pc.id AND a.code = 'WO' AND a.amount < 0)
                THEN 'takeback_pending'
                WHEN pc.reason IN ('duplicate_payment', 'above_allowed', 'wrong_primary') THEN pc.reason
                ELSE 'other' END AS cause
      FROM credits_payercredit pc
      JOIN ledger_payer p ON p.id = pc.payer_id
      LEFT JOIN ledger_claim cl ON cl.id = pc.claim_id
      LEFT JOIN ledger_encounter e ON e.id = cl.encounter_id
     WHERE pc.practice_id = %(practice)s AND pc.state = 'open' AND pc.amount > pc.resolved_amount
       AND pc.id > %(after_a)s
       AND NOT EXISTS (SELECT 1 FROM adjudication_case k WHERE k.payer_credit_id = pc.id)
     ORDER BY pc.id
     LIMIT %(batch)s"""
PAYER_COLUMNS = {
    **COMMON, "kind": "'payer_credit'", "cause": "s.cause", "source": "''", "payer_credit_id": "s.id",
    "payer_id": "s.payer_id", "payer_type": "s.payer_type", "patient_id": "s.patient_id", "amount": "s.amount",
    "determined_on": "s.determined_on",
}

# visits paid beyond their charge (the same as core.encounter_paid_beyond_charge)
ENCOUNTER_SOURCE = """
    SELECT e.id, e.patient_id, cl.paid + e.applied_amount - e.charge AS amount
      FROM ledger_encounter e
      JOIN (SELECT encounter_id, SUM(paid_amount) AS paid FROM ledger_claim
             WHERE practice_id = %(practice)s GROUP BY encounter_id) cl ON cl.encounter_id = e.id
     WHERE e.practice_id = %(practice)s AND e.charge > 0 AND cl.paid + e.applied_amount > e.charge
       AND e.id > %(after_a)s
       AND NOT EXISTS (SELECT 1 FROM adjudication_case k
                        WHERE k.encounter_id = e.id AND k.kind = 'encounter_overpaid' AND k.state <> 'resolved')
     ORDER BY e.id
     LIMIT %(batch)s"""
ENCOUNTER_COLUMNS = {
    **COMMON, "kind": "'encounter_overpaid'", "cause": "'paid_beyond_charge'", "source": "''",
    "encounter_id": "s.id", "patient_id": "s.patient_id", "amount": "LEAST(s.amount, 10000000.00)",
    "determined_on": "%(today)s", "payer_type": "''",
}

SUBJECT_SQL = """CASE k.kind WHEN 'patient_credit' THEN 'patient credit #' || k.credit_id
                             WHEN 'payer_credit' THEN 'payer credit #' || k.payer_credit_id
                             ELSE 'visit #' || k.encounter_id || ' paid beyond its charge' END"""


def _history_sql(model, *, ids_table: str, reason_sql: str, history_type: str) -> str:
    """History rows (simple_history's table) copied from the current rows whose ids are in `ids_table`."""
    fields = history_fields(model)
    cols = ", ".join(_q(f.column) for f in fields)
    hist = model.history.model._meta.db_table
    return (f"INSERT INTO {_q(hist)} ({cols}, history_date, history_change_reason, history_type, history_user_id) "
            f"SELECT {', '.join('t.' + _q(f.column) for f in fields)}, %(now)s, {reason_sql}, '{history_type}', "
            f"%(user)s FROM {_q(model._meta.db_table)} t JOIN {ids_table} n ON n.id = t.id ORDER BY t.id")


def _event_sql(*, ids_table: str, kind: str, text_sql: str, from_sql: str, to_sql: str, data_sql: str,
               case_col: str = "id") -> str:
    return ("INSERT INTO adjudication_caseevent (case_id, kind, text, from_state, to_state, data, actor_id, at) "
            f"SELECT n.{case_col}, '{kind}', {text_sql}, {from_sql}, {to_sql}, {data_sql}, %(user)s, %(now)s "
            f"FROM {ids_table} n ORDER BY n.{case_col}")


OPENED_EVENT_SQL = (
    "INSERT INTO adjudication_caseevent (case_id, kind, text, from_state, to_state, data, actor_id, at) "
    f"SELECT k.id, '{CaseEvent.Kind.OPENED}', %(reason)s || ': ' || {SUBJECT_SQL} || ', ' || k.amount, '', "
    "'identified', jsonb_build_object('amount', k.amount::text, 'cause', k.cause, 'kind', k.kind, 'scan', true), "
    "%(user)s, %(now)s FROM adjudication_case k JOIN scan_new n ON n.id = k.id ORDER BY k.id")


# --- the scan --------------------------------------------------------------------------------------

def settings_for(practice_id: int) -> AdjudicationSettings:
    """The practice's adjudication settings, created with their defaults when missing."""
    row, _ = AdjudicationSettings.objects.get_or_create(practice_id=practice_id)
    return row


def scan_practice(*, practice_id: int, actor=None, reason: str = "Nightly scan", today: date | None = None,
                  batch_size: int = DEFAULT_BATCH) -> ScanResult:
    """Open a case for every credit balance of the practice that has none, resolve the cases whose
    money is gone, and list unclaimed property (see the module docstring). Runs batch by batch,
    each batch its own transaction (call it outside a transaction for that; inside one it is one
    big transaction). Running it twice opens nothing the second time."""
    started = time.perf_counter()
    reason = require_reason(reason)
    practice = Practice.objects.filter(pk=practice_id).first()
    if practice is None:
        raise NotFound(f"unknown practice {practice_id}", field="practice")
    actor = actor or system_user()
    ensure_staff(actor, practice.pk)
    today = today or practice_today(practice)
    conf = settings_for(practice.pk)
    tz = ZoneInfo(practice.time_zone)
    # "older than the minimum age": created on or before today - min age, in the practice's zone
    cutoff = datetime.combine(today - timedelta(days=conf.min_credit_age_days - 1), datetime.min.time(), tzinfo=tz)
    params = {"practice": practice.pk, "tz": practice.time_zone, "cutoff": cutoff, "today": today,
              "user": actor.pk, "reason": reason, "batch": batch_size}
    result = ScanResult(practice_id=practice.pk)

    for kind, source, columns, keys in (
            ("patient_credits", PATIENT_SOURCE, PATIENT_COLUMNS, ("patient_id", "id")),
            ("payer_credits", PAYER_SOURCE, PAYER_COLUMNS, ("id",)),
            ("encounters", ENCOUNTER_SOURCE, ENCOUNTER_COLUMNS, ("id",))):
        t0 = time.perf_counter()
        opened, clocks = _open_kind(practice.pk, source, columns, keys, params)
        result.steps[f"open_{kind}"] = round(time.perf_counter() - t0, 3)
        setattr(result, f"opened_{kind}", opened)
        result.opened += opened
        result.clocks_updated += clocks

    if result.opened >= ANALYZE_AFTER:
        # the planner's statistics of the cases table, fresh after a big first scan (the closing
        # step's joins are planned on them; autovacuum would catch up only later)
        with connection.cursor() as cur:
            cur.execute("ANALYZE adjudication_case")

    # every open case's clock against the rules as they are now (managers edit them): only the
    # clocks that changed are written, each with a history row
    t0 = time.perf_counter()
    with transaction.atomic():
        result.clocks_updated += refresh_clocks(practice_id=practice.pk, today=today, actor=actor,
                                                reason="Clock refreshed from the rules by the scan")
    result.steps["refresh_clocks"] = round(time.perf_counter() - t0, 3)
    t0 = time.perf_counter()
    result.closed = close_gone_batches(practice_id=practice.pk, actor=actor, batch_size=batch_size)
    result.steps["close_gone"] = round(time.perf_counter() - t0, 3)
    t0 = time.perf_counter()
    result.unclaimed_listed = unclaimed_find(practice_id=practice.pk, today=today)
    result.steps["unclaimed_find"] = round(time.perf_counter() - t0, 3)
    result.seconds = time.perf_counter() - started
    log.info("scan of practice %s: %s", practice.pk, result.as_dict())
    return result


def _open_kind(practice_id: int, source: str, columns: dict, keys: tuple, params: dict) -> tuple[int, int]:
    """Open the cases of one kind, batch by batch (keyset on `keys` of the candidates): each batch
    of candidates is read once into a temporary table, its cases inserted with their history rows,
    "opened" events and clocks, in one transaction."""
    insert_sql, defaults = _case_insert(columns)
    last_sql = f"SELECT {', '.join(keys)} FROM scan_batch ORDER BY {', '.join(k + ' DESC' for k in keys)} LIMIT 1"
    after = (0, 0)
    opened = clocks = 0
    while True:
        with transaction.atomic(), connection.cursor() as cur:
            p = {**params, **defaults, "now": timezone.now(), "after_a": after[0], "after_b": after[1]}
            cur.execute(f"CREATE TEMP TABLE scan_batch ON COMMIT DROP AS {source}", p)
            candidates = cur.rowcount
            if candidates:
                cur.execute(last_sql)
                last = cur.fetchone()
                cur.execute("CREATE TEMP TABLE scan_new (id bigint PRIMARY KEY) ON COMMIT DROP")
                cur.execute(insert_sql, p)
                new = cur.rowcount
                if new:
                    # the clock first, so that the case's first history row has it
                    cur.execute("SELECT id FROM scan_new ORDER BY id")
                    ids = [r[0] for r in cur.fetchall()]
                    clocks += refresh_clocks(practice_id=practice_id, case_ids=ids, today=params["today"])
                    cur.execute(_history_sql(Case, ids_table="scan_new", reason_sql="%(reason)s",
                                             history_type="+"), p)
                    cur.execute(OPENED_EVENT_SQL, p)
                cur.execute("DROP TABLE scan_new")
                opened += new
            cur.execute("DROP TABLE scan_batch")
        if candidates < params["batch"]:
            return opened, clocks
        after = (last[0], last[1] if len(last) > 1 else 0)


# --- cases whose money is gone ---------------------------------------------------------------------

# open cases whose money is gone, with the outcome and the reason in words
GONE_SQL = """
    SELECT k.id, k.state AS from_state,
           CASE WHEN k.kind = 'patient_credit' THEN
                     CASE c.state WHEN 'applied' THEN 'applied' WHEN 'refunded' THEN 'refund_patient'
                                  ELSE 'money_gone' END
                WHEN k.kind = 'payer_credit' THEN
                     CASE pc.state WHEN 'refunded' THEN 'refund_payer' WHEN 'recouped' THEN 'recouped'
                                   ELSE 'money_gone' END
                ELSE 'money_gone' END AS outcome,
           CASE WHEN k.kind = 'patient_credit' THEN
                     CASE c.state
                     WHEN 'applied' THEN 'The credit was applied to open balances'
                          || CASE WHEN EXISTS (SELECT 1 FROM credits_creditapplication ca
                                                WHERE ca.credit_id = c.id AND ca.nightly_run_id IS NOT NULL)
                                  THEN ' by the nightly run' ELSE '' END
                          || ' (' || c.applied_amount || ' applied'
                          || CASE WHEN c.refunded_amount > 0 THEN ', ' || c.refunded_amount || ' refunded' ELSE '' END
                          || CASE WHEN c.removed_amount > 0 THEN ', ' || c.removed_amount || ' removed' ELSE '' END
                          || ').'
                     WHEN 'refunded' THEN 'The credit was refunded to the patient ('
                          || c.refunded_amount || COALESCE(', refund #' || r.id || ' by ' || r.method
                          || CASE WHEN r.reference <> '' THEN ' ' || r.reference ELSE '' END, '') || ').'
                     ELSE 'The credit was removed (' || c.removed_amount || ' removed'
                          || COALESCE(': ' || NULLIF(h.history_change_reason, ''), '') || ').' END
                WHEN k.kind = 'payer_credit' THEN
                     CASE WHEN a.id IS NOT NULL THEN
                               CASE pc.state WHEN 'recouped' THEN 'The payer recouped it' ELSE 'The payer took it back'
                               END || ' in 835 file ' || f.filename || ' (PLB ' || a.code
                               || CASE WHEN a.reference <> '' THEN ' ' || a.reference ELSE '' END
                               || ' ' || a.amount || ', segment ' || a.segment || ').'
                          WHEN pc.state = 'refunded' THEN 'The payer credit was refunded to the payer by check '
                               || pc.reference || '.'
                          ELSE 'The payer recouped it (' || pc.reference || ').' END
                ELSE 'The visit is no longer paid beyond its charge (payers ' || COALESCE(cl.paid, 0)
                     || ' + patient money ' || e.applied_amount || ', charge ' || e.charge || ').' END AS note,
           a.id AS adjustment_id, f.id AS file_id, f.filename
      FROM adjudication_case k
      LEFT JOIN credits_credit c ON c.id = k.credit_id
      LEFT JOIN credits_payercredit pc ON pc.id = k.payer_credit_id
      LEFT JOIN ledger_encounter e ON e.id = k.encounter_id AND k.kind = 'encounter_overpaid'
      LEFT JOIN LATERAL (SELECT SUM(paid_amount) AS paid FROM ledger_claim WHERE encounter_id = e.id) cl
             ON k.kind = 'encounter_overpaid'
      LEFT JOIN LATERAL (SELECT r.id, r.method, r.reference FROM credits_refund r
                          WHERE r.credit_id = c.id AND r.state = 'issued' ORDER BY r.id DESC LIMIT 1) r
             ON c.state = 'refunded'
      LEFT JOIN LATERAL (SELECT h.history_change_reason FROM credits_historicalcredit h
                          WHERE h.id = c.id ORDER BY h.history_id DESC LIMIT 1) h ON c.state = 'removed'
      LEFT JOIN LATERAL (SELECT a.id, a.code, a.reference, a.amount, a.segment, a.transaction_id
                           FROM ledger_remittanceadjustment a
                          WHERE a.payer_credit_id = pc.id AND a.code IN ('WO', '72') AND a.amount > 0
                          ORDER BY a.id DESC LIMIT 1) a ON pc.state <> 'open'
      LEFT JOIN ledger_remittancetransaction t ON t.id = a.transaction_id
      LEFT JOIN ledger_remittancefile f ON f.id = t.file_id
     WHERE k.practice_id = %(practice)s AND k.state <> 'resolved' AND {where}
       AND ((k.kind = 'patient_credit' AND c.on_hand + c.refund_hold = 0)
         OR (k.kind = 'payer_credit' AND pc.state <> 'open')
         OR (k.kind = 'encounter_overpaid'
             AND (e.charge <= 0 OR COALESCE(cl.paid, 0) + e.applied_amount <= e.charge)))"""

LOCK_CASES_SQL = lock_sql("cases", where="id = ANY(%(ids)s) AND state <> 'resolved'")
LOCK_PROPOSALS_SQL = lock_sql("proposals", where="case_id IN (SELECT id FROM gone) AND state IN ('proposed', "
                                                 "'approved')")

CLOSE_WRITES = [
    # the live proposals: an approved wait for the payer's recoupment is carried out by it, and so
    # is an approved card refund whose refund the processor has paid (the scan ran between the
    # pay-out and the case's own resolution); any other is refused with the reason (nothing of it
    # can be carried out any more)
    """CREATE TEMP TABLE gone_proposals ON COMMIT DROP AS
       SELECT p.id, p.case_id, p.kind, p.state AS from_state, g.note, g.outcome,
              CASE WHEN p.state = 'approved' AND (
                        (p.kind = 'await_recoupment' AND g.outcome = 'recouped')
                        OR (p.kind = 'refund_patient' AND g.outcome = 'refund_patient' AND EXISTS (
                            SELECT 1 FROM credits_refund r
                             WHERE r.id::text = p.result->>'refund' AND r.state = 'issued')))
                   THEN 'carried_out' ELSE 'refused' END AS to_state
         FROM adjudication_proposal p JOIN gone g ON g.id = p.case_id
        WHERE p.state IN ('proposed', 'approved')""",
    """UPDATE adjudication_proposal p
          SET state = gp.to_state,
              refusal = CASE WHEN gp.to_state = 'refused' THEN gp.note ELSE p.refusal END,
              carried_out_at = CASE WHEN gp.to_state = 'carried_out' THEN %(now)s ELSE p.carried_out_at END,
              result = CASE WHEN gp.to_state = 'carried_out'
                            THEN p.result || jsonb_build_object('outcome', gp.outcome, 'note', gp.note,
                                                                'automatic', true)
                            ELSE p.result END,
              decided_by_id = COALESCE(p.decided_by_id, %(system)s),
              decided_at = COALESCE(p.decided_at, %(now)s),
              decision_note = CASE WHEN p.decided_by_id IS NULL THEN gp.note ELSE p.decision_note END
         FROM gone_proposals gp WHERE p.id = gp.id""",
    _history_sql(Proposal, ids_table="gone_proposals", reason_sql="n.note", history_type="~"),
    # the cases: resolved by themselves, as Case.resolve(automatic=True) does
    """UPDATE adjudication_case k
          SET state = 'resolved', outcome = g.outcome, outcome_note = g.note, automatic = true,
              resolved_at = %(now)s, resolved_by_id = NULL, follow_up_on = NULL
         FROM gone g WHERE k.id = g.id""",
    _history_sql(Case, ids_table="gone", reason_sql="n.note", history_type="~"),
    _event_sql(ids_table="gone_proposals", case_col="case_id",
               kind=CaseEvent.Kind.REFUSED,
               text_sql="'Proposal #' || n.id || ' ' || CASE n.to_state WHEN 'refused' THEN 'refused: '"
                        " WHEN 'carried_out' THEN CASE n.kind WHEN 'await_recoupment' THEN 'carried out by the payer: '"
                        " ELSE 'carried out: ' END END || n.note",
               from_sql="''", to_sql="''",
               data_sql="jsonb_build_object('proposal', n.id, 'proposal_state', n.to_state, 'automatic', true)"),
    _event_sql(ids_table="gone", kind=CaseEvent.Kind.STATE, text_sql="n.note", from_sql="n.from_state",
               to_sql="'resolved'",
               data_sql="jsonb_strip_nulls(jsonb_build_object('outcome', n.outcome, 'automatic', true, "
                        "'adjustment', n.adjustment_id, 'file', n.file_id, 'filename', n.filename))"),
]


@transaction.atomic
def cases_close_gone(*, practice_id: int, actor=None, case_ids=None, reason: str = "") -> int:
    """Resolve the practice's open cases whose money is gone (all of them, or those of `case_ids`):
    outcome by where the money went (applied, refunded, removed; a payer credit refunded or
    recouped, naming the 835 file and PLB), automatic, the reason in words on the case, its history
    row and a "state" event. A live proposal of such a case is refused with the reason (an
    approved wait for the payer's recoupment is carried out by the recoupment). Locks the cases,
    then their proposals (ledger.locks ORDER). Returns the number of cases resolved."""
    actor = actor or system_user()
    ensure_staff(actor, practice_id)
    params = {"practice": practice_id, "now": timezone.now(), "user": actor.pk, "system": system_user().pk}
    with connection.cursor() as cur:
        if case_ids is None:
            cur.execute("SELECT g.id FROM (" + GONE_SQL.format(where="true") + ") g", params)
        else:
            ids = sorted({int(i) for i in case_ids})
            if not ids:
                return 0
            cur.execute("SELECT g.id FROM (" + GONE_SQL.format(where="k.id = ANY(%(ids)s)") + ") g",
                        {**params, "ids": ids})
        candidates = [r[0] for r in cur.fetchall()]
        if not candidates:
            return 0
        cur.execute(LOCK_CASES_SQL, {"ids": candidates})
        locked = [r[0] for r in cur.fetchall()]
        if not locked:
            return 0
        # re-read under the locks: a case another transaction resolved meanwhile is left alone
        cur.execute("CREATE TEMP TABLE gone ON COMMIT DROP AS " + GONE_SQL.format(where="k.id = ANY(%(ids)s)"),
                    {**params, "ids": locked})
        count = cur.rowcount
        if count:
            cur.execute(LOCK_PROPOSALS_SQL)
            for sql in CLOSE_WRITES:
                cur.execute(sql, params)
        cur.execute("DROP TABLE IF EXISTS gone_proposals")
        cur.execute("DROP TABLE gone")
    return count


# a batch of the practice's open cases, by id (along case_queue_idx's condition and the primary key)
OPEN_BATCH_SQL = """SELECT id FROM adjudication_case
                     WHERE practice_id = %(practice)s AND state <> 'resolved' AND id > %(after)s
                     ORDER BY id LIMIT %(batch)s"""


def close_gone_batches(*, practice_id: int, actor=None, batch_size: int = DEFAULT_BATCH) -> int:
    """`cases_close_gone` over the whole practice: the open cases a batch of ids at a time, each
    batch one transaction (the scan). Linear in the number of open cases."""
    total, after = 0, 0
    while True:
        with connection.cursor() as cur:
            cur.execute(OPEN_BATCH_SQL, {"practice": practice_id, "after": after, "batch": batch_size})
            ids = [r[0] for r in cur.fetchall()]
        if not ids:
            return total
        total += cases_close_gone(practice_id=practice_id, actor=actor, case_ids=ids)
        after = ids[-1]
        if len(ids) < batch_size:
            return total


def scan_now(*, practice_id: int, actor, reason: str) -> ScanResult:
    """"Scan now" (the back-office button, the API): staff of the practice run the scan at once,
    as themselves and with their reason."""
    reason = require_reason(reason)
    ensure_staff(actor, practice_id)
    return scan_practice(practice_id=practice_id, actor=actor, reason=reason)
