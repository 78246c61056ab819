"""Separation of duties (issue 9): what one person may do alone, per practice settings.

* refunds of one patient add up over the practice's approval window: splitting does not escape the
  threshold (issue 9 found three refunds of 100.00 on one credit approved at once, $300 out);
* manual credits above the practice's limit (added up over the window too) wait for a manager other
  than the requester, and nothing can use them before;
* an absolute maximum per money operation (a practice setting, a hard ceiling in a CHECK), refused
  with the field named by every staff and API money operation;
* one huge credit no longer makes every later change of its patient overflow the totals row;
* the refund "approved at once, so issue it now" decision is the service's (issue 10)."""

from datetime import date, datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal as D

import pytest
import time_machine
from django.db import IntegrityError, connection, transaction

from credits import core
from credits import services as credit_services
from credits.models import Credit, ManualCreditRequest, PatientResponsibility, Refund
from credits.selectors import patient_responsibility_mismatches
from ledger import journal
from ledger.errors import InvalidInput, PermissionDenied, RuleViolation
from ledger.journal import credit as cr
from ledger.journal import debit as dr
from ledger.locks import lock_patient
from ledger.models import AMOUNT_CEILING, Account, JournalEntry, Membership, Payment, Practice, SandboxCharge
from remittances.nightly import nightly_run
from tests.credits.test_invariants import check_duties, check_invariants, counts
from tests.credits.test_races import race
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def other_manager(world, name="boss2"):
    return MembershipFactory(practice=world.practice, user=UserFactory(username=name),
                             role=Membership.Role.MANAGER).user


def manual(world, pat, amount, actor=None, **kw):
    return credit_services.manual_credit_add(patient_id=pat.pk, amount=amount, reason="Carried over from the old system",
                                             actor=actor or world.clerk, **kw)


# --- refunds: the patient's refunds add up over the window -----------------------------------------------------

def test_three_refunds_of_100_on_one_credit_do_not_leave_without_a_manager(world):
    """Issue 9's finding: a clerk split $300 into three refunds of $100 (the threshold is "above
    100.00") and paid them all out by check. Now the second and third wait for a manager."""
    pat = world.patient()
    c = manual(world, pat, "300.00")
    first, second, third = (credit_services.refund_request(credit_id=c.pk, amount="100.00", actor=world.clerk,
                                                           method="check", reference=f"CHK {n}", reason="By check")
                            for n in (1, 2, 3))
    assert (first.state, first.needs_approval, first.reference) == ("issued", False, "CHK 1")
    assert [(r.state, r.needs_approval, r.reference) for r in (second, third)] == \
        [("requested", True, ""), ("requested", True, "")]
    c.refresh_from_db()
    assert (c.refunded_amount, c.refund_hold, c.on_hand) == (D("100.00"), D("200.00"), D("0.00"))
    # the clerk cannot push them through; another person who is a manager must
    with pytest.raises(PermissionDenied, match="not a manager"):
        credit_services.refund_approve(refund_id=second.pk, actor=world.clerk)
    credit_services.refund_approve(refund_id=second.pk, actor=world.manager, reason="Checked")
    assert credit_services.refund_issue(refund_id=second.pk, actor=world.clerk, reference="CHK 2").state == "issued"
    check_invariants(world.practice.pk)


