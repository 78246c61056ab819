"""Portal accounts (rule 23; docs/portal.md "Accounts"): signing in by e-mail and password (counted
by django-axes like the admin login), the one-time sign-in code a practice may ask for, the
password-reset request, setting the password from an invitation or reset link (which also verifies
the e-mail address), and signing out."""

from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import authenticate, get_user_model, login, logout
from django.shortcuts import redirect
from django.urls import NoReverseMatch, path, reverse
from django.utils.encoding import force_str
from django.utils.http import url_has_allowed_host_and_scheme, urlsafe_base64_decode
from django.views.decorators.http import require_http_methods, require_POST

from ledger.errors import SettleError
from ledger.models import Patient
from portal.access import SESSION_CODE_OK, session_expired, start_session
from portal.accounts import (
    WRONG_LOGIN,
    CodeRefused,
    code_check,
    code_locked_minutes,
    code_send,
    password_reset_send,
    portal_patient,
)
from portal.forms_account import CodeForm, NewPasswordForm, ResetForm, SignInForm
from portal.models import PortalEvent
from portal.services import event_record, portal_tokens
from portal.views_common import client_ip, render_portal


def home_url() -> str:
    try:
        return reverse("portal:home")
    except NoReverseMatch:
        return "/portal/"


def safe_next(request, value) -> str:
    """`value` when it is a local URL of this site, else the portal's home."""
    value = (value or "").strip()
    if value and url_has_allowed_host_and_scheme(value, allowed_hosts={request.get_host()},
                                                 require_https=request.is_secure()):
        return value
    return home_url()


def _signed_in_patient(request):
    """The patient of this session's portal login, if the session is still within its hours."""
    patient = portal_patient(request.user)
    return patient if patient is not None and not session_expired(request) else None


@require_http_methods(["GET", "POST"])
def sign_in(request):
    """E-mail and password. A staff login, a login with no patient, an inactive login and a wrong
    password all get the same answer. While axes locks the address and login, its middleware answers
    with the lockout page (backoffice.login.lockout_response, 429)."""
    nxt = request.POST.get("next") if request.method == "POST" else request.GET.get("next")
    patient = _signed_in_patient(request)
    if request.method == "GET" and patient is not None:
        if patient.practice.portal_otp_required and not request.session.get(SESSION_CODE_OK):
            return redirect(reverse("portal:code") + "?" + urlencode({"next": safe_next(request, nxt)}))
        return redirect(safe_next(request, nxt))
    form = SignInForm(request.POST or None, initial={"next": nxt or ""})
    if request.method == "POST" and form.is_valid():
        email = form.cleaned_data["email"].strip().lower()
        user = authenticate(request, username=email, password=form.cleaned_data["password"])
        patient = portal_patient(user) if user is not None else None
        wait = code_locked_minutes(patient) if patient is not None and patient.practice.portal_otp_required else 0
        if patient is None:
            form.add_error("password", WRONG_LOGIN)
        elif wait:
            form.add_error(None, f"Too many wrong sign-in codes. Try again in {wait} minute{'s' if wait != 1 else ''}, "
                                 "or call the practice's billing office.")
        else:
            if request.user.is_authenticated:
                logout(request)  # another login in this browser: its session ends first
            login(request, user)
            otp = patient.practice.portal_otp_required
            start_session(request, code_ok=not otp)
            event_record(patient=patient, kind=PortalEvent.Kind.SIGNED_IN, actor=user, ip=client_ip(request),
                         detail="Signed in; sign-in code sent" if otp else "Signed in")
            target = safe_next(request, form.cleaned_data.get("next"))
            if otp:
                code_send(request, patient, ip=client_ip(request), force=True)
                return redirect(reverse("portal:code") + "?" + urlencode({"next": target}))
            return redirect(target)
    return render_portal(request, "account/login.html", {"form": form})


