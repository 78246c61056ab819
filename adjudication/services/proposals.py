"""Resolutions (DOMAIN rule 16): proposed by billing staff, approved or rejected by a manager other
than the proposer, carried out through the credits services inside the case's transaction.

* `case_propose`: a resolution that fits the case's kind, for at most the money left on it (by
  default all of it); one live proposal per case (the case's lock and a unique index).
* `case_approve`: four eyes (`ensure_approver`: a manager, a person, not the proposer; the CHECK
  `proposal_four_eyes` backs it), then carried out at once in a savepoint when it can be. If the
  money changed meanwhile (example N) the savepoint is rolled back: no refund, journal line or
  money history row is written, the proposal stays proposed with `refusal` set, a "refused" event
  says why and the case stays proposed; the manager may approve again or reject it.
* `case_reject`: the proposal rejected, the case back to investigating.
* `case_carry_out`: an approved resolution that waited (a payer or patient refund by check
  approved before its check number was known; a card refund whose pay-out failed). If the money
  changed by then, the proposal is refused and the case goes back from approved to proposed
  (`Case.refuse_carry_out`): staff propose again.

A resolution that moves only part of the money (a partial refund, an application that left some of
the credit) is carried out and the case goes back to proposed with what is left (no live
proposal): staff propose what to do with the rest.

A card refund to the original payment is requested and approved in the case's transaction (the
money held on the credit, requested by the proposer, decided by the approving manager); the card
processor is called after the commit, never under row locks, and the case resolves in its own
transaction right after the pay-out (if the processor refuses, the case stays approved with a
"refused" event; `case_carry_out` tries again). Waiting for the payer's recoupment is approved and
waits: the 835 that recoups it resolves the case (adjudication/recoupment.py)."""

import logging

from django.contrib.auth import get_user_model
from django.db import transaction

from adjudication.models import Case, CaseEvent, Proposal, UnclaimedProperty
from adjudication.services.core import locked_case, money_left, move, record
from adjudication.services.unclaimed import LIVE as UNCLAIMED_LIVE
from adjudication.services.unclaimed import turn_over_locked
from credits.models import Credit, Refund, WriteOff
from credits.services.application import credits_apply_tx
from credits.services.claims import claim_resubmit_tx
from credits.services.payer_credits import payer_credit_refund
from credits.services.refunds import REFERENCE_MAX, refund_issue, refund_issue_tx, refund_request_tx
from credits.services.writeoffs import writeoff_create_tx
from ledger.access import ensure_approver
from ledger.errors import Duplicate, InvalidInput, NotFound, RuleViolation, SettleError
from ledger.history import save_with_history
from ledger.inputs import parse_id, require_reason
from ledger.locks import lock
from ledger.models import Claim
from ledger.money import positive_money

log = logging.getLogger(__name__)

K = Proposal.Kind

# which resolutions fit which kind of case (rule 16); unclaimed property only for a credit on the
# unclaimed-property list (adjudication.services.unclaimed: its dates and letter decide)
KINDS_BY_CASE = {
    Case.Kind.PATIENT_CREDIT: (K.REFUND_PATIENT, K.APPLY_BALANCES, K.KEEP_CREDIT, K.UNCLAIMED),
    Case.Kind.PAYER_CREDIT: (K.REFUND_PAYER, K.AWAIT_RECOUPMENT),
    Case.Kind.ENCOUNTER: (K.RESUBMIT_CLAIM, K.WRITE_OFF),
}
# resolutions that may settle part of the balance (the case goes back to proposed with the rest);
# the others are for the whole balance
PARTIAL = (K.REFUND_PATIENT, K.REFUND_PAYER, K.WRITE_OFF)
# resolutions whose carrying out moves the case's own money (what is left is read again after)
MOVES = (K.REFUND_PATIENT, K.REFUND_PAYER, K.APPLY_BALANCES)
OUTCOME = {
    K.REFUND_PATIENT: Case.Outcome.REFUND_PATIENT, K.REFUND_PAYER: Case.Outcome.REFUND_PAYER,
    K.AWAIT_RECOUPMENT: Case.Outcome.RECOUPED, K.APPLY_BALANCES: Case.Outcome.APPLIED,
    K.KEEP_CREDIT: Case.Outcome.KEPT, K.RESUBMIT_CLAIM: Case.Outcome.RESUBMITTED,
    K.WRITE_OFF: Case.Outcome.WRITTEN_OFF, K.UNCLAIMED: Case.Outcome.UNCLAIMED,
}
METHODS = ("", *Refund.Method.values)


