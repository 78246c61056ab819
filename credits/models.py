"""Credits: money the practice holds for a patient beyond what the patient owes, and everything
done with it: applications to dates of service, refunds, removals, write-offs of small
balances, and credits due to payers (DOMAIN rules 1-13).

A credit row keeps its original `amount` and splits it into buckets; the database checks that
amount = on_hand + refund_hold + applied + refunded + removed at every commit, so every cent is
in exactly one state. The FSM `state` is the state of the cents still on hand (available or
locked); once nothing is on hand it records how the last of them left (applied, refunded or
removed).
"""

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django_fsm import FSMField, FSMModelMixin

from ledger.fsm import transition
from ledger.models import AMOUNT_CEILING, history
from ledger.money import ZERO, money_field


class Credit(FSMModelMixin, models.Model):
    class State(models.TextChoices):
        AVAILABLE = "available", "Available"
        LOCKED = "locked", "Locked"
        APPLIED = "applied", "Applied"
        REFUNDED = "refunded", "Refunded"
        REMOVED = "removed", "Removed"

    ON_HAND = (State.AVAILABLE, State.LOCKED)

    class Source(models.TextChoices):
        OVERPAYMENT = "overpayment", "Overpayment"
        RESUBMISSION = "resubmission", "Resubmission"
        HELD_PAYMENT = "held_payment", "Payment held for a pending DoS"
        MANUAL = "manual", "Manual"
        PURCHASED = "purchased", "Purchased"
        IMPORT = "import", "Imported"

    practice = models.ForeignKey("ledger.Practice", on_delete=models.PROTECT, related_name="credits")
    patient = models.ForeignKey("ledger.Patient", on_delete=models.PROTECT, related_name="credits")
    source = models.CharField(max_length=16, choices=Source.choices)
    state = FSMField(choices=State.choices, default=State.AVAILABLE, protected=True)
    amount = money_field(help_text="Original amount; never changes.")
    on_hand = money_field(help_text="Still available or locked.")
    refund_hold = money_field(default=ZERO, help_text="Reserved by refunds requested but not yet issued.")
    applied_amount = money_field(default=ZERO)
    refunded_amount = money_field(default=ZERO)
    removed_amount = money_field(default=ZERO)
    locked_encounter = models.ForeignKey(
        "ledger.Encounter", null=True, blank=True, on_delete=models.PROTECT, related_name="locked_credits",
        help_text="The DoS a locked credit is held for.",
    )
    origin_encounter = models.ForeignKey(
        "ledger.Encounter", null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False,
        help_text="The DoS the credit came from; kept when the credit moves.",
    )
    payment = models.ForeignKey(
        "ledger.Payment", null=True, blank=True, on_delete=models.PROTECT, related_name="credits",
        help_text="The payment the money came from (refunds through the system go back to it).",
    )
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+",
                                   db_index=False)
    # history rows are read by credit id; other columns need no index there (cheaper bulk writes)
    history = history(no_db_index=["practice", "patient", "locked_encounter", "origin_encounter", "payment",
                                   "created_by"])

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="credit_amount_positive"),
            models.CheckConstraint(condition=Q(amount__lte=AMOUNT_CEILING), name="credit_amount_ceiling"),
            models.CheckConstraint(
                condition=Q(on_hand__gte=0, refund_hold__gte=0, applied_amount__gte=0, refunded_amount__gte=0,
                            removed_amount__gte=0),
                name="credit_buckets_nonneg",
            ),
            # One state per cent: the buckets add up to the original amount.
            models.CheckConstraint(
                condition=Q(amount=F("on_hand") + F("refund_hold") + F("applied_amount") + F("refunded_amount")
                            + F("removed_amount")),
                name="credit_cents_accounted",
            ),
            models.CheckConstraint(
                condition=Q(state="locked", locked_encounter__isnull=False)
                | (~Q(state="locked") & Q(locked_encounter__isnull=True)),
                name="credit_locked_iff_encounter",
            ),
            models.CheckConstraint(
                condition=Q(state__in=["available", "locked"])
                | Q(on_hand=0, refund_hold=0),
                name="credit_spent_states_have_nothing_on_hand",
            ),
            models.CheckConstraint(
                condition=~Q(state__in=["available", "locked"]) | Q(on_hand__gt=0) | Q(refund_hold__gt=0),
                name="credit_onhand_states_have_money",
            ),
            models.CheckConstraint(condition=Q(refund_hold=0) | Q(state="available"), name="credit_hold_only_available"),
        ]
        indexes = [
            models.Index(fields=["patient", "state"]),
            models.Index(fields=["practice", "state", "created_at"]),
            models.Index(fields=["locked_encounter"], condition=Q(state="locked"), name="credit_locked_enc_idx"),
            # the admin's locked-credits list, oldest first, one page at a time (ties broken by id)
            models.Index(fields=["practice", "created_at", "id"], condition=Q(state="locked"),
                         name="credit_locked_age_idx"),
            # the nightly run pages through a practice's patients with credits on hand
            models.Index(fields=["practice", "patient"], condition=Q(state__in=["available", "locked"]),
                         name="credit_onhand_practice_idx"),
        ]

    def __str__(self) -> str:
        return f"Credit #{self.pk} {self.amount} {self.get_source_display()} ({self.get_state_display()})"

    # Transitions only change the instance; services lock, save and book.
    @transition(field=state, source=State.AVAILABLE, target=State.LOCKED)
    def lock_to(self, encounter):
        self.locked_encounter = encounter

    @transition(field=state, source=State.LOCKED, target=State.AVAILABLE)
    def unlock(self):
        self.locked_encounter = None

    @transition(field=state, source=State.LOCKED, target=State.LOCKED)
    def relock_to(self, encounter):
        self.locked_encounter = encounter

    @transition(field=state, source=[State.AVAILABLE, State.LOCKED], target=State.APPLIED,
                conditions=[lambda c: c.on_hand == 0 and c.refund_hold == 0])
    def mark_applied(self):
        self.locked_encounter = None

    @transition(field=state, source=[State.AVAILABLE], target=State.REFUNDED,
                conditions=[lambda c: c.on_hand == 0 and c.refund_hold == 0])
    def mark_refunded(self):
        pass

    @transition(field=state, source=[State.AVAILABLE, State.LOCKED], target=State.REMOVED,
                conditions=[lambda c: c.on_hand == 0 and c.refund_hold == 0])
    def mark_removed(self):
        self.locked_encounter = None


