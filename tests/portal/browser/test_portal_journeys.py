"""The portal's journeys in Chromium, each at 375 px and 1280 px (issue 13 item 4): signing in
(with the practice's sign-in code), paying with credits first (example O), buying credits, asking
for a refund (example Q), answering a notice, guest pay (example P) and its lockout, and the core
flows with JavaScript off. Each page is checked for sideways scroll and CSP violations and
photographed (artifacts/screenshots/portal/<journey>-<width>.png). The figures are worked out by
hand in each test's docstring."""

import io
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from django.core import mail
from playwright.sync_api import expect
from pypdf import PdfReader

from adjudication import scan as adjudication_scan
from adjudication.models import Case
from adjudication.services import notices as notice_services
from credits.models import Credit, Refund
from credits.selectors import patient_owes
from ledger.models import Encounter, Payment
from portal.models import PortalEvent, Statement
from portal.services import statement_issue
from tests.portal.browser.conftest import last_code, sign_in
from tests.portal.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)

MARCH_3 = date(2026, 3, 3)


def example_o(world, patient):
    """$30 available (a payment on account, nothing owed then) and $45 owed for 03/03/2026."""
    world.pay(patient, "30.00")
    _, claim = world.visit(patient, MARCH_3, charge="180.00")
    world.remit(claim, pr="45.00", paid="100.00")
    owes = patient_owes(patient.pk)
    assert (owes.due_now, owes.available) == (Decimal("45.00"), Decimal("30.00"))


def test_sign_in_with_the_practices_sign_in_code(portal, world, portal_patient):
    """The practice asks for a one-time code: password, then the 6 digits mailed, then the page asked for."""
    world.practice.portal_otp_required = True
    world.practice.save(update_fields=["portal_otp_required"])
    page = portal.page()
    page.goto("/portal/pay/")
    expect(page).to_have_url(f"{portal.base_url}/portal/login/?next=%2Fportal%2Fpay%2F")
    portal.check(page, "sign-in")
    page.get_by_label("E-mail address").fill(portal_patient.user.email)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".field-error .errorlist")).to_be_visible()
    error_id = page.locator(".field-error .errorlist").get_attribute("id")
    assert error_id in (page.get_by_label("Password").get_attribute("aria-describedby") or "")
    portal.check(page, "sign-in-error")

    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Enter your sign-in code")
    portal.check(page, "sign-in-code")
    page.get_by_label("Sign-in code").fill(last_code(portal_patient.user.email))
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_url(f"{portal.base_url}/portal/pay/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Pay what you owe")
    kinds = set(PortalEvent.objects.filter(patient=portal_patient).values_list("kind", flat=True))
    assert {PortalEvent.Kind.SIGNED_IN, PortalEvent.Kind.CODE_SENT} <= kinds
    assert sum(portal_patient.user.email in m.to for m in mail.outbox) >= 2  # the invitation and the code


