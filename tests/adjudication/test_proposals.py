"""Resolutions (DOMAIN rule 16): propose, approve (four eyes), reject, carry out, through the credits
services in the case's transaction (adjudication/services/proposals.py)."""

from datetime import date
from decimal import Decimal as D

import pytest
from django.db import IntegrityError, transaction

from adjudication.models import Case, CaseEvent, Proposal
from adjudication.scan import cases_close_gone
from adjudication.services.proposals import case_approve, case_carry_out, case_propose, case_reject
from api.tokens import api_token_create
from credits import services as credit_services
from credits.models import Credit, PayerCredit, Refund
from ledger.errors import Duplicate, InvalidInput, NotFound, PermissionDenied, RuleViolation
from ledger.models import JournalLine, Membership
from tests.factories import MembershipFactory, PracticeFactory, UserFactory

pytestmark = pytest.mark.django_db


# --- helpers ---------------------------------------------------------------------------------------

def credit_of(world, amount="400.00", channel="check"):
    """A patient with an available credit of `amount` (a payment with no visit to pay)."""
    pat = world.patient()
    world.pay(pat, amount, channel=channel)
    return Credit.objects.get(patient=pat)


def case_of_credit(credit) -> Case:
    """The case the scan opens for a patient credit (the row as adjudication/scan.py writes it)."""
    return Case.objects.create(practice_id=credit.practice_id, kind=Case.Kind.PATIENT_CREDIT,
                               cause=Case.Cause.PATIENT_OVERPAYMENT, source=credit.source, credit=credit,
                               patient_id=credit.patient_id, amount=credit.on_hand, determined_on=date(2026, 3, 1))


def case_of_payer_credit(pc) -> Case:
    return Case.objects.create(practice_id=pc.practice_id, kind=Case.Kind.PAYER_CREDIT, cause=Case.Cause.DUPLICATE,
                               payer_credit=pc, payer_id=pc.payer_id, payer_type=pc.payer.payer_type,
                               amount=pc.amount, determined_on=date(2026, 3, 1))


def payer_credit(world, amount="180.00"):
    return credit_services.payer_credit_open(payer_id=world.payer.pk, amount=amount, reason_code="duplicate_payment",
                                             actor=world.clerk, reason="Paid twice", payer_claim_number="PCN-1",
                                             cash_received=True)


def counts():
    """What a refused or refused-to-start resolution must not have written."""
    return (Refund.objects.count(), JournalLine.objects.count(), Credit.history.count(), PayerCredit.history.count(),
            Proposal.objects.count(), Proposal.history.count(), Case.history.count(), CaseEvent.objects.count())


@pytest.fixture
def manager2(world):
    return MembershipFactory(practice=world.practice, user=UserFactory(username="boss2"),
                             role=Membership.Role.MANAGER).user


# --- patient refunds --------------------------------------------------------------------------------

def test_check_refund_approved_with_its_number_is_carried_out_in_one_transaction(world):
    credit = credit_of(world)
    case = case_of_credit(credit)
    p = case_propose(case=case, actor=world.clerk, reason="Patient asked for a refund", kind="refund_patient",
                     method="check")
    assert (p.state, p.amount, p.proposed_by) == ("proposed", D("400.00"), world.clerk)
    case.refresh_from_db()
    assert case.state == "proposed"

    p = case_approve(case=case.pk, actor=world.manager, reason="Checked the ledger", reference="CHK 5001")
    p.refresh_from_db()
    case.refresh_from_db()
    credit.refresh_from_db()
    r = Refund.objects.get()
    assert (r.state, r.method, r.amount, r.reference) == ("issued", "check", D("400.00"), "CHK 5001")
    assert (r.requested_by, r.decided_by, r.needs_approval) == (world.clerk, world.manager, True)
    assert (credit.state, credit.on_hand, credit.refund_hold, credit.refunded_amount) == \
        ("refunded", D("0.00"), D("0.00"), D("400.00"))
    assert (p.state, p.decided_by, p.result["refund"], p.refusal) == ("carried_out", world.manager, r.pk, "")
    assert (case.state, case.outcome, case.resolved_by, case.automatic) == \
        ("resolved", "refund_patient", world.manager, False)
    assert "CHK 5001" in case.outcome_note
    kinds = list(case.events.values_list("kind", "to_state"))
    assert kinds == [("proposal", "proposed"), ("decision", "approved"), ("carried_out", ""), ("state", "resolved")]
    last = case.history.latest()
    assert (last.history_user, last.state) == (world.manager, "resolved")