# --- propose, approve, reject, carry out ----------------------------------------------------------

@transaction.atomic
def case_propose(*, case, actor, reason, kind, amount=None, method="", reference="", claim_id=None) -> Proposal:
    """Propose a resolution (billing staff or managers). `amount` defaults to the money left on the
    case and may not be more; `method` (patient refunds): original_payment, check, ach, or blank
    (the original payment when the rules allow, else check); `reference`: the check number or ACH
    trace if known; `claim_id`: the claim to resubmit (default: the visit's latest claim)."""
    reason = require_reason(reason)
    c = locked_case(case, actor)
    allowed = KINDS_BY_CASE[c.kind]
    if kind not in allowed:
        raise InvalidInput(f"a {c.get_kind_display().lower()} case is resolved by one of {', '.join(allowed)}; "
                           f"not {kind!r}", field="kind")
    method = (method or "").strip()
    if method not in METHODS or (method and kind != K.REFUND_PATIENT):
        raise InvalidInput(f"method is for patient refunds only: one of {', '.join(METHODS[1:])} or blank",
                           field="method")
    reference = _reference(reference)
    live = Proposal.objects.filter(case=c, state__in=Proposal.LIVE).first()
    if live is not None:
        raise Duplicate(f"case {c.pk} already has proposal {live.pk} ({live.get_kind_display().lower()}, "
                        f"{live.get_state_display().lower()}); decide it first", field="case")
    if c.state not in (Case.State.IDENTIFIED, Case.State.INVESTIGATING, Case.State.WAITING_PAYER,
                       Case.State.PROPOSED):
        raise RuleViolation(f"case {c.pk} is {c.get_state_display().lower()}; it cannot be given a proposal now",
                            field="case", code="invalid_transition")
    if kind == K.UNCLAIMED and not UnclaimedProperty.objects.filter(case_id=c.pk, state__in=UNCLAIMED_LIVE).exists():
        raise RuleViolation(f"case {c.pk}: the credit is not on the unclaimed-property list (not dormant long "
                            "enough in its owner's state)", field="kind")
    if kind == K.KEEP_CREDIT and c.election != "keep":
        raise RuleViolation(f"case {c.pk}: a credit is kept only on the patient's own election, and the patient "
                            "has not elected to keep it", field="kind")
    claim = _claim_to_resubmit(c, claim_id) if kind == K.RESUBMIT_CLAIM else None
    if claim_id is not None and kind != K.RESUBMIT_CLAIM:
        raise InvalidInput("claim_id is for resubmitting a claim only", field="claim_id")
    _lock_money(c)
    left = money_left(c)
    if left <= 0:
        raise RuleViolation(f"case {c.pk}: nothing is left of its credit balance", field="case")
    amount = left if amount is None else positive_money(amount)
    if amount > left:
        raise RuleViolation(f"only {left} is left on case {c.pk}; cannot propose {amount}", field="amount")
    if kind not in PARTIAL and amount != left:
        raise InvalidInput(f"{Proposal.Kind(kind).label.lower()} settles the whole balance of {left}",
                           field="amount")
    p = Proposal(case=c, kind=kind, amount=amount, method=method, reference=reference, claim=claim, reason=reason,
                 proposed_by=actor)
    save_with_history(p, actor=actor, reason=reason)
    data = {"proposal": p.pk, "kind": kind, "amount": str(amount)}
    text = f"{p.get_kind_display()}: {amount}. {reason}"
    if c.state == Case.State.PROPOSED:  # after a refusal or a partial resolution: no live proposal was left
        record(c, CaseEvent.Kind.PROPOSAL, text, actor=actor, data=data)
    else:
        move(c, "propose", actor=actor, reason=text, event_kind=CaseEvent.Kind.PROPOSAL, data=data)
    return p


