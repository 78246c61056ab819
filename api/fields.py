"""The API's input fields: strict types (a JSON integer is not a string of digits, a boolean is true
or false), money through the one parser (ledger/amounts.py), ISO dates in range, text the database
can store. Serializers (api/serializers.py) are built from these."""

from decimal import Decimal

from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ledger import dates
from ledger.amounts import AmountError, check_amount
from ledger.errors import InvalidInput

MAX_ID = 2**63 - 1


# --- fields -----------------------------------------------------------------------------------------

class MoneyField(serializers.DecimalField):
    """Money: a decimal string with at most two places ("50.00"), or a whole number (50). A JSON number with a
    fraction or an exponent (50.5, 5e1) is refused: send amounts as strings. Strings are read by the one money
    parser (ledger/amounts.py: ASCII digits, no exponent, "+", spaces or separators, within NUMERIC(14, 2));
    DRF's own decimal parsing (Python's Decimal()) would take "1E2", "1_000" or "５０"."""
    default_error_messages = {
        "float": "Send amounts as strings (e.g. \"50.50\"); JSON numbers with a fraction are not accepted for money.",
        "type": "Send amounts as strings (e.g. \"50.00\").",
    }

    def __init__(self, **kwargs):
        kwargs.setdefault("max_digits", 14)
        kwargs.setdefault("decimal_places", 2)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, (float, Decimal)):  # the JSON parser reads 50.5 as Decimal("50.5"), never a float
            self.fail("float")
        if isinstance(data, bool) or not isinstance(data, (str, int)):
            self.fail("type")
        # the minus sign is refused outright where the field takes no negative amount
        negative = self.min_value is None or self.min_value < 0
        try:
            value = check_amount(data, negative=negative)
        except AmountError as exc:
            code = {"places": "max_decimal_places", "range": "out_of_range"}.get(exc.kind, "invalid")
            raise serializers.ValidationError(exc.reason, code=code) from None
        return value  # DRF then runs min_value / max_value on it


class TextField(serializers.CharField):
    """Text, and only text (DRF would turn a number into a string). Refuses what the database cannot
    store (NUL is refused by DRF, lone surrogates here) and, unless blank is allowed, text of spaces only."""
    default_error_messages = {"encoding": "Text must be valid Unicode.", "type": "Not a string."}

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if not self.allow_blank:  # documents (as a pattern) that blank text, spaces only, is refused
            self.validators.append(RegexValidator(r"\S", message="This field may not be blank.", code="blank"))

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("type")
        value = super().to_internal_value(data)
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            self.fail("encoding")
        return value


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer: not a string of digits, not a boolean, not 5.0."""
    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """JSON true or false only (DRF would also take "yes", 1, "on"...)."""
    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class FormBooleanField(serializers.BooleanField):
    """A boolean in a multipart form: the text "true" or "false"."""
    def to_internal_value(self, data):
        if isinstance(data, bool):
            return data
        if data in ("true", "false"):
            return data == "true"
        self.fail("invalid", input=data)


class StrictDateField(serializers.DateField):
    """A date as the text YYYY-MM-DD in ASCII digits (DRF, through Python's date.fromisoformat, would also take
    "20260301" or "2026-W09-1"), read by ledger/dates.py: `kind="service"` a date of service (1900-01-01 to
    today + 2 years), `kind="birth"` a date of birth (1900-01-01 to today)."""
    CHECKS = {"service": dates.service_date, "birth": dates.birth_date, None: dates.iso_date}

    def __init__(self, *, kind=None, **kwargs):
        super().__init__(**kwargs)
        self.check = self.CHECKS[kind]

    def to_internal_value(self, value):
        if not isinstance(value, str):
            self.fail("invalid", format="YYYY-MM-DD")
        try:
            return self.check(value, field=self.field_name)
        except InvalidInput as exc:  # the message without the field: the error shape puts it in front
            raise serializers.ValidationError(exc.message.removeprefix(f"{self.field_name}: "),
                                              code="invalid") from None


@extend_schema_field({"type": "string", "maxLength": 254, "pattern": r"^$|^[^@\s]+@[^@\s]+$",
                      "description": "An email address, or empty."})
class EmailOrBlankField(TextField):
    def __init__(self, **kwargs):
        super().__init__(allow_blank=True, max_length=254, **kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if value:
            serializers.EmailField().run_validators(value)
        return value


def Id(**kwargs):
    return StrictIntegerField(min_value=1, max_value=MAX_ID, **kwargs)


def Reason(*, required=False, default=None, help_text="Why; kept in the history with the token's name."):
    if required:
        return TextField(max_length=2000, help_text=help_text)
    return TextField(max_length=2000, required=False, default=default, help_text=help_text)


# --- practice, token, payers ------------------------------------------------------------------------

@extend_schema_field({"type": "string", "pattern": r"^\d{2}:\d{2}$", "example": "02:00",
                      "description": "Local time in the practice's time zone, HH:MM."})
class LocalTimeField(serializers.TimeField):
    def __init__(self, **kwargs):
        super().__init__(format="%H:%M", **kwargs)
