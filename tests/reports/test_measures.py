"""The measures of DOMAIN rule 21 on a fixed data set, each worked out by hand below. The practice is
in America/Chicago (CST, UTC-6, in early March); the period is March 2026."""

from datetime import UTC, date, datetime
from decimal import Decimal as D

import pytest
import time_machine

from adjudication.models import Case, CaseEvent, Proposal
from adjudication.scan import scan_practice
from ledger.errors import InvalidInput, PermissionDenied
from reports.jobs import audit_books
from reports.measures import balance_days_fill, closing_balances, measures, open_cases_snapshot_take, trend
from reports.models import BalanceDay, OpenCasesSnapshot

pytestmark = pytest.mark.django_db


def cst(day, hour):
    return datetime(2026, day[0], day[1], hour + 6, tzinfo=UTC)


@pytest.fixture
def data(world):
    w = world
    with time_machine.travel(datetime(2026, 3, 1, 18, tzinfo=UTC), tick=False):
        w.visit(w.patient(), date(2026, 3, 1), charge="2000.00")  # 2,000.00 of charges receivable
        credits = [w.pay(w.patient(), amount, channel="portal").credits[0] for amount in ("10.00", "20.00", "30.00")]
        extra = [w.pay(w.patient(), "5.00", channel="portal").credits[0] for _ in range(3)]

    def case(credit, identified, **kw):
        return Case.objects.create(practice=w.practice, kind=Case.Kind.PATIENT_CREDIT, cause="patient_overpayment",
                                   source="overpayment", credit=credit, patient=credit.patient, amount=credit.amount,
                                   determined_on=identified.date(), identified_at=identified, **kw)

    def event(c, at, frm, to):
        CaseEvent.objects.create(case=c, kind="state", text="t", from_state=frm, to_state=to, actor=w.clerk, at=at)

    # resolved in March: A 3 h (automatic), B 1 h (reopened on the 5th: an error), C 5 h (kept by election)
    a = case(extra[0], cst((3, 2), 10), state="resolved", outcome="applied", outcome_note="x",
             resolved_at=cst((3, 2), 13), automatic=True)
    event(a, cst((3, 2), 13), "identified", "resolved")
    b = case(credits[0], cst((3, 3), 9), state="investigating")
    event(b, cst((3, 3), 10), "investigating", "resolved")
    event(b, cst((3, 5), 9), "resolved", "investigating")
    c = case(extra[1], cst((3, 4), 8), state="resolved", outcome="kept", outcome_note="x", resolved_at=cst((3, 4), 13))
    event(c, cst((3, 4), 13), "identified", "resolved")
    d = case(extra[2], cst((2, 20), 8), state="resolved", outcome="applied", outcome_note="x",
             resolved_at=cst((4, 2), 8))
    event(d, cst((4, 2), 8), "identified", "resolved")  # April: outside the period
    # open, for the aging as of 03/31: E identified 01/30 (60 days), F 01/29 (61 days)
    case(credits[1], datetime(2026, 1, 30, 12, tzinfo=UTC))
    case(credits[2], datetime(2026, 1, 29, 12, tzinfo=UTC))
    # proposals decided in March: two approved (one carried out), one rejected; one rejected in April
    for c_, state, at in ((a, "carried_out", cst((3, 2), 12)), (b, "approved", cst((3, 3), 9)),
                          (c, "rejected", cst((3, 4), 9)), (d, "rejected", cst((4, 1), 9))):
        Proposal.objects.create(case=c_, kind="apply_balances", amount=D("5.00"), reason="r", state=state,
                                proposed_by=w.clerk, decided_by=w.manager, decided_at=at)
    return w


