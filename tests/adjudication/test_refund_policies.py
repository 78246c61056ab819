"""Refund policies and approval bands (DOMAIN rule 19; adjudication/policies.py and
adjudication/services/refund_worklist.py): each policy condition puts the right credits on the
refund work list and keeps the others off; each band's rule is enforced by the service (billing
band at once, manager band refused to billing staff, four-eyes band waits for another manager);
splitting a patient's refund over two credits does not escape the four eyes; another practice's
credits are refused with nothing written."""

from datetime import UTC, date, datetime
from decimal import Decimal as D

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from adjudication.models import Case, CaseEvent, Proposal, RefundApprovalBand, RefundPolicy
from adjudication.policies import approval_rule, band_for, refund_work_list
from adjudication.services.refund_worklist import refund_work_list_refund
from credits import services as credit_services
from credits.models import Credit, Refund
from ledger.errors import InvalidInput, NotFound, PermissionDenied, RuleViolation
from ledger.models import JournalLine, Membership
from tests.credits.test_races import outcomes, race
from tests.factories import MembershipFactory, PatientFactory, PracticeFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def practice(world):
    """The bands decide in these tests: the practice's own refund threshold is far above them."""
    world.practice.refund_approval_threshold = D("5000.00")
    world.practice.save()
    return world.practice


def policy(practice, **kw):
    kw.setdefault("name", "Small credits, settled patients")
    return RefundPolicy.objects.create(practice=practice, **kw)


def band(practice, up_to, role, four_eyes=False):
    return RefundApprovalBand.objects.create(practice=practice, up_to=None if up_to is None else D(up_to), role=role,
                                             four_eyes=four_eyes)


def card_credit(world, amount, *, patient=None, channel="card_reader"):
    """A payment with nothing owed: all of it an available credit of the patient."""
    pat = patient or world.patient()
    (c,) = world.pay(pat, amount, channel=channel).credits
    assert (c.state, c.on_hand) == ("available", D(amount))
    return c


def open_case(world, credit, **kw):
    return Case.objects.create(practice=world.practice, kind=Case.Kind.PATIENT_CREDIT,
                               cause=Case.Cause.PATIENT_OVERPAYMENT, credit=credit, patient=credit.patient,
                               amount=credit.on_hand, determined_on=date.today(), **kw)


def listed(practice, **kw) -> list[int]:
    return [c.pk for c in refund_work_list(practice_id=practice.pk, **kw)]


def second_manager(world):
    return MembershipFactory(practice=world.practice, user=UserFactory(username="boss2"),
                             role=Membership.Role.MANAGER).user


def written() -> tuple:
    """What a refund writes: refunds, journal lines, credit history rows."""
    return Refund.objects.count(), JournalLine.objects.count(), Credit.history.count()


# --- the work list --------------------------------------------------------------------------------

def test_no_policy_means_an_empty_work_list(world, practice):
    card_credit(world, "40.00")
    assert listed(practice) == []
    policy(practice, active=False)
    assert listed(practice) == []


def test_amount_range_edges_are_inclusive(world, practice):
    policy(practice, min_amount=D("10.00"), max_amount=D("50.00"))
    below, low, high, above = (card_credit(world, a) for a in ("9.99", "10.00", "50.00", "50.01"))
    assert listed(practice) == [low.pk, high.pk]
    # a second policy with no upper limit takes the big one too; each row names the first policy that takes it
    big = policy(practice, name="Large", min_amount=D("50.01"))
    rows = {c.pk: c.policy_id for c in refund_work_list(practice_id=practice.pk)}
    assert rows == {low.pk: rows[low.pk], high.pk: rows[high.pk], above.pk: big.pk}
    assert below.pk not in rows


def test_minimum_age_counts_days_in_the_practice_time_zone(world, practice):
    """Created at 07:30 UTC on 1 Mar 2026 = 23:30 on 28 Feb in Los Angeles: 10 days old from
    local midnight of 10 Mar (07:00 UTC, after the switch to daylight time on 8 Mar), a day before
    a count in UTC would say."""
    practice.time_zone = "America/Los_Angeles"
    practice.save()
    policy(practice, min_age_days=10)
    with time_machine.travel(datetime(2026, 3, 1, 7, 30, tzinfo=UTC), tick=False):
        c = card_credit(world, "30.00")
    with time_machine.travel(datetime(2026, 3, 10, 6, 59, 59, tzinfo=UTC), tick=False):
        assert listed(practice) == []  # 23:59:59 on 9 Mar there: 9 days old
    with time_machine.travel(datetime(2026, 3, 10, 7, 0, tzinfo=UTC), tick=False):
        assert listed(practice) == [c.pk]
    # `today` given by the caller counts the same way
    assert listed(practice, today=date(2026, 3, 9)) == []
    assert listed(practice, today=date(2026, 3, 10)) == [c.pk]


