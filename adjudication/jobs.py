"""Jobs django-q2 runs (registered in config/schedules.py). Plain, idempotent functions: running
one twice, or after a crash, is harmless (the scan opens nothing twice).

* `nightly_run(practice_id)`: the practice's nightly schedule (NIGHTLY_FUNC): the remittances
  nightly run (pending 835 files, then the nightly application; it also re-sets the schedule's
  next run), then the scan. The application is committed before the scan starts: a scan that
  fails is logged and reported, it never undoes the application.
* `scan(practice_id)`: the scan alone ("scan now" from the back-office or the API may queue it)."""

import logging

from django.contrib.auth import get_user_model

from adjudication.scan import scan_practice
from ledger.access import system_user
from remittances import jobs as remittance_jobs

log = logging.getLogger(__name__)


def nightly_run(practice_id: int) -> dict:
    """The nightly run of one practice, then its scan (adjudication/scan.py)."""
    out = {"nightly": remittance_jobs.nightly_run(practice_id)}
    try:
        out["scan"] = scan_practice(practice_id=practice_id, reason="Nightly scan").as_dict()
    except Exception as exc:  # the application stays committed; the next night (or "scan now") scans again
        log.exception("scan of practice %s failed after the nightly run", practice_id)
        out["scan"] = {"error": f"{type(exc).__name__}: {exc}"}
    else:
        log.info("scan of practice %s: %s", practice_id, out["scan"])
    return out


def scan(practice_id: int, actor_id: int | None = None, reason: str = "Scan now") -> dict:
    """The scan of one practice, as the user who asked for it (the system user when none)."""
    actor = get_user_model().objects.get(pk=actor_id) if actor_id is not None else system_user()
    return scan_practice(practice_id=practice_id, actor=actor, reason=reason).as_dict()
