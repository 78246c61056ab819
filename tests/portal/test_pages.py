"""The patient's pages (issue 13, portal/views_pages.py): home, a visit, credits, payments,
statements; what they show (numbers worked out by hand), and that nobody else's ids reach them:
another patient's (same practice or another) is a 404, a visitor not signed in goes to the sign-in
page."""

from datetime import date
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from adjudication.models import Case
from adjudication.services.notices import case_send_notice
from credits.models import Credit
from credits.services import credit_purchase, credits_apply, payment_record
from ledger import services as ledger_services
from ledger.models import Patient, Payment
from portal import selectors
from portal.services import statement_issue
from tests.portal.conftest import sign_in

pytestmark = pytest.mark.django_db

D = Decimal


def buy(patient, amount, *, visit=None):
    """The patient buys credits in the portal: flexible, or for a visit (locked to it)."""
    return credit_purchase(patient_id=patient.pk, amount=amount, channel=Payment.Channel.PORTAL, actor=patient.user,
                           card_token="tok_visa", encounter_id=getattr(visit, "pk", None)).credits[0]


def page(client, name, *args) -> str:
    r = client.get(reverse(name, args=args))
    assert r.status_code == 200, r
    return r.content.decode()


def notice_on(world, patient, credit) -> Case:
    Patient.objects.filter(pk=patient.pk).update(us_state="TX", address_line1="12 Elm St", city="Austin",
                                                 postal_code="78701")
    case = Case.objects.create(practice=world.practice, kind=Case.Kind.PATIENT_CREDIT,
                               cause=Case.Cause.PATIENT_OVERPAYMENT, source=credit.source, credit=credit,
                               patient=patient, amount=credit.on_hand, determined_on=date(2026, 6, 20))
    case_send_notice(case=case, actor=world.clerk)
    return case


def test_home_shows_each_visit_oldest_first_final_or_estimate_and_the_totals(world, portal_patient, client):
    p = portal_patient
    april, _ = world.visit(p, date(2026, 4, 1), charge="300.00", estimated_pr="80.00")  # its claim waits
    march, _ = world.visit(p, date(2026, 3, 3), charge="200.00", estimated_pr="45.00", claim=False)
    world.pay(p, "20.00", encounter=march)  # 45 - 20 = 25 left, due now
    flexible = buy(p, "30.00")
    buy(p, "15.00", visit=april)  # held for April
    case = notice_on(world, p, flexible)
    sign_in(client, p)
    html = page(client, "portal:home")
    assert html.index("03/03/2026") < html.index("04/01/2026")  # oldest first
    assert "Office visit" in html and "$45.00" in html and "$20.00" in html and "$25.00" in html
    assert ">Final<" in html
    assert f"Estimate — waiting on {world.payer.name}" in html and "$80.00" in html
    # totals: due now 25.00, waiting on the insurer 80.00, available 30.00, held 15.00
    assert "Due now</h3><p class=\"figure\">$25.00" in html
    assert "Waiting on your insurer</h3><p class=\"figure\">$80.00" in html
    assert "Credits available</h3><p class=\"figure\">$30.00" in html
    assert "<span>Credits held for a visit</span><span>$15.00</span>" in html
    assert "We owe you $30.00</strong> — tell us whether to refund it or keep it as a credit" in html
    assert f'href="{reverse("portal:notice", args=[case.pk])}"' in html
    assert f'href="{reverse("portal:pay")}"' in html and f'href="{reverse("portal:buy")}"' in html
    assert f'href="{reverse("portal:visit", args=[march.pk])}"' in html
    main = html.split("<main", 1)[1]
    assert "DoS" not in main and " PR" not in main and "claim" not in main.lower()  # plain words only


def test_home_without_anything_due_offers_no_pay_button(world, portal_patient, client):
    world.visit(portal_patient, date(2026, 4, 1), estimated_pr="80.00")  # waits on the payer: nothing due now
    sign_in(client, portal_patient)
    html = page(client, "portal:home")
    assert f'href="{reverse("portal:pay")}"' not in html.split("<main", 1)[1]  # the nav still links it
    assert "Buy credits" in html and "We owe you" not in html


