"""What goes in and out of the reports API (issue 12 item 6): audit runs and their findings, second
reviews of cases, the measures and their trend, the reconciliation, the export catalog and export
jobs, and the Medicare credit balance reports. Output serializers are read-only views of the rows
(reports/models.py) and of the dicts the reports layer returns (reports/measures.py,
reports/reconciliation.py); input serializers only check shapes and types: the rules are the
services' (reports/services/, reports/audits/runner.py, reports/exports/jobs.py, reports/cms838.py)."""

from datetime import date

from rest_framework import serializers

from api.fields import MoneyField, Reason, StrictBooleanField, StrictDateField, TextField
from api.serializers_adjudication import Username
from reports.exports.base import REGISTRY
from reports.exports.writers import FORMATS
from reports.models import AuditFinding, AuditRun, CaseReview, Cms838Line, Cms838Report, ExportJob


def Money(**kwargs):
    """Money out, as a decimal string with two places (totals may pass the 12 digits of an amount)."""
    return MoneyField(read_only=True, max_digits=20, **kwargs)


def Choice(choices, help_text: str = "", **kwargs):
    """A choice shown as plain text in the schema, its values in the help text: the same field name with another
    choice set elsewhere in the API (kind, status, method, format) would make drf-spectacular's enum names
    collide (a warning, which the schema check fails on)."""
    values = ", ".join(f"`{v}`" for v, _ in choices)
    return serializers.CharField(read_only=True, help_text=f"{help_text} One of {values}.".strip(), **kwargs)


FIRST_DAY, LAST_DAY = date(1900, 1, 1), date(2199, 12, 31)


class ReportDateField(StrictDateField):
    """A day of a report, 1900-01-01 to 2199-12-31 (the reports reach past the day they are given: a date at the end
    of the calendar would overflow)."""

    def to_internal_value(self, value):
        day = super().to_internal_value(value)
        if not FIRST_DAY <= day <= LAST_DAY:
            raise serializers.ValidationError("A date from 1900-01-01 to 2199-12-31.", code="invalid")
        return day


def Rate(help_text: str):
    return serializers.DecimalField(max_digits=30, decimal_places=4, read_only=True, allow_null=True,
                                    help_text=help_text)


# --- audits -----------------------------------------------------------------------------------------

RUN_FIELDS = ("id", "kind", "status", "started_at", "finished_at", "as_of", "triggered_by", "reason", "finding_count",
              "error")


class AuditRunSerializer(serializers.ModelSerializer):
    kind = Choice(AuditRun.Kind.choices)
    status = Choice(AuditRun.Status.choices)
    triggered_by = Username("triggered_by", "Who started it; null: the schedule.")

    class Meta:
        model = AuditRun
        fields = RUN_FIELDS
        read_only_fields = fields


class CheckSummarySerializer(serializers.Serializer):
    check = serializers.CharField(help_text="The check (a finding kind).")
    label = serializers.CharField()
    findings = serializers.IntegerField(allow_null=True, help_text="What it found (null when it failed to run).")
    recorded = serializers.IntegerField(allow_null=True, help_text="Findings recorded (at most 1,000 per check).")
    ms = serializers.IntegerField(allow_null=True, help_text="How long it ran, in milliseconds.")
    error = serializers.CharField(allow_null=True, help_text="Why it failed to run, or null.")


class FindingCountsSerializer(serializers.Serializer):
    by_state = serializers.DictField(child=serializers.IntegerField(), help_text="open, acknowledged, resolved.")
    by_severity = serializers.DictField(child=serializers.IntegerField(),
                                        help_text="info, warning, error, critical.")
    by_kind = serializers.DictField(child=serializers.IntegerField())


