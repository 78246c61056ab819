"""Back-office pages of the managers' reports (issue 12 item 4, DOMAIN rule 22): the Medicare credit
balance report (CMS-838) and the practice's report settings.

* the reports list ("admin:reports_cms838report_changelist") and a report's page (its header as it
  was reported, its totals, its lines in the form's column order, CSV / Excel / PDF through
  `export_start(report="cms838", params={"report": id})`);
* the generate page ("admin:reports_cms838report_generate"): part A or B, the period, a reason; it
  shows how many unreported Medicare credit balances each part would take (`cms838_candidates`)
  and what the report settings still lack, with a link to them; a POST is one `cms838_generate`
  call, its refusal (no provider number or contact, nothing left to report) shown on the form;
* the report settings ("admin:reports_reportsettings_changelist"): one row per practice the user
  manages, edited on its practice's page ("admin:reports_reportsettings_edit") through
  `report_settings_update` (the checks, the history row with the manager's name and reason), the
  history shown under the form.

Managers only, scoped to the practices the user manages (backoffice/admin/reports_exports.py
ManagersOnlyAdmin): billing staff 403, another practice's report 404. Reports are kept as
reported: nothing is added, changed or deleted through admin forms."""

from datetime import date

from django import forms
from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.db.models import Count, Sum
from django.http import Http404, HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from adjudication.clocks import practice_today
from backoffice import forms as f
from backoffice.admin.base import BackofficeAdminMixin
from backoffice.admin.reports_exports import FORMATS, ManagersOnlyAdmin, managed_practice_ids
from backoffice.views.common import admin_url, money, render_page, run_service
from ledger.errors import SettleError
from ledger.models import Practice
from reports.cms838 import cms838_candidates, cms838_generate
from reports.exports.jobs import export_start
from reports.models import Cms838Line, Cms838Report, ReportSettings
from reports.services.settings import SETTINGS_FIELDS, report_settings_update

LINES_SHOWN = 100  # a report's page shows its lines 100 at a time
SETTINGS_REFUSALS = {"medicare_ptan_part_a", "medicare_ptan_part_b", "report_contact_name", "report_contact_phone"}
HISTORY_SHOWN = 50


def day(value) -> str:
    return value.strftime("%m/%d/%Y") if value else "—"


def user_name(user) -> str:
    if user is None:
        return "—"
    return user.get_full_name() or user.get_username()


def settings_missing(row: ReportSettings | None) -> list[tuple[str, str]]:
    """(part or "", what is missing) for the CMS-838 header: the part's PTAN, the contact, the phone."""
    row = row or ReportSettings()
    out = [(p, f"the Part {p} provider number (PTAN)")
           for p, v in (("A", row.medicare_ptan_part_a), ("B", row.medicare_ptan_part_b)) if not v.strip()]
    out += [("", words) for v, words in ((row.report_contact_name, "the report's contact"),
                                          (row.report_contact_phone, "the contact's phone")) if not v.strip()]
    return out


# --- the Medicare credit balance reports -------------------------------------------------------------------

class GenerateForm(f.PracticeChoiceMixin, forms.Form):
    practice = forms.ModelChoiceField(queryset=Practice.objects.none(), empty_label=None)
    part = forms.ChoiceField(label="Medicare part", choices=Cms838Report.Part.choices, widget=forms.RadioSelect)
    period_start = f.IsoDateFormField(label="Period start")
    period_end = f.IsoDateFormField(label="Period end", help_text="YYYY-MM-DD: balances identified on or before "
                                                                 "it and never reported go on the report.")
    reason = f.reason_field(initial="Medicare credit balance report")

    def __init__(self, *args, practice_ids, **kwargs):
        super().__init__(*args, **kwargs)
        self.setup_practice(practice_ids)


class DownloadForm(forms.Form):
    format = forms.ChoiceField(choices=FORMATS)


