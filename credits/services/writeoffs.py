"""Write-offs of small balances (DOMAIN rule 11): a reason code, the practice's policy, undo."""

from datetime import date

from django.db import transaction
from django.utils import timezone

from credits import core
from credits.csv_import import (  # noqa: F401
    NOTE_MAX,
    ImportResult,
    credit_import_approve,
    credit_import_create,
    credit_import_reject,
    manual_credit_window_total,
)
from credits.models import WriteOff
from ledger import journal
from ledger.access import ensure_staff, is_manager
from ledger.errors import InvalidInput, NotFound, PermissionDenied, RuleViolation
from ledger.history import save_with_history
from ledger.inputs import require_reason
from ledger.journal import credit as cr
from ledger.journal import debit as dr
from ledger.locks import lock_encounters, lock_patient, lock_writeoffs
from ledger.models import Account, Encounter, JournalEntry
from ledger.money import positive_money
from ledger.services import amount_within_limit

# --- write-offs (rule 11) ----------------------------------------------------------------------------

@transaction.atomic(durable=True)
def writeoff_create(*, encounter_id: int, amount, reason_code: str, reason: str, actor, as_of: date | None = None
                    ) -> WriteOff:
    """Write off (part of) a small PR balance with a reason code. Billing staff stay within the
    practice's policy (amount and age limits); beyond it a manager must do it."""
    return writeoff_create_tx(encounter_id=encounter_id, amount=amount, reason_code=reason_code, reason=reason,
                              actor=actor, as_of=as_of)


@transaction.atomic
def writeoff_create_tx(*, encounter_id: int, amount, reason_code: str, reason: str, actor, as_of: date | None = None
                       ) -> WriteOff:
    """`writeoff_create` inside the caller's transaction (an adjudication resolution, after its case's lock)."""
    reason = require_reason(reason)
    amount = positive_money(amount)
    if reason_code not in WriteOff.ReasonCode.values:
        raise InvalidInput(f"reason code must be one of {', '.join(WriteOff.ReasonCode.values)}", field="reason_code")
    enc = Encounter.objects.filter(pk=encounter_id).select_related("practice").first()
    if enc is None:
        raise NotFound(f"unknown date of service {encounter_id}", field="encounter")
    ensure_staff(actor, enc.practice_id)
    practice = enc.practice
    amount_within_limit(amount, practice=practice)
    age = ((as_of or timezone.localdate()) - enc.date_of_service).days
    if not is_manager(actor, practice.pk):
        if amount > practice.writeoff_max_amount:
            raise PermissionDenied(f"write-offs above {practice.writeoff_max_amount} need a manager", field="amount")
        if age < practice.writeoff_min_age_days:
            raise PermissionDenied(f"the balance is {age} days old; write-offs before {practice.writeoff_min_age_days} "
                                   "days need a manager", field="encounter")
    lock_patient(enc.patient_id)
    enc = lock_encounters([enc.pk])[enc.pk]
    if not core.encounter_payable(enc):
        raise RuleViolation("the DoS still waits on the payer; nothing to write off yet", field="encounter")
    if amount > enc.balance:
        raise RuleViolation(f"write-off of {amount} exceeds the balance of {enc.balance}", field="amount")
    wo = WriteOff(practice_id=enc.practice_id, patient_id=enc.patient_id, encounter=enc, amount=amount,
                  reason_code=reason_code, note=reason, created_by=actor)
    save_with_history(wo, actor=actor, reason=reason)
    enc.written_off_amount += amount
    save_with_history(enc, actor=actor, reason=f"Write-off: {reason}")
    journal.post(practice_id=enc.practice_id, kind=JournalEntry.Kind.WRITE_OFF, memo=reason, actor=actor,
                 patient=enc.patient_id,
                 lines=[dr(Account.WRITE_OFFS, amount, patient=enc.patient_id, encounter=enc),
                        cr(Account.PATIENT_RECEIVABLE, amount, patient=enc.patient_id, encounter=enc)])
    core.release_if_balanced(encounter=enc, actor=actor, reason=f"Write-off: {reason}")
    return wo


@transaction.atomic(durable=True)
def writeoff_undo(*, writeoff_id: int, actor, reason: str) -> WriteOff:
    reason = require_reason(reason)
    wo = WriteOff.objects.filter(pk=writeoff_id).first()
    if wo is None:
        raise NotFound(f"unknown write-off {writeoff_id}", field="writeoff")
    ensure_staff(actor, wo.practice_id)
    lock_patient(wo.patient_id)
    enc = lock_encounters([wo.encounter_id])[wo.encounter_id]
    wo = lock_writeoffs([wo.pk])[wo.pk]
    if wo.state != WriteOff.State.ACTIVE:
        raise RuleViolation(f"write-off {wo.pk} is already undone", field="writeoff")
    core.undo_writeoff(wo=wo, encounter=enc, actor=actor, reason=reason)
    save_with_history(enc, actor=actor, reason=f"Write-off undone: {reason}")
    return wo