def test_the_measures_of_a_month_worked_out_by_hand(data):
    w = data
    m = measures(practice_id=w.practice.pk, date_from=date(2026, 3, 1), date_to=date(2026, 3, 31))
    # turnaround: (3 + 1 + 5) / 3 resolutions = 3.00 hours
    assert (m["resolutions"], m["turnaround_hours"]) == (3, D("3.00"))
    # approval: 2 approved of 3 decided in March
    assert (m["approved"], m["rejected"], m["approval_rate"]) == (2, 1, D("0.6667"))
    # error rate: B was reopened after its resolution; 1 of 3 resolved cases
    assert (m["errors"], m["resolved_cases"], m["error_rate"]) == (1, 3, D("0.3333"))
    # without staff action: A (automatic) and C (the patient's election): 2 of 3
    assert m["automatic_share"] == D("0.6667")
    # aging as of 03/31: B 28 days (10.00), E 60 days (20.00), F 61 days (30.00)
    aging = {label: (n, amount) for label, n, amount in m["aging"]}
    assert aging["0-30"] == (1, D("10.00")) and aging["31-60"] == (1, D("20.00"))
    assert aging["61-90"] == (1, D("30.00")) and aging["over 365"] == (0, D("0"))
    assert m["by_cause"] == [("patient_overpayment", 3, D("60.00"))]
    # credit balances: 10 + 20 + 30 + 3 x 5 = 75.00 against 2,000.00 of A/R: 3.75%, above 3%
    assert (m["credit_balances"], m["gross_ar"], m["share_of_ar"], m["share_warning"]) == (
        D("75.00"), D("2000.00"), D("0.0375"), True)
    # as of 02/28 none of it existed yet
    early = measures(practice_id=w.practice.pk, date_from=date(2026, 2, 1), date_to=date(2026, 2, 28))
    assert (early["credit_balances"], early["share_of_ar"], early["resolutions"]) == (D("0"), None, 0)


def test_exactly_three_percent_is_not_a_warning(world):
    w = world
    with time_machine.travel(datetime(2026, 3, 1, 18, tzinfo=UTC), tick=False):
        w.visit(w.patient(), date(2026, 3, 1), charge="1000.00")
        w.pay(w.patient(), "30.00", channel="portal")
    m = measures(practice_id=w.practice.pk, date_from=date(2026, 3, 1), date_to=date(2026, 3, 31))
    assert (m["share_of_ar"], m["share_warning"]) == (D("0.0300"), False)


def test_the_weekly_trend_and_a_bad_period(data):
    w = data
    points = trend(practice_id=w.practice.pk, end=date(2026, 3, 8), weeks=2)
    assert [p["week_end"] for p in points] == [date(2026, 3, 1), date(2026, 3, 8)]
    # week to 03/01: the money is in (75.00 of 2,000.00), nothing resolved; week to 03/08: A, B, C
    assert (points[0]["credit_balances"], points[0]["resolutions"]) == (D("75.00"), 0)
    assert (points[1]["resolutions"], points[1]["turnaround_hours"], points[1]["share_of_ar"]) == (
        3, D("3.00"), D("0.0375"))
    with pytest.raises(InvalidInput, match="date_to"):
        measures(practice_id=w.practice.pk, date_from=date(2026, 3, 2), date_to=date(2026, 3, 1))


