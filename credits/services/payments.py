"""Patient payments (DOMAIN rules 3, 7 and 9): recording a payment, buying credits ahead, and
checkout, which applies the chosen credits first and charges only the rest. Card charges go
through the processor before the booking transaction and are voided if the booking fails."""

import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import IntegrityError, transaction

from credits import core
from credits.models import Credit
from credits.selectors import plan_applications
from ledger import journal
from ledger.errors import Duplicate, InvalidInput, NotFound, RuleViolation
from ledger.history import save_with_history
from ledger.inputs import parse_id
from ledger.journal import credit as cr
from ledger.journal import debit as dr
from ledger.locks import lock_credits, lock_encounters, lock_patient
from ledger.models import Account, Encounter, JournalEntry, Patient, Payment
from ledger.money import ZERO, positive_money
from ledger.processors import ProcessorError, get_processor
from ledger.services import amount_within_limit, patient_get_for_actor

logger = logging.getLogger(__name__)


# --- patient payments ----------------------------------------------------------------------------

@dataclass
class PaymentResult:
    payment: Payment | None
    applications: list = field(default_factory=list)
    credits: list = field(default_factory=list)


def _charge_card(*, channel: str, amount: Decimal, card_token: str | None, processor_reference: str) -> str:
    if channel not in Payment.SYSTEM_CHANNELS:
        return ""
    if processor_reference:
        return processor_reference  # already charged on the card reader terminal
    try:
        return get_processor().charge(amount=amount, token=card_token or "", description="settle payment").reference
    except ProcessorError as exc:
        raise RuleViolation(f"card payment refused: {exc.message}", field="card_token", code=exc.code) from None


@contextmanager
def _void_charge_if_not_booked(*, patient: Patient, channel: str, reference: str, processor_reference: str,
                               amount: Decimal):
    """The card is charged before the booking transaction (no processor call runs under row locks).
    If the booking then fails (refused, or lost a race), the charge made here is refunded at once,
    so the patient never pays for a payment settle did not record. Terminal charges (a reference
    given by the caller) are the caller's to void."""
    try:
        yield
    except Exception:
        if reference and channel in Payment.SYSTEM_CHANNELS and not processor_reference:
            try:
                get_processor().refund(charge_reference=reference, amount=amount, idempotency_key=f"void-{reference}",
                                       window_days=patient.practice.card_refund_window_days)
            except ProcessorError:
                logger.exception("card charge %s of %s was not booked and could not be voided", reference, amount)
        raise


def payment_allocate(*, payment: Payment, patient: Patient, encounter: Encounter | None, actor, reason: str,
                     credit_source: str = Credit.Source.OVERPAYMENT, lock_to: Encounter | None = None) -> PaymentResult:
    """Book a payment just saved: toward a DoS with an open claim it is held as a locked credit
    (rule 3); toward a payable DoS it pays the balance and the rest is an available credit;
    with no DoS it pays the open balances oldest first. Caller holds the patient lock."""
    result = PaymentResult(payment=payment)
    lines = [dr(Account.CASH, payment.amount, payment=payment)]
    remaining = payment.amount
    if lock_to is not None:
        targets = []
    elif encounter is not None:
        targets = [encounter]
    else:
        targets = core.outstanding_encounters(patient.pk)
    held_for = None
    for enc in targets:
        if remaining == 0:
            break
        if not core.encounter_payable(enc):
            if encounter is not None:  # paid toward a pending DoS: hold it there
                held_for = enc
            continue
        take = min(remaining, enc.balance)
        if take <= 0:
            continue
        result.applications.append(core.apply_payment(payment=payment, encounter=enc, amount=take, actor=actor,
                                                      reason=reason, entry_lines=lines))
        save_with_history(enc, actor=actor, reason=reason)
        remaining -= take
    if remaining > 0:
        if lock_to is not None:
            c = core.new_credit(patient=patient, source=credit_source, amount=remaining, actor=actor, reason=reason,
                                lock_to=lock_to, origin=lock_to, payment=payment)
        elif held_for is not None:
            c = core.new_credit(patient=patient, source=Credit.Source.HELD_PAYMENT, amount=remaining, actor=actor,
                                reason=reason, lock_to=held_for, origin=held_for, payment=payment)
        else:
            c = core.new_credit(patient=patient, source=credit_source, amount=remaining, actor=actor, reason=reason,
                                origin=encounter, payment=payment)
        lines.append(cr(core.credit_account(c), remaining, **core.credit_dims(c), payment=payment))
        result.credits.append(c)
    journal.post(practice_id=payment.practice_id, kind=JournalEntry.Kind.PAYMENT, memo=reason, actor=actor,
                 patient=patient, lines=lines)
    for _, enc in sorted({a.encounter_id: a.encounter for a in result.applications}.items()):
        core.release_if_balanced(encounter=enc, actor=actor, reason=reason)
    return result


