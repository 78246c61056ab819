"""The nightly run for one practice (DOMAIN rule 6, issue 4), set-based.

Steps: (1) the caller's step before applying (the remittances app passes "post the practice's
pending 835 files", remittances/nightly.py), (2) release the locked credits of balanced encounters, (3) apply usable credits to open PR balances: for each DoS with a balance, the
credits locked to that DoS first, then available credits, oldest first; credits locked to
another DoS are never used. Practices with auto-apply off and excluded patients get step 2 only.

How it stays safe:
* one run per practice at a time: a PostgreSQL session advisory lock, held for the whole run and
  released by the server if the process dies;
* patients are processed in batches (keyset pagination on the patient id), one transaction per
  batch; each batch first takes the patients' row locks (FOR NO KEY UPDATE, ascending id), the
  same first lock every staff service takes, so staff work and the run serialise per patient, then
  the rows it writes in the order of ledger/locks.py (encounters, then credits; `lock_sql`);
* the plan is computed from the rows as they are under those locks, so a run killed half-way and
  started again finishes in exactly the state of one clean run, and a second run applies nothing.

How it stays fast: the plan is one SQL statement (window sums over balances and credits, an
interval join between them), and every write is one INSERT ... SELECT or UPDATE ... FROM per
batch: applications, credit and encounter changes, history rows, journal entries and lines.
Python holds only one batch of patient ids.
"""

import logging
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone

from credits.models import Credit, NightlyRun
from ledger.access import ensure_staff, system_user
from ledger.locks import lock_sql
from ledger.models import Encounter, Practice
from ledger.money import ZERO
from ledger.sql import ENCOUNTER_BALANCE_SQL, ENCOUNTER_PAYABLE_SQL

log = logging.getLogger(__name__)

ADVISORY_NAMESPACE = 0x5E771E  # first key of pg_advisory_lock(int, int); second is the practice id
DEFAULT_BATCH = 2000
PREVIEW_LINE_CAP = 5000


@dataclass
class RunResult:
    run: NightlyRun | None
    practice_id: int
    dry_run: bool = False
    status: str = NightlyRun.Status.SUCCEEDED
    patients_seen: int = 0
    application_count: int = 0
    applied_total: Decimal = ZERO
    released_credits: int = 0
    remittances_posted: int = 0
    lines: list = field(default_factory=list)  # preview: (patient_id, encounter_id, credit_id, amount, locked)

    def as_dict(self) -> dict:
        return {
            "run": self.run.pk if self.run else None, "practice": self.practice_id, "dry_run": self.dry_run,
            "status": self.status, "patients_seen": self.patients_seen, "applications": self.application_count,
            "applied_total": str(self.applied_total), "released_credits": self.released_credits,
            "remittances_posted": self.remittances_posted,
        }


# --- SQL -----------------------------------------------------------------------------------------

# the PR balance of a DoS and "payable" (no claim waits on a payer): ledger/sql.py, the one definition
BALANCE = ENCOUNTER_BALANCE_SQL.format(e="e")
PAYABLE = ENCOUNTER_PAYABLE_SQL.format(e="e")

PLAN_SQL = f"""
CREATE TEMP TABLE nightly_plan ON COMMIT DROP AS
WITH enc AS (
    SELECT e.id, e.patient_id, e.date_of_service, {BALANCE} AS bal
      FROM ledger_encounter e
     WHERE e.patient_id = ANY(%(pids)s) AND {BALANCE} > 0 AND {PAYABLE}
), lk AS (
    SELECT c.id, c.patient_id, c.locked_encounter_id AS enc_id, c.on_hand,
           SUM(c.on_hand) OVER (PARTITION BY c.locked_encounter_id ORDER BY c.created_at, c.id) - c.on_hand AS cstart
      FROM credits_credit c
     WHERE c.patient_id = ANY(%(pids)s) AND c.state = 'locked' AND c.locked_encounter_id IN (SELECT id FROM enc)
), lk_alloc AS (
    SELECT lk.id AS credit_id, lk.patient_id, lk.enc_id, LEAST(lk.on_hand, enc.bal - lk.cstart) AS amount,
           true AS locked
      FROM lk JOIN enc ON enc.id = lk.enc_id
     WHERE lk.cstart < enc.bal
), rest AS (
    SELECT enc.id, enc.patient_id, enc.date_of_service, enc.bal - COALESCE(u.used, 0) AS bal
      FROM enc LEFT JOIN (SELECT enc_id, SUM(amount) AS used FROM lk_alloc GROUP BY enc_id) u ON u.enc_id = enc.id
), rest_cum AS (
    SELECT id, patient_id, bal,
           SUM(bal) OVER (PARTITION BY patient_id ORDER BY date_of_service, id) - bal AS estart
      FROM rest WHERE bal > 0
), av AS (
    SELECT c.id, c.patient_id, c.on_hand,
           SUM(c.on_hand) OVER (PARTITION BY c.patient_id ORDER BY c.created_at, c.id) - c.on_hand AS cstart
      FROM credits_credit c
     WHERE c.patient_id = ANY(%(pids)s) AND c.state = 'available' AND c.on_hand > 0
)
SELECT credit_id, patient_id, enc_id, amount, locked FROM lk_alloc
UNION ALL
SELECT av.id, av.patient_id, r.id,
       LEAST(av.cstart + av.on_hand, r.estart + r.bal) - GREATEST(av.cstart, r.estart), false
  FROM av JOIN rest_cum r ON r.patient_id = av.patient_id
   AND av.cstart < r.estart + r.bal AND r.estart < av.cstart + av.on_hand
"""

