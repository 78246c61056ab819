"""The adjudication pages in a real browser (issue 11, item 9): at 1280x900 with the admin's sidebar
open, every page (the case work queue, the case page, the proposal approvals, the refund work list,
unclaimed property, the clock rules) fits without scrolling sideways, with demo-like data opened by
the real scan; and a resolution is proposed by billing staff and approved by a manager, two users in
two browser contexts. Screenshots go to artifacts/screenshots/, and with SETTLE_DOCS_SCREENSHOTS=1
also to docs/img/adjudication-*.png (the pictures the docs show)."""

import os
from datetime import date, timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest
from playwright.sync_api import expect

from adjudication.models import (
    AdjudicationSettings,
    Case,
    ClockRule,
    Proposal,
    RefundApprovalBand,
    RefundPolicy,
    UnclaimedProperty,
)
from adjudication.scan import scan_practice
from adjudication.selectors import practice_dates
from credits import services as credit_services
from credits.models import Credit, Refund
from ledger.models import Payer
from tests.backoffice.browser.conftest import login, shot
from tests.factories import PayerFactory

pytestmark = pytest.mark.django_db(transaction=True)

DOCS_IMG = Path(__file__).resolve().parents[3] / "docs" / "img"
WIDTH, HEIGHT = 1280, 900

PEOPLE = [("Avila", "Ana", "150.00"), ("Brookfield-Montgomery", "Benjamin", "1,234.56"), ("Chen", "Li", "35.00"),
          ("Delacroix-Whitfield", "Marguerite", "410.00"), ("Eze", "Obi", "12.50"), ("Fitzgerald", "Siobhan", "88.00"),
          ("Gonzalez Ortega", "Maria Jose", "260.00"), ("Huang", "Wei", "5.00")]


def demo_books(world):
    """Patient credits of eight patients and three payer credits, then the real scan opens their cases;
    a few are investigated, assigned or waiting on the payer; one patient credit is dormant property."""
    AdjudicationSettings.objects.create(practice=world.practice, warning_window_days=7)
    for n, (last, first, amount) in enumerate(PEOPLE):
        p = world.patient(first_name=first, last_name=last, account_number=f"P-{1000 + n}",
                          email=f"{first.split()[0].lower()}@example.com", us_state="TX")
        world.pay(p, amount.replace(",", ""))
    medicare = PayerFactory(practice=world.practice, name="Medicare Part B (Novitas Solutions JH)",
                            payer_type=Payer.Type.MEDICARE)
    commercial = PayerFactory(practice=world.practice, name="Blue Cross Blue Shield of Texas",
                              payer_type=Payer.Type.COMMERCIAL)
    for payer, amount, why, icn in ((medicare, "180.00", "duplicate_payment", "22026083000123"),
                                    (commercial, "60.00", "other", "BCBS-99812-77"),
                                    (medicare, "1,020.00", "duplicate_payment", "22026090100456")):
        credit_services.payer_credit_open(payer_id=payer.pk, amount=amount.replace(",", ""), reason_code=why,
                                          actor=world.clerk, reason="Paid twice", cash_received=True,
                                          payer_claim_number=icn)
    scan_practice(practice_id=world.practice.pk, actor=world.clerk, reason="Demo scan")
    today = practice_dates([world.practice.pk])[world.practice.pk]
    cases = list(Case.objects.filter(practice=world.practice).order_by("pk"))
    for i, case in enumerate(cases):  # spread the due dates, so the queue shows flags and order
        Case.objects.filter(pk=case.pk).update(due_on=today + timedelta(days=(i * 9) - 4),
                                               assigned_to=world.clerk if i % 3 == 0 else None)
    waiting = cases[-1]
    Case.objects.filter(pk=waiting.pk).update(state=Case.State.WAITING_PAYER, follow_up_on=today - timedelta(days=2))
    rule = ClockRule.objects.filter(kind=ClockRule.Kind.UNCLAIMED, us_state="TX").first() or ClockRule.objects.create(
        kind=ClockRule.Kind.UNCLAIMED, name="Texas unclaimed property", us_state="TX", dormancy_years=3,
        cutoff_month=3, cutoff_day=1, report_month=7, report_day=1, letter_month=5, letter_day=1,
        letter_threshold=D("250.00"))
    chen = Case.objects.get(patient__last_name="Chen")
    UnclaimedProperty.objects.create(practice=world.practice, case=chen, credit=chen.credit, rule=rule,
                                     owner_state="TX", amount=chen.amount, last_activity_on=date(2023, 2, 15),
                                     presumed_on=date(2026, 3, 1), report_due_on=date(2026, 7, 1), report_year=2026)
    RefundPolicy.objects.create(practice=world.practice, name="Small credits, no balance", min_amount=D("1.00"),
                                max_amount=D("500.00"))
    return {"cases": cases, "ana": Case.objects.get(patient__last_name="Avila")}


