"""Row locks, always taken in one global order so two transactions can never deadlock. `lock()` is
the one function that takes them: a service names what it needs (`lock(patients=[...],
credits=[...])`) and the rows are locked kind after kind in ORDER, by ascending primary key within a
kind (FOR NO KEY UPDATE: inserting rows that point at a locked row is not blocked):

    Practice -> Membership -> AuditFinding -> CaseReview -> CreditImport -> Case -> Proposal
             -> UnclaimedProperty -> Statement -> Patient
             -> ManualCreditRequest -> Encounter -> Claim
             -> RemittanceClaim -> Payment -> Credit -> Refund -> WriteOff -> PayerCredit
             -> RemittanceAdjustment -> RemittanceFile

Every money change for a patient starts by locking the Patient row, which serialises all work on
one patient's money; the finer locks that follow re-read the rows the service is about to change,
so it never trusts a caller's copy. A service may lock in several steps (it learns what else it
needs under the first locks), as long as each step's kinds come after the kinds it already holds
(the same kind again is fine: the patient's lock is held). A portal statement's guest-pay
counter is locked before its patient. What a batch or an approval stands for
comes before the patients it touches (a credit import, then its patients; an adjudication case,
its proposal and its unclaimed-property row, then the money the resolution moves); a practice's role
changes lock the practice, then the membership; an audit finding or a case review is decided before
the case a failed review reopens. The 835 remittance rows take their places after
what they book: a remittance claim right after the claim it decides (and before the patient money
the decision may move), a PLB adjustment after the payer credit it may close, the file last (its
status, once nothing of it is pending).

Set-based code (the nightly run, the CSV import, the 835 posting) locks in SQL, in the same order:
`lock_sql(kind, where=...)` is the locking statement of one kind (`SELECT id FROM <table> WHERE
... ORDER BY id FOR NO KEY UPDATE`) and `lock_ids(kind, ids)` runs it for ids without loading
rows. A set-based UPDATE or DELETE locks the rows it writes: it runs only on a kind already locked
by one of these, or on one that comes after everything the transaction holds.

Rows outside ORDER are locked alone, never together with the rows of ORDER: an API token
(api/tokens.py revokes it under its own lock; the kernel does not name interface models), the
sandbox card processor's charges (ledger/processors.py: the processor's own book, changed outside
any service's transaction as a real processor would be, over the network). Idempotency keys are
not row-locked: they are claimed by a unique INSERT and conditional UPDATEs, each its own short
transaction, before and after the service's.

The kernel names the other apps' models by label only (it imports none of them). The test suite
checks every locking statement of every transaction against this order and fails the test when
one comes out of it (tests/lock_order.py, the autouse fixture `lock_order_recorder` of
tests/conftest.py)."""

from dataclasses import dataclass, field
from functools import cache

from django.apps import apps
from django.db import connection
from django.db.models import Q

from ledger.errors import NotFound

# (keyword of lock(), model label, what an unknown id is called in an error)
ORDER = (
    ("practices", "ledger.Practice", "practice"),
    ("memberships", "ledger.Membership", "membership"),
    ("audit_findings", "reports.AuditFinding", "audit finding"),
    ("case_reviews", "reports.CaseReview", "case review"),
    ("credit_imports", "credits.CreditImport", "credit import"),
    ("cases", "adjudication.Case", "case"),
    ("proposals", "adjudication.Proposal", "proposal"),
    ("unclaimed", "adjudication.UnclaimedProperty", "unclaimed property"),
    ("statements", "portal.Statement", "statement"),
    ("patients", "ledger.Patient", "patient"),
    ("manual_credit_requests", "credits.ManualCreditRequest", "manual credit request"),
    ("encounters", "ledger.Encounter", "date of service"),
    ("claims", "ledger.Claim", "claim"),
    ("remittance_claims", "remittances.RemittanceClaim", "remittance claim"),
    ("payments", "ledger.Payment", "payment"),
    ("credits", "credits.Credit", "credit"),
    ("refunds", "credits.Refund", "refund"),
    ("writeoffs", "credits.WriteOff", "write-off"),
    ("payer_credits", "credits.PayerCredit", "payer credit"),
    ("remittance_adjustments", "remittances.RemittanceAdjustment", "remittance adjustment"),
    ("remittance_files", "remittances.RemittanceFile", "remittance file"),
)
KINDS = {kind: (label, noun) for kind, label, noun in ORDER}


