"""The portal's PDFs (portal/documents.py) read back with pypdf: a payment's receipt, the receipt of
a checkout with credits first (example O), and statements of account (the current one, and an
issued one with its guest-pay code); the views send them as attachments."""

import io
import re
from datetime import date

import pytest
from django.conf import settings
from django.urls import reverse
from pypdf import PdfReader

from adjudication.clocks import local_date
from credits.services import credit_purchase, payment_checkout, payment_record, writeoff_create
from ledger.models import Payment
from portal import documents
from portal.models import PortalSubmission
from portal.services import statement_issue
from tests.portal.conftest import sign_in

pytestmark = pytest.mark.django_db


def text_of(content: bytes) -> str:
    assert content[:5] == b"%PDF-"
    return " ".join(" ".join(page.extract_text().split()) for page in PdfReader(io.BytesIO(content)).pages)


def download(client, name, *args) -> tuple[str, str]:
    r = client.get(reverse(name, args=args))
    assert r.status_code == 200 and r["Content-Type"] == "application/pdf"
    return r["Content-Disposition"], text_of(r.content)


def test_receipt_of_a_portal_payment_shows_what_it_paid_and_only_the_end_of_the_card_reference(
        world, portal_patient, client):
    p = portal_patient
    march, _ = world.visit(p, date(2026, 3, 3), estimated_pr="45.00", claim=False)
    april, _ = world.visit(p, date(2026, 4, 1), estimated_pr="20.00", claim=False)
    pay = payment_record(patient_id=p.pk, amount="70.00", channel=Payment.Channel.PORTAL, actor=p.user,
                         card_token="tok_visa").payment  # pays 45 + 20, 5 left as a credit
    sign_in(client, p)
    disposition, text = download(client, "portal:receipt_pdf", pay.pk)
    on = local_date(world.practice, pay.received_at)
    assert disposition == f'attachment; filename="receipt-{on:%Y-%m-%d}-{pay.pk}.pdf"'
    assert "Main Street Clinic" in text and "Payment receipt" in text and "Ann Lee" in text
    assert "Amount paid $70.00" in text and "Card in the portal" in text
    assert f"reference ending in {pay.processor_reference[-4:]}" in text and pay.processor_reference not in text
    assert "03/03/2026 Office visit $45.00" in text and "04/01/2026 Office visit $20.00" in text
    assert "Paid toward your visits $65.00" in text
    assert "Credit left on your account from this payment $5.00" in text


def test_receipt_of_a_payment_held_for_a_visit_says_nothing_is_applied_yet(world, portal_patient):
    p = portal_patient
    enc, _ = world.visit(p, date(2026, 3, 3), estimated_pr="50.00")  # its claim waits
    pay = world.pay(p, "50.00", encounter=enc).payment
    text = text_of(documents.receipt_pdf(p, pay))
    assert "Card at the desk" in text and "Nothing has been applied to a visit yet." in text
    assert "Paid toward your visits $0.00" in text and "from this payment $50.00" in text
    with pytest.raises(ValueError):
        documents.receipt_pdf(world.patient(), pay)


def test_checkout_receipt_shows_the_credit_used_and_the_rest_charged(world, portal_patient):
    """Example O: $30 available, $45 owed for 03/03; the credit pays 30, the card 15."""
    p = portal_patient
    enc, _ = world.visit(p, date(2026, 3, 3), estimated_pr="45.00", claim=False)
    credit = credit_purchase(patient_id=p.pk, amount="30.00", channel=Payment.Channel.PORTAL, actor=p.user,
                             card_token="tok_visa").credits[0]
    result = payment_checkout(patient_id=p.pk, encounter_ids=[enc.pk], credit_amounts={credit.pk: "30.00"},
                              channel=Payment.Channel.PORTAL, actor=p.user, card_token="tok_visa")
    assert result.charged == 15
    sub = PortalSubmission.objects.create(
        key="k" * 40, patient=p, kind="pay", state=PortalSubmission.State.DONE, payment=result.payment,
        detail={"credits": [{"credit": credit.pk, "visit": "2026-03-03", "amount": "30.00"}], "charged": "15.00",
                "visits": [{"date": "2026-03-03", "amount": "45.00"}]})
    text = text_of(documents.checkout_receipt_pdf(p, sub))
    assert "Visits paid" in text and "03/03/2026 $45.00" in text
    assert "03/03/2026 Bought ahead, to use for any bill. $30.00" in text
    assert "Credits used $30.00" in text and "Charged to your card $15.00" in text and "Total paid $45.00" in text
    assert f"ending in {result.payment.processor_reference[-4:]}" in text
    assert result.payment.processor_reference not in text


