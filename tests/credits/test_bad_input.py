"""Bad input and forbidden requests: each is refused with the right error (a SettleError subclass
whose message names the field or value) and writes nothing at all."""

from datetime import date, datetime
from datetime import timezone as dt_timezone
from decimal import Decimal as D

import pytest
import time_machine

from credits import services as credit_services
from credits.models import Credit, CreditApplication, CreditImport, Refund, WriteOff
from ledger import services as ledger_services
from ledger.errors import Duplicate, InvalidInput, NotFound, PermissionDenied, RuleViolation
from ledger.models import Encounter, JournalEntry, JournalLine, Membership, Patient, Payment, SandboxCharge
from tests.factories import MembershipFactory, PatientFactory, PracticeFactory, UserFactory

pytestmark = pytest.mark.django_db

WRITTEN = (JournalEntry, JournalLine, Credit, Payment, CreditApplication, Refund, WriteOff, CreditImport, Encounter,
           Patient)


def snapshot() -> dict:
    return {m.__name__: m.objects.count() for m in WRITTEN}


class refused:  # noqa: N801 - reads as `with refused(InvalidInput, field="amount", names="1.001"):`
    """Expect `error`, check the field and that the message names `names`, and that nothing was written."""

    def __init__(self, error, *, field=None, names=None, code=None):
        self.error, self.field, self.names, self.code = error, field, names, code

    def __enter__(self):
        self.before = snapshot()
        self.raises = pytest.raises(self.error)
        self.info = self.raises.__enter__()
        return self.info

    def __exit__(self, exc_type, exc, tb):
        if not self.raises.__exit__(exc_type, exc, tb):  # fails when nothing was raised
            return False  # another exception: let it through as it is
        assert type(exc) is self.error, f"expected {self.error.__name__}, got {type(exc).__name__}: {exc}"
        assert exc.message
        if self.field is not None:
            assert exc.field == self.field, exc.as_dict()
        for needle in ([self.names] if isinstance(self.names, str) else self.names or []):
            assert needle in exc.message, exc.message
        if self.code is not None:
            assert exc.code == self.code, exc.as_dict()
        assert snapshot() == self.before, "a refused request wrote rows"
        return True


@pytest.fixture
def pat(world):
    return world.patient()


@pytest.fixture
def other_practice():
    practice = PracticeFactory(name="Across Town Clinic")
    clerk = MembershipFactory(practice=practice, role=Membership.Role.BILLING).user
    return practice, clerk, PatientFactory(practice=practice)


def available_card_credit(world, pat, amount="80.00"):
    """A card payment with nothing owed: all of it becomes an available credit."""
    (c,) = world.pay(pat, amount, channel="card_reader").credits
    return c


# --- amounts ---------------------------------------------------------------------------------------

BAD_AMOUNTS = [
    ("0", "must be greater than zero (got 0.00)"),
    ("0.00", "must be greater than zero (got 0.00)"),
    ("-12.50", "'-12.50' has a minus sign; the amount must not be negative"),
    (12.5, "floats are not accepted"),
    ("1.001", "'1.001' has fractions of a cent"),
    ("abc", "'abc' is not an amount"),
    ("", "an amount is required"),
    ("NaN", "'NaN' is not an amount"),
]


@pytest.mark.parametrize("value,message", BAD_AMOUNTS)
def test_payment_amount_is_refused(world, pat, value, message):
    with refused(InvalidInput, field="amount", names=["amount:", message]):
        world.pay(pat, value, channel="cash")
    assert not SandboxCharge.objects.exists()  # refused before the card is charged


@pytest.mark.parametrize("value,message", BAD_AMOUNTS)
def test_manual_credit_amount_is_refused(world, pat, value, message):
    with refused(InvalidInput, field="amount", names=message):
        credit_services.manual_credit_add(patient_id=pat.pk, amount=value, reason="old system", actor=world.clerk)


@pytest.mark.parametrize("value,message", BAD_AMOUNTS)
def test_refund_amount_is_refused(world, pat, value, message):
    c = available_card_credit(world, pat)
    with refused(InvalidInput, field="amount", names=message):
        credit_services.refund_request(credit_id=c.pk, amount=value, actor=world.clerk, reason="Refund")


@pytest.mark.parametrize("value,message", BAD_AMOUNTS)
def test_partial_removal_amount_is_refused(world, pat, value, message):
    c = available_card_credit(world, pat)
    with refused(InvalidInput, field="amount", names=message):
        credit_services.credit_remove(credit_id=c.pk, amount=value, actor=world.clerk, reason="Refunded by hand")