class AuditRunDetailSerializer(AuditRunSerializer):
    checks = serializers.SerializerMethodField(help_text="Each check of the run, in order.")
    finding_counts = serializers.SerializerMethodField(help_text="The findings recorded by this run.")

    class Meta:
        model = AuditRun
        fields = (*RUN_FIELDS, "checks", "finding_counts")
        read_only_fields = fields

    def get_checks(self, run) -> CheckSummarySerializer(many=True):
        order = list(AuditFinding.BOOKS_CHECKS + AuditFinding.WORK_CHECKS)
        out = []
        for kind, s in sorted((run.checks or {}).items(), key=lambda kv: (order.index(kv[0]) if kv[0] in order
                                                                          else len(order), kv[0])):
            label = AuditFinding.Kind(kind).label if kind in AuditFinding.Kind.values else kind
            out.append({"check": kind, "label": label, "findings": s.get("findings"), "recorded": s.get("recorded"),
                        "ms": s.get("ms"), "error": s.get("error")})
        return CheckSummarySerializer(out, many=True).data

    def get_finding_counts(self, run) -> FindingCountsSerializer:
        counts = {"by_state": {k: 0 for k in AuditFinding.State.values},
                  "by_severity": {k: 0 for k in AuditFinding.Severity.values}, "by_kind": {}}
        for state, severity, kind in run.findings.values_list("state", "severity", "kind"):
            counts["by_state"][state] += 1
            counts["by_severity"][severity] += 1
            counts["by_kind"][kind] = counts["by_kind"].get(kind, 0) + 1
        return counts


class AuditFindingSerializer(serializers.ModelSerializer):
    amount = Money(allow_null=True, help_text="The money concerned (a difference, a credit, a balance), or null.")
    decided_by = Username("decided_by", "Who acknowledged or resolved it (the system user: a later run).")

    class Meta:
        model = AuditFinding
        fields = ("id", "run", "kind", "severity", "object_type", "object_id", "object_label", "expected", "actual",
                  "amount", "age_days", "detail", "key", "previous", "state", "decided_by", "decided_at",
                  "decision_reason", "created_at")
        read_only_fields = fields


class CaseReviewSerializer(serializers.ModelSerializer):
    reviewer = Username("reviewer")
    case_state = serializers.CharField(source="case.state", read_only=True)
    case_outcome = serializers.CharField(source="case.outcome", read_only=True,
                                         help_text="How the case was resolved.")

    class Meta:
        model = CaseReview
        fields = ("id", "case", "case_state", "case_outcome", "run", "finding", "state", "sampled_at", "reviewer",
                  "reviewed_at", "note")
        read_only_fields = fields


class AuditRunStartSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=AuditRun.Kind.choices)
    reason = Reason(required=True)


class ReviewRecordSerializer(serializers.Serializer):
    outcome = serializers.ChoiceField(choices=[("passed", "Passed"), ("failed", "Failed (counts as an error)")])
    note = TextField(max_length=20_000, help_text="What you checked and found; kept with the review.")
    reopen = StrictBooleanField(required=False, default=False,
                                help_text="A failed review only: the case goes back to investigating.")


# --- measures, trend, reconciliation ----------------------------------------------------------------

class MeasuresQuerySerializer(serializers.Serializer):
    date_from = ReportDateField(help_text="First day of the period (YYYY-MM-DD, the practice's dates).")
    date_to = ReportDateField(help_text="Last day of the period.")
    as_of = ReportDateField(required=False, help_text="The day of the aging and the balances (default: date_to).")


class TrendQuerySerializer(serializers.Serializer):
    end = ReportDateField(help_text="The last day of the last week (weeks end on its weekday).")
    weeks = serializers.IntegerField(required=False, default=12, min_value=1, max_value=104,
                                     help_text="How many weeks (1 to 104; default 12).")


class ReconciliationQuerySerializer(serializers.Serializer):
    as_of = ReportDateField(required=False, help_text="The end of this day (default: the practice's today).")


class BucketSerializer(serializers.Serializer):
    label = serializers.CharField()
    count = serializers.IntegerField(help_text="Open cases.")
    amount = Money(help_text="The money still left on them.")


class RefundsIssuedSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    amount = Money()
    median_days = serializers.DecimalField(max_digits=12, decimal_places=2, allow_null=True,
                                           help_text="Median days from request to issue (null: none issued).")


class NightlyRunPointSerializer(serializers.Serializer):
    started_at = serializers.DateTimeField()
    status = serializers.CharField()
    applications = serializers.IntegerField()
    applied = Money()
    released = serializers.IntegerField(help_text="Credits released (unlocked) by the run.")


