"""Exports (issue 12 item 4): each report written as CSV, XLSX and PDF through the export job, read
back (csv, openpyxl, pypdf) and its numbers checked against the database; the CMS-838 form's paging
and "a balance once reported is not reported again"."""

import csv
import io
from datetime import UTC, date, datetime
from decimal import Decimal as D

import openpyxl
import pytest
import time_machine
from django.db import IntegrityError, transaction
from pypdf import PdfReader

from adjudication.models import Case
from adjudication.scan import scan_practice
from credits import services as credit_services
from ledger.errors import InvalidInput, NotFound, PermissionDenied, RuleViolation
from ledger.models import Payer
from reports.audits import run_audit
from reports.cms838 import cms838_generate
from reports.exports import jobs
from reports.exports.base import REGISTRY
from reports.exports.jobs import export_open, export_start
from reports.models import Cms838Line, ExportJob, ReportSettings
from tests.factories import MembershipFactory, PracticeFactory, UserFactory

pytestmark = pytest.mark.django_db


def export(w, report, fmt, params, capture):
    with capture(execute=True):
        job = export_start(practice_id=w.practice.pk, report=report, format=fmt, params=params, actor=w.manager)
    job.refresh_from_db()
    assert job.state == ExportJob.State.DONE, job.error
    fh, name, ctype = export_open(job=job.pk, actor=w.manager)
    return job, fh.read(), name


@pytest.fixture
def credits3(world):
    w = world
    with time_machine.travel(datetime(2026, 3, 2, 18, tzinfo=UTC), tick=False):
        for amount in ("10.00", "20.00", "35.50"):
            w.pay(w.patient(), amount, channel="portal")
        scan_practice(practice_id=w.practice.pk)
    return w


def test_the_aging_export_in_three_formats_matches_the_open_cases(credits3, django_capture_on_commit_callbacks):
    w = credits3
    cases = list(Case.objects.filter(practice=w.practice).order_by("pk"))
    assert len(cases) == 3
    params = {"as_of": "2026-04-15"}  # 44 days after 03/02: all three in 31-60
    job, data, name = export(w, "aging", "csv", params, django_capture_on_commit_callbacks)
    rows = list(csv.reader(io.StringIO(data.decode())))
    assert rows[0][:3] == ["Case", "Kind", "Cause"] and name == "aging-20260415.csv"
    body = rows[1:]
    assert [int(r[0]) for r in body] == [c.pk for c in cases]
    assert [D(r[9]) for r in body] == [D("10.00"), D("20.00"), D("35.50")]
    assert {r[7] for r in body} == {"44"} and {r[8] for r in body} == {"31-60"}
    assert job.rows_total == 3 and job.size == len(data)

    _, xdata, _ = export(w, "aging", "xlsx", params, django_capture_on_commit_callbacks)
    ws = openpyxl.load_workbook(io.BytesIO(xdata)).active
    values = [r for r in ws.iter_rows(values_only=True)]
    header = values.index(tuple(c.label for c in REGISTRY["aging"].columns))
    amounts = [D(str(r[9])) for r in values[header + 1:]]
    assert sum(amounts) == D("65.50")
    assert ("Total", "3 cases, 65.50") in [(r[0], r[1]) for r in values[:header]]

    _, pdata, _ = export(w, "aging", "pdf", params, django_capture_on_commit_callbacks)
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdata)).pages)
    assert "Credit-balance aging" in text and "35.50" in text and "3 cases, 65.50" in text


def test_refunds_writeoffs_case_log_and_audit_report(credits3, django_capture_on_commit_callbacks):
    w = credits3
    credit = Case.objects.filter(practice=w.practice).order_by("pk").first().credit
    with time_machine.travel(datetime(2026, 3, 5, 18, tzinfo=UTC), tick=False):
        credit_services.refund_request(credit_id=credit.pk, amount="4.00", actor=w.clerk, reason="Asked")
    _, data, _ = export(w, "refunds", "csv", {"date_from": "2026-03-01", "date_to": "2026-03-31"},
                        django_capture_on_commit_callbacks)
    rows = list(csv.reader(io.StringIO(data.decode())))[1:]
    assert len(rows) == 1 and D(rows[0][6]) == D("4.00")
    _, data, _ = export(w, "case_log", "csv", {"date_from": "2026-03-01", "date_to": "2026-03-31"},
                        django_capture_on_commit_callbacks)
    log = list(csv.reader(io.StringIO(data.decode())))[1:]
    assert {int(r[0]) for r in log} == set(Case.objects.filter(practice=w.practice).values_list("pk", flat=True))
    assert all(r[5] for r in log)
    run = run_audit(practice_id=w.practice.pk, kind="books")
    _, pdata, _ = export(w, "audit_report", "pdf", {"run": str(run.pk)}, django_capture_on_commit_callbacks)
    text = PdfReader(io.BytesIO(pdata)).pages[0].extract_text()
    assert "Audit report" in text and "No findings" in text