def test_open_balance_keeps_the_patient_off_when_the_policy_requires_it(world, practice):
    p = policy(practice, require_no_pending_claim=False)
    owing = world.patient()
    c_owing = card_credit(world, "40.00", patient=owing)
    world.visit(owing, date(2026, 1, 5), estimated_pr="25.00", claim=False)  # owes 25.00 now
    owing.responsibility.refresh_from_db()
    assert owing.responsibility.due_now == D("25.00")
    settled = card_credit(world, "40.00")
    assert listed(practice) == [settled.pk]
    p.require_no_open_balance = False
    p.save()
    assert listed(practice) == [c_owing.pk, settled.pk]


def test_pending_claim_keeps_the_patient_off_when_the_policy_requires_it(world, practice):
    p = policy(practice, require_no_open_balance=False)
    waiting = world.patient()
    c_waiting = card_credit(world, "40.00", patient=waiting)
    world.visit(waiting, date(2026, 1, 5), estimated_pr="0.00")  # a claim waits on the payer, no PR estimated
    estimated = world.patient()
    c_estimated = card_credit(world, "40.00", patient=estimated)
    world.visit(estimated, date(2026, 1, 6), estimated_pr="15.00")  # pending_payer 15.00 as well
    estimated.responsibility.refresh_from_db()
    assert estimated.responsibility.pending_payer == D("15.00")
    settled = card_credit(world, "40.00")
    assert listed(practice) == [settled.pk]
    p.require_no_pending_claim = False
    p.save()
    assert listed(practice) == [c_waiting.pk, c_estimated.pk, settled.pk]


def test_keep_election_and_refund_in_flight_keep_a_credit_off(world, practice):
    policy(practice)
    kept = card_credit(world, "40.00")
    open_case(world, kept, election="keep")
    wants_refund = card_credit(world, "40.00")
    open_case(world, wants_refund, election="refund")
    held = card_credit(world, "40.00")
    practice.refund_approval_threshold = D("5.00")
    practice.save()
    r = credit_services.refund_request(credit_id=held.pk, amount="10.00", actor=world.clerk, reason="Asked")
    assert (r.state, Credit.objects.get(pk=held.pk).refund_hold) == ("requested", D("10.00"))
    plain = card_credit(world, "40.00")
    assert listed(practice) == [wants_refund.pk, plain.pk]
    # a case already resolving its money by a live proposal keeps it off; a rejected one does not
    proposal = Proposal.objects.create(case=Case.objects.get(credit=wants_refund), kind=Proposal.Kind.REFUND_PATIENT,
                                       amount=D("40.00"), reason="Refund by check", proposed_by=world.clerk)
    assert listed(practice) == [plain.pk]
    Proposal.objects.filter(pk=proposal.pk).update(state=Proposal.State.REJECTED, decided_by=world.manager,
                                                   decided_at=proposal.proposed_at)
    assert listed(practice) == [wants_refund.pk, plain.pk]


def test_the_work_list_costs_the_same_queries_for_two_or_many_credits(world, practice):
    policy(practice)
    band(practice, "50.00", "billing")
    for _ in range(2):
        card_credit(world, "20.00")
    with CaptureQueriesContext(connection) as two:
        assert len(list(refund_work_list(practice_id=practice.pk))) == 2
    for _ in range(6):
        card_credit(world, "20.00")
    with CaptureQueriesContext(connection) as eight:
        rows = list(refund_work_list(practice_id=practice.pk))
        assert len(rows) == 8 and all(r.patient.last_name for r in rows)
    assert len(two.captured_queries) == len(eight.captured_queries)


# --- bands ----------------------------------------------------------------------------------------