RELEASE_SELECT_SQL = f"""
CREATE TEMP TABLE nightly_release ON COMMIT DROP AS
SELECT c.id AS credit_id, c.patient_id, c.locked_encounter_id AS enc_id, c.on_hand AS amount
  FROM credits_credit c JOIN ledger_encounter e ON e.id = c.locked_encounter_id
 WHERE c.patient_id = ANY(%(pids)s) AND c.state = 'locked' AND {BALANCE} = 0 AND {PAYABLE}
"""


# The rows a batch writes, locked in the order of ledger/locks.py after the patients: the DoS the
# plan may pay (a superset of nightly_plan's: balances only go down within a batch), then, right
# before each write, the credits it changes. The UPDATEs below then only write locked rows.
LOCK_ENCOUNTERS_SQL = lock_sql("encounters", alias="e", where=f"e.patient_id = ANY(%(pids)s) AND {BALANCE} > 0 "
                                                              f"AND {PAYABLE}")
LOCK_PLANNED_CREDITS_SQL = lock_sql("credits", where="id IN (SELECT credit_id FROM nightly_plan)")
LOCK_RELEASED_CREDITS_SQL = lock_sql("credits", where="id IN (SELECT credit_id FROM nightly_release)")


def _history_insert_sql(model, *, source_table: str, ids_sql: str) -> str:
    """INSERT ... SELECT that copies the current rows into django-simple-history's table."""
    hist = model.history.model
    skip = {"history_id", "history_date", "history_change_reason", "history_type", "history_user"}
    cols = [f.column for f in hist._meta.concrete_fields if f.name not in skip]
    col_list = ", ".join(cols)
    return (
        f"INSERT INTO {hist._meta.db_table} ({col_list}, history_date, history_change_reason, history_type, "
        f"history_user_id) SELECT {col_list}, %(now)s, %(reason)s, '~', %(user)s FROM {source_table} "
        f"WHERE id IN ({ids_sql})"
    )


def _journal_sql(*, kind: str, source: str, lines_sql: str) -> list[str]:
    """One journal entry per patient in `source`, then all their lines in one INSERT (the
    balance trigger checks the statement once)."""
    return [
        "CREATE TEMP TABLE nightly_entries (id bigint, patient_id bigint) ON COMMIT DROP",
        f"""WITH ins AS (
                INSERT INTO ledger_journalentry (practice_id, kind, memo, patient_id, created_by_id, created_at)
                SELECT %(practice)s, '{kind}', %(reason)s, patient_id, %(user)s, %(now)s
                  FROM (SELECT DISTINCT patient_id FROM {source}) d ORDER BY patient_id
                RETURNING id, patient_id)
            INSERT INTO nightly_entries SELECT id, patient_id FROM ins""",
        lines_sql,
        "DROP TABLE nightly_entries",
    ]