class CreditApplication(models.Model):
    """Patient money applied to a date of service (positive), or taken back from it into a new
    credit (negative: a remittance lowered the PR, or the claim was resubmitted).

    The money comes from a credit or straight from a payment; never both."""

    practice = models.ForeignKey("ledger.Practice", on_delete=models.PROTECT, related_name="+", db_index=False)
    patient = models.ForeignKey("ledger.Patient", on_delete=models.PROTECT, related_name="applications")
    encounter = models.ForeignKey("ledger.Encounter", on_delete=models.PROTECT, related_name="applications")
    amount = money_field()
    credit = models.ForeignKey(Credit, null=True, blank=True, on_delete=models.PROTECT, related_name="applications")
    payment = models.ForeignKey("ledger.Payment", null=True, blank=True, on_delete=models.PROTECT,
                                related_name="applications")
    returned_to = models.ForeignKey(
        Credit, null=True, blank=True, on_delete=models.PROTECT, related_name="returned_from", db_index=False,
        help_text="For a negative row: the credit the money went back into.",
    )
    nightly_run = models.ForeignKey("credits.NightlyRun", null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="applications")
    reason = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+",
                                   db_index=False)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=~Q(amount=0), name="application_nonzero"),
            models.CheckConstraint(
                condition=(Q(credit__isnull=False) & Q(payment__isnull=True))
                | (Q(credit__isnull=True) & Q(payment__isnull=False)),
                name="application_one_source",
            ),
            models.CheckConstraint(
                condition=Q(amount__gt=0, returned_to__isnull=True) | Q(amount__lt=0, returned_to__isnull=False),
                name="application_return_has_credit",
            ),
        ]
        indexes = [models.Index(fields=["encounter", "created_at"])]  # credit, payment, run: their FK indexes

    def __str__(self) -> str:
        return f"{self.amount} to DoS {self.encounter_id}"


