"""Back-office admin for credits, applications, refunds, write-offs, payer credits, CSV imports
and application runs. Everything here is read-only: money moves only through the actions, which
call the services (credits/services/) after a confirmation page that asks for a reason. See
backoffice/admin/base.py for the tenancy and read-only rules every settle admin follows."""


from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.text import Truncator

from backoffice.admin.base import (
    BackofficeAdminMixin,
    PracticeFilter,
    PracticeScopedAdmin,
    ScopedHistoryAdmin,
    call_service,
    confirm_with_reason,
    each_selected,
    money_cell,
    report,
    user_practice_ids,
)
from backoffice.views.common import admin_url, patient_url
from backoffice.views.credits import CreditImportMixin, NightlyPagesMixin, RefundPagesMixin
from credits.csv_import import import_rows_of
from credits.models import (
    Credit,
    CreditApplication,
    CreditImport,
    ManualCreditRequest,
    NightlyRun,
    PayerCredit,
    Refund,
    WriteOff,
)
from credits.services import (
    credit_import_approve,
    credit_import_reject,
    credits_unlock,
    manual_credit_approve,
    manual_credit_reject,
    refund_approve,
    refund_options,
    refund_reject,
)
from ledger.access import is_manager


@admin.register(Credit)
class CreditAdmin(ScopedHistoryAdmin):
    computed_fields = ("refund_options",)
    list_display = ("id", "created_at", "patient", "source", "state", "amount", "on_hand", "refund_hold",
                    "applied_amount", "refunded_amount", "removed_amount", "locked_dos", "origin_dos", "payment")
    list_filter = ("state", "source", ("practice", PracticeFilter))
    search_fields = ("=id", "patient__last_name", "patient__first_name", "patient__account_number", "note")
    list_select_related = ("patient", "locked_encounter", "origin_encounter", "payment")
    date_hierarchy = "created_at"
    ordering = ("-created_at", "-pk")
    actions = ("unlock_credits",)

    @admin.display(description="locked to DoS", ordering="locked_encounter__date_of_service")
    def locked_dos(self, obj):
        return obj.locked_encounter.date_of_service if obj.locked_encounter_id else "-"

    @admin.display(description="from DoS", ordering="origin_encounter__date_of_service")
    def origin_dos(self, obj):
        return obj.origin_encounter.date_of_service if obj.origin_encounter_id else "-"

    @admin.display(description="refund options")
    def refund_options(self, obj):
        opts = refund_options(obj)
        if opts["system"]:
            return f"Back to the original payment up to {opts['system_limit']}; otherwise check or ACH."
        return f"Check or ACH only: {opts['why_not']}."

    def has_unlock_permission(self, request):
        return self.is_member(request)

    @admin.action(description="Unlock selected credits", permissions=["unlock"])
    def unlock_credits(self, request, queryset):
        locked = queryset.filter(state=Credit.State.LOCKED).select_related("patient", "locked_encounter__patient")
        ids = list(locked.values_list("pk", flat=True))
        if not ids:
            self.message_user(request, "None of the selected credits is locked.", messages.WARNING)
            return None
        skipped = queryset.count() - len(ids)

        def perform(reason):
            n, error = call_service(credits_unlock, credit_ids=ids, actor=request.user, reason=reason)
            report(self, request, done=n or 0, what="Credits unlocked", errors=[error] if error else [])
            if skipped and not error:
                self.message_user(request, f"Skipped {skipped} selected credit(s) that were not locked.",
                                  messages.INFO)

        return confirm_with_reason(
            self, request, queryset, action="unlock_credits", title="Unlock credits",
            question="These locked credits become available for any date of service of their patient "
                     "(DOMAIN rule 5). Credits that are not locked are left alone.",
            perform=perform, objects=locked, button="Unlock",
        )


class DirectionFilter(admin.SimpleListFilter):
    title = "direction"
    parameter_name = "direction"

    def lookups(self, request, model_admin):
        return (("applied", "Applied to a DoS (positive)"), ("returned", "Returned into a credit (negative)"))

    def queryset(self, request, queryset):
        if self.value() == "applied":
            return queryset.filter(amount__gt=0)
        if self.value() == "returned":
            return queryset.filter(amount__lt=0)
        return queryset


