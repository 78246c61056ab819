"""Services for the books: patients, dates of service, claims and payer results, patient
payments. Each public function is the one way in for its operation: keyword-only arguments,
the acting user and a reason, one transaction, row locks in the order of ledger/locks.py,
balanced journal lines and history rows."""

import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone
from django_fsm import TransitionNotAllowed

from credits import core
from credits.models import Credit
from ledger import dates, journal
from ledger.access import ensure_staff, ensure_staff_or_patient
from ledger.bulk import bulk_update_rows, copy_history, history_snapshot
from ledger.errors import Duplicate, InvalidInput, NotFound, RuleViolation
from ledger.journal import credit as cr
from ledger.journal import debit as dr
from ledger.locks import lock_claims, lock_encounters, lock_patient
from ledger.models import Account, Claim, Encounter, JournalEntry, Patient, Payer, Payment, Practice
from ledger.money import ZERO, positive_money, to_money
from ledger.processors import ProcessorError, get_processor

logger = logging.getLogger(__name__)


def _reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("a reason is required", field="reason")
    return reason


def _id(value, *, field: str) -> int:
    """An id given by a caller (a form, the API): a positive whole number, or a clear error."""
    try:
        out = int(str(value).strip())
    except (TypeError, ValueError):
        raise InvalidInput(f"{field}: '{value}' is not an id", field=field) from None
    if out <= 0:
        raise InvalidInput(f"{field}: '{value}' is not an id", field=field)
    return out


def amount_within_limit(amount: Decimal, *, practice: Practice, field: str = "amount") -> Decimal:
    """The most one money operation may move (issue 9): the practice's `max_operation_amount`
    (at most ledger.models.AMOUNT_CEILING, a CHECK). Every staff and API money operation checks its
    amounts here before anything is written; a take-back (negative) is measured by its size."""
    limit = practice.max_operation_amount
    if abs(amount) > limit:
        raise InvalidInput(f"{field}: {amount:,} is more than the {limit:,} one operation may move in this practice",
                           field=field, code="above_maximum")
    return amount


def _patient_for(patient_id, *, actor, practice_id=None) -> Patient:
    try:
        patient = Patient.objects.get(pk=patient_id)
    except (Patient.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"unknown patient {patient_id}", field="patient") from None
    if practice_id is not None and patient.practice_id != practice_id:
        raise NotFound(f"unknown patient {patient_id} in practice {practice_id}", field="patient")
    ensure_staff_or_patient(actor, patient)
    return patient


# --- patients, payers, dates of service, claims -------------------------------------------------

@transaction.atomic
def patient_create(*, practice_id: int, account_number: str, first_name: str, last_name: str, actor,
                   reason: str = "New patient", date_of_birth: date | None = None, email: str = "",
                   member_id: str = "", exclude_from_auto_apply: bool = False) -> Patient:
    ensure_staff(actor, practice_id)
    if not Practice.objects.filter(pk=practice_id).exists():
        raise NotFound(f"unknown practice {practice_id}", field="practice")
    if not (account_number or "").strip():
        raise InvalidInput("account number is required", field="account_number")
    if date_of_birth is not None:
        date_of_birth = dates.birth_date(date_of_birth, field="date_of_birth")
    if Patient.objects.filter(practice_id=practice_id, account_number=account_number).exists():
        raise Duplicate(f"account number {account_number} already exists in this practice", field="account_number")
    p = Patient(practice_id=practice_id, account_number=account_number.strip(), first_name=first_name,
                last_name=last_name, date_of_birth=date_of_birth, email=email, member_id=member_id,
                exclude_from_auto_apply=exclude_from_auto_apply)
    core.save_with_history(p, actor=actor, reason=reason)
    return p


@transaction.atomic
def payer_create(*, practice_id: int, name: str, payer_type: str, actor, payer_identifier: str = "",
                 reason: str = "New payer") -> Payer:
    ensure_staff(actor, practice_id)
    if payer_type not in Payer.Type.values:
        raise InvalidInput(f"payer type must be one of {', '.join(Payer.Type.values)}", field="payer_type")
    p = Payer(practice_id=practice_id, name=name, payer_type=payer_type, payer_identifier=payer_identifier)
    core.save_with_history(p, actor=actor, reason=reason)
    return p


