"""What a patient owes, one definition everywhere (issue 10): the demo's "Campbell, Rosa" has a
visit whose claim still waits on the payer, estimated PR 20.00, with her 20.00 copay held as a
credit locked to it, and 5.00 available. Nothing is due now: the list, the heading card, the
payment screen and the API all say due now 0.00 and 20.00 pending the payer, and the nightly run
applies nothing. Once the payer decides, the same 20.00 is due now everywhere and the run pays it."""

import re
from datetime import date
from decimal import Decimal as D

import pytest
from django.urls import reverse

from credits import services as credit_services
from credits.models import PatientResponsibility
from credits.selectors import Owes, patient_owes, patient_responsibility_mismatches
from remittances.nightly import nightly_run
from tests.api.conftest import make_api
from tests.backoffice.conftest import patient_page

pytestmark = pytest.mark.django_db


@pytest.fixture
def rosa(world):
    rosa = world.patient(first_name="Rosa", last_name="Campbell", account_number="RFM-1030")
    settled, claim = world.visit(rosa, date(2026, 9, 27), estimated_pr="40.00")
    world.pay(rosa, "40.00", encounter=settled)  # held while the claim waits
    world.remit(claim, pr="35.00", paid="140.00")
    nightly_run(practice_id=world.practice.pk)  # 35.00 pays 27 Sep; the other 5.00 becomes available
    pending, claim = world.visit(rosa, date(2026, 11, 14), estimated_pr="20.00")
    world.remit(claim, pr=None, outcome="pending")  # the payer pended it: the PR is still the estimate
    world.pay(rosa, "20.00", encounter=pending)  # the copay: held, locked to 14 Nov
    return rosa, pending, claim


def figure(html: str, figure_id: str) -> str:
    return re.search(rf'id="{figure_id}"><div class="label">[^<]*</div><div class="value">([^<]*)<', html).group(1)


def test_nothing_is_due_while_the_claim_waits_on_the_payer(client, world, rosa):
    patient, pending, _ = rosa
    assert patient_owes(patient.pk) == Owes(due_now=D("0.00"), pending_payer=D("20.00"), locked_held=D("20.00"),
                                            available=D("5.00"), refund_hold=D("0.00"))
    client.force_login(world.clerk)

    # the patient-responsibility list: listed (she has a balance), as pending the payer, not as due
    listing = reverse("admin:credits_patientresponsibility_changelist")
    cl = client.get(listing).context["cl"]
    assert [(r.patient_id, r.due_now, r.pending_payer, r.available, r.locked) for r in cl.result_list] == \
        [(patient.pk, D("0.00"), D("20.00"), D("5.00"), D("20.00"))]
    assert [r.patient_id for r in client.get(listing, {"balance": "due"}).context["cl"].result_list] == []
    assert [r.patient_id for r in client.get(listing, {"balance": "pending"}).context["cl"].result_list] == \
        [patient.pk]
    html = client.get(listing).content.decode()
    assert "due now" in html.lower() and "pending the payer" in html.lower()
    # the patient list says the same
    patients = client.get(reverse("admin:ledger_patient_changelist"), {"owes": "yes"}).context["cl"]
    assert list(patients.result_list) == []

    # the heading card of the patient page
    response = client.get(patient_page(patient))
    html = response.content.decode()
    assert (figure(html, "figure-due-now"), figure(html, "figure-pending-payer")) == ("0.00", "20.00")
    assert response.context["page"].owes == patient_owes(patient.pk)
    assert "due now 0.00 · pending the payer 20.00" in response.context["subtitle"]

    # the payment screen: no date of service to pay, the visit shown as pending the payer
    response = client.get(reverse("admin:ledger_patient_payment", args=[patient.pk]))
    assert response.context["encounters"] == [] and [e.pk for e in response.context["pending"]] == [pending.pk]
    html = response.content.decode()
    assert 'id="due-now">0.00<' in html and 'id="pending-payer-total">20.00<' in html
    assert "No balance is due now" in html and 'id="pending-payer"' in html

    # the API
    api = make_api(world.practice)
    got = api.get(f"/patients/{patient.pk}").json()
    assert (got["due_now"], got["pending_payer"], got["available_credit"], got["locked_credit"]) == \
        ("0.00", "20.00", "5.00", "20.00")
    listed = {p["id"]: p for p in api.get("/patients").json()["results"]}
    assert (listed[patient.pk]["due_now"], listed[patient.pk]["pending_payer"]) == ("0.00", "20.00")

    # the nightly run and "Apply credits now" find nothing to pay
    run = nightly_run(practice_id=world.practice.pk)
    assert (run.application_count, run.applied_total) == (0, D("0.00"))
    applied = credit_services.credits_apply(patient_id=patient.pk, actor=world.clerk, reason="now",
                                            respect_settings=False)
    assert applied.total == 0
    assert patient_owes(patient.pk).pending_payer == D("20.00")
    assert patient_responsibility_mismatches() == []


def test_once_the_payer_decides_the_balance_is_due_now_everywhere(client, world, rosa):
    patient, pending, claim = rosa
    world.remit(claim, pr="20.00", paid="160.00")  # the payer decides: PR 20.00 is final and due
    owes = patient_owes(patient.pk)
    assert (owes.due_now, owes.pending_payer, owes.locked_held) == (D("20.00"), 0, D("20.00"))
    row = PatientResponsibility.objects.get(patient=patient)
    assert (row.due_now, row.pending_payer) == (D("20.00"), 0)
    client.force_login(world.clerk)
    response = client.get(reverse("admin:ledger_patient_payment", args=[patient.pk]))
    assert [e.pk for e in response.context["encounters"]] == [pending.pk] and response.context["pending"] == []
    got = make_api(world.practice).get(f"/patients/{patient.pk}").json()
    assert (got["due_now"], got["pending_payer"]) == ("20.00", "0.00")

    run = nightly_run(practice_id=world.practice.pk)  # the held copay pays it
    assert (run.application_count, run.applied_total) == (1, D("20.00"))
    owes = patient_owes(patient.pk)
    assert (owes.due_now, owes.pending_payer, owes.locked_held, owes.available) == (0, 0, 0, D("5.00"))
    assert patient_responsibility_mismatches() == []