class Refund(FSMModelMixin, models.Model):
    class State(models.TextChoices):
        REQUESTED = "requested", "Requested (awaiting approval)"
        APPROVED = "approved", "Approved"
        ISSUED = "issued", "Issued"
        REJECTED = "rejected", "Rejected"

    class Method(models.TextChoices):
        ORIGINAL_PAYMENT = "original_payment", "Back to the original card/portal payment"
        CHECK = "check", "Check"
        ACH = "ach", "ACH transfer"

    practice = models.ForeignKey("ledger.Practice", on_delete=models.PROTECT, related_name="refunds")
    patient = models.ForeignKey("ledger.Patient", on_delete=models.PROTECT, related_name="refunds")
    credit = models.ForeignKey(Credit, on_delete=models.PROTECT, related_name="refunds")
    payment = models.ForeignKey("ledger.Payment", null=True, blank=True, on_delete=models.PROTECT,
                                related_name="refunds", help_text="For refunds back through the system.")
    amount = money_field()
    method = models.CharField(max_length=20, choices=Method.choices)
    reference = models.CharField(max_length=100, blank=True, help_text="Check number, ACH trace or processor ref.")
    reason = models.TextField()
    state = FSMField(choices=State.choices, default=State.REQUESTED, protected=True)
    needs_approval = models.BooleanField(default=False)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    requested_at = models.DateTimeField(default=timezone.now)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.TextField(blank=True)
    issued_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                  related_name="+")
    issued_at = models.DateTimeField(null=True, blank=True)
    history = history()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="refund_amount_positive"),
            models.CheckConstraint(condition=Q(amount__lte=AMOUNT_CEILING), name="refund_amount_ceiling"),
            models.CheckConstraint(
                condition=~Q(method="original_payment") | Q(payment__isnull=False), name="refund_system_has_payment"
            ),
            # Above the threshold the approver is someone other than the requester.
            models.CheckConstraint(
                condition=Q(needs_approval=False) | Q(decided_by__isnull=True) | ~Q(decided_by=F("requested_by")),
                name="refund_four_eyes",
            ),
            models.CheckConstraint(
                condition=~Q(state="issued") | (Q(issued_at__isnull=False) & ~Q(reference="")),
                name="refund_issued_has_reference",
            ),
        ]
        indexes = [models.Index(fields=["practice", "state"])]

    def __str__(self) -> str:
        return f"Refund #{self.pk} {self.amount} ({self.get_state_display()})"

    @transition(field=state, source=State.REQUESTED, target=State.APPROVED)
    def approve(self, *, by, note=""):
        self.decided_by, self.decided_at, self.decision_note = by, timezone.now(), note

    @transition(field=state, source=[State.REQUESTED, State.APPROVED], target=State.REJECTED)
    def reject(self, *, by, note=""):
        self.decided_by, self.decided_at, self.decision_note = by, timezone.now(), note

    @transition(field=state, source=State.APPROVED, target=State.ISSUED)
    def issue(self, *, by, reference):
        self.issued_by, self.issued_at, self.reference = by, timezone.now(), reference


class WriteOff(FSMModelMixin, models.Model):
    class ReasonCode(models.TextChoices):
        SMALL_BALANCE = "small_balance", "Small balance"
        HARDSHIP = "hardship", "Financial hardship"
        ADMINISTRATIVE = "administrative", "Administrative"
        BAD_DEBT = "bad_debt", "Bad debt"

    class State(models.TextChoices):
        ACTIVE = "active", "Active"
        UNDONE = "undone", "Undone"

    practice = models.ForeignKey("ledger.Practice", on_delete=models.PROTECT, related_name="write_offs")
    patient = models.ForeignKey("ledger.Patient", on_delete=models.PROTECT, related_name="write_offs")
    encounter = models.ForeignKey("ledger.Encounter", on_delete=models.PROTECT, related_name="write_offs")
    amount = money_field()
    reason_code = models.CharField(max_length=20, choices=ReasonCode.choices)
    note = models.TextField()
    state = FSMField(choices=State.choices, default=State.ACTIVE, protected=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    undone_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                  related_name="+")
    undone_at = models.DateTimeField(null=True, blank=True)
    undo_reason = models.TextField(blank=True)
    history = history()

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="writeoff_amount_positive"),
                       models.CheckConstraint(condition=Q(amount__lte=AMOUNT_CEILING), name="writeoff_amount_ceiling")]

    @transition(field=state, source=State.ACTIVE, target=State.UNDONE)
    def undo(self, *, by, reason):
        self.undone_by, self.undone_at, self.undo_reason = by, timezone.now(), reason