def test_exports_are_for_the_practices_managers_and_check_their_parameters(credits3, monkeypatch):
    w = credits3
    with pytest.raises(PermissionDenied):
        export_start(practice_id=w.practice.pk, report="aging", format="csv", params={}, actor=w.clerk)
    with pytest.raises(InvalidInput) as err:
        export_start(practice_id=w.practice.pk, report="refunds", format="csv", params={"date_from": "2026-03-01"},
                     actor=w.manager)
    assert err.value.field == "date_to"
    with pytest.raises(InvalidInput, match="format"):
        export_start(practice_id=w.practice.pk, report="aging", format="docx", params={}, actor=w.manager)
    with pytest.raises(NotFound):
        export_start(practice_id=w.practice.pk, report="nope", format="csv", params={}, actor=w.manager)
    job = export_start(practice_id=w.practice.pk, report="aging", format="csv", params={}, actor=w.manager)
    stranger = MembershipFactory(practice=PracticeFactory(), user=UserFactory(), role="manager").user
    with pytest.raises(NotFound):
        export_open(job=job.pk, actor=stranger)
    other_run = run_audit(practice_id=PracticeFactory().pk, kind="books")
    with pytest.raises(NotFound):  # another practice's audit run
        export_start(practice_id=w.practice.pk, report="audit_report", format="csv", params={"run": other_run.pk},
                     actor=w.manager)
    monkeypatch.setattr(jobs, "PDF_MAX_ROWS", 2)  # the aging report has 3 rows: too many for a PDF, fine in Excel
    with pytest.raises(InvalidInput, match="3 rows are too many for a PDF") as err:
        export_start(practice_id=w.practice.pk, report="aging", format="pdf", params={}, actor=w.manager)
    assert err.value.field == "format"
    assert export_start(practice_id=w.practice.pk, report="aging", format="xlsx", params={}, actor=w.manager).pk


@pytest.fixture
def medicare(world):
    w = world
    w.payer.payer_type, w.payer.medicare_part = Payer.Type.MEDICARE, "B"
    w.payer.save()
    ReportSettings.objects.create(practice=w.practice, medicare_ptan_part_b="PTAN-778", report_contact_name="Dana Ng",
                                  report_contact_phone="512-555-0100")
    return w


def test_the_cms838_form_has_17_lines_a_page_a_certification_and_reports_a_balance_once(
        medicare, django_capture_on_commit_callbacks):
    w = medicare
    for n in range(40):
        _, claim = w.visit(w.patient(last_name=f"Doe{n:02d}", first_name="Jo"), date(2026, 2, 4), number=f"M-{n}")
        credit_services.payer_credit_open(payer_id=w.payer.pk, amount=f"{n + 1}.00", reason_code="duplicate_payment",
                                          actor=w.clerk, claim_id=claim.pk, payer_claim_number=f"ICN{n}",
                                          cash_received=True, reason="Paid twice")
    with pytest.raises(InvalidInput, match="Part A provider number"):
        cms838_generate(practice_id=w.practice.pk, part="A", period_start=date(2026, 1, 1),
                        period_end=date(2026, 12, 31), actor=w.manager)
    with pytest.raises(PermissionDenied):
        cms838_generate(practice_id=w.practice.pk, part="B", period_start=date(2026, 1, 1),
                        period_end=date(2026, 12, 31), actor=w.clerk)
    report = cms838_generate(practice_id=w.practice.pk, part="B", period_start=date(2026, 1, 1),
                             period_end=date(2026, 12, 31), actor=w.manager)
    assert (report.line_count, report.credit_total) == (40, D(sum(range(1, 41))))
    first = report.lines.get(line_number=1)
    assert (first.reason, first.method, first.amount_outstanding, first.icn) == ("1", "", D("1.00"), "ICN0")
    _, pdata, _ = export(w, "cms838", "pdf", {"report": report.pk}, django_capture_on_commit_callbacks)
    pages = PdfReader(io.BytesIO(pdata)).pages
    assert len(pages) == 4  # 17 + 17 + 6 lines, then the certification
    texts = [p.extract_text() for p in pages]
    assert all("PTAN-778" in t and "Medicare Part B" in t for t in texts[:3])
    assert [sum(f"Doe{n:02d}" in t for n in range(40)) for t in texts[:3]] == [17, 17, 6]
    assert "CERTIFICATION" in texts[3] and "Signature" in texts[3]
    with pytest.raises(RuleViolation, match="every one is on an earlier report"):
        cms838_generate(practice_id=w.practice.pk, part="B", period_start=date(2026, 1, 1),
                        period_end=date(2026, 12, 31), actor=w.manager)
    with pytest.raises(IntegrityError), transaction.atomic():
        Cms838Line.objects.create(report=report, practice=w.practice, line_number=41, payer_credit=first.payer_credit,
                                  beneficiary_last_name="x", cost_report_period="O", credit_balance=D("1.00"),
                                  amount_outstanding=D("1.00"), reason="1")
