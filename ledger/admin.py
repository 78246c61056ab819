"""Back-office admin for the books: practices, staff roles, patients, payers, dates of service,
claims, payments, the sandbox processor's book and the journal.

Three rules hold for every settle model (ledger and credits):

* **Tenancy.** `PracticeScopedAdmin` filters every queryset to the practices the user is a
  member of (`ledger.access.practice_ids_for`); another practice's row by id is "doesn't exist"
  (a redirect), its history is refused, its rows never appear in a choice list or a filter.
* **Read-only money.** A field is read-only unless the admin lists it in `editable_fields` (or
  `add_fields` on the add form). Money and state change only through the services, which the
  admin actions call (after a confirmation page that asks for a reason).
* **No deletes.** Financial rows are never deleted (the database refuses it too, see
  ledger/migrations/0002_database_guards.py); a mistake is corrected by a reversing entry.

Staff need no Django model permissions: a membership in a practice is what grants access.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db import IntegrityError, models
from django.db.models import Count, F, OuterRef, Q, Subquery, Sum
from django.db.models.functions import Coalesce
from django.http import HttpResponseNotAllowed
from django.urls import reverse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.text import Truncator
from simple_history.admin import SimpleHistoryAdmin

from ledger.access import is_manager, practice_ids_for
from ledger.admin_views import PatientPagesMixin, RemittanceMatchMixin, RemittanceUploadMixin
from ledger.errors import SettleError
from ledger.locks import lock_patient
from ledger.models import (Claim, Encounter, JournalEntry, JournalLine, Membership, Patient, Payer, Payment,
                           Practice, SandboxCharge, SandboxRefund)
from ledger.money import ZERO
from ledger.remittance_models import RemittanceAdjustment, RemittanceClaim, RemittanceFile, RemittanceTransaction

admin.site.site_header = "settle back-office"
admin.site.site_title = "settle"
admin.site.index_title = "Patient accounts, credits and the ledger"

EDITED_IN_ADMIN = "Edited in admin"


# --- tenancy ---------------------------------------------------------------------------------------

def user_practice_ids(request) -> list[int]:
    """The practices the request's user may see, computed once per request."""
    if not hasattr(request, "_settle_practice_ids"):
        user = request.user
        request._settle_practice_ids = practice_ids_for(user) if user.is_active and user.is_staff else []
    return request._settle_practice_ids


class PracticeFilter(admin.RelatedFieldListFilter):
    """A practice filter that lists only the user's own practices (the stock one lists all)."""

    def field_choices(self, field, request, model_admin):
        return field.get_choices(include_blank=False, limit_choices_to={"pk__in": user_practice_ids(request)},
                                 ordering=("name",))


