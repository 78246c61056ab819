"""Back-office admin of credit-balance adjudication (issue 11, item 9; DOMAIN rules 15-19):

* the case work queue (the Case list: adjudication.selectors' queue columns, sorted by due date,
  filters, a totals row, "Scan now" and the refund work list above it);
* the case page (the Case change page: a heading card, what it covers with links, the timeline,
  payer contacts, proposals, and the actions its state allows: backoffice/views/adjudication.py);
* the managers' proposal approvals (the Proposal list: the live proposals waiting for a decision);
* the unclaimed-property list (with "send letter", "turn over" and the holder report).

The rules table (ClockRule) and the practice's adjudication settings, refund policies and approval
bands are in backoffice/admin/adjudication_rules.py.

The tenancy, read-only and no-delete rules of backoffice/admin/base.py hold here too."""

from django.contrib import admin
from django.db.models import BooleanField, ExpressionWrapper, F, OuterRef, Q, Subquery
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.text import Truncator

from adjudication.models import (
    Case,
    Proposal,
    UnclaimedProperty,
)
from adjudication.selectors import annotate_queue, queue_totals
from adjudication.services.proposals import case_approve, case_reject
from adjudication.services.unclaimed import unclaimed_send_letter, unclaimed_turn_over
from backoffice.admin.base import (
    BackofficeAdminMixin,
    PracticeFilter,
    ScopedHistoryAdmin,
    confirm_with_reason,
    each_selected,
    money_cell,
    user_practice_ids,
)
from backoffice.views.adjudication import (
    CasePagesMixin,
    QueuePagesMixin,
    UnclaimedPagesMixin,
    case_page_context,
    case_page_url,
)
from backoffice.views.common import admin_url, money, patient_url
from ledger.access import is_manager
from ledger.models import Payer

# --- the work queue ---------------------------------------------------------------------------------------

CAUSE_SHORT = {
    Case.Cause.PATIENT_OVERPAYMENT: "patient overpaid", Case.Cause.DUPLICATE: "paid twice",
    Case.Cause.ABOVE_CHARGE: "above charge", Case.Cause.WRONG_PRIMARY: "wrong primary",
    Case.Cause.TAKEBACK: "take-back pending", Case.Cause.PAID_BEYOND_CHARGE: "paid beyond charge",
    Case.Cause.OTHER: "other",
}
UNCLAIMED_SHORT = {UnclaimedProperty.State.LISTED: "listed", UnclaimedProperty.State.LETTER_SENT: "letter sent",
                   UnclaimedProperty.State.TURNED_OVER: "turned over", UnclaimedProperty.State.RELEASED: "released"}
KIND_SHORT = {Case.Kind.PATIENT_CREDIT: "patient credit", Case.Kind.PAYER_CREDIT: "payer credit",
              Case.Kind.ENCOUNTER: "visit overpaid"}
STATE_SHORT = {
    Case.State.IDENTIFIED: "identified", Case.State.INVESTIGATING: "investigating",
    Case.State.WAITING_PAYER: "waiting on payer", Case.State.PROPOSED: "proposed", Case.State.APPROVED: "approved",
    Case.State.RESOLVED: "resolved",
}


class ChoicesFirstFilter(admin.SimpleListFilter):
    """A filter whose "no choice" means `default_label` (e.g. open cases only), with "All" as a choice."""
    default_label = "All"

    def choices(self, changelist):
        yield {"selected": self.value() is None, "display": self.default_label,
               "query_string": changelist.get_query_string(remove=[self.parameter_name])}
        for lookup, title in self.lookup_choices:
            yield {"selected": self.value() == str(lookup),
                   "query_string": changelist.get_query_string({self.parameter_name: lookup}), "display": title}


class CaseStateFilter(ChoicesFirstFilter):
    title = "state"
    parameter_name = "state"
    default_label = "Open (not resolved)"

    def lookups(self, request, model_admin):
        return [("all", "All")] + list(Case.State.choices)

    def queryset(self, request, queryset):
        value = self.value()
        if value == "all":
            return queryset
        if value in Case.State.values:
            return queryset.filter(state=value)
        return queryset.exclude(state=Case.State.RESOLVED)


