"""A double-clicked Pay button charges once (issue 13 item 3): two requests with the same form
key, from two threads (each with its own PostgreSQL connection) at the same moment, make ONE card
charge and one payment; both land on the same receipt."""

from datetime import date
from decimal import Decimal as D

import pytest
from django.test import Client
from django.urls import reverse

from credits.models import Credit
from ledger.models import Encounter, Payment, SandboxCharge
from portal.models import PortalSubmission
from tests.credits.test_races import race
from tests.portal.conftest import sign_in

pytestmark = pytest.mark.django_db(transaction=True)


def twin_clients(patient):
    first = sign_in(Client(), patient)
    second = Client()
    second.cookies = first.cookies  # the same browser session, two clicks
    return first, second


@pytest.mark.parametrize("round_", range(3))
def test_a_double_clicked_pay_button_charges_once(world, portal_patient, round_):
    world.pay(portal_patient, "30.00")
    credit = Credit.objects.get(patient=portal_patient)
    enc, _ = world.visit(portal_patient, date(2026, 3, 3), charge="200.00", estimated_pr="45.00", claim=False)
    a, b = twin_clients(portal_patient)
    page = a.get(reverse("portal:pay"))
    data = {"form_key": page.context["form_key"], "shown": page.context["shown"], "visit": [str(enc.pk)],
            f"credit_{credit.pk}": "30.00", "card_token": "tok_visa", "pay": "1"}
    before = SandboxCharge.objects.count()
    results = race(lambda: a.post(reverse("portal:pay"), data), lambda: b.post(reverse("portal:pay"), data))
    responses = [r[1] for r in results]
    sub = PortalSubmission.objects.get(kind="pay")
    assert [r.status_code for r in responses] == [302, 302]
    assert {r["Location"] for r in responses} == {reverse("portal:receipt", args=[sub.key])}
    assert SandboxCharge.objects.count() == before + 1  # ONE charge
    pays = Payment.objects.filter(channel=Payment.Channel.PORTAL)
    assert pays.count() == 1 and pays.get().amount == D("15.00")
    assert Encounter.objects.get(pk=enc.pk).balance == 0
    assert Credit.objects.get(pk=credit.pk).applied_amount == D("30.00")


def test_a_double_clicked_buy_button_buys_once(world, portal_patient):
    a, b = twin_clients(portal_patient)
    page = a.get(reverse("portal:buy"))
    data = {"amount": "50.00", "card_token": "tok_visa", "visit": "",
            "form_key": page.context["form"]["form_key"].value()}
    results = race(lambda: a.post(reverse("portal:buy"), data), lambda: b.post(reverse("portal:buy"), data))
    assert [r[1].status_code for r in results] == [302, 302]
    assert results[0][1]["Location"] == results[1][1]["Location"]
    assert SandboxCharge.objects.count() == 1 and Payment.objects.count() == 1
    assert Credit.objects.get(patient=portal_patient).amount == D("50.00")
