"""The signed-in patient's money forms (issue 13, DOMAIN rules 7, 3, 8, 18 and 24; docs/portal.md):
pay with credits first and only the rest by card (example O), buy credits, ask for a refund of an
available credit (example Q) and see the refunds, answer an overpayment notice; guest pay is in
portal/views_guest.py. The views parse what was typed, call the services with the patient's own
login as the actor, and show the result; every rule is the services'.

Double-click safety: every money form carries a one-time key (portal.services.new_form_key); the
first request with a key runs the service, a second one waits for it and lands on the same result
(portal.services.submission_claim / submission_wait)."""

from datetime import date
from decimal import Decimal

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from adjudication.models import Case
from adjudication.services.core import money_left
from adjudication.services.notices import NOTICE_KINDS, case_record_election
from credits.models import Credit, Refund
from credits.selectors import payable_encounters
from credits.services import credit_purchase, credits_preselect, payment_checkout, refund_request
from ledger.errors import InvalidInput, SettleError
from ledger.models import Encounter, Payment
from ledger.money import ZERO, nonnegative_money
from portal import views_guest
from portal.access import own_or_404, patient_required
from portal.documents import checkout_receipt_pdf, credit_origin
from portal.forms import BuyForm, NoticeForm, RefundForm, add_service_error, card_choices, plain_message
from portal.models import PortalSubmission
from portal.selectors import open_notices
from portal.services import new_form_key, submission_claim, submission_finish, submission_wait
from portal.views_common import render_portal

PORTAL_REASON = "In the patient portal"


# --- plain words ---------------------------------------------------------------------------------

def _d(day) -> str:
    return f"{day:%m/%d/%Y}" if day else ""


def credit_words(c: Credit) -> str:
    """Where a credit came from (portal.documents.credit_origin, the words of the other pages) and,
    for a credit kept for a visit, which one."""
    words = credit_origin(c)
    if c.state == Credit.State.LOCKED and c.locked_encounter_id:
        words += f" Kept for your visit on {_d(c.locked_encounter.date_of_service)}."
    return words


def refund_status(r: Refund) -> str:
    """A refund's status in plain words (portal:refunds)."""
    if r.state == Refund.State.ISSUED:
        on = _d(timezone.localtime(r.issued_at))
        if r.method == Refund.Method.ORIGINAL_PAYMENT:
            return f"Sent back to your card on {on}"
        if r.method == Refund.Method.ACH:
            return f"Sent to your bank account on {on}"
        return f"A check was mailed on {on}"
    if r.state == Refund.State.REJECTED:
        return f"Declined: {r.decision_note}" if r.decision_note else "Declined"
    if r.state == Refund.State.REQUESTED:
        return "Waiting for approval"
    if r.method == Refund.Method.ORIGINAL_PAYMENT:
        return "Approved; it is being sent back to your card"
    if r.method == Refund.Method.ACH:
        return "Approved; it will be sent to your bank account"
    return "A check will be mailed"


# --- double-click safety -------------------------------------------------------------------------

def claimed_or_redirect(request, *, patient, kind: str, fallback: str):
    """(submission, None) when this request is the first with the form's key; otherwise
    (None, response): the first one's result page (after waiting for it), or the form again
    with the first one's error."""
    try:
        sub, first = submission_claim(key=request.POST.get("form_key", ""), patient=patient, kind=kind)
    except SettleError as exc:
        messages.error(request, plain_message(exc))
        return None, redirect(fallback)
    if first:
        return sub, None
    sub = submission_wait(sub)
    if sub.state == PortalSubmission.State.DONE and sub.result_url:
        return None, redirect(sub.result_url)
    if sub.state == PortalSubmission.State.FAILED:
        messages.error(request, sub.error or "That did not go through; please try again.")
    else:
        messages.warning(request, "Your payment is still being processed; look at your payments in a minute "
                                  "before trying again.")
    return None, redirect(fallback)


# --- pay (rule 7, example O) ---------------------------------------------------------------------

