"""Back-office pages of the second reviews of resolved cases (issue 12 item 1, DOMAIN rule 20):

* the reviews ("admin:reports_casereview_changelist"): waiting / passed / failed, the case (a link
  to its adjudication case page, the patient or payer, the amount, the outcome), when it was
  resolved and by whom, when the weekly audit sampled it, the reviewer;
* a review's page (the CaseReview change page): the case, and while the review waits the record
  form: passed or failed, a note, "reopen the case" (a failed review only). A POST is one
  `case_review_record` call; its refusals (the case's resolver or the deciders of its resolution
  may not review it, reopen only when failed, already recorded) are shown on the form.

Managers only (backoffice/admin/reports_exports.py ManagersOnlyAdmin): billing staff 403, another
practice's review 404. Nothing is added, changed or deleted through admin forms."""

from django import forms
from django.contrib import admin, messages
from django.http import Http404, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html

from backoffice import forms as f
from backoffice.admin.base import BackofficeAdminMixin
from backoffice.admin.reports_audits import ManagedListMixin, user_name, when
from backoffice.admin.reports_exports import ManagersOnlyAdmin
from backoffice.views.adjudication import case_page_url
from backoffice.views.common import admin_url, money, render_page, run_service
from reports.models import CaseReview
from reports.services.reviews import case_review_record

HISTORY_SHOWN = 50


def case_words(case) -> str:
    """Who the case is about, in words: the patient (account) or the payer."""
    if case.patient_id:
        return f"{case.patient.last_name}, {case.patient.first_name} ({case.patient.account_number})"
    if case.payer_id:
        return case.payer.name
    return "—"


class RecordForm(forms.Form):
    outcome = forms.ChoiceField(choices=(("passed", "Passed"), ("failed", "Failed (counts as an error)")),
                                widget=forms.RadioSelect)
    note = f.reason_field(label="Note", help_text="What you checked and found; kept in the history with your name.")
    reopen = forms.BooleanField(label="Reopen the case", required=False,
                                help_text="Only with a failed review: the case goes back to investigating.")


class CaseReviewPagesMixin:
    def change_view(self, request, object_id, form_url="", extra_context=None):
        self.require_manager(request)
        if not str(object_id).isdigit():
            raise Http404("No case review matches the given query.")
        review = self.object_or_404(request, CaseReview, int(object_id))
        case = review.case
        form = RecordForm(request.POST or None) if review.state == CaseReview.State.PENDING else None
        if form is not None and request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            saved = run_service(form, case_review_record, review=review.pk, outcome=data["outcome"],
                                actor=request.user, note=data["note"], reopen=data["reopen"])
            if saved is not None:
                messages.success(request, f"Review of case {case.pk} recorded: {saved.get_state_display().lower()}"
                                          f"{'; the case is reopened' if data['reopen'] else ''}.")
                return HttpResponseRedirect(admin_url("reports_casereview_change", review.pk))
            for error in form.non_field_errors():
                messages.error(request, str(error))
        summary = [("Case", format_html('<a href="{}">Case {}</a>', case_page_url(case.pk), case.pk)),
                   ("About", case_words(case)), ("Amount", money(case.amount)),
                   ("Cause", case.get_cause_display()), ("Case state", case.get_state_display()),
                   ("Outcome", f"{case.get_outcome_display()}: {case.outcome_note}" if case.outcome else "—"),
                   ("Resolved", f"{when(case.resolved_at)} by {user_name(case.resolved_by)}"),
                   ("Sampled", f"{when(review.sampled_at)}, {review.run}"),
                   ("Review", review.get_state_display())]
        if review.reviewer_id:
            summary.append(("Reviewed", f"{when(review.reviewed_at)} by {user_name(review.reviewer)}: {review.note}"))
        history = [{"when": when(v.history_date), "who": user_name(v.history_user), "state": v.get_state_display(),
                    "reason": v.history_change_reason or ""}
                   for v in CaseReview.history.filter(id=review.pk).select_related("history_user")
                   .order_by("-history_id")[:HISTORY_SHOWN]]
        return render_page(self, request, "admin/reports/review_record.html", title=f"Second review of case {case.pk}",
                           crumbs=[(reverse("admin:reports_casereview_changelist"), "Case reviews")], review=review,
                           facts=summary, form=form, history=history,
                           buttons=[("_record", "Record the review", "default")],
                           cancel_url=reverse("admin:reports_casereview_changelist"))


@admin.register(CaseReview)
class CaseReviewAdmin(CaseReviewPagesMixin, ManagedListMixin, BackofficeAdminMixin, ManagersOnlyAdmin,
                      admin.ModelAdmin):
    # four columns of two lines each: the list fits 1280 px with the sidebar and the filter column open
    list_display = ("review_link", "case_link", "resolved", "sampled")
    practice_under = "sampled"
    list_filter = ("state",)
    list_select_related = ("case__patient", "case__payer", "case__resolved_by", "reviewer", "practice")
    ordering = ("-sampled_at", "pk")

    def changelist_tools(self, request):
        return [(reverse("admin:reports_auditrun_changelist"), "Audit runs")]

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {"title": "Case reviews", **(extra_context or {})})

    @admin.display(description="review / reviewer", ordering="state")
    def review_link(self, obj):
        reviewer = f"{user_name(obj.reviewer)}, {when(obj.reviewed_at)}" if obj.reviewer_id else ""
        return format_html('<a href="{}"><span class="state state-{}">{}</span></a><div class="settle-muted">{}</div>',
                           admin_url("reports_casereview_change", obj.pk), obj.state, obj.get_state_display(),
                           reviewer)

    @admin.display(description="case / patient or payer", ordering="case_id")
    def case_link(self, obj):
        return format_html('<a href="{}">Case {}</a>: {}<div class="settle-muted">{}</div>',
                           case_page_url(obj.case_id), obj.case_id, money(obj.case.amount), case_words(obj.case))

    @admin.display(description="resolved / by", ordering="case__resolved_at")
    def resolved(self, obj):
        return format_html('{}<div class="settle-muted">{}</div>', when(obj.case.resolved_at),
                           user_name(obj.case.resolved_by))

    @admin.display(description="sampled", ordering="sampled_at")
    def sampled(self, obj):
        return when(obj.sampled_at)

    @admin.display(description="sampled / practice", ordering="sampled_at")
    def sampled_practice(self, obj):
        return self.with_practice(self.sampled(obj), obj)