@pytest.mark.parametrize("value,message", BAD_AMOUNTS)
def test_writeoff_amount_is_refused(world, pat, value, message):
    enc, _ = world.visit(pat, date(2025, 1, 10), estimated_pr="20.00", claim=False)
    with refused(InvalidInput, field="amount", names=message):
        credit_services.writeoff_create(encounter_id=enc.pk, amount=value, reason_code="small_balance",
                                        reason="Small balance", actor=world.manager)


@pytest.mark.parametrize("value,message", [v for v in BAD_AMOUNTS if not v[1].startswith("must")
                                           and "minus sign" not in v[1]])  # a take-back is negative
def test_remittance_amounts_are_refused(world, pat, value, message):
    _, claim = world.visit(pat, date(2025, 1, 10))
    for field in ("paid_amount", "adjustment_amount", "patient_responsibility"):
        kwargs = {"paid_amount": "10.00", "adjustment_amount": "0.00", "patient_responsibility": "5.00", field: value}
        with refused(InvalidInput, field=field, names=[f"{field}:", message]):
            credit_services.claim_record_result(claim_id=claim.pk, outcome="paid", actor=world.clerk,
                                                reason="835", **kwargs)


def test_negative_patient_responsibility_is_refused(world, pat):
    _, claim = world.visit(pat, date(2025, 1, 10))
    with refused(InvalidInput, field="patient_responsibility", names="cannot be negative"):
        world.remit(claim, pr="-1.00")


@pytest.mark.parametrize("field,kwargs,message", [
    ("charge", {"charge": 100.0}, "floats are not accepted"),
    ("charge", {"charge": "-1.00"}, "charge cannot be negative"),
    ("estimated_pr", {"estimated_pr": "1.001"}, "'1.001' has fractions of a cent"),
    ("estimated_pr", {"estimated_pr": "300.00"}, "between 0 and the charge (200.00)"),
])
def test_visit_amounts_are_refused(world, pat, field, kwargs, message):
    args = {"charge": "200.00", "estimated_pr": "20.00"} | kwargs
    with refused(InvalidInput, field=field, names=message):
        ledger_services.encounter_create(patient_id=pat.pk, date_of_service=date(2025, 2, 1), actor=world.clerk,
                                         **args)


@pytest.mark.parametrize("value,message", [
    ("1E2", "'1E2' is in exponent notation"), ("1_000", "'1_000' has a thousands separator"),
    ("５０", "'５０' has digits that are not ASCII 0-9"), (" 5.00 ", "' 5.00 ' has spaces"),
    ("5.", "needs digits on both sides"), (".5", "needs digits on both sides"), ("+5.00", "'+5.00' has a '+' sign"),
    ("1000000000000.00", "out of range"), (D("1E+12"), "out of range"), (10**12, "out of range"),
    (True, "is not an amount"),
])
def test_loose_amounts_are_refused_by_every_money_service(world, pat, value, message):
    """Python callers (jobs, the shell) get the same grammar and range as the API and the forms."""
    enc, claim = world.visit(pat, date(2025, 1, 10), estimated_pr="20.00")
    card = available_card_credit(world, pat)
    for field, call in [
        ("amount", lambda: world.pay(pat, value, channel="cash")),
        ("amount", lambda: credit_services.manual_credit_add(patient_id=pat.pk, amount=value, reason="old",
                                                             actor=world.clerk)),
        ("amount", lambda: credit_services.refund_request(credit_id=card.pk, amount=value, actor=world.clerk,
                                                          reason="Refund")),
        ("amount", lambda: credit_services.credit_remove(credit_id=card.pk, amount=value, actor=world.clerk,
                                                         reason="By hand")),
        ("charge", lambda: ledger_services.encounter_create(patient_id=pat.pk, date_of_service=date(2025, 2, 1),
                                                            charge=value, estimated_pr="0", actor=world.clerk)),
        ("paid_amount", lambda: credit_services.claim_record_result(
            claim_id=claim.pk, outcome="paid", paid_amount=value, adjustment_amount="0.00",
            patient_responsibility="5.00", actor=world.clerk, reason="835")),
    ]:
        with refused(InvalidInput, field=field, names=[f"{field}:", message]):
            call()


@pytest.mark.parametrize("day,message", [
    (date(1, 1, 1), "0001-01-01 is out of range; a date of service is between 1900-01-01 and "),
    (date(9999, 12, 31), "9999-12-31 is out of range"),
    ("2025-02-30", "'2025-02-30' is not a date of the calendar"),
    ("02/01/2025", "is not a date; write it as YYYY-MM-DD"),
])
def test_dates_of_service_outside_the_sane_range_are_refused(world, pat, day, message):
    with refused(InvalidInput, field="date_of_service", names=["date_of_service: ", message]):
        ledger_services.encounter_create(patient_id=pat.pk, date_of_service=day, charge="100.00",
                                         estimated_pr="0.00", actor=world.clerk)
    enc = ledger_services.encounter_create(patient_id=pat.pk, date_of_service="2025-02-01", charge="100.00",
                                           estimated_pr="0.00", actor=world.clerk)
    assert enc.date_of_service == date(2025, 2, 1)  # an ISO text is read as the date