class PayerCredit(FSMModelMixin, models.Model):
    """Money a payer overpaid: due to the payer, kept apart from patient credits (rule 13)."""

    class State(models.TextChoices):
        OPEN = "open", "Open"
        REFUNDED = "refunded", "Refunded by check"
        RECOUPED = "recouped", "Recouped in a remittance"

    class Reason(models.TextChoices):
        DUPLICATE = "duplicate_payment", "Paid twice"
        ABOVE_ALLOWED = "above_allowed", "Paid above the allowed amount / charge"
        WRONG_PRIMARY = "wrong_primary", "Paid as primary when another payer was primary"
        OTHER = "other", "Other"

    practice = models.ForeignKey("ledger.Practice", on_delete=models.PROTECT, related_name="payer_credits")
    payer = models.ForeignKey("ledger.Payer", on_delete=models.PROTECT, related_name="credits")
    claim = models.ForeignKey("ledger.Claim", null=True, blank=True, on_delete=models.PROTECT,
                              related_name="payer_credits")
    payer_claim_number = models.CharField(max_length=64, blank=True, help_text="Matched against PLB references.")
    reason = models.CharField(max_length=20, choices=Reason.choices)
    amount = money_field()
    resolved_amount = money_field(default=ZERO)
    state = FSMField(choices=State.choices, default=State.OPEN, protected=True)
    note = models.TextField(blank=True)
    reference = models.CharField(max_length=100, blank=True, help_text="Refund check number or PLB reference.")
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    resolved_at = models.DateTimeField(null=True, blank=True)
    history = history()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="payer_credit_amount_positive"),
            models.CheckConstraint(condition=Q(resolved_amount__gte=0) & Q(resolved_amount__lte=F("amount")),
                                   name="payer_credit_resolved_within_amount"),
            models.CheckConstraint(condition=Q(state="open") | Q(resolved_amount=F("amount")),
                                   name="payer_credit_closed_is_settled"),
        ]

    def __str__(self) -> str:
        return f"Payer credit #{self.pk} {self.amount} due to {self.payer}"

    @property
    def outstanding(self):
        return self.amount - self.resolved_amount

    @transition(field=state, source=State.OPEN, target=State.REFUNDED)
    def close_refunded(self):
        self.resolved_at = timezone.now()

    @transition(field=state, source=State.OPEN, target=State.RECOUPED)
    def close_recouped(self):
        self.resolved_at = timezone.now()


