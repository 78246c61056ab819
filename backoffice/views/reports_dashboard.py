"""The managers' dashboard (issue 12 item 3): the measures of DOMAIN rule 21 for a period, beside the
replaced service's figures, and a 12-week trend of each series as server-side SVG charts.

Managers only: the page shows the practices the user manages (`managed_practice_ids`, checked again
with `ledger.access.ensure_staff(..., manager=True)`); billing staff get 403. One `measures()` and one
`trend()` per practice. Bad dates are shown as the form's errors (check_period's message), never a 500.
"""

from datetime import timedelta
from zoneinfo import ZoneInfo

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from adjudication.clocks import practice_today
from adjudication.models import Case
from backoffice.admin.reports_exports import managed_practice_ids
from backoffice.templatetags.charts import show
from credits.models import NightlyRun
from ledger import access, errors
from ledger.errors import InvalidInput
from ledger.models import Practice
from reports.measures import (
    AR_WARNING,
    REPLACED_SERVICE,
    check_day,
    check_period,
    measures,
    open_cases_snapshot_take,
    trend,
)

DATE_FORMATS = ["%Y-%m-%d", "%m/%d/%Y"]
CAUSES = dict(Case.Cause.choices)
RUN_STATUS = dict(NightlyRun.Status.choices)
# (key, label, format, True when a lower value is better)
COMPARED = (("turnaround_hours", "Turnaround (identified to resolved, mean)", "hours", True),
            ("approval_rate", "Approval rate (approved ÷ decided proposals)", "percent", False),
            ("error_rate", "Error rate (resolved, then reopened or failed review)", "percent", True))
CHARTS = (("turnaround_hours", "Turnaround", "hours"), ("approval_rate", "Approval rate", "percent"),
          ("error_rate", "Error rate", "percent"), ("resolutions", "Resolutions", "count"),
          ("credit_balances", "Credit balances", "money"), ("share_of_ar", "Credit balances ÷ gross A/R", "percent"))