@time_machine.travel(datetime(2026, 3, 1, 15, tzinfo=dt_timezone.utc), tick=False)
def test_a_date_of_service_more_than_two_years_ahead_is_refused(world, pat):
    ledger_services.encounter_create(patient_id=pat.pk, date_of_service=date(2028, 3, 1), charge="10.00",
                                     estimated_pr="0.00", actor=world.clerk)  # booked ahead: fine
    with refused(InvalidInput, field="date_of_service", names="2028-03-02 is out of range"):
        ledger_services.encounter_create(patient_id=pat.pk, date_of_service=date(2028, 3, 2), charge="10.00",
                                         estimated_pr="0.00", actor=world.clerk)


def test_a_date_of_birth_outside_the_range_is_refused(world):
    for day in (date(1, 1, 1), date(2999, 1, 1), "1850-06-01"):
        with refused(InvalidInput, field="date_of_birth", names=["date_of_birth: ", "is out of range"]):
            ledger_services.patient_create(practice_id=world.practice.pk, account_number="DOB-1", first_name="A",
                                           last_name="B", date_of_birth=day, actor=world.clerk)


def test_checkout_credit_amount_with_fractions_of_a_cent_is_refused(world, pat):
    enc, _ = world.visit(pat, date(2025, 1, 10), estimated_pr="20.00", claim=False)
    c = credit_services.manual_credit_add(patient_id=pat.pk, amount="50.00", reason="prepaid", actor=world.clerk)
    with refused(InvalidInput, field=f"credit {c.pk}", names="'10.005' has fractions of a cent"):
        credit_services.payment_checkout(patient_id=pat.pk, encounter_ids=[enc.pk], credit_amounts={c.pk: "10.005"},
                                         channel="cash", actor=world.clerk)


# --- who and whom ----------------------------------------------------------------------------------

@pytest.mark.parametrize("patient_id", [987654321, "abc", None])
def test_unknown_patient(world, patient_id):
    with refused(NotFound, field="patient", names=f"unknown patient {patient_id}"):
        credit_services.payment_record(patient_id=patient_id, amount="10.00", channel="cash", actor=world.clerk)


def test_unknown_patient_for_manual_credit_and_nightly(world):
    with refused(NotFound, field="patient", names="987654321"):
        credit_services.manual_credit_add(patient_id=987654321, amount="10.00", reason="x", actor=world.clerk)
    with refused(NotFound, field="patient", names="987654321"):
        credit_services.credits_apply(patient_id=987654321, actor=world.clerk)


def test_unknown_encounter_credit_refund_and_writeoff(world, pat):
    with refused(NotFound, field="encounter", names="987654321"):
        credit_services.payment_record(patient_id=pat.pk, amount="10.00", channel="cash", encounter_id=987654321,
                                       actor=world.clerk)
    with refused(NotFound, field="credit", names="987654321"):
        credit_services.refund_request(credit_id=987654321, amount="1.00", actor=world.clerk, reason="x")
    with refused(NotFound, field="refund", names="987654321"):
        credit_services.refund_approve(refund_id=987654321, actor=world.manager)
    with refused(NotFound, field="writeoff", names="987654321"):
        credit_services.writeoff_undo(writeoff_id=987654321, actor=world.manager, reason="x")


