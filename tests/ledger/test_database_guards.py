"""The database refuses bad states even when application code is wrong (STYLE habit 3): the
journal is append-only and balanced per entry, financial rows are never deleted, and the check
constraints hold on direct UPDATEs that bypass the services."""

from datetime import date
from decimal import Decimal as D

import pytest
from django.db import connection, transaction
from django.db.models import F
from django.db.utils import IntegrityError

from credits import services as credit_services
from credits.models import Credit, CreditApplication, CreditImport, PayerCredit, Refund, WriteOff
from ledger.models import Account, Claim, Encounter, JournalEntry, JournalLine, Payment

pytestmark = pytest.mark.django_db


def refused(match: str):
    """Expect the database to refuse the statement; the block is rolled back to a savepoint."""

    class _Refused:
        def __enter__(self):
            self.raises = pytest.raises(IntegrityError, match=match)
            self.raises.__enter__()
            self.atomic = transaction.atomic()
            self.atomic.__enter__()

        def __exit__(self, *exc):
            self.atomic.__exit__(*exc)
            return self.raises.__exit__(*exc)

    return _Refused()


@pytest.fixture
def books(world):
    """A little of everything, written through the services."""
    pat = world.patient()
    enc, claim = world.visit(pat, date(2026, 3, 3), number="CLM-GUARD")
    world.remit(claim, pr="60.00", paid="100.00")
    world.pay(pat, "40.00", encounter=enc, channel="cash")  # pays 40 of the 60
    wo = credit_services.writeoff_create(encounter_id=enc.pk, amount="5.00", reason_code="small_balance",
                                         reason="Small", actor=world.manager)
    (card,) = world.pay(pat, "150.00", channel="card_reader").credits  # pays the 15.00 owed; 135.00 is credit
    refund = credit_services.refund_request(credit_id=card.pk, amount="120.00", actor=world.clerk,
                                            reason="Moving away")
    pc = credit_services.payer_credit_open(payer_id=world.payer.pk, amount="10.00", reason_code="duplicate_payment",
                                           actor=world.clerk, claim_id=claim.pk)
    credit_services.credit_import_create(practice_id=world.practice.pk, filename="old.csv", actor=world.clerk,
                                       data=f"account_number,amount,note\n{pat.account_number},3.00,old\n".encode())
    enc.refresh_from_db()
    card.refresh_from_db()
    assert (enc.applied_amount, enc.written_off_amount, enc.balance) == (D("55.00"), D("5.00"), D("0.00"))
    assert (refund.state, refund.needs_approval) == ("requested", True)
    return {"world": world, "patient": pat, "encounter": enc, "claim": claim, "credit": card, "refund": refund,
            "writeoff": wo, "payer_credit": pc}


# --- the journal is append-only ---------------------------------------------------------------------

def test_journal_lines_cannot_be_updated_or_deleted(books):
    line = JournalLine.objects.filter(account=Account.CASH).first()
    amount = line.amount
    with refused("UPDATE on ledger_journalline is not allowed"):
        JournalLine.objects.filter(pk=line.pk).update(amount=F("amount") + 1)
    with refused("UPDATE on ledger_journalline is not allowed"):
        line.amount = D("999.00")
        line.save()
    with refused("DELETE on ledger_journalline is not allowed"):
        JournalLine.objects.filter(pk=line.pk).delete()
    with refused("DELETE on ledger_journalline is not allowed"):
        with connection.cursor() as cur:
            cur.execute("DELETE FROM ledger_journalline")
    assert JournalLine.objects.get(pk=line.pk).amount == amount


def test_journal_entries_cannot_be_updated_or_deleted(books):
    entry = JournalEntry.objects.first()
    with refused("UPDATE on ledger_journalentry is not allowed"):
        JournalEntry.objects.filter(pk=entry.pk).update(memo="rewritten history")
    with refused("DELETE on ledger_journalentry is not allowed"):
        JournalEntry.objects.filter(pk=entry.pk)._raw_delete(using="default")
    with refused("DELETE on ledger_journalentry is not allowed"):
        with connection.cursor() as cur:
            cur.execute("DELETE FROM ledger_journalentry WHERE id = %s", [entry.pk])
    assert JournalEntry.objects.get(pk=entry.pk).memo == entry.memo


def test_an_unbalanced_entry_is_refused(books):
    world = books["world"]
    entry = JournalEntry.objects.create(practice=world.practice, kind=JournalEntry.Kind.PAYMENT, memo="bad",
                                        created_by=world.clerk)
    with refused("does not balance"):
        JournalLine.objects.bulk_create([
            JournalLine(entry=entry, practice=world.practice, account=Account.CASH, amount=D("10.00")),
            JournalLine(entry=entry, practice=world.practice, account=Account.REVENUE, amount=D("-9.99")),
        ])
    with refused("does not balance"):  # one line alone
        JournalLine.objects.create(entry=entry, practice=world.practice, account=Account.CASH, amount=D("10.00"))
    # two entries in one statement that only balance together: each must balance on its own
    other = JournalEntry.objects.create(practice=world.practice, kind=JournalEntry.Kind.PAYMENT, memo="bad",
                                        created_by=world.clerk)
    with refused("does not balance"):
        JournalLine.objects.bulk_create([
            JournalLine(entry=entry, practice=world.practice, account=Account.CASH, amount=D("10.00")),
            JournalLine(entry=other, practice=world.practice, account=Account.REVENUE, amount=D("-10.00")),
        ])
    assert not JournalLine.objects.filter(entry__in=[entry, other]).exists()
    # the same lines, balanced, go in
    JournalLine.objects.bulk_create([
        JournalLine(entry=entry, practice=world.practice, account=Account.CASH, amount=D("10.00")),
        JournalLine(entry=entry, practice=world.practice, account=Account.REVENUE, amount=D("-10.00")),
    ])
    assert entry.lines.count() == 2


def test_journal_line_shape_is_checked(books):
    world, pat = books["world"], books["patient"]
    entry = JournalEntry.objects.create(practice=world.practice, kind=JournalEntry.Kind.PAYMENT, memo="bad",
                                        created_by=world.clerk)
    with refused("journal_line_nonzero"):
        JournalLine.objects.create(entry=entry, practice=world.practice, account=Account.CASH, amount=D("0"))
    with refused("journal_credit_line_has_credit"):  # a credit-liability line names its credit
        JournalLine.objects.bulk_create([
            JournalLine(entry=entry, practice=world.practice, account=Account.CASH, amount=D("5.00")),
            JournalLine(entry=entry, practice=world.practice, account=Account.CREDITS_AVAILABLE, amount=D("-5.00"),
                        patient=pat),
        ])
    with refused("journal_receivable_line_has_encounter"):
        JournalLine.objects.bulk_create([
            JournalLine(entry=entry, practice=world.practice, account=Account.CASH, amount=D("-5.00")),
            JournalLine(entry=entry, practice=world.practice, account=Account.PATIENT_RECEIVABLE, amount=D("5.00"),
                        patient=pat),
        ])


# --- financial rows are never deleted ---------------------------------------------------------------

@pytest.mark.parametrize("model,key", [
    (Payment, None), (Encounter, "encounter"), (Claim, "claim"), (Credit, "credit"), (CreditApplication, None),
    (Refund, "refund"), (WriteOff, "writeoff"), (PayerCredit, "payer_credit"), (CreditImport, None),
])
def test_financial_rows_cannot_be_deleted(books, model, key):
    obj = books[key] if key else model.objects.first()
    table = model._meta.db_table
    with refused(f"DELETE on {table} is not allowed"):
        with connection.cursor() as cur:
            cur.execute(f"DELETE FROM {table} WHERE id = %s", [obj.pk])
    with refused(f"DELETE on {table} is not allowed"):  # even past Django's PROTECT collector
        model.objects.filter(pk=obj.pk)._raw_delete(using="default")
    assert model.objects.filter(pk=obj.pk).exists()


def test_deleting_a_credit_or_payment_through_the_orm_is_refused(books):
    from django.db.models import ProtectedError

    for obj in (books["credit"], books["credit"].payment):
        with pytest.raises((ProtectedError, IntegrityError)), transaction.atomic():
            obj.delete()
        assert type(obj).objects.filter(pk=obj.pk).exists()


# --- check constraints hold against direct updates ------------------------------------------------------