def _usable_credits(patient, visit_ids):
    """The patient's credits that can pay the visits on the page: available ones, and ones kept
    for one of those visits, oldest first (rule 6's order)."""
    qs = (Credit.objects.filter(patient_id=patient.pk, state__in=Credit.ON_HAND, on_hand__gt=0)
          .select_related("origin_encounter", "locked_encounter").order_by("created_at", "pk"))
    return [c for c in qs if c.state == Credit.State.AVAILABLE or c.locked_encounter_id in visit_ids]


def _ids(values) -> list[int]:
    out = []
    for v in values:
        try:
            out.append(int(v))
        except (TypeError, ValueError):
            out.append(-1)
    return out


@patient_required
@require_http_methods(["GET", "POST"])
def pay(request):
    patient = request.patient
    visits = list(payable_encounters(patient.pk))
    by_id = {e.pk: e for e in visits}
    credits = _usable_credits(patient, set(by_id))
    errors: dict[str, list[str]] = {}
    token = ""
    if request.method == "GET":
        chosen = [e.pk for e in visits]
        amounts = credits_preselect(patient_id=patient.pk, encounter_ids=chosen, partial=True) if chosen else {}
    else:
        chosen = _ids(request.POST.getlist("visit"))
        shown = _ids(x for x in request.POST.get("shown", "").split(",") if x)
        token = request.POST.get("card_token", "")
        if any(v not in by_id for v in chosen):
            errors.setdefault("visits", []).append("One of the visits chosen cannot be paid now; choose from the list.")
            chosen = [v for v in chosen if v in by_id]
        if "recalc" in request.POST and set(chosen) != set(shown):
            amounts = credits_preselect(patient_id=patient.pk, encounter_ids=chosen, partial=True) if chosen else {}
        else:
            amounts = {}
            for c in credits:
                raw = request.POST.get(f"credit_{c.pk}", "").replace("$", "").replace(",", "").strip()
                if not raw:
                    continue
                try:
                    amount = nonnegative_money(raw, field=f"credit_{c.pk}")
                except InvalidInput as exc:
                    errors.setdefault(f"credit_{c.pk}", []).append(plain_message(exc))
                    continue
                if amount > c.on_hand:  # said here in the patient's words; payment_checkout refuses it too
                    errors.setdefault(f"credit_{c.pk}", []).append(
                        f"This credit has ${c.on_hand:,.2f} on hand; you can use up to that.")
                elif amount > 0:
                    amounts[c.pk] = amount
    owed = sum((by_id[v].bal for v in chosen), ZERO)
    credit_total = sum(amounts.values(), ZERO)
    rest = max(owed - credit_total, ZERO)
    if request.method == "POST" and "recalc" not in request.POST and not errors:
        if not chosen:
            errors.setdefault("visits", []).append("Choose at least one visit to pay.")
        elif rest > 0 and token not in dict(card_choices()):
            errors.setdefault("card_token", []).append("Choose the card to pay the rest with.")
        else:
            response = _pay_run(request, patient, chosen, amounts, token, errors)
            if response is not None:
                return response
    rows = [{"credit": c, "words": credit_words(c), "value": amounts.get(c.pk, ""),
             "name": f"credit_{c.pk}", "errors": errors.get(f"credit_{c.pk}", [])} for c in credits]
    for row in rows:
        if row["value"] == "" and request.method == "POST" and row["errors"]:
            row["value"] = request.POST.get(row["name"], "")
    return render_portal(request, "money/pay.html", {
        "visits": [{"e": e, "checked": e.pk in chosen} for e in visits], "credits": rows, "owed": owed,
        "credit_total": credit_total, "rest": rest, "errors": errors, "shown": ",".join(map(str, sorted(chosen))),
        "cards": card_choices(), "token": token, "form_key": new_form_key(),
        "has_errors": bool(errors)}, status=400 if errors else 200)


PAY_FIELDS = {"credit_amounts": "credits", "encounter_ids": "visits", "card_token": "card_token"}