def test_another_practices_patient_is_out_of_reach(world, other_practice):
    _, their_clerk, theirs = other_practice
    their_credit = credit_services.manual_credit_add(patient_id=theirs.pk, amount="40.00", reason="old system",
                                                     actor=their_clerk)
    their_enc = ledger_services.encounter_create(patient_id=theirs.pk, date_of_service=date(2025, 1, 5),
                                                 charge="100.00", estimated_pr="30.00", actor=their_clerk)
    attempts = [
        lambda: world.pay(theirs, "10.00", channel="cash"),
        lambda: ledger_services.encounter_create(patient_id=theirs.pk, date_of_service=date(2025, 1, 6),
                                                 charge="10.00", estimated_pr="0.00", actor=world.clerk),
        lambda: credit_services.manual_credit_add(patient_id=theirs.pk, amount="10.00", reason="x", actor=world.clerk),
        lambda: credit_services.credits_apply(patient_id=theirs.pk, actor=world.clerk),
        lambda: credit_services.credits_unlock(patient_ids=[theirs.pk], actor=world.clerk, reason="x"),
        lambda: credit_services.credit_move(credit_id=their_credit.pk, to_encounter_id=their_enc.pk,
                                            actor=world.clerk, reason="x"),
        lambda: credit_services.credit_remove(credit_id=their_credit.pk, actor=world.clerk, reason="x"),
        lambda: credit_services.refund_request(credit_id=their_credit.pk, amount="5.00", actor=world.clerk,
                                               reason="x"),
        lambda: credit_services.writeoff_create(encounter_id=their_enc.pk, amount="1.00",
                                                reason_code="small_balance", reason="x", actor=world.manager),
        lambda: credit_services.payment_checkout(patient_id=theirs.pk, encounter_ids=[their_enc.pk],
                                                 credit_amounts={their_credit.pk: "30.00"}, channel="cash",
                                                 actor=world.clerk),
        lambda: credit_services.credit_import_create(practice_id=theirs.practice_id, data=b"account_number,amount,note\n"
                                                   + theirs.account_number.encode() + b",5.00,x\n",
                                                   filename="x.csv", actor=world.manager),
    ]
    for attempt in attempts:
        with refused(PermissionDenied, names=str(theirs.practice_id)):
            attempt()
    their_credit.refresh_from_db()
    assert (their_credit.state, their_credit.on_hand) == ("available", D("40.00"))


def test_a_user_with_no_membership_can_do_nothing(world, pat):
    stranger = UserFactory(username="walk-in")
    c = credit_services.manual_credit_add(patient_id=pat.pk, amount="40.00", reason="old system", actor=world.clerk)
    enc, _ = world.visit(pat, date(2025, 3, 3))
    (locked,) = world.pay(pat, "20.00", encounter=enc, channel="cash").credits
    attempts = [
        lambda: credit_services.payment_record(patient_id=pat.pk, amount="10.00", channel="cash", actor=stranger),
        lambda: credit_services.manual_credit_add(patient_id=pat.pk, amount="1.00", reason="x", actor=stranger),
        lambda: credit_services.credits_apply(patient_id=pat.pk, actor=stranger),
        lambda: credit_services.credit_remove(credit_id=c.pk, actor=stranger, reason="x"),
        lambda: credit_services.refund_request(credit_id=c.pk, amount="5.00", actor=stranger, reason="x"),
        lambda: credit_services.credits_unlock(credit_ids=[locked.pk], actor=stranger, reason="x"),
        lambda: credit_services.credits_unlock(credit_ids=[c.pk], actor=stranger, reason="x"),  # not even a count
        lambda: credit_services.credits_unlock(patient_ids=[pat.pk], actor=stranger, reason="x"),
        lambda: credit_services.credit_move(credit_id=locked.pk, to_encounter_id=None, actor=stranger, reason="x"),
        lambda: credit_services.writeoff_create(encounter_id=enc.pk, amount="1.00", reason_code="small_balance",
                                                reason="x", actor=stranger),
        lambda: credit_services.claim_resubmit(claim_id=enc.claims.get().pk, actor=stranger, reason="x"),
    ]
    for attempt in attempts:
        with refused(PermissionDenied, names="walk-in"):
            attempt()
    with refused(PermissionDenied, names="acting user"):
        credit_services.credit_remove(credit_id=c.pk, actor=None, reason="x")


# --- refunds -----------------------------------------------------------------------------------------

def test_refund_above_what_is_on_hand(world, pat):
    c = available_card_credit(world, pat, "80.00")
    with refused(RuleViolation, field="amount", names=["80.01", "80.00", str(c.pk)]):
        credit_services.refund_request(credit_id=c.pk, amount="80.01", actor=world.clerk, reason="Refund")
    # what another open refund holds is no longer on hand either
    credit_services.refund_request(credit_id=c.pk, amount="50.00", actor=world.clerk, reason="Part of it")
    with refused(RuleViolation, field="amount", names=["30.01", "30.00"]):
        credit_services.refund_request(credit_id=c.pk, amount="30.01", actor=world.clerk, reason="The rest+")


def test_refund_of_a_locked_credit(world, pat):
    enc, _ = world.visit(pat, date(2025, 3, 3))
    (held,) = world.pay(pat, "50.00", encounter=enc).credits
    assert held.state == "locked"
    with refused(RuleViolation, field="credit", names=["locked", "2025-03-03", "unlock"]):
        credit_services.refund_request(credit_id=held.pk, amount="10.00", actor=world.clerk, reason="Refund")


