"""Pay in the portal (DOMAIN rule 7, example O): the credits preselected in rule-6 order (even when
they cover only part of what is owed), changeable, the rest charged by card through the processor
with the patient's login as the actor; Recalculate works without JavaScript; declines charge
nothing; the receipt shows credits and card."""

from datetime import date
from decimal import Decimal as D

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from credits.models import Credit, CreditApplication
from credits.services import credits_preselect
from ledger.models import Encounter, Payment, SandboxCharge
from portal.models import PortalSubmission
from tests.portal.conftest import sign_in

pytestmark = pytest.mark.django_db

MAR3 = date(2026, 3, 3)


def example_o(world, patient):
    """$30 available (a front-desk payment with nothing to pay), $45 owed for the visit of 3 Mar."""
    world.pay(patient, "30.00")
    credit = Credit.objects.get(patient=patient)
    enc, _ = world.visit(patient, MAR3, charge="200.00", estimated_pr="45.00", claim=False)
    return credit, enc


def post_pay(client, page, **fields):
    data = {"form_key": page.context["form_key"], "shown": page.context["shown"],
            "visit": [str(v["e"].pk) for v in page.context["visits"] if v["checked"]]}
    for row in page.context["credits"]:
        data[row["name"]] = str(row["value"])
    data.update(fields)
    return client.post(reverse("portal:pay"), data)


def test_example_o_credits_first_and_only_the_rest_by_card(world, portal_patient, client):
    credit, enc = example_o(world, portal_patient)
    sign_in(client, portal_patient)
    page = client.get(reverse("portal:pay"))
    assert page.status_code == 200
    assert [row["value"] for row in page.context["credits"]] == [D("30.00")]  # preselected: the $30 credit
    assert (page.context["owed"], page.context["credit_total"], page.context["rest"]) == (D("45.00"), D("30.00"),
                                                                                        D("15.00"))
    html = page.content.decode()
    assert 'value="30.00"' in html and "$15.00" in html and "Visit on 03/03/2026" in html
    charges_before = SandboxCharge.objects.count()  # the front-desk payment's
    r = post_pay(client, page, card_token="tok_visa", pay="1")
    sub = PortalSubmission.objects.get(patient=portal_patient, kind="pay")
    assert r.status_code == 302 and r["Location"] == reverse("portal:receipt", args=[sub.key])
    enc.refresh_from_db()
    assert enc.balance == D("0.00")  # 3 Mar is paid
    credit.refresh_from_db()
    assert (credit.state, credit.on_hand, credit.applied_amount) == (Credit.State.APPLIED, D("0.00"), D("30.00"))
    pay = Payment.objects.get(patient=portal_patient, channel=Payment.Channel.PORTAL)
    assert pay.amount == D("15.00") and pay.created_by == portal_patient.user
    assert pay.processor_reference.startswith("sbx_ch_")
    new = SandboxCharge.objects.exclude(reference__in=Payment.objects.exclude(pk=pay.pk)
                                        .values("processor_reference"))
    assert SandboxCharge.objects.count() == charges_before + 1 and new.get().amount == D("15.00")
    apps = CreditApplication.objects.filter(encounter=enc).order_by("pk")
    assert [(a.credit_id, a.payment_id, a.amount, a.created_by_id) for a in apps] == [
        (credit.pk, None, D("30.00"), portal_patient.user.pk), (None, pay.pk, D("15.00"), portal_patient.user.pk)]
    assert sub.state == "done" and sub.payment == pay and sub.detail["charged"] == "15.00"
    receipt = client.get(r["Location"])
    text = receipt.content.decode()
    assert receipt.status_code == 200
    assert "Paid with your credits" in text and "$30.00" in text and "Charged to your card" in text and "$15.00" in text
    assert "Visit on 03/03/2026" in text and reverse("portal:receipt_key_pdf", args=[sub.key]) in text
    pdf = client.get(reverse("portal:receipt_key_pdf", args=[sub.key]))
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf" and pdf.content.startswith(b"%PDF")


def test_staff_preselection_keeps_rule_7_the_portal_preselects_part(world, portal_patient):
    credit, enc = example_o(world, portal_patient)
    assert credits_preselect(patient_id=portal_patient.pk, encounter_ids=[enc.pk]) == {}  # not enough: none
    assert credits_preselect(patient_id=portal_patient.pk, encounter_ids=[enc.pk], partial=True) == {
        credit.pk: D("30.00")}


def test_changed_credits_recalculate_without_javascript_and_pay(world, portal_patient, client):
    credit, enc = example_o(world, portal_patient)
    sign_in(client, portal_patient)
    page = client.get(reverse("portal:pay"))
    again = post_pay(client, page, **{f"credit_{credit.pk}": "10.00", "recalc": "1"})
    assert again.status_code == 200 and again.context["rest"] == D("35.00")
    assert not PortalSubmission.objects.exists() and not Payment.objects.filter(channel="portal").exists()
    assert "$35.00" in again.content.decode()
    r = post_pay(client, again, card_token="tok_visa", pay="1")
    assert r.status_code == 302
    pay = Payment.objects.get(channel=Payment.Channel.PORTAL)
    credit.refresh_from_db()
    enc.refresh_from_db()
    assert pay.amount == D("35.00") and credit.on_hand == D("20.00") and credit.state == Credit.State.AVAILABLE
    assert enc.balance == D("0.00")


