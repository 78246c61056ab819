"""The audit runner (DOMAIN rule 20): one run of one kind (the books, daily; the adjudication work,
weekly) for one practice, recorded as an `AuditRun` with every `AuditFinding`.

A check is a function registered with `@check(kind, run_kind=...)`: it receives a `Context` and
yields `Finding`s (set-based SQL inside; it never writes). The runner

1. records the run (committed at once, so a running audit is visible);
2. runs every check of the run's kind inside one READ ONLY, REPEATABLE READ transaction: all checks
   see one snapshot of the books, so money moving while the audit runs cannot show as a fault; each
   check in its own savepoint, so one that fails (its error recorded on the run) leaves the others;
3. records the findings in one transaction: the same fault found by an earlier run (same `key`,
   still open or acknowledged) is linked as `previous`, resolved there as found again, and the new
   finding keeps its acknowledgement; an earlier finding of a check that ran cleanly and no longer
   finds it is resolved as "no longer found" (except for checks registered `recheck=False`, the
   review sample, whose findings stay open until the review is recorded);
4. calls the checks' `after` hooks with the rows written (the review sample creates its
   `CaseReview` rows there).

At most MAX_FINDINGS_PER_CHECK findings of one check are recorded per run; the run's `checks`
says how many more there were. Two runs of the same kind for one practice never overlap (a
PostgreSQL advisory lock; the second is refused with Duplicate)."""

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone
from simple_history.utils import bulk_create_with_history, bulk_update_with_history

from adjudication.clocks import practice_today
from adjudication.models import AdjudicationSettings
from ledger.access import ensure_staff, system_user
from ledger.errors import Duplicate, InvalidInput, NotFound
from ledger.models import Practice
from reports.models import AuditFinding, AuditRun, ReportSettings

MAX_FINDINGS_PER_CHECK = 1000
ADVISORY_NAMESPACE = 812  # pg_try_advisory_lock(namespace, practice * 10 + kind number)


@dataclass(frozen=True)
class Finding:
    """What a check found about one object. `label` names it in words (a patient's name and account
    number, a credit's amount and patient), never only an id."""

    object_type: str  # journal_entry, patient, credit, encounter, payer_credit, case
    object_id: int | None
    label: str
    severity: str = AuditFinding.Severity.ERROR
    expected: str = ""
    actual: str = ""
    amount: Decimal | None = None
    age_days: int | None = None
    detail: str = ""


@dataclass(frozen=True)
class Context:
    practice: Practice
    today: date  # the practice's local date
    run: AuditRun
    adjudication: AdjudicationSettings
    settings: ReportSettings


@dataclass(frozen=True)
class Registered:
    kind: str  # AuditFinding.Kind
    run_kind: str  # AuditRun.Kind
    fn: Callable[[Context], Iterable[Finding]]
    after: Callable[[Context, list[AuditFinding]], None] | None
    recheck: bool


CHECKS: dict[str, Registered] = {}


def check(kind: str, *, run_kind: str, after=None, recheck: bool = True):
    """Register a check function for `kind` (an AuditFinding.Kind) in runs of `run_kind`."""

    def register(fn):
        CHECKS[kind] = Registered(kind, run_kind, fn, after, recheck)
        return fn

    return register


def checks_of(run_kind: str) -> list[Registered]:
    order = AuditFinding.BOOKS_CHECKS + AuditFinding.WORK_CHECKS
    return sorted((c for c in CHECKS.values() if c.run_kind == run_kind), key=lambda c: order.index(c.kind))


def report_settings(practice_id: int) -> ReportSettings:
    """The practice's report settings, created with the defaults on first use."""
    return ReportSettings.objects.get_or_create(practice_id=practice_id)[0]


def adjudication_settings(practice_id: int) -> AdjudicationSettings:
    return AdjudicationSettings.objects.get_or_create(practice_id=practice_id)[0]


def _advisory_key(practice_id: int, run_kind: str) -> int:
    return practice_id * 10 + list(AuditRun.Kind.values).index(run_kind)


def run_audit(*, practice_id: int, kind: str, actor=None, reason: str = "", today: date | None = None) -> AuditRun:
    """Run the audit of `kind` for the practice and record it. `actor`: the manager who started it
    (None: the schedule). Returns the finished run (with `status`, `checks`, `finding_count`)."""
    if kind not in AuditRun.Kind.values:
        raise InvalidInput(f"kind: unknown audit {kind!r}; expected one of {', '.join(AuditRun.Kind.values)}",
                           field="kind")
    practice = Practice.objects.filter(pk=practice_id).first()
    if practice is None:
        raise NotFound(f"practice {practice_id} not found")
    if actor is not None:
        ensure_staff(actor, practice_id, manager=True)
    reason = (reason or "").strip() or ("Scheduled audit" if actor is None else "Audit started by hand")
    with connection.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_lock(%s, %s)", [ADVISORY_NAMESPACE, _advisory_key(practice_id, kind)])
        if not cur.fetchone()[0]:
            raise Duplicate(f"an audit of {AuditRun.Kind(kind).label.lower()} is already running for {practice}")
    try:
        return _run(practice, kind, actor=actor, reason=reason, today=today)
    finally:
        with connection.cursor() as cur:
            cur.execute("SELECT pg_advisory_unlock(%s, %s)", [ADVISORY_NAMESPACE, _advisory_key(practice_id, kind)])