APPLY_WRITES = [
    """INSERT INTO credits_creditapplication (practice_id, patient_id, encounter_id, amount, credit_id, payment_id,
                                              returned_to_id, nightly_run_id, reason, created_at, created_by_id)
       SELECT %(practice)s, patient_id, enc_id, amount, credit_id, NULL, NULL, %(run)s, %(reason)s, %(now)s, %(user)s
         FROM nightly_plan ORDER BY patient_id, enc_id, credit_id""",
    """UPDATE credits_credit c
          SET on_hand = c.on_hand - p.used,
              applied_amount = c.applied_amount + p.used,
              state = CASE WHEN c.on_hand - p.used = 0 AND c.refund_hold = 0 THEN 'applied' ELSE c.state END,
              locked_encounter_id = CASE WHEN c.on_hand - p.used = 0 AND c.refund_hold = 0 THEN NULL
                                         ELSE c.locked_encounter_id END
         FROM (SELECT credit_id, SUM(amount) AS used FROM nightly_plan GROUP BY credit_id) p
        WHERE c.id = p.credit_id""",
    """UPDATE ledger_encounter e SET applied_amount = e.applied_amount + p.used
         FROM (SELECT enc_id, SUM(amount) AS used FROM nightly_plan GROUP BY enc_id) p
        WHERE e.id = p.enc_id""",
    # one line per credit used and one per DoS paid (a locked credit only ever pays its own DoS)
    *_journal_sql(kind="application", source="nightly_plan", lines_sql="""
        INSERT INTO ledger_journalline (entry_id, practice_id, account, amount, patient_id, encounter_id, credit_id)
        SELECT ne.id, %(practice)s, CASE WHEN p.locked THEN 'credits_locked' ELSE 'credits_available' END,
               SUM(p.amount), p.patient_id, CASE WHEN p.locked THEN MIN(p.enc_id) END, p.credit_id
          FROM nightly_plan p JOIN nightly_entries ne ON ne.patient_id = p.patient_id
         GROUP BY ne.id, p.patient_id, p.credit_id, p.locked
        UNION ALL
        SELECT ne.id, %(practice)s, 'patient_receivable', -SUM(p.amount), p.patient_id, p.enc_id, NULL
          FROM nightly_plan p JOIN nightly_entries ne ON ne.patient_id = p.patient_id
         GROUP BY ne.id, p.patient_id, p.enc_id"""),
]

RELEASE_WRITES = [
    """UPDATE credits_credit c SET state = 'available', locked_encounter_id = NULL
         FROM nightly_release r WHERE c.id = r.credit_id""",
    *_journal_sql(kind="unlock", source="nightly_release", lines_sql="""
        INSERT INTO ledger_journalline (entry_id, practice_id, account, amount, patient_id, encounter_id, credit_id)
        SELECT ne.id, %(practice)s, 'credits_locked', r.amount, r.patient_id, r.enc_id, r.credit_id
          FROM nightly_release r JOIN nightly_entries ne ON ne.patient_id = r.patient_id
        UNION ALL
        SELECT ne.id, %(practice)s, 'credits_available', -r.amount, r.patient_id, NULL, r.credit_id
          FROM nightly_release r JOIN nightly_entries ne ON ne.patient_id = r.patient_id"""),
]


# --- the run ---------------------------------------------------------------------------------------

def _try_lock(practice_id: int) -> bool:
    with connection.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_lock(%s, %s)", [ADVISORY_NAMESPACE, practice_id])
        return cur.fetchone()[0]


def _unlock(practice_id: int) -> None:
    with connection.cursor() as cur:
        cur.execute("SELECT pg_advisory_unlock(%s, %s)", [ADVISORY_NAMESPACE, practice_id])


def _patient_batches(practice_id: int, batch_size: int):
    """Keyset pagination over the practice's patients who have credits on hand: memory stays at
    one batch of ids whatever the size of the practice."""
    last = 0
    while True:
        with connection.cursor() as cur:
            cur.execute(
                """SELECT DISTINCT patient_id FROM credits_credit
                    WHERE practice_id = %s AND state IN ('available', 'locked') AND patient_id > %s
                    ORDER BY patient_id LIMIT %s""", [practice_id, last, batch_size])
            ids = [r[0] for r in cur.fetchall()]
        if not ids:
            return
        yield ids
        last = ids[-1]


MAX_ROUNDS = 10


def _run_batch(*, practice: Practice, pids: list[int], params: dict, result: RunResult, dry_run: bool) -> None:
    """One batch, one transaction. Release, then plan -> apply -> release until nothing more is
    released: credits freed because their DoS got balanced are used for the patient's other open
    balances in the same run, so one run is complete (a second finds nothing). A preview does the
    same work and rolls the batch back, so what it shows is exactly what a run would do."""
    with transaction.atomic(), connection.cursor() as cur:
        # the same first lock every service takes: staff work on these patients waits, and we wait for it
        cur.execute(lock_sql("patients", where="id = ANY(%s)", columns="id, exclude_from_auto_apply"), [pids])
        rows = cur.fetchall()
        apply_ids = [pid for pid, excluded in rows if not excluded] if practice.auto_apply else []
        result.patients_seen += len(rows)
        p = dict(params, pids=pids)
        if apply_ids:  # then the DoS the applications may pay, before any credit (ledger/locks.py ORDER)
            cur.execute(LOCK_ENCOUNTERS_SQL, dict(p, pids=apply_ids))
        released = _release(cur, p)
        for _ in range(MAX_ROUNDS):
            if not apply_ids:
                break
            cur.execute(PLAN_SQL, dict(p, pids=apply_ids))
            cur.execute("SELECT count(*), COALESCE(SUM(amount), 0) FROM nightly_plan")
            count, total = cur.fetchone()
            if count and dry_run and len(result.lines) < PREVIEW_LINE_CAP:
                cur.execute("SELECT patient_id, enc_id, credit_id, amount, locked FROM nightly_plan "
                            "ORDER BY patient_id, enc_id, locked DESC, credit_id LIMIT %s",
                            [PREVIEW_LINE_CAP - len(result.lines)])
                result.lines += cur.fetchall()
            if count:
                result.application_count += count
                result.applied_total += total
                cur.execute(LOCK_PLANNED_CREDITS_SQL)
                for sql in APPLY_WRITES:
                    cur.execute(sql, p)
                cur.execute(_history_insert_sql(Credit, source_table="credits_credit",
                                                ids_sql="SELECT credit_id FROM nightly_plan"), p)
                cur.execute(_history_insert_sql(Encounter, source_table="ledger_encounter",
                                                ids_sql="SELECT enc_id FROM nightly_plan"), p)
            cur.execute("DROP TABLE nightly_plan")
            newly = _release(cur, p) if count else 0  # DoS balanced just now (example A)
            released += newly
            if not newly:
                break
        result.released_credits += released
        if dry_run:
            transaction.set_rollback(True)  # a preview writes nothing
        elif result.run is not None:
            NightlyRun.objects.filter(pk=result.run.pk).update(
                patients_seen=result.patients_seen, application_count=result.application_count,
                applied_total=result.applied_total, released_credits=result.released_credits)


