"""Back-office pages for the credits app's admin (issue 5): deciding and issuing refunds, the
credit CSV import, and the nightly run's preview and run-now. Same rules as backoffice/views/patient.py:
scoped lookups (404 outside the user's practices), services called with the acting user and a
reason outside any transaction, refusals shown on the form."""

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.urls import path, reverse

from backoffice import forms as f
from backoffice.views.common import (
    in_scope_or_404,
    money,
    patient_url,
    practice_ids,
    render_page,
    require_member,
    run_service,
)
from credits.models import Credit, NightlyRun, Refund
from credits.services import credit_import_create, refund_approve, refund_issue, refund_reject
from ledger.access import is_manager
from ledger.errors import InvalidInput
from ledger.models import Encounter, Patient
from remittances.nightly import nightly_run


def refund_summary(r: Refund) -> list:
    rows = [("Refund", f"#{r.pk} · {r.get_state_display()}"), ("Patient", str(r.patient)),
            ("Amount", money(r.amount)), ("Method", r.get_method_display()),
            ("Credit", f"#{r.credit_id} ({r.credit.get_source_display().lower()}, {money(r.credit.amount)})"),
            ("Requested", f"{r.requested_at:%m/%d/%Y %H:%M} by {r.requested_by}"), ("Reason", r.reason)]
    if r.needs_approval:
        rows.append(("Approval", "needed: above the practice's threshold of "
                                 f"{money(r.practice.refund_approval_threshold)}"))
    if r.decided_by_id:
        rows.append(("Decided", f"{r.decided_at:%m/%d/%Y %H:%M} by {r.decided_by}"
                                + (f": {r.decision_note}" if r.decision_note else "")))
    if r.issued_at:
        rows.append(("Issued", f"{r.issued_at:%m/%d/%Y %H:%M} by {r.issued_by}, reference {r.reference}"))
    return rows


