"""Back-office pages of credit-balance adjudication (issue 11, item 9): the actions of the case page,
the documents and letters kept with a case (downloaded through views that check the practice), the
"scan now" form, the refund work list and the holder report. The same rules as the other pages
(backoffice/views/patient.py): objects are looked up within the user's practices (another
practice's case, document or row by id is a 404), every write is one service call with
`actor=request.user` and a reason, made outside any transaction (the services are their own), and a
refusal is shown on the form, on the field it names, and as the page's message; nothing is written.

What the case page offers follows the case's state and the user's role (`case_actions`); the
services decide again, so a stale page or a hand-made POST is refused by them."""

from dataclasses import dataclass

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Sum
from django.http import FileResponse, Http404, HttpResponse, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html

from adjudication.models import Case, CaseDocument, PatientNotice, PayerContact, Proposal, UnclaimedProperty
from adjudication.policies import policy_names, refund_work_list
from adjudication.scan import scan_now
from adjudication.selectors import case_contacts, case_detail, case_timeline
from adjudication.services.cases import (
    case_assign,
    case_attach_document,
    case_confirm_balance,
    case_end_investigation,
    case_investigate,
    case_note,
    case_record_contact,
    case_reopen,
    case_review_source,
    case_wait_on_payer,
)
from adjudication.services.core import money_left as money_left_of
from adjudication.services.notices import NOTICE_KINDS, case_record_election, case_send_notice
from adjudication.services.proposals import case_approve, case_carry_out, case_propose, case_reject
from adjudication.services.refund_worklist import refund_work_list_refund
from adjudication.services.unclaimed import holder_report_csv
from backoffice import forms as f
from backoffice.views.common import in_scope_or_404, money, practice_ids, render_page, require_member, run_service
from credits.models import Credit, PayerCredit
from ledger.access import is_manager
from ledger.models import Claim, Encounter, Membership

# --- the action forms -----------------------------------------------------------------------------------


class CaseReasonForm(forms.Form):
    reason = f.reason_field()


class InvestigateForm(CaseReasonForm):
    good_faith = forms.BooleanField(
        label="Good-faith investigation", required=False,
        help_text="A timely good-faith investigation: the clock pauses (at most the rule's suspension days from "
                  "identification) until it ends.")
    on = f.IsoDateFormField(label="Started on", required=False, help_text="YYYY-MM-DD; blank: today.")

    def __init__(self, *args, case, **kwargs):
        super().__init__(*args, **kwargs)
        if not (case.clock_rule_id and case.clock_rule.suspension_max_days):
            del self.fields["good_faith"]  # the case's rule has no suspension: nothing to pause


class EndInvestigationForm(CaseReasonForm):
    on = f.IsoDateFormField(label="Ended on", required=False, help_text="YYYY-MM-DD; blank: today.")


class WaitOnPayerForm(CaseReasonForm):
    follow_up_on = f.IsoDateFormField(label="Follow up on", help_text="YYYY-MM-DD: the queue marks it overdue after.")


class NoteForm(forms.Form):
    text = f.reason_field("Note", help_text="Added to the case's record with your name; never changed afterwards.")


class ReviewSourceForm(CaseReasonForm):
    findings = f.reason_field("Findings", help_text="Where the credit came from and why.")


class DocumentForm(CaseReasonForm):
    upload = forms.FileField(label="File", help_text="PDF, PNG, JPEG, TIFF, text/CSV or X12; at most 10 MB.")


class ContactForm(forms.Form):
    contacted_on = f.IsoDateFormField(label="Contacted on")
    channel = forms.ChoiceField(choices=PayerContact.Channel.choices)
    person = forms.CharField(max_length=200, required=False, help_text="Whom you spoke or wrote to.")
    reference = forms.CharField(max_length=100, required=False, help_text="The payer's call or ticket reference.")
    outcome = f.reason_field("Outcome", help_text="What the payer said or did.")
    follow_up_on = f.IsoDateFormField(label="Follow up on", required=False)
    wait_on_payer = forms.BooleanField(label="Wait on the payer until the follow-up", required=False)
    reason = f.reason_field(required=False, help_text="Why (kept in the history with your name); blank: the outcome.")