class PeriodForm(forms.Form):
    date_from = forms.DateField(label="From", input_formats=DATE_FORMATS,
                                widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"))
    date_to = forms.DateField(label="To", input_formats=DATE_FORMATS,
                              widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"))
    as_of = forms.DateField(label="Balances as of", required=False, input_formats=DATE_FORMATS,
                            help_text="Aging and balances at the end of this day (default: the period's last day)",
                            widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"))

    def clean(self):
        data = super().clean()
        try:
            if data.get("date_from") and data.get("date_to"):
                check_period(data["date_from"], data["date_to"])
            if data.get("as_of"):
                check_day(data["as_of"], "as_of")
        except InvalidInput as exc:
            self.add_service_error(exc)
        return data

    def add_service_error(self, exc: InvalidInput) -> None:
        self.add_error(exc.field if exc.field in self.fields and exc.field not in self.errors else None, str(exc))


def compare(ours, theirs, lower_is_better: bool) -> str:
    """'better', 'worse' or 'same' than the replaced service ('' when there is nothing to compare)."""
    if ours is None:
        return ""
    if ours == theirs:
        return "same"
    return "better" if (ours < theirs) == lower_is_better else "worse"


def days(value) -> str:
    return "—" if value is None else f"{value:,.2f} days"


def headline_rows(columns: list[dict]) -> list[dict]:
    """The headline table: one row per measure, one cell per practice, the replaced service's figure."""
    rows = []
    for key, label, fmt, lower in COMPARED:
        theirs = REPLACED_SERVICE[key]
        rows.append({"label": label, "theirs": show(theirs, fmt), "cells": [
            {"text": show(c["m"][key], fmt), "verdict": compare(c["m"][key], theirs, lower)} for c in columns]})

    def row(label, fn, warn=lambda m: False):
        rows.append({"label": label, "theirs": "", "cells": [
            {"text": fn(c["m"]), "verdict": "", "warning": warn(c["m"])} for c in columns]})

    row("Resolutions (cases resolved in the period)", lambda m: f"{m['resolutions']:,}")
    row("Resolved without staff action", lambda m: show(m["automatic_share"], "percent")
        + f" ({m['automatic']:,} of {m['resolutions']:,})")
    row("Credit balances", lambda m: show(m["credit_balances"], "money"))
    row("Gross A/R", lambda m: show(m["gross_ar"], "money"))
    row(f"Credit balances ÷ gross A/R (warning above {show(AR_WARNING, 'percent')})",
        lambda m: show(m["share_of_ar"], "percent") + (" — above the warning level" if m["share_warning"] else ""),
        lambda m: m["share_warning"])
    row("Refunds issued", lambda m: f"{m['refunds_issued']['count']:,} for "
        f"{show(m['refunds_issued']['amount'], 'money')}")
    row("Median days from refund request to issue", lambda m: days(m["refunds_issued"]["median_days"]))
    row("Unmatched 835 claims waiting", lambda m: f"{sum(n for _, n in m['unmatched_by_payer']):,}")
    return rows


def section(practice: Practice, m: dict, points: list[dict]) -> dict:
    """A practice's own section: aging, totals by source, cause and payer, runs, unmatched claims, trends."""
    counted = m.get("counted_at")
    return {
        "practice": practice, "m": m,
        "counted_at": counted.astimezone(ZoneInfo(practice.time_zone)) if counted else None,
        "aging": [(label, n, show(amount, "money")) for label, n, amount in m["aging"]],
        "by": [("Source", [(s.replace("_", " ").capitalize(), n, show(a, "money")) for s, n, a in m["by_source"]]),
               ("Cause", [(CAUSES.get(c, c), n, show(a, "money")) for c, n, a in m["by_cause"]]),
               ("Payer", [(p, n, show(a, "money")) for p, n, a in m["by_payer"]])],
        "runs": [dict(r, status=RUN_STATUS.get(r["status"], r["status"]), applied=show(r["applied"], "money"),
                      released=show(r["released"], "money"))
                 for r in m["nightly_runs"]],
        "charts": [{"key": key, "title": title, "fmt": fmt, "points": points,
                    "rows": [(p["week_end"], show(p[key], fmt)) for p in points]} for key, title, fmt in CHARTS],
    }


def dashboard_view(request):
    user = request.user
    ids = managed_practice_ids(request) if user.is_active and user.is_staff else []
    if not ids:
        raise PermissionDenied
    if request.method == "POST":  # "Refresh": count a practice's open cases now (a new snapshot)
        refresh = request.POST.get("refresh", "")
        if not (refresh.isdigit() and int(refresh) in ids):
            raise Http404("No practice of yours matches the given query.")
        try:
            open_cases_snapshot_take(practice_id=int(refresh), actor=user)
        except errors.PermissionDenied as exc:
            raise PermissionDenied(str(exc)) from exc
        return HttpResponseRedirect(request.get_full_path())
    practices = list(Practice.objects.filter(pk__in=ids).order_by("name", "pk"))
    chosen = request.GET.get("practice", "")
    if chosen.isdigit() and int(chosen) in ids:
        practices = [p for p in practices if p.pk == int(chosen)]
    for practice in practices:  # the service layer's own check, again: a refusal is a 403, never a 500
        try:
            access.ensure_staff(user, practice.pk, manager=True)
        except errors.PermissionDenied as exc:
            raise PermissionDenied(str(exc)) from exc
    today = practice_today(practices[0])
    if "date_from" in request.GET or "date_to" in request.GET:
        form = PeriodForm(request.GET)
    else:
        form = PeriodForm({"date_from": (today - timedelta(days=29)).isoformat(), "date_to": today.isoformat()})
    columns, sections = [], []
    if form.is_valid():
        d = form.cleaned_data
        try:
            for practice in practices:
                m = measures(practice_id=practice.pk, date_from=d["date_from"], date_to=d["date_to"],
                             as_of=d["as_of"])
                points = trend(practice_id=practice.pk, end=d["date_to"], weeks=12)
                columns.append({"practice": practice, "m": m})
                sections.append(section(practice, m, points))
        except InvalidInput as exc:  # whatever else the measures refuse: on the form, never a 500
            form.add_service_error(exc)
            columns, sections = [], []
    request.current_app = admin.site.name
    return TemplateResponse(request, "admin/reports/dashboard.html", {
        **admin.site.each_context(request), "title": "Dashboard", "crumbs": [], "form": form,
        "columns": columns, "rows": headline_rows(columns) if columns else [], "sections": sections,
        "all_practices": Practice.objects.filter(pk__in=ids).order_by("name", "pk") if len(ids) > 1 else [],
        "chosen": chosen, "url": reverse("admin:reports_dashboard"),
    })
