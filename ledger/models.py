"""The books of a practice: tenants, staff roles, patients, payers, dates of service, claims,
patient payments and the double-entry journal.

Credits and everything done with them live in the `credits` app. Every write goes through a
service function (`ledger/services.py`, `credits/services.py`); models only hold state and
the constraints that make the database refuse a bad one.
"""

from datetime import time
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Exists, ExpressionWrapper, F, OuterRef, Q
from django.db.models.functions import Coalesce
from django.utils import timezone
from django_fsm import FSMField, FSMModelMixin
from simple_history.models import HistoricalRecords

from ledger.dates import DB_EARLIEST, DB_LATEST
from ledger.fsm import transition
from ledger.money import ZERO, money_field


def history(**kwargs) -> HistoricalRecords:
    # The default change-reason column is CharField(100); reasons staff write are longer.
    return HistoricalRecords(history_change_reason_field=models.TextField(null=True), **kwargs)


# The hard ceiling of any single money operation (a payment, a credit, a refund, a write-off, a
# claim result): a practice's own maximum (`Practice.max_operation_amount`) can be set up to it,
# never beyond (a CHECK). It keeps single amounts far below what the money columns hold, so the
# totals summed from them (NUMERIC(20,2)) cannot overflow.
AMOUNT_CEILING = Decimal("10000000.00")


class Practice(models.Model):
    name = models.CharField(max_length=200, unique=True)
    us_state = models.CharField("US state", max_length=2, help_text="Two-letter code, e.g. TX")
    time_zone = models.CharField(max_length=64, default="America/Chicago", help_text="IANA name; the nightly run uses it.")
    auto_apply = models.BooleanField(
        default=True, help_text="Apply patients' usable credits to their open balances every night."
    )
    nightly_run_at = models.TimeField(default=time(2, 0), help_text="Local time of the nightly run.")
    refund_approval_threshold = money_field(
        default="100.00", help_text="Refunds above this amount need a manager's approval."
    )
    card_refund_window_days = models.PositiveIntegerField(
        default=180, help_text="Card refunds are possible for this many days after the payment."
    )
    writeoff_max_amount = money_field(default="10.00", help_text="Billing staff may write off up to this.")
    writeoff_min_age_days = models.PositiveIntegerField(
        default=30, help_text="A balance must be this many days old before billing staff write it off."
    )
    # separation of duties (issue 9): what one person may do alone
    approval_window_days = models.PositiveIntegerField(
        default=30, help_text="A patient's refunds, and their manual and imported credits, over this many days are "
                              "added up against the approval thresholds, so splitting an amount does not escape them."
    )
    manual_credit_approval_limit = money_field(
        default="1000.00", help_text="Manual credits of a patient above this (added up over the approval window), and "
                                     "CSV imports whose total is above it, wait for a manager's approval."
    )
    max_operation_amount = money_field(
        default="100000.00", help_text="No single payment, credit, refund, write-off or claim result may exceed "
                                       f"this (at most {AMOUNT_CEILING:,})."
    )
    # the patient portal (issue 13; docs/portal.md)
    portal_otp_required = models.BooleanField(
        "portal sign-in code", default=False, db_default=False,
        help_text="Patients confirm each portal sign-in with a one-time code sent by e-mail.")
    portal_colour = models.CharField(
        "portal colour", max_length=7, default="#1d4f91", db_default="#1d4f91",
        help_text="The portal's main colour, as #RRGGBB (white text must stay readable on it).")
    created_at = models.DateTimeField(default=timezone.now)
    history = history()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(portal_colour__regex=r"^#[0-9a-fA-F]{6}$"),
                                   name="practice_portal_colour_hex"),
            models.CheckConstraint(condition=Q(refund_approval_threshold__gte=0), name="practice_threshold_nonneg"),
            models.CheckConstraint(condition=Q(writeoff_max_amount__gte=0), name="practice_writeoff_max_nonneg"),
            models.CheckConstraint(condition=Q(manual_credit_approval_limit__gte=0),
                                   name="practice_manual_credit_limit_nonneg"),
            models.CheckConstraint(condition=Q(approval_window_days__lte=3650), name="practice_approval_window_range"),
            models.CheckConstraint(condition=Q(max_operation_amount__gt=0, max_operation_amount__lte=AMOUNT_CEILING),
                                   name="practice_max_operation_amount_range"),
        ]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    """A staff user's role in one practice. A user may work for several practices."""

    class Role(models.TextChoices):
        BILLING = "billing", "Billing staff"
        MANAGER = "manager", "Manager"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    practice = models.ForeignKey(Practice, on_delete=models.PROTECT, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.BILLING)
    history = history()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "practice"], name="membership_unique")]

    def __str__(self) -> str:
        return f"{self.user} · {self.get_role_display()} · {self.practice}"


