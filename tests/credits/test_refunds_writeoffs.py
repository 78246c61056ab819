"""Refunds (rules 8 and 12), write-offs (rule 11), moving and unlocking credits (rules 5 and 10)
and payer credits (rule 13), through the real services, with exact amounts."""

from collections import defaultdict
from datetime import date, datetime
from datetime import timezone as dt_timezone
from decimal import Decimal as D

import pytest
import time_machine
from django.db.models import Sum

from credits import services as credit_services
from credits.models import Credit, PayerCredit, WriteOff
from credits.selectors import credit_liability, patient_owes
from ledger.errors import RuleViolation
from ledger.models import Account, JournalEntry, JournalLine, Payment, SandboxCharge, SandboxRefund
from tests.credits.test_invariants import check_invariants

pytestmark = pytest.mark.django_db


CREDIT_ACCOUNTS = (Account.CREDITS_AVAILABLE, Account.CREDITS_LOCKED)


def balances(**filters) -> dict:
    """Ledger balance per account (optionally for one patient / encounter)."""
    out = defaultdict(lambda: D("0"))
    for row in JournalLine.objects.filter(**filters).values("account").annotate(s=Sum("amount")):
        out[row["account"]] = row["s"]
    return {k: v for k, v in out.items() if v != 0}


def card_credit(world, pat, amount, channel="card_reader"):
    """A payment through the system with nothing owed: all of it is an available credit."""
    (c,) = world.pay(pat, amount, channel=channel).credits
    assert (c.state, c.on_hand, c.payment.channel) == ("available", D(amount), channel)
    return c


def buckets(c):
    c.refresh_from_db()
    return c.state, c.on_hand, c.refund_hold, c.applied_amount, c.refunded_amount, c.removed_amount


# --- refund approval ---------------------------------------------------------------------------------

@pytest.mark.parametrize("amount,needs_approval", [("40.00", False), ("100.00", False), ("100.01", True)])
def test_refunds_up_to_the_threshold_are_approved_and_issued_to_the_card_at_once(world, amount, needs_approval):
    """The service decides (issue 10): below the threshold a refund to the original payment is
    approved and paid back through the processor in the same call; above it, it waits."""
    pat = world.patient()
    c = card_credit(world, pat, "150.00")
    r = credit_services.refund_request(credit_id=c.pk, amount=amount, actor=world.clerk, reason="Patient asked")
    assert (r.needs_approval, r.method, r.payment_id) == (needs_approval, "original_payment", c.payment_id)
    if needs_approval:
        assert (r.state, r.decided_by) == ("requested", None)
        # the amount is held on the credit until the refund is issued or rejected; the ledger is untouched
        assert buckets(c) == ("available", D("150.00") - D(amount), D(amount), 0, 0, 0)
        assert credit_liability(pat.pk) == D("150.00")
        assert not SandboxRefund.objects.exists()
    else:
        assert (r.state, r.decided_by, r.decision_note, r.issued_by, r.issue_error) == \
            ("issued", world.clerk, "below the approval threshold", world.clerk, "")
        assert r.reference.startswith("sbx_re_") and SandboxRefund.objects.get().reference == r.reference
        assert buckets(c) == ("available", D("150.00") - D(amount), 0, 0, D(amount), 0)
        assert credit_liability(pat.pk) == D("150.00") - D(amount)
    check_invariants(world.practice.pk)


def test_refund_above_threshold_is_approved_by_another_manager_then_issued_to_the_card(world):
    pat = world.patient()
    c = card_credit(world, pat, "250.00")
    r = credit_services.refund_request(credit_id=c.pk, amount="180.00", actor=world.clerk, reason="Moving away")
    assert (r.state, r.needs_approval) == ("requested", True)
    with pytest.raises(RuleViolation, match="only approved refunds are issued"):
        credit_services.refund_issue(refund_id=r.pk, actor=world.clerk)

    r = credit_services.refund_approve(refund_id=r.pk, actor=world.manager, reason="Verified with the patient")
    assert (r.state, r.decided_by, r.decision_note) == ("approved", world.manager, "Verified with the patient")
    entries_before = JournalEntry.objects.count()
    r = credit_services.refund_issue(refund_id=r.pk, actor=world.clerk)

    assert (r.state, r.issued_by) == ("issued", world.clerk) and r.reference.startswith("sbx_re_")
    assert buckets(c) == ("available", D("70.00"), 0, 0, D("180.00"), 0)
    c.payment.refresh_from_db()
    assert c.payment.refunded_amount == D("180.00")
    charge = SandboxCharge.objects.get(reference=c.payment.processor_reference)
    assert (charge.amount, charge.refunded) == (D("250.00"), D("180.00"))
    assert SandboxRefund.objects.get(charge=charge).reference == r.reference
    # one balanced entry: liability down, cash out
    entry = JournalEntry.objects.get(pk__gt=0, kind=JournalEntry.Kind.REFUND)
    assert JournalEntry.objects.count() == entries_before + 1
    assert sorted((ln.account, ln.amount) for ln in entry.lines.all()) == \
        [(Account.CASH, D("-180.00")), (Account.CREDITS_AVAILABLE, D("180.00"))]
    assert credit_liability(pat.pk) == D("70.00")
    assert [h.history_change_reason for h in r.history.order_by("history_id")][-1] == "Moving away"
    check_invariants(world.practice.pk)