@transaction.atomic(durable=True)
def patient_set_auto_apply(*, patient_id: int, excluded: bool, actor, reason: str) -> Patient:
    reason = _reason(reason)
    patient = _patient_for(patient_id, actor=actor)
    ensure_staff(actor, patient.practice_id)
    patient = lock_patient(patient.pk)
    patient.exclude_from_auto_apply = excluded
    core.save_with_history(patient, actor=actor, reason=reason)
    return patient


@transaction.atomic(durable=True)
def encounter_create(*, patient_id: int, date_of_service: date, charge, estimated_pr, actor,
                     reason: str = "Visit recorded", description: str = "") -> Encounter:
    patient = _patient_for(patient_id, actor=actor)
    ensure_staff(actor, patient.practice_id)
    date_of_service = dates.service_date(date_of_service, field="date_of_service")
    charge, estimated_pr = to_money(charge, field="charge"), to_money(estimated_pr, field="estimated_pr")
    if charge < 0:
        raise InvalidInput("charge cannot be negative", field="charge")
    if estimated_pr < 0 or estimated_pr > charge:
        raise InvalidInput(f"estimated PR must be between 0 and the charge ({charge})", field="estimated_pr")
    lock_patient(patient.pk)
    enc = Encounter(practice_id=patient.practice_id, patient=patient, date_of_service=date_of_service,
                    description=description, charge=charge, estimated_pr=estimated_pr)
    core.save_with_history(enc, actor=actor, reason=reason)
    journal.post(
        practice_id=enc.practice_id, kind=JournalEntry.Kind.CHARGE, memo=reason, actor=actor, patient=patient,
        lines=[dr(Account.CHARGES_RECEIVABLE, charge, encounter=enc), cr(Account.REVENUE, charge, encounter=enc)]
        + [dr(Account.PATIENT_RECEIVABLE, estimated_pr, patient=patient, encounter=enc),
           cr(Account.CHARGES_RECEIVABLE, estimated_pr, encounter=enc)],
    )
    return enc


@transaction.atomic(durable=True)
def claim_submit(*, encounter_id: int, payer_id: int, claim_number: str, actor, reason: str = "Claim submitted",
                 billed_amount=None) -> Claim:
    try:
        enc = Encounter.objects.select_related("patient").get(pk=encounter_id)
    except Encounter.DoesNotExist:
        raise NotFound(f"unknown date of service {encounter_id}", field="encounter") from None
    ensure_staff(actor, enc.practice_id)
    payer = Payer.objects.filter(pk=payer_id, practice_id=enc.practice_id).first()
    if payer is None:
        raise NotFound(f"unknown payer {payer_id} in this practice", field="payer")
    if not (claim_number or "").strip():
        raise InvalidInput("claim number is required", field="claim_number")
    lock_patient(enc.patient_id)
    lock_encounters([enc.pk])
    if Claim.objects.filter(practice_id=enc.practice_id, payer=payer, claim_number=claim_number).exists():
        raise Duplicate(f"claim {claim_number} already exists for {payer}", field="claim_number")
    claim = Claim(practice_id=enc.practice_id, encounter=enc, payer=payer, claim_number=claim_number.strip(),
                  billed_amount=to_money(billed_amount if billed_amount is not None else enc.charge,
                                         field="billed_amount"))
    core.save_with_history(claim, actor=actor, reason=reason)
    return claim


class ClaimOutcome:
    PAID = "paid"
    DENIED = "denied"
    FORWARDED = "forwarded"
    PENDING = "pending"
    REVERSED = "reversed"
    ALL = (PAID, DENIED, FORWARDED, PENDING, REVERSED)


@dataclass
class ClaimResult:
    claim: Claim
    encounter: Encounter
    credits_created: list = field(default_factory=list)
    released: int = 0


