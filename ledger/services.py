"""Services for the books: practices and staff roles, patients, payers, dates of service and claim
submission. Each public function is the one way in for its operation: keyword-only arguments, the
acting user and a reason, one transaction, row locks in the order of ledger/locks.py, balanced
journal lines and history rows."""

import re
from collections.abc import Callable
from datetime import date, time
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction

from ledger import dates, journal
from ledger.access import (
    ensure_may_manage_roles,
    ensure_staff,
    ensure_staff_or_patient,
    is_integration,
    is_system,
    role_candidates,
)
from ledger.errors import Duplicate, InvalidInput, NotFound, PermissionDenied
from ledger.history import save_with_history
from ledger.inputs import parse_id, portal_colour, require_reason, time_zone_name, us_state_code
from ledger.journal import credit as cr
from ledger.journal import debit as dr
from ledger.locks import lock, lock_encounters, lock_patient
from ledger.models import AMOUNT_CEILING, Account, Claim, Encounter, JournalEntry, Membership, Patient, Payer, Practice
from ledger.money import nonnegative_money, to_money


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

def _text(value, *, field: str, max_length: int, required: bool = False) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise InvalidInput(f"{field}: not text", field=field)
    value = value.strip()
    if required and not value:
        raise InvalidInput(f"{field}: required", field=field)
    if len(value) > max_length:
        raise InvalidInput(f"{field}: {len(value):,} characters; at most {max_length}", field=field)
    return value