def test_refund_through_the_system_needs_a_system_payment(world, pat):
    (by_cash,) = world.pay(pat, "30.00", channel="cash").credits
    with refused(RuleViolation, field="method", names="cash"):
        credit_services.refund_request(credit_id=by_cash.pk, amount="10.00", method="original_payment",
                                       actor=world.clerk, reason="Refund to card")


def test_refund_method_must_be_known(world, pat):
    c = available_card_credit(world, pat)
    with refused(InvalidInput, field="method", names="original_payment, check, ach"):
        credit_services.refund_request(credit_id=c.pk, amount="10.00", method="venmo", actor=world.clerk,
                                       reason="Refund")


def test_refund_through_the_system_above_what_is_left_of_the_payment(world, pat):
    c = available_card_credit(world, pat, "80.00")
    # The services keep a payment's credits within what is left of it, so this state only arises
    # from a refund recorded on the payment elsewhere; the request must still check the limit.
    Payment.objects.filter(pk=c.payment_id).update(refunded_amount=D("50.00"))
    with refused(RuleViolation, field="amount", names=["40.00", "30.00", "check or ACH"]):
        credit_services.refund_request(credit_id=c.pk, amount="40.00", method="original_payment",
                                       actor=world.clerk, reason="Refund to card")


def test_refund_through_the_system_past_the_card_window(world, pat):
    with time_machine.travel(datetime(2025, 1, 2, 15, tzinfo=dt_timezone.utc), tick=False):
        c = available_card_credit(world, pat, "180.00")
        # above the threshold: approved by a manager in time, not paid out yet
        approved = credit_services.refund_request(credit_id=c.pk, amount="120.00", actor=world.clerk,
                                                  reason="Refund to card")
        approved = credit_services.refund_approve(refund_id=approved.pk, actor=world.manager, reason="ok")
        assert approved.method == "original_payment" and approved.state == "approved"
    with time_machine.travel(datetime(2025, 7, 2, 15, tzinfo=dt_timezone.utc), tick=False):  # 181 days later
        with refused(RuleViolation, field="method", names="180 days"):
            credit_services.refund_request(credit_id=c.pk, amount="10.00", method="original_payment",
                                           actor=world.clerk, reason="Refund to card")
        # approved in time, issued too late: the processor refuses; nothing is booked
        with refused(RuleViolation, names=["180-day refund window", "check or ACH"], code="window_closed"):
            credit_services.refund_issue(refund_id=approved.pk, actor=world.clerk)
    c.refresh_from_db()
    assert (c.on_hand, c.refund_hold, c.refunded_amount) == (D("60.00"), D("120.00"), D("0"))


def test_issuing_a_check_refund_needs_its_number(world, pat):
    c = credit_services.manual_credit_add(patient_id=pat.pk, amount="20.00", reason="old system", actor=world.clerk)
    r = credit_services.refund_request(credit_id=c.pk, amount="20.00", actor=world.clerk, reason="By check")
    with refused(InvalidInput, field="reference", names="check reference"):
        credit_services.refund_issue(refund_id=r.pk, actor=world.clerk, reference="  ")


def test_refund_needs_a_reason(world, pat):
    c = available_card_credit(world, pat)
    with refused(InvalidInput, field="reason", names="reason"):
        credit_services.refund_request(credit_id=c.pk, amount="10.00", actor=world.clerk, reason="   ")


def test_requester_cannot_approve_or_reject_their_own_refund(world, pat):
    c = available_card_credit(world, pat, "150.00")
    r = credit_services.refund_request(credit_id=c.pk, amount="150.00", actor=world.manager, reason="Refund")
    assert r.needs_approval and r.state == "requested"
    with refused(PermissionDenied, names="own refund"):
        credit_services.refund_approve(refund_id=r.pk, actor=world.manager, reason="ok")
    with refused(PermissionDenied, names="own refund"):
        credit_services.refund_reject(refund_id=r.pk, actor=world.manager, reason="changed my mind")
    r.refresh_from_db()
    assert (r.state, r.decided_by_id) == ("requested", None)


def test_billing_staff_cannot_approve_or_reject_a_refund_that_needs_a_manager(world, pat):
    c = available_card_credit(world, pat, "150.00")
    r = credit_services.refund_request(credit_id=c.pk, amount="150.00", actor=world.manager, reason="Refund")
    with refused(PermissionDenied, names=["clerk", "not a manager"]):
        credit_services.refund_approve(refund_id=r.pk, actor=world.clerk, reason="ok")
    with refused(PermissionDenied, names=["clerk", "not a manager"]):
        credit_services.refund_reject(refund_id=r.pk, actor=world.clerk, reason="no")


