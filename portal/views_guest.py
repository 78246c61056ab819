"""Guest pay (DOMAIN rule 23, example P; docs/portal.md): someone with a paper statement pays it
without signing in, with the statement code and the patient's date of birth.

* In front of the form, a rate limit per address (Django's cache): at most
  SETTLE_GUEST_PAY_TRIES_PER_ADDRESS tries per SETTLE_GUEST_PAY_LOCKOUT_MINUTES from one address,
  whatever the codes tried.
* portal.services.guest_statement_open checks the code and the date of birth and keeps the
  statement's lock (5 wrong dates of birth in a row: 15 minutes, logged).
* The opened statement lives in the session (portal.access.guest_start) for
  SETTLE_GUEST_PAY_LOCKOUT_MINUTES; the pay page shows only the practice, the patient's first name
  and last initial and what is owed now per visit; portal.services.guest_pay takes the card
  payment (the system user as the actor, never more than is due now)."""

from datetime import date
from decimal import Decimal

from django.conf import settings
from django.contrib import messages
from django.core.cache import cache
from django.http import Http404
from django.shortcuts import redirect
from django.urls import path, reverse
from django.views.decorators.http import require_http_methods

from credits.selectors import patient_owes, payable_encounters
from ledger.errors import SettleError
from ledger.money import ZERO
from portal.access import guest_start, guest_statement_id
from portal.forms import GuestOpenForm, GuestPayForm, add_service_error, plain_message
from portal.models import PortalSubmission, Statement
from portal.services import guest_pay as guest_pay_service
from portal.services import guest_statement_open, new_form_key, submission_claim, submission_finish, submission_wait
from portal.views_common import client_ip, render_portal


def _too_many_tries(ip: str | None) -> bool:
    """Counts this try from the address; True once it is over the limit of the window."""
    key = f"portal:guest-tries:{ip or 'unknown'}"
    cache.add(key, 0, timeout=settings.SETTLE_GUEST_PAY_LOCKOUT_MINUTES * 60)
    try:
        tries = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, timeout=settings.SETTLE_GUEST_PAY_LOCKOUT_MINUTES * 60)
        tries = 1
    return tries > settings.SETTLE_GUEST_PAY_TRIES_PER_ADDRESS


@require_http_methods(["GET", "POST"])
def guest(request):
    if request.method == "GET":
        form = GuestOpenForm()
    else:
        form = GuestOpenForm(request.POST)
        ip = client_ip(request)
        if _too_many_tries(ip):
            form.is_valid()
            form.add_error(None, "Too many tries from this device. Please wait "
                                 f"{settings.SETTLE_GUEST_PAY_LOCKOUT_MINUTES} minutes, or call the practice.")
            return render_portal(request, "guest/start.html", {"form": form}, status=429)
        if form.is_valid():
            try:
                st = guest_statement_open(code=form.cleaned_data["code"],
                                          date_of_birth=form.cleaned_data["date_of_birth"], ip=ip)
            except SettleError as exc:
                add_service_error(form, exc)
            else:
                guest_start(request, st.pk)
                return redirect("portal:guest_pay")
    return render_portal(request, "guest/start.html", {"form": form}, status=400 if form.errors else 200)


def _guest_statement(request) -> Statement | None:
    sid = guest_statement_id(request)
    if sid is None:
        return None
    return Statement.objects.select_related("patient", "practice").filter(pk=sid).first()


@require_http_methods(["GET", "POST"])
def guest_pay(request):
    st = _guest_statement(request)
    if st is None:
        messages.info(request, "Enter the statement code and date of birth to pay a statement.")
        return redirect("portal:guest")
    due = patient_owes(st.patient_id).due_now
    if request.method == "GET":
        form = GuestPayForm(initial={"amount": f"{due:.2f}", "form_key": new_form_key()})
    else:
        form = GuestPayForm(request.POST)
        if form.is_valid():
            try:
                sub, first = submission_claim(key=form.cleaned_data["form_key"], patient=st.patient, kind="guest")
            except SettleError as exc:
                add_service_error(form, exc)
                sub, first = None, False
            if sub is not None and not first:
                sub = submission_wait(sub)
                if sub.state == PortalSubmission.State.DONE and sub.result_url:
                    return redirect(sub.result_url)
                form.add_error(None, sub.error or "Your payment is still being processed; please wait a minute.")
            elif sub is not None:
                try:
                    result = guest_pay_service(statement_id=st.pk, amount=form.cleaned_data["amount"],
                                               card_token=form.cleaned_data["card_token"], ip=client_ip(request))
                except SettleError as exc:
                    submission_finish(sub, error=plain_message(exc))
                    add_service_error(form, exc)
                else:
                    detail = {"kind": "guest", "statement": st.display_code, "amount": str(result.payment.amount),
                              "visits": [{"date": str(a.encounter.date_of_service), "amount": str(a.amount)}
                                         for a in result.applications],
                              "credit": str(sum((c.amount for c in result.credits), ZERO))}
                    url = reverse("portal:guest_receipt", args=[sub.key])
                    submission_finish(sub, result_url=url, payment=result.payment, detail=detail)
                    return redirect(url)
        form.data = form.data.copy()
        form.data["form_key"] = new_form_key()
    return render_portal(request, "guest/pay.html", {
        "st": st, "who": guest_name(st.patient), "due": due, "visits": list(payable_encounters(st.patient_id)),
        "form": form}, practice=st.practice, status=400 if form.errors else 200)


def guest_name(patient) -> str:
    """The first name and the last initial only: a guest sees no more of whose account it is."""
    return f"{patient.first_name} {patient.last_name[:1]}.".strip()


@require_http_methods(["GET"])
def guest_receipt(request, key: str):
    st = _guest_statement(request)
    sub = None
    if st is not None:
        sub = PortalSubmission.objects.filter(key=key, kind="guest", patient_id=st.patient_id,
                                              state=PortalSubmission.State.DONE).first()
    if sub is None:
        raise Http404("not found")
    d = sub.detail or {}
    return render_portal(request, "guest/receipt.html", {
        "st": st, "who": guest_name(st.patient), "d": d, "sub": sub, "amount": Decimal(d.get("amount", "0")),
        "credit": Decimal(d.get("credit", "0")),
        "visits": [{"day": date.fromisoformat(v["date"]), "amount": Decimal(v["amount"])}
                   for v in d.get("visits", [])]},
        practice=st.practice)


urlpatterns = [
    path("guest/", guest, name="guest"),
    path("guest/pay/", guest_pay, name="guest_pay"),
    path("guest/receipts/<str:key>/", guest_receipt, name="guest_receipt"),
]