@admin.register(CreditApplication)
class CreditApplicationAdmin(PracticeScopedAdmin, admin.ModelAdmin):
    list_display = ("id", "created_at", "patient", "dos", "amount", "credit", "payment", "returned_to", "nightly_run",
                    "short_reason", "created_by")
    list_filter = (DirectionFilter, "nightly_run__status", ("practice", PracticeFilter))
    search_fields = ("=id", "=credit__id", "=payment__id", "patient__last_name", "patient__account_number", "reason")
    list_select_related = ("patient", "encounter", "credit", "payment", "returned_to", "nightly_run", "created_by")
    date_hierarchy = "created_at"
    ordering = ("-created_at", "-pk")

    @admin.display(description="DoS", ordering="encounter__date_of_service")
    def dos(self, obj):
        return obj.encounter.date_of_service

    @admin.display(description="reason")
    def short_reason(self, obj):
        return Truncator(obj.reason).chars(60)


class RefundDecisionActions:
    """Approve / reject refunds from a list (after a confirmation page with a note)."""
    def has_approve_permission(self, request):
        # managers (of any of their practices) approve; the service checks each refund's practice
        return self.is_member(request) and any(is_manager(request.user, pid) for pid in user_practice_ids(request))

    def has_reject_permission(self, request):
        return self.is_member(request)

    def _decide(self, request, queryset, *, service, verb: str):
        return each_selected(self, request, queryset, label=lambda refund: f"Refund #{refund.pk}",
                             call=lambda row, reason: service(refund_id=row.pk, actor=request.user, reason=reason),
                             what=f"Refunds {verb}")

    @admin.action(description="Approve selected refunds", permissions=["approve"])
    def approve_refunds(self, request, queryset):
        return confirm_with_reason(
            self, request, queryset, action="approve_refunds", title="Approve refunds",
            question="Approve these refunds. The approver must be a manager other than the requester; once "
                     "approved, a refund can be issued.",
            perform=self._decide(request, queryset, service=refund_approve, verb="approved"),
            required=False, label="Note", button="Approve",
        )

    @admin.action(description="Reject selected refunds", permissions=["reject"])
    def reject_refunds(self, request, queryset):
        return confirm_with_reason(
            self, request, queryset, action="reject_refunds", title="Reject refunds",
            question="Reject these refunds. The amount held for each goes back to its credit.",
            perform=self._decide(request, queryset, service=refund_reject, verb="rejected"),
            button="Reject",
        )


@admin.register(Refund)
class RefundAdmin(RefundDecisionActions, RefundPagesMixin, BackofficeAdminMixin, ScopedHistoryAdmin):
    list_display = ("id", "requested_at", "patient", "amount", "method", "state", "needs_approval", "requested_by",
                    "decided_by", "issued_at", "reference", "credit", "next_step")
    list_filter = ("state", "method", "needs_approval", ("practice", PracticeFilter))
    search_fields = ("=id", "=credit__id", "patient__last_name", "patient__account_number", "reference", "reason")
    list_select_related = ("patient", "credit", "requested_by", "decided_by")
    date_hierarchy = "requested_at"
    ordering = ("-requested_at", "-pk")
    actions = ("approve_refunds", "reject_refunds")
    computed_fields = ("next_step",)

    @admin.display(description="next step")
    def next_step(self, obj):
        if obj.state == Refund.State.REQUESTED:
            return format_html('<a href="{}">Approve / reject</a>', admin_url("credits_refund_decide", obj.pk))
        if obj.state == Refund.State.APPROVED:
            return format_html('<a href="{}">Issue</a>', reverse("admin:credits_refund_issue", args=[obj.pk]))
        return "—"


@admin.register(WriteOff)
class WriteOffAdmin(ScopedHistoryAdmin):
    list_display = ("id", "created_at", "patient", "dos", "amount", "reason_code", "state", "created_by",
                    "undone_by", "undone_at")
    list_filter = ("state", "reason_code", ("practice", PracticeFilter))
    search_fields = ("=id", "patient__last_name", "patient__account_number", "note", "undo_reason")
    list_select_related = ("patient", "encounter", "created_by", "undone_by")
    date_hierarchy = "created_at"
    ordering = ("-created_at", "-pk")

    @admin.display(description="DoS", ordering="encounter__date_of_service")
    def dos(self, obj):
        return obj.encounter.date_of_service