def test_issuing_twice_refunds_the_card_once(world):
    pat = world.patient()
    c = card_credit(world, pat, "60.00")
    r = credit_services.refund_request(credit_id=c.pk, amount="60.00", actor=world.clerk, reason="Refund")
    assert r.state == "issued"  # at once, below the threshold
    for _ in range(2):
        with pytest.raises(RuleViolation, match="issued"):
            credit_services.refund_issue(refund_id=r.pk, actor=world.clerk)
    assert SandboxCharge.objects.get().refunded == D("60.00")
    assert buckets(c) == ("refunded", 0, 0, 0, D("60.00"), 0)
    check_invariants(world.practice.pk)


@pytest.mark.parametrize("state", ["requested", "approved"])
def test_rejecting_returns_the_hold_to_on_hand(world, state):
    pat = world.patient()
    c = card_credit(world, pat, "300.00")
    amount = "250.00" if state == "requested" else "90.00"
    # by check without its number: approved (below the threshold), waiting to be paid out
    r = credit_services.refund_request(credit_id=c.pk, amount=amount, actor=world.clerk, reason="Refund",
                                       method="check")
    assert r.state == state
    lines_before = JournalLine.objects.count()
    r = credit_services.refund_reject(refund_id=r.pk, actor=world.manager, reason="Patient prefers to keep a credit")
    assert (r.state, r.decided_by, r.decision_note) == ("rejected", world.manager, "Patient prefers to keep a credit")
    assert buckets(c) == ("available", D("300.00"), 0, 0, 0, 0)
    assert JournalLine.objects.count() == lines_before  # nothing was booked, nothing to reverse
    last = c.history.latest()
    assert (last.history_user, last.history_change_reason) == \
        (world.manager, f"Refund {r.pk} rejected: Patient prefers to keep a credit")
    # the whole credit is usable again: a new refund of all of it goes through
    r2 = credit_services.refund_request(credit_id=c.pk, amount="300.00", actor=world.clerk, reason="After all")
    credit_services.refund_approve(refund_id=r2.pk, actor=world.manager)
    assert credit_services.refund_issue(refund_id=r2.pk, actor=world.clerk).method == "original_payment"
    assert buckets(c) == ("refunded", 0, 0, 0, D("300.00"), 0)
    check_invariants(world.practice.pk)


# --- partial refunds, no phantom balance or credit ----------------------------------------------

def test_partial_refund_leaves_the_rest_usable(world):
    pat = world.patient()
    c = card_credit(world, pat, "80.00", channel="portal")
    r = credit_services.refund_request(credit_id=c.pk, amount="30.00", actor=world.clerk, reason="Part back")
    assert r.state == "issued"
    assert buckets(c) == ("available", D("50.00"), 0, 0, D("30.00"), 0)

    enc, claim = world.visit(pat, date(2026, 2, 2))
    world.remit(claim, pr="65.00", paid="100.00")
    result = credit_services.credits_apply(patient_id=pat.pk, actor=world.clerk, reason="Nightly")
    assert result.total == D("50.00")
    assert buckets(c) == ("applied", 0, 0, D("50.00"), D("30.00"), 0)
    enc.refresh_from_db()
    assert (enc.applied_amount, enc.balance) == (D("50.00"), D("15.00"))
    assert credit_liability(pat.pk) == 0
    check_invariants(world.practice.pk)


