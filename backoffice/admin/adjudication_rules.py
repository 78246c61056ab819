"""Back-office admin of adjudication's rules and settings (issue 11; DOMAIN rules 17 and 19): the
clock rules table and the practice's adjudication settings, refund policies and approval bands.
Managers of the practice add and edit them through the services of
adjudication/services/settings.py (the checks, who may, the history row with the manager's name and
reason; a clock rule's change moves the open cases' clocks); billing staff read them; another practice's rows are invisible; nothing is deleted. The
tenancy, read-only and no-delete rules of backoffice/admin/base.py hold here too."""

from django.contrib import admin
from django.db.models import Q
from django.utils.html import format_html
from django.utils.text import Truncator

from adjudication.models import AdjudicationSettings, ClockRule, RefundApprovalBand, RefundPolicy
from adjudication.services import settings as services
from backoffice.admin.adjudication import AdjudicationListMixin
from backoffice.admin.base import (
    ReasonModelForm,
    ScopedHistoryAdmin,
    ServiceEditAdmin,
    adopt,
    edited_values,
    user_practice_ids,
)
from backoffice.views.common import admin_url, money
from ledger.access import is_manager
from ledger.errors import SettleError

# --- the rules table and the practice's settings (managers edit, with a reason) -----------------------------

class ManagedForm(ReasonModelForm):
    """A rules/settings form: each edited value is checked by the service's `*_clean` (field by
    field, ReasonModelForm), then the row as a whole by its `*_check`, so a refusal shows on its
    field and nothing is written; the service runs the same checks again when it saves."""
    actor = None  # the user (ManagerEditAdmin.get_form sets it)

    @staticmethod
    def checked(values: dict, clean, names) -> dict:
        """`values` with the service's fields among them checked by `clean` (the practice is the form's)."""
        return {**values, **clean({k: v for k, v in values.items() if k in names})}

    def row_values(self, data: dict, names) -> dict:
        return {n: data[n] if n in data else getattr(self.instance, n) for n in names}

    def check_row(self, data: dict) -> None:
        pass

    def clean(self):
        data = super().clean()
        if "reason" in self.fields and not self.errors:
            try:
                self.check_row(data)
            except SettleError as exc:
                self.add_error(exc.field if exc.field in self.fields else None, exc.message)
        return data


class ClockRuleForm(ManagedForm):
    def check_values(self, values):
        return self.checked(values, services.clock_rule_clean, services.CLOCK_RULE_FIELDS)

    def check_row(self, data):
        if self.instance._state.adding and self.actor is not None:
            practice = data.get("practice")
            services.ensure_rule_editor(self.actor, practice.pk if practice is not None else None)
        services.clock_rule_check(self.row_values(data, services.CLOCK_RULE_FIELDS))


class SettingsForm(ManagedForm):
    def check_values(self, values):
        return self.checked(values, services.settings_clean, services.SETTINGS_FIELDS)


class RefundPolicyForm(ManagedForm):
    def check_values(self, values):
        return self.checked(values, services.refund_policy_clean, services.POLICY_FIELDS)

    def check_row(self, data):
        services.refund_policy_check(self.row_values(data, services.POLICY_FIELDS))


class RefundBandForm(ManagedForm):
    def check_values(self, values):
        return self.checked(values, services.refund_band_clean, services.BAND_FIELDS)