class Patient(models.Model):
    practice = models.ForeignKey(Practice, on_delete=models.PROTECT, related_name="patients")
    account_number = models.CharField(max_length=32)
    first_name = models.CharField(max_length=100)
    last_name = models.CharField(max_length=100)
    date_of_birth = models.DateField(null=True, blank=True)
    email = models.EmailField(blank=True)
    member_id = models.CharField(max_length=64, blank=True, help_text="Insurance member id (835 NM1*QC).")
    # the last known address: notices and due-diligence letters go there; its state decides the
    # unclaimed-property rules (DOMAIN rule 17: the owner's state)
    address_line1 = models.CharField(max_length=200, blank=True)
    address_line2 = models.CharField(max_length=200, blank=True)
    city = models.CharField(max_length=100, blank=True)
    us_state = models.CharField("US state", max_length=2, blank=True, help_text="Two-letter code, e.g. TX")
    postal_code = models.CharField(max_length=10, blank=True)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="patient",
        help_text="The patient's own portal login.",
    )
    exclude_from_auto_apply = models.BooleanField(
        default=False, help_text="Nightly run leaves this patient's credits alone (e.g. asked for a refund)."
    )
    created_at = models.DateTimeField(default=timezone.now)
    history = history()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["practice", "account_number"], name="patient_account_unique"),
            # the fixed outer range of ledger/dates.py (the services check the sane one: 1900-01-01..today)
            models.CheckConstraint(condition=Q(date_of_birth__isnull=True)
                                   | Q(date_of_birth__range=(DB_EARLIEST, DB_LATEST)), name="patient_dob_in_range"),
        ]
        indexes = [models.Index(fields=["practice", "last_name", "first_name"])]

    def __str__(self) -> str:
        return f"{self.last_name}, {self.first_name} ({self.account_number})"


MEDICARE_PARTS = [("A", "Part A"), ("B", "Part B")]  # the CMS-838 is one report per part


class Payer(models.Model):
    class Type(models.TextChoices):
        MEDICARE = "medicare", "Medicare"
        MEDICAID = "medicaid", "Medicaid"
        COMMERCIAL = "commercial", "Commercial"
        SELF_PAY = "self_pay", "Self-pay"

    practice = models.ForeignKey(Practice, on_delete=models.PROTECT, related_name="payers")
    name = models.CharField(max_length=200)
    payer_type = models.CharField(max_length=16, choices=Type.choices)
    payer_identifier = models.CharField(max_length=80, blank=True, help_text="Payer id in 835 files (TRN03/N1*PR).")
    medicare_part = models.CharField(
        max_length=1, blank=True, default="", db_default="", choices=MEDICARE_PARTS,
        help_text="Medicare payers: the part this contractor pays (the Medicare credit balance report keeps "
                  "parts A and B apart).")
    history = history()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["practice", "name"], name="payer_name_unique"),
            models.CheckConstraint(condition=Q(medicare_part="") | Q(payer_type="medicare", medicare_part__in=["A", "B"]),
                                   name="payer_medicare_part_only_medicare"),
        ]

    def __str__(self) -> str:
        return self.name