def test_unticking_a_visit_and_recalculating_preselects_again(world, portal_patient, client):
    credit, enc = example_o(world, portal_patient)
    enc2, _ = world.visit(portal_patient, date(2026, 3, 10), charge="100.00", estimated_pr="20.00", claim=False)
    sign_in(client, portal_patient)
    page = client.get(reverse("portal:pay"))
    assert page.context["owed"] == D("65.00") and page.context["rest"] == D("35.00")
    r = client.post(reverse("portal:pay"), {"form_key": page.context["form_key"], "shown": page.context["shown"],
                                            "visit": [str(enc2.pk)], f"credit_{credit.pk}": "30.00", "recalc": "1"})
    assert r.status_code == 200
    assert r.context["owed"] == D("20.00") and r.context["credit_total"] == D("20.00") and r.context["rest"] == 0
    r = post_pay(client, r, pay="1")  # nothing left for the card: no card needed
    assert r.status_code == 302
    enc2.refresh_from_db()
    credit.refresh_from_db()
    assert enc2.balance == 0 and credit.on_hand == D("10.00") and not Payment.objects.filter(channel="portal").exists()


def test_more_credits_than_owed_is_an_error_on_the_credits(world, portal_patient, client):
    world.pay(portal_patient, "60.00")
    credit = Credit.objects.get(patient=portal_patient)
    enc, _ = world.visit(portal_patient, MAR3, charge="200.00", estimated_pr="45.00", claim=False)
    sign_in(client, portal_patient)
    page = client.get(reverse("portal:pay"))
    assert page.context["credits"][0]["value"] == D("45.00") and page.context["rest"] == 0
    r = post_pay(client, page, **{f"credit_{credit.pk}": "50.00", "pay": "1", "card_token": "tok_visa"})
    assert r.status_code == 400
    assert "exceed what is owed" in " ".join(r.context["errors"]["credits"])
    assert 'id="credits-error"' in r.content.decode()
    credit.refresh_from_db()
    enc.refresh_from_db()
    assert credit.on_hand == D("60.00") and enc.balance == D("45.00")
    assert not CreditApplication.objects.filter(credit=credit).exists()


def test_a_declined_card_charges_nothing_and_says_why(world, portal_patient, client):
    credit, enc = example_o(world, portal_patient)
    sign_in(client, portal_patient)
    before = SandboxCharge.objects.count()
    page = client.get(reverse("portal:pay"))
    r = post_pay(client, page, card_token="tok_insufficient", pay="1")
    assert r.status_code == 400 and "insufficient funds" in " ".join(r.context["errors"]["card_token"])
    assert SandboxCharge.objects.count() == before and not Payment.objects.filter(channel="portal").exists()
    credit.refresh_from_db()
    enc.refresh_from_db()
    assert credit.on_hand == D("30.00") and enc.balance == D("45.00")
    assert PortalSubmission.objects.get().state == "failed"
    # the page comes back with a new key: paying again with a good card works
    assert r.context["form_key"] != page.context["form_key"]
    r = post_pay(client, r, card_token="tok_visa", pay="1")
    assert r.status_code == 302 and Payment.objects.get(channel="portal").amount == D("15.00")


def test_no_card_chosen_for_the_rest_is_an_error_on_the_card(world, portal_patient, client):
    example_o(world, portal_patient)
    sign_in(client, portal_patient)
    r = post_pay(client, client.get(reverse("portal:pay")), pay="1")
    assert r.status_code == 400 and r.context["errors"]["card_token"] == ["Choose the card to pay the rest with."]
    assert not PortalSubmission.objects.exists()


def test_nothing_owed(world, portal_patient, client):
    sign_in(client, portal_patient)
    r = client.get(reverse("portal:pay"))
    assert r.status_code == 200 and "You owe nothing right now" in r.content.decode()
    assert Encounter.objects.filter(patient=portal_patient).count() == 0


def test_the_pay_page_reads_a_fixed_number_of_queries(world, portal_patient, other_patient):
    """Whatever the number of visits and credits: one of each, or six of each."""
    def count(patient, n):
        for _ in range(n):
            world.pay(patient, "10.00")  # nothing owed yet: an available credit
        for i in range(n):
            world.visit(patient, date(2026, 3, 1 + i), estimated_pr="45.00", claim=False)
        client = sign_in(Client(), patient)
        with CaptureQueriesContext(connection) as ctx:
            page = client.get(reverse("portal:pay"))
        assert page.status_code == 200 and len(page.context["credits"]) == n and len(page.context["visits"]) == n
        assert page.context["rest"] == D("35.00") * n
        return len(ctx.captured_queries)

    assert count(portal_patient, 1) == count(other_patient, 6)
