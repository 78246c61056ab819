"""config/schedules.py: one registry, synced idempotently; nightly at each practice's local time."""

from datetime import datetime, time, timezone
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django_q.models import Schedule

from config import schedules
from tests.factories import PracticeFactory

pytestmark = pytest.mark.django_db


def test_sync_creates_one_nightly_per_practice_and_the_periodic_jobs_once():
    a = PracticeFactory(time_zone="America/New_York", nightly_run_at=time(2, 0))
    b = PracticeFactory(time_zone="America/Los_Angeles", nightly_run_at=time(23, 30))
    now = datetime(2026, 3, 7, 12, 0, tzinfo=timezone.utc)
    changes = schedules.sync(now=now)
    assert set(changes["created"]) == {f"{prefix}{p.pk}" for p in (a, b) for prefix in schedules.PRACTICE_PREFIXES} \
        | {"retention-purge"}
    again = schedules.sync(now=now)
    assert again["created"] == again["updated"] == again["deleted"] == []
    s = Schedule.objects.get(name=f"nightly-practice-{a.pk}")
    assert s.next_run == datetime(2026, 3, 8, 7, 0, tzinfo=timezone.utc)  # 02:00 on the spring-forward night
    assert Schedule.objects.get(name=f"nightly-practice-{b.pk}").next_run == \
        datetime(2026, 3, 8, 7, 30, tzinfo=timezone.utc)  # 23:30 PST on the 7th
    # a schedule left behind by a practice that no longer exists is dropped
    Schedule.objects.create(name="nightly-practice-999999", func="credits.jobs.nightly_run", args="999999")
    Schedule.objects.create(name="audit-books-practice-999999", func="reports.jobs.audit_books", args="999999")
    # and a retired job (the idempotency purge is part of the retention purge now)
    Schedule.objects.create(name="api-idempotency-purge", func="api.jobs.purge_idempotency_keys")
    assert sorted(schedules.sync(now=now)["deleted"]) == ["api-idempotency-purge", "audit-books-practice-999999",
                                                          "nightly-practice-999999"]


def test_audits_run_daily_and_weekly_at_the_practices_local_time():
    a = PracticeFactory(time_zone="America/New_York")
    now = datetime(2026, 3, 7, 12, 0, tzinfo=timezone.utc)  # Saturday 07:00 EST; DST starts Sunday the 8th
    schedules.sync(now=now)
    books = Schedule.objects.get(name=f"audit-books-practice-{a.pk}")
    assert (books.func, books.schedule_type, books.args) == ("reports.jobs.audit_books", Schedule.DAILY, repr(a.pk))
    assert books.next_run == datetime(2026, 3, 8, 10, 0, tzinfo=timezone.utc)  # 06:00 EDT on Sunday
    work = Schedule.objects.get(name=f"audit-work-practice-{a.pk}")
    assert (work.func, work.schedule_type) == ("reports.jobs.audit_work", Schedule.WEEKLY)
    assert work.next_run == datetime(2026, 3, 9, 10, 30, tzinfo=timezone.utc)  # Monday 06:30 EDT


def test_next_local_run_follows_daylight_saving():
    p = PracticeFactory(time_zone="America/New_York", nightly_run_at=time(2, 30))
    before = schedules.next_local_run(p, now=datetime(2026, 11, 1, 4, 0, tzinfo=timezone.utc))  # 00:00 EDT
    assert before.astimezone(ZoneInfo("America/New_York")).time() == time(2, 30)
    after = schedules.next_local_run(p, now=datetime(2026, 11, 2, 12, 0, tzinfo=timezone.utc))  # EST now
    assert after == datetime(2026, 11, 3, 7, 30, tzinfo=timezone.utc)


def test_run_job_runs_a_registered_job_and_refuses_unknown_names(capsys):
    call_command("run_job", "retention-purge")
    assert '"idempotency_keys": 0' in capsys.readouterr().out
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="no job named"):
        call_command("run_job", "nope")


def test_the_nightly_schedule_runs_the_application_then_the_adjudication_scan(capsys):
    practice = PracticeFactory()
    assert schedules.NIGHTLY_FUNC == "adjudication.jobs.nightly_run"
    schedules.sync(now=datetime(2026, 3, 7, 12, 0, tzinfo=timezone.utc))
    assert Schedule.objects.get(name=f"nightly-practice-{practice.pk}").func == "adjudication.jobs.nightly_run"
    call_command("run_job", f"nightly-practice-{practice.pk}")
    out = capsys.readouterr().out
    assert '"nightly": {' in out and '"scan": {' in out and '"opened": 0' in out
