"""The managers' dashboard in a real browser at 1280 px: a manager of two practices (both side by side,
each with its six trend charts) sees no horizontal scroll, the SVG charts render, and a chart's table
opens. Screenshot: artifacts/screenshots/dashboard.png."""

from datetime import date

import pytest
from playwright.sync_api import expect

from credits import services as credit_services
from ledger.models import Membership
from tests.backoffice.browser.conftest import login, shot
from tests.factories import MembershipFactory, PatientFactory, PracticeFactory

pytestmark = pytest.mark.django_db(transaction=True)
WIDTH, HEIGHT = 1280, 900


def test_the_dashboard_fits_1280_its_charts_render_and_a_table_opens(new_page, world):
    w = world
    w.visit(w.patient(first_name="Ana", last_name="Avila"), date(2026, 3, 1), charge="1234.56")
    w.pay(w.patient(first_name="Ben", last_name="Brookfield-Montgomery"), "98765.43", channel="portal")
    b = PracticeFactory(name="Bayside Orthopedics and Sports Medicine of the Greater Metropolitan Area")
    MembershipFactory(practice=b, user=w.manager, role=Membership.Role.MANAGER)
    zed = PatientFactory(practice=b, first_name="Zed", last_name="Zzyzx")
    credit_services.manual_credit_add(patient_id=zed.pk, amount="300.00", reason="old system", actor=w.manager)

    page = new_page()
    page.set_viewport_size({"width": WIDTH, "height": HEIGHT})
    login(page, w.manager.username)
    page.goto("/admin/reports/dashboard/")
    expect(page.locator("#headline")).to_be_visible()
    assert page.locator("#headline thead th").count() == 4  # measure, two practices, the replaced service
    charts = page.locator("svg.settle-chart")
    assert charts.count() == 12
    for i in range(charts.count()):
        charts.nth(i).scroll_into_view_if_needed()
        expect(charts.nth(i)).to_be_visible()
        box = charts.nth(i).bounding_box()
        assert box["width"] > 200 and box["height"] > 90
    shot(page, "dashboard")
    width = page.evaluate("Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)")
    wide = page.evaluate("""Array.from(document.querySelectorAll('#content *'))
        .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
        .slice(0, 8).map(e => (e.id || e.className || e.tagName) + ' ' + Math.round(e.getBoundingClientRect().right))""")
    assert width <= WIDTH, f"the page scrolls sideways: {width} px; too wide: {wide}"
    assert not wide, f"beyond the window's right edge: {wide}"

    chart = page.locator(f"#practice-{w.practice.pk} .chart-credit_balances")
    table = chart.locator("details table")
    expect(table).to_be_hidden()
    chart.locator("summary").click()
    expect(table).to_be_visible()
    expect(table.locator("tbody tr")).to_have_count(12)
    expect(table.locator("tbody tr").last).to_contain_text("98,765.43")
    assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH
