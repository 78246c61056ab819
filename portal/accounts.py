"""Portal sign-in rules (rule 23; docs/portal.md "Accounts"): who may sign in to the portal, the
one-time sign-in code a practice may ask for, and the password-reset e-mail.

The sign-in code: 6 digits drawn with `secrets`, mailed to the login's address, kept in the session
only as a keyed hash (salted_hmac with the login and the secret key), with its expiry
(SETTLE_PORTAL_CODE_MINUTES) and the tries left (SETTLE_PORTAL_CODE_ATTEMPTS; at zero the session
is signed out and the patient starts again). A new code at most once a minute (CODE_RESEND_SECONDS).
Starting again does not give an attacker who knows the password endless guesses: after
CODE_FAILURE_ROUNDS rounds of wrong codes within the login lockout time (AXES_COOLOFF_TIME), the
password no longer starts a sign-in until that time has passed (`code_locked_minutes`).

Password reset mails at most one link a minute per login (RESET_EVERY_SECONDS); the form answers
the same either way."""

import math
import secrets
import time
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model, logout
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac

from ledger.errors import InvalidInput, RuleViolation
from ledger.models import Membership, Patient
from portal.access import start_session
from portal.models import PortalEvent
from portal.services import _mail, access_link, event_record, patient_for_user

SESSION_CODE = "portal_code"  # {"hash", "expires", "tries", "sent"}
CODE_DIGITS = 6
CODE_RESEND_SECONDS = 60
CODE_FAILURE_ROUNDS = 2
RESET_EVERY_SECONDS = 60
WRONG_LOGIN = "The e-mail address or the password is not right."


def portal_patient(user) -> Patient | None:
    """The patient whose portal login `user` is; None for staff (is_staff, superuser, or anyone with a
    role in a practice), an inactive login, or a login with no patient."""
    patient = patient_for_user(user)
    if patient is None or Membership.objects.filter(user_id=user.pk).exists():
        return None
    return patient


def code_locked_minutes(patient) -> int:
    """Minutes until the patient's login may start a sign-in again after too many wrong codes (0: it may)."""
    since = timezone.now() - settings.AXES_COOLOFF_TIME
    limit = CODE_FAILURE_ROUNDS * settings.SETTLE_PORTAL_CODE_ATTEMPTS
    failures = list(PortalEvent.objects.filter(patient=patient, kind=PortalEvent.Kind.CODE_FAILED, at__gt=since)
                    .order_by("-at").values_list("at", flat=True)[:limit])
    if len(failures) < limit:
        return 0
    return max(1, math.ceil((failures[0] + settings.AXES_COOLOFF_TIME - timezone.now()).total_seconds() / 60))


class CodeRefused(InvalidInput):
    """A wrong or expired sign-in code; `signed_out` when no try is left."""

    def __init__(self, message, *, signed_out: bool = False):
        super().__init__(message, field="code")
        self.signed_out = signed_out


def _code_hash(user, code: str) -> str:
    return salted_hmac("settle.portal.sign-in-code", f"{user.pk}:{code}").hexdigest()


def code_send(request, patient, *, ip=None, force: bool = False) -> None:
    """Mail a new sign-in code to the patient (replacing any earlier one). Refused within a minute
    of the last one unless `force` (right after the password)."""
    state = request.session.get(SESSION_CODE) or {}
    wait = int(state.get("sent", 0) + CODE_RESEND_SECONDS - time.time())
    if not force and wait > 0:
        raise RuleViolation(f"a new code can be sent once a minute; wait {wait} second{'s' if wait != 1 else ''} "
                            "and try again", field="code")
    user = patient.user
    code = "".join(secrets.choice("0123456789") for _ in range(CODE_DIGITS))
    request.session[SESSION_CODE] = {"hash": _code_hash(user, code), "sent": int(time.time()),
                                     "expires": int(time.time()) + settings.SETTLE_PORTAL_CODE_MINUTES * 60,
                                     "tries": settings.SETTLE_PORTAL_CODE_ATTEMPTS}
    body = render_to_string("portal/email/code.txt", {"patient": patient, "code": code,
                                                      "minutes": settings.SETTLE_PORTAL_CODE_MINUTES})
    _mail(f"{patient.practice.name}: your sign-in code", body, user.email, patient.pk)
    event_record(patient=patient, kind=PortalEvent.Kind.CODE_SENT, actor=user, ip=ip,
                 detail=f"Sign-in code sent to {user.email}")


def code_check(request, patient, code, *, ip=None) -> None:
    """The code given matches the one mailed and is still valid: the session becomes a full portal
    session (with a new session key). Otherwise CodeRefused (a try is spent; the last one signs out)."""
    state = request.session.get(SESSION_CODE)
    entered = "".join(ch for ch in str(code or "") if ch.isdigit())
    if not state:
        raise CodeRefused("no sign-in code is waiting; send a new code")
    if state["expires"] < time.time():
        raise CodeRefused(f"this code has expired (a code works for {settings.SETTLE_PORTAL_CODE_MINUTES} minutes); "
                          "send a new code")
    if len(entered) == CODE_DIGITS and constant_time_compare(state["hash"], _code_hash(patient.user, entered)):
        del request.session[SESSION_CODE]
        request.session.cycle_key()
        start_session(request, code_ok=True)
        return
    tries = state["tries"] - 1
    event_record(patient=patient, kind=PortalEvent.Kind.CODE_FAILED, actor=patient.user, ip=ip,
                 detail=f"Wrong sign-in code; {tries} tr{'y' if tries == 1 else 'ies'} left")
    if tries <= 0:
        logout(request)
        raise CodeRefused("that code is not right, and no try is left: you are signed out. Sign in again to get a "
                          "new code", signed_out=True)
    request.session[SESSION_CODE] = {**state, "tries": tries}
    if not entered:
        raise CodeRefused(f"enter the 6-digit code from the e-mail ({tries} tr{'y' if tries == 1 else 'ies'} left)")
    raise CodeRefused(f"that code is not right; {tries} tr{'y' if tries == 1 else 'ies'} left")


def password_reset_send(email: str, *, ip=None) -> None:
    """Mail a password-reset link when `email` is the login of an active patient; nothing (and no
    sign of it) otherwise, so the form tells nobody who has an account."""
    email = (email or "").strip().lower()
    user = get_user_model().objects.filter(username=email, is_active=True).first() if email else None
    patient = portal_patient(user) if user is not None else None
    if patient is None:
        return
    recent = timezone.now() - timedelta(seconds=RESET_EVERY_SECONDS)
    if PortalEvent.objects.filter(patient=patient, kind=PortalEvent.Kind.RESET_SENT, at__gt=recent).exists():
        return  # one link a minute is enough; the form answers the same
    link = access_link(user)
    body = render_to_string("portal/email/reset.txt", {"patient": patient, "link": link,
                                                       "hours": settings.PASSWORD_RESET_TIMEOUT // 3600})
    _mail(f"{patient.practice.name}: reset your portal password", body, user.email, patient.pk)
    event_record(patient=patient, kind=PortalEvent.Kind.RESET_SENT, ip=ip, detail=f"Reset link sent to {user.email}")
