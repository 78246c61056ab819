"""The back-office lists of rule 14 and the managers' queue (issue 5): patient responsibility (with
its filters, actions and CSV export), locked credits with bulk unlock, refunds awaiting approval. See
backoffice/admin/base.py for the tenancy and read-only rules every settle admin follows."""

from datetime import timedelta

from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import BooleanField, ExpressionWrapper, Prefetch, Q
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.text import Truncator

from backoffice.admin.base import (
    BackofficeAdminMixin,
    CreditsFilter,
    PracticeFilter,
    PracticeScopedAdmin,
    call_service,
    confirm_with_reason,
    money_cell,
    report,
    user_practice_ids,
)
from backoffice.admin.credits import RefundDecisionActions
from backoffice.models import LockedCredit, RefundApproval
from backoffice.views.common import admin_url, patient_url
from credits.models import Credit, PatientResponsibility, Refund
from credits.services import credits_apply, credits_unlock
from ledger.exports import csv_response
from ledger.models import Claim, encounter_open_claim

# --- back-office lists (issue 5) ------------------------------------------------------------------------

class RuleFourteenFilter(CreditsFilter):
    """DOMAIN rule 14 on the patient responsibility totals table."""
    available_field = "available"
    locked_field = "locked"


class BalanceFilter(admin.SimpleListFilter):
    """The list is of patients with a balance (due now or pending the payer) unless asked otherwise."""
    title = "balance"
    parameter_name = "balance"

    def lookups(self, request, model_admin):
        return (("due", "Owes now"), ("pending", "Pending the payer"), ("none", "No balance (credits only)"),
                ("all", "Everyone with a balance or credits"))

    def choices(self, changelist):
        yield {"selected": self.value() is None, "display": "Has a balance (due now or pending the payer)",
               "query_string": changelist.get_query_string(remove=[self.parameter_name])}
        for lookup, title in self.lookup_choices:
            yield {"selected": self.value() == lookup,
                   "query_string": changelist.get_query_string({self.parameter_name: lookup}), "display": title}

    def queryset(self, request, queryset):
        if self.value() == "all":
            return queryset
        if self.value() == "due":
            return queryset.filter(due_now__gt=0)
        if self.value() == "pending":
            return queryset.filter(pending_payer__gt=0)
        if self.value() == "none":
            return queryset.filter(due_now=0, pending_payer=0)
        # the same condition as the partial index responsibility_owes_idx (counted from it alone)
        return queryset.filter(Q(due_now__gt=0) | Q(pending_payer__gt=0))


class ReadOnlyListAdmin(BackofficeAdminMixin, PracticeScopedAdmin, admin.ModelAdmin):
    """A back-office list: nothing is edited on it; its rows open the objects' own pages."""
    list_display_links = None
    show_full_result_count = False  # one count per page, not two
    show_facets = admin.ShowFacets.NEVER  # facet counts would aggregate the whole table per filter choice
    list_per_page = 100
    list_title = ""

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {"title": self.list_title, **(extra_context or {})})

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_list_display(self, request):
        shown = list(self.list_display)
        if not request.user.is_superuser and len(user_practice_ids(request)) < 2 and "practice" in shown:
            shown.remove("practice")
        return shown


class ResponsibilityPaginator(Paginator):
    """Counts on the totals table alone (an index-only scan), and reads each page with the
    practice filtered on the patients too: the same rows (a row's practice is its patient's), but
    PostgreSQL then walks the patients' name index in order and stops after one page instead of
    sorting every patient of the practice."""
    def __init__(self, *args, practice_ids, **kwargs):
        super().__init__(*args, **kwargs)
        self.practice_ids = practice_ids

    def page(self, number):
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        top = bottom + self.per_page
        if top + self.orphans >= self.count:
            top = self.count
        rows = self.object_list.filter(patient__practice_id__in=self.practice_ids)[bottom:top]
        return self._get_page(rows, number, self)


def _patient_action_ids(queryset) -> list[int]:
    return sorted(set(queryset.values_list("patient_id", flat=True)))


