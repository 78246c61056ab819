"""Accessibility (issue 13 item 4, WCAG 2.1 AA): axe-core, bundled by the axe-playwright-python
package (nothing downloaded), scans every portal page at 375 px and 1280 px: no violation of
impact "serious" or "critical" is allowed; the failure message lists every violation found, of
any impact, page by page.

axe is injected by Playwright's page.evaluate (the DevTools protocol), which the portal's CSP
(script-src 'self', no inline script) does not block: the test asserts that axe ran on every page
(its result names the page's URL) and that the browser reported no CSP violation. Two canaries
on the sign-in page: an unlabelled input added to it is a critical axe finding, and an inline
<style> added to it is refused by the CSP and reported (so the CSP check can fail).

One patient's data serves the whole walk (one test per width): example O's credit and balance, a
notice waiting, a payment to see on the receipt and payments pages; a guest statement, and a second
one locked by five wrong dates of birth; a second practice asking for the sign-in code."""

from datetime import date

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.core import mail

from ledger.errors import NotFound
from ledger.models import Encounter
from portal.services import GuestLocked, access_link, guest_statement_open, portal_link
from tests.portal.browser.conftest import sign_in
from tests.portal.browser.test_portal_journeys import MARCH_3, example_o, guest_statement, notice_waiting
from tests.portal.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)

AXE = Axe()
BLOCKING = {"serious", "critical"}


class Scan:
    def __init__(self, portal):
        self.portal = portal
        self.found: dict[str, list] = {}
        self.pages: list[str] = []

    def __call__(self, page, name: str) -> None:
        self.portal.check(page, f"a11y-{name}")
        result = AXE.run(page).response
        assert result.get("url", "").startswith(self.portal.base_url), f"axe did not run on {name}: {result}"
        self.pages.append(name)
        if result["violations"]:
            self.found[name] = result["violations"]

    def report(self) -> str:
        lines = []
        for name, violations in self.found.items():
            for v in violations:
                targets = "; ".join(" ".join(n["target"]) for n in v["nodes"][:4])
                lines.append(f"{name} [{v['impact']}] {v['id']}: {v['help']} ({len(v['nodes'])} nodes: {targets})")
        return "\n".join(lines)

    def assert_clean(self):
        blocking = [v for vs in self.found.values() for v in vs if v["impact"] in BLOCKING]
        assert not blocking, f"serious or critical accessibility violations at {self.portal.width} px:\n" \
                             + self.report()


def canary(page) -> None:
    """axe really checks these pages under their CSP: an input without a label, added to the page,
    is found (then removed)."""
    page.evaluate("""() => { const i = document.createElement('input'); i.id = 'axe-canary';
                             document.querySelector('main').appendChild(i); }""")
    result = AXE.run(page).response
    page.evaluate("() => document.getElementById('axe-canary').remove()")
    found = {v["id"]: v for v in result["violations"]}
    assert "label" in found and found["label"]["impact"] == "critical", result["violations"]
    assert len(result["passes"]) > 10 and result["testEngine"]["name"] == "axe-core"


def csp_canary(portal, page) -> None:
    """The CSP is on and its violations reach `portal.check`: an inline <style> is refused and reported."""
    page.evaluate("""() => { const s = document.createElement('style'); s.textContent = 'main { color: red }';
                             document.head.appendChild(s); }""")
    page.wait_for_timeout(200)
    assert any("style" in m for m in portal.csp), portal.csp
    assert page.evaluate("getComputedStyle(document.querySelector('main')).color") != "rgb(255, 0, 0)"
    portal.csp.clear()


