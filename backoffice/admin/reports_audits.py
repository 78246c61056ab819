"""Back-office pages of the audits (issue 12 item 1, DOMAIN rule 20):

* the audit runs ("admin:reports_auditrun_changelist"): kind, as of, status, findings, who started
  it (blank: the schedule), when it started and finished, the practice for managers of several;
* a run's page (the AuditRun change page): each check with its findings and milliseconds (the
  run's `checks`), the error when a check failed, the run's findings;
* "Run the books audit now" / "Run the work audit now" ("admin:reports_auditrun_run", ?kind=):
  a POST with a reason is one `run_audit` call, synchronous; a second run while one is running is
  refused (Duplicate) and shown as a message;
* the findings ("admin:reports_auditfinding_changelist"): filters state, kind, severity, run;
* a finding's page (the AuditFinding change page): its detail, the earlier occurrences of the same
  fault (`previous`), its history, and acknowledge / resolve with a reason through
  `finding_acknowledge` / `finding_resolve` (a refusal shown on the form).

Managers only (backoffice/admin/reports_exports.py ManagersOnlyAdmin): billing staff 403, another
practice's run or finding 404. Nothing is added, changed or deleted through admin forms."""

from django import forms
from django.contrib import admin, messages
from django.http import Http404, HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from backoffice import forms as f
from backoffice.admin.base import BackofficeAdminMixin
from backoffice.admin.reports_exports import ManagersOnlyAdmin, managed_practice_ids
from backoffice.views.common import admin_url, money, render_page, run_service
from ledger.errors import Duplicate, SettleError
from ledger.models import Practice
from reports.audits.runner import run_audit
from reports.models import AuditFinding, AuditRun
from reports.services.findings import finding_acknowledge, finding_resolve

FINDINGS_SHOWN = 200  # a run's page lists its first 200 findings (the findings list has them all)
PREVIOUS_SHOWN = 50
HISTORY_SHOWN = 50
RUNS_IN_FILTER = 30
KIND_SHORT = {AuditRun.Kind.BOOKS: "The books", AuditRun.Kind.WORK: "The work"}
RUN_TITLES = {AuditRun.Kind.BOOKS: "Run the books audit now", AuditRun.Kind.WORK: "Run the work audit now"}


def when(value) -> str:
    return timezone.localtime(value).strftime("%m/%d/%Y %H:%M") if value else "—"


def user_name(user, blank: str = "—") -> str:
    if user is None:
        return blank
    return user.get_full_name() or user.get_username()


def check_label(kind: str) -> str:
    return AuditFinding.Kind(kind).label if kind in AuditFinding.Kind.values else kind


def check_rows(run: AuditRun) -> list[dict]:
    """The run's checks in the registry's order: label, found, recorded, milliseconds, error."""
    order = AuditFinding.BOOKS_CHECKS + AuditFinding.WORK_CHECKS
    rows = []
    for kind, summary in sorted((run.checks or {}).items(),
                                key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)):
        found = summary.get("findings")
        rows.append({"kind": kind, "label": check_label(kind), "found": found,
                     "recorded": summary.get("recorded", found), "ms": summary.get("ms"),
                     "error": summary.get("error", "")})
    return rows


class ManagedListMixin:
    show_full_result_count = False
    list_per_page = 100
    list_display_links = None
    actions = None

    practice_under = ""  # for managers of several practices, the column whose second line names the practice

    def get_list_display(self, request):
        shown = list(self.list_display)
        if self.manages_several(request) and self.practice_under:  # "<column>_practice" shows the column, then the practice under it
            shown[shown.index(self.practice_under)] = f"{self.practice_under}_practice"
        return shown

    def with_practice(self, cell, obj):
        return format_html('{}<div class="settle-muted">{}</div>', cell, obj.practice.name)

    def history_view(self, request, object_id, extra_context=None):
        return self.change_view(request, object_id)  # the history is on the object's page


# --- the runs -----------------------------------------------------------------------------------------------