class CauseFilter(admin.SimpleListFilter):
    title = "cause"
    parameter_name = "cause"

    def lookups(self, request, model_admin):
        return Case.Cause.choices

    def queryset(self, request, queryset):
        return queryset.filter(cause=self.value()) if self.value() in Case.Cause.values else queryset


class SourceFilter(admin.SimpleListFilter):
    title = "source"
    parameter_name = "kind"

    def lookups(self, request, model_admin):
        return Case.Kind.choices

    def queryset(self, request, queryset):
        return queryset.filter(kind=self.value()) if self.value() in Case.Kind.values else queryset


class PayerTypeFilter(admin.SimpleListFilter):
    title = "payer type"
    parameter_name = "payer_type"

    def lookups(self, request, model_admin):
        return list(Payer.Type.choices) + [("none", "No payer (patient money)")]

    def queryset(self, request, queryset):
        if self.value() == "none":
            return queryset.filter(payer_type="")
        return queryset.filter(payer_type=self.value()) if self.value() in Payer.Type.values else queryset


class DueWithinFilter(admin.SimpleListFilter):
    title = "due within"
    parameter_name = "due_within"
    DAYS = (7, 14, 30, 60)

    def lookups(self, request, model_admin):
        return [("overdue", "Overdue")] + [(str(d), f"{d} days") for d in self.DAYS] + [("none", "No due date")]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "overdue":
            return queryset.filter(days_left__lt=0)
        if value == "none":
            return queryset.filter(due_on__isnull=True)
        if value in {str(d) for d in self.DAYS}:
            return queryset.filter(days_left__lte=int(value))  # overdue included, like the API's filter
        return queryset


class AssignedFilter(admin.SimpleListFilter):
    title = "assigned to"
    parameter_name = "assigned"

    def lookups(self, request, model_admin):
        return (("me", "Me"), ("anyone", "Anyone"), ("nobody", "Unassigned"))

    def queryset(self, request, queryset):
        value = self.value()
        if value == "me":
            return queryset.filter(assigned_to_id=request.user.pk)
        if value == "anyone":
            return queryset.filter(assigned_to__isnull=False)
        if value == "nobody":
            return queryset.filter(assigned_to__isnull=True)
        return queryset


class FlaggedFilter(admin.SimpleListFilter):
    title = "flagged"
    parameter_name = "flagged"

    def lookups(self, request, model_admin):
        return (("yes", "Flagged (inside the warning window)"), ("no", "Not flagged"),
                ("follow_up", "Follow-up overdue"))

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(flagged=True)
        if self.value() == "no":
            return queryset.filter(flagged=False)
        if self.value() == "follow_up":
            return queryset.filter(follow_up_overdue=True)
        return queryset


def state_span(value: str, display: str):
    return format_html('<span class="state state-{}">{}</span>', value, display)


class AdjudicationListMixin:
    """Lists of this module: one count per page, no facet counts, the practice column only for
    staff of several practices."""
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 100

    def get_list_display(self, request):
        shown = list(self.list_display)
        if not request.user.is_superuser and len(user_practice_ids(request)) < 2 and "practice" in shown:
            shown.remove("practice")
        return shown


