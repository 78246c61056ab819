"""The reports API (issue 12 item 6): audit runs (run now, list, detail), findings (filters,
acknowledge, resolve), second reviews of cases, the measures and their trend on the hand-worked data
of tests/reports/test_measures.py, the reconciliation, the export catalog, an export started, followed
and downloaded, and the Medicare credit balance report generated and downloaded. Every route refuses a
billing token (403, nothing written); bad input is a 400 naming the field; another practice's ids are
404 (tests/api/test_tenancy.py calls every route with the other practice's manager token); the routes are
fuzzed against the schema with a manager's token."""

import csv
import hashlib
import io
import threading
from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from django.db import connections
from hypothesis import HealthCheck, settings
from pypdf import PdfReader
from schemathesis.specs.openapi.checks import positive_data_acceptance

from adjudication.models import Case
from credits import services as credit_services
from ledger.models import Membership
from reports.audits import run_audit, runner
from reports.models import AuditFinding, AuditRun, CaseReview, Cms838Report, ExportJob
from tests.api import test_schemathesis as fuzz
from tests.api.conftest import error_of, make_api
from tests.api.test_schemathesis import fuzz_token  # noqa: F401  (fixture)
from tests.reports.test_audits import resolved_case
from tests.reports.test_exports import credits3, medicare  # noqa: F401  (fixtures)
from tests.reports.test_measures import data  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db

START = date(2026, 3, 2)


def travel(day):
    return time_machine.travel(datetime(day.year, day.month, day.day, 17, tzinfo=UTC), tick=False)


@pytest.fixture
def work(world):
    """On 03/02: a copay of 20.00 locked to a visit whose claim stays open, and 60.00 a payer paid twice."""
    w = world
    with travel(START):
        pat = w.patient()
        enc, _ = w.visit(pat, START, estimated_pr="20.00")
        locked = w.pay(pat, "20.00", encounter=enc).credits[0]
        pc = credit_services.payer_credit_open(payer_id=w.payer.pk, amount="60.00", reason_code="duplicate_payment",
                                               actor=w.clerk, cash_received=True, reason="Paid twice")
    return w, locked, pc


# --- audit runs and findings ------------------------------------------------------------------------

def test_an_audit_run_now_lists_its_checks_and_findings(work, manager_api):
    w, locked, pc = work
    with travel(START + timedelta(days=91)):
        r = manager_api.post("/audit-runs", {"kind": "work", "reason": "Month end"}, key="run-1")
    assert r.status_code == 201, r.content
    run = r.json()
    # 91 days on: the copay is locked past the 60 days' limit, the payer credit open past its 60 days
    assert (run["kind"], run["status"], run["finding_count"], run["as_of"]) == ("work", "findings", 2, "2026-06-01")
    assert (run["triggered_by"], run["reason"]) == ("boss", "Month end")
    assert [c["check"] for c in run["checks"]] == list(AuditFinding.WORK_CHECKS)
    assert {c["check"]: c["findings"] for c in run["checks"]} == {
        "stale_locked": 1, "skipped_application": 0, "payer_credit_open": 1, "clock_near_breach": 0,
        "clock_breached": 0, "review_sample": 0}
    assert run["finding_counts"]["by_state"] == {"open": 2, "acknowledged": 0, "resolved": 0}
    assert run["finding_counts"]["by_severity"] == {"info": 0, "warning": 2, "error": 0, "critical": 0}
    # the same key again (within the keys' 24 hours): the stored answer, no second run
    with travel(START + timedelta(days=91)):
        again = manager_api.post("/audit-runs", {"kind": "work", "reason": "Month end"}, key="run-1")
    assert (again.status_code, again["Idempotent-Replayed"], again.json()["id"]) == (201, "true", run["id"])
    assert AuditRun.objects.filter(practice=w.practice).count() == 1
    assert manager_api.get(f"/audit-runs/{run['id']}").json() == run
    assert [x["id"] for x in manager_api.get("/audit-runs", {"kind": "work"}).json()["results"]] == [run["id"]]
    assert manager_api.get("/audit-runs", {"kind": "books"}).json()["results"] == []
    bad = manager_api.get("/audit-runs", {"kind": "weekly"})
    assert (bad.status_code, error_of(bad)["field"]) == (400, "kind")
    bad = manager_api.post("/audit-runs", {"kind": "daily", "reason": "x"})
    assert (bad.status_code, error_of(bad)["field"]) == (400, "kind")
    bad = manager_api.post("/audit-runs", {"kind": "books"})
    assert (bad.status_code, error_of(bad)["field"]) == (400, "reason")
    assert AuditRun.objects.filter(practice=w.practice).count() == 1

    findings = manager_api.get("/audit-findings", {"run": run["id"]}).json()["results"]
    got = {f["kind"]: f for f in findings}
    assert set(got) == {"stale_locked", "payer_credit_open"}
    assert (got["stale_locked"]["object_id"], got["stale_locked"]["amount"], got["stale_locked"]["age_days"]) == (
        locked.pk, "20.00", 91)
    assert (got["payer_credit_open"]["object_id"], got["payer_credit_open"]["amount"],
            got["payer_credit_open"]["actual"]) == (pc.pk, "60.00", "open 91 days")
    assert [f["kind"] for f in manager_api.get("/audit-findings", {"kind": "stale_locked"}).json()["results"]] == [
        "stale_locked"]
    assert manager_api.get("/audit-findings", {"severity": "error"}).json()["results"] == []
    assert len(manager_api.get("/audit-findings", {"state": "open"}).json()["results"]) == 2
    bad = manager_api.get("/audit-findings", {"severity": "bad"})
    assert (bad.status_code, error_of(bad)["field"]) == (400, "severity")