class RunForm(f.PracticeChoiceMixin, forms.Form):
    practice = forms.ModelChoiceField(queryset=Practice.objects.none(), empty_label=None)
    kind = forms.ChoiceField(label="Audit", choices=AuditRun.Kind.choices, widget=forms.RadioSelect)
    reason = f.reason_field(help_text="Kept on the run with your name.")

    def __init__(self, *args, practice_ids, **kwargs):
        super().__init__(*args, **kwargs)
        self.setup_practice(practice_ids)


class AuditRunPagesMixin:
    def backoffice_urls(self):
        return [path("run/", self.admin_site.admin_view(self.run_view), name="reports_auditrun_run")]

    def changelist_tools(self, request):
        url = reverse("admin:reports_auditrun_run")
        return [(reverse("admin:reports_auditfinding_changelist"), "Audit findings"),
                (f"{url}?kind=books", "Run the books audit now"), (f"{url}?kind=work", "Run the work audit now")]

    def run_view(self, request):
        self.require_manager(request)
        ids = managed_practice_ids(request)
        kind = request.GET.get("kind") if request.GET.get("kind") in AuditRun.Kind.values else AuditRun.Kind.BOOKS
        form = RunForm(request.POST or None, practice_ids=ids,
                       initial={"kind": kind, "reason": "Audit started by hand"})
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                run = run_audit(practice_id=data["practice"].pk, kind=data["kind"], actor=request.user,
                                reason=data["reason"])
            except Duplicate as exc:
                messages.error(request, f"Not started: {exc.message}.")
                return HttpResponseRedirect(request.get_full_path())
            except SettleError as exc:
                f.add_service_error(form, exc, fields={"practice_id": "practice"})
            else:
                messages.success(request, f"{run}: {run.get_status_display().lower()}, {run.finding_count} "
                                          f"finding{'s' if run.finding_count != 1 else ''}.")
                return HttpResponseRedirect(admin_url("reports_auditrun_change", run.pk))
        title = RUN_TITLES[kind]
        return render_page(self, request, "admin/reports/audit_run_now.html", title=title,
                           crumbs=[(reverse("admin:reports_auditrun_changelist"), "Audit runs")], form=form,
                           buttons=[("_run", "Run the audit", "default")],
                           cancel_url=reverse("admin:reports_auditrun_changelist"))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        self.require_manager(request)
        if not str(object_id).isdigit():
            raise Http404("No audit run matches the given query.")
        run = self.object_or_404(request, AuditRun, int(object_id))
        findings = list(AuditFinding.objects.filter(run=run).select_related("decided_by")
                        .order_by("kind", "pk")[:FINDINGS_SHOWN])
        summary = [("Audit", run.get_kind_display()), ("As of", run.as_of.strftime("%m/%d/%Y")),
                   ("Status", run.get_status_display()), ("Findings", f"{run.finding_count:,}"),
                   ("Started", f"{when(run.started_at)} by {user_name(run.triggered_by, 'the schedule')}"),
                   ("Finished", when(run.finished_at)), ("Reason", run.reason)]
        if len(managed_practice_ids(request)) > 1 or request.user.is_superuser:
            summary.insert(0, ("Practice", str(run.practice)))
        return render_page(self, request, "admin/reports/audit_run.html", title=str(run),
                           crumbs=[(reverse("admin:reports_auditrun_changelist"), "Audit runs")], run=run,
                           summary=summary, checks=check_rows(run), findings=findings,
                           more=max(run.finding_count - len(findings), 0),
                           findings_url=f"{reverse('admin:reports_auditfinding_changelist')}?run={run.pk}")