@admin.register(Case)
class CaseAdmin(CasePagesMixin, QueuePagesMixin, AdjudicationListMixin, BackofficeAdminMixin, ScopedHistoryAdmin):
    """The case work queue and the case page."""
    list_display = ("case_link", "who", "money_left_now", "state_label", "due", "follow_up", "practice")
    list_display_links = None
    list_filter = (CaseStateFilter, FlaggedFilter, DueWithinFilter, CauseFilter, SourceFilter, PayerTypeFilter,
                   AssignedFilter, ("practice", PracticeFilter))
    search_fields = ("=id", "patient__last_name", "patient__first_name", "patient__account_number", "payer__name",
                     "payer_credit__payer_claim_number")
    search_help_text = "Case number, patient name or account, payer, payer claim number"
    list_select_related = ("patient", "payer", "assigned_to", "practice")
    ordering = (F("due_on").asc(nulls_last=True), "id")
    change_list_template = "admin/adjudication/case/change_list.html"
    change_form_template = "admin/adjudication/case/change_form.html"
    actions = None

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        ids = user_practice_ids(request)
        return annotate_queue(qs, ids)

    def changelist_tools(self, request):
        return [(reverse("admin:adjudication_case_refund_work_list"), "Refund work list"),
                (reverse("admin:adjudication_case_scan_now"), "Scan now")]

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, {"title": "Case work queue", **(extra_context or {})})
        cl = getattr(response, "context_data", {}).get("cl") if isinstance(response, TemplateResponse) else None
        if cl is not None:
            response.context_data["totals"] = queue_totals(cl.queryset)
        return response

    # -- columns: six, two lines each, so the queue fits 1280 px with the sidebar and the filter column open
    @admin.display(description="case")
    def case_link(self, obj):
        return format_html('<a href="{}">#{}</a><div class="settle-muted">{}</div>', case_page_url(obj.pk), obj.pk,
                           KIND_SHORT.get(obj.kind, obj.kind))

    @admin.display(description="patient / payer", ordering="patient__last_name")
    def who(self, obj):
        cause = CAUSE_SHORT.get(obj.cause, obj.cause)
        if obj.patient_id:
            return format_html('<a href="{}">{}, {}</a><div class="settle-muted">{}</div>', patient_url(obj.patient_id),
                               obj.patient.last_name, obj.patient.first_name, cause)
        return format_html('{}<div class="settle-muted">{}</div>', obj.payer if obj.payer_id else "—", cause)

    @admin.display(description="amount now", ordering="money_left")
    def money_left_now(self, obj):
        return money_cell(obj.money_left)

    @admin.display(description="state", ordering="state")
    def state_label(self, obj):
        who = obj.assigned_to.get_username() if obj.assigned_to_id else "unassigned"
        return format_html('{}<div class="settle-muted">{}</div>', state_span(obj.state, STATE_SHORT.get(obj.state,
                                                                                                       obj.state)), who)

    @admin.display(description="due", ordering=F("due_on").asc(nulls_last=True))
    def due(self, obj):
        if obj.state == Case.State.RESOLVED:
            return "—"
        if not obj.due_on:
            return "paused" if obj.investigation_started_on and not obj.investigation_ended_on else \
                "stopped" if obj.clock_stopped else "no due date"
        flag = mark_safe(' <span class="settle-flag" title="inside the warning window">⚑</span>') if obj.flagged \
            else ""
        if obj.days_left < 0:
            left = format_html('<span class="settle-overdue">{} days overdue</span>', -obj.days_left)
        else:
            left = f"{obj.days_left} day{'s' if obj.days_left != 1 else ''} left"
        return format_html('{}{}<div class="settle-muted">{}</div>', obj.due_on.strftime("%m/%d/%Y"), flag, left)

    @admin.display(description="follow-up", ordering="follow_up_on")
    def follow_up(self, obj):
        if not obj.follow_up_on:
            return "—"
        day = obj.follow_up_on.strftime("%m/%d/%Y")
        return format_html('{}<div class="settle-overdue" title="follow-up overdue">overdue</div>', day) \
            if obj.follow_up_overdue else day

    # -- the case page
    def has_change_permission(self, request, obj=None):
        return False  # a case changes only through its actions (the services)

    def has_add_permission(self, request):
        return False  # the scan opens cases

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context.update(case_page_context(self, request, obj))
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)


# --- the managers' proposal approvals --------------------------------------------------------------------

class ProposalStateFilter(ChoicesFirstFilter):
    title = "state"
    parameter_name = "state"
    default_label = "Waiting for a decision"

    def lookups(self, request, model_admin):
        return [("all", "All")] + list(Proposal.State.choices)

    def queryset(self, request, queryset):
        value = self.value()
        if value == "all":
            return queryset
        return queryset.filter(state=value if value in Proposal.State.values else Proposal.State.PROPOSED)


