"""Money helpers: every amount in settle is a Decimal with two places, never a float."""

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django.db import models

ZERO = Decimal("0.00")
CENT = Decimal("0.01")


def money_field(verbose_name=None, **kwargs) -> models.DecimalField:
    kwargs.setdefault("max_digits", 14)
    kwargs.setdefault("decimal_places", 2)
    return models.DecimalField(verbose_name, **kwargs)


def to_money(value, *, field: str = "amount") -> Decimal:
    """Parse a user-supplied amount exactly. Floats are refused: they are not exact."""
    from ledger.errors import InvalidInput

    if isinstance(value, float):
        raise InvalidInput(f"{field}: floats are not accepted for money; pass a string or Decimal", field=field)
    try:
        amount = Decimal(str(value).strip()) if not isinstance(value, Decimal) else value
    except (InvalidOperation, ValueError):
        raise InvalidInput(f"{field}: '{value}' is not an amount", field=field) from None
    if not amount.is_finite():
        raise InvalidInput(f"{field}: '{value}' is not an amount", field=field)
    if amount != amount.quantize(CENT):
        raise InvalidInput(f"{field}: '{value}' has fractions of a cent", field=field)
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def positive_money(value, *, field: str = "amount") -> Decimal:
    from ledger.errors import InvalidInput

    amount = to_money(value, field=field)
    if amount <= 0:
        raise InvalidInput(f"{field}: must be greater than zero (got {amount})", field=field)
    return amount
