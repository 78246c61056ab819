"""`credits.PatientResponsibility` (the patient-responsibility list's per-patient totals) stays exactly
equal to the sums of the encounters and credits it summarises, whoever writes them: the services,
the set-based nightly run, the 835 posting, bulk loads."""

from datetime import date
from decimal import Decimal as D

import pytest

from credits import services as credit_services
from credits.models import PatientResponsibility
from credits.selectors import patient_responsibility_mismatches
from ledger.benchdata import build_books
from remittances.nightly import nightly_run
from remittances.posting import remittance_file_post
from remittances.receive import remittance_file_receive
from remittances.x12.generator import ClaimSpec, generate_835

pytestmark = pytest.mark.django_db


def totals(patient):
    r = PatientResponsibility.objects.filter(patient=patient).first()
    return (r.balance_owed, r.available, r.locked) if r else (0, 0, 0)


def test_totals_follow_every_kind_of_write(world):
    pat = world.patient()
    assert totals(pat) == (0, 0, 0)
    enc, claim = world.visit(pat, date(2026, 3, 3), estimated_pr="25.00")
    assert totals(pat) == (D("25.00"), 0, 0)
    world.pay(pat, "50.00", encounter=enc)  # held: locked to the pending DoS
    assert totals(pat) == (D("25.00"), 0, D("50.00"))
    world.remit(claim, pr="20.00", paid="150.00")
    assert totals(pat) == (D("20.00"), 0, D("50.00"))
    nightly_run(practice_id=world.practice.pk)  # set-based: applies 20.00, releases the rest
    assert totals(pat) == (0, D("30.00"), 0)
    enc2, claim2 = world.visit(pat, date(2026, 4, 4))
    world.remit(claim2, pr="40.00", paid="100.00")
    c = credit_services.manual_credit_add(patient_id=pat.pk, amount="15.00", reason="old", actor=world.clerk,
                                          encounter_id=enc2.pk)
    assert totals(pat) == (D("40.00"), D("30.00"), D("15.00"))
    credit_services.credit_move(credit_id=c.pk, to_encounter_id=None, actor=world.clerk, reason="flexible")
    credit_services.credit_remove(credit_id=c.pk, amount="5.00", actor=world.clerk, reason="gone")
    assert totals(pat) == (D("40.00"), D("40.00"), 0)
    r = credit_services.refund_request(credit_id=c.pk, amount="10.00", actor=world.clerk, reason="asked",
                                       method="check")
    assert totals(pat) == (D("40.00"), D("30.00"), 0)  # held for the refund: no longer available
    credit_services.refund_reject(refund_id=r.pk, actor=world.clerk, reason="kept")
    credit_services.writeoff_create(encounter_id=enc2.pk, amount="5.00", reason_code="small_balance", reason="x",
                                    actor=world.manager)
    credit_services.credits_apply(patient_id=pat.pk, actor=world.clerk, reason="now",
                                              respect_settings=False)
    assert totals(pat) == (0, D("5.00"), 0)
    credit_services.claim_resubmit(claim_id=claim2.pk, actor=world.clerk, reason="appeal")
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