class ManualCreditRequest(FSMModelMixin, models.Model):
    """A manual credit asked for by staff (DOMAIN rule 3, issue 9: separation of duties). Within the
    practice's limit (the patient's manual and imported credits over the approval window, this one
    included) it is approved at once and its credit created in the same transaction; above it, it
    waits for a manager other than the requester, and the credit exists only once approved: nothing
    (the nightly run, checkout, refunds) can use money that is not there yet."""

    class State(models.TextChoices):
        PENDING = "pending", "Waiting for a manager's approval"
        APPROVED = "approved", "Approved (credit created)"
        REJECTED = "rejected", "Rejected"

    practice = models.ForeignKey("ledger.Practice", on_delete=models.PROTECT, related_name="+", db_index=False)
    patient = models.ForeignKey("ledger.Patient", on_delete=models.PROTECT, related_name="manual_credit_requests")
    encounter = models.ForeignKey("ledger.Encounter", null=True, blank=True, on_delete=models.PROTECT,
                                  related_name="+", db_index=False, help_text="Lock the credit to this DoS.")
    amount = money_field()
    note = models.TextField(help_text="Why the credit is added; kept on the credit.")
    state = FSMField(choices=State.choices, default=State.PENDING, protected=True)
    needs_approval = models.BooleanField(default=False)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+",
                                     db_index=False)
    requested_at = models.DateTimeField(default=timezone.now)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="+", db_index=False)
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.TextField(blank=True)
    credit = models.OneToOneField(Credit, null=True, blank=True, on_delete=models.PROTECT,
                                  related_name="manual_request", help_text="The credit created at approval.")
    history = history(no_db_index=["practice", "patient", "encounter", "requested_by", "decided_by", "credit"])

    class Meta:
        verbose_name = "manual credit"
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0, amount__lte=AMOUNT_CEILING),
                                   name="manual_request_amount_range"),
            # four eyes: above the limit the approver is someone other than the requester
            models.CheckConstraint(
                condition=Q(needs_approval=False) | Q(decided_by__isnull=True) | ~Q(decided_by=F("requested_by")),
                name="manual_request_four_eyes"),
            models.CheckConstraint(condition=Q(state="approved", credit__isnull=False)
                                   | (~Q(state="approved") & Q(credit__isnull=True)),
                                   name="manual_request_approved_iff_credit"),
            models.CheckConstraint(condition=Q(state="pending", decided_at__isnull=True)
                                   | (~Q(state="pending") & Q(decided_at__isnull=False, decided_by__isnull=False)),
                                   name="manual_request_decided_has_who_and_when"),
        ]
        indexes = [
            models.Index(fields=["patient", "requested_at"], name="manual_request_window_idx"),  # window sums
            models.Index(fields=["practice", "requested_at"], condition=Q(state="pending"),
                         name="manual_request_pending_idx"),  # the managers' queue
        ]

    def __str__(self) -> str:
        return f"Manual credit #{self.pk} {self.amount} ({self.get_state_display()})"

    @transition(field=state, source=State.PENDING, target=State.APPROVED)
    def approve(self, *, by, note, credit):
        self.decided_by, self.decided_at, self.decision_note, self.credit = by, timezone.now(), note, credit

    approve.alters_data = True

    @transition(field=state, source=State.PENDING, target=State.REJECTED)
    def reject(self, *, by, note):
        self.decided_by, self.decided_at, self.decision_note = by, timezone.now(), note

    reject.alters_data = True


class CreditImport(FSMModelMixin, models.Model):
    """One CSV import of credits; the file's hash refuses a second submission of the same file.
    Its lines (`CreditImportRow`) are stored first; their credits are created at once when the
    import is within the practice's limit, or when a manager other than the importer approves it
    (issue 9): until then none of them exists."""

    class State(models.TextChoices):
        PENDING = "pending", "Waiting for a manager's approval"
        IMPORTED = "imported", "Imported"
        REJECTED = "rejected", "Rejected"

    practice = models.ForeignKey("ledger.Practice", on_delete=models.PROTECT, related_name="credit_imports")
    filename = models.CharField(max_length=255)
    sha256 = models.CharField(max_length=64)
    rows = models.PositiveIntegerField()
    total = money_field(max_digits=20)  # a sum of up to the row limit of amounts: wider than one amount
    state = FSMField(choices=State.choices, default=State.PENDING, protected=True)
    reason = models.TextField(blank=True, help_text="The importer's reason, kept in the credits' history.")
    needs_approval = models.BooleanField(default=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="+", db_index=False)
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.TextField(blank=True)
    history = history(no_db_index=["practice", "created_by", "decided_by"])

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["practice", "sha256"], name="credit_import_once"),
            models.CheckConstraint(
                condition=Q(needs_approval=False) | Q(decided_by__isnull=True) | ~Q(decided_by=F("created_by")),
                name="credit_import_four_eyes"),
        ]
        indexes = [models.Index(fields=["practice", "created_at"], condition=Q(state="pending"),
                                name="credit_import_pending_idx")]

    def __str__(self) -> str:
        return f"Import #{self.pk} {self.filename} ({self.get_state_display()})"

    @transition(field=state, source=State.PENDING, target=State.IMPORTED)
    def approve(self, *, by, note):
        self.decided_by, self.decided_at, self.decision_note = by, timezone.now(), note

    approve.alters_data = True

    @transition(field=state, source=State.PENDING, target=State.REJECTED)
    def reject(self, *, by, note):
        self.decided_by, self.decided_at, self.decision_note = by, timezone.now(), note

    reject.alters_data = True