def test_card_refund_is_approved_in_the_transaction_and_paid_out_after_the_commit(world,
                                                                                django_capture_on_commit_callbacks):
    credit = credit_of(world, "150.00", channel="card_reader")
    case = case_of_credit(credit)
    case_propose(case=case, actor=world.clerk, reason="Refund to the card", kind="refund_patient")
    with django_capture_on_commit_callbacks(execute=False) as hooks:
        p = case_approve(case=case, actor=world.manager, reason="ok")
    # inside the transaction: requested and approved, the money held, nothing paid out
    r = Refund.objects.get()
    case.refresh_from_db()
    assert (r.state, r.method, r.requested_by, r.decided_by) == ("approved", "original_payment", world.clerk,
                                                                 world.manager)
    assert (p.state, case.state) == ("approved", "approved")
    credit.refresh_from_db()
    assert (credit.on_hand, credit.refund_hold) == (D("0.00"), D("150.00"))
    assert len(hooks) == 1  # the pay-out
    hooks[0]()
    r.refresh_from_db()
    case.refresh_from_db()
    p.refresh_from_db()
    assert r.state == "issued" and r.reference  # the processor's refund reference
    assert (case.state, case.outcome, p.state) == ("resolved", "refund_patient", "carried_out")


def test_check_refund_approved_without_a_number_holds_the_money_until_carried_out(world):
    credit = credit_of(world)
    case = case_of_credit(credit)
    case_propose(case=case, actor=world.clerk, reason="Refund by check", kind="refund_patient", method="check")
    p = case_approve(case=case, actor=world.manager, reason="ok")
    case.refresh_from_db()
    credit.refresh_from_db()
    assert (p.state, case.state, Refund.objects.get().state) == ("approved", "approved", "approved")
    assert (credit.on_hand, credit.refund_hold) == (D("0.00"), D("400.00"))
    before = counts()
    with pytest.raises(InvalidInput, match="check number"):
        case_carry_out(case=case, actor=world.clerk, reason="check cut")
    assert counts() == before
    p = case_carry_out(case=case, actor=world.clerk, reason="Check cut", reference="CHK 77")
    case.refresh_from_db()
    assert (p.state, case.state, case.outcome) == ("carried_out", "resolved", "refund_patient")
    assert Refund.objects.get().reference == "CHK 77"


def test_a_partial_refund_sends_the_case_back_to_proposed_with_the_rest(world):
    credit = credit_of(world)
    case = case_of_credit(credit)
    case_propose(case=case, actor=world.clerk, reason="Part of it", kind="refund_patient", amount="150.00",
                 method="check", reference="CHK 1")
    p = case_approve(case=case, actor=world.manager, reason="ok")
    case.refresh_from_db()
    assert (p.state, case.state) == ("carried_out", "proposed")
    assert case.events.last().data["left"] == "250.00"
    # the rest gets its own proposal (no live proposal was left)
    p2 = case_propose(case=case, actor=world.clerk, reason="The rest", kind="refund_patient", method="check",
                      reference="CHK 2")
    assert p2.amount == D("250.00")
    case_approve(case=case, actor=world.manager, reason="ok")
    case.refresh_from_db()
    assert (case.state, case.outcome) == ("resolved", "refund_patient")
    assert list(Refund.objects.order_by("pk").values_list("amount", flat=True)) == [D("150.00"), D("250.00")]


# --- four eyes ---------------------------------------------------------------------------------------