@transaction.atomic
def case_approve(*, case, actor, reason, reference="") -> Proposal:
    """Approve the case's proposal (a manager other than the proposer) and carry it out at once
    when it can be. The returned proposal is approved (the case approved while it waits, resolved
    when done), or, when the money changed and it cannot be done, still proposed with `refusal`
    saying why (nothing of it was written)."""
    reason = require_reason(reason)
    reference = _reference(reference)
    c = locked_case(case, actor)
    p = _live_proposal(c)
    ensure_approver(actor, practice_id=c.practice_id, requested_by_id=p.proposed_by_id, what="resolution")
    if p.state != Proposal.State.PROPOSED or c.state != Case.State.PROPOSED:
        raise RuleViolation(f"proposal {p.pk} is already {p.get_state_display().lower()}", field="proposal",
                            code="invalid_transition")
    try:
        with transaction.atomic():
            p.approve(by=actor, note=reason)
            p.refusal = ""
            save_with_history(p, actor=actor, reason=f"Approved: {reason}")
            move(c, "approve", actor=actor, reason=f"{p.get_kind_display()} approved: {reason}",
                 event_kind=CaseEvent.Kind.DECISION, data={"proposal": p.pk, "decision": "approved"})
            _carry_out(c, p, actor=actor, reason=reason, reference=reference or p.reference)
    except RuleViolation as exc:
        c, p = Case.objects.get(pk=c.pk), Proposal.objects.get(pk=p.pk)  # as they were before the savepoint
        p.refusal = exc.message
        save_with_history(p, actor=actor, reason=f"Carrying out refused: {exc.message}")
        record(c, CaseEvent.Kind.REFUSED, f"Approval refused: {exc.message}", actor=actor,
               data={"proposal": p.pk, "refusal": exc.message})
    return p


@transaction.atomic
def case_reject(*, case, actor, reason) -> Proposal:
    """Reject the case's proposal (a manager other than the proposer): the case goes back to
    investigating."""
    reason = require_reason(reason)
    c = locked_case(case, actor)
    p = _live_proposal(c)
    ensure_approver(actor, practice_id=c.practice_id, requested_by_id=p.proposed_by_id, what="resolution")
    if p.state != Proposal.State.PROPOSED:
        raise RuleViolation(f"proposal {p.pk} is {p.get_state_display().lower()}; only a proposed one is rejected",
                            field="proposal", code="invalid_transition")
    p.reject(by=actor, note=reason)
    save_with_history(p, actor=actor, reason=f"Rejected: {reason}")
    move(c, "reject", actor=actor, reason=f"{p.get_kind_display()} rejected: {reason}",
         event_kind=CaseEvent.Kind.DECISION, data={"proposal": p.pk, "decision": "rejected"})
    return p


