"""Asking for a refund from the portal (DOMAIN rule 8, example Q) and answering an overpayment
notice (rule 18) through the pages, with the patient's login as the actor."""

from datetime import UTC, date, datetime
from decimal import Decimal as D

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from adjudication.models import Case, CaseEvent
from adjudication.services.notices import case_record_election, case_send_notice
from credits.models import Credit, CreditApplication, Refund
from credits.nightly import nightly_apply
from credits.services import credit_purchase, credits_apply, refund_approve, refund_issue, refund_reject
from ledger.models import Patient, Payment, SandboxRefund
from ledger.services import patient_set_auto_apply
from tests.portal.conftest import sign_in

pytestmark = pytest.mark.django_db

NOON = datetime(2026, 6, 22, 17, tzinfo=UTC)  # 22 Jun, noon in Chicago


def portal_credit(patient, amount="25.00") -> Credit:
    """Example Q's credit: $25 available from a portal payment (credits bought in the portal)."""
    result = credit_purchase(patient_id=patient.pk, amount=amount, channel=Payment.Channel.PORTAL,
                             actor=patient.user, card_token="tok_visa")
    return result.credits[0]


def ask_refund(client, credit, **fields):
    page = client.get(reverse("portal:refund", args=[credit.pk]))
    assert page.status_code == 200
    data = {"amount": page.context["form"]["amount"].value(), "reason": "I moved away",
            "form_key": page.context["form"]["form_key"].value(), **fields}
    return page, client.post(reverse("portal:refund", args=[credit.pk]), data)


def test_example_q_below_the_threshold_it_goes_back_to_the_card_at_once(world, portal_patient, client):
    credit = portal_credit(portal_patient)
    sign_in(client, portal_patient)
    page, r = ask_refund(client, credit)
    assert page.context["form"]["amount"].value() == "25.00"  # all on hand by default
    assert "goes back to the card" in page.content.decode()
    assert r.status_code == 302 and r["Location"] == reverse("portal:refunds")
    refund = Refund.objects.get()
    assert (refund.state, refund.method, refund.amount, refund.payment_id) == (
        Refund.State.ISSUED, Refund.Method.ORIGINAL_PAYMENT, D("25.00"), credit.payment_id)
    assert refund.requested_by == portal_patient.user and refund.reason == "I moved away"
    assert SandboxRefund.objects.get().amount == D("25.00")
    credit.refresh_from_db()
    assert (credit.state, credit.on_hand, credit.refunded_amount) == (Credit.State.REFUNDED, 0, D("25.00"))
    listing = client.get(reverse("portal:refunds")).content.decode()
    assert f"Sent back to your card on {timezone.localtime(refund.issued_at):%m/%d/%Y}" in listing
    assert "$25.00" in listing


@time_machine.travel(NOON, tick=False)
def test_example_q_above_the_threshold_it_waits_for_a_manager(world, portal_patient, client):
    world.practice.refund_approval_threshold = D("20.00")
    world.practice.save()
    credit = portal_credit(portal_patient)
    sign_in(client, portal_patient)
    _, r = ask_refund(client, credit)
    assert r.status_code == 302
    refund = Refund.objects.get()
    assert (refund.state, refund.needs_approval, refund.method) == (Refund.State.REQUESTED, True,
                                                                    Refund.Method.ORIGINAL_PAYMENT)
    assert not SandboxRefund.objects.exists()
    credit.refresh_from_db()
    assert (credit.on_hand, credit.refund_hold) == (0, D("25.00"))
    assert "Waiting for approval" in client.get(reverse("portal:refunds")).content.decode()
    refund_approve(refund_id=refund.pk, actor=world.manager, reason="ok")
    assert "being sent back to your card" in client.get(reverse("portal:refunds")).content.decode()
    refund_issue(refund_id=refund.pk, actor=world.manager)
    assert "Sent back to your card on 06/22/2026" in client.get(reverse("portal:refunds")).content.decode()


def test_a_declined_refund_says_why_and_a_manual_credit_goes_by_check(world, portal_patient, client):
    world.practice.refund_approval_threshold = D("10.00")
    world.practice.save()
    credit = portal_credit(portal_patient, "30.00")
    sign_in(client, portal_patient)
    ask_refund(client, credit, amount="12.00")
    refund = Refund.objects.get()
    refund_reject(refund_id=refund.pk, actor=world.manager, reason="the credit pays your visit next week")
    assert "Declined: the credit pays your visit next week" in client.get(reverse("portal:refunds")).content.decode()
    # a credit with no portal or card payment behind it: a check
    world.pay(portal_patient, "15.00", channel="check")
    by_check = Credit.objects.filter(patient=portal_patient, payment__channel="check").get()
    page, r = ask_refund(client, by_check, amount="5.00")
    assert "mail you a check" in page.content.decode()
    r2 = Refund.objects.get(credit=by_check)
    assert r2.method == Refund.Method.CHECK and r2.state == Refund.State.APPROVED
    assert "A check will be mailed" in client.get(reverse("portal:refunds")).content.decode()


