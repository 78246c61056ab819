"""The patient's overpayment notice and election (rule 18, issue 11 item 6): the notice is a PDF
letter stored with its row and an e-mail with it attached (after the commit), recorded on the
case; a second one is a reminder; the election is kept with who, when and how, "keep" resolves the
case as kept and stops the clock where the rule allows; refusals write nothing."""

import re
import zlib
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import time_machine
from django.core import mail
from django.core.files.storage import default_storage

from adjudication import letters
from adjudication.models import AdjudicationSettings, Case, CaseEvent, ClockRule, PatientNotice, Proposal
from adjudication.services.notices import case_record_election, case_send_notice
from credits.models import Credit
from ledger.errors import Duplicate, InvalidInput, NotFound, PermissionDenied, RuleViolation
from ledger.models import Membership
from tests.factories import MembershipFactory, PracticeFactory, UserFactory

pytestmark = pytest.mark.django_db

NOON = datetime(2026, 6, 22, 17, tzinfo=UTC)  # 22 Jun, noon in Chicago


def patient_case(world, amount="150.00", *, determined_on=date(2026, 6, 20), patient=None, **fields) -> Case:
    """A case on a real patient credit (a payment with nothing to pay for), as the scan opens it."""
    patient = patient or world.patient(first_name="Ana", last_name="Reyes", email="ana@example.org",
                                       address_line1="12 Elm St", city="Austin", us_state="TX",
                                       postal_code="78701")
    world.pay(patient, amount)
    credit = Credit.objects.filter(patient=patient).latest("pk")
    return Case.objects.create(practice=world.practice, kind=Case.Kind.PATIENT_CREDIT,
                               cause=Case.Cause.PATIENT_OVERPAYMENT, source=credit.source, credit=credit,
                               patient=patient, amount=credit.on_hand, determined_on=determined_on, **fields)


def pdf_text(data: bytes) -> str:
    """The text drawn on the pages of an fpdf2 PDF (deflated streams inflated)."""
    out = []
    for m in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", data, re.DOTALL):
        body = m.group(1)
        try:
            body = zlib.decompress(body)
        except zlib.error:
            pass
        out.extend(s.decode("latin-1") for s in re.findall(rb"\((.*?)(?<!\\)\)\s*Tj", body, re.DOTALL))
    return " ".join(out).replace("\\(", "(").replace("\\)", ")")


@time_machine.travel(NOON, tick=False)
def test_notice_is_a_pdf_letter_and_an_email_with_it_attached(world, django_capture_on_commit_callbacks):
    case = patient_case(world)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        notice = case_send_notice(case=case, actor=world.clerk, reason="Overpayment notice")
        assert mail.outbox == []  # not inside the transaction: after the commit
    assert len(callbacks) == 1

    notice.refresh_from_db()
    assert (notice.sent_on, notice.emailed_to, notice.sent_by) == (date(2026, 6, 22), "ana@example.org", world.clerk)
    stored = default_storage.open(notice.letter.name).read()
    assert stored.startswith(b"%PDF")
    text = pdf_text(stored)
    assert "Ana Reyes" in text and "12 Elm St" in text and "Austin, TX 78701" in text
    assert "$150.00" in text and "Main Street Clinic" in text and "June 22, 2026" in text
    assert "Refund" in text and "Keep it as a credit" in text and "call our office" in text

    (message,) = mail.outbox
    assert message.to == ["ana@example.org"] and message.from_email == "billing@settle.invalid"
    assert "$150.00" in message.subject and "Main Street Clinic" in message.subject
    assert "Dear Ana Reyes" in message.body and "Refund" in message.body
    (_name, content, mimetype), = message.attachments
    assert mimetype == "application/pdf" and content.startswith(b"%PDF") and content == stored

    case.refresh_from_db()
    assert case.notice_sent_on == date(2026, 6, 22)
    event = notice.event
    assert (event.case_id, event.kind, event.actor) == (case.pk, CaseEvent.Kind.NOTICE, world.clerk)
    assert event.data["reminder"] == 0 and event.data["emailed_to"] == "ana@example.org"
    assert "Overpayment notice sent on 2026-06-22: 150.00" in event.text
    last = case.history.latest()
    assert (last.history_user, last.history_change_reason, last.notice_sent_on) == (
        world.clerk, "Overpayment notice", date(2026, 6, 22))


