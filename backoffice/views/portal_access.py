"""The patient page's "Portal access" panel (issue 13; docs/portal.md "What staff do"): invite the
patient to the portal (or send the link again), disable their access, and issue a statement with
its guest-pay code. Each is a POST (CSRF, through admin_site.admin_view) that calls the portal's
service with the staff member as the actor; a refusal comes back as a message on the patient page.
Another practice's patient is a 404 (`_patient`, tenancy as on every patient page)."""

from django.contrib import messages
from django.http import HttpResponseRedirect
from django.urls import path
from django.views.decorators.http import require_POST

from backoffice import forms as f
from backoffice.views.common import patient_url
from ledger.errors import SettleError
from portal.services import portal_disable, portal_invite, statement_issue


class PortalAccessMixin:
    """For PatientAdmin, before PatientPagesMixin (whose `_patient` it uses)."""

    def backoffice_urls(self):
        wrap = self.admin_site.admin_view
        p = "<int:patient_id>/portal/"
        return [
            path(p + "invite/", wrap(require_POST(self.portal_invite_view)), name="ledger_patient_portal_invite"),
            path(p + "disable/", wrap(require_POST(self.portal_disable_view)), name="ledger_patient_portal_disable"),
            path(p + "statement/", wrap(require_POST(self.statement_issue_view)),
                 name="ledger_patient_statement_issue"),
        ] + super().backoffice_urls()

    def _portal_call(self, request, patient_id, fn, done, *, default_reason: str = ""):
        patient = self._patient(request, patient_id)
        form = f.ReasonOnlyForm({"reason": request.POST.get("reason", "").strip() or default_reason})
        if not form.is_valid():
            self.message_user(request, "Give a reason: " + " ".join(form.errors.get("reason", [])), messages.ERROR)
        else:
            try:
                result = fn(patient_id=patient.pk, actor=request.user, reason=form.cleaned_data["reason"])
            except SettleError as exc:
                self.message_user(request, f"Refused: {exc.message}", messages.ERROR)
            else:
                self.message_user(request, done(result), messages.SUCCESS)
        return HttpResponseRedirect(patient_url(patient.pk, "portal"))

    def portal_invite_view(self, request, patient_id):
        return self._portal_call(
            request, patient_id, portal_invite, default_reason="Portal invitation",
            done=lambda inv: f"Portal link sent to {inv.user.email}; it works once, for a limited time.")

    def portal_disable_view(self, request, patient_id):
        return self._portal_call(request, patient_id, portal_disable,
                                 done=lambda p: "Portal access disabled: the login no longer works. "
                                                "Invite the patient again to turn it back on.")

    def statement_issue_view(self, request, patient_id):
        return self._portal_call(
            request, patient_id, statement_issue, default_reason="Statement",
            done=lambda st: f"Statement issued: code {st.display_code} (give it to the patient with the "
                            f"statement; they pay as a guest with it and their date of birth); due now "
                            f"{st.due_now:,.2f}.")
