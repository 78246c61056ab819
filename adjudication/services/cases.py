"""The case workflow (DOMAIN rule 15, issue 11 items 2 and 3): investigating, waiting on the
payer, the good-faith investigation that suspends a Medicare/Medicaid clock (rule 17, example I),
notes, balance confirmations, source reviews, documents, payer contacts, assignment, reopening.

Each service is one transaction (not durable: a resolution may call it inside its own) that starts
with `locked_case()` (the actor must be staff of the case's practice; the case row is locked and
read fresh), checks everything it is given, then writes the change with its history row (acting
user and reason) and its append-only event together. A refusal is a ledger.errors error that says
what and where, with nothing written. Money never moves here (adjudication/services/proposals.py)."""

import datetime as dt

from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.db import transaction

from adjudication.clocks import apply_clock, practice_today
from adjudication.documents import check_upload, storage_name
from adjudication.models import Case, CaseDocument, CaseEvent, PayerContact
from adjudication.services.core import locked_case, money_left, move, record
from ledger.access import is_integration, is_system
from ledger.errors import Duplicate, InvalidInput, RuleViolation
from ledger.history import save_with_history
from ledger.inputs import parse_id, require_reason
from ledger.models import Membership
from ledger.money import ZERO

MAX_TEXT = 20_000  # a note, findings, a contact's outcome
FOLLOW_UP_MAX_DAYS = 366  # a follow-up date more than a year ahead is a typing error
CONTACT_MAX_AGE_DAYS = 365  # a contact may be recorded up to a year before the money was determined


# --- input checks ---------------------------------------------------------------------------

def parse_day(value, *, field: str, required: bool = True) -> dt.date | None:
    """A calendar day given as a date or as YYYY-MM-DD text (forms, the API), or a clear error."""
    if value in (None, ""):
        if required:
            raise InvalidInput(f"{field.replace('_', ' ')} is required", field=field)
        return None
    if isinstance(value, dt.datetime):
        raise InvalidInput(f"{field}: give a day (YYYY-MM-DD), not a time", field=field)
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        raise InvalidInput(f"{field}: '{value}' is not a day (YYYY-MM-DD)", field=field) from None


def require_text(value, *, field: str, max_length: int = MAX_TEXT, required: bool = True) -> str:
    text = value.strip() if isinstance(value, str) else ("" if value is None else str(value).strip())
    if required and not text:
        raise InvalidInput(f"{field.replace('_', ' ')} is required", field=field)
    if len(text) > max_length:
        raise InvalidInput(f"{field.replace('_', ' ')} is {len(text)} characters; at most {max_length}", field=field)
    return text


def not_resolved(case: Case, what: str) -> None:
    if case.state == Case.State.RESOLVED:
        raise RuleViolation(f"case {case.pk} is resolved; reopen it before {what}", field="case",
                            code="invalid_transition")


def iso(day) -> str | None:
    return day.isoformat() if day else None


def clock_state(case: Case) -> dict:
    return {"due_on": iso(case.due_on), "notice_due_on": iso(case.notice_due_on),
            "clock_rule": case.clock_rule_id}


def record_clock(case: Case, before: dict, *, actor, text: str) -> CaseEvent:
    after = clock_state(case)
    return record(case, CaseEvent.Kind.CLOCK, text, actor=actor,
                  data={"from_due_on": before["due_on"], "to_due_on": after["due_on"],
                        "from_notice_due_on": before["notice_due_on"], "to_notice_due_on": after["notice_due_on"],
                        "clock_rule": after["clock_rule"],
                        "investigation_started_on": iso(case.investigation_started_on),
                        "investigation_ended_on": iso(case.investigation_ended_on)})


def due_words(case: Case) -> str:
    return f"due {case.due_on.isoformat()}" if case.due_on else "paused"


# --- investigation ----------------------------------------------------------------------------

