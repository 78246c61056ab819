"""Example J (DOMAIN, worked examples of adjudication): the Texas patient refund clock.

A Texas practice. The patient paid $200 at the visit on 2 Jun; the remittance on 20 Jun sets PR
$50: $150 available, determined 20 Jun, refund due 20 Jul. On 15 Jul the queue flags it (5 days
left); the refund to the card on 16 Jul resolves the case: 26 days from identified to resolved.

Everything goes through the real services: the payment, the remittance, the nightly run that
releases the $150, the scan that opens the case with its clock, the work queue, and the refund
proposed by billing staff and approved by a manager (B2's resolutions), paid back to the card."""

from datetime import UTC, date, datetime
from decimal import Decimal as D

import time_machine

from adjudication import clocks
from adjudication.models import AdjudicationSettings, Case, ClockRule
from adjudication.scan import scan_practice
from adjudication.selectors import case_queue
from adjudication.services.proposals import case_approve, case_propose
from credits.models import Credit, Refund
from credits.nightly import nightly_apply
from ledger.models import Encounter

# Chicago is UTC-5 in June and July
VISIT = datetime(2026, 6, 2, 15, 0, tzinfo=UTC)            # 10:00 on 2 Jun in Chicago
REMITTANCE = datetime(2026, 6, 20, 20, 0, tzinfo=UTC)      # 15:00 on 20 Jun
NIGHT = datetime(2026, 6, 21, 3, 30, tzinfo=UTC)           # 22:30 on 20 Jun in Chicago (UTC says the 21st)
FLAG_DAY = datetime(2026, 7, 15, 14, 0, tzinfo=UTC)
REFUND_DAY = datetime(2026, 7, 16, 15, 0, tzinfo=UTC)


def test_example_j_texas_patient_refund_clock(world, django_capture_on_commit_callbacks):
    practice = world.practice
    assert (practice.us_state, practice.time_zone) == ("TX", "America/Chicago")
    pat = world.patient()

    with time_machine.travel(VISIT, tick=False):
        enc, claim = world.visit(pat, date(2026, 6, 2), charge="200.00", estimated_pr="200.00")
        world.pay(pat, "200.00", encounter=enc)

    with time_machine.travel(REMITTANCE, tick=False):
        world.remit(claim, pr="50.00", paid="150.00")
    assert Encounter.objects.get(pk=enc.pk).remittance_pr == D("50.00")

    with time_machine.travel(NIGHT, tick=False):
        assert clocks.practice_today(practice) == date(2026, 6, 20)
        nightly_apply(practice_id=practice.pk)
        credit = Credit.objects.get(patient=pat)
        assert (credit.state, credit.on_hand, credit.applied_amount) == ("available", D("150.00"), D("50.00"))
        result = scan_practice(practice_id=practice.pk)
        assert result.opened == 1
        # a rescan the same night opens nothing and changes no clock
        again = scan_practice(practice_id=practice.pk)
        assert (again.opened, again.clocks_updated) == (0, 0)

    case = Case.objects.get(credit=credit)
    texas = ClockRule.objects.get(kind="patient_refund", us_state="TX", practice__isnull=True)
    assert (case.kind, case.amount, case.state) == (Case.Kind.PATIENT_CREDIT, D("150.00"), Case.State.IDENTIFIED)
    # the $150 became the patient's on 20 Jun (the remittance, released that night), not on 2 Jun when
    # the $200 was taken and held for the visit
    assert case.determined_on == date(2026, 6, 20), "the scan dates a released held payment by its release"
    assert (case.clock_rule, case.due_on, case.notice_due_on) == (texas, date(2026, 7, 20), None)

    with time_machine.travel(FLAG_DAY, tick=False):
        today = clocks.practice_today(practice)
        assert today == date(2026, 7, 15)
        window = AdjudicationSettings.objects.get_or_create(practice=practice)[0].warning_window_days
        assert clocks.days_left(case, today) == 5
        assert clocks.is_flagged(case, warning_days=window, today=today)
        row = case_queue(practice_ids=[practice.pk], flagged=True).get()
        assert (row.pk, row.days_left, row.flagged) == (case.pk, 5, True)
        # a day earlier it was not yet in the default 7-day window
        assert not clocks.is_flagged(case, warning_days=window, today=date(2026, 7, 12))

    with time_machine.travel(REFUND_DAY, tick=False):
        case_propose(case=case.pk, actor=world.clerk, reason="Refund the overpayment to the card",
                     kind="refund_patient", method="original_payment")
        with django_capture_on_commit_callbacks(execute=True):
            case_approve(case=case.pk, actor=world.manager, reason="Refund due 20 Jul: approved")

    case.refresh_from_db()
    refund = Refund.objects.get(credit=credit)
    assert (refund.amount, refund.method, refund.state) == (D("150.00"), Refund.Method.ORIGINAL_PAYMENT,
                                                            Refund.State.ISSUED)
    credit.refresh_from_db()
    assert (credit.on_hand, credit.refunded_amount) == (D("0.00"), D("150.00"))
    assert (case.state, case.outcome) == (Case.State.RESOLVED, Case.Outcome.REFUND_PATIENT)
    identified = clocks.local_date(practice, case.identified_at)
    resolved = clocks.local_date(practice, case.resolved_at)
    assert (identified, resolved) == (date(2026, 6, 20), date(2026, 7, 16))
    assert (resolved - identified).days == 26
    assert resolved <= case.due_on