class PracticeScopedAdmin:
    """Mixin for every settle ModelAdmin (put it before the ModelAdmin class).

    `practice_field` is the lookup from the model to its Practice ("" for Practice itself).
    Rows outside the user's practices are invisible; fields are read-only unless listed in
    `editable_fields` (change form) or `add_fields` (add form); nothing is ever deleted.
    """

    practice_field = "practice"
    editable_fields: tuple = ()
    add_fields: tuple | None = None  # None: rows of this model are not created in the admin
    computed_fields: tuple = ()  # admin methods shown read-only on the change page

    # -- scoping
    def scope(self, request, qs):
        if request.user.is_superuser:
            return qs
        ids = user_practice_ids(request)
        if not self.practice_field:
            return qs.filter(pk__in=ids)
        return qs.filter(**{f"{self.practice_field}__in": ids})

    def get_queryset(self, request):
        return self.scope(request, super().get_queryset(request))

    def practice_id_of(self, obj) -> int | None:
        if not self.practice_field:
            return obj.pk
        *path, last = self.practice_field.split("__")
        for name in path:
            obj = getattr(obj, name, None)
            if obj is None:
                return None
        return getattr(obj, f"{last}_id", None)

    def in_scope(self, request, obj) -> bool:
        return request.user.is_superuser or self.practice_id_of(obj) in user_practice_ids(request)

    # -- permissions: membership grants access; Django model permissions are not needed
    def is_member(self, request) -> bool:
        user = request.user
        return bool(user.is_active and user.is_staff and (user.is_superuser or user_practice_ids(request)))

    def has_module_permission(self, request):
        return self.is_member(request)

    def has_view_permission(self, request, obj=None):
        return self.is_member(request) and (obj is None or self.in_scope(request, obj))

    def can_edit(self, request, obj) -> bool:
        """Hook for models whose editing needs more than a membership (Practice: managers)."""
        return True

    def has_change_permission(self, request, obj=None):
        if not self.editable_fields or not self.is_member(request):
            return False
        return obj is None or (self.in_scope(request, obj) and self.can_edit(request, obj))

    def has_add_permission(self, request):
        return self.add_fields is not None and self.is_member(request)

    def has_delete_permission(self, request, obj=None):
        return False  # money rows are never deleted; the database refuses it as well

    # -- forms: whitelisted fields only, choices limited to the user's practices
    def _model_fields(self) -> list[str]:
        return [f.name for f in self.model._meta.fields if not f.primary_key]

    def get_fields(self, request, obj=None):
        if obj is None and self.add_fields is not None:
            return list(self.add_fields)
        return self._model_fields() + list(self.computed_fields)

    def get_readonly_fields(self, request, obj=None):
        if obj is None and self.add_fields is not None:
            return []
        editable = set(self.editable_fields) if self.has_change_permission(request, obj) else set()
        return [f for f in self._model_fields() if f not in editable] + list(self.computed_fields)

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        # money and dates typed in the admin's model forms go through the one parser (ledger/amounts.py,
        # ledger/dates.py), like every other input: Django's own fields accept "1_000", "5e-1" or "２０２６-..."
        from ledger.admin_forms import IsoDateFormField, MoneyFormField

        if isinstance(db_field, models.DecimalField) and db_field.decimal_places == 2:
            kwargs.setdefault("form_class", MoneyFormField)
        elif isinstance(db_field, models.DateField) and not isinstance(db_field, models.DateTimeField):
            kind = {"date_of_birth": "birth", "date_of_service": "service"}.get(db_field.name)
            formfield = db_field.formfield(form_class=IsoDateFormField, kind=kind, **kwargs)
            if formfield is not None:  # the admin's calendar widget, writing ISO dates
                from django.contrib.admin.widgets import AdminDateWidget

                formfield.widget = AdminDateWidget(attrs={"placeholder": "YYYY-MM-DD"}, format="%Y-%m-%d")
            return formfield
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if not request.user.is_superuser:
            ids = user_practice_ids(request)
            related = db_field.related_model
            if related is Practice:
                kwargs["queryset"] = Practice.objects.filter(pk__in=ids)
            elif any(f.name == "practice" for f in related._meta.fields):
                kwargs["queryset"] = related._default_manager.filter(practice_id__in=ids)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_changeform_initial_data(self, request):
        initial = super().get_changeform_initial_data(request)
        ids = user_practice_ids(request)
        if "practice" in (self.add_fields or ()) and len(ids) == 1:
            initial.setdefault("practice", ids[0])
        return initial


class ScopedHistoryAdmin(PracticeScopedAdmin, SimpleHistoryAdmin):
    """For models with `history`: the History button lists who changed what and why. Reverting
    to an old version is disabled: it would write every field back, money included."""

    def revert_disabled(self, request, obj=None):
        return True

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        if request.method != "GET":
            return HttpResponseNotAllowed(["GET"])
        return super().history_form_view(request, object_id, version_id, extra_context)

    def has_view_history_or_change_history_permission(self, request, obj=None):
        # simple-history falls back to the last historical version when the row is out of the
        # queryset: the tenancy check on that version is what keeps another practice's out.
        return self.has_view_permission(request, obj)


