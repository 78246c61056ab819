"""Payer credits (DOMAIN rule 13): money a payer overpaid, resolved by a refund check or recouped."""

from decimal import Decimal

from django.db import transaction

from credits.csv_import import (  # noqa: F401
    NOTE_MAX,
    ImportResult,
    credit_import_approve,
    credit_import_create,
    credit_import_reject,
    manual_credit_window_total,
)
from credits.models import PayerCredit
from credits.signals import payer_credit_closed
from ledger import journal
from ledger.access import ensure_staff
from ledger.errors import InvalidInput, NotFound, RuleViolation
from ledger.history import save_with_history
from ledger.inputs import require_reason
from ledger.journal import credit as cr
from ledger.journal import debit as dr
from ledger.locks import lock_payer_credits
from ledger.models import Account, JournalEntry, Payer
from ledger.money import positive_money

# --- payer credits (rule 13) -------------------------------------------------------------------------

@transaction.atomic
def payer_credit_open(*, payer_id: int, amount, reason_code: str, actor, reason: str = "", claim_id: int | None = None,
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
                     payer_claim_number=payer_claim_number, reason=reason_code, amount=amount, note=reason,
                     created_by=actor)
    save_with_history(pc, actor=actor, reason=reason or pc.get_reason_display())
    source = Account.CASH if cash_received else Account.CONTRACTUAL
    # the entry is handed back on the instance: the 835 posting names it (remittances.models.RemittanceBooking)
    pc.opening_entry = journal.post(practice_id=payer.practice_id, kind=JournalEntry.Kind.PAYER_CREDIT,
                                    memo=reason or reason_code, actor=actor,
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
    save_with_history(pc, actor=actor, reason=reason)
    if pc.state != PayerCredit.State.OPEN:
        payer_credit_closed.send(sender=PayerCredit, payer_credit=pc, how=how, actor=actor)
    pc.resolution_entry = journal.post(  # handed back for the 835 posting, like `opening_entry`
        practice_id=pc.practice_id, kind=JournalEntry.Kind.PAYER_CREDIT_RESOLVED, memo=reason, actor=actor,
        lines=[dr(Account.PAYER_CREDITS, amount, claim=pc.claim_id), cr(Account.CASH, amount, claim=pc.claim_id)])
    return pc


@transaction.atomic
def payer_credit_refund(*, payer_credit_id: int, check_number: str, actor, reason: str, amount=None) -> PayerCredit:
    """Resolve a payer credit by sending the payer a refund check."""
    reason = require_reason(reason)
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
    reason = require_reason(reason)
    amount = positive_money(amount)
    pc = PayerCredit.objects.filter(pk=payer_credit_id).first()
    if pc is None:
        raise NotFound(f"unknown payer credit {payer_credit_id}", field="payer_credit")
    ensure_staff(actor, pc.practice_id)
    pc = lock_payer_credits([pc.pk])[pc.pk]
    return _resolve_payer_credit(pc, amount=amount, how="recoup", reference=reference, actor=actor, reason=reason)
