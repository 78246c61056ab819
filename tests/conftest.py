"""Shared fixtures: a practice with a billing clerk, a manager and a payer; `world`, a small
helper that records visits, claims and payments through the real services; and the lock-order
recorder every test runs under (tests/lock_order.py)."""

import importlib
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import pytest
from django.apps import apps as django_apps
from django.db import connection

from adjudication.clocks import practice_today
from adjudication.models import ClockRule
from credits import services as credit_services
from ledger import services as ledger_services
from ledger.models import Membership, Practice
from reports.reconciliation import reconcile
from tests.browser import chromium  # noqa: F401  (the browser tests' one browser: a fixture defined once)
from tests.factories import MembershipFactory, PatientFactory, PayerFactory, PracticeFactory, UserFactory
from tests.lock_order import LockOrderRecorder

CLOCK_SEED = importlib.import_module("adjudication.migrations.0003_clock_rules_seed")


@dataclass
class World:
    practice: object
    clerk: object
    manager: object
    payer: object

    def patient(self, **kw):
        return PatientFactory(practice=self.practice, **kw)

    def visit(self, patient, dos: date, *, charge="200.00", estimated_pr="0.00", claim=True, number=None):
        enc = ledger_services.encounter_create(patient_id=patient.pk, date_of_service=dos, charge=charge,
                                               estimated_pr=estimated_pr, actor=self.clerk)
        c = None
        if claim:
            c = ledger_services.claim_submit(encounter_id=enc.pk, payer_id=self.payer.pk,
                                             claim_number=number or f"CLM-{enc.pk}", actor=self.clerk)
        return enc, c

    def remit(self, claim, *, pr, paid="0.00", adjust=None, outcome="paid", reason="Remittance"):
        """Post a payer's decision; by default adjustments make the claim balance."""
        if adjust is None:
            adjust = claim.billed_amount - Decimal(paid) - Decimal(pr) if outcome == "paid" else "0.00"
        return credit_services.claim_record_result(claim_id=claim.pk, outcome=outcome, paid_amount=paid,
                                                   adjustment_amount=adjust, patient_responsibility=pr,
                                                   actor=self.clerk, reason=reason)

    def pay(self, patient, amount, *, encounter=None, channel="card_reader", token="tok_visa"):
        return credit_services.payment_record(patient_id=patient.pk, amount=amount, channel=channel,
                                              encounter_id=getattr(encounter, "pk", None), card_token=token,
                                              check_number="1001" if channel == "check" else "",
                                              actor=self.clerk, reason="Payment at front desk")


@pytest.fixture
def world(db):
    practice = PracticeFactory(name="Main Street Clinic", refund_approval_threshold=Decimal("100.00"))
    clerk = MembershipFactory(practice=practice, user=UserFactory(username="clerk"), role=Membership.Role.BILLING).user
    manager = MembershipFactory(practice=practice, user=UserFactory(username="boss"), role=Membership.Role.MANAGER).user
    return World(practice=practice, clerk=clerk, manager=manager, payer=PayerFactory(practice=practice))


@pytest.fixture(autouse=True)
def lock_order_recorder(monkeypatch):
    """Every test: each transaction's row locks are checked against ledger.locks.ORDER as they are
    taken (tests/lock_order.py). A lock out of order raises LockOrderViolation at the statement, and
    the test fails at teardown even if a thread swallowed it; a test provoking one on purpose
    removes it from `lock_order_recorder.violations`."""
    recorder = LockOrderRecorder()
    recorder.install(monkeypatch)
    yield recorder
    recorder.uninstall()
    if recorder.violations:
        pytest.fail(f"{len(recorder.violations)} lock(s) out of order; the first:\n{recorder.violations[0]}",
                    pytrace=False)


@pytest.fixture(autouse=True)
def clock_rules_seeded(request):
    """The clock rules the data migration seeds (adjudication 0003), there for every test that uses
    the database: a transactional test's teardown empties every table, seeded rows too, and a later
    test would find no Texas or Medicare rule."""
    names = request.fixturenames
    marker = request.node.get_closest_marker("django_db")
    if "transactional_db" in names or "live_server" in names or (marker and marker.kwargs.get("transaction")):
        request.getfixturevalue("transactional_db")
    elif "db" in names or marker is not None:
        request.getfixturevalue("db")
    else:
        return
    if not ClockRule.objects.filter(practice__isnull=True).exists():
        CLOCK_SEED.seed(django_apps, None)


# --- reconciliation after every test (issue 12 item 2) ----------------------------------------------------
# Whatever a test did to the books through the services, they reconcile afterwards: for every practice,
# credits, the journal and visit balances as of today (reports/reconciliation.py) differ nowhere. Runs
# inside the test's transaction, right after its body; tests that break the books on purpose are
# marked `planted_fault`, tests that write rows of every shape without a journal `unbooked`.


def _uses_db(item) -> bool:
    names = getattr(item, "fixturenames", ())
    return item.get_closest_marker("django_db") is not None or "db" in names or "transactional_db" in names


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    result = yield
    skip = item.get_closest_marker("planted_fault") or item.get_closest_marker("unbooked")
    if _uses_db(item) and skip is None:
        if connection.connection is not None and not connection.needs_rollback:
            for practice in Practice.objects.all():
                found = reconcile(practice_id=practice.pk, as_of=practice_today(practice)).differences
                assert not found, f"the books do not reconcile after the test ({practice}): {found[:5]}"
    return result
