"""Refunding credits from the refund work list (DOMAIN rule 19; the list and the bands are
adjudication/policies.py).

`refund_work_list_refund` refunds each chosen credit's available money through credits' refund
request (to the original payment when the rules allow it, otherwise by check: such refunds stay
approved and not issued until staff record the check number with `refund_issue`, as any refund by
check does). The band's rule is enforced here, for the admin, the API and jobs alike: billing
staff start refunds only in a billing band; a four-eyes band makes the refund wait for a manager
other than the requester (`refund_request(require_approval=True)`; `refund_approve` refuses the
requester). The band is chosen by the patient's refunds over the approval window plus this one,
read under the patient's lock, so neither splitting a refund into several credits nor two
requests at once moves it into a lower band; the practice's threshold applies on top.

It is not one transaction, by design: like `refund_request`, a card refund calls the processor
outside any transaction (never under row locks). Everything a caller can get wrong (unknown ids,
another practice's credits, a credit not on the list, a band billing staff may not start) is
checked before anything is written, and nothing is. Then each credit is requested in its own
transaction (its case, then its patient, locked in the global order; the list's conditions and the
band re-checked under the lock); card refunds approved at once are paid out after the commit; the
cases of credits refunded in full resolve (outcome refund_patient, event data
{"via": "refund_policy"}). If a credit's money moved between the checks and its own transaction,
that credit is refused with the reason, the refunds requested before it stand, and the error says
which they are."""

from decimal import Decimal

from django.db import transaction

from adjudication.models import Case, CaseEvent, Proposal
from adjudication.policies import MANAGER, ApprovalRule, approval_rule, bands_of, refund_work_list
from adjudication.services.core import move, record
from credits.models import Credit, Refund
from credits.services.refunds import refund_issue, refund_request_tx, refund_window_total
from ledger.access import ensure_staff, is_manager
from ledger.errors import InvalidInput, NotFound, PermissionDenied, RuleViolation, SettleError
from ledger.inputs import parse_id, require_reason
from ledger.locks import lock
from ledger.models import Practice
from ledger.money import ZERO

MAX_CREDITS = 500  # one request refunds at most this many credits (a page of the work list is far fewer)


def _credit_ids(credit_ids) -> list[int]:
    if isinstance(credit_ids, (str, bytes)) or not hasattr(credit_ids, "__iter__"):
        raise InvalidInput("credit_ids must be a list of credit ids", field="credit_ids")
    ids = [parse_id(i, field="credit_ids") for i in credit_ids]
    if not ids:
        raise InvalidInput("choose at least one credit to refund", field="credit_ids")
    if len(ids) > MAX_CREDITS:
        raise InvalidInput(f"{len(ids)} credits chosen; at most {MAX_CREDITS} at once", field="credit_ids")
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise InvalidInput(f"credit {', '.join(map(str, twice))} chosen twice", field="credit_ids")
    return ids


def _refusal(rule: ApprovalRule, *, credit_id: int, amount: Decimal, total: Decimal) -> str:
    return (f"credit {credit_id}: a refund of {amount} (the patient's refunds over the approval window would come to "
            f"{total}) needs {rule.describe()}; billing staff start refunds only in a billing band")


def refund_work_list_refund(*, credit_ids, actor, reason: str) -> list[Refund]:
    """Refund the available money of each chosen credit of the work list (see the module
    docstring). Returns the refunds in the order they were requested (by patient, then credit);
    a card refund the processor refused stays approved with `issue_error` saying why."""
    reason = require_reason(reason)
    ids = _credit_ids(credit_ids)
    practice_of = dict(Credit.objects.filter(pk__in=ids).values_list("pk", "practice_id"))
    missing = [i for i in ids if i not in practice_of]
    if missing:
        raise NotFound(f"unknown credit {', '.join(map(str, missing))}", field="credit_ids")
    for practice_id in sorted(set(practice_of.values())):
        ensure_staff(actor, practice_id)
    if len(set(practice_of.values())) > 1:
        raise InvalidInput("the credits belong to more than one practice; refund one practice's work list at a time",
                           field="credit_ids")
    practice = Practice.objects.get(pk=practice_of[ids[0]])
    listed = {c.pk: c for c in refund_work_list(practice_id=practice.pk).filter(pk__in=ids)}
    absent = [i for i in ids if i not in listed]
    if absent:
        raise RuleViolation(f"credit {', '.join(map(str, absent))} is not on the refund work list now (no active refund "
                            "policy takes it, the patient elected to keep it, or a refund or a resolution of its case "
                            "is already under way)", field="credit_ids")
    order = sorted(ids, key=lambda i: (listed[i].patient_id, i))
    bands = bands_of(practice.pk)
    manager = is_manager(actor, practice.pk)
    if not manager:  # the band each credit will need, credits of one patient added up in the order they go
        extra: dict[int, Decimal] = {}
        for i in order:
            c = listed[i]
            total = c.window_total + extra.get(c.patient_id, ZERO) + c.on_hand
            rule = approval_rule(practice_id=practice.pk, amount=total, bands=bands)
            if rule.role == MANAGER:
                raise PermissionDenied(_refusal(rule, credit_id=i, amount=c.on_hand, total=total), field="credit_ids")
            extra[c.patient_id] = extra.get(c.patient_id, ZERO) + c.on_hand

    refunds: list[Refund] = []
    failure = None
    for i in order:
        try:
            refunds.append(_request_one(credit_id=i, practice=practice, actor=actor, reason=reason, bands=bands))
        except SettleError as exc:
            failure = exc
            break
    for n, r in enumerate(refunds):
        if r.state == Refund.State.APPROVED and r.method == Refund.Method.ORIGINAL_PAYMENT:
            try:
                r = refunds[n] = refund_issue(refund_id=r.pk, actor=actor)
            except SettleError as exc:
                r.refresh_from_db()
                r.issue_error = exc.message
                continue
        r.issue_error = ""
    issued = [r for r in refunds if r.state == Refund.State.ISSUED]
    if issued:
        _close_cases(refunds=issued, actor=actor, reason=reason)
    if failure is not None:
        if not refunds:
            raise failure
        done = ", ".join(f"#{r.pk} (credit {r.credit_id})" for r in refunds)
        raise type(failure)(f"{failure.message}; the refunds requested before it stand: {done}", field=failure.field,
                            code=failure.code)
    return refunds


