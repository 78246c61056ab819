"""Back-office admin for the books: practices, staff roles, patients, payers, dates of service,
claims, payments, the sandbox processor's book and the journal (the rules every admin here
follows are in backoffice/admin/base.py)."""


from django import forms
from django.contrib import admin, messages
from django.db import models
from django.db.models import Q, Sum
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.text import Truncator

from backoffice.admin.base import (
    EDITED_IN_ADMIN,
    BackofficeAdminMixin,
    CreditsFilter,
    PracticeFilter,
    PracticeScopedAdmin,
    ReadOnlyInline,
    ScopedHistoryAdmin,
    adopt,
    call_service,
    confirm_with_reason,
    report,
    save_edit_with_history,
    user_practice_ids,
)
from backoffice.patient_page import patient_page
from backoffice.views.patient import PatientPagesMixin
from config.schedules import sync
from credits.models import Credit, CreditApplication
from credits.selectors import Owes, patient_owes, patient_totals
from credits.services import credits_apply, credits_unlock
from ledger import services
from ledger.access import is_manager
from ledger.locks import lock_patient
from ledger.models import (
    AMOUNT_CEILING,
    Claim,
    Encounter,
    JournalEntry,
    JournalLine,
    Membership,
    Patient,
    Payer,
    Payment,
    Practice,
    SandboxCharge,
    SandboxRefund,
)
from ledger.money import ZERO

# --- practices and staff ---------------------------------------------------------------------------

class PracticeForm(forms.ModelForm):
    def clean_us_state(self):
        value = (self.cleaned_data.get("us_state") or "").strip().upper()
        if len(value) != 2 or not value.isalpha():
            raise forms.ValidationError("Use the two-letter code, e.g. TX.")
        return value

    def clean_time_zone(self):
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        value = (self.cleaned_data.get("time_zone") or "").strip()
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise forms.ValidationError(f"'{value}' is not an IANA time zone (e.g. America/Chicago).") from None
        return value

    def clean_max_operation_amount(self):
        value = self.cleaned_data.get("max_operation_amount")
        if value is not None and not 0 < value <= AMOUNT_CEILING:
            raise forms.ValidationError(f"Between 0.01 and {AMOUNT_CEILING:,} (the hard ceiling).")
        return value


class MembershipInline(ReadOnlyInline):
    model = Membership
    fields = ("user", "role")
    show_change_link = False


@admin.register(Practice)
class PracticeAdmin(ScopedHistoryAdmin):
    """Practice settings: managers of the practice change them (superusers anywhere)."""
    form = PracticeForm
    practice_field = ""
    editable_fields = ("name", "us_state", "time_zone", "auto_apply", "nightly_run_at", "refund_approval_threshold",
                       "card_refund_window_days", "writeoff_max_amount", "writeoff_min_age_days",
                       "approval_window_days", "manual_credit_approval_limit", "max_operation_amount")
    list_display = ("name", "us_state", "time_zone", "auto_apply", "nightly_run_at", "refund_approval_threshold",
                    "card_refund_window_days", "writeoff_max_amount", "writeoff_min_age_days", "patient_count")
    list_filter = ("auto_apply", "us_state")
    search_fields = ("name",)
    inlines = (MembershipInline,)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(n_patients=models.Count("patients"))

    @admin.display(description="patients", ordering="n_patients")
    def patient_count(self, obj):
        return getattr(obj, "n_patients", None)

    def can_edit(self, request, obj):
        return is_manager(request.user, obj.pk)

    def save_model(self, request, obj, form, change):
        save_edit_with_history(request, obj, form, reason="Practice settings edited in admin")
        if {"nightly_run_at", "time_zone"} & set(form.changed_data):
            sync(now=timezone.now())  # the nightly run moves to the practice's new local time


@admin.register(Membership)
class MembershipAdmin(ScopedHistoryAdmin):
    """Who works for which practice. Only superusers grant or change roles (no service yet)."""
    list_display = ("user", "practice", "role")
    list_filter = ("role", ("practice", PracticeFilter))
    search_fields = ("user__username", "user__first_name", "user__last_name", "practice__name")
    list_select_related = ("user", "practice")

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser  # removing access is not a money change

    def get_fields(self, request, obj=None):
        return ["user", "practice", "role"]

    def get_readonly_fields(self, request, obj=None):
        if not request.user.is_superuser:
            return ["user", "practice", "role"]
        return ["user", "practice"] if obj is not None else []

    def save_model(self, request, obj, form, change):
        obj._history_user = request.user
        obj._change_reason = EDITED_IN_ADMIN
        obj.save()


# --- patients --------------------------------------------------------------------------------------