class RefundPagesMixin:
    """For RefundAdmin: /admin/credits/refund/<id>/decide/ and /issue/."""
    def backoffice_urls(self):
        wrap = self.admin_site.admin_view
        return [path("<int:refund_id>/decide/", wrap(self.decide_view), name="credits_refund_decide"),
                path("<int:refund_id>/issue/", wrap(self.issue_view), name="credits_refund_issue")]

    def _refund(self, request, refund_id) -> Refund:
        require_member(self, request)
        return in_scope_or_404(request, Refund.objects.select_related(
            "patient", "credit", "practice", "requested_by", "decided_by", "issued_by"), pk=refund_id)

    def decide_view(self, request, refund_id):
        r = self._refund(request, refund_id)
        form = f.RefundDecisionForm(request.POST or None)
        manager = is_manager(request.user, r.practice_id)
        own = r.requested_by_id == request.user.pk
        can_approve = r.state == Refund.State.REQUESTED and manager and not own
        can_reject = r.state in (Refund.State.REQUESTED, Refund.State.APPROVED) and \
            (manager or not r.needs_approval) and not (own and r.needs_approval)
        if request.method == "POST" and form.is_valid():
            note = form.cleaned_data["note"].strip()
            if "_approve" in request.POST:
                done = run_service(form, refund_approve, refund_id=r.pk, actor=request.user, reason=note)
                if done is not None:
                    self.message_user(request, f"Refund #{r.pk} approved. Issue it now, or from the refund's page.",
                                      messages.SUCCESS)
                    return HttpResponseRedirect(reverse("admin:credits_refund_issue", args=[r.pk]))
            elif "_reject" in request.POST:
                done = run_service(form, refund_reject, fields={"reason": "note"}, refund_id=r.pk,
                                   actor=request.user, reason=note)
                if done is not None:
                    self.message_user(request, f"Refund #{r.pk} rejected; {money(r.amount)} is back on credit "
                                               f"#{r.credit_id}.", messages.SUCCESS)
                    return HttpResponseRedirect(reverse("admin:backoffice_refundapproval_changelist"))
        buttons = []
        if can_approve:
            buttons.append(("_approve", "Approve", "default"))
        if can_reject:
            buttons.append(("_reject", "Reject", ""))
        intro = ""
        if own and r.needs_approval and r.state == Refund.State.REQUESTED:
            intro = "You asked for this refund: another manager must approve or reject it (four eyes, DOMAIN rule 8)."
        elif not manager and r.needs_approval and r.state == Refund.State.REQUESTED:
            intro = "Only a manager of the practice can approve or reject this refund."
        elif r.state not in (Refund.State.REQUESTED, Refund.State.APPROVED):
            intro = f"This refund is {r.get_state_display().lower()}: nothing to decide."
        return render_page(self, request, "admin/settle/form_page.html", title=f"Decide refund #{r.pk}",
                           crumbs=[(reverse("admin:backoffice_refundapproval_changelist"), "Refunds awaiting approval")],
                           form=form, summary=refund_summary(r), intro=intro, buttons=buttons,
                           cancel_url=reverse("admin:backoffice_refundapproval_changelist"))

    def issue_view(self, request, refund_id):
        r = self._refund(request, refund_id)
        form = f.RefundIssueForm(request.POST or None, refund=r)
        if request.method == "POST" and form.is_valid():
            done = run_service(form, refund_issue, refund_id=r.pk, actor=request.user,
                               reference=form.cleaned_data.get("reference") or "")
            if done is not None:
                self.message_user(request, f"Refund #{r.pk} of {money(r.amount)} issued "
                                           f"({done.get_method_display().lower()}, reference {done.reference}).",
                                  messages.SUCCESS)
                return HttpResponseRedirect(patient_url(r.patient_id, "refunds"))
        ready = r.state == Refund.State.APPROVED
        intro = ("Pay the refund out: back through the card processor to the original payment." if
                 r.method == Refund.Method.ORIGINAL_PAYMENT else
                 "Record the check or transfer that pays the refund out.") if ready else \
            f"This refund is {r.get_state_display().lower()}: only approved refunds are issued."
        return render_page(self, request, "admin/settle/form_page.html", title=f"Issue refund #{r.pk}",
                           crumbs=[(reverse("admin:credits_refund_changelist"), "Refunds")],
                           form=form, summary=refund_summary(r), intro=intro,
                           buttons=[("_save", "Issue refund", "default")] if ready else [],
                           cancel_url=patient_url(r.patient_id, "refunds"))


