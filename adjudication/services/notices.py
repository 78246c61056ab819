"""The patient's overpayment notice and election (DOMAIN rule 18, example K).

* `case_send_notice`: a PDF letter (adjudication/letters.py) stored with a `PatientNotice` row, an
  e-mail with the letter attached when the patient has an e-mail address (Django's mail API, sent
  after the commit: never inside the locks), a "notice" event, `Case.notice_sent_on` (the first
  notice: California's refund clock runs from it) and the clock re-applied
  (adjudication.clocks.apply_clock). A second notice is a reminder: recorded as one, the clock
  keeps running from the first.
* `case_record_election`: the patient's answer, refund or keep, with who, when and how (staff now,
  the portal later with the patient as the actor). "keep" stops the clock where the rule allows
  (`ClockRule.election_stops_clock`, California), takes the credit off the refund work list (E's
  work list reads `Case.election`) and resolves the case as kept; the nightly run then applies
  the credit to the patient's balances as usual. "refund" keeps the case open for a refund
  proposal.

Both are one transaction (not durable) that locks the case first."""

import logging
from datetime import date

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.mail import EmailMessage
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from adjudication import letters
from adjudication.clocks import apply_clock, practice_today
from adjudication.models import AdjudicationSettings, Case, CaseEvent, PatientNotice, Proposal
from adjudication.services.core import (
    case_id_of,
    locked_case,
    money_left,
    move,
    pause_auto_apply,
    record,
    resume_auto_apply,
)
from credits.models import Credit
from ledger.access import ensure_staff
from ledger.dates import iso_date
from ledger.errors import Duplicate, InvalidInput, NotFound, RuleViolation
from ledger.history import save_with_history
from ledger.inputs import require_reason
from ledger.locks import lock
from ledger.models import Patient, Practice
from ledger.money import ZERO

log = logging.getLogger(__name__)

ELECTIONS = ("refund", "keep")
VIA = ("staff", "portal")
NOTICE_KINDS = (Case.Kind.PATIENT_CREDIT, Case.Kind.ENCOUNTER)


def _why(case: Case) -> str:
    """Where the money came from, in the patient's words."""
    if case.kind == Case.Kind.ENCOUNTER:
        enc = case.encounter
        return (f"Your visit of {letters.long_date(enc.date_of_service)} was paid more than its charge of "
                f"{letters.dollars(enc.charge)}.")
    credit = case.credit
    visit = credit.origin_encounter
    source = {
        Credit.Source.OVERPAYMENT: "It is an overpayment",
        Credit.Source.RESUBMISSION: "It was returned to your account when a claim was resubmitted",
        Credit.Source.HELD_PAYMENT: "It is a payment held for a visit",
        Credit.Source.MANUAL: "It was added to your account by our billing office",
        Credit.Source.PURCHASED: "It is a credit you bought",
        Credit.Source.IMPORT: "It was carried over from our previous billing system",
    }.get(credit.source, "It is a credit on your account")
    if visit is not None:
        return f"{source}, from your visit of {letters.long_date(visit.date_of_service)}."
    return f"{source}."