@transaction.atomic
def case_investigate(*, case, actor, reason, good_faith: bool = False, on: dt.date | None = None) -> Case:
    """Put the case under investigation (from identified or waiting on the payer). With
    `good_faith`, it is a timely good-faith investigation of a clock that allows one (Medicare,
    Medicaid: rule 17): it starts on `on` (default the practice's today), the clock pauses (C's
    apply_clock computes how long: at most suspension_max_days from identification) and a "clock"
    event records the due date before and after. A case already investigating may start its
    good-faith investigation without changing state."""
    reason = require_reason(reason)
    c = locked_case(case, actor)
    if not good_faith:
        if on is not None:
            raise InvalidInput("a start day is given only for a good-faith investigation", field="on")
        move(c, "investigate", actor=actor, reason=reason)
        return c
    today = practice_today(c.practice)
    day = parse_day(on, field="on", required=False) or today
    rule = c.clock_rule
    if rule is None or not rule.suspension_max_days:
        raise RuleViolation(f"case {c.pk}: its clock ({rule or 'none'}) allows no good-faith investigation "
                            f"suspension", field="good_faith")
    if c.investigation_started_on is not None:
        raise RuleViolation(f"case {c.pk}: a good-faith investigation already started on "
                            f"{c.investigation_started_on.isoformat()}", field="good_faith", code="duplicate")
    if day > today:
        raise InvalidInput(f"on: {day.isoformat()} is in the future (today is {today.isoformat()})", field="on")
    if day < c.determined_on:
        raise InvalidInput(f"on: {day.isoformat()} is before the overpayment was identified "
                           f"({c.determined_on.isoformat()})", field="on")
    if c.due_on is not None and day > c.due_on:
        raise RuleViolation(f"case {c.pk}: the clock ran out on {c.due_on.isoformat()}; an investigation started "
                            f"{day.isoformat()} is not timely", field="on")
    if c.state not in (Case.State.IDENTIFIED, Case.State.WAITING_PAYER, Case.State.INVESTIGATING):
        raise RuleViolation(f"case {c.pk} is {c.get_state_display().lower()}; it cannot be put under "
                            f"investigation now", field="case", code="invalid_transition")
    before = clock_state(c)
    c.investigation_started_on = day
    apply_clock(c)
    if c.state == Case.State.INVESTIGATING:
        save_with_history(c, actor=actor, reason=reason)
    else:
        move(c, "investigate", actor=actor, reason=reason, data={"good_faith": True})
    record_clock(c, before, actor=actor,
                 text=f"Good-faith investigation started {day.isoformat()}: clock {due_words(c)} "
                      f"(was {before['due_on'] or 'paused'}). {reason}")
    return c


@transaction.atomic
def case_end_investigation(*, case, actor, reason, on: dt.date | None = None) -> Case:
    """End the case's good-faith investigation on `on` (default the practice's today): the clock
    restarts (C's apply_clock: the rule's days from the end, the suspension capped at
    suspension_max_days from identification). The state does not change."""
    reason = require_reason(reason)
    c = locked_case(case, actor)
    not_resolved(c, "ending its investigation")
    if c.investigation_started_on is None:
        raise RuleViolation(f"case {c.pk} has no good-faith investigation to end", field="case")
    if c.investigation_ended_on is not None:
        raise RuleViolation(f"case {c.pk}: its good-faith investigation already ended on "
                            f"{c.investigation_ended_on.isoformat()}", field="case", code="duplicate")
    today = practice_today(c.practice)
    day = parse_day(on, field="on", required=False) or today
    if day > today:
        raise InvalidInput(f"on: {day.isoformat()} is in the future (today is {today.isoformat()})", field="on")
    if day < c.investigation_started_on:
        raise InvalidInput(f"on: {day.isoformat()} is before the investigation started "
                           f"({c.investigation_started_on.isoformat()})", field="on")
    before = clock_state(c)
    c.investigation_ended_on = day
    apply_clock(c)
    save_with_history(c, actor=actor, reason=reason)
    record_clock(c, before, actor=actor,
                 text=f"Good-faith investigation ended {day.isoformat()}: clock {due_words(c)} "
                      f"(was {before['due_on'] or 'paused'}). {reason}")
    return c