def _run(practice: Practice, kind: str, *, actor, reason: str, today: date | None) -> AuditRun:
    today = today or practice_today(practice)
    run = AuditRun.objects.create(practice=practice, kind=kind, as_of=today, triggered_by=actor, reason=reason)
    ctx = Context(practice=practice, today=today, run=run, adjudication=adjudication_settings(practice.pk),
                  settings=report_settings(practice.pk))
    found, summary, failed = _collect(ctx, checks_of(kind))
    rows = _record(ctx, found, summary, failed)
    for reg in checks_of(kind):
        if reg.after is not None and reg.kind not in failed:
            with transaction.atomic():
                reg.after(ctx, [r for r in rows if r.kind == reg.kind])
    run.refresh_from_db()
    return run


def _collect(ctx: Context, registered: list[Registered]):
    """Run the checks on one snapshot; returns ({kind: [Finding]}, summary per kind, failed kinds)."""
    found: dict[str, list[Finding]] = {}
    summary: dict[str, dict] = {}
    failed: set[str] = set()
    own_transaction = not connection.in_atomic_block
    with transaction.atomic():
        if own_transaction:  # inside a caller's transaction (the tests) the snapshot is the caller's
            with connection.cursor() as cur:
                cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        for reg in registered:
            started = time.monotonic()
            kept: list[Finding] = []
            total = 0
            try:
                with transaction.atomic():
                    for finding in reg.fn(ctx):
                        total += 1
                        if len(kept) < MAX_FINDINGS_PER_CHECK:
                            kept.append(finding)
            except Exception as exc:  # noqa: BLE001 - recorded on the run; the other checks still run
                failed.add(reg.kind)
                summary[reg.kind] = {"error": f"{type(exc).__name__}: {exc}"[:2000],
                                     "ms": round((time.monotonic() - started) * 1000)}
                continue
            found[reg.kind] = kept
            summary[reg.kind] = {"findings": total, "recorded": len(kept),
                                 "ms": round((time.monotonic() - started) * 1000)}
    return found, summary, failed


def _record(ctx: Context, found: dict[str, list[Finding]], summary: dict, failed: set[str]) -> list[AuditFinding]:
    run, now, system = ctx.run, timezone.now(), system_user()
    with transaction.atomic():
        fresh: dict[str, dict] = {}
        for kind, findings in found.items():
            for f in findings:
                key = f"{kind}:{f.object_type}:{f.object_id if f.object_id is not None else '-'}"[:120]
                fresh.setdefault(key, dict(
                    run=run, practice=ctx.practice, kind=kind, severity=f.severity, object_type=f.object_type,
                    object_id=f.object_id, object_label=f.label[:200], expected=f.expected[:200],
                    actual=f.actual[:200], amount=f.amount, age_days=f.age_days, detail=f.detail, key=key,
                    created_at=now))
        earlier = list(AuditFinding.objects.select_for_update()
                       .filter(practice=ctx.practice, kind__in=list(found), state__in=[AuditFinding.State.OPEN,
                                                                                       AuditFinding.State.ACKNOWLEDGED])
                       .exclude(run=run).order_by("pk"))
        rechecked = {k for k, reg in CHECKS.items() if reg.recheck}
        closed = []
        for old in earlier:
            again = fresh.get(old.key)
            if again is not None:
                again["previous"] = old
                if old.state == AuditFinding.State.ACKNOWLEDGED:  # the acknowledgement carries over
                    again.update(state=AuditFinding.State.ACKNOWLEDGED, decided_by_id=old.decided_by_id,
                                 decided_at=old.decided_at, decision_reason=old.decision_reason)
                old.resolve(by=system, reason=f"Found again by audit run {run.pk}")
                closed.append(old)
            elif old.kind in rechecked:
                old.resolve(by=system, reason=f"No longer found by audit run {run.pk} ({run.as_of:%m/%d/%Y})")
                closed.append(old)
        new = [AuditFinding(**values) for values in fresh.values()]
        if closed:
            bulk_update_with_history(closed, AuditFinding, ["state", "decided_by", "decided_at", "decision_reason"],
                                     default_user=system, default_change_reason=f"Audit run {run.pk}")
        rows = bulk_create_with_history(new, AuditFinding, default_user=ctx.run.triggered_by or system,
                                        default_change_reason=f"Found by audit run {run.pk}") if new else []
        total = sum(v.get("findings", 0) for v in summary.values())
        run.checks, run.finding_count, run.finished_at = summary, total, timezone.now()
        run.status = (AuditRun.Status.FAILED if failed else
                      AuditRun.Status.FINDINGS if total else AuditRun.Status.CLEAN)
        run.error = "; ".join(f"{k}: {summary[k]['error']}" for k in sorted(failed))
        run.save(update_fields=["checks", "finding_count", "finished_at", "status", "error"])
    return list(AuditFinding.objects.filter(run=run).order_by("pk")) if rows else []