def test_rejected_refunds_do_not_count_and_the_window_ends(world):
    pat = world.patient()
    c = manual(world, pat, "500.00")
    with time_machine.travel(datetime(2026, 3, 1, 15, tzinfo=dt_timezone.utc), tick=False):
        r1 = credit_services.refund_request(credit_id=c.pk, amount="90.00", actor=world.clerk, reason="Part")
        assert (r1.state, r1.needs_approval) == ("approved", False)
        r2 = credit_services.refund_request(credit_id=c.pk, amount="20.00", actor=world.clerk, reason="More")
        assert r2.needs_approval  # 90 + 20 > 100 over the window
        credit_services.refund_reject(refund_id=r2.pk, actor=world.manager, reason="Not asked by the patient")
        r3 = credit_services.refund_request(credit_id=c.pk, amount="10.00", actor=world.clerk, reason="More")
        assert not r3.needs_approval  # 90 + 10: the rejected one moved no money
    with time_machine.travel(datetime(2026, 3, 31, 14, tzinfo=dt_timezone.utc), tick=False):  # 29 days later
        assert credit_services.refund_request(credit_id=c.pk, amount="5.00", actor=world.clerk,
                                              reason="Still in the window").needs_approval
    with time_machine.travel(datetime(2026, 4, 1, 16, tzinfo=dt_timezone.utc), tick=False):  # 31 days later
        late = credit_services.refund_request(credit_id=c.pk, amount="95.00", actor=world.clerk, reason="Later")
        assert not late.needs_approval  # r1 and r3 are out of the 30-day window (the 5.00 of day 30 is in)
    check_invariants(world.practice.pk)


def test_the_window_is_a_practice_setting(world):
    Practice.objects.filter(pk=world.practice.pk).update(approval_window_days=0)
    pat = world.patient()
    c = manual(world, pat, "300.00")
    with time_machine.travel(datetime(2026, 5, 1, 15, tzinfo=dt_timezone.utc), tick=True):
        a = credit_services.refund_request(credit_id=c.pk, amount="100.00", actor=world.clerk, reason="One")
    with time_machine.travel(datetime(2026, 5, 2, 15, tzinfo=dt_timezone.utc), tick=True):
        b = credit_services.refund_request(credit_id=c.pk, amount="100.00", actor=world.clerk, reason="Two")
    assert (a.needs_approval, b.needs_approval) == (False, False)  # a window of 0 days: each alone


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("round_", range(3))
def test_concurrent_refund_requests_for_one_patient_cannot_both_escape_approval(world, round_):
    """Two clerks ask for 60.00 each at the same moment, on two credits of one patient: the patient
    lock serialises them, so the second sees the first and needs a manager (60 + 60 > 100)."""
    pat = world.patient()
    one, two = manual(world, pat, "60.00"), manual(world, pat, "60.00")
    other_clerk = MembershipFactory(practice=world.practice, user=UserFactory(username=f"clerk2-{round_}"),
                                    role=Membership.Role.BILLING).user
    results = race(
        lambda: credit_services.refund_request(credit_id=one.pk, amount="60.00", actor=world.clerk, reason="A"),
        lambda: credit_services.refund_request(credit_id=two.pk, amount="60.00", actor=other_clerk, reason="B"))
    assert [r[0] for r in results] == ["ok", "ok"]
    refunds = sorted(Refund.objects.filter(patient=pat), key=lambda r: r.pk)
    assert [r.needs_approval for r in refunds] == [False, True]
    assert [r.state for r in refunds] == ["approved", "requested"]
    check_invariants(world.practice.pk)


# --- refunds: decided and issued in the service (issue 10) ------------------------------------------------------

def test_refund_decision_is_the_services(world):
    pat = world.patient()
    card = world.pay(pat, "90.00", channel="card_reader").credits[0]
    by_card = credit_services.refund_request(credit_id=card.pk, amount="30.00", actor=world.clerk, reason="Card")
    assert (by_card.method, by_card.state, by_card.issued_by, by_card.issue_error) == \
        ("original_payment", "issued", world.clerk, "")
    assert SandboxCharge.objects.get().refunded == D("30.00")
    c = manual(world, pat, "80.00")
    with_number = credit_services.refund_request(credit_id=c.pk, amount="20.00", actor=world.clerk,
                                                 reference=" CHK 77 ", reason="Check written")
    assert (with_number.method, with_number.state, with_number.reference) == ("check", "issued", "CHK 77")
    without = credit_services.refund_request(credit_id=c.pk, amount="10.00", actor=world.clerk, reason="Later")
    assert (without.state, without.reference) == ("approved", "")  # waits for its check number
    waiting = credit_services.refund_request(credit_id=c.pk, amount="50.00", actor=world.clerk, reference="CHK 78",
                                             reason="Over the threshold with the others")
    assert (waiting.state, waiting.reference) == ("requested", "")  # a manager first; the number is given at issue
    history = [h.history_change_reason for h in with_number.history.order_by("history_id")]
    assert history == ["Check written", "Check written"]  # asked (approved at once), then issued
    check_invariants(world.practice.pk)