def test_four_eyes_the_proposer_billing_and_an_integration_cannot_approve(world, manager2):
    credit = credit_of(world)
    case = case_of_credit(credit)
    case_propose(case=case, actor=world.manager, reason="A manager proposes", kind="refund_patient", method="check",
                 reference="CHK 9")
    token, _ = api_token_create(practice_id=world.practice.pk, role="billing", name="billing-robot")
    before = counts()
    with pytest.raises(PermissionDenied, match="requester cannot approve"):
        case_approve(case=case, actor=world.manager, reason="my own")
    with pytest.raises(PermissionDenied, match="not a manager"):
        case_approve(case=case, actor=world.clerk, reason="billing")
    with pytest.raises(PermissionDenied, match="not a manager|integration"):
        case_approve(case=case, actor=token.user, reason="robot")
    with pytest.raises(PermissionDenied, match="requester cannot"):
        case_reject(case=case, actor=world.manager, reason="my own")
    assert counts() == before
    p = case_approve(case=case, actor=manager2, reason="second pair of eyes")
    assert (p.state, p.decided_by) == ("carried_out", manager2)


def test_the_database_refuses_a_proposal_decided_by_its_proposer(world):
    case = case_of_credit(credit_of(world))
    p = case_propose(case=case, actor=world.manager, reason="x", kind="refund_patient")
    with pytest.raises(IntegrityError, match="proposal_four_eyes"), transaction.atomic():
        Proposal.objects.filter(pk=p.pk).update(state="approved", decided_by=world.manager, decided_at=p.proposed_at)


def test_reject_sends_the_case_back_to_investigating(world):
    case = case_of_credit(credit_of(world))
    case_propose(case=case, actor=world.clerk, reason="Refund", kind="refund_patient")
    p = case_reject(case=case, actor=world.manager, reason="Patient has a visit next week")
    case.refresh_from_db()
    assert (p.state, p.decided_by, p.decision_note, case.state) == \
        ("rejected", world.manager, "Patient has a visit next week", "investigating")
    with pytest.raises(RuleViolation, match="is already rejected by boss"):
        case_approve(case=case, actor=world.manager, reason="late")
    assert Refund.objects.count() == 0


# --- bad input -----------------------------------------------------------------------------------------

def test_bad_input_is_refused_clearly_and_nothing_is_written(world):
    credit = credit_of(world)
    case = case_of_credit(credit)
    other = PracticeFactory(name="Elsewhere")
    stranger = MembershipFactory(practice=other, user=UserFactory(username="stranger"),
                                 role=Membership.Role.MANAGER).user
    before = counts()
    with pytest.raises(NotFound, match="unknown case 999999"):
        case_propose(case=999999, actor=world.clerk, reason="x", kind="refund_patient")
    with pytest.raises(InvalidInput):
        case_propose(case="abc", actor=world.clerk, reason="x", kind="refund_patient")
    with pytest.raises(PermissionDenied, match="not staff of practice"):
        case_propose(case=case, actor=stranger, reason="x", kind="refund_patient")
    with pytest.raises(RuleViolation, match="only 400.00 is left"):
        case_propose(case=case, actor=world.clerk, reason="x", kind="refund_patient", amount="400.01")
    with pytest.raises(InvalidInput, match="amount"):
        case_propose(case=case, actor=world.clerk, reason="x", kind="refund_patient", amount="-5")
    with pytest.raises(InvalidInput, match="resolved by one of"):
        case_propose(case=case, actor=world.clerk, reason="x", kind="refund_payer")
    with pytest.raises(InvalidInput, match="method"):
        case_propose(case=case, actor=world.clerk, reason="x", kind="refund_patient", method="cash")
    with pytest.raises(InvalidInput, match="reason"):
        case_propose(case=case, actor=world.clerk, reason="  ", kind="refund_patient")
    with pytest.raises(RuleViolation, match="own election"):
        case_propose(case=case, actor=world.clerk, reason="x", kind="keep_credit")
    with pytest.raises(InvalidInput, match="whole balance"):
        case_propose(case=case, actor=world.clerk, reason="x", kind="apply_balances", amount="10.00")
    with pytest.raises(NotFound, match="no proposal"):
        case_approve(case=case, actor=world.manager, reason="nothing to approve")
    assert counts() == before

    case_propose(case=case, actor=world.clerk, reason="Refund", kind="refund_patient")
    before = counts()
    with pytest.raises(Duplicate, match="already has proposal"):
        case_propose(case=case, actor=world.clerk, reason="again", kind="refund_patient")
    with pytest.raises(PermissionDenied):
        case_approve(case=case, actor=stranger, reason="not mine")
    with pytest.raises(RuleViolation, match="manager approves it first"):
        case_carry_out(case=case, actor=world.clerk, reason="too early", reference="CHK")
    assert counts() == before