@transaction.atomic(durable=True)
def _request_one(*, credit_id: int, practice: Practice, actor, reason: str, bands) -> Refund:
    """One credit's refund, in its own transaction: its case and its patient locked (in that
    order), the work list's conditions and the band re-checked under the lock, then the request."""
    c = Credit.objects.only("pk", "patient_id").get(pk=credit_id)
    case_id = Case.objects.filter(credit_id=credit_id).values_list("pk", flat=True).first()
    held = lock(cases=[case_id] if case_id else [], patients=[c.patient_id])
    row = refund_work_list(practice_id=practice.pk).filter(pk=credit_id).first()
    if row is None:
        raise RuleViolation(f"credit {credit_id} is no longer on the refund work list (its money, its patient's balance "
                            "or its case changed meanwhile)", field="credit_ids")
    total = refund_window_total(practice=practice, patient_id=c.patient_id) + row.on_hand
    rule = approval_rule(practice_id=practice.pk, amount=total, bands=bands)
    if rule.role == MANAGER and not is_manager(actor, practice.pk):
        raise PermissionDenied(_refusal(rule, credit_id=credit_id, amount=row.on_hand, total=total),
                               field="credit_ids")
    r = refund_request_tx(credit_id=credit_id, amount=row.on_hand, actor=actor, reason=reason,
                          require_approval=rule.four_eyes)
    if case_id:
        wait = " It waits for a manager's approval." if r.state == Refund.State.REQUESTED else ""
        record(held.cases[case_id], CaseEvent.Kind.NOTE,
               f"Refund #{r.pk} of {r.amount} requested from the refund work list ({rule.describe()}): {reason}.{wait}",
               actor=actor, data={"via": "refund_policy", "refund": r.pk, "policy": row.policy_id,
                                  "band": rule.band.pk if rule.band else None, "four_eyes": r.needs_approval})
    return r


@transaction.atomic(durable=True)
def _close_cases(*, refunds: list[Refund], actor, reason: str) -> int:
    """Resolve the cases of credits whose money the refunds took in full (outcome refund_patient).
    A case that meanwhile got a live proposal is left to the scan's `cases_close_gone`, which
    refuses the proposal as it resolves the case. Returns how many resolved."""
    by_credit = {r.credit_id: r for r in refunds}
    case_ids = list(Case.objects.open().filter(credit_id__in=by_credit).values_list("pk", flat=True))
    if not case_ids:
        return 0
    cases = lock(cases=case_ids).cases
    live = set(Proposal.objects.filter(case_id__in=case_ids, state__in=Proposal.LIVE).values_list("case_id", flat=True))
    left = {c.pk: c.on_hand + c.refund_hold for c in Credit.objects.filter(pk__in=by_credit)}
    resolved = 0
    for case in (cases[i] for i in sorted(cases)):
        if case.state == Case.State.RESOLVED or left[case.credit_id] != 0 or case.pk in live:
            continue
        r = by_credit[case.credit_id]
        note = f"Refunded to the patient from the refund work list: refund #{r.pk} of {r.amount} ({r.reference})"
        move(case, "resolve", actor=actor, reason=f"{note}: {reason}", data={"via": "refund_policy", "refund": r.pk},
             outcome=Case.Outcome.REFUND_PATIENT, note=note, by=actor)
        resolved += 1
    return resolved