class ClaimResultBatch:
    """Applies payers' decisions to claims and dates of service, in order, in memory, then writes
    them with a few bulk statements: the claims and encounters, a history snapshot per change
    (acting user + reason), one journal entry per decision. The single-claim service uses it with
    one decision; the 835 posting with a few hundred. The caller holds the patient, encounter and
    claim locks, and passes the locked rows (the same object for the same row throughout, so a
    reversal and its correction in one batch see each other)."""

    CLAIM_FIELDS = ["state", "paid_amount", "adjustment_amount", "patient_responsibility", "payer_claim_number",
                    "remittance_count", "finalized_at"]

    ENCOUNTER_FIELDS = ["remittance_pr", "applied_amount", "written_off_amount"]

    def __init__(self, *, actor):
        self.actor = actor
        self.claims, self.encounters = {}, {}
        self.claim_snaps, self.encounter_snaps, self.entries, self.tags = [], [], [], []
        self.entry_ids = {}  # after flush: {tag: id of the journal entry of that decision}

    def _snap(self, obj, reason, snaps):
        snaps.append((history_snapshot(obj), reason))  # the row as it is after this decision

    def record(self, *, claim: Claim, encounter: Encounter, outcome: str, paid_amount: Decimal,
               adjustment_amount: Decimal, patient_responsibility: Decimal | None, reason: str,
               payer_claim_number: str = "", tag=None) -> "ClaimResult":
        """The payer's decision on one claim (DOMAIN rules 3 and 9). `paid_amount` and
        `adjustment_amount` are this remittance's amounts (negative for a take-back);
        `patient_responsibility` the DoS's new PR (None: unchanged, e.g. a reversal).
        Outcome "reversed": the payer took its payment back and a correction will follow.
        `tag`: any key the caller wants the decision's journal entry id under (`entry_ids`; the
        835 posting passes its remittance claim, to name the entry it books)."""
        transitions = {ClaimOutcome.PAID: claim.finalize_paid, ClaimOutcome.DENIED: claim.finalize_denied,
                       ClaimOutcome.FORWARDED: claim.forward, ClaimOutcome.PENDING: claim.mark_pending,
                       ClaimOutcome.REVERSED: claim.reverse}
        if outcome not in transitions:
            raise InvalidInput(f"outcome must be one of {', '.join(transitions)}", field="outcome")
        try:
            transitions[outcome]()
        except TransitionNotAllowed:
            raise RuleViolation(f"claim {claim.claim_number} cannot go from {claim.state} to {outcome}",
                                field="outcome") from None
        claim.paid_amount += paid_amount
        claim.adjustment_amount += adjustment_amount
        if patient_responsibility is not None:
            claim.patient_responsibility = patient_responsibility
        if payer_claim_number:
            claim.payer_claim_number = payer_claim_number
        claim.remittance_count += 1
        self.claims[claim.pk], self.encounters[encounter.pk] = claim, encounter
        self._snap(claim, reason, self.claim_snaps)
        # one entry for the payer's decision: its payment and its adjustments (one charges-receivable line for
        # both: they settle the same claim's charges) and the PR it sets
        lines = [dr(Account.CASH, paid_amount, claim=claim), dr(Account.CONTRACTUAL, adjustment_amount, claim=claim),
                 cr(Account.CHARGES_RECEIVABLE, paid_amount + adjustment_amount, claim=claim, encounter=encounter)]
        result = ClaimResult(claim=claim, encounter=encounter)
        if patient_responsibility is not None:
            # an overpayment is held for the DoS while a claim on it is open (rule 3); the claims of this
            # batch are not written yet, so their new states come from memory, the others' from the database
            hold = None
            if encounter.applied_amount + encounter.written_off_amount > patient_responsibility:  # money returns
                mine = [c for c in self.claims.values() if c.encounter_id == encounter.pk]
                hold = any(c.state in Claim.OPEN for c in mine) or Claim.objects.filter(
                    encounter=encounter, state__in=Claim.OPEN).exclude(pk__in=[c.pk for c in mine]).exists()
            # money applied beyond the new PR goes back into an overpayment credit (written at once; rare)
            result.credits_created = core.set_pr(encounter=encounter, new_pr=patient_responsibility, remittance=True,
                                                 actor=self.actor, reason=reason, entry_lines=lines, save=False,
                                                 hold=hold)
            self._snap(encounter, reason, self.encounter_snaps)
        self.entries.append((claim.practice_id, JournalEntry.Kind.PAYER_PAYMENT, reason, encounter.patient_id,
                             lines))
        self.tags.append(tag)
        return result

    def flush(self) -> int:
        """Write everything recorded, set-based (one UPDATE per table, history rows and journal
        entries by COPY); release the locked credits of encounters now balanced (rule 4).
        Returns how many credits were released."""
        now = timezone.now()
        if self.claims:
            bulk_update_rows(Claim, self.claims.values(), self.CLAIM_FIELDS)
            copy_history(Claim, self.claim_snaps, user_id=self.actor.pk, at=now)
        if self.encounter_snaps:
            bulk_update_rows(Encounter, self.encounters.values(), self.ENCOUNTER_FIELDS)
            copy_history(Encounter, self.encounter_snaps, user_id=self.actor.pk, at=now)
        ids = journal.post_many(actor=self.actor, entries=self.entries)
        entry_ids = {tag: i for tag, i in zip(self.tags, ids) if tag is not None and i is not None}
        released = core.release_balanced(encounters=[e for e in self.encounters.values() if e.balance == 0],
                                         actor=self.actor, reason="remittance posted")
        self.__init__(actor=self.actor)
        self.entry_ids = entry_ids
        return released


