"""The one browser of a test session, shared by every browser test (tests/backoffice/browser/,
tests/portal/browser/): Playwright drives Debian's Chromium (/usr/bin/chromium, installed by
bin/setup when run as root). Never `playwright install`: nothing is downloaded. Screenshots go
to artifacts/screenshots/ (git-ignored). The fixture is defined once, in tests/conftest.py's
namespace: two Playwright sessions cannot run in one thread at once."""

import os
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"

# Playwright's sync API runs an event loop in this thread; the Django calls the tests make between
# browser steps are plain synchronous ORM calls, which is safe here.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def _skip_reason() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[dev]')"
    if not (os.path.exists(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return (f"{CHROMIUM} is missing: run bin/setup as root (it installs Debian's chromium), or "
                "apt-get install chromium")
    return None


@pytest.fixture(scope="session")
def chromium():
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


