"""The invariant that would have caught the double posting (issue 9): per 835 file, the payments
booked equal the file's payments (tests/credits/test_invariants.py, `check_remittances`). It is
exercised by the hypothesis machine (its rule `remittance_835` posts generated files), and it
fails on books where a claim's payment was booked twice."""

from datetime import date
from decimal import Decimal as D

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hsettings
from hypothesis.stateful import run_state_machine_as_test

from ledger import journal
from ledger.journal import credit as cr
from ledger.journal import debit as dr
from ledger.models import Account, JournalEntry
from remittances.models import RemittanceBooking, RemittanceClaim
from remittances.receive import remittance_file_import
from remittances.x12.generator import ClaimSpec, generate_835
from tests.credits.test_invariants import LedgerMachine, check_invariants, check_remittances

pytestmark = pytest.mark.django_db


def test_the_machine_posts_835_files_and_keeps_the_invariant():
    LedgerMachine.fresh()
    run_state_machine_as_test(
        LedgerMachine,
        settings=hsettings(max_examples=8, stateful_step_count=20, deadline=None, print_blob=False,
                           suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
    assert LedgerMachine.remittance_files_posted > 0


def test_the_invariant_fails_when_a_claim_is_booked_twice(world):
    pat = world.patient()
    enc, claim = world.visit(pat, date(2026, 3, 3), charge="200.00", number="INV-1")
    done = remittance_file_import(practice_id=world.practice.pk, actor=world.clerk, filename="era.835", data=generate_835(
        specs=[ClaimSpec("INV-1", charge="200.00", paid="150.00", patient_responsibility=[("2", "20.00")])],
        plb=[("L6", "INTEREST", "-2.00")]))
    f = done.received.file
    assert (f.status, f.paid_total) == ("posted", D("152.00"))
    check_invariants(world.practice.pk)  # holds: 150.00 + 2.00 interest booked

    # the defect: the same claim's payment booked a second time (here under another entry kind, which
    # the unique index allows) -> cash 302.00 for a file of 152.00
    rc = RemittanceClaim.objects.get(file=f)
    entry = journal.post(practice_id=world.practice.pk, kind=JournalEntry.Kind.PAYER_CREDIT, memo="again",
                         actor=world.clerk, lines=[dr(Account.CASH, D("150.00"), claim=claim),
                                                   cr(Account.PAYER_CREDITS, D("150.00"), claim=claim)])
    RemittanceBooking.objects.create(entry=entry, kind=entry.kind, file=f, remittance_claim=rc)
    with pytest.raises(AssertionError, match="cash booked 302.00"):
        check_remittances(world.practice.pk)
