"""The one registry of scheduled jobs. `manage.py sync_schedules` (run by bin/run and on every
deploy) upserts django-q2 Schedule rows from it by name; running it twice changes nothing.

* PERIODIC: fixed jobs, name -> (function path, cron in settings.TIME_ZONE). Later issues add
  the audits and the reconciliation here.
* Per practice: the nightly run at the practice's own local time (Practice.nightly_run_at in
  Practice.time_zone). django-q2 evaluates cron in the server's zone, so these are DAILY
  schedules whose next_run is computed in the practice's zone; the job re-sets it after every
  run (remittances/jobs.py `nightly_run`), which keeps it exact across daylight-saving changes.
  The job is `adjudication.jobs.nightly_run`: the remittances nightly run (pending 835 files,
  then the application), then the credit-balance scan (adjudication/scan.py).
"""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from django.utils.timezone import now as django_now
from django_q.models import Schedule

from ledger.models import Practice

PERIODIC: dict[str, tuple[str, str]] = {
    # name: (function, cron)
    "api-idempotency-purge": ("api.jobs.purge_idempotency_keys", "30 3 * * *"),
}

NIGHTLY_PREFIX = "nightly-practice-"
NIGHTLY_FUNC = "adjudication.jobs.nightly_run"


def next_local_run(practice, *, now: datetime) -> datetime:
    """The next moment (aware) when it is `practice.nightly_run_at` in the practice's zone."""
    tz = ZoneInfo(practice.time_zone)
    local_now = now.astimezone(tz)
    candidate = datetime.combine(local_now.date(), practice.nightly_run_at, tzinfo=tz)
    if candidate <= local_now:
        candidate = datetime.combine(local_now.date() + timedelta(days=1), practice.nightly_run_at, tzinfo=tz)
    # In UTC: a local time inside a daylight-saving gap (02:30 on the spring-forward night) is never
    # equal to any other datetime (PEP 495); converted, it is the instant zoneinfo maps it to.
    return candidate.astimezone(UTC)


def desired_schedules(*, now: datetime) -> dict[str, dict]:

    out = {}
    for name, (func, cron) in PERIODIC.items():
        out[name] = {"func": func, "schedule_type": Schedule.CRON, "cron": cron, "args": None, "repeats": -1}
    for practice in Practice.objects.order_by("pk"):
        out[f"{NIGHTLY_PREFIX}{practice.pk}"] = nightly_schedule(practice, now=now)
    return out


def nightly_schedule(practice, *, now: datetime) -> dict:
    return {"func": NIGHTLY_FUNC, "schedule_type": Schedule.DAILY, "cron": None, "args": repr(practice.pk),
            "repeats": -1, "next_run": next_local_run(practice, now=now)}


def _upsert(name: str, fields: dict) -> str:
    current = Schedule.objects.filter(name=name).first()
    if current is None:
        Schedule.objects.create(name=name, **fields)
        return "created"
    diff = {k: v for k, v in fields.items() if getattr(current, k) != v}
    if not diff:
        return "unchanged"
    for k, v in diff.items():
        setattr(current, k, v)
    current.save()
    return "updated"


def sync_practice(practice_id: int, *, now: datetime | None = None) -> str:
    """Bring one practice's nightly schedule in line with its settings: what
    ledger.services.practice_update runs after the commit when the practice's nightly time or time
    zone changed (the admin and the API hand it in). Returns "created", "updated", "unchanged" or
    "deleted" (the practice no longer exists)."""
    name = f"{NIGHTLY_PREFIX}{practice_id}"
    practice = Practice.objects.filter(pk=practice_id).first()
    if practice is None:
        return "deleted" if Schedule.objects.filter(name=name).delete()[0] else "unchanged"
    return _upsert(name, nightly_schedule(practice, now=now or django_now()))


def sync(*, now: datetime) -> dict[str, list[str]]:
    """Create or update every schedule of the registry by name; drop nightly schedules of
    practices that no longer exist. Returns what changed."""
    changes = {"created": [], "updated": [], "deleted": [], "unchanged": []}
    wanted = desired_schedules(now=now)
    for name, fields in wanted.items():
        changes[_upsert(name, fields)].append(name)
    stale = Schedule.objects.filter(name__startswith=NIGHTLY_PREFIX).exclude(name__in=list(wanted))
    changes["deleted"] = list(stale.values_list("name", flat=True))
    stale.delete()
    return changes