@time_machine.travel(NOON, tick=False)
def test_letter_text_readable_uncompressed_and_sender_from_settings(world, monkeypatch,
                                                                    django_capture_on_commit_callbacks):
    monkeypatch.setattr(letters, "COMPRESS", False)
    AdjudicationSettings.objects.create(practice=world.practice, notice_sender="Billing <billing@clinic.example>")
    case = patient_case(world, "42.10")
    with django_capture_on_commit_callbacks(execute=True):
        notice = case_send_notice(case=case.pk, actor=world.clerk, on=date(2026, 6, 21))
    raw = default_storage.open(notice.letter.name).read()
    assert b"$42.10" in raw and b"June 21, 2026" in raw  # no compression: the text is in the bytes
    assert mail.outbox[0].from_email == "Billing <billing@clinic.example>"
    assert notice.sent_on == date(2026, 6, 21)


@time_machine.travel(NOON, tick=False)
def test_no_email_address_means_a_letter_only(world, django_capture_on_commit_callbacks):
    patient = world.patient(first_name="Bo", last_name="Lee")
    case = patient_case(world, patient=patient)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        notice = case_send_notice(case=case, actor=world.clerk)
    assert callbacks == [] and mail.outbox == []
    assert notice.emailed_to == "" and default_storage.open(notice.letter.name).read().startswith(b"%PDF")
    assert "no e-mail address on file" in notice.event.text


def test_a_second_notice_is_a_reminder_and_the_clock_keeps_the_first(world, django_capture_on_commit_callbacks):
    case = patient_case(world)
    with time_machine.travel(NOON, tick=False), django_capture_on_commit_callbacks(execute=True):
        case_send_notice(case=case, actor=world.clerk)
    with time_machine.travel(datetime(2026, 7, 6, 17, tzinfo=UTC), tick=False), \
            django_capture_on_commit_callbacks(execute=True):
        second = case_send_notice(case=case, actor=world.manager, reason="No answer yet: reminder")
    case.refresh_from_db()
    assert case.notice_sent_on == date(2026, 6, 22)  # the first notice
    assert second.sent_on == date(2026, 7, 6) and second.event.data["reminder"] == 1
    assert second.event.text.startswith("Reminder 1 of the overpayment notice sent on 2026-07-06")
    assert [n.sent_on for n in PatientNotice.objects.filter(case=case).order_by("pk")] == [
        date(2026, 6, 22), date(2026, 7, 6)]
    assert [m.subject.startswith("Reminder: ") for m in mail.outbox] == [False, True]


@time_machine.travel(NOON, tick=False)
def test_notice_refusals_write_nothing(world):
    case = patient_case(world)
    other = PracticeFactory()
    outsider = MembershipFactory(practice=other, user=UserFactory(username="outsider"),
                                 role=Membership.Role.MANAGER).user
    before = case.history.count()
    with pytest.raises(PermissionDenied):
        case_send_notice(case=case, actor=outsider)
    with pytest.raises(NotFound):
        case_send_notice(case=999999, actor=world.clerk)
    with pytest.raises(InvalidInput):
        case_send_notice(case="x", actor=world.clerk)
    with pytest.raises(InvalidInput) as e:
        case_send_notice(case=case, actor=world.clerk, on=date(2026, 6, 23))
    assert "future" in e.value.message and e.value.field == "on"
    with pytest.raises(InvalidInput):
        case_send_notice(case=case, actor=world.clerk, on=date(2026, 6, 19))  # before it was determined
    with pytest.raises(InvalidInput):
        case_send_notice(case=case, actor=world.clerk, reason="  ")
    assert PatientNotice.objects.count() == 0 and CaseEvent.objects.filter(case=case).count() == 0
    assert case.history.count() == before and mail.outbox == []


@time_machine.travel(NOON, tick=False)
def test_no_notice_for_a_resolved_case_or_a_balance_gone(world):
    case = patient_case(world)
    case_record_election(case=case, actor=world.clerk, reason="Patient called: keep it", election="keep")
    with pytest.raises(RuleViolation) as e:
        case_send_notice(case=case, actor=world.clerk)
    assert "resolved" in e.value.message
    gone = patient_case(world, "20.00", patient=world.patient())
    Credit.objects.filter(pk=gone.credit_id).update(on_hand=0, removed_amount=Decimal("20.00"), state="removed")
    with pytest.raises(RuleViolation) as e:
        case_send_notice(case=gone, actor=world.clerk)
    assert "no balance left" in e.value.message
    assert PatientNotice.objects.count() == 0


