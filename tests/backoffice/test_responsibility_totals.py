"""`credits.PatientResponsibility` (the patient-responsibility list's per-patient totals) stays exactly
equal to the sums of the encounters and credits it summarises, whoever writes them: the services,
the set-based nightly run, the 835 posting, bulk loads."""

from datetime import date
from decimal import Decimal as D

import pytest
from django.db import connection

from credits import services as credit_services
from credits.models import PatientResponsibility
from credits.selectors import patient_responsibility_mismatches
from ledger import services as ledger_services
from ledger.benchdata import build_books
from remittances.nightly import nightly_run
from remittances.posting import remittance_file_post
from remittances.receive import remittance_file_receive
from remittances.x12.generator import ClaimSpec, generate_835
from tests.factories import PayerFactory

pytestmark = pytest.mark.django_db


def totals(patient):
    """(due now, pending the payer, available, locked) from the patient's row."""
    r = PatientResponsibility.objects.filter(patient=patient).first()
    return (r.due_now, r.pending_payer, r.available, r.locked) if r else (0, 0, 0, 0)


def test_totals_follow_every_kind_of_write(world):
    pat = world.patient()
    assert totals(pat) == (0, 0, 0, 0)
    enc, claim = world.visit(pat, date(2026, 3, 3), estimated_pr="25.00")
    assert totals(pat) == (0, D("25.00"), 0, 0)  # the claim waits: pending the payer, not due
    world.pay(pat, "50.00", encounter=enc)  # held: locked to the pending DoS
    assert totals(pat) == (0, D("25.00"), 0, D("50.00"))
    world.remit(claim, pr="20.00", paid="150.00")  # the claim closes: the new PR is due now
    assert totals(pat) == (D("20.00"), 0, 0, D("50.00"))
    nightly_run(practice_id=world.practice.pk)  # set-based: applies 20.00, releases the rest
    assert totals(pat) == (0, 0, D("30.00"), 0)
    enc2, claim2 = world.visit(pat, date(2026, 4, 4))
    world.remit(claim2, pr="40.00", paid="100.00")
    c = credit_services.manual_credit_add(patient_id=pat.pk, amount="15.00", reason="old", actor=world.clerk,
                                          encounter_id=enc2.pk)
    assert totals(pat) == (D("40.00"), 0, D("30.00"), D("15.00"))
    credit_services.credit_move(credit_id=c.pk, to_encounter_id=None, actor=world.clerk, reason="flexible")
    credit_services.credit_remove(credit_id=c.pk, amount="5.00", actor=world.clerk, reason="gone")
    assert totals(pat) == (D("40.00"), 0, D("40.00"), 0)
    r = credit_services.refund_request(credit_id=c.pk, amount="10.00", actor=world.clerk, reason="asked",
                                       method="check")
    assert totals(pat) == (D("40.00"), 0, D("30.00"), 0)  # held for the refund: no longer available
    credit_services.refund_reject(refund_id=r.pk, actor=world.clerk, reason="kept")
    credit_services.writeoff_create(encounter_id=enc2.pk, amount="5.00", reason_code="small_balance", reason="x",
                                    actor=world.manager)
    credit_services.credits_apply(patient_id=pat.pk, actor=world.clerk, reason="now",
                                              respect_settings=False)
    assert totals(pat) == (0, 0, D("5.00"), 0)
    credit_services.claim_resubmit(claim_id=claim2.pk, actor=world.clerk, reason="appeal")
    # the applied 35.00 goes back into a credit locked to the DoS; its balance waits on the payer again
    assert totals(pat) == (0, D("35.00"), D("5.00"), D("35.00"))
    assert patient_responsibility_mismatches() == []
    era = generate_835(specs=[ClaimSpec(claim2.claim_number, charge="200.00", paid="190.00",
                                        patient_responsibility=[("2", "10.00")])], interchange_control_number=3)
    received = remittance_file_receive(practice_id=world.practice.pk, data=era, filename="r.835", actor=world.clerk)
    remittance_file_post(file_id=received.file.pk, actor=world.clerk)
    credit_services.credit_import_create(practice_id=world.practice.pk, filename="i.csv", actor=world.clerk,
                                       data=f"account_number,amount,note\n{pat.account_number},7.00,old\n".encode())
    assert patient_responsibility_mismatches() == []


