"""The scan racing itself, the nightly run and staff, with real threads (each its own connection):
no credit balance ever gets two cases, no cent moves twice, every lock is taken in the order of
ledger/locks.py (the autouse recorder), and once things settle every case is open exactly when
its money is still there."""

from datetime import date
from decimal import Decimal as D

import pytest
from django.db.models import Count, Sum

from adjudication.models import Case, CaseEvent
from adjudication.scan import scan_practice
from credits import services as credit_services
from credits.models import Credit, CreditApplication
from remittances.nightly import nightly_run
from tests.credits.test_invariants import check_invariants
from tests.credits.test_races import race

pytestmark = pytest.mark.django_db(transaction=True)

ROUNDS = 3


def credit(world, patient, amount):
    c = credit_services.manual_credit_add(patient_id=patient.pk, amount=amount, reason="Overpaid at the desk",
                                          actor=world.clerk)
    assert isinstance(c, Credit)
    return c


def assert_one_case_per_money(practice_id):
    for column in ("credit", "payer_credit"):
        twice = (Case.objects.filter(practice_id=practice_id, **{f"{column}__isnull": False}).values(column)
                 .annotate(n=Count("id")).filter(n__gt=1))
        assert not twice.exists(), f"two cases for one {column}: {list(twice)}"
    opened = CaseEvent.objects.filter(case__practice_id=practice_id, kind="opened").values("case").annotate(
        n=Count("id"))
    assert {r["n"] for r in opened} <= {1}
    assert opened.count() == Case.objects.filter(practice_id=practice_id).count()
    created = Case.history.filter(practice_id=practice_id, history_type="+").values("id").annotate(n=Count("history_id"))
    assert created.count() == Case.objects.filter(practice_id=practice_id).count()
    assert {r["n"] for r in created} <= {1}


def assert_cases_match_the_money(practice_id):
    """Every case is open exactly when its money is still there; every credit balance has a case."""
    for case in Case.objects.filter(practice_id=practice_id, kind="patient_credit").select_related("credit"):
        left = case.credit.on_hand + case.credit.refund_hold
        assert (case.state != "resolved") == (left > 0), (case.pk, case.state, left)
        if case.state == "resolved":
            assert case.automatic and case.outcome_note
    without = Credit.objects.filter(practice_id=practice_id, state="available", on_hand__gt=0, cases__isnull=True)
    assert not without.exists(), f"credit balances without a case: {list(without.values_list('pk', flat=True))}"


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_two_scans_at_once_open_each_case_once(world, round_):
    patients = [world.patient() for _ in range(12)]
    for i, pat in enumerate(patients):
        credit(world, pat, f"{10 + i}.00")
    for n in range(3):
        credit_services.payer_credit_open(payer_id=world.payer.pk, amount=f"{20 + n}.00",
                                          reason_code="duplicate_payment", actor=world.clerk, reason="Paid twice")
    enc, claim = world.visit(patients[0], date(2026, 2, 10), charge="200.00")
    world.remit(claim, pr="0.00", paid="230.00", adjust="-30.00")

    def scan():
        return scan_practice(practice_id=world.practice.pk, batch_size=4)

    results = race(scan, scan)
    assert [r[0] for r in results] == ["ok", "ok"]
    assert sum(r[1].opened for r in results) == 12 + 3 + 1
    assert Case.objects.filter(practice=world.practice).count() == 16
    assert Case.objects.get(kind="encounter_overpaid").encounter_id == enc.pk
    assert_one_case_per_money(world.practice.pk)
    assert scan().opened == 0


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_the_scan_racing_the_nightly_run_and_staff_moves_no_cent_twice(world, round_):
    """Cases already open for some credits, new credits without one; the nightly run applies
    credits to open balances while staff remove one credit and refund another and the scan opens
    and closes cases, batch by batch, all at once."""
    old = [world.patient() for _ in range(8)]
    old_credits = [credit(world, pat, "50.00") for pat in old]
    scan_practice(practice_id=world.practice.pk)
    new = [world.patient() for _ in range(8)]
    new_credits = [credit(world, pat, "40.00") for pat in new]
    owed = D(0)
    for pat in old[:5]:  # balances that use the whole credit: their cases resolve as applied
        world.visit(pat, date(2026, 3, 2), charge="50.00", estimated_pr="50.00", claim=False)
        owed += D("50.00")
    for pat in new[:5]:  # balances that use part of it: their cases stay open
        world.visit(pat, date(2026, 3, 2), charge="30.00", estimated_pr="30.00", claim=False)
        owed += D("30.00")
    removed, refunded = old_credits[6], new_credits[7]

    def scan():
        return scan_practice(practice_id=world.practice.pk, batch_size=3)

    def nightly():
        return nightly_run(practice_id=world.practice.pk, batch_size=2)

    def staff():
        credit_services.credit_remove(credit_id=removed.pk, actor=world.clerk, reason="Refunded outside the system")
        return credit_services.refund_request(credit_id=refunded.pk, amount="40.00", actor=world.clerk,
                                              reason="Patient asked", method="check", reference="CHK-7")

    results = race(scan, nightly, staff)
    assert [r[0] for r in results] == ["ok", "ok", "ok"], results
    assert results[1][1].applied_total == owed  # every balance paid once
    assert CreditApplication.objects.filter(practice=world.practice).aggregate(s=Sum("amount"))["s"] == owed
    assert_one_case_per_money(world.practice.pk)
    check_invariants(world.practice.pk)

    settle = scan()  # whatever the race left for the next night
    assert_one_case_per_money(world.practice.pk)
    assert_cases_match_the_money(world.practice.pk)
    # each new credit opened once over the two scans (the refunded one only if the scan saw it before the refund)
    new_cases = Case.objects.filter(credit__in=new_credits).count()
    assert settle.opened + results[0][1].opened == new_cases and new_cases in (7, 8)
    assert {c.outcome for c in Case.objects.filter(credit__in=old_credits[:5])} == {"applied"}
    assert Case.objects.get(credit=removed).outcome == "money_gone"
    assert {c.outcome for c in Case.objects.filter(credit=refunded)} <= {"refund_patient"}
    assert Case.objects.filter(credit__in=new_credits[:5], state="identified").count() == 5
    assert settle.closed + results[0][1].closed == 5 + 1 + Case.objects.filter(credit=refunded).count()
    check_invariants(world.practice.pk)
