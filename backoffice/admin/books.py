"""Back-office admin for the books: practices, staff roles, patients, payers, dates of service,
claims, payments, the sandbox processor's book and the journal (the rules every admin here
follows are in backoffice/admin/base.py)."""


from django.contrib import admin, messages
from django.db import models
from django.db.models import Q, Sum
from django.urls import reverse
from django.utils.html import format_html
from django.utils.text import Truncator

from backoffice.admin.base import (
    BackofficeAdminMixin,
    CreditsFilter,
    PracticeFilter,
    PracticeScopedAdmin,
    ReadOnlyInline,
    ReasonModelForm,
    ScopedHistoryAdmin,
    ServiceEditAdmin,
    adopt,
    call_service,
    confirm_with_reason,
    edited_values,
    report,
    user_practice_ids,
)
from backoffice.patient_page import patient_page
from backoffice.views.patient import PatientPagesMixin
from backoffice.views.portal_access import PortalAccessMixin
from config.schedules import sync_practice
from credits.models import Credit, CreditApplication
from credits.selectors import Owes, patient_owes, patient_totals
from credits.services import credits_apply, credits_unlock
from ledger import services
from ledger.access import is_manager, may_manage_roles, role_candidates
from ledger.models import (
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

class PracticeForm(ReasonModelForm):
    """Practice settings: the values are checked by ledger.services.practice_settings_clean (a real
    US state, an IANA time zone, the limits), the same function practice_update runs."""
    def check_values(self, values):
        return services.practice_settings_clean(values)


class MembershipInline(ReadOnlyInline):
    model = Membership
    fields = ("user", "role")
    show_change_link = False


@admin.register(Practice)
class PracticeAdmin(ServiceEditAdmin, ScopedHistoryAdmin):
    """Practice settings: managers of the practice change them (superusers anywhere), with a
    reason, through ledger.services.practice_update (which moves the nightly schedule after the
    commit when the time or the zone changed)."""
    form = PracticeForm
    asks_reason = True
    practice_field = ""
    editable_fields = services.PRACTICE_SETTINGS
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
        adopt(obj, self.save_by_service(
            services.practice_update, practice_id=obj.pk, changes=edited_values(form, self.editable_fields),
            actor=request.user, reason=form.cleaned_data["reason"], on_schedule_change=sync_practice))


class MembershipForm(ReasonModelForm):
    pass


@admin.register(Membership)
class MembershipAdmin(ServiceEditAdmin, ScopedHistoryAdmin):
    """Who works for which practice, with which role. One rule decides who may grant, change or
    revoke a role (ledger.access.roles_refusal, asked by ledger.services.membership_grant and
    membership_revoke, and by the permissions below): managers in their own practices,
    superusers anywhere, nobody their own role."""
    form = MembershipForm
    asks_reason = True
    add_fields = ("user", "practice", "role")
    editable_fields = ("role",)
    list_display = ("user", "practice", "role")
    list_filter = ("role", ("practice", PracticeFilter))
    search_fields = ("user__username", "user__first_name", "user__last_name", "practice__name")
    list_select_related = ("user", "practice")
    actions = ("revoke_selected",)

    def _managed_practice_ids(self, request) -> list[int]:
        if not hasattr(request, "_settle_managed_practices"):
            request._settle_managed_practices = [pid for pid in user_practice_ids(request)
                                                 if may_manage_roles(request.user, practice_id=pid)]
        return request._settle_managed_practices

    def has_add_permission(self, request):
        return self.is_member(request) and bool(self._managed_practice_ids(request))

    def has_change_permission(self, request, obj=None):
        if obj is None:
            return self.has_add_permission(request)
        return self.in_scope(request, obj) and may_manage_roles(request.user, practice_id=obj.practice_id,
                                                                user_id=obj.user_id)

    def get_fields(self, request, obj=None):
        return ["user", "practice", "role"] + (["reason"] if obj is None or self.has_change_permission(request, obj)
                                               else [])

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return ["user", "practice"] + ([] if self.has_change_permission(request, obj) else ["role"])

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if db_field.name == "practice":  # only where the user may grant roles
            field.queryset = field.queryset.filter(pk__in=self._managed_practice_ids(request))
        elif db_field.name == "user":  # the people membership_grant accepts from this user
            field.queryset = role_candidates(request.user).order_by("username")
        return field

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        adopt(obj, self.save_by_service(
            services.membership_grant, user_id=obj.user_id, practice_id=obj.practice_id, role=data["role"],
            actor=request.user, reason=data["reason"]))

    @admin.action(description="Revoke selected memberships", permissions=["change"])
    def revoke_selected(self, request, queryset):
        def perform(reason):
            done, errors = 0, []
            for m in queryset.select_related("user", "practice").order_by("pk"):
                _, error = call_service(services.membership_revoke, membership_id=m.pk, actor=request.user,
                                        reason=reason)
                if error:
                    errors.append(f"{m}: {error}")
                else:
                    done += 1
            report(self, request, done=done, what="Memberships revoked", errors=errors)

        return confirm_with_reason(
            self, request, queryset, action="revoke_selected", title="Revoke memberships",
            question="These people lose their role in the practice (and what their API tokens of it may do).",
            perform=perform, button="Revoke")


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


class PatientForm(ReasonModelForm):
    def check_values(self, values):
        return services.patient_fields_clean({k: v for k, v in values.items() if k in services.PATIENT_FIELDS})


class PatientAddForm(PatientForm):
    class Meta:
        model = Patient
        fields = ("practice", "account_number", "first_name", "last_name", "date_of_birth", "email", "member_id",
                  "exclude_from_auto_apply", *services.ADDRESS_FIELDS)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["reason"].initial = "Added in admin"


@admin.register(Patient)
class PatientAdmin(PortalAccessMixin, PatientPagesMixin, BackofficeAdminMixin, ServiceEditAdmin, ScopedHistoryAdmin):
    form = PatientForm
    asks_reason = True
    editable_fields = services.PATIENT_FIELDS
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
        data = form.cleaned_data
        if change:
            adopt(obj, self.save_by_service(services.patient_update, patient_id=obj.pk,
                                            changes=edited_values(form, self.editable_fields), actor=request.user,
                                            reason=data["reason"]))
            return
        adopt(obj, self.save_by_service(
            services.patient_create, practice_id=data["practice"].pk, account_number=data["account_number"],
            first_name=data["first_name"], last_name=data["last_name"], date_of_birth=data.get("date_of_birth"),
            email=data.get("email") or "", member_id=data.get("member_id") or "",
            exclude_from_auto_apply=data.get("exclude_from_auto_apply", False), actor=request.user,
            reason=data["reason"]))

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

class PayerForm(ReasonModelForm):
    def check_values(self, values):
        return services.payer_fields_clean({k: v for k, v in values.items() if k in services.PAYER_FIELDS})


class PayerAddForm(PayerForm):
    class Meta:
        model = Payer
        fields = ("practice", "name", "payer_type", "payer_identifier")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["reason"].initial = "Added in admin"


@admin.register(Payer)
class PayerAdmin(ServiceEditAdmin, ScopedHistoryAdmin):
    form = PayerForm
    asks_reason = True
    editable_fields = services.PAYER_FIELDS
    add_fields = PayerAddForm.Meta.fields
    list_display = ("name", "payer_type", "medicare_part", "payer_identifier", "practice")
    list_filter = ("payer_type", ("practice", PracticeFilter))
    search_fields = ("name", "payer_identifier")
    list_select_related = ("practice",)
    ordering = ("practice__name", "name")

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = PayerAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            adopt(obj, self.save_by_service(services.payer_update, payer_id=obj.pk,
                                            changes=edited_values(form, self.editable_fields), actor=request.user,
                                            reason=data["reason"]))
            return
        adopt(obj, self.save_by_service(services.payer_create, practice_id=data["practice"].pk, name=data["name"],
                                        payer_type=data["payer_type"],
                                        payer_identifier=data.get("payer_identifier") or "", actor=request.user,
                                        reason=data["reason"]))


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