@admin.register(PayerCredit)
class PayerCreditAdmin(ScopedHistoryAdmin):
    computed_fields = ("outstanding",)
    list_display = ("id", "created_at", "payer", "claim", "payer_claim_number", "reason", "amount", "resolved_amount",
                    "outstanding", "state", "reference", "resolved_at")
    list_filter = ("state", "reason", "payer__payer_type", ("practice", PracticeFilter))
    search_fields = ("=id", "payer__name", "payer_claim_number", "claim__claim_number", "reference")
    list_select_related = ("payer", "claim")
    date_hierarchy = "created_at"
    ordering = ("-created_at", "-pk")

    @admin.display(description="outstanding")
    def outstanding(self, obj):
        return obj.outstanding


class ApprovalActions:
    """Approve / reject waiting manual credits or credit imports from a list, after a confirmation
    page with a note (issue 9). The services decide who may (`ensure_approver`: a manager of the
    practice, a person, not the requester) and refuse anything else; refusals are shown per row."""
    approval_what = ""  # e.g. "Manual credits"
    approval_id = ""  # the services' id argument

    def approval_services(self):  # (approve, reject)
        raise NotImplementedError

    def has_approve_permission(self, request):
        return self.is_member(request) and any(is_manager(request.user, pid) for pid in user_practice_ids(request))

    def _decide(self, request, queryset, *, service, verb: str):
        def perform(note):
            done, errors = 0, []
            for obj in queryset.order_by("pk"):
                _, error = call_service(service, **{self.approval_id: obj.pk}, actor=request.user, reason=note)
                if error:
                    errors.append(f"#{obj.pk}: {error}")
                else:
                    done += 1
            report(self, request, done=done, what=f"{self.approval_what} {verb}", errors=errors)

        return perform

    @admin.action(description="Approve selected", permissions=["approve"])
    def approve_selected(self, request, queryset):
        approve, _ = self.approval_services()
        return confirm_with_reason(
            self, request, queryset, action="approve_selected", title=f"Approve: {self.approval_what.lower()}",
            question="Approve these: their credits are created now. The approver must be a manager other than "
                     "the requester (four eyes).",
            perform=self._decide(request, queryset, service=approve, verb="approved"), required=False,
            label="Note", button="Approve")

    @admin.action(description="Reject selected", permissions=["approve"])
    def reject_selected(self, request, queryset):
        _, reject = self.approval_services()
        return confirm_with_reason(
            self, request, queryset, action="reject_selected", title=f"Reject: {self.approval_what.lower()}",
            question="Reject these: no credit is created from them. A manager other than the requester rejects.",
            perform=self._decide(request, queryset, service=reject, verb="rejected"), button="Reject")


class PendingFirstFilter(admin.SimpleListFilter):
    """The managers' queue: waiting rows unless asked otherwise."""
    title = "state"
    parameter_name = "state"
    states: tuple = ()

    def lookups(self, request, model_admin):
        return [("all", "All")] + [s for s in self.states if s[0] != "pending"]

    def choices(self, changelist):
        yield {"selected": self.value() is None, "display": "Waiting for approval",
               "query_string": changelist.get_query_string(remove=[self.parameter_name])}
        for lookup, title in self.lookup_choices:
            yield {"selected": self.value() == lookup,
                   "query_string": changelist.get_query_string({self.parameter_name: lookup}), "display": title}

    def queryset(self, request, queryset):
        if self.value() == "all":
            return queryset
        return queryset.filter(state=self.value() or "pending")


class ManualCreditStateFilter(PendingFirstFilter):
    states = tuple(ManualCreditRequest.State.choices)


@admin.register(ManualCreditRequest)
class ManualCreditRequestAdmin(ApprovalActions, ScopedHistoryAdmin):
    """Every manual credit asked for; by default the managers' queue of those waiting (issue 9)."""
    approval_what, approval_id = "Manual credits", "request_id"
    list_display = ("id", "requested_at", "patient_link", "money_amount", "dos", "state", "needs_approval",
                    "requested_by", "decided_by", "decided_at", "credit_link", "short_note")
    list_filter = (ManualCreditStateFilter, "needs_approval", ("practice", PracticeFilter))
    search_fields = ("=id", "patient__last_name", "patient__first_name", "patient__account_number", "note")
    list_select_related = ("patient", "encounter", "requested_by", "decided_by")
    ordering = ("requested_at", "pk")
    actions = ("approve_selected", "reject_selected")

    def approval_services(self):
        return manual_credit_approve, manual_credit_reject

    @admin.display(description="patient", ordering="patient__last_name")
    def patient_link(self, obj):
        return format_html('<a href="{}">{}</a>', patient_url(obj.patient_id, "credits"), obj.patient)

    @admin.display(description="amount", ordering="amount")
    def money_amount(self, obj):
        return money_cell(obj.amount)

    @admin.display(description="locked to DoS")
    def dos(self, obj):
        return obj.encounter.date_of_service if obj.encounter_id else "-"

    @admin.display(description="credit")
    def credit_link(self, obj):
        if not obj.credit_id:
            return "—"
        return format_html('<a href="{}">#{}</a>', admin_url("credits_credit_change", obj.credit_id), obj.credit_id)

    @admin.display(description="note")
    def short_note(self, obj):
        return Truncator(obj.note).chars(60)