class ReadOnlyInline(admin.TabularInline):
    """A read-only list of related rows on a change page (scoped by the parent row)."""

    extra = 0
    can_delete = False
    show_change_link = True

    def has_view_permission(self, request, obj=None):
        return bool(request.user.is_active and request.user.is_staff)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_readonly_fields(self, request, obj=None):
        return self.fields


def save_edit_with_history(request, obj, form, *, reason: str = EDITED_IN_ADMIN) -> None:
    """Save only the fields the form changed, with the history user and reason."""
    changed = [name for name in form.changed_data if name in form.base_fields]
    if not changed:
        return
    obj._history_user = request.user
    obj._change_reason = reason
    obj.save(update_fields=changed)


def adopt(obj, created) -> None:
    """Make the admin's unsaved `obj` stand for the row a service just created."""
    for f in obj._meta.concrete_fields:
        setattr(obj, f.attname, getattr(created, f.attname))
    obj._state.adding = False
    obj._state.db = created._state.db


# --- actions with a confirmation page that asks for a reason ---------------------------------------

class ReasonForm(forms.Form):
    reason = forms.CharField(
        label="Reason", max_length=2000, widget=forms.Textarea(attrs={"rows": 3, "cols": 70}),
        help_text="Kept in the history with your name.",
    )

    def __init__(self, *args, required=True, label="Reason", **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["reason"].required = required
        self.fields["reason"].label = label


def confirm_with_reason(modeladmin, request, queryset, *, action: str, title: str, question: str, perform,
                        objects=None, required: bool = True, label: str = "Reason", button: str = "Confirm"):
    """Render the confirmation page for an admin action; on a confirmed POST with a valid reason,
    call `perform(reason)` and go back to the changelist (return None)."""
    form = ReasonForm(request.POST if request.POST.get("confirm") == "yes" else None, required=required,
                      label=label)
    if form.is_bound and form.is_valid():
        perform(form.cleaned_data["reason"].strip())
        return None
    opts = modeladmin.model._meta
    shown = list(objects if objects is not None else queryset)
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "question": question,
        "objects": shown[:200],
        "more": max(len(shown) - 200, 0),
        "selected_ids": queryset.values_list("pk", flat=True),
        "action": action,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "form": form,
        "button": button,
        "opts": opts,
        "app_label": opts.app_label,
        "media": modeladmin.media,
    }
    request.current_app = modeladmin.admin_site.name
    return TemplateResponse(request, "admin/settle/confirm_action.html", context)


def call_service(fn, **kwargs):
    """Run one service call from an admin action: (result, None), or (None, message) when the
    service refuses. Actions run outside any transaction, so the service's own transaction has
    been rolled back by the time a refusal arrives here; a database constraint that catches what
    the service did not check is shown like any other refusal, never as a server error."""
    try:
        return fn(**kwargs), None
    except SettleError as exc:
        return None, exc.message
    except IntegrityError as exc:
        rule = getattr(getattr(exc.__cause__, "diag", None), "constraint_name", None)
        return None, f"refused by the database rule {rule}" if rule else "refused by a database rule"


def report(modeladmin, request, *, done: int, what: str, errors: list[str]) -> None:
    if done:
        modeladmin.message_user(request, f"{what}: {done}.", messages.SUCCESS)
    for message in errors:
        modeladmin.message_user(request, message, messages.ERROR)


class BackofficeAdminMixin:
    """Back-office pages of a ModelAdmin (issue 5): `backoffice_urls()` are added before the
    admin's own URLs, and `changelist_tools(request)` [(url, label)] become buttons above the list."""

    change_list_template = "admin/settle/change_list.html"

    def backoffice_urls(self) -> list:
        return []

    def get_urls(self):
        return self.backoffice_urls() + super().get_urls()

    def changelist_tools(self, request) -> list:
        return []

    @admin.display(description=mark_safe('<input type="checkbox" id="action-toggle">'))
    def action_checkbox(self, obj):
        # the stock one renders a CheckboxInput through the template engine for every row: a third of
        # a 100-row list's time. Same markup, written directly.
        return format_html('<input type="checkbox" name="{}" value="{}" class="action-select" '
                           'aria-label="Select this object for an action - {}">', helpers.ACTION_CHECKBOX_NAME,
                           obj.pk, obj)

    def changelist_view(self, request, extra_context=None):
        extra = {**(extra_context or {}), "settle_tools": self.changelist_tools(request)}
        return super().changelist_view(request, extra_context=extra)