def test_pay_with_credits_preselected_example_o(portal, world, portal_patient):
    """Example O: $30 preselected, $45 owed, $15 charged; the receipt shows both; 03/03/2026 is paid."""
    example_o(world, portal_patient)
    page = portal.page()
    sign_in(page, portal_patient.user.email)
    page.goto("/portal/pay/")
    expect(page.get_by_label("Visit on 03/03/2026: $45.00 owed")).to_be_checked()
    credit = page.locator("fieldset", has_text="Your credits to use first").locator("input[type=text]")
    expect(credit).to_have_value("30.00")
    expect(page.locator(".total-line.grand")).to_contain_text("$15.00")
    portal.check(page, "pay")
    page.get_by_label("Test Visa ending 4242 — approves").check()
    page.get_by_role("button", name="Pay", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("your payment is done")
    body = page.locator("main")
    expect(body.locator("table", has_text="Visits paid")).to_contain_text("Visit on 03/03/2026")
    expect(body.locator("table", has_text="Paid with your credits")).to_contain_text("$30.00")
    expect(body.locator(".total-line.grand")).to_contain_text("$15.00")
    portal.check(page, "pay-receipt")

    assert patient_owes(portal_patient.pk).due_now == Decimal("0.00")  # 03/03/2026 is paid
    assert not Encounter.objects.filter(patient=portal_patient).due_now().exists()
    payment = Payment.objects.get(patient=portal_patient, channel="portal")
    assert payment.amount == Decimal("15.00") and payment.processor_reference.startswith("sbx_ch_")
    assert [c.on_hand for c in Credit.objects.filter(patient=portal_patient)] == [Decimal("0.00")]  # the $30 used


def test_pay_shows_the_services_refusal_on_the_field(portal, world, portal_patient):
    """More credit than is on hand ($31 of $30) is refused on that credit's field; nothing is charged."""
    example_o(world, portal_patient)
    page = portal.page()
    sign_in(page, portal_patient.user.email)
    page.goto("/portal/pay/")
    credit = page.locator("fieldset", has_text="Your credits to use first").locator("input[type=text]")
    credit.fill("31.00")
    page.get_by_label("Test Visa ending 4242 — approves").check()
    page.get_by_role("button", name="Pay", exact=True).click()
    expect(page.locator("[role=alert]")).to_be_visible()
    expect(page.locator(".field-error .errorlist").first).to_be_visible()
    portal.check(page, "pay-error")
    assert not Payment.objects.filter(patient=portal_patient, channel="portal").exists()
    assert patient_owes(portal_patient.pk).due_now == Decimal("45.00")


def test_buy_credits(portal, world, portal_patient):
    """$50.00 flexible: a purchased credit of $50 available, $50 charged."""
    page = portal.page()
    sign_in(page, portal_patient.user.email)
    page.goto("/portal/buy/")
    portal.check(page, "buy")
    page.get_by_label("Amount").fill("50")
    page.get_by_label("Test Visa ending 4242 — approves").check()
    page.get_by_role("button", name="Buy credits").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("your credits are bought")
    expect(page.locator(".total-line.grand")).to_contain_text("$50.00")
    portal.check(page, "buy-receipt")
    credit = Credit.objects.get(patient=portal_patient)
    assert (credit.source, credit.state, credit.on_hand) == ("purchased", "available", Decimal("50.00"))


def test_ask_for_a_refund_example_q(portal, world, portal_patient):
    """Example Q: $25 available from a portal payment, below the $100 threshold: issued at once to
    the card, and the refunds page says so."""
    world.pay(portal_patient, "25.00", channel="portal")
    credit = Credit.objects.get(patient=portal_patient)
    page = portal.page()
    sign_in(page, portal_patient.user.email)
    page.goto("/portal/refunds/")
    portal.check(page, "refunds-before")
    page.get_by_role("link", name="Ask for a refund of $25.00").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Ask for a refund")
    portal.check(page, "refund")
    page.get_by_label("Amount to refund").fill("25.00")
    page.get_by_label("Why?").fill("I paid twice by mistake")
    page.get_by_role("button", name="Ask for the refund").click()
    page.goto("/portal/refunds/")
    row = page.locator("table tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("$25.00")
    expect(row).to_contain_text("Sent back to your card")
    portal.check(page, "refunds")
    refund = Refund.objects.get(credit=credit)
    assert (refund.amount, refund.state, refund.requested_by_id) == (Decimal("25.00"), "issued",
                                                                     portal_patient.user_id)


def notice_waiting(world, patient) -> Case:
    """A $50 overpayment (paid $120, the corrected remittance says $70), its case, the notice sent."""
    enc, claim = world.visit(patient, date(2026, 9, 14), charge="240.00")
    world.remit(claim, pr="120.00", paid="96.00")
    world.pay(patient, "120.00", encounter=enc)
    world.remit(claim, pr="70.00", paid="50.00", adjust="0.00")
    adjudication_scan.scan_practice(practice_id=world.practice.pk, reason="Nightly scan")
    case = Case.objects.get(patient=patient, kind=Case.Kind.PATIENT_CREDIT, credit__amount=Decimal("50.00"))
    notice_services.case_send_notice(case=case, actor=world.clerk, reason="Overpayment notice")
    return case


def test_answer_a_notice_keep(portal, world, portal_patient):
    """The notice of $50: the patient keeps it as a credit; the case records the election from the portal."""
    case = notice_waiting(world, portal_patient)
    page = portal.page()
    sign_in(page, portal_patient.user.email)
    page.goto(f"/portal/notices/{case.pk}/")
    expect(page.locator(".figure")).to_have_text("$50.00")
    portal.check(page, "notice")
    page.get_by_label("Keep it as a credit for future visits").check()
    page.get_by_role("button", name="Send my answer").click()
    expect(page.locator("main")).to_contain_text("keep it as a credit")
    portal.check(page, "notice-answered")
    case.refresh_from_db()
    assert case.election == "keep"
    event = case.events.get(kind="election")
    assert event.data["via"] == "portal" and event.actor_id == portal_patient.user_id


def guest_statement(world) -> Statement:
    """A patient without a login owes $60 (PR of a decided visit); a statement is issued."""
    patient = world.patient(first_name="Gus", last_name="Tan", date_of_birth=date(1961, 7, 8))
    _, claim = world.visit(patient, date(2026, 10, 1), charge="200.00")
    world.remit(claim, pr="60.00", paid="120.00")
    return statement_issue(patient_id=patient.pk, actor=world.clerk)


def test_guest_pays_20_of_a_statement_example_p(portal, world):
    """Example P: the code and the right date of birth open the statement; $20 paid, $40 left."""
    st = guest_statement(world)
    page = portal.page()
    page.goto("/portal/guest/")
    portal.check(page, "guest")
    page.get_by_label("Statement code").fill(st.display_code.lower())
    page.get_by_label("Patient's date of birth").fill("1961-07-08")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Pay statement {st.display_code}")
    expect(page.locator("tfoot")).to_contain_text("$60.00")
    portal.check(page, "guest-pay")
    page.get_by_label("Amount to pay").fill("20.00")
    page.get_by_label("Test Visa ending 4242 — approves").check()
    page.get_by_role("button", name="Pay").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Thank you: your payment is done")
    expect(page.locator(".total-line.grand")).to_contain_text("$20.00")
    portal.check(page, "guest-receipt")
    assert patient_owes(st.patient_id).due_now == Decimal("40.00")
    assert PortalEvent.objects.filter(patient_id=st.patient_id, kind=PortalEvent.Kind.GUEST_PAID).count() == 1


def test_guest_locked_out_after_five_wrong_dates_of_birth(portal, world):
    """Example P: five wrong dates of birth in a row lock the statement; then even the right one is refused."""
    st = guest_statement(world)
    page = portal.page()
    page.goto("/portal/guest/")
    for day in range(1, 6):
        page.get_by_label("Statement code").fill(st.display_code)
        page.get_by_label("Patient's date of birth").fill(f"1961-07-{day + 10:02d}")
        page.get_by_role("button", name="Continue").click()
        expect(page.locator(".errorlist").first).to_be_visible()
    page.get_by_label("Statement code").fill(st.display_code)
    page.get_by_label("Patient's date of birth").fill("1961-07-08")
    page.get_by_role("button", name="Continue").click()
    expect(page.locator("main")).to_contain_text("locked")
    expect(page.get_by_role("heading", level=1)).to_have_text("Pay a statement")
    portal.check(page, "guest-locked")
    st.refresh_from_db()
    assert st.guest_locked_until is not None
    assert PortalEvent.objects.filter(patient_id=st.patient_id, kind=PortalEvent.Kind.GUEST_LOCKED).count() == 1


def test_without_javascript_sign_in_and_pay(portal, world, portal_patient):
    """JavaScript off: the same sign-in and example-O payment work ($15 charged)."""
    example_o(world, portal_patient)
    page = portal.page(js=False)
    sign_in(page, portal_patient.user.email)
    page.goto("/portal/pay/")
    portal.check(page, "nojs-pay")
    page.get_by_label("Test Visa ending 4242 — approves").check()
    page.get_by_role("button", name="Pay", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("your payment is done")
    expect(page.locator(".total-line.grand")).to_contain_text("$15.00")
    portal.check(page, "nojs-receipt")
    assert Payment.objects.get(patient=portal_patient, channel="portal").amount == Decimal("15.00")


def test_home_then_a_visit_then_credits(portal, world, portal_patient):
    """Example O's account: home says $45.00 due and $30.00 available; the visit of 03/03/2026 shows
    the charge $180.00, the insurer's $100.00 paid and $35.00 adjusted, the share $45.00 still owed;
    the credits page shows the $30.00."""
    example_o(world, portal_patient)
    page = portal.page()
    sign_in(page, portal_patient.user.email)
    expect(page).to_have_url(f"{portal.base_url}/portal/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Hello, Ann")
    due = page.locator(".card", has=page.get_by_role("heading", name="Due now"))
    expect(due.locator(".figure")).to_have_text("$45.00")
    expect(page.locator(".card", has=page.get_by_role("heading", name="Credits available")).locator(".figure")) \
        .to_have_text("$30.00")
    portal.check(page, "home")
    page.get_by_role("link", name="03/03/2026").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your visit on 03/03/2026")
    summary = page.locator("section", has=page.get_by_role("heading", name="Summary"))
    expect(summary.locator(".total-line").first).to_contain_text("$180.00")
    expect(summary.locator(".total-line.grand")).to_contain_text("$45.00")
    insurer = page.locator("section", has=page.get_by_role("heading", name="What your insurer did"))
    expect(insurer.locator("tbody tr")).to_contain_text(["$100.00"])
    expect(insurer.locator("tbody tr").first).to_contain_text("$35.00")
    portal.check(page, "visit")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Credits", exact=True).click()
    expect(page).to_have_url(f"{portal.base_url}/portal/credits/")
    expect(page.locator("main")).to_contain_text("$30.00")
    portal.check(page, "credits")


def pdf_text(download) -> str:
    data = Path(download.path()).read_bytes()
    assert data.startswith(b"%PDF-"), data[:20]
    return "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(data)).pages)


def test_payments_receipt_pdf_and_statement_pdf_download(portal, world, portal_patient):
    """The $30.00 payment's receipt and today's statement ($45.00 due for 03/03/2026) download as PDFs."""
    example_o(world, portal_patient)
    page = portal.page()
    sign_in(page, portal_patient.user.email)
    page.goto("/portal/payments/")
    rows = page.locator("table tbody tr")
    expect(rows).to_have_count(1)
    expect(rows).to_contain_text("$30.00")
    portal.check(page, "payments")
    with page.expect_download() as info:
        rows.get_by_role("link", name="Receipt (PDF)").click()
    assert info.value.suggested_filename.endswith(".pdf")
    assert "30.00" in pdf_text(info.value)

    page.goto("/portal/statements/")
    portal.check(page, "statements")
    with page.expect_download() as info:
        page.get_by_role("link", name="Download today's statement (PDF)").click()
    assert info.value.suggested_filename.endswith(".pdf")
    text = pdf_text(info.value)
    assert "03/03/2026" in text and "45.00" in text, text[:800]


def test_a_double_clicked_pay_button_charges_once(portal, world, portal_patient):
    """Example O paid with a double click: one $15.00 charge, the visit paid once. Chromium itself
    sends one of two quick submits, so the same form is also posted twice at once from the page
    (two fetches with one form key, as two tabs or a flaky network would): both land on the one
    receipt, one charge."""
    example_o(world, portal_patient)
    page = portal.page()
    sign_in(page, portal_patient.user.email)
    page.goto("/portal/pay/")
    page.get_by_label("Test Visa ending 4242 — approves").check()
    page.get_by_role("button", name="Pay", exact=True).dblclick()
    expect(page.get_by_role("heading", level=1)).to_contain_text("your payment is done")
    expect(page.locator(".total-line.grand")).to_contain_text("$15.00")
    assert [p.amount for p in Payment.objects.filter(patient=portal_patient, channel="portal")] == [Decimal("15.00")]

    _, claim = world.visit(portal_patient, date(2026, 4, 7), charge="100.00")
    world.remit(claim, pr="12.34", paid="80.00")  # a new $12.34 to pay, no credit left
    page.goto("/portal/pay/")
    page.get_by_label("Test Visa ending 4242 — approves").check()
    landed = page.evaluate("""async () => {
        const form = document.querySelector('form[action="/portal/pay/"]');
        const data = new FormData(form); data.append('pay', '1');
        const answers = await Promise.all([1, 2].map(() => fetch(form.action, {method: 'POST', body: data})));
        return answers.map(r => [r.status, new URL(r.url).pathname]); }""")
    assert [status for status, _ in landed] == [200, 200] and landed[0][1] == landed[1][1], landed
    assert landed[0][1].startswith("/portal/receipts/"), landed
    assert sorted(p.amount for p in Payment.objects.filter(patient=portal_patient, channel="portal")) == [
        Decimal("12.34"), Decimal("15.00")]
    assert patient_owes(portal_patient.pk).due_now == Decimal("0.00")
