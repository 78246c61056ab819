"""Unclaimed property (rule 17, issue 11 item 8, example L): a credit untouched past its owner
state's dormancy is listed with its letter and report dates; the due-diligence letter and the
turn-over are services (the turn-over refused before the letter when one is needed, and before the
presumption); a credit whose money moved or whose owner came back is released; the holder report
lists what was turned over, per state and year."""

import csv
import io
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import time_machine
from django.core.files.storage import default_storage

from adjudication import letters
from adjudication.models import Case, CaseEvent, ClockRule, Proposal, UnclaimedProperty
from adjudication.scan import scan_practice
from adjudication.services.proposals import case_approve, case_propose
from adjudication.services.unclaimed import (
    PROPERTY_TYPE,
    holder_report_csv,
    holder_report_rows,
    unclaimed_find,
    unclaimed_send_letter,
    unclaimed_turn_over,
)
from credits import services as credit_services
from credits.models import Credit, CreditApplication
from ledger.errors import InvalidInput, NotFound, PermissionDenied, RuleViolation
from ledger.models import JournalEntry, Membership
from remittances.nightly import nightly_run
from tests.credits.test_invariants import check_invariants
from tests.credits.test_races import race
from tests.factories import MembershipFactory, PracticeFactory, UserFactory

pytestmark = pytest.mark.django_db


def noon(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, 18, tzinfo=UTC)  # noon in Chicago (the practice's zone)


LAST_ACTIVITY = date(2023, 2, 15)


def dormant_credit(world, amount, *, patient=None, on=LAST_ACTIVITY, **patient_fields) -> Credit:
    """A real credit (a payment with nothing to pay for) and nothing since: its last activity is `on`."""
    patient = patient or world.patient(first_name="Dana", last_name="Cruz", address_line1="400 Congress Ave",
                                       city="Austin", us_state="TX", postal_code="78701", **patient_fields)
    with time_machine.travel(noon(on), tick=False):
        world.pay(patient, amount)
    return Credit.objects.filter(patient=patient).latest("pk")


def case_of(world, credit) -> Case:
    """The case the scan opened for the credit (opened as the scan does, on the day it was found)."""
    return Case.objects.create(practice=world.practice, kind=Case.Kind.PATIENT_CREDIT,
                               cause=Case.Cause.PATIENT_OVERPAYMENT, source=credit.source, credit=credit,
                               patient_id=credit.patient_id, amount=credit.on_hand,
                               determined_on=credit.created_at.date())


def listed(world, credit, day: date) -> UnclaimedProperty:
    case_of(world, credit)
    with time_machine.travel(noon(day), tick=False):
        assert unclaimed_find(practice_id=world.practice.pk) >= 1
    return UnclaimedProperty.objects.get(credit=credit)