# --- waiting on the payer -----------------------------------------------------------------------

def check_follow_up(case: Case, follow_up_on, *, not_before: dt.date, field: str = "follow_up_on") -> dt.date:
    day = parse_day(follow_up_on, field=field)
    if day < not_before:
        raise InvalidInput(f"{field}: {day.isoformat()} is before {not_before.isoformat()}", field=field)
    latest = practice_today(case.practice) + dt.timedelta(days=FOLLOW_UP_MAX_DAYS)
    if day > latest:
        raise InvalidInput(f"{field}: {day.isoformat()} is more than a year ahead", field=field)
    return day


def wait_or_reschedule(c: Case, day: dt.date, *, actor, reason: str, data: dict | None = None) -> None:
    """Move to waiting on the payer until `day`; a case already waiting gets the new day."""
    if c.state == Case.State.WAITING_PAYER:
        before = c.follow_up_on
        c.follow_up_on = day
        save_with_history(c, actor=actor, reason=reason)
        record(c, CaseEvent.Kind.STATE, reason, actor=actor, from_state=c.state, to_state=c.state,
               data={"follow_up_on": day.isoformat(), "was_follow_up_on": iso(before), **(data or {})})
        return
    move(c, "wait_on_payer", actor=actor, reason=reason, follow_up_on=day,
         data={"follow_up_on": day.isoformat(), **(data or {})})


@transaction.atomic
def case_wait_on_payer(*, case, actor, reason, follow_up_on: dt.date) -> Case:
    """The case waits on the payer until `follow_up_on` (today or later, within a year); past it the
    queue shows the follow-up as overdue."""
    reason = require_reason(reason)
    c = locked_case(case, actor)
    day = check_follow_up(c, follow_up_on, not_before=practice_today(c.practice))
    move(c, "wait_on_payer", actor=actor, reason=reason, follow_up_on=day, data={"follow_up_on": day.isoformat()})
    return c


# --- the record ------------------------------------------------------------------------------------

@transaction.atomic
def case_note(*, case, actor, text) -> CaseEvent:
    """A note on the case's record (any state, resolved ones too)."""
    text = require_text(text, field="text")
    c = locked_case(case, actor)
    return record(c, CaseEvent.Kind.NOTE, text, actor=actor)


@transaction.atomic
def case_confirm_balance(*, case, actor, reason) -> CaseEvent:
    """Record that the credit balance is still there, with the amount found now (under the case's
    lock). Refused when the balance is gone (the scan closes such a case with its reason)."""
    reason = require_reason(reason)
    c = locked_case(case, actor)
    not_resolved(c, "confirming its balance")
    left = money_left(c)
    if left <= ZERO:
        raise RuleViolation(f"case {c.pk}: the credit balance is gone (0.00 left of {c.amount}); the case closes "
                            f"itself at the next scan", field="case", code="balance_gone")
    return record(c, CaseEvent.Kind.BALANCE_CONFIRMED, f"Balance confirmed: {left} on hand. {reason}", actor=actor,
                  data={"amount": str(left), "case_amount": str(c.amount), "changed_by": str(left - c.amount),
                        "reason": reason})