@admin.register(Proposal)
class ProposalAdmin(AdjudicationListMixin, BackofficeAdminMixin, ScopedHistoryAdmin):
    """Proposed resolutions; by default the managers' queue of those waiting for a decision (rule 16)."""
    practice_field = "case__practice"
    list_display = ("proposal", "who", "money_amount", "proposed", "short_reason", "state_label")
    list_display_links = None
    list_filter = (ProposalStateFilter, "kind", ("case__practice", PracticeFilter))
    search_fields = ("=id", "=case__id", "case__patient__last_name", "case__payer__name", "reason")
    list_select_related = ("case", "case__patient", "case__payer", "proposed_by", "decided_by")
    ordering = ("proposed_at", "pk")
    actions = ("approve_selected", "reject_selected")

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        cases = annotate_queue(Case.objects.filter(pk=OuterRef("case_id")), user_practice_ids(request))
        own = ExpressionWrapper(Q(proposed_by_id=request.user.pk), output_field=BooleanField())
        return qs.annotate(case_money_left=Subquery(cases.values("money_left")[:1]), own=own)

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {"title": "Proposals awaiting a decision", **(extra_context or {})})

    @admin.display(description="proposal")
    def proposal(self, obj):
        return format_html('#{}<div><a href="{}">case #{}</a></div>', obj.pk, case_page_url(obj.case_id), obj.case_id)

    @admin.display(description="patient / payer", ordering="case__patient__last_name")
    def who(self, obj):
        case = obj.case
        name = f"{case.patient.last_name}, {case.patient.first_name}" if case.patient_id else \
            str(case.payer) if case.payer_id else "—"
        kind = obj.get_kind_display() + (f" ({obj.method.replace('_', ' ')})" if obj.method else "")
        return format_html('{}<div class="settle-muted">{}</div>', name, kind)

    @admin.display(description="amount", ordering="amount")
    def money_amount(self, obj):
        return format_html('<span class="money">{}</span><div class="settle-muted money">{} left</div>',
                           money(obj.amount), money(getattr(obj, "case_money_left", None)))

    @admin.display(description="proposed", ordering="proposed_at")
    def proposed(self, obj):
        return format_html('{}<div class="settle-muted">{}</div>', obj.proposed_by.get_username(),
                           obj.proposed_at.strftime("%m/%d/%Y"))

    @admin.display(description="reason")
    def short_reason(self, obj):
        text = Truncator(obj.reason).chars(60)
        if obj.refusal:
            return format_html('{}<div class="settle-overdue">refused: {}</div>', text, Truncator(obj.refusal).chars(80))
        return text

    @admin.display(description="state", ordering="state")
    def state_label(self, obj):
        label = state_span(obj.state, obj.get_state_display().split(" when ")[0])
        if obj.decided_by_id:
            return format_html('{}<div class="settle-muted">{}</div>', label, obj.decided_by.get_username())
        if obj.state != Proposal.State.PROPOSED:
            return label
        if getattr(obj, "own", False):
            return format_html('{}<div class="settle-muted">your proposal: another manager decides</div>', label)
        return format_html('{}<div><a href="{}#case-actions">Decide</a></div>', label, case_page_url(obj.case_id))

    # -- decisions
    def has_decide_permission(self, request):
        return self.is_member(request) and any(is_manager(request.user, pid) for pid in user_practice_ids(request))

    def _decide(self, request, queryset, *, service, verb: str):
        return each_selected(self, request, queryset, label=lambda p: f"Proposal #{p.pk} (case {p.case_id})",
                             call=lambda row, reason: service(case=row.case_id, actor=request.user, reason=reason),
                             what=f"Proposals {verb}")

    @admin.action(description="Approve selected proposals", permissions=["decide"])
    def approve_selected(self, request, queryset):
        return confirm_with_reason(
            self, request, queryset, action="approve_selected", title="Approve proposals",
            question="Approve these resolutions: each is carried out at once through the money services when it "
                     "can be (a payer refund without its check number waits to be carried out). A manager other than "
                     "the proposer approves (four eyes); if the money changed meanwhile, the proposal is refused "
                     "and its case goes back to proposed, with nothing done.",
            perform=self._decide(request, queryset, service=case_approve, verb="approved"), button="Approve")

    @admin.action(description="Reject selected proposals", permissions=["decide"])
    def reject_selected(self, request, queryset):
        return confirm_with_reason(
            self, request, queryset, action="reject_selected", title="Reject proposals",
            question="Reject these resolutions: their cases go back to investigating.",
            perform=self._decide(request, queryset, service=case_reject, verb="rejected"), button="Reject")