def record_claim_result(*, claim: Claim, encounter: Encounter, outcome: str, paid_amount: Decimal,
                        adjustment_amount: Decimal, patient_responsibility: Decimal | None, actor, reason: str,
                        payer_claim_number: str = "") -> ClaimResult:
    """One decision through `ClaimResultBatch`, written at once (caller holds the locks)."""
    batch = ClaimResultBatch(actor=actor)
    result = batch.record(claim=claim, encounter=encounter, outcome=outcome, paid_amount=paid_amount,
                          adjustment_amount=adjustment_amount, patient_responsibility=patient_responsibility,
                          reason=reason, payer_claim_number=payer_claim_number)
    result.released = batch.flush()
    return result


@transaction.atomic(durable=True)
def claim_record_result(*, claim_id: int, outcome: str, actor, reason: str, paid_amount="0.00",
                        adjustment_amount="0.00", patient_responsibility=None,
                        payer_claim_number: str = "") -> ClaimResult:
    """Record the payer's decision on a claim (DOMAIN rules 3 and 9): finalize it (paid or
    denied) or mark it forwarded/pending, book the payer's payment and adjustments, and set the
    remittance PR for the DoS. Money the patient paid beyond the new PR becomes an overpayment
    credit; a higher PR is a new balance. `paid_amount`/`adjustment_amount` are this remittance's
    amounts (negative for a take-back); `patient_responsibility` is the DoS's new PR."""
    reason = _reason(reason)
    claim = Claim.objects.filter(pk=claim_id).select_related("encounter").first()
    if claim is None:
        raise NotFound(f"unknown claim {claim_id}", field="claim")
    ensure_staff(actor, claim.practice_id)
    paid = to_money(paid_amount, field="paid_amount")
    adj = to_money(adjustment_amount, field="adjustment_amount")
    pr = None if patient_responsibility is None else to_money(patient_responsibility, field="patient_responsibility")
    if pr is not None and pr < 0:
        raise InvalidInput("patient responsibility cannot be negative", field="patient_responsibility")
    practice = Practice.objects.get(pk=claim.practice_id)
    for name, value in (("paid_amount", paid), ("adjustment_amount", adj), ("patient_responsibility", pr)):
        if value is not None:
            amount_within_limit(value, practice=practice, field=name)
    lock_patient(claim.encounter.patient_id)
    enc = lock_encounters([claim.encounter_id])[claim.encounter_id]
    claim = lock_claims([claim.pk])[claim.pk]
    return record_claim_result(claim=claim, encounter=enc, outcome=outcome, paid_amount=paid,
                               adjustment_amount=adj, patient_responsibility=pr, actor=actor, reason=reason,
                               payer_claim_number=payer_claim_number)


