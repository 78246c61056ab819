"""The scan (adjudication/scan.py, DOMAIN rule 15): every kind of credit balance found with its
amount, cause, source and day of determination; one case per balance (a rescan opens nothing, the
database refuses a second case); the minimum age; locked credits left alone; cases whose money is
gone resolve by themselves with the reason; another practice's money untouched; "scan now"."""

import io
import json
from datetime import UTC, date, datetime
from decimal import Decimal as D

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction

from adjudication import jobs
from adjudication.models import AdjudicationSettings, Case, CaseEvent, Proposal
from adjudication.scan import cases_close_gone, scan_now, scan_practice
from credits import services as credit_services
from credits.models import Credit, PayerCredit
from ledger.access import system_user
from ledger.errors import InvalidInput, NotFound, PermissionDenied
from ledger.models import Membership, Payer
from remittances.nightly import nightly_run
from remittances.posting import remittance_file_post
from remittances.receive import remittance_file_receive
from remittances.x12.generator import ClaimSpec, generate_835
from tests.factories import MembershipFactory, PatientFactory, PayerFactory, PracticeFactory, UserFactory

pytestmark = pytest.mark.django_db

PAYER_ID = "1999999999"


@pytest.fixture
def w(world):
    world.payer.payer_identifier = PAYER_ID
    world.payer.save()
    return world


def credit(world, patient, amount):
    c = credit_services.manual_credit_add(patient_id=patient.pk, amount=amount, reason="Overpaid at the desk",
                                          actor=world.clerk)
    assert isinstance(c, Credit)
    return c


def import_835(world, data: bytes, name="era.835"):
    received = remittance_file_receive(practice_id=world.practice.pk, data=data, filename=name, actor=world.clerk)
    assert received.status == "received", received.as_dict()
    remittance_file_post(file_id=received.file.pk, actor=world.clerk)
    return received.file


def era(*specs, icn=1, plb=None):
    return generate_835(specs=list(specs), interchange_control_number=icn, check_number=f"CHK{icn}",
                        payer_id=PAYER_ID, plb=plb)


def scan(world, **kw):
    return scan_practice(practice_id=world.practice.pk, **kw)


# --- what the scan finds ----------------------------------------------------------------------------

def test_a_patient_credit_opens_one_case_with_its_amount_cause_source_and_local_day(w):
    pat = w.patient()
    # 03:30 UTC on 10 March is 21:30 on 9 March in Chicago (the practice's zone): determined on the 9th
    with time_machine.travel(datetime(2026, 3, 10, 3, 30, tzinfo=UTC), tick=False):
        c = credit(w, pat, "150.00")
    with time_machine.travel(datetime(2026, 3, 11, 9, 0, tzinfo=UTC), tick=False):
        result = scan(w)
    assert (result.opened, result.opened_patient_credits, result.closed) == (1, 1, 0)
    case = Case.objects.get(credit=c)
    assert (case.kind, case.cause, case.source, case.amount, case.patient_id, case.state, case.determined_on) == (
        "patient_credit", "patient_overpayment", "manual", D("150.00"), pat.pk, "identified", date(2026, 3, 9))
    # history from its first row, with who and why
    first = case.history.order_by("history_id").first()
    assert (first.history_type, first.history_user, first.history_change_reason) == ("+", system_user(),
                                                                                     "Nightly scan")
    event = CaseEvent.objects.get(case=case)
    assert (event.kind, event.to_state, event.actor, event.data["amount"]) == ("opened", "identified", system_user(),
                                                                               "150.00")
    assert f"patient credit #{c.pk}" in event.text and "150.00" in event.text

    again = scan(w)
    assert again.opened == 0
    assert Case.objects.filter(credit=c).count() == 1
    assert CaseEvent.objects.filter(case=case).count() == 1


def test_the_database_refuses_a_second_case_for_the_same_money(w):
    pat = w.patient()
    c = credit(w, pat, "40.00")
    scan(w)
    with pytest.raises(IntegrityError, match="case_one_per_credit"), transaction.atomic():
        Case.objects.create(practice=w.practice, kind="patient_credit", cause="patient_overpayment", credit=c,
                            patient=pat, amount=D("40.00"), determined_on=date(2026, 3, 1))
    pc = credit_services.payer_credit_open(payer_id=w.payer.pk, amount="25.00", reason_code="duplicate_payment",
                                           actor=w.clerk, reason="Paid twice")
    scan(w)
    with pytest.raises(IntegrityError, match="case_one_per_payer_credit"), transaction.atomic():
        Case.objects.create(practice=w.practice, kind="payer_credit", cause="duplicate_payment", payer_credit=pc,
                            payer=w.payer, amount=D("25.00"), determined_on=date(2026, 3, 1))


