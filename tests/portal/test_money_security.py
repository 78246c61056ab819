"""The money pages' security (issue 13 item 3): another patient's ids are a 404 on every URL with
an id; a visitor not signed in goes to the sign-in page; CSRF is enforced on every form; amounts
are checked on the server (negative, zero, sub-cent, more than owed / refundable / on hand) with
the error on the field and nothing written; the card number never reaches settle."""

from datetime import date
from decimal import Decimal as D

import pytest
from django.test import Client
from django.urls import reverse

from credits.models import Credit, CreditApplication, Refund
from credits.services import credit_purchase
from ledger.models import Payment, SandboxCharge
from portal.models import PortalSubmission
from portal.services import new_form_key, statement_issue
from tests.portal.conftest import sign_in

pytestmark = pytest.mark.django_db


def bought(patient, amount="25.00"):
    return credit_purchase(patient_id=patient.pk, amount=amount, channel=Payment.Channel.PORTAL,
                           actor=patient.user, card_token="tok_visa").credits[0]


def test_another_patients_ids_are_a_404_on_every_money_url(world, portal_patient, other_patient, foreign_patient,
                                                          client):
    theirs = bought(other_patient)
    foreign = bought(foreign_patient)
    world.visit(other_patient, date(2026, 3, 3), estimated_pr="45.00", claim=False)
    # a receipt of the other patient's
    other = sign_in(Client(), other_patient)
    page = other.get(reverse("portal:buy"))
    other.post(reverse("portal:buy"), {"amount": "10.00", "card_token": "tok_visa",
                                       "form_key": page.context["form"]["form_key"].value()})
    sub = PortalSubmission.objects.get(patient=other_patient)
    sign_in(client, portal_patient)
    for url in [reverse("portal:refund", args=[theirs.pk]), reverse("portal:refund", args=[foreign.pk]),
                reverse("portal:refund", args=[999999]), reverse("portal:receipt", args=[sub.key]),
                reverse("portal:receipt_key_pdf", args=[sub.key]), reverse("portal:notice", args=[999999]),
                reverse("portal:notice_letter", args=[999999]),
                reverse("portal:guest_receipt", args=[sub.key])]:
        assert client.get(url).status_code == 404, url
    r = client.post(reverse("portal:refund", args=[theirs.pk]), {"amount": "25.00", "reason": "mine now",
                                                                 "form_key": new_form_key()})
    assert r.status_code == 404 and not Refund.objects.exists()
    # the other patient's visit posted to my pay form: refused, nothing written
    enc = other_patient.encounters.get()
    page = client.get(reverse("portal:pay"))
    r = client.post(reverse("portal:pay"), {"form_key": page.context["form_key"], "visit": [str(enc.pk)],
                                            f"credit_{theirs.pk}": "25.00", "card_token": "tok_visa", "pay": "1"})
    assert r.status_code == 400 and r.context["errors"]["visits"]
    assert not CreditApplication.objects.exists() and not PortalSubmission.objects.filter(
        patient=portal_patient).exists()
    # my own buy page offers none of the other patient's visits
    assert str(enc.pk) not in [v for v, _ in client.get(reverse("portal:buy")).context["form"].fields["visit"].choices]


def test_not_signed_in_goes_to_the_sign_in_page(world, portal_patient):
    credit = bought(portal_patient)
    anon = Client()
    for url in [reverse("portal:pay"), reverse("portal:buy"), reverse("portal:refunds"),
                reverse("portal:refund", args=[credit.pk]), reverse("portal:receipt", args=["x" * 32]),
                reverse("portal:notice", args=[1])]:
        r = anon.get(url)
        assert r.status_code == 302 and r["Location"].startswith(reverse("portal:login")), url


def test_csrf_is_enforced_on_every_money_form(world, portal_patient):
    credit = bought(portal_patient)
    world.visit(portal_patient, date(2026, 3, 3), estimated_pr="45.00", claim=False)
    st = statement_issue(patient_id=portal_patient.pk, actor=world.clerk)
    strict = sign_in(Client(enforce_csrf_checks=True), portal_patient)
    posts = [(reverse("portal:pay"), {"visit": "1", "card_token": "tok_visa", "pay": "1"}),
             (reverse("portal:buy"), {"amount": "10.00", "card_token": "tok_visa"}),
             (reverse("portal:refund", args=[credit.pk]), {"amount": "5.00", "reason": "x"}),
             (reverse("portal:notice", args=[1]), {"election": "keep"}),
             (reverse("portal:guest"), {"code": st.code, "date_of_birth": "1980-05-17"}),
             (reverse("portal:guest_pay"), {"amount": "5.00", "card_token": "tok_visa"})]
    for url, data in posts:
        data["form_key"] = new_form_key()
        assert strict.post(url, data).status_code == 403, url
    assert not Refund.objects.exists() and Payment.objects.filter(channel="portal").count() == 1  # the purchase
    # with the token from the page, the same form goes through
    page = strict.get(reverse("portal:buy"))
    token = page.cookies["csrftoken"].value if "csrftoken" in page.cookies else strict.cookies["csrftoken"].value
    r = strict.post(reverse("portal:buy"), {"amount": "10.00", "card_token": "tok_visa", "csrfmiddlewaretoken": token,
                                            "form_key": page.context["form"]["form_key"].value()})
    assert r.status_code == 302