class ManagerEditAdmin(ServiceEditAdmin, ScopedHistoryAdmin):
    """Rows a manager of their practice adds and edits through the services of
    adjudication/services/settings.py (the checks, who may, the history row with the manager's name
    and reason); billing staff see them read-only. A refusal at save time rolls the save back and is
    shown on the form's page."""
    form = ManagedForm
    asks_reason = True
    list_display_links = None
    service_fields: tuple = ()  # what the services take

    def _model_fields(self):
        return [f.name for f in self.model._meta.fields if not f.primary_key or f.name == "practice"]

    @property
    def editable_fields(self):
        return tuple(n for n in self._model_fields() if n != "practice")

    @property
    def add_fields(self):
        return ("practice",) + self.editable_fields

    def managed_ids(self, request) -> list[int]:
        return [pid for pid in user_practice_ids(request) if is_manager(request.user, pid)]

    def can_edit(self, request, obj):
        return request.user.is_superuser or (obj.practice_id is not None
                                             and is_manager(request.user, obj.practice_id))

    def has_add_permission(self, request):
        return self.is_member(request) and (request.user.is_superuser or bool(self.managed_ids(request)))

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if db_field.name == "practice" and not request.user.is_superuser:
            field.queryset = field.queryset.filter(pk__in=self.managed_ids(request))
        return field

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        return type(form.__name__, (form,), {"actor": request.user})

    def save_model(self, request, obj, form, change):
        data, reason = form.cleaned_data, form.cleaned_data["reason"]
        if change:
            row = self.save_by_service(self.update_row, obj=obj, actor=request.user, reason=reason,
                                       changes=edited_values(form, self.service_fields))
        else:
            row = self.save_by_service(self.create_row, practice_id=obj.practice_id, actor=request.user,
                                       reason=reason, values={n: data[n] for n in self.service_fields if n in data})
        adopt(obj, row)

    def create_row(self, *, practice_id, actor, reason, values):
        raise NotImplementedError

    def update_row(self, *, obj, actor, reason, changes):
        raise NotImplementedError


def change_link(obj, label=None):
    return format_html('<a href="{}">{}</a>', admin_url(f"adjudication_{obj._meta.model_name}_change", obj.pk),
                       label or str(obj))


@admin.register(ClockRule)
class ClockRuleAdmin(AdjudicationListMixin, ManagerEditAdmin):
    """The clocks of rule 17 as data. The seeded rules (every practice: blank practice) are read-only
    here except for administrators; a manager adds their practice's own rule, which comes before a
    general one (adjudication/clocks.py), and edits it."""
    form = ClockRuleForm
    service_fields = services.CLOCK_RULE_FIELDS
    list_display = ("rule", "applies", "effective", "clock", "practice_name")
    list_filter = ("kind", "active", "us_state", "payer_type")
    search_fields = ("name", "citation", "us_state")
    ordering = ("kind", "us_state", "payer_type", "effective_from", "pk")

    def scope(self, request, qs):
        if request.user.is_superuser:
            return qs
        return qs.filter(Q(practice__isnull=True) | Q(practice_id__in=user_practice_ids(request)))

    def in_scope(self, request, obj):
        return request.user.is_superuser or obj.practice_id is None or obj.practice_id in user_practice_ids(request)

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {"title": "Clock rules", **(extra_context or {})})

    def create_row(self, *, practice_id, actor, reason, values):
        return services.clock_rule_create(practice_id=practice_id, actor=actor, reason=reason, **values)

    def update_row(self, *, obj, actor, reason, changes):
        return services.clock_rule_update(rule_id=obj.pk, actor=actor, reason=reason, changes=changes)

    @admin.display(description="rule", ordering="name")
    def rule(self, obj):
        return format_html('{}<div class="settle-muted">{}</div>', change_link(obj),
                           Truncator(obj.citation).chars(60))

    @admin.display(description="in effect", ordering="effective_from")
    def effective(self, obj):
        start = obj.effective_from.strftime("%m/%d/%Y") if obj.effective_from else "always"
        return f"{start} – {obj.effective_to:%m/%d/%Y}" if obj.effective_to else f"from {start}" \
            if obj.effective_from else start

    @admin.display(description="applies to", ordering="kind")
    def applies(self, obj):
        where = " · ".join(x for x in (obj.us_state or "any state", obj.payer_type or "any payer") if x)
        if obj.kind == ClockRule.Kind.UNCLAIMED:
            where = obj.us_state or "any state"
        return format_html('{}<div class="settle-muted">{}</div>', RULE_KIND_SHORT.get(obj.kind, obj.kind), where)

    @admin.display(description="clock")
    def clock(self, obj):
        if obj.kind == ClockRule.Kind.UNCLAIMED:
            text = f"dormant {obj.dormancy_years} years; report by {obj.report_month}/{obj.report_day}"
            if obj.letter_threshold is not None:
                text += f"; letter above {obj.letter_threshold}"
            if obj.min_amount is not None:
                text += f"; not at or under {obj.min_amount}"
            return text
        text = f"{obj.days} days" if obj.days else "—"
        if obj.notice_days:
            text = f"notice in {obj.notice_days} days, then {text}"
        if obj.suspension_max_days:
            text += f"; investigation suspends up to {obj.suspension_max_days} days"
        if obj.billed_claims_only:
            text += "; billed claims only"
        if obj.election_stops_clock:
            text += "; stops on the patient's election"
        return text

    @admin.display(description="practice", ordering="practice__name")
    def practice_name(self, obj):
        return format_html('{}<div class="settle-muted">{}</div>', obj.practice if obj.practice_id else
                           "every practice", "active" if obj.active else "inactive")