def source_of(c: Case) -> dict:
    """Where the case's money came from, from the rows (kept with the source review)."""
    if c.kind == Case.Kind.PATIENT_CREDIT:
        credit = c.credit
        out = {"credit": credit.pk, "source": credit.source, "credit_amount": str(credit.amount),
               "credit_created_at": credit.created_at.isoformat(), "origin_encounter": credit.origin_encounter_id,
               "payment": credit.payment_id, "note": credit.note}
        if credit.origin_encounter_id:
            enc = credit.origin_encounter
            out.update(origin_date_of_service=enc.date_of_service.isoformat(), origin_charge=str(enc.charge))
        if credit.payment_id:
            pay = credit.payment
            out.update(payment_amount=str(pay.amount), payment_channel=pay.channel,
                       payment_received_at=pay.received_at.isoformat())
        return out
    if c.kind == Case.Kind.PAYER_CREDIT:
        pc = c.payer_credit
        out = {"payer_credit": pc.pk, "reason": pc.reason, "payer": pc.payer_id, "claim": pc.claim_id,
               "payer_claim_number": pc.payer_claim_number, "amount": str(pc.amount),
               "created_at": pc.created_at.isoformat(), "note": pc.note}
        if pc.claim_id:
            out.update(encounter=pc.claim.encounter_id, claim_number=pc.claim.claim_number)
        return out
    enc = c.encounter
    return {"encounter": enc.pk, "date_of_service": enc.date_of_service.isoformat(), "charge": str(enc.charge),
            "applied_amount": str(enc.applied_amount),
            "claims": list(enc.claims.order_by("pk").values_list("pk", flat=True)),
            "payments": list(enc.payments.order_by("pk").values_list("pk", flat=True))}


@transaction.atomic
def case_review_source(*, case, actor, reason, findings) -> CaseEvent:
    """Record a review of where the credit came from and why (`findings`), with the credit's
    source, payment and visit of origin (or the payer credit's claim, or the visit's claims and
    payments) taken from the rows."""
    reason = require_reason(reason)
    findings = require_text(findings, field="findings")
    c = locked_case(case, actor)
    return record(c, CaseEvent.Kind.SOURCE_REVIEWED, findings, actor=actor,
                  data={"reason": reason, "source": source_of(c)})


@transaction.atomic
def case_attach_document(*, case, actor, reason, upload) -> CaseDocument:
    """Keep an uploaded file with the case (adjudication/documents.py checks its size, its type by
    content and its name). The same file twice on one case is a Duplicate."""
    reason = require_reason(reason)
    c = locked_case(case, actor)
    checked = check_upload(upload)
    existing = CaseDocument.objects.filter(case_id=c.pk, sha256=checked.sha256).first()
    if existing is not None:
        raise Duplicate(f"{checked.filename}: the same file is already on case {c.pk} (as {existing.filename}, "
                        f"added {existing.uploaded_at:%Y-%m-%d})", field="upload")
    event = record(c, CaseEvent.Kind.DOCUMENT, f"Document {checked.filename} added. {reason}", actor=actor,
                   data={"filename": checked.filename, "content_type": checked.content_type, "size": checked.size,
                         "sha256": checked.sha256, "reason": reason})
    doc = CaseDocument(case=c, event=event, filename=checked.filename, content_type=checked.content_type,
                       size=checked.size, sha256=checked.sha256, uploaded_by=actor)
    doc.file.save(storage_name(checked), ContentFile(checked.content), save=False)
    doc.save()
    return doc


# --- payer contacts ----------------------------------------------------------------------------------

