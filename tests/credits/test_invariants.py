"""Stateful property test: random sequences of the real services on PostgreSQL, with the money
invariants of DOMAIN rules 1, 2, 4, 6, 8 and 12 checked after every step.

Each hypothesis example runs inside its own atomic block, rolled back in `teardown`; the block is
tagged like Django's TestCase blocks (`_from_testcase`) so the services' durable transactions
nest inside it as savepoints. The machine counts what every rule's service calls did (`outcomes`):
the test fails when an operation never succeeded, since a run where it was always refused, or
never found anything to work on, proved nothing about it."""

import functools
from collections import Counter, defaultdict
from datetime import date, timedelta
from decimal import Decimal
from typing import ClassVar

import factory.random
import pytest
from django.db import connection, transaction
from django.db.models import Q
from hypothesis import HealthCheck
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from credits import services as credit_services
from credits.models import (
    Credit,
    CreditApplication,
    CreditImport,
    CreditImportRow,
    ManualCreditRequest,
    Refund,
    WriteOff,
)
from credits.selectors import credit_liability
from ledger import services as ledger_services
from ledger.errors import SettleError
from ledger.models import Account, Claim, Encounter, JournalEntry, JournalLine, Membership, Payment, SandboxCharge
from ledger.money import ZERO
from tests.factories import MembershipFactory, PatientFactory, PayerFactory, PracticeFactory

CENTS = Decimal("0.01")


# a share of what is there: often all of it, sometimes a part, sometimes a little too much
PERCENT = st.one_of(st.just(100), st.integers(1, 110))
# who decides what waits for a manager: hypothesis draws the first choice most often, so it is one
# that may decide (the clerk, refused by four eyes, comes last)
DECIDERS = st.sampled_from(["manager", "manager2", "clerk"])


def money(cents: int) -> Decimal:
    return (Decimal(cents) * CENTS).quantize(CENTS)


def check_invariants(practice_id: int | None = None) -> None:
    """Every money invariant of the product, read straight from the database (a few queries that
    fetch the rows, then plain Python)."""

    def scope(qs):
        return qs if practice_id is None else qs.filter(practice_id=practice_id)

    entry_ids = set(scope(JournalEntry.objects.all()).values_list("pk", flat=True))
    lines = list(scope(JournalLine.objects.all()).values_list("entry_id", "account", "amount", "patient_id",
                                                               "encounter_id", "credit_id"))
    credits = list(scope(Credit.objects.all()).select_related("locked_encounter"))
    apps = list(scope(CreditApplication.objects.all()).values_list("credit_id", "encounter_id", "amount"))
    refunds = list(scope(Refund.objects.all()).values_list("credit_id", "payment_id", "state", "amount"))
    encounters = list(scope(Encounter.objects.all()))
    write_offs = list(scope(WriteOff.objects.filter(state=WriteOff.State.ACTIVE)).values_list("encounter_id",
                                                                                              "amount"))
    payments = list(scope(Payment.objects.all()))

    def total(pairs) -> dict:
        out = defaultdict(lambda: ZERO)
        for key, amount in pairs:
            out[key] += amount
        return out

    # (a) every entry balances, the whole journal balances, no empty entry
    by_entry = total((ln[0], ln[2]) for ln in lines)
    unbalanced = {e: s for e, s in by_entry.items() if s != 0}
    assert unbalanced == {}, f"unbalanced journal entries: {unbalanced}"
    assert sum(by_entry.values(), ZERO) == 0
    assert set(by_entry) == entry_ids, f"journal entries without lines: {entry_ids - set(by_entry)}"

    # (b) per patient: credits on hand (available, locked, held for a refund) == credit liability
    credit_lines = [ln for ln in lines if ln[1] in (Account.CREDITS_AVAILABLE, Account.CREDITS_LOCKED)]
    assert all(ln[3] is not None and ln[5] is not None for ln in credit_lines)
    ledger_by_patient = total((ln[3], -ln[2]) for ln in credit_lines)
    held_by_patient = total((c.patient_id, c.on_hand + c.refund_hold) for c in credits)
    for pid in set(held_by_patient) | set(ledger_by_patient):
        assert held_by_patient[pid] == ledger_by_patient[pid], \
            f"patient {pid}: credits {held_by_patient[pid]} != ledger {ledger_by_patient[pid]}"
    for pid in {c.patient_id for c in credits}:  # and the selector staff see agrees
        assert credit_liability(pid) == held_by_patient[pid]

    by_credit_account = total(((ln[5], ln[1]), -ln[2]) for ln in credit_lines)
    applied_by_credit = total((a[0], a[2]) for a in apps if a[0] is not None and a[2] > 0)
    refunds_by_credit = total(((r[0], r[2]), r[3]) for r in refunds)
    for c in credits:
        # (c) every cent in exactly one bucket; applied == its positive application rows
        assert c.amount == c.on_hand + c.refund_hold + c.applied_amount + c.refunded_amount + c.removed_amount, c
        assert c.applied_amount == applied_by_credit[c.pk], f"credit {c.pk}: applied cache is off"
        # (d) nothing negative
        for bucket in ("on_hand", "refund_hold", "applied_amount", "refunded_amount", "removed_amount"):
            assert getattr(c, bucket) >= 0, f"credit {c.pk}: {bucket} negative"
        assert c.amount > 0
        # refunds: the hold is what is requested/approved, the refunded bucket is what was issued
        held = refunds_by_credit[(c.pk, Refund.State.REQUESTED)] + refunds_by_credit[(c.pk, Refund.State.APPROVED)]
        assert c.refund_hold == held, f"credit {c.pk}: hold {c.refund_hold} != open refunds {held}"
        assert c.refunded_amount == refunds_by_credit[(c.pk, Refund.State.ISSUED)]
        # (f) locked <=> locked to a DoS of the same patient
        if c.state == Credit.State.LOCKED:
            assert c.locked_encounter is not None, f"credit {c.pk} locked to nothing"
            assert c.locked_encounter.patient_id == c.patient_id, f"credit {c.pk} locked to another patient's DoS"
            assert c.refund_hold == 0
        else:
            assert c.locked_encounter_id is None
        if c.state in Credit.ON_HAND:
            assert c.on_hand + c.refund_hold > 0, f"credit {c.pk} {c.state} with nothing on hand"
        else:
            assert c.on_hand == 0 and c.refund_hold == 0
        # the ledger knows which liability account each credit's cents sit on
        locked_ledger = by_credit_account[(c.pk, Account.CREDITS_LOCKED)]
        available_ledger = by_credit_account[(c.pk, Account.CREDITS_AVAILABLE)]
        expected = (c.on_hand, ZERO) if c.state == Credit.State.LOCKED else (ZERO, c.on_hand + c.refund_hold)
        assert (locked_ledger, available_ledger) == expected, \
            f"credit {c.pk} ({c.state}): ledger locked={locked_ledger} available={available_ledger}"

    # (d) per DoS: caches match their rows, never over-applied, receivable == balance
    applied_by_enc = total((a[1], a[2]) for a in apps)
    receivable_lines = [ln for ln in lines if ln[1] == Account.PATIENT_RECEIVABLE]
    assert all(ln[4] is not None for ln in receivable_lines)
    receivable_by_enc = total((ln[4], ln[2]) for ln in receivable_lines)
    written_off_by_enc = total(write_offs)
    for e in encounters:
        assert e.applied_amount == applied_by_enc[e.pk], f"DoS {e.pk}: applied cache is off"
        assert e.written_off_amount == written_off_by_enc[e.pk], f"DoS {e.pk}: write-off cache is off"
        assert e.applied_amount >= 0 and e.written_off_amount >= 0 and e.estimated_pr >= 0
        assert e.remittance_pr is None or e.remittance_pr >= 0
        assert 0 <= e.applied_amount + e.written_off_amount <= e.pr, f"DoS {e.pk} over-applied"
        assert receivable_by_enc[e.pk] == e.balance, \
            f"DoS {e.pk}: receivable {receivable_by_enc[e.pk]} != balance {e.balance}"

    # (e) payments: never refunded beyond their amount; refunded == refunds issued back to them
    issued_by_payment = total((r[1], r[3]) for r in refunds if r[1] is not None and r[2] == Refund.State.ISSUED)
    for p in payments:
        assert p.amount > 0
        assert 0 <= p.refunded_amount <= p.amount, f"payment {p.pk} over-refunded"
        assert p.refunded_amount == issued_by_payment[p.pk], f"payment {p.pk}: refunded cache is off"

    # (f) per 835 file: the payments booked equal the file's payments (issue 9)
    check_remittances(practice_id)