@admin.register(PatientResponsibility)
class PatientResponsibilityAdmin(ReadOnlyListAdmin):
    """Patients with balances, what is due now apart from what is pending the payer, and their
    available and locked credit totals (rule 14)."""
    list_title = "Patient responsibility"
    list_display = ("account", "name", "practice", "money_due_now", "money_pending_payer", "money_available",
                    "money_locked", "links")
    computed_fields = ("name", "links")
    list_filter = (BalanceFilter, RuleFourteenFilter, ("practice", PracticeFilter))
    search_fields = ("patient__last_name", "patient__first_name", "patient__account_number")
    search_help_text = "Name or account number"
    list_select_related = ("patient", "practice")
    ordering = ("patient__last_name", "patient__first_name", "patient_id")
    actions = ("unlock_patients", "apply_credits_now", "export_csv")

    def get_paginator(self, request, queryset, per_page, orphans=0, allow_empty_first_page=True):
        if queryset.model is not PatientResponsibility:  # e.g. the history page's log entries
            return super().get_paginator(request, queryset, per_page, orphans, allow_empty_first_page)
        return ResponsibilityPaginator(queryset, per_page, orphans, allow_empty_first_page,
                                       practice_ids=user_practice_ids(request))

    def changelist_tools(self, request):
        query = request.GET.urlencode()
        return [(reverse("admin:credits_patientresponsibility_export") + (f"?{query}" if query else ""),
                 "Export CSV")]

    def backoffice_urls(self):
        return [path("export/", self.admin_site.admin_view(self.export_view),
                     name="credits_patientresponsibility_export")]

    @admin.display(description="account", ordering="patient__account_number")
    def account(self, obj):
        return format_html('<a href="{}">{}</a>', patient_url(obj.patient_id), obj.patient.account_number)

    @admin.display(description="patient", ordering="patient__last_name")
    def name(self, obj):
        return format_html('<a href="{}">{}, {}</a>', patient_url(obj.patient_id), obj.patient.last_name,
                           obj.patient.first_name)

    @admin.display(description="due now", ordering="due_now")
    def money_due_now(self, obj):
        return money_cell(obj.due_now)

    @admin.display(description="pending the payer", ordering="pending_payer")
    def money_pending_payer(self, obj):
        return money_cell(obj.pending_payer)

    @admin.display(description="available credit", ordering="available")
    def money_available(self, obj):
        return money_cell(obj.available)

    @admin.display(description="locked credit", ordering="locked")
    def money_locked(self, obj):
        return money_cell(obj.locked)

    @admin.display(description="")
    def links(self, obj):
        return format_html('<a href="{}">Take payment</a>', admin_url("ledger_patient_payment", obj.patient_id))

    # -- actions (the same services as the patient list's)
    def has_act_permission(self, request):
        return self.is_member(request)

    @admin.action(description="Unlock locked credits of selected patients", permissions=["act"])
    def unlock_patients(self, request, queryset):
        ids = _patient_action_ids(queryset)
        locked = Credit.objects.filter(patient_id__in=ids, state=Credit.State.LOCKED) \
            .select_related("patient", "locked_encounter").order_by("patient__last_name", "pk")
        if not locked.exists():
            self.message_user(request, "The selected patients have no locked credits.", messages.WARNING)
            return None

        def perform(reason):
            n, error = call_service(credits_unlock, patient_ids=ids, actor=request.user, reason=reason)
            report(self, request, done=n or 0, what="Credits unlocked", errors=[error] if error else [])

        return confirm_with_reason(
            self, request, queryset, action="unlock_patients", title="Unlock locked credits",
            question="These locked credits become available for any date of service of their patient "
                     "(DOMAIN rule 5, e.g. when a payer will never answer).",
            perform=perform, objects=locked, button="Unlock")

    @admin.action(description="Apply usable credits now", permissions=["act"])
    def apply_credits_now(self, request, queryset):
        ids = _patient_action_ids(queryset)

        def perform(reason):
            applied, total, errors = 0, 0, []
            for patient_id in ids:
                result, error = call_service(credits_apply, patient_id=patient_id, actor=request.user,
                                             reason=reason, respect_settings=False)
                if error:
                    errors.append(f"Patient {patient_id}: {error}")
                elif result.total:
                    applied, total = applied + 1, total + result.total
            report(self, request, done=applied, what=f"Applied {total} of credits; patients with something applied",
                   errors=errors)
            if not applied and not errors:
                self.message_user(request, "Nothing to apply: no usable credit meets an open balance.",
                                  messages.WARNING)

        return confirm_with_reason(
            self, request, queryset.select_related("patient"), action="apply_credits_now",
            title="Apply usable credits now",
            question="Apply these patients' usable credits to their open balances (credits locked to a date of "
                     "service pay only that date; the practice's auto-apply setting and the patient's exclusion "
                     "are ignored).",
            perform=perform)

    @admin.action(description="Export selected to CSV", permissions=["view"])
    def export_csv(self, request, queryset):
        return self._csv(queryset.order_by("patient__last_name", "patient__first_name", "patient_id"))

    def export_view(self, request):
        """The whole list as filtered, searched and sorted on screen, as CSV (scoped like the list)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            cl = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            return HttpResponseRedirect(reverse("admin:credits_patientresponsibility_changelist") + "?e=1")
        return self._csv(cl.get_queryset(request))

    @staticmethod
    def _csv(queryset):
        """Text cells neutralised against formula injection, amounts as plain numbers (ledger/exports.py)."""
        rows = ([r.patient.account_number, r.patient.last_name, r.patient.first_name, r.practice.name,
                 r.due_now, r.pending_payer, r.available, r.locked]
                for r in queryset.select_related("patient", "practice").iterator(chunk_size=2000))
        return csv_response("patient-responsibility.csv",
                            ["account_number", "last_name", "first_name", "practice", "due_now", "pending_payer",
                             "available_credit", "locked_credit"], rows)


class AgeFilter(admin.SimpleListFilter):
    title = "age"
    parameter_name = "age"
    BUCKETS = (("0-30", 0, 30), ("31-60", 31, 60), ("61-90", 61, 90), ("90+", 91, None))

    def lookups(self, request, model_admin):
        return [(name, f"{name} days") for name, _, _ in self.BUCKETS]

    def queryset(self, request, queryset):
        for name, low, high in self.BUCKETS:
            if self.value() == name:
                now = timezone.now()
                queryset = queryset.filter(created_at__lte=now - timedelta(days=low))
                if high is not None:
                    queryset = queryset.filter(created_at__gt=now - timedelta(days=high + 1))
        return queryset


class ClaimWaitFilter(admin.SimpleListFilter):
    title = "its date of service"
    parameter_name = "dos"

    def lookups(self, request, model_admin):
        return (("waiting", "Has a claim waiting on the payer"), ("settled", "No claim waiting (stale lock)"))

    def queryset(self, request, queryset):
        waiting = encounter_open_claim("locked_encounter_id")  # its DoS is pending the payer
        if self.value() == "waiting":
            return queryset.filter(waiting)
        if self.value() == "settled":
            return queryset.filter(~waiting)
        return queryset


@admin.register(LockedCredit)
class LockedCreditAdmin(ReadOnlyListAdmin):
    """Locked credits with their patient, DoS, amount, age and the claim they wait on (rules 4, 5)."""
    list_title = "Locked credits"
    list_display = ("credit", "patient_link", "account", "practice", "dos", "money_on_hand", "age", "waits_on",
                    "source")
    computed_fields = ("patient_link", "age", "waits_on")
    list_filter = (AgeFilter, ClaimWaitFilter, "source", ("practice", PracticeFilter))
    search_fields = ("patient__last_name", "patient__first_name", "patient__account_number",
                     "locked_encounter__claims__claim_number")
    search_help_text = "Patient name, account number or claim number"
    list_select_related = ("patient", "locked_encounter", "practice")
    ordering = ("created_at", "pk")
    actions = ("unlock_credits", "unlock_patients")

    def get_queryset(self, request):
        return super().get_queryset(request).filter(state=Credit.State.LOCKED).prefetch_related(
            Prefetch("locked_encounter__claims", queryset=Claim.objects.select_related("payer").order_by("pk")))

    @admin.display(description="credit", ordering="pk")
    def credit(self, obj):
        return format_html('<a href="{}">#{}</a>', admin_url("credits_credit_change", obj.pk), obj.pk)

    @admin.display(description="patient", ordering="patient__last_name")
    def patient_link(self, obj):
        return format_html('<a href="{}">{}, {}</a>', patient_url(obj.patient_id, "credits"), obj.patient.last_name,
                           obj.patient.first_name)

    @admin.display(description="account", ordering="patient__account_number")
    def account(self, obj):
        return obj.patient.account_number

    @admin.display(description="DoS", ordering="locked_encounter__date_of_service")
    def dos(self, obj):
        return obj.locked_encounter.date_of_service.strftime("%m/%d/%Y")

    @admin.display(description="amount", ordering="on_hand")
    def money_on_hand(self, obj):
        return money_cell(obj.on_hand)

    @admin.display(description="age", ordering="created_at")
    def age(self, obj):
        days = (timezone.now() - obj.created_at).days
        return f"{days} day{'s' if days != 1 else ''}"

    @admin.display(description="waits on")
    def waits_on(self, obj):
        claims = list(obj.locked_encounter.claims.all())
        if not claims:
            return "no claim"
        return format_html_join(mark_safe(""), '<div class="settle-nowrap"><a href="{}">{}</a> · {}</div>'
                                               '<div class="settle-muted">{}</div>', (
            (admin_url("ledger_claim_change", c.pk), c.claim_number, c.get_state_display(), c.payer)
            for c in claims))

    def has_unlock_permission(self, request):
        return self.is_member(request)

    @admin.action(description="Unlock selected credits", permissions=["unlock"])
    def unlock_credits(self, request, queryset):
        ids = list(queryset.values_list("pk", flat=True))
        locked = queryset.select_related("patient", "locked_encounter")

        def perform(reason):
            n, error = call_service(credits_unlock, credit_ids=ids, actor=request.user, reason=reason)
            report(self, request, done=n or 0, what="Credits unlocked", errors=[error] if error else [])

        return confirm_with_reason(
            self, request, queryset, action="unlock_credits", title="Unlock credits",
            question="These locked credits become available for any date of service of their patient "
                     "(DOMAIN rule 5, e.g. when a payer will never answer).",
            perform=perform, objects=locked, button="Unlock")

    @admin.action(description="Unlock all locked credits of the selected credits' patients", permissions=["unlock"])
    def unlock_patients(self, request, queryset):
        ids = _patient_action_ids(queryset)
        locked = Credit.objects.filter(patient_id__in=ids, state=Credit.State.LOCKED) \
            .select_related("patient", "locked_encounter").order_by("patient__last_name", "pk")

        def perform(reason):
            n, error = call_service(credits_unlock, patient_ids=ids, actor=request.user, reason=reason)
            report(self, request, done=n or 0, what="Credits unlocked", errors=[error] if error else [])

        return confirm_with_reason(
            self, request, queryset, action="unlock_patients", title="Unlock the patients' locked credits",
            question="Every locked credit of these patients becomes available for any of their dates of service "
                     "(DOMAIN rule 5).",
            perform=perform, objects=locked, button="Unlock")


@admin.register(RefundApproval)
class RefundApprovalAdmin(RefundDecisionActions, ReadOnlyListAdmin):
    """The managers' queue: refunds above the practice's threshold waiting for approval (rule 8)."""
    list_title = "Refunds awaiting a manager's approval"
    list_display = ("refund", "requested_at", "patient_link", "practice", "money_amount", "method", "requested_by",
                    "short_reason", "decide")
    computed_fields = ("patient_link", "decide")
    list_filter = ("method", ("practice", PracticeFilter))
    search_fields = ("=id", "patient__last_name", "patient__first_name", "patient__account_number", "reason")
    list_select_related = ("patient", "practice", "requested_by", "credit")
    ordering = ("requested_at", "pk")
    actions = ("approve_refunds", "reject_refunds")

    def get_queryset(self, request):
        own = ExpressionWrapper(Q(requested_by_id=request.user.pk), output_field=BooleanField())
        return super().get_queryset(request).filter(state=Refund.State.REQUESTED, needs_approval=True) \
            .annotate(own=own)

    @admin.display(description="refund", ordering="pk")
    def refund(self, obj):
        return format_html('<a href="{}">#{}</a>', admin_url("credits_refund_change", obj.pk), obj.pk)

    @admin.display(description="patient", ordering="patient__last_name")
    def patient_link(self, obj):
        return format_html('<a href="{}">{}</a>', patient_url(obj.patient_id, "refunds"), obj.patient)

    @admin.display(description="amount", ordering="amount")
    def money_amount(self, obj):
        return money_cell(obj.amount)

    @admin.display(description="reason")
    def short_reason(self, obj):
        return Truncator(obj.reason).chars(60)

    @admin.display(description="")
    def decide(self, obj):
        label = "Your request: another manager decides" if getattr(obj, "own", False) else "Approve / reject"
        return format_html('<a href="{}">{}</a>', admin_url("credits_refund_decide", obj.pk), label)