class Cms838PagesMixin:
    """For Cms838ReportAdmin: generate/, and the change page as the report's page."""

    def backoffice_urls(self):
        wrap = self.admin_site.admin_view
        return [path("generate/", wrap(self.generate_view), name="reports_cms838report_generate")]

    def changelist_tools(self, request):
        return [(reverse("admin:reports_cms838report_generate"), "Generate a report"),
                (reverse("admin:reports_reportsettings_changelist"), "Report settings")]

    def candidates(self, ids, period_end: date | None):
        """Per practice: its name, the period end counted to, per part (count, amount), what settings lack."""
        settings = {s.practice_id: s for s in ReportSettings.objects.filter(practice_id__in=ids)}
        out = []
        for practice in Practice.objects.filter(pk__in=ids).order_by("name"):
            end = period_end or practice_today(practice)
            parts = []
            for part, label in Cms838Report.Part.choices:
                agg = cms838_candidates(practice_id=practice.pk, part=part, period_end=end).order_by() \
                    .aggregate(n=Count("pk"), s=Sum("amount"))
                parts.append((label, agg["n"], agg["s"] or 0))
            out.append({"practice": practice, "end": end, "parts": parts,
                        "missing": settings_missing(settings.get(practice.pk)),
                        "settings_url": reverse("admin:reports_reportsettings_edit", args=[practice.pk])})
        return out

    def generate_view(self, request):
        self.require_manager(request)
        ids = managed_practice_ids(request)
        form = GenerateForm(request.POST or None, practice_ids=ids)
        refused_settings = None
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                report = cms838_generate(practice_id=data["practice"].pk, part=data["part"],
                                         period_start=data["period_start"], period_end=data["period_end"],
                                         actor=request.user, reason=data["reason"])
            except SettleError as exc:
                f.add_service_error(form, exc, fields={"practice": "practice"})
                if exc.field in SETTINGS_REFUSALS:
                    refused_settings = reverse("admin:reports_reportsettings_edit", args=[data["practice"].pk])
            else:
                messages.success(request, f"{report}: {report.line_count} line{'s' if report.line_count != 1 else ''}"
                                          f", {money(report.credit_total)} in credit balances.")
                return HttpResponseRedirect(admin_url("reports_cms838report_change", report.pk))
        end = form.cleaned_data.get("period_end") if form.is_bound and hasattr(form, "cleaned_data") else None
        return render_page(self, request, "admin/reports/cms838_generate.html",
                           title="Generate a Medicare credit balance report",
                           crumbs=[(reverse("admin:reports_cms838report_changelist"),
                                    "Medicare credit balance reports")],
                           form=form, candidates=self.candidates(ids, end), refused_settings=refused_settings,
                           buttons=[("_generate", "Generate the report", "default")],
                           cancel_url=reverse("admin:reports_cms838report_changelist"))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        self.require_manager(request)
        if not str(object_id).isdigit():
            raise Http404("No report matches the given query.")
        report = self.object_or_404(request, Cms838Report, int(object_id))
        download = DownloadForm(request.POST or None)
        if request.method == "POST" and download.is_valid():
            job = run_service(download, export_start, practice_id=report.practice_id, report="cms838",
                              format=download.cleaned_data["format"], params={"report": report.pk},
                              actor=request.user)
            if job is not None:
                return HttpResponseRedirect(admin_url("reports_exportjob_change", job.pk))
            for error in download.non_field_errors():
                messages.error(request, str(error))
        lines = Cms838Line.objects.filter(report=report).order_by("line_number")
        page = Paginator(lines, LINES_SHOWN).get_page(request.GET.get("page"))
        header = [("Provider name", report.provider_name), ("Provider number (PTAN)", report.provider_number),
                  ("Reporting period", f"{day(report.period_start)} – {day(report.period_end)}"),
                  ("Medicare part", report.get_part_display()), ("Contact", report.contact_name),
                  ("Phone", report.contact_phone),
                  ("Generated", (f"{timezone.localtime(report.generated_at):%m/%d/%Y %H:%M} by "
                                 f"{user_name(report.generated_by)}")), ("Reason", report.reason)]
        totals = [("Lines", f"{report.line_count:,}"), ("Credit balances", money(report.credit_total)),
                  ("Amount repaid", money(report.repaid_total)), ("Amount outstanding", money(report.outstanding_total))]
        return render_page(self, request, "admin/reports/cms838_detail.html", title=str(report),
                           crumbs=[(reverse("admin:reports_cms838report_changelist"),
                                    "Medicare credit balance reports")],
                           report=report, header=header, totals=totals, page=page, formats=FORMATS)