def check_remittances(practice_id: int | None = None) -> None:
    """Per remittance file, the cash its postings booked (the journal's cash lines of the entries
    named in RemittanceBooking) equals what its booked claims paid (CLP04) minus its posted PLB
    amounts; once none of it is pending, waiting, dismissed or informational with money, that is
    the file's total, the sum of its payments' BPR02. A claim posted twice books its payment twice."""
    from remittances.models import RemittanceAdjustment, RemittanceBooking, RemittanceClaim, RemittanceFile

    files = RemittanceFile.objects.filter(status__in=["received", "posted"])
    if practice_id is not None:
        files = files.filter(practice_id=practice_id)
    for f in files.defer("content"):
        booked = JournalLine.objects.filter(account=Account.CASH, entry__remittance_booking__file=f) \
            .values_list("amount", flat=True)
        booked = sum(booked, ZERO)
        claims = list(RemittanceClaim.objects.filter(file=f).values_list("state", "paid"))
        adjustments = list(RemittanceAdjustment.objects.filter(transaction__file=f).values_list("state", "amount"))
        expected = sum((paid for state, paid in claims if state in ("posted", "payer_credit")), ZERO) \
            - sum((amount for state, amount in adjustments if state == "posted"), ZERO)
        assert booked == expected, f"835 file {f.pk}: cash booked {booked} != claims paid less PLB {expected}"
        settled = all(state in ("posted", "payer_credit") or (state == "informational" and paid == 0)
                      for state, paid in claims) and all(state == "posted" for state, _ in adjustments)
        if settled:
            total = sum(f.transactions.values_list("total_paid", flat=True), ZERO)
            assert booked == total, f"835 file {f.pk}: cash booked {booked} != its payments (BPR02) {total}"
        per_claim = RemittanceBooking.objects.filter(file=f, remittance_claim__isnull=False) \
            .values_list("remittance_claim_id", "kind")
        assert len(per_claim) == len(set(per_claim)), f"835 file {f.pk}: a claim booked twice"


OPERATIONS: list[str] = []  # every rule of the machine; each must succeed at least once per test run


def counted(registry: list):
    """A decorator that marks a rule as an operation the machine counts, listed in `registry`: what
    the rule's service calls did (`ok`, `refused`) lands in the machine's `outcomes` under the
    rule's name, and a step that called nothing (nothing to do) counts as `no call`. Goes right
    under `@rule`. A machine built on this one (tests/adjudication) keeps its own registry."""
    def operation(rule_fn):
        registry.append(rule_fn.__name__)

        @functools.wraps(rule_fn)
        def run(self, **kwargs):
            self.running, self.recorded = rule_fn.__name__, False
            out = rule_fn(self, **kwargs)
            if not self.recorded:
                self.record("no call")
            self.running = None
            return out

        return run

    return operation


operation = counted(OPERATIONS)


COUNTED = (JournalEntry, JournalLine, Credit, Payment, CreditApplication, Refund, WriteOff, ManualCreditRequest,
           CreditImport, CreditImportRow)