def test_current_statement_lists_visits_and_totals(world, portal_patient, client):
    p = portal_patient
    march, _ = world.visit(p, date(2026, 3, 3), charge="200.00", estimated_pr="45.00", claim=False)
    april, _ = world.visit(p, date(2026, 4, 1), charge="300.00", estimated_pr="80.00")  # waits on the payer
    world.pay(p, "20.00", encounter=march)
    credit_purchase(patient_id=p.pk, amount="30.00", channel=Payment.Channel.PORTAL, actor=p.user,
                    card_token="tok_visa")
    credit_purchase(patient_id=p.pk, amount="15.00", channel=Payment.Channel.PORTAL, actor=p.user,
                    card_token="tok_visa", encounter_id=april.pk)
    sign_in(client, p)
    disposition, text = download(client, "portal:statement_pdf")
    assert re.fullmatch(r'attachment; filename="statement-\d{4}-\d{2}-\d{2}\.pdf"', disposition)
    assert "Statement of account" in text
    # date, what, charges, share, payments, credits used, written off, balance, status
    assert "03/03/2026 Office visit $200.00 $45.00 $20.00 $0.00 $0.00 $25.00 Final" in text
    assert "04/01/2026 Office visit $300.00 $80.00 $0.00 $0.00 $0.00 $80.00 Estimate" in text
    assert f"Visit on 04/01/2026: your share is an estimate until {world.payer.name} decides." in text
    assert "Due now $25.00" in text and "Waiting on your insurers (an estimate) $80.00" in text
    assert "Credits available $30.00" in text and "Credits held for a visit $15.00" in text
    assert "Pay online as a guest" not in text


def test_issued_statement_prints_its_guest_pay_code(world, portal_patient, client):
    p = portal_patient
    world.visit(p, date(2026, 3, 3), estimated_pr="45.00", claim=False)
    st = statement_issue(patient_id=p.pk, actor=world.clerk)
    sign_in(client, p)
    disposition, text = download(client, "portal:issued_statement_pdf", st.pk)
    assert st.display_code in disposition
    site = settings.SETTLE_SITE_URL.rstrip("/")
    assert (f"Pay online as a guest with code {st.display_code} and the patient's date of birth at "
            f"{site}/portal/guest/") in text
    assert f"Statement {st.display_code}, issued" in text and "$45.00 was due then." in text
    assert "Due now $45.00" in text


def test_a_write_off_shows_on_the_visit_and_on_the_statement(world, portal_patient, client):
    p = portal_patient
    enc, _ = world.visit(p, date(2026, 3, 3), charge="200.00", estimated_pr="45.00", claim=False)
    writeoff_create(encounter_id=enc.pk, amount="5.00", reason_code="small_balance", reason="small balance",
                    actor=world.manager)
    sign_in(client, p)
    html = client.get(reverse("portal:visit", args=[enc.pk])).content.decode()
    assert "<span>Written off by the practice</span><span>$5.00</span>" in html
    assert "The practice wrote off this amount: you do not owe it." in html
    assert "<span>Balance</span><span>$40.00</span>" in html
    _, text = download(client, "portal:statement_pdf")
    assert "03/03/2026 Office visit $200.00 $45.00 $0.00 $0.00 $5.00 $40.00 Final" in text
    assert "Due now $40.00" in text

