"""Refunds (DOMAIN rules 8 and 12): requested, decided (four eyes above the practice's threshold,
the patient's refunds over the window added up), issued back through the processor or by check/ACH."""

from datetime import timedelta
from decimal import Decimal

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone
from django_fsm import TransitionNotAllowed

from credits.csv_import import (  # noqa: F401
    NOTE_MAX,
    ImportResult,
    credit_import_approve,
    credit_import_create,
    credit_import_reject,
    manual_credit_window_total,
)
from credits.models import Credit, Refund
from credits.services.credit import _credit
from ledger import journal
from ledger.access import ensure_approver, ensure_staff, ensure_staff_or_patient
from ledger.errors import InvalidInput, NotFound, PermissionDenied, RuleViolation, SettleError
from ledger.history import save_with_history
from ledger.inputs import require_reason
from ledger.journal import credit as cr
from ledger.journal import debit as dr
from ledger.locks import lock_credits, lock_patient, lock_payments, lock_refunds
from ledger.models import Account, JournalEntry, Patient
from ledger.money import ZERO, positive_money
from ledger.processors import ProcessorError, get_processor
from ledger.services import amount_within_limit

# --- CSV import: credits/csv_import.py (the one parser; set-based writes) ----------------------------------------
# credit_import_create, credit_import_approve and credit_import_reject are imported above and are
# part of this module's services.


# --- refunds (rules 8 and 12) ----------------------------------------------------------------------