def check_duties(practice_id: int) -> None:
    """Separation of duties (issue 9): nothing waiting for a manager exists as money. A waiting or
    rejected manual credit has no credit; an approved one has exactly its credit. A waiting or
    rejected import has no credit behind any line; an imported one has one per line, of its amount."""
    for req in ManualCreditRequest.objects.filter(practice_id=practice_id).select_related("credit"):
        if req.state == ManualCreditRequest.State.APPROVED:
            assert req.credit is not None and (req.credit.amount, req.credit.patient_id, req.credit.source) == \
                (req.amount, req.patient_id, Credit.Source.MANUAL), f"manual credit {req.pk}"
            assert not req.needs_approval or req.decided_by_id not in (None, req.requested_by_id)
        else:
            assert req.credit_id is None, f"manual credit {req.pk} is {req.state} but has a credit"
    for row in CreditImportRow.objects.filter(credit_import__practice_id=practice_id).select_related(
            "credit_import", "credit"):
        if row.credit_import.state == CreditImport.State.IMPORTED:
            assert row.credit is not None and (row.credit.amount, row.credit.patient_id) == (row.amount, row.patient_id)
        else:
            assert row.credit_id is None, f"import {row.credit_import_id} is {row.credit_import.state}: line {row.line}"
    manual = Credit.objects.filter(practice_id=practice_id, source=Credit.Source.MANUAL).count()
    assert manual == ManualCreditRequest.objects.filter(practice_id=practice_id, state="approved").count()


def counts() -> tuple:
    """Row counts of every table a money operation writes, in one round trip."""
    sql = "SELECT " + ", ".join(f"(SELECT count(*) FROM {m._meta.db_table})" for m in COUNTED)
    with connection.cursor() as cur:
        cur.execute(sql)
        return tuple(cur.fetchone())