def test_band_for_picks_the_smallest_band_at_or_above_the_amount_else_the_open_band(world, practice):
    assert band_for(practice_id=practice.pk, amount="10.00") is None  # none configured
    rule = approval_rule(practice_id=practice.pk, amount="10.00")
    assert (rule.configured, rule.role, rule.four_eyes) == (False, "billing", False)
    small, mid = band(practice, "50.00", "billing"), band(practice, "500.00", "billing", four_eyes=True)
    assert [band_for(practice_id=practice.pk, amount=a) for a in ("0.01", "50.00", "50.01", "500.00")] == \
        [small, small, mid, mid]
    assert band_for(practice_id=practice.pk, amount="500.01") is None
    rule = approval_rule(practice_id=practice.pk, amount="500.01")  # bands, none covers: the strictest
    assert (rule.band, rule.role, rule.four_eyes) == (None, "manager", True)
    top = band(practice, None, "manager", four_eyes=True)
    assert band_for(practice_id=practice.pk, amount="500.01") == top
    with pytest.raises(InvalidInput, match="amount"):
        band_for(practice_id=practice.pk, amount="-1.00")


def test_work_list_rows_show_the_band_they_need(world, practice):
    policy(practice)
    small, mid = band(practice, "50.00", "billing"), band(practice, "500.00", "manager", four_eyes=True)
    a, b = card_credit(world, "50.00"), card_credit(world, "50.01")
    rows = {c.pk: (c.band_id, c.band_role, c.band_four_eyes, c.needs_approval)
            for c in refund_work_list(practice_id=practice.pk)}
    assert rows == {a.pk: (small.pk, "billing", False, False), b.pk: (mid.pk, "manager", True, True)}


def test_billing_band_is_refunded_to_the_card_at_once_by_billing_staff_and_its_case_resolves(world, practice):
    policy(practice)
    band(practice, "50.00", "billing")
    c = card_credit(world, "40.00")
    case = open_case(world, c)
    (r,) = refund_work_list_refund(credit_ids=[c.pk], actor=world.clerk, reason="Refund policy run")
    assert (r.state, r.method, r.amount, r.needs_approval, r.requested_by, r.issue_error) == \
        ("issued", "original_payment", D("40.00"), False, world.clerk, "")
    c.refresh_from_db()
    assert (c.state, c.on_hand, c.refund_hold, c.refunded_amount) == ("refunded", 0, 0, D("40.00"))
    case.refresh_from_db()
    assert (case.state, case.outcome, case.resolved_by, case.automatic) == \
        ("resolved", "refund_patient", world.clerk, False)
    last = case.events.latest("id")
    assert (last.kind, last.to_state, last.data) == ("state", "resolved", {"via": "refund_policy", "refund": r.pk})
    assert case.events.filter(kind=CaseEvent.Kind.NOTE, data__via="refund_policy", data__refund=r.pk).exists()
    assert listed(practice) == []
    # a second submission of the same credit is refused: it is no longer on the list
    before = written()
    with pytest.raises(RuleViolation, match=f"credit {c.pk} is not on the refund work list"):
        refund_work_list_refund(credit_ids=[c.pk], actor=world.clerk, reason="Again")
    assert written() == before


def test_check_refunds_wait_approved_for_the_check_number(world, practice):
    policy(practice)
    band(practice, None, "billing")
    c = card_credit(world, "40.00", channel="cash")
    case = open_case(world, c)
    (r,) = refund_work_list_refund(credit_ids=[c.pk], actor=world.clerk, reason="Refund policy run")
    assert (r.state, r.method, r.reference) == ("approved", "check", "")
    case.refresh_from_db()
    assert case.state == "identified"  # the money is held for the check, not gone yet
    r = credit_services.refund_issue(refund_id=r.pk, actor=world.clerk, reference="CHK 5512")
    assert (r.state, r.reference) == ("issued", "CHK 5512")


def test_manager_band_is_refused_to_billing_staff_with_nothing_written(world, practice):
    policy(practice)
    band(practice, "50.00", "billing")
    band(practice, None, "manager")
    small, large = card_credit(world, "40.00"), card_credit(world, "80.00")
    before = written()
    with pytest.raises(PermissionDenied, match=f"credit {large.pk}: a refund of 80.00 .* needs band above: a manager"):
        refund_work_list_refund(credit_ids=[small.pk, large.pk], actor=world.clerk, reason="Refund policy run")
    assert written() == before  # not even the small one
    (r,) = refund_work_list_refund(credit_ids=[large.pk], actor=world.manager, reason="Refund policy run")
    assert (r.state, r.needs_approval, r.requested_by) == ("issued", False, world.manager)


