"""The audits (DOMAIN rule 20): every check finds the fault planted for it (raw SQL past the
services, as a bug or a hand edit of the database would), a clean practice gives no finding, the
runner links a fault found again, keeps its acknowledgement, resolves a fixed one, and deciding a
finding is for managers with a reason."""

import threading
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D

import pytest
import time_machine
from django.db import connection, connections

from adjudication.models import Case
from credits import services as credit_services
from ledger.errors import Duplicate, NotFound, PermissionDenied, RuleViolation
from ledger.models import Practice
from reports.audits import run_audit, runner
from reports.models import AuditFinding, AuditRun, CaseReview
from reports.services.findings import finding_acknowledge, finding_resolve
from reports.services.reviews import case_review_record
from tests.factories import MembershipFactory, PracticeFactory, UserFactory

pytestmark = pytest.mark.django_db
K = AuditFinding.Kind


def sql(statement, params=()):
    with connection.cursor() as cur:
        cur.execute(statement, params)


def kinds(run):
    return sorted({f.kind for f in run.findings.all()})


@pytest.fixture
def books(world):
    """A patient with an available credit of 300.00 (paid at the portal), a visit owing 50.00 with
    its claim paid, and a copay locked to a visit whose claim is open."""
    w = world
    pat = w.patient()
    enc, claim = w.visit(pat, date(2026, 3, 3), estimated_pr="50.00")
    w.remit(claim, pr="50.00", paid="150.00")
    credit = w.pay(pat, "300.00", channel="portal").credits[0]
    enc2, _ = w.visit(pat, date(2026, 3, 10), estimated_pr="20.00")
    locked = w.pay(pat, "20.00", encounter=enc2).credits[0]
    return w, pat, enc, credit, locked


def test_a_clean_practice_has_no_finding_in_the_books(books):
    w = books[0]
    run = run_audit(practice_id=w.practice.pk, kind="books")
    assert (run.status, run.finding_count, kinds(run)) == ("clean", 0, [])
    assert set(run.checks) == set(AuditFinding.BOOKS_CHECKS)


@pytest.mark.planted_fault
def test_each_books_check_finds_its_planted_fault(books):
    w, pat, _, credit, locked = books
    enc = locked.locked_encounter  # owes 20.00, nothing applied yet
    other = PracticeFactory()  # its own fault must not show in this practice's run
    # an unbalanced journal entry: triggers (the balance check among them) are off for this one insert
    sql("SET LOCAL session_replication_role = replica")
    sql("""INSERT INTO ledger_journalline (entry_id, practice_id, account, amount)
           SELECT id, practice_id, 'revenue', 1.00 FROM ledger_journalentry WHERE practice_id = %s
           ORDER BY id LIMIT 1""", [w.practice.pk])
    sql("SET LOCAL session_replication_role = origin")
    with connection.cursor() as cur:
        cur.execute("SELECT min(id) FROM ledger_journalentry WHERE practice_id = %s", [w.practice.pk])
        entry_id = cur.fetchone()[0]
    # 10.00 moved from a credit's on-hand bucket to its applied bucket with no application row and no
    # journal line (the buckets still add up, which the database checks): applied and liability broken
    sql("UPDATE credits_credit SET on_hand = on_hand - 10, applied_amount = applied_amount + 10 WHERE id = %s",
        [credit.pk])
    # a visit's written-off cache without a write-off row
    sql("UPDATE ledger_encounter SET written_off_amount = 1.00 WHERE id = %s", [enc.pk])
    # the totals table off by 5.00
    sql("UPDATE credits_patientresponsibility SET due_now = due_now + 5 WHERE patient_id = %s", [pat.pk])
    run = run_audit(practice_id=w.practice.pk, kind="books")
    assert run.status == "findings"
    by_kind = {f.kind: f for f in run.findings.all()}
    assert kinds(run) == sorted([K.JOURNAL_UNBALANCED, K.CREDIT_LIABILITY, K.CREDIT_BUCKETS, K.ENCOUNTER_CACHE,
                                 K.TOTALS_TABLE])
    j = by_kind[K.JOURNAL_UNBALANCED]
    assert (j.object_type, j.object_id, j.amount, j.actual) == ("journal_entry", entry_id, D("1.00"), "1.00")
    b = by_kind[K.CREDIT_BUCKETS]
    assert (b.object_id, b.amount, b.expected, b.actual) == (credit.pk, D("10.00"), "applied 0.00",
                                                             "applied 10.00")
    liab = run.findings.filter(kind=K.CREDIT_LIABILITY, object_type="patient").get()
    assert (liab.object_id, liab.amount) == (pat.pk, D("-10.00"))
    assert pat.last_name in liab.object_label and pat.account_number in liab.object_label
    e = by_kind[K.ENCOUNTER_CACHE]
    assert (e.object_id, e.expected, e.actual) == (enc.pk, "written off 0.00", "written off 1.00")
    t = by_kind[K.TOTALS_TABLE]
    assert t.object_id == pat.pk and t.amount == D("5.00")
    assert run_audit(practice_id=other.pk, kind="books").finding_count == 0


