"""Services for the books: practices and staff roles, patients, payers, dates of service and claim
submission. Each public function is the one way in for its operation: keyword-only arguments, the
acting user and a reason, one transaction, row locks in the order of ledger/locks.py, balanced
journal lines and history rows."""

from datetime import date
from decimal import Decimal

from django.db import transaction

from ledger import dates, journal
from ledger.access import ensure_staff, ensure_staff_or_patient
from ledger.errors import Duplicate, InvalidInput, NotFound, PermissionDenied
from ledger.history import save_with_history
from ledger.inputs import require_reason
from ledger.journal import credit as cr
from ledger.journal import debit as dr
from ledger.locks import lock_encounters, lock_patient
from ledger.models import Account, Claim, Encounter, JournalEntry, Membership, Patient, Payer, Practice
from ledger.money import to_money


def amount_within_limit(amount: Decimal, *, practice: Practice, field: str = "amount") -> Decimal:
    """The most one money operation may move (issue 9): the practice's `max_operation_amount`
    (at most ledger.models.AMOUNT_CEILING, a CHECK). Every staff and API money operation checks its
    amounts here before anything is written; a take-back (negative) is measured by its size."""
    limit = practice.max_operation_amount
    if abs(amount) > limit:
        raise InvalidInput(f"{field}: {amount:,} is more than the {limit:,} one operation may move in this practice",
                           field=field, code="above_maximum")
    return amount


def patient_get_for_actor(patient_id, *, actor, practice_id=None) -> Patient:
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
    save_with_history(p, actor=actor, reason=reason)
    return p


@transaction.atomic
def payer_create(*, practice_id: int, name: str, payer_type: str, actor, payer_identifier: str = "",
                 reason: str = "New payer") -> Payer:
    ensure_staff(actor, practice_id)
    if payer_type not in Payer.Type.values:
        raise InvalidInput(f"payer type must be one of {', '.join(Payer.Type.values)}", field="payer_type")
    p = Payer(practice_id=practice_id, name=name, payer_type=payer_type, payer_identifier=payer_identifier)
    save_with_history(p, actor=actor, reason=reason)
    return p


@transaction.atomic(durable=True)
def patient_set_auto_apply(*, patient_id: int, excluded: bool, actor, reason: str) -> Patient:
    reason = require_reason(reason)
    patient = patient_get_for_actor(patient_id, actor=actor)
    ensure_staff(actor, patient.practice_id)
    patient = lock_patient(patient.pk)
    patient.exclude_from_auto_apply = excluded
    save_with_history(patient, actor=actor, reason=reason)
    return patient


@transaction.atomic(durable=True)
def encounter_create(*, patient_id: int, date_of_service: date, charge, estimated_pr, actor,
                     reason: str = "Visit recorded", description: str = "") -> Encounter:
    patient = patient_get_for_actor(patient_id, actor=actor)
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
    save_with_history(enc, actor=actor, reason=reason)
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
    save_with_history(claim, actor=actor, reason=reason)
    return claim


# --- practices and staff roles --------------------------------------------------------------------

@transaction.atomic
def practice_create(*, name: str, us_state: str, actor, reason: str = "New practice", **settings) -> Practice:
    """A new tenant. Only superusers create practices; `settings` are Practice fields
    (auto_apply, refund_approval_threshold, card_refund_window_days, time_zone, nightly_run_at...)."""
    if not getattr(actor, "is_superuser", False):
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
    save_with_history(p, actor=actor, reason=reason)
    return p


@transaction.atomic
def membership_grant(*, user_id: int, practice_id: int, role: str, actor, reason: str):
    """Give a staff user a role in a practice (or change it). Managers of the practice and
    administrators may; the history keeps who and why."""
    reason = require_reason(reason)
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
    save_with_history(m, actor=actor, reason=reason)
    return m