@transaction.atomic(durable=True)
def claim_resubmit(*, claim_id: int, actor, reason: str) -> list[Credit]:
    """Rule 3 (resubmission): the patient money applied to the DoS becomes credits locked to it,
    so it is there when the new decision comes; the DoS's balance waits for that decision."""
    reason = _reason(reason)
    claim = Claim.objects.filter(pk=claim_id).select_related("encounter").first()
    if claim is None:
        raise NotFound(f"unknown claim {claim_id}", field="claim")
    ensure_staff(actor, claim.practice_id)
    lock_patient(claim.encounter.patient_id)
    enc = lock_encounters([claim.encounter_id])[claim.encounter_id]
    claim = lock_claims([claim.pk])[claim.pk]
    had_remittance = claim.remittance_count > 0
    try:
        claim.resubmit()
    except TransitionNotAllowed:
        raise RuleViolation(f"claim {claim.claim_number} is {claim.get_state_display()}: it cannot be resubmitted",
                            field="claim") from None
    core.save_with_history(claim, actor=actor, reason=reason)
    created = []
    if had_remittance and enc.applied_amount > 0:
        created = core.return_applied(encounter=enc, amount=enc.applied_amount, source=Credit.Source.RESUBMISSION,
                                      lock=True, actor=actor, reason=reason)
        core.save_with_history(enc, actor=actor, reason=reason)
    return created


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


