"""Races on PostgreSQL with real threads (each with its own connection): two staff members, the
nightly run and refunds all reaching for the same credit at the same moment never use a cent
twice (DOMAIN rule 6, example H). Every outcome is checked to the cent."""

import random
import threading
import time
from datetime import date
from decimal import Decimal as D

import pytest
from django.db import connection
from django.db.models import Sum

from credits import services as credit_services
from credits.models import Credit, CreditApplication, Refund, WriteOff
from credits.selectors import credit_liability
from ledger.errors import RuleViolation, SettleError
from ledger.models import Claim, Encounter, Payment, SandboxCharge
from tests.credits.test_invariants import check_invariants

pytestmark = pytest.mark.django_db(transaction=True)

ROUNDS = 4  # each race is run a few times on fresh patients: more chances to really overlap


def race(*fns, timeout=90):
    """Start every function at the same moment, each in its own thread and connection.
    Returns [("ok", result) | ("refused", SettleError)] in order; anything else fails the test."""
    barrier = threading.Barrier(len(fns))
    results = [None] * len(fns)

    def run(i, fn):
        try:
            barrier.wait(timeout=timeout)
            results[i] = ("ok", fn())
        except SettleError as exc:
            results[i] = ("refused", exc)
        except BaseException as exc:  # deadlocks, integrity errors, bugs: all fail the test
            results[i] = ("crash", exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, fn), daemon=True) for i, fn in enumerate(fns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), "a thread hung (lock wait?)"
    crashes = [r[1] for r in results if r[0] == "crash"]
    assert not crashes, f"threads crashed: {crashes!r}"
    return results


def outcomes(results):
    return sorted(r[0] for r in results)


def self_pay_visit(world, pat, dos, pr):
    enc, _ = world.visit(pat, dos, charge="300.00", estimated_pr=pr, claim=False)
    return enc


def refreshed(obj):
    obj.refresh_from_db()
    return obj


# --- (a) the same credit applied twice at once ---------------------------------------------------------

@pytest.mark.parametrize("round_", range(ROUNDS))
def test_the_same_credit_at_two_checkouts_is_used_once(world, round_):
    pat = world.patient()
    jan = self_pay_visit(world, pat, date(2026, 1, 10), "50.00")
    feb = self_pay_visit(world, pat, date(2026, 2, 10), "50.00")
    c = credit_services.manual_credit_add(patient_id=pat.pk, amount="50.00", reason="prepaid", actor=world.clerk)

    def checkout(enc):
        return lambda: credit_services.payment_checkout(patient_id=pat.pk, encounter_ids=[enc.pk],
                                                        credit_amounts={c.pk: "50.00"}, channel="cash",
                                                        actor=world.clerk)

    results = race(checkout(jan), checkout(feb))
    assert outcomes(results) == ["ok", "refused"]
    (refusal,) = [r[1] for r in results if r[0] == "refused"]
    assert isinstance(refusal, RuleViolation) and f"credit {c.pk} has 0.00 on hand" in refusal.message
    paid = jan if results[0][0] == "ok" else feb
    unpaid = feb if paid is jan else jan
    assert (refreshed(paid).balance, refreshed(unpaid).balance) == (D("0.00"), D("50.00"))
    c.refresh_from_db()
    assert (c.state, c.on_hand, c.applied_amount) == ("applied", D("0.00"), D("50.00"))
    assert list(CreditApplication.objects.filter(credit=c).values_list("encounter_id", "amount")) == \
        [(paid.pk, D("50.00"))]
    assert not Payment.objects.filter(patient=pat).exists()  # nothing was left to charge
    assert credit_liability(pat.pk) == 0
    check_invariants(world.practice.pk)


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_two_applications_for_one_patient_at_once_apply_once(world, round_):
    pat = world.patient()
    jan = self_pay_visit(world, pat, date(2026, 1, 10), "30.00")
    feb = self_pay_visit(world, pat, date(2026, 2, 10), "45.00")
    old = credit_services.manual_credit_add(patient_id=pat.pk, amount="60.00", reason="old", actor=world.clerk)
    new = credit_services.manual_credit_add(patient_id=pat.pk, amount="40.00", reason="new", actor=world.clerk)

    def apply():
        return credit_services.credits_apply(patient_id=pat.pk, actor=world.clerk, reason="Nightly")

    results = race(apply, apply)
    assert outcomes(results) == ["ok", "ok"]
    assert sorted(r[1].total for r in results) == [D("0"), D("75.00")]
    assert (refreshed(jan).balance, refreshed(feb).balance) == (D("0.00"), D("0.00"))
    # oldest credit first: 60 = 30 (Jan) + 30 (Feb), then 15 of the newer one
    assert (refreshed(old).state, old.on_hand, old.applied_amount) == ("applied", D("0.00"), D("60.00"))
    assert (refreshed(new).state, new.on_hand, new.applied_amount) == ("available", D("25.00"), D("15.00"))
    assert CreditApplication.objects.filter(patient=pat).aggregate(s=Sum("amount"))["s"] == D("75.00")
    assert credit_liability(pat.pk) == D("25.00")
    check_invariants(world.practice.pk)