# --- what a date of service owes: the one definition ------------------------------------------------
# The PR balance of a DoS is `COALESCE(remittance_pr, estimated_pr) - applied_amount - written_off_amount`
# (rule 9: the remittance PR replaces the estimate); a DoS is *payable* (patient money may be applied,
# the balance is due now) while no claim on it is open, and *pending the payer* while one is. Here for
# the ORM (EncounterQuerySet, Encounter.balance for a loaded row); ledger/sql.py has the same two in
# SQL for the raw SQL of the nightly run, the audits and the benchmarks (a test holds them equal).

BALANCE_FIELD = models.DecimalField(max_digits=14, decimal_places=2)


def encounter_balance(prefix: str = "") -> ExpressionWrapper:
    """The PR balance as an ORM expression; `prefix` reaches the encounter through a relation
    (e.g. "encounters__" from a patient)."""
    return ExpressionWrapper(
        Coalesce(F(f"{prefix}remittance_pr"), F(f"{prefix}estimated_pr")) - F(f"{prefix}applied_amount")
        - F(f"{prefix}written_off_amount"), output_field=BALANCE_FIELD)


def encounter_open_claim(outer: str = "pk") -> Exists:
    """True while a claim on the encounter (`outer`: its id in the outer query) waits on a payer."""
    return Exists(Claim.objects.filter(encounter_id=OuterRef(outer), state__in=Claim.OPEN))


class EncounterQuerySet(models.QuerySet):
    def with_balance(self):
        """Annotate `bal` (the PR balance) and `has_open_claim` (the claim still waits on a payer)."""
        return self.annotate(bal=encounter_balance(), has_open_claim=encounter_open_claim())

    def payable(self):
        """DoS with no open claim: the PR is known, patient money may be applied."""
        return self.filter(~encounter_open_claim())

    def pending_payer(self):
        """DoS whose claim still waits on a payer (the PR is an estimate until it decides)."""
        return self.filter(encounter_open_claim())

    def due_now(self):
        """Payable DoS with a balance: what the patient owes now, oldest first, with `bal`."""
        return (self.with_balance().filter(bal__gt=0, has_open_claim=False)
                .order_by("date_of_service", "pk"))

    def owing(self):
        """DoS with a balance, payable or not, oldest first, with `bal`."""
        return self.with_balance().filter(bal__gt=0).order_by("date_of_service", "pk")


class Encounter(models.Model):
    """One visit (date of service) of one patient.

    Patient responsibility (PR) is the *estimated* PR until a remittance sets the *remittance*
    PR, which then replaces it (DOMAIN rule 9). `applied_amount` is the net patient money
    applied to this DoS, `written_off_amount` what was written off; both are caches of their
    detail rows, changed only under the patient's row lock, and checked by the audit.
    """

    practice = models.ForeignKey(Practice, on_delete=models.PROTECT, related_name="encounters")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="encounters")
    date_of_service = models.DateField()
    description = models.CharField(max_length=200, blank=True)
    charge = money_field(default=ZERO)
    estimated_pr = money_field("estimated PR", default=ZERO)
    remittance_pr = money_field("remittance PR", null=True, blank=True)
    applied_amount = money_field(default=ZERO)
    written_off_amount = money_field(default=ZERO)
    created_at = models.DateTimeField(default=timezone.now)
    history = history(no_db_index=["practice", "patient"])

    objects = EncounterQuerySet.as_manager()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(charge__gte=0), name="encounter_charge_nonneg"),
            models.CheckConstraint(condition=Q(estimated_pr__gte=0), name="encounter_estimated_pr_nonneg"),
            models.CheckConstraint(
                condition=Q(remittance_pr__isnull=True) | Q(remittance_pr__gte=0), name="encounter_remittance_pr_nonneg"
            ),
            models.CheckConstraint(condition=Q(applied_amount__gte=0), name="encounter_applied_nonneg"),
            models.CheckConstraint(condition=Q(written_off_amount__gte=0), name="encounter_written_off_nonneg"),
            # the fixed outer range of ledger/dates.py (a CHECK cannot use now(); the services check
            # the sane range, 1900-01-01..today + 2 years)
            models.CheckConstraint(condition=Q(date_of_service__range=(DB_EARLIEST, DB_LATEST)),
                                   name="encounter_dos_in_range"),
            # Nothing is applied beyond a balance: money in never exceeds what the patient owes.
            models.CheckConstraint(
                condition=Q(remittance_pr__isnull=False,
                            remittance_pr__gte=F("applied_amount") + F("written_off_amount"))
                | Q(remittance_pr__isnull=True, estimated_pr__gte=F("applied_amount") + F("written_off_amount")),
                name="encounter_not_overapplied",
            ),
        ]
        indexes = [models.Index(fields=["patient", "date_of_service"])]

    def __str__(self) -> str:
        return f"{self.patient.last_name} · DoS {self.date_of_service:%Y-%m-%d}"

    @property
    def pr(self):
        return self.remittance_pr if self.remittance_pr is not None else self.estimated_pr

    @property
    def balance(self):
        """The PR balance of this loaded row (`encounter_balance()` in the ORM, ENCOUNTER_BALANCE_SQL in SQL)."""
        return self.pr - self.applied_amount - self.written_off_amount