def test_a_refund_waiting_for_approval_cannot_be_issued(world, pat):
    c = available_card_credit(world, pat, "150.00")
    r = credit_services.refund_request(credit_id=c.pk, amount="150.00", actor=world.clerk, reason="Refund")
    with refused(RuleViolation, names="only approved refunds are issued"):
        credit_services.refund_issue(refund_id=r.pk, actor=world.clerk)
    assert not SandboxCharge.objects.filter(refunded__gt=0).exists()


# --- card payments ----------------------------------------------------------------------------------

@pytest.mark.parametrize("token,code", [("tok_decline", "card_declined"), ("tok_insufficient", "insufficient_funds"),
                                        ("", "invalid_token")])
def test_declined_card_writes_nothing(world, pat, token, code):
    enc, _ = world.visit(pat, date(2025, 3, 3), estimated_pr="40.00", claim=False)
    with refused(RuleViolation, field="card_token", names="card", code=code):
        world.pay(pat, "40.00", encounter=enc, channel="card_reader", token=token)
    assert not SandboxCharge.objects.exists()
    enc.refresh_from_db()
    assert enc.balance == D("40.00")


def test_declined_card_at_checkout_writes_nothing(world, pat):
    enc, _ = world.visit(pat, date(2025, 3, 3), estimated_pr="40.00", claim=False)
    c = credit_services.manual_credit_add(patient_id=pat.pk, amount="15.00", reason="prepaid", actor=world.clerk)
    with refused(RuleViolation, field="card_token", code="card_declined"):
        credit_services.payment_checkout(patient_id=pat.pk, encounter_ids=[enc.pk], credit_amounts={c.pk: "15.00"},
                                         channel="card_reader", card_token="tok_decline", actor=world.clerk)
    c.refresh_from_db()
    assert c.on_hand == D("15.00")


def test_duplicate_processor_reference(world, pat):
    credit_services.payment_record(patient_id=pat.pk, amount="25.00", channel="card_reader",
                                   processor_reference="TERM-0001", actor=world.clerk)
    other = world.patient()
    for p in (pat, other):
        with refused(Duplicate, field="processor_reference", names="TERM-0001"):
            credit_services.payment_record(patient_id=p.pk, amount="25.00", channel="card_reader",
                                           processor_reference="TERM-0001", actor=world.clerk)


def test_unknown_channel(world, pat):
    with refused(InvalidInput, field="channel", names="card_reader"):
        world.pay(pat, "10.00", channel="bitcoin")


# --- checkout -------------------------------------------------------------------------------------

def test_checkout_with_a_credit_locked_to_another_date(world, pat):
    may1, claim1 = world.visit(pat, date(2025, 5, 1))
    may5, _ = world.visit(pat, date(2025, 5, 5))
    (locked,) = world.pay(pat, "40.00", encounter=may5).credits
    world.remit(claim1, pr="30.00", paid="100.00")
    with refused(RuleViolation, field="credit_amounts", names=[str(locked.pk), "locked to another date"]):
        credit_services.payment_checkout(patient_id=pat.pk, encounter_ids=[may1.pk],
                                         credit_amounts={locked.pk: "30.00"}, channel="cash", actor=world.clerk)


def test_checkout_with_someone_elses_or_an_unknown_credit(world, pat):
    enc, _ = world.visit(pat, date(2025, 5, 1), estimated_pr="30.00", claim=False)
    stranger = world.patient()
    theirs = credit_services.manual_credit_add(patient_id=stranger.pk, amount="30.00", reason="x", actor=world.clerk)
    with refused(NotFound, field="credit_amounts", names=str(theirs.pk)):
        credit_services.payment_checkout(patient_id=pat.pk, encounter_ids=[enc.pk], credit_amounts={theirs.pk: "30.00"},
                                         channel="cash", actor=world.clerk)
    with refused(NotFound, field="credit", names="987654321"):
        credit_services.payment_checkout(patient_id=pat.pk, encounter_ids=[enc.pk], credit_amounts={987654321: "30"},
                                         channel="cash", actor=world.clerk)


def test_checkout_with_more_credit_than_owed_or_more_than_on_hand(world, pat):
    enc, _ = world.visit(pat, date(2025, 5, 1), estimated_pr="30.00", claim=False)
    c = credit_services.manual_credit_add(patient_id=pat.pk, amount="20.00", reason="x", actor=world.clerk)
    big = credit_services.manual_credit_add(patient_id=pat.pk, amount="90.00", reason="x", actor=world.clerk)
    with refused(InvalidInput, field="credit_amounts", names=["40.00", "30.00"]):
        credit_services.payment_checkout(patient_id=pat.pk, encounter_ids=[enc.pk],
                                         credit_amounts={big.pk: "40.00"}, channel="cash", actor=world.clerk)
    with refused(RuleViolation, field="credit_amounts", names=[str(c.pk), "20.00", "25.00"]):
        credit_services.payment_checkout(patient_id=pat.pk, encounter_ids=[enc.pk], credit_amounts={c.pk: "25.00"},
                                         channel="cash", actor=world.clerk)


