"""Reads of the reports app for the back-office and the API (scoped by the caller's practices)."""

from reports.models import AuditFinding, AuditRun, CaseReview, Cms838Report, ExportJob


def audit_runs(*, practice_ids, kind=None):
    qs = AuditRun.objects.filter(practice_id__in=practice_ids).select_related("practice", "triggered_by")
    return (qs.filter(kind=kind) if kind else qs).order_by("-started_at", "-pk")


def findings(*, practice_ids, state=None, kind=None, severity=None, run=None):
    qs = AuditFinding.objects.filter(practice_id__in=practice_ids).select_related("run", "decided_by")
    for field, value in (("state", state), ("kind", kind), ("severity", severity), ("run_id", run)):
        if value:
            qs = qs.filter(**{field: value})
    return qs.order_by("-run__started_at", "pk")


def case_reviews(*, practice_ids, state=None):
    qs = CaseReview.objects.filter(practice_id__in=practice_ids).select_related("case", "run", "reviewer")
    return (qs.filter(state=state) if state else qs).order_by("-sampled_at", "pk")


def cms838_reports(*, practice_ids):
    return Cms838Report.objects.filter(practice_id__in=practice_ids).order_by("-generated_at", "-pk")


def export_jobs(*, practice_ids):
    return ExportJob.objects.filter(practice_id__in=practice_ids).select_related("created_by").order_by("-created_at")