def _pay_run(request, patient, chosen, amounts, token, errors):
    sub, response = claimed_or_redirect(request, patient=patient, kind="pay", fallback=reverse("portal:pay"))
    if response is not None:
        return response
    try:
        result = payment_checkout(patient_id=patient.pk, encounter_ids=chosen, credit_amounts=amounts,
                                  channel=Payment.Channel.PORTAL, actor=request.user, card_token=token or None,
                                  reason=f"Payment {PORTAL_REASON.lower()}")
    except SettleError as exc:
        submission_finish(sub, error=plain_message(exc))
        field = PAY_FIELDS.get(exc.field, "credits" if (exc.field or "").startswith("credit") else "form")
        errors.setdefault(field, []).append(plain_message(exc))
        return None
    credits = {c.pk: c for c in Credit.objects.filter(pk__in=[a.credit_id for a in result.applications
                                                              if a.credit_id]).select_related(
        "origin_encounter", "locked_encounter")}
    after = {e.pk: e.bal for e in Encounter.objects.filter(pk__in=chosen).with_balance()}
    detail = {
        "kind": "pay", "owed": str(result.owed), "charged": str(result.charged),
        "credits": [{"credit": a.credit_id, "words": credit_words(credits[a.credit_id]),
                     "visit": str(a.encounter.date_of_service), "amount": str(a.amount)}
                    for a in result.applications if a.credit_id],
        "visits": [{"date": str(e.date_of_service), "amount": str(sum((a.amount for a in result.applications
                                                                       if a.encounter_id == e.pk), ZERO)),
                    "balance": str(after.get(e.pk, ZERO))}
                   for e in sorted(Encounter.objects.filter(pk__in=chosen), key=lambda e: (e.date_of_service, e.pk))],
    }
    url = reverse("portal:receipt", args=[sub.key])
    submission_finish(sub, result_url=url, payment=result.payment, detail=detail)
    return redirect(url)


@patient_required
@require_http_methods(["GET"])
def receipt(request, key: str):
    sub = (PortalSubmission.objects.filter(key=key, patient_id=request.patient.pk, kind__in=("pay", "buy"),
                                           state=PortalSubmission.State.DONE).select_related("payment").first())
    if sub is None:
        raise Http404("not found")
    d = sub.detail or {}
    used = [{**x, "amount": Decimal(x["amount"]), "day": date.fromisoformat(x["visit"])} for x in d.get("credits", [])]
    return render_portal(request, "money/receipt.html", {
        "sub": sub, "d": d, "charged": Decimal(d.get("charged", "0")), "owed": Decimal(d.get("owed", "0")),
        "credits": used, "credits_total": sum((x["amount"] for x in used), ZERO),
        "visits": [{**x, "amount": Decimal(x["amount"]), "balance": Decimal(x["balance"]),
                    "day": date.fromisoformat(x["date"])} for x in d.get("visits", [])],
        "bought": Decimal(d["bought"]) if d.get("bought") else None,
        "for_visit": date.fromisoformat(d["for_visit"]) if d.get("for_visit") else None,
        "pdf_url": receipt_pdf_url(sub)})


def receipt_pdf_url(sub) -> str:
    return reverse("portal:receipt_key_pdf", args=[sub.key]) if sub.kind == "pay" else ""


@patient_required
@require_http_methods(["GET"])
def receipt_pdf(request, key: str):
    sub = PortalSubmission.objects.filter(key=key, patient_id=request.patient.pk, kind="pay",
                                          state=PortalSubmission.State.DONE).select_related("payment").first()
    if sub is None:
        raise Http404("not found")
    response = HttpResponse(checkout_receipt_pdf(request.patient, sub), content_type="application/pdf")
    response["Content-Disposition"] = f'inline; filename="receipt-{timezone.localtime(sub.created_at):%Y-%m-%d}.pdf"'
    return response


# --- buy credits (rule 3, "purchased") -------------------------------------------------------------

BUY_FIELDS = {"encounter": "visit", "card_token": "card_token", "amount": "amount"}


