"""The exports' back-office pages (issue 12 item 4) through the test client: the catalog lists every
report; an aging CSV started from the page, followed to its job page and downloaded, its numbers
those of the database; a bad date shown next to its field with nothing queued; billing staff
refused (403) on every page; another practice's job a 404 (page and download)."""

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal as D

import pytest
import time_machine
from django.urls import reverse

from adjudication.models import Case
from adjudication.scan import scan_practice
from reports.exports.base import REGISTRY
from reports.exports.jobs import export_start
from reports.models import ExportJob
from tests.factories import MembershipFactory, PracticeFactory, UserFactory

pytestmark = pytest.mark.django_db

CATALOG = reverse("admin:reports_exportjob_catalog")
JOBS = reverse("admin:reports_exportjob_changelist")


def job_url(job):
    return reverse("admin:reports_exportjob_change", args=[job.pk])


def download_url(job):
    return reverse("admin:reports_exportjob_download", args=[job.pk])


@pytest.fixture
def credits3(world):
    """Three portal payments with nothing to pay for on 03/02/2026: three open patient-credit cases."""
    w = world
    with time_machine.travel(datetime(2026, 3, 2, 18, tzinfo=UTC), tick=False):
        for amount in ("10.00", "20.00", "35.50"):
            w.pay(w.patient(), amount, channel="portal")
        scan_practice(practice_id=w.practice.pk)
    return w


def test_the_catalog_lists_every_report_with_its_parameters(client, world):
    client.force_login(world.manager)
    page = client.get(CATALOG)
    assert page.status_code == 200
    html = page.content.decode()
    assert len(REGISTRY) >= 8
    for defn in REGISTRY.values():
        assert f'id="report-{defn.name}"' in html and defn.title in html
    assert 'name="refunds-date_from"' in html and 'name="refunds-date_to"' in html
    assert 'name="aging-as_of"' in html and 'name="audit_report-run"' in html
    assert 'name="cms838-report"' in html and 'name="holder_report-year"' in html
    assert html.count('name="format" value="xlsx"') == len(REGISTRY)
    assert 'name="aging-practice"' in html and 'type="hidden" name="aging-practice"' in html  # one practice


def test_an_aging_csv_from_the_page_to_its_file(client, credits3, django_capture_on_commit_callbacks):
    w = credits3
    client.force_login(w.manager)
    with django_capture_on_commit_callbacks(execute=True):
        answer = client.post(CATALOG, {"export": "aging", "aging-practice": w.practice.pk,
                                       "aging-as_of": "2026-04-15", "format": "csv"})
    job = ExportJob.objects.get()
    assert answer.status_code == 302 and answer.url == job_url(job)
    assert (job.report, job.format, job.state, job.created_by) == ("aging", "csv", "done", w.manager)

    page = client.get(answer.url)
    html = page.content.decode()
    assert page.status_code == 200 and 'http-equiv="refresh"' not in html
    assert "Credit-balance aging" in html and "04/15/2026" in html and "Ready to download" in html
    assert download_url(job) in html and "3 rows of 3" in html

    got = client.get(download_url(job))
    assert got.status_code == 200 and got["Content-Type"] == "text/csv; charset=utf-8"
    assert 'filename="aging-20260415.csv"' in got["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(b"".join(got.streaming_content).decode())))
    cases = list(Case.objects.filter(practice=w.practice).order_by("pk"))
    assert [int(r[0]) for r in rows[1:]] == [c.pk for c in cases]
    # 03/02 to 04/15 is 44 days: each in 31-60, the money left on each credit
    assert [(r[7], r[8], D(r[9])) for r in rows[1:]] == [("44", "31-60", c.credit.on_hand) for c in cases]
    assert sum(D(r[9]) for r in rows[1:]) == D("65.50")

    listing = client.get(JOBS).content.decode()
    assert "Credit-balance aging" in listing and download_url(job) in listing and "boss" in listing


def test_a_running_job_refreshes_itself(client, world):
    job = export_start(practice_id=world.practice.pk, report="aging", format="pdf", params={}, actor=world.manager)
    client.force_login(world.manager)
    html = client.get(job_url(job)).content.decode()  # the task waits for the commit: still queued
    assert '<meta http-equiv="refresh" content="2">' in html and "Queued" in html
    assert download_url(job) not in html
    got = client.get(download_url(job))
    assert got.status_code == 302 and got.url == job_url(job)


def test_a_bad_date_is_shown_next_to_its_field_and_nothing_is_queued(client, world):
    client.force_login(world.manager)
    page = client.post(CATALOG, {"export": "refunds", "refunds-practice": world.practice.pk,
                                 "refunds-date_from": "2026-03-31", "refunds-date_to": "2026-03-01",
                                 "format": "xlsx"})
    assert page.status_code == 200
    form = next(x for x in page.context["forms"] if x.defn.name == "refunds")
    assert form.errors["date_to"] == ["date_to: 03/01/2026 is before date_from 03/31/2026"]
    page = client.post(CATALOG, {"export": "writeoffs", "writeoffs-practice": world.practice.pk,
                                 "writeoffs-date_from": "2026-02-30", "writeoffs-date_to": "2026-03-01",
                                 "format": "csv"})
    form = next(x for x in page.context["forms"] if x.defn.name == "writeoffs")
    assert "date_from" in form.errors and "field-date_from errors" in page.content.decode()
    assert not ExportJob.objects.exists()


def test_billing_staff_are_refused_every_page(client, world):
    job = export_start(practice_id=world.practice.pk, report="aging", format="csv", params={}, actor=world.manager)
    client.force_login(world.clerk)
    for url in (CATALOG, JOBS, job_url(job), download_url(job)):
        assert client.get(url).status_code == 403, url
    answer = client.post(CATALOG, {"export": "aging", "aging-practice": world.practice.pk, "format": "csv"})
    assert answer.status_code == 403 and ExportJob.objects.count() == 1


def test_another_practices_job_is_not_found(client, world, django_capture_on_commit_callbacks):
    other = PracticeFactory(name="Bayside Orthopedics")
    stranger = MembershipFactory(practice=other, user=UserFactory(username="bayside"), role="manager").user
    with django_capture_on_commit_callbacks(execute=True):
        theirs = export_start(practice_id=other.pk, report="aging", format="csv", params={}, actor=stranger)
    client.force_login(world.manager)
    assert client.get(job_url(theirs)).status_code == 404
    assert client.get(download_url(theirs)).status_code == 404
    assert list(client.get(JOBS).context["cl"].result_list) == []
    # nor can a manager start an export of a practice they do not manage
    page = client.post(CATALOG, {"export": "aging", "aging-practice": other.pk, "format": "csv"})
    assert page.status_code == 200 and ExportJob.objects.count() == 1
    client.force_login(stranger)
    assert client.get(download_url(theirs)).status_code == 200
