"""The admin back-office pages (issue 5) that are not plain lists: the patient page's sections, the
payment screen, the credit and write-off actions, 835 upload and the unmatched queue.

Each page is a view added to a ModelAdmin by `get_urls` (the mixins below), reached through
`admin_site.admin_view` (login, staff, CSRF). Rules every view follows:

* **Tenancy.** Objects are looked up within the user's practices (`in_scope_or_404`): another
  practice's patient, credit, write-off, file or claim by id is a 404; a staff user with no
  membership gets a 403.
* **Writes go through the services**, with `actor=request.user` and a reason, outside any
  transaction (these views are not wrapped in one; the services are durable transactions).
* **Refusals are shown on the form** (`run_service`): a `SettleError` on the field it names, a
  database rule above the form; never a server error.
"""

from django.contrib import messages
from django.http import HttpResponseRedirect
from django.urls import path, reverse

from backoffice import forms as f
from backoffice.views.common import (
    in_scope_or_404,
    money,
    patient_crumbs,
    patient_url,
    render_page,
    require_member,
    run_service,
)
from credits.models import Credit, ManualCreditRequest, Refund, WriteOff
from credits.selectors import patient_owes, payable_encounters, pending_payer_encounters
from credits.services import (
    credit_move,
    credit_remove,
    credits_apply,
    credits_preselect,
    credits_unlock,
    manual_credit_add,
    payment_checkout,
    payment_record,
    refund_options,
    refund_request,
    writeoff_create,
    writeoff_undo,
)
from ledger.models import Encounter, Patient
from ledger.money import ZERO

# --- the patient's pages ------------------------------------------------------------------------------------