@admin.register(Cms838Report)
class Cms838ReportAdmin(Cms838PagesMixin, BackofficeAdminMixin, ManagersOnlyAdmin, admin.ModelAdmin):
    list_display = ("report_link", "period", "generated", "lines", "credit", "repaid", "outstanding", "practice")
    list_display_links = None
    list_filter = ("part",)
    list_select_related = ("generated_by", "practice")
    ordering = ("-generated_at", "-pk")
    show_full_result_count = False
    list_per_page = 100
    actions = None

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {"title": "Medicare credit balance reports (CMS-838)",
                                                 **(extra_context or {})})

    @admin.display(description="report", ordering="part")
    def report_link(self, obj):
        return format_html('<a href="{}">{}</a><div class="settle-muted">PTAN {}</div>',
                           admin_url("reports_cms838report_change", obj.pk), obj.get_part_display(),
                           obj.provider_number)

    @admin.display(description="period", ordering="period_end")
    def period(self, obj):
        return f"{day(obj.period_start)} – {day(obj.period_end)}"

    @admin.display(description="generated", ordering="generated_at")
    def generated(self, obj):
        return format_html('{}<div class="settle-muted">{}</div>',
                           timezone.localtime(obj.generated_at).strftime("%m/%d/%Y"), user_name(obj.generated_by))

    @admin.display(description="lines", ordering="line_count")
    def lines(self, obj):
        return f"{obj.line_count:,}"

    @admin.display(description="credit balances", ordering="credit_total")
    def credit(self, obj):
        return format_html('<span class="money">{}</span>', money(obj.credit_total))

    @admin.display(description="repaid", ordering="repaid_total")
    def repaid(self, obj):
        return format_html('<span class="money">{}</span>', money(obj.repaid_total))

    @admin.display(description="outstanding", ordering="outstanding_total")
    def outstanding(self, obj):
        return format_html('<span class="money">{}</span>', money(obj.outstanding_total))


# --- the report settings -----------------------------------------------------------------------------------

class SettingsForm(forms.Form):
    medicare_ptan_part_a = forms.CharField(label="Part A provider number (PTAN)", required=False, max_length=40,
                                           help_text="1 to 10 letters and digits; blank: no Part A report.")
    medicare_ptan_part_b = forms.CharField(label="Part B provider number (PTAN)", required=False, max_length=40,
                                           help_text="1 to 10 letters and digits; blank: no Part B report.")
    report_contact_name = forms.CharField(label="Report contact", required=False, max_length=200,
                                          help_text="Who answers the contractor's questions about the report.")
    report_contact_phone = forms.CharField(label="Contact's phone", required=False, max_length=60,
                                           help_text="e.g. 512-555-0100 or (512) 555-0100 x12")
    cost_report_closed_through = f.IsoDateFormField(
        label="Cost reports closed through", required=False,
        help_text="YYYY-MM-DD: end of the last settled cost-report period (a payment after it is in an open "
                  "period). Blank: every period is open.")
    review_sample_size = forms.CharField(label="Cases sampled for a second review", max_length=10,
                                         help_text="Resolved cases the weekly audit puts up for review (0 to 100).")
    reason = f.reason_field()

    def __init__(self, *args, row: ReportSettings, **kwargs):
        initial = {n: getattr(row, n) for n in SETTINGS_FIELDS}
        initial["review_sample_size"] = str(row.review_sample_size)  # compared as typed: unchanged is unchanged
        super().__init__(*args, initial=initial, **kwargs)
        self.fields["review_sample_size"].widget.attrs["size"] = 4

    def changes(self) -> dict:
        return {name: self.cleaned_data.get(name) for name in SETTINGS_FIELDS if name in self.changed_data}


