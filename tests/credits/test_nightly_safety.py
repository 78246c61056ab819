"""The nightly run is safe: killed half-way (a real process, SIGKILL) and run again it ends in
exactly the state of one clean run; staff working on the same patients meanwhile never make a
cent count twice."""

import os
import signal
import subprocess
import sys
import threading
import time
from decimal import Decimal as D
from pathlib import Path

import pytest
from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from credits.models import Credit, CreditApplication, NightlyRun
from credits.nightly import nightly_apply
from credits.selectors import credit_liability
from ledger.benchdata import build_books
from ledger.errors import SettleError
from ledger.models import Encounter, JournalLine, Membership
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]


def applied_by_patient(practice):
    out = {pid: [] for pid in practice.patients.values_list("pk", flat=True)}
    for pid, cid, eid, amount in CreditApplication.objects.filter(practice=practice).values_list(
            "patient_id", "credit_id", "encounter_id", "amount"):
        out[pid].append((cid, eid, amount))
    return {k: sorted(v) for k, v in out.items()}


def assert_books_consistent(practice):
    assert JournalLine.objects.filter(practice=practice).aggregate(s=Sum("amount"))["s"] == 0
    for c in Credit.objects.filter(practice=practice):
        assert c.amount == c.on_hand + c.refund_hold + c.applied_amount + c.refunded_amount + c.removed_amount
        apps = CreditApplication.objects.filter(credit=c, amount__gt=0).aggregate(s=Sum("amount"))["s"] or 0
        assert apps == c.applied_amount
    for e in Encounter.objects.filter(practice=practice):
        apps = CreditApplication.objects.filter(encounter=e).aggregate(s=Sum("amount"))["s"] or 0
        assert apps == e.applied_amount <= e.pr
    for pid in practice.patients.values_list("pk", flat=True):
        on_hand = Credit.objects.filter(patient_id=pid).aggregate(s=Sum("on_hand"))["s"] + \
            Credit.objects.filter(patient_id=pid).aggregate(s=Sum("refund_hold"))["s"]
        assert credit_liability(pid) == on_hand


def database_url_for_this_test() -> str:
    s = connection.settings_dict
    host = s["HOST"] or ""
    query = f"?host={host}" if host.startswith("/") else ""
    netloc = f"{s['USER']}@{'' if host.startswith('/') else host}{':' + str(s['PORT']) if s['PORT'] else ''}"
    return f"postgres://{netloc}/{s['NAME']}{query}"


def test_killed_run_then_rerun_equals_one_clean_run():
    from django.db import transaction

    practice, _ = build_books(patients=600, encounters_per_patient=2, credits_per_patient=3)
    with transaction.atomic():  # the reference: one clean run, rolled back
        nightly_apply(practice_id=practice.pk)
        expected = applied_by_patient(practice)
        transaction.set_rollback(True)
    assert sum(len(v) for v in expected.values()) > 1000
    assert not CreditApplication.objects.filter(practice=practice).exists()

    env = dict(os.environ, DATABASE_URL=database_url_for_this_test(), DJANGO_SETTINGS_MODULE="config.settings_test")
    proc = subprocess.Popen([sys.executable, "manage.py", "run_nightly", "--practice", str(practice.pk),
                             "--batch-size", "5"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while CreditApplication.objects.filter(practice=practice).count() == 0:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = CreditApplication.objects.filter(practice=practice).count()
    assert 0 < partial < sum(len(v) for v in expected.values())  # really killed half-way
    assert NightlyRun.objects.get(practice=practice).status == "running"

    result = nightly_apply(practice_id=practice.pk)
    assert result.status == "succeeded"
    assert NightlyRun.objects.get(practice=practice, status="failed").error.startswith("interrupted")
    assert applied_by_patient(practice) == expected
    assert_books_consistent(practice)
    assert nightly_apply(practice_id=practice.pk).application_count == 0


def test_staff_working_during_the_run_never_use_a_cent_twice():
    from credits import services as credit_services

    practice, _ = build_books(patients=120, encounters_per_patient=2, credits_per_patient=3)
    clerk = MembershipFactory(practice=practice, user=UserFactory(username="clerk-race"),
                              role=Membership.Role.BILLING).user
    patients = list(practice.patients.order_by("pk").values_list("pk", flat=True))
    errors, done, runs = [], threading.Event(), []
    at_work = [threading.Event(), threading.Event()]  # set by each staff thread as it starts
    succeeded = []  # (started, finished, what) of every staff operation that went through

    def wait_for_staff(user) -> int:  # the run's first step, under its lock: it starts once staff are at work
        for event in at_work:
            event.wait(timeout=60)
        return 0

    def nightly():
        try:
            runs.append(nightly_apply(practice_id=practice.pk, batch_size=7, before_apply=wait_for_staff))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            done.set()
            connection.close()

    def staff(offset):
        try:
            at_work[offset].set()
            i = offset
            while not done.is_set():
                pid = patients[i % len(patients)]
                i += 2
                started = timezone.now()
                try:
                    if i % 3:
                        encs = [e.pk for e in Encounter.objects.filter(patient_id=pid).order_by("pk")
                                if e.balance > 0]
                        pick = credit_services.credits_preselect(patient_id=pid, encounter_ids=encs[:1])
                        if pick:
                            credit_services.payment_checkout(patient_id=pid, encounter_ids=encs[:1],
                                                             credit_amounts=pick, channel="cash", actor=clerk)
                            succeeded.append((started, timezone.now(), "checkout"))
                    else:
                        c = Credit.objects.filter(patient_id=pid, state="available", on_hand__gt=0) \
                            .order_by("pk").first()
                        if c:
                            credit_services.refund_request(credit_id=c.pk, amount=c.on_hand, method="check",
                                                           actor=clerk, reason="Patient asked")
                            succeeded.append((started, timezone.now(), "refund"))
                except SettleError:
                    pass  # refused cleanly (the run got there first): nothing written
        except Exception as exc:  # pragma: no cover
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=nightly)] + [threading.Thread(target=staff, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    # the race really happened: staff work went through while the run was applying, strictly between
    # its first and its last batch (each batch stamps its applications with the moment it began)
    (result,) = runs
    batches = sorted(set(CreditApplication.objects.filter(nightly_run=result.run).values_list("created_at",
                                                                                               flat=True)))
    assert len(batches) > 2, batches
    inside = [what for started, finished, what in succeeded if batches[0] < started and finished < batches[-1]]
    assert inside, f"no staff operation went through during the run ({len(succeeded)} before or after it)"
    assert_books_consistent(practice)
    # after the dust settles a clean run finds only what staff left open, and applies it once
    nightly_apply(practice_id=practice.pk)
    assert nightly_apply(practice_id=practice.pk).application_count == 0
    assert_books_consistent(practice)
    assert CreditApplication.objects.filter(practice=practice, amount__gt=0).aggregate(s=Sum("amount"))["s"] > D(0)
