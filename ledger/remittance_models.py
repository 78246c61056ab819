"""What settle keeps of the payers' remittance files (X12 835): the file itself, each payment
(transaction set), each claim and each provider-level adjustment (PLB), with what became of it.
Imported by ledger/models.py."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from ledger.money import ZERO, money_field


class RemittanceFile(models.Model):
    class Status(models.TextChoices):
        RECEIVED = "received", "Received, waiting to be posted"
        POSTED = "posted", "Posted"
        DUPLICATE = "duplicate", "Duplicate (nothing posted)"
        REFUSED = "refused", "Refused (unreadable)"

    practice = models.ForeignKey("ledger.Practice", on_delete=models.PROTECT, related_name="remittance_files")
    filename = models.CharField(max_length=255)
    sha256 = models.CharField(max_length=64)
    size = models.PositiveBigIntegerField()
    content = models.BinaryField(help_text="The file as received, byte for byte.")
    status = models.CharField(max_length=16, choices=Status.choices)
    duplicate_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    transaction_count = models.PositiveIntegerField(default=0)
    claim_count = models.PositiveIntegerField(default=0, help_text="CLP segments read in the 835 sets.")
    paid_total = money_field(default=ZERO, help_text="Sum of BPR02 (signed by BPR03).")
    plb_total = money_field(default=ZERO)
    skipped_transactions = models.PositiveIntegerField(default=0, help_text="Other transaction types (837, 278...).")
    duplicate_transactions = models.PositiveIntegerField(default=0)
    warnings = models.JSONField(default=list, blank=True)
    errors = models.JSONField(default=list, blank=True)
    received_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    received_at = models.DateTimeField(default=timezone.now)
    posted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # the same bytes are accepted once per practice; later copies are recorded as duplicates
            models.UniqueConstraint(fields=["practice", "sha256"], condition=Q(status__in=["received", "posted"]),
                                    name="remittance_file_once"),
        ]
        indexes = [models.Index(fields=["practice", "status"])]

    def __str__(self) -> str:
        return f"{self.filename} ({self.get_status_display()})"


class RemittanceTransaction(models.Model):
    """One ST*835 set: one payment (check or EFT) from one payer."""

    file = models.ForeignKey(RemittanceFile, on_delete=models.PROTECT, related_name="transactions")
    practice = models.ForeignKey("ledger.Practice", on_delete=models.PROTECT, related_name="+")
    sender_id = models.CharField(max_length=40, blank=True, help_text="ISA06")
    interchange_control = models.CharField(max_length=20, blank=True, help_text="ISA13")
    control_number = models.CharField(max_length=20, blank=True, help_text="ST02")
    trace_number = models.CharField(max_length=80, blank=True, help_text="TRN02: check or EFT number")
    payer_name = models.CharField(max_length=200, blank=True)
    payer_identifier = models.CharField(max_length=80, blank=True)
    payer = models.ForeignKey("ledger.Payer", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    payment_method = models.CharField(max_length=8, blank=True)
    payment_date = models.DateField(null=True, blank=True)
    total_paid = money_field(default=ZERO)
    plb_total = money_field(default=ZERO)
    claim_count = models.PositiveIntegerField(default=0)
    segment = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["practice", "sender_id", "interchange_control", "trace_number",
                                            "control_number"], name="remittance_transaction_once"),
        ]


class RemittanceClaim(models.Model):
    class State(models.TextChoices):
        PENDING = "pending", "Waiting to be posted"
        POSTED = "posted", "Posted"
        UNMATCHED = "unmatched", "Unmatched: waiting for staff"
        HELD_REVERSAL = "held_reversal", "Reversal of an unknown payment: held for staff"
        PAYER_CREDIT = "payer_credit", "Payer overpayment: payer credit opened"
        FAILED = "failed", "Refused by a rule: waiting for staff"
        INFORMATIONAL = "informational", "Informational (nothing to post)"

    WAITING = (State.UNMATCHED, State.HELD_REVERSAL, State.FAILED)

    file = models.ForeignKey(RemittanceFile, on_delete=models.PROTECT, related_name="claims")
    transaction = models.ForeignKey(RemittanceTransaction, on_delete=models.PROTECT, related_name="claims")
    practice = models.ForeignKey("ledger.Practice", on_delete=models.PROTECT, related_name="+")
    claim_number = models.CharField(max_length=64, help_text="CLP01")
    status_code = models.CharField(max_length=4, help_text="CLP02")
    charge = money_field()
    paid = money_field()
    patient_responsibility = money_field(help_text="CLP05")
    pr_adjustments = money_field(default=ZERO, help_text="Sum of CAS PR amounts")
    other_adjustments = money_field(default=ZERO, help_text="Sum of CAS CO/OA/PI/CR amounts")
    payer_claim_number = models.CharField(max_length=64, blank=True)
    patient_name = models.CharField(max_length=200, blank=True)
    member_id = models.CharField(max_length=80, blank=True)
    service_date = models.DateField(null=True, blank=True)
    adjustments = models.JSONField(default=list, blank=True)
    segment = models.PositiveIntegerField()
    position = models.PositiveBigIntegerField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    note = models.TextField(blank=True)
    claim = models.ForeignKey("ledger.Claim", null=True, blank=True, on_delete=models.PROTECT,
                              related_name="remittance_claims")
    posted_at = models.DateTimeField(null=True, blank=True)
    posted_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                  related_name="+")

    class Meta:
        indexes = [models.Index(fields=["practice", "state"]), models.Index(fields=["file", "state", "segment"])]

    def __str__(self) -> str:
        return f"CLP {self.claim_number} ({self.get_state_display()})"


class RemittanceAdjustment(models.Model):
    """One PLB adjustment (provider level, not tied to one claim)."""

    class State(models.TextChoices):
        PENDING = "pending", "Waiting to be posted"
        POSTED = "posted", "Posted"

    transaction = models.ForeignKey(RemittanceTransaction, on_delete=models.PROTECT, related_name="adjustments")
    practice = models.ForeignKey("ledger.Practice", on_delete=models.PROTECT, related_name="+")
    code = models.CharField(max_length=8)
    reference = models.CharField(max_length=80, blank=True)
    amount = money_field()
    segment = models.PositiveIntegerField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    payer_credit = models.ForeignKey("credits.PayerCredit", null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="remittance_adjustments")
    note = models.TextField(blank=True)
