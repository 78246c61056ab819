"""DOMAIN.md worked examples A-H, each with its own numbers."""

from datetime import date
from decimal import Decimal as D

import pytest

from credits import services as credit_services
from credits.models import Credit, Refund
from credits.selectors import credit_liability, patient_owes
from ledger.errors import RuleViolation
from ledger.models import Encounter

pytestmark = pytest.mark.django_db


def credits_of(patient):
    return list(Credit.objects.filter(patient=patient).order_by("pk"))


def nightly(world, patient):
    return credit_services.credits_apply(patient_id=patient.pk, actor=world.clerk,
                                                     reason="Nightly application")


def test_a_copay_held_then_settled(world):
    pat = world.patient()
    enc, claim = world.visit(pat, date(2026, 3, 3))
    world.pay(pat, "50.00", encounter=enc, channel="card_reader")
    (held,) = credits_of(pat)
    assert (held.state, held.on_hand, held.locked_encounter_id, held.source) == \
        ("locked", D("50.00"), enc.pk, Credit.Source.HELD_PAYMENT)

    world.remit(claim, pr="20.00", paid="150.00")
    held.refresh_from_db()
    assert held.state == "locked"  # the nightly run applies it, not the remittance

    result = nightly(world, pat)
    assert result.total == D("20.00")
    held.refresh_from_db()
    enc.refresh_from_db()
    assert enc.balance == 0
    assert (held.state, held.on_hand, held.applied_amount) == ("available", D("30.00"), D("20.00"))
    assert credit_liability(pat.pk) == D("30.00")

    refund = credit_services.refund_request(credit_id=held.pk, amount="30.00", actor=world.clerk,
                                            reason="Patient asked for the rest back")
    # below the threshold the service approves it and pays it back through the processor at once
    assert refund.method == Refund.Method.ORIGINAL_PAYMENT
    held.refresh_from_db()
    assert refund.state == Refund.State.ISSUED and refund.reference.startswith("sbx_re_")
    assert (held.state, held.on_hand, held.refunded_amount) == ("refunded", D("0"), D("30.00"))
    assert held.payment.refunded_amount == D("30.00")
    assert credit_liability(pat.pk) == D("0")


def test_b_overpayment_after_correction(world):
    pat = world.patient()
    enc, claim = world.visit(pat, date(2026, 4, 10))
    world.remit(claim, pr="120.00", paid="60.00")
    world.pay(pat, "120.00", encounter=enc, channel="portal")
    enc.refresh_from_db()
    assert enc.balance == 0 and credits_of(pat) == []

    world.remit(claim, pr="70.00", paid="50.00", adjust="0.00", reason="Corrected remittance")
    (over,) = credits_of(pat)
    assert (over.source, over.state, over.on_hand) == (Credit.Source.OVERPAYMENT, "available", D("50.00"))
    assert over.payment.channel == "portal"
    enc.refresh_from_db()
    assert (enc.remittance_pr, enc.applied_amount, enc.balance) == (D("70.00"), D("70.00"), D("0.00"))
    refund = credit_services.refund_request(credit_id=over.pk, amount="50.00", actor=world.clerk, reason="Refund")
    assert refund.method == Refund.Method.ORIGINAL_PAYMENT


def test_c_locked_credits_are_not_used_for_other_dates(world):
    pat = world.patient()
    may5, claim5 = world.visit(pat, date(2026, 5, 5))
    world.pay(pat, "40.00", encounter=may5)
    credit_services.manual_credit_add(patient_id=pat.pk, amount="10.00", reason="Goodwill", actor=world.clerk)
    may1, claim1 = world.visit(pat, date(2026, 5, 1))
    world.remit(claim1, pr="30.00", paid="100.00")

    result = nightly(world, pat)
    assert result.total == D("10.00")
    may1.refresh_from_db()
    assert may1.balance == D("20.00")
    locked = Credit.objects.get(patient=pat, locked_encounter=may5)
    assert (locked.state, locked.on_hand) == ("locked", D("40.00"))