# --- (b) a refund racing an application of the same credit ---------------------------------------

@pytest.mark.parametrize("applier", ["checkout", "nightly"])
@pytest.mark.parametrize("round_", range(ROUNDS))
def test_refund_request_racing_an_application_never_spends_beyond_on_hand(world, applier, round_):
    pat = world.patient()
    enc = self_pay_visit(world, pat, date(2026, 3, 3), "60.00")
    (c,) = world.pay(pat, "80.00", channel="portal").credits  # pays the 60.00 owed first: 20.00 is credit
    assert (refreshed(c).on_hand, refreshed(enc).balance) == (D("20.00"), D("0.00"))
    # a second DoS owes 60.00, and a 60.00 credit is wanted by both a refund and an application
    mar = self_pay_visit(world, pat, date(2026, 3, 10), "60.00")
    top = credit_services.manual_credit_add(patient_id=pat.pk, amount="60.00", reason="old system", actor=world.clerk)

    def refund():
        return credit_services.refund_request(credit_id=top.pk, amount="60.00", actor=world.clerk,
                                              reason="Patient asked for it back")

    def apply():
        if applier == "checkout":
            return credit_services.payment_checkout(patient_id=pat.pk, encounter_ids=[mar.pk],
                                                    credit_amounts={top.pk: "60.00"}, channel="cash",
                                                    actor=world.clerk)
        # the nightly run takes the older credit (20.00) first, then 40.00 of the top-up
        return credit_services.credits_apply(patient_id=pat.pk, actor=world.clerk, reason="Nightly")

    results = race(refund, apply)
    refund_won = results[0][0] == "ok"
    top.refresh_from_db()
    c.refresh_from_db()
    mar.refresh_from_db()
    assert top.on_hand + top.refund_hold + top.applied_amount == D("60.00")
    if applier == "checkout":
        assert outcomes(results) == ["ok", "refused"]
        if refund_won:
            assert (top.on_hand, top.refund_hold, top.applied_amount, mar.balance) == (0, D("60.00"), 0, D("60.00"))
        else:
            assert (top.on_hand, top.refund_hold, top.applied_amount, mar.balance) == (0, 0, D("60.00"), 0)
            assert "nothing available to refund" in results[0][1].message
    else:
        if refund_won:  # the nightly run found only the 20.00 of the older credit
            assert results[1][0] == "ok" and results[1][1].total == D("20.00")
            assert (top.on_hand, top.refund_hold, top.applied_amount, c.on_hand, mar.balance) == \
                (0, D("60.00"), 0, 0, D("40.00"))
        else:  # the nightly run used 20.00 + 40.00; 20.00 is left, not enough for the refund
            assert results[1][1].total == D("60.00")
            assert "more than the 20.00 available" in results[0][1].message
            assert (top.on_hand, top.refund_hold, top.applied_amount, c.on_hand, mar.balance) == \
                (D("20.00"), 0, D("40.00"), 0, 0)
    assert Refund.objects.filter(patient=pat).count() == (1 if refund_won else 0)
    check_invariants(world.practice.pk)