def test_refund_settles_everything_at_once(world):
    """Rule 12: after the refund the patient owes nothing, holds nothing, and nothing reappears."""
    pat = world.patient()
    enc, claim = world.visit(pat, date(2026, 4, 10))
    world.remit(claim, pr="120.00", paid="60.00")
    world.pay(pat, "120.00", encounter=enc, channel="portal")
    world.remit(claim, pr="70.00", paid="50.00", adjust="0.00", reason="Corrected remittance")
    (over,) = Credit.objects.filter(patient=pat)
    r = credit_services.refund_request(credit_id=over.pk, amount="50.00", actor=world.clerk, reason="Overpaid")
    assert r.state == "issued"

    enc.refresh_from_db()
    assert enc.balance == 0
    owes = patient_owes(pat.pk)
    assert (owes.due_now, owes.pending_payer, owes.available, owes.locked_held, owes.refund_hold) == (0,) * 5
    assert credit_liability(pat.pk) == 0
    assert balances(encounter=enc).get(Account.PATIENT_RECEIVABLE, D("0")) == 0
    for _ in range(2):  # nothing comes back on later runs
        assert credit_services.credits_apply(patient_id=pat.pk, actor=world.clerk).total == 0
        assert credit_services.credits_release_balanced(patient_id=pat.pk, actor=world.clerk) == 0
    assert buckets(over) == ("refunded", 0, 0, 0, D("50.00"), 0)
    check_invariants(world.practice.pk)


def test_locked_credit_is_refundable_once_unlocked(world):
    pat = world.patient()
    enc, _ = world.visit(pat, date(2026, 3, 3))
    (held,) = world.pay(pat, "50.00", encounter=enc).credits
    with pytest.raises(RuleViolation, match="unlock it before refunding"):
        credit_services.refund_request(credit_id=held.pk, amount="50.00", actor=world.clerk, reason="Refund")
    assert credit_services.credits_unlock(credit_ids=[held.pk], actor=world.clerk, reason="Payer never answers") == 1
    r = credit_services.refund_request(credit_id=held.pk, amount="50.00", actor=world.clerk, reason="Refund")
    assert r.state == "issued"
    assert buckets(held) == ("refunded", 0, 0, 0, D("50.00"), 0)
    check_invariants(world.practice.pk)


# --- card refund window, fallback to check -------------------------------------------------------------

def test_past_the_card_window_the_refund_falls_back_to_a_check(world):
    pat = world.patient()
    with time_machine.travel(datetime(2025, 1, 2, 15, tzinfo=dt_timezone.utc), tick=False):
        c = card_credit(world, pat, "90.00")
        in_time = credit_services.refund_request(credit_id=c.pk, amount="10.00", actor=world.clerk, reason="In time")
        assert (in_time.method, in_time.state) == ("original_payment", "issued")
    with time_machine.travel(datetime(2025, 6, 30, 15, tzinfo=dt_timezone.utc), tick=False):  # day 179: still open
        r = credit_services.refund_request(credit_id=c.pk, amount="20.00", actor=world.clerk, reason="Still in time")
        assert (r.method, r.state) == ("original_payment", "issued")
    with time_machine.travel(datetime(2025, 7, 2, 15, tzinfo=dt_timezone.utc), tick=False):  # day 181
        late = credit_services.refund_request(credit_id=c.pk, amount="60.00", actor=world.clerk, reason="Late")
        assert (late.method, late.payment_id, late.state) == ("check", None, "approved")
        late = credit_services.refund_issue(refund_id=late.pk, actor=world.clerk, reference="CHK 9001")
    assert (late.state, late.reference) == ("issued", "CHK 9001")
    assert buckets(c) == ("refunded", 0, 0, 0, D("90.00"), 0)
    c.payment.refresh_from_db()
    assert c.payment.refunded_amount == D("30.00")  # only what went back to the card
    assert SandboxCharge.objects.get().refunded == D("30.00")
    check_invariants(world.practice.pk)


