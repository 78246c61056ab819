"""Races on the settings services, with real threads (each its own connection): two managers adding
the same approval band at once make one band and one Duplicate (the practice's lock, then the
check); two first saves of a practice's settings make one row; two managers changing one clock
rule at once both land, one after the other, and the case ends with the last one's due date."""

from datetime import date, timedelta

import pytest

from adjudication.models import AdjudicationSettings, Case, ClockRule, RefundApprovalBand
from adjudication.services import settings as svc
from credits.models import Credit
from ledger.errors import Duplicate
from ledger.models import Membership
from tests.credits.test_races import outcomes, race
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def boss2(world):
    return MembershipFactory(practice=world.practice, user=UserFactory(username="boss2"),
                             role=Membership.Role.MANAGER).user


@pytest.mark.parametrize("up_to", ["50.00", None])
def test_two_managers_adding_the_same_band_at_once_make_one(world, boss2, up_to):
    def add(manager):
        return lambda: svc.refund_band_create(practice_id=world.practice.pk, actor=manager, reason="Bands",
                                              up_to=up_to, role="billing")

    results = race(add(world.manager), add(boss2))
    assert outcomes(results) == ["ok", "refused"]
    (refused,) = [r[1] for r in results if r[0] == "refused"]
    assert isinstance(refused, Duplicate) and refused.field == "up_to"
    assert RefundApprovalBand.objects.filter(practice=world.practice).count() == 1


def test_two_first_saves_of_the_settings_make_one_row_with_both_changes(world, boss2):
    results = race(lambda: svc.adjudication_settings_update(practice_id=world.practice.pk, actor=world.manager,
                                                            reason="a", changes={"warning_window_days": 12}),
                   lambda: svc.adjudication_settings_update(practice_id=world.practice.pk, actor=boss2,
                                                            reason="b", changes={"min_credit_age_days": 4}))
    assert outcomes(results) == ["ok", "ok"]
    row = AdjudicationSettings.objects.get(practice=world.practice)
    assert (row.warning_window_days, row.min_credit_age_days) == (12, 4)


def test_two_managers_changing_one_rule_at_once_both_land_and_the_case_follows_the_last(world, boss2):
    pat = world.patient()
    world.pay(pat, "80.00")
    from_credit = Credit.objects.get(patient=pat)
    case = Case.objects.create(practice=world.practice, kind=Case.Kind.PATIENT_CREDIT,
                               cause=Case.Cause.PATIENT_OVERPAYMENT, credit=from_credit, patient=pat,
                               amount=from_credit.on_hand, determined_on=date(2026, 6, 1))
    rule = svc.clock_rule_create(actor=world.manager, reason="Ours", practice_id=world.practice.pk,
                                 kind="patient_refund", us_state="TX", name="Ours", days=20)
    results = race(lambda: svc.clock_rule_update(rule_id=rule.pk, actor=world.manager, reason="a",
                                                 changes={"days": 21}),
                   lambda: svc.clock_rule_update(rule_id=rule.pk, actor=boss2, reason="b", changes={"days": 22}))
    assert outcomes(results) == ["ok", "ok"]
    rule.refresh_from_db()
    case.refresh_from_db()
    assert rule.days in (21, 22)
    assert (case.clock_rule_id, case.due_on) == (rule.pk, date(2026, 6, 1) + timedelta(days=rule.days))
    assert ClockRule.history.filter(id=rule.pk).count() == 3
