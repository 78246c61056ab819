"""Card processors. settle talks to processors through this one small interface; card numbers
never reach settle, only the processor's references. The sandbox processor keeps its own book
in two tables and behaves like a real one: approvals, declines, partial refunds up to the
original amount, and a refund window after which refunds are refused."""

import secrets
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from ledger.models import SandboxCharge, SandboxRefund


class ProcessorError(Exception):
    def __init__(self, message: str, *, code: str = "processor_error"):
        super().__init__(message)
        self.message, self.code = message, code


@dataclass(frozen=True)
class ChargeResult:
    reference: str


@dataclass(frozen=True)
class RefundResult:
    reference: str


class CardProcessor:
    """A card processor adapter. `card_choices` is what a payment form offers in place of card
    entry: settle never sees a card number. A real adapter (Stripe, for instance) puts its hosted
    card field there instead (the processor's own iframe or page turns the number into a token,
    which the form posts as `card_token`); settle stores only the processor's charge reference
    (Payment.processor_reference)."""

    def card_choices(self) -> list[tuple[str, str]]:
        """[(token, label in plain words)] a form may offer; empty for a processor whose card
        entry is its own hosted field."""
        return []

    def charge(self, *, amount: Decimal, token: str, description: str = "") -> ChargeResult:
        raise NotImplementedError

    def refund(self, *, charge_reference: str, amount: Decimal, idempotency_key: str,
               window_days: int) -> RefundResult:
        raise NotImplementedError


class SandboxProcessor(CardProcessor):
    """Tokens: `tok_visa` (or any `tok_...`) approves; `tok_decline` declines;
    `tok_insufficient` declines for insufficient funds."""

    CARD_CHOICES = [
        ("tok_visa", "Test Visa ending 4242 — approves"),
        ("tok_decline", "Test card — declined"),
        ("tok_insufficient", "Test card — insufficient funds"),
    ]

    def card_choices(self):
        return list(self.CARD_CHOICES)

    def charge(self, *, amount, token, description=""):
        if not token or not token.startswith("tok_"):
            raise ProcessorError("the card token is missing or malformed", code="invalid_token")
        if token == "tok_decline":
            raise ProcessorError("the card was declined", code="card_declined")
        if token == "tok_insufficient":
            raise ProcessorError("the card was declined: insufficient funds", code="insufficient_funds")
        ref = "sbx_ch_" + secrets.token_hex(8)
        SandboxCharge.objects.create(reference=ref, amount=amount)
        return ChargeResult(reference=ref)

    def refund(self, *, charge_reference, amount, idempotency_key, window_days):
        with transaction.atomic():
            existing = SandboxRefund.objects.filter(idempotency_key=idempotency_key).first()
            if existing:
                return RefundResult(reference=existing.reference)
            # not ledger.locks.lock(): the sandbox stands in for a remote processor, whose books are its own. This
            # runs outside any service's transaction (a refund is paid out before its booking) and locks nothing
            # else, so it is outside the money lock order (see ledger/locks.py, rows outside ORDER)
            charge = SandboxCharge.objects.select_for_update().filter(reference=charge_reference).first()
            if charge is None:
                raise ProcessorError(f"no charge {charge_reference} at the processor", code="no_such_charge")
            if timezone.now() > charge.created_at + timedelta(days=window_days):
                raise ProcessorError(
                    f"charge {charge_reference} is past the {window_days}-day refund window", code="window_closed"
                )
            if charge.refunded + amount > charge.amount:
                raise ProcessorError(
                    f"refund of {amount} exceeds what is left of charge {charge_reference} "
                    f"({charge.amount - charge.refunded})", code="amount_too_large",
                )
            charge.refunded += amount
            charge.save(update_fields=["refunded"])
            ref = "sbx_re_" + secrets.token_hex(8)
            SandboxRefund.objects.create(charge=charge, idempotency_key=idempotency_key, reference=ref, amount=amount)
            return RefundResult(reference=ref)


def get_processor() -> CardProcessor:
    path = getattr(settings, "SETTLE_CARD_PROCESSOR", "ledger.processors.SandboxProcessor")
    return import_string(path)()