class OwesFilter(admin.SimpleListFilter):
    title = "balance"
    parameter_name = "owes"

    def lookups(self, request, model_admin):
        return (("yes", "Owes now"), ("pending", "Pending the payer"), ("no", "Owes nothing"))

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(due_now__gt=0)
        if self.value() == "pending":
            return queryset.filter(pending_payer__gt=0)
        if self.value() == "no":
            return queryset.filter(due_now__lte=0, pending_payer__lte=0)
        return queryset


class PatientAddForm(forms.ModelForm):
    class Meta:
        model = Patient
        fields = ("practice", "account_number", "first_name", "last_name", "date_of_birth", "email", "member_id",
                  "exclude_from_auto_apply")


@admin.register(Patient)
class PatientAdmin(PatientPagesMixin, BackofficeAdminMixin, ScopedHistoryAdmin):
    editable_fields = ("first_name", "last_name", "date_of_birth", "email", "member_id", "exclude_from_auto_apply")
    add_fields = PatientAddForm.Meta.fields
    computed_fields = ("due_now_display", "pending_payer_display", "available_credit", "locked_credit")
    list_display = ("account_number", "last_name", "first_name", "date_of_birth", "practice", "due_now_display",
                    "pending_payer_display", "available_credit", "locked_credit", "exclude_from_auto_apply")
    list_display_links = ("account_number", "last_name")
    list_filter = (CreditsFilter, OwesFilter, "exclude_from_auto_apply", ("practice", PracticeFilter))
    search_fields = ("account_number", "last_name", "first_name", "email", "member_id")
    list_select_related = ("practice",)
    ordering = ("last_name", "first_name", "pk")
    actions = ("apply_credits_now", "unlock_patient_credits")
    change_form_template = "admin/settle/patient/change_form.html"
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER

    def get_inlines(self, request, obj):
        return []  # the patient page renders its own sections (backoffice/patient_page.py), capped and paged

    def get_queryset(self, request):
        # the totals come from credits.PatientResponsibility (kept exact by triggers): one LEFT JOIN
        # instead of correlated sums per row, so filtering and counting stay fast at scale
        return super().get_queryset(request).select_related("practice").annotate(**patient_totals())

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = PatientAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def _owes(self, obj) -> Owes:
        """The rule-14 totals: the list's annotations (patient_totals), else credits.selectors.patient_owes."""
        if not hasattr(obj, "_owes"):
            if hasattr(obj, "due_now") and not getattr(obj, "_on_change_page", False):
                obj._owes = Owes(due_now=obj.due_now, pending_payer=obj.pending_payer, locked_held=obj.locked_total,
                                 available=obj.available_total, refund_hold=ZERO)
            else:
                obj._owes = patient_owes(obj.pk)
        return obj._owes

    @admin.display(description="due now", ordering="due_now")
    def due_now_display(self, obj):
        return self._owes(obj).due_now

    @admin.display(description="pending the payer", ordering="pending_payer")
    def pending_payer_display(self, obj):
        return self._owes(obj).pending_payer

    @admin.display(description="available credit", ordering="available_total")
    def available_credit(self, obj):
        return self._owes(obj).available

    @admin.display(description="locked credit", ordering="locked_total")
    def locked_credit(self, obj):
        return self._owes(obj).locked_held

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is not None:
            obj._on_change_page = True  # the heading totals come from credits.selectors.patient_owes
        return obj

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:  # rule 14: the heading shows what is due now, pending the payer, and the credits

            context["page"] = page = patient_page(obj)
            context["title"] = str(obj)
            obj._owes = owes = page.owes
            context["subtitle"] = (f"{obj} · due now {owes.due_now} · pending the payer {owes.pending_payer} · "
                                   f"available credit {owes.available} · locked credit {owes.locked_held}")
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    def save_model(self, request, obj, form, change):
        if change:
            lock_patient(obj.pk)  # serialise with the services working on this patient's money
            save_edit_with_history(request, obj, form)
            return
        data = form.cleaned_data
        created = services.patient_create(
            practice_id=data["practice"].pk, account_number=data["account_number"], first_name=data["first_name"],
            last_name=data["last_name"], date_of_birth=data.get("date_of_birth"), email=data.get("email") or "",
            member_id=data.get("member_id") or "", exclude_from_auto_apply=data.get("exclude_from_auto_apply", False),
            actor=request.user, reason="Added in admin",
        )
        adopt(obj, created)

    # -- actions
    def has_act_permission(self, request):
        return self.is_member(request)

    @admin.action(description="Apply usable credits now", permissions=["act"])
    def apply_credits_now(self, request, queryset):
        def perform(reason):
            applied, total, errors = 0, ZERO, []
            for patient in queryset.order_by("pk"):
                result, error = call_service(credits_apply, patient_id=patient.pk, actor=request.user,
                                             reason=reason, respect_settings=False)
                if error:
                    errors.append(f"{patient}: {error}")
                elif result.total:
                    applied, total = applied + 1, total + result.total
            report(self, request, done=applied, what=f"Applied {total} of credits; patients with something applied",
                   errors=errors)
            if not applied and not errors:
                self.message_user(request, "Nothing to apply: no usable credit meets an open balance.",
                                  messages.WARNING)

        return confirm_with_reason(
            self, request, queryset, action="apply_credits_now", title="Apply usable credits now",
            question="Apply these patients' usable credits to their open balances (credits locked to a date of "
                     "service pay only that date; the practice's auto-apply setting and the patient's exclusion "
                     "are ignored).",
            perform=perform,
        )

    @admin.action(description="Unlock locked credits of selected patients", permissions=["act"])
    def unlock_patient_credits(self, request, queryset):
        locked = Credit.objects.filter(patient__in=queryset, state=Credit.State.LOCKED) \
            .select_related("patient", "locked_encounter__patient")
        if not locked.exists():
            self.message_user(request, "The selected patients have no locked credits.", messages.WARNING)
            return None

        def perform(reason):
            n, error = call_service(credits_unlock, patient_ids=list(queryset.values_list("pk", flat=True)),
                                    actor=request.user, reason=reason)
            report(self, request, done=n or 0, what="Credits unlocked", errors=[error] if error else [])

        return confirm_with_reason(
            self, request, queryset, action="unlock_patient_credits", title="Unlock locked credits",
            question="These locked credits become available for any date of service of their patient "
                     "(DOMAIN rule 5, e.g. when a payer will never answer).",
            perform=perform, objects=locked, button="Unlock",
        )


