"""The Medicare credit balance report's back-office pages (issue 12 item 4, DOMAIN rule 22) and the
report settings through the test client, and the settings service itself: a Medicare payer given
its part through the payer admin (the payer service); the settings filled on their page (history
with the manager's name and reason); a report generated from the page, its lines and header shown,
downloaded through an export; a missing PTAN refused with the service's message and a link to the
settings; billing staff 403 on every page; another practice's report 404."""

import csv
import io
from datetime import date
from decimal import Decimal as D

import pytest
import time_machine
from django.urls import reverse

from credits import services as credit_services
from ledger.errors import InvalidInput, PermissionDenied
from ledger.models import Payer
from reports.cms838 import cms838_generate
from reports.models import Cms838Report, ExportJob, ReportSettings
from reports.services.settings import report_settings_update
from tests.factories import MembershipFactory, PayerFactory, PracticeFactory, UserFactory

pytestmark = pytest.mark.django_db

REPORTS = reverse("admin:reports_cms838report_changelist")
GENERATE = reverse("admin:reports_cms838report_generate")
SETTINGS = reverse("admin:reports_reportsettings_changelist")


def settings_url(practice):
    return reverse("admin:reports_reportsettings_edit", args=[practice.pk])


def report_url(report):
    return reverse("admin:reports_cms838report_change", args=[report.pk])


def make_medicare_part_b(client, world):
    """The world's payer becomes Medicare Part B through the payer admin's change form (payer_update)."""
    p = world.payer
    answer = client.post(reverse("admin:ledger_payer_change", args=[p.pk]), {
        "name": p.name, "payer_type": Payer.Type.MEDICARE, "payer_identifier": p.payer_identifier,
        "medicare_part": "B", "reason": "It is the Part B contractor"})
    assert answer.status_code == 302, answer.content.decode()[:2000]
    p.refresh_from_db()
    assert (p.payer_type, p.medicare_part) == (Payer.Type.MEDICARE, "B")
    last = p.history.latest()
    assert (last.history_user, last.history_change_reason) == (world.manager, "It is the Part B contractor")


def duplicate_payment(world, amount="180.00"):
    """Example I's Medicare duplicate: a payer credit due to Medicare on a paid claim."""
    patient = world.patient(last_name="Rivera", first_name="Luis", member_id="1EG4TE5MK73")
    _, claim = world.visit(patient, date(2026, 2, 4), number="M-1")
    return credit_services.payer_credit_open(payer_id=world.payer.pk, amount=amount, reason_code="duplicate_payment",
                                             actor=world.clerk, claim_id=claim.pk, payer_claim_number="ICN-77",
                                             cash_received=True, reason="Paid twice")


# --- the settings service ----------------------------------------------------------------------------------

def test_the_settings_service_checks_who_and_what_and_writes_history(world):
    with time_machine.travel("2026-05-01 15:00 +0000", tick=False):
        row = report_settings_update(practice_id=world.practice.pk, actor=world.manager, reason="First setup",
                                     medicare_ptan_part_b="ab1234", report_contact_name=" Dana Ng ",
                                     report_contact_phone="(512) 555-0100 x12",
                                     cost_report_closed_through="2025-12-31", review_sample_size="7")
        assert (row.medicare_ptan_part_b, row.report_contact_name, row.review_sample_size) == ("AB1234", "Dana Ng", 7)
        assert row.cost_report_closed_through == date(2025, 12, 31)
        first = row.history.get()
        assert (first.history_type, first.history_user, first.history_change_reason) == ("+", world.manager,
                                                                                          "First setup")
        report_settings_update(practice_id=world.practice.pk, actor=world.manager, reason="Same again",
                               medicare_ptan_part_b="AB1234")
        assert row.history.count() == 1  # nothing differed: no history row
        for field, value, words in (("medicare_ptan_part_a", "PT-77", "not a provider number"),
                                    ("medicare_ptan_part_a", "A" * 11, "not a provider number"),
                                    ("report_contact_phone", "555-0100", "not a phone number"),
                                    ("report_contact_phone", "call Dana", "not a phone number"),
                                    ("review_sample_size", 101, "from 0 to 100"),
                                    ("review_sample_size", "-1", "from 0 to 100"),
                                    ("cost_report_closed_through", "2026-02-30", "not a date"),
                                    ("cost_report_closed_through", "2026-05-02", "after today"),
                                    ("report_contact_email", "x@y.z", "not a report setting")):
            with pytest.raises(InvalidInput, match=words) as err:
                report_settings_update(practice_id=world.practice.pk, actor=world.manager, reason="Bad",
                                       **{field: value})
            assert err.value.field == field
    stranger = MembershipFactory(practice=PracticeFactory(), user=UserFactory(), role="manager").user
    for actor in (world.clerk, stranger):
        with pytest.raises(PermissionDenied):
            report_settings_update(practice_id=world.practice.pk, actor=actor, reason="x", review_sample_size=3)
    row.refresh_from_db()
    assert (row.review_sample_size, row.medicare_ptan_part_a, row.history.count()) == (7, "", 1)


