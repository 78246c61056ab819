"""Services for credits (DOMAIN rules 4-13). Each public function is the one way in for its
operation: keyword-only arguments, the acting user and a reason, one transaction, row locks in
the order of ledger/locks.py, balanced journal lines and history rows."""

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone
from django_fsm import TransitionNotAllowed

from credits import core
from credits.csv_import import (NOTE_MAX, ImportResult, credit_import_approve, credit_import_reject,  # noqa: F401
                                credits_import_csv, manual_credit_window_total)
from credits.models import Credit, ManualCreditRequest, PayerCredit, Refund, WriteOff
from credits.selectors import plan
from ledger import journal
from ledger.access import ensure_approver, ensure_staff, ensure_staff_or_patient, is_manager
from ledger.errors import InvalidInput, NotFound, PermissionDenied, RuleViolation, SettleError
from ledger.journal import credit as cr
from ledger.journal import debit as dr
from ledger.locks import (lock_credits, lock_encounters, lock_patient, lock_patients, lock_payer_credits,
                          lock_payments, lock_refunds, lock_writeoffs)
from ledger.models import Account, Encounter, JournalEntry, Patient, Payer
from ledger.money import ZERO, positive_money
from ledger.processors import ProcessorError, get_processor
from ledger.services import _reason, amount_within_limit


def _credit(credit_id) -> Credit:
    c = Credit.objects.filter(pk=credit_id).first()
    if c is None:
        raise NotFound(f"unknown credit {credit_id}", field="credit")
    return c


# --- nightly application for one patient (rule 6) ------------------------------------------------

@dataclass
class ApplyResult:
    patient_id: int
    lines: list = field(default_factory=list)  # PlanLine
    released: int = 0

    @property
    def total(self) -> Decimal:
        return sum((ln.amount for ln in self.lines), ZERO)


def apply_for_patient(*, patient: Patient, actor, reason: str, nightly_run=None) -> ApplyResult:
    """Body of `credits_apply_for_patient`; the caller holds the patient lock."""
    result = ApplyResult(patient_id=patient.pk)
    encs = core.outstanding_encounters(patient.pk)
    payable = [e for e in encs if core.encounter_payable(e)]
    by_id = {e.pk: e for e in payable}
    # release first: credits of DoS already balanced become usable for the others (rule 4)
    for enc in Encounter.objects.filter(locked_credits__state=Credit.State.LOCKED, patient=patient).distinct():
        result.released += core.release_if_balanced(encounter=lock_encounters([enc.pk])[enc.pk], actor=actor,
                                                    reason=reason)
    # plan -> apply -> release until nothing more is released: credits freed because their DoS got
    # balanced pay the patient's other open balances in the same run (one run is complete)
    while payable:
        rows = list(Credit.objects.select_for_update(no_key=True)
                    .filter(patient=patient, state__in=Credit.ON_HAND, on_hand__gt=0).order_by("pk"))
        credits = {c.pk: c for c in rows}
        lines = plan([(e.pk, e.balance) for e in payable if e.balance > 0],
                     [(c.pk, c.state, c.locked_encounter_id, c.on_hand, c.created_at) for c in rows])
        if not lines:
            break
        entry_lines = []
        for ln in lines:
            core.apply_credit(c=credits[ln.credit_id], encounter=by_id[ln.encounter_id], amount=ln.amount,
                              actor=actor, reason=reason, entry_lines=entry_lines, nightly_run=nightly_run)
        journal.post(practice_id=patient.practice_id, kind=JournalEntry.Kind.APPLICATION, memo=reason,
                     actor=actor, patient=patient, lines=entry_lines)
        newly = 0
        for enc in {by_id[ln.encounter_id] for ln in lines}:
            core.save_with_history(enc, actor=actor, reason=reason)
            newly += core.release_if_balanced(encounter=enc, actor=actor, reason=reason)
        result.released += newly
        result.lines += lines
        if not newly:
            break
    return result


@transaction.atomic(durable=True)
def credits_apply_for_patient(*, patient_id: int, actor, reason: str = "Nightly application",
                              respect_settings: bool = True, nightly_run=None) -> ApplyResult:
    """Apply a patient's usable credits to their open PR balances by DOMAIN rule 6. With
    `respect_settings` (the nightly run), practices with auto-apply off and excluded patients are
    left alone (rule 6, example G); staff applying by hand pass False. Running it twice applies
    nothing twice: the second run finds no balance left."""
    reason = _reason(reason)
    patient = Patient.objects.select_related("practice").filter(pk=patient_id).first()
    if patient is None:
        raise NotFound(f"unknown patient {patient_id}", field="patient")
    ensure_staff(actor, patient.practice_id)
    if respect_settings and (not patient.practice.auto_apply or patient.exclude_from_auto_apply):
        return ApplyResult(patient_id=patient.pk)
    patient = lock_patient(patient.pk)
    return apply_for_patient(patient=patient, actor=actor, reason=reason, nightly_run=nightly_run)


@transaction.atomic(durable=True)
def credits_release_balanced(*, patient_id: int, actor, reason: str = "Encounter balanced") -> int:
    """Rule 4: the locked credits of the patient's balanced encounters become available."""
    patient = lock_patient(patient_id)
    ensure_staff(actor, patient.practice_id)
    released = 0
    ids = list(Encounter.objects.filter(locked_credits__state=Credit.State.LOCKED, patient=patient)
               .values_list("pk", flat=True).distinct())
    for enc in lock_encounters(ids).values():
        released += core.release_if_balanced(encounter=enc, actor=actor, reason=reason)
    return released


# --- unlock, move, add, remove (rules 5 and 10) ---------------------------------------------------

@transaction.atomic(durable=True)
def credits_unlock(*, patient_ids: list[int] | None = None, credit_ids: list[int] | None = None, actor,
                   reason: str) -> int:
    """Rule 5: unlock the locked credits of the selected patients (or the selected credits) in
    bulk, e.g. when a payer will never answer. Returns how many credits were unlocked."""
    reason = _reason(reason)
    if not patient_ids and not credit_ids:
        raise InvalidInput("select patients or credits to unlock", field="patient_ids")
    if patient_ids and credit_ids:
        raise InvalidInput("select patients or credits to unlock, not both", field="credit_ids")
    from ledger.services import _id

    patient_ids = [_id(p, field="patient_ids") for p in patient_ids or []]
    credit_ids = [_id(c, field="credit_ids") for c in credit_ids or []]
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
    reason = _reason(reason)
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
    core.save_with_history(c, actor=actor, reason=reason)
    journal.post(practice_id=c.practice_id, kind=JournalEntry.Kind.MOVE, memo=reason, actor=actor,
                 patient=c.patient_id, lines=[dr(from_account, amount, **from_dims),
                                              cr(core.credit_account(c), amount, **core.credit_dims(c))])
    return c


def _manual_credit(*, patient, amount, note, actor, reason, source, lock_to=None) -> Credit:
    c = core.new_credit(patient=patient, source=source, amount=amount, actor=actor, reason=reason, note=note,
                        lock_to=lock_to, origin=lock_to)
    journal.post(practice_id=patient.practice_id, kind=JournalEntry.Kind.MANUAL_CREDIT, memo=reason, actor=actor,
                 patient=patient, lines=[dr(Account.CREDIT_ADJUSTMENTS, amount, patient=patient),
                                         cr(core.credit_account(c), amount, **core.credit_dims(c))])
    return c