@transaction.atomic
def case_record_contact(*, case, actor, contacted_on, channel, outcome, person="", reference="",
                        follow_up_on=None, wait_on_payer=False, reason="") -> PayerContact:
    """A contact with the payer: the day (not in the future, not more than a year before the money
    was determined), the channel, whom, the payer's reference and what came of it, and a follow-up
    day (on or after the contact). With `wait_on_payer`, or a follow-up given while the case is
    identified or investigating, the case also waits on the payer until the follow-up day; a case
    already waiting gets the new follow-up day."""
    c = locked_case(case, actor)
    not_resolved(c, "recording a payer contact")
    today = practice_today(c.practice)
    day = parse_day(contacted_on, field="contacted_on")
    if day > today:
        raise InvalidInput(f"contacted_on: {day.isoformat()} is in the future (today is {today.isoformat()})",
                           field="contacted_on")
    earliest = c.determined_on - dt.timedelta(days=CONTACT_MAX_AGE_DAYS)
    if day < earliest:
        raise InvalidInput(f"contacted_on: {day.isoformat()} is more than a year before the overpayment was "
                           f"determined ({c.determined_on.isoformat()})", field="contacted_on")
    if channel not in PayerContact.Channel.values:
        raise InvalidInput(f"channel: '{channel}' is not one of {', '.join(PayerContact.Channel.values)}",
                           field="channel")
    outcome = require_text(outcome, field="outcome")
    person = require_text(person, field="person", max_length=200, required=False)
    reference = require_text(reference, field="reference", max_length=100, required=False)
    follow = check_follow_up(c, follow_up_on, not_before=day) if follow_up_on not in (None, "") else None
    if wait_on_payer and follow is None:
        raise InvalidInput("follow_up_on: waiting on the payer needs a follow-up day", field="follow_up_on")
    channel_label = PayerContact.Channel(channel).label
    reason = require_text(reason, field="reason", required=False) or f"Payer contacted by {channel_label.lower()}"
    event = record(c, CaseEvent.Kind.CONTACT,
                   f"{channel_label} {day.isoformat()}{' with ' + person if person else ''}: {outcome}", actor=actor,
                   data={"contacted_on": day.isoformat(), "channel": channel, "person": person,
                         "reference": reference, "follow_up_on": iso(follow), "reason": reason})
    contact = PayerContact.objects.create(case=c, event=event, contacted_on=day, channel=channel, person=person,
                                          reference=reference, outcome=outcome, follow_up_on=follow,
                                          created_by=actor)
    if follow is not None and (wait_on_payer or c.state in (Case.State.IDENTIFIED, Case.State.INVESTIGATING,
                                                             Case.State.WAITING_PAYER)):
        wait_or_reschedule(c, follow, actor=actor, reason=reason, data={"contact": contact.pk})
    return contact


# --- assignment and reopening --------------------------------------------------------------------------

@transaction.atomic
def case_assign(*, case, actor, reason, assignee_id: int | None) -> Case:
    """Assign the case to an active staff member of its practice (a person, not an integration), or
    unassign it with None."""
    reason = require_reason(reason)
    assignee = None
    if assignee_id not in (None, ""):
        assignee_id = parse_id(assignee_id, field="assignee_id")
    else:
        assignee_id = None
    c = locked_case(case, actor)
    not_resolved(c, "assigning it")
    if assignee_id is not None:
        assignee = get_user_model().objects.filter(pk=assignee_id).first()
        if assignee is None or not Membership.objects.filter(user_id=assignee_id, practice_id=c.practice_id).exists():
            raise InvalidInput(f"assignee_id: user {assignee_id} is not staff of the case's practice",
                               field="assignee_id")
        if not assignee.is_active or is_system(assignee) or is_integration(assignee):
            raise InvalidInput(f"assignee_id: {assignee.get_username()} is not an active person on the staff",
                               field="assignee_id")
    if c.assigned_to_id == assignee_id:
        who = assignee.get_username() if assignee else "nobody"
        raise RuleViolation(f"case {c.pk} is already assigned to {who}", field="assignee_id", code="no_change")
    before = c.assigned_to
    c.assigned_to = assignee
    save_with_history(c, actor=actor, reason=reason)
    text = (f"Assigned to {assignee.get_username()}" if assignee else "Unassigned") + f". {reason}"
    record(c, CaseEvent.Kind.ASSIGNED, text, actor=actor,
           data={"assignee": assignee_id, "was": before.pk if before else None, "reason": reason})
    return c


@transaction.atomic
def case_reopen(*, case, actor, reason) -> Case:
    """A manager brings a resolved case back to investigating; it counts as an error (rule 21:
    reopened_count). Refused while another open case covers the same visit."""
    reason = require_reason(reason)
    c = locked_case(case, actor, manager=True)
    if c.state == Case.State.RESOLVED and c.kind == Case.Kind.ENCOUNTER:
        other = (Case.objects.open().filter(kind=Case.Kind.ENCOUNTER, encounter_id=c.encounter_id)
                 .exclude(pk=c.pk).values_list("pk", flat=True).first())
        if other is not None:
            raise Duplicate(f"case {c.pk}: case {other} is open for the same visit; work on that one", field="case")
    outcome = c.outcome
    move(c, "reopen", actor=actor, reason=reason, data={"was_outcome": outcome})
    return c