def test_four_eyes_band_waits_and_the_requester_cannot_approve_it(world, practice):
    policy(practice)
    band(practice, "50.00", "billing")
    band(practice, None, "manager", four_eyes=True)
    c = card_credit(world, "80.00")
    case = open_case(world, c)
    (r,) = refund_work_list_refund(credit_ids=[c.pk], actor=world.manager, reason="Refund policy run")
    assert (r.state, r.needs_approval, r.decided_by) == ("requested", True, None)
    c.refresh_from_db()
    assert (c.on_hand, c.refund_hold) == (0, D("80.00"))
    with pytest.raises(PermissionDenied, match="requester cannot approve"):
        credit_services.refund_approve(refund_id=r.pk, actor=world.manager, reason="Mine")
    with pytest.raises(PermissionDenied):
        credit_services.refund_approve(refund_id=r.pk, actor=world.clerk, reason="Billing")
    case.refresh_from_db()
    assert case.state == "identified"
    other = second_manager(world)
    r = credit_services.refund_approve(refund_id=r.pk, actor=other, reason="Checked")
    r = credit_services.refund_issue(refund_id=r.pk, actor=world.clerk)
    assert (r.state, r.decided_by) == ("issued", other)


def test_splitting_two_credits_of_one_patient_does_not_escape_the_four_eyes(world, practice):
    """40.00 + 40.00 of one patient: each alone in the billing band up to 50.00, together 80.00 in
    the four-eyes band. The first is refunded at once; the second counts the first (the patient's
    window total) and waits for a manager."""
    policy(practice)
    band(practice, "50.00", "billing")
    band(practice, None, "billing", four_eyes=True)
    pat = world.patient()
    first, second = card_credit(world, "40.00", patient=pat), card_credit(world, "40.00", patient=pat)
    rows = {c.pk: c.band_four_eyes for c in refund_work_list(practice_id=practice.pk)}
    assert rows == {first.pk: False, second.pk: False}  # each alone looks small
    r1, r2 = refund_work_list_refund(credit_ids=[second.pk, first.pk], actor=world.clerk, reason="Refund policy run")
    assert (r1.credit_id, r1.state, r1.needs_approval) == (first.pk, "issued", False)
    assert (r2.credit_id, r2.state, r2.needs_approval) == (second.pk, "requested", True)
    # in two calls it is the same: the first refund counts in the window
    pat2 = world.patient()
    a, b = card_credit(world, "40.00", patient=pat2), card_credit(world, "40.00", patient=pat2)
    (ra,) = refund_work_list_refund(credit_ids=[a.pk], actor=world.clerk, reason="Refund policy run")
    assert {c.pk: (c.window_total, c.band_four_eyes) for c in refund_work_list(practice_id=practice.pk)} == \
        {b.pk: (D("40.00"), True)}
    (rb,) = refund_work_list_refund(credit_ids=[b.pk], actor=world.clerk, reason="Refund policy run")
    assert (ra.state, rb.state, rb.needs_approval) == ("issued", "requested", True)


def test_splitting_into_a_manager_band_is_refused_to_billing_before_anything_is_written(world, practice):
    policy(practice)
    band(practice, "50.00", "billing")
    band(practice, None, "manager")
    pat = world.patient()
    first, second = card_credit(world, "40.00", patient=pat), card_credit(world, "40.00", patient=pat)
    before = written()
    with pytest.raises(PermissionDenied, match=f"credit {second.pk}: a refund of 40.00 .* come to 80.00"):
        refund_work_list_refund(credit_ids=[first.pk, second.pk], actor=world.clerk, reason="Refund policy run")
    assert written() == before


def test_without_bands_the_practice_threshold_alone_decides(world, practice):
    practice.refund_approval_threshold = D("100.00")
    practice.save()
    policy(practice)
    pat = world.patient()
    a, b = card_credit(world, "60.00", patient=pat), card_credit(world, "60.00", patient=pat)
    ra, rb = refund_work_list_refund(credit_ids=[a.pk, b.pk], actor=world.clerk, reason="Refund policy run")
    assert (ra.state, rb.state, rb.needs_approval) == ("issued", "requested", True)  # 120.00 over the window


# --- bad input and tenancy ------------------------------------------------------------------------