def test_a_visit_shows_the_payer_the_share_and_every_movement_of_money(world, portal_patient, client):
    p = portal_patient
    enc, claim = world.visit(p, date(2026, 3, 3), charge="200.00", estimated_pr="50.00")
    world.pay(p, "50.00", encounter=enc)  # held for the visit: its claim waits
    sign_in(client, p)
    html = page(client, "portal:visit", enc.pk)
    assert f"Sent to {world.payer.name}; waiting for its decision." in html and "Not decided yet" in html
    assert "$50.00 of your money is held for this visit" in html
    assert "an estimate until your insurer decides" in html
    world.remit(claim, pr="30.00", paid="150.00")  # adjusted 200 - 150 - 30 = 20
    credits_apply(patient_id=p.pk, actor=world.clerk, respect_settings=False, reason="apply")  # 30 of the 50
    world.remit(claim, pr="25.00", paid="5.00", adjust="0.00", reason="Corrected")  # 5 taken back
    html = page(client, "portal:visit", enc.pk)
    assert f"{world.payer.name} decided and paid its part." in html
    assert "$155.00" in html and "$20.00" in html and ">$25.00<" in html  # paid, adjusted, share
    assert "Credit used: A payment for your visit on 03/03/2026, held until the insurer decides" in html
    assert "$30.00" in html and "−$5.00" in html and "(taken back)" in html
    assert "Taken back into a credit for you" in html
    assert "<span>Total applied</span><span>$25.00</span>" in html
    assert "<span>Balance</span><span>$0.00</span>" in html and ">Final<" in html
    assert "held for this visit" not in html  # what was left became available


def test_credits_in_plain_words_with_a_refund_link_for_available_ones(world, portal_patient, client):
    p = portal_patient
    small, _ = world.visit(p, date(2026, 2, 2), estimated_pr="10.00", claim=False)
    used = buy(p, "10.00")
    credits_apply(patient_id=p.pk, actor=world.clerk, respect_settings=False, reason="apply")  # uses it up
    april, _ = world.visit(p, date(2026, 4, 1), estimated_pr="80.00")
    flexible = buy(p, "30.00")
    held = buy(p, "15.00", visit=april)
    sign_in(client, p)
    html = page(client, "portal:credits")
    avail, rest = html.split('id="ch-h"')
    held_part, past = rest.split('id="cp-h"')
    assert "Bought ahead, to use for any bill." in avail and "$30.00" in avail
    assert f'href="{reverse("portal:refund", args=[flexible.pk])}"' in avail
    assert "Held for your visit on 04/01/2026 until the insurer decides." in held_part
    assert "Bought ahead for your visit on 04/01/2026." in held_part
    assert reverse("portal:refund", args=[held.pk]) not in html
    assert "Used for your bills." in past and reverse("portal:refund", args=[used.pk]) not in html
    assert "<span>Available: you can use this for any bill, or ask for it back</span><span>$30.00</span>" in html
    assert "<span>Held for a visit until the insurer decides</span><span>$15.00</span>" in html
    assert "<span>Being refunded to you</span><span>$0.00</span>" in html
    assert small.pk and Credit.objects.get(pk=used.pk).state == Credit.State.APPLIED


def test_payments_newest_first_how_and_what_each_paid_with_receipts_paginated(world, portal_patient, client,
                                                                              monkeypatch):
    p = portal_patient
    march, _ = world.visit(p, date(2026, 3, 3), estimated_pr="45.00", claim=False)
    desk = world.pay(p, "45.00", encounter=march).payment
    portal = credit_purchase(patient_id=p.pk, amount="30.00", channel=Payment.Channel.PORTAL, actor=p.user,
                             card_token="tok_visa").payment
    check = world.pay(p, "20.00", channel="check").payment
    sign_in(client, p)
    html = page(client, "portal:payments")
    assert html.index("Check no. 1001") < html.index("Card in the portal") < html.index("Card at the desk")
    assert "Visit on 03/03/2026: $45.00" in html
    assert "Kept as a credit: $30.00" in html and "Kept as a credit: $20.00" in html
    for pay in (desk, portal, check):
        assert f'href="{reverse("portal:receipt_pdf", args=[pay.pk])}"' in html
    monkeypatch.setattr(selectors, "PAGE_SIZE", 2)
    first = page(client, "portal:payments")
    assert "Page 1 of 2" in first and "Card at the desk" not in first and 'href="?page=2"' in first
    second = client.get(reverse("portal:payments") + "?page=2").content.decode()
    assert "Card at the desk" in second and "Check no." not in second


