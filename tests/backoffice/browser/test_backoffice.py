"""The back-office in a real browser (issue 5, item 10): log in, take a payment that applies
credits, unlock credits with a reason, request a refund as billing staff and approve it as a
manager (two users, two browser contexts), and upload an 835 file. Each flow saves screenshots."""

from datetime import date
from decimal import Decimal as D

import pytest
from playwright.sync_api import expect

from credits import services as credit_services
from credits.models import Credit, Refund
from ledger.models import Payment
from remittances.models import RemittanceFile
from remittances.x12.generator import ClaimSpec, generate_835
from tests.backoffice.browser.conftest import login, shot

pytestmark = pytest.mark.django_db(transaction=True)


def test_login_and_take_a_payment_that_applies_credits(new_page, world):
    ana = world.patient(first_name="Ana", last_name="Avila", account_number="A-100")
    world.pay(ana, "100.00")  # an available credit of 100.00 from a card payment
    enc, claim = world.visit(ana, date(2026, 3, 3), number="ANA-1")
    world.remit(claim, pr="60.00", paid="140.00")  # 60.00 owed

    page = new_page()
    login(page, "clerk")
    shot(page, "01-index")
    page.click("text=Patient responsibility")
    expect(page.locator("#result_list")).to_contain_text("Avila, Ana")
    shot(page, "02-patient-responsibility")
    page.click("text=Avila, Ana")
    expect(page.locator("#patient-card")).to_contain_text("60.00")
    expect(page.locator("#patient-card")).to_contain_text("100.00")
    shot(page, "03-patient-page")
    page.click("#patient-tabs >> text=Credits")
    shot(page, "04-patient-credits-tab")

    page.click("#take-payment-link")
    credit = Credit.objects.get(patient=ana)
    use = page.locator(f"input[name=credit_{credit.pk}]")
    expect(page.locator("input[name=apply_credits]")).to_be_checked()
    expect(use).to_have_value("60.00")  # preselected: the credit covers what is owed
    expect(page.locator("#total-rest")).to_have_text("0.00")
    shot(page, "05-payment-preselected")
    use.fill("45.00")  # staff change the selection: the rest is charged on the card
    expect(page.locator("#total-rest")).to_have_text("15.00")
    expect(page.locator("input[name=amount]")).to_have_value("15.00")
    shot(page, "06-payment-changed")
    page.click("#take-payment")
    expect(page.locator(".messagelist")).to_contain_text("credits applied 45.00, charged 15.00 by card reader")
    shot(page, "07-payment-done")

    enc.refresh_from_db()
    credit.refresh_from_db()
    assert enc.balance == 0 and credit.on_hand == D("55.00")
    assert Payment.objects.filter(patient=ana, amount=D("15.00"), channel="card_reader").exists()


def test_unlock_credits_with_a_reason(new_page, world):
    ben = world.patient(first_name="Ben", last_name="Brook", account_number="B-200")
    enc, _ = world.visit(ben, date(2026, 4, 4), number="BEN-1")
    world.pay(ben, "40.00", encounter=enc, channel="cash")  # held: locked to the pending DoS
    locked = Credit.objects.get(patient=ben)

    page = new_page()
    login(page, "clerk")
    page.goto("/admin/backoffice/lockedcredit/")
    expect(page.locator("#result_list")).to_contain_text("BEN-1")
    page.check(f"input[name=_selected_action][value='{locked.pk}']")
    page.select_option("select[name=action]", "unlock_credits")
    shot(page, "10-locked-credits")
    page.click("button[name=index]")
    expect(page.locator("h1")).to_have_text("Unlock credits")
    page.fill("textarea[name=reason]", "The payer will never answer")
    shot(page, "11-unlock-confirm")
    page.click("input[type=submit][value=Unlock]")
    expect(page.locator(".messagelist")).to_contain_text("Credits unlocked: 1.")
    shot(page, "12-unlocked")

    locked.refresh_from_db()
    assert locked.state == "available"
    last = locked.history.first()
    assert (last.history_user, last.history_change_reason) == (world.clerk,
                                                                "Manual unlock: The payer will never answer")


def test_refund_requested_by_billing_and_approved_by_a_manager(new_page, world):
    ana = world.patient(first_name="Ana", last_name="Avila", account_number="A-100")
    credit = credit_services.manual_credit_add(patient_id=ana.pk, amount="500.00", reason="carried over",
                                               actor=world.manager)

    billing = new_page()
    login(billing, "clerk")
    billing.goto(f"/admin/ledger/patient/{ana.pk}/change/#tab-credits")
    billing.click(f"#tab-credits >> a[href$='/credits/{credit.pk}/refund/']")
    billing.fill("input[name=amount]", "250.00")
    billing.check("input[name=method][value=check]")
    billing.fill("textarea[name=reason]", "Patient moved out of state")
    shot(billing, "20-refund-request")
    billing.click("input[type=submit][value=Refund]")
    expect(billing.locator(".messagelist")).to_contain_text("waits for a manager's approval")
    shot(billing, "21-refund-requested")
    refund = Refund.objects.get(credit=credit)
    assert (refund.state, refund.requested_by) == ("requested", world.clerk)

    manager = new_page()
    login(manager, "boss")
    manager.click("text=Refunds awaiting approval")
    expect(manager.locator("#result_list")).to_contain_text("Avila, Ana")
    shot(manager, "22-approval-queue")
    manager.click("text=Approve / reject")
    manager.fill("textarea[name=note]", "Checked the address change")
    shot(manager, "23-approve")
    manager.click("input[type=submit][value=Approve]")
    expect(manager.locator(".messagelist")).to_contain_text(f"Refund #{refund.pk} approved")
    manager.fill("input[name=reference]", "CHK-5001")
    manager.click("input[type=submit][value='Issue refund']")
    expect(manager.locator(".messagelist")).to_contain_text("issued (check, reference CHK-5001)")
    shot(manager, "24-refund-issued")

    refund.refresh_from_db()
    credit.refresh_from_db()
    assert (refund.state, refund.decided_by, refund.reference) == ("issued", world.manager, "CHK-5001")
    assert (credit.on_hand, credit.refunded_amount) == (D("250.00"), D("250.00"))


def test_upload_an_835_file(new_page, world, tmp_path):
    ana = world.patient(first_name="Ana", last_name="Avila", account_number="A-100")
    enc, claim = world.visit(ana, date(2026, 6, 6), number="ANA-6")
    era = tmp_path / "era-0606.835"
    era.write_bytes(generate_835(specs=[ClaimSpec("ANA-6", charge="200.00", paid="150.00",
                                                  patient_responsibility=[("2", "50.00")]),
                                        ClaimSpec("NOBODY-1", charge="80.00", paid="50.00")]))

    page = new_page()
    login(page, "clerk")
    page.click("text=Upload 835 files")
    page.set_input_files("input[name=files]", str(era))
    shot(page, "30-upload")
    page.click("input[type=submit][value=Upload]")
    expect(page.locator("#upload-results")).to_contain_text("era-0606.835")
    expect(page.locator("#upload-results")).to_contain_text("posted")
    shot(page, "31-upload-result")
    page.click("#upload-results >> text=1 waiting for staff")
    expect(page.locator("#result_list")).to_contain_text("NOBODY-1")
    shot(page, "32-unmatched-queue")

    f = RemittanceFile.objects.get(filename="era-0606.835")
    enc.refresh_from_db()
    assert f.status == "posted" and enc.remittance_pr == D("50.00")
