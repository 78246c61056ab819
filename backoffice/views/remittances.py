"""Back-office pages for 835 files: the upload page and the unmatched queue's match and dismiss."""


from django.contrib import messages
from django.contrib.admin.widgets import AutocompleteSelect
from django.http import HttpResponseRedirect
from django.urls import path, reverse

from backoffice import forms as f
from backoffice.views.common import in_scope_or_404, money, practice_ids, render_page, require_member, run_service
from ledger.errors import SettleError
from ledger.models import Claim
from remittances.models import RemittanceClaim
from remittances.queue import (
    remittance_claim_candidates,
    remittance_claim_dismiss,
    remittance_claim_match,
    remittance_claim_mismatches,
)
from remittances.receive import remittance_file_import

# --- remittances: upload, the unmatched queue ----------------------------------------------------------------

class RemittanceUploadMixin:
    """For RemittanceFileAdmin: /admin/remittances/remittancefile/upload/."""
    def backoffice_urls(self):
        return [path("upload/", self.admin_site.admin_view(self.upload_view), name="remittances_remittancefile_upload")]

    def upload_view(self, request):
        require_member(self, request)
        form = f.RemittanceUploadForm(request.POST or None, request.FILES or None, practice_ids=practice_ids(request))
        results = []
        if request.method == "POST" and form.is_valid():
            practice = form.cleaned_data["practice"]
            for upload in form.cleaned_data["files"]:
                row = {"filename": upload.name, "status": "", "file": None, "posted": None, "error": ""}
                try:
                    done = remittance_file_import(practice_id=practice.pk, data=upload.read(), filename=upload.name,
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
                           crumbs=[(reverse("admin:remittances_remittancefile_changelist"), "Remittance files")],
                           form=form, results=results, buttons=[("_save", "Upload", "default")],
                           cancel_url=reverse("admin:remittances_remittancefile_changelist"),
                           intro="Each file is read whole first: a file that cannot be read is refused with the "
                                 "segment and byte of the problem, and nothing of it is posted. Claims that match "
                                 "no claim of the practice wait in the unmatched queue.")


class RemittanceMatchMixin:
    """For RemittanceClaimAdmin: the unmatched queue's pages, /admin/remittances/remittanceclaim/<id>/match/
    (both sides side by side, likely claims first, differences shown and confirmed) and .../dismiss/."""
    def backoffice_urls(self):
        wrap = self.admin_site.admin_view
        return [path("<int:claim_id>/match/", wrap(self.match_view), name="remittances_remittanceclaim_match"),
                path("<int:claim_id>/dismiss/", wrap(self.dismiss_view), name="remittances_remittanceclaim_dismiss")]

    def _waiting_claim(self, request, claim_id):
        require_member(self, request)
        return in_scope_or_404(request, RemittanceClaim.objects.select_related("file", "transaction__payer", "claim")
                               .defer("file__content"), pk=claim_id)

    def _queue_url(self):
        return reverse("admin:remittances_remittanceclaim_changelist") + "?waiting=yes"

    def match_view(self, request, claim_id):
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
                           dismiss_url=reverse("admin:remittances_remittanceclaim_dismiss", args=[rc.pk]),
                           cancel_url=self._queue_url())

    def dismiss_view(self, request, claim_id):
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
