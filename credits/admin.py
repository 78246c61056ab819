"""Back-office admin for credits, applications, refunds, write-offs, payer credits, CSV imports
and application runs. Everything here is read-only: money moves only through the actions, which
call the services (credits/services.py) after a confirmation page that asks for a reason. See
ledger/admin.py for the tenancy and read-only rules every settle admin follows."""

from django.contrib import admin, messages
from django.utils.text import Truncator

from credits.models import Credit, CreditApplication, CreditImport, NightlyRun, PayerCredit, Refund, WriteOff
from ledger.access import is_manager
from ledger.admin import (PracticeFilter, PracticeScopedAdmin, ScopedHistoryAdmin, call_service, confirm_with_reason,
                          report, user_practice_ids)


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
        from credits.services import refund_options

        opts = refund_options(obj)
        if opts["system"]:
            return f"Back to the original payment up to {opts['system_limit']}; otherwise check or ACH."
        return f"Check or ACH only: {opts['why_not']}."

    def has_unlock_permission(self, request):
        return self.is_member(request)

    @admin.action(description="Unlock selected credits", permissions=["unlock"])
    def unlock_credits(self, request, queryset):
        from credits.services import credits_unlock

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


@admin.register(Refund)
class RefundAdmin(ScopedHistoryAdmin):
    list_display = ("id", "requested_at", "patient", "amount", "method", "state", "needs_approval", "requested_by",
                    "decided_by", "issued_at", "reference", "credit")
    list_filter = ("state", "method", "needs_approval", ("practice", PracticeFilter))
    search_fields = ("=id", "=credit__id", "patient__last_name", "patient__account_number", "reference", "reason")
    list_select_related = ("patient", "credit", "requested_by", "decided_by")
    date_hierarchy = "requested_at"
    ordering = ("-requested_at", "-pk")
    actions = ("approve_refunds", "reject_refunds")

    def has_approve_permission(self, request):
        # managers (of any of their practices) approve; the service checks each refund's practice
        return self.is_member(request) and any(is_manager(request.user, pid) for pid in user_practice_ids(request))

    def has_reject_permission(self, request):
        return self.is_member(request)

    def _decide(self, request, queryset, *, service, verb: str):
        def perform(note):
            done, errors = 0, []
            for refund in queryset.order_by("pk"):
                _, error = call_service(service, refund_id=refund.pk, actor=request.user, note=note)
                if error:
                    errors.append(f"Refund #{refund.pk}: {error}")
                else:
                    done += 1
            report(self, request, done=done, what=f"Refunds {verb}", errors=errors)

        return perform

    @admin.action(description="Approve selected refunds", permissions=["approve"])
    def approve_refunds(self, request, queryset):
        from credits.services import refund_approve

        return confirm_with_reason(
            self, request, queryset, action="approve_refunds", title="Approve refunds",
            question="Approve these refunds. The approver must be a manager other than the requester; once "
                     "approved, a refund can be issued.",
            perform=self._decide(request, queryset, service=refund_approve, verb="approved"),
            required=False, label="Note", button="Approve",
        )

    @admin.action(description="Reject selected refunds", permissions=["reject"])
    def reject_refunds(self, request, queryset):
        from credits.services import refund_reject

        return confirm_with_reason(
            self, request, queryset, action="reject_refunds", title="Reject refunds",
            question="Reject these refunds. The amount held for each goes back to its credit.",
            perform=self._decide(request, queryset, service=refund_reject, verb="rejected"),
            button="Reject",
        )


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


@admin.register(CreditImport)
class CreditImportAdmin(PracticeScopedAdmin, admin.ModelAdmin):
    list_display = ("id", "created_at", "filename", "rows", "total", "created_by", "practice")
    list_filter = (("practice", PracticeFilter),)
    search_fields = ("filename", "=sha256")
    list_select_related = ("created_by", "practice")
    date_hierarchy = "created_at"
    ordering = ("-created_at", "-pk")


@admin.register(NightlyRun)
class NightlyRunAdmin(PracticeScopedAdmin, admin.ModelAdmin):
    list_display = ("id", "started_at", "finished_at", "practice", "status", "dry_run", "patients_seen",
                    "application_count", "applied_total", "released_credits", "triggered_by")
    list_filter = ("status", "dry_run", ("practice", PracticeFilter))
    list_select_related = ("practice", "triggered_by")
    date_hierarchy = "started_at"
    ordering = ("-started_at", "-pk")