# --- the election --------------------------------------------------------------------------------

@time_machine.travel(NOON, tick=False)
def test_keep_resolves_the_case_as_kept_with_who_when_and_how(world):
    case = patient_case(world)
    out = case_record_election(case=case, actor=world.clerk, reason="Patient called: keep it for visits",
                               election="keep")
    case.refresh_from_db()
    assert out.pk == case.pk
    assert (case.election, case.election_by, case.election_at) == ("keep", world.clerk, NOON)
    assert (case.state, case.outcome, case.outcome_note) == (Case.State.RESOLVED, Case.Outcome.KEPT,
                                                             "kept by the patient's election")
    assert case.resolved_by == world.clerk and not case.automatic
    kinds = list(CaseEvent.objects.filter(case=case).values_list("kind", "to_state"))
    assert kinds == [(CaseEvent.Kind.ELECTION, ""), (CaseEvent.Kind.STATE, Case.State.RESOLVED)]
    election = CaseEvent.objects.get(case=case, kind=CaseEvent.Kind.ELECTION)
    assert election.data["via"] == "staff" and election.data["by_patient"] is False
    assert "clerk for the patient" in election.text
    assert case.history.latest().history_change_reason == "Patient called: keep it for visits"
    # the credit itself is untouched: the nightly run uses it as usual
    assert Credit.objects.get(pk=case.credit_id).on_hand == Decimal("150.00")


@time_machine.travel(NOON, tick=False)
def test_keep_stops_the_clock_only_where_the_rule_allows(world):
    texas = patient_case(world, "80.00")  # the Texas rule: 30 days, an election does not stop it
    case_record_election(case=texas, actor=world.clerk, reason="Keep", election="keep")
    texas.refresh_from_db()
    assert texas.clock_rule.us_state == "TX" and not texas.clock_rule.election_stops_clock
    assert (texas.clock_stopped, texas.due_on, texas.state) == (False, date(2026, 7, 20), Case.State.RESOLVED)
    assert "does not stop" in CaseEvent.objects.get(case=texas, kind="election").text

    # a practice's own rule for its state (stricter than the law, and keep stops it) beats the state's
    own = ClockRule.objects.create(kind=ClockRule.Kind.PATIENT_REFUND, name="Our policy: keep stops it (test)",
                                   practice=world.practice, us_state="TX", days=20, election_stops_clock=True)
    case = patient_case(world, patient=world.patient())
    case_record_election(case=case, actor=world.clerk, reason="Keep", election="keep")
    case.refresh_from_db()
    assert (case.clock_rule, case.clock_stopped, case.due_on, case.state) == (own, True, None, Case.State.RESOLVED)
    assert "The refund clock stops" in CaseEvent.objects.get(case=case, kind="election").text


@time_machine.travel(NOON, tick=False)
def test_refund_keeps_the_case_open_for_a_refund_proposal(world):
    case = patient_case(world)
    case_record_election(case=case, actor=world.clerk, reason="Patient wants the money back", election="refund")
    case.refresh_from_db()
    assert (case.state, case.election, case.outcome, case.clock_stopped) == (Case.State.IDENTIFIED, "refund", "",
                                                                              False)
    event = CaseEvent.objects.get(case=case, kind=CaseEvent.Kind.ELECTION)
    assert event.data["needs"] == "refund_proposal" and "A refund proposal is due" in event.text
    with pytest.raises(Duplicate):
        case_record_election(case=case, actor=world.clerk, reason="again", election="refund")
    # a change of mind to keep, while nothing is proposed, resolves it
    case_record_election(case=case, actor=world.manager, reason="Patient called back: keep", election="keep")
    case.refresh_from_db()
    assert (case.state, case.election, case.election_by) == (Case.State.RESOLVED, "keep", world.manager)
    assert CaseEvent.objects.filter(case=case, kind="election").latest("pk").data["previous"] == "refund"


