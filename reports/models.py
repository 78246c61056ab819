"""Audits, reconciliation, measures and the managers' reports (issue 12; DOMAIN rules 20-22).

* `ReportSettings`: per practice, what the reports need that the books do not hold (the Medicare
  provider numbers and the contact of the CMS-838 header, the cost-report period, the size of the
  weekly review sample).
* `AuditRun` / `AuditFinding`: each scheduled (or manual) audit is a run; what it finds is a
  finding (its kind: the check that found it; its severity, the object, expected and actual values, the detail), which a
  manager acknowledges or resolves with a reason (django-fsm, with history). Runs and findings are
  never deleted (a trigger refuses DELETE: migration 0002).
* `CaseReview`: a resolved adjudication case sampled by the weekly audit for a second review; the
  reviewer (never the person who resolved it) records passed or failed, and a failed review counts
  as an error (rule 21).
* `Cms838Report` / `Cms838Line`: a generated Medicare credit balance report and its lines, kept as
  they were reported; a payer credit appears on one line at most, ever (rule 22: "a balance once
  reported is marked and not reported again": a unique constraint).
* `ExportJob`: an export (a report in CSV, XLSX or PDF) written by a django-q2 task with its
  progress, offered for download when done; its file is temporary data (the retention job removes
  old ones, the row stays, marked expired).

Lock order (ledger/locks.py): Practice -> Membership -> AuditFinding -> CaseReview -> ... -> Case.
"""

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django_fsm import FSMField, FSMModelMixin

from ledger.fsm import transition
from ledger.models import history
from ledger.money import ZERO, money_field


class ReportSettings(models.Model):
    """One row per practice (created on first use with these defaults)."""

    practice = models.OneToOneField("ledger.Practice", on_delete=models.PROTECT, related_name="report_settings")
    medicare_ptan_part_a = models.CharField("Medicare provider number (PTAN), Part A", max_length=20, blank=True)
    medicare_ptan_part_b = models.CharField("Medicare provider number (PTAN), Part B", max_length=20, blank=True)
    report_contact_name = models.CharField("Contact for the Medicare credit balance report", max_length=100,
                                           blank=True)
    report_contact_phone = models.CharField("Contact's phone", max_length=30, blank=True)
    cost_report_closed_through = models.DateField(
        null=True, blank=True,
        help_text="End of the last settled cost-report period: a Medicare payment dated after it is in an open "
                  "period (O), on or before it in a closed one (C). Blank: every period is open.")
    review_sample_size = models.PositiveIntegerField(
        default=5, help_text="Resolved cases the weekly audit puts up for a second review (0 to 100).")
    history = history()

    class Meta:
        verbose_name = "report settings"
        verbose_name_plural = "report settings"
        constraints = [
            models.CheckConstraint(condition=Q(review_sample_size__lte=100), name="report_settings_sample_range"),
        ]

    def __str__(self) -> str:
        return f"Report settings of {self.practice}"