def test_totals_of_bulk_loaded_books(db):
    practice, _ = build_books(patients=50, credits_per_patient=4)
    assert PatientResponsibility.objects.filter(practice=practice).count() == 50
    assert patient_responsibility_mismatches(practice_id=practice.pk) == []
    nightly_run(practice_id=practice.pk)
    assert patient_responsibility_mismatches(practice_id=practice.pk) == []


def test_claims_move_a_balance_between_due_now_and_pending_the_payer(world):
    """Whether a balance is due now or pending the payer follows its claims: no claim or only
    closed ones, due; any claim still open, pending. The claims' own statements move it."""
    pat = world.patient()
    enc, _ = world.visit(pat, date(2026, 5, 5), estimated_pr="30.00", claim=False)
    assert totals(pat) == (D("30.00"), 0, 0, 0)  # no claim: the estimate is what is owed
    first = ledger_services.claim_submit(encounter_id=enc.pk, payer_id=world.payer.pk, claim_number="P-1",
                                         actor=world.clerk)
    assert totals(pat) == (0, D("30.00"), 0, 0)
    world.remit(first, pr="30.00", outcome="pending")
    assert totals(pat) == (0, D("30.00"), 0, 0)  # pended: still open
    second_payer = PayerFactory(practice=world.practice, name="Secondary Health")
    second = ledger_services.claim_submit(encounter_id=enc.pk, payer_id=second_payer.pk, claim_number="S-1",
                                          actor=world.clerk)
    world.remit(first, pr="25.00", paid="150.00")
    assert totals(pat) == (0, D("25.00"), 0, 0)  # the first closed, the second still waits
    world.remit(second, pr="25.00", outcome="denied", paid="0.00")
    assert totals(pat) == (D("25.00"), 0, 0, 0)  # the last open claim closed
    credit_services.claim_resubmit(claim_id=second.pk, actor=world.clerk, reason="appeal")
    assert totals(pat) == (0, D("25.00"), 0, 0)
    assert patient_responsibility_mismatches() == []


def test_set_based_claim_statements_keep_the_split(db):
    """Bulk loads and set-based updates of claims (several rows per encounter in one statement)."""
    practice, _ = build_books(patients=30, encounters_per_patient=2, credits_per_patient=2, finalized=False)
    assert patient_responsibility_mismatches(practice_id=practice.pk) == []
    with connection.cursor() as cur:  # a second claim per visit of the even patients, in one statement
        cur.execute("""INSERT INTO ledger_claim (practice_id, encounter_id, payer_id, claim_number, payer_claim_number,
                                                 state, billed_amount, paid_amount, adjustment_amount,
                                                 remittance_count, submitted_at)
                       SELECT c.practice_id, c.encounter_id, c.payer_id, c.claim_number || '-second', '', 'submitted', 0, 0,
                              0, 0, now()
                         FROM ledger_claim c JOIN ledger_encounter e ON e.id = c.encounter_id
                        WHERE c.practice_id = %s AND e.patient_id %% 2 = 0""", [practice.pk])
        cur.execute("UPDATE ledger_encounter SET remittance_pr = 40 WHERE practice_id = %s", [practice.pk])
        cur.execute("UPDATE ledger_claim SET state = 'paid' WHERE practice_id = %s AND claim_number NOT LIKE '%%-second'",
                    [practice.pk])
        assert patient_responsibility_mismatches(practice_id=practice.pk) == []
        cur.execute("UPDATE ledger_claim SET state = 'denied' WHERE practice_id = %s AND claim_number LIKE '%%-second'",
                    [practice.pk])
    rows = PatientResponsibility.objects.filter(practice=practice)
    assert {(r.due_now, r.pending_payer) for r in rows} == {(D("80.00"), 0)}
    assert patient_responsibility_mismatches(practice_id=practice.pk) == []