class AssignForm(CaseReasonForm):
    assignee = forms.ModelChoiceField(label="Assign to", queryset=None, required=False,
                                      empty_label="nobody (unassigned)")

    def __init__(self, *args, case, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["assignee"].queryset = staff_of(case.practice_id)
        self.fields["assignee"].initial = case.assigned_to_id


class ProposeForm(CaseReasonForm):
    METHODS = (("", "—"), ("original_payment", "Back to the original payment"), ("check", "Check"), ("ach", "ACH"))
    kind = forms.ChoiceField(label="Resolution", choices=Proposal.Kind.choices)
    amount = f.MoneyFormField(label="Amount", required=False, help_text="Blank: the money left on the case now.")
    method = forms.ChoiceField(label="Refund method", choices=METHODS, required=False,
                               help_text="Patient refunds: back to the original payment, else check or ACH.")
    reference = forms.CharField(label="Check number / reference", max_length=100, required=False)
    claim = forms.ModelChoiceField(label="Claim to resubmit", queryset=None, required=False)

    def __init__(self, *args, case, **kwargs):
        super().__init__(*args, **kwargs)
        claims = Claim.objects.none()
        if case.encounter_id:
            claims = Claim.objects.filter(encounter_id=case.encounter_id)
        elif case.payer_credit_id and case.payer_credit.claim_id:
            claims = Claim.objects.filter(pk=case.payer_credit.claim_id)
        elif case.credit_id and case.credit.origin_encounter_id:
            claims = Claim.objects.filter(encounter_id=case.credit.origin_encounter_id)
        claims = claims.filter(practice_id=case.practice_id).select_related("payer").order_by("pk")
        if claims.exists():
            self.fields["claim"].queryset = claims
        else:
            del self.fields["claim"]  # nothing to resubmit
        left = case.money_left if hasattr(case, "money_left") else money_left_of(case)
        self.fields["amount"].widget.attrs["placeholder"] = money(left)


class ApproveForm(CaseReasonForm):
    reference = forms.CharField(label="Check number / reference", max_length=100, required=False,
                                help_text="A payer refund check's number; blank: carry it out later.")


class CarryOutForm(ApproveForm):
    pass


class NoticeForm(CaseReasonForm):
    on = f.IsoDateFormField(label="Sent on", required=False, help_text="YYYY-MM-DD; blank: today.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["reason"].initial = "Overpayment notice"


class ElectionForm(CaseReasonForm):
    election = forms.ChoiceField(label="The patient chose", choices=[("refund", "Refund"), ("keep", "Keep as credit")],
                                 widget=forms.RadioSelect)


def staff_of(practice_id):
    """The people who may be given a case: staff members of its practice."""
    members = Membership.objects.filter(practice_id=practice_id).values("user_id")
    return get_user_model().objects.filter(pk__in=members, is_active=True).order_by("username")


# --- what each action calls -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Action:
    name: str
    label: str
    form: type
    button: str
    done: str  # the success message, after "Case N: "
    takes_case: bool = False  # the form needs the case (choices, initial values)
    multipart: bool = False

    def form_for(self, case, data=None, files=None):
        kwargs = {"case": case} if self.takes_case else {}
        return self.form(data, files, prefix=self.name, **kwargs)


def _investigate(case, actor, d):
    return case_investigate(case=case.pk, actor=actor, reason=d["reason"], good_faith=bool(d.get("good_faith")),
                            on=d.get("on"))


def _propose(case, actor, d):
    return case_propose(case=case.pk, actor=actor, reason=d["reason"], kind=d["kind"], amount=d.get("amount"),
                        method=d.get("method") or "", reference=d.get("reference") or "",
                        claim_id=d["claim"].pk if d.get("claim") else None)


CALLS = {
    "investigate": _investigate,
    "end_investigation": lambda case, actor, d: case_end_investigation(case=case.pk, actor=actor, reason=d["reason"],
                                                                       on=d.get("on")),
    "wait_on_payer": lambda case, actor, d: case_wait_on_payer(case=case.pk, actor=actor, reason=d["reason"],
                                                               follow_up_on=d["follow_up_on"]),
    "note": lambda case, actor, d: case_note(case=case.pk, actor=actor, text=d["text"]),
    "confirm_balance": lambda case, actor, d: case_confirm_balance(case=case.pk, actor=actor, reason=d["reason"]),
    "review_source": lambda case, actor, d: case_review_source(case=case.pk, actor=actor, reason=d["reason"],
                                                               findings=d["findings"]),
    "attach_document": lambda case, actor, d: case_attach_document(case=case.pk, actor=actor, reason=d["reason"],
                                                                   upload=d["upload"]),
    "record_contact": lambda case, actor, d: case_record_contact(
        case=case.pk, actor=actor, contacted_on=d["contacted_on"], channel=d["channel"], outcome=d["outcome"],
        person=d.get("person") or "", reference=d.get("reference") or "", follow_up_on=d.get("follow_up_on"),
        wait_on_payer=bool(d.get("wait_on_payer")), reason=d.get("reason") or ""),
    "assign": lambda case, actor, d: case_assign(case=case.pk, actor=actor, reason=d["reason"],
                                                 assignee_id=d["assignee"].pk if d.get("assignee") else None),
    "send_notice": lambda case, actor, d: case_send_notice(case=case.pk, actor=actor, reason=d["reason"],
                                                           on=d.get("on")),
    "record_election": lambda case, actor, d: case_record_election(case=case.pk, actor=actor, reason=d["reason"],
                                                                   election=d["election"], via="staff"),
    "propose": _propose,
    "approve": lambda case, actor, d: case_approve(case=case.pk, actor=actor, reason=d["reason"],
                                                   reference=d.get("reference") or ""),
    "reject": lambda case, actor, d: case_reject(case=case.pk, actor=actor, reason=d["reason"]),
    "carry_out": lambda case, actor, d: case_carry_out(case=case.pk, actor=actor, reason=d["reason"],
                                                       reference=d.get("reference") or ""),
    "reopen": lambda case, actor, d: case_reopen(case=case.pk, actor=actor, reason=d["reason"]),
}

ACTIONS = {a.name: a for a in (
    Action("investigate", "Investigate", InvestigateForm, "Start investigating", "under investigation",
           takes_case=True),
    Action("end_investigation", "End the investigation", EndInvestigationForm, "End it",
           "investigation ended; the clock runs again"),
    Action("wait_on_payer", "Wait on the payer", WaitOnPayerForm, "Wait on the payer", "waiting on the payer"),
    Action("propose", "Propose a resolution", ProposeForm, "Propose", "resolution proposed; a manager decides",
           takes_case=True),
    Action("approve", "Approve the proposal", ApproveForm, "Approve", "proposal approved"),
    Action("reject", "Reject the proposal", CaseReasonForm, "Reject", "proposal rejected; back to investigating"),
    Action("carry_out", "Carry out the approved resolution", CarryOutForm, "Carry it out", "resolution carried out"),
    Action("send_notice", "Send the overpayment notice", NoticeForm, "Send notice", "notice sent"),
    Action("record_election", "Record the patient's election", ElectionForm, "Record", "election recorded"),
    Action("record_contact", "Record a payer contact", ContactForm, "Record contact", "payer contact recorded"),
    Action("note", "Add a note", NoteForm, "Add note", "note added"),
    Action("confirm_balance", "Confirm the balance", CaseReasonForm, "Confirm", "balance confirmed"),
    Action("review_source", "Review the source", ReviewSourceForm, "Record review", "source review recorded"),
    Action("attach_document", "Attach a document", DocumentForm, "Attach", "document attached", multipart=True),
    Action("assign", "Assign", AssignForm, "Assign", "assignment changed", takes_case=True),
    Action("reopen", "Reopen", CaseReasonForm, "Reopen", "reopened"),
)}


def live_proposal(case):
    """The case's proposal waiting for a decision or to be carried out (one at most, a constraint)."""
    return next((p for p in case.proposals.all() if p.state in Proposal.LIVE), None)


def case_actions(case, user) -> list[str]:
    """What the case page offers `user` on `case` (its state and the user's role); the services decide."""
    s, S = case.state, Case.State
    manager = is_manager(user, case.practice_id)
    live = live_proposal(case)
    own = live is not None and live.proposed_by_id == user.pk
    names = []
    if s in (S.IDENTIFIED, S.WAITING_PAYER):
        names.append("investigate")
    if s != S.RESOLVED and case.investigation_started_on and not case.investigation_ended_on:
        names.append("end_investigation")
    if s in (S.IDENTIFIED, S.INVESTIGATING):
        names.append("wait_on_payer")
    if s in (S.IDENTIFIED, S.INVESTIGATING, S.WAITING_PAYER) and live is None:
        names.append("propose")
    if s == S.PROPOSED and live is not None and live.state == Proposal.State.PROPOSED and manager and not own:
        names += ["approve", "reject"]
    if s == S.APPROVED and live is not None and live.state == Proposal.State.APPROVED:
        names.append("carry_out")
    if s != S.RESOLVED and case.kind in NOTICE_KINDS:
        names += ["send_notice", "record_election"]
    if s != S.RESOLVED:
        names += ["record_contact", "note", "confirm_balance", "review_source", "attach_document", "assign"]
    else:
        names += ["note", "attach_document"]
        if manager:
            names.append("reopen")
    return names


def case_page_url(case_id) -> str:
    return reverse("admin:adjudication_case_change", args=[case_id])


class CasePagesMixin:
    """For CaseAdmin: /admin/adjudication/case/<id>/act/<action>/ (each action of the case page),
    <id>/documents/<doc>/ and <id>/notices/<notice>/letter/ (downloads)."""

    def backoffice_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:case_id>/act/<slug:action>/", wrap(self.action_view), name="adjudication_case_act"),
            path("<int:case_id>/documents/<int:document_id>/", wrap(self.document_view),
                 name="adjudication_case_document"),
            path("<int:case_id>/notices/<int:notice_id>/letter/", wrap(self.notice_letter_view),
                 name="adjudication_case_notice_letter"),
        ] + super().backoffice_urls()

    def _case(self, request, case_id) -> Case:
        require_member(self, request)
        return in_scope_or_404(request, Case.objects.select_related(
            "practice", "patient", "payer", "credit", "payer_credit", "encounter", "clock_rule", "assigned_to")
            .prefetch_related("proposals"), pk=case_id)

    def action_forms(self, case, user) -> list:
        """(action, form) for the case page: each allowed action with its empty form."""
        return [(ACTIONS[name], ACTIONS[name].form_for(case)) for name in case_actions(case, user)]

    def action_view(self, request, case_id, action):
        case = self._case(request, case_id)
        act = ACTIONS.get(action)
        if act is None:
            raise Http404(f"No case action {action!r}.")
        form = act.form_for(case, request.POST or None, request.FILES or None) if request.method == "POST" \
            else act.form_for(case)
        if request.method == "POST" and form.is_valid():
            done = run_service(form, self._perform, act=act, case=case, actor=request.user, data=form.cleaned_data)
            if done is not None:
                case.refresh_from_db()
                self.message_user(request, f"Case {case.pk}: {act.done} ({case.get_state_display().lower()}).",
                                  messages.SUCCESS)
                return HttpResponseRedirect(case_page_url(case.pk))
            for errors in form.errors.values():  # the service's refusal, on its field or above the form
                for error in errors:
                    self.message_user(request, f"Case {case.pk}: {error}", messages.ERROR)
        elif request.method == "POST":
            self.message_user(request, f"Case {case.pk}: {act.label.lower()} not done; correct the form below.",
                              messages.ERROR)
        offered = act.name in case_actions(case, request.user)
        intro = "" if offered else (f"This case is {case.get_state_display().lower()}: "
                                    f"“{act.label}” is not offered to you now.")
        return render_page(self, request, "admin/settle/form_page.html", title=f"Case {case.pk}: {act.label}",
                           crumbs=[(reverse("admin:adjudication_case_changelist"), "Case work queue"),
                                   (case_page_url(case.pk), f"Case {case.pk}")],
                           form=form, summary=case_summary(case), intro=intro,
                           buttons=[("_save", act.button, "default")] if offered else [],
                           cancel_url=case_page_url(case.pk))

    @staticmethod
    def _perform(*, act, case, actor, data):
        result = CALLS[act.name](case, actor, data)
        return result if result is not None else True

    def document_view(self, request, case_id, document_id):
        case = self._case(request, case_id)
        doc = CaseDocument.objects.filter(pk=document_id, case_id=case.pk).first()
        if doc is None:
            raise Http404("No document of this case matches the given query.")
        return FileResponse(doc.file.open("rb"), as_attachment=True, filename=doc.filename,
                            content_type=doc.content_type or "application/octet-stream")

    def notice_letter_view(self, request, case_id, notice_id):
        case = self._case(request, case_id)
        notice = PatientNotice.objects.filter(pk=notice_id, case_id=case.pk).first()
        if notice is None or not notice.letter:
            raise Http404("No notice letter of this case matches the given query.")
        return FileResponse(notice.letter.open("rb"), as_attachment=True,
                            filename=f"notice-case-{case.pk}-{notice.sent_on:%Y-%m-%d}.pdf",
                            content_type="application/pdf")


def case_summary(case) -> list:
    """The case in a few lines, above an action's form."""
    who = str(case.patient) if case.patient_id else str(case.payer) if case.payer_id else "—"
    rows = [("Case", f"#{case.pk} · {case.get_kind_display()} · {case.get_cause_display()}"), ("Who", who),
            ("Amount identified", money(case.amount)), ("State", case.get_state_display()),
            ("Due", case.due_on.strftime("%m/%d/%Y") if case.due_on else "no due date (paused or stopped)")]
    if case.assigned_to_id:
        rows.append(("Assigned to", str(case.assigned_to)))
    return rows


# --- "scan now", the refund work list, unclaimed property ------------------------------------------------


class ScanNowForm(f.PracticeChoiceMixin, forms.Form):
    practice = forms.ModelChoiceField(queryset=None)
    reason = f.reason_field(initial="Scan now")

    def __init__(self, *args, practice_ids, **kwargs):
        super().__init__(*args, **kwargs)
        self.setup_practice(practice_ids)


class HolderReportForm(f.PracticeChoiceMixin, forms.Form):
    practice = forms.ModelChoiceField(queryset=None)
    year = forms.IntegerField(min_value=2000, max_value=2100, help_text="The report year (presumed abandoned then).")
    us_state = forms.CharField(label="State", max_length=2, required=False, help_text="Two letters; blank: every state.")

    def __init__(self, *args, practice_ids, **kwargs):
        super().__init__(*args, **kwargs)
        self.setup_practice(practice_ids)

    def clean_us_state(self):
        value = (self.cleaned_data.get("us_state") or "").strip().upper()
        if value and not (len(value) == 2 and value.isascii() and value.isalpha()):
            raise forms.ValidationError("Two letters, e.g. TX.")
        return value


def own_practice_or_403(request, practice) -> None:
    if not request.user.is_superuser and practice.pk not in practice_ids(request):
        raise PermissionDenied


def state_label(value: str, display: str) -> str:
    return format_html('<span class="state state-{}">{}</span>', value, display)



class QueuePagesMixin:
    """For CaseAdmin: /admin/adjudication/case/scan-now/ and /refund-work-list/."""
    WORK_LIST_SHOWN = 500

    def backoffice_urls(self):
        wrap = self.admin_site.admin_view
        return [path("scan-now/", wrap(self.scan_now_view), name="adjudication_case_scan_now"),
                path("refund-work-list/", wrap(self.refund_work_list_view), name="adjudication_case_refund_work_list")]

    def scan_now_view(self, request):
        require_member(self, request)
        form = ScanNowForm(request.POST or None, practice_ids=practice_ids(request))
        if request.method == "POST" and form.is_valid():
            practice = form.cleaned_data["practice"]
            own_practice_or_403(request, practice)
            result = run_service(form, scan_now, practice_id=practice.pk, actor=request.user,
                                 reason=form.cleaned_data["reason"])
            if result is not None:
                self.message_user(request, f"Scan of {practice}: {result.opened} case(s) opened, {result.closed} "
                                           f"closed (their money is gone), {result.clocks_updated} clock(s) updated, "
                                           f"{result.unclaimed_listed} unclaimed-property item(s) listed, in "
                                           f"{result.seconds:.1f} s.", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:adjudication_case_changelist"))
        return render_page(self, request, "admin/settle/form_page.html", title="Scan for credit balances now",
                           crumbs=[(reverse("admin:adjudication_case_changelist"), "Case work queue")], form=form,
                           intro="Finds every credit balance of the practice now, as the nightly scan does: opens a "
                                 "case for each new one (never two for the same money), closes the cases whose money "
                                 "is gone, updates the clocks and lists unclaimed property.",
                           buttons=[("_save", "Scan now", "default")],
                           cancel_url=reverse("admin:adjudication_case_changelist"))

    def refund_work_list_view(self, request):
        require_member(self, request)
        ids = practice_ids(request)
        form = WorkListRefundForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            chosen = sorted({int(x) for x in request.POST.getlist("credit") if x.isdigit()})
            if not chosen:
                form.add_error(None, "Select the credits to refund.")
            else:
                refunds = run_service(form, refund_work_list_refund, credit_ids=chosen, actor=request.user,
                                      reason=form.cleaned_data["reason"])
                if refunds is not None:
                    waiting = sum(1 for r in refunds if r.state == "requested")
                    total = sum((r.amount for r in refunds), 0)
                    self.message_user(request, f"Refunds asked for: {len(refunds)}, {money(total)} in all"
                                               + (f"; {waiting} wait for a manager's approval." if waiting else "."),
                                      messages.SUCCESS)
                    return HttpResponseRedirect(reverse("admin:adjudication_case_refund_work_list"))
            for error in form.non_field_errors():
                self.message_user(request, str(error), messages.ERROR)
        rows, total, count = [], 0, 0
        for practice_id in ids:
            names = policy_names(practice_id)
            qs = refund_work_list(practice_id=practice_id)
            for credit in qs[: self.WORK_LIST_SHOWN]:
                credit.policy_name = names.get(credit.policy_id, "")
                rows.append(credit)
            agg = qs.order_by().aggregate(n=Count("pk"), s=Sum("on_hand"))
            count, total = count + (agg["n"] or 0), total + (agg["s"] or 0)
        return render_page(self, request, "admin/adjudication/refund_work_list.html", title="Refund work list",
                           crumbs=[(reverse("admin:adjudication_case_changelist"), "Case work queue")], form=form,
                           rows=rows, count=count, total=total, shown=self.WORK_LIST_SHOWN,
                           multi_practice=len(ids) > 1)


class WorkListRefundForm(forms.Form):
    reason = f.reason_field(initial="Refund policy")


class UnclaimedPagesMixin:
    """For UnclaimedPropertyAdmin: /admin/adjudication/unclaimedproperty/holder-report/ and <id>/letter/."""

    def backoffice_urls(self):
        wrap = self.admin_site.admin_view
        return [path("holder-report/", wrap(self.holder_report_view), name="adjudication_unclaimedproperty_report"),
                path("<int:item_id>/letter/", wrap(self.letter_view), name="adjudication_unclaimedproperty_letter")]

    def holder_report_view(self, request):
        require_member(self, request)
        form = HolderReportForm(request.GET or None, practice_ids=practice_ids(request))
        if form.is_bound and form.is_valid():
            practice, year, state = form.cleaned_data["practice"], form.cleaned_data["year"], \
                form.cleaned_data["us_state"]
            own_practice_or_403(request, practice)
            text = run_service(form, holder_report_csv, practice_id=practice.pk, year=year, us_state=state or None,
                               actor=request.user)
            if text is not None:
                response = HttpResponse(text, content_type="text/csv; charset=utf-8")
                name = f"holder-report-{year}{'-' + state if state else ''}.csv"
                response["Content-Disposition"] = f'attachment; filename="{name}"'
                return response
        return render_page(self, request, "admin/adjudication/holder_report.html", title="Holder report (CSV)",
                           crumbs=[(reverse("admin:adjudication_unclaimedproperty_changelist"),
                                    "Unclaimed property")], form=form,
                           cancel_url=reverse("admin:adjudication_unclaimedproperty_changelist"))

    def letter_view(self, request, item_id):
        require_member(self, request)
        item = in_scope_or_404(request, UnclaimedProperty.objects.all(), pk=item_id)
        if not item.letter:
            raise Http404("This item has no due-diligence letter.")
        return FileResponse(item.letter.open("rb"), as_attachment=True,
                            filename=f"due-diligence-{item.pk}-{item.letter_sent_on or ''}.pdf",
                            content_type="application/pdf")


# --- the case page --------------------------------------------------------------------------------------

def clock_words(case) -> str:
    """The clock in words: running, paused by an investigation, stopped by the election, or none."""
    if case.state == Case.State.RESOLVED:
        return "resolved"
    if case.clock_stopped:
        return "stopped by the patient's election"
    if case.investigation_started_on and not case.investigation_ended_on and case.due_on is None:
        return f"paused by a good-faith investigation since {case.investigation_started_on:%m/%d/%Y}"
    if case.due_on is None:
        return "no clock rule applies" if not case.clock_rule_id else "no due date"
    return "running"


def covered_links(case) -> list:
    """(label, url, text) of what the case covers: the credit, its payment and origin visit, the payer
    credit, its claim, the visit."""
    links = []
    if case.credit_id:
        c = case.credit
        links.append(("Credit", reverse("admin:credits_credit_change", args=[c.pk]),
                      (f"#{c.pk} {c.get_source_display().lower()}, {money(c.amount)} ({c.get_state_display().lower()},"
                      f" {money(c.on_hand)} on hand)")))
        if c.payment_id:
            links.append(("Payment", reverse("admin:ledger_payment_change", args=[c.payment_id]), f"#{c.payment_id}"))
        if c.origin_encounter_id:
            links.append(("Origin visit", reverse("admin:ledger_encounter_change", args=[c.origin_encounter_id]),
                          f"DoS {c.origin_encounter.date_of_service:%m/%d/%Y}"))
    if case.payer_credit_id:
        pc = case.payer_credit
        links.append(("Payer credit", reverse("admin:credits_payercredit_change", args=[pc.pk]),
                      (f"#{pc.pk} {pc.get_reason_display().lower()}, {money(pc.amount)} "
                      f"({pc.get_state_display().lower()})")))
        if pc.claim_id:
            links.append(("Claim", reverse("admin:ledger_claim_change", args=[pc.claim_id]),
                          pc.claim.claim_number + (f" · payer's {pc.payer_claim_number}" if pc.payer_claim_number
                                                   else "")))
    if case.encounter_id:
        e = case.encounter
        links.append(("Visit", reverse("admin:ledger_encounter_change", args=[e.pk]),
                      f"DoS {e.date_of_service:%m/%d/%Y}, charge {money(e.charge)}"))
        for claim in e.claims.all():
            links.append(("Claim", reverse("admin:ledger_claim_change", args=[claim.pk]),
                          f"{claim.claim_number} · {claim.payer} · {claim.get_state_display().lower()}"))
    if case.patient_id:
        links.append(("Patient", reverse("admin:ledger_patient_change", args=[case.patient_id]), str(case.patient)))
    if case.payer_id:
        links.append(("Payer", reverse("admin:ledger_payer_change", args=[case.payer_id]), str(case.payer)))
    return links


def case_page_context(model_admin, request, obj) -> dict:
    """What the case page shows (templates/admin/adjudication/case/change_form.html)."""
    case = case_detail(obj.pk, request.user)
    if case.credit_id:
        case.credit = Credit.objects.select_related("payment", "origin_encounter").get(pk=case.credit_id)
    if case.payer_credit_id:
        case.payer_credit = PayerCredit.objects.select_related("claim").get(pk=case.payer_credit_id)
    if case.encounter_id:
        case.encounter = Encounter.objects.prefetch_related("claims__payer").get(pk=case.encounter_id)
    live = live_proposal(case)
    return {
        "case": case, "clock": clock_words(case), "covered": covered_links(case),
        "timeline": list(case_timeline(case)), "contacts": list(case_contacts(case)),
        "proposals": list(case.proposals.all()), "live": live,
        "own_proposal": live is not None and live.proposed_by_id == request.user.pk,
        "manager": is_manager(request.user, case.practice_id),
        "notices": list(PatientNotice.objects.filter(case_id=case.pk).order_by("sent_on", "pk")),
        "unclaimed": UnclaimedProperty.objects.filter(case_id=case.pk).first(),
        "case_actions": model_admin.action_forms(case, request.user),
        "title": f"Case {case.pk}: {case.get_cause_display().lower()}",
        "subtitle": f"Case {case.pk} · {case.get_state_display()} · {money(case.money_left)} now",
    }
