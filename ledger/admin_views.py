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

from decimal import Decimal

from django.contrib import messages
from django.contrib.admin.widgets import AutocompleteSelect
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from credits.models import Credit, ManualCreditRequest, Refund, WriteOff
from ledger import admin_forms as f
from ledger.errors import SettleError
from ledger.models import Claim, Encounter, Patient
from ledger.money import ZERO
from ledger.remittance_models import RemittanceClaim


# --- helpers ---------------------------------------------------------------------------------------------

def practice_ids(request) -> list[int]:
    from ledger.admin import user_practice_ids

    return user_practice_ids(request)


def require_member(model_admin, request) -> None:
    if not model_admin.has_view_permission(request):
        raise PermissionDenied


def in_scope_or_404(request, queryset, **lookup):
    """The object matching `lookup` within the user's practices, or a 404 (never another
    practice's row, whatever id is in the URL)."""
    if not request.user.is_superuser:
        queryset = queryset.filter(practice_id__in=practice_ids(request))
    obj = queryset.filter(**lookup).first()
    if obj is None:
        raise Http404(f"No {queryset.model._meta.verbose_name} matches the given query.")
    return obj


def run_service(form, fn, *, fields: dict | None = None, **kwargs):
    """Call a service; on a refusal put the message on `form` and return None."""
    try:
        return fn(**kwargs)
    except SettleError as exc:
        f.add_service_error(form, exc, fields=fields)
    except IntegrityError as exc:
        rule = getattr(getattr(exc.__cause__, "diag", None), "constraint_name", None)
        form.add_error(None, f"Refused by the database rule {rule}." if rule else "Refused by a database rule.")
    return None


def render_page(model_admin, request, template: str, *, title: str, crumbs=(), **context) -> TemplateResponse:
    opts = model_admin.model._meta
    request.current_app = model_admin.admin_site.name
    return TemplateResponse(request, template, {
        **model_admin.admin_site.each_context(request), "title": title, "crumbs": list(crumbs), "opts": opts,
        "app_label": opts.app_label, **context,
    })


_URL_TEMPLATES: dict = {}


def admin_url(name: str, *args) -> str:
    """`reverse("admin:<name>", args=args)` for integer ids, without resolving the pattern for every
    row of a list (a list page links each of its 100 rows several times)."""
    template = _URL_TEMPLATES.get((name, len(args)))
    if template is None:
        marks = [987654321 + i for i in range(len(args))]
        template = reverse(f"admin:{name}", args=marks)
        for i, mark in enumerate(marks):
            template = template.replace(str(mark), f"{{{i}}}")
        _URL_TEMPLATES[(name, len(args))] = template
    return template.format(*(int(a) for a in args))


def patient_url(patient_id: int, tab: str = "") -> str:
    return admin_url("ledger_patient_change", patient_id) + (f"#tab-{tab}" if tab else "")


def patient_crumbs(patient) -> list:
    return [(reverse("admin:credits_patientresponsibility_changelist"), "Patient responsibility"),
            (patient_url(patient.pk), str(patient))]


def money(value) -> str:
    return f"{Decimal(value):,.2f}"