def test_refund_amounts_and_reason_are_checked_and_nothing_is_written(world, portal_patient, client):
    credit = portal_credit(portal_patient)
    sign_in(client, portal_patient)
    for amount, reason, field, words in [
        ("-1.00", "x", "amount", ""), ("0", "x", "amount", "greater than zero"), ("0.001", "x", "amount", ""),
        ("25.01", "x", "amount", "more than the $25.00 on hand"), ("5.00", "", "reason", "required"),
    ]:
        _, r = ask_refund(client, credit, amount=amount, reason=reason)
        assert r.status_code == 400, amount
        errs = r.context["form"].errors[field]
        assert errs and words in " ".join(errs).lower(), (amount, errs)
    assert not Refund.objects.exists()
    credit.refresh_from_db()
    assert credit.on_hand == D("25.00") and credit.refund_hold == 0


def test_a_locked_credit_cannot_be_asked_back(world, portal_patient, client):
    enc, _ = world.visit(portal_patient, date(2026, 3, 3), estimated_pr="40.00")  # its claim waits on the payer
    locked = credit_purchase(patient_id=portal_patient.pk, amount="40.00", channel=Payment.Channel.PORTAL,
                             actor=portal_patient.user, card_token="tok_visa", encounter_id=enc.pk).credits[0]
    assert locked.state == Credit.State.LOCKED
    sign_in(client, portal_patient)
    page = client.get(reverse("portal:refund", args=[locked.pk]))
    assert page.status_code == 200 and "cannot be refunded now" in page.content.decode()
    r = client.post(reverse("portal:refund", args=[locked.pk]), {"amount": "40.00", "reason": "x",
                                                                 "form_key": "k" * 32})
    assert r.status_code == 200 and not Refund.objects.exists()


# --- the overpayment notice ----------------------------------------------------------------------

def notice_case(world, patient, amount="150.00") -> Case:
    """A case on the patient's credit (a payment with nothing to pay for), its notice sent."""
    Patient.objects.filter(pk=patient.pk).update(us_state="TX", address_line1="12 Elm St", city="Austin",
                                                 postal_code="78701")
    world.pay(patient, amount)
    credit = Credit.objects.filter(patient=patient).latest("pk")
    case = Case.objects.create(practice=world.practice, kind=Case.Kind.PATIENT_CREDIT,
                               cause=Case.Cause.PATIENT_OVERPAYMENT, source=credit.source, credit=credit,
                               patient=patient, amount=credit.on_hand, determined_on=date(2026, 6, 20))
    case_send_notice(case=case, actor=world.clerk)
    case.refresh_from_db()
    return case


@time_machine.travel(NOON, tick=False)
def test_keep_from_the_portal_resolves_the_case_and_the_nightly_run_applies_the_credit(world, portal_patient,
                                                                                       client):
    case = notice_case(world, portal_patient)
    sign_in(client, portal_patient)
    page = client.get(reverse("portal:notice", args=[case.pk]))
    html = page.content.decode()
    assert page.status_code == 200 and "$150.00" in html and "07/20/2026" in html  # Texas: 30 days
    letter = client.get(reverse("portal:notice_letter", args=[case.pk]))
    assert letter.status_code == 200 and letter.content.startswith(b"%PDF")
    r = client.post(reverse("portal:notice", args=[case.pk]), {
        "election": "keep", "reason": "", "form_key": page.context["form"]["form_key"].value()})
    assert r.status_code == 302
    case.refresh_from_db()
    assert (case.election, case.election_by, case.state, case.outcome) == (
        "keep", portal_patient.user, Case.State.RESOLVED, Case.Outcome.KEPT)
    assert not case.clock_stopped  # the Texas rule does not stop the clock on an election (it is resolved)
    ev = CaseEvent.objects.get(case=case, kind=CaseEvent.Kind.ELECTION)
    assert ev.actor == portal_patient.user and ev.data["via"] == "portal" and ev.data["by_patient"] is True
    assert "Answered in the patient portal" in ev.text
    # the nightly run applies the kept credit to a new balance as usual
    enc, _ = world.visit(portal_patient, date(2026, 6, 1), charge="100.00", estimated_pr="60.00", claim=False)
    credits_apply(patient_id=portal_patient.pk, actor=world.clerk, respect_settings=False)
    enc.refresh_from_db()
    assert enc.balance == 0 and CreditApplication.objects.get(credit=case.credit).amount == D("60.00")
    # answered: the form is gone
    assert "Send my answer" not in client.get(reverse("portal:notice", args=[case.pk])).content.decode()