# --- unclaimed property ------------------------------------------------------------------------------------

@admin.register(UnclaimedProperty)
class UnclaimedPropertyAdmin(UnclaimedPagesMixin, AdjudicationListMixin, BackofficeAdminMixin, ScopedHistoryAdmin):
    """Credits past their owner state's dormancy (rule 17, example L)."""
    list_display = ("item", "owner", "money_amount", "dormant", "due", "state_label", "practice")
    list_display_links = None
    list_filter = ("state", "owner_state", "report_year", ("practice", PracticeFilter))
    search_fields = ("=id", "=case__id", "credit__patient__last_name", "credit__patient__account_number")
    list_select_related = ("credit__patient", "case", "practice")
    ordering = ("report_due_on", "pk")
    actions = ("send_letters", "turn_over")

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {"title": "Unclaimed property", **(extra_context or {})})

    def changelist_tools(self, request):
        return [(reverse("admin:adjudication_unclaimedproperty_report"), "Holder report (CSV)")]

    @admin.display(description="item")
    def item(self, obj):
        letter = format_html(' <a href="{}">letter</a>', admin_url("adjudication_unclaimedproperty_letter", obj.pk)) \
            if obj.letter else ""
        return format_html('#{}{}<div><a href="{}">case #{}</a></div>', obj.pk, letter, case_page_url(obj.case_id),
                           obj.case_id)

    @admin.display(description="owner", ordering="credit__patient__last_name")
    def owner(self, obj):
        p = obj.credit.patient
        return format_html('<a href="{}">{}, {}</a><div class="settle-muted">{}</div>', patient_url(p.pk, "credits"),
                           p.last_name, p.first_name, obj.owner_state)

    @admin.display(description="amount", ordering="amount")
    def money_amount(self, obj):
        return money_cell(obj.amount)

    @admin.display(description="last activity", ordering="presumed_on")
    def dormant(self, obj):
        return format_html('{}<div class="settle-muted">presumed {}</div>', obj.last_activity_on.strftime("%m/%d/%Y"),
                           obj.presumed_on.strftime("%m/%d/%Y"))

    @admin.display(description="due", ordering="report_due_on")
    def due(self, obj):
        if obj.letter_sent_on:
            letter = f"letter sent {obj.letter_sent_on:%m/%d/%Y}"
        else:
            letter = f"letter by {obj.letter_due_on:%m/%d/%Y}" if obj.letter_due_on else "no letter needed"
        return format_html('{}<div>report {}</div>', letter, obj.report_due_on.strftime("%m/%d/%Y"))

    @admin.display(description="state", ordering="state")
    def state_label(self, obj):
        return state_span(obj.state, UNCLAIMED_SHORT.get(obj.state, obj.state))

    def has_act_permission(self, request):
        return self.is_member(request)

    def _each(self, request, queryset, *, service, verb):
        return each_selected(self, request, queryset, label=lambda i: f"Item #{i.pk}", what=verb,
                             call=lambda row, reason: service(item=row.pk, actor=request.user, reason=reason))

    @admin.action(description="Send the due-diligence letter", permissions=["act"])
    def send_letters(self, request, queryset):
        return confirm_with_reason(
            self, request, queryset, action="send_letters", title="Send due-diligence letters",
            question="A letter (PDF) to each owner's last known address, stored with the item.",
            perform=self._each(request, queryset, service=unclaimed_send_letter, verb="Letters sent"),
            objects=queryset.select_related("credit__patient"), button="Send letters")

    def has_turn_over_permission(self, request):  # a manager's decision; billing staff propose it on the case
        return self.is_member(request) and any(is_manager(request.user, pid) for pid in user_practice_ids(request))

    @admin.action(description="Turn over to the state", permissions=["turn_over"])
    def turn_over(self, request, queryset):
        return confirm_with_reason(
            self, request, queryset, action="turn_over", title="Turn over as unclaimed property",
            question="Each credit is removed with the reason “unclaimed property, <state>”, it goes on the holder "
                     "report, and its case is resolved. Refused before the due-diligence letter when one is needed.",
            perform=self._each(request, queryset, service=unclaimed_turn_over, verb="Turned over"),
            objects=queryset.select_related("credit__patient"), button="Turn over")