# --- payers, dates of service, claims, payments ----------------------------------------------------

class PayerAddForm(forms.ModelForm):
    class Meta:
        model = Payer
        fields = ("practice", "name", "payer_type", "payer_identifier")


@admin.register(Payer)
class PayerAdmin(ScopedHistoryAdmin):
    editable_fields = ("name", "payer_type", "payer_identifier")
    add_fields = PayerAddForm.Meta.fields
    list_display = ("name", "payer_type", "payer_identifier", "practice")
    list_filter = ("payer_type", ("practice", PracticeFilter))
    search_fields = ("name", "payer_identifier")
    list_select_related = ("practice",)
    ordering = ("practice__name", "name")

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = PayerAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def save_model(self, request, obj, form, change):
        if change:
            save_edit_with_history(request, obj, form)
            return
        data = form.cleaned_data
        adopt(obj, services.payer_create(practice_id=data["practice"].pk, name=data["name"],
                                         payer_type=data["payer_type"],
                                         payer_identifier=data.get("payer_identifier") or "", actor=request.user,
                                         reason="Added in admin"))


class ClaimInline(ReadOnlyInline):
    model = Claim
    fields = ("claim_number", "payer", "state", "billed_amount", "paid_amount", "adjustment_amount",
              "patient_responsibility", "remittance_count", "submitted_at", "finalized_at")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("payer")


class ApplicationInline(ReadOnlyInline):
    model = CreditApplication
    fk_name = "encounter"
    fields = ("created_at", "amount", "credit", "payment", "returned_to", "reason", "created_by")
    ordering = ("created_at", "pk")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("credit", "payment", "returned_to", "created_by")


@admin.register(Encounter)
class EncounterAdmin(ScopedHistoryAdmin):
    computed_fields = ("balance_due",)
    list_display = ("date_of_service", "patient", "description", "charge", "estimated_pr", "remittance_pr",
                    "applied_amount", "written_off_amount", "balance_due", "practice")
    list_filter = (("practice", PracticeFilter),)
    search_fields = ("patient__last_name", "patient__first_name", "patient__account_number", "description",
                     "claims__claim_number")
    list_select_related = ("patient", "practice")
    date_hierarchy = "date_of_service"
    ordering = ("-date_of_service", "-pk")

    def get_inlines(self, request, obj):
        return [ClaimInline, ApplicationInline]

    @admin.display(description="balance")
    def balance_due(self, obj):
        return obj.balance


@admin.register(Claim)
class ClaimAdmin(ScopedHistoryAdmin):
    computed_fields = ("patient",)
    list_display = ("claim_number", "patient", "date_of_service", "payer", "state", "billed_amount", "paid_amount",
                    "adjustment_amount", "patient_responsibility", "remittance_count", "submitted_at",
                    "finalized_at")
    list_filter = ("state", "payer__payer_type", ("practice", PracticeFilter))
    search_fields = ("claim_number", "payer_claim_number", "encounter__patient__last_name",
                     "encounter__patient__account_number")
    list_select_related = ("encounter__patient", "payer", "practice")
    date_hierarchy = "submitted_at"
    ordering = ("-submitted_at", "-pk")

    @admin.display(description="patient", ordering="encounter__patient__last_name")
    def patient(self, obj):
        return obj.encounter.patient

    @admin.display(description="DoS", ordering="encounter__date_of_service")
    def date_of_service(self, obj):
        return obj.encounter.date_of_service