def test_processor_refusal_at_once_leaves_the_refund_approved_and_says_why(world):
    pat = world.patient()
    card = world.pay(pat, "70.00", channel="card_reader").credits[0]
    # the charge was refunded at the terminal, outside settle: the processor refuses the refund
    SandboxCharge.objects.filter(reference=card.payment.processor_reference).update(refunded=D("70.00"))
    before = JournalEntry.objects.count()
    r = credit_services.refund_request(credit_id=card.pk, amount="40.00", actor=world.clerk, reason="Card")
    assert (r.state, r.method) == ("approved", "original_payment")
    assert "exceeds what is left of charge" in r.issue_error and "check or ACH" in r.issue_error
    card.refresh_from_db()
    assert (card.on_hand, card.refund_hold, card.refunded_amount) == (D("30.00"), D("40.00"), D("0.00"))
    assert JournalEntry.objects.count() == before  # nothing booked
    check_invariants(world.practice.pk)


def test_a_patient_asking_in_the_portal_gets_the_same_decision(world):
    """The coming portal calls the same service: a patient's own refund below the threshold goes
    back to their card at once; a check number is staff's to record."""
    from django.contrib.auth import get_user_model

    person = get_user_model().objects.create(username="ana-portal")
    pat = world.patient(user=person)
    card = world.pay(pat, "50.00", channel="portal").credits[0]
    with pytest.raises(PermissionDenied):
        credit_services.refund_request(credit_id=card.pk, amount="10.00", actor=person, method="check",
                                       reference="CHK 1", reason="Please")
    r = credit_services.refund_request(credit_id=card.pk, amount="10.00", actor=person, reason="Please refund")
    assert (r.state, r.requested_by, r.issued_by) == ("issued", person, person)


# --- manual credits: above the limit they wait --------------------------------------------------------------------

def test_manual_credit_within_the_limit_is_created_at_once_with_its_request(world):
    pat = world.patient()
    c = manual(world, pat, "1000.00")  # "above 1,000.00" waits: exactly the limit does not
    assert isinstance(c, Credit) and (c.state, c.source, c.on_hand) == ("available", "manual", D("1000.00"))
    req = c.manual_request
    assert (req.state, req.needs_approval, req.requested_by, req.decided_by, req.decision_note) == \
        ("approved", False, world.clerk, world.clerk, "within the practice's limit")
    check_duties(world.practice.pk)


def test_manual_credit_above_the_limit_waits_and_nothing_can_use_it(world):
    pat = world.patient()
    enc, _ = world.visit(pat, date(2026, 2, 2), estimated_pr="50.00", claim=False)
    before = counts()
    req = manual(world, pat, "2500.00")
    assert isinstance(req, ManualCreditRequest)
    assert (req.state, req.needs_approval, req.credit_id, req.amount) == ("pending", True, None, D("2500.00"))
    assert not Credit.objects.filter(patient=pat).exists()
    assert JournalEntry.objects.count() == before[0]  # no money booked
    # nothing sees it: the nightly run, checkout, a refund
    assert credit_services.credits_apply(patient_id=pat.pk, actor=world.clerk).total == 0
    run = nightly_run(practice_id=world.practice.pk)
    assert run.application_count == 0
    assert credit_services.credits_preselect(patient_id=pat.pk, encounter_ids=[enc.pk]) == {}
    assert PatientResponsibility.objects.get(patient=pat).available == 0

    with pytest.raises(PermissionDenied, match="not a manager"):
        credit_services.manual_credit_approve(request_id=req.pk, actor=world.clerk)
    boss2 = other_manager(world)
    req = credit_services.manual_credit_approve(request_id=req.pk, actor=boss2, reason="Conversion report p. 4")
    c = req.credit
    assert (req.state, req.decided_by, req.decision_note) == ("approved", boss2, "Conversion report p. 4")
    assert (c.state, c.on_hand, c.source) == ("available", D("2500.00"), "manual")
    assert "asked by clerk, approved by boss2" in c.history.get().history_change_reason
    steps = [(h.history_user.username, h.state, h.history_change_reason) for h in req.history.order_by("history_id")]
    assert steps == [("clerk", "pending", "Manual credit requested: Carried over from the old system"),
                     ("boss2", "approved", "Approved: Conversion report p. 4")]
    assert all(h.history_date for h in req.history.all())
    assert credit_services.credits_apply(patient_id=pat.pk, actor=world.clerk).total == D("50.00")
    check_invariants(world.practice.pk)
    check_duties(world.practice.pk)


