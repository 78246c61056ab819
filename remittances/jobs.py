"""Jobs django-q2 runs (registered in config/schedules.py). Plain, idempotent functions: running
one twice, or after a crash, is harmless."""

import logging

from django.utils import timezone
from django_q.models import Schedule

from config.schedules import NIGHTLY_PREFIX, next_local_run
from ledger.models import Practice
from remittances.nightly import nightly_run as run

log = logging.getLogger(__name__)


def nightly_run(practice_id: int) -> dict:
    """The nightly run of one practice (remittances/nightly.py), then the practice's schedule is set
    to its next local run time (exact across daylight-saving changes)."""
    try:
        result = run(practice_id=practice_id)
        log.info("nightly run for practice %s: %s", practice_id, result.as_dict())
        return result.as_dict()
    finally:
        practice = Practice.objects.filter(pk=practice_id).first()
        if practice is not None:
            Schedule.objects.filter(name=f"{NIGHTLY_PREFIX}{practice_id}").update(
                next_run=next_local_run(practice, now=timezone.now()))