@transaction.atomic(durable=True)
def credit_add_manual(*, patient_id: int, amount, note: str, actor,
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
    note = _note(note)
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
    req = ManualCreditRequest(practice_id=practice.pk, patient=patient, encounter=enc, amount=amount, note=note,
                              needs_approval=needs, requested_by=actor)
    if needs:
        core.save_with_history(req, actor=actor, reason=f"Manual credit requested: {note}")
        return req
    c = _manual_credit(patient=patient, amount=amount, note=note, actor=actor, reason=note,
                       source=Credit.Source.MANUAL, lock_to=enc)
    req.approve(by=actor, note="within the practice's limit", credit=c)
    core.save_with_history(req, actor=actor, reason=note)
    return c


def _note(note) -> str:
    note = (note or "").strip()
    if not note:
        raise InvalidInput("a note is required for a manual credit", field="note")
    if len(note) > NOTE_MAX:
        raise InvalidInput(f"the note has {len(note):,} characters; at most {NOTE_MAX:,}", field="note")
    return note


def _manual_request(request_id) -> ManualCreditRequest:
    req = ManualCreditRequest.objects.filter(pk=request_id).first()
    if req is None:
        raise NotFound(f"unknown manual credit {request_id}", field="manual_credit")
    return req


@transaction.atomic(durable=True)
def manual_credit_approve(*, request_id: int, actor, note: str = "") -> ManualCreditRequest:
    """A manager other than the requester approves a waiting manual credit: the credit is created
    now (its history names both: who asked, who approved)."""
    req = _manual_request(request_id)
    ensure_approver(actor, practice_id=req.practice_id, requested_by_id=req.requested_by_id, what="manual credit")
    patient = lock_patient(req.patient_id)
    req = ManualCreditRequest.objects.select_for_update(no_key=True).select_related("requested_by").get(pk=req.pk)
    if req.state != ManualCreditRequest.State.PENDING:
        raise RuleViolation(f"manual credit #{req.pk} is {req.get_state_display().lower()}; only a waiting one is "
                            "approved", field="manual_credit")
    note = (note or "").strip()
    enc = Encounter.objects.get(pk=req.encounter_id) if req.encounter_id else None
    c = _manual_credit(patient=patient, amount=req.amount, note=req.note, actor=actor,
                       reason=f"{req.note} (manual credit #{req.pk} asked by {req.requested_by.get_username()}, "
                              f"approved by {actor.get_username()}{': ' + note if note else ''})",
                       source=Credit.Source.MANUAL, lock_to=enc)
    req.approve(by=actor, note=note, credit=c)
    core.save_with_history(req, actor=actor, reason=f"Approved: {note}" if note else "Approved")
    return req


@transaction.atomic(durable=True)
def manual_credit_reject(*, request_id: int, actor, note: str) -> ManualCreditRequest:
    """A manager other than the requester rejects a waiting manual credit: no credit is created."""
    note = _reason(note)
    req = _manual_request(request_id)
    ensure_approver(actor, practice_id=req.practice_id, requested_by_id=req.requested_by_id, what="manual credit")
    lock_patient(req.patient_id)
    req = ManualCreditRequest.objects.select_for_update(no_key=True).get(pk=req.pk)
    if req.state != ManualCreditRequest.State.PENDING:
        raise RuleViolation(f"manual credit #{req.pk} is {req.get_state_display().lower()}; only a waiting one is "
                            "rejected", field="manual_credit")
    req.reject(by=actor, note=note)
    core.save_with_history(req, actor=actor, reason=f"Rejected: {note}")
    return req


@transaction.atomic(durable=True)
def credit_remove(*, credit_id: int, actor, reason: str, amount=None) -> Credit:
    """Take (part of) a credit off with a written reason, e.g. after a refund made outside the
    system, or turned over as unclaimed property."""
    reason = _reason(reason)
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
    core.save_with_history(c, actor=actor, reason=reason)
    journal.post(practice_id=c.practice_id, kind=JournalEntry.Kind.REMOVAL, memo=reason, actor=actor,
                 patient=c.patient_id, lines=[dr(account, amount, **dims),
                                              cr(Account.CREDIT_ADJUSTMENTS, amount, patient=c.patient_id)])
    return c


# --- CSV import: credits/csv_import.py (the one parser; set-based writes) ----------------------------------------
# credits_import_csv, credit_import_approve and credit_import_reject are imported above and are
# part of this module's services.


# --- refunds (rules 8 and 12) ----------------------------------------------------------------------

def refund_options(c: Credit, *, as_of=None) -> dict:
    """Which refund methods a credit allows now, and up to what amount through the system."""
    as_of = as_of or timezone.now()
    p = c.payment
    out = {"system": False, "system_limit": ZERO, "why_not": ""}
    if c.state != Credit.State.AVAILABLE:
        out["why_not"] = "locked credits cannot be refunded until unlocked" if c.state == Credit.State.LOCKED \
            else "nothing on hand"
    elif p is None:
        out["why_not"] = "the credit has no payment behind it (manual or imported): refund by check or ACH"
    elif not p.through_system:
        out["why_not"] = f"the payment was by {p.get_channel_display().lower()}, not through the system"
    elif as_of > p.received_at + timedelta(days=c.practice.card_refund_window_days):
        out["why_not"] = f"the card refund window ({c.practice.card_refund_window_days} days) has passed"
    else:
        held = sum((r.amount for r in p.refunds.filter(state__in=[Refund.State.REQUESTED, Refund.State.APPROVED])),
                   ZERO)
        out["system"] = True
        out["system_limit"] = p.amount - p.refunded_amount - held
    return out


def refund_request(*, credit_id: int, amount, actor, reason: str, method: str | None = None,
                   reference: str = "") -> Refund:
    """Ask for a refund of an available credit. Without a method: back through the original
    payment when the rules allow it, otherwise by check. The amount is held on the credit until
    the refund is issued or rejected.

    Whether a manager must approve is decided here, for the admin, the API and the portal alike
    (issue 9): when the patient's refunds over the practice's approval window (asked for,
    approved or issued; not rejected), this one included, add up to more than the practice's
    threshold, a manager other than the requester must approve (`refund_approve`), so splitting a
    refund does not escape it; two requests for one patient are serialised by the patient's lock.
    Otherwise the refund is approved at once and issued in the same call (issue 10): back through
    the card processor when it goes to the original payment, by check or ACH when staff give the
    `reference` (check number or trace); without one it stays approved until `refund_issue`. If the
    processor refuses, the refund stays approved and `issue_error` on the returned refund says why
    (issue it later, or reject it and refund by check)."""
    reference = (reference or "").strip()
    if len(reference) > REFERENCE_MAX:
        raise InvalidInput(f"the reference has {len(reference)} characters; at most {REFERENCE_MAX}",
                           field="reference")
    r = _refund_request_tx(credit_id=credit_id, amount=amount, actor=actor, reason=reason, method=method,
                           reference=reference)
    r.issue_error = ""
    if r.state == Refund.State.APPROVED and (r.method == Refund.Method.ORIGINAL_PAYMENT or reference):
        try:
            r = _refund_pay_out(r, actor=actor, reference=reference)
        except SettleError as exc:
            r.refresh_from_db()
            r.issue_error = exc.message
        else:
            r.issue_error = ""
    return r


REFERENCE_MAX = 100  # Refund.reference


def refund_window_total(*, practice, patient_id: int) -> Decimal:
    """The patient's refunds over the practice's approval window that count against the threshold:
    asked for, approved or issued (a rejected one moved no money). The caller holds the patient's
    lock, so concurrent requests for one patient add up."""
    since = timezone.now() - timedelta(days=practice.approval_window_days)
    return Refund.objects.filter(patient_id=patient_id, requested_at__gte=since, state__in=[
        Refund.State.REQUESTED, Refund.State.APPROVED, Refund.State.ISSUED]).aggregate(s=Sum("amount"))["s"] or ZERO


@transaction.atomic(durable=True)
def _refund_request_tx(*, credit_id, amount, actor, reason, method, reference) -> Refund:
    reason = _reason(reason)
    amount = positive_money(amount)
    c = _credit(credit_id)
    patient = Patient.objects.get(pk=c.patient_id)
    ensure_staff_or_patient(actor, patient)
    if reference:  # a check or ACH paid out now: staff record it, never the patient
        ensure_staff(actor, c.practice_id)
    amount_within_limit(amount, practice=c.practice)
    lock_patient(c.patient_id)
    if c.payment_id:
        lock_payments([c.payment_id])
    c = lock_credits([c.pk])[c.pk]
    if c.state == Credit.State.LOCKED:
        raise RuleViolation(f"credit {c.pk} is locked to DoS {c.locked_encounter.date_of_service}: unlock it before "
                            "refunding", field="credit")
    if c.state != Credit.State.AVAILABLE or c.on_hand == 0:
        raise RuleViolation(f"credit {c.pk} has nothing available to refund", field="credit")
    if amount > c.on_hand:
        raise RuleViolation(f"refund of {amount} is more than the {c.on_hand} available on credit {c.pk}",
                            field="amount")
    opts = refund_options(c)
    if method is None:
        method = Refund.Method.ORIGINAL_PAYMENT if opts["system"] and amount <= opts["system_limit"] \
            else Refund.Method.CHECK
    if method not in Refund.Method.values:
        raise InvalidInput(f"method must be one of {', '.join(Refund.Method.values)}", field="method")
    if method == Refund.Method.ORIGINAL_PAYMENT:
        if not opts["system"]:
            raise RuleViolation(f"cannot refund through the system: {opts['why_not']}", field="method")
        if amount > opts["system_limit"]:
            raise RuleViolation(f"refund of {amount} exceeds the {opts['system_limit']} left on the original "
                                "payment; refund the rest by check or ACH", field="amount")
    window = refund_window_total(practice=c.practice, patient_id=c.patient_id)
    c.on_hand -= amount
    c.refund_hold += amount
    core.save_with_history(c, actor=actor, reason=f"Refund requested: {reason}")
    needs_approval = window + amount > c.practice.refund_approval_threshold
    r = Refund(practice_id=c.practice_id, patient_id=c.patient_id, credit=c, amount=amount, method=method,
               payment=c.payment if method == Refund.Method.ORIGINAL_PAYMENT else None, reason=reason,
               needs_approval=needs_approval, requested_by=actor)
    if not needs_approval:
        r.approve(by=actor, note="below the approval threshold")
    core.save_with_history(r, actor=actor, reason=reason)
    return r


def _refund_for_decision(refund_id):
    r = Refund.objects.filter(pk=refund_id).first()
    if r is None:
        raise NotFound(f"unknown refund {refund_id}", field="refund")
    return r


@transaction.atomic(durable=True)
def refund_approve(*, refund_id: int, actor, note: str = "") -> Refund:
    r = _refund_for_decision(refund_id)
    ensure_approver(actor, practice_id=r.practice_id, requested_by_id=r.requested_by_id, what="refund")
    lock_patient(r.patient_id)
    r = lock_refunds([r.pk])[r.pk]
    try:
        r.approve(by=actor, note=note)
    except TransitionNotAllowed:
        raise RuleViolation(f"refund {r.pk} is {r.get_state_display().lower()}; it cannot be approved") from None
    core.save_with_history(r, actor=actor, reason=note or "Approved")
    return r


@transaction.atomic(durable=True)
def refund_reject(*, refund_id: int, actor, note: str) -> Refund:
    note = _reason(note)
    r = _refund_for_decision(refund_id)
    if r.needs_approval:  # four eyes: the database refuses it too
        ensure_staff(actor, r.practice_id, manager=True)
        if r.requested_by_id == actor.pk:
            raise PermissionDenied("the requester cannot decide their own refund; another manager must reject it")
        ensure_approver(actor, practice_id=r.practice_id, requested_by_id=r.requested_by_id, what="refund")
    else:
        ensure_staff(actor, r.practice_id)
    lock_patient(r.patient_id)
    c = lock_credits([r.credit_id])[r.credit_id]
    r = lock_refunds([r.pk])[r.pk]
    try:
        r.reject(by=actor, note=note)
    except TransitionNotAllowed:
        raise RuleViolation(f"refund {r.pk} is {r.get_state_display().lower()}; it cannot be rejected") from None
    core.save_with_history(r, actor=actor, reason=note)
    c.refund_hold -= r.amount
    c.on_hand += r.amount
    core.save_with_history(c, actor=actor, reason=f"Refund {r.pk} rejected: {note}")
    return r


def refund_issue(*, refund_id: int, actor, reference: str = "") -> Refund:
    """Pay an approved refund out. Back through the original payment: the processor refunds the
    card (idempotent on the refund's id, so a retry never refunds twice). By check or ACH: staff
    give the check number or trace. Then, in one transaction, the credit and the payment are
    lowered and the journal booked (rule 12: no phantom balance or credit remains)."""
    r = _refund_for_decision(refund_id)
    ensure_staff(actor, r.practice_id)
    reference = (reference or "").strip()
    if len(reference) > REFERENCE_MAX:
        raise InvalidInput(f"the reference has {len(reference)} characters; at most {REFERENCE_MAX}",
                           field="reference")
    return _refund_pay_out(r, actor=actor, reference=reference)


def _refund_pay_out(r: Refund, *, actor, reference: str) -> Refund:
    """The processor call (outside any transaction: no remote call under row locks), then the
    booking. The caller checked who may do it."""
    if r.state != Refund.State.APPROVED:
        raise RuleViolation(f"refund {r.pk} is {r.get_state_display().lower()}; only approved refunds are issued")
    if r.method == Refund.Method.ORIGINAL_PAYMENT:
        try:
            reference = get_processor().refund(
                charge_reference=r.payment.processor_reference, amount=r.amount, idempotency_key=f"refund-{r.pk}",
                window_days=r.practice.card_refund_window_days).reference
        except ProcessorError as exc:
            raise RuleViolation(f"the processor refused the refund: {exc.message}; refund by check or ACH instead",
                                code=exc.code) from None
    elif not reference:
        raise InvalidInput(f"a {r.get_method_display().lower()} reference (number) is required", field="reference")
    return _refund_issue_tx(refund_id=r.pk, actor=actor, reference=reference)


@transaction.atomic(durable=True)
def _refund_issue_tx(*, refund_id, actor, reference):
    r = Refund.objects.get(pk=refund_id)
    lock_patient(r.patient_id)
    payment = lock_payments([r.payment_id])[r.payment_id] if r.payment_id else None
    c = lock_credits([r.credit_id])[r.credit_id]
    r = lock_refunds([r.pk])[r.pk]
    if r.state != Refund.State.APPROVED:
        raise RuleViolation(f"refund {r.pk} is {r.get_state_display().lower()}; only approved refunds are issued")
    r.issue(by=actor, reference=reference)
    core.save_with_history(r, actor=actor, reason=r.reason)
    c.refund_hold -= r.amount
    c.refunded_amount += r.amount
    if c.on_hand == 0 and c.refund_hold == 0:
        c.mark_refunded()
    core.save_with_history(c, actor=actor, reason=f"Refund {r.pk} issued: {r.reason}")
    if payment is not None:
        payment.refunded_amount += r.amount
        core.save_with_history(payment, actor=actor, reason=f"Refund {r.pk} issued")
    journal.post(practice_id=r.practice_id, kind=JournalEntry.Kind.REFUND, memo=r.reason, actor=actor,
                 patient=r.patient_id, lines=[dr(Account.CREDITS_AVAILABLE, r.amount, patient=r.patient_id, credit=c),
                                              cr(Account.CASH, r.amount, payment=payment)])
    return r


# --- write-offs (rule 11) ----------------------------------------------------------------------------

@transaction.atomic(durable=True)
def writeoff_create(*, encounter_id: int, amount, reason_code: str, note: str, actor, as_of: date | None = None
                    ) -> WriteOff:
    """Write off (part of) a small PR balance with a reason code. Billing staff stay within the
    practice's policy (amount and age limits); beyond it a manager must do it."""
    note = _reason(note)
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
                  reason_code=reason_code, note=note, created_by=actor)
    core.save_with_history(wo, actor=actor, reason=note)
    enc.written_off_amount += amount
    core.save_with_history(enc, actor=actor, reason=f"Write-off: {note}")
    journal.post(practice_id=enc.practice_id, kind=JournalEntry.Kind.WRITE_OFF, memo=note, actor=actor,
                 patient=enc.patient_id,
                 lines=[dr(Account.WRITE_OFFS, amount, patient=enc.patient_id, encounter=enc),
                        cr(Account.PATIENT_RECEIVABLE, amount, patient=enc.patient_id, encounter=enc)])
    core.release_if_balanced(encounter=enc, actor=actor, reason=f"Write-off: {note}")
    return wo