def test_splitting_manual_credits_does_not_escape_the_limit(world):
    pat, other = world.patient(), world.patient()
    assert isinstance(manual(world, pat, "600.00"), Credit)
    second = manual(world, pat, "600.00")  # 1,200 over the window for this patient
    assert isinstance(second, ManualCreditRequest) and second.state == "pending"
    assert isinstance(manual(world, other, "600.00"), Credit)  # another patient has their own window
    # a rejected request does not count; the window ends
    credit_services.manual_credit_reject(request_id=second.pk, actor=world.manager, reason="Duplicate of the first")
    assert isinstance(manual(world, pat, "400.00"), Credit)
    with time_machine.travel(datetime.now(dt_timezone.utc) + timedelta(days=31), tick=False):
        assert isinstance(manual(world, pat, "900.00"), Credit)  # the window has passed
    check_duties(world.practice.pk)


def test_manual_credit_decisions_need_another_manager(world):
    pat = world.patient()
    mine = manual(world, pat, "5000.00", actor=world.manager)
    assert mine.state == "pending"  # a manager's own manual credit waits too
    for fn in (credit_services.manual_credit_approve, credit_services.manual_credit_reject):
        with pytest.raises(PermissionDenied, match="own manual credit"):
            fn(request_id=mine.pk, actor=world.manager, reason="mine")
        with pytest.raises(PermissionDenied, match="not a manager"):
            fn(request_id=mine.pk, actor=world.clerk, reason="clerk")
    boss2 = other_manager(world)
    credit_services.manual_credit_reject(request_id=mine.pk, actor=boss2, reason="No proof of the old balance")
    mine.refresh_from_db()
    assert (mine.state, mine.credit_id, mine.decided_by) == ("rejected", None, boss2)
    with pytest.raises(RuleViolation, match="rejected"):
        credit_services.manual_credit_approve(request_id=mine.pk, actor=boss2)
    # the database keeps four eyes too
    with pytest.raises(IntegrityError, match="manual_request_four_eyes"), transaction.atomic():
        ManualCreditRequest.objects.filter(pk=mine.pk).update(decided_by=world.manager)
    check_duties(world.practice.pk)


def test_another_practice_cannot_decide(world):
    pat = world.patient()
    req = manual(world, pat, "5000.00")
    stranger = MembershipFactory(user=UserFactory(username="elsewhere"), role=Membership.Role.MANAGER).user
    with pytest.raises(PermissionDenied, match="not staff"):
        credit_services.manual_credit_approve(request_id=req.pk, actor=stranger)


# --- the maximum per operation ----------------------------------------------------------------------------------

OVER = "100000.01"  # the default maximum is 100,000.00


