"""`manage.py run_audit`: one run recorded as the schedule's (no acting user), its checks printed,
the last line one JSON object; a fault planted past the services is counted."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from reports.models import AuditRun

pytestmark = pytest.mark.django_db


def run(*args):
    out = StringIO()
    call_command("run_audit", *args, stdout=out)
    return out.getvalue().splitlines()


def test_a_clean_books_audit_is_recorded_as_the_schedules_and_ends_on_its_json(world):
    pat = world.patient()
    world.pay(pat, "30.00", channel="portal")
    lines = run("--practice", str(world.practice.pk), "--kind", "books")
    last = json.loads(lines[-1])
    recorded = AuditRun.objects.get()
    assert set(last) == {"run", "practice", "kind", "status", "findings", "seconds"}
    assert (last["run"], last["practice"], last["kind"], last["status"], last["findings"]) == (
        recorded.pk, world.practice.pk, "books", "clean", 0)
    assert (recorded.triggered_by, recorded.reason, recorded.status) == (None, "Scheduled audit", "clean")
    assert any(line.startswith("Journal entry out of balance: 0 found, ") for line in lines)
    assert len([ln for ln in lines if " found, " in ln]) == 5  # the five daily checks


@pytest.mark.planted_fault
def test_a_planted_fault_is_counted_and_the_reason_kept(world):
    pat = world.patient()
    world.pay(pat, "30.00", channel="portal")
    with connection.cursor() as cur:  # the totals table 5.00 off: past the services
        cur.execute("UPDATE credits_patientresponsibility SET due_now = due_now + 5 WHERE patient_id = %s", [pat.pk])
    lines = run("--practice", str(world.practice.pk), "--kind", "books", "--reason", "Checking after the import")
    last = json.loads(lines[-1])
    recorded = AuditRun.objects.get(pk=last["run"])
    assert (last["status"], last["findings"], recorded.finding_count) == ("findings", 1, 1)
    assert recorded.reason == "Checking after the import"
    assert "A patient's totals differ from a recount: 1 found, " in "\n".join(lines)
    assert lines[-2].endswith("findings recorded, 1 finding")


def test_the_work_audit_and_bad_arguments(world):
    last = json.loads(run("--practice", str(world.practice.pk), "--kind", "work")[-1])
    assert (last["kind"], AuditRun.objects.get(pk=last["run"]).kind) == ("work", "work")
    with pytest.raises(CommandError, match="practice 999999 not found"):
        run("--practice", "999999", "--kind", "books")
    with pytest.raises(CommandError):
        run("--practice", str(world.practice.pk), "--kind", "everything")
    assert AuditRun.objects.count() == 1