def test_a_resolved_case_takes_no_proposal(world):
    credit = credit_of(world)
    case = case_of_credit(credit)
    case_propose(case=case, actor=world.clerk, reason="Refund", kind="refund_patient", method="check",
                 reference="CHK 3")
    case_approve(case=case, actor=world.manager, reason="ok")
    before = counts()
    with pytest.raises(RuleViolation, match="resolved; it cannot be given a proposal"):
        case_propose(case=case, actor=world.clerk, reason="again", kind="refund_patient")
    assert counts() == before


# --- other kinds ----------------------------------------------------------------------------------------

def test_apply_balances_applies_the_credit_and_the_rest_goes_back_to_proposed(world):
    credit = credit_of(world)
    pat = credit.patient
    _, claim = world.visit(pat, date(2026, 3, 2), charge="200.00")
    world.remit(claim, pr="100.00", paid="100.00")
    case = case_of_credit(credit)
    case_propose(case=case, actor=world.clerk, reason="Pay the new visit", kind="apply_balances")
    p = case_approve(case=case, actor=world.manager, reason="ok")
    credit.refresh_from_db()
    case.refresh_from_db()
    assert (credit.on_hand, credit.applied_amount) == (D("300.00"), D("100.00"))
    assert (p.state, p.result["applied"], case.state) == ("carried_out", "100.00", "proposed")


def test_apply_balances_with_nothing_to_pay_is_refused_and_nothing_is_written(world):
    case = case_of_credit(credit_of(world))
    case_propose(case=case, actor=world.clerk, reason="Apply", kind="apply_balances")
    before = counts()
    p = case_approve(case=case, actor=world.manager, reason="ok")
    case.refresh_from_db()
    assert (p.state, case.state) == ("proposed", "proposed")
    assert "no open balance" in p.refusal
    assert counts()[:4] == before[:4]  # no refund, journal line or money history row
    assert case.events.last().kind == "refused"


def test_payer_refund_approved_then_carried_out_with_its_check_number(world):
    pc = payer_credit(world)
    case = case_of_payer_credit(pc)
    case_propose(case=case, actor=world.clerk, reason="Refund the payer", kind="refund_payer")
    p = case_approve(case=case, actor=world.manager, reason="ok")
    case.refresh_from_db()
    assert (p.state, case.state) == ("approved", "approved")
    p = case_carry_out(case=case, actor=world.clerk, reason="Check cut", reference="PAYER CHK 12")
    case.refresh_from_db()
    pc.refresh_from_db()
    assert (pc.state, pc.reference, p.state, case.state, case.outcome) == \
        ("refunded", "PAYER CHK 12", "carried_out", "resolved", "refund_payer")


def test_money_changed_before_an_approved_payer_refund_is_carried_out(world):
    pc = payer_credit(world)
    case = case_of_payer_credit(pc)
    case_propose(case=case, actor=world.clerk, reason="Refund the payer", kind="refund_payer")
    case_approve(case=case, actor=world.manager, reason="ok")
    credit_services.payer_credit_recoup(payer_credit_id=pc.pk, amount="30.00", reference="PLB WO PCN-1",
                                        actor=world.clerk, reason="Recouped 30 in an 835")
    lines = JournalLine.objects.count()
    p = case_carry_out(case=case, actor=world.clerk, reason="Check cut", reference="PAYER CHK 13")
    case.refresh_from_db()
    pc.refresh_from_db()
    assert (p.state, case.state) == ("refused", "proposed")
    assert "only 150.00 is left" in p.refusal
    assert (pc.state, pc.resolved_amount, JournalLine.objects.count()) == ("open", D("30.00"), lines)
    # staff propose again for what is left
    p2 = case_propose(case=case, actor=world.clerk, reason="The rest", kind="refund_payer", reference="CHK 14")
    assert p2.amount == D("150.00")


