"""What settle keeps of the payers' remittance files (X12 835): the file itself, each payment
(transaction set), each claim and each provider-level adjustment (PLB), with what became of it;
the journal entries each posting wrote (`RemittanceBooking`, the database's guarantee that a claim
or adjustment is booked once) and what staff did by hand in the unmatched queue
(`RemittanceClaimAction`). Imported by ledger/models.py."""

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
    content = models.BinaryField(help_text="The file as received, byte for byte; of a refused file only its first "
                                           "64 KiB (remittances.posting.REFUSED_KEEP_BYTES), of a duplicate nothing "
                                           "(see duplicate_of). `size` is always the size received.")
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
        db_table = "ledger_remittancefile"  # created by the ledger app; the table did not move
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
        db_table = "ledger_remittancetransaction"  # created by the ledger app; the table did not move
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
        DISMISSED = "dismissed", "Dismissed by staff: not ours (nothing posted)"

    WAITING = (State.UNMATCHED, State.HELD_REVERSAL, State.FAILED)
    # once in one of these a remittance claim never changes again (a database trigger refuses it, 0007)
    FINAL = (State.POSTED, State.PAYER_CREDIT, State.INFORMATIONAL, State.DISMISSED)

    # file and practice are indexed by the (file, state, segment) and (practice, state) indexes below: no index of
    # their own (every index is written for each of a file's claims, and again when posting moves its state)
    file = models.ForeignKey(RemittanceFile, on_delete=models.PROTECT, related_name="claims", db_index=False)
    transaction = models.ForeignKey(RemittanceTransaction, on_delete=models.PROTECT, related_name="claims")
    practice = models.ForeignKey("ledger.Practice", on_delete=models.PROTECT, related_name="+", db_index=False)
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
                                  related_name="+", db_index=False)

    class Meta:
        db_table = "ledger_remittanceclaim"  # created by the ledger app; the table did not move
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

    class Meta:
        db_table = "ledger_remittanceadjustment"  # created by the ledger app; the table did not move


class RemittanceBooking(models.Model):
    """One row per journal entry an 835 posting writes, naming the remittance claim or PLB
    adjustment it books, in the same transaction as the entry. At most one entry of each kind per
    remittance claim and per adjustment (partial unique indexes): even code that lost track of a
    claim's state cannot book it a second time, the database refuses the second entry."""

    entry = models.OneToOneField("ledger.JournalEntry", primary_key=True, on_delete=models.PROTECT,
                                 related_name="remittance_booking")
    kind = models.CharField(max_length=32, help_text="The entry's kind (payer payment, payer credit, ...).")
    file = models.ForeignKey(RemittanceFile, on_delete=models.PROTECT, related_name="bookings")
    # no index of their own: the unique indexes below start with them
    remittance_claim = models.ForeignKey(RemittanceClaim, null=True, blank=True, on_delete=models.PROTECT,
                                         related_name="bookings", db_index=False)
    adjustment = models.ForeignKey(RemittanceAdjustment, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="bookings", db_index=False)

    class Meta:
        db_table = "ledger_remittancebooking"  # created by the ledger app; the table did not move
        constraints = [
            models.CheckConstraint(condition=Q(remittance_claim__isnull=False, adjustment__isnull=True)
                                   | Q(remittance_claim__isnull=True, adjustment__isnull=False),
                                   name="remittance_booking_one_source"),
            models.UniqueConstraint(fields=["remittance_claim", "kind"], condition=Q(remittance_claim__isnull=False),
                                    name="remittance_booking_once_per_claim"),
            models.UniqueConstraint(fields=["adjustment", "kind"], condition=Q(adjustment__isnull=False),
                                    name="remittance_booking_once_per_adjustment"),
        ]


class RemittanceClaimAction(models.Model):
    """What staff did by hand to a waiting remittance claim (append-only): matched it to a claim
    (with the mismatches they confirmed) or dismissed it. Who, when, why."""

    class Action(models.TextChoices):
        MATCHED = "matched", "Matched by hand and posted"
        DISMISSED = "dismissed", "Dismissed (not ours)"

    remittance_claim = models.ForeignKey(RemittanceClaim, on_delete=models.PROTECT, related_name="actions")
    practice = models.ForeignKey("ledger.Practice", on_delete=models.PROTECT, related_name="+")
    action = models.CharField(max_length=16, choices=Action.choices)
    claim = models.ForeignKey("ledger.Claim", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    confirmed_mismatches = models.JSONField(default=list, blank=True,
                                            help_text="Payer, patient or DoS differences the user confirmed.")
    reason = models.TextField()
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.get_action_display()} by {self.actor} ({self.at:%Y-%m-%d %H:%M})"

    class Meta:
        db_table = "ledger_remittanceclaimaction"  # created by the ledger app; the table did not move


