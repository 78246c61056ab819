"""Back-office pages of the managers' reports (issue 12 item 4): the exports.

* the catalog ("admin:reports_exportjob_catalog"): every report of reports/exports/base.py REGISTRY
  with its description, a small form for what it takes (ReportDef.takes: a period, an as-of date,
  an audit run, a CMS-838 report, a year), the practice when the manager has several, and CSV /
  Excel / PDF buttons; a POST is one `export_start` call and goes to the job's page; a refusal
  (InvalidInput naming a parameter) is shown next to that field;
* the job page (the ExportJob change page): the report, format, parameters in words, state, a
  progress bar (the page refreshes itself every 2 seconds while the job is queued or running: no
  JavaScript), the download link when done, the error when it failed;
* the download ("admin:reports_exportjob_download"): `export_open`'s file with its name and type;
* the jobs list (report, format, state, rows, size, who, when).

Managers only (`ManagersOnlyAdmin`): billing staff get 403 on every page; rows are scoped to the
practices the user manages, so another practice's job is a 404 (page and download). Jobs are
written by the export task only: nothing is added, changed or deleted through admin forms."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from backoffice import forms as f
from backoffice.admin.base import BackofficeAdminMixin, PracticeScopedAdmin
from backoffice.views.common import admin_url, in_scope_or_404, render_page, run_service, user_practice_ids
from ledger import errors
from ledger.models import Membership, Practice
from reports import selectors
from reports.exports.base import REGISTRY
from reports.exports.jobs import export_open, export_start
from reports.models import AuditRun, Cms838Report, ExportJob

FORMATS = (("csv", "CSV"), ("xlsx", "Excel"), ("pdf", "PDF"))
CHOICES_SHOWN = 50  # audit runs / CMS-838 reports offered in a report's form (newest first)


# --- managers only ----------------------------------------------------------------------------------------

def managed_practice_ids(request) -> list[int]:
    """The practices the request's user manages (administrators: every one the user may see)."""
    if not hasattr(request, "_settle_managed_ids"):
        ids = user_practice_ids(request)
        if not request.user.is_superuser:
            managed = set(Membership.objects.filter(user_id=request.user.pk, role=Membership.Role.MANAGER)
                          .values_list("practice_id", flat=True))
            ids = [pid for pid in ids if pid in managed]
        request._settle_managed_ids = ids
    return request._settle_managed_ids


class ManagersOnlyAdmin(PracticeScopedAdmin):
    """A reports admin: its pages are for managers of a practice (billing staff: 403), its rows those
    of the practices the user manages (another practice's row: 404). Nothing is added, changed or
    deleted through the admin's own forms."""

    def scope(self, request, qs):
        if request.user.is_superuser:
            return qs
        return qs.filter(**{f"{self.practice_field}__in": managed_practice_ids(request)})

    def in_scope(self, request, obj) -> bool:
        return request.user.is_superuser or self.practice_id_of(obj) in managed_practice_ids(request)

    def is_member(self, request) -> bool:
        user = request.user
        return bool(user.is_active and user.is_staff and (user.is_superuser or managed_practice_ids(request)))

    def manages_several(self, request) -> bool:
        return request.user.is_superuser or len(managed_practice_ids(request)) > 1

    def get_list_display(self, request):
        """The "practice" column only for who manages several practices."""
        shown = list(self.list_display)
        if "practice" in shown and not self.manages_several(request):
            shown.remove("practice")
        return shown

    def has_change_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False

    def require_manager(self, request) -> None:
        if not self.has_module_permission(request):
            raise PermissionDenied

    def object_or_404(self, request, model, pk):
        """A row of `model` within the user's managed practices, else 404 (also for administrators: none)."""
        qs = model.objects.all()
        if not request.user.is_superuser:
            qs = qs.filter(practice_id__in=managed_practice_ids(request))
        return in_scope_or_404(request, qs, pk=pk)


# --- parameters in words ---------------------------------------------------------------------------------

def _day(value) -> str:
    if not value:
        return ""
    text = str(value)
    return f"{text[5:7]}/{text[8:10]}/{text[0:4]}" if len(text) == 10 else text


