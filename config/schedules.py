"""The one registry of scheduled jobs. `manage.py sync_schedules` (run by bin/run and on every
deploy) upserts django-q2 Schedule rows from it by name; running it twice changes nothing.

* PERIODIC: fixed jobs, name -> (function path, cron in settings.TIME_ZONE): the retention purge of
  temporary data (config/retention.py).
* Per practice: the nightly run at the practice's own local time (Practice.nightly_run_at in
  Practice.time_zone). django-q2 evaluates cron in the server's zone, so these are DAILY
  schedules whose next_run is computed in the practice's zone; the job re-sets it after every
  run (remittances/jobs.py `nightly_run`), which keeps it exact across daylight-saving changes.
  The job is `adjudication.jobs.nightly_run`: the remittances nightly run (pending 835 files,
  then the application), then the credit-balance scan (adjudication/scan.py).
"""

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.db.models import Q
from django.utils.timezone import now as django_now
from django_q.models import Schedule

from ledger.models import Practice

PERIODIC: dict[str, tuple[str, str]] = {
    # name: (function, cron)
    "retention-purge": ("config.retention.purge_temporary", "30 3 * * *"),
}
RETIRED = ("api-idempotency-purge",)  # replaced by retention-purge: removed by sync()

NIGHTLY_PREFIX = "nightly-practice-"
NIGHTLY_FUNC = "adjudication.jobs.nightly_run"

AUDIT_BOOKS_PREFIX = "audit-books-practice-"
AUDIT_BOOKS_FUNC = "reports.jobs.audit_books"
AUDIT_BOOKS_AT = time(6, 0)  # after the nightly run, before the office opens
AUDIT_WORK_PREFIX = "audit-work-practice-"
AUDIT_WORK_FUNC = "reports.jobs.audit_work"
AUDIT_WORK_AT = time(6, 30)
AUDIT_WORK_WEEKDAY = 0  # Monday
PRACTICE_PREFIXES = (NIGHTLY_PREFIX, AUDIT_BOOKS_PREFIX, AUDIT_WORK_PREFIX)


def next_local_run(practice, *, now: datetime, at: time | None = None, weekday: int | None = None) -> datetime:
    """The next moment (aware) when it is `at` (default: `practice.nightly_run_at`) in the practice's
    zone, on `weekday` (0 = Monday) if given."""
    at = at or practice.nightly_run_at
    tz = ZoneInfo(practice.time_zone)
    local_now = now.astimezone(tz)
    day = local_now.date()
    candidate = datetime.combine(day, at, tzinfo=tz)
    while candidate <= local_now or (weekday is not None and day.weekday() != weekday):
        day += timedelta(days=1)
        candidate = datetime.combine(day, at, tzinfo=tz)
    # In UTC: a local time inside a daylight-saving gap (02:30 on the spring-forward night) is never
    # equal to any other datetime (PEP 495); converted, it is the instant zoneinfo maps it to.
    return candidate.astimezone(UTC)


def desired_schedules(*, now: datetime) -> dict[str, dict]:

    out = {}
    for name, (func, cron) in PERIODIC.items():
        out[name] = {"func": func, "schedule_type": Schedule.CRON, "cron": cron, "args": None, "repeats": -1}
    for practice in Practice.objects.order_by("pk"):
        out.update(practice_schedules(practice, now=now))
    return out


def practice_schedules(practice, *, now: datetime) -> dict[str, dict]:
    """The schedules of one practice: its nightly run and its two audits."""
    def local(func, at, weekday, schedule_type):
        return {"func": func, "schedule_type": schedule_type, "cron": None, "args": repr(practice.pk), "repeats": -1,
                "next_run": next_local_run(practice, now=now, at=at, weekday=weekday)}
    return {
        f"{NIGHTLY_PREFIX}{practice.pk}": nightly_schedule(practice, now=now),
        f"{AUDIT_BOOKS_PREFIX}{practice.pk}": local(AUDIT_BOOKS_FUNC, AUDIT_BOOKS_AT, None, Schedule.DAILY),
        f"{AUDIT_WORK_PREFIX}{practice.pk}": local(AUDIT_WORK_FUNC, AUDIT_WORK_AT, AUDIT_WORK_WEEKDAY, Schedule.WEEKLY),
    }


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
    """Bring one practice's schedules (nightly run, audits) in line with its settings: what
    ledger.services.practice_update runs after the commit when the practice's nightly time or time
    zone changed (the admin and the API hand it in). Returns "created", "updated", "unchanged" or
    "deleted" (the practice no longer exists), for the nightly schedule."""
    names = [f"{prefix}{practice_id}" for prefix in PRACTICE_PREFIXES]
    practice = Practice.objects.filter(pk=practice_id).first()
    if practice is None:
        return "deleted" if Schedule.objects.filter(name__in=names).delete()[0] else "unchanged"
    results = {name: _upsert(name, fields) for name, fields in practice_schedules(practice, now=now or django_now())
               .items()}  # the audits follow the practice's time zone too
    return results[names[0]]


def sync(*, now: datetime) -> dict[str, list[str]]:
    """Create or update every schedule of the registry by name; drop the schedules of practices
    that no longer exist and retired jobs. Returns what changed."""
    changes = {"created": [], "updated": [], "deleted": [], "unchanged": []}
    wanted = desired_schedules(now=now)
    for name, fields in wanted.items():
        changes[_upsert(name, fields)].append(name)
    per_practice = Q()
    for prefix in PRACTICE_PREFIXES:
        per_practice |= Q(name__startswith=prefix)
    stale = Schedule.objects.filter(per_practice | Q(name__in=RETIRED)).exclude(name__in=list(wanted))
    changes["deleted"] = list(stale.values_list("name", flat=True))
    stale.delete()
    return changes