def test_findings_are_acknowledged_then_resolved_with_a_reason(work, manager_api):
    w = work[0]
    with travel(START + timedelta(days=91)):
        manager_api.post("/audit-runs", {"kind": "work", "reason": "Month end"})
    f = AuditFinding.objects.get(practice=w.practice, kind="payer_credit_open")
    bad = manager_api.post(f"/audit-findings/{f.pk}/acknowledge", {"reason": "  "})
    assert (bad.status_code, error_of(bad)["field"]) == (400, "reason")
    r = manager_api.post(f"/audit-findings/{f.pk}/acknowledge", {"reason": "Asked the payer to recoup"})
    assert r.status_code == 200, r.content
    assert (r.json()["state"], r.json()["decided_by"], r.json()["decision_reason"]) == (
        "acknowledged", "boss", "Asked the payer to recoup")
    twice = manager_api.post(f"/audit-findings/{f.pk}/acknowledge", {"reason": "again"})
    assert (twice.status_code, error_of(twice)["code"]) == (409, "state")
    r = manager_api.post(f"/audit-findings/{f.pk}/resolve", {"reason": "Recouped in the 06/03 remittance"})
    assert (r.status_code, r.json()["state"]) == (200, "resolved")
    f.refresh_from_db()
    assert (f.state, f.decided_by, f.history.latest().history_change_reason) == (
        "resolved", w.manager, "Recouped in the 06/03 remittance")
    twice = manager_api.post(f"/audit-findings/{f.pk}/resolve", {"reason": "again"})
    assert twice.status_code == 409
    assert manager_api.post("/audit-findings/999999/resolve", {"reason": "x"}).status_code == 404


def test_a_second_audit_of_the_same_kind_while_one_runs_is_409(work, manager_api):
    w = work[0]
    key = runner._advisory_key(w.practice.pk, "books")
    held, release = threading.Event(), threading.Event()

    def other_session():  # another connection (a run in progress) holds the run's lock
        with connections["default"].cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s, %s)", [runner.ADVISORY_NAMESPACE, key])
            held.set()
            release.wait(10)
            cur.execute("SELECT pg_advisory_unlock(%s, %s)", [runner.ADVISORY_NAMESPACE, key])
        connections.close_all()

    t = threading.Thread(target=other_session)
    t.start()
    try:
        assert held.wait(10)
        r = manager_api.post("/audit-runs", {"kind": "books", "reason": "Now"})
    finally:
        release.set()
        t.join()
    assert (r.status_code, error_of(r)["code"]) == (409, "duplicate")
    assert not AuditRun.objects.filter(practice=w.practice).exists()


