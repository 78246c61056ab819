"""Who may see a portal page (rule 23): a signed-in patient, only their own account. A page
decorated with `patient_required` gets `request.patient` (with its practice); everything it shows
is looked up through that patient (`own_or_404`), so another patient's id in a URL is a 404.

Sessions: a portal sign-in records when it happened (`SESSION_SIGNED_IN`) and, when the practice
asks for a one-time code, whether the code was given (`SESSION_CODE_OK`). A session ends after
SETTLE_PORTAL_IDLE_MINUTES without a request, and SETTLE_PORTAL_SESSION_HOURS after the sign-in
whatever happens."""

import time
from functools import wraps
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth import logout
from django.http import Http404
from django.shortcuts import redirect
from django.urls import reverse

from portal.services import patient_for_user

SESSION_SIGNED_IN = "portal_signed_in_at"
SESSION_CODE_OK = "portal_code_ok"
SESSION_GUEST = "portal_guest"  # {"statement": id, "until": epoch seconds}: a guest who opened a statement


def start_session(request, *, code_ok: bool) -> None:
    """After a successful sign-in (password, and the code when the practice asks for one)."""
    request.session[SESSION_SIGNED_IN] = int(time.time())
    request.session[SESSION_CODE_OK] = code_ok
    request.session.set_expiry(settings.SETTLE_PORTAL_IDLE_MINUTES * 60)


def session_expired(request) -> bool:
    started = request.session.get(SESSION_SIGNED_IN)
    return started is None or time.time() - started > settings.SETTLE_PORTAL_SESSION_HOURS * 3600


def login_url(request) -> str:
    return reverse("portal:login") + "?" + urlencode({"next": request.get_full_path()})


def patient_required(view):
    """The signed-in patient's own pages. Not signed in, a staff login, an expired session or a
    sign-in code still owed: to the sign-in page (or the code page)."""
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        patient = patient_for_user(request.user)
        if patient is None or session_expired(request):
            if request.user.is_authenticated and patient is not None:
                logout(request)  # the session outlived SETTLE_PORTAL_SESSION_HOURS
            return redirect(login_url(request))
        if patient.practice.portal_otp_required and not request.session.get(SESSION_CODE_OK):
            return redirect(reverse("portal:code") + "?" + urlencode({"next": request.get_full_path()}))
        request.session.set_expiry(settings.SETTLE_PORTAL_IDLE_MINUTES * 60)  # idle clock restarts
        request.session.modified = True
        request.patient = patient
        return view(request, *args, **kwargs)
    return wrapper


def own_or_404(queryset, patient, pk):
    """The row `pk` of `queryset` if it is the patient's; otherwise a 404 (never a 403: another
    patient's ids are not acknowledged to exist)."""
    try:
        pk = int(pk)
    except (TypeError, ValueError):
        raise Http404("not found") from None
    obj = queryset.filter(pk=pk, patient_id=patient.pk).first()
    if obj is None:
        raise Http404("not found")
    return obj


def guest_statement_id(request) -> int | None:
    """The statement a guest opened in this browser (valid SETTLE_GUEST_PAY_LOCKOUT_MINUTES)."""
    guest = request.session.get(SESSION_GUEST) or {}
    if not guest or guest.get("until", 0) < time.time():
        return None
    return guest.get("statement")


def guest_start(request, statement_id: int) -> None:
    request.session.cycle_key()
    request.session[SESSION_GUEST] = {"statement": statement_id,
                                      "until": int(time.time()) + settings.SETTLE_GUEST_PAY_LOCKOUT_MINUTES * 60}