@admin.register(CreditImport)
class CreditImportAdmin(ApprovalActions, CreditImportMixin, BackofficeAdminMixin, ScopedHistoryAdmin):
    approval_what, approval_id = "Credit imports", "import_id"
    list_display = ("id", "created_at", "filename", "rows", "total", "state", "needs_approval", "created_by",
                    "decided_by", "practice")
    list_filter = ("state", "needs_approval", ("practice", PracticeFilter))
    search_fields = ("filename", "=sha256")
    list_select_related = ("created_by", "decided_by", "practice")
    date_hierarchy = "created_at"
    ordering = ("-created_at", "-pk")
    computed_fields = ("imported_credits",)
    actions = ("approve_selected", "reject_selected")
    LINES_SHOWN = 200

    def approval_services(self):
        return credit_import_approve, credit_import_reject

    def changelist_tools(self, request):
        return [(reverse("admin:credits_creditimport_upload"), "Import credits from CSV")]

    @admin.display(description="lines (credits)")
    def imported_credits(self, obj):
        rows = list(import_rows_of(obj)[: self.LINES_SHOWN])
        if not rows:
            return "—"
        body = format_html_join(mark_safe("<br>"), '{} · line {} · <a href="{}">{}</a> · {} · {}', (
            (format_html('<a href="{}">#{}</a>', admin_url("credits_credit_change", r.credit_id), r.credit_id)
             if r.credit_id else "not created (the import is not approved)",
             r.line, patient_url(r.patient_id, "credits"), r.patient, r.amount, r.note) for r in rows))
        if obj.rows > self.LINES_SHOWN:
            body = format_html("{}<br>… the first {} of {} lines", body, self.LINES_SHOWN, obj.rows)
        return body


@admin.register(NightlyRun)
class NightlyRunAdmin(NightlyPagesMixin, BackofficeAdminMixin, PracticeScopedAdmin, admin.ModelAdmin):
    list_display = ("id", "started_at", "finished_at", "practice", "status", "dry_run", "patients_seen",
                    "application_count", "applied_total", "released_credits", "triggered_by")
    list_filter = ("status", "dry_run", ("practice", PracticeFilter))
    list_select_related = ("practice", "triggered_by")
    date_hierarchy = "started_at"
    ordering = ("-started_at", "-pk")
    computed_fields = ("lines",)
    LINES_SHOWN = 200

    def changelist_tools(self, request):
        return [(reverse("admin:credits_nightlyrun_preview"), "Preview"),
                (reverse("admin:credits_nightlyrun_run_now"), "Run now")]

    @admin.display(description="lines (applications)")
    def lines(self, obj):
        rows = list(obj.applications.select_related("patient", "encounter", "credit")
                    .order_by("patient__last_name", "patient_id", "pk")[: self.LINES_SHOWN + 1])
        if not rows:
            return "—"
        body = format_html_join("", '<tr><td><a href="{}">{}</a></td><td>{}</td><td>#{} {}</td>'
                                    '<td class="money">{}</td></tr>', (
            (patient_url(a.patient_id, "dos"), a.patient, a.encounter.date_of_service.strftime("%m/%d/%Y"),
             a.credit_id, a.credit.get_source_display() if a.credit_id else "", f"{a.amount:,.2f}")
            for a in rows[: self.LINES_SHOWN]))
        more = ""
        if len(rows) > self.LINES_SHOWN:
            more = format_html('<p><a href="{}?nightly_run__id__exact={}">All {} applications of this run</a></p>',
                               reverse("admin:credits_creditapplication_changelist"), obj.pk, obj.application_count)
        return format_html('<table><thead><tr><th>Patient</th><th>DoS</th><th>Credit</th><th class="money">Amount'
                           '</th></tr></thead><tbody>{}</tbody></table>{}', body, more)
