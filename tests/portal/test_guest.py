"""Guest pay through the pages (DOMAIN rule 23, example P): the statement code and the right date
of birth let a guest pay $20 of the statement; five wrong dates of birth in a row lock guest pay
for that statement for 15 minutes (even the right one), logged, unlocked after; another
practice's code is refused; a rate limit per address stands in front of the form."""

import logging
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from ledger.models import Payment, SandboxCharge
from portal.access import SESSION_GUEST
from portal.models import PortalEvent, PortalSubmission
from portal.services import statement_issue

pytestmark = pytest.mark.django_db

START = datetime(2026, 4, 6, 15, 0, tzinfo=UTC)
DOB = date(1980, 5, 17)


@pytest.fixture(autouse=True)
def fresh_cache():
    cache.clear()
    yield
    cache.clear()


def owing(world, patient, amount="50.00", dos=date(2026, 3, 3)):
    enc, _ = world.visit(patient, dos, charge="200.00", estimated_pr=amount, claim=False)
    return enc


def open_statement(client, code, dob="1980-05-17"):
    return client.post(reverse("portal:guest"), {"code": code, "date_of_birth": dob})


def test_example_p_the_right_date_of_birth_pays_20_of_the_statement(world, portal_patient):
    enc = owing(world, portal_patient)
    st = statement_issue(patient_id=portal_patient.pk, actor=world.clerk)
    guest = Client()
    assert guest.get(reverse("portal:guest")).status_code == 200
    r = open_statement(guest, st.display_code.lower(), "05/17/1980")  # as typed: lower case, US date
    assert r.status_code == 302 and r["Location"] == reverse("portal:guest_pay")
    page = guest.get(reverse("portal:guest_pay"))
    html = page.content.decode()
    assert page.status_code == 200 and "Ann L." in html and "Lee" not in html and "Main Street Clinic" in html
    assert "Visit on 03/03/2026" in html and "$50.00" in html and page.context["form"]["amount"].value() == "50.00"
    key = page.context["form"]["form_key"].value()
    r = guest.post(reverse("portal:guest_pay"), {"amount": "20.00", "card_token": "tok_visa", "form_key": key})
    sub = PortalSubmission.objects.get(kind="guest")
    assert r.status_code == 302 and r["Location"] == reverse("portal:guest_receipt", args=[sub.key])
    pay = Payment.objects.get(channel=Payment.Channel.PORTAL)
    enc.refresh_from_db()
    assert pay.amount == D("20.00") and pay.patient == portal_patient and enc.balance == D("30.00")
    assert pay.processor_reference.startswith("sbx_ch_") and sub.payment == pay
    receipt = guest.get(r["Location"]).content.decode()
    assert "$20.00" in receipt and st.display_code in receipt and "Visit on 03/03/2026" in receipt
    kinds = list(PortalEvent.objects.filter(patient=portal_patient).values_list("kind", flat=True).order_by("pk"))
    assert kinds[-2:] == [PortalEvent.Kind.GUEST_OPENED, PortalEvent.Kind.GUEST_PAID]
    # another browser cannot see the receipt
    assert Client().get(r["Location"]).status_code == 404


def test_example_p_five_wrong_dates_lock_15_minutes_logged_then_unlock(world, portal_patient, caplog):
    owing(world, portal_patient)
    st = statement_issue(patient_id=portal_patient.pk, actor=world.clerk)
    guest = Client()
    with time_machine.travel(START, tick=False), caplog.at_level(logging.WARNING, logger="portal"):
        for i in range(4):
            r = open_statement(guest, st.code, f"1980-05-{10 + i}")
            assert r.status_code == 400 and "No statement matches" in r.content.decode()
        assert not PortalEvent.objects.filter(kind=PortalEvent.Kind.GUEST_LOCKED).exists()
        r = open_statement(guest, st.code, "1980-05-18")  # the fifth wrong one in a row
        assert r.status_code == 400
        locked = PortalEvent.objects.get(kind=PortalEvent.Kind.GUEST_LOCKED)
        assert locked.patient == portal_patient and st.display_code in locked.detail
        assert any("guest pay locked" in rec.getMessage() and st.display_code in rec.getMessage()
                   for rec in caplog.records)
        r = open_statement(guest, st.code)  # the right date of birth, while locked
        assert r.status_code == 400 and "locked" in r.content.decode() and "15 minutes" in r.content.decode()
        assert SESSION_GUEST not in guest.session
        assert guest.get(reverse("portal:guest_pay"))["Location"] == reverse("portal:guest")
    with time_machine.travel(START + timedelta(minutes=14, seconds=59), tick=False):
        assert open_statement(guest, st.code).status_code == 400
    with time_machine.travel(START + timedelta(minutes=15, seconds=1), tick=False):
        r = open_statement(guest, st.code)
        assert r.status_code == 302 and guest.get(reverse("portal:guest_pay")).status_code == 200
    assert not Payment.objects.filter(channel="portal").exists()