class PayerCountSerializer(serializers.Serializer):
    payer = serializers.CharField()
    count = serializers.IntegerField()


class ReplacedServiceSerializer(serializers.Serializer):
    turnaround_hours = serializers.DecimalField(max_digits=10, decimal_places=2)
    approval_rate = serializers.DecimalField(max_digits=10, decimal_places=4)
    error_rate = serializers.DecimalField(max_digits=10, decimal_places=4)


class MeasuresSerializer(serializers.Serializer):
    """reports.measures.measures: DOMAIN rule 21 for a period (docs/reports.md has each definition)."""

    practice = serializers.IntegerField()
    practice_name = serializers.CharField()
    date_from = serializers.DateField()
    date_to = serializers.DateField()
    as_of = serializers.DateField()
    resolutions = serializers.IntegerField(help_text="Moves of a case to resolved in the period.")
    resolved_cases = serializers.IntegerField()
    errors = serializers.IntegerField(help_text="Cases resolved in the period, later reopened or failed a review.")
    turnaround_hours = serializers.DecimalField(max_digits=20, decimal_places=2, allow_null=True,
                                                help_text="Mean hours from identification to resolution.")
    approved = serializers.IntegerField()
    rejected = serializers.IntegerField()
    approval_rate = Rate("approved ÷ (approved + rejected), 4 places; null: none decided.")
    error_rate = Rate("errors ÷ resolved_cases, 4 places; null: none resolved.")
    automatic = serializers.IntegerField(help_text="Resolutions without staff action.")
    automatic_share = Rate("automatic ÷ resolutions.")
    credit_balances = Money(help_text="Patient credits (available and locked) and payer credits due, at the end "
                                      "of as_of (the journal).")
    gross_ar = Money(help_text="Patient receivable + charges receivable at the end of as_of.")
    share_of_ar = Rate("credit_balances ÷ gross_ar.")
    share_warning = serializers.BooleanField(help_text="share_of_ar above 3%.")
    aging = BucketSerializer(many=True, help_text="Open cases as of as_of by days since identified.")
    by_source = BucketSerializer(many=True)
    by_cause = BucketSerializer(many=True)
    by_payer = BucketSerializer(many=True)
    refunds_issued = RefundsIssuedSerializer()
    nightly_runs = NightlyRunPointSerializer(many=True)
    unmatched_by_payer = PayerCountSerializer(many=True, help_text="835 claims waiting for staff now.")
    replaced_service = ReplacedServiceSerializer(help_text="The figures of the service settle replaced.")

    def to_representation(self, instance):
        buckets = {k: [{"label": lbl, "count": n, "amount": a} for lbl, n, a in instance[k]]
                   for k in ("aging", "by_source", "by_cause", "by_payer")}
        payers = [{"payer": p, "count": n} for p, n in instance["unmatched_by_payer"]]
        return super().to_representation({**instance, **buckets, "unmatched_by_payer": payers})


class TrendPointSerializer(serializers.Serializer):
    week_end = serializers.DateField()
    turnaround_hours = serializers.DecimalField(max_digits=20, decimal_places=2, allow_null=True)
    approval_rate = Rate("4 places; null: none decided that week.")
    error_rate = Rate("4 places; null: none resolved that week.")
    resolutions = serializers.IntegerField()
    credit_balances = Money(help_text="At the end of the week.")
    gross_ar = Money()
    share_of_ar = Rate("credit_balances ÷ gross_ar.")


class ReconciliationTotalsSerializer(serializers.Serializer):
    credits_on_hand = Money()
    credit_liability = Money(help_text="The credit liability in the journal.")
    encounter_balances = Money(help_text="Visit balances.")
    patient_receivable = Money(help_text="The patient receivable in the journal.")
    journal_imbalance = Money(help_text="What the journal entries out of balance add up to.")
    differences = serializers.IntegerField(help_text="How many differences are listed.")


class DifferenceSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["journal_entry", "patient", "credit", "encounter"])
    object_type = serializers.CharField()
    object_id = serializers.IntegerField()
    label = serializers.CharField(help_text="The object in words.")
    books = Money(help_text="What the rows say.")
    journal = Money(help_text="What the journal says.")
    difference = Money(help_text="books - journal.")


