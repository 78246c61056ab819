"""The portal's own writes (issue 13; docs/portal.md): access (invite, disable), statements and
their guest-pay codes, the guest-pay check of a statement code and date of birth, the log of
portal events, and the one-time keys of money forms. Money moves only through the credits
services (payment_checkout, credit_purchase, refund_request, payment_record) and the adjudication
election (case_record_election), which the portal's views call with the patient as the actor."""

import logging
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Exists, Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from credits.selectors import patient_owes
from credits.services import payment_record
from ledger.access import ensure_staff, system_user
from ledger.errors import Duplicate, InvalidInput, NotFound, RuleViolation
from ledger.history import save_with_history
from ledger.inputs import parse_id, require_reason
from ledger.locks import lock
from ledger.models import Membership, Patient, Payment
from ledger.money import positive_money
from portal.models import PortalEvent, PortalSubmission, Statement

log = logging.getLogger("portal")

CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L: read off paper without mistakes
CODE_LENGTH = 8


class PortalTokenGenerator(PasswordResetTokenGenerator):
    """The one-time, expiring link of an invitation or a password reset: valid for
    PASSWORD_RESET_TIMEOUT (SETTLE_PORTAL_LINK_HOURS), spent once the password is set (the token
    hashes the password, the last login and whether the login is active)."""

    key_salt = "settle.portal.PortalTokenGenerator"


portal_tokens = PortalTokenGenerator()


def event_record(*, patient, kind: str, detail: str = "", actor=None, ip: str | None = None) -> PortalEvent:
    return PortalEvent.objects.create(practice_id=patient.practice_id, patient=patient, kind=kind, detail=detail,
                                      actor=actor if getattr(actor, "pk", None) else None, ip_address=ip or None)


def portal_link(path: str) -> str:
    return settings.SETTLE_SITE_URL.rstrip("/") + path


def access_link(user) -> str:
    """The link that sets the portal password (invitation and reset alike)."""
    return portal_link(reverse("portal:activate", args=[urlsafe_base64_encode(force_bytes(user.pk)),
                                                        portal_tokens.make_token(user)]))


