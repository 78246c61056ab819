"""`manage.py seed_demo`: every state the back-office should show, all booked through the
services (so the journal balances and credits equal the ledger), and a second run creates nothing."""

from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db.models import F, Sum

from credits.models import Credit, CreditApplication, CreditImport, NightlyRun, PayerCredit, Refund, WriteOff
from credits.selectors import credit_liability
from ledger.access import practice_ids_for
from ledger.models import (
    Claim,
    Encounter,
    JournalEntry,
    JournalLine,
    Membership,
    Patient,
    Payer,
    Payment,
    Practice,
    SandboxCharge,
    SandboxRefund,
)
from ledger.money import ZERO
from remittances.models import RemittanceAdjustment, RemittanceClaim, RemittanceFile, RemittanceTransaction

pytestmark = pytest.mark.django_db

MODELS = [Practice, Membership, Patient, Payer, Encounter, Claim, Payment, SandboxCharge, SandboxRefund, JournalEntry,
          JournalLine, Credit, CreditApplication, Refund, WriteOff, PayerCredit, CreditImport, NightlyRun,
          RemittanceFile, RemittanceTransaction, RemittanceClaim, RemittanceAdjustment]


def counts() -> dict:
    return {m.__name__: m.objects.count() for m in MODELS} | {"users": get_user_model().objects.count()}


def values(model, field) -> set:
    return set(model.objects.values_list(field, flat=True).distinct())


@pytest.fixture
def seeded():
    out = StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def test_seed_demo_shows_every_state_with_logins_for_two_practices(seeded):
    riverside = Practice.objects.get(name="Riverside Family Medicine")
    lakeside = Practice.objects.get(name="Lakeside Pediatrics")
    assert (riverside.us_state, riverside.auto_apply, riverside.refund_approval_threshold,
            riverside.card_refund_window_days) == ("TX", True, 100, 180)
    assert lakeside.us_state == "CA"
    assert Patient.objects.filter(practice=riverside).count() == 50
    assert Patient.objects.filter(practice=lakeside).count() == 8
    assert values(Payer, "payer_type") == set(Payer.Type.values)

    assert values(Claim, "state") >= {"submitted", "pending", "resubmitted", "forwarded", "paid", "denied"}
    assert values(Payment, "channel") == set(Payment.Channel.values)
    assert Payment.objects.filter(channel="check").exclude(check_number="").exists()
    assert not Payment.objects.filter(channel__in=Payment.SYSTEM_CHANNELS, processor_reference="").exists()
    assert values(Credit, "state") == set(Credit.State.values)
    assert values(Credit, "source") == set(Credit.Source.values)
    assert values(Refund, "state") == set(Refund.State.values)
    assert Refund.objects.filter(state="requested", needs_approval=True).exists()
    assert values(WriteOff, "state") == {"active", "undone"}
    assert values(PayerCredit, "state") >= {"open", "recouped"}
    assert CreditApplication.objects.filter(amount__lt=0).exists()  # money returned into credits
    assert CreditApplication.objects.filter(nightly_run__isnull=False).exists()
    assert NightlyRun.objects.filter(status="succeeded").count() == 2
    assert sorted(CreditImport.objects.values_list("state", flat=True)) == ["imported", "pending"]
    from credits.models import ManualCreditRequest  # separation of duties (issue 9): one waits for a manager

    assert ManualCreditRequest.objects.filter(state="pending", needs_approval=True).count() == 1
    assert values(RemittanceClaim, "state") == {"posted", "unmatched"}
    assert Credit.history.filter(history_change_reason__startswith="Manual unlock:").exists()
    assert Patient.objects.filter(exclude_from_auto_apply=True).exists()
    assert Encounter.objects.filter(date_of_service__lt=F("created_at__date")).count() == Encounter.objects.count()

    users = {u.username: u for u in get_user_model().objects.filter(
        username__in=["admin", "manager", "billing", "lakeside"])}
    for username, user in users.items():
        assert username in seeded and user.is_staff and user.check_password("demo")
    assert "/admin/" in seeded
    assert users["admin"].is_superuser and len(users) == 4
    assert Membership.objects.get(user=users["manager"]).role == "manager"
    assert Membership.objects.get(user=users["billing"]).role == "billing"
    assert practice_ids_for(users["billing"]) == [riverside.pk]
    assert practice_ids_for(users["lakeside"]) == [lakeside.pk]


def test_seed_demo_books_balance_and_credits_equal_the_ledger(seeded):
    assert JournalLine.objects.aggregate(s=Sum("amount"))["s"] == ZERO
    unbalanced = JournalEntry.objects.annotate(total=Sum("lines__amount")).exclude(total=0)
    assert not unbalanced.exists()
    for patient in Patient.objects.all():
        held = Credit.objects.filter(patient=patient).aggregate(
            s=Sum(F("on_hand") + F("refund_hold")))["s"] or ZERO
        assert credit_liability(patient.pk) == held, patient
    for enc in Encounter.objects.all():
        applied = enc.applications.aggregate(s=Sum("amount"))["s"] or ZERO
        written_off = enc.write_offs.filter(state="active").aggregate(s=Sum("amount"))["s"] or ZERO
        assert (enc.applied_amount, enc.written_off_amount) == (applied, written_off), enc
    # The demo's nightly was complete: a second pass over every patient applies nothing.
    from credits.services import credits_apply
    from ledger.access import system_user

    assert [p.pk for p in Patient.objects.order_by("pk")
            if credits_apply(patient_id=p.pk, actor=system_user()).total] == []


def test_seed_demo_twice_creates_nothing_new(seeded):
    before = counts()
    out = StringIO()
    call_command("seed_demo", stdout=out)
    assert counts() == before
    assert "already loaded" in out.getvalue() and "billing" in out.getvalue()


def test_seed_demo_reconciles_its_audits_run_and_a_manager_sees_both_practices(seeded):
    """Issue 12: the demo's books reconcile with zero differences as of today and as of each of the
    last days, the books' audit is clean, the work audit put cases up for review, the Medicare
    credit balance report took the Medicare payer credits, and the billing company's manager
    manages both practices."""
    from adjudication.clocks import practice_today
    from reports.models import AuditRun, CaseReview, Cms838Report
    from reports.reconciliation import reconcile

    for practice in Practice.objects.all():
        today = practice_today(practice)
        for days_back in (0, 1, 7, 30, 120):
            result = reconcile(practice_id=practice.pk, as_of=today - timedelta(days=days_back))
            assert result.differences == [], (practice, days_back, result.differences[:3])
        assert AuditRun.objects.get(practice=practice, kind="books").status == "clean"
        assert AuditRun.objects.filter(practice=practice, kind="work").exclude(status="failed").count() == 1
    riverside = Practice.objects.get(name="Riverside Family Medicine")
    assert CaseReview.objects.filter(practice=riverside, state="pending").exists()
    report = Cms838Report.objects.get(practice=riverside)
    medicare = PayerCredit.objects.filter(practice=riverside, payer__payer_type="medicare")
    assert (report.part, report.line_count) == ("B", medicare.count()) and report.line_count >= 2
    company = get_user_model().objects.get(username="company")
    assert sorted(practice_ids_for(company)) == sorted(Practice.objects.values_list("pk", flat=True))
    assert set(Membership.objects.filter(user=company).values_list("role", flat=True)) == {"manager"}