def test_another_practices_code_with_this_patients_date_of_birth_is_refused(world, portal_patient,
                                                                            foreign_patient):
    owing(world, portal_patient)
    theirs = statement_issue(patient_id=foreign_patient.pk, actor=get_user_model().objects.get(username="other-admin"))
    assert theirs.practice == foreign_patient.practice != portal_patient.practice
    guest = Client()
    r = open_statement(guest, theirs.display_code, "1980-05-17")  # Ann's date of birth
    assert r.status_code == 400 and "No statement matches" in r.content.decode()
    assert SESSION_GUEST not in guest.session
    assert guest.get(reverse("portal:guest_pay")).status_code == 302


def test_amounts_are_checked_and_nothing_is_written(world, portal_patient):
    enc = owing(world, portal_patient)
    st = statement_issue(patient_id=portal_patient.pk, actor=world.clerk)
    guest = Client()
    open_statement(guest, st.code)
    charges = SandboxCharge.objects.count()
    for amount, words in [("-5.00", "amount"), ("0", "greater than zero"), ("0.001", ""),
                          ("50.01", "more than the 50.00 owed now"), ("abc", "")]:
        page = guest.get(reverse("portal:guest_pay"))
        r = guest.post(reverse("portal:guest_pay"), {"amount": amount, "card_token": "tok_visa",
                                                     "form_key": page.context["form"]["form_key"].value()})
        assert r.status_code == 400, amount
        errs = r.context["form"].errors["amount"]
        assert errs and words in " ".join(errs), (amount, errs)
        assert 'aria-describedby="id_amount-error"' in r.content.decode()
    page = guest.get(reverse("portal:guest_pay"))
    r = guest.post(reverse("portal:guest_pay"), {"amount": "20.00", "card_token": "tok_decline",
                                                 "form_key": page.context["form"]["form_key"].value()})
    assert r.status_code == 400 and "declined" in " ".join(r.context["form"].errors["card_token"])
    enc.refresh_from_db()
    assert enc.balance == D("50.00") and SandboxCharge.objects.count() == charges
    assert not Payment.objects.filter(channel="portal").exists()


def test_a_double_click_on_guest_pay_pays_once(world, portal_patient):
    owing(world, portal_patient)
    st = statement_issue(patient_id=portal_patient.pk, actor=world.clerk)
    guest = Client()
    open_statement(guest, st.code)
    key = guest.get(reverse("portal:guest_pay")).context["form"]["form_key"].value()
    first = guest.post(reverse("portal:guest_pay"), {"amount": "20.00", "card_token": "tok_visa", "form_key": key})
    second = guest.post(reverse("portal:guest_pay"), {"amount": "20.00", "card_token": "tok_visa", "form_key": key})
    assert first["Location"] == second["Location"]
    assert Payment.objects.filter(channel="portal").count() == 1


@pytest.mark.parametrize("limit", [3])
def test_a_rate_limit_per_address_stands_in_front_of_the_form(world, portal_patient, settings, limit):
    settings.SETTLE_GUEST_PAY_TRIES_PER_ADDRESS = limit
    owing(world, portal_patient)
    st = statement_issue(patient_id=portal_patient.pk, actor=world.clerk)
    guest = Client(REMOTE_ADDR="203.0.113.9")
    with time_machine.travel(START, tick=False):
        for _ in range(limit):
            assert open_statement(guest, "ABCD-EFGH").status_code == 400  # no such statement
        r = open_statement(guest, st.code)  # even the right code and date, from this address
        assert r.status_code == 429 and "Too many tries" in r.content.decode()
        assert SESSION_GUEST not in guest.session
        assert open_statement(Client(REMOTE_ADDR="203.0.113.10"), st.code).status_code == 302  # another address
    with time_machine.travel(START + timedelta(minutes=15, seconds=1), tick=False):
        assert open_statement(guest, st.code).status_code == 302