def allocate_payment(*, payment: Payment, patient: Patient, encounter: Encounter | None, actor, reason: str,
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
        core.save_with_history(enc, actor=actor, reason=reason)
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
    for enc in {a.encounter_id: a.encounter for a in result.applications}.values():
        core.release_if_balanced(encounter=enc, actor=actor, reason=reason)
    return result


def _validate_channel(channel: str, check_number: str) -> None:
    if channel not in Payment.Channel.values:
        raise InvalidInput(f"channel must be one of {', '.join(Payment.Channel.values)}", field="channel")


def _create_payment(*, patient, amount, channel, encounter, reference, check_number, note, actor, reason) -> Payment:
    if reference and Payment.objects.filter(practice_id=patient.practice_id, processor_reference=reference).exists():
        raise Duplicate(f"a payment with processor reference {reference} is already recorded",
                        field="processor_reference")
    payment = Payment(practice_id=patient.practice_id, patient=patient, encounter=encounter, amount=amount,
                      channel=channel, processor_reference=reference, check_number=check_number, note=note,
                      created_by=actor)
    try:
        with transaction.atomic():
            core.save_with_history(payment, actor=actor, reason=reason)
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
    _validate_channel(channel, check_number)
    patient = _patient_for(patient_id, actor=actor)
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
    return allocate_payment(payment=payment, patient=patient, encounter=enc, actor=actor, reason=reason)


def credit_purchase(*, patient_id: int, amount, channel: str, actor, reason: str = "Credits purchased",
                    encounter_id: int | None = None, card_token: str | None = None,
                    processor_reference: str = "") -> PaymentResult:
    """A patient buys credits ahead: flexible (available) or for a chosen DoS (locked to it)."""
    amount = positive_money(amount)
    _validate_channel(channel, "")
    patient = _patient_for(patient_id, actor=actor)
    amount_within_limit(amount, practice=patient.practice)
    reference = _charge_card(channel=channel, amount=amount, card_token=card_token,
                             processor_reference=processor_reference)
    with _void_charge_if_not_booked(patient=patient, channel=channel, reference=reference,
                                    processor_reference=processor_reference, amount=amount):
        return _purchase_tx(patient=patient, amount=amount, channel=channel, encounter_id=encounter_id,
                            reference=reference, actor=actor, reason=reason)


@transaction.atomic(durable=True)
def _purchase_tx(*, patient, amount, channel, encounter_id, reference, actor, reason):
    patient = lock_patient(patient.pk)
    enc = _encounter_of(patient, encounter_id)
    payment = _create_payment(patient=patient, amount=amount, channel=channel, encounter=enc, reference=reference,
                              check_number="", note="credit purchase", actor=actor, reason=reason)
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

def credits_preselect(*, patient_id: int, encounter_ids: list[int]) -> dict[int, Decimal]:
    """The credits that cover what is owed on the chosen DoS, in rule-6 order: {credit_id: amount}.
    Empty when the usable credits do not cover the whole amount owed (rule 7: preselected only
    if there are enough); staff can still pick credits by hand."""
    from credits.selectors import plan_applications

    plan, owed, covered = plan_applications(patient_id=patient_id, encounter_ids=encounter_ids)
    if covered < owed:
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
    patient = _patient_for(patient_id, actor=actor)
    if not encounter_ids:
        raise InvalidInput("choose at least one date of service to pay", field="encounter_ids")
    encounter_ids = [_id(e, field="encounter_ids") for e in encounter_ids]
    encs = list(Encounter.objects.filter(pk__in=encounter_ids, patient=patient))
    if len(encs) != len(set(encounter_ids)):
        raise NotFound("one of the dates of service is not this patient's", field="encounter_ids")
    for e in encs:
        if not core.encounter_payable(e):
            raise RuleViolation(f"DoS {e.date_of_service} still waits on the payer; its PR is not known",
                                field="encounter_ids")
    owed = sum((e.balance for e in encs), ZERO)
    chosen = {_id(k, field="credit_amounts"): amount_within_limit(positive_money(v, field=f"credit {k}"),
                                                                  practice=patient.practice, field="credit_amounts")
              for k, v in (credit_amounts or {}).items()}
    credit_total = sum(chosen.values(), ZERO)
    if credit_total > owed:
        raise InvalidInput(f"the chosen credits ({credit_total}) exceed what is owed ({owed})", field="credit_amounts")
    rest = owed - credit_total
    amount_within_limit(rest, practice=patient.practice)
    reference = ""
    if rest > 0:
        _validate_channel(channel, check_number)
        reference = _charge_card(channel=channel, amount=rest, card_token=card_token,
                                 processor_reference=processor_reference)
    with _void_charge_if_not_booked(patient=patient, channel=channel, reference=reference,
                                    processor_reference=processor_reference, amount=rest):
        return _checkout_tx(patient=patient, encounter_ids=sorted(set(encounter_ids)), chosen=chosen, rest=rest,
                            owed=owed, channel=channel, reference=reference, check_number=check_number, actor=actor,
                            reason=reason)


@transaction.atomic(durable=True)
def _checkout_tx(*, patient, encounter_ids, chosen, rest, owed, channel, reference, check_number, actor, reason):
    from ledger.locks import lock_credits

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
        core.save_with_history(enc, actor=actor, reason=reason)
        core.release_if_balanced(encounter=enc, actor=actor, reason=reason)
    return CheckoutResult(applications=apps, payment=payment, charged=rest, owed=owed)


# --- practices and staff roles --------------------------------------------------------------------

@transaction.atomic
def practice_create(*, name: str, us_state: str, actor, reason: str = "New practice", **settings) -> Practice:
    """A new tenant. Only superusers create practices; `settings` are Practice fields
    (auto_apply, refund_approval_threshold, card_refund_window_days, time_zone, nightly_run_at...)."""
    if not getattr(actor, "is_superuser", False):
        from ledger.errors import PermissionDenied

        raise PermissionDenied("only an administrator creates practices")
    name, us_state = (name or "").strip(), (us_state or "").strip().upper()
    if not name:
        raise InvalidInput("a practice name is required", field="name")
    if len(us_state) != 2 or not us_state.isalpha():
        raise InvalidInput(f"US state must be a two-letter code (got '{us_state}')", field="us_state")
    if Practice.objects.filter(name=name).exists():
        raise Duplicate(f"a practice named {name} already exists", field="name")
    unknown = set(settings) - {f.name for f in Practice._meta.get_fields()}
    if unknown:
        raise InvalidInput(f"unknown practice setting(s): {', '.join(sorted(unknown))}", field="settings")
    p = Practice(name=name, us_state=us_state, **settings)
    core.save_with_history(p, actor=actor, reason=reason)
    return p


@transaction.atomic
def membership_grant(*, user_id: int, practice_id: int, role: str, actor, reason: str):
    """Give a staff user a role in a practice (or change it). Managers of the practice and
    administrators may; the history keeps who and why."""
    from ledger.models import Membership

    reason = _reason(reason)
    ensure_staff(actor, practice_id, manager=True)
    if role not in Membership.Role.values:
        raise InvalidInput(f"role must be one of {', '.join(Membership.Role.values)}", field="role")
    from django.contrib.auth import get_user_model

    if not get_user_model().objects.filter(pk=user_id).exists():
        raise NotFound(f"unknown user {user_id}", field="user")
    m = Membership.objects.select_for_update().filter(user_id=user_id, practice_id=practice_id).first()
    if m is None:
        m = Membership(user_id=user_id, practice_id=practice_id, role=role)
    elif m.role == role:
        return m
    m.role = role
    core.save_with_history(m, actor=actor, reason=reason)
    return m