def money_cell(value):
    """A money column of a list: right-aligned, two decimals, thousands separated."""
    from ledger.templatetags.settle_admin import money_cell as cell

    return cell(value)


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
        from ledger.models import AMOUNT_CEILING

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
            from config.schedules import sync

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

class EncounterInline(ReadOnlyInline):
    model = Encounter
    fk_name = "patient"
    fields = ("date_of_service", "description", "charge", "estimated_pr", "remittance_pr", "applied_amount",
              "written_off_amount", "balance_due", "claim_states")
    ordering = ("-date_of_service", "-pk")
    verbose_name_plural = "dates of service"

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("claims")

    @admin.display(description="balance")
    def balance_due(self, obj):
        return obj.balance

    @admin.display(description="claims")
    def claim_states(self, obj):
        return ", ".join(f"{c.claim_number}: {c.get_state_display()}" for c in obj.claims.all()) or "-"


class PaymentInline(ReadOnlyInline):
    model = Payment
    fk_name = "patient"
    fields = ("received_at", "amount", "channel", "refunded_amount", "encounter", "check_number",
              "processor_reference", "created_by")
    ordering = ("-received_at", "-pk")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("encounter__patient", "created_by")


def _credit_inline():
    from credits.models import Credit

    class CreditInline(ReadOnlyInline):
        model = Credit
        fk_name = "patient"
        fields = ("created_at", "source", "state", "amount", "on_hand", "refund_hold", "applied_amount",
                  "refunded_amount", "removed_amount", "locked_encounter", "payment", "note")
        ordering = ("-created_at", "-pk")

        def get_queryset(self, request):
            return super().get_queryset(request).select_related("locked_encounter__patient", "payment")

    return CreditInline


class CreditsFilter(admin.SimpleListFilter):
    """DOMAIN rule 14: patients with available credits, locked credits, or both. Subclasses name
    the columns that hold the two totals."""

    title = "credits"
    parameter_name = "credits"
    available_field = "available_total"
    locked_field = "locked_total"

    def lookups(self, request, model_admin):
        return (("available", "With available credits"), ("locked", "With locked credits"),
                ("both", "With available and locked"), ("any", "With any credits"), ("none", "Without credits"))

    def queryset(self, request, queryset):
        avail, locked = Q(**{f"{self.available_field}__gt": 0}), Q(**{f"{self.locked_field}__gt": 0})
        conditions = {"available": avail, "locked": locked, "both": avail & locked, "any": avail | locked,
                      "none": ~avail & ~locked}
        value = self.value()
        return queryset.filter(conditions[value]) if value in conditions else queryset