def test_the_minimum_age_is_respected_in_the_practice_zone(w):
    AdjudicationSettings.objects.create(practice=w.practice, min_credit_age_days=5)
    pat = w.patient()
    with time_machine.travel(datetime(2026, 3, 1, 16, 0, tzinfo=UTC), tick=False):  # 1 March, 10:00 in Chicago
        c = credit(w, pat, "60.00")
    assert scan(w, today=date(2026, 3, 5)).opened == 0  # four days old
    assert not Case.objects.filter(credit=c).exists()
    assert scan(w, today=date(2026, 3, 6)).opened == 1  # five days old
    assert Case.objects.get(credit=c).determined_on == date(2026, 3, 1)


def test_the_settings_row_is_created_with_its_defaults(w):
    assert not AdjudicationSettings.objects.filter(practice=w.practice).exists()
    scan(w)
    assert AdjudicationSettings.objects.get(practice=w.practice).min_credit_age_days == 0


def test_a_locked_credit_is_not_a_credit_balance_yet(w):
    pat = w.patient()
    enc, _ = w.visit(pat, date(2026, 2, 2), charge="200.00")
    locked = credit_services.manual_credit_add(patient_id=pat.pk, amount="30.00", reason="Held for the visit",
                                               actor=w.clerk, encounter_id=enc.pk)
    assert locked.state == "locked"
    assert scan(w).opened == 0
    assert not Case.objects.filter(credit=locked).exists()


def test_payer_credits_open_cases_with_cause_and_payer_type(w):
    medicare = PayerFactory(practice=w.practice, name="Medicare", payer_type=Payer.Type.MEDICARE)
    with time_machine.travel(datetime(2026, 3, 24, 15, 0, tzinfo=UTC), tick=False):
        dup = credit_services.payer_credit_open(payer_id=medicare.pk, amount="180.00", reason_code="duplicate_payment",
                                                actor=w.clerk, reason="Medicare paid twice")
        wrong = credit_services.payer_credit_open(payer_id=w.payer.pk, amount="45.00", reason_code="wrong_primary",
                                                  actor=w.clerk, reason="Another payer was primary")
        result = scan(w)
    assert (result.opened, result.opened_payer_credits) == (2, 2)
    a = Case.objects.get(payer_credit=dup)
    assert (a.kind, a.cause, a.amount, a.payer_id, a.payer_type, a.determined_on, a.credit_id) == (
        "payer_credit", "duplicate_payment", D("180.00"), medicare.pk, "medicare", date(2026, 3, 24), None)
    b = Case.objects.get(payer_credit=wrong)
    assert (b.cause, b.payer_type, b.amount) == ("wrong_primary", "commercial", D("45.00"))


def test_payer_credits_from_835s_above_the_charge_and_a_deferred_takeback(w):
    pat = w.patient()
    _, claim = w.visit(pat, date(2026, 2, 3), charge="100.00", number="X-1")
    import_835(w, era(ClaimSpec("X-1", charge="100.00", paid="160.00", payer_claim_number="PCN-X1")))
    import_835(w, era(plb=[("WO", "PCN-OLD", "-25.00")], icn=2), name="deferred.835")
    assert scan(w).opened_payer_credits == 2
    above = Case.objects.get(payer_credit__claim=claim)
    assert (above.cause, above.amount, above.patient_id) == ("above_allowed", D("60.00"), pat.pk)
    takeback = Case.objects.get(kind="payer_credit", payer_credit__payer_claim_number="PCN-OLD")
    assert (takeback.cause, takeback.amount) == ("takeback_pending", D("25.00"))


def test_a_visit_paid_beyond_its_charge_opens_a_case_for_the_excess(w):
    pat = w.patient()
    enc, claim = w.visit(pat, date(2026, 2, 10), charge="200.00")
    w.remit(claim, pr="0.00", paid="250.00", adjust="-50.00")
    _, fine_claim = w.visit(pat, date(2026, 2, 11), charge="200.00")
    w.remit(fine_claim, pr="20.00", paid="180.00")
    with time_machine.travel(datetime(2026, 2, 20, 18, 0, tzinfo=UTC), tick=False):
        result = scan(w)
    assert result.opened_encounters == 1
    case = Case.objects.get(kind="encounter_overpaid")
    assert (case.encounter_id, case.patient_id, case.cause, case.amount, case.determined_on) == (
        enc.pk, pat.pk, "paid_beyond_charge", D("50.00"), date(2026, 2, 20))
    assert scan(w).opened == 0


