"""The work queue's selectors (adjudication/selectors.py): money left recomputed in SQL, days left and
the flag in the practice's time zone, the filters, totals, and a query count that does not grow with
the number of cases listed."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D

import pytest
import time_machine

from adjudication.models import AdjudicationSettings, Case, CaseEvent
from adjudication.selectors import case_detail, case_queue, case_timeline, queue_totals
from adjudication.services.core import money_left, record
from credits import services as credit_services
from credits.models import Credit
from ledger.errors import InvalidInput, NotFound
from ledger.models import Membership
from tests.factories import MembershipFactory, PatientFactory, PayerFactory, PracticeFactory, UserFactory

TODAY = date(2026, 3, 10)


def patient_case(world, amount="50.00", *, due_on=None, patient=None, state=Case.State.IDENTIFIED, **kw):
    """A patient credit made through the payment service (no visit: it stays available) and its case."""
    pat = patient or world.patient()
    world.pay(pat, amount)
    credit = Credit.objects.filter(patient=pat).latest("id")
    case = Case.objects.create(practice=world.practice, kind=Case.Kind.PATIENT_CREDIT,
                               cause=Case.Cause.PATIENT_OVERPAYMENT, credit=credit, patient=pat,
                               amount=credit.on_hand, determined_on=TODAY, due_on=due_on, **kw)
    if state != Case.State.IDENTIFIED:
        Case.objects.filter(pk=case.pk).update(state=state)
        case.refresh_from_db()
    return case


def payer_case(world, amount="75.00", *, due_on=None):
    pat = world.patient()
    _, claim = world.visit(pat, date(2026, 2, 2))
    world.remit(claim, pr="20.00", paid="180.00")
    pc = credit_services.payer_credit_open(payer_id=world.payer.pk, amount=amount, reason_code="duplicate_payment",
                                           actor=world.clerk, reason="Paid twice", claim_id=claim.pk,
                                           payer_claim_number=f"PCN-{claim.pk}", cash_received=True)
    return Case.objects.create(practice=world.practice, kind=Case.Kind.PAYER_CREDIT, cause=Case.Cause.DUPLICATE,
                               payer_credit=pc, payer=world.payer, patient=pat, payer_type=world.payer.payer_type,
                               amount=pc.amount, determined_on=TODAY, due_on=due_on)


@pytest.fixture
def other_practice(db):
    practice = PracticeFactory(name="Elsewhere")
    user = MembershipFactory(practice=practice, user=UserFactory(username="elsewhere"),
                             role=Membership.Role.MANAGER).user
    return practice, user


def test_money_left_in_sql_matches_the_service_for_patient_and_payer_credits(world):
    pc = patient_case(world, "120.00")
    yc = payer_case(world, "75.00")
    credit_services.payer_credit_recoup(payer_credit_id=yc.payer_credit_id, amount="25.00", reference="PLB WO",
                                        actor=world.clerk, reason="Recouped in 835")
    rows = {c.pk: c for c in case_queue(practice_ids=[world.practice.pk], today=TODAY)}
    assert rows[pc.pk].money_left == D("120.00") == money_left(Case.objects.get(pk=pc.pk))
    assert rows[yc.pk].money_left == D("50.00") == money_left(Case.objects.get(pk=yc.pk))


def test_encounter_case_money_left_is_what_the_visit_was_paid_beyond_its_charge(world):
    pat = world.patient()
    enc, claim = world.visit(pat, date(2026, 2, 2), charge="200.00")
    world.remit(claim, pr="0.00", paid="230.00", adjust="-30.00")
    case = Case.objects.create(practice=world.practice, kind=Case.Kind.ENCOUNTER, cause=Case.Cause.PAID_BEYOND_CHARGE,
                               encounter=enc, patient=pat, amount=D("30.00"), determined_on=TODAY)
    row = case_queue(practice_ids=[world.practice.pk], today=TODAY).get(pk=case.pk)
    assert row.money_left == D("30.00") == money_left(Case.objects.select_related("encounter").get(pk=case.pk))


def test_days_left_flag_and_sort_by_due_date_nulls_last(world):
    late = patient_case(world, due_on=TODAY - timedelta(days=2))
    inside = patient_case(world, due_on=TODAY + timedelta(days=7))
    outside = patient_case(world, due_on=TODAY + timedelta(days=8))
    undated = patient_case(world, due_on=None)
    rows = list(case_queue(practice_ids=[world.practice.pk], today=TODAY))
    assert [r.pk for r in rows] == [late.pk, inside.pk, outside.pk, undated.pk]
    assert [(r.days_left, r.flagged) for r in rows] == [(-2, True), (7, True), (8, False), (None, False)]
    # the practice's own warning window replaces the default 7
    AdjudicationSettings.objects.create(practice=world.practice, warning_window_days=8)
    assert case_queue(practice_ids=[world.practice.pk], today=TODAY).get(pk=outside.pk).flagged is True
    assert {r.pk for r in case_queue(practice_ids=[world.practice.pk], today=TODAY, flagged=False)} == {undated.pk}


def test_a_resolved_case_is_never_flagged_nor_overdue(world):
    case = patient_case(world, due_on=TODAY - timedelta(days=30))
    Case.objects.filter(pk=case.pk).update(state=Case.State.RESOLVED, outcome=Case.Outcome.APPLIED,
                                           resolved_at=datetime(2026, 3, 1, tzinfo=UTC))
    row = case_queue(practice_ids=[world.practice.pk], today=TODAY).get(pk=case.pk)
    assert (row.days_left, row.flagged) == (-30, False)
    assert case_queue(practice_ids=[world.practice.pk], today=TODAY, state="open").count() == 0


def test_today_is_the_practice_local_date(world):
    """At 03:00 UTC on 11 March it is still 10 March in Chicago: a case due 10 March has 0 days left
    in Chicago and -1 in Tokyo (already 11 March, noon)."""
    case = patient_case(world, due_on=date(2026, 3, 10))
    world.practice.time_zone = "America/Chicago"
    world.practice.save(update_fields=["time_zone"])
    with time_machine.travel(datetime(2026, 3, 11, 3, 0, tzinfo=UTC), tick=False):
        assert case_queue(practice_ids=[world.practice.pk]).get(pk=case.pk).days_left == 0
        world.practice.time_zone = "Asia/Tokyo"
        world.practice.save(update_fields=["time_zone"])
        assert case_queue(practice_ids=[world.practice.pk]).get(pk=case.pk).days_left == -1


def test_follow_up_overdue(world):
    past = patient_case(world, state=Case.State.WAITING_PAYER, follow_up_on=TODAY - timedelta(days=1))
    due_today = patient_case(world, state=Case.State.WAITING_PAYER, follow_up_on=TODAY)
    rows = {r.pk: r.follow_up_overdue for r in case_queue(practice_ids=[world.practice.pk], today=TODAY)}
    assert rows == {past.pk: True, due_today.pk: False}


def test_filters(world):
    clerk = world.clerk
    a = patient_case(world, due_on=TODAY + timedelta(days=3), assigned_to=clerk)
    b = patient_case(world, due_on=TODAY + timedelta(days=20), state=Case.State.INVESTIGATING)
    c = payer_case(world, due_on=TODAY + timedelta(days=40))
    ids = [world.practice.pk]

    def pks(**kw):
        return [r.pk for r in case_queue(practice_ids=ids, today=TODAY, **kw)]

    assert pks(state="investigating") == [b.pk]
    assert pks(state=["identified", "investigating"]) == [a.pk, b.pk, c.pk]
    assert pks(kind="payer_credit") == [c.pk]
    assert pks(cause="duplicate_payment") == [c.pk]
    assert pks(payer_type="commercial") == [c.pk]
    assert pks(due_within_days=20) == [a.pk, b.pk]
    assert pks(due_within_days=0) == []
    assert pks(assigned_to=clerk.pk) == [a.pk]
    assert pks(assigned_to=0) == [b.pk, c.pk]
    assert pks(flagged=True) == [a.pk]
    with pytest.raises(InvalidInput, match="unknown state 'open-ish'"):
        pks(state="open-ish")
    with pytest.raises(InvalidInput, match="due_within_days"):
        pks(due_within_days=-1)


def test_queue_totals(world):
    patient_case(world, "40.00", due_on=TODAY)
    patient_case(world, "60.00", due_on=TODAY + timedelta(days=30))
    yc = payer_case(world, "75.00", due_on=TODAY - timedelta(days=1))
    credit_services.payer_credit_recoup(payer_credit_id=yc.payer_credit_id, amount="5.00", reference="PLB WO",
                                        actor=world.clerk, reason="Recouped in 835")
    totals = queue_totals(case_queue(practice_ids=[world.practice.pk], today=TODAY))
    assert totals == {"count": 3, "amount": D("175.00"), "money_left": D("170.00"), "flagged": 2, "overdue": 1,
                      "follow_up_overdue": 0}
    assert queue_totals(case_queue(practice_ids=[world.practice.pk], today=TODAY, kind="encounter_overpaid")) == \
        {"count": 0, "amount": D("0.00"), "money_left": D("0.00"), "flagged": 0, "overdue": 0, "follow_up_overdue": 0}


def test_another_practice_sees_none_of_it(world, other_practice):
    case = patient_case(world)
    practice, user = other_practice
    assert case_queue(practice_ids=[practice.pk]).count() == 0
    with pytest.raises(NotFound, match=f"unknown case {case.pk}"):
        case_detail(case.pk, user)
    with pytest.raises(NotFound):
        case_detail(999999, world.clerk)
    assert case_detail(case.pk, world.clerk).money_left == D("50.00")


@pytest.mark.parametrize("n", [3, 30])
def test_queue_query_count_does_not_grow(world, django_assert_num_queries, n):
    other_payer = PayerFactory(practice=world.practice)
    for i in range(n):
        patient_case(world, "10.00", patient=PatientFactory(practice=world.practice),
                     due_on=TODAY + timedelta(days=i), assigned_to=world.clerk)
    assert other_payer  # several payers, several patients: no lazy loads per row
    # 1: the practices' time zones; 2: the rows with their joins; 3: the totals
    with django_assert_num_queries(3):
        qs = case_queue(practice_ids=[world.practice.pk])
        rows = [(r.patient.last_name, r.credit.on_hand, r.assigned_to.username, r.days_left, r.money_left)
                for r in qs]
        totals = queue_totals(qs)
    assert len(rows) == n and totals["count"] == n


@pytest.mark.parametrize("n", [3, 30])
def test_timeline_is_one_query(world, django_assert_num_queries, n):
    case = patient_case(world)
    for i in range(n):
        record(case, CaseEvent.Kind.NOTE, f"note {i}", actor=world.clerk if i % 2 else world.manager)
    with django_assert_num_queries(1):
        events = [(e.text, e.actor.username, getattr(e, "document", None), getattr(e, "contact", None))
                  for e in case_timeline(case)]
    assert [e[0] for e in events] == [f"note {i}" for i in range(n)]
