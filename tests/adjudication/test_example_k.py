"""Example K (rule 18): California, the patient keeps the credit. A duplicate third-party payment
leaves a $90 patient credit, known 1 Sep: notice due 30 Nov. The notice goes out 5 Sep; on 10 Sep
the patient elects to keep the credit. No refund is due, the case resolves as kept by the patient's
election, and the next nightly run applies the $90 to the patient's new $60 balance."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import time_machine
from django.core import mail

from adjudication.models import Case, CaseEvent, PatientNotice, RefundPolicy
from adjudication.policies import refund_work_list
from adjudication.scan import scan_practice
from adjudication.services.notices import case_record_election, case_send_notice
from credits.models import Credit, CreditApplication, Refund
from ledger import services as ledger_services
from ledger.models import Practice
from remittances.nightly import nightly_run

pytestmark = pytest.mark.django_db


def noon(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, 19, tzinfo=UTC)  # noon in Los Angeles (PDT)


def test_example_k_california_patient_keeps_the_credit(world, django_capture_on_commit_callbacks):
    Practice.objects.filter(pk=world.practice.pk).update(us_state="CA", time_zone="America/Los_Angeles")
    world.practice.refresh_from_db()
    patient = world.patient(first_name="Maya", last_name="Ortiz", email="maya@example.org",
                            address_line1="9 Palm Dr", city="Fresno", us_state="CA", postal_code="93701")

    # 20 Aug: the visit; the patient pays her estimated 90.00, then the claim goes to the insurer
    with time_machine.travel(noon(date(2026, 8, 20)), tick=False):
        visit, _ = world.visit(patient, date(2026, 8, 20), charge="200.00", estimated_pr="90.00", claim=False)
        world.pay(patient, "90.00", encounter=visit)
        claim = ledger_services.claim_submit(encounter_id=visit.pk, payer_id=world.payer.pk,
                                             claim_number="CA-K-1", actor=world.clerk)
    # 1 Sep: the insurer pays the whole charge as well: the patient's 90.00 is a credit, known today
    with time_machine.travel(noon(date(2026, 9, 1)), tick=False):
        world.remit(claim, pr="0.00", paid="200.00")
        scan_practice(practice_id=world.practice.pk)
    credit = Credit.objects.get(patient=patient, state=Credit.State.AVAILABLE)
    assert (credit.on_hand, credit.source) == (Decimal("90.00"), Credit.Source.OVERPAYMENT)
    case = Case.objects.get(credit=credit)
    assert (case.determined_on, case.notice_due_on, case.due_on) == (date(2026, 9, 1), date(2026, 11, 30),
                                                                    date(2026, 11, 30))
    assert case.clock_rule.us_state == "CA" and case.clock_rule.election_stops_clock
    RefundPolicy.objects.create(practice=world.practice, name="Refund every credit", min_amount="0.01")
    on_list = list(refund_work_list(practice_id=world.practice.pk, today=date(2026, 9, 5)).values_list("pk", flat=True))
    assert on_list == [credit.pk]  # until she answers, the credit waits for a refund

    # 5 Sep: the notice (letter and e-mail); the refund is now due 30 days after it
    with time_machine.travel(noon(date(2026, 9, 5)), tick=False), \
            django_capture_on_commit_callbacks(execute=True):
        notice = case_send_notice(case=case, actor=world.clerk)
    case.refresh_from_db()
    assert (notice.sent_on, case.notice_sent_on, case.due_on) == (date(2026, 9, 5), date(2026, 9, 5),
                                                                  date(2026, 10, 5))
    assert "refund due 2026-10-05" in notice.event.text
    (message,) = mail.outbox
    assert message.to == ["maya@example.org"] and message.attachments[0][1].startswith(b"%PDF")
    assert "October 5, 2026" in message.body

    # 10 Sep: she elects to keep it: the clock stops, no refund is due, the case resolves as kept
    with time_machine.travel(noon(date(2026, 9, 10)), tick=False):
        case_record_election(case=case, actor=world.clerk, election="keep",
                             reason="Patient called: keep it for her next visits")
    case.refresh_from_db()
    assert (case.election, case.election_by, case.election_at) == ("keep", world.clerk, noon(date(2026, 9, 10)))
    assert (case.clock_stopped, case.due_on) == (True, None)
    assert (case.state, case.outcome, case.outcome_note) == (Case.State.RESOLVED, Case.Outcome.KEPT,
                                                             "kept by the patient's election")
    assert not Refund.objects.filter(patient=patient).exists()
    assert not refund_work_list(practice_id=world.practice.pk, today=date(2026, 9, 10)).filter(pk=credit.pk).exists()
    assert list(CaseEvent.objects.filter(case=case).exclude(kind="opened").values_list("kind", flat=True)) == [
        "notice", "clock", "election", "state"]
    assert PatientNotice.objects.filter(case=case).count() == 1

    # a new 60.00 balance: the next nightly run applies 60.00 of the 90.00, as usual
    with time_machine.travel(noon(date(2026, 9, 15)), tick=False):
        second, _ = world.visit(patient, date(2026, 9, 15), charge="60.00", estimated_pr="60.00", claim=False)
    with time_machine.travel(noon(date(2026, 9, 16)), tick=False):
        nightly_run(practice_id=world.practice.pk)
        scan_practice(practice_id=world.practice.pk)
    credit.refresh_from_db()
    assert (credit.state, credit.on_hand, credit.applied_amount) == (Credit.State.AVAILABLE, Decimal("30.00"),
                                                                     Decimal("60.00"))
    assert list(CreditApplication.objects.filter(credit=credit).values_list("encounter_id", "amount")) == [
        (second.pk, Decimal("60.00"))]
    case.refresh_from_db()
    assert (case.state, case.outcome) == (Case.State.RESOLVED, Case.Outcome.KEPT)  # the scan leaves it be
    assert Case.objects.filter(credit=credit).count() == 1