# --- money gone: the case resolves itself -------------------------------------------------------------

def test_a_credit_applied_by_the_nightly_run_resolves_its_case(w):
    pat = w.patient()
    c = credit(w, pat, "150.00")
    scan(w)
    case = Case.objects.get(credit=c)
    w.visit(pat, date(2026, 3, 2), charge="150.00", estimated_pr="150.00", claim=False)
    assert nightly_run(practice_id=w.practice.pk).applied_total == D("150.00")
    result = scan(w)
    assert (result.opened, result.closed) == (0, 1)
    case.refresh_from_db()
    assert (case.state, case.outcome, case.automatic, case.resolved_by) == ("resolved", "applied", True, None)
    assert "applied to open balances by the nightly run" in case.outcome_note and "150.00 applied" in case.outcome_note
    event = CaseEvent.objects.get(case=case, kind="state")
    assert (event.from_state, event.to_state, event.text) == ("identified", "resolved", case.outcome_note)
    last = case.history.order_by("-history_id").first()
    assert (last.state, last.history_change_reason) == ("resolved", case.outcome_note)
    assert scan(w).closed == 0  # nothing twice


def test_a_refunded_credit_resolves_its_case_naming_the_refund(w):
    pat = w.patient()
    c = credit(w, pat, "50.00")
    scan(w)
    refund = credit_services.refund_request(credit_id=c.pk, amount="50.00", actor=w.clerk, reason="Patient asked",
                                            method="check", reference="CHK-881")
    c.refresh_from_db()
    assert c.state == "refunded", refund.state
    assert cases_close_gone(practice_id=w.practice.pk, actor=w.clerk) == 1
    case = Case.objects.get(credit=c)
    assert (case.state, case.outcome) == ("resolved", "refund_patient")
    assert f"refund #{refund.pk} by check CHK-881" in case.outcome_note
    assert case.history.order_by("-history_id").first().history_user == w.clerk


def test_a_removed_credit_resolves_as_money_gone_with_the_removal_reason(w):
    pat = w.patient()
    c = credit(w, pat, "20.00")
    scan(w)
    credit_services.credit_remove(credit_id=c.pk, actor=w.clerk, reason="Refunded outside the system")
    scan(w)
    case = Case.objects.get(credit=c)
    assert (case.state, case.outcome) == ("resolved", "money_gone")
    assert "Refunded outside the system" in case.outcome_note


def test_a_partly_used_credit_keeps_its_case_open(w):
    pat = w.patient()
    c = credit(w, pat, "150.00")
    scan(w)
    w.visit(pat, date(2026, 3, 2), charge="100.00", estimated_pr="100.00", claim=False)
    nightly_run(practice_id=w.practice.pk)
    assert scan(w).closed == 0
    assert Case.objects.get(credit=c).state == "identified"


def test_a_recoupment_in_an_835_resolves_the_payer_credit_case_naming_the_file(w):
    """Example M: a commercial payer paid 60 above the charge; a later 835 carries PLB WO 60.00 with
    the payer's claim number; the case resolves itself naming the file."""
    pat = w.patient()
    _, claim = w.visit(pat, date(2026, 4, 1), charge="100.00", number="M-1")
    import_835(w, era(ClaimSpec("M-1", charge="100.00", paid="160.00", payer_claim_number="PCN-M1")))
    scan(w)
    case = Case.objects.get(payer_credit__claim=claim)
    file = import_835(w, era(plb=[("WO", "PCN-M1", "60.00")], icn=2), name="recoup-0415.835")
    assert PayerCredit.objects.get(pk=case.payer_credit_id).state == "recouped"
    assert scan(w).closed == 1
    case.refresh_from_db()
    assert (case.state, case.outcome, case.automatic) == ("resolved", "recouped", True)
    assert "835 file recoup-0415.835 (PLB WO PCN-M1 60.00" in case.outcome_note
    event = CaseEvent.objects.get(case=case, kind="state")
    assert event.data["file"] == file.pk and event.data["filename"] == "recoup-0415.835"


