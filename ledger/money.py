"""Money helpers: every amount in settle is a Decimal with two places, never a float.

Amounts from outside (API, admin forms, CSV, a Python caller) go through `to_money` or
`positive_money`: one grammar (ledger/amounts.py, "-?[0-9]+(.[0-9]{1,2})?", ASCII digits only)
and the money columns' range (NUMERIC(14, 2): at most 999,999,999,999.99 either way), checked
before anything reaches the database. A refusal is an `InvalidInput` naming the field."""

from decimal import Decimal

from django.db import models

from ledger.amounts import CENT, MAX_AMOUNT, ZERO, AmountError, check_amount, in_range  # noqa: F401
from ledger.errors import InvalidInput

__all__ = ["CENT", "MAX_AMOUNT", "ZERO", "money_field", "to_money", "positive_money", "nonnegative_money",
           "ensure_in_range"]


def money_field(verbose_name=None, **kwargs) -> models.DecimalField:
    kwargs.setdefault("max_digits", 14)  # ledger.amounts.MONEY_DIGITS / MAX_AMOUNT follow these two
    kwargs.setdefault("decimal_places", 2)
    return models.DecimalField(verbose_name, **kwargs)


def _invalid(field: str, message: str):
    return InvalidInput(f"{field}: {message}", field=field)


def to_money(value, *, field: str = "amount", negative: bool = True) -> Decimal:
    """An amount from a caller: a string of the strict grammar, a Decimal or an int (not a float,
    not a bool), with at most two decimals, within range. Negative amounts are allowed unless
    `negative=False` (a take-back is negative); the caller checks its own sign rules."""
    try:
        return check_amount(value, negative=negative)
    except AmountError as exc:
        raise _invalid(field, exc.reason) from None


def nonnegative_money(value, *, field: str = "amount") -> Decimal:
    """An amount of zero or more (no minus sign accepted)."""
    return to_money(value, field=field, negative=False)


def positive_money(value, *, field: str = "amount") -> Decimal:
    """An amount greater than zero (no minus sign accepted)."""
    amount = to_money(value, field=field, negative=False)
    if amount <= 0:
        raise _invalid(field, f"must be greater than zero (got {amount})")
    return amount


def ensure_in_range(value: Decimal, *, field: str = "amount", what: str = "the total") -> Decimal:
    """A computed amount (a sum of valid amounts) that is about to be stored: refused with a clear
    error rather than the database's "numeric field overflow"."""
    if not in_range(value):
        raise _invalid(field, f"{what} would be {value}, beyond the largest amount settle stores "
                              f"({MAX_AMOUNT} either way)")
    return value
