"""Portal browser tests (issue 13 item 4): Playwright drives Debian's Chromium (/usr/bin/chromium;
never `playwright install`, nothing is downloaded) against pytest-django's live server. Every
journey runs at 375 px (a phone) and 1280 px (a computer): the `width` fixture parametrizes it.

`portal.page(js=True)` opens a page in a fresh browser context (its own cookies) at that width;
`portal.check(page, name)` saves artifacts/screenshots/portal/<name>-<width>.png and asserts that
the page does not scroll sideways (scrollWidth <= innerWidth) and that the browser reported no
Content-Security-Policy violation (the portal's CSP allows no inline script or style).

One browser for the session (`chromium`, tests/browser.py, shared with the back-office tests). The live server's
database is emptied after each test (pytest-django's transactional tests), so each test builds its
own data through the services, as small as the journey needs."""

import re
from dataclasses import dataclass, field

import pytest
from django.core import mail

from tests.browser import SCREENSHOTS
from tests.portal.conftest import PASSWORD

SHOTS = SCREENSHOTS / "portal"
WIDTHS = (375, 1280)
HEIGHT = {375: 812, 1280: 900}


@dataclass
class Portal:
    browser: object
    base_url: str
    width: int
    contexts: list = field(default_factory=list)
    csp: list = field(default_factory=list)  # console messages of CSP violations, per test

    def page(self, *, js: bool = True):
        context = self.browser.new_context(viewport={"width": self.width, "height": HEIGHT[self.width]},
                                           base_url=self.base_url, java_script_enabled=js, accept_downloads=True)
        context.set_default_timeout(15_000)
        self.contexts.append(context)
        page = context.new_page()
        page.on("console", lambda msg: self.csp.append(f"{page.url}: {msg.text}")
                if "Content Security Policy" in msg.text else None)
        return page

    def check(self, page, name: str) -> None:
        """Screenshot, no sideways scroll, no CSP violation so far."""
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{name}-{self.width}.png"), full_page=True)
        sizes = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        if sizes[0] > sizes[1]:
            wide = page.evaluate("""Array.from(document.querySelectorAll('body *'))
                .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1).slice(0, 8)
                .map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))""")
            pytest.fail(f"{name} at {self.width} px scrolls sideways: {sizes[0]} > {sizes[1]} px; too wide: {wide}")
        assert not self.csp, f"CSP violations on {name}: {self.csp}"

    def close(self):
        for context in self.contexts:
            context.close()


@pytest.fixture(params=WIDTHS, ids=[f"{w}px" for w in WIDTHS])
def width(request):
    return request.param


@pytest.fixture
def portal(chromium, live_server, width):
    p = Portal(browser=chromium, base_url=live_server.url, width=width)
    yield p
    p.close()


def sign_in(page, email: str, password: str = PASSWORD) -> None:
    """The sign-in page, as a patient fills it (no sign-in code)."""
    page.goto("/portal/login/")
    page.get_by_label("E-mail address").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    assert "/portal/login/" not in page.url, f"{email} could not sign in: {page.locator('main').inner_text()[:300]}"


def last_code(email: str) -> str:
    """The 6-digit sign-in code of the last e-mail to `email` (the live server shares mail.outbox)."""
    for message in reversed(mail.outbox):
        if email in message.to:
            found = re.search(r"^\s*(\d{6})\s*$", message.body, re.M)
            if found:
                return found.group(1)
    raise AssertionError(f"no sign-in code was mailed to {email}: {[m.subject for m in mail.outbox]}")