class PatientPagesMixin:
    """For PatientAdmin: the payment screen and the credit, write-off and apply/unlock pages of
    one patient, under /admin/ledger/patient/<id>/..."""
    def backoffice_urls(self):
        wrap = self.admin_site.admin_view
        p = "<int:patient_id>/"
        return [
            path(p + "payment/", wrap(self.payment_view), name="ledger_patient_payment"),
            path(p + "apply-credits/", wrap(self.apply_credits_view), name="ledger_patient_apply_credits"),
            path(p + "unlock-credits/", wrap(self.unlock_all_view), name="ledger_patient_unlock_credits"),
            path(p + "credits/add/", wrap(self.credit_add_view), name="ledger_patient_credit_add"),
            path(p + "credits/<int:credit_id>/move/", wrap(self.credit_move_view), name="ledger_patient_credit_move"),
            path(p + "credits/<int:credit_id>/remove/", wrap(self.credit_remove_view),
                 name="ledger_patient_credit_remove"),
            path(p + "credits/<int:credit_id>/refund/", wrap(self.credit_refund_view),
                 name="ledger_patient_credit_refund"),
            path(p + "credits/<int:credit_id>/unlock/", wrap(self.credit_unlock_view),
                 name="ledger_patient_credit_unlock"),
            path(p + "dos/<int:encounter_id>/write-off/", wrap(self.writeoff_view), name="ledger_patient_writeoff"),
            path(p + "write-offs/<int:writeoff_id>/undo/", wrap(self.writeoff_undo_view),
                 name="ledger_patient_writeoff_undo"),
        ]

    # -- shared
    def _patient(self, request, patient_id) -> Patient:
        require_member(self, request)
        return in_scope_or_404(request, Patient.objects.select_related("practice"), pk=patient_id)

    def _credit(self, request, patient, credit_id) -> Credit:
        return in_scope_or_404(request, Credit.objects.select_related("locked_encounter", "payment", "practice"),
                               pk=credit_id, patient=patient)

    def _form_page(self, request, patient, form, *, title, intro="", summary=(), button="Save", tab="credits",
                   extra=None):
        return render_page(self, request, "admin/settle/form_page.html", title=title, crumbs=patient_crumbs(patient),
                           form=form, intro=intro, summary=summary, buttons=[("_save", button, "default")],
                           cancel_url=patient_url(patient.pk, tab), **(extra or {}))

    def _done(self, request, patient, message, tab="credits", level=messages.SUCCESS):
        self.message_user(request, message, level)
        return HttpResponseRedirect(patient_url(patient.pk, tab))

    @staticmethod
    def _credit_summary(c: Credit) -> list:
        rows = [("Credit", f"#{c.pk} · {c.get_source_display()} · {c.get_state_display()}"),
                ("Amount", money(c.amount)), ("On hand", money(c.on_hand))]
        if c.refund_hold:
            rows.append(("Held for refunds", money(c.refund_hold)))
        if c.locked_encounter_id:
            rows.append(("Locked to", f"DoS {c.locked_encounter.date_of_service:%m/%d/%Y}"))
        if c.payment_id:
            rows.append(("From payment", f"#{c.payment_id} {money(c.payment.amount)} "
                                         f"{c.payment.get_channel_display().lower()}"))
        return rows

    # -- payment screen (rule 7)
    def payment_view(self, request, patient_id):
        patient = self._patient(request, patient_id)
        # what is due now (payable DoS with a balance) apart from what is pending the payer: the same
        # definitions as the heading card and the lists (credits.selectors, ledger EncounterQuerySet)
        encounters = list(payable_encounters(patient.pk))
        payable_ids = [e.pk for e in encounters]
        pending = list(pending_payer_encounters(patient.pk))
        on_hand = list(Credit.objects.filter(patient=patient, state__in=Credit.ON_HAND, on_hand__gt=0)
                       .select_related("locked_encounter", "payment").order_by("created_at", "pk"))

        def chosen_dos(raw):
            try:
                wanted = {int(x) for x in raw}
            except (TypeError, ValueError):
                wanted = set()
            return [pk for pk in payable_ids if pk in wanted]

        if request.method == "POST":
            selected = chosen_dos(request.POST.getlist("dos"))
        elif "dos" in request.GET:
            selected = chosen_dos(request.GET.getlist("dos"))
        else:
            selected = payable_ids
        usable = [c.pk for c in on_hand if c.state == Credit.State.AVAILABLE or c.locked_encounter_id in selected]
        kwargs = dict(encounters=encounters, credits=on_hand, usable_ids=usable, pending=pending)
        preselect = credits_preselect(patient_id=patient.pk, encounter_ids=selected) if selected else {}
        owed = sum((e.bal for e in encounters if e.pk in selected), ZERO)
        usable_total = sum((c.on_hand for c in on_hand if c.pk in usable), ZERO)

        if request.method == "POST" and "_recalculate" not in request.POST:
            form = f.PaymentForm(request.POST, **kwargs)
            if form.is_valid():
                result = self._take_payment(request, patient, form, payment_checkout, payment_record)
                if result is not None:
                    return result
        else:
            initial = {"dos": selected, "apply_credits": bool(preselect),
                       "amount": owed - sum(preselect.values(), ZERO)}
            initial.update({f"credit_{cid}": amount for cid, amount in preselect.items()})
            if request.method == "POST":  # recalculating: keep what was typed besides the amounts
                for name in ("channel", "card_token", "processor_reference", "check_number", "reason", "hold_for"):
                    if name in request.POST:
                        initial[name] = request.POST.get(name)
            form = f.PaymentForm(initial=initial, **kwargs)
        enc_by_id = {e.pk: e for e in encounters}
        return render_page(
            self, request, "admin/settle/payment.html", title=f"Take a payment: {patient}",
            crumbs=patient_crumbs(patient), patient=patient, form=form, encounters=encounters, pending=pending,
            owed=owed, owes=patient_owes(patient.pk), preselect=preselect,
            preselected_total=sum(preselect.values(), ZERO),
            usable_total=usable_total, enough=bool(preselect) or not owed, selected=selected,
            dos_rows=[(e, pk in selected) for pk, e in enc_by_id.items()],
            cancel_url=patient_url(patient.pk),
        )

    def _take_payment(self, request, patient, form, payment_checkout, payment_record):
        data = form.cleaned_data
        common = dict(channel=data["channel"], actor=request.user, reason=data["reason"].strip(),
                      card_token=data.get("card_token", "").strip() or None,
                      processor_reference=data.get("processor_reference", "").strip(),
                      check_number=data.get("check_number", "").strip())
        fields = {"encounter_ids": "dos", "credit_amounts": "apply_credits", "encounter": "dos",
                  "patient": None}
        dos, credits, amount = data["dos"], data["credits"], data["amount"]
        channel = dict(f.PaymentForm.CHANNELS)[data["channel"]].lower()
        if dos and (credits or amount == data["rest"]):
            result = run_service(form, payment_checkout, fields=fields, patient_id=patient.pk, encounter_ids=dos,
                                 credit_amounts=credits, **common)
            if result is None:
                return None
            used = data["used"]
            parts = [f"credits applied {money(used)}"] if used else []
            parts.append(f"charged {money(result.charged)} by {channel}" if result.charged else "nothing charged")
            return self._done(request, patient, f"Payment of {money(result.owed)} taken: {', '.join(parts)}.",
                              tab="payments")
        encounter_id = dos[0] if len(dos) == 1 else (data.get("hold_for") if not dos else None)
        result = run_service(form, payment_record, fields=fields, patient_id=patient.pk, amount=amount,
                             encounter_id=encounter_id, **common)
        if result is None:
            return None
        applied = sum((a.amount for a in result.applications), ZERO)
        credit = sum((c.amount for c in result.credits), ZERO)
        parts = [f"applied {money(applied)} to balances"] if applied else []
        if credit:
            parts.append(f"{money(credit)} kept as a credit"
                         + (" locked to its date of service" if any(c.locked_encounter_id for c in result.credits)
                            else ""))
        return self._done(request, patient, f"Payment of {money(amount)} by {channel} recorded"
                          + (f": {', '.join(parts)}." if parts else "."), tab="payments")

    # -- apply and unlock (whole patient)
    def apply_credits_view(self, request, patient_id):
        patient = self._patient(request, patient_id)
        form = f.ReasonOnlyForm(request.POST or None, initial={"reason": "Applied by staff"})
        if request.method == "POST" and form.is_valid():
            result = run_service(form, credits_apply, patient_id=patient.pk, actor=request.user,
                                 reason=form.cleaned_data["reason"], respect_settings=False)
            if result is not None:
                if not result.total:
                    return self._done(request, patient, "Nothing to apply: no usable credit meets an open balance.",
                                      level=messages.WARNING)
                return self._done(request, patient, f"Applied {money(result.total)} of credits to open balances.",
                                  tab="dos")
        return self._form_page(
            request, patient, form, title="Apply credits now", button="Apply",
            intro="The patient's usable credits pay their open balances now (DOMAIN rule 6: for each date of "
                  "service, the credits locked to it first, then available credits; the practice's auto-apply "
                  "setting and the patient's exclusion are ignored).")

    def unlock_all_view(self, request, patient_id):
        patient = self._patient(request, patient_id)
        locked = list(Credit.objects.filter(patient=patient, state=Credit.State.LOCKED)
                      .select_related("locked_encounter").order_by("created_at"))
        form = f.ReasonOnlyForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            n = run_service(form, credits_unlock, patient_ids=[patient.pk], actor=request.user,
                            reason=form.cleaned_data["reason"])
            if n is not None:
                return self._done(request, patient, f"Credits unlocked: {n}.")
        summary = [(f"Credit #{c.pk}",
                    f"{money(c.on_hand)} locked to DoS {c.locked_encounter.date_of_service:%m/%d/%Y}") for c in locked]
        return self._form_page(request, patient, form, title="Unlock locked credits", button="Unlock",
                               summary=summary or [("Locked credits", "none")],
                               intro="These locked credits become available for any date of service of the "
                                     "patient (DOMAIN rule 5, e.g. when a payer will never answer).")

    # -- one credit
    def credit_add_view(self, request, patient_id):
        patient = self._patient(request, patient_id)
        encounters = list(Encounter.objects.filter(patient=patient).order_by("-date_of_service", "-pk"))
        form = f.CreditAddForm(request.POST or None, encounters=encounters)
        if request.method == "POST" and form.is_valid():
            d = form.cleaned_data
            c = run_service(form, manual_credit_add, patient_id=patient.pk, amount=d["amount"], reason=d["note"],
                            encounter_id=d["encounter"], actor=request.user)
            if isinstance(c, ManualCreditRequest):
                return self._done(request, patient, f"Manual credit #{c.pk} of {money(c.amount)} requested: with the "
                                  "patient's other manual and imported credits of the last "
                                  f"{patient.practice.approval_window_days} days it is above the practice's limit of "
                                  f"{money(patient.practice.manual_credit_approval_limit)} and waits for a manager's "
                                  "approval; nothing is credited until then.", level=messages.WARNING)
            if c is not None:
                return self._done(request, patient, f"Manual credit #{c.pk} of {money(c.amount)} added"
                                  + (" (locked)." if c.locked_encounter_id else " (available)."))
        practice = patient.practice
        return self._form_page(request, patient, form, title="Add a manual credit", button="Add credit",
                               summary=[("Approval", f"Manual credits of a patient above "
                                                     f"{money(practice.manual_credit_approval_limit)} over "
                                                     f"{practice.approval_window_days} days need a manager other "
                                                     "than you"),
                                        ("Maximum", f"{money(practice.max_operation_amount)} per operation")],
                               intro="A manual credit has no payment behind it: it can be refunded by check or ACH "
                                     "only (DOMAIN rule 3 and example F).")

    def credit_move_view(self, request, patient_id, credit_id):
        patient = self._patient(request, patient_id)
        c = self._credit(request, patient, credit_id)
        encounters = list(Encounter.objects.filter(patient=patient).order_by("-date_of_service", "-pk"))
        form = f.CreditMoveForm(request.POST or None, encounters=encounters, credit=c)
        if request.method == "POST" and form.is_valid():
            target = form.cleaned_data["target"] or None
            moved = run_service(form, credit_move, fields={"to_encounter": "target", "credit": None},
                                credit_id=c.pk, to_encounter_id=target, actor=request.user,
                                reason=form.cleaned_data["reason"])
            if moved is not None:
                where = "in the flexible pool"
                if moved.locked_encounter_id:
                    where = f"locked to DoS {moved.locked_encounter.date_of_service:%m/%d/%Y}"
                return self._done(request, patient, f"Credit #{c.pk} moved: now {where}.")
        return self._form_page(request, patient, form, title=f"Move credit #{c.pk}", button="Move",
                               summary=self._credit_summary(c),
                               intro="Move the credit to another date of service (locked to it) or to the flexible "
                                     "pool (available). It keeps its source, its first DoS and its payment "
                                     "(DOMAIN rule 10).")

    def credit_remove_view(self, request, patient_id, credit_id):
        patient = self._patient(request, patient_id)
        c = self._credit(request, patient, credit_id)
        form = f.CreditRemoveForm(request.POST or None, credit=c)
        if request.method == "POST" and form.is_valid():
            done = run_service(form, credit_remove, credit_id=c.pk, amount=form.cleaned_data["amount"],
                               actor=request.user, reason=form.cleaned_data["reason"])
            if done is not None:
                return self._done(request, patient,
                                  f"Removed {money(form.cleaned_data['amount'])} from credit #{c.pk}.")
        return self._form_page(request, patient, form, title=f"Remove credit #{c.pk}", button="Remove",
                               summary=self._credit_summary(c),
                               intro="Take (part of) the credit off the books with a written reason.")

    def credit_unlock_view(self, request, patient_id, credit_id):
        patient = self._patient(request, patient_id)
        c = self._credit(request, patient, credit_id)
        form = f.ReasonOnlyForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            n = run_service(form, credits_unlock, credit_ids=[c.pk], actor=request.user,
                            reason=form.cleaned_data["reason"])
            if n is not None:
                return self._done(request, patient, f"Credits unlocked: {n}." if n else
                                  f"Credit #{c.pk} is not locked: nothing unlocked.",
                                  level=messages.SUCCESS if n else messages.WARNING)
        return self._form_page(request, patient, form, title=f"Unlock credit #{c.pk}", button="Unlock",
                               summary=self._credit_summary(c),
                               intro="The credit becomes available for any date of service of the patient "
                                     "(DOMAIN rule 5).")

    def credit_refund_view(self, request, patient_id, credit_id):
        patient = self._patient(request, patient_id)
        c = self._credit(request, patient, credit_id)
        options = refund_options(c)
        form = f.RefundForm(request.POST or None, credit=c, options=options)
        if request.method == "POST" and form.is_valid():
            d = form.cleaned_data
            # the service decides: approval needed, or approved and issued at once (by the processor, or with
            # the check number / trace given), or approved and waiting for its reference
            r = run_service(form, refund_request, credit_id=c.pk, amount=d["amount"], method=d["method"],
                            actor=request.user, reason=d["reason"], reference=d["reference"])
            if r is not None:
                if r.state == Refund.State.REQUESTED:
                    return self._done(
                        request, patient, f"Refund #{r.pk} of {money(r.amount)} requested: with the patient's other "
                                          f"refunds of the last {patient.practice.approval_window_days} days it is "
                                          "above the practice's threshold of "
                                          f"{money(patient.practice.refund_approval_threshold)} and waits for a "
                                          "manager's approval.", tab="refunds")
                if r.state == Refund.State.ISSUED:
                    return self._done(request, patient, f"Refund #{r.pk} of {money(r.amount)} issued "
                                      f"({r.get_method_display().lower()}, reference {r.reference}).", tab="refunds")
                if r.issue_error:
                    self.message_user(request, f"Refund #{r.pk} is approved but was not issued: {r.issue_error}",
                                      messages.ERROR)
                    return HttpResponseRedirect(reverse("admin:credits_refund_issue", args=[r.pk]))
                return self._done(request, patient, f"Refund #{r.pk} of {money(r.amount)} approved; issue it when the "
                                  "check or transfer is made.", tab="refunds")
        summary = self._credit_summary(c)
        summary.append(("Refund options", f"Back to the original payment up to {money(options['system_limit'])}; "
                                          "or by check or ACH" if options["system"]
                        else f"Check or ACH only: {options['why_not']}"))
        summary.append(("Approval", f"Refunds of a patient above {money(patient.practice.refund_approval_threshold)} "
                                    f"over {patient.practice.approval_window_days} days need a manager other than "
                                    "you"))
        return self._form_page(request, patient, form, title=f"Refund credit #{c.pk}", button="Refund",
                               summary=summary, tab="refunds",
                               intro="Refunding lowers the credit by the amount refunded (DOMAIN rules 8 and 12).")

    # -- write-offs (rule 11)
    def writeoff_view(self, request, patient_id, encounter_id):
        patient = self._patient(request, patient_id)
        enc = in_scope_or_404(request, Encounter.objects.all(), pk=encounter_id, patient=patient)
        form = f.WriteOffForm(request.POST or None, encounter=enc)
        if request.method == "POST" and form.is_valid():
            d = form.cleaned_data
            wo = run_service(form, writeoff_create, fields={"encounter": None}, encounter_id=enc.pk,
                             amount=d["amount"], reason_code=d["reason_code"], reason=d["note"], actor=request.user)
            if wo is not None:
                return self._done(request, patient, f"Wrote off {money(wo.amount)} of DoS "
                                  f"{enc.date_of_service:%m/%d/%Y}.", tab="writeoffs")
        practice = patient.practice
        summary = [("Date of service", f"{enc.date_of_service:%m/%d/%Y} {enc.description}"),
                   ("Balance", money(enc.balance)),
                   ("Practice policy", f"billing staff up to {money(practice.writeoff_max_amount)}, balances at least "
                                       f"{practice.writeoff_min_age_days} days old; beyond it a manager")]
        return self._form_page(request, patient, form, title="Write off a balance", button="Write off",
                               summary=summary, tab="dos")

    def writeoff_undo_view(self, request, patient_id, writeoff_id):
        patient = self._patient(request, patient_id)
        wo = in_scope_or_404(request, WriteOff.objects.select_related("encounter"), pk=writeoff_id, patient=patient)
        form = f.ReasonOnlyForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            done = run_service(form, writeoff_undo, fields={"writeoff": None}, writeoff_id=wo.pk,
                               actor=request.user, reason=form.cleaned_data["reason"])
            if done is not None:
                return self._done(request, patient, f"Write-off #{wo.pk} undone: {money(wo.amount)} is owed again.",
                                  tab="writeoffs")
        summary = [("Write-off", f"#{wo.pk} · {wo.get_reason_code_display()} · {wo.get_state_display()}"),
                   ("Amount", money(wo.amount)), ("Date of service", f"{wo.encounter.date_of_service:%m/%d/%Y}"),
                   ("Note", wo.note)]
        return self._form_page(request, patient, form, title=f"Undo write-off #{wo.pk}", button="Undo write-off",
                               summary=summary, tab="writeoffs")