class AuditRun(models.Model):
    class Kind(models.TextChoices):
        BOOKS = "books", "The books (daily)"
        WORK = "work", "The adjudication work (weekly)"

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        CLEAN = "clean", "No findings"
        FINDINGS = "findings", "Findings recorded"
        FAILED = "failed", "A check failed to run"

    practice = models.ForeignKey("ledger.Practice", on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    as_of = models.DateField(help_text="The practice's local date the run audited.")
    triggered_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="+", db_index=False, help_text="Blank: the schedule.")
    reason = models.TextField()
    checks = models.JSONField(default=dict, blank=True,
                              help_text="Per check: findings found, milliseconds, and the error if it failed.")
    finding_count = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(status="running", finished_at__isnull=True)
                                   | (~Q(status="running") & Q(finished_at__isnull=False)),
                                   name="audit_run_finished_when_done"),
        ]
        indexes = [models.Index(fields=["practice", "kind", "-started_at"], name="audit_run_practice_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} audit of {self.as_of:%m/%d/%Y}"


class AuditFinding(FSMModelMixin, models.Model):
    class Kind(models.TextChoices):
        # the books (daily)
        JOURNAL_UNBALANCED = "journal_unbalanced", "Journal entry out of balance"
        CREDIT_LIABILITY = "credit_liability", "Credits on hand differ from the credit liability"
        CREDIT_BUCKETS = "credit_buckets", "A credit's amounts do not add up"
        ENCOUNTER_CACHE = "encounter_cache", "A visit's totals differ from its rows"
        TOTALS_TABLE = "totals_table", "A patient's totals differ from a recount"
        # the adjudication work (weekly)
        STALE_LOCKED = "stale_locked", "Credit locked longer than the limit"
        SKIPPED_APPLICATION = "skipped_application", "Available credit next to a balance due"
        PAYER_CREDIT_OPEN = "payer_credit_open", "Payer credit open too long"
        CLOCK_NEAR_BREACH = "clock_near_breach", "Deadline near"
        CLOCK_BREACHED = "clock_breached", "Deadline missed"
        REVIEW_SAMPLE = "review_sample", "Resolved case up for a second review"

    BOOKS_CHECKS = (Kind.JOURNAL_UNBALANCED, Kind.CREDIT_LIABILITY, Kind.CREDIT_BUCKETS, Kind.ENCOUNTER_CACHE,
                    Kind.TOTALS_TABLE)
    WORK_CHECKS = (Kind.STALE_LOCKED, Kind.SKIPPED_APPLICATION, Kind.PAYER_CREDIT_OPEN, Kind.CLOCK_NEAR_BREACH,
                   Kind.CLOCK_BREACHED, Kind.REVIEW_SAMPLE)

    class Severity(models.TextChoices):
        INFO = "info", "Information"
        WARNING = "warning", "Warning"
        ERROR = "error", "Error"
        CRITICAL = "critical", "Critical"

    class State(models.TextChoices):
        OPEN = "open", "Open"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"
        RESOLVED = "resolved", "Resolved"

    run = models.ForeignKey(AuditRun, on_delete=models.PROTECT, related_name="findings")
    practice = models.ForeignKey("ledger.Practice", on_delete=models.PROTECT, related_name="+", db_index=False)
    kind = models.CharField(max_length=24, choices=Kind.choices, help_text="The check that found it.")
    severity = models.CharField(max_length=10, choices=Severity.choices)
    object_type = models.CharField(max_length=24, help_text="journal_entry, patient, credit, encounter, "
                                                            "payer_credit or case")
    object_id = models.BigIntegerField(null=True, blank=True)
    object_label = models.CharField(max_length=200, help_text="The object in words (names, not ids).")
    expected = models.CharField(max_length=200, blank=True)
    actual = models.CharField(max_length=200, blank=True)
    amount = money_field(null=True, blank=True, max_digits=20,
                         help_text="The money concerned (a difference, a credit, a balance).")
    age_days = models.IntegerField(null=True, blank=True, help_text="How long the condition has lasted, in days.")
    detail = models.TextField(blank=True)
    key = models.CharField(max_length=120, help_text="kind:object_type:object_id: the same fault in every run.")
    previous = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                                 db_index=False, help_text="The same fault as found by an earlier run.")
    state = FSMField(choices=State.choices, default=State.OPEN, protected=True)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="+", db_index=False)
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    history = history(no_db_index=["run", "practice", "previous", "decided_by"])

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "key"], name="audit_finding_once_per_run"),
            # acknowledged or resolved: by someone, with a reason (the automatic resolution of a fault
            # no longer found names the run that no longer found it, decided_by the system user)
            models.CheckConstraint(condition=Q(state="open", decided_by__isnull=True, decided_at__isnull=True)
                                   | (~Q(state="open") & Q(decided_by__isnull=False, decided_at__isnull=False)
                                      & ~Q(decision_reason="")),
                                   name="audit_finding_decided_with_reason"),
        ]
        indexes = [
            models.Index(fields=["practice", "state", "kind"], name="audit_finding_state_idx"),
            models.Index(fields=["practice", "key"], name="audit_finding_key_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.object_label}"

    @transition(field=state, source=State.OPEN, target=State.ACKNOWLEDGED)
    def acknowledge(self, *, by, reason):
        self.decided_by, self.decided_at, self.decision_reason = by, timezone.now(), reason

    @transition(field=state, source=[State.OPEN, State.ACKNOWLEDGED], target=State.RESOLVED)
    def resolve(self, *, by, reason):
        self.decided_by, self.decided_at, self.decision_reason = by, timezone.now(), reason


class CaseReview(FSMModelMixin, models.Model):
    class State(models.TextChoices):
        PENDING = "pending", "Waiting for review"
        PASSED = "passed", "Passed"
        FAILED = "failed", "Failed (counts as an error)"

    practice = models.ForeignKey("ledger.Practice", on_delete=models.PROTECT, related_name="+", db_index=False)
    case = models.ForeignKey("adjudication.Case", on_delete=models.PROTECT, related_name="reviews")
    run = models.ForeignKey(AuditRun, on_delete=models.PROTECT, related_name="reviews", db_index=False)
    finding = models.OneToOneField(AuditFinding, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="review")
    state = FSMField(choices=State.choices, default=State.PENDING, protected=True)
    sampled_at = models.DateTimeField(default=timezone.now)
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="+", db_index=False)
    reviewed_at = models.DateTimeField(null=True, blank=True)
    note = models.TextField(blank=True, help_text="What the reviewer checked and found.")
    history = history(no_db_index=["practice", "case", "run", "reviewer"])

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["case", "run"], name="case_review_once_per_run"),
            models.CheckConstraint(condition=Q(state="pending", reviewer__isnull=True, reviewed_at__isnull=True)
                                   | (~Q(state="pending") & Q(reviewer__isnull=False, reviewed_at__isnull=False)
                                      & ~Q(note="")),
                                   name="case_review_decided_with_note"),
        ]
        indexes = [models.Index(fields=["practice", "state"], name="case_review_state_idx")]

    def __str__(self) -> str:
        return f"Review of case {self.case_id}"

    @transition(field=state, source=State.PENDING, target=State.PASSED)
    def pass_review(self, *, by, note):
        self.reviewer, self.reviewed_at, self.note = by, timezone.now(), note

    @transition(field=state, source=State.PENDING, target=State.FAILED)
    def fail_review(self, *, by, note):
        self.reviewer, self.reviewed_at, self.note = by, timezone.now(), note