@admin.register(Payment)
class PaymentAdmin(ScopedHistoryAdmin):
    list_display = ("id", "received_at", "patient", "amount", "channel", "refunded_amount", "dos",
                    "check_number", "processor_reference", "created_by")
    list_filter = ("channel", ("practice", PracticeFilter))
    search_fields = ("=id", "patient__last_name", "patient__account_number", "check_number", "processor_reference")
    list_select_related = ("patient", "encounter", "created_by")
    date_hierarchy = "received_at"
    ordering = ("-received_at", "-pk")

    @admin.display(description="toward DoS", ordering="encounter__date_of_service")
    def dos(self, obj):
        return obj.encounter.date_of_service if obj.encounter_id else "-"


# --- the sandbox card processor's own book (read-only) ----------------------------------------------

class SandboxScopedAdmin(PracticeScopedAdmin, admin.ModelAdmin):
    """The processor's tables carry no practice: a staff user sees the charges and refunds behind
    their practices' payments."""
    reference_path = "reference"

    def scope(self, request, qs):
        if request.user.is_superuser:
            return qs
        refs = Payment.objects.filter(practice_id__in=user_practice_ids(request)) \
            .exclude(processor_reference="").values("processor_reference")
        return qs.filter(**{f"{self.reference_path}__in": refs})

    def in_scope(self, request, obj):
        return request.user.is_superuser or self.scope(request, type(obj).objects.filter(pk=obj.pk)).exists()


@admin.register(SandboxCharge)
class SandboxChargeAdmin(SandboxScopedAdmin):
    list_display = ("reference", "amount", "refunded", "created_at")
    search_fields = ("=reference",)
    date_hierarchy = "created_at"
    ordering = ("-created_at",)


@admin.register(SandboxRefund)
class SandboxRefundAdmin(SandboxScopedAdmin):
    reference_path = "charge__reference"
    list_display = ("reference", "charge", "amount", "idempotency_key", "created_at")
    search_fields = ("=reference", "=charge__reference", "idempotency_key")
    list_select_related = ("charge",)
    date_hierarchy = "created_at"
    ordering = ("-created_at",)


# --- the journal (append-only) ---------------------------------------------------------------------

class JournalLineInline(ReadOnlyInline):
    model = JournalLine
    fields = ("account", "amount", "patient", "encounter", "credit", "payment", "claim")
    show_change_link = False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("patient", "encounter__patient", "credit", "payment",
                                                            "claim")


@admin.register(JournalEntry)
class JournalEntryAdmin(PracticeScopedAdmin, admin.ModelAdmin):
    computed_fields = ("total_debits",)
    list_display = ("id", "created_at", "kind", "short_memo", "patient", "total_debits", "created_by", "practice")
    list_filter = ("kind", ("practice", PracticeFilter))
    search_fields = ("=id", "memo", "patient__last_name", "patient__account_number")
    list_select_related = ("patient", "created_by", "practice")
    date_hierarchy = "created_at"
    ordering = ("-created_at", "-pk")
    inlines = (JournalLineInline,)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(debits=Sum("lines__amount", filter=Q(lines__amount__gt=0)))

    @admin.display(description="memo")
    def short_memo(self, obj):
        return Truncator(obj.memo).chars(80)

    @admin.display(description="debits (= credits)", ordering="debits")
    def total_debits(self, obj):
        return obj.debits if obj.debits is not None else ZERO


@admin.register(JournalLine)
class JournalLineAdmin(PracticeScopedAdmin, admin.ModelAdmin):
    list_display = ("id", "entry_link", "entry_date", "account", "amount", "patient", "encounter_dos", "credit",
                    "payment", "claim")
    list_filter = ("account", "entry__kind", ("practice", PracticeFilter))
    search_fields = ("=entry__id", "=credit__id", "=payment__id", "patient__last_name", "patient__account_number")
    list_select_related = ("entry", "patient", "encounter", "credit", "payment", "claim")
    date_hierarchy = "entry__created_at"
    ordering = ("-entry__created_at", "-pk")

    @admin.display(description="entry", ordering="entry_id")
    def entry_link(self, obj):
        return format_html('<a href="{}">#{} {}</a>', reverse("admin:ledger_journalentry_change", args=[obj.entry_id]),
                           obj.entry_id, obj.entry.get_kind_display())

    @admin.display(description="date", ordering="entry__created_at")
    def entry_date(self, obj):
        return obj.entry.created_at

    @admin.display(description="DoS", ordering="encounter__date_of_service")
    def encounter_dos(self, obj):
        return obj.encounter.date_of_service if obj.encounter_id else "-"