def test_keep_credit_only_on_the_patients_election(world):
    case = case_of_credit(credit_of(world))
    Case.objects.filter(pk=case.pk).update(election="keep")
    case_propose(case=case, actor=world.clerk, reason="Patient keeps it", kind="keep_credit")
    case_approve(case=case, actor=world.manager, reason="ok")
    case.refresh_from_db()
    assert (case.state, case.outcome) == ("resolved", "kept")
    assert Credit.objects.get().on_hand == D("400.00")


def test_unclaimed_property_is_not_proposed_but_turned_over_from_its_list(world):
    case = case_of_credit(credit_of(world))
    with pytest.raises(RuleViolation, match="unclaimed-property list"):
        case_propose(case=case, actor=world.clerk, reason="x", kind="unclaimed_property")


def case_of_encounter(enc) -> Case:
    return Case.objects.create(practice_id=enc.practice_id, kind=Case.Kind.ENCOUNTER, cause=Case.Cause.PAID_BEYOND_CHARGE,
                               encounter=enc, patient_id=enc.patient_id, amount=D("1.00"),
                               determined_on=date(2026, 3, 1))


def test_resubmit_claim_of_a_visit_paid_beyond_its_charge(world):
    pat = world.patient()
    enc, claim = world.visit(pat, date(2026, 3, 2), charge="200.00")
    world.remit(claim, pr="0.00", paid="250.00", adjust="-50.00")  # the payer paid 50.00 beyond the charge
    case = case_of_encounter(enc)
    with pytest.raises(NotFound, match="unknown claim"):
        case_propose(case=case, actor=world.clerk, reason="x", kind="resubmit_claim", claim_id=999999)
    p = case_propose(case=case, actor=world.clerk, reason="Corrected claim", kind="resubmit_claim")
    assert (p.amount, p.claim_id) == (D("50.00"), claim.pk)
    p = case_approve(case=case, actor=world.manager, reason="ok")
    claim.refresh_from_db()
    case.refresh_from_db()
    assert (p.state, p.result["claim"], case.state, case.outcome) == ("carried_out", claim.pk, "resolved",
                                                                       "resubmitted")
    assert claim.state == "resubmitted" and claim.history.latest().history_user == world.manager


def test_write_off_the_balance_of_a_visit_paid_beyond_its_charge(world):
    pat = world.patient()
    enc, claim = world.visit(pat, date(2026, 3, 2), charge="200.00")
    world.remit(claim, pr="50.00", paid="190.00")
    world.pay(pat, "30.00", encounter=enc)  # paid 190 + patient 30 = 220: 20.00 beyond the charge
    enc.refresh_from_db()
    assert enc.balance == D("20.00")
    case = case_of_encounter(enc)
    p = case_propose(case=case, actor=world.clerk, reason="The patient owes nothing more", kind="write_off")
    assert p.amount == D("20.00")
    p = case_approve(case=case, actor=world.manager, reason="ok")
    enc.refresh_from_db()
    case.refresh_from_db()
    assert (enc.written_off_amount, enc.balance) == (D("20.00"), D("0.00"))
    assert (p.state, case.state, case.outcome) == ("carried_out", "resolved", "written_off")


def test_a_scan_between_the_card_pay_out_and_the_case_marks_the_proposal_carried_out(world,
                                                                                    django_capture_on_commit_callbacks):
    """The processor paid the refund; before the pay-out's own transaction resolved the case, the
    nightly scan found the money gone: the proposal was carried out, not refused."""
    credit = credit_of(world, "150.00", channel="card_reader")
    case = case_of_credit(credit)
    case_propose(case=case, actor=world.clerk, reason="Refund to the card", kind="refund_patient")
    with django_capture_on_commit_callbacks(execute=False):
        p = case_approve(case=case, actor=world.manager, reason="ok")
    refund = Refund.objects.get()
    credit_services.refund_issue(refund_id=refund.pk, actor=world.manager)  # the pay-out, without its resolution
    assert cases_close_gone(practice_id=world.practice.pk, actor=world.clerk) == 1
    p.refresh_from_db()
    case.refresh_from_db()
    assert (case.state, case.outcome, p.state, p.refusal) == ("resolved", "refund_patient", "carried_out", "")
    assert p.result["refund"] == refund.pk and p.result["outcome"] == "refund_patient"
    assert "carried out: " in CaseEvent.objects.filter(case=case, kind=CaseEvent.Kind.REFUSED).get().text
