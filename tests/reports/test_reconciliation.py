"""Reconciliation as of a date (DOMAIN rule 20, issue 12 item 2): the books of each past day come
back from history and the append-only journal and agree; a planted difference is listed to the row
with both values; the export carries the same rows. (After every other test of the suite,
tests/conftest.py reconciles every practice as of today and fails on any difference.)"""

import csv
import io
from datetime import date, datetime
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import openpyxl
import pytest
import time_machine
from django.db import connection

from credits.nightly import nightly_apply
from ledger.errors import NotFound
from reports.exports.jobs import export_open, export_start
from reports.models import ExportJob
from reports.reconciliation import reconcile

pytestmark = pytest.mark.django_db
CHICAGO = ZoneInfo("America/Chicago")


def at(y, m, d, hour=10):
    return time_machine.travel(datetime(y, m, d, hour, tzinfo=CHICAGO), tick=False)


@pytest.fixture
def days(world):
    """2 Mar: a visit, 120.00 paid at the desk (a credit locked to the visit), the remittance sets
    the PR at 50.00. 3 Mar: the nightly run applies 50.00 of it and frees the other 70.00. 4 Mar: a
    second payment of 30.00 at the portal."""
    w = world
    pat = w.patient(last_name="Okafor", first_name="Ben")
    with at(2026, 3, 2):
        enc, claim = w.visit(pat, date(2026, 2, 20), estimated_pr="50.00")
        credit = w.pay(pat, "120.00", encounter=enc).credits[0]  # paid at the desk, locked to the visit
        w.remit(claim, pr="50.00", paid="150.00")
    with at(2026, 3, 3, hour=2):
        result = nightly_apply(practice_id=w.practice.pk)
        assert result.applied_total == D("50.00"), result
    with at(2026, 3, 4):
        w.pay(pat, "30.00", channel="portal")
    return w, pat, enc, credit


def totals(w, day):
    r = reconcile(practice_id=w.practice.pk, as_of=day)
    assert r.differences == [], r.differences
    return {k: r.totals[k] for k in ("credits_on_hand", "credit_liability", "encounter_balances",
                                     "patient_receivable")}


def test_each_day_comes_back_as_it_was_and_agrees(days):
    w = days[0]
    with at(2026, 3, 10):
        # the day before anything: nothing on the books
        assert set(totals(w, date(2026, 3, 1)).values()) == {D("0.00")}
        # 2 Mar: 120.00 on hand, the visit owes 50.00, and the journal says the same
        assert totals(w, date(2026, 3, 2)) == {"credits_on_hand": D("120.00"), "credit_liability": D("120.00"),
                                               "encounter_balances": D("50.00"), "patient_receivable": D("50.00")}
        # 3 Mar: 50.00 applied, 70.00 left; the visit is paid
        assert totals(w, date(2026, 3, 3)) == {"credits_on_hand": D("70.00"), "credit_liability": D("70.00"),
                                               "encounter_balances": D("0.00"), "patient_receivable": D("0.00")}
        # 4 Mar and after: 30.00 more
        assert totals(w, date(2026, 3, 4))["credits_on_hand"] == D("100.00")
        assert totals(w, date(2026, 3, 9))["credit_liability"] == D("100.00")


@pytest.mark.planted_fault
def test_a_difference_is_listed_to_the_row_with_both_values(days):
    w, pat, enc, credit = days
    with connection.cursor() as cur:
        cur.execute("SET LOCAL session_replication_role = replica")  # past the trigger that keeps history
        # the credit's row says 5.00 more than the journal booked (as a hand edit of the table would)
        cur.execute("UPDATE credits_historicalcredit SET on_hand = on_hand + 5 WHERE history_id = "
                    "(SELECT max(history_id) FROM credits_historicalcredit WHERE id = %s)", [credit.pk])
        # the visit's row says it still owes 7.00
        cur.execute("UPDATE ledger_historicalencounter SET applied_amount = applied_amount - 7 WHERE history_id = "
                    "(SELECT max(history_id) FROM ledger_historicalencounter WHERE id = %s)", [enc.pk])
    with at(2026, 3, 10):
        r = reconcile(practice_id=w.practice.pk, as_of=date(2026, 3, 9))
    found = {(d.kind, d.object_id): (d.books, d.journal, d.difference) for d in r.differences}
    assert found == {("patient", pat.pk): (D("105.00"), D("100.00"), D("5.00")),
                     ("credit", credit.pk): (D("75.00"), D("70.00"), D("5.00")),
                     ("encounter", enc.pk): (D("7.00"), D("0.00"), D("7.00"))}
    assert "Okafor, Ben" in next(d.label for d in r.differences if d.kind == "patient")
    assert "02/20/2026" in next(d.label for d in r.differences if d.kind == "encounter")
    assert r.totals["differences"] == 3
    # as of 2 Mar (before the planted rows' changes) the books still agree
    with at(2026, 3, 10):
        assert reconcile(practice_id=w.practice.pk, as_of=date(2026, 3, 2)).differences == []


@pytest.mark.planted_fault
def test_the_export_lists_the_same_rows_and_the_totals(days, django_capture_on_commit_callbacks):
    w, pat, _, credit = days
    with connection.cursor() as cur:
        cur.execute("SET LOCAL session_replication_role = replica")  # past the trigger that keeps history
        cur.execute("UPDATE credits_historicalcredit SET on_hand = on_hand - 2.50 WHERE history_id = "
                    "(SELECT max(history_id) FROM credits_historicalcredit WHERE id = %s)", [credit.pk])
    expected = [("credit", credit.pk, D("67.50"), D("70.00"), D("-2.50")),
                ("patient", pat.pk, D("97.50"), D("100.00"), D("-2.50"))]
    files = {}
    for fmt in ("csv", "xlsx"):
        with at(2026, 3, 10), django_capture_on_commit_callbacks(execute=True):
            job = export_start(practice_id=w.practice.pk, report="reconciliation", format=fmt,
                               params={"as_of": "2026-03-09"}, actor=w.manager)
        job.refresh_from_db()
        assert job.state == ExportJob.State.DONE, job.error
        files[fmt] = export_open(job=job.pk, actor=w.manager)[0].read()
    rows = list(csv.reader(io.StringIO(files["csv"].decode("utf-8-sig"))))
    assert rows[0] == ["What", "Id", "Which", "Books", "Journal", "Difference"]
    assert sorted((r[0], int(r[1]), D(r[3]), D(r[4]), D(r[5])) for r in rows[1:]) == expected
    sheet = list(openpyxl.load_workbook(io.BytesIO(files["xlsx"]), read_only=True).active.iter_rows(values_only=True))
    assert ("Differences", "2") in [r[:2] for r in sheet]
    assert ("Credits on hand", "97.50") in [r[:2] for r in sheet]
    body = [r for r in sheet if r and r[0] in ("credit", "patient")]
    assert sorted((r[0], r[1], D(str(r[3])), D(str(r[4])), D(str(r[5]))) for r in body) == expected


def test_another_practice_or_none_is_not_found(world):
    with pytest.raises(NotFound):
        reconcile(practice_id=10**9, as_of=date(2026, 3, 1))