@transaction.atomic(durable=True)
def writeoff_undo(*, writeoff_id: int, actor, reason: str) -> WriteOff:
    reason = _reason(reason)
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
    core.save_with_history(enc, actor=actor, reason=f"Write-off undone: {reason}")
    return wo


# --- payer credits (rule 13) -------------------------------------------------------------------------

@transaction.atomic
def payer_credit_open(*, payer_id: int, amount, reason_code: str, actor, note: str = "", claim_id: int | None = None,
                      payer_claim_number: str = "", cash_received: bool = False) -> PayerCredit:
    """Record money a payer overpaid as a credit due to the payer. `cash_received` when the
    overpayment arrives now (in the remittance being posted: cash in, liability up); otherwise
    payer money already booked is reclassified from the claim to the liability."""
    amount = positive_money(amount)
    if reason_code not in PayerCredit.Reason.values:
        raise InvalidInput(f"reason must be one of {', '.join(PayerCredit.Reason.values)}", field="reason_code")
    payer = Payer.objects.filter(pk=payer_id).first()
    if payer is None:
        raise NotFound(f"unknown payer {payer_id}", field="payer")
    ensure_staff(actor, payer.practice_id)
    pc = PayerCredit(practice_id=payer.practice_id, payer=payer, claim_id=claim_id,
                     payer_claim_number=payer_claim_number, reason=reason_code, amount=amount, note=note,
                     created_by=actor)
    core.save_with_history(pc, actor=actor, reason=note or pc.get_reason_display())
    source = Account.CASH if cash_received else Account.CONTRACTUAL
    # the entry is handed back on the instance: the 835 posting names it (ledger.remittance_models.RemittanceBooking)
    pc.opening_entry = journal.post(practice_id=payer.practice_id, kind=JournalEntry.Kind.PAYER_CREDIT,
                                    memo=note or reason_code, actor=actor,
                                    lines=[dr(source, amount, claim=claim_id), cr(Account.PAYER_CREDITS, amount,
                                                                                  claim=claim_id)])
    return pc