def params_in_words(job: ExportJob) -> list[tuple[str, str]]:
    """(label, value) of a job's parameters: dates as MM/DD/YYYY, runs and reports by name."""
    p = job.params or {}
    out = []
    if p.get("date_from") or p.get("date_to"):
        out.append(("Period", f"{_day(p.get('date_from'))} – {_day(p.get('date_to'))}"))
    if p.get("as_of"):
        out.append(("As of", _day(p["as_of"])))
    if p.get("run"):
        run = AuditRun.objects.filter(pk=p["run"], practice_id=job.practice_id).first()
        out.append(("Audit run", str(run) if run else f"run {p['run']}"))
    if p.get("report"):
        report = Cms838Report.objects.filter(pk=p["report"], practice_id=job.practice_id).first()
        out.append(("Report", str(report) if report else f"report {p['report']}"))
    if p.get("year"):
        out.append(("Year", str(p["year"])))
    return out or [("Parameters", "none")]


def report_title(name: str) -> str:
    defn = REGISTRY.get(name)
    return defn.title if defn else name


def size_words(size: int) -> str:
    if not size:
        return "—"
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{size / 1024:,.1f} KB"
    return f"{size / (1024 * 1024):,.1f} MB"


# --- the catalog's forms ---------------------------------------------------------------------------------

class ExportForm(f.PracticeChoiceMixin, forms.Form):
    """What one report takes (ReportDef.takes), prefixed by the report's name on the catalog page."""
    practice = forms.ModelChoiceField(queryset=Practice.objects.none(), empty_label=None)

    def __init__(self, *args, defn, practice_ids, **kwargs):
        super().__init__(*args, prefix=defn.name, **kwargs)
        self.defn = defn
        self.setup_practice(practice_ids)
        several = len(practice_ids) > 1
        if "period" in defn.takes:
            self.fields["date_from"] = f.IsoDateFormField(label="From", help_text="")
            self.fields["date_to"] = f.IsoDateFormField(label="To", help_text="")
        if "as_of" in defn.takes:
            self.fields["as_of"] = f.IsoDateFormField(label="As of", required=False, help_text="blank: today")
        if "run" in defn.takes:
            runs = selectors.audit_runs(practice_ids=practice_ids)[:CHOICES_SHOWN]
            self.fields["run"] = forms.ChoiceField(
                label="Audit run", choices=[("", "— choose a run —")] + [
                    (r.pk, f"{r}{' · ' + r.practice.name if several else ''} · {r.get_status_display().lower()}")
                    for r in runs])
        if "report" in defn.takes:
            reports = selectors.cms838_reports(practice_ids=practice_ids).select_related("practice")[:CHOICES_SHOWN]
            self.fields["report"] = forms.ChoiceField(
                label="Report", choices=[("", "— choose a report —")] + [
                    (r.pk, f"{r}{' · ' + r.practice.name if several else ''}") for r in reports])
        if "year" in defn.takes:
            self.fields["year"] = forms.IntegerField(label="Year", required=False, min_value=1900, max_value=2199,
                                                     help_text="blank: the as-of date's year")
        for field in self.fields.values():
            if isinstance(field, f.IsoDateFormField):
                field.widget = forms.DateInput(attrs={"type": "date", "placeholder": "YYYY-MM-DD"},
                                               format="%Y-%m-%d")

    def params(self) -> dict:
        """The cleaned values as export_start's `params` (strings, as the API sends them)."""
        out = {}
        for name, value in self.cleaned_data.items():
            if name == "practice" or value in (None, ""):
                continue
            out[name] = value.isoformat() if hasattr(value, "isoformat") else str(value)
        return out


