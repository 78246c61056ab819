"""Payers' decisions on claims (DOMAIN rules 3 and 9): the claim's new state, the payer's payment and
adjustments, the date of service's new PR and the credits it creates; resubmission. `ClaimResultBatch`
is the one way both the single-claim service and the 835 posting write them."""

from dataclasses import dataclass, field
from decimal import Decimal

from django.db import transaction
from django.utils import timezone
from django_fsm import TransitionNotAllowed

from credits import core
from credits.models import Credit
from ledger import journal
from ledger.access import ensure_staff
from ledger.bulk import bulk_update_rows, copy_history, history_snapshot
from ledger.errors import InvalidInput, NotFound, RuleViolation
from ledger.history import save_with_history
from ledger.inputs import require_reason
from ledger.journal import credit as cr
from ledger.journal import debit as dr
from ledger.locks import lock_claims, lock_encounters, lock_patient
from ledger.models import Account, Claim, Encounter, JournalEntry, Practice
from ledger.money import to_money
from ledger.services import amount_within_limit


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


def _claim_result_write(*, claim: Claim, encounter: Encounter, outcome: str, paid_amount: Decimal,
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
    reason = require_reason(reason)
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
    return _claim_result_write(claim=claim, encounter=enc, outcome=outcome, paid_amount=paid,
                               adjustment_amount=adj, patient_responsibility=pr, actor=actor, reason=reason,
                               payer_claim_number=payer_claim_number)


@transaction.atomic(durable=True)
def claim_resubmit(*, claim_id: int, actor, reason: str) -> list[Credit]:
    """Rule 3 (resubmission): the patient money applied to the DoS becomes credits locked to it,
    so it is there when the new decision comes; the DoS's balance waits for that decision."""
    return claim_resubmit_tx(claim_id=claim_id, actor=actor, reason=reason)


@transaction.atomic
def claim_resubmit_tx(*, claim_id: int, actor, reason: str) -> list[Credit]:
    """`claim_resubmit` inside the caller's transaction (an adjudication resolution, after its case's lock)."""
    reason = require_reason(reason)
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
    save_with_history(claim, actor=actor, reason=reason)
    created = []
    if had_remittance and enc.applied_amount > 0:
        created = core.return_applied(encounter=enc, amount=enc.applied_amount, source=Credit.Source.RESUBMISSION,
                                      hold=True, actor=actor, reason=reason)
        save_with_history(enc, actor=actor, reason=reason)
    return created
