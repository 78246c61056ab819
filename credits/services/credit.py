"""Staff actions on credits: unlock in bulk (rule 5), move (rule 10), remove with a reason."""

from django.db import transaction

from credits import core
from credits.csv_import import (  # noqa: F401
    NOTE_MAX,
    ImportResult,
    credit_import_approve,
    credit_import_create,
    credit_import_reject,
    manual_credit_window_total,
)
from credits.models import Credit
from ledger import journal
from ledger.access import ensure_staff
from ledger.errors import InvalidInput, NotFound, RuleViolation
from ledger.history import save_with_history
from ledger.inputs import parse_id, require_reason
from ledger.journal import credit as cr
from ledger.journal import debit as dr
from ledger.locks import lock_credits, lock_encounters, lock_patient, lock_patients
from ledger.models import Account, Encounter, JournalEntry, Patient
from ledger.money import positive_money


def _credit(credit_id) -> Credit:
    c = Credit.objects.filter(pk=credit_id).first()
    if c is None:
        raise NotFound(f"unknown credit {credit_id}", field="credit")
    return c


# --- unlock, move, add, remove (rules 5 and 10) ---------------------------------------------------

@transaction.atomic(durable=True)
def credits_unlock(*, patient_ids: list[int] | None = None, credit_ids: list[int] | None = None, actor,
                   reason: str) -> int:
    """Rule 5: unlock the locked credits of the selected patients (or the selected credits) in
    bulk, e.g. when a payer will never answer. Returns how many credits were unlocked."""
    reason = require_reason(reason)
    if not patient_ids and not credit_ids:
        raise InvalidInput("select patients or credits to unlock", field="patient_ids")
    if patient_ids and credit_ids:
        raise InvalidInput("select patients or credits to unlock, not both", field="credit_ids")

    patient_ids = [parse_id(p, field="patient_ids") for p in patient_ids or []]
    credit_ids = [parse_id(c, field="credit_ids") for c in credit_ids or []]
    qs = Credit.objects.filter(state=Credit.State.LOCKED)
    qs = qs.filter(patient_id__in=patient_ids) if patient_ids else qs.filter(pk__in=credit_ids)
    if patient_ids:
        known = set(Patient.objects.filter(pk__in=patient_ids).values_list("pk", "practice_id"))
        if len(known) != len(set(patient_ids)):
            raise NotFound("one of the selected patients does not exist", field="patient_ids")
        for practice_id in {p for _, p in known}:
            ensure_staff(actor, practice_id)
    else:  # every selected credit, not only those still locked: the count must not leak to outsiders
        for practice_id in set(Credit.objects.filter(pk__in=credit_ids).values_list("practice_id", flat=True)):
            ensure_staff(actor, practice_id)
    rows = list(qs.values_list("pk", "patient_id", "practice_id"))
    for practice_id in {r[2] for r in rows}:
        ensure_staff(actor, practice_id)
    lock_patients({r[1] for r in rows} | set(patient_ids or []))
    credits = lock_credits([r[0] for r in rows])
    count = 0
    for patient_id in sorted({c.patient_id for c in credits.values()}):
        mine = [c for c in credits.values() if c.patient_id == patient_id]
        count += core.release_locked(credits=mine, actor=actor, reason=f"Manual unlock: {reason}")
    return count


@transaction.atomic(durable=True)
def credit_move(*, credit_id: int, to_encounter_id: int | None, actor, reason: str) -> Credit:
    """Rule 10: move a credit to another DoS (locked to it) or to the flexible pool (available).
    The credit keeps where it came from (`origin_encounter`, `payment`, `source`)."""
    reason = require_reason(reason)
    c = _credit(credit_id)
    ensure_staff(actor, c.practice_id)
    lock_patient(c.patient_id)
    target = None
    if to_encounter_id is not None:
        target = Encounter.objects.filter(pk=to_encounter_id, patient_id=c.patient_id).first()
        if target is None:
            raise NotFound(f"unknown date of service {to_encounter_id} for this patient", field="to_encounter")
        target = lock_encounters([target.pk])[target.pk]
    c = lock_credits([c.pk])[c.pk]
    if c.state not in Credit.ON_HAND or c.on_hand == 0:
        raise RuleViolation(f"credit {c.pk} is {c.get_state_display().lower()}: nothing to move", field="credit")
    if c.refund_hold:
        raise RuleViolation(f"credit {c.pk} has a refund waiting; decide the refund first", field="credit")
    if target is not None and c.locked_encounter_id == target.pk:
        raise RuleViolation(f"credit {c.pk} is already locked to that date of service", field="to_encounter")
    if target is None and c.state == Credit.State.AVAILABLE:
        raise RuleViolation(f"credit {c.pk} is already in the flexible pool", field="to_encounter")
    from_account, from_dims, amount = core.credit_account(c), core.credit_dims(c), c.on_hand
    if target is None:
        c.unlock()
    elif c.state == Credit.State.LOCKED:
        c.relock_to(target)
    else:
        c.lock_to(target)
    save_with_history(c, actor=actor, reason=reason)
    journal.post(practice_id=c.practice_id, kind=JournalEntry.Kind.MOVE, memo=reason, actor=actor,
                 patient=c.patient_id, lines=[dr(from_account, amount, **from_dims),
                                              cr(core.credit_account(c), amount, **core.credit_dims(c))])
    return c


@transaction.atomic(durable=True)
def credit_remove(*, credit_id: int, actor, reason: str, amount=None) -> Credit:
    """Take (part of) a credit off with a written reason, e.g. after a refund made outside the
    system, or turned over as unclaimed property."""
    return credit_remove_tx(credit_id=credit_id, actor=actor, reason=reason, amount=amount)


@transaction.atomic
def credit_remove_tx(*, credit_id: int, actor, reason: str, amount=None) -> Credit:
    """`credit_remove` inside the caller's transaction (an adjudication resolution or the turn-over of
    unclaimed property, after its case's lock)."""
    reason = require_reason(reason)
    c = _credit(credit_id)
    ensure_staff(actor, c.practice_id)
    lock_patient(c.patient_id)
    c = lock_credits([c.pk])[c.pk]
    if c.state not in Credit.ON_HAND or c.on_hand == 0:
        raise RuleViolation(f"credit {c.pk} has nothing on hand to remove", field="credit")
    amount = c.on_hand if amount is None else positive_money(amount)
    if amount > c.on_hand:
        raise RuleViolation(f"credit {c.pk} has {c.on_hand} on hand; cannot remove {amount}", field="amount")
    account, dims = core.credit_account(c), core.credit_dims(c)
    core.consume(c, amount, "removed_amount")
    save_with_history(c, actor=actor, reason=reason)
    journal.post(practice_id=c.practice_id, kind=JournalEntry.Kind.REMOVAL, memo=reason, actor=actor,
                 patient=c.patient_id, lines=[dr(account, amount, **dims),
                                              cr(Account.CREDIT_ADJUSTMENTS, amount, patient=c.patient_id)])
    return c