@patient_required
@require_http_methods(["GET", "POST"])
def buy(request):
    patient = request.patient
    visits = list(Encounter.objects.filter(patient_id=patient.pk).owing())
    if request.method == "GET":
        form = BuyForm(visits=visits, initial={"card_token": "", "form_key": new_form_key()})
    else:
        form = BuyForm(request.POST, visits=visits)
        if form.is_valid():
            sub, response = claimed_or_redirect(request, patient=patient, kind="buy", fallback=reverse("portal:buy"))
            if response is not None:
                return response
            visit = int(form.cleaned_data["visit"]) if form.cleaned_data["visit"] else None
            try:
                result = credit_purchase(patient_id=patient.pk, amount=form.cleaned_data["amount"],
                                         channel=Payment.Channel.PORTAL, actor=request.user, encounter_id=visit,
                                         card_token=form.cleaned_data["card_token"],
                                         reason=f"Credits bought {PORTAL_REASON.lower()}")
            except SettleError as exc:
                submission_finish(sub, error=plain_message(exc))
                add_service_error(form, exc, BUY_FIELDS)
            else:
                c = result.credits[0]
                enc = c.locked_encounter
                detail = {"kind": "buy", "bought": str(c.amount), "charged": str(result.payment.amount),
                          "for_visit": str(enc.date_of_service) if enc else ""}
                url = reverse("portal:receipt", args=[sub.key])
                submission_finish(sub, result_url=url, payment=result.payment, detail=detail)
                return redirect(url)
        form.data = form.data.copy()
        form.data["form_key"] = new_form_key()
    return render_portal(request, "money/buy.html", {"form": form}, status=400 if form.errors else 200)


# --- refunds (rule 8, example Q) -----------------------------------------------------------------

REFUND_FIELDS = {"credit": None, "method": None, "reason": "reason", "amount": "amount"}


@patient_required
@require_http_methods(["GET", "POST"])
def refund(request, pk: int):
    patient = request.patient
    credit = own_or_404(Credit.objects.select_related("payment", "origin_encounter", "locked_encounter"), patient, pk)
    refundable = credit.state == Credit.State.AVAILABLE and credit.on_hand > 0
    if request.method == "GET" or not refundable:
        form = RefundForm(initial={"amount": f"{credit.on_hand:.2f}", "form_key": new_form_key()})
    else:
        form = RefundForm(request.POST)
        if form.is_valid() and _more_than_on_hand(form.cleaned_data["amount"], credit):
            form.add_error("amount", f"That is more than the ${credit.on_hand:,.2f} on hand.")
        if form.is_valid():
            sub, response = claimed_or_redirect(request, patient=patient, kind="refund",
                                                fallback=reverse("portal:refund", args=[credit.pk]))
            if response is not None:
                return response
            try:
                r = refund_request(credit_id=credit.pk, amount=form.cleaned_data["amount"], actor=request.user,
                                   reason=form.cleaned_data["reason"])
            except SettleError as exc:
                submission_finish(sub, error=plain_message(exc))
                add_service_error(form, exc, REFUND_FIELDS)
            else:
                url = reverse("portal:refunds")
                submission_finish(sub, result_url=url, detail={"kind": "refund", "refund": r.pk})
                messages.success(request, f"Your refund request of ${r.amount:,.2f}: {refund_status(r)}.")
                return redirect(url)
        form.data = form.data.copy()
        form.data["form_key"] = new_form_key()
    return render_portal(request, "money/refund.html", {
        "credit": credit, "words": credit_words(credit), "form": form, "refundable": refundable,
        "to_card": credit.payment_id is not None and credit.payment.through_system},
        status=400 if form.errors else 200)


def _more_than_on_hand(raw: str, credit: Credit) -> bool:
    """The patient's words for refund_request's own check (which stays the rule)."""
    try:
        return nonnegative_money(raw) > credit.on_hand
    except InvalidInput:
        return False  # the service says what is wrong with it