def test_closed_days_are_kept_and_give_the_same_figures(world):
    """The dashboard's speed (docs/reports.md): closed days' closing balances are stored once
    (BalanceDay) and the open cases counted once a day (OpenCasesSnapshot); the figures read from
    them equal the ones summed from every row."""
    w = world
    pat = w.patient()
    with time_machine.travel(datetime(2026, 3, 1, 18, tzinfo=UTC), tick=False):  # 03/01 noon CST
        w.visit(pat, date(2026, 3, 1), charge="1000.00")
        w.pay(pat, "40.00", channel="portal")
    with time_machine.travel(datetime(2026, 3, 3, 18, tzinfo=UTC), tick=False):
        w.pay(pat, "25.00", channel="portal")
    p = w.practice
    days = [date(2026, 2, 27), date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3), date(2026, 3, 4)]
    with time_machine.travel(datetime(2026, 3, 4, 18, tzinfo=UTC), tick=False):
        summed = {d: closing_balances(p, d) for d in days}
        assert summed[date(2026, 3, 2)] == (D("40.00"), D("1000.00"))
        assert summed[date(2026, 3, 4)] == (D("65.00"), D("1000.00"))
        # 03/01 to 03/03 are closed (the first line was on 03/01); 03/04 is today
        assert balance_days_fill(p.pk) == 3
        assert balance_days_fill(p.pk) == 0  # once
        assert list(BalanceDay.objects.filter(practice=p).order_by("day").values_list("day", "credit_balances")) \
            == [(date(2026, 3, 1), D("40.00")), (date(2026, 3, 2), D("40.00")), (date(2026, 3, 3), D("65.00"))]
        assert {d: closing_balances(p, d) for d in days} == summed
        w.pay(pat, "5.00", channel="portal")  # today's line counts at once, on top of the closed day
        assert closing_balances(p, date(2026, 3, 4)) == (D("70.00"), D("1000.00"))
        assert [pt["credit_balances"] for pt in trend(practice_id=p.pk, end=date(2026, 3, 4), weeks=2)] == \
            [D("0"), D("70.00")]
    with time_machine.travel(datetime(2026, 3, 5, 6, 30, tzinfo=UTC), tick=False):  # 03/05 00:30 CST: not yet
        assert balance_days_fill(p.pk) == 0
    with time_machine.travel(datetime(2026, 3, 5, 7, tzinfo=UTC), tick=False):  # an hour after its end
        assert balance_days_fill(p.pk) == 1


def test_the_open_cases_come_from_the_days_snapshot(data):
    w = data
    live = measures(practice_id=w.practice.pk, date_from=date(2026, 3, 1), date_to=date(2026, 3, 31))
    assert live["counted_at"] is None
    with time_machine.travel(datetime(2026, 3, 31, 14, tzinfo=UTC), tick=False):  # 03/31 08:00 CST
        with pytest.raises(PermissionDenied):
            open_cases_snapshot_take(practice_id=w.practice.pk, actor=w.clerk)
        snap = open_cases_snapshot_take(practice_id=w.practice.pk, actor=w.manager)
    assert snap.open_cases == 3
    m = measures(practice_id=w.practice.pk, date_from=date(2026, 3, 1), date_to=date(2026, 3, 31))
    assert m["counted_at"] == snap.taken_at
    assert [m[k] for k in ("aging", "by_source", "by_cause", "by_payer")] == \
        [live[k] for k in ("aging", "by_source", "by_cause", "by_payer")]
    # another day's snapshot is not that day's count
    other = measures(practice_id=w.practice.pk, date_from=date(2026, 3, 1), date_to=date(2026, 3, 30))
    assert other["counted_at"] is None


def test_the_daily_books_job_keeps_the_dashboards_figures(world):
    w = world
    with time_machine.travel(datetime(2026, 3, 1, 18, tzinfo=UTC), tick=False):
        w.visit(w.patient(), date(2026, 3, 1), charge="500.00")
        w.pay(w.patient(), "15.00", channel="portal")
        scan_practice(practice_id=w.practice.pk)
    with time_machine.travel(datetime(2026, 3, 3, 12, tzinfo=UTC), tick=False):  # 03/03 06:00 CST
        out = audit_books(w.practice.pk)
    assert out["status"] == "clean"
    assert list(BalanceDay.objects.filter(practice=w.practice).values_list("day", "credit_balances", "gross_ar")) \
        == [(date(2026, 3, 1), D("15.00"), D("500.00")), (date(2026, 3, 2), D("15.00"), D("500.00"))]
    snap = OpenCasesSnapshot.objects.get(practice=w.practice)
    assert (snap.open_cases, snap.aging[0]) == (1, ["0-30", 1, "15.00"])