@admin.register(AuditRun)
class AuditRunAdmin(AuditRunPagesMixin, ManagedListMixin, BackofficeAdminMixin, ManagersOnlyAdmin, admin.ModelAdmin):
    # four columns of two lines each: the list fits 1280 px with the sidebar and the filter column open
    list_display = ("run_link", "status_label", "started", "finished")
    practice_under = "finished"
    list_filter = ("kind", "status")
    list_select_related = ("triggered_by", "practice")
    ordering = ("-started_at", "-pk")

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {"title": "Audit runs", **(extra_context or {})})

    @admin.display(description="audit / as of", ordering="as_of")
    def run_link(self, obj):
        return format_html('<a href="{}">{}</a><div class="settle-muted">{}</div>',
                           admin_url("reports_auditrun_change", obj.pk), KIND_SHORT.get(obj.kind, obj.kind),
                           obj.as_of.strftime("%m/%d/%Y"))

    @admin.display(description="status / findings", ordering="status")
    def status_label(self, obj):
        count = f"{obj.finding_count:,} finding{'s' if obj.finding_count != 1 else ''}"
        if obj.finding_count:
            count = format_html('<a href="{}?run={}">{}</a>', reverse("admin:reports_auditfinding_changelist"),
                                obj.pk, count)
        return format_html('<span class="state state-{}">{}</span><div class="settle-muted">{}</div>', obj.status,
                           obj.get_status_display(), count)

    @admin.display(description="started / by", ordering="started_at")
    def started(self, obj):
        return format_html('{}<div class="settle-muted">{}</div>', when(obj.started_at),
                           user_name(obj.triggered_by, "the schedule"))

    @admin.display(description="finished", ordering="finished_at")
    def finished(self, obj):
        return when(obj.finished_at)

    @admin.display(description="finished / practice", ordering="finished_at")
    def finished_practice(self, obj):
        return self.with_practice(self.finished(obj), obj)


# --- the findings -------------------------------------------------------------------------------------------

class RunFilter(admin.SimpleListFilter):
    """The latest runs of the user's practices; any of their runs by ?run=<id> (the run pages link so)."""
    title = "run"
    parameter_name = "run"

    def lookups(self, request, model_admin):
        runs = AuditRun.objects.filter(practice_id__in=managed_practice_ids(request)).order_by("-started_at", "-pk")
        return [(str(r.pk), f"{r.get_kind_display().split(' (')[0]}, {r.as_of:%m/%d/%Y}")
                for r in runs[:RUNS_IN_FILTER]]

    def queryset(self, request, queryset):
        value = self.value()
        return queryset.filter(run_id=int(value)) if value and value.isdigit() else queryset


class DecideForm(forms.Form):
    decision = forms.ChoiceField(choices=(("acknowledge", "Acknowledge"), ("resolve", "Resolve")),
                                 widget=forms.RadioSelect,
                                 help_text="Acknowledge: known and being worked on (later runs keep it). Resolve: "
                                           "fixed or explained.")
    reason = f.reason_field()

    def __init__(self, *args, finding: AuditFinding, **kwargs):
        super().__init__(*args, **kwargs)
        if finding.state != AuditFinding.State.OPEN:  # an acknowledged finding can only be resolved
            self.fields["decision"].choices = [("resolve", "Resolve")]
            self.fields["decision"].initial = "resolve"


def previous_rows(finding: AuditFinding) -> list[AuditFinding]:
    """The earlier occurrences of the same fault, newest first (following `previous`)."""
    out, seen, current = [], {finding.pk}, finding.previous_id
    while current and current not in seen and len(out) < PREVIOUS_SHOWN:
        seen.add(current)
        row = AuditFinding.objects.filter(pk=current, practice_id=finding.practice_id) \
            .select_related("run", "decided_by").first()
        if row is None:
            break
        out.append(row)
        current = row.previous_id
    return out


def history_rows(finding: AuditFinding) -> list[dict]:
    versions = AuditFinding.history.filter(id=finding.pk).select_related("history_user") \
        .order_by("-history_id")[:HISTORY_SHOWN]
    return [{"when": when(v.history_date), "who": user_name(v.history_user), "state": v.get_state_display(),
             "reason": v.history_change_reason or ""} for v in versions]


