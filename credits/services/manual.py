"""Manual credits (DOMAIN rule 3): added by staff with a note; above the practice's limit (the
patient's manual credits over the window added up) they wait for another manager's approval."""

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
from credits.models import Credit, ManualCreditRequest
from ledger import journal
from ledger.access import ensure_approver, ensure_staff
from ledger.errors import InvalidInput, NotFound, RuleViolation
from ledger.history import save_with_history
from ledger.inputs import require_reason
from ledger.journal import credit as cr
from ledger.journal import debit as dr
from ledger.locks import lock, lock_patient
from ledger.models import Account, Encounter, JournalEntry, Patient
from ledger.money import positive_money
from ledger.services import amount_within_limit


def _manual_credit(*, patient, amount, note, actor, reason, source, lock_to=None) -> Credit:
    c = core.new_credit(patient=patient, source=source, amount=amount, actor=actor, reason=reason, note=note,
                        lock_to=lock_to, origin=lock_to)
    journal.post(practice_id=patient.practice_id, kind=JournalEntry.Kind.MANUAL_CREDIT, memo=reason, actor=actor,
                 patient=patient, lines=[dr(Account.CREDIT_ADJUSTMENTS, amount, patient=patient),
                                         cr(core.credit_account(c), amount, **core.credit_dims(c))])
    return c


@transaction.atomic(durable=True)
def manual_credit_add(*, patient_id: int, amount, reason: str, actor,
                      encounter_id: int | None = None) -> Credit | ManualCreditRequest:
    """Rule 3 (manual): staff add a credit with a required note; it has no payment trail, so it
    can only be refunded by check or ACH (example F).

    Separation of duties (issue 9): the request is recorded first (`ManualCreditRequest`). When
    what the patient was credited by hand over the practice's approval window (manual credits and
    imports, this one included) stays within `manual_credit_approval_limit`, it is approved at once
    and the new Credit is returned. Above it, the waiting request is returned and no credit exists
    until a manager other than the requester approves it (`manual_credit_approve`): the nightly
    run, checkout and refunds cannot use it before. Splitting does not escape the limit: requests
    for one patient are serialised by the patient's lock and added up."""
    amount = positive_money(amount)
    reason = _note(reason)
    patient = Patient.objects.select_related("practice").filter(pk=patient_id).first()
    if patient is None:
        raise NotFound(f"unknown patient {patient_id}", field="patient")
    ensure_staff(actor, patient.practice_id)
    practice = patient.practice
    amount_within_limit(amount, practice=practice)
    patient = lock_patient(patient.pk)
    enc = None
    if encounter_id is not None:
        enc = Encounter.objects.filter(pk=encounter_id, patient=patient).first()
        if enc is None:
            raise NotFound(f"unknown date of service {encounter_id} for this patient", field="encounter")
    window = manual_credit_window_total(practice=practice, patient_id=patient.pk)
    needs = window + amount > practice.manual_credit_approval_limit
    req = ManualCreditRequest(practice_id=practice.pk, patient=patient, encounter=enc, amount=amount, note=reason,
                              needs_approval=needs, requested_by=actor)
    if needs:
        save_with_history(req, actor=actor, reason=f"Manual credit requested: {reason}")
        return req
    c = _manual_credit(patient=patient, amount=amount, note=reason, actor=actor, reason=reason,
                       source=Credit.Source.MANUAL, lock_to=enc)
    req.approve(by=actor, note="within the practice's limit", credit=c)
    save_with_history(req, actor=actor, reason=reason)
    return c


def _note(reason) -> str:
    """A manual credit's reason (where the money comes from) is also its note: required, bounded."""
    reason = require_reason(reason)
    if len(reason) > NOTE_MAX:
        raise InvalidInput(f"the reason has {len(reason):,} characters; at most {NOTE_MAX:,}", field="reason")
    return reason


def _manual_request(request_id) -> ManualCreditRequest:
    req = ManualCreditRequest.objects.filter(pk=request_id).first()
    if req is None:
        raise NotFound(f"unknown manual credit {request_id}", field="manual_credit")
    return req


@transaction.atomic(durable=True)
def manual_credit_approve(*, request_id: int, actor, reason: str = "") -> ManualCreditRequest:
    """A manager other than the requester approves a waiting manual credit: the credit is created
    now (its history names both: who asked, who approved)."""
    req = _manual_request(request_id)
    ensure_approver(actor, practice_id=req.practice_id, requested_by_id=req.requested_by_id, what="manual credit")
    locked = lock(patients=[req.patient_id], manual_credit_requests=[req.pk],
                  select_related={"manual_credit_requests": ["requested_by"]})
    patient, req = locked.patients[req.patient_id], locked.manual_credit_requests[req.pk]
    if req.state != ManualCreditRequest.State.PENDING:
        raise RuleViolation(f"manual credit #{req.pk} is {req.get_state_display().lower()}; only a waiting one is "
                            "approved", field="manual_credit")
    reason = (reason or "").strip()
    enc = Encounter.objects.get(pk=req.encounter_id) if req.encounter_id else None
    c = _manual_credit(patient=patient, amount=req.amount, note=req.note, actor=actor,
                       reason=f"{req.note} (manual credit #{req.pk} asked by {req.requested_by.get_username()}, "
                              f"approved by {actor.get_username()}{': ' + reason if reason else ''})",
                       source=Credit.Source.MANUAL, lock_to=enc)
    req.approve(by=actor, note=reason, credit=c)
    save_with_history(req, actor=actor, reason=f"Approved: {reason}" if reason else "Approved")
    return req


@transaction.atomic(durable=True)
def manual_credit_reject(*, request_id: int, actor, reason: str) -> ManualCreditRequest:
    """A manager other than the requester rejects a waiting manual credit: no credit is created."""
    reason = require_reason(reason)
    req = _manual_request(request_id)
    ensure_approver(actor, practice_id=req.practice_id, requested_by_id=req.requested_by_id, what="manual credit")
    req = lock(patients=[req.patient_id], manual_credit_requests=[req.pk]).manual_credit_requests[req.pk]
    if req.state != ManualCreditRequest.State.PENDING:
        raise RuleViolation(f"manual credit #{req.pk} is {req.get_state_display().lower()}; only a waiting one is "
                            "rejected", field="manual_credit")
    req.reject(by=actor, note=reason)
    save_with_history(req, actor=actor, reason=f"Rejected: {reason}")
    return req
