"""Reads about credits. Selectors return plain data or QuerySets with their joins applied; they
never write."""

from dataclasses import dataclass
from decimal import Decimal

from django.db import connection
from django.db.models import DecimalField, F, OuterRef, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from credits.models import Credit, PatientResponsibility
from ledger.models import Account, Encounter, JournalLine, Patient
from ledger.money import ZERO
from ledger.sql import ENCOUNTER_BALANCE_SQL, ENCOUNTER_OPEN_CLAIM_SQL

MONEY = DecimalField(max_digits=20, decimal_places=2)


@dataclass(frozen=True)
class PlanLine:
    credit_id: int
    encounter_id: int
    amount: Decimal
    locked: bool


def plan(encounters, credits) -> list[PlanLine]:
    """DOMAIN rule 6 as a pure function. `encounters`: [(id, balance)] in the order to pay
    (oldest DoS first); `credits`: [(id, state, locked_encounter_id, on_hand, created_at)].
    For each DoS: credits locked to that DoS first, then available credits, oldest first.
    Credits locked to another DoS are never used."""
    left = {c[0]: c[3] for c in credits}
    locked_to: dict[int, list] = {}
    available = []
    for c in sorted(credits, key=lambda c: (c[4], c[0])):
        if c[1] == Credit.State.LOCKED:
            locked_to.setdefault(c[2], []).append(c[0])
        elif c[1] == Credit.State.AVAILABLE:
            available.append(c[0])
    out = []
    for enc_id, balance in encounters:
        owed = balance
        for is_locked, ids in ((True, locked_to.get(enc_id, [])), (False, available)):
            for cid in ids:
                if owed <= 0:
                    break
                take = min(owed, left[cid])
                if take > 0:
                    out.append(PlanLine(cid, enc_id, take, is_locked))
                    left[cid] -= take
                    owed -= take
    return out


def payable_encounters(patient_id: int, encounter_ids=None):
    """The patient's balances due now (DoS with a balance and no claim waiting on a payer), oldest
    first, annotated with `bal`."""
    qs = Encounter.objects.filter(patient_id=patient_id).due_now()
    if encounter_ids is not None:
        qs = qs.filter(pk__in=encounter_ids)
    return qs


def pending_payer_encounters(patient_id: int):
    """The patient's DoS whose claim still waits on a payer, oldest first, annotated with `bal`
    (the balance on the PR as it stands: the estimate until the payer decides) and `locked_held`
    (the credits locked to it)."""
    locked = (Credit.objects.filter(locked_encounter=OuterRef("pk"), state=Credit.State.LOCKED)
              .values("locked_encounter").annotate(s=Sum("on_hand")).values("s"))
    return (Encounter.objects.filter(patient_id=patient_id).pending_payer().with_balance()
            .annotate(locked_held=Coalesce(Subquery(locked, output_field=MONEY), Value(ZERO), output_field=MONEY))
            .order_by("date_of_service", "pk"))


def plan_applications(*, patient_id: int, encounter_ids=None):
    encs = [(e.pk, e.bal) for e in payable_encounters(patient_id, encounter_ids)]
    credits = list(
        Credit.objects.filter(patient_id=patient_id, state__in=Credit.ON_HAND, on_hand__gt=0)
        .values_list("pk", "state", "locked_encounter_id", "on_hand", "created_at")
    )
    lines = plan(encs, credits)
    owed = sum((b for _, b in encs), ZERO)
    covered = sum((ln.amount for ln in lines), ZERO)
    return lines, owed, covered


# --- what a patient owes and holds (rule 14): one read path --------------------------------------------
# Every screen reads the per-patient totals from `PatientResponsibility`, the row the database
# triggers keep (credits/migrations/0007): lists through `patient_responsibility_list` and
# `patient_totals()`, one patient through `patient_owes`. `patient_responsibility_mismatches`
# audits the rows against the books (the same definitions: ledger/models.py, ledger/sql.py).

@dataclass(frozen=True)
class Owes:
    due_now: Decimal        # balances of DoS with no claim waiting: what the patient can pay today
    pending_payer: Decimal  # balances of DoS whose claim still waits on a payer (estimated PR)
    locked_held: Decimal    # credits locked to a DoS, held until it settles (rules 3, 4)
    available: Decimal      # credits usable for any balance
    refund_hold: Decimal    # credits reserved by refunds not yet issued or rejected