def test_a_payer_credit_refunded_by_check_resolves_its_case(w):
    pc = credit_services.payer_credit_open(payer_id=w.payer.pk, amount="80.00", reason_code="duplicate_payment",
                                           actor=w.clerk, reason="Paid twice")
    scan(w)
    credit_services.payer_credit_refund(payer_credit_id=pc.pk, check_number="5501", actor=w.clerk,
                                        reason="Refund check")
    assert cases_close_gone(practice_id=w.practice.pk, actor=w.clerk, case_ids=[Case.objects.get(
        payer_credit=pc).pk]) == 1
    case = Case.objects.get(payer_credit=pc)
    assert case.outcome == "refund_payer"
    assert case.outcome_note == "The payer credit was refunded to the payer by check 5501."


def test_a_visit_no_longer_beyond_its_charge_resolves(w):
    pat = w.patient()
    _, claim = w.visit(pat, date(2026, 2, 10), charge="200.00")
    w.remit(claim, pr="0.00", paid="250.00", adjust="-50.00")
    scan(w)
    case = Case.objects.get(kind="encounter_overpaid")
    w.remit(claim, pr="0.00", paid="-50.00", adjust="50.00", outcome="paid", reason="Payer corrected")
    assert cases_close_gone(practice_id=w.practice.pk, actor=None) == 1
    case.refresh_from_db()
    assert (case.state, case.outcome) == ("resolved", "money_gone")
    assert "no longer paid beyond its charge" in case.outcome_note


def test_a_live_proposal_of_a_case_whose_money_is_gone_is_refused_with_the_reason(w):
    pat = w.patient()
    c = credit(w, pat, "150.00")
    scan(w)
    case = Case.objects.get(credit=c)
    proposal = Proposal.objects.create(case=case, kind="refund_patient", amount=D("150.00"), method="check",
                                       reason="Refund it", proposed_by=w.clerk)
    w.visit(pat, date(2026, 3, 2), charge="150.00", estimated_pr="150.00", claim=False)
    nightly_run(practice_id=w.practice.pk)
    scan(w)
    proposal.refresh_from_db()
    case.refresh_from_db()
    assert (proposal.state, proposal.decided_by) == ("refused", system_user())
    assert proposal.refusal == case.outcome_note and "applied" in proposal.refusal
    assert CaseEvent.objects.filter(case=case, kind="refused", data__proposal=proposal.pk).exists()
    assert proposal.history.order_by("-history_id").first().state == "refused"


def test_an_approved_wait_for_the_recoupment_is_carried_out_by_it(w):
    pat = w.patient()
    _, claim = w.visit(pat, date(2026, 4, 1), charge="100.00", number="M-2")
    import_835(w, era(ClaimSpec("M-2", charge="100.00", paid="130.00", payer_claim_number="PCN-M2")))
    scan(w)
    case = Case.objects.get(payer_credit__claim=claim)
    proposal = Proposal.objects.create(case=case, kind="await_recoupment", amount=D("30.00"), reason="They will",
                                       proposed_by=w.clerk, state="approved", decided_by=w.manager,
                                       decided_at=datetime(2026, 4, 2, tzinfo=UTC))
    import_835(w, era(plb=[("WO", "PCN-M2", "30.00")], icn=2), name="later.835")
    cases_close_gone(practice_id=w.practice.pk, actor=None, case_ids=[case.pk])
    proposal.refresh_from_db()
    assert (proposal.state, proposal.decided_by, proposal.result["outcome"]) == ("carried_out", w.manager, "recouped")


# --- tenancy and "scan now" -------------------------------------------------------------------------

def test_another_practice_money_is_untouched(w):
    other = PracticeFactory(name="Elsewhere")
    theirs = PatientFactory(practice=other)
    their_credit = credit_services.manual_credit_add(patient_id=theirs.pk, amount="70.00", reason="Overpaid",
                                                     actor=system_user())
    mine = credit(w, w.patient(), "10.00")
    assert scan(w).opened == 1
    assert Case.objects.filter(credit=mine).exists()
    assert not Case.objects.filter(practice=other).exists() and not Case.objects.filter(credit=their_credit).exists()
    # and closing another practice's case by id from here does nothing
    scan_practice(practice_id=other.pk)
    their_case = Case.objects.get(credit=their_credit)
    credit_services.credit_remove(credit_id=their_credit.pk, actor=system_user(), reason="gone")
    assert cases_close_gone(practice_id=w.practice.pk, actor=w.clerk, case_ids=[their_case.pk]) == 0
    their_case.refresh_from_db()
    assert their_case.state == "identified"