def test_checkout_of_a_date_still_waiting_on_the_payer(world, pat):
    enc, _ = world.visit(pat, date(2025, 5, 1), estimated_pr="30.00")
    with refused(RuleViolation, field="encounter_ids", names="2025-05-01"):
        credit_services.payment_checkout(patient_id=pat.pk, encounter_ids=[enc.pk], credit_amounts={},
                                         channel="cash", actor=world.clerk)


# --- manual credits, moves, removals, write-offs ------------------------------------------------------

def test_manual_credit_needs_a_reason(world, pat):
    with refused(InvalidInput, field="reason", names="reason"):
        credit_services.manual_credit_add(patient_id=pat.pk, amount="10.00", reason="  ", actor=world.clerk)


def test_remove_more_than_on_hand_or_without_reason(world, pat):
    c = credit_services.manual_credit_add(patient_id=pat.pk, amount="10.00", reason="x", actor=world.clerk)
    with refused(RuleViolation, field="amount", names=["10.00", "10.01"]):
        credit_services.credit_remove(credit_id=c.pk, amount="10.01", actor=world.clerk, reason="gone")
    with refused(InvalidInput, field="reason"):
        credit_services.credit_remove(credit_id=c.pk, amount="1.00", actor=world.clerk, reason="")


def test_move_to_another_patients_date(world, pat):
    c = credit_services.manual_credit_add(patient_id=pat.pk, amount="10.00", reason="x", actor=world.clerk)
    their_enc, _ = world.visit(world.patient(), date(2025, 5, 1))
    with refused(NotFound, field="to_encounter", names=str(their_enc.pk)):
        credit_services.credit_move(credit_id=c.pk, to_encounter_id=their_enc.pk, actor=world.clerk, reason="x")
    with refused(RuleViolation, field="to_encounter", names="flexible pool"):
        credit_services.credit_move(credit_id=c.pk, to_encounter_id=None, actor=world.clerk, reason="x")


def test_writeoff_above_policy_by_billing_staff(world, pat):
    world.practice.writeoff_max_amount, world.practice.writeoff_min_age_days = D("10.00"), 30
    world.practice.save()
    enc, _ = world.visit(pat, date(2025, 1, 10), estimated_pr="50.00", claim=False)
    with refused(PermissionDenied, field="amount", names=["10.00", "manager"]):
        credit_services.writeoff_create(encounter_id=enc.pk, amount="10.01", reason_code="small_balance",
                                        reason="Small balance", actor=world.clerk, as_of=date(2025, 6, 1))
    with refused(PermissionDenied, field="encounter", names=["20 days", "30"]):
        credit_services.writeoff_create(encounter_id=enc.pk, amount="5.00", reason_code="small_balance",
                                        reason="Small balance", actor=world.clerk, as_of=date(2025, 1, 30))
    with refused(RuleViolation, field="amount", names=["50.01", "50.00"]):
        credit_services.writeoff_create(encounter_id=enc.pk, amount="50.01", reason_code="small_balance",
                                        reason="Small balance", actor=world.manager, as_of=date(2025, 6, 1))
    with refused(InvalidInput, field="reason_code", names="small_balance"):
        credit_services.writeoff_create(encounter_id=enc.pk, amount="5.00", reason_code="because",
                                        reason="x", actor=world.manager, as_of=date(2025, 6, 1))
    # within policy, billing staff may
    wo = credit_services.writeoff_create(encounter_id=enc.pk, amount="10.00", reason_code="small_balance",
                                         reason="Small balance", actor=world.clerk, as_of=date(2025, 6, 1))
    credit_services.writeoff_undo(writeoff_id=wo.pk, actor=world.clerk, reason="Posted in error")
    with refused(RuleViolation, field="writeoff", names="already undone"):
        credit_services.writeoff_undo(writeoff_id=wo.pk, actor=world.clerk, reason="again")


# --- CSV import --------------------------------------------------------------------------------------

def _csv(*rows: str) -> bytes:
    return ("account_number,amount,note,date_of_service\n" + "\n".join(rows) + "\n").encode()