@transaction.atomic
def case_carry_out(*, case, actor, reason, reference="") -> Proposal:
    """Carry out an approved proposal that waited (staff): a refund by check with its number now,
    or a card refund's pay-out again. If the money changed meanwhile, the proposal is refused and
    the case goes back to proposed with the reason."""
    reason = require_reason(reason)
    reference = _reference(reference)
    c = locked_case(case, actor)
    p = _live_proposal(c)
    if p.state != Proposal.State.APPROVED:
        raise RuleViolation(f"proposal {p.pk} is {p.get_state_display().lower()}; a manager approves it first",
                            field="proposal", code="invalid_transition")
    if p.kind == K.AWAIT_RECOUPMENT:
        raise RuleViolation(f"case {c.pk} waits for the payer's recoupment; the 835 that recoups it resolves it",
                            field="case")
    reference = reference or p.reference
    if _needs_reference(p) and not reference:
        raise InvalidInput("the check number or ACH trace is required", field="reference")
    try:
        with transaction.atomic():
            _carry_out(c, p, actor=actor, reason=reason, reference=reference)
    except RuleViolation as exc:
        c, p = Case.objects.get(pk=c.pk), Proposal.objects.get(pk=p.pk)
        p.refuse(why=exc.message)
        save_with_history(p, actor=actor, reason=f"Carrying out refused: {exc.message}")
        move(c, "refuse_carry_out", actor=actor, reason=f"Carrying out refused: {exc.message}",
             event_kind=CaseEvent.Kind.REFUSED, data={"proposal": p.pk, "refusal": exc.message})
    return p


# --- carrying out --------------------------------------------------------------------------------

def _carry_out(c: Case, p: Proposal, *, actor, reason: str, reference: str) -> None:
    """Do what the approved proposal says, through the credits services, then resolve the case (or
    leave it approved while it waits). A RuleViolation means it cannot be done now: the caller
    rolls back the savepoint this runs in."""
    memo = f"Case {c.pk}: {p.reason}"
    if p.kind == K.UNCLAIMED:  # the unclaimed-property row comes before the patient (ledger.locks ORDER)
        row = UnclaimedProperty.objects.filter(case_id=c.pk).only("pk").first()
        if row is None:
            raise RuleViolation(f"case {c.pk}: the credit is no longer on the unclaimed-property list")
        row = lock(unclaimed=[row.pk]).unclaimed[row.pk]
        return _done(c, p, actor=actor, reason=reason, result=turn_over_locked(c, row, actor=actor, reason=memo))
    _lock_money(c)
    left = money_left(c)
    if p.kind == K.REFUND_PATIENT and p.result.get("refund"):
        return _carry_out_refund(c, p, actor=actor, reason=reason, reference=reference)
    if p.amount > left:
        raise RuleViolation(f"only {left} is left on case {c.pk}; the proposal was for {p.amount}")
    result = {}
    if p.kind == K.REFUND_PATIENT:
        credit = Credit.objects.get(pk=c.credit_id)  # under the patient's lock
        if credit.state == Credit.State.AVAILABLE and p.amount > credit.on_hand:
            raise RuleViolation(f"only {credit.on_hand} is left to refund on credit {credit.pk} (the rest is held "
                                f"by a refund in flight); the proposal was for {p.amount}")
        r = refund_request_tx(credit_id=c.credit_id, amount=p.amount, actor=p.proposed_by, reason=memo,
                              method=p.method or None, reference=reference, approved_by=actor, issue=True)
        p.result = {"refund": r.pk, "method": r.method}
        return _carry_out_refund(c, p, actor=actor, reason=reason, reference=reference, refund=r)
    if p.kind == K.REFUND_PAYER:
        if not reference:
            return _wait(p, actor=actor, why="the refund check number is recorded when the check is cut")
        pc = payer_credit_refund(payer_credit_id=c.payer_credit_id, check_number=reference, actor=actor,
                                 reason=memo, amount=p.amount)
        result = {"payer_credit": pc.pk, "check_number": reference}
    elif p.kind == K.AWAIT_RECOUPMENT:
        return _wait(p, actor=actor, why="the payer's recoupment (an 835 PLB WO) resolves it")
    elif p.kind == K.APPLY_BALANCES:
        applied = credits_apply_tx(patient_id=c.patient_id, actor=actor, reason=memo, respect_settings=False)
        used = left - _left_now(c)
        if used <= 0:
            raise RuleViolation(f"the patient has no open balance that credit {c.credit_id} can pay now")
        result = {"applied": str(used), "applied_total": str(applied.total)}
    elif p.kind == K.KEEP_CREDIT:
        if c.election != "keep":
            raise RuleViolation("the patient's election to keep the credit is no longer on the case")
        result = {"election": c.election}
    elif p.kind == K.RESUBMIT_CLAIM:
        created = claim_resubmit_tx(claim_id=p.claim_id, actor=actor, reason=memo)
        result = {"claim": p.claim_id, "credits": [cr.pk for cr in created]}
    elif p.kind == K.WRITE_OFF:
        wo = writeoff_create_tx(encounter_id=c.encounter_id, amount=p.amount,
                                reason_code=WriteOff.ReasonCode.SMALL_BALANCE, reason=memo, actor=actor)
        result = {"writeoff": wo.pk}
    _done(c, p, actor=actor, reason=reason, result=result)