def _release(cur, p: dict) -> int:
    cur.execute(RELEASE_SELECT_SQL, p)
    cur.execute("SELECT count(*) FROM nightly_release")
    count = cur.fetchone()[0]
    if count:
        rp = dict(p, reason=f"DoS balanced: {p['reason']}")
        cur.execute(LOCK_RELEASED_CREDITS_SQL)
        for sql in RELEASE_WRITES:
            cur.execute(sql, rp)
        cur.execute(_history_insert_sql(Credit, source_table="credits_credit",
                                        ids_sql="SELECT credit_id FROM nightly_release"), rp)
    cur.execute("DROP TABLE nightly_release")
    return count


def nightly_apply(*, practice_id: int, dry_run: bool = False, actor=None, batch_size: int = DEFAULT_BATCH,
                reason: str = "Nightly application", before_apply=None) -> RunResult:
    """Run (or preview, with `dry_run`) the nightly steps for one practice. Returns what was done;
    a run that finds another one in progress does nothing and says so (status "skipped").

    `actor` is who runs it ("Run now" in the admin, the API): they must be staff of the practice,
    and every row the run writes (applications, journal, history) names them; the scheduled run
    has no actor and writes as the system user. `before_apply(actor) -> int`, when given, runs
    first under the run's lock (step 1: the remittances app posts the practice's pending 835 files
    there, see remittances/nightly.py); what it returns is `remittances_posted`."""
    practice = Practice.objects.get(pk=practice_id)
    if actor is not None:
        ensure_staff(actor, practice_id)
    user = actor or system_user()
    result = RunResult(run=None, practice_id=practice_id, dry_run=dry_run)
    if not _try_lock(practice_id):
        result.status = NightlyRun.Status.SKIPPED
        if not dry_run:
            result.run = NightlyRun.objects.create(
                practice=practice, status=NightlyRun.Status.SKIPPED, finished_at=timezone.now(),
                triggered_by=actor, error="another run for this practice was in progress")
        return result
    try:
        # a run that died (process killed) left its row "running"; nobody holds its lock now
        NightlyRun.objects.filter(practice=practice, status=NightlyRun.Status.RUNNING).update(
            status=NightlyRun.Status.FAILED, finished_at=timezone.now(), error="interrupted (process ended mid-run)")
        if not dry_run:
            result.run = NightlyRun.objects.create(practice=practice, triggered_by=actor)
        try:
            if before_apply is not None and not dry_run:
                result.remittances_posted = before_apply(user)
            params = {"practice": practice_id, "user": user.pk, "reason": reason,
                      "now": timezone.now(), "run": result.run.pk if result.run else None}
            for pids in _patient_batches(practice_id, batch_size):
                params["now"] = timezone.now()
                _run_batch(practice=practice, pids=pids, params=params, result=result, dry_run=dry_run)
        except Exception as exc:
            result.status = NightlyRun.Status.FAILED
            if result.run is not None:
                NightlyRun.objects.filter(pk=result.run.pk).update(
                    status=NightlyRun.Status.FAILED, finished_at=timezone.now(), error=f"{type(exc).__name__}: {exc}")
            raise
        if result.run is not None:
            NightlyRun.objects.filter(pk=result.run.pk).update(status=NightlyRun.Status.SUCCEEDED,
                                                                finished_at=timezone.now())
            result.run.refresh_from_db()
        return result
    finally:
        _unlock(practice_id)