class Cms838Report(models.Model):
    """A generated Medicare credit balance report (CMS-838 layout), its header as it was reported."""

    class Part(models.TextChoices):
        A = "A", "Part A"
        B = "B", "Part B"

    practice = models.ForeignKey("ledger.Practice", on_delete=models.PROTECT, related_name="+")
    part = models.CharField("Medicare part", max_length=1, choices=Part.choices)
    period_start = models.DateField()
    period_end = models.DateField()
    provider_name = models.CharField(max_length=200)
    provider_number = models.CharField("provider number (PTAN)", max_length=20)
    contact_name = models.CharField(max_length=100)
    contact_phone = models.CharField(max_length=30)
    generated_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+",
                                     db_index=False)
    generated_at = models.DateTimeField(default=timezone.now)
    reason = models.TextField()
    line_count = models.PositiveIntegerField(default=0)
    credit_total = money_field(default=ZERO, max_digits=20)
    repaid_total = money_field(default=ZERO, max_digits=20)
    outstanding_total = money_field(default=ZERO, max_digits=20)

    class Meta:
        verbose_name = "Medicare credit balance report"
        constraints = [
            models.CheckConstraint(condition=Q(period_end__gte=F("period_start")), name="cms838_period_ordered"),
            models.CheckConstraint(condition=Q(outstanding_total=F("credit_total") - F("repaid_total")),
                                   name="cms838_totals_add_up"),
        ]

    def __str__(self) -> str:
        return f"Medicare credit balance report, {self.get_part_display()}, {self.period_start:%m/%d/%Y}-" \
               f"{self.period_end:%m/%d/%Y}"


class Cms838Line(models.Model):
    """One claim's line as reported (kept as it was; never updated nor deleted: migration 0002)."""

    class CostReport(models.TextChoices):
        OPEN = "O", "Open"
        CLOSED = "C", "Closed"

    class Method(models.TextChoices):
        CHECK = "C", "Check"
        ADJUSTMENT_BILL = "A", "Adjustment bill"
        ADJUSTMENT_SUBMITTED = "X", "Adjustment submitted"
        NONE = "", "Not repaid yet"

    class Reason(models.TextChoices):
        DUPLICATE = "1", "Duplicate Medicare payment"
        OTHER_PRIMARY = "2", "Another payer is primary"
        OTHER = "3", "Other"

    report = models.ForeignKey(Cms838Report, on_delete=models.PROTECT, related_name="lines")
    practice = models.ForeignKey("ledger.Practice", on_delete=models.PROTECT, related_name="+", db_index=False)
    line_number = models.PositiveIntegerField()
    payer_credit = models.OneToOneField("credits.PayerCredit", on_delete=models.PROTECT, related_name="cms838_line",
                                        help_text="Reported once, ever.")
    case = models.ForeignKey("adjudication.Case", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                             db_index=False)
    beneficiary_last_name = models.CharField(max_length=100)
    beneficiary_first_initial = models.CharField(max_length=1, blank=True)
    mbi = models.CharField("Medicare beneficiary identifier", max_length=64, blank=True)
    icn = models.CharField("internal control number", max_length=64, blank=True)
    type_of_bill = models.CharField(max_length=4, blank=True)
    from_date = models.DateField(null=True, blank=True)
    through_date = models.DateField(null=True, blank=True)
    paid_date = models.DateField(null=True, blank=True)
    cost_report_period = models.CharField(max_length=1, choices=CostReport.choices)
    credit_balance = money_field()
    amount_repaid = money_field(default=ZERO)
    method = models.CharField(max_length=1, choices=Method.choices, blank=True)
    amount_outstanding = money_field(default=ZERO)
    reason = models.CharField(max_length=1, choices=Reason.choices)
    explanation = models.CharField(max_length=200, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["report", "line_number"], name="cms838_line_number_unique"),
            models.CheckConstraint(condition=Q(credit_balance__gt=0, amount_repaid__gte=0,
                                               amount_outstanding=F("credit_balance") - F("amount_repaid")),
                                   name="cms838_line_adds_up"),
            models.CheckConstraint(condition=~Q(reason="3") | ~Q(explanation=""), name="cms838_other_explained"),
        ]

    def __str__(self) -> str:
        return f"Line {self.line_number} of report {self.report_id}"