def test_every_portal_page_has_no_serious_or_critical_violation(portal, world, portal_patient, foreign_patient):
    scan = Scan(portal)
    example_o(world, portal_patient)
    case = notice_waiting(world, portal_patient)
    st = guest_statement(world)
    locked = guest_statement(world)
    for day in range(11, 16):  # five wrong dates of birth: locked
        with pytest.raises(NotFound):
            guest_statement_open(code=locked.code, date_of_birth=date(1961, 7, day))
    with pytest.raises(GuestLocked):
        guest_statement_open(code=locked.code, date_of_birth=date(1961, 7, 8))
    foreign_patient.practice.portal_otp_required = True
    foreign_patient.practice.save(update_fields=["portal_otp_required"])

    visitor = portal.page()
    visitor.goto("/portal/login/")
    scan(visitor, "sign-in")
    canary(visitor)
    csp_canary(portal, visitor)
    visitor.goto("/portal/password-reset/")
    scan(visitor, "reset")
    visitor.goto(access_link(portal_patient.user).removeprefix(portal_link("")))
    visitor.get_by_role("heading", level=1).wait_for()
    scan(visitor, "set-password")
    visitor.goto("/portal/guest/")
    scan(visitor, "guest")
    visitor.get_by_label("Statement code").fill(locked.display_code)
    visitor.get_by_label("Patient's date of birth").fill("1961-07-08")
    visitor.get_by_role("button", name="Continue").click()
    visitor.locator(".errorlist, [role=alert]").first.wait_for()
    scan(visitor, "guest-locked")
    visitor.get_by_label("Statement code").fill(st.display_code)
    visitor.get_by_label("Patient's date of birth").fill("1961-07-08")
    visitor.get_by_role("button", name="Continue").click()
    visitor.get_by_label("Amount to pay").wait_for()
    scan(visitor, "guest-pay")
    visitor.get_by_label("Amount to pay").fill("0")
    visitor.get_by_role("button", name="Pay").click()
    visitor.locator(".errorlist").first.wait_for()
    scan(visitor, "guest-pay-error")

    other = portal.page()
    other.goto("/portal/login/")
    other.get_by_label("E-mail address").fill(foreign_patient.user.email)
    other.get_by_label("Password").fill(PASSWORD)
    other.get_by_role("button", name="Sign in").click()
    other.get_by_label("Sign-in code").wait_for()
    scan(other, "code")
    assert any(foreign_patient.user.email in m.to for m in mail.outbox)

    page = portal.page()
    sign_in(page, portal_patient.user.email)
    page.goto("/portal/")
    scan(page, "home")
    visit = Encounter.objects.get(patient=portal_patient, date_of_service=MARCH_3)
    page.goto(f"/portal/visits/{visit.pk}/")
    scan(page, "visit")
    page.goto("/portal/credits/")
    scan(page, "credits")
    page.goto(f"/portal/notices/{case.pk}/")
    scan(page, "notice")
    page.goto(f"/portal/credits/{case.credit_id}/refund/")
    scan(page, "refund")
    page.goto("/portal/refunds/")
    scan(page, "refunds")
    page.goto("/portal/buy/")
    scan(page, "buy")
    page.get_by_role("button", name="Buy credits").click()  # nothing filled in: the errors shown
    page.locator(".errorlist").first.wait_for()
    scan(page, "buy-error")
    page.goto("/portal/pay/")
    scan(page, "pay")
    credit = page.locator("fieldset", has_text="Your credits to use first").locator("input[type=text]").first
    credit.fill("-5")
    page.get_by_role("button", name="Pay", exact=True).click()
    page.locator(".errorlist").first.wait_for()
    scan(page, "pay-error")
    page.goto("/portal/pay/")
    page.get_by_label("Test Visa ending 4242 — approves").check()
    page.get_by_role("button", name="Pay", exact=True).click()
    page.get_by_role("heading", level=1, name="Thank you: your payment is done").wait_for()
    scan(page, "receipt")
    page.goto("/portal/payments/")
    scan(page, "payments")
    page.goto("/portal/statements/")
    scan(page, "statements")

    assert len(scan.pages) == 21, scan.pages
    scan.assert_clean()
    if scan.found:  # moderate or minor findings are allowed; shown with -s
        print(f"\naxe at {portal.width} px (moderate or minor only):\n{scan.report()}")
