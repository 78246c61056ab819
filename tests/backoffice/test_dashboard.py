"""The managers' dashboard (/admin/reports/dashboard/): its figures on a small data set worked out by
hand (and the same as measures()), managers only, tenancy, two practices side by side, bad dates,
the SVG charts with their values. The practice is in America/Chicago (CST, UTC-6, in March)."""

import re
from datetime import UTC, date, datetime
from decimal import Decimal as D

import pytest
import time_machine
from django.urls import reverse

from adjudication.clocks import practice_today
from adjudication.models import Case, CaseEvent, Proposal
from backoffice.templatetags.charts import chart_svg, scale
from credits import services as credit_services
from ledger.models import Membership
from reports.measures import measures
from reports.models import OpenCasesSnapshot
from tests.factories import MembershipFactory, PatientFactory, PracticeFactory, UserFactory

pytestmark = pytest.mark.django_db
URL = "/admin/reports/dashboard/"
MARCH = {"date_from": "2026-03-01", "date_to": "2026-03-31"}


def cst(month, day, hour):
    return datetime(2026, month, day, hour + 6, tzinfo=UTC)


def text(response) -> str:
    """The page's text without tags and with single spaces."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def headline(response) -> dict:
    """{measure label: [cell text per column...]} of the headline table."""
    html = response.content.decode()
    table = html[html.index('<table id="headline">'):]
    table = table[:table.index("</table>")]
    out = {}
    for row in re.findall(r"<tr>(.*?)</tr>", table, re.DOTALL):
        cells = [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", c)).strip()
                 for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.DOTALL)]
        out[cells[0]] = cells[1:]
    return out


@pytest.fixture
def data(world):
    """In March: A resolved in 3 h (automatically), B in 1 h and reopened (an error), C in 5 h (kept by
    the patient's election); E and F open since January; proposals: 2 approved, 1 rejected. 75.00 of
    credit balances against 2,000.00 of charges receivable."""
    w = world
    with time_machine.travel(datetime(2026, 3, 1, 18, tzinfo=UTC), tick=False):
        w.visit(w.patient(), date(2026, 3, 1), charge="2000.00")
        credits = [w.pay(w.patient(), amount, channel="portal").credits[0] for amount in ("10.00", "20.00", "30.00")]
        extra = [w.pay(w.patient(), "5.00", channel="portal").credits[0] for _ in range(2)]

    def case(credit, identified, **kw):
        return Case.objects.create(practice=w.practice, kind=Case.Kind.PATIENT_CREDIT, cause="patient_overpayment",
                                   source="overpayment", credit=credit, patient=credit.patient, amount=credit.amount,
                                   determined_on=identified.date(), identified_at=identified, **kw)

    def event(c, at, frm, to):
        CaseEvent.objects.create(case=c, kind="state", text="t", from_state=frm, to_state=to, actor=w.clerk, at=at)

    a = case(extra[0], cst(3, 2, 10), state="resolved", outcome="applied", outcome_note="x",
             resolved_at=cst(3, 2, 13), automatic=True)
    event(a, cst(3, 2, 13), "identified", "resolved")
    b = case(credits[0], cst(3, 3, 9), state="investigating")
    event(b, cst(3, 3, 10), "investigating", "resolved")
    event(b, cst(3, 5, 9), "resolved", "investigating")
    c = case(extra[1], cst(3, 4, 8), state="resolved", outcome="kept", outcome_note="x", resolved_at=cst(3, 4, 13))
    event(c, cst(3, 4, 13), "identified", "resolved")
    case(credits[1], datetime(2026, 1, 30, 12, tzinfo=UTC))  # 60 days old on 03/31
    case(credits[2], datetime(2026, 1, 29, 12, tzinfo=UTC))  # 61 days
    for c_, state, at in ((a, "carried_out", cst(3, 2, 12)), (b, "approved", cst(3, 3, 9)),
                          (c, "rejected", cst(3, 4, 9))):
        Proposal.objects.create(case=c_, kind="apply_balances", amount=D("5.00"), reason="r", state=state,
                                proposed_by=w.clerk, decided_by=w.manager, decided_at=at)
    return w


@pytest.fixture
def bayside(db):
    """Practice B with its own manager and a 300.00 credit against a 100.00 visit's charge."""
    b = PracticeFactory(name="Bayside Orthopedics")
    boss_b = MembershipFactory(practice=b, user=UserFactory(username="bayboss"), role=Membership.Role.MANAGER).user
    zed = PatientFactory(practice=b, first_name="Zed", last_name="Zzyzx")
    with time_machine.travel(datetime(2026, 3, 1, 18, tzinfo=UTC), tick=False):
        credit_services.manual_credit_add(patient_id=zed.pk, amount="300.00", reason="old system", actor=boss_b)
    return b, boss_b


def test_the_url_is_in_the_admin_namespace():
    assert reverse("admin:reports_dashboard") == URL


def test_a_manager_sees_the_measures_worked_out_by_hand(client, data):
    w = data
    client.force_login(w.manager)
    response = client.get(URL, MARCH)
    assert response.status_code == 200
    rows = headline(response)
    assert rows["Measure"] == ["Main Street Clinic", "Replaced service"]
    # turnaround (3 + 1 + 5) / 3 = 3.00 h, worse than 2.5 h
    assert rows["Turnaround (identified to resolved, mean)"] == ["3.00 h worse", "2.50 h"]
    # approval 2 of 3 decided = 66.7%, worse than 87.0%; errors 1 of 3 resolved = 33.3%, worse than 1.2%
    assert rows["Approval rate (approved ÷ decided proposals)"] == ["66.7% worse", "87.0%"]
    assert rows["Error rate (resolved, then reopened or failed review)"] == ["33.3% worse", "1.2%"]
    assert rows["Resolved without staff action"] == ["66.7% (2 of 3)", ""]
    # 10 + 20 + 30 + 5 + 5 = 70.00 of credit balances against 2,000.00: 3.5%, above 3%
    assert rows["Credit balances"] == ["70.00", ""]
    assert rows["Gross A/R"] == ["2,000.00", ""]
    assert rows["Credit balances ÷ gross A/R (warning above 3.0%)"] == ["3.5% — above the warning level", ""]
    assert rows["Refunds issued"] == ["0 for 0.00", ""]
    # the same figures as measures()
    m = measures(practice_id=w.practice.pk, date_from=date(2026, 3, 1), date_to=date(2026, 3, 31))
    assert (m["turnaround_hours"], m["approval_rate"], m["error_rate"], m["credit_balances"]) == (
        D("3.00"), D("0.6667"), D("0.3333"), D("70.00"))
    assert response.context["columns"][0]["m"] == m
    page = text(response)
    # aging as of 03/31: B 28 days (10.00), E 60 days (20.00), F 61 days (30.00)
    assert "0-30 1 10.00" in page and "31-60 1 20.00" in page and "61-90 1 30.00" in page
    assert "Patient overpaid 3 60.00" in page and "Overpayment 3 60.00" in page  # by cause, in words
    assert "03/01/2026 to 03/31/2026, balances as of 03/31/2026" in page


def test_a_better_figure_is_marked_better(client, world):
    """One case resolved 1 h after it was identified, one proposal approved: 1.00 h is better than
    2.5 h, 100.0% better than 87.0%, 0.0% better than 1.2%."""
    w = world
    with time_machine.travel(datetime(2026, 3, 1, 18, tzinfo=UTC), tick=False):
        credit = w.pay(w.patient(), "5.00", channel="portal").credits[0]
    c = Case.objects.create(practice=w.practice, kind=Case.Kind.PATIENT_CREDIT, cause="patient_overpayment",
                            source="overpayment", credit=credit, patient=credit.patient, amount=credit.amount,
                            determined_on=date(2026, 3, 2), identified_at=cst(3, 2, 10), state="resolved",
                            outcome="applied", outcome_note="x", resolved_at=cst(3, 2, 11))
    CaseEvent.objects.create(case=c, kind="state", text="t", from_state="identified", to_state="resolved",
                             actor=w.clerk, at=cst(3, 2, 11))
    Proposal.objects.create(case=c, kind="apply_balances", amount=D("5.00"), reason="r", state="carried_out",
                            proposed_by=w.clerk, decided_by=w.manager, decided_at=cst(3, 2, 10))
    client.force_login(w.manager)
    rows = headline(client.get(URL, MARCH))
    assert rows["Turnaround (identified to resolved, mean)"][0] == "1.00 h better"
    assert rows["Approval rate (approved ÷ decided proposals)"][0] == "100.0% better"
    assert rows["Error rate (resolved, then reopened or failed review)"][0] == "0.0% better"


def test_billing_staff_get_403(client, data):
    client.force_login(data.clerk)
    assert client.get(URL, MARCH).status_code == 403


def test_a_manager_of_practice_a_never_sees_practice_b(client, data, bayside):
    b, _ = bayside
    client.force_login(data.manager)
    response = client.get(URL, {**MARCH, "practice": str(b.pk)})  # another practice's id is ignored
    assert response.status_code == 200
    assert "Bayside" not in response.content.decode()
    assert "300.00" not in text(response)
    assert [c["practice"].pk for c in response.context["columns"]] == [data.practice.pk]


def test_a_manager_of_two_practices_sees_both_side_by_side(client, data, bayside):
    b, _ = bayside
    MembershipFactory(practice=b, user=data.manager, role=Membership.Role.MANAGER)
    client.force_login(data.manager)
    response = client.get(URL, MARCH)
    rows = headline(response)
    assert rows["Measure"] == ["Bayside Orthopedics", "Main Street Clinic", "Replaced service"]
    # Bayside: a 300.00 credit and no receivable (nothing to divide by)
    assert rows["Credit balances"] == ["300.00", "70.00", ""]
    assert rows["Credit balances ÷ gross A/R (warning above 3.0%)"] == ["—", "3.5% — above the warning level", ""]
    html = response.content.decode()
    assert f'id="practice-{b.pk}"' in html and f'id="practice-{data.practice.pk}"' in html
    # one practice chosen: only its column
    one = client.get(URL, {**MARCH, "practice": str(b.pk)})
    assert headline(one)["Measure"] == ["Bayside Orthopedics", "Replaced service"]


def test_a_billing_member_of_another_practice_sees_only_the_managed_one(client, data, bayside):
    b, _ = bayside
    MembershipFactory(practice=b, user=data.manager, role=Membership.Role.BILLING)
    client.force_login(data.manager)
    assert headline(client.get(URL, MARCH))["Measure"] == ["Main Street Clinic", "Replaced service"]


@pytest.mark.parametrize("query, message", [
    ({"date_from": "2026-03-31", "date_to": "2026-03-01"}, "date_to: 03/01/2026 is before date_from 03/31/2026"),
    ({"date_from": "2000-01-01", "date_to": "2026-03-01"}, "date_from: a period of at most ten years"),
    ({"date_from": "03/45/2026", "date_to": "2026-03-01"}, "Enter a valid date."),
    ({"date_from": "", "date_to": "2026-03-01"}, "This field is required."),
    ({**MARCH, "as_of": "1850-01-01"}, "as_of: 01/01/1850 is outside the years 1900 to 2199"),
])
def test_bad_dates_show_the_error(client, data, query, message):
    client.force_login(data.manager)
    response = client.get(URL, query)
    assert response.status_code == 200
    assert message in text(response)
    assert response.context["columns"] == []


def test_the_default_period_is_the_last_30_days_in_the_practice_time_zone(client, data):
    client.force_login(data.manager)
    # 03/31 03:00 UTC is still 03/30 in Chicago
    with time_machine.travel(datetime(2026, 3, 31, 3, tzinfo=UTC), tick=False):
        response = client.get(URL)
    m = response.context["columns"][0]["m"]
    assert (m["date_from"], m["date_to"]) == (date(2026, 3, 1), date(2026, 3, 30))


def test_the_charts_are_svg_with_their_values_and_tables(client, data):
    client.force_login(data.manager)
    response = client.get(URL, {"date_from": "2026-03-01", "date_to": "2026-03-08"})
    html = response.content.decode()
    assert html.count('<svg class="settle-chart"') == 6
    assert html.count("<summary>Table</summary>") == 6
    chart = html[html.index('data-series="credit_balances"'):]
    chart = chart[:chart.index("</svg>")]
    # 12 weeks ending 03/08: the money (70.00) arrived on 03/01, in the week ending 03/01
    assert chart.count("<circle") == 12
    assert "<title>03/01/2026: 70.00</title>" in chart and "<title>02/22/2026: 0.00</title>" in chart
    section = html[html.index('chart-resolutions'):]
    table = text_of(section[:section.index("</details>")])
    assert "03/08/2026 3" in table and "03/01/2026 0" in table  # A, B and C in the week ending 03/08


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_chart_coordinates_from_decimal():
    """Three points 0, 5, 10 on a 400 x 190 chart: x from 64 to 370 (step 153), y from 156 (0) to 22 (10)."""
    points = [{"week_end": date(2026, 3, d), "v": D(v)} for d, v in ((1, "0"), (8, "5.00"), (15, "10"))]
    svg = chart_svg(points, "v", "V", "money")
    assert '<polyline class="line" points="64.0,156.0 217.0,89.0 370.0,22.0"/>' in svg
    assert ">10.00</text>" in svg and ">0.00</text>" in svg  # the axis's top and bottom
    assert scale([None, None]) == (D(0), D(1))
    gap = chart_svg([{"week_end": date(2026, 3, d), "v": v} for d, v in ((1, D(1)), (8, None), (15, D(2)))],
                    "v", "V")
    assert gap.count("<polyline") == 2  # the line is broken where there is nothing to measure


def test_refresh_counts_the_open_cases_again(client, data, bayside):
    """The open cases come from the day's snapshot once there is one: a case opened after it is not
    counted until a manager presses Refresh. Another practice's Refresh is a 404, billing staff's 403."""
    w = data
    client.force_login(w.manager)
    query = "?date_from=2026-03-01&date_to=2026-03-31&as_of=" + practice_today(w.practice).isoformat()
    response = client.post(URL + query, {"refresh": str(w.practice.pk)})
    assert response.status_code == 302 and response.url == URL + query
    snap = OpenCasesSnapshot.objects.get(practice=w.practice)
    assert (snap.taken_by, snap.open_cases) == (w.manager, 3)
    page = client.get(URL + query)
    assert "Open cases as counted at" in text(page)
    assert page.context["columns"][0]["m"]["open_cases"] == 3
    assert client.post(URL, {"refresh": str(bayside[0].pk)}).status_code == 404
    assert OpenCasesSnapshot.objects.filter(practice=bayside[0]).count() == 0
    client.force_login(w.clerk)
    assert client.post(URL, {"refresh": str(w.practice.pk)}).status_code == 403
    assert OpenCasesSnapshot.objects.count() == 1