def test_example_l_35_listed_on_1_march_no_letter_turned_over_on_1_july(world):
    credit = dormant_credit(world, "35.00")
    with time_machine.travel(noon(date(2026, 2, 28)), tick=False):
        first = scan_practice(practice_id=world.practice.pk)
    case = Case.objects.get(credit=credit)
    assert first.opened >= 1 and first.unclaimed_listed == 0  # 28 Feb: not yet presumed abandoned
    assert not UnclaimedProperty.objects.exists()

    with time_machine.travel(noon(date(2026, 3, 1)), tick=False):
        result = scan_practice(practice_id=world.practice.pk)
    assert result.unclaimed_listed == 1
    row = UnclaimedProperty.objects.get(credit=credit)
    assert (row.case, row.state, row.owner_state, row.amount, row.last_activity_on) == (
        case, UnclaimedProperty.State.LISTED, "TX", Decimal("35.00"), LAST_ACTIVITY)
    assert (row.presumed_on, row.report_due_on, row.letter_due_on, row.report_year) == (
        date(2026, 3, 1), date(2026, 7, 1), None, 2026)
    assert row.rule.us_state == "TX" and row.rule.kind == "unclaimed_property"
    event = CaseEvent.objects.filter(case=case, kind=CaseEvent.Kind.CLOCK).latest("pk")
    assert "Presumed abandoned on 2026-03-01 (unclaimed property, Texas)" in event.text
    assert "no letter needed" in event.text and "report by 2026-07-01" in event.text
    assert row.history.latest().history_type == "+"

    with time_machine.travel(noon(date(2026, 3, 2)), tick=False):  # the next night lists nothing again
        assert scan_practice(practice_id=world.practice.pk).unclaimed_listed == 0
    assert UnclaimedProperty.objects.count() == 1

    with time_machine.travel(noon(date(2026, 7, 1)), tick=False):
        out = unclaimed_turn_over(item=row, actor=world.manager, reason="2026 Texas holder report")
    assert (out.state, out.turned_over_on) == (UnclaimedProperty.State.TURNED_OVER, date(2026, 7, 1))
    credit.refresh_from_db()
    assert (credit.state, credit.on_hand, credit.removed_amount) == (Credit.State.REMOVED, 0, Decimal("35.00"))
    assert credit.history.latest().history_change_reason == "unclaimed property, Texas"
    entry = JournalEntry.objects.filter(kind=JournalEntry.Kind.REMOVAL).get()
    assert entry.memo == "unclaimed property, Texas"
    case.refresh_from_db()
    assert (case.state, case.outcome, case.resolved_by) == (Case.State.RESOLVED, Case.Outcome.UNCLAIMED, world.manager)
    assert case.outcome_note == "Turned over as unclaimed property to Texas on 2026-07-01"

    (line,) = holder_report_rows(practice_id=world.practice.pk, year=2026, us_state="TX")
    assert {k: line[k] for k in ("owner_name", "owner_address_line1", "owner_city", "owner_state",
                                 "owner_postal_code", "property_type", "amount", "last_activity_on", "holder",
                                 "status")} == {
        "owner_name": "Cruz, Dana", "owner_address_line1": "400 Congress Ave", "owner_city": "Austin",
        "owner_state": "TX", "owner_postal_code": "78701", "property_type": PROPERTY_TYPE, "amount": Decimal("35.00"),
        "last_activity_on": LAST_ACTIVITY, "holder": "Main Street Clinic", "status": "turned_over"}
    assert holder_report_rows(practice_id=world.practice.pk, year=2026, us_state="CA") == []
    assert holder_report_rows(practice_id=world.practice.pk, year=2025) == []
    rows = list(csv.DictReader(io.StringIO(holder_report_csv(practice_id=world.practice.pk, year=2026))))
    assert [(r["owner_name"], r["amount"], r["last_activity_on"], r["property_type"], r["turned_over_on"])
            for r in rows] == [("Cruz, Dana", "35.00", "2023-02-15", "MS09", "2026-07-01")]


def test_example_l_300_needs_the_letter_by_1_may_first(world, monkeypatch):
    credit = dormant_credit(world, "300.00")
    row = listed(world, credit, date(2026, 3, 1))
    assert (row.letter_due_on, row.report_due_on) == (date(2026, 5, 1), date(2026, 7, 1))

    with time_machine.travel(noon(date(2026, 7, 1)), tick=False), pytest.raises(RuleViolation) as e:
        unclaimed_turn_over(item=row.pk, actor=world.manager, reason="Report")
    assert "due-diligence letter is needed first" in e.value.message and "2026-05-01" in e.value.message
    credit.refresh_from_db()
    row.refresh_from_db()
    assert (credit.on_hand, credit.state, row.state) == (Decimal("300.00"), "available", "listed")
    assert not JournalEntry.objects.filter(kind=JournalEntry.Kind.REMOVAL).exists()

    monkeypatch.setattr(letters, "COMPRESS", False)
    with time_machine.travel(noon(date(2026, 4, 20)), tick=False):
        sent = unclaimed_send_letter(item=row, actor=world.clerk, reason="Due-diligence letter")
    assert (sent.state, sent.letter_sent_on) == (UnclaimedProperty.State.LETTER_SENT, date(2026, 4, 20))
    pdf = default_storage.open(sent.letter.name).read()
    assert pdf.startswith(b"%PDF") and b"$300.00" in pdf and b"Texas" in pdf and b"by July 1," in pdf
    assert b"Dana Cruz" in pdf and b"400 Congress Ave" in pdf
    note = CaseEvent.objects.filter(case=row.case, kind=CaseEvent.Kind.NOTE).get()
    assert note.text.startswith("Due-diligence letter sent on 2026-04-20 (unclaimed property, Texas)")
    with time_machine.travel(noon(date(2026, 4, 21)), tick=False), pytest.raises(RuleViolation):
        unclaimed_send_letter(item=row, actor=world.clerk, reason="Again")

    with time_machine.travel(noon(date(2026, 7, 1)), tick=False):
        unclaimed_turn_over(item=row, actor=world.manager, reason="2026 Texas holder report")
    credit.refresh_from_db()
    assert (credit.state, credit.removed_amount) == (Credit.State.REMOVED, Decimal("300.00"))
    assert Case.objects.get(pk=row.case_id).outcome == Case.Outcome.UNCLAIMED


def test_the_owners_state_decides_and_small_michigan_amounts_stay(world):
    florida = dormant_credit(world, "50.00", patient=world.patient(us_state="FL"))  # five years
    michigan_small = dormant_credit(world, "20.00", patient=world.patient(us_state="MI"))  # at most 25.00: kept
    no_state = dormant_credit(world, "60.00", patient=world.patient())  # the practice's state: Texas
    for c in (florida, michigan_small, no_state):
        case_of(world, c)
    with time_machine.travel(noon(date(2026, 4, 15)), tick=False):
        assert unclaimed_find(practice_id=world.practice.pk) == 1
    assert list(UnclaimedProperty.objects.values_list("credit_id", "owner_state")) == [(no_state.pk, "TX")]
    with time_machine.travel(noon(date(2028, 12, 30)), tick=False):  # five years, then as of 31 December
        assert unclaimed_find(practice_id=world.practice.pk) == 0
    with time_machine.travel(noon(date(2028, 12, 31)), tick=False):
        assert unclaimed_find(practice_id=world.practice.pk) == 1
    fl = UnclaimedProperty.objects.get(credit=florida)
    assert (fl.owner_state, fl.presumed_on, fl.report_due_on) == ("FL", date(2028, 12, 31), date(2029, 5, 1))
    assert not UnclaimedProperty.objects.filter(credit=michigan_small).exists()


def test_money_moved_or_owner_active_again_releases_the_row(world):
    active = dormant_credit(world, "40.00")
    moved = dormant_credit(world, "70.00", patient=world.patient(first_name="Eli", last_name="Moss", us_state="TX"))
    listed(world, active, date(2026, 3, 1))
    listed(world, moved, date(2026, 3, 1))

    with time_machine.travel(noon(date(2026, 3, 10)), tick=False):
        world.pay(active.patient, "5.00")  # the owner is back: a new payment is activity
        credit_services.credit_remove(credit_id=moved.pk, actor=world.clerk, amount="30.00",
                                      reason="Refunded 30.00 by hand outside the system")
    with time_machine.travel(noon(date(2026, 3, 11)), tick=False):
        relisted = unclaimed_find(practice_id=world.practice.pk)

    a = UnclaimedProperty.objects.get(credit=active)
    assert a.state == UnclaimedProperty.State.RELEASED
    assert CaseEvent.objects.filter(case=a.case, text__startswith="Released from the unclaimed-property list: "
                                    "the owner was active on 2026-03-10").exists()
    # the other credit's money moved: released, and still dormant, so listed again for what is left
    m = UnclaimedProperty.objects.get(credit=moved)
    assert relisted == 1
    assert (m.state, m.amount, m.last_activity_on) == (UnclaimedProperty.State.LISTED, Decimal("40.00"), LAST_ACTIVITY)
    assert [h.state for h in m.history.order_by("history_id")] == ["listed", "released", "listed"]
    assert CaseEvent.objects.filter(case=m.case, text__contains="the money moved").exists()


def test_turn_over_refusals_write_nothing(world):
    credit = dormant_credit(world, "35.00")
    row = listed(world, credit, date(2026, 3, 1))
    outsider = MembershipFactory(practice=PracticeFactory(), user=UserFactory(username="outsider"),
                                 role=Membership.Role.MANAGER).user
    with time_machine.travel(noon(date(2026, 7, 1)), tick=False):
        with pytest.raises(PermissionDenied):
            unclaimed_turn_over(item=row, actor=outsider, reason="Report")
        with pytest.raises(PermissionDenied, match="not a manager"):  # billing staff propose it on the case
            unclaimed_turn_over(item=row, actor=world.clerk, reason="Report")
        with pytest.raises(NotFound):
            unclaimed_turn_over(item=987654, actor=world.manager, reason="Report")
        with pytest.raises(InvalidInput):
            unclaimed_turn_over(item=row, actor=world.manager, reason="")
        with pytest.raises(RuleViolation) as e:
            unclaimed_turn_over(item=row, actor=world.manager, reason="Report", on=date(2026, 2, 27))
        assert "presumed abandoned only on 2026-03-01" in e.value.message
        with pytest.raises(InvalidInput):
            unclaimed_turn_over(item=row, actor=world.manager, reason="Report", on=date(2026, 7, 2))  # the future
        with pytest.raises(PermissionDenied):
            holder_report_rows(practice_id=world.practice.pk, year=2026, actor=outsider)
        # the money moved after the listing and before the next scan: not turned over
        Credit.objects.filter(pk=credit.pk).update(on_hand=Decimal("25.00"), removed_amount=Decimal("10.00"))
        with pytest.raises(RuleViolation) as e:
            unclaimed_turn_over(item=row, actor=world.manager, reason="Report")
        assert "changed since it was listed" in e.value.message
    row.refresh_from_db()
    assert row.state == UnclaimedProperty.State.LISTED and row.turned_over_on is None
    assert Case.objects.get(pk=row.case_id).state == Case.State.IDENTIFIED
    assert not JournalEntry.objects.filter(kind=JournalEntry.Kind.REMOVAL).exists()