def test_d_order_of_use(world):
    pat = world.patient()
    jun8, claim = world.visit(pat, date(2026, 6, 8))
    world.pay(pat, "25.00", encounter=jun8)
    credit_services.manual_credit_add(patient_id=pat.pk, amount="100.00", reason="Old system", actor=world.clerk)
    world.remit(claim, pr="60.00", paid="100.00")

    result = nightly(world, pat)
    assert [(ln.amount, ln.locked) for ln in result.lines] == [(D("25.00"), True), (D("35.00"), False)]
    owes = patient_owes(pat.pk)
    assert (owes.available, owes.locked_held, owes.due_now) == (D("65.00"), 0, 0)


def test_e_resubmission(world):
    pat = world.patient()
    enc, claim = world.visit(pat, date(2026, 7, 2))
    world.remit(claim, pr="80.00", paid="100.00")
    world.pay(pat, "80.00", encounter=enc)
    enc.refresh_from_db()
    assert enc.balance == 0

    from credits.services import claim_resubmit
    (c,) = claim_resubmit(claim_id=claim.pk, actor=world.clerk, reason="Wrong modifier, resubmitted")
    assert (c.source, c.state, c.on_hand, c.locked_encounter_id) == \
        (Credit.Source.RESUBMISSION, "locked", D("80.00"), enc.pk)
    assert nightly(world, pat).total == 0  # the DoS waits for the new decision

    claim.refresh_from_db()
    world.remit(claim, pr="30.00", paid="0.00", adjust="0.00", reason="New decision")
    assert nightly(world, pat).total == D("30.00")
    c.refresh_from_db()
    enc.refresh_from_db()
    assert enc.balance == 0 and (c.state, c.on_hand) == ("available", D("50.00"))


def test_f_no_system_refund_without_system_payment(world):
    pat = world.patient()
    c = credit_services.manual_credit_add(patient_id=pat.pk, amount="200.00", reason="carried over from old system",
                                          actor=world.clerk)
    with pytest.raises(RuleViolation, match="no payment behind it"):
        credit_services.refund_request(credit_id=c.pk, amount="200.00", method="original_payment",
                                       actor=world.clerk, reason="Refund to card")
    r = credit_services.refund_request(credit_id=c.pk, amount="200.00", actor=world.clerk, reason="Refund by check")
    assert (r.method, r.state, r.needs_approval) == ("check", "requested", True)
    credit_services.refund_approve(refund_id=r.pk, actor=world.manager, reason="ok")
    r = credit_services.refund_issue(refund_id=r.pk, actor=world.clerk, reference="CHK 5512")
    c.refresh_from_db()
    assert (r.state, r.reference, c.state, c.refunded_amount) == ("issued", "CHK 5512", "refunded", D("200.00"))


@pytest.mark.parametrize("how", ["practice_off", "patient_excluded"])
def test_g_auto_apply_off(world, how):
    pat = world.patient(exclude_from_auto_apply=(how == "patient_excluded"))
    if how == "practice_off":
        world.practice.auto_apply = False
        world.practice.save()
    enc, claim = world.visit(pat, date(2026, 8, 1))
    credit_services.manual_credit_add(patient_id=pat.pk, amount="40.00", reason="prepaid", actor=world.clerk)
    world.remit(claim, pr="25.00", paid="100.00")
    assert nightly(world, pat).total == 0
    enc.refresh_from_db()
    assert enc.balance == D("25.00")
    by_hand = credit_services.credits_apply(patient_id=pat.pk, actor=world.clerk, reason="By hand",
                                                        respect_settings=False)
    assert by_hand.total == D("25.00")


def test_h_twice_is_once(world):
    pat = world.patient()
    enc, claim = world.visit(pat, date(2026, 9, 9))
    credit_services.manual_credit_add(patient_id=pat.pk, amount="100.00", reason="prepaid", actor=world.clerk)
    world.remit(claim, pr="45.00", paid="100.00")
    assert nightly(world, pat).total == D("45.00")
    assert nightly(world, pat).total == 0
    enc.refresh_from_db()
    assert (enc.applied_amount, enc.balance) == (D("45.00"), D("0"))
    assert credit_liability(pat.pk) == D("55.00")
    assert Encounter.objects.get(pk=enc.pk).applications.count() == 1