def _carry_out_refund(c: Case, p: Proposal, *, actor, reason, reference, refund: Refund | None = None) -> None:
    r = refund or Refund.objects.get(pk=p.result["refund"])
    if r.state == Refund.State.ISSUED:
        return _done(c, p, actor=actor, reason=reason, result={**p.result, "reference": r.reference})
    if r.state != Refund.State.APPROVED:
        raise RuleViolation(f"refund {r.pk} of this resolution is {r.get_state_display().lower()}")
    if r.method == Refund.Method.ORIGINAL_PAYMENT:
        _wait(p, actor=actor, why="the card refund is paid out after the commit")
        transaction.on_commit(lambda: pay_out(case_id=c.pk, proposal_id=p.pk, refund_id=r.pk, actor_id=actor.pk))
        return None
    if not reference:
        return _wait(p, actor=actor, why=f"refund {r.pk} is approved and held; the {r.get_method_display().lower()} "
                                         "number is recorded when it is sent")
    r = refund_issue_tx(refund_id=r.pk, actor=actor, reference=reference)
    return _done(c, p, actor=actor, reason=reason, result={**p.result, "reference": reference})


def _wait(p: Proposal, *, actor, why: str) -> None:
    """The approved proposal waits (the case stays approved); what it did so far is kept on it."""
    save_with_history(p, actor=actor, reason=f"Approved, waiting: {why}")


def _done(c: Case, p: Proposal, *, actor, reason: str, result: dict) -> None:
    """The proposal carried out: the case resolves, or goes back to proposed with what is left."""
    p.carry_out(result=result)
    save_with_history(p, actor=actor, reason=f"Carried out: {reason}")
    record(c, CaseEvent.Kind.CARRIED_OUT, f"{p.get_kind_display()}: {p.amount} carried out. {reason}", actor=actor,
           data={"proposal": p.pk, **result})
    left = _left_now(c) if p.kind in MOVES else 0
    if left > 0:
        move(c, "refuse_carry_out", actor=actor, reason=f"{p.amount} done; {left} is left on the case: propose what to "
                                                        "do with it", data={"proposal": p.pk, "left": str(left)})
        return
    number = result.get("reference") or result.get("check_number")
    note = f"{p.get_kind_display()}: {p.amount}" + (f", number {number}" if number else "") + f". {p.reason}"
    move(c, "resolve", actor=actor, reason=reason, outcome=OUTCOME[p.kind], note=note, by=actor,
         data={"proposal": p.pk, "outcome": OUTCOME[p.kind]})


def pay_out(*, case_id: int, proposal_id: int, refund_id: int, actor_id: int) -> None:
    """After the commit: pay an approved card refund of a resolution out through the processor
    (`refund_issue`: its own transaction), then resolve the case in another. If the processor
    refuses, the refund stays approved and the case says why (carry it out again, or reject the
    refund and propose a check)."""
    actor = get_user_model().objects.get(pk=actor_id)
    try:
        refund_issue(refund_id=refund_id, actor=actor)
    except SettleError as exc:
        _pay_out_refused(case_id=case_id, proposal_id=proposal_id, actor=actor, why=exc.message)
        return
    _paid_out(case_id=case_id, proposal_id=proposal_id, actor=actor)


