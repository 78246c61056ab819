"""The retention job (docs/reports.md, "Retention"): it purges temporary data only — API
idempotency keys past their 24 hours, expired sessions, export files older than
SETTLE_EXPORT_KEEP_DAYS (their job rows stay, marked expired). Financial rows, history, cases,
audit runs and findings are never deleted (database triggers refuse it)."""

from django.conf import settings
from django.contrib.sessions.models import Session
from django.utils import timezone

from api.jobs import purge_idempotency_keys
from reports.exports.jobs import purge_export_files


def purge_temporary() -> dict:
    sessions, _ = Session.objects.filter(expire_date__lt=timezone.now()).delete()
    return {"idempotency_keys": purge_idempotency_keys()["purged"], "sessions": sessions,
            "export_files": purge_export_files(older_than_days=settings.SETTLE_EXPORT_KEEP_DAYS)}
