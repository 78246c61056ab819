"""The one grammar for money that comes from outside: API, admin forms, CSV files and X12 835
amounts. Pure Python (no Django), so the X12 reader (remittances/x12) uses it as it is.

Staff, API and CSV money (`parse_amount`):  ``-?[0-9]+(\\.[0-9]{1,2})?``
    ASCII digits, at most two decimals, digits on both sides of the decimal point, a minus
    only where a negative is allowed. No exponent ("1E2"), "+", spaces or padding, "_" or ","
    separators, other scripts' digits ("５０", "٥٠"), "5." or ".5".

X12 money (`parse_x12_amount`, the 835's "R" type for amounts):  ``-?[0-9]*\\.?[0-9]+``
    The X12 standard suppresses leading zeros, so ".5" and "-.5" are legal there; the decimal
    point, when written, is followed by at most two digits (cents).

X12 quantities (`parse_x12_number`): the same "R" grammar, any number of decimals.

Every amount is also checked against the money columns' range, NUMERIC(14, 2)
(ledger.money.money_field): ``|x| <= 999,999,999,999.99``. `check_amount` applies the same
checks to a Decimal or int a Python caller passes (never a float or a bool).

Failures raise `AmountError` (a ValueError) whose `reason` says what is wrong, in words for
people; callers add where (a field, a CSV line, a segment and byte position).
"""

from __future__ import annotations

import re
from decimal import Decimal

MONEY_DIGITS = 14  # the money columns: NUMERIC(14, 2)
MONEY_PLACES = 2
MAX_AMOUNT = Decimal("999999999999.99")
CENT = Decimal("0.01")
ZERO = Decimal("0.00")

_INTEGER_DIGITS = MONEY_DIGITS - MONEY_PLACES  # 12
# A longer text is refused before any other work; a valid amount has at most
# "-" + 12 digits + "." + 2 digits, but leading zeros are allowed ("0050.00").
_MAX_TEXT = 64

_MONEY_RE = re.compile(r"(-?)([0-9]+)(?:\.([0-9]{1,2}))?")
_X12_NUMBER_RE = re.compile(r"-?[0-9]*\.?[0-9]+")
# the valid X12 money amounts in one expression (the reader's hot path): leading zeros, then at most
# 12 digits, then at most 2 decimals
X12_MONEY_RE = re.compile(r"-?0*(?:[0-9]{1,12}|[0-9]{0,12}\.[0-9]{1,2})")
_RANGE = "999999999999.99"


class AmountError(ValueError):
    """Not an amount; `reason` says why. `kind`: "syntax" (not of the grammar), "places" (fractions of a
    cent), "range" (beyond the money columns), "sign" (negative where it may not be), "type"."""

    def __init__(self, reason: str, kind: str = "syntax"):
        super().__init__(reason)
        self.reason = reason
        self.kind = kind


def shown(value, limit: int = 30) -> str:
    """A value for an error message: quoted, shortened, control characters escaped."""
    text = value if isinstance(value, str) else str(value)
    short = text[:limit]
    out = repr(short) if short.isprintable() else ascii(short)
    return out[:-1] + "…" + out[-1] if len(text) > limit else out


def _why(text: str, *, negative: bool) -> str:
    """Why `text` does not match the staff grammar: the first fault found, in words."""
    if text == "":
        return "an amount is required"
    if len(text) > _MAX_TEXT:
        return f"{shown(text)} is too long for an amount"
    if text != text.strip() or " " in text or "\u00a0" in text:
        return f"{shown(text)} has spaces or line breaks; write only the digits, e.g. 50.00"
    if not text.isascii():
        if any(ch.isdigit() or ch.isnumeric() for ch in text):
            return f"{shown(text)} has digits that are not ASCII 0-9"
        return f"{shown(text)} has characters that are not part of an amount"
    if "e" in text.lower() and any(ch.isdigit() for ch in text):
        return f"{shown(text)} is in exponent notation; write the digits, e.g. 100.00"
    if "_" in text or "," in text or "'" in text:
        return f"{shown(text)} has a thousands separator; write only the digits, e.g. 1000.00"
    if text.startswith("+"):
        return f"{shown(text)} has a '+' sign; write the amount without it"
    if text.startswith("-") and not negative:
        return f"{shown(text)} has a minus sign; the amount must not be negative"
    body = text[1:] if text.startswith("-") else text
    if body.count(".") == 1:
        whole, frac = body.split(".")
        if whole.isdigit() and frac.isdigit() and len(frac) > MONEY_PLACES:
            return f"{shown(text)} has fractions of a cent (at most two decimals)"
        if (whole == "" and frac.isdigit()) or (frac == "" and whole.isdigit()):
            return f"{shown(text)} needs digits on both sides of the decimal point, e.g. 0.50 or 5.00"
    return f"{shown(text)} is not an amount; write digits with at most two decimals, e.g. 50.00"


