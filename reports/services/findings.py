"""Deciding audit findings: a manager of the finding's practice acknowledges one (it is known and
being worked on: later runs that find the same fault keep the acknowledgement) or resolves it (the
fault is fixed or explained), always with a reason kept in the finding's history. Another
practice's finding is "not found"; billing staff are refused."""

from django.db import transaction
from django_fsm import can_proceed

from ledger.access import ensure_staff
from ledger.errors import NotFound, PermissionDenied, RuleViolation
from ledger.history import save_with_history
from ledger.inputs import parse_id, require_reason
from ledger.locks import lock
from reports.models import AuditFinding


def _decide(finding, actor, reason: str, verb: str) -> AuditFinding:
    reason = require_reason(reason)
    fid = parse_id(finding, field="finding")
    practice_id = AuditFinding.objects.filter(pk=fid).values_list("practice_id", flat=True).first()
    if practice_id is None:
        raise NotFound(f"audit finding {fid} not found", field="finding")
    try:
        ensure_staff(actor, practice_id)
    except PermissionDenied:
        raise NotFound(f"audit finding {fid} not found", field="finding") from None
    ensure_staff(actor, practice_id, manager=True)
    with transaction.atomic(durable=True):
        f = lock(audit_findings=[fid]).audit_findings[fid]
        if not can_proceed(getattr(f, verb)):
            raise RuleViolation(f"audit finding {fid} is {f.get_state_display().lower()}: it cannot be "
                                f"{'acknowledged' if verb == 'acknowledge' else 'resolved'}", field="finding",
                                code="state")
        getattr(f, verb)(by=actor, reason=reason)
        save_with_history(f, actor=actor, reason=reason)
    return f


def finding_acknowledge(*, finding, actor, reason: str) -> AuditFinding:
    return _decide(finding, actor, reason, "acknowledge")


def finding_resolve(*, finding, actor, reason: str) -> AuditFinding:
    return _decide(finding, actor, reason, "resolve")
