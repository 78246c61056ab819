"""What every case service shares: finding a case for an actor, locking it (ledger.locks ORDER:
a case, its proposal and its unclaimed-property row come before the patients and the money its
resolution moves), moving it through its states with history, and writing its append-only events.

Each public case service (`case_<verb>(*, case, actor, reason, ...)`, adjudication/services/) is
one transaction: it calls `locked_case()` first, re-reads what it changes under the lock, and writes
the change, its history row (acting user and reason) and the event together."""

from decimal import Decimal

from django.db.models import Sum
from django_fsm import TransitionNotAllowed

from adjudication.models import Case, CaseEvent
from ledger.access import ensure_staff
from ledger.errors import NotFound, RuleViolation
from ledger.history import save_with_history
from ledger.inputs import parse_id
from ledger.locks import lock
from ledger.models import Claim
from ledger.money import ZERO


def case_id_of(case) -> int:
    """A case given as a row or an id (the services accept both)."""
    return case.pk if isinstance(case, Case) else parse_id(case, field="case")


def find_case(case, actor, *, manager: bool = False) -> Case:
    """The case, if the actor is staff of its practice (a manager when `manager`); unknown: NotFound."""
    case_id = case_id_of(case)
    row = Case.objects.filter(pk=case_id).only("pk", "practice_id").first()
    if row is None:
        raise NotFound(f"unknown case {case_id}", field="case")
    ensure_staff(actor, row.practice_id, manager=manager)
    return row


def locked_case(case, actor, *, manager: bool = False) -> Case:
    """Check the actor, then lock the case row and return it fresh (call first in the transaction)."""
    row = find_case(case, actor, manager=manager)
    return lock(cases=[row.pk]).cases[row.pk]


def record(case: Case, kind: str, text: str, *, actor, data: dict | None = None, from_state: str = "",
           to_state: str = "") -> CaseEvent:
    """Append one event to the case's record."""
    return CaseEvent.objects.create(case=case, kind=kind, text=text, actor=actor, data=data or {},
                                    from_state=from_state, to_state=to_state)


def move(case: Case, verb: str, *, actor, reason: str, event_kind: str = CaseEvent.Kind.STATE,
         data: dict | None = None, **kwargs) -> CaseEvent:
    """Run the case's FSM transition `verb` (Case.investigate, .propose, ...), save it with its
    history row, and record the state change. A transition the state does not allow is a
    RuleViolation that names the case and its state."""
    before = case.state
    try:
        getattr(case, verb)(**kwargs)
    except TransitionNotAllowed:
        raise RuleViolation(f"case {case.pk} is {case.get_state_display().lower()}; it cannot be "
                            f"{VERB_WORDS.get(verb, verb)} now", field="case", code="invalid_transition") from None
    save_with_history(case, actor=actor, reason=reason)
    if case.state == Case.State.RESOLVED:
        resume_auto_apply(case, actor=actor, why=f"case {case.pk} is resolved")
    return record(case, event_kind, reason, actor=actor, data=data, from_state=before, to_state=case.state)


# --- a refund election pauses the nightly application (rule 18) ------------------------------------------

def pause_auto_apply(case: Case, *, actor) -> bool:
    """The patient asked for the credit back: the nightly run leaves the patient's credits alone
    (Patient.exclude_from_auto_apply) until the case is resolved or the patient chooses to keep the
    credit, so the money asked back is not spent on a new balance meanwhile. True when this case set
    the exclusion (a patient excluded already is left as staff set them). Takes the patient's lock
    (after the case's: ledger.locks ORDER)."""
    patient = lock(patients=[case.patient_id]).patients[case.patient_id]
    if patient.exclude_from_auto_apply:
        return False
    patient.exclude_from_auto_apply = True
    save_with_history(patient, actor=actor, reason=f"The patient asked for the credit of case {case.pk} back: the "
                                                   "nightly run leaves their credits alone until it is settled")
    return True


def resume_auto_apply(case: Case, *, actor, why: str) -> bool:
    """Undo `pause_auto_apply` of this case (the ELECTION event that paused it says so) when the
    patient is still excluded: once the case is resolved, or the patient keeps the credit."""
    if case.patient_id is None:
        return False
    events = CaseEvent.objects.filter(case=case, kind=CaseEvent.Kind.ELECTION)
    paused = events.filter(data__paused_auto_apply=True).count()
    if paused <= events.filter(data__resumed_auto_apply=True).count():
        return False
    patient = lock(patients=[case.patient_id]).patients[case.patient_id]
    if not patient.exclude_from_auto_apply:
        return False
    patient.exclude_from_auto_apply = False
    save_with_history(patient, actor=actor, reason=f"The nightly run applies the patient's credits again: {why}")
    record(case, CaseEvent.Kind.ELECTION, f"The nightly application resumes for the patient: {why}.", actor=actor,
           data={"resumed_auto_apply": True})
    return True



VERB_WORDS = {
    "investigate": "put under investigation", "wait_on_payer": "set to wait on the payer",
    "propose": "given a proposal", "reject": "sent back", "approve": "approved",
    "refuse_carry_out": "sent back to proposed", "resolve": "resolved", "reopen": "reopened",
}


def money_left(case: Case) -> Decimal:
    """The credit balance the case is about, as it is now (read the rows under their locks when
    the answer decides a money change): a patient credit's money on hand (available or locked, and
    what a refund in flight holds), a payer credit's outstanding amount, or what a visit was paid
    beyond its charge."""
    if case.kind == Case.Kind.PATIENT_CREDIT:
        c = case.credit
        return c.on_hand + c.refund_hold
    if case.kind == Case.Kind.PAYER_CREDIT:
        return case.payer_credit.amount - case.payer_credit.resolved_amount
    return encounter_paid_beyond_charge(case.encounter)


def encounter_paid_beyond_charge(encounter) -> Decimal:
    """What a visit was paid beyond its charge: the payers' net payments on its claims plus the
    patient money applied to it, less the charge (0 when not beyond, or when it has no charge).
    The scan's SQL computes the same (adjudication/scan.py)."""
    if encounter.charge <= 0:
        return ZERO
    paid = Claim.objects.filter(encounter_id=encounter.pk).aggregate(s=Sum("paid_amount"))["s"] or ZERO
    return max(ZERO, paid + encounter.applied_amount - encounter.charge)