def patient_owes(patient_id: int) -> Owes:
    """The rule-14 totals of one patient (the heading card, the payment screen, the API, the
    portal): what is due now apart from what is pending the payer, and the credits. One query."""
    hold = (Credit.objects.filter(patient_id=OuterRef("pk")).values("patient")
            .annotate(s=Sum("refund_hold")).values("s"))
    row = (Patient.objects.filter(pk=patient_id)
           .values_list(Coalesce("responsibility__due_now", ZERO, output_field=MONEY),
                        Coalesce("responsibility__pending_payer", ZERO, output_field=MONEY),
                        Coalesce("responsibility__locked", ZERO, output_field=MONEY),
                        Coalesce("responsibility__available", ZERO, output_field=MONEY),
                        Coalesce(Subquery(hold, output_field=MONEY), ZERO, output_field=MONEY))
           .first())
    return Owes(*(row or (ZERO,) * 5))


def credit_liability(patient_id: int) -> Decimal:
    """The patient's credit-liability balance in the ledger (credit-normal, so negated)."""
    total = JournalLine.objects.filter(
        patient_id=patient_id, account__in=[Account.CREDITS_AVAILABLE, Account.CREDITS_LOCKED]
    ).aggregate(s=Sum("amount"))["s"] or ZERO
    return -total


def patient_totals() -> dict:
    """Annotations for a Patient queryset: the rule-14 totals from the patient's
    `PatientResponsibility` row (zero without one), `due_now`, `pending_payer`, `available_total`,
    `locked_total`. One LEFT JOIN instead of correlated sums per row."""
    return {name: Coalesce(F(f"responsibility__{column}"), ZERO, output_field=MONEY)
            for name, column in (("due_now", "due_now"), ("pending_payer", "pending_payer"),
                                 ("available_total", "available"), ("locked_total", "locked"))}


def patient_list_with_totals(practice_ids):
    """The practices' patients with `patient_totals()` (the API's patient endpoints)."""
    return Patient.objects.filter(practice_id__in=practice_ids).annotate(**patient_totals())


# --- the admin back-office (issue 5) ----------------------------------------------------------------

def patient_responsibility_list(practice_ids):
    """Rows of `PatientResponsibility` (one per patient with money on the books: due now, pending
    the payer, available and locked credits) in the given practices, with the patient joined. The
    practice is filtered on both tables so PostgreSQL can walk the patients' name index in order."""
    return (PatientResponsibility.objects.filter(practice_id__in=practice_ids, patient__practice_id__in=practice_ids)
            .select_related("patient", "practice"))


_BALANCE = ENCOUNTER_BALANCE_SQL.format(e="e")
_WAITS = ENCOUNTER_OPEN_CLAIM_SQL.format(e="e")

MISMATCH_SQL = f"""
WITH owed AS (
    SELECT e.patient_id,
           sum(CASE WHEN {_WAITS} THEN 0 ELSE {_BALANCE} END) AS due_now,
           sum(CASE WHEN {_WAITS} THEN {_BALANCE} ELSE 0 END) AS pending_payer
      FROM ledger_encounter e
     GROUP BY e.patient_id
), held AS (
    SELECT c.patient_id, sum(c.on_hand) FILTER (WHERE c.state = 'available') AS available,
           sum(c.on_hand) FILTER (WHERE c.state = 'locked') AS locked
      FROM credits_credit c WHERE c.state IN ('available', 'locked')
     GROUP BY c.patient_id
), truth AS (
    SELECT p.id AS patient_id, COALESCE(o.due_now, 0) AS due_now, COALESCE(o.pending_payer, 0) AS pending_payer,
           COALESCE(h.available, 0) AS available, COALESCE(h.locked, 0) AS locked
      FROM ledger_patient p
      LEFT JOIN owed o ON o.patient_id = p.id
      LEFT JOIN held h ON h.patient_id = p.id
     WHERE %(practice)s::bigint IS NULL OR p.practice_id = %(practice)s
)
SELECT t.patient_id, COALESCE(r.due_now, 0), t.due_now, COALESCE(r.pending_payer, 0), t.pending_payer,
       COALESCE(r.available, 0), t.available, COALESCE(r.locked, 0), t.locked
  FROM truth t LEFT JOIN credits_patientresponsibility r ON r.patient_id = t.patient_id
 WHERE COALESCE(r.due_now, 0) <> t.due_now OR COALESCE(r.pending_payer, 0) <> t.pending_payer
    OR COALESCE(r.available, 0) <> t.available OR COALESCE(r.locked, 0) <> t.locked
 ORDER BY t.patient_id
"""


def patient_responsibility_mismatches(*, practice_id: int | None = None) -> list[dict]:
    """Patients whose `PatientResponsibility` row differs from the sums of their encounters and
    credits, each total as (row, books) (none, while the triggers of credits/migrations/0007 are in
    place)."""
    with connection.cursor() as cur:
        cur.execute(MISMATCH_SQL, {"practice": practice_id})
        rows = cur.fetchall()
    return [{"patient": r[0], "due_now": (r[1], r[2]), "pending_payer": (r[3], r[4]), "available": (r[5], r[6]),
             "locked": (r[7], r[8])} for r in rows]
