"""Worked examples I, M and N of adjudication (DOMAIN), with their numbers and dates, through the real
835 posting, the scan, the case services and the resolutions."""

from datetime import date, datetime
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
import time_machine

from adjudication.models import Case, CaseEvent, Proposal
from adjudication.scan import scan_practice
from adjudication.services.cases import case_end_investigation, case_investigate, case_wait_on_payer
from adjudication.services.proposals import case_approve, case_propose
from credits import services as credit_services
from credits.models import Credit, PayerCredit, Refund
from ledger.errors import PermissionDenied, RuleViolation
from ledger.models import Account, JournalLine, Payer
from remittances.models import RemittanceAdjustment
from remittances.posting import remittance_file_post
from remittances.receive import remittance_file_receive
from remittances.x12.generator import ClaimSpec, generate_835
from reports.cms838 import cms838_generate
from reports.models import ReportSettings

pytestmark = pytest.mark.django_db

PAYER_ID = "1999999999"
CHICAGO = ZoneInfo("America/Chicago")


def at(y, m, d, hour=10):
    """A moment of the practice's day (America/Chicago, the practice's zone)."""
    return time_machine.travel(datetime(y, m, d, hour, tzinfo=CHICAGO), tick=False)


@pytest.fixture
def w(world):
    world.payer.payer_identifier = PAYER_ID
    world.payer.save()
    return world


def import_835(world, data: bytes, name: str):
    received = remittance_file_receive(practice_id=world.practice.pk, data=data, filename=name, actor=world.clerk)
    assert received.status == "received", received.as_dict()
    remittance_file_post(file_id=received.file.pk, actor=world.clerk)
    received.file.refresh_from_db()
    return received.file


def era(*specs, icn, paid_on, plb=None):
    return generate_835(specs=list(specs), interchange_control_number=icn, check_number=f"CHK{icn}",
                        payer_id=PAYER_ID, plb=plb, payment_date=paid_on)


# --- I: Medicare duplicate, with an investigation -----------------------------------------------------