class LedgerMachine(RuleBasedStateMachine):
    _sequences: list | None = None  # [(sequence, value)] where every example starts
    # (operation, outcome) -> steps, over every example of one test run: class-level because
    # hypothesis builds a new machine per example; `fresh()` resets it
    outcomes: ClassVar[Counter] = Counter()
    running: str | None = None  # the rule being run (see `operation`)

    def __init__(self):
        super().__init__()
        # One rolled-back block per example; tagged as a TestCase block so durable atomics nest.
        self._atomic = transaction.atomic()
        self._atomic._from_testcase = True
        self._atomic.__enter__()
        self.same_start()
        self.practice = PracticeFactory(refund_approval_threshold=Decimal("60.00"),
                                        writeoff_max_amount=Decimal("25.00"), writeoff_min_age_days=0,
                                        manual_credit_approval_limit=Decimal("150.00"),
                                        max_operation_amount=Decimal("250.00"))
        self.clerk = MembershipFactory(practice=self.practice, role=Membership.Role.BILLING).user
        self.manager = MembershipFactory(practice=self.practice, role=Membership.Role.MANAGER).user
        self.manager2 = MembershipFactory(practice=self.practice, role=Membership.Role.MANAGER).user
        self.payer = PayerFactory(practice=self.practice)
        self.patients = [PatientFactory(practice=self.practice) for _ in range(3)]
        self.day = 0
        self.look()

    @classmethod
    def fresh(cls):
        """Call at the start of a test that runs the machine: forget the previous test's counts
        and starting ids."""
        cls._sequences = None
        cls.remittance_files_posted = 0
        cls.outcomes = Counter()

    @classmethod
    def never_succeeded(cls) -> str:
        """The operations that did not succeed once since `fresh()`, with what they did instead
        (empty when every operation succeeded): a rule that is always refused, or whose
        precondition never holds, tests nothing."""
        missing = [op for op in OPERATIONS if not cls.outcomes[(op, "ok")]]
        if not missing:
            return ""
        seen = ", ".join(f"{op}: " + (", ".join(f"{n} {outcome}" for (o, outcome), n in sorted(cls.outcomes.items())
                                                if o == op) or "never run") for op in missing)
        return f"never succeeded: {seen}"

    def same_start(self):
        """Every example starts from the same ids and the same fake names: a rolled-back example
        does not roll back its sequences, and an id decides the order of a set of rows and the
        text of a claim number, so hypothesis would see one choice give two outcomes (a flaky
        strategy). setval is not transactional, so it holds after the previous rollback."""
        with connection.cursor() as cur:
            if LedgerMachine._sequences is None:
                cur.execute("SELECT format('%I.%I', schemaname, sequencename), COALESCE(last_value, 0) + 1000"
                            " FROM pg_sequences WHERE schemaname = current_schema()")
                LedgerMachine._sequences = cur.fetchall()
            for name, value in LedgerMachine._sequences:
                cur.execute("SELECT setval(%s, %s)", [name, value])
        factory.random.reseed_random(20261202)

    def look(self):
        """What exists now; the rules' preconditions read this instead of querying each step."""
        checks = {
            "encounter": ("ledger_encounter", "true"),
            "claim": ("ledger_claim", "true"),
            "resubmittable": ("ledger_claim", "state IN ('paid', 'denied', 'forwarded', 'pending')"),
            "locked": ("credits_credit", "state = 'locked'"),
            "on_hand": ("credits_credit", "state IN ('available', 'locked')"),
            "available": ("credits_credit", "state = 'available' AND on_hand > 0"),
            "requested": ("credits_refund", "state = 'requested'"),
            "approved": ("credits_refund", "state = 'approved'"),
            "writeoff": ("credits_writeoff", "state = 'active'"),
            "pending_manual": ("credits_manualcreditrequest", "state = 'pending'"),
            "pending_import": ("credits_creditimport", "state = 'pending'"),
        }
        sql = "SELECT " + ", ".join(f"EXISTS (SELECT 1 FROM {table} WHERE practice_id = %s AND {cond})"
                                    for table, cond in checks.values())
        with connection.cursor() as cur:
            cur.execute(sql, [self.practice.pk] * len(checks))
            self.has = dict(zip(checks, cur.fetchone()))

    def teardown(self):
        transaction.set_rollback(True)
        self._atomic.__exit__(None, None, None)

    # --- helpers ---------------------------------------------------------------------------------

    def record(self, outcome: str, name: str | None = None) -> None:
        """Count one outcome of the rule being run (or under `name`, for a follow-up call)."""
        assert self.running, "a rule that calls services is marked @operation"
        type(self).outcomes[(name or self.running, outcome)] += 1
        self.recorded = self.recorded or name is None

    def attempt(self, fn, *, count_as: str | None = None, **kwargs):
        """Run one service call and count it; a refusal by the rules must have written nothing."""
        before = counts()
        try:
            out = fn(**kwargs)
        except SettleError as exc:
            assert exc.message
            assert counts() == before, f"{fn.__name__} refused ({exc.message}) but wrote rows"
            self.record("refused", count_as)
            return None
        self.record("ok", count_as)
        return out

    def pick(self, data, qs):
        ids = list(qs.order_by("pk").values_list("pk", flat=True))
        return data.draw(st.sampled_from(ids)) if ids else None

    def assert_released(self, encounter_ids):
        """Rule 4: once a DoS is balanced (no balance, no open claim) the service that balanced it
        released what was locked to it."""
        for enc in Encounter.objects.filter(pk__in=encounter_ids):
            if enc.balance == 0 and not enc.claims.filter(state__in=Claim.OPEN).exists():
                assert not enc.locked_credits.filter(state=Credit.State.LOCKED).exists(), \
                    f"DoS {enc.pk} is balanced but keeps locked credits"

    # ordered: a draw from rows in the order the table happens to return them (which moves as rows
    # are updated) would give hypothesis two outcomes for one choice (a flaky strategy)
    def encounters(self):
        return Encounter.objects.filter(practice=self.practice).order_by("pk")

    def credits_on_hand(self):
        return Credit.objects.filter(practice=self.practice, state__in=Credit.ON_HAND).order_by("pk")

    # --- rules --------------------------------------------------------------------------------------

    @initialize()
    def starting_books(self):
        """Every patient starts with a visit billed to the payer and a self-pay visit."""
        for patient in self.patients:
            self.day += 1
            enc = ledger_services.encounter_create(patient_id=patient.pk, date_of_service=date(2025, 1, 1)
                                                   + timedelta(days=self.day), charge="200.00", estimated_pr="40.00",
                                                   actor=self.clerk)
            ledger_services.claim_submit(encounter_id=enc.pk, payer_id=self.payer.pk, claim_number=f"C{enc.pk}",
                                         actor=self.clerk)
            self.day += 1
            ledger_services.encounter_create(patient_id=patient.pk, date_of_service=date(2025, 1, 1)
                                             + timedelta(days=self.day), charge="80.00", estimated_pr="80.00",
                                             actor=self.clerk)
        self.something_for_every_rule()

    def something_for_every_rule(self):
        """Something waiting for each rule that works on what others made, from the first step: in
        40 short examples a rule (four eyes on a manual credit, on an import, approving a refund)
        would otherwise often never find its work, and the run would prove nothing about it. The
        first patient, the one hypothesis draws most, has a credit the nightly run can apply."""
        p0, p1, p2 = self.patients
        svc, clerk = credit_services, self.clerk
        c0 = svc.manual_credit_add(patient_id=p0.pk, amount=Decimal("40.00"), reason="Old system", actor=clerk)
        svc.refund_request(credit_id=c0.pk, amount=Decimal("20.00"), method="check", actor=clerk,
                           reason="Patient asked")  # approved, waits for the check number; 20.00 left to apply
        claim_dos, self_pay = Encounter.objects.filter(patient=p1).order_by("pk")
        svc.manual_credit_add(patient_id=p1.pk, amount=Decimal("200.00"), reason="Old system", actor=clerk)  # waits
        svc.credit_import_create(practice_id=self.practice.pk, data=f"account_number,amount,note\n{p1.account_number},"
                                 "160.00,Carried over\n".encode(), filename="start.csv", actor=clerk)  # waits
        svc.payment_record(patient_id=p1.pk, amount=Decimal("30.00"), channel="cash", encounter_id=claim_dos.pk,
                           actor=clerk)  # held: locked to a DoS whose claim waits
        svc.writeoff_create(encounter_id=self_pay.pk, amount=Decimal("10.00"), reason_code="small_balance",
                            reason="Small balance", actor=self.manager)
        (c2,) = svc.payment_record(patient_id=p2.pk, amount=Decimal("200.00"), channel="card_reader",
                                   card_token="tok_visa", actor=clerk).credits  # pays the 80.00 owed first
        svc.refund_request(credit_id=c2.pk, amount=Decimal("70.00"), actor=clerk, reason="Patient asked")  # waits

    @rule(data=st.data(), claim=st.booleans(), charge=st.integers(0, 40000), est=st.integers(0, 100))
    @operation
    def new_visit(self, data, claim, charge, est):
        patient = data.draw(st.sampled_from(self.patients))
        self.day += 1
        charge_m = money(charge)
        enc = ledger_services.encounter_create(patient_id=patient.pk, date_of_service=date(2025, 1, 1)
                                               + timedelta(days=self.day), charge=charge_m,
                                               estimated_pr=money(charge * est // 100), actor=self.clerk)
        if claim:
            ledger_services.claim_submit(encounter_id=enc.pk, payer_id=self.payer.pk, claim_number=f"C{enc.pk}",
                                         actor=self.clerk)
        self.record("ok")

    @rule(data=st.data(), cents=st.integers(1, 30000), toward_dos=st.booleans(),
          channel=st.sampled_from(["card_reader", "portal", "cash", "check"]))
    @operation
    def pay(self, data, cents, toward_dos, channel):
        patient = data.draw(st.sampled_from(self.patients))
        enc_id = self.pick(data, self.encounters().filter(patient=patient)) if toward_dos else None
        result = self.attempt(credit_services.payment_record, patient_id=patient.pk, amount=money(cents),
                              channel=channel, encounter_id=enc_id, card_token="tok_visa",
                              check_number="77" if channel == "check" else "", actor=self.clerk, reason="Payment")
        if result is not None:
            assert result.payment.amount == money(cents)
            assert sum((a.amount for a in result.applications), ZERO) + sum((c.amount for c in result.credits),
                                                                            ZERO) == money(cents)
            self.assert_released([a.encounter_id for a in result.applications])

    @precondition(lambda self: self.has["claim"])
    @rule(data=st.data(), outcome=st.sampled_from(["paid", "paid", "denied", "pending", "forwarded"]),
          pr_pct=st.integers(0, 100), paid_pct=st.integers(0, 100))
    @operation
    def remit(self, data, outcome, pr_pct, paid_pct):
        """A remittance: a first decision, or a correction that lowers or raises the PR."""
        claim = Claim.objects.get(pk=self.pick(data, Claim.objects.filter(practice=self.practice)))
        charge = claim.encounter.charge
        pr = None if outcome == "pending" else (charge * pr_pct / 100).quantize(CENTS)
        paid = ((charge - pr) * paid_pct / 100).quantize(CENTS) if outcome == "paid" else ZERO
        result = self.attempt(credit_services.claim_record_result, claim_id=claim.pk, outcome=outcome,
                              paid_amount=paid, adjustment_amount=ZERO, patient_responsibility=pr, actor=self.clerk,
                              reason="835 posted")
        if result is not None:
            self.assert_released([claim.encounter_id])
            # rule 3: an overpayment is held (locked to the DoS) while the DoS still has a claim open
            still_open = Claim.objects.filter(encounter_id=claim.encounter_id, state__in=Claim.OPEN).exists()
            for c in result.credits_created:
                c.refresh_from_db()
                assert c.state == (Credit.State.LOCKED if still_open else Credit.State.AVAILABLE), \
                    f"overpayment credit {c.pk} is {c.state}; claim open: {still_open}"

    @precondition(lambda self: self.has["resubmittable"])
    @rule(data=st.data())
    @operation
    def resubmit(self, data):
        claim_id = self.pick(data, Claim.objects.filter(practice=self.practice).exclude(state__in=[
            Claim.State.SUBMITTED, Claim.State.RESUBMITTED, Claim.State.REVERSED]))
        self.attempt(credit_services.claim_resubmit, claim_id=claim_id, actor=self.clerk, reason="Corrected claim")

    @rule(data=st.data(), respect=st.booleans())
    @operation
    def nightly(self, data, respect):
        patient = data.draw(st.sampled_from(self.patients))
        patient.refresh_from_db()
        before = {c.pk: c.locked_encounter_id for c in Credit.objects.filter(patient=patient)}
        last_app = CreditApplication.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        result = credit_services.credits_apply(patient_id=patient.pk, actor=self.clerk,
                                                           reason="Nightly application", respect_settings=respect)
        new_apps = list(CreditApplication.objects.filter(pk__gt=last_app).select_related("credit", "encounter"))
        assert result.total == sum((a.amount for a in new_apps), ZERO)
        self.record("ok" if result.total or result.released else "nothing to apply")
        if respect and patient.exclude_from_auto_apply:  # example G: the run leaves this patient alone
            assert result.total == 0 and result.released == 0
            return
        # rule 6: a credit locked to one DoS never pays another, unless that DoS was settled and the
        # credit released during the run
        for a in new_apps:
            assert a.amount > 0 and a.credit_id is not None and a.encounter.patient_id == patient.pk
            locked_to = before[a.credit_id]
            if locked_to is not None and locked_to != a.encounter_id:
                settled = Encounter.objects.get(pk=locked_to)
                assert settled.balance == 0 and not settled.claims.filter(state__in=Claim.OPEN).exists(), \
                    f"credit {a.credit_id} locked to DoS {locked_to} paid DoS {a.encounter_id}"
        # rule 6 post-condition: no payable DoS with a balance next to credits that could pay it
        for enc in Encounter.objects.filter(patient=patient):
            if enc.balance > 0 and not enc.claims.filter(state__in=Claim.OPEN).exists():
                usable = Credit.objects.filter(Q(state=Credit.State.AVAILABLE) | Q(locked_encounter=enc),
                                               patient=patient, on_hand__gt=0)
                assert not usable.exists(), f"DoS {enc.pk} owes {enc.balance} while usable credits are left"
            # rule 4: a balanced DoS keeps no locked credits after the run
            if enc.balance == 0 and not enc.claims.filter(state__in=Claim.OPEN).exists():
                assert not enc.locked_credits.filter(state=Credit.State.LOCKED).exists()
        # running it again applies nothing (example H)
        again = credit_services.credits_apply(patient_id=patient.pk, actor=self.clerk,
                                                          reason="Nightly application", respect_settings=respect)
        assert again.total == 0

    @rule(data=st.data(), excluded=st.booleans())
    @operation
    def exclude_from_auto_apply(self, data, excluded):
        patient = data.draw(st.sampled_from(self.patients))
        ledger_services.patient_set_auto_apply(patient_id=patient.pk, excluded=excluded, actor=self.clerk,
                                               reason="Patient asked for a refund instead")
        self.record("ok")

    @precondition(lambda self: self.has["locked"])
    @rule(data=st.data(), by_patient=st.booleans())
    @operation
    def unlock(self, data, by_patient):
        locked = Credit.objects.filter(practice=self.practice, state=Credit.State.LOCKED)
        if by_patient:
            pid = data.draw(st.sampled_from(sorted(set(locked.values_list("patient_id", flat=True)))))
            expected = locked.filter(patient_id=pid).count()
            n = self.attempt(credit_services.credits_unlock, patient_ids=[pid], actor=self.clerk,
                             reason="Payer will never answer")
        else:
            cid = self.pick(data, locked)
            expected = 1
            n = self.attempt(credit_services.credits_unlock, credit_ids=[cid], actor=self.clerk,
                             reason="Payer will never answer")
        assert n == expected

    @precondition(lambda self: self.has["on_hand"])
    @rule(data=st.data(), to_pool=st.booleans())
    @operation
    def move(self, data, to_pool):
        c = Credit.objects.get(pk=self.pick(data, self.credits_on_hand()))
        others = self.encounters().filter(patient_id=c.patient_id).exclude(pk=c.locked_encounter_id or 0)
        target = None if to_pool and c.state == Credit.State.LOCKED else self.pick(data, others)
        self.attempt(credit_services.credit_move, credit_id=c.pk, to_encounter_id=target, actor=self.clerk,
                     reason="Patient asked to move it")

    def credited_by_hand(self, patient_id) -> Decimal:
        """What the patient was credited by hand so far (all of it within the window here)."""
        manual = sum(ManualCreditRequest.objects.filter(patient_id=patient_id, state__in=["pending", "approved"])
                     .values_list("amount", flat=True), ZERO)
        imported = sum(CreditImportRow.objects.filter(patient_id=patient_id,
                                                      credit_import__state__in=["pending", "imported"])
                       .values_list("amount", flat=True), ZERO)
        return manual + imported

    @rule(data=st.data(), cents=st.integers(1, 30000), locked=st.booleans())
    @operation
    def add_manual(self, data, cents, locked):
        patient = data.draw(st.sampled_from(self.patients))
        enc_id = self.pick(data, self.encounters().filter(patient=patient)) if locked else None
        before = self.credited_by_hand(patient.pk)
        out = self.attempt(credit_services.manual_credit_add, patient_id=patient.pk, amount=money(cents),
                           reason="Carried over from the old system", encounter_id=enc_id, actor=self.clerk)
        if out is None:
            assert money(cents) > self.practice.max_operation_amount or enc_id is not None
            return
        # above the practice's limit (with what was credited by hand before): it waits, nothing is credited
        waits = before + money(cents) > self.practice.manual_credit_approval_limit
        assert isinstance(out, ManualCreditRequest if waits else Credit), (before, cents, out)
        if waits:
            assert out.state == "pending" and out.credit_id is None

    @precondition(lambda self: self.has["pending_manual"])
    @rule(data=st.data(), who=DECIDERS, approve=st.booleans())
    @operation
    def manual_credit_decide(self, data, who, approve):
        req = ManualCreditRequest.objects.get(pk=self.pick(data, ManualCreditRequest.objects.filter(
            practice=self.practice, state="pending")))
        actor = getattr(self, who)
        if approve:
            done = self.attempt(credit_services.manual_credit_approve, request_id=req.pk, actor=actor, reason="ok")
        else:
            done = self.attempt(credit_services.manual_credit_reject, request_id=req.pk, actor=actor,
                                reason="No proof of the old balance")
        assert (done is not None) == (who != "clerk" and actor.pk != req.requested_by_id)  # four eyes
        if done is not None:
            assert done.state == ("approved" if approve else "rejected")
            assert (done.credit is not None) == approve

    @rule(data=st.data(), amounts=st.lists(st.integers(1, 20000), min_size=1, max_size=3), bad=st.booleans(),
          by_manager=st.booleans())
    @operation
    def import_csv(self, data, amounts, bad, by_manager):
        """A small CSV import: with a bad line it writes nothing; above the limit it waits whole."""
        rows = [(data.draw(st.sampled_from(self.patients)), money(c)) for c in amounts]
        lines = [f"{p.account_number},{a},Carried over from the old system" for p, a in rows]
        if bad:
            lines.insert(data.draw(st.integers(0, len(lines))), "NOBODY,10.00,unknown account")
        self.day += 1  # a different file each time (the same bytes twice is a duplicate): blank lines at the end
        body = ("account_number,amount,note\n" + "\n".join(lines) + "\n" + "\n" * self.day).encode()
        before = {p.pk: self.credited_by_hand(p.pk) for p, _ in rows}
        result = self.attempt(credit_services.credit_import_create, practice_id=self.practice.pk, data=body,
                              filename=f"old-{self.day}.csv", actor=self.manager if by_manager else self.clerk,
                              reason="Conversion")
        if bad:
            assert result is None
            return
        assert result is not None
        per_patient = defaultdict(lambda: ZERO)
        for p, a in rows:
            per_patient[p.pk] += a
        limit = self.practice.manual_credit_approval_limit
        waits = sum(per_patient.values(), ZERO) > limit or any(before[pid] + v > limit
                                                                for pid, v in per_patient.items())
        assert result.pending == waits
        assert result.credits.count() == (0 if waits else len(rows))

    @precondition(lambda self: self.has["pending_import"])
    @rule(data=st.data(), who=DECIDERS, approve=st.booleans())
    @operation
    def import_decide(self, data, who, approve):
        batch = CreditImport.objects.get(pk=self.pick(data, CreditImport.objects.filter(
            practice=self.practice, state="pending")))
        actor = getattr(self, who)
        fn = credit_services.credit_import_approve if approve else credit_services.credit_import_reject
        done = self.attempt(fn, import_id=batch.pk, actor=actor, reason="Checked against the old system")
        assert (done is not None) == (who != "clerk" and actor.pk != batch.created_by_id)  # four eyes
        if done is not None:
            assert done.state == ("imported" if approve else "rejected")

    @precondition(lambda self: self.has["on_hand"])
    @rule(data=st.data(), pct=PERCENT)
    @operation
    def remove(self, data, pct):
        c = Credit.objects.get(pk=self.pick(data, self.credits_on_hand()))
        amount = max(CENTS, (c.on_hand * pct / 100).quantize(CENTS))
        self.attempt(credit_services.credit_remove, credit_id=c.pk, amount=amount, actor=self.clerk,
                     reason="Refunded outside the system")

    @precondition(lambda self: self.has["available"])
    @rule(data=st.data(), pct=PERCENT, method=st.sampled_from([None, "check", "original_payment"]),
          by_manager=st.booleans(), then=st.sampled_from(["wait", "issue", "reject"]), any_credit=st.booleans())
    @operation
    def refund_request(self, data, pct, method, by_manager, then, any_credit):
        """Ask for a refund; sometimes carry it through (approval by another manager, issue) or reject it."""
        candidates = self.credits_on_hand() if any_credit else \
            Credit.objects.filter(practice=self.practice, state=Credit.State.AVAILABLE, on_hand__gt=0)
        c = Credit.objects.get(pk=self.pick(data, candidates))
        amount = max(CENTS, (c.on_hand * pct / 100).quantize(CENTS))
        requester = self.manager if by_manager else self.clerk
        # the patient's refunds so far count against the threshold (splitting does not escape it)
        window = sum(Refund.objects.filter(patient_id=c.patient_id, state__in=["requested", "approved", "issued"])
                     .values_list("amount", flat=True), ZERO)
        reference = f"CHK-AT-ONCE-{c.pk}" if then == "issue" and method == "check" else ""
        r = self.attempt(credit_services.refund_request, credit_id=c.pk, amount=amount, method=method,
                         actor=requester, reason="Patient asked for a refund", reference=reference)
        if r is None:
            return
        assert r.needs_approval == (window + amount > self.practice.refund_approval_threshold)
        # the service decides: waits for a manager, or approved and issued at once (to the card, or by
        # check with its number), or approved and waiting for the check number
        if r.needs_approval:
            assert r.state == Refund.State.REQUESTED
        elif r.method == Refund.Method.ORIGINAL_PAYMENT or reference:
            assert (r.state, r.issue_error) == (Refund.State.ISSUED, "")
            return
        else:
            assert r.state == Refund.State.APPROVED
        if then == "reject":
            credit_services.refund_reject(refund_id=r.pk, actor=self.manager2, reason="Patient keeps the credit")
        elif then == "issue":
            if r.needs_approval:
                credit_services.refund_approve(refund_id=r.pk, actor=self.manager2, reason="ok")
            r = self.attempt(credit_services.refund_issue, count_as="refund_request, then issue", refund_id=r.pk,
                             actor=self.clerk, reference=f"CHK{r.pk}")
            assert r is None or r.state == Refund.State.ISSUED

    @precondition(lambda self: self.has["requested"])
    @rule(data=st.data())
    @operation
    def refund_approve(self, data):
        r = Refund.objects.get(pk=self.pick(data, Refund.objects.filter(practice=self.practice, state="requested")))
        approver = self.manager2 if r.requested_by_id == self.manager.pk else self.manager
        r = credit_services.refund_approve(refund_id=r.pk, actor=approver, reason="ok")
        assert r.state == Refund.State.APPROVED and r.decided_by_id != r.requested_by_id
        self.record("ok")

    @precondition(lambda self: self.has["approved"])
    @rule(data=st.data())
    @operation
    def refund_issue(self, data):
        r = Refund.objects.get(pk=self.pick(data, Refund.objects.filter(practice=self.practice, state="approved")))
        self.attempt(credit_services.refund_issue, refund_id=r.pk, actor=self.clerk, reference=f"CHK{r.pk}")

    @precondition(lambda self: self.has["requested"] or self.has["approved"])
    @rule(data=st.data(), who=DECIDERS)
    @operation
    def refund_reject(self, data, who):
        r = Refund.objects.get(pk=self.pick(data, Refund.objects.filter(practice=self.practice,
                                                                        state__in=["requested", "approved"])))
        actor = getattr(self, who)
        done = self.attempt(credit_services.refund_reject, refund_id=r.pk, actor=actor, reason="Patient keeps it")
        if r.needs_approval:  # a manager other than the requester decides (rule 8)
            assert (done is not None) == (who != "clerk" and actor.pk != r.requested_by_id)
        else:
            assert done is not None

    @precondition(lambda self: self.has["encounter"])
    @rule(data=st.data(), pct=PERCENT, manager=st.booleans(), owing=st.booleans())
    @operation
    def write_off(self, data, pct, manager, owing):
        candidates = [e.pk for e in self.encounters() if e.balance > 0
                      and not e.claims.filter(state__in=Claim.OPEN).exists()] if owing else []
        enc = Encounter.objects.get(pk=data.draw(st.sampled_from(candidates)) if candidates
                                    else self.pick(data, self.encounters()))
        amount = max(CENTS, (enc.balance * pct / 100).quantize(CENTS))
        wo = self.attempt(credit_services.writeoff_create, encounter_id=enc.pk, amount=amount,
                          reason_code="small_balance", reason="Small balance",
                          actor=self.manager if manager else self.clerk)
        if wo is not None:
            self.assert_released([enc.pk])

    @precondition(lambda self: self.has["writeoff"])
    @rule(data=st.data())
    @operation
    def undo_write_off(self, data):
        wo_id = self.pick(data, WriteOff.objects.filter(practice=self.practice, state="active"))
        credit_services.writeoff_undo(writeoff_id=wo_id, actor=self.clerk, reason="Posted in error")
        self.record("ok")

    @rule(data=st.data(), channel=st.sampled_from(["card_reader", "cash", "check"]), by_hand=st.booleans())
    @operation
    def checkout(self, data, channel, by_hand):
        patient = data.draw(st.sampled_from(self.patients))
        payable = [e for e in Encounter.objects.filter(patient=patient).order_by("pk")
                   if e.balance > 0 and not e.claims.filter(state__in=Claim.OPEN).exists()]
        if not payable:
            return
        chosen = data.draw(st.lists(st.sampled_from([e.pk for e in payable]), min_size=1, unique=True))
        picks = credit_services.credits_preselect(patient_id=patient.pk, encounter_ids=chosen)
        if by_hand or not picks:  # staff change the choice: some or all of one usable credit
            usable = Credit.objects.filter(Q(state=Credit.State.AVAILABLE) | Q(locked_encounter_id__in=chosen),
                                           patient=patient, on_hand__gt=0)
            cid = self.pick(data, usable)
            share = data.draw(PERCENT)
            picks = {} if cid is None else \
                {cid: max(CENTS, (Credit.objects.get(pk=cid).on_hand * share / 100).quantize(CENTS))}
        owed = sum((e.balance for e in payable if e.pk in chosen), ZERO)
        res = self.attempt(credit_services.payment_checkout, patient_id=patient.pk, encounter_ids=chosen,
                           credit_amounts=picks, channel=channel, card_token="tok_visa",
                           check_number="501" if channel == "check" else "", actor=self.clerk)
        if res is not None:
            assert res.owed == owed and res.charged == owed - sum(picks.values(), ZERO)
            for e in Encounter.objects.filter(pk__in=chosen):
                assert e.balance == 0
            self.assert_released(chosen)

    remittance_files_posted = 0  # how many 835 files the rule below posted (tests/remittances/test_remittance_invariant.py)

    @precondition(lambda self: self.has["claim"])
    @rule(data=st.data(), status=st.sampled_from(["1", "1", "2", "4", "19", "22"]), pr_pct=st.integers(0, 100),
          paid_pct=st.integers(0, 100), plb=st.sampled_from([None, "L6", "WO"]))
    @operation
    def remittance_835(self, data, status, pr_pct, paid_pct, plb):
        """A payer's 835 for one to three of the practice's claims (a reversal repeats what the claim
        was paid, negated), sometimes with a PLB adjustment; received and posted like an upload."""
        from remittances.receive import remittance_file_import
        from remittances.x12.generator import ClaimSpec, generate_835

        ids = list(Claim.objects.filter(practice=self.practice).order_by("pk").values_list("pk", flat=True))
        # ordered: the same draws must give the same file (hypothesis replays them)
        picked = list(Claim.objects.filter(pk__in=data.draw(st.lists(st.sampled_from(ids), min_size=1, max_size=3,
                                                                     unique=True))).order_by("pk"))
        specs = []
        for c in picked:
            if status == "22":
                pr = c.patient_responsibility or ZERO
                specs.append(ClaimSpec(c.claim_number, status="22", charge=-c.billed_amount, paid=-c.paid_amount,
                                       patient_responsibility=[("2", -pr)] if pr else []))
                continue
            pr = (c.billed_amount * pr_pct / 100).quantize(CENTS)
            paid = ZERO if status == "4" else ((c.billed_amount - pr) * paid_pct / 100).quantize(CENTS)
            specs.append(ClaimSpec(c.claim_number, status=status, charge=c.billed_amount, paid=paid,
                                   patient_responsibility=[("2", pr)] if pr else []))
        self.icn = getattr(self, "icn", 0) + 1
        adjustments = {None: None, "L6": [("L6", "INTEREST", "-1.25")],
                       "WO": [("WO", picked[0].payer_claim_number or "PCN", "5.00")]}[plb]
        done = remittance_file_import(practice_id=self.practice.pk, actor=self.clerk, filename=f"era{self.icn}.835",
                                 data=generate_835(specs=specs, interchange_control_number=self.icn, plb=adjustments,
                                                   check_number=f"EFT{self.icn}"))
        assert done.received.status == "posted", done.received.errors
        type(self).remittance_files_posted += 1
        self.record("ok")

    @invariant()
    def processor_matches_the_books(self):
        """What the card processor holds equals the card payments settle recorded, less the refunds
        that went back to them: no charge without a payment, no refund twice."""
        at_processor = sum((c.amount - c.refunded for c in SandboxCharge.objects.all()), ZERO)
        recorded = sum((p.amount - p.refunded_amount for p in Payment.objects.filter(
            practice=self.practice, channel__in=Payment.SYSTEM_CHANNELS)), ZERO)
        assert at_processor == recorded

    @invariant()
    def money_invariants(self):
        check_invariants(self.practice.pk)
        check_duties(self.practice.pk)
        self.look()


@pytest.mark.django_db
def test_random_operations_keep_every_invariant():
    LedgerMachine.fresh()
    run_state_machine_as_test(
        LedgerMachine,
        settings=hsettings(max_examples=40, stateful_step_count=25, deadline=None, print_blob=False, derandomize=True,
                           suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]),
    )
    # the run proves something only if every operation did its work at least once
    rules = {r.function.__name__ for r in LedgerMachine.setup_state().rules}
    assert rules == set(OPERATIONS), f"rules not marked @operation: {rules - set(OPERATIONS)}"
    assert not LedgerMachine.never_succeeded(), (LedgerMachine.never_succeeded(), dict(LedgerMachine.outcomes))


@pytest.mark.django_db
def test_overpayment_from_a_forwarded_claim_is_held_for_the_dos(world):
    """Rule 3: a correction that lowers the PR while the claim goes on to another payer (835
    status 19) makes an overpayment that stays locked to the DoS until that payer answers."""
    pat = world.patient()
    enc, claim = world.visit(pat, date(2026, 4, 10))
    world.remit(claim, pr="120.00", paid="80.00")
    world.pay(pat, "120.00", encounter=enc, channel="portal")
    result = world.remit(claim, pr="70.00", paid="0.00", adjust="0.00", outcome="forwarded",
                         reason="Processed as primary, forwarded to secondary")
    (over,) = result.credits_created
    over.refresh_from_db()
    assert (over.state, over.locked_encounter_id, over.on_hand) == (Credit.State.LOCKED, enc.pk, Decimal("50.00"))
    check_invariants(world.practice.pk)
    # the secondary pays: the DoS is settled, the credit becomes available
    claim.refresh_from_db()
    world.remit(claim, pr="70.00", paid="0.00", adjust="0.00", reason="Secondary paid")
    over.refresh_from_db()
    assert over.state == Credit.State.AVAILABLE
    check_invariants(world.practice.pk)