# --- the settings pages -------------------------------------------------------------------------------------

def test_the_settings_page_saves_through_the_service_with_history(client, world):
    client.force_login(world.manager)
    listing = client.get(SETTINGS)
    assert listing.status_code == 200 and "Fill in" in listing.content.decode()
    page = client.post(settings_url(world.practice), {
        "medicare_ptan_part_a": "", "medicare_ptan_part_b": "PT-778", "report_contact_name": "Dana Ng",
        "report_contact_phone": "512-555-0100", "cost_report_closed_through": "", "review_sample_size": "5",
        "reason": "Setup"})
    assert page.status_code == 200 and not ReportSettings.objects.exists()
    assert "not a provider number" in str(page.context["form"].errors["medicare_ptan_part_b"])
    answer = client.post(settings_url(world.practice), {
        "medicare_ptan_part_a": "", "medicare_ptan_part_b": "PT778", "report_contact_name": "Dana Ng",
        "report_contact_phone": "512-555-0100", "cost_report_closed_through": "2025-12-31",
        "review_sample_size": "5", "reason": "Setup for the CMS-838"})
    assert answer.status_code == 302
    row = ReportSettings.objects.get(practice=world.practice)
    assert (row.medicare_ptan_part_b, row.report_contact_phone, row.cost_report_closed_through) == (
        "PT778", "512-555-0100", date(2025, 12, 31))
    client.post(settings_url(world.practice), {
        "medicare_ptan_part_a": "", "medicare_ptan_part_b": "PT778", "report_contact_name": "Dana Ng",
        "report_contact_phone": "512-555-0199", "cost_report_closed_through": "2025-12-31",
        "review_sample_size": "5", "reason": "New phone line"})
    row.refresh_from_db()
    assert row.report_contact_phone == "512-555-0199"
    newest = row.history.order_by("-history_id").first()
    assert (newest.history_user, newest.history_change_reason) == (world.manager, "New phone line")
    html = client.get(settings_url(world.practice)).content.decode()
    assert "New phone line" in html and "512-555-0100 → 512-555-0199" in html and "12/31/2025" in html
    # the admin's change and history pages of the row lead to the same page
    assert client.get(reverse("admin:reports_reportsettings_change", args=[row.pk])).url == settings_url(
        world.practice)


# --- generating, showing and downloading a report -----------------------------------------------------------

def test_generate_from_the_page_show_and_download(client, world, django_capture_on_commit_callbacks):
    client.force_login(world.manager)
    make_medicare_part_b(client, world)
    report_settings_update(practice_id=world.practice.pk, actor=world.manager, reason="Setup",
                           medicare_ptan_part_b="PT778", report_contact_name="Dana Ng",
                           report_contact_phone="512-555-0100")
    duplicate_payment(world)
    page = client.get(GENERATE).content.decode()
    pid = world.practice.pk
    assert f'id="candidates-{pid}-1">0 balances' in page  # Part A
    assert f'id="candidates-{pid}-2">1 balance<div class="settle-muted">180.00' in page  # Part B
    assert "Missing: the Part A provider number (PTAN)." in page
    assert 'value="Generate the report"' in page

    answer = client.post(GENERATE, {"practice": pid, "part": "B", "period_start": "2026-01-01",
                                    "period_end": "2026-12-31", "reason": "Quarterly report"})
    report = Cms838Report.objects.get()
    assert answer.status_code == 302 and answer.url == report_url(report)
    assert (report.part, report.provider_number, report.line_count, report.credit_total) == ("B", "PT778", 1,
                                                                                              D("180.00"))
    html = client.get(answer.url).content.decode()
    for text in ("PT778", "01/01/2026 – 12/31/2026", "Part B", "Dana Ng", "512-555-0100", "Quarterly report",
                 "Rivera", "1EG4TE5MK73", "ICN-77", "02/04/2026", "180.00"):
        assert text in html, text
    assert html.index("Rivera") < html.index("1EG4TE5MK73") < html.index("ICN-77")  # the form's column order

    with django_capture_on_commit_callbacks(execute=True):
        answer = client.post(report_url(report), {"format": "csv"})
    job = ExportJob.objects.get()
    assert answer.url == reverse("admin:reports_exportjob_change", args=[job.pk])
    assert (job.report, job.params["report"], job.state) == ("cms838", report.pk, "done")
    got = client.get(reverse("admin:reports_exportjob_download", args=[job.pk]))
    rows = list(csv.reader(io.StringIO(b"".join(got.streaming_content).decode())))
    line = rows[-1]
    assert (line[1], line[2], line[3], line[4], D(line[10]), D(line[13]), line[14]) == (
        "Rivera", "L", "1EG4TE5MK73", "ICN-77", D("180.00"), D("180.00"), "1")

    listing = client.get(REPORTS).content.decode()
    assert report_url(report) in listing and "01/01/2026 – 12/31/2026" in listing and "180.00" in listing
    # reported once: nothing is left for Part B
    again = client.post(GENERATE, {"practice": pid, "part": "B", "period_start": "2026-01-01",
                                   "period_end": "2026-12-31", "reason": "Again"})
    assert again.status_code == 200 and "every one is on an earlier report" in again.content.decode()
    assert Cms838Report.objects.count() == 1