class ReconciliationSerializer(serializers.Serializer):
    """reports.reconciliation.reconcile(...).as_dict()."""

    practice = serializers.IntegerField()
    as_of = serializers.DateField()
    cutoff = serializers.DateTimeField(help_text="The start of the next local day: what was written before it.")
    totals = ReconciliationTotalsSerializer()
    differences = DifferenceSerializer(many=True)


# --- exports ----------------------------------------------------------------------------------------

class ReportDefSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="The `report` to send to POST /exports.")
    title = serializers.CharField()
    description = serializers.CharField()
    takes = serializers.ListField(child=serializers.CharField(),
                                  help_text="Its params: `period` (date_from and date_to), `as_of`, or its own "
                                            "(`run`, `report`, `year`).")
    formats = serializers.ListField(child=serializers.CharField(), help_text="csv, xlsx, pdf.")


class ExportJobSerializer(serializers.ModelSerializer):
    format = Choice(ExportJob.Format.choices)
    created_by = Username("created_by")
    file_url = serializers.SerializerMethodField(help_text="Where to download the file (done only), else null.")

    class Meta:
        model = ExportJob
        fields = ("id", "report", "format", "params", "state", "rows_done", "rows_total", "filename", "size",
                  "sha256", "error", "created_by", "created_at", "started_at", "finished_at", "file_url")
        read_only_fields = fields

    def get_file_url(self, job) -> str | None:
        if job.state != ExportJob.State.DONE:
            return None
        path = f"/api/v1/exports/{job.pk}/file"
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request is not None else path


class ExportStartSerializer(serializers.Serializer):
    report = serializers.ChoiceField(choices=[], help_text="A report's name from GET /reports.")
    format = serializers.ChoiceField(choices=FORMATS)
    params = serializers.DictField(required=False, default=dict,
                                   help_text="What the report takes (GET /reports): date_from and date_to "
                                             "(YYYY-MM-DD), as_of, or its own (run, report, year).")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["report"].choices = sorted(REGISTRY)  # registered when the reports app is ready


# --- the Medicare credit balance report -------------------------------------------------------------

REPORT_FIELDS = ("id", "part", "period_start", "period_end", "provider_name", "provider_number", "contact_name",
                 "contact_phone", "generated_by", "generated_at", "reason", "line_count", "credit_total",
                 "repaid_total", "outstanding_total")


class Cms838ReportSerializer(serializers.ModelSerializer):
    generated_by = Username("generated_by")
    credit_total = Money()
    repaid_total = Money()
    outstanding_total = Money()

    class Meta:
        model = Cms838Report
        fields = REPORT_FIELDS
        read_only_fields = fields


class Cms838LineSerializer(serializers.ModelSerializer):
    method = Choice(Cms838Line.Method.choices, "C check, A adjustment bill, X adjustment submitted, blank: not "
                                               "repaid yet.")
    credit_balance = Money()
    amount_repaid = Money()
    amount_outstanding = Money()

    class Meta:
        model = Cms838Line
        fields = ("line_number", "payer_credit", "case", "beneficiary_last_name", "beneficiary_first_initial", "mbi",
                  "icn", "type_of_bill", "from_date", "through_date", "paid_date", "cost_report_period",
                  "credit_balance", "amount_repaid", "method", "amount_outstanding", "reason", "explanation")
        read_only_fields = fields


class Cms838ReportDetailSerializer(Cms838ReportSerializer):
    lines = serializers.SerializerMethodField(help_text="As reported, by line number.")

    class Meta:
        model = Cms838Report
        fields = (*REPORT_FIELDS, "lines")
        read_only_fields = fields

    def get_lines(self, report) -> Cms838LineSerializer(many=True):
        return Cms838LineSerializer(report.lines.order_by("line_number"), many=True).data


class Cms838GenerateSerializer(serializers.Serializer):
    part = serializers.ChoiceField(choices=Cms838Report.Part.choices)
    period_start = ReportDateField(help_text="YYYY-MM-DD.")
    period_end = ReportDateField(help_text="YYYY-MM-DD; balances identified on or before it are reported.")
    reason = Reason(required=True)