def test_refunds_to_the_card_never_exceed_what_is_left_of_the_payment(world):
    pat = world.patient()
    c = card_credit(world, pat, "250.00")
    first = credit_services.refund_request(credit_id=c.pk, amount="180.00", actor=world.clerk, reason="First part")
    assert (first.method, first.state) == ("original_payment", "requested")
    credit_services.refund_approve(refund_id=first.pk, actor=world.manager, reason="ok")  # approved, not paid yet
    # the 180.00 waiting to go back to the card counts against the payment: 70.00 is left for the card
    rest = credit_services.refund_request(credit_id=c.pk, amount="70.00", actor=world.clerk, reason="The rest")
    assert (rest.method, rest.state) == ("original_payment", "requested")  # 180 + 70 over the window: a manager
    credit_services.refund_reject(refund_id=rest.pk, actor=world.manager, reason="Patient wants a check instead")
    by_check = credit_services.refund_request(credit_id=c.pk, amount="70.00", method="check", actor=world.clerk,
                                              reason="The rest by check")
    credit_services.refund_approve(refund_id=by_check.pk, actor=world.manager, reason="ok")
    for r in (first, by_check):
        credit_services.refund_issue(refund_id=r.pk, actor=world.clerk, reference=f"CHK {r.pk}")
    c.payment.refresh_from_db()
    assert (c.payment.refunded_amount, SandboxCharge.objects.get().refunded) == (D("180.00"), D("180.00"))
    assert buckets(c) == ("refunded", 0, 0, 0, D("250.00"), 0)
    check_invariants(world.practice.pk)


def test_beyond_what_is_left_on_the_card_the_refund_falls_back_to_a_check(world):
    pat = world.patient()
    c = card_credit(world, pat, "100.00")
    # The services never let a payment's credits exceed what is left of it; this state stands for
    # a refund recorded on the payment elsewhere. Without a method, the request must not go to the card.
    Payment.objects.filter(pk=c.payment_id).update(refunded_amount=D("80.00"))
    r = credit_services.refund_request(credit_id=c.pk, amount="30.00", actor=world.clerk, reason="Refund")
    assert (r.method, r.payment_id) == ("check", None)
    fits = credit_services.refund_request(credit_id=c.pk, amount="20.00", actor=world.clerk, reason="Refund")
    assert (fits.method, fits.payment_id) == ("original_payment", c.payment_id)


def test_a_credit_from_cash_or_without_payment_is_refunded_by_check(world):
    pat = world.patient()
    (cash,) = world.pay(pat, "40.00", channel="cash").credits
    manual = credit_services.manual_credit_add(patient_id=pat.pk, amount="25.00", reason="old system",
                                               actor=world.clerk)
    for c in (cash, manual):
        r = credit_services.refund_request(credit_id=c.pk, amount=c.amount, actor=world.clerk, reason="Refund")
        assert (r.method, r.payment_id) == ("check", None)
        credit_services.refund_issue(refund_id=r.pk, actor=world.clerk, reference="CHK 42")
        assert buckets(c)[0] == "refunded"
    assert not SandboxCharge.objects.exists()
    check_invariants(world.practice.pk)


# --- write-offs ------------------------------------------------------------------------------------------

def test_writeoff_and_undo_return_the_books_to_where_they_were(world):
    pat = world.patient()
    enc, claim = world.visit(pat, date(2026, 1, 5))
    world.remit(claim, pr="38.00", paid="120.00")
    world.pay(pat, "30.00", encounter=enc, channel="cash")
    enc.refresh_from_db()
    assert enc.balance == D("8.00")
    before_all, before_enc = balances(), balances(encounter=enc)

    wo = credit_services.writeoff_create(encounter_id=enc.pk, amount="8.00", reason_code="small_balance",
                                         reason="Under ten dollars", actor=world.clerk, as_of=date(2026, 3, 1))
    enc.refresh_from_db()
    assert (enc.written_off_amount, enc.balance) == (D("8.00"), D("0.00"))
    assert balances(encounter=enc).get(Account.PATIENT_RECEIVABLE, D("0")) == 0
    assert balances()[Account.WRITE_OFFS] == D("8.00")
    check_invariants(world.practice.pk)

    wo = credit_services.writeoff_undo(writeoff_id=wo.pk, actor=world.manager, reason="Patient will pay")
    assert (wo.state, wo.undone_by, wo.undo_reason) == ("undone", world.manager, "Patient will pay")
    enc.refresh_from_db()
    assert (enc.written_off_amount, enc.balance) == (D("0.00"), D("8.00"))
    assert balances() == before_all and balances(encounter=enc) == before_enc
    kinds = list(JournalEntry.objects.order_by("pk").values_list("kind", flat=True))[-2:]
    assert kinds == [JournalEntry.Kind.WRITE_OFF, JournalEntry.Kind.WRITE_OFF_UNDO]  # reversed, not erased
    check_invariants(world.practice.pk)


