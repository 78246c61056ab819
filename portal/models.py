"""What the patient portal keeps of its own (issue 13; docs/portal.md): the log of portal access
(append-only: who was invited, signed in, locked out, paid as a guest), the paper statements with
their guest-pay codes, and the portal's form submissions (so a double-clicked Pay button charges
once). The money itself is the books' (ledger, credits): the portal calls their services."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from ledger.money import money_field


class PortalEvent(models.Model):
    """One thing that happened to a patient's portal access. Append-only (a trigger refuses UPDATE
    and DELETE): the patient page shows it beside the money history."""

    class Kind(models.TextChoices):
        INVITED = "invited", "Invitation sent"
        ACTIVATED = "activated", "Password set, e-mail verified"
        SIGNED_IN = "signed_in", "Signed in"
        SIGNED_OUT = "signed_out", "Signed out"
        CODE_SENT = "code_sent", "Sign-in code sent"
        CODE_FAILED = "code_failed", "Wrong sign-in code"
        RESET_SENT = "reset_sent", "Password reset link sent"
        PASSWORD_RESET = "password_reset", "Password reset"
        DISABLED = "disabled", "Portal access disabled"
        STATEMENT_ISSUED = "statement_issued", "Statement issued"
        GUEST_OPENED = "guest_opened", "Guest pay: statement opened"
        GUEST_FAILED = "guest_failed", "Guest pay: wrong date of birth"
        GUEST_LOCKED = "guest_locked", "Guest pay locked"
        GUEST_PAID = "guest_paid", "Guest payment"

    practice = models.ForeignKey("ledger.Practice", on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey("ledger.Patient", on_delete=models.PROTECT, related_name="portal_events")
    kind = models.CharField(max_length=24, choices=Kind.choices)
    detail = models.TextField(blank=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                              related_name="+", help_text="Who did it: staff, the patient's login, or empty for a "
                                                          "guest or a visitor not signed in.")
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["patient", "at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} · {self.at:%m/%d/%Y %H:%M}"


class Statement(models.Model):
    """A statement of account issued to a patient (on paper or as a PDF). Its code, printed on
    it, lets a guest pay it with the patient's date of birth; repeated wrong dates of birth lock
    guest pay for that statement for a while (DOMAIN rule 23, example P). The amounts are what it
    showed on the day; a guest pays against what is owed when they pay."""

    practice = models.ForeignKey("ledger.Practice", on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey("ledger.Patient", on_delete=models.PROTECT, related_name="statements")
    code = models.CharField(max_length=8, unique=True, help_text="Printed as XXXX-XXXX; letters and digits that "
                                                                 "cannot be misread (no 0/O, 1/I/L).")
    issued_at = models.DateTimeField(default=timezone.now)
    issued_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    due_now = money_field(help_text="What the patient owed when the statement was issued.")
    pending_payer = money_field(help_text="What waited on the payers then (an estimate).")
    credits_on_hand = money_field(help_text="The patient's credits on hand then.")
    guest_failures = models.PositiveIntegerField(default=0, help_text="Wrong dates of birth in a row.")
    guest_locked_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(code__regex=r"^[A-HJKMNP-Z2-9]{8}$"), name="statement_code_format"),
            models.CheckConstraint(condition=Q(due_now__gte=0) & Q(pending_payer__gte=0) & Q(credits_on_hand__gte=0),
                                   name="statement_amounts_nonneg"),
        ]
        indexes = [models.Index(fields=["patient", "issued_at"])]

    def __str__(self) -> str:
        return f"Statement {self.display_code} · {self.issued_at:%m/%d/%Y}"

    @property
    def display_code(self) -> str:
        return f"{self.code[:4]}-{self.code[4:]}"


class PortalSubmission(models.Model):
    """A money form sent from the portal, keyed by the one-time key the page put in the form: the
    first submission runs the service, a second one with the same key (a double click, a reload)
    waits for it and shows its result instead of charging again."""

    class State(models.TextChoices):
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    key = models.CharField(max_length=64, unique=True)
    patient = models.ForeignKey("ledger.Patient", on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=24)
    state = models.CharField(max_length=8, choices=State.choices, default=State.RUNNING)
    result_url = models.CharField(max_length=300, blank=True)
    payment = models.ForeignKey("ledger.Payment", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                                help_text="The card payment the submission made, if any.")
    detail = models.JSONField(default=dict, blank=True, help_text="What it did, for its receipt: credits applied "
                                                                  "(credit, DoS, amount) and the amount charged.")
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.kind} {self.key[:8]} ({self.state})"