@require_http_methods(["GET", "POST"])
def sign_in_code(request):
    """The one-time code mailed after the password (when the practice asks for it)."""
    patient = _signed_in_patient(request)
    nxt = request.POST.get("next") if request.method == "POST" else request.GET.get("next")
    if patient is None:
        return redirect(reverse("portal:login") + "?" + urlencode({"next": safe_next(request, nxt)}))
    if request.session.get(SESSION_CODE_OK):
        return redirect(safe_next(request, nxt))
    form = CodeForm(request.POST or None, initial={"next": nxt or ""})
    if request.method == "POST":
        if "resend" in request.POST:
            try:
                code_send(request, patient, ip=client_ip(request))
                messages.success(request, f"We sent a new code to {patient.user.email}.")
                return redirect(reverse("portal:code") + "?" + urlencode({"next": safe_next(request, nxt)}))
            except SettleError as exc:
                form = CodeForm(initial={"next": nxt or ""})
                messages.error(request, _sentence(exc.message))
        elif form.is_valid():
            try:
                code_check(request, patient, form.cleaned_data["code"], ip=client_ip(request))
                return redirect(safe_next(request, form.cleaned_data.get("next")))
            except CodeRefused as exc:
                if exc.signed_out:
                    messages.error(request, _sentence(exc.message))
                    return redirect(reverse("portal:login") + "?" + urlencode({"next": safe_next(request, nxt)}))
                form.add_error("code", _sentence(exc.message))
    return render_portal(request, "account/code.html", {"form": form, "email": patient.user.email,
                                                       "minutes": settings.SETTLE_PORTAL_CODE_MINUTES},
                         practice=patient.practice)


@require_http_methods(["GET", "POST"])
def password_reset(request):
    """Ask for a link to set a new password. Always the same answer, account or not."""
    form = ResetForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        password_reset_send(form.cleaned_data["email"], ip=client_ip(request))
        return render_portal(request, "account/reset_sent.html",
                             {"hours": settings.PASSWORD_RESET_TIMEOUT // 3600})
    return render_portal(request, "account/reset.html", {"form": form})


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def _link_user(uidb64: str, token: str):
    try:
        user = get_user_model().objects.get(pk=int(force_str(urlsafe_base64_decode(uidb64))))
    except (TypeError, ValueError, OverflowError, get_user_model().DoesNotExist):
        return None
    return user if portal_tokens.check_token(user, token) else None


@require_http_methods(["GET", "POST"])
def activate(request, uidb64: str, token: str):
    """The invitation (or reset) link: a new password for the patient's login. The link works once."""
    user = _link_user(uidb64, token)
    patient = Patient.objects.select_related("practice").filter(user=user).first() if user else None
    if patient is None or user.is_staff or user.is_superuser:
        return render_portal(request, "account/link_invalid.html", status=400)
    form = NewPasswordForm(user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        first = not user.has_usable_password()
        form.save()
        event_record(patient=patient, kind=PortalEvent.Kind.ACTIVATED if first else PortalEvent.Kind.PASSWORD_RESET,
                     actor=user, ip=client_ip(request),
                     detail="Password set from the invitation; e-mail verified" if first else "Password reset")
        messages.success(request, "Your password is set. Sign in with your e-mail address and the new password.")
        return redirect("portal:login")
    return render_portal(request, "account/activate.html", {"form": form}, practice=patient.practice)


@require_POST
def sign_out(request):
    patient = portal_patient(request.user)
    if patient is not None:
        event_record(patient=patient, kind=PortalEvent.Kind.SIGNED_OUT, actor=request.user, ip=client_ip(request))
    logout(request)
    messages.info(request, "You are signed out.")
    return redirect("portal:login")


urlpatterns = [
    path("login/", sign_in, name="login"),
    path("code/", sign_in_code, name="code"),
    path("password-reset/", password_reset, name="password_reset"),
    path("activate/<uidb64>/<token>/", activate, name="activate"),
    path("logout/", sign_out, name="logout"),
]