CHECK_NUMBER_MAX = 40  # Payment.check_number


def _validate_channel(channel: str, check_number: str) -> str:
    """The channel is one of Payment.Channel; a check payment has its check number (returned
    stripped; "" for the other channels). Every path that takes patient money calls this."""
    if channel not in Payment.Channel.values:
        raise InvalidInput(f"channel must be one of {', '.join(Payment.Channel.values)}", field="channel")
    if channel != Payment.Channel.CHECK:
        return (check_number or "").strip() if isinstance(check_number, str) else ""
    number = check_number.strip() if isinstance(check_number, str) else ""
    if not number:
        raise InvalidInput("check_number: a check payment needs the check number", field="check_number")
    if len(number) > CHECK_NUMBER_MAX:
        raise InvalidInput(f"check_number: {len(number)} characters; at most {CHECK_NUMBER_MAX}", field="check_number")
    return number


def _create_payment(*, patient, amount, channel, encounter, reference, check_number, note, actor, reason) -> Payment:
    if reference and Payment.objects.filter(practice_id=patient.practice_id, processor_reference=reference).exists():
        raise Duplicate(f"a payment with processor reference {reference} is already recorded",
                        field="processor_reference")
    payment = Payment(practice_id=patient.practice_id, patient=patient, encounter=encounter, amount=amount,
                      channel=channel, processor_reference=reference, check_number=check_number, note=note,
                      created_by=actor)
    try:
        with transaction.atomic():
            save_with_history(payment, actor=actor, reason=reason)
    except IntegrityError:
        raise Duplicate(f"a payment with processor reference {reference} is already recorded",
                        field="processor_reference") from None
    return payment


def _encounter_of(patient: Patient, encounter_id) -> Encounter | None:
    if encounter_id is None:
        return None
    enc = Encounter.objects.filter(pk=encounter_id, patient=patient).first()
    if enc is None:
        raise NotFound(f"unknown date of service {encounter_id} for this patient", field="encounter")
    return lock_encounters([enc.pk])[enc.pk]


def payment_record(*, patient_id: int, amount, channel: str, actor, reason: str = "Patient payment",
                   encounter_id: int | None = None, card_token: str | None = None, processor_reference: str = "",
                   check_number: str = "", note: str = "") -> PaymentResult:
    """Record a patient payment (DOMAIN rules 3 and 9). Card-reader and portal payments are
    charged through the card processor first (or carry the terminal's reference)."""
    amount = positive_money(amount)
    check_number = _validate_channel(channel, check_number)
    patient = patient_get_for_actor(patient_id, actor=actor)
    amount_within_limit(amount, practice=patient.practice)
    if encounter_id is not None and not Encounter.objects.filter(pk=encounter_id, patient=patient).exists():
        raise NotFound(f"unknown date of service {encounter_id} for this patient", field="encounter")
    reference = _charge_card(channel=channel, amount=amount, card_token=card_token,
                             processor_reference=processor_reference)
    with _void_charge_if_not_booked(patient=patient, channel=channel, reference=reference,
                                    processor_reference=processor_reference, amount=amount):
        return _payment_record_tx(patient=patient, amount=amount, channel=channel, encounter_id=encounter_id,
                                  reference=reference, check_number=check_number, note=note, actor=actor,
                                  reason=reason)


@transaction.atomic(durable=True)
def _payment_record_tx(*, patient, amount, channel, encounter_id, reference, check_number, note, actor, reason):
    patient = lock_patient(patient.pk)
    enc = _encounter_of(patient, encounter_id)
    payment = _create_payment(patient=patient, amount=amount, channel=channel, encounter=enc, reference=reference,
                              check_number=check_number, note=note, actor=actor, reason=reason)
    return payment_allocate(payment=payment, patient=patient, encounter=enc, actor=actor, reason=reason)


