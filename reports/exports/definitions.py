"""The managers' reports (issue 12 item 4), each a ReportDef of reports/exports/base.py: columns and
a row generator that reads keyset batches of BATCH rows (one query per batch, never the whole
table in memory). Periods are local dates of the practice ([date_from, date_to] inclusive)."""

from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.db.models import Sum

from adjudication.models import Case, CaseEvent
from adjudication.services.unclaimed import REPORT_COLUMNS, holder_report_rows
from credits.models import Refund, WriteOff
from ledger.errors import InvalidInput, NotFound
from ledger.inputs import parse_id
from ledger.models import Practice
from reports.exports.base import BATCH, Column, ExportParams, ReportDef, register
from reports.measures import AGING_BUCKETS
from reports.models import AuditRun


def keyset(qs, fields: tuple, *, key: str = "pk"):
    """Rows of `qs` as value tuples (fields), in batches of BATCH by ascending `key`."""
    last = None
    while True:
        page = qs if last is None else qs.filter(**{f"{key}__gt": last})
        batch = list(page.order_by(key).values_list(key, *fields)[:BATCH])
        if not batch:
            return
        for row in batch:
            yield row[1:]
        last = batch[-1][0]


def window(params: ExportParams):
    tz = ZoneInfo(Practice.objects.get(pk=params.practice_id).time_zone)
    return (datetime.combine(params.date_from, time(0), tzinfo=tz),
            datetime.combine(params.date_to + timedelta(days=1), time(0), tzinfo=tz))


def person(last, first):
    return f"{last}, {first}" if last else ""


def name_of(user_first, user_last, username):
    full = f"{user_first or ''} {user_last or ''}".strip()
    return full or (username or "")


# --- aging of open credit balances ----------------------------------------------------------------


def bucket_of(days: int) -> str:
    return next(label for label, lo, hi in AGING_BUCKETS if days >= lo and (hi is None or days <= hi))


def _aging_qs(params):
    return Case.objects.filter(practice_id=params.practice_id).exclude(state=Case.State.RESOLVED)


def _money_left(kind, on_hand, hold, pc_amount, pc_resolved, amount):
    if kind == Case.Kind.PATIENT_CREDIT:
        return (on_hand or 0) + (hold or 0)
    if kind == Case.Kind.PAYER_CREDIT:
        return (pc_amount or 0) - (pc_resolved or 0)
    return amount


def _aging_rows(params):
    practice = Practice.objects.get(pk=params.practice_id)
    tz = ZoneInfo(practice.time_zone)
    as_of = params.as_of or date.today()
    fields = ("id", "kind", "cause", "source", "patient__last_name", "patient__first_name", "patient__account_number",
              "payer__name", "identified_at", "due_on", "credit__on_hand", "credit__refund_hold",
              "payer_credit__amount", "payer_credit__resolved_amount", "amount")
    for (cid, kind, cause, source, last, first, account, payer, identified, due, on_hand, hold, pc_amount,
         pc_resolved, amount) in keyset(_aging_qs(params), fields):
        day = identified.astimezone(tz).date()
        if day > as_of:
            continue
        days = (as_of - day).days
        yield (cid, Case.Kind(kind).label, Case.Cause(cause).label, source or "payer", person(last, first) or payer,
               account or "", day, days, bucket_of(days),
               Decimal(_money_left(kind, on_hand, hold, pc_amount, pc_resolved, amount)), due)


def _aging_summary(params):
    totals = {label: [0, Decimal("0.00")] for label, _, _ in AGING_BUCKETS}
    for row in _aging_rows(params):
        totals[row[8]][0] += 1
        totals[row[8]][1] += row[9]
    lines = [(f"{label} days", f"{n} cases, {amount:,.2f}") for label, (n, amount) in totals.items()]
    lines.append(("Total", f"{sum(n for n, _ in totals.values())} cases, "
                           f"{sum((a for _, a in totals.values()), Decimal('0.00')):,.2f}"))
    return lines


register(ReportDef(
    name="aging", title="Credit-balance aging", takes=("as_of",), rows=_aging_rows, summary=_aging_summary,
    count=lambda p: _aging_qs(p).count(),
    description="Open credit balances by days since identified (0-30 ... over 365), with the money left.",
    columns=[Column("case", "Case", "int"), Column("kind", "Kind"), Column("cause", "Cause"),
             Column("source", "Source"), Column("who", "Patient or payer"), Column("account", "Account"),
             Column("identified", "Identified", "date"), Column("days", "Days", "int"), Column("bucket", "Bucket"),
             Column("amount", "Amount", "money"), Column("due", "Due", "date")]))


