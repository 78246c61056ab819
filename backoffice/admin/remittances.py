"""Back-office admin for 835 remittances, read-only: receiving and posting go through
remittances/ (the upload page and the unmatched queue call its services)."""


from django.contrib import admin
from django.db import models
from django.db.models import Count, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.text import Truncator

from backoffice.admin.base import BackofficeAdminMixin, PracticeFilter, PracticeScopedAdmin
from backoffice.views.remittances import RemittanceMatchMixin, RemittanceUploadMixin
from remittances.models import RemittanceAdjustment, RemittanceClaim, RemittanceFile, RemittanceTransaction

# --- remittances (X12 835), read-only: posting goes through remittances/posting.py ----------------------

@admin.register(RemittanceFile)
class RemittanceFileAdmin(RemittanceUploadMixin, BackofficeAdminMixin, PracticeScopedAdmin, admin.ModelAdmin):
    list_display = ("id", "received_at", "filename", "status", "transaction_count", "claim_count", "paid_total",
                    "plb_total", "waiting_claims", "received_by", "posted_at")
    list_filter = ("status", ("practice", PracticeFilter))
    search_fields = ("=id", "filename", "=sha256")
    list_select_related = ("received_by", "practice")
    date_hierarchy = "received_at"
    ordering = ("-received_at", "-pk")
    computed_fields = ("waiting_claims", "claims_by_state", "warnings_list", "errors_list")

    def changelist_tools(self, request):
        return [(reverse("admin:remittances_remittancefile_upload"), "Upload 835 files")]

    def get_queryset(self, request):
        waiting = RemittanceClaim.objects.filter(file=OuterRef("pk"), state__in=RemittanceClaim.WAITING) \
            .values("file").annotate(n=Count("pk")).values("n")
        return super().get_queryset(request).defer("content").annotate(
            n_waiting=Coalesce(Subquery(waiting, output_field=models.IntegerField()), 0))

    def _model_fields(self):
        # the bytes stay in the database; warnings and errors are shown as lists below
        return [name for name in super()._model_fields() if name not in ("content", "warnings", "errors")]

    @admin.display(description="claims waiting for staff", ordering="n_waiting")
    def waiting_claims(self, obj):
        n = getattr(obj, "n_waiting", None)
        if n is None:
            n = obj.claims.filter(state__in=RemittanceClaim.WAITING).count()
        if not n:
            return 0
        return format_html('<a href="{}?waiting=yes&amp;file__id__exact={}">{}</a>',
                           reverse("admin:remittances_remittanceclaim_changelist"), obj.pk, n)

    @admin.display(description="claims")
    def claims_by_state(self, obj):
        counts = dict(obj.claims.values_list("state").annotate(n=Count("pk")).order_by("state"))
        labels = dict(RemittanceClaim.State.choices)
        return format_html_join(mark_safe("<br>"), "{}: {}", ((labels.get(k, k), v) for k, v in counts.items())) \
            or "—"

    @admin.display(description="warnings")
    def warnings_list(self, obj):
        return format_html_join(mark_safe("<br>"), "{}{}", (
            (f"segment {w.get('segment')}: " if w.get("segment") else "", w.get("message", ""))
            for w in obj.warnings or [])) or "—"

    @admin.display(description="errors (file refused)")
    def errors_list(self, obj):
        return format_html_join(mark_safe("<br>"), "segment {} ({}), byte {}: {}", (
            (e.get("segment"), e.get("segment_id"), e.get("position"), e.get("message")) for e in obj.errors or [])) \
            or "—"


@admin.register(RemittanceTransaction)
class RemittanceTransactionAdmin(PracticeScopedAdmin, admin.ModelAdmin):
    list_display = ("id", "payment_date", "trace_number", "payer_name", "payer", "payment_method", "total_paid",
                    "plb_total", "claim_count", "file")
    list_filter = ("payment_method", ("practice", PracticeFilter))
    search_fields = ("=id", "trace_number", "payer_name", "payer_identifier")
    list_select_related = ("payer", "file")
    date_hierarchy = "payment_date"
    ordering = ("-pk",)

    def get_queryset(self, request):
        return super().get_queryset(request).defer("file__content")


class WaitingFilter(admin.SimpleListFilter):
    """The unmatched queue: remittance claims waiting for staff (unmatched, held reversals, refused)."""

    title = "waiting for staff"
    parameter_name = "waiting"

    def lookups(self, request, model_admin):
        return (("yes", "Waiting for staff"), ("no", "Done"))

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(state__in=RemittanceClaim.WAITING)
        if self.value() == "no":
            return queryset.exclude(state__in=RemittanceClaim.WAITING)
        return queryset


@admin.register(RemittanceClaim)
class RemittanceClaimAdmin(RemittanceMatchMixin, BackofficeAdminMixin, PracticeScopedAdmin, admin.ModelAdmin):
    list_display = ("id", "claim_number", "state", "status_code", "charge", "paid", "patient_responsibility",
                    "patient_name", "service_date", "claim", "short_note", "file", "match_link")
    list_filter = (WaitingFilter, "state", "status_code", ("practice", PracticeFilter))
    search_fields = ("=id", "claim_number", "payer_claim_number", "patient_name", "member_id")
    list_select_related = ("claim", "file")
    date_hierarchy = "service_date"
    ordering = ("-pk",)
    show_full_result_count = False
    computed_fields = ("staff_actions",)

    def get_queryset(self, request):
        return super().get_queryset(request).defer("file__content")

    @admin.display(description="note")
    def short_note(self, obj):
        return Truncator(obj.note).chars(60)

    @admin.display(description="")
    def match_link(self, obj):
        if obj.state not in RemittanceClaim.WAITING:
            return ""
        return format_html('<a class="button" href="{}">Match…</a> <a class="button" href="{}">Dismiss…</a>',
                           reverse("admin:remittances_remittanceclaim_match", args=[obj.pk]),
                           reverse("admin:remittances_remittanceclaim_dismiss", args=[obj.pk]))

    @admin.display(description="done by hand (who, when, why)")
    def staff_actions(self, obj):
        rows = obj.actions.select_related("actor", "claim").order_by("at", "pk")
        return format_html_join(mark_safe("<br>"), "{} · {} · {}{}: {}{}", (
            (f"{a.at:%Y-%m-%d %H:%M}", a.actor.get_username(), a.get_action_display(),
             f" to claim {a.claim.claim_number}" if a.claim_id else "", a.reason,
             f" (confirmed: {', '.join(m['field'] for m in a.confirmed_mismatches)})" if a.confirmed_mismatches
             else "") for a in rows)) or "—"


@admin.register(RemittanceAdjustment)
class RemittanceAdjustmentAdmin(PracticeScopedAdmin, admin.ModelAdmin):
    list_display = ("id", "code", "reference", "amount", "state", "payer_credit", "short_note", "transaction")
    list_filter = ("state", "code", ("practice", PracticeFilter))
    search_fields = ("=id", "reference")
    list_select_related = ("payer_credit__payer", "transaction")
    ordering = ("-pk",)

    @admin.display(description="note")
    def short_note(self, obj):
        return Truncator(obj.note).chars(60)