class Claim(FSMModelMixin, models.Model):
    class State(models.TextChoices):
        SUBMITTED = "submitted", "Submitted"
        PENDING = "pending", "Pending"
        RESUBMITTED = "resubmitted", "Resubmitted"
        FORWARDED = "forwarded", "Forwarded to another payer"
        REVERSED = "reversed", "Reversed, awaiting correction"
        PAID = "paid", "Paid (finalized)"
        DENIED = "denied", "Denied (finalized)"

    FINALIZED = (State.PAID, State.DENIED)
    OPEN = (State.SUBMITTED, State.PENDING, State.RESUBMITTED, State.FORWARDED, State.REVERSED)

    practice = models.ForeignKey(Practice, on_delete=models.PROTECT, related_name="claims")
    encounter = models.ForeignKey(Encounter, on_delete=models.PROTECT, related_name="claims")
    payer = models.ForeignKey(Payer, on_delete=models.PROTECT, related_name="claims")
    claim_number = models.CharField(max_length=64, help_text="The practice's claim number (835 CLP01).")
    payer_claim_number = models.CharField(max_length=64, blank=True, help_text="835 CLP07.")
    type_of_bill = models.CharField(max_length=4, blank=True, default="", db_default="",
                                    help_text="Institutional claims: the UB-04 type of bill (e.g. 0111); blank for "
                                              "professional claims.")
    state = FSMField(choices=State.choices, default=State.SUBMITTED, protected=True)
    billed_amount = money_field(default=ZERO)
    paid_amount = money_field(default=ZERO, help_text="Net paid by the payer on this claim.")
    adjustment_amount = money_field(default=ZERO, help_text="Net contractual/other adjustments.")
    patient_responsibility = money_field(null=True, blank=True, help_text="PR from the last remittance.")
    remittance_count = models.PositiveIntegerField(default=0)
    submitted_at = models.DateTimeField(default=timezone.now)
    finalized_at = models.DateTimeField(null=True, blank=True)
    history = history()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["practice", "payer", "claim_number"], name="claim_number_unique"),
            models.CheckConstraint(condition=Q(billed_amount__gte=0), name="claim_billed_nonneg"),
            models.CheckConstraint(
                condition=Q(patient_responsibility__isnull=True) | Q(patient_responsibility__gte=0),
                name="claim_pr_nonneg",
            ),
        ]

    def __str__(self) -> str:
        return f"Claim {self.claim_number} ({self.get_state_display()})"

    @property
    def is_finalized(self) -> bool:
        return self.state in self.FINALIZED

    @transition(field=state, source=[State.SUBMITTED, State.RESUBMITTED], target=State.PENDING)
    def mark_pending(self):
        pass

    @transition(field=state, source="*", target=State.PAID)
    def finalize_paid(self):
        self.finalized_at = timezone.now()

    @transition(field=state, source="*", target=State.DENIED)
    def finalize_denied(self):
        self.finalized_at = timezone.now()

    @transition(field=state, source="*", target=State.FORWARDED)
    def forward(self):
        self.finalized_at = None

    @transition(field=state, source=[State.PAID, State.DENIED, State.FORWARDED], target=State.REVERSED)
    def reverse(self):
        self.finalized_at = None

    @transition(field=state, source=[State.PAID, State.DENIED, State.FORWARDED, State.PENDING], target=State.RESUBMITTED)
    def resubmit(self):
        self.finalized_at = None