class CreditImportRow(models.Model):
    """One line of a credit import, validated: kept from the upload on, and linked to its credit
    once that is created. Written and read set-based (credits/csv_import.py)."""

    credit_import = models.ForeignKey(CreditImport, on_delete=models.PROTECT, related_name="lines", db_index=False)
    line = models.PositiveIntegerField(help_text="Line number in the file (the header is line 1).")
    patient = models.ForeignKey("ledger.Patient", on_delete=models.PROTECT, related_name="+")
    encounter = models.ForeignKey("ledger.Encounter", null=True, blank=True, on_delete=models.PROTECT,
                                  related_name="+", db_index=False)
    amount = money_field()
    note = models.TextField()
    credit = models.OneToOneField(Credit, null=True, blank=True, on_delete=models.PROTECT, related_name="import_row")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["credit_import", "line"], name="credit_import_row_line_unique"),
            models.CheckConstraint(condition=Q(amount__gt=0, amount__lte=AMOUNT_CEILING),
                                   name="credit_import_row_amount_range"),
        ]

    def __str__(self) -> str:
        return f"line {self.line}: {self.amount}"


class NightlyRun(models.Model):
    """One application run for one practice (nightly, or by hand / preview)."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"

    practice = models.ForeignKey("ledger.Practice", on_delete=models.PROTECT, related_name="nightly_runs")
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    dry_run = models.BooleanField(default=False)
    triggered_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="+")
    patients_seen = models.PositiveIntegerField(default=0)
    application_count = models.PositiveIntegerField(default=0)
    applied_total = money_field(default=ZERO, max_digits=20)  # a sum over a whole practice
    released_credits = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]


# --- rule 14: per-patient totals ---------------------------------------------------------------------
# `PatientResponsibility` is one row per patient with money on the books: what the patient owes now
# (balances of dates of service no claim waits on), what is pending the payer (balances of those a
# claim still waits on) and the available and locked credit totals (DOMAIN rule 14). The
# back-office lists filter, count and sort on it, which stays fast on 100,000 patients and
# 1,000,000 credits where summing credits per patient for every row of a filtered count does not.
# It is exact by construction: statement-level triggers on `ledger_encounter`, `ledger_claim` and
# `credits_credit` (migrations credits/0004_backoffice.py, 0007_responsibility_due_now.py) add each
# statement's changes to it in the statement's own transaction, so it changes under the same patient
# row locks as the rows it sums, whoever writes them (services, the set-based nightly run, the 835
# posting). `credits.selectors.patient_responsibility_mismatches` recomputes it from the source rows.

class PatientResponsibility(models.Model):
    """Kept by database triggers; never written by Django code."""

    patient = models.OneToOneField("ledger.Patient", primary_key=True, on_delete=models.CASCADE,
                                   related_name="responsibility")
    practice = models.ForeignKey("ledger.Practice", on_delete=models.CASCADE, related_name="+", db_index=False)
    # sums of NUMERIC(14,2) amounts: six more digits, so no total of a patient's rows can overflow
    # (one credit of 999,999,999,999.99 once made every later write for its patient fail)
    due_now = money_field(default=ZERO, max_digits=20,
                          help_text="Balances of the patient's dates of service with no claim waiting on a payer.")
    pending_payer = money_field(default=ZERO, max_digits=20,
                                help_text="Balances of the patient's dates of service whose claim still waits on a "
                                          "payer (the estimated PR until it decides).")
    available = money_field(default=ZERO, max_digits=20, help_text="Credits available (on hand).")
    locked = money_field(default=ZERO, max_digits=20, help_text="Credits locked to a date of service (on hand).")

    class Meta:
        verbose_name = "patient responsibility"
        verbose_name_plural = "patient responsibility"
        indexes = [
            # the list: patients with a balance, counted per practice (index-only, with the credit filters)
            models.Index(fields=["practice"], include=["available", "locked"],
                         condition=Q(due_now__gt=0) | Q(pending_payer__gt=0), name="responsibility_owes_idx"),
            # sorting by an amount (largest first) reads these backwards and stops at one page
            models.Index(fields=["practice", "due_now"], name="responsibility_due_now_idx"),
            models.Index(fields=["practice", "pending_payer"], name="responsibility_pending_idx"),
            models.Index(fields=["practice", "available"], name="responsibility_available_idx"),
            models.Index(fields=["practice", "locked"], name="responsibility_locked_idx"),
        ]

    def __str__(self) -> str:
        return str(self.patient)