def credit_purchase(*, patient_id: int, amount, channel: str, actor, reason: str = "Credits purchased",
                    encounter_id: int | None = None, card_token: str | None = None,
                    processor_reference: str = "", check_number: str = "") -> PaymentResult:
    """A patient buys credits ahead: flexible (available) or for a chosen DoS (locked to it)."""
    amount = positive_money(amount)
    check_number = _validate_channel(channel, check_number)
    patient = patient_get_for_actor(patient_id, actor=actor)
    amount_within_limit(amount, practice=patient.practice)
    reference = _charge_card(channel=channel, amount=amount, card_token=card_token,
                             processor_reference=processor_reference)
    with _void_charge_if_not_booked(patient=patient, channel=channel, reference=reference,
                                    processor_reference=processor_reference, amount=amount):
        return _purchase_tx(patient=patient, amount=amount, channel=channel, encounter_id=encounter_id,
                            reference=reference, check_number=check_number, actor=actor, reason=reason)


@transaction.atomic(durable=True)
def _purchase_tx(*, patient, amount, channel, encounter_id, reference, check_number, actor, reason):
    patient = lock_patient(patient.pk)
    enc = _encounter_of(patient, encounter_id)
    payment = _create_payment(patient=patient, amount=amount, channel=channel, encounter=enc, reference=reference,
                              check_number=check_number, note="credit purchase", actor=actor, reason=reason)
    if enc is None:
        c = core.new_credit(patient=patient, source=Credit.Source.PURCHASED, amount=amount, actor=actor,
                            reason=reason, payment=payment)
    else:
        c = core.new_credit(patient=patient, source=Credit.Source.PURCHASED, amount=amount, actor=actor,
                            reason=reason, lock_to=enc, origin=enc, payment=payment)
    journal.post(practice_id=patient.practice_id, kind=JournalEntry.Kind.PAYMENT, memo=reason, actor=actor,
                 patient=patient, lines=[dr(Account.CASH, amount, payment=payment),
                                         cr(core.credit_account(c), amount, **core.credit_dims(c), payment=payment)])
    return PaymentResult(payment=payment, credits=[c])


# --- applying credits at payment time (rule 7) ----------------------------------------------------

def credits_preselect(*, patient_id: int, encounter_ids: list[int], partial: bool = False) -> dict[int, Decimal]:
    """The credits that cover what is owed on the chosen DoS, in rule-6 order: {credit_id: amount}.
    Empty when the usable credits do not cover the whole amount owed (rule 7: preselected only
    if there are enough); staff can still pick credits by hand. With `partial` (the portal, example
    O) the usable credits are preselected even when they cover only part of it; the rest is charged."""
    plan, owed, covered = plan_applications(patient_id=patient_id, encounter_ids=encounter_ids)
    if covered < owed and not partial:
        return {}
    out: dict[int, Decimal] = {}
    for line in plan:
        out[line.credit_id] = out.get(line.credit_id, ZERO) + line.amount
    return out


@dataclass
class CheckoutResult:
    applications: list
    payment: Payment | None
    charged: Decimal
    owed: Decimal