class Payment(models.Model):
    """Money a patient paid. Card reader and portal payments go through the card processor and
    keep its reference; they can be refunded back through it (DOMAIN rule 8)."""

    class Channel(models.TextChoices):
        CARD_READER = "card_reader", "Card reader"
        PORTAL = "portal", "Patient portal"
        CHECK = "check", "Check"
        CASH = "cash", "Cash"
        EXTERNAL = "external", "External system"

    SYSTEM_CHANNELS = (Channel.CARD_READER, Channel.PORTAL)

    practice = models.ForeignKey(Practice, on_delete=models.PROTECT, related_name="payments")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="payments")
    encounter = models.ForeignKey(
        Encounter, null=True, blank=True, on_delete=models.PROTECT, related_name="payments",
        help_text="The DoS the payment was made toward, if any.",
    )
    amount = money_field()
    channel = models.CharField(max_length=16, choices=Channel.choices)
    processor_reference = models.CharField(max_length=100, blank=True)
    check_number = models.CharField(max_length=40, blank=True)
    refunded_amount = money_field(default=ZERO)
    note = models.TextField(blank=True)
    received_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    history = history()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="payment_amount_positive"),
            models.CheckConstraint(condition=Q(amount__lte=AMOUNT_CEILING), name="payment_amount_ceiling"),
            models.CheckConstraint(
                condition=Q(refunded_amount__gte=0) & Q(refunded_amount__lte=F("amount")),
                name="payment_refund_within_amount",
            ),
            models.CheckConstraint(
                condition=~Q(channel__in=["card_reader", "portal"]) | ~Q(processor_reference=""),
                name="payment_system_has_reference",
            ),
            models.UniqueConstraint(
                fields=["practice", "processor_reference"], condition=~Q(processor_reference=""),
                name="payment_processor_reference_unique",
            ),
        ]
        indexes = [models.Index(fields=["patient", "received_at"])]

    def __str__(self) -> str:
        return f"Payment #{self.pk} {self.amount} {self.get_channel_display()}"

    @property
    def through_system(self) -> bool:
        return self.channel in self.SYSTEM_CHANNELS


class SandboxCharge(models.Model):
    """The sandbox card processor's own book of charges: it behaves like a real processor
    (approvals, declines, partial refunds up to the charge, a refund window)."""

    reference = models.CharField(max_length=64, unique=True)
    amount = money_field()
    refunded = money_field(default=ZERO)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(refunded__lte=F("amount")) & Q(refunded__gte=0),
                                   name="sandbox_refund_within_charge"),
        ]


class SandboxRefund(models.Model):
    charge = models.ForeignKey(SandboxCharge, on_delete=models.PROTECT, related_name="refunds")
    idempotency_key = models.CharField(max_length=80, unique=True)
    reference = models.CharField(max_length=64, unique=True)
    amount = money_field()
    created_at = models.DateTimeField(default=timezone.now)


class Account(models.TextChoices):
    """The chart of accounts. Amounts on journal lines are signed: debit positive, credit negative."""

    CASH = "cash", "Cash and card clearing (asset)"
    CHARGES_RECEIVABLE = "charges_receivable", "Charges receivable, not yet split (asset)"
    PATIENT_RECEIVABLE = "patient_receivable", "Patient receivable (asset)"
    REVENUE = "revenue", "Charges (revenue)"
    CONTRACTUAL = "contractual_adjustments", "Payer adjustments (contra-revenue)"
    CREDITS_AVAILABLE = "credits_available", "Patient credits, available (liability)"
    CREDITS_LOCKED = "credits_locked", "Patient credits, locked to a DoS (liability)"
    PAYER_CREDITS = "payer_credits", "Payer credits, due to payers (liability)"
    WRITE_OFFS = "write_offs", "Small-balance write-offs (expense)"
    CREDIT_ADJUSTMENTS = "credit_adjustments", "Manual credits added or removed by staff (clearing)"