class ExportJob(FSMModelMixin, models.Model):
    class Format(models.TextChoices):
        CSV = "csv", "CSV"
        XLSX = "xlsx", "Excel (XLSX)"
        PDF = "pdf", "PDF"

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Ready to download"
        FAILED = "failed", "Failed"
        EXPIRED = "expired", "Expired (file removed)"

    practice = models.ForeignKey("ledger.Practice", on_delete=models.PROTECT, related_name="+", db_index=False)
    report = models.CharField(max_length=40, help_text="The report's name in reports/exports/base.py REGISTRY.")
    format = models.CharField(max_length=4, choices=Format.choices)
    params = models.JSONField(default=dict, blank=True, help_text="date_from, date_to, as_of and the report's own.")
    state = FSMField(choices=State.choices, default=State.QUEUED, protected=True)
    rows_done = models.PositiveBigIntegerField(default=0)
    rows_total = models.PositiveBigIntegerField(null=True, blank=True)
    file = models.FileField(upload_to="exports/%Y/%m/", blank=True, max_length=300)
    filename = models.CharField(max_length=200, blank=True, help_text="The name offered for download.")
    size = models.PositiveBigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+",
                                   db_index=False)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(format__in=["csv", "xlsx", "pdf"]), name="export_job_format"),
        ]
        indexes = [models.Index(fields=["practice", "-created_at"], name="export_job_practice_idx")]

    def __str__(self) -> str:
        return f"Export {self.pk}: {self.report} ({self.get_format_display()})"

    @transition(field=state, source=State.QUEUED, target=State.RUNNING)
    def start(self):
        self.started_at = timezone.now()

    @transition(field=state, source=[State.QUEUED, State.RUNNING], target=State.DONE)
    def finish(self):
        self.finished_at = timezone.now()

    @transition(field=state, source=[State.QUEUED, State.RUNNING], target=State.FAILED)
    def fail(self, *, error: str):
        self.finished_at, self.error = timezone.now(), error

    @transition(field=state, source=[State.DONE, State.FAILED], target=State.EXPIRED)
    def expire(self):
        pass


class BalanceDay(models.Model):
    """A closed local day's closing balances for the dashboard (rule 21), summed from the
    append-only journal: credit balances (patient credits available and locked + payer credits
    due) and gross A/R (patient receivable + charges receivable) at the end of the day. A closed
    day's journal never changes, so a row is exact for good; a derived figure, recomputable from
    the journal at any time (reports/measures.py `balance_days_fill`)."""

    practice = models.ForeignKey("ledger.Practice", on_delete=models.PROTECT, related_name="+", db_index=False)
    day = models.DateField()
    credit_balances = money_field(max_digits=20)
    gross_ar = money_field(max_digits=20)
    computed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["practice", "day"], name="balance_day_once")]

    def __str__(self) -> str:
        return f"{self.practice_id} {self.day}: {self.credit_balances} / {self.gross_ar}"


class OpenCasesSnapshot(models.Model):
    """The open credit-balance cases of a practice, counted at `taken_at` (after the nightly scan by
    the daily books job, or on a manager's "Refresh"): aging buckets and totals by source, cause
    and payer, each [label, count, amount as text]. The dashboard reads the latest one of its
    as-of day, so it never sums every open case on a page view."""

    practice = models.ForeignKey("ledger.Practice", on_delete=models.PROTECT, related_name="+", db_index=False)
    taken_at = models.DateTimeField(default=timezone.now)
    taken_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="+")
    open_cases = models.PositiveIntegerField()
    aging = models.JSONField()
    by_source = models.JSONField()
    by_cause = models.JSONField()
    by_payer = models.JSONField()

    class Meta:
        indexes = [models.Index(fields=["practice", "taken_at"], name="open_cases_snapshot_idx")]

    def __str__(self) -> str:
        return f"{self.practice_id} at {self.taken_at:%Y-%m-%d %H:%M}: {self.open_cases} open cases"