@transaction.atomic
def case_send_notice(*, case, actor, reason: str = "Overpayment notice", on: date | None = None) -> PatientNotice:
    """Send the patient the overpayment notice of an open patient-credit or visit case (see the
    module): refused for a payer's credit, a resolved case, a balance that is gone, a day in the
    future. Returns the PatientNotice."""
    case = locked_case(case, actor)
    reason = require_reason(reason)
    if case.kind not in NOTICE_KINDS:
        raise RuleViolation(f"case {case.pk} is about a payer's credit; the notice goes to patients", field="case")
    if case.state == Case.State.RESOLVED:
        raise RuleViolation(f"case {case.pk} is resolved; no notice is due", field="case",
                            code="invalid_transition")
    practice = Practice.objects.get(pk=case.practice_id)
    today = practice_today(practice)
    on = today if on is None else iso_date(on, field="on")
    if on > today:
        raise InvalidInput(f"on: {on} is in the future (today is {today} in the practice's time zone)", field="on")
    if on < case.determined_on:
        raise InvalidInput(f"on: {on} is before the overpayment was determined ({case.determined_on})", field="on")
    amount = money_left(case)
    if amount <= ZERO:
        raise RuleViolation(f"case {case.pk} has no balance left to tell the patient about", field="case")
    patient = Patient.objects.get(pk=case.patient_id)
    earlier = PatientNotice.objects.filter(case_id=case.pk).count()

    before = (case.due_on, case.notice_due_on)
    if case.notice_sent_on is None:
        case.notice_sent_on = on
    apply_clock(case, today=today)
    save_with_history(case, actor=actor, reason=reason)
    deadline = case.due_on if not case.clock_stopped else None

    pdf = letters.notice_pdf(practice_name=practice.name, to=letters.Addressee.of(patient), on=on, amount=amount,
                             why=_why(case), deadline=deadline, reminder=bool(earlier))
    email = (patient.email or "").strip()
    what = f"Reminder {earlier} of the overpayment notice" if earlier else "Overpayment notice"
    text = (f"{what} sent on {on}: {amount} to refund or keep, by letter"
            + (f" and e-mail to {email}" if email else " (no e-mail address on file)")
            + (f"; refund due {deadline}" if deadline else "") + f". {reason}")
    event = record(case, CaseEvent.Kind.NOTICE, text, actor=actor, data={
        "sent_on": str(on), "amount": str(amount), "reminder": earlier, "emailed_to": email,
        "due_on": [str(before[0]) if before[0] else None, str(case.due_on) if case.due_on else None]})
    if before != (case.due_on, case.notice_due_on):
        record(case, CaseEvent.Kind.CLOCK, f"Clock after the notice of {on}: due "
               f"{case.due_on or 'no date (stopped or paused)'}", actor=actor,
               data={"due_on": str(case.due_on) if case.due_on else None,
                     "notice_due_on": str(case.notice_due_on) if case.notice_due_on else None})
    notice = PatientNotice(case=case, event=event, sent_on=on, emailed_to=email, sent_by=actor)
    notice.letter.save(f"notice-case{case.pk}-{on}-{earlier + 1}.pdf", ContentFile(pdf), save=False)
    notice.save()
    if email:
        message = _email(practice=practice, patient=patient, to=email, amount=amount, deadline=deadline, on=on,
                         reminder=bool(earlier), why=_why(case), pdf=pdf, filename=f"notice-{on}.pdf")
        transaction.on_commit(lambda: _send(message, case_id=case.pk))
    return notice


def _email(*, practice, patient, to, amount, deadline, on, reminder, why, pdf, filename) -> EmailMessage:
    sender = (AdjudicationSettings.objects.filter(practice_id=practice.pk).values_list("notice_sender", flat=True)
              .first() or settings.DEFAULT_FROM_EMAIL)
    context = {"practice": practice.name, "patient": f"{patient.first_name} {patient.last_name}".strip(),
               "amount": letters.dollars(amount), "deadline": letters.long_date(deadline) if deadline else "",
               "on": letters.long_date(on), "reminder": reminder, "why": why}
    subject = ("Reminder: " if reminder else "") + f"{practice.name}: a credit balance of {context['amount']}"
    message = EmailMessage(subject=subject, body=render_to_string("adjudication/email/notice.txt", context),
                           from_email=sender, to=[to])
    message.attach(filename, pdf, "application/pdf")
    return message


def _send(message: EmailMessage, *, case_id: int) -> None:
    """After the commit: a mail server that is down does not undo the notice (the letter is kept
    and the notice recorded); the failure is logged for the operator."""
    try:
        message.send(fail_silently=False)
    except Exception:  # any transport error: logged, the recorded notice stands
        log.exception("the overpayment notice e-mail of case %s was not sent", case_id)


# --- the election --------------------------------------------------------------------------------