@pytest.mark.parametrize("bad_row,names", [
    ("ZZ999,10.00,old system,", ["line 3", "unknown patient account number 'ZZ999'"]),
    ("{acct},12.345,old system,", ["line 3", "'12.345' has fractions of a cent"]),
    ("{acct},abc,old system,", ["line 3", "'abc' is not an amount"]),
    ("{acct},-5.00,old system,", ["line 3", "'-5.00' has a minus sign; the amount must not be negative"]),
    ("{acct},5.00,,", ["line 3", "a note is required"]),
    ("{acct},5.00,old system,2025-13-01", ["line 3", "date_of_service: '2025-13-01' is not a date of the calendar"]),
    ("{acct},5.00,old system,２０２５-01-10", ["line 3", "is not a date; write it as YYYY-MM-DD"]),
    ("{acct},5.00,old system,9999-12-31", ["line 3", "9999-12-31 is out of range"]),
    ("{acct},1E2,old system,", ["line 3", "'1E2' is in exponent notation"]),
    ("{acct},1000000000000.00,old system,", ["line 3", "out of range"]),
    ("{acct},5.00,old system,2025-02-02", ["line 3", "no visit on 2025-02-02"]),
    ("{acct},5.00,old system,,extra", ["line 3", "more fields than columns"]),
])
def test_csv_import_with_one_bad_row_writes_nothing(world, pat, bad_row, names):
    world.visit(pat, date(2025, 1, 10))
    data = _csv(f"{pat.account_number},10.00,old system,",
                bad_row.format(acct=pat.account_number),
                f"{pat.account_number},20.00,old system,2025-01-10")
    with refused(InvalidInput, field="file", names=["legacy.csv"] + names):
        credit_services.credit_import_create(practice_id=world.practice.pk, data=data, filename="legacy.csv",
                                           actor=world.clerk)


def test_csv_import_missing_column_or_not_utf8(world, pat):
    with refused(InvalidInput, field="file", names=["line 1", "note"]):
        credit_services.credit_import_create(practice_id=world.practice.pk, data=b"account_number,amount\nA1,5\n",
                                           filename="x.csv", actor=world.clerk)
    with refused(InvalidInput, field="file", names="not UTF-8"):
        credit_services.credit_import_create(practice_id=world.practice.pk, data=b"\xff\xfe\x00a", filename="x.csv",
                                           actor=world.clerk)


def test_the_same_csv_twice_is_a_duplicate(world, pat):
    data = _csv(f"{pat.account_number},10.00,old system,", f"{pat.account_number},2.50,old system,")
    result = credit_services.credit_import_create(practice_id=world.practice.pk, data=data, filename="legacy.csv",
                                                actor=world.clerk)
    assert [c.amount for c in result.credits] == [D("10.00"), D("2.50")]
    with refused(Duplicate, field="file", names="legacy-again.csv"):
        credit_services.credit_import_create(practice_id=world.practice.pk, data=data, filename="legacy-again.csv",
                                           actor=world.clerk)


def test_checkout_refused_after_the_card_was_charged_leaves_no_charge_behind(world, pat):
    """The card is charged before the booking transaction; when the booking is refused the
    patient must not be left paying for nothing (the charge is voided at the processor)."""
    enc, _ = world.visit(pat, date(2025, 5, 1), estimated_pr="30.00", claim=False)
    c = credit_services.manual_credit_add(patient_id=pat.pk, amount="20.00", reason="x", actor=world.clerk)
    with refused(RuleViolation, field="credit_amounts", names=[str(c.pk), "20.00", "25.00"]):
        credit_services.payment_checkout(patient_id=pat.pk, encounter_ids=[enc.pk], credit_amounts={c.pk: "25.00"},
                                         channel="card_reader", card_token="tok_visa", actor=world.clerk)
    charged = sum((ch.amount - ch.refunded for ch in SandboxCharge.objects.all()), D("0"))
    assert charged == 0


def test_ids_that_are_not_ids_get_a_clear_error(world):
    from ledger.errors import InvalidInput

    pat = world.patient()
    enc, _ = world.visit(pat, date(2025, 6, 1), estimated_pr="30.00", claim=False)
    with pytest.raises(InvalidInput, match="'abc' is not an id"):
        credit_services.payment_checkout(patient_id=pat.pk, encounter_ids=[enc.pk], credit_amounts={"abc": "5.00"},
                                         channel="cash", actor=world.clerk)
    with pytest.raises(InvalidInput, match="'x1' is not an id"):
        credit_services.payment_checkout(patient_id=pat.pk, encounter_ids=["x1"], credit_amounts={},
                                         channel="cash", actor=world.clerk)
    with pytest.raises(InvalidInput, match="not both"):
        credit_services.credits_unlock(patient_ids=[pat.pk], credit_ids=[1], actor=world.clerk, reason="r")
    with pytest.raises(InvalidInput, match="'-3' is not an id"):
        credit_services.credits_unlock(credit_ids=[-3], actor=world.clerk, reason="r")