def _out_of_range(text: str) -> str:
    return f"{shown(text)} is out of range (at most {_RANGE} either way)"


def parse_amount(text: str, *, negative: bool = False) -> Decimal:
    """Staff, API and CSV money: ``-?[0-9]+(\\.[0-9]{1,2})?`` (the minus only when `negative`),
    within the money columns' range. Returns a Decimal with two places; "-0" reads as 0.00."""
    if not isinstance(text, str):
        raise AmountError(f"{shown(text)} is not text")
    m = _MONEY_RE.fullmatch(text) if len(text) <= _MAX_TEXT else None
    if m is None or (m.group(1) and not negative):
        reason = _why(text, negative=negative)
        kind = "sign" if m is not None else "places" if "fractions of a cent" in reason else "syntax"
        raise AmountError(reason, kind)
    whole = m.group(2).lstrip("0")
    if len(whole) > _INTEGER_DIGITS:
        raise AmountError(_out_of_range(text), "range")
    value = Decimal(text).quantize(CENT)
    return value if value else ZERO  # no negative zero


def parse_x12_number(text: str) -> Decimal:
    """An X12 "R" number (used for quantities): ``-?[0-9]*\\.?[0-9]+``, ASCII digits only
    (no exponent, "+", spaces or separators). Any number of decimals; at most 18 digits,
    the X12 maximum length of an "R" element."""
    if len(text) > 20 or not _X12_NUMBER_RE.fullmatch(text):
        raise AmountError("is not a number")
    if sum(ch.isdigit() for ch in text) > 18:
        raise AmountError("has more than 18 digits", "range")
    return Decimal(text)


def parse_x12_amount(text: str) -> Decimal:
    """An X12 "R" money amount: ``-?[0-9]*\\.?[0-9]+`` with at most two decimals, within the
    money columns' range. Leading zeros may be suppressed (".5" is 0.50). The Decimal keeps the
    places as written ("100" -> 100, "12.5" -> 12.5): equal in value, exact."""
    if X12_MONEY_RE.fullmatch(text) is not None:
        return Decimal(text)
    # not valid: say why
    if len(text) > _MAX_TEXT or not _X12_NUMBER_RE.fullmatch(text):
        raise AmountError("is not an amount (X12 R: an optional minus, ASCII digits, an optional decimal point)")
    point = text.find(".")
    if point >= 0:
        if len(text) - point - 1 > MONEY_PLACES:
            raise AmountError("has fractions of a cent (at most two decimals)", "places")
        whole = text[:point]
    else:
        whole = text
    if len(whole.lstrip("-").lstrip("0")) > _INTEGER_DIGITS:
        raise AmountError(f"is out of range (at most {_RANGE} either way)", "range")
    return Decimal(text)


def check_amount(value, *, negative: bool = False) -> Decimal:
    """A Decimal or int a Python caller passes: finite, no fraction of a cent, within range,
    not negative unless `negative`. Returns it as a Decimal with two places. A str goes
    through `parse_amount`; a float or bool is refused (a float is not exact)."""
    if isinstance(value, str):
        return parse_amount(value, negative=negative)
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        if isinstance(value, float):
            raise AmountError(f"{shown(value)} is a float; floats are not accepted for money (not exact): pass a "
                              "string or a Decimal", "type")
        raise AmountError(f"{shown(value)} is not an amount", "type")
    if isinstance(value, int):
        if abs(value) > MAX_AMOUNT:
            raise AmountError(_out_of_range(str(value)), "range")
        value = Decimal(value)
    elif not value.is_finite():
        raise AmountError(f"{shown(value)} is not an amount", "type")
    elif abs(value) > MAX_AMOUNT:  # before quantize: a huge exponent would not fit its precision
        raise AmountError(_out_of_range(str(value)), "range")
    cents = value.quantize(CENT)
    if cents != value:
        raise AmountError(f"{shown(value)} has fractions of a cent (at most two decimals)", "places")
    if cents < 0 and not negative:
        raise AmountError(f"{shown(value)} is negative; the amount must not be negative", "sign")
    return cents if cents else ZERO


def in_range(value: Decimal) -> bool:
    """True when a computed amount (a sum) still fits the money columns."""
    return -MAX_AMOUNT <= value <= MAX_AMOUNT