def test_credit_buckets_must_add_up(books):
    c = books["credit"]
    before = Credit.objects.values("on_hand", "refund_hold", "applied_amount").get(pk=c.pk)
    with refused("credit_cents_accounted"):
        Credit.objects.filter(pk=c.pk).update(applied_amount=F("applied_amount") + D("0.01"))
    with refused("credit_cents_accounted"):
        Credit.objects.filter(pk=c.pk).update(on_hand=F("on_hand") + D("10.00"))
    with refused("credit_buckets_nonneg"):  # adds up, but with a negative bucket
        Credit.objects.filter(pk=c.pk).update(on_hand=F("on_hand") + D("5.00"), removed_amount=D("-5.00"))
    assert Credit.objects.values("on_hand", "refund_hold", "applied_amount").get(pk=c.pk) == before


def test_credit_state_must_match_its_money(books):
    held, enc = books["credit"], books["encounter"]
    assert (held.state, held.on_hand, held.refund_hold) == ("available", D("15.00"), D("120.00"))
    imported = Credit.objects.get(source=Credit.Source.IMPORT)
    assert (imported.state, imported.on_hand, imported.refund_hold) == ("available", D("3.00"), D("0"))
    with refused("credit_locked_iff_encounter"):
        Credit.objects.filter(pk=imported.pk).update(state="locked")
    with refused("credit_locked_iff_encounter"):
        Credit.objects.filter(pk=imported.pk).update(locked_encounter=enc)
    with refused("credit_spent_states_have_nothing_on_hand"):
        Credit.objects.filter(pk=imported.pk).update(state="applied")
    with refused("credit_onhand_states_have_money"):
        Credit.objects.filter(pk=imported.pk).update(on_hand=0, removed_amount=F("removed_amount") + F("on_hand"))
    with refused("credit_hold_only_available"):  # locked properly, but a refund hold sits only on available money
        Credit.objects.filter(pk=held.pk).update(state="locked", locked_encounter=enc)
    for c in (held, imported):
        c.refresh_from_db()
        assert (c.state, c.locked_encounter_id) == ("available", None)


def test_an_encounter_cannot_be_over_applied(books):
    enc = books["encounter"]
    with refused("encounter_not_overapplied"):
        Encounter.objects.filter(pk=enc.pk).update(applied_amount=F("applied_amount") + D("0.01"))
    with refused("encounter_not_overapplied"):
        Encounter.objects.filter(pk=enc.pk).update(written_off_amount=F("written_off_amount") + D("1.00"))
    with refused("encounter_not_overapplied"):  # a lower PR without giving the money back
        Encounter.objects.filter(pk=enc.pk).update(remittance_pr=D("50.00"))
    with refused("encounter_applied_nonneg"):
        Encounter.objects.filter(pk=enc.pk).update(applied_amount=D("-1.00"))
    enc.refresh_from_db()
    assert (enc.remittance_pr, enc.applied_amount, enc.written_off_amount) == (D("60.00"), D("55.00"), D("5.00"))


def test_a_refund_needing_approval_cannot_be_approved_by_its_requester(books):
    r = books["refund"]
    with refused("refund_four_eyes"):
        Refund.objects.filter(pk=r.pk).update(state="approved", decided_by=r.requested_by)
    with refused("refund_issued_has_reference"):
        Refund.objects.filter(pk=r.pk).update(state="issued")
    with refused("refund_amount_positive"):
        Refund.objects.filter(pk=r.pk).update(amount=0)
    r.refresh_from_db()
    assert (r.state, r.decided_by_id) == ("requested", None)


def test_payment_and_application_constraints(books):
    payment = books["credit"].payment
    with refused("payment_refund_within_amount"):
        Payment.objects.filter(pk=payment.pk).update(refunded_amount=F("amount") + D("0.01"))
    with refused("payment_system_has_reference"):
        Payment.objects.filter(pk=payment.pk).update(processor_reference="")
    app = CreditApplication.objects.filter(payment__isnull=False).first()
    with refused("application_one_source"):
        CreditApplication.objects.filter(pk=app.pk).update(credit=books["credit"])
    with refused("application_return_has_credit"):
        CreditApplication.objects.filter(pk=app.pk).update(amount=D("-1.00"))
    with refused("payer_credit_resolved_within_amount"):
        PayerCredit.objects.filter(pk=books["payer_credit"].pk).update(resolved_amount=D("10.01"))
    with refused("payer_credit_closed_is_settled"):
        PayerCredit.objects.filter(pk=books["payer_credit"].pk).update(state="refunded")