def test_writeoff_that_balances_a_dos_releases_its_locked_credits(world):
    pat = world.patient()
    enc, claim = world.visit(pat, date(2026, 1, 5))
    world.remit(claim, pr="45.00", paid="100.00")
    world.pay(pat, "40.00", encounter=enc, channel="cash")
    moved = credit_services.manual_credit_add(patient_id=pat.pk, amount="15.00", reason="old", actor=world.clerk,
                                              encounter_id=enc.pk)
    assert moved.state == "locked"
    credit_services.writeoff_create(encounter_id=enc.pk, amount="5.00", reason_code="small_balance", reason="Small",
                                    actor=world.clerk, as_of=date(2026, 3, 1))
    assert buckets(moved) == ("available", D("15.00"), 0, 0, 0, 0)
    check_invariants(world.practice.pk)


def test_a_lower_pr_gives_way_through_the_writeoff(world):
    pat = world.patient()
    enc, claim = world.visit(pat, date(2026, 1, 5))
    world.remit(claim, pr="30.00", paid="100.00")
    credit_services.writeoff_create(encounter_id=enc.pk, amount="10.00", reason_code="hardship", reason="Hardship",
                                    actor=world.clerk, as_of=date(2026, 3, 1))
    claim.refresh_from_db()
    world.remit(claim, pr="5.00", paid="25.00", adjust="0.00", reason="Corrected remittance")
    enc.refresh_from_db()
    wo = WriteOff.objects.get(encounter=enc)
    assert wo.state == "undone" and "PR lowered below write-off" in wo.undo_reason
    assert (enc.remittance_pr, enc.written_off_amount, enc.balance) == (D("5.00"), D("0.00"), D("5.00"))
    assert not Credit.objects.filter(patient=pat).exists()  # no patient money was involved
    check_invariants(world.practice.pk)


# --- moving and unlocking credits ------------------------------------------------------------------------

def test_move_between_dates_and_to_the_pool_keeps_the_origin_and_the_reason(world):
    pat = world.patient()
    mar, _ = world.visit(pat, date(2026, 3, 3))
    apr, _ = world.visit(pat, date(2026, 4, 4))
    (c,) = world.pay(pat, "50.00", encounter=mar, channel="portal").credits
    assert (c.state, c.locked_encounter_id, c.origin_encounter_id, c.source) == \
        ("locked", mar.pk, mar.pk, Credit.Source.HELD_PAYMENT)

    c = credit_services.credit_move(credit_id=c.pk, to_encounter_id=apr.pk, actor=world.clerk,
                                    reason="Patient asked to hold it for the April visit")
    last = c.history.latest()
    assert (last.history_user, last.history_change_reason) == \
        (world.clerk, "Patient asked to hold it for the April visit")
    assert (c.state, c.locked_encounter_id, c.origin_encounter_id, c.source, c.payment.channel) == \
        ("locked", apr.pk, mar.pk, Credit.Source.HELD_PAYMENT, "portal")
    assert balances(credit=c) == {Account.CREDITS_LOCKED: D("-50.00")}

    c = credit_services.credit_move(credit_id=c.pk, to_encounter_id=None, actor=world.manager,
                                    reason="Flexible, patient's choice")
    last = c.history.latest()
    assert (last.history_user, last.history_change_reason) == (world.manager, "Flexible, patient's choice")
    assert (c.state, c.locked_encounter_id, c.origin_encounter_id) == ("available", None, mar.pk)
    assert balances(credit=c) == {Account.CREDITS_AVAILABLE: D("-50.00")}

    c = credit_services.credit_move(credit_id=c.pk, to_encounter_id=mar.pk, actor=world.clerk, reason="Back")
    assert (c.state, c.locked_encounter_id) == ("locked", mar.pk)
    moves = JournalEntry.objects.filter(kind=JournalEntry.Kind.MOVE).order_by("pk")
    assert [e.memo for e in moves] == ["Patient asked to hold it for the April visit", "Flexible, patient's choice",
                                       "Back"]
    assert credit_liability(pat.pk) == D("50.00")
    check_invariants(world.practice.pk)


