"""The second review of a resolved case (DOMAIN rule 20): the weekly audit samples resolved cases
(reports/audits/work.py); a manager other than the people who resolved it (the resolver, the
proposer and the approver of the resolution carried out) records passed or failed with a note. A
failed review counts as an error (rule 21, reports/measures.py); with `reopen` the case goes back to
investigating in the same transaction (adjudication's case_reopen, which counts it once more). The
review's audit finding is resolved with the outcome."""

from django.db import transaction
from django.utils import timezone

from adjudication.models import Proposal
from adjudication.services.cases import case_reopen
from ledger.access import ensure_staff
from ledger.errors import InvalidInput, NotFound, PermissionDenied, RuleViolation
from ledger.history import save_with_history
from ledger.inputs import parse_id, require_reason
from ledger.locks import lock
from reports.models import AuditFinding, CaseReview

OUTCOMES = ("passed", "failed")


def case_review_record(*, review, outcome: str, actor, note: str, reopen: bool = False) -> CaseReview:
    note = require_reason(note, field="note")
    if outcome not in OUTCOMES:
        raise InvalidInput(f"outcome: {outcome!r} is not one of passed, failed", field="outcome")
    if reopen and outcome != "failed":
        raise InvalidInput("reopen: only a failed review reopens its case", field="reopen")
    rid = parse_id(review, field="review")
    found = CaseReview.objects.filter(pk=rid).values_list("practice_id", "finding_id").first()
    if found is None:
        raise NotFound(f"case review {rid} not found", field="review")
    practice_id, finding_id = found
    try:
        ensure_staff(actor, practice_id)
    except PermissionDenied:
        raise NotFound(f"case review {rid} not found", field="review") from None
    ensure_staff(actor, practice_id, manager=True)
    with transaction.atomic(durable=True):
        locked = lock(audit_findings=[finding_id] if finding_id else [], case_reviews=[rid])
        r = locked.case_reviews[rid]
        if r.state != CaseReview.State.PENDING:
            raise RuleViolation(f"case review {rid} is already recorded ({r.get_state_display().lower()})",
                                field="review", code="state")
        case = r.case
        deciders = {case.resolved_by_id} | set(
            Proposal.objects.filter(case=case, state=Proposal.State.CARRIED_OUT)
            .values_list("proposed_by_id", "decided_by_id").first() or ())
        if actor.pk in deciders:
            raise PermissionDenied(f"case {case.pk}: you resolved it or decided its resolution; a second review "
                                   "is someone else's", field="review")
        (r.pass_review if outcome == "passed" else r.fail_review)(by=actor, note=note)
        save_with_history(r, actor=actor, reason=note)
        if finding_id:
            f = locked.audit_findings[finding_id]
            if f.state != AuditFinding.State.RESOLVED:
                f.resolve(by=actor, reason=f"Review {outcome}: {note}")
                save_with_history(f, actor=actor, reason=f"Review {outcome}")
        if reopen:
            case_reopen(case=case.pk, actor=actor, reason=f"Failed second review: {note}")
    r.reviewed_at = r.reviewed_at or timezone.now()
    return r