@time_machine.travel(NOON, tick=False)
def test_refund_from_the_portal_keeps_the_case_open_for_a_refund_proposal(world, portal_patient, client):
    case = notice_case(world, portal_patient)
    sign_in(client, portal_patient)
    page = client.get(reverse("portal:notice", args=[case.pk]))
    r = client.post(reverse("portal:notice", args=[case.pk]), {
        "election": "refund", "reason": "Please mail it", "form_key": page.context["form"]["form_key"].value()})
    assert r.status_code == 302
    case.refresh_from_db()
    assert (case.election, case.state, case.election_by) == ("refund", Case.State.IDENTIFIED, portal_patient.user)
    ev = CaseEvent.objects.get(case=case, kind=CaseEvent.Kind.ELECTION)
    assert ev.data["needs"] == "refund_proposal" and "Please mail it" in ev.text
    # the nightly run honours the answer: the patient's credits are left alone while the refund is due
    portal_patient.refresh_from_db()
    assert portal_patient.exclude_from_auto_apply
    assert portal_patient.history.order_by("-history_id").first().history_user == portal_patient.user
    enc, _ = world.visit(portal_patient, date(2026, 6, 1), charge="100.00", estimated_pr="60.00", claim=False)
    nightly_apply(practice_id=world.practice.pk)
    enc.refresh_from_db()
    assert enc.balance == D("60.00") and not CreditApplication.objects.filter(credit=case.credit).exists()
    # still open: the patient may change to keep
    assert "Send my answer" in client.get(reverse("portal:notice", args=[case.pk])).content.decode()


@time_machine.travel(NOON, tick=False)
def test_refund_then_keep_resumes_the_nightly_run_which_applies_the_kept_credit(world, portal_patient, client):
    case = notice_case(world, portal_patient)
    sign_in(client, portal_patient)
    for election in ("refund", "keep"):
        page = client.get(reverse("portal:notice", args=[case.pk]))
        key = page.context["form"]["form_key"].value()
        r = client.post(reverse("portal:notice", args=[case.pk]), {"election": election, "reason": "", "form_key": key})
        assert r.status_code == 302
        portal_patient.refresh_from_db()
        assert portal_patient.exclude_from_auto_apply is (election == "refund")
    case.refresh_from_db()
    assert (case.state, case.outcome) == (Case.State.RESOLVED, Case.Outcome.KEPT)
    enc, _ = world.visit(portal_patient, date(2026, 6, 1), charge="100.00", estimated_pr="60.00", claim=False)
    nightly_apply(practice_id=world.practice.pk)
    enc.refresh_from_db()
    assert enc.balance == 0 and CreditApplication.objects.get(credit=case.credit).amount == D("60.00")


@time_machine.travel(NOON, tick=False)
def test_a_patient_staff_excluded_stays_excluded_after_the_case(world, portal_patient):
    """A refund election pauses the nightly run only when it was on: staff's own exclusion stands."""
    case = notice_case(world, portal_patient)
    patient_set_auto_apply(patient_id=portal_patient.pk, excluded=True, actor=world.clerk, reason="asked")
    case_record_election(case=case, actor=world.clerk, reason="phoned", election="refund")
    case_record_election(case=case, actor=world.clerk, reason="phoned again", election="keep")
    portal_patient.refresh_from_db()
    assert portal_patient.exclude_from_auto_apply


@time_machine.travel(NOON, tick=False)
def test_another_patients_notice_is_a_404(world, portal_patient, other_patient, client):
    case = notice_case(world, other_patient)
    sign_in(client, portal_patient)
    assert client.get(reverse("portal:notice", args=[case.pk])).status_code == 404
    assert client.get(reverse("portal:notice_letter", args=[case.pk])).status_code == 404
    r = client.post(reverse("portal:notice", args=[case.pk]), {"election": "keep", "form_key": "k" * 32})
    assert r.status_code == 404
    case.refresh_from_db()
    assert case.election == "" and case.state != Case.State.RESOLVED


def test_a_refund_form_sent_twice_asks_once(world, portal_patient, client):
    credit = portal_credit(portal_patient)
    sign_in(client, portal_patient)
    page = client.get(reverse("portal:refund", args=[credit.pk]))
    data = {"amount": "10.00", "reason": "Twice", "form_key": page.context["form"]["form_key"].value()}
    first = client.post(reverse("portal:refund", args=[credit.pk]), data)
    second = client.post(reverse("portal:refund", args=[credit.pk]), data)
    assert first["Location"] == second["Location"] == reverse("portal:refunds")
    assert Refund.objects.count() == 1 and SandboxRefund.objects.count() == 1
    credit.refresh_from_db()
    assert credit.on_hand == D("15.00")


@time_machine.travel(NOON, tick=False)
def test_a_notice_answer_must_be_one_of_the_two(world, portal_patient, client):
    case = notice_case(world, portal_patient)
    sign_in(client, portal_patient)
    for election in ["", "give it to charity"]:
        page = client.get(reverse("portal:notice", args=[case.pk]))
        r = client.post(reverse("portal:notice", args=[case.pk]), {
            "election": election, "form_key": page.context["form"]["form_key"].value()})
        assert r.status_code == 400 and r.context["form"].errors["election"]
    case.refresh_from_db()
    assert case.election == "" and not CaseEvent.objects.filter(case=case, kind=CaseEvent.Kind.ELECTION).exists()
