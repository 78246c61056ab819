"""Jobs django-q2 runs for the reports (registered in config/schedules.py): the daily audit of the
books (with the dashboard's daily figures) and the weekly audit of the adjudication work, per
practice. Each re-sets its schedule to the
next local run time afterwards (exact across daylight-saving changes, as the nightly run does)."""

import logging

from django.utils import timezone
from django_q.models import Schedule

from config.schedules import (
    AUDIT_BOOKS_AT,
    AUDIT_BOOKS_PREFIX,
    AUDIT_WORK_AT,
    AUDIT_WORK_PREFIX,
    AUDIT_WORK_WEEKDAY,
    next_local_run,
)
from ledger.models import Practice
from reports.audits import run_audit
from reports.measures import balance_days_fill, open_cases_snapshot_take
from reports.models import AuditRun

log = logging.getLogger(__name__)


def _audit(practice_id: int, kind: str, prefix: str, at, weekday) -> dict:
    try:
        run = run_audit(practice_id=practice_id, kind=kind)
        out = {"run": run.pk, "status": run.status, "findings": run.finding_count}
        log.info("%s audit of practice %s: %s", kind, practice_id, out)
        return out
    finally:
        practice = Practice.objects.filter(pk=practice_id).first()
        if practice is not None:
            Schedule.objects.filter(name=f"{prefix}{practice_id}").update(
                next_run=next_local_run(practice, now=timezone.now(), at=at, weekday=weekday))


def audit_books(practice_id: int) -> dict:
    """The daily audit of the books (reports/audits/books.py); then the dashboard's daily figures:
    the closing balances of the days closed since (BalanceDay) and the open cases counted after
    the nightly scan (OpenCasesSnapshot). A failure of one is logged and leaves the other."""
    try:
        return _audit(practice_id, AuditRun.Kind.BOOKS, AUDIT_BOOKS_PREFIX, AUDIT_BOOKS_AT, None)
    finally:
        for step in (balance_days_fill, open_cases_snapshot_take):
            try:
                step(practice_id=practice_id)
            except Exception:  # noqa: BLE001 - logged; the audit's result stands
                log.exception("%s of practice %s failed", step.__name__, practice_id)


def audit_work(practice_id: int) -> dict:
    """The weekly audit of the adjudication work (reports/audits/work.py)."""
    return _audit(practice_id, AuditRun.Kind.WORK, AUDIT_WORK_PREFIX, AUDIT_WORK_AT, AUDIT_WORK_WEEKDAY)