class CreditImportMixin:
    """For CreditImportAdmin: /admin/credits/creditimport/upload/."""
    def backoffice_urls(self):
        return [path("upload/", self.admin_site.admin_view(self.upload_view), name="credits_creditimport_upload")]

    def upload_view(self, request):
        require_member(self, request)
        form = f.CreditImportForm(request.POST or None, request.FILES or None, practice_ids=practice_ids(request))
        line_errors = []
        if request.method == "POST" and form.is_valid():
            practice, upload = form.cleaned_data["practice"], form.cleaned_data["file"]

            def import_file(**kwargs):
                # the service's one parser checks every line; its listing is shown by line, above the form
                try:
                    return credit_import_create(**kwargs)
                except InvalidInput as exc:
                    if not getattr(exc, "line_errors", None):
                        raise
                    line_errors.extend(exc.line_errors)
                    raise InvalidInput(f"{upload.name}: {exc.problem_count} problem(s); nothing was imported.",
                                       field="file") from None

            result = run_service(form, import_file, practice_id=practice.pk, data=upload, filename=upload.name,
                                 actor=request.user, reason=form.cleaned_data["reason"])
            if result is not None:
                batch = result.batch
                if result.pending:
                    self.message_user(request, f"{upload.name}: {batch.rows} credit(s), total {money(batch.total)}, "
                                               "wait for a manager's approval (above the practice's limit of "
                                               f"{money(practice.manual_credit_approval_limit)}); nothing is "
                                               "credited until then.", messages.WARNING)
                else:
                    self.message_user(request, f"{upload.name}: imported {batch.rows} credit(s), total "
                                               f"{money(batch.total)}.", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:credits_creditimport_change", args=[batch.pk]))
        return render_page(self, request, "admin/settle/form_page.html", title="Import credits from a CSV file",
                           crumbs=[(reverse("admin:credits_creditimport_changelist"), "Credit imports")],
                           form=form, line_errors=line_errors, multipart=True,
                           intro="Every line is checked first and every problem is listed by line; a file with "
                                 "any problem imports nothing. The same file is imported once. At most "
                                 f"{settings.SETTLE_CSV_IMPORT_MAX_ROWS:,} lines a file. An import whose total (or a "
                                 "patient's part of it, with their other manual and imported credits of the "
                                 "practice's approval window) is above the practice's limit waits for a manager's "
                                 "approval.",
                           buttons=[("_save", "Import", "default")],
                           cancel_url=reverse("admin:credits_creditimport_changelist"))


class NightlyPagesMixin:
    """For NightlyRunAdmin: /admin/credits/nightlyrun/preview/ and /run-now/."""
    PREVIEW_SHOWN = 500

    def backoffice_urls(self):
        wrap = self.admin_site.admin_view
        return [path("preview/", wrap(self.preview_view), name="credits_nightlyrun_preview"),
                path("run-now/", wrap(self.run_now_view), name="credits_nightlyrun_run_now")]

    def preview_view(self, request):
        require_member(self, request)
        form = f.NightlyForm(request.POST or request.GET or None, practice_ids=practice_ids(request))
        result, lines = None, []
        if form.is_bound and form.is_valid():
            result = nightly_run(practice_id=form.cleaned_data["practice"].pk, dry_run=True, actor=request.user)
            shown = result.lines[: self.PREVIEW_SHOWN]
            patients = Patient.objects.in_bulk({ln[0] for ln in shown})
            encounters = Encounter.objects.in_bulk({ln[1] for ln in shown})
            credits = Credit.objects.in_bulk({ln[2] for ln in shown})
            lines = [{"patient": patients.get(ln[0]), "encounter": encounters.get(ln[1]), "credit": credits.get(ln[2]),
                      "amount": ln[3], "locked": ln[4]} for ln in shown]
        return render_page(self, request, "admin/settle/nightly_preview.html", title="Preview the nightly run",
                           crumbs=[(reverse("admin:credits_nightlyrun_changelist"), "Nightly runs")],
                           form=form, result=result, lines=lines, cap=self.PREVIEW_SHOWN)

    def run_now_view(self, request):
        require_member(self, request)
        form = f.NightlyRunNowForm(request.POST or None, practice_ids=practice_ids(request))
        if request.method == "POST" and form.is_valid():
            practice = form.cleaned_data["practice"]
            if not request.user.is_superuser and practice.pk not in practice_ids(request):
                raise PermissionDenied
            result = nightly_run(practice_id=practice.pk, actor=request.user, reason=form.cleaned_data["reason"])
            level = messages.SUCCESS if result.status == NightlyRun.Status.SUCCEEDED else messages.WARNING
            self.message_user(request, f"Nightly run for {practice}: {result.status}; {result.application_count} "
                                       f"application(s), {money(result.applied_total)} applied, "
                                       f"{result.released_credits} credit(s) released.", level)
            if result.run is not None:
                return HttpResponseRedirect(reverse("admin:credits_nightlyrun_change", args=[result.run.pk]))
            return HttpResponseRedirect(reverse("admin:credits_nightlyrun_changelist"))
        return render_page(self, request, "admin/settle/form_page.html", title="Run the nightly application now",
                           crumbs=[(reverse("admin:credits_nightlyrun_changelist"), "Nightly runs")], form=form,
                           intro="Posts the practice's pending remittances, releases the credits of balanced dates of "
                                 "service and applies usable credits to open balances, as the nightly schedule "
                                 "does. A run already in progress for the practice makes this one skip.",
                           buttons=[("_save", "Run now", "default")],
                           cancel_url=reverse("admin:credits_nightlyrun_changelist"))