# --- case reviews -----------------------------------------------------------------------------------

def test_a_second_review_is_recorded_by_another_manager_and_a_failed_one_reopens(world, manager_api):
    w = world
    noon = datetime(2026, 3, 2, 17, tzinfo=UTC)
    with travel(noon.date()):
        cases = [resolved_case(w, n, noon) for n in range(8)]  # resolved by the clerk
        run = manager_api.post("/audit-runs", {"kind": "work", "reason": "Weekly"}).json()
    assert {c["check"]: c["findings"] for c in run["checks"]}["review_sample"] == 5  # the default sample size
    pending = manager_api.get("/case-reviews", {"state": "pending"}).json()["results"]
    assert len(pending) == 5 and {p["case"] for p in pending} <= {c.pk for c in cases}
    review = CaseReview.objects.get(pk=pending[0]["id"])
    assert (pending[0]["run"], pending[0]["case_state"], pending[0]["case_outcome"]) == (run["id"], "resolved",
                                                                                         "applied")
    bad = manager_api.post(f"/case-reviews/{review.pk}/record", {"outcome": "maybe", "note": "x"})
    assert (bad.status_code, error_of(bad)["field"]) == (400, "outcome")
    bad = manager_api.post(f"/case-reviews/{review.pk}/record", {"outcome": "passed", "note": "x", "reopen": True})
    assert (bad.status_code, error_of(bad)["field"]) == (400, "reopen")
    bad = manager_api.post(f"/case-reviews/{review.pk}/record", {"outcome": "passed"})
    assert (bad.status_code, error_of(bad)["field"]) == (400, "note")
    # a manager who resolved the case does not review it
    resolver = make_api(w.practice, role=Membership.Role.MANAGER, name="resolver")
    Case.objects.filter(pk=review.case_id).update(resolved_by=resolver.token.created_by)
    own = resolver.post(f"/case-reviews/{review.pk}/record", {"outcome": "passed", "note": "Looks right"})
    assert (own.status_code, error_of(own)["code"]) == (403, "permission_denied")
    r = manager_api.post(f"/case-reviews/{review.pk}/record",
                         {"outcome": "failed", "note": "Applied to the wrong visit", "reopen": True})
    assert r.status_code == 200, r.content
    assert (r.json()["state"], r.json()["reviewer"], r.json()["note"], r.json()["case_state"]) == (
        "failed", "boss", "Applied to the wrong visit", "investigating")
    case = Case.objects.get(pk=review.case_id)
    assert (case.state, case.reopened_count) == ("investigating", 1)
    assert AuditFinding.objects.get(pk=review.finding_id).state == "resolved"
    twice = manager_api.post(f"/case-reviews/{review.pk}/record", {"outcome": "passed", "note": "again"})
    assert twice.status_code == 409
    assert manager_api.get(f"/case-reviews/{review.pk}").json()["state"] == "failed"
    assert len(manager_api.get("/case-reviews", {"state": "pending"}).json()["results"]) == 4


# --- measures, trend, reconciliation ----------------------------------------------------------------

def test_the_measures_of_march_as_worked_out_by_hand(data, manager_api):  # noqa: F811
    r = manager_api.get("/measures", {"date_from": "2026-03-01", "date_to": "2026-03-31"})
    assert r.status_code == 200, r.content
    m = r.json()
    # tests/reports/test_measures.py works these out: (3 + 1 + 5) / 3 hours; 2 of 3 approved; 1 of 3 reopened;
    # 2 of 3 without staff; 75.00 of credits against 2,000.00 of A/R
    assert (m["resolutions"], m["turnaround_hours"]) == (3, "3.00")
    assert (m["approved"], m["rejected"], m["approval_rate"]) == (2, 1, "0.6667")
    assert (m["errors"], m["resolved_cases"], m["error_rate"], m["automatic_share"]) == (1, 3, "0.3333", "0.6667")
    assert (m["credit_balances"], m["gross_ar"], m["share_of_ar"], m["share_warning"]) == (
        "75.00", "2000.00", "0.0375", True)
    assert (m["as_of"], m["practice_name"]) == ("2026-03-31", "Main Street Clinic")
    aging = {b["label"]: (b["count"], b["amount"]) for b in m["aging"]}
    assert (aging["0-30"], aging["31-60"], aging["61-90"], aging["over 365"]) == (
        (1, "10.00"), (1, "20.00"), (1, "30.00"), (0, "0.00"))
    assert m["by_cause"] == [{"label": "patient_overpayment", "count": 3, "amount": "60.00"}]
    assert m["replaced_service"] == {"turnaround_hours": "2.50", "approval_rate": "0.8700", "error_rate": "0.0120"}
    early = manager_api.get("/measures", {"date_from": "2026-02-01", "date_to": "2026-02-28"}).json()
    assert (early["credit_balances"], early["share_of_ar"], early["approval_rate"]) == ("0.00", None, None)


