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
* **Edits are service calls.** A change or add form (`ReasonModelForm`) asks for a reason and
  checks the values with the service layer's own check functions, field by field; `save_model`
  then calls the service (`save_by_service`), which writes the history row with the user and the
  reason. What the service still refuses at that point rolls the whole save back and is shown as
  an error on the form's page.

Staff need no Django model permissions: a membership in a practice is what grants access.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.widgets import AdminDateWidget
from django.db import IntegrityError, models
from django.db.models import Q
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from simple_history.admin import SimpleHistoryAdmin

from backoffice.forms import IsoDateFormField, MoneyFormField, reason_field
from backoffice.templatetags.settle_admin import money_cell as cell
from backoffice.views.common import user_practice_ids
from ledger.errors import SettleError
from ledger.models import Practice

admin.site.site_header = "settle back-office"
admin.site.site_title = "settle"
admin.site.index_title = "Patient accounts, credits and the ledger"

# --- tenancy ---------------------------------------------------------------------------------------

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

    asks_reason = False  # the form is a ReasonModelForm: editing adds its `reason` field

    def get_fields(self, request, obj=None):
        if obj is None and self.add_fields is not None:
            return list(self.add_fields) + (["reason"] if self.asks_reason else [])
        fields = self._model_fields() + list(self.computed_fields)
        if self.asks_reason and self.has_change_permission(request, obj):
            fields.append("reason")
        return fields

    def get_readonly_fields(self, request, obj=None):
        if obj is None and self.add_fields is not None:
            return []
        editable = set(self.editable_fields) if self.has_change_permission(request, obj) else set()
        return [f for f in self._model_fields() if f not in editable] + list(self.computed_fields)

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        # money and dates typed in the admin's model forms go through the one parser (ledger/amounts.py,
        # ledger/dates.py), like every other input: Django's own fields accept "1_000", "5e-1" or "２０２６-..."

        if isinstance(db_field, models.DecimalField) and db_field.decimal_places == 2:
            kwargs.setdefault("form_class", MoneyFormField)
        elif isinstance(db_field, models.DateField) and not isinstance(db_field, models.DateTimeField):
            kind = {"date_of_birth": "birth", "date_of_service": "service"}.get(db_field.name)
            formfield = db_field.formfield(form_class=IsoDateFormField, kind=kind, **kwargs)
            if formfield is not None:  # the admin's calendar widget, writing ISO dates

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


# --- change and add forms: a reason, the service's checks, the service's save ---------------------------

class ReasonModelForm(forms.ModelForm):
    """An admin change or add form that asks why (the service keeps it in the history row with the
    user's name). `check_values(values)` is the service layer's check of the edited values (e.g.
    ledger.services.practice_settings_clean); it runs here one field at a time, so every bad field
    shows its own error, and runs again in the service when it saves."""
    reason = reason_field(help_text="Why; kept in the history with your name.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "reason" not in (self._meta.fields or ()) or "reason" in (self._meta.exclude or ()):
            del self.fields["reason"]  # a page that only shows the row: nothing to give a reason for

    def check_values(self, values: dict) -> dict:
        return values

    def clean(self):
        data = super().clean()
        for name in self.changed_data:
            if name == "reason" or name not in data:
                continue
            try:
                data.update(self.check_values({name: data[name]}))
            except SettleError as exc:
                self.add_error(name, exc.message)
        return data


def edited_values(form, names) -> dict:
    """What the form changed among `names` (the fields the service takes)."""
    return {name: form.cleaned_data[name] for name in form.changed_data if name in names}


class ServiceRefused(Exception):
    def __init__(self, error: SettleError):
        super().__init__(error.message)
        self.error = error


class ServiceEditAdmin:
    """Mixin for admins whose saves are service calls (put it before the ModelAdmin class). The
    admin saves a change form inside its own transaction, so the services these call are atomic
    but not durable. A refusal at save time (the form's checks passed, but e.g. the user's role or
    the row changed meanwhile) leaves that transaction by an exception: nothing of the save is
    kept (not even the admin's log entry), and the form's page is shown again with the reason."""
    def save_by_service(self, fn, **kwargs):
        try:
            return fn(**kwargs)
        except SettleError as exc:
            raise ServiceRefused(exc) from exc

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ServiceRefused as refused:
            self.message_user(request, f"Not saved: {refused.error.message}", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())


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


def each_selected(modeladmin, request, queryset, *, call, label, what: str):
    """The `perform(reason)` of an admin action that calls a service once per selected row, in id
    order (`call(row, reason)` returns the service's call; each is its own transaction), then
    reports how many were done and each refusal, prefixed with `label(row)`."""
    def perform(reason):
        done, errors = 0, []
        for row in queryset.order_by("pk"):
            _, error = call_service(call, row=row, reason=reason)
            if error:
                errors.append(f"{label(row)}: {error}")
            else:
                done += 1
        report(modeladmin, request, done=done, what=what, errors=errors)

    return perform


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
    return cell(value)


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
