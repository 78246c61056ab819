"""The back-office pages of the audits and the case reviews (issue 12 item 1, DOMAIN rule 20) through
the test client: a manager sees the runs and findings of their practice only (a fault planted past
the services, as tests/reports/test_audits.py does), runs an audit from the page, acknowledges and
resolves a finding with a reason (the history rows name the manager), records a second review
(the case's resolver refused with the service's message); billing staff 403 on every page; another
practice's run, finding and review 404; an empty reason or note is an error and changes nothing."""

import threading
from datetime import UTC, datetime

import pytest
import time_machine
from django.db import connection, connections
from django.urls import reverse

from adjudication.models import Case
from reports.audits import runner
from reports.audits.runner import run_audit
from reports.models import AuditFinding, AuditRun, CaseReview
from tests.factories import MembershipFactory, PracticeFactory, UserFactory

pytestmark = pytest.mark.django_db

RUNS = reverse("admin:reports_auditrun_changelist")
RUN_NOW = reverse("admin:reports_auditrun_run")
FINDINGS = reverse("admin:reports_auditfinding_changelist")
REVIEWS = reverse("admin:reports_casereview_changelist")


def url(name, obj):
    return reverse(f"admin:reports_{name}_change", args=[obj.pk])


def plant_totals_fault(patient, amount="5"):
    """The patient's totals table off by `amount` (raw SQL past the services)."""
    with connection.cursor() as cur:
        cur.execute("UPDATE credits_patientresponsibility SET due_now = due_now + %s WHERE patient_id = %s",
                    [amount, patient.pk])


@pytest.fixture
def other(db):
    """Practice B with its own manager, a run with a planted finding and a review of its own."""
    b = PracticeFactory(name="Bayside Orthopedics")
    boss = MembershipFactory(practice=b, user=UserFactory(username="bayside"), role="manager").user
    return {"practice": b, "manager": boss}


def login(client, user):
    client.force_login(user)
    return client


@pytest.mark.planted_fault
def test_a_manager_sees_runs_and_findings_of_their_practice_only(client, world, other):
    ana = world.patient(first_name="Ana", last_name="Avila", account_number="A-100")
    world.pay(ana, "1234.56", channel="portal")
    plant_totals_fault(ana)
    mine = run_audit(practice_id=world.practice.pk, kind="books")
    theirs_patient = other["practice"]
    b_run = run_audit(practice_id=theirs_patient.pk, kind="books", actor=other["manager"], reason="Bayside check")
    login(client, world.manager)
    page = client.get(RUNS)
    assert page.status_code == 200
    body = page.content.decode()
    assert url("auditrun", mine) in body and url("auditrun", b_run) not in body
    assert "the schedule" in body and "Findings recorded" in body
    finding = mine.findings.get()
    listing = client.get(FINDINGS).content.decode()
    assert url("auditfinding", finding) in listing
    assert "A patient&#x27;s totals differ from a recount" in listing and "Avila" in listing
    run_page = client.get(url("auditrun", mine)).content.decode()
    assert "Journal entry out of balance" in run_page and 'id="run-checks"' in run_page
    assert url("auditfinding", finding) in run_page
    detail = client.get(url("auditfinding", finding)).content.decode()
    assert finding.object_label in detail and "None: first found by this run." in detail
    # the run filter keeps the run's findings only
    assert url("auditfinding", finding) not in client.get(f"{FINDINGS}?run={b_run.pk}").content.decode()


def test_running_an_audit_from_the_page(client, world):
    login(client, world.manager)
    form = client.get(f"{RUN_NOW}?kind=work")
    assert form.status_code == 200 and "Run the work audit now" in form.content.decode()
    answer = client.post(f"{RUN_NOW}?kind=work", {"practice": world.practice.pk, "kind": "work",
                                                   "reason": "Before the board meeting"})
    run = AuditRun.objects.get()
    assert answer.status_code == 302 and answer.url == url("auditrun", run)
    assert (run.kind, run.status, run.triggered_by, run.reason) == ("work", "clean", world.manager,
                                                                     "Before the board meeting")
    shown = client.get(answer.url)
    assert any("no findings, 0 findings" in str(m) for m in shown.context["messages"])
    # an empty reason: an error, no run
    empty = client.post(RUN_NOW, {"practice": world.practice.pk, "kind": "books", "reason": "  "})
    assert empty.status_code == 200 and empty.context["form"].errors["reason"]
    assert AuditRun.objects.count() == 1


def test_a_second_run_while_one_runs_is_shown_as_a_message(client, world):
    key = runner._advisory_key(world.practice.pk, "books")
    held, release = threading.Event(), threading.Event()

    def other_session():  # another connection (a run in progress elsewhere) holds the run's lock
        with connections["default"].cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s, %s)", [runner.ADVISORY_NAMESPACE, key])
            held.set()
            release.wait(10)
            cur.execute("SELECT pg_advisory_unlock(%s, %s)", [runner.ADVISORY_NAMESPACE, key])
        connections.close_all()

    login(client, world.manager)
    t = threading.Thread(target=other_session)
    t.start()
    try:
        assert held.wait(10)
        answer = client.post(RUN_NOW, {"practice": world.practice.pk, "kind": "books", "reason": "Again"})
    finally:
        release.set()
        t.join()
    assert answer.status_code == 302 and answer.url == RUN_NOW
    shown = [str(m) for m in client.get(answer.url).context["messages"]]
    assert shown == ["Not started: an audit of the books (daily) is already running for Main Street Clinic."]
    assert AuditRun.objects.count() == 0


