"""Payer contacts (issue 11 item 3): date, channel, person, reference, outcome, follow-up; waiting on
the payer with a follow-up date; bad dates and channels refused with nothing written."""

from datetime import date

import pytest
from django.db import DatabaseError, IntegrityError, transaction

from adjudication.models import Case, CaseEvent, PayerContact
from adjudication.services import cases as svc
from adjudication.services.core import move
from ledger.errors import InvalidInput, PermissionDenied, RuleViolation
from tests.adjudication.test_cases import at_noon, last_history, other_practice_case, payer_case, written  # noqa: F401

# at_noon: 22 Jun 2026 in the practice's day; payer_case: determined 24 Mar 2026


def contact(case, actor, **kw):
    args = {"contacted_on": date(2026, 6, 22), "channel": "phone", "outcome": "Payer confirms the duplicate"}
    args.update(kw)
    return svc.case_record_contact(case=case, actor=actor, **args)


def counts(case):
    return (*written(case), PayerContact.objects.filter(case_id=case.pk).count())


def test_a_contact_is_recorded_with_its_event(world, at_noon):  # noqa: F811
    case = payer_case(world)
    c = contact(case, world.clerk, person="Dana at provider services", reference="CALL-7781", channel="phone")
    c.refresh_from_db()
    assert (c.contacted_on, c.channel, c.person, c.reference, c.outcome, c.follow_up_on, c.created_by) == (
        date(2026, 6, 22), "phone", "Dana at provider services", "CALL-7781", "Payer confirms the duplicate", None,
        world.clerk)
    ev = c.event
    assert (ev.kind, ev.case_id, ev.actor) == (CaseEvent.Kind.CONTACT, case.pk, world.clerk)
    assert ev.data["reference"] == "CALL-7781" and "Dana at provider services" in ev.text
    case.refresh_from_db()
    assert case.state == Case.State.IDENTIFIED  # no follow-up: no waiting


def test_a_follow_up_while_investigating_waits_on_the_payer(world, at_noon):  # noqa: F811
    case = payer_case(world)
    svc.case_investigate(case=case, actor=world.clerk, reason="Look")
    c = contact(case, world.clerk, channel="portal", follow_up_on=date(2026, 7, 6), reason="Payer will recoup")
    case.refresh_from_db()
    assert (case.state, case.follow_up_on) == (Case.State.WAITING_PAYER, date(2026, 7, 6))
    ev = CaseEvent.objects.filter(case=case, kind=CaseEvent.Kind.STATE).order_by("-id").first()
    assert (ev.from_state, ev.to_state, ev.data["contact"], ev.text) == (
        "investigating", "waiting_payer", c.pk, "Payer will recoup")
    assert last_history(case).history_change_reason == "Payer will recoup"


def test_a_second_follow_up_while_waiting_moves_the_date(world, at_noon):  # noqa: F811
    case = payer_case(world)
    contact(case, world.clerk, follow_up_on=date(2026, 7, 6), wait_on_payer=True)
    contact(case, world.clerk, contacted_on=date(2026, 6, 22), channel="fax", follow_up_on=date(2026, 7, 20))
    case.refresh_from_db()
    assert (case.state, case.follow_up_on) == (Case.State.WAITING_PAYER, date(2026, 7, 20))
    ev = CaseEvent.objects.filter(case=case, kind=CaseEvent.Kind.STATE).order_by("-id").first()
    assert (ev.data["was_follow_up_on"], ev.data["follow_up_on"]) == ("2026-07-06", "2026-07-20")


def test_a_contact_recorded_late_may_have_a_follow_up_already_past(world, at_noon):  # noqa: F811
    case = payer_case(world)
    contact(case, world.clerk, contacted_on=date(2026, 6, 1), follow_up_on=date(2026, 6, 15), wait_on_payer=True)
    case.refresh_from_db()
    assert case.follow_up_on == date(2026, 6, 15)  # overdue on the queue (follow_up_on < today)
    assert Case.objects.filter(pk=case.pk, follow_up_on__lt=date(2026, 6, 22)).exists()