def fits(page, name: str) -> None:
    """The screenshot into docs/img and artifacts; no sideways scroll at 1280 px."""
    shot(page, f"adjudication-{name}")
    if os.environ.get("SETTLE_DOCS_SCREENSHOTS"):  # refresh the docs' pictures on purpose only
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOCS_IMG / f"adjudication-{name}.png"), full_page=True)
    width = page.evaluate("Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)")
    assert width <= WIDTH, f"{name}: the page is {width}px wide at {WIDTH}px"
    # nor inside it: the admin's list box scrolls by itself (overflow-x: auto) when its table is too wide
    clipped = page.evaluate("""Array.from(document.querySelectorAll('#content .results, #content .module, #content table'))
        .filter(e => e.scrollWidth > e.clientWidth + 1)
        .map(e => (e.id || e.className || e.tagName) + ' ' + e.scrollWidth + '>' + e.clientWidth)""")
    assert not clipped, f"{name}: scrolls sideways inside the page: {clipped}"
    assert page.locator("#nav-sidebar").is_visible(), "the admin's sidebar is open"


def test_every_adjudication_page_fits_1280_and_a_proposal_is_approved_by_another_person(new_page, world):
    demo = demo_books(world)
    ana = demo["ana"]

    clerk = new_page()
    clerk.set_viewport_size({"width": WIDTH, "height": HEIGHT})
    login(clerk, "clerk")
    clerk.goto("/admin/")
    clerk.click("text=Case work queue")
    expect(clerk.locator("#result_list")).to_contain_text("Avila, Ana")
    expect(clerk.locator("#queue-totals")).to_contain_text(f"{len(demo['cases'])} cases")
    fits(clerk, "queue")
    clerk.goto("/admin/adjudication/case/?flagged=yes")
    expect(clerk.locator("#result_list")).to_be_visible()

    clerk.goto(f"/admin/adjudication/case/{ana.pk}/change/")
    expect(clerk.locator("#case-card")).to_contain_text("150.00")
    fits(clerk, "case")
    clerk.click("#action-propose summary")
    clerk.select_option("#id_propose-kind", "refund_patient")
    clerk.select_option("#id_propose-method", "check")
    clerk.fill("#id_propose-reference", "CHK-5501")
    clerk.fill("#id_propose-reason", "Patient asked for the overpayment back")
    fits(clerk, "case-propose")
    clerk.click("#action-propose input[type=submit]")
    expect(clerk.locator(".messagelist")).to_contain_text(f"Case {ana.pk}: resolution proposed")
    expect(clerk.locator("#proposal-waiting")).to_contain_text("A manager of the practice approves")
    assert clerk.locator("#action-approve").count() == 0  # never offered to the proposer or to billing staff
    proposal = Proposal.objects.get(case=ana)
    assert proposal.proposed_by == world.clerk and proposal.state == Proposal.State.PROPOSED

    clerk.goto("/admin/adjudication/case/refund-work-list/")
    expect(clerk.locator("#work-list")).to_contain_text("Eze")
    fits(clerk, "refund-work-list")
    clerk.goto("/admin/adjudication/unclaimedproperty/")
    expect(clerk.locator("#result_list")).to_contain_text("Chen, Li")
    fits(clerk, "unclaimed")
    clerk.goto("/admin/adjudication/clockrule/")
    fits(clerk, "rules")

    boss = new_page()
    boss.set_viewport_size({"width": WIDTH, "height": HEIGHT})
    login(boss, "boss")
    boss.goto("/admin/")
    boss.click("text=Proposals awaiting approval")
    expect(boss.locator("#result_list")).to_contain_text("Avila, Ana")
    fits(boss, "approvals")
    boss.click(f"#result_list a[href='/admin/adjudication/case/{ana.pk}/change/']")
    boss.click("#action-approve summary")
    boss.fill("#id_approve-reason", "Checked: the patient owes nothing")
    boss.fill("#id_approve-reference", "CHK-5501")
    boss.click("#action-approve input[type=submit]")
    expect(boss.locator(".messagelist")).to_contain_text(f"Case {ana.pk}: proposal approved")
    fits(boss, "case-approved")
    band = RefundApprovalBand.objects.create(practice=world.practice, up_to=D("200.00"), role="billing")
    RefundApprovalBand.objects.create(practice=world.practice, up_to=None, role="manager", four_eyes=True)
    for path, name in (("/admin/adjudication/refundpolicy/", "refund-policies"),
                       ("/admin/adjudication/refundapprovalband/", "approval-bands"),
                       ("/admin/adjudication/adjudicationsettings/", "settings"),
                       (f"/admin/adjudication/refundapprovalband/{band.pk}/change/", "approval-band-edit"),
                       ("/admin/adjudication/case/scan-now/", "scan-now"),
                       ("/admin/adjudication/unclaimedproperty/holder-report/", "holder-report"),
                       ("/admin/adjudication/case/?state=all", "queue-all")):
        boss.goto(path)
        expect(boss.locator("#content")).to_be_visible()
        fits(boss, name)

    proposal.refresh_from_db()
    ana.refresh_from_db()
    assert proposal.decided_by == world.manager and proposal.state != Proposal.State.PROPOSED
    refund = Refund.objects.get(credit=ana.credit)
    assert refund.amount == D("150.00") and refund.method == Refund.Method.CHECK
    assert Credit.objects.get(pk=ana.credit_id).on_hand == D("0.00")