def test_holder_report_cells_are_safe_in_a_spreadsheet(world):
    credit = dormant_credit(world, "35.00", patient=world.patient(first_name="x", last_name="=HYPERLINK(1)",
                                                                  us_state="TX"))
    row = listed(world, credit, date(2026, 3, 1))
    with time_machine.travel(noon(date(2026, 7, 1)), tick=False):
        unclaimed_turn_over(item=row, actor=world.manager, reason="Report")
    text = holder_report_csv(practice_id=world.practice.pk, year=2026, us_state="tx")
    header, line = text.splitlines()
    assert header.startswith("owner_name,owner_address_line1")
    assert line.startswith("\"'=HYPERLINK(1), x\"")
    with pytest.raises(InvalidInput):
        holder_report_csv(practice_id=world.practice.pk, year=2026, us_state="Texas")


@pytest.mark.django_db(transaction=True)
def test_turn_over_races_the_nightly_run_and_a_second_turn_over(world):
    """Two staff turn the credit over while the nightly run wants 20.00 of it for a new balance: one
    wins. Either the credit is turned over whole (the run applies none of it), or the run applies
    20.00 first and both turn-overs are refused (the credit changed since it was listed)."""
    # a transactional test may run after another one flushed the seeded rules: the practice's own copy
    # of the Texas rule (3 years, as of 1 March, report 1 July, letter 1 May above 250.00)
    ClockRule.objects.create(kind=ClockRule.Kind.UNCLAIMED, name="Texas (test copy)", practice=world.practice,
                             us_state="TX", dormancy_years=3, cutoff_month=3, cutoff_day=1, report_month=7,
                             report_day=1, letter_month=5, letter_day=1, letter_threshold=Decimal("250.00"))
    credit = dormant_credit(world, "35.00")
    row = listed(world, credit, date(2026, 3, 1))
    with time_machine.travel(noon(date(2026, 6, 30)), tick=False):
        world.visit(credit.patient, date(2026, 6, 30), charge="20.00", estimated_pr="20.00", claim=False)
    with time_machine.travel(noon(date(2026, 7, 1)), tick=False):
        results = race(lambda: nightly_run(practice_id=world.practice.pk),
                       lambda: unclaimed_turn_over(item=row.pk, actor=world.manager, reason="Report"),
                       lambda: unclaimed_turn_over(item=row.pk, actor=world.manager, reason="Report"))
    assert results[0][0] == "ok"
    turned = [r for r in results[1:] if r[0] == "ok"]
    credit.refresh_from_db()
    row.refresh_from_db()
    applied = sum(CreditApplication.objects.filter(credit=credit).values_list("amount", flat=True), Decimal(0))
    if turned:
        assert len(turned) == 1
        assert (credit.removed_amount, applied, row.state) == (Decimal("35.00"), 0, "turned_over")
    else:
        assert all("changed since it was listed" in r[1].message for r in results[1:])
        assert (credit.removed_amount, applied, credit.on_hand, row.state) == (0, Decimal("20.00"), Decimal("15.00"),
                                                                               "listed")
    assert credit.amount == credit.on_hand + credit.applied_amount + credit.removed_amount
    check_invariants(world.practice.pk)