@pytest.mark.parametrize("amount,words", [("-5.00", ""), ("0", "greater than zero"), ("0.001", ""),
                                          ("1000000000000.00", ""), ("", "required")])
def test_buy_amounts_are_checked_with_the_error_on_the_amount(world, portal_patient, client, amount, words):
    sign_in(client, portal_patient)
    charges = SandboxCharge.objects.count()
    page = client.get(reverse("portal:buy"))
    r = client.post(reverse("portal:buy"), {"amount": amount, "card_token": "tok_visa",
                                            "form_key": page.context["form"]["form_key"].value()})
    assert r.status_code == 400
    errs = r.context["form"].errors["amount"]
    assert errs and words in " ".join(errs).lower()
    assert 'aria-describedby="id_amount-error"' in r.content.decode() or amount == ""
    assert SandboxCharge.objects.count() == charges and not Payment.objects.exists() and not Credit.objects.exists()


@pytest.mark.parametrize("value", ["-5.00", "0.001", "31.00"])
def test_pay_credit_amounts_negative_sub_cent_or_more_than_on_hand(world, portal_patient, client, value):
    world.pay(portal_patient, "30.00")
    credit = Credit.objects.get(patient=portal_patient)
    enc, _ = world.visit(portal_patient, date(2026, 3, 3), estimated_pr="45.00", claim=False)
    sign_in(client, portal_patient)
    page = client.get(reverse("portal:pay"))
    r = client.post(reverse("portal:pay"), {"form_key": page.context["form_key"], "shown": page.context["shown"],
                                            "visit": [str(enc.pk)], f"credit_{credit.pk}": value,
                                            "card_token": "tok_visa", "pay": "1"})
    assert r.status_code == 400
    errors = r.context["errors"]
    assert errors.get(f"credit_{credit.pk}") or errors.get("credits"), errors
    credit.refresh_from_db()
    enc.refresh_from_db()
    assert credit.on_hand == D("30.00") and enc.balance == D("45.00")
    assert not Payment.objects.filter(channel="portal").exists()


def test_buy_for_a_visit_and_flexible(world, portal_patient, client):
    enc, _ = world.visit(portal_patient, date(2026, 3, 3), estimated_pr="45.00")  # waits on the payer
    sign_in(client, portal_patient)
    page = client.get(reverse("portal:buy"))
    assert ("", "Flexible: any visit") in page.context["form"].fields["visit"].choices
    assert (str(enc.pk), "Visit on 03/03/2026") in page.context["form"].fields["visit"].choices
    r = client.post(reverse("portal:buy"), {"amount": "40.00", "visit": str(enc.pk), "card_token": "tok_visa",
                                            "form_key": page.context["form"]["form_key"].value()})
    assert r.status_code == 302
    c = Credit.objects.get(patient=portal_patient)
    assert (c.source, c.state, c.locked_encounter_id, c.amount) == (Credit.Source.PURCHASED, Credit.State.LOCKED,
                                                                   enc.pk, D("40.00"))
    assert c.payment.channel == "portal" and c.payment.created_by == portal_patient.user
    text = client.get(r["Location"]).content.decode()
    assert "for the visit on 03/03/2026" in text and "$40.00" in text
    page = client.get(reverse("portal:buy"))
    r = client.post(reverse("portal:buy"), {"amount": "15", "visit": "", "card_token": "tok_decline",
                                            "form_key": page.context["form"]["form_key"].value()})
    assert r.status_code == 400 and "declined" in " ".join(r.context["form"].errors["card_token"])
    assert Credit.objects.filter(patient=portal_patient).count() == 1


def test_only_the_processors_reference_is_stored(world, portal_patient, client):
    sign_in(client, portal_patient)
    page = client.get(reverse("portal:buy"))
    html = page.content.decode()
    assert "Test Visa ending 4242 — approves" in html and 'name="card_number"' not in html
    client.post(reverse("portal:buy"), {"amount": "10.00", "card_token": "tok_visa",
                                        "form_key": page.context["form"]["form_key"].value()})
    pay = Payment.objects.get()
    assert pay.processor_reference == SandboxCharge.objects.get().reference
    assert "tok_visa" not in (pay.note + pay.processor_reference)