class OwesFilter(admin.SimpleListFilter):
    title = "balance"
    parameter_name = "owes"

    def lookups(self, request, model_admin):
        return (("yes", "Owes a balance"), ("no", "Owes nothing"))

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(balance_owed__gt=0)
        if self.value() == "no":
            return queryset.filter(balance_owed__lte=0)
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
    computed_fields = ("balance_owed_display", "available_credit", "locked_credit")
    list_display = ("account_number", "last_name", "first_name", "date_of_birth", "practice", "balance_owed_display",
                    "available_credit", "locked_credit", "exclude_from_auto_apply")
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
        return []  # the patient page renders its own sections (ledger/patient_page.py), capped and paged

    def get_queryset(self, request):
        # the totals come from credits.PatientResponsibility (kept exact by triggers): one LEFT JOIN
        # instead of three correlated sums per row, so filtering and counting stay fast at scale
        money = models.DecimalField(max_digits=14, decimal_places=2)
        return super().get_queryset(request).select_related("practice").annotate(
            balance_owed=Coalesce(F("responsibility__balance_owed"), ZERO, output_field=money),
            available_total=Coalesce(F("responsibility__available"), ZERO, output_field=money),
            locked_total=Coalesce(F("responsibility__locked"), ZERO, output_field=money),
        )

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = PatientAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    @admin.display(description="balance owed", ordering="balance_owed")
    def balance_owed_display(self, obj):
        value = getattr(obj, "balance_owed", None)
        if value is None:
            value = sum((e.balance for e in obj.encounters.all()), ZERO)
        return value

    def _totals(self, obj):
        if not hasattr(obj, "_credit_totals"):
            from credits.selectors import credit_totals

            if hasattr(obj, "available_total") and not getattr(obj, "_on_change_page", False):
                obj._credit_totals = {"available": obj.available_total, "locked": obj.locked_total}
            else:
                obj._credit_totals = credit_totals(obj.pk)
        return obj._credit_totals

    @admin.display(description="available credit", ordering="available_total")
    def available_credit(self, obj):
        return self._totals(obj)["available"]

    @admin.display(description="locked credit", ordering="locked_total")
    def locked_credit(self, obj):
        return self._totals(obj)["locked"]

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is not None:
            obj._on_change_page = True  # the heading totals come from credits.selectors.credit_totals
        return obj

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:  # rule 14: the heading shows the balance and the credit totals
            from ledger.patient_page import patient_page

            context["page"] = page = patient_page(obj)
            context["title"] = str(obj)
            obj._credit_totals = page.totals
            context["subtitle"] = (f"{obj} · balance owed {page.balance_owed} · available credit "
                                   f"{self.available_credit(obj)} · locked credit {self.locked_credit(obj)}")
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    def save_model(self, request, obj, form, change):
        from ledger import services

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
        from credits.services import credits_apply_for_patient

        def perform(reason):
            applied, total, errors = 0, ZERO, []
            for patient in queryset.order_by("pk"):
                result, error = call_service(credits_apply_for_patient, patient_id=patient.pk, actor=request.user,
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
        from credits.models import Credit
        from credits.services import credits_unlock

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
        from ledger import services

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


def _application_inline():
    from credits.models import CreditApplication

    class ApplicationInline(ReadOnlyInline):
        model = CreditApplication
        fk_name = "encounter"
        fields = ("created_at", "amount", "credit", "payment", "returned_to", "reason", "created_by")
        ordering = ("created_at", "pk")

        def get_queryset(self, request):
            return super().get_queryset(request).select_related("credit", "payment", "returned_to", "created_by")

    return ApplicationInline


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
        return [ClaimInline, _application_inline()]

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
        from django.urls import reverse

        return format_html('<a href="{}">#{} {}</a>', reverse("admin:ledger_journalentry_change", args=[obj.entry_id]),
                           obj.entry_id, obj.entry.get_kind_display())

    @admin.display(description="date", ordering="entry__created_at")
    def entry_date(self, obj):
        return obj.entry.created_at

    @admin.display(description="DoS", ordering="encounter__date_of_service")
    def encounter_dos(self, obj):
        return obj.encounter.date_of_service if obj.encounter_id else "-"


# --- remittances (X12 835), read-only: posting goes through ledger/remittances.py ----------------------

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
        return [(reverse("admin:ledger_remittancefile_upload"), "Upload 835 files")]

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
                           reverse("admin:ledger_remittanceclaim_changelist"), obj.pk, n)

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
                           reverse("admin:ledger_remittanceclaim_match", args=[obj.pk]),
                           reverse("admin:ledger_remittanceclaim_dismiss", args=[obj.pk]))

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


from ledger import admin_tokens  # noqa: E402,F401  API tokens (issue 9), kept in their own module