def test_example_i_medicare_duplicate_with_an_investigation(w):
    w.payer.payer_type, w.payer.medicare_part = Payer.Type.MEDICARE, "A"
    w.payer.save()
    ReportSettings.objects.create(practice=w.practice, medicare_ptan_part_a="140001", report_contact_name="Dana Ng",
                                  report_contact_phone="312-555-0100", cost_report_closed_through=date(2025, 12, 31))
    pat = w.patient(last_name="Rivera", first_name="Ana")
    spec = ClaimSpec("I-0204", charge="180.00", paid="180.00", payer_claim_number="ICN-0204",
                     service_date=date(2026, 2, 4))
    with at(2026, 3, 10):
        _, claim = w.visit(pat, date(2026, 2, 4), charge="180.00", number="I-0204")
        import_835(w, era(spec, icn=1, paid_on=date(2026, 3, 10)), "medicare-0310.835")
    with at(2026, 3, 24):
        import_835(w, era(spec, icn=2, paid_on=date(2026, 3, 24)), "medicare-0324.835")  # paid again
        pc = PayerCredit.objects.get(claim=claim)
        assert (pc.reason, pc.state, pc.amount) == ("duplicate_payment", "open", D("180.00"))
        assert scan_practice(practice_id=w.practice.pk).opened == 1
    case = Case.objects.get(payer_credit=pc)
    assert (case.kind, case.cause, case.amount, case.determined_on, case.due_on) == \
        ("payer_credit", "duplicate_payment", D("180.00"), date(2026, 3, 24), date(2026, 5, 23))

    with at(2026, 3, 25):
        case_investigate(case=case, actor=w.clerk, reason="Checking both remittances", good_faith=True)
    case.refresh_from_db()
    assert (case.state, case.investigation_started_on, case.due_on) == ("investigating", date(2026, 3, 25), None)
    with at(2026, 4, 4):
        case_end_investigation(case=case, actor=w.clerk, reason="Confirmed: paid twice")
    case.refresh_from_db()
    assert (case.investigation_ended_on, case.due_on) == (date(2026, 4, 4), date(2026, 6, 3))

    with at(2026, 4, 6):
        p = case_propose(case=case, actor=w.clerk, reason="Return the duplicate payment", kind="refund_payer")
        assert p.amount == D("180.00")
        with pytest.raises(PermissionDenied):  # the proposer (billing) cannot approve it
            case_approve(case=case, actor=w.clerk, reason="my own", reference="CHK 4410")
        p = case_approve(case=case, actor=w.manager, reason="Refund check to Medicare", reference="CHK 4410")
    pc.refresh_from_db()
    case.refresh_from_db()
    assert (p.state, p.proposed_by, p.decided_by) == ("carried_out", w.clerk, w.manager)
    assert (case.state, case.outcome) == ("resolved", "refund_payer")
    # what the Medicare credit balance report (CMS-838, issue 12) reads: amount 180.00, repaid 180.00,
    # method C (check, with its number), reason 1 (duplicate Medicare payment)
    assert (pc.amount, pc.resolved_amount, pc.outstanding) == (D("180.00"), D("180.00"), D("0.00"))
    assert (pc.state, pc.reference, pc.reason, case.cause) == \
        ("refunded", "CHK 4410", "duplicate_payment", "duplicate_payment")
    assert sum(JournalLine.objects.filter(account=Account.PAYER_CREDITS).values_list("amount", flat=True), D(0)) == 0

    # ... and so it does: the quarter's report has its line, and the next report does not take it again
    with at(2026, 4, 7):
        report = cms838_generate(practice_id=w.practice.pk, part="A", period_start=date(2026, 1, 1),
                                 period_end=date(2026, 3, 31), actor=w.manager, reason="First quarter")
    line = report.lines.get()
    assert (report.provider_number, report.part, report.line_count) == ("140001", "A", 1)
    assert (line.beneficiary_last_name, line.beneficiary_first_initial, line.icn) == ("Rivera", "A", "ICN-0204")
    assert (line.from_date, line.through_date, line.paid_date, line.cost_report_period) == \
        (date(2026, 2, 4), date(2026, 2, 4), date(2026, 3, 24), "O")
    assert (line.credit_balance, line.amount_repaid, line.method, line.amount_outstanding, line.reason) == \
        (D("180.00"), D("180.00"), "C", D("0.00"), "1")
    with at(2026, 7, 7), pytest.raises(RuleViolation, match="earlier report"):
        cms838_generate(practice_id=w.practice.pk, part="A", period_start=date(2026, 1, 1),
                        period_end=date(2026, 6, 30), actor=w.manager, reason="Second quarter")


# --- M: the payer takes it back by itself ---------------------------------------------------------------

def overpaid_by_60(w):
    """A commercial payer paid $60 above the charge: a payer credit and its case, waiting on the payer."""
    pat = w.patient()
    with at(2026, 5, 4):
        _, claim = w.visit(pat, date(2026, 4, 20), charge="100.00", number="M-0420")
        import_835(w, era(ClaimSpec("M-0420", charge="100.00", paid="160.00", payer_claim_number="PCN-M",
                                    service_date=date(2026, 4, 20)), icn=1, paid_on=date(2026, 5, 4)),
                   "payer-0504.835")
        pc = PayerCredit.objects.get(claim=claim)
        assert (pc.reason, pc.amount, pc.state) == ("above_allowed", D("60.00"), "open")
        scan_practice(practice_id=w.practice.pk)
        case = Case.objects.get(payer_credit=pc)
        case_wait_on_payer(case=case, actor=w.clerk, reason="Payer says it will recoup", follow_up_on=date(2026, 6, 4))
    case.refresh_from_db()
    assert case.state == "waiting_payer"
    return pc, case


def test_example_m_the_payers_recoupment_resolves_the_case_by_itself(w, django_capture_on_commit_callbacks):
    pc, case = overpaid_by_60(w)
    events = case.events.count()
    # The example writes "WO -60.00": the effect on the check. In the 835 itself PLB04 is positive for
    # money the payer withholds from this payment (BPR02 = sum CLP04 - sum PLB), so the file says 60.00.
    with at(2026, 5, 25), django_capture_on_commit_callbacks(execute=True):
        f = import_835(w, era(icn=2, paid_on=date(2026, 5, 25), plb=[("WO", "PCN-M", "60.00")]), "payer-0525.835")
    pc.refresh_from_db()
    case.refresh_from_db()
    adj = RemittanceAdjustment.objects.get(payer_credit=pc)
    assert (pc.state, pc.resolved_amount, adj.code, adj.amount) == ("recouped", D("60.00"), "WO", D("60.00"))
    assert (case.state, case.outcome, case.automatic, case.resolved_by) == ("resolved", "recouped", True, None)
    assert "payer-0525.835" in case.outcome_note and "PLB WO PCN-M" in case.outcome_note
    last = case.events.order_by("pk").last()
    assert (last.kind, last.to_state, last.data["filename"]) == ("state", "resolved", f.filename)
    assert case.events.count() == events + 1  # no staff step: only the resolution