def _max_cases(world, pat):
    card = world.pay(pat, "40.00", channel="card_reader").credits[0]
    enc, claim = world.visit(pat, date(2026, 1, 5))
    self_pay, _ = world.visit(pat, date(2026, 1, 6), charge="300000.00", estimated_pr="200000.00", claim=False)
    return {
        "payment": (lambda: credit_services.payment_record(patient_id=pat.pk, amount=OVER, channel="cash",
                                                           actor=world.clerk), "amount"),
        "checkout": (lambda: credit_services.payment_checkout(patient_id=pat.pk, encounter_ids=[self_pay.pk],
                                                              credit_amounts={}, channel="cash", actor=world.clerk),
                     "amount"),
        "purchase": (lambda: credit_services.credit_purchase(patient_id=pat.pk, amount=OVER, channel="cash",
                                                             actor=world.clerk), "amount"),
        "manual credit": (lambda: manual(world, pat, OVER), "amount"),
        "refund": (lambda: credit_services.refund_request(credit_id=card.pk, amount=OVER, actor=world.clerk,
                                                          reason="x"), "amount"),
        "write-off": (lambda: credit_services.writeoff_create(encounter_id=self_pay.pk, amount=OVER,
                                                              reason_code="bad_debt", reason="x", actor=world.manager),
                      "amount"),
        "claim result": (lambda: credit_services.claim_record_result(claim_id=claim.pk, outcome="paid",
                                                                     paid_amount=OVER, actor=world.clerk,
                                                                     reason="entered by hand"), "paid_amount"),
        "take-back": (lambda: credit_services.claim_record_result(claim_id=claim.pk, outcome="paid",
                                                                  paid_amount="-" + OVER, actor=world.clerk,
                                                                  reason="entered by hand"), "paid_amount"),
    }


@pytest.mark.parametrize("operation", ["payment", "checkout", "purchase", "manual credit", "refund", "write-off",
                                       "claim result", "take-back"])
def test_every_money_operation_refuses_more_than_the_maximum(world, operation):
    pat = world.patient()
    fn, field = _max_cases(world, pat)[operation]
    before = counts()
    with pytest.raises(InvalidInput) as exc:
        fn()
    assert exc.value.field == field and exc.value.code == "above_maximum"
    assert "100,000.00 one operation may move" in exc.value.message
    assert counts() == before


def test_the_maximum_is_a_practice_setting_capped_by_the_database(world):
    pat = world.patient()
    Practice.objects.filter(pk=world.practice.pk).update(max_operation_amount=D("50.00"))
    with pytest.raises(InvalidInput, match="50.00 one operation may move"):
        credit_services.payment_record(patient_id=pat.pk, amount="50.01", channel="cash", actor=world.clerk)
    assert credit_services.payment_record(patient_id=pat.pk, amount="50.00", channel="cash",
                                          actor=world.clerk).payment.amount == D("50.00")
    with pytest.raises(IntegrityError, match="practice_max_operation_amount_range"), transaction.atomic():
        Practice.objects.filter(pk=world.practice.pk).update(max_operation_amount=AMOUNT_CEILING + D("0.01"))
    # the ceiling holds even for code that skips the service
    with pytest.raises(IntegrityError, match="credit_amount_ceiling"), transaction.atomic():
        core.new_credit(patient=lock_patient(pat.pk), source=Credit.Source.MANUAL, amount=AMOUNT_CEILING + 1,
                        actor=world.clerk, reason="bypassing the service")
    with pytest.raises(IntegrityError, match="payment_amount_ceiling"), transaction.atomic():
        Payment.objects.create(practice=world.practice, patient=pat, amount=AMOUNT_CEILING + 1, channel="cash",
                               created_by=world.clerk)


# --- the totals cannot overflow (issue 9: "A value is out of range" on every later payment) ------------------------