def _resolve_payer_credit(pc: PayerCredit, *, amount: Decimal, how: str, reference: str, actor, reason: str):
    if pc.state != PayerCredit.State.OPEN:
        raise RuleViolation(f"payer credit {pc.pk} is already {pc.get_state_display().lower()}")
    if amount > pc.outstanding:
        raise RuleViolation(f"{amount} is more than the {pc.outstanding} still due to the payer", field="amount")
    pc.resolved_amount += amount
    pc.reference = reference
    if pc.resolved_amount == pc.amount:
        (pc.close_refunded if how == "refund" else pc.close_recouped)()
    core.save_with_history(pc, actor=actor, reason=reason)
    pc.resolution_entry = journal.post(  # handed back for the 835 posting, like `opening_entry`
        practice_id=pc.practice_id, kind=JournalEntry.Kind.PAYER_CREDIT_RESOLVED, memo=reason, actor=actor,
        lines=[dr(Account.PAYER_CREDITS, amount, claim=pc.claim_id), cr(Account.CASH, amount, claim=pc.claim_id)])
    return pc


@transaction.atomic
def payer_credit_refund(*, payer_credit_id: int, check_number: str, actor, reason: str, amount=None) -> PayerCredit:
    """Resolve a payer credit by sending the payer a refund check."""
    reason = _reason(reason)
    if not (check_number or "").strip():
        raise InvalidInput("the refund check number is required", field="check_number")
    pc = PayerCredit.objects.filter(pk=payer_credit_id).first()
    if pc is None:
        raise NotFound(f"unknown payer credit {payer_credit_id}", field="payer_credit")
    ensure_staff(actor, pc.practice_id)
    pc = lock_payer_credits([pc.pk])[pc.pk]
    amount = pc.outstanding if amount is None else positive_money(amount)
    return _resolve_payer_credit(pc, amount=amount, how="refund", reference=check_number.strip(), actor=actor,
                                 reason=reason)


@transaction.atomic
def payer_credit_recoup(*, payer_credit_id: int, amount, reference: str, actor, reason: str) -> PayerCredit:
    """Resolve (part of) a payer credit by the payer's recoupment in a remittance (PLB WO)."""
    reason = _reason(reason)
    amount = positive_money(amount)
    pc = PayerCredit.objects.filter(pk=payer_credit_id).first()
    if pc is None:
        raise NotFound(f"unknown payer credit {payer_credit_id}", field="payer_credit")
    ensure_staff(actor, pc.practice_id)
    pc = lock_payer_credits([pc.pk])[pc.pk]
    return _resolve_payer_credit(pc, amount=amount, how="recoup", reference=reference, actor=actor, reason=reason)