def lock_rank_of_table(table: str) -> int | None:
    """The place of a database table in ORDER (for the test suite's recorder); None if not there."""
    return _ranks_by_table().get(table)


@cache
def _ranks_by_table() -> dict:
    return {apps.get_model(label)._meta.db_table: rank for rank, (_, label, _) in enumerate(ORDER)}


def lock_sql(kind: str, *, where: str, columns: str = "id", alias: str = "") -> str:
    """The statement that locks the rows of one kind matching `where` (SQL, with the caller's
    placeholders), by ascending id, for set-based code (see the module docstring). With `alias`, the
    table is named so in `where` and `columns`. The caller takes the kinds in ORDER."""
    table = apps.get_model(KINDS[kind][0])._meta.db_table
    name = alias or table
    return (f"SELECT {columns} FROM {table}{' ' + alias if alias else ''} WHERE {where} "
            f"ORDER BY {name}.id FOR NO KEY UPDATE OF {name}")


def lock_ids(kind: str, ids, *, where: str = "", params=()) -> set[int]:
    """Lock the rows of one kind by id, ascending, without loading them (set-based code); `where`
    (SQL with %s placeholders for `params`) is re-checked under the lock. Returns the ids locked."""
    ids = sorted({int(i) for i in ids if i is not None})
    if not ids:
        return set()
    with connection.cursor() as cur:
        cur.execute(lock_sql(kind, where="id = ANY(%s)" + (f" AND {where}" if where else "")), [ids, *params])
        return {r[0] for r in cur.fetchall()}


@dataclass
class Locked:
    """The rows `lock()` locked, by kind: {id: row}."""

    rows: dict = field(default_factory=dict)

    def __getattr__(self, kind: str) -> dict:
        if kind in KINDS:
            return self.rows.get(kind, {})
        raise AttributeError(kind)


def lock(*, only: dict | None = None, missing_ok=(), select_related: dict | None = None, **wanted) -> Locked:
    """Lock the rows a service needs, in the global ORDER (FOR NO KEY UPDATE). `wanted`: kind ->
    ids. `only`: kind -> Q, a condition re-checked under the lock (rows that no longer meet it are
    left unlocked and absent from the result, e.g. remittance claims no longer pending). An id
    that does not exist is a NotFound naming the kind, unless the kind is in `missing_ok` (or
    filtered by `only`). Must run inside the service's transaction."""
    unknown = set(wanted) - set(KINDS)
    if unknown:
        raise TypeError(f"lock(): unknown kind(s) {', '.join(sorted(unknown))}; see ledger.locks.ORDER")
    out = Locked()
    for kind, label, noun in ORDER:
        if kind not in wanted:
            continue
        ids = sorted({int(i) for i in wanted[kind] if i is not None})
        if not ids:
            out.rows[kind] = {}
            continue
        qs = apps.get_model(label).objects.select_for_update(no_key=True, of=("self",)).filter(pk__in=ids)
        if only and kind in only:
            qs = qs.filter(only[kind] if isinstance(only[kind], Q) else Q(**only[kind]))
        if select_related and kind in select_related:
            qs = qs.select_related(*select_related[kind])
        rows = {obj.pk: obj for obj in qs.order_by("pk")}
        missing = [i for i in ids if i not in rows]
        if missing and kind not in missing_ok and not (only and kind in only):
            raise NotFound(f"unknown {noun}: {', '.join(map(str, missing))}", field=noun.replace(" ", "_"))
        out.rows[kind] = rows
    return out


# The one-kind shorthands services use; each goes through lock().

def lock_patients(ids) -> dict:
    return lock(patients=ids).patients


def lock_patient(patient_id):
    return lock_patients([patient_id])[int(patient_id)]


def lock_encounters(ids) -> dict:
    return lock(encounters=ids).encounters


def lock_claims(ids) -> dict:
    return lock(claims=ids).claims


def lock_payments(ids) -> dict:
    return lock(payments=ids).payments


def lock_credits(ids) -> dict:
    return lock(credits=ids).credits


def lock_refunds(ids) -> dict:
    return lock(refunds=ids).refunds


def lock_writeoffs(ids) -> dict:
    return lock(writeoffs=ids).writeoffs


def lock_payer_credits(ids) -> dict:
    return lock(payer_credits=ids).payer_credits