def test_one_huge_credit_no_longer_blocks_the_patients_later_payments(world):
    """Reproduced: a credit of 999,999,999,999.99 (the most NUMERIC(14,2) holds) put the patient's
    available total (credits_patientresponsibility, kept by triggers) at the column's limit, so the
    next credit of that patient (here: a payment with nothing owed) overflowed it: DataError,
    "numeric field overflow", on every later payment. The per-operation maximum keeps such a credit
    out; one written before (a database of the previous release) no longer blocks: the totals are
    NUMERIC(20,2)."""
    pat = world.patient()
    with connection.cursor() as cur:  # the credit of the report, written as the previous release allowed
        cur.execute("ALTER TABLE credits_credit DROP CONSTRAINT credit_amount_ceiling")
    with transaction.atomic():
        huge = core.new_credit(patient=lock_patient(pat.pk), source=Credit.Source.MANUAL,
                               amount=D("999999999999.99"), actor=world.clerk, reason="legacy row")
        journal.post(practice_id=pat.practice_id, kind=JournalEntry.Kind.MANUAL_CREDIT, memo="legacy",
                     actor=world.clerk, patient=pat,
                     lines=[dr(Account.CREDIT_ADJUSTMENTS, huge.amount, patient=pat),
                            cr(Account.CREDITS_AVAILABLE, huge.amount, **core.credit_dims(huge))])
    result = world.pay(pat, "10.00", channel="cash")  # nothing owed: all of it becomes a credit
    assert [c.amount for c in result.credits] == [D("10.00")]
    assert PatientResponsibility.objects.get(patient=pat).available == D("1000000000009.99")
    assert patient_responsibility_mismatches() == []


# --- the managers' queue in the admin --------------------------------------------------------------------------

def test_the_admin_queue_of_manual_credits_and_its_decisions(client, world):
    from django.contrib.messages import get_messages
    from django.urls import reverse

    pat = world.patient(last_name="Avila")
    client.force_login(world.clerk)
    response = client.post(reverse("admin:ledger_patient_credit_add", args=[pat.pk]),
                           {"amount": "2500.00", "encounter": "", "note": "Old system: surgery deposit"})
    assert response.status_code == 302
    assert "waits for a manager's approval; nothing is credited until then" in \
        [str(m) for m in get_messages(response.wsgi_request)][0]
    req = ManualCreditRequest.objects.get()
    assert not Credit.objects.exists()
    index = client.get(reverse("admin:index")).content.decode()
    assert "Manual credits awaiting approval" in index
    queue = client.get(reverse("admin:credits_manualcreditrequest_changelist"))
    assert list(queue.context["cl"].result_list) == [req]
    assert "approve_selected" not in queue.context["cl"].model_admin.get_actions(queue.wsgi_request)  # billing

    outsider = MembershipFactory(user=UserFactory(username="outsider"), role=Membership.Role.MANAGER).user
    client.force_login(outsider)
    assert list(client.get(reverse("admin:credits_manualcreditrequest_changelist")).context["cl"].result_list) == []

    client.force_login(world.manager)
    done = client.post(reverse("admin:credits_manualcreditrequest_changelist"),
                       {"action": "approve_selected", "_selected_action": [req.pk], "confirm": "yes",
                        "reason": "Deposit confirmed"})
    assert done.status_code == 302
    req.refresh_from_db()
    assert (req.state, req.decided_by, req.decision_note) == ("approved", world.manager, "Deposit confirmed")
    assert Credit.objects.get().amount == D("2500.00")
    assert list(client.get(reverse("admin:credits_manualcreditrequest_changelist")).context["cl"].result_list) == []
    shown = client.get(reverse("admin:credits_manualcreditrequest_changelist"), {"state": "all"})
    assert list(shown.context["cl"].result_list) == [req]

    # a manager's own request: the action reports the refusal, nothing is credited
    mine = manual(world, pat, "3000.00", actor=world.manager)
    done = client.post(reverse("admin:credits_manualcreditrequest_changelist"),
                       {"action": "approve_selected", "_selected_action": [mine.pk], "confirm": "yes", "reason": ""})
    messages = [str(m) for m in client.get(done.url).context["messages"]]
    assert any(f"#{mine.pk}:" in m and "own manual credit" in m for m in messages)
    mine.refresh_from_db()
    assert mine.state == "pending" and Credit.objects.count() == 1