REFERENCE_MAX = 100  # Refund.reference


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
                   reference: str = "", require_approval: bool = False) -> Refund:
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
    (issue it later, or reject it and refund by check).

    `require_approval` makes the refund wait for a manager other than the requester whatever the
    threshold says (a refund policy's four-eyes band, adjudication/policies.py); the threshold and
    window rules still apply on top of it."""
    reference = (reference or "").strip()
    if len(reference) > REFERENCE_MAX:
        raise InvalidInput(f"the reference has {len(reference)} characters; at most {REFERENCE_MAX}",
                           field="reference")
    with transaction.atomic(durable=True):
        r = refund_request_tx(credit_id=credit_id, amount=amount, actor=actor, reason=reason, method=method,
                              reference=reference, require_approval=require_approval)
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


def refund_window_total(*, practice, patient_id: int) -> Decimal:
    """The patient's refunds over the practice's approval window that count against the threshold:
    asked for, approved or issued (a rejected one moved no money). The caller holds the patient's
    lock, so concurrent requests for one patient add up."""
    since = timezone.now() - timedelta(days=practice.approval_window_days)
    return Refund.objects.filter(patient_id=patient_id, requested_at__gte=since, state__in=[
        Refund.State.REQUESTED, Refund.State.APPROVED, Refund.State.ISSUED]).aggregate(s=Sum("amount"))["s"] or ZERO


@transaction.atomic
def refund_request_tx(*, credit_id, amount, actor, reason, method=None, reference="",
                      require_approval=False, approved_by=None, issue: bool = False) -> Refund:
    """The request and its hold on the credit, inside the caller's transaction (`refund_request`
    wraps it in its own durable one; an adjudication resolution runs it after locking its case).
    Nothing is paid out here: the caller issues an approved refund (`refund_issue`, or
    `refund_issue_tx` for a check or ACH with its number).

    For an approval decided already (an adjudication resolution: `actor` proposed it, the manager
    `approved_by` approved it), `approved_by` approves it in the same step (four eyes: a manager
    other than `actor`, `ensure_approver`); with `issue` and a `reference`, a check or ACH refund
    so approved is issued in the same step too (one transaction, one set of row locks)."""
    reason = require_reason(reason)
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
    save_with_history(c, actor=actor, reason=f"Refund requested: {reason}")
    needs_approval = bool(require_approval) or window + amount > c.practice.refund_approval_threshold
    r = Refund(practice_id=c.practice_id, patient_id=c.patient_id, credit=c, amount=amount, method=method,
               payment=c.payment if method == Refund.Method.ORIGINAL_PAYMENT else None, reason=reason,
               needs_approval=needs_approval, requested_by=actor)
    if approved_by is not None:
        ensure_approver(approved_by, practice_id=c.practice_id, requested_by_id=actor.pk, what="refund")
        r.needs_approval = True  # decided by a second person, whatever the threshold says
        r.approve(by=approved_by, note=reason)
    elif not needs_approval:
        r.approve(by=actor, note="below the approval threshold")
    save_with_history(r, actor=actor, reason=reason)
    if issue and reference and r.state == Refund.State.APPROVED and method != Refund.Method.ORIGINAL_PAYMENT:
        _book_issue(r, credit=c, payment=None, actor=approved_by or actor, reference=reference)
    return r


def _refund_for_decision(refund_id):
    r = Refund.objects.filter(pk=refund_id).first()
    if r is None:
        raise NotFound(f"unknown refund {refund_id}", field="refund")
    return r


@transaction.atomic(durable=True)
def refund_approve(*, refund_id: int, actor, reason: str = "") -> Refund:
    r = _refund_for_decision(refund_id)
    ensure_approver(actor, practice_id=r.practice_id, requested_by_id=r.requested_by_id, what="refund")
    lock_patient(r.patient_id)
    r = lock_refunds([r.pk])[r.pk]
    try:
        r.approve(by=actor, note=reason)
    except TransitionNotAllowed:
        raise RuleViolation(f"refund {r.pk} is {r.get_state_display().lower()}; it cannot be approved") from None
    save_with_history(r, actor=actor, reason=reason or "Approved")
    return r


@transaction.atomic(durable=True)
def refund_reject(*, refund_id: int, actor, reason: str) -> Refund:
    reason = require_reason(reason)
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
        r.reject(by=actor, note=reason)
    except TransitionNotAllowed:
        raise RuleViolation(f"refund {r.pk} is {r.get_state_display().lower()}; it cannot be rejected") from None
    save_with_history(r, actor=actor, reason=reason)
    c.refund_hold -= r.amount
    c.on_hand += r.amount
    save_with_history(c, actor=actor, reason=f"Refund {r.pk} rejected: {reason}")
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
    with transaction.atomic(durable=True):
        return refund_issue_tx(refund_id=r.pk, actor=actor, reference=reference)


@transaction.atomic
def refund_issue_tx(*, refund_id, actor, reference: str) -> Refund:
    """The booking of an approved refund paid out, inside the caller's transaction: the credit and
    the payment lowered, the journal booked. A card refund's processor call has happened before it
    (`_refund_pay_out`: never under row locks); an adjudication resolution calls it directly only
    for a check or ACH refund with its number."""
    r = Refund.objects.get(pk=refund_id)
    lock_patient(r.patient_id)
    payment = lock_payments([r.payment_id])[r.payment_id] if r.payment_id else None
    c = lock_credits([r.credit_id])[r.credit_id]
    r = lock_refunds([r.pk])[r.pk]
    if r.state != Refund.State.APPROVED:
        raise RuleViolation(f"refund {r.pk} is {r.get_state_display().lower()}; only approved refunds are issued")
    return _book_issue(r, credit=c, payment=payment, actor=actor, reference=reference)


def _book_issue(r: Refund, *, credit: Credit, payment, actor, reference: str) -> Refund:
    """An approved refund issued: the caller holds the patient's, the payment's and the credit's
    locks (the refund's too, unless it made it in this transaction)."""
    c = credit
    r.issue(by=actor, reference=reference)
    save_with_history(r, actor=actor, reason=r.reason)
    c.refund_hold -= r.amount
    c.refunded_amount += r.amount
    if c.on_hand == 0 and c.refund_hold == 0:
        c.mark_refunded()
    save_with_history(c, actor=actor, reason=f"Refund {r.pk} issued: {r.reason}")
    if payment is not None:
        payment.refunded_amount += r.amount
        save_with_history(payment, actor=actor, reason=f"Refund {r.pk} issued")
    journal.post(practice_id=r.practice_id, kind=JournalEntry.Kind.REFUND, memo=r.reason, actor=actor,
                 patient=r.patient_id, lines=[dr(Account.CREDITS_AVAILABLE, r.amount, patient=r.patient_id, credit=c),
                                              cr(Account.CASH, r.amount, payment=payment)])
    return r