# --- refunds register ---------------------------------------------------------------------------


def _refund_qs(params):
    start, end = window(params)
    return Refund.objects.filter(practice_id=params.practice_id, requested_at__gte=start, requested_at__lt=end)


def _refund_rows(params):
    fields = ("id", "requested_at", "issued_at", "patient__last_name", "patient__first_name",
              "patient__account_number", "credit_id", "amount", "method", "reference", "state",
              "requested_by__username", "decided_by__username", "issued_by__username")
    for row in keyset(_refund_qs(params), fields):
        rid, requested, issued, last, first, account, credit, amount, method, ref, state, req, dec, iss = row
        yield (rid, requested, issued, person(last, first), account, credit, amount, Refund.Method(method).label,
               ref, Refund.State(state).label, req, dec or "", iss or "")


def _refund_summary(params):
    issued = _refund_qs(params).filter(state=Refund.State.ISSUED)
    total = issued.aggregate(s=Sum("amount"))["s"] or Decimal("0.00")
    return [("Requested", str(_refund_qs(params).count())), ("Issued", f"{issued.count()}, {total:,.2f}")]


register(ReportDef(
    name="refunds", title="Refunds register", takes=("period",), rows=_refund_rows, summary=_refund_summary,
    count=lambda p: _refund_qs(p).count(), description="Every refund requested in the period and what became of it.",
    columns=[Column("refund", "Refund", "int"), Column("requested", "Requested", "datetime"),
             Column("issued", "Issued", "datetime"), Column("patient", "Patient"), Column("account", "Account"),
             Column("credit", "Credit", "int"), Column("amount", "Amount", "money"), Column("method", "Method"),
             Column("reference", "Reference"), Column("state", "State"), Column("requested_by", "Requested by"),
             Column("approved_by", "Approved by"), Column("issued_by", "Issued by")]))


# --- write-offs -----------------------------------------------------------------------------------


def _writeoff_qs(params):
    start, end = window(params)
    return WriteOff.objects.filter(practice_id=params.practice_id, created_at__gte=start, created_at__lt=end)


def _writeoff_rows(params):
    fields = ("id", "created_at", "patient__last_name", "patient__first_name", "patient__account_number",
              "encounter__date_of_service", "amount", "reason_code", "state", "created_by__username",
              "undone_by__username", "undone_at")
    for wid, at, last, first, account, dos, amount, code, state, by, undone_by, undone_at in keyset(
            _writeoff_qs(params), fields):
        yield (wid, at, person(last, first), account, dos, amount, WriteOff.ReasonCode(code).label,
               WriteOff.State(state).label, by, undone_by or "", undone_at)


def _writeoff_summary(params):
    active = _writeoff_qs(params).filter(state=WriteOff.State.ACTIVE)
    total = active.aggregate(s=Sum("amount"))["s"] or Decimal("0.00")
    return [("Active write-offs", f"{active.count()}, {total:,.2f}")]


register(ReportDef(
    name="writeoffs", title="Write-offs", takes=("period",), rows=_writeoff_rows, summary=_writeoff_summary,
    count=lambda p: _writeoff_qs(p).count(), description="Small-balance write-offs made in the period.",
    columns=[Column("writeoff", "Write-off", "int"), Column("created", "Made", "datetime"),
             Column("patient", "Patient"), Column("account", "Account"), Column("dos", "Date of service", "date"),
             Column("amount", "Amount", "money"), Column("reason", "Reason"), Column("state", "State"),
             Column("by", "By"), Column("undone_by", "Undone by"), Column("undone_at", "Undone", "datetime")]))


# --- the case log (the documentation trail of each case) -----------------------------------------


def _case_qs(params):
    start, end = window(params)
    return (Case.objects.filter(practice_id=params.practice_id, identified_at__lt=end)
            .exclude(state=Case.State.RESOLVED, resolved_at__lt=start))


def _case_events(chunk):
    about = {c[0]: c for c in chunk}
    events = (CaseEvent.objects.filter(case_id__in=list(about)).order_by("case_id", "at", "id")
              .values_list("case_id", "at", "kind", "text", "actor__username", "from_state", "to_state"))
    for case_id, at, kind, text, actor, frm, to in events.iterator(chunk_size=BATCH):
        _, _, cause, amount, last, first, payer = about[case_id]
        yield (case_id, person(last, first) or payer, Case.Cause(cause).label, amount, at,
               CaseEvent.Kind(kind).label, text, actor, f"{frm} -> {to}" if to and frm != to else "")