@transaction.atomic
def _paid_out(*, case_id, proposal_id, actor) -> None:
    c = lock(cases=[case_id]).cases[case_id]
    p = lock(proposals=[proposal_id]).proposals[proposal_id]
    if c.state != Case.State.APPROVED or p.state != Proposal.State.APPROVED:
        return  # resolved meanwhile (the scan saw the money gone)
    _lock_money(c)
    _carry_out_refund(c, p, actor=actor, reason="Card refund paid out", reference="")


@transaction.atomic
def _pay_out_refused(*, case_id, proposal_id, actor, why: str) -> None:
    c = lock(cases=[case_id]).cases[case_id]
    log.warning("case %s: the card refund of proposal %s was not paid out: %s", case_id, proposal_id, why)
    record(c, CaseEvent.Kind.REFUSED, f"Card refund not paid out: {why}. The refund stays approved: carry it out "
                                      "again, or reject the refund and propose a check.", actor=actor,
           data={"proposal": proposal_id, "refusal": why})


# --- helpers -------------------------------------------------------------------------------------

def _reference(reference) -> str:
    reference = (reference or "").strip()
    if len(reference) > REFERENCE_MAX:
        raise InvalidInput(f"the reference has {len(reference)} characters; at most {REFERENCE_MAX}",
                           field="reference")
    return reference


def _needs_reference(p: Proposal) -> bool:
    if p.kind == K.REFUND_PAYER:
        return True
    return p.kind == K.REFUND_PATIENT and Refund.objects.filter(
        pk=p.result.get("refund"), state=Refund.State.APPROVED).exclude(method=Refund.Method.ORIGINAL_PAYMENT).exists()


def _live_proposal(c: Case) -> Proposal:
    """The case's live proposal, locked (the caller holds the case's lock). None live: the last one
    says why (decided meanwhile by someone else, e.g. two managers approving at once)."""
    p = Proposal.objects.filter(case=c, state__in=Proposal.LIVE).only("pk").first()
    if p is None:
        last = Proposal.objects.filter(case=c).order_by("-pk").first()
        if last is None:
            raise NotFound(f"case {c.pk} has no proposal", field="proposal")
        by = f" by {last.decided_by.get_username()}" if last.decided_by_id else ""
        raise RuleViolation(f"case {c.pk}: proposal {last.pk} is already {last.get_state_display().lower()}{by}; "
                            "no proposal is waiting", field="proposal", code="invalid_transition")
    return lock(proposals=[p.pk]).proposals[p.pk]


def _claim_to_resubmit(c: Case, claim_id) -> Claim:
    qs = Claim.objects.filter(encounter_id=c.encounter_id)
    if claim_id is None:
        claim = qs.order_by("-pk").first()
        if claim is None:
            raise RuleViolation(f"case {c.pk}: the visit has no claim to resubmit", field="claim_id")
        return claim
    claim = qs.filter(pk=parse_id(claim_id, field="claim_id")).first()
    if claim is None:
        raise NotFound(f"unknown claim {claim_id} for the visit of case {c.pk}", field="claim_id")
    return claim


def _lock_money(c: Case) -> None:
    """Lock what the case's money hangs on, so what `money_left` reads stays true: the patient (every
    change to a patient's money takes that lock first) or the payer credit."""
    if c.kind == Case.Kind.PAYER_CREDIT:
        lock(payer_credits=[c.payer_credit_id])
    else:
        lock(patients=[c.patient_id])
    _forget(c)


def _forget(c: Case) -> None:
    """Drop the case's cached related rows: the next read sees them as they are now."""
    for name in ("credit", "payer_credit", "encounter"):
        c._state.fields_cache.pop(name, None)


def _left_now(c: Case):
    _forget(c)
    return money_left(c)


