"""Models of the admin back-office pages (issue 5).

`PatientResponsibility` is one row per patient with money on the books: the patient's PR balance
and available and locked credit totals (DOMAIN rule 14). The patient-responsibility list filters,
counts and sorts on it, which stays fast on 100,000 patients and 1,000,000 credits where summing
credits per patient for every row of a filtered count does not. It is exact by construction:
statement-level triggers on `ledger_encounter` and `credits_credit` (migration
credits/0004_backoffice.py) add each statement's changes to it in the statement's own
transaction, so it changes under the same patient row locks as the rows it sums, whoever writes
them (services, the set-based nightly run, the 835 posting). `credits.selectors.
patient_responsibility_mismatches` recomputes it from the source rows (the audit, and the tests).

The others are proxies (no table): second admin lists over existing tables."""

from django.db import models
from django.db.models import Q

from credits.models import Credit, Refund
from ledger.money import ZERO, money_field


class PatientResponsibility(models.Model):
    """Kept by database triggers; never written by Django code."""

    patient = models.OneToOneField("ledger.Patient", primary_key=True, on_delete=models.CASCADE,
                                   related_name="responsibility")
    practice = models.ForeignKey("ledger.Practice", on_delete=models.CASCADE, related_name="+", db_index=False)
    # sums of NUMERIC(14,2) amounts: six more digits, so no total of a patient's rows can overflow
    # (one credit of 999,999,999,999.99 once made every later write for its patient fail)
    balance_owed = money_field(default=ZERO, max_digits=20,
                               help_text="Sum of the PR balances of the patient's dates of service.")
    available = money_field(default=ZERO, max_digits=20, help_text="Credits available (on hand).")
    locked = money_field(default=ZERO, max_digits=20, help_text="Credits locked to a date of service (on hand).")

    class Meta:
        verbose_name = "patient responsibility"
        verbose_name_plural = "patient responsibility"
        indexes = [
            # the list: patients who owe, counted per practice (index-only, with the credit filters)
            models.Index(fields=["practice"], include=["available", "locked"], condition=Q(balance_owed__gt=0),
                         name="responsibility_owes_idx"),
            # sorting by an amount (largest first) reads these backwards and stops at one page
            models.Index(fields=["practice", "balance_owed"], name="responsibility_owed_idx"),
            models.Index(fields=["practice", "available"], name="responsibility_available_idx"),
            models.Index(fields=["practice", "locked"], name="responsibility_locked_idx"),
        ]

    def __str__(self) -> str:
        return str(self.patient)


class LockedCredit(Credit):
    """Credits locked to a date of service, waiting on its claim (DOMAIN rules 4 and 5)."""

    class Meta:
        proxy = True
        verbose_name = "locked credit"
        verbose_name_plural = "locked credits"


class RefundApproval(Refund):
    """Refunds above the practice's threshold waiting for a manager (DOMAIN rule 8)."""

    class Meta:
        proxy = True
        verbose_name = "refund awaiting approval"
        verbose_name_plural = "refunds awaiting approval"
