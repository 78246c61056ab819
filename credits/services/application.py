"""Applying a patient's credits to their open balances by DOMAIN rule 6 (by hand, or one patient of
the nightly run's rule), and releasing the locked credits of balanced dates of service (rule 4)."""

from dataclasses import dataclass, field
from decimal import Decimal

from django.db import transaction
from django.db.models import Q

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
from credits.selectors import plan
from ledger import journal
from ledger.access import ensure_staff
from ledger.errors import NotFound
from ledger.history import save_with_history
from ledger.inputs import require_reason
from ledger.locks import lock, lock_encounters, lock_patient
from ledger.models import Encounter, JournalEntry, Patient
from ledger.money import ZERO

# --- nightly application for one patient (rule 6) ------------------------------------------------

@dataclass
class ApplyResult:
    patient_id: int
    lines: list = field(default_factory=list)  # PlanLine
    released: int = 0

    @property
    def total(self) -> Decimal:
        return sum((ln.amount for ln in self.lines), ZERO)


def credits_apply_locked(*, patient: Patient, actor, reason: str, nightly_run=None) -> ApplyResult:
    """Body of `credits_apply`; the caller holds the patient lock."""
    result = ApplyResult(patient_id=patient.pk)
    encs = core.outstanding_encounters(patient.pk)
    payable = [e for e in encs if core.encounter_payable(e)]
    by_id = {e.pk: e for e in payable}
    # release first: credits of DoS already balanced become usable for the others (rule 4); their
    # DoS are all locked before the first credit (ledger/locks.py ORDER)
    held = Encounter.objects.filter(locked_credits__state=Credit.State.LOCKED, patient=patient)
    for enc in lock_encounters(held.values_list("pk", flat=True).distinct()).values():
        result.released += core.release_if_balanced(encounter=enc, actor=actor, reason=reason)
    # plan -> apply -> release until nothing more is released: credits freed because their DoS got
    # balanced pay the patient's other open balances in the same run (one run is complete)
    on_hand = Q(patient=patient, state__in=Credit.ON_HAND, on_hand__gt=0)
    while payable:
        credits = lock(credits=Credit.objects.filter(on_hand).values_list("pk", flat=True),
                       only={"credits": on_hand}).credits
        rows = list(credits.values())
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
        for enc in sorted({by_id[ln.encounter_id] for ln in lines}, key=lambda e: e.pk):
            save_with_history(enc, actor=actor, reason=reason)
            newly += core.release_if_balanced(encounter=enc, actor=actor, reason=reason)
        result.released += newly
        result.lines += lines
        if not newly:
            break
    return result


@transaction.atomic(durable=True)
def credits_apply(*, patient_id: int, actor, reason: str = "Nightly application",
                              respect_settings: bool = True, nightly_run=None) -> ApplyResult:
    """Apply a patient's usable credits to their open PR balances by DOMAIN rule 6. With
    `respect_settings` (the nightly run), practices with auto-apply off and excluded patients are
    left alone (rule 6, example G); staff applying by hand pass False. Running it twice applies
    nothing twice: the second run finds no balance left."""
    return credits_apply_tx(patient_id=patient_id, actor=actor, reason=reason, respect_settings=respect_settings,
                            nightly_run=nightly_run)


@transaction.atomic
def credits_apply_tx(*, patient_id: int, actor, reason: str = "Nightly application", respect_settings: bool = True,
                     nightly_run=None) -> ApplyResult:
    """`credits_apply` inside the caller's transaction (an adjudication resolution, after its case's lock)."""
    reason = require_reason(reason)
    patient = Patient.objects.select_related("practice").filter(pk=patient_id).first()
    if patient is None:
        raise NotFound(f"unknown patient {patient_id}", field="patient")
    ensure_staff(actor, patient.practice_id)
    if respect_settings and (not patient.practice.auto_apply or patient.exclude_from_auto_apply):
        return ApplyResult(patient_id=patient.pk)
    patient = lock_patient(patient.pk)
    return credits_apply_locked(patient=patient, actor=actor, reason=reason, nightly_run=nightly_run)


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