def test_the_weekly_trend(data, manager_api):  # noqa: F811
    r = manager_api.get("/measures/trend", {"end": "2026-03-08", "weeks": "2"})
    assert r.status_code == 200, r.content
    points = r.json()
    assert [p["week_end"] for p in points] == ["2026-03-01", "2026-03-08"]
    assert [(p["credit_balances"], p["resolutions"]) for p in points] == [("75.00", 0), ("75.00", 3)]
    assert (points[1]["turnaround_hours"], points[1]["share_of_ar"], points[0]["turnaround_hours"]) == (
        "3.00", "0.0375", None)


@pytest.mark.parametrize(("path", "params", "field"), [
    ("/measures", {"date_from": "2026-03-02", "date_to": "2026-03-01"}, "date_to"),
    ("/measures", {"date_to": "2026-03-01"}, "date_from"),
    ("/measures", {"date_from": "03/01/2026", "date_to": "2026-03-31"}, "date_from"),
    ("/measures", {"date_from": "2016-01-01", "date_to": "2026-12-31"}, "date_from"),  # over ten years
    ("/measures", {"date_from": "2026-03-01", "date_to": "2026-03-31", "as_of": "2026-02-30"}, "as_of"),
    ("/measures", {"date_from": "2026-03-01", "date_to": "2026-03-31", "from": "x"}, "from"),
    ("/measures/trend", {"end": "2026-03-08", "weeks": "0"}, "weeks"),
    ("/measures/trend", {"end": "2026-03-08", "weeks": "105"}, "weeks"),
    ("/measures/trend", {"weeks": "2"}, "end"),
    ("/reconciliation", {"as_of": "yesterday"}, "as_of"),
    # the reports reach past the days they are given: the ends of the calendar are refused, not a 500
    ("/measures/trend", {"end": "0001-01-01"}, "end"),
    ("/measures", {"date_from": "9999-12-01", "date_to": "9999-12-31"}, "date_from"),
    ("/reconciliation", {"as_of": "9999-12-31"}, "as_of"),
])
def test_bad_periods_are_400_naming_the_field(manager_api, path, params, field):
    r = manager_api.get(path, params)
    assert (r.status_code, error_of(r)["field"]) == (400, field), r.content


@pytest.fixture
def books(world):
    """03/02: a patient owes 50.00 on a visit, then pays 300.00 at the portal: 50.00 of it pays the visit, 250.00
    stays as an available credit."""
    w = world
    with travel(START):
        pat = w.patient(last_name="Rivera", first_name="Ana", account_number="R-1")
        _, claim = w.visit(pat, START, estimated_pr="50.00")
        w.remit(claim, pr="50.00", paid="150.00")
        credit = w.pay(pat, "300.00", channel="portal").credits[0]
    return w, credit


def test_the_reconciliation_as_of_a_date(books, manager_api):
    r = manager_api.get("/reconciliation", {"as_of": "2026-03-02"})
    assert r.status_code == 200, r.content
    body = r.json()
    assert (body["as_of"], body["differences"]) == ("2026-03-02", [])
    assert body["totals"] == {"credits_on_hand": "250.00", "credit_liability": "250.00",
                              "encounter_balances": "0.00", "patient_receivable": "0.00",
                              "journal_imbalance": "0.00", "differences": 0}
    before = manager_api.get("/reconciliation", {"as_of": "2026-03-01"}).json()["totals"]
    assert (before["credits_on_hand"], before["credit_liability"]) == ("0.00", "0.00")
    with travel(START):
        assert manager_api.get("/reconciliation").json()["as_of"] == "2026-03-02"  # the practice's today