@pytest.mark.planted_fault
def test_a_fault_found_again_is_linked_keeps_its_acknowledgement_and_is_resolved_once_fixed(books):
    w, pat, _, credit, _ = books
    sql("UPDATE credits_patientresponsibility SET available = available + 1 WHERE patient_id = %s", [pat.pk])
    first = run_audit(practice_id=w.practice.pk, kind="books")
    f1 = first.findings.get()
    finding_acknowledge(finding=f1.pk, actor=w.manager, reason="Known: the totals trigger is being fixed")
    second = run_audit(practice_id=w.practice.pk, kind="books")
    f2 = second.findings.get()
    f1.refresh_from_db()
    assert f2.previous_id == f1.pk and f2.state == "acknowledged" and f1.state == "resolved"
    assert f1.decision_reason == f"Found again by audit run {second.pk}"
    sql("UPDATE credits_patientresponsibility SET available = available - 1 WHERE patient_id = %s", [pat.pk])
    third = run_audit(practice_id=w.practice.pk, kind="books")
    f2.refresh_from_db()
    assert third.status == "clean" and f2.state == "resolved" and "No longer found" in f2.decision_reason


def test_a_failing_check_is_recorded_and_the_others_still_run(books, monkeypatch):
    w = books[0]

    def broken(ctx):
        raise RuntimeError("boom")
        yield

    reg = runner.CHECKS[K.TOTALS_TABLE]
    monkeypatch.setitem(runner.CHECKS, K.TOTALS_TABLE, runner.Registered(reg.kind, reg.run_kind, broken, None, True))
    run = run_audit(practice_id=w.practice.pk, kind="books")
    assert run.status == "failed" and "boom" in run.error
    assert run.checks[K.TOTALS_TABLE]["error"] == "RuntimeError: boom"
    assert run.checks[K.CREDIT_BUCKETS]["findings"] == 0


def test_a_second_run_of_the_same_kind_at_once_is_refused(books):
    w = books[0]
    key = runner._advisory_key(w.practice.pk, "books")
    held, release = threading.Event(), threading.Event()

    def other_session():  # another connection (a run in progress elsewhere) holds the run's lock
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
        with pytest.raises(Duplicate, match="already running"):
            run_audit(practice_id=w.practice.pk, kind="books")
    finally:
        release.set()
        t.join()
    assert run_audit(practice_id=w.practice.pk, kind="books").status == "clean"


def test_deciding_a_finding_is_for_the_practices_managers_with_a_reason(books):
    w, pat = books[0], books[1]
    run = AuditRun.objects.create(practice=w.practice, kind="books", as_of=date(2026, 3, 3), reason="t")
    f = AuditFinding.objects.create(run=run, practice=w.practice, kind=K.TOTALS_TABLE, severity="error",
                                    object_type="patient", object_id=pat.pk, object_label="x", key="k")
    with pytest.raises(PermissionDenied):
        finding_acknowledge(finding=f.pk, actor=w.clerk, reason="mine")
    stranger = MembershipFactory(practice=PracticeFactory(), user=UserFactory(), role="manager").user
    with pytest.raises(NotFound):
        finding_resolve(finding=f.pk, actor=stranger, reason="not mine")
    with pytest.raises(Exception, match="reason"):
        finding_resolve(finding=f.pk, actor=w.manager, reason="  ")
    finding_resolve(finding=f.pk, actor=w.manager, reason="Fixed the row by hand")
    f.refresh_from_db()
    assert (f.state, f.decided_by, f.decision_reason) == ("resolved", w.manager, "Fixed the row by hand")
    h = f.history.latest()
    assert (h.history_user, h.history_change_reason) == (w.manager, "Fixed the row by hand")
    with pytest.raises(RuleViolation):
        finding_acknowledge(finding=f.pk, actor=w.manager, reason="again")


def travel(day):
    return time_machine.travel(datetime(day.year, day.month, day.day, 17, tzinfo=UTC), tick=False)