def _flag(value, *, field: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(f"{field}: must be true or false (got {value!r})", field=field)
    return value


def _only(values: dict, allowed, *, what: str) -> None:
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise InvalidInput(f"not {what}: {', '.join(unknown)}", field=unknown[0])


def _save_changes(obj, values: dict, *, actor, reason: str) -> list[str]:
    """Set the values that differ and save only those, with the history row; [] when nothing changed."""
    fields = [name for name, value in values.items() if getattr(obj, name) != value]
    for name in fields:
        setattr(obj, name, values[name])
    if fields:
        save_with_history(obj, actor=actor, reason=reason, update_fields=fields)
    return fields


# What staff may change on a patient (admin, API); the account number and practice are fixed.
ADDRESS_FIELDS = ("address_line1", "address_line2", "city", "us_state", "postal_code")
POSTAL_CODE = re.compile(r"\d{5}(-\d{4})?")
PATIENT_FIELDS = ("first_name", "last_name", "date_of_birth", "email", "member_id", "exclude_from_auto_apply",
                  *ADDRESS_FIELDS)


def patient_fields_clean(values: dict) -> dict:
    """The checked values of patient fields, for patient_create and patient_update alike."""
    _only(values, PATIENT_FIELDS, what="a patient field staff change")
    out = {}
    for name, value in values.items():
        if name in ("first_name", "last_name"):
            out[name] = _text(value, field=name, max_length=100, required=True)
        elif name == "member_id":
            out[name] = _text(value, field=name, max_length=64)
        elif name == "email":
            out[name] = _text(value, field=name, max_length=254)
            try:
                if out[name]:
                    validate_email(out[name])
            except ValidationError:
                raise InvalidInput(f"email: '{out[name]}' is not an e-mail address", field="email") from None
        elif name == "date_of_birth":
            out[name] = None if value in (None, "") else dates.birth_date(value, field=name)
        elif name in ("address_line1", "address_line2"):
            out[name] = _text(value, field=name, max_length=200)
        elif name == "city":
            out[name] = _text(value, field=name, max_length=100)
        elif name == "us_state":
            out[name] = us_state_code(value, field=name) if (value or "").strip() else ""
        elif name == "postal_code":
            out[name] = _text(value, field=name, max_length=10)
            if out[name] and not POSTAL_CODE.fullmatch(out[name]):
                raise InvalidInput(f"postal code: '{out[name]}' is not a US ZIP code (12345 or 12345-6789)",
                                   field=name)
        else:
            out[name] = _flag(value, field=name)
    return out


@transaction.atomic
def patient_create(*, practice_id: int, account_number: str, first_name: str, last_name: str, actor,
                   reason: str = "New patient", date_of_birth: date | None = None, email: str = "",
                   member_id: str = "", exclude_from_auto_apply: bool = False, **address) -> Patient:
    """A new patient; `address` takes the last known address (ADDRESS_FIELDS), where notices and
    due-diligence letters go and whose state decides the unclaimed-property rules."""
    reason = require_reason(reason)
    ensure_staff(actor, practice_id)
    if not Practice.objects.filter(pk=practice_id).exists():
        raise NotFound(f"unknown practice {practice_id}", field="practice")
    account_number = _text(account_number, field="account_number", max_length=32, required=True)
    values = patient_fields_clean({"first_name": first_name, "last_name": last_name, "date_of_birth": date_of_birth,
                                   "email": email, "member_id": member_id,
                                   "exclude_from_auto_apply": exclude_from_auto_apply, **address})
    if Patient.objects.filter(practice_id=practice_id, account_number=account_number).exists():
        raise Duplicate(f"account number {account_number} already exists in this practice", field="account_number")
    p = Patient(practice_id=practice_id, account_number=account_number, **values)
    save_with_history(p, actor=actor, reason=reason)
    return p


@transaction.atomic  # not durable: the admin's change form saves inside its own transaction
def patient_update(*, patient_id: int, changes: dict, actor, reason: str) -> Patient:
    """Change a patient's name, date of birth, contact, member id or auto-apply exclusion (admin,
    API). Staff of the patient's practice; only what differs is saved, with one history row."""
    reason = require_reason(reason)
    values = patient_fields_clean(changes)
    patient = patient_get_for_actor(patient_id, actor=actor)
    ensure_staff(actor, patient.practice_id)
    patient = lock_patient(patient.pk)  # serialised with the services working on this patient's money
    _save_changes(patient, values, actor=actor, reason=reason)
    return patient


@transaction.atomic(durable=True)
def patient_set_auto_apply(*, patient_id: int, excluded: bool, actor, reason: str) -> Patient:
    return patient_update(patient_id=patient_id, changes={"exclude_from_auto_apply": excluded}, actor=actor,
                          reason=reason)


PAYER_FIELDS = ("name", "payer_type", "payer_identifier", "medicare_part")


def payer_fields_clean(values: dict) -> dict:
    _only(values, PAYER_FIELDS, what="a payer field")
    out = {}
    for name, value in values.items():
        if name == "name":
            out[name] = _text(value, field=name, max_length=200, required=True)
        elif name == "payer_identifier":
            out[name] = _text(value, field=name, max_length=80)
        elif name == "medicare_part":
            if value not in ("", "A", "B"):
                raise InvalidInput("medicare part must be A, B or blank", field="medicare_part")
            out[name] = value
        elif value not in Payer.Type.values:
            raise InvalidInput(f"payer type must be one of {', '.join(Payer.Type.values)}", field="payer_type")
        else:
            out[name] = value
    return out


@transaction.atomic
def payer_create(*, practice_id: int, name: str, payer_type: str, actor, payer_identifier: str = "",
                 medicare_part: str = "", reason: str = "New payer") -> Payer:
    reason = require_reason(reason)
    ensure_staff(actor, practice_id)
    values = payer_fields_clean({"name": name, "payer_type": payer_type, "payer_identifier": payer_identifier,
                                 "medicare_part": medicare_part})
    if values["medicare_part"] and values["payer_type"] != Payer.Type.MEDICARE:
        raise InvalidInput("medicare part: only a Medicare payer has one", field="medicare_part")
    if Payer.objects.filter(practice_id=practice_id, name=values["name"]).exists():
        raise Duplicate(f"a payer named {values['name']} already exists in this practice", field="name")
    p = Payer(practice_id=practice_id, **values)
    save_with_history(p, actor=actor, reason=reason)
    return p


@transaction.atomic  # not durable: the admin's change form saves inside its own transaction
def payer_update(*, payer_id: int, changes: dict, actor, reason: str) -> Payer:
    reason = require_reason(reason)
    values = payer_fields_clean(changes)
    payer = Payer.objects.filter(pk=parse_id(payer_id, field="payer")).first()
    if payer is None:
        raise NotFound(f"unknown payer {payer_id}", field="payer")
    ensure_staff(actor, payer.practice_id)
    if "name" in values and Payer.objects.filter(practice_id=payer.practice_id, name=values["name"]) \
            .exclude(pk=payer.pk).exists():
        raise Duplicate(f"a payer named {values['name']} already exists in this practice", field="name")
    part = values.get("medicare_part", payer.medicare_part)
    if part and values.get("payer_type", payer.payer_type) != Payer.Type.MEDICARE:
        raise InvalidInput("medicare part: only a Medicare payer has one", field="medicare_part")
    _save_changes(payer, values, actor=actor, reason=reason)
    return payer


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

# Every practice setting a manager may change (admin, API); practice_create takes the same.
PRACTICE_SETTINGS = ("name", "us_state", "time_zone", "auto_apply", "nightly_run_at", "refund_approval_threshold",
                     "card_refund_window_days", "writeoff_max_amount", "writeoff_min_age_days",
                     "approval_window_days", "manual_credit_approval_limit", "max_operation_amount",
                     "portal_otp_required", "portal_colour")
# Changing one of these moves the practice's nightly schedule (config/schedules.py).
SCHEDULE_SETTINGS = frozenset({"time_zone", "nightly_run_at"})
DAYS_MAX = 3650  # the day counts' range (approval_window_days also has it as a CHECK)


def practice_settings_clean(values: dict) -> dict:
    """The checked values of practice settings: the one place their rules live (practice_create,
    practice_update; the admin and the API show the InvalidInput on the field it names)."""
    _only(values, PRACTICE_SETTINGS, what="a practice setting")
    out = {}
    for name, value in values.items():
        if name == "name":
            out[name] = _text(value, field=name, max_length=200, required=True)
        elif name == "us_state":
            out[name] = us_state_code(value, field=name)
        elif name == "time_zone":
            out[name] = time_zone_name(value, field=name)
        elif name in ("auto_apply", "portal_otp_required"):
            out[name] = _flag(value, field=name)
        elif name == "portal_colour":
            out[name] = portal_colour(value, field=name)
        elif name == "nightly_run_at":
            if not isinstance(value, time):
                raise InvalidInput(f"{name}: a local time (HH:MM) is required", field=name)
            out[name] = value.replace(tzinfo=None)
        elif name.endswith("_days"):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= DAYS_MAX:
                raise InvalidInput(f"{name}: a whole number of days from 0 to {DAYS_MAX} (got {value!r})", field=name)
            out[name] = value
        elif name == "max_operation_amount":
            amount = nonnegative_money(value, field=name)
            if not 0 < amount <= AMOUNT_CEILING:
                raise InvalidInput(f"{name}: between 0.01 and {AMOUNT_CEILING:,} (the hard ceiling); got {amount:,}",
                                   field=name, code="above_maximum" if amount > AMOUNT_CEILING else None)
            out[name] = amount
        else:  # refund_approval_threshold, writeoff_max_amount, manual_credit_approval_limit
            out[name] = nonnegative_money(value, field=name)
    return out


@transaction.atomic
def practice_create(*, name: str, us_state: str, actor, reason: str = "New practice", **settings) -> Practice:
    """A new tenant. Only superusers create practices; `settings` are the other PRACTICE_SETTINGS
    (auto_apply, refund_approval_threshold, card_refund_window_days, time_zone, nightly_run_at...),
    checked as practice_update checks them."""
    if not getattr(actor, "is_superuser", False):
        raise PermissionDenied("only an administrator creates practices")
    reason = require_reason(reason)
    values = practice_settings_clean({**settings, "name": name, "us_state": us_state})
    if Practice.objects.filter(name=values["name"]).exists():
        raise Duplicate(f"a practice named {values['name']} already exists", field="name")
    p = Practice(**values)
    save_with_history(p, actor=actor, reason=reason)
    return p


@transaction.atomic  # not durable: the admin's change form saves inside its own transaction
def practice_update(*, practice_id: int, changes: dict, actor, reason: str,
                    on_schedule_change: Callable[[int], object] | None) -> Practice:
    """Change practice settings (managers of the practice, administrators anywhere): every value
    checked by practice_settings_clean, only what differs saved, one history row with the actor and
    the reason.

    When the nightly run's local time or the time zone changed, `on_schedule_change(practice_id)`
    runs after the commit to move the practice's nightly schedule. The kernel does not import the
    project's schedule registry (config/ is on top of every app), so callers hand it in:
    `config.schedules.sync_practice`. It is a required argument so no caller forgets it; None only
    where the schedules are synced by other means (e.g. `sync_schedules` right after)."""
    reason = require_reason(reason)
    practice_id = parse_id(practice_id, field="practice")
    ensure_staff(actor, practice_id, manager=True)
    values = practice_settings_clean(changes)
    practice = lock(practices=[practice_id]).practices[practice_id]
    if "name" in values and Practice.objects.filter(name=values["name"]).exclude(pk=practice.pk).exists():
        raise Duplicate(f"a practice named {values['name']} already exists", field="name")
    changed = _save_changes(practice, values, actor=actor, reason=reason)
    if on_schedule_change is not None and SCHEDULE_SETTINGS & set(changed):
        transaction.on_commit(lambda: on_schedule_change(practice.pk))
    return practice


def _membership_target(user_id, *, actor):
    user = get_user_model().objects.filter(pk=parse_id(user_id, field="user")).first()
    if user is None:
        raise NotFound(f"unknown user {user_id}", field="user")
    if is_system(user) or is_integration(user):
        raise InvalidInput(f"{user.get_username()} is not a person: an integration's or the system's role is fixed",
                           field="user")
    if not role_candidates(actor).filter(pk=user.pk).exists():
        # another practice's staff are not listed to this manager: unknown, as for the admin's choices
        if user.is_active and user.is_staff and not Patient.objects.filter(user_id=user.pk).exists():
            raise NotFound(f"unknown user {user_id}", field="user")
        raise InvalidInput(f"{user.get_username()} is not an active staff user (an administrator makes staff users; "
                           "a patient's portal login never gets a role)", field="user")
    return user


@transaction.atomic
def membership_grant(*, user_id: int, practice_id: int, role: str, actor, reason: str) -> Membership:
    """Give a person a role in a practice, or change it. Who may: `ledger.access.ensure_may_manage_roles`
    (managers of the practice and administrators; nobody their own role). The history keeps who and why."""
    reason = require_reason(reason)
    practice_id = parse_id(practice_id, field="practice")
    ensure_may_manage_roles(actor, practice_id=practice_id, user_id=parse_id(user_id, field="user"))
    user = _membership_target(user_id, actor=actor)
    if role not in Membership.Role.values:
        raise InvalidInput(f"role must be one of {', '.join(Membership.Role.values)}", field="role")
    # the practice's role changes one after another, each deciding again on the roles as they are then:
    # two managers demoting each other at once cannot leave the practice without one
    lock(practices=[practice_id])
    ensure_may_manage_roles(actor, practice_id=practice_id, user_id=user.pk)
    held = lock(memberships=Membership.objects.filter(user_id=user.pk, practice_id=practice_id)
                .values_list("pk", flat=True)).memberships  # after the practice (ledger/locks.py ORDER)
    m = next(iter(held.values()), None)
    if m is None:
        m = Membership(user_id=user.pk, practice_id=practice_id, role=role)
    elif m.role == role:
        return m
    m.role = role
    save_with_history(m, actor=actor, reason=reason)
    return m


@transaction.atomic
def membership_revoke(*, membership_id: int, actor, reason: str) -> None:
    """Take a person's role in a practice away (the same rule as membership_grant). Their API
    tokens of that practice stop working with it (api/tokens.py `token_power`)."""
    reason = require_reason(reason)
    m = Membership.objects.filter(pk=parse_id(membership_id, field="membership")).first()
    if m is None:
        raise NotFound(f"unknown membership {membership_id}", field="membership")
    ensure_may_manage_roles(actor, practice_id=m.practice_id, user_id=m.user_id)
    lock(practices=[m.practice_id])  # as in membership_grant
    ensure_may_manage_roles(actor, practice_id=m.practice_id, user_id=m.user_id)
    m = lock(memberships=[m.pk], missing_ok=("memberships",)).memberships.get(m.pk)
    if m is None:
        return
    m._history_user, m._change_reason = actor, reason  # the deletion's history row names them
    m.delete()