@patient_required
@require_http_methods(["GET"])
def refunds(request):
    rows = (Refund.objects.filter(patient_id=request.patient.pk).select_related("credit")
            .order_by("-requested_at", "-pk"))
    return render_portal(request, "money/refunds.html", {
        "refunds": [{"r": r, "status": refund_status(r)} for r in rows],
        "refundable": Credit.objects.filter(patient_id=request.patient.pk, state=Credit.State.AVAILABLE,
                                            on_hand__gt=0).select_related("origin_encounter").order_by("created_at")})


# --- answering an overpayment notice (rule 18) ------------------------------------------------------

def _notice_case(patient, case_id) -> Case:
    return own_or_404(Case.objects.filter(kind__in=NOTICE_KINDS, notice_sent_on__isnull=False)
                      .select_related("credit", "encounter", "practice"), patient, case_id)


@patient_required
@require_http_methods(["GET", "POST"])
def notice(request, case_id: int):
    patient = request.patient
    case = _notice_case(patient, case_id)
    open_ids = {c.pk for c in open_notices(patient)}
    answerable = case.pk in open_ids and case.election != "keep"
    if request.method == "GET" or not answerable:
        form = NoticeForm(initial={"form_key": new_form_key()})
    else:
        form = NoticeForm(request.POST)
        if form.is_valid():
            sub, response = claimed_or_redirect(request, patient=patient, kind="notice",
                                                fallback=reverse("portal:notice", args=[case.pk]))
            if response is not None:
                return response
            election = form.cleaned_data["election"]
            try:
                case_record_election(case=case.pk, actor=request.user, election=election, via="portal",
                                     reason=form.cleaned_data["reason"].strip() or f"Answered {PORTAL_REASON.lower()}")
            except SettleError as exc:
                submission_finish(sub, error=plain_message(exc))
                add_service_error(form, exc, {"case": None})
            else:
                url = reverse("portal:notice", args=[case.pk])
                submission_finish(sub, result_url=url, detail={"kind": "notice", "election": election})
                messages.success(request, "Thank you: " + ("the practice will send the money back to you."
                                                           if election == "refund" else
                                                           "the money stays on your account as a credit."))
                return redirect(url)
        form.data = form.data.copy()
        form.data["form_key"] = new_form_key()
    letter = case.notices.order_by("sent_on", "pk").first()
    return render_portal(request, "money/notice.html", {
        "case": case, "form": form, "answerable": answerable, "amount": money_left(case), "why": notice_why(case),
        "deadline": case.due_on, "letter": letter}, status=400 if form.errors else 200)


def notice_why(case: Case) -> str:
    if case.kind == Case.Kind.ENCOUNTER and case.encounter_id:
        return f"Your visit on {_d(case.encounter.date_of_service)} was paid more than it cost."
    if case.credit_id:
        return credit_words(case.credit)
    return "Your account holds money that is yours."


@patient_required
@require_http_methods(["GET"])
def notice_letter(request, case_id: int):
    case = _notice_case(request.patient, case_id)
    letter = case.notices.order_by("-sent_on", "-pk").first()
    if letter is None or not letter.letter:
        raise Http404("not found")
    with letter.letter.open("rb") as fh:
        data = fh.read()
    response = HttpResponse(data, content_type="application/pdf")
    response["Content-Disposition"] = f'inline; filename="notice-{letter.sent_on:%Y-%m-%d}.pdf"'
    return response


urlpatterns = [
    path("pay/", pay, name="pay"),
    path("buy/", buy, name="buy"),
    path("receipts/<str:key>/", receipt, name="receipt"),
    path("receipts/<str:key>/receipt.pdf", receipt_pdf, name="receipt_key_pdf"),
    path("credits/<int:pk>/refund/", refund, name="refund"),
    path("refunds/", refunds, name="refunds"),
    path("notices/<int:case_id>/", notice, name="notice"),
    path("notices/<int:case_id>/letter.pdf", notice_letter, name="notice_letter"),
    *views_guest.urlpatterns,
]