def test_each_work_check_finds_its_condition(world):
    w = world
    start = date(2026, 3, 2)
    with travel(start):
        pat = w.patient()
        enc, _ = w.visit(pat, start, estimated_pr="20.00")  # claim open: the copay stays locked
        locked = w.pay(pat, "20.00", encounter=enc).credits[0]
        owes = w.patient()
        w.pay(owes, "25.00", channel="portal")  # an available credit ...
        w.visit(owes, start, estimated_pr="40.00", claim=False)  # ... then a payable balance it is not used on
        pc = credit_services.payer_credit_open(payer_id=w.payer.pk, amount="60.00", reason_code="duplicate_payment",
                                               actor=w.clerk, cash_received=True, reason="Paid twice")
    today = start + timedelta(days=91)
    near = Case.objects.create(practice=w.practice, kind=Case.Kind.PATIENT_CREDIT, cause="patient_overpayment",
                               credit=locked, patient=pat, amount=D("20.00"), determined_on=start,
                               due_on=today + timedelta(days=3))
    late = Case.objects.create(practice=w.practice, kind=Case.Kind.PAYER_CREDIT, cause="duplicate_payment",
                               payer_credit=pc, payer=w.payer, amount=D("60.00"), determined_on=start,
                               due_on=today - timedelta(days=2))
    with travel(today):
        run = run_audit(practice_id=w.practice.pk, kind="work")
    got = {f.kind: f for f in run.findings.all()}
    assert set(got) == {K.STALE_LOCKED, K.SKIPPED_APPLICATION, K.PAYER_CREDIT_OPEN, K.CLOCK_NEAR_BREACH,
                        K.CLOCK_BREACHED}
    assert (got[K.STALE_LOCKED].object_id, got[K.STALE_LOCKED].age_days) == (locked.pk, 91)
    skipped = got[K.SKIPPED_APPLICATION]
    assert (skipped.object_id, skipped.amount, skipped.age_days) == (owes.pk, D("25.00"), 91)
    assert "has not applied it yet" in skipped.detail
    assert (got[K.PAYER_CREDIT_OPEN].age_days, got[K.PAYER_CREDIT_OPEN].severity) == (91, "warning")
    assert (got[K.CLOCK_NEAR_BREACH].object_id, got[K.CLOCK_NEAR_BREACH].actual) == (near.pk, "3 days left")
    assert (got[K.CLOCK_BREACHED].object_id, got[K.CLOCK_BREACHED].actual) == (late.pk, "2 days late")
    # exactly at the limits nothing is stale or too long open
    with travel(start + timedelta(days=60)):
        edge = run_audit(practice_id=w.practice.pk, kind="work")
    assert K.PAYER_CREDIT_OPEN not in {f.kind for f in edge.findings.all()}
    Practice.objects.filter(pk=w.practice.pk).update(auto_apply=False)
    w.practice.refresh_from_db()
    with travel(today):
        again = run_audit(practice_id=w.practice.pk, kind="work")
    assert "nightly application is off" in again.findings.get(kind=K.SKIPPED_APPLICATION).detail


def resolved_case(w, n, when):
    pat = w.patient()
    credit = w.pay(pat, f"{10 + n}.00", channel="portal").credits[0]
    return Case.objects.create(practice=w.practice, kind=Case.Kind.PATIENT_CREDIT, cause="patient_overpayment",
                               credit=credit, patient=pat, amount=credit.amount, determined_on=when.date(),
                               state="resolved", outcome="applied", outcome_note="applied", resolved_at=when,
                               resolved_by=w.clerk)


def test_the_review_sample_is_its_size_repeatable_never_twice_and_recorded_by_someone_else(world):
    w = world
    noon = datetime(2026, 3, 2, 17, tzinfo=UTC)
    with travel(noon.date()):
        cases = [resolved_case(w, n, noon) for n in range(8)]
        run = run_audit(practice_id=w.practice.pk, kind="work")
    sampled = list(CaseReview.objects.filter(run=run).order_by("case_id"))
    assert len(sampled) == 5 and {r.case_id for r in sampled} <= {c.pk for c in cases}
    assert all(r.finding.kind == K.REVIEW_SAMPLE for r in sampled)
    with travel(noon.date() + timedelta(days=1)):
        nxt = run_audit(practice_id=w.practice.pk, kind="work")
    assert CaseReview.objects.filter(run=nxt).count() == 0  # nothing new resolved since the last run
    review = sampled[0]
    with pytest.raises(PermissionDenied):  # billing staff
        case_review_record(review=review.pk, outcome="passed", actor=w.clerk, note="ok")
    resolver = MembershipFactory(practice=w.practice, user=UserFactory(), role="manager").user
    Case.objects.filter(pk=review.case_id).update(resolved_by=resolver)
    with pytest.raises(PermissionDenied, match="someone else"):
        case_review_record(review=review.pk, outcome="passed", actor=resolver, note="ok")
    case_review_record(review=review.pk, outcome="failed", actor=w.manager, note="Applied to the wrong visit",
                       reopen=True)
    review.refresh_from_db()
    case = Case.objects.get(pk=review.case_id)
    assert (review.state, review.reviewer, case.state, case.reopened_count) == ("failed", w.manager,
                                                                                 "investigating", 1)
    assert review.finding.state == "resolved"
    with pytest.raises(RuleViolation):
        case_review_record(review=review.pk, outcome="passed", actor=w.manager, note="again")
