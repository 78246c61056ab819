"""Browser tests: Playwright drives Debian's Chromium (/usr/bin/chromium, installed by bin/setup when
run as root) against pytest-django's live server. Never `playwright install`: nothing is downloaded.
Screenshots go to artifacts/screenshots/ (git-ignored)."""

from pathlib import Path

import pytest

from tests.browser import SCREENSHOTS  # noqa: F401  (the session's browser, `chromium`, is tests/conftest.py's)


@pytest.fixture
def new_page(chromium, live_server):
    """new_page() -> a page in a fresh browser context (its own cookies: one user each)."""
    contexts = []

    def make():
        context = chromium.new_context(viewport={"width": 1400, "height": 1000}, base_url=live_server.url)
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


def login(page, username: str, password: str = "pw") -> None:
    page.goto("/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")
    assert "/admin/login/" not in page.url, f"{username} could not log in"


def shot(page, name: str) -> Path:
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


__all__ = ["login", "shot", "SCREENSHOTS"]