def link(url: str, text) -> str:
    return format_html('<a href="{}">{}</a>', url, text)


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
        from credits.selectors import payable_encounters
        from ledger.services import credits_preselect, payment_checkout, payment_record

        patient = self._patient(request, patient_id)
        encounters = list(payable_encounters(patient.pk).distinct())
        payable_ids = [e.pk for e in encounters]
        pending = list(Encounter.objects.filter(patient=patient, claims__state__in=Claim.OPEN).distinct()
                       .order_by("date_of_service", "pk"))
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
            owed=owed, preselect=preselect, preselected_total=sum(preselect.values(), ZERO),
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
        from credits.services import credits_apply_for_patient

        patient = self._patient(request, patient_id)
        form = f.ReasonOnlyForm(request.POST or None, initial={"reason": "Applied by staff"})
        if request.method == "POST" and form.is_valid():
            result = run_service(form, credits_apply_for_patient, patient_id=patient.pk, actor=request.user,
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
        from credits.services import credits_unlock

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
        from credits.services import credit_add_manual

        patient = self._patient(request, patient_id)
        encounters = list(Encounter.objects.filter(patient=patient).order_by("-date_of_service", "-pk"))
        form = f.CreditAddForm(request.POST or None, encounters=encounters)
        if request.method == "POST" and form.is_valid():
            d = form.cleaned_data
            c = run_service(form, credit_add_manual, patient_id=patient.pk, amount=d["amount"], note=d["note"],
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
        from credits.services import credit_move

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
        from credits.services import credit_remove

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
        from credits.services import credits_unlock

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
        from credits.services import refund_options, refund_request

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
        from credits.services import writeoff_create

        patient = self._patient(request, patient_id)
        enc = in_scope_or_404(request, Encounter.objects.all(), pk=encounter_id, patient=patient)
        form = f.WriteOffForm(request.POST or None, encounter=enc)
        if request.method == "POST" and form.is_valid():
            d = form.cleaned_data
            wo = run_service(form, writeoff_create, fields={"encounter": None}, encounter_id=enc.pk,
                             amount=d["amount"], reason_code=d["reason_code"], note=d["note"], actor=request.user)
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
        from credits.services import writeoff_undo

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


# --- remittances: upload, the unmatched queue ----------------------------------------------------------------

class RemittanceUploadMixin:
    """For RemittanceFileAdmin: /admin/ledger/remittancefile/upload/."""

    def backoffice_urls(self):
        return [path("upload/", self.admin_site.admin_view(self.upload_view), name="ledger_remittancefile_upload")]

    def upload_view(self, request):
        from ledger.remittances import remittance_import

        require_member(self, request)
        form = f.RemittanceUploadForm(request.POST or None, request.FILES or None, practice_ids=practice_ids(request))
        results = []
        if request.method == "POST" and form.is_valid():
            practice = form.cleaned_data["practice"]
            for upload in form.cleaned_data["files"]:
                row = {"filename": upload.name, "status": "", "file": None, "posted": None, "error": ""}
                try:
                    done = remittance_import(practice_id=practice.pk, data=upload.read(), filename=upload.name,
                                             actor=request.user)
                    row["file"], row["status"], row["posted"] = done.received.file, done.received.status, done.posted
                except SettleError as exc:
                    row["status"], row["error"] = "error", exc.message
                results.append(row)
            for row in results:
                level = messages.SUCCESS if row["status"] == "posted" else \
                    messages.WARNING if row["status"] == "duplicate" else messages.ERROR
                self.message_user(request, f"{row['filename']}: {row['status']}", level)
            form = f.RemittanceUploadForm(practice_ids=practice_ids(request))
        return render_page(self, request, "admin/settle/remittance_upload.html", title="Upload 835 files",
                           crumbs=[(reverse("admin:ledger_remittancefile_changelist"), "Remittance files")],
                           form=form, results=results, buttons=[("_save", "Upload", "default")],
                           cancel_url=reverse("admin:ledger_remittancefile_changelist"),
                           intro="Each file is read whole first: a file that cannot be read is refused with the "
                                 "segment and byte of the problem, and nothing of it is posted. Claims that match "
                                 "no claim of the practice wait in the unmatched queue.")


class RemittanceMatchMixin:
    """For RemittanceClaimAdmin: the unmatched queue's pages, /admin/ledger/remittanceclaim/<id>/match/
    (both sides side by side, likely claims first, differences shown and confirmed) and .../dismiss/."""

    def backoffice_urls(self):
        wrap = self.admin_site.admin_view
        return [path("<int:claim_id>/match/", wrap(self.match_view), name="ledger_remittanceclaim_match"),
                path("<int:claim_id>/dismiss/", wrap(self.dismiss_view), name="ledger_remittanceclaim_dismiss")]

    def _waiting_claim(self, request, claim_id):
        require_member(self, request)
        return in_scope_or_404(request, RemittanceClaim.objects.select_related("file", "transaction__payer", "claim")
                               .defer("file__content"), pk=claim_id)

    def _queue_url(self):
        return reverse("admin:ledger_remittanceclaim_changelist") + "?waiting=yes"

    def match_view(self, request, claim_id):
        from ledger.remittance_queue import remittance_claim_candidates, remittance_claim_match, \
            remittance_claim_mismatches

        rc = self._waiting_claim(request, claim_id)
        claims = Claim.objects.filter(practice_id=rc.practice_id).select_related("encounter__patient", "payer")
        widget = AutocompleteSelect(RemittanceClaim._meta.get_field("claim"), self.admin_site)
        form = f.RemittanceMatchForm(request.POST or None, claims=claims, widget=widget)
        waiting = rc.state in RemittanceClaim.WAITING
        chosen, chosen_mismatches = None, []
        if request.method == "POST" and form.is_valid() and waiting:
            chosen = form.cleaned_data["claim"]
            chosen_mismatches = remittance_claim_mismatches(rc, chosen)
            done = run_service(form, remittance_claim_match, fields={"remittance_claim": None},
                               remittance_claim_id=rc.pk, claim_id=chosen.pk, actor=request.user,
                               reason=form.cleaned_data["reason"],
                               confirm_mismatch=form.cleaned_data["confirm_mismatch"])
            if done is not None:
                self.message_user(request, f"CLP {rc.claim_number} matched to claim {chosen} and "
                                           f"posted: {done.get_state_display().lower()}.", messages.SUCCESS)
                return HttpResponseRedirect(self._queue_url())
        if not waiting:
            form.add_error(None, f"This claim is {rc.get_state_display().lower()}: nothing to match.")
        tx = rc.transaction
        summary = [("CLP01 claim number", rc.claim_number), ("Status (CLP02)", rc.status_code),
                   ("State", f"{rc.get_state_display()}"), ("Why it waits", rc.note or "—"),
                   ("Payer (TRN)", f"{tx.payer.name if tx.payer else tx.payer_name or '—'} · check "
                                   f"{tx.trace_number}"),
                   ("Patient (NM1*QC)", rc.patient_name or "—"), ("Member id", rc.member_id or "—"),
                   ("Service date", f"{rc.service_date:%m/%d/%Y}" if rc.service_date else "—"),
                   ("Charge / paid / PR",
                    f"{money(rc.charge)} / {money(rc.paid)} / {money(rc.patient_responsibility)}"),
                   ("File", f"{rc.file.filename} (#{rc.file_id})")]
        candidates = [{"claim": c, "mismatches": m, "fields": {x["field"] for x in m}}
                      for c, m, _ in remittance_claim_candidates(rc)] if waiting else []
        buttons = [("_save", "Match and post", "default")] if waiting else []
        return render_page(self, request, "admin/settle/match.html", title=f"Match remittance claim {rc.claim_number}",
                           crumbs=[(self._queue_url(), "Unmatched claims")],
                           form=form, summary=summary, candidates=candidates, rc=rc, waiting=waiting,
                           chosen=chosen, chosen_mismatches=chosen_mismatches, media=form.media, buttons=buttons,
                           dismiss_url=reverse("admin:ledger_remittanceclaim_dismiss", args=[rc.pk]),
                           cancel_url=self._queue_url())

    def dismiss_view(self, request, claim_id):
        from ledger.remittance_queue import remittance_claim_dismiss

        rc = self._waiting_claim(request, claim_id)
        form = f.RemittanceDismissForm(request.POST or None)
        waiting = rc.state in RemittanceClaim.WAITING
        if request.method == "POST" and form.is_valid() and waiting:
            done = run_service(form, remittance_claim_dismiss, fields={"remittance_claim": None},
                               remittance_claim_id=rc.pk, actor=request.user, reason=form.cleaned_data["reason"])
            if done is not None:
                self.message_user(request, f"CLP {rc.claim_number} dismissed: nothing posted.", messages.SUCCESS)
                return HttpResponseRedirect(self._queue_url())
        if not waiting:
            form.add_error(None, f"This claim is {rc.get_state_display().lower()}: it cannot be dismissed.")
        tx = rc.transaction
        summary = [("CLP01 claim number", rc.claim_number), ("State", rc.get_state_display()),
                   ("Why it waits", rc.note or "—"), ("Patient (NM1*QC)", rc.patient_name or "—"),
                   ("Service date", f"{rc.service_date:%m/%d/%Y}" if rc.service_date else "—"),
                   ("Paid", money(rc.paid)), ("Payer (TRN)", f"{tx.payer_name} · check {tx.trace_number}")]
        return render_page(self, request, "admin/settle/form_page.html",
                           title=f"Dismiss remittance claim {rc.claim_number} (not ours)",
                           crumbs=[(self._queue_url(), "Unmatched claims")], form=form, summary=summary,
                           intro="The claim leaves the unmatched queue and nothing is posted. Use it for a claim "
                                 "that is not this practice's.",
                           buttons=[("_save", "Dismiss", "default")] if waiting else [], cancel_url=self._queue_url())