@pytest.fixture
def elsewhere(db):
    practice = PracticeFactory(name="Elsewhere")
    user = MembershipFactory(practice=practice, user=UserFactory(username="elsewhere"),
                             role=Membership.Role.MANAGER).user
    return practice, user


def test_another_practices_credits_are_refused_with_nothing_written(world, practice, elsewhere):
    other_practice, other_manager = elsewhere
    policy(practice)
    policy(other_practice)
    mine = card_credit(world, "40.00")
    pat = PatientFactory(practice=other_practice)
    (theirs,) = credit_services.payment_record(patient_id=pat.pk, amount="30.00", channel="card_reader",
                                               card_token="tok_visa", actor=other_manager,
                                               reason="Payment").credits
    before = written()
    for ids in ([theirs.pk], [mine.pk, theirs.pk]):
        with pytest.raises(PermissionDenied, match="not staff of practice"):
            refund_work_list_refund(credit_ids=ids, actor=world.clerk, reason="Refund policy run")
    with pytest.raises(PermissionDenied, match="not staff of practice"):
        refund_work_list_refund(credit_ids=[mine.pk], actor=other_manager, reason="Refund policy run")
    assert written() == before
    assert listed(other_practice) == [theirs.pk] and listed(practice) == [mine.pk]


@pytest.mark.parametrize("ids,reason,error,match", [
    ([], "Run", InvalidInput, "choose at least one credit"),
    ("12", "Run", InvalidInput, "must be a list"),
    (["x"], "Run", InvalidInput, "is not an id"),
    ([-3], "Run", InvalidInput, "is not an id"),
    ([999999], "Run", NotFound, "unknown credit 999999"),
    (None, "  ", InvalidInput, "reason is required"),
    ("twice", "Run", InvalidInput, "chosen twice"),
])
def test_bad_input_gets_a_clear_error_and_writes_nothing(world, practice, ids, reason, error, match):
    policy(practice)
    c = card_credit(world, "40.00")
    ids = [c.pk, c.pk] if ids == "twice" else [c.pk] if ids is None else ids
    before = written()
    with pytest.raises(error, match=match):
        refund_work_list_refund(credit_ids=ids, actor=world.clerk, reason=reason)
    assert written() == before


def test_a_credit_not_on_the_list_is_refused(world, practice):
    policy(practice, max_amount=D("50.00"))
    c = card_credit(world, "60.00")
    before = written()
    with pytest.raises(RuleViolation, match=f"credit {c.pk} is not on the refund work list"):
        refund_work_list_refund(credit_ids=[c.pk], actor=world.manager, reason="Refund policy run")
    assert written() == before


# --- races (real threads, each with its own connection) ----------------------------------------------

@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("round_", range(2))
def test_the_same_credit_refunded_from_the_list_twice_at_once_is_refunded_once(world, practice, round_):
    policy(practice)
    band(practice, None, "billing")
    c = card_credit(world, "40.00")
    results = race(*[lambda: refund_work_list_refund(credit_ids=[c.pk], actor=world.clerk, reason="Run")] * 2)
    assert outcomes(results) == ["ok", "refused"]
    assert "on the refund work list" in next(r[1].message for r in results if r[0] == "refused")
    assert Refund.objects.filter(credit=c).count() == 1
    c.refresh_from_db()
    assert (c.state, c.on_hand, c.refund_hold, c.refunded_amount) == ("refunded", 0, 0, D("40.00"))


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("round_", range(2))
def test_two_credits_of_one_patient_refunded_at_once_still_meet_the_four_eyes(world, practice, round_):
    """Two staff refund one credit each of the same patient at the same moment: the band is chosen
    under the patient's lock, so the second counts the first and waits for a manager."""
    policy(practice)
    band(practice, "50.00", "billing")
    band(practice, None, "billing", four_eyes=True)
    pat = world.patient()
    a, b = card_credit(world, "40.00", patient=pat), card_credit(world, "40.00", patient=pat)
    results = race(lambda: refund_work_list_refund(credit_ids=[a.pk], actor=world.clerk, reason="Run"),
                   lambda: refund_work_list_refund(credit_ids=[b.pk], actor=world.manager, reason="Run"))
    assert outcomes(results) == ["ok", "ok"]
    refunds = sorted((r.needs_approval, r.state) for r in Refund.objects.filter(patient=pat))
    assert refunds == [(False, "issued"), (True, "requested")]
