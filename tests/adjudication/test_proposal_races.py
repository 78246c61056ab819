"""Races on one proposal, with real threads (each with its own connection): two managers approving at
once (one wins, the other gets a clear error, one refund only), and an approval racing the patient's
credit being applied elsewhere (never both: no cent is used twice)."""

from datetime import date
from decimal import Decimal as D

import pytest
from django.db.models import Sum

from adjudication.models import Case, CaseEvent
from adjudication.services.proposals import case_approve, case_propose
from credits import services as credit_services
from credits.models import Credit, CreditApplication, Refund
from ledger.errors import RuleViolation
from ledger.models import Membership
from tests.credits.test_races import outcomes, race
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

ROUNDS = 3


def case_with_proposal(world, amount="400.00"):
    pat = world.patient()
    world.pay(pat, amount, channel="check")
    credit = Credit.objects.get(patient=pat)
    case = Case.objects.create(practice_id=credit.practice_id, kind=Case.Kind.PATIENT_CREDIT,
                               cause=Case.Cause.PATIENT_OVERPAYMENT, source=credit.source, credit=credit,
                               patient_id=pat.pk, amount=credit.on_hand, determined_on=date(2026, 3, 1))
    case_propose(case=case, actor=world.clerk, reason="Refund by check", kind="refund_patient", method="check")
    return pat, credit, case


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_two_managers_approving_one_proposal_at_once_one_wins(world, round_):
    other = MembershipFactory(practice=world.practice, user=UserFactory(username="boss2"),
                              role=Membership.Role.MANAGER).user
    _, credit, case = case_with_proposal(world)

    def approve(manager, number):
        return lambda: case_approve(case=case.pk, actor=manager, reason="Approve", reference=number)

    results = race(approve(world.manager, "CHK 1"), approve(other, "CHK 2"))
    assert outcomes(results) == ["ok", "refused"]
    (refused,) = [r[1] for r in results if r[0] == "refused"]
    assert isinstance(refused, RuleViolation) and "already carried out" in refused.message
    r = Refund.objects.get(credit=credit)  # one refund only
    credit.refresh_from_db()
    case.refresh_from_db()
    assert (r.state, r.amount) == ("issued", D("400.00"))
    assert (credit.refunded_amount, credit.on_hand, credit.refund_hold) == (D("400.00"), D("0.00"), D("0.00"))
    assert (case.state, case.outcome) == ("resolved", "refund_patient")
    assert case.events.filter(kind=CaseEvent.Kind.DECISION).count() == 1


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_an_approval_racing_the_credit_applied_elsewhere_never_uses_a_cent_twice(world, round_):
    pat, credit, case = case_with_proposal(world)
    world.visit(pat, date(2026, 3, 2), charge="100.00", estimated_pr="100.00", claim=False)

    results = race(lambda: case_approve(case=case.pk, actor=world.manager, reason="Approve", reference="CHK 3"),
                   lambda: credit_services.credits_apply(patient_id=pat.pk, actor=world.clerk, reason="Pay the visit",
                                                         respect_settings=False))
    assert outcomes(results) == ["ok", "ok"]
    credit.refresh_from_db()
    case.refresh_from_db()
    applied = CreditApplication.objects.filter(credit=credit).aggregate(s=Sum("amount"))["s"] or D(0)
    refunded = Refund.objects.filter(credit=credit, state="issued").aggregate(s=Sum("amount"))["s"] or D(0)
    assert applied + refunded + credit.on_hand == D("400.00")
    if refunded:  # the approval came first: all 400 refunded, nothing left to apply
        assert (refunded, applied, case.state) == (D("400.00"), D(0), "resolved")
    else:  # the application came first: 100 applied, the refund of 400 refused with the reason
        assert (applied, credit.on_hand, case.state) == (D("100.00"), D("300.00"), "proposed")
        assert "only 300.00 is left" in results[0][1].refusal