# --- (c) the nightly run at the same moment as staff apply by hand (example H) ------------------------

@pytest.mark.parametrize("round_", range(ROUNDS))
def test_nightly_and_checkout_by_hand_never_use_a_cent_twice(world, round_):
    pat = world.patient()
    jan = self_pay_visit(world, pat, date(2026, 1, 10), "40.00")
    feb = self_pay_visit(world, pat, date(2026, 2, 10), "30.00")
    c = credit_services.manual_credit_add(patient_id=pat.pk, amount="100.00", reason="prepaid", actor=world.clerk)

    def by_hand():
        return credit_services.payment_checkout(patient_id=pat.pk, encounter_ids=[jan.pk],
                                                credit_amounts={c.pk: "40.00"}, channel="cash", actor=world.clerk)

    def nightly():
        return credit_services.credits_apply(patient_id=pat.pk, actor=world.clerk, reason="Nightly")

    results = race(by_hand, nightly)
    if results[0][0] == "ok":  # staff first: the nightly run then paid February only
        assert results[1][1].total == D("30.00")
    else:  # the nightly run first: the balances moved under the staff's screen (or before it)
        assert "balances changed" in results[0][1].message or "exceed what is owed (0.00)" in results[0][1].message
        assert results[1][1].total == D("70.00")
    c.refresh_from_db()
    assert (c.state, c.on_hand, c.applied_amount) == ("available", D("30.00"), D("70.00"))
    assert (refreshed(jan).balance, refreshed(feb).balance) == (D("0.00"), D("0.00"))
    assert CreditApplication.objects.filter(credit=c).aggregate(s=Sum("amount"))["s"] == D("70.00")
    check_invariants(world.practice.pk)


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_nightly_and_checkout_with_a_card_never_charge_for_nothing(world, round_):
    """Staff use 10.00 of the credit and charge the rest (30.00) to the card while the nightly
    run applies the same credit. Whoever wins, the card is charged only for a recorded payment."""
    pat = world.patient()
    jan = self_pay_visit(world, pat, date(2026, 1, 10), "40.00")
    feb = self_pay_visit(world, pat, date(2026, 2, 10), "30.00")
    c = credit_services.manual_credit_add(patient_id=pat.pk, amount="100.00", reason="prepaid", actor=world.clerk)

    def by_hand():
        return credit_services.payment_checkout(patient_id=pat.pk, encounter_ids=[jan.pk],
                                                credit_amounts={c.pk: "10.00"}, channel="card_reader",
                                                card_token="tok_visa", actor=world.clerk)

    def nightly():
        return credit_services.credits_apply(patient_id=pat.pk, actor=world.clerk, reason="Nightly")

    results = race(by_hand, nightly)
    c.refresh_from_db()
    if results[0][0] == "ok":
        assert results[0][1].charged == D("30.00") and results[1][1].total == D("30.00")
        assert (c.on_hand, c.applied_amount) == (D("60.00"), D("40.00"))
        assert Payment.objects.get(patient=pat).amount == D("30.00")
    else:
        assert results[1][1].total == D("70.00")
        assert (c.on_hand, c.applied_amount) == (D("30.00"), D("70.00"))
        assert not Payment.objects.filter(patient=pat).exists()
    card_payments = Payment.objects.filter(patient=pat).aggregate(s=Sum("amount"))["s"] or D("0")
    charged = sum((ch.amount - ch.refunded for ch in SandboxCharge.objects.all()), D("0"))
    assert charged == card_payments
    assert (refreshed(jan).balance, refreshed(feb).balance) == (D("0.00"), D("0.00"))
    check_invariants(world.practice.pk)


