"""Fixtures for the back-office pages: `office`, books in two practices built through the real
services (the world's practice A, and practice B whose rows the first practice's staff must never
reach), and helpers to post the pages' forms."""

from datetime import date

import pytest
from django.urls import reverse

from credits import services as credit_services
from credits.models import Credit, NightlyRun
from ledger import services as ledger_services
from ledger.models import Membership
from remittances.posting import remittance_file_post
from remittances.receive import remittance_file_receive
from remittances.x12.generator import ClaimSpec, generate_835
from tests.factories import MembershipFactory, PatientFactory, PayerFactory, PracticeFactory, UserFactory


def messages_of(client, response) -> list[str]:
    """The messages shown after a redirect."""
    return [str(m) for m in client.get(response.url).context["messages"]]


@pytest.fixture
def office(world):
    """Practice A (world): Ana owes 60.00 on a settled visit and has 100.00 available from a card
    payment; Ben has 40.00 locked to a visit whose claim waits; a remittance claim waits unmatched.
    Practice B: Zed with a credit, a visit, a write-off, a refund, a remittance file and claim."""
    clerk = world.clerk
    ana = world.patient(first_name="Ana", last_name="Avila", account_number="A-100")
    card = world.pay(ana, "100.00")  # nothing owed yet: an available credit, refundable to the card
    enc_a, claim_a = world.visit(ana, date(2026, 3, 3), number="ANA-1")
    world.remit(claim_a, pr="60.00", paid="140.00")
    ben = world.patient(first_name="Ben", last_name="Brook", account_number="B-200")
    enc_b, claim_b = world.visit(ben, date(2026, 4, 4), number="BEN-1")
    world.pay(ben, "40.00", encounter=enc_b, channel="cash")
    era = generate_835(specs=[ClaimSpec("NOPE-9", charge="80.00", paid="50.00")])
    received = remittance_file_receive(practice_id=world.practice.pk, data=era, filename="unmatched.835", actor=clerk)
    remittance_file_post(file_id=received.file.pk, actor=clerk)

    b = PracticeFactory(name="Bayside Orthopedics")
    b_staff = MembershipFactory(practice=b, user=UserFactory(username="bayside"), role=Membership.Role.MANAGER).user
    zed = PatientFactory(practice=b, first_name="Zed", last_name="Zzyzx", account_number="Z-1")
    b_payer = PayerFactory(practice=b, name="Bayside Health Plan")
    z_enc = ledger_services.encounter_create(patient_id=zed.pk, date_of_service=date(2026, 2, 2), charge="100.00",
                                             estimated_pr="0.00", actor=b_staff)
    z_claim = ledger_services.claim_submit(encounter_id=z_enc.pk, payer_id=b_payer.pk, claim_number="ZZ-1",
                                           actor=b_staff)
    credit_services.claim_record_result(claim_id=z_claim.pk, outcome="paid", paid_amount="80.00",
                                        adjustment_amount="0.00", patient_responsibility="20.00", actor=b_staff,
                                        reason="Remittance")
    z_wo = credit_services.writeoff_create(encounter_id=z_enc.pk, amount="5.00", reason_code="small_balance",
                                           reason="small", actor=b_staff, as_of=date(2026, 6, 1))
    z_credit = credit_services.manual_credit_add(patient_id=zed.pk, amount="300.00", reason="old system",
                                                 actor=b_staff)
    z_refund = credit_services.refund_request(credit_id=z_credit.pk, amount="200.00", actor=b_staff,
                                              reason="asked", method="check")
    z_era = generate_835(specs=[ClaimSpec("ZZ-404", charge="80.00", paid="50.00")])
    z_file = remittance_file_receive(practice_id=b.pk, data=z_era, filename="z.835", actor=b_staff)
    remittance_file_post(file_id=z_file.file.pk, actor=b_staff)
    z_run = NightlyRun.objects.create(practice=b, triggered_by=b_staff)
    return {
        "ana": ana, "ana_dos": enc_a, "ana_credit": Credit.objects.get(patient=ana), "card_payment": card.payment,
        "ben": ben, "ben_dos": enc_b, "ben_credit": Credit.objects.get(patient=ben),
        "file": received.file, "waiting_claim": received.file.claims.get(),
        "b": b, "b_staff": b_staff, "zed": zed, "z_enc": z_enc, "z_wo": z_wo, "z_credit": z_credit,
        "z_refund": z_refund, "z_file": z_file.file, "z_claim": z_file.file.claims.get(), "z_run": z_run,
    }


def patient_page(patient) -> str:
    return reverse("admin:ledger_patient_change", args=[patient.pk])