def _case_log_rows(params):
    """Cases in keyset batches; the events of each batch of cases in one query."""
    fields = ("id", "kind", "cause", "amount", "patient__last_name", "patient__first_name", "payer__name")
    chunk = []
    for case in keyset(_case_qs(params), fields):
        chunk.append(case)
        if len(chunk) == BATCH:
            yield from _case_events(chunk)
            chunk = []
    if chunk:
        yield from _case_events(chunk)


register(ReportDef(
    name="case_log", title="Case log", takes=("period",), rows=_case_log_rows,
    count=lambda p: CaseEvent.objects.filter(case__in=_case_qs(p)).count(),
    description="Every event of every case active in the period: the documentation trail.",
    columns=[Column("case", "Case", "int"), Column("who", "Patient or payer"), Column("cause", "Cause"),
             Column("amount", "Amount", "money"), Column("at", "When", "datetime"), Column("kind", "Event"),
             Column("text", "What happened", width=4), Column("by", "By"), Column("state", "State change")]))


# --- the unclaimed-property holder report --------------------------------------------------------


def _holder_validate(params):
    year = params.extra.get("year") or (params.as_of or date.today()).year
    try:
        year = int(year)
    except (TypeError, ValueError):
        raise InvalidInput(f"year: {year!r} is not a year", field="year") from None
    return ExportParams(practice_id=params.practice_id, as_of=params.as_of, extra={"year": year})


def _holder_rows(params):
    for r in holder_report_rows(practice_id=params.practice_id, year=params.extra["year"]):
        yield tuple(r[c] for c in REPORT_COLUMNS)


register(ReportDef(
    name="holder_report", title="Unclaimed property holder report", takes=("as_of", "year"), rows=_holder_rows,
    validate=_holder_validate, description="Credits reported (or to report) as unclaimed property for a year.",
    columns=[Column(c, c.replace("_", " ").capitalize(),
                    "money" if c == "amount" else "date" if c.endswith("_on") else "int" if c == "report_year"
                    else "text") for c in REPORT_COLUMNS]))


# --- the audit report (a run and its findings) ----------------------------------------------------


def _audit_validate(params):
    run_id = parse_id(params.extra.get("run"), field="run")
    if not AuditRun.objects.filter(pk=run_id, practice_id=params.practice_id).exists():
        raise NotFound(f"audit run {run_id} not found", field="run")
    return ExportParams(practice_id=params.practice_id, extra={"run": run_id})


def _audit_rows(params):
    run = AuditRun.objects.get(pk=params.extra["run"])
    fields = ("kind", "severity", "object_label", "expected", "actual", "amount", "age_days", "detail", "state",
              "decided_by__username", "decision_reason")
    for (kind, sev, label, expected, actual, amount, age, detail, state, by, reason) in keyset(run.findings.all(),
                                                                                            fields):
        yield (kind.replace("_", " "), sev, label, expected, actual, amount, age, detail, state, by or "", reason)


def _audit_summary(params):
    run = AuditRun.objects.get(pk=params.extra["run"])
    lines = [("Audit", f"{run.get_kind_display()} as of {run.as_of:%m/%d/%Y}"), ("Status", run.get_status_display()),
             ("Started", f"{run.started_at:%m/%d/%Y %H:%M} by {run.triggered_by or 'the schedule'}")]
    for kind, info in run.checks.items():
        lines.append((kind.replace("_", " ").capitalize(),
                      info.get("error") or f"{info.get('findings', 0)} found in {info.get('ms', 0)} ms"))
    return lines


register(ReportDef(
    name="audit_report", title="Audit report", takes=("run",), rows=_audit_rows, summary=_audit_summary,
    validate=_audit_validate, count=lambda p: AuditRun.objects.get(pk=p.extra["run"]).findings.count(),
    description="One audit run, its checks and every finding.",
    columns=[Column("check", "Check"), Column("severity", "Severity", width=0.7), Column("object", "Object", width=2.5),
             Column("expected", "Expected"), Column("actual", "Actual"), Column("amount", "Amount", "money"),
             Column("age", "Days", "int"), Column("detail", "Detail", width=2.5), Column("state", "State"),
             Column("by", "Decided by"), Column("reason", "Reason")]))