CREDIT_ACCOUNTS = (Account.CREDITS_AVAILABLE, Account.CREDITS_LOCKED)


class JournalEntry(models.Model):
    """A balanced double-entry journal entry. Append-only: a trigger refuses UPDATE and DELETE
    and a statement-level AFTER INSERT trigger on the lines refuses an INSERT statement in which
    an entry's lines do not sum to zero (ledger/migrations/0005)."""

    class Kind(models.TextChoices):
        CHARGE = "charge", "Charges recorded"
        PR_CHANGE = "pr_change", "Patient responsibility set"
        PAYMENT = "payment", "Patient payment"
        PAYER_PAYMENT = "payer_payment", "Payer payment (remittance)"
        PAYER_ADJUSTMENT = "payer_adjustment", "Payer adjustment (remittance)"
        CREDIT_CREATED = "credit_created", "Credit created"
        APPLICATION = "application", "Credit applied"
        UNAPPLICATION = "unapplication", "Applied money returned to a credit"
        UNLOCK = "unlock", "Credit unlocked"
        MOVE = "move", "Credit moved"
        REFUND = "refund", "Refund issued"
        REMOVAL = "removal", "Credit removed"
        MANUAL_CREDIT = "manual_credit", "Manual credit added"
        WRITE_OFF = "write_off", "Write-off"
        WRITE_OFF_UNDO = "write_off_undo", "Write-off undone"
        PAYER_CREDIT = "payer_credit", "Payer credit opened"
        PAYER_CREDIT_RESOLVED = "payer_credit_resolved", "Payer credit resolved"

    practice = models.ForeignKey(Practice, on_delete=models.PROTECT, related_name="journal_entries")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    memo = models.TextField()
    patient = models.ForeignKey(Patient, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+",
                                   db_index=False)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        verbose_name_plural = "journal entries"

    def __str__(self) -> str:
        return f"#{self.pk} {self.get_kind_display()}"


class JournalLine(models.Model):
    # Indexes: entry (the balance trigger), (practice, account), (patient, account), (encounter, account),
    # credit, and partial indexes on payment and claim. Single-column indexes on practice/patient/encounter would only slow the inserts.
    entry = models.ForeignKey(JournalEntry, on_delete=models.PROTECT, related_name="lines")
    practice = models.ForeignKey(Practice, on_delete=models.PROTECT, related_name="+", db_index=False)
    account = models.CharField(max_length=32, choices=Account.choices)
    amount = money_field(help_text="Signed: debit positive, credit negative.")
    patient = models.ForeignKey(Patient, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                                db_index=False)
    encounter = models.ForeignKey(Encounter, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                                  db_index=False)
    credit = models.ForeignKey("credits.Credit", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    payment = models.ForeignKey(Payment, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                                db_index=False)
    claim = models.ForeignKey(Claim, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                              db_index=False)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=~Q(amount=0), name="journal_line_nonzero"),
            # A credit-liability line always names its patient and its credit.
            models.CheckConstraint(
                condition=~Q(account__in=["credits_available", "credits_locked"])
                | (Q(patient__isnull=False) & Q(credit__isnull=False)),
                name="journal_credit_line_has_credit",
            ),
            models.CheckConstraint(
                condition=~Q(account="patient_receivable") | Q(encounter__isnull=False),
                name="journal_receivable_line_has_encounter",
            ),
        ]
        indexes = [
            models.Index(fields=["practice", "account"]),
            models.Index(fields=["patient", "account"]),
            models.Index(fields=["encounter", "account"]),
            models.Index(fields=["payment"], condition=Q(payment__isnull=False), name="journal_line_payment_idx"),
            models.Index(fields=["claim"], condition=Q(claim__isnull=False), name="journal_line_claim_idx"),
        ]