def payment_checkout(*, patient_id: int, encounter_ids: list[int], credit_amounts: dict[int, object],
                     channel: str, actor, reason: str = "Payment at checkout", card_token: str | None = None,
                     processor_reference: str = "", check_number: str = "") -> CheckoutResult:
    """Rule 7: apply the chosen credits to the chosen DoS balances, then charge only the rest.
    `credit_amounts` maps credit id -> amount to use (at most what it has on hand; a locked
    credit only toward its own DoS)."""
    patient = patient_get_for_actor(patient_id, actor=actor)
    if not encounter_ids:
        raise InvalidInput("choose at least one date of service to pay", field="encounter_ids")
    encounter_ids = [parse_id(e, field="encounter_ids") for e in encounter_ids]
    encs = list(Encounter.objects.filter(pk__in=encounter_ids, patient=patient))
    if len(encs) != len(set(encounter_ids)):
        raise NotFound("one of the dates of service is not this patient's", field="encounter_ids")
    for e in encs:
        if not core.encounter_payable(e):
            raise RuleViolation(f"DoS {e.date_of_service} still waits on the payer; its PR is not known",
                                field="encounter_ids")
    owed = sum((e.balance for e in encs), ZERO)
    chosen = {parse_id(k, field="credit_amounts"): amount_within_limit(positive_money(v, field=f"credit {k}"),
                                                                  practice=patient.practice, field="credit_amounts")
              for k, v in (credit_amounts or {}).items()}
    credit_total = sum(chosen.values(), ZERO)
    if credit_total > owed:
        raise InvalidInput(f"the chosen credits ({credit_total}) exceed what is owed ({owed})", field="credit_amounts")
    rest = owed - credit_total
    amount_within_limit(rest, practice=patient.practice)
    reference = ""
    if rest > 0:
        check_number = _validate_channel(channel, check_number)
        reference = _charge_card(channel=channel, amount=rest, card_token=card_token,
                                 processor_reference=processor_reference)
    with _void_charge_if_not_booked(patient=patient, channel=channel, reference=reference,
                                    processor_reference=processor_reference, amount=rest):
        return _checkout_tx(patient=patient, encounter_ids=sorted(set(encounter_ids)), chosen=chosen, rest=rest,
                            owed=owed, channel=channel, reference=reference, check_number=check_number, actor=actor,
                            reason=reason)


@transaction.atomic(durable=True)
def _checkout_tx(*, patient, encounter_ids, chosen, rest, owed, channel, reference, check_number, actor, reason):
    patient = lock_patient(patient.pk)
    encs = lock_encounters(encounter_ids)
    if sum((e.balance for e in encs.values()), ZERO) != owed:
        raise RuleViolation("the balances changed while the payment was taken; reload and try again")
    credits = lock_credits(chosen.keys())
    lines, apps = [], []
    for cid, amount in sorted(chosen.items()):
        c = credits[cid]
        if c.patient_id != patient.pk:
            raise NotFound(f"credit {cid} is not this patient's", field="credit_amounts")
        if c.state not in Credit.ON_HAND or c.on_hand < amount:
            raise RuleViolation(f"credit {cid} has {c.on_hand} on hand; cannot use {amount}", field="credit_amounts")
        remaining = amount
        if c.state == Credit.State.LOCKED and c.locked_encounter_id not in encs:
            raise RuleViolation(f"credit {cid} is locked to another date of service", field="credit_amounts")
        # a locked credit only pays its own DoS; an available one pays the chosen DoS in date order
        targets = [encs[c.locked_encounter_id]] if c.state == Credit.State.LOCKED else \
            sorted(encs.values(), key=lambda e: (e.date_of_service, e.pk))
        for enc in targets:
            take = min(remaining, enc.balance)
            if take > 0:
                apps.append(core.apply_credit(c=c, encounter=enc, amount=take, actor=actor, reason=reason,
                                              entry_lines=lines))
                remaining -= take
        if remaining:
            raise RuleViolation(f"credit {cid}: {remaining} more than its DoS owes", field="credit_amounts")
    journal.post(practice_id=patient.practice_id, kind=JournalEntry.Kind.APPLICATION, memo=reason, actor=actor,
                 patient=patient, lines=lines)
    payment = None
    if rest > 0:
        payment = _create_payment(patient=patient, amount=rest, channel=channel, encounter=None, reference=reference,
                                  check_number=check_number, note="checkout", actor=actor, reason=reason)
        pay_lines = [dr(Account.CASH, rest, payment=payment)]
        for enc in sorted(encs.values(), key=lambda e: (e.date_of_service, e.pk)):
            take = min(rest - sum((a.amount for a in apps if a.payment_id), ZERO), enc.balance)
            if take > 0:
                apps.append(core.apply_payment(payment=payment, encounter=enc, amount=take, actor=actor,
                                               reason=reason, entry_lines=pay_lines))
        journal.post(practice_id=patient.practice_id, kind=JournalEntry.Kind.PAYMENT, memo=reason, actor=actor,
                     patient=patient, lines=pay_lines)
    for enc in encs.values():
        save_with_history(enc, actor=actor, reason=reason)
        core.release_if_balanced(encounter=enc, actor=actor, reason=reason)
    return CheckoutResult(applications=apps, payment=payment, charged=rest, owed=owed)