@pytest.mark.planted_fault
def test_the_reconciliation_lists_a_planted_difference_to_the_row(books, manager_api):
    _, credit = books
    with connections["default"].cursor() as cur:  # the credit's last history row says 5.00 more than the journal
        cur.execute("SET LOCAL session_replication_role = replica")  # past the trigger that keeps history
        cur.execute("UPDATE credits_historicalcredit SET on_hand = on_hand + 5 WHERE history_id = "
                    "(SELECT MAX(history_id) FROM credits_historicalcredit WHERE id = %s)", [credit.pk])
    body = manager_api.get("/reconciliation", {"as_of": "2026-03-02"}).json()
    assert body["totals"]["differences"] == 2 and body["totals"]["credits_on_hand"] == "255.00"
    rows = {d["kind"]: d for d in body["differences"]}
    assert (rows["patient"]["label"], rows["patient"]["books"], rows["patient"]["journal"],
            rows["patient"]["difference"]) == ("Rivera, Ana (R-1)", "255.00", "250.00", "5.00")
    assert (rows["credit"]["object_id"], rows["credit"]["difference"]) == (credit.pk, "5.00")


# --- exports ----------------------------------------------------------------------------------------

def test_the_export_catalog(manager_api):
    r = manager_api.get("/reports")
    assert r.status_code == 200, r.content
    names = [d["name"] for d in r.json()]
    assert names == ["aging", "audit_report", "case_log", "cms838", "holder_report", "reconciliation", "refunds",
                     "writeoffs"]
    aging = r.json()[0]
    assert (aging["title"], aging["takes"], aging["formats"]) == ("Credit-balance aging", ["as_of"],
                                                                  ["csv", "xlsx", "pdf"])


def test_an_export_is_started_followed_and_downloaded(credits3, manager_api,  # noqa: F811
                                                      django_capture_on_commit_callbacks):
    w = credits3
    with django_capture_on_commit_callbacks(execute=True):  # django-q runs the task at the commit (sync in tests)
        r = manager_api.post("/exports", {"report": "aging", "format": "csv", "params": {"as_of": "2026-04-15"}},
                             key="exp-1")
    assert r.status_code == 202, r.content
    started = r.json()
    assert (started["state"], started["file_url"], started["created_by"]) == ("queued", None, "boss")
    assert started["params"] == {"as_of": "2026-04-15", "date_from": None, "date_to": None}
    job = manager_api.get(f"/exports/{started['id']}").json()
    assert (job["state"], job["rows_done"], job["rows_total"], job["filename"]) == ("done", 3, 3,
                                                                                    "aging-20260415.csv")
    assert job["file_url"] == f"http://testserver/api/v1/exports/{job['id']}/file"
    f = manager_api.get(f"/exports/{job['id']}/file")
    assert f.status_code == 200
    assert f["Content-Type"] == "text/csv; charset=utf-8"
    assert f["Content-Disposition"] == 'attachment; filename="aging-20260415.csv"'
    content = b"".join(f.streaming_content)
    assert (len(content), hashlib.sha256(content).hexdigest()) == (job["size"], job["sha256"])
    rows = list(csv.reader(io.StringIO(content.decode())))
    # the three credits of 03/02, 44 days old on 04/15: 10.00 + 20.00 + 35.50
    assert [r_[9] for r_ in rows[1:]] == ["10.00", "20.00", "35.50"]
    # the same key again: the same job, nothing queued twice
    again = manager_api.post("/exports", {"report": "aging", "format": "csv", "params": {"as_of": "2026-04-15"}},
                             key="exp-1")
    assert (again.status_code, again.json()["id"]) == (202, job["id"])
    assert ExportJob.objects.filter(practice=w.practice).count() == 1
    assert [x["id"] for x in manager_api.get("/exports").json()["results"]] == [job["id"]]


