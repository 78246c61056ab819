"""The case workflow (rule 15, issue 11 item 2): each service writes its change, its history row
(acting user and reason) and its event; a transition the state does not allow, an unknown case,
another practice's case or a billing clerk reopening is refused with nothing written; the
good-faith investigation suspends a Medicare clock (rule 17, example I's dates)."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import DatabaseError, connection, transaction

from adjudication.models import Case, CaseDocument, CaseEvent
from adjudication.scan import scan_practice
from adjudication.services import cases as svc
from adjudication.services.core import move
from credits import services as credit_services
from credits.models import Credit
from ledger.errors import Duplicate, InvalidInput, NotFound, PermissionDenied, RuleViolation
from ledger.models import Membership, Payer
from tests.credits.test_races import outcomes, race
from tests.factories import MembershipFactory, PayerFactory, PracticeFactory, UserFactory

NOON = datetime(2026, 6, 22, 17, tzinfo=UTC)


def opened_on(day: date):
    """Travel to the afternoon of `day` (the same day in the practice's time zone)."""
    return time_machine.travel(datetime(day.year, day.month, day.day, 17, tzinfo=UTC), tick=False)


def patient_case(world, amount="150.00", *, on=date(2026, 6, 20)) -> Case:
    """A real patient credit (a payment with nothing to pay for) on `on`, and the case the real scan
    opens for it that day (a Texas practice: the Texas 30-day clock of the seed)."""
    patient = world.patient()
    with opened_on(on):
        world.pay(patient, amount)
        scan_practice(practice_id=world.practice.pk)
    return Case.objects.get(credit__patient=patient)


def payer_case(world, amount="180.00", *, payer_type=Payer.Type.MEDICARE, on=date(2026, 3, 24)) -> Case:
    """A real payer credit (the payer paid twice) on `on`, and the case the real scan opens for it that
    day (Medicare: the federal 60-day clock with its 180-day suspension, from the seed)."""
    payer = PayerFactory(practice=world.practice, payer_type=payer_type)
    with opened_on(on):
        pc = credit_services.payer_credit_open(payer_id=payer.pk, amount=amount, reason_code="duplicate_payment",
                                               actor=world.clerk, reason="Paid twice", cash_received=True,
                                               payer_claim_number="ICN-1")
        scan_practice(practice_id=world.practice.pk)
    return Case.objects.get(payer_credit=pc)


def written(case) -> tuple[int, int]:
    """(events, history rows) of a case: what a refusal must leave as it was."""
    return CaseEvent.objects.filter(case_id=case.pk).count(), Case.history.filter(id=case.pk).count()


def last_history(case):
    return Case.history.filter(id=case.pk).order_by("-history_id").first()


def other_practice_case(world) -> Case:
    other = PracticeFactory(name="Elsewhere")
    clerk = MembershipFactory(practice=other, user=UserFactory(username="other_clerk")).user
    payer = PayerFactory(practice=other)
    with opened_on(date(2026, 6, 1)):
        pc = credit_services.payer_credit_open(payer_id=payer.pk, amount="50.00", reason_code="other", actor=clerk,
                                               reason="Overpaid", cash_received=True)
        scan_practice(practice_id=other.pk)
    return Case.objects.get(payer_credit=pc)


@pytest.fixture
def at_noon():
    with time_machine.travel(NOON, tick=False):
        yield


# --- state changes -------------------------------------------------------------------------------

def test_investigate_moves_with_history_and_state_event(world, at_noon):
    case = patient_case(world)
    out = svc.case_investigate(case=case.pk, actor=world.clerk, reason="Checking the card payment")
    case.refresh_from_db()
    assert out.pk == case.pk and case.state == Case.State.INVESTIGATING
    ev = CaseEvent.objects.get(case=case, kind=CaseEvent.Kind.STATE)
    assert (ev.from_state, ev.to_state, ev.actor, ev.text) == ("identified", "investigating", world.clerk,
                                                               "Checking the card payment")
    h = last_history(case)
    assert (h.state, h.history_user, h.history_change_reason) == ("investigating", world.clerk,
                                                                  "Checking the card payment")


def test_investigate_refused_when_already_investigating_or_proposed(world, at_noon):
    case = patient_case(world)
    svc.case_investigate(case=case, actor=world.clerk, reason="Look")
    before = written(case)
    with pytest.raises(RuleViolation, match=rf"case {case.pk} is investigating; it cannot be put under investigation"):
        svc.case_investigate(case=case, actor=world.clerk, reason="Again")
    assert written(case) == before
    case.refresh_from_db()
    move(case, "propose", actor=world.clerk, reason="Refund it")
    before = written(case)
    with pytest.raises(RuleViolation, match="resolution proposed"):
        svc.case_investigate(case=case, actor=world.clerk, reason="Back")
    assert written(case) == before
    case.refresh_from_db()
    assert case.state == Case.State.PROPOSED


def test_wait_on_payer_sets_follow_up(world, at_noon):
    case = payer_case(world)
    svc.case_wait_on_payer(case=case, actor=world.clerk, reason="Asked for a recoupment", follow_up_on="2026-07-06")
    case.refresh_from_db()
    assert (case.state, case.follow_up_on) == (Case.State.WAITING_PAYER, date(2026, 7, 6))
    ev = CaseEvent.objects.get(case=case, kind=CaseEvent.Kind.STATE)
    assert (ev.from_state, ev.to_state, ev.data["follow_up_on"]) == ("identified", "waiting_payer", "2026-07-06")
    assert last_history(case).history_change_reason == "Asked for a recoupment"


@pytest.mark.parametrize("day, message", [
    ("2026-06-21", "is before 2026-06-22"),
    ("2027-08-01", "more than a year ahead"),
    ("next week", "is not a day"),
    (None, "follow up on is required"),
])
def test_wait_on_payer_bad_follow_up_writes_nothing(world, at_noon, day, message):
    case = payer_case(world)
    before = written(case)
    with pytest.raises(InvalidInput, match=message):
        svc.case_wait_on_payer(case=case, actor=world.clerk, reason="Wait", follow_up_on=day)
    assert written(case) == before
    case.refresh_from_db()
    assert case.state == Case.State.IDENTIFIED and case.follow_up_on is None


def test_wait_on_payer_refused_when_proposed(world, at_noon):
    case = payer_case(world)
    move(case, "propose", actor=world.clerk, reason="Refund check")
    before = written(case)
    with pytest.raises(RuleViolation, match="cannot be set to wait on the payer"):
        svc.case_wait_on_payer(case=case, actor=world.clerk, reason="Wait", follow_up_on=date(2026, 7, 1))
    assert written(case) == before


def test_reason_is_required(world, at_noon):
    case = patient_case(world)
    before = written(case)
    with pytest.raises(InvalidInput, match="a reason is required"):
        svc.case_investigate(case=case, actor=world.clerk, reason="  ")
    assert written(case) == before


# --- good-faith investigation (rule 17, example I's dates) --------------------------------------------

def test_good_faith_investigation_suspends_then_restarts_the_medicare_clock(world):
    case = payer_case(world)  # identified 24 Mar by the scan
    rule = case.clock_rule
    assert (case.determined_on, case.due_on, rule.payer_type, rule.days, rule.suspension_max_days) == (
        date(2026, 3, 24), date(2026, 5, 23), "medicare", 60, 180)
    with time_machine.travel(datetime(2026, 3, 25, 16, tzinfo=UTC), tick=False):
        svc.case_investigate(case=case, actor=world.clerk, reason="Is the second payment a duplicate?",
                             good_faith=True)
    case.refresh_from_db()
    assert case.state == Case.State.INVESTIGATING
    assert case.investigation_started_on == date(2026, 3, 25)
    assert case.clock_rule_id == rule.pk
    started = CaseEvent.objects.get(case=case, kind=CaseEvent.Kind.CLOCK)
    assert started.data["from_due_on"] == "2026-05-23"
    assert started.data["to_due_on"] == (case.due_on.isoformat() if case.due_on else None)
    assert started.data["to_due_on"] != "2026-05-23"  # the clock no longer runs from identification
    with time_machine.travel(datetime(2026, 4, 4, 16, tzinfo=UTC), tick=False):
        svc.case_end_investigation(case=case, actor=world.clerk, reason="Confirmed: paid twice")
    case.refresh_from_db()
    assert case.investigation_ended_on == date(2026, 4, 4)
    assert case.due_on == date(2026, 6, 3)  # 60 days from the end of the investigation
    ended = CaseEvent.objects.filter(case=case, kind=CaseEvent.Kind.CLOCK).order_by("-id").first()
    assert (ended.data["from_due_on"], ended.data["to_due_on"]) == (started.data["to_due_on"], "2026-06-03")
    assert ended.actor == world.clerk and "Confirmed: paid twice" in ended.text
    assert last_history(case).history_change_reason == "Confirmed: paid twice"
    assert case.state == Case.State.INVESTIGATING  # ending the investigation is no state change


def test_good_faith_on_an_investigating_case_starts_the_suspension_only(world):
    case = payer_case(world)
    with time_machine.travel(datetime(2026, 3, 26, 16, tzinfo=UTC), tick=False):
        svc.case_investigate(case=case, actor=world.clerk, reason="Look")
        svc.case_investigate(case=case, actor=world.clerk, reason="Good faith from today", good_faith=True,
                             on=date(2026, 3, 26))
    case.refresh_from_db()
    assert case.investigation_started_on == date(2026, 3, 26)
    assert CaseEvent.objects.filter(case=case, kind=CaseEvent.Kind.STATE).count() == 1
    assert CaseEvent.objects.filter(case=case, kind=CaseEvent.Kind.CLOCK).count() == 1


def test_good_faith_refused_when_the_rule_has_no_suspension(world, at_noon):
    case = patient_case(world)  # Texas: 30 days from 20 Jun, no suspension
    assert (case.due_on, case.clock_rule.us_state, case.clock_rule.suspension_max_days) == (date(2026, 7, 20), "TX",
                                                                                           None)
    before = written(case)
    with pytest.raises(RuleViolation, match="allows no good-faith investigation suspension"):
        svc.case_investigate(case=case, actor=world.clerk, reason="Good faith", good_faith=True)
    assert written(case) == before
    case.refresh_from_db()
    assert case.state == Case.State.IDENTIFIED and case.investigation_started_on is None


@pytest.mark.parametrize("on, error, message", [
    (date(2026, 3, 27), InvalidInput, "is in the future"),
    (date(2026, 3, 20), InvalidInput, "before the overpayment was identified"),
])
def test_good_faith_bad_start_day_writes_nothing(world, on, error, message):
    case = payer_case(world)
    before = written(case)
    with time_machine.travel(datetime(2026, 3, 26, 16, tzinfo=UTC), tick=False), pytest.raises(error, match=message):
        svc.case_investigate(case=case, actor=world.clerk, reason="Good faith", good_faith=True, on=on)
    assert written(case) == before


def test_good_faith_after_the_clock_ran_out_is_not_timely(world):
    case = payer_case(world)
    with time_machine.travel(datetime(2026, 5, 30, 16, tzinfo=UTC), tick=False), \
            pytest.raises(RuleViolation, match="not timely"):
        svc.case_investigate(case=case, actor=world.clerk, reason="Late", good_faith=True)


def test_end_investigation_refused_without_one_or_twice(world):
    case = payer_case(world)
    with time_machine.travel(datetime(2026, 3, 25, 16, tzinfo=UTC), tick=False):
        before = written(case)
        with pytest.raises(RuleViolation, match="has no good-faith investigation to end"):
            svc.case_end_investigation(case=case, actor=world.clerk, reason="Done")
        assert written(case) == before
        svc.case_investigate(case=case, actor=world.clerk, reason="Good faith", good_faith=True)
        with pytest.raises(InvalidInput, match="before the investigation started"):
            svc.case_end_investigation(case=case, actor=world.clerk, reason="Done", on=date(2026, 3, 24))
        svc.case_end_investigation(case=case, actor=world.clerk, reason="Done")
        before = written(case)
        with pytest.raises(RuleViolation, match="already ended on 2026-03-25"):
            svc.case_end_investigation(case=case, actor=world.clerk, reason="Done again")
        assert written(case) == before


# --- the record: notes, balance, source ------------------------------------------------------------------

def test_note_is_an_event_and_refused_empty(world, at_noon):
    case = patient_case(world)
    ev = svc.case_note(case=case, actor=world.clerk, text="  Patient called, wants a refund to the card  ")
    assert (ev.kind, ev.text, ev.actor, ev.case_id) == ("note", "Patient called, wants a refund to the card",
                                                        world.clerk, case.pk)
    with pytest.raises(InvalidInput, match="text is required"):
        svc.case_note(case=case, actor=world.clerk, text="")
    assert CaseEvent.objects.filter(case=case, kind=CaseEvent.Kind.NOTE).count() == 1


def test_confirm_balance_records_the_amount_found_now(world, at_noon):
    case = patient_case(world, "150.00")
    credit_services.credit_remove(credit_id=case.credit_id, actor=world.manager, reason="Part removed",
                                  amount="40.00")
    ev = svc.case_confirm_balance(case=case, actor=world.clerk, reason="Checked the ledger")
    assert ev.kind == CaseEvent.Kind.BALANCE_CONFIRMED and ev.actor == world.clerk
    assert (ev.data["amount"], ev.data["case_amount"], ev.data["changed_by"]) == ("110.00", "150.00", "-40.00")
    assert "110.00 on hand" in ev.text


def test_confirm_balance_refused_when_the_money_is_gone(world, at_noon):
    case = patient_case(world, "150.00")
    credit_services.credit_remove(credit_id=case.credit_id, actor=world.manager, reason="Removed")
    before = written(case)
    with pytest.raises(RuleViolation, match="the credit balance is gone"):
        svc.case_confirm_balance(case=case, actor=world.clerk, reason="Check")
    assert written(case) == before


def test_review_source_keeps_findings_and_where_the_credit_came_from(world, at_noon):
    case = patient_case(world, "150.00")
    credit = case.credit
    ev = svc.case_review_source(case=case, actor=world.clerk, reason="Source review",
                                findings="Card payment at the front desk with nothing owed")
    assert ev.kind == CaseEvent.Kind.SOURCE_REVIEWED and ev.text == "Card payment at the front desk with nothing owed"
    src = ev.data["source"]
    assert (src["credit"], src["source"], src["payment"], src["credit_amount"]) == (
        credit.pk, credit.source, credit.payment_id, "150.00")
    assert src["payment_channel"] == "card_reader" and src["payment_amount"] == "150.00"
    assert ev.data["reason"] == "Source review"
    with pytest.raises(InvalidInput, match="findings is required"):
        svc.case_review_source(case=case, actor=world.clerk, reason="Source review", findings=" ")


def test_review_source_of_a_payer_credit_names_the_claim_number(world, at_noon):
    case = payer_case(world)
    ev = svc.case_review_source(case=case, actor=world.clerk, reason="Review", findings="835 paid the claim twice")
    src = ev.data["source"]
    assert (src["payer_credit"], src["reason"], src["payer_claim_number"], src["amount"]) == (
        case.payer_credit_id, "duplicate_payment", "ICN-1", "180.00")


# --- assignment -------------------------------------------------------------------------------------------

def test_assign_and_unassign(world, at_noon):
    case = patient_case(world)
    svc.case_assign(case=case, actor=world.manager, reason="Yours", assignee_id=world.clerk.pk)
    case.refresh_from_db()
    assert case.assigned_to == world.clerk
    ev = CaseEvent.objects.get(case=case, kind=CaseEvent.Kind.ASSIGNED)
    assert (ev.data["assignee"], ev.data["was"], ev.actor) == (world.clerk.pk, None, world.manager)
    assert last_history(case).history_change_reason == "Yours"
    with pytest.raises(RuleViolation, match="already assigned to clerk"):
        svc.case_assign(case=case, actor=world.manager, reason="Again", assignee_id=world.clerk.pk)
    svc.case_assign(case=case, actor=world.clerk, reason="On leave", assignee_id=None)
    case.refresh_from_db()
    assert case.assigned_to is None
    assert CaseEvent.objects.filter(case=case, kind=CaseEvent.Kind.ASSIGNED).count() == 2


def test_assign_refused_to_someone_outside_the_practice(world, at_noon):
    case = patient_case(world)
    stranger = MembershipFactory(practice=PracticeFactory(name="Other"), user=UserFactory(username="stranger")).user
    gone = MembershipFactory(practice=world.practice, user=UserFactory(username="gone", is_active=False),
                             role=Membership.Role.BILLING).user
    before = written(case)
    with pytest.raises(InvalidInput, match=f"user {stranger.pk} is not staff of the case's practice"):
        svc.case_assign(case=case, actor=world.manager, reason="Help", assignee_id=stranger.pk)
    with pytest.raises(InvalidInput, match="gone is not an active person"):
        svc.case_assign(case=case, actor=world.manager, reason="Help", assignee_id=gone.pk)
    with pytest.raises(InvalidInput, match="is not an id"):
        svc.case_assign(case=case, actor=world.manager, reason="Help", assignee_id="abc")
    assert written(case) == before


# --- reopening --------------------------------------------------------------------------------------------

def resolved(world, case) -> Case:
    move(case, "resolve", actor=world.manager, reason="Refunded", outcome=Case.Outcome.REFUND_PATIENT,
         note="Refunded to the card", by=world.manager)
    return case


def test_manager_reopens_a_resolved_case_and_it_counts(world, at_noon):
    case = resolved(world, patient_case(world))
    svc.case_reopen(case=case, actor=world.manager, reason="Refund went to the wrong card")
    case.refresh_from_db()
    assert (case.state, case.reopened_count, case.outcome, case.resolved_at) == (
        Case.State.INVESTIGATING, 1, "", None)
    ev = CaseEvent.objects.filter(case=case, kind=CaseEvent.Kind.STATE).order_by("-id").first()
    assert (ev.from_state, ev.to_state, ev.data["was_outcome"]) == ("resolved", "investigating", "refund_patient")
    h = last_history(case)
    assert (h.history_user, h.history_change_reason, h.reopened_count) == (
        world.manager, "Refund went to the wrong card", 1)


def test_billing_staff_cannot_reopen(world, at_noon):
    case = resolved(world, patient_case(world))
    before = written(case)
    with pytest.raises(PermissionDenied, match="is not a manager"):
        svc.case_reopen(case=case, actor=world.clerk, reason="Mistake")
    assert written(case) == before
    case.refresh_from_db()
    assert case.state == Case.State.RESOLVED and case.reopened_count == 0


def test_reopen_refused_when_not_resolved(world, at_noon):
    case = patient_case(world)
    before = written(case)
    with pytest.raises(RuleViolation, match="it cannot be reopened now"):
        svc.case_reopen(case=case, actor=world.manager, reason="Mistake")
    assert written(case) == before


def test_resolved_case_refuses_work_until_reopened(world, at_noon):
    case = resolved(world, patient_case(world))
    with pytest.raises(RuleViolation, match="is resolved; reopen it before assigning it"):
        svc.case_assign(case=case, actor=world.manager, reason="Yours", assignee_id=world.clerk.pk)
    with pytest.raises(RuleViolation, match="is resolved; reopen it before confirming its balance"):
        svc.case_confirm_balance(case=case, actor=world.clerk, reason="Check")


# --- who and which case -----------------------------------------------------------------------------------

@pytest.mark.parametrize("call", [
    lambda c, a: svc.case_investigate(case=c, actor=a, reason="x"),
    lambda c, a: svc.case_wait_on_payer(case=c, actor=a, reason="x", follow_up_on=date(2026, 7, 1)),
    lambda c, a: svc.case_note(case=c, actor=a, text="x"),
    lambda c, a: svc.case_confirm_balance(case=c, actor=a, reason="x"),
    lambda c, a: svc.case_review_source(case=c, actor=a, reason="x", findings="y"),
    lambda c, a: svc.case_assign(case=c, actor=a, reason="x", assignee_id=None),
    lambda c, a: svc.case_reopen(case=c, actor=a, reason="x"),
    lambda c, a: svc.case_end_investigation(case=c, actor=a, reason="x"),
])
def test_another_practices_case_is_refused_and_an_unknown_one_not_found(world, at_noon, call):
    theirs = other_practice_case(world)
    before = written(theirs)
    with pytest.raises(PermissionDenied, match="is not staff of practice"):
        call(theirs.pk, world.clerk)
    with pytest.raises(PermissionDenied):
        call(theirs.pk, world.manager)
    assert written(theirs) == before
    with pytest.raises(NotFound, match="unknown case 987654"):
        call(987654, world.manager)
    with pytest.raises(InvalidInput, match="is not an id"):
        call("-3", world.manager)


# --- events are append-only (the trigger of migration 0002) --------------------------------------------

@pytest.mark.parametrize("sql", ["UPDATE adjudication_caseevent SET text = 'changed' WHERE id = %s",
                                 "DELETE FROM adjudication_caseevent WHERE id = %s"])
def test_an_event_cannot_be_changed_or_deleted(world, at_noon, sql):
    case = patient_case(world)
    ev = svc.case_note(case=case, actor=world.clerk, text="Original")
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cur:
        cur.execute(sql, [ev.pk])
    ev.refresh_from_db()
    assert ev.text == "Original"


def test_money_is_untouched_by_the_workflow(world, at_noon):
    case = patient_case(world, "150.00")
    svc.case_investigate(case=case, actor=world.clerk, reason="Look")
    svc.case_note(case=case, actor=world.clerk, text="n")
    svc.case_confirm_balance(case=case, actor=world.clerk, reason="c")
    credit = Credit.objects.get(pk=case.credit_id)
    assert (credit.on_hand, credit.state) == (Decimal("150.00"), Credit.State.AVAILABLE)


# --- a visit paid beyond its charge ---------------------------------------------------------------------

def encounter_case(world) -> Case:
    """A visit the payer paid 50.00 beyond its 200.00 charge, and the case the real scan opens."""
    patient = world.patient()
    enc, claim = world.visit(patient, date(2026, 6, 10), charge="200.00")
    world.remit(claim, pr="0.00", paid="250.00", adjust="-50.00")
    with opened_on(date(2026, 6, 20)):
        scan_practice(practice_id=world.practice.pk)
    return Case.objects.get(kind=Case.Kind.ENCOUNTER, encounter=enc, state=Case.State.IDENTIFIED)


def test_review_source_of_a_visit_lists_its_claims_and_payments(world, at_noon):
    case = encounter_case(world)
    ev = svc.case_review_source(case=case, actor=world.clerk, reason="Review", findings="Payer paid 250 on 200")
    src = ev.data["source"]
    assert (src["encounter"], src["date_of_service"], src["charge"]) == (case.encounter_id, "2026-06-10", "200.00")
    assert src["claims"] == [case.encounter.claims.get().pk] and src["payments"] == []
    assert svc.case_confirm_balance(case=case, actor=world.clerk, reason="Check").data["amount"] == "50.00"


def test_reopen_refused_while_another_open_case_covers_the_visit(world, at_noon):
    first = resolved(world, encounter_case(world))
    scan_practice(practice_id=world.practice.pk)  # the money is still there: a new case for the visit
    second = Case.objects.get(encounter_id=first.encounter_id, state=Case.State.IDENTIFIED)
    before = written(first)
    with pytest.raises(Duplicate, match=f"case {second.pk} is open for the same visit"):
        svc.case_reopen(case=first, actor=world.manager, reason="Mistake")
    assert written(first) == before


# --- races (threads, each its own connection) -------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_two_managers_reopening_at_once_reopen_it_once(world):
    second_manager = MembershipFactory(practice=world.practice, user=UserFactory(username="boss2"),
                                       role=Membership.Role.MANAGER).user
    case = resolved(world, patient_case(world))
    results = race(lambda: svc.case_reopen(case=case.pk, actor=world.manager, reason="Wrong card"),
                   lambda: svc.case_reopen(case=case.pk, actor=second_manager, reason="Wrong card too"))
    assert outcomes(results) == ["ok", "refused"]
    refused = next(r[1] for r in results if r[0] == "refused")
    assert isinstance(refused, RuleViolation) and "is investigating; it cannot be reopened" in refused.message
    case.refresh_from_db()
    assert (case.state, case.reopened_count) == (Case.State.INVESTIGATING, 1)
    assert CaseEvent.objects.filter(case=case, kind=CaseEvent.Kind.STATE, from_state="resolved").count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_same_file_attached_twice_at_once_is_kept_once(world):
    case = patient_case(world)
    pdf = b"%PDF-1.4\n%%EOF\n"

    def attach(name):
        return lambda: svc.case_attach_document(case=case.pk, actor=world.clerk, reason="EOB",
                                                upload=SimpleUploadedFile(name, pdf))

    results = race(attach("a.pdf"), attach("b.pdf"))
    assert outcomes(results) == ["ok", "refused"]
    assert isinstance(next(r[1] for r in results if r[0] == "refused"), Duplicate)
    assert CaseDocument.objects.filter(case=case).count() == 1
    assert CaseEvent.objects.filter(case=case, kind=CaseEvent.Kind.DOCUMENT).count() == 1


# --- every state against every workflow transition ------------------------------------------------------

PATHS = {  # how to bring a fresh (identified) case to each state, through the FSM
    "identified": [],
    "investigating": [("investigate", {})],
    "waiting_payer": [("wait_on_payer", {"follow_up_on": date(2026, 7, 1)})],
    "proposed": [("propose", {})],
    "approved": [("propose", {}), ("approve", {})],
    "resolved": [("resolve", {"outcome": Case.Outcome.REFUND_PAYER, "note": "Check 7"})],
}
VERBS = {
    "investigate": (lambda c, w: svc.case_investigate(case=c, actor=w.clerk, reason="Look"),
                    {"identified", "waiting_payer"}),
    "wait_on_payer": (lambda c, w: svc.case_wait_on_payer(case=c, actor=w.clerk, reason="Wait",
                                                          follow_up_on=date(2026, 7, 8)),
                      {"identified", "investigating"}),
    "reopen": (lambda c, w: svc.case_reopen(case=c, actor=w.manager, reason="Mistake"), {"resolved"}),
}


@pytest.mark.parametrize("state", list(PATHS))
@pytest.mark.parametrize("verb", list(VERBS))
def test_each_transition_only_from_the_states_that_allow_it(world, at_noon, state, verb):
    case = payer_case(world)
    for step, kw in PATHS[state]:
        move(case, step, actor=world.manager, reason=f"to {state}", **kw)
    call, allowed = VERBS[verb]
    before = written(case)
    if state in allowed:
        call(case.pk, world)
        events, history = written(case)
        assert (events, history) == (before[0] + 1, before[1] + 1)
        assert Case.objects.get(pk=case.pk).state != state
    else:
        with pytest.raises(RuleViolation) as err:
            call(case.pk, world)
        assert err.value.code == "invalid_transition" and f"case {case.pk} is " in err.value.message
        assert written(case) == before
        assert Case.objects.get(pk=case.pk).state == state