RULE_KIND_SHORT = {ClockRule.Kind.PAYER_RETURN: "payer return", ClockRule.Kind.PATIENT_REFUND: "patient refund",
                   ClockRule.Kind.UNCLAIMED: "unclaimed property"}


@admin.register(AdjudicationSettings)
class AdjudicationSettingsAdmin(AdjudicationListMixin, ManagerEditAdmin):
    form = SettingsForm
    service_fields = services.SETTINGS_FIELDS
    list_display = ("settings", "min_credit_age_days", "warning_window_days", "payer_credit_max_open_days",
                    "locked_credit_max_days")

    @admin.display(description="practice")
    def settings(self, obj):
        return change_link(obj, str(obj.practice))

    def create_row(self, *, practice_id, actor, reason, values):
        return services.adjudication_settings_update(practice_id=practice_id, actor=actor, reason=reason,
                                                     changes=values)

    def update_row(self, *, obj, actor, reason, changes):
        return services.adjudication_settings_update(practice_id=obj.practice_id, actor=actor, reason=reason,
                                                     changes=changes)


@admin.register(RefundPolicy)
class RefundPolicyAdmin(AdjudicationListMixin, ManagerEditAdmin):
    form = RefundPolicyForm
    service_fields = services.POLICY_FIELDS
    list_display = ("policy", "amounts", "min_age_days", "conditions", "practice")

    @admin.display(description="policy", ordering="name")
    def policy(self, obj):
        return format_html('{}<div class="settle-muted">{}</div>', change_link(obj, obj.name),
                           "active" if obj.active else "inactive")

    @admin.display(description="amount on hand", ordering="min_amount")
    def amounts(self, obj):
        return f"{money(obj.min_amount)} – {money(obj.max_amount)}" if obj.max_amount is not None else \
            f"from {money(obj.min_amount)}"

    @admin.display(description="patients")
    def conditions(self, obj):
        parts = [p for p, on in (("no open balance", obj.require_no_open_balance),
                                 ("no pending claim", obj.require_no_pending_claim)) if on]
        return ", ".join(parts) or "any"

    def create_row(self, *, practice_id, actor, reason, values):
        return services.refund_policy_create(practice_id=practice_id, actor=actor, reason=reason, **values)

    def update_row(self, *, obj, actor, reason, changes):
        return services.refund_policy_update(policy_id=obj.pk, actor=actor, reason=reason, changes=changes)


@admin.register(RefundApprovalBand)
class RefundApprovalBandAdmin(AdjudicationListMixin, ManagerEditAdmin):
    form = RefundBandForm
    service_fields = services.BAND_FIELDS
    list_display = ("band", "role", "four_eyes", "practice")

    @admin.display(description="band", ordering="up_to")
    def band(self, obj):
        return change_link(obj)

    def create_row(self, *, practice_id, actor, reason, values):
        return services.refund_band_create(practice_id=practice_id, actor=actor, reason=reason, **values)

    def update_row(self, *, obj, actor, reason, changes):
        return services.refund_band_update(band_id=obj.pk, actor=actor, reason=reason, changes=changes)
