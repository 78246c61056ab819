"""The set-based nightly run (credits/nightly.py) against the rules and the per-patient service."""

import random
from datetime import date, timedelta
from decimal import Decimal as D

import pytest

from credits import services as credit_services
from credits.models import Credit, CreditApplication, NightlyRun
from credits.nightly import nightly_apply
from credits.selectors import credit_liability
from credits.services import application as credit_application
from ledger.models import Encounter, JournalLine

pytestmark = pytest.mark.django_db


def run(world, **kw):
    return nightly_apply(practice_id=world.practice.pk, **kw)


def test_example_a_through_the_nightly_run(world):
    pat = world.patient()
    enc, claim = world.visit(pat, date(2026, 3, 3))
    world.pay(pat, "50.00", encounter=enc)
    world.remit(claim, pr="20.00", paid="150.00")

    preview = run(world, dry_run=True)
    assert (preview.application_count, preview.applied_total, preview.run) == (1, D("20.00"), None)
    assert not CreditApplication.objects.filter(credit__isnull=False).exists()  # a preview writes nothing

    result = run(world)
    assert result.status == "succeeded" and result.applied_total == D("20.00")
    assert result.released_credits == 1
    c = Credit.objects.get(patient=pat)
    assert (c.state, c.on_hand, c.applied_amount, c.locked_encounter_id) == ("available", D("30.00"), D("20.00"), None)
    enc.refresh_from_db()
    assert enc.balance == 0
    assert credit_liability(pat.pk) == D("30.00")
    last = c.history.first()
    assert last.history_change_reason.startswith("DoS balanced") and last.history_user.username == "settle-system"
    app = CreditApplication.objects.get(credit=c)
    assert app.nightly_run_id == result.run.pk
    assert NightlyRun.objects.get(pk=result.run.pk).application_count == 1

    again = run(world)
    assert (again.application_count, again.released_credits) == (0, 0)


def test_order_locked_then_available_and_never_other_dos(world):
    pat = world.patient()
    may5, _ = world.visit(pat, date(2026, 5, 5))
    world.pay(pat, "40.00", encounter=may5)
    credit_services.manual_credit_add(patient_id=pat.pk, amount="10.00", reason="old system", actor=world.clerk)
    jun8, c8 = world.visit(pat, date(2026, 6, 8))
    world.pay(pat, "25.00", encounter=jun8)
    credit_services.manual_credit_add(patient_id=pat.pk, amount="100.00", reason="old system", actor=world.clerk)
    world.remit(c8, pr="60.00", paid="100.00")

    result = run(world)
    lines = sorted((a.credit.source, a.amount) for a in CreditApplication.objects.filter(encounter=jun8))
    assert lines == [("held_payment", D("25.00")), ("manual", D("10.00")), ("manual", D("25.00"))]
    assert result.applied_total == D("60.00")
    assert Credit.objects.get(locked_encounter=may5).on_hand == D("40.00")


def test_auto_apply_off_and_excluded_patients_get_nothing(world):
    a, b = world.patient(), world.patient(exclude_from_auto_apply=True)
    for pat in (a, b):
        enc, claim = world.visit(pat, date(2026, 8, 1))
        credit_services.manual_credit_add(patient_id=pat.pk, amount="40.00", reason="prepaid", actor=world.clerk)
        world.remit(claim, pr="25.00", paid="100.00")
    assert run(world).applied_total == D("25.00")  # only a
    world.practice.auto_apply = False
    world.practice.save()
    c = world.patient()
    enc, claim = world.visit(c, date(2026, 8, 2))
    credit_services.manual_credit_add(patient_id=c.pk, amount="40.00", reason="prepaid", actor=world.clerk)
    world.remit(claim, pr="25.00", paid="100.00")
    assert run(world).applied_total == 0


@pytest.mark.django_db(transaction=True)
def test_second_run_while_one_runs_is_skipped(world):
    from credits import nightly

    assert nightly._try_lock(world.practice.pk)  # this session now "runs" the practice
    try:
        import threading

        from django.db import connection
        out = {}

        def other():
            try:
                out["r"] = nightly_apply(practice_id=world.practice.pk, dry_run=True)
            finally:
                connection.close()

        t = threading.Thread(target=other)
        t.start()
        t.join()
        assert out["r"].status == "skipped"
    finally:
        nightly._unlock(world.practice.pk)


def test_set_based_plan_equals_the_rule_for_random_books(world):
    """The set-based run and the per-patient service (credits.selectors.plan in Python) apply exactly
    the same amounts from the same credits to the same DoS on random books."""
    rng = random.Random(7)
    patients = [world.patient() for _ in range(12)]
    expected = {}
    for pat in patients:
        for i in range(rng.randint(1, 4)):
            enc, claim = world.visit(pat, date(2026, 1, 1) + timedelta(days=rng.randint(0, 200)))
            if rng.random() < 0.5:
                world.pay(pat, D(rng.randint(1, 80)), encounter=enc)
            if rng.random() < 0.8:
                world.remit(claim, pr=D(rng.randint(0, 150)), paid="10.00")
        for _ in range(rng.randint(0, 3)):
            credit_services.manual_credit_add(patient_id=pat.pk, amount=D(rng.randint(1, 90)), reason="n",
                                              actor=world.clerk)
    from django.db import transaction

    for pat in patients:  # the reference: the per-patient service, one transaction per patient, rolled back
        with transaction.atomic():
            lines = credit_application.credits_apply_locked(patient=pat, actor=world.clerk, reason="reference").lines
            expected[pat.pk] = sorted((ln.credit_id, ln.encounter_id, ln.amount) for ln in lines)
            transaction.set_rollback(True)
    assert sum(len(v) for v in expected.values()) > 10
    result = run(world, batch_size=5)
    for pat in patients:
        got = sorted(CreditApplication.objects.filter(patient=pat, nightly_run=result.run)
                     .values_list("credit_id", "encounter_id", "amount"))
        assert got == expected[pat.pk]
    total = sum((JournalLine.objects.values_list("amount", flat=True)), D(0))
    assert total == 0
    for enc in Encounter.objects.all():
        assert 0 <= enc.applied_amount <= enc.pr