def history_rows(practice_id: int) -> list[dict]:
    """The settings' history, newest first: when, who, why and what changed (old -> new)."""
    versions = list(ReportSettings.history.filter(practice_id=practice_id).select_related("history_user")
                    .order_by("-history_id")[:HISTORY_SHOWN + 1])
    labels = {n: ReportSettings._meta.get_field(n).verbose_name for n in SETTINGS_FIELDS}
    out = []
    for i, version in enumerate(versions[:HISTORY_SHOWN]):
        before = versions[i + 1] if i + 1 < len(versions) else None
        changes = []
        for name in SETTINGS_FIELDS:
            new = getattr(version, name)
            old = getattr(before, name) if before is not None else None
            if before is None or old != new:
                shown = day(new) if isinstance(new, date) else (new if new not in ("", None) else "blank")
                was = "" if before is None else (day(old) if isinstance(old, date) else (old if old not in ("", None)
                                                                                       else "blank"))
                changes.append((labels[name][:1].upper() + labels[name][1:], was, shown))
        out.append({"when": timezone.localtime(version.history_date).strftime("%m/%d/%Y %H:%M"),
                    "who": user_name(version.history_user), "reason": version.history_change_reason or "",
                    "changes": changes, "created": before is None})
    return out


class SettingsPagesMixin:
    """For ReportSettingsAdmin: the list of the user's practices (one row each) and practice/<id>/."""

    def backoffice_urls(self):
        wrap = self.admin_site.admin_view
        return [path("practice/<int:practice_id>/", wrap(self.edit_view), name="reports_reportsettings_edit")]

    def changelist_view(self, request, extra_context=None):
        self.require_manager(request)
        ids = managed_practice_ids(request)
        rows = {s.practice_id: s for s in ReportSettings.objects.filter(practice_id__in=ids)}
        shown = []
        for practice in Practice.objects.filter(pk__in=ids).order_by("name"):
            row = rows.get(practice.pk)
            shown.append({"practice": practice, "row": row or ReportSettings(practice=practice), "saved": row is not None,
                          "missing": [w for _, w in settings_missing(row)],
                          "url": reverse("admin:reports_reportsettings_edit", args=[practice.pk])})
        return render_page(self, request, "admin/reports/cms838_settings_list.html", title="Report settings",
                           crumbs=[(reverse("admin:reports_cms838report_changelist"),
                                    "Medicare credit balance reports")], rows=shown)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        self.require_manager(request)
        row = self.object_or_404(request, ReportSettings, int(object_id)) if str(object_id).isdigit() else None
        if row is None:
            raise Http404("No report settings match the given query.")
        return HttpResponseRedirect(reverse("admin:reports_reportsettings_edit", args=[row.practice_id]))

    def history_view(self, request, object_id, extra_context=None):
        return self.change_view(request, object_id)

    def edit_view(self, request, practice_id):
        self.require_manager(request)
        if not request.user.is_superuser and practice_id not in managed_practice_ids(request):
            raise Http404("No practice matches the given query.")
        practice = Practice.objects.filter(pk=practice_id).first()
        if practice is None:
            raise Http404("No practice matches the given query.")
        row = ReportSettings.objects.filter(practice_id=practice_id).first() or ReportSettings(practice=practice)
        form = SettingsForm(request.POST or None, row=row)
        if request.method == "POST" and form.is_valid():
            changes = form.changes()
            if not changes:
                form.add_error(None, "Nothing changed.")
            else:
                saved = run_service(form, report_settings_update, practice_id=practice_id, actor=request.user,
                                    reason=form.cleaned_data["reason"], **changes)
                if saved is not None:
                    messages.success(request, f"Report settings of {practice} saved.")
                    return HttpResponseRedirect(reverse("admin:reports_reportsettings_edit", args=[practice_id]))
        return render_page(self, request, "admin/reports/cms838_settings.html",
                           title=f"Report settings of {practice}",
                           crumbs=[(reverse("admin:reports_cms838report_changelist"), "Medicare credit balance reports"),
                                   (reverse("admin:reports_reportsettings_changelist"), "Report settings")],
                           form=form, history=history_rows(practice_id), buttons=[("_save", "Save", "default")],
                           cancel_url=reverse("admin:reports_reportsettings_changelist"))


@admin.register(ReportSettings)
class ReportSettingsAdmin(SettingsPagesMixin, BackofficeAdminMixin, ManagersOnlyAdmin, admin.ModelAdmin):
    actions = None