def test_scan_now_runs_as_the_staff_member_and_refuses_others(w):
    c = credit(w, w.patient(), "35.00")
    outsider = UserFactory(username="outsider")
    other = PracticeFactory(name="Elsewhere")
    MembershipFactory(practice=other, user=outsider, role=Membership.Role.MANAGER)
    with pytest.raises(PermissionDenied):
        scan_now(practice_id=w.practice.pk, actor=outsider, reason="Looking around")
    with pytest.raises(InvalidInput):
        scan_now(practice_id=w.practice.pk, actor=w.clerk, reason=" ")
    assert not Case.objects.exists()
    result = scan_now(practice_id=w.practice.pk, actor=w.clerk, reason="New credits from the morning")
    assert result.opened == 1 and result.as_dict()["opened"] == 1
    case = Case.objects.get(credit=c)
    assert case.history.first().history_user == w.clerk
    assert CaseEvent.objects.get(case=case).text.startswith("New credits from the morning: ")


# --- the jobs and the command -------------------------------------------------------------------------

def test_the_nightly_job_applies_then_scans(w):
    pat = w.patient()
    c = credit(w, pat, "100.00")
    w.visit(pat, date(2026, 3, 2), charge="40.00", estimated_pr="40.00", claim=False)
    out = jobs.nightly_run(w.practice.pk)
    assert out["nightly"]["applied_total"] == "40.00"
    assert out["scan"]["opened"] == 1
    case = Case.objects.get(credit=c)
    assert case.amount == D("60.00")  # what the application left


def test_a_failing_scan_does_not_undo_the_nightly_application(w, monkeypatch, caplog):
    pat = w.patient()
    c = credit(w, pat, "100.00")
    w.visit(pat, date(2026, 3, 2), charge="40.00", estimated_pr="40.00", claim=False)

    def broken(**kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(jobs, "scan_practice", broken)
    out = jobs.nightly_run(w.practice.pk)
    assert out["scan"] == {"error": "RuntimeError: disk full"}
    assert "scan of practice" in caplog.text
    c.refresh_from_db()
    assert (c.on_hand, c.applied_amount) == (D("60.00"), D("40.00"))
    assert not Case.objects.exists()


def test_the_scan_job_acts_as_the_user_who_asked(w):
    c = credit(w, w.patient(), "12.00")
    assert jobs.scan(w.practice.pk, actor_id=w.manager.pk, reason="Scan now")["opened"] == 1
    assert Case.objects.get(credit=c).history.first().history_user == w.manager


def test_the_scan_cases_command_prints_the_result_as_json(w):
    credit(w, w.patient(), "12.00")
    out = io.StringIO()
    call_command("scan_cases", "--practice", str(w.practice.pk), stdout=out)
    result = json.loads(out.getvalue().strip().splitlines()[-1])
    assert (result["practice_id"], result["opened"], result["closed"]) == (w.practice.pk, 1, 0)
    with pytest.raises(CommandError, match="unknown practice"):
        call_command("scan_cases", "--practice", "999999")


def test_small_batches_find_everything_once_across_batch_boundaries(w):
    """Keyset batches of 2: one patient's three credits straddle two batches, nothing is skipped."""
    a, b = w.patient(), w.patient()
    mine = [credit(w, a, "11.00"), credit(w, a, "12.00"), credit(w, a, "13.00"), credit(w, b, "14.00"),
            credit(w, b, "15.00")]
    for n in range(3):
        credit_services.payer_credit_open(payer_id=w.payer.pk, amount=f"{20 + n}.00", reason_code="other",
                                          actor=w.clerk, reason="Unclear")
    result = scan(w, batch_size=2)
    assert (result.opened_patient_credits, result.opened_payer_credits) == (5, 3)
    assert set(Case.objects.filter(kind="patient_credit").values_list("credit_id", flat=True)) == {c.pk for c in mine}
    assert set(Case.objects.filter(kind="payer_credit").values_list("cause", flat=True)) == {"other"}
    assert scan(w, batch_size=2).opened == 0


def test_an_unknown_practice_is_a_clear_error(w):
    with pytest.raises(NotFound, match="unknown practice 999999"):
        scan_practice(practice_id=999999)