class ExportPagesMixin:
    """For ExportJobAdmin: catalog/, <id>/download/, and the change page as the job's page."""

    def backoffice_urls(self):
        wrap = self.admin_site.admin_view
        return [path("catalog/", wrap(self.catalog_view), name="reports_exportjob_catalog"),
                path("<int:job_id>/download/", wrap(self.download_view), name="reports_exportjob_download")]

    def changelist_tools(self, request):
        return [(reverse("admin:reports_exportjob_catalog"), "Reports and exports")]

    def catalog_view(self, request):
        self.require_manager(request)
        ids = managed_practice_ids(request)
        chosen = request.POST.get("export") if request.method == "POST" else None
        forms_ = []
        for defn in sorted(REGISTRY.values(), key=lambda d: d.title):
            bound = request.POST if defn.name == chosen else None
            forms_.append(ExportForm(bound, defn=defn, practice_ids=ids))
        if chosen is not None:
            form = next((x for x in forms_ if x.defn.name == chosen), None)
            fmt = request.POST.get("format")
            if form is None:
                messages.error(request, f"Unknown report {chosen!r}.")
            elif fmt not in dict(FORMATS):
                form.add_error(None, "Choose CSV, Excel or PDF.")
            elif form.is_valid():
                job = run_service(form, export_start, practice_id=form.cleaned_data["practice"].pk,
                                  report=form.defn.name, format=fmt, params=form.params(), actor=request.user)
                if job is not None:
                    messages.success(request, f"{form.defn.title} ({dict(FORMATS)[fmt]}) is being written.")
                    return HttpResponseRedirect(admin_url("reports_exportjob_change", job.pk))
        recent = selectors.export_jobs(practice_ids=ids)[:10]
        return render_page(self, request, "admin/reports/export_catalog.html", title="Reports and exports",
                           forms=forms_, formats=FORMATS, chosen=chosen,
                           recent=[(j, report_title(j.report)) for j in recent],
                           jobs_url=reverse("admin:reports_exportjob_changelist"))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        self.require_manager(request)
        if not str(object_id).isdigit():
            raise Http404("No export matches the given query.")
        job = self.object_or_404(request, ExportJob, int(object_id))
        running = job.state in (ExportJob.State.QUEUED, ExportJob.State.RUNNING)
        percent = None
        if job.rows_total:
            percent = min(100, int(job.rows_done * 100 / job.rows_total))
        elif job.state == ExportJob.State.DONE:
            percent = 100
        return render_page(self, request, "admin/reports/export_job.html",
                           title=f"Export: {report_title(job.report)} ({job.get_format_display()})",
                           crumbs=[(reverse("admin:reports_exportjob_catalog"), "Reports and exports"),
                                   (reverse("admin:reports_exportjob_changelist"), "Exports")],
                           job=job, params=params_in_words(job), running=running, percent=percent,
                           size=size_words(job.size), report_name=report_title(job.report),
                           download_url=admin_url("reports_exportjob_download", job.pk))

    def download_view(self, request, job_id):
        self.require_manager(request)
        job = self.object_or_404(request, ExportJob, job_id)
        try:
            handle, filename, content_type = export_open(job=job.pk, actor=request.user)
        except errors.NotFound:
            raise Http404("No export matches the given query.") from None
        except errors.PermissionDenied:
            raise PermissionDenied from None
        except errors.SettleError as exc:
            messages.error(request, exc.message)
            return HttpResponseRedirect(admin_url("reports_exportjob_change", job.pk))
        return FileResponse(handle, as_attachment=True, filename=filename, content_type=content_type)


@admin.register(ExportJob)
class ExportJobAdmin(ExportPagesMixin, BackofficeAdminMixin, ManagersOnlyAdmin, admin.ModelAdmin):
    list_display = ("job", "format_label", "state_label", "rows", "size_label", "who", "when", "practice")
    list_display_links = None
    list_filter = ("state", "format", "report")
    list_select_related = ("created_by", "practice")
    ordering = ("-created_at", "-pk")
    show_full_result_count = False
    list_per_page = 100
    actions = None

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {"title": "Exports", **(extra_context or {})})

    @admin.display(description="report", ordering="report")
    def job(self, obj):
        return format_html('<a href="{}">{}</a><div class="settle-muted">#{}</div>',
                           admin_url("reports_exportjob_change", obj.pk), report_title(obj.report), obj.pk)

    @admin.display(description="format", ordering="format")
    def format_label(self, obj):
        return obj.get_format_display()

    @admin.display(description="state", ordering="state")
    def state_label(self, obj):
        if obj.state == ExportJob.State.DONE:
            return format_html('<a href="{}">{}</a>', admin_url("reports_exportjob_download", obj.pk), "Download")
        return obj.get_state_display()

    @admin.display(description="rows")
    def rows(self, obj):
        if obj.rows_total is not None and obj.state != ExportJob.State.DONE:
            return f"{obj.rows_done:,} of {obj.rows_total:,}"
        return f"{obj.rows_done:,}"

    @admin.display(description="size", ordering="size")
    def size_label(self, obj):
        return size_words(obj.size)

    @admin.display(description="who", ordering="created_by__username")
    def who(self, obj):
        return obj.created_by.get_full_name() or obj.created_by.get_username()

    @admin.display(description="when", ordering="created_at")
    def when(self, obj):
        return timezone.localtime(obj.created_at).strftime("%m/%d/%Y %H:%M")
