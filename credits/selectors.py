"""Reads about credits. Selectors return plain data or QuerySets with their joins applied; they
never write."""

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import DecimalField, F, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from credits.models import Credit, PatientResponsibility
from ledger.models import Account, Claim, Encounter, JournalLine, Patient
from ledger.money import ZERO


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
    """DoS with a positive PR balance and no claim still waiting on a payer, oldest first."""
    qs = (
        Encounter.objects.filter(patient_id=patient_id)
        .annotate(bal=Coalesce("remittance_pr", "estimated_pr") - F("applied_amount") - F("written_off_amount"))
        .filter(bal__gt=0)
        .exclude(claims__state__in=Claim.OPEN)
        .order_by("date_of_service", "pk")
    )
    if encounter_ids is not None:
        qs = qs.filter(pk__in=encounter_ids)
    return qs


def plan_applications(*, patient_id: int, encounter_ids=None):
    encs = [(e.pk, e.bal) for e in payable_encounters(patient_id, encounter_ids).distinct()]
    credits = list(
        Credit.objects.filter(patient_id=patient_id, state__in=Credit.ON_HAND, on_hand__gt=0)
        .values_list("pk", "state", "locked_encounter_id", "on_hand", "created_at")
    )
    lines = plan(encs, credits)
    owed = sum((b for _, b in encs), ZERO)
    covered = sum((ln.amount for ln in lines), ZERO)
    return lines, owed, covered


def credit_totals(patient_id: int) -> dict:
    agg = Credit.objects.filter(patient_id=patient_id).aggregate(
        available=Coalesce(Sum("on_hand", filter=Q(state=Credit.State.AVAILABLE)), ZERO),
        locked=Coalesce(Sum("on_hand", filter=Q(state=Credit.State.LOCKED)), ZERO),
        refund_hold=Coalesce(Sum("refund_hold"), ZERO),
    )
    return agg


def credit_liability(patient_id: int) -> Decimal:
    """The patient's credit-liability balance in the ledger (credit-normal, so negated)."""
    total = JournalLine.objects.filter(
        patient_id=patient_id, account__in=[Account.CREDITS_AVAILABLE, Account.CREDITS_LOCKED]
    ).aggregate(s=Sum("amount"))["s"] or ZERO
    return -total


def patients_with_credit_totals(practice_ids):
    """Patients annotated with balance owed, available and locked credit totals (rule 14)."""
    money = DecimalField(max_digits=14, decimal_places=2)

    def credit_sum(state):
        return Coalesce(Subquery(
            Credit.objects.filter(patient=OuterRef("pk"), state=state).values("patient")
            .annotate(s=Sum("on_hand")).values("s"), output_field=money), Value(ZERO), output_field=money)

    owed = Coalesce(Subquery(
        Encounter.objects.filter(patient=OuterRef("pk")).values("patient")
        .annotate(s=Sum(Coalesce("remittance_pr", "estimated_pr") - F("applied_amount") - F("written_off_amount")))
        .values("s"), output_field=money), Value(ZERO), output_field=money)
    return (Patient.objects.filter(practice_id__in=practice_ids)
            .annotate(balance_owed=owed, available_total=credit_sum(Credit.State.AVAILABLE),
                      locked_total=credit_sum(Credit.State.LOCKED)))


# --- the admin back-office (issue 5) ----------------------------------------------------------------

def patient_responsibility_list(practice_ids):
    """Rows of `PatientResponsibility` (one per patient with money on the books: balance owed,
    available and locked credits) in the given practices, with the patient joined. The practice
    is filtered on both tables so PostgreSQL can walk the patients' name index in order."""
    return (PatientResponsibility.objects.filter(practice_id__in=practice_ids, patient__practice_id__in=practice_ids)
            .select_related("patient", "practice"))


MISMATCH_SQL = """
WITH truth AS (
    SELECT p.id AS patient_id,
           COALESCE((SELECT sum(COALESCE(e.remittance_pr, e.estimated_pr) - e.applied_amount - e.written_off_amount)
                       FROM ledger_encounter e WHERE e.patient_id = p.id), 0) AS balance_owed,
           COALESCE((SELECT sum(c.on_hand) FROM credits_credit c
                      WHERE c.patient_id = p.id AND c.state = 'available'), 0) AS available,
           COALESCE((SELECT sum(c.on_hand) FROM credits_credit c
                      WHERE c.patient_id = p.id AND c.state = 'locked'), 0) AS locked
      FROM ledger_patient p
     WHERE %(practice)s::bigint IS NULL OR p.practice_id = %(practice)s
)
SELECT t.patient_id, COALESCE(r.balance_owed, 0), t.balance_owed, COALESCE(r.available, 0), t.available,
       COALESCE(r.locked, 0), t.locked
  FROM truth t LEFT JOIN credits_patientresponsibility r ON r.patient_id = t.patient_id
 WHERE COALESCE(r.balance_owed, 0) <> t.balance_owed OR COALESCE(r.available, 0) <> t.available
    OR COALESCE(r.locked, 0) <> t.locked
 ORDER BY t.patient_id
"""


def patient_responsibility_mismatches(*, practice_id: int | None = None) -> list[dict]:
    """Patients whose `PatientResponsibility` row differs from the sums of their encounters and
    credits (none, while the triggers of credits/0004_backoffice.py are in place)."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(MISMATCH_SQL, {"practice": practice_id})
        rows = cur.fetchall()
    return [{"patient": r[0], "balance_owed": (r[1], r[2]), "available": (r[3], r[4]), "locked": (r[5], r[6])}
            for r in rows]