def test_statements_list_the_issued_ones_with_their_pdf(world, portal_patient, other_patient, client):
    world.visit(portal_patient, date(2026, 3, 3), estimated_pr="45.00", claim=False)
    st = statement_issue(patient_id=portal_patient.pk, actor=world.clerk)
    theirs = statement_issue(patient_id=other_patient.pk, actor=world.clerk)
    sign_in(client, portal_patient)
    html = page(client, "portal:statements")
    assert st.display_code in html and "$45.00" in html and theirs.display_code not in html
    assert f'href="{reverse("portal:issued_statement_pdf", args=[st.pk])}"' in html
    assert f'href="{reverse("portal:statement_pdf")}"' in html


# --- nobody else's ids -------------------------------------------------------------------------------

def someone_elses_ids(patient, actor) -> dict:
    """A visit, a payment and a statement of `patient`, made by `actor` (staff of their practice)."""
    enc = ledger_services.encounter_create(patient_id=patient.pk, date_of_service=date(2026, 3, 3), charge="100.00",
                                           estimated_pr="40.00", actor=actor)
    pay = payment_record(patient_id=patient.pk, amount="40.00", channel="cash", encounter_id=enc.pk,
                         actor=actor).payment
    st = statement_issue(patient_id=patient.pk, actor=actor)
    return {"portal:visit": enc.pk, "portal:receipt_pdf": pay.pk, "portal:issued_statement_pdf": st.pk}


def test_another_patients_ids_are_a_404_on_every_page(world, portal_patient, other_patient, foreign_patient, client):
    mine = someone_elses_ids(portal_patient, world.clerk)
    same_practice = someone_elses_ids(other_patient, world.clerk)
    other_practice = someone_elses_ids(foreign_patient, get_user_model().objects.get(username="other-admin"))
    sign_in(client, portal_patient)
    for name, pk in mine.items():
        assert client.get(reverse(name, args=[pk])).status_code == 200, name
    for ids in (same_practice, other_practice):
        for name, pk in ids.items():
            assert client.get(reverse(name, args=[pk])).status_code == 404, name
    assert client.get(reverse("portal:visit", args=[999999])).status_code == 404
    # the lists show only the patient's own rows
    assert f'/payments/{same_practice["portal:receipt_pdf"]}/' not in page(client, "portal:payments")
    assert f'/visits/{same_practice["portal:visit"]}/' not in page(client, "portal:home")


ALL_URLS = (("portal:home", ()), ("portal:credits", ()), ("portal:payments", ()), ("portal:statement_pdf", ()),
            ("portal:statements", ()), ("portal:visit", (1,)), ("portal:receipt_pdf", (1,)),
            ("portal:issued_statement_pdf", (1,)))


def test_signed_out_every_page_goes_to_the_sign_in_page(client, world):
    for name, args in ALL_URLS:
        r = client.get(reverse(name, args=args))
        assert r.status_code == 302 and r["Location"].startswith("/portal/login/"), name


def test_a_staff_login_is_not_a_patient(client, world):
    client.force_login(world.clerk)
    for name, args in ALL_URLS:
        r = client.get(reverse(name, args=args))
        assert r.status_code == 302 and r["Location"].startswith("/portal/login/"), name


def test_the_pages_are_read_only(world, portal_patient, client):
    sign_in(client, portal_patient)
    for name, args in ALL_URLS:
        assert client.post(reverse(name, args=args)).status_code == 405, name