@pytest.mark.planted_fault
def test_acknowledging_then_resolving_a_finding_with_a_reason(client, world):
    pat = world.patient()
    world.pay(pat, "20.00", channel="portal")
    plant_totals_fault(pat)
    finding = run_audit(practice_id=world.practice.pk, kind="books").findings.get()
    login(client, world.manager)
    page = url("auditfinding", finding)
    # no reason: a form error and nothing changes
    empty = client.post(page, {"decision": "acknowledge", "reason": ""})
    assert empty.status_code == 200 and empty.context["form"].errors["reason"]
    finding.refresh_from_db()
    assert finding.state == "open" and finding.history.count() == 1
    done = client.post(page, {"decision": "acknowledge", "reason": "Totals trigger being fixed"})
    assert done.status_code == 302
    finding.refresh_from_db()
    assert (finding.state, finding.decided_by, finding.decision_reason) == ("acknowledged", world.manager,
                                                                             "Totals trigger being fixed")
    last = finding.history.latest()
    assert (last.history_user, last.history_change_reason) == (world.manager, "Totals trigger being fixed")
    # acknowledged: only resolving is offered; acknowledging again is refused by the form
    again = client.post(page, {"decision": "acknowledge", "reason": "again"})
    assert again.status_code == 200 and again.context["form"].errors["decision"]
    client.post(page, {"decision": "resolve", "reason": "Recounted after the fix"})
    finding.refresh_from_db()
    assert finding.state == "resolved" and finding.history.latest().history_user == world.manager
    body = client.get(page).content.decode()
    assert "Resolved: nothing more to decide." in body and "Recounted after the fix" in body


def resolved_case(world, resolver):
    pat = world.patient(first_name="Rita", last_name="Reyes", account_number="R-7")
    credit = world.pay(pat, "45.00", channel="portal").credits[0]
    when = datetime(2026, 3, 2, 17, tzinfo=UTC)
    return Case.objects.create(practice=world.practice, kind=Case.Kind.PATIENT_CREDIT, cause="patient_overpayment",
                               credit=credit, patient=pat, amount=credit.amount, determined_on=when.date(),
                               state="resolved", outcome="applied", outcome_note="applied", resolved_at=when,
                               resolved_by=resolver)


def test_recording_a_second_review(client, world):
    resolver = MembershipFactory(practice=world.practice, user=UserFactory(username="resolver"), role="manager").user
    with time_machine.travel(datetime(2026, 3, 2, 18, tzinfo=UTC), tick=False):
        case = resolved_case(world, resolver)
        run_audit(practice_id=world.practice.pk, kind="work")
    review = CaseReview.objects.get(case=case)
    page = url("casereview", review)
    login(client, resolver)  # the case's resolver: the service refuses, its message shown
    refused = client.post(page, {"outcome": "passed", "note": "Looks right"})
    assert refused.status_code == 200 and "someone else" in str(refused.context["form"].non_field_errors())
    client.logout()
    login(client, world.manager)
    listing = client.get(REVIEWS).content.decode()
    assert page in listing and reverse("admin:adjudication_case_change", args=[case.pk]) in listing
    assert "Reyes, Rita (R-7)" in listing and "Waiting for review" in listing
    empty = client.post(page, {"outcome": "failed", "note": "", "reopen": "on"})
    assert empty.status_code == 200 and empty.context["form"].errors["note"]
    review.refresh_from_db()
    assert review.state == "pending"
    done = client.post(page, {"outcome": "failed", "note": "Applied to the wrong visit", "reopen": "on"})
    assert done.status_code == 302
    review.refresh_from_db()
    case.refresh_from_db()
    assert (review.state, review.reviewer, review.note) == ("failed", world.manager, "Applied to the wrong visit")
    assert (case.state, case.reopened_count) == ("investigating", 1)
    assert review.history.latest().history_user == world.manager
    assert "The review is recorded" in client.get(page).content.decode()


@pytest.mark.planted_fault
def test_billing_staff_get_403_and_another_practices_rows_404(client, world, other):
    pat = world.patient()
    world.pay(pat, "20.00", channel="portal")
    plant_totals_fault(pat)
    run = run_audit(practice_id=world.practice.pk, kind="books")
    finding = run.findings.get()
    with time_machine.travel(datetime(2026, 3, 2, 18, tzinfo=UTC), tick=False):
        case = resolved_case(world, world.clerk)
        work = run_audit(practice_id=world.practice.pk, kind="work")
    review = CaseReview.objects.get(run=work, case=case)
    pages = [RUNS, RUN_NOW, FINDINGS, REVIEWS, url("auditrun", run), url("auditfinding", finding),
             url("casereview", review)]
    login(client, world.clerk)
    for page in pages:
        assert client.get(page).status_code == 403, page
    assert client.post(url("auditfinding", finding), {"decision": "resolve", "reason": "x"}).status_code == 403
    assert client.post(RUN_NOW, {"practice": world.practice.pk, "kind": "books", "reason": "x"}).status_code == 403
    client.logout()
    login(client, other["manager"])
    for page in pages[4:]:
        assert client.get(page).status_code == 404, page
    assert client.post(url("auditfinding", finding), {"decision": "resolve", "reason": "x"}).status_code == 404
    assert client.post(RUN_NOW, {"practice": world.practice.pk, "kind": "books", "reason": "x"}).status_code == 200
    finding.refresh_from_db()
    assert finding.state == "open" and AuditRun.objects.count() == 2
    assert AuditFinding.objects.filter(practice=other["practice"]).count() == 0