def test_a_missing_ptan_is_refused_with_the_services_message_and_a_link(client, world):
    client.force_login(world.manager)
    make_medicare_part_b(client, world)
    report_settings_update(practice_id=world.practice.pk, actor=world.manager, reason="Setup",
                           report_contact_name="Dana Ng", report_contact_phone="512-555-0100")
    duplicate_payment(world)
    page = client.post(GENERATE, {"practice": world.practice.pk, "part": "B", "period_start": "2026-01-01",
                                  "period_end": "2026-12-31", "reason": "Quarterly report"})
    html = page.content.decode()
    assert page.status_code == 200 and not Cms838Report.objects.exists()
    assert "medicare_ptan_part_b: the Part B provider number is not set in the practice&#x27;s report settings" in html
    assert f'href="{settings_url(world.practice)}" id="settings-link"' in html


# --- who may -------------------------------------------------------------------------------------------------

@pytest.fixture
def a_report(world):
    world.payer.payer_type, world.payer.medicare_part = Payer.Type.MEDICARE, "B"
    world.payer.save()
    report_settings_update(practice_id=world.practice.pk, actor=world.manager, reason="Setup",
                           medicare_ptan_part_b="PT778", report_contact_name="Dana Ng",
                           report_contact_phone="512-555-0100")
    duplicate_payment(world)
    return cms838_generate(practice_id=world.practice.pk, part="B", period_start=date(2026, 1, 1),
                           period_end=date(2026, 12, 31), actor=world.manager)


def test_billing_staff_are_refused_every_page(client, world, a_report):
    client.force_login(world.clerk)
    for url in (REPORTS, GENERATE, report_url(a_report), SETTINGS, settings_url(world.practice),
                reverse("admin:reports_reportsettings_change", args=[ReportSettings.objects.get().pk])):
        assert client.get(url).status_code == 403, url
    assert client.post(report_url(a_report), {"format": "pdf"}).status_code == 403
    assert client.post(settings_url(world.practice), {"review_sample_size": "9", "reason": "x"}).status_code == 403
    assert ReportSettings.objects.get().review_sample_size == 5 and not ExportJob.objects.exists()


def test_another_practices_report_and_settings_are_not_found(client, world, a_report):
    other = PracticeFactory(name="Bayside Orthopedics")
    stranger = MembershipFactory(practice=other, user=UserFactory(username="bayside"), role="manager").user
    PayerFactory(practice=other)
    client.force_login(stranger)
    assert client.get(report_url(a_report)).status_code == 404
    assert client.post(report_url(a_report), {"format": "csv"}).status_code == 404
    assert client.get(settings_url(world.practice)).status_code == 404
    assert list(client.get(REPORTS).context["cl"].result_list) == []
    page = client.post(GENERATE, {"practice": world.practice.pk, "part": "B", "period_start": "2026-01-01",
                                  "period_end": "2026-12-31", "reason": "Not mine"})
    assert page.status_code == 200 and "practice" in page.context["form"].errors
    assert Cms838Report.objects.count() == 1 and not ExportJob.objects.exists()