def test_an_export_not_done_has_no_file_yet_and_bad_requests_are_400(credits3, manager_api):  # noqa: F811
    w = credits3
    queued = manager_api.post("/exports", {"report": "refunds", "format": "pdf",
                                           "params": {"date_from": "2026-03-01", "date_to": "2026-03-31"}})
    assert (queued.status_code, queued.json()["state"]) == (202, "queued")  # its task waits for the commit
    r = manager_api.get(f"/exports/{queued.json()['id']}/file")
    assert (r.status_code, error_of(r)["field"]) == (409, "job")  # its state forbids it, for now
    for body, field in (
            ({"report": "ledger", "format": "csv"}, "report"),
            ({"report": "aging", "format": "doc"}, "format"),
            ({"report": "aging", "format": "csv", "params": {"as_of": "04/15/2026"}}, "as_of"),
            ({"report": "aging", "format": "csv", "params": {"date_from": "2026-03-01"}}, "date_from"),
            ({"report": "refunds", "format": "csv", "params": {"date_from": "2026-03-01"}}, "date_to"),
            ({"report": "refunds", "format": "csv", "params": {"date_from": "2026-03-31", "date_to": "2026-03-01"}},
             "date_to"),
            ({"report": "aging", "format": "csv", "params": {"run": 1}}, "run"),
            ({"report": "aging", "format": "csv", "params": "as_of=2026-04-15"}, "params")):
        r = manager_api.post("/exports", body)
        assert (r.status_code, error_of(r)["field"]) == (400, field), (body, r.content)
    assert ExportJob.objects.filter(practice=w.practice).count() == 1


# --- the Medicare credit balance report -------------------------------------------------------------

def test_a_medicare_report_is_generated_once_read_and_downloaded(medicare, manager_api,  # noqa: F811
                                                                 django_capture_on_commit_callbacks):
    w = medicare
    for n, amount in enumerate(("10.00", "20.00", "30.00")):
        _, claim = w.visit(w.patient(last_name=f"Doe{n}", first_name="Jo"), date(2026, 2, 4), number=f"M-{n}")
        credit_services.payer_credit_open(payer_id=w.payer.pk, amount=amount, reason_code="duplicate_payment",
                                          actor=w.clerk, claim_id=claim.pk, payer_claim_number=f"ICN{n}",
                                          cash_received=True, reason="Paid twice")
    period = {"period_start": "2026-01-01", "period_end": "2026-12-31", "reason": "Quarter"}
    bad = manager_api.post("/cms838-reports", {"part": "A", **period})
    assert (bad.status_code, error_of(bad)["field"]) == (400, "medicare_ptan_part_a")  # no Part A number set
    bad = manager_api.post("/cms838-reports", {**period, "part": "B", "period_end": "2025-12-31"})
    assert (bad.status_code, error_of(bad)["field"]) == (400, "period_end")
    bad = manager_api.post("/cms838-reports", {**period, "part": "C"})
    assert (bad.status_code, error_of(bad)["field"]) == (400, "part")
    assert not Cms838Report.objects.exists()
    r = manager_api.post("/cms838-reports", {"part": "B", **period})
    assert r.status_code == 201, r.content
    rep = r.json()
    assert (rep["line_count"], rep["credit_total"], rep["repaid_total"], rep["outstanding_total"]) == (
        3, "60.00", "0.00", "60.00")
    assert (rep["provider_number"], rep["contact_name"], rep["generated_by"]) == ("PTAN-778", "Dana Ng", "boss")
    first = rep["lines"][0]
    assert (first["line_number"], first["beneficiary_last_name"], first["icn"], first["credit_balance"],
            first["amount_outstanding"], first["reason"], first["method"]) == (1, "Doe0", "ICN0", "10.00", "10.00",
                                                                                "1", "")
    again = manager_api.post("/cms838-reports", {"part": "B", **period})
    assert (again.status_code, error_of(again)["code"]) == (409, "nothing_to_report")  # reported once, ever
    assert [x["id"] for x in manager_api.get("/cms838-reports").json()["results"]] == [rep["id"]]
    assert manager_api.get(f"/cms838-reports/{rep['id']}").json() == rep
    with django_capture_on_commit_callbacks(execute=True):
        job = manager_api.post("/exports", {"report": "cms838", "format": "pdf", "params": {"report": rep["id"]}})
    assert job.status_code == 202, job.content
    f = manager_api.get(f"/exports/{job.json()['id']}/file")
    assert (f.status_code, f["Content-Type"]) == (200, "application/pdf")
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(b"".join(f.streaming_content))).pages)
    assert "PTAN-778" in text and "Doe2" in text and "CERTIFICATION" in text