def patient_for_user(user) -> Patient | None:
    """The patient a portal login belongs to (None for staff, an anonymous visitor or a disabled login)."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return None
    if user.is_staff or user.is_superuser:
        return None
    # a login with a staff role in any practice is never a patient's (one query: the role is a NOT EXISTS)
    return (Patient.objects.select_related("practice").filter(user_id=user.pk)
            .filter(~Exists(Membership.objects.filter(user_id=user.pk))).first())


def _staff_patient(patient_id, actor) -> Patient:
    patient_id = parse_id(patient_id, field="patient")
    row = Patient.objects.filter(pk=patient_id).only("pk", "practice_id").first()
    if row is None:
        raise NotFound(f"unknown patient {patient_id}", field="patient")
    ensure_staff(actor, row.practice_id)
    return lock(patients=[row.pk], select_related={"patients": ["practice", "user"]}).patients[row.pk]


@dataclass
class Invitation:
    patient: Patient
    user: object
    link: str


def portal_invite(*, patient_id, actor, reason: str = "Portal invitation") -> Invitation:
    """Invite a patient to the portal, or send the link again (staff of the practice): their login
    is their e-mail address; the e-mail carries a one-time link to set a password, which also
    verifies the address. A disabled login is enabled again by a new invitation. A login of staff
    never becomes a patient's (patients can never reach the admin)."""
    reason = require_reason(reason)
    with transaction.atomic(durable=True):
        patient = _staff_patient(patient_id, actor)
        email = (patient.email or "").strip().lower()
        if not email:
            raise InvalidInput("the patient has no e-mail address: add one on the patient's record first",
                               field="email")
        User = get_user_model()
        other = User.objects.filter(Q(username__iexact=email) | Q(email__iexact=email)).exclude(
            pk=patient.user_id).first()
        if other is not None:
            raise Duplicate(f"{email} is already the login of someone else; each portal login needs its own "
                            "e-mail address", field="email")
        user = patient.user
        if user is not None and (user.is_staff or user.is_superuser
                                 or Membership.objects.filter(user_id=user.pk).exists()):
            raise RuleViolation("this patient's login is a staff login; a patient's portal login is their own",
                                field="user")
        again = user is not None
        if user is None:
            user = User(username=email, email=email, first_name=patient.first_name, last_name=patient.last_name)
            user.set_unusable_password()
            user.save()
            patient.user = user
            save_with_history(patient, actor=actor, reason=f"Portal access: {reason}")
        else:
            user.username, user.email, user.is_active = email, email, True
            user.save(update_fields=["username", "email", "is_active"])
        link = access_link(user)
        event_record(patient=patient, kind=PortalEvent.Kind.INVITED, actor=actor,
                     detail=f"{'Link sent again' if again else 'Invitation'} to {email}: {reason}")
        body = render_to_string("portal/email/invite.txt", {"patient": patient, "link": link,
                                                            "hours": settings.PASSWORD_RESET_TIMEOUT // 3600})
        subject = f"{patient.practice.name}: your patient portal"
        transaction.on_commit(lambda: _mail(subject, body, email, patient.pk))
    return Invitation(patient=patient, user=user, link=link)


def _mail(subject: str, body: str, to: str, patient_id: int) -> None:
    try:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [to], fail_silently=False)
    except Exception:  # any transport error: logged for the operator; staff can send the link again
        log.exception("portal e-mail to patient %s was not sent", patient_id)


def portal_disable(*, patient_id, actor, reason: str) -> Patient:
    """Staff turn a patient's portal access off: the login stops working at once (its sessions
    with it); a new invitation turns it on again."""
    reason = require_reason(reason)
    with transaction.atomic(durable=True):
        patient = _staff_patient(patient_id, actor)
        if patient.user is None or not patient.user.is_active:
            raise RuleViolation("the patient has no active portal access", field="patient")
        patient.user.is_active = False
        patient.user.save(update_fields=["is_active"])
        event_record(patient=patient, kind=PortalEvent.Kind.DISABLED, actor=actor, detail=reason)
    return patient


def portal_status(patient: Patient) -> str:
    """In plain words, for the patient page."""
    user = patient.user
    if user is None:
        return "not invited"
    if not user.is_active:
        return "disabled"
    if not user.has_usable_password():
        return "invited, password not set yet"
    return "active" + (f", last sign-in {timezone.localtime(user.last_login):%m/%d/%Y %H:%M}" if user.last_login
                       else "")


# --- statements and guest pay ----------------------------------------------------------------------

def normalise_code(value) -> str:
    code = "".join(ch for ch in str(value or "").upper() if ch.isalnum())
    if len(code) != CODE_LENGTH or any(ch not in CODE_ALPHABET for ch in code):
        raise InvalidInput("the statement code is the 8 letters and digits printed on the statement (XXXX-XXXX)",
                           field="code")
    return code


def statement_issue(*, patient_id, actor, reason: str = "Statement") -> Statement:
    """A statement of account for the patient, with a new guest-pay code (staff of the practice)."""
    reason = require_reason(reason)
    with transaction.atomic(durable=True):
        patient = _staff_patient(patient_id, actor)
        owes = patient_owes(patient.pk)
        for _ in range(5):
            code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
            try:
                with transaction.atomic():
                    st = Statement.objects.create(practice_id=patient.practice_id, patient=patient, code=code,
                                                  issued_by=actor, due_now=owes.due_now,
                                                  pending_payer=owes.pending_payer,
                                                  credits_on_hand=owes.available + owes.locked_held)
                break
            except IntegrityError:  # the code is taken (about one chance in 10^11): draw again
                continue
        else:
            raise RuleViolation("no free statement code was found; try again")
        event_record(patient=patient, kind=PortalEvent.Kind.STATEMENT_ISSUED, actor=actor,
                     detail=f"Statement {st.display_code}, {owes.due_now:,.2f} due: {reason}")
    return st


class GuestLocked(RuleViolation):
    code = "guest_locked"


def guest_statement_open(*, code, date_of_birth, ip: str | None = None) -> Statement:
    """Guest pay (rule 23, example P): the statement whose code is given, when the date of birth is
    the patient's. SETTLE_GUEST_PAY_FAILURE_LIMIT wrong dates of birth in a row lock guest pay for
    that statement for SETTLE_GUEST_PAY_LOCKOUT_MINUTES (logged, and a portal event); while locked,
    even the right date of birth is refused. An unknown code and a wrong date of birth get the same
    answer, so the form does not tell which codes exist."""
    code = normalise_code(code)
    if date_of_birth is None:
        raise InvalidInput("enter the patient's date of birth", field="date_of_birth")
    refused = None
    with transaction.atomic(durable=True):
        row = Statement.objects.filter(code=code).only("pk").first()
        if row is None:
            refused = NotFound("no statement matches this code and date of birth", field="code")
        else:
            st = lock(statements=[row.pk], select_related={"statements": ["patient", "practice"]}).statements[row.pk]
            now = timezone.now()
            if st.guest_locked_until and st.guest_locked_until > now:
                minutes = max(1, -(-int((st.guest_locked_until - now).total_seconds()) // 60))
                refused = GuestLocked(f"guest pay for this statement is locked after too many wrong dates of birth; "
                                      f"try again in {minutes} minute{'s' if minutes != 1 else ''}, or call the "
                                      "practice", field="code")
            elif st.patient.date_of_birth != date_of_birth:
                st.guest_failures += 1
                limit = settings.SETTLE_GUEST_PAY_FAILURE_LIMIT
                if st.guest_failures >= limit:
                    st.guest_locked_until = now + timedelta(minutes=settings.SETTLE_GUEST_PAY_LOCKOUT_MINUTES)
                    st.guest_failures = 0
                    event_record(patient=st.patient, kind=PortalEvent.Kind.GUEST_LOCKED, ip=ip,
                                 detail=f"Statement {st.display_code}: {limit} wrong dates of birth in a row; "
                                        f"locked until {timezone.localtime(st.guest_locked_until):%m/%d/%Y %H:%M}")
                    log.warning("guest pay locked: statement %s (patient %s) after %s wrong dates of birth, from %s",
                                st.display_code, st.patient_id, limit, ip)
                else:
                    event_record(patient=st.patient, kind=PortalEvent.Kind.GUEST_FAILED, ip=ip,
                                 detail=f"Statement {st.display_code}: wrong date of birth "
                                        f"({st.guest_failures} in a row)")
                st.save(update_fields=["guest_failures", "guest_locked_until"])
                refused = NotFound("no statement matches this code and date of birth", field="date_of_birth")
            else:
                st.guest_failures = 0
                st.save(update_fields=["guest_failures"])
                event_record(patient=st.patient, kind=PortalEvent.Kind.GUEST_OPENED, ip=ip,
                             detail=f"Statement {st.display_code}")
    if refused is not None:  # raised after the commit: the failure count and the lock are kept
        raise refused
    return st


def guest_pay(*, statement_id: int, amount, card_token: str, ip: str | None = None):
    """A guest pays (part of) what the statement's patient owes now, by card through the processor;
    the payment pays the oldest balances first. Not more than is due now. The acting user is the
    system's (a guest is nobody's login); the reason and a portal event name the statement."""
    st = Statement.objects.select_related("patient").filter(pk=parse_id(statement_id, field="statement")).first()
    if st is None:
        raise NotFound(f"unknown statement {statement_id}", field="statement")
    amount = positive_money(amount, field="amount")
    due = patient_owes(st.patient_id).due_now
    if due <= 0:
        raise RuleViolation("nothing is owed on this account now; thank you", field="amount")
    if amount > due:
        raise InvalidInput(f"{amount:,.2f} is more than the {due:,.2f} owed now", field="amount")
    result = payment_record(patient_id=st.patient_id, amount=amount, channel=Payment.Channel.PORTAL,
                            actor=system_user(), reason=f"Guest payment of statement {st.display_code}",
                            card_token=card_token, note=f"Guest pay, statement {st.display_code}")
    event_record(patient=st.patient, kind=PortalEvent.Kind.GUEST_PAID, ip=ip,
                 detail=f"Statement {st.display_code}: paid {amount:,.2f} (payment {result.payment.pk})")
    return result


# --- one-time keys of money forms -------------------------------------------------------------------

def new_form_key() -> str:
    return secrets.token_urlsafe(24)


def submission_claim(*, key: str, patient: Patient, kind: str) -> tuple[PortalSubmission, bool]:
    """(submission, True) when this request is the first with `key` and runs the service; else the
    submission already made with it (a double click) and False. A key belongs to one patient."""
    key = (key or "").strip()
    if not 16 <= len(key) <= 64:
        raise InvalidInput("the form has expired; open the page again", field="form_key")
    try:
        with transaction.atomic():
            return PortalSubmission.objects.create(key=key, patient=patient, kind=kind), True
    except IntegrityError:
        sub = PortalSubmission.objects.filter(key=key, patient=patient, kind=kind).first()
        if sub is None:
            raise Duplicate("this form was already used; open the page again", field="form_key") from None
        return sub, False


def submission_finish(sub: PortalSubmission, *, result_url: str = "", error: str = "", payment=None,
                      detail: dict | None = None) -> None:
    """The outcome of the first request with the key: the result page, or the error; the card
    payment it made and what it did (`detail`, for the receipt)."""
    sub.state = PortalSubmission.State.FAILED if error else PortalSubmission.State.DONE
    sub.result_url, sub.error, sub.finished_at = result_url, error, timezone.now()
    fields = ["state", "result_url", "error", "finished_at"]
    if payment is not None:
        sub.payment = payment
        fields.append("payment")
    if detail is not None:
        sub.detail = detail
        fields.append("detail")
    sub.save(update_fields=fields)


def submission_wait(sub: PortalSubmission, *, seconds: float = 20.0) -> PortalSubmission:
    """The first request's outcome, waiting for it while it still runs (a double click); a
    submission still running after `seconds` is returned as it is (the page says so)."""
    deadline = time.monotonic() + seconds
    while sub.state == PortalSubmission.State.RUNNING and time.monotonic() < deadline:
        time.sleep(0.2)
        sub.refresh_from_db()
    return sub