@time_machine.travel(NOON, tick=False)
def test_the_patient_answers_for_their_own_case_through_the_portal(world):
    login = UserFactory(username="ana-portal", is_staff=False)
    patient = world.patient(first_name="Ana", last_name="Reyes", user=login)
    case = patient_case(world, patient=patient)
    with pytest.raises(InvalidInput):
        case_record_election(case=case, actor=login, reason="Keep", election="keep")  # via must be the portal
    case_record_election(case=case, actor=login, reason="Chosen in the portal", election="keep", via="portal")
    case.refresh_from_db()
    assert (case.election, case.election_by, case.state) == ("keep", login, Case.State.RESOLVED)
    event = CaseEvent.objects.get(case=case, kind="election")
    assert event.data["by_patient"] is True and event.actor == login and "the patient (portal)" in event.text
    # someone else's login: refused
    other_login = UserFactory(username="someone-else", is_staff=False)
    world.patient(user=other_login)
    theirs = patient_case(world, "30.00", patient=world.patient())
    with pytest.raises(PermissionDenied):
        case_record_election(case=theirs, actor=other_login, reason="Keep", election="keep", via="portal")
    with pytest.raises(InvalidInput):
        case_record_election(case=theirs, actor=world.clerk, reason="Keep", election="keep", via="portal")


@time_machine.travel(NOON, tick=False)
def test_election_refusals_write_nothing(world):
    case = patient_case(world)
    outsider = MembershipFactory(practice=PracticeFactory(), user=UserFactory(username="outsider"),
                                 role=Membership.Role.MANAGER).user
    with pytest.raises(PermissionDenied):
        case_record_election(case=case, actor=outsider, reason="Keep", election="keep")
    with pytest.raises(InvalidInput) as e:
        case_record_election(case=case, actor=world.clerk, reason="Keep", election="donate")
    assert e.value.field == "election"
    with pytest.raises(InvalidInput):
        case_record_election(case=case, actor=world.clerk, reason="Keep", election="keep", via="fax")
    with pytest.raises(InvalidInput):
        case_record_election(case=case, actor=world.clerk, reason="", election="keep")
    with pytest.raises(NotFound):
        case_record_election(case=424242, actor=world.clerk, reason="Keep", election="keep")
    case.refresh_from_db()
    assert (case.election, case.election_by, case.state) == ("", None, Case.State.IDENTIFIED)
    assert not CaseEvent.objects.filter(case=case).exists()
    case_record_election(case=case, actor=world.clerk, reason="Keep", election="keep")
    with pytest.raises(RuleViolation) as e:
        case_record_election(case=case, actor=world.clerk, reason="Refund after all", election="refund")
    assert "resolved" in e.value.message


@time_machine.travel(NOON, tick=False)
def test_a_mail_server_failure_is_logged_and_the_notice_stands(world, monkeypatch, caplog,
                                                               django_capture_on_commit_callbacks):
    case = patient_case(world)

    def down(self, fail_silently=False):
        raise ConnectionRefusedError("smtp down")

    monkeypatch.setattr("django.core.mail.EmailMessage.send", down)
    with django_capture_on_commit_callbacks(execute=True):
        notice = case_send_notice(case=case, actor=world.clerk)
    assert PatientNotice.objects.filter(pk=notice.pk, emailed_to="ana@example.org").exists()
    assert f"the overpayment notice e-mail of case {case.pk} was not sent" in caplog.text


@time_machine.travel(NOON, tick=False)
def test_keep_is_refused_while_a_resolution_is_live(world):
    case = patient_case(world)
    Proposal.objects.create(case=case, kind=Proposal.Kind.REFUND_PATIENT, amount=Decimal("150.00"),
                            method="check", reason="Refund by check", proposed_by=world.clerk)
    with pytest.raises(RuleViolation) as e:
        case_record_election(case=case, actor=world.clerk, reason="Keep", election="keep")
    assert "a manager rejects it before the credit is kept" in e.value.message
    case.refresh_from_db()
    assert (case.election, case.state) == ("", Case.State.IDENTIFIED)
    # a refund election is fine alongside a refund proposal
    case_record_election(case=case, actor=world.clerk, reason="Refund it", election="refund")
    assert Case.objects.get(pk=case.pk).election == "refund"