def test_example_m_an_approved_wait_for_the_recoupment_is_carried_out_by_it(w, django_capture_on_commit_callbacks):
    pc, case = overpaid_by_60(w)
    with at(2026, 5, 5):
        case_propose(case=case, actor=w.clerk, reason="The payer will recoup", kind="await_recoupment")
        p = case_approve(case=case, actor=w.manager, reason="ok")
    case.refresh_from_db()
    assert (p.state, case.state) == ("approved", "approved")  # it waits for the payer
    with at(2026, 5, 25), django_capture_on_commit_callbacks(execute=True):
        import_835(w, era(icn=2, paid_on=date(2026, 5, 25), plb=[("WO", "PCN-M", "60.00")]), "payer-0525.835")
    p.refresh_from_db()
    case.refresh_from_db()
    pc.refresh_from_db()
    assert (pc.state, p.state, case.state, case.outcome) == ("recouped", "carried_out", "resolved", "recouped")


def test_a_negative_wo_naming_an_open_payer_credit_does_not_open_a_second_one(w):
    pc, case = overpaid_by_60(w)
    with at(2026, 5, 25):
        import_835(w, era(icn=2, paid_on=date(2026, 5, 25), plb=[("WO", "PCN-M", "-60.00")]), "payer-0525.835")
    pc.refresh_from_db()
    adj = RemittanceAdjustment.objects.get(code="WO")
    assert PayerCredit.objects.filter(practice=w.practice).count() == 1  # the same money, owed once
    assert (pc.state, pc.outstanding) == ("open", D("60.00"))
    assert adj.payer_credit_id is None and f"#{pc.pk}" in adj.note
    case.refresh_from_db()
    assert case.state == "waiting_payer"  # nothing was recouped: the case stays open


# --- N: money moved before the approval was carried out -----------------------------------------------

def test_example_n_money_moved_before_the_approval_is_refused_with_nothing_half_done(w):
    pat = w.patient()
    with at(2026, 6, 1):
        w.pay(pat, "400.00", channel="check")
        credit = Credit.objects.get(patient=pat)
        scan_practice(practice_id=w.practice.pk)
        case = Case.objects.get(credit=credit)
        p = case_propose(case=case, actor=w.clerk, reason="Refund the patient by check", kind="refund_patient",
                         method="check")
    assert p.amount == D("400.00")
    with at(2026, 6, 3):  # the patient pays a new $100 balance with that credit
        w.visit(pat, date(2026, 6, 3), charge="100.00", estimated_pr="100.00", claim=False)
        applied = credit_services.credits_apply(patient_id=pat.pk, actor=w.clerk, reason="Patient paid with credit",
                                                respect_settings=False)
        assert applied.total == D("100.00")
    credit.refresh_from_db()
    assert credit.on_hand == D("300.00")
    before = (Refund.objects.count(), JournalLine.objects.count(), Credit.history.filter(id=credit.pk).count())
    with at(2026, 6, 4):
        p = case_approve(case=case, actor=w.manager, reason="Approve the refund", reference="CHK 9001")
    case.refresh_from_db()
    assert (p.state, case.state) == ("proposed", "proposed")
    assert "only 300.00 is left" in p.refusal
    refused = case.events.order_by("pk").last()
    assert refused.kind == CaseEvent.Kind.REFUSED and "only 300.00 is left" in refused.text
    assert (Refund.objects.count(), JournalLine.objects.count(), Credit.history.filter(id=credit.pk).count()) == before
    credit.refresh_from_db()
    assert (credit.on_hand, credit.refund_hold, credit.refunded_amount) == (D("300.00"), D("0.00"), D("0.00"))
    assert Proposal.objects.get().decided_by is None  # still waiting for a decision