@pytest.mark.parametrize("kw, field, message", [
    ({"contacted_on": date(2026, 6, 23)}, "contacted_on", "2026-06-23 is in the future"),
    ({"contacted_on": date(2025, 3, 23)}, "contacted_on", "more than a year before the overpayment was determined"),
    ({"contacted_on": "yesterday"}, "contacted_on", "is not a day"),
    ({"contacted_on": None}, "contacted_on", "contacted on is required"),
    ({"follow_up_on": date(2026, 6, 21)}, "follow_up_on", "2026-06-21 is before 2026-06-22"),
    ({"follow_up_on": date(2027, 7, 1)}, "follow_up_on", "more than a year ahead"),
    ({"channel": "pigeon"}, "channel", "'pigeon' is not one of phone, portal, fax, letter, email"),
    ({"outcome": "   "}, "outcome", "outcome is required"),
    ({"person": "x" * 201}, "person", "person is 201 characters; at most 200"),
    ({"reference": "r" * 101}, "reference", "at most 100"),
    ({"wait_on_payer": True}, "follow_up_on", "waiting on the payer needs a follow-up day"),
])
def test_bad_contacts_are_refused_with_nothing_written(world, at_noon, kw, field, message):  # noqa: F811
    case = payer_case(world)
    before = counts(case)
    with pytest.raises(InvalidInput, match=message) as err:
        contact(case, world.clerk, **kw)
    assert err.value.field == field
    assert counts(case) == before


def test_waiting_refused_from_proposed_keeps_the_contact_unwritten(world, at_noon):  # noqa: F811
    case = payer_case(world)
    move(case, "propose", actor=world.clerk, reason="Refund check")
    before = counts(case)
    with pytest.raises(RuleViolation, match="cannot be set to wait on the payer"):
        contact(case, world.clerk, follow_up_on=date(2026, 7, 1), wait_on_payer=True)
    assert counts(case) == before
    # without asking to wait, the contact is just recorded
    contact(case, world.clerk, follow_up_on=date(2026, 7, 1))
    case.refresh_from_db()
    assert case.state == Case.State.PROPOSED and counts(case)[2] == 1


def test_a_resolved_case_takes_no_contact(world, at_noon):  # noqa: F811
    case = payer_case(world)
    move(case, "resolve", actor=world.manager, reason="Refunded", outcome=Case.Outcome.REFUND_PAYER, note="Check 1")
    before = counts(case)
    with pytest.raises(RuleViolation, match="is resolved; reopen it before recording a payer contact"):
        contact(case, world.clerk)
    assert counts(case) == before


def test_another_practices_case_is_refused(world, at_noon):  # noqa: F811
    theirs = other_practice_case(world)
    before = counts(theirs)
    with pytest.raises(PermissionDenied, match="is not staff of practice"):
        contact(theirs, world.clerk)
    assert counts(theirs) == before


def test_the_database_refuses_a_follow_up_before_the_contact(world, at_noon):  # noqa: F811
    case = payer_case(world)
    ev = svc.case_note(case=case, actor=world.clerk, text="direct insert")
    with pytest.raises(IntegrityError, match="payer_contact_follow_up_after"), transaction.atomic():
        PayerContact.objects.create(case=case, event=ev, contacted_on=date(2026, 6, 22), channel="phone",
                                    outcome="x", follow_up_on=date(2026, 6, 1), created_by=world.clerk)


def test_contacts_are_append_only(world, at_noon):  # noqa: F811
    case = payer_case(world)
    c = contact(case, world.clerk)
    with pytest.raises(DatabaseError, match="UPDATE on adjudication_payercontact is not allowed"), \
            transaction.atomic():
        PayerContact.objects.filter(pk=c.pk).update(outcome="changed")
    c.refresh_from_db()
    assert c.outcome == "Payer confirms the duplicate"