# --- (d) many threads, mixed operations, one patient ----------------------------------------------------

class Ledgerbook:
    """What the threads saw succeed, to compare with the books at the end."""

    def __init__(self):
        self.lock = threading.Lock()
        self.paid = D("0")      # payments recorded (payment_record, checkout charges)
        self.manual = D("0")    # manual credits added
        self.refunded = D("0")  # refunds issued
        self.removed = D("0")   # credit removed by staff
        self.ops = {}

    def add(self, name, **amounts):
        with self.lock:
            self.ops[name] = self.ops.get(name, 0) + 1
            for k, v in amounts.items():
                setattr(self, k, getattr(self, k) + v)


def test_many_threads_hammering_one_patient_keep_the_books_exact(world):
    world.practice.writeoff_min_age_days = 0
    world.practice.save()
    pat = world.patient()
    encs = [self_pay_visit(world, pat, date(2026, 1, d), "35.00") for d in (5, 6)]
    for d in (7, 8):
        enc, claim = world.visit(pat, date(2026, 1, d))
        world.remit(claim, pr="45.00", paid="100.00")
        encs.append(enc)
    pending, _ = world.visit(pat, date(2026, 1, 9))  # claim still open: money toward it is held
    encs.append(pending)
    claims = list(Claim.objects.filter(encounter__patient=pat))
    for amount in ("25.00", "40.00"):
        credit_services.manual_credit_add(patient_id=pat.pk, amount=amount, reason="seed", actor=world.clerk)
    book = Ledgerbook()
    book.manual = D("65.00")
    deadline = time.monotonic() + 4

    def worker(seed):
        rnd = random.Random(seed)
        ops = 0
        while time.monotonic() < deadline and ops < 25:
            ops += 1
            op = rnd.choice(["pay", "manual", "nightly", "checkout", "refund", "remove", "move", "unlock",
                             "write_off", "undo", "remit", "resubmit"])
            try:
                step(rnd, op)
            except SettleError:
                book.add(f"{op} refused")

    def on_hand_credit(rnd, **filters):
        ids = list(Credit.objects.filter(patient=pat, state__in=Credit.ON_HAND, on_hand__gt=0, **filters)
                   .values_list("pk", flat=True))
        return Credit.objects.get(pk=rnd.choice(ids)) if ids else None

    def step(rnd, op):
        cents = D(rnd.randint(1, 6000)) / 100
        if op == "pay":
            enc = rnd.choice(encs + [None])
            r = credit_services.payment_record(patient_id=pat.pk, amount=cents, channel=rnd.choice(["cash", "check"]),
                                               encounter_id=getattr(enc, "pk", None), check_number="9",
                                               actor=world.clerk)
            book.add(op, paid=r.payment.amount)
        elif op == "manual":
            c = credit_services.manual_credit_add(patient_id=pat.pk, amount=cents, reason="by hand", actor=world.clerk)
            book.add(op, manual=c.amount)
        elif op == "nightly":
            credit_services.credits_apply(patient_id=pat.pk, actor=world.clerk, reason="Nightly")
            book.add(op)
        elif op == "checkout":
            open_ids = [e.pk for e in Encounter.objects.filter(patient=pat) if e.balance > 0
                        and not e.claims.filter(state__in=Claim.OPEN).exists()]
            if not open_ids:
                return
            picked = rnd.sample(open_ids, rnd.randint(1, len(open_ids)))
            picks = credit_services.credits_preselect(patient_id=pat.pk, encounter_ids=picked)
            r = credit_services.payment_checkout(patient_id=pat.pk, encounter_ids=picked, credit_amounts=picks,
                                                 channel="cash", actor=world.clerk)
            book.add(op, paid=r.payment.amount if r.payment else D("0"))
        elif op == "refund":
            c = on_hand_credit(rnd, state=Credit.State.AVAILABLE)
            if c is None:
                return
            amount = max(D("0.01"), (c.on_hand * rnd.randint(1, 100) / 100).quantize(D("0.01")))
            r = credit_services.refund_request(credit_id=c.pk, amount=amount, method="check", actor=world.clerk,
                                               reason="Refund")
            if r.needs_approval:
                credit_services.refund_approve(refund_id=r.pk, actor=world.manager, reason="ok")
            if rnd.random() < 0.2:
                credit_services.refund_reject(refund_id=r.pk, actor=world.manager, reason="Keeps it")
                book.add("refund rejected")
            else:
                credit_services.refund_issue(refund_id=r.pk, actor=world.clerk, reference=f"CHK {r.pk}")
                book.add(op, refunded=r.amount)
        elif op == "remove":
            c = on_hand_credit(rnd)
            if c is None:
                return
            amount = max(D("0.01"), (c.on_hand * rnd.randint(1, 100) / 100).quantize(D("0.01")))
            credit_services.credit_remove(credit_id=c.pk, amount=amount, actor=world.clerk, reason="Refunded by hand")
            book.add(op, removed=amount)
        elif op == "move":
            c = on_hand_credit(rnd)
            if c is None:
                return
            target = rnd.choice(encs + [None])
            credit_services.credit_move(credit_id=c.pk, to_encounter_id=getattr(target, "pk", None),
                                        actor=world.clerk, reason="Moved")
            book.add(op)
        elif op == "unlock":
            credit_services.credits_unlock(patient_ids=[pat.pk], actor=world.clerk, reason="Payer never answers")
            book.add(op)
        elif op == "write_off":
            enc = rnd.choice(encs)
            credit_services.writeoff_create(encounter_id=enc.pk, amount=min(cents, D("10.00")),
                                            reason_code="small_balance", reason="Small", actor=world.clerk)
            book.add(op)
        elif op == "undo":
            ids = list(WriteOff.objects.filter(patient=pat, state="active").values_list("pk", flat=True))
            if ids:
                credit_services.writeoff_undo(writeoff_id=rnd.choice(ids), actor=world.clerk, reason="Undo")
                book.add(op)
        elif op == "remit":
            claim = rnd.choice(claims)
            credit_services.claim_record_result(claim_id=claim.pk, outcome=rnd.choice(["paid", "denied"]),
                                                paid_amount="0.00", patient_responsibility=cents,
                                                actor=world.clerk, reason="Correction")
            book.add(op)
        elif op == "resubmit":
            credit_services.claim_resubmit(claim_id=rnd.choice(claims).pk, actor=world.clerk, reason="Resubmitted")
            book.add(op)

    results = race(*[(lambda seed=seed: worker(seed)) for seed in range(6)], timeout=120)
    assert outcomes(results) == ["ok"] * 6
    assert sum(v for k, v in book.ops.items() if "refused" not in k) >= 12, book.ops

    check_invariants(world.practice.pk)
    # the books equal what the threads saw succeed, to the cent
    credits = Credit.objects.filter(patient=pat)
    payments = Payment.objects.filter(patient=pat).aggregate(s=Sum("amount"))["s"] or D("0")
    manual = credits.filter(source=Credit.Source.MANUAL).aggregate(s=Sum("amount"))["s"] or D("0")
    refunded = credits.aggregate(s=Sum("refunded_amount"))["s"] or D("0")
    removed = credits.aggregate(s=Sum("removed_amount"))["s"] or D("0")
    on_hand = sum((c.on_hand + c.refund_hold for c in credits), D("0"))
    applied = Encounter.objects.filter(patient=pat).aggregate(s=Sum("applied_amount"))["s"]
    assert (payments, manual, refunded, removed) == (book.paid, book.manual, book.refunded, book.removed)
    assert Refund.objects.filter(patient=pat, state__in=["requested", "approved"]).count() == 0
    # every cent the patient gave is applied to a DoS, still held, refunded or removed: once
    assert payments + manual == applied + on_hand + refunded + removed
    assert credit_liability(pat.pk) == on_hand