# --- billing tokens -----------------------------------------------------------------------------------

def test_every_route_refuses_a_billing_token(work, api):
    w = work[0]
    run = AuditRun.objects.create(practice=w.practice, kind="books", as_of=START, reason="t")
    f = AuditFinding.objects.create(run=run, practice=w.practice, kind="totals_table", severity="error",
                                    object_type="patient", object_id=1, object_label="x", key="k")
    calls = [("get", "/audit-runs", None), ("get", f"/audit-runs/{run.pk}", None),
             ("post", "/audit-runs", {"kind": "books", "reason": "x"}), ("get", "/audit-findings", None),
             ("get", f"/audit-findings/{f.pk}", None), ("post", f"/audit-findings/{f.pk}/acknowledge", {"reason": "x"}),
             ("post", f"/audit-findings/{f.pk}/resolve", {"reason": "x"}), ("get", "/case-reviews", None),
             ("get", "/case-reviews/1", None), ("post", "/case-reviews/1/record", {"outcome": "passed", "note": "x"}),
             ("get", "/measures", {"date_from": "2026-03-01", "date_to": "2026-03-31"}),
             ("get", "/measures/trend", {"end": "2026-03-08"}), ("get", "/reconciliation", None),
             ("get", "/reports", None), ("get", "/exports", None), ("get", "/exports/1", None),
             ("get", "/exports/1/file", None), ("post", "/exports", {"report": "aging", "format": "csv"}),
             ("get", "/cms838-reports", None), ("get", "/cms838-reports/1", None),
             ("post", "/cms838-reports", {"part": "B", "period_start": "2026-01-01", "period_end": "2026-12-31",
                                          "reason": "x"})]
    for method, path, body in calls:
        r = getattr(api, method)(path, body)
        assert (r.status_code, error_of(r)["code"]) == (403, "permission_denied"), (method, path, r.content)
    f.refresh_from_db()
    assert f.state == "open" and AuditRun.objects.count() == 1
    assert not ExportJob.objects.exists() and not Cms838Report.objects.exists()
    # a manager's token whose person is billing staff now works as a billing token
    demoted = make_api(w.practice, role=Membership.Role.MANAGER, name="demoted")
    Membership.objects.filter(user=demoted.token.created_by, practice=w.practice).update(role="billing")
    r = demoted.get("/audit-runs")
    assert r.status_code == 403


# --- the schema, with a manager's token -------------------------------------------------------------
# tests/api/test_schemathesis.py fuzzes every route with a billing token: here every route of this module
# answers it 403. The same fuzz with a manager's token checks the answers of the managers' routes too.

fuzz_schema = fuzz.schema.include(path_regex=r"^/api/v1/(audit-|case-reviews|measures|reconciliation|reports|exports"
                                             r"|cms838)")


@pytest.fixture
def manager_fuzz_token(fuzz_token, world):  # noqa: F811
    run_audit(practice_id=world.practice.pk, kind="books")  # a run for generated ids to hit now and then
    return make_api(world.practice, role=Membership.Role.MANAGER, name="fuzzer-manager", person=world.manager).raw


@pytest.mark.django_db
@fuzz_schema.parametrize()
@settings(suppress_health_check=list(HealthCheck), deadline=None, max_examples=fuzz.EXAMPLES, derandomize=True)
def test_the_managers_routes_conform_to_the_schema(case, manager_fuzz_token):
    fuzz.prepare(case)
    case.call_and_validate(headers={"Authorization": f"Bearer {manager_fuzz_token}"},
                           excluded_checks=[positive_data_acceptance])