def _locked_for_election(case, actor) -> tuple[Case, bool]:
    """The patient themself (their portal login) for their own case, else staff of the practice;
    then the case row locked. Returns (case, by_patient)."""
    case_id = case_id_of(case)
    row = Case.objects.filter(pk=case_id).only("pk", "practice_id", "patient_id").first()
    if row is None:
        raise NotFound(f"unknown case {case_id}", field="case")
    by_patient = (actor is not None and getattr(actor, "pk", None) is not None and row.patient_id is not None
                  and Patient.objects.filter(pk=row.patient_id, user_id=actor.pk).exists())
    if not by_patient:
        ensure_staff(actor, row.practice_id)
    return lock(cases=[row.pk]).cases[row.pk], by_patient


@transaction.atomic
def case_record_election(*, case, actor, reason: str, election: str, via: str = "staff") -> Case:
    """Record the patient's answer to the notice (see the module). The same answer twice is a
    Duplicate; a patient may change "refund" to "keep" while the case is open, when no resolution
    is live on it."""
    case, by_patient = _locked_for_election(case, actor)
    reason = require_reason(reason)
    if election not in ELECTIONS:
        raise InvalidInput(f"election: '{election}' is not one of refund, keep", field="election")
    if via not in VIA:
        raise InvalidInput(f"via: '{via}' is not one of {', '.join(VIA)}", field="via")
    if by_patient and via != "portal":
        raise InvalidInput("a patient answers through the portal (via='portal')", field="via")
    if not by_patient and via == "portal":
        raise InvalidInput("via='portal' is the patient's own answer; staff record it with via='staff'", field="via")
    if case.kind not in NOTICE_KINDS:
        raise RuleViolation(f"case {case.pk} is about a payer's credit; only a patient elects", field="case")
    if case.state == Case.State.RESOLVED:
        raise RuleViolation(f"case {case.pk} is resolved; the election is no longer open", field="case",
                            code="invalid_transition")
    if case.election == election:
        raise Duplicate(f"the patient's election '{election}' is already recorded on case {case.pk} "
                        f"({case.election_at:%Y-%m-%d})", field="election")
    live = Proposal.objects.filter(case_id=case.pk, state__in=Proposal.LIVE).first()
    if election == "keep" and live is not None:
        raise RuleViolation(f"case {case.pk} has a {live.get_state_display().lower()} resolution "
                            f"({live.get_kind_display().lower()}); a manager rejects it before the credit is kept",
                            field="case")
    if election == "keep" and money_left(case) <= ZERO:
        raise RuleViolation(f"case {case.pk} has no balance left to keep", field="case")

    who = "the patient (portal)" if by_patient else f"{actor.get_username()} for the patient"
    previous = case.election
    case.election, case.election_at, case.election_by = election, timezone.now(), actor
    due_before = case.due_on
    # the clock stops on "keep" where the case's rule says so (ClockRule.election_stops_clock)
    apply_clock(case, today=practice_today(Practice.objects.get(pk=case.practice_id)))
    stops = case.clock_stopped
    save_with_history(case, actor=actor, reason=reason)
    data = {"election": election, "via": via, "by_patient": by_patient, "previous": previous or None,
            "clock_stopped": stops, "due_on_before": str(due_before) if due_before else None}
    if election == "refund":
        paused = pause_auto_apply(case, actor=actor)
        record(case, CaseEvent.Kind.ELECTION, f"The patient elects a refund, recorded by {who}: {reason}. "
               "A refund proposal is due." + (" The nightly run leaves the patient's credits alone meanwhile."
                                              if paused else ""),
               actor=actor, data={**data, "needs": "refund_proposal", "paused_auto_apply": paused})
        return case
    resume_auto_apply(case, actor=actor, why="the patient keeps the credit")
    record(case, CaseEvent.Kind.ELECTION, f"The patient elects to keep the credit, recorded by {who}: {reason}. "
           + ("The refund clock stops (the rule allows it)." if stops
              else "The rule does not stop the refund clock on an election."), actor=actor, data=data)
    move(case, "resolve", actor=actor, reason=reason, outcome=Case.Outcome.KEPT,
         note="kept by the patient's election", by=actor, data={"election": "keep", "via": via})
    return case