class AuditFindingPagesMixin:
    def change_view(self, request, object_id, form_url="", extra_context=None):
        self.require_manager(request)
        if not str(object_id).isdigit():
            raise Http404("No audit finding matches the given query.")
        finding = self.object_or_404(request, AuditFinding, int(object_id))
        decided = finding.state == AuditFinding.State.RESOLVED
        form = None if decided else DecideForm(request.POST or None, finding=finding)
        if form is not None and request.method == "POST" and form.is_valid():
            fn = finding_acknowledge if form.cleaned_data["decision"] == "acknowledge" else finding_resolve
            saved = run_service(form, fn, finding=finding.pk, actor=request.user, reason=form.cleaned_data["reason"])
            if saved is not None:
                messages.success(request, f"Finding {saved.get_state_display().lower()}: {saved.object_label}.")
                return HttpResponseRedirect(admin_url("reports_auditfinding_change", finding.pk))
            for error in form.non_field_errors():
                messages.error(request, str(error))
        summary = [("Check", finding.get_kind_display()), ("Severity", finding.get_severity_display()),
                   ("Object", finding.object_label), ("Expected", finding.expected or "—"),
                   ("Actual", finding.actual or "—"),
                   ("Amount", money(finding.amount) if finding.amount is not None else "—"),
                   ("Age", f"{finding.age_days} days" if finding.age_days is not None else "—"),
                   ("Found by", f"{finding.run} ({when(finding.run.started_at)})"),
                   ("State", finding.get_state_display())]
        if finding.decided_by_id:
            decided_text = f"{when(finding.decided_at)} by {user_name(finding.decided_by)}: {finding.decision_reason}"
            summary.append(("Decided", decided_text))
        return render_page(self, request, "admin/reports/audit_finding.html", title=str(finding),
                           crumbs=[(reverse("admin:reports_auditrun_changelist"), "Audit runs"),
                                   (reverse("admin:reports_auditfinding_changelist"), "Audit findings")],
                           finding=finding, facts=summary, form=form, previous=previous_rows(finding),
                           history=history_rows(finding), run_url=admin_url("reports_auditrun_change", finding.run_id),
                           buttons=[("_decide", "Save the decision", "default")],
                           cancel_url=reverse("admin:reports_auditfinding_changelist"))


@admin.register(AuditFinding)
class AuditFindingAdmin(AuditFindingPagesMixin, ManagedListMixin, BackofficeAdminMixin, ManagersOnlyAdmin,
                        admin.ModelAdmin):
    # five columns of two lines each: the list fits 1280 px with the sidebar and the filter column open
    list_display = ("kind_link", "object_label", "values", "amount_cell", "state_label")
    practice_under = "state_label"
    list_filter = ("state", "kind", "severity", RunFilter)
    list_select_related = ("practice",)
    search_fields = ("object_label",)
    search_help_text = "Object (patient name, account number, …)"
    ordering = ("-run__started_at", "pk")

    def changelist_tools(self, request):
        return [(reverse("admin:reports_auditrun_changelist"), "Audit runs")]

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {"title": "Audit findings", **(extra_context or {})})

    @admin.display(description="check / severity", ordering="kind")
    def kind_link(self, obj):
        return format_html('<a href="{}">{}</a><div class="settle-muted">{}</div>',
                           admin_url("reports_auditfinding_change", obj.pk), obj.get_kind_display(),
                           obj.get_severity_display())

    @admin.display(description="expected / actual")
    def values(self, obj):
        return format_html('{}<div class="settle-muted">{}</div>', obj.expected or "—", obj.actual or "—")

    @admin.display(description="amount / age", ordering="amount")
    def amount_cell(self, obj):
        return format_html('<span class="money">{}</span><div class="settle-muted">{}</div>',
                           money(obj.amount) if obj.amount is not None else "—",
                           f"{obj.age_days} days" if obj.age_days is not None else "")

    @admin.display(description="state", ordering="state")
    def state_label(self, obj):
        return format_html('<span class="state state-{}">{}</span>', obj.state, obj.get_state_display())

    @admin.display(description="state / practice", ordering="state")
    def state_label_practice(self, obj):
        return self.with_practice(self.state_label(obj), obj)