def test_bulk_unlock_of_selected_patients_writes_who_and_why(world):
    ann, bob, cat = world.patient(), world.patient(), world.patient()
    locked = {}
    for p, amounts in ((ann, ["20.00", "35.00"]), (bob, ["12.00"]), (cat, ["44.00"])):
        locked[p.pk] = []
        for i, amount in enumerate(amounts):
            enc, _ = world.visit(p, date(2026, 5, 1 + i))
            locked[p.pk] += world.pay(p, amount, encounter=enc).credits
    assert all(c.state == "locked" for cs in locked.values() for c in cs)

    n = credit_services.credits_unlock(patient_ids=[ann.pk, bob.pk], actor=world.manager,
                                       reason="Payer will never answer")
    assert n == 3
    for p in (ann, bob):
        for c in locked[p.pk]:
            c.refresh_from_db()
            last = c.history.latest()
            assert (c.state, c.locked_encounter_id) == ("available", None)
            assert (last.history_user, last.history_change_reason) == \
                (world.manager, "Manual unlock: Payer will never answer")
    (cats,) = locked[cat.pk]
    assert buckets(cats)[0] == "locked"
    assert patient_owes(ann.pk).available == D("55.00") and patient_owes(cat.pk).locked_held == D("44.00")
    unlocks = JournalEntry.objects.filter(kind=JournalEntry.Kind.UNLOCK)
    assert sorted(e.patient_id for e in unlocks) == sorted([ann.pk, bob.pk])
    assert {k: v for k, v in balances(patient=ann).items() if k in CREDIT_ACCOUNTS} == \
        {Account.CREDITS_AVAILABLE: D("-55.00")}
    # again: nothing left to unlock
    assert credit_services.credits_unlock(patient_ids=[ann.pk, bob.pk], actor=world.manager, reason="again") == 0
    check_invariants(world.practice.pk)


# --- payer credits ---------------------------------------------------------------------------------------

def test_payer_credit_open_partial_recoup_then_refund_check_closes_it(world):
    pat = world.patient()
    _, claim = world.visit(pat, date(2026, 2, 2))
    world.remit(claim, pr="20.00", paid="180.00")
    pc = credit_services.payer_credit_open(payer_id=world.payer.pk, amount="75.00", reason_code="duplicate_payment",
                                           actor=world.clerk, reason="Paid twice", claim_id=claim.pk,
                                           payer_claim_number="PCN-1", cash_received=True)
    assert (pc.state, pc.outstanding) == ("open", D("75.00"))
    assert balances()[Account.PAYER_CREDITS] == D("-75.00")
    assert credit_liability(pat.pk) == 0  # kept apart from the patient's credits

    pc = credit_services.payer_credit_recoup(payer_credit_id=pc.pk, amount="25.00", reference="PLB WO PCN-1",
                                             actor=world.clerk, reason="Recouped in 835")
    assert (pc.state, pc.resolved_amount, pc.outstanding) == ("open", D("25.00"), D("50.00"))
    with pytest.raises(RuleViolation, match="50.00 still due"):
        credit_services.payer_credit_recoup(payer_credit_id=pc.pk, amount="50.01", reference="x", actor=world.clerk,
                                            reason="too much")
    pc = credit_services.payer_credit_refund(payer_credit_id=pc.pk, check_number="CHK 7001", actor=world.clerk,
                                             reason="Refund check for the rest")
    assert (pc.state, pc.resolved_amount, pc.outstanding, pc.reference) == \
        ("refunded", D("75.00"), D("0.00"), "CHK 7001")
    assert pc.resolved_at is not None
    assert balances().get(Account.PAYER_CREDITS, D("0")) == 0
    with pytest.raises(RuleViolation, match="already refunded"):
        credit_services.payer_credit_recoup(payer_credit_id=pc.pk, amount="1.00", reference="x", actor=world.clerk,
                                            reason="late")
    assert PayerCredit.objects.get().history.latest().history_change_reason == "Refund check for the rest"
    check_invariants(world.practice.pk)


def test_payer_credit_fully_recouped_closes_as_recouped(world):
    pc = credit_services.payer_credit_open(payer_id=world.payer.pk, amount="40.00", reason_code="above_allowed",
                                           actor=world.clerk, reason="Paid above allowed")
    for part in ("15.00", "25.00"):
        pc = credit_services.payer_credit_recoup(payer_credit_id=pc.pk, amount=part, reference="PLB WO",
                                                 actor=world.clerk, reason="Recouped")
    assert (pc.state, pc.resolved_amount) == ("recouped", D("40.00"))
    assert balances().get(Account.PAYER_CREDITS, D("0")) == 0
    check_invariants(world.practice.pk)