def test_the_nightly_run_using_the_credit_first_refuses_the_turn_over_and_releases_it(world):
    credit = dormant_credit(world, "35.00")
    row = listed(world, credit, date(2026, 3, 1))
    with time_machine.travel(noon(date(2026, 6, 30)), tick=False):
        world.visit(credit.patient, date(2026, 6, 30), charge="20.00", estimated_pr="20.00", claim=False)
        nightly_run(practice_id=world.practice.pk)
    with time_machine.travel(noon(date(2026, 7, 1)), tick=False):
        with pytest.raises(RuleViolation) as e:
            unclaimed_turn_over(item=row, actor=world.manager, reason="Report")
        assert "15.00 on hand, listed 35.00" in e.value.message
        unclaimed_find(practice_id=world.practice.pk)
    row.refresh_from_db()
    credit.refresh_from_db()
    assert (row.state, credit.on_hand, credit.removed_amount) == ("released", Decimal("15.00"), 0)
    assert CaseEvent.objects.filter(case=row.case, text__contains="the money moved").exists()


def test_letter_refusals_write_nothing(world):
    credit = dormant_credit(world, "300.00")
    row = listed(world, credit, date(2026, 3, 1))
    outsider = MembershipFactory(practice=PracticeFactory(), user=UserFactory(username="outsider"),
                                 role=Membership.Role.MANAGER).user
    with time_machine.travel(noon(date(2026, 4, 1)), tick=False):
        with pytest.raises(PermissionDenied):
            unclaimed_send_letter(item=row, actor=outsider, reason="Letter")
        with pytest.raises(NotFound):
            unclaimed_send_letter(item=555555, actor=world.clerk, reason="Letter")
        with pytest.raises(InvalidInput):
            unclaimed_send_letter(item="abc", actor=world.clerk, reason="Letter")
        with pytest.raises(RuleViolation):
            unclaimed_send_letter(item=row, actor=world.clerk, reason="Letter", on=date(2026, 2, 20))
    row.refresh_from_db()
    assert (row.state, row.letter_sent_on, row.letter.name) == ("listed", None, "")
    assert not CaseEvent.objects.filter(case=row.case, kind=CaseEvent.Kind.NOTE).exists()


def test_billing_proposes_the_turn_over_and_another_manager_approves_it(world):
    """Rule 16: turning over as unclaimed property is a resolution like the others: billing staff
    propose it on the case, a manager other than the proposer approves, and it is carried out under
    the case's, the proposal's and the row's locks; before the letter it is refused with nothing done."""
    credit = dormant_credit(world, "300.00")
    row = listed(world, credit, date(2026, 3, 1))
    case = Case.objects.get(pk=row.case_id)
    other = MembershipFactory(practice=PracticeFactory(), user=UserFactory(username="elsewhere")).user
    with time_machine.travel(noon(date(2026, 7, 1)), tick=False):
        with pytest.raises(PermissionDenied):
            case_propose(case=case, actor=other, kind="unclaimed_property", reason="Report")
        case_propose(case=case, actor=world.clerk, kind="unclaimed_property", reason="Dormant since 2023")
        with pytest.raises(RuleViolation, match="decide it first"):  # the money is spoken for
            unclaimed_turn_over(item=row, actor=world.manager, reason="Report")
        with pytest.raises(PermissionDenied):
            case_approve(case=case, actor=world.clerk, reason="self")
        p = case_approve(case=case, actor=world.manager, reason="Approved")  # no letter yet: refused
    assert p.state == Proposal.State.PROPOSED and "due-diligence letter is needed first" in p.refusal
    credit.refresh_from_db()
    assert (credit.on_hand, credit.removed_amount) == (Decimal("300.00"), 0)
    with time_machine.travel(noon(date(2026, 4, 20)), tick=False):
        unclaimed_send_letter(item=row, actor=world.clerk, reason="Due diligence")
    with time_machine.travel(noon(date(2026, 7, 1)), tick=False):
        p = case_approve(case=case, actor=world.manager, reason="Approved")
    row.refresh_from_db()
    case.refresh_from_db()
    credit.refresh_from_db()
    assert (p.state, row.state, case.state, case.outcome) == (Proposal.State.CARRIED_OUT,
                                                              UnclaimedProperty.State.TURNED_OVER,
                                                              Case.State.RESOLVED, Case.Outcome.UNCLAIMED)
    assert (credit.on_hand, credit.removed_amount) == (0, Decimal("300.00"))
    assert credit.history.latest().history_change_reason == "unclaimed property, Texas"
    assert p.result["unclaimed"] == row.pk and p.decided_by == world.manager and p.proposed_by == world.clerk
